# Submersible pressure transducer on a 4-20 mA loop, read as the voltage across a shunt,
# through the ESP32's ADC ("internal") or an ADS1115 ("ads1115", the recommended path:
# drivers/ads1115.py). Depth = (I - zero) * span / 16 mA; zero and span come from a
# two-point calibration. Each reading averages several conversions: the internal ADC's are
# noisy (ESP-IDF ADC docs, "Minimizing Noise": multisampling), the ADS1115's much less so.
# NAMUR NE 43: a measurement lies in 3.8-20.5 mA; under 3.6 mA means a broken loop (or a
# transmitter signalling a fault low), above 20.5 mA a transmitter past its range or
# signalling a fault high (>= 21 mA): neither is a level.
from station import codec
from station.drivers import SensorFault

FULL_SCALE_UA = 16000
MIN_UA = 3600
MAX_UA = 20500
SAMPLES = {"internal": 64, "ads1115": 4}  # conversions averaged per reading


def span_from_point(zero_ua, ua, depth_mm):
    """Span (mm per 16 mA) from the zero current and one reading at a known depth."""
    if ua <= zero_ua:
        raise ValueError("reference current must exceed the zero current")
    return depth_mm * FULL_SCALE_UA // (ua - zero_ua)


class CurrentLoop:
    def __init__(self, adc, shunt_ohm, zero_ua=4000, span_mm=5000, samples=1):
        self.adc = adc
        self.shunt_ohm = shunt_ohm
        self.zero_ua = zero_ua
        self.span_mm = span_mm
        self.samples = samples

    def read_ua(self):
        n = self.samples
        total = 0
        for _ in range(n):
            total += self.adc.read_uv()
        return (total + n // 2) // n // self.shunt_ohm

    def read_mm(self):
        """Water depth above the transducer, mm."""
        ua = self.read_ua()
        if ua < MIN_UA:
            raise SensorFault(codec.SENSOR_MISSING, "loop open (%d uA)" % ua)
        if ua > MAX_UA:
            raise SensorFault(codec.OUT_OF_RANGE, "loop over range (%d uA, NAMUR NE 43)" % ua)
        return (ua - self.zero_ua) * self.span_mm // FULL_SCALE_UA
