from station import config, fsutil
from support import tempdir


def test_missing_file_gives_defaults():
    cfg, errors = config.load(tempdir() + "/config.json")
    assert cfg == config.DEFAULTS and errors == []


def test_saved_config_loads_back():
    path = tempdir() + "/config.json"
    cfg, _ = config.merge(config.DEFAULTS, {"mount_mm": 4200, "thresholds_mm": [1, 2, 3, None]})
    config.save(cfg, path)
    again, errors = config.load(path)
    assert errors == [] and again["mount_mm"] == 4200
    assert again["thresholds_mm"] == [1, 2, 3, None]


def test_bad_values_are_refused_one_by_one_and_named():
    cfg, errors = config.merge(config.DEFAULTS, {
        "mount_mm": "high", "samples": 0, "level_sensor": "laser", "interval_flood_s": 60,
        "thresholds_mm": [2000, 1000, None, None], "wifi_password": "x",
        "env_sensor": 1, "pins": {"rain": 4, "nosuch": 1}})
    assert cfg["interval_flood_s"] == 60  # the good change is kept
    for key in ("mount_mm", "samples", "level_sensor", "thresholds_mm", "wifi_password",
                "env_sensor", "pins"):
        assert cfg.get(key) == config.DEFAULTS.get(key), key
        assert [e for e in errors if e.startswith(key + ":")], (key, errors)


def test_min_valid_is_capped_by_samples():
    cfg, errors = config.merge(config.DEFAULTS, {"samples": 3, "min_valid": 5})
    assert cfg["min_valid"] == 3 and errors


def test_corrupt_file_falls_back_to_defaults_with_an_error():
    path = tempdir() + "/config.json"
    for bad in (b"{not json", b"[1, 2]", b""):
        fsutil.write_atomic(path, bad)
        cfg, errors = config.load(path)
        assert cfg == config.DEFAULTS
        assert errors, bad


def test_pin_overrides():
    cfg, _ = config.merge(config.DEFAULTS, {"pins": {"rain": 32}})
    pins = config.pins(cfg)
    assert pins["rain"] == 32 and pins["i2c_sda"] == 21


LISTS = ("thresholds_mm", "battery_ratio")  # their range is each element's


def test_every_numeric_setting_has_a_range_holding_its_default():
    for key, default in config.DEFAULTS.items():
        numeric = not isinstance(default, bool) and isinstance(default, (int, float))
        assert numeric == (key in config.RANGES and key not in LISTS), key
    for key in config.RANGES:
        lo, hi = config.RANGES[key]
        assert lo < hi and type(lo) is type(hi), key
    assert config.merge(config.DEFAULTS, config.DEFAULTS)[1] == []


def test_values_outside_their_range_are_refused_and_the_old_value_kept():
    base, errors = config.merge(config.DEFAULTS, {"wdt_ms": 90000, "interval_flood_s": 300,
                                                  "samples": 32, "min_valid": 1})
    assert errors == []
    for key in config.RANGES:
        if key in LISTS:
            continue
        lo, hi = config.RANGES[key]
        step = 1 if isinstance(lo, int) else 0.01
        message = "%s: %s" % (key, config.NOTES.get(key) or "%s..%s" % (lo, hi))
        for bad in (lo - step, hi + step):
            cfg, errors = config.merge(base, {key: bad})
            assert cfg[key] == base[key] and errors == [message], (key, bad, errors)
        for good in (lo, hi):
            cfg, errors = config.merge(base, {key: good})
            assert cfg[key] == good and errors == [], (key, good, errors)


def test_the_range_is_named_in_the_error():
    cfg, errors = config.merge(config.DEFAULTS, {"wdt_ms": 2000})
    assert errors == ["wdt_ms: 30000..120000"] and cfg["wdt_ms"] == 60000
    _, errors = config.merge(config.DEFAULTS, {"rain_mm_per_tip": 5})
    assert errors == ["rain_mm_per_tip: 0.1..1.0"]


