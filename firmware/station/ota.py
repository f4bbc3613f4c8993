# Over-the-air update of the application (docs/ota.md). The app lives in one of two slot
# directories, a/ and b/; boot.py (never updated over the air) picks one from slot.json.
# An offer from the server is worked on across wakes, each step persisted in ota/offer.json
# so a power cut at any moment resumes or repeats that step:
#   offered -> (manifest verified) downloading -> downloaded -> installed (slot.json points at
#   the new slot as a trial) -> reboot -> first successful report -> confirmed.
# boot.py rolls a trial back after too many boots without that report (crash loop, hang).
# Every transition and refusal is queued in ota/events.json and reported to the server.
import binascii
import hashlib
import json
import os
import sys

from station import ed25519, fsutil, http

SLOTS = ("a", "b")
POINTER = "slot.json"
DIR = "ota"
OFFER = "ota/offer.json"
EVENTS = "ota/events.json"
CRASH = "crash.txt"  # written by main.py when the app raises
FAILED = "ota/failed"  # "release rollout" that last failed or rolled back: not retried
KEY = "release.pub"  # the release engineer's Ed25519 public key (hex), set at provisioning
MAX_EVENTS = 30
FLASH_MARGIN = 16384  # left free for the queue and config after an update
MAX_TRIES = 5  # wakes with a failing download before the offer is given up
TRIAL_BOOTS = 3  # boots of a trial without a successful report before boot.py rolls back


class Refused(Exception):
    """The offer cannot be installed; the message is the reason reported to the server."""


def running_slot():
    """The slot the application was imported from, or None (flashed without slots, or a
    test run from firmware/)."""
    import station

    path = getattr(station, "__file__", "") or ""
    first = path.lstrip("/").split("/")[0]
    return first if first in SLOTS else None


def other(slot):
    return "b" if slot == "a" else "a"


def read_pointer():
    try:
        p = json.loads(fsutil.read_bytes(POINTER) or b"")
        return p if isinstance(p, dict) and p.get("good") in SLOTS else None
    except ValueError:
        return None


def write_pointer(p):
    fsutil.write_atomic(POINTER, json.dumps(p).encode())


def running_version():
    from station import VERSION

    return VERSION


def mpy_version():
    """The .mpy format this interpreter loads ("6.3"), or None under CPython."""
    v = getattr(sys.implementation, "_mpy", None)
    return None if v is None else "%d.%d" % (v & 0xFF, (v >> 8) & 3)


# --- events --------------------------------------------------------------------------------

def record(release, state, reason="", t=0):
    events = pending_events()
    events.append({"release": release, "state": state, "reason": reason[:200], "t": t})
    fsutil.makedirs(DIR)
    fsutil.write_atomic(EVENTS, json.dumps(events[-MAX_EVENTS:]).encode())


def pending_events():
    try:
        events = json.loads(fsutil.read_bytes(EVENTS) or b"[]")
        return events if isinstance(events, list) else []
    except ValueError:
        return []


def events_sent(n):
    """Drop the first n events (the server has them); later ones stay queued."""
    rest = pending_events()[n:]
    if rest:
        fsutil.write_atomic(EVENTS, json.dumps(rest).encode())
    else:
        fsutil.remove(EVENTS)


# --- the offer -----------------------------------------------------------------------------

def load_offer():
    try:
        o = json.loads(fsutil.read_bytes(OFFER) or b"null")
        return o if isinstance(o, dict) and "release" in o else None
    except ValueError:
        return None


def save_offer(o):
    fsutil.makedirs(DIR)
    fsutil.write_atomic(OFFER, json.dumps(o).encode())


def accept(offer, now=0):
    """Take an offer from an ingest reply. One at a time: the one in progress is kept
    (a repeated offer of it is just the server reminding us)."""
    if not offer or not isinstance(offer, dict) or "release" not in offer:
        return
    current = load_offer()
    if current is not None and current["release"] == offer["release"]:
        if offer.get("token") and offer["token"] != current.get("token"):
            current["token"] = offer["token"]  # the server re-issued the download token
            save_offer(current)
        return
    if current is not None or _offer_id(offer) == (fsutil.read_bytes(FAILED) or b"").decode():
        return
    if offer["release"] == running_version():
        record(offer["release"], "confirmed", "already running", now)
        return
    o = {"release": offer["release"], "rollout": offer.get("rollout"),
         "token": offer.get("token", ""),
         "base": offer.get("url", ""), "phase": "offered", "tries": 0}
    save_offer(o)


