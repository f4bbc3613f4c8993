"""Virtual fleets against a fleet server: `make run` (the demo: four stations in Taku, Saga,
where the Ushizu River floods the town in heavy rain) and `mizumori sim fleet N`.

Each station runs the real firmware with the sim board: the first on the full serial rig
(MicroPython on a pseudo-terminal, its ultrasonic sensor streaming on another), the others as
a MicroPython process per wake, or in-process under CPython (`engine="cpython"`) for large N.

Both run until Ctrl-C whatever the speed: nobody has to read the rig's port (rig.py), and a
board that fails a wake (stuck awake, a crash of the wake itself) is reported and powered on
again a simulated minute later (SurvivingFleet). One run per data folder (FolderLock).
"""

import random
import secrets
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mizumori_tools import paths
from mizumori_tools.fleet import Api, Fleet, Member, ServerProcess
from mizumori_tools.folderlock import FolderBusy, FolderLock
from mizumori_tools.rig import SerialRig
from mizumori_tools.virtual import CPythonStation, Scenario, VirtualStation

RIVER = {"mount_height_mm": 5000, "standby_mm": 1000, "caution_mm": 1500,
         "evacuation_mm": 2000, "danger_mm": 2500}
# An underpass: the sensor hangs 3 m above the road; its levels are depths of water on it.
UNDERPASS = {"mount_height_mm": 3000, "standby_mm": 100, "caution_mm": 200,
             "evacuation_mm": 300, "danger_mm": 500}
NAMES = ("-", "standby", "caution", "evacuation", "DANGER")
RESTART_AFTER_S = 60  # simulated seconds before a board whose wake failed is powered on


