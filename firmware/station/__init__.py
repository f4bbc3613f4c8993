# Mizumori station firmware. The application package; boot.py and main.py sit beside it.
VERSION = "0.1.0"
SLOTS = ("a", "b")  # the two application directories (station/ota.py)


def running_slot():
    """The slot the application was imported from, or None (flashed without slots, or a
    test run from firmware/). Here, not in ota: a wake reports it without importing ota."""
    first = (globals().get("__file__") or "").lstrip("/").split("/")[0]
    return first if first in SLOTS else None
