"""The energy ledger (part of `make bench`; `--write` regenerates hardware/power-budget.md):
mAh per day per profile and years on each battery, from the simulated board's own ledger.

Wi-Fi: the real firmware under MicroPython wakes on the rig's schedule and reports over
HTTPS to a live server; the sim board counts the ms it spends in each state (boot, CPU
awake, Wi-Fi on, each part on the sensor rail, light and deep sleep:
firmware/station/hw/sim.py) and hardware/energy.json holds the current of each. The first
wake (a power-on) is left out: the figures are a station's steady days. LoRaWAN: the same
wakes without Wi-Fi, plus each uplink as the firmware sends it through the simulated RAK3172
(receive windows and the ESP32 awake until RUI3's TX_DONE, in the driver's own waits) times
the uplinks a day the station's packing sends, and their time on air (bench/lorawan.py).

Profiles: the standard one (normal and flood days) and MLIT's crisis-gauge profile (a watch
day: a short burst every 10 min (watch_window_s, 3 s by default; the standard's full 20 s
window on the daily heartbeat's wake and whenever a burst could decide a mode), stored,
sent in one daily heartbeat; the same day with watch_window_s 20, the full window on every
wake, for an operator who needs strict compliance; observation days at 600, 300 and 120 s:
a 20 s window and an upload each), then a year of it with 10 flood days in observation mode
at 120 s against the targets of issue 17. The normal and flood days again over Wi-Fi with a
static address (no DHCP on each wake). Nothing here is measured on a built station: the
figures are as good as the table's currents."""

import json
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mizumori_tools import certs, device, paths
from mizumori_tools.fleet import Api, Fleet, ServerProcess
from mizumori_tools.virtual import SIM_SSID, Scenario, VirtualStation

ROOT = Path(__file__).resolve().parents[1]
TABLE = json.loads((ROOT / "hardware" / "energy.json").read_text())
MA = {k: v["ma"] for k, v in TABLE["states_ma"].items()}
DAY_MS = 86400 * 1000
# The simulated days start now: the server's test certificates are valid from a day ago,
# and a fixed date in the past had every upload fail TLS ("validity starts in the future").
START = int(time.time())
WATCH = {"profile": "mlit", "obs_start_mm": 2000}  # the calm scenario's ~0.6 m: watch mode
OBSERVE = {"profile": "mlit", "obs_start_mm": 100}  # always at or above the start level
# name: (station columns, device settings, hours simulated after the first wake (None: from
# one daily heartbeat to the next), and for LoRaWAN: reading interval s, readings per upload)
PROFILES: dict[str, tuple[dict[str, int], dict[str, Any], int | None, int, int]] = {
    "normal": ({"interval_normal_s": 600, "upload_every": 3}, {}, 6, 600, 3),
    "flood": ({"interval_normal_s": 120, "upload_every": 1}, {}, 2, 120, 1),
    # a watch day: its one heartbeat carries the day's 144 readings (over LoRaWAN a digest
    # of them); the wakes between heartbeats take a short burst (watch_window_s, default
    # 3 s) where it decides nothing
    "mlit watch": ({}, WATCH, None, 600, 144),
    # the same with the standard's full 20 s window on every wake (strict compliance)
    "mlit watch, 20 s window": ({}, {**WATCH, "watch_window_s": 20}, None, 600, 144),
    "mlit observation 600 s": ({}, {**OBSERVE, "obs_interval_s": 600}, 6, 600, 1),
    "mlit observation 300 s": ({}, {**OBSERVE, "obs_interval_s": 300}, 3, 300, 1),
    "mlit observation 120 s": ({}, {**OBSERVE, "obs_interval_s": 120}, 2, 120, 1),
}
FLOOD_DAYS = 10  # a year of the MLIT profile: these days in observation mode at 120 s
# Issue 17's targets for that year on one Li-SOCl2 D cell (MLIT's crisis gauge promises 5
# years without a battery change), and MLIT's 9 sunless days of observation mode.
TARGET_YEARS = {"wifi": 5, "lora": 10}
SUNLESS_DAYS = 9
# These days again with a static address (`device provision --wifi-ip`) in the simulated
# access point's network (firmware/station/hw/sim_net.py LAN)
STATIC_DAYS = ("normal", "flood")
STATIC_WIFI = device.wifi_settings(SIM_SSID, "virtual-station", "192.168.4.20", "24",
                                   "192.168.4.1")


