"""The server's secret key (MIZUMORI_SECRET_KEY) and the checks made at start
(docs/operations.md, "The secret key").

- The built-in development key is refused unless MIZUMORI_INSECURE_DEV_KEY=true (the demo
  and the tests set a key of their own).
- The database keeps a check value of the key its secrets are sealed under (table
  `server_meta`, row `secret_key_check`): an HMAC under a key derived from the secret key
  for this purpose alone, so it tells nothing about the key that seals. A server started
  with another key refuses to start with one line saying what to do, instead of answering
  every upload with a 500.
- rotate_key re-seals every sealed secret under a new key in one transaction; servers
  given the old key in MIZUMORI_OLD_SECRET_KEYS open secrets under either meanwhile.
- MIZUMORI_* variables (and .env entries) that name no setting are reported at start, with
  the closest known name: a misspelt setting is otherwise silently ignored.
"""

import difflib
import hashlib
import hmac
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from mizumori_server import clock, db, security
from mizumori_server.models import Device, LorawanIntegration, ServerMeta, Webhook
from mizumori_server.settings import DEV_SECRET_KEY, ENV_FILE, Settings

log = logging.getLogger("mizumori.keys")

CHECK = "secret_key_check"
# Every column that holds a value sealed with security.SecretBox: a new one must be added
# here, or a rotation leaves it under the old key.
SEALED: tuple[tuple[Any, str], ...] = (
    (Device, "secret_enc"),
    (Webhook, "secret_enc"),
    (LorawanIntegration, "api_token_enc"),
)
# MIZUMORI_* variables read by the tools and the tests rather than by Settings.
OTHER_VARIABLES = frozenset({
    "MIZUMORI_CLOCK_FILE", "MIZUMORI_TOKEN", "MIZUMORI_PASSWORD",
    "MIZUMORI_TEST_DATABASE_URL", "MIZUMORI_FUZZ_EXAMPLES", "MIZUMORI_ARTIFACTS",
})
HOW = "docs/operations.md, \"The secret key\""


class Refused(RuntimeError):
    """The server must not start (or the rotation must not run): the message is one line
    saying what to do."""


