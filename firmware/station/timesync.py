# Learning the time without trusting TLS: after a power loss the clock may be too early for
# the server's certificate (mbedTLS checks its dates), and the server's time comes only in
# replies. This asks /api/time over TLS *without* certificate checks and trusts the answer
# only if it is signed with the device's own key over a fresh nonce: a stranger can neither
# forge it nor replay an old one (docs/protocol.md, "The time without a certificate").
import binascii
import os

from station import hmac_sha256, http


def signed_message(device_id, nonce, t):
    return ("MZMT\n%d\n%s\n%d" % (device_id, nonce, t)).encode()


def fetch(board, creds, feed=None):
    """The server's time (Unix seconds), or None when no authentic answer came."""
    nonce = binascii.hexlify(os.urandom(8)).decode()
    url = "%s/api/time?device=%d&nonce=%s" % (creds["server"], creds["device_id"], nonce)
    try:
        code, _, raw = http.request(board, "GET", url, None, {}, feed=feed, verify=False)
        reply = http.json_body(raw)
        t = int(reply["server_time"])
        sig = str(reply["signature"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    want = hmac_sha256.hexdigest(creds["key"], signed_message(creds["device_id"], nonce, t))
    if code != 200 or sig != want:
        return None
    return t
