"""Devices: provisioning, installation at stations, and the config they should run."""

import importlib
import logging
import sys
from pathlib import Path
from typing import Any, Literal, get_args

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mizumori_server import security
from mizumori_server.clock import now
from mizumori_server.models import (
    AllowlistEntry,
    Device,
    DeviceEvent,
    DeviceInstall,
    Station,
    StationLatest,
)
from mizumori_server.queries import iso

log = logging.getLogger(__name__)

STATION_SETTINGS = ("mount_height_mm", "standby_mm", "caution_mm", "evacuation_mm",
                    "danger_mm", "hysteresis_mm", "rise_limit_mm_h", "interval_normal_s",
                    "interval_flood_s", "upload_every")


def station_config(station: Any) -> dict[str, Any]:
    """The firmware settings (firmware/station/config.py) that follow from a station (a
    Station, or any row with the STATION_SETTINGS columns)."""
    return {
        "mount_mm": station.mount_height_mm,
        "thresholds_mm": [station.standby_mm, station.caution_mm, station.evacuation_mm,
                          station.danger_mm],
        "hysteresis_mm": station.hysteresis_mm,
        "rise_limit_mm_h": station.rise_limit_mm_h,
        "interval_normal_s": station.interval_normal_s,
        "interval_flood_s": station.interval_flood_s,
        "upload_every": station.upload_every,
    }


def merged_config(station: Any | None, overrides: dict[str, Any] | None,
                  version: int) -> dict[str, Any]:
    """What a device should run: its station's settings, then per-device overrides."""
    cfg: dict[str, Any] = station_config(station) if station is not None else {}
    cfg.update(overrides or {})
    # Values stored before the firmware's ranges were checked here never reach a station.
    for key in list(cfg):
        problem = check_setting(key, cfg[key]) if key in FIRMWARE_DEFAULTS else "unknown"
        if problem:
            log.warning("config not sent: %s=%r (%s)", key, cfg.pop(key), problem)
    cfg["config_version"] = version
    return cfg


def effective_config(session: Session, device: Device) -> dict[str, Any]:
    station = session.get(Station, device.station_id) if device.station_id else None
    return merged_config(station, device.desired_config, device.desired_version)


def bump_config(session: Session, station_id: int) -> None:
    """The station's settings changed: every device there gets a new config version."""
    session.execute(update(Device).where(Device.station_id == station_id)
                    .values(desired_version=Device.desired_version + 1))


class StationOccupied(Exception):
    """Installing a device at a station that has another one, without `replace`."""

    def __init__(self, station: Station, current: Device, last_report: int | None):
        self.station = station
        self.current = current
        self.last_report = last_report
        heard = (f"last report {iso(last_report)}" if last_report is not None
                 else "no report yet")
        super().__init__(
            f"station {station.code} already has device {current.id} "
            f"({current.hardware_id}, {heard}): installing another one removes it, and it "
            "can no longer report; to replace it, send \"replace\": true")

    def json(self) -> dict[str, Any]:
        return {"detail": str(self), "code": "station_has_device",
                "station": self.station.code,
                "current_device": {"device_id": self.current.id,
                                   "hardware_id": self.current.hardware_id,
                                   "last_report": self.last_report,
                                   "last_report_at": iso(self.last_report)
                                   if self.last_report is not None else None}}


def last_report(session: Session, device: Device) -> int | None:
    """When the device last reported from the station it is installed at (None: never)."""
    if device.station_id is None:
        return None
    seen: int | None = session.scalar(select(StationLatest.last_seen).where(
        StationLatest.station_id == device.station_id, StationLatest.device_id == device.id))
    return seen


def installed_at(session: Session, station: Station) -> Device | None:
    """The device installed at the station, if any."""
    return session.scalars(select(Device).where(Device.station_id == station.id)
                           .order_by(Device.id)).first()


def install(session: Session, device: Device, station: Station | None, by: str,
            replace: bool = False) -> None:
    """Install a device at a station (or remove it), keeping the history of both. A station
    that has another device keeps it (StationOccupied) unless `replace`: then that device
    leaves it, and the station's history says who replaced it and with which device."""
    if device.station_id == (station.id if station else None):
        return
    current = installed_at(session, station) if station is not None else None
    if current is not None and station is not None and not replace:
        raise StationOccupied(station, current, last_report(session, current))
    t = now()
    for old in session.scalars(select(DeviceInstall).where(
            DeviceInstall.removed_at.is_(None),
            (DeviceInstall.device_id == device.id)
            | (DeviceInstall.station_id == (station.id if station else -1)))):
        old.removed_at = t
        old.removed_by = by
        if old.device_id != device.id:  # the station's previous device, replaced
            old.replaced_by = device.id
    if station is not None:  # its device leaves it
        for other in session.scalars(select(Device).where(Device.station_id == station.id,
                                                          Device.id != device.id)):
            other.station_id = None
            log.warning("station %s: device %s (%s) replaced by device %s (%s), by %s",
                        station.code, other.id, other.hardware_id, device.id,
                        device.hardware_id, by)
    device.station_id = station.id if station else None
    device.desired_version += 1
    if station is not None:
        session.add(DeviceInstall(device_id=device.id, station_id=station.id,
                                  installed_at=t, by_user=by))


