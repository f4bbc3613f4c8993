# Mizumori: `make run` and `make test` are all a newcomer needs (see README.md).
# Each target installs what it needs into .venv and is quick when it is already there.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MPY := $(VENV)/bin/micropython
INSTALLED := $(VENV)/.stamp-installed
STUBS := typings/.stamp-stubs
# MicroPython's own API for type-checking firmware/ (see firmware/pyrightconfig.json).
STUB_PACKAGES := micropython-esp32-stubs==1.29.0.post1 micropython-stdlib-stubs==1.29.0.post2

.PHONY: run test bench lint typecheck install system-packages clean

# make run MIZUMORI_PORT=8081 (another port), make run DEMO_ARGS="--open-data --speed 600":
# `.venv/bin/mizumori demo --help` lists the options.
run: $(INSTALLED)
	$(VENV)/bin/mizumori demo $(DEMO_ARGS)

# Two workers (pytest-xdist), a test file each at a time: the suite waits on simulated
# stations, servers and browsers far more than it computes. `.venv/bin/pytest FILE` runs one.
test: $(INSTALLED) $(STUBS) system-packages lint typecheck
	$(VENV)/bin/pytest -n 2 --dist loadfile

bench: $(INSTALLED)
	$(PY) bench/run.py

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .

typecheck: $(INSTALLED) $(STUBS)
	$(VENV)/bin/mypy
	$(VENV)/bin/pyright -p firmware

install: $(INSTALLED) $(STUBS)

# Debian packages the tests use as real clients (ogrinfo, chromium and a Japanese font).
system-packages:
	tools/system-packages.sh

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(STUBS): Makefile $(INSTALLED)
	rm -rf typings
	$(PY) -m pip install -q --target typings --no-deps $(STUB_PACKAGES)
	touch $@

clean:
	rm -rf $(VENV) typings .pytest_cache .mypy_cache .ruff_cache
