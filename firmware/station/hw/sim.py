# The simulated board: a World holds the physical truth (water level, air, battery, rain,
# faults) and the peripherals turn it into the bytes and pulses real parts produce, so the
# real drivers run unchanged. Runs under CPython and the MicroPython unix port.
import json
import struct
import sys
import time as _time

from station import fsutil
from station.clock import unix_seconds
from station.drivers import bme280
from station.drivers.current_loop import FULL_SCALE_UA
from station.pins import PINS, SWITCHED
from station.processing import C_REF, speed_of_sound

# The chip's rules this board enforces (docs/firmware.md, "The simulated board"). Each one is
# what the ESP32 or a part does, with its source, so a test cannot pass on a kinder board.

# RTC user memory: MICROPY_HW_RTC_USER_MEM_MAX = 2048; more raises ValueError("buffer too
# long") (ports/esp32/machine_rtc.c). It survives deep sleep and soft, watchdog and hard
# resets (RTC_NOINIT) and is lost with the power.
RTC_MEMORY_MAX = 2048
# ADC at 11 dB attenuation: the calibrated range is 150-2450 mV; outside it the reading
# clips (Espressif ESP32 datasheet, ADC characteristics; ESP-IDF ADC oneshot docs).
ADC_MIN_UV = 150000
ADC_MAX_UV = 2450000
# ADC2 is shared with the Wi-Fi driver: adc2 reads fail while Wi-Fi is on (ESP-IDF ADC docs,
# "ADC2 ... cannot be used when Wi-Fi is in use"). GPIO numbers of ADC2's channels.
ADC2_PINS = (0, 2, 4, 12, 13, 14, 15, 25, 26, 27)
# One conversion of the ESP32's ADC scatters ("the ESP32 ADC can be sensitive to noise
# leading to large discrepancies in ADC readings": ESP-IDF ADC docs, "Minimizing Noise", which
# advise a 0.1 uF capacitor and multisampling). Modelled on the loop shunt as uniform
# +-10 mV per conversion (+-100 uA, +-31 mm of a 5 m span at 100 ohm): an assumed figure,
# below the review's +-60 mV calibrated error, to be replaced by a bench measurement.
LOOP_ADC_NOISE_UV = 10000
# TI ADS1115 (SBAS444D): I2C address set by its ADDR pin (table 4; wired to GND: 0x48);
# config register OS/MUX/PGA/MODE/DR (9.6.3); full-scale range per PGA setting; a
# single-shot conversion takes 1/DR and OS reads 0 until it ends, the conversion register
# keeping the previous result meanwhile (9.4.2); a 16-bit two's-complement code that
# saturates at 0x7FFF/0x8000 beyond the full scale (9.5.4).
ADS1115_ADDR = 0x48
ADS1115_FSR_UV = (6144000, 4096000, 2048000, 1024000, 512000, 256000, 256000, 256000)
ADS1115_SPS = (8, 16, 32, 64, 128, 250, 475, 860)
# The RTC keeps time through deep sleep on the internal 150 kHz RC oscillator (no 32 kHz
# crystal on the reference board): ESP-IDF calibrates it at sleep entry, but it drifts with
# temperature. 1000 ppm (0.1 %, 86 s a day) is the low end of the review's 0.1-1 % estimate
# (shared/reviews/firmware-on-esp32.md #10); a spec's "clock_drift_ppm" overrides it.
CLOCK_DRIFT_PPM = 1000
# Sensor warm-up after the rail comes on, ms (hardware/pinmap.json "switched_rail"):
# BME280 start-up time 2 ms (Bosch BST-BME280-DS002, table 1, t_startup); A02YYUW: first frame
# after one measurement cycle, 100-300 ms (DFRobot SEN0311 wiki: response time); JSN-SR04T
# (no figure published: one trigger cycle of its 40 kHz module after the MCU starts, 100 ms
# assumed); 4-20 mA loop: boost converter plus transmitter start-up, 500 ms (a typical
# pressure transmitter's "power-up time < 500 ms").
WARMUP_MS = {"bme280": 2, "a02yyuw": 300, "jsnsr04t": 100, "current_loop": 500}
# JSN-SR04T timing. With nothing to reflect, the module holds ECHO high about 60 ms and then
# drops it ("if the echo cannot be received ... the ECHO port will automatically change to
# low level after 60MS", qariya.net JSN-SR04T page); a trigger meanwhile is ignored, and a
# time_pulse_us started then times the rest of that hold (a ghost distance). Pings closer
# than 50 ms ring into each other: "cycle period no less than 50ms" (DFRobot SEN0208, the
# same JSN-class module, jimaobian/DFRobotWiki): the sim refuses them (RuleBroken).
JSN_HOLD_US = 60000
JSN_CYCLE_MS = 50
# What the network costs in simulated time (typical figures, shared/reviews §4): DNS, TCP
# connect, a TLS 1.2 ECDHE-P256 handshake on an ESP32 at 160 MHz, and a request's round trip.
NET_MS = {"dns": 100, "connect": 150, "tls": 1500, "request": 300}
# The energy ledger (hardware/energy.json holds the currents): the board counts the ms it
# spends in each state in its own time. Boot: the ROM bootloader, the app image check and
# MicroPython's start to main.py after a deep-sleep wake, ~300 ms on an ESP32 at 160 MHz
# (ESP-IDF's "deep sleep wake stub" docs put the default path in the hundreds of ms);
# the firmware's own computing is not in the board's time and is left out (about 10 ms a
# wake at the host's measured cycle CPU time scaled to an ESP32, bench/run.py).
BOOT_MS = 300
ENERGY_FILE = "energy.json"  # a virtual station's ledger, summed over its wakes
ETIMEDOUT = 116  # lwIP's errno on the ESP32
MDNS_FAIL = -202  # getaddrinfo's error when DNS gets no answer (lwIP EAI_FAIL)
# A level-triggered ext0 wake (esp32.wake_on_ext0, ports/esp32/modesp32.c; ESP-IDF
# esp_sleep_enable_ext0_wakeup: "wake up when the level is ...") fires again at once while the
# pin stays at the wake level: the board wakes with no time asleep.


