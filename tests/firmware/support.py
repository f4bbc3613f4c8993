# Helpers for firmware tests that run unchanged under CPython (pytest) and the MicroPython
# unix port (mpy_run.py): no pytest fixtures, no CPython-only modules.
import json
import os
import random
import sys

MICROPYTHON = sys.implementation.name == "micropython"
_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
ROOT = _here + "/../.."
# One folder per pytest-xdist worker (make test runs two): each runner clears its own at start.
TMP_BASE = "/tmp/mizumori-fwtest" + ("-" + os.getenv("PYTEST_XDIST_WORKER", "")).rstrip("-")


class Skip(Exception):
    pass


def skip(reason):
    if MICROPYTHON:
        raise Skip(reason)
    import pytest

    pytest.skip(reason)


def raises(exc, fn, *args):
    """The exception fn(*args) raised; fails the test if it raised nothing or something else."""
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)


def load_json(relpath):
    with open(ROOT + "/" + relpath) as f:
        return json.load(f)


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass


def tempdir():
    """A fresh empty directory (the runners clear TMP_BASE at start)."""
    _mkdir(TMP_BASE)
    while True:
        path = "%s/%08x" % (TMP_BASE, random.getrandbits(30))
        try:
            os.mkdir(path)
            return path
        except OSError:
            continue


def rmtree(path):
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for name in entries:
        p = path + "/" + name
        try:
            os.remove(p)
        except OSError:
            rmtree(p)
    os.rmdir(path)
