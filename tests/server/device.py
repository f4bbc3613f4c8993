"""A test device: signs uploads exactly as docs/protocol.md says (HMAC-SHA256)."""

import hashlib
import hmac
from typing import Any

import httpx
from station import batch  # noqa: F401 - the firmware's framing, for the tests
from station import codec as fw_codec  # the firmware's encoder (firmware/ is on the path)

codec = fw_codec


class Device:
    def __init__(self, client: httpx.Client, provisioned: dict[str, Any]):
        self.client = client
        self.id = provisioned["device_id"]
        self.secret = bytes.fromhex(provisioned["secret"])
        self.counter = 0

    def headers(self, body: bytes, counter: int | None = None) -> dict[str, str]:
        if counter is None:
            self.counter += 1
            counter = self.counter
        msg = b"MZM1\n" + f"{self.id}\n{counter}\n".encode() + body
        sig = hmac.new(self.secret, msg, hashlib.sha256).hexdigest()
        return {"X-Mizumori-Device": str(self.id), "X-Mizumori-Counter": str(counter),
                "X-Mizumori-Signature": sig, "Content-Type": "application/octet-stream"}

    def send(self, body: bytes, counter: int | None = None) -> httpx.Response:
        return self.client.post("/api/ingest", content=body,
                                headers=self.headers(body, counter))


def reading(seq: int, level_mm: int | None = 1200, age_s: int = 0, flags: int = 0,
            temperature_c: float | None = 18.5) -> bytes:
    return fw_codec.encode_full(seq, age_s, level_mm, 3700, flags, temperature_c, 60.0,
                                1010.0, 0.2)
