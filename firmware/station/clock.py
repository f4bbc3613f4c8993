# The station's clock across power losses. The RTC reads 2000-01-01 after a power-on, and
# mbedTLS on the ESP32 checks certificate dates against it, so the station keeps in flash a
# clock floor (a time it has certainly passed: set when flashing and provisioning, raised
# when the server's time is learnt) and the adjustments that put stored readings on the true
# time. RTC state holds the working copy ("adj", "era"; state.reading_time applies it);
# clock.json is what survives. Imported only by a wake that sets or restores the clock.
import json

from station import fsutil
from station.state import adjustments_ok, clock_right

PATH = "clock.json"
MAX_ADJUSTMENTS = 8
FLOOR_STEP_S = 3600  # raise the floor in flash at most once an hour (flash writes)


def load(path=PATH):
    """{"floor": seconds (board epoch), "adj": [[first seq, end seq, seconds]], "open": the
    first seq taken on a clock lost at a power-on and not set since, or None}."""
    out = {"floor": 0, "adj": [], "open": None}
    raw = fsutil.read_bytes(path)
    if raw:
        try:
            saved = json.loads(raw)
            floor = saved.get("floor", 0)
            adj = saved.get("adj", [])
            opened = saved.get("open")
            if (isinstance(floor, int) and adjustments_ok(adj)
                    and (opened is None or isinstance(opened, int))):
                out["floor"], out["adj"], out["open"] = floor, adj, opened
        except (ValueError, TypeError, AttributeError):
            pass  # unreadable: no floor, no adjustments (readings may come out early)
    return out


def save(floor, adj, opened=None, path=PATH):
    fsutil.write_atomic(path, json.dumps({"floor": floor, "adj": adj,
                                          "open": opened}).encode())


def after_power_loss(board, state, queue, path=PATH):
    """The RTC and its memory are gone: bring the clock back to at least the floor, take the
    adjustments from flash, and start a new era: readings from here on are on an unsynced
    clock, those before it kept their (true) times. A second power loss before the clock
    was set again continues the open era (its readings follow on, newest + 1 s): one setting
    then moves them all, in order."""
    saved = load(path)
    if board.time() < saved["floor"]:
        board.set_time(saved["floor"])
    state["adj"] = saved["adj"]
    state["era"] = queue.next_seq if saved["open"] is None else saved["open"]
    state["synced"] = False
    if saved["open"] is None:
        save(saved["floor"], saved["adj"], state["era"], path)


def set_from_server(board, state, queue, server_unix, path=None):
    """Set the clock to the server's time. The readings of this era (since the power-on or
    the last setting) move with it; earlier ones keep their times. True when it changed.
    path: clock.json (None: PATH)."""
    path = path or PATH
    if clock_right(board, state, server_unix):
        return False
    target = server_unix - board.EPOCH_OFFSET
    delta = target - board.time()
    board.set_time(target)
    # Times kept on the old clock move with it: the next wake, the last level's time (the
    # rate of rise), the upload backoffs.
    for k in ("next_wake", "t", "retry_at", "lora_retry_at"):
        if state.get(k):
            state[k] += delta
    adj = [a for a in state["adj"] if a[1] > queue.acked + 1]
    if delta and queue.next_seq > state["era"]:
        adj.append([state["era"], queue.next_seq, delta])
    state["adj"] = adj[-MAX_ADJUSTMENTS:]
    state["era"] = queue.next_seq
    state["synced"] = True
    saved = load(path)
    if (target - saved["floor"] >= FLOOR_STEP_S or adj != saved["adj"]
            or saved["open"] is not None):
        save(max(saved["floor"], target), state["adj"], None, path)
    return True


def unix_seconds(y, mo, d, h=0, mi=0, sec=0):
    """Seconds since 1970-01-01 of a UTC date and time (time.mktime is local time on CPython
    and counts from 2000 on the ESP32, so the calendar is done here)."""
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = 365 * (y - 1970) + (y - 1969) // 4 - (y - 1901) // 100 + (y - 1601) // 400
    days += (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)[mo - 1] + d - 1
    if mo > 2 and leap:
        days += 1
    return ((days * 24 + h) * 60 + mi) * 60 + sec
