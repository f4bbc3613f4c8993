"""The firmware test files again, under the real MicroPython unix port."""

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import need

ROOT = Path(__file__).resolve().parents[1]


def test_firmware_suite_passes_under_micropython() -> None:
    mpy = Path(sys.executable).with_name("micropython")
    need(mpy.exists() or shutil.which("micropython") is not None, "micropython")
    exe = str(mpy) if mpy.exists() else "micropython"
    proc = subprocess.run([exe, "tests/firmware/mpy_run.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert proc.returncode == 0, summary or proc.stderr
    assert summary.startswith("micropython: ") and " 0 failed" in summary, summary
    # every firmware test ran there, none skipped
    assert summary.endswith(" 0 skipped"), summary
