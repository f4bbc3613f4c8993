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


# Oversampling settings (osrs_h in ctrl_hum, osrs_t and osrs_p in ctrl_meas) -> samples;
# 0: skipped (BST-BME280-DS002, sections 5.4.3 and 5.4.5).
OVERSAMPLING = (0, 1, 2, 4, 8, 16, 16, 16)


def t_measure_us(ctrl_hum, ctrl_meas):
    """A forced measurement's maximum time, us (BST-BME280-DS002, section 9.1, appendix B:
    t_measure,max = 1.25 + [2.3 * osrs_t] + [2.3 * osrs_p + 0.575] + [2.3 * osrs_h + 0.575]
    ms, a bracket only for a measurement that is not skipped)."""
    t = OVERSAMPLING[ctrl_meas >> 5]
    p = OVERSAMPLING[(ctrl_meas >> 2) & 0x07]
    h = OVERSAMPLING[ctrl_hum & 0x07]
    us = 1250 + 2300 * t
    if p:
        us += 2300 * p + 575
    if h:
        us += 2300 * h + 575
    return us


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
    """A BME280 at 0x76 with registers, as the driver sees it over I2C. board: the sim board
    whose energy ledger each forced measurement is charged to (hw/sim.py Board.spent)."""

    def __init__(self, world, addr=0x76, powered=_always, board=None):
        self.world = world
        self.addr = addr
        self.powered = powered
        self.board = board
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

        if reg in (bme280.REG_CTRL_HUM, bme280.REG_CTRL_MEAS):
            self.regs[reg] = data[0]
        mode = data[0] & 0x03
        if reg != bme280.REG_CTRL_MEAS or not mode:
            return
        self._measure()
        if mode == 0x03:
            return  # normal mode: not modelled beyond a first measurement (the driver forces)
        # Forced mode: one measurement, then back to sleep (mode 00; section 3.3.3).
        self.regs[reg] = data[0] & 0xFC
        if self.board is not None:
            # Energy: the measurement current for t_measure (ctrl_hum takes effect at this
            # write, section 5.4.3); the rest of the time the rail is on the part sleeps
            # (hw/sim.py charges rail_bme280_sleep). BST-BME280-DS002 table 1: 714 uA during
            # the pressure measurement, the largest of the three (humidity 340 uA,
            # temperature 350 uA), charged for the whole of t_measure,max (section 9.1): an
            # upper bound.
            self.board._spend("rail_bme280", t_measure_us(self.regs[bme280.REG_CTRL_HUM],
                                                          data[0]) / 1000)

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

