# The simulated board keeps the ESP32's rules (station/hw/sim.py, each with its source), and
# the firmware lives by them: the sensor rail, the ADC's range, the clock and RTC memory lost
# at power-on, a watchdog that bites, a level-triggered rain wake, the port's reset causes
# and time_pulse_us codes, Wi-Fi scans with SSIDs that are not UTF-8.
import json

from records import decode
from station import app, codec, config, cycle, lorawan, rainwake, sensors, state, uplink, wifi
from station.drivers import SensorFault
from station.drivers.a02yyuw import A02YYUW
from station.drivers.bme280 import BME280
from station.drivers.current_loop import SAMPLES, CurrentLoop
from station.drivers.jsnsr04t import JSNSR04T
from station.flashqueue import FlashQueue
from station.hw import sim, sim_net
from station.pins import PINS
from support import raises, tempdir


def setup(**changes):
    d = tempdir()
    cfg, errors = config.merge(config.DEFAULTS, changes)
    assert errors == []
    config.save(cfg, d + "/config.json")
    return d, cfg


def wake(d, board):
    return raises(sim.DeepSleep, app.main, board, d + "/config.json", d + "/queue")


# -- the switched sensor rail --------------------------------------------------------------

def test_sensors_answer_only_on_the_rail_after_their_warm_up():
    board = sim.Board(sim.World())
    uart = A02YYUW(board.uart(PINS["ultrasonic_uart"], 9600, 17, 16), clock=board)
    assert raises(SensorFault, uart.read_mm).flag == codec.SENSOR_MISSING  # rail off
    board.pin_out(PINS["sensor_power"], 1)
    board.sleep_ms(100)  # not warmed up yet (300 ms): no frame on the line
    assert uart.uart.any() == 0
    board.sleep_ms(200)
    assert uart.uart.any() and abs(uart.read_mm() - 4000) <= 5
    board.pin_out(PINS["sensor_power"], 0)
    raises(SensorFault, sensors.env_sensor, board, PINS)  # BME280 unpowered: no answer


def test_deep_sleep_with_the_rail_on_is_a_broken_rule():
    board = sim.Board(sim.World())
    board.pin_out(PINS["sensor_power"], 1)
    raises(sim.RuleBroken, board.deepsleep, 1000)


def test_a_wake_powers_the_sensors_and_switches_them_off_before_sleep():
    d, _ = setup()
    board = sim.Board(sim.World())
    wake(d, board)
    rec = decode(FlashQueue(d + "/queue").peek(1)[0][1][4:])[0]
    assert abs(rec["level_mm"] - 1000) <= 3 and rec["temperature_c"] is not None
    assert not board.rail_on()


# -- the ADC ----------------------------------------------------------------------------------

def test_adc_clips_at_the_11_db_range_and_adc2_fails_with_wifi_on():
    w = sim.World()
    w.battery_mv = 6000  # 3.0 V at the divider: above 2450 mV
    board = sim.Board(w)
    assert board.adc(PINS["battery_adc"]).read_uv() == sim.ADC_MAX_UV
    adc2 = sim.SimADC(board, 26, lambda: 1000000)  # GPIO 26 is an ADC2 channel
    assert abs(adc2.read_uv() - 1000000) <= sim.ADC_ERROR_UV  # the chip's calibrated error
    board.wifi().active(True)
    raises(OSError, adc2.read_uv)


def test_the_loop_shunt_keeps_4_to_21_5_ma_inside_the_adc_range():
    # 150 ohm (the old shunt) puts 19 mA at 2.85 V: clipped, the depth reads short.
    w = sim.World()
    w.loop_ua = 19000
    board = sim.Board(w)
    board.pin_out(PINS["sensor_power"], 1)
    board.sleep_ms(500)
    w.loop_shunt_ohm = 150
    old = CurrentLoop(board.adc(PINS["loop_adc"]), 150)
    assert old.read_mm() < 4500  # 15000 uA * 5000 / 16000 = 4687 mm if it were right
    w.loop_shunt_ohm = config.DEFAULTS["loop_shunt_ohm"]
    new = CurrentLoop(board.adc(PINS["loop_adc"]), config.DEFAULTS["loop_shunt_ohm"],
                      samples=SAMPLES["internal"])
    # averaged, the noise is gone but not the chip's +-60 mV (600 uA, 187 mm of 5 m)
    assert abs(new.read_mm() - 4687) <= sim.ADC_ERROR_UV // 100 * 5000 // 16000
    w.loop_ua = 21500  # a failed transmitter (NAMUR NE 43): now it can be seen
    assert raises(SensorFault, new.read_mm).flag == codec.OUT_OF_RANGE


