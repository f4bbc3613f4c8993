"""POST /api/ingest: a device's batch of codec-v1 records (docs/protocol.md)."""

import asyncio
import time
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from mizumori_server import background, clock, ingest, metrics

router = APIRouter(prefix="/api", tags=["ingest"])


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body over {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/ingest", responses={401: {}, 409: {}, 413: {}, 422: {}, 503: {}})
async def ingest_batch(
    request: Request,
    x_mizumori_device: Annotated[int, Header(ge=1)],
    x_mizumori_counter: Annotated[int, Header(ge=1, le=2**63 - 1)],
    x_mizumori_signature: Annotated[str, Header(min_length=64, max_length=64)],
) -> JSONResponse:
    """Store a batch; reply with the acknowledged sequence numbers, the server time, changed
    config and any OTA offer. All-or-nothing: one bad record rejects the batch (422)."""
    app = request.app
    started = time.perf_counter()
    # Ages count back from when the upload arrived, not from when a busy worker got to it.
    received = clock.now()
    gate: asyncio.Semaphore = app.state.ingest_gate
    if gate.locked():  # this worker already has as much in flight as it may
        metrics.REJECTS.labels("overload").inc()
        return JSONResponse({"detail": "server busy, retry later", "code": "overload"},
                            status_code=503,
                            headers={"Retry-After": str(app.state.settings.retry_after_s)})
    async with gate:
        body = await read_body(request, app.state.settings.max_body_bytes)
        up = ingest.Upload(x_mizumori_device, x_mizumori_counter, x_mizumori_signature, body)
        try:
            reply = await anyio.to_thread.run_sync(_store, app, up, received,
                                                   limiter=app.state.ingest_threads)
        except ingest.IngestError as e:
            metrics.REJECTS.labels(e.code).inc()
            return JSONResponse({"detail": e.message, "code": e.code, **e.extra},
                                status_code=e.status)
        except (PoolTimeout, OperationalError) as e:
            # The database cannot keep up (or is locked): the device keeps its data.
            metrics.REJECTS.labels("database_busy").inc()
            return JSONResponse({"detail": f"database busy: {type(e).__name__}",
                                 "code": "database_busy"}, status_code=503,
                                headers={"Retry-After": str(app.state.settings.retry_after_s)})
    metrics.RECORDS.inc(len(reply["acked"]))
    metrics.UPLOADS.inc()
    metrics.LATENCY.observe(time.perf_counter() - started)
    return JSONResponse(reply)


def _store(app: FastAPI, up: ingest.Upload, received: int) -> dict[str, Any]:
    with app.state.sessions() as session:
        try:
            reply = ingest.ingest(session, app.state.box, app.state.settings, up, received)
            session.commit()
            if session.info.pop("deliveries", False):
                background.wake_sender(app)
            return reply
        except BaseException:
            session.rollback()
            raise
