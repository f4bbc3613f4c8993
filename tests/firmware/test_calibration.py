# Field calibration against the staff gauge (station/calibration.py, processing.calibrated):
# runs under CPython (pytest) and MicroPython (mpy_run.py calibration).
from station import calibration, config, processing


def cfg(**kw):
    c = dict(config.DEFAULTS)
    c.update(kw)
    return c


def raises(fn, *args):
    try:
        fn(*args)
    except calibration.CalibrationError as e:
        return str(e)
    raise AssertionError("no CalibrationError")


def test_defaults_change_nothing():
    c = cfg()
    assert c["cal_offset_mm"] == 0 and c["cal_scale"] == 1.0 and c["cal_version"] == 0
    assert processing.calibrated(1800, c) == 1800
    assert calibration.apply(None, c) is None


def test_the_station_applies_its_calibration_to_every_level():
    c = cfg(mount_mm=5000, cal_offset_mm=-25, cal_scale=1.0)
    level, flags, _ = processing.level_from_samples(
        "distance", [3200] * 7, {}, 20.0, c, None)
    assert level == 1800 - 25 and flags == 0
    c = cfg(sensor_offset_mm=100, cal_offset_mm=10, cal_scale=1.01)
    level, _, _ = processing.level_from_samples("depth", [2000, 2001, 1999, 2000], {}, None,
                                                c, None)
    assert level == 2131  # (100 + 2000) * 1.01 + 10
    assert processing.calibrated(-1000, cfg(cal_scale=1.01, cal_offset_mm=0)) == -1010


def test_one_point_gives_the_offset_and_keeps_the_scale():
    s = calibration.one_point(1230, 1262, cfg())
    assert s == {"cal_offset_mm": -32, "cal_scale": 1.0, "cal_version": 1,
                 "cal_staff_mm": 1230, "cal_raw_mm": 1262}
    c = cfg(**s)
    assert calibration.apply(1262, c) == 1230
    s = calibration.one_point(1230, 1262, cfg(cal_scale=1.02, cal_version=4), version=9)
    assert s["cal_scale"] == 1.02 and s["cal_version"] == 9
    assert calibration.apply(1262, cfg(**s)) == 1230


def test_two_points_give_the_scale():
    first = calibration.one_point(500, 520, cfg())
    s = calibration.two_point(2500, 2540, cfg(**first))
    assert abs(s["cal_scale"] - 2000 / 2020) < 1e-9 and s["cal_version"] == 2
    c = cfg(**s)
    assert calibration.apply(520, c) == 500 and calibration.apply(2540, c) == 2500


def test_two_points_too_close_or_without_a_first_are_refused():
    assert "calibrate the offset first" in raises(calibration.two_point, 2500, 2540, cfg())
    first = cfg(**calibration.one_point(1000, 1010, cfg()))
    msg = raises(calibration.two_point, 1200, 1215, first)
    assert "200 mm apart" in msg and "0.3 m" in msg


def test_out_of_range_results_are_refused():
    msg = raises(calibration.one_point, 5000, 1000, cfg())  # a 4 m offset: a wrong setup
    assert "cal_offset_mm 4000" in msg and "-2000..2000" in msg
    first = cfg(**calibration.one_point(1000, 1000, cfg()))
    assert "cal_scale" in raises(calibration.two_point, 2000, 1500, first)  # scale 2


def test_staff_gauge_readings_are_parsed_in_metres():
    assert calibration.staff_mm("1.23") == 1230
    assert calibration.staff_mm(-0.05) == -50
    assert calibration.staff_mm("0.015") == 15
    assert "must be a number" in raises(calibration.staff_mm, "abc")
    assert "outside -30..30 m" in raises(calibration.staff_mm, "45")
    assert "outside" in raises(calibration.staff_mm, "nan")


def test_the_settings_are_range_checked_like_any_other():
    _, errors = config.merge(config.DEFAULTS, {"cal_offset_mm": 2500, "cal_scale": 1.5,
                                               "cal_version": 1.0})
    assert sorted(errors) == ["cal_offset_mm: -2000..2000", "cal_scale: 0.9..1.1",
                              "cal_version: expected integer"]  # MicroPython: any order
    merged, errors = config.merge(config.DEFAULTS, {"cal_offset_mm": -30, "cal_scale": 0.99,
                                                    "cal_version": 3})
    assert not errors and merged["cal_offset_mm"] == -30 and merged["cal_version"] == 3


def test_residual():
    assert calibration.residual(1262, 1230) == 32
