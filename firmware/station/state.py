# The little state that must survive deep sleep, kept in RTC memory (lost on power loss,
# which is fine: everything durable lives in flash, the clock's in clock.json).
import json

MAX_BYTES = 2048  # RTC user memory on the ESP32 port (machine_rtc.c)
MAX_TEXT = 160  # characters of any message kept here (server replies can be long)


def defaults():
    return {
        "level": None,      # last level, mm
        "t": None,          # its time, s
        "alert": 0,         # river level reached, 0..4
        "flood": False,     # in flood (fast) mode
        "obs": False,       # profile "mlit": in observation mode (else watch mode)
        "beat_t": 0,        # profile "mlit": when the last daily heartbeat upload began
        "beat_seq": 0,      # ... and its reading's seq (watch mode sends up to it)
        "since_upload": 0,  # readings since the last successful upload
        "stuck": None,      # run of identical bursts: [raw mm, bursts, since s, C x 100]
        "temp": None,       # last good air temperature: [time s, C x 100]
        "rain": 0,          # rain tips not yet reported
        "rain_off": False,  # the reed switch stayed closed: rain wake disarmed until the
                            # next scheduled wake
        "rain_count": None,  # the rain counter's reading at the last wake (None: no base)
        "next_wake": 0,     # when the scheduled wake is due (rain wakes sleep on to it)
        "dropped_seen": 0,  # queue drops already flagged on a reading
        "synced": False,    # clock set from the server since power-on
        "adj": [],          # [first seq, end seq, seconds the clock moved] (clock.py)
        "era": 0,           # first seq stored since the clock was last set or lost
        "counter": 0,       # upload counter (the server tells the last one after a loss)
        "backoff_s": 0,     # after failed uploads: wait, doubling up to an hour
        "retry_at": 0,
        "poisoned": 0,      # readings the server refused as undecodable (given up, counted)
        "resend": None,     # [next seq, last seq] the server asked again (restored server)
        "gone": 0,          # readings the server asked again that were no longer held
        "bssid": None,      # Wi-Fi access point and channel of the last connection
        "channel": None,
        "fw_reported": "",  # firmware version the server was last told
        "err_reported": None,  # the last error the server was told (None: report due)
        "reset": "",        # why the board last reset (not a deep-sleep wake)
        "crashes": 0,       # wakes in a row that ended in main.py's crash handler
        "radio_at": 0,      # set while the radio works: a reset then backs off
        "wakes": 0,
        "err": "",          # what went wrong in the last wake, for `info` and the server
        "carry": "",        # noted after a report (note_after): in err until one tells it
        "uplink": "",       # why the last upload failed ("" once one succeeds)
        "lora_setup": 0,  # lorawan.SETUP once the modem's settings were checked (power-on: 0)
        "lora_status": False,  # a config was applied: send a status record
        "lora_backoff_s": 0,  # after a failed join or uplink: wait, doubling up to an hour
        "lora_retry_at": 0,
        "lora_link": None,  # [demod margin dB, gateways] from the last link check
        "lora_rejoin": False,  # join at the next chance (new keys, a session presumed dead)
        "lora_sent": 0,  # the newest reading sent in an uplink (kept until reported stored)
        "lora_report_at": 0,  # when the last uplink asking for a delivery report went out
        "lora_report_seq": 0,  # the newest reading sent by then
        "lora_report_wait": None,  # [asks in a row, uplinks since] while no answer came
        "lora_probe_at": 0,  # when the last session probe (network time request) went out
        "lora_unanswered": 0,  # probes in a row nothing came down for
        "lora_rewind": None,  # [seq, times] the server asked to send again
        "lora_resend": None,  # seq: sending again from lora_sent, below the acked
        "lora_silent": 0,  # wakes in a row the module did not answer (then: reset it)
        "lora_cfg": None,  # [version, next frame, items] of a config downlink still arriving
    }


