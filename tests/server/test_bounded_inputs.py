"""Bounded inputs (issue 16, item 5): every answer below was a 500 (and a dropped keep-alive
connection) on SQLite or PostgreSQL or both; each is now a 4xx that changes nothing.
Integers beyond their columns, times at the int64 edges, NUL characters in any text, an
OGC feature id of 10^30, an over-long webhook URL, a station's site type set to null, a
non-Latin-1 station in the CSV download, and JSON nested deeper than reason."""

import json
from typing import Any

import pytest
from conftest import STATION
from device import Device, reading
from fastapi.testclient import TestClient
from mizumori_server import jsonlimits
from mizumori_server.inputs import INT32_MAX, TIME_MAX
from mizumori_server.models import Device as DeviceRow
from mizumori_server.models import Station, Webhook
from sqlalchemy import func, select

BIG = [2**31, 2**63, 2**70]  # just past int4, just past int8, far past both


def count(client: TestClient, model: Any) -> int:
    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def dev(app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> Device:
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-0001", "station": "taku-01"})
    assert r.status_code == 201, r.text
    return Device(app_client, r.json())


@pytest.mark.parametrize("big", BIG)
def test_integers_beyond_their_columns_are_refused(app_client: TestClient,
                                                   admin: dict[str, str], dev: Device,
                                                   big: int) -> None:
    calls: list[tuple[str, str, Any]] = [
            ("GET", f"/api/devices/{big}", None), ("GET", f"/api/devices/{big}/events", None),
            ("GET", f"/api/devices/{big}/ota-events", None),
            ("POST", f"/api/devices/{big}/install", {"station": None}),
            ("PATCH", f"/api/devices/{big}/config", {"settings": {}}),
            ("GET", f"/api/alerts/{big}", None), ("POST", f"/api/alerts/{big}/ack", {}),
            ("POST", f"/api/alerts/{big}/close", {}),
            ("PATCH", f"/api/webhooks/{big}", {"enabled": False}),
            ("DELETE", f"/api/webhooks/{big}", None),
            ("GET", f"/api/webhooks/{big}/deliveries", None),
            ("GET", f"/api/rollouts/{big}", None), ("POST", f"/api/rollouts/{big}/pause", None),
            ("GET", f"/open/cap/{big}.xml", None),
            ("GET", f"/api/time?device={big}&nonce={'0' * 16}", None),
            ("POST", "/api/rollouts", {"release": "1.0", "target": {"devices": [big]}}),
            ("POST", "/api/rollouts", {"release": "1.0", "target": {"all": True},
                                       "max_failures": big}),
            ("POST", "/api/rollouts", {"release": "1.0", "target": {"all": True},
                                       "min_devices": big}),
    ]
    for method, path, body in calls:
        r = app_client.request(method, path, headers=admin, json=body)
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)
        assert "detail" in r.json()
    batch = reading(1)
    for path in ("/api/ingest", "/api/ota/report"):
        r = app_client.post(path, content=batch, headers={
            **dev.headers(batch), "X-Mizumori-Device": str(big)})
        assert r.status_code == 422, (path, r.text)
    r = app_client.get("/api/ota/releases/1.0/manifest.json",
                       headers={"X-Mizumori-Device": str(big), "X-Mizumori-Ota-Token": "x"})
    assert r.status_code == 422, r.text
    # the largest id that fits is simply not there
    assert app_client.get(f"/api/devices/{INT32_MAX}", headers=admin).status_code == 404
    assert dev.send(reading(1)).status_code == 200  # and nothing changed


def test_readings_at_the_int64_edges(app_client: TestClient, admin: dict[str, str],
                                     dev: Device) -> None:
    for seq in range(1, 13):
        assert dev.send(reading(seq, 1000 + seq, age_s=(13 - seq) * 600)).status_code == 200
    url = "/api/stations/taku-01/readings"
    for start, end in [(-2**63, 2**63 - 1), (0, 2**63 - 1), (-2**63, 10), (2**64, 2**65)]:
        for path, extra in [(url, {"max_points": 10}), (url + ".csv", {}),
                            ("/open/readings.csv", {})]:
            r = app_client.get(path, headers=admin,
                               params={"start": start, "end": end, **extra})
            assert r.status_code == 422, (path, start, end, r.text)
            assert "start" in r.text or "end" in r.text
    # the widest range there is: every reading, in buckets
    r = app_client.get(url, headers=admin, params={"start": 0, "end": TIME_MAX,
                                                   "max_points": 10})
    assert r.status_code == 200, r.text
    assert r.json()["downsampled"] and sum(p["n"] for p in r.json()["points"]) == 12