def provision(session: Session, box: security.SecretBox, hardware_id: str,
              station: Station | None, by: str, transport: str = "wifi",
              dev_eui: str | None = None, replace: bool = False) -> tuple[Device, bytes]:
    """Register (or re-provision) a device: a fresh secret, shown once; the old one stops
    working at once. A station with another device: StationOccupied (nothing changes)
    unless `replace`."""
    device = session.scalars(select(Device).where(Device.hardware_id == hardware_id)).first()
    t = now()
    if station is not None and not replace:  # before anything changes
        current = installed_at(session, station)
        if current is not None and (device is None or current.id != device.id):
            raise StationOccupied(station, current, last_report(session, current))
    if device is None:
        device = Device(hardware_id=hardware_id, created_at=t, desired_config={},
                        desired_version=0, reported_version=0, last_counter=0, last_seq=0)
        session.add(device)
        session.flush()
    secret = security.new_device_secret()
    device.secret_enc = box.seal(secret)
    device.transport = transport
    device.dev_eui = dev_eui
    device.provisioned_at = t
    device.last_counter = 0  # the new secret starts a new counter
    install(session, device, station, by, replace)
    session.flush()
    return device, secret


# A station's health as it reports it (POST /api/ota/report, docs/ota.md): the cause of the
# reset that began its wake, and its last wake's error ("" for none).
ResetCause = Literal["power_on", "hard", "wdt", "deepsleep", "soft", "brownout", "unknown"]
RESET_CAUSES: tuple[str, ...] = get_args(ResetCause)
HEALTH_HISTORY = 20  # errors (with their clearing) and resets kept per device, each
HEALTH_KINDS = {"error": ("error", "cleared"), "cleared": ("error", "cleared"),
                "reset": ("reset",)}


def record_health(session: Session, device: Device, reset_cause: str | None,
                  error: str | None, clock: int | None, t: int) -> None:
    """Store what a station reported about itself at server time `t`.

    A reset cause other than "deepsleep" (every ordinary wake on an ESP32) is a new reset:
    the device's reset cause and time (the firmware sends a reset's cause in the first
    report it gets through after it, and "deepsleep" after that, so each reset counts once,
    two watchdog resets in a row included). An error that differs from the standing one
    becomes the last error, and "" after one clears it (the text stays, error_cleared_at
    says when).
    Each of these goes into the history, which keeps the last HEALTH_HISTORY of each kind.
    None (a field the firmware did not send) changes nothing."""
    events: list[tuple[str, str]] = []
    if reset_cause is not None:
        if reset_cause != "deepsleep":
            device.reset_cause = reset_cause
            device.reset_at = t
            events.append(("reset", reset_cause))
        device.reset_reported = reset_cause
    if error is not None:
        standing = device.last_error if device.error_cleared_at is None else None
        if error and error != standing:
            device.last_error = error
            device.last_error_at = t
            device.error_cleared_at = None
            events.append(("error", error))
        elif not error and standing:
            device.error_cleared_at = t
            events.append(("cleared", ""))
    for kind, text in events:
        session.add(DeviceEvent(device_id=device.id, kind=kind, text=text, at=t, clock=clock))
    session.flush()
    for kinds in {HEALTH_KINDS[k] for k, _ in events}:
        mine = (DeviceEvent.device_id == device.id, DeviceEvent.kind.in_(kinds))
        oldest_kept = session.scalar(select(DeviceEvent.id).where(*mine)
                                     .order_by(DeviceEvent.id.desc())
                                     .offset(HEALTH_HISTORY - 1).limit(1))
        if oldest_kept is not None:
            session.execute(delete(DeviceEvent).where(*mine, DeviceEvent.id < oldest_kept)
                            .execution_options(synchronize_session=False))


def health_json(device: Device) -> dict[str, Any]:
    """The station's own report of its health, as the API shows it."""
    return {"last_error": device.last_error, "last_error_at": device.last_error_at,
            "error_cleared_at": device.error_cleared_at, "reset_cause": device.reset_cause,
            "reset_at": device.reset_at}


def health_history(session: Session, device_id: int,
                   limit: int = 2 * HEALTH_HISTORY) -> list[dict[str, Any]]:
    """The device's errors, clearings and resets, newest first."""
    rows = session.scalars(select(DeviceEvent).where(DeviceEvent.device_id == device_id)
                           .order_by(DeviceEvent.id.desc()).limit(limit))
    return [{"kind": e.kind, "text": e.text, "at": e.at, "clock": e.clock} for e in rows]


