"""The stations' settings and their ranges are one table (firmware/station/config.py): the
server reads it, checks every value it could send exactly as a station checks it, refuses
the rest with a 422, and never sends a value a station would refuse."""

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import annotated_types
import pytest
from device import Device, reading
from fastapi.testclient import TestClient
from mizumori_server import devices, lorawan
from mizumori_server.api.stations import NewStation, StationFields
from mizumori_server.models import Device as DeviceRow
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session
from station import config  # the firmware's (firmware/ is on the path)
from station import lorawan as fw_lorawan

STATION_ROW = {"mount_height_mm": 5000, "standby_mm": 1000, "caution_mm": 1500,
               "evacuation_mm": 2000, "danger_mm": 2500, "hysteresis_mm": 50,
               "rise_limit_mm_h": 300, "interval_normal_s": 600, "interval_flood_s": 120,
               "upload_every": 3}
# Every setting the server can send: per-device overrides, the station's settings (HTTP
# replies) and the LoRaWAN config downlink's.
PUSHED = (set(devices.OVERRIDABLE)
          | set(devices.station_config(SimpleNamespace(**STATION_ROW)))
          | {name.split(".")[0] for name in lorawan.CONFIG_KEYS.values()})


def test_the_server_reads_the_firmwares_own_table() -> None:
    assert devices.FIRMWARE_CONFIG.samefile(config.__file__)
    assert devices.RANGES == config.RANGES
    assert devices.NOTES == config.NOTES
    assert devices.CHOICES == config.CHOICES
    assert devices.FIRMWARE_DEFAULTS == config.DEFAULTS
    assert config.RANGES["wdt_ms"] == (30000, 120000)


def probes(key: str) -> list[Any]:
    """Values around and outside what the setting takes."""
    values: list[Any] = [config.DEFAULTS[key], None, "1", True, 1.5, [], {}]
    if key == "thresholds_mm":
        lo, hi = config.RANGES[key]
        return values + [[lo, None, None, hi], [lo - 1, None, None, None],
                         [None, None, None, hi + 1], [1000, 1500.0, None, None],
                         [2000, 1000, None, None], [1, 2, 3], [True, None, None, None]]
    if key in config.CHOICES:
        return values + list(config.CHOICES[key]) + ["laser"]
    if key in config.RANGES:
        lo, hi = config.RANGES[key]
        step = 1 if isinstance(lo, int) else 0.01
        values += [lo, hi, lo - step, hi + step, float(lo), float(hi), -lo, hi * 1000]
    return values


def test_every_setting_the_server_sends_is_checked_as_the_station_checks_it() -> None:
    assert {"wdt_ms", "interval_flood_s", "radio_min_mv", "radio_budget_s",
            "watch_window_s"} <= PUSHED
    for key in sorted(PUSHED):
        assert key in config.DEFAULTS, key
        default = config.DEFAULTS[key]
        if isinstance(default, int | float) and not isinstance(default, bool):
            assert devices.RANGES[key] == config.RANGES[key], key
        for value in probes(key):
            assert devices.check_setting(key, value) == config._check(key, value), (key, value)


def test_the_station_apis_fields_carry_the_same_ranges() -> None:
    for column, key in devices.STATION_KEYS.items():
        for model in (StationFields, NewStation):
            meta = model.model_fields[column].metadata
            ge = [m.ge for m in meta if isinstance(m, annotated_types.Ge)]
            le = [m.le for m in meta if isinstance(m, annotated_types.Le)]
            assert (ge, le) == ([config.RANGES[key][0]], [config.RANGES[key][1]]), column


