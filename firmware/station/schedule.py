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


def decide(cfg, state, level_mm, now):
    """The next interval and whether to upload now. Returns a dict; state is not changed."""
    alert = alert_level(level_mm, cfg["thresholds_mm"], state["alert"], cfg["hysteresis_mm"])
    rate = rise_mm_per_h(state["level"], state["t"], level_mm, now)
    limit = cfg["rise_limit_mm_h"]
    if state["flood"]:
        # Leave flood mode only when below the level and rising at under half the limit.
        flood = alert >= cfg["flood_alert"] or (rate is not None and rate * 2 >= limit)
    else:
        flood = alert >= cfg["flood_alert"] or (rate is not None and rate >= limit)
    every = 1 if flood else cfg["upload_every"]
    upload = (state["since_upload"] + 1 >= every or alert != state["alert"]
              or flood != state["flood"])
    return {
        "alert": alert,
        "flood": flood,
        "rate_mm_h": rate,
        "interval_s": cfg["interval_flood_s"] if flood else cfg["interval_normal_s"],
        "upload": upload,
    }
