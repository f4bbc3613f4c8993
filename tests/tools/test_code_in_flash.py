"""The station's code run in place from flash (docs/firmware.md, "Code in flash (ROMFS)"):
boot.py copies the running slot's code image (code.romfs, in every slot) into the romfs
partition of the station's firmware image and, at every boot where what the partition holds
hashes to what the slot's signed manifest says, puts it first on sys.path. The virtual
station's ROM runs the real boot.py and main.py under the MicroPython unix port; the romfs
partition is a model of the ESP32 port's, kept in romfs.bin, and the port's mount of it at
start-up is modelled too (tools/mizumori_tools/virtual_station.py). The ROM notes where the
station package was imported from (imported.txt)."""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mizumori_tools import release
from test_board_boot import boot, slept_s
from test_board_boot import flash as flash  # noqa: F401 - the fixture

IMAGE = "a/" + release.ROMFS
TRIES = 3  # = boot.py's ROM_TRIES
ROUNDS = 3  # = boot.py's ROM_ROUNDS


def rom_mark(flash: Path) -> dict[str, Any]:
    """rom.json; {} when there is none or it was cut short (boot.py reads it so too)."""
    try:
        return dict(json.loads((flash / "rom.json").read_text()))
    except (OSError, ValueError):
        return {}


def partition_holds(flash: Path, image: bytes) -> bool:
    return (flash / "romfs.bin").read_bytes()[:len(image)] == image


def wake(flash: Path, **spec: Any) -> str:
    """One wake of the station's image that did its work and went to sleep until its next
    reading (600 s, less the time it was awake): where the station package came from."""
    done = boot(flash, image="mizumori", note_code_origin=True, **spec)
    assert done.returncode == 0, done.stdout + done.stderr
    s = slept_s(flash)
    assert s is not None and 590 <= s <= 600, (s, done.stdout + done.stderr)
    return (flash / "imported.txt").read_text()


@pytest.mark.parametrize("follows", [False, True])
def test_the_code_runs_from_the_partition_once_its_mapping_shows_the_copy(
        flash: Path, follows: bool) -> None:
    """The boot that copies runs the slot's files while the partition's mapping still shows
    what it held before, the code from the partition when the mapping shows the copy."""
    image = (flash / IMAGE).read_bytes()
    sha = hashlib.sha256(image).hexdigest()
    first = wake(flash, romfs_mapping_follows_writes=follows)
    assert first == ("/rom/station/__init__.mpy" if follows else "a/station/__init__.mpy")
    assert rom_mark(flash) == {"want": sha, "tries": 1} and partition_holds(flash, image)
    before = (flash / "romfs.bin").stat().st_mtime_ns
    for _ in range(3):
        assert wake(flash) == "/rom/station/__init__.mpy"
    assert (flash / "romfs.bin").stat().st_mtime_ns == before  # copied once
    # The stock image has no ROMFS: the slot's files.
    boot(flash, image="stock", note_code_origin=True)
    assert (flash / "imported.txt").read_text() == "a/station/__init__.mpy"


def test_a_copy_cut_short_is_never_run_and_is_made_again(flash: Path) -> None:
    """A power cut at every third step of the copy, to its end: the next boot runs the code
    from the partition only if it holds the whole image, and the one after does."""
    image = (flash / IMAGE).read_bytes()
    cut = 0
    while True:
        done = boot(flash, image="mizumori", cut_after_writes=cut)
        uncut = done.returncode == 0
        assert uncut or done.returncode == 3, done.stdout + done.stderr
        if wake(flash).startswith("/rom/"):
            assert partition_holds(flash, image), cut
        assert wake(flash) == "/rom/station/__init__.mpy", cut
        assert partition_holds(flash, image)
        (flash / "rom.json").unlink(missing_ok=True)
        (flash / "romfs.bin").unlink()
        if uncut:
            break
        cut += 3
    assert cut > 2 * len(image) // 4096  # every block's erase and write were cut


def test_a_slot_change_copies_that_slots_image_once(flash: Path) -> None:
    """An update or a rollback changes the slot: its image replaces the other's, once. The
    image the port mounted at start-up (the other slot's) is never used."""
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
    assert wake(flash) == "/rom/station/__init__.mpy" and partition_holds(flash, image_a)
    (flash / "slot.json").write_text(json.dumps({"good": "b"}))
    assert wake(flash) == "b/station/__init__.mpy"
    assert partition_holds(flash, image_b)
    assert wake(flash) == "/rom/station/__init__.mpy"
    (flash / "slot.json").write_text(json.dumps({"good": "a"}))
    assert wake(flash) == "a/station/__init__.mpy"  # not b's image, mounted at start-up
    assert wake(flash) == "/rom/station/__init__.mpy" and partition_holds(flash, image_a)


