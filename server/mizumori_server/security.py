"""Passwords, bearer tokens, device secrets and the device request signature."""

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_hasher = PasswordHasher()

# What a device signs: see docs/protocol.md, "Authenticating an upload".
SIGNATURE_PREFIX = b"MZM1\n"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


@functools.cache
def dummy_hash() -> str:
    """A hash no password matches, to verify against when the user does not exist: a login
    takes as long for an unknown user name as for a known one."""
    return _hasher.hash(secrets.token_urlsafe(32))


# --- the password policy (docs/server.md, "Security") -------------------------------------

MIN_PASSWORD = 10
MAX_PASSWORD = 200
MIN_DISTINCT = 5  # "aaaaaaaaaa", "abababababab"
MIN_NAME_IN_PASSWORD = 3  # a user name this long must not appear in the password


class WeakPassword(ValueError):
    """A password the policy refuses; the message says why, in a few words."""


@functools.cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords (lower case), as the zxcvbn package ships them."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

    return frozenset(p.casefold() for p in FREQUENCY_LISTS["passwords"])


def password_problem(password: str, username: str) -> str | None:
    """Why the policy refuses this password for this user, or None: shorter than
    MIN_PASSWORD characters (or longer than MAX_PASSWORD); fewer than MIN_DISTINCT different
    characters; the user name in it (any case); a common password, also with digits or
    punctuation added at its end ("Password123!")."""
    if len(password) < MIN_PASSWORD:
        return f"needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"may have at most {MAX_PASSWORD} characters"
    if len(set(password)) < MIN_DISTINCT:
        return f"needs at least {MIN_DISTINCT} different characters"
    folded, name = password.casefold(), username.casefold()
    if name and (folded == name or len(name) >= MIN_NAME_IN_PASSWORD and name in folded):
        return "must not contain the user name"
    common = common_passwords()
    stem = folded.rstrip("0123456789!@#$%^&*()-_=+.,;:?~ ")
    if folded in common or (len(stem) >= 4 and stem in common):
        return "is too common (in a list of the most used passwords)"
    return None


def check_password(password: str, username: str) -> None:
    """Raise WeakPassword("password: <why>") if the policy refuses the password."""
    problem = password_problem(password, username)
    if problem is not None:
        raise WeakPassword(f"password {problem}")


def new_token() -> str:
    """A bearer token. Never one starting with "-": on a command line (`--token T`) that
    would read as an option and the command would refuse it."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SecretUnreadable(RuntimeError):
    """A sealed value that none of the server's keys opens (sealed under another key)."""


def _aead(server_secret: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"mizumori device secrets v1").derive(server_secret.encode())
    return AESGCM(key)


class SecretBox:
    """Encrypts device secrets at rest (AES-256-GCM, key derived from the server secret).
    Seals under the current key; opens with it or, during a key rotation, with any of the
    old keys (MIZUMORI_OLD_SECRET_KEYS) until `mizumori keys rotate` re-sealed everything
    (keys.rotate_key)."""

    def __init__(self, server_secret: str, old_secrets: Sequence[str] = ()):
        self._aead = _aead(server_secret)
        self._old = [_aead(s) for s in old_secrets if s and s != server_secret]
        self._opened: dict[bytes, bytes] = {}

    def seal(self, plain: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plain, b"device-secret")

    def open(self, sealed: bytes) -> bytes:
        """The plain value; SecretUnreadable if no key of this box sealed it."""
        for aead in (self._aead, *self._old):
            try:
                return aead.decrypt(sealed[:12], sealed[12:], b"device-secret")
            except InvalidTag:
                continue
        raise SecretUnreadable("sealed under a key this server does not have "
                               "(MIZUMORI_SECRET_KEY / MIZUMORI_OLD_SECRET_KEYS)")

    def opens_with_current(self, sealed: bytes) -> bool:
        try:
            self._aead.decrypt(sealed[:12], sealed[12:], b"device-secret")
        except InvalidTag:
            return False
        return True

    def open_cached(self, sealed: bytes) -> bytes:
        """open(), remembered per sealed value (a rotated secret is a new sealed value)."""
        plain = self._opened.get(sealed)
        if plain is None:
            if len(self._opened) > 100_000:
                self._opened.clear()
            plain = self._opened[sealed] = self.open(sealed)
        return plain


def new_device_secret() -> bytes:
    return secrets.token_bytes(32)


def secret_text(secret: bytes) -> str:
    return base64.b16encode(secret).decode().lower()


def signed_bytes(device_id: int, counter: int, body: bytes) -> bytes:
    return SIGNATURE_PREFIX + f"{device_id}\n{counter}\n".encode() + body


def sign(secret: bytes, device_id: int, counter: int, body: bytes) -> str:
    return hmac.new(secret, signed_bytes(device_id, counter, body), hashlib.sha256).hexdigest()


def signature_ok(secret: bytes, device_id: int, counter: int, body: bytes, given: str) -> bool:
    return hmac.compare_digest(sign(secret, device_id, counter, body), given.lower())
