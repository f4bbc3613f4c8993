# LoRaWAN uplink through an AT modem (drivers/rak3172.py): join when the module has no
# session (backing off between wakes), then send the queue's oldest unsent readings, as many
# records as the data rate's payload allows, as unconfirmed uplinks. A reading stays in the
# queue after it was sent until the fleet server reports it stored: every few hours one
# uplink asks for that report (REPORT_PORT); the server also asks for a resend when it sees
# a gap. A network time request now and then (every half hour in flood) proves the session
# lives. Config changes arrive as downlinks on port 10. See docs/lorawan.md ("Delivery").
import struct
import time

from station import batch, config
from station.state import reading_time

READINGS_PORT = 1
# "What do you hold?": the oldest seq the station holds and the newest it sent (u24 each),
# then readings as on READINGS_PORT.
REPORT_PORT = 2
CONFIG_PORT = 10
DELIVERY_PORT = 11  # the fleet server's delivery report: kind u8, seq u24
HAVE = 1  # every reading asked about is stored (all below seq): drop them
RESEND = 2  # a gap: send again from seq on
MISSING = 3  # every reading below seq is stored, seq is not: drop those, send again from seq
GIVE_UP = 3  # asked to send the same reading again this often: the server cannot take it
SETUP = 2  # the module settings this firmware writes (a new one sets the module up again)
# AS923 with uplink dwell time (Japan): the largest payload per data rate, MAC commands in
# FOpts included (RegionAS923.h MaxPayloadOfDatarateDwell1AS923). DR0 and DR1 carry nothing
# under the 400 ms dwell limit; RUI3's AT+DR takes 2..5.
MAX_PAYLOAD = (0, 0, 11, 53, 125, 242)
SPREADING = (12, 11, 10, 9, 8, 7, 7)  # DR -> spreading factor (DR6 at 250 kHz)
OVERHEAD = 13  # LoRaWAN bytes around the payload: MHDR, FHDR (7), FPort, MIC (4)
# Settings a config downlink carries (server/mizumori_server/lorawan.py, CONFIG_KEYS).
CONFIG_KEYS = {1: "mount_mm", 2: 0, 3: 1, 4: 2, 5: 3, 6: "hysteresis_mm",
               7: "rise_limit_mm_h", 8: "interval_normal_s", 9: "interval_flood_s",
               10: "upload_every"}  # 2..5: thresholds_mm[0..3]
NO_VALUE = -(1 << 23)
# A delivery report every 6 hours, or sooner once this many readings were sent since the
# last; a session probe (DeviceTimeReq, answered by the network server) as often in normal
# times (4 + 4 downlinks a day: under The Things Network's 10), every half hour in flood,
# when a dead session must be found within the hour. RUI3 keeps AT+TIMEREQ in RAM, while
# AT+LINKCHECK is written to its flash twice per check (service_nvm.c): a link check (signal
# margin, gateways) once a day only.
REPORT_EVERY_S = 6 * 3600
REPORT_READINGS = 96
REPORT_RETRIES = 3  # report requests in a row while none is answered
MAX_FETCHES = 8  # downlinks RUI3 fetches by itself (FPending) that a wake waits for
PROBE_S = (6 * 3600, 1800)  # normal, flood
LINK_CHECK_EVERY = 144  # wakes: about once a day at the normal 10-minute interval
# Sent readings kept for a resend at most this many (a network server that sends no
# downlinks never reports: then the oldest sent ones are let go, as if reported).
RESEND_WINDOW = 192
REJOIN_UNANSWERED = 3  # probes in a row nothing came down for (each unanswered one is
# repeated with the next uplink): the session is dead, join again


def modem(board, pins, feed=None, gauge=None):
    """The board's LoRaWAN module, waiting in the board's time and feeding the watchdog
    through every wait; the ESP32 light-sleeps while the module is certainly silent. gauge:
    the rain gauge whose tips the board counts while awake (drivers/rain.py): its tips in
    those light sleeps, where its IRQ is deaf, are counted as the cycle's are
    (rainwake.nap)."""
    from station.drivers.rak3172 import Rak3172

    def wait(ms):
        board.sleep_ms(ms)
        if feed:
            feed()

    def nap(ms):
        if gauge is None:
            board.lightsleep(ms)
        else:
            from station import rainwake

            rainwake.nap(board, gauge, ms)
        if feed:
            feed()

    uart = board.uart(pins["lora_uart"], 115200, pins["lora_tx"], pins["lora_rx"])
    return Rak3172(uart, wait, board.ticks_ms, board.pin_out(pins["lora_reset"], 1), nap)


