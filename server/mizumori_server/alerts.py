"""Alerts (docs/alerts.md): raised, changed and closed on ingest (river level, rate of rise,
battery, sensor fault, queue overflow, back online) and by a periodic check (offline).

Correct with any number of workers: the database allows one not-closed alert per (station,
type) and every change is a conditional UPDATE, so of two workers seeing the same condition
one changes the alert and the other does nothing. Each change is an AlertEvent, and its
webhook deliveries are stored in the same transaction (notify.py sends them).

An alert keeps what it is about as values (`params`: the level, the rate and its limit, the
voltage and its threshold, the fault flags...), and its message is written from them in the
language asked for (describe(), with i18n.ALERT_TEXT); the stored `message` is the English
one, kept for alerts from before `params` and for anything reading the table."""

import json
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Row, Table, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mizumori_server import i18n, profile, queries
from mizumori_server.codec import FAULT_MASK, FLAG_NAMES
from mizumori_server.models import (
    Alert,
    AlertEvent,
    Delivery,
    Reading,
    Station,
    StationLatest,
    Webhook,
)
from mizumori_server.settings import Settings

ALERTS = cast(Table, Alert.__table__)
EVENTS = cast(Table, AlertEvent.__table__)
READINGS = cast(Table, Reading.__table__)
TYPES = ("level", "rise", "offline", "battery", "fault", "queue_overflow")
# The four Japanese river levels, by number (1 = the lowest).
LEVELS = {1: ("standby", "水防団待機水位"), 2: ("caution", "はん濫注意水位"),
          3: ("evacuation", "避難判断水位"), 4: ("danger", "はん濫危険水位")}
# Events, not conditions: nothing clears them, so a person closes them.
MANUAL_CLOSE = ("queue_overflow",)
QUEUE_DROPPED = 1 << FLAG_NAMES.index("queue_dropped")
NOT_CLOSED = text("state != 'closed'")


class AlertError(Exception):
    """A refused change: its words are i18n.PROBLEMS[code] with params, in any language."""

    def __init__(self, status: int, code: str, **params: Any):
        self.status, self.code, self.params = status, code, params
        self.message = self.text("en")
        super().__init__(self.message)

    def text(self, lang: str) -> str:
        return i18n.text(i18n.PROBLEMS[self.code], lang, **self.params)


def river_level(level_mm: int | None, thresholds: list[int | None], prev: int,
                hysteresis_mm: int) -> int:
    """0..4: the river levels reached, as the firmware decides it (station/schedule.py):
    falling back below a level needs the water hysteresis_mm under it."""
    if level_mm is None:
        return prev
    now = 0
    for i, t in enumerate(thresholds):
        if t is not None and level_mm >= t:
            now = i + 1
    for k in range(prev, now, -1):
        t = thresholds[k - 1]
        if t is not None and level_mm > t - hysteresis_mm:
            return k
    return now