def mah(spent: dict[str, float]) -> float:
    return sum(ms * MA[state] for state, ms in spent.items() if state in MA) / 3.6e6


def wifi_day(tmp: Path, columns: dict[str, int], settings: dict[str, Any],
             hours: int | None, wifi: dict[str, str] | None = None) -> dict[str, float]:
    """ms per state over a day of wakes reporting over HTTPS (scaled from `hours` after
    the first wake; None: up to the next daily heartbeat, when the station's clock, which
    drifts, says a day has passed), for a station with these columns and its device these
    settings (and these Wi-Fi credentials instead of the virtual station's)."""
    pki = certs.make(tmp / "pki")
    clock = tmp / "clock"
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                            "MIZUMORI_CLOCK_FILE": str(clock),
                            "MIZUMORI_SECRET_KEY": "energy-bench-key"}, cwd=tmp, tls=pki)
    server.prepare({"admin": ("admin", "bench-pass-1")})
    fleet = Fleet(Scenario.load("calm"), clock, START)
    server.start()
    try:
        api = Api.login(server.url, "admin", "bench-pass-1", str(pki["ca"]))
        api.station({"code": "energy-01", "name": "energy", "site_type": "river",
                     "latitude": 33.28, "longitude": 130.11, "mount_height_mm": 5000,
                     **columns})
        p = api.provision("esp32-energy-01", "energy-01")
        if settings:
            api.http.patch(f"/api/devices/{p['device_id']}/config",
                           json={"settings": settings}).raise_for_status()
        station = VirtualStation(tmp / "flash")
        station.provision(p, server.url, {**p["config"], **settings}, ca=pki["ca"])
        if wifi:
            secrets = station.flash / "secrets.json"
            secrets.write_text(json.dumps({**json.loads(secrets.read_text()), "wifi": wifi}))
        fleet.add(station, "energy-01")
        ledger = tmp / "flash" / "energy.json"
        fleet.run_until(START)  # the first wake: a power-on, provisioning's clock
        ledger.unlink()
        beat = station.state()["beat_t"]
        to_beat: list[dict[str, int]] = []  # the ledger at the next heartbeat

        def heartbeat(m: Any, result: Any) -> None:
            if not to_beat and station.state()["beat_t"] != beat:
                to_beat.append(json.loads(ledger.read_text()))

        fleet.run_until(START + (hours or 25) * 3600, None if hours else heartbeat)
        spent = to_beat[0] if to_beat else json.loads(ledger.read_text())
        if hours is None and not to_beat:
            raise SystemExit(f"{settings}: no daily heartbeat in 25 hours")
        # the figures are for a station whose uploads work: most readings arrived (the
        # last few may wait for the next upload)
        api = Api.login(server.url, "admin", "bench-pass-1", str(pki["ca"]))  # a new day
        stored = api.get("/api/stations/energy-01/readings", start=START - 3600,
                         end=fleet.now + 1, max_points=100000)["count"]
        if stored < spent["wakes"] // 2:
            st = station.state()
            raise SystemExit(f"{settings or columns}: only {stored} of {spent['wakes'] + 1} "
                             f"readings reached the server ({st.get('uplink') or st.get('err')})")
    finally:
        server.stop()
    wakes = spent.pop("wakes")
    # the board's own time: the rail's parts draw alongside the CPU, not after it
    awake = sum(v for k, v in spent.items() if k != "deep_sleep" and not k.startswith("rail_"))
    scale = DAY_MS / (awake + spent["deep_sleep"])
    day = {k: v * scale for k, v in spent.items()}
    day["wakes"] = wakes * scale
    return day


