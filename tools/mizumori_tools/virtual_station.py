# The "ROM" of a virtual station under the MicroPython unix port: boot the flash directory as
# an ESP32 boots its filesystem, boot.py then main.py. The rig writes sim.json (the simulated
# world for this wake) into the flash first; deep sleep writes sleep.ms and ends the process.
# With no main.py the process stays in the REPL, like a freshly flashed board.
# Usage: micropython [-i] virtual_station.py FLASH_DIR [FIRMWARE_DIR]
#   FIRMWARE_DIR: run the firmware from there instead of from the flash (no flashing needed).
#
# The firmware image's _boot.py (what mounts the filesystem) runs only when sim.json names
# an "image" (docs/rig.md, "The firmware image"):
#   "stock"     the port's own _boot.py and inisetup.py, as MicroPython's ESP32_GENERIC has them;
#   "mizumori"  ours, firmware/board/_boot.py, with the station package as frozen code.
# The flash's health is "fs": "corrupt" (littlefs will not mount at this boot; formatting
# repairs it) with "fs_first_sector_erased": true or false. A board that would stay awake for
# ever (a loop, or the REPL with nothing to run) ends with status 4 and awake.txt saying why.
import os
import sys

_HERE = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
if not _HERE.startswith("/"):
    _HERE = os.getcwd() + "/" + _HERE
BOARD_DIR = _HERE + "/../../firmware/board"
FROZEN = _HERE + "/../../firmware"  # what the image freezes: firmware/board/manifest.py
ROM_FILES = ("sim.json", "rtc.bin", "rtc.clock", "sleep.ms", "sleep.ms.tmp",
             "awake.txt", "romfs.bin", "imported.txt")  # not the filesystem (romfs.bin:
# the romfs partition; imported.txt: the rig's note of where the code ran from)
AWAKE = 4  # exit status of a board that would stay awake for ever
WDT = 5  # exit status of a watchdog reset: the board boots again at once, reset cause wdt

os.chdir(sys.argv[1])
ROOTS = [""] + sys.argv[2:3]  # the flash first, then the firmware directory if given
for _root in reversed(ROOTS):
    sys.path.insert(0, _root)


def _spec():
    try:
        with open("sim.json") as f:
            return __import__("json").load(f)
    except OSError:
        return {}


SPEC = _spec()


class _Machine:
    """What main.py reaches for when the application itself is broken, and the image's
    _boot.py: deep sleep, as the sim board sleeps (sleep.ms, then the process ends), and the
    reset cause. The only `machine` the ROM offers."""

    PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5

    @staticmethod
    def reset_cause():
        return {"power_on": 1, "brownout": 1, "hard": 2, "wdt": 3, "deepsleep": 4,
                "soft": 5}.get(SPEC.get("reset_cause", "deepsleep"), 0)

    @staticmethod
    def deepsleep(ms):
        # as hw/sim.py's: ms, clock, ext0 wake, awake ms; whole or not at all, because a rig
        # reads it as soon as it exists (it had read an empty file under load)
        with open("sleep.ms.tmp", "w") as f:
            f.write("%d %d 0 0" % (ms, SPEC.get("now", 0)))
        os.rename("sleep.ms.tmp", "sleep.ms")
        sys.exit(0)


sys.modules["machine"] = _Machine  # type: ignore


def _awake(why):
    """The board would stay awake for ever (about 45 mA: a battery in five days)."""
    with open("awake.txt", "w") as f:
        f.write(why + "\n")
    print("virtual station: awake for ever: " + why)
    sys.exit(AWAKE)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _wipe(d):
    """Formatting: everything on the flash goes, but the ROM's own files."""
    for entry in list(os.ilistdir(d)):
        path = d + "/" + entry[0]
        if entry[1] == 0x4000:
            _wipe(path)
            os.rmdir(path)
        elif not (d == "." and entry[0] in ROM_FILES):
            os.remove(path)


