# Rain tips counted in hardware while the station sleeps (issue 20, item 4): a PCF8583 in
# event-counter mode on the always-on rail, read over I2C at each wake, as the sim models it
# from NXP's data sheet (hw/sim_counter.py); without one, or when it does not answer, each
# tip wakes the board (ext0) and an IRQ counts while awake, as before.
from records import decode
from station import app, codec, config, state
from station.drivers import SensorFault
from station.drivers import rain as rain_driver
from station.drivers.pcf8583 import MODULUS, PCF8583, since
from station.flashqueue import FlashQueue
from station.hw import sim, sim_counter
from station.pins import PINS
from support import load_json, raises
from test_cycle import setup

TIP_MS = 3600000 // 500  # 500 tips/h: 100 mm/h at 0.2 mm a tip, one every 7.2 s


def bus_on(board):
    board.pin_out(PINS["sensor_power"], 1)
    return board.i2c(PINS["i2c_scl"], PINS["i2c_sda"])


def wake(d, board):
    """One wake; (DeepSleep, the pin the rain wake was armed on, ms awake)."""
    seen = {}
    real = board.deepsleep

    def deepsleep(ms, rain_pin=None):
        seen["armed"], seen["awake"] = rain_pin, board.ms
        real(ms, rain_pin)

    board.deepsleep = deepsleep
    e = raises(sim.DeepSleep, app.main, board, d + "/config.json", d + "/queue")
    return e, seen["armed"], seen["awake"]


def tips_stored(d):
    """Tips in the stored readings (0.1 mm resolution, 0.2 mm a tip) and in RTC state."""
    n = 0
    for _, payload in FlashQueue(d + "/queue").peek(10000, 1000000):
        n += int(decode(payload[4:])[0]["rain_mm"] * 5 + 0.5)
    return n + state.load(sim.Board(sim.World(), rtc_path=d + "/rtc.bin"))["rain"]


def rain_run(d, w, hours):
    """The station through `hours` of rain at 500 tips/h, woken as an ESP32 is: at each
    scheduled wake and, while its rain wake is armed, by every tip during a sleep (ext0 is
    level-triggered on the reed's closed contact; that wake counts the tip). Tips while
    awake close the reed too. Returns (boots, rain wakes, tips fallen before the last wake
    began)."""
    t = 0  # ms since the rain began
    tip = TIP_MS // 2
    start = w.now
    ext0 = False
    boots = rain_boots = before_last = 0
    while t < hours * 3600000:
        w.now = start + t // 1000
        before_last = tip // TIP_MS
        e, armed, awake = wake(d, sim.Board(w, rtc_path=d + "/rtc.bin", woke_by_ext0=ext0))
        boots += 1
        rain_boots += ext0
        awake_end = t + awake
        while tip < awake_end:  # while awake: the counter's, or the IRQ's (rain_tips)
            sim_counter.rain(w)
            tip += TIP_MS
        t = awake_end + e.ms
        ext0 = e.ext0
        if armed is not None and tip < t:  # the first tip asleep wakes the board
            t, ext0 = tip, True
            if w.pcf8583 is not None:
                w.pcf8583.pulse()  # it sees the tip too (a fallback with a silent counter)
            tip += TIP_MS
        while tip < t:  # asleep with no rain wake armed: only a counter sees them
            sim_counter.rain(w)
            tip += TIP_MS
    return boots, rain_boots, before_last


# -- the part --------------------------------------------------------------------------------

