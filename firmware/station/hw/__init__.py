# Hardware layer: the esp32 backend (machine, esp32) and the sim backend (host and the
# MicroPython unix port). Both offer the same Board interface; see docs/firmware.md.