def test_a_partition_that_changed_is_not_run_and_is_copied_again(flash: Path) -> None:
    """What the partition holds is checked at every boot, not taken from rom.json: a flash
    error, or a technician's `mpremote romfs deploy`."""
    image = (flash / IMAGE).read_bytes()
    wake(flash)
    assert wake(flash).startswith("/rom/")
    data = bytearray((flash / "romfs.bin").read_bytes())
    data[len(image) // 2] ^= 0x10
    (flash / "romfs.bin").write_bytes(bytes(data))
    assert wake(flash) == "a/station/__init__.mpy"
    assert wake(flash).startswith("/rom/") and partition_holds(flash, image)


def test_nothing_in_the_partition_runs_before_it_is_checked(flash: Path) -> None:
    """The port mounts whatever the partition holds at start-up, with /rom on sys.path: a
    module there named like a built-in that a file may extend (os, json, binascii, hashlib:
    _boot.py and boot.py import them) must not be imported."""
    mpy = {}
    for name in ("os", "json", "binascii", "hashlib"):
        src = flash.parent / f"{name}.py"
        src.write_text('print("ROM CODE RAN")\n')
        out = flash.parent / f"{name}.mpy"
        subprocess.run([release.mpy_cross(), "-o", str(out), str(src)], check=True)
        mpy[f"{name}.mpy"] = out.read_bytes()
    rogue = release.romfs_image(mpy)
    (flash / "romfs.bin").write_bytes(rogue + b"\xff" * (0x40000 - len(rogue)))
    done = boot(flash, image="mizumori", note_code_origin=True)
    assert "ROM CODE RAN" not in done.stdout + done.stderr
    assert (flash / "imported.txt").read_text() == "a/station/__init__.mpy"
    assert wake(flash) == "/rom/station/__init__.mpy"  # the slot's image replaced it


def test_the_manifest_entry_is_read_whatever_its_layout(flash: Path) -> None:
    manifest = json.loads((flash / "a" / "manifest.json").read_text())
    manifest["files"] = [dict(reversed(list(e.items()))) for e in manifest["files"]]
    (flash / "a" / "manifest.json").write_text(json.dumps(manifest, indent=1))
    wake(flash)
    assert wake(flash) == "/rom/station/__init__.mpy"


@pytest.mark.parametrize("damage", ["image", "too big", "short"])
def test_an_image_that_cannot_be_used_is_copied_a_few_times_at_most(
        flash: Path, damage: str) -> None:
    """An image that does not hash as its manifest says (a damaged file): copied TRIES times,
    then not again until the board is power-cycled (flash wear); one larger than the
    partition, or a file not of the manifest's size: never. The slot's own files run."""
    image = flash / IMAGE
    if damage == "image":
        data = bytearray(image.read_bytes())
        data[-1] ^= 1
        image.write_bytes(bytes(data))
    elif damage == "short":
        image.write_bytes(image.read_bytes()[:-100])
    else:  # a release with more code than the partition holds (release.py refuses one)
        big = image.read_bytes() + b"\0" * 0x40000
        image.write_bytes(big)
        manifest = json.loads((flash / "a" / "manifest.json").read_text())
        for e in manifest["files"]:
            if e["path"] == release.ROMFS:
                e.update(sha256=hashlib.sha256(big).hexdigest(), size=len(big))
        (flash / "a" / "manifest.json").write_text(json.dumps(manifest))
    copies, before = 0, None
    for _ in range(TRIES + 3):
        assert wake(flash) == "a/station/__init__.mpy"
        now = (flash / "romfs.bin").stat().st_mtime_ns
        copies += before is not None and now != before
        before = now
    # the first boot created romfs.bin (erased) and, with the damaged image, copied too
    assert copies == (TRIES - 1 if damage == "image" else 0)
    entries = json.loads((flash / "a" / "manifest.json").read_text())["files"]
    want = next(e["sha256"] for e in entries if e["path"] == release.ROMFS)
    assert rom_mark(flash) == ({"want": want, "tries": TRIES} if damage == "image" else {})
    wake(flash, reset_cause="power_on")
    assert rom_mark(flash) == ({"want": want, "tries": 1, "rounds": 1}
                               if damage == "image" else {})
    if damage == "image":
        # Power-ons (a brown-out is one to the port) restart the copies ROUNDS rounds at most:
        # a sagging cell that resets the board must not wear the partition for ever.
        for _ in range(3 * ROUNDS * TRIES):
            wake(flash, reset_cause="power_on")
        assert rom_mark(flash) == {"want": want, "tries": TRIES, "rounds": ROUNDS - 1}
        before = (flash / "romfs.bin").stat().st_mtime_ns
        wake(flash, reset_cause="power_on")
        assert (flash / "romfs.bin").stat().st_mtime_ns == before
