"""Signed releases: check an uploaded bundle and store it, immutable (docs/ota.md).

A bundle is a tar archive holding manifest.json (the exact bytes that were signed),
manifest.sig (the Ed25519 signature, hex) and files/<path> for every file the manifest
lists. The server checks the signature against its trusted public keys and every file
against the manifest; it never holds a private key.

A bundle is a plain (uncompressed) tar, as `mizumori release build` writes it: a compressed
one is refused (415) before anything is inflated, so the upload limit
(MIZUMORI_MAX_RELEASE_BYTES) bounds what the server holds in memory. Sparse members (whose
holes would read back as zeros beyond the bytes sent) and more than MAX_MEMBERS members are
refused too."""

import hashlib
import io
import json
import re
import tarfile
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from mizumori_server import jsonlimits
from mizumori_server.inputs import INT32_MAX
from mizumori_server.models import Release, ReleaseFile

VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,31}$")
PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}$")
MPY = re.compile(r"^\d+\.\d+$")
MAX_MEMBERS = 1000  # files in a bundle (a release has a few dozen)
# The first bytes of the compressed formats tarfile would otherwise open ("r:*").
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
              b"\x5d\x00\x00": "lzma", b"\x28\xb5\x2f\xfd": "zstd"}


class ReleaseError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def read_bundle(data: bytes) -> tuple[bytes, str, dict[str, bytes]]:
    """(manifest bytes, signature hex, {path: content}) from a bundle; ReleaseError if it is
    not a well-formed one."""
    for magic, kind in COMPRESSED.items():
        if data.startswith(magic):
            raise ReleaseError(415, f"a {kind}-compressed bundle: upload the plain tar that "
                                    "`mizumori release build` writes")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # plain tar only
        members = []
        end = 0
        for m in tar:  # stops counting at the limit instead of listing a million headers
            # Each member's data must lie after the last one's, inside the bundle: a GNU
            # base-256 header can give a negative size, which sends tarfile back to an
            # earlier header, and such members would cancel out in the size check below.
            if m.size < 0 or m.offset_data < end or m.offset_data + m.size > len(data):
                raise ReleaseError(400, f"bundle member {m.name}: bad size or position")
            end = m.offset_data + m.size
            members.append(m)
            if len(members) > MAX_MEMBERS:
                raise ReleaseError(400, f"bundle has more than {MAX_MEMBERS} members")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ReleaseError(400, f"not a release bundle (tar): {e}") from None
    if sum(m.size for m in members) > len(data):
        raise ReleaseError(400, "bundle members are larger than the bundle")
    manifest = sig = None
    files: dict[str, bytes] = {}
    for m in members:
        if m.isdir():
            continue
        if not m.isfile() or m.issparse():
            raise ReleaseError(400, f"bundle member {m.name}: only regular files allowed")
        try:
            content = tar.extractfile(m).read()  # type: ignore[union-attr]
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ReleaseError(400, f"not a release bundle (tar): {e}") from None
        name = m.name.removeprefix("./")
        if name == "manifest.json":
            manifest = content
        elif name == "manifest.sig":
            sig = content.decode("ascii", "replace").strip()
        elif name.startswith("files/") and _safe(name[6:]):
            files[name[6:]] = content
        else:
            raise ReleaseError(400, f"unexpected bundle member {m.name!r}")
    if manifest is None or sig is None:
        raise ReleaseError(400, "bundle lacks manifest.json or manifest.sig")
    return manifest, sig, files


def _safe(path: str) -> bool:
    return bool(PATH.match(path)) and ".." not in path.split("/")


