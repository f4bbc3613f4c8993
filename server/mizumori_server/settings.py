"""Settings from environment variables (prefix MIZUMORI_) or a .env file."""

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIZUMORI_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    # Default: a SQLite file under data_dir (WAL mode). Production: postgresql+psycopg://...
    database_url: str = ""
    # Signs nothing itself: keys for device secrets at rest and sessions are derived from it.
    # Must be set (and kept) in production; losing it means re-provisioning every device.
    secret_key: str = "dev-only-insecure-secret-key-change-me"
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
    retry_after_s: int = 30
    session_hours: int = 12
    login_attempts_per_minute: int = 10
    auto_migrate: bool = False
    # Fleet status: "late" after this many expected report intervals, "offline" after that.
    late_after_intervals: float = 1.5
    offline_after_intervals: float = 3.0

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