NUL_QUERIES = [
    ("/api/alerts", {"station": "s1\x00"}),
    ("/open/readings.csv", {"station": "s1\x00"}),
    ("/ogc/collections/observations/items", {"station": "s1\x00"}),
    ("/ogc/collections/stations/items", {"datetime": "2026-07-01\x00"}),
    ("/api/stations/taku-01/readings", {"x\x00": "1"}),
]
NUL_PATHS = ["/api/stations/s1%00", "/api/stations/s1%00/readings",
             "/ogc/collections/stations/items/s1%00", "/ogc/collections/s%00",
             "/api/releases/1.0%00"]


def test_nul_characters_are_refused_everywhere(app_client: TestClient, admin: dict[str, str],
                                               station: dict[str, object]) -> None:
    for path, params in NUL_QUERIES:
        r = app_client.get(path, headers=admin, params=params)
        assert r.status_code == 422, (path, params, r.text)
    for path in NUL_PATHS:
        r = app_client.get(path, headers=admin)
        assert r.status_code == 422, (path, r.text)
    assert app_client.post("/api/lorawan/city%00", headers=admin,
                           content=b"{}").status_code == 422
    assert app_client.delete("/api/lorawan/integrations/city%00",
                             headers=admin).status_code == 422
    for method, path, body in [
            ("POST", "/api/stations", {**STATION, "code": "taku-02", "name": "多久\x00"}),
            ("PATCH", "/api/stations/taku-01", {"name": "x\x00y"}),
            ("POST", "/api/devices/provision", {"hardware_id": "esp32-0002",
                                                "station": "taku-01\x00"}),
            ("PUT", "/api/provisioning/allowlist", {"entries": [
                {"hardware_id": "esp32-0003", "station": "\x00"}]}),
            ("PATCH", "/api/devices/1/config", {"settings": {"samples\x00": 5}}),
            ("POST", "/api/webhooks", {"name": "city\x00", "url": "http://93.184.216.34/"}),
            ("POST", "/api/lorawan/integrations", {"name": "city", "kind": "tts",
                                                   "application_id": "a\x00"}),
            ("POST", "/api/rollouts", {"release": "1.0", "target": {"tag": "north\x00"}}),
            ("POST", "/api/alerts/1/ack", {"note": "見ました\x00"}),
            ("POST", "/api/stations", {**STATION, "code": "taku-03",
                                       "tags": [{"nested": ["\x00"]}]}),
    ]:
        r = app_client.request(method, path, headers=admin, json=body)
        assert r.status_code == 422, (method, path, r.text)
    assert [s["code"] for s in app_client.get("/api/stations", headers=admin).json()] == [
        "taku-01"]
    assert app_client.get("/api/stations/taku-01", headers=admin).json()["name"] == \
        STATION["name"]
    assert count(app_client, Webhook) == 0 and count(app_client, DeviceRow) == 0


def test_an_ogc_feature_id_beyond_64_bits_is_not_found(app_client: TestClient,
                                                       admin: dict[str, str]) -> None:
    for fid in (str(10**30), str(2**63), "²", "1" * 5000):
        r = app_client.get(f"/ogc/collections/observations/items/{fid}", headers=admin)
        assert r.status_code in (404, 422), (fid[:20], r.text)
        assert r.headers["content-type"].startswith("application/json")


def test_a_webhook_url_longer_than_its_column_is_refused(app_client: TestClient,
                                                         admin: dict[str, str]) -> None:
    long = "http://93.184.216.34/" + "a" * 490  # 510 characters
    r = app_client.post("/api/webhooks", headers=admin, json={"name": "city", "url": long})
    assert r.status_code == 422 and "url" in r.json()["detail"], r.text
    # percent-encoding makes a short URL long: what is stored is what counts
    encoded = "http://93.184.216.34/" + "水" * 60  # 80 characters, 560 as stored
    r = app_client.post("/api/webhooks", headers=admin, json={"name": "city", "url": encoded})
    assert r.status_code == 422, r.text
    r = app_client.post("/api/webhooks", headers=admin,
                        json={"name": "city", "url": "http://93.184.216.34/hook"})
    assert r.status_code == 201, r.text
    r = app_client.patch(f"/api/webhooks/{r.json()['id']}", headers=admin, json={"url": long})
    assert r.status_code == 422, r.text
    [hook] = app_client.get("/api/webhooks", headers=admin).json()
    assert hook["url"] == "http://93.184.216.34/hook"


