# Reading codec v1: the bytes a station sends (it only encodes: the server decodes, and the
# tests read a station's records with tests/firmware/records.py). See docs/protocol.md.
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

VERSION = 1
LEVEL = 0x11
FULL = 0x12
STATUS = 0x13
QUALITY = 0x14
DIGEST = 0x15

LEVEL_LEN = 11
FULL_LEN = 18
STATUS_LEN = 9
QUALITY_LEN = 5
DIGEST_LEN = 11
DIGEST_MAX = 255  # readings one digest stands for at most
AGE_OFFSET = 4  # bytes 4..6 of level and full records hold the age

SEQ_MASK = 0xFFFFFF
AGE_MAX = 0xFFFFFF  # about 194 days; older readings are sent with this age

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
SHORT_WINDOW = 0x10  # profile "mlit", watch mode: a short burst, not the 20 s window
QUALITY_NAMES = ("no_temp_correction", "temp_held", "noisy", "loop_over_range",
                 "short_window")
QUALITY_MASK = 0x1F

RESET_CAUSES = ("unknown", "power_on", "hard", "wdt", "deepsleep", "soft", "brownout")

_NO_I16 = -32768
_LEN = {LEVEL: LEVEL_LEN, FULL: FULL_LEN, STATUS: STATUS_LEN, QUALITY: QUALITY_LEN,
        DIGEST: DIGEST_LEN}


class CodecError(ValueError):
    pass


def _clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def _opt(value, scale, lo, hi, absent):
    # Scale a physical value to its wire integer, or the sentinel when absent.
    if value is None:
        return absent
    return _clamp(int(round(value * scale)), lo, hi)


def flags_to_names(flags, names=FLAG_NAMES):
    return [names[i] for i in range(len(names)) if flags & (1 << i)]


def flags_from_names(names, table=FLAG_NAMES):
    flags = 0
    for n in names:
        flags |= 1 << table.index(n)
    return flags


def encode_level(seq, age_s, level_mm, battery_mv, flags):
    """The 11-byte record. level_mm/battery_mv may be None."""
    if level_mm is None:
        lv = _NO_I16
    else:
        lv = _clamp(level_mm, -32767, 32767)
    bat = _opt(battery_mv, 0.05, 1, 255, 0)
    age = _clamp(age_s, 0, AGE_MAX)
    return struct.pack(">BHBHBhBB", LEVEL, (seq >> 8) & 0xFFFF, seq & 0xFF,
                       age >> 8, age & 0xFF, lv, bat, flags & 0xFF)


def encode_full(seq, age_s, level_mm, battery_mv, flags,
                temperature_c, humidity_pct, pressure_hpa, rain_mm):
    """The 18-byte record: the level record plus the environment."""
    head = encode_level(seq, age_s, level_mm, battery_mv, flags)
    tail = struct.pack(">hBHH",
                       _opt(temperature_c, 100, -32767, 32767, _NO_I16),
                       _opt(humidity_pct, 2, 0, 200, 255),
                       _opt(pressure_hpa, 10, 1, 65535, 0),
                       _opt(rain_mm, 10, 0, 65534, 65535))
    return bytes([FULL]) + head[1:] + tail


def encode_status(queue_depth, dropped, config_version, reset_cause, rssi_dbm):
    return struct.pack(">BHHHBb", STATUS, _clamp(queue_depth, 0, 65535),
                       _clamp(dropped, 0, 65535), config_version & 0xFFFF,
                       reset_cause & 0xFF, _clamp(-128 if rssi_dbm is None else rssi_dbm,
                                                  -128, 127))


def encode_quality(quality, spread_mm, cal_version):
    """The 5-byte quality record that follows a reading's: QUALITY_NAMES bits, the burst's
    spread (1.4826 x MAD, mm; None: no level) and the calibration version (low 16 bits)."""
    spread = 255 if spread_mm is None else _clamp(spread_mm, 0, 254)
    return struct.pack(">BBBH", QUALITY, quality & QUALITY_MASK, spread, cal_version & 0xFFFF)


def encode_digest(seq, n, low_mm, high_mm, battery_mv, flags):
    """The 11-byte digest of readings seq-n+1..seq: their lowest and highest level (None
    when none had one), the newest battery and every flag any of them had."""
    lo = _NO_I16 if low_mm is None else _clamp(low_mm, -32767, 32767)
    hi = _NO_I16 if high_mm is None else _clamp(high_mm, -32767, 32767)
    return struct.pack(">BHBBhhBB", DIGEST, (seq >> 8) & 0xFFFF, seq & 0xFF,
                       _clamp(n, 1, DIGEST_MAX), lo, hi, _opt(battery_mv, 0.05, 1, 255, 0),
                       flags & 0xFF)


def digest(seq, n, records):
    """The digest standing for readings seq-n+1..seq, from their level or full records
    (oldest first, each maybe followed by its quality record)."""
    lo = hi = None
    bat = flags = 0
    for rec in records:
        lv, b, f = struct.unpack_from(">hBB", rec, 7)
        flags |= f
        bat = b or bat
        if lv != _NO_I16:
            lo = lv if lo is None or lv < lo else lo
            hi = lv if hi is None or lv > hi else hi
    return encode_digest(seq, n, lo, hi, bat * 20 or None, flags)


def lean(record):
    """A stored reading as LoRaWAN sends it: its quality record only when a quality flag
    is set (the spread and calibration version alone do not earn the airtime, nor does
    short_window alone: watch-mode readings go up one by one only as a backlog)."""
    n = _LEN[record[0]]
    if len(record) > n and not record[n + 1] & ~SHORT_WINDOW:
        return bytes(record[:n])
    return bytes(record)


def reading_at(batch, index):
    """Which reading (0 = the first level or full record) record `index` of a batch is, or
    qualifies: what a server's 422 names is a record, what a station gives up is a reading."""
    i = k = 0
    n = -1
    while i < len(batch) and k <= index:
        if batch[i] in (LEVEL, FULL):
            n += 1
        i += _LEN.get(batch[i], len(batch))
        k += 1
    return max(n, 0)


def with_age(record, age_s):
    """A copy of a level or full record (and the quality record after it) with its age set
    (done at transmission)."""
    age = _clamp(age_s, 0, AGE_MAX)
    out = bytearray(record)
    out[AGE_OFFSET] = age >> 16
    out[AGE_OFFSET + 1] = (age >> 8) & 0xFF
    out[AGE_OFFSET + 2] = age & 0xFF
    return bytes(out)


def to_level(record):
    """The 11-byte level record for a full record, its quality record dropped (for small
    LoRaWAN payloads)."""
    if record[0] == LEVEL:
        return bytes(record[:LEVEL_LEN])
    if record[0] != FULL:
        raise CodecError("not a reading record")
    return bytes([LEVEL]) + bytes(record[1:LEVEL_LEN])