def test_the_pcf8583_counts_osci_pulses_in_bcd_in_event_counter_mode():
    w = sim.World()
    chip = sim_counter.fit(w)
    board = sim.Board(w)
    bus = board.i2c(PINS["i2c_scl"], PINS["i2c_sda"])
    raises(OSError, bus.readfrom_mem, 0x50, 0, 4)  # pull-ups on the sensor rail: off
    bus = bus_on(board)
    assert 0x50 in bus.scan()
    assert bus.readfrom_mem(0x50, 0, 7) == b"\x00\x00\x00\x00\x00\x01\x01"  # power-on reset
    chip.pulse(5)  # clock mode: OSCI is the crystal's pin, the event count does not move
    assert bus.readfrom_mem(0x50, 1, 3) == b"\x00\x00\x00"
    bus.writeto_mem(0x50, 0, bytes([0x20, 0x98, 0x99, 0x99]))  # event mode at 999998
    chip.pulse(3)  # six BCD digits, D1 D0 at 01h: 999998 + 3 wraps to 000001
    assert bus.readfrom_mem(0x50, 0, 4) == b"\x20\x01\x00\x00"
    chip.pulse(1234)
    assert bus.readfrom_mem(0x50, 1, 3) == b"\x35\x12\x00"
    bus.writeto_mem(0x50, 0, b"\xa0")  # the stop flag
    chip.pulse(7)
    assert bus.readfrom_mem(0x50, 1, 3) == b"\x35\x12\x00"
    bus.writeto_mem(0x50, 0, b"\x20")
    w.faults.add("counter_missing")  # a broken wire: silent, but it counts on
    raises(OSError, bus.readfrom_mem, 0x50, 0, 4)
    assert 0x50 not in bus.scan()
    chip.pulse(2)
    w.faults.discard("counter_missing")
    assert bus.readfrom_mem(0x50, 1, 3) == b"\x37\x12\x00"


def test_the_driver_starts_a_chip_that_lost_power_and_reads_across_the_wrap():
    w = sim.World()
    chip = sim_counter.fit(w)
    counter = PCF8583(bus_on(sim.Board(w)))
    assert counter.count() == (0, True)  # it was a clock (control 00h): now it counts
    chip.pulse(42)
    assert counter.count() == (42, False)
    assert since(999990, 15) == 25 and since(7, 7) == 0 and MODULUS == 1000000
    chip.mem[1] = 0x4A  # not BCD: a disturbed bus
    assert "not BCD" in str(raises(SensorFault, counter.count))
    fault = raises(SensorFault, PCF8583(bus_on(sim.Board(sim.World()))).count)
    assert fault.flag == codec.SENSOR_MISSING and "no answer at 0x50" in str(fault)


def test_the_counter_is_on_the_bus_at_its_pin_map_address():
    i2c = load_json("hardware/pinmap.json")["i2c"]
    assert i2c["pcf8583"] == PCF8583(None).addr == sim_counter.PCF8583_ADDR
    assert len(set(v for k, v in i2c.items() if k != "about")) == 3
    assert config.CHOICES["rain_counter"] == ("none", "pcf8583")
    assert config.DEFAULTS["rain_counter"] == "none"  # the hardware is optional


# -- the station ------------------------------------------------------------------------------

def test_500_tips_an_hour_for_hours_are_counted_exactly_with_no_rain_wake():
    d = setup(rain_counter="pcf8583")
    w = sim.World()
    sim_counter.fit(w)
    boots, rain_boots, fallen = rain_run(d, w, 6)
    assert rain_boots == 0 and boots <= 6 * 6 + 1  # the scheduled wakes only (600 s)
    assert fallen > 2900 and tips_stored(d) == fallen
    assert state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))["err"] == ""


def test_without_a_counter_every_tip_asleep_boots_the_board():
    # The fallback as before: ext0 armed, a boot per tip, the IRQ's tips while awake (the
    # sim hands them over with sleep_tips). 100 mm/h: ~500 boots an hour, not ~6.
    d = setup()
    w = sim.World()
    boots, rain_boots, fallen = rain_run(d, w, 1)
    assert rain_boots > 480 and boots == rain_boots + 6
    assert tips_stored(d) == fallen


def test_tips_while_awake_are_counted_and_no_irq_is_set():
    d = setup(rain_counter="pcf8583")
    w = sim.World()
    chip = sim_counter.fit(w)
    made = []
    # the driver's class, not sensors.rain_gauge: under MicroPython a wake lets `sensors` go
    # and imports it afresh (app.release); the rain driver stays loaded
    real = rain_driver.RainGauge
    rain_driver.RainGauge = lambda *a: made.append(a) or real(*a)
    try:
        wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))  # the base
        board = sim.Board(w, rtc_path=d + "/rtc.bin")
        chip.tip_at(board, 150)  # during the A02YYUW's warm-up, after the read
        chip.tip_at(board, 400)
        e, armed, awake = wake(d, board)
        assert armed is None and awake > 400 and not e.ext0
        assert state.load(board)["rain"] == 0 and tips_stored(d) == 0
        w.now += 600
        wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
        assert tips_stored(d) == 2
    finally:
        rain_driver.RainGauge = real
    assert made == []


