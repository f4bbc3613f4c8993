# The sim board's 4-20 mA loop (hw/sim.py imports this module when the firmware opens the
# loop's ADC or addresses the ADS1115): the transmitter's current through the shunt, and
# the two converters that can read it, the ESP32's ADC and an ADS1115 on the I2C bus.
from station.drivers.current_loop import FULL_SCALE_UA

# TI ADS1115 (SBAS444D), at ADS1115_ADDR (hw/sim.py): config register OS/MUX/PGA/MODE/DR
# (9.6.3); full-scale range per PGA setting; a single-shot conversion takes 1/DR and OS reads
# 0 until it ends, the conversion register keeping the previous result meanwhile (9.4.2); a
# 16-bit two's-complement code that saturates at 0x7FFF/0x8000 beyond the full scale (9.5.4).
# Each code carries the chip's fixed gain and offset error (World.ads1115_error: sim.py
# ADS1115_GAIN_ERROR_PPM, ADS1115_OFFSET_LSB).
ADS1115_FSR_UV = (6144000, 4096000, 2048000, 1024000, 512000, 256000, 256000, 256000)
ADS1115_SPS = (8, 16, 32, 64, 128, 250, 475, 860)


def shunt_uv(board):
    """The voltage across the loop's shunt, uV."""
    w = board.world
    if "missing" in w.faults or not board.powered("current_loop"):
        return 0
    if w.loop_ua is not None:
        ua = w.loop_ua
    else:
        depth = w.level_mm - w.sensor_offset_mm
        ua = 4000 + depth * FULL_SCALE_UA // w.loop_span_mm + w.rand(9) - 4
    return ua * w.loop_shunt_ohm


def esp32_adc_uv(board):
    """One conversion of the ESP32's ADC on the shunt before the chip's fixed error (SimADC
    adds it): the shunt's voltage and the conversion's noise (sim.ADC_NOISE_UV)."""
    w = board.world
    noise = w.loop_adc_noise_uv
    uv = shunt_uv(board)
    return uv + w.rand(2 * noise + 1) - noise if noise and uv else uv


class SimADS1115:
    """An ADS1115 with ADDR to GND, AIN0 on the loop's shunt (against GND), powered from the
    switched rail: single-shot conversions in the board's time (see the rules at the top).
    Continuous mode is not modelled (the firmware does not use it)."""

    def __init__(self, board):
        self.board = board
        self.config = 0x8583  # the power-on default (9.6.3)
        self.result = 0
        self.pending = None
        self.done_us = 0
        self.conversions = 0

    def powered(self):
        return self.board.rail_on() and "ads_missing" not in self.board.world.faults

    def _now_us(self):
        return self.board.ms * 1000

    def _settle(self):
        if self.pending is not None and self._now_us() >= self.done_us:
            self.result, self.pending = self.pending, None

    def write(self, reg, data):
        if reg == 1:
            cfg = (data[0] << 8) | data[1]
            if not cfg & 0x0100:
                raise NotImplementedError("ADS1115 continuous mode is not modelled")
            self.config = cfg & 0x7FFF
            if cfg & 0x8000:  # OS: start a single-shot conversion
                mux = (cfg >> 12) & 7
                fsr = ADS1115_FSR_UV[(cfg >> 9) & 7]
                uv = shunt_uv(self.board) if mux == 4 else 0  # only AIN0 is wired
                gain_ppm, offset = self.board.world.ads1115_error
                code = (uv * (1000000 + gain_ppm) // 1000000 * 32768) // fsr + offset
                self.pending = max(-32768, min(32767, code))
                self.done_us = self._now_us() + (1000000 + ADS1115_SPS[(cfg >> 5) & 7] - 1) \
                    // ADS1115_SPS[(cfg >> 5) & 7]
                self.conversions += 1

    def read(self, reg, n):
        self._settle()
        if reg == 1:
            v = self.config | (0 if self.pending is not None else 0x8000)
        elif reg == 0:
            v = self.result & 0xFFFF
        else:
            v = 0
        return bytes([v >> 8, v & 0xFF])[:n]
