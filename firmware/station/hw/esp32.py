# The real board: ESP32 with MicroPython's machine and esp32 modules.
import os
import time

import esp32
import machine

_CAUSES = {
    machine.PWRON_RESET: "power_on",
    machine.HARD_RESET: "hard",
    machine.WDT_RESET: "wdt",
    machine.DEEPSLEEP_RESET: "deepsleep",
    machine.SOFT_RESET: "soft",
}


class Board:
    name = "esp32"
    IRQ_FALLING = machine.Pin.IRQ_FALLING
    # time.time() counts from 2000 on the ESP32 port (1970 on builds with the Unix epoch).
    EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0

    def __init__(self):
        self._rtc = machine.RTC()

    # buses and pins
    def uart(self, uid, baudrate, tx, rx):
        return machine.UART(uid, baudrate=baudrate, tx=tx, rx=rx, rxbuf=256)

    def i2c(self, scl, sda):
        return machine.I2C(0, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=100000)

    def adc(self, pin):
        adc = machine.ADC(machine.Pin(pin))
        adc.atten(machine.ADC.ATTN_11DB)  # full range ~0.15-2.45 V, calibrated by read_uv
        return adc

    def pin_in(self, pin, pull_up=False):
        if pull_up:
            return machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP)
        return machine.Pin(pin, machine.Pin.IN)

    def pin_out(self, pin, value=0):
        return machine.Pin(pin, machine.Pin.OUT, value=value)

    def time_pulse_us(self, pin, level, timeout_us):
        return machine.time_pulse_us(pin, level, timeout_us)

    def level(self, pin):
        return machine.Pin(pin).value()

    # time: ticks and waits (the sim board counts them in its own time)
    def ticks_ms(self):
        return time.ticks_ms()

    def sleep_ms(self, ms):
        time.sleep_ms(ms)

    def lightsleep(self, ms, rain_pin=None):
        """The CPU stops (0.8 mA instead of ~40 mA awake) and the UARTs' clock is gated: what
        arrives on them meanwhile is lost (esp-idf issue 8098), so only for waits in which
        no peripheral speaks. ticks_ms runs on (esp_timer is compensated for the sleep).
        rain_pin: wake when it goes low too (ext0: esp32.wake_on_ext0 arms light sleep as
        well as deep sleep, ports/esp32/modesp32.c), and disarmed again after, whatever
        happens: a port whose machine_sleep_helper does not clear the wake sources first
        (older than micropython#12579) would keep it for every later sleep. True when the
        pin woke the board (machine.wake_reason(): esp_sleep_get_wakeup_cause, of light
        sleep too). Its pad is then on the RTC IO mux until a mode-setting Pin init
        (drivers/rain.py rearm)."""
        if rain_pin is None:
            machine.lightsleep(ms)
            return False
        esp32.wake_on_ext0(machine.Pin(rain_pin), esp32.WAKEUP_ALL_LOW)
        try:
            machine.lightsleep(ms)
        finally:
            esp32.wake_on_ext0(None, esp32.WAKEUP_ALL_LOW)
        return machine.wake_reason() == machine.EXT0_WAKE

    def sleep_us(self, us):
        time.sleep_us(us)

    # time and memory that survive deep sleep
    def time(self):
        return int(time.time())

    def set_time(self, t):
        tm = time.gmtime(t)
        self._rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))

    def rtc_memory(self):
        return self._rtc.memory()

    def set_rtc_memory(self, data):
        self._rtc.memory(data)

    # the network (station/wifi.py joins; station/net.py connects)
    def wifi(self):
        import network

        return network.WLAN(network.STA_IF)

    def rssi(self):
        try:
            return self.wifi().status("rssi")
        except (OSError, ValueError):
            return None

    def net_connect(self, host, port, timeout_s):
        from station import net

        return net.connect(host, port, timeout_s)

    def net_tls(self, sock, host, cadata):
        from station import net

        return net.tls(sock, host, cadata)

    def flash_free(self):
        st = os.statvfs("/")
        return st[0] * st[4]  # f_bsize * f_bfree

    def unique_id(self):
        return "esp32-" + "".join("%02x" % b for b in machine.unique_id())

    # power
    def reset_cause(self):
        return _CAUSES.get(machine.reset_cause(), "unknown")

    def woke_by_rain(self):
        return machine.wake_reason() == machine.EXT0_WAKE

    def sleep_tips(self):
        return 0  # each tip during deep sleep woke the board (ext0) and was counted then

    def service_held(self, pin):
        return machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0

    def watchdog(self, timeout_ms):
        return machine.WDT(timeout=timeout_ms)

    def deepsleep(self, ms, rain_pin=None):
        # ext0 set, or cleared, here, last: Pin.irq() on the rain pin clears it too
        # (machine_pin.c), and nothing must arm it after the choice made for this sleep
        esp32.wake_on_ext0(None if rain_pin is None else machine.Pin(rain_pin),
                           esp32.WAKEUP_ALL_LOW)
        machine.deepsleep(ms)
