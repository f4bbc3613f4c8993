"""Alerts (list, history, acknowledge, close) and the webhook targets that hear of them."""

import secrets
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import HTTPException, Query, Request
from pydantic import AfterValidator, Field, HttpUrl, UrlConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from mizumori_server import alerts, destinations, i18n
from mizumori_server.clock import now
from mizumori_server.deps import DB, Operator, Reader
from mizumori_server.inputs import Code, Id, Input, StationQuery, bounded_router
from mizumori_server.models import Alert, AlertEvent, Delivery, Station, Webhook
from mizumori_server.queries import iso

router = bounded_router("/api", "alerts")
AlertType = Literal["level", "rise", "offline", "battery", "fault", "queue_overflow"]
URL_MAX = 500  # the webhooks.url column
Lang = Annotated[Literal["ja", "en"] | None, Query(
    description="the language of `message`: ja or en; by default the dashboard's language "
                "cookie, else Accept-Language, else en")]


def _fits(url: HttpUrl) -> HttpUrl:
    if len(str(url)) > URL_MAX:  # as stored: normalised, e.g. with a trailing /
        raise ValueError(f"URL longer than {URL_MAX} characters")
    return url


WebhookUrl = Annotated[HttpUrl, UrlConstraints(max_length=URL_MAX), AfterValidator(_fits)]


class Note(Input):
    note: str = Field("", max_length=500)


@router.get("/alerts")
def list_alerts(session: DB, _: Reader, request: Request,
                state: Literal["active", "open", "acknowledged", "closed", "all"] = "active",
                station: StationQuery = None, type: AlertType | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                lang: Lang = None) -> list[dict[str, object]]:
    """Alerts, newest first: `active` (default) = open or acknowledged. Each one's
    `message` is written in `lang` from its `params`."""
    q = select(Alert, Station.code).join(Station, Station.id == Alert.station_id)
    if state == "active":
        q = q.where(Alert.state != "closed")
    elif state != "all":
        q = q.where(Alert.state == state)
    if station is not None:
        q = q.where(Station.code == station)
    if type is not None:
        q = q.where(Alert.type == type)
    t, said = now(), i18n.request_language(request, lang)
    return [alerts.alert_json(a, code, t, said) for a, code in
            session.execute(q.order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(limit))]


@router.get("/alerts/{alert_id}")
def alert_detail(alert_id: Id, session: DB, _: Reader, request: Request,
                 lang: Lang = None) -> dict[str, object]:
    """The alert and its history (opened, raised, lowered, acknowledged, closed)."""
    return detail(session, alert_id, i18n.request_language(request, lang))


def detail(session: DB, alert_id: int, lang: str) -> dict[str, object]:
    row = session.execute(select(Alert, Station.code).join(Station, Station.id ==
                                                            Alert.station_id)
                          .where(Alert.id == alert_id)).first()
    if row is None:
        raise HTTPException(404, i18n.text(i18n.PROBLEMS["no_alert"], lang, id=alert_id))
    events = session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id)
                             .order_by(AlertEvent.id))
    return {**alerts.alert_json(row[0], row[1], now(), lang),
            "events": [{"id": e.id, "kind": e.kind, "level": e.level or None,
                        "at": iso(e.at), "by": e.by, "note": e.note}
                       for e in events]}


@router.post("/alerts/{alert_id}/ack")
def acknowledge(alert_id: Id, body: Note, session: DB, user: Operator,
                request: Request) -> dict[str, object]:
    """An operator has seen it (with an optional note). A river-level alert that rises to a
    higher level afterwards is open again and needs a new acknowledgement."""
    return _change(alerts.acknowledge, alert_id, body, session, user.username,
                   i18n.request_language(request))


@router.post("/alerts/{alert_id}/close")
def close(alert_id: Id, body: Note, session: DB, user: Operator,
          request: Request) -> dict[str, object]:
    """Close an event alert (queue overflow); conditions close by themselves."""
    return _change(alerts.close, alert_id, body, session, user.username,
                   i18n.request_language(request))


def _change(action: Callable[[Session, int, str, str, int], None], alert_id: int, body: Note,
            session: DB, username: str, lang: str) -> dict[str, object]:
    try:
        action(session, alert_id, username, body.note, now())
    except alerts.AlertError as e:
        raise HTTPException(e.status, e.text(lang)) from None
    session.commit()
    return detail(session, alert_id, lang)


