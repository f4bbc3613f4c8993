"""Telemetry ingest: authenticate, decode, deduplicate, store, update the latest state —
in one transaction — then reply. Idempotent on (device, sequence) in the database, so any
number of workers store exactly what one would.

This is the hot path: four prebuilt Core statements per upload (read the device, claim the
counter, insert the readings, upsert the latest state), no ORM objects, then the alert
evaluation (alerts.py: one or two indexed queries while all is well). A daily digest
(codec 0x15) costs two more: its insert and the latest battery."""

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Connection, Insert, Table, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mizumori_server import alerts, codec, rollouts, security
from mizumori_server.devices import STATION_SETTINGS, merged_config
from mizumori_server.models import Device, Digest, Reading, Station, StationLatest
from mizumori_server.settings import Settings

DEVICES = cast(Table, Device.__table__)
READINGS = cast(Table, Reading.__table__)
DIGESTS = cast(Table, Digest.__table__)
LATEST = cast(Table, StationLatest.__table__)
STATIONS = cast(Table, Station.__table__)


class IngestError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


@dataclass
class Upload:
    device_id: int
    counter: int
    signature: str
    body: bytes


def read_device(where: Any) -> Any:
    """The device and, in the same round trip, its station's settings for a config reply."""
    return (select(DEVICES.c.id, DEVICES.c.secret_enc, DEVICES.c.station_id,
                   DEVICES.c.last_seq, DEVICES.c.desired_version, DEVICES.c.desired_config,
                   DEVICES.c.downlink_version, DEVICES.c.ns_device_id,
                   *(STATIONS.c[c] for c in STATION_SETTINGS))
            .outerjoin(STATIONS, STATIONS.c.id == DEVICES.c.station_id).where(where))


READ_DEVICE = read_device(DEVICES.c.id == bindparam("id"))
# What every upload moves forward: the newest sequence number and the config version the
# device reports. Uploads signed by the device also claim their counter (CLAIM): of
# concurrent or replayed requests only one passes, and the row lock serialises uploads of
# one device across workers until this transaction ends. LoRaWAN uplinks are authenticated
# by their network server instead, and deduplicated on (device, seq) alone.
ADVANCE = (update(DEVICES)
           .where(DEVICES.c.id == bindparam("dev"))
           .values(last_seq=case((DEVICES.c.last_seq < bindparam("seq"), bindparam("seq")),
                                 else_=DEVICES.c.last_seq),
                   reported_version=func.coalesce(bindparam("rv"),
                                                  DEVICES.c.reported_version))
           .returning(DEVICES.c.reported_version))
CLAIM = (ADVANCE.where(DEVICES.c.last_counter < bindparam("c"))
         .values(last_counter=bindparam("c")))
READING_COLUMNS = ("station_id", "device_id", "seq", "t", "received", "level_mm", "battery_mv",
                   "flags", "temperature_c", "humidity_pct", "pressure_hpa", "rain_mm")
QUALITY_COLUMNS = ("quality", "spread_mm", "calibration_version")  # from a quality record
LINK_COLUMNS = ("link_rssi", "link_snr", "link_gateways", "link_dr")
STATUS_COLUMNS = ("rssi_dbm", "queue_depth", "dropped", "reset_cause")
READING_LATEST = ("t", "level_mm", "flags", "battery_mv", "temperature_c")


