"""Field calibration against the staff gauge on the rig, end to end (issue 20): the
technician's `mizumori device calibrate` measures on a virtual board through the real
mpremote, writes the offset into its config.json and records it on the server; the
server's history shows who, when, the staff gauge, the reading and the residual; the
commissioning check (`device selftest`/`check --staff-gauge`) fails beyond 2 cm saying by
how much, and passes after the calibration. Bad input is one clear line."""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import one_clear_line
from mizumori_tools import check
from mizumori_tools.fleet import Api, ServerProcess
from mizumori_tools.rig import SerialRig
from mizumori_tools.virtual import VirtualStation

TECH = {"MIZUMORI_PASSWORD": "gishi-kawa-2026"}
SPEED = 10


def mizumori(*args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mizumori_tools.cli", *args],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SerialRig, Api, str]]:
    tmp = tmp_path_factory.mktemp("calibrate")
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                            "MIZUMORI_SECRET_KEY": "calibrate-secret"}, cwd=tmp)
    server.prepare({"tech": ("technician", "gishi-kawa-2026"),
                    "admin": ("admin", "kawa-kanri-2026")})
    server.start()
    # The board's waits (the 20 s windows) pass 10x faster on the host, its A02YYUW streaming
    # 10x faster too (peripherals.py); its maintenance window made 60 s (6 s on the host) so
    # that each command still finds it.
    world: dict[str, Any] = {"level_mm": 1000, "realtime": SPEED}
    board = SerialRig(VirtualStation(tmp / "flash", hardware_id="sim-00000000ca1b"),
                      tmp / "ttyVS0", world=lambda: world, time_scale=600)
    try:
        board.start()
        admin = Api.login(server.url, "admin", "kawa-kanri-2026")
        admin.station({"code": "taku-30", "name": "calibrate", "site_type": "river",
                       "latitude": 33.28, "longitude": 130.11, "mount_height_mm": 5000})
        done = mizumori("device", "flash", "--port", str(board.port))
        assert done.returncode == 0, done.stderr
        done = mizumori("device", "provision", "--port", str(board.port), "--server",
                        server.url, "--station", "taku-30", "--user", "tech", "--wifi-ssid",
                        "mizumori-sim", "--wifi-password", "sim-password", env=TECH)
        assert done.returncode == 0, done.stderr
        config = board.flash / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "maintenance_s": 60}))
        board.power_cut()  # then every command starts in its maintenance window
        yield board, admin, server.url
    finally:
        board.stop()
        server.stop()


def test_calibrate_on_the_rig_reaches_the_server_history(
        rig: tuple[SerialRig, Api, str]) -> None:
    board, admin, url = rig
    port = str(board.port)
    # the commissioning check before: the station reads about 1.000 m, the gauge says 1.05
    done = mizumori("device", "selftest", "--port", port, "--staff-gauge", "1.05", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["staff_gauge"]["passed"] is False
    assert -60 <= report["staff_gauge"]["difference_mm"] <= -40
    assert any("mm low (tolerance 20 mm)" in p for p in report["problems"])
    # measured as the MLIT standard defines the level, not from the short burst: samples at
    # most 1 s apart over at least 20 s (on the board's own clock)
    window = report["window"]
    assert window["attempts"] >= 21 and window["span_ms"] >= 20000, window
    assert window["max_gap_ms"] <= 1000 and len(report["samples_mm"]) == window["good"] >= 21

    done = mizumori("device", "calibrate", "--port", port, "--staff-gauge", "1.05",
                    "--server", url, "--station", "taku-30", "--user", "tech", env=TECH)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Calibrated the offset" in done.stdout and "recorded in taku-30's" in done.stdout

    history = admin.get("/api/stations/taku-30/calibrations")
    cal = history["current"]
    assert cal["by"] == "tech" and cal["source"] == "technician" and cal["kind"] == "offset"
    assert cal["staff_mm"] == 1050 and cal["residual_mm"] == 0 and cal["version"] == 1
    assert cal["offset_mm"] == 1050 - cal["reading_mm"] and cal["active_from"] == cal["at"]

    # the board measures with it now: the check passes, and check-only records the residual
    done = mizumori("device", "selftest", "--port", port, "--staff-gauge", "1.05")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS level 1.0" in done.stdout and "calibration      1: offset +" in done.stdout
    done = mizumori("device", "calibrate", "--port", port, "--staff-gauge", "1.05",
                    "--check-only", "--server", url, "--station", "taku-30", "--user", "tech",
                    "--json", env=TECH)
    assert done.returncode == 0, done.stdout + done.stderr
    checked = json.loads(done.stdout)
    assert abs(checked["residual_mm"]) <= 5 and checked["window"]["span_ms"] >= 20000
    last = admin.get("/api/stations/taku-30/calibrations")["last_check"]
    assert last["kind"] == "check" and last["version"] == 1 and abs(last["residual_mm"]) <= 5

    rows = {r.check: r for r in check.run(port, [], staff_mm=1200)}
    assert rows["staff gauge"].status == "FAIL" and "mm low (tolerance 20 mm)" in \
        rows["staff gauge"].result and "mizumori device calibrate" in rows["staff gauge"].advice
    assert re.search(r"^level 1\.0\d\d m over 2\d\.\d s \((2\d|3\d) samples\)",
                     rows["staff gauge"].result), rows["staff gauge"].result


def test_bad_input_is_one_clear_line(rig: tuple[SerialRig, Api, str]) -> None:
    board, _, url = rig
    port = str(board.port)
    line = one_clear_line(mizumori("device", "calibrate", "--port", port, "--staff-gauge",
                                   "abc"))
    assert "must be a number of metres" in line
    line = one_clear_line(mizumori("device", "calibrate", "--port", port, "--staff-gauge",
                                   "1.10", "--scale"))  # 5 cm from the last point
    assert "a scale needs at least 0.3 m between them" in line
    line = one_clear_line(mizumori("device", "calibrate", "--port", port, "--staff-gauge",
                                   "5.5", "--server", url, "--station", "taku-30",
                                   "--user", "tech", env=TECH))
    assert "server refused the calibration (422)" in line and "cal_offset_mm" in line
    line = one_clear_line(mizumori("device", "selftest", "--port", port, "--staff-gauge",
                                   "1", "--staff-tolerance", "99"))
    assert "--staff-tolerance takes 0.1 to 50 cm" in line
