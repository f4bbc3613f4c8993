"""The firmware image's _boot.py when the filesystem will not mount (defect #4). The stock
image stays awake for ever, both ways inisetup.py has; ours (firmware/board/_boot.py) formats
it, leaves a marker, deep-sleeps with a growing backoff while there is nothing to run, and
still lets a technician in. The virtual station's ROM runs the real _boot.py under the
MicroPython unix port; only the flash partition, vfs and esp32 are fakes, at the hardware
edge (tools/mizumori_tools/virtual_station.py)."""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mizumori_tools import paths
from mizumori_tools.rig import SerialRig
from mizumori_tools.virtual import SCRIPT, VirtualStation

NOW = 800_000_000
RTC = b'{"counter": 41, "wakes": 7}'  # the application's RTC memory: never touched by _boot.py


def boot(flash: Path, **spec: Any) -> subprocess.CompletedProcess[str]:
    """One boot of the virtual board, as the rig boots it (without a terminal)."""
    (flash / "sim.json").write_text(json.dumps({"now": NOW, "reset_cause": "deepsleep",
                                                **spec}))
    return subprocess.run([paths.micropython(), str(SCRIPT), str(flash)], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def slept_s(flash: Path) -> int | None:
    path = flash / "sleep.ms"
    if not path.exists():
        return None
    ms = int(path.read_text().split()[0])
    path.unlink()
    return ms // 1000


def marker(flash: Path) -> dict[str, Any]:
    return dict(json.loads((flash / "fs_reformatted").read_text()))


@pytest.fixture
def flash(tmp_path: Path) -> Path:
    """A flashed, provisioned station with readings queued and state in RTC memory."""
    station = VirtualStation(tmp_path / "flash")
    station.install_firmware()
    (station.flash / "secrets.json").write_text(json.dumps({
        "device_id": "d1", "secret": "00" * 32, "server": "http://127.0.0.1:9", "ca": None,
        "wifi": None, "lorawan": None}))
    (station.flash / "config.json").write_text(json.dumps({"maintenance_s": 0,
                                                           "upload_every": 100}))
    (station.flash / "queue").mkdir()
    (station.flash / "queue" / "s1").write_bytes(b"\xa5" * 40)
    (station.flash / "rtc.bin").write_bytes(RTC)
    return station.flash


def test_stock_image_loops_awake_on_a_corrupt_filesystem(flash: Path) -> None:
    done = boot(flash, image="stock", fs="corrupt", fs_first_sector_erased=False)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "The filesystem appears to be corrupted" in done.stdout
    assert "fs_corrupted" in (flash / "awake.txt").read_text()
    assert slept_s(flash) is None  # never sleeps
    assert (flash / "secrets.json").exists()  # nothing was formatted either


def test_stock_image_formats_and_waits_at_the_repl(flash: Path) -> None:
    done = boot(flash, image="stock", fs="corrupt", fs_first_sector_erased=True)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "Performing initial setup" in done.stdout
    assert "REPL" in (flash / "awake.txt").read_text()
    assert slept_s(flash) is None
    left = sorted(p.name for p in flash.iterdir())
    assert left == ["awake.txt", "boot.py", "rtc.bin", "sim.json"]  # secrets, queue: gone
    assert (flash / "boot.py").read_text().startswith("# This file is executed on every boot")


@pytest.mark.parametrize("erased, why", [(False, "corrupt"), (True, "blank")])
def test_mizumori_image_formats_and_sleeps_longer_each_boot(flash: Path, erased: bool,
                                                            why: str) -> None:
    done = boot(flash, image="mizumori", fs="corrupt", fs_first_sector_erased=erased)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"filesystem {why}: formatted" in done.stdout
    assert slept_s(flash) == 60
    assert marker(flash) == {"why": why, "boots": 1}
    assert not (flash / "secrets.json").exists() and not (flash / "queue").exists()
    backoff = []
    for _ in range(3):  # the filesystem mounts now, but there is nothing to run
        done = boot(flash, image="mizumori")
        assert done.returncode == 0, done.stdout + done.stderr
        backoff.append(slept_s(flash))
    assert backoff == [600, 3600, 3600]
    assert marker(flash) == {"why": why, "boots": 4}
    assert (flash / "rtc.bin").read_bytes() == RTC


def test_mizumori_image_runs_the_application(flash: Path) -> None:
    """A healthy board runs main.py as with the stock image; after a reformat, flashing and
    provisioning again ends the backoff, and the marker stays for the application."""
    done = boot(flash, image="mizumori")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mizumori: seq" in done.stdout  # the application's wake
    slept = slept_s(flash)
    assert slept is not None and 500 <= slept <= 600  # its normal interval, less the wake
    assert not (flash / "fs_reformatted").exists()

    boot(flash, image="mizumori", fs="corrupt")
    assert slept_s(flash) == 60
    station = VirtualStation(flash)
    station.install_firmware()
    (flash / "secrets.json").write_text(json.dumps({
        "device_id": "d1", "secret": "00" * 32, "server": "http://127.0.0.1:9", "ca": None,
        "wifi": None, "lorawan": None}))
    (flash / "config.json").write_text(json.dumps({"maintenance_s": 0, "upload_every": 100}))
    done = boot(flash, image="mizumori")
    assert "mizumori: seq" in done.stdout, done.stdout + done.stderr
    slept = slept_s(flash)
    assert slept is not None and slept not in (60, 600, 3600)
    assert marker(flash) == {"why": "corrupt", "boots": 1}


def test_mizumori_image_after_a_power_on_waits_then_sleeps(flash: Path) -> None:
    started = time.monotonic()
    done = boot(flash, image="mizumori", fs="corrupt", reset_cause="power_on")
    assert "Ctrl-C within 10 s" in done.stdout
    assert 9 <= time.monotonic() - started < 60  # the window, then sleep: never the REPL
    assert slept_s(flash) == 60


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SerialRig]:
    station = VirtualStation(tmp_path / "flash")
    station.install_firmware()
    r = SerialRig(station, tmp_path / "port",
                  world=lambda: {"image": "mizumori", "fs": "corrupt"})
    yield r
    r.stop()


def test_technician_gets_in_after_a_reformat(rig: SerialRig) -> None:
    """Power-on after the filesystem was lost: mpremote's Ctrl-C within the window leaves the
    board at the REPL, formatted and marked, ready to be flashed and provisioned."""
    rig.start()
    mpremote = str(Path(sys.executable).with_name("mpremote"))
    done = subprocess.run([mpremote, "connect", str(rig.port), "resume", "exec",
                           "import os; print(sorted(os.listdir()))"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    listing = done.stdout.strip().splitlines()[-1]
    assert "'fs_reformatted'" in listing and "main.py" not in listing
    assert not rig.station.sleep_file.exists()
    assert json.loads((rig.flash / "fs_reformatted").read_text())["why"] == "corrupt"