def after_boot(now=0):
    """What boot.py did before this wake: report a rollback it made."""
    p = read_pointer()
    if p is None or not p.get("rolled_back"):
        return
    why = "trial of %s: no successful report in %d boots" % (p["rolled_back"],
                                                             p.get("max_boots", TRIAL_BOOTS))
    crash = fsutil.read_bytes(CRASH)
    if crash:  # the exception and where it was raised come first: reasons are cut short
        lines = [x.strip() for x in crash.decode().split("\n") if x.strip()]
        why = "crashed: %s; %s" % (" | ".join(reversed(lines[-2:])), why)
    record(p["rolled_back"], "rolled_back", why, now)
    _give_up({"release": p["rolled_back"], "rollout": p.get("rollout")})
    fsutil.remove(CRASH)
    write_pointer({"good": p["good"]})


def busy():
    """An update is in progress or has news: upload (and so reach the server) this wake."""
    return load_offer() is not None or in_trial() or bool(pending_events())


def in_trial():
    p = read_pointer()
    slot = running_slot()
    return p is not None and slot is not None and p.get("trial") == slot


def confirm(now=0):
    """The trial reported successfully: make its slot the known-good one."""
    p = read_pointer()
    slot = running_slot()
    if p is None or slot is None or p.get("trial") != slot:
        return False
    # Order matters for power cuts: the offer goes first (so nothing re-commits it), the
    # pointer last (until then boot.py keeps starting the trial, which confirms again).
    record(p.get("release", running_version()), "confirmed", "", now)
    fsutil.remove(OFFER)
    fsutil.remove(CRASH)
    gen = _generation(p["good"]) + 1
    fsutil.write_atomic(slot + "/confirmed", str(gen).encode())
    write_pointer({"good": slot})
    return True


def _generation(slot):
    try:
        return int(fsutil.read_bytes(slot + "/confirmed") or b"0")
    except ValueError:
        return 0


# --- the work of one wake ------------------------------------------------------------------

def work(board, creds, battery_mv, now=0, feed=None, mpy=None):
    """Advance the pending offer as far as this wake allows. True when a new slot has been
    committed and the station must reboot into its trial."""
    o = load_offer()
    if o is None or in_trial():
        return False
    if o["release"] == running_version():  # installed and confirmed: nothing left to do
        fsutil.remove(OFFER)
        return False
    p = read_pointer()
    if p is not None and p.get("trial"):
        return False  # committed, waiting for boot.py to start the trial
    try:
        return _advance(o, board, creds, battery_mv, now, feed, mpy or mpy_version())
    except Refused as e:
        record(o["release"], "failed", str(e), now)
        _give_up(o)
        return False
    except OSError as e:  # network or flash trouble: try again next wake, up to a limit
        o["tries"] = o.get("tries", 0) + 1
        if o["tries"] >= MAX_TRIES:
            record(o["release"], "failed", "gave up after %d tries: %r" % (o["tries"], e), now)
            _give_up(o)
        else:
            save_offer(o)
        return False


def _offer_id(o):
    return "%s %s" % (o["release"], o.get("rollout"))


def _slot_version(slot):
    try:
        return json.loads(fsutil.read_bytes(slot + "/manifest.json") or b"{}").get("version")
    except ValueError:
        return None


def _give_up(o):
    """Drop the offer. The server may repeat it before it hears why: remember it, so this
    rollout does not get another try (a new rollout of the release does)."""
    fsutil.makedirs(DIR)
    fsutil.write_atomic(FAILED, _offer_id(o).encode())
    fsutil.remove(OFFER)


def _advance(o, board, creds, battery_mv, now, feed, mpy):
    slot = running_slot()
    if slot is None:
        raise Refused("not installed in a slot (flash with `mizumori device flash`)")
    target = other(slot)
    if o["phase"] == "offered":
        manifest = _fetch_manifest(board, o, creds, mpy)
        _check_resources(board, manifest, target, battery_mv)
        # The target slot is incomplete from here on: its markers go first.
        fsutil.remove(target + "/manifest.json")
        fsutil.remove(target + "/confirmed")
        o["phase"] = "downloading"
        save_offer(o)
        record(o["release"], "downloading", "", now)
    raw = fsutil.read_bytes(DIR + "/manifest.json")
    if raw is None:  # lost from the flash: start this offer over
        o["phase"] = "offered"
        save_offer(o)
        raise OSError("verified manifest missing, starting over")
    manifest = json.loads(raw)
    if o["phase"] == "downloading":
        got = local = 0
        for entry in manifest["files"]:
            n = _fetch_file(board, o, creds, entry, slot, target, feed)
            if n is None:
                local += 1
            else:
                got += n
        o["phase"] = "downloaded"
        save_offer(o)
        record(o["release"], "downloaded", "%d bytes downloaded, %d of %d files copied or "
               "present" % (got, local, len(manifest["files"])), now)
    if o["phase"] == "downloaded":
        _remove_stale(target, manifest)
        # Written last: a slot with manifest.json is complete (boot.py checks for it).
        fsutil.write_atomic(target + "/manifest.json", raw)
        o["phase"] = "installed"
        save_offer(o)
    if o["phase"] == "installed":
        if _slot_version(target) != o["release"]:  # the slot changed since: start over
            o["phase"] = "offered"
            save_offer(o)
            raise OSError("slot %s no longer holds %s" % (target, o["release"]))
        fsutil.remove(CRASH)
        write_pointer({"good": slot, "trial": target, "boots": 0, "max_boots": TRIAL_BOOTS,
                       "release": o["release"], "rollout": o.get("rollout")})
        record(o["release"], "installed", "", now)
        return True
    return False


