# Wi-Fi uplink: send the queue's oldest readings to the fleet server, oldest first, in bounded
# batches; only what the server acknowledged leaves the queue. See docs/firmware.md ("Uplink")
# and docs/protocol.md ("Authenticating an upload").
# Imported only by a wake that uploads over Wi-Fi; what only some uploads need (a config
# change, learning the time after a refused certificate) is imported where it is used.
import json
import time

from station import batch, fsutil, http, signed, wifi
from station import state as state_mod
from station.state import reading_time

CREDENTIALS = "secrets.json"
UNIX_TO_2000 = 946684800


def load_credentials(path=CREDENTIALS):
    """{"device_id", "secret" (hex), "server" (URL), "ca" (file or null), "wifi": {...},
    "lorawan": {"dev_eui", "app_eui", "app_key"} (hex)}, or None when the station is not
    provisioned."""
    raw = fsutil.read_bytes(path)
    if not raw:
        return None
    try:
        creds = json.loads(raw)
        creds["key"] = bytes.fromhex(creds["secret"])
        int(creds["device_id"])
        return creds
    except (ValueError, KeyError, TypeError):
        return None


def build_body(queue, state, now, status, max_records, max_bytes):
    """(body, seqs): the oldest readings with their ages, then the status record. While the
    server wants acknowledged readings again (state["resend"], after a restore), they come
    first and take up to half the batch when new readings wait, all of it otherwise."""
    picked = pick(queue, state, max_records, max_bytes)
    parts = []
    for seq, payload in picked:
        age = now - reading_time(payload, seq, state["adj"])
        parts.append(batch.with_age(payload[4:], age))
    parts.append(status)
    return b"".join(parts), [s for s, _ in picked]


