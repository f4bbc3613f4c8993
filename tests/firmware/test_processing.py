from station import codec, config, processing


def cfg(**kw):
    c = dict(config.DEFAULTS)
    c.update(kw)
    return c


def test_speed_of_sound():
    assert abs(processing.speed_of_sound(0.0) - 331.3) < 1e-6
    assert abs(processing.C_REF - 343.2) < 0.1
    assert processing.speed_of_sound(-10.0) < processing.speed_of_sound(35.0)


def test_compensation_at_cold_and_hot_air():
    # 3 m measured at the 20 C speed: in -10 C air sound is slower, the water is nearer.
    assert processing.compensate_mm(3000, 20.0) == 3000
    assert processing.compensate_mm(3000, -10.0) == 2842  # 3000 * sqrt(263.15 / 293.15)
    assert processing.compensate_mm(3000, 35.0) == 3076
    assert processing.compensate_mm(3000, None) == 3000


def test_median_and_outlier_rejection():
    assert processing.median([5, 1, 3]) == 3
    assert processing.median([4, 1, 3, 2]) == 2
    value, used = processing.robust_mean([1000, 1002, 998, 1001, 3500, 999, 40], 30)
    assert value == 1000 and used == 5


def test_level_from_ultrasonic_distance():
    level, flags, stuck = processing.level_from_samples(
        "distance", [3000, 3001, 2999, 3000], {}, 20.0, cfg(mount_mm=5000), None, 0)
    assert (level, flags, stuck) == (2000, 0, 0)


def test_level_from_pressure_depth():
    level, flags, _ = processing.level_from_samples(
        "depth", [800, 801, 799, 800], {}, None, cfg(sensor_offset_mm=150), None, 0)
    assert level == 950 and flags == 0


def test_too_few_samples_give_a_flagged_empty_reading():
    level, flags, _ = processing.level_from_samples(
        "distance", [3000], {codec.NO_ECHO: 6}, 20.0, cfg(), None, 0)
    assert level is None and flags == codec.NO_ECHO
    level, flags, _ = processing.level_from_samples(
        "distance", [], {codec.SENSOR_MISSING: 1}, 20.0, cfg(), None, 0)
    assert level is None and flags == codec.SENSOR_MISSING
    _, flags, _ = processing.level_from_samples(
        "distance", [], {codec.NO_ECHO: 2, codec.OUT_OF_RANGE: 5}, 20.0, cfg(), None, 0)
    assert flags == codec.OUT_OF_RANGE


def test_out_of_range_and_implausible_jump_are_flagged_but_reported():
    c = cfg(mount_mm=5000, level_max_mm=3000, max_jump_mm=500)
    level, flags, _ = processing.level_from_samples(
        "distance", [1000, 1001, 1000, 999], {}, 20.0, c, 3200, 0)
    assert level == 4000
    assert flags == codec.OUT_OF_RANGE | codec.JUMP


def test_stuck_value_is_flagged_after_repeated_identical_bursts():
    c = cfg(stuck_count=3)
    stuck = 0
    prev = None
    seen = []
    for _ in range(5):
        prev, flags, stuck = processing.level_from_samples(
            "distance", [2000] * 7, {}, 20.0, c, prev, stuck)
        seen.append(flags & codec.STUCK)
    assert seen == [0, 0, 0, codec.STUCK, codec.STUCK]
    # a noisy burst clears it
    _, flags, stuck = processing.level_from_samples(
        "distance", [2000, 2001, 1999, 2000], {}, 20.0, c, prev, stuck)
    assert flags == 0 and stuck == 0
