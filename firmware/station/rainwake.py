# The rain gauge's part of a wake (docs/firmware.md, "Rain"): the pin its ext0 wake is armed
# on unless the reed switch stays closed, a tip's own short wake, and the PCF8583's count at
# a scheduled wake. Its own module so that it is in the heap only where a wake uses it: app
# calls it before the cycle and after the radio (app.release lets it go with the cycle's
# code).
from station import state as state_mod

RELEASE_MS = 300  # a tip closes the reed switch for tens of ms; longer means stuck


def _released(pin, board):
    """True once the reed switch is open; a tip closes it for tens of ms, so it is given
    RELEASE_MS before it counts as held closed."""
    for _ in range(RELEASE_MS // 10):
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
