# A minimal HTTP/1.1 client for one POST per connection. https:// verifies the server's
# certificate against a CA file provisioned on the device (CERT_REQUIRED): micropython-lib's
# requests does not verify. http:// is for the test rig only.
import binascii
import json
import socket


class HTTPError(OSError):
    pass


def _split(url):
    scheme, rest = url.split("://", 1)
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    return scheme, host, int(port) if port else (443 if scheme == "https" else 80), "/" + path


def post(url, body, headers, timeout_s=15, ca_file=None):
    """(status, headers dict with lower-case names, body bytes)."""
    scheme, host, port, path = _split(url)
    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    sock = socket.socket(addr[0], socket.SOCK_STREAM, addr[2])
    try:
        sock.settimeout(timeout_s)
        sock.connect(addr[-1])
        if scheme == "https":
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = ssl.CERT_REQUIRED
            if not ca_file:
                raise HTTPError("https needs a CA certificate on the device")
            try:
                ctx.load_verify_locations(cadata=ca_der(ca_file))
                sock = ctx.wrap_socket(sock, server_hostname=host)
            except ValueError as e:  # MicroPython's mbedtls: a certificate it refuses
                raise HTTPError("TLS: %s" % str(e).strip())
        head = "POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n" % (
            path, host, len(body))
        for k in headers:
            head += "%s: %s\r\n" % (k, headers[k])
        _send(sock, head.encode() + b"\r\n" + body)
        return _parse(_recv_all(sock))
    finally:
        sock.close()


def ca_der(path):
    """The CA certificate in DER, as MicroPython's mbedtls wants it, from a DER file or the
    first certificate of a PEM file."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"-----BEGIN"):
        return data
    body = data.split(b"-----BEGIN CERTIFICATE-----", 1)[-1].split(b"-----END", 1)[0]
    return binascii.a2b_base64(body.replace(b"\r", b"").replace(b"\n", b""))


def _send(sock, data):
    write = getattr(sock, "write", None) or sock.sendall
    mv = memoryview(data)
    while mv:
        n = write(mv)
        if n is None:  # sendall sends everything
            return
        mv = mv[n:]


def _recv_all(sock):
    """The response: up to Content-Length when given, else to the end of the connection.
    Stopping at Content-Length saves waiting on the close (MicroPython's TLS does not
    always see the server's), and radio time."""
    read = getattr(sock, "read", None) or sock.recv
    raw = b""
    want = -1
    while want < 0 or len(raw) < want:
        chunk = read(1024)
        if not chunk:
            break
        raw += chunk
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


def _parse(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise HTTPError("malformed HTTP response")
    lines = head.decode().split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HTTPError("malformed status line")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(body) < n:
            raise HTTPError("truncated response")
        body = body[:n]
    return int(parts[1]), headers, body


def json_body(body):
    try:
        return json.loads(body)
    except ValueError:
        return {}
