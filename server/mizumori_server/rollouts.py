"""Staged rollouts of a release (docs/ota.md, "Rollouts").

Membership is fixed when a rollout is created: every targeted device gets a bucket
0..9999 from a hash of (device, release), and stage k (a cumulative percentage) includes
the buckets below percentage * 100 — deterministic, and a device in 5 % stays in 25 %.
Offers travel in the ingest reply; devices report each state in /api/ota/report. All state
is in the database (rows locked where it matters), so any number of workers agree."""

import hashlib
import math
import secrets
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mizumori_server.models import (
    Device,
    OtaEvent,
    Release,
    Rollout,
    RolloutDevice,
    Station,
)

PROGRESS = ("pending", "offered", "downloading", "downloaded", "installed", "confirmed")
TERMINAL = ("confirmed", "failed", "rolled_back")
IN_FLIGHT = ("offered", "downloading", "downloaded", "installed")
DEVICE_STATES = PROGRESS + ("failed", "rolled_back")
OPEN = ("active", "paused", "waiting", "halted")  # rollout states that still hold devices


class RolloutError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _hash(*parts: object) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def bucket(device_id: int, version: str) -> int:
    return _hash("bucket", device_id, version) % 10000


def jitter(device_id: int, version: str, jitter_s: int) -> int:
    """How long after its stage opens this device is first offered (spreads downloads)."""
    return _hash("jitter", device_id, version) % (jitter_s + 1) if jitter_s > 0 else 0


def resolve_target(session: Session, target: dict[str, Any]) -> list[int]:
    """Provisioned Wi-Fi devices named by the target (LoRaWAN cannot carry a release)."""
    q = select(Device.id).where(Device.secret_enc.is_not(None), Device.transport == "wifi")
    if target.get("all"):
        pass
    elif "tag" in target:
        stations = session.scalars(select(Station)).all()
        ids = [s.id for s in stations if target["tag"] in (s.tags or [])]
        q = q.where(Device.station_id.in_(ids))
    elif "stations" in target:
        q = q.join(Station, Station.id == Device.station_id).where(
            Station.code.in_(target["stations"]))
    elif "devices" in target:
        q = q.where(Device.id.in_(target["devices"]))
    else:
        raise RolloutError(422, "target: one of all, tag, stations, devices")
    ids = list(session.scalars(q.order_by(Device.id)))
    if not ids:
        raise RolloutError(422, "the target matches no provisioned Wi-Fi device")
    return ids


def create(session: Session, release: Release, spec: dict[str, Any], by: str,
           now: int) -> Rollout:
    ids = resolve_target(session, spec["target"])
    busy = session.execute(
        select(RolloutDevice.device_id, RolloutDevice.rollout_id)
        .where(RolloutDevice.device_id.in_(ids), RolloutDevice.active.is_(True))).all()
    if busy:
        listed = ", ".join(f"device {d} (rollout {r})" for d, r in busy[:10])
        raise RolloutError(409, f"already in an active rollout: {listed}; finish or abort "
                                "that first")
    r = Rollout(release_id=release.id, target=spec["target"], stages=spec["stages"],
                stage=0, stage_started_at=now, auto_advance=spec["auto_advance"],
                success_pct=spec["success_pct"], max_failures=spec.get("max_failures"),
                max_failure_pct=spec.get("max_failure_pct"), min_devices=spec["min_devices"],
                per_minute=spec["per_minute"], jitter_s=spec["jitter_s"],
                timeout_s=spec["timeout_s"], state="active", reason="", created_by=by,
                created_at=now, updated_at=now)
    session.add(r)
    session.flush()
    session.add_all(RolloutDevice(rollout_id=r.id, device_id=d,
                                  bucket=bucket(d, release.version), state="pending",
                                  reason="", updated_at=now, active=True) for d in ids)
    session.flush()  # the partial unique index refuses a device active elsewhere (a race)
    return r


def _in_stage(r: Rollout, b: int) -> bool:
    return b < int(r.stages[r.stage] * 100)


