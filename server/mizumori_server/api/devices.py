"""Provisioning (by a technician, or by the device itself from the allowlist), device
installation at stations, and per-device config."""

import hmac
from typing import Annotated, Any, Literal

from fastapi import Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from mizumori_server import devices, security
from mizumori_server.api.stations import get_station
from mizumori_server.clock import now
from mizumori_server.db import rowcount
from mizumori_server.deps import DB, Operator, Reader, Technician
from mizumori_server.inputs import Code, Id, Input, bounded_router
from mizumori_server.models import AllowlistEntry, Device, Station

router = bounded_router("/api", "devices")
HardwareId = Annotated[str, Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9:_-]+$")]


REPLACE = ("true: replace the device installed at the station (it leaves the station and "
           "can no longer report); without it, a station that has another device is a 409 "
           "naming that device and its last report")


class Provision(Input):
    hardware_id: HardwareId
    station: Code | None = None
    transport: Literal["wifi", "lorawan"] = "wifi"
    dev_eui: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$")
    replace: bool = Field(False, description=REPLACE)

    @field_validator("dev_eui")
    @classmethod
    def lower(cls, v: str | None) -> str | None:
        return v.lower() if v else v  # network servers write it either way


class SelfRegister(Input):
    hardware_id: HardwareId


class AllowEntry(Input):
    hardware_id: HardwareId
    station: Code | None = None
    replace: bool = Field(False, description="true: the board, registering itself, replaces "
                                             "the device installed at its station; without "
                                             "it, its registration is refused (409) while "
                                             "the station has another device")


class Allowlist(Input):
    entries: list[AllowEntry] = Field(max_length=10000)


class Install(Input):
    station: Code | None
    replace: bool = Field(False, description=REPLACE)


class CurrentDevice(BaseModel):
    device_id: int
    hardware_id: str
    last_report: int | None = Field(description="Unix seconds; null: it never reported")
    last_report_at: str | None


class Conflict(BaseModel):
    """A 409. Installing a device at a station that has another one (code
    "station_has_device") also names the station and its current device."""

    detail: str
    code: Literal["station_has_device"] | None = None
    station: str | None = None
    current_device: CurrentDevice | None = None


OCCUPIED: dict[int | str, dict[str, Any]] = {
    409: {"model": Conflict,
          "description": "the station has another device (replace it with \"replace\": "
                         "true), or another change came first"}}


def occupied(e: devices.StationOccupied) -> JSONResponse:
    return JSONResponse(e.json(), status_code=409)


