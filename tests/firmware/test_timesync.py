# The time without a certificate (station/timesync.py): the reply counts only when it is
# signed with the device's own key over the nonce the station just sent.
import json

from station import hmac_sha256, timesync

KEY = b"k" * 32
CREDS = {"device_id": 7, "key": KEY, "server": "https://fleet.example"}


class Net:
    """A server that signs with `key` (or replays an old nonce) and records the request."""

    def __init__(self, key, t=820000000, nonce=None):
        self.key, self.t, self.nonce = key, t, nonce
        self.sent = b""
        self.verify = "unset"

    def net_connect(self, host, port, timeout_s):
        return self

    def net_tls(self, sock, host, cadata):
        self.verify = cadata
        return self

    def write(self, data):
        self.sent += bytes(data)
        return len(data)

    def _reply(self):
        if self.sent:  # the request is in: the reply, read as a stream (read, readline)
            line = self.sent.split(b"\r\n")[0].decode()
            nonce = self.nonce or line.split("nonce=")[1].split(" ")[0]
            sig = hmac_sha256.hexdigest(self.key, timesync.signed_message(7, nonce, self.t))
            body = json.dumps({"server_time": self.t, "signature": sig}).encode()
            self.sent = b""
            self.out = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        return getattr(self, "out", b"")

    def read(self, n):
        out = self._reply()
        self.out = out[n:]
        return out[:n]

    def readline(self, limit=-1):
        out = self._reply()
        end = out.find(b"\n") + 1 or len(out)
        end = end if limit < 0 else min(end, limit)
        self.out = out[end:]
        return out[:end]

    def close(self):
        pass


def test_a_reply_signed_with_the_device_key_over_its_nonce_sets_the_time():
    net = Net(KEY)
    assert timesync.fetch(net, CREDS) == 820000000
    assert net.verify is None  # TLS without certificate checks: the signature is the proof


def test_a_forged_or_replayed_time_is_refused():
    assert timesync.fetch(Net(b"x" * 32), CREDS) is None  # not the device's key
    assert timesync.fetch(Net(KEY, nonce="00" * 8), CREDS) is None  # an old nonce's answer


def test_no_answer_is_no_time():
    class Down(Net):
        def net_connect(self, host, port, timeout_s):
            raise OSError(113)

    assert timesync.fetch(Down(KEY), CREDS) is None
