# The installer's file work (docs/ota.md), once the manifest's signature is checked: the
# release's needs against the board's battery and flash, each file fetched (or copied from
# the running slot) into the target slot and checked, what the slot no longer needs removed.
# station.ota_install imports it after the check, so that it is not in the heap while
# Ed25519's big integers are (docs/firmware.md, RAM budget).
import binascii
import hashlib
import os

from station import fsutil
from station.ota import Refused
from station.ota_install import MANIFEST, _entries, _get

FLASH_MARGIN = 16384  # left free for the queue and config after an update


def check_resources(board, manifest, target, battery_mv):
    """manifest: its fields but its entries (_fetch_manifest)."""
    need_mv = int(manifest.get("min_battery_mv") or 0)
    if battery_mv is None or battery_mv < need_mv:
        raise Refused("battery %s mV below the release's minimum %d mV" % (battery_mv, need_mv))
    # The new slot is a full copy (unchanged files are copied, not downloaded); what the
    # target slot holds now is replaced.
    need = FLASH_MARGIN
    for e in _entries(MANIFEST):
        need += e["size"] - size(target + "/" + e["path"])
    free = board.flash_free()
    if free < need:
        raise Refused("not enough flash: %d bytes free, %d needed" % (free, need))


def fetch_file(conn, o, creds, entry, slot, target):
    """Put one file into the target slot, verified. The bytes downloaded, or None when it
    came from the flash (already there, or copied from the running slot)."""
    dest = target + "/" + entry["path"]
    if file_sha256(dest) == entry["sha256"]:
        return None  # there from an earlier try, or an earlier release in this slot
    dirs(dest)
    here = slot + "/" + entry["path"]
    part = dest + ".part"
    got = None
    if file_sha256(here) == entry["sha256"]:
        copy(here, part)  # unchanged: copy from the running slot, no download
    else:
        have = size(part)
        if have >= entry["size"]:
            fsutil.remove(part)
            have = 0
        with open(part, "ab") as f:
            got = _get(conn, o, creds, "files/" + entry["path"], f, have)
    if file_sha256(part) != entry["sha256"]:
        fsutil.remove(part)
        raise Refused("sha256 mismatch for %s" % entry["path"])
    fsutil.remove(dest)
    os.rename(part, dest)
    return got


def remove_stale(target):
    keep = {target + "/" + e["path"] for e in _entries(MANIFEST)}
    keep.add(target + "/confirmed")

    def walk(d):
        for name in fsutil.listdir(d):
            path = d + "/" + name
            if is_dir(path):
                walk(path)
            elif path not in keep:
                fsutil.remove(path)

    walk(target)


def file_sha256(path):
    """Hex SHA-256 of a file, or None when it does not exist."""
    try:
        f = open(path, "rb")
    except OSError:
        return None
    h = hashlib.sha256()
    with f:
        while True:
            b = f.read(1024)
            if not b:
                break
            h.update(b)
    return binascii.hexlify(h.digest()).decode()


def size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


def is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def dirs(path):
    d = path.rsplit("/", 1)[0]
    fsutil.makedirs(d)


def replace(tmp, path):
    """rename over path (atomic on littlefs; FAT refuses to rename onto a file: fsutil)."""
    try:
        os.rename(tmp, path)
    except OSError:
        os.remove(path)
        os.rename(tmp, path)


def copy(src, dst):
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while True:
            b = fi.read(1024)
            if not b:
                break
            fo.write(b)
