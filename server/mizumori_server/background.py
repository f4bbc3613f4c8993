"""What each worker does besides answering requests: the periodic offline check and the
webhook sender. Both are safe in any number of workers at once (alerts.py, notify.py)."""

import asyncio
import logging

import anyio.to_thread
import httpx
from fastapi import FastAPI

from mizumori_server import alerts, clock, db, notify

log = logging.getLogger("mizumori.background")


def wake_sender(app: FastAPI) -> None:
    """Ask the sender to look now (from any thread): new deliveries were committed."""
    loop: asyncio.AbstractEventLoop | None = getattr(app.state, "loop", None)
    if loop is not None:
        loop.call_soon_threadsafe(app.state.wake.set)


async def run(app: FastAPI) -> None:
    settings = app.state.settings
    app.state.loop = asyncio.get_running_loop()
    app.state.wake = asyncio.Event()
    client = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)
    next_check = 0.0
    try:
        while True:
            try:
                if app.state.loop.time() >= next_check:
                    await anyio.to_thread.run_sync(check_offline, app)
                    next_check = app.state.loop.time() + settings.check_every_s
                await anyio.to_thread.run_sync(notify.send_due, app.state.sessions,
                                               app.state.box, settings, client)
            except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                log.exception("background work failed; trying again")
            app.state.wake.clear()
            try:  # retries fall due without a wake-up: look at least every 2 s
                await asyncio.wait_for(app.state.wake.wait(), timeout=2.0)
            except TimeoutError:
                pass
    finally:
        client.close()


def check_offline(app: FastAPI) -> None:
    """(The sender runs right after it, so new deliveries need no wake-up.)"""
    with db.transaction(app.state.sessions) as session:
        alerts.check_offline(session, app.state.settings, clock.now())
