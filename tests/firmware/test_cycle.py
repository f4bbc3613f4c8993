# Whole wake cycles on the simulated board: real drivers, real queue, real codec.
from records import decode
from station import app, codec, config, cycle, state
from station.flashqueue import FlashQueue
from station.hw import sim
from support import raises, tempdir


def setup(**changes):
    d = tempdir()
    cfg, errors = config.merge(config.DEFAULTS, changes)
    assert errors == []
    config.save(cfg, d + "/config.json")
    return d


def wake(d, board):
    """Run main.py's wake on the board; returns how long it asked to sleep (ms)."""
    return raises(sim.DeepSleep, app.main, board, d + "/config.json", d + "/queue").ms


def stored(d):
    q = FlashQueue(d + "/queue")
    return [decode(p[4:])[0] for _, p in q.peek(1000, 100000)]


def one_cycle(world, **changes):
    cfg, _ = config.merge(config.DEFAULTS, changes)
    q = FlashQueue(tempdir())
    st = state.defaults()
    board = sim.Board(world)
    r = cycle.run(board, cfg, config.pins(cfg), st, q, rain_tips=board.sleep_tips())
    return r, q, st


def test_a_cycle_stores_one_reading_with_everything_measured():
    w = sim.World()
    w.level_mm, w.battery_mv, w.rain_tips = 1200, 3710, 5
    r, q, st = one_cycle(w)
    assert abs(r["level_mm"] - 1200) <= 3
    assert r["seq"] == 1 and q.depth() == 1
    rec = decode(q.peek(1)[0][1][4:])[0]
    assert rec["type"] == "full" and rec["seq"] == 1
    assert rec["level_mm"] == r["level_mm"]
    # through the 2:1 divider the ESP32 ADC's +-60 mV calibrated error is +-120 mV
    assert abs(rec["battery_mv"] - 3710) <= 2 * sim.ADC_ERROR_UV // 1000
    assert abs(rec["temperature_c"] - 20.0) <= 0.02 and abs(rec["humidity_pct"] - 60) <= 0.5
    assert abs(rec["pressure_hpa"] - 1013.2) <= 0.1
    assert rec["rain_mm"] == 1.0
    assert rec["flags"] == ["clock_unsynced"]  # nobody has set the clock yet
    assert st["rain"] == 0 and st["level"] == r["level_mm"]


def test_temperature_compensation_recovers_the_true_level_in_cold_air():
    w = sim.World()
    w.level_mm, w.air_temp_c, w.noise_mm = 1000, -10.0, 0
    compensated, _, _ = one_cycle(w)
    assert abs(compensated["level_mm"] - 1000) <= 2
    raw, _, _ = one_cycle(w, env_sensor=False)
    # slower sound in cold air: 4 m reads as ~4.22 m, the level ~220 mm too low
    assert raw["level_mm"] < 800


def test_each_sensor_fault_gives_a_flagged_reading_not_an_exception():
    cases = (("missing", "sensor_missing"), ("garbage", "sensor_missing"),
             ("no_echo", "no_echo"))
    for fault, flag in cases:
        w = sim.World()
        w.faults.add(fault)
        r, q, st = one_cycle(w)
        rec = decode(q.peek(1)[0][1][4:])[0]
        assert rec["level_mm"] is None and flag in rec["flags"], (fault, rec)
        assert "level" in st["err"]


def test_missing_environment_sensor_keeps_the_level():
    w = sim.World()
    w.faults.add("env_missing")
    r, q, st = one_cycle(w)
    rec = decode(q.peek(1)[0][1][4:])[0]
    assert rec["temperature_c"] is None and rec["pressure_hpa"] is None
    assert abs(rec["level_mm"] - w.level_mm) <= 3
    assert "env sensor" in st["err"]


def wakes(w, n, step_s=600, temps=None, **changes):
    """n cycles on one station, the world's clock moving step_s between them."""
    cfg, errors = config.merge(config.DEFAULTS, changes)
    assert errors == []
    q = FlashQueue(tempdir())
    st = state.defaults()
    out = []
    for i in range(n):
        if temps:
            w.air_temp_c = temps[i]
        out.append(cycle.run(sim.Board(w), cfg, config.pins(cfg), st, q))
        w.now += step_s
    return out, st


