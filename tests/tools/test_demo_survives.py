"""`make run` and `mizumori sim fleet` run until Ctrl-C (issue 18, item 1): the serial rig never
blocks on a port nobody reads, a board stuck awake is reported and powered on again, a
second demo on the same data folder is refused, and a port in use is said plainly.

No pass/fail here depends on how fast the machine is: the waits are generous bounds, and
what is counted is bytes and wakes, not seconds."""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mizumori_tools import paths
from mizumori_tools.fleet import free_port
from mizumori_tools.rig import SerialRig
from mizumori_tools.simfleet import FolderBusy, FolderLock, SurvivingFleet
from mizumori_tools.virtual import Scenario, VirtualStation

PTY_BUFFER = 64 * 1024  # more than any PTY holds (Linux: 4 KiB line + 4-64 KiB in flight)
BURST = 32 * 1024  # what the rig's board prints at each wake before the firmware runs
SLEEPER = "import machine\nmachine.deepsleep(600000)\n"


def mizumori(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mizumori_tools.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def scenario() -> Scenario:
    return Scenario.load("calm")


def talkative(flash: Path) -> None:
    """The real firmware (from firmware/, the rig's run_from_flash=False), after a burst of
    console output at every wake: a board far chattier than ours, to fill any pipe fast."""
    lines = BURST // 64
    (flash / "main.py").write_text(
        f"for _i in range({lines}):\n    print('%05d' % _i + ' chatter' * 7 + '..')\n"
        f"with open({str(paths.FIRMWARE / 'main.py')!r}) as _f:\n"
        "    exec(_f.read(), {'__name__': '__main__'})\n")
    (flash / "config.json").write_text(json.dumps({"maintenance_s": 0}))


def test_unread_port_never_stops_the_fleet(tmp_path: Path, scenario: Scenario) -> None:
    """The demo's machinery at full speed, nobody on the rig's port: far more than a PTY holds
    goes through it, every wake of every station ends in deep sleep, and a reader who comes
    later gets the board's current output."""
    fleet = SurvivingFleet(scenario, None, 800_000_000 + 946684800, speed=None)
    station = VirtualStation(tmp_path / "rig-flash", seed=1)
    talkative(station.flash)
    rig = SerialRig(station, tmp_path / "station-port", run_from_flash=False)
    try:
        on_rig = fleet.add(station, "rig", rig=rig)
        others = []
        for i in (2, 3):
            other = VirtualStation(tmp_path / f"flash-{i}", seed=i)
            (other.flash / "config.json").write_text(json.dumps({"maintenance_s": 0}))
            others.append(fleet.add(other, f"st-{i}"))
        for _ in range(40):  # bounded: each round is 10 simulated minutes, a wake each
            if rig.sent > 4 * PTY_BUFFER:
                break
            fleet.run_until(fleet.now + 600)
        print(f"rig: {rig.sent} bytes printed, {rig.dropped} dropped unread, "
              f"{on_rig.wakes} wakes")
        assert rig.sent > 4 * PTY_BUFFER, rig.sent
        assert rig.dropped > PTY_BUFFER, (rig.sent, rig.dropped)  # it really went nowhere
        assert fleet.restarts == 0  # no wake got stuck behind the port
        assert on_rig.wakes >= 4 * PTY_BUFFER // BURST
        assert all(m.wakes == on_rig.wakes for m in others)
        assert abs(station.state()["level"] - 600) < 100  # the real firmware measured

        fd = os.open(rig.port, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            while select.select([fd], [], [], 0.2)[0] and os.read(fd, 65536):
                pass  # what the line held from before
            fleet.run_until(fleet.now + 600)
            heard = b""
            deadline = time.monotonic() + 30
            while b"mizumori: seq" not in heard and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.5)[0]:
                    heard += os.read(fd, 65536)
        finally:
            os.close(fd)
        assert b"chatter" in heard and b"mizumori: seq" in heard, heard[-300:]
    finally:
        rig.stop()


def test_stuck_board_is_reported_and_powered_on_again(
        tmp_path: Path, scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    start = 800_000_000 + 946684800
    fleet = SurvivingFleet(scenario, None, start, speed=None)
    station = VirtualStation(tmp_path / "rig-flash", firmware=None)
    (station.flash / "main.py").write_text(
        "import os, time\ntry:\n    os.stat('stuck')\nexcept OSError:\n"
        "    import machine\n    machine.deepsleep(600000)\n"
        "while True:\n    time.sleep(0.05)\n")
    (station.flash / "stuck").write_text("")
    rig = SerialRig(station, tmp_path / "port", wake_timeout_s=3)
    other = VirtualStation(tmp_path / "other", firmware=None)
    (other.flash / "main.py").write_text(SLEEPER)
    try:
        m = fleet.add(station, "stuck-one", rig=rig)
        o = fleet.add(other, "other")
        fleet.run_until(start)  # the rig's board hangs awake
        err = capsys.readouterr().err
        assert "stuck-one" in err and "did not go to sleep" in err, err
        assert "powering the board on again" in err
        assert fleet.restarts == 1 and m.reset_cause == "power_on"
        assert m.next_wake == start + 60 and o.wakes == 1  # the rest of the fleet went on
        (station.flash / "stuck").unlink()  # (the fault clears)
        rig.wake_timeout_s = 120  # (a busy machine's slow wake is not stuck)
        fleet.run_until(start + 1200)
        assert m.wakes >= 2 and fleet.restarts == 1 and o.wakes == 3
        assert rig.boots >= 3
    finally:
        rig.stop()


def test_folder_lock(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock_file = tmp_path / "demo.lock"
    lock_file.write_text(f"{dead.pid}\n")  # left by a demo that was killed
    first = FolderLock(folder)
    first.acquire()  # taken over
    assert lock_file.read_text().strip() == str(os.getpid())
    with pytest.raises(FolderBusy) as busy:
        FolderLock(folder).acquire()
    assert busy.value.pid == os.getpid()
    first.release()
    again = FolderLock(folder)
    again.acquire()
    again.release()


def test_second_demo_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "mizumori.db").write_text("the running demo's")
    held = FolderLock(folder)
    held.acquire()  # a demo running there (this process)
    try:
        done = mizumori("demo", "--data", str(folder), "--port", str(free_port()))
    finally:
        held.release()
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"process {os.getpid()}" in done.stderr and "--data" in done.stderr
    assert (folder / "mizumori.db").read_text() == "the running demo's"  # left alone


def test_port_in_use_is_said_plainly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = mizumori("demo", "--data", str(tmp_path / "demo"), "--port", str(port))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"port {port} is already in use" in done.stderr
    assert f"--port {port + 1}" in done.stderr and "MIZUMORI_PORT" in done.stderr


def test_bad_release_key_is_said_plainly(tmp_path: Path) -> None:
    (tmp_path / "release.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    done = mizumori("demo", "--data", str(tmp_path / "demo"), "--release-key",
                    str(tmp_path / "release.key"))
    assert done.returncode == 2 and "not a public key file" in done.stderr, done.stderr


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str], Path, int]]:
    """`mizumori demo` at full speed over half an hour of the flood, with open data; nobody
    reads its rig's port. Started as a script in the background starts it (SIGINT ignored),
    which Ctrl-C must stop all the same. Yields (process, its stdout lines so far, its
    folder, its port)."""
    folder, port = tmp_path / "demo", free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mizumori_tools.cli", "demo", "--data", str(folder),
         "--port", str(port), "--speed", "1000000", "--hours", "0.5", "--open-data"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines: list[str] = []
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: lines.extend(out), daemon=True).start()
    try:
        yield proc, lines, folder, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(lines: list[str], text: str, proc: subprocess.Popen[str], bound_s: float
             ) -> None:
    deadline = time.monotonic() + bound_s
    while not any(text in line for line in lines):
        assert proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)