def test_a_station_field_set_to_null_is_refused(app_client: TestClient,
                                                admin: dict[str, str],
                                                station: dict[str, object]) -> None:
    for field in ("site_type", "name", "latitude", "longitude", "datum_m", "tags",
                  "mount_height_mm", "interval_normal_s"):
        r = app_client.patch("/api/stations/taku-01", headers=admin, json={field: None})
        assert r.status_code == 422 and field in r.json()["detail"], (field, r.text)
    assert app_client.get("/api/stations/taku-01", headers=admin).json()["site_type"] == "river"
    # a river level may be unset
    r = app_client.patch("/api/stations/taku-01", headers=admin, json={"standby_mm": None})
    assert r.status_code == 200 and r.json()["standby_mm"] is None, r.text


def test_floats_are_finite(app_client: TestClient, admin: dict[str, str]) -> None:
    for value in ("NaN", "Infinity", "-Infinity"):
        body = json.dumps({**STATION, "datum_m": 0.0}).replace("0.0", value, 1)
        r = app_client.post("/api/stations", headers={**admin,
                                                      "Content-Type": "application/json"},
                            content=body)
        assert r.status_code == 422, (value, r.text)
    assert count(app_client, Station) == 0


def test_a_non_latin1_station_in_the_csv_download(app_client: TestClient,
                                                  admin: dict[str, str]) -> None:
    for station in ("多久", "s1\"; filename=x.exe", "💧"):
        r = app_client.get("/open/readings.csv", headers=admin, params={"station": station})
        assert r.status_code == 422, (station, r.text)
    r = app_client.get("/open/readings.csv", headers=admin, params={"station": "taku-01"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")


def test_json_depth_and_size_limits() -> None:
    assert jsonlimits.depth(b'{"a": [1, {"b": "[[[{{{"}]}') == 3
    assert jsonlimits.depth(b'"\\"[[["') == 0
    assert jsonlimits.loads(b'{"a": [[1]]}', 100) == {"a": [[1]]}
    for body, status in [(b"[" * 33 + b"]" * 33, 400), (b"[" * 100000, 400),
                         (b'{"rssi": NaN}', 400), (b'[Infinity]', 400),
                         (b'{"a": "\\u0000"}', 400), (b"\xff\xfe{", 400),
                         (b"[1]" + b" " * 200000, 413)]:
        with pytest.raises(jsonlimits.JsonError) as e:
            jsonlimits.loads(body, 200000)
        assert e.value.status == status, body[:20]
    jsonlimits.loads(b"[" * 32 + b"]" * 32, 100)  # as deep as it may be


def test_json_bodies_are_bounded_before_they_are_parsed(app_client: TestClient,
                                                        admin: dict[str, str]) -> None:
    """A body FastAPI parses into a model is read with a cap and its nesting checked
    first: a huge one is a 413 as soon as it is over 1 MiB (before any login is looked at),
    a deep one a 400, both without parsing it."""
    json_headers = {"Content-Type": "application/json"}
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    for headers in (json_headers, {**admin, **json_headers}):
        r = app_client.post("/api/stations", headers=headers, content=huge)
        assert r.status_code == 413, r.text
    for depth in (33, 1000, 100000):
        deep = b'{"code": "x", "tags": ' + b"[" * depth + b"]" * depth + b"}"
        r = app_client.post("/api/stations", headers={**admin, **json_headers}, content=deep)
        assert r.status_code == 400 and "nested deeper than 32" in r.json()["detail"], r.text
    assert count(app_client, Station) == 0


def test_the_depth_check_takes_one_pass_whatever_the_strings() -> None:
    """An unterminated string of escaped quotes once made the string pattern backtrack over
    the rest of the body from every quote (an hour of CPU for 1 MiB, before any login): it
    must match the whole rest at the first quote."""
    from mizumori_server.inputs import _STRING, json_depth

    for body in (b'"' + b'\\"' * 50000, b'"' + b'\\"' * 50000 + b"\\"):
        m = _STRING.match(body)
        assert m is not None and m.end() == len(body)
        assert json_depth(b"[" + body) == 1
