# The little state that must survive deep sleep, kept in RTC memory (lost on power loss,
# which is fine: everything durable lives in flash).
import json

MAX_BYTES = 2048  # RTC user memory on the ESP32 port


def defaults():
    return {
        "level": None,      # last level, mm
        "t": None,          # its time, s
        "alert": 0,         # river level reached, 0..4
        "flood": False,     # in flood (fast) mode
        "since_upload": 0,  # readings since the last successful upload
        "stuck": 0,         # consecutive identical bursts
        "rain": 0,          # rain tips not yet reported
        "next_wake": 0,     # when the scheduled wake is due (rain wakes sleep on to it)
        "dropped_seen": 0,  # queue drops already flagged on a reading
        "synced": False,    # clock set from the server since power-on
        "adj": [],          # [first seq after a clock change, seconds the clock moved]
        "counter": 0,       # upload counter (the server tells the last one after a loss)
        "backoff_s": 0,     # after failed uploads: wait, doubling up to an hour
        "retry_at": 0,
        "poisoned": 0,      # readings the server refused as undecodable (given up, counted)
        "bssid": None,      # Wi-Fi access point and channel of the last connection
        "channel": None,
        "fw_reported": "",  # firmware version the server was last told
        "wakes": 0,
        "err": "",          # what went wrong in the last wake, for `info`
        "uplink": "",       # why the last upload failed ("" once one succeeds)
        "lora_setup": False,  # the modem's settings checked since power-on
        "lora_status": False,  # a config was applied: send a status record
        "lora_backoff_s": 0,  # after a failed join or uplink: wait, doubling up to an hour
        "lora_retry_at": 0,
        "lora_link": None,  # [demod margin dB, gateways] from the last link check
    }


def load(board):
    st = defaults()
    raw = board.rtc_memory()
    if raw:
        try:
            saved = json.loads(raw)
            for k in st:
                if k in saved:
                    st[k] = saved[k]
        except (ValueError, TypeError):
            st["err"] = "RTC memory unreadable"
    return st


def save(board, st):
    st["err"] = st["err"][:200]
    data = json.dumps(st).encode()
    if len(data) > MAX_BYTES:
        raise ValueError("state too large for RTC memory")
    board.set_rtc_memory(data)
