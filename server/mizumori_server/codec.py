"""Decoder for reading codec v1 (docs/protocol.md), the server's implementation.

Independent of the firmware's; both are held to tests/vectors/codec-v1.json.
"""

import struct
from dataclasses import dataclass, field

FLAG_NAMES = ("no_echo", "out_of_range", "stuck", "jump",
              "sensor_missing", "flood_mode", "queue_dropped", "clock_unsynced")
FAULT_MASK = 0x1F
RESET_CAUSES = ("unknown", "power_on", "hard", "wdt", "deepsleep", "soft", "brownout")
_LENGTHS = {0x11: 11, 0x12: 18, 0x13: 9}
_NAMES = {0x11: "level", 0x12: "full", 0x13: "status"}


class CodecError(ValueError):
    def __init__(self, index: int, offset: int, reason: str):
        super().__init__(f"record {index} (byte {offset}): {reason}")
        self.index = index
        self.offset = offset
        self.reason = reason


@dataclass
class Record:
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

    def fields(self) -> dict[str, object]:
        """The language-neutral form used by the test vectors."""
        if self.type == "status":
            return {"type": "status", **self.status}
        out: dict[str, object] = {
            "type": self.type, "seq": self.seq, "age_s": self.age_s,
            "level_mm": self.level_mm, "battery_mv": self.battery_mv,
            "flags": [n for i, n in enumerate(FLAG_NAMES) if self.flags >> i & 1],
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
        out.append(_record(header, data[i:i + n], index, i))
        i += n
    return out


def _record(header: int, b: bytes, index: int, offset: int) -> Record:
    if header == 0x13:
        depth, dropped, cfg, cause, rssi = struct.unpack(">xHHHBb", b)
        return Record("status", status={
            "queue_depth": depth, "dropped": dropped, "config_version": cfg,
            "reset_cause": RESET_CAUSES[cause] if cause < len(RESET_CAUSES) else "unknown",
            "rssi_dbm": None if rssi == -128 else rssi})
    seq = int.from_bytes(b[1:4], "big")
    age = int.from_bytes(b[4:7], "big")
    level, battery, flags = struct.unpack(">hBB", b[7:11])
    rec = Record(_NAMES[header], seq=seq, age_s=age,
                 level_mm=None if level == -32768 else level,
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
