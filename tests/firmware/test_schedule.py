from station import config, schedule, state

T = [1000, 1500, 2000, 2500]


def cfg(**kw):
    c = dict(config.DEFAULTS)
    c.update(thresholds_mm=T, hysteresis_mm=50, rise_limit_mm_h=300, upload_every=3)
    c.update(kw)
    return c


def test_alert_level_counts_levels_reached():
    assert schedule.alert_level(900, T, 0, 50) == 0
    assert schedule.alert_level(1000, T, 0, 50) == 1
    assert schedule.alert_level(2600, T, 0, 50) == 4
    assert schedule.alert_level(None, T, 3, 50) == 3  # no reading: keep what we had


def test_alert_level_falls_only_past_the_hysteresis():
    assert schedule.alert_level(1480, T, 2, 50) == 2
    assert schedule.alert_level(1450, T, 2, 50) == 1
    assert schedule.alert_level(1960, T, 4, 50) == 3  # far below danger, still near evacuation
    assert schedule.alert_level(100, T, 4, 50) == 0


def test_unset_levels_are_skipped():
    assert schedule.alert_level(5000, [None, 1500, None, None], 0, 50) == 2


def test_rise_rate():
    assert schedule.rise_mm_per_h(1000, 0, 1050, 600) == 300
    assert schedule.rise_mm_per_h(1000, 0, 900, 3600) == -100
    assert schedule.rise_mm_per_h(None, 0, 900, 3600) is None
    assert schedule.rise_mm_per_h(1000, 100, 900, 100) is None


def st(**kw):
    s = state.defaults()
    s.update(kw)
    return s


def test_normal_times_report_slowly_and_upload_every_third():
    c = cfg()
    d = schedule.decide(c, st(level=500, t=0, since_upload=0), 505, 600)
    assert (d["flood"], d["interval_s"], d["upload"]) == (False, 600, False)
    d = schedule.decide(c, st(level=500, t=0, since_upload=2), 505, 600)
    assert d["upload"] is True


def test_reaching_a_river_level_switches_to_flood_and_uploads_at_once():
    d = schedule.decide(cfg(), st(level=990, t=0), 1010, 600)
    assert (d["alert"], d["flood"], d["interval_s"], d["upload"]) == (1, True, 120, True)


def test_fast_rise_switches_to_flood_below_the_levels():
    d = schedule.decide(cfg(), st(level=500, t=0), 560, 600)  # 360 mm/h
    assert d["flood"] and d["rate_mm_h"] == 360 and d["alert"] == 0


def test_flood_mode_ends_with_hysteresis_on_the_rate():
    c = cfg()
    flood = st(level=500, t=0, flood=True, alert=0)
    assert schedule.decide(c, flood, 520, 120)["flood"]  # 600 mm/h
    assert schedule.decide(c, flood, 505, 120)["flood"]  # 150 mm/h = half the limit
    d = schedule.decide(c, flood, 502, 120)  # 60 mm/h
    assert not d["flood"] and d["interval_s"] == 600 and d["upload"]


def test_every_reading_is_uploaded_in_flood_mode():
    d = schedule.decide(cfg(), st(level=1600, t=0, flood=True, alert=2), 1600, 120)
    assert d["upload"] and d["interval_s"] == 120


# --- profile "mlit": watch and observation modes (MLIT crisis-gauge standard) -------------

def mlit(**kw):
    return cfg(profile="mlit", obs_start_mm=800, obs_stop_mm=700, obs_interval_s=300, **kw)


def follow(c, s, level, now, sent=None):
    """One wake's decision, kept in the state as cycle.run keeps it."""
    d = schedule.decide(c, s, level, now, s["beat_seq"] if sent is None else sent)
    s["alert"], s["flood"], s["obs"] = d["alert"], d["flood"], d["obs"]
    s["level"], s["t"] = level, now
    if d["heartbeat"]:
        s["beat_t"], s["beat_seq"] = now, s.get("seq", 0)
    s["seq"] = s.get("seq", 0) + 1
    return d


