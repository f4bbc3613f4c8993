# When to wake next and when to upload: slow in normal times, fast when water is high or
# rising fast, decided on the device so it reacts even while the network is down.
# Times are integer seconds; levels integer millimetres.


def alert_level(level_mm, thresholds, prev, hysteresis_mm):
    """0..4: how many of the four river levels (standby, caution, evacuation decision,
    danger) the water has reached. Falling back below a level needs hysteresis_mm margin."""
    if level_mm is None:
        return prev
    now = 0
    for i in range(4):
        t = thresholds[i]
        if t is not None and level_mm >= t:
            now = i + 1
    for k in range(prev, now, -1):
        t = thresholds[k - 1]
        if t is not None and level_mm > t - hysteresis_mm:
            return k
    return now


MIN_RATE_S = 60  # a rate over less time is sensor noise (a reboot seconds after a reading)


def rise_mm_per_h(prev_level, prev_t, level, t):
    if prev_level is None or level is None or prev_t is None or t - prev_t < MIN_RATE_S:
        return None
    return (level - prev_level) * 3600 // (t - prev_t)


DAY_S = 86400
WATCH_MAX_S = 600  # profile "mlit", watch mode: a reading every 10 minutes at most


def obs_levels(cfg):
    """(start, stop) of observation mode in mm, profile "mlit": obs_start_mm (else the
    standby river level) and obs_stop_mm (else start - hysteresis_mm); (None, None) when
    no start level is set (watch mode only, flood mode still on top)."""
    start = cfg["obs_start_mm"]
    if start is None:
        start = cfg["thresholds_mm"][0]
    if start is None:
        return None, None
    stop = cfg["obs_stop_mm"]
    if stop is None or stop > start:
        stop = start - cfg["hysteresis_mm"]
    return start, stop


def observing(cfg, level_mm, was):
    """Observation mode from the start level up; back to watch mode only below the stop
    level (hysteresis). No level: the mode stays."""
    start, stop = obs_levels(cfg)
    if start is None:
        return False
    if level_mm is None:
        return was
    return level_mm >= start or (was and level_mm >= stop)


def heartbeat_due(state, now):
    """Profile "mlit", watch mode: a day since the last daily heartbeat, or the clock went
    back before it."""
    return now - state["beat_t"] >= DAY_S or now < state["beat_t"]


# Profile "mlit", watch mode: a wake may take its level from a short burst of
# cfg["watch_window_s"] (cycle.read_level) instead of the standard's 20 s window, but only
# when that level could not have decided anything: it is at least the margin below the
# observation-start level and the next river level up, and as far above where the current
# river level is left. A burst of a few samples does not average the waves (+-30 mm in
# bench/uncertainty.py; the 20 s window brings them to 13 mm), so a burst and a full window
# may fall on either side of a level only when it is within about that of it: the margin is
# BURST_MARGIN_MM, or the hysteresis, or max_dev_mm (the spread a burst may have and not be
# noisy) when that is more.
BURST_MARGIN_MM = 50


def watch_burst(cfg, state, now):
    """Whether this wake may stop at a short burst: profile "mlit" in watch mode (neither
    observing nor in flood mode) and not the daily heartbeat's wake (its reading is a full
    window's). The burst must still stand (burst_stands)."""
    return (cfg["profile"] == "mlit" and not state["obs"] and not state["flood"]
            and not heartbeat_due(state, now))


def burst_stands(cfg, state, level_mm, now, error_mm=0):
    """Whether a watch-mode burst's level may be the wake's reading: clear of every level
    at which the schedule would change the station's mode or river level by the margin
    (BURST_MARGIN_MM), and the schedule's decision on it, and on it error_mm higher (the
    burst mean's uncertainty: a rate of rise just under its limit), changes nothing (no
    river level, flood mode from the rate of rise, or observation mode). Else the wake
    measures the full window: a mode is always entered on the standard's level."""
    if level_mm is None:
        return False
    hyst = cfg["hysteresis_mm"]
    margin = max(BURST_MARGIN_MM, hyst, cfg["max_dev_mm"])
    alert = state["alert"]
    levels = cfg["thresholds_mm"]
    up = [obs_levels(cfg)[0]]
    for t in levels[alert:]:
        if t is not None:
            up.append(t)  # the next river level up
            break
    for t in up:
        if t is not None and level_mm >= t - margin:
            return False
    if alert and levels[alert - 1] is not None:
        leave = levels[alert - 1] - hyst  # the current river level ends below it
        if level_mm <= leave + margin:
            return False
    for level in (level_mm, level_mm + int(error_mm + 0.5)):
        d = decide(cfg, state, level, now)
        if d["alert"] != alert or d["flood"] or d["obs"]:
            return False
    return True


def decide(cfg, state, level_mm, now, sent=0):
    """The next interval and whether to upload now. Returns a dict; state is not changed.
    sent: the newest reading sent (acknowledged, or gone out over LoRaWAN): in watch mode
    (profile "mlit") uploads go on until the daily heartbeat's readings are out."""
    alert = alert_level(level_mm, cfg["thresholds_mm"], state["alert"], cfg["hysteresis_mm"])
    rate = rise_mm_per_h(state["level"], state["t"], level_mm, now)
    limit = cfg["rise_limit_mm_h"]
    if state["flood"]:
        # Leave flood mode only when below the level and rising at under half the limit.
        flood = alert >= cfg["flood_alert"] or (rate is not None and rate * 2 >= limit)
    else:
        flood = alert >= cfg["flood_alert"] or (rate is not None and rate >= limit)
    changed = alert != state["alert"] or flood != state["flood"]
    mode = "standard"
    obs = False
    beat = False
    if cfg["profile"] == "mlit":
        obs = observing(cfg, level_mm, state["obs"])
        changed = changed or obs != state["obs"]
        mode = "observation" if obs else "watch"
        if flood:
            interval = cfg["interval_flood_s"]
            upload = True
        elif obs:
            interval = cfg["obs_interval_s"]
            upload = True
        else:
            # Watch mode: store, send nothing but the daily heartbeat (the day's readings,
            # over as many wakes as the transport needs) and the news of a change.
            interval = min(cfg["interval_normal_s"], WATCH_MAX_S)
            beat = heartbeat_due(state, now)
            upload = beat or changed or sent < state["beat_seq"]
    else:
        interval = cfg["interval_flood_s"] if flood else cfg["interval_normal_s"]
        every = 1 if flood else cfg["upload_every"]
        upload = state["since_upload"] + 1 >= every or changed
    return {
        "alert": alert,
        "flood": flood,
        "obs": obs,
        "mode": mode,
        "heartbeat": beat,
        "rate_mm_h": rate,
        "interval_s": interval,
        "upload": upload,
    }
