# Runs first at every reset (every wake from deep sleep too). Tiny on purpose and never
# updated over the air: it puts the app slot (a/ or b/) that slot.json names on sys.path.
# A trial slot gets max_boots boots to report once (the app then confirms it); after that,
# or when the trial slot is incomplete, the known-good slot runs again and the pointer says
# what was rolled back. A missing or corrupt pointer falls back to the newest confirmed slot.
# A board flashed without slots (no slot.json, no a/ or b/) runs station/ from the root.
# With the station's firmware image the slot's code runs in place from flash (_rom, below).
import sys

# The port mounts what the romfs partition holds at /rom at start-up, with /rom and /rom/lib
# on sys.path (extmod/vfs.c): off the path before anything is imported, since a module there
# named os, json, binascii or hashlib would be imported instead of the built-in one. _rom
# puts the partition back, first, only once it has checked it.
for _p in ("/rom", "/rom/lib"):
    while _p in sys.path:
        sys.path.remove(_p)

import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

ROM_IMAGE = "code.romfs"  # in each slot: its station/ as a ROMFS image (mizumori release)
ROM_MARK = "rom.json"  # {"want": SHA-256, "tries": n[, "rounds": r]}: copies of that image
ROM_TRIES = 3  # copies of one image until the next power-on: not worn out by one that fails
ROM_ROUNDS = 3  # rounds of ROM_TRIES, a power-on starting the next: a brown-out is a power-on
# to the port (machine.reset_cause), so a sagging cell must not restart them for ever
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


def _image(slot):
    """(SHA-256, size) that the slot's manifest gives its code image (signed, for an
    update), or None without one. Read from the entry's own braces, its keys in any order."""
    with open(slot + "/manifest.json") as f:
        text = f.read()
    at = text.find('"%s"' % ROM_IMAGE)
    if at < 0:
        return None
    entry = text[text.rfind("{", 0, at):text.find("}", at)]

    def value(key):
        i = entry.find(":", entry.find('"%s"' % key)) + 1
        while entry[i] in ' "':
            i += 1
        j = i
        while j < len(entry) and entry[j] not in '", ':
            j += 1
        return entry[i:j]

    return value("sha256"), int(value("size"))


def _copy(dev, path):
    """The image into the partition, its first block last (a copy cut short has no header,
    which the port's mount at start-up looks for). writeblocks with three arguments erases
    the blocks it writes (esp32_partition.c: esp_partition_erase_range, then _write)."""
    first = bytearray(BLOCK)
    buf = bytearray(BLOCK)
    n = 0
    with open(path, "rb") as f:
        dev.ioctl(6, 0)  # MP_BLOCKDEV_IOCTL_BLOCK_ERASE of block 0, once the file opened
        while True:
            k = f.readinto(buf)
            if not k:
                break
            buf[k:] = b"\xff" * (BLOCK - k)
            if n:
                dev.writeblocks(n, buf)
            else:
                first[:] = buf
            n += 1
    dev.writeblocks(0, first)


def _rom(slot, vfs):
    """Put the slot's code, from the romfs partition, first on sys.path: an .mpy imported
    from the filesystem is copied into the heap (its bytecode and names), one in a ROMFS
    runs where it lies in flash (docs/firmware.md, "Code in flash (ROMFS)"). Used only when
    what the partition holds, read through the mapping the code will run from, hashes to
    what the slot's manifest says. Otherwise the slot's image is copied in (once per update
    or rollback; ROM_TRIES times at most, again after a power-on, for ROM_ROUNDS rounds),
    and used once the mapping shows it whole (at once, or from the next boot); until then
    the slot's .mpy files run. True when the code runs from the partition."""
    try:
        vfs.umount("/rom")  # off sys.path already (the top of this file)
    except OSError:
        pass
    if not hasattr(vfs, "rom_ioctl"):
        return False  # an image built without ROMFS (the stock ESP32_GENERIC)
    dev = vfs.rom_ioctl(2, 0)
    image = _image(slot)
    if isinstance(dev, int) or image is None:  # no romfs partition (-EINVAL), no image
        return False
    want, size = image
    mapped = memoryview(dev)  # the partition as the code would run from it
    if _holds(mapped, want, size):
        return _mount(vfs, dev)
    try:
        with open(ROM_MARK) as f:
            mark = json.loads(f.read())
        if mark["want"] != want:
            raise ValueError
        tries, rounds = max(0, int(mark["tries"])), max(0, int(mark.get("rounds", 0)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        tries = rounds = 0
    if tries >= ROM_TRIES and rounds + 1 < ROM_ROUNDS and _power_on():
        tries, rounds = 0, rounds + 1  # the board was power-cycled: another round
    path = slot + "/" + ROM_IMAGE
    why = ("larger than the partition" if size > len(mapped)
           else "the file is not the manifest's size" if _size(path) != size
           else "its copies failed%s" % (" (power-cycle the board to try again)"
                                          if rounds + 1 < ROM_ROUNDS else "")
           if tries >= ROM_TRIES else None)
    if why:
        print("boot.py: code image not used:", why)
        return False
    with open(ROM_MARK, "w") as f:  # counted before the partition changes
        mark = {"want": want, "tries": tries + 1}
        if rounds:
            mark["rounds"] = rounds
        f.write(json.dumps(mark))
    _copy(dev, path)
    # The mapping may still show what the partition held before (the port mapped it at
    # start-up; espressif/esp-idf#12679): used now only if it shows the copy whole, else
    # from the next boot, when the flash is mapped afresh.
    return _holds(mapped, want, size) and _mount(vfs, dev)


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _power_on():
    import machine

    return machine.reset_cause() == machine.PWRON_RESET


def _holds(mapped, want, size):
    """Whether the mapped partition starts with the image whose SHA-256 is want."""
    import binascii
    import hashlib

    if size > len(mapped):
        return False
    return binascii.hexlify(hashlib.sha256(mapped[:size]).digest()).decode() == want


def _mount(vfs, dev):
    vfs.mount(vfs.VfsRom(dev), "/rom")
    sys.path.insert(0, "/rom")
    return True


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
        print("boot.py: code image:", repr(e))
gc.collect()
