# The real board's hardware layer (station/hw/esp32.py) over stand-ins for MicroPython's
# machine and esp32 modules that record each call: the order of its sleeps' calls is what
# the ESP32 port's sources ask for (ports/esp32/modesp32.c, modmachine.c).
import sys

CALLS = []
EXT0_WAKE, TIMER_WAKE = 2, 4


class Pin:
    IN, PULL_UP, IRQ_FALLING = 1, 2, 2

    def __init__(self, num, *args, **kw):
        self.num = num

    def __eq__(self, other):
        return isinstance(other, Pin) and other.num == self.num


class Machine:
    PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
    EXT0_WAKE = EXT0_WAKE
    Pin = Pin
    reason = TIMER_WAKE

    def lightsleep(self, ms):
        CALLS.append(("lightsleep", ms))

    def deepsleep(self, ms):
        CALLS.append(("deepsleep", ms))

    def wake_reason(self):
        return self.reason

    def RTC(self):  # noqa: N802 - machine's name
        return None


class Esp32:
    WAKEUP_ALL_LOW = False

    def wake_on_ext0(self, pin, level):
        CALLS.append(("ext0", None if pin is None else pin.num, level))


def board():
    """hw/esp32.py's Board, imported afresh over the stand-ins (which are then taken out)."""
    from station import hw

    machine, esp32 = Machine(), Esp32()
    saved = {k: sys.modules.get(k) for k in ("machine", "esp32", "station.hw.esp32")}
    sys.modules["machine"], sys.modules["esp32"] = machine, esp32
    sys.modules.pop("station.hw.esp32", None)
    if "esp32" in hw.__dict__:  # an import goes to the package's attribute first
        delattr(hw, "esp32")
    try:
        __import__("station.hw.esp32")
        return sys.modules["station.hw.esp32"].Board(), machine
    finally:
        delattr(hw, "esp32")
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def test_a_light_sleep_with_the_rain_pin_arms_ext0_for_it_and_disarms_after():
    b, machine = board()
    CALLS.clear()
    machine.reason = EXT0_WAKE
    assert b.lightsleep(700, 33) is True
    assert CALLS == [("ext0", 33, False), ("lightsleep", 700), ("ext0", None, False)], CALLS
    CALLS.clear()
    machine.reason = TIMER_WAKE
    assert b.lightsleep(700, 33) is False
    CALLS.clear()
    assert b.lightsleep(300) is False and CALLS == [("lightsleep", 300)]


def test_a_deep_sleep_sets_or_clears_ext0_last():
    b, _ = board()
    CALLS.clear()
    b.deepsleep(600000, 33)
    b.deepsleep(600000)
    assert CALLS == [("ext0", 33, False), ("deepsleep", 600000),
                     ("ext0", None, False), ("deepsleep", 600000)]
