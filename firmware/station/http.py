# A minimal HTTP/1.1 client over the board's network stack (net: board.net_connect /
# net_tls). A Connection carries the requests of one wake to one server over one connection
# (HTTP/1.1 persistent connections, RFC 9112 §9.3): one DNS lookup, TCP connect and TLS
# handshake for all of them, not one each (seconds of radio time on the ESP32). request()
# and post() are one request on a connection of its own.
# https:// verifies the server's certificate against a CA file provisioned on the device
# (CERT_REQUIRED; it may hold several CAs, any of which may sign the server's: docs/ota.md,
# "Changing the CA"): micropython-lib's requests does not verify. http:// is for the test rig
# only. feed() runs between every step that can wait (connect, handshake, each chunk): the
# watchdog.
import binascii
import json

MAX_REPLY = 8192  # bytes: a reply is an ack, the time, a config or an offer
# RAM (docs/firmware.md, RAM budget): every read allocates its whole size at once, and late in
# a wake the heap has few large holes. A socket's read(n) allocates n bytes before it reads
# (py/stream.c, stream_read: vstr_init_len), its readline(max) max bytes (py/stream.c,
# stream_unbuffered_readline: vstr_init(&vstr, max_size)): a body is read CHUNK bytes at a
# time and a header line LINE bytes at a time, not up to MAX_REPLY.
CHUNK = 512
LINE = 256
TIMEOUTS = (110, 116)  # ETIMEDOUT: MicroPython's (py/mperrno.h), lwIP's on the ESP32


class HTTPError(OSError):
    pass


class CertTimeError(HTTPError):
    """The server's certificate is not valid at the station's clock (mbedTLS checks the
    dates on the ESP32): the clock is wrong, or the certificate really is out of date."""


class Closed(HTTPError):
    """The connection ended before any byte of the reply: on a connection kept open since an
    earlier request, the server closed it meanwhile (its keep-alive timeout)."""


def split_url(url):
    scheme, rest = url.split("://", 1)
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    return scheme, host, int(port) if port else (443 if scheme == "https" else 80), "/" + path


def _feed(feed):
    if feed:
        feed()


def connect(net, scheme, host, port, timeout_s, ca_file, feed, verify=True):
    """A socket to host, TLS-wrapped and verified for https (verify=False only for a reply
    that carries its own signature)."""
    if scheme == "https" and verify and not ca_file:
        raise HTTPError("https needs a CA certificate on the device")
    _feed(feed)  # DNS and connect may each wait up to ~15 s
    sock = net.net_connect(host, port, timeout_s)
    _feed(feed)
    try:
        if scheme == "https":
            try:
                cadata = ca_der(ca_file) if verify else None
            except (OSError, ValueError) as e:
                raise HTTPError("CA file %s: %r" % (ca_file, e))
            try:
                sock = net.net_tls(sock, host, cadata)
            except ValueError as e:  # MicroPython's mbedtls: a certificate it refuses
                why = str(e).strip()
                if "validity" in why:  # BADCERT_FUTURE / BADCERT_EXPIRED
                    raise CertTimeError("TLS: certificate not valid at the station's clock"
                                        " (%s)" % why)
                raise HTTPError("TLS: %s" % why)
            _feed(feed)
    except BaseException:
        sock.close()
        raise
    return sock


class Connection:
    """Requests to one server over one connection, opened at the first and kept open for
    the next (close() at the end of the wake). A kept connection the server has closed
    meanwhile (uvicorn closes one idle for 5 s: docs/firmware.md, "Uplink") fails before any
    byte of the reply comes: the request goes again once on a new connection. Safe for the
    signed uploads too: a request the server did take is refused as a replayed counter, and
    it stores each reading once (docs/protocol.md)."""

    def __init__(self, net, ca_file=None, timeout_s=15, feed=None):
        self.net = net
        self.ca_file = ca_file
        self.timeout_s = timeout_s
        self.feed = feed
        self.sock = None
        self.to = None  # (scheme, host, port, verify) of the open connection
        self.opened = 0  # connections (and so TLS handshakes) opened

    def _open(self, url, verify):
        """(host, path, reused): url's host and path, and whether the connection was open
        already."""
        scheme, host, port, path = split_url(url)
        to = (scheme, host, port, verify)
        if self.sock is not None and self.to == to:
            return host, path, True
        self.close()
        self.sock = connect(self.net, scheme, host, port, self.timeout_s, self.ca_file,
                             self.feed, verify)
        self.to = to
        self.opened += 1
        return host, path, False

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def ask(self, method, url, body, headers, verify, last):
        """Send a request, read the reply's status line and headers: (status, headers)."""
        for _ in range(2):
            host, path, reused = self._open(url, verify)
            length = None if body is None else len(body)
            try:
                # head and body apart: joined, a 4 KiB batch would need a second 4 KiB
                # block late in the wake, when the heap has few holes that large
                _send(self.sock, _head(method, host, path, headers, length, last))
                if body:
                    _send(self.sock, body)
                return _read_head(self.sock, self.feed)
            except OSError as e:
                self.close()
                if not reused or (e.args and e.args[0] in TIMEOUTS):
                    raise  # a new connection that fails, or a server that does not answer
        raise Closed("connection closed before the reply")

    def read_body(self, hdrs, write, limit):
        """Read the reply's body into write() (None: dropped), no more than limit bytes
        (None: any). Closes the connection after a reply that ends only with it, or a
        failure part-way."""
        try:
            if "chunked" in hdrs.get("transfer-encoding", ""):
                # The fleet server never sends one to the station (every reply it gives a
                # device is a whole body with its Content-Length).
                raise HTTPError("chunked reply not supported")
            n = hdrs.get("content-length", "")
            want = int(n) if n.isdigit() else -1  # -1: to the end of the connection
            if limit is not None and want > limit:
                raise HTTPError("reply over %d bytes" % limit)
            got = _read_body(self.sock, want, write, limit, self.feed)
        except BaseException:
            self.close()
            raise
        if want < 0 or hdrs.get("connection", "").lower() == "close":
            self.close()
        return got

    def request(self, method, url, body, headers, verify=True, last=False):
        """(status, headers dict with lower-case names, body bytes); body None for a GET.
        last: no more requests follow (the server closes the connection after it)."""
        status, hdrs = self.ask(method, url, body, headers, verify, last)
        parts = []
        self.read_body(hdrs, parts.append, MAX_REPLY)
        if last:
            self.close()
        return status, hdrs, b"".join(parts)


