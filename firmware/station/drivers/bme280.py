# Bosch BME280 temperature / pressure / humidity sensor over I2C, in forced mode.
# Compensation uses the datasheet's integer formulas (BST-BME280-DS002, section 4.2.3):
# 32-bit temperature and humidity, 64-bit pressure. Python integers do not overflow, and the
# formulas only shift (floor, like C's arithmetic shift on the targets) and divide positive
# numbers, so the results are bit-exact with the C reference.
import struct
import time

from station import codec
from station.drivers import SensorFault

CHIP_ID = 0x60
REG_ID = 0xD0
REG_CALIB_TP = 0x88  # 26 bytes: T1..T3, P1..P9, (0xA0 unused), H1
REG_CALIB_H = 0xE1  # 7 bytes: H2..H6
REG_CTRL_HUM = 0xF2
REG_STATUS = 0xF3
REG_CTRL_MEAS = 0xF4
REG_DATA = 0xF7  # 8 bytes: press[3], temp[3], hum[2]
SKIPPED_T = 0x80000  # value of a temperature channel that was not measured


class Calibration:
    def __init__(self, tp, h):
        (self.T1, self.T2, self.T3, self.P1, self.P2, self.P3, self.P4, self.P5,
         self.P6, self.P7, self.P8, self.P9) = struct.unpack("<HhhHhhhhhhhh", tp[:24])
        self.H1 = tp[25]
        self.H2 = struct.unpack("<h", h[0:2])[0]
        self.H3 = h[2]
        e4 = h[3] - 256 if h[3] > 127 else h[3]
        e6 = h[5] - 256 if h[5] > 127 else h[5]
        self.H4 = (e4 << 4) | (h[4] & 0x0F)
        self.H5 = (e6 << 4) | (h[4] >> 4)
        self.H6 = h[6] - 256 if h[6] > 127 else h[6]


def compensate_t(c, adc_t):
    """(t_fine, temperature in 0.01 C)."""
    var1 = (((adc_t >> 3) - (c.T1 << 1)) * c.T2) >> 11
    d = (adc_t >> 4) - c.T1
    var2 = (((d * d) >> 12) * c.T3) >> 14
    t_fine = var1 + var2
    return t_fine, (t_fine * 5 + 128) >> 8


def compensate_p(c, adc_p, t_fine):
    """Pressure in Pa as Q24.8 (divide by 256), or 0 when the calibration is unusable."""
    var1 = t_fine - 128000
    var2 = var1 * var1 * c.P6
    var2 = var2 + ((var1 * c.P5) << 17)
    var2 = var2 + (c.P4 << 35)
    var1 = ((var1 * var1 * c.P3) >> 8) + ((var1 * c.P2) << 12)
    var1 = (((1 << 47) + var1) * c.P1) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    num = ((p << 31) - var2) * 3125
    # C divides truncating toward zero; Python's // floors. Keep C's rule.
    p = num // var1 if (num >= 0) == (var1 > 0) else -((-num) // var1)
    var1 = (c.P9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (c.P8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (c.P7 << 4)


def compensate_h(c, adc_h, t_fine):
    """Relative humidity as Q22.10 (divide by 1024)."""
    v = t_fine - 76800
    v = ((((adc_h << 14) - (c.H4 << 20) - (c.H5 * v)) + 16384) >> 15) * (
        ((((((v * c.H6) >> 10) * (((v * c.H3) >> 11) + 32768)) >> 10) + 2097152) * c.H2
         + 8192) >> 14)
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * c.H1) >> 4)
    v = 0 if v < 0 else 419430400 if v > 419430400 else v
    return v >> 12


class BME280:
    def __init__(self, i2c, addr=0x76, clock=time):
        self.i2c = i2c
        self.addr = addr
        self.clock = clock
        try:
            chip = i2c.readfrom_mem(addr, REG_ID, 1)[0]
            if chip != CHIP_ID:
                raise SensorFault(codec.SENSOR_MISSING, "chip id 0x%02x" % chip)
            self.cal = Calibration(i2c.readfrom_mem(addr, REG_CALIB_TP, 26),
                                   i2c.readfrom_mem(addr, REG_CALIB_H, 7))
        except OSError:
            raise SensorFault(codec.SENSOR_MISSING, "no answer at 0x%02x" % addr)

    def read(self):
        """(temperature C, humidity %, pressure hPa) from one forced measurement."""
        i2c = self.i2c
        try:
            i2c.writeto_mem(self.addr, REG_CTRL_HUM, b"\x01")  # humidity x1
            i2c.writeto_mem(self.addr, REG_CTRL_MEAS, b"\x25")  # T x1, P x1, forced
            for _ in range(20):  # ~10 ms typical at x1 oversampling
                if not i2c.readfrom_mem(self.addr, REG_STATUS, 1)[0] & 0x08:
                    break
                self.clock.sleep_ms(2)
            d = i2c.readfrom_mem(self.addr, REG_DATA, 8)
        except OSError:
            raise SensorFault(codec.SENSOR_MISSING, "I2C error")
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        if adc_t == SKIPPED_T:
            raise SensorFault(codec.SENSOR_MISSING, "measurement skipped")
        t_fine, t = compensate_t(self.cal, adc_t)
        p = compensate_p(self.cal, adc_p, t_fine)
        h = compensate_h(self.cal, adc_h, t_fine)
        return t / 100, h / 1024, p / 25600