def test_watch_mode_sends_nothing_until_the_daily_heartbeat():
    c = mlit()
    s = st(beat_t=1000, level=500, t=400)
    now = 1000
    uploads = []
    for i in range(150):  # a day and a bit at 10 minutes
        now += 600
        d = follow(c, s, 500 + (i % 3), now)
        assert (d["mode"], d["interval_s"]) == ("watch", 600)
        if d["upload"]:
            uploads.append(now - 1000)
    assert uploads == [86400]  # 144 readings stored, one heartbeat


def test_watch_mode_measures_at_most_every_ten_minutes():
    assert follow(mlit(interval_normal_s=3600), st(beat_t=0), 500, 600)["interval_s"] == 600
    assert follow(mlit(interval_normal_s=300), st(beat_t=0), 500, 600)["interval_s"] == 300


def test_the_heartbeat_goes_on_until_its_readings_are_out():
    c = mlit()
    s = st(beat_t=0, level=500, t=0)
    d = follow(c, s, 500, 86400, sent=0)
    assert d["heartbeat"] and d["upload"] and s["beat_t"] == 86400
    s["beat_seq"] = 144
    d = follow(c, s, 500, 87000, sent=100)  # the transport got 100 out: more wakes needed
    assert d["upload"] and not d["heartbeat"]
    d = follow(c, s, 500, 87600, sent=144)
    assert not d["upload"]


def test_observation_starts_at_the_start_level_and_stops_below_the_stop_level():
    c = mlit(rise_limit_mm_h=10000)  # the mode alone, no flood mode by rate of rise
    s = st(beat_t=0, level=780, t=0)
    now = 0
    got = []
    for level in (790, 800, 760, 700, 699, 750, 799):
        now += 600
        d = follow(c, s, level, now)
        got.append((d["mode"], d["interval_s"], d["upload"]))
    assert got == [
        ("watch", 600, False),
        ("observation", 300, True),   # the start level reached: sent at once, every 5 min
        ("observation", 300, True),
        ("observation", 300, True),   # still at the stop level
        ("watch", 600, True),         # below it: the change is sent, then nothing
        ("watch", 600, False),        # between stop and start: watch mode holds
        ("watch", 600, False),
    ]


def test_a_missing_level_keeps_the_mode():
    c = mlit()
    s = st(beat_t=0, obs=True, level=900, t=0)
    assert follow(c, s, None, 300)["mode"] == "observation"


def test_river_levels_and_rate_of_rise_still_apply_on_top():
    c = mlit(interval_flood_s=120)
    s = st(beat_t=0, level=850, t=0, obs=True)
    d = follow(c, s, 1010, 300)  # standby level (T[0]) reached: flood mode wins
    assert (d["flood"], d["mode"], d["interval_s"], d["upload"]) == (
        True, "observation", 120, True)
    s = st(beat_t=0, level=400, t=0)
    d = follow(c, s, 500, 600)  # 600 mm/h while watching
    assert (d["flood"], d["mode"], d["interval_s"], d["upload"]) == (True, "watch", 120, True)


def test_the_start_level_defaults_to_the_standby_level():
    c = cfg(profile="mlit")
    assert schedule.obs_levels(c) == (T[0], T[0] - 50)
    assert schedule.obs_levels(cfg(profile="mlit", thresholds_mm=[None] * 4)) == (None, None)
    assert follow(cfg(profile="mlit", thresholds_mm=[None] * 4), st(beat_t=0), 9000,
                  600)["mode"] == "watch"


def test_the_standard_profile_is_unchanged():
    d = schedule.decide(cfg(), st(level=500, t=0, since_upload=0), 505, 600)
    assert (d["mode"], d["obs"], d["interval_s"]) == ("standard", False, 600)


def test_profile_settings_are_checked():
    base = config.DEFAULTS
    good, errors = config.merge(base, {"profile": "mlit", "obs_start_mm": 800,
                                       "obs_stop_mm": 700, "obs_interval_s": 120})
    assert errors == [] and good["obs_interval_s"] == 120
    for key, bad in (("profile", "fast"), ("obs_interval_s", 180), ("obs_interval_s", 60),
                     ("obs_start_mm", 40000), ("obs_stop_mm", 1.5)):
        cfg2, errors = config.merge(good, {key: bad})
        assert len(errors) == 1 and errors[0].startswith(key + ":"), (key, errors)
        assert cfg2[key] == good[key]
    cfg2, errors = config.merge(good, {"obs_stop_mm": 900})
    assert errors == ["obs_stop_mm: above obs_start_mm"] and cfg2["obs_stop_mm"] is None
    assert config.merge(good, {"obs_start_mm": None})[1] == []


