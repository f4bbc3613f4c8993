"""The quality (0x14) and digest (0x15) records on the server, on SQLite and PostgreSQL: the
shared vectors (the decoder and the LoRaWAN payload formatter), a reading's quality stored and
served (JSON API, CSV, OGC API), clear 422s for malformed bodies, a daily digest that keeps a
watch-mode station alive, delivery reports that count a digest's readings as held, and
migration 0010."""

import base64
import csv
import io
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from device import Device, batch, codec, reading
from fastapi.testclient import TestClient
from helpers import need
from mizumori_server import alerts, clock, db, lorawan
from mizumori_server import codec as server_codec
from mizumori_server.models import Digest, Reading
from receiver import receiver
from sqlalchemy import func, select
from test_formatter import FORMATTER, HARNESS, RESOLUTION, same

ROOT = Path(__file__).parents[2]
VECTORS = json.loads((ROOT / "tests" / "vectors" / "codec-v1-quality-digest.json").read_text())
CHIRPSTACK = json.loads((Path(__file__).parent / "fixtures" / "chirpstack_up.json").read_text())
NOW = 1_790_000_000
EUI = "ac1f09fffe0a1b2c"


# --- the vectors -----------------------------------------------------------------------------

@pytest.mark.parametrize("v", VECTORS["records"] + VECTORS["batches"], ids=lambda v: v["name"])
def test_decoder_vectors(v: dict[str, Any]) -> None:
    want = v.get("records", [v.get("fields")])
    got = server_codec.decode(bytes.fromhex(v["hex"]))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        same(g.fields(), w)


@pytest.mark.parametrize("v", VECTORS["invalid"], ids=lambda v: v["name"])
def test_decoder_refuses_invalid_vectors(v: dict[str, str]) -> None:
    with pytest.raises(server_codec.CodecError) as e:
        server_codec.decode(bytes.fromhex(v["hex"]))
    assert str(e.value).startswith("record ") and v["error"] in str(e.value)