# -- the clock and RTC memory ----------------------------------------------------------------

def test_power_on_and_brown_out_lose_the_clock_and_rtc_memory():
    d = tempdir()
    w = sim.World()
    board = sim.Board(w, rtc_path=d + "/rtc.bin")
    board.set_rtc_memory(b"kept")
    for cause in ("deepsleep", "wdt", "soft", "hard"):
        b = sim.Board(w, reset_cause=cause, rtc_path=d + "/rtc.bin")
        assert b.rtc_memory() == b"kept" and b.time() == w.now
    b = sim.Board(w, reset_cause="brownout", rtc_path=d + "/rtc.bin")
    assert b.reset_cause() == "power_on"  # ESP_RST_BROWNOUT reads as PWRON_RESET
    assert b.rtc_memory() == b"" and b.time() == 0  # 2000-01-01 00:00:00


def test_rtc_memory_holds_2048_bytes_and_saving_state_never_raises():
    board = sim.Board(sim.World())
    board.set_rtc_memory(b"x" * 2048)
    raises(ValueError, board.set_rtc_memory, b"x" * 2049)
    st = state.defaults()
    st["err"] = "e" * 5000
    st["uplink"] = "upload: HTTP 500 " + "d" * 5000  # a server's long detail
    st["adj"] = [[i, i + 1, 1] for i in range(200)]
    state.save(board, st)  # must not raise: the board must still get to sleep
    back = state.load(board)
    assert len(board.rtc_memory()) <= 2048 and back["wakes"] == st["wakes"]


def test_state_is_saved_as_what_differs_from_the_defaults():
    """state._dumps tells a value from its default by emptiness: every default is empty,
    and NONE_DEFAULTS are those that are None."""
    base = state.defaults()
    assert not [k for k, v in base.items() if v]
    assert sorted(state.NONE_DEFAULTS) == sorted(k for k, v in base.items() if v is None)
    board = sim.Board(sim.World())
    st = state.defaults()
    state.save(board, st)
    assert board.rtc_memory() == b"{}"
    st.update({"level": 0, "channel": 0, "err_reported": "", "wakes": 3, "flood": True,
               "adj": [[1, 5, 2]], "alert": 0, "err": ""})
    state.save(board, st)
    assert json.loads(board.rtc_memory()) == {"level": 0, "channel": 0, "err_reported": "",
                                               "wakes": 3, "flood": True, "adj": [[1, 5, 2]]}
    assert state.load(board) == st


def test_corrupt_but_valid_state_falls_back_to_defaults():
    board = sim.Board(sim.World())
    board.set_rtc_memory(b'{"adj": 5, "rain": "x", "wakes": 3, "flood": 1}')
    st = state.load(board)
    assert st["adj"] == [] and st["rain"] == 0 and st["wakes"] == 3 and st["flood"] is False


def test_the_clock_drifts_through_deep_sleep():
    d = tempdir()
    here = _chdir(d)
    try:
        spec = {"now": 1000000, "reset_cause": "deepsleep", "clock_drift_ppm": 1000}
        _write_spec(spec)
        with open("rtc.clock", "w") as f:
            f.write("1000000 1000000")
        spec["now"] = 1000000 + 86400
        _write_spec(spec)
        board = sim.from_spec("sim.json")
        assert board.time() == 1000000 + 86400 + 86  # 0.1 % of a day: 86 s fast
    finally:
        _chdir(here)


# -- the watchdog ------------------------------------------------------------------------------

def test_the_watchdog_cannot_be_starved():
    board = sim.Board(sim.World())
    wdt = board.watchdog(30000)
    board.sleep_ms(29000)
    wdt.feed()
    board.sleep_ms(29000)
    raises(sim.WatchdogReset, board.sleep_ms, 2000)
    assert board.reset_cause() == "wdt"


# -- wake sources and reset causes ------------------------------------------------------------

def test_ext0_on_a_closed_reed_switch_wakes_at_once():
    w = sim.World()
    w.faults.add("reed_stuck")
    e = raises(sim.DeepSleep, sim.Board(w).deepsleep, 600000, PINS["rain"])
    assert e.ms == 0 and e.ext0


