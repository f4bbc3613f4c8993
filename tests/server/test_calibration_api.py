"""Calibration against the staff gauge (issue 20): POST/GET /api/stations/{code}/calibrations
on SQLite and PostgreSQL. A calibration entered on the station page goes to the station as
its cal_* settings in the next upload reply and is active from the upload that reports that
config version; one from the technician's tool (reading_mm: measured on the board, written
there at once) is active at once. Bad input gets a 4xx that says why."""

from typing import Any

import pytest
from conftest import make_user
from device import Device, batch, codec, reading
from fastapi.testclient import TestClient
from mizumori_server.models import Calibration
from sqlalchemy import inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

URL = "/api/stations/taku-01/calibrations"


@pytest.fixture
def dev(app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> Device:
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-0001", "station": "taku-01"})
    assert r.status_code == 201, r.text
    return Device(app_client, r.json())


def upload(d: Device, seq: int, level_mm: int, config_version: int = 0) -> Any:
    r = d.send(reading(seq, level_mm) + batch.encode_status(0, 0, config_version, 4, -67))
    assert r.status_code == 200, r.text
    return r.json()


def test_the_table_is_there(engine: Engine) -> None:
    cols = {c["name"] for c in inspect(engine).get_columns("calibrations")}
    assert {"station_id", "by_user", "at", "staff_mm", "raw_mm", "offset_mm", "scale",
            "version", "residual_mm", "config_version", "active_from"} <= cols


def test_page_calibration_reaches_the_station_as_config(
        app_client: TestClient, admin: dict[str, str], dev: Device, engine: Engine) -> None:
    upload(dev, 1, 1262)
    r = app_client.post(URL, headers=admin, json={"staff_gauge_m": 1.23})
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["kind"] == "offset" and c["source"] == "server" and c["by"] == "admin"
    assert (c["staff_mm"], c["reading_mm"], c["offset_mm"], c["scale"]) == (1230, 1262, -32, 1.0)
    assert c["version"] == 1 and c["residual_mm"] == 0 and c["active_from"] is None
    assert c["settings"] == {"cal_offset_mm": -32, "cal_scale": 1.0, "cal_version": 1,
                             "cal_staff_mm": 1230, "cal_raw_mm": 1262}
    # the next upload's reply carries the settings; the station reports the version back
    reply = upload(dev, 2, 1262)
    assert reply["config"]["cal_offset_mm"] == -32 and reply["config"]["cal_version"] == 1
    assert reply["config_version"] == c["config_version"]
    got = app_client.get(URL, headers=admin).json()
    assert got["history"][0]["active_from"] is None  # not reported yet
    upload(dev, 3, 1230, reply["config_version"])
    got = app_client.get(URL, headers=admin).json()
    assert got["current"]["active_from"] is not None
    assert got["reported_config_version"] == got["config_version"] == c["config_version"]
    with Session(engine) as s:
        assert s.scalars(select(Calibration)).one().by_user == "admin"


def test_technician_tool_two_points_and_a_check(
        app_client: TestClient, admin: dict[str, str], dev: Device) -> None:
    tech = make_user(app_client, admin, "tanaka", "technician")
    r = app_client.post(URL, headers=tech, json={"staff_gauge_m": 0.5, "reading_mm": 520})
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["source"] == "technician" and first["active_from"] == first["at"]
    r = app_client.post(URL, headers=tech, json={"staff_gauge_m": 0.6, "reading_mm": 620,
                                                 "kind": "scale"})
    assert r.status_code == 422 and "0.3 m" in r.json()["detail"], r.text
    r = app_client.post(URL, headers=tech, json={"staff_gauge_m": 2.5, "reading_mm": 2540,
                                                 "kind": "scale"})
    assert r.status_code == 201, r.text
    two = r.json()
    assert two["version"] == 2 and abs(two["scale"] - 2000 / 2020) < 1e-9
    assert two["residual_mm"] == 0
    # a check at another level: the residual of the calibrated reading, nothing changes
    r = app_client.post(URL, headers=tech, json={"staff_gauge_m": 1.5, "reading_mm": 1555,
                                                 "kind": "check"})
    assert r.status_code == 201, r.text
    check = r.json()
    assert check["kind"] == "check" and check["version"] == 2 and check["config_version"] is None
    assert check["residual_mm"] == check["level_mm"] - 1500
    assert check["level_mm"] == round(1555 * two["scale"] + two["offset_mm"])
    got = app_client.get(URL, headers=admin).json()
    assert got["last_check"]["id"] == check["id"] and got["current"]["id"] == two["id"]
    assert [h["kind"] for h in got["history"]] == ["check", "scale", "offset"]
    viewer = make_user(app_client, admin, "sato", "viewer")
    assert app_client.get(URL, headers=viewer).status_code == 200
    assert app_client.post(URL, headers=viewer, json={"staff_gauge_m": 1}).status_code == 403


@pytest.mark.parametrize("body, status, words", [
    ({"staff_gauge_m": "abc"}, 422, "valid number"),
    ({"staff_gauge_m": 45}, 422, "less than or equal to 30"),
    ({"staff_gauge_m": 1.0, "kind": "zero"}, 422, "offset"),
    ({"staff_gauge_m": 4.5, "reading_mm": 500}, 422, "cal_offset_mm 4000"),
    ({"staff_gauge_m": 2.0, "reading_mm": 500, "kind": "scale"}, 422,
     "calibrate the offset first"),
    ({"staff_gauge_m": 1.0}, 409, "no reading"),
])
def test_bad_input_is_refused_clearly(app_client: TestClient, admin: dict[str, str],
                                      dev: Device, body: dict[str, Any], status: int,
                                      words: str) -> None:
    r = app_client.post(URL, headers=admin, json=body)
    assert r.status_code == status and words in r.text, r.text
    assert app_client.get(URL, headers=admin).json()["history"] == []


def test_no_device_or_no_station(app_client: TestClient, admin: dict[str, str],
                                 station: dict[str, object]) -> None:
    r = app_client.post(URL, headers=admin, json={"staff_gauge_m": 1.0})
    assert r.status_code == 409 and "no device" in r.text
    assert app_client.get("/api/stations/nowhere/calibrations",
                          headers=admin).status_code == 404


@pytest.mark.parametrize("age_s, quality, spread, status, words", [
    (840, 0, 5, 201, ""),
    (840, codec.TEMP_HELD, 5, 201, ""),  # corrected with the held temperature: fine
    (960, 0, 5, 422, "the latest reading of taku-01 is 16 min old; the page calibrates only "
                     "with a reading from the last 15 min: read the staff gauge just after "
                     "the station uploads (every 30 min)"),
    (0, codec.NO_TEMP_CORRECTION, 5, 422, "not corrected for the speed of sound (its "
                                          "temperature sensor gave none): fix the station's "
                                          "BME280"),
    (0, codec.NOISY, 45, 422, "was noisy (spread 45 mm): calibrate with a reading taken "
                              "when the water is calm"),
    (0, codec.SHORT_WINDOW, 5, 422, "is a watch-mode burst, not the 20 s window: calibrate "
                                    "with the reading of its daily heartbeat"),
])
def test_page_refuses_an_old_or_flagged_reading(
        app_client: TestClient, admin: dict[str, str], dev: Device, age_s: int, quality: int,
        spread: int, status: int, words: str) -> None:
    # an older good reading does not stand in for the newest
    r = dev.send(reading(1, 1250, age_s=age_s + 600) + reading(2, 1262, age_s=age_s)
                 + codec.encode_quality(quality, spread, 0))
    assert r.status_code == 200, r.text
    r = app_client.post(URL, headers=admin, json={"staff_gauge_m": 1.23})
    assert r.status_code == status and words in r.text, r.text
    history = app_client.get(URL, headers=admin).json()["history"]
    assert len(history) == (1 if status == 201 else 0)
    if status == 201:
        assert history[0]["reading_mm"] == 1262


def test_page_refusal_in_japanese(app_client: TestClient, admin: dict[str, str],
                                  dev: Device) -> None:
    r = dev.send(reading(1, 1262) + codec.encode_quality(codec.NOISY, 45, 0))
    assert r.status_code == 200, r.text
    r = app_client.post(URL, headers={**admin, "Accept-Language": "ja"},
                        json={"staff_gauge_m": 1.23})
    assert r.status_code == 422 and "水面が荒れていました (ばらつき 45 mm)" in r.json()["detail"]


def test_a_new_mount_height_asks_for_a_check(app_client: TestClient, admin: dict[str, str],
                                             dev: Device) -> None:
    station = "/api/stations/taku-01"
    r = app_client.patch(station, headers=admin, json={"mount_height_mm": 5100})
    assert r.status_code == 200 and "calibration_warning" not in r.json()  # none to spoil
    r = app_client.post(URL, headers=admin, json={"staff_gauge_m": 0.5, "reading_mm": 520})
    assert r.status_code == 201, r.text
    r = app_client.patch(station, headers=admin, json={"rise_limit_mm_h": 400})
    assert "calibration_warning" not in r.json()  # the mount height did not change
    r = app_client.patch(station, headers={**admin, "Accept-Language": "en"},
                         json={"mount_height_mm": 5200})
    assert r.status_code == 200 and r.json()["calibration_warning"] == (
        "the mount height of taku-01 changed, so its calibration no longer fits: check it "
        "against the staff gauge again (check only, or on site mizumori device calibrate "
        "--check-only)")
