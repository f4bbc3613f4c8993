# A release's trust bundle on the station (station/trust.py, docs/ota.md "Changing the CA"):
# parsed as the TLS library would take it, refused at install when it does not parse, set
# aside when the trial is confirmed, and used only once it verifies the server.
import json
import os

import support
from station import fsutil, http, net, ota, trust

CA1 = b"""-----BEGIN CERTIFICATE-----
MIIBUjCB+KADAgECAhQYAlVJ1bbTmzPRjG3lDLSXvM6rpzAKBggqhkjOPQQDAjAc
MRowGAYDVQQDDBFUZXN0IGNpdHkgQ0EgMjAyMDAgFw0yMDAxMDEwMDAwMDBaGA8y
MDk5MTIzMTAwMDAwMFowHDEaMBgGA1UEAwwRVGVzdCBjaXR5IENBIDIwMjAwWTAT
BgcqhkjOPQIBBggqhkjOPQMBBwNCAASmc45qB0cqC62I3Ti4f0yA+aAdBv8iOLrK
aIDpnWaN6slVpUGjUGYZF9wvIedJpXsrM+R7Z82CzQgzspK8sE4woxYwFDASBgNV
HRMBAf8ECDAGAQH/AgEAMAoGCCqGSM49BAMCA0kAMEYCIQCFjnlehubEXqn7F7+K
9/i7H6V6bHoU/a55Dmoe8f/KEQIhAIDNSCwOs6ItBQB+XRi4nN6S8+7SL8XCGcxL
0lDpIgHL
-----END CERTIFICATE-----
"""
CA2 = b"""-----BEGIN CERTIFICATE-----
MIIBUDCB+KADAgECAhQ4DlSZz2EPulTPzq0pRm8h1sikCzAKBggqhkjOPQQDAjAc
MRowGAYDVQQDDBFUZXN0IGNpdHkgQ0EgMjAyNjAgFw0yMDAxMDEwMDAwMDBaGA8y
MDk5MTIzMTAwMDAwMFowHDEaMBgGA1UEAwwRVGVzdCBjaXR5IENBIDIwMjYwWTAT
BgcqhkjOPQIBBggqhkjOPQMBBwNCAARAB7Z1lUNEq/4wSFZiIi/8yK5GnpxOmHwK
zMwCOtenNZU8SRx+hnJhwtOL0V09sbKzAWmuy8aduQHa4dtgmscloxYwFDASBgNV
HRMBAf8ECDAGAQH/AgEAMAoGCCqGSM49BAMCA0cAMEQCIBlTYEQULS/YMGx5P/08
uAtW/2+yAYXZitEpJJF6/pZpAiBoMuA3ZxBJtKN+z4C4ITFnnkuomm/PuPunF47X
YYaQSg==
-----END CERTIFICATE-----
"""
CREDS = {"device_id": 7, "server": "https://fleet.example", "ca": "ca.pem"}


def _pem(der):
    import binascii

    return (b"-----BEGIN CERTIFICATE-----\n" + binascii.b2a_base64(der) +
            b"-----END CERTIFICATE-----\n")


class Net:
    """The board's network: records the CAs each handshake was given; `trusts` is the CA
    (DER) that signed the server's certificate, None for a network that is down."""

    def __init__(self, trusts):
        self.trusts = trusts
        self.given = []

    def net_connect(self, host, port, timeout_s):
        if self.trusts is None:
            raise OSError(113)
        return self

    def net_tls(self, sock, host, cadata):
        self.given.append(net.cas(cadata))
        if self.trusts not in net.cas(cadata):
            raise ValueError("\nThe certificate is not correctly signed by the trusted CA\n")
        return self

    def close(self):
        pass


def _in_flash(fn):
    """Run fn in a fresh directory: the station's flash."""
    here = os.getcwd()
    os.chdir(support.tempdir())
    try:
        fn()
    finally:
        os.chdir(here)


def _events():
    return [(e["state"], e["reason"]) for e in ota.pending_events()]


