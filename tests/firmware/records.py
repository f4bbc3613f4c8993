# The records' decoder the firmware tests read a station's output with (under CPython and
# MicroPython). The station only encodes (firmware/station/codec.py, batch.py): its decoder
# stays off the board, where it cost ~2 KB of heap from the cycle to the end of the upload.
# The server decodes with its own codec (server/mizumori_server/codec.py), from the same vectors.
import struct

from station.batch import (
    _LEN,
    DIGEST,
    FULL,
    LEVEL,
    NO_I16,
    QUALITY,
    RESET_CAUSES,
    STATUS,
    VERSION,
    CodecError,
)
from station.codec import QUALITY_NAMES, flags_to_names

_TYPE_NAMES = {LEVEL: "level", FULL: "full", STATUS: "status"}


def _u24(b, i):
    return (b[i] << 16) | (b[i + 1] << 8) | b[i + 2]


def _decode_one(b, i):
    hdr = b[i]
    if hdr >> 4 != VERSION:
        raise CodecError("record %d: unsupported codec version %d" % (i, hdr >> 4))
    n = _LEN.get(hdr)
    if n is None:
        raise CodecError("record %d: unknown record type 0x%02x" % (i, hdr))
    if i + n > len(b):
        raise CodecError("record %d: truncated (%d of %d bytes)" % (i, len(b) - i, n))
    if hdr == QUALITY:
        q, spread, cal = struct.unpack_from(">BBH", b, i + 1)
        return n, {"type": "quality", "flags": flags_to_names(q, QUALITY_NAMES),
                   "spread_mm": None if spread == 255 else spread, "calibration_version": cal}
    if hdr == DIGEST:
        count, lo, hi, bat, flags = struct.unpack_from(">BhhBB", b, i + 4)
        if count == 0 or (lo == NO_I16) != (hi == NO_I16) or lo > hi:
            raise CodecError("record %d: digest of %d readings, levels %d..%d out of range" % (
                i, count, lo, hi))
        return n, {"type": "digest", "seq": _u24(b, i + 1), "readings": count,
                   "level_min_mm": None if lo == NO_I16 else lo,
                   "level_max_mm": None if hi == NO_I16 else hi,
                   "battery_mv": None if bat == 0 else bat * 20,
                   "flags": flags_to_names(flags)}
    if hdr == STATUS:
        depth, dropped, cfg, cause, rssi = struct.unpack_from(">HHHBb", b, i + 1)
        return n, {
            "type": "status", "queue_depth": depth, "dropped": dropped,
            "config_version": cfg,
            "reset_cause": RESET_CAUSES[cause] if cause < len(RESET_CAUSES) else "unknown",
            "rssi_dbm": None if rssi == -128 else rssi,
        }
    lv, bat, flags = struct.unpack_from(">hBB", b, i + 7)
    rec = {
        "type": _TYPE_NAMES[hdr], "seq": _u24(b, i + 1), "age_s": _u24(b, i + 4),
        "level_mm": None if lv == NO_I16 else lv,
        "battery_mv": None if bat == 0 else bat * 20,
        "flags": flags_to_names(flags),
    }
    if hdr == FULL:
        t, h, p, r = struct.unpack_from(">hBHH", b, i + 11)
        if h != 255 and h > 200:
            raise CodecError("record %d: humidity %d out of range" % (i, h))
        rec["temperature_c"] = None if t == NO_I16 else t / 100
        rec["humidity_pct"] = None if h == 255 else h / 2
        rec["pressure_hpa"] = None if p == 0 else p / 10
        rec["rain_mm"] = None if r == 65535 else r / 10
    return n, rec


def decode(data):
    """All records of a batch, in order. Raises CodecError naming the offending offset."""
    b = bytes(data)
    if not b:
        raise CodecError("empty batch")
    out = []
    i = 0
    while i < len(b):
        n, rec = _decode_one(b, i)
        if rec["type"] == "quality" and (not out or out[-1]["type"] not in ("level", "full")):
            raise CodecError("record %d: record type 0x14 (quality) must follow a level or "
                             "full record" % i)
        out.append(rec)
        i += n
    return out
