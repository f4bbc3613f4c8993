"""The technician's path on the serial-loopback rig: a blank virtual board on a
pseudo-terminal is flashed and provisioned with `mizumori device` through the real mpremote,
then wakes, measures and reports to a live server."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mizumori_tools.fleet import Api, ServerProcess
from mizumori_tools.rig import SerialRig
from mizumori_tools.virtual import VirtualStation


def mizumori(*args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mizumori_tools.cli", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    s = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
                       "MIZUMORI_SECRET_KEY": "rig-secret"}, cwd=tmp_path)
    s.prepare({"tech": ("technician", "gishi-kawa-2026"), "admin": ("admin", "kawa-kanri-2026")})
    s.start()
    yield s
    s.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SerialRig]:
    station = VirtualStation(tmp_path / "flash", hardware_id="sim-0000000a11ce")
    r = SerialRig(station, tmp_path / "ttyVS0", time_scale=600)  # 10 min sleep = 1 s
    r.start()
    yield r
    r.stop()


def test_flash_provision_and_report(server: ServerProcess, rig: SerialRig) -> None:
    port = str(rig.port)
    admin = Api.login(server.url, "admin", "kawa-kanri-2026")
    admin.station({"code": "taku-01", "name": "牛津川 多久橋", "site_type": "river",
                   "latitude": 33.2869, "longitude": 130.1133, "mount_height_mm": 5000,
                   "upload_every": 1})

    done = mizumori("device", "flash", "--port", port, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["copied"] > 20 and result["unchanged"] == 0
    again = json.loads(mizumori("device", "flash", "--port", port, "--json").stdout)
    assert again["copied"] == 0  # only what changed is copied

    done = mizumori("device", "provision", "--port", port, "--json", "--server", server.url,
                    "--station", "taku-01", "--user", "tech", "--wifi-ssid", "mizumori-sim",
                    "--wifi-password", "sim-password",
                    env={"MIZUMORI_PASSWORD": "gishi-kawa-2026"})
    assert done.returncode == 0, done.stderr
    provisioned = json.loads(done.stdout)
    assert provisioned["hardware_id"] == "sim-0000000a11ce"
    on_board = json.loads((rig.station.flash / "secrets.json").read_text())
    assert on_board["device_id"] == provisioned["device_id"] and len(on_board["secret"]) == 64

    info = mizumori("device", "info", "--port", port)
    assert info.returncode == 0 and "sim-0000000a11ce" in info.stdout

    rig.power_cut()  # power-cycle: the board runs the flashed, provisioned firmware
    started = time.time()
    points: list[dict[str, object]] = []
    while time.time() - started < 90 and len(points) < 3:
        time.sleep(1)
        points = admin.get("/api/stations/taku-01/readings", start=int(started) - 60,
                           end=int(time.time()) + 60, max_points=100000)["points"]
    assert len(points) >= 3, rig.station.state()
    for p in points:  # measured on the board's clock, stored in the server's time
        assert started - 30 <= int(str(p["t"])) <= time.time() + 5
        assert p["level_mm"] is not None and abs(int(str(p["level_mm"])) - 1000) < 20

    # re-provisioned for LoRaWAN: the module's OTAA keys on the board, its DevEUI on the server
    rig.power_cut()  # awake again, in its maintenance window
    done = mizumori("device", "provision", "--port", port, "--json", "--server", server.url,
                    "--station", "taku-01", "--user", "tech", "--lorawan",
                    "AC1F09FFFE0A1B2C:ac1f09fff8680000:2b7e151628aed2a6abf7158809cf4f3c",
                    env={"MIZUMORI_PASSWORD": "gishi-kawa-2026"})
    assert done.returncode == 0, done.stderr
    on_board = json.loads((rig.station.flash / "secrets.json").read_text())
    assert on_board["lorawan"] == {"dev_eui": "ac1f09fffe0a1b2c", "app_eui": "ac1f09fff8680000",
                                   "app_key": "2b7e151628aed2a6abf7158809cf4f3c"}
    assert json.loads((rig.station.flash / "config.json").read_text())["transport"] == "lorawan"
    device = admin.get(f"/api/devices/{json.loads(done.stdout)['device_id']}")
    assert (device["transport"], device["dev_eui"]) == ("lorawan", "ac1f09fffe0a1b2c")


def test_clear_errors(tmp_path: Path, rig: SerialRig) -> None:
    done = mizumori("device", "info", "--port", str(tmp_path / "nope"))
    assert done.returncode == 2 and "no such port" in done.stderr
    done = mizumori("device", "provision", "--port", str(rig.port), "--server",
                    "http://127.0.0.1:9", "--station", "x", "--token", "t",
                    "--hardware-id", "sim-1")
    assert done.returncode == 2 and "--wifi-ssid" in done.stderr  # no way to report
    done = mizumori("device", "provision", "--port", str(rig.port), "--server",
                    "http://127.0.0.1:9", "--station", "x", "--token", "t",
                    "--hardware-id", "sim-1", "--wifi-ssid", "w", "--wifi-password", "p")
    assert done.returncode == 2 and "unreachable" in done.stderr
    done = mizumori("device", "provision", "--port", str(rig.port), "--server",
                    "http://127.0.0.1:9", "--station", "x", "--token", "t", "--lorawan",
                    "AC1F09FFFE0A1B2C:short:key")
    assert done.returncode == 2 and "DEVEUI:JOINEUI:APPKEY" in done.stderr
    done = mizumori("device", "selftest", "--port", str(rig.port))  # a blank board
    assert done.returncode == 2 and "does not run Mizumori firmware" in done.stderr


def test_selftest_and_asleep(tmp_path: Path) -> None:
    """The repo's firmware on a board that sleeps ten real minutes after each wake."""
    station = VirtualStation(tmp_path / "flash")
    (station.flash / "config.json").write_text(json.dumps({"maintenance_s": 3}))
    rig = SerialRig(station, tmp_path / "port", world=lambda: {"level_mm": 1800},
                    time_scale=1, run_from_flash=False)
    try:
        rig.start()  # power-on: a maintenance window; the technician catches it
        done = mizumori("device", "selftest", "--port", str(rig.port), "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        samples = report["samples_mm"]
        assert len(samples) == 7 and all(abs(s - 3200) <= 3 for s in samples)  # 5 m mount
        assert report["faults"] == [] and isinstance(report["battery_mv"], int)
        rig.power_cut()  # a boot without the technician: it measures and sleeps
        deadline = time.time() + 30
        while not (rig.flash / "rtc.bin").exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        done = mizumori("device", "info", "--port", str(rig.port))
        assert done.returncode == 2 and "does not answer (asleep?)" in done.stderr
    finally:
        rig.stop()


def test_info_shows_the_last_error_and_reset_cause(tmp_path: Path) -> None:
    """What the station kept in RTC memory after a watchdog reset, read in the maintenance
    window of the next boot: as a table with the cause in words, and as JSON."""
    station = VirtualStation(tmp_path / "flash")
    (station.flash / "config.json").write_text(json.dumps({"maintenance_s": 60}))
    error = "upload: OSError(-9984) 水位\x1b[2J"
    (station.flash / "rtc.bin").write_text(json.dumps({"err": error, "reset": "wdt",
                                                       "wakes": 7}))
    # realtime: the board's waits pass on the host's clock (mpremote is at the other end)
    rig = SerialRig(station, tmp_path / "port", world=lambda: {"realtime": True},
                    time_scale=1, run_from_flash=False)
    try:
        rig.start("hard")  # the EN button: a maintenance window, RTC memory kept
        done = mizumori("device", "info", "--port", str(rig.port))
        assert done.returncode == 0, done.stderr
        table = dict(line.split(None, 1) for line in done.stdout.strip().splitlines())
        assert table["reset_cause"].startswith("wdt (WATCHDOG")
        assert table["boot_cause"] == "hard (reset (EN button))"
        assert table["last_error"] == "upload: OSError(-9984) 水位\\x1b[2J"  # no escapes
        assert table["last_upload_error"] == "none" and table["wakes"] == "7 since power-on"
        done = mizumori("device", "info", "--port", str(rig.port), "--json")
        assert done.returncode == 0, done.stderr
        state = json.loads(done.stdout)
        assert (state["reset_cause"], state["boot_cause"]) == ("wdt", "hard")
        assert state["last_error"] == error and state["last_upload_error"] == ""
    finally:
        rig.stop()
