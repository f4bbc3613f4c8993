# Profile "mlit", watch mode: a wake samples a short burst (watch_window_s) and goes on to
# the standard's full 20 s window whenever the burst could decide anything (near a level
# that switches a mode, noisy, faulty, no level, the daily heartbeat). Runs under CPython
# and MicroPython.
from records import decode
from station import app, codec, config, cycle, schedule, sensors, state
from station.flashqueue import FlashQueue
from station.hw import sim
from support import raises, tempdir

START = 2500  # obs_start_mm of these tests; the margin is max(50, hysteresis 50, max_dev 30)
MLIT = {"profile": "mlit", "obs_start_mm": START, "obs_stop_mm": START - 100,
        "thresholds_mm": [3500, 3800, 4000, 4200]}
FAR = 1500  # far below the start level (the A02YYUW 3.5 m away: within its 4.5 m)


def watch_wake(world, st=None, **changes):
    """One cycle in watch mode after a heartbeat an hour ago (none due): (result, board,
    stored quality record, state)."""
    cfg, errors = config.merge(config.DEFAULTS, dict(MLIT, **changes))
    assert errors == []
    board = sim.Board(world)
    if st is None:
        st = state.defaults()
        st["beat_t"] = board.time() - 3600
    q = FlashQueue(tempdir())
    r = cycle.run(board, cfg, config.pins(cfg), st, q)
    quality = decode(q.peek(1)[0][1][4:])[1]
    assert quality["type"] == "quality"
    return r, board, quality, st


def sensor_ms(board):
    """How long the level sensor was read: the ledger's rail time, less its warm-up."""
    return board.spent["rail_a02yyuw"] - sim.WARMUP_MS["a02yyuw"]


def test_a_burst_far_below_the_start_level_stops_at_watch_window_s_and_is_flagged():
    w = sim.World()
    w.level_mm = FAR
    r, board, quality, st = watch_wake(w)
    assert 3000 <= sensor_ms(board) < 4000  # samples at most 1 s apart over 3 s, not 20 s
    assert abs(r["level_mm"] - FAR) <= 5 and r["mode"] == "watch"
    assert quality["flags"] == ["short_window"] and r["quality"] == codec.SHORT_WINDOW
    assert r["upload"] is False and st["obs"] is False
    r, board, quality, _ = watch_wake(w, watch_window_s=8)
    assert 8000 <= sensor_ms(board) < 9000 and quality["flags"] == ["short_window"]


def test_watch_window_s_20_is_the_full_window_on_every_wake():
    w = sim.World()
    w.level_mm = FAR
    r, board, quality, _ = watch_wake(w, watch_window_s=20)
    assert sensor_ms(board) >= 20000 and quality["flags"] == []


def test_a_burst_has_at_least_min_valid_samples():
    w = sim.World()
    w.level_mm = FAR
    # 1 s is 2 samples: under min_valid 4 no burst could give a level; it takes 3 s
    r, board, quality, _ = watch_wake(w, watch_window_s=1)
    assert 3000 <= sensor_ms(board) < 4000 and quality["flags"] == ["short_window"]
    r, board, quality, _ = watch_wake(w, watch_window_s=1, min_valid=2)
    assert 1000 <= sensor_ms(board) < 2000 and quality["flags"] == ["short_window"]


def test_a_burst_near_the_start_level_goes_on_to_the_full_window():
    w = sim.World()
    for level in (START - 40, START - 10):
        w.level_mm = level
        r, board, quality, st = watch_wake(w)
        assert sensor_ms(board) >= 20000, level
        assert quality["flags"] == [] and r["mode"] == "watch" and not st["obs"]
    w.level_mm = START - 120  # clear of the margin: a burst
    r, board, quality, _ = watch_wake(w)
    assert sensor_ms(board) < 4000 and quality["flags"] == ["short_window"]


def test_observation_mode_is_entered_only_from_a_full_window():
    w = sim.World()
    w.level_mm = START + 200
    r, board, quality, st = watch_wake(w)
    assert r["mode"] == "observation" and st["obs"] and r["upload"]
    assert sensor_ms(board) >= 20000 and quality["flags"] == []
    # observing, every reading is a full window's, even far below the start level (until
    # it falls below the stop level, decided on a full window too)
    for level in (START + 500, START - 95, START - 150):
        w.level_mm = level
        r, board, quality, st = watch_wake(w, st)
        assert sensor_ms(board) >= 20000 and quality["flags"] == [], level
    assert r["mode"] == "watch" and not st["obs"]
    w.level_mm = FAR
    r, board, quality, st = watch_wake(w, st)  # watch mode again: a burst
    assert sensor_ms(board) < 4000 and quality["flags"] == ["short_window"]


def test_a_noisy_burst_goes_on_to_the_full_window():
    w = sim.World()
    w.level_mm = FAR
    w.noise_mm = 80  # waves: +-80 mm
    r, board, quality, _ = watch_wake(w)
    assert sensor_ms(board) >= 20000
    assert "short_window" not in quality["flags"] and "noisy" in quality["flags"]


