# Station configuration: defaults here, overrides in /config.json (written by provisioning
# and by config changes from the server). A bad file or value never stops the station: it
# falls back to the default for what is wrong and reports the problem.
#
# The fleet server imports this module and checks every setting it sends with _check, so it
# refuses exactly what a station would (server/mizumori_server/devices.py).
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
    # 100 ohm: 2.15 V at 21.5 mA, inside the ESP32 ADC's 2450 mV at 11 dB (150 gave 3.0 V).
    "loop_shunt_ohm": 100,
    "loop_zero_ua": 4000,
    "loop_span_mm": 5000,       # depth at zero + 16 mA
    # What reads the loop's shunt: "internal" (the ESP32's ADC, 64 conversions averaged) or
    # "ads1115" (an external 16-bit ADC on the BME280's I2C bus: the recommended path).
    "loop_converter": "internal",
    "samples": 7,
    "min_valid": 4,
    "max_dev_mm": 30,
    "max_jump_mm": 1000,
    "stuck_count": 6,
    # An ultrasonic module's own temperature compensation: "firmware" (it assumes 20 C air
    # and the station corrects for the speed of sound) or "internal" (it corrects itself:
    # correcting again would double it). Decided on the bench: hardware/ultrasonic.md.
    "us_compensation": "firmware",
    "us_scale": 1.0,            # times every ultrasonic distance (a fixed-speed module's scale)
    "temp_hold_s": 10800,       # the BME280 failed: correct with its last temperature this long
    # Field calibration against the staff gauge (station/calibration.py): every level is
    # level * cal_scale + cal_offset_mm; cal_version counts calibrations (0: none yet), and
    # cal_staff_mm / cal_raw_mm keep the last point (staff gauge, uncalibrated level) for
    # a two-point calibration at the next visit.
    "cal_offset_mm": 0,
    "cal_scale": 1.0,
    "cal_version": 0,
    "cal_staff_mm": 0,
    "cal_raw_mm": 0,
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
    # Observation profile: "standard" (the intervals above) or "mlit", MLIT's crisis-gauge
    # standard (docs/firmware.md, "Schedule"): watch mode below obs_start_mm (a reading every
    # 10 min at most, stored, sent in a daily heartbeat), observation mode from it up (a
    # reading sent every obs_interval_s) until the level falls below obs_stop_mm; each level
    # the mean of a 20 s window of samples 1 s apart, except a watch-mode wake's: a burst of
    # watch_window_s that goes on to the full window whenever it could decide anything.
    "profile": "standard",
    "obs_start_mm": None,       # 観測開始水位; None: the standby river level (thresholds_mm[0])
    "obs_stop_mm": None,        # back to watch mode below it; None: obs_start_mm - hysteresis_mm
    "obs_interval_s": 600,      # observation mode: 600, 300 or 120 s
    "watch_window_s": 3,        # watch mode: a burst this long (20: the full window every wake)
    "battery_ratio": [2, 1],
    "rain_mm_per_tip": 0.2,
    # What counts the rain gauge's tips: "none" (each tip wakes the board from deep sleep,
    # an IRQ counts while awake) or "pcf8583" (a counter on the I2C bus counts them, read at
    # each wake: no wake per tip; hardware/wiring.md).
    "rain_counter": "none",
    "queue_max": 20000,
    # Acknowledged readings kept for a resend (a server restored from a backup): 7 days at
    # the flood interval, ~160 KB; within queue_max (unsent readings take precedence).
    "queue_keep": 5040,
    "batch_records": 40,        # readings per upload (fits the server's 64 KiB body limit)
    "batches_per_wake": 4,      # bounded backlog drain per wake
    # How readings leave: "wifi", "lorawan", or both in order of preference ("wifi,lorawan":
    # LoRaWAN when Wi-Fi fails). docs/lorawan.md.
    "transport": "wifi",
    # AS923 data rate. DR3 (SF9, 53 bytes) takes a full record, the status and the MAC
    # commands a network sends; DR2 (SF10, 11 bytes) reaches ~2.5 dB further but carries one
    # level record and nothing else (docs/lorawan.md, "Data rate").
    "lora_dr": 3,
    "lora_uplinks": 4,          # uplinks per wake at most (airtime)
    "radio_min_mv": 3450,       # below this battery voltage: no radio, no OTA this wake
    "radio_budget_s": 45,       # per-wake deadline for all radio work
    "maintenance_s": 5,
    "wdt_ms": 60000,
    "pins": {},
}

