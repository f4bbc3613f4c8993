"""`make run`: the fleet server on SQLite with a small virtual fleet in Taku (Saga), where the
Ushizu River floods the town in heavy rain, living through the flood scenario in simulated
time. Ctrl-C stops everything."""

import secrets
import shutil
import time

from mizumori_tools import paths
from mizumori_tools.fleet import Api, Fleet, Member, ServerProcess
from mizumori_tools.virtual import Scenario, VirtualStation

RIVER = {"mount_height_mm": 5000, "standby_mm": 1000, "caution_mm": 1500,
         "evacuation_mm": 2000, "danger_mm": 2500}
# An underpass: the sensor hangs 3 m above the road; its levels are depths of water on it.
UNDERPASS = {"mount_height_mm": 3000, "standby_mm": 100, "caution_mm": 200,
             "evacuation_mm": 300, "danger_mm": 500}
STATIONS = [
    # code, name, site type, latitude, longitude, settings, level offset from the scenario
    ("taku-ushizu-01", "牛津川 多久橋", "river", 33.2869, 130.1133, RIVER, 0),
    ("taku-ushizu-02", "牛津川 砥川", "river", 33.2566, 130.1615, RIVER, 150),
    ("taku-kitakata-01", "六角川 北方", "river", 33.2300, 130.0800, RIVER, -200),
    ("taku-underpass-01", "多久駅前アンダーパス", "underpass", 33.2793, 130.1080, UNDERPASS,
     -1800),
]
NAMES = ("-", "standby", "caution", "evacuation", "DANGER")


def run(hours: float, speed: float, port: int, scenario_name: str) -> int:
    work = paths.REPO / "data" / "demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    password = secrets.token_urlsafe(9)
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{work / 'mizumori.db'}",
                            "MIZUMORI_CLOCK_FILE": str(work / "clock"),
                            "MIZUMORI_SECRET_KEY": secrets.token_hex(16)}, cwd=work, port=port)
    for args in (("db", "upgrade"), ("user", "create", "admin", "--password", password)):
        done = server.cli(*args)
        if done.returncode:
            raise SystemExit(done.stderr)
    scenario = Scenario.load(scenario_name)
    start = int(time.time())
    fleet = Fleet(scenario, work / "clock", start, speed=speed)
    server.start()
    try:
        api = Api.login(server.url, "admin", password)
        for code, name, site, lat, lon, settings, offset in STATIONS:
            api.station({"code": code, "name": name, "site_type": site, "latitude": lat,
                         "longitude": lon, **settings})
            device = api.provision(f"esp32-demo-{code}", code)
            station = VirtualStation(work / "stations" / code, seed=len(fleet.members) + 1)
            station.provision(device, server.url, device["config"])
            fleet.add(station, code, offset, settings["mount_height_mm"],
                      floor_mm=0 if site == "underpass" else None)
        print(f"Mizumori demo: {server.url}  (API docs {server.url}/docs)")
        print(f"  log in as admin / {password}")
        print(f"  {len(STATIONS)} virtual stations (the real firmware under MicroPython) "
              f"through '{scenario.name}': {scenario.spec.get('about', '')}")
        print(f"  simulated time runs {speed:g}x; data in {work}; Ctrl-C stops")

        def show(m: Member, result: tuple[int, int] | None) -> None:
            st = m.station.state()
            clock = time.strftime("%m-%d %H:%M", time.localtime(fleet.now))
            if result is None:
                print(f"{clock}  {m.code:18s} power cut")
                return
            print(f"{clock}  {m.code:18s} level {st.get('level')!s:>5} mm  "
                  f"{NAMES[st.get('alert', 0)]:10s} next in {(result[0] + 30) // 60:2d} min  "
                  f"{st.get('err', '')[:40]} {st.get('uplink', '')[:40]}")

        fleet.run_until(start + int(hours * 3600), on_wake=show)
        print("scenario over; the server keeps running until Ctrl-C")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        server.stop()
    return 0
