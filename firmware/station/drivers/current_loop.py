# Submersible pressure transducer on a 4-20 mA loop, read as the voltage across a shunt.
# Depth = (I - zero) * span / 16 mA; zero and span come from a two-point calibration.
# NAMUR NE 43: under 3.6 mA means a broken loop, over 21 mA a failed transmitter.
from station import codec
from station.drivers import SensorFault

FULL_SCALE_UA = 16000


def span_from_point(zero_ua, ua, depth_mm):
    """Span (mm per 16 mA) from the zero current and one reading at a known depth."""
    if ua <= zero_ua:
        raise ValueError("reference current must exceed the zero current")
    return depth_mm * FULL_SCALE_UA // (ua - zero_ua)


class CurrentLoop:
    def __init__(self, adc, shunt_ohm, zero_ua=4000, span_mm=5000):
        self.adc = adc
        self.shunt_ohm = shunt_ohm
        self.zero_ua = zero_ua
        self.span_mm = span_mm

    def read_ua(self):
        return self.adc.read_uv() // self.shunt_ohm

    def read_mm(self):
        """Water depth above the transducer, mm."""
        ua = self.read_ua()
        if ua < 3600:
            raise SensorFault(codec.SENSOR_MISSING, "loop open (%d uA)" % ua)
        if ua > 21000:
            raise SensorFault(codec.OUT_OF_RANGE, "loop over range (%d uA)" % ua)
        return (ua - self.zero_ua) * self.span_mm // FULL_SCALE_UA
