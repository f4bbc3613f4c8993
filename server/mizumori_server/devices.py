"""Devices: provisioning, installation at stations, and the config they should run."""

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mizumori_server import security
from mizumori_server.clock import now
from mizumori_server.models import AllowlistEntry, Device, DeviceInstall, Station

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
    cfg["config_version"] = version
    return cfg


def effective_config(session: Session, device: Device) -> dict[str, Any]:
    station = session.get(Station, device.station_id) if device.station_id else None
    return merged_config(station, device.desired_config, device.desired_version)


def bump_config(session: Session, station_id: int) -> None:
    """The station's settings changed: every device there gets a new config version."""
    session.execute(update(Device).where(Device.station_id == station_id)
                    .values(desired_version=Device.desired_version + 1))


def install(session: Session, device: Device, station: Station | None, by: str) -> None:
    """Install a device at a station (or remove it), keeping the history of both."""
    if device.station_id == (station.id if station else None):
        return
    t = now()
    for old in session.scalars(select(DeviceInstall).where(
            DeviceInstall.removed_at.is_(None),
            (DeviceInstall.device_id == device.id)
            | (DeviceInstall.station_id == (station.id if station else -1)))):
        old.removed_at = t
        if old.device_id != device.id:  # the station's previous device leaves it
            other = session.get(Device, old.device_id)
            if other is not None:
                other.station_id = None
    device.station_id = station.id if station else None
    device.desired_version += 1
    if station is not None:
        session.add(DeviceInstall(device_id=device.id, station_id=station.id,
                                  installed_at=t, by_user=by))


def provision(session: Session, box: security.SecretBox, hardware_id: str,
              station: Station | None, by: str, transport: str = "wifi",
              dev_eui: str | None = None) -> tuple[Device, bytes]:
    """Register (or re-provision) a device: a fresh secret, shown once; the old one stops
    working at once."""
    device = session.scalars(select(Device).where(Device.hardware_id == hardware_id)).first()
    t = now()
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
    install(session, device, station, by)
    session.flush()
    return device, secret


def allowlisted(session: Session, hardware_id: str) -> AllowlistEntry | None:
    return session.get(AllowlistEntry, hardware_id)


# Firmware settings an operator may override per device, with their JSON kinds. Kept equal to
# firmware/station/config.py's DEFAULTS by tests/server/test_devices.py; the device checks
# values again when it applies them.
OVERRIDABLE: dict[str, type] = {
    "level_sensor": str, "env_sensor": bool, "mount_mm": int, "sensor_offset_mm": int,
    "loop_shunt_ohm": int, "loop_zero_ua": int, "loop_span_mm": int, "samples": int,
    "min_valid": int, "max_dev_mm": int, "max_jump_mm": int, "stuck_count": int,
    "level_min_mm": int, "level_max_mm": int, "thresholds_mm": list, "hysteresis_mm": int,
    "rise_limit_mm_h": int, "flood_alert": int, "interval_normal_s": int,
    "interval_flood_s": int, "upload_every": int, "rain_mm_per_tip": float,
    "queue_max": int, "wdt_ms": int,
}


def check_overrides(settings: dict[str, Any]) -> list[str]:
    problems = []
    for k, v in settings.items():
        kind = OVERRIDABLE.get(k)
        if kind is None:
            problems.append(f"{k}: not a setting that can be changed remotely")
        elif kind is float and isinstance(v, int | float) and not isinstance(v, bool):
            continue
        elif kind is int and (isinstance(v, bool) or not isinstance(v, int)):
            problems.append(f"{k}: expected an integer")
        elif not isinstance(v, kind):
            problems.append(f"{k}: expected {kind.__name__}")
    return problems
