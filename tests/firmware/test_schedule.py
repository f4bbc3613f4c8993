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
