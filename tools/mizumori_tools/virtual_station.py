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


sys.modules["machine"] = _Machine


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


_run("boot.py")
_run("main.py")
