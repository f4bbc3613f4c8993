# Store-and-forward queue in flash. See docs/firmware.md ("The queue").
#
# Records go into append-only segment files "s<first seq, 8 hex>" as frames:
#   0xA5, payload length u8, seq u32, payload, CRC-32 u32 (over everything before it)
# A frame cut short by a power cut fails its CRC and is skipped; readers resynchronise on
# the next valid frame. After a damaged tail, appends go to a fresh segment.
#
# "meta" holds (acked seq, next seq, dropped count) and is replaced atomically (temp file +
# rename). It is written on acknowledgement and on drop only, never per reading; on open the
# next sequence number is max(meta, newest segment's name, newest frame + 1), and a segment is
# deleted only after meta
# has recorded a next seq past its records, so a sequence number is never handed out twice.
#
# Acknowledged readings stay for a retention window (`keep`, the newest acknowledged ones) so
# a server restored from a backup can ask for them again (peek(acked_too=True)); a segment
# goes once all its readings are acknowledged and older than the window, or sooner when the
# queue holds more than max_records (unacknowledged readings come first).
import binascii
import struct

from station import fsutil

MAGIC = 0xA5
_HEAD = 6  # magic, length, seq
_META_MAGIC = b"MQ1\x00"
_META = ">4sIII"  # magic, acked, next_seq, dropped; followed by its CRC-32
# Acknowledged readings kept for a resend: 7 days at the 2-minute flood interval (35 days at
# the normal 10 minutes); 37-byte frames (a full record and its quality record), so about
# 186 KB of flash.
KEEP = 5040