def parse_manifest(raw: bytes) -> dict[str, Any]:
    try:
        m = jsonlimits.loads(raw, len(raw))
        version, mpy, entries = m["version"], m["mpy"], m["files"]
        battery = m.get("min_battery_mv", 0)
    except jsonlimits.JsonError as err:
        raise ReleaseError(422, f"malformed manifest: {err.message}") from None
    except (KeyError, TypeError, AttributeError) as err:
        raise ReleaseError(422, f"malformed manifest: {err!r}") from None
    if not isinstance(version, str) or not VERSION.match(version):
        raise ReleaseError(422, f"manifest version {version!r}: 1-32 of [0-9A-Za-z._+-]")
    if not isinstance(mpy, str) or not MPY.match(mpy):
        raise ReleaseError(422, f"manifest mpy {mpy!r}: expected like \"6.3\"")
    if not isinstance(battery, int) or isinstance(battery, bool) or not 0 <= battery <= 5000:
        raise ReleaseError(422, "manifest min_battery_mv: an integer 0..5000")
    if not isinstance(entries, list) or not entries:
        raise ReleaseError(422, "manifest lists no files")
    seen = set()
    for e in entries:
        ok = (isinstance(e, dict) and isinstance(e.get("path"), str) and _safe(e["path"])
              and isinstance(e.get("sha256"), str) and re.match(r"^[0-9a-f]{64}$", e["sha256"])
              and isinstance(e.get("size"), int) and not isinstance(e["size"], bool)
              and 0 <= e["size"] <= INT32_MAX)
        if not ok:
            raise ReleaseError(422, f"manifest file entry {e!r}: needs path, sha256, size")
        if e["path"] in seen:
            raise ReleaseError(422, f"manifest lists {e['path']} twice")
        seen.add(e["path"])
    return dict(m)


def signed_by(manifest: bytes, sig_hex: str, keys: list[str]) -> str:
    """The trusted key (hex) that signed these exact bytes; ReleaseError if none did."""
    if not keys:
        raise ReleaseError(503, "no trusted release keys configured on the server "
                                "(MIZUMORI_RELEASE_KEYS or MIZUMORI_RELEASE_KEYS_FILE)")
    try:
        sig = bytes.fromhex(sig_hex)
    except ValueError:
        raise ReleaseError(422, "manifest.sig is not hex") from None
    if len(sig) != 64:
        raise ReleaseError(422, "manifest.sig is not a 64-byte Ed25519 signature")
    for key in keys:
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(key)).verify(sig, manifest)
            return key
        except (InvalidSignature, ValueError):
            continue
    raise ReleaseError(422, "signature does not verify with any trusted release key "
                            "(tampered manifest, or signed with an untrusted key)")


def store(session: Session, data: bytes, keys: list[str], by: str, now: int) -> Release:
    """Check a bundle completely, then store it; nothing is stored if any check fails."""
    raw, sig, files = read_bundle(data)
    key = signed_by(raw, sig, keys)
    m = parse_manifest(raw)
    listed = {e["path"]: e for e in m["files"]}
    for path, e in listed.items():
        content = files.get(path)
        if content is None:
            raise ReleaseError(422, f"bundle lacks {path}, listed in the manifest")
        if len(content) != e["size"] or hashlib.sha256(content).hexdigest() != e["sha256"]:
            raise ReleaseError(422, f"{path} does not match the manifest's size and sha256")
    extra = sorted(set(files) - set(listed))
    if extra:
        raise ReleaseError(422, f"bundle holds files the manifest does not list: {extra}")
    if session.scalars(select(Release.id).where(Release.version == m["version"])).first():
        raise ReleaseError(409, f"release {m['version']} exists; releases are immutable, "
                                "build a new version")
    rel = Release(version=m["version"], manifest=raw, signature=bytes.fromhex(sig).hex(),
                  key_id=key[:16],
                  mpy=m["mpy"], min_battery_mv=m.get("min_battery_mv", 0),
                  size=sum(e["size"] for e in listed.values()), created_at=now, created_by=by)
    session.add(rel)
    session.flush()
    for path, e in listed.items():
        session.add(ReleaseFile(release_id=rel.id, path=path, sha256=e["sha256"],
                                size=e["size"], content=files[path]))
    return rel


def release_json(r: Release) -> dict[str, Any]:
    m = json.loads(r.manifest)
    return {"version": r.version, "mpy": r.mpy, "min_battery_mv": r.min_battery_mv,
            "size": r.size, "files": m["files"], "key_id": r.key_id,
            "signature": r.signature, "created_at": r.created_at, "created_by": r.created_by}
