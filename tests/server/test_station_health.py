"""A station's last error and reset cause (issue 15, defect 12): they come in the signed
OTA report, are stored on the device with a short history, and the station and device APIs
show them; bad values are refused with 422, never a 500."""

import json
import time
from typing import Any

import pytest
from device import Device
from fastapi.testclient import TestClient
from mizumori_server import devices


@pytest.fixture
def dev(app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> Device:
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-0001", "station": "taku-01"})
    assert r.status_code == 201, r.text
    return Device(app_client, r.json())


def report(d: Device, body: Any = None, raw: bytes | None = None, **fields: Any) -> Any:
    data = raw if raw is not None else json.dumps(
        body if body is not None else {"version": "1.0.0", "events": [], **fields}).encode()
    h = d.headers(data)
    h["Content-Type"] = "application/json"
    return d.client.post("/api/ota/report", content=data, headers=h)


def health(client: TestClient, admin: dict[str, str], d: Device) -> dict[str, Any]:
    got: dict[str, Any] = client.get(f"/api/devices/{d.id}", headers=admin).json()
    return {k: got[k] for k in ("last_error", "last_error_at", "error_cleared_at",
                                "reset_cause", "reset_at")}


def test_reset_and_error_are_stored_and_shown(app_client: TestClient, admin: dict[str, str],
                                              dev: Device) -> None:
    assert health(app_client, admin, dev) == dict.fromkeys(
        ("last_error", "last_error_at", "error_cleared_at", "reset_cause", "reset_at"))
    r = report(dev, reset_cause="wdt", error="upload: OSError(-9984)", clock=1795500000)
    assert r.status_code == 200 and r.json() == {"taken": 0}, r.text
    h = health(app_client, admin, dev)
    assert h["reset_cause"] == "wdt" and h["last_error"] == "upload: OSError(-9984)"
    assert h["last_error_at"] == h["reset_at"] and h["error_cleared_at"] is None
    assert abs(h["reset_at"] - time.time()) < 60  # the server's time

    st = app_client.get("/api/stations/taku-01", headers=admin).json()
    assert st["device"]["device_id"] == dev.id
    assert {k: st["device"][k] for k in h} == h
    assert [(e["kind"], e["text"], e["clock"]) for e in st["device"]["events"]] == [
        ("error", "upload: OSError(-9984)", 1795500000), ("reset", "wdt", 1795500000)]
    listed = app_client.get("/api/devices", headers=admin).json()
    assert listed[0]["reset_cause"] == "wdt"
    assert app_client.get("/api/devices/999/events", headers=admin).status_code == 404


def test_history_follows_changes_not_repeats(app_client: TestClient, admin: dict[str, str],
                                             dev: Device) -> None:
    assert report(dev, reset_cause="power_on", error="").status_code == 200
    assert report(dev, reset_cause="deepsleep", error="cycle: MemoryError()").status_code == 200
    first = health(app_client, admin, dev)
    assert first["reset_cause"] == "power_on"  # a wake from deep sleep is not a reset
    assert report(dev, error="cycle: MemoryError()").status_code == 200  # the same error
    assert health(app_client, admin, dev) == first
    assert report(dev, error="").status_code == 200  # gone: the text stays, with when
    cleared = health(app_client, admin, dev)
    assert cleared["last_error"] == "cycle: MemoryError()" and cleared["error_cleared_at"]
    assert report(dev, error="").status_code == 200
    assert report(dev, version="1.0.1").status_code == 200  # an older firmware: no fields
    assert health(app_client, admin, dev) == cleared
    assert report(dev, error="cycle: MemoryError()").status_code == 200  # it is back
    assert health(app_client, admin, dev)["error_cleared_at"] is None
    events = app_client.get(f"/api/devices/{dev.id}/events", headers=admin).json()
    assert [(e["kind"], e["text"]) for e in events] == [
        ("error", "cycle: MemoryError()"), ("cleared", ""), ("error", "cycle: MemoryError()"),
        ("reset", "power_on")]


def test_each_reported_reset_counts_once(app_client: TestClient, admin: dict[str, str],
                                         dev: Device) -> None:
    """The station sends a reset's cause in the first report after it and "deepsleep" after
    that, so two watchdog resets in a row are two resets."""
    assert report(dev, reset_cause="wdt", error="").status_code == 200
    first = health(app_client, admin, dev)
    assert first["reset_cause"] == "wdt" and first["reset_at"]
    assert report(dev, reset_cause="deepsleep", error="upload: OSError(-9984)").status_code \
        == 200
    assert health(app_client, admin, dev)["reset_at"] == first["reset_at"]
    assert report(dev, reset_cause="wdt").status_code == 200  # the watchdog again
    assert report(dev, reset_cause="power_on").status_code == 200
    assert health(app_client, admin, dev)["reset_cause"] == "power_on"
    events = app_client.get(f"/api/devices/{dev.id}/events", headers=admin).json()
    assert [e["text"] for e in events if e["kind"] == "reset"] == ["power_on", "wdt", "wdt"]


def test_history_keeps_the_last_of_each_kind(app_client: TestClient, admin: dict[str, str],
                                             dev: Device,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "HEALTH_HISTORY", 3)
    assert report(dev, reset_cause="brownout").status_code == 200
    for i in range(5):  # watchdog resets, each with another error, and a wake between
        assert report(dev, reset_cause="wdt", error=f"cycle: OSError({i})").status_code == 200
        assert report(dev, reset_cause="deepsleep").status_code == 200
    events = app_client.get(f"/api/devices/{dev.id}/events", headers=admin).json()
    assert [e["text"] for e in events if e["kind"] == "error"] == [
        "cycle: OSError(4)", "cycle: OSError(3)", "cycle: OSError(2)"]
    assert [e["text"] for e in events if e["kind"] == "reset"] == ["wdt"] * 3


def test_any_printable_text_is_kept_as_is(app_client: TestClient, admin: dict[str, str],
                                          dev: Device) -> None:
    text = "<img src=x onerror=alert(1)> 水位計: OSError('é\\n') \"&amp;\"" + "x" * 144
    assert len(text) == 200
    assert report(dev, error=text).status_code == 200
    assert health(app_client, admin, dev)["last_error"] == text


LONG = "x" * 201


@pytest.mark.parametrize("fields, words", [
    ({"reset_cause": "exploded"}, "reset_cause"),
    ({"reset_cause": "power_on_and_more_than_16"}, "reset_cause"),
    ({"reset_cause": 3}, "reset_cause"),
    ({"error": LONG}, "at most 200 characters"),
    ({"error": "bad\x00byte"}, "NUL"),
    ({"error": 42}, "valid string"),
    ({"error": ["a"]}, "valid string"),
    ({"error": "\ud800"}, "error"),
    ({"clock": "1795500000"}, "clock"),
    ({"clock": True}, "clock"),
    ({"clock": 1.5}, "clock"),
    ({"clock": -1}, "clock"),
    ({"clock": 2**64}, "clock"),
    ({"events": [{"release": "1.1.0", "state": "failed", "reason": "a\x00"}]}, "NUL"),
    ({"version": "1.0\x00"}, "NUL"),
])
def test_bad_fields_are_refused(app_client: TestClient, admin: dict[str, str], dev: Device,
                                fields: dict[str, Any], words: str) -> None:
    r = report(dev, **fields)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "bad_report" and words in r.json()["detail"], r.text
    assert len(r.json()["detail"]) <= 320  # what a station keeps of it stays small
    assert health(app_client, admin, dev)["last_error"] is None  # nothing stored
    assert report(dev, error="ok after all").status_code == 200  # the counter moved on


@pytest.mark.parametrize("raw", [b"not json", b"[" * 16000, b"\xff\xfe", b"null", b"[]",
                                 b'{"version": "1.0.0", "error": "\\ud800"}'])
def test_malformed_bodies_are_refused(dev: Device, raw: bytes) -> None:
    r = report(dev, raw=raw)
    assert r.status_code == 422 and r.json()["code"] == "bad_report", r.text
