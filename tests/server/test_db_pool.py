"""PostgreSQL connections: the pool is sized from the settings and every connection has TCP
keepalives and a connect timeout (a server that failed over is noticed in about a minute)."""

from pathlib import Path

import psycopg
from mizumori_server import db
from mizumori_server.app import create_app
from mizumori_server.settings import Settings


def test_pool_from_settings_and_keepalives_on_every_connection(pg_server: str) -> None:
    with psycopg.connect(pg_server.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")  # what earlier tests left, sealed under
        conn.execute("CREATE SCHEMA public")  # their secret key
    settings = Settings(database_url=pg_server, secret_key="pool-test-key-0123456789abcdef",
                        auto_migrate=True, background=False, db_pool_size=3,
                        db_max_overflow=2)
    app = create_app(settings)
    engine = app.state.engine
    assert engine.pool.size() == 3 and engine.pool._max_overflow == 2  # noqa: SLF001
    with engine.connect() as c:
        params = c.connection.dbapi_connection.info.get_parameters()
    assert params["keepalives"] == "1" and params["keepalives_idle"] == "30"
    assert params["keepalives_count"] == "3" and params["connect_timeout"] == "10"
    engine.dispose()


def test_sqlite_is_unchanged(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.db'}", 3, 2)
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
