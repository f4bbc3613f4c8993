"""What each worker does besides answering requests: the periodic offline check and the
webhook sender, each on its own. Both are safe in any number of workers at once
(alerts.py, notify.py).

The offline check runs every check_every_s on its own timer. The sender claims due
deliveries and sends each in its own thread, at most webhook_concurrency at once per
webhook: a receiver that never answers holds that many sends until webhook_timeout_s,
while the other webhooks' deliveries are claimed and sent meanwhile (notify.claim leaves
out the webhooks that have their share in flight)."""

import asyncio
import contextlib
import logging
import math
import threading
import time
from typing import Any

import anyio
import anyio.to_thread
import httpx
from fastapi import FastAPI

from mizumori_server import alerts, clock, db, destinations, notify

log = logging.getLogger("mizumori.background")
POLL_S = 2.0  # retries fall due without a wake-up: the sender looks at least this often


def wake_sender(app: FastAPI) -> None:
    """Ask the sender to look now (from any thread): new deliveries were committed."""
    loop: asyncio.AbstractEventLoop | None = getattr(app.state, "loop", None)
    if loop is not None:
        loop.call_soon_threadsafe(app.state.wake.set)


class Failures:
    """Logs a failing loop's first error with its traceback, then one line a minute while
    it keeps failing (a database down for an hour is not 1,800 tracebacks)."""

    def __init__(self, what: str):
        self.what = what
        self.failing = False
        self.next_line = 0.0

    def failed(self) -> None:
        if not self.failing:
            log.exception("%s failed; trying again", self.what)
            self.failing, self.next_line = True, time.monotonic() + 60
        elif time.monotonic() >= self.next_line:
            log.warning("%s still failing", self.what, exc_info=False)
            self.next_line = time.monotonic() + 60

    def ok(self) -> None:
        if self.failing:
            log.warning("%s works again", self.what)
            self.failing = False


async def run(app: FastAPI) -> None:
    app.state.loop = asyncio.get_running_loop()
    app.state.wake = asyncio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(offline_loop, app)
        tg.start_soon(send_loop, app)


async def offline_loop(app: FastAPI) -> None:
    failures = Failures("the offline check")
    while True:
        try:
            await anyio.to_thread.run_sync(check_offline, app)
            failures.ok()
        except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
            failures.failed()
        app.state.wake.set()  # the alerts it opened have deliveries
        await anyio.sleep(app.state.settings.check_every_s)


def check_offline(app: FastAPI) -> None:
    with db.transaction(app.state.sessions) as session:
        alerts.check_offline(session, app.state.settings, clock.now())


async def send_loop(app: FastAPI) -> None:
    settings = app.state.settings
    wake: asyncio.Event = app.state.wake
    allow = destinations.parse_allow(settings.webhook_allow)
    # Sends wait in their own threads, not in the thread pool that serves requests; their
    # number is bounded by webhook_concurrency per webhook (claim), not here.
    threads = anyio.CapacityLimiter(math.inf)
    client = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False,
                          limits=httpx.Limits(max_connections=None,
                                              max_keepalive_connections=20))
    busy: dict[int, int] = {}  # webhook id -> deliveries being sent to it
    failures = Failures("the webhook sender")
    # The client is closed by the last thread still sending when the loop ends (a send
    # abandoned at shutdown goes on until its timeout, and its delivery is recorded).
    lock = threading.Lock()
    sending, closing = 0, False

    def send(d: Any) -> None:
        nonlocal sending
        try:
            notify.deliver(app.state.sessions, app.state.box, settings, client, d, allow)
        finally:
            with lock:
                sending -= 1
                last = closing and not sending
            if last:
                client.close()

    async def deliver(d: Any) -> None:
        nonlocal sending
        with lock:
            sending += 1
        try:
            await anyio.to_thread.run_sync(send, d, limiter=threads, abandon_on_cancel=True)
        except Exception:  # noqa: BLE001 - the lease runs out and it is sent again
            log.exception("webhook delivery %s failed", d.id)
        finally:
            busy[d.webhook_id] -= 1
            if not busy[d.webhook_id]:
                del busy[d.webhook_id]
            wake.set()  # its webhook has room again

    try:
        async with anyio.create_task_group() as tg:
            while True:
                wake.clear()
                try:
                    batch = await anyio.to_thread.run_sync(
                        notify.claim, app.state.sessions, settings, clock.now(), 20,
                        dict(busy), settings.webhook_concurrency)
                    failures.ok()
                except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                    failures.failed()
                    batch = []
                for d in batch:
                    busy[d.webhook_id] = busy.get(d.webhook_id, 0) + 1
                    tg.start_soon(deliver, d)
                if batch:
                    continue  # more may be due, for webhooks that still have room
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=POLL_S)
    finally:
        with lock:
            closing = True
            last = not sending
        if last:
            client.close()
