"""Backups of the SQLite database while the server runs: a copy of mizumori.db alone misses
what is still in the write-ahead log; db.backup (VACUUM INTO) has every committed reading."""

import shutil
import sqlite3
from pathlib import Path

import pytest
from mizumori_server import db
from sqlalchemy import text


def readings(path: Path) -> int:
    with sqlite3.connect(path) as c:
        return int(c.execute("SELECT count(*) FROM readings").fetchone()[0])


def test_a_backup_taken_while_writing_has_every_committed_reading(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'mizumori.db'}")
    db.upgrade(engine)
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO stations (id, code, name, site_type, latitude, longitude, datum_m, "
            "mount_height_mm, rise_limit_mm_h, interval_normal_s, interval_flood_s, "
            "upload_every, tags, created_at) VALUES (1, 'taku-01', '多久橋', 'river', 33.3, "
            "130.1, 0, 5000, 300, 600, 120, 3, '[]', 1)"))
        c.execute(text(
            "INSERT INTO devices (id, hardware_id, transport, firmware_version, station_id, "
            "last_counter, last_seq, desired_config, desired_version, reported_version, "
            "created_at) VALUES (1, 'esp32-0001', 'wifi', '1.0.0', 1, 0, 60, '{}', 0, 0, 1)"))
    holder = engine.connect()  # a reader holds the log open: no checkpoint moves it
    holder.execute(text("SELECT count(*) FROM stations")).all()
    with engine.begin() as c:
        for seq in range(1, 61):
            c.execute(text("INSERT INTO readings (station_id, device_id, seq, t, received, "
                           "level_mm, flags) VALUES (1, 1, :s, :s, :s, 1200, 0)"), {"s": seq})
    copy = tmp_path / "copied.db"
    shutil.copy(tmp_path / "mizumori.db", copy)  # the obvious backup
    assert readings(copy) < 60  # the readings were in mizumori.db-wal
    size = db.backup(engine, tmp_path / "backups" / "mizumori-backup.db")
    assert size > 0 and readings(tmp_path / "backups" / "mizumori-backup.db") == 60
    with pytest.raises(db.BackupError, match="exists"):
        db.backup(engine, tmp_path / "backups" / "mizumori-backup.db")
    holder.close()
    engine.dispose()


def test_postgresql_is_sent_to_its_own_tools(pg_server: str) -> None:
    engine = db.make_engine(pg_server)
    with pytest.raises(db.BackupError, match="pg_dump"):
        db.backup(engine, Path("/nonexistent/x.db"))
    engine.dispose()
