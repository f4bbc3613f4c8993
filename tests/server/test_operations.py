"""Operations (docs/operations.md): liveness and readiness, fleet gauges, the access log,
pruning and the clock-jump guard, on SQLite and on PostgreSQL."""

import logging
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD
from device import Device, batch, reading
from fastapi.testclient import TestClient
from mizumori_server import accesslog, background, clock, db, metrics, prune
from mizumori_server.app import create_app
from mizumori_server.models import (
    Alert,
    ApiToken,
    Delivery,
    Digest,
    LoginAttempt,
    Reading,
    User,
    Webhook,
)
from mizumori_server.settings import Settings
from sqlalchemy import create_engine, func, select, update


@pytest.fixture
def dev(app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> Device:
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-0001", "station": "taku-01"})
    return Device(app_client, r.json())


def scrape(client: TestClient) -> dict[str, float]:
    """/metrics as {series: value}."""
    r = client.get("/metrics")
    assert r.status_code == 200
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


# --- liveness and readiness -----------------------------------------------------------------

def test_healthz_is_liveness_and_readyz_needs_a_writable_database(
        app_client: TestClient, settings: Settings) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    r = app_client.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready", r.text
    app = app_client.app
    good = app.state.sessions  # type: ignore[attr-defined]
    dead = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"
                         if settings.database_url.startswith("postgresql")
                         else "sqlite:////nonexistent-mizumori-dir/x.db")
    app.state.sessions = db.sessions(dead)  # type: ignore[attr-defined]
    app.state.probe_written = 0.0  # type: ignore[attr-defined]  # the next probe writes
    try:
        r = app_client.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["problems"][0].startswith("database not writable"), r.text
        assert "nobody" not in r.text and "127.0.0.1:1" not in r.text  # no error text
        assert app_client.get("/healthz").status_code == 200  # the process still answers
    finally:
        app.state.sessions = good  # type: ignore[attr-defined]
        dead.dispose()
    assert app_client.get("/readyz").status_code == 200


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system of its own (tmpfs), or a skip where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_readyz_fails_on_a_full_data_disk(small_disk: Path) -> None:
    settings = Settings(data_dir=small_disk, database_url="", auto_migrate=True,
                        secret_key="test-secret-key", background=False, ready_min_free_mb=1)
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            assert client.get("/readyz").status_code == 200
            with open(small_disk / "filler", "wb") as f:  # fill the disk to the last block
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            r = client.get("/readyz")
            assert r.status_code == 503, r.text
            assert any(p.startswith("data disk: 0 MB free") for p in r.json()["problems"])
            assert client.get("/healthz").status_code == 200
            metrics_text = client.get("/metrics").text
            assert re.search(r"^mizumori_data_disk_free_bytes \S+$", metrics_text, re.M)
            (small_disk / "filler").unlink()
            assert client.get("/readyz").status_code == 200
    finally:
        app.state.engine.dispose()


# --- fleet gauges ---------------------------------------------------------------------------

def test_fleet_gauges_are_read_from_the_database(dev: Device, app_client: TestClient) -> None:
    before = scrape(app_client)
    assert before['mizumori_stations{status="unseen"}'] == 1
    assert before["mizumori_database_up"] == 1
    assert "mizumori_last_upload_timestamp_seconds" not in before
    status = batch.encode_status(740, 3, 0, 4, -67)
    assert dev.send(reading(1) + status).status_code == 200
    m = scrape(app_client)
    assert m['mizumori_stations{status="online"}'] == 1
    assert m['mizumori_stations{status="unseen"}'] == 0
    assert m['mizumori_station_queue_depth{station="taku-01"}'] == 740
    assert m["mizumori_fleet_queued_readings"] == 740
    assert abs(m["mizumori_last_upload_timestamp_seconds"] - time.time()) < 60
    assert 0 <= m["mizumori_seconds_since_last_upload"] < 60
    assert m["mizumori_webhook_deliveries_pending"] == 0
    assert m['mizumori_alerts_open{type="offline"}'] == 0
    assert m["mizumori_ingest_uploads_total"] >= 1
    assert m["mizumori_data_disk_free_bytes"] > 0
    assert m['mizumori_http_requests_total{method="POST",route="/api/ingest",status="2xx"}'] >= 1