def test_a_faulty_burst_or_one_without_a_level_goes_on_to_the_full_window():
    w = sim.World()
    w.level_mm = FAR
    cfg, _ = config.merge(config.DEFAULTS, MLIT)
    st = state.defaults()
    st["beat_t"] = w.now - 3600
    st["level"], st["t"] = 200, w.now - 600  # a JUMP from the last reading
    r, board, quality, _ = watch_wake(w, st)
    assert sensor_ms(board) >= 20000 and "short_window" not in quality["flags"]
    assert "jump" in codec.flags_to_names(r["flags"])
    w.faults.add("no_echo")
    r, board, quality, _ = watch_wake(w)
    assert r["level_mm"] is None and quality["flags"] == []
    assert sensor_ms(board) >= 20000  # it tried the whole window (and its slack)


def test_the_heartbeat_wake_measures_the_full_window():
    w = sim.World()
    w.level_mm = FAR
    for beat_t in (w.now - schedule.DAY_S, w.now + 3600):  # a day ago; the clock went back
        st = state.defaults()
        st["beat_t"] = beat_t
        r, board, quality, st = watch_wake(w, st)
        assert sensor_ms(board) >= 20000 and quality["flags"] == [], beat_t
        assert r["upload"] and st["beat_t"] == r["t"]
        # the next wake of the day: a burst
        r, board, quality, _ = watch_wake(w, st)
        assert sensor_ms(board) < 4000 and quality["flags"] == ["short_window"]


def test_flood_mode_and_the_standard_profile_never_take_a_burst():
    w = sim.World()
    w.level_mm = FAR
    st = state.defaults()
    st["beat_t"], st["flood"] = w.now - 3600, True
    r, board, quality, _ = watch_wake(w, st)
    assert sensor_ms(board) >= 20000 and quality["flags"] == []
    cfg, _ = config.merge(config.DEFAULTS, {"watch_window_s": 1})
    board = sim.Board(w)
    st = state.defaults()
    st["beat_t"] = w.now - 3600
    r = cycle.run(board, cfg, config.pins(cfg), st, FlashQueue(tempdir()))
    assert r["quality"] == 0  # the standard profile's 7-sample burst, never flagged


def window(burst):
    """(good samples, each attempt's end) of one sample_window on a fresh board."""
    w = sim.World()
    w.level_mm = FAR
    cfg, _ = config.merge(config.DEFAULTS, {"profile": "mlit"})
    pins = config.pins(cfg)
    board = sim.Board(w)
    sensors.rail_on(board, cfg, pins)
    _, sensor = sensors.level_sensor(board, cfg, pins)
    times = []
    good, faults = cycle.sample_window(board, sensor, None, times, burst)
    sensors.rail_off(board, pins)
    assert faults == {}
    return good, times


def test_an_escalated_burst_is_one_window_not_two():
    full, full_times = window(None)
    assert full_times[-1] - full_times[0] >= 20000
    for stands in (False, True):
        asked = []

        def check(good, faults, asked=asked, stands=stands):
            asked.append(len(good))
            return stands

        good, times = window((3000, check))
        assert len(asked) == 1 and asked[0] >= 4  # once, when the burst was complete
        if stands:
            assert len(good) == asked[0] and 3000 <= times[-1] - times[0] < 4000
        else:  # the burst's samples are the window's first: the same window as without
            assert (good, times) == (full, full_times)


def test_watch_wakes_through_app_main_burst_then_escalate_as_the_water_rises():
    d = tempdir()
    cfg, errors = config.merge(config.DEFAULTS, dict(MLIT, rise_limit_mm_h=10000))
    assert errors == []
    config.save(cfg, d + "/config.json")
    w = sim.World()
    board = sim.Board(w)
    seen = []

    def uploader(q, result):
        q.ack(result["seq"])
        return True

    for level in (FAR, FAR, 2100, START - 40, START + 20, START + 20):
        w.level_mm = level
        spent = dict(board.spent)
        ms = raises(sim.DeepSleep, app.main, board, d + "/config.json", d + "/queue",
                    uploader).ms
        rail = board.spent.get("rail_a02yyuw", 0) - spent.get("rail_a02yyuw", 0)
        st = state.load(board)
        seen.append((rail >= 20000, "observation" if st["obs"] else "watch"))
        w.now += ms // 1000
    # the first wake is the day's heartbeat; then bursts until the level nears the start
    assert seen == [(True, "watch"), (False, "watch"), (False, "watch"), (True, "watch"),
                    (True, "observation"), (True, "observation")]
    q = FlashQueue(d + "/queue")
    flags = [decode(p[4:])[1]["flags"] for _, p in q.peek(100, 100000, 0, True)]
    assert flags == [[], ["short_window"], ["short_window"], [], [], []]


def test_a_burst_near_the_rise_limit_goes_on_to_the_full_window():
    # The default rise limit (300 mm/h), waves of +-25 mm (not noisy): a rise of 240 mm/h
    # is under the limit, but not by three standard errors of a 4-sample burst's mean, so
    # the standard's window decides whether flood mode starts. Calm water still takes bursts.
    for noise, rise, short in ((25, 40, False), (3, 0, True)):
        w = sim.World()
        w.level_mm = FAR
        w.noise_mm = noise
        st = state.defaults()
        st["beat_t"] = w.now - 3600
        st["level"], st["t"] = FAR - rise, w.now - 600
        r, board, quality, _ = watch_wake(w, st, rise_limit_mm_h=300)
        assert ("short_window" in quality["flags"]) == short, (noise, quality)
        assert (sensor_ms(board) < 4000) == short, (noise, sensor_ms(board))
        assert not r["flood"], r
