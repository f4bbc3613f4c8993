"""Stations, their readings (downsampled), CSV export, latest state and fleet status."""

import importlib
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import select

from mizumori_server import clock, codec, devices, features, i18n, queries
from mizumori_server.deps import DB, Operator, Reader, Technician
from mizumori_server.devices import bump_config
from mizumori_server.inputs import CODE_PATTERN, Input, StationCode, UnixTime, bounded_router
from mizumori_server.models import (
    Calibration,
    Device,
    DeviceInstall,
    Reading,
    Station,
    StationLatest,
)

router = bounded_router("/api", "stations")
SiteType = Literal["river", "underpass", "culvert", "paddy", "reservoir", "other"]
THRESHOLDS = ("standby_mm", "caution_mm", "evacuation_mm", "danger_mm")
Tag = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


def _setting(column: str, default: Any = None) -> Any:
    """A station field within the range of the firmware setting it sets (the stations' own
    table, firmware/station/config.py RANGES; devices.STATION_KEYS)."""
    key = devices.STATION_KEYS[column]
    lo, hi = devices.RANGES[key]
    return Field(default, ge=lo, le=hi, description=f"{lo}..{hi} (the station's {key})")


class StationFields(Input):
    name: str | None = Field(None, min_length=1, max_length=200)
    site_type: SiteType | None = None
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    datum_m: float | None = Field(None, ge=-1000, le=10000,
                                  description="the datum's elevation, T.P. m")
    mount_height_mm: int | None = _setting("mount_height_mm")
    standby_mm: int | None = _setting("standby_mm")
    caution_mm: int | None = _setting("caution_mm")
    evacuation_mm: int | None = _setting("evacuation_mm")
    danger_mm: int | None = _setting("danger_mm")
    hysteresis_mm: int | None = _setting("hysteresis_mm")
    rise_limit_mm_h: int | None = _setting("rise_limit_mm_h")
    interval_normal_s: int | None = _setting("interval_normal_s")
    interval_flood_s: int | None = _setting("interval_flood_s")
    upload_every: int | None = _setting("upload_every")
    tags: list[Tag] | None = Field(None, max_length=20)  # groups, e.g. a rollout's target

    @model_validator(mode="after")
    def thresholds_rise(self) -> "StationFields":
        levels = [getattr(self, k) for k in THRESHOLDS if getattr(self, k) is not None]
        if levels != sorted(levels):
            # a code of i18n.PROBLEMS: the refusal is in the asker's language
            raise PydanticCustomError("river_levels_order",
                                      i18n.PROBLEMS["river_levels_order"][1])
        return self


