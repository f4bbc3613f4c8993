# Ed25519 signature verification (RFC 8032, section 5.1.7) in pure Python: MicroPython has no
# signature primitive, and the station must check a release's manifest before installing it.
# Verify only (the station never signs). Points in extended coordinates (X, Y, Z, T) with the
# complete addition formula, so there are no special cases to get wrong.
from station import sha512

# The curve's constants as literals: computing them (pow) at import cost time at every wake.
# tests/firmware/test_ed25519.py recomputes each from its definition.
P = 57896044618658097711785492504343953926634992332820282019728792003956564819949  # 2**255 - 19
# The order of the base point: 2**252 + 27742317777372353535851937790883648493.
L = 7237005577332262213973186563042994240857116359379907606001950938285454250989
# -121665 / 121666 mod P.
D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
# A square root of -1 mod P: 2**((P - 1) / 4).
SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _recover_x(y, sign):
    """x of the point with this y and x's low bit, or None when there is none."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def _decode(b):
    n = int.from_bytes(b, "little")
    y = n & ((1 << 255) - 1)
    x = _recover_x(y, n >> 255)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


# The base point (x, y, 1, x*y): y = 4/5 mod P, x the even root.
BASE = (15112221349535400772501151409588531511454012693041857206046113283949847762202,
        46316835694926478169428394003475163141307993866256225615783033603165251855960, 1,
        46827403850823179245072216630277197565144205554125654976674165829533817101731)
ZERO = (0, 1, 1, 0)


def _double_mul(s, p, k, q):
    """[s]p + [k]q (s, k < L < 2**253) with one shared chain of doublings (Shamir's trick)."""
    pq = _add(p, q)
    r = ZERO
    for i in range(252, -1, -1):  # MicroPython's int has no bit_length
        r = _add(r, r)
        bits = ((s >> i) & 1) | (((k >> i) & 1) << 1)
        if bits == 1:
            r = _add(r, p)
        elif bits == 2:
            r = _add(r, q)
        elif bits == 3:
            r = _add(r, pq)
    return r


def _equal(p, q):
    return ((p[0] * q[2] - q[0] * p[2]) % P == 0
            and (p[1] * q[2] - q[1] * p[2]) % P == 0)


def verify(public, message, signature):
    """True when signature (64 bytes) is public's (32 bytes) signature of message: bytes, or
    a file open for reading in binary (read from where it stands to its end)."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decode(public)
    r = _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    h = sha512.SHA512(signature[:32])
    h.update(public)
    if hasattr(message, "read"):  # a file: hashed a block at a time, never whole in RAM
        buf = bytearray(128)  # SHA-512's block: no large allocation late in the wake
        while True:
            n = message.readinto(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
    else:
        h.update(message)
    k = int.from_bytes(h.digest(), "little") % L
    minus_a = ((P - a[0]) % P, a[1], a[2], (P - a[3]) % P)
    # [S]B - [k]A must be R
    return _equal(_double_mul(s, BASE, k, minus_a), r)
