# The sim board's Wi-Fi and sockets (hw/sim.py imports this module when the firmware first
# asks for the WLAN or a connection): the access points of the World, association and DHCP,
# and the network's delays, all in the board's time. TLS is hw/sim_tls.py.
from station.hw.sim import ETIMEDOUT

# What the network costs in simulated time (typical figures, shared/reviews §4): DNS, TCP
# connect, a TLS 1.2 ECDHE-P256 handshake on an ESP32 at 160 MHz, and a request's round trip.
NET_MS = {"dns": 100, "connect": 150, "tls": 1500, "request": 300}
# The fleet server closes a kept-open connection idle this long: uvicorn's default
# timeout_keep_alive, 5 s (uvicorn/config.py; the rig runs uvicorn as it is). nginx
# (keepalive_timeout 75 s) and Caddy (idle_timeout 5 min) in front of it wait longer.
SERVER_KEEPALIVE_MS = 5000
DNS_GIVE_UP_MS = 15000  # lwIP's DNS retries, with no timeout of the caller's
MDNS_FAIL = -202  # getaddrinfo's error when DNS gets no answer (lwIP EAI_FAIL)

# The network behind the World's access points, unless the World sets `lan`: (subnet,
# prefix length, router, the address its DHCP server leases the station). The router is
# also the DNS server it hands out, as a home or office router does.
LAN = ("192.168.4.0", 24, "192.168.4.1", "192.168.4.100")


def connect(board, host, port, timeout_s):
    """DNS and TCP connect (station/net.py), in the board's time. A station whose static
    address or gateway does not fit the access point's network has a link but no route:
    nothing it sends is answered, so DNS gives up, or TCP connect waits out its timeout."""
    from station import net

    if "dns_stall" in board.world.faults:
        _no_answer(board, DNS_GIVE_UP_MS, MDNS_FAIL)
    if board.wlan is None or not board.wlan.isconnected():
        raise OSError(113)  # EHOSTUNREACH: no link
    if not board.wlan.routed():
        if not _is_ipv4(host):
            _no_answer(board, DNS_GIVE_UP_MS, MDNS_FAIL)
        _no_answer(board, timeout_s * 1000, ETIMEDOUT)
    board.advance(NET_MS["dns"] + NET_MS["connect"])
    return SimSocket(board, net.connect(host, port, timeout_s), timeout_s)


def _no_answer(board, ms, err):
    board.advance(ms)
    raise OSError(err)


def _is_ipv4(host):
    """A dotted address, which getaddrinfo returns without asking DNS."""
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def parse_ipv4(addr):
    """An address string as the port's netutils_parse_ipv4_addr reads it
    (shared/netutils/netutils.c), as an int: four dot-separated fields, each taken mod 256
    with no check of its digits ("10.0.0.300" is 10.0.0.44), "" is 0.0.0.0, and any other
    number of fields raises ValueError. A non-string raises TypeError (mp_obj_str_get_data)."""
    if not isinstance(addr, str):
        raise TypeError("can't convert to str")
    if not addr:
        return 0
    fields = addr.split(".")
    if len(fields) != 4:
        raise ValueError("invalid arguments")
    n = 0
    for field in fields:
        v = 0
        for c in field:
            v = v * 10 + ord(c) - 48
        n = n << 8 | (v & 0xFF)
    return n


def format_ipv4(n):
    return "%d.%d.%d.%d" % (n >> 24, n >> 16 & 0xFF, n >> 8 & 0xFF, n & 0xFF)


def prefix_mask(prefix):
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


