# Firmware figures under the MicroPython unix port. Run by bench/run.py.
# Usage: micropython bench/firmware_cycle.py FIRMWARE_DIR WORK_DIR [all|one]
import gc
import sys
import time

import vfs

sys.path.insert(0, sys.argv[1])

from station import app, batch, codec, config, cycle, state  # noqa: E402
from station.flashqueue import FlashQueue  # noqa: E402
from station.hw import sim  # noqa: E402

WORK = sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else "all"


class CountingFlash:
    """RAM block device with ESP32-like 4 KiB erase blocks that counts what is written."""

    BLOCK = 4096
    BLOCKS = 64

    def __init__(self):
        self.data = bytearray(self.BLOCK * self.BLOCKS)
        self.programmed = 0
        self.erased = 0

    def readblocks(self, block, buf, off=0):
        a = block * self.BLOCK + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, block, buf, off=0):
        a = block * self.BLOCK + off
        self.data[a:a + len(buf)] = buf
        self.programmed += len(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.BLOCKS
        if op == 5:
            return self.BLOCK
        if op == 6:
            self.erased += 1
        return 0


def cycle_cost(n=100):
    cfg, _ = config.merge(config.DEFAULTS, {"thresholds_mm": [1000, 1500, 2000, 2500]})
    pins = config.pins(cfg)
    world = sim.World()
    q = FlashQueue(WORK + "/q-cpu")
    st = state.defaults()
    times = []
    allocs = []
    for i in range(n):
        world.level_mm = 800 + i * 10
        world.now += 600
        board = sim.Board(world)
        gc.collect()
        before = gc.mem_alloc()
        gc.disable()
        t0 = time.ticks_us()
        cycle.run(board, cfg, pins, st, q, None, 0)
        times.append(time.ticks_diff(time.ticks_us(), t0))
        allocs.append(gc.mem_alloc() - before)
        gc.enable()
    times.sort()
    allocs.sort()
    return times[n // 2], times[n * 9 // 10], allocs[n // 2]


def flash_per_reading(n=300):
    dev = CountingFlash()
    # The stubs type block devices as vfs.AbstractBlockDev, a name that does not exist at
    # run time; the protocol (readblocks/writeblocks/ioctl) is what littlefs uses.
    vfs.VfsLfs2.mkfs(dev)  # pyright: ignore[reportArgumentType]
    vfs.mount(vfs.VfsLfs2(dev), "/flash")  # pyright: ignore[reportArgumentType]
    cfg, _ = config.merge(config.DEFAULTS, {})
    pins = config.pins(cfg)
    world = sim.World()
    q = FlashQueue("/flash/queue")
    st = state.defaults()
    dev.programmed = dev.erased = 0
    for i in range(n):
        world.now += 600
        cycle.run(sim.Board(world), cfg, pins, st, q, None, 0)
        if i % 3 == 2:  # an upload every third reading acknowledges the queue
            q.ack(q.next_seq - 1)
    vfs.umount("/flash")
    return dev.programmed / n, dev.erased * CountingFlash.BLOCK / n


def one_wake():
    # A whole wake as main.py runs it, for the smallest-heap search.
    cfg, _ = config.merge(config.DEFAULTS, {"maintenance_s": 0})
    config.save(cfg, WORK + "/config.json")
    try:
        app.main(sim.Board(sim.World()), WORK + "/config.json", WORK + "/q-one")
    except sim.DeepSleep:
        print("wake ok")


if MODE == "one":
    one_wake()
else:
    med, p90, alloc = cycle_cost()
    prog, erase = flash_per_reading()
    full = codec.encode_full(1, 0, 1234, 3700, 0, 20.0, 50.0, 1013.0, 0.0)
    print("cycle_cpu_us_median", med)
    print("cycle_cpu_us_p90", p90)
    print("cycle_heap_alloc_bytes", alloc)
    print("flash_programmed_bytes_per_reading", int(prog))
    print("flash_erased_bytes_per_reading", int(erase))
    print("record_bytes_level", len(batch.to_level(full)))
    print("record_bytes_full", len(full))
    print("record_bytes_status", len(batch.encode_status(0, 0, 0, 0, None)))
    print("queue_frame_bytes_per_reading", 4 + len(full) + 10)
