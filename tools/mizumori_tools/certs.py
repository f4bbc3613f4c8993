"""A private CA and a server certificate signed by it: for the rig and tests (HTTPS with
CERT_REQUIRED on the station, as in the field) and for a city's own server if it has no other
CA. The station trusts the CA's certificate, provisioned as ca.pem."""

import datetime
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def verify(ca: str | None) -> ssl.SSLContext | bool:
    """What httpx verifies a server with: its private CA, or the system's."""
    return ssl.create_default_context(cafile=ca) if ca else True


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Mizumori"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make(dest: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"), days: int = 825,
         start: int | None = None) -> dict[str, Path]:
    """Write ca.pem, server.pem and server.key into dest; returns their paths. Valid from a
    day before start (Unix seconds; default now) for `days`: a station checks the dates
    against its own clock, so a server in simulated time needs certificates of that time."""
    now = (datetime.datetime.fromtimestamp(start, datetime.UTC) if start is not None
           else datetime.datetime.now(datetime.UTC))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Mizumori local CA"))
          .issuer_name(_name("Mizumori local CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    dest.mkdir(parents=True, exist_ok=True)
    out = {"ca": dest / "ca.pem", "cert": dest / "server.pem", "key": dest / "server.key"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return out
