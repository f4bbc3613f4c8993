# CPython side of the firmware tests: import the firmware from firmware/ like the board does.
import os
import sys

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "..", "firmware"))
sys.path.insert(0, HERE)

import support  # noqa: E402

support.rmtree(support.TMP_BASE)