def test_integer_settings_take_only_integers():
    cfg, errors = config.merge(config.DEFAULTS, {"wdt_ms": 60000.0, "samples": True,
                                                 "interval_normal_s": "600"})
    assert sorted(errors) == ["interval_normal_s: expected integer",
                              "samples: expected integer", "wdt_ms: expected integer"]
    assert cfg == config.DEFAULTS
    cfg, errors = config.merge(config.DEFAULTS, {"rain_mm_per_tip": 1})  # a number default
    assert errors == [] and cfg["rain_mm_per_tip"] == 1


def test_river_levels_and_battery_ratio_are_checked_element_by_element():
    lo, hi = config.RANGES["thresholds_mm"]
    for bad in ([lo - 1, None, None, None], [None, None, None, hi + 1],
                [1000, 1500.5, None, None]):
        cfg, errors = config.merge(config.DEFAULTS, {"thresholds_mm": bad})
        assert cfg["thresholds_mm"] == config.DEFAULTS["thresholds_mm"], bad
        assert len(errors) == 1 and errors[0].startswith("thresholds_mm: "), errors
    _, errors = config.merge(config.DEFAULTS, {"thresholds_mm": [lo, 0, None, hi]})
    assert errors == []
    for bad in ([2, 0], [2, 1, 1], [True, 1], [2000, 1]):
        cfg, errors = config.merge(config.DEFAULTS, {"battery_ratio": bad})
        assert cfg["battery_ratio"] == [2, 1] and len(errors) == 1, bad
    assert config.merge(config.DEFAULTS, {"battery_ratio": [3.2, 1]})[1] == []


def test_a_config_file_out_of_range_falls_back_setting_by_setting():
    path = tempdir() + "/config.json"
    fsutil.write_atomic(path, b'{"wdt_ms": 2000, "interval_normal_s": 1200}')
    cfg, errors = config.load(path)
    assert cfg["wdt_ms"] == config.DEFAULTS["wdt_ms"] and cfg["interval_normal_s"] == 1200
    assert errors == ["wdt_ms: 30000..120000"]


def test_a_lorawan_downlink_out_of_range_is_refused():
    from station import lorawan

    def item(key, value):
        return bytes([key]) + (value & 0xFFFFFF).to_bytes(3, "big")

    path = tempdir() + "/config.json"
    st = {"err": None, "lora_status": False}
    # version 9: interval_flood_s (key 9) 30 s, upload_every (10) 500
    frame = bytes([0, 0, 9]) + item(9, 30) + item(10, 500)
    cfg = lorawan.apply_downlink(config.DEFAULTS, path, frame, st)
    assert cfg["interval_flood_s"] == 120 and cfg["upload_every"] == 3
    assert st["err"].startswith("config: ")  # in dict order (not insertion on MicroPython)
    assert sorted(st["err"][8:].split("; ")) == ["interval_flood_s: 60..3600",
                                                 "upload_every: 1..144"]
    frame = bytes([0, 0, 10]) + item(8, 1200) + item(6, -5)  # hysteresis_mm -5
    cfg = lorawan.apply_downlink(cfg, path, frame, st)
    assert cfg["interval_normal_s"] == 1200 and cfg["hysteresis_mm"] == 50
    assert st["err"] == "config: hysteresis_mm: 0..1000"
    assert config.load(path)[0] == cfg


def test_radio_settings_and_the_loop_shunt():
    d = config.DEFAULTS
    assert (d["loop_shunt_ohm"], d["radio_min_mv"], d["radio_budget_s"]) == (100, 3450, 45)
    # 21.5 mA (the loop's over-range limit) across the shunt stays inside the ADC's 2450 mV
    assert 21500 * d["loop_shunt_ohm"] // 1000 <= 2450
    lo, hi = config.RANGES["loop_shunt_ohm"]
    assert 21500 * hi // 1000 <= 2450  # no shunt in range can clip the over-range current
    assert config.RANGES["radio_min_mv"] == (3000, 4200)
    assert config.RANGES["radio_budget_s"] == (10, 300)


def test_a_retired_setting_from_older_firmware_is_taken_and_ignored():
    cfg, errors = config.merge(config.DEFAULTS, {"lora_retries": 3, "lora_dr": 4})
    assert errors == [] and cfg["lora_dr"] == 4 and "lora_retries" not in cfg
