# The sim board's Wi-Fi and sockets (hw/sim.py imports this module when the firmware first
# asks for the WLAN or a connection): the access points of the World, association and DHCP,
# and the network's delays, all in the board's time. TLS is hw/sim_tls.py.
from station.hw.sim import ETIMEDOUT

# What the network costs in simulated time (typical figures, shared/reviews §4): DNS, TCP
# connect, a TLS 1.2 ECDHE-P256 handshake on an ESP32 at 160 MHz, and a request's round trip.
NET_MS = {"dns": 100, "connect": 150, "tls": 1500, "request": 300}
MDNS_FAIL = -202  # getaddrinfo's error when DNS gets no answer (lwIP EAI_FAIL)


def connect(board, host, port, timeout_s):
    """DNS and TCP connect (station/net.py), in the board's time."""
    from station import net

    if "dns_stall" in board.world.faults:
        board.advance(15000)  # lwIP's DNS retries, with no timeout of the caller's
        raise OSError(MDNS_FAIL)
    if board.wlan is None or not board.wlan.isconnected():
        raise OSError(113)  # EHOSTUNREACH: no link
    board.advance(NET_MS["dns"] + NET_MS["connect"])
    return SimSocket(board, net.connect(host, port, timeout_s), timeout_s)


class SimWLAN:
    """network.WLAN(STA_IF) as the ESP32 port behaves (ports/esp32/network_wlan.c): scan()
    needs the interface active and lists (ssid bytes, bssid, channel, RSSI, security,
    hidden) for every access point in range; connect() returns at once and the link is up
    after association and DHCP in the board's time, sooner when the channel is known."""

    SCAN_MS = 2200  # an active scan of 13 channels
    ASSOC_MS = 700
    FIND_MS = 1100  # connect() scans for the BSSID first: its channel is not kept
    DHCP_MS = 900

    def __init__(self, board):
        self.board = board
        self._active = False
        self.up_at = None
        self.ap = None
        self.channel = 0

    def active(self, v=None):
        if v is None:
            return self._active
        self._active = bool(v)
        self.board.wifi_on = self._active
        if not v:
            self.up_at = None

    def _need_active(self):
        if not self._active:
            raise OSError("Wi-Fi Not Started")  # esp_err ESP_ERR_WIFI_NOT_STARTED

    def scan(self):
        self._need_active()
        self.board.advance(self.SCAN_MS)
        return [] if "link_down" in self.board.world.faults else list(self.board.world.aps)

    def config(self, channel=None, **kw):
        if channel is not None:  # kept, but connect() clears it (network_wlan.c)
            self.channel = channel

    def connect(self, ssid, key, bssid=None):
        self._need_active()
        self.up_at = self.ap = None
        if "link_down" in self.board.world.faults:
            return
        for ap in self.board.world.aps:
            if ap[0] == ssid.encode() and (bssid is None or ap[1] == bytes(bssid)):
                self.channel = 0  # network_wlan_connect zeroes the station config
                self.up_at = self.board.ms + self.FIND_MS + self.ASSOC_MS + self.DHCP_MS
                self.ap = ap
                return

    def isconnected(self):
        return self.up_at is not None and self.board.ms >= self.up_at

    def status(self, what=None):
        if what == "rssi":
            ap = self.ap
            if ap is None or not self.isconnected():
                raise OSError("not connected")
            return ap[3]
        return 1010 if self.isconnected() else 1000  # STAT_GOT_IP / STAT_IDLE


class SimSocket:
    """A host socket whose waits count in the board's time: a request's round trip, and the
    full timeout then ETIMEDOUT when the server never answers ("net_stall")."""

    def __init__(self, board, sock, timeout_s):
        self.board = board
        self.sock = sock
        self.timeout_s = timeout_s
        self.waited = False

    def _wait(self):
        if "net_stall" in self.board.world.faults:
            self.board.advance(self.timeout_s * 1000)
            raise OSError(ETIMEDOUT)
        if not self.waited:
            self.waited = True
            slow = self.board.world.net_request_ms
            self.board.advance(NET_MS["request"] if slow is None else slow)

    def recv(self, n):
        """What has arrived, up to n bytes (one socket read)."""
        self._wait()
        recv = getattr(self.sock, "recv", None) or self.sock.read
        return recv(n)

    def read(self, n):
        """A MicroPython stream's read(n): waits for n bytes or the end of the connection
        (py/stream.c, mp_stream_rw without MP_STREAM_RW_ONCE); an open connection that has
        sent less makes it wait out the socket timeout."""
        out = b""
        while len(out) < n:
            chunk = self.recv(n - len(out))
            if not chunk:
                break
            out += chunk
        return out

    def write(self, data):
        write = getattr(self.sock, "write", None)
        if write:
            return write(data)
        self.sock.sendall(data)
        return len(data)

    def close(self):
        self.sock.close()