class _Partition:
    """esp32.Partition for the "vfs" partition, whose files are the flash directory: 2 MiB
    at 0x200000 in the port's 4 MiB layout (partitions-4MiB.csv), 1792 KiB at 0x240000 in
    the station image's (firmware/board/partitions.csv). flashbdev.bdev is this partition
    (ports/esp32/modules/flashbdev.py finds it by its label)."""

    TYPE_APP, TYPE_DATA = 0, 1
    BLOCK = 4096

    def __init__(self, spec):
        self.corrupt = spec.get("fs") == "corrupt"
        self.erased = bool(spec.get("fs_first_sector_erased"))
        self.at, self.size = ((0x240000, 0x1C0000) if spec.get("image") == "mizumori"
                              else (0x200000, 0x200000))

    def info(self):
        return (1, 0x81, self.at, self.size, "vfs", False)

    def ioctl(self, op, arg):
        return {4: self.size // self.BLOCK, 5: self.BLOCK}.get(op, 0)

    def readblocks(self, n, buf, off=0):
        # Erased flash reads 0xFF; a damaged filesystem anything else.
        fill = 0xFF if self.erased else 0x5A
        for i in range(len(buf)):
            buf[i] = fill

    def writeblocks(self, n, buf, off=None):
        pass


class _VfsLfs2:
    def __init__(self, bdev):
        if bdev.corrupt:
            raise OSError(84)  # lfs2_mount: LFS_ERR_CORRUPT (extmod/vfs_lfsx.c raises -err)
        self.bdev = bdev

    @staticmethod
    def mkfs(bdev):
        _wipe(".")
        bdev.corrupt = bdev.erased = False


class _Vfs:
    """vfs.mount and vfs.VfsLfs2 over the partition: a block device is autodetected
    (extmod/vfs.c, mp_vfs_autodetect: littlefs by its superblock, else FAT), and one that
    holds no filesystem raises OSError; the flash directory is the mounted filesystem."""

    VfsLfs2 = _VfsLfs2

    @staticmethod
    def mount(fs, path):
        if isinstance(fs, _Partition):
            if fs.corrupt:
                raise OSError(19 if fs.erased else 84)  # ENODEV: neither littlefs nor FAT
        elif not isinstance(fs, _VfsLfs2):
            raise OSError(22)


class _Esp32:
    Partition = _Partition


class _RomPartition(bytearray):
    """The station image's "romfs" partition (firmware/board/partitions.csv: 256 KiB at
    0x200000), as vfs.rom_ioctl(2, 0) gives it on the ESP32 port (ports/esp32/
    esp32_partition.c: an esp32.Partition found by that label, whose buffer is the
    partition mapped into memory). The object's own bytes are that mapping; `flash` is
    the partition itself, kept in romfs.bin across wakes, which readblocks reads
    (esp_partition_read) and writes change. The mapping is made at start-up and, as the
    strict case, keeps showing what it showed until the next boot (ESP-IDF has reported
    stale reads through a mapping after writes, espressif/esp-idf#12679); with
    "romfs_mapping_follows_writes" in sim.json it shows every write at once (which of the
    two a board does is for the bench). Its writes are the flash's, so a power cut
    (cut_after_writes) can fall between them. As NOR flash: erased bytes read 0xFF,
    writeblocks(n, buf) erases its 4 KiB blocks first and then writes
    (esp_partition_erase_range needs whole blocks), writeblocks(n, buf, off) only clears
    bits, ioctl 6 erases one block (MP_BLOCKDEV_IOCTL_BLOCK_ERASE)."""

    BLOCK = 4096
    SIZE = 0x40000
    PATH = "romfs.bin"
    flash = bytearray()  # set by load()
    follows = False

    @classmethod
    def load(cls):
        try:
            with open(cls.PATH, "rb") as f:
                part = cls(f.read())
        except OSError:
            part = cls(b"\xff" * cls.SIZE)
            with open(cls.PATH, "wb") as f:
                f.write(part)
        part.flash = bytearray(part)
        part.follows = bool(SPEC.get("romfs_mapping_follows_writes"))
        return part

    def _put(self, at, data):
        if at < 0 or at + len(data) > len(self.flash):
            raise OSError(22)  # ESP_ERR_INVALID_ARG: outside the partition
        with open(self.PATH, "r+b") as f:
            f.seek(at)
            f.write(data)
        self.flash[at:at + len(data)] = data
        if self.follows:
            self[at:at + len(data)] = data

    def readblocks(self, n, buf, off=0):
        at = n * self.BLOCK + off
        if at < 0 or at + len(buf) > len(self.flash):
            raise OSError(22)
        buf[:] = self.flash[at:at + len(buf)]

    def writeblocks(self, n, buf, off=None):
        at = n * self.BLOCK + (off or 0)
        if off is None:
            if len(buf) % self.BLOCK:
                raise OSError(22)  # ESP_ERR_INVALID_SIZE: erase whole blocks only
            self._put(at, b"\xff" * len(buf))
        self._put(at, bytes(a & b for a, b in zip(self.flash[at:at + len(buf)], buf)))

    def ioctl(self, op, arg):
        if op == 6:
            self._put(arg * self.BLOCK, b"\xff" * self.BLOCK)
        return {4: len(self.flash) // self.BLOCK, 5: self.BLOCK}.get(op, 0)


class _RomVfs:
    """vfs with the ROMFS support the station's image is built with (MICROPY_VFS_ROM): the
    unix port's own mount, umount and VfsRom, and rom_ioctl over the romfs partition (one
    segment; -EINVAL for anything but asking for it)."""

    def __init__(self, real):
        self.mount, self.umount, self.VfsRom = real.mount, real.umount, real.VfsRom
        self.partition = _RomPartition.load()

    def rom_ioctl(self, op, *args):
        if op == 1:
            return 1
        if op == 2 and args and args[0] == 0:
            return self.partition
        return -22


def _mount_romfs(vfs):
    """What the port does at start-up with ROMFS (extmod/vfs.c, mp_vfs_mount_romfs_protected:
    the partition mounted at /rom if it holds a ROMFS image, silently not otherwise; /rom and
    /rom/lib on sys.path after .frozen)."""
    try:
        vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2, 0)), "/rom")
    except OSError:
        return
    at = sys.path.index(FROZEN) + 1 if FROZEN in sys.path else len(sys.path)
    sys.path[at:at] = ["/rom", "/rom/lib"]


