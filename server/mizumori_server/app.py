"""The FastAPI application."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp

from mizumori_server import accesslog, background, db, headers, health, i18n, keys, security, web
from mizumori_server.api import (
    alerts,
    devices,
    devicetime,
    ingest,
    lorawan,
    ogc,
    opendata,
    ota,
    people,
    stations,
)
from mizumori_server.settings import Settings, get_settings

OGC_CODES = {400: "InvalidParameterValue", 401: "Unauthorized", 404: "NotFound",
             406: "NotAcceptable"}


class App(FastAPI):
    """FastAPI with the security headers outside everything else, so that they are on
    every response, including those of Starlette's own error handling (a 500)."""

    def build_middleware_stack(self) -> ASGIApp:
        return headers.SecurityHeaders(super().build_middleware_stack(),
                                       self.state.settings.tile_url)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = db.make_engine(settings.effective_database_url(), settings.db_pool_size,
                            settings.db_max_overflow)
    if settings.auto_migrate:
        db.upgrade(engine)
    db.require_migrated(engine)  # refuse to serve an un-migrated database
    try:  # unknown settings, the development key, a key that does not fit the database
        box = keys.startup(settings, engine)
    except keys.Refused:
        engine.dispose()
        raise

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(background.run(app)) if settings.background else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # /docs is web.py's own Swagger UI page (its start-up script a static file, as the
    # Content-Security-Policy allows no inline script); ReDoc is not served.
    app = App(title="Mizumori fleet server", version="0.1.0", lifespan=lifespan,
              description="Water-level stations for municipal flood prevention.",
              docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = db.sessions(engine)
    app.state.box = box
    security.dummy_hash()  # made now, not during the first login of an unknown user
    app.state.ingest_gate = asyncio.Semaphore(settings.max_inflight_ingest)
    app.state.ingest_threads = anyio.CapacityLimiter(settings.ingest_threads)
    for router in (people.router, stations.router, devices.router, devicetime.router,
                   ingest.router,
                   ota.router, alerts.router, ogc.router, opendata.router, lorawan.router,
                   web.router):
        app.include_router(router)
    app.mount("/static", web.static, name="static")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        body: dict[str, object] = {"detail": e.detail}
        if request.url.path.startswith("/ogc"):  # OGC API's exception fields as well
            body.update(code=OGC_CODES.get(e.status_code, "Error"), description=e.detail)
        return JSONResponse(body, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        # in the asker's language (i18n.request_language): the dashboard shows `detail`
        lang = i18n.request_language(request)
        errors = [i18n.validation_error(err, lang) for err in e.errors()]
        return JSONResponse({"detail": "; ".join(
            f"{x['field']}: {x['problem']}" if x["field"] else x["problem"] for x in errors),
            "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, e: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {type(e).__name__}"},
                            status_code=500)

    # /healthz (liveness), /readyz (readiness) and /metrics; one access-log line a request
    health.add_routes(app)
    app.add_middleware(accesslog.AccessLog, enabled=settings.access_log)

    return app