def offer_for(session: Session, device_id: int, now: int) -> dict[str, Any] | None:
    """The OTA offer for this device's ingest reply, or None. Offering is paced (per minute,
    with per-device jitter) and only while the rollout is active; an offered device gets a
    fresh download token with every reply until it has the release."""
    row = session.scalars(select(RolloutDevice).where(
        RolloutDevice.device_id == device_id, RolloutDevice.active.is_(True))).first()
    if row is None or row.state not in ("pending", "offered", "downloading", "downloaded"):
        return None
    # Only a new offer needs the rollout row locked (the per-minute count across workers);
    # re-offers to devices already on their way do not serialise on it.
    q = select(Rollout).where(Rollout.id == row.rollout_id)
    r = session.scalars(q.with_for_update() if row.state == "pending" else q).one()
    release = session.get(Release, r.release_id)
    assert release is not None
    if row.state == "pending":
        if r.state != "active" or not _in_stage(r, row.bucket):
            return None
        if now < r.stage_started_at + jitter(device_id, release.version, r.jitter_s):
            return None
        recent = session.scalar(select(func.count()).where(
            RolloutDevice.rollout_id == r.id, RolloutDevice.offered_at > now - 60))
        if (recent or 0) >= r.per_minute:
            return None
        row.state = "offered"
        row.offered_at = now
        _history(session, device_id, r.id, release.version, "offered", "", now)
    elif r.state == "aborted":
        return None
    token = secrets.token_urlsafe(18)
    row.token_hash = hashlib.sha256(token.encode()).hexdigest()
    row.updated_at = now
    return {"release": release.version, "rollout": r.id, "token": token, "size": release.size,
            "url": f"/api/ota/releases/{release.version}/"}


def may_download(session: Session, device_id: int, token: str, version: str) -> bool:
    """Only a device offered this release, with its current token, may download it."""
    row = session.scalars(select(RolloutDevice).where(
        RolloutDevice.device_id == device_id, RolloutDevice.active.is_(True),
        RolloutDevice.token_hash == hashlib.sha256(token.encode()).hexdigest())).first()
    if row is None or row.state not in ("offered", "downloading", "downloaded"):
        return False
    r = session.get(Rollout, row.rollout_id)
    release = session.get(Release, r.release_id) if r else None
    return bool(r and r.state != "aborted" and release and release.version == version)


def _history(session: Session, device_id: int, rollout_id: int | None, release: str,
             state: str, reason: str, now: int) -> None:
    session.add(OtaEvent(device_id=device_id, rollout_id=rollout_id, release=release,
                         state=state, reason=reason[:300], at=now))


def report(session: Session, device: Device, version: str, events: list[dict[str, Any]],
           now: int) -> int:
    """A device's running version and its update events: history, per-device states, and
    the rollouts' evaluation. Returns how many events were taken."""
    device.firmware_version = version
    touched: set[int] = set()
    for e in events:
        row = _row_for(session, device.id, e["release"])
        _history(session, device.id, row.rollout_id if row else None, e["release"],
                 e["state"], e.get("reason", ""), now)
        if row is not None and _apply(row, e["state"], e.get("reason", ""), now):
            touched.add(row.rollout_id)
    # The version it runs settles a confirmation whose event was lost.
    row = _row_for(session, device.id, version)
    if row is not None and row.active and row.state in IN_FLIGHT:
        _apply(row, "confirmed", "reported running it", now)
        touched.add(row.rollout_id)
    for rid in touched:
        evaluate(session, rid, now)
    return len(events)


def _row_for(session: Session, device_id: int, version: str) -> RolloutDevice | None:
    return session.scalars(
        select(RolloutDevice).join(Rollout, Rollout.id == RolloutDevice.rollout_id)
        .join(Release, Release.id == Rollout.release_id)
        .where(RolloutDevice.device_id == device_id, Release.version == version)
        .order_by(RolloutDevice.active.desc(), RolloutDevice.id.desc())).first()


def _apply(row: RolloutDevice, state: str, reason: str, now: int) -> bool:
    """Move a device's state forward (never back); terminal states release the device."""
    cur = row.state
    if cur in ("confirmed", "rolled_back") or state not in DEVICE_STATES:
        return False
    if state not in TERMINAL and (cur == "failed" or
                                  PROGRESS.index(state) <= PROGRESS.index(cur)):
        return False
    row.state = state
    row.reason = reason[:300]
    row.updated_at = now
    if state in TERMINAL:
        row.active = False
        row.token_hash = None
    return True


def counts(session: Session, r: Rollout) -> dict[str, int]:
    rows = session.execute(select(RolloutDevice.state, func.count())
                           .where(RolloutDevice.rollout_id == r.id)
                           .group_by(RolloutDevice.state)).all()
    return {s: 0 for s in DEVICE_STATES} | {s: n for s, n in rows}