class RuleBroken(BaseException):
    """The firmware broke a hardware rule that a real board would not report (a drained
    battery, a sensor never powered). BaseException: the firmware cannot catch it."""


class WatchdogReset(BaseException):
    """machine.WDT was not fed within its timeout: the chip resets (ports/esp32/machine_wdt.c:
    the task watchdog panics; machine.reset_cause() then reads WDT_RESET)."""


class DeepSleep(BaseException):
    """Raised instead of sleeping: the caller advances the world and wakes the app again.
    ext0: the rain pin was already at its wake level, so the board woke again at once."""

    def __init__(self, ms, ext0=False):
        super().__init__(ms)
        self.ms = ms
        self.ext0 = ext0


WORLD_KEYS = ("now", "level_mm", "mount_mm", "air_temp_c", "humidity_pct", "pressure_hpa",
              "battery_mv", "rain_tips")


def from_spec(path):
    """The board of a virtual station, from the JSON its rig writes before each wake: the
    world's values, "faults", "reset_cause", "seed", "hardware_id", "uarts" (UART id -> a host
    serial device where a simulated part streams its bytes), "realtime" (waits also pass on
    the host, as they must when a part on a serial device or mpremote is at the other end;
    the default when there are "uarts"; a number: the host's time runs that much faster, as
    a part on a serial device sped up by the same factor does) and "clock_drift_ppm". Its RTC memory
    lives in rtc.bin and its RTC clock in rtc.clock; deep sleep writes the duration to
    sleep.ms and ends the process."""
    with open(path) as f:
        spec = json.load(f)
    cause = spec.get("reset_cause", "deepsleep")
    world = world_from(spec)
    board = Board(world, reset_cause=cause, rtc_path="rtc.bin", exit_on_sleep=True,
                  clock=_restore_clock(world.now, cause, spec.get("clock_drift_ppm",
                                                                  CLOCK_DRIFT_PPM)),
                  realtime=spec.get("realtime", bool(spec.get("uarts"))),
                  woke_by_ext0=spec.get("ext0", False))
    board.hardware_id = spec.get("hardware_id", board.hardware_id)
    board.uart_ports = spec.get("uarts", {})
    board.flash_limit = spec.get("flash_free")
    board.clock_path = "rtc.clock"
    return board


