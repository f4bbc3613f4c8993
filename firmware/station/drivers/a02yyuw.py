# DFRobot A02YYUW (SEN0311) waterproof ultrasonic sensor, UART output at 9600 8N1.
# It sends a frame about every 100 ms: 0xFF, distance high byte, low byte, checksum where
# checksum = (0xFF + high + low) & 0xFF; the distance is in millimetres (30..4500).
# We treat a distance of 0 as "no echo" and other values outside the range as out of range.
# Processed output (RX high or floating) answers within 100-300 ms (EN wiki) or 500 ms (CN
# wiki): the 1 s timeout waits out the slowest before calling the sensor silent.
import time

from station import codec
from station.drivers import SensorFault

MIN_MM = 30
MAX_MM = 4500


class FrameParser:
    """Finds valid frames in a byte stream, resynchronising on garbage."""

    def __init__(self):
        self.buf = b""
        self.bad_bytes = 0
        self.frames = 0

    def feed(self, data):
        b = self.buf + bytes(data)
        out = []
        i = 0
        while len(b) - i >= 4:
            if b[i] == 0xFF and (0xFF + b[i + 1] + b[i + 2]) & 0xFF == b[i + 3]:
                out.append((b[i + 1] << 8) | b[i + 2])
                i += 4
            else:
                i += 1
                self.bad_bytes += 1
        self.buf = b[i:]
        self.frames += len(out)
        return out


class A02YYUW:
    def __init__(self, uart, timeout_ms=1000, clock=time):
        """clock: ticks_ms() and sleep_ms() (the board's: the sim counts its own time)."""
        self.uart = uart
        self.timeout_ms = timeout_ms
        self.clock = clock
        self.parser = FrameParser()

    def read_mm(self):
        """One fresh distance in mm (at the sensor's reference speed of sound)."""
        uart = self.uart
        if uart.any():
            uart.read()  # drop stale frames buffered while we were busy
        clock = self.clock
        start = clock.ticks_ms()
        got_bytes = False
        while time.ticks_diff(clock.ticks_ms(), start) < self.timeout_ms:
            n = uart.any()
            if not n:
                clock.sleep_ms(10)
                continue
            got_bytes = True
            values = self.parser.feed(uart.read(n))
            if values:
                mm = values[-1]
                if mm == 0:
                    raise SensorFault(codec.NO_ECHO, "no echo")
                if mm < MIN_MM or mm > MAX_MM:
                    raise SensorFault(codec.OUT_OF_RANGE, "%d mm" % mm)
                return mm
        # Silence means no sensor; bytes without one valid frame mean a broken link.
        raise SensorFault(codec.SENSOR_MISSING, "garbage" if got_bytes else "silent")
