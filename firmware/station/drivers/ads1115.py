# TI ADS1115 16-bit delta-sigma ADC on I2C, in single-shot mode (TI SBAS444D, "ADS111x
# Ultra-Small, Low-Power, I2C-Compatible, 860-SPS, 16-Bit ADCs"). It reads the 4-20 mA shunt
# for a pressure transducer (hardware/wiring.md): the ESP32's own ADC is good to +-60 mV
# after calibration, about +-125 mm on a 5 m span; this one to a few LSB of 125 uV.
# read_uv() is machine.ADC's, so station.drivers.current_loop takes either.
import time

from station import codec
from station.drivers import SensorFault

# ADDR pin to GND (datasheet 9.5.1.1, table 4: GND 0x48, VDD 0x49, SDA 0x4A, SCL 0x4B); the
# BME280 on the same bus is at 0x76.
ADDR_GND = 0x48
REG_CONVERSION = 0x00  # address pointer register (9.6.1): conversion, config, lo/hi thresh
REG_CONFIG = 0x01
# Config register (9.6.3): OS[15] writing 1 starts a single conversion, reading 0 means one
# is under way; MUX[14:12] 100..111 = AINx against GND; PGA[11:9]; MODE[8] 1 = single-shot
# (power-down after the conversion); DR[7:5]; COMP_QUE[1:0] 11 = comparator off.
OS = 0x8000
MODE_SINGLE = 0x0100
COMP_OFF = 0x0003
# Full-scale range of each PGA setting, uV (000 +-6.144 V ... 101, 110, 111 +-0.256 V). The
# inputs must stay within GND-0.3 V..VDD+0.3 V whatever the range (7.1, absolute maximum).
FSR_UV = (6144000, 4096000, 2048000, 1024000, 512000, 256000, 256000, 256000)
# Data rate of each DR setting, samples per second; a single-shot conversion takes 1/DR
# (9.4.2, "Single-Shot Mode").
SPS = (8, 16, 32, 64, 128, 250, 475, 860)
# +-4.096 V: the 100 ohm shunt gives 0.36-2.15 V for 3.6-21.5 mA (+-2.048 V would clip at
# 20.48 mA and hide a NAMUR NE 43 fault); one LSB is 125 uV = 1.25 uA = 0.39 mm of 5 m.
PGA_4V = 1
DR_128 = 4


class ADS1115:
    def __init__(self, i2c, addr=ADDR_GND, channel=0, pga=PGA_4V, dr=DR_128, clock=time):
        """clock: sleep_ms() (the board's: the sim counts its own time)."""
        self.i2c = i2c
        self.addr = addr
        self.clock = clock
        self.pga = pga
        self.dr = dr
        self.config = (OS | ((4 + channel) << 12) | (pga << 9) | MODE_SINGLE | (dr << 5)
                       | COMP_OFF)
        self.wait_ms = 1000 // SPS[dr] + 1

    def read_raw(self):
        """One single-shot conversion, a signed 16-bit code."""
        i2c, addr = self.i2c, self.addr
        try:
            i2c.writeto_mem(addr, REG_CONFIG, bytes([self.config >> 8, self.config & 0xFF]))
            self.clock.sleep_ms(self.wait_ms)
            for _ in range(10):  # OS reads 0 while the conversion is under way
                if i2c.readfrom_mem(addr, REG_CONFIG, 2)[0] & 0x80:
                    break
                self.clock.sleep_ms(1)
            else:
                raise SensorFault(codec.SENSOR_MISSING, "ADS1115 conversion never ended")
            d = i2c.readfrom_mem(addr, REG_CONVERSION, 2)
        except OSError:
            raise SensorFault(codec.SENSOR_MISSING, "ADS1115: no answer at 0x%02x" % addr)
        raw = (d[0] << 8) | d[1]
        return raw - 0x10000 if raw & 0x8000 else raw

    def read_uv(self):
        return self.read_raw() * FSR_UV[self.pga] // 32768