def test_a_missing_counter_is_reported_and_ext0_and_the_irq_count_instead():
    d = setup(rain_counter="pcf8583")
    w = sim.World()  # nothing at 0x50: a NACK
    e, armed, _ = wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    st = state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert armed == PINS["rain"] and st["rain_count"] is None
    assert "PCF8583 rain counter: no answer at 0x50: rain counted by wakes instead" in st["err"]
    sim_counter.rain(w, 3)  # asleep: the armed ext0 wakes count these
    w.now += 600
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert tips_stored(d) == 3
    # Fitted but silent (a broken wire), then mended: it counted on meanwhile, but those
    # tips were the wakes'; it is read again from a new base.
    chip = sim_counter.fit(w)
    chip.mem[0] = 0x20
    w.faults.add("counter_missing")
    sim_counter.rain(w, 4)
    w.now += 600
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert tips_stored(d) == 7
    w.faults.discard("counter_missing")
    sim_counter.rain(w, 2)  # the fallback's ext0 wakes counted these
    w.now += 600
    e, armed, _ = wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert armed is None and tips_stored(d) == 9
    sim_counter.rain(w, 5)
    w.now += 600
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    st = state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert tips_stored(d) == 14 and "PCF8583" not in st["err"]


def test_the_count_wraps_at_a_million_without_losing_a_tip():
    d = setup(rain_counter="pcf8583")
    w = sim.World()
    chip = sim_counter.fit(w)
    chip.mem[0:4] = bytes([0x20, 0x90, 0x99, 0x99])  # 999990
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    sim_counter.rain(w, 25)
    w.now += 600
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert chip.value() == 15 and tips_stored(d) == 25


def test_a_counter_that_lost_power_is_started_again_and_said_so():
    d = setup(rain_counter="pcf8583")
    w = sim.World()
    chip = sim_counter.fit(w)
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    sim_counter.rain(w, 4)
    chip.power_on()  # its supply dipped below 1.0 V: a clock again, the count gone
    w.now += 600
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    st = state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert "rain counter had restarted" in st["err"] and chip.mem[0] == 0x20
    sim_counter.rain(w, 6)
    w.now += 600
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert tips_stored(d) == 6
    # The station's power cut: the ESP32's RTC memory and the counter go together: a new
    # base, nothing to report; a brown-out of the ESP32 alone leaves the count.
    sim_counter.rain(w, 3)
    w.now += 600
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin", reset_cause="power_on"))
    assert chip.value() == 0 and "restarted" not in state.load(
        sim.Board(w, rtc_path=d + "/rtc.bin"))["err"]
    sim_counter.rain(w, 2)
    sim.Board(w, reset_cause="brownout")
    assert chip.value() == 2


def test_a_switch_held_closed_never_wakes_the_board_and_is_reported():
    d = setup(rain_counter="pcf8583")
    w = sim.World()
    sim_counter.fit(w)
    w.faults.add("reed_stuck")
    e, armed, _ = wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    st = state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert armed is None and not e.ext0 and e.ms > 500000
    assert st["rain_off"] and "rain gauge switch stays closed" in st["err"]
    # said at the end of the wake, after its report: later wakes carry it in their err until
    # a report tells the server (tests/firmware/test_carried_errors.py); this station has
    # no server to tell
    w.now += 600
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    st = state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert st["err"].startswith("rain gauge switch stays closed") and st["rain_off"]


def test_the_ledger_charges_the_counter_for_the_whole_wake_and_sleep():
    d = setup(rain_counter="pcf8583")
    w = sim.World()
    sim_counter.fit(w)
    board = sim.Board(w, rtc_path=d + "/rtc.bin")
    e, _, awake = wake(d, board)
    assert board.spent["rain_counter"] == sim.BOOT_MS + awake + e.ms
    assert "rain_counter" in load_json("hardware/energy.json")["states_ma"]


