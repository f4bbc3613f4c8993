"""The firmware's RAM (docs/firmware.md, "RAM budget"): one whole wake of the real firmware
(.mpy in slot a/, the sim board) under the MicroPython unix port with a capped heap, against
a local stand-in for the fleet server (bench/ram.py).

The budgets are 56 KiB for a wake with an upload and 72 KiB for the OTA check on a 32-bit
build, enforced on the 64-bit unix port as 80 and 100 KiB of `-X heapsize`. The firmware does
not fit them yet (docs/firmware.md says what is left): those two tests are strict xfails, so
the day it fits they fail and the marker must go. Until then the ceilings below hold what the
lazy imports, the released modules and the sim board's split won, so the heap cannot creep
back up unnoticed.

Whether a wake fits is not monotonic in the heap size near the limit (where the GC finds a
hole for a module's bytecode depends on what came before, and the collector is conservative):
today's wake with an upload runs in 118 KiB, not in 119, and in every size from 120 KiB; the
OTA wake in 149-151 KiB, not in 152, and from 153 KiB. A ceiling therefore counts as held
when the wake runs in any of the three sizes up to it."""

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_ram", ROOT / "bench" / "ram.py")
assert _spec is not None and _spec.loader is not None
ram: Any = importlib.util.module_from_spec(_spec)
sys.modules["bench_ram"] = ram
_spec.loader.exec_module(ram)

# What the firmware runs in today (64-bit unix port, measured by bench/ram.py): 118-120 KiB
# for a wake with an upload, 149-153 KiB with the OTA check. The simulated board is in that
# heap: 29 KB of it (bench/ram.py, "of which the sim board"), its core and the models of the
# parts this station has (a real board's hardware is C code, not in the heap). Before the
# sim's part models were split out and imported as used: 127 and 155-162 KiB (the same
# firmware); the 113 and 155 KiB measured earlier counted wakes that had run out of heap in
# their cycle and saved nothing (bench/ram.py now checks the saved state and the stored
# reading). Earlier: 134 and 187 KiB before the drivers were imported as fitted and SHA-512
# streamed, 170 and 212 KiB before the lazy imports. The ceilings are today's and ~5 %.
CEILING_WAKE_KIB = 125
CEILING_OTA_KIB = 160
NOT_YET = "over the RAM budget: docs/firmware.md, RAM budget, what is left"


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield ram.Releases(tmp_path_factory.mktemp("ram"))


@pytest.fixture(scope="module")
def up_wake(releases: Any) -> tuple[dict[str, int], list[str]]:
    """The wake with an upload: its live heap at each stage, the sim board's modules it loaded."""
    marks, sims = ram.stages_and_sim(releases, False)
    return dict(marks), sims


def _check(releases: Any, ota: bool, heap_kib: int, window: int = 1) -> None:
    """The wake runs in heap_kib, or (window 3) in heap_kib - 2 or heap_kib - 4."""
    for kib in range(heap_kib, heap_kib - 2 * window, -2):
        proc = ram.wake(releases, ota, kib)
        if "wake ok" in proc.stdout:
            return
    raise AssertionError(
        f"the wake{' with the OTA check' if ota else ' with an upload'} does not run in "
        f"{heap_kib} KiB:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def test_wake_with_upload_under_its_ceiling(releases: Any) -> None:
    _check(releases, False, CEILING_WAKE_KIB, window=3)


def test_wake_with_ota_check_under_its_ceiling(releases: Any) -> None:
    _check(releases, True, CEILING_OTA_KIB, window=3)


@pytest.mark.xfail(strict=True, reason=NOT_YET)
def test_wake_with_upload_within_budget(releases: Any) -> None:
    _check(releases, False, ram.BUDGET_WAKE_KIB)


@pytest.mark.xfail(strict=True, reason=NOT_YET)
def test_wake_with_ota_check_within_budget(releases: Any) -> None:
    _check(releases, True, ram.BUDGET_OTA_KIB)


def test_update_code_only_on_the_wake_that_checks_an_offer(
        releases: Any, up_wake: tuple[dict[str, int], list[str]]) -> None:
    """After the imports of a wake, nothing of the upload, LoRaWAN or the installer is in
    RAM; the installer, SHA-512 and Ed25519 come in only on the wake that checks an offer."""
    up = up_wake[0]
    ota = dict(ram.stages(releases, True))
    assert "ota: manifest and signature read" not in up
    assert ota["ota: manifest and signature read"] > up["reply received"]
    # the live heap after the application's imports (64-bit; was 103 KB with everything,
    # 55 KB with the lazy imports, 23 KB with the cycle, its drivers and config imported in
    # main() and released before the radio; 25 KB with the rain counter's code in app.py)
    assert up["after imports"] < 26 * 1024
    # the cycle's code is let go before the upload's comes in
    assert up["upload built"] - up["after sampling"] < 8 * 1024


def test_the_sim_board_loads_only_the_models_of_the_parts_a_station_has(
        up_wake: tuple[dict[str, int], list[str]]) -> None:
    """The bench's station (A02YYUW, BME280, Wi-Fi to a plain-HTTP server): the sim board's
    core and those parts' models, not the 4-20 mA loop's, TLS or a host serial port."""
    assert up_wake[1] == ["station.hw.sim", "station.hw.sim_bme280", "station.hw.sim_net",
                          "station.hw.sim_ultrasonic"]