def lora_uplink() -> dict[str, float]:
    """ms per state of one LoRaWAN uplink with a reading, sent by the firmware's transport
    through the simulated RAK3172 (tests/firmware/test_lorawan.py's setting): the ESP32
    awake through the driver's waits, the module's transmission and receive windows."""
    paths.import_firmware()
    from station import codec, config, lorawan, state
    from station.drivers.rak3172 import Rak3172
    from station.flashqueue import FlashQueue
    from station.hw import sim
    from station.hw.rak3172_sim import Rak3172Sim

    class Net:
        def join(self, *a: Any) -> bool:
            return True

        def uplink(self, *a: Any) -> tuple[bool, list[Any]]:
            return True, []

    ms = [0]
    napped = [0]
    module = Rak3172Sim(Net(), lambda: ms[0])

    def nap(n: int) -> None:  # the board's light sleep: what the module says is lost
        ms[0] += n
        napped[0] += n
        module.read()

    modem = Rak3172(module, lambda n: ms.__setitem__(0, ms[0] + n), lambda: ms[0], None, nap)
    with tempfile.TemporaryDirectory(prefix="mizumori-energy-") as d:
        cfg, _ = config.merge(config.DEFAULTS, {"transport": "lorawan", "lora_uplinks": 1})
        board = sim.Board(sim.World())
        q = FlashQueue(d + "/queue")
        st = state.defaults()
        st["synced"] = True
        creds = {"lorawan": {"dev_eui": "ac1f09fffe0a1b2c", "app_eui": "ac1f09fff8680000",
                             "app_key": "2b7e151628aed2a6abf7158809cf4f3c"}}
        spent: dict[str, float] = {}
        for k in range(4):  # the first joins and sets up; the rest are steady wakes
            q.append(struct.pack(">I", board.time()) + codec.encode_full(
                q.next_seq, 0, 1000, 3700, 0, 20.0, 50.0, 1000.0, 0.0))
            start, nap0 = ms[0], napped[0]
            tx0, rx0 = module.spent["lora_tx"], module.spent["lora_rx"]
            lorawan.send(modem, board, cfg, d + "/config.json", creds, st, q, "deepsleep")
            if k:
                for state_, n in (("cpu", ms[0] - start - (napped[0] - nap0)),
                                  ("light_sleep", napped[0] - nap0),
                                  ("lora_tx", module.spent["lora_tx"] - tx0),
                                  ("lora_rx", module.spent["lora_rx"] - rx0)):
                    spent[state_] = spent.get(state_, 0) + n / 3
            ms[0] += 600000  # asleep until the next wake
    return spent


