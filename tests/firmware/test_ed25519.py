# Ed25519 verification and SHA-512 against RFC 8032 (section 7.1) and FIPS 180-2, under
# CPython and the MicroPython unix port.
import binascii

from station import ed25519, sha512

# (public key, message, signature) of RFC 8032's TEST 1, 2, 3 and TEST SHA(abc).
RFC8032 = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
     "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
     "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"),
]


def h(s):
    return binascii.unhexlify(s)


def test_sha512_fips_examples():
    assert sha512.digest(b"abc") == h(RFC8032[3][1])
    two_blocks = b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno" \
                 b"ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
    assert sha512.digest(two_blocks) == h(
        "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
        "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909")
    assert sha512.digest(b"") == h(
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")


def test_rfc8032_vectors_verify():
    for pk, msg, sig in RFC8032:
        assert ed25519.verify(h(pk), h(msg), h(sig)), pk


def test_changed_message_or_signature_fails():
    pk, msg, sig = RFC8032[2]
    assert not ed25519.verify(h(pk), h(msg) + b"\x00", h(sig))
    assert not ed25519.verify(h(pk), b"\xaf\x83", h(sig))
    bad = bytearray(h(sig))
    bad[10] ^= 1  # in R
    assert not ed25519.verify(h(pk), h(msg), bytes(bad))
    bad = bytearray(h(sig))
    bad[40] ^= 1  # in S
    assert not ed25519.verify(h(pk), h(msg), bytes(bad))


def test_wrong_key_fails():
    pk, msg, sig = RFC8032[1]
    assert not ed25519.verify(h(RFC8032[0][0]), h(msg), h(sig))


def test_malformed_inputs_fail():
    pk, msg, sig = RFC8032[1]
    assert not ed25519.verify(h(pk)[:31], h(msg), h(sig))
    assert not ed25519.verify(h(pk), h(msg), h(sig)[:63])
    # S not below the group order L (malleability): S + L must be refused
    s = int.from_bytes(h(sig)[32:], "little") + ed25519.L
    assert not ed25519.verify(h(pk), h(msg), h(sig)[:32] + s.to_bytes(32, "little"))
    # a y that is not on the curve (no square root for x)
    assert not ed25519.verify(b"\x02" + b"\x00" * 31, h(msg), h(sig))
    # y >= p is not a canonical encoding
    assert not ed25519.verify(b"\xff" * 31 + b"\x7f", h(msg), h(sig))


def test_the_constants_are_the_curves():
    # ed25519.py holds them as literals (no pow at import); recompute each from RFC 8032.
    p = 2**255 - 19
    assert ed25519.P == p
    assert ed25519.L == 2**252 + 27742317777372353535851937790883648493
    assert ed25519.D == -121665 * pow(121666, p - 2, p) % p
    assert ed25519.SQRT_M1 == pow(2, (p - 1) // 4, p)
    assert ed25519.SQRT_M1 * ed25519.SQRT_M1 % p == p - 1
    y = 4 * pow(5, p - 2, p) % p
    x = ed25519._recover_x(y, 0)
    assert ed25519.BASE == (x, y, 1, x * y % p)
    # on the curve -x^2 + y^2 = 1 + d x^2 y^2, and of order L
    assert (y * y - x * x - 1 - ed25519.D * x * x * y * y) % p == 0
    assert ed25519._equal(ed25519._double_mul(ed25519.L, ed25519.BASE, 0, ed25519.ZERO),
                          ed25519.ZERO)
