"""Series with downsampling, CSV export, latest state and fleet status."""

import csv
import io
import time
from collections.abc import Callable

from device import Device, reading
from fastapi.testclient import TestClient
from mizumori_server.models import Reading, StationLatest
from sqlalchemy import insert


def provision(client: TestClient, admin: dict[str, str]) -> Device:
    r = client.post("/api/devices/provision", headers=admin,
                    json={"hardware_id": "esp32-0001", "station": "taku-01"})
    return Device(client, r.json())


def fill(client: TestClient, device_id: int, start: int, n: int, step: int,
         level: Callable[[int], int] = lambda i: 1000) -> None:
    rows = [{"station_id": 1, "device_id": device_id, "seq": i + 1, "t": start + i * step,
             "received": start + i * step, "level_mm": level(i), "flags": 0,
             "rain_mm": 0.2} for i in range(n)]
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        s.execute(insert(Reading), rows)
        s.commit()


def test_short_ranges_return_every_reading(app_client: TestClient, admin: dict[str, str],
                                          station: dict[str, object]) -> None:
    d = provision(app_client, admin)
    fill(app_client, d.id, 1_700_000_000, 50, 600)
    r = app_client.get("/api/stations/taku-01/readings", headers=admin,
                       params={"start": 1_700_000_000, "end": 1_700_030_000}).json()
    assert r["downsampled"] is False and r["count"] == 50 and len(r["points"]) == 50


def test_long_ranges_are_downsampled_keeping_the_peak(app_client: TestClient,
                                                      admin: dict[str, str],
                                                      station: dict[str, object]) -> None:
    d = provision(app_client, admin)
    start = 1_700_000_000
    fill(app_client, d.id, start, 5000, 600, lambda i: 3000 if i == 2345 else 1000 + i % 7)
    r = app_client.get("/api/stations/taku-01/readings", headers=admin,
                       params={"start": start, "end": start + 5000 * 600,
                               "max_points": 100}).json()
    assert r["downsampled"] is True and r["count"] == 5000
    assert len(r["points"]) <= 100
    assert sum(p["n"] for p in r["points"]) == 5000
    assert max(p["level_max_mm"] for p in r["points"]) == 3000  # the one-reading peak
    assert min(p["level_min_mm"] for p in r["points"]) == 1000
    assert r["points"][0]["t"] == start


def test_bad_ranges(app_client: TestClient, admin: dict[str, str],
                    station: dict[str, object]) -> None:
    r = app_client.get("/api/stations/taku-01/readings", headers=admin,
                       params={"start": 10, "end": 5})
    assert r.status_code == 400
    r = app_client.get("/api/stations/taku-01/readings", headers=admin,
                       params={"max_points": 0})
    assert r.status_code == 422
    assert app_client.get("/api/stations/none/readings", headers=admin).status_code == 404


def test_csv_export(app_client: TestClient, admin: dict[str, str],
                    station: dict[str, object]) -> None:
    d = provision(app_client, admin)
    d.send(reading(1, 1234, age_s=60) + reading(2, None, flags=0x11))
    r = app_client.get("/api/stations/taku-01/readings.csv", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["level_m"] for row in rows] == ["1.234", ""]
    assert rows[1]["flags"] == "no_echo|sensor_missing"
    assert rows[0]["time_utc"].endswith("Z") and rows[0]["station"] == "taku-01"


def test_fleet_status_online_late_offline(app_client: TestClient, admin: dict[str, str],
                                          station: dict[str, object]) -> None:
    d = provision(app_client, admin)
    (f,) = app_client.get("/api/fleet", headers=admin).json()
    assert f["status"] == "unseen" and f["summary"] == "never seen"
    d.send(reading(1))
    (f,) = app_client.get("/api/fleet", headers=admin).json()
    assert f["status"] == "online" and f["expected_every_s"] == 1800  # 10 min x 3
    now = int(time.time())
    for ago, status in ((25 * 60, "online"), (50 * 60, "late"), (200 * 60, "offline")):
        with app_client.app.state.sessions() as s:  # type: ignore[attr-defined]
            s.get(StationLatest, 1).last_seen = now - ago
            s.commit()
        (f,) = app_client.get("/api/fleet", headers=admin).json()
        assert f["status"] == status, (ago, f)
    assert f["summary"] == "last seen 200 min ago, expected every 30 min"


def test_latest_lists_every_station_even_unseen(app_client: TestClient, admin: dict[str, str],
                                                station: dict[str, object]) -> None:
    other = dict(station, code="shizuoka-up-3", name="Underpass 3", site_type="underpass",
                 latitude=34.97, longitude=138.38)
    assert app_client.post("/api/stations", headers=admin, json=other).status_code == 201
    d = provision(app_client, admin)
    d.send(reading(1, 2100))
    states = {s["code"]: s for s in app_client.get("/api/latest", headers=admin).json()}
    assert states["taku-01"]["level_mm"] == 2100 and states["taku-01"]["alert_level"] == 3
    assert states["shizuoka-up-3"]["level_mm"] is None


def test_station_validation(app_client: TestClient, admin: dict[str, str],
                            station: dict[str, object]) -> None:
    r = app_client.patch("/api/stations/taku-01", headers=admin,
                         json={"standby_mm": 3000})  # above danger
    assert r.status_code == 422 and "rise" in r.json()["detail"]
    r = app_client.post("/api/stations", headers=admin, json=dict(station, latitude=123))
    assert r.status_code == 422
    assert app_client.post("/api/stations", headers=admin, json=station).status_code == 409