class SurvivingFleet(Fleet):
    """A fleet that lives until Ctrl-C: a wake that fails (a board stuck awake past the rig's
    timeout, a station process that did not sleep, ten watchdog resets in a row) is reported
    on stderr, and the board is powered on again RESTART_AFTER_S later (RTC memory lost, as
    after a power cycle). The other stations and the server carry on."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.restarts = 0

    def _wake(self, m: Member, on_wake: Any) -> None:
        try:
            super()._wake(m, on_wake)
        except Exception as e:  # noqa: BLE001 - one board's trouble never stops the fleet
            self.restarts += 1
            clock = time.strftime("%m-%d %H:%M", time.localtime(self.now))
            why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            print(f"{clock}  {m.code:18s} wake failed: {why}; powering the board on again "
                  f"in {RESTART_AFTER_S} s (simulated)", file=sys.stderr, flush=True)
            (m.station.flash / "rtc.bin").unlink(missing_ok=True)
            m.reset_cause = "power_on"
            m.next_wake = self.now + RESTART_AFTER_S
            m.last_h = (self.now - self.start) / 3600


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could not listen on host:port (as uvicorn binds: SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


@dataclass
class Site:
    code: str
    name: str
    site_type: str
    latitude: float
    longitude: float
    settings: dict[str, int] = field(default_factory=lambda: RIVER)
    level_offset_mm: int = 0  # this site's water against the scenario's


TAKU = [
    Site("taku-ushizu-01", "牛津川 多久橋", "river", 33.2869, 130.1133),
    Site("taku-ushizu-02", "牛津川 砥川", "river", 33.2566, 130.1615, level_offset_mm=150),
    Site("taku-kitakata-01", "六角川 北方", "river", 33.2300, 130.0800, level_offset_mm=-200),
    Site("taku-underpass-01", "多久駅前アンダーパス", "underpass", 33.2793, 130.1080, UNDERPASS,
         level_offset_mm=-1800),
]


def sites(n: int, seed: int = 1) -> list[Site]:
    """Taku's stations, then more gauges spread along the Ushizu River's course."""
    rng = random.Random(seed)
    out = TAKU[:n]
    for i in range(len(out), n):
        f = rng.random()  # from upstream (north-west) to the confluence (south-east)
        out.append(Site(f"sim-{i + 1:04d}", f"牛津川 仮想観測所 {i + 1}", "river",
                        round(33.31 - 0.09 * f + rng.uniform(-0.005, 0.005), 5),
                        round(130.05 + 0.17 * f + rng.uniform(-0.005, 0.005), 5),
                        level_offset_mm=rng.randrange(-300, 300, 10)))
    return out


def run(site_list: list[Site], scenario_name: str, hours: float | None, speed: float,
        engine: str = "micropython", port: int = 8080, server_url: str | None = None,
        token: str | None = None, clock_file: Path | None = None,
        power_cut_rate: float = 0.0, work: Path | None = None,
        server_env: dict[str, str] | None = None, prog: str = "mizumori sim fleet",
        wake_timeout_s: float = 120.0) -> int:
    """With no server_url: a fresh server on SQLite in `work` with a demo admin (server_env:
    more MIZUMORI_* settings for it); else the given server (its clock is real unless it reads
    clock_file, so then speed is 1). Runs until Ctrl-C; 2 when it cannot start (the folder or
    the port in use)."""
    scenario = Scenario.load(scenario_name)
    hours = hours or scenario.duration_h
    own = server_url is None
    work = (work or paths.REPO / "data" / "sim").absolute()
    lock = FolderLock(work)
    try:
        lock.acquire()
    except FolderBusy as e:
        print(f"{prog}: another demo or fleet (process {e.pid or '?'}) is running on "
              f"{work}; its data was left alone. Stop it (Ctrl-C in its terminal"
              f"{f', or kill {e.pid}' if e.pid else ''}), or give this one a folder of its "
              "own: --data DIR.", file=sys.stderr)
        return 2
    try:
        if own and port_in_use(port):
            make = f" or `make run MIZUMORI_PORT={port + 1}`" if prog.endswith("demo") else ""
            print(f"{prog}: port {port} is already in use (another demo or server?). Stop "
                  f"that one, or choose another port: --port {port + 1}{make}.",
                  file=sys.stderr)
            return 2
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on kill too
        return _run(site_list, scenario, hours, speed, engine, port, server_url, token,
                    clock_file, power_cut_rate, work, server_env or {}, prog, wake_timeout_s)
    except KeyboardInterrupt:  # while it was still setting up
        print("\nstopped")
        return 0
    finally:
        lock.release()


def _run(site_list: list[Site], scenario: Scenario, hours: float, speed: float, engine: str,
         port: int, server_url: str | None, token: str | None, clock_file: Path | None,
         power_cut_rate: float, work: Path, server_env: dict[str, str], prog: str,
         wake_timeout_s: float) -> int:
    own = server_url is None
    if own:
        shutil.rmtree(work, ignore_errors=True)
        clock_file = work / "clock"
    work.mkdir(parents=True, exist_ok=True)
    if clock_file is None and speed != 1:
        print("no --clock-file shared with the server: running in real time (speed 1)")
        speed = 1
    server = None
    if own:
        # "-x..." would read as an option on `mizumori user create --password`
        password = "k" + secrets.token_urlsafe(12)
        server = ServerProcess({**server_env,
                                "MIZUMORI_DATA_DIR": str(work),
                                "MIZUMORI_DATABASE_URL": f"sqlite:///{work / 'mizumori.db'}",
                                "MIZUMORI_CLOCK_FILE": str(clock_file),
                                "MIZUMORI_SECRET_KEY": secrets.token_hex(16)},
                               cwd=work, port=port)
        server.prepare({"admin": ("admin", password)})
    start = int(time.time())
    fleet = SurvivingFleet(scenario, clock_file, start, power_cut_rate=power_cut_rate,
                           speed=speed)
    rig: SerialRig | None = None
    try:
        if server is not None:
            try:
                server.start()
            except RuntimeError as e:
                print(f"{prog}: the server did not start ({e}): is port {port} in use? "
                      f"Choose another with --port.", file=sys.stderr)
                return 2
            server_url = server.url
            api = Api.login(server.url, "admin", password)
        else:
            assert server_url is not None
            api = Api(server_url, token or "")
        for i, site in enumerate(site_list):
            api.station({"code": site.code, "name": site.name, "site_type": site.site_type,
                         "latitude": site.latitude, "longitude": site.longitude,
                         **site.settings})
            device = api.provision(f"sim-{site.code}", site.code)
            kind = CPythonStation if engine == "cpython" and i else VirtualStation
            station = kind(work / "stations" / site.code, seed=i + 1,
                           hardware_id=f"sim-{site.code}")
            station.provision(device, server_url, device["config"])
            if i == 0:
                rig = SerialRig(station, work / "station-port", run_from_flash=False,
                                wake_timeout_s=wake_timeout_s)
            fleet.add(station, site.code, site.level_offset_mm,
                      site.settings["mount_height_mm"],
                      floor_mm=0 if site.site_type == "underpass" else None,
                      rig=rig if i == 0 else None)
        if server is not None:
            print(f"Mizumori demo: {server.url}  (API docs {server.url}/docs)")
            print(f"  log in as admin / {password}; more users: .venv/bin/mizumori user "
                  f"create NAME --data {_shown(work)}")
        print(f"  {len(site_list)} virtual stations (the real firmware; {site_list[0].code} on "
              f"the serial rig at {work / 'station-port'}) through '{scenario.name}': "
              f"{scenario.spec.get('about', '')}")
        print(f"  simulated time runs {speed:g}x from start {start} "
              f"({time.strftime('%Y-%m-%d %H:%M', time.localtime(start))}); data in {work}; "
              "Ctrl-C stops", flush=True)
        fleet.run_until(start + int(hours * 3600), on_wake=_show(fleet, len(site_list) <= 20))
        _summary(fleet, rig, "scenario over")
        if server is not None:
            print("scenario over; the server keeps running until Ctrl-C", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping")
        if fleet.members:
            _summary(fleet, rig, "stopped")
    except httpx.HTTPStatusError as e:
        detail = e.response.json().get("detail") if e.response.content else ""
        print(f"{prog}: the server said {e.response.status_code} {detail} to "
              f"{e.request.method} {e.request.url.path}", file=sys.stderr)
        return 1
    finally:
        if rig is not None:
            rig.stop()
        if server is not None:
            server.stop()
    return 0


def _shown(path: Path) -> str:
    """A path as the user would type it from the repository (else absolute)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _show(fleet: Fleet, every_wake: bool) -> Any:
    """A line per wake for a small fleet; for a large one, a line per simulated hour."""
    shown = [fleet.start]

    def show(m: Member, result: tuple[int, int] | None) -> None:
        clock = time.strftime("%m-%d %H:%M", time.localtime(fleet.now))
        if not every_wake:
            if fleet.now - shown[0] >= 3600:
                shown[0] = fleet.now
                print(f"{clock}  {sum(x.wakes for x in fleet.members)} wakes so far")
            return
        st = m.station.state()
        if result is None:
            print(f"{clock}  {m.code:18s} power cut")
            return
        print(f"{clock}  {m.code:18s} level {st.get('level')!s:>5} mm  "
              f"{NAMES[st.get('alert', 0)]:10s} next in {(result[0] + 30) // 60:2d} min  "
              f"{st.get('err', '')[:40]} {st.get('uplink', '')[:40]}")
    return show


def _summary(fleet: Fleet, rig: SerialRig | None = None, what: str = "scenario over"
             ) -> None:
    wakes = sum(m.wakes for m in fleet.members)
    cuts = sum(m.power_cuts for m in fleet.members)
    failing = [m.code for m in fleet.members if m.station.state().get("uplink")]
    restarts = getattr(fleet, "restarts", 0)
    print(f"{what}: {len(fleet.members)} stations, {wakes} wakes, {cuts} power cuts, "
          f"{restarts} boards restarted after a failed wake; last upload failed at: "
          f"{', '.join(failing) or 'none'}")
    if rig is not None:
        print(f"  serial rig: the board printed {rig.sent} bytes on {rig.port}, "
              f"{rig.dropped} of them dropped unread", flush=True)
