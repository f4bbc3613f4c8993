"""A station's observation mode, as its device decides it (firmware/station/schedule.py):
"standard" (profile "standard"), or under the MLIT crisis-gauge profile ("mlit") "watch"
below the observation-start level (readings stored, sent in a daily heartbeat) and
"observation" from it up (a reading every obs_interval_s) until the level falls below the
observation-stop level. Nothing on the wire says the mode: the server derives it from the
profile settings it pushes (station columns and the device's overrides) and the station's
latest level, with the readings' history between the two levels (hysteresis)."""

import importlib
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mizumori_server.models import Reading

DAY_S = 86400  # watch mode: one heartbeat upload a day
PROFILE_KEYS = ("profile", "obs_start_mm", "obs_stop_mm", "obs_interval_s",
                "thresholds_mm", "hysteresis_mm")
MODES = ("standard", "watch", "observation")

# The firmware's own settings and decision, from the repository like devices.py's.
_FIRMWARE = str(Path(__file__).resolve().parents[2] / "firmware")
if _FIRMWARE not in sys.path:
    sys.path.append(_FIRMWARE)  # appended: never shadows a module of the server's
_firmware = importlib.import_module("station.config")
_schedule = importlib.import_module("station.schedule")


def settings(station: Any, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The settings the mode follows from: the firmware's defaults, the station's river
    levels and hysteresis, then the device's overrides (as devices.merged_config)."""
    cfg = {k: _firmware.DEFAULTS[k] for k in PROFILE_KEYS}
    cfg["thresholds_mm"] = [station.standby_mm, station.caution_mm, station.evacuation_mm,
                            station.danger_mm]
    cfg["hysteresis_mm"] = station.hysteresis_mm
    for k in PROFILE_KEYS:
        if isinstance(overrides, dict) and k in overrides \
                and _firmware._check(k, overrides[k]) is None:
            cfg[k] = overrides[k]
    return cfg


def mode(session: Session | None, station_id: int, cfg: dict[str, Any],
         level_mm: int | None) -> str:
    """standard, watch or observation. Between the stop and start levels (or without a
    level) the mode is what the newest reading outside that band made it."""
    if cfg["profile"] != "mlit":
        return "standard"
    start, stop = _schedule.obs_levels(cfg)
    if start is None:
        return "watch"
    if level_mm is not None and (level_mm >= start or level_mm < stop):
        return "observation" if level_mm >= start else "watch"
    if session is None:
        return "watch"
    decisive = session.scalar(
        select(Reading.level_mm)
        .where(Reading.station_id == station_id, Reading.level_mm.is_not(None),
               or_(Reading.level_mm >= start, Reading.level_mm < stop))
        .order_by(Reading.t.desc(), Reading.seq.desc()).limit(1))
    return "observation" if decisive is not None and decisive >= start else "watch"


def expected_interval(station: Any, flood: bool, cfg: dict[str, Any], mode_: str) -> int:
    """Seconds between a station's uploads in its mode (flood mode first)."""
    if flood:
        return int(station.interval_flood_s)
    if mode_ == "observation":
        return int(cfg["obs_interval_s"])
    if mode_ == "watch":
        return DAY_S
    return int(station.interval_normal_s * station.upload_every)


def expected_now(session: Session | None, r: Any) -> int:
    """Seconds between a station's uploads in the mode it is in now, for a
    queries.latest_query() row (its schedule and river levels, its latest flags and level,
    its device's settings): what the offline check, the fleet gauges and the clock-jump hold
    expect of it."""
    from mizumori_server import queries  # it imports this module

    mode_, cfg = queries.observation_mode(r, session)
    return expected_interval(r, bool((r.flags or 0) & queries.FLOOD_MODE), cfg, mode_)
