"""The rig's hardware edge: the A02YYUW streaming real frames on its own pseudo-terminal,
and a virtual station on the rig reading it, driven wake by wake."""

import json
import os
import select
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mizumori_tools.peripherals import UltrasonicSensorPty
from mizumori_tools.rig import SerialRig
from mizumori_tools.virtual import VirtualStation
from station.drivers.a02yyuw import FrameParser
from station.hw.sim import SerialPortUART


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
