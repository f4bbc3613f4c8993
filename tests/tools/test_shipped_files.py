"""What leaves this repository for a board, and what must never leave it for git (issue 18,
items 7 and 9): `mizumori device flash` and `mizumori release build` ship the application
without the simulators (paths.HOST_ONLY), the firmware imports on a board without them, the
virtual board brings its simulated hardware itself, and the release engineer's private key
and bundles are git-ignored where the tools write them."""

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from mizumori_tools import device, paths, release
from mizumori_tools.virtual import VirtualStation

SIM_MODULES = tuple(sorted(rel[:-len(".py")] for rel in paths.HOST_ONLY))


def is_sim(path: str) -> bool:
    return any(path.endswith((m + ".py", m + ".mpy")) for m in SIM_MODULES)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The files `mizumori device flash` puts on a board: {path on the board: local file}."""
    return device.build(tmp_path_factory.mktemp("build"))


def test_host_only_modules_exist() -> None:
    """(else the exclusion would silently exclude nothing)"""
    for rel in paths.HOST_ONLY:
        assert (paths.FIRMWARE / rel).is_file(), rel


def test_flash_leaves_the_simulators_out(built: dict[str, Path]) -> None:
    assert "a/station/hw/esp32.mpy" in built and "a/station/app.mpy" in built
    assert [p for p in built if is_sim(p)] == []
    manifest = json.loads(built["a/manifest.json"].read_text())
    assert [f["path"] for f in manifest["files"] if is_sim(f["path"])] == []


def test_release_leaves_the_simulators_out(tmp_path: Path) -> None:
    key, _ = release.keygen(tmp_path / "keys" / "release")
    bundle = release.build(key, tmp_path / "dist")
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert "files/station/hw/esp32.mpy" in names and "files/station/app.mpy" in names
    assert [n for n in names if is_sim(n)] == []
    assert [f["path"] for f in manifest["files"] if is_sim(f["path"])] == []


# Every module of the built application imported under MicroPython as the board has it: only
# the slot on sys.path, the ESP32-only modules (machine, esp32, network) as inert stand-ins,
# and no simulator anywhere.
IMPORT_ALL = """
import sys
sys.path[:] = [SLOT]

class _Any:
    def __init__(self, *a, **k):
        pass
    def __getattr__(self, name):
        return _Any()
    def __call__(self, *a, **k):
        return _Any()

for _name in ("machine", "esp32", "network"):
    sys.modules[_name] = _Any()
failed = []
for mod in MODULES:
    try:
        __import__(mod)
    except Exception as e:
        failed.append("%s: %r" % (mod, e))
for sim in SIMS:
    try:
        __import__(sim)
        failed.append(sim + " is on the board")
    except ImportError:
        pass
print("FAILED" if failed else "OK", failed)
"""


def test_firmware_imports_on_the_board_without_the_simulators(built: dict[str, Path],
                                                              tmp_path: Path) -> None:
    slot = built["a/manifest.json"].parent
    modules = sorted(p[len("a/"):-len(".mpy")].replace("/", ".") for p in built
                     if p.startswith("a/station/") and p.endswith(".mpy"))
    modules = [m[:-len(".__init__")] if m.endswith(".__init__") else m for m in modules]
    assert "station.hw.esp32" in modules and len(modules) > 20
    script = tmp_path / "import_all.py"
    sims = [m.replace("/", ".") for m in SIM_MODULES]
    script.write_text(f"SLOT = {str(slot)!r}\nMODULES = {modules!r}\nSIMS = {sims!r}\n"
                      + IMPORT_ALL)
    done = subprocess.run([paths.micropython(), str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("OK"), done.stdout + done.stderr


def test_virtual_board_runs_the_flashed_build(tmp_path: Path) -> None:
    """What a technician flashes onto the rig has no simulated board: the virtual board's ROM
    brings it, and the station measures and sleeps."""
    station = VirtualStation(tmp_path / "flash")
    station.install_firmware()
    assert not list(station.flash.rglob("sim.mpy")) and not list(station.flash.rglob("sim.py"))
    (station.flash / "config.json").write_text(json.dumps({"maintenance_s": 0}))
    slept = station.wake({"level_mm": 1800, "mount_mm": 5000}, 800_000_000, 0, "power_on")
    assert slept is not None and slept[0] > 0
    assert abs(station.state()["level"] - 1800) <= 5


@pytest.mark.parametrize("path", [
    "keys/release.key", "keys/release.pub",  # `mizumori release keygen` (--out keys/release)
    "dist/mizumori-1.2.0.tar",  # `mizumori release build` (--out dist)
    "tools/keys/release.key", "firmware/dist/x.tar",  # the same, run from a subfolder
    "signing.key",  # a private key anywhere
])
def test_keys_and_bundles_are_git_ignored(path: str) -> None:
    if not (paths.REPO / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "-C", str(paths.REPO), "check-ignore", "--no-index", "-q",
                           path], capture_output=True, text=True)
    assert done.returncode == 0, f"{path} is not ignored: {done.stderr}"


def test_the_board_image_freezes_the_station_without_the_sim() -> None:
    """firmware/board/manifest.py, run as MicroPython's manifestfile.py runs it (in its own
    folder, with package/module/freeze/include/require defined): the station package it
    freezes is what ships to a board, no simulated part."""
    board = paths.FIRMWARE / "board"
    frozen: list[str] = []

    def package(name: str, files: list[str] | None = None, base_path: str = ".") -> None:
        assert files is not None  # an explicit list: everything would take the sim too
        frozen.extend(f"{name}/{f}" for f in files)

    def ignore(*args: object, **kwargs: object) -> None:
        pass

    cwd = os.getcwd()
    os.chdir(board)
    try:
        exec((board / "manifest.py").read_text(), {  # noqa: S102 - the project's own file
            "package": package, "module": ignore, "freeze": ignore, "include": ignore,
            "require": ignore})
    finally:
        os.chdir(cwd)
    station = sorted(p.relative_to(paths.FIRMWARE).as_posix()
                     for p in (paths.FIRMWARE / "station").rglob("*.py"))
    assert sorted(frozen) == [f for f in station if paths.ships(Path(f))]
    assert not [f for f in frozen if "sim" in f]
