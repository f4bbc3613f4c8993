"""Over-the-air updates: releases (upload, list), rollouts (start, watch, pause, resume,
abort), the devices' downloads (token from their offer, HTTP Range) and their reports."""

import re
from typing import Annotated, Any, Literal

from fastapi import Header, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field, StrictInt, ValidationError, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import select

from mizumori_server import devices, i18n, ingest, jsonlimits, releases, rollouts
from mizumori_server.api.ingest import CounterHeader, DeviceHeader, SignatureHeader, read_body
from mizumori_server.clock import now
from mizumori_server.deps import DB, Operator, Reader
from mizumori_server.inputs import INT32_MAX, BodyId, Code, Count, Id, Input, bounded_router, error
from mizumori_server.models import OtaEvent, Release, ReleaseFile, Rollout

router = bounded_router("/api", "ota")
Version = Annotated[str, Path(min_length=1, max_length=32)]


def _release(session: DB, version: str) -> Release:
    r = session.scalars(select(Release).where(Release.version == version)).first()
    if r is None:
        raise HTTPException(404, f"no release {version}")
    return r


@router.post("/releases", status_code=201, responses={
    415: error("A compressed bundle: only a plain tar is taken")})
async def upload_release(request: Request, session: DB, user: Operator) -> dict[str, Any]:
    """A release bundle (tar: manifest.json, manifest.sig, files/…) as the request body,
    as `mizumori release upload` sends it."""
    body = await read_body(request, request.app.state.settings.max_release_bytes)
    try:
        rel = releases.store(session, body, request.app.state.settings.trusted_release_keys(),
                             user.username, now())
    except releases.ReleaseError as e:
        session.rollback()
        raise HTTPException(e.status, e.message) from None
    session.commit()
    return releases.release_json(rel)


@router.get("/releases")
def list_releases(session: DB, _: Reader) -> list[dict[str, Any]]:
    return [releases.release_json(r)
            for r in session.scalars(select(Release).order_by(Release.created_at.desc()))]


@router.get("/releases/{version}")
def release_detail(version: Version, session: DB, _: Reader) -> dict[str, Any]:
    return releases.release_json(_release(session, version))


# --- downloads by devices ------------------------------------------------------------------

@router.get("/ota/releases/{version}/{name:path}", response_class=Response, responses={
    200: {"content": {"application/octet-stream": {}}, "description": "The file"},
    206: {"content": {"application/octet-stream": {}}, "description": "A byte range of it"},
    416: error("A range the file does not have")})
def download(version: Version, name: Annotated[str, Path(max_length=220)], session: DB,
             x_mizumori_device: DeviceHeader,
             x_mizumori_ota_token: Annotated[str, Header(max_length=100)],
             range_: Annotated[str | None, Header(alias="range", max_length=100)] = None
             ) -> Response:
    """manifest.json, manifest.sig or files/<path>, for a device offered this release."""
    if not rollouts.may_download(session, x_mizumori_device, x_mizumori_ota_token, version):
        raise HTTPException(403, "not offered this release (or the offer ended)")
    rel = _release(session, version)
    if name == "manifest.json":
        data = rel.manifest
    elif name == "manifest.sig":
        data = rel.signature.encode()
    elif name.startswith("files/"):
        f = session.get(ReleaseFile, (rel.id, name[6:]))
        if f is None:
            raise HTTPException(404, f"release {version} has no {name[6:]}")
        data = f.content
    else:
        raise HTTPException(404, f"no {name}")
    return ranged(data, range_)


def ranged(data: bytes, header: str | None) -> Response:
    """The whole body, or one byte range of it (RFC 9110: bytes=a-b, a-, -n)."""
    kind = "application/octet-stream"
    if not header:
        return Response(data, media_type=kind, headers={"Accept-Ranges": "bytes"})
    m = re.fullmatch(r"bytes=([0-9]{0,18})-([0-9]{0,18})", header.strip())
    size = len(data)
    if not m or (not m[1] and not m[2]):
        raise HTTPException(416, f"unsupported Range {header!r}: one bytes=a-b range",
                            headers={"Content-Range": f"bytes */{size}"})
    if m[1]:
        start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
    else:
        start, end = max(0, size - int(m[2])), size - 1
    if start >= size or start > end:
        raise HTTPException(416, f"range starts beyond the {size} bytes",
                            headers={"Content-Range": f"bytes */{size}"})
    return Response(data[start:end + 1], status_code=206, media_type=kind,
                    headers={"Content-Range": f"bytes {start}-{end}/{size}",
                             "Accept-Ranges": "bytes"})


# --- device reports ------------------------------------------------------------------------

class Event(Input):
    release: str = Field(max_length=32)
    state: Literal["offered", "downloading", "downloaded", "installed", "confirmed",
                   "failed", "rolled_back"]
    reason: str = Field("", max_length=300)
    t: int = Field(0, ge=0, le=2**40)


class Report(Input):
    version: str = Field(max_length=32)
    slot: str | None = Field(None, max_length=4)
    events: list[Event] = Field(default_factory=list, max_length=100)
    # The station's health (docs/ota.md): why this wake began, the last wake's error ("":
    # none) and its own clock. Optional: older firmware sends none of them.
    reset_cause: devices.ResetCause | None = None
    error: str | None = Field(None, max_length=200)
    clock: StrictInt | None = Field(None, ge=0, le=2**40)


REPORT_BYTES = 16 * 1024


