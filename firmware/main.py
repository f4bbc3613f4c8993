# Runs after boot.py at every wake; never updated over the air. The maintenance window comes
# first (station.guard, before the application is imported), so mpremote can always reach the
# board; then the application in the slot boot.py chose. Whatever fails (a broken update, a
# MemoryError, a full flash), the board ends in deep sleep, longer after each failure in a
# row: it never sits awake at the REPL draining its battery.
try:
    import micropython

    micropython.alloc_emergency_exception_buf(100)  # a traceback even out of memory
except Exception:  # noqa: BLE001 - not on every port
    pass

_board = None
try:
    from station import guard

    _board = guard.start()
    if _board is not None:
        from station import app

        app.main(_board)
except KeyboardInterrupt:
    print("mizumori: stopped, REPL")
except Exception as e:  # noqa: BLE001
    _ms = 60000
    try:
        from station import guard

        _ms = guard.crashed(e, _board)
        import sys

        sys.print_exception(e)
    except Exception:  # noqa: BLE001 - even that failed: the plain minute
        pass
    import machine

    machine.deepsleep(_ms)
