# The simulated board: a World holds the physical truth (water level, air, battery, rain,
# faults) and the peripherals turn it into the bytes and pulses real parts produce, so the
# real drivers run unchanged. Runs under CPython and the MicroPython unix port.
#
# This module is the chip (time, pins, ADC, RTC, watchdog, sleep, the energy ledger) and the
# World; each part's model is a module of its own, imported when the firmware first uses
# that part: sim_ultrasonic (A02YYUW, JSN-SR04T), sim_bme280, sim_loop (4-20 mA loop,
# ADS1115), sim_counter (PCF8583), sim_net (Wi-Fi, sockets), sim_tls, sim_serial (a UART on a
# host serial device). The sim shares the firmware's heap, so a wake loads only the models of
# what its station has fitted and the network it uses (docs/firmware.md, "RAM budget").
import json
import sys
import time as _time

from station import fsutil
from station.pins import PINS, SWITCHED

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
# The calibrated ADC's total error at 11 dB is +-60 mV over 150-2450 mV (Espressif ESP32
# Series Datasheet, "ADC Characteristics", table "ADC Calibration Results": ATTEN3, total
# error after calibration with the chip's eFuse values; +-23/30/40 mV at the lower
# attenuations). Most of it is the chip's own: the eFuse Vref/two-point values correct a
# 1000-1200 mV reference only to a line (ESP-IDF "ADC Calibration" docs), so the rest is an
# offset and a gain error fixed per chip, which averaging does not remove. Modelled as a line
# through a fixed error at each end of the range, each drawn once per board from the World's
# seed within +-(60 - 10) mV, plus ADC_NOISE_UV of fresh noise per conversion.
ADC_ERROR_UV = 60000
# One conversion also scatters ("the ESP32 ADC can be sensitive to noise leading to large
# discrepancies in ADC readings": ESP-IDF ADC docs, "Minimizing Noise", which advise a
# 0.1 uF capacitor and multisampling): uniform +-10 mV (an assumed share of the +-60 mV),
# drawn on the loop shunt's conversions (hw/sim_loop.py); the battery's median of eight
# conversions is left without it.
ADC_NOISE_UV = 10000
# TI ADS1115 (SBAS444D): I2C address set by its ADDR pin (table 4; wired to GND: 0x48). Its
# registers and conversions: hw/sim_loop.py.
ADS1115_ADDR = 0x48
# Its accuracy (SBAS444D, 6.5 Electrical Characteristics): gain error 0.15 % max at FSR
# +-2.048 V (25 C), and between PGA gains a 0.1 % max match, so up to 0.25 % at the +-4.096 V
# the driver uses; offset error +-3 LSB max (single-ended). Both fixed per chip: drawn once
# per board from the World's seed (gain in ppm, offset in LSB).
ADS1115_GAIN_ERROR_PPM = 2500
ADS1115_OFFSET_LSB = 3
# The RTC keeps time through deep sleep on the internal 150 kHz RC oscillator (no 32 kHz
# crystal on the reference board): ESP-IDF calibrates it at sleep entry, but it drifts with
# temperature. 1000 ppm (0.1 %, 86 s a day) is the low end of the review's 0.1-1 % estimate
# (shared/reviews/firmware-on-esp32.md #10); a spec's "clock_drift_ppm" overrides it.
CLOCK_DRIFT_PPM = 1000
# Every UART of the sim board (sim_ultrasonic, sim_link, sim_serial, rak3172_sim) reads as
# machine.UART on the ESP32 does: None when nothing is waiting, not b"" (MicroPython docs,
# machine.UART.read: "Returns None on timeout"; the port's default timeout is 0). The parts
# the sim itself plays (the A02YYUW, the RAK3172 behind the modem link) fill a receive buffer
# of UART_RXBUF bytes, the driver's ring buffer (hw/esp32.py: rxbuf=256; ESP-IDF
# uart_driver_install), and what arrives while it is full is lost, the oldest kept. A board
# holds somewhat more: ESP-IDF's uart.c keeps the chunk that did not fit (UART_BUFFER_FULL)
# and what the 128-byte hardware FIFO took until it overflowed and was reset
# (UART_FIFO_OVF), and hands them over after the next read; the sim is the stricter. A
# host serial device (sim_serial, the rig's pseudo-terminals) has the kernel's buffer.
UART_RXBUF = 256
# Sensor warm-up after the rail comes on, ms (hardware/pinmap.json "switched_rail"):
# BME280 start-up time 2 ms (Bosch BST-BME280-DS002, table 1, t_startup); A02YYUW: first frame
# after one measurement cycle, 100-300 ms (DFRobot SEN0311 wiki: response time); JSN-SR04T
# (no figure published: one trigger cycle of its 40 kHz module after the MCU starts, 100 ms
# assumed); 4-20 mA loop: boost converter plus transmitter start-up, 500 ms (a typical
# pressure transmitter's "power-up time < 500 ms").
WARMUP_MS = {"bme280": 2, "a02yyuw": 300, "jsnsr04t": 100, "current_loop": 500}
# What a fitted part draws while the rail is on (its ledger state, "rail_" + this; default
# its name): the BME280 sleeps between forced measurements (0.1 uA, Bosch BST-BME280-DS002
# table 1), each of which hw/sim_bme280.py charges as "rail_bme280" for its t_measure.
RAIL_DRAW = {"bme280": "bme280_sleep"}
# The JSN-SR04T's timing: hw/sim_ultrasonic.py. The network's delays: hw/sim_net.py.
# The energy ledger (hardware/energy.json holds the currents): the board counts the ms it
# spends in each state in its own time. Boot: the ROM bootloader, the app image check and
# MicroPython's start to main.py after a deep-sleep wake, ~300 ms on an ESP32 at 160 MHz
# (ESP-IDF's "deep sleep wake stub" docs put the default path in the hundreds of ms);
# the firmware's own computing is not in the board's time and is left out (about 10 ms a
# wake at the host's measured cycle CPU time scaled to an ESP32, bench/run.py).
BOOT_MS = 300
# A tipping bucket's reed switch closes for tens of ms as the bucket swings past the magnet
# (station/rainwake.py waits up to 300 ms for it to open before calling it stuck).
TIP_MS = 40
ENERGY_FILE = "energy.json"  # a virtual station's ledger, summed over its wakes
ETIMEDOUT = 116  # lwIP's errno on the ESP32
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
    serial device where a simulated part streams its bytes, or "tcp:HOST:PORT", a link to a
    part simulated on the board's clock: hw/sim_link.py), "realtime" (waits also pass on
    the host, as they must when a part on a serial device or mpremote is at the other end;
    the default when a part is on a serial device; a number: the host's time runs that much
    faster, as a part on a serial device sped up by the same factor does) and
    "clock_drift_ppm". Its RTC memory lives in rtc.bin and its RTC clock in rtc.clock; deep
    sleep writes the duration to sleep.ms and ends the process."""
    with open(path) as f:
        spec = json.load(f)
    cause = spec.get("reset_cause", "deepsleep")
    world = world_from(spec)
    board = Board(world, reset_cause=cause, rtc_path="rtc.bin", exit_on_sleep=True,
                  clock=_restore_clock(world.now, cause, spec.get("clock_drift_ppm",
                                                                  CLOCK_DRIFT_PPM)),
                  realtime=spec.get("realtime", _on_host_serial(spec.get("uarts", {}))),
                  woke_by_ext0=spec.get("ext0", False))
    board.hardware_id = spec.get("hardware_id", board.hardware_id)
    board.uart_ports = spec.get("uarts", {})
    board.flash_limit = spec.get("flash_free")
    board.clock_path = "rtc.clock"
    return board


def _on_host_serial(uarts):
    """Whether a part streams on a host serial device (on the host's clock: the board's
    waits must pass on it too), not only on a link that runs on the board's clock."""
    return any(not p.startswith("tcp:") for p in uarts.values())


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
    "ads_missing" (the ADS1115 does not answer on the I2C bus), "counter_missing" (the
    PCF8583 rain counter does not answer on it, and counts on: a broken bus wire).
    aps: the Wi-Fi access points in range, as network.WLAN.scan() lists them."""

    def __init__(self, seed=1):
        self.now = 757382400  # 2024-01-01 in the ESP32's 2000 epoch
        self.level_mm = 1000
        self.mount_mm = 5000  # sensor face above datum (ultrasonic)
        self.sensor_offset_mm = 0  # transducer above datum (pressure)
        self.loop_span_mm = 5000
        self.loop_shunt_ohm = 100  # as built (hardware/bom.md)
        self.loop_ua = None  # a fixed loop current (a calibrator), else from the level
        self.loop_adc_noise_uv = ADC_NOISE_UV  # the ESP32 ADC's scatter per conversion
        # This chip's fixed ADC error at 150 mV and at 2450 mV, uV, within the datasheet's
        # total less the noise (ADC_ERROR_UV); (0, 0): a perfect ADC.
        bound = ADC_ERROR_UV - ADC_NOISE_UV
        self.adc_error_uv = chip_error(seed, 0x2545F49, (bound, bound))
        # The ADS1115's fixed gain (ppm) and offset (LSB) errors; (0, 0): a perfect one.
        self.ads1115_error = chip_error(seed, 0x1B87359,
                                        (ADS1115_GAIN_ERROR_PPM, ADS1115_OFFSET_LSB))
        self.ads1115_fitted = True  # an ADS1115 on the I2C bus (fault "ads_missing": silent)
        self.net_request_ms = None  # a request's round trip on a slow network, else sim_net's
        self.reed_closed_ms = 0  # a tip in progress: the reed is closed until then (board ms)
        # Tips while the board is awake, at these board ms since its boot (a wake's tips while
        # it deep-sleeps are rain_tips): each closes the reed for tip_ms. Board.advance runs
        # the rain pin's IRQ for those that come while the CPU runs; in light sleep only an
        # ext0 armed on the pin sees one (Board.lightsleep). Those left at deep sleep: gone.
        self.awake_tips_ms = []
        self.tip_ms = TIP_MS
        self.air_temp_c = 20.0
        self.humidity_pct = 60.0
        self.pressure_hpa = 1013.2
        self.battery_mv = 3900
        self.rain_tips = 0
        # The PCF8583 rain counter on the always-on rail (hw/sim_counter.py), None: not fitted.
        self.pcf8583 = None
        self.ext0_armed = True  # the last deep sleep armed the rain wake (sleep_tips)
        self.noise_mm = 3
        # The A02YYUW's unknown conversion (shared/reviews/sensors-and-accuracy.md #7): a module
        # that assumes us_ref_speed m/s in any air, or ("internal") one that compensates itself.
        self.us_internal = False
        self.us_ref_speed = None  # None: 20 C air (processing.C_REF)
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


SIM_SSID = "mizumori-sim"  # the simulated access point virtual stations are provisioned for


def _always():
    return True


class SimI2C:
    """machine.I2C with the parts on the station's bus: the BME280 (0x76) and, when fitted,
    the ADS1115 (0x48) and the PCF8583 rain counter (0x50). An address nobody answers
    raises OSError(ENODEV), as on the ESP32.
    A part's model is made (and its module imported) when the bus first reaches it."""

    def __init__(self, board, bme_powered):
        self.board = board
        self.bme_powered = bme_powered
        self._bme = None

    def bme(self):
        if self._bme is None:
            from station.hw.sim_bme280 import SimBME280I2C

            self._bme = SimBME280I2C(self.board.world, powered=self.bme_powered,
                                     board=self.board)
        return self._bme

    def ads(self):
        """The board's ADS1115 (one, whichever bus object reaches it), None when not fitted."""
        board = self.board
        if not board.world.ads1115_fitted:
            return None
        if board.ads1115 is None:
            from station.hw.sim_loop import SimADS1115

            board.ads1115 = SimADS1115(board)
        return board.ads1115

    def _ads(self, addr):
        ads = self.ads() if addr == ADS1115_ADDR else None
        return ads if ads is not None and ads.powered() else None

    def _counter(self, addr):
        """The PCF8583 rain counter when fitted at addr and reachable (hw/sim_counter.py)."""
        chip = self.board.world.pcf8583
        return chip if chip is not None and addr == chip.addr and chip.answers(self.board) \
            else None

    def scan(self):
        found = list(self.bme().scan())
        ads = self.ads()
        if ads is not None and ads.powered():
            found.append(ADS1115_ADDR)
        chip = self.board.world.pcf8583
        if chip is not None and self._counter(chip.addr):
            found.append(chip.addr)
        return sorted(found)

    def writeto_mem(self, addr, reg, data):
        chip = self._counter(addr)
        if chip is not None:
            return chip.write(self.board, reg, data)
        ads = self._ads(addr)
        if ads is None:
            return self.bme().writeto_mem(addr, reg, data)
        ads.write(reg, data)

    def readfrom_mem(self, addr, reg, n):
        chip = self._counter(addr)
        if chip is not None:
            return chip.read(self.board, reg, n)
        ads = self._ads(addr)
        if ads is None:
            return self.bme().readfrom_mem(addr, reg, n)
        return ads.read(reg, n)


