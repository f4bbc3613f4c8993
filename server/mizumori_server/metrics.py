"""Prometheus metrics (docs/operations.md, "Monitoring").

Counters and histograms are kept per worker process; with more than one worker they are
added up through the Prometheus client's multiprocess mode: `mizumori serve --workers N`
calls prepare_multiprocess() before uvicorn starts the workers, so each writes its values
to files in $PROMETHEUS_MULTIPROC_DIR and /metrics, whichever worker answers, reads them
all. Fleet gauges (stations by status, pending webhook deliveries, the last upload, the
stations' queue depths, open alerts, the data disk) are read from the database and the file
system at scrape time (FleetCollector), so every worker answers the same."""

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

UPLOADS = Counter("mizumori_ingest_uploads_total", "Uploads stored")
RECORDS = Counter("mizumori_ingest_records_total", "Reading records acknowledged")
REJECTS = Counter("mizumori_ingest_rejects_total", "Uploads refused, by reason", ["reason"])
LATENCY = Histogram("mizumori_ingest_seconds", "Ingest latency",
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
DELIVERIES = Counter("mizumori_webhook_attempts_total",
                     "Webhook delivery attempts, by outcome", ["outcome"])
LORAWAN_EVENTS = Counter("mizumori_lorawan_events_total",
                         "Network-server events taken, by kind", ["kind"])
REQUESTS = Counter("mizumori_http_requests_total",
                   "HTTP requests answered, by route template, method and status class",
                   ["route", "method", "status"])
CLOCK_OFFSET = Gauge("mizumori_clock_offset_seconds",
                     "How far the wall clock has stepped against the monotonic clock since "
                     "the worker started (0 on a healthy host)", multiprocess_mode="mostrecent")
CLOCK_LAST_JUMP = Gauge("mizumori_clock_last_jump_seconds",
                        "The last wall-clock jump seen between two background ticks (signed)",
                        multiprocess_mode="mostrecent")
CLOCK_JUMPS = Counter("mizumori_clock_jumps_total",
                      "Wall-clock jumps seen between two background ticks (per worker)")
OFFLINE_SKIPPED = Counter("mizumori_offline_checks_skipped_total",
                          "Offline checks skipped because the server's clock jumped")
OFFLINE_CHECK = Gauge("mizumori_offline_check_timestamp_seconds",
                      "When an offline check last completed (Unix time)",
                      multiprocess_mode="max")
PRUNED = Counter("mizumori_pruned_rows_total", "Rows deleted by pruning, by table", ["table"])
# Labels known in advance, so that their series exist (at 0) before the first event.
for _outcome in ("delivered", "failed", "expired"):
    DELIVERIES.labels(_outcome)
for _table in ("sessions", "api_tokens", "login_attempts", "deliveries", "readings", "digests"):
    PRUNED.labels(_table)

STATUSES = ("online", "late", "offline", "unseen")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def prepare_multiprocess(workers: int) -> str | None:
    """For `mizumori serve`, before uvicorn starts its workers (which inherit the
    environment): with $PROMETHEUS_MULTIPROC_DIR set, empty that folder (values of an earlier
    run must not be added to this one's); else, with more than one worker, make a private
    temporary folder, removed at exit. Returns the folder, or None (one worker: none is
    needed)."""
    folder = multiprocess_dir()
    if folder is None:
        if workers <= 1:
            return None
        folder = tempfile.mkdtemp(prefix="mizumori-metrics-")
        atexit.register(shutil.rmtree, folder, True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        return folder
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    # the client's own files only (counter_*.db, gauge_*.db, histogram_*.db…): a folder
    # pointed at by mistake (the data folder) keeps everything else, mizumori.db first
    for prefix in ("counter_", "gauge_", "histogram_", "summary_"):
        for f in path.glob(prefix + "*.db"):
            f.unlink(missing_ok=True)
    return folder


class _Default(Collector):
    """This process's own metrics (one worker: no multiprocess folder)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class FleetCollector(Collector):
    """The fleet as the database has it, read at scrape time."""

    def __init__(self, sessions: sessionmaker[Session], settings: Any,
                 now: Callable[[], int]):
        self.sessions, self.settings, self.now = sessions, settings, now

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mizumori_database_up",
                               "1 when the fleet gauges could be read from the database")
        try:
            families = list(self._fleet())
        except Exception:  # noqa: BLE001 - the scrape still answers, saying the database is down
            families = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield up
        yield from families
        yield from self._disk()

    def _fleet(self) -> Iterator[Metric]:
        from mizumori_server import profile, queries
        from mizumori_server.models import Alert, Delivery, StationLatest

        now = self.now()
        s = self.settings
        with self.sessions() as session:
            rows = session.execute(
                queries.latest_query().add_columns(StationLatest.queue_depth)).all()
            # each station against what its mode expects (a heartbeat a day in MLIT watch mode)
            expected = [None if r.last_seen is None else profile.expected_now(session, r)
                        for r in rows]
            pending, oldest = session.execute(
                select(func.count(), func.min(Delivery.created_at))
                .where(Delivery.state == "pending")).one()
            alerts = session.execute(
                select(Alert.type, func.count()).where(Alert.state != "closed")
                .group_by(Alert.type)).all()
        counts = dict.fromkeys(STATUSES, 0)
        queue = GaugeMetricFamily("mizumori_station_queue_depth",
                                  "Readings waiting in a station's flash, as it last reported",
                                  labels=["station"])
        queued = 0
        last = None
        for r, every in zip(rows, expected, strict=True):
            if every is None:
                counts["unseen"] += 1
                continue
            counts[queries.status_of(now - r.last_seen, every, s.late_after_intervals,
                                     s.offline_after_intervals)] += 1
            last = r.last_seen if last is None else max(last, r.last_seen)
            if r.queue_depth is not None:
                queue.add_metric([r.code], r.queue_depth)
                queued += r.queue_depth
        stations = GaugeMetricFamily("mizumori_stations",
                                     "Stations by status (online, late, offline, unseen)",
                                     labels=["status"])
        for status, n in counts.items():
            stations.add_metric([status], n)
        yield stations
        yield queue
        yield GaugeMetricFamily("mizumori_fleet_queued_readings",
                                "Readings waiting in all stations' flash, as last reported",
                                value=queued)
        if last is not None:
            yield GaugeMetricFamily("mizumori_last_upload_timestamp_seconds",
                                    "When the newest upload of any station arrived (Unix time)",
                                    value=last)
            yield GaugeMetricFamily("mizumori_seconds_since_last_upload",
                                    "Seconds since any station's upload arrived",
                                    value=max(0, now - last))
        yield GaugeMetricFamily("mizumori_webhook_deliveries_pending",
                                "Webhook deliveries not yet delivered nor expired",
                                value=pending)
        yield GaugeMetricFamily("mizumori_webhook_oldest_pending_seconds",
                                "Age of the oldest pending webhook delivery (0: none)",
                                value=max(0, now - oldest) if oldest is not None else 0)
        open_ = GaugeMetricFamily("mizumori_alerts_open", "Alerts not closed, by type",
                                  labels=["type"])
        by_type = dict(alerts)
        from mizumori_server.alerts import TYPES

        for type_ in TYPES:
            open_.add_metric([type_], by_type.get(type_, 0))
        yield open_

    def _disk(self) -> Iterator[Metric]:
        try:
            usage = shutil.disk_usage(existing(self.settings.data_dir))
        except OSError:
            return
        yield GaugeMetricFamily("mizumori_data_disk_free_bytes",
                                "Free bytes on the data folder's file system",
                                value=usage.free)
        yield GaugeMetricFamily("mizumori_data_disk_size_bytes",
                                "Size of the data folder's file system", value=usage.total)


def existing(path: Path) -> Path:
    """The folder itself, or its nearest parent that exists."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def registry(fleet: Collector | None = None) -> CollectorRegistry:
    """What /metrics answers: every worker's metrics (multiprocess mode) or this process's,
    and the fleet's."""
    reg = CollectorRegistry()
    if multiprocess_dir() is not None:
        MultiProcessCollector(reg)
    else:
        reg.register(_Default())
    if fleet is not None:
        reg.register(fleet)
    return reg