def test_stuck_sensor_is_flagged_after_repeats():
    # A frozen echo while the air warms 1 K a reading: real water would have moved ~6 mm.
    w = sim.World()
    w.faults.add("stuck")
    w.noise_mm = 0
    out, _ = wakes(w, 5, temps=[10.0, 11.0, 12.0, 13.0, 14.0], stuck_count=3)
    assert [r["flags"] & codec.STUCK for r in out] == [0, 0, codec.STUCK, codec.STUCK,
                                                       codec.STUCK]


def test_calm_water_is_not_taken_for_a_stuck_sensor():
    # A still river on an even day: the same millimetre every burst is real, not a fault
    # (shared/reviews/sensors-and-accuracy.md #9). A frozen part shows within a day.
    w = sim.World()
    w.noise_mm = 0
    out, _ = wakes(w, 12, stuck_count=3)
    assert [r["flags"] & codec.STUCK for r in out] == [0] * 12
    assert [r["level_mm"] for r in out] == [1000] * 12
    out, _ = wakes(w, 5, step_s=6 * 3600, stuck_count=3)
    assert [r["flags"] & codec.STUCK for r in out] == [0, 0, 0, 0, codec.STUCK]


def test_a_failed_bme280_corrects_with_its_last_temperature_then_says_it_cannot():
    # -10 C air over a 4 m path: uncorrected, the level reads ~210 mm low. The BME280 fails
    # after one good wake: its temperature serves temp_hold_s (3 h), and the notes (what the
    # server is told) say so; after that the level goes uncorrected and the notes say that.
    w = sim.World()
    w.level_mm, w.air_temp_c, w.noise_mm = 1000, -10.0, 0
    cfg, _ = config.merge(config.DEFAULTS, {})
    q = FlashQueue(tempdir())
    st = state.defaults()
    r = cycle.run(sim.Board(w), cfg, config.pins(cfg), st, q)
    assert abs(r["level_mm"] - 1000) <= 2 and st["err"] == ""
    w.faults.add("env_missing")
    w.now += 2 * 3600
    r = cycle.run(sim.Board(w), cfg, config.pins(cfg), st, q)
    assert r["temperature_c"] is None  # the record carries no stale temperature
    assert abs(r["level_mm"] - 1000) <= 2, r["level_mm"]
    assert "env sensor" in st["err"] and "temperature from 2 h ago" in st["err"]
    w.now += 2 * 3600
    r = cycle.run(sim.Board(w), cfg, config.pins(cfg), st, q)
    assert r["level_mm"] < 850
    assert "no temperature: level not corrected for the speed of sound" in st["err"]
    w.faults.discard("env_missing")  # back: corrected again, nothing to say
    r = cycle.run(sim.Board(w), cfg, config.pins(cfg), st, q)
    assert abs(r["level_mm"] - 1000) <= 2 and st["err"] == ""


def test_the_ultrasonic_modules_own_compensation_is_a_setting():
    w = sim.World()
    w.level_mm, w.air_temp_c, w.noise_mm = 1000, -10.0, 0
    w.us_internal = True  # the module corrects the speed of sound itself
    twice, _, _ = one_cycle(w)
    assert twice["level_mm"] > 1150  # corrected twice: 4 m reads ~210 mm short
    once, _, st = one_cycle(w, us_compensation="internal")
    assert abs(once["level_mm"] - 1000) <= 2 and st["err"] == ""
    w.faults.add("env_missing")  # nothing to correct: no "uncorrected" note either
    once, _, st = one_cycle(w, us_compensation="internal")
    assert abs(once["level_mm"] - 1000) <= 2 and "not corrected" not in st["err"]
    w.faults.discard("env_missing")
    w.us_internal, w.us_ref_speed, w.air_temp_c = False, 340.0, 20.0  # a fixed 340 m/s
    off, _, _ = one_cycle(w)
    assert 30 <= off["level_mm"] - 1000 <= 45  # -0.94 % of 4 m
    scaled, _, _ = one_cycle(w, us_scale=343.2 / 340.0)
    assert abs(scaled["level_mm"] - 1000) <= 2