def commit(session: DB) -> None:
    """Commit; two installations at one station at once: the second is a 409."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(409, "another device was installed or registered at the same "
                                 "time: try again") from None


class ConfigChange(Input):
    """Per-device overrides of firmware settings (firmware/station/config.py), each within
    its range there (docs/server.md)."""

    settings: dict[str, Any] = Field(max_length=len(devices.OVERRIDABLE))


def device_json(session: DB, d: Device) -> dict[str, object]:
    return {"device_id": d.id, "hardware_id": d.hardware_id, "transport": d.transport,
            "dev_eui": d.dev_eui, "firmware_version": d.firmware_version,
            "station": _station_code(session, d.station_id),
            "provisioned_at": d.provisioned_at, "config_version": d.desired_version,
            "reported_config_version": d.reported_version, "last_seq": d.last_seq,
            **devices.health_json(d)}


def _station_code(session: DB, station_id: int | None) -> str | None:
    s = session.get(Station, station_id) if station_id is not None else None
    return s.code if s else None


def _provisioned(session: DB, d: Device, secret: bytes) -> dict[str, object]:
    return {**device_json(session, d), "secret": security.secret_text(secret),
            "config": devices.effective_config(session, d),
            "note": "the secret is shown once; the previous one no longer works"}


@router.post("/devices/provision", status_code=201, response_model=dict[str, object],
             responses=OCCUPIED)
def provision(body: Provision, request: Request, session: DB,
              user: Technician) -> dict[str, object] | JSONResponse:
    """Register or re-provision a device: a fresh secret (shown once) and its config. At a
    station that has another device, only with "replace": true (else a 409 naming that
    device and its last report; nothing changes)."""
    station = get_station(session, body.station) if body.station else None
    if body.dev_eui and session.scalars(select(Device).where(
            Device.dev_eui == body.dev_eui, Device.hardware_id != body.hardware_id)).first():
        raise HTTPException(409, f"DevEUI {body.dev_eui} belongs to another device")
    try:
        d, secret = devices.provision(session, request.app.state.box, body.hardware_id,
                                      station, user.username, body.transport, body.dev_eui,
                                      body.replace)
    except devices.StationOccupied as e:
        session.rollback()
        return occupied(e)
    commit(session)
    return _provisioned(session, d, secret)


@router.post("/devices/register", status_code=201, response_model=dict[str, object],
             responses=OCCUPIED)
def self_register(body: SelfRegister, request: Request, session: DB,
                  x_mizumori_provisioning: Annotated[str | None,
                                                    Header(max_length=200)] = None
                  ) -> dict[str, object] | JSONResponse:
    """A device registers itself with the batch provisioning secret, if its hardware id is
    on the allowlist (each entry can be used once) and has no secret yet: a provisioned
    device is re-keyed only by a technician (POST /api/devices/provision), never here
    (409). It replaces the device installed at its station only if its entry says
    "replace" (else 409, and the entry stays unused)."""
    configured = request.app.state.settings.provisioning_secret
    if not configured or not x_mizumori_provisioning or not hmac.compare_digest(
            configured.encode(), x_mizumori_provisioning.encode()):
        raise HTTPException(401, "wrong or missing provisioning secret")
    # Claim the entry first: of two registrations at once, one gets it.
    claimed = rowcount(session.execute(
        update(AllowlistEntry).where(AllowlistEntry.hardware_id == body.hardware_id,
                                     AllowlistEntry.used_at.is_(None))
        .values(used_at=now())))
    if not claimed:
        raise HTTPException(403, "hardware id not on the allowlist (or already registered)")
    if session.scalars(select(Device.id).where(Device.hardware_id == body.hardware_id,
                                               Device.secret_enc.is_not(None))).first():
        session.rollback()  # the entry stays unused
        raise HTTPException(409, f"{body.hardware_id} is already provisioned: only a "
                                 "technician can give it a new secret "
                                 "(POST /api/devices/provision)")
    entry = session.get(AllowlistEntry, body.hardware_id)
    assert entry is not None
    station = session.get(Station, entry.station_id) if entry.station_id else None
    try:
        d, secret = devices.provision(session, request.app.state.box, body.hardware_id,
                                      station, "self-registration", replace=entry.may_replace)
    except devices.StationOccupied as e:
        session.rollback()  # the entry stays unused
        return occupied(e)
    commit(session)
    return _provisioned(session, d, secret)


@router.put("/provisioning/allowlist")
def put_allowlist(body: Allowlist, session: DB, _: Technician) -> dict[str, int]:
    """Add hardware ids (optionally with their station) that may self-register."""
    added = 0
    for e in body.entries:
        station = get_station(session, e.station) if e.station else None
        row = session.get(AllowlistEntry, e.hardware_id)
        if row is None:
            session.add(AllowlistEntry(hardware_id=e.hardware_id, created_at=now(),
                                       station_id=station.id if station else None,
                                       may_replace=e.replace))
            added += 1
        else:
            row.station_id = station.id if station else None
            row.may_replace = e.replace
    session.commit()
    return {"added": added, "total": len(body.entries)}


@router.get("/devices")
def list_devices(session: DB, _: Reader) -> list[dict[str, object]]:
    return [device_json(session, d)
            for d in session.scalars(select(Device).order_by(Device.hardware_id))]


def get_device(session: DB, device_id: int) -> Device:
    d = session.get(Device, device_id)
    if d is None:
        raise HTTPException(404, f"no device {device_id}")
    return d


@router.get("/devices/{device_id}")
def device_detail(device_id: Id, session: DB, _: Reader) -> dict[str, object]:
    d = get_device(session, device_id)
    return {**device_json(session, d), "config": devices.effective_config(session, d)}


@router.get("/devices/{device_id}/events")
def device_events(device_id: Id, session: DB, _: Reader) -> list[dict[str, object]]:
    """What the station reported about itself: its errors, their clearing ("cleared") and
    its resets, newest first; the last 20 of errors and of resets (docs/ota.md)."""
    get_device(session, device_id)
    return devices.health_history(session, device_id)


@router.post("/devices/{device_id}/install", response_model=dict[str, object],
             responses=OCCUPIED)
def install(device_id: Id, body: Install, session: DB,
            user: Technician) -> dict[str, object] | JSONResponse:
    """Install the device at a station, or remove it with station null. A station that has
    another device keeps it (409 naming it and its last report) unless "replace": true:
    then that device leaves it (the station's history says who replaced it, and with
    which device)."""
    d = get_device(session, device_id)
    station = get_station(session, body.station) if body.station else None
    try:
        devices.install(session, d, station, user.username, body.replace)
    except devices.StationOccupied as e:
        session.rollback()
        return occupied(e)
    commit(session)
    return device_json(session, d)


@router.patch("/devices/{device_id}/config")
def change_config(device_id: Id, body: ConfigChange, session: DB,
                  _: Operator) -> dict[str, object]:
    """Change the device's desired config; it is sent with the next ingest reply until the
    device reports that version. A value the station would refuse (out of its range in
    firmware/station/config.py, e.g. "wdt_ms: 30000..120000") is a 422 and changes nothing."""
    d = get_device(session, device_id)
    problems = devices.check_overrides(body.settings, devices.effective_config(session, d))
    if problems:
        raise HTTPException(422, "; ".join(problems))
    d.desired_config = {**(d.desired_config or {}), **body.settings}
    d.desired_version += 1
    session.commit()
    return {**device_json(session, d), "config": devices.effective_config(session, d)}
