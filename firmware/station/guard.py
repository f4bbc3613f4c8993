# What main.py needs before the application: the board, the maintenance window, and a safe
# way down when anything fails. Small and with few imports on purpose: it must work when
# the application cannot be imported (a bad update, no memory), so mpremote can always reach
# the board and a broken board still sleeps.
import json

CRASH_SLEEP_S = (60, 600, 3600)  # 1 min, 10 min, then hourly while it keeps failing


def _settings():
    """(maintenance seconds, service pin) from config.json, defaults when unreadable."""
    seconds, service = 5, 27
    try:
        with open("config.json") as f:
            cfg = json.loads(f.read())
        seconds = int(cfg.get("maintenance_s", seconds))
        service = int(cfg.get("pins", {}).get("service", service))
    except Exception:  # noqa: BLE001 - no config or a bad one: the defaults
        pass
    return seconds, service


def maintenance_window(board, seconds):
    """True when someone pressed Ctrl-C (mpremote does): stay awake in the REPL."""
    print("mizumori: maintenance window %d s, Ctrl-C for the REPL" % seconds)
    try:
        for _ in range(seconds * 10):
            board.sleep_ms(100)
    except KeyboardInterrupt:
        print("mizumori: maintenance mode, station loop stopped")
        return True
    return False


def start():
    """The board, after the maintenance window of a power-on, a reset or a held service
    button; None when the technician took the REPL."""
    from station.hw import default_board

    board = default_board()
    seconds, service = _settings()
    if board.reset_cause() in ("power_on", "hard") or board.service_held(service):
        if maintenance_window(board, seconds):
            return None
    return board


def crashed(e, board=None):
    """Note what killed this wake and how long to sleep: longer each time in a row, so a
    broken board neither drains its battery nor loses the chance to recover."""
    import sys

    try:
        with open("crash.txt", "w") as f:
            sys.print_exception(e, f)
    except Exception:  # noqa: BLE001 - a full or broken flash: sleep all the same
        pass
    n = 0
    try:
        from station import state

        board = board or _board()
        st = state.load(board)
        n = st["crashes"]
        st["crashes"] = n + 1
        state.note_after(st, "crash: %r" % e)
        state.save(board, st)
    except Exception:  # noqa: BLE001
        pass
    return CRASH_SLEEP_S[min(n, len(CRASH_SLEEP_S) - 1)] * 1000


def _board():
    from station.hw import default_board

    return default_board()
