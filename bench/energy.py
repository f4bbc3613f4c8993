"""The energy ledger (part of `make bench`; `--write` regenerates hardware/power-budget.md):
mAh per day per profile and years on each battery, from the simulated board's own ledger.

Wi-Fi: the real firmware under MicroPython wakes on the rig's schedule and reports over
HTTPS to a live server; the sim board counts the ms it spends in each state (boot, CPU
awake, Wi-Fi on, each part on the sensor rail, deep sleep: firmware/station/hw/sim.py) and
hardware/energy.json holds the current of each. LoRaWAN: the same wakes without Wi-Fi,
plus each uplink as the firmware sends it through the simulated RAK3172 (its airtime,
receive windows and the ESP32 awake until RUI3's TX_DONE, in the driver's own waits), times
the uplinks a day the station's packing sends (bench/lorawan.py). Nothing here is measured
on a built station: the figures are as good as the table's currents."""

import json
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

from mizumori_tools import certs, paths
from mizumori_tools.fleet import Api, Fleet, ServerProcess
from mizumori_tools.virtual import Scenario, VirtualStation

ROOT = Path(__file__).resolve().parents[1]
TABLE = json.loads((ROOT / "hardware" / "energy.json").read_text())
MA = {k: v["ma"] for k, v in TABLE["states_ma"].items()}
DAY_MS = 86400 * 1000
START = 1_790_000_000
PROFILES = {  # name: (reading interval s, readings per upload, simulated hours run)
    "normal": (600, 3, 6),
    "flood": (120, 1, 2),
}


def mah(spent: dict[str, float]) -> float:
    return sum(ms * MA[state] for state, ms in spent.items() if state in MA) / 3.6e6


def wifi_day(tmp: Path, interval: int, per_upload: int, hours: int) -> dict[str, float]:
    """ms per state over a day of wakes reporting over HTTPS (scaled from `hours`)."""
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
                     "interval_normal_s": interval, "upload_every": per_upload})
        p = api.provision("esp32-energy-01", "energy-01")
        station = VirtualStation(tmp / "flash")
        station.provision(p, server.url, p["config"], ca=pki["ca"])
        fleet.add(station, "energy-01")
        fleet.run_until(START + hours * 3600)
    finally:
        server.stop()
    spent = json.loads((tmp / "flash" / "energy.json").read_text())
    wakes = spent.pop("wakes")
    awake = sum(v for k, v in spent.items() if k != "deep_sleep")
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


def uplinks_per_day(interval: int, per_upload: int) -> float:
    sys.path.insert(0, str(ROOT / "bench"))
    import lorawan as bench_lorawan

    paths.import_firmware()
    from station import config

    return bench_lorawan.day(config.DEFAULTS["lora_dr"], interval, per_upload)[0]


def years(mah_day: float, battery: dict[str, Any]) -> float:
    usable = battery["mah"] * battery["usable"]
    leak = battery["mah"] * battery["self_discharge_pct_per_month"] / 100 * 12 / 365
    return usable / (mah_day + leak) / 365


def figures() -> list[dict[str, Any]]:
    rows = []
    uplink = lora_uplink()
    for name, (interval, per, hours) in PROFILES.items():
        with tempfile.TemporaryDirectory(prefix="mizumori-energy-") as tmp:
            day = wifi_day(Path(tmp), interval, per, hours)
        wakes = day.pop("wakes")
        wifi = mah(day)
        no_radio = {k: v for k, v in day.items() if k != "wifi"}
        n = uplinks_per_day(interval, per)
        lora_day = dict(no_radio)
        for state_, ms in uplink.items():
            lora_day[state_] = lora_day.get(state_, 0) + ms * n
        lora_day["lora_sleep"] = DAY_MS
        rows.append({"profile": name, "wakes": wakes, "uplinks": n,
                     "wifi_mah": wifi, "lora_mah": mah(lora_day),
                     "wifi_parts": {k: mah({k: v}) for k, v in day.items()},
                     "lora_parts": {k: mah({k: v}) for k, v in lora_day.items()}})
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
    flood = {r["profile"]: r for r in rows}["flood"]
    pack = batteries["2x18650"]
    for kind in ("wifi", "lora"):
        days = pack["mah"] * pack["usable"] / flood[f"{kind}_mah"]
        out.append(f"  flood reporting without sun on 2x18650, {kind}: {days:.0f} days "
                   f"(a 2 W panel gives ~{TABLE['solar_2w_mah_per_day']['mah']} mAh/day)")
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
    text = f"""# Power budget

Generated by `python bench/energy.py --write` from the energy ledger: the currents in
[energy.json](energy.json) times the time the simulated board spends in each state while
the real firmware runs (firmware/station/hw/sim.py; LoRaWAN uplinks through the simulated
RAK3172). Design figures from datasheets, not a measurement on a built station.

| state | current | source |
|---|---|---|
{rows}

Per day (mAh by state, then years on each battery with its self-discharge):

```
{chr(10).join(lines)}
```
"""
    (ROOT / "hardware" / "power-budget.md").write_text(text)


if __name__ == "__main__":
    main()
