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
