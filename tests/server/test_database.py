"""Migrations and health."""

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mizumori_server import db
from mizumori_server.app import create_app
from mizumori_server.settings import Settings


def test_unmigrated_database_is_refused_with_a_clear_message(database_url: str) -> None:
    with pytest.raises(db.NotMigrated, match="mizumori db upgrade"):
        create_app(Settings(database_url=database_url))


def test_cli_upgrade_then_serve_health(database_url: str, tmp_path: Path) -> None:
    env = {"MIZUMORI_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    mizumori = [sys.executable, "-m", "mizumori_tools.cli"]
    r = subprocess.run([*mizumori, "db", "upgrade"], env=env, capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*mizumori, "user", "create", "boss", "--password", "short"], env=env,
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "10 characters" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*mizumori, "user", "create", "boss", "--password", "boss-boss-12"],
                       env=env, capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "user name" in r.stderr and "Traceback" not in r.stderr
    app = create_app(Settings(database_url=database_url, secret_key="database-test-key"))
    with TestClient(app) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert "mizumori_ingest_uploads_total" in client.get("/metrics").text
        assert client.get("/openapi.json").json()["info"]["title"] == "Mizumori fleet server"
    app.state.engine.dispose()


# Rows a database in use has since migration 0004, in tables every later migration keeps.
ROWS_0004 = {
    "stations": "INSERT INTO stations (id, code, name, site_type, latitude, longitude, "
                "datum_m, mount_height_mm, rise_limit_mm_h, interval_normal_s, "
                "interval_flood_s, upload_every, tags, created_at) VALUES (1, 'taku-01', "
                "'多久橋', 'river', 33.3, 130.1, 0, 5000, 300, 600, 120, 3, '[]', 1)",
    "devices": "INSERT INTO devices (id, hardware_id, transport, firmware_version, "
               "station_id, last_counter, last_seq, desired_config, desired_version, "
               "reported_version, created_at) VALUES (1, 'esp32-0001', 'wifi', '1.0.0', "
               "1, 7, 3, '{}', 2, 2, 1)",
    "device_installs": "INSERT INTO device_installs (device_id, station_id, installed_at, "
                       "by_user) VALUES (1, 1, 1, 'tech')",
    "readings": "INSERT INTO readings (station_id, device_id, seq, t, received, level_mm, "
                "flags) VALUES (1, 1, 3, 100, 100, 1200, 0)",
}


def test_every_migration_from_0004_down_and_up_keeps_the_data(database_url: str) -> None:
    """Each migration after 0004, one step at a time, down to 0004 and up again on a
    database with data: the rows of the tables that stay (a station, its device, the install
    and a reading, which foreign keys tie together) are all there after every step, and on
    SQLite nothing dangles. A migration that rebuilt a parent table with foreign keys on
    would lose the children here."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    engine = db.make_engine(database_url)
    cfg = db.alembic_config(engine)
    command.upgrade(cfg, "0004")
    with engine.begin() as c:
        for sql in ROWS_0004.values():
            c.execute(text(sql))

    def counts() -> dict[str, int]:
        with engine.connect() as c:
            return {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in ROWS_0004}

    script = ScriptDirectory.from_config(cfg)
    later = [r.revision for r in reversed(list(script.walk_revisions()))]
    later = later[later.index("0004") + 1:]
    assert later, "no migration after 0004"
    steps = [("up", r) for r in later] + [("down", r) for r in reversed(["0004", *later[:-1]])]
    for way, revision in steps:
        (command.upgrade if way == "up" else command.downgrade)(cfg, revision)
        assert counts() == dict.fromkeys(ROWS_0004, 1), (way, revision)
        if engine.dialect.name == "sqlite":
            with engine.connect() as c:
                assert c.exec_driver_sql("PRAGMA foreign_key_check").all() == [], revision
    command.upgrade(cfg, "head")
    assert counts() == dict.fromkeys(ROWS_0004, 1)
    engine.dispose()


def test_0005_upgrade_and_downgrade_keep_the_data(database_url: str) -> None:
    """Migration 0005 (the stations' errors and resets) on a database in use: every row
    stays, the new columns start empty, and the schema matches the model."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from mizumori_server.models import Base
    from sqlalchemy import inspect, text

    engine = db.make_engine(database_url)
    cfg = db.alembic_config(engine)
    command.upgrade(cfg, "0004")
    rows = {
        **ROWS_0004,
        "station_latest": "INSERT INTO station_latest (station_id, device_id, t, level_mm, "
                          "flags, last_seen, reset_cause) VALUES (1, 1, 100, 1200, 0, 100, "
                          "'deepsleep')",
        "ota_events": "INSERT INTO ota_events (device_id, release, state, reason, at) VALUES "
                      "(1, '1.1.0', 'confirmed', '', 100)",
    }
    with engine.begin() as c:
        for sql in rows.values():
            c.execute(text(sql))

    def counts() -> dict[str, int]:
        with engine.connect() as c:
            return {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in rows}

    before = counts()
    assert set(before.values()) == {1}
    command.upgrade(cfg, "head")
    assert counts() == before
    with engine.begin() as c:
        assert c.execute(text("SELECT hardware_id, last_counter, last_error, reset_cause, "
                              "reset_at FROM devices")).one() == ("esp32-0001", 7, None, None,
                                                                  None)
        c.execute(text("UPDATE devices SET last_error = 'cycle: MemoryError()', "
                       "last_error_at = 200, reset_cause = 'wdt', reset_at = 200"))
        c.execute(text("INSERT INTO device_events (device_id, kind, text, at) VALUES "
                       "(1, 'reset', 'wdt', 200)"))
        mine = [d for d in compare_metadata(MigrationContext.configure(c), Base.metadata)
                if "device" in repr(d)]
        assert mine == []  # the migration builds what the model says
    command.downgrade(cfg, "0004")
    assert counts() == before
    assert "device_events" not in inspect(engine).get_table_names()
    assert "last_error" not in {c["name"] for c in inspect(engine).get_columns("devices")}
    command.upgrade(cfg, "head")
    assert counts() == before
    if engine.dialect.name == "sqlite":  # off for the rebuild only, and nothing dangling
        with engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert c.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    engine.dispose()


def test_two_migrators_at_once_on_postgresql_both_succeed(pg_server: str,
                                                          tmp_path: Path) -> None:
    """Two `mizumori db upgrade` started together on a fresh PostgreSQL database (two hosts
    starting with MIZUMORI_AUTO_MIGRATE=true): one waits for the other's advisory lock,
    then finds the database at head. Without the lock one failed with an IntegrityError."""
    import psycopg

    env = {"MIZUMORI_DATABASE_URL": pg_server, "PATH": "/usr/bin:/bin"}
    mizumori = [sys.executable, "-m", "mizumori_tools.cli", "db", "upgrade"]
    for _ in range(3):
        with psycopg.connect(pg_server.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        procs = [subprocess.Popen(mizumori, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
        for code, _out, err in results:
            assert code == 0, err
        engine = db.make_engine(pg_server)
        current, head = db.pending_migrations(engine)
        engine.dispose()
        assert current == head