def chip_error(seed, salt, bounds):
    """A part's fixed errors, one uniform in +-bound for each bound, drawn from the seed by a
    generator of its own so that the World's sequence (sensor noise, waves) is unchanged."""
    s = (seed or 1) ^ salt
    out = []
    for bound in bounds:
        s = (s * 1103515245 + 12345) & 0x7FFFFFFF
        out.append((s >> 8) % (2 * bound + 1) - bound)
    return tuple(out)


class SimADC:
    """machine.ADC at 11 dB: read_uv() carries the chip's fixed error (World.adc_error_uv)
    and clips to the calibrated range; an ADC2 pin fails while Wi-Fi is on (see ADC2_PINS)."""

    def __init__(self, board, pin, source):
        self.board = board
        self.pin = pin
        self.source = source

    def read_uv(self):
        if self.pin in ADC2_PINS and self.board.wifi_on:
            raise OSError(ETIMEDOUT)  # adc2 read: ESP_ERR_TIMEOUT while Wi-Fi holds ADC2
        uv = self.source()
        lo, hi = self.board.world.adc_error_uv
        uv += lo + (hi - lo) * (uv - ADC_MIN_UV) // (ADC_MAX_UV - ADC_MIN_UV)
        return max(ADC_MIN_UV, min(ADC_MAX_UV, uv))


