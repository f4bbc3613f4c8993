# Signed requests to the fleet server (docs/protocol.md, "Authenticating an upload"): the
# counter, spent once and saved first; the HMAC headers; the POST. And the OTA report, the
# one signed request besides the upload: it comes after the upload's code is let go (app.
# update), so it needs only this module, HMAC and http, not the uplink, Wi-Fi and batches
# (docs/firmware.md, RAM budget).
import json

from station import hmac_sha256, http
from station import state as state_mod


def signed_headers(creds, counter, body):
    head = ("MZM1\n%d\n%d\n" % (creds["device_id"], counter)).encode()
    return {
        "X-Mizumori-Device": str(creds["device_id"]),
        "X-Mizumori-Counter": str(counter),
        "X-Mizumori-Signature": hmac_sha256.hexdigest(creds["key"], head, body),
        "Content-Type": "application/octet-stream",
    }


def post_signed(board, creds, state, path, body, content_type="application/octet-stream",
                feed=None, conn=None):
    """POST body to the server, signed with the next counter: (status, reply dict). conn: an
    http.Connection kept open for the wake's next requests, else one just for this one."""
    state["counter"] += 1
    state_mod.save(board, state)  # a counter is spent once, even if a reset follows
    headers = signed_headers(creds, state["counter"], body)
    headers["Content-Type"] = content_type
    url = creds["server"] + path
    if conn is None:
        code, _, raw = http.post(board, url, body, headers, ca_file=creds.get("ca"), feed=feed)
    else:
        code, _, raw = conn.request("POST", url, body, headers)
    reply = http.json_body(raw)
    return code, reply if isinstance(reply, dict) else {}


def report_ota(board, creds, state, version, slot, events, feed=None):
    """Tell the server the running version, the update events queued since the last report,
    why the board last reset and the last error. True when it took them; then the state
    says they were told."""
    body = json.dumps({"version": version, "slot": slot, "events": events,
                       "reset_cause": state["reset"] or "deepsleep",
                       "error": state["err"][:200],
                       "clock": board.time() + board.EPOCH_OFFSET}).encode()
    for _ in range(2):  # a second try after a stale counter
        try:
            code, reply = post_signed(board, creds, state, "/api/ota/report", body,
                                      "application/json", feed)
        except (OSError, MemoryError) as e:
            state["uplink"] = "ota report: %r" % e
            return False
        if code == 401 and reply.get("code") == "stale_counter":
            state["counter"] = int(reply.get("last_counter") or 0)
            continue
        if code != 200:
            state["uplink"] = "ota report: HTTP %d %s" % (code, reply.get("detail", ""))
            return False
        state["fw_reported"] = version
        state["err_reported"] = state["err"]
        state["carry"] = ""  # told (state.note_after)
        state["reset"] = ""  # told: the next report says "deepsleep" until another reset
        return True
    return False


