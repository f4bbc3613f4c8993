# The 4-20 mA path (issue 20 item 3): an ADS1115 on the I2C bus as the sim models it from TI's
# datasheet (SBAS444D), the internal ADC averaged over many conversions, and NAMUR NE 43
# limits through the fault flags.
from station import codec, config, sensors
from station.drivers import SensorFault
from station.drivers.ads1115 import ADS1115
from station.hw import sim
from station.pins import PINS
from support import raises


def powered_board(**world):
    w = sim.World()
    for k, v in world.items():
        setattr(w, k, v)
    board = sim.Board(w)
    board.pin_out(PINS["sensor_power"], 1)
    board.sleep_ms(500)  # the loop's warm-up
    return board


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
    assert abs(code - 1200000 * 32768 // 4096000) <= 3  # 1.2 V at 125 uV per LSB
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
    assert abs(adc.read_uv() - 1200000) <= 1000  # 12 mA on 100 ohm, to ~1 uA
    assert board.ms - before >= 8  # it waited the 128 SPS conversion out
    board.world.faults.add("ads_missing")
    assert raises(SensorFault, adc.read_uv).flag == codec.SENSOR_MISSING


def test_a_pressure_transducer_on_the_ads1115_reads_to_the_millimetre():
    board = powered_board(level_mm=2345)
    s = loop(board, "ads1115")
    for _ in range(10):
        assert abs(s.read_mm() - 2345) <= 2
    assert board.ads1115.conversions == 10 * 4


def test_the_internal_adc_averages_many_conversions_per_reading():
    board = powered_board(level_mm=2345)
    s = loop(board, "internal")
    worst = max(abs(s.read_mm() - 2345) for _ in range(20))
    assert worst <= 10, worst
    one = max(abs(loop(board, "internal").adc.read_uv() // 100 - 11504) for _ in range(20))
    assert one > 30  # one conversion alone scatters by tens of uA (tens of mm)


def test_readings_outside_namur_ne43_are_faults_not_levels():
    for converter in ("internal", "ads1115"):
        board = powered_board(loop_ua=20700)  # above 20.5 mA: the transmitter past its range
        s = loop(board, converter)
        assert raises(SensorFault, s.read_mm).flag == codec.OUT_OF_RANGE, converter
        board.world.loop_ua = 20300
        assert abs(s.read_mm() - 5093) <= 10, converter
        board.world.loop_ua = 3500  # under 3.6 mA: a broken loop
        assert raises(SensorFault, s.read_mm).flag == codec.SENSOR_MISSING, converter
