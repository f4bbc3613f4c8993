# The simulated board: a World holds the physical truth (water level, air, battery, rain,
# faults) and the peripherals turn it into the bytes and pulses real parts produce, so the
# real drivers run unchanged. Runs under CPython and the MicroPython unix port.
import json
import struct
import sys

from station import fsutil
from station.drivers import bme280
from station.drivers.current_loop import FULL_SCALE_UA
from station.pins import PINS
from station.processing import C_REF, speed_of_sound


class DeepSleep(Exception):
    """Raised instead of sleeping: the caller advances the world and wakes the app again."""

    def __init__(self, ms):
        super().__init__(ms)
        self.ms = ms


WORLD_KEYS = ("now", "level_mm", "mount_mm", "air_temp_c", "humidity_pct", "pressure_hpa",
              "battery_mv", "rain_tips")


def from_spec(path):
    """The board of a virtual station, from the JSON its rig writes before each wake: the
    world's values, "faults", "reset_cause", "seed", "hardware_id" and "uarts" (UART id ->
    a host serial device where a simulated part streams its bytes). Its RTC memory lives in
    rtc.bin, and deep sleep writes the duration to sleep.ms and ends the process."""
    with open(path) as f:
        spec = json.load(f)
    board = Board(world_from(spec), reset_cause=spec.get("reset_cause", "deepsleep"),
                  rtc_path="rtc.bin", exit_on_sleep=True)
    board.hardware_id = spec.get("hardware_id", board.hardware_id)
    board.uart_ports = spec.get("uarts", {})
    board.flash_limit = spec.get("flash_free")
    return board


def world_from(spec, world=None):
    """A World with the spec's values (set onto the given world if any)."""
    world = world or World(spec.get("seed", 1))
    for key in WORLD_KEYS:
        if key in spec:
            setattr(world, key, spec[key])
    world.faults = set(spec.get("faults", []))
    return world


class World:
    """Faults: "missing" (level sensor silent), "garbage" (level sensor sends noise),
    "no_echo", "env_missing" (no BME280), "stuck" (level sensor repeats one value)."""

    def __init__(self, seed=1):
        self.now = 757382400  # 2024-01-01 in the ESP32's 2000 epoch
        self.level_mm = 1000
        self.mount_mm = 5000  # sensor face above datum (ultrasonic)
        self.sensor_offset_mm = 0  # transducer above datum (pressure)
        self.loop_span_mm = 5000
        self.air_temp_c = 20.0
        self.humidity_pct = 60.0
        self.pressure_hpa = 1013.2
        self.battery_mv = 3900
        self.rain_tips = 0
        self.noise_mm = 3
        self.faults = set()
        self._seed = seed or 1

    def rand(self, n):
        """Deterministic 0..n-1 (same sequence on CPython and MicroPython)."""
        self._seed = (self._seed * 1103515245 + 12345) & 0x7FFFFFFF
        return (self._seed >> 8) % n

    def noisy_distance_mm(self):
        """What a sensor assuming 20 C air would report for the true distance."""
        if "stuck" in self.faults:
            return self.mount_mm - 1234
        true_mm = self.mount_mm - self.level_mm
        seen = true_mm * C_REF / speed_of_sound(self.air_temp_c)
        return int(seen + 0.5) + self.rand(2 * self.noise_mm + 1) - self.noise_mm


class SimUltrasonicUART:
    """A02YYUW on a UART: a fresh pair of frames each time the buffer runs dry."""

    def __init__(self, world):
        self.world = world
        self.buf = b""

    def frames(self):
        """What the sensor sends next: two frames (or noise, or nothing)."""
        w = self.world
        if "missing" in w.faults:
            return b""
        if "garbage" in w.faults:
            return bytes(w.rand(256) for _ in range(8))
        out = b""
        for _ in range(2):
            mm = 0 if "no_echo" in w.faults else max(0, min(0xFFFF, w.noisy_distance_mm()))
            hi, lo = mm >> 8, mm & 0xFF
            out += bytes([0xFF, hi, lo, (0xFF + hi + lo) & 0xFF])
        return out

    def any(self):
        if not self.buf:
            self.buf = self.frames()
        return len(self.buf)

    def read(self, n=None):
        if n is None:
            n = len(self.buf)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def write(self, data):
        return len(data)


