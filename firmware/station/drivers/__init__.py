# Sensor drivers. Each receives its bus or pin objects in the constructor, so tests and the
# sim backend hand in fakes; none of them imports machine.


class SensorFault(Exception):
    """A failed sample; flag is one of the codec's fault bits."""

    def __init__(self, flag, detail=""):
        super().__init__(detail)
        self.flag = flag