def test_a_bundle_gives_every_certificate_in_der_one_per_load():
    ders = trust.certs(b"# the city's CAs\n" + CA1 + b"\n" + CA2)
    assert len(ders) == 2 and ders[0] != ders[1]
    assert all(d[0] == 0x30 for d in ders)
    assert http.pem_certs(CA2) == [ders[1]]
    assert net.cas(ders[0]) == [ders[0]] and net.cas(ders) == ders

    def ca_file():
        with open("ca.pem", "wb") as f:
            f.write(CA1 + CA2)
        assert http.ca_der("ca.pem") == ders  # every certificate, not the first only
        with open("ca.der", "wb") as f:
            f.write(ders[0])
        assert http.ca_der("ca.der") == [ders[0]]

    _in_flash(ca_file)


def test_bundles_that_do_not_parse_are_refused_with_the_reason():
    der = http.pem_certs(CA1)[0]
    cut = CA1.replace(b"-----END CERTIFICATE-----", b"")
    key = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
    cases = [
        (b"", "no PEM certificate"),
        (b"not a certificate at all", "no PEM certificate"),
        (cut, "no END line"),
        (CA1 + key, "private key"),
        (_pem(der + der), "not one DER certificate"),  # two glued: mbedTLS reads one
        (_pem(der[:-10]), "not one DER certificate"),  # cut short
        (_pem(b"\x30\x03abc"), "certificate 1"),  # the right shape, not a certificate
        (CA1 * 9, "over 8"),
    ]
    for data, why in cases:
        e = support.raises(ValueError, trust.certs, data)
        assert why in str(e), (data[:40], str(e))


def test_install_refuses_a_bundle_that_does_not_parse():
    def go():
        os.mkdir("b")
        with open("b/trust.pem", "wb") as f:
            f.write(_pem(b"\x30\x03abc"))
        e = support.raises(ota.Refused, trust.check_file, "b/trust.pem")
        assert "trust bundle trust.pem refused: certificate 1" in str(e), str(e)
        with open("b/trust.pem", "wb") as f:
            f.write(CA1 + CA2)
        trust.check_file("b/trust.pem")  # a good one passes

    _in_flash(go)


def _trial(bundle):
    """A confirmed-to-be trial of slot b, with bundle (or none) in it, on a station
    trusting CA1; returns the confirm's result."""
    os.mkdir("a")
    os.mkdir("b")
    with open("ca.pem", "wb") as f:
        f.write(CA1)
    if bundle is not None:
        with open("b/trust.pem", "wb") as f:
            f.write(bundle)
    ota.write_pointer({"good": "a", "trial": "b", "boots": 1, "max_boots": 3,
                       "release": "0.2.0"})
    real = ota.running_slot
    ota.running_slot = lambda: "b"
    try:
        return ota.confirm(5)
    finally:
        ota.running_slot = real


def _ca():
    with open("ca.pem", "rb") as f:
        return f.read()


def test_confirmed_bundle_is_used_once_it_verifies_the_server():
    ca1, ca2 = http.pem_certs(CA1)[0], http.pem_certs(CA2)[0]

    def go():
        assert _trial(CA1 + CA2)
        assert _ca() == CA1  # confirmed: set aside, not in use yet
        assert json.loads(open("slot.json").read()) == {"good": "b"}
        down = Net(None)
        assert not trust.adopt(down, CREDS, 6)  # no network: kept for a later wake
        assert _ca() == CA1 and open(ota.TRUST_NEW, "rb").read() == CA1 + CA2
        n = Net(ca1)  # the server still has its certificate from CA1
        assert trust.adopt(n, CREDS, 7)
        assert n.given == [[ca1, ca2]]  # one handshake, both CAs loaded
        assert _ca() == CA1 + CA2 and not fsutil.exists(ota.TRUST_NEW)
        assert _events()[-1] == ("confirmed", "trust bundle in use: 2 CA certificates")
        # and the uploads now verify against both: the server may move to CA2
        assert http.ca_der(CREDS["ca"]) == [ca1, ca2]

    _in_flash(go)


