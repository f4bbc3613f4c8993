"""Telemetry ingest: authenticate, decode, deduplicate, store, update the latest state —
in one transaction — then reply. Idempotent on (device, sequence) in the database, so any
number of workers store exactly what one would."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mizumori_server import codec, security
from mizumori_server.db import rowcount
from mizumori_server.devices import effective_config
from mizumori_server.models import Device, Reading, Station, StationLatest


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


def _insert(session: Session):  # noqa: ANN202 - the dialect's insert()
    return (postgresql.insert if session.bind and session.bind.dialect.name == "postgresql"
            else sqlite.insert)


def authenticate(session: Session, box: security.SecretBox, up: Upload) -> Device:
    device = session.get(Device, up.device_id)
    if device is None or device.secret_enc is None:
        raise IngestError(401, "unknown_device", "unknown or unprovisioned device")
    if not security.signature_ok(box.open(device.secret_enc), up.device_id, up.counter,
                                 up.body, up.signature):
        raise IngestError(401, "bad_signature", "signature does not match the device secret")
    return device


def ingest(session: Session, box: security.SecretBox, up: Upload, now: int) -> dict[str, Any]:
    """Store one upload; raises IngestError. The caller commits."""
    device = authenticate(session, box, up)
    try:
        records = codec.decode(up.body)
    except codec.CodecError as e:
        raise IngestError(422, "bad_record", str(e), record=e.index) from None
    # Claim the counter atomically: of concurrent or replayed requests only one can pass,
    # and this row lock serialises uploads of one device across workers.
    claimed = rowcount(session.execute(
        update(Device).where(Device.id == device.id, Device.last_counter < up.counter)
        .values(last_counter=up.counter)))
    if not claimed:
        session.refresh(device)
        raise IngestError(401, "stale_counter", "counter not above the last one accepted",
                          last_counter=device.last_counter)
    if device.station_id is None:
        raise IngestError(409, "not_installed", "device is not installed at a station")
    session.refresh(device)
    station = session.get(Station, device.station_id)
    assert station is not None

    rows: list[dict[str, Any]] = []
    last = device.last_seq
    for rec in records:
        if rec.type == "status":
            continue
        seq = codec.extend_seq(rec.seq, last)
        last = max(last, seq)
        rows.append({
            "station_id": station.id, "device_id": device.id, "seq": seq,
            "t": now - rec.age_s, "received": now, "level_mm": rec.level_mm,
            "battery_mv": rec.battery_mv, "flags": rec.flags,
            "temperature_c": rec.temperature_c, "humidity_pct": rec.humidity_pct,
            "pressure_hpa": rec.pressure_hpa, "rain_mm": rec.rain_mm,
        })
    status = next((r.status for r in reversed(records) if r.type == "status"), None)
    if rows:
        ins = _insert(session)(Reading).values(rows)
        session.execute(ins.on_conflict_do_nothing(index_elements=["device_id", "seq"]))
        session.execute(
            update(Device).where(Device.id == device.id)
            .values(last_seq=case((Device.last_seq < last, last), else_=Device.last_seq)))
    if status is not None:
        device.reported_version = int(status["config_version"] or 0)
    _update_latest(session, station.id, device.id, rows, status, now)

    desired = effective_config(session, device)
    return {
        "acked": [r["seq"] for r in rows],
        "ack_upto": max((r["seq"] for r in rows), default=None),
        "server_time": now,
        "config_version": device.desired_version,
        "config": desired if device.desired_version != device.reported_version else None,
        "ota": None,  # filled by the OTA rollout (later issue)
    }


def _update_latest(session: Session, station_id: int, device_id: int,
                   rows: list[dict[str, Any]], status: dict[str, Any] | None,
                   now: int) -> None:
    """Upsert the station's latest state: last seen always; the reading only if newer."""
    values: dict[str, Any] = {"station_id": station_id, "device_id": device_id,
                              "last_seen": now}
    if status is not None:
        values.update(rssi_dbm=status["rssi_dbm"], queue_depth=status["queue_depth"],
                      dropped=status["dropped"], reset_cause=status["reset_cause"])
    newest = max(rows, key=lambda r: (r["t"], r["seq"])) if rows else None
    reading = {}
    if newest is not None:
        reading = {k: newest[k] for k in ("t", "level_mm", "flags", "battery_mv",
                                          "temperature_c")}
    ins = _insert(session)(StationLatest).values({**values, **reading})
    newer = (StationLatest.t.is_(None)) | (StationLatest.t <= ins.excluded.t)
    sets: dict[str, Any] = {k: getattr(ins.excluded, k) for k in values if k != "station_id"}
    for k in reading:
        sets[k] = case((newer, getattr(ins.excluded, k)), else_=getattr(StationLatest, k))
    session.execute(ins.on_conflict_do_update(index_elements=["station_id"], set_=sets))


def latest_for(session: Session, station_id: int) -> StationLatest | None:
    return session.scalars(
        select(StationLatest).where(StationLatest.station_id == station_id)).first()
