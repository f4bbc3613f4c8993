# Battery voltage through a resistor divider into an ADC (read_uv: calibrated microvolts).


class Battery:
    def __init__(self, adc, ratio_num=2, ratio_den=1, samples=8):
        self.adc = adc
        self.num = ratio_num
        self.den = ratio_den
        self.samples = samples

    def read_mv(self):
        # The ESP32 ADC is noisy: take the median of a few conversions.
        v = sorted(self.adc.read_uv() for _ in range(self.samples))[self.samples // 2]
        return v * self.num // (self.den * 1000)
