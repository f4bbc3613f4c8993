# From raw samples to one level in millimetres above the station datum, with fault flags.
import math

from station import codec


def speed_of_sound(temp_c):
    """Speed of sound in dry air, m/s."""
    return 331.3 * math.sqrt(1.0 + temp_c / 273.15)


# Ultrasonic modules convert echo time to distance assuming 20 C air.
C_REF = speed_of_sound(20.0)

# A frozen raw distance is taken for a stuck sensor only when real water could not have
# given it (docs/firmware.md, "Sensors and processing"): the air temperature moved enough
# since the run began that an uncompensated echo would have moved by STUCK_MOVE_MM (3 x the
# 1 mm resolution), or the run has lasted STUCK_DAY_S (a day: the daily temperature cycle,
# inflow and evaporation move any open water by more than a millimetre). Identical readings
# on a still, even day are real: before either, they are not flagged.
STUCK_MOVE_MM = 3
STUCK_DAY_S = 86400
# A burst is noisy when its robust spread (1.4826 x MAD, the SD of normal noise) is over
# cfg["max_dev_mm"] or more than a quarter of its good samples were dropped as outliers.
NOISY_REJECT_PCT = 25


def compensate_mm(distance_mm, temp_c):
    """Distance measured at the reference speed of sound, corrected for the air temperature."""
    if temp_c is None:
        return distance_mm
    return int(distance_mm * speed_of_sound(temp_c) / C_REF + 0.5)


def distance_mm(value, temp_c, cfg):
    """An ultrasonic module's distance as the station uses it: times the station's
    `us_scale`, and corrected for the speed of sound only when the firmware does it
    (`us_compensation` "firmware"; "internal": the module already did, never twice)."""
    factor = cfg["us_scale"]
    if cfg["us_compensation"] == "firmware" and temp_c is not None:
        factor = factor * speed_of_sound(temp_c) / C_REF
    return int(value * factor + 0.5)


def calibrated(level_mm, cfg):
    """The level corrected by the field calibration against the staff gauge
    (station/calibration.py): level * cal_scale + cal_offset_mm, rounded to the mm."""
    scale = cfg["cal_scale"]
    if scale == 1.0:
        return level_mm + cfg["cal_offset_mm"]
    v = level_mm * scale + cfg["cal_offset_mm"]
    return int(v + 0.5) if v >= 0 else -int(-v + 0.5)


def median(values):
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) // 2


def mad(values):
    """Median absolute deviation from the median, mm."""
    med = median(values)
    return median([abs(v - med) for v in values])


def robust_mean(values, max_dev_mm):
    """(value, samples used): the median, outliers beyond max(max_dev, 3*MAD) dropped,
    then the rounded mean of the rest."""
    med = median(values)
    limit = max(max_dev_mm, 3 * mad(values))
    kept = [v for v in values if abs(v - med) <= limit]
    return (sum(kept) + len(kept) // 2) // len(kept), len(kept)


def quality(samples, cfg):
    """(spread mm, samples dropped, noisy) of one burst's good samples: the spread is the
    robust standard deviation, 1.4826 x MAD, rounded (0 for fewer than 2 samples)."""
    if len(samples) < 2:
        return 0, 0, False
    spread = int(1.4826 * mad(samples) + 0.5)
    _, used = robust_mean(samples, cfg["max_dev_mm"])
    dropped = len(samples) - used
    noisy = spread > cfg["max_dev_mm"] or dropped * 100 > NOISY_REJECT_PCT * len(samples)
    return spread, dropped, noisy


def _dominant(fault_counts):
    # The flag that explains most failed samples (sensor missing wins ties: it is the cause).
    best = codec.SENSOR_MISSING
    most = fault_counts.get(best, 0)
    for flag in (codec.NO_ECHO, codec.OUT_OF_RANGE):
        if fault_counts.get(flag, 0) > most:
            best, most = flag, fault_counts[flag]
    return best


def stuck_run(run, kind, samples, value, temp_c, now, cfg):
    """(run, stuck): follow a run of identical bursts and say when it cannot be water.

    run: None or [raw value, bursts, since s, temperature C x 100 or None at its start].
    A burst continues the run only when all its samples equal the run's raw value (zero
    spread within and across bursts). A pressure transducer's ADC always jitters, so
    `stuck_count` identical bursts are enough; an ultrasonic module quantises a still
    surface to the same millimetre, so it also needs STUCK_MOVE_MM of expected movement
    (firmware compensation, both temperatures known) or STUCK_DAY_S of run."""
    if not isinstance(run, list) or len(run) != 4:
        run = None
    frozen = len(samples) > 0 and max(samples) == min(samples)
    if not frozen or run is None or run[0] != value:
        if not frozen:
            return None, False
        return [value, 1, now, None if temp_c is None else int(temp_c * 100)], False
    run = [run[0], run[1] + 1, run[2], run[3]]
    if run[1] < cfg["stuck_count"]:
        return run, False
    if kind != "distance":
        return run, True
    if now - run[2] >= STUCK_DAY_S:
        return run, True
    if cfg["us_compensation"] == "firmware" and temp_c is not None and run[3] is not None:
        moved = value * abs(speed_of_sound(run[3] / 100) / speed_of_sound(temp_c) - 1)
        return run, moved >= STUCK_MOVE_MM
    return run, False


def level_from_samples(kind, samples, fault_counts, temp_c, cfg, prev_level, run=None,
                       now=0):
    """Turn one burst of samples into (level_mm or None, flags, run).

    kind "distance": samples are distances (mm at the reference speed of sound) from a sensor
    mounted cfg["mount_mm"] above the datum. kind "depth": samples are water depths (mm)
    above a pressure sensor sitting cfg["sensor_offset_mm"] above the datum. run: the stuck
    run of the last readings (stuck_run; anything else starts afresh), now its time (s).
    """
    if len(samples) < cfg["min_valid"]:
        return None, _dominant(fault_counts) if fault_counts else codec.NO_ECHO, None
    value, _ = robust_mean(samples, cfg["max_dev_mm"])
    if kind == "distance":
        level = cfg["mount_mm"] - distance_mm(value, temp_c, cfg)
    else:
        level = cfg["sensor_offset_mm"] + value
    level = calibrated(level, cfg)  # the staff gauge calibration (cal_offset_mm, cal_scale)
    flags = 0
    if level < cfg["level_min_mm"] or level > cfg["level_max_mm"]:
        flags |= codec.OUT_OF_RANGE
    if prev_level is not None and abs(level - prev_level) > cfg["max_jump_mm"]:
        flags |= codec.JUMP
    run, stuck = stuck_run(run, kind, samples, value, temp_c, now, cfg)
    if stuck:
        flags |= codec.STUCK
    return level, flags, run
