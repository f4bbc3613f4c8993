"""The level uncertainty budget (part of `make bench`; `--write` regenerates its table in
docs/firmware.md, "Uncertainty"): for each level sensor and configuration, each error source
in mm and their root sum of squares, so that the "±N cm" in docs/firmware.md is computed, not
written.

Method: every source is a bound (±) on the level error, taken as independent of the others
and combined as the root of the sum of squares. The temperature term uses the firmware's own
speed of sound (firmware/station/processing.py). A bound marked "(unconfirmed)" is inferred
or from a sibling part: shared/reviews/sensors-and-accuracy.md has the sources and the
arithmetic. Nothing here is measured on a built station.

The example station: the ultrasonic face 5 m above the datum over water at 1 m (a 4 m path,
the review's case); a 5 m-span 4-20 mA transducer under 4 m of water (16.8 mA).

Field calibration against the staff gauge (firmware/station/calibration.py: an offset from one
point, the scale from two) removes the fixed errors: the mount or transducer survey and every
scale error (the ultrasonic reference speed, the spec's 0.3 % of range, the loop's gain
terms). What it cannot remove is its own reading: the staff gauge read to its 1 cm marks, and
the station's reading at that moment, whose random terms the calibration inherits."""

import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware"))

from station.cycle import STEP_MS, WINDOW_MS  # noqa: E402
from station.processing import C_REF, speed_of_sound  # noqa: E402

PATH_MM = 4000  # sensor face to water
DEPTH_MM = 4000  # water over the transducer
SPAN_MM = 5000  # the transducer's 16 mA
SHUNT_OHM = 100  # hardware/bom.md
T_AIR = 20.0
LOOP_UA = 4000 + DEPTH_MM * 16000 / SPAN_MM
DOC = ROOT / "docs" / "firmware.md"
BEGIN = "<!-- uncertainty table: bench/uncertainty.py --write -->"
END = "<!-- end of the uncertainty table -->"


def loop_mm(ua: float) -> float:
    """Level error of a loop current error, mm (the span's 16 mA)."""
    return ua * SPAN_MM / 16000


def gain_mm(fraction: float) -> float:
    """Level error of a gain error on the loop current at the example depth."""
    return loop_mm(LOOP_UA * fraction)


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
                  f"±30 mm waves over the MLIT profile's {WINDOW_MS // 1000} s window "
                  f"(cycle.sample_window, a sample each {STEP_MS / 1000:.0f} s): ~5 independent "
                  "wave periods"),
    "adc_esp32": (loop_mm(60000 / SHUNT_OHM),
                  "ESP32 ADC ±60 mV total error at 11 dB (150-2450 mV) after eFuse "
                  "calibration (ESP32 datasheet, ADC calibration results), over the 100 ohm "
                  "shunt; mostly the chip's own offset and gain, which averaging keeps "
                  "(hw/sim.py)"),
    "adc_res": (loop_mm(600 / SHUNT_OHM) / 2, "12-bit ADC, 0.6 mV a step: half a step"),
    "ads_gain": (gain_mm(0.0025),
                 "ADS1115 gain error 0.15 % max (±2.048 V) + 0.1 % PGA gain match at ±4.096 V "
                 "(TI SBAS444, electrical characteristics) of 16.8 mA"),
    "ads_offset": (loop_mm(3 * 125 / SHUNT_OHM),
                   "ADS1115 offset ±3 LSB of 125 uV (SBAS444)"),
    "ads_drift": (gain_mm(40e-6 * 20),
                  "ADS1115 gain drift 40 ppm/K max (SBAS444), 20 K from the calibration's "
                  "temperature"),
    "shunt": (gain_mm(0.001), "100 ohm 0.1 % shunt (hardware/bom.md) of 16.8 mA"),
    "transducer": (0.0025 * SPAN_MM, "transducer ±0.25 % FS (vendor typical, unconfirmed)"),
    "density": (0.003 * DEPTH_MM, "fresh water 0-25 C: 0.3 % of the depth (review §5)"),
    "offset": (10.0, "sensor_offset_mm survey: 10 mm"),
    # after a calibration against the staff gauge
    "spec_fixed": (10.0, "the spec's 10 mm, kept whole: the calibration absorbs its 0.3 % of "
                         "range (a scale) but the datasheet does not say what the 10 mm is"),
    "staff": (5.0, "the staff gauge read to its 1 cm marks (MLIT: 1 cm resolution): ±5 mm"),
    "cal_20s": (30.0 / math.sqrt(5),
                "the station's level at calibration, over the 20 s window (`mizumori device "
                "calibrate`, tools/mizumori_tools/device.py): its waves, which the offset keeps"),
}

