"""A fleet of virtual stations against a live fleet server, in simulated time.

The runner owns the simulated clock: before each wake it writes the time to the clock file
the server reads (MIZUMORI_CLOCK_FILE), so hours pass in seconds with exact timestamps.
Without a clock file the server keeps the real time, so the fleet must run at speed 1.
"""

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mizumori_tools.certs import verify
from mizumori_tools.rig import SerialRig
from mizumori_tools.virtual import ESP32_EPOCH, Scenario, VirtualStation

POWER_OFF_S = 0.3


def _set_clock(path: Path, t: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(t))
    os.replace(tmp, path)


@dataclass
class Member:
    station: VirtualStation
    code: str
    level_offset_mm: int = 0
    mount_mm: int = 5000
    floor_mm: int | None = None  # a road or channel bed: the water is never below it
    next_wake: int = 0
    reset_cause: str = "power_on"
    wakes: int = 0
    power_cuts: int = 0
    last_h: float = 0.0
    rig: SerialRig | None = None  # the station runs on the PTY rig


class Fleet:
    def __init__(self, scenario: Scenario, clock_file: Path | None, start: int,
                 power_cut_rate: float = 0.0, seed: int = 1, speed: float | None = None):
        """speed: simulated seconds per real second (None: as fast as possible)."""
        self.scenario = scenario
        self.clock_file = clock_file
        self.start = start
        self.now = start
        self.members: list[Member] = []
        self.power_cut_rate = power_cut_rate
        self.rng = random.Random(seed)
        self.speed = speed
        self.advance(start)

    def add(self, station: VirtualStation, code: str, level_offset_mm: int = 0,
            mount_mm: int = 5000, floor_mm: int | None = None, rig: SerialRig | None = None
            ) -> Member:
        m = Member(station, code, level_offset_mm, mount_mm, floor_mm, next_wake=self.now,
                   last_h=(self.now - self.start) / 3600, rig=rig)
        station.set_clock(self.now - ESP32_EPOCH)  # provisioned now, in simulated time
        self.members.append(m)
        return m

    def advance(self, t: int) -> None:
        """Move simulated time to t (stations do not wake)."""
        self.now = max(self.now, t)
        if self.clock_file is not None:
            _set_clock(self.clock_file, self.now)

    def run_until(self, t_end: int,
                  on_wake: Callable[[Member, tuple[int, int] | None], None] | None = None
                  ) -> None:
        while self.members:
            m = min(self.members, key=lambda x: x.next_wake)
            if m.next_wake > t_end:
                break
            if self.speed:
                time.sleep(max(0.0, (m.next_wake - self.now) / self.speed))
            self.advance(m.next_wake)
            self._wake(m, on_wake)
        self.advance(t_end)

    def _wake(self, m: Member, on_wake: Callable[[Member, tuple[int, int] | None], None]
              | None) -> None:
        h = (self.now - self.start) / 3600
        tips = self.scenario.rain_tips(m.last_h, h)
        cut = None
        if self.power_cut_rate and self.rng.random() < self.power_cut_rate:
            cut = self.rng.uniform(0.0, 0.12)  # a wake takes some tens of ms
        world = {**self.scenario.world(h, m.level_offset_mm), "mount_mm": m.mount_mm}
        if m.floor_mm is not None:
            world["level_mm"] = max(m.floor_mm, world["level_mm"])
        result = (m.rig or m.station).wake(world, self.now - ESP32_EPOCH, tips,
                                           m.reset_cause, cut)
        m.wakes += 1
        m.last_h = h
        if result is None:  # power cut: RTC memory is gone, the board restarts on power-on
            # The power stays off a moment, in simulated time too: an upload the board sent
            # just before the cut is still being stored by the server, at this time.
            time.sleep(POWER_OFF_S)
            m.power_cuts += 1
            (m.station.flash / "rtc.bin").unlink(missing_ok=True)
            m.reset_cause = "power_on"
            m.next_wake = self.now + 5
        else:
            m.reset_cause = "deepsleep"
            m.next_wake = self.now + max(1, result[0])
        if on_wake:
            on_wake(m, result)