# --- the access log -------------------------------------------------------------------------

def test_access_log_has_request_ids_and_no_secrets(
        dev: Device, app_client: TestClient, admin: dict[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mizumori")
    r = app_client.get("/api/stations?station=taku-01&token=hush-hush-1234",
                       headers={**admin, "X-Request-ID": "req-abc.123"})
    assert r.headers["x-request-id"] == "req-abc.123"
    line = next(rec.getMessage() for rec in caplog.records
                if rec.name == "mizumori.access" and "req-abc.123" in rec.getMessage())
    assert '"method": "GET"' in line and '"status": 200' in line and "duration_ms" in line
    assert "token=***" in line and "hush-hush" not in line and "station=taku-01" in line
    # a request id of ours when the client's is no plain token
    r = app_client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{16}", r.headers["x-request-id"])

    caplog.clear()
    body = reading(1)
    bad = dev.headers(body)
    bad["X-Mizumori-Signature"] = "0" * 64
    assert app_client.post("/api/ingest", content=body, headers=bad).status_code == 401
    refused = [rec for rec in caplog.records if rec.name == "mizumori.ingest"]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING
    msg = refused[0].getMessage()
    assert f'"device": {dev.id}' in msg and '"code": "bad_signature"' in msg, msg
    access = [rec.getMessage() for rec in caplog.records if rec.name == "mizumori.access"]
    assert f'"device": {dev.id}' in access[0] and '"status": 401' in access[0]
    # stored uploads are logged with their device too, and no secret appears anywhere
    assert dev.send(reading(2)).status_code == 200
    everything = "\n".join(rec.getMessage() for rec in caplog.records)
    assert dev.secret.hex() not in everything and "0" * 64 not in everything
    assert admin["Authorization"][7:] not in everything


def test_log_lines_of_a_request_carry_its_id() -> None:
    handler_records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(self.format(record))

    h = Keep()
    h.setFormatter(accesslog.LineFormatter("%(message)s"))
    h.addFilter(accesslog.RequestIdFilter())
    logger = logging.getLogger("mizumori.test-request-id")
    logger.addHandler(h)
    try:
        token = accesslog.request_id.set("r1")
        dtoken = accesslog.device_id.set("7")
        logger.warning("mizumori: something")
        accesslog.request_id.reset(token)
        accesslog.device_id.reset(dtoken)
        logger.warning("mizumori: outside")
    finally:
        logger.removeHandler(h)
    assert handler_records == ["mizumori: something [request r1 device 7]",
                               "mizumori: outside"]


# --- the clock ------------------------------------------------------------------------------

class FakeClocks:
    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 1000.0

    def advance(self, s: float, jump: float = 0.0) -> None:
        self.wall += s + jump
        self.mono += s


def test_a_clock_jump_is_told_from_time_passing() -> None:
    c = FakeClocks()
    w = clock.Watch(60, wall=lambda: c.wall, monotonic=lambda: c.mono)
    c.advance(30)
    assert w.tick() == 0.0
    c.advance(30, jump=20)  # a small NTP step is no jump
    assert w.tick() == 0.0 and w.offset == 20
    c.advance(30, jump=86400)
    assert w.tick() == 86400 and w.jumps == 1 and w.offset == 86420
    c.advance(30, jump=-3600)
    assert w.tick() == -3600 and w.last_jump == -3600


def test_a_forward_clock_jump_raises_no_fleet_wide_offline_alerts(
        dev: Device, app_client: TestClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    app = app_client.app
    assert dev.send(reading(1)).status_code == 200  # heard just now
    c = FakeClocks()
    c.wall = time.time()
    check = background.OfflineCheck(
        app, clock.Watch(60, wall=lambda: c.wall, monotonic=lambda: c.mono),  # type: ignore[arg-type]
        monotonic=lambda: c.mono)

    def open_offline() -> int:
        with app.state.sessions() as s:  # type: ignore[attr-defined]
            return int(s.scalar(select(func.count()).select_from(Alert)
                                .where(Alert.type == "offline", Alert.state != "closed")) or 0)

    skipped = metrics.OFFLINE_SKIPPED._value.get()
    assert check.round() and open_offline() == 0
    # the server's clock is set a day ahead: every station now looks a day silent
    c.advance(30, jump=86400)
    monkeypatch.setattr(clock, "now", lambda: int(c.wall))
    caplog.set_level(logging.WARNING, logger="mizumori.background")
    assert not check.round()
    assert open_offline() == 0
    assert "clock jumped by +86400 s" in caplog.text
    assert metrics.OFFLINE_SKIPPED._value.get() == skipped + 1
    # held until the station has had the time to report under the new clock
    # (late_after_intervals × the station's expected interval: 1.5 × 600 s × upload_every 3)
    assert check.hold_until - c.mono == pytest.approx(2700, abs=1)
    c.advance(2600)
    assert not check.round() and open_offline() == 0
    c.advance(200)
    assert check.round()
    assert open_offline() == 1  # it never reported again: now it is offline, rightly
    assert "offline check resumed" in caplog.text
    assert abs(scrape(app_client)["mizumori_clock_offset_seconds"] - 86400) < 1


def test_fleet_gauges_and_the_jump_hold_follow_the_mlit_mode(
        dev: Device, app_client: TestClient, admin: dict[str, str]) -> None:
    """A station of the MLIT profile in watch mode sends a heartbeat a day: the fleet gauges
    count it online for hours of silence, and a forward clock jump holds the offline check
    for a day and a half of it; in observation mode it is expected every obs_interval_s."""
    app = app_client.app
    sessions = app.state.sessions  # type: ignore[attr-defined]
    settings = app.state.settings  # type: ignore[attr-defined]
    r = app_client.patch(f"/api/devices/{dev.id}/config", headers=admin, json={"settings": {
        "profile": "mlit", "obs_start_mm": 800, "obs_stop_mm": 700, "obs_interval_s": 300}})
    assert r.status_code == 200, r.text
    sent = dev.send(reading(1, level_mm=500))  # below the start level: watch mode
    assert sent.status_code == 200, sent.text
    seen = sent.json()["server_time"]

    def status_at(t: int) -> str:
        fleet = metrics.FleetCollector(sessions, settings, lambda: t)
        family = next(f for f in fleet.collect() if f.name == "mizumori_stations")
        return next(s.labels["status"] for s in family.samples if s.value == 1)

    def longest() -> int:
        with sessions() as s:
            return background.max_expected_interval(s)

    # 3 h silent: offline under the standard schedule (3 x 600 s x 3), not in watch mode
    assert status_at(seen + 3 * 3600) == "online"
    assert status_at(seen + 2 * 86400) == "late"
    assert status_at(seen + 3 * 86400 + 1) == "offline"
    assert longest() == 86400
    hold = background.OfflineCheck(app).hold_after(3600)  # type: ignore[arg-type]
    assert hold == settings.late_after_intervals * 86400
    assert dev.send(reading(2, level_mm=820)).status_code == 200  # observation mode
    seen = dev.send(reading(3, level_mm=820)).json()["server_time"]
    assert longest() == 300
    assert status_at(seen + 450) == "online" and status_at(seen + 901) == "offline"


# --- pruning --------------------------------------------------------------------------------

def test_pruning_deletes_only_what_is_past_its_time(
        dev: Device, app_client: TestClient, settings: Settings) -> None:
    app = app_client.app
    sessions = app.state.sessions  # type: ignore[attr-defined]
    now = int(time.time())
    day = 86400
    assert dev.send(reading(1, age_s=0) + reading(2, age_s=0)).status_code == 200
    with sessions() as s, s.begin():
        uid = s.scalar(select(User.id).where(User.username == "admin"))
        for i, (kind, expires) in enumerate([
                ("session", now - 10), ("session", now + 3600),
                ("token", now - 40 * day), ("token", now - day), ("token", None)]):
            s.add(ApiToken(user_id=uid, kind=kind, name=f"t{i}", token_hash=f"{i:064x}",
                           created_at=now - 50 * day, expires_at=expires))
        s.add(LoginAttempt(key="someone", at=now - 120))
        s.add(LoginAttempt(key="someone", at=now))
        # readings measured long ago (a station's old history)
        # received 400 days ago; seq 2 arrived now with a bogus age of 400 days: kept
        s.execute(update(Reading).where(Reading.seq == 1).values(t=now - 400 * day,
                                                                 received=now - 400 * day))
        s.execute(update(Reading).where(Reading.seq == 2).values(t=now - 400 * day))
        station_id, device_id = s.execute(select(Reading.station_id, Reading.device_id)).first()
        for seq, at in ((10, now - 400 * day), (20, now - day)):  # LoRaWAN watch-day digests
            s.add(Digest(station_id=station_id, device_id=device_id, seq=seq, first_seq=seq - 9,
                         t=at, readings=10))
    kept = prune.prune(sessions, settings, now)
    assert kept["sessions"] >= 1 and kept["api_tokens"] == 1
    assert "readings" not in kept  # readings are kept for ever by default
    with sessions() as s:
        names = set(s.scalars(select(ApiToken.name).where(ApiToken.name.like("t%"))))
        assert names == {"t1", "t3", "t4"}  # a token expired a day ago is still listed
        assert s.scalar(select(func.count()).select_from(LoginAttempt)) == 1
        assert s.scalar(select(func.count()).select_from(Reading)) == 2
    keep_a_year = settings.model_copy(update={"reading_retention_days": 365})
    pruned = prune.prune(sessions, keep_a_year, now)
    assert pruned["readings"] == 1 and pruned["digests"] == 1
    with sessions() as s:
        assert list(s.scalars(select(Reading.seq))) == [2]
        assert list(s.scalars(select(Digest.seq))) == [20]
    r = app_client.get("/api/stations/taku-01", headers=login_headers(app_client))
    assert r.status_code == 200  # the station's latest state stays


def test_old_webhook_deliveries_are_pruned(app_client: TestClient, settings: Settings,
                                          station: dict[str, object]) -> None:
    from mizumori_server.models import AlertEvent, Station

    sessions = app_client.app.state.sessions  # type: ignore[attr-defined]
    now = int(time.time())
    day = 86400
    with sessions() as s, s.begin():
        sid = s.scalar(select(Station.id).where(Station.code == "taku-01"))
        a = Alert(station_id=sid, type="offline", level=0, opened_at=now, updated_at=now,
                  state="open")
        s.add(a)
        s.flush()
        wh = Webhook(name="gis", url="https://gis.example.jp/hook", secret_enc=b"x",
                     created_at=now, created_by="admin")
        s.add(wh)
        s.flush()
        for state, created, delivered in [
                ("delivered", now - 40 * day, now - 40 * day),
                ("expired", now - 40 * day, None),
                ("pending", now - 40 * day, None),
                ("delivered", now - day, now - day)]:
            ev = AlertEvent(alert_id=a.id, kind="opened", level=0, at=now, by="server")
            s.add(ev)
            s.flush()
            s.add(Delivery(webhook_id=wh.id, event_id=ev.id, body=b"{}", state=state,
                           next_at=now, created_at=created, delivered_at=delivered))
    assert prune.prune(sessions, settings, now)["deliveries"] == 2
    with sessions() as s:
        assert sorted(s.scalars(select(Delivery.state))) == ["delivered", "pending"]


def login_headers(client: TestClient) -> dict[str, str]:
    r = client.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    client.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_retention_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 30"):
        Settings(reading_retention_days=7)
    assert Settings(reading_retention_days=0).reading_retention_days == 0


def test_the_data_folder_does_not_depend_on_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIZUMORI_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    default = Settings().data_dir
    assert default.is_absolute() and default == Path(db.__file__).resolve().parents[2] / "data"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/mizumori")
    assert Settings().data_dir == Path("/var/lib/mizumori")
    monkeypatch.setenv("MIZUMORI_DATA_DIR", "relative")
    s = Settings()
    monkeypatch.chdir("/")
    assert s.data_dir == tmp_path / "relative"  # resolved once, at start
    assert s.effective_database_url() == f"sqlite:///{tmp_path / 'relative' / 'mizumori.db'}"


def test_api_tokens_get_an_expiry_by_default(settings: Settings) -> None:
    now = 1_800_000_000
    assert prune.token_expires_at(settings, None, now) == now + 365 * 86400
    assert prune.token_expires_at(settings, 7, now) == now + 7 * 86400
    never = settings.model_copy(update={"token_days": 0})
    assert prune.token_expires_at(never, None, now) is None
