# Mizumori's frozen _boot.py: firmware/board/manifest.py freezes it into the station's firmware
# image in place of the ESP32 port's own, and the port runs it first at every reset.
#
# The port's (ports/esp32/modules/_boot.py) mounts the filesystem and, when that fails, calls
# inisetup.setup(): a first sector that is not erased sends the board into fs_corrupted(),
# which prints every 3 s for ever (ports/esp32/modules/inisetup.py:5-34); an erased one is
# formatted and the board sits at the REPL with no main.py (inisetup.py:37-56). Both stay
# awake at ~45 mA until the battery is flat, silently.
#
# Here the board never waits awake for nobody:
# - a filesystem that cannot be mounted is formatted (littlefs) and the marker fs_reformatted
#   written, {"why": "blank" | "corrupt", "boots": n}, for the application to report;
# - while the application cannot run (no main.py, secrets.json or config.json: after a
#   reformat, or a board not yet flashed and provisioned) the board deep-sleeps 1 min, 10 min,
#   then hourly, counting its boots in the marker (RTC memory is the application's: untouched);
# - after a power-on or the reset button it first waits WINDOW_S for a technician's Ctrl-C
#   (mpremote sends one), which leaves the board at the REPL; after a soft reset (Ctrl-D at the
#   REPL) someone is there already, so it goes straight on to the REPL.
# When the application can run, this does what the port's _boot.py does, and no more.
import sys

# The port has mounted the romfs partition at /rom and put /rom and /rom/lib on sys.path
# (extmod/vfs.c, before this file): off the path until boot.py has checked what it holds,
# since a module there named os or json would be imported instead of the built-in one.
for _p in ("/rom", "/rom/lib"):
    while _p in sys.path:
        sys.path.remove(_p)

import gc  # noqa: E402

import vfs  # noqa: E402
from flashbdev import bdev  # noqa: E402

MARKER = "fs_reformatted"
NEEDS = ("main.py", "secrets.json", "config.json")
BACKOFF_S = (60, 600, 3600)
WINDOW_S = 10


def _erased():
    # The first sector as inisetup.check_bootsec() reads it: all 0xFF has never been written.
    buf = bytearray(bdev.ioctl(5, 0))  # 5 is SEC_SIZE
    bdev.readblocks(0, buf)
    for b in buf:
        if b != 0xFF:
            return False
    return True


def _mark(why, boots):
    # littlefs replaces a file's contents atomically when it is closed.
    with open(MARKER, "w") as f:
        f.write('{"why": "%s", "boots": %d}' % (why, boots))


def _marker():
    """(why, boots) from the marker; None without one."""
    import json

    try:
        with open(MARKER) as f:
            m = json.loads(f.read())
        return m["why"], int(m["boots"])
    except OSError:
        return None
    except (ValueError, KeyError, TypeError):  # created but never written (a power cut)
        return "unknown", 0


def _can_run():
    import os

    for name in NEEDS:
        try:
            os.stat(name)
        except OSError:
            return False
    return True


def _window():
    """True when a technician is at the REPL or pressed Ctrl-C within WINDOW_S."""
    import machine

    cause = machine.reset_cause()
    if cause == machine.SOFT_RESET:
        return True
    if cause not in (machine.PWRON_RESET, machine.HARD_RESET):
        return False
    import time

    import micropython

    print("mizumori: no application to run; Ctrl-C within %d s for the REPL" % WINDOW_S)
    micropython.kbd_intr(3)  # the port runs _boot.py with Ctrl-C off (so does fs_corrupted)
    try:
        for _ in range(WINDOW_S * 10):
            time.sleep_ms(100)
    except KeyboardInterrupt:
        print("mizumori: maintenance mode: flash and provision the board (docs/technician.md)")
        return True
    return False


def _rest(marker):
    """Deep-sleep as long as the marker's boot count says (the longest without a marker),
    unless a technician takes the board."""
    if _window():
        return
    import machine

    boots = marker[1] if marker else len(BACKOFF_S) - 1
    if marker:
        try:
            _mark(marker[0], boots + 1)
        except OSError:
            pass
    s = BACKOFF_S[min(boots, len(BACKOFF_S) - 1)]
    print("mizumori: no application to run; sleeping %d s" % s)
    machine.deepsleep(s * 1000)


def _boot():
    if not bdev:  # no filesystem partition (another partition table): nothing can run
        _rest(None)
        return
    try:
        vfs.mount(bdev, "/")
    except OSError:
        try:
            why = "blank" if _erased() else "corrupt"
            vfs.VfsLfs2.mkfs(bdev)
            vfs.mount(vfs.VfsLfs2(bdev), "/")
            _mark(why, 0)
            print("mizumori: filesystem %s: formatted" % why)
        except OSError:  # the flash itself fails
            _rest(None)
            return
    if not _can_run():
        _rest(_marker())


_boot()
gc.collect()
