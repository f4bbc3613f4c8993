# JSN-SR04T waterproof ultrasonic sensor, trigger/echo mode (mode 1, 25..450 cm usable;
# we accept up to 6 m as the datasheet maximum). A >=10 us trigger pulse starts a
# measurement; the echo pin is high for the round-trip time. With nothing to reflect, the
# module holds the echo high about 60 ms (qariya.net JSN-SR04T page), and pings need 50 ms
# or more between them (DFRobot SEN0208, the same module class): hardware/ultrasonic.md.
import time

from station import codec
from station.drivers import SensorFault
from station.processing import C_REF

MIN_MM = 250
MAX_MM = 6000
TIMEOUT_US = 70000  # past the 60 ms no-echo hold: that pulse ends, and is read as no echo
NO_ECHO_US = 50000  # longer than any echo from MAX_MM (6 m: 35 ms): the no-echo hold
PING_GAP_MS = 60  # from one trigger to the next: the 50 ms cycle, with a margin
FREE_WAIT_MS = 100  # at most this long for an echo still high to drop before a ping


class JSNSR04T:
    def __init__(self, trig, echo, time_pulse_us, sleep_us, clock=None):
        """clock: ticks_ms() and sleep_ms() (the board's) to space the pings; None for a
        single ping (a bench test)."""
        self.trig = trig
        self.echo = echo
        self.time_pulse_us = time_pulse_us
        self.sleep_us = sleep_us
        self.clock = clock
        self.pinged = None  # ticks_ms of the last trigger

    def _ready(self):
        """Wait out the ping cycle and an echo still high: a trigger then is ignored and the
        rest of the old pulse would be timed as a (short, wrong) distance."""
        clock = self.clock
        if clock is None:
            return
        if self.pinged is not None:
            wait = PING_GAP_MS - time.ticks_diff(clock.ticks_ms(), self.pinged)
            if wait > 0:
                clock.sleep_ms(wait)
        waited = 0
        while self.echo.value():
            if waited >= FREE_WAIT_MS:
                raise SensorFault(codec.NO_ECHO, "echo stays high")
            clock.sleep_ms(10)
            waited += 10

    def read_mm(self):
        self._ready()
        self.trig.value(0)
        self.sleep_us(5)
        self.trig.value(1)
        self.sleep_us(20)
        self.trig.value(0)
        if self.clock is not None:
            self.pinged = self.clock.ticks_ms()
        t = self.time_pulse_us(self.echo, 1, TIMEOUT_US)
        # machine.time_pulse_us (extmod/machine_pulse.c): -2 when the pulse never started,
        # -1 when it never ended.
        if t == -2:  # echo never went high: no module answering (or no power)
            raise SensorFault(codec.SENSOR_MISSING, "no echo pulse")
        if t < 0 or t >= NO_ECHO_US:  # the no-echo hold (or longer): nothing reflected
            raise SensorFault(codec.NO_ECHO, "echo timeout")
        mm = int(t * C_REF / 2000 + 0.5)
        if mm < MIN_MM or mm > MAX_MM:
            raise SensorFault(codec.OUT_OF_RANGE, "%d mm" % mm)
        return mm