def uplinks_per_day(interval: int, per_upload: int, watch: bool = False
                    ) -> tuple[int, float]:
    """(uplinks, seconds on air) a day at the default data rate (bench/lorawan.py). watch:
    an MLIT watch day, whose readings stay on the station and go up as one daily digest,
    with the delivery-report request they call for (firmware/station/lorawan.py pack)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import lorawan as bench_lorawan

    paths.import_firmware()
    from station import config, lorawan

    dr = config.DEFAULTS["lora_dr"]
    if watch:
        air_s = bench_lorawan.watch_day(dr)[2]
        return 1 + (DAY_MS // 1000 // interval >= lorawan.REPORT_READINGS), air_s
    return bench_lorawan.day(dr, interval, per_upload)


def years(mah_day: float, battery: dict[str, Any]) -> float:
    usable = battery["mah"] * battery["usable"]
    leak = battery["mah"] * battery["self_discharge_pct_per_month"] / 100 * 12 / 365
    return usable / (mah_day + leak) / 365


def figures() -> list[dict[str, Any]]:
    rows = []
    uplink = lora_uplink()
    for name, (columns, settings, hours, interval, per) in PROFILES.items():
        with tempfile.TemporaryDirectory(prefix="mizumori-energy-") as tmp:
            day = wifi_day(Path(tmp), columns, settings, hours)
        if not day.get("wifi"):
            raise SystemExit(f"{name}: no upload in the simulated day (the heartbeat?)")
        wakes = day.pop("wakes")
        wifi = mah(day)
        no_radio = {k: v for k, v in day.items() if k != "wifi"}
        n, air_s = uplinks_per_day(interval, per, name.startswith("mlit watch"))
        lora_day = dict(no_radio)
        for state_, ms in uplink.items():  # each uplink's waits; its airtime as packed
            if state_ != "lora_tx":
                lora_day[state_] = lora_day.get(state_, 0) + ms * n
        lora_day["lora_tx"] = air_s * 1000
        lora_day["lora_sleep"] = DAY_MS
        row = {"profile": name, "wakes": wakes, "uplinks": n,
               "wifi_mah": wifi, "lora_mah": mah(lora_day),
               "wifi_parts": {k: mah({k: v}) for k, v in day.items()},
               "lora_parts": {k: mah({k: v}) for k, v in lora_day.items()}}
        if name in STATIC_DAYS:
            with tempfile.TemporaryDirectory(prefix="mizumori-energy-") as tmp:
                static = wifi_day(Path(tmp), columns, settings, hours, STATIC_WIFI)
            static.pop("wakes")
            row["static_mah"] = mah(static)
        rows.append(row)
    return rows


def report(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    batteries = TABLE["batteries"]
    for r in rows:
        for kind in ("wifi", "lora"):
            label = "Wi-Fi (HTTPS)" if kind == "wifi" else "LoRaWAN (DR3)"
            parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(
                r[f"{kind}_parts"].items(), key=lambda kv: -kv[1]) if v >= 0.005)
            life = "; ".join(f"{name}: {years(r[f'{kind}_mah'], b):.1f} years"
                             for name, b in batteries.items())
            uplinks = "" if kind == "wifi" else f", {r['uplinks']:.0f} uplinks"
            out.append(f"  {r['profile']}, {label}: {r[f'{kind}_mah']:.1f} mAh/day "
                       f"({r['wakes']:.0f} wakes{uplinks}; {parts}); {life}")
            if kind == "wifi" and "static_mah" in r:
                life = "; ".join(f"{name}: {years(r['static_mah'], b):.1f} years"
                                 for name, b in batteries.items())
                out.append(f"  {r['profile']}, {label} with a static address: "
                           f"{r['wifi_mah']:.1f} -> {r['static_mah']:.1f} mAh/day (no DHCP "
                           f"on each wake); {life}")
    by = {r["profile"]: r for r in rows}
    pack = batteries["2x18650"]
    for kind in ("wifi", "lora"):
        days = pack["mah"] * pack["usable"] / by["flood"][f"{kind}_mah"]
        out.append(f"  flood reporting without sun on 2x18650, {kind}: {days:.0f} days "
                   f"(a 2 W panel gives ~{TABLE['solar_2w_mah_per_day']['mah']} mAh/day)")
    out += mlit_year(by, batteries)
    return out


def mlit_year(by: dict[str, dict[str, Any]], batteries: dict[str, Any]) -> list[str]:
    """A year of the MLIT profile (FLOOD_DAYS in observation mode at 120 s, the rest watch
    days) on each battery, against issue 17's targets."""
    out = []
    flood = by["mlit observation 120 s"]
    cell, pack = batteries["LiSOCl2_D"], batteries["2x18650"]
    for kind, label in (("wifi", "Wi-Fi"), ("lora", "LoRaWAN")):
        for day, how in (("mlit watch", ""), ("mlit watch, 20 s window",
                                              ", the full 20 s window on every watch wake")):
            avg = ((365 - FLOOD_DAYS) * by[day][f"{kind}_mah"]
                   + FLOOD_DAYS * flood[f"{kind}_mah"]) / 365
            life = "; ".join(f"{name}: {years(avg, b):.1f} years"
                             for name, b in batteries.items())
            got = years(avg, cell)
            verdict = "met" if got >= TARGET_YEARS[kind] else "NOT met"
            out.append(f"  MLIT year ({365 - FLOOD_DAYS} watch days, {FLOOD_DAYS} observation "
                       f"days at 120 s{how}), {label}: {avg:.1f} mAh/day; {life}; target >= "
                       f"{TARGET_YEARS[kind]} years on LiSOCl2_D: {verdict}")
        days = pack["mah"] * pack["usable"] / flood[f"{kind}_mah"]
        verdict = "met" if days >= SUNLESS_DAYS else "NOT met"
        out.append(f"  MLIT observation at 120 s without sun on 2x18650, {label}: {days:.0f} "
                   f"days (MLIT asks {SUNLESS_DAYS}: {verdict})")
    return out


