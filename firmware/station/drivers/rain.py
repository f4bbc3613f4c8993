# Tipping-bucket rain gauge: a reed switch closing to ground once per tip.
# Without a counter (config rain_counter "none", or the PCF8583 not answering): while awake
# an IRQ counts tips; during deep sleep each tip wakes the board (ext0), the app adds it to
# RTC memory and sleeps on, so the count survives deep sleep. With the PCF8583 fitted it
# counts both (drivers/pcf8583.py) and neither this nor the wake is used.
import time


class RainGauge:
    def __init__(self, pin, trigger, debounce_ms=50):
        self.count = 0
        self.debounce_ms = debounce_ms
        self._last = time.ticks_add(time.ticks_ms(), -debounce_ms)
        pin.irq(handler=self._tip, trigger=trigger)

    def _tip(self, _pin):
        now = time.ticks_ms()
        if time.ticks_diff(now, self._last) >= self.debounce_ms:
            self.count += 1
            self._last = now

    def take(self):
        n = self.count
        self.count = 0
        return n