def allowlisted(session: Session, hardware_id: str) -> AllowlistEntry | None:
    return session.get(AllowlistEntry, hardware_id)


# --- the firmware's settings and their ranges -------------------------------------------

# The station's own settings module (firmware/station/config.py: DEFAULTS, RANGES, NOTES,
# CHOICES and the check itself), imported from the firmware's source, so that the server
# refuses exactly what a station would refuse (tests/server/test_config_ranges.py): a value
# out of range gets a 422 here and never reaches a station. Like the tools
# (mizumori_tools.paths), the server runs from the repository (pip install -e .).
FIRMWARE_CONFIG = Path(__file__).resolve().parents[2] / "firmware" / "station" / "config.py"


def _firmware_config() -> Any:
    firmware = str(FIRMWARE_CONFIG.parents[1])
    if not FIRMWARE_CONFIG.exists():
        raise RuntimeError(f"{FIRMWARE_CONFIG}: the stations' settings table is missing; run "
                           "the server from the repository (pip install -e .)")
    if firmware not in sys.path:
        sys.path.append(firmware)  # appended: never shadows a module of the server's
    return importlib.import_module("station.config")


_firmware = _firmware_config()
FIRMWARE_DEFAULTS: dict[str, Any] = _firmware.DEFAULTS
# setting -> inclusive (min, max); for a list setting, each element's.
RANGES: dict[str, tuple[int | float, int | float]] = _firmware.RANGES
NOTES: dict[str, str] = _firmware.NOTES
CHOICES: dict[str, tuple[str, ...]] = _firmware.CHOICES

# Station columns -> the firmware setting each one sets (station_config).
STATION_KEYS = {"mount_height_mm": "mount_mm", "standby_mm": "thresholds_mm",
                "caution_mm": "thresholds_mm", "evacuation_mm": "thresholds_mm",
                "danger_mm": "thresholds_mm", "hysteresis_mm": "hysteresis_mm",
                "rise_limit_mm_h": "rise_limit_mm_h", "interval_normal_s": "interval_normal_s",
                "interval_flood_s": "interval_flood_s", "upload_every": "upload_every"}

# Firmware settings an operator may override per device (PATCH /api/devices/{id}/config).
# Not the hardware's wiring (pins, battery_ratio) nor the transport: a wrong one would cut
# the station off.
OVERRIDABLE = (
    "level_sensor", "env_sensor", "mount_mm", "sensor_offset_mm", "us_compensation",
    "us_scale", "temp_hold_s", "loop_shunt_ohm",
    "loop_zero_ua", "loop_span_mm", "samples", "min_valid", "max_dev_mm", "max_jump_mm",
    "stuck_count", "level_min_mm", "level_max_mm", "thresholds_mm", "hysteresis_mm",
    "rise_limit_mm_h", "flood_alert", "interval_normal_s", "interval_flood_s", "upload_every",
    "rain_mm_per_tip", "queue_max", "queue_keep", "batch_records", "batches_per_wake", "lora_dr",
    "lora_uplinks", "radio_min_mv", "radio_budget_s", "wdt_ms",
    # The observation profile (MLIT crisis gauge: profile.py, docs/firmware.md "Schedule"),
    # and its watch-mode burst (20 s: the standard's full window on every wake).
    "profile", "obs_start_mm", "obs_stop_mm", "obs_interval_s", "watch_window_s",
)


def check_setting(key: str, value: Any) -> str | None:
    """What a station would say about this value of one of its settings (the firmware's
    own config._check), or None when it takes it."""
    if key == "pins":
        return "not a setting the server sets"  # the board's wiring, set at provisioning
    problem: str | None = _firmware._check(key, value)
    return problem


def check_config(cfg: dict[str, Any], base: dict[str, Any] | None = None) -> list[str]:
    """Every problem a station running `base` would report applying cfg (firmware
    settings), worded as the station words them ("wdt_ms: 30000..120000")."""
    problems = []
    for key, value in cfg.items():
        problem = check_setting(key, value) if key in FIRMWARE_DEFAULTS else "unknown setting"
        if problem:
            problems.append(f"{key}: {problem}")
    merged = {**FIRMWARE_DEFAULTS, **(base or {}), **cfg}
    if not problems and merged["min_valid"] > merged["samples"]:
        problems.append("min_valid: more than samples")
    start, stop = merged["obs_start_mm"], merged["obs_stop_mm"]
    if not problems and start is not None and stop is not None and stop > start:
        problems.append("obs_stop_mm: above obs_start_mm")
    return problems


def check_overrides(settings: dict[str, Any], current: dict[str, Any] | None = None
                    ) -> list[str]:
    """Problems with per-device overrides over the device's `current` config: settings not
    open to change, and values a station would refuse."""
    closed = [f"{k}: not a setting that can be changed remotely"
              for k in settings if k not in OVERRIDABLE]
    return closed + check_config({k: v for k, v in settings.items() if k in OVERRIDABLE},
                                 current)
