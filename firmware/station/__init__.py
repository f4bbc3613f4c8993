# Mizumori station firmware. The application package; boot.py and main.py sit beside it.
VERSION = "0.1.0"
SLOTS = ("a", "b")  # the two application directories (station/ota.py)


def running_slot():
    """The slot boot.py put on sys.path, whose code runs (from its files, or from its code
    image in the romfs partition, mounted at /rom), or None (flashed without slots, or a
    test run from firmware/). Here, not in ota: a wake reports it without importing ota."""
    import sys

    for path in sys.path:
        if path.lstrip("/") in SLOTS:
            return path.lstrip("/")
    return None
