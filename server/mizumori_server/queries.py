"""Read-side queries: a station's series (downsampled in the database), the latest state of
all stations, and fleet status."""

import datetime as dt
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from mizumori_server import profile
from mizumori_server.codec import FLAG_NAMES, QUALITY_NAMES, names
from mizumori_server.models import Alert, Device, Digest, Reading, Station, StationLatest

AnySelect = Select[*tuple[Any, ...]]  # any select()
FLOOD_MODE = 1 << FLAG_NAMES.index("flood_mode")
SERIES_COLUMNS = ("t", "level_mm", "battery_mv", "flags", "temperature_c", "humidity_pct",
                  "pressure_hpa", "rain_mm", "quality", "spread_mm", "calibration_version")
DIGEST_COLUMNS = ("t", "seq", "first_seq", "readings", "level_min_mm", "level_max_mm",
                  "battery_mv", "flags")


def flag_names(flags: int) -> list[str]:
    return names(flags)


def quality_names(quality: int | None) -> list[str] | None:
    """A reading's quality flags by name; None when it came without a quality record."""
    return None if quality is None else names(quality, QUALITY_NAMES)


def series(session: Session, station_id: int, start: int, end: int,
           max_points: int) -> dict[str, Any]:
    """Readings in [start, end). Over max_points, fixed buckets with min/max/mean level
    (so peaks survive), computed by the database. With them the daily digests received in
    the range (a station in watch mode over LoRaWAN: docs/protocol.md), never downsampled."""
    out = _series(session, station_id, start, end, max_points)
    out["digests"] = [dict(zip(DIGEST_COLUMNS, r, strict=True)) for r in session.execute(
        select(*(getattr(Digest, c) for c in DIGEST_COLUMNS))
        .where(Digest.station_id == station_id, Digest.t >= start, Digest.t < end)
        .order_by(Digest.t, Digest.seq))]
    return out


