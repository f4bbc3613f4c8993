"""Run firmware code under CPython: add MicroPython's time functions to CPython's time module.

The firmware calls time.ticks_ms(), ticks_diff(), ticks_add(), sleep_ms() and sleep_us()
as on the device; importing this module makes them exist on the host, with MicroPython's
wrap-around rule (ticks have a period of 2**30 ms).
"""

import time

_PERIOD = 1 << 30


def ticks_ms() -> int:
    return int(time.monotonic() * 1000) % _PERIOD


def ticks_diff(a: int, b: int) -> int:
    d = (a - b) % _PERIOD
    return d - _PERIOD if d >= _PERIOD // 2 else d


def ticks_add(t: int, delta: int) -> int:
    return (t + delta) % _PERIOD


def sleep_ms(ms: int) -> None:
    time.sleep(ms / 1000)


def sleep_us(us: int) -> None:
    time.sleep(us / 1_000_000)


def install() -> None:
    for fn in (ticks_ms, ticks_diff, ticks_add, sleep_ms, sleep_us):
        if not hasattr(time, fn.__name__):
            setattr(time, fn.__name__, fn)


install()
