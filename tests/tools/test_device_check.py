"""`mizumori device check` against a virtual board on the serial rig, through the real
mpremote: a healthy station passes every row (the loop checked with the test as the
calibrator), and a level sensor that is not there fails with a sentence saying what to
check."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from mizumori_tools import check
from mizumori_tools.fleet import Api, ServerProcess
from mizumori_tools.rig import SerialRig
from mizumori_tools.virtual import VirtualStation


def mizumori(*args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mizumori_tools.cli", *args],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


class Station:
    """A flashed, provisioned virtual board on the rig, and the world it lives in."""

    def __init__(self, rig: SerialRig, world: dict[str, Any]):
        self.rig = rig
        self.world = world
        self.port = str(rig.port)

    def power_on(self, **world: Any) -> None:
        """Power-cycle it in a new world; the check then starts in its maintenance window."""
        self.world.clear()
        # realtime: the board's waits pass on the host's clock (mpremote is at the other end)
        self.world.update({"level_mm": 1000, "realtime": True, **world})
        self.rig.power_cut()

    def calibrate(self, ua: int) -> None:
        """Stand in for the loop calibrator: the simulated transducer then sends ua (4 mA at
        the datum, 16 mA per loop_span_mm of water)."""
        spec = json.loads((self.rig.flash / "sim.json").read_text())
        spec["level_mm"] = (ua - 4000) * 5000 // 16000
        (self.rig.flash / "sim.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    tmp = tmp_path_factory.mktemp("check")
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                            "MIZUMORI_SECRET_KEY": "check-secret"}, cwd=tmp)
    server.prepare({"tech": ("technician", "gishi-kawa-2026"),
                    "admin": ("admin", "kawa-kanri-2026")})
    server.start()
    world: dict[str, Any] = {"level_mm": 1000, "realtime": True}
    rig = SerialRig(VirtualStation(tmp / "flash", hardware_id="sim-00000000c4ec"),
                    tmp / "ttyVS0", world=lambda: world, time_scale=600)
    try:
        rig.start()
        Api.login(server.url, "admin", "kawa-kanri-2026").station({
            "code": "taku-09", "name": "check", "site_type": "river", "latitude": 33.28,
            "longitude": 130.11, "mount_height_mm": 5000})
        done = mizumori("device", "flash", "--port", str(rig.port))
        assert done.returncode == 0, done.stderr
        done = mizumori("device", "provision", "--port", str(rig.port), "--server", server.url,
                        "--station", "taku-09", "--user", "tech", "--wifi-ssid", "mizumori-sim",
                        "--wifi-password", "sim-password",
                        env={"MIZUMORI_PASSWORD": "gishi-kawa-2026"})
        assert done.returncode == 0, done.stderr
        yield Station(rig, world)
    finally:
        rig.stop()
        server.stop()


def rows_by_name(rows: list[check.Row]) -> dict[str, check.Row]:
    return {r.check: r for r in rows}


def test_healthy_board_passes(station: Station) -> None:
    station.power_on()
    asked: list[str] = []

    def calibrator(prompt: str) -> None:
        asked.append(prompt)
        station.calibrate(int(float(prompt.split("to ")[1].split(" mA")[0]) * 1000))

    rows = check.run(station.port, [4.0, 12.0, 20.0], ask=calibrator)
    print(check.table(rows))
    failed = [r for r in rows if r.status == "FAIL"]
    assert not failed, check.table(rows)
    got = rows_by_name(rows)
    assert [r.status for r in rows if r.check.startswith("heap")] == ["PASS"] * 3 + ["SKIP"]
    assert "IDF n/a" in got["heap: boot"].result  # the virtual board has no esp32 module
    assert got["heap: TLS handshake"].status == "SKIP"  # an http:// server
    for name in ("sensor rail", "level sensor (a02yyuw)", "air sensor (BME280)", "battery",
                 "rain gauge at rest", "loop at 4.00 mA", "loop at 12.00 mA",
                 "loop at 20.00 mA", "upload after a cold power-on"):
        assert got[name].status == "PASS", check.table(rows)
    assert len(asked) == 3 and "20.00 mA" in asked[2]
    assert "0 readings left" in got["upload after a cold power-on"].result


def test_missing_level_sensor_fails_with_what_to_check(station: Station) -> None:
    station.power_on(faults=["missing"])
    done = mizumori("device", "check", "--port", station.port, "--yes", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["passed"] is False
    got = {r["check"]: r for r in report["checks"]}
    level = got["level sensor (a02yyuw)"]
    assert level["status"] == "FAIL" and level["result"].startswith("no sample")
    assert "does not answer: check its cable and plug" in level["advice"]
    assert [r["check"] for r in report["checks"] if r["status"] == "FAIL"] == [
        "level sensor (a02yyuw)"]

    done = mizumori("device", "check", "--port", station.port, "--yes")  # the table
    assert done.returncode == 1
    assert "FAIL  level sensor (a02yyuw)" in done.stdout and "-> The level sensor" in done.stdout


def test_rows_a_real_board_can_fail() -> None:
    """What the virtual board cannot show: the IDF heap, the stock image, a shunt that clips
    at the ADC's limit, a board that was not power-cycled first."""
    low = check.heap_row("TLS handshake", {"py_free": 60_000, "py_used": 50_000,
                                           "idf_free": 12_000, "idf_largest": 8_000})
    assert low.status == "FAIL" and "IDF heap under 20.0 KB" in low.advice
    assert "largest block 7.8 KB" in low.result
    stock = check.firmware_rows({"machine": "Generic ESP32 module with ESP32",
                                 "micropython": "1.29.0", "version": "0.2.0", "errors": []})
    assert [r.status for r in stock] == ["INFO", "FAIL"]
    assert "firmware/board/README.md" in stock[1].advice
    ours = {"machine": "Mizumori station with ESP32", "micropython": "1.29.0",
            "version": "0.2.0", "errors": []}
    assert [(r.check, r.status) for r in check.firmware_rows({**ours, "code_in_flash": True})
            ] == [("firmware", "INFO"), ("application code", "PASS")]
    files = check.firmware_rows({**ours, "code_in_flash": False})[1]
    assert files.status == "INFO" and "next wake" in files.advice
    clipped = check.loop_row(20.0, {"ua": 16_333, "shunt_ohm": 150}, 0.2)
    assert clipped.status == "FAIL" and "2.45 V limit" in clipped.advice
    assert check.loop_row(12.0, {"ua": 12_150, "shunt_ohm": 100}, 0.2).status == "PASS"
    # without --loop-tolerance: the converter's datasheet error (ESP32 ADC +-60 mV over the
    # 100 ohm shunt = 0.6 mA; an ADS1115 about 0.05 mA at 12 mA)
    assert check.loop_row(12.0, {"ua": 12_500, "shunt_ohm": 100}).status == "PASS"
    assert check.loop_row(12.0, {"ua": 12_700, "shunt_ohm": 100}).status == "FAIL"
    assert check.loop_row(12.0, {"ua": 12_150, "shunt_ohm": 100,
                                 "converter": "ads1115"}).status == "FAIL"
    assert check.loop_row(12.0, {"ua": 12_030, "shunt_ohm": 100,
                                 "converter": "ads1115"}).status == "PASS"
    warm = check.upload_row({"reset_cause": "hard", "queue_before": 0, "queue_after": 0,
                             "uplink": "", "err": "", "slept_ms": 600_000,
                             "clock": 1_700_000_000})
    assert warm.status == "FAIL" and "power-cycle" in warm.advice