def _series(session: Session, station_id: int, start: int, end: int,
            max_points: int) -> dict[str, Any]:
    in_range = (Reading.station_id == station_id, Reading.t >= start, Reading.t < end)
    count = session.scalar(select(func.count()).where(*in_range)) or 0
    if count <= max_points:
        rows = session.execute(
            select(*(getattr(Reading, c) for c in SERIES_COLUMNS)).where(*in_range)
            .order_by(Reading.t, Reading.seq)).all()
        return {"downsampled": False, "count": count,
                "points": [dict(zip(SERIES_COLUMNS, r, strict=True)) for r in rows]}
    bucket_s = max(1, -(-(end - start) // max_points))  # ceiling division
    bucket = (Reading.t - start) // bucket_s  # integer division on both databases
    rows = session.execute(
        select(bucket.label("b"), func.count(), func.min(Reading.level_mm),
               func.max(Reading.level_mm), func.avg(Reading.level_mm),
               func.sum(Reading.rain_mm), func.avg(Reading.temperature_c))
        .where(*in_range).group_by("b").order_by("b")).all()
    return {
        "downsampled": True, "count": count, "bucket_s": bucket_s,
        "points": [{"t": start + b * bucket_s, "n": n, "level_min_mm": lo, "level_max_mm": hi,
                    "level_mean_mm": None if mean is None else round(float(mean), 1),
                    "rain_mm": rain, "temperature_c": temp}
                   for b, n, lo, hi, mean, rain, temp in rows],
    }


# The installed device's settings (installed_at: the lowest id), for its observation profile.
DEVICE_CONFIG = (select(Device.desired_config).where(Device.station_id == Station.id)
                 .order_by(Device.id).limit(1).correlate(Station).scalar_subquery()
                 .label("device_config"))
LATEST_COLUMNS = (Station.id, Station.code, Station.name, Station.site_type, Station.latitude,
                  Station.longitude, Station.standby_mm, Station.caution_mm,
                  Station.evacuation_mm, Station.danger_mm, Station.hysteresis_mm,
                  Station.interval_normal_s,
                  Station.upload_every, Station.interval_flood_s, StationLatest.t,
                  StationLatest.level_mm, StationLatest.flags, StationLatest.battery_mv,
                  StationLatest.temperature_c, StationLatest.last_seen,
                  Alert.level.label("alert_level"), DEVICE_CONFIG)


def latest_query(*where: Any) -> AnySelect:
    """Stations with their latest state and river level (the open level alert's, so that
    the map, the GIS and the alerts agree, hysteresis included): one row per station."""
    return (select(*LATEST_COLUMNS)
            .outerjoin(StationLatest, StationLatest.station_id == Station.id)
            .outerjoin(Alert, (Alert.station_id == Station.id) & (Alert.type == "level")
                       & (Alert.state != "closed"))
            .where(*where).order_by(Station.code))


def latest(session: Session, now: int, late_after: float, offline_after: float,
           *where: Any) -> list[dict[str, Any]]:
    """Every station (or those matching `where`) with its latest state: no history
    scanned, plain columns (this serves the map and GIS for thousands of stations)."""
    return [state(r, now, late_after, offline_after, session)
            for r in session.execute(latest_query(*where))]


def observation_mode(r: Any, session: Session | None) -> tuple[str, dict[str, Any]]:
    """(mode, its settings) of a latest_query() row (profile.py)."""
    cfg = profile.settings(r, r.device_config)
    return profile.mode(session, r.id, cfg, r.level_mm), cfg


def state(r: Any, now: int, late_after: float, offline_after: float,
          session: Session | None = None) -> dict[str, Any]:
    """A latest_query() row as the API serves it. With a session, a station of the MLIT
    profile between its stop and start levels gets its mode from its readings' history."""
    mode, cfg = observation_mode(r, session)
    expected = None if r.last_seen is None else profile.expected_interval(
        r, bool((r.flags or 0) & FLOOD_MODE), cfg, mode)
    ago = None if r.last_seen is None else now - r.last_seen
    return {
        "code": r.code, "name": r.name, "site_type": r.site_type, "latitude": r.latitude,
        "longitude": r.longitude, "t": r._mapping["t"], "level_mm": r.level_mm,
        "flags": flag_names(r.flags) if r.flags else [], "battery_mv": r.battery_mv,
        "temperature_c": r.temperature_c, "last_seen": r.last_seen,
        "alert_level": r.alert_level or 0,
        "river_levels_mm": [r.standby_mm, r.caution_mm, r.evacuation_mm, r.danger_mm],
        "status": status_of(ago, expected, late_after, offline_after),
        "last_seen_ago_s": ago, "expected_every_s": expected, "observation_mode": mode,
    }


def fleet(session: Session, now: int, late_after: float,
          offline_after: float) -> list[dict[str, Any]]:
    """Each device with its station, how long since it was heard against how often it
    should be, battery, signal, firmware and queue depth."""
    rows = session.execute(
        select(Device, Station, StationLatest)
        .outerjoin(Station, Station.id == Device.station_id)
        .outerjoin(StationLatest, (StationLatest.station_id == Device.station_id)
                   & (StationLatest.device_id == Device.id))
        .order_by(Device.hardware_id)).all()
    out = []
    for d, s, lt in rows:
        expected = None
        if s is not None:
            flags = lt.flags if lt is not None else 0
            cfg = profile.settings(s, d.desired_config)
            mode = profile.mode(session, s.id, cfg, lt.level_mm if lt is not None else None)
            expected = profile.expected_interval(s, bool((flags or 0) & FLOOD_MODE), cfg, mode)
        ago = None if lt is None else now - lt.last_seen
        status = status_of(ago, expected, late_after, offline_after)
        out.append({
            "device_id": d.id, "hardware_id": d.hardware_id, "transport": d.transport,
            "station": s.code if s else None, "status": status,
            "last_seen": lt.last_seen if lt else None, "last_seen_ago_s": ago,
            "expected_every_s": expected,
            "summary": describe(ago, expected),
            "battery_mv": lt.battery_mv if lt else None,
            "rssi_dbm": lt.rssi_dbm if lt else None,
            "firmware_version": d.firmware_version,
            "queue_depth": lt.queue_depth if lt else None,
            "config_version": d.desired_version, "reported_config_version": d.reported_version,
        })
    return out


def expected_interval(station: Any, flags: int | None = None) -> int:
    """Seconds between a station's uploads: every reading in flood mode (the flag of its
    latest reading), every upload_every readings otherwise. `station` has the schedule
    columns (and `flags`, when not given)."""
    flags = station.flags if flags is None else flags
    if (flags or 0) & FLOOD_MODE:
        return int(station.interval_flood_s)
    return int(station.interval_normal_s * station.upload_every)


def status_of(ago: int | None, expected: int | None, late_after: float,
              offline_after: float) -> str:
    if ago is None or not expected:
        return "unseen"
    return ("online" if ago <= late_after * expected else
            "late" if ago <= offline_after * expected else "offline")


def describe(ago: int | None, expected: int | None) -> str:
    if ago is None:
        return "never seen"
    text = f"last seen {ago // 60} min ago"
    return text + (f", expected every {expected // 60} min" if expected else "")


def iso(t: int) -> str:
    """UTC ISO 8601, as the open interfaces write times."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