def test_a_reed_switch_held_closed_does_not_wake_the_board_forever():
    d, _ = setup()
    w = sim.World()
    board = sim.Board(w, rtc_path=d + "/rtc.bin")
    e = wake(d, board)
    assert not e.ext0
    w.faults.add("reed_stuck")  # the bucket comes to rest on the magnet
    wakes = 0
    e = sim.DeepSleep(0, True)
    while e.ext0 and wakes < 50:
        e = wake(d, sim.Board(w, rtc_path=d + "/rtc.bin", woke_by_ext0=True))
        wakes += 1
    assert wakes == 1 and e.ms > 500000  # one tip, then asleep to the scheduled wake
    st = state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert st["rain"] == 1 and st["rain_off"] and "rain gauge" in st["err"]
    w.faults.discard("reed_stuck")  # freed: the next scheduled wake arms it again
    e = wake(d, sim.Board(w, rtc_path=d + "/rtc.bin"))
    assert not state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))["rain_off"]


# -- time_pulse_us ----------------------------------------------------------------------------

def test_time_pulse_us_codes_as_the_port_returns_them():
    w = sim.World()
    board = sim.Board(w)
    board.pin_out(PINS["sensor_power"], 1)
    board.sleep_ms(100)
    jsn = JSNSR04T(board.pin_out(26), board.pin_in(14), board.time_pulse_us, board.sleep_us)
    w.faults = {"missing"}  # cable cut: the echo never rises
    assert board.time_pulse_us(14, 1, 40000) == -2
    assert raises(SensorFault, jsn.read_mm).flag == codec.SENSOR_MISSING
    w.faults = {"no_echo"}  # the echo rises and never falls within the timeout
    board.pin_out(26, 1)  # a ping
    assert board.time_pulse_us(14, 1, 40000) == -1
    board.sleep_ms(100)
    assert raises(SensorFault, jsn.read_mm).flag == codec.NO_ECHO


def test_a_jsnsr04t_ping_inside_its_no_echo_hold_times_a_ghost():
    # With nothing below, ECHO stays high 60 ms; a timeout of 40 ms and a ping at once after
    # it time the rest of that hold: a distance where there is none.
    w = sim.World()
    w.faults = {"no_echo"}
    board = sim.Board(w)
    board.pin_out(PINS["sensor_power"], 1)
    board.sleep_ms(100)
    trig = board.pin_out(PINS["jsn_trig"])
    trig.value(1)
    assert board.time_pulse_us(board.pin_in(14), 1, 40000) == -1
    trig.value(0)
    trig.value(1)  # ignored: the module is still in its hold
    assert 0 < board.time_pulse_us(board.pin_in(14), 1, 40000) <= 20000  # the ghost
    jsn = sensors.level_sensor(board, dict(config.DEFAULTS, level_sensor="jsnsr04t"), PINS)[1]
    for _ in range(4):  # the driver waits out the hold and the cycle: no echo, every time
        assert raises(SensorFault, jsn.read_mm).flag == codec.NO_ECHO


def test_jsnsr04t_pings_closer_than_its_cycle_are_refused():
    board = sim.Board(sim.World())
    board.pin_out(PINS["sensor_power"], 1)
    board.sleep_ms(100)
    trig = board.pin_out(PINS["jsn_trig"])
    trig.value(1)
    assert 0 < board.time_pulse_us(board.pin_in(14), 1, 70000) < 30000  # 4 m: 23 ms
    trig.value(0)
    raises(sim.RuleBroken, trig.value, 1)  # at 24 ms: under the 50 ms cycle
    board.sleep_ms(50)
    jsn = sensors.level_sensor(board, dict(config.DEFAULTS, level_sensor="jsnsr04t"), PINS)[1]
    start = board.ticks_ms()
    got = [jsn.read_mm() for _ in range(5)]  # the driver spaces them
    assert all(abs(mm - 4000) <= 5 for mm in got)
    assert board.ticks_ms() - start >= 4 * 50


# -- Wi-Fi ------------------------------------------------------------------------------------

def test_a_shift_jis_ssid_nearby_does_not_break_the_scan():
    board = sim.Board(sim.World())
    assert any(not _utf8(ap[0]) for ap in board.world.aps)
    st = state.defaults()
    assert wifi.connect(board.wifi(), {"ssid": sim.SIM_SSID, "password": "pw"}, st, board)
    assert st["bssid"] == "020000000002" and st["channel"] == 6
    assert board.ms >= sim_net.SimWLAN.SCAN_MS  # the scan and the association took time