def main() -> None:
    print("Energy ledger (hardware/energy.json currents x the simulated board's time in each "
          "state; mAh per day by state)")
    lines = report(figures())
    print("\n".join(lines))
    if "--write" in sys.argv:
        write_budget(lines)


def write_budget(lines: list[str]) -> None:
    rows = "\n".join(f"| {k} | {v['ma']} mA | {v['source']} |"
                     for k, v in TABLE["states_ma"].items())
    watch_days, flood_days = 365 - FLOOD_DAYS, FLOOD_DAYS
    wifi_years, lora_years, sunless = TARGET_YEARS["wifi"], TARGET_YEARS["lora"], SUNLESS_DAYS
    beat_uplinks = uplinks_per_day(*PROFILES["mlit watch"][3:], watch=True)[0]
    paths.import_firmware()
    from station import config

    burst_s = config.DEFAULTS["watch_window_s"]
    text = f"""# Power budget

Generated by `python bench/energy.py --write` from the energy ledger: the currents in
[energy.json](energy.json) times the time the simulated board spends in each state while
the real firmware runs (firmware/station/hw/sim.py; LoRaWAN uplinks through the simulated
RAK3172). Design figures from datasheets, not a measurement on a built station.

| state | current | source |
|---|---|---|
{rows}

The days, each the steady state after the first wake (a power-on) of a station on the
calm scenario (the level near 0.6 m):

- **normal** and **flood**: the standard profile, a reading every 10 min sent every third,
  and a reading every 2 min sent at once.
- **mlit watch**: the MLIT profile below its observation-start level: a reading every
  10 min, stored, and one heartbeat a day with the day's readings (over LoRaWAN: an 11-byte
  digest of them and the delivery-report request they call for, {beat_uplinks} uplinks).
  Each wake samples a short burst (`watch_window_s`, {burst_s} s by default; the sensor rail
  on through it, the ESP32 in light sleep between samples) and goes on to the standard's
  full 20 s window on the heartbeat's wake and whenever the burst could decide a mode
  (docs/firmware.md, "Schedule"); the calm scenario's level is far below the start level,
  so the other wakes stop at the burst. Measured from one heartbeat to the next.
- **mlit watch, 20 s window**: the same with `watch_window_s` 20: the full window on every
  wake (strict compliance with the standard's wording).
- **mlit observation 600 / 300 / 120 s**: at or above the start level, a 20 s window and an
  upload at each interval.
- **with a static address**: the normal and flood days over Wi-Fi again, the station
  provisioned with its own address (`--wifi-ip`): no DHCP exchange on each wake (before ->
  after).
- **MLIT year**: {watch_days} watch days (either of the two above) and {flood_days}
  observation days at 120 s (issue 17's scenario), averaged, against its targets on one
  Li-SOCl2 D cell: at least {wifi_years} years over Wi-Fi and {lora_years} over LoRaWAN
  (MLIT's crisis gauge promises five years without a battery change), and {sunless}
  sunless days of observation mode at 120 s on 2x18650.

Per day (mAh by state, then years on each battery with its self-discharge):

```
{chr(10).join(lines)}
```
"""
    (ROOT / "hardware" / "power-budget.md").write_text(text)


if __name__ == "__main__":
    main()
