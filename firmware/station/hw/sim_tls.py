# TLS on the sim board (hw/sim.py imports this module for an https connection only): the
# host's TLS, with the certificate date checks and the CA parsing of the ESP32's mbedTLS.
import ssl

from station.clock import unix_seconds
from station.hw.sim import ETIMEDOUT, Board
from station.hw.sim_net import NET_MS


def wrap(board, sock, host, cadata):
    """TLS as the ESP32 build does it: mbedTLS with MBEDTLS_HAVE_TIME_DATE checks every
    certificate's dates against the board's clock (ports/esp32/boards/sdkconfig.base,
    CONFIG_MBEDTLS_HAVE_TIME_DATE; main.c platform_mbedtls_time), and a failed check is
    the ValueError modtls_mbedtls.c raises with mbedtls_x509_crt_verify_info's text."""
    if "net_stall" in board.world.faults:  # the handshake never completes
        board.advance(sock.timeout_s * 1000)
        raise OSError(ETIMEDOUT)
    board.advance(NET_MS["tls"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    seen = []
    if cadata is None:
        if hasattr(ctx, "check_hostname"):  # CPython: no name check without a CA
            ctx.check_hostname = False  # type: ignore
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED
        cas = cadata if isinstance(cadata, list) else [cadata]
        for der in cas:  # any of them may sign the server's (station/net.py, tls)
            # mbedTLS parses a DER buffer as one certificate, by its outer SEQUENCE's
            # length, and ignores the rest (x509_crt_parse_der_core): concatenated DER
            # trusts only the first. CPython would take them all: cut as mbedTLS does.
            ctx.load_verify_locations(cadata=bytes(der)[:_der(der, 0)[2]])
        if len(cas) == 1:  # of several, only the chain's anchor has its dates checked
            seen.append(bytes(cas[0]))
        inner = getattr(ctx, "_context", None)
        if inner is not None:  # MicroPython: every certificate of the chain
            def on_cert(cert, depth):
                seen.append(bytes(cert))
                return 0
            inner.verify_callback = on_cert
    tls = ctx.wrap_socket(sock.sock, server_hostname=host)
    if cadata is not None:
        if hasattr(tls, "getpeercert"):  # CPython
            seen.append(tls.getpeercert(True))
        now = board.time()
        for der in seen:
            not_before, not_after = cert_validity(der)
            if now < not_before or now > not_after:
                tls.close()
                raise ValueError("\nThe certificate validity %s\n" % (
                    "starts in the future" if now < not_before else "has expired"))
    sock.sock = tls
    return sock


def _der(data, i):
    """(tag, start of contents, end of contents) of the DER element at i."""
    tag, n = data[i], data[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[i:i + k], "big")
        i += k
    return tag, i, i + n


def _asn1_time(tag, raw):
    """UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime as seconds from 2000 (ESP32's epoch)."""
    s = raw.decode()
    if tag == 0x17:
        s = ("19" if int(s[0:2]) >= 50 else "20") + s
    f = [int(s[i:i + 2]) for i in range(4, 14, 2)]
    return unix_seconds(int(s[0:4]), f[0], f[1], f[2], f[3], f[4]) - Board.EPOCH_OFFSET


def cert_validity(der):
    """(notBefore, notAfter) of an X.509 certificate, in seconds from 2000."""
    _, i, _ = _der(der, 0)  # Certificate
    _, i, _ = _der(der, i)  # tbsCertificate
    if der[i] == 0xA0:  # [0] version
        i = _der(der, i)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        i = _der(der, i)[2]
    _, i, _ = _der(der, i)  # validity
    tag, a, b = _der(der, i)
    tag2, c, e = _der(der, b)
    return _asn1_time(tag, der[a:b]), _asn1_time(tag2, der[c:e])

