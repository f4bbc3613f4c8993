# ruff: noqa: F821
# pyright: reportUndefinedVariable=false, reportAttributeAccessIssue=false
# (run by CPython at build time: its os, not MicroPython's)
# What the Mizumori station image freezes (MicroPython's tools/manifestfile.py runs this file
# with freeze, include, require, module and package defined). README.md: how to build it.
#
# The port's default manifest (ports/esp32/boards/manifest.py, MicroPython v1.29.0), restated
# with one change: its first line, freeze("$(PORT_DIR)/modules"), freezes the port's _boot.py,
# and two files frozen under one name compile to the same build/frozen_mpy/_boot.mpy
# (tools/makemanifest.py), the second only when its source is newer than the first's output:
# which one the image gets would depend on file dates. So the port's modules are listed one by
# one, all but _boot.py (compare with `ls ports/esp32/modules` when changing MicroPython).
freeze("$(PORT_DIR)/modules", ("apa106.py", "espnow.py", "flashbdev.py", "inisetup.py",
                               "machine.py"))
include("$(MPY_DIR)/extmod/asyncio")

# Useful networking-related packages.
require("bundle-networking")

# Require some micropython-lib modules.
require("aioespnow")
require("dht")
require("ds18x20")
require("neopixel")
require("onewire")
require("umqtt.robust")
require("umqtt.simple")
require("upysh")

# Ours: a _boot.py that never leaves the board awake for nobody (see the file).
module("_boot.py", base_path="$(BOARD_DIR)")
# The station application, as fallback code: '.frozen' comes after the filesystem on
# sys.path, and boot.py puts the application's slot (a/ or b/) first, so what was flashed or
# updated over the air always wins; the frozen copy is imported only when no slot has one.
# The simulated board and modem (hw/sim*.py, hw/rak3172_sim.py) run on the host only
# (tools/mizumori_tools/paths.py HOST_ONLY): not frozen. This file runs with its own folder
# as the current directory.
import os  # noqa: E402

_files = []
for _dir, _, _names in os.walk("../station"):
    for _name in _names:
        _rel = os.path.relpath(os.path.join(_dir, _name), "../station").replace(os.sep, "/")
        if _name.endswith(".py") and not _rel.startswith(("hw/sim", "hw/rak3172_sim")):
            _files.append(_rel)
package("station", files=sorted(_files), base_path="$(BOARD_DIR)/..")
