"""LoRaWAN network servers: their webhooks (ChirpStack v4 HTTP integration, The Things Stack
v3 webhooks) and the integrations an admin registers for them (docs/lorawan.md)."""

import hashlib
import hmac
import importlib
import logging
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio.to_thread
import httpx
from fastapi import FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field, HttpUrl, UrlConstraints
from sqlalchemy import bindparam, select, true, update

from mizumori_server import background, clock, codec, ingest, jsonlimits, lorawan, metrics, security
from mizumori_server.api.ingest import read_body
from mizumori_server.deps import DB, Admin
from mizumori_server.inputs import CODE_PATTERN, Input, bounded_router
from mizumori_server.models import Device, LorawanIntegration

router = bounded_router("/api/lorawan", "LoRaWAN")
Name = Annotated[str, Path(min_length=1, max_length=64, pattern=CODE_PATTERN)]
log = logging.getLogger("mizumori.lorawan")
SECRET_HEADER = "X-Mizumori-Secret"
MAX_REPORT_SPAN = 5000  # readings looked at for one report (a station holds fewer)
RESEND_WINDOW: int = importlib.import_module("station.lorawan").RESEND_WINDOW  # the
# sent readings a station keeps for a resend (devices.py put the firmware on the path)
# A config the device still does not report goes again after this many of its uplinks (the
# first fetches it, with a status record built before; the next reports it) and
# CONFIG_REQUEUE_S, doubled with each try up to CONFIG_REQUEUE_MAX_S.
REQUEUE_UPLINKS = 2
CONFIG_REQUEUE_S = 3600
CONFIG_REQUEUE_MAX_S = 86400
# The device's row for the store, found by its DevEUI.
READ_BY_EUI = ingest.read_device(ingest.DEVICES.c.dev_eui == bindparam("eui"))


@dataclass
class ConfigDownlink:
    """What send_config queues, from the uplink (its frame counter: f_cnt) that found the
    device behind."""

    device_id: int
    dev_eui: str
    ns_device_id: str | None
    version: int
    frames: list[bytes]
    now: int
    f_cnt: int | None
    again: Any  # None: the version's first queueing; else its last one (count_uplink)


class NewIntegration(Input):
    name: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)
    kind: Literal["chirpstack", "tts"]
    api_url: Annotated[HttpUrl, UrlConstraints(max_length=400)] | None = Field(
        None, description="the network server's API, for downlinks; none = no downlinks")
    api_token: str | None = Field(None, min_length=8, max_length=2000)
    application_id: str = Field("", max_length=64, description="The Things Stack only")
    webhook_id: str = Field("", max_length=64, description="The Things Stack only")


def integration_json(i: LorawanIntegration) -> dict[str, object]:
    return {"id": i.id, "name": i.name, "kind": i.kind, "api_url": i.api_url,
            "application_id": i.application_id, "webhook_id": i.webhook_id,
            "downlinks": bool(i.api_url and i.api_token_enc)}


@router.post("/integrations", status_code=201)
def create_integration(body: NewIntegration, session: DB, request: Request,
                       _: Admin) -> dict[str, object]:
    """Register a network server. The reply carries the secret it must send in the
    X-Mizumori-Secret header: the only time it is shown."""
    if session.scalars(select(LorawanIntegration).where(
            LorawanIntegration.name == body.name)).first():
        raise HTTPException(409, f"integration {body.name} exists")
    if body.api_url and not body.api_token:
        raise HTTPException(422, "api_url needs api_token")
    if body.kind == "tts" and body.api_url and not (body.application_id and body.webhook_id):
        raise HTTPException(422, "The Things Stack downlinks need application_id and "
                                 "webhook_id")
    secret = secrets.token_urlsafe(32)
    i = LorawanIntegration(
        name=body.name, kind=body.kind, secret_hash=security.token_hash(secret),
        api_url=str(body.api_url or ""), application_id=body.application_id,
        webhook_id=body.webhook_id, created_at=clock.now(),
        api_token_enc=request.app.state.box.seal(body.api_token.encode())
        if body.api_token else None)
    session.add(i)
    session.commit()
    return {**integration_json(i), "secret": secret,
            "endpoint": str(request.url_for("uplink", name=i.name))}


@router.get("/integrations")
def list_integrations(session: DB, _: Admin) -> list[dict[str, object]]:
    return [integration_json(i) for i in
            session.scalars(select(LorawanIntegration).order_by(LorawanIntegration.id))]


@router.delete("/integrations/{name}", status_code=204)
def delete_integration(name: Name, session: DB, _: Admin) -> None:
    i = session.scalars(select(LorawanIntegration).where(
        LorawanIntegration.name == name)).first()
    if i is None:
        raise HTTPException(404, f"no integration {name}")
    session.delete(i)
    session.commit()


