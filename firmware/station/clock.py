# Millisecond ticks and short sleeps: MicroPython's own, with a CPython fallback for host tests.
import time

if hasattr(time, "ticks_ms"):
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    sleep_ms = time.sleep_ms
    sleep_us = time.sleep_us
else:  # CPython
    _monotonic = getattr(time, "monotonic")
    _sleep = getattr(time, "sleep")

    def ticks_ms():
        return int(_monotonic() * 1000) & 0x3FFFFFFF

    def ticks_diff(a, b):
        # Same wrap-around rule as MicroPython's ticks (period 2**30).
        d = (a - b) & 0x3FFFFFFF
        return d - 0x40000000 if d & 0x20000000 else d

    def sleep_ms(ms):
        _sleep(ms / 1000)

    def sleep_us(us):
        _sleep(us / 1000000)
