"""Virtual stations for tests, the demo and `mizumori sim fleet`: the real firmware with the
sim board, each wake a MicroPython process (or, for large fleets, an in-process CPython wake),
driven through a scenario of the simulated world."""

import contextlib
import functools
import io
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mizumori_tools import paths

SCRIPT = Path(__file__).with_name("virtual_station.py")
SCENARIOS = Path(__file__).with_name("scenarios")
ESP32_EPOCH = 946684800  # the sim board counts seconds from 2000, like an ESP32
# Exit statuses of the ROM (virtual_station.py): a board that would stay awake for ever, and
# a watchdog reset (the board boots again at once).
AWAKE = 4
WDT = 5
SIM_SSID = "mizumori-sim"  # the access point of the simulated world (station/hw/sim.py)


def interpolate(points: list[list[float]], h: float) -> float:
    if h <= points[0][0]:
        return points[0][1]
    for (h0, v0), (h1, v1) in zip(points, points[1:], strict=False):
        if h <= h1:
            return v0 + (v1 - v0) * (h - h0) / (h1 - h0)
    return points[-1][1]


@dataclass
class Scenario:
    """The simulated world over time (hours from the start), from a JSON file:
    level_mm / air_temp_c / battery_mv as [[hour, value], ...] (linear in between),
    rain_tips_per_h, faults [{from_h, to_h, fault}] and outages [{from_h, to_h}]."""

    name: str
    duration_h: float
    spec: dict[str, Any] = field(repr=False)

    @classmethod
    def load(cls, name: str) -> "Scenario":
        path = Path(name) if name.endswith(".json") else SCENARIOS / f"{name}.json"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.json")))
            raise SystemExit(f"no scenario {name!r} (known: {known})")
        spec = json.loads(path.read_text())
        return cls(path.stem, float(spec["duration_h"]), spec)

    def rain_tips(self, h0: float, h1: float) -> int:
        """Tips of the rain gauge between two moments (hours)."""
        rate = interpolate(self.spec.get("rain_tips_per_h", [[0, 0]]), h0)
        return int(rate * max(0.0, h1 - h0))

    def world(self, h: float, level_offset_mm: int = 0) -> dict[str, Any]:
        s = self.spec
        faults = [f["fault"] for f in s.get("faults", []) if f["from_h"] <= h < f["to_h"]]
        if any(o["from_h"] <= h < o["to_h"] for o in s.get("outages", [])):
            faults.append("link_down")
        return {
            "level_mm": int(interpolate(s["level_mm"], h)) + level_offset_mm,
            "air_temp_c": interpolate(s.get("air_temp_c", [[0, 20.0]]), h),
            "battery_mv": int(interpolate(s.get("battery_mv", [[0, 3900]]), h)),
            "faults": faults,
        }


@functools.cache
def _built_firmware() -> dict[str, Path]:
    """The firmware as `mizumori device flash` puts it on a board, built once per process."""
    import atexit
    import shutil
    import tempfile

    from mizumori_tools import device

    tmp = tempfile.mkdtemp(prefix="mizumori-build-")
    atexit.register(shutil.rmtree, tmp, True)
    return device.build(Path(tmp))