def _note_code_origin(write=open):
    """At the end of the process, imported.txt: the file the station package was imported
    from (the rig's view of where the code ran from, when sim.json asks with
    "note_code_origin"; nothing on a board). Not a write to the flash: never cut."""
    mod = sys.modules.get("station")
    with write("imported.txt", "w") as f:
        f.write(str(getattr(mod, "__file__", "")) if mod else "")


def _image_boot(run):
    """Run an image's _boot.py with the flash partition, vfs and esp32 at the hardware edge."""

    class _FlashBdev:
        bdev = _Partition(SPEC)

    fakes = {"vfs": _Vfs, "flashbdev": _FlashBdev, "esp32": _Esp32}
    for name in fakes:
        sys.modules[name] = fakes[name]  # type: ignore
    try:
        run(_FlashBdev.bdev)
    finally:
        for name in fakes:
            del sys.modules[name]


def _stock(bdev):
    """What the port's frozen modules do (MicroPython v1.29.0, ports/esp32/modules):
    _boot.py:5-11   try: if bdev: vfs.mount(bdev, "/")  except OSError: inisetup.setup()
    inisetup.py:5-15  check_bootsec(): the first sector not all 0xFF -> fs_corrupted()
    inisetup.py:18-34 fs_corrupted(): print the message, time.sleep(3), for ever
    inisetup.py:37-56 setup(): mkfs littlefs ("vfs" partition), mount, write a boot.py of
                      comments; then main.c runs boot.py, finds no main.py: the REPL."""
    import vfs

    try:
        vfs.mount(bdev, "/")
        return
    except OSError:
        pass
    buf = bytearray(bdev.ioctl(5, 0))
    bdev.readblocks(0, buf)
    if any(b != 0xFF for b in buf):
        print("The filesystem appears to be corrupted. If you had important data there, you\n"
              "may want to make a flash snapshot to try to recover it. Otherwise, perform\n"
              "factory reprogramming of MicroPython firmware (completely erase flash, followed\n"
              "by firmware programming).\n")
        _awake("inisetup.fs_corrupted(): the filesystem does not mount and its first sector "
               "is written; it prints this every 3 s and never sleeps")
    print("Performing initial setup")
    vfs.VfsLfs2.mkfs(bdev)
    vfs.mount(vfs.VfsLfs2(bdev), "/")
    with open("boot.py", "w") as f:
        f.write("# This file is executed on every boot (including wake-boot from deepsleep)\n"
                "#import esp\n#esp.osdebug(None)\n#import webrepl\n#webrepl.start()\n")
    _awake("inisetup.setup() formatted the filesystem: no main.py, the board waits at the "
           "REPL and never sleeps")


def _mizumori(bdev):
    with open(BOARD_DIR + "/_boot.py") as f:
        source = f.read()
    exec(source, {"__name__": "_boot"})


