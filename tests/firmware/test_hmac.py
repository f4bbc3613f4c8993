# HMAC-SHA256 against RFC 4231's test cases.
from station import hmac_sha256


def test_rfc4231_case_1():
    assert hmac_sha256.hexdigest(b"\x0b" * 20, b"Hi There") == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")


def test_rfc4231_case_2_short_key():
    assert hmac_sha256.hexdigest(b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_rfc4231_case_6_key_longer_than_a_block():
    msg = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert hmac_sha256.hexdigest(b"\xaa" * 131, msg) == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_a_message_in_parts_signs_as_the_whole():
    msg = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert hmac_sha256.hexdigest(b"\xaa" * 131, msg[:5], msg[5:40], b"", msg[40:]) == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
