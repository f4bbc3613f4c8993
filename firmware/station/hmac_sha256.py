# HMAC-SHA256 (RFC 2104) from hashlib.sha256: MicroPython has no hmac module.
import hashlib

_BLOCK = 64


def digest(key, msg):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = bytes(key) + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def hexdigest(key, msg):
    return "".join("%02x" % b for b in digest(key, msg))
