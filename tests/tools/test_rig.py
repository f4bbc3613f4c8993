"""The rig's hardware edge: the A02YYUW streaming real frames on its own pseudo-terminal,
and a virtual station on the rig reading it, driven wake by wake."""

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mizumori_tools.peripherals import UltrasonicSensorPty
from mizumori_tools.rig import RigBusy, SerialRig
from mizumori_tools.virtual import VirtualStation
from station.drivers.a02yyuw import FrameParser
from station.hw.sim_serial import SerialPortUART


def read_for(path: str, seconds: float) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    out = b""
    try:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if select.select([fd], [], [], left)[0]:
                out += os.read(fd, 256)
    finally:
        os.close(fd)
    return out


@pytest.mark.parametrize("world, expect", [
    ({"level_mm": 1500, "mount_mm": 5000}, "frames"),
    ({"level_mm": 1500, "mount_mm": 5000, "faults": ["missing"]}, "silence"),
    ({"level_mm": 1500, "mount_mm": 5000, "faults": ["garbage"]}, "noise"),
])
def test_sensor_streams_like_an_a02yyuw(world: dict[str, Any], expect: str) -> None:
    sensor = UltrasonicSensorPty(lambda: world)
    try:
        data = read_for(sensor.path, 0.6)
    finally:
        sensor.close()
    parser = FrameParser()
    values = parser.feed(data)
    if expect == "frames":  # about one frame per 100 ms, 3500 mm away +- the noise
        assert len(data) % 4 == 0 and 3 <= len(values) <= 7, data
        assert all(abs(v - 3500) <= 3 for v in values) and parser.bad_bytes == 0
    elif expect == "silence":
        assert data == b""
    else:
        assert len(data) >= 16 and len(values) <= 1


def test_firmware_uart_reads_the_pty() -> None:
    sensor = UltrasonicSensorPty(lambda: {"level_mm": 4000, "mount_mm": 5000})
    try:
        uart = SerialPortUART(sensor.path)
        time.sleep(0.35)
        assert uart.any() == 1
        got = uart.read(8)
        assert len(got) == 8 and FrameParser().feed(got)
        uart.read()  # drains only what is there: returns without blocking
        assert uart.any() == 0
    finally:
        sensor.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SerialRig]:
    station = VirtualStation(tmp_path / "flash")
    (station.flash / "config.json").write_text(json.dumps({"maintenance_s": 0}))
    r = SerialRig(station, tmp_path / "port", run_from_flash=False)
    yield r
    r.stop()


def test_driven_station_measures_through_the_pty(rig: SerialRig) -> None:
    slept = rig.wake({"level_mm": 2000, "mount_mm": 5000}, 800_000_000, 0, "power_on")
    # never provisioned, so no clock floor: after power-on the RTC counts from 2000-01-01
    assert slept is not None and 0 <= slept[1] < 600
    spec = json.loads((rig.flash / "sim.json").read_text())
    assert spec["uarts"] == {"2": rig.sensor.path}  # the level came over the PTY
    assert abs(rig.station.state()["level"] - 2000) <= 3

    rig.wake({"level_mm": 2100, "mount_mm": 5000, "faults": ["missing"]}, 800_000_600)
    assert "sensor_missing" in rig.station.state()["err"]

    assert rig.wake({"level_mm": 2100, "mount_mm": 5000}, 800_001_200,
                    kill_after_s=0.02) is None  # a power cut mid-wake
    assert rig.proc is not None and rig.proc.poll() is not None


# --- the technician's hands, and one rig per port and flash (issue 18) ----------------------