def pick(queue, state, max_records, max_bytes):
    """The readings of the next batch, oldest first: [(seq, stored payload)]."""
    new = queue.peek(max_records, max_bytes)
    again = state["resend"]
    if not again:
        return new
    if again[0] < queue.oldest():  # let go meanwhile (the retention window moved on)
        again[0] = gone(state, again[0], min(queue.oldest(), again[1] + 1))
    old = [r for r in queue.peek(max_records, max_bytes, again[0] - 1, True)
           if r[0] <= again[1]]
    if not old:  # nothing of that range held any more
        state["resend"] = None
        return new
    n_new = min(len(new), max(max_records - len(old), max_records // 2))
    out = []
    size = 0
    for seq, payload in new[:n_new] + old[:max_records - n_new]:
        if size + len(payload) > max_bytes:
            break
        out.append((seq, payload))
        size += len(payload)
    out.sort()
    return out


def resend_from(state, queue, seq, seqs):
    """The server holds nothing from seq on up to this batch's first reading (it was
    restored from a backup, or lost a transaction): send that range again, from what the
    flash still holds; what it no longer holds is counted in `gone` and said in `err`."""
    upto = queue.acked
    if seqs:
        upto = min(upto, seqs[0] - 1)
    if state["resend"]:
        upto = max(upto, state["resend"][1])
    if seq < 1 or seq > upto:
        return
    start = seq
    if start < queue.oldest():
        start = gone(state, seq, min(queue.oldest(), upto + 1))
    state["resend"] = [start, upto] if start <= upto else None


def gone(state, first, end):
    """Readings first..end-1 the server wants again are no longer held: counted in `gone`
    and said in `err` (reported to the server), never silently. Returns end."""
    state["gone"] += end - first
    state["err"] = ("server asked again for readings %d..%d: no longer held; " % (
        first, end - 1) + state["err"])[:state_mod.MAX_TEXT]
    return end


def _resent(state, seqs):
    """Move the resend on past the readings of a batch the server took (or refused)."""
    again = state["resend"]
    if again:
        done = [s for s in seqs if again[0] <= s <= again[1]]
        if done:
            again[0] = done[-1] + 1
        if again[0] > again[1]:
            state["resend"] = None


def apply_config(cfg, cfg_path, changes, state):
    """Merge the server's config; bad values are refused one by one and reported."""
    from station import config

    new, errors = config.merge(cfg, changes)
    config.save(new, cfg_path)
    if errors:
        state["err"] = "config: " + "; ".join(errors)
    return new


def send(board, cfg, cfg_path, creds, state, queue, reset_cause="deepsleep", feed=None,
         deadline=None, clock_path=None):
    """Drain up to cfg["batches_per_wake"] batches. Returns the server's last reply (a dict:
    ack, time, config, OTA offer), or None when no upload got through. Failures leave the
    queue untouched and back off exponentially. feed() runs through every wait (the
    watchdog); no new request starts after deadline (board ticks, ms). The batches share one
    connection (one TLS handshake), closed at the end."""
    now = board.time()
    if now < state["retry_at"]:
        return None
    if not wifi.connect(board.wifi(), creds.get("wifi"), state, board, feed=feed):
        return _fail(state, now, "wifi: no connection")
    conn = http.Connection(board, creds.get("ca"), feed=feed)
    try:
        return _drain(board, cfg, cfg_path, creds, state, queue, reset_cause, feed, deadline,
                      clock_path, conn, now)
    finally:
        conn.close()


def _drain(board, cfg, cfg_path, creds, state, queue, reset_cause, feed, deadline,
           clock_path, conn, now):
    """send()'s batches over conn."""
    rssi = board.rssi()
    last = None
    limit = cfg["batch_records"]
    learnt_time = False
    for _ in range(cfg["batches_per_wake"] + 1):  # one extra try after a stale counter
        if deadline is not None and time.ticks_diff(deadline, board.ticks_ms()) <= 0:
            state["uplink"] = "radio time for this wake used up"
            return last
        status = batch.encode_status(queue.depth(), queue.dropped, cfg["config_version"],
                                     batch.cause_code(reset_cause), rssi)
        body, seqs = build_body(queue, state, board.time(), status, limit, 4096)
        try:
            code, reply = signed.post_signed(board, creds, state, "/api/ingest", body,
                                             feed=feed, conn=conn)
        except http.CertTimeError as e:
            # The clock is before (or after) the certificate's dates: learn the time from a
            # signed reply that needs no certificate, then try again.
            from station import timesync

            t = None if learnt_time else timesync.fetch(board, creds, feed)
            if t is None:
                return _fail(state, now, "upload: %s (clock %d)" % (e, board.time())) or last
            _set_clock(board, state, queue, t, clock_path)
            learnt_time = True
            continue
        except (OSError, MemoryError) as e:  # MemoryError too: back off, never loop on it
            return _fail(state, now, "upload: %r" % e) or last
        if code == 200:
            last = reply
            if seqs:
                queue.ack(min(_int(reply.get("ack_upto")), seqs[-1]))
            _resent(state, seqs)
            if reply.get("resend_from"):
                resend_from(state, queue, _int(reply["resend_from"]), seqs)
            if reply.get("server_time"):
                _set_clock(board, state, queue, _int(reply["server_time"]), clock_path)
            if isinstance(reply.get("config"), dict):
                cfg = apply_config(cfg, cfg_path, reply["config"], state)
            state["backoff_s"] = 0
            state["since_upload"] = 0
            state["uplink"] = ""
            if not seqs or (queue.depth() == 0 and not state["resend"]):
                break
            continue
        why = reply.get("code", "")
        if code == 401 and why == "stale_counter":  # e.g. after a power loss
            state["counter"] = _int(reply.get("last_counter"))
            continue
        if code == 413 and limit > 1:
            limit //= 2
            continue
        if code == 422 and "record" in reply:
            # The server names a record; a quality record's fault is its reading's.
            bad = batch.reading_at(body, _int(reply["record"]))
            if bad == 0 and seqs:
                # A reading the server cannot decode can never be delivered: give it up,
                # counted and reported, so the queue behind it moves (one sent again was
                # counted when it was given up).
                _resent(state, seqs[:1])
                if seqs[0] > queue.acked:
                    queue.ack(seqs[0])
                    state["poisoned"] += 1
                state["uplink"] = "server refused reading %d: %s" % (seqs[0],
                                                                     reply.get("detail"))
            limit = max(1, bad)
            continue
        return _fail(state, now, "upload: HTTP %d %s" % (code, reply.get("detail", ""))) or last
    return last


def _set_clock(board, state, queue, server_unix, clock_path):
    if state_mod.clock_right(board, state, server_unix):
        return  # every reply has the server's time: clock.py comes in only to set it
    from station import clock

    clock.set_from_server(board, state, queue, server_unix, clock_path)


def _int(v):
    """A number from the server's reply, 0 when it is not one."""
    try:
        return int(v or 0)
    except (ValueError, TypeError):
        return 0


def back_off(state, now, why):
    """No upload until the backoff (60 s doubling to an hour) has passed; why is kept."""
    state["backoff_s"] = min(max(60, state["backoff_s"] * 2), 3600)
    state["retry_at"] = now + state["backoff_s"]
    state["uplink"] = why[:160]


def _fail(state, now, why):
    back_off(state, now, why)
    return None
