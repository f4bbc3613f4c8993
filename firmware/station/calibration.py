# Field calibration against the staff gauge (量水標): the station's level, corrected as
# level * cal_scale + cal_offset_mm (docs/firmware.md, "Field calibration").
#
# One point (the staff gauge and the station's uncalibrated level, read together) gives the
# offset, keeping the scale; two points at different levels (this one and the last one,
# kept in cal_staff_mm / cal_raw_mm, at least MIN_APART_MM apart) give the scale too. The
# technician's tool (mizumori device calibrate) and the fleet server both compute with this
# module, so a calibration is the same wherever it is entered. Pure integer/float
# arithmetic: runs on the station, under CPython on the server and in the tools.
from station import config, processing

MIN_APART_MM = 300      # two points closer than this give a scale dominated by noise
STAFF_LIMIT_MM = 30000  # levels travel as int16 mm


class CalibrationError(ValueError):
    """A calibration that cannot be made; the message says why, in one line."""


def apply(level_mm, cfg):
    """The calibrated level (mm) of an uncalibrated one (processing.calibrated, which the
    station applies to every level); None stays None."""
    if level_mm is None:
        return None
    return processing.calibrated(level_mm, cfg)


def staff_mm(metres):
    """A staff gauge reading in metres (a number or its text) as mm; CalibrationError when it
    is not a number or is outside what a level can be."""
    try:
        m = float(metres)
    except (TypeError, ValueError):
        raise CalibrationError("the staff gauge reading must be a number of metres, "
                               "e.g. 1.23 (got %r)" % (metres,))
    if m != m or not -STAFF_LIMIT_MM <= m * 1000 <= STAFF_LIMIT_MM:
        raise CalibrationError("the staff gauge reading %s m is outside -30..30 m" % metres)
    mm = m * 1000
    return int(mm + 0.5) if mm >= 0 else -int(-mm + 0.5)


def _checked(settings):
    for key in ("cal_offset_mm", "cal_scale", "cal_version", "cal_staff_mm", "cal_raw_mm"):
        problem = config._check(key, settings[key])
        if problem:
            raise CalibrationError("%s %s would be outside %s: check the staff gauge reading "
                                   "and the station's mount height" % (key, settings[key],
                                                                        problem))
    return settings


def one_point(staff, raw, cfg, version=None):
    """The settings for an offset calibration: staff gauge `staff` mm read when the station
    measured `raw` mm (uncalibrated); the scale stays. version: the new cal_version
    (default: the station's + 1)."""
    scale = cfg.get("cal_scale", 1.0)
    offset = staff - raw * scale
    offset = int(offset + 0.5) if offset >= 0 else -int(-offset + 0.5)
    return _checked({"cal_offset_mm": offset, "cal_scale": scale,
                     "cal_version": cfg.get("cal_version", 0) + 1 if version is None
                     else version, "cal_staff_mm": staff, "cal_raw_mm": raw})


def two_point(staff, raw, cfg, version=None):
    """The settings for an offset and scale calibration from this point and the last one
    (cfg's cal_staff_mm / cal_raw_mm, set by the last calibration)."""
    if cfg.get("cal_version", 0) <= 0:
        raise CalibrationError("no earlier calibration point on this station: calibrate the "
                               "offset first (one point), then the scale at another level")
    s0, r0 = cfg["cal_staff_mm"], cfg["cal_raw_mm"]
    if abs(staff - s0) < MIN_APART_MM or abs(raw - r0) < MIN_APART_MM:
        raise CalibrationError("the two points are %d mm apart (staff gauge %.2f m and %.2f m):"
                               " a scale needs at least %.1f m between them" % (
                                   abs(staff - s0), s0 / 1000, staff / 1000,
                                   MIN_APART_MM / 1000))
    scale = (staff - s0) / (raw - r0)
    offset = staff - raw * scale
    offset = int(offset + 0.5) if offset >= 0 else -int(-offset + 0.5)
    return _checked({"cal_offset_mm": offset, "cal_scale": scale,
                     "cal_version": cfg.get("cal_version", 0) + 1 if version is None
                     else version, "cal_staff_mm": staff, "cal_raw_mm": raw})


def residual(level_mm, staff):
    """The calibrated level minus the staff gauge (mm): what a check finds."""
    return level_mm - staff
