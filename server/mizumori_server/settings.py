"""Settings from environment variables (prefix MIZUMORI_) or a settings file.

Neither depends on the working directory once deployed: the settings file is
$MIZUMORI_ENV_FILE when that is set (empty: none), else `.env` in the working directory (for
development only); the data folder is $MIZUMORI_DATA_DIR, else $STATE_DIRECTORY (what
systemd's StateDirectory= gives the service, e.g. /var/lib/mizumori), else the `data`
folder of the checkout the server runs from (docs/operations.md, "Deployment")."""

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mizumori_server import destinations

# The built-in key: refused unless MIZUMORI_INSECURE_DEV_KEY=true (keys.require_key).
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"

# The checkout the server runs from (`pip install -e .`): server/mizumori_server/ is in it.
CHECKOUT = Path(__file__).resolve().parents[2]
# The settings file: $MIZUMORI_ENV_FILE (an absolute path; set but empty: no file), else
# .env in the working directory (development).
ENV_FILE: Path | None = (Path(os.environ["MIZUMORI_ENV_FILE"]).absolute()
                         if os.environ.get("MIZUMORI_ENV_FILE")
                         else None if "MIZUMORI_ENV_FILE" in os.environ else Path(".env"))


def default_data_dir() -> Path:
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]  # systemd's StateDirectory=
    return Path(state) if state else CHECKOUT / "data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIZUMORI_", env_file=ENV_FILE,
                                      extra="ignore")

    # Where the default SQLite database lives: absolute (a relative value is taken from the
    # working directory at start, once). Default: default_data_dir().
    data_dir: Path = Field(default_factory=default_data_dir)
    # The settings file (read from the environment before the settings: ENV_FILE).
    env_file: str = ""
    # Default: a SQLite file under data_dir (WAL mode). Production: postgresql+psycopg://...
    database_url: str = ""
    # Seals the secrets the server keeps (devices', webhooks', network servers' API tokens):
    # the key that encrypts them is derived from it (security.SecretBox). Must be set, and
    # kept apart from the backups (docs/operations.md); losing it means re-provisioning
    # every device. The built-in value is refused unless insecure_dev_key is true.
    secret_key: str = DEV_SECRET_KEY
    # Earlier keys, comma-separated: still accepted to open secrets sealed under them while
    # `mizumori keys rotate` re-seals everything under secret_key (keys.rotate_key).
    old_secret_keys: str = ""
    insecure_dev_key: bool = False  # accept the built-in key (a throw-away test server)
    # Batch self-registration of devices whose hardware id is on the allowlist; empty = off.
    provisioning_secret: str = ""
    # Ed25519 public keys (hex) a release must be signed with: comma-separated, and/or one
    # per line in release_keys_file. The private keys never come near the server.
    release_keys: str = ""
    release_keys_file: Path | None = None
    max_release_bytes: int = 8 * 1024 * 1024
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024
    # Ingest requests in flight per worker before answering 503 + Retry-After.
    max_inflight_ingest: int = 64
    # Threads per worker doing ingest's database work. Few is faster: with many, each thread
    # returning from a database round trip waits for the GIL behind the others.
    ingest_threads: int = 4
    # PostgreSQL connections per worker process: db_pool_size kept open, db_max_overflow more
    # under load. A server holds at most workers x (pool + overflow) + 2 (migrations, the
    # prune/offline loop share the pool): keep that under max_connections (100 by default,
    # 3 reserved) or put PgBouncer in front (docs/operations.md, "Database connections").
    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_max_overflow: int = Field(default=5, ge=0, le=100)
    retry_after_s: int = 30
    session_hours: int = 12
    login_attempts_per_minute: int = 10
    auto_migrate: bool = False
    # Fleet status: "late" after this many expected report intervals, "offline" after that.
    late_after_intervals: float = 1.5
    offline_after_intervals: float = 3.0
    # Alerts (docs/alerts.md). An offline alert opens after offline_after_intervals.
    battery_low_mv: int = 3400
    battery_clear_mv: int = 3500
    rise_window_s: int = 3600  # rate of rise: newest reading against the oldest in this
    rise_min_span_s: int = 900  # window, once the readings span at least this long
    fault_repeat: int = 3  # consecutive faulty (clean) readings that open (close) a fault
    # Each worker runs the offline check (every check_every_s) and the webhook sender in
    # the background, each on its own.
    background: bool = True
    check_every_s: float = 30.0
    webhook_timeout_s: float = 10.0
    # Deliveries in flight per webhook per worker: a receiver that never answers holds at
    # most this many of one worker's sends, never another webhook's (background.py).
    webhook_concurrency: int = 4
    webhook_retry_s: int = 30  # first retry; doubles up to webhook_retry_max_s
    webhook_retry_max_s: int = 3600
    webhook_expire_s: int = 86400
    # Webhook destinations allowed although not public (loopback, private, link-local...):
    # comma-separated addresses, networks or host names, each with an optional port, e.g.
    # "127.0.0.1:8080,10.20.0.0/16,gis.city.local:8443" (destinations.py, docs/alerts.md).
    webhook_allow: str = ""
    # Open data: anonymous read access to /ogc, /open and /cap (off: a login is needed).
    open_data: bool = False
    cap_sender: str = "mizumori@localhost"
    # The dashboard (docs/operator.md): its default language (ja | en), the time zone dates
    # are shown in, and the map's tiles (the GSI's standard map; "" = no tiles, stations on
    # a plain background, as on a network that reaches no tile server).
    language: str = "ja"
    timezone: str = "Asia/Tokyo"
    tile_url: str = "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png"
    tile_attribution: str = "地理院タイル (GSI)"
    # --- operations (docs/operations.md) ---
    # One structured line per request on the `mizumori.access` logger (request id, method,
    # path without secrets, status, duration, device id).
    access_log: bool = True
    # Readiness (/readyz): the data folder's file system must have this much free space.
    ready_min_free_mb: int = 512
    # A wall-clock step larger than this between two background ticks (against the
    # monotonic clock) is a clock jump: the offline check skips its round (clock.py).
    clock_jump_s: float = 60.0
    # Pruning (prune.py), every prune_every_s in each worker's background (0: never):
    # expired sessions at once, expired API tokens after token_grace_days, delivered or
    # expired webhook deliveries after delivery_retention_days, raw readings after
    # reading_retention_days (0: kept for ever, the default).
    prune_every_s: float = 3600.0
    token_grace_days: int = 30
    delivery_retention_days: int = 30
    reading_retention_days: int = 0
    # Personal API tokens created without `days` expire after this many days (0: never).
    token_days: int = 365

    @field_validator("webhook_allow")
    @classmethod
    def _allow_list(cls, v: str) -> str:
        destinations.parse_allow(v)  # a malformed entry stops the server at start
        return v

    @field_validator("webhook_concurrency")
    @classmethod
    def _concurrency(cls, v: int) -> int:
        if not 1 <= v <= 64:
            raise ValueError("webhook_concurrency must be 1..64")
        return v

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.absolute()  # once, at start: a later change of directory changes nothing

    @field_validator("ready_min_free_mb", "token_grace_days", "delivery_retention_days",
                     "reading_retention_days", "token_days")
    @classmethod
    def _not_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must be 0 or more")
        return v

    @field_validator("reading_retention_days")
    @classmethod
    def _retention(cls, v: int) -> int:
        if 0 < v < 30:  # stations keep acknowledged readings for days to resend them
            raise ValueError("reading_retention_days must be 0 (keep for ever) or at least 30")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not a time zone name (e.g. Asia/Tokyo)") from None
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        if v not in ("ja", "en"):
            raise ValueError("language must be ja or en")
        return v

    @field_validator("release_keys_file")
    @classmethod
    def _keys_file(cls, v: Path | None) -> Path | None:
        if v is None:
            return v
        try:
            text = v.read_text()
        except OSError as e:
            raise ValueError(f"{v}: cannot be read ({e.strerror})") from None
        for n, line in enumerate(text.splitlines(), 1):
            key = line.split("#", 1)[0].strip()
            if key and (len(key) != 64 or any(c not in "0123456789abcdefABCDEF"
                                              for c in key)):
                raise ValueError(f"{v} line {n}: not an Ed25519 public key (64 hex digits; "
                                 "`mizumori release keygen` writes one to keys/*.pub)")
        return v

    def old_keys(self) -> list[str]:
        return [k.strip() for k in self.old_secret_keys.split(",") if k.strip()]

    def trusted_release_keys(self) -> list[str]:
        text = self.release_keys.replace(",", "\n")
        if self.release_keys_file is not None:
            text += "\n" + self.release_keys_file.read_text()
        lines = (line.split("#", 1)[0].strip().lower() for line in text.splitlines())
        return [k for k in lines if k]

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mizumori.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