def test_a_noisy_burst_is_reported_with_its_spread():
    w = sim.World()
    r, _, st = one_cycle(w)
    assert r["spread_mm"] <= 5 and "noisy" not in st["err"]
    w.noise_mm = 80  # spray, waves: +-80 mm
    r, _, st = one_cycle(w)
    assert r["level_mm"] is not None and r["spread_mm"] > 30
    assert "level noisy: spread %d mm" % r["spread_mm"] in st["err"]


def test_a02yyuw_at_its_slowest_processed_output_still_gives_a_level():
    # Processed output can answer at 500 ms (SEN0311 CN wiki): not a silent sensor.
    w = sim.World()
    w.a02_frame_ms = 500
    r, _, _ = one_cycle(w)
    assert r["level_mm"] is not None and abs(r["level_mm"] - 1000) <= 3, r["notes"]


def test_jsnsr04t_and_pressure_transducer_stations():
    w = sim.World()
    w.level_mm = 2100
    r, _, _ = one_cycle(w, level_sensor="jsnsr04t")
    assert abs(r["level_mm"] - 2100) <= 3
    w.sensor_offset_mm = 300
    r, _, _ = one_cycle(w, level_sensor="current_loop", sensor_offset_mm=300)
    # the internal ADC's +-60 mV on the 100 ohm shunt: up to 187 mm (test_loop_adc.py)
    assert abs(r["level_mm"] - 2100) <= sim.ADC_ERROR_UV // 100 * 5000 // 16000
    r, _, _ = one_cycle(w, level_sensor="current_loop", loop_converter="ads1115",
                        sensor_offset_mm=300)
    assert abs(r["level_mm"] - 2100) <= 10  # the ADS1115's 0.25 % max gain error: 6 mm here
    w.faults.add("missing")
    r, _, _ = one_cycle(w, level_sensor="current_loop")
    assert r["level_mm"] is None and r["flags"] & codec.SENSOR_MISSING


