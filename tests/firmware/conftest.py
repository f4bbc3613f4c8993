# CPython side of the firmware tests: import the firmware from firmware/ like the board does.
import os
import sys

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "..", "firmware"))
sys.path.insert(0, HERE)

import mizumori_tools.hostport  # noqa: E402,F401  (time.ticks_ms and friends, as on the board)
import support  # noqa: E402

support.rmtree(support.TMP_BASE)

# Power cuts on littlefs need MicroPython's vfs.VfsLfs2: that file runs in the MicroPython pass
# (tests/test_firmware_micropython.py), which fails if anything there is skipped.
collect_ignore = ["test_powercut_lfs.py"]
