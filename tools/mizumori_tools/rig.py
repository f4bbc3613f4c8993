"""The serial-loopback rig: a virtual station behind a pseudo-terminal that looks like a USB
serial board, so the real mpremote (and `mizumori device …`) can flash and provision it, with
its ultrasonic sensor streaming A02YYUW frames on a pseudo-terminal of its own.

The port (a symlink to a PTY the rig keeps open) stays the same across the board's restarts.
Each boot runs the unix port with the firmware in the station's flash directory on a fresh
PTY of its own, as the process's controlling terminal, so Ctrl-C interrupts a running
program as on a real board. While the board sleeps, nothing answers on the port.
The unix port runs with -i so that a board without main.py, or one stopped with Ctrl-C, sits
in its REPL; so deep sleep is seen by the sleep.ms file the sim board writes, not by an exit.

Two ways to run it: free-running (`start()`: the board wakes again after its time-scaled
sleep, on the host's clock) or driven by a fleet in simulated time (`wake()`, which has the
signature of VirtualStation.wake).

Nobody has to read the port. The rig never blocks on it: what the board prints waits in a
small backlog while a reader is slow, and when nobody reads at all (the demo's port) the
backlog and what the line holds are dropped, as a UART's output is lost with nothing on the
other end; `dropped` counts those bytes. A board that does not go to sleep within
`wake_timeout_s` is killed and `wake()` raises StuckBoard, which a fleet reports and
recovers from by powering the board on again.

The technician's hands: `reset()` presses the EN button (RTC memory kept), `service_button()`
holds the service button at a wake (its maintenance window), `power_cycle()` takes the power
away (RTC memory and the RTC clock lost) and gives it back. One rig per port and per flash
directory (RigBusy otherwise).
"""

import array
import fcntl
import json
import os
import pty
import select
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mizumori_tools import paths
from mizumori_tools.folderlock import FolderBusy, FolderLock
from mizumori_tools.peripherals import UltrasonicSensorPty
from mizumori_tools.virtual import AWAKE, ESP32_EPOCH, SCRIPT, WDT, VirtualStation

PINMAP = json.loads((paths.REPO / "hardware" / "pinmap.json").read_text())["pins"]
# What the board printed and the port's reader has not taken yet, beyond what the PTY itself
# holds, before the rig decides that nobody reads and drops it all.
OUT_BACKLOG = 64 * 1024
# What was sent to the board and it has not read yet (it is not at its REPL): kept up to this.
IN_BACKLOG = 1024 * 1024


class RigBusy(RuntimeError):
    """Another rig (this process's or another's) has the port or the flash directory."""


class StuckBoard(RuntimeError):
    """A driven wake did not end in deep sleep in time; the board was killed."""