def _crc(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def frame(seq, payload):
    if len(payload) > 255:
        raise ValueError("payload over 255 bytes")
    head = bytes([MAGIC, len(payload)]) + struct.pack(">I", seq)
    body = head + bytes(payload)
    return body + struct.pack(">I", _crc(body))


def parse_frames(buf):
    """(frames, skipped bytes): every valid (seq, payload) in buf, skipping damage."""
    out = []
    skipped = 0
    mv = memoryview(buf)
    i = 0
    n = len(buf)
    while i < n:
        if buf[i] == MAGIC and i + _HEAD + 4 <= n:
            end = i + _HEAD + buf[i + 1]
            if end + 4 <= n and _crc(mv[i:end]) == struct.unpack_from(">I", buf, end)[0]:
                out.append((struct.unpack_from(">I", buf, i + 2)[0], bytes(mv[i + _HEAD:end])))
                i = end + 4
                continue
        i += 1
        skipped += 1
    return out, skipped


def _segment_first(name):
    """The first sequence number of a segment file name, or None for anything else."""
    if len(name) != 9 or name[0] != "s":
        return None
    try:
        return int(name[1:], 16)
    except ValueError:
        return None


class FlashQueue:
    def __init__(self, root, max_records=20000, segment_records=64, keep=KEEP):
        self.root = root
        self.max_records = max_records
        self.keep = keep  # acknowledged readings retained (config "queue_keep")
        self.segment_records = segment_records
        self.skipped_bytes = 0  # damaged bytes met since open (power cuts, bit rot)
        fsutil.makedirs(root)
        meta = self._read_meta()
        self.meta_was_valid = meta is not None
        self.acked, self.next_seq, self.dropped = meta or (0, 1, 0)
        self._segs = sorted(s for s in map(_segment_first, fsutil.listdir(root)) if s)
        self._tail_count = 0
        self._tail_clean = True
        self.newest = None  # (seq, payload) of the last record written
        if self._segs:
            # A segment named K exists only once K was handed out: K is a floor even when
            # the cut left that newest segment empty.
            self.next_seq = max(self.next_seq, self._segs[-1])
            frames, skipped = self._read(self._segs[-1])
            if frames:
                self.newest = frames[-1]
            self._tail_count = len(frames)
            self._tail_clean = skipped == 0
            self.skipped_bytes += skipped
            for seq, _ in frames:
                if seq >= self.next_seq:
                    self.next_seq = seq + 1
        # Segments past the retention window go at the next ack: the caller may set `keep`
        # (from the config) after opening.

    # -- public -------------------------------------------------------------------------
    def depth(self):
        """Readings stored and not yet acknowledged (an upper bound if frames were lost)."""
        return self.next_seq - 1 - self.acked

    def oldest(self):
        """The oldest sequence number still held, acknowledged or not (next_seq when the
        queue is empty): what a resend can start from."""
        return self._segs[0] if self._segs else self.next_seq

    def held(self):
        """Readings held in flash, retained acknowledged ones included (an upper bound)."""
        return self.next_seq - self.oldest()

    def append(self, payload):
        """Store one record durably; returns its sequence number."""
        seq = self.next_seq
        if (not self._segs or not self._tail_clean
                or self._tail_count >= self.segment_records):
            self._segs.append(seq)
            self._tail_count = 0
            self._tail_clean = True
        with open(self._path(self._segs[-1]), "ab") as f:
            f.write(frame(seq, payload))
        self.next_seq = seq + 1
        self.newest = (seq, payload)
        self._tail_count += 1
        self._enforce_bound()
        return seq

    def peek(self, max_records, max_bytes=4096, after=0, acked_too=False):
        """The oldest unacknowledged records above seq `after` as (seq, payload), oldest
        first; with acked_too, acknowledged ones still retained too (for a resend)."""
        if not acked_too:
            after = max(after, self.acked)
        out = []
        size = 0
        for i, first in enumerate(self._segs):
            if self._last_seq(i) <= after:
                continue  # wholly at or below `after`: not worth reading
            frames, skipped = self._read(first)
            self.skipped_bytes += skipped
            for seq, payload in frames:
                if seq <= after:
                    continue
                if len(out) >= max_records or size + len(payload) > max_bytes:
                    return out
                out.append((seq, payload))
                size += len(payload)
        return out

    def each(self, after, upto, acked_too=False):
        """(seq, payload) of the records above seq `after` up to `upto`, oldest first, read a
        few at a time (a day of readings summed up for a digest never sits in RAM at once)."""
        while after < upto:
            got = self.peek(16, 4096, after, acked_too)
            for seq, payload in got:
                if seq > upto:
                    return
                yield seq, payload
            if not got:
                return
            after = got[-1][0]

    def ack(self, upto_seq):
        """Everything up to and including upto_seq has reached the server."""
        upto_seq = min(upto_seq, self.next_seq - 1)
        if upto_seq <= self.acked:
            return
        self.acked = upto_seq
        self._write_meta()
        self._prune()

    def start_after(self, seq):
        """Number new readings above seq, the newest the server holds from this device, so
        a board whose flash was erased never reuses a number the server has (it would take
        the reading for a duplicate). Readings stored below it are given up, counted in
        dropped. Returns how many were given up."""
        if self.next_seq > seq:
            return 0
        lost = self.depth()
        self.dropped += lost
        self.acked = seq
        self.next_seq = seq + 1
        self._write_meta()
        self._prune(0)  # numbered below what the server holds: never to be resent
        return lost

    # -- internals ----------------------------------------------------------------------
    def _path(self, first):
        return "%s/s%08x" % (self.root, first)

    def _read(self, first):
        data = fsutil.read_bytes(self._path(first))
        return parse_frames(data) if data else ([], 0)

    def _last_seq(self, idx):
        return self._segs[idx + 1] - 1 if idx + 1 < len(self._segs) else self.next_seq - 1

    def _prune(self, keep=None):
        # Delete segments whose every record is acknowledged (meta already says so) and
        # older than the newest `keep` acknowledged ones, or held beyond the bound.
        keep = self.keep if keep is None else keep
        while self._segs and self._last_seq(0) <= self.acked and (
                self._last_seq(0) <= self.acked - keep or self.held() > self.max_records):
            fsutil.remove(self._path(self._segs.pop(0)))
        if not self._segs:
            self._tail_count = 0

    def _enforce_bound(self):
        if self.held() > self.max_records:
            self._prune()  # retained readings go first
        while self.depth() > self.max_records and len(self._segs) > 1:
            self.drop_oldest()

    def drop_oldest(self):
        """Give up the oldest segment (queue over its bound, or flash full): its unsent
        readings are counted in dropped, never silent; a retained acknowledged segment
        goes first."""
        if not self._segs:
            return
        last = self._last_seq(0)
        self.dropped += max(0, last - max(self.acked, self._segs[0] - 1))
        self.acked = max(self.acked, last)
        self._write_meta()
        fsutil.remove(self._path(self._segs.pop(0)))
        self._prune()

    def _read_meta(self):
        data = fsutil.read_bytes(self.root + "/meta")
        size = struct.calcsize(_META)
        if not data or len(data) != size + 4:
            return None
        if _crc(data[:size]) != struct.unpack_from(">I", data, size)[0]:
            return None
        magic, acked, next_seq, dropped = struct.unpack_from(_META, data)
        if magic != _META_MAGIC or next_seq < 1 or acked >= next_seq:
            return None
        return acked, next_seq, dropped

    def _write_meta(self):
        body = struct.pack(_META, _META_MAGIC, self.acked, self.next_seq, self.dropped)
        fsutil.write_atomic(self.root + "/meta", body + struct.pack(">I", _crc(body)))