@lru_cache
def statements(dialect: str) -> tuple[Insert, Insert, Insert]:
    """(insert readings, upsert latest state, insert digests) for this database."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    readings = insert(READINGS).on_conflict_do_nothing(index_elements=["device_id", "seq"])
    digests = insert(DIGESTS).on_conflict_do_nothing(index_elements=["device_id", "seq"])
    up = insert(LATEST)
    new = up.excluded
    newer = (new.t.is_not(None)) & ((LATEST.c.t.is_(None)) | (LATEST.c.t <= new.t))
    sets: dict[str, Any] = {"device_id": new.device_id, "last_seen": new.last_seen}
    for c in STATUS_COLUMNS:  # a status record updates them; an upload without keeps them
        sets[c] = func.coalesce(getattr(new, c), LATEST.c[c])
    for c in READING_LATEST:  # only a newer reading replaces the latest one
        sets[c] = case((newer, getattr(new, c)), else_=LATEST.c[c])
    return readings, (up.on_conflict_do_update(index_elements=["station_id"], set_=sets)
                      .returning(*(LATEST.c[c] for c in READING_LATEST))), digests


def ingest(session: Session, box: security.SecretBox, settings: Settings, up: Upload,
           now: int) -> dict[str, Any]:
    """Store one signed upload; raises IngestError. The caller commits (or rolls back)."""
    conn: Connection = session.connection()
    device = check_signature(box, up, conn.execute(READ_DEVICE, {"id": up.device_id}).first())
    return store(session, settings, up.device_id, device, decode(up.body), now, up.counter)


def decode(body: bytes) -> list[codec.Record]:
    try:
        return codec.decode(body)
    except codec.CodecError as e:
        raise IngestError(422, "bad_record", str(e), record=e.index) from None


def store(session: Session, settings: Settings, device_id: int, device: Any,
          records: list[codec.Record], now: int, counter: int | None = None,
          link: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store a device's records (`device`: a READ_DEVICE row; `counter`: the signed
    upload's, claimed here; `link`: LINK_COLUMNS of a LoRaWAN uplink) and make the reply."""
    conn: Connection = session.connection()
    if device.station_id is None:
        raise IngestError(409, "not_installed", "device is not installed at a station")

    rows: list[dict[str, Any]] = []
    digests: list[dict[str, Any]] = []
    last = device.last_seq
    status: dict[str, Any] | None = None
    for rec in records:
        if rec.type == "status":
            status = rec.status
            continue
        if rec.type == "quality":  # the decoder saw to it that a reading comes right before
            rows[-1].update(quality=rec.quality, spread_mm=rec.spread_mm,
                            calibration_version=rec.calibration_version)
            continue
        seq = codec.extend_seq(rec.seq, last)
        last = max(last, seq)
        if rec.type == "digest":  # no age: dated at its arrival
            digests.append({
                "station_id": device.station_id, "device_id": device_id, "seq": seq,
                "first_seq": seq - rec.readings + 1, "t": now, "readings": rec.readings,
                "level_min_mm": rec.level_min_mm, "level_max_mm": rec.level_max_mm,
                "battery_mv": rec.battery_mv, "flags": rec.flags})
            continue
        rows.append({
            "station_id": device.station_id, "device_id": device_id, "seq": seq,
            "t": now - rec.age_s, "received": now, "level_mm": rec.level_mm,
            "battery_mv": rec.battery_mv, "flags": rec.flags,
            "temperature_c": rec.temperature_c, "humidity_pct": rec.humidity_pct,
            "pressure_hpa": rec.pressure_hpa, "rain_mm": rec.rain_mm,
            **dict.fromkeys(QUALITY_COLUMNS),
            **{c: (link or {}).get(c) for c in LINK_COLUMNS},
        })
    reported = conn.execute(ADVANCE if counter is None else CLAIM, {
        "dev": device_id, "c": counter, "seq": last,
        "rv": None if status is None else int(status["config_version"] or 0)}).first()
    if reported is None:
        raise stale_counter(conn, device_id)
    insert_readings, upsert_latest, insert_digests = statements(conn.dialect.name)
    if rows:
        conn.execute(insert_readings, rows)  # executemany: one cached statement
    if digests:
        conn.execute(insert_digests, digests)
    newest = max(rows, key=lambda r: (r["t"], r["seq"])) if rows else {}
    latest: Mapping[Any, Any] = conn.execute(upsert_latest, {
        "station_id": device.station_id, "device_id": device_id, "last_seen": now,
        **{c: newest.get(c) for c in READING_LATEST}, "flags": newest.get("flags", 0),
        **{c: None if status is None else status[c] for c in STATUS_COLUMNS},
    }).one()._mapping
    battery = next((d["battery_mv"] for d in reversed(digests) if d["battery_mv"]), None)
    if battery is not None:  # a digest is dated now: its battery is the newest one known
        conn.execute(update(LATEST).where(LATEST.c.station_id == device.station_id)
                     .values(battery_mv=battery))
        latest = {**latest, "battery_mv": battery}
    alerts.on_ingest(session, settings, device.station_id, device, latest, rows, now)
    config = None
    if device.desired_version != reported.reported_version:
        config = merged_config(device, device.desired_config, device.desired_version)
    seqs = [r["seq"] for r in rows + digests]
    reply = {
        "acked": seqs,
        "ack_upto": max(seqs, default=None),
        "server_time": now,
        "config_version": device.desired_version,
        "config": config,
        "ota": rollouts.offer_for(session, device_id, now),
    }
    gap = resend_from(device.last_seq, rows + [{"seq": d["first_seq"]} for d in digests])
    if gap is not None and counter is not None:  # LoRaWAN asks with a delivery report
        reply["resend_from"] = gap
    return reply


