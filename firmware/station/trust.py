# The station's trust in the fleet server (docs/ota.md, "Changing the CA"): the CA
# certificates its TLS accepts are the file secrets.json names ("ca": ca.pem, written at
# provisioning). A signed release may carry a new trust bundle (trust.pem: one or more PEM
# certificates, covered by the manifest's hashes and signature like every file). It is
# checked at install (a bundle that does not parse is refused with the update), set aside
# when the trial is confirmed (ota.confirm: ota/trust.pem), and used from the first wake
# whose upload got through and whose server it verifies: only then does it replace ca.pem,
# so a bundle that does not verify the server never cuts the station off. A rollback never
# confirms, so it keeps the old trust; a release without a bundle leaves it as it is.
# Imported only by the wakes that check or adopt a bundle.
from station import fsutil, http
from station.ota import TRUST, TRUST_NEW, Refused, read_pointer, record, running_version

MAX_BYTES = 16384  # a bundle: a few CA certificates of 0.5-2 KB each
MAX_CERTS = 8


def certs(data):
    """The DER certificates of a trust bundle (PEM bytes), in order. ValueError with the
    reason when it is not one the station can use: no certificate, a block cut short or
    not base64, not one DER certificate, or refused by the TLS library's own parser."""
    if len(data) > MAX_BYTES:
        raise ValueError("%d bytes, over %d" % (len(data), MAX_BYTES))
    if b"PRIVATE KEY" in data:
        raise ValueError("holds a private key")
    ders = http.pem_certs(data)
    if not ders:
        raise ValueError("no PEM certificate")
    if len(ders) > MAX_CERTS:
        raise ValueError("%d certificates, over %d" % (len(ders), MAX_CERTS))
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for i, der in enumerate(ders):
        if not _one_der(der):
            raise ValueError("certificate %d is not one DER certificate" % (i + 1))
        try:  # mbedTLS's x509 parser on the station (CPython's OpenSSL on the host)
            ctx.load_verify_locations(cadata=der)
        except (ValueError, OSError) as e:  # ssl.SSLError is an OSError
            raise ValueError("certificate %d: %s" % (i + 1, str(e).strip() or repr(e)))
    return ders


def _one_der(der):
    """der is exactly one DER SEQUENCE (a certificate's outer shape): mbedTLS would read a
    certificate followed by anything as that certificate alone."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    n, i = der[1], 2
    if n & 0x80:
        k = n & 0x7F
        if k < 1 or k > 3 or len(der) < 2 + k:
            return False
        n = int.from_bytes(der[2:2 + k], "big")
        i += k
    return i + n == len(der)


def check_file(path):
    """At install: the release's bundle in the new slot parses, or the update is refused."""
    try:
        certs(fsutil.read_bytes(path) or b"")
    except ValueError as e:
        raise Refused("trust bundle %s refused: %s" % (path.rsplit("/", 1)[-1], e))


def stage(slot):
    """At confirmation: set the confirmed slot's bundle aside for adopt()."""
    data = fsutil.read_bytes(slot + "/" + TRUST)
    if data:
        fsutil.write_atomic(TRUST_NEW, data)


def adopt(board, creds, now=0, feed=None):
    """After a successful upload: make the bundle set aside the station's trust, if it
    verifies the server (one TLS handshake, nothing sent). A bundle that does not is dropped
    and reported, and the current trust stays; a network error leaves it for a later wake.
    True when the trust changed."""
    data = fsutil.read_bytes(TRUST_NEW)
    if not data:
        return False
    release = running_version()
    ca = creds.get("ca")
    if ca and fsutil.read_bytes(ca) == data:  # already trusted
        fsutil.remove(TRUST_NEW)
        return False
    why = None
    p = read_pointer()
    good = p.get("good") if p else None
    if good and fsutil.read_bytes(good + "/" + TRUST) != data:
        # set aside at confirm, then a power cut and a rollback: the good release is not the
        # one that carried it, and its trust is not this one's
        why = "the release that carried it is not the one running"
    ders = []
    if why is None and (not ca or not creds.get("server", "").startswith("https://")):
        why = "the server is not reached over https with a CA file"
    elif why is None:
        try:
            ders = certs(data)
        except ValueError as e:
            why = "it does not parse (%s)" % e
    if why is None:
        try:
            _check_server(board, creds["server"], TRUST_NEW, feed)
        except http.CertTimeError:
            return False  # the station's clock or the dates: not the bundle's fault, later
        except http.HTTPError as e:  # the new CAs refuse the server it reports to now
            why = "it does not verify the server (%s)" % str(e).strip()
        except OSError:
            return False  # the network: try again after a later upload
    if why is not None:
        fsutil.remove(TRUST_NEW)
        record(release, "failed", "trust bundle not used: %s; the station keeps its "
               "current CA" % why, now)
        return False
    fsutil.write_atomic(ca, data)  # one rename: the old trust or the new, never neither
    fsutil.remove(TRUST_NEW)
    record(release, "confirmed", "trust bundle in use: %d CA certificates" % len(ders), now)
    return True


def _check_server(net, url, ca_file, feed):
    """Connect to url's server and verify its certificate against ca_file, nothing sent;
    raises as a request would."""
    scheme, host, port, _ = http.split_url(url)
    http.connect(net, scheme, host, port, 15, ca_file, feed).close()
