# Runs first at every reset (every wake from deep sleep too). Tiny on purpose and never
# updated over the air: it puts the app slot (a/ or b/) that slot.json names on sys.path.
# A trial slot gets max_boots boots to report once (the app then confirms it); after that,
# or when the trial slot is incomplete, the known-good slot runs again and the pointer says
# what was rolled back. A missing or corrupt pointer falls back to the newest confirmed slot.
# A board flashed without slots (no slot.json, no a/ or b/) runs station/ from the root.
# With the station's firmware image the slot's code runs in place from flash (_rom, below).
import gc
import json
import os
import sys

ROM_IMAGE = "code.romfs"  # in each slot: its station/ as a ROMFS image (mizumori release)
ROM_MARK = "rom.json"  # {"sha": SHA-256 of what the romfs partition holds, checked}
BLOCK = 4096  # the partition's block (ports/esp32/esp32_partition.c: NATIVE_BLOCK_SIZE_BYTES)


def _has(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _gen(slot):
    try:
        with open(slot + "/confirmed") as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


def _pick():
    try:
        with open("slot.json") as f:
            p = json.loads(f.read())
        good = p["good"]
        if good not in ("a", "b"):
            raise ValueError(good)
    except (OSError, ValueError, KeyError, TypeError):
        best = max(("a", "b"), key=_gen)
        return best if _gen(best) >= 0 else None
    trial = p.get("trial")
    if not trial:
        return good
    p["boots"] = p.get("boots", 0) + 1
    if p["boots"] > p.get("max_boots", 3) or not _has(trial + "/manifest.json"):
        p = {"good": good, "rolled_back": p.get("release", "?"),
             "rollout": p.get("rollout"), "max_boots": p.get("max_boots", 3)}
        trial = good
    with open("slot.tmp", "w") as f:
        f.write(json.dumps(p))
    os.rename("slot.tmp", "slot.json")
    return trial


def _want(slot):
    """The SHA-256 the slot's signed manifest gives its code image, or None without one
    (its keys in the order both writers give them: path, sha256, size)."""
    with open(slot + "/manifest.json") as f:
        text = f.read()
    i = text.find('"%s"' % ROM_IMAGE)
    if i < 0:
        return None
    i = text.find('"', text.find(":", text.find('"sha256"', i)) + 1) + 1
    return text[i:i + 64]


def _sha(dev, size):
    """SHA-256 of the partition's first size bytes, read from the flash itself."""
    import binascii
    import hashlib

    h = hashlib.sha256()
    buf = bytearray(BLOCK)
    for n in range((size + BLOCK - 1) // BLOCK):
        dev.readblocks(n, buf)
        h.update(buf if size - n * BLOCK >= BLOCK else buf[:size - n * BLOCK])
    return binascii.hexlify(h.digest()).decode()


def _copy(dev, path):
    """The image into the partition, its first block last: a copy cut short leaves no valid
    image (the header is in block 0), so the port mounts nothing and the next boot copies
    again. writeblocks with three arguments erases the blocks it writes (esp32_partition.c).
    The image's size."""
    dev.ioctl(6, 0)  # MP_BLOCKDEV_IOCTL_BLOCK_ERASE of block 0
    first = bytearray(BLOCK)
    buf = bytearray(BLOCK)
    n = size = 0
    with open(path, "rb") as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            size += k
            buf[k:] = b"\xff" * (BLOCK - k)
            if n:
                dev.writeblocks(n, buf)
            else:
                first[:] = buf
            n += 1
    dev.writeblocks(0, first)
    return size


def _rom(slot, vfs):
    """Put the slot's code, from the romfs partition, first on sys.path: an .mpy imported
    from the filesystem is copied into the heap (its bytecode and names), one in a ROMFS
    runs where it lies in flash (docs/firmware.md, "Code in flash (ROMFS)"). The partition
    holds one slot's image; another's is copied in (once per update or rollback) and used
    from the next boot on, when the flash is mapped afresh. True when the code runs from
    it; otherwise the slot's own .mpy files run, as without the image."""
    while "/rom" in sys.path:  # the port may have mounted what the partition held
        sys.path.remove("/rom")
    while "/rom/lib" in sys.path:
        sys.path.remove("/rom/lib")
    try:
        vfs.umount("/rom")
    except OSError:
        pass
    dev = vfs.rom_ioctl(2, 0)  # AttributeError: an image built without ROMFS
    want = _want(slot)
    if isinstance(dev, int) or not want:  # no romfs partition (-EINVAL), no image
        return False
    try:
        with open(ROM_MARK) as f:
            mark = json.loads(f.read())
    except (OSError, ValueError):
        mark = {}
    if mark.get("sha") == want:
        vfs.mount(vfs.VfsRom(dev), "/rom")
        sys.path.insert(0, "/rom")
        return True
    if mark.get("failed") == want:
        return False  # copied once and did not read back: not again (flash wear)
    image = slot + "/" + ROM_IMAGE
    if os.stat(image)[6] > dev.ioctl(4, 0) * BLOCK:  # OSError: the slot has no image
        got = ""  # more than the partition holds
    else:
        with open(ROM_MARK, "w") as f:  # before the partition changes
            f.write('{"sha": ""}')
        try:
            got = _sha(dev, _copy(dev, image))
        except OSError:
            got = ""
    with open(ROM_MARK, "w") as f:
        f.write(json.dumps({"sha": got} if got == want else {"sha": "", "failed": want}))
    return False


# The port runs main.py only when boot.py succeeded (ports/esp32/main.c): whatever fails here
# (a full flash, a damaged pointer), main.py must still run, or the board stays awake.
try:
    _slot = _pick()
except Exception as e:  # noqa: BLE001
    print("boot.py:", repr(e))
    _slot = None
    for _s in ("a", "b"):
        if _has(_s + "/confirmed"):
            _slot = _s
            break
if _slot:
    sys.path.insert(0, _slot)
    try:
        import vfs

        _rom(_slot, vfs)
    except Exception as e:  # noqa: BLE001 - the slot's own files run
        if not isinstance(e, AttributeError):
            print("boot.py: code image:", repr(e))
gc.collect()
