"""`mizumori device calibrate` refuses a level unfit to calibrate with (issue 20): one not
corrected for the speed of sound (no BME280), one from rough water (the firmware's noisy
rule), or one from a window with too few good samples; --force REASON overrides, and the
reason is kept with the result. `device check --staff-gauge` fails such a window. The
board here is the simulated one running the real selftest script under MicroPython (the
rig's serial link is left out: tests/tools/test_calibration_e2e.py covers it)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import need
from mizumori_tools import check, device, paths

MPY = Path(sys.executable).with_name("micropython")


class SimBoard:
    """device.Board's exec_json, run on the sim board of a directory (its sim.json and
    config.json) by the MicroPython unix port."""

    def __init__(self, flash: Path) -> None:
        self.flash = flash
        self.noise_mm = 3  # the sim's echo scatter (sim.World.noise_mm), +-mm

    def _world(self) -> str:
        """A prelude setting the simulated water's roughness (not in sim.json)."""
        return ("from station.hw import sim\n_init = sim.World.__init__\n"
                "def _rough(self, seed=1):\n    _init(self, seed)\n"
                f"    self.noise_mm = {self.noise_mm}\n"
                "sim.World.__init__ = _rough\n")

    def __call__(self, port: str, timeout_s: float = 60) -> "SimBoard":
        return self

    def exec_json(self, code: str) -> Any:
        exe = str(MPY) if MPY.exists() else shutil.which("micropython")
        need(exe is not None, "micropython")
        done = subprocess.run([str(exe), "-c", self._world() + code], cwd=self.flash,
                              capture_output=True, text=True, timeout=60,
                              env={"MICROPYPATH": str(paths.FIRMWARE)})
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimBoard:
    """A board (20 °C air, water 1.000 m below a 5 m mount) whose world and config the test
    sets by writing sim.json and config.json."""
    (tmp_path / "sim.json").write_text(json.dumps({"level_mm": 1000, "air_temp_c": 20.0}))
    b = SimBoard(tmp_path)
    monkeypatch.setattr(device, "Board", b)
    return b


@pytest.fixture
def board(sim: SimBoard) -> Path:
    return sim.flash


def world(flash: Path, **spec: Any) -> None:
    (flash / "sim.json").write_text(json.dumps({"level_mm": 1000, "air_temp_c": 20.0, **spec}))


def config(flash: Path) -> dict[str, Any]:
    path = flash / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_a_good_window_calibrates(board: Path) -> None:
    done = device.calibrate("sim", "1.05")
    assert done["problems"] == [] and done["forced"] is None
    assert done["cal_offset_mm"] == 1050 - done["reading_mm"] and done["level_mm"] == 1050
    assert config(board)["cal_version"] == 1


def test_no_temperature_is_refused_then_forced(board: Path) -> None:
    # 0 °C over 4 m: the uncorrected level is ~139 mm off; an offset would hide that
    world(board, air_temp_c=0.0, faults=["env_missing"])
    with pytest.raises(device.DeviceError) as e:
        device.calibrate("sim", "1.05")
    said = str(e.value)
    assert said.startswith("not calibrating: the level is not corrected for the speed of sound")
    assert "fix the temperature sensor" in said and "--force REASON" in said
    assert "\n" not in said and config(board) == {}  # nothing written
    done = device.calibrate("sim", "1.05", force="BME280 on order, river calm")
    assert done["forced"] == "BME280 on order, river calm" and config(board)["cal_version"] == 1
    assert "Forced (BME280 on order, river calm) although the level is not corrected" in \
        device.calibrate_sentence("sim", done)


def test_rough_water_is_refused_by_the_firmwares_rule(sim: SimBoard) -> None:
    # waves of +-60 mm: a spread (1.4826 x MAD) over the default max_dev_mm of 30 mm is noisy
    sim.noise_mm = 60
    with pytest.raises(device.DeviceError, match=r"the water is too rough: spread (3[1-9]|"
                                                 r"[4-9]\d) mm \(max_dev_mm 30\).*wait for "
                                                 r"calmer water"):
        device.calibrate("sim", "1.05")
    assert config(sim.flash) == {}
    sim.noise_mm = 10  # a spread of about 7 mm: calm enough
    assert device.calibrate("sim", "1.05")["problems"] == []


def test_a_check_only_reports_the_problem(board: Path) -> None:
    world(board, faults=["env_missing"])
    done = device.calibrate("sim", "1.00", kind="check")
    assert done["problems"] and done["forced"] is None and config(board) == {}
    assert "Take this level with care: the level is not corrected" in \
        device.calibrate_sentence("sim", done)


@pytest.mark.parametrize("good, attempts, refused", [(21, 21, False), (16, 21, False),
                                                     (15, 21, True), (3, 26, True)])
def test_too_few_good_samples(good: int, attempts: int, refused: bool) -> None:
    r = {"quality": [], "window": {"good": good, "attempts": attempts}}
    problems = device.window_problems(r)
    assert bool(problems) is refused
    if refused:
        assert f"only {good} of {attempts} samples" in problems[0]


def test_the_commissioning_check_fails_an_unfit_window() -> None:
    level = {"level_mm": 1000, "quality": ["no_temp_correction"],
             "window": {"good": 21, "attempts": 21, "span_ms": 20000}}
    rows = {r.check: r for r in check.staff_rows(level, 1000, 20)}
    assert rows["staff gauge"].status == "PASS"
    assert rows["staff gauge window"].status == "FAIL"
    assert "not corrected for the speed of sound" in rows["staff gauge window"].result
    fine = {**level, "quality": []}
    assert [r.check for r in check.staff_rows(fine, 1000, 20)] == ["staff gauge"]
