"""The administrator's `mizumori` commands around the server's operations
(docs/operations.md): `serve --workers N` adding the metrics up across workers, `db prune`,
`db backup`, and a bad MIZUMORI_* setting said in one line per setting."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mizumori_tools.fleet import free_port

KEY = "operations-cli-key-0123456789abcdef"


def mizumori(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MIZUMORI_")}
    return subprocess.run([sys.executable, "-m", "mizumori_tools.cli", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**base, **(env or {})})


def refused(done: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr's lines of a command that refused: exit status 2, no traceback."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return [x for x in done.stderr.splitlines() if x.strip()]


# --- serve --workers N ----------------------------------------------------------------------

def test_serve_with_two_workers_adds_the_metrics_up(tmp_path: Path) -> None:
    """Through the real CLI: whichever worker answers /metrics, the counters are both
    workers' sum; the private metrics folder is removed when the server stops; uvicorn's own
    access log stays off (the server's middleware logs)."""
    (tmp_path / "tmp").mkdir()
    env = {"MIZUMORI_DATA_DIR": str(tmp_path),
           "MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'mizumori.db'}",
           "MIZUMORI_SECRET_KEY": KEY, "MIZUMORI_BACKGROUND": "false",
           "TMPDIR": str(tmp_path / "tmp")}
    assert mizumori("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    port = free_port()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("MIZUMORI_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    proc = subprocess.Popen([sys.executable, "-m", "mizumori_tools.cli", "serve", "--port",
                             str(port), "--workers", "2"], env={**base, **env}, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        folders = list((tmp_path / "tmp").glob("mizumori-metrics-*"))
        assert len(folders) == 1, folders  # prepare_multiprocess made the private folder
        for _ in range(40):  # a new connection each: the workers share them out
            assert httpx.get(url + "/readyz").status_code == 200

        def readyz_count() -> float:
            text = httpx.get(url + "/metrics").text
            return sum(float(v) for v in re.findall(
                r'^mizumori_http_requests_total\{[^}]*route="/readyz"[^}]*\} (\S+)$', text,
                re.M))

        while readyz_count() < 40 and time.monotonic() < deadline:
            time.sleep(0.1)  # the last request's count lands just after its answer
        counts = [readyz_count() for _ in range(8)]
        assert counts == [40.0] * 8, counts
        pids = {p.name.split("_")[-1] for p in folders[0].glob("*.db")}
        assert len(pids) >= 2, pids  # both workers wrote their values
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert not folders[0].exists()  # the private folder goes with the server
    assert '"GET /readyz' not in err, err  # no uvicorn access log


# --- db prune ---------------------------------------------------------------------------------

def test_db_prune_says_what_it_deleted(tmp_path: Path) -> None:
    data = str(tmp_path)
    assert mizumori("db", "upgrade", "--data", data).returncode == 0
    now = int(time.time())
    with sqlite3.connect(tmp_path / "mizumori.db") as c:
        c.execute("INSERT INTO users (id, username, password_hash, role, disabled, created_at)"
                  " VALUES (1, 'sato', 'x', 'admin', 0, 1)")
        c.executemany("INSERT INTO api_tokens (user_id, kind, name, token_hash, created_at, "
                      "expires_at) VALUES (1, ?, '', ?, 1, ?)",
                      [("session", "a" * 64, now - 10), ("session", "b" * 64, now + 3600),
                       ("token", "c" * 64, now - 40 * 86400)])
        c.executemany("INSERT INTO login_attempts (key, at) VALUES (?, ?)",
                      [("sato", now - 600), ("sato", now - 300), ("sato", now)])
    done = mizumori("db", "prune", "--data", data)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"pruned 4 row(s) in sqlite:///{tmp_path / 'mizumori.db'}:"
    table = {line.split()[0]: line.split(None, 2)[1:] for line in lines[1:]}
    assert list(table) == ["sessions", "api_tokens", "login_attempts", "deliveries",
                           "readings"]
    assert table["sessions"][0] == "1" and table["api_tokens"][0] == "1"
    assert table["login_attempts"] == ["2", "failed-login records older than a minute"]
    assert table["readings"] == ["kept", "kept for ever (MIZUMORI_READING_RETENTION_DAYS=0)"]
    with sqlite3.connect(tmp_path / "mizumori.db") as c:
        assert c.execute("SELECT count(*) FROM api_tokens").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM login_attempts").fetchone()[0] == 1

    done = mizumori("db", "prune", "--data", data, "--json",
                    env={"MIZUMORI_READING_RETENTION_DAYS": "60"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"sessions": 0, "api_tokens": 0, "login_attempts": 0,
                                       "deliveries": 0, "readings": 0}


# --- db backup --------------------------------------------------------------------------------

def test_db_backup(tmp_path: Path) -> None:
    data = str(tmp_path / "server")
    assert mizumori("db", "upgrade", "--data", data).returncode == 0
    with sqlite3.connect(tmp_path / "server" / "mizumori.db") as c:
        c.execute(
            "INSERT INTO stations (id, code, name, site_type, latitude, longitude, datum_m, "
            "mount_height_mm, rise_limit_mm_h, interval_normal_s, interval_flood_s, "
            "upload_every, tags, created_at) VALUES (1, 'taku-01', '多久橋', 'river', 33.3, "
            "130.1, 0, 5000, 300, 600, 120, 3, '[]', 1)")
        c.execute(
            "INSERT INTO devices (id, hardware_id, transport, firmware_version, station_id, "
            "last_counter, last_seq, desired_config, desired_version, reported_version, "
            "created_at) VALUES (1, 'esp32-0001', 'wifi', '1.0.0', 1, 0, 60, '{}', 0, 0, 1)")
        c.executemany("INSERT INTO readings (station_id, device_id, seq, t, received, "
                      "level_mm, flags) VALUES (1, 1, ?, ?, ?, 1200, 0)",
                      [(s, s, s) for s in range(1, 13)])
    copy = tmp_path / "backups" / "nightly.db"
    done = mizumori("db", "backup", str(copy), "--data", data)
    assert done.returncode == 0, done.stderr
    assert re.match(r"backed up 12 reading\(s\) of 1 station\(s\) from sqlite:///\S+ to "
                    + re.escape(str(copy)) + r" \(\d+\.\d KB\)", done.stdout), done.stdout
    with sqlite3.connect(copy) as c:
        assert c.execute("SELECT count(*) FROM readings").fetchone()[0] == 12

    again = refused(mizumori("db", "backup", str(copy), "--data", data))
    assert again == [f"mizumori db backup: {copy} exists: choose a new file name"]
    nothing = refused(mizumori("db", "backup", str(tmp_path / "x.db"), "--data",
                               str(tmp_path / "nowhere")))
    assert len(nothing) == 1 and "no database at" in nothing[0]
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "x.db").exists()


def test_db_backup_of_postgresql_is_sent_to_its_own_tools() -> None:
    url = "postgresql+psycopg://mizumori:hunter2@127.0.0.1:1/mizumori"
    env = {"MIZUMORI_DATABASE_URL": url}
    line = refused(mizumori("db", "backup", "/nonexistent/x.db", env=env))
    assert len(line) == 1 and line[0].startswith("mizumori db backup: a PostgreSQL database "
                                                 "is backed up with pg_dump"), line
    assert "hunter2" not in line[0]  # (nothing connects: db.backup refuses first)


# --- a bad setting ----------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ("serve", "--port", "1"), ("db", "upgrade"), ("db", "prune"),
    ("user", "create", "sato", "--password", "kawa-kanri-2026"),
    ("demo", "--port", "1"),
])
def test_a_bad_setting_is_one_line_naming_its_variable(tmp_path: Path,
                                                       command: tuple[str, ...]) -> None:
    env = {"MIZUMORI_WEBHOOK_CONCURRENCY": "0", "MIZUMORI_TIMEZONE": "Asia/Tokio",
           "MIZUMORI_CHECK_EVERY_S": "often", "MIZUMORI_SECRET_KEY": KEY,
           "MIZUMORI_DATA_DIR": str(tmp_path)}
    if command[0] == "demo":
        command += ("--data", str(tmp_path / "demo"))
    lines = refused(mizumori(*command, env=env, cwd=tmp_path))
    prog = "mizumori " + " ".join(command[:1 if command[0] in ("serve", "demo") else 2])
    assert sorted(lines) == sorted([
        f"{prog}: MIZUMORI_WEBHOOK_CONCURRENCY='0': webhook_concurrency must be 1..64",
        f"{prog}: MIZUMORI_TIMEZONE: 'Asia/Tokio' is not a time zone name (e.g. Asia/Tokyo)",
        f"{prog}: MIZUMORI_CHECK_EVERY_S='often': input should be a valid number, unable to "
        "parse string as a number",
    ]), lines
    assert not (tmp_path / "demo").exists()  # the demo refused before touching its folder


def test_a_bad_secret_setting_does_not_show_its_value() -> None:
    from mizumori_tools import cli
    from pydantic_core import ValidationError

    url = "postgresql+psycopg://mizumori:hunter2@db/mizumori"
    error = ValidationError.from_exception_data("Settings", [
        {"type": "value_error", "loc": ("database_url",), "input": url,
         "ctx": {"error": ValueError("not a database URL")}},
        {"type": "value_error", "loc": ("language",), "input": "fr",
         "ctx": {"error": ValueError("language must be ja or en")}}])
    assert cli.settings_problems(error) == [
        "MIZUMORI_DATABASE_URL: not a database URL",
        "MIZUMORI_LANGUAGE='fr': language must be ja or en"]
    assert cli.settings_problems(ValueError("x")) is None