def test_wifi_gives_up_in_the_boards_time_and_forgets_the_access_point():
    w = sim.World()
    board = sim.Board(w)
    st = state.defaults()
    st["bssid"], st["channel"] = "020000000002", 6
    w.faults.add("link_down")
    fed = []
    assert not wifi.connect(board.wifi(), {"ssid": sim.SIM_SSID, "password": "pw"}, st, board,
                            timeout_ms=15000, feed=lambda: fed.append(1))
    assert 15000 <= board.ms < 16000 and fed and st["bssid"] is None


# -- power ------------------------------------------------------------------------------------

def test_a_sagging_battery_skips_the_radio_and_says_so():
    d, _ = setup(upload_every=1)
    with open(d + "/secrets.json", "w") as f:
        f.write('{"device_id": 1, "secret": "00", "server": "http://127.0.0.1:9", "ca": null,'
                ' "wifi": {"ssid": "%s", "password": "x"}}' % sim.SIM_SSID)
    w = sim.World()
    w.battery_mv = 3300
    board = sim.Board(w, reset_cause="brownout")
    raises(sim.DeepSleep, app.main, board, d + "/config.json", d + "/queue", None,
           d + "/secrets.json")
    st = state.load(board)
    assert "radio and updates skipped" in st["uplink"] and not board.wifi_on
    assert FlashQueue(d + "/queue").depth() == 1  # kept for a later wake


def test_a_memory_error_in_an_upload_backs_off_like_a_network_error():
    class Broke:
        def net_connect(self, host, port, timeout_s):
            raise MemoryError()

    q = FlashQueue(tempdir())
    board = sim.Board(sim.World())
    board.net_connect = Broke().net_connect
    st = state.defaults()
    creds = {"device_id": 1, "key": b"k", "server": "http://x",
             "wifi": {"ssid": sim.SIM_SSID, "password": "pw"}}
    cfg = dict(config.DEFAULTS)
    assert uplink.send(board, cfg, tempdir() + "/c.json", creds, st, q) is None
    assert st["backoff_s"] == 60 and "MemoryError" in st["uplink"]


def _utf8(b):
    try:
        b.decode()
        return True
    except UnicodeError:
        return False


def _chdir(d):
    import os

    here = os.getcwd()
    os.chdir(d)
    return here


def _write_spec(spec):
    import json

    with open("sim.json", "w") as f:
        f.write(json.dumps(spec))


def test_cycle_ends_with_the_rail_off_even_when_a_sensor_raises():
    class Boom(Exception):
        pass

    board = sim.Board(sim.World())
    cfg = dict(config.DEFAULTS)

    def bad(*a):
        raise Boom()

    real = sensors.level_sensor
    sensors.level_sensor = bad
    try:
        raises(Boom, cycle.run, board, cfg, config.pins(cfg), state.defaults(),
               FlashQueue(tempdir()))
    finally:
        sensors.level_sensor = real
    assert not board.rail_on()


def test_a_reformatted_filesystem_is_reported_until_the_server_has_heard():
    d, _ = setup()
    with open(d + "/fs_reformatted", "w") as f:
        f.write('{"why": "corrupt", "boots": 2}')
    board = sim.Board(sim.World())
    wake(d, board)
    st = state.load(board)
    assert 'filesystem reformatted {"why": "corrupt"' in st["err"]
    with open(d + "/fs_reformatted") as f:  # not provisioned: nobody heard yet, kept
        assert "corrupt" in f.read()


def test_a_tip_in_progress_at_sleep_is_not_taken_for_a_stuck_switch():
    w = sim.World()
    board = sim.Board(w)
    w.reed_closed_ms = 60  # the bucket is tipping as the wake ends
    st = state.defaults()
    assert rainwake.pin(board, PINS, st) == PINS["rain"] and not st["rain_off"]
    w.faults.add("reed_stuck")
    assert rainwake.pin(board, PINS, st) is None and st["rain_off"]


def test_a_reset_in_the_middle_of_the_radio_backs_off_instead_of_retrying_at_once():
    d, _ = setup(upload_every=1)
    with open(d + "/secrets.json", "w") as f:
        f.write('{"device_id": 1, "secret": "00", "server": "http://127.0.0.1:9", "ca": null,'
                ' "wifi": {"ssid": "%s", "password": "x"}}' % sim.SIM_SSID)
    w = sim.World()
    board = sim.Board(w, rtc_path=d + "/rtc.bin")
    st = state.defaults()
    st["radio_at"] = board.time() - 30  # the last wake was uploading when the watchdog bit
    state.save(board, st)
    board = sim.Board(w, reset_cause="wdt", rtc_path=d + "/rtc.bin")
    raises(sim.DeepSleep, app.main, board, d + "/config.json", d + "/queue", None,
           d + "/secrets.json")
    st = state.load(board)
    assert st["backoff_s"] == 60 and "cut short by a wdt reset" in st["uplink"]
    assert not board.wifi_on and st["radio_at"] == 0  # no radio this time
    assert st["reset"] == "wdt"


