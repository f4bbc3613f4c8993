"""Decoder for reading codec v1 (docs/protocol.md), the server's implementation.

Independent of the firmware's; both are held to tests/vectors/codec-v1.json and
codec-v1-quality-digest.json.
"""

import struct
from dataclasses import dataclass, field

FLAG_NAMES = ("no_echo", "out_of_range", "stuck", "jump",
              "sensor_missing", "flood_mode", "queue_dropped", "clock_unsynced")
FAULT_MASK = 0x1F
# The quality record's flags (bits 5-7 reserved: ignored).
QUALITY_NAMES = ("no_temp_correction", "temp_held", "noisy", "loop_over_range",
                 "short_window")
RESET_CAUSES = ("unknown", "power_on", "hard", "wdt", "deepsleep", "soft", "brownout")
QUALITY, DIGEST = 0x14, 0x15
_LENGTHS = {0x11: 11, 0x12: 18, 0x13: 9, QUALITY: 5, DIGEST: 11}
_NAMES = {0x11: "level", 0x12: "full", 0x13: "status", QUALITY: "quality", DIGEST: "digest"}


class CodecError(ValueError):
    def __init__(self, index: int, offset: int, reason: str):
        super().__init__(f"record {index} (byte {offset}): {reason}")
        self.index = index
        self.offset = offset
        self.reason = reason


def names(bits: int, table: tuple[str, ...] = FLAG_NAMES) -> list[str]:
    return [n for i, n in enumerate(table) if bits >> i & 1]


@dataclass
class Record:
    """A decoded record. level/full: a reading; quality: the one before it (`quality` its
    flags, `spread_mm`, `calibration_version`); digest: readings seq - readings + 1 .. seq
    in summary (`level_min_mm` .. `level_max_mm`, the newest `battery_mv`, every `flags`)."""

    type: str
    seq: int = 0  # as sent (24 bits)
    age_s: int = 0
    level_mm: int | None = None
    battery_mv: int | None = None
    flags: int = 0
    temperature_c: float | None = None
    humidity_pct: float | None = None
    pressure_hpa: float | None = None
    rain_mm: float | None = None
    status: dict[str, int | str | None] = field(default_factory=dict)
    quality: int = 0
    spread_mm: int | None = None
    calibration_version: int = 0
    readings: int = 0
    level_min_mm: int | None = None
    level_max_mm: int | None = None

    def fields(self) -> dict[str, object]:
        """The language-neutral form used by the test vectors."""
        if self.type == "status":
            return {"type": "status", **self.status}
        if self.type == "quality":
            return {"type": "quality", "flags": names(self.quality, QUALITY_NAMES),
                    "spread_mm": self.spread_mm,
                    "calibration_version": self.calibration_version}
        if self.type == "digest":
            return {"type": "digest", "seq": self.seq, "readings": self.readings,
                    "level_min_mm": self.level_min_mm, "level_max_mm": self.level_max_mm,
                    "battery_mv": self.battery_mv, "flags": names(self.flags)}
        out: dict[str, object] = {
            "type": self.type, "seq": self.seq, "age_s": self.age_s,
            "level_mm": self.level_mm, "battery_mv": self.battery_mv,
            "flags": names(self.flags),
        }
        if self.type == "full":
            out.update(temperature_c=self.temperature_c, humidity_pct=self.humidity_pct,
                       pressure_hpa=self.pressure_hpa, rain_mm=self.rain_mm)
        return out


def decode(data: bytes) -> list[Record]:
    if not data:
        raise CodecError(0, 0, "empty batch")
    out: list[Record] = []
    i = 0
    while i < len(data):
        index = len(out)
        header = data[i]
        if header >> 4 != 1:
            raise CodecError(index, i, f"unsupported codec version {header >> 4}")
        n = _LENGTHS.get(header)
        if n is None:
            raise CodecError(index, i, f"unknown record type 0x{header:02x}")
        if i + n > len(data):
            raise CodecError(index, i, f"truncated: {len(data) - i} of {n} bytes")
        if header == QUALITY and (not out or out[-1].type not in ("level", "full")):
            raise CodecError(index, i, "record type 0x14 (quality) must follow a level or "
                                       "full record")
        out.append(_record(header, data[i:i + n], index, i))
        i += n
    return out


def _i16(v: int) -> int | None:
    return None if v == -32768 else v


def _record(header: int, b: bytes, index: int, offset: int) -> Record:
    if header == QUALITY:
        quality, spread, cal = struct.unpack(">xBBH", b)
        return Record("quality", quality=quality & (1 << len(QUALITY_NAMES)) - 1,
                      spread_mm=None if spread == 255 else spread, calibration_version=cal)
    if header == DIGEST:
        count, low, high, battery, flags = struct.unpack(">BhhBB", b[4:])
        if count == 0 or (low == -32768) != (high == -32768) or low > high:
            raise CodecError(index, offset, f"digest of {count} readings with levels "
                                            f"{low}..{high}: out of range")
        return Record("digest", seq=int.from_bytes(b[1:4], "big"), readings=count,
                      level_min_mm=_i16(low), level_max_mm=_i16(high),
                      battery_mv=None if battery == 0 else battery * 20, flags=flags)
    if header == 0x13:
        depth, dropped, cfg, cause, rssi = struct.unpack(">xHHHBb", b)
        return Record("status", status={
            "queue_depth": depth, "dropped": dropped, "config_version": cfg,
            "reset_cause": RESET_CAUSES[cause] if cause < len(RESET_CAUSES) else "unknown",
            "rssi_dbm": None if rssi == -128 else rssi})
    seq = int.from_bytes(b[1:4], "big")
    age = int.from_bytes(b[4:7], "big")
    level, battery, flags = struct.unpack(">hBB", b[7:11])
    rec = Record(_NAMES[header], seq=seq, age_s=age, level_mm=_i16(level),
                 battery_mv=None if battery == 0 else battery * 20, flags=flags)
    if header == 0x12:
        t, h, p, r = struct.unpack(">hBHH", b[11:18])
        if h != 255 and h > 200:
            raise CodecError(index, offset, f"humidity {h / 2} % out of range")
        rec.temperature_c = None if t == -32768 else t / 100
        rec.humidity_pct = None if h == 255 else h / 2
        rec.pressure_hpa = None if p == 0 else p / 10
        rec.rain_mm = None if r == 65535 else r / 10
    return rec


def extend_seq(wire: int, last: int) -> int:
    """The 32-bit sequence number nearest `last` whose low 24 bits are `wire`."""
    base = (last & ~0xFFFFFF) | wire
    best = min((base - (1 << 24), base, base + (1 << 24)), key=lambda c: abs(c - last))
    return best if best > 0 else base
