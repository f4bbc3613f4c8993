from station import codec
from station.drivers import SensorFault, bme280
from station.drivers.a02yyuw import A02YYUW, FrameParser
from station.drivers.battery import Battery
from station.drivers.current_loop import CurrentLoop, span_from_point
from station.drivers.jsnsr04t import JSNSR04T
from station.drivers.rain import RainGauge
from station.hw import sim, sim_bme280
from support import raises


def frame(mm):
    hi, lo = mm >> 8, mm & 0xFF
    return bytes([0xFF, hi, lo, (0xFF + hi + lo) & 0xFF])


class FakeUART:
    """Serves a script of chunks, one per read; an empty chunk is a poll with nothing yet."""

    def __init__(self, chunks):
        self.chunks = list(chunks)

    def any(self):
        if self.chunks and not self.chunks[0]:
            self.chunks.pop(0)
            return 0
        return len(self.chunks[0]) if self.chunks else 0

    def read(self, n=None):
        return self.chunks.pop(0) if self.chunks else b""


# -- A02YYUW ------------------------------------------------------------------------------

def test_a02yyuw_parser_reads_frames_split_across_reads():
    p = FrameParser()
    data = frame(1234) + frame(4500)
    assert p.feed(data[:3]) == []
    assert p.feed(data[3:6]) == [1234]
    assert p.feed(data[6:]) == [4500]


def test_a02yyuw_parser_resyncs_on_garbage_and_bad_checksums():
    p = FrameParser()
    bad = bytes([0xFF, 0x04, 0xD2, 0x00])  # wrong checksum
    got = p.feed(b"\x12\xff\x00" + bad + frame(987) + b"\xff\xff" + frame(2000))
    assert got == [987, 2000]
    assert p.bad_bytes == 3 + 4 + 2


def test_a02yyuw_driver_takes_the_freshest_frame():
    # the first chunk is stale and flushed; then a frame arrives
    s = A02YYUW(FakeUART([frame(100), frame(1500) + frame(1501)]), timeout_ms=50)
    assert s.read_mm() == 1501


def test_a02yyuw_faults():
    e = raises(SensorFault, A02YYUW(FakeUART([]), timeout_ms=30).read_mm)
    assert e.flag == codec.SENSOR_MISSING
    e = raises(SensorFault, A02YYUW(FakeUART([b"", b"\x01\x02\x03\x04\x05"]),
                                    timeout_ms=30).read_mm)
    assert e.flag == codec.SENSOR_MISSING and "garbage" in str(e)
    e = raises(SensorFault, A02YYUW(FakeUART([b"", frame(0)]), timeout_ms=30).read_mm)
    assert e.flag == codec.NO_ECHO
    e = raises(SensorFault, A02YYUW(FakeUART([b"", frame(20)]), timeout_ms=30).read_mm)
    assert e.flag == codec.OUT_OF_RANGE


# -- JSN-SR04T ----------------------------------------------------------------------------

class FakePin:
    def __init__(self):
        self.history = []
        self.handler = None

    def value(self, v=None):
        if v is not None:
            self.history.append(v)

    def irq(self, handler=None, trigger=0):
        self.handler = handler


def test_jsnsr04t_converts_echo_time_and_sends_a_trigger_pulse():
    trig = FakePin()
    waits = []
    s = JSNSR04T(trig, FakePin(), lambda pin, level, timeout: 5828, waits.append)
    assert s.read_mm() == 1000  # 5828 us round trip at 343.2 m/s
    assert trig.history == [0, 1, 0] and 20 in waits


def test_jsnsr04t_faults():
    # machine.time_pulse_us: -2 the echo never rose (no module), -1 it never fell (no echo)
    # a pulse of 50 ms or more is the module's own no-echo hold (about 60 ms), not 8.6 m
    for t, flag in ((-2, codec.SENSOR_MISSING), (-1, codec.NO_ECHO), (600, codec.OUT_OF_RANGE),
                    (60000, codec.NO_ECHO), (40000, codec.OUT_OF_RANGE)):
        s = JSNSR04T(FakePin(), FakePin(), lambda pin, level, timeout, t=t: t, lambda us: None)
        assert raises(SensorFault, s.read_mm).flag == flag


# -- 4-20 mA pressure transducer ----------------------------------------------------------

class FakeADC:
    def __init__(self, uv):
        self.uv = uv

    def read_uv(self):
        return self.uv


def test_current_loop_depth_and_faults():
    s = CurrentLoop(FakeADC(12000 * 150), 150, zero_ua=4000, span_mm=5000)
    assert s.read_mm() == 2500  # half scale
    assert CurrentLoop(FakeADC(4000 * 150), 150).read_mm() == 0
    assert raises(SensorFault, CurrentLoop(FakeADC(100), 150).read_mm).flag == \
        codec.SENSOR_MISSING
    assert raises(SensorFault, CurrentLoop(FakeADC(22000 * 150), 150).read_mm).flag == \
        codec.OUT_OF_RANGE


