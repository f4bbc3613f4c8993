"""The server's clock: real time, or for the rig and the demo the simulated time that the
fleet runner writes to MIZUMORI_CLOCK_FILE (Unix seconds), so that virtual stations living
through simulated hours in seconds get exact, consistent timestamps."""

import os
import time
from collections.abc import Callable

_FILE = os.environ.get("MIZUMORI_CLOCK_FILE", "")


def now() -> int:
    """Unix seconds on the server's clock."""
    if _FILE:
        try:
            with open(_FILE) as f:
                return int(float(f.read()))
        except (OSError, ValueError):
            pass  # not written yet, or being replaced: real time
    return int(time.time())


def set_simulated(path: str, t: int) -> None:
    """Set the simulated time (atomically: readers never see a half-written file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(str(t))
    os.replace(tmp, path)


def simulated() -> bool:
    """True when the time comes from MIZUMORI_CLOCK_FILE (the rig and the demo)."""
    return bool(_FILE)


class Watch:
    """Tells a step of the server's wall clock from time passing: between two ticks the wall
    clock should advance as much as the monotonic clock (which NTP may slew, never step).
    A difference larger than the threshold is a jump: an operator or a broken NTP setting
    the clock, a virtual machine resumed, a hardware clock read wrong at boot.

    `offset` is how far the wall clock has moved against the monotonic one since this
    process started (0 on a healthy host); `last_jump` the last jump seen (signed)."""

    def __init__(self, threshold_s: float,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.threshold_s = threshold_s
        self._wall, self._monotonic = wall, monotonic
        self._origin = wall() - monotonic()
        self._last = self._origin
        self.offset = 0.0
        self.last_jump = 0.0
        self.jumps = 0

    def tick(self) -> float:
        """The wall clock's step since the previous tick, in seconds (after a jump, the
        difference; else 0.0, as drift within the threshold is not a jump)."""
        now = self._wall() - self._monotonic()
        step, self._last = now - self._last, now
        self.offset = now - self._origin
        if abs(step) > self.threshold_s:
            self.last_jump = step
            self.jumps += 1
            return step
        return 0.0
