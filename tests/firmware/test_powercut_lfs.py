# Power cuts at every write position of queue work on a real littlefs image.
# MicroPython only: littlefs is the ESP32's filesystem, and the unix port has vfs.VfsLfs2.
import sys

from station.flashqueue import FlashQueue
from support import MICROPYTHON, skip

BLOCK = 512
BLOCKS = 64
MOUNT = "/powercut"


class CutDevice:
    """A RAM block device (extended interface) that dies after `budget` writes: the write
    that hits the budget is torn (half its bytes land) and later writes and erases vanish."""

    def __init__(self, data, budget=None):
        self.data = bytearray(data)
        self.budget = budget
        self.writes = 0
        self.dead = False

    def _spend(self):
        if self.dead:
            return False
        if self.budget is not None and self.writes >= self.budget:
            self.dead = True
            return False
        self.writes += 1
        return True

    def readblocks(self, block, buf, off=0):
        a = block * BLOCK + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, block, buf, off=0):
        a = block * BLOCK + off
        if self._spend():
            self.data[a:a + len(buf)] = buf
        elif self.writes == self.budget and not getattr(self, "torn", False):
            self.torn = True
            half = len(buf) // 2
            self.data[a:a + half] = bytes(buf)[:half]

    def ioctl(self, op, arg):
        if op == 4:
            return BLOCKS
        if op == 5:
            return BLOCK
        if op == 6:  # erase
            if self._spend():
                self.data[arg * BLOCK:(arg + 1) * BLOCK] = b"\xff" * BLOCK
            return 0
        return 0


def payload(seq):
    return bytes([(seq * 31 + k) & 0xFF for k in range(26)])


def mounted(dev):
    import vfs

    try:
        vfs.umount(MOUNT)
    except OSError:
        pass
    vfs.mount(vfs.VfsLfs2(dev), MOUNT)


def workload(dev, log):
    """Appends, acks, bound drops and reopens; log holds only what completed before the cut.
    littlefs reads back what it programs, so after the cut it may raise: the power is gone."""
    try:
        _work(dev, log)
    except OSError:
        if not dev.dead:
            raise


def _work(dev, log):
    root = MOUNT + "/q"
    q = FlashQueue(root, max_records=24, segment_records=6)
    for i in range(220):
        if i % 10 == 9:
            q = FlashQueue(root, max_records=24, segment_records=6)  # a reboot
            if dev.dead:
                return
        log["target"] = q.next_seq  # a drop past the bound may ack up to here
        seq = q.append(payload(q.next_seq))
        if dev.dead:
            return
        log["stored"].append(seq)
        log["acked"] = q.acked
        if i % 5 == 4:
            batch = q.peek(4)
            log["target"] = max(q.acked, batch[-1][0])
            q.ack(batch[-1][0])
            if dev.dead:
                return
            log["acked"] = q.acked


def check_after_cut(image, log):
    dev = CutDevice(image)
    mounted(dev)  # littlefs must mount after any cut
    q = FlashQueue(MOUNT + "/q", max_records=24, segment_records=6)  # and the queue open
    present = q.peek(1000, 100000)
    seqs = [s for s, _ in present]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    for s, p in present:
        assert p == payload(s), s  # nothing half-written is ever returned
    # a completed ack is durable; one cut short may or may not have landed
    assert log["acked"] <= q.acked <= max(log["acked"], log["target"]), (q.acked, log)
    for s in log["stored"]:
        if s > q.acked:
            assert s in seqs, ("stored record lost", s, q.acked, seqs)
    newest = max(log["stored"] + seqs) if log["stored"] or seqs else 0
    assert q.next_seq > newest, ("sequence would repeat", q.next_seq, newest)
    # the queue keeps working after the cut
    assert q.append(payload(q.next_seq)) == q.next_seq - 1


def test_power_cut_at_every_write_keeps_every_stored_record():
    if not MICROPYTHON:
        skip("littlefs block-device simulation needs MicroPython's vfs.VfsLfs2")
    import vfs

    blank = CutDevice(bytes(BLOCK * BLOCKS))
    vfs.VfsLfs2.mkfs(blank)
    image = bytes(blank.data)
    dry = CutDevice(image)
    mounted(dry)
    workload(dry, {"stored": [], "acked": 0, "target": 0})
    total = dry.writes
    assert total >= 1000, total  # at least a thousand cut positions
    for budget in range(total):
        dev = CutDevice(image, budget)
        mounted(dev)
        log = {"stored": [], "acked": 0, "target": 0}
        workload(dev, log)
        assert dev.dead, budget
        check_after_cut(bytes(dev.data), log)
    vfs.umount(MOUNT)
    print("power cuts checked:", total, file=sys.stderr)