def evaluate(session: Session, rollout_id: int, now: int) -> Rollout:
    """Time out stalled devices, halt on failures, advance or finish stages."""
    r = session.scalars(select(Rollout).where(Rollout.id == rollout_id)
                        .with_for_update()).one()
    if r.state not in OPEN:
        return r
    session.execute(update(RolloutDevice).where(
        RolloutDevice.rollout_id == r.id, RolloutDevice.state.in_(IN_FLIGHT),
        RolloutDevice.updated_at < now - r.timeout_s).values(
        state="failed", reason=f"no progress in {r.timeout_s} s", active=False,
        token_hash=None, updated_at=now))
    c = counts(session, r)
    failed = c["failed"] + c["rolled_back"]
    tried = failed + c["confirmed"]  # devices whose attempt has an outcome
    if r.state in ("active", "waiting"):
        why = ""
        if r.max_failures is not None and failed >= r.max_failures:
            why = f"{failed} devices failed or rolled back (limit {r.max_failures})"
        elif (r.max_failure_pct is not None and tried >= r.min_devices
              and failed * 100 >= r.max_failure_pct * tried):
            why = (f"{failed} of {tried} devices that finished failed or rolled back "
                   f"(limit {r.max_failure_pct} % after {r.min_devices})")
        if why:
            _set(r, "halted", "auto-halt: " + why, now)
            return r
    while r.state == "active" and _stage_met(session, r):
        if r.stage + 1 >= len(r.stages):
            # Done once nobody is mid-update; devices never seen stay un-updated (listed).
            if not any(c[s] for s in IN_FLIGHT):
                _finish(session, r, "completed", "every stage met its threshold", now)
            break
        if not r.auto_advance:
            _set(r, "waiting", f"stage {r.stage + 1} ({r.stages[r.stage]} %) met its "
                               "threshold: waiting for an operator to resume", now)
            break
        r.stage += 1
        r.stage_started_at = now
        r.updated_at = now
    return r


def _stage_met(session: Session, r: Rollout) -> bool:
    limit = int(r.stages[r.stage] * 100)
    members, confirmed = session.execute(
        select(func.count(), func.count().filter(RolloutDevice.state == "confirmed"))
        .where(RolloutDevice.rollout_id == r.id, RolloutDevice.bucket < limit)).one()
    return confirmed >= math.ceil(members * r.success_pct / 100)


def _set(r: Rollout, state: str, reason: str, now: int) -> None:
    r.state = state
    r.reason = reason
    r.updated_at = now


def _finish(session: Session, r: Rollout, state: str, reason: str, now: int) -> None:
    _set(r, state, reason, now)
    session.execute(update(RolloutDevice).where(RolloutDevice.rollout_id == r.id,
                                                RolloutDevice.active.is_(True))
                    .values(active=False, token_hash=None))


def act(session: Session, rollout_id: int, action: str, now: int, by: str) -> Rollout:
    """An operator's pause, resume (also: advance a waiting stage, restart after a halt) or
    abort."""
    r = session.scalars(select(Rollout).where(Rollout.id == rollout_id)
                        .with_for_update()).first()
    if r is None:
        raise RolloutError(404, f"no rollout {rollout_id}")
    if r.state not in OPEN:
        raise RolloutError(409, f"rollout {r.id} is {r.state}")
    if action == "pause":
        _set(r, "paused", f"paused by {by}", now)
    elif action == "resume":
        if r.state == "waiting":
            r.stage += 1
            r.stage_started_at = now
        _set(r, "active", f"resumed by {by}", now)
        evaluate(session, r.id, now)
    elif action == "abort":
        _finish(session, r, "aborted", f"aborted by {by}", now)
    else:
        raise RolloutError(422, f"unknown action {action}")
    return r


def rollout_json(session: Session, r: Rollout, devices: bool = False) -> dict[str, Any]:
    release = session.get(Release, r.release_id)
    out: dict[str, Any] = {
        "id": r.id, "release": release.version if release else None, "target": r.target,
        "stages": r.stages, "stage": r.stage + 1, "state": r.state, "reason": r.reason,
        "auto_advance": r.auto_advance, "success_pct": r.success_pct,
        "max_failures": r.max_failures, "max_failure_pct": r.max_failure_pct,
        "min_devices": r.min_devices, "per_minute": r.per_minute, "jitter_s": r.jitter_s,
        "timeout_s": r.timeout_s, "created_by": r.created_by, "created_at": r.created_at,
        "updated_at": r.updated_at, "counts": counts(session, r)}
    if devices:
        rows = session.scalars(select(RolloutDevice).where(RolloutDevice.rollout_id == r.id)
                               .order_by(RolloutDevice.device_id)).all()
        out["devices"] = [{"device_id": d.device_id, "state": d.state, "reason": d.reason,
                           "in_stage": _in_stage(r, d.bucket), "offered_at": d.offered_at,
                           "updated_at": d.updated_at} for d in rows]
    return out