def test_demo_runs_on_takes_settings_and_users(
        demo: tuple[subprocess.Popen[str], list[str], Path, int]) -> None:
    proc, lines, folder, port = demo
    wait_for(lines, "the server keeps running until Ctrl-C", proc, 600)
    text = "".join(lines)
    assert "4 stations" in text and "serial rig: the board printed" in text, text
    assert f"--data {folder}" in text or "--data " in text  # how to add users
    url = f"http://127.0.0.1:{port}"
    assert httpx.get(url + "/healthz").status_code == 200
    assert httpx.get(url + "/ogc/collections").status_code == 200  # --open-data

    # a user for the demo's server, from another terminal
    done = mizumori("user", "create", "kumiko", "--role", "operator", "--data", str(folder),
                    "--password", "suibou-dan-2026")
    assert done.returncode == 0, done.stderr
    assert "can log in" in done.stdout
    login = httpx.post(url + "/api/login",
                       json={"username": "kumiko", "password": "suibou-dan-2026"})
    assert login.status_code == 200, login.text

    again = mizumori("demo", "--data", str(folder), "--port", str(free_port()))
    assert again.returncode == 2 and f"process {proc.pid}" in again.stderr
    assert httpx.get(url + "/healthz").status_code == 200  # the first one is untouched

    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    lock = FolderLock(folder)
    lock.acquire()  # released on the way out
    lock.release()


def test_user_create_names_a_folder_without_a_database(tmp_path: Path) -> None:
    done = mizumori("user", "create", "kumiko", "--data", str(tmp_path / "nothing"),
                    "--password", "suibou-dan-2026")
    assert done.returncode == 2 and "no database in" in done.stderr, done.stderr
