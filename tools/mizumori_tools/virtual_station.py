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
