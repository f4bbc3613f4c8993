# The sim board's rain counter: an NXP PCF8583 on the station's I2C bus, powered from the
# always-on 3.3 V rail, its OSCI pin fed by the rain gauge's reed switch through an RC and a
# Schmitt buffer (hardware/wiring.md). It lives in the World, not on a Board: it keeps
# counting while the ESP32 sleeps and across its resets. hw/sim.py routes the bus to it.
# What the chip does, from its data sheet (the sources are in station/drivers/pcf8583.py):
# - a power-on reset leaves control/status 00h = 00h (32.768 kHz clock mode, counting) and
#   the counters at 0 (the date and month registers 05h, 06h at 01h: figs 7 and 8);
# - function mode bits 5-4 of 00h = 10: each pulse on OSCI adds one to the six BCD digits at
#   01h-03h (D1 D0 ... D5 D4), 999999 wraps to 000000; the stop flag (bit 7) stops it; in
#   the clock modes OSCI is the crystal's pin and the event registers count time instead
#   (not modelled: the firmware reads them only in event mode);
# - a read or write moves the word address on after each byte; a read strobes every counter
#   into latches at its start, so it is one moment's count;
# - its RAM (00h-FFh) keeps what is written while it has power (data retention down to
#   1.0 V: an ESP32 brown-out does not reset it; a power-on of the station does).
# The I2C pull-ups are on the switched sensor rail: with it off nothing pulls SDA and SCL
# high, no transfer works and no part answers (OSError, as a NAK does).

# The data sheet's numbers, written here again rather than taken from the driver: a wrong
# one in the driver must not make the model agree with it.
PCF8583_ADDR = 0x50  # A0 to VSS (hardware/pinmap.json "i2c")
STOP = 0x80  # control/status bit 7: stop counting
HOLD = 0x40  # bit 6, hold last count: not used by the firmware, its latches not modelled
MODE_MASK = 0x30  # bits 5-4, the function mode
MODE_EVENT = 0x20  # 10: event counter
MODULUS = 1000000  # six BCD digits


def fit(world):
    """Fit a PCF8583 to the World's station (sim.World.pcf8583, None: not fitted)."""
    world.pcf8583 = SimPCF8583(world)
    return world.pcf8583


def rain(world, n=1):
    """n tips of the bucket now: the reed closes n times. A fitted counter counts them;
    world.rain_tips is what ext0 wakes would have counted had they been armed (the sim
    board's sleep_tips)."""
    world.rain_tips += n
    if world.pcf8583 is not None:
        world.pcf8583.pulse(n)


class SimPCF8583:
    def __init__(self, world, addr=PCF8583_ADDR):
        self.world = world
        self.addr = addr
        self.power_on()

    def power_on(self):
        self.mem = bytearray(256)
        self.mem[5] = self.mem[6] = 1
        self.due = []  # (board, board ms) of tips during a wake, counted at that moment

    def answers(self, board):
        return board.rail_on() and "counter_missing" not in self.world.faults

    def value(self):
        n = 0
        for b in reversed(self.mem[1:4]):
            n = n * 100 + (b >> 4) * 10 + (b & 0x0F)
        return n

    def set_value(self, n):
        n %= MODULUS
        for i in range(1, 4):
            v = n % 100
            self.mem[i] = ((v // 10) << 4) | (v % 10)
            n //= 100

    def pulse(self, n=1):
        """n pulses on OSCI."""
        if self.mem[0] & (STOP | MODE_MASK) == MODE_EVENT:
            self.set_value(self.value() + n)

    def tip_at(self, board, ms):
        """A tip at board.ms == ms of this wake (before it is read or after)."""
        self.due.append((board, ms))

    def _catch_up(self, board):
        """Count the tips that have happened by now: every one of an earlier wake, and this
        wake's up to the board's time."""
        left = []
        for b, ms in self.due:
            if b is board and ms > board.ms:
                left.append((b, ms))
            else:
                self.pulse()
        self.due = left

    def read(self, board, reg, n):
        self._catch_up(board)
        return bytes(self.mem[(reg + i) & 0xFF] for i in range(n))

    def write(self, board, reg, data):
        self._catch_up(board)
        if reg == 0 and data and data[0] & HOLD:
            raise NotImplementedError("PCF8583 hold-last-count is not modelled")
        for i, b in enumerate(data):
            self.mem[(reg + i) & 0xFF] = b