def problems(e: ValidationError) -> str:
    """A validation error in a few words, without echoing what was sent."""
    return "; ".join(f"{'.'.join(map(str, x['loc'])) or 'body'}: {x['msg']}"
                     for x in e.errors(include_url=False, include_input=False))[:300]


@router.post("/ota/report")
async def device_report(
    request: Request, session: DB,
    x_mizumori_device: DeviceHeader,
    x_mizumori_counter: CounterHeader,
    x_mizumori_signature: SignatureHeader,
) -> JSONResponse:
    """A device's running version and its update events, signed like an upload."""
    body = await read_body(request, REPORT_BYTES)
    up = ingest.Upload(x_mizumori_device, x_mizumori_counter, x_mizumori_signature, body)
    try:
        device = ingest.authenticate(session, request.app.state.box, up)
        report = Report.model_validate(jsonlimits.loads(body, REPORT_BYTES))
    except ingest.IngestError as e:
        session.rollback()
        return JSONResponse({"detail": e.message, "code": e.code, **e.extra},
                            status_code=e.status)
    except ValidationError as e:
        session.rollback()
        return JSONResponse({"detail": f"malformed report: {problems(e)}",
                             "code": "bad_report"}, status_code=422)
    except jsonlimits.JsonError as e:  # not JSON, or nested beyond reason
        session.rollback()
        return JSONResponse({"detail": f"malformed report: {e.message}",
                             "code": "bad_report"}, status_code=422)
    t = now()
    taken = rollouts.report(session, device, report.version,
                            [e.model_dump() for e in report.events], t)
    devices.record_health(session, device, report.reset_cause, report.error, report.clock, t)
    session.commit()
    return JSONResponse({"taken": taken})


@router.get("/devices/{device_id}/ota-events")
def device_ota_history(device_id: Id, session: DB, _: Reader) -> list[dict[str, Any]]:
    rows = session.scalars(select(OtaEvent).where(OtaEvent.device_id == device_id)
                           .order_by(OtaEvent.id)).all()
    return [{"release": e.release, "state": e.state, "reason": e.reason, "at": e.at,
             "rollout": e.rollout_id} for e in rows]


# --- rollouts ------------------------------------------------------------------------------

class Target(Input):
    all: bool | None = None
    tag: str | None = Field(None, max_length=32)
    stations: list[Code] | None = Field(None, min_length=1, max_length=10000)
    devices: list[BodyId] | None = Field(None, min_length=1, max_length=10000)

    @model_validator(mode="after")
    def exactly_one(self) -> "Target":
        given = [k for k in ("all", "tag", "stations", "devices") if getattr(self, k)]
        if len(given) != 1:
            # codes of i18n.PROBLEMS: the refusal is in the asker's language
            raise PydanticCustomError("rollout_target", i18n.PROBLEMS["rollout_target"][1])
        return self


class NewRollout(Input):
    release: str = Field(max_length=32)
    target: Target
    stages: list[float] = Field(default=[5, 25, 100], min_length=1, max_length=10)
    auto_advance: bool = True
    success_pct: int = Field(90, ge=1, le=100)
    max_failures: int | None = Field(None, ge=1, le=INT32_MAX)
    max_failure_pct: int | None = Field(20, ge=1, le=100)
    min_devices: Count = 5
    per_minute: int = Field(10, ge=1, le=100000)
    jitter_s: int = Field(300, ge=0, le=86400)
    timeout_s: int = Field(86400, ge=60, le=30 * 86400)

    @model_validator(mode="after")
    def stages_rise_to_100(self) -> "NewRollout":
        if any(not 0 < s <= 100 for s in self.stages) or self.stages != sorted(
                set(self.stages)) or self.stages[-1] != 100:
            raise PydanticCustomError("rollout_stages", i18n.PROBLEMS["rollout_stages"][1])
        return self


@router.post("/rollouts", status_code=201)
def start_rollout(body: NewRollout, session: DB, user: Operator) -> dict[str, Any]:
    rel = _release(session, body.release)
    spec = body.model_dump()
    spec["target"] = body.target.model_dump(exclude_none=True)
    try:
        r = rollouts.create(session, rel, spec, user.username, now())
    except rollouts.RolloutError as e:
        session.rollback()
        raise HTTPException(e.status, e.message) from None
    session.commit()
    return rollouts.rollout_json(session, r)


@router.get("/rollouts")
def list_rollouts(session: DB, _: Reader) -> list[dict[str, Any]]:
    return [rollouts.rollout_json(session, r)
            for r in session.scalars(select(Rollout).order_by(Rollout.id.desc()))]


@router.get("/rollouts/{rollout_id}")
def rollout_detail(rollout_id: Id, session: DB, _: Reader) -> dict[str, Any]:
    """The rollout with every device's state (evaluated now: timeouts, advance, halt)."""
    if session.get(Rollout, rollout_id) is None:
        raise HTTPException(404, f"no rollout {rollout_id}")
    r = rollouts.evaluate(session, rollout_id, now())
    session.commit()
    return rollouts.rollout_json(session, r, devices=True)


@router.post("/rollouts/{rollout_id}/{action}")
def rollout_action(rollout_id: Id, action: Literal["pause", "resume", "abort"],
                   session: DB, user: Operator) -> dict[str, Any]:
    try:
        r = rollouts.act(session, rollout_id, action, now(), user.username)
    except rollouts.RolloutError as e:
        session.rollback()
        raise HTTPException(e.status, e.message) from None
    session.commit()
    return rollouts.rollout_json(session, r)