def max_payload(dr):
    return MAX_PAYLOAD[dr] if 0 <= dr < len(MAX_PAYLOAD) else 0


def airtime_ms(payload_len, dr):
    """Time on air of an uplink (Semtech's LoRa formula: 8-symbol preamble, explicit
    header, CRC on, coding rate 4/5, low-data-rate optimisation at 16 ms symbols)."""
    sf = SPREADING[dr]
    bw = 250000 if dr == 6 else 125000
    t_sym = (1 << sf) * 1000.0 / bw
    de = 1 if t_sym >= 16 else 0
    bits = 8 * (payload_len + OVERHEAD) - 4 * sf + 28 + 16
    n = 8 + max(-(-bits // (4 * (sf - 2 * de))) * 5, 0)
    return int((8 + 4.25) * t_sym + n * t_sym + 0.999)


def pack(queue, state, now, limit, after=0, digest_upto=0):
    """(payload, seqs): the oldest readings above seq `after` that fit in limit bytes, each
    with its age at sending; full records when they fit, else the 11-byte level record.
    While the server wants acknowledged readings again (state["lora_resend"]: it was
    restored from a backup), they go first, from lora_sent on: oldest first, so no uplink
    starts above a hole the server would ask about again. Readings up to digest_upto (watch
    mode: watch_upto) go as one 11-byte digest instead (batch.digest, DIGEST_MAX at most)."""
    acked_too = bool(state["lora_resend"])
    if acked_too:
        after = state["lora_sent"]
        if after + 1 < queue.oldest():  # let go meanwhile (the retention window moved on)
            _gone(state, after + 1, min(queue.oldest(), queue.acked + 1))
            after = state["lora_sent"] = queue.oldest() - 1
    if digest_upto > after:
        if limit < batch.DIGEST_LEN:
            return b"", []
        upto = min(digest_upto, after + batch.DIGEST_MAX)
        return batch.digest(upto, upto - after, (p[4:] for _, p in queue.each(
            after, upto, acked_too))), [upto]
    parts = []
    seqs = []
    size = 0
    for seq, stored in queue.peek(max(1, limit // batch.LEVEL_LEN), after=after,
                                  acked_too=acked_too):
        rec = batch.with_age(batch.lean(stored[4:]),
                             now - reading_time(stored, seq, state["adj"]))
        if size + len(rec) > limit:
            rec = batch.to_level(rec)
        if size + len(rec) > limit:
            break
        parts.append(rec)
        seqs.append(seq)
        size += len(rec)
    return b"".join(parts), seqs


def apply_downlink(cfg, cfg_path, data, state):
    """A config frame: header (0x80 = more frames follow; the low 7 bits: its index in the
    version's frames), version u16, (key u8, value i24) items. The frames are kept in RTC
    state and applied together with the last one, the version with them: river levels
    moved one by one need not rise, and a config missing a frame (lost while the ESP32
    slept, or cut short) is never taken for the whole version; it is dropped, said, and the
    server sends it again (docs/lorawan.md)."""
    if len(data) < 3 or (len(data) - 3) % 4:
        state["err"] = "lorawan: bad config downlink"
        return cfg
    more, index = data[0] & 0x80, data[0] & 0x7F
    version = struct.unpack(">H", data[1:3])[0]
    pending = state.get("lora_cfg")  # [version, next index, items] of a config still arriving
    if index == 0:
        pending = [version, 0, []]
    elif not pending or pending[0] != version or pending[1] != index:
        state["lora_cfg"] = None
        state["err"] = "lorawan: config %d arrived without frame %d: waiting for it again" % (
            version, (pending[1] if pending and pending[0] == version else 0) + 1)
        return cfg
    items = pending[2] + [[data[i], int.from_bytes(data[i + 1:i + 4], "big")]
                          for i in range(3, len(data), 4)]
    if more:
        state["lora_cfg"] = [version, index + 1, items]
        return cfg
    state["lora_cfg"] = None
    state["lora_status"] = True  # tell the server with the next uplink
    if version == cfg["config_version"]:
        return cfg  # sent again (our report of it was late or lost): nothing to write
    changes = {"config_version": version}
    levels = None
    for key_id, raw in items:
        key = CONFIG_KEYS.get(key_id)
        value = raw - (1 << 24) if raw & 0x800000 else raw
        if key is None:
            state["err"] = "lorawan: unknown config key %d" % key_id
        elif isinstance(key, int):
            levels = levels or list(cfg["thresholds_mm"])
            levels[key] = None if value == NO_VALUE else value
        else:
            changes[key] = value
    if levels:
        changes["thresholds_mm"] = levels
    new, errors = config.merge(cfg, changes)
    config.save(new, cfg_path)
    if errors:
        state["err"] = "config: " + "; ".join(errors)
    return new


def send(modem, board, cfg, cfg_path, creds, state, queue, reset_cause,
         clock_path=None, deadline=None):
    """Send up to cfg["lora_uplinks"] uplinks. True when the link worked (or there was
    nothing to send), False when it failed: the next try backs off. A station whose clock
    is not set asks the network's time with a frame that has room for the request
    (DeviceTimeReq). No join or uplink starts after deadline (board ticks, ms): a failing
    link must not keep the board awake for minutes."""
    from station.drivers.rak3172 import ModemError

    now = board.time()
    if now < state["lora_retry_at"]:
        return False
    lora = creds["lorawan"]
    try:
        if state["lora_setup"] != SETUP:  # since power-on, or set up by older firmware
            if modem.setup(lora["dev_eui"], lora["app_eui"], lora["app_key"], cfg["lora_dr"]):
                state["lora_rejoin"] = True  # new keys: RUI3 keeps the old session
            state["lora_setup"] = SETUP
        else:
            modem.wake()
        if state["lora_rejoin"] or not modem.joined():
            if not modem.join():
                return _fail(state, now, "lorawan: join failed")
            state["lora_rejoin"] = False
            state["lora_unanswered"] = 0
            if state["lora_sent"] > queue.acked:  # asks into the dead session went unheard
                state["lora_report_wait"] = [0, 1]
        if not state["lora_report_at"]:  # the first report and probe after 6 hours
            state["lora_report_at"] = state["lora_probe_at"] = now
        want_link = state["wakes"] % LINK_CHECK_EVERY == 1
        asked_time = probed = reported = False  # once per wake each
        sent = False
        downlinks = []
        for _ in range(cfg["lora_uplinks"]):
            if deadline is not None and time.ticks_diff(deadline, board.ticks_ms()) <= 0:
                state["uplink"] = "radio time for this wake used up"
                break
            dr = modem.data_rate()
            limit = max_payload(dr)
            if not limit:
                return _fail(state, now, "lorawan: DR%d carries no payload (dwell time)" % dr)
            probe = not probed and (state["lora_unanswered"] > 0 or (
                board.time() - state["lora_probe_at"] >= PROBE_S[1 if state["flood"] else 0]))
            want_time = probe or not (state["synced"] or asked_time)
            report = not reported and _report_due(state, queue, board.time())
            # MAC requests ride in FOpts and take a byte each: never into a full frame. A
            # report uplink starts with the oldest seq held and the newest sent (6 bytes).
            room = limit - want_time - want_link - (6 if report else 0)
            after = max(queue.acked, state["lora_sent"])
            payload, seqs = pack(queue, state, board.time(), room, after,
                                 watch_upto(cfg, state, queue))
            # The status record (queue depth, config version) rides along when it fits;
            # alone when the server must learn of an applied config, or to ask the time.
            status = batch.encode_status(queue.depth(), queue.dropped, cfg["config_version"],
                                         batch.cause_code(reset_cause), None)
            with_status = len(payload) + len(status) <= room and (
                seqs or state["lora_status"] or want_time or want_link or report)
            if with_status:
                payload += status
            if report:
                payload = _seq24(queue.acked + 1) + _seq24(state["lora_sent"]) + payload
            if not payload:
                break
            if want_time:
                modem.request_time()
                asked_time = True
            if want_link:
                modem.request_link_check()
                want_link = False
            modem.link = None
            done, downlinks = modem.send(REPORT_PORT if report else READINGS_PORT, payload,
                                         send_timeout_ms(), airtime_ms(len(payload), dr))
            sent = True
            if want_time and done and not state["synced"]:
                t = modem.network_time()
                if t is not None:
                    from station import clock  # the modem's driver has imported it

                    clock.set_from_server(board, state, queue, t, clock_path)
                    state["lora_report_at"] = state["lora_probe_at"] = board.time()
            if not done:
                return _fail(state, now, "lorawan: the module did not finish the uplink")
            if seqs:
                state["lora_sent"] = seqs[-1]
            if report:
                reported = True
                w = state["lora_report_wait"]
                state["lora_report_wait"] = [w[0] + 1 if w else 1, 0]
                state["lora_report_at"] = board.time()
                state["lora_report_seq"] = state["lora_sent"]
            if probe:
                probed = True
                state["lora_probe_at"] = board.time()
                state["lora_unanswered"] += 1
            if downlinks or modem.link is not None or modem.time_answered:
                state["lora_unanswered"] = 0  # the network heard us
            if modem.link is not None:
                state["lora_link"] = list(modem.link)
            if state["lora_unanswered"] >= REJOIN_UNANSWERED:
                state["lora_rejoin"] = True  # the network may have lost the session
            cfg = _apply_all(cfg, cfg_path, downlinks, state, queue)
            if state["lora_report_wait"] and not report and state["lora_report_at"] < now:
                # an uplink of a later wake brought no answer: the ask or the answer was lost
                state["lora_report_wait"][1] += 1
            _keep_window(state, queue)
            if with_status and not downlinks:
                state["lora_status"] = False
            state["lora_backoff_s"] = 0
            state["since_upload"] = 0
            state["uplink"] = ""
        # More may wait (FPending): RUI3 fetches each with an uplink of its own right after
        # the one before (McpsIndication); take them all before sleeping (a five-frame
        # config would otherwise come down while the ESP32 sleeps: lost, and AT+RECV keeps
        # only the last frame).
        fetching = bool(downlinks)
        for _ in range(MAX_FETCHES):
            if not fetching or (deadline is not None and
                                time.ticks_diff(deadline, board.ticks_ms()) <= 0):
                break
            downlinks = modem.collect()  # None: RUI3 sent no uplink of its own (no FPending)
            fetching = downlinks is not None
            cfg = _apply_all(cfg, cfg_path, downlinks or [], state, queue)
        if sent:  # a downlink whose event was lost (RUI3 keeps the last one: AT+RECV)
            last = modem.last_downlink()
            if last and last[0] == CONFIG_PORT and _version(last[1]) != cfg["config_version"]:
                cfg = _apply_all(cfg, cfg_path, [last], state, queue)
        state["lora_silent"] = 0
        return True
    except ModemError as e:
        if e.status == "no reply":
            state["lora_silent"] += 1
            if state["lora_silent"] >= 2 and modem.reset():  # a hung module (RUI-943/1044)
                state["lora_silent"] = 0
                state["lora_rejoin"] = True
        if e.status not in ("AT_BUSY_ERROR", "AT_ERROR"):
            state["lora_setup"] = 0  # check the module's settings again next time
        return _fail(state, now, "lorawan: %s" % e)


def watch_upto(cfg, state, queue):
    """Profile "mlit" in watch mode: the readings up to this seq go as one digest
    (docs/protocol.md) - all of them for the daily heartbeat (until its reading is out), all
    but the newest for the news of a change (the newest goes as itself); 0 otherwise."""
    if cfg["profile"] != "mlit" or state["obs"] or state["flood"]:
        return 0
    newest = queue.next_seq - 1
    return newest if max(queue.acked, state["lora_sent"]) < state["beat_seq"] else newest - 1


def _report_due(state, queue, now):
    """Ask for a delivery report: sent readings wait for one, and the last ask is 6 hours
    old, or many readings were sent since, or the last ask was not answered. The answer
    comes with the next uplink (class A); when that brought none, the ask or its answer was
    lost: ask again now, not 6 hours later (a server that cannot send downlinks never
    answers, so at most REPORT_RETRIES asks in a row)."""
    w = state["lora_report_wait"]
    return state["lora_sent"] > queue.acked and (
        (w and len(w) == 2 and w[1] and w[0] < REPORT_RETRIES)
        or now - state["lora_report_at"] >= REPORT_EVERY_S
        or state["lora_sent"] - state["lora_report_seq"] >= REPORT_READINGS)


def _keep_window(state, queue):
    """Let go of sent readings beyond the resend window (nobody reported them), unless the
    session may be dead (a probe went unanswered): then they were never heard. (They stay
    in flash for queue.keep more, for a server restored from a backup.)"""
    if state["lora_resend"] and state["lora_sent"] >= queue.acked:
        state["lora_resend"] = None  # everything asked again went
    if not state["lora_unanswered"] and state["lora_sent"] - queue.acked > RESEND_WINDOW:
        queue.ack(state["lora_sent"] - RESEND_WINDOW)


def apply_delivery(data, state, queue):
    """A delivery report. HAVE: every reading below seq is stored: drop them. MISSING: the
    same, and seq is not: send again from it. RESEND: send again from seq. A reading
    acknowledged before and still in flash goes again too (a server restored from a
    backup); one no longer held cannot, and is counted in `gone`. A reading asked for more
    than GIVE_UP times is given up (the server cannot store it: undecodable), counted in
    `poisoned`, never resent for ever."""
    kind = data[0] if len(data) == 4 else 0
    seq = _extend(int.from_bytes(data[1:4], "big"), max(state["lora_sent"], queue.acked)) \
        if kind else 0
    if kind not in (HAVE, RESEND, MISSING) or seq < 1:
        state["err"] = "lorawan: bad delivery report"
        return
    if kind != RESEND:  # the answer to a report request
        state["lora_report_wait"] = None
        queue.ack(seq - 1)
    if kind == HAVE:
        return
    last = state["lora_rewind"]
    times = 1
    if last and last[0] == seq:
        # asked again: counts towards the give-up only once it was sent again since (a late
        # answer and a repeated ask may both come down before the resend)
        times = last[1] + (1 if state["lora_sent"] >= seq else 0)
    state["lora_rewind"] = [seq, times]  # kept after a give-up: asked again, still ignored
    if times > GIVE_UP:
        if seq == queue.acked + 1:
            queue.ack(seq)
            state["poisoned"] += 1
        elif seq <= queue.acked and times == GIVE_UP + 1:
            state["poisoned"] += 1
        return
    if seq <= queue.acked:
        # Acknowledged before: the server lost it (restored from a backup).
        if seq < queue.oldest():
            if times > 1:
                return  # said already; what is held of the range went or is going
            seq = _gone(state, seq, min(queue.oldest(), queue.acked + 1))
            if seq > queue.acked:
                return  # none of them held: the newer ones were stored (the hole's top)
        state["lora_resend"] = seq
    state["lora_sent"] = min(state["lora_sent"], seq - 1)


def _gone(state, first, end):
    """Readings first..end-1 the server asked for again are no longer held: counted in
    `gone`, said in `err`, never silently."""
    state["gone"] += end - first
    state["err"] = "lorawan: readings %d..%d asked again: no longer held" % (first, end - 1)
    return end


def _seq24(seq):
    return bytes(((seq >> 16) & 0xFF, (seq >> 8) & 0xFF, seq & 0xFF))


def _extend(seq24, near):
    """The sequence number nearest `near` whose low 24 bits are seq24."""
    base = (near & ~0xFFFFFF) | seq24
    best = base
    for c in (base - 0x1000000, base + 0x1000000):
        if c > 0 and abs(c - near) < abs(best - near):
            best = c
    return best


def _apply_all(cfg, cfg_path, downlinks, state, queue):
    for port, data in downlinks:
        if port == CONFIG_PORT:
            cfg = apply_downlink(cfg, cfg_path, data, state)
        elif port == DELIVERY_PORT:
            apply_delivery(data, state, queue)
    return cfg


def _version(frame):
    return struct.unpack(">H", frame[1:3])[0] if len(frame) >= 3 and not frame[0] & 0x80 \
        else None


def send_timeout_ms():
    """How long an unconfirmed uplink may take: RUI3 prints TX_DONE when the receive windows
    have closed (McpsConfirm): the airtime, RX1 (up to 5 s on The Things Stack), RX2 a
    second later and its own airtime."""
    return 10000


def _fail(state, now, why):
    state["lora_backoff_s"] = min(max(60, state["lora_backoff_s"] * 2), 3600)
    state["lora_retry_at"] = now + state["lora_backoff_s"]
    state["uplink"] = why
    return False
