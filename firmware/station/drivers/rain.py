# Tipping-bucket rain gauge: a reed switch closing to ground once per tip.
# Without a counter (config rain_counter "none", or the PCF8583 not answering): while awake
# an IRQ counts tips, and in the wake's light sleeps an ext0 wake armed on the pin does
# (rainwake.nap); during deep sleep each tip wakes the board (ext0), the app adds it to RTC
# memory and sleeps on, so the count survives deep sleep. With the PCF8583 fitted it counts
# all of them (drivers/pcf8583.py) and neither this nor the wake is used.
import time


class RainGauge:
    def __init__(self, board, pin, debounce_ms=50):
        """board: its pins and ticks_ms (the sim counts its own time); pin: the gauge's GPIO."""
        self.board = board
        self.pin_num = pin
        self.count = 0
        self.debounce_ms = debounce_ms
        self.stuck = False  # the switch stayed closed after a tip woke a light sleep
        self._last = time.ticks_add(board.ticks_ms(), -debounce_ms)
        self.rearm()

    def rearm(self):
        """The pin as a digital input with its IRQ, again: after a light sleep with ext0
        armed on it, its pad is on the RTC IO mux and sees no edge until a mode-setting Pin
        init takes it back (ports/esp32/machine_pin.c: rtc_gpio_deinit)."""
        self.pin = self.board.pin_in(self.pin_num, pull_up=True)
        self.pin.irq(handler=self.tip, trigger=self.board.IRQ_FALLING)

    def tip(self, _pin=None):
        """One tip (the IRQ's handler), unless within the debounce time of the last."""
        now = self.board.ticks_ms()
        if time.ticks_diff(now, self._last) >= self.debounce_ms:
            self.count += 1
            self._last = now

    def take(self):
        n = self.count
        self.count = 0
        return n
