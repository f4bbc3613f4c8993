"""Server test fixtures: every test runs on SQLite and on PostgreSQL."""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from helpers import need
from mizumori_server import security
from mizumori_server.app import create_app
from mizumori_server.settings import Settings
from sqlalchemy import Engine

PG_ADMIN = os.environ.get("MIZUMORI_TEST_DATABASE_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# Passwords the policy takes (security.password_problem): none holds its user's name.
ADMIN_PASSWORD = "kawa-kanri-2026"
USER_PASSWORD = "ryuiki-suii-77"


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """Argon2id with its cheapest parameters for the in-process servers of these tests: the
    production hasher (argon2-cffi's RFC 9106 profile, 64 MiB and 3 passes) takes ~0.2-0.4 s
    a hash or check here, paid for every test's admin and login. Hashes carry their own
    parameters, so storing and checking work the same; servers started as processes
    (tests/tools) keep the production hasher, and test_people.py checks it is argon2id."""
    production = security._hasher
    security._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    yield
    security._hasher = production


def _pg_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN.replace("+psycopg", ""), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    need(_pg_reachable(), f"PostgreSQL at {PG_ADMIN.split('@')[-1]}")
    name = f"mizumori_test_{uuid.uuid4().hex[:10]}"
    plain = PG_ADMIN.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mizumori.db'}"
    url: str = request.getfixturevalue("pg_server")
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


def _migrate(url: str, folder: Path) -> None:
    app = create_app(Settings(database_url=url, data_dir=folder, auto_migrate=True,
                              secret_key="test-secret-key", background=False))
    app.state.engine.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database the server's own migrations brought to the newest schema, once a
    session: each test's starts as a copy of it (the same file the migrations would leave;
    the server still checks its revision at start). Migrating each test's anew took ~0.5 s."""
    path = tmp_path_factory.mktemp("migrated") / "mizumori.db"
    _migrate(f"sqlite:///{path}", path.parent)
    return path


@pytest.fixture(scope="session")
def migrated_pg(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same on PostgreSQL: a database migrated once a session, the template each test's
    database is created from (CREATE DATABASE ... TEMPLATE: ~0.2 s against ~0.5 s)."""
    name = pg_server.rsplit("/", 1)[1] + "_migrated"
    plain = PG_ADMIN.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    _migrate(PG_ADMIN.rsplit("/", 1)[0] + "/" + name, tmp_path_factory.mktemp("migrated"))
    yield name
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def settings(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    db = tmp_path / "mizumori.db"
    if database_url == f"sqlite:///{db}" and not db.exists():
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), db)
    elif database_url.startswith("postgresql"):  # this test's database, made anew from it
        template = request.getfixturevalue("migrated_pg")
        name = database_url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    # background=False: tests run the offline check and the webhook sender themselves
    # (test_alerts.py has one test with the workers' own background loop).
    return Settings(database_url=database_url, data_dir=tmp_path, auto_migrate=True,
                    secret_key="test-secret-key", provisioning_secret="batch-secret-2026",
                    background=False)


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with app.state.sessions() as session:
        from mizumori_server.api.people import create

        create(session, "admin", ADMIN_PASSWORD, "admin")
        session.commit()
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


@pytest.fixture
def engine(app_client: TestClient) -> Engine:
    e: Engine = app_client.app.state.engine  # type: ignore[attr-defined]
    return e


def login(client: TestClient, username: str = "admin",
          password: str = ADMIN_PASSWORD) -> dict[str, str]:
    r = client.post("/api/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    client.cookies.clear()  # tests send the bearer header explicitly
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def admin(app_client: TestClient) -> dict[str, str]:
    return login(app_client)


def make_user(client: TestClient, admin: dict[str, str], name: str, role: str) -> dict[str, str]:
    r = client.post("/api/users", headers=admin,
                    json={"username": name, "password": USER_PASSWORD, "role": role})
    assert r.status_code == 201, r.text
    return login(client, name, USER_PASSWORD)


STATION = {"code": "taku-01", "name": "六角川 多久橋", "site_type": "river",
           "latitude": 33.2886, "longitude": 130.1100, "mount_height_mm": 5000,
           "standby_mm": 1000, "caution_mm": 1500, "evacuation_mm": 2000, "danger_mm": 2500}


@pytest.fixture
def station(app_client: TestClient, admin: dict[str, str]) -> dict[str, object]:
    r = app_client.post("/api/stations", headers=admin, json=STATION)
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body

