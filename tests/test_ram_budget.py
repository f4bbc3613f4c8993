"""The firmware's RAM (docs/firmware.md, "RAM budget"): one whole wake of the real firmware
(.mpy in slot a/, the sim board) under the MicroPython unix port with a capped heap, against
a local stand-in for the fleet server (bench/ram.py).

The budgets are 56 KiB for a wake with an upload and 72 KiB for the OTA check on a 32-bit
build, enforced on the 64-bit unix port as 80 and 100 KiB of `-X heapsize`. The firmware does
not fit them yet (docs/firmware.md says what is left): those two tests are strict xfails, so
the day it fits they fail and the marker must go. Until then the ceilings below hold what the
lazy imports and the released modules won, so the heap cannot creep back up unnoticed.

Whether a wake fits is not monotonic in the heap size near the limit (where the GC finds a
hole for a module's bytecode depends on what came before, and the collector is conservative):
today's wake with an upload runs in 93, 94 and 98 KiB but not in 96 or 100-106 KiB. A ceiling
therefore counts as held when the wake runs in any of the three sizes up to it."""

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

# What the firmware runs in today (64-bit unix port, measured by bench/ram.py): 113 KiB for
# a wake with an upload, 155 KiB with the OTA check. The simulated board is in that heap and
# takes ~52 KB of it (its sensor models grew with the measurement chain: the ADS1115, the
# JSN-SR04T's timing, the A02YYUW's frame period; a real board's hw/esp32.py is small); the
# firmware's own code after imports is ~23 KB (test below). Earlier: 93 and 140-147 KiB with
# a smaller sim, 134 and 187 KiB before the drivers were imported as fitted and SHA-512
# streamed, 170 and 212 KiB before the lazy imports. The ceilings are today's and ~5 %.
CEILING_WAKE_KIB = 119
CEILING_OTA_KIB = 163
NOT_YET = "over the RAM budget: docs/firmware.md, RAM budget, what is left"


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield ram.Releases(tmp_path_factory.mktemp("ram"))


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


def test_update_code_only_on_the_wake_that_checks_an_offer(releases: Any) -> None:
    """After the imports of a wake, nothing of the upload, LoRaWAN or the installer is in
    RAM; the installer, SHA-512 and Ed25519 come in only on the wake that checks an offer."""
    up = dict(ram.stages(releases, False))
    ota = dict(ram.stages(releases, True))
    assert "ota: manifest and signature read" not in up
    assert ota["ota: manifest and signature read"] > up["reply received"]
    # the live heap after the application's imports (64-bit; was 103 KB with everything,
    # 55 KB with the lazy imports, 23 KB with the cycle, its drivers and config imported in
    # main() and released before the radio)
    assert up["after imports"] < 24 * 1024
    # the cycle's code is let go before the upload's comes in
    assert up["upload built"] - up["after sampling"] < 8 * 1024