def describe(type_: str, level: int, params: Mapping[str, Any] | None, lang: str,
             now: int) -> str | None:
    """The alert's message in lang ("ja" | "en") from its values; None when they are not
    all there (an alert from before they were kept: its stored message stands)."""
    p = params or {}
    fmt = i18n.ALERT_TEXT
    try:
        if type_ == "level":
            name = i18n.word(f"level_{level}", lang)
            if p["level_mm"] is None:
                return i18n.text(fmt["level_no_value"], lang, level=name)
            return i18n.text(fmt["level"], lang, level=name, m=f"{p['level_mm'] / 1000:.2f}")
        if type_ == "rise":
            return i18n.text(fmt["rise"], lang, rate=f"{p['rate_mm_h'] / 1000:.2f}",
                             limit=f"{p['limit_mm_h'] / 1000:.2f}")
        if type_ == "battery":
            return i18n.text(fmt["battery"], lang, v=f"{p['battery_mv'] / 1000:.2f}",
                             low=f"{p['low_mv'] / 1000:.2f}")
        if type_ == "fault":
            sep = "、" if lang == "ja" else ", "
            return i18n.text(fmt["fault"], lang, n=int(p["readings"]), flags=sep.join(
                i18n.word(f"flag_{f}", lang) for f in p["flags"]))
        if type_ == "queue_overflow":
            return i18n.text(fmt["queue_overflow"], lang, n=int(p["dropped"]),
                             seq=int(p["first_seq"]))
        if type_ == "offline":
            return i18n.text(fmt["offline"], lang, ago=(now - int(p["last_seen"])) // 60,
                             every=int(p["expected_s"]) // 60)
    except (KeyError, TypeError, ValueError):
        return None
    return None


# --- evaluation ------------------------------------------------------------------------

def on_ingest(session: Session, settings: Settings, sid: int, station: Any,
              latest: Mapping[Any, Any], rows: list[dict[str, Any]], now: int) -> None:
    """After an upload to station `sid` was stored: `station` has its settings (a Station
    or a row with devices.STATION_SETTINGS), `latest` its latest state after the upload
    (a mapping: t, level_mm, flags, battery_mv)."""
    current = {a.type: a for a in session.execute(
        select(ALERTS).where(ALERTS.c.station_id == sid, NOT_CLOSED))}
    if "offline" in current:
        _close(session, current["offline"], now, "server", "reporting again")
    thresholds = [station.standby_mm, station.caution_mm, station.evacuation_mm,
                  station.danger_mm]
    level = current.get("level")
    k = river_level(latest["level_mm"], thresholds, level.level if level else 0,
                    station.hysteresis_mm)
    _level(session, sid, level, k, latest["level_mm"], now)

    rate = rise_rate(session, settings, sid, latest)
    if rate is not None:
        limit = station.rise_limit_mm_h
        rising = rate >= limit if "rise" not in current else rate * 2 >= limit
        _condition(session, sid, "rise", current.get("rise"), rising, now, rate,
                   {"rate_mm_h": rate, "limit_mm_h": limit})
    if latest["battery_mv"] is not None:
        mv = latest["battery_mv"]
        low = (mv < settings.battery_low_mv if "battery" not in current
               else mv < settings.battery_clear_mv)
        _condition(session, sid, "battery", current.get("battery"), low, now, mv,
                   {"battery_mv": mv, "low_mv": settings.battery_low_mv})
    faults = recent_faults(session, settings, sid, "fault" in current, latest["flags"])
    if faults is not None:
        _condition(session, sid, "fault", current.get("fault"), faults != 0, now, faults,
                   {"readings": settings.fault_repeat, "flags": queries.flag_names(
                       faults or latest["flags"] & FAULT_MASK)})
    dropped = [r for r in rows if r["flags"] & QUEUE_DROPPED]
    if dropped and "queue_overflow" not in current:
        _open(session, sid, "queue_overflow", now, 0, len(dropped),
              {"dropped": len(dropped), "first_seq": min(r["seq"] for r in dropped)})


def rise_rate(session: Session, settings: Settings, station_id: int,
              latest: Mapping[Any, Any]) -> int | None:
    """mm/h from the oldest reading within rise_window_s of the newest, or None when the
    readings do not yet span rise_min_span_s."""
    if latest["level_mm"] is None or latest["t"] is None:
        return None
    row = session.execute(
        select(READINGS.c.t, READINGS.c.level_mm)
        .where(READINGS.c.station_id == station_id,
               READINGS.c.t >= latest["t"] - settings.rise_window_s,
               READINGS.c.level_mm.is_not(None))
        .order_by(READINGS.c.t).limit(1)).first()
    if row is None:
        return None
    t, level_mm = row
    if latest["t"] - t < settings.rise_min_span_s:
        return None
    return int((latest["level_mm"] - level_mm) * 3600 // (latest["t"] - t))


def recent_faults(session: Session, settings: Settings, station_id: int, is_open: bool,
                  newest_flags: int) -> int | None:
    """The union of the fault flags when the newest fault_repeat readings are all faulty,
    0 when they are all clean, None when mixed (no change). No query while all is well."""
    if not is_open and not newest_flags & FAULT_MASK:
        return None
    flags = session.scalars(
        select(READINGS.c.flags).where(READINGS.c.station_id == station_id)
        .order_by(READINGS.c.t.desc(), READINGS.c.seq.desc())
        .limit(settings.fault_repeat)).all()
    if len(flags) < settings.fault_repeat:
        return None
    if all(f & FAULT_MASK for f in flags):
        union = 0
        for f in flags:
            union |= f & FAULT_MASK
        return union
    if not any(f & FAULT_MASK for f in flags):
        return 0
    return None


def check_offline(session: Session, settings: Settings, now: int) -> int:
    """The periodic check: open an offline alert for every station not heard within
    offline_after_intervals of its expected interval (whichever mode its device is in:
    normal or flood; under the MLIT profile a heartbeat a day in watch mode, obs_interval_s
    in observation mode, flood mode first); close it for a station heard again. Returns
    alerts opened."""
    rows = session.execute(
        select(Station.id, Station.interval_normal_s, Station.upload_every,
               Station.interval_flood_s, Station.standby_mm, Station.caution_mm,
               Station.evacuation_mm, Station.danger_mm, Station.hysteresis_mm,
               StationLatest.last_seen, StationLatest.flags, StationLatest.level_mm,
               queries.DEVICE_CONFIG, Alert.id.label("alert_id"))
        .join(StationLatest, StationLatest.station_id == Station.id)
        .outerjoin(Alert, (Alert.station_id == Station.id) & (Alert.type == "offline")
                   & (Alert.state != "closed"))).all()
    opened = 0
    for r in rows:
        mode, cfg = queries.observation_mode(r, session)
        expected = profile.expected_interval(r, bool((r.flags or 0) & queries.FLOOD_MODE),
                                             cfg, mode)
        ago = now - r.last_seen
        offline = ago > settings.offline_after_intervals * expected
        if offline and r.alert_id is None:
            opened += _open(session, r.id, "offline", now, 0, r.last_seen,
                            {"last_seen": r.last_seen, "expected_s": expected}) is not None
        elif not offline and r.alert_id is not None:
            alert = session.execute(select(ALERTS).where(ALERTS.c.id == r.alert_id)).one()
            _close(session, alert, now, "server", "reporting again")
    return opened


# --- changes -----------------------------------------------------------------------------

def _condition(session: Session, station_id: int, type_: str, alert: Row[Any] | None,
               active: bool, now: int, value: float, params: dict[str, Any]) -> None:
    if active and alert is None:
        _open(session, station_id, type_, now, 0, value, params)
    elif not active and alert is not None:
        _close(session, alert, now, "server", "condition cleared")


def _level(session: Session, station_id: int, alert: Row[Any] | None, k: int,
           level_mm: int | None, now: int) -> None:
    where = f"{level_mm / 1000:.2f} m" if level_mm is not None else "no level"
    params = {"level_mm": level_mm}
    if alert is None:
        if k:
            _open(session, station_id, "level", now, k, level_mm, params)
        return
    if k == alert.level:
        return
    if k == 0:
        _close(session, alert, now, "server", f"below every river level: {where}")
        return
    changes: dict[str, Any] = {"level": k, "max_level": max(k, alert.max_level),
                               "value": level_mm, "updated_at": now, "params": params,
                               "message": english("level", k, params, now),
                               "levels": [*level_history(alert), {"level": k, "at": now}]}
    if k > alert.level:  # a higher level needs a new acknowledgement
        changes.update(state="open", acknowledged_at=None, acknowledged_by=None)
    done = session.execute(update(ALERTS).where(ALERTS.c.id == alert.id,
                                                ALERTS.c.level == alert.level, NOT_CLOSED)
                           .values(**changes))
    if done.rowcount:  # type: ignore[attr-defined]
        event(session, alert.id, "raised" if k > alert.level else "lowered", k, now,
              "server", changes["message"])


def english(type_: str, level: int, params: dict[str, Any], now: int) -> str:
    """The stored message: English, for what reads the table rather than the API."""
    return (describe(type_, level, params, "en", now) or type_)[:300]


def _open(session: Session, station_id: int, type_: str, now: int, level: int,
          value: float | None, params: dict[str, Any]) -> int | None:
    """A new alert, unless one of this type is already not closed (then None)."""
    message = english(type_, level, params, now)
    dialect = session.connection().dialect.name
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    alert_id = session.execute(
        ins(ALERTS).values(station_id=station_id, type=type_, level=level, max_level=level,
                           state="open", message=message, params=params, value=value,
                           opened_at=now,
                           updated_at=now, ack_note="",
                           levels=[{"level": level, "at": now}] if type_ == "level" else [])
        .on_conflict_do_nothing(index_elements=["station_id", "type"],
                                index_where=NOT_CLOSED)
        .returning(ALERTS.c.id)).scalar()
    if alert_id is not None:
        event(session, alert_id, "opened", level, now, "server", message)
    return alert_id


def _close(session: Session, alert: Row[Any], now: int, by: str, note: str) -> bool:
    done = session.execute(update(ALERTS).where(ALERTS.c.id == alert.id, NOT_CLOSED)
                           .values(state="closed", closed_at=now, closed_by=by,
                                   updated_at=now))
    if not done.rowcount:  # type: ignore[attr-defined]
        return False
    event(session, alert.id, "closed", alert.level, now, by, note)
    return True


def acknowledge(session: Session, alert_id: int, by: str, note: str, now: int) -> None:
    done = session.execute(update(ALERTS).where(ALERTS.c.id == alert_id,
                                                ALERTS.c.state == "open")
                           .values(state="acknowledged", acknowledged_at=now,
                                   acknowledged_by=by, ack_note=note, updated_at=now))
    if not done.rowcount:  # type: ignore[attr-defined]
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise AlertError(404, "no_alert", id=alert_id)
        if alert.state == "closed":
            raise AlertError(409, "alert_closed")
        raise AlertError(409, "alert_acknowledged", by=alert.acknowledged_by)
    a = session.execute(select(ALERTS).where(ALERTS.c.id == alert_id)).one()
    event(session, alert_id, "acknowledged", a.level, now, by, note)


def close(session: Session, alert_id: int, by: str, note: str, now: int) -> None:
    alert = session.execute(select(ALERTS).where(ALERTS.c.id == alert_id)).first()
    if alert is None:
        raise AlertError(404, "no_alert", id=alert_id)
    if alert.type not in MANUAL_CLOSE:
        raise AlertError(409, "alert_closes_itself", type=alert.type)
    if not _close(session, alert, now, by, note):
        raise AlertError(409, "alert_closed")


# --- events and what they send -----------------------------------------------------------

def event(session: Session, alert_id: int, kind: str, level: int, now: int, by: str,
          note: str) -> None:
    """Record an alert's change and queue its notification for every matching webhook."""
    event_id = session.execute(insert(EVENTS).values(
        alert_id=alert_id, kind=kind, level=level, at=now, by=by, note=note[:500])
        .returning(EVENTS.c.id)).scalar_one()
    hooks = session.scalars(select(Webhook).where(Webhook.enabled)).all()
    if not hooks:
        return
    alert, station = session.execute(
        select(Alert, Station).join(Station, Station.id == Alert.station_id)
        .where(Alert.id == alert_id)).one()
    body = json.dumps({
        "event": f"alert.{kind}", "event_id": event_id, "at": queries.iso(now), "by": by,
        "note": note, "alert": {**alert_json(alert, station.code, now, "en"),
                                "messages": {lang: alert_message(alert, lang, now)
                                             for lang in i18n.LANGUAGES}},
        "station": {"code": station.code, "name": station.name,
                    "site_type": station.site_type, "latitude": station.latitude,
                    "longitude": station.longitude,
                    "river_levels_m": river_levels_m(station)},
    }, ensure_ascii=False, separators=(",", ":")).encode()
    for hook in hooks:
        if (hook.types and alert.type not in hook.types) or (
                hook.stations and station.code not in hook.stations):
            continue
        session.add(Delivery(webhook_id=hook.id, event_id=event_id, body=body,
                             state="pending", attempts=0, next_at=now, last_error="",
                             created_at=now))
        session.info["deliveries"] = True  # after commit: wake the sender (background.py)
    session.flush()


def river_levels_m(station: Station) -> dict[str, float | None]:
    return {LEVELS[i + 1][0]: None if v is None else v / 1000
            for i, v in enumerate((station.standby_mm, station.caution_mm,
                                   station.evacuation_mm, station.danger_mm))}


def level_history(a: Any) -> list[dict[str, int]]:
    """A river-level alert's levels, oldest first ({"level", "at"}: each level it was raised
    or lowered to and when); [] for other types. An alert stored without its history (none
    is kept from before it was) starts from its opening at its current level."""
    if a.type != "level":
        return []
    return list(a.levels or []) or [{"level": a.level, "at": a.opened_at}]


def alert_message(a: Alert, lang: str, now: int) -> str:
    """The alert's message in lang, from its values; an old alert's stored one otherwise."""
    params = a.params or {}
    if a.type == "level" and not params:  # from before params: its value is the level
        params = {"level_mm": a.value}
    said = describe(a.type, a.level, params, lang, a.closed_at or now)
    if said is not None:
        return said
    message = a.message
    if a.type == "offline" and a.value is not None:  # value: when it was last heard
        message = f"last seen {((a.closed_at or now) - int(a.value)) // 60} min ago, {message}"
    return message


def alert_json(a: Alert, station_code: str, now: int, lang: str = "en") -> dict[str, Any]:
    """An alert for the API: `message` in lang, `params` the values it is written from."""
    history = level_history(a)
    return {
        "id": a.id, "station": station_code, "type": a.type, "state": a.state,
        "level": a.level or None, "level_name": LEVELS[a.level][0] if a.level else None,
        "max_level": a.max_level or None, "message": alert_message(a, lang, now),
        "params": dict(a.params or {}), "value": a.value,
        "opened_at": queries.iso(a.opened_at),
        # when the alert reached the level it shows (opened_at for other types)
        "level_since": queries.iso(history[-1]["at"] if history else a.opened_at),
        "levels": [{"level": h["level"], "level_name": LEVELS[h["level"]][0],
                    "at": queries.iso(h["at"])} for h in history if h["level"] in LEVELS],
        "updated_at": queries.iso(a.updated_at),
        "acknowledged_at": queries.iso(a.acknowledged_at) if a.acknowledged_at else None,
        "acknowledged_by": a.acknowledged_by, "ack_note": a.ack_note,
        "closed_at": queries.iso(a.closed_at) if a.closed_at else None,
        "closed_by": a.closed_by,
    }