def test_a_bundle_that_does_not_verify_the_server_is_dropped_and_the_old_trust_kept():
    ca2 = http.pem_certs(CA2)[0]

    def go():
        _trial(CA2)  # only the new CA, while the server still shows CA1's certificate
        assert not trust.adopt(Net(http.pem_certs(CA1)[0]), CREDS, 7)
        assert _ca() == CA1 and not fsutil.exists(ota.TRUST_NEW)
        state, why = _events()[-1]
        assert state == "failed" and "does not verify the server" in why, why
        assert "keeps its current CA" in why
        assert not trust.adopt(Net(ca2), CREDS, 8)  # nothing left to adopt
        assert _ca() == CA1

    _in_flash(go)


def test_a_release_without_a_bundle_or_with_the_same_one_leaves_the_trust():
    def go():
        _trial(None)
        assert not fsutil.exists(ota.TRUST_NEW) and _ca() == CA1
        n = Net(http.pem_certs(CA1)[0])
        ota.work(n, CREDS, 3900, 6)  # no offer, nothing set aside: no handshake
        assert n.given == [] and _ca() == CA1

    def same():
        _trial(CA1)
        n = Net(http.pem_certs(CA1)[0])
        assert not trust.adopt(n, CREDS, 6)
        assert n.given == [] and not fsutil.exists(ota.TRUST_NEW)  # nothing to do

    _in_flash(go)
    _in_flash(same)


def test_ota_work_adopts_after_a_successful_upload_and_a_rollback_keeps_the_trust():
    ca1 = http.pem_certs(CA1)[0]

    def adopted():
        _trial(CA1 + CA2)
        ota.work(Net(ca1), CREDS, 3900, 6)
        assert _ca() == CA1 + CA2

    def rolled_back():  # boot.py rolled the trial back: never confirmed, nothing set aside
        os.mkdir("b")
        with open("b/trust.pem", "wb") as f:
            f.write(CA2)
        with open("ca.pem", "wb") as f:
            f.write(CA1)
        ota.write_pointer({"good": "a", "rolled_back": "0.2.0", "max_boots": 3})
        ota.after_boot(6)
        ota.work(Net(ca1), CREDS, 3900, 7)
        assert _ca() == CA1 and not fsutil.exists(ota.TRUST_NEW)

    _in_flash(adopted)
    _in_flash(rolled_back)


def test_a_plain_http_station_ignores_a_bundle_and_says_so():
    def go():
        _trial(CA1 + CA2)
        creds = {"device_id": 7, "server": "http://rig.local", "ca": None}
        assert not trust.adopt(Net(None), creds, 6)
        assert not fsutil.exists(ota.TRUST_NEW) and _ca() == CA1
        assert "not reached over https" in _events()[-1][1]

    _in_flash(go)


def test_a_bundle_set_aside_before_a_rollback_is_not_used():
    ca1 = http.pem_certs(CA1)[0]

    def go():  # confirmed and set aside, then a cut before the pointer, and a rollback
        os.mkdir("b")
        with open("b/trust.pem", "wb") as f:
            f.write(CA1 + CA2)
        with open("ca.pem", "wb") as f:
            f.write(CA1)
        fsutil.makedirs("ota")
        with open(ota.TRUST_NEW, "wb") as f:
            f.write(CA1 + CA2)
        ota.write_pointer({"good": "a", "max_boots": 3})
        n = Net(ca1)
        assert not trust.adopt(n, CREDS, 6)
        assert _ca() == CA1 and not fsutil.exists(ota.TRUST_NEW) and n.given == []
        assert "not the one running" in _events()[-1][1]

    _in_flash(go)


def test_an_adoption_that_fails_unexpectedly_never_stands_in_the_way_of_updates():
    def go():
        _trial(CA1 + CA2)
        real = trust.adopt

        def boom(*a, **k):
            raise MemoryError("no room for the bundle")
        trust.adopt = boom
        try:
            assert ota.work(Net(None), CREDS, 3900, 6) is False
        finally:
            trust.adopt = real
        assert not fsutil.exists(ota.TRUST_NEW) and _ca() == CA1
        assert "MemoryError" in _events()[-1][1]

    _in_flash(go)
