# The "ROM" of a virtual station under the MicroPython unix port: boot the flash directory as
# an ESP32 boots its filesystem, boot.py then main.py. The rig writes sim.json (the simulated
# world for this wake) into the flash first; deep sleep writes sleep.ms and ends the process.
# With no main.py the process stays in the REPL, like a freshly flashed board.
# Usage: micropython [-i] virtual_station.py FLASH_DIR [FIRMWARE_DIR]
#   FIRMWARE_DIR: run the firmware from there instead of from the flash (no flashing needed).
import os
import sys

os.chdir(sys.argv[1])
ROOTS = [""] + sys.argv[2:3]  # the flash first, then the firmware directory if given
for _root in reversed(ROOTS):
    sys.path.insert(0, _root)


class _Machine:
    """What main.py reaches for when the application itself is broken: deep sleep, as the
    sim board sleeps (sleep.ms, then the process ends). The only `machine` the ROM offers."""

    @staticmethod
    def deepsleep(ms):
        import json

        with open("sim.json") as f:
            now = json.load(f).get("now", 0)
        with open("sleep.ms", "w") as f:
            f.write("%d %d" % (ms, now))
        sys.exit(0)


sys.modules["machine"] = _Machine  # type: ignore


def _power_cut_after(n):
    """Cut the power before the (n+1)th change to the flash (an open for writing, a write,
    rename, remove or mkdir): what was written stays, nothing after it happens, and the
    process ends with status 3 without sleeping. Lets a test cut at every step."""
    import builtins

    real_open = builtins.open
    real_os = os
    left = [n]

    def change():
        if left[0] <= 0:
            sys.exit(3)
        left[0] -= 1

    class File:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            change()
            return self._f.write(data)

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def cut_open(path, mode="r", *args):
        if "w" in mode or "a" in mode or "+" in mode:
            change()
            return File(real_open(path, mode, *args))
        return real_open(path, mode, *args)

    class Os:
        def __getattr__(self, name):
            return getattr(real_os, name)

        def rename(self, a, b):
            change()
            real_os.rename(a, b)

        def remove(self, p):
            change()
            real_os.remove(p)

        def mkdir(self, p):
            change()
            real_os.mkdir(p)

    builtins.open = cut_open
    sys.modules["os"] = Os()  # type: ignore


def _run(name):
    for root in ROOTS:
        path = (root + "/" if root else "") + name
        try:
            with open(path) as f:
                source = f.read()
        except OSError:
            continue
        exec(source, {"__name__": "__main__"})
        return


try:
    with open("sim.json") as _f:
        _cut = __import__("json").load(_f).get("cut_after_writes")
except OSError:
    _cut = None
if _cut is not None:
    _power_cut_after(_cut)
_run("boot.py")
_run("main.py")
