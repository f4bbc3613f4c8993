"""GET /api/time: the time for a station that cannot verify the certificate yet, signed
with its own secret over its nonce (docs/protocol.md)."""

import hashlib
import hmac

from fastapi.testclient import TestClient
from test_provisioning import provision


def test_the_time_is_signed_with_the_device_secret_over_the_nonce(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> None:
    p = provision(app_client, admin)
    nonce = "0123456789abcdef"
    r = app_client.get("/api/time", params={"device": p["device_id"], "nonce": nonce})
    assert r.status_code == 200, r.text
    t = r.json()["server_time"]
    msg = f"MZMT\n{p['device_id']}\n{nonce}\n{t}".encode()
    want = hmac.new(bytes.fromhex(str(p["secret"])), msg, hashlib.sha256).hexdigest()
    assert r.json()["signature"] == want


def test_bad_time_requests_are_4xx(app_client: TestClient, admin: dict[str, str],
                                   station: dict[str, object]) -> None:
    p = provision(app_client, admin)
    for params in ({"device": 999999, "nonce": "0" * 16},  # unknown device
                   {"device": p["device_id"], "nonce": "short"},
                   {"device": p["device_id"], "nonce": "G" * 16},
                   {"device": p["device_id"], "nonce": "0" * 16 + "\x00"},
                   {"device": 2 ** 70, "nonce": "0" * 16},
                   {"device": p["device_id"]}):
        r = app_client.get("/api/time", params=params)
        assert 400 <= r.status_code < 500, (params, r.status_code, r.text)