CONFIGS = [
    ("A02YYUW as built: compensation undecided, BME280 in the box, 7-sample burst",
     ["spec", "resolution", "ref_speed", "temp_box", "humidity", "mount", "waves_burst"]),
    ("A02YYUW, `us_compensation`/`us_scale` decided on the bench",
     ["spec", "resolution", "ref_bench", "temp_box", "humidity", "mount", "waves_burst"]),
    ("the same, BME280 failed, last temperature (within `temp_hold_s`)",
     ["spec", "resolution", "ref_bench", "temp_stale", "humidity", "mount", "waves_burst"]),
    ("the same, no temperature for longer than `temp_hold_s`",
     ["spec", "resolution", "ref_bench", "no_temp", "humidity", "mount", "waves_burst"]),
    ("A02YYUW decided, probe in the beam's shade, 20 s window (the mlit profile)",
     ["spec", "resolution", "ref_bench", "temp_probe", "humidity", "mount", "waves_20s"]),
    ("the same, calibrated against the staff gauge (each point over the 20 s window)",
     ["spec_fixed", "resolution", "temp_probe", "humidity", "waves_20s", "staff", "cal_20s"]),
    ("JSN-SR04T, BME280 in the box, 7-sample burst",
     ["spec", "jsn_timing", "temp_box", "humidity", "mount", "waves_burst"]),
    ("4–20 mA on the ESP32 ADC (100 Ω shunt), 7-sample burst",
     ["adc_esp32", "adc_res", "shunt", "transducer", "density", "offset", "waves_burst"]),
    ("4–20 mA on the ADS1115 (`loop_converter` `ads1115`, recommended), 7-sample burst",
     ["ads_gain", "ads_offset", "ads_drift", "shunt", "transducer", "density", "offset",
      "waves_burst"]),
    ("the same, calibrated against the staff gauge (each point over the 20 s window)",
     ["ads_drift", "transducer", "density", "waves_burst", "staff", "cal_20s"]),
    ("the same, calibrated, in the mlit profile (20 s window)",
     ["ads_drift", "transducer", "density", "waves_20s", "staff", "cal_20s"]),
]


def rss(names: list[str]) -> float:
    return math.sqrt(sum(S[n][0] ** 2 for n in names))


def table() -> str:
    """The markdown table docs/firmware.md carries between BEGIN and END."""
    rows = ["| configuration | level uncertainty |", "|---|---|"]
    rows += [f"| {title} | ±{rss(names):.0f} mm (±{math.ceil(rss(names) / 10)} cm) |"
             for title, names in CONFIGS]
    return "\n".join(rows) + "\n"


def write_doc() -> None:
    """Replace the table between the markers in docs/firmware.md."""
    text = DOC.read_text()
    head, rest = text.split(BEGIN + "\n", 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + BEGIN + "\n" + table() + END + tail)


def main() -> None:
    print(f"Level uncertainty (bounds combined as root sum of squares; {PATH_MM / 1000:.0f} m "
          f"ultrasonic path at {T_AIR:.0f} C, {DEPTH_MM / 1000:.0f} m of water on a "
          f"{SPAN_MM / 1000:.0f} m transducer)")
    for title, names in CONFIGS:
        print(f"  {title}: ±{rss(names):.0f} mm (±{math.ceil(rss(names) / 10)} cm)")
        for n in sorted(names, key=lambda k: -S[k][0]):
            print(f"      {S[n][0]:6.1f} mm  {n:12s} {S[n][1]}")
    print("  MLIT crisis-gauge target: ±10 mm.")
    if "--write" in sys.argv:
        write_doc()
        print(f"  wrote the table in {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
