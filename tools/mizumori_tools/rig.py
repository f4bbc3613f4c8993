"""The serial-loopback rig: a virtual station behind a pseudo-terminal that looks like a USB
serial board, so the real mpremote (and `mizumori device …`) can flash and provision it.

The port (a symlink to a PTY the rig keeps open) stays the same across the board's restarts.
Each boot runs the unix port with the firmware in the station's flash directory on a fresh
PTY of its own, as the process's controlling terminal, so Ctrl-C interrupts a running
program as on a real board. Deep sleep ends the process; the rig boots it again after the
(time-scaled) sleep. While the board sleeps, nothing answers on the port.
The unix port runs with -i so that a board without main.py, or one stopped with Ctrl-C, sits
in its REPL; so deep sleep is seen by the sleep.ms file the sim board writes, not by an exit.
"""

import fcntl
import os
import pty
import select
import subprocess
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mizumori_tools import paths
from mizumori_tools.virtual import ESP32_EPOCH, SCRIPT, VirtualStation


class SerialRig:
    def __init__(self, station: VirtualStation, port: Path,
                 world: Callable[[], dict[str, Any]] | None = None, time_scale: float = 60.0,
                 run_from_flash: bool = True):
        """world: the simulated world at each boot; time_scale: simulated seconds of sleep per
        real second; run_from_flash: boot only what was flashed (else the repo's firmware)."""
        self.station = station
        self.port = port
        self.world = world or (lambda: {})
        self.time_scale = time_scale
        self.run_from_flash = run_from_flash
        self.proc: subprocess.Popen[bytes] | None = None
        self.boots = 0
        self._board_fd: int | None = None
        self._wake_at: float | None = None
        self._stop = threading.Event()
        self._host_fd, self._port_fd = pty.openpty()
        tty.setraw(self._port_fd)
        port.unlink(missing_ok=True)
        port.symlink_to(os.ttyname(self._port_fd))
        self._thread = threading.Thread(target=self._pump, daemon=True)

    def start(self, reset_cause: str = "power_on") -> None:
        self._boot(reset_cause)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._kill()
        for fd in (self._host_fd, self._port_fd):
            os.close(fd)
        self.port.unlink(missing_ok=True)

    def power_cut(self) -> None:
        """Kill the board at this instant; it boots again as after power returns."""
        self._kill()
        (self.station.flash / "rtc.bin").unlink(missing_ok=True)
        self._wake_at = None
        self._boot("power_on")

    def _boot(self, cause: str) -> None:
        self.station.write_world(self.world(), int(time.time()) - ESP32_EPOCH, 0, cause)
        master, slave = pty.openpty()
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._board_fd is not None:
            os.close(self._board_fd)
            self._board_fd = None

    def _pump(self) -> None:
        while not self._stop.is_set():
            fds = [self._host_fd] + ([self._board_fd] if self._board_fd is not None else [])
            ready, _, _ = select.select(fds, [], [], 0.05)
            if self._host_fd in ready:
                data = os.read(self._host_fd, 4096)
                if self._board_fd is not None:  # an asleep board hears nothing
                    os.write(self._board_fd, data)
            if self._board_fd is not None and self._board_fd in ready:
                try:
                    os.write(self._host_fd, os.read(self._board_fd, 4096))
                except OSError:  # the board's side closed: it has exited
                    pass
            if self._board_fd is not None and self.proc is not None and (
                    self.proc.poll() is not None or self.station.sleep_file.exists()):
                self._board_ended()
            if self._wake_at is not None and time.monotonic() >= self._wake_at:
                self._wake_at = None
                self._boot("deepsleep")

    def _board_ended(self) -> None:
        self._kill()
        slept = self.station.took_sleep()
        if slept is None:  # Ctrl-D or a crash: a soft reset
            self._boot("soft")
        else:
            self._wake_at = time.monotonic() + slept[0] / self.time_scale


def _controlling_tty() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
