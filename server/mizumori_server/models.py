"""The database model. Times are stored as integer Unix seconds (portable, compact, and
bucketing for downsampling is integer division on every database)."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("admin", "operator", "technician", "viewer")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    """A personal API token (scripts) or a login session (dashboard): both are bearer
    secrets whose SHA-256 is stored, never the secret itself."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # "token" | "session"
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class LoginAttempt(Base):
    """Failed logins, for rate limiting that holds across workers."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), index=True)  # username or client address
    at: Mapped[int] = mapped_column(BigInteger, index=True)


class Station(Base):
    __tablename__ = "stations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    site_type: Mapped[str] = mapped_column(String(32))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    datum_m: Mapped[float] = mapped_column(Float, default=0.0)  # datum elevation, T.P. m
    mount_height_mm: Mapped[int] = mapped_column(Integer)
    standby_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 水防団待機水位
    caution_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)  # はん濫注意水位
    evacuation_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 避難判断水位
    danger_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)  # はん濫危険水位
    rise_limit_mm_h: Mapped[int] = mapped_column(Integer, default=300)
    # A river level reached stays reached until the water is this far below it again.
    hysteresis_mm: Mapped[int] = mapped_column(Integer, default=50)
    # The station's schedule, pushed to its device: a reading every interval, uploaded every
    # `upload_every` readings in normal times and every reading in flood mode.
    interval_normal_s: Mapped[int] = mapped_column(Integer, default=600)
    interval_flood_s: Mapped[int] = mapped_column(Integer, default=120)
    upload_every: Mapped[int] = mapped_column(Integer, default=3)
    tags: Mapped[list] = mapped_column(JSON, default=list)  # groups, e.g. for rollouts
    created_at: Mapped[int] = mapped_column(BigInteger)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hardware_id: Mapped[str] = mapped_column(String(64), unique=True)
    transport: Mapped[str] = mapped_column(String(16), default="wifi")  # wifi | lorawan
    dev_eui: Mapped[str | None] = mapped_column(String(16), unique=True, nullable=True)
    firmware_version: Mapped[str] = mapped_column(String(32), default="")
    station_id: Mapped[int | None] = mapped_column(
        ForeignKey("stations.id", ondelete="SET NULL"), nullable=True, index=True)
    # The per-device HMAC secret, AES-GCM encrypted with a key derived from the server's
    # secret key (HMAC verification needs the secret itself, so a hash will not do).
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    last_counter: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)  # for 24 -> 32 bit seq
    desired_config: Mapped[dict] = mapped_column(JSON, default=dict)
    desired_version: Mapped[int] = mapped_column(Integer, default=0)
    reported_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    provisioned_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # LoRaWAN: the network server's own id for it (The Things Stack's device_id, for
    # downlinks) and the config version last queued as a downlink (docs/lorawan.md).
    ns_device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    downlink_version: Mapped[int] = mapped_column(Integer, default=0)
    # That version's downlinks: when last queued, how often, and the uplinks heard since
    # while the device still reported an older version (uplink_fcnt: the frame counter of
    # the last one counted, so copies of a frame count once). They go again only after two
    # such uplinks and a wait doubling from an hour to a day (api/lorawan.py, send_config).
    downlink_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    downlink_tries: Mapped[int] = mapped_column(Integer, default=0)
    downlink_uplinks: Mapped[int] = mapped_column(Integer, default=0)
    uplink_fcnt: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The last delivery report queued for it (kind:seq:FCnt:hash of the uplink that asked):
    # the copies of one uplink (one per gateway, a retried webhook) reach any worker; the one
    # that claims this queues the report, the others see it claimed.
    delivery_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # What the station itself reported about its health (POST /api/ota/report): its last
    # error (kept after the station reports it gone: error_cleared_at says when) and its
    # last reset other than a wake from deep sleep; reset_reported is the cause its last
    # report said, deepsleep included (a repeat is not a new reset). Server times.
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_error_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error_cleared_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reset_cause: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reset_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reset_reported: Mapped[str | None] = mapped_column(String(16), nullable=True)


class DeviceInstall(Base):
    """Which device measured for which station, and when (history survives replacement)."""

    __tablename__ = "device_installs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    installed_at: Mapped[int] = mapped_column(BigInteger)
    removed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    by_user: Mapped[str] = mapped_column(String(64), default="")
    # Who took it off the station, and the device that replaced it (None: removed only).
    removed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    replaced_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # One device at a time per station: of two installed at once, one is refused.
    __table_args__ = (
        Index("uq_device_installs_station_current", "station_id", unique=True,
              sqlite_where=text("removed_at IS NULL"),
              postgresql_where=text("removed_at IS NULL")),
    )


class AllowlistEntry(Base):
    """Hardware ids that may register themselves with the batch provisioning secret."""

    __tablename__ = "provisioning_allowlist"
    hardware_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    station_id: Mapped[int | None] = mapped_column(
        ForeignKey("stations.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Whether the board may replace a device already installed at its station.
    may_replace: Mapped[bool] = mapped_column(Boolean, default=False)


class Reading(Base):
    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    t: Mapped[int] = mapped_column(BigInteger)  # measured (received - age), Unix s
    received: Mapped[int] = mapped_column(BigInteger)
    level_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    battery_mv: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flags: Mapped[int] = mapped_column(Integer, default=0)
    temperature_c: Mapped[float | None] = mapped_column(Float, nullable=True)
    humidity_pct: Mapped[float | None] = mapped_column(Float, nullable=True)
    pressure_hpa: Mapped[float | None] = mapped_column(Float, nullable=True)
    rain_mm: Mapped[float | None] = mapped_column(Float, nullable=True)
    # How a LoRaWAN uplink arrived (best gateway's RSSI and SNR, gateways, data rate).
    link_rssi: Mapped[int | None] = mapped_column(Integer, nullable=True)
    link_snr: Mapped[float | None] = mapped_column(Float, nullable=True)
    link_gateways: Mapped[int | None] = mapped_column(Integer, nullable=True)
    link_dr: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The quality record that came with it (docs/protocol.md; None: none came): its flags
    # (codec.QUALITY_NAMES), the burst's spread (1.4826 x MAD, mm) and the calibration
    # version the station measured with (the low 16 bits of its cal_version).
    quality: Mapped[int | None] = mapped_column(Integer, nullable=True)
    spread_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    calibration_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_readings_device_seq"),
        Index("ix_readings_station_t", "station_id", "t"),
    )


class Digest(Base):
    """A daily digest (docs/protocol.md): what a station of the MLIT profile sends over
    LoRaWAN in watch mode instead of the day's readings, which stay on the station. It stands
    for readings first_seq..seq: no level reading of its own, but it proves the station alive
    and counts as holding those readings when the station asks what the server has."""

    __tablename__ = "digests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)  # the newest reading it stands for
    first_seq: Mapped[int] = mapped_column(BigInteger)  # the oldest
    t: Mapped[int] = mapped_column(BigInteger)  # received (it carries no age), Unix s
    readings: Mapped[int] = mapped_column(Integer)  # seq - first_seq + 1
    level_min_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    level_max_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    battery_mv: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the newest
    flags: Mapped[int] = mapped_column(Integer, default=0)  # every flag of those readings
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_digests_device_seq"),
        Index("ix_digests_station_t", "station_id", "t"),
    )


class StationLatest(Base):
    """A station's latest state, updated with every ingest, so map, fleet and GIS queries
    cost O(stations) and never touch the history."""

    __tablename__ = "station_latest"
    station_id: Mapped[int] = mapped_column(
        ForeignKey("stations.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    t: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # newest reading
    level_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flags: Mapped[int] = mapped_column(Integer, default=0)
    battery_mv: Mapped[int | None] = mapped_column(Integer, nullable=True)
    temperature_c: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_seen: Mapped[int] = mapped_column(BigInteger)  # last authenticated upload
    rssi_dbm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queue_depth: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dropped: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reset_cause: Mapped[str | None] = mapped_column(String(16), nullable=True)


class Release(Base):
    """A signed application release (docs/ota.md). Immutable once stored: the manifest is
    kept as the exact bytes that were signed."""

    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(32), unique=True)
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[str] = mapped_column(String(128))  # Ed25519, hex
    key_id: Mapped[str] = mapped_column(String(16))  # first 16 hex digits of the public key
    mpy: Mapped[str] = mapped_column(String(8))
    min_battery_mv: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64))


class ReleaseFile(Base):
    __tablename__ = "release_files"
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(200), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Rollout(Base):
    """A release offered to a set of devices in stages (docs/ota.md, "Rollouts")."""

    __tablename__ = "rollouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    target: Mapped[dict] = mapped_column(JSON)
    stages: Mapped[list] = mapped_column(JSON)  # cumulative percentages, e.g. [5, 25, 100]
    stage: Mapped[int] = mapped_column(Integer, default=0)
    stage_started_at: Mapped[int] = mapped_column(BigInteger)
    auto_advance: Mapped[bool] = mapped_column(Boolean, default=True)
    success_pct: Mapped[int] = mapped_column(Integer, default=90)
    max_failures: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_failure_pct: Mapped[int | None] = mapped_column(Integer, nullable=True)
    min_devices: Mapped[int] = mapped_column(Integer, default=1)
    per_minute: Mapped[int] = mapped_column(Integer, default=10)
    jitter_s: Mapped[int] = mapped_column(Integer, default=0)
    timeout_s: Mapped[int] = mapped_column(Integer, default=86400)
    # active | paused | waiting (for a person to advance) | halted | aborted | completed
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300), default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class RolloutDevice(Base):
    """One device in one rollout: its bucket (stage membership) and where its update is.
    `active` while the rollout may still act on it; the database allows one active row per
    device, so a device is never in two rollouts at once."""

    __tablename__ = "rollout_devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    bucket: Mapped[int] = mapped_column(Integer)  # 0..9999 from hash(device, release)
    # pending | offered | downloading | downloaded | installed | confirmed | failed |
    # rolled_back
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(300), default="")
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    offered_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    __table_args__ = (
        UniqueConstraint("rollout_id", "device_id", name="uq_rollout_devices"),
        Index("uq_rollout_devices_active", "device_id", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
    )


class OtaEvent(Base):
    """Every update state a device reported, and what the server decided (history)."""

    __tablename__ = "ota_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           index=True)
    rollout_id: Mapped[int | None] = mapped_column(
        ForeignKey("rollouts.id", ondelete="SET NULL"), nullable=True)
    release: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[int] = mapped_column(BigInteger)


class DeviceEvent(Base):
    """A station's errors and resets as it reported them, the last few per device
    (devices.HEALTH_HISTORY): when an error started, changed or cleared, and each reset."""

    __tablename__ = "device_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           index=True)
    kind: Mapped[str] = mapped_column(String(8))  # error | cleared | reset
    text: Mapped[str] = mapped_column(String(200), default="")  # the error, or the cause
    at: Mapped[int] = mapped_column(BigInteger)  # the server's time
    clock: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the station's


class Alert(Base):
    """Something an operator must know about a station (docs/alerts.md). At most one alert
    per (station, type) is not closed: the database enforces it, so concurrent workers
    cannot raise the same alert twice."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id", ondelete="CASCADE"))
    # level | rise | offline | battery | fault | queue_overflow
    type: Mapped[str] = mapped_column(String(16))
    level: Mapped[int] = mapped_column(Integer, default=0)  # river level 1..4 (type level)
    max_level: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="open")  # open|acknowledged|closed
    message: Mapped[str] = mapped_column(String(300), default="")
    value: Mapped[float | None] = mapped_column(Float, nullable=True)  # what triggered it
    opened_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    acknowledged_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ack_note: Mapped[str] = mapped_column(String(500), default="")
    closed_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # or "server"
    # A river-level alert's levels, oldest first: [{"level": k, "at": t}], each level it
    # reached (raised or lowered to) and when; the last one is the current level.
    levels: Mapped[list] = mapped_column(JSON, default=list)
    # What the alert is about, as values its message is written from in either language
    # (alerts.describe): level_mm; rate_mm_h, limit_mm_h; battery_mv, low_mv; readings,
    # flags; dropped, first_seq; last_seen, expected_s. {} for alerts from before.
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    __table_args__ = (
        Index("uq_alerts_station_type_active", "station_id", "type", unique=True,
              sqlite_where=text("state != 'closed'"),
              postgresql_where=text("state != 'closed'")),
        Index("ix_alerts_state", "state"),
    )