def note_after(st, msg):
    """Something went wrong where the wake's err was already set, and maybe reported: at the
    end of a wake, in a crash, in a rain tip's wake, before the state could be read. In err
    now (for `info`), and carried into each later wake's err (cycle.run, first: a long err
    is cut at its end) until a report tells the server (signed.report_ota); the cycle's
    notes would overwrite it otherwise."""
    for k in ("err", "carry"):
        if msg not in st[k]:  # a crash every wake says so once
            st[k] = msg + "; " + st[k] if st[k] else msg


def clock_right(board, st, server_unix):
    """The clock was set since power-on and is within 2 s of the server's time: most
    replies find it so, and then clock.py (which sets it) is not imported."""
    return st["synced"] and -2 <= server_unix - board.EPOCH_OFFSET - board.time() <= 2


def adjustments_ok(adj):
    """The clock adjustments (clock.py) as kept: [[first seq, end seq, seconds]]."""
    if not isinstance(adj, list):
        return False
    for a in adj:
        if not (isinstance(a, list) and len(a) == 3 and all(isinstance(x, int) for x in a)):
            return False
    return True


def reading_time(payload, seq, adjustments):
    """A stored reading's time on the current clock: the clock may have been set since."""
    t = (payload[0] << 24) | (payload[1] << 16) | (payload[2] << 8) | payload[3]
    for lo, hi, delta in adjustments:
        if lo <= seq < hi:
            t += delta
    return t


def _same_kind(a, b):
    """A restored value fits the default's kind (None defaults take anything simple)."""
    if b is None:
        return a is None or isinstance(a, (int, str, list))
    if isinstance(b, bool):
        return isinstance(a, bool)
    if isinstance(b, int):
        return isinstance(a, int) and not isinstance(a, bool)
    return isinstance(a, type(b))


def load(board):
    """The state of the last wake; a value of the wrong kind (corrupt but valid JSON) falls
    back to its default instead of crashing every wake."""
    st = defaults()
    raw = board.rtc_memory()
    if raw:
        try:
            saved = json.loads(raw)
            for k in st:
                if k in saved and _same_kind(saved[k], st[k]):
                    st[k] = saved[k]
        except (ValueError, TypeError, AttributeError):
            note_after(st, "RTC memory unreadable")
    if not adjustments_ok(st["adj"]):
        st["adj"] = []
    return st


# The keys whose default is None. Every default is empty (None, 0, False, "", []), so a
# value differs from its default when it is not empty, or empty but not None where the
# default is None (a level of 0 mm, a channel 0).
NONE_DEFAULTS = ("level", "t", "stuck", "temp", "rain_count", "resend", "bssid", "channel",
                 "err_reported", "lora_link", "lora_report_wait", "lora_rewind",
                 "lora_resend", "lora_cfg")


def _dumps(st):
    """The values that differ from their defaults (load() puts the defaults back): a
    Wi-Fi station's state is ~300 bytes, not ~1.4 KB of mostly LoRaWAN defaults. Told
    apart without a second dict of the defaults: at the end of a wake with an upload the
    heap may no longer have that dict's ~800 bytes in one piece."""
    return json.dumps({k: v for k, v in st.items()
                       if v or (v is not None and k in NONE_DEFAULTS)}).encode()


def save(board, st):
    """Never raises: long texts are cut, and what does not fit is dropped (the clock
    adjustments first: clock.json has them), so the board still sleeps."""
    for k in ("err", "carry", "uplink", "err_reported"):
        if isinstance(st[k], str):
            st[k] = st[k][:MAX_TEXT]
    try:
        data = _dumps(st)
        if len(data) > MAX_BYTES:
            st["adj"] = []
            st["err"] = st["uplink"] = st["carry"] = ""
            data = _dumps(st)
        if len(data) > MAX_BYTES:
            data = b"{}"  # the defaults (load() fills them in)
        board.set_rtc_memory(data)
    except Exception as e:  # noqa: BLE001 - anything here would keep the board awake
        print("mizumori: state not saved: %r" % e)
