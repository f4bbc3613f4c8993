"""The server's clock: real time, or for the rig and the demo the simulated time that the
fleet runner writes to MIZUMORI_CLOCK_FILE (Unix seconds), so that virtual stations living
through simulated hours in seconds get exact, consistent timestamps."""

import os
import time

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
