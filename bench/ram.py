"""RAM figures of the firmware (docs/firmware.md, "RAM budget"): the smallest MicroPython heap
in which one whole wake still does its work, and the live heap (after gc.collect()) at each
stage of it. Run by bench/run.py; tests/test_ram_budget.py enforces the budgets with it.

A wake here is what a board runs: the application installed in slot a/ as a release build
compiles it (.mpy), `station.app.main` on the sim board, provisioned for a local HTTP server
(a stand-in for the fleet server, in a thread of this process) that acknowledges the upload
and takes the OTA report. The OTA wake is also offered a signed release: it fetches the
manifest and its signature, checks them (Ed25519 over SHA-512) and installs the update.

The unix port is 64-bit (objects about 1.4x an ESP32's): the budgets, 56 KiB for a wake with
an upload and 72 KiB for the OTA check on a 32-bit build, are enforced here as 80 and 100 KiB
of `-X heapsize` as on a board. The sim board shares the measured heap, so a wake is given
the budget plus its credit (`credit_kib`): the sim board's live heap (its modules, World
and Board, measured after the firmware modules the same wake loaded) less what a real
board's hardware module, hw/esp32.py, holds in its place. What the sim allocates while the
wake runs (its sockets' read buffers, as py/stream.c allocates them on a board, and its
own bookkeeping) stays on the firmware's side of the account."""

import json
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mizumori_tools import paths, release

MPY = paths.micropython()
BUDGET_WAKE_KIB = 80  # 64-bit unix port; 56 KiB on a 32-bit build (the ESP32's first heap area)
BUDGET_OTA_KIB = 100  # 64-bit unix port; 72 KiB on a 32-bit build
RELEASE = "9.9.9"
OFFER = {"release": RELEASE, "rollout": 1, "token": "ram-bench", "url": "/ota/"}

# Runs under MicroPython, in the station's flash folder: one wake, as main.py runs it after
# boot.py put slot a/ on sys.path (as small as main.py: its own code sits in the same heap).
# Prints "wake ok" when the wake did its work: its state saved, its reading stored and
# acknowledged, no error, and in the OTA wake the update installed as a trial. (A wake that
# runs out of heap in its cycle may fail to save its state too, and then leaves no error
# behind and an empty queue: only the saved state and the stored reading tell it from a
# good wake.)
WAKE = """
import sys
sys.path[0:0] = SLOT_PATH
from station import guard  # noqa  (main.py imports it first and keeps it)
from station import app  # noqa
mark("after imports")
hook(app)
from station.hw import sim  # noqa
board = sim.Board(sim.World())
mark("with the sim board")
try:
    app.main(board, "config.json", "queue")
except sim.DeepSleep:
    pass
mark("end of wake")
from station import state  # noqa
from station.flashqueue import FlashQueue  # noqa
st = state.load(board)
q = FlashQueue("queue")
ok = (st["wakes"] == 1 and not st["err"] and not st["uplink"] and q.next_seq == 2
      and q.acked == 1 and q.depth() == 0)
if sys.argv[1] == "ota":
    import json
    with open("slot.json") as f:
        ok = ok and json.loads(f.read()).get("trial") == "b"
loaded.update(k for k in sys.modules if k.startswith("station"))
for label, n in marks:
    print("mark", n, label)
print("sim", " ".join(sorted(k for k in sys.modules if k.startswith("station.hw.sim"))))
print("firmware", " ".join(sorted(k for k in loaded if not k.startswith("station.hw.sim"))))
print("wake ok" if ok else "wake incomplete: wakes %d, err=%r uplink=%r, queue %d..%d acked" % (
    st["wakes"], st["err"], st["uplink"], q.acked, q.next_seq - 1))
"""
NO_STAGES = ("marks = []\nloaded = set()\n\n\ndef mark(label):\n    pass\n\n\n"
             "def hook(app):\n    pass\n")