def check_value(secret: str) -> str:
    """The check value stored for a key: HMAC-SHA256 of a constant under a key derived from
    the secret for this use only."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"mizumori key check v1").derive(secret.encode())
    return "v1:" + hmac.new(key, b"mizumori secret key check", hashlib.sha256).hexdigest()


# --- settings nobody reads ------------------------------------------------------------------

def known_variables() -> set[str]:
    return {f"MIZUMORI_{name.upper()}" for name in Settings.model_fields} | OTHER_VARIABLES


def unknown_settings(environ: Mapping[str, str] | None = None,
                     env_file: Path | None = ENV_FILE) -> list[tuple[str, str | None]]:
    """MIZUMORI_* names in the environment (and the .env file Settings reads) that name no
    setting: (name, the closest known name or None)."""
    names = {k.upper() for k in (os.environ if environ is None else environ)}
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        try:
            names |= {k.upper() for k in dotenv_values(env_file)}
        except (OSError, UnicodeError, ValueError):
            pass
    known = known_variables()
    out = []
    for name in sorted(n for n in names if n.startswith("MIZUMORI_") and n not in known):
        # compared without the prefix all of them share
        close = difflib.get_close_matches(name[9:], sorted(k[9:] for k in known), n=1,
                                          cutoff=0.6)
        out.append((name, "MIZUMORI_" + close[0] if close else None))
    return out


def unknown_settings_line(unknown: Sequence[tuple[str, str | None]]) -> str:
    parts = [f"{name} (did you mean {close}?)" if close else name for name, close in unknown]
    return ("mizumori: unknown setting" + ("s" if len(parts) > 1 else "") + ", ignored: "
            + ", ".join(parts))


def warn_unknown_settings(environ: Mapping[str, str] | None = None,
                          env_file: Path | None = ENV_FILE) -> str | None:
    unknown = unknown_settings(environ, env_file)
    if not unknown:
        return None
    line = unknown_settings_line(unknown)
    log.warning(line)
    return line


# --- the key itself --------------------------------------------------------------------------

def require_key(settings: Settings) -> None:
    """Refused for an empty key, or the built-in one unless insecure_dev_key is set."""
    if not settings.secret_key.strip():
        raise Refused("MIZUMORI_SECRET_KEY is empty: set it to a long random value (e.g. "
                      f"`openssl rand -base64 32`) kept apart from the backups ({HOW})")
    if settings.secret_key == DEV_SECRET_KEY and not settings.insecure_dev_key:
        raise Refused("MIZUMORI_SECRET_KEY is not set, and the built-in development key is "
                      "refused: set it to a long random value (e.g. `openssl rand -base64 "
                      f"32`) kept apart from the backups ({HOW}); for a throw-away test "
                      "server only, MIZUMORI_INSECURE_DEV_KEY=true")
    if settings.secret_key == DEV_SECRET_KEY:
        log.warning("mizumori: running with the built-in development key "
                    "(MIZUMORI_INSECURE_DEV_KEY=true): never for real stations")


def new_key() -> str:
    """A fresh secret key (what `mizumori keys new` prints)."""
    import secrets

    return secrets.token_urlsafe(32)


def box_for(settings: Settings) -> security.SecretBox:
    return security.SecretBox(settings.secret_key, settings.old_keys())


def _mismatch(stored_under: str = "") -> Refused:
    return Refused(
        "MIZUMORI_SECRET_KEY is not the key this database's secrets are sealed under"
        f"{stored_under} (restored or started with another key?): start with the key kept "
        "for this database; to change keys, give the old one in MIZUMORI_OLD_SECRET_KEYS "
        f"and run `mizumori keys rotate` ({HOW})")


def _first_sealed(conn: Any) -> bytes | None:
    for model, column in SEALED:
        col = getattr(model, column)
        value = conn.execute(select(col).where(col.is_not(None)).limit(1)).scalar()
        if value is not None:
            return bytes(value)
    return None


def verify_database(engine: Engine, settings: Settings) -> security.SecretBox:
    """At start: the box to seal and open secrets with, after checking that the database's
    secrets are sealed under MIZUMORI_SECRET_KEY (or, while a rotation is under way, one of
    MIZUMORI_OLD_SECRET_KEYS); Refused otherwise. A database without a check value yet gets
    one, of the key that opens the secrets already in it (any key, when there are none)."""
    box = box_for(settings)
    current = check_value(settings.secret_key)
    old = {check_value(k) for k in settings.old_keys()}
    for _ in range(2):
        with engine.begin() as conn:
            stored = conn.execute(select(ServerMeta.value)
                                  .where(ServerMeta.name == CHECK)).scalar()
            if stored is None:
                sample = _first_sealed(conn)
                value = current
                if sample is not None:
                    if not box.opens_with_current(sample):
                        under = [k for k in settings.old_keys()
                                 if security.SecretBox(k).opens_with_current(sample)]
                        if not under:
                            raise _mismatch()
                        value = check_value(under[0])
                try:
                    with conn.begin_nested():
                        conn.execute(insert(ServerMeta).values(
                            name=CHECK, value=value, updated_at=clock.now()))
                except IntegrityError:
                    continue  # another worker wrote it first: compare with that
                stored = value
        if stored == current:
            return box
        if stored in old:
            log.warning("mizumori: this database's secrets are sealed under a key in "
                        "MIZUMORI_OLD_SECRET_KEYS: run `mizumori keys rotate` to re-seal "
                        "them under MIZUMORI_SECRET_KEY")
            return box
        raise _mismatch()
    raise _mismatch()  # pragma: no cover - the row appeared and vanished


def startup(settings: Settings, engine: Engine) -> security.SecretBox:
    """Every check made before a server serves: unknown settings (a warning), the key
    (Refused for the development key or one that does not fit the database)."""
    warn_unknown_settings()
    require_key(settings)
    return verify_database(engine, settings)


# --- rotation --------------------------------------------------------------------------------

def rotate_key(engine: Engine, old: str | Sequence[str], new: str) -> dict[str, int]:
    """Re-seal every sealed secret under `new`, in one transaction: each value is opened
    with `new` or any of `old` (one key or several), sealed again under `new`, and the
    database's check value becomes `new`'s. Refused (nothing changed) if a value opens with
    none of them, or if the database's check value is of none of them. Returns how many
    values were re-sealed per table."""
    olds = [old] if isinstance(old, str) else list(old)
    if not new.strip() or new == DEV_SECRET_KEY:
        raise Refused("the new key is empty or the built-in development key: choose a long "
                      "random one (e.g. `openssl rand -base64 32`)")
    box = security.SecretBox(new, olds)
    known = {check_value(k) for k in (new, *olds)}
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        row = conn.execute(select(ServerMeta.value).where(ServerMeta.name == CHECK)
                           .with_for_update()).scalar()
        if row is not None and row not in known:
            raise Refused("neither MIZUMORI_SECRET_KEY nor MIZUMORI_OLD_SECRET_KEYS is the key "
                          "this database's secrets are sealed under: give the key they are "
                          f"sealed under in MIZUMORI_OLD_SECRET_KEYS ({HOW})")
        for model, column in SEALED:
            table = model.__table__
            col = table.c[column]
            rows = conn.execute(select(table.c.id, col).where(col.is_not(None))
                                .order_by(table.c.id).with_for_update()).all()
            for id_, sealed in rows:
                try:
                    plain = box.open(bytes(sealed))
                except security.SecretUnreadable:
                    raise Refused(f"{table.name} {id_}: its secret opens with none of the "
                                  "keys given (MIZUMORI_SECRET_KEY, MIZUMORI_OLD_SECRET_KEYS); "
                                  "nothing was changed") from None
                conn.execute(update(table).where(table.c.id == id_)
                             .values({column: box.seal(plain)}))
            counts[table.name] = len(rows)
        values = {"value": check_value(new), "updated_at": clock.now()}
        if row is None:
            conn.execute(insert(ServerMeta).values(name=CHECK, **values))
        else:
            conn.execute(update(ServerMeta).where(ServerMeta.name == CHECK).values(**values))
    return counts


def rotate_from_settings(settings: Settings) -> str:
    """`mizumori keys rotate`: re-seal under MIZUMORI_SECRET_KEY whatever is sealed under
    it or under MIZUMORI_OLD_SECRET_KEYS; a one-line summary, or Refused."""
    require_key(settings)
    if not settings.old_keys():
        raise Refused("MIZUMORI_OLD_SECRET_KEYS is empty: give the key the secrets are sealed "
                      "under now there, and the new key in MIZUMORI_SECRET_KEY")
    engine = db.make_engine(settings.effective_database_url())
    try:
        try:
            db.require_migrated(engine)
        except db.NotMigrated as e:
            raise Refused(str(e)) from None
        counts = rotate_key(engine, settings.old_keys(), settings.secret_key)
    finally:
        engine.dispose()
    done = ", ".join(f"{n} in {t}" for t, n in counts.items())
    return (f"re-sealed under the new key: {done}. Keep the new key apart from the backups; "
            "remove MIZUMORI_OLD_SECRET_KEYS once every server runs with the new key")
