"""Ingest: authentication, storage with correct times, idempotency, bad input."""

import random
import time

import pytest
from device import Device, batch, codec, reading
from fastapi.testclient import TestClient
from mizumori_server.models import Device as DeviceRow
from mizumori_server.models import Reading
from sqlalchemy import Engine, delete, func, select, update


@pytest.fixture
def dev(app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> Device:
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-0001", "station": "taku-01"})
    return Device(app_client, r.json())


def count(engine: Engine) -> int:
    with engine.connect() as c:
        return c.scalar(select(func.count()).select_from(Reading)) or 0


def test_batch_is_stored_with_times_from_the_age(dev: Device, engine: Engine,
                                                 app_client: TestClient,
                                                 admin: dict[str, str]) -> None:
    before = int(time.time())
    body = reading(1, 1100, age_s=1200) + reading(2, 1180, age_s=600) + reading(3, 1250)
    r = dev.send(body)
    after = int(time.time())
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["acked"] == [1, 2, 3] and reply["ack_upto"] == 3
    assert before <= reply["server_time"] <= after
    assert reply["ota"] is None
    pts = app_client.get("/api/stations/taku-01/readings", headers=admin).json()["points"]
    assert [p["level_mm"] for p in pts] == [1100, 1180, 1250]
    assert pts[0]["t"] == reply["server_time"] - 1200
    assert pts[2]["t"] - pts[1]["t"] == 600
    assert pts[0]["temperature_c"] == 18.5 and pts[0]["battery_mv"] == 3700
    assert count(engine) == 3


def test_retries_are_deduplicated(dev: Device, engine: Engine) -> None:
    body = reading(1) + reading(2)
    assert dev.send(body).json()["acked"] == [1, 2]
    # the reply was lost: the device sends the same records again, with a new counter
    assert dev.send(body + reading(3)).json()["acked"] == [1, 2, 3]
    assert count(engine) == 3


def test_replayed_request_is_refused_and_tells_the_counter(dev: Device,
                                                           engine: Engine) -> None:
    body = reading(1)
    headers = dev.headers(body)
    assert dev.client.post("/api/ingest", content=body, headers=headers).status_code == 200
    r = dev.client.post("/api/ingest", content=body, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "stale_counter"
    assert r.json()["last_counter"] == dev.counter
    assert count(engine) == 1


def test_wrong_signature_or_unknown_device_stores_nothing(dev: Device, engine: Engine) -> None:
    body = reading(1)
    h = dev.headers(body)
    h["X-Mizumori-Signature"] = "0" * 64
    r = dev.client.post("/api/ingest", content=body, headers=h)
    assert r.status_code == 401 and r.json()["code"] == "bad_signature"
    h = dev.headers(body)
    tampered = reading(1, level_mm=9999)
    r = dev.client.post("/api/ingest", content=tampered, headers=h)
    assert r.status_code == 401
    h = dev.headers(body)
    h["X-Mizumori-Device"] = "999"
    assert dev.client.post("/api/ingest", content=body, headers=h).json()["code"] == \
        "unknown_device"
    assert count(engine) == 0


def test_malformed_record_rejects_the_whole_batch_naming_it(dev: Device,
                                                            engine: Engine) -> None:
    body = reading(1) + reading(2) + b"\x19" + reading(3)[1:]
    r = dev.send(body)
    assert r.status_code == 422
    assert r.json()["record"] == 2 and "record 2" in r.json()["detail"]
    assert dev.send(reading(1)[:7]).status_code == 422
    assert count(engine) == 0
    # a rejected batch does not use up the counter: the next good one is accepted
    assert dev.send(reading(1)).status_code == 200


def test_oversized_body_and_missing_headers(dev: Device, app_client: TestClient,
                                            engine: Engine) -> None:
    big = reading(1) * 4000  # 72 kB over the 64 KiB default
    assert dev.send(big).status_code == 413
    r = app_client.post("/api/ingest", content=reading(1))
    assert r.status_code == 422 and "x-mizumori-device" in r.json()["detail"].lower()
    assert count(engine) == 0


def test_no_input_yields_a_500(dev: Device, app_client: TestClient) -> None:
    rnd = random.Random(7)
    for _ in range(150):
        body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 60)))
        if rnd.random() < 0.5:
            body = bytes([0x12]) + body
        r = dev.send(body)
        assert r.status_code in (200, 401, 409, 413, 422), (body.hex(), r.status_code)
        assert r.json()["detail"] if r.status_code != 200 else True
    for headers in ({"X-Mizumori-Device": "x", "X-Mizumori-Counter": "1",
                     "X-Mizumori-Signature": "0" * 64},
                    {"X-Mizumori-Device": "1", "X-Mizumori-Counter": "-5",
                     "X-Mizumori-Signature": "0" * 64},
                    {"X-Mizumori-Device": "1", "X-Mizumori-Counter": str(2 ** 80),
                     "X-Mizumori-Signature": "zz"}):
        assert app_client.post("/api/ingest", content=b"", headers=headers).status_code == 422