def test_current_loop_two_point_calibration():
    # zero reads 4.05 mA in air; 1.000 m of water reads 7.25 mA
    span = span_from_point(4050, 7250, 1000)
    assert span == 5000
    s = CurrentLoop(FakeADC(7250 * 150), 150, zero_ua=4050, span_mm=span)
    assert s.read_mm() == 1000
    raises(ValueError, span_from_point, 4000, 3990, 100)


def test_battery_divider_uses_the_median():
    class NoisyADC:
        values = [1850000, 1850000, 9999999, 1851000, 1849000, 0, 1850000, 1850000]

        def read_uv(self):
            return self.values.pop()

    assert Battery(NoisyADC(), 2, 1).read_mv() == 3700


def test_rain_gauge_counts_debounced_tips():
    from station.hw import sim

    board = sim.Board(sim.World())
    g = RainGauge(board, board.pins["rain"], debounce_ms=50)
    board.world.awake_tips_ms = [100, 120, 400]  # 120: contact bounce within the debounce
    board.sleep_ms(1000)
    assert g.take() == 2
    assert g.take() == 0


# -- BME280 -------------------------------------------------------------------------------

def datasheet_cal():
    tp, h = sim_bme280.calibration_bytes()
    return bme280.Calibration(tp, h)


def test_bme280_temperature_and_pressure_match_the_datasheet_example():
    # Bosch BMP280 datasheet, compensation example (same T/P formulas as the BME280):
    # adc_T = 519888 -> 25.08 C (t_fine 128422); adc_P = 415148 -> 100653.27 Pa.
    # The datasheet prints 25767236 for the 64-bit code, but executing its published formula
    # gives 25767233 (0.01 Pa lower); other implementations report the same 3-LSB gap.
    c = datasheet_cal()
    t_fine, t = bme280.compensate_t(c, 519888)
    assert t_fine == 128422 and t == 2508
    p = bme280.compensate_p(c, 415148, t_fine)
    assert p == 25767233
    assert abs(p / 256 - 100653.27) < 0.05


def test_bme280_calibration_unpacks_the_split_humidity_nibbles():
    c = datasheet_cal()
    assert (c.H1, c.H2, c.H3, c.H4, c.H5, c.H6) == sim_bme280.HUMIDITY_CAL
    neg = bme280.Calibration(bytes(26), bytes([0, 0, 0, 0xF0, 0x3F, 0xFF, 0xF6]))
    assert neg.H4 == -256 + 0xF and neg.H5 == -16 + 3 and neg.H6 == -10


def float_humidity(c, adc_h, t_fine):
    # The datasheet's double-precision formula (section 8.1): an independent reference.
    v = t_fine - 76800.0
    v = (adc_h - (c.H4 * 64.0 + c.H5 / 16384.0 * v)) * (
        c.H2 / 65536.0 * (1.0 + c.H6 / 67108864.0 * v * (1.0 + c.H3 / 67108864.0 * v)))
    v = v * (1.0 - c.H1 * v / 524288.0)
    return max(0.0, min(100.0, v))


def test_bme280_integer_humidity_agrees_with_the_float_formula():
    c = datasheet_cal()
    for adc_t in (400000, 519888, 560000):
        t_fine = bme280.compensate_t(c, adc_t)[0]
        for adc_h in range(20000, 40000, 1500):
            got = bme280.compensate_h(c, adc_h, t_fine) / 1024
            want = float_humidity(c, adc_h, t_fine)
            assert abs(got - want) < 0.05, (adc_t, adc_h, got, want)


def test_bme280_driver_over_i2c_against_the_simulated_part():
    w = sim.World()
    w.air_temp_c, w.humidity_pct, w.pressure_hpa = -3.25, 81.0, 995.4
    t, h, p = bme280.BME280(sim_bme280.SimBME280I2C(w)).read()
    assert abs(t - -3.25) <= 0.011
    assert abs(h - 81.0) < 0.05
    assert abs(p - 995.4) < 0.02


def test_bme280_missing_or_wrong_chip():
    w = sim.World()
    w.faults.add("env_missing")
    bus = sim_bme280.SimBME280I2C(w)
    assert raises(SensorFault, bme280.BME280, bus).flag == codec.SENSOR_MISSING
    w.faults.clear()
    i2c = sim_bme280.SimBME280I2C(w)
    i2c.regs[bme280.REG_ID] = 0x58  # a BMP280: no humidity
    assert "0x58" in str(raises(SensorFault, bme280.BME280, i2c))