def _restore_clock(now, cause, drift_ppm):
    """The RTC clock at this wake: kept through deep sleep and resets (drifting), back to the
    port's epoch start after a power loss; None when never set (a board as it left the
    factory with its clock reading the true time: the rig's first boot)."""
    if cause in ("power_on", "brownout"):
        return 0
    raw = fsutil.read_bytes("rtc.clock")
    if not raw:
        return None
    clock, at = [int(x) for x in raw.split()]
    return clock + (now - at) + (now - at) * drift_ppm // 1000000


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
    "no_echo", "env_missing" (no BME280), "stuck" (level sensor repeats one value),
    "link_down" (no access point answers), "dns_stall" (DNS never answers), "net_stall"
    (the server never replies), "reed_stuck" (the rain gauge's reed switch stays closed),
    "ads_missing" (the ADS1115 does not answer on the I2C bus).
    aps: the Wi-Fi access points in range, as network.WLAN.scan() lists them."""

    def __init__(self, seed=1):
        self.now = 757382400  # 2024-01-01 in the ESP32's 2000 epoch
        self.level_mm = 1000
        self.mount_mm = 5000  # sensor face above datum (ultrasonic)
        self.sensor_offset_mm = 0  # transducer above datum (pressure)
        self.loop_span_mm = 5000
        self.loop_shunt_ohm = 100  # as built (hardware/bom.md)
        self.loop_ua = None  # a fixed loop current (a calibrator), else from the level
        self.loop_adc_noise_uv = LOOP_ADC_NOISE_UV  # the ESP32 ADC's scatter per conversion
        self.ads1115_fitted = True  # an ADS1115 on the I2C bus (fault "ads_missing": silent)
        self.net_request_ms = None  # a request's round trip on a slow network, else NET_MS
        self.reed_closed_ms = 0  # a tip in progress: the reed is closed until then (board ms)
        self.air_temp_c = 20.0
        self.humidity_pct = 60.0
        self.pressure_hpa = 1013.2
        self.battery_mv = 3900
        self.rain_tips = 0
        self.noise_mm = 3
        # The A02YYUW's unknown conversion (shared/reviews/sensors-and-accuracy.md #7): a module
        # that assumes us_ref_speed m/s in any air, or ("internal") one that compensates itself.
        self.us_internal = False
        self.us_ref_speed = C_REF
        self.a02_frame_ms = 100  # processed output: one frame per 100-500 ms (SEN0311 CN wiki)
        self.faults = set()
        # (ssid, bssid, channel, RSSI, security, hidden); a neighbour's Shift-JIS SSID
        # ("水守" in Shift-JIS is not UTF-8).
        self.aps = [(b"\x90\x85\x8e\xe7-guest", b"\x02\x00\x00\x00\x00\x01", 1, -48, 3, False),
                    (SIM_SSID.encode(), b"\x02\x00\x00\x00\x00\x02", 6, -61, 3, False)]
        self._seed = seed or 1

    def rand(self, n):
        """Deterministic 0..n-1 (same sequence on CPython and MicroPython)."""
        self._seed = (self._seed * 1103515245 + 12345) & 0x7FFFFFFF
        return (self._seed >> 8) % n

    def noisy_distance_mm(self):
        """What the A02YYUW reports for the true distance: at its own fixed speed of sound
        (us_ref_speed, 20 C air unless set) in the real air, or the true distance when it
        compensates internally."""
        if "stuck" in self.faults:
            return self.mount_mm - 1234
        true_mm = self.mount_mm - self.level_mm
        seen = true_mm if self.us_internal else (
            true_mm * self.us_ref_speed / speed_of_sound(self.air_temp_c))
        return int(seen + 0.5) + self.rand(2 * self.noise_mm + 1) - self.noise_mm

    def echo_us(self):
        """The JSN-SR04T's echo pulse: the round trip in the real air, with the noise."""
        if "stuck" in self.faults:
            return int(2 * (self.mount_mm - 1234) * 1000 / C_REF)
        true_mm = self.mount_mm - self.level_mm
        noise = self.rand(2 * self.noise_mm + 1) - self.noise_mm
        return int(2 * (true_mm + noise) * 1000 / speed_of_sound(self.air_temp_c))


SIM_SSID = "mizumori-sim"  # the simulated access point virtual stations are provisioned for


def _always():
    return True


class SimUltrasonicUART:
    """A02YYUW on a UART: a frame every world.a02_frame_ms (100 ms; processed output may
    take 500 ms, SEN0311 CN wiki) of the board's time while it is powered and warmed up
    (DFRobot SEN0311: one frame per measurement), nothing while it is not. Without a clock
    (a part on the bench), two fresh frames whenever the buffer runs dry."""

    RXBUF = 256  # the UART's receive buffer (hw/esp32.py: rxbuf=256); older bytes are lost

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
        mm = 0 if "no_echo" in w.faults else max(0, min(0xFFFF, w.noisy_distance_mm()))
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
        self.buf = self.buf[-self.RXBUF:]

    def any(self):
        self._fill()
        return len(self.buf)

    def read(self, n=None):
        self._fill()
        if n is None:
            n = len(self.buf)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def write(self, data):
        return len(data)


class SerialPortUART:
    """A UART wired to a host serial device: the pseudo-terminal on which the rig's simulated
    sensor streams its real bytes, or its simulated LoRaWAN modem answers. any() says only
    whether a byte is waiting. While the part is unpowered its bytes are lost."""

    def __init__(self, path, powered=_always):
        import select

        self.f = open(path, "r+b", 0)  # unbuffered: poll() must see every byte
        self.poller = select.poll()
        self.poller.register(self.f, select.POLLIN)
        self.powered = powered

    def any(self):
        if not self.powered():
            while self.poller.poll(0):
                self.f.read(1)
            return 0
        return 1 if self.poller.poll(0) else 0

    def read(self, n=None):
        out = b""
        if not self.any():
            return out
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

    def __init__(self, world, addr=0x76, powered=_always):
        self.world = world
        self.addr = addr
        self.powered = powered
        tp, h = calibration_bytes()
        self.regs = bytearray(256)
        self.regs[bme280.REG_ID] = bme280.CHIP_ID
        self.regs[bme280.REG_CALIB_TP:bme280.REG_CALIB_TP + 26] = tp
        self.regs[bme280.REG_CALIB_H:bme280.REG_CALIB_H + 7] = h
        self.cal = bme280.Calibration(tp, h)

    def _check(self, addr):
        if addr != self.addr or "env_missing" in self.world.faults or not self.powered():
            raise OSError(19)  # ENODEV, what machine.I2C raises on a NAK

    def scan(self):
        return [] if "env_missing" in self.world.faults or not self.powered() else [self.addr]

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


class SimADS1115:
    """An ADS1115 with ADDR to GND, AIN0 on the loop's shunt (against GND), powered from the
    switched rail: single-shot conversions in the board's time (see the rules at the top).
    Continuous mode is not modelled (the firmware does not use it)."""

    def __init__(self, board, source, addr=ADS1115_ADDR):
        self.board = board
        self.source = source  # the shunt voltage, uV
        self.addr = addr
        self.config = 0x8583  # the power-on default (9.6.3)
        self.result = 0
        self.pending = None
        self.done_us = 0
        self.conversions = 0

    def powered(self):
        return self.board.rail_on() and "ads_missing" not in self.board.world.faults

    def _now_us(self):
        return self.board.ms * 1000

    def _settle(self):
        if self.pending is not None and self._now_us() >= self.done_us:
            self.result, self.pending = self.pending, None

    def write(self, reg, data):
        if reg == 1:
            cfg = (data[0] << 8) | data[1]
            if not cfg & 0x0100:
                raise NotImplementedError("ADS1115 continuous mode is not modelled")
            self.config = cfg & 0x7FFF
            if cfg & 0x8000:  # OS: start a single-shot conversion
                mux = (cfg >> 12) & 7
                fsr = ADS1115_FSR_UV[(cfg >> 9) & 7]
                uv = self.source() if mux == 4 else 0  # only AIN0 is wired
                code = (uv * 32768) // fsr
                self.pending = max(-32768, min(32767, code))
                self.done_us = self._now_us() + (1000000 + ADS1115_SPS[(cfg >> 5) & 7] - 1) \
                    // ADS1115_SPS[(cfg >> 5) & 7]
                self.conversions += 1

    def read(self, reg, n):
        self._settle()
        if reg == 1:
            v = self.config | (0 if self.pending is not None else 0x8000)
        elif reg == 0:
            v = self.result & 0xFFFF
        else:
            v = 0
        return bytes([v >> 8, v & 0xFF])[:n]


class SimI2C:
    """machine.I2C with the parts on the station's bus: the BME280 (0x76) and, when fitted,
    the ADS1115 (0x48). An address nobody answers raises OSError(ENODEV), as on the ESP32."""

    def __init__(self, bme, ads=None):
        self.bme = bme
        self.ads = ads

    def _ads(self, addr):
        ads = self.ads
        if ads is not None and addr == ads.addr and ads.powered():
            return ads
        return None

    def scan(self):
        found = list(self.bme.scan())
        if self.ads is not None and self.ads.powered():
            found.append(self.ads.addr)
        return sorted(found)

    def writeto_mem(self, addr, reg, data):
        ads = self._ads(addr)
        if ads is None:
            return self.bme.writeto_mem(addr, reg, data)
        ads.write(reg, data)

    def readfrom_mem(self, addr, reg, n):
        ads = self._ads(addr)
        if ads is None:
            return self.bme.readfrom_mem(addr, reg, n)
        return ads.read(reg, n)


class SimADC:
    """machine.ADC at 11 dB: read_uv() clips to the calibrated range; an ADC2 pin fails while
    Wi-Fi is on (see ADC2_PINS)."""

    def __init__(self, board, pin, source):
        self.board = board
        self.pin = pin
        self.source = source

    def read_uv(self):
        if self.pin in ADC2_PINS and self.board.wifi_on:
            raise OSError(ETIMEDOUT)  # adc2 read: ESP_ERR_TIMEOUT while Wi-Fi holds ADC2
        return max(ADC_MIN_UV, min(ADC_MAX_UV, self.source()))


class SimPin:
    """A GPIO: outputs drive the board's level for that pin; inputs read what is wired to it."""

    def __init__(self, board, num):
        self.board = board
        self.num = num
        self.handler = None

    def value(self, v=None):
        if v is None:
            return self.board.level(self.num)
        self.board.drive(self.num, v)

    def irq(self, handler=None, trigger=0):
        self.handler = handler


class SimWDT:
    """machine.WDT: cannot be stopped; not fed within timeout_ms of the board's time, the
    board resets (WatchdogReset)."""

    def __init__(self, board, timeout_ms):
        self.board = board
        self.timeout_ms = timeout_ms
        self.fed_at = board.ms
        self.feeds = 0

    def feed(self):
        self.board.advance(0)  # a reset already due happens before the feed
        self.fed_at = self.board.ms
        self.feeds += 1


class SimWLAN:
    """network.WLAN(STA_IF) as the ESP32 port behaves (ports/esp32/network_wlan.c): scan()
    needs the interface active and lists (ssid bytes, bssid, channel, RSSI, security,
    hidden) for every access point in range; connect() returns at once and the link is up
    after association and DHCP in the board's time, sooner when the channel is known."""

    SCAN_MS = 2200  # an active scan of 13 channels
    ASSOC_MS = 700
    FIND_MS = 1100  # connect() scans for the BSSID first: its channel is not kept
    DHCP_MS = 900

    def __init__(self, board):
        self.board = board
        self._active = False
        self.up_at = None
        self.ap = None
        self.channel = 0

    def active(self, v=None):
        if v is None:
            return self._active
        self._active = bool(v)
        self.board.wifi_on = self._active
        if not v:
            self.up_at = None

    def _need_active(self):
        if not self._active:
            raise OSError("Wi-Fi Not Started")  # esp_err ESP_ERR_WIFI_NOT_STARTED

    def scan(self):
        self._need_active()
        self.board.advance(self.SCAN_MS)
        return [] if "link_down" in self.board.world.faults else list(self.board.world.aps)

    def config(self, channel=None, **kw):
        if channel is not None:  # kept, but connect() clears it (network_wlan.c)
            self.channel = channel

    def connect(self, ssid, key, bssid=None):
        self._need_active()
        self.up_at = self.ap = None
        if "link_down" in self.board.world.faults:
            return
        for ap in self.board.world.aps:
            if ap[0] == ssid.encode() and (bssid is None or ap[1] == bytes(bssid)):
                self.channel = 0  # network_wlan_connect zeroes the station config
                self.up_at = self.board.ms + self.FIND_MS + self.ASSOC_MS + self.DHCP_MS
                self.ap = ap
                return

    def isconnected(self):
        return self.up_at is not None and self.board.ms >= self.up_at

    def status(self, what=None):
        if what == "rssi":
            ap = self.ap
            if ap is None or not self.isconnected():
                raise OSError("not connected")
            return ap[3]
        return 1010 if self.isconnected() else 1000  # STAT_GOT_IP / STAT_IDLE


class SimSocket:
    """A host socket whose waits count in the board's time: a request's round trip, and the
    full timeout then ETIMEDOUT when the server never answers ("net_stall")."""

    def __init__(self, board, sock, timeout_s):
        self.board = board
        self.sock = sock
        self.timeout_s = timeout_s
        self.waited = False

    def _wait(self):
        if "net_stall" in self.board.world.faults:
            self.board.advance(self.timeout_s * 1000)
            raise OSError(ETIMEDOUT)
        if not self.waited:
            self.waited = True
            slow = self.board.world.net_request_ms
            self.board.advance(NET_MS["request"] if slow is None else slow)

    def recv(self, n):
        """What has arrived, up to n bytes (one socket read)."""
        self._wait()
        recv = getattr(self.sock, "recv", None) or self.sock.read
        return recv(n)

    def read(self, n):
        """A MicroPython stream's read(n): waits for n bytes or the end of the connection
        (py/stream.c, mp_stream_rw without MP_STREAM_RW_ONCE); an open connection that has
        sent less makes it wait out the socket timeout."""
        out = b""
        while len(out) < n:
            chunk = self.recv(n - len(out))
            if not chunk:
                break
            out += chunk
        return out

    def write(self, data):
        write = getattr(self.sock, "write", None)
        if write:
            return write(data)
        self.sock.sendall(data)
        return len(data)

    def close(self):
        self.sock.close()


def _der(data, i):
    """(tag, start of contents, end of contents) of the DER element at i."""
    tag, n = data[i], data[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[i:i + k], "big")
        i += k
    return tag, i, i + n


def _asn1_time(tag, raw):
    """UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime as seconds from 2000 (ESP32's epoch)."""
    s = raw.decode()
    if tag == 0x17:
        s = ("19" if int(s[0:2]) >= 50 else "20") + s
    f = [int(s[i:i + 2]) for i in range(4, 14, 2)]
    return unix_seconds(int(s[0:4]), f[0], f[1], f[2], f[3], f[4]) - Board.EPOCH_OFFSET


def cert_validity(der):
    """(notBefore, notAfter) of an X.509 certificate, in seconds from 2000."""
    _, i, _ = _der(der, 0)  # Certificate
    _, i, _ = _der(der, i)  # tbsCertificate
    if der[i] == 0xA0:  # [0] version
        i = _der(der, i)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        i = _der(der, i)[2]
    _, i, _ = _der(der, i)  # validity
    tag, a, b = _der(der, i)
    tag2, c, e = _der(der, b)
    return _asn1_time(tag, der[a:b]), _asn1_time(tag2, der[c:e])


class Board:
    name = "sim"
    IRQ_FALLING = 2
    EPOCH_OFFSET = 946684800  # World.now counts from 2000, like an ESP32

    def __init__(self, world=None, reset_cause="deepsleep", rtc_path=None,
                 service_held=False, pins=None, exit_on_sleep=False, clock=None,
                 realtime=False, woke_by_ext0=False):
        """clock: the RTC clock at boot (None: the true time); a power-on or brown-out
        starts it at the epoch (0 = 2000-01-01) and loses RTC memory."""
        self.world = world or World()
        self.cause = reset_cause
        self.rtc_path = rtc_path
        self.held = service_held
        self.pins = pins or PINS
        self.wdt = None
        self.exit_on_sleep = exit_on_sleep
        # waits pass on the host too: realtime x faster than the board's time (True: 1)
        self.realtime = 1 if realtime is True else (realtime or 0)
        self.hardware_id = "sim-000000000000"
        self.uart_ports = {}
        self.flash_limit = None  # bytes free to pretend (a small flash), else the host's
        self.clock_path = ""  # where the RTC clock goes at deep sleep (a virtual station)
        self.ms = 0  # the board's time since this boot (ticks_ms)
        self.levels = {}  # GPIO -> driven level
        self.rail_since = 0
        self.jsn_ping_ms = None  # the JSN-SR04T's last accepted trigger (board ms)
        self.jsn_echo_end_us = 0  # its ECHO pin is high until then (board time, us)
        self.ads1115 = None  # the ADS1115 on the I2C bus, made with the bus
        self.wifi_on = False
        self.ext0 = woke_by_ext0
        self.spent = {"boot": BOOT_MS}  # ms in each ledger state this wake
        self.rail_parts = set()  # parts wired to the switched rail (they draw while it is on)
        self.uarts_made = []  # every UART opened (light sleep loses what they receive)
        self.wlan = SimWLAN(self)
        power_lost = reset_cause in ("power_on", "brownout")
        if power_lost:
            clock = 0
            if rtc_path:
                fsutil.remove(rtc_path)
        self.clock_offset = 0 if clock is None else clock - self.world.now
        self._rtc = fsutil.read_bytes(rtc_path) if rtc_path and not power_lost else None

    # time: the board's own, which every wait advances
    def ticks_ms(self):
        return self.ms

    def sleep_ms(self, ms):
        if self.realtime:
            _time.sleep(ms / 1000 / self.realtime)
        self.advance(ms)

    def sleep_us(self, us):
        self.advance(us // 1000)

    def advance(self, ms, state=None):
        """Let ms of the board's time pass, charged to the ledger (Wi-Fi on or the CPU
        awake, or `state`, and every part on the sensor rail while it is on); the watchdog
        bites if it was not fed."""
        self.ms += ms
        self._spend(state or ("wifi" if self.wifi_on else "cpu"), ms)
        if self.rail_on():
            for part in self.rail_parts:
                self._spend("rail_" + part, ms)
        wdt = self.wdt
        if wdt is not None and self.ms - wdt.fed_at > wdt.timeout_ms:
            self.wdt = None
            self.cause = "wdt"
            raise WatchdogReset("watchdog not fed for %d ms (timeout %d ms)" % (
                self.ms - wdt.fed_at, wdt.timeout_ms))

    def lightsleep(self, ms):
        """machine.lightsleep(ms): the CPU stops (ESP32 datasheet: light sleep 0.8 mA) and
        the UARTs' clock is gated, so whatever arrives on them meanwhile is lost (esp-idf
        issue 8098, Espressif's answer); ticks_ms runs on (esp_timer is compensated)."""
        if self.realtime:
            _time.sleep(ms / 1000 / self.realtime)
        self.advance(ms, "light_sleep")
        for u in self.uarts_made:
            u.read()

    def time(self):
        return self.world.now + self.ms // 1000 + self.clock_offset

    def set_time(self, t):
        self.clock_offset = t - self.world.now - self.ms // 1000

    # the switched sensor rail
    def level(self, pin):
        if pin == self.pins["rain"]:  # 1 M pull-up, reed to GND; a tip closes it briefly
            closed = "reed_stuck" in self.world.faults or self.ms < self.world.reed_closed_ms
            return 0 if closed else 1
        if pin == self.pins["service"]:
            return 0 if self.held else 1
        if pin == self.pins["jsn_echo"]:
            return 1 if self.ms * 1000 < self.jsn_echo_end_us else 0
        return self.levels.get(pin, 0)

    def drive(self, pin, v):
        v = 1 if v else 0
        if pin == self.pins["jsn_trig"] and v and not self.levels.get(pin):
            self._jsn_trigger()
        if pin == self.pins["sensor_power"] and v and not self.levels.get(pin):
            self.rail_since = self.ms
        self.levels[pin] = v

    def rail_on(self):
        return self.levels.get(self.pins["sensor_power"], 0) == 1

    def powered(self, part):
        """A part on the switched rail answers only while the rail is on and it has warmed up
        (the load switch's EN has a 100 k pull-down: off unless driven, hardware/wiring.md)."""
        if part not in SWITCHED:
            return True
        return self.rail_on() and self.ms - self.rail_since >= WARMUP_MS[part]

    def _powered(self, part):
        self.rail_parts.add(part)
        return lambda: self.powered(part)

    def _spend(self, state, ms):
        self.spent[state] = self.spent.get(state, 0) + ms

    # buses and pins
    def uart(self, uid, baudrate, tx, rx):
        port = self.uart_ports.get(str(uid))
        part = "a02yyuw" if uid == self.pins["ultrasonic_uart"] else None
        powered = self._powered(part) if part else _always
        u = SerialPortUART(port, powered) if port else SimUltrasonicUART(self.world, powered,
                                                                         self)
        self.uarts_made.append(u)
        return u

    def i2c(self, scl, sda):
        bme = SimBME280I2C(self.world, powered=self._powered("bme280"))
        if not self.world.ads1115_fitted:
            return bme
        if self.ads1115 is None:
            self.ads1115 = SimADS1115(self, self._shunt_uv)
        return SimI2C(bme, self.ads1115)

    def _shunt_uv(self):
        """The voltage across the loop's shunt, uV."""
        w = self.world
        if "missing" in w.faults or not self.powered("current_loop"):
            return 0
        if w.loop_ua is not None:
            ua = w.loop_ua
        else:
            depth = w.level_mm - w.sensor_offset_mm
            ua = 4000 + depth * FULL_SCALE_UA // w.loop_span_mm + w.rand(9) - 4
        return ua * w.loop_shunt_ohm

    def adc(self, pin):
        w = self.world
        if pin == self.pins["battery_adc"]:
            return SimADC(self, pin, lambda: w.battery_mv * 500)  # behind a 2:1 divider
        if pin == self.pins["loop_adc"]:
            def loop_uv():  # one conversion of the ESP32's ADC: noisy (LOOP_ADC_NOISE_UV)
                noise = w.loop_adc_noise_uv
                uv = self._shunt_uv()
                return uv + w.rand(2 * noise + 1) - noise if noise and uv else uv
            return SimADC(self, pin, loop_uv)
        raise ValueError("no simulated ADC on pin %d" % pin)

    def pin_in(self, pin, pull_up=False):
        return SimPin(self, pin)

    def pin_out(self, pin, value=0):
        p = SimPin(self, pin)
        p.value(value)
        return p

    def _jsn_trigger(self):
        """A rising edge on the JSN-SR04T's TRIG: ignored while ECHO is still high (JSN_HOLD_US),
        refused under JSN_CYCLE_MS after the last ping; else ECHO goes high for the round
        trip, or for the no-echo hold."""
        w = self.world
        if "missing" in w.faults or not self.powered("jsnsr04t"):
            return
        now_us = self.ms * 1000
        if now_us < self.jsn_echo_end_us:
            return  # busy: the module does not see this trigger
        if self.jsn_ping_ms is not None and self.ms - self.jsn_ping_ms < JSN_CYCLE_MS:
            raise RuleBroken("JSN-SR04T pinged %d ms after its last ping: its cycle is %d ms "
                             "or more (DFRobot SEN0208)" % (self.ms - self.jsn_ping_ms,
                                                            JSN_CYCLE_MS))
        self.jsn_ping_ms = self.ms
        pulse = JSN_HOLD_US if "no_echo" in w.faults else min(w.echo_us(), JSN_HOLD_US)
        self.jsn_echo_end_us = now_us + pulse

    def time_pulse_us(self, pin, level, timeout_us):
        """machine.time_pulse_us (extmod/machine_pulse.c): waits up to timeout_us for the pin
        to reach `level` ("return -2" in that first wait), then times how long it stays
        there, -1 past timeout_us. A pin already high is timed from now: the rest of an old
        pulse."""
        pin = getattr(pin, "num", pin)  # a Pin, as machine.time_pulse_us takes
        if pin != self.pins["jsn_echo"] or not self.level(pin):
            self.advance(timeout_us // 1000)
            return -2  # no ping under way: ECHO never rises
        left = self.jsn_echo_end_us - self.ms * 1000
        if left > timeout_us:
            self.advance(timeout_us // 1000)
            return -1
        self.advance((left + 999) // 1000)  # until ECHO is low again on the board's ms clock
        return left

    # RTC memory
    def rtc_memory(self):
        return self._rtc or b""

    def set_rtc_memory(self, data):
        if len(data) > RTC_MEMORY_MAX:
            raise ValueError("buffer too long")
        self._rtc = bytes(data)
        if self.rtc_path:
            fsutil.write_atomic(self.rtc_path, self._rtc)

    def reset_cause(self):
        # ESP_RST_BROWNOUT reads as PWRON_RESET (ports/esp32/modmachine.c, reset_cause).
        return "power_on" if self.cause == "brownout" else self.cause

    def unique_id(self):
        return self.hardware_id

    # the network
    def wifi(self):
        return self.wlan

    def rssi(self):
        try:
            return self.wlan.status("rssi")
        except OSError:
            return None

    def net_connect(self, host, port, timeout_s):
        """DNS and TCP connect (station/net.py), in the board's time."""
        from station import net

        if "dns_stall" in self.world.faults:
            self.advance(15000)  # lwIP's DNS retries, with no timeout of the caller's
            raise OSError(MDNS_FAIL)
        if not self.wlan.isconnected():
            raise OSError(113)  # EHOSTUNREACH: no link
        self.advance(NET_MS["dns"] + NET_MS["connect"])
        return SimSocket(self, net.connect(host, port, timeout_s), timeout_s)

    def net_tls(self, sock, host, cadata):
        """TLS as the ESP32 build does it: mbedTLS with MBEDTLS_HAVE_TIME_DATE checks every
        certificate's dates against the board's clock (ports/esp32/boards/sdkconfig.base,
        CONFIG_MBEDTLS_HAVE_TIME_DATE; main.c platform_mbedtls_time), and a failed check is
        the ValueError modtls_mbedtls.c raises with mbedtls_x509_crt_verify_info's text."""
        import ssl

        if "net_stall" in self.world.faults:  # the handshake never completes
            self.advance(sock.timeout_s * 1000)
            raise OSError(ETIMEDOUT)
        self.advance(NET_MS["tls"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        seen = []
        if cadata is None:
            if hasattr(ctx, "check_hostname"):  # CPython: no name check without a CA
                ctx.check_hostname = False  # type: ignore
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx.verify_mode = ssl.CERT_REQUIRED
            cas = cadata if isinstance(cadata, list) else [cadata]
            for der in cas:  # any of them may sign the server's (station/net.py, tls)
                # mbedTLS parses a DER buffer as one certificate, by its outer SEQUENCE's
                # length, and ignores the rest (x509_crt_parse_der_core): concatenated DER
                # trusts only the first. CPython would take them all: cut as mbedTLS does.
                ctx.load_verify_locations(cadata=bytes(der)[:_der(der, 0)[2]])
            if len(cas) == 1:  # of several, only the chain's anchor has its dates checked
                seen.append(bytes(cas[0]))
            inner = getattr(ctx, "_context", None)
            if inner is not None:  # MicroPython: every certificate of the chain
                def on_cert(cert, depth):
                    seen.append(bytes(cert))
                    return 0
                inner.verify_callback = on_cert
        tls = ctx.wrap_socket(sock.sock, server_hostname=host)
        if cadata is not None:
            if hasattr(tls, "getpeercert"):  # CPython
                seen.append(tls.getpeercert(True))
            now = self.time()
            for der in seen:
                not_before, not_after = cert_validity(der)
                if now < not_before or now > not_after:
                    tls.close()
                    raise ValueError("\nThe certificate validity %s\n" % (
                        "starts in the future" if now < not_before else "has expired"))
        sock.sock = tls
        return sock

    def flash_free(self):
        if self.flash_limit is not None:
            return self.flash_limit
        import os

        st = os.statvfs(".")
        return st[0] * st[4]

    # power
    def woke_by_rain(self):
        return self.ext0

    def sleep_tips(self):
        n = self.world.rain_tips
        self.world.rain_tips = 0
        return n

    def service_held(self, pin):
        return self.level(pin) == 0

    def watchdog(self, timeout_ms):
        self.wdt = SimWDT(self, timeout_ms)
        return self.wdt

    def deepsleep(self, ms, rain_pin=None):
        """Ends the wake. A rail left on is a drained battery; an ext0 wake armed on a pin
        already at its level wakes the board again at once (see the rules at the top)."""
        if self.rail_on():
            raise RuleBroken("deep sleep with the sensor rail (GPIO %d) on: a battery drain"
                             % self.pins["sensor_power"])
        if rain_pin is not None and self.level(rain_pin) == 0:
            ms = 0
            self.ext0 = True
        else:
            self.ext0 = False
        self.wdt = None
        awake_ms = self.ms
        self._spend("deep_sleep", ms)
        if self.exit_on_sleep:  # a virtual station: its ledger, summed over its wakes
            total = json.loads(fsutil.read_bytes(ENERGY_FILE) or b"{}")
            for state, n in self.spent.items():
                total[state] = total.get(state, 0) + n
            total["wakes"] = total.get("wakes", 0) + 1
            fsutil.write_atomic(ENERGY_FILE, json.dumps(total).encode())
        if self.clock_path:  # the RTC runs on through the sleep (drifting: _restore_clock)
            fsutil.write_atomic(self.clock_path, ("%d %d" % (
                self.time(), self.world.now + awake_ms // 1000)).encode())
        self.clock_offset += awake_ms // 1000  # the clock runs on; ticks restart at boot
        self.ms = 0
        self.rail_since = 0
        if self.exit_on_sleep:  # a virtual station: the process ends, its rig wakes it later
            fsutil.write_atomic("sleep.ms", ("%d %d %d %d" % (
                ms, self.time(), 1 if self.ext0 else 0, awake_ms)).encode())
            sys.exit(0)
        raise DeepSleep(ms, self.ext0)
