"""Shared helpers for the host-side tests."""

import os

import pytest

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(available: bool, what: str) -> None:
    """Skip a test whose tool or service is missing; under CI=true that is a failure."""
    if available:
        return
    if CI:
        pytest.fail(f"{what} is missing (CI=true: a missing tool fails the run)")
    pytest.skip(f"{what} is missing")
