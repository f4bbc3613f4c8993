"""The access log and request ids (docs/operations.md, "Monitoring").

One line per request on the `mizumori.access` logger, a JSON object: request id, method,
path (with the values of query parameters that may hold secrets replaced by `***`), status,
duration, client address, and the device id of a device's request. An upload a device
sent that was refused is logged once more, as a warning, with its refusal code. Secrets
never reach the log: no header, cookie or body is logged, only the device id and the
refusal code and detail the server itself wrote.

Each request gets an id (the client's `X-Request-ID` when it is a plain token of at most
64 characters, else a fresh one), answered in `X-Request-ID` and added to every log line
written while the request is served (logging filter RequestIdFilter)."""

import contextvars
import json
import logging
import re
import secrets
import sys
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mizumori_server import metrics

log = logging.getLogger("mizumori.access")
events = logging.getLogger("mizumori.ingest")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
device_id: contextvars.ContextVar[str] = contextvars.ContextVar("device_id", default="")

SECRET_PARAM = re.compile(r"token|secret|pass|key|sig|auth|session|nonce|code_verifier", re.I)
GOOD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Probes are asked every few seconds: their answers are logged at DEBUG unless they fail.
QUIET = ("/healthz", "/readyz", "/metrics")
# Requests of devices whose refusals are logged as events, with the refusal's code.
UPLOADS = ("/api/ingest", "/api/ota/report", "/api/lorawan")


def safe_path(path: str, query: str) -> str:
    """The path and query as logged: values of parameters named like a secret replaced."""
    if not query:
        return path
    pairs = [(k, "***" if SECRET_PARAM.search(k) else v)
             for k, v in parse_qsl(query, keep_blank_values=True)]
    return f"{path}?{urlencode(pairs, safe='*/:,')}"


class RequestIdFilter(logging.Filter):
    """Adds `request_id` and `device` to every record (empty outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.device = device_id.get()
        return True


class LineFormatter(logging.Formatter):
    """The message as it is (start-up lines stay `mizumori: ...`), followed by the request
    and device it was written for."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", "")
        if rid and record.name != log.name:  # the access line carries them itself
            device = getattr(record, "device", "")
            line += f" [request {rid}" + (f" device {device}" if device else "") + "]"
        return line


def configure_logging(level: int = logging.INFO) -> None:
    """The `mizumori.*` loggers to standard error (the journal), once per process."""
    root = logging.getLogger("mizumori")
    if any(getattr(h, "_mizumori", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter("%(message)s"))
    handler.addFilter(RequestIdFilter())
    handler._mizumori = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


class AccessLog:
    """Pure ASGI middleware (no body buffering): times the request, tags it with its ids,
    and logs it when the answer is complete."""

    def __init__(self, app: ASGIApp, enabled: bool = True):
        self.app, self.enabled = app, enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        given = headers.get("x-request-id", "")
        rid = given if GOOD_ID.fullmatch(given) else secrets.token_hex(8)
        device = headers.get("x-mizumori-device", "")
        device = device if device.isdigit() and len(device) <= 10 else ""
        rid_token = request_id.set(rid)
        dev_token = device_id.set(device)
        path: str = scope.get("path", "")
        watch_body = path.startswith(UPLOADS)
        started = time.perf_counter()
        status = 500
        body = bytearray()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message,
                           "headers": [*message.get("headers", []),
                                       (b"x-request-id", rid.encode())]}
            elif (message["type"] == "http.response.body" and watch_body and status >= 400
                  and len(body) < 2048):
                body.extend(message.get("body", b"")[:2048 - len(body)])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            duration = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or ("static" if path.startswith(
                "/static") else "unmatched")
            metrics.REQUESTS.labels(template, scope.get("method", ""),
                                    f"{status // 100}xx").inc()
            if self.enabled:
                self._log(scope, rid, device, path, status, duration)
            if watch_body and status >= 400:
                self._refused(path, device, status, bytes(body))
            request_id.reset(rid_token)
            device_id.reset(dev_token)

    @staticmethod
    def _log(scope: Scope, rid: str, device: str, path: str, status: int,
             duration: float) -> None:
        level = logging.DEBUG if path in QUIET and status < 400 else logging.INFO
        if not log.isEnabledFor(level):
            return
        client = scope.get("client")
        entry: dict[str, Any] = {
            "request_id": rid, "method": scope.get("method", ""),
            "path": safe_path(path, scope.get("query_string", b"").decode("latin-1")),
            "status": status, "duration_ms": round(duration * 1000, 1),
            "client": client[0] if client else None}
        if device:
            entry["device"] = int(device)
        log.log(level, json.dumps(entry, ensure_ascii=False))

    @staticmethod
    def _refused(path: str, device: str, status: int, body: bytes) -> None:
        code, detail = "", ""
        try:
            answer = json.loads(body)
            if isinstance(answer, dict):
                code = str(answer.get("code") or "")
                detail = str(answer.get("detail") or "")[:200]
        except ValueError:
            pass
        events.warning("upload refused: %s", json.dumps(
            {"path": path, "device": int(device) if device else None, "status": status,
             "code": code, "detail": detail}, ensure_ascii=False))
