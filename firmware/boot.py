# Runs first at every reset (every wake from deep sleep too). Tiny on purpose and never
# updated over the air: it puts the app slot (a/ or b/) that slot.json names on sys.path.
# A trial slot gets max_boots boots to report once (the app then confirms it); after that,
# or when the trial slot is incomplete, the known-good slot runs again and the pointer says
# what was rolled back. A missing or corrupt pointer falls back to the newest confirmed slot.
# A board flashed without slots (no slot.json, no a/ or b/) runs station/ from the root.
import gc
import json
import os
import sys


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
gc.collect()