@pytest.fixture
def dev(app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> Device:
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-0042", "station": "taku-01"})
    assert r.status_code == 201, r.text
    return Device(app_client, r.json())


@pytest.mark.parametrize("change, message", [
    ({"wdt_ms": 2000}, "wdt_ms: 30000..120000"),
    ({"wdt_ms": 60000.0}, "wdt_ms: expected integer"),
    ({"wdt_ms": True}, "wdt_ms: expected integer"),
    ({"interval_flood_s": 30, "samples": 9}, "interval_flood_s: 60..3600"),
    ({"interval_normal_s": 86401}, "interval_normal_s: 60..86400"),
    ({"radio_budget_s": 301}, "radio_budget_s: 10..300"),
    ({"radio_min_mv": 2900}, "radio_min_mv: 3000..4200"),
    ({"loop_shunt_ohm": 1000}, "loop_shunt_ohm: 47..110"),
    ({"rain_mm_per_tip": 0}, "rain_mm_per_tip: 0.1..1.0"),
    ({"lora_dr": 1}, "lora_dr: AS923 data rates 2 to 5"),
    ({"watch_window_s": 0}, "watch_window_s: 1..20"),
    ({"watch_window_s": 21}, "watch_window_s: 1..20"),
    ({"watch_window_s": 2.5}, "watch_window_s: expected integer"),
    ({"thresholds_mm": [1000, 1500, 2000, 40000]}, "thresholds_mm: levels within"),
    ({"level_sensor": "laser"}, "level_sensor: one of"),
    ({"min_valid": 9}, "min_valid: more than samples"),  # over the default 7 samples
    ({"pins": {"rain": 4}}, "pins: not a setting that can be changed remotely"),
])
def test_a_device_setting_out_of_range_is_a_422_and_changes_nothing(
        app_client: TestClient, admin: dict[str, str], dev: Device,
        change: dict[str, Any], message: str) -> None:
    before = app_client.get(f"/api/devices/{dev.id}", headers=admin).json()
    r = app_client.patch(f"/api/devices/{dev.id}/config", headers=admin,
                         json={"settings": change})
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert app_client.get(f"/api/devices/{dev.id}", headers=admin).json() == before


def test_a_device_setting_at_its_limits_is_taken(app_client: TestClient,
                                                 admin: dict[str, str], dev: Device) -> None:
    edge = {"wdt_ms": 30000, "interval_flood_s": 3600, "radio_budget_s": 300,
            "radio_min_mv": 4200, "rain_mm_per_tip": 1, "samples": 32, "min_valid": 32,
            "watch_window_s": 20}
    r = app_client.patch(f"/api/devices/{dev.id}/config", headers=admin,
                         json={"settings": edge})
    assert r.status_code == 200, r.text
    reply = dev.send(reading(1)).json()
    assert {k: reply["config"][k] for k in edge} == edge
    # min_valid is checked against the samples the device already has
    r = app_client.patch(f"/api/devices/{dev.id}/config", headers=admin,
                         json={"settings": {"samples": 20}})
    assert r.status_code == 422 and "min_valid: more than samples" in r.json()["detail"]


@pytest.mark.parametrize("change", [
    {"interval_flood_s": 30}, {"interval_flood_s": 7200}, {"interval_normal_s": 59},
    {"hysteresis_mm": 1001}, {"rise_limit_mm_h": 5}, {"upload_every": 0},
    {"upload_every": 145}, {"danger_mm": 40000}, {"mount_height_mm": 30001},
    {"interval_normal_s": None}, {"mount_height_mm": None},
])
def test_a_station_setting_out_of_range_is_a_422_and_changes_nothing(
        app_client: TestClient, admin: dict[str, str], dev: Device,
        change: dict[str, Any]) -> None:
    station = app_client.get("/api/stations/taku-01", headers=admin).json()
    device = app_client.get(f"/api/devices/{dev.id}", headers=admin).json()
    r = app_client.patch("/api/stations/taku-01", headers=admin, json=change)
    assert r.status_code == 422, r.text
    assert app_client.get("/api/stations/taku-01", headers=admin).json() == station
    assert app_client.get(f"/api/devices/{dev.id}", headers=admin).json() == device


def test_a_new_station_out_of_range_is_refused(app_client: TestClient,
                                               admin: dict[str, str]) -> None:
    new = {"code": "taku-02", "name": "多久 2", "site_type": "river", "latitude": 33.29,
           "longitude": 130.11, "mount_height_mm": 5000}
    for bad in ({"interval_flood_s": 30}, {"hysteresis_mm": -1}, {"standby_mm": -30001}):
        r = app_client.post("/api/stations", headers=admin, json={**new, **bad})
        assert r.status_code == 422, (bad, r.text)
    assert app_client.get("/api/stations/taku-02", headers=admin).status_code == 404
    r = app_client.post("/api/stations", headers=admin,
                        json={**new, "interval_normal_s": 86400, "interval_flood_s": 60})
    assert r.status_code == 201, r.text


def test_values_stored_out_of_range_are_never_sent(app_client: TestClient, dev: Device,
                                                   engine: Engine) -> None:
    # As a database from before the ranges might hold them.
    with Session(engine) as session:
        session.execute(update(DeviceRow).where(DeviceRow.id == dev.id).values(
            desired_config={"wdt_ms": 2000, "samples": 9, "nosuch": 1},
            desired_version=DeviceRow.desired_version + 1))
        session.commit()
    cfg = dev.send(reading(1)).json()["config"]
    assert "wdt_ms" not in cfg and "nosuch" not in cfg and cfg["samples"] == 9
    old = SimpleNamespace(**{**STATION_ROW, "interval_flood_s": 30, "danger_mm": 99999})
    cfg = devices.merged_config(old, None, 5)
    assert "interval_flood_s" not in cfg and "thresholds_mm" not in cfg
    assert cfg["interval_normal_s"] == 600 and cfg["config_version"] == 5
    assert config.merge(config.DEFAULTS, cfg)[1] == []


def test_lorawan_downlinks_carry_only_what_the_station_takes(tmp_path: Path) -> None:
    limits = {"mount_mm": 30000, "thresholds_mm": [-30000, None, 0, 30000],
              "hysteresis_mm": 1000, "rise_limit_mm_h": 10, "interval_normal_s": 86400,
              "interval_flood_s": 60, "upload_every": 144}
    bad = {"interval_flood_s": 30, "upload_every": 500, "thresholds_mm": [1, 2, 3, 99999]}
    for cfg, taken in ((limits, limits), ({**limits, **bad}, {
            k: v for k, v in limits.items() if k not in bad})):
        assert {lorawan.CONFIG_KEYS[k].split(".")[0] for k, _ in lorawan.config_items(cfg)} \
            == set(taken)
        # the station applies every frame without an error
        st: dict[str, Any] = {"err": None, "lora_status": False}
        path = str(tmp_path / "config.json")
        fw_cfg = dict(config.DEFAULTS)
        for frame in lorawan.encode_config(7, cfg):
            fw_cfg = fw_lorawan.apply_downlink(fw_cfg, path, frame, st)
        assert st["err"] is None, st["err"]
        assert {k: fw_cfg[k] for k in taken} == taken and fw_cfg["config_version"] == 7


def test_the_docs_list_every_setting_an_operator_may_override() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    bullet = text[text.index("`PATCH /api/devices/{id}/config`"):]
    bullet = bullet[:bullet.index("Not the wiring")]
    named = re.findall(r"`([a-z0-9_]+)`", bullet)
    assert sorted(named) == sorted(devices.OVERRIDABLE)