# --- webhooks ----------------------------------------------------------------------------

class WebhookFields(Input):
    name: str | None = Field(None, min_length=1, max_length=100)
    url: WebhookUrl | None = Field(None, description="http(s); a public address unless "
                                                     "MIZUMORI_WEBHOOK_ALLOW allows it")
    types: list[AlertType] | None = Field(None, max_length=20,
                                          description="empty: every type")
    stations: list[Code] | None = Field(None, max_length=10000,
                                        description="station codes; empty: all")
    enabled: bool | None = None


class NewWebhook(WebhookFields):
    name: str = Field(min_length=1, max_length=100)
    url: WebhookUrl = Field(description="http(s); a public address unless "
                                        "MIZUMORI_WEBHOOK_ALLOW allows it")
    secret: str | None = Field(None, min_length=16, max_length=200,
                               description="signs every delivery; generated when absent")


def webhook_json(w: Webhook) -> dict[str, object]:
    return {"id": w.id, "name": w.name, "url": w.url, "types": w.types,
            "stations": w.stations, "enabled": w.enabled, "created_by": w.created_by}


def check_destination(request: Request, url: object) -> None:
    """422 for a URL whose address (literal or resolved) is not an allowed destination."""
    allow = destinations.parse_allow(request.app.state.settings.webhook_allow)
    try:
        destinations.check(str(url), allow)
    except destinations.Refused as e:
        raise HTTPException(422, f"url: destination refused: {e}") from None


def get_webhook(session: DB, webhook_id: int) -> Webhook:
    w = session.get(Webhook, webhook_id)
    if w is None:
        raise HTTPException(404, f"no webhook {webhook_id}")
    return w


def check_stations(session: DB, codes: list[str] | None) -> None:
    if not codes:
        return
    known = set(session.scalars(select(Station.code).where(Station.code.in_(codes))))
    unknown = sorted(set(codes) - known)
    if unknown:
        raise HTTPException(422, f"unknown stations: {', '.join(unknown)}")


@router.get("/webhooks")
def list_webhooks(session: DB, _: Operator) -> list[dict[str, object]]:
    return [webhook_json(w) for w in session.scalars(select(Webhook).order_by(Webhook.id))]


@router.post("/webhooks", status_code=201)
def create_webhook(body: NewWebhook, session: DB, user: Operator,
                   request: Request) -> dict[str, object]:
    """A notification target. The reply carries the signing secret: the only time it is
    shown (configure it on the receiving side)."""
    check_stations(session, body.stations)
    check_destination(request, body.url)
    secret = body.secret or secrets.token_urlsafe(32)
    w = Webhook(name=body.name, url=str(body.url), types=body.types or [],
                stations=body.stations or [], enabled=body.enabled is not False,
                secret_enc=request.app.state.box.seal(secret.encode()), created_at=now(),
                created_by=user.username)
    session.add(w)
    session.commit()
    return {**webhook_json(w), "secret": secret}


@router.patch("/webhooks/{webhook_id}")
def change_webhook(webhook_id: Id, body: WebhookFields, session: DB, _: Operator,
                   request: Request) -> dict[str, object]:
    w = get_webhook(session, webhook_id)
    check_stations(session, body.stations)
    if body.url is not None:
        check_destination(request, body.url)
    for k, v in body.model_dump(exclude_unset=True).items():
        if v is None:
            raise HTTPException(422, f"{k} cannot be null")
        setattr(w, k, str(v) if k == "url" else v)
    session.commit()
    return webhook_json(w)


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: Id, session: DB, _: Operator) -> None:
    session.delete(get_webhook(session, webhook_id))
    session.commit()


@router.get("/webhooks/{webhook_id}/deliveries")
def deliveries(webhook_id: Id, session: DB, _: Operator,
               state: Literal["pending", "delivered", "expired"] | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, object]]:
    """Newest first: what was sent, how often it was tried, and the last error."""
    get_webhook(session, webhook_id)
    q = select(Delivery).where(Delivery.webhook_id == webhook_id)
    if state is not None:
        q = q.where(Delivery.state == state)
    return [{"id": d.id, "event_id": d.event_id, "state": d.state, "attempts": d.attempts,
             "next_at": d.next_at, "last_status": d.last_status, "last_error": d.last_error,
             "created_at": d.created_at, "delivered_at": d.delivered_at}
            for d in session.scalars(q.order_by(Delivery.id.desc()).limit(limit))]
