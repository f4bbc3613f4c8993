"""Stations and observations as GeoJSON features (RFC 7946: WGS 84 longitude, latitude),
shared by OGC API – Features and the plain GeoJSON download, and readings as CSV
(docs/gis.md)."""

import csv
import io
from collections.abc import Iterator
from typing import Any

from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mizumori_server.alerts import LEVELS
from mizumori_server.models import Reading, Station
from mizumori_server.queries import AnySelect, flag_names, iso, quality_names


def _m(mm: float | None) -> float | None:
    return None if mm is None else mm / 1000


def station_feature(st: dict[str, Any]) -> dict[str, Any]:
    """A station from queries.latest()."""
    level = st["alert_level"]
    props = {
        "code": st["code"], "name": st["name"], "site_type": st["site_type"],
        "level_m": _m(st["level_mm"]),
        "alert_level": level, "alert_level_name": LEVELS[level][0] if level else None,
        "status": st["status"],
        "observed_at": iso(st["t"]) if st["t"] is not None else None,
        "last_seen": iso(st["last_seen"]) if st["last_seen"] is not None else None,
        "battery_v": _m(st["battery_mv"]), "temperature_c": st["temperature_c"],
    }
    for (name, _), mm in zip(LEVELS.values(), st["river_levels_mm"], strict=True):
        props[f"{name}_m"] = _m(mm)
    return {"type": "Feature", "id": st["code"],
            "geometry": {"type": "Point", "coordinates": [st["longitude"], st["latitude"]]},
            "properties": props}


def observations_query() -> AnySelect:
    return (select(Reading.id, Reading.seq, Reading.t, Reading.level_mm, Reading.battery_mv,
                   Reading.temperature_c, Reading.humidity_pct, Reading.pressure_hpa,
                   Reading.rain_mm, Reading.flags, Reading.quality, Reading.spread_mm,
                   Reading.calibration_version, Station.code, Station.longitude,
                   Station.latitude)
            .join(Station, Station.id == Reading.station_id))


def observation_feature(r: Any) -> dict[str, Any]:
    """A reading (a row of observations_query()) at its station's position."""
    t = r._mapping["t"]
    return {"type": "Feature", "id": r.id,
            "geometry": {"type": "Point", "coordinates": [r.longitude, r.latitude]},
            "properties": {
                "station": r.code, "time": iso(t), "level_m": _m(r.level_mm),
                "battery_v": _m(r.battery_mv), "temperature_c": r.temperature_c,
                "humidity_pct": r.humidity_pct, "pressure_hpa": r.pressure_hpa,
                "rain_mm": r.rain_mm, "flags": "|".join(flag_names(r.flags)),
                "quality": _joined(quality_names(r.quality)), "spread_mm": r.spread_mm,
                "calibration_version": r.calibration_version,
            }}


def _joined(names: list[str] | None) -> str | None:
    """Flags by name, |-separated; None (no quality record came) stays None."""
    return None if names is None else "|".join(names)


CSV_HEADER = ["station", "time_utc", "level_m", "flags", "battery_v", "temperature_c",
              "humidity_pct", "pressure_hpa", "rain_mm", "seq", "quality", "spread_mm",
              "calibration_version"]


class CSVResponse(StreamingResponse):
    """A streamed CSV download (declared as text/csv in the OpenAPI description)."""

    media_type = "text/csv"


def csv_chunks(sessions: sessionmaker[Session], query: AnySelect) -> Iterator[str]:
    """Rows of observations_query() as CSV, streamed in ~64 kB pieces from a session of
    its own (the request's is gone by the time a streamed body is sent)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_HEADER)
    with sessions() as session:
        for r in session.execute(query.execution_options(yield_per=2000)):
            w.writerow([r.code, iso(r._mapping["t"]), _blank(_m(r.level_mm)),
                        "|".join(flag_names(r.flags)), _blank(_m(r.battery_mv)),
                        _blank(r.temperature_c), _blank(r.humidity_pct),
                        _blank(r.pressure_hpa), _blank(r.rain_mm), r.seq,
                        _blank(_joined(quality_names(r.quality))), _blank(r.spread_mm),
                        _blank(r.calibration_version)])
            if buf.tell() > 65536:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
    yield buf.getvalue()


def _blank(v: object) -> object:
    return "" if v is None else v