# Inclusive (min, max) of every numeric setting: what a station can live with, so that no
# value (from the file, the server or a LoRaWAN downlink) can stop it from working or from
# taking the next fix. For a list setting, the range of each element. A setting whose
# default is an int takes only ints.
RANGES = {
    "config_version": (0, 2147483647),   # the server's counter (reported modulo 2**16)
    "mount_mm": (0, 30000),              # levels travel as int16 mm
    "sensor_offset_mm": (-30000, 30000),  # levels travel as int16 mm
    "loop_shunt_ohm": (47, 110),         # 110 ohm: 21.5 mA is 2.37 V, under the ADC's 2450 mV
    "loop_zero_ua": (3600, 4400),        # the 4 mA point, calibrated; under 3600 = open loop
    "loop_span_mm": (500, 30000),        # 0.5 m to 30 m transducers (int16 mm levels)
    "samples": (1, 32),                  # a burst takes about 0.1 s a sample awake
    "min_valid": (1, 32),                # at most samples (checked in merge)
    "max_dev_mm": (1, 1000),             # outlier distance from the median in a burst
    "max_jump_mm": (10, 30000),          # under 10 mm every ripple would be flagged
    "stuck_count": (2, 144),             # identical readings before STUCK (a day at 10 min)
    "us_scale": (0.9, 1.1),              # 340 vs 343.2 m/s is 0.94 %; 10 % is a wrong part
    "temp_hold_s": (0, 86400),           # 0: never; a day's temperature cycle is up to ~15 K
    "cal_offset_mm": (-2000, 2000),      # a survey or mount error; more is a wrong setup
    "cal_scale": (0.9, 1.1),             # like us_scale: 10 % is a wrong part, not drift
    "cal_version": (0, 2147483647),      # the server's counter of calibrations
    "cal_staff_mm": (-30000, 30000),     # levels travel as int16 mm
    "cal_raw_mm": (-30000, 30000),
    "level_min_mm": (-30000, 30000),     # levels travel as int16 mm
    "level_max_mm": (-30000, 30000),
    "thresholds_mm": (-30000, 30000),    # each river level; int16 mm like the readings
    "hysteresis_mm": (0, 1000),          # more would keep a station in flood mode for days
    "rise_limit_mm_h": (10, 10000),      # under 10 mm/h rain alone would mean flood mode
    "flood_alert": (1, 4),               # standby .. danger
    "interval_normal_s": (60, 86400),    # a reading a minute (battery) to one a day
    "interval_flood_s": (60, 3600),      # a flood is reported at least hourly
    "upload_every": (1, 144),            # a day of readings at the normal interval
    "obs_interval_s": (120, 600),        # and one of OBS_INTERVALS (NOTES)
    "watch_window_s": (1, 20),           # 20: the standard's full window on every wake
    "battery_ratio": (1, 1000),          # divider numerator and denominator
    "rain_mm_per_tip": (0.1, 1.0),       # tipping buckets from 0.1 to 1 mm
    "queue_max": (100, 50000),           # 37-byte frames: 1.85 MB of the ~2 MB filesystem
    "queue_keep": (0, 20000),            # counted within queue_max; 0: none kept
    "batch_records": (1, 40),            # within the server's 64 KiB body limit
    "batches_per_wake": (1, 8),          # bounded awake time draining a backlog
    "lora_dr": (2, 5),                   # AS923 with dwell: DR0/1 carry nothing; RUI3 takes 2-5
    "lora_uplinks": (1, 8),              # airtime per wake (duty cycle)
    "radio_min_mv": (3000, 4200),        # Li-ion: 3.0 V is empty, 4.2 V full
    "radio_budget_s": (10, 300),         # a Wi-Fi connect needs ~10 s; 5 min drains a cell
    "maintenance_s": (0, 60),            # the serial window at each wake
    "wdt_ms": (30000, 120000),           # above a Wi-Fi connect + TLS; resets a hung wake
}
# Settings older firmware had: taken and ignored (lora_retries: uplinks are unconfirmed now).
RETIRED = ("lora_retries",)
# Messages that say more than the range.
NOTES = {"lora_dr": "AS923 data rates 2 to 5 (DR0 and DR1 carry nothing under dwell time)",
         "obs_interval_s": "one of 600, 300, 120"}
CHOICES = {"level_sensor": ("a02yyuw", "jsnsr04t", "current_loop"),
           "loop_converter": ("internal", "ads1115"),
           "rain_counter": ("none", "pcf8583"),
           "us_compensation": ("firmware", "internal"),
           "transport": ("wifi", "lorawan", "wifi,lorawan", "lorawan,wifi"),
           "profile": ("standard", "mlit")}
OBS_INTERVALS = (600, 300, 120)  # the standard's 10, 5 or 2 minutes
# Levels that may be unset (None): int16 mm like the readings.
OPTIONAL_MM = {"obs_start_mm": (-30000, 30000), "obs_stop_mm": (-30000, 30000)}


def _kind(v):
    # bool before int: True is an int in Python.
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    return type(v).__name__


def _out_of(key, value):
    """The range message when value (a number) is outside key's range, else None."""
    lo, hi = RANGES[key]
    if lo <= value <= hi:
        return None
    return NOTES.get(key) or "%s..%s" % (lo, hi)


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
            if _kind(t) != "integer":
                return "levels must be integers (mm) or null"
            problem = _out_of(key, t)
            if problem:
                return "levels within " + problem
            if last is not None and t < last:
                return "levels must rise"
            last = t
        return None
    if key == "pins":
        if not isinstance(value, dict) or any(k not in PINS for k in value):
            return "unknown pin name"
        return None
    if key == "battery_ratio":
        if (not isinstance(value, list) or len(value) != 2
                or any(_kind(v) not in ("integer", "number") or _out_of(key, v) for v in value)):
            return "needs [numerator, denominator], each %s..%s" % RANGES[key]
        return None
    if key in OPTIONAL_MM:
        if value is None:
            return None
        lo, hi = OPTIONAL_MM[key]
        if _kind(value) != "integer" or not lo <= value <= hi:
            return "a level in mm, %s..%s, or null" % (lo, hi)
        return None
    if key == "obs_interval_s" and value not in OBS_INTERVALS:
        return NOTES[key]
    kind = _kind(value)
    want = _kind(default)
    if kind != want and not (want == "number" and kind == "integer"):
        return "expected " + want
    if key in CHOICES and value not in CHOICES[key]:
        return "one of " + ", ".join(CHOICES[key])
    if key in RANGES:
        return _out_of(key, value)
    return None


def merge(base, changes):
    """(new config, errors): base updated with every valid change; bad ones are listed."""
    cfg = dict(base)
    errors = []
    for key in changes:
        if key in RETIRED:
            continue
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
    start, stop = cfg["obs_start_mm"], cfg["obs_stop_mm"]
    if start is not None and stop is not None and stop > start:
        errors.append("obs_stop_mm: above obs_start_mm")
        cfg["obs_stop_mm"] = None
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
