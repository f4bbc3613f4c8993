# A UART of the sim board whose part is simulated in another process on the board's own
# clock: the rig's RAK3172, whose radio reaches the rig's network server
# (tools/mizumori_tools/netserver.py, ModemLink). hw/sim.py imports this module only for a
# UART the station's spec puts on "tcp:HOST:PORT".
#
# Each call carries the board's true time (ms), and the part answers as of that time. So a
# light sleep loses what the part printed while it lasted (Board.lightsleep reads the UART at
# the sleep's end), however late the host schedules either process. On a pseudo-terminal
# (docs/rig.md) the part runs on the host's clock and the board on its own, and a busy host
# moved one against the other: the LoRaWAN end-to-end test lost the module's events.
from station import net


class LinkUART:
    def __init__(self, board, address):
        host, port = address.rsplit(":", 1)
        self.board = board
        # The part may wait on the rig (its network server posting to the fleet server);
        # within the 120 s the rig gives a wake, so a stuck rig is an OSError the wake
        # records, not a killed process (which the fleet takes for a power cut).
        self.sock = net.connect(host, int(port), 100)
        self.buf = b""

    def _ask(self, op, arg=""):
        b = self.board
        line = "%s %d %s\n" % (op, b.world.now * 1000 + b.ms, arg)
        data = line.encode()
        while data:
            data = data[self.sock.send(data):]
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("the rig's modem link closed")
            self.buf += chunk
        i = self.buf.find(b"\n")
        reply, self.buf = self.buf[:i], self.buf[i + 1:]
        return reply.decode()

    def any(self):
        return int(self._ask("A"))

    def read(self, n=None):
        """None when nothing is waiting, as machine.UART.read() (hw/sim.py, "Every UART")."""
        return bytes.fromhex(self._ask("R", "-1" if n is None else str(n))) or None

    def write(self, data):
        return int(self._ask("W", bytes(data).hex()))