class SerialPortUART:
    """A UART wired to a host serial device: the pseudo-terminal on which the rig's simulated
    sensor streams its real bytes, or its simulated LoRaWAN modem answers. any() says only
    whether a byte is waiting."""

    def __init__(self, path):
        import select

        self.f = open(path, "r+b", 0)  # unbuffered: poll() must see every byte
        self.poller = select.poll()
        self.poller.register(self.f, select.POLLIN)

    def any(self):
        return 1 if self.poller.poll(0) else 0

    def read(self, n=None):
        out = b""
        while (n is None or len(out) < n) and self.poller.poll(0):
            out += self.f.read(1)
        return out

    def write(self, data):
        return self.f.write(data)


# Calibration of the Bosch BMP280 datasheet's worked example (T and P), with humidity
# coefficients typical of a real BME280.
CALIBRATION = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
HUMIDITY_CAL = (75, 362, 0, 313, 50, 30)  # H1..H6


def calibration_bytes():
    h1, h2, h3, h4, h5, h6 = HUMIDITY_CAL
    tp = struct.pack("<HhhHhhhhhhhh", *CALIBRATION) + bytes([0, h1])
    h = struct.pack("<hB", h2, h3) + bytes([
        (h4 >> 4) & 0xFF, (h4 & 0x0F) | ((h5 & 0x0F) << 4), (h5 >> 4) & 0xFF, h6 & 0xFF])
    return tp, h


def _search(f, target, bits, rising):
    """The raw value whose compensated output f(raw) is nearest target (f monotonic)."""
    lo, hi = 0, (1 << bits) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if (f(mid) < target) == rising:
            lo = mid + 1
        else:
            hi = mid
    return lo


class SimBME280I2C:
    """A BME280 at 0x76 with registers, as the driver sees it over I2C."""

    def __init__(self, world, addr=0x76):
        self.world = world
        self.addr = addr
        tp, h = calibration_bytes()
        self.regs = bytearray(256)
        self.regs[bme280.REG_ID] = bme280.CHIP_ID
        self.regs[bme280.REG_CALIB_TP:bme280.REG_CALIB_TP + 26] = tp
        self.regs[bme280.REG_CALIB_H:bme280.REG_CALIB_H + 7] = h
        self.cal = bme280.Calibration(tp, h)

    def _check(self, addr):
        if addr != self.addr or "env_missing" in self.world.faults:
            raise OSError(19)  # ENODEV, what machine.I2C raises on a NAK

    def scan(self):
        return [] if "env_missing" in self.world.faults else [self.addr]

    def writeto_mem(self, addr, reg, data):
        self._check(addr)
        if reg == bme280.REG_CTRL_MEAS and data[0] & 0x03:
            self._measure()

    def readfrom_mem(self, addr, reg, n):
        self._check(addr)
        return bytes(self.regs[reg:reg + n])

    def _measure(self):
        w, c = self.world, self.cal
        adc_t = _search(lambda r: bme280.compensate_t(c, r)[1],
                        int(w.air_temp_c * 100), 20, True)
        t_fine = bme280.compensate_t(c, adc_t)[0]
        adc_p = _search(lambda r: -bme280.compensate_p(c, r, t_fine),
                        -int(w.pressure_hpa * 25600), 20, True)
        adc_h = _search(lambda r: bme280.compensate_h(c, r, t_fine),
                        int(w.humidity_pct * 1024), 16, True)
        self.regs[bme280.REG_DATA:bme280.REG_DATA + 8] = bytes([
            adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4,
            adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4,
            adc_h >> 8, adc_h & 0xFF])