def test_a_rain_wake_that_cannot_be_armed_leaves_the_state_saved_and_says_so():
    """rainwake is loaded again at the end of the wake, after the radio: when that fails
    (no heap left for it), the wake still saves its state and sleeps, unarmed."""
    d = setup()
    w = sim.World()
    real = app._call

    def call(module, name, *args):
        if (module, name) == ("rainwake", "pin"):
            raise MemoryError("memory allocation failed, allocating 368 bytes")
        return real(module, name, *args)

    app._call = call
    try:
        e, armed, _ = wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    finally:
        app._call = real
    st = state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert armed is None and e.ms > 500000
    assert st["wakes"] == 1 and st["err"] == "rain wake not armed"
    assert len(FlashQueue(d + "/queue").peek(10)) == 1  # the reading is stored
    w.now += 600
    wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))  # its cycle's notes carry it on
    assert state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))["err"] == "rain wake not armed"


def test_tips_during_the_light_sleeps_of_a_wake_are_counted_without_a_counter():
    """The MLIT window sleeps ~18 s of its 20 s in light sleep, where the rain pin's IRQ is
    deaf: the rain gauge's nap arms ext0 on the pin, counts the tip that wakes it, and
    sleeps on. Tips in the warm-up, between samples and while a sample is read: all
    counted, into the next reading's rain (st["rain"])."""
    d = setup(profile="mlit", obs_start_mm=100, obs_interval_s=120)
    w = sim.World()
    tips = [150, 900, 2600, 2650, 7300, 12000, 15500, 19990]
    w.awake_tips_ms = list(tips)
    board = sim.Board(w, rtc_path=d + "/rtc.bin")
    e, _, awake = wake(d, board)
    st = state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert awake > 20000 and w.awake_tips_ms == []  # the window went past every tip
    assert st["rain"] == len(tips), st
    assert board.spent["light_sleep"] > 15000  # it still slept most of the window


def nap_board(tips, tip_ms=40, stuck=False):
    from station.drivers.rain import RainGauge

    w = sim.World()
    w.awake_tips_ms, w.tip_ms = list(tips), tip_ms
    if stuck:
        w.faults.add("reed_stuck")
    board = sim.Board(w)
    return board, RainGauge(board, PINS["rain"])


def test_a_nap_counts_each_tip_once_and_never_runs_past_its_end():
    from station import rainwake

    # closures longer than the debounce, one at the very end, one at the very start
    board, gauge = nap_board([0, 300, 995], tip_ms=120)
    rainwake.nap(board, gauge, 1000)
    assert gauge.take() == 3 and board.ms == 1000
    # a closure in progress when the nap starts is waited for, then ext0 armed: the next
    # tip wakes it
    board, gauge = nap_board([50, 400], tip_ms=100)
    board.sleep_ms(60)  # the IRQ counts the first, the reed still closed
    rainwake.nap(board, gauge, 1000)
    assert gauge.take() == 2 and board.ms == 1060
    # no tips: arming ext0 (the pad's move to the RTC mux) never counts one
    board, gauge = nap_board([])
    for _ in range(25):
        rainwake.nap(board, gauge, 700)
    assert gauge.take() == 0 and board.spent["light_sleep"] == 25 * 700


def test_a_switch_held_closed_is_not_armed_and_the_nap_still_ends_on_time():
    from station import rainwake

    board, gauge = nap_board([], stuck=True)
    rainwake.nap(board, gauge, 1000)
    assert gauge.stuck and gauge.take() == 0 and board.ms == 1000
    assert board.spent["light_sleep"] == 700  # 300 ms awake waiting for it to open, once
    rainwake.nap(board, gauge, 1000)
    assert board.spent["light_sleep"] == 1700


def test_tips_in_the_lorawan_modules_light_sleeps_are_counted():
    """The ESP32 light-sleeps through the RAK3172's transmission and receive windows
    (lorawan.modem's nap, 1-2 s an uplink), where the rain pin's IRQ is deaf: given the
    gauge, those naps count its tips as the cycle's do; without it they are lost."""
    from station import lorawan

    tips = [100, 700, 1500, 2900]
    for gauge_given, counted in ((True, len(tips)), (False, 0)):
        board, gauge = nap_board(tips)
        modem = lorawan.modem(board, PINS, None, gauge if gauge_given else None)
        assert modem.nap is not None
        modem.nap(3000)
        assert gauge.take() == counted
        assert board.spent["light_sleep"] >= 2500  # slept, not waited awake