def request(net, method, url, body, headers, timeout_s=15, ca_file=None, feed=None,
            verify=True):
    """One request on a connection of its own: (status, headers, body)."""
    return Connection(net, ca_file, timeout_s, feed).request(method, url, body, headers,
                                                             verify, last=True)


def post(net, url, body, headers, timeout_s=15, ca_file=None, feed=None):
    return request(net, "POST", url, body, headers, timeout_s, ca_file, feed)


def ca_der(path):
    """The CA certificates of a file, as a list of DER certificates for net_tls (one
    load_verify_locations each: MicroPython's mbedtls reads one DER certificate per call, and
    a build without PEM support refuses PEM): every certificate of a PEM file (a trust bundle
    may hold several), or a DER file's one."""
    with open(path, "rb") as f:
        data = f.read()
    return pem_certs(data) if b"-----BEGIN" in data else [data]


def pem_certs(data):
    """The DER certificates of PEM text (bytes), in order; ValueError if a block is cut or
    not base64. Text around the blocks (comments, `openssl x509 -text`) is ignored."""
    out = []
    for part in data.split(b"-----BEGIN CERTIFICATE-----")[1:]:
        body, end, _ = part.partition(b"-----END CERTIFICATE-----")
        if not end:
            raise ValueError("certificate %d has no END line" % (len(out) + 1))
        body = body.replace(b"\r", b"").replace(b"\n", b"").replace(b" ", b"")
        out.append(binascii.a2b_base64(body))
    return out


def _head(method, host, path, headers, length, last):
    head = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, host)
    if last:
        head += "Connection: close\r\n"
    if length is not None:
        head += "Content-Length: %d\r\n" % length
    for k in headers:
        head += "%s: %s\r\n" % (k, headers[k])
    return head.encode() + b"\r\n"


def _send(sock, data):
    write = getattr(sock, "write", None) or sock.sendall
    mv = memoryview(data)
    while mv:
        n = write(mv)
        if n is None:  # sendall sends everything
            return
        mv = mv[n:]


def _read_head(sock, feed=None):
    """The reply's status and headers, read line by line so that nothing after them is
    taken: every MicroPython socket and TLS socket has readline(max) (extmod/modsocket.c,
    extmod/modtls_mbedtls.c), while recv exists on a TLS socket only in a build with DTLS
    and read(n) waits for all n bytes (py/stream.c): past the end of a reply on a kept
    connection that is the socket's timeout."""
    raw = b""
    while True:
        line = sock.readline(min(LINE, MAX_REPLY + 1 - len(raw)))
        _feed(feed)
        if not line:
            if raw:
                raise HTTPError("connection closed in the reply's headers")
            raise Closed("connection closed before the reply")
        whole = not raw or raw[-1] == 10  # line starts a line (a long one comes in pieces)
        raw += line
        if len(raw) > MAX_REPLY:
            raise HTTPError("reply headers over %d bytes" % MAX_REPLY)
        if whole and line in (b"\r\n", b"\n"):
            return _parse_head(raw.rstrip(b"\r\n"))


def _read_body(sock, want, write, limit, feed=None):
    """want bytes of body (-1: to the end of the connection) into write (None: dropped),
    asking for no more than is left (read(n) waits for all n): the bytes read."""
    read = getattr(sock, "recv", None) or sock.read
    got = 0
    while want < 0 or got < want:
        chunk = read(CHUNK if want < 0 else min(CHUNK, want - got))
        _feed(feed)
        if not chunk:
            break
        got += len(chunk)
        if limit is not None and got > limit:
            raise HTTPError("reply over %d bytes" % limit)
        if write:
            write(chunk)
    if got < want:
        raise HTTPError("truncated reply (%d of %d bytes)" % (got, want))
    return got


def _parse_head(head):
    try:
        lines = head.decode().split("\r\n")
    except ValueError:  # UnicodeError: not HTTP
        raise HTTPError("malformed HTTP headers")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HTTPError("malformed status line")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers


def json_body(body):
    try:
        return json.loads(body)
    except ValueError:
        return {}