# Put before WAKE for the "stages" run: records the live heap after gc.collect() at each
# stage. A stage is marked by wrapping a function that stays in the heap anyway: app's, and
# http's, SHA-512's and Ed25519's as they are imported (an __import__ hook, so nothing is
# imported early). Never a function of a module the wake lets go before its end (cycle,
# uplink): a wrapper, or a hook that ran while it was imported, could keep it in the heap.
STAGES = """
import builtins, gc, sys
marks = []
loaded = set()  # the station's modules seen at any stage


def mark(label):
    loaded.update(k for k in sys.modules if k.startswith("station"))
    if not [m for m in marks if m[0] == label]:
        gc.collect()
        marks.append((label, gc.mem_alloc() - base))


def after(owner, name, label):
    fn = getattr(owner, name)

    def wrapped(*a, **k):
        r = fn(*a, **k)
        mark(label)
        return r
    setattr(owner, name, wrapped)


def before(owner, name, label):
    fn = getattr(owner, name)

    def wrapped(*a, **k):
        mark(label)
        return fn(*a, **k)
    setattr(owner, name, wrapped)


# module: (a name it defines last, so that the hook waits until it is loaded; the hook)
HOOKS = {
    "station.http": ("json_body", lambda m: (
        before(m.Connection, "request", "upload built"),
        after(m.Connection, "request", "reply received"))),
    "station.ed25519": ("verify", lambda m: (
        before(m, "verify", "ota: manifest and signature read"),
        after(m, "verify", "ota: signature checked"))),
    "station.sha512": ("digest", lambda m: after(m.SHA512, "digest",
                                                 "ota: inside the check (SHA-512)")),
}
_import = builtins.__import__


def hooked(name, *a):
    m = _import(name, *a)
    for key in list(HOOKS):
        mod = sys.modules.get(key)
        if mod is not None and hasattr(mod, HOOKS[key][0]):
            HOOKS.pop(key)[1](mod)
    if not HOOKS:
        builtins.__import__ = _import
    return m


def hook(app):
    after(app, "_cycle", "after sampling")
    after(app, "deliver", "upload done")
    builtins.__import__ = hooked


gc.collect()
base = gc.mem_alloc()  # the heap above what the interpreter and these hooks hold
"""
# The sim board's share of the heap: its modules that a wake loaded, with its World and
# Board, imported after the firmware modules the same wake loaded (so that the names and
# modules the two share, station.pins and the station.hw package among them, count as the
# firmware's). argv: the firmware's modules, "--", the sim's (one argument each: the unix
# port stops with "uncaught NLR" on an argument of 256 characters or more).
SIM_SHARE = """
import gc, sys
sys.path[0:0] = SLOT_PATH
cut = sys.argv.index("--")
for name in sys.argv[1:cut]:
    __import__(name)
gc.collect()
before = gc.mem_alloc()
from station.hw import sim  # noqa
board = sim.Board(sim.World())
for name in sys.argv[cut + 1:]:
    __import__(name)
gc.collect()
print(gc.mem_alloc() - before)
"""
# What a real board holds instead: its hardware layer's Python module (station/hw/esp32.py,
# over machine and esp32, which are C) after the same firmware modules. machine and esp32
# are stand-ins here with the few names the module reads as it loads. argv: as SIM_SHARE.
ESP32_SHARE = """
import gc, sys


class Stub:
    pass


machine, esp32, pin = Stub(), Stub(), Stub()
pin.IRQ_FALLING = 2
machine.Pin = pin
for i, name in enumerate(("PWRON_RESET", "HARD_RESET", "WDT_RESET", "DEEPSLEEP_RESET",
                          "SOFT_RESET")):
    setattr(machine, name, i + 1)
sys.modules["machine"] = machine
sys.modules["esp32"] = esp32
sys.path[0:0] = SLOT_PATH
for name in sys.argv[1:sys.argv.index("--")]:
    __import__(name)
gc.collect()
before = gc.mem_alloc()
from station.hw import esp32 as backend  # noqa
gc.collect()
print(gc.mem_alloc() - before)
"""


# Put before every script: where the application is imported from. From the slot's files
# (FILES), or (ROM) from its code image mounted at /rom ahead of the slot, as boot.py does
# on a board with the station's image (docs/firmware.md, "Code in flash (ROMFS)"). On a
# board the image is the romfs partition, mapped flash; here it is read into a bytearray
# first, one block at the bottom of the heap, and its size is not counted (rom_kib).
FILES = 'import sys\nSLOT_PATH = ["a"]\n'
ROM = """import sys, vfs
SLOT_PATH = ["/rom", "a"]
_img = bytearray(%d)
with open("code.romfs", "rb") as _f:
    _f.readinto(_img)
vfs.mount(vfs.VfsRom(_img), "/rom")
del _f
"""


def _prelude(flash: Path, rom: bool) -> str:
    return ROM % (flash / "code.romfs").stat().st_size if rom else FILES