class NewStation(StationFields):
    code: str = Field(min_length=1, max_length=64, pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    site_type: SiteType
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    mount_height_mm: int = _setting("mount_height_mm", ...)


COLUMNS = ("code", "name", "site_type", "latitude", "longitude", "datum_m",
           "mount_height_mm", *THRESHOLDS, "hysteresis_mm", "rise_limit_mm_h",
           "interval_normal_s",
           "interval_flood_s", "upload_every", "tags")


def station_json(s: Station) -> dict[str, object]:
    return {c: getattr(s, c) for c in COLUMNS}


def get_station(session: DB, code: str) -> Station:
    s = session.scalars(select(Station).where(Station.code == code)).first()
    if s is None:
        raise HTTPException(404, f"no station {code}")
    return s


@router.get("/stations")
def list_stations(session: DB, _: Reader) -> list[dict[str, object]]:
    return [station_json(s) for s in session.scalars(select(Station).order_by(Station.code))]


@router.post("/stations", status_code=201)
def create_station(body: NewStation, session: DB, _: Operator) -> dict[str, object]:
    if session.scalars(select(Station).where(Station.code == body.code)).first():
        raise HTTPException(409, f"station {body.code} exists")
    s = Station(created_at=clock.now(), datum_m=0.0, hysteresis_mm=50, rise_limit_mm_h=300,
                interval_normal_s=600, interval_flood_s=120, upload_every=3, tags=[])
    for k, v in body.model_dump(exclude_none=True).items():
        setattr(s, k, v)
    refuse_what_a_station_would(s)
    session.add(s)
    session.commit()
    return station_json(s)


@router.get("/stations/{code}")
def station_detail(code: StationCode, session: DB, _: Reader,
                   request: Request) -> dict[str, object]:
    s = get_station(session, code)
    installs = session.scalars(select(DeviceInstall).where(DeviceInstall.station_id == s.id)
                               .order_by(DeviceInstall.installed_at, DeviceInstall.id)).all()
    device = session.scalars(select(Device).where(Device.station_id == s.id)
                             .order_by(Device.id)).first()
    return {**station_json(s), "latest": latest_of(session, request, Station.id == s.id)[0],
            "device": None if device is None else device_health(session, device),
            "devices": [{"device_id": i.device_id, "installed_at": i.installed_at,
                         "removed_at": i.removed_at, "by": i.by_user,
                         "removed_by": i.removed_by, "replaced_by": i.replaced_by}
                        for i in installs]}


def device_health(session: DB, d: Device) -> dict[str, object]:
    """The installed device: what it reported about itself (last error, last reset) and its
    recent errors and resets."""
    return {"device_id": d.id, "hardware_id": d.hardware_id,
            "firmware_version": d.firmware_version, **devices.health_json(d),
            "events": devices.health_history(session, d.id, 10)}


def refuse_what_a_station_would(s: Station) -> None:
    """A 422 (nothing changes) when the station's device would refuse its settings, e.g. a
    setting set to null."""
    problems = devices.check_config(devices.station_config(s))
    if problems:
        raise HTTPException(422, "; ".join(problems))


@router.patch("/stations/{code}")
def change_station(code: StationCode, body: StationFields, session: DB,
                   _: Operator, request: Request) -> dict[str, object]:
    s = get_station(session, code)
    lang = i18n.request_language(request)
    mount = s.mount_height_mm
    for k, v in body.model_dump(exclude_unset=True).items():
        if v is None and k not in THRESHOLDS:  # only a river level may be unset
            raise i18n.problem(request, 422, "cannot_be_null", field=i18n.label(k, lang))
        setattr(s, k, v)
    levels = [getattr(s, k) for k in THRESHOLDS if getattr(s, k) is not None]
    if levels != sorted(levels):
        raise i18n.problem(request, 422, "river_levels_order")
    refuse_what_a_station_would(s)
    bump_config(session, s.id)  # its device gets the new settings in the next reply
    session.commit()
    out = station_json(s)
    # the calibration's offset was computed with the old mount height: it no longer fits
    if s.mount_height_mm != mount and session.scalars(select(Calibration.id).where(
            Calibration.station_id == s.id, Calibration.kind != "check").limit(1)).first():
        out["calibration_warning"] = i18n.text(i18n.TEXT["cal_check_again"], lang,
                                               station=code)
    return out


def time_range(start: int | None, end: int | None, default_s: int) -> tuple[int, int]:
    end = clock.now() + 1 if end is None else end
    start = end - default_s if start is None else start
    if start >= end:
        raise HTTPException(400, "start must be before end")
    return start, end


@router.get("/stations/{code}/readings")
def readings(code: StationCode, session: DB, _: Reader,
             start: UnixTime = None,
             end: Annotated[UnixTime, Query(description="Unix seconds, exclusive")] = None,
             max_points: Annotated[int, Query(ge=10, le=100000)] = 1000) -> dict[str, object]:
    """The station's readings in [start, end) (default: the last 24 h); over max_points,
    buckets with min/max/mean level."""
    s = get_station(session, code)
    lo, hi = time_range(start, end, 86400)
    return {"station": code, "start": lo, "end": hi,
            **queries.series(session, s.id, lo, hi, max_points)}


@router.get("/stations/{code}/readings.csv", response_class=features.CSVResponse)
def readings_csv(code: StationCode, session: DB, _: Reader, request: Request,
                 start: UnixTime = None, end: UnixTime = None) -> StreamingResponse:
    """Every reading in the range as CSV (UTC ISO 8601 times), streamed."""
    s = get_station(session, code)
    lo, hi = time_range(start, end, 7 * 86400)
    query = (features.observations_query()
             .where(Reading.station_id == s.id, Reading.t >= lo, Reading.t < hi)
             .order_by(Reading.t, Reading.seq))
    return StreamingResponse(features.csv_chunks(request.app.state.sessions, query),
                             media_type="text/csv", headers={
                                 "Content-Disposition": f'attachment; filename="{code}.csv"'})


@router.get("/latest")
def latest(session: DB, _: Reader, request: Request) -> list[dict[str, object]]:
    """Every station's latest state and status (cost proportional to stations, not
    history)."""
    return latest_of(session, request)


def latest_of(session: DB, request: Request, *where: Any) -> list[dict[str, Any]]:
    """queries.latest with the server's clock and status settings."""
    st = request.app.state.settings
    return queries.latest(session, clock.now(), st.late_after_intervals, st.offline_after_intervals,
                          *where)


@router.get("/fleet")
def fleet(session: DB, _: Reader, request: Request) -> list[dict[str, object]]:
    st = request.app.state.settings
    return queries.fleet(session, clock.now(), st.late_after_intervals, st.offline_after_intervals)


# --- calibration against the staff gauge (量水標) ------------------------------------------
# The station computes nothing here: the server and the technician's tool both use the
# firmware's own station/calibration.py, and the result reaches the station as its
# cal_* settings (the device's config, pushed with the next upload reply) or, from the
# tool, is written on the board at once. docs/operator.md, "Calibration".

calibration: Any = importlib.import_module("station.calibration")  # after devices: on sys.path
CAL_KEYS = ("cal_offset_mm", "cal_scale", "cal_version", "cal_staff_mm", "cal_raw_mm")
# A calibration entered on the page pairs the staff gauge read now with the station's latest
# reading, so that reading must be recent: 15 min is the default 10 min reading interval and
# the upload's delay; the water may move a centimetre in that time only when it is calm,
# which the reading's noisy flag checks. Older, and the level the offset is computed from is
# not the one the staff gauge showed.
CAL_READING_MAX_AGE_S = 900


class OnBoard(Input):
    """The calibration the board has (read by the technician's tool), when it differs from
    what the server sent it (a calibration made without the server)."""
    cal_offset_mm: int = Field(ge=-2000, le=2000)
    cal_scale: float = Field(ge=0.9, le=1.1)
    cal_version: int = Field(ge=0, le=2147483647)
    cal_staff_mm: int = Field(ge=-30000, le=30000)
    cal_raw_mm: int = Field(ge=-30000, le=30000)


class NewCalibration(Input):
    staff_gauge_m: float = Field(ge=-30, le=30, description="the staff gauge reading, m")
    kind: Literal["offset", "scale", "check"] = Field(
        "offset", description="offset: one point; scale: this point and the last one "
        "(at least 0.3 m apart); check: only compare, the residual")
    reading_mm: int | None = Field(
        None, ge=-30000, le=30000, description="the station's uncalibrated level measured "
        "on site (the technician's tool, which writes the result on the board); without it "
        "the station's latest reading (at most 15 min old, corrected for the temperature, "
        "not noisy) and the result goes as config")
    on_board: OnBoard | None = None


def calibration_json(c: Calibration) -> dict[str, object]:
    return {"id": c.id, "kind": c.kind, "source": c.source, "by": c.by_user, "at": c.at,
            "device_id": c.device_id, "staff_mm": c.staff_mm, "reading_mm": c.raw_mm,
            "level_mm": c.level_mm, "reading_t": c.reading_t, "offset_mm": c.offset_mm,
            "scale": c.scale, "version": c.version, "residual_mm": c.residual_mm,
            "config_version": c.config_version, "active_from": c.active_from}


def _history(session: DB, s: Station) -> list[Calibration]:
    return list(session.scalars(select(Calibration).where(Calibration.station_id == s.id)
                                .order_by(Calibration.at.desc(), Calibration.id.desc())))


def _confirm(session: DB, s: Station, rows: list[Calibration]) -> None:
    """Mark the calibrations sent as config that the station has since reported having: it
    measures with them no later than its latest upload (the time is known only that well:
    the upload that took the config is not recorded)."""
    pending = [c for c in rows if c.active_from is None and c.config_version is not None]
    if not pending:
        return
    latest = session.get(StationLatest, s.id)
    for c in pending:
        d = session.get(Device, c.device_id) if c.device_id else None
        if d is not None and latest is not None and d.reported_version >= (c.config_version or 0) \
                and latest.device_id == d.id and latest.last_seen >= c.at:
            c.active_from = latest.last_seen
    session.commit()


def _active_at(rows: list[Calibration], t: int) -> dict[str, Any]:
    """The calibration the station measured with at t (by the history), or none."""
    for c in rows:  # newest first
        if c.kind != "check" and c.active_from is not None and c.active_from <= t:
            return {"cal_offset_mm": c.offset_mm, "cal_scale": c.scale, "cal_version": c.version,
                    "cal_staff_mm": c.staff_mm, "cal_raw_mm": c.raw_mm}
    return {k: devices.FIRMWARE_DEFAULTS[k] for k in CAL_KEYS}


@router.get("/stations/{code}/calibrations")
def calibrations(code: StationCode, session: DB, _: Reader) -> dict[str, object]:
    """The station's calibrations and checks against its staff gauge, newest first, with
    the calibration its device should run and the config version it last reported."""
    s = get_station(session, code)
    rows = _history(session, s)
    _confirm(session, s, rows)
    device = devices.installed_at(session, s)
    cals = [c for c in rows if c.kind != "check"]
    checks = [c for c in rows if c.kind == "check"]
    return {"station": code,
            "current": calibration_json(cals[0]) if cals else None,
            "last_check": calibration_json(checks[0]) if checks else None,
            "config_version": None if device is None else device.desired_version,
            "reported_config_version": None if device is None else device.reported_version,
            "history": [calibration_json(c) for c in rows]}


def fit_reading(session: DB, s: Station, now: int, request: Request) -> Reading:
    """The station's latest reading with a level, when it may set a calibration: recent
    (CAL_READING_MAX_AGE_S), corrected for the speed of sound, not noisy and from a full
    window (its quality record); else a 409/422 saying how to get one that is."""
    r = session.scalars(select(Reading).where(Reading.station_id == s.id,
                                              Reading.level_mm.is_not(None))
                        .order_by(Reading.t.desc(), Reading.seq.desc()).limit(1)).first()
    if r is None:
        raise HTTPException(409, f"station {s.code} has no reading to calibrate with")
    if now - r.t > CAL_READING_MAX_AGE_S:
        raise i18n.problem(request, 422, "cal_reading_stale", station=s.code,
                           age=(now - r.t) // 60, limit=CAL_READING_MAX_AGE_S // 60,
                           every=s.interval_normal_s * s.upload_every // 60)
    names = codec.names(r.quality or 0, codec.QUALITY_NAMES)
    if "no_temp_correction" in names:
        raise i18n.problem(request, 422, "cal_reading_no_temp", station=s.code)
    if "noisy" in names:
        raise i18n.problem(request, 422, "cal_reading_noisy", station=s.code, spread=r.spread_mm)
    if "short_window" in names:  # ±30 mm waves the 20 s window would have averaged out
        raise i18n.problem(request, 422, "cal_reading_short", station=s.code)
    return r


@router.post("/stations/{code}/calibrations", status_code=201)
def calibrate(code: StationCode, body: NewCalibration, session: DB,
              user: Technician, request: Request) -> dict[str, object]:
    """Enter a staff gauge reading: calibrate the offset (one point), the offset and scale
    (this point and the last one), or check (the residual only)."""
    s = get_station(session, code)
    device = devices.installed_at(session, s)
    if device is None:
        raise HTTPException(409, f"station {code} has no device to calibrate")
    try:
        staff = calibration.staff_mm(body.staff_gauge_m)
    except calibration.CalibrationError as e:
        raise HTTPException(422, str(e)) from None
    rows = _history(session, s)
    _confirm(session, s, rows)
    now = clock.now()
    desired = device.desired_config or {}
    base = {k: desired.get(k, devices.FIRMWARE_DEFAULTS[k]) for k in CAL_KEYS}
    if body.on_board is not None:
        base = body.on_board.model_dump()
    if body.reading_mm is not None:
        source, raw, reading_t = "technician", body.reading_mm, now
    else:
        latest = fit_reading(session, s, now, request)
        was = _active_at(rows, latest.t)
        source, reading_t = "server", latest.t
        raw = round((latest.level_mm - was["cal_offset_mm"]) / was["cal_scale"])
    if body.kind == "check":
        settings = base
    else:
        version = max([base["cal_version"]] + [c.version for c in rows]) + 1
        make = calibration.one_point if body.kind == "offset" else calibration.two_point
        try:
            settings = make(staff, raw, base, version)
        except calibration.CalibrationError as e:
            raise HTTPException(422, str(e)) from None
    level = calibration.apply(raw, settings)
    row = Calibration(station_id=s.id, device_id=device.id, kind=body.kind, source=source,
                      by_user=user.username, at=now, staff_mm=staff, raw_mm=raw,
                      level_mm=level, reading_t=reading_t,
                      offset_mm=settings["cal_offset_mm"], scale=settings["cal_scale"],
                      version=settings["cal_version"],
                      residual_mm=calibration.residual(level, staff))
    if body.kind != "check":
        device.desired_config = {**desired, **settings}
        device.desired_version = device.desired_version + 1
        row.config_version = device.desired_version
        # written on the board by the tool now: it measures with it from now on
        row.active_from = now if source == "technician" else None
    session.add(row)
    session.commit()
    return {**calibration_json(row), "settings": {k: settings[k] for k in CAL_KEYS}}