def resend_from(before: int, rows: list[dict[str, Any]]) -> int | None:
    """The first reading to send again when an upload starts above the newest one held
    (`before`) + 1: the server was restored from a backup, or lost a transaction, and the
    station still keeps acknowledged readings for a while (docs/protocol.md). Not for a
    device the server holds nothing from (`before` 0): a board provisioned anew may keep
    readings from an earlier life that are not this station's."""
    if before and rows and min(r["seq"] for r in rows) > before + 1:
        return before + 1
    return None


# What the server holds of a device, for delivery reports (api/lorawan.py): its readings
# and the readings its digests stand for (those stay on the station).

def held_seqs(session: Session, device_id: int, start: int, limit: int) -> list[int]:
    """The device's sequence numbers from `start` on that the server holds, ascending, at
    most `limit`."""
    held = set(session.scalars(select(READINGS.c.seq).where(
        READINGS.c.device_id == device_id, READINGS.c.seq >= start)
        .order_by(READINGS.c.seq).limit(limit)))
    for first, last in session.execute(select(DIGESTS.c.first_seq, DIGESTS.c.seq).where(
            DIGESTS.c.device_id == device_id, DIGESTS.c.seq >= start,
            DIGESTS.c.first_seq < start + limit)):
        held.update(range(max(first, start), min(last, start + limit - 1) + 1))
    return sorted(held)[:limit]


def held_below(session: Session, device_id: int, seqs: list[int]) -> tuple[int, int | None]:
    """(the oldest reading these stored records deliver, a digest counting for the readings
    it stands for; the newest sequence number held below that, or None)."""
    first = min(seqs)
    covered = session.scalar(select(func.min(DIGESTS.c.first_seq)).where(
        DIGESTS.c.device_id == device_id, DIGESTS.c.seq.in_(seqs)))
    if covered is not None:
        first = min(first, covered)
    below = [session.scalar(select(func.max(t.c.seq)).where(
        t.c.device_id == device_id, t.c.seq < first)) for t in (READINGS, DIGESTS)]
    return first, max((b for b in below if b is not None), default=None)


def check_signature(box: security.SecretBox, up: Upload, device: Any) -> Any:
    """The device (a row or a Device with secret_enc) if it signed this upload."""
    if device is None or device.secret_enc is None:
        raise IngestError(401, "unknown_device", "unknown or unprovisioned device")
    if not security.signature_ok(box.open_cached(device.secret_enc), up.device_id, up.counter,
                                 up.body, up.signature):
        raise IngestError(401, "bad_signature", "signature does not match the device secret")
    return device


def stale_counter(conn: Connection, device_id: int) -> IngestError:
    last_counter = conn.execute(select(DEVICES.c.last_counter)
                                .where(DEVICES.c.id == device_id)).scalar()
    return IngestError(401, "stale_counter", "counter not above the last one accepted",
                       last_counter=last_counter)


def authenticate(session: Session, box: security.SecretBox, up: Upload) -> Device:
    """A signed device request other than an upload (the OTA report): check it and claim
    its counter, like ingest does."""
    device: Device = check_signature(box, up, session.get(Device, up.device_id))
    conn = session.connection()
    claimed = conn.execute(update(DEVICES).where(DEVICES.c.id == up.device_id,
                                                 DEVICES.c.last_counter < up.counter)
                           .values(last_counter=up.counter))
    if not claimed.rowcount:
        raise stale_counter(conn, up.device_id)
    session.refresh(device)
    return device
