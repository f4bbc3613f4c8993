"""Pruning (docs/operations.md, "Data retention"): what the database need not keep for ever.

Run by each worker's background loop every prune_every_s (and by `prune()` from a command).
Each kind is deleted in batches of BATCH rows, each its own transaction, so a first run on
years of history never holds a long lock nor a huge transaction; any number of workers may
prune at once (a row deleted by another is simply not counted twice).

- dashboard sessions once expired;
- personal API tokens token_grace_days after they expired (listed meanwhile, so that their
  owner sees they expired);
- failed-login records older than a minute (the rate limit's window);
- webhook deliveries delivered or expired more than delivery_retention_days ago;
- raw readings received more than reading_retention_days ago, when it is set (0, the
  default: readings are kept for ever), and LoRaWAN daily digests as old. A station's
  latest state (`station_latest`) is kept whatever its age.
"""

import logging
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from mizumori_server import metrics
from mizumori_server.db import rowcount
from mizumori_server.models import ApiToken, Delivery, Digest, LoginAttempt, Reading, Station
from mizumori_server.settings import Settings

log = logging.getLogger("mizumori.prune")
BATCH = 5000
DAY = 86400


def rules(settings: Settings, now: int) -> list[tuple[str, Table, ColumnElement[bool]]]:
    """(name, table, which rows) for each kind pruned under these settings."""
    tokens: Any = ApiToken.__table__
    attempts: Any = LoginAttempt.__table__
    deliveries: Any = Delivery.__table__
    digests: Any = Digest.__table__
    out: list[tuple[str, Table, ColumnElement[bool]]] = [
        ("sessions", tokens, (tokens.c.kind == "session") & (tokens.c.expires_at < now)),
        ("api_tokens", tokens, (tokens.c.kind == "token")
         & (tokens.c.expires_at < now - settings.token_grace_days * DAY)),
        ("login_attempts", attempts, attempts.c.at < now - 60),
    ]
    if settings.delivery_retention_days:
        before = now - settings.delivery_retention_days * DAY
        out.append(("deliveries", deliveries, (deliveries.c.state != "pending") & or_(
            deliveries.c.delivered_at < before,
            deliveries.c.delivered_at.is_(None) & (deliveries.c.created_at < before))))
    if settings.reading_retention_days:
        out.append(("digests", digests,
                    digests.c.t < now - settings.reading_retention_days * DAY))
    return out


def prune(sessions: sessionmaker[Session], settings: Settings, now: int) -> dict[str, int]:
    """Delete what the settings say is no longer kept; rows deleted per kind."""
    done: dict[str, int] = {}
    for name, table, where in rules(settings, now):
        total = 0
        while True:
            with sessions() as session, session.begin():
                ids = select(table.c.id).where(where).limit(BATCH).scalar_subquery()
                n = rowcount(session.execute(delete(table).where(table.c.id.in_(ids))))
            total += n
            if n < BATCH:
                break
        done[name] = total
    if settings.reading_retention_days:
        done["readings"] = prune_readings(sessions, now - settings.reading_retention_days * DAY)
    for name, total in done.items():
        if total:
            metrics.PRUNED.labels(name).inc(total)
    if any(done.values()):
        log.info("pruned: %s", ", ".join(f"{n} {k}" for k, n in done.items() if n))
    return done


def prune_readings(sessions: sessionmaker[Session], before: int) -> int:
    """Readings measured before `before`, station by station (the (station, t) index finds
    them without reading the whole table)."""
    readings: Any = Reading.__table__
    with sessions() as session:
        stations = session.scalars(select(Station.id)).all()
    total = 0
    for sid in stations:
        while True:
            with sessions() as session, session.begin():
                ids = (select(readings.c.id)
                       .where(readings.c.station_id == sid, readings.c.received < before)
                       .limit(BATCH).scalar_subquery())
                n = rowcount(session.execute(delete(readings).where(readings.c.id.in_(ids))))
            total += n
            if n < BATCH:
                break
    return total


def token_expires_at(settings: Settings, days: int | None, now: int) -> int | None:
    """When a personal API token created now expires: after `days` when given, else after
    token_days (0: never). Tokens created before keep the expiry they were given."""
    days = days or settings.token_days
    return now + days * DAY if days else None
