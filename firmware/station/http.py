# A minimal HTTP/1.1 client: one request, or one GET streamed into a file, per connection,
# over the board's network stack (net: board.net_connect / net_tls). https:// verifies the
# server's certificate against a CA file provisioned on the device (CERT_REQUIRED; it may hold
# several CAs, any of which may sign the server's: docs/ota.md, "Changing the CA"):
# micropython-lib's requests does not verify. http:// is for the test rig only.
# feed() runs between every step that can wait (connect, handshake, each chunk): the watchdog.
import binascii
import json

MAX_REPLY = 8192  # bytes: a reply is an ack, the time, a config or an offer


class HTTPError(OSError):
    pass


class CertTimeError(HTTPError):
    """The server's certificate is not valid at the station's clock (mbedTLS checks the
    dates on the ESP32): the clock is wrong, or the certificate really is out of date."""


def _split(url):
    scheme, rest = url.split("://", 1)
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    return scheme, host, int(port) if port else (443 if scheme == "https" else 80), "/" + path


def _feed(feed):
    if feed:
        feed()


def _connect(net, url, timeout_s, ca_file, feed, verify=True):
    """(socket, host, path), TLS-wrapped and verified for https:// (verify=False only for a
    reply that carries its own signature)."""
    scheme, host, port, path = _split(url)
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
    return sock, host, path


def _head(method, host, path, headers, length):
    head = "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (method, path, host)
    if length is not None:
        head += "Content-Length: %d\r\n" % length
    for k in headers:
        head += "%s: %s\r\n" % (k, headers[k])
    return head.encode() + b"\r\n"


def request(net, method, url, body, headers, timeout_s=15, ca_file=None, feed=None,
            verify=True):
    """(status, headers dict with lower-case names, body bytes); body None for a GET."""
    sock, host, path = _connect(net, url, timeout_s, ca_file, feed, verify)
    try:
        length = None if body is None else len(body)
        _send(sock, _head(method, host, path, headers, length) + (body or b""))
        return _parse(_recv_all(sock, feed))
    finally:
        sock.close()


def post(net, url, body, headers, timeout_s=15, ca_file=None, feed=None):
    return request(net, "POST", url, body, headers, timeout_s, ca_file, feed)


def get_to_file(net, url, headers, f, timeout_s=15, ca_file=None, on_chunk=None):
    """GET url and append a 200/206 body to the open file f in small chunks (a release file
    does not fit in RAM twice). (status, headers, bytes written); other replies' bodies are
    not written. on_chunk() runs after each chunk (to feed the watchdog)."""
    sock, host, path = _connect(net, url, timeout_s, ca_file, on_chunk)
    try:
        _send(sock, _head("GET", host, path, headers, None))
        return _recv_to_file(sock, f, on_chunk)
    finally:
        sock.close()


def _recv_to_file(sock, f, on_chunk=None):
    read = _reader(sock)
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = read(512)
        if not chunk:
            raise HTTPError("connection closed before the headers")
        raw += chunk
        if len(raw) > MAX_REPLY:
            raise HTTPError("reply headers over %d bytes" % MAX_REPLY)
    head, _, rest = raw.partition(b"\r\n\r\n")
    status, hdrs = _parse_head(head)
    if status not in (200, 206):
        return status, hdrs, 0
    want = int(hdrs.get("content-length", "-1"))
    written = 0
    chunk = rest  # may be empty: the body can come in a later segment
    while True:
        if want >= 0:
            chunk = chunk[:want - written]
        if chunk:
            f.write(chunk)
            written += len(chunk)
        if on_chunk:
            on_chunk()
        if 0 <= want <= written:
            break
        chunk = read(2048)
        if not chunk:
            break
    if want >= 0 and written < want:
        raise HTTPError("truncated download (%d of %d bytes)" % (written, want))
    return status, hdrs, written


def check_server(net, url, ca_file, timeout_s=15, feed=None):
    """Connect to url's server and verify its certificate against ca_file, nothing sent
    (docs/ota.md, "Changing the CA"); raises as a request would."""
    sock, _, _ = _connect(net, url, timeout_s, ca_file, feed)
    sock.close()


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


def _reader(sock):
    """recv (what has arrived, up to n) rather than read: on MicroPython a stream's read(n)
    waits for all n bytes or the end of the connection, and a TLS end without close_notify
    raises, losing what was read (py/stream.c)."""
    return getattr(sock, "recv", None) or sock.read


def _send(sock, data):
    write = getattr(sock, "write", None) or sock.sendall
    mv = memoryview(data)
    while mv:
        n = write(mv)
        if n is None:  # sendall sends everything
            return
        mv = mv[n:]


def _recv_all(sock, feed=None):
    """The response: up to Content-Length when given, else to the end of the connection,
    never more than MAX_REPLY bytes. Stopping at Content-Length saves waiting on the close
    (MicroPython's TLS does not always see the server's), and radio time."""
    read = _reader(sock)
    raw = b""
    want = -1
    while want < 0 or len(raw) < want:
        chunk = read(1024)
        _feed(feed)
        if not chunk:
            break
        raw += chunk
        if len(raw) > MAX_REPLY:
            raise HTTPError("reply over %d bytes" % MAX_REPLY)
        if want < 0:
            end = raw.find(b"\r\n\r\n")
            if end >= 0:
                want = end + 4 + _content_length(raw[:end])
    return raw


def _content_length(head):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length" and v.strip().isdigit():
            return int(v.strip())
    return 1 << 30  # unknown: to the end of the connection


def _parse_head(head):
    try:
        lines = head.decode().split("\r\n")
    except ValueError:  # UnicodeError: not HTTP
        raise HTTPError("malformed HTTP headers")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HTTPError("malformed status line")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers


def _parse(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise HTTPError("malformed HTTP response")
    status, headers = _parse_head(head)
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(body) < n:
            raise HTTPError("truncated response")
        body = body[:n]
    return status, headers, body


def json_body(body):
    try:
        return json.loads(body)
    except ValueError:
        return {}