class SimWLAN:
    """network.WLAN(STA_IF) as the ESP32 port behaves (ports/esp32/network_wlan.c): scan()
    needs the interface active and lists (ssid bytes, bssid, channel, RSSI, security,
    hidden) for every access point in range; connect() returns at once and the link is up
    (isconnected(): the GOT_IP event) after association and DHCP in the board's time.
    ifconfig() as ports/esp32/network_common.c esp_ifconfig: a 4-tuple sets a static
    address and stops the DHCP client, so the link is up at association (ESP-IDF's
    esp_netif_action_connected, components/esp_netif/esp_netif_handlers.c, posts GOT_IP at
    once when DHCP is stopped); "dhcp" starts it again."""

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
        self.static = None  # (ip, netmask, gateway, dns) as ints: DHCP stopped

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
                dhcp = 0 if self.static else self.DHCP_MS
                self.up_at = self.board.ms + self.FIND_MS + self.ASSOC_MS + dhcp
                self.ap = ap
                return

    def ifconfig(self, config=None):
        """(ip, netmask, gateway, dns) in use, "0.0.0.0" each before an address is had; or
        set them (a tuple or list of 4; the netmask may be a prefix length int) and stop
        DHCP; or "dhcp" to start it again (network_common.c esp_ifconfig)."""
        if config is None:
            return tuple(format_ipv4(n) for n in self._addresses())
        if isinstance(config, str):
            if config != "dhcp":
                raise ValueError("invalid arguments")
            self.static = None
            return
        if not isinstance(config, (tuple, list)):
            raise TypeError("object not iterable")
        if len(config) != 4:  # mp_obj_get_array_fixed_n
            raise ValueError("requested length 4 but object has length %d" % len(config))
        ip, mask, gw, dns = config
        if isinstance(mask, int):
            if not 0 < mask <= 32:  # the port's shift by 32 - mask is undefined out of here
                raise ValueError("netmask prefix out of 1..32")
            mask = prefix_mask(mask)
        else:
            mask = parse_ipv4(mask)
        self.static = (parse_ipv4(ip), mask, parse_ipv4(gw), parse_ipv4(dns))

    def _lan(self):
        return getattr(self.board.world, "lan", None) or LAN

    def _addresses(self):
        if self.static:
            return self.static
        if not self.isconnected():
            return (0, 0, 0, 0)
        _, prefix, router, lease = self._lan()
        router = parse_ipv4(router)
        return (parse_ipv4(lease), prefix_mask(prefix), router, router)

    def routed(self):
        """Whether what the station sends gets answered: its address is a host of the access
        point's subnet, not the router's, and its gateway is the router (which answers ARP
        only for its own address; and routes replies only to its subnet)."""
        if not self.static:
            return True
        ip, _, gw, _ = self.static
        net, prefix, router, _ = self._lan()
        mask = prefix_mask(prefix)
        host = ip & ~mask & 0xFFFFFFFF
        return (ip & mask == parse_ipv4(net) and 0 < host < ~mask & 0xFFFFFFFF
                and ip != parse_ipv4(router) and gw == parse_ipv4(router))

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
    """A host socket whose waits count in the board's time: each request's round trip, and
    the full timeout then ETIMEDOUT when the server never answers ("net_stall"). A
    connection kept open after a reply is closed by the server once idle for
    SERVER_KEEPALIVE_MS of the board's time, as the fleet server does it: what the station
    writes then is lost and it reads the end of the connection (the server's FIN, or its TLS
    close_notify, which MicroPython's TLS socket reads as the end: modtls_mbedtls.c)."""

    def __init__(self, board, sock, timeout_s):
        self.board = board
        self.sock = sock
        self.timeout_s = timeout_s
        self.waited = False
        # The server's keep-alive timer runs from the end of a reply (uvicorn starts it when
        # a response completes, not before the first request).
        self.replied_at = None
        self.server_closed = False

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
        if self.server_closed:
            return b""
        self._wait()
        recv = getattr(self.sock, "recv", None) or self.sock.read
        data = recv(n)
        self.replied_at = self.board.ms
        return data

    def read(self, n):
        """A MicroPython stream's read(n): waits for n bytes or the end of the connection
        (py/stream.c, mp_stream_rw without MP_STREAM_RW_ONCE); an open connection that has
        sent less makes it wait out the socket timeout. Its n bytes are set aside first
        (stream_read_generic: vstr_init_len(&vstr, sz)), as much heap as the port takes."""
        room = bytearray(n)  # noqa: F841 - held through the read, as the port holds its vstr
        out = b""
        while len(out) < n:
            chunk = self.recv(n - len(out))
            if not chunk:
                break
            out += chunk
        return out

    def readline(self, limit=-1):
        """A MicroPython stream's readline(max): byte by byte up to a newline, the limit or
        the end of the connection (py/stream.c, mp_stream_unbuffered_readline), max bytes
        set aside first (vstr_init(&vstr, max_size)), as much heap as the port takes."""
        room = bytearray(max(limit, 16))  # noqa: F841 - held through the read, as the vstr
        out = b""
        while limit < 0 or len(out) < limit:
            b = self.recv(1)
            if not b:
                break
            out += b
            if b == b"\n":
                break
        return out

    def write(self, data):
        ka = self.replied_at
        if ka is not None and self.board.ms - ka >= SERVER_KEEPALIVE_MS:
            self.server_closed = True  # idle too long: the server closed its end
            self.sock.close()
        if self.server_closed:
            return len(data)  # taken by the TCP stack; the server's reset follows
        self.waited = False  # a new request: a new round trip
        write = getattr(self.sock, "write", None)
        if write:
            return write(data)
        self.sock.sendall(data)
        return len(data)

    def close(self):
        self.sock.close()
