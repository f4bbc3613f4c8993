"""Alerts: the four river levels with hysteresis, rate of rise, battery, sensor fault, queue
overflow, offline; their lifecycle; webhook notifications, signed, retried across a
restart, never sent twice."""

import importlib
import random
import re
import threading
import time
from typing import Any

import httpx
import pytest
from conftest import ADMIN_PASSWORD, STATION, login, make_user
from device import Device, codec
from fastapi.testclient import TestClient
from mizumori_server import alerts, clock, notify
from mizumori_server.api.people import create as create_user
from mizumori_server.app import create_app
from mizumori_server.models import Alert, AlertEvent, Delivery
from mizumori_server.queries import iso
from mizumori_server.settings import Settings
from receiver import Receiver, receiver
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from station import schedule  # the firmware's decision, for the agreement test

FLAGS = {n: 1 << i for i, n in enumerate(codec.FLAG_NAMES)}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The webhook receivers here listen on loopback, which a webhook may reach only when
    an admin allows it (MIZUMORI_WEBHOOK_ALLOW, docs/alerts.md): allowed explicitly."""
    return settings.model_copy(update={"webhook_allow": "127.0.0.1"})


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's clock stands still: reading times come from their ages alone."""
    t = int(time.time())
    monkeypatch.setattr(clock, "now", lambda: t)