def reject(status: int, code: str, message: str) -> JSONResponse:
    metrics.REJECTS.labels(f"lorawan_{code}").inc()
    return JSONResponse({"detail": message, "code": code}, status_code=status)


@router.post("/{name}", name="uplink", responses={
    204: {"description": "Not an uplink with readings: acknowledged, nothing stored"}})
@router.post("/{name}/{path:path}", include_in_schema=False)
async def webhook(name: Name, request: Request,
                  x_mizumori_secret: Annotated[str | None, Header(max_length=200)] = None,
                  event: Annotated[str | None, Query(max_length=40)] = None) -> Response:
    """A network server's event. ChirpStack: the HTTP integration's URL, `?event=up` (and
    join, status, ...); The Things Stack: the webhook's base URL (any message path).
    Uplinks on port 1 are stored like a Wi-Fi upload, deduplicated on (device, seq);
    other events are acknowledged (204) and not stored."""
    app = request.app
    arrived = clock.now()
    body = await read_body(request, app.state.settings.max_body_bytes)
    try:
        integration = await anyio.to_thread.run_sync(find, app, name)
    except HTTPException as e:
        return reject(e.status_code, "unknown_integration", str(e.detail))
    if not x_mizumori_secret or not hmac.compare_digest(
            security.token_hash(x_mizumori_secret), integration["secret_hash"]):
        return reject(401, "bad_secret", f"wrong or missing {SECRET_HEADER} header")
    try:
        doc = jsonlimits.loads(body, app.state.settings.max_body_bytes)
    except jsonlimits.JsonError as e:
        return reject(e.status, "malformed", f"malformed JSON: {e.message}")
    if not isinstance(doc, dict):
        return reject(400, "malformed", "malformed JSON: not a JSON object")
    try:
        if integration["kind"] == "chirpstack":
            if (event or "up") != "up":
                metrics.LORAWAN_EVENTS.labels(f"chirpstack_{event}"[:40]).inc()
                return Response(status_code=204)
            up = lorawan.chirpstack_uplink(doc)
        else:
            if "uplink_message" not in doc:
                kind = next((k for k in doc if k.endswith(("_message", "_accept", "_ack",
                                                           "_nack", "_sent", "_failed",
                                                           "_queued"))), "other")
                metrics.LORAWAN_EVENTS.labels(f"tts_{kind}"[:40]).inc()
                return Response(status_code=204)
            up = lorawan.tts_uplink(doc)
    except lorawan.BadEvent as e:
        return reject(400, "malformed", str(e))
    if up.f_port not in (lorawan.READINGS_PORT, lorawan.REPORT_PORT):
        metrics.LORAWAN_EVENTS.labels("other_port").inc()
        return Response(status_code=204)  # MAC-only frames and other ports
    try:
        asked, payload = (lorawan.split_report(up.payload)
                          if up.f_port == lorawan.REPORT_PORT else (None, up.payload))
    except lorawan.BadEvent as e:
        return reject(400, "malformed", str(e))
    try:
        reply, downlink, delivery = await anyio.to_thread.run_sync(
            store, app, integration, up, asked, payload, arrived,
            limiter=app.state.ingest_threads)
    except ingest.IngestError as e:
        return reject(e.status, e.code, e.message)
    metrics.RECORDS.inc(len(reply["acked"]))
    metrics.UPLOADS.inc()
    metrics.LORAWAN_EVENTS.labels("uplink").inc()
    if downlink:
        await anyio.to_thread.run_sync(send_config, app, integration, downlink)
    if delivery:
        await anyio.to_thread.run_sync(send_delivery, app, integration, up, *delivery)
    return JSONResponse({"acked": reply["acked"], "config_version": reply["config_version"]})


def find(app: FastAPI, name: str) -> dict[str, Any]:
    with app.state.sessions() as session:
        i = session.scalars(select(LorawanIntegration).where(
            LorawanIntegration.name == name)).first()
        if i is None:
            raise HTTPException(404, f"no LoRaWAN integration {name}")
        return {c: getattr(i, c) for c in ("id", "name", "kind", "secret_hash", "api_url",
                                           "api_token_enc", "application_id", "webhook_id")}