def test_lorawan_starts_nothing_after_the_radio_deadline():
    class Modem:
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            def call(*a):
                self.calls.append(name)
                return {"joined": True, "data_rate": 2}.get(name)
            return call

    d, cfg = setup(transport="lorawan")
    q = FlashQueue(d + "/queue")
    board = sim.Board(sim.World())
    st = state.defaults()
    st["lora_setup"], st["synced"] = lorawan.SETUP, True
    q.append(b"\x2d\x24\x2c\x00" + codec.encode_full(1, 0, 1000, 3900, 0, 20.0, 60.0, 1013.0,
                                                     0.0))
    m = Modem()
    creds = {"lorawan": {"dev_eui": "0" * 16, "app_eui": "0" * 16, "app_key": "0" * 32}}
    lorawan.send(m, board, cfg, d + "/config.json", creds, st, q, "deepsleep",
                 d + "/clock.json", board.ticks_ms())
    assert "send" not in m.calls and q.depth() == 1
    assert st["uplink"] == "radio time for this wake used up"


def test_the_board_charges_every_state_it_passes_through_to_its_ledger():
    from station.hw import sim

    board = sim.Board(sim.World())
    assert board.spent == {"boot": sim.BOOT_MS}
    board.sleep_ms(100)  # the CPU awake
    board.i2c(22, 21)  # the BME280 is wired to the switched rail
    board.drive(board.pins["sensor_power"], 1)
    board.sleep_ms(50)  # awake with the rail on: the BME280 asleep
    BME280(board.i2c(22, 21), clock=board).read()  # one forced measurement
    board.drive(board.pins["sensor_power"], 0)
    board.wifi().active(True)
    board.sleep_ms(200)  # Wi-Fi on
    board.wifi().active(False)
    try:
        board.deepsleep(60000)
    except sim.DeepSleep:
        pass
    # the BME280 sleeps while the rail is on, but for its one measurement's t_measure,max
    assert board.spent == {"boot": sim.BOOT_MS, "cpu": 150, "rail_bme280_sleep": 50,
                           "rail_bme280": 9.3, "wifi": 200, "deep_sleep": 60000}


def test_the_bme280_is_charged_per_forced_measurement_not_per_rail_second():
    from station.hw import sim_bme280

    # Bosch BST-BME280-DS002 section 9.1: t_measure,max; the datasheet's example (T x1,
    # P x4, no humidity: 11.5 ms typical) and the driver's x1/x1/x1
    assert sim_bme280.t_measure_us(0x00, 0b00101101) == 1250 + 2300 + 2300 * 4 + 575
    assert sim_bme280.t_measure_us(0x01, 0x25) == 9300
    board = sim.Board(sim.World())
    cfg, _ = config.merge(config.DEFAULTS, {"profile": "mlit"})
    st = state.defaults()
    cycle.run(board, cfg, config.pins(cfg), st, FlashQueue(tempdir()))  # a 20 s window
    assert board.spent["rail_bme280"] == 9.3  # the one forced measurement of the wake
    assert board.spent["rail_bme280_sleep"] >= 20000  # asleep through the window
    assert board.spent["rail_bme280_sleep"] == board.spent["rail_a02yyuw"]
    # the rail is off: the part is unpowered, nothing measured
    assert raises(SensorFault, BME280, board.i2c(22, 21), 0x76, board).flag == \
        codec.SENSOR_MISSING
    assert board.spent["rail_bme280"] == 9.3


