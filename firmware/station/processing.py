# From raw samples to one level in millimetres above the station datum, with fault flags.
import math

from station import codec


def speed_of_sound(temp_c):
    """Speed of sound in dry air, m/s."""
    return 331.3 * math.sqrt(1.0 + temp_c / 273.15)


# Ultrasonic modules convert echo time to distance assuming 20 C air.
C_REF = speed_of_sound(20.0)


def compensate_mm(distance_mm, temp_c):
    """Distance measured at the reference speed of sound, corrected for the air temperature."""
    if temp_c is None:
        return distance_mm
    return int(distance_mm * speed_of_sound(temp_c) / C_REF + 0.5)


def median(values):
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) // 2


def robust_mean(values, max_dev_mm):
    """(value, samples used): the median, outliers beyond max(max_dev, 3*MAD) dropped,
    then the rounded mean of the rest."""
    med = median(values)
    mad = median([abs(v - med) for v in values])
    limit = max(max_dev_mm, 3 * mad)
    kept = [v for v in values if abs(v - med) <= limit]
    return (sum(kept) + len(kept) // 2) // len(kept), len(kept)


def _dominant(fault_counts):
    # The flag that explains most failed samples (sensor missing wins ties: it is the cause).
    best = codec.SENSOR_MISSING
    most = fault_counts.get(best, 0)
    for flag in (codec.NO_ECHO, codec.OUT_OF_RANGE):
        if fault_counts.get(flag, 0) > most:
            best, most = flag, fault_counts[flag]
    return best


def level_from_samples(kind, samples, fault_counts, temp_c, cfg, prev_level, stuck_n):
    """Turn one burst of samples into (level_mm or None, flags, stuck_n).

    kind "distance": samples are distances (mm at the reference speed of sound) from a sensor
    mounted cfg["mount_mm"] above the datum. kind "depth": samples are water depths (mm)
    above a pressure sensor sitting cfg["sensor_offset_mm"] above the datum.
    """
    if len(samples) < cfg["min_valid"]:
        return None, _dominant(fault_counts) if fault_counts else codec.NO_ECHO, 0
    value, _ = robust_mean(samples, cfg["max_dev_mm"])
    if kind == "distance":
        level = cfg["mount_mm"] - compensate_mm(value, temp_c)
    else:
        level = cfg["sensor_offset_mm"] + value
    flags = 0
    if level < cfg["level_min_mm"] or level > cfg["level_max_mm"]:
        flags |= codec.OUT_OF_RANGE
    if prev_level is not None and abs(level - prev_level) > cfg["max_jump_mm"]:
        flags |= codec.JUMP
    # A real water surface is never still to the millimetre across a burst and two readings.
    if prev_level == level and max(samples) == min(samples):
        stuck_n += 1
    else:
        stuck_n = 0
    if stuck_n >= cfg["stuck_count"]:
        flags |= codec.STUCK
    return level, flags, stuck_n