_HANDED_OUT: set[int] = set()  # ports free_port() gave in this process


def _ephemeral_range() -> tuple[int, int]:
    """Linux's ephemeral ports, which outgoing connections take (net.ipv4.ip_local_port_range;
    32768-60999 by default)."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[:2]
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port free now, for a server about to start. Outside the ephemeral range (below it,
    or above it on a host where it starts low), where no outgoing connection takes it
    meanwhile, and in a band of its own per pytest-xdist worker, so that another worker's
    next server cannot take it between this check and the server's bind; never one it gave
    before (two servers asked for ports before either started)."""
    start, end = _ephemeral_range()
    low, top = max((10000, start), (end + 1, 65536), key=lambda r: r[1] - r[0])
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
    workers = max(1, int(count) if count.isdigit() else 1)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    band = max(1, (top - low) // workers)
    base = low + band * (int(worker) % workers if worker.isdigit() else 0)
    for _ in range(200):
        port = random.randrange(base, base + band)
        if port in _HANDED_OUT:
            continue  # given to a server that may not have bound it yet
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken, or still in TIME_WAIT
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError(f"no free port between {base} and {base + band - 1}")


class ServerProcess:
    """`mizumori serve` in a subprocess, for the demo and end-to-end tests."""

    def __init__(self, env: dict[str, str], cwd: Path, port: int | None = None,
                 workers: int = 1, tls: dict[str, Path] | None = None):
        """tls: {"cert", "key", "ca"} (certs.make) to serve HTTPS."""
        self.env = {**os.environ, **env}
        self.cwd = cwd
        self.port = port or free_port()
        self.workers = workers
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mizumori_tools.cli", *args],
                              env=self.env, cwd=self.cwd, capture_output=True, text=True)

    def prepare(self, users: dict[str, tuple[str, str]]) -> None:
        """Migrate the database and create users {name: (role, password)}."""
        for args in [("db", "upgrade")] + [("user", "create", name, "--role", role,
                                            "--password", pw)
                                           for name, (role, pw) in users.items()]:
            done = self.cli(*args)
            if done.returncode:
                raise RuntimeError(f"mizumori {' '.join(args[:2])}: {done.stderr.strip()}")

    def start(self) -> None:
        cmd = [sys.executable, "-m", "mizumori_tools.cli", "serve", "--port", str(self.port),
               "--workers", str(self.workers)]
        if self.tls:
            cmd += ["--ssl-certfile", str(self.tls["cert"]), "--ssl-keyfile",
                    str(self.tls["key"])]
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=self.cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        check = verify(str(self.tls["ca"]) if self.tls else None)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2,
                             verify=check).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("the server exited at start")
            time.sleep(0.1)
        raise RuntimeError("the server did not answer in 60 s")

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class Api:
    """Just enough of the server's API to set up a fleet."""

    def __init__(self, url: str, token: str, ca: str | None = None):
        """ca: the CA certificate file of a server with a private CA."""
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30, verify=verify(ca),
                                 headers={"Authorization": f"Bearer {token}"})

    @classmethod
    def login(cls, url: str, username: str, password: str, ca: str | None = None) -> "Api":
        r = httpx.post(url + "/api/login", json={"username": username, "password": password},
                       verify=verify(ca))
        r.raise_for_status()
        return cls(url, r.json()["token"], ca)

    def station(self, body: dict[str, Any]) -> None:
        r = self.http.post("/api/stations", json=body)
        if r.status_code != 409:
            r.raise_for_status()

    def provision(self, hardware_id: str, station: str) -> dict[str, Any]:
        r = self.http.post("/api/devices/provision",
                           json={"hardware_id": hardware_id, "station": station})
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()
