"""GET /api/time: the server's time for a station whose clock is too far off to verify the
server's certificate (docs/protocol.md, "The time without a certificate"). The station asks
over TLS without checking the certificate, so the reply is signed with its own device secret
over its fresh nonce: nobody else can forge or replay it."""

import hashlib
import hmac
import re
from typing import Annotated

import anyio.to_thread
from fastapi import HTTPException, Query, Request

from mizumori_server import clock
from mizumori_server.inputs import INT32_MAX, bounded_router
from mizumori_server.models import Device

router = bounded_router("/api", "ingest")
NONCE = re.compile(r"^[0-9a-f]{16,64}$")


def signed_message(device_id: int, nonce: str, t: int) -> bytes:
    return f"MZMT\n{device_id}\n{nonce}\n{t}".encode()


@router.get("/time")
async def device_time(
    request: Request,
    device: Annotated[int, Query(ge=1, le=INT32_MAX)],
    nonce: Annotated[str, Query(min_length=16, max_length=64)],
) -> dict[str, int | str]:
    """{"server_time": Unix seconds, "signature": HMAC-SHA256 (device secret) over
    "MZMT\\n<device>\\n<nonce>\\n<server_time>", hex}."""
    if not NONCE.match(nonce):
        raise HTTPException(400, "nonce: 16 to 64 lower-case hex digits")
    app = request.app

    def secret() -> bytes | None:
        with app.state.sessions() as session:
            d = session.get(Device, device)
            return app.state.box.open_cached(d.secret_enc) if d and d.secret_enc else None

    key = await anyio.to_thread.run_sync(secret)
    if key is None:
        raise HTTPException(404, "unknown or unprovisioned device")
    t = clock.now()
    sig = hmac.new(key, signed_message(device, nonce, t), hashlib.sha256).hexdigest()
    return {"server_time": t, "signature": sig}
