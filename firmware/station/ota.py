# Over-the-air update of the application (docs/ota.md). The app lives in one of two slot
# directories, a/ and b/; boot.py (never updated over the air) picks one from slot.json.
# An offer from the server is worked on across wakes, each step persisted in ota/offer.json
# so a power cut at any moment resumes or repeats that step:
#   offered -> (manifest verified) downloading -> downloaded -> installed (slot.json points at
#   the new slot as a trial) -> reboot -> first successful report -> confirmed.
# boot.py rolls a trial back after too many boots without that report (crash loop, hang).
# Every transition and refusal is queued in ota/events.json and reported to the server.
#
# This module is the bookkeeping every wake may need (the pointer, the offer, the events, the
# confirmation of a trial): it is small. The installer (fetching and checking the signed
# manifest with SHA-512 and Ed25519, downloading, committing a slot) is station.ota_install,
# imported by work() only when there is an offer to advance (docs/firmware.md, RAM budget).
import json
import sys

from station import SLOTS, fsutil, running_slot  # noqa: F401 (ota.running_slot)

POINTER = "slot.json"
DIR = "ota"
OFFER = "ota/offer.json"
EVENTS = "ota/events.json"
CRASH = "crash.txt"  # written by main.py when the app raises
FAILED = "ota/failed"  # "release rollout" that last failed or rolled back: not retried
KEY = "release.pub"  # the release engineer's Ed25519 public key (hex), set at provisioning
TRUST = "trust.pem"  # a release's trust bundle, in its slot (station/trust.py)
TRUST_NEW = "ota/trust.pem"  # a confirmed release's bundle, until it replaces the CA file
MAX_EVENTS = 30
MAX_TRIES = 5  # wakes with a failing download before the offer is given up
TRIAL_BOOTS = 3  # boots of a trial without a successful report before boot.py rolls back


class Refused(Exception):
    """The offer cannot be installed; the message is the reason reported to the server."""


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
    if fsutil.exists(slot + "/" + TRUST):  # a new CA bundle: used once it verifies the server
        from station import trust

        trust.stage(slot)
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
    if fsutil.exists(TRUST_NEW):  # a confirmed release's CA bundle, not yet in use
        from station import trust

        try:
            trust.adopt(board, creds, now, feed)
        except Exception as e:  # noqa: BLE001 - never in the way of the next update
            fsutil.remove(TRUST_NEW)  # (a MemoryError would come back every wake)
            record(running_version(), "failed", "trust bundle not used: %r" % e, now)
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
        from station import ota_install

        return ota_install.advance(o, board, creds, battery_mv, now, feed,
                                   mpy or mpy_version())
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


def _give_up(o):
    """Drop the offer. The server may repeat it before it hears why: remember it, so this
    rollout does not get another try (a new rollout of the release does)."""
    fsutil.makedirs(DIR)
    fsutil.write_atomic(FAILED, _offer_id(o).encode())
    fsutil.remove(OFFER)
