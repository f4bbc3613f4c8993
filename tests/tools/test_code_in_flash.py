"""The station's code run in place from flash (docs/firmware.md, "Code in flash (ROMFS)"):
boot.py copies the running slot's code image (code.romfs, in every slot) into the romfs
partition of the station's firmware image, checks it by reading it back, and from the next
boot on puts it first on sys.path. The virtual station's ROM runs the real boot.py and
main.py under the MicroPython unix port; the romfs partition is a model of the ESP32 port's
(tools/mizumori_tools/virtual_station.py, _RomPartition), kept in romfs.bin."""

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from mizumori_tools import release
from test_board_boot import boot, slept_s
from test_board_boot import flash as flash  # noqa: F401 - the fixture

IMAGE = "a/" + release.ROMFS


def rom_mark(flash: Path) -> dict[str, Any]:
    """rom.json; {} when there is none or it was cut short (boot.py reads it so too)."""
    try:
        return dict(json.loads((flash / "rom.json").read_text()))
    except (OSError, ValueError):
        return {}


def partition_holds(flash: Path, image: bytes) -> bool:
    return (flash / "romfs.bin").read_bytes()[:len(image)] == image


def wake(flash: Path, **spec: Any) -> bool:
    """One wake of the station's image: whether it did its work and went to sleep until its
    next reading (600 s, less the time it was awake)."""
    done = boot(flash, image="mizumori", **spec)
    assert done.returncode in (0, 3), done.stdout + done.stderr
    s = slept_s(flash)
    return s is not None and 590 <= s <= 600


def test_the_code_runs_from_the_partition_from_the_boot_after_the_copy(flash: Path) -> None:
    image = (flash / IMAGE).read_bytes()
    sha = hashlib.sha256(image).hexdigest()
    assert wake(flash)  # this boot copies, and runs the slot's files
    assert rom_mark(flash) == {"sha": sha} and partition_holds(flash, image)
    # Without its .mpy files the slot can only run from the partition.
    shutil.rmtree(flash / "a" / "station")
    assert wake(flash)
    assert wake(flash)
    # The stock image has no romfs partition: the slot's files, which are gone; main.py
    # cannot import the application and sleeps a minute (its crash back-off).
    boot(flash, image="stock")
    assert slept_s(flash) == 60


def test_a_copy_cut_short_is_never_mounted_and_is_copied_again(flash: Path) -> None:
    """A power cut at every step of the copy: the partition's header (block 0) is erased
    first and written last, and rom.json says "copied" only after the read-back check."""
    image = (flash / IMAGE).read_bytes()
    sha = hashlib.sha256(image).hexdigest()
    blocks = -(-len(image) // 4096)
    # rom.json (2 changes), block 0 erased (2), blocks 1.. and 0 (2 each), rom.json (2)
    steps = 2 + 2 + 2 * blocks + 2
    shutil.copytree(flash / "a" / "station", flash.parent / "files")
    for cut in range(0, steps + 1, 3):
        wake(flash, cut_after_writes=cut)
        mark = rom_mark(flash)
        if mark.get("sha"):
            assert mark == {"sha": sha} and partition_holds(flash, image), cut
        else:
            assert not (flash / "romfs.bin").exists() or not partition_holds(
                flash, image[:4096]), cut  # no valid header: the port mounts nothing
        (flash / "rom.json").unlink(missing_ok=True)
        (flash / "romfs.bin").unlink(missing_ok=True)
    wake(flash)
    assert rom_mark(flash) == {"sha": sha} and partition_holds(flash, image)


def test_a_slot_change_copies_that_slots_image_once(flash: Path) -> None:
    """An update or a rollback changes the slot: its image replaces the other's, once."""
    image_a = (flash / IMAGE).read_bytes()
    shutil.copytree(flash / "a", flash / "b")
    files = {str(p.relative_to(flash / "b")): p.read_bytes()
             for p in (flash / "b" / "station").rglob("*.mpy")}
    files["station/extra.mpy"] = files["station/pins.mpy"]  # another release's image
    image_b = release.romfs_image(files)
    (flash / "b" / release.ROMFS).write_bytes(image_b)
    manifest = json.loads((flash / "b" / "manifest.json").read_text())
    for e in manifest["files"]:
        if e["path"] == release.ROMFS:
            e.update(sha256=hashlib.sha256(image_b).hexdigest(), size=len(image_b))
    (flash / "b" / "manifest.json").write_text(json.dumps(manifest))
    wake(flash)
    assert partition_holds(flash, image_a)
    (flash / "slot.json").write_text(json.dumps({"good": "b"}))
    before = (flash / "romfs.bin").stat().st_mtime_ns
    assert wake(flash)
    assert rom_mark(flash)["sha"] == hashlib.sha256(image_b).hexdigest()
    assert partition_holds(flash, image_b) and (flash / "romfs.bin").stat().st_mtime_ns > before
    before = (flash / "romfs.bin").stat().st_mtime_ns
    shutil.rmtree(flash / "b" / "station")
    assert wake(flash)  # from the partition: b's files are gone
    assert (flash / "romfs.bin").stat().st_mtime_ns == before  # not copied again
    (flash / "slot.json").write_text(json.dumps({"good": "a"}))
    assert wake(flash)
    assert partition_holds(flash, image_a)


@pytest.mark.parametrize("damage", ["image", "too big"])
def test_an_image_that_cannot_be_used_is_tried_once_and_the_files_run(
        flash: Path, damage: str) -> None:
    """An image whose copy does not read back as the manifest says (a damaged file), or that
    is larger than the partition: the slot's own files run, and the partition is not written
    again at every boot (flash wear)."""
    image = flash / IMAGE
    if damage == "image":
        data = bytearray(image.read_bytes())
        data[-1] ^= 1
        image.write_bytes(bytes(data))
    else:
        image.write_bytes(image.read_bytes() + b"\0" * 0x40000)
    want = json.loads((flash / "a" / "manifest.json").read_text())
    sha = next(e["sha256"] for e in want["files"] if e["path"] == release.ROMFS)
    assert wake(flash)
    assert rom_mark(flash) == {"sha": "", "failed": sha}
    before = (flash / "romfs.bin").read_bytes()
    assert wake(flash)
    assert (flash / "romfs.bin").read_bytes() == before
