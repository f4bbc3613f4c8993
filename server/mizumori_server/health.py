"""Liveness, readiness and metrics (docs/operations.md, "Monitoring").

- `/healthz`, liveness: the process answers. It asks nothing of the database, so a
  supervisor that restarts on it does not restart every worker for a database outage.
- `/readyz`, readiness: the database takes a write (a row of `server_meta` is updated and
  committed) and the data folder's file system has at least MIZUMORI_READY_MIN_FREE_MB
  free. 503 with the reasons otherwise (no database error text: that goes to the log).
- `/metrics`: Prometheus, every worker's counters and the fleet's gauges (metrics.py)."""

import logging
import shutil
import time
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from mizumori_server import clock, db, metrics
from mizumori_server.models import ServerMeta

log = logging.getLogger("mizumori.health")
PROBE = "ready_probe"  # the server_meta row readiness writes


def add_routes(app: FastAPI) -> None:
    fleet = metrics.FleetCollector(app.state.sessions, app.state.settings, clock.now)
    last_logged = [0.0]

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        """Liveness: the process answers (the database is /readyz's business)."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready"}})
    def readyz() -> JSONResponse:
        """Readiness: the database takes a write and the data disk has free space."""
        problems, detail = readiness(app)
        if problems:
            if time.monotonic() - last_logged[0] > 60:  # one line a minute while not ready
                last_logged[0] = time.monotonic()
                log.warning("not ready: %s", "; ".join(detail or problems))
            return JSONResponse({"status": "unready", "problems": problems}, 503)
        return JSONResponse({"status": "ready", "database": app.state.engine.dialect.name})

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry(fleet)).decode(),
                                 media_type=CONTENT_TYPE_LATEST)


def readiness(app: FastAPI) -> tuple[list[str], list[str]]:
    """(the problems as answered, the same with the errors' text for the log)."""
    settings: Any = app.state.settings
    problems: list[str] = []
    detail: list[str] = []
    try:
        write_probe(app)
    except Exception as e:  # noqa: BLE001 - any failure means not ready
        problems.append(f"database not writable ({type(e).__name__})")
        detail.append(f"database not writable: {type(e).__name__}: {e}"[:300])
    try:
        free = shutil.disk_usage(metrics.existing(settings.data_dir)).free
    except OSError as e:
        problems.append("data disk unreadable")
        detail.append(f"data disk unreadable: {e}")
    else:
        if free < settings.ready_min_free_mb * 2**20:
            problems.append(f"data disk: {free // 2**20} MB free, under "
                            f"MIZUMORI_READY_MIN_FREE_MB={settings.ready_min_free_mb}")
    return problems, detail or problems


PROBE_EVERY_S = 10  # /readyz needs no login: at most one write per worker this often


def write_probe(app: FastAPI) -> None:
    """A real write (the database takes writes), at most every PROBE_EVERY_S per worker: a
    flood of probes must not compete with ingest for SQLite's write lock."""
    last = getattr(app.state, "probe_written", 0.0)
    if time.monotonic() - last < PROBE_EVERY_S:
        return
    now = int(time.time())
    with db.transaction(app.state.sessions) as session:
        n = db.rowcount(session.execute(
            update(ServerMeta).where(ServerMeta.name == PROBE)
            .values(value=str(now), updated_at=now)))
    if not n:
        try:
            with db.transaction(app.state.sessions) as session:
                session.add(ServerMeta(name=PROBE, value=str(now), updated_at=now))
        except IntegrityError:
            pass  # another worker wrote it first: that was a write too
    app.state.probe_written = time.monotonic()
