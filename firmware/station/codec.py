# Reading codec v1: the bytes a station stores and sends (it only encodes: the server decodes,
# and the tests read a station's records with tests/firmware/records.py). See
# docs/protocol.md. This module is the cycle's: a reading's records and its flags. What the
# radios do with the stored records (their framing, the age, the status record, LoRaWAN's
# digests) is batch.py, so that this goes with the cycle's code.
#
# Every record starts with one header byte: high nibble = codec version (1), low nibble =
# record type. Records have a fixed length per type, so a batch is simply records laid end to
# end. All integers are big-endian (network order, easy to read in a hex dump).
#
#   level  (0x11, 11 bytes): hdr, seq u24, age u24, level i16 mm, battery u8 (20 mV), flags u8
#   full   (0x12, 18 bytes): the level record, then temperature i16 (0.01 C), humidity u8
#                            (0.5 %), pressure u16 (0.1 hPa), rain u16 (0.1 mm since last)
#   status (0x13,  9 bytes): hdr, queue depth u16, dropped u16, config version u16,
#                            reset cause u8, rssi i8 (dBm)
#   quality (0x14, 5 bytes): hdr, quality flags u8, spread u8 (mm), calibration version u16;
#                            only right after the level or full record it qualifies
#   digest (0x15, 11 bytes): hdr, seq u24, readings u8, lowest and highest level i16 mm,
#                            battery u8 (20 mV), flags u8: readings seq-n+1..seq in summary
#
# Absent values use sentinels: level/temperature -32768, battery 0, humidity 255,
# pressure 0, rain 65535, rssi -128, spread 255.
import struct

from station.batch import (
    AGE_MAX,
    FULL,
    LEVEL,
    NO_I16,
    QUALITY,
    battery_byte,
    clamp,
)
from station.batch import SHORT_WINDOW as SHORT_WINDOW  # a quality flag; lean() reads it

# Status flag bits, in wire order.
NO_ECHO = 0x01
OUT_OF_RANGE = 0x02
STUCK = 0x04
JUMP = 0x08
SENSOR_MISSING = 0x10
FLOOD_MODE = 0x20
QUEUE_DROPPED = 0x40
CLOCK_UNSYNCED = 0x80
FLAG_NAMES = (
    "no_echo", "out_of_range", "stuck", "jump",
    "sensor_missing", "flood_mode", "queue_dropped", "clock_unsynced",
)
FAULTS = NO_ECHO | OUT_OF_RANGE | STUCK | JUMP | SENSOR_MISSING

# Quality flag bits (the quality record's); bits 5-7 are sent as 0 and ignored when read.
NO_TEMP_CORRECTION = 0x01  # an ultrasonic level not corrected for the speed of sound
TEMP_HELD = 0x02  # corrected with the last good temperature (the BME280 gave none)
NOISY = 0x04  # spread over max_dev_mm, or over a quarter of the samples dropped
LOOP_OVER_RANGE = 0x08  # a 4-20 mA sample above 20.5 mA (NAMUR NE 43)
# SHORT_WINDOW = 0x10 (profile "mlit", watch mode: a short burst) is batch.py's, above.
QUALITY_NAMES = ("no_temp_correction", "temp_held", "noisy", "loop_over_range",
                 "short_window")
QUALITY_MASK = 0x1F


def _opt(value, scale, lo, hi, absent):
    # Scale a physical value to its wire integer, or the sentinel when absent.
    if value is None:
        return absent
    return clamp(int(round(value * scale)), lo, hi)


def flags_to_names(flags, names=FLAG_NAMES):
    return [names[i] for i in range(len(names)) if flags & (1 << i)]


def flags_from_names(names, table=FLAG_NAMES):
    flags = 0
    for n in names:
        flags |= 1 << table.index(n)
    return flags


def encode_level(seq, age_s, level_mm, battery_mv, flags):
    """The 11-byte record. level_mm/battery_mv may be None."""
    lv = NO_I16 if level_mm is None else clamp(level_mm, -32767, 32767)
    age = clamp(age_s, 0, AGE_MAX)
    return struct.pack(">BHBHBhBB", LEVEL, (seq >> 8) & 0xFFFF, seq & 0xFF,
                       age >> 8, age & 0xFF, lv, battery_byte(battery_mv), flags & 0xFF)


def encode_full(seq, age_s, level_mm, battery_mv, flags,
                temperature_c, humidity_pct, pressure_hpa, rain_mm):
    """The 18-byte record: the level record plus the environment."""
    head = encode_level(seq, age_s, level_mm, battery_mv, flags)
    tail = struct.pack(">hBHH",
                       _opt(temperature_c, 100, -32767, 32767, NO_I16),
                       _opt(humidity_pct, 2, 0, 200, 255),
                       _opt(pressure_hpa, 10, 1, 65535, 0),
                       _opt(rain_mm, 10, 0, 65534, 65535))
    return bytes([FULL]) + head[1:] + tail


def encode_quality(quality, spread_mm, cal_version):
    """The 5-byte quality record that follows a reading's: QUALITY_NAMES bits, the burst's
    spread (1.4826 x MAD, mm; None: no level) and the calibration version (low 16 bits)."""
    spread = 255 if spread_mm is None else clamp(spread_mm, 0, 254)
    return struct.pack(">BBBH", QUALITY, quality & QUALITY_MASK, spread, cal_version & 0xFFFF)
