# The 4-20 mA path (issue 20 item 3): an ADS1115 on the I2C bus as the sim models it from TI's
# datasheet (SBAS444D), the internal ADC averaged over many conversions, and NAMUR NE 43
# limits through the fault flags.
from station import codec, config, sensors
from station.drivers import SensorFault
from station.drivers.ads1115 import ADS1115
from station.hw import sim
from station.pins import PINS
from support import raises


def powered_board(seed=1, **world):
    w = sim.World(seed)
    for k, v in world.items():
        setattr(w, k, v)
    board = sim.Board(w)
    board.pin_out(PINS["sensor_power"], 1)
    board.sleep_ms(500)  # the loop's warm-up
    return board


def ua_to_mm(ua):
    return ua * 5000 // 16000  # the default 5 m span over 16 mA


# The worst level error the datasheets allow on each path, mm, before the loop's own +-4 uA
# (sim_loop.shunt_uv) and rounding: the ESP32's +-60 mV total over the 100 ohm shunt (187 mm:
# bench/uncertainty.py's "adc_esp32"); the ADS1115's gain error of the reading and its offset
# in 125 uV LSBs (sim.ADS1115_GAIN_ERROR_PPM, ADS1115_OFFSET_LSB).
ESP32_BOUND_MM = ua_to_mm(sim.ADC_ERROR_UV // 100)


def ads1115_bound_mm(ua):
    return ua_to_mm(ua * sim.ADS1115_GAIN_ERROR_PPM // 1000000
                    + sim.ADS1115_OFFSET_LSB * 125 // 100) + 1


def loop(board, converter):
    cfg, errors = config.merge(config.DEFAULTS, {"level_sensor": "current_loop",
                                                 "loop_converter": converter})
    assert errors == []
    kind, s = sensors.level_sensor(board, cfg, config.pins(cfg))
    assert kind == "depth"
    return s


def test_the_ads1115_answers_at_its_address_with_its_datasheet_registers():
    board = powered_board(loop_ua=12000)
    bus = board.i2c(PINS["i2c_scl"], PINS["i2c_sda"])
    assert bus.scan() == [0x48, 0x76]  # ADDR to GND; the BME280 beside it
    raises(OSError, bus.readfrom_mem, 0x49, 1, 2)  # nobody at ADDR=VDD's address
    assert bus.readfrom_mem(0x48, 1, 2) == b"\x85\x83"  # config's power-on default
    # single-shot, AIN0-GND, +-4.096 V, 128 SPS: 1/128 s = 7.8 ms per conversion
    bus.writeto_mem(0x48, 1, bytes([0xC3, 0x83]))
    assert not bus.readfrom_mem(0x48, 1, 2)[0] & 0x80  # OS 0: under way
    assert bus.readfrom_mem(0x48, 0, 2) == b"\x00\x00"  # the previous result meanwhile
    board.sleep_ms(7)
    assert not bus.readfrom_mem(0x48, 1, 2)[0] & 0x80
    board.sleep_ms(1)
    assert bus.readfrom_mem(0x48, 1, 2)[0] & 0x80
    code = int.from_bytes(bus.readfrom_mem(0x48, 0, 2), "big")
    ideal = 1200000 * 32768 // 4096000  # 1.2 V at 125 uV per LSB
    gain_ppm, offset = board.world.ads1115_error
    assert code == (1200000 + 1200000 * gain_ppm // 1000000) * 32768 // 4096000 + offset
    assert abs(code - ideal) <= ideal * sim.ADS1115_GAIN_ERROR_PPM // 1000000 + 3 + 1
    # +-2.048 V saturates at 20.48 mA on 100 ohm: 2.1 V reads 0x7FFF (why the driver uses 4 V)
    board.world.loop_ua = 21000
    bus.writeto_mem(0x48, 1, bytes([0xC5, 0x83]))
    board.sleep_ms(8)
    assert bus.readfrom_mem(0x48, 0, 2) == b"\x7f\xff"
    # 8 SPS takes 125 ms
    bus.writeto_mem(0x48, 1, bytes([0xC3, 0x03]))
    board.sleep_ms(124)
    assert not bus.readfrom_mem(0x48, 1, 2)[0] & 0x80
    board.sleep_ms(1)
    assert bus.readfrom_mem(0x48, 1, 2)[0] & 0x80


def test_the_ads1115_driver_waits_for_its_conversion():
    board = powered_board(loop_ua=12000)
    adc = ADS1115(board.i2c(PINS["i2c_scl"], PINS["i2c_sda"]), clock=board)
    before = board.ms
    board.world.ads1115_error = (0, 0)  # this test is the wait, not the chip's accuracy
    assert abs(adc.read_uv() - 1200000) <= 1000  # 12 mA on 100 ohm, to ~1 uA
    assert board.ms - before >= 8  # it waited the 128 SPS conversion out
    board.world.faults.add("ads_missing")
    assert raises(SensorFault, adc.read_uv).flag == codec.SENSOR_MISSING


def test_a_pressure_transducer_on_the_ads1115_reads_within_its_datasheet_error():
    bound = ads1115_bound_mm(11504)  # 2345 mm is 11.5 mA: 10 mm at the 0.25 % max gain error
    worst = 0
    for seed in range(1, 21):  # twenty boards, each ADS1115 with its own fixed error
        board = powered_board(seed, level_mm=2345)
        s = loop(board, "ads1115")
        errors = [s.read_mm() - 2345 for _ in range(5)]
        assert max(abs(e) for e in errors) <= bound, (seed, errors)
        worst = max(worst, max(abs(e) for e in errors))
        assert board.ads1115.conversions == 5 * 4
    assert worst > 2, worst  # the chip's gain error shows: it is not a perfect converter
    board = powered_board(level_mm=2345)
    board.world.ads1115_error = (0, 0)  # a chip at its typical 0.01 %: the loop's noise only
    s = loop(board, "ads1115")
    assert max(abs(s.read_mm() - 2345) for _ in range(10)) <= 2


def test_the_internal_adc_averages_its_noise_away_but_not_the_chips_error():
    board = powered_board(level_mm=2345)
    s = loop(board, "internal")
    readings = [s.read_mm() for _ in range(20)]
    assert max(readings) - min(readings) <= 15, readings  # 64 conversions: the noise averaged
    one = [loop(board, "internal").adc.read_uv() // 100 for _ in range(20)]
    assert max(one) - min(one) > 60  # one conversion alone scatters by tens of uA
    # what stays is this chip's fixed error at the shunt's 1.15 V (sim.SimADC)
    lo, hi = board.world.adc_error_uv
    fixed_uv = lo + (hi - lo) * (1150400 - sim.ADC_MIN_UV) // (sim.ADC_MAX_UV - sim.ADC_MIN_UV)
    mean_error = sum(readings) // len(readings) - 2345
    assert abs(mean_error - ua_to_mm(fixed_uv // 100)) <= 3, (mean_error, fixed_uv)
    # over twenty boards the error is of the order the budget says, and no more
    errors = []
    for seed in range(1, 21):
        errors.append(loop(powered_board(seed, level_mm=2345), "internal").read_mm() - 2345)
    assert max(abs(e) for e in errors) <= ESP32_BOUND_MM, errors
    assert max(abs(e) for e in errors) > 100, errors  # averaging does not remove it


def test_readings_outside_namur_ne43_are_faults_not_levels():
    for converter in ("internal", "ads1115"):
        board = powered_board(loop_ua=20700)  # above 20.5 mA: the transmitter past its range
        s = loop(board, converter)
        assert raises(SensorFault, s.read_mm).flag == codec.OUT_OF_RANGE, converter
        board.world.loop_ua = 20300
        bound = ESP32_BOUND_MM if converter == "internal" else ads1115_bound_mm(20300)
        assert abs(s.read_mm() - 5093) <= bound + 3, converter  # + the averaged noise
        board.world.loop_ua = 3500  # under 3.6 mA: a broken loop
        assert raises(SensorFault, s.read_mm).flag == codec.SENSOR_MISSING, converter
