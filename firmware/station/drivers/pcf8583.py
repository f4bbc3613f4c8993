# NXP PCF8583 ("Clock and calendar with 240 x 8-bit RAM", data sheet Rev. 06, 6 Oct 2010; the
# Philips 1997 edition has the same sections) in event-counter mode: it counts the rain
# gauge's tips on its OSCI pin (the reed switch through an RC and a 74LVC1G17 Schmitt buffer,
# hardware/wiring.md) from the always-on rail, whatever the ESP32 does, and the firmware reads
# it over I2C at each wake. No wake per tip.
from station import codec
from station.drivers import SensorFault

# A0 to VSS: slave address A0h for writing, A1h for reading (2, "Slave addresses: A1h or A3h
# for reading, A0h or A2h for writing"), 0x50 in MicroPython's 7-bit form.
ADDR_A0_LOW = 0x50
# Memory location 00h is the control/status register; in event-counter mode 01h-03h hold
# the count as six BCD digits, D1 D0 at 01h up to D5 D4 at 03h ("D5 is the most significant
# and D0 the least significant digit. The divider is by-passed", 7.4). The word address
# increments after each byte read or written (1), so one read takes 00h-03h.
REG_CONTROL = 0x00
# Control/status bits (7.3; the same bits in Linux's drivers/rtc/rtc-pcf8583.c): 7 stop
# counting, 6 hold last count, 5-4 function mode: 00 32.768 kHz clock (the power-on reset
# state, 00h), 01 50 Hz clock, 10 event counter, 11 test (NetBSD pcfrtc(4): "mode 2 -
# Counter for external inputs ... a 3 byte bcd counter [0-999999]").
STOP = 0x80
HOLD = 0x40
MODE_MASK = 0x30
MODE_EVENT = 0x20
MODULUS = 1000000  # six digits: 999999 wraps to 000000


def from_bcd(data):
    """The count from the three counter bytes, low digits first; a nibble above 9 is not
    something the chip writes (a disturbed bus)."""
    n = 0
    for b in reversed(data):
        hi, lo = b >> 4, b & 0x0F
        if hi > 9 or lo > 9:
            raise SensorFault(codec.SENSOR_MISSING, "PCF8583: count %s is not BCD" % (
                "".join("%02x" % x for x in reversed(data))))
        n = n * 100 + hi * 10 + lo
    return n


def since(last, now):
    """Tips between two readings, across the wrap at MODULUS. The firmware never resets the
    count between wakes: a reset written after a read would lose a tip that closes the
    switch between the two I2C transfers; with a difference, that tip is the next one's."""
    return (now - last) % MODULUS


class PCF8583:
    def __init__(self, i2c, addr=ADDR_A0_LOW):
        self.i2c = i2c
        self.addr = addr

    def _fault(self):
        return SensorFault(codec.SENSOR_MISSING, "PCF8583 rain counter: no answer at 0x%02x"
                           % self.addr)

    def start(self):
        """Event-counter mode, counting from 000000: the control register and the three
        counter bytes in one write (writing zeros is the reset)."""
        try:
            self.i2c.writeto_mem(self.addr, REG_CONTROL, bytes([MODE_EVENT, 0, 0, 0]))
        except OSError:
            raise self._fault()

    def count(self):
        """(count, started): the count now, and whether the chip was not counting events
        (after its own power-on it is a clock, control 00h) and was started from 0 here.
        The control register and the count come in one read: all counters are strobed into
        capture latches at the start of a read cycle, so a tip during the read cannot give
        a count half before and half after its carry (PCF8593 data sheet 7.1, the same
        counter as the PCF8583's)."""
        try:
            d = self.i2c.readfrom_mem(self.addr, REG_CONTROL, 4)
        except OSError:
            raise self._fault()
        if d[0] & (STOP | HOLD | MODE_MASK) != MODE_EVENT:
            self.start()
            return 0, True
        return from_bcd(d[1:4]), False
