"""Shared helpers for the host-side tests."""

import os
import subprocess

import pytest

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(available: bool, what: str) -> None:
    """Skip a test whose tool or service is missing; under CI=true that is a failure."""
    if available:
        return
    if CI:
        pytest.fail(f"{what} is missing (CI=true: a missing tool fails the run)")
    pytest.skip(f"{what} is missing")


def one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    """A refused command's one line on stderr (exit status 2, no traceback)."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]
