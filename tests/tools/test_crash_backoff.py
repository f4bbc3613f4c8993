"""A broken application (here one that runs out of memory at import) never keeps the board
awake: main.py opens the maintenance window first, notes the crash and deep-sleeps longer
after each failure in a row (1 min, 10 min, then hourly). The real main.py and guard under
the MicroPython unix port, the virtual station's ROM."""

import shutil
from pathlib import Path

from mizumori_tools import paths
from mizumori_tools.virtual import VirtualStation


def test_a_crashing_application_sleeps_longer_each_time(tmp_path: Path) -> None:
    fw = tmp_path / "firmware"
    shutil.copytree(paths.FIRMWARE, fw)
    (fw / "station" / "app.py").write_text('raise MemoryError("memory allocation failed")\n')
    station = VirtualStation(tmp_path / "flash", firmware=fw)
    (station.flash / "config.json").write_text('{"maintenance_s": 0}')
    world = {"level_mm": 1000}
    sleeps = [station.wake(world, 800_000_000 + i * 4000, reset_cause="deepsleep")
              for i in range(4)]
    assert [s[0] for s in sleeps if s] == [60, 600, 3600, 3600]
    assert "MemoryError" in (station.flash / "crash.txt").read_text()
    assert station.state()["crashes"] == 4 and "MemoryError" in station.state()["err"]
    assert station.state()["err"].count("crash:") == 1  # said once, not once a crash
    # repaired (an update, a reflash): the next wake is an ordinary one and the count resets;
    # its err carries the crash (first), for a report to tell the server (this station has
    # none: tests/firmware/test_carried_errors.py has one)
    (fw / "station" / "app.py").write_text((paths.FIRMWARE / "station" / "app.py").read_text())
    assert station.wake(world, 800_020_000, reset_cause="deepsleep") is not None
    assert station.state()["crashes"] == 0
    assert station.state()["err"].startswith("crash: MemoryError")


def test_a_boot_py_failure_still_runs_main_py(tmp_path: Path) -> None:
    """The port runs main.py only if boot.py succeeded: a damaged slot pointer (here a trial
    whose boot count is not a number) must not leave the board awake at the REPL."""
    station = VirtualStation(tmp_path / "flash")
    station.install_firmware()
    (station.flash / "config.json").write_text('{"maintenance_s": 0}')
    (station.flash / "slot.json").write_text('{"good": "a", "trial": "b", "boots": "x"}')
    slept = station.wake({"level_mm": 1000}, 800_000_000)
    assert slept is not None and slept[0] >= 500  # an ordinary wake, then deep sleep
    assert station.state()["wakes"] == 1