class SimPin:
    """A GPIO: outputs drive the board's level for that pin; inputs read what is wired to it."""

    def __init__(self, board, num):
        self.board = board
        self.num = num

    def value(self, v=None):
        """The pin's level; 0 while its pad is on the RTC IO mux (after a light sleep with
        ext0 armed on it, until a mode-setting Pin init: esp-idf issue 245)."""
        if v is None:
            return 0 if self.num in self.board.rtc_pads else self.board.level(self.num)
        self.board.drive(self.num, v)

    def irq(self, handler=None, trigger=0):
        """Pin.irq: the handler runs at each tip while the CPU runs (Board._tips_awake; the
        rain pin is the only one whose edges the sim makes)."""
        if handler is None:
            self.board.irqs.pop(self.num, None)
        else:
            self.board.irqs[self.num] = handler


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
        self.ads1115 = None  # the ADS1115 on the I2C bus, made when the bus first reaches it
        self.wifi_on = False
        self.ext0 = woke_by_ext0
        self.spent = {"boot": BOOT_MS}  # ms in each ledger state this wake
        self.rail_parts = set()  # parts wired to the switched rail (they draw while it is on)
        self.uarts_made = []  # every UART opened (light sleep loses what they receive)
        self.irqs = {}  # GPIO -> its IRQ handler (SimPin.irq)
        # GPIOs whose pad a light sleep with ext0 armed left on the RTC IO mux: no IRQ there
        # until a mode-setting Pin init takes it back (pin_in)
        self.rtc_pads = set()
        self.wlan = None  # network.WLAN, made at the first wifi() (hw/sim_net.py)
        power_lost = reset_cause in ("power_on", "brownout")
        if power_lost:
            clock = 0
            if rtc_path:
                fsutil.remove(rtc_path)
        if reset_cause == "power_on" and self.world.pcf8583 is not None:
            self.world.pcf8583.power_on()  # same battery; it outlives a brown-out (>= 1.0 V)
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
        end = self.ms + ms
        if state != "light_sleep":
            self._tips_awake(end)
        self.ms = end
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

    def _tips_awake(self, end):
        """The tips until board ms `end` while the CPU runs: the reed closes, and the rain
        pin's IRQ runs when one is set and the pin's pad is a GPIO's (not left on the RTC IO
        mux by a light sleep with ext0 armed)."""
        w = self.world
        rain = self.pins["rain"]
        while w.awake_tips_ms and w.awake_tips_ms[0] <= end:
            self.ms = max(self.ms, w.awake_tips_ms.pop(0))
            w.reed_closed_ms = self.ms + w.tip_ms
            handler = self.irqs.get(rain)
            if handler is not None and rain not in self.rtc_pads:
                handler(SimPin(self, rain))

    def lightsleep(self, ms, rain_pin=None):
        """machine.lightsleep(ms): the CPU stops (ESP32 datasheet: light sleep 0.8 mA) and
        the UARTs' clock is gated, so whatever arrives on them meanwhile is lost (esp-idf
        issue 8098, Espressif's answer); ticks_ms runs on (esp_timer is compensated). Pins
        driven as outputs keep their level (the sensor rail stays on): in light sleep "the
        digital peripherals ... are clock-gated" and keep their state (ESP-IDF, Sleep
        Modes), so a GPIO IRQ does not fire meanwhile and a rain tip is lost. rain_pin: ext0
        armed on it too (hw/esp32.py: esp32.wake_on_ext0, which arms light sleep as well as
        deep sleep, ports/esp32/modesp32.c), level-triggered (low): the board wakes at a tip,
        or at once when the reed is already closed. Its pad is then on the RTC IO mux, and
        stays there after the wake whatever woke the board ("the pin is configured in
        esp_sleep_start", ESP-IDF esp_sleep_enable_ext0_wakeup; the pad is RTC IO after the
        wake until rtc_gpio_deinit): no IRQ on it until pin_in sets it up again. True when
        the rain pin woke the board (machine.wake_reason() == EXT0_WAKE). Arming moves the
        pad to the RTC IO mux, where its digital side reads 0 (esp-idf issue 245,
        micropython issue 3835): an IRQ still set on it sees a falling edge, a tip that
        never was."""
        if self.realtime:
            _time.sleep(ms / 1000 / self.realtime)
        w = self.world
        end = self.ms + ms
        woke = False
        if rain_pin is not None:
            handler = self.irqs.get(rain_pin)
            if handler is not None and rain_pin not in self.rtc_pads and self.level(rain_pin):
                handler(SimPin(self, rain_pin))
            self.rtc_pads.add(rain_pin)
            if self.level(rain_pin) == 0:
                end, woke = self.ms, True
        while not woke and w.awake_tips_ms and w.awake_tips_ms[0] <= end:
            t = max(self.ms, w.awake_tips_ms.pop(0))
            w.reed_closed_ms = t + w.tip_ms
            if rain_pin is not None:
                end, woke = t, True
        self.advance(end - self.ms, "light_sleep")
        for u in self.uarts_made:
            u.read()
        return woke

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
            from station.hw import sim_ultrasonic

            sim_ultrasonic.jsn_trigger(self)
        if pin == self.pins["sensor_power"] and v and not self.levels.get(pin):
            self.rail_since = self.ms
        self.levels[pin] = v

    def rail_on(self):
        return self.levels.get(self.pins["sensor_power"], 0) == 1

    def powered(self, part):
        """A part on the switched rail answers only while the rail is on and it has warmed up
        (the load switch's EN has a 100 k pull-down: off unless driven, hardware/wiring.md).
        The board learns that the part is fitted when the firmware first reaches it: from
        then on it draws all the time the rail is on, and already drew since the rail came on
        (its warm-up included)."""
        if part not in SWITCHED:
            return True
        self._draws(RAIL_DRAW.get(part, part))
        return self.rail_on() and self.ms - self.rail_since >= WARMUP_MS[part]

    def _draws(self, state):
        if state not in self.rail_parts:
            self.rail_parts.add(state)
            if self.rail_on():
                self._spend("rail_" + state, self.ms - self.rail_since)

    def _powered(self, part):
        return lambda: self.powered(part)

    def _spend(self, state, ms):
        self.spent[state] = self.spent.get(state, 0) + ms

    # buses and pins
    def uart(self, uid, baudrate, tx, rx):
        port = self.uart_ports.get(str(uid))
        part = "a02yyuw" if uid == self.pins["ultrasonic_uart"] else None
        powered = self._powered(part) if part else _always
        if port and port.startswith("tcp:"):
            from station.hw.sim_link import LinkUART

            u = LinkUART(self, port[4:])
        elif port:
            from station.hw.sim_serial import SerialPortUART

            u = SerialPortUART(port, powered)
        else:
            from station.hw.sim_ultrasonic import SimUltrasonicUART

            u = SimUltrasonicUART(self.world, powered, self)
        self.uarts_made.append(u)
        return u

    def i2c(self, scl, sda):
        # The BME280 sleeps while the rail is on (0.1 uA, Bosch BST-BME280-DS002 table 1,
        # "rail_bme280_sleep") but for each forced measurement the firmware triggers, which
        # hw/sim_bme280.py charges as "rail_bme280" for its t_measure.
        return SimI2C(self, self._powered("bme280"))

    def adc(self, pin):
        w = self.world
        if pin == self.pins["battery_adc"]:
            return SimADC(self, pin, lambda: w.battery_mv * 500)  # behind a 2:1 divider
        if pin == self.pins["loop_adc"]:
            from station.hw.sim_loop import esp32_adc_uv

            return SimADC(self, pin, lambda: esp32_adc_uv(self))
        raise ValueError("no simulated ADC on pin %d" % pin)

    def pin_in(self, pin, pull_up=False):
        """machine.Pin(pin, Pin.IN[, Pin.PULL_UP]): a mode-setting init, which takes the pad
        back from the RTC IO mux (ports/esp32/machine_pin.c: rtc_gpio_deinit). The chip
        keeps an IRQ set on the pin across it; the sim drops it, the stricter of the two
        (firmware that relies on it either way sets it again)."""
        self.rtc_pads.discard(pin)
        self.irqs.pop(pin, None)
        return SimPin(self, pin)

    def pin_out(self, pin, value=0):
        p = SimPin(self, pin)
        p.value(value)
        return p

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
        if self.wlan is None:
            from station.hw.sim_net import SimWLAN

            self.wlan = SimWLAN(self)
        return self.wlan

    def rssi(self):
        if self.wlan is None:
            return None  # Wi-Fi never started this wake
        try:
            return self.wlan.status("rssi")
        except OSError:
            return None

    def net_connect(self, host, port, timeout_s):
        """DNS and TCP connect (station/net.py), in the board's time (hw/sim_net.py)."""
        from station.hw import sim_net

        return sim_net.connect(self, host, port, timeout_s)

    def net_tls(self, sock, host, cadata):
        """TLS as the ESP32's mbedTLS does it (hw/sim_tls.py)."""
        from station.hw import sim_tls

        return sim_tls.wrap(self, sock, host, cadata)

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
        """The tips of the last sleep, as its ext0 wakes counted them: none when that sleep
        did not arm the rain wake (the ext0 setting is not kept across a wake:
        machine_rtc_config, ports/esp32/machine_rtc.c, is ordinary RAM)."""
        n = self.world.rain_tips if self.world.ext0_armed else 0
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
        self.world.awake_tips_ms = []  # this wake's: a later tip is the sleep's (rain_tips)
        if rain_pin is not None and self.level(rain_pin) == 0:
            ms = 0
            self.ext0 = True
        else:
            self.ext0 = False
        self.wdt = None
        awake_ms = self.ms
        self._spend("deep_sleep", ms)
        self.world.ext0_armed = rain_pin is not None
        if self.world.pcf8583 is not None:  # on the always-on rail: boot, awake and asleep
            self._spend("rain_counter", BOOT_MS + awake_ms + ms)
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
