# The uplink's pieces that need no server: bodies, ages across clock changes, signing.
# Talking to a real server is tested in tests/server/test_station_e2e.py.
import struct

from station import codec, hmac_sha256, state, uplink
from station.flashqueue import FlashQueue
from support import tempdir


def stored(t, seq):
    return struct.pack(">I", t) + codec.encode_full(seq, 0, 1000 + seq, 3700, 0, 20.0, 50.0,
                                                    1000.0, 0.0)


def test_body_sets_each_age_at_sending_and_ends_with_status():
    q = FlashQueue(tempdir())
    for t in (1000, 1600, 2200):
        q.append(stored(t, q.next_seq))
    st = state.defaults()
    status = codec.encode_status(3, 0, 0, 4, -60)
    body, seqs = uplink.build_body(q, st, 2500, status, 10, 4096)
    recs = codec.decode(body)
    assert seqs == [1, 2, 3]
    assert [r["age_s"] for r in recs[:3]] == [1500, 900, 300]
    assert recs[3]["type"] == "status" and recs[3]["queue_depth"] == 3
    body, seqs = uplink.build_body(q, st, 2500, status, 2, 4096)
    assert seqs == [1, 2]


def test_signature_covers_device_counter_and_body():
    creds = {"device_id": 7, "key": b"k" * 32}
    h = uplink.signed_headers(creds, 42, b"\x11body")
    want = hmac_sha256.hexdigest(b"k" * 32, b"MZM1\n7\n42\n\x11body")
    assert h["X-Mizumori-Signature"] == want and h["X-Mizumori-Counter"] == "42"


def test_credentials_missing_or_broken_mean_not_provisioned():
    d = tempdir()
    assert uplink.load_credentials(d + "/secrets.json") is None
    for bad in (b"{", b'{"device_id": 1}', b'{"device_id": 1, "secret": "zz"}'):
        with open(d + "/secrets.json", "wb") as f:
            f.write(bad)
        assert uplink.load_credentials(d + "/secrets.json") is None
