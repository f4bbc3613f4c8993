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
    assert (level, flags, stuck) == (2000, 0, None)


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


def _run(c, bursts, temps, kind="distance", step_s=600):
    """STUCK flags over identical bursts, one reading every step_s."""
    run, seen = None, []
    for i, burst in enumerate(bursts):
        _, flags, run = processing.level_from_samples(
            kind, burst, {}, temps[i], c, None, run, i * step_s)
        seen.append(flags & codec.STUCK)
    return seen, run


def test_a_frozen_pressure_reading_is_stuck_after_stuck_count_bursts():
    # A 4-20 mA loop read on the ADC always jitters: identical bursts mean a frozen part.
    seen, run = _run(cfg(stuck_count=3), [[800] * 7] * 5, [None] * 5, kind="depth")
    assert seen == [0, 0, codec.STUCK, codec.STUCK, codec.STUCK]
    _, flags, run = processing.level_from_samples(  # a burst with any spread clears it
        "depth", [800, 801, 799, 800], {}, None, cfg(stuck_count=3), None, run, 9000)
    assert flags == 0 and run is None


def test_calm_water_on_an_even_day_is_not_stuck():
    # Still water, the same air: an ultrasonic module sees the same millimetre every time
    # (shared/reviews/sensors-and-accuracy.md #9). Not stuck before a whole day of it.
    c = cfg(stuck_count=3)
    n = processing.STUCK_DAY_S // 600
    seen, _ = _run(c, [[2000] * 7] * (n + 1), [15.0] * (n + 1))
    assert seen[:n] == [0] * n and seen[n] == codec.STUCK
    # a module compensating internally: the same, the temperature says nothing
    seen, _ = _run(cfg(stuck_count=3, us_compensation="internal"), [[2000] * 7] * 6,
                   [5.0, 8.0, 11.0, 14.0, 17.0, 20.0])
    assert seen == [0] * 6


def test_a_frozen_echo_while_the_air_changes_is_stuck():
    # 2 m at 10 C then 13 C: a real echo moves by ~10 mm; one that does not is a frozen part.
    c = cfg(stuck_count=3)
    seen, _ = _run(c, [[2000] * 7] * 4, [10.0, 11.0, 13.0, 13.0])
    assert seen == [0, 0, codec.STUCK, codec.STUCK]
    seen, _ = _run(c, [[2000] * 7] * 4, [10.0, 10.1, 10.2, 10.2])  # < 3 mm expected
    assert seen == [0, 0, 0, 0]


def test_a_burst_that_changes_value_starts_a_new_run():
    c = cfg(stuck_count=2)
    seen, run = _run(c, [[2000] * 7, [2001] * 7, [2001] * 7], [10.0, 15.0, 20.0])
    assert seen == [0, 0, codec.STUCK] and run[:2] == [2001, 2]


def test_spread_and_noisy_bursts():
    c = cfg()
    assert processing.quality([2000, 2001, 1999, 2000, 2002, 1998, 2000], c) == (1, 0, False)
    # waves of +-60 mm: a robust spread over max_dev_mm (30)
    spread, dropped, noisy = processing.quality([1940, 2060, 1990, 2000, 2050, 1950, 2010], c)
    assert spread > 30 and noisy
    # two spikes of seven dropped (29 %): noisy though the rest agree
    assert processing.quality([2000, 2001, 1999, 2000, 2000, 500, 4000], c) == (1, 2, True)
    assert processing.quality([2000], c) == (0, 0, False)


def test_us_compensation_and_scale():
    # "internal": the module corrected the speed of sound itself; the firmware must not again
    assert processing.distance_mm(3000, -10.0, cfg(us_compensation="internal")) == 3000
    assert processing.distance_mm(3000, -10.0, cfg()) == 2842
    assert processing.distance_mm(3000, None, cfg()) == 3000
    # a module that assumes 340 m/s: us_scale = 343.2 / 340 takes its 0.94 % out
    scale = processing.C_REF / 340.0
    seen = int(3000 * 340.0 / processing.C_REF + 0.5)
    assert processing.distance_mm(seen, 20.0, cfg(us_scale=scale)) == 3000