def formatter_results(engine: str) -> list[dict[str, Any]]:
    """What lorawan/formatter.js returns for each vector, under node or QuickJS."""
    cases = [v["hex"] for k in ("records", "batches", "invalid") for v in VECTORS[k]]
    script = FORMATTER.read_text() + HARNESS % json.dumps(cases)
    if engine == "node":
        need(shutil.which("node") is not None, "node")
        script = script.rstrip().removesuffix("JSON.stringify(out);")
        done = subprocess.run(["node", "-e", script + "process.stdout.write(JSON.stringify(out));"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        out: list[dict[str, Any]] = json.loads(done.stdout)
        return out
    import quickjs

    out = json.loads(quickjs.Context().eval(script))
    return out


@pytest.mark.parametrize("engine", ["node", "quickjs"])
def test_the_payload_formatter_decodes_the_new_records(engine: str) -> None:
    """Network servers show a digest, and a reading's quality with the reading."""
    results = iter(formatter_results(engine))
    for v in VECTORS["records"] + VECTORS["batches"]:
        got = next(results)
        assert "errors" not in got, (v["name"], got)
        want = v.get("records", [v.get("fields")])
        readings: list[dict[str, Any]] = []
        digests: list[dict[str, Any]] = []
        for w in want:
            if w["type"] == "quality":
                readings[-1]["quality"] = {k: x for k, x in w.items() if k != "type"}
            elif w["type"] == "digest":
                digests.append(w)
            elif w["type"] != "status":
                readings.append(dict(w))
        assert got["data"].get("digests", []) == digests, v["name"]
        assert len(got["data"]["readings"]) == len(readings)
        for g, w in zip(got["data"]["readings"], readings, strict=True):
            g.pop("level_m")
            g.update({k: float(x) for k, x in g.items() if k in RESOLUTION and x is not None})
            same(g, w)
    for v in VECTORS["invalid"]:
        got = next(results)
        assert "data" not in got and got["errors"][0].startswith("record "), (v["name"], got)


# --- a reading's quality, stored and served ----------------------------------------------------

@pytest.fixture
def dev(app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> Device:
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-0001", "station": "taku-01"})
    return Device(app_client, r.json())


def quality(names: list[str], spread: int | None, cal: int) -> bytes:
    return codec.encode_quality(codec.flags_from_names(names, codec.QUALITY_NAMES), spread, cal)


def test_each_readings_quality_is_stored_and_served(dev: Device, app_client: TestClient,
                                                    admin: dict[str, str]) -> None:
    body = (reading(1, 1100, age_s=1200) + quality([], 3, 7)
            + reading(2, 1180, age_s=600) + quality(["noisy", "temp_held"], 41, 7)
            + reading(3, 1250, age_s=300)  # from a station without quality records
            + reading(4, 1240) + quality(["short_window"], 2, 7))  # an MLIT watch burst
    r = dev.send(body)
    assert r.status_code == 200 and r.json()["acked"] == [1, 2, 3, 4], r.text
    pts = app_client.get("/api/stations/taku-01/readings", headers=admin).json()["points"]
    assert [(p["quality"], p["spread_mm"], p["calibration_version"]) for p in pts] == [
        (0, 3, 7), (codec.NOISY | codec.TEMP_HELD, 41, 7), (None, None, None),
        (codec.SHORT_WINDOW, 2, 7)]
    rows = list(csv.DictReader(io.StringIO(app_client.get(
        "/api/stations/taku-01/readings.csv", headers=admin).text)))
    assert [(x["seq"], x["quality"], x["spread_mm"], x["calibration_version"])
            for x in rows] == [("1", "", "3", "7"), ("2", "temp_held|noisy", "41", "7"),
                               ("3", "", "", ""), ("4", "short_window", "2", "7")]
    items = app_client.get("/ogc/collections/observations/items", headers=admin).json()
    props = sorted((f["properties"] for f in items["features"]), key=lambda p: p["time"])
    assert [(p["quality"], p["spread_mm"], p["calibration_version"]) for p in props] == [
        ("", 3, 7), ("temp_held|noisy", 41, 7), (None, None, None), ("short_window", 2, 7)]


def test_malformed_quality_and_digest_records_are_a_clear_422(dev: Device,
                                                               engine: Any) -> None:
    q = quality([], 3, 1)
    status = batch.encode_status(1, 0, 0, 4, None)
    digest = batch.encode_digest(9, 9, 800, 850, 3700, 0)
    cases = [(q + reading(1), 0, "must follow"),
             (reading(1) + status + q, 2, "must follow"),
             (reading(1) + q + q, 2, "must follow"),
             (digest + q, 1, "must follow"),
             (reading(1) + q[:4], 1, "truncated"),
             (digest[:10], 0, "truncated"),
             (digest[:4] + b"\x00" + digest[5:], 0, "out of range"),
             (digest[:5] + digest[7:9] + digest[5:7] + digest[9:], 0, "out of range"),
             (b"\x16" + digest[1:], 0, "unknown record type 0x16")]
    for body, index, why in cases:
        r = dev.send(body)
        assert r.status_code == 422 and r.json()["record"] == index, (body.hex(), r.text)
        assert why in r.json()["detail"], r.text
    with engine.connect() as c:  # all or nothing: not even the good reading before
        assert c.scalar(select(func.count()).select_from(Reading)) == 0
    rnd = random.Random(20)
    for _ in range(120):  # never a 500
        body = bytes([rnd.choice((0x14, 0x15))]) + bytes(
            rnd.randrange(256) for _ in range(rnd.randrange(0, 30)))
        if rnd.random() < 0.5:
            body = reading(1) + body
        assert dev.send(body).status_code in (200, 422), body.hex()


# --- the daily digest ---------------------------------------------------------------------------

@pytest.fixture
def lora(app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> Any:
    """(a LoRaWAN device of the MLIT profile, below its start level: watch mode, and a way
    to send it uplinks through ChirpStack at a given time)."""
    r = app_client.post("/api/devices/provision", headers=admin, json={
        "hardware_id": "esp32-lora-01", "station": "taku-01", "transport": "lorawan",
        "dev_eui": EUI})
    assert r.status_code in (200, 201), r.text
    device_id = r.json()["device_id"]
    r = app_client.patch(f"/api/devices/{device_id}/config", headers=admin, json={
        "settings": {"profile": "mlit", "obs_start_mm": 2000, "obs_stop_mm": 1900}})
    assert r.status_code == 200, r.text
    return device_id


def uplink(client: TestClient, integ: dict[str, Any], payload: bytes, at: int,
           monkeypatch: pytest.MonkeyPatch, port: int = 1) -> Any:
    monkeypatch.setattr(clock, "now", lambda: at)
    body = dict(CHIRPSTACK, data=base64.b64encode(payload).decode(), fPort=port)
    body.pop("time", None)  # received: now
    r = client.post(f"/api/lorawan/{integ['name']}", content=json.dumps(body),
                    headers={"X-Mizumori-Secret": integ["secret"],
                             "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def integration(client: TestClient, admin: dict[str, str], api_url: str = "") -> Any:
    extra = {"api_url": api_url, "api_token": "ns-api-token-1"} if api_url else {}
    r = client.post("/api/lorawan/integrations", headers=admin,
                    json={"name": "city-chirpstack", "kind": "chirpstack", **extra})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_digest_is_a_daily_summary_that_keeps_a_watch_station_alive(
        app_client: TestClient, admin: dict[str, str], lora: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    app: Any = app_client.app
    integ = integration(app_client, admin)
    uplink(app_client, integ, codec.encode_level(1, 0, 850, 3900, 0), NOW, monkeypatch)

    def check(at: int) -> int:
        with app.state.sessions() as s, s.begin():
            return alerts.check_offline(s, app.state.settings, at)

    day = NOW + 3 * 86400 + 1  # watch mode: a heartbeat a day, offline after 3 missed
    assert check(day) == 1
    reply = uplink(app_client, integ, batch.encode_digest(145, 144, 812, 845, 3620,
                                                          codec.JUMP), day, monkeypatch)
    assert reply["acked"] == [145]
    alerts_now = app_client.get("/api/alerts", headers=admin).json()
    assert [a for a in alerts_now if a["type"] == "offline"] == []  # reporting again
    assert check(day + 2 * 86400) == 0  # alive: seen at the digest
    (st,) = app_client.get("/api/latest", headers=admin).json()
    assert st["last_seen"] == day and st["observation_mode"] == "watch"
    assert st["level_mm"] == 850 and st["t"] == NOW  # not a level reading ...
    assert st["battery_mv"] == 3620  # ... but the newest battery
    series = app_client.get("/api/stations/taku-01/readings", headers=admin, params={
        "start": NOW - 60, "end": day + 60}).json()
    assert [p["level_mm"] for p in series["points"]] == [850]
    assert series["digests"] == [{"t": day, "seq": 145, "first_seq": 2, "readings": 144,
                                  "level_min_mm": 812, "level_max_mm": 845,
                                  "battery_mv": 3620, "flags": codec.JUMP}]
    uplink(app_client, integ, batch.encode_digest(145, 144, 812, 845, 3620, 0), day + 5,
           monkeypatch)  # a second gateway's copy, a retried webhook: stored once
    with app.state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Digest)) == 1
        assert s.scalar(select(func.count()).select_from(Reading)) == 1


def test_delivery_reports_count_a_digests_readings_as_held(
        app_client: TestClient, admin: dict[str, str], lora: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with receiver() as ns:
        integ = integration(app_client, admin, ns.url.removesuffix("/hook"))

        def reports() -> list[bytes]:
            return [base64.b64decode(b["queueItem"]["data"]) for b in ns.bodies()
                    if b["queueItem"]["fPort"] == lorawan.DELIVERY_PORT]

        def ask(oldest: int, newest: int, at: int) -> None:
            uplink(app_client, integ, oldest.to_bytes(3, "big") + newest.to_bytes(3, "big"),
                   at, monkeypatch, lorawan.REPORT_PORT)

        def day(k: int, at: int) -> None:  # the digest of readings 144k-143..144k
            uplink(app_client, integ, batch.encode_digest(144 * k, 144, 800, 840, 3700, 0),
                   at, monkeypatch)

        day(1, NOW)
        ask(1, 144, NOW + 5)
        assert ns.wait_for(1, 5) and reports() == [b"\x01\x00\x00\x91"]  # HAVE: below 145
        day(2, NOW + 86400)  # right above the last digest: no hole, nothing asked
        day(4, NOW + 3 * 86400)  # day 3's digest was lost in the air: RESEND from 289
        assert ns.wait_for(2, 5) and reports()[-1] == b"\x02\x00\x01\x21"
        ask(289, 576, NOW + 3 * 86400 + 5)
        assert ns.wait_for(3, 5) and reports()[-1] == b"\x03\x00\x01\x21"  # MISSING 289
        day(3, NOW + 3 * 86400 + 10)
        ask(289, 576, NOW + 3 * 86400 + 15)
        assert ns.wait_for(4, 5) and reports()[-1] == b"\x01\x00\x02\x41"  # HAVE: below 577
        assert len(reports()) == 4


# --- migration 0010 -----------------------------------------------------------------------------

def test_migration_0010_adds_and_removes_quality_and_digests(database_url: str) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from mizumori_server.models import Base
    from sqlalchemy import inspect, text

    engine = db.make_engine(database_url)
    cfg = db.alembic_config(engine)
    command.upgrade(cfg, "0009")
    with engine.begin() as c:
        c.execute(text("INSERT INTO stations (id, code, name, site_type, latitude, longitude, "
                       "datum_m, mount_height_mm, rise_limit_mm_h, hysteresis_mm, "
                       "interval_normal_s, interval_flood_s, upload_every, tags, created_at) "
                       "VALUES (1, 'taku-01', 'x', 'river', 33.3, 130.1, 0, 5000, 300, 50, "
                       "600, 120, 3, '[]', 1)"))
        c.execute(text("INSERT INTO devices (id, hardware_id, transport, firmware_version, "
                       "station_id, last_counter, last_seq, desired_config, desired_version, "
                       "reported_version, created_at, downlink_version) VALUES (1, 'e-1', "
                       "'wifi', '', 1, 0, 1, '{}', 0, 0, 1, 0)"))
        c.execute(text("INSERT INTO readings (station_id, device_id, seq, t, received, "
                       "level_mm, flags) VALUES (1, 1, 1, 100, 100, 1200, 0)"))
    command.upgrade(cfg, "0010")
    with engine.begin() as c:
        assert c.execute(text("SELECT seq, quality, spread_mm, calibration_version "
                              "FROM readings")).one() == (1, None, None, None)
        diff = [d for d in compare_metadata(MigrationContext.configure(c), Base.metadata)
                if "digests" in repr(d) or "readings" in repr(d)]
        assert diff == []  # the migration builds what the model says
        c.execute(text("INSERT INTO digests (station_id, device_id, seq, first_seq, t, "
                       "readings, flags) VALUES (1, 1, 145, 2, 200, 144, 0)"))
    command.downgrade(cfg, "0009")
    assert "digests" not in inspect(engine).get_table_names()
    assert "quality" not in {c["name"] for c in inspect(engine).get_columns("readings")}
    command.upgrade(cfg, "head")
    with engine.connect() as c:
        assert c.execute(text("SELECT seq, level_mm FROM readings")).one() == (1, 1200)
    engine.dispose()