def test_latest_state_follows_the_newest_reading(dev: Device, app_client: TestClient,
                                                 admin: dict[str, str]) -> None:
    dev.send(reading(5, 1600, flags=codec.FLOOD_MODE))
    dev.send(reading(4, 1500, age_s=300))  # an older reading from the backlog arrives later
    (st,) = app_client.get("/api/latest", headers=admin).json()
    assert st["level_mm"] == 1600 and st["alert_level"] == 2
    assert st["flags"] == ["flood_mode"]


def test_status_record_reports_queue_and_config_version(dev: Device, app_client: TestClient,
                                                        admin: dict[str, str]) -> None:
    status = batch.encode_status(740, 3, 0, 4, -67)
    reply = dev.send(reading(1) + status).json()
    assert reply["config"] is not None  # installing gave it a config version to apply
    version = reply["config_version"]
    (f,) = app_client.get("/api/fleet", headers=admin).json()
    assert f["queue_depth"] == 740 and f["rssi_dbm"] == -67
    applied = batch.encode_status(0, 3, version, 4, -67)
    assert dev.send(reading(2) + applied).json()["config"] is None


def test_config_change_reaches_the_device_in_the_reply(dev: Device, app_client: TestClient,
                                                       admin: dict[str, str]) -> None:
    v = dev.send(reading(1)).json()["config_version"]
    dev.send(batch.encode_status(0, 0, v, 4, None))
    r = app_client.patch("/api/stations/taku-01", headers=admin, json={"danger_mm": 2400})
    assert r.status_code == 200
    reply = dev.send(reading(2)).json()
    assert reply["config_version"] == v + 1
    assert reply["config"]["thresholds_mm"] == [1000, 1500, 2000, 2400]
    r = app_client.patch(f"/api/devices/{dev.id}/config", headers=admin,
                         json={"settings": {"samples": 9}})
    assert r.status_code == 200
    assert dev.send(reading(3)).json()["config"]["samples"] == 9
    bad = app_client.patch(f"/api/devices/{dev.id}/config", headers=admin,
                           json={"settings": {"samples": "many", "wifi": 1}})
    assert bad.status_code == 422 and "samples" in bad.json()["detail"]


def test_sequence_numbers_extend_past_24_bits(dev: Device, engine: Engine) -> None:
    assert dev.send(reading(0xFFFFFE) + reading(0xFFFFFF)).status_code == 200
    reply = dev.send(reading(0x1000000 & 0xFFFFFF) + reading(1)).json()
    assert reply["acked"] == [0x1000000, 0x1000001]
    assert count(engine) == 4


def test_overload_answers_503_with_retry_after(dev: Device, app_client: TestClient,
                                              engine: Engine) -> None:
    gate = app_client.app.state.ingest_gate  # type: ignore[attr-defined]
    held = gate._value
    gate._value = 0  # every slot busy
    try:
        r = dev.send(reading(1))
    finally:
        gate._value = held
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    assert count(engine) == 0
    assert dev.send(reading(1)).status_code == 200


def test_an_upload_above_a_gap_asks_for_the_range_again(dev: Device, engine: Engine) -> None:
    reply = dev.send(reading(7)).json()  # a board provisioned anew with an earlier life
    assert "resend_from" not in reply  # nothing held from it yet: its old readings stay away
    with engine.begin() as c:
        c.execute(delete(Reading))
        c.execute(update(DeviceRow).values(last_seq=0))
    reply = dev.send(reading(1) + reading(2)).json()
    assert "resend_from" not in reply  # no gap: nothing asked
    assert "resend_from" not in dev.send(reading(3)).json()
    # the server lost 4..9 (restored from a backup, a lost transaction): asked from 4
    reply = dev.send(reading(10) + reading(11)).json()
    assert reply["resend_from"] == 4 and reply["acked"] == [10, 11]
    assert "resend_from" not in dev.send(reading(4) + reading(5)).json()  # no gap below 4
    assert "resend_from" not in dev.send(reading(12)).json()  # asked once, not every time
    assert count(engine) == 8


def test_after_a_restore_the_station_counter_above_the_old_one_is_taken(
        dev: Device, engine: Engine) -> None:
    assert dev.send(reading(1)).status_code == 200
    with engine.begin() as c:  # the backup's row: an older counter and last seq
        c.execute(update(DeviceRow).where(DeviceRow.id == dev.id)
                  .values(last_counter=1, last_seq=1))
    dev.counter = 40  # the station went on uploading after the backup
    for seq in range(2, 5):
        assert dev.send(reading(seq)).status_code == 200
    with engine.begin() as c:
        c.execute(update(DeviceRow).where(DeviceRow.id == dev.id)
                  .values(last_counter=1, last_seq=1))
        c.execute(delete(Reading).where(Reading.seq > 1))
    r = dev.send(reading(5))  # counter 44 against the restored 1: taken, no stale_counter
    assert r.status_code == 200 and r.json()["resend_from"] == 2
    r = dev.send(reading(2) + reading(3) + reading(4))
    assert r.status_code == 200 and "resend_from" not in r.json() and count(engine) == 5