def _power_cut_after(n):
    """Cut the power before the (n+1)th change to the flash (an open for writing, a write,
    rename, remove or mkdir): what was written stays, nothing after it happens, and the
    process ends with status 3 without sleeping. Lets a test cut at every step."""
    import builtins

    real_open = builtins.open
    real_os = os
    left = [n]

    def change():
        if left[0] <= 0:
            sys.exit(3)
        left[0] -= 1

    class File:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            change()
            return self._f.write(data)

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def cut_open(path, mode="r", *args):
        if "w" in mode or "a" in mode or "+" in mode:
            change()
            return File(real_open(path, mode, *args))
        return real_open(path, mode, *args)

    class Os:
        def __getattr__(self, name):
            return getattr(real_os, name)

        def rename(self, a, b):
            change()
            real_os.rename(a, b)

        def remove(self, p):
            change()
            real_os.remove(p)

        def mkdir(self, p):
            change()
            real_os.mkdir(p)

    builtins.open = cut_open
    sys.modules["os"] = Os()  # type: ignore


def _run(name):
    for root in ROOTS:
        path = (root + "/" if root else "") + name
        try:
            with open(path) as f:
                source = f.read()
        except OSError:
            continue
        exec(source, {"__name__": "__main__"})
        return


_remove("awake.txt")
if SPEC.get("cut_after_writes") is not None:
    _power_cut_after(SPEC["cut_after_writes"])
_image = SPEC.get("image")
if _image:
    # A board boots its own filesystem only (boot.py and main.py are not frozen); the
    # mizumori image's station package is frozen code, found after the flash on sys.path.
    for _root in ROOTS[1:]:
        sys.path.remove(_root)
    ROOTS = [""]
    if _image == "mizumori":
        sys.path.insert(1, FROZEN)
        # built with ROMFS (the stock ESP32_GENERIC is not): the port mounts the partition
        # in mp_init(), before the image's _boot.py runs
        import vfs as _vfs

        _ROMVFS = _RomVfs(_vfs)
        _mount_romfs(_ROMVFS)
    _image_boot(_stock if _image == "stock" else _mizumori)
    if _image == "mizumori":
        sys.modules["vfs"] = _ROMVFS  # type: ignore
if SPEC.get("note_code_origin"):
    sys.atexit(_note_code_origin)
class _RomModule:
    """A module the ROM brings, loaded from its source at first use (MicroPython looks a
    dotted import up in sys.modules before the package's own folder)."""

    def __init__(self, name, path):
        self._name = name
        self._path = path
        self._ns = None

    def __getattr__(self, attr):
        if self._ns is None:
            ns = {"__name__": self._name}
            with open(self._path) as f:
                exec(f.read(), ns)
            self._ns = ns
        try:
            return self._ns[attr]
        except KeyError:
            raise AttributeError(attr) from None


def _sim_board_in_rom():
    """The simulated board is this virtual board's hardware, not part of the firmware: builds
    leave station/hw/sim.py and its part models, sim_*.py, out (paths.HOST_ONLY). When the
    station package the board will import (the first on sys.path once boot.py has run) has
    none, the ROM provides them from firmware/station/hw/, as an ESP32's own hardware needs
    nothing from the flash."""
    for root in sys.path:
        pkg = (root + "/" if root else "") + "station"
        try:
            if os.stat(pkg)[0] & 0x4000 == 0:
                continue
        except OSError:
            continue
        for name in ("/hw/sim.py", "/hw/sim.mpy"):
            try:
                os.stat(pkg + name)
                return
            except OSError:
                pass
        break
    hw = FROZEN + "/station/hw/"
    for name in os.listdir(hw):
        if name.startswith("sim") and name.endswith(".py"):
            mod = "station.hw." + name[:-3]
            sys.modules[mod] = _RomModule(mod, hw + name)  # type: ignore


def _hold_service_button():
    """The rig's "hold the service button": the sim board reads its service pin low at this
    wake (what sim.json's "service_held" says; the sim board itself takes no such key)."""
    from station.hw import sim

    make = sim.from_spec

    def from_spec(path):
        board = make(path)
        board.held = True
        return board

    sim.from_spec = from_spec


try:
    _run("boot.py")
    _sim_board_in_rom()
    if SPEC.get("service_held"):
        _hold_service_button()
    _run("main.py")
except BaseException as _e:  # noqa: BLE001
    if type(_e).__name__ != "WatchdogReset":  # hw/sim.py's: the chip resets, RTC memory kept
        raise
    print("virtual station: watchdog reset:", _e)
    sys.exit(WDT)
