# One wake cycle: sample -> process -> queue -> decide the next interval.
# A faulty sensor gives a flagged reading, never an exception out of here.
import struct
import time

from station import codec, processing, schedule, sensors
from station.drivers import SensorFault
from station.state import reading_time


def _attempt(sensor, good, faults):
    """One reading into good, or its fault counted; False when the sensor is gone."""
    try:
        good.append(sensor.read_mm())
    except SensorFault as e:
        faults[e.flag] = faults.get(e.flag, 0) + 1
        if e.flag == codec.SENSOR_MISSING:
            return False
    return True


def sample(sensor, n, wdt=None):
    """(good samples, {fault flag: count}) from n attempts; stops early if the sensor is gone."""
    good = []
    faults = {}
    for _ in range(n):
        if not _attempt(sensor, good, faults):
            break
        if wdt:
            wdt.feed()
    return good, faults


# Profile "mlit": the level is the mean of at least WINDOW_MS of samples at most STEP_MS
# apart (MLIT crisis-gauge standard), the CPU in light sleep between them and the sensor
# rail on. A read is started READ_MS (or the longest read so far) before its second is up:
# the A02YYUW's processed frames take 100-300 ms (DFRobot SEN0311 wiki). In watch mode a
# wake may stop at a short burst (cfg["watch_window_s"]) when its level decides nothing
# (schedule.burst_stands); its reading is flagged SHORT_WINDOW.
WINDOW_MS = 20000
STEP_MS = 1000
READ_MS = 300
WINDOW_SLACK_MS = 10000  # a sensor that keeps failing ends the window this much later
BURST_SIGMAS = 3  # a burst stands only if its mean 3 standard errors higher decides the same