def _get(board, o, creds, name, f, offset=0, feed=None):
    headers = {"X-Mizumori-Device": str(creds["device_id"]),
               "X-Mizumori-Ota-Token": o["token"]}
    if offset:
        headers["Range"] = "bytes=%d-" % offset
    status, _, n = http.get_to_file(board, creds["server"] + o["base"] + name, headers, f,
                                    ca_file=creds.get("ca"), on_chunk=feed)
    if status in (401, 403, 404, 410):
        raise Refused("download of %s refused (HTTP %d)" % (name, status))
    if status not in (200, 206):
        raise OSError("download of %s: HTTP %d" % (name, status))
    if offset and status != 206:
        raise OSError("server ignored the range request for %s" % name)
    return n


def _fetch_manifest(board, o, creds, mpy):
    """Download the manifest and its signature, check them against the provisioned key."""
    key = fsutil.read_bytes(KEY)
    if not key:
        raise Refused("no release key provisioned")
    fsutil.makedirs(DIR)
    for name in ("manifest.json", "manifest.sig"):
        with open(DIR + "/" + name, "wb") as f:
            _get(board, o, creds, name, f)
    raw = fsutil.read_bytes(DIR + "/manifest.json") or b""
    try:
        sig = binascii.unhexlify((fsutil.read_bytes(DIR + "/manifest.sig") or b"").strip())
        public = binascii.unhexlify(key.strip())
    except ValueError:
        raise Refused("signature or release key is not hex")
    if not ed25519.verify(public, raw, sig):
        raise Refused("bad signature: manifest not signed by the provisioned release key")
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
        for e in files:
            if ".." in e["path"] or e["path"].startswith("/") or len(e["sha256"]) != 64:
                raise ValueError(e["path"])
    except (ValueError, KeyError, TypeError) as e:
        raise Refused("malformed manifest: %r" % e)
    if manifest.get("version") != o["release"]:
        raise Refused("manifest is for %s, offer for %s" % (manifest.get("version"),
                                                            o["release"]))
    if mpy is not None and manifest.get("mpy") != mpy:
        raise Refused("release built for mpy %s, this firmware loads %s"
                      % (manifest.get("mpy"), mpy))
    return manifest


def _check_resources(board, manifest, target, battery_mv):
    need_mv = int(manifest.get("min_battery_mv") or 0)
    if battery_mv is None or battery_mv < need_mv:
        raise Refused("battery %s mV below the release's minimum %d mV" % (battery_mv, need_mv))
    # The new slot is a full copy (unchanged files are copied, not downloaded); what the
    # target slot holds now is replaced.
    need = FLASH_MARGIN
    for e in manifest["files"]:
        need += e["size"] - _size(target + "/" + e["path"])
    free = board.flash_free()
    if free < need:
        raise Refused("not enough flash: %d bytes free, %d needed" % (free, need))


def _fetch_file(board, o, creds, entry, slot, target, feed):
    """Put one file into the target slot, verified. The bytes downloaded, or None when it
    came from the flash (already there, or copied from the running slot)."""
    dest = target + "/" + entry["path"]
    if file_sha256(dest) == entry["sha256"]:
        return None  # there from an earlier try, or an earlier release in this slot
    _dirs(dest)
    here = slot + "/" + entry["path"]
    part = dest + ".part"
    got = None
    if file_sha256(here) == entry["sha256"]:
        _copy(here, part)  # unchanged: copy from the running slot, no download
    else:
        have = _size(part)
        if have >= entry["size"]:
            fsutil.remove(part)
            have = 0
        with open(part, "ab") as f:
            got = _get(board, o, creds, "files/" + entry["path"], f, have, feed)
    if file_sha256(part) != entry["sha256"]:
        fsutil.remove(part)
        raise Refused("sha256 mismatch for %s" % entry["path"])
    fsutil.remove(dest)
    os.rename(part, dest)
    return got


def _remove_stale(target, manifest):
    keep = {target + "/" + e["path"] for e in manifest["files"]}
    keep.add(target + "/confirmed")

    def walk(d):
        for name in fsutil.listdir(d):
            path = d + "/" + name
            if _is_dir(path):
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


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def _dirs(path):
    d = path.rsplit("/", 1)[0]
    fsutil.makedirs(d)


def _copy(src, dst):
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while True:
            b = fi.read(1024)
            if not b:
                break
            fo.write(b)
