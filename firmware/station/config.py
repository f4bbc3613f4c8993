# Station configuration: defaults here, overrides in /config.json (written by provisioning
# and by config changes from the server). A bad file or value never stops the station: it
# falls back to the default for what is wrong and reports the problem.
import json

from station import fsutil
from station.pins import PINS

PATH = "config.json"

DEFAULTS = {
    "config_version": 0,
    "level_sensor": "a02yyuw",  # a02yyuw | jsnsr04t | current_loop
    "env_sensor": True,         # BME280 fitted
    "mount_mm": 5000,           # ultrasonic face above the station datum
    "sensor_offset_mm": 0,      # pressure transducer above the station datum
    "loop_shunt_ohm": 150,
    "loop_zero_ua": 4000,
    "loop_span_mm": 5000,       # depth at zero + 16 mA
    "samples": 7,
    "min_valid": 4,
    "max_dev_mm": 30,
    "max_jump_mm": 1000,
    "stuck_count": 6,
    "level_min_mm": -1000,
    "level_max_mm": 10000,
    # The four river levels in mm above datum: standby, caution, evacuation, danger.
    "thresholds_mm": [None, None, None, None],
    "hysteresis_mm": 50,
    "rise_limit_mm_h": 300,
    "flood_alert": 1,           # flood interval from this river level up
    "interval_normal_s": 600,
    "interval_flood_s": 120,
    "upload_every": 3,          # readings per upload in normal mode (every one in flood)
    "battery_ratio": [2, 1],
    "rain_mm_per_tip": 0.2,
    "queue_max": 20000,
    "batch_records": 40,        # readings per upload (fits the server's 64 KiB body limit)
    "batches_per_wake": 4,      # bounded backlog drain per wake
    # How readings leave: "wifi", "lorawan", or both in order of preference ("wifi,lorawan":
    # LoRaWAN when Wi-Fi fails). docs/lorawan.md.
    "transport": "wifi",
    "lora_dr": 2,               # AS923 data rate (DR2 = SF10: the longest range with dwell)
    "lora_retries": 3,          # confirmed-uplink retransmissions by the module
    "lora_uplinks": 4,          # uplinks per wake at most (airtime)
    "maintenance_s": 5,
    "wdt_ms": 60000,
    "pins": {},
}

_CHOICES = {"level_sensor": ("a02yyuw", "jsnsr04t", "current_loop"),
            "transport": ("wifi", "lorawan", "wifi,lorawan", "lorawan,wifi")}
_POSITIVE = ("samples", "min_valid", "interval_normal_s", "interval_flood_s", "upload_every",
             "queue_max", "wdt_ms", "loop_shunt_ohm", "loop_span_mm", "max_dev_mm",
             "batch_records", "batches_per_wake", "lora_uplinks")


def _kind(v):
    # bool before int: True is an int in Python.
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    return type(v).__name__


def _check(key, value):
    """An error message for a bad value, or None."""
    default = DEFAULTS[key]
    if key == "thresholds_mm":
        if not isinstance(value, list) or len(value) != 4:
            return "needs 4 levels"
        last = None
        for t in value:
            if t is None:
                continue
            if _kind(t) != "num":
                return "levels must be numbers or null"
            if last is not None and t < last:
                return "levels must rise"
            last = t
        return None
    if key == "pins":
        if not isinstance(value, dict) or any(k not in PINS for k in value):
            return "unknown pin name"
        return None
    if _kind(value) != _kind(default):
        return "expected %s" % _kind(default)
    if key in _CHOICES and value not in _CHOICES[key]:
        return "one of " + ", ".join(_CHOICES[key])
    if key in _POSITIVE and value <= 0:
        return "must be positive"
    if key == "lora_dr" and not 2 <= value <= 6:
        return "AS923 data rates 2 to 6 (DR0 and DR1 carry nothing under dwell time)"
    if key == "battery_ratio" and (len(value) != 2 or value[1] <= 0):
        return "needs [numerator, denominator]"
    return None


def merge(base, changes):
    """(new config, errors): base updated with every valid change; bad ones are listed."""
    cfg = dict(base)
    errors = []
    for key in changes:
        if key not in DEFAULTS:
            errors.append("%s: unknown setting" % key)
            continue
        problem = _check(key, changes[key])
        if problem:
            errors.append("%s: %s" % (key, problem))
        else:
            cfg[key] = changes[key]
    if cfg["min_valid"] > cfg["samples"]:
        errors.append("min_valid: more than samples")
        cfg["min_valid"] = cfg["samples"]
    return cfg, errors


def load(path=PATH):
    """(config, errors) from the file over the defaults."""
    raw = fsutil.read_bytes(path)
    if raw is None:
        return dict(DEFAULTS), []
    try:
        changes = json.loads(raw)
    except ValueError:
        return dict(DEFAULTS), ["%s: not valid JSON, using defaults" % path]
    if not isinstance(changes, dict):
        return dict(DEFAULTS), ["%s: not a JSON object, using defaults" % path]
    return merge(DEFAULTS, changes)


def save(cfg, path=PATH):
    fsutil.write_atomic(path, json.dumps(cfg).encode())


def pins(cfg):
    p = dict(PINS)
    p.update(cfg["pins"])
    return p