def mizumori(*args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "mizumori_tools.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_a_second_rig_on_the_same_port_or_flash_is_refused(tmp_path: Path) -> None:
    first = SerialRig(VirtualStation(tmp_path / "flash"), tmp_path / "port")
    try:
        target = os.readlink(tmp_path / "port")
        with pytest.raises(RigBusy, match="flash directory belongs to another rig"):
            SerialRig(VirtualStation(tmp_path / "flash"), tmp_path / "port2")
        with pytest.raises(RigBusy, match="port belongs to another rig"):
            SerialRig(VirtualStation(tmp_path / "flash2"), tmp_path / "port")
        assert os.readlink(tmp_path / "port") == target  # the first one's link untouched
        assert not (tmp_path / "port2").exists()
    finally:
        first.stop()
    SerialRig(VirtualStation(tmp_path / "flash"), tmp_path / "port").stop()  # free again


def info_json(port: Path) -> dict[str, Any]:
    done = mizumori("device", "info", "--port", str(port), "--json")
    assert done.returncode == 0, done.stderr
    state: dict[str, Any] = json.loads(done.stdout)
    return state


def test_reset_service_button_and_power_cycle(tmp_path: Path) -> None:
    """Reset keeps RTC memory (the last error is still there to read); the service button
    wakes a sleeping board into its maintenance window; a power cycle loses RTC memory."""
    station = VirtualStation(tmp_path / "flash")
    (station.flash / "config.json").write_text(json.dumps({"maintenance_s": 30}))
    (station.flash / "rtc.bin").write_text(json.dumps({"err": "cycle: MemoryError()",
                                                       "reset": "wdt", "wakes": 7}))
    rig = SerialRig(station, tmp_path / "port", world=lambda: {"realtime": True},
                    time_scale=1, run_from_flash=False)
    try:
        rig.start("deepsleep")  # no technician: it measures and sleeps (10 real minutes)
        deadline = time.time() + 30
        while rig._board_fd is not None and time.time() < deadline:
            time.sleep(0.2)
        assert rig._board_fd is None, "the board did not go to sleep"
        asleep = mizumori("device", "info", "--port", str(rig.port))
        assert asleep.returncode == 2 and "asleep" in asleep.stderr

        rig.service_button()
        state = info_json(rig.port)
        assert state["boot_cause"] == "deepsleep"  # a wake, not a reset: RTC memory kept
        assert state["reset_cause"] == "wdt"

        rig.reset()
        state = info_json(rig.port)
        assert state["boot_cause"] == "hard" and state["reset_cause"] == "wdt"

        rig.power_cycle(0.2)
        assert json.loads((rig.flash / "sim.json").read_text())["reset_cause"] == "power_on"
        state = info_json(rig.port)
        assert state["boot_cause"] == "power_on"
        assert state["last_error"] == "" and state["reset_cause"] != "wdt"  # RTC memory lost
    finally:
        rig.stop()


def test_selftest_shows_the_water_level_and_not_provisioned_first(tmp_path: Path) -> None:
    station = VirtualStation(tmp_path / "flash")
    (station.flash / "config.json").write_text(json.dumps({"maintenance_s": 30}))
    rig = SerialRig(station, tmp_path / "port", world=lambda: {"level_mm": 1800},
                    time_scale=1, run_from_flash=False)
    try:
        rig.start()
        done = mizumori("device", "selftest", "--port", str(rig.port))
        assert done.returncode == 0, done.stderr
        table = {line[2:18].strip(): line[19:] for line in done.stdout.splitlines()
                 if line[2:18].strip()}
        level = table["water level"]
        assert level.startswith("1.8") and "m above the station datum" in level, level
        assert "mount height 5000 mm - distance to the water" in level
        assert "staff gauge" in level
        assert table["samples"].endswith("mm from the sensor face")
        assert table["flags"] == "none" and table["battery"].endswith(" mV")
        assert table["problems"].startswith("not provisioned: run `mizumori device provision`")
        done = mizumori("device", "selftest", "--port", str(rig.port), "--json")
        report = json.loads(done.stdout)
        assert abs(report["level_mm"] - 1800) <= 5 and report["provisioned"] is False
        assert report["problems"][0].startswith("not provisioned")
    finally:
        rig.stop()


def test_mizumori_rig_takes_actions_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port, flash = tmp_path / "ttyVS0", tmp_path / "flash"
    rig = subprocess.Popen([sys.executable, "-m", "mizumori_tools.cli", "rig", "--port",
                            str(port), "--flash", str(flash)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert rig.stdout is not None and rig.stdin is not None
        assert rig.stdout.readline().startswith(f"virtual station on {port}")
        assert "r Enter: press reset" in rig.stdout.readline()
        second = mizumori("rig", "--port", str(port), "--flash", str(tmp_path / "other"))
        assert second.returncode == 2 and "belongs to another rig" in second.stderr
        assert port.is_symlink()
        rig.stdin.write("p\n")
        rig.stdin.flush()
        assert rig.stdout.readline().startswith("power cycled: RTC memory lost")
        rig.send_signal(signal.SIGTERM)
        assert rig.wait(15) == 0, rig.stderr.read() if rig.stderr else ""
        assert not port.exists() and not port.is_symlink()  # the link cleaned up
    finally:
        if rig.poll() is None:
            rig.kill()
            rig.wait()
