"""What each worker does besides answering requests: the periodic offline check, the
webhook sender and pruning, each on its own. All are safe in any number of workers at once
(alerts.py, notify.py, prune.py).

The offline check runs every check_every_s on its own timer. Before each round it compares
the wall clock's advance with the monotonic clock's (clock.Watch): after a jump of the
server's clock it raises no offline alert that round, and after a forward jump none until
every station has had the time to report once under the new clock (OfflineCheck), so a
clock set a day ahead does not call the whole fleet offline. The sender claims due
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

from mizumori_server import (
    alerts,
    clock,
    db,
    destinations,
    metrics,
    notify,
    profile,
    prune,
    queries,
)

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
        if app.state.settings.prune_every_s > 0:
            tg.start_soon(prune_loop, app)


async def offline_loop(app: FastAPI) -> None:
    failures = Failures("the offline check")
    check = OfflineCheck(app)
    while True:
        try:
            await anyio.to_thread.run_sync(check.round)
            failures.ok()
        except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
            failures.failed()
        app.state.wake.set()  # the alerts it opened have deliveries
        await anyio.sleep(app.state.settings.check_every_s)


def check_offline(app: FastAPI) -> None:
    with db.transaction(app.state.sessions) as session:
        alerts.check_offline(session, app.state.settings, clock.now())
    metrics.OFFLINE_CHECK.set(time.time())


class OfflineCheck:
    """One worker's offline check, guarded against jumps of the server's clock. With the
    simulated clock of the rig and the demo (MIZUMORI_CLOCK_FILE) there is no guard: that
    clock jumps by design."""

    def __init__(self, app: FastAPI, watch: clock.Watch | None = None,
                 monotonic: Any = time.monotonic):
        self.app = app
        settings = app.state.settings
        self.watch = watch if watch is not None else (
            None if clock.simulated() else clock.Watch(settings.clock_jump_s))
        self.monotonic = monotonic
        self.hold_until = 0.0

    def round(self) -> bool:
        """Check now, unless the clock just jumped or a jump's hold lasts: True if checked."""
        if self.watch is not None:
            jump = self.watch.tick()
            metrics.CLOCK_OFFSET.set(self.watch.offset)
            if jump:
                metrics.CLOCK_JUMPS.inc()
                metrics.CLOCK_LAST_JUMP.set(jump)
                hold = self.hold_after(jump)
                self.hold_until = self.monotonic() + hold
                log.warning(
                    "the server's clock jumped by %+.0f s (wall clock against monotonic): no "
                    "offline alerts for %.0f s, until every station has reported under the "
                    "new clock; check NTP (chrony) on this host", jump, hold)
        if self.monotonic() < self.hold_until:
            metrics.OFFLINE_SKIPPED.inc()
            return False
        if self.hold_until:
            log.warning("offline check resumed after the clock jump")
            self.hold_until = 0.0
        check_offline(self.app)
        return True

    def hold_after(self, jump: float) -> float:
        """How long to raise no offline alerts after a jump: this round only after a
        backward jump (stations look more recent, never offline); after a forward jump,
        until the slowest station has had late_after_intervals of its interval to report."""
        settings = self.app.state.settings
        if jump < 0:
            return 0.0
        try:
            with self.app.state.sessions() as session:
                longest = max_expected_interval(session)
        except Exception:  # noqa: BLE001 - hold one day rather than alarm the whole fleet
            log.exception("the stations' intervals could not be read")
            longest = 86400
        return max(settings.check_every_s / 2, settings.late_after_intervals * longest)


def max_expected_interval(session: Any) -> int:
    """The longest a station that has reported may now stay silent between uploads, in the
    mode it is in (a day for a station of the MLIT profile in watch mode)."""
    from mizumori_server.models import StationLatest

    rows = session.execute(queries.latest_query(StationLatest.last_seen.is_not(None))).all()
    return max((profile.expected_now(session, r) for r in rows), default=0)


async def prune_loop(app: FastAPI) -> None:
    """Pruning (prune.py) every prune_every_s, the first a minute after the start."""
    settings = app.state.settings
    failures = Failures("pruning")
    await anyio.sleep(min(60.0, settings.prune_every_s))
    while True:
        try:
            await anyio.to_thread.run_sync(prune.prune, app.state.sessions, settings,
                                           clock.now())
            failures.ok()
        except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
            failures.failed()
        await anyio.sleep(settings.prune_every_s)


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