class SerialRig:
    def __init__(self, station: VirtualStation, port: Path,
                 world: Callable[[], dict[str, Any]] | None = None, time_scale: float = 60.0,
                 run_from_flash: bool = True, wake_timeout_s: float = 120.0):
        """world: the simulated world (free-running); time_scale: simulated seconds of sleep
        per real second; run_from_flash: boot only what was flashed (else the repo's
        firmware); wake_timeout_s: how long a driven wake may take before it counts as
        stuck."""
        self._locks = [FolderLock(station.flash), FolderLock(port)]
        for i, lock in enumerate(self._locks):  # before the port link is touched
            try:
                lock.acquire()
            except FolderBusy as e:
                for held in self._locks[:i]:
                    held.release()
                what = "flash directory" if i == 0 else "port"
                raise RigBusy(f"{e.folder}: this {what} belongs to another rig (process "
                              f"{e.pid or '?'}): stop that one, or give this one its own "
                              "--port and --flash") from None
        self.station = station
        self.port = port
        self._held = False  # the service button, at the next boot
        self.world = world or (lambda: {})
        self.time_scale = time_scale
        self.run_from_flash = run_from_flash
        self.wake_timeout_s = wake_timeout_s
        self.sent = 0  # bytes the board printed, all told
        self.dropped = 0  # of which nobody read (see OUT_BACKLOG)
        self._out = bytearray()  # board -> port, not yet taken by the PTY
        self._in = bytearray()  # port -> board, not yet taken by the board
        self.proc: subprocess.Popen[bytes] | None = None
        self.boots = 0
        self._board_fd: int | None = None
        self._wake_at: float | None = None
        self._free_running = False
        self._slept = threading.Event()
        self._current: dict[str, Any] = {}
        self._stop = threading.Event()
        self._lock = threading.RLock()  # the pump thread and the caller both boot and kill
        self.sensor = UltrasonicSensorPty(lambda: self._current, station.seed)
        self._host_fd, self._port_fd = pty.openpty()
        tty.setraw(self._port_fd)
        os.set_blocking(self._host_fd, False)  # the pump never waits for the port's reader
        port.unlink(missing_ok=True)
        port.symlink_to(os.ttyname(self._port_fd))
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    @property
    def flash(self) -> Path:
        return self.station.flash

    def start(self, reset_cause: str = "power_on") -> None:
        """Free-running: boot now, and again after every deep sleep."""
        self._free_running = True
        self._boot(reset_cause, self.world(), int(time.time()) - ESP32_EPOCH, 0)

    def wake(self, world: dict[str, Any], now: int, rain_tips: int = 0,
             reset_cause: str = "deepsleep", kill_after_s: float | None = None
             ) -> tuple[int, int] | None:
        """Driven: one boot at simulated time `now` (ESP32 epoch) until deep sleep;
        (sleep seconds, station clock), or None after a power cut at kill_after_s."""
        self._slept.clear()
        self._boot(reset_cause, world, now, rain_tips)
        if self._slept.wait(kill_after_s if kill_after_s is not None else self.wake_timeout_s):
            return self.station.took_sleep()
        self._kill()
        if kill_after_s is None:
            raise StuckBoard(f"{self.port}: the board did not go to sleep in "
                             f"{self.wake_timeout_s:g} s (killed)")
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._kill()
        self.sensor.close()
        for fd in (self._host_fd, self._port_fd):
            os.close(fd)
        self.port.unlink(missing_ok=True)
        for lock in self._locks:
            lock.release()

    def power_cut(self) -> None:
        """Kill the board at this instant; it boots again as after power returns."""
        self.power_cycle(0)

    def power_cycle(self, off_s: float = 1.0) -> None:
        """Battery and USB out, then in after off_s: whatever the board was doing ends, its
        RTC memory (rtc.bin: the last error, the reset cause) and RTC clock are lost, and it
        boots with reset cause power_on (a maintenance window)."""
        with self._lock:
            self._wake_at = None
            self._kill()
            for name in ("rtc.bin", "rtc.clock", "sleep.ms"):
                (self.station.flash / name).unlink(missing_ok=True)
        if off_s > 0:
            time.sleep(off_s)
        self._boot("power_on", self.world(), int(time.time()) - ESP32_EPOCH, 0)

    def reset(self) -> None:
        """Press the reset (EN) button: the board restarts at once with reset cause hard (a
        maintenance window), awake or asleep; RTC memory and clock are kept."""
        with self._lock:
            self._wake_at = None
            self._kill()
            self.station.sleep_file.unlink(missing_ok=True)
        self._boot("hard", self.world(), int(time.time()) - ESP32_EPOCH, 0)

    def service_button(self) -> None:
        """Hold the service button (GPIO 27) at a wake: an asleep board is woken now (as if
        its timer fired) and, seeing the button held, opens its maintenance window; an awake
        one sees it at its next wake. RTC memory is kept: what `device info` reads."""
        with self._lock:
            self._held = True
            if self._board_fd is None:
                self._wake_at = None
                self._boot("deepsleep", self.world(), int(time.time()) - ESP32_EPOCH, 0)

    def _boot(self, cause: str, world: dict[str, Any], now: int, rain_tips: int) -> None:
        with self._lock:
            self._boot_locked(cause, world, now, rain_tips)

    def _boot_locked(self, cause: str, world: dict[str, Any], now: int, rain_tips: int
                     ) -> None:
        self._current = world
        self.sensor.flush()
        uarts = {str(PINMAP["ultrasonic_uart"]): self.sensor.path}
        extra = {"service_held": True} if self._held else {}
        self._held = False
        self.station.write_world({**world, "uarts": uarts, **extra}, now, rain_tips, cause)
        master, slave = pty.openpty()
        os.set_blocking(master, False)  # a board not reading its input never stops the pump
        # Like a UART: no output post-processing (MicroPython sends its own CR LF) and no
        # echo, but ISIG kept so that Ctrl-C interrupts a running program.
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST
        attrs[3] &= ~(termios.ECHO | termios.ICANON)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        cmd = [paths.micropython(), "-i", str(SCRIPT), str(self.station.flash)]
        if not self.run_from_flash:
            cmd.append(str(self.station.firmware))
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                                     preexec_fn=_controlling_tty, close_fds=True)
        os.close(slave)
        self._board_fd = master
        self.boots += 1

    def _kill(self) -> None:
        with self._lock:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self._board_fd is not None:
                while data := _read(self._board_fd):  # what it printed before it ended
                    self.sent += len(data)
                    self._out += data
                os.close(self._board_fd)
                self._board_fd = None
            self._in.clear()  # an asleep board hears nothing

    def _pump(self) -> None:
        while not self._stop.is_set():
            board = self._board_fd
            readers = [self._host_fd] + ([board] if board is not None else [])
            writers = ([self._host_fd] if self._out else []) \
                + ([board] if board is not None and self._in else [])
            try:
                ready, _, _ = select.select(readers, writers, [], 0.02)
            except (OSError, ValueError):  # the board's fd was closed meanwhile
                continue
            if self._host_fd in ready:
                data = _read(self._host_fd)
                if board is not None and len(self._in) < IN_BACKLOG:
                    self._in += data  # (an asleep board hears nothing)
            if board is not None and board in ready:
                data = _read(board)
                self.sent += len(data)
                self._out += data
            if self._out:
                self._to_port()
            if board is not None and self._in:
                self._to_board(board)
            with self._lock:
                if board is not None and board == self._board_fd and self.proc is not None \
                        and (self.proc.poll() is not None or self.station.sleep_file.exists()):
                    self._board_ended()
            if self._wake_at is not None and time.monotonic() >= self._wake_at:
                self._wake_at = None
                self._boot("deepsleep", self.world(), int(time.time()) - ESP32_EPOCH, 0)

    def _to_port(self) -> None:
        """What the board printed, as far as the PTY takes it now; when the reader has left
        more than OUT_BACKLOG untaken, nobody reads: drop it and what the line holds."""
        try:
            while self._out:
                n = os.write(self._host_fd, self._out)
                del self._out[:n]
        except (BlockingIOError, InterruptedError):
            pass
        if len(self._out) > OUT_BACKLOG:
            self.dropped += len(self._out) + _queued(self._port_fd)
            self._out.clear()
            termios.tcflush(self._port_fd, termios.TCIFLUSH)

    def _to_board(self, board: int) -> None:
        try:
            while self._in:
                n = os.write(board, self._in)
                del self._in[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # the board has exited (or been killed meanwhile)
            self._in.clear()

    def _board_ended(self) -> None:
        status = self.proc.poll() if self.proc is not None else None
        self._kill()
        if status == AWAKE:  # it would stay awake for ever (virtual_station.py): say so, stop
            why = (self.flash / "awake.txt").read_text().strip()
            print(f"{self.port}: the board stays awake for ever: {why}", file=sys.stderr)
            self._free_running = False
            self._slept.set()
        elif not self.station.sleep_file.exists():  # Ctrl-D, a crash or the watchdog
            cause = "wdt" if status == WDT else "soft"
            self._boot(cause, self._current, int(time.time()) - ESP32_EPOCH, 0)
        elif not self._free_running:
            self._slept.set()
        else:
            slept = self.station.took_sleep()
            assert slept is not None
            self._wake_at = time.monotonic() + slept[0] / self.time_scale


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except (BlockingIOError, InterruptedError):
        return b""
    except OSError:  # EIO: the board has exited (or been killed meanwhile)
        return b""


def _queued(fd: int) -> int:
    """Bytes waiting to be read on a terminal."""
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def _controlling_tty() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