def _bundle_files(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            if f is not None:
                out[m.name] = f.read()
        return out


class Releases:
    """The running release (slot a/) and an update to it, both signed release bundles."""

    def __init__(self, tmp: Path) -> None:
        # One signing key for every run (a release engineer's is random): the signature's
        # numbers change the Ed25519 check's allocations by a few bytes, and near the limit
        # that alone decides whether the OTA wake fits (at 100 KiB it did with 5 keys of 6).
        signer = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
        key = tmp / "release.key"
        key.write_bytes(signer.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        self.public_hex = release.public_hex(signer)
        self.running = _bundle_files(release.build(key, tmp / "running"))
        self.update = _bundle_files(release.build(key, tmp / "update", version=RELEASE))


def install(flash: Path, rel: Releases, server: str) -> None:
    """A provisioned board's flash: the running release in slot a/ (plus the sim board's
    modules, which a release leaves out, compiled like the application: a real board's
    hardware is C code that costs the heap nothing), the release key, credentials and
    configuration; and code.romfs, slot a/'s .mpy files as a ROMFS image (the release's
    own, with the sim board's modules in it too)."""
    for name, data in rel.running.items():
        if name.startswith("files/"):
            dest = flash / "a" / name[len("files/"):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
    (flash / "a" / "manifest.json").write_bytes(rel.running["manifest.json"])
    (flash / "a" / "confirmed").write_text("1")
    (flash / "slot.json").write_text(json.dumps({"good": "a"}))
    for module in sorted(paths.SIM_BOARD):
        mpy = (flash / "a" / module).with_suffix(".mpy")
        subprocess.run([release.mpy_cross(), "-s", module, "-o", str(mpy),
                        str(paths.FIRMWARE / module)], check=True)
    slot = flash / "a"
    (flash / "code.romfs").write_bytes(release.romfs_image(
        {str(p.relative_to(slot)): p.read_bytes() for p in slot.rglob("*.mpy")}))
    (flash / "release.pub").write_text(rel.public_hex + "\n")
    (flash / "secrets.json").write_text(json.dumps({
        "device_id": 1, "secret": "11" * 32, "server": server, "ca": None,
        "wifi": {"ssid": "mizumori-sim", "password": "virtual-station"}}))
    # upload_every 1: this wake uploads (as every wake in flood mode does).
    (flash / "config.json").write_text(json.dumps({"upload_every": 1, "maintenance_s": 0}))


@contextmanager
def fleet_server(rel: Releases, offer: bool) -> Iterator[str]:
    """A stand-in for the fleet server: acknowledges every upload, takes OTA reports, offers
    the update when `offer` and serves its files."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, code: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply: dict[str, Any] = {}
            if self.path == "/api/ingest":
                # as the fleet server replies: the server's time in every reply
                reply = {"ack_upto": 2**31 - 1, "ota": OFFER if offer else None,
                         "server_time": int(time.time())}
            self._reply(200, json.dumps(reply).encode())

        def do_GET(self) -> None:  # noqa: N802
            data = rel.update.get(self.path.removeprefix(str(OFFER["url"])))
            if data is None:
                self._reply(404, b"{}")
            else:
                self._reply(200, data, "application/octet-stream")

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a wake that ran out of heap hangs up mid-reply: expected in the search

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def wake(rel: Releases, ota: bool, heap_kib: int | None = None,
         stages: bool = False, rom: bool = False) -> subprocess.CompletedProcess[str]:
    """One wake of a freshly provisioned board in a heap of heap_kib (None: the port's
    default), its code from the slot's files or (rom) its code image; its output says
    "wake ok" when it did its work."""
    with tempfile.TemporaryDirectory(prefix="mizumori-ram-") as tmp, \
            fleet_server(rel, ota) as url:
        flash = Path(tmp)
        install(flash, rel, url)
        script = flash / "wake_script.py"
        script.write_text(_prelude(flash, rom) + (STAGES if stages else NO_STAGES) + WAKE)
        cmd = [MPY] + (["-X", f"heapsize={heap_kib}K"] if heap_kib else [])
        return subprocess.run(cmd + [str(script), "ota" if ota else "up"],
                              cwd=flash, capture_output=True, text=True, timeout=300)


def rom_kib(rel: Releases) -> int:
    """The code image's size in whole KiB, rounded down (what is left of a KiB counts
    against the firmware): what a wake from the image is not charged for."""
    with tempfile.TemporaryDirectory(prefix="mizumori-ram-") as tmp:
        install(Path(tmp), rel, "http://127.0.0.1:9")
        return (Path(tmp) / "code.romfs").stat().st_size // 1024


def runs(rel: Releases, ota: bool, heap_kib: int, rom: bool = False) -> bool:
    return "wake ok" in wake(rel, ota, heap_kib, rom=rom).stdout


def smallest_heap_kib(rel: Releases, ota: bool, lo: int = 16, hi: int = 512,
                      rom: bool = False) -> int:
    """The smallest heap (KiB) in which the wake still does its work (binary search); with
    rom, the code image's KiB included."""
    if not runs(rel, ota, hi, rom):
        proc = wake(rel, ota, hi, rom=rom)
        raise RuntimeError(proc.stdout + proc.stderr)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if runs(rel, ota, mid, rom) else (mid + 1, hi)
    return lo


def stages_and_modules(rel: Releases, ota: bool, rom: bool = False) -> tuple[
        list[tuple[str, int]], list[str], list[str]]:
    """(stage, live heap in bytes after gc.collect()) through one wake, above what the
    interpreter holds before the application is imported; the sim board's modules that
    wake loaded, and the firmware's."""
    proc = wake(rel, ota, stages=True, rom=rom)
    if "wake ok" not in proc.stdout:
        raise RuntimeError(proc.stdout + proc.stderr)
    marks, sims, firmware = [], [], []
    for line in proc.stdout.splitlines():
        if line.startswith("mark "):
            _, n, label = line.split(" ", 2)
            marks.append((label, int(n)))
        elif line.startswith("sim "):
            sims = line.split()[1:]
        elif line.startswith("firmware "):
            firmware = line.split()[1:]
    return marks, sims, firmware


def stages(rel: Releases, ota: bool, rom: bool = False) -> list[tuple[str, int]]:
    return stages_and_modules(rel, ota, rom)[0]


def _share(rel: Releases, script: str, firmware: list[str], sims: list[str],
           rom: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="mizumori-ram-") as tmp:
        flash = Path(tmp)
        install(flash, rel, "http://127.0.0.1:9")
        (flash / "share.py").write_text(_prelude(flash, rom) + script)
        proc = subprocess.run([MPY, "share.py", *firmware, "--", *sims], cwd=flash,
                              capture_output=True, text=True, timeout=60, check=True)
        return int(proc.stdout.split()[-1])


def sim_share(rel: Releases, firmware: list[str], sims: list[str], rom: bool = False) -> int:
    """Live heap (bytes) of the sim board in a wake that loaded these modules."""
    return _share(rel, SIM_SHARE, firmware, sims, rom)


def esp32_share(rel: Releases, firmware: list[str], rom: bool = False) -> int:
    """Live heap (bytes) of a real board's hardware module (hw/esp32.py) in its place."""
    return _share(rel, ESP32_SHARE, firmware, [], rom)


def credit_kib(rel: Releases, ota: bool, rom: bool = False) -> tuple[int, int, int]:
    """(credit, sim board, esp32 module): what the wake's heap is given for the sim board,
    whole KiB rounded down (what is left of a KiB counts against the firmware): the sim
    board's live heap less the real board's hardware module's, in bytes. With rom both
    run from the code image, as they would on a board with it."""
    _, sims, firmware = stages_and_modules(rel, ota, rom)
    sim, real = sim_share(rel, firmware, sims, rom), esp32_share(rel, firmware, rom)
    return (sim - real) // 1024, sim, real


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mizumori-ram-") as tmp:
        rel = Releases(Path(tmp))
        print("Firmware RAM under the MicroPython unix port (64-bit: an ESP32's objects are"
              " about 0.7x; docs/firmware.md, RAM budget)")
        image = rom_kib(rel)
        for rom, where in ((True, f"code in flash (its {image} KiB image not counted)"),
                           (False, "code from the slot's .mpy files")):
            print(f"  {where}:")
            for ota_wake, budget, what in ((False, BUDGET_WAKE_KIB, "wake with upload"),
                                           (True, BUDGET_OTA_KIB, "wake with OTA")):
                whole = smallest_heap_kib(rel, ota_wake, rom=rom) - (image if rom else 0)
                credit, sim, real = credit_kib(rel, ota_wake, rom)
                print(f"    smallest heap, {what}: {whole} KiB with the sim board; as on a"
                      f" board {whole - credit} KiB (budget {budget} KiB)")
                print(f"      sim board {sim} B, the real board's hw/esp32.py {real} B in its"
                      f" place: {credit} KiB credited")
            for ota_wake in (False, True):
                marks = stages(rel, ota_wake, rom)
                print(f"    live heap after gc.collect(), wake with "
                      f"{'OTA' if ota_wake else 'upload'} (the sim board in it):")
                for label, n in marks:
                    if not ota_wake or label.startswith("ota") or label == "end of wake":
                        print(f"      {label:38s} {n:7d} B")


if __name__ == "__main__":
    main()
