"""`mizumori sim fleet N` against a live server sharing its simulated clock: every station,
the one on the serial rig and the in-process CPython ones, reports what it measured."""

import subprocess
import sys
import time
from pathlib import Path

from mizumori_tools.fleet import Api, ServerProcess


def test_sim_fleet_reports_to_a_server(tmp_path: Path) -> None:
    clock = tmp_path / "clock"
    clock.write_text(str(int(time.time())))  # the fleet runs on from now
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
                            "MIZUMORI_CLOCK_FILE": str(clock),
                            "MIZUMORI_SECRET_KEY": "fleet-secret"}, cwd=tmp_path)
    server.prepare({"admin": ("admin", "kawa-kanri-2026")})
    server.start()
    try:
        admin = Api.login(server.url, "admin", "kawa-kanri-2026")
        token = admin.http.post("/api/tokens", json={"name": "sim"}).json()["token"]
        done = subprocess.run(
            [sys.executable, "-m", "mizumori_tools.cli", "sim", "fleet", "6", "--engine",
             "cpython", "--hours", "1", "--speed", "100000", "--server", server.url,
             "--token", token, "--clock-file", str(clock), "--data", str(tmp_path / "sim")],
            cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert "6 stations" in done.stdout and "last upload failed at: none" in done.stdout
        start = int(done.stdout.split("start ")[1].split()[0])
        stations = {s["code"] for s in admin.get("/api/stations")}
        assert len(stations) == 6 and "taku-ushizu-01" in stations
        for code in stations:
            points = admin.get(f"/api/stations/{code}/readings", start=start,
                               end=start + 3601, max_points=100000)["points"]
            # a reading every 10 minutes of the simulated hour, all delivered
            assert len(points) >= 5, code
            assert all(start <= int(p["t"]) <= start + 3600 for p in points), code
    finally:
        server.stop()