def sample_window(board, sensor, wdt=None, times=None, burst=None, nap=None):
    """(good samples, {fault flag: count}) over WINDOW_MS: at least WINDOW_MS // STEP_MS + 1
    attempts, each within STEP_MS of the last, light sleep in between; stops early if the
    sensor is gone. times: a list to get each attempt's end (board ticks, ms).
    burst: (ms, stands) to stop at a short burst: once the attempts cover ms as they cover
    WINDOW_MS, stands(good, faults) is asked, once: True ends the window there; False goes
    on to the full window, the burst's samples part of it (one window, not two).
    nap: the light sleep between attempts (the rain gauge's, which counts tips meanwhile;
    else board.lightsleep)."""
    nap = nap or board.lightsleep
    good = []
    faults = {}
    start = board.ticks_ms()
    first = None
    longest = READ_MS
    n = 0
    while True:
        t0 = board.ticks_ms()
        if not _attempt(sensor, good, faults):
            break
        t1 = board.ticks_ms()
        if wdt:
            wdt.feed()
        if times is not None:
            times.append(t1)
        n += 1
        if first is None:
            first = t1
        longest = max(longest, time.ticks_diff(t1, t0))
        if ((n > WINDOW_MS // STEP_MS and time.ticks_diff(t1, first) >= WINDOW_MS)
                or time.ticks_diff(t1, start) >= WINDOW_MS + WINDOW_SLACK_MS):
            break
        if burst is not None and n > burst[0] // STEP_MS \
                and time.ticks_diff(t1, first) >= burst[0]:
            if burst[1](good, faults):
                break
            burst = None
        rest = STEP_MS - longest
        if rest > 0:
            nap(rest)
    return good, faults


def _burst(kind, cfg, state, temp_c, now, short):
    """(ms, stands) for sample_window: this wake's short burst, or None for the full window
    (schedule.watch_burst). The burst is watch_window_s long and has at least min_valid
    samples; it stands when it gave a level with no failed attempt, no fault flag and no
    noise, and that level decides nothing (schedule.burst_stands); short gets a True then."""
    if not schedule.watch_burst(cfg, state, now):
        return None
    ms = max(cfg["watch_window_s"], cfg["min_valid"] - 1) * STEP_MS
    if ms >= WINDOW_MS:
        return None

    def stands(good, faults):
        if faults:
            return False
        level, flags, _ = processing.level_from_samples(
            kind, good, faults, temp_c, cfg, state["level"], state["stuck"], now)
        spread, _, noisy = processing.quality(good, cfg)
        if level is None or flags & codec.FAULTS or noisy:
            return False
        # The burst's mean is uncertain by about spread / sqrt(n): the rate of rise must stay
        # under its limit at three times that above it too (BURST_SIGMAS).
        ok = schedule.burst_stands(cfg, state, level, now,
                                   BURST_SIGMAS * spread / len(good) ** 0.5)
        if ok:
            short.append(True)
        return ok

    return ms, stands


def read_env(board, cfg, pins, notes):
    """(temperature C, humidity %, pressure hPa), each None when unavailable."""
    if not cfg["env_sensor"]:
        return None, None, None
    try:
        return sensors.env_sensor(board, pins).read()
    except SensorFault as e:
        notes.append("env sensor: %s" % e)
        return None, None, None


def level_temperature(cfg, state, temp_c, now, notes):
    """(the air temperature to correct an ultrasonic distance with, or None; quality flags).
    Remembers a good one in state["temp"]. When the BME280 gives none, its last good
    temperature serves for cfg["temp_hold_s"] (TEMP_HELD); after that the level goes
    uncorrected (NO_TEMP_CORRECTION). The wake's notes (state["err"]) say so too."""
    if temp_c is not None:
        state["temp"] = [now, int(temp_c * 100 + (0.5 if temp_c >= 0 else -0.5))]
        return temp_c, 0
    if cfg["level_sensor"] == "current_loop" or cfg["us_compensation"] != "firmware":
        return None, 0  # nothing to correct
    last = state["temp"]
    if isinstance(last, list) and len(last) == 2 and 0 <= now - last[0] <= cfg["temp_hold_s"]:
        notes.append("level corrected with the temperature from %s ago" % _age(now - last[0]))
        return last[1] / 100, codec.TEMP_HELD
    notes.append("no temperature: level not corrected for the speed of sound")
    return None, codec.NO_TEMP_CORRECTION


def _age(s):
    # Whole hours (the note, and so the report to the server, changes at most hourly).
    return "%d h" % ((s + 1800) // 3600) if s >= 1800 else "under 1 h"


def read_level(board, cfg, pins, state, temp_c, notes, wdt, now=0, nap=None):
    """(level mm or None, fault flags, spread mm or None, quality flags: NOISY,
    LOOP_OVER_RANGE, SHORT_WINDOW); updates state["stuck"]."""
    short = []
    try:
        kind, sensor = sensors.level_sensor(board, cfg, pins)
        if cfg["profile"] == "mlit":
            good, faults = sample_window(board, sensor, wdt, None,
                                         _burst(kind, cfg, state, temp_c, now, short), nap)
        else:
            good, faults = sample(sensor, cfg["samples"], wdt)
    except (OSError, ValueError) as e:  # the bus itself could not be opened
        notes.append("level sensor: %r" % e)
        kind, good, faults = "distance", [], {codec.SENSOR_MISSING: 1}
    level, flags, state["stuck"] = processing.level_from_samples(
        kind, good, faults, temp_c, cfg, state["level"], state["stuck"], now)
    if flags & codec.FAULTS:
        notes.append("level flags: %s" % ",".join(codec.flags_to_names(flags)))
    # A loop sample above 20.5 mA is an OUT_OF_RANGE fault of its own; with a level from the
    # others only the quality record tells.
    quality = codec.LOOP_OVER_RANGE if kind == "depth" and faults.get(codec.OUT_OF_RANGE) \
        else 0
    if short:  # a watch-mode burst, not the standard's 20 s window
        quality |= codec.SHORT_WINDOW
    spread = None
    if level is not None:
        spread, dropped, noisy = processing.quality(good, cfg)
        if noisy:
            quality |= codec.NOISY
            notes.append("level noisy: spread %d mm, %d of %d samples dropped" % (
                spread, dropped, len(good)))
    return level, flags, spread, quality


def read_battery(board, cfg, pins, notes):
    try:
        return sensors.battery(board, cfg, pins).read_mv()
    except (OSError, ValueError) as e:
        notes.append("battery: %r" % e)
        return None


def stored_time(payload):
    return struct.unpack_from(">I", payload, 0)[0]


def _nap(board, gauge):
    """The light sleep that counts the rain gauge's tips (rainwake.nap) as a function of ms."""
    from station import rainwake

    def nap(ms):
        rainwake.nap(board, gauge, ms)
    return nap


def run(board, cfg, pins, state, queue, wdt=None, rain_tips=0, gauge=None):
    """Measure, store and decide. Returns a dict describing the reading and the decision.
    gauge: the rain gauge (drivers/rain.py) when its tips are counted by the board: the
    warm-up's and the MLIT window's light sleeps count them too (rainwake.nap)."""
    nap = None if gauge is None else _nap(board, gauge)
    notes = []
    now = board.time()
    newest = None
    if queue.newest is not None:
        newest = reading_time(queue.newest[1], queue.newest[0], state["adj"])
    if newest is not None and now <= newest:
        # The clock went back (power loss resets the RTC, to the same floor each time):
        # never at or before a stored reading.
        now = newest + 1
        board.set_time(now)
        state["synced"] = False
    sensors.rail_on(board, cfg, pins, nap)
    try:
        temp_c, hum, pres = read_env(board, cfg, pins, notes)
        level_temp, temp_quality = level_temperature(cfg, state, temp_c, now, notes)
        level, flags, spread, quality = read_level(board, cfg, pins, state, level_temp, notes,
                                                   wdt, now, nap)
    finally:
        sensors.rail_off(board, pins)  # never left on: it would drain the battery asleep
    battery_mv = read_battery(board, cfg, pins, notes)
    state["rain"] += rain_tips
    rain_mm = state["rain"] * cfg["rain_mm_per_tip"]
    decision = schedule.decide(cfg, state, level, now,
                               max(queue.acked, state["lora_sent"]))
    if decision["flood"]:
        flags |= codec.FLOOD_MODE
    if queue.dropped > state["dropped_seen"]:
        flags |= codec.QUEUE_DROPPED
    if not state["synced"]:
        flags |= codec.CLOCK_UNSYNCED
    if level is not None:  # the temperature flags describe a level's correction
        quality |= temp_quality
    # Every reading is stored with its quality record (5 bytes): over Wi-Fi each reading
    # carries its spread and calibration version; LoRaWAN sends it only with a flag set
    # (batch.lean). docs/protocol.md, "quality".
    record = codec.encode_full(queue.next_seq, 0, level, battery_mv, flags,
                               temp_c, hum, pres, rain_mm) + \
        codec.encode_quality(quality, spread, cfg["cal_version"])
    try:
        seq = queue.append(struct.pack(">I", now) + record)
    except OSError:  # flash full: make room the counted way, then store
        queue.drop_oldest()
        seq = queue.append(struct.pack(">I", now) + record)
    # The reading is stored: only now consume what it carries.
    state["rain"] = 0
    state["dropped_seen"] = queue.dropped
    if level is not None:
        state["level"], state["t"] = level, now
    state["alert"] = decision["alert"]
    state["flood"] = decision["flood"]
    state["obs"] = decision["obs"]
    if decision["heartbeat"]:
        state["beat_t"], state["beat_seq"] = now, seq
    state["since_upload"] += 1
    state["next_wake"] = now + decision["interval_s"]
    # what went wrong in this wake ("" if nothing), after what an earlier one noted too late
    # for its report and the server has not heard yet (state.note_after)
    state["err"] = "; ".join(([state["carry"]] if state["carry"] else []) + notes)
    return {
        "seq": seq, "t": now, "level_mm": level, "flags": flags, "battery_mv": battery_mv,
        "temperature_c": temp_c, "humidity_pct": hum, "pressure_hpa": pres,
        "rain_mm": rain_mm, "notes": notes, "record": record, "spread_mm": spread,
        "quality": quality,
        "alert": decision["alert"], "flood": decision["flood"], "mode": decision["mode"],
        "rate_mm_h": decision["rate_mm_h"], "interval_s": decision["interval_s"],
        "upload": decision["upload"],
    }
