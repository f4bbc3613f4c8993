# What the radios do with stored readings (codec v1, docs/protocol.md): the records' framing
# (types and lengths: a batch is records laid end to end), a reading's age set as it goes
# out, which reading a record of a batch is, the status record, and LoRaWAN's lean records
# and digests. The cycle encodes readings (codec.py); this is what the upload's wake needs,
# so that the encoders and the flag tables are let go with the cycle's code.
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
AGE_MAX = 0xFFFFFF  # about 194 days; older readings are sent with this age
NO_I16 = -32768  # an absent level or temperature
# Quality flag (codec.py has the others, and takes this one from here): profile "mlit",
# watch mode, a short burst, not the 20 s window. lean() lets it pass alone.
SHORT_WINDOW = 0x10

RESET_CAUSES = ("unknown", "power_on", "hard", "wdt", "deepsleep", "soft", "brownout")

_LEN = {LEVEL: LEVEL_LEN, FULL: FULL_LEN, STATUS: STATUS_LEN, QUALITY: QUALITY_LEN,
        DIGEST: DIGEST_LEN}


class CodecError(ValueError):
    pass


def clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def battery_byte(battery_mv):
    """The battery as sent: 20 mV steps, 0 when absent."""
    return 0 if battery_mv is None else clamp(int(round(battery_mv * 0.05)), 1, 255)


def cause_code(name):
    """The reset cause's number in the status record."""
    return RESET_CAUSES.index(name) if name in RESET_CAUSES else 0


def encode_status(queue_depth, dropped, config_version, reset_cause, rssi_dbm):
    return struct.pack(">BHHHBb", STATUS, clamp(queue_depth, 0, 65535),
                       clamp(dropped, 0, 65535), config_version & 0xFFFF,
                       reset_cause & 0xFF, clamp(-128 if rssi_dbm is None else rssi_dbm,
                                                 -128, 127))


def encode_digest(seq, n, low_mm, high_mm, battery_mv, flags):
    """The 11-byte digest of readings seq-n+1..seq: their lowest and highest level (None
    when none had one), the newest battery and every flag any of them had."""
    lo = NO_I16 if low_mm is None else clamp(low_mm, -32767, 32767)
    hi = NO_I16 if high_mm is None else clamp(high_mm, -32767, 32767)
    return struct.pack(">BHBBhhBB", DIGEST, (seq >> 8) & 0xFFFF, seq & 0xFF,
                       clamp(n, 1, DIGEST_MAX), lo, hi, battery_byte(battery_mv),
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
        if lv != NO_I16:
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
    age = clamp(age_s, 0, AGE_MAX)
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
