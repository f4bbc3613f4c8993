# A UART of the sim board wired to a host serial device (hw/sim.py imports this module only
# for the UARTs a virtual station's spec puts on one).
import select

from station.hw.sim import _always


class SerialPortUART:
    """A UART wired to a host serial device: the pseudo-terminal on which the rig's simulated
    sensor streams its real bytes, or its simulated LoRaWAN modem answers. any() says only
    whether a byte is waiting. While the part is unpowered its bytes are lost."""

    def __init__(self, path, powered=_always):
        self.f = open(path, "r+b", 0)  # unbuffered: poll() must see every byte
        self.poller = select.poll()
        self.poller.register(self.f, select.POLLIN)
        self.powered = powered

    def any(self):
        if not self.powered():
            while self.poller.poll(0):
                self.f.read(1)
            return 0
        return 1 if self.poller.poll(0) else 0

    def read(self, n=None):
        """None when nothing is waiting, as machine.UART.read() (hw/sim.py, "Every UART")."""
        out = b""
        if not self.any():
            return None
        while (n is None or len(out) < n) and self.poller.poll(0):
            out += self.f.read(1)
        return out or None

    def write(self, data):
        return self.f.write(data)

