# The rain gauge's part of a wake (docs/firmware.md, "Rain"): the pin its ext0 wake is armed
# on unless the reed switch stays closed, a tip's own short wake, the PCF8583's count at a
# scheduled wake, and the cycle's light sleeps that count tips (nap). Its own module so that
# it is in the heap only where a wake uses it: app calls it before the cycle and after the
# radio, the cycle in its light sleeps (app.release lets it go with the cycle's code).
import time

from station import state as state_mod

RELEASE_MS = 300  # a tip closes the reed switch for tens of ms; longer means stuck


def _released(pin, board, ms=RELEASE_MS):
    """True once the reed switch is open, waiting up to ms (awake); a tip closes it for tens
    of ms, so it is given RELEASE_MS before it counts as held closed."""
    for _ in range(ms // 10):
        if pin.value():
            return True
        board.sleep_ms(10)
    return bool(pin.value())


def pin(board, pins, st):
    """The pin to arm the rain wake on, or None. ext0 is level-triggered: a reed switch held
    closed (bucket resting on the magnet, water in the connector) would wake the board again
    at once, thousands of times. Disarmed until a later wake finds it open, and said so."""
    if not _released(board.pin_in(pins["rain"], pull_up=True), board):
        if not st["rain_off"]:
            st["rain_off"] = True
            state_mod.note_after(st, "rain gauge switch stays closed: rain wake off until"
                                     " it opens")
        return None
    st["rain_off"] = False
    return pins["rain"]


def nap(board, gauge, ms):
    """Light sleep for ms, counting the rain gauge's tips meanwhile: a GPIO IRQ does not fire
    in light sleep (the GPIO block is clock-gated), so ext0 is armed on the pin and a tip
    wakes the board; it counts at once (the gauge's debounce keeps a tip the IRQ just
    counted from counting twice), and the rest is slept once the switch opens again. The
    IRQ is off while ext0 is armed: arming moves the pin's pad to the RTC IO mux, where
    the digital side reads 0, an edge that is no tip. A switch closed when the nap starts
    (a tip in progress) is waited for, awake, before ext0 is armed (level-triggered, it
    would wake the board at once); one held closed RELEASE_MS is stuck and not armed
    again this wake. Never past ms."""
    end = time.ticks_add(board.ticks_ms(), ms)
    while True:
        left = time.ticks_diff(end, board.ticks_ms())
        if left <= 0:
            return
        if gauge.stuck or (left < 10 and not gauge.pin.value()):
            board.lightsleep(left)  # unarmed: ext0 would wake at once
            return
        if not gauge.pin.value():
            wait = min(RELEASE_MS, left)
            if not _released(gauge.pin, board, wait):
                gauge.stuck = wait == RELEASE_MS
            continue
        gauge.pin.irq(handler=None)
        woke = board.lightsleep(left, gauge.pin_num)
        gauge.rearm()
        if woke or not gauge.pin.value():  # a tip woke it, or came as it woke
            gauge.tip()


def tip_wake(board, pins, st):
    """A tip woke the board: count it once the switch opens again (debounce), and sleep on to
    the scheduled wake."""
    st["rain"] += 1
    arm = pin(board, pins, st)
    state_mod.save(board, st)
    board.deepsleep(max(1000, (st["next_wake"] - board.time()) * 1000), arm)


def counted(board, cfg, pins, st):
    """(counted, note). counted: the PCF8583 (cfg rain_counter) was read and its tips since
    the last wake are in st["rain"]; it counts while the board sleeps and while it is awake,
    so no rain wake is armed and no IRQ counts. False without a counter, or when it did not
    answer: ext0 and the IRQ count instead (as without one), and its count is used again
    from the next reading on (the tips meanwhile are theirs). note: what went wrong."""
    if cfg["rain_counter"] != "pcf8583":
        return False, None
    from station import sensors
    from station.drivers import SensorFault
    from station.drivers.pcf8583 import since

    board.pin_out(pins["sensor_power"], 1)  # the bus's pull-ups are on the sensor rail
    try:
        now, started = sensors.rain_counter(board, pins).count()
    except SensorFault as e:
        st["rain_count"] = None
        return False, "%s: rain counted by wakes instead" % e
    last, st["rain_count"] = st["rain_count"], now
    if last is None:  # the first reading (after a power-on or a fallback): the base
        return True, None
    if started:
        return True, "rain counter had restarted (lost power?): tips since the last wake lost"
    st["rain"] += since(last, now)
    return True, None