class VirtualStation:
    """One station: its flash directory, and wakes run as MicroPython processes."""

    def __init__(self, flash: Path, firmware: Path | None = paths.FIRMWARE, seed: int = 1,
                 hardware_id: str = "sim-000000000001"):
        self.flash = flash
        self.firmware = firmware
        self.seed = seed
        self.hardware_id = hardware_id
        # UART id -> a rig part's pseudo-terminal, or "tcp:HOST:PORT": a part on the board's
        # clock (netserver.ModemLink)
        self.uarts: dict[str, str] = {}
        self.ext0 = False  # the next wake is a rain gauge's (ext0)
        self.wdt_resets = 0  # watchdog resets in a row
        # the board's waits on the host's clock, this much faster (a part on a serial device
        # sped up alike); None: the board's default
        self.realtime: float | None = None
        flash.mkdir(parents=True, exist_ok=True)

    def install_firmware(self) -> None:
        """Put the firmware into the flash as `mizumori device flash` does (slot a/, compiled),
        and boot from there from now on instead of from firmware/ (needed for OTA)."""
        import shutil

        for board_path, local in _built_firmware().items():
            dest = self.flash / board_path
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, dest)
        self.firmware = None

    def provision(self, device: dict[str, Any], server: str, config: dict[str, Any],
                  ca: Path | None = None, release_key: str | None = None,
                  lorawan: dict[str, str] | None = None, clock: int | None = None) -> None:
        """Write what `mizumori device provision` writes onto a board (ca: the CA
        certificate an https:// server is verified with; release_key: the public key, hex,
        updates must be signed with; lorawan: the OTAA dev_eui, app_eui, app_key)."""
        if release_key is not None:
            (self.flash / "release.pub").write_text(release_key)
        if ca is not None:
            (self.flash / "ca.pem").write_bytes(ca.read_bytes())
        (self.flash / "secrets.json").write_text(json.dumps({
            "device_id": device["device_id"], "secret": device["secret"], "server": server,
            "ca": "ca.pem" if ca else None, "lorawan": lorawan,
            "wifi": {"ssid": SIM_SSID, "password": "virtual-station"}}))
        (self.flash / "config.json").write_text(json.dumps({**config, "maintenance_s": 0}))
        self.set_clock(clock if clock is not None else int(time.time()) - ESP32_EPOCH)
        paths.import_firmware()
        from station.flashqueue import FlashQueue

        FlashQueue(str(self.flash / "queue")).start_after(int(device["last_seq"]))

    def set_clock(self, t: int) -> None:
        """What the technician's computer does when flashing and provisioning
        (device.set_clock): the RTC set to t (ESP32-epoch seconds) and t kept in flash as the
        clock floor."""
        (self.flash / "clock.json").write_text(json.dumps({"floor": t, "adj": []}))
        (self.flash / "rtc.clock").write_text(f"{t} {t}")

    def wake(self, world: dict[str, Any], now: int, rain_tips: int = 0,
             reset_cause: str = "deepsleep", kill_after_s: float | None = None,
             cut_after_writes: int | None = None) -> tuple[int, int] | None:
        """Run one wake; (sleep seconds, station clock) or None if its power was cut:
        killed after kill_after_s, or before its (cut_after_writes+1)th flash change."""
        self.write_world(world, now, rain_tips, reset_cause, cut_after_writes)
        rom = [paths.micropython(), str(SCRIPT), str(self.flash)]
        proc = subprocess.Popen(
            rom + ([str(self.firmware)] if self.firmware else []),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True)
        try:
            out, err = proc.communicate(timeout=kill_after_s if kill_after_s else 120)
        except subprocess.TimeoutExpired:
            proc.kill()  # a power cut at an arbitrary moment
            proc.communicate()
            return None
        if cut_after_writes is not None and proc.returncode == 3:
            return None
        if proc.returncode == WDT:  # the chip resets and boots at once, RTC memory kept
            self.wdt_resets += 1
            if self.wdt_resets % 10 == 0:
                raise RuntimeError(f"{self.flash}: 10 watchdog resets in a row: {err[-500:]}")
            return self.wake(world, now, 0, "wdt", kill_after_s)
        self.wdt_resets = 0
        slept = self.took_sleep()
        if slept is None:
            raise RuntimeError(f"station did not go to sleep: {out[-500:]} {err[-1000:]}")
        return slept

    def write_world(self, world: dict[str, Any], now: int, rain_tips: int,
                    reset_cause: str, cut_after_writes: int | None = None) -> None:
        spec = {"uarts": self.uarts, **world, "now": now, "rain_tips": rain_tips,
                "reset_cause": reset_cause, "ext0": self.ext0 and reset_cause == "deepsleep",
                "seed": self.seed, "hardware_id": self.hardware_id,
                "cut_after_writes": cut_after_writes,
                **({"realtime": self.realtime} if self.realtime else {})}
        (self.flash / "sim.json").write_text(json.dumps(spec))

    def took_sleep(self) -> tuple[int, int] | None:
        """(sleep seconds, station clock) from the wake that just ended, if it slept."""
        path = self.sleep_file
        if not path.exists():
            return None
        # "ms clock [ext0 awake_ms]": the next wake comes awake_ms + ms after this one began
        fields = [int(x) for x in path.read_text().split()]
        path.unlink()
        # A rain wake armed on a switch already closed wakes the board again at once (ext0 is
        # level-triggered): the next wake is a rain wake.
        self.ext0 = len(fields) > 2 and fields[2] == 1
        awake_ms = fields[3] if len(fields) > 3 else 0
        return (fields[0] + awake_ms) // 1000, fields[1]

    @property
    def sleep_file(self) -> Path:
        return self.flash / "sleep.ms"

    def state(self) -> dict[str, Any]:
        """The state in RTC memory as the firmware reads it (state.load: RTC memory holds
        only what differs from the defaults); {} before the first wake."""
        rtc = self.flash / "rtc.bin"
        if not rtc.exists():
            return {}
        paths.import_firmware()
        from station import state

        return {**state.defaults(), **json.loads(rtc.read_bytes())}


class CPythonStation(VirtualStation):
    """The same firmware and sim board run inside this process under CPython, for large
    fleets where a MicroPython process per wake costs too much. A wake here cannot be cut
    short, so power cuts (kill_after_s, cut_after_writes) are not simulated."""

    def wake(self, world: dict[str, Any], now: int, rain_tips: int = 0,
             reset_cause: str = "deepsleep", kill_after_s: float | None = None,
             cut_after_writes: int | None = None) -> tuple[int, int] | None:
        paths.import_firmware()
        from station import app

        self.write_world(world, now, rain_tips, reset_cause)
        cwd = os.getcwd()
        os.chdir(self.flash)  # the firmware's paths are relative to its filesystem's root
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                app.main()
        except SystemExit:  # the sim board's deep sleep
            pass
        finally:
            os.chdir(cwd)
        slept = self.took_sleep()
        if slept is None:
            raise RuntimeError(f"{self.flash}: the station did not go to sleep")
        return slept

