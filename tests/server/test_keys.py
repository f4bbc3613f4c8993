"""The server's secret key (issue 21, item 3): the development key is refused outside the
demo; the database keeps a check value of its key and a server started with another key
refuses to start with one line saying what to do; `rotate_key` re-seals every secret under
a new key while the old one still opens them; misspelt MIZUMORI_* settings are reported."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, STATION, login
from device import Device, reading
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mizumori_server import db, keys, notify
from mizumori_server.api.people import create
from mizumori_server.app import create_app
from mizumori_server.models import Device as DeviceRow
from mizumori_server.models import LorawanIntegration, ServerMeta
from mizumori_server.settings import DEV_SECRET_KEY, Settings
from mizumori_tools.fleet import free_port
from receiver import receiver
from sqlalchemy import delete, select

KEY_A = "first-key-kept-in-the-vault-2026"
KEY_B = "second-key-after-the-rotation-27"


def settings_for(database_url: str, tmp_path: Path, **kw: object) -> Settings:
    values: dict[str, object] = {"database_url": database_url, "data_dir": tmp_path,
                                 "auto_migrate": True, "background": False,
                                 "webhook_allow": "127.0.0.1", **kw}
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            yield client
    finally:
        app.state.engine.dispose()


def sealed(database_url: str) -> dict[str, list[bytes]]:
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as c:
            return {m.__tablename__: [bytes(v) for v in c.execute(select(getattr(m, col)).where(
                getattr(m, col).is_not(None)).order_by(m.id)).scalars()]
                    for m, col in keys.SEALED}
    finally:
        engine.dispose()


def test_the_development_key_is_refused_unless_asked_for(database_url: str,
                                                         tmp_path: Path) -> None:
    with pytest.raises(keys.Refused, match="MIZUMORI_SECRET_KEY is not set.*"
                                           "MIZUMORI_INSECURE_DEV_KEY=true"):
        create_app(settings_for(database_url, tmp_path))
    with pytest.raises(keys.Refused, match="is empty"):
        create_app(settings_for(database_url, tmp_path, secret_key=" "))
    with running(settings_for(database_url, tmp_path, insecure_dev_key=True)) as client:
        assert client.get("/healthz").json()["status"] == "ok"


def provisioned(client: TestClient) -> tuple[dict[str, str], Device]:
    app: FastAPI = client.app  # type: ignore[assignment]
    with app.state.sessions() as s:
        create(s, "admin", ADMIN_PASSWORD, "admin")
        s.commit()
    auth = login(client)
    client.post("/api/stations", headers=auth, json=STATION).raise_for_status()
    r = client.post("/api/devices/provision", headers=auth,
                    json={"hardware_id": "esp32-key", "station": "taku-01"})
    r.raise_for_status()
    return auth, Device(client, r.json())


def test_a_server_with_another_key_refuses_to_start(database_url: str,
                                                    tmp_path: Path) -> None:
    with running(settings_for(database_url, tmp_path, secret_key=KEY_A)) as client:
        _, dev = provisioned(client)
        assert dev.send(reading(1)).status_code == 200
    with pytest.raises(keys.Refused) as e:
        create_app(settings_for(database_url, tmp_path, secret_key=KEY_B))
    line = str(e.value)
    assert "\n" not in line and "not the key this database's secrets are sealed under" in line
    assert "MIZUMORI_OLD_SECRET_KEYS" in line and "mizumori keys rotate" in line
    assert KEY_A not in line and KEY_B not in line
    # a database from before the check value (or whose row is gone): the secrets tell
    engine = db.make_engine(database_url)
    with engine.begin() as c:
        c.execute(delete(ServerMeta))
    with pytest.raises(keys.Refused, match="not the key"):
        create_app(settings_for(database_url, tmp_path, secret_key=KEY_B))
    with engine.connect() as c:  # refused: nothing written
        assert c.execute(select(ServerMeta.value)).all() == []
    with running(settings_for(database_url, tmp_path, secret_key=KEY_A)) as client:
        dev.client = client
        dev.counter += 1
        assert dev.send(reading(2)).status_code == 200  # the right key: as before
    with engine.connect() as c:
        assert c.execute(select(ServerMeta.value)).scalar_one() == keys.check_value(KEY_A)
    engine.dispose()


def test_an_empty_database_takes_the_key_it_first_starts_with(database_url: str,
                                                              tmp_path: Path) -> None:
    with running(settings_for(database_url, tmp_path, secret_key=KEY_A)):
        pass
    with pytest.raises(keys.Refused, match="not the key"):
        create_app(settings_for(database_url, tmp_path, secret_key=KEY_B))


def test_rotation_re_seals_every_secret_and_the_old_key_works_meanwhile(
        database_url: str, tmp_path: Path) -> None:
    with receiver() as rec:
        with running(settings_for(database_url, tmp_path, secret_key=KEY_A)) as client:
            auth, dev = provisioned(client)
            hook = client.post("/api/webhooks", headers=auth,
                               json={"name": "city", "url": rec.url}).json()
            client.post("/api/lorawan/integrations", headers=auth, json={
                "name": "chirp", "kind": "chirpstack", "api_url": "https://ns.example.org/",
                "api_token": "ns-api-token-123"}).raise_for_status()
            assert dev.send(reading(1)).status_code == 200
        before = sealed(database_url)
        assert [len(v) for v in before.values()] == [1, 1, 1]

        # 1. every server restarts with the new key, the old one in MIZUMORI_OLD_SECRET_KEYS
        both = settings_for(database_url, tmp_path, secret_key=KEY_B, old_secret_keys=KEY_A)
        with running(both) as client:
            dev.client = client
            assert dev.send(reading(2)).status_code == 200  # opened with the old key
            auth = login(client)
            client.post("/api/stations", headers=auth,
                        json={**STATION, "code": "taku-02"}).raise_for_status()
            r = client.post("/api/devices/provision", headers=auth,
                            json={"hardware_id": "esp32-new", "station": "taku-02"})
            newer = Device(client, r.json())  # sealed under the new key
            assert newer.send(reading(1)).status_code == 200
        # 2. `mizumori keys rotate`
        assert keys.rotate_from_settings(both).startswith(
            "re-sealed under the new key: 2 in devices, 1 in webhooks, 1 in lorawan_integrations")
        after = sealed(database_url)
        assert all(not set(after[t]) & set(before[t]) for t in after)  # all sealed anew
        # 3. the old key goes: with the new key alone everything opens
        with running(settings_for(database_url, tmp_path, secret_key=KEY_B)) as client:
            app: FastAPI = client.app  # type: ignore[assignment]
            dev.client, newer.client = client, client
            assert dev.send(reading(3)).status_code == 200
            assert newer.send(reading(2)).status_code == 200
            with app.state.sessions() as s:
                token = s.scalars(select(LorawanIntegration.api_token_enc)).one()
                assert token is not None
                assert app.state.box.open(token) == b"ns-api-token-123"
            import httpx
            with httpx.Client() as http:  # the delivery is signed with the same secret
                assert notify.send_due(app.state.sessions, app.state.box, app.state.settings,
                                       http) >= 1
            [request] = rec.requests[:1]
            assert rec.verify(hook["secret"], request)
        # and the old key alone no longer fits
        with pytest.raises(keys.Refused, match="not the key"):
            create_app(settings_for(database_url, tmp_path, secret_key=KEY_A))


def test_a_rotation_with_a_wrong_old_key_changes_nothing(database_url: str,
                                                         tmp_path: Path) -> None:
    with running(settings_for(database_url, tmp_path, secret_key=KEY_A)) as client:
        provisioned(client)
    before = sealed(database_url)
    engine = db.make_engine(database_url)
    try:
        with pytest.raises(keys.Refused, match="neither MIZUMORI_SECRET_KEY nor"):
            keys.rotate_key(engine, "not-the-old-key-at-all", KEY_B)
        # the check value row gone: the secret itself is found unreadable, and named
        with engine.begin() as c:
            c.execute(delete(ServerMeta))
        with pytest.raises(keys.Refused, match=r"devices \d+: its secret opens with none"):
            keys.rotate_key(engine, ["not-the-old-key-at-all"], KEY_B)
        with pytest.raises(keys.Refused, match="development key"):
            keys.rotate_key(engine, KEY_A, DEV_SECRET_KEY)
        with engine.connect() as c:
            assert c.execute(select(ServerMeta)).all() == []
    finally:
        engine.dispose()
    assert sealed(database_url) == before
    with pytest.raises(keys.Refused, match="MIZUMORI_OLD_SECRET_KEYS is empty"):
        keys.rotate_from_settings(settings_for(database_url, tmp_path, secret_key=KEY_B))


def test_rotating_twice_and_back(database_url: str, tmp_path: Path) -> None:
    with running(settings_for(database_url, tmp_path, secret_key=KEY_A)) as client:
        provisioned(client)
    engine = db.make_engine(database_url)
    try:
        assert keys.rotate_key(engine, KEY_A, KEY_B)["devices"] == 1
        assert keys.rotate_key(engine, KEY_A, KEY_B)["devices"] == 1  # again: harmless
        assert keys.rotate_key(engine, [KEY_B], KEY_A)["devices"] == 1
        with engine.connect() as c:
            assert c.execute(select(ServerMeta.value)).scalar_one() == keys.check_value(KEY_A)
            [secret] = c.execute(select(DeviceRow.secret_enc)).scalars()
            assert secret is not None
        assert keys.box_for(settings_for(database_url, tmp_path, secret_key=KEY_A)
                            ).opens_with_current(secret)
    finally:
        engine.dispose()


def test_unknown_settings_are_named_with_the_closest_known_one(tmp_path: Path) -> None:
    env = {"MIZUMORI_SECRETKEY": "x", "MIZUMORI_PORT": "8081", "mizumori_webhook_alow": "y",
           "MIZUMORI_CLOCK_FILE": "/tmp/c", "MIZUMORI_ZZZZZZ": "1", "PATH": "/bin"}
    assert keys.unknown_settings(env, None) == [
        ("MIZUMORI_SECRETKEY", "MIZUMORI_SECRET_KEY"),
        ("MIZUMORI_WEBHOOK_ALOW", "MIZUMORI_WEBHOOK_ALLOW"),
        ("MIZUMORI_ZZZZZZ", None)]
    dotenv = tmp_path / ".env"
    dotenv.write_text("MIZUMORI_DATABASE_UR=postgresql://x\nMIZUMORI_OPEN_DATA=true\n")
    line = keys.warn_unknown_settings({}, dotenv)
    assert line == ("mizumori: unknown setting, ignored: MIZUMORI_DATABASE_UR "
                    "(did you mean MIZUMORI_DATABASE_URL?)")
    assert keys.warn_unknown_settings({"MIZUMORI_PORT": "1"}, None) is None


def test_serve_says_it_in_one_line(database_url: str, tmp_path: Path) -> None:
    """`mizumori serve` (uvicorn, 2 workers) with the development key or another key: one
    line each, no traceback, and the misspelt setting named."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIZUMORI_")}
    env.update({"MIZUMORI_DATABASE_URL": database_url, "MIZUMORI_DATA_DIR": str(tmp_path),
                "MIZUMORI_SECRETKEY": KEY_B})
    cli = [sys.executable, "-m", "mizumori_tools.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, cwd=tmp_path,
                   capture_output=True)
    port = str(free_port())
    r = subprocess.run([*cli, "serve", "--port", port], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert "MIZUMORI_SECRETKEY (did you mean MIZUMORI_SECRET_KEY?)" in r.stderr
    assert "mizumori: MIZUMORI_SECRET_KEY is not set" in r.stderr
    with running(settings_for(database_url, tmp_path, secret_key=KEY_A)):
        pass
    env["MIZUMORI_SECRET_KEY"] = env.pop("MIZUMORI_SECRETKEY")
    # the workers refuse and uvicorn stops (STARTUP_FAILURE) rather than restarting them
    r = subprocess.run([*cli, "serve", "--port", port, "--workers", "2"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("mizumori:")]
    assert lines and all("not the key this database's secrets are sealed under" in x
                         for x in lines), r.stderr


@pytest.mark.parametrize("setting, value, message", [
    ("timezone", "Asia/Tokio", "not a time zone name"),
    ("language", "fr", "ja or en"),
    ("release_keys_file", "/nonexistent/release.pub", "cannot be read"),
])
def test_settings_that_cannot_work_are_refused_at_start(setting: str, value: str,
                                                        message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        Settings(**{setting: value})  # type: ignore[arg-type]


def test_a_release_key_file_with_a_bad_line_is_refused(tmp_path: Path) -> None:
    from pydantic import ValidationError

    f = tmp_path / "release.pub"
    f.write_text("# the city's release key\n" + "ab" * 32 + "\nnot-a-key\n")
    with pytest.raises(ValidationError, match="line 3: not an Ed25519 public key"):
        Settings(release_keys_file=f)
    f.write_text("ab" * 32 + "  # 2026\n")
    assert Settings(release_keys_file=f).trusted_release_keys() == ["ab" * 32]
