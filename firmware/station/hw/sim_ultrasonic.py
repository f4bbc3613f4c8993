# The sim board's ultrasonic level sensors (hw/sim.py imports this module only when the
# firmware opens their UART or pulses their TRIG pin): the A02YYUW's frames and the
# JSN-SR04T's echo timing, from the World's water level and air.
from station.hw.sim import UART_RXBUF, RuleBroken, _always

# JSN-SR04T timing. With nothing to reflect, the module holds ECHO high about 60 ms and then
# drops it ("if the echo cannot be received ... the ECHO port will automatically change to
# low level after 60MS", qariya.net JSN-SR04T page); a trigger meanwhile is ignored, and a
# time_pulse_us started then times the rest of that hold (a ghost distance). Pings closer
# than 50 ms ring into each other: "cycle period no less than 50ms" (DFRobot SEN0208, the
# same JSN-class module, jimaobian/DFRobotWiki): the sim refuses them (RuleBroken).
JSN_HOLD_US = 60000
JSN_CYCLE_MS = 50


def _sound():
    """(speed of sound at a temperature, the 20 C reference speed). Imported at each use:
    the firmware lets station.processing go after its cycle (docs/firmware.md, RAM budget),
    and a module-level import here would keep it in the heap."""
    from station.processing import C_REF, speed_of_sound

    return speed_of_sound, C_REF


def a02_distance_mm(w):
    """What the A02YYUW reports for the true distance: at its own fixed speed of sound
    (w.us_ref_speed; None: 20 C air) in the real air, or the true distance when it
    compensates internally."""
    if "stuck" in w.faults:
        return w.mount_mm - 1234
    true_mm = w.mount_mm - w.level_mm
    if w.us_internal:
        seen = true_mm
    else:
        speed_of_sound, c_ref = _sound()
        seen = true_mm * (w.us_ref_speed or c_ref) / speed_of_sound(w.air_temp_c)
    return int(seen + 0.5) + w.rand(2 * w.noise_mm + 1) - w.noise_mm


def jsn_echo_us(w):
    """The JSN-SR04T's echo pulse: the round trip in the real air, with the noise."""
    speed_of_sound, c_ref = _sound()
    if "stuck" in w.faults:
        return int(2 * (w.mount_mm - 1234) * 1000 / c_ref)
    true_mm = w.mount_mm - w.level_mm
    noise = w.rand(2 * w.noise_mm + 1) - w.noise_mm
    return int(2 * (true_mm + noise) * 1000 / speed_of_sound(w.air_temp_c))


def jsn_trigger(board):
    """A rising edge on the JSN-SR04T's TRIG: ignored while ECHO is still high (JSN_HOLD_US),
    refused under JSN_CYCLE_MS after the last ping; else ECHO goes high for the round
    trip, or for the no-echo hold."""
    w = board.world
    if "missing" in w.faults or not board.powered("jsnsr04t"):
        return
    now_us = board.ms * 1000
    if now_us < board.jsn_echo_end_us:
        return  # busy: the module does not see this trigger
    if board.jsn_ping_ms is not None and board.ms - board.jsn_ping_ms < JSN_CYCLE_MS:
        raise RuleBroken("JSN-SR04T pinged %d ms after its last ping: its cycle is %d ms "
                         "or more (DFRobot SEN0208)" % (board.ms - board.jsn_ping_ms,
                                                        JSN_CYCLE_MS))
    board.jsn_ping_ms = board.ms
    pulse = JSN_HOLD_US if "no_echo" in w.faults else min(jsn_echo_us(w), JSN_HOLD_US)
    board.jsn_echo_end_us = now_us + pulse


class SimUltrasonicUART:
    """A02YYUW on a UART: a frame every world.a02_frame_ms (100 ms; processed output may
    take 500 ms, SEN0311 CN wiki) of the board's time while it is powered and warmed up
    (DFRobot SEN0311: one frame per measurement), nothing while it is not. Without a clock
    (a part on the bench), two fresh frames whenever the buffer runs dry."""

    def __init__(self, world, powered=_always, clock=None):
        self.world = world
        self.powered = powered
        self.clock = clock
        self.buf = b""
        self.next_ms = None

    def frame(self):
        w = self.world
        if "missing" in w.faults:
            return b""
        if "garbage" in w.faults:
            return bytes(w.rand(256) for _ in range(4))
        mm = 0 if "no_echo" in w.faults else max(0, min(0xFFFF, a02_distance_mm(w)))
        hi, lo = mm >> 8, mm & 0xFF
        return bytes([0xFF, hi, lo, (0xFF + hi + lo) & 0xFF])

    def _fill(self):
        if not self.powered():
            self.buf = b""
            self.next_ms = None
            return
        if self.clock is None:
            if not self.buf:
                self.buf = self.frame() + self.frame()
            return
        now = self.clock.ticks_ms()
        if self.next_ms is None:
            self.next_ms = now
        while now >= self.next_ms:
            self.buf += self.frame()
            self.next_ms += self.world.a02_frame_ms
        self.buf = self.buf[:UART_RXBUF]  # the newest are lost (sim.UART_RXBUF)

    def any(self):
        self._fill()
        return len(self.buf)

    def read(self, n=None):
        """None when nothing is waiting, as machine.UART.read() (hw/sim.py, "Every UART")."""
        self._fill()
        if n is None:
            n = len(self.buf)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data or None

    def write(self, data):
        return len(data)
