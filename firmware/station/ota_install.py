# The OTA installer (docs/ota.md): fetch the offered release's manifest and signature, check
# them against the provisioned release key (Ed25519 over SHA-512), download or copy each file
# into the other slot (station/ota_files.py, imported after the check), verify it and commit
# the slot as a trial. Imported by ota.work() only
# on a wake that advances an offer: SHA-512, Ed25519 and this module stay out of RAM on every
# other wake (docs/firmware.md, RAM budget). Each step is persisted in the offer (ota.py).
#
# RAM: the manifest (about 4.7 KB, 39 files) parsed whole is about 12 KB of dicts and strings
# on the 64-bit unix port, more than any other object of the wake: it is never parsed whole.
# _entries() reads it from its file in small pieces and parses one file's entry at a time;
# Ed25519 and SHA-512 are imported for the signature check and let go after it.
import binascii
import json
import sys

from station import fsutil, http
from station.ota import (
    CRASH,
    DIR,
    KEY,
    TRIAL_BOOTS,
    TRUST,
    Refused,
    other,
    record,
    running_slot,
    save_offer,
    write_pointer,
)

MANIFEST = DIR + "/manifest.json"  # the verified manifest of the offer being installed
_BLANK = b" \t\r\n"  # JSON's whitespace


def _entries(path, top=None):
    """Each entry (a dict) of the manifest's "files" array, parsed one at a time as the file
    is read 256 bytes at a time (JSON strings and their escapes are followed, so a path may
    hold any character). With top (a dict): filled at the end with the manifest's other
    fields ("files" as []). ValueError when the file is not such a manifest: not JSON, cut
    short, or "files" holding anything but objects."""
    rest = []  # the document without the entries
    stack = b""  # the brackets open around this point, outside strings
    quoted = escaped = False
    entry = None  # the entry being read (bytes), or None
    inside = False  # in the "files" array
    seen = False  # a "files" array was found (a second one is refused)
    expect = b""  # inside, between entries: the characters that may come next
    with open(path, "rb") as f:
        while True:
            buf = f.read(256)
            if not buf:
                break
            start = 0  # what of buf is not yet in rest or entry
            for i, c in enumerate(buf):
                if quoted:
                    if escaped:
                        escaped = False
                    elif c == 92:  # a backslash
                        escaped = True
                    elif c == 34:  # the closing quote
                        quoted = False
                    continue
                if inside and entry is None and c not in _BLANK:
                    if c not in expect:
                        raise ValueError("\"files\" is not an array of objects")
                    if c == 44:  # ","
                        expect = b"{"
                    elif c == 93:  # "]": the end of "files", kept in rest
                        inside = False
                        start = i
                    else:  # "{"
                        entry = b""
                        start = i
                if c == 34:
                    quoted = True
                elif c == 123 or c == 91:  # "{" or "["
                    if c == 91 and stack == b"{" and _files_key(rest, buf[start:i]):
                        if seen:
                            raise ValueError("two \"files\" arrays")
                        inside = seen = True
                        expect = b"{]"
                        rest.append(buf[start:i + 1])
                        start = i + 1
                    stack += bytes((c,))
                elif c == 125 or c == 93:  # "}" or "]"
                    if not stack or stack[-1] != c - 2:
                        raise ValueError("unbalanced brackets")
                    stack = stack[:-1]
                    if entry is not None and len(stack) == 2:
                        entry += buf[start:i + 1]
                        start = i + 1
                        yield json.loads(entry)
                        entry = None
                        expect = b",]"
            if entry is not None:
                entry += buf[start:]
            elif not inside:
                rest.append(buf[start:])
    if stack or quoted:
        raise ValueError("cut short")
    head = json.loads(b"".join(rest))
    if not isinstance(head, dict) or head.get("files") != []:
        raise ValueError("no files array")
    if top is not None:
        top.update(head)


def _files_key(rest, tail):
    """True when the top-level text before an array ends with the key "files" (the key's
    string decoded: "a\\"files" is another key)."""
    text = (b"".join(rest) + tail).rstrip()
    if not text.endswith(b":"):
        return False
    text = text[:-1].rstrip()
    i = len(text) - 2  # the key's opening quote: one not escaped by an odd run of "\\"
    while i >= 0:
        if text[i] == 34:
            k = i
            while k > 0 and text[k - 1] == 92:
                k -= 1
            if (i - k) % 2 == 0:
                break
        i -= 1
    return i >= 0 and text.endswith(b'"') and json.loads(text[i:]) == "files"


def _top(path):
    """The manifest's fields but its entries ({"files": [], "version": ...}), or None when
    the file is missing or damaged."""
    top = {}
    try:
        for _ in _entries(path, top):
            pass
    except (OSError, ValueError):
        return None
    return top


def _slot_version(slot):
    m = _top(slot + "/manifest.json")
    return m.get("version") if m else None


def advance(o, board, creds, battery_mv, now, feed, mpy):
    """The offer's next steps; its downloads share one connection (one TLS handshake)."""
    conn = http.Connection(board, creds.get("ca"), feed=feed)
    try:
        return _advance(o, board, conn, creds, battery_mv, now, mpy)
    finally:
        conn.close()


