"""Prometheus metrics (per worker process; scrape each worker or aggregate upstream)."""

from prometheus_client import Counter, Histogram

UPLOADS = Counter("mizumori_ingest_uploads_total", "Uploads stored")
RECORDS = Counter("mizumori_ingest_records_total", "Reading records acknowledged")
REJECTS = Counter("mizumori_ingest_rejects_total", "Uploads refused, by reason", ["reason"])
LATENCY = Histogram("mizumori_ingest_seconds", "Ingest latency",
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
DELIVERIES = Counter("mizumori_webhook_attempts_total",
                     "Webhook delivery attempts, by outcome", ["outcome"])
LORAWAN_EVENTS = Counter("mizumori_lorawan_events_total",
                         "Network-server events taken, by kind", ["kind"])
