# HMAC-SHA256 (RFC 2104) from hashlib.sha256: MicroPython has no hmac module. The message
# comes in parts, hashed one after the other: a signed upload's header and its body (up to
# 4 KB) are never copied into one buffer.
import binascii
import hashlib

_BLOCK = 64


def digest(key, *parts):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    for part in parts:
        inner.update(part)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def hexdigest(key, *parts):
    return binascii.hexlify(digest(key, *parts)).decode()
