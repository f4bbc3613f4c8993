"""Simulated parts on pseudo-terminals of their own, speaking the real bytes, for the rig.

The A02YYUW ultrasonic sensor streams a frame about every 100 ms whether anyone listens or
not; the frames come from the firmware's own sim peripheral, so the PTY and the in-process
sim board produce the same bytes for the same world. A world whose "realtime" is a number
(the board's waits pass that much faster on the host: hw/sim.py from_spec) speeds the stream
up by the same factor, so the board sees a frame per 100 ms of its own time.
"""

import os
import pty
import termios
import threading
import tty
from collections.abc import Callable
from typing import Any

from mizumori_tools import paths

FRAME_PERIOD_S = 0.1  # the A02YYUW's processed-output rate


class UltrasonicSensorPty:
    def __init__(self, world: Callable[[], dict[str, Any]], seed: int = 1):
        paths.import_firmware()
        from station.hw import sim, sim_ultrasonic

        self._sim = sim
        self._part = sim_ultrasonic.SimUltrasonicUART
        self.world = world
        self.seed = seed
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)  # a binary line: no echo, no line editing, no CR/LF games
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stream, daemon=True)
        self._thread.start()

    def _stream(self) -> None:
        sensor = self._part(self._sim.world_from({"seed": self.seed}))
        period = FRAME_PERIOD_S
        while not self._stop.wait(period):
            world = self.world()
            speed = world.get("realtime")
            period = FRAME_PERIOD_S / (speed if speed and speed is not True else 1)
            self._sim.world_from(world, sensor.world)
            try:
                os.write(self._master, sensor.frame())  # one frame per period
            except BlockingIOError:  # nobody reading and the line's buffer full: lost
                pass

    def flush(self) -> None:
        """Drop what queued up while the board slept (a UART's FIFO starts empty at boot)."""
        termios.tcflush(self._slave, termios.TCIFLUSH)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self._master)
        os.close(self._slave)
