# One wake of a virtual station: the real firmware under the MicroPython unix port with the
# sim board. The flash is a directory; RTC memory a file; deep sleep ends the process.
# Usage: micropython virtual_station.py FIRMWARE_DIR FLASH_DIR WORLD_JSON
# Prints "SLEEP <ms> <clock>" when the station goes to sleep (clock: its RTC, which the
# server may have set).
import json
import os
import sys

sys.path.insert(0, sys.argv[1])

from station import app  # noqa: E402
from station.hw import sim  # noqa: E402

os.chdir(sys.argv[2])
spec = json.loads(sys.argv[3])
world = sim.World(spec.get("seed", 1))
for key in ("now", "level_mm", "mount_mm", "air_temp_c", "humidity_pct", "pressure_hpa",
            "battery_mv", "rain_tips"):
    if key in spec:
        setattr(world, key, spec[key])
world.faults = set(spec.get("faults", []))
board = sim.Board(world, reset_cause=spec.get("reset_cause", "deepsleep"), rtc_path="rtc.bin")
try:
    app.main(board)
except sim.DeepSleep as s:
    print("SLEEP %d %d" % (s.ms, board.time()))
