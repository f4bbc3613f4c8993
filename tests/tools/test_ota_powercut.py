"""A power cut before every change the station makes to its flash while it downloads,
verifies, installs and commits an update, and while it boots and confirms the trial: it
always boots a working version afterwards and ends on the old version or the new one,
confirmed — never in between. (The cut is the virtual station's ROM refusing the N+1th
open-for-write, write, rename, remove or mkdir: deterministic, no timing.)"""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mizumori_tools import paths
from mizumori_tools.virtual import VirtualStation
from otarig import OtaRig

TERMINAL = ("confirmed", "failed", "rolled_back")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[OtaRig]:
    r = OtaRig(tmp_path)
    yield r
    r.server.stop()


def update_with_cut(rig: OtaRig, st: VirtualStation, version: str, trial: bool,
                    n: int) -> bool:
    """Roll out version; cut the power at change n of the update wake (or, with trial, of
    the trial's first wake); then let the station run until the update settles. False if
    the wake made fewer than n changes (no cut happened)."""
    # The slot the update goes to held this version before (slots alternate, versions too):
    # drop the big module there, so that it is downloaded each time and not kept.
    inactive = "b" if json.loads((st.flash / "slot.json").read_text())["good"] == "a" else "a"
    (st.flash / inactive / "station" / "notes.mpy").unlink(missing_ok=True)
    ro = rig.rollout(version)
    rig.tick(600)
    if trial:
        assert rig.wake(st) is not None
        assert "trial" in json.loads((st.flash / "slot.json").read_text())
        rig.tick(1)
    cut = rig.wake(st, cut_after_writes=n) is None
    if cut:
        (st.flash / "rtc.bin").unlink(missing_ok=True)  # RTC memory dies with the power
    for i in range(10):
        rig.tick(600)
        # it boots a working version: the wake runs to its deep sleep
        assert rig.wake(st, cause="power_on" if cut and i == 0 else "deepsleep") is not None
        pointer = json.loads((st.flash / "slot.json").read_text())
        state = rig.api.get(f"/api/rollouts/{ro['id']}")["devices"][0]["state"]
        if state in TERMINAL and "trial" not in pointer:
            break
    else:
        raise AssertionError(f"cut at {n}: the update did not settle ({state}, {pointer})")
    good = pointer["good"]
    manifest = json.loads((st.flash / good / "manifest.json").read_text())
    reported = rig.device(st)["firmware_version"]
    assert (state == "confirmed") == (reported == version), (n, state, reported)
    assert manifest["version"] == reported, (n, manifest["version"], reported)
    return cut


def test_power_cut_at_every_step_of_an_update(rig: OtaRig, tmp_path: Path) -> None:
    st = rig.add_station(1)
    rig.wake(st, cause="power_on")
    # 0.3.0 adds a module of some kilobytes: its download takes several writes, so cuts
    # land inside it (resumed with a Range request); going back to 0.2.0 removes it.
    bigger = tmp_path / "bigger"
    shutil.copytree(paths.FIRMWARE, bigger)
    text = " ".join(f"word{i}" for i in range(300))  # ~2.4 KB: several 512-byte reads
    (bigger / "station" / "notes.py").write_text(f'NOTES = "{text}"\n')
    rig.upload(rig.build("0.2.0"))
    rig.upload(rig.build("0.3.0", bigger))
    outcomes: dict[tuple[bool, str], list[bool]] = {}
    for trial in (False, True):
        n = {"0.2.0": 0, "0.3.0": 0}
        done: set[str] = set()
        while len(done) < 2:
            running = rig.device(st)["firmware_version"]
            version = "0.3.0" if running == "0.2.0" else "0.2.0"
            if version in done:  # only to get back to the other version
                update_with_cut(rig, st, version, trial, 10**9)
                continue
            if not update_with_cut(rig, st, version, trial, n[version]):
                done.add(version)  # the wake made fewer changes: every one was cut
                continue
            ends = outcomes.setdefault((trial, version), [])
            ends.append(rig.device(st)["firmware_version"] == version)
            n[version] += 1
    for (trial, version), ends in outcomes.items():
        print(f"to {version}, {'trial' if trial else 'update'} wake: cut at each of its "
              f"{len(ends)} flash changes; {sum(ends)} ended updated, the rest on the old")
    assert len(outcomes[(False, "0.3.0")]) > len(outcomes[(False, "0.2.0")]) > 30
    assert len(outcomes[(True, "0.3.0")]) > 10