def store(app: FastAPI, integration: dict[str, Any], up: lorawan.Uplink,
          asked: tuple[int, int] | None, payload: bytes,
          now: int) -> tuple[dict[str, Any], ConfigDownlink | None, tuple[Any, ...] | None]:
    """Store the uplink's records (arrived at `now`); returns the reply, the config
    downlinks to queue when the device's config is behind and they are not queued yet or
    due again, and what send_delivery needs for the delivery report the device should get:
    asked for (`asked`: the oldest reading it holds and the newest it sent), or a hole below
    this uplink."""
    # Ages count from transmission: the network server's receive time is nearer to it than
    # ours (a retried webhook arrives late), unless it is ahead of our clock.
    received = up.received if up.received is not None and up.received <= now + 60 else now
    records = ingest.decode(payload) if payload or asked is None else []
    with app.state.sessions() as session:
        try:
            device = session.execute(READ_BY_EUI, {"eui": up.dev_eui}).first()
            if device is None:
                raise ingest.IngestError(404, "unknown_device",
                                         f"no device with DevEUI {up.dev_eui}")
            reply = ingest.store(session, app.state.settings, device.id, device, records,
                                 received, link=up.link())
            if up.ns_device_id and up.ns_device_id != device.ns_device_id:
                session.execute(update(Device).where(Device.id == device.id)
                                .values(ns_device_id=up.ns_device_id))
            delivery = delivery_report(session, device, reply["acked"], asked)
            version = reply["config_version"]
            last = None  # the version's last queueing, when it is queued and not reported
            if (integration["api_url"] and reply["config"] is not None
                    and device.downlink_version == version):
                last = count_uplink(session, device.id, version, up.f_cnt)
            session.commit()
            if session.info.pop("deliveries", False):
                background.wake_sender(app)
        except BaseException:
            session.rollback()
            raise
    if not integration["api_url"]:
        return reply, None, None  # no way to send anything down
    due = reply["config"] is not None and (
        device.downlink_version < version
        or (last is not None and last.downlink_uplinks >= REQUEUE_UPLINKS
            and now >= (last.downlink_at or 0) + requeue_wait(last.downlink_tries)))
    ns_device_id = up.ns_device_id or device.ns_device_id
    config = None
    if due:
        config = ConfigDownlink(device.id, up.dev_eui, ns_device_id, version,
                                lorawan.encode_config(version, reply["config"]), now,
                                up.f_cnt, last)
    return reply, config, delivery and (device.id, ns_device_id, *delivery)


def count_uplink(session: Any, device_id: int, version: int, f_cnt: int | None) -> Any:
    """Count an uplink of a device that still reports an older config than the one queued
    (`version`); copies of one frame (the same frame counter) count once. The device's
    downlink_at, downlink_tries and downlink_uplinks after it, or None for a copy."""
    new_frame = true() if f_cnt is None else (Device.uplink_fcnt.is_(None)
                                              | (Device.uplink_fcnt != f_cnt))
    return session.execute(
        update(Device).where(Device.id == device_id, Device.downlink_version == version,
                             new_frame)
        .values(downlink_uplinks=Device.downlink_uplinks + 1, uplink_fcnt=f_cnt)
        .returning(Device.downlink_at, Device.downlink_tries, Device.downlink_uplinks)
        .execution_options(synchronize_session=False)).first()


def requeue_wait(tries: int) -> int:
    """How long a config queued `tries` times waits for the device to report it before it
    goes again: 1, 2, 4, 8, 16 hours, then a day."""
    return min(CONFIG_REQUEUE_S << min(max(tries - 1, 0), 5), CONFIG_REQUEUE_MAX_S)


def delivery_report(session: Any, device: Any, new: list[int],
                    asked: tuple[int, int] | None) -> tuple[int, int] | None:
    """(kind, seq) for the device. Asked: the first reading missing from its oldest on, as
    HAVE when every reading up to the newest it sent is stored, else MISSING. Otherwise
    RESEND from the first missing one when the readings stored just below this uplink's
    first leave a hole (frames lost in the air: they are unconfirmed; a resent frame lost
    again leaves one too). Holes older than the station's resend window are left to the next
    report."""
    before = device.last_seq  # the newest seq stored before this uplink
    if asked is not None:
        start = codec.extend_seq(asked[0], max([before, *new]))
        newest = codec.extend_seq(asked[1], start)
        stored = ingest.held_seqs(session, device.id, start, MAX_REPORT_SPAN)
        first = lorawan.first_missing(stored, start)
        return (lorawan.HAVE if first > newest else lorawan.MISSING), first
    if not new:
        return None
    first, below = ingest.held_below(session, device.id, new)  # a digest's readings count
    if below is not None and below < first - 1 and below >= before - RESEND_WINDOW:
        return lorawan.RESEND, below + 1
    return None