class AlertEvent(Base):
    """An alert's history: opened, escalated, lowered, acknowledged, closed."""

    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"),
                                          index=True)
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[int] = mapped_column(BigInteger)
    by: Mapped[str] = mapped_column(String(64), default="server")
    note: Mapped[str] = mapped_column(String(500), default="")


class LorawanIntegration(Base):
    """A LoRaWAN network server that forwards uplinks by webhook (docs/lorawan.md): how it
    proves itself (a secret header, stored as a hash) and how to queue downlinks on it."""

    __tablename__ = "lorawan_integrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # chirpstack | tts
    secret_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the header's secret
    api_url: Mapped[str] = mapped_column(String(500), default="")  # "" = no downlinks
    api_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    application_id: Mapped[str] = mapped_column(String(64), default="")  # TTS only
    webhook_id: Mapped[str] = mapped_column(String(64), default="")  # TTS only
    created_at: Mapped[int] = mapped_column(BigInteger)


class Webhook(Base):
    """A notification target an operator configured: which alert types and stations."""

    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(500))
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)  # signs deliveries: kept, sealed
    types: Mapped[list] = mapped_column(JSON, default=list)  # empty: every type
    stations: Mapped[list] = mapped_column(JSON, default=list)  # station codes; empty: all
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64))


class Delivery(Base):
    """One alert event for one webhook, stored in the transaction that made the event and
    retried with backoff until delivered or webhook_expire_s old (so it survives a
    restart)."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"),
                                            index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("alert_events.id", ondelete="CASCADE"))
    body: Mapped[bytes] = mapped_column(LargeBinary)  # the exact bytes signed and sent
    state: Mapped[str] = mapped_column(String(16), default="pending")  # |delivered|expired
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[int] = mapped_column(BigInteger)  # due, or leased by a sender until
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_deliveries_webhook_event"),
        Index("ix_deliveries_due", "state", "next_at"),
    )


class ServerMeta(Base):
    """Facts about the database itself, by name: `secret_key_check`, the check value of the
    key its secrets are sealed under (keys.py), compared at every start."""

    __tablename__ = "server_meta"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class Calibration(Base):
    """A station's calibration against its staff gauge (量水標), or a check of it: who
    entered it and when, the staff gauge and the station's reading, the offset and scale it
    set (firmware/station/calibration.py), and the residual found (docs/operator.md,
    "Calibration"). It says which version was active from when (active_from; for a
    calibration sent as config, the config version that carries it and the time the
    station was first seen to have reported it); a reading's quality record names the
    version it was measured with (readings.calibration_version)."""

    __tablename__ = "calibrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    station_id: Mapped[int] = mapped_column(
        ForeignKey("stations.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), nullable=True)
    kind: Mapped[str] = mapped_column(String(8))  # "offset" | "scale" | "check"
    source: Mapped[str] = mapped_column(String(16))  # "technician" (on the board) | "server"
    by_user: Mapped[str] = mapped_column(String(64))
    at: Mapped[int] = mapped_column(BigInteger)  # entered, server time
    staff_mm: Mapped[int] = mapped_column(Integer)  # the staff gauge reading
    raw_mm: Mapped[int] = mapped_column(Integer)  # the station's uncalibrated level
    level_mm: Mapped[int] = mapped_column(Integer)  # its calibrated level (after this one)
    reading_t: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # of the level
    offset_mm: Mapped[int] = mapped_column(Integer)  # cal_offset_mm in force after it
    scale: Mapped[float] = mapped_column(Float)  # cal_scale
    version: Mapped[int] = mapped_column(Integer)  # cal_version in force after it
    residual_mm: Mapped[int] = mapped_column(Integer)  # level_mm - staff_mm
    # The device config version that carries it (None: a check), and since when the
    # station measures with it (the board written at once, or its report of that version).
    config_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    active_from: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
