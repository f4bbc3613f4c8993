# The sim board's BME280 on the I2C bus (hw/sim.py imports this module when the firmware
# first addresses the part): registers, calibration and measurements from the World's air.
# The firmware's driver gives the register map and the compensation this model inverts; it
# is imported where it is used, so that this model does not keep it in the heap after the
# firmware has let it go (docs/firmware.md, RAM budget).
import struct

from station.hw.sim import _always

# Calibration of the Bosch BMP280 datasheet's worked example (T and P), with humidity
# coefficients typical of a real BME280.
CALIBRATION = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
HUMIDITY_CAL = (75, 362, 0, 313, 50, 30)  # H1..H6


def calibration_bytes():
    h1, h2, h3, h4, h5, h6 = HUMIDITY_CAL
    tp = struct.pack("<HhhHhhhhhhhh", *CALIBRATION) + bytes([0, h1])
    h = struct.pack("<hB", h2, h3) + bytes([
        (h4 >> 4) & 0xFF, (h4 & 0x0F) | ((h5 & 0x0F) << 4), (h5 >> 4) & 0xFF, h6 & 0xFF])
    return tp, h


def _search(f, target, bits, rising):
    """The raw value whose compensated output f(raw) is nearest target (f monotonic)."""
    lo, hi = 0, (1 << bits) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if (f(mid) < target) == rising:
            lo = mid + 1
        else:
            hi = mid
    return lo


class SimBME280I2C:
    """A BME280 at 0x76 with registers, as the driver sees it over I2C."""

    def __init__(self, world, addr=0x76, powered=_always):
        self.world = world
        self.addr = addr
        self.powered = powered
        from station.drivers import bme280

        tp, h = calibration_bytes()
        self.regs = bytearray(256)
        self.regs[bme280.REG_ID] = bme280.CHIP_ID
        self.regs[bme280.REG_CALIB_TP:bme280.REG_CALIB_TP + 26] = tp
        self.regs[bme280.REG_CALIB_H:bme280.REG_CALIB_H + 7] = h
        self.cal = bme280.Calibration(tp, h)

    def _check(self, addr):
        if addr != self.addr or "env_missing" in self.world.faults or not self.powered():
            raise OSError(19)  # ENODEV, what machine.I2C raises on a NAK

    def scan(self):
        return [] if "env_missing" in self.world.faults or not self.powered() else [self.addr]

    def writeto_mem(self, addr, reg, data):
        self._check(addr)
        from station.drivers import bme280

        if reg == bme280.REG_CTRL_MEAS and data[0] & 0x03:
            self._measure()

    def readfrom_mem(self, addr, reg, n):
        self._check(addr)
        return bytes(self.regs[reg:reg + n])

    def _measure(self):
        from station.drivers import bme280

        w, c = self.world, self.cal
        adc_t = _search(lambda r: bme280.compensate_t(c, r)[1],
                        int(w.air_temp_c * 100), 20, True)
        t_fine = bme280.compensate_t(c, adc_t)[0]
        adc_p = _search(lambda r: -bme280.compensate_p(c, r, t_fine),
                        -int(w.pressure_hpa * 25600), 20, True)
        adc_h = _search(lambda r: bme280.compensate_h(c, r, t_fine),
                        int(w.humidity_pct * 1024), 16, True)
        self.regs[bme280.REG_DATA:bme280.REG_DATA + 8] = bytes([
            adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4,
            adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4,
            adc_h >> 8, adc_h & 0xFF])

