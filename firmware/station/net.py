# The board's network stack: DNS plus a TCP connection, and TLS over it. The esp32 board uses
# these as they are; the sim board adds the time each step takes and the ESP32's certificate
# date check (hw/sim.py), so both run the same calls.
import socket


def connect(host, port, timeout_s):
    """A connected socket. getaddrinfo has no timeout of its own on the ESP32 (lwIP retries):
    the caller's watchdog and radio deadline bound it."""
    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    sock = socket.socket(addr[0], socket.SOCK_STREAM, addr[2])
    try:
        sock.settimeout(timeout_s)
        sock.connect(addr[-1])
    except BaseException:
        sock.close()
        raise
    return sock


def tls(sock, host, cadata):
    """TLS over sock, verifying the server against cadata: a list of CA certificates (DER;
    any of them may sign the server's: old and new CA during a change-over) or one DER
    certificate, or not at all when cadata is None (only for replies authenticated
    otherwise: timesync.py)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cadata is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED
        # One certificate per call: mbedTLS (extmod/modtls_mbedtls.c) parses a DER buffer as
        # one certificate and ignores what follows it, so concatenated DER would trust only
        # the first; each call adds to the context's CA chain.
        for der in cas(cadata):
            ctx.load_verify_locations(cadata=der)
    return ctx.wrap_socket(sock, server_hostname=host)


def cas(cadata):
    """cadata as a list of DER certificates."""
    return cadata if isinstance(cadata, list) else [cadata]