def test_a_fitted_part_draws_from_the_moment_the_rail_comes_on():
    # The board learns a part is fitted when the firmware first reaches it; it drew since
    # the rail came on all the same: its warm-up (which the firmware sleeps through) too.
    for sensor, part in (("a02yyuw", "a02yyuw"), ("current_loop", "current_loop"),
                         ("jsnsr04t", "jsnsr04t")):
        board = sim.Board(sim.World())
        cfg, _ = config.merge(config.DEFAULTS, {"level_sensor": sensor, "env_sensor": False})
        cycle.run(board, cfg, config.pins(cfg), state.defaults(), FlashQueue(tempdir()))
        rail = board.spent["rail_" + part]
        assert rail >= sim.WARMUP_MS[part], (sensor, board.spent)
        # the warm-up in light sleep: the CPU is not charged for it
        assert board.spent.get("light_sleep", 0) >= sim.WARMUP_MS[part], board.spent
        # it drew for as long as the rail was on: everything since the boot but the boot
        awake = sum(v for k, v in board.spent.items() if k in ("cpu", "light_sleep"))
        assert rail <= awake, (sensor, board.spent)


def test_light_sleep_loses_what_the_uarts_receive_and_is_charged_as_such():
    from station.hw import sim

    board = sim.Board(sim.World())
    u = board.uart(board.pins["ultrasonic_uart"], 9600, 17, 16)
    board.drive(board.pins["sensor_power"], 1)
    board.sleep_ms(1000)  # warmed up: frames every 100 ms
    assert u.any()
    board.lightsleep(500)  # the UART's clock is gated: what came meanwhile is gone
    assert u.any() == 0 and board.spent["light_sleep"] == 500
    board.sleep_ms(300)
    assert u.any()  # awake again, it hears the sensor
    board.drive(board.pins["sensor_power"], 0)


def test_uarts_read_none_when_empty_and_keep_only_what_their_buffer_holds():
    """As machine.UART on the ESP32 (sim.UART_RXBUF): read() is None with nothing waiting,
    and bytes that arrive while the 256-byte receive buffer is full are lost, the oldest
    kept."""
    from station.hw.rak3172_sim import Rak3172Sim

    board = sim.Board(sim.World())
    u = board.uart(board.pins["ultrasonic_uart"], 9600, 17, 16)
    assert u.read() is None  # the rail is off: nothing on the line
    board.drive(board.pins["sensor_power"], 1)
    board.sleep_ms(400)  # warmed up: its first frames
    first = u.read(4)
    board.sleep_ms(30000)  # 300 frames of 4 bytes, nobody reading
    assert u.any() == sim.UART_RXBUF
    board.drive(board.pins["sensor_power"], 0)

    module = Rak3172Sim(None, lambda: 0)
    assert module.read() is None
    for _ in range(50):  # 50 replies of 6 bytes ("\r\nOK\r\n"), nobody reading
        module.write(b"AT\r\n")
    held = module.read()
    assert len(held) == sim.UART_RXBUF and held.startswith(b"\r\nOK\r\n")
    assert module.read() is None and len(first) == 4


def test_a_tip_in_light_sleep_is_lost_to_the_irq_and_wakes_the_board_with_ext0_armed():
    """A GPIO IRQ does not fire while the GPIO block is clock-gated; ext0 armed on the rain
    pin wakes the board at the tip, and leaves its pad on the RTC IO mux (reading 0, no
    IRQ) until a mode-setting Pin init. Arming it under a live IRQ is a false edge."""
    board = sim.Board(sim.World())
    rain = board.pins["rain"]
    seen = []
    board.pin_in(rain, pull_up=True).irq(handler=seen.append, trigger=board.IRQ_FALLING)
    board.world.awake_tips_ms = [100, 700, 1500]
    board.sleep_ms(200)
    assert len(seen) == 1  # awake: the IRQ ran
    assert board.lightsleep(600) is False and len(seen) == 1  # the tip at 700: lost
    assert board.lightsleep(5000, rain) is True and board.ms == 1500  # woke at the tip
    assert board.spent["light_sleep"] == 600 + 700
    assert len(seen) == 2  # the IRQ was left on: the pad's move to the RTC mux, no tip
    board.world.awake_tips_ms = [1700]
    board.sleep_ms(300)
    assert len(seen) == 2 and board.pin_in(rain).value() == 1  # the RTC's pad: no IRQ
    rtc = sim.SimPin(board, rain)
    board.lightsleep(10, rain)
    assert rtc.value() == 0  # its digital side reads 0 (esp-idf issue 245)
    board.pin_in(rain, pull_up=True).irq(handler=seen.append, trigger=board.IRQ_FALLING)
    board.world.awake_tips_ms = [2100]
    board.sleep_ms(300)
    assert len(seen) == 3
    board.world.reed_closed_ms = board.ms + 100  # a closed reed: ext0 wakes at once
    assert board.lightsleep(1000, rain) is True and board.spent["light_sleep"] == 1310
