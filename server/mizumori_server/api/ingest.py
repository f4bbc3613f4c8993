"""POST /api/ingest: a device's batch of codec-v1 records (docs/protocol.md)."""

import asyncio
import time
from typing import Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from mizumori_server import accesslog, background, clock, ingest, metrics
from mizumori_server.inputs import INT32_MAX, INT64_MAX, bounded_router, read_capped

router = bounded_router("/api", "ingest")
# The headers of a device's signed request (docs/protocol.md), within their columns.
DeviceHeader = Annotated[int, Header(ge=1, le=INT32_MAX, description=f"1..{INT32_MAX}")]
CounterHeader = Annotated[int, Header(ge=1, le=INT64_MAX)]
SignatureHeader = Annotated[str, Header(min_length=64, max_length=64)]


read_body = read_capped


@router.post("/ingest")
async def ingest_batch(
    request: Request,
    x_mizumori_device: DeviceHeader,
    x_mizumori_counter: CounterHeader,
    x_mizumori_signature: SignatureHeader,
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
    if "resend_from" in reply:  # a gap below this upload: after a restore, say, once
        accesslog.events.warning("upload above a gap: device %d asked to send again from "
                                 "reading %d", up.device_id, reply["resend_from"])
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
