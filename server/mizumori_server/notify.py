"""Webhook notifications (docs/alerts.md, "Webhooks").

A delivery row is written in the same transaction as the alert event it announces, so
nothing is lost when a worker stops. Any worker sends due deliveries: it claims one with a
conditional UPDATE that moves `next_at` past the send timeout (a lease), so two workers
never send the same delivery at once; on success it is `delivered`, on failure it is due
again after a doubling backoff, until it is webhook_expire_s old (`expired`). A worker that
dies between sending and recording sends it again after the lease: receivers deduplicate on
the X-Mizumori-Delivery header. The workers' sender (background.py) sends at most
webhook_concurrency deliveries at once per webhook, so that one receiver that never answers
delays no other webhook's alerts; deliveries to one webhook may then arrive out of order.

Each attempt resolves the webhook's host once and connects to that address only if it is
allowed (destinations.py: public, or in MIZUMORI_WEBHOOK_ALLOW), so DNS cannot send a
delivery to a loopback or private address. A failed attempt records a generic error
("destination refused", "connection failed", "HTTP 503"), never the socket's message or
the reply's body: the deliveries list is no port scanner."""

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from mizumori_server import clock, db, destinations, metrics, security
from mizumori_server.models import Delivery, Webhook
from mizumori_server.settings import Settings


def signature(secret: bytes, t: int, body: bytes) -> str:
    """X-Mizumori-Signature: HMAC-SHA256 over "<t>." + body, t = X-Mizumori-Timestamp."""
    return hmac.new(secret, b"%d." % t + body, hashlib.sha256).hexdigest()


def claim(factory: sessionmaker[Session], settings: Settings, now: int,
          limit: int = 20, busy: Mapping[int, int] | None = None,
          per_destination: int | None = None) -> list[Any]:
    """Lease up to `limit` due deliveries of enabled webhooks to this worker. With
    per_destination, at most that many per webhook counting the `busy` ones (webhook id ->
    deliveries this worker is sending to it now): a webhook whose receiver hangs fills its
    own share, and the next claim finds the other webhooks' deliveries."""
    lease = now + int(settings.webhook_timeout_s) + 30
    busy = busy or {}
    with db.transaction(factory) as session:
        q = (select(Delivery.id, Delivery.webhook_id)
             .join(Webhook, Webhook.id == Delivery.webhook_id)
             .where(Delivery.state == "pending", Delivery.next_at <= now, Webhook.enabled))
        if per_destination is not None:
            full = sorted(w for w, n in busy.items() if n >= per_destination)
            if full:
                q = q.where(Delivery.webhook_id.not_in(full))
        due = session.execute(q.order_by(Delivery.next_at, Delivery.id).limit(limit)).all()
        taken: dict[int, int] = dict(busy)
        picked = []
        for delivery_id, webhook_id in due:
            if per_destination is not None and taken.get(webhook_id, 0) >= per_destination:
                continue
            taken[webhook_id] = taken.get(webhook_id, 0) + 1
            picked.append(delivery_id)
        mine = [i for i in picked if db.rowcount(session.execute(
            update(Delivery).where(Delivery.id == i, Delivery.state == "pending",
                                   Delivery.next_at <= now)
            .values(next_at=lease, attempts=Delivery.attempts + 1)))]
        if not mine:
            return []
        return list(session.execute(
            select(Delivery.id, Delivery.webhook_id, Delivery.body, Delivery.attempts,
                   Delivery.created_at, Webhook.url, Webhook.secret_enc)
            .join(Webhook, Webhook.id == Delivery.webhook_id)
            .where(Delivery.id.in_(mine)).order_by(Delivery.id)).all())


log = logging.getLogger("mizumori.notify")
REFUSED = "destination refused"
FAILED = "connection failed"


def post(client: httpx.Client, box: security.SecretBox, d: Any, now: int,
         allow: tuple[destinations.Allowed, ...] = (),
         resolve: destinations.Resolver | None = None) -> tuple[int | None, str]:
    """Send one delivery: (HTTP status or None, error text or "")."""
    try:
        target = destinations.target(d.url, allow, resolve)
    except destinations.Refused:
        return None, REFUSED
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "mizumori-webhook/1",
        "X-Mizumori-Event": json.loads(d.body)["event"],
        "X-Mizumori-Delivery": str(d.id),
        "X-Mizumori-Timestamp": str(now),
        "X-Mizumori-Signature": "sha256=" + signature(box.open(d.secret_enc), now, d.body),
    }
    try:
        r = client.post(target.url, content=d.body, headers=headers, follow_redirects=False,
                        extensions={"sni_hostname": target.server_name})
    except httpx.HTTPError:
        return None, FAILED
    if 200 <= r.status_code < 300:
        return r.status_code, ""
    return r.status_code, f"HTTP {r.status_code}"


def finish(factory: sessionmaker[Session], settings: Settings, d: Any, status: int | None,
           error: str, now: int) -> str:
    """Record the outcome of one attempt; returns the delivery's new state."""
    if not error:
        state, next_at = "delivered", now
    elif now - d.created_at >= settings.webhook_expire_s:
        state, next_at = "expired", now
    else:
        backoff = settings.webhook_retry_s * 2 ** min(d.attempts - 1, 20)
        state, next_at = "pending", now + min(backoff, settings.webhook_retry_max_s)
    with db.transaction(factory) as session:
        session.execute(update(Delivery).where(Delivery.id == d.id).values(
            state=state, next_at=next_at, last_status=status, last_error=error,
            delivered_at=now if state == "delivered" else None))
    metrics.DELIVERIES.labels(state if state != "pending" else "retry").inc()
    return state


def deliver(factory: sessionmaker[Session], box: security.SecretBox, settings: Settings,
            client: httpx.Client, d: Any, allow: tuple[destinations.Allowed, ...] = (),
            now: Callable[[], int] = clock.now,
            resolve: destinations.Resolver | None = None) -> str:
    """Send one claimed delivery and record the outcome; returns its new state. A delivery
    that cannot even be built (its webhook's secret opens with no configured key, a body
    without its event) is an attempt that failed like any other: it backs off and expires,
    never retried for ever."""
    try:
        status, error = post(client, box, d, now(), allow, resolve)
    except security.SecretUnreadable:
        status, error = None, "webhook secret unreadable with the configured keys"
    except (ValueError, KeyError, TypeError) as e:
        log.warning("webhook delivery %s cannot be built: %s", d.id, type(e).__name__)
        status, error = None, "delivery cannot be built"
    return finish(factory, settings, d, status, error, now())


def send_due(factory: sessionmaker[Session], box: security.SecretBox, settings: Settings,
             client: httpx.Client, now: Callable[[], int] = clock.now,
             resolve: destinations.Resolver | None = None) -> int:
    """Send every delivery due now, one after the other (in batches); returns how many were
    attempted. (The workers' own sender, background.py, sends concurrently.)"""
    sent = 0
    allow = destinations.parse_allow(settings.webhook_allow)
    while batch := claim(factory, settings, now()):
        for d in batch:
            deliver(factory, box, settings, client, d, allow, now, resolve)
            sent += 1
    return sent
