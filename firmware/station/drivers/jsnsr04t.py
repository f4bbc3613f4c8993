# JSN-SR04T waterproof ultrasonic sensor, trigger/echo mode (mode 1, 25..450 cm usable;
# we accept up to 6 m as the datasheet maximum). A >=10 us trigger pulse starts a
# measurement; the echo pin is high for the round-trip time.
from station import codec
from station.drivers import SensorFault
from station.processing import C_REF

MIN_MM = 250
MAX_MM = 6000
TIMEOUT_US = 40000  # round trip of 6 m is ~35 ms


class JSNSR04T:
    def __init__(self, trig, echo, time_pulse_us, sleep_us):
        self.trig = trig
        self.echo = echo
        self.time_pulse_us = time_pulse_us
        self.sleep_us = sleep_us

    def read_mm(self):
        self.trig.value(0)
        self.sleep_us(5)
        self.trig.value(1)
        self.sleep_us(20)
        self.trig.value(0)
        t = self.time_pulse_us(self.echo, 1, TIMEOUT_US)
        # machine.time_pulse_us (extmod/machine_pulse.c): -2 when the pulse never started,
        # -1 when it never ended.
        if t == -2:  # echo never went high: no module answering (or no power)
            raise SensorFault(codec.SENSOR_MISSING, "no echo pulse")
        if t < 0:  # echo stayed high past the timeout: nothing reflected
            raise SensorFault(codec.NO_ECHO, "echo timeout")
        mm = int(t * C_REF / 2000 + 0.5)
        if mm < MIN_MM or mm > MAX_MM:
            raise SensorFault(codec.OUT_OF_RANGE, "%d mm" % mm)
        return mm
