"""Engine, sessions and migrations. The same code runs on SQLite and PostgreSQL."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CursorResult, Engine, Result, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


class NotMigrated(RuntimeError):
    pass


def make_engine(url: str, pool_size: int = 5, max_overflow: int = 5) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001 - DB-API connection
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cur.execute("PRAGMA synchronous=FULL")  # a commit survives a power cut
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # No pre-ping (a round trip per request): idle connections are recycled instead, and a
    # dropped connection fails one request, which the device retries. TCP keepalives (libpq)
    # find a connection to a server that failed over within about a minute instead of the
    # kernel's two hours; a connect waits at most 10 s.
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                         pool_recycle=1800, pool_timeout=10, connect_args={
                             "connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                             "keepalives_interval": 10, "keepalives_count": 3})


class BackupError(RuntimeError):
    """A backup that cannot be taken (the message says what to do instead)."""


def backup(engine: Engine, dest: Path) -> int:
    """A consistent copy of a SQLite database at `dest`, taken while the server runs
    (`VACUUM INTO`: one read transaction, so committed readings still in the write-ahead
    log are in it, which copying mizumori.db alone misses). Returns its size in bytes. A
    PostgreSQL database is backed up with its own tools (docs/operations.md, "Backups")."""
    if engine.dialect.name != "sqlite":
        raise BackupError("a PostgreSQL database is backed up with pg_dump or continuous "
                          "archiving (docs/operations.md, \"Backups\"), not by mizumori")
    if dest.exists():
        raise BackupError(f"{dest} exists: choose a new file name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with engine.connect() as c:
        c.exec_driver_sql("VACUUM INTO ?", (str(dest),))
    return dest.stat().st_size


def sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    command.upgrade(alembic_config(engine), "head")


def pending_migrations(engine: Engine) -> tuple[str | None, str]:
    """(current revision, head revision) of the database."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head() or ""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def require_migrated(engine: Engine) -> None:
    current, head = pending_migrations(engine)
    if current != head:
        raise NotMigrated(
            f"database is at migration {current or 'none'}, the code needs {head}: "
            "run `mizumori db upgrade` (or start with MIZUMORI_AUTO_MIGRATE=true)")


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE or DELETE."""
    return cast(CursorResult[Any], result).rowcount


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session