def test_wakes_follow_a_flood_from_normal_to_fast_and_back():
    d = setup(thresholds_mm=[1000, 1500, 2000, 2500])
    w = sim.World()
    board = sim.Board(w)
    sleeps = []
    for level in (500, 520, 1100, 1700, 1650, 900, 880, 870):
        w.level_mm = level
        ms = wake(d, board)
        sleeps.append(ms // 1000)
        w.now += ms // 1000
    # slow, slow, fast (standby reached), fast, fast, slow once the level fell and steadied
    want = [600, 600, 120, 120, 120, 600, 600, 600]
    assert [abs(s - w) <= 1 for s, w in zip(sleeps, want)] == [True] * 8, sleeps
    recs = stored(d)
    assert [r["seq"] for r in recs] == list(range(1, 9))
    assert ["flood_mode" in r["flags"] for r in recs][:5] == [False, False, True, True, True]


def test_state_survives_deep_sleep_in_rtc_memory():
    d = setup()
    rtc = d + "/rtc.bin"
    w = sim.World()
    wake(d, sim.Board(w, rtc_path=rtc))
    board = sim.Board(w, rtc_path=rtc)  # a new process, as after a real deep sleep
    assert state.load(board)["wakes"] == 1
    wake(d, board)
    st = state.load(sim.Board(w, rtc_path=rtc))
    assert st["wakes"] == 2 and st["since_upload"] == 2


def test_an_unexpected_error_still_ends_in_deep_sleep_and_is_recorded():
    d = setup()
    with open(d + "/queue", "w") as f:  # a file where the queue directory should be
        f.write("x")
    board = sim.Board(sim.World())
    ms = wake(d, board)
    assert ms >= 1000
    assert state.load(board)["err"].startswith("cycle:")


def test_bad_config_file_is_reported_and_defaults_used():
    d = tempdir()
    with open(d + "/config.json", "w") as f:
        f.write('{"mount_mm": "tall"}')
    board = sim.Board(sim.World())
    wake(d, board)
    assert "mount_mm" in state.load(board)["err"]
    assert len(stored(d)) == 1


def test_clock_reset_by_power_loss_never_runs_before_stored_readings():
    d = setup()
    w = sim.World()
    wake(d, sim.Board(w))
    w.now -= 10 ** 6  # power loss: the RTC restarts in the past
    wake(d, sim.Board(w, reset_cause="deepsleep"))
    recs = FlashQueue(d + "/queue").peek(10)
    t1, t2 = [cycle.stored_time(p) for _, p in recs]
    assert t2 > t1


def test_a_clock_restored_to_the_same_floor_twice_still_orders_the_readings():
    d = setup()
    w = sim.World()
    for _ in range(3):  # three power-ons, each back at the same time
        wake(d, sim.Board(w, reset_cause="deepsleep", clock=800000000))
    times = [cycle.stored_time(p) for _, p in FlashQueue(d + "/queue").peek(10)]
    assert times == sorted(times) and len(set(times)) == 3


def test_a_power_on_wake_stores_a_reading():
    d = setup(maintenance_s=0)
    ms = wake(d, sim.Board(sim.World(), reset_cause="power_on"))
    assert ms > 0 and len(stored(d)) == 1


def test_uploader_is_called_when_an_upload_is_due():
    d = setup(upload_every=2)
    w = sim.World()
    board = sim.Board(w)
    calls = []

    def uploader(q, result):
        calls.append(result["seq"])
        return True

    for _ in range(4):
        raises(sim.DeepSleep, app.main, board, d + "/config.json", d + "/queue", uploader)
    assert calls == [2, 4]


# --- profile "mlit": a 20 s window of samples 1 s apart, light sleep between them ---------

def test_mlit_window_takes_samples_1_s_apart_over_20_s_in_light_sleep():
    from station import sensors

    w = sim.World()
    w.level_mm = 1500
    cfg, _ = config.merge(config.DEFAULTS, {"profile": "mlit"})
    pins = config.pins(cfg)
    board = sim.Board(w)
    sensors.rail_on(board, cfg, pins)
    board.sleep_ms(sim.WARMUP_MS["a02yyuw"])
    _, sensor = sensors.level_sensor(board, cfg, pins)
    asleep = board.spent.get("light_sleep", 0)
    times = []
    good, faults = cycle.sample_window(board, sensor, times=times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(good) == len(times) >= 21 and faults == {}
    assert times[-1] - times[0] >= 20000  # on the sim board's own time
    assert max(gaps) <= 1000, gaps
    assert board.spent["light_sleep"] - asleep >= 14000  # asleep most of the window
    assert board.rail_on()  # the rail stayed on through the light sleeps
    sensors.rail_off(board, pins)


def test_mlit_cycle_reports_the_windows_mean_in_watch_mode():
    w = sim.World()
    w.level_mm = 1234
    r, q, st = one_cycle(w, profile="mlit", thresholds_mm=[2000, 2500, 3000, 3500])
    assert abs(r["level_mm"] - 1234) <= 3 and r["mode"] == "watch" and r["interval_s"] == 600
    assert r["upload"] is True and st["beat_seq"] == 1  # the first wake's heartbeat
    assert q.depth() == 1


def test_a_missing_sensor_ends_the_window_at_once():
    w = sim.World()
    w.faults = {"missing"}
    board = sim.Board(w)
    cfg, _ = config.merge(config.DEFAULTS, {"profile": "mlit"})
    q = FlashQueue(tempdir())
    r = cycle.run(board, cfg, config.pins(cfg), state.defaults(), q)
    assert r["level_mm"] is None and board.ms < 5000


def test_mlit_wakes_watch_then_observe_then_watch_again():
    d = setup(profile="mlit", obs_start_mm=1000, obs_stop_mm=900, obs_interval_s=120,
              thresholds_mm=[2000, 2500, 3000, 3500], rise_limit_mm_h=10000)
    w = sim.World()
    board = sim.Board(w)
    sent = []

    def uploader(q, result):
        sent.append(result["seq"])
        q.ack(result["seq"])
        return True

    modes = []
    for level in [500] * 4 + [1050, 1100, 950, 880] + [500] * 3:
        w.level_mm = level
        ms = raises(sim.DeepSleep, app.main, board, d + "/config.json", d + "/queue",
                    uploader).ms
        st = state.load(board)
        modes.append(("observation" if st["obs"] else "watch", st["next_wake"] - st["t"]))
        w.now += ms // 1000
    assert [m for m, _ in modes] == ["watch"] * 4 + ["observation"] * 3 + ["watch"] * 4
    assert [s for _, s in modes] == [600] * 4 + [120] * 3 + [600] * 4
    # the first wake's heartbeat, every reading in observation, the change back, then none
    assert sent == [1, 5, 6, 7, 8]