# --- profile "mlit", watch mode: a short burst stands only when it decides nothing ---------

def test_a_short_burst_only_in_watch_mode_and_not_on_the_heartbeat():
    c = mlit()
    day = schedule.DAY_S
    assert schedule.watch_burst(c, st(beat_t=1000), 1000 + 600)
    assert not schedule.watch_burst(c, st(beat_t=1000), 1000 + day)  # the heartbeat's wake
    assert not schedule.watch_burst(c, st(beat_t=1000), 999)  # the clock went back
    assert not schedule.watch_burst(c, st(beat_t=1000, obs=True), 1600)  # observing
    assert not schedule.watch_burst(c, st(beat_t=1000, flood=True), 1600)
    assert not schedule.watch_burst(cfg(), st(beat_t=1000), 1600)  # the standard profile


def test_a_burst_stands_only_clear_of_every_level_that_switches_something():
    c = mlit(rise_limit_mm_h=10000)  # start 800; river levels 1000, 1500, 2000, 2500
    s = st(beat_t=0, level=600, t=1000)
    margin = max(schedule.BURST_MARGIN_MM, c["hysteresis_mm"], c["max_dev_mm"])
    assert margin == 50
    assert schedule.burst_stands(c, s, 800 - margin - 1, 1600)
    for level in (800 - margin, 790, 800, 900, None):  # near or past the start, or none
        assert not schedule.burst_stands(c, s, level, 1600), level
    # a wider hysteresis or a noisier site widens the margin
    assert not schedule.burst_stands(mlit(hysteresis_mm=200), s, 650, 1600)
    assert not schedule.burst_stands(mlit(max_dev_mm=120), s, 700, 1600)
    # no start level: the next river level up still counts
    c2 = cfg(profile="mlit", thresholds_mm=[None, 1500, None, None], rise_limit_mm_h=10000)
    assert schedule.obs_levels(c2) == (None, None)
    assert schedule.burst_stands(c2, s, 1400, 1600)
    assert not schedule.burst_stands(c2, s, 1460, 1600)


def test_a_burst_near_where_the_river_level_is_left_does_not_stand():
    # start 1800 above the standby level 1000: watch mode with river level 1 reached
    c = cfg(profile="mlit", obs_start_mm=1800, rise_limit_mm_h=10000, flood_alert=2)
    s = st(beat_t=0, level=1200, t=1000, alert=1)
    assert schedule.burst_stands(c, s, 1200, 1600)
    # river level 1 is left at 1000 - 50 (hysteresis): within 50 mm above it, or below
    for level in (999, 960, 940):
        assert not schedule.burst_stands(c, s, level, 1600), level
    assert schedule.burst_stands(c, s, 1001, 1600)
    assert not schedule.burst_stands(c, s, 1460, 1600)  # near the next river level up


def test_a_burst_that_would_switch_flood_mode_on_does_not_stand():
    c = mlit()  # rise_limit_mm_h 300
    s = st(beat_t=0, level=400, t=1000)
    assert schedule.burst_stands(c, s, 420, 1600)  # 120 mm/h
    assert not schedule.burst_stands(c, s, 460, 1600)  # 360 mm/h: flood mode


def test_watch_window_s_is_checked():
    good, errors = config.merge(config.DEFAULTS, {"watch_window_s": 20})
    assert errors == [] and good["watch_window_s"] == 20
    assert config.DEFAULTS["watch_window_s"] == 3 and config.RANGES["watch_window_s"] == (1, 20)
    for bad, why in ((0, "1..20"), (21, "1..20"), (3.0, "expected integer"),
                     (True, "expected integer")):
        cfg2, errors = config.merge(good, {"watch_window_s": bad})
        assert errors == ["watch_window_s: " + why] and cfg2["watch_window_s"] == 20, bad