class SimADC:
    def __init__(self, read_uv):
        self.read_uv = read_uv


class SimPin:
    def __init__(self, world, num):
        self.world = world
        self.num = num
        self.level = 0
        self.handler = None

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v

    def irq(self, handler=None, trigger=0):
        self.handler = handler


class SimWDT:
    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class Board:
    name = "sim"
    IRQ_FALLING = 2
    EPOCH_OFFSET = 946684800  # World.now counts from 2000, like an ESP32

    def __init__(self, world=None, reset_cause="deepsleep", rtc_path=None,
                 service_held=False, pins=None, exit_on_sleep=False):
        self.world = world or World()
        self.cause = reset_cause
        self.rtc_path = rtc_path
        self.held = service_held
        self.pins = pins or PINS
        self.wdt = None
        self.exit_on_sleep = exit_on_sleep
        self.hardware_id = "sim-000000000000"
        self.uart_ports = {}
        self.flash_limit = None  # bytes free to pretend (a small flash), else the host's
        self._rtc = fsutil.read_bytes(rtc_path) if rtc_path else None

    def uart(self, uid, baudrate, tx, rx):
        port = self.uart_ports.get(str(uid))
        return SerialPortUART(port) if port else SimUltrasonicUART(self.world)

    def i2c(self, scl, sda):
        return SimBME280I2C(self.world)

    def adc(self, pin):
        w = self.world
        if pin == self.pins["battery_adc"]:
            return SimADC(lambda: w.battery_mv * 500)  # behind a 2:1 divider
        if pin == self.pins["loop_adc"]:
            def loop_uv():
                if "missing" in w.faults:
                    return 0
                depth = w.level_mm - w.sensor_offset_mm
                ua = 4000 + depth * FULL_SCALE_UA // w.loop_span_mm + w.rand(9) - 4
                return ua * 150  # across the 150 ohm shunt
            return SimADC(loop_uv)
        raise ValueError("no simulated ADC on pin %d" % pin)

    def pin_in(self, pin, pull_up=False):
        return SimPin(self.world, pin)

    def pin_out(self, pin, value=0):
        p = SimPin(self.world, pin)
        p.value(value)
        return p

    def time_pulse_us(self, pin, level, timeout_us):
        w = self.world
        if "missing" in w.faults:
            return -1
        if "no_echo" in w.faults:
            return -2
        us = w.noisy_distance_mm() * 2000 / C_REF  # echo time the module would measure
        return -2 if us > timeout_us else int(us)

    def sleep_us(self, us):
        pass

    def time(self):
        return self.world.now

    def set_time(self, t):
        self.world.now = t

    def rtc_memory(self):
        return self._rtc or b""

    def set_rtc_memory(self, data):
        self._rtc = bytes(data)
        if self.rtc_path:
            fsutil.write_atomic(self.rtc_path, self._rtc)

    def reset_cause(self):
        return self.cause

    def unique_id(self):
        return self.hardware_id

    def wifi_connect(self, wifi, state):
        # The host's network stands in for Wi-Fi; "link_down" simulates an outage.
        return "link_down" not in self.world.faults

    def rssi(self):
        return -60

    def flash_free(self):
        if self.flash_limit is not None:
            return self.flash_limit
        import os

        st = os.statvfs(".")
        return st[0] * st[4]

    def woke_by_rain(self):
        return False

    def sleep_tips(self):
        n = self.world.rain_tips
        self.world.rain_tips = 0
        return n

    def service_held(self, pin):
        return self.held

    def watchdog(self, timeout_ms):
        self.wdt = SimWDT(timeout_ms)
        return self.wdt

    def deepsleep(self, ms, rain_pin=None):
        if self.exit_on_sleep:  # a virtual station: the process ends, its rig wakes it later
            fsutil.write_atomic("sleep.ms", ("%d %d" % (ms, self.time())).encode())
            sys.exit(0)
        raise DeepSleep(ms)