def send_delivery(app: FastAPI, integration: dict[str, Any], up: lorawan.Uplink,
                  device_id: int, ns_device_id: str | None, kind: int, seq: int) -> None:
    """Queue a delivery report, once per uplink: copies of the same frame (one per gateway
    from a network server that does not deduplicate, a retried webhook), in any worker, ask
    once. The report is claimed in the database first (a conditional UPDATE, as
    send_config claims a version) and released if queueing fails."""
    # The frame: its counter (a station asking again sends the same bytes in a new frame)
    # and its payload (counters start again at a join).
    frame = "-" if up.f_cnt is None else up.f_cnt
    key = f"{kind}:{seq}:{frame}:{hashlib.sha256(up.payload).hexdigest()[:32]}"
    mine = (Device.id == device_id) & ((Device.delivery_key != key)
                                       | Device.delivery_key.is_(None))
    with app.state.sessions() as session:
        claimed = session.execute(update(Device).where(mine).values(delivery_key=key)).rowcount
        session.commit()
        if not claimed:
            return
        if not _queue(app, integration, up.dev_eui, ns_device_id, lorawan.DELIVERY_PORT,
                      [lorawan.encode_delivery(kind, seq)], f"delivery report {kind}:{seq}"):
            session.execute(update(Device).where(Device.id == device_id,
                                                 Device.delivery_key == key)
                            .values(delivery_key=None))
            session.commit()


def _queue(app: FastAPI, integration: dict[str, Any], dev_eui: str, ns_device_id: str | None,
           port: int, frames: list[bytes], what: str, replace: bool = False) -> bool:
    """Queue downlinks on the integration's network server (`replace`: in place of the
    device's queue); False (logged, counted) when it failed."""
    token = app.state.box.open(integration["api_token_enc"]).decode()
    try:
        with httpx.Client(timeout=app.state.settings.webhook_timeout_s) as client:
            lorawan.queue_downlinks(integration["kind"], integration["api_url"], token,
                                    dev_eui, ns_device_id, integration["application_id"],
                                    integration["webhook_id"], frames, client, port,
                                    replace)
    except httpx.HTTPError as e:
        log.warning("queueing %s for %s on %s failed: %s", what, dev_eui,
                    integration["name"], e)
        metrics.LORAWAN_EVENTS.labels("downlink_failed").inc()
        return False
    metrics.LORAWAN_EVENTS.labels("downlink_queued").inc()
    return True


def send_config(app: FastAPI, integration: dict[str, Any], c: ConfigDownlink) -> None:
    """Queue the config downlinks on the network server, once per version, and again when
    the device still reports an older one after REQUEUE_UPLINKS uplinks and requeue_wait
    (the downlinks were lost, or the event and AT+RECV both missed them). The version, or
    the try, is claimed first (so concurrent uplinks queue it once) and released if
    queueing fails, to be tried again at the next uplink.

    A try again replaces the device's queue on the network server (ChirpStack: flush, then
    enqueue; The Things Stack: down/replace) instead of adding to it: for a device whose
    downlinks never arrive, the queue would otherwise grow by a whole config at each try
    while its uplinks take one frame each. Replacing also drops a delivery report still
    waiting there (this uplink's own is queued after: send_delivery runs next); the station
    survives that as it does a downlink lost in the air (an ask goes again at its next
    wakes, a hole is found at the next report), and tries are hours apart."""
    first = c.again is None
    tries = 1 if first else c.again.downlink_tries + 1
    mine = (Device.downlink_version < c.version) if first else (
        (Device.downlink_version == c.version)
        & (Device.downlink_tries == c.again.downlink_tries))
    with app.state.sessions() as session:
        claimed = session.execute(update(Device).where(Device.id == c.device_id, mine).values(
            downlink_version=c.version, downlink_at=c.now, downlink_tries=tries,
            downlink_uplinks=0, uplink_fcnt=c.f_cnt)).rowcount
        session.commit()
        if not claimed:
            return
        if not first:
            log.info("config %d for %s not reported after %d uplinks: queued again (try %d)",
                     c.version, c.dev_eui, c.again.downlink_uplinks, tries)
        if _queue(app, integration, c.dev_eui, c.ns_device_id, lorawan.CONFIG_PORT, c.frames,
                  f"config {c.version}", replace=not first):
            return
        back = ({"downlink_version": 0, "downlink_at": None} if first else {
            "downlink_at": c.again.downlink_at, "downlink_tries": c.again.downlink_tries,
            "downlink_uplinks": c.again.downlink_uplinks})
        session.execute(update(Device).where(Device.id == c.device_id,
                                             Device.downlink_version == c.version,
                                             Device.downlink_tries == tries).values(**back))
        session.commit()
