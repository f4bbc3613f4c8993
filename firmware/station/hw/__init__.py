# Hardware layer: the esp32 backend (machine, esp32) and the sim backend (host and the
# MicroPython unix port). Both offer the same Board interface; see docs/firmware.md.
import sys


def default_board():
    """The board this code runs on: the real one on an ESP32; on the unix port (the virtual
    station), the simulated board its rig describes in sim.json."""
    if sys.platform == "esp32":
        from station.hw.esp32 import Board

        return Board()
    from station.hw import sim

    return sim.from_spec("sim.json")