def _advance(o, board, conn, creds, battery_mv, now, mpy):
    slot = running_slot()
    if slot is None:
        raise Refused("not installed in a slot (flash with `mizumori device flash`)")
    target = other(slot)
    # The file work comes in after the signature check: not in the heap with Ed25519's
    # big integers (docs/firmware.md, RAM budget).
    manifest = _fetch_manifest(conn, o, creds, mpy) if o["phase"] == "offered" else None
    from station import ota_files

    if manifest is not None:
        ota_files.check_resources(board, manifest, target, battery_mv)
        manifest = None
        # The target slot is incomplete from here on: its markers go first.
        fsutil.remove(target + "/manifest.json")
        fsutil.remove(target + "/confirmed")
        o["phase"] = "downloading"
        save_offer(o)
        record(o["release"], "downloading", "", now)
    if _top(MANIFEST) is None:  # lost from the flash, or damaged: start this offer over
        o["phase"] = "offered"
        save_offer(o)
        raise OSError("verified manifest missing, starting over")
    if o["phase"] == "downloading":
        got = local = files = 0
        for entry in _entries(MANIFEST):
            n = ota_files.fetch_file(conn, o, creds, entry, slot, target)
            files += 1
            if n is None:
                local += 1
            else:
                got += n
        o["phase"] = "downloaded"
        save_offer(o)
        record(o["release"], "downloaded", "%d bytes downloaded, %d of %d files copied or "
               "present" % (got, local, files), now)
    if o["phase"] == "downloaded":
        bundle = False
        for e in _entries(MANIFEST):  # read to its end: the file is closed
            bundle = bundle or e["path"] == TRUST
        if bundle:  # a new CA bundle
            from station import trust

            trust.check_file(target + "/" + TRUST)  # refused here: the slot is never booted
        ota_files.remove_stale(target)
        # Written last: a slot with manifest.json is complete (boot.py checks for it).
        ota_files.copy(MANIFEST, target + "/manifest.json.tmp")
        ota_files.replace(target + "/manifest.json.tmp", target + "/manifest.json")
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


def _to_file(conn, url, headers, f):
    """GET url on conn and append a 200/206 body to the open file f as it comes (a release
    file does not fit in RAM twice), feed() after each chunk: (status, bytes written). Other
    replies' bodies are read, up to http.MAX_REPLY, and dropped. Here, not in http.py: only
    the update's wakes download (the upload's wake holds http.py: docs/firmware.md, RAM
    budget)."""
    status, hdrs = conn.ask("GET", url, None, headers, True, False)
    ok = status in (200, 206)
    n = conn.read_body(hdrs, f.write if ok else None, None if ok else http.MAX_REPLY)
    return status, n if ok else 0


def _get(conn, o, creds, name, f, offset=0):
    headers = {"X-Mizumori-Device": str(creds["device_id"]),
               "X-Mizumori-Ota-Token": o["token"]}
    if offset:
        headers["Range"] = "bytes=%d-" % offset
    status, n = _to_file(conn, creds["server"] + o["base"] + name, headers, f)
    if status in (401, 403, 404, 410):
        raise Refused("download of %s refused (HTTP %d)" % (name, status))
    if status not in (200, 206):
        raise OSError("download of %s: HTTP %d" % (name, status))
    if offset and status != 206:
        raise OSError("server ignored the range request for %s" % name)
    return n


# The collector runs every VERIFY_GC_THRESHOLD bytes allocated while the signature is
# checked, not the wake's app.GC_THRESHOLD: Ed25519's big integers (tens per point addition,
# 253 doublings) are garbage at once, and collecting them sooner keeps the OTA wake in its
# RAM budget (docs/firmware.md, RAM budget: 101 -> 100 KiB). It costs ~0.25 s of host time
# per check (~1.5 s on an ESP32 at the energy note's factor), once per release.
VERIFY_GC_THRESHOLD = 2048


def _verify(public, sig):
    """The signature check (Ed25519 over SHA-512) of the downloaded manifest, read from its
    file in small pieces. Under CPython (the tests) the collector is left alone."""
    from station import ed25519

    with open(MANIFEST, "rb") as f:
        if sys.implementation.name != "micropython":
            return ed25519.verify(public, f, sig)
        import gc

        before = gc.threshold()
        gc.threshold(VERIFY_GC_THRESHOLD)
        try:
            return ed25519.verify(public, f, sig)
        finally:
            gc.threshold(before)


def _fetch_manifest(conn, o, creds, mpy):
    """Download the manifest and its signature, check them against the provisioned key:
    the manifest's fields but its entries, which stay in its file (_entries)."""
    key = fsutil.read_bytes(KEY)
    if not key:
        raise Refused("no release key provisioned")
    fsutil.makedirs(DIR)
    for name in ("manifest.json", "manifest.sig"):
        with open(DIR + "/" + name, "wb") as f:
            _get(conn, o, creds, name, f)
    try:
        sig = binascii.unhexlify((fsutil.read_bytes(DIR + "/manifest.sig") or b"").strip())
        public = binascii.unhexlify(key.strip())
    except ValueError:
        raise Refused("signature or release key is not hex")
    good = _verify(public, sig)
    # Ed25519 and SHA-512 are done with: let go (app.release) before the downloads.
    from station.app import release

    release(("station.ed25519", "station.sha512"))
    if not good:
        raise Refused("bad signature: manifest not signed by the provisioned release key")
    manifest = {}
    try:
        for e in _entries(MANIFEST, manifest):
            if (".." in e["path"] or e["path"].startswith("/") or len(e["sha256"]) != 64
                    or e["size"] < 0):
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
