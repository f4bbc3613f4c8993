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
    assert r.returncode == 2 and "10 characters" in r.stderr
    app = create_app(Settings(database_url=database_url))
    with TestClient(app) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        assert "mizumori_ingest_uploads_total" in client.get("/metrics").text
        assert client.get("/openapi.json").json()["info"]["title"] == "Mizumori fleet server"
    app.state.engine.dispose()