@pytest.fixture
def dev(app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> Device:
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-0001", "station": "taku-01"})
    return Device(app_client, r.json())


class Sender:
    """One reading per upload, with consecutive sequence numbers."""

    def __init__(self, dev: Device):
        self.dev = dev
        self.seq = 0

    def __call__(self, level_mm: int | None, battery_mv: int = 3700, flags: int = 0,
                 age_s: int = 0) -> dict[str, Any]:
        self.seq += 1
        r = self.dev.send(codec.encode_full(self.seq, age_s, level_mm, battery_mv, flags,
                                            18.0, 60.0, 1010.0, 0.0))
        assert r.status_code == 200, r.text
        return r.json()


def active(client: TestClient, auth: dict[str, str], **query: str) -> list[dict[str, Any]]:
    r = client.get("/api/alerts", headers=auth, params=query)
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()
    return out


def history(client: TestClient, auth: dict[str, str], alert_id: int) -> list[tuple[str, Any]]:
    events = client.get(f"/api/alerts/{alert_id}", headers=auth).json()["events"]
    return [(e["kind"], e["level"]) for e in events]


def test_river_levels_rise_and_fall_with_hysteresis(dev: Device, app_client: TestClient,
                                                    admin: dict[str, str]) -> None:
    send = Sender(dev)  # taku-01: 1.0 / 1.5 / 2.0 / 2.5 m, hysteresis 50 mm
    send(900)
    assert active(app_client, admin) == []
    send(1000)
    [a] = active(app_client, admin)
    assert (a["type"], a["level"], a["level_name"], a["state"]) == ("level", 1, "standby",
                                                                   "open")
    assert a["message"] == "standby reached (water level 1.00 m)"  # English unless asked
    assert a["params"] == {"level_mm": 1000}
    send(1600)
    r = app_client.post(f"/api/alerts/{a['id']}/ack", headers=admin, json={"note": "見た"})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    assert r.json()["acknowledged_by"] == "admin" and r.json()["ack_note"] == "見た"
    send(1460)  # under caution, but within the hysteresis: still caution
    assert active(app_client, admin)[0]["level"] == 2
    send(1440)
    [a] = active(app_client, admin)
    assert a["level"] == 1 and a["state"] == "acknowledged"  # lower: still acknowledged
    send(2600)
    [a] = active(app_client, admin)
    assert (a["level"], a["max_level"], a["state"]) == (4, 4, "open")  # higher: new ack
    send(None)  # no echo: the level is unknown, nothing changes
    assert active(app_client, admin)[0]["level"] == 4
    send(900)
    assert active(app_client, admin) == []
    assert history(app_client, admin, a["id"]) == [
        ("opened", 1), ("raised", 2), ("acknowledged", 2), ("lowered", 1), ("raised", 4),
        ("closed", 4)]
    [closed] = active(app_client, admin, state="closed")
    assert closed["closed_by"] == "server" and closed["max_level"] == 4
    send(1100)  # a new alert after the old one closed
    [again] = active(app_client, admin)
    assert again["id"] != a["id"] and again["level"] == 1


def test_each_level_keeps_the_time_it_was_reached(dev: Device, app_client: TestClient,
                                                  admin: dict[str, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: escalation changed one alert in place and kept opened_at, so the table
    said the danger level was reached hours before it was. Each level the alert reaches
    (up or down) is kept with its time; level_since is the current level's."""
    t = [1_790_000_000]
    monkeypatch.setattr(clock, "now", lambda: t[0])
    send = Sender(dev)  # taku-01: 1.0 / 1.5 / 2.0 / 2.5 m, hysteresis 50 mm
    send(1050)
    opened = t[0]
    [a] = active(app_client, admin, type="level")
    assert a["opened_at"] == a["level_since"] == iso(opened)
    assert a["levels"] == [{"level": 1, "level_name": "standby", "at": iso(opened)}]
    t[0] += 3 * 3600
    send(1100)  # the same level: nothing new
    assert active(app_client, admin, type="level")[0]["levels"] == a["levels"]
    t[0] += 3600
    send(2600)  # straight to danger, four hours after the alert opened
    danger = t[0]
    [a] = active(app_client, admin, type="level")
    assert (a["level"], a["opened_at"], a["level_since"]) == (4, iso(opened), iso(danger))
    assert [(h["level"], h["at"]) for h in a["levels"]] == [(1, iso(opened)), (4, iso(danger))]
    t[0] += 1800
    send(1700)  # down to caution
    caution = t[0]
    t[0] += 600
    send(1470)  # within the hysteresis of caution: no change
    t[0] += 600
    send(2100)  # up to evacuation
    evac = t[0]
    [a] = active(app_client, admin, type="level")
    assert a["level_since"] == iso(evac)
    assert [(h["level"], h["level_name"], h["at"]) for h in a["levels"]] == [
        (1, "standby", iso(opened)), (4, "danger", iso(danger)), (2, "caution", iso(caution)),
        (3, "evacuation", iso(evac))]
    detail = app_client.get(f"/api/alerts/{a['id']}", headers=admin).json()
    assert detail["levels"] == a["levels"]  # the same history on the alert's own page
    assert [(e["kind"], e["level"], e["at"]) for e in detail["events"]] == [
        ("opened", 1, iso(opened)), ("raised", 4, iso(danger)), ("lowered", 2, iso(caution)),
        ("raised", 3, iso(evac))]
    t[0] += 600
    send(500)  # closed: the history stays as it was
    [closed] = active(app_client, admin, state="closed", type="level")
    assert closed["levels"] == a["levels"] and closed["level_since"] == iso(evac)
    assert closed["closed_at"] == iso(t[0])
    t[0] += 600
    send(1600)  # a new alert starts its own history
    [again] = active(app_client, admin, type="level")
    assert again["levels"] == [{"level": 2, "level_name": "caution", "at": iso(t[0])}]
    # other types have no levels: their one time is when they opened
    send(1600, battery_mv=3000)
    battery = active(app_client, admin, type="battery")[0]
    assert battery["levels"] == [] and battery["level_since"] == battery["opened_at"]


def test_the_level_history_of_older_alerts_comes_from_their_events(
        database_url: str) -> None:
    """Migration 0006 fills the history of alerts raised before it from their events, and
    the schema it builds is the model's."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from mizumori_server import db
    from mizumori_server.models import Base
    from sqlalchemy import text

    engine = db.make_engine(database_url)
    cfg = db.alembic_config(engine)
    command.upgrade(cfg, "0005")
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO stations (id, code, name, site_type, latitude, longitude, datum_m, "
            "mount_height_mm, rise_limit_mm_h, interval_normal_s, interval_flood_s, "
            "upload_every, tags, created_at) VALUES (1, 'taku-01', '多久橋', 'river', 33.3, "
            "130.1, 0, 5000, 300, 600, 120, 3, '[]', 1)"))
        for aid, type_, level in ((1, "level", 4), (2, "battery", 0)):
            c.execute(text(
                "INSERT INTO alerts (id, station_id, type, level, max_level, state, message, "
                "opened_at, updated_at, ack_note) VALUES "
                f"({aid}, 1, '{type_}', {level}, {level}, 'open', '', 100, 300, '')"))
        for kind, level, at in (("opened", 1, 100), ("acknowledged", 1, 150),
                                ("raised", 4, 300)):
            c.execute(text("INSERT INTO alert_events (alert_id, kind, level, at, by, note) "
                           f"VALUES (1, '{kind}', {level}, {at}, 'server', '')"))
        c.execute(text("INSERT INTO alert_events (alert_id, kind, level, at, by, note) "
                       "VALUES (2, 'opened', 0, 100, 'server', '')"))
    command.upgrade(cfg, "head")
    with engine.begin() as c:
        rows = {r.id: r for r in c.execute(select(Alert.id, Alert.type, Alert.level,
                                                  Alert.opened_at, Alert.levels))}
        assert rows[1].levels == [{"level": 1, "at": 100}, {"level": 4, "at": 300}]
        assert rows[2].levels == []
        assert alerts.level_history(rows[1])[-1] == {"level": 4, "at": 300}
        diff = [d for d in compare_metadata(MigrationContext.configure(c), Base.metadata)
                if "alert" in repr(d) or "install" in repr(d) or "allowlist" in repr(d)]
        assert diff == []
    command.downgrade(cfg, "0005")
    command.upgrade(cfg, "head")
    engine.dispose()


def test_the_server_decides_river_levels_as_the_firmware_does() -> None:
    rnd = random.Random(7)
    for _ in range(300):
        thresholds: list[int | None] = [
            None if rnd.random() < 0.2 else t
            for t in sorted(rnd.sample(range(0, 3000, 10), 4))]
        hyst = rnd.choice([0, 50, 200])
        prev_server = prev_firmware = 0
        for _ in range(40):
            level = rnd.choice([None, rnd.randrange(-100, 3500)])
            prev_server = alerts.river_level(level, thresholds, prev_server, hyst)
            prev_firmware = schedule.alert_level(level, thresholds, prev_firmware, hyst)
            assert prev_server == prev_firmware


def test_rate_of_rise_opens_and_closes_with_hysteresis(dev: Device, app_client: TestClient,
                                                       admin: dict[str, str]) -> None:
    send = Sender(dev)  # limit 300 mm/h, window 1 h, at least 15 min of readings
    send(200, age_s=1800)
    send(250, age_s=1200)  # 150 mm/h, but over 10 min only: too short to judge
    send(290, age_s=600)  # 90 mm in 20 min = 270 mm/h
    assert active(app_client, admin, type="rise") == []
    send(400, age_s=0)  # 200 mm in 30 min = 400 mm/h
    [a] = active(app_client, admin, type="rise")
    assert a["value"] == 400 and a["params"] == {"rate_mm_h": 400, "limit_mm_h": 300}
    assert a["message"] == "the water is rising fast (0.40 m/h, limit 0.30 m/h)"
    send(300, age_s=0)  # 200 mm/h: under the limit, over half of it: still open (as the
    assert len(active(app_client, admin, type="rise")) == 1  # station stays in flood mode)
    send(250, age_s=0)  # 100 mm/h
    assert active(app_client, admin, type="rise") == []
    assert history(app_client, admin, a["id"]) == [("opened", None), ("closed", None)]


def test_battery_low_with_hysteresis(dev: Device, app_client: TestClient,
                                     admin: dict[str, str]) -> None:
    send = Sender(dev)
    send(500, battery_mv=3500)
    assert active(app_client, admin) == []
    send(500, battery_mv=3380)
    [a] = active(app_client, admin)
    assert a["type"] == "battery" and a["message"] == "battery low (3.38 V, below 3.40 V)"
    send(500, battery_mv=3460)  # charged a little by the sun: not enough to clear
    assert len(active(app_client, admin)) == 1
    send(500, battery_mv=3520)
    assert active(app_client, admin) == []


def test_sensor_fault_needs_three_in_a_row_to_open_and_to_close(
        dev: Device, app_client: TestClient, admin: dict[str, str]) -> None:
    send = Sender(dev)
    send(500)
    send(None, flags=FLAGS["no_echo"])
    send(None, flags=FLAGS["no_echo"])
    send(500)  # a single good one in between: no alert
    send(None, flags=FLAGS["no_echo"])
    send(None, flags=FLAGS["no_echo"])
    assert active(app_client, admin) == []
    send(None, flags=FLAGS["stuck"])
    [a] = active(app_client, admin)
    assert a["type"] == "fault" and a["message"].endswith("no echo, stuck")
    assert a["params"] == {"readings": 3, "flags": ["no_echo", "stuck"]}
    send(500)
    send(500)
    assert len(active(app_client, admin)) == 1
    send(500)
    assert active(app_client, admin) == []


def test_queue_overflow_is_closed_by_a_person(dev: Device, app_client: TestClient,
                                              admin: dict[str, str]) -> None:
    send = Sender(dev)
    send(500, flags=FLAGS["queue_dropped"])
    [a] = active(app_client, admin)
    assert a["type"] == "queue_overflow"
    send(500, flags=FLAGS["queue_dropped"])  # again while open: the same alert
    assert [x["id"] for x in active(app_client, admin)] == [a["id"]]
    r = app_client.post(f"/api/alerts/{a['id']}/close", headers=admin,
                        json={"note": "queue_max raised"})
    assert r.status_code == 200 and r.json()["state"] == "closed"
    assert r.json()["closed_by"] == "admin"
    assert app_client.post(f"/api/alerts/{a['id']}/close", headers=admin,
                           json={}).status_code == 409
    assert app_client.post(f"/api/alerts/{a['id']}/ack", headers=admin,
                           json={}).status_code == 409
    send(2600)  # a condition closes by itself, never by hand
    level = active(app_client, admin)[0]
    r = app_client.post(f"/api/alerts/{level['id']}/close", headers=admin, json={})
    assert r.status_code == 409 and "closes by itself" in r.json()["detail"]
    assert app_client.post("/api/alerts/99999/ack", headers=admin,
                           json={}).status_code == 404


def test_offline_follows_the_expected_interval(dev: Device, app_client: TestClient,
                                               admin: dict[str, str]) -> None:
    app: Any = app_client.app
    settings: Settings = app.state.settings
    send = Sender(dev)
    seen = send(500)["server_time"]  # normal: 600 s x 3 readings per upload = 30 min

    def check(at: int) -> int:
        with app.state.sessions() as s, s.begin():
            return alerts.check_offline(s, settings, at)

    assert check(seen + 3 * 1800) == 0
    assert check(seen + 3 * 1800 + 1) == 1
    assert check(seen + 3 * 1800 + 60) == 0  # not twice
    [a] = active(app_client, admin)
    assert a["type"] == "offline"
    assert a["message"].startswith("last seen ") and a["message"].endswith(
        "min ago (expected every 30 min)")
    send(500)
    assert active(app_client, admin) == []  # reporting again closes it
    # in flood mode the station reports every 2 min: offline after 6
    seen = send(500, flags=FLAGS["flood_mode"])["server_time"]
    assert check(seen + 361) == 1
    assert "expected every 2 min" in active(app_client, admin)[0]["message"]


def test_one_alert_per_station_and_type_is_enforced_by_the_database(
        dev: Device, app_client: TestClient, admin: dict[str, str]) -> None:
    Sender(dev)(1200)
    app: Any = app_client.app
    with app.state.sessions() as s:
        station_id = s.scalar(select(Alert.station_id))
        s.add(Alert(station_id=station_id, type="level", level=1, max_level=1, state="open",
                    message="", opened_at=1, updated_at=1, ack_note=""))
        with pytest.raises(IntegrityError):
            s.commit()


def test_concurrent_offline_checks_raise_one_alert(dev: Device, app_client: TestClient,
                                                   admin: dict[str, str]) -> None:
    app: Any = app_client.app
    with receiver() as rec:
        app_client.post("/api/webhooks", headers=admin,
                        json={"name": "all", "url": rec.url}).raise_for_status()
        seen = Sender(dev)(500)["server_time"]
        barrier = threading.Barrier(6)
        opened = []

        def check() -> None:
            with app.state.sessions() as s, s.begin():
                barrier.wait()
                opened.append(alerts.check_offline(s, app.state.settings, seen + 99999))

        threads = [threading.Thread(target=check) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with app.state.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Alert)) == 1
            assert s.scalar(select(func.count()).select_from(AlertEvent)) == 1
            assert s.scalar(select(func.count()).select_from(Delivery)) == 1
        assert sorted(opened) == [0, 0, 0, 0, 0, 1]


# --- webhooks ----------------------------------------------------------------------------

def send_now(app: Any, client: httpx.Client, at: int | None = None) -> int:
    return notify.send_due(app.state.sessions, app.state.box, app.state.settings, client,
                           now=(lambda: at) if at else clock.now)


def test_webhooks_are_signed_filtered_and_sent_once(dev: Device, app_client: TestClient,
                                                    admin: dict[str, str]) -> None:
    app: Any = app_client.app
    with receiver() as rec, httpx.Client() as client:
        r = app_client.post("/api/webhooks", headers=admin, json={
            "name": "防災GIS", "url": rec.url, "types": ["level"], "stations": ["taku-01"],
            "secret": "a-shared-secret-of-the-city"})
        assert r.status_code == 201 and r.json()["secret"] == "a-shared-secret-of-the-city"
        hook = r.json()
        assert "secret" not in app_client.get("/api/webhooks", headers=admin).json()[0]
        send = Sender(dev)
        send(1200, battery_mv=3300)  # a level alert (wanted) and a battery one (not)
        assert send_now(app, client) == 1
        assert send_now(app, client) == 0  # nothing twice
        [req] = rec.requests
        assert Receiver.verify("a-shared-secret-of-the-city", req)
        assert not Receiver.verify("another-secret-entirely", req)
        assert req["headers"]["x-mizumori-event"] == "alert.opened"
        [body] = rec.bodies()
        assert body["event"] == "alert.opened" and body["alert"]["type"] == "level"
        assert body["alert"]["level_name"] == "standby"
        assert body["station"]["code"] == "taku-01"
        assert body["station"]["river_levels_m"] == {"standby": 1.0, "caution": 1.5,
                                                     "evacuation": 2.0, "danger": 2.5}
        [d] = app_client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=admin).json()
        assert d["state"] == "delivered" and d["attempts"] == 1
        assert req["headers"]["x-mizumori-delivery"] == str(d["id"])
        # another station's alerts do not reach a hook for taku-01
        r = app_client.patch(f"/api/webhooks/{hook['id']}", headers=admin,
                             json={"stations": ["nowhere"]})
        assert r.status_code == 422 and "unknown stations: nowhere" in r.text


def test_failed_deliveries_retry_with_backoff_across_a_restart(
        dev: Device, app_client: TestClient, admin: dict[str, str],
        settings: Settings) -> None:
    app: Any = app_client.app
    with receiver() as rec, httpx.Client() as client:
        hook = app_client.post("/api/webhooks", headers=admin,
                               json={"name": "city", "url": rec.url}).json()
        rec.status = 503
        t0 = Sender(dev)(1600)["server_time"]
        assert send_now(app, client, t0) == 1
        [d] = app_client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=admin).json()
        assert (d["state"], d["attempts"], d["last_status"]) == ("pending", 1, 503)
        assert d["next_at"] == t0 + 30 and "HTTP 503" in d["last_error"]
        assert send_now(app, client, t0 + 29) == 0  # not due yet
        assert send_now(app, client, t0 + 30) == 1
        d = app_client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=admin).json()[0]
        assert d["attempts"] == 2 and d["next_at"] == t0 + 30 + 60  # doubled
        # the server restarts (a new app on the same database); the receiver is back
        rec.status = 200
        app2 = create_app(settings)
        assert send_now(app2, client, t0 + 90) == 1
        assert send_now(app2, client, t0 + 9999) == 0
        app2.state.engine.dispose()
        assert len(rec.requests) == 1 and rec.bodies()[0]["alert"]["level"] == 2
        d = app_client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=admin).json()[0]
        assert d["state"] == "delivered" and d["attempts"] == 3


def test_a_delivery_gives_up_after_the_expiry(dev: Device, app_client: TestClient,
                                              admin: dict[str, str]) -> None:
    app: Any = app_client.app
    with httpx.Client() as client:
        hook = app_client.post("/api/webhooks", headers=admin, json={
            "name": "gone", "url": "http://127.0.0.1:9/nothing-listens-here"}).json()
        t0 = Sender(dev)(1600)["server_time"]
        assert send_now(app, client, t0) == 1
        assert send_now(app, client, t0 + 86400) == 1
        [d] = app_client.get(f"/api/webhooks/{hook['id']}/deliveries", headers=admin).json()
        assert d["state"] == "expired" and d["last_error"] == "connection failed"
        assert send_now(app, client, t0 + 999999) == 0


def test_concurrent_senders_send_each_delivery_once(dev: Device, app_client: TestClient,
                                                    admin: dict[str, str]) -> None:
    app: Any = app_client.app
    with receiver() as rec:
        app_client.post("/api/webhooks", headers=admin,
                        json={"name": "city", "url": rec.url}).raise_for_status()
        send = Sender(dev)
        for level in (1100, 1600, 2100, 2600, 900, 1100, 900):
            send(level)  # 7 events
        barrier = threading.Barrier(4)
        counts = []

        def sender() -> None:
            with httpx.Client() as client:
                barrier.wait()
                counts.append(send_now(app, client))

        threads = [threading.Thread(target=sender) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(counts) == 7
        ids = [r["headers"]["x-mizumori-delivery"] for r in rec.requests]
        assert len(ids) == len(set(ids)) == 7


def test_the_workers_background_loop_delivers_on_its_own(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"background": True}))
    with app.state.sessions() as s:
        create_user(s, "admin", ADMIN_PASSWORD, "admin")
        s.commit()
    with receiver() as rec, TestClient(app) as client:
        auth = login(client)
        client.post("/api/stations", headers=auth, json=STATION).raise_for_status()
        client.post("/api/webhooks", headers=auth,
                    json={"name": "city", "url": rec.url}).raise_for_status()
        dev = Device(client, client.post("/api/devices/provision", headers=auth, json={
            "hardware_id": "esp32-bg", "station": "taku-01"}).json())
        started = time.monotonic()
        Sender(dev)(2100)
        [body] = rec.wait_for(1)
        assert body["alert"]["level_name"] == "evacuation"
        # woken by the ingest, not by the 2 s poll (a loose bound: a slow machine passes)
        assert time.monotonic() - started < 30
    app.state.engine.dispose()


def test_roles_and_validation(dev: Device, app_client: TestClient,
                              admin: dict[str, str]) -> None:
    viewer = make_user(app_client, admin, "miru", "viewer")
    Sender(dev)(1200)
    [a] = active(app_client, viewer)  # a viewer sees alerts...
    assert app_client.post(f"/api/alerts/{a['id']}/ack", headers=viewer,
                           json={}).status_code == 403  # ... and may not acknowledge
    assert app_client.get("/api/webhooks", headers=viewer).status_code == 403
    assert app_client.get("/api/alerts").status_code == 401
    for bad in ({"name": "x", "url": "ftp://example.org/"},
                {"name": "x", "url": "http://example.org/", "types": ["flood"]},
                {"name": "x", "url": "http://example.org/", "secret": "short"},
                {"url": "http://example.org/"}):
        assert app_client.post("/api/webhooks", headers=admin, json=bad).status_code == 422
    assert app_client.get("/api/webhooks", headers=admin).json() == []


# --- issue 18: an alert's message in one language -------------------------------------------

MESSAGES = {
    "level": ("はん濫危険水位に達しました（水位 2.60 m）", "danger reached (water level 2.60 m)"),
    "rise": ("水位が急上昇しています（毎時 1.20 m、基準 毎時 0.30 m）",
             "the water is rising fast (1.20 m/h, limit 0.30 m/h)"),
    "battery": ("電池電圧が低下しています（3.30 V、基準 3.40 V 未満）",
                "battery low (3.30 V, below 3.40 V)"),
    "fault": ("直近3回の観測でセンサー異常: 反射なし",
              "sensor fault in the last 3 readings: no echo"),
    "queue_overflow": ("観測局の未送信データがあふれ、観測値が欠落しました（1件、通し番号 1 から）",
                       "the station's queue overflowed and dropped readings (1, from "
                       "sequence number 1)"),
}


def test_alert_messages_are_in_the_language_asked_for(
        dev: Device, app_client: TestClient, admin: dict[str, str]) -> None:
    """Issue 18: half of an alert's text was English in the Japanese dashboard and half
    Japanese in the English one. An alert keeps its values; its message is written in
    the language asked for (?lang=, the dashboard's cookie, Accept-Language), whole."""
    send = Sender(dev)
    send(2200, age_s=1200, flags=FLAGS["queue_dropped"])
    send(None, battery_mv=3300, flags=FLAGS["no_echo"])
    send(None, battery_mv=3300, flags=FLAGS["no_echo"])
    send(None, battery_mv=3300, flags=FLAGS["no_echo"])
    send(2600, battery_mv=3300)
    for lang, how in (("ja", {"params": {"lang": "ja"}}),
                      ("en", {"params": {"lang": "en"}}),
                      ("ja", {"cookies": {"mizumori_lang": "ja"}}),
                      ("ja", {"headers": {"Accept-Language": "ja,en-US;q=0.9"}}),
                      ("en", {"headers": {"Accept-Language": "en-GB,ja;q=0.5"}})):
        i = 0 if lang == "ja" else 1
        client = TestClient(app_client.app, cookies=how.get("cookies"))
        r = client.get("/api/alerts", params=how.get("params"),
                       headers={**admin, **how.get("headers", {})})
        assert r.status_code == 200, r.text
        got = {a["type"]: a["message"] for a in r.json()}
        assert got == {k: v[i] for k, v in MESSAGES.items()}, (how, got)
        one = client.get(f"/api/alerts/{r.json()[0]['id']}", params=how.get("params"),
                         headers={**admin, **how.get("headers", {})}).json()
        assert one["message"] == MESSAGES[one["type"]][i]
    # the other language's script nowhere: no kana or kanji in English, no ASCII words
    # (beyond units) in Japanese
    en = " ".join(a["message"] for a in active(app_client, admin, lang="en"))
    assert not any("\u3000" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef" for c in en), en
    ja = " ".join(a["message"] for a in active(app_client, admin, lang="ja"))
    assert not set(re.findall(r"[A-Za-z_]{3,}", ja)), ja


def test_an_alert_from_before_its_values_were_kept(
        dev: Device, app_client: TestClient, admin: dict[str, str]) -> None:
    """An alert stored with only its English message (before migration 0008) still shows
    it; the migration's parser recovers the values from such a message where it can."""
    Sender(dev)(1200, battery_mv=3300)
    app: Any = app_client.app
    with app.state.sessions() as s, s.begin():
        s.execute(update(Alert).values(params={}, message="old words"))
    got = {a["type"]: (a["message"], a["params"]) for a in active(app_client, admin,
                                                                  lang="ja")}
    assert got == {"battery": ("old words", {}),  # nothing to write it from
                   "level": ("水防団待機水位に達しました（水位 1.20 m）", {})}  # its value
    migration = importlib.import_module(
        "mizumori_server.migrations.versions.0008_alert_params")
    assert migration._params("rise", 400, "rising 0.40 m/h (limit 0.30 m/h)") == {
        "rate_mm_h": 400, "limit_mm_h": 300}
    assert migration._params("fault", 3, "sensor fault in the last 3 readings: "
                                          "no_echo, stuck") == {
        "readings": 3, "flags": ["no_echo", "stuck"]}
    assert migration._params("battery", 3380, "battery 3.38 V (low below 3.4 V)") == {
        "battery_mv": 3380, "low_mv": 3400}
    assert migration._params("offline", 1000, "expected every 30 min") == {
        "last_seen": 1000, "expected_s": 1800}
    assert migration._params("queue_overflow", 2, "the station's queue overflowed and "
                                                  "dropped readings (seq 17)") == {
        "dropped": 2, "first_seq": 17}
    assert migration._params("rise", 400, "garbled") == {}


def test_webhooks_carry_the_message_in_both_languages() -> None:
    """A webhook's alert: `message` in English as before, `messages` in each language."""
    alert = Alert(type="level", level=4, params={"level_mm": 2600}, message="",
                  closed_at=None)
    assert {lang: alerts.alert_message(alert, lang, 0) for lang in ("ja", "en")} == {
        "ja": MESSAGES["level"][0], "en": MESSAGES["level"][1]}


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_refusals_are_in_the_language_asked_for(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object],
        lang: str) -> None:
    """Issue 18: the dashboard showed `body: Value error, river levels must rise…` in
    Japanese. A refused request is told why in the asker's language."""
    h = {**admin, "Accept-Language": lang}
    r = app_client.patch("/api/stations/taku-01", headers=h,
                         json={"standby_mm": 1000, "caution_mm": 900})
    assert r.status_code == 422
    want = {"ja": "河川水位は 水防団待機水位 ≦ はん濫注意水位 ≦ 避難判断水位 ≦ "
                  "はん濫危険水位 の順にしてください",
            "en": "river levels must rise: standby <= caution <= evacuation <= danger"}[lang]
    assert r.json()["detail"] == want
    assert r.json()["errors"][0]["type"] == "river_levels_order"
    r = app_client.patch("/api/stations/taku-01", headers=h, json={"interval_normal_s": 5})
    assert r.status_code == 422
    assert r.json()["detail"] == {"ja": "平常時の観測間隔 (秒): 60 以上にしてください",
                                  "en": "body.interval_normal_s: Input should be greater "
                                        "than or equal to 60"}[lang]
    r = app_client.patch("/api/stations/taku-01", headers=h, json={"caution_mm": 2400})
    assert r.status_code == 422 and r.json()["detail"] == want  # checked with the stored ones
    r = app_client.patch("/api/stations/taku-01", headers=h, json={"interval_normal_s": None})
    assert r.json()["detail"] == {"ja": "平常時の観測間隔 (秒) は空にできません",
                                  "en": "interval_normal_s cannot be null"}[lang]
    r = app_client.post("/api/rollouts", headers=h, json={
        "release": "0.1.0", "target": {"all": True}, "stages": [50, 20]})
    assert r.status_code == 422 and r.json()["detail"].endswith(
        {"ja": "段階は 100 で終わる昇順の百分率にしてください（例: 5, 25, 100）",
         "en": "stages: rising percentages ending at 100, e.g. [5, 25, 100]"}[lang])
    r = app_client.post("/api/alerts/99999/ack", headers=h, json={})
    assert r.status_code == 404 and r.json()["detail"] == {
        "ja": "警報 #99999 はありません", "en": "no alert 99999"}[lang]


def test_offline_follows_the_mlit_profiles_mode(dev: Device, app_client: TestClient,
                                                admin: dict[str, str]) -> None:
    """Watch mode: a heartbeat a day; observation mode: a reading per obs_interval_s, from
    the start level up until the level falls below the stop level; flood mode first."""
    app: Any = app_client.app
    settings: Settings = app.state.settings
    r = app_client.patch(f"/api/devices/{dev.id}/config", headers=admin, json={"settings": {
        "profile": "mlit", "obs_start_mm": 800, "obs_stop_mm": 700, "obs_interval_s": 300}})
    assert r.status_code == 200, r.text
    for bad, why in (({"obs_stop_mm": 900}, "obs_stop_mm: above obs_start_mm"),
                     ({"obs_interval_s": 240}, "obs_interval_s: one of 600, 300, 120"),
                     ({"profile": "fast"}, "profile: one of standard, mlit")):
        r = app_client.patch(f"/api/devices/{dev.id}/config", headers=admin,
                             json={"settings": bad})
        assert r.status_code == 422 and why in r.json()["detail"], r.text
    send = Sender(dev)

    def check(at: int) -> int:
        with app.state.sessions() as s, s.begin():
            return alerts.check_offline(s, settings, at)

    def mode() -> str:
        r = app_client.get("/api/stations/taku-01", headers=admin)
        assert r.status_code == 200, r.text
        latest = r.json().get("latest", r.json())
        return str(latest["observation_mode"])

    seen = send(500)["server_time"]  # watch mode: expected once a day
    assert mode() == "watch"
    assert check(seen + 3 * 86400) == 0
    assert check(seen + 3 * 86400 + 1) == 1
    assert "expected every 1440 min" in active(app_client, admin)[0]["message"]
    seen = send(800)["server_time"]  # the start level: a reading every 5 min
    assert mode() == "observation" and active(app_client, admin) == []
    assert check(seen + 900) == 0 and check(seen + 901) == 1
    seen = send(750)["server_time"]  # between the levels: observation mode holds
    assert mode() == "observation"
    assert check(seen + 900) == 0 and check(seen + 901) == 1
    seen = send(699)["server_time"]  # below the stop level: watch mode again
    assert mode() == "watch" and active(app_client, admin) == []
    seen = send(750)["server_time"]  # between the levels from below: watch mode holds
    assert mode() == "watch" and check(seen + 901) == 0
    seen = send(750, flags=FLAGS["flood_mode"])["server_time"]  # flood mode wins
    assert check(seen + 361) == 1
