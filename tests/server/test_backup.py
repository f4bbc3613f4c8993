"""Backups of the SQLite database while the server runs: a copy of mizumori.db alone misses
what is still in the write-ahead log; db.backup (VACUUM INTO) has every committed reading."""

import shutil
import sqlite3
from pathlib import Path

import pytest
from mizumori_server import db
from sqlalchemy import text
from test_database import ROWS_0004


def readings(path: Path) -> int:
    with sqlite3.connect(path) as c:
        return int(c.execute("SELECT count(*) FROM readings").fetchone()[0])


def test_a_backup_taken_while_writing_has_every_committed_reading(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'mizumori.db'}")
    db.upgrade(engine)
    with engine.begin() as c:
        for table in ("stations", "devices"):
            c.execute(text(ROWS_0004[table]))
    holder = engine.connect()  # a reader holds the log open: no checkpoint moves it
    holder.execute(text("SELECT count(*) FROM stations")).all()
    with engine.begin() as c:
        for seq in range(4, 64):
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
