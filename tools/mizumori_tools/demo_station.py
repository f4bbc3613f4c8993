# The virtual-station demo: the real firmware under the MicroPython unix port with the sim
# board, through a flood hydrograph. Each wake runs station.app.main exactly as main.py does;
# deep sleep returns here and the simulated clock jumps ahead by the requested sleep.
# Usage: micropython demo_station.py FIRMWARE_DIR WORK_DIR [HOURS]
import sys

sys.path.insert(0, sys.argv[1])

from station import app, config, state  # noqa: E402
from station.flashqueue import FlashQueue  # noqa: E402
from station.hw import sim  # noqa: E402

WORK = sys.argv[2]
HOURS = int(sys.argv[3]) if len(sys.argv) > 3 else 12
THRESHOLDS = [1000, 1500, 2000, 2500]  # standby, caution, evacuation, danger (mm)
NAMES = ("-", "standby", "caution", "evacuation", "DANGER")


def hydrograph(t_s):
    """Water level (mm) of a flood peaking at 2.7 m six hours in."""
    h = t_s / 3600
    if h < 2:
        return 800
    if h < 6:
        return int(800 + (h - 2) / 4 * 1900)
    return int(max(800, 2700 - (h - 6) * 320))


def main():
    cfg, _ = config.merge(config.DEFAULTS, {"thresholds_mm": THRESHOLDS, "maintenance_s": 0})
    config.save(cfg, WORK + "/config.json")
    world = sim.World()
    start = world.now
    board = sim.Board(world)
    print("time   true mm  level mm  river level   interval  queued")
    while world.now - start < HOURS * 3600:
        t = world.now - start
        world.level_mm = hydrograph(t)
        world.rain_tips = 3 if 3 * 3600 < t < 7 * 3600 else 0
        world.air_temp_c = 18.0 - t / 7200
        try:
            app.main(board, WORK + "/config.json", WORK + "/queue")
        except sim.DeepSleep as s:
            st = state.load(board)
            print("%02d:%02d  %7d  %8s  %-12s %6d s  %6d" % (
                t // 3600, t // 60 % 60, world.level_mm, st["level"], NAMES[st["alert"]],
                s.ms // 1000, FlashQueue(WORK + "/queue").depth()))
            world.now += s.ms // 1000


main()
