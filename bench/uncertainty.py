"""The level uncertainty budget (part of `make bench`): for each level sensor and
configuration, each error source in mm and their root sum of squares, so that the "±N cm" in
docs/firmware.md is computed, not written.

Method: every source is a bound (±) on the level error, taken as independent of the others
and combined as the root of the sum of squares. The temperature term uses the firmware's own
speed of sound (firmware/station/processing.py). A bound marked "(unconfirmed)" is inferred
or from a sibling part: shared/reviews/sensors-and-accuracy.md has the sources and the
arithmetic. Nothing here is measured on a built station.

The example station: the ultrasonic face 5 m above the datum over water at 1 m (a 4 m path,
the review's case); a 5 m-span 4-20 mA transducer under 4 m of water."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))

from station.processing import C_REF, speed_of_sound  # noqa: E402

PATH_MM = 4000  # sensor face to water
DEPTH_MM = 4000  # water over the transducer
SPAN_MM = 5000  # the transducer's 16 mA
SHUNT_OHM = 100  # hardware/bom.md
T_AIR = 20.0


def per_kelvin_mm(path_mm: float, t: float = T_AIR) -> float:
    """Level error of a 1 K air temperature error over the path (dc/dT / c)."""
    return path_mm * (speed_of_sound(t + 0.5) - speed_of_sound(t - 0.5)) / speed_of_sound(t)


def uncorrected_mm(path_mm: float, lo: float = -10.0, hi: float = 35.0) -> float:
    """The worst error of a distance not corrected for the speed of sound, lo..hi C."""
    return max(abs(path_mm * (speed_of_sound(t) / C_REF - 1)) for t in (lo, hi))


# name -> (bound mm, source). Each configuration below picks from these.
S = {
    "spec": (10 + 0.003 * PATH_MM,
             "±(10 mm + 0.3 % of range): DYP-A01 manual, the A02's sibling (unconfirmed for "
             "A02 and JSN-SR04T: their pages state no accuracy)"),
    "resolution": (0.5, "1 mm frames / int16 mm on the wire: ±0.5 mm"),
    "jsn_timing": (1.0, "time_pulse_us counts 1 us (0.17 mm); a few us of ESP32 jitter"),
    "temp_box": (per_kelvin_mm(PATH_MM) * math.sqrt(1.0 ** 2 + 2.0 ** 2),
                 "BME280 ±1 K (Bosch datasheet, 0-65 C) and 2 K between the shaded box and "
                 "the air column (review #13): 0.17 %/K of the path"),
    "temp_probe": (per_kelvin_mm(PATH_MM) * math.sqrt(1.0 ** 2 + 0.5 ** 2),
                   "BME280 ±1 K with the probe in the beam's shade, 0.5 K left"),
    "temp_stale": (per_kelvin_mm(PATH_MM) * 5.0,
                   "the last good temperature, up to temp_hold_s (3 h) old: 5 K of a "
                   "day's swing (assumed)"),
    "no_temp": (uncorrected_mm(PATH_MM),
                "no temperature: uncorrected at -10..35 C (docs/firmware.md)"),
    "humidity": (13.0, "humidity ignored: 13 mm at 20 C / 90 % RH over 4 m (Cramer; review "
                       "§4.2)"),
    "ref_speed": (PATH_MM * (1 - 340.0 / C_REF),
                  "A02 compensation undecided: a fixed 340 m/s is -0.94 % (review #7)"),
    "ref_bench": (PATH_MM * 0.001,
                  "us_compensation/us_scale set on the bench: 0.1 % left (a 2 mm tape over "
                  "2 m, hardware/ultrasonic.md)"),
    "mount": (10.0, "mount_mm survey, datum to sensor face: ±5-20 mm (review §4.3), 10 mm"),
    "waves_burst": (30.0, "±30 mm waves, 7 samples in ~1 s: one independent sample (review "
                          "§4.3)"),
    "waves_20s": (30.0 / math.sqrt(5),
                  "±30 mm waves over 20 s at 1 Hz: ~5 independent wave periods (not built)"),
    "adc_esp32": (0.060 / SHUNT_OHM * 1e6 / 16000 * SPAN_MM,
                  "ESP32 ADC ±60 mV at 11 dB after eFuse calibration (ESP32 datasheet via "
                  "the review, secondary) over the 100 ohm shunt"),
    "adc_res": (0.0006 / SHUNT_OHM * 1e6 / 16000 * SPAN_MM / 2,
                "12-bit ADC, 0.6 mV a step: half a step"),
    "transducer": (0.0025 * SPAN_MM, "transducer ±0.25 % FS (vendor typical, unconfirmed)"),
    "density": (0.003 * DEPTH_MM, "fresh water 0-25 C: 0.3 % of the depth (review §5)"),
    "offset": (10.0, "sensor_offset_mm survey: 10 mm"),
}

CONFIGS = [
    ("A02YYUW as built: compensation undecided, BME280 in the box, 7-sample burst",
     ["spec", "resolution", "ref_speed", "temp_box", "humidity", "mount", "waves_burst"]),
    ("A02YYUW, us_compensation/us_scale decided on the bench",
     ["spec", "resolution", "ref_bench", "temp_box", "humidity", "mount", "waves_burst"]),
    ("A02YYUW decided, BME280 failed, last temperature (within temp_hold_s)",
     ["spec", "resolution", "ref_bench", "temp_stale", "humidity", "mount", "waves_burst"]),
    ("A02YYUW decided, no temperature for longer than temp_hold_s",
     ["spec", "resolution", "ref_bench", "no_temp", "humidity", "mount", "waves_burst"]),
    ("A02YYUW decided, probe in the beam's shade, 20 s window (not built)",
     ["spec", "resolution", "ref_bench", "temp_probe", "humidity", "mount", "waves_20s"]),
    ("JSN-SR04T (the firmware times the echo), BME280 in the box, 7-sample burst",
     ["spec", "jsn_timing", "temp_box", "humidity", "mount", "waves_burst"]),
    ("4-20 mA on the ESP32 ADC (100 ohm shunt), 7-sample burst",
     ["adc_esp32", "adc_res", "transducer", "density", "offset", "waves_burst"]),
]


def rss(names: list[str]) -> float:
    return math.sqrt(sum(S[n][0] ** 2 for n in names))


def main() -> None:
    print(f"Level uncertainty (bounds combined as root sum of squares; {PATH_MM / 1000:.0f} m "
          f"ultrasonic path at {T_AIR:.0f} C, {DEPTH_MM / 1000:.0f} m of water on a "
          f"{SPAN_MM / 1000:.0f} m transducer)")
    for title, names in CONFIGS:
        print(f"  {title}: ±{rss(names):.0f} mm (±{math.ceil(rss(names) / 10)} cm)")
        for n in sorted(names, key=lambda k: -S[k][0]):
            print(f"      {S[n][0]:6.1f} mm  {n:12s} {S[n][1]}")
    print("  MLIT crisis-gauge target: ±10 mm. Left after these: a field calibration against "
          "the staff gauge (absorbs spec, mount and scale; not built) and averaging.")


if __name__ == "__main__":
    main()
