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
            beat = now - state["beat_t"] >= DAY_S or now < state["beat_t"]
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
