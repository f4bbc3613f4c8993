# SHA-512 in pure Python, for Ed25519 signature checks: MicroPython has no sha512 in hashlib.
# Slow but small; checked against hashlib and FIPS 180-2's examples (tests/firmware).
#
# RAM (docs/firmware.md, RAM budget): the 80 round constants are computed from their
# definition at the first digest, into one 640-byte bytes object read a constant at a time,
# not kept as 80 literal integers in the module (each a long integer on a 32-bit build); and
# the message is hashed as it comes (update()), 128 bytes at a time, so a
# signed manifest is never copied or padded in one piece (ed25519.verify reads it from its
# file in small chunks). No list grows while it hashes: a list that grows to 80 items doubles
# its storage to 128 slots (1 KiB contiguous on a 64-bit build), and late in an OTA wake the
# heap may have no such hole: the message schedule is one list of 80 made with the hasher.
import struct

M64 = 0xFFFFFFFFFFFFFFFF
_K = []  # the round constants, 640 bytes, made at the first digest


def _primes(n):
    out = [0] * n
    c = 2
    k = 0
    while k < n:
        if all(c % out[i] for i in range(k)):
            out[k] = c
            k += 1
        c += 1
    return out


def _root_bits(p, k):
    """The first 64 bits of the fractional part of p ** (1/k): integer Newton from above,
    started just over a float estimate (single precision on the ESP32 is close enough)."""
    n = p << (64 * k)
    x = int(p ** (1 / k) * 1.0001 * 2 ** 64) + 1
    while True:
        y = ((k - 1) * x + n // x ** (k - 1)) // k
        if y >= x:
            return x & M64
        x = y


def _constants():
    """(round constants, initial hash) as FIPS 180-4 defines them: the fractional parts of
    the cube roots of the first 80 primes and of the square roots of the first 8."""
    if not _K:
        k = bytearray(640)
        for i, p in enumerate(_primes(80)):
            struct.pack_into(">Q", k, i * 8, _root_bits(p, 3))
        _K.append(k)
    return _K[0], [_root_bits(p, 2) for p in _primes(8)]


def _rotr(x, n):
    return ((x >> n) | (x << (64 - n))) & M64


def _compress(h, k, w, block, at):
    """h after one 128-byte block of block at `at`; w: the message schedule's 80 slots."""
    first = struct.unpack_from(">16Q", block, at)
    for i in range(16):
        w[i] = first[i]
    for i in range(16, 80):
        a = w[i - 15]
        b = w[i - 2]
        s0 = _rotr(a, 1) ^ _rotr(a, 8) ^ (a >> 7)
        s1 = _rotr(b, 19) ^ _rotr(b, 61) ^ (b >> 6)
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M64
    a, b, c, d, e, f, g, hh = h
    for i in range(80):
        t1 = (hh + (_rotr(e, 14) ^ _rotr(e, 18) ^ _rotr(e, 41)) + ((e & f) ^ (~e & g))
              + struct.unpack_from(">Q", k, i * 8)[0] + w[i]) & M64
        t2 = ((_rotr(a, 28) ^ _rotr(a, 34) ^ _rotr(a, 39)) + ((a & b) ^ (a & c) ^ (b & c))) & M64
        hh = g
        g = f
        f = e
        e = (d + t1) & M64
        d = c
        c = b
        b = a
        a = (t1 + t2) & M64
    return [(x + y) & M64 for x, y in zip(h, (a, b, c, d, e, f, g, hh))]


class SHA512:
    """Incremental SHA-512: update() with the message in pieces of any size, then digest()."""

    def __init__(self, data=b""):
        self._k, self._h = _constants()
        self._w = [0] * 80  # the message schedule, reused for every block
        self._buf = b""  # under 128 bytes: the start of the next block
        self._n = 0  # bytes hashed so far
        if data:
            self.update(data)

    def update(self, data):
        n = len(data)
        self._n += n
        at = 0
        if self._buf:
            at = 128 - len(self._buf)
            self._buf += bytes(data[:at])
            if len(self._buf) < 128:
                return
            self._h = _compress(self._h, self._k, self._w, self._buf, 0)
            self._buf = b""
        while n - at >= 128:
            self._h = _compress(self._h, self._k, self._w, data, at)
            at += 128
        if at < n:
            self._buf = bytes(data[at:])

    def digest(self):
        """The 64-byte digest of everything given so far (the object can take no more)."""
        n = self._n
        self.update(b"\x80" + b"\x00" * ((111 - n) % 128) + struct.pack(">QQ", 0, n * 8))
        return struct.pack(">8Q", *self._h)


def digest(data):
    """The 64-byte SHA-512 digest of data (bytes)."""
    return SHA512(data).digest()
