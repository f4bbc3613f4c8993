"""What the city's systems wait for (part of `make bench`, through bench/server.py): OGC API –
Features over HTTP on a filled database (all stations in one page; a bbox and one day of
observations, page by page as GDAL and QGIS fetch them), and the time from a reading's
ingest to its alert's webhook arriving."""

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server"))  # the webhook receiver and test device
from device import Device, reading  # noqa: E402
from mizumori_tools.fleet import Api, ServerProcess  # noqa: E402
from receiver import receiver  # noqa: E402

PAGE = 1000


def best_of(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def ogc_timings(database_url: str, tmp: Path, stations: int, bbox: str, day: tuple[int, int],
                secret_key: str) -> dict[str, Any]:
    """The server (open data on) over an already filled database: seconds and counts."""
    server = ServerProcess({"MIZUMORI_DATABASE_URL": database_url,
                            "MIZUMORI_SECRET_KEY": secret_key, "MIZUMORI_DATA_DIR": str(tmp),
                            "MIZUMORI_OPEN_DATA": "true", "MIZUMORI_BACKGROUND": "false"},
                           cwd=tmp)
    server.start()
    try:
        http = httpx.Client(base_url=server.url, timeout=600)

        def get(url: str, **params: Any) -> dict[str, Any]:
            r = http.get(url, params=params or None)
            r.raise_for_status()
            out: dict[str, Any] = r.json()
            return out

        limit = min(10_000, stations)
        all_s, page = best_of(lambda: get("/ogc/collections/stations/items", limit=limit))
        when = f"{iso(day[0])}/{iso(day[1] - 1)}"
        query = {"bbox": bbox, "datetime": when, "limit": PAGE}
        first_s, _ = best_of(lambda: get("/ogc/collections/observations/items", **query))

        def walk() -> int:
            n, url = 0, "/ogc/collections/observations/items"
            params: dict[str, Any] = query
            while url:
                body = get(url, **params)
                n += body["numberReturned"]
                url = next((k["href"] for k in body["links"] if k["rel"] == "next"), "")
                params = {}
            return n

        walk_s, observations = best_of(walk, 1)
        return {"stations_s": all_s, "stations": page["numberReturned"],
                "bytes": len(http.get("/ogc/collections/stations/items",
                                      params={"limit": limit}).content),
                "first_page_s": first_s, "walk_s": walk_s, "observations": observations}
    finally:
        server.stop()


def iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def alert_latency(database_url: str, tmp: Path, n: int = 20) -> list[float]:
    """Seconds from sending a reading that opens (or closes) a river-level alert to the
    webhook's request arriving, n times; the server's own background sender delivers."""
    env = {"MIZUMORI_DATABASE_URL": database_url, "MIZUMORI_SECRET_KEY": "bench-alerts",
           "MIZUMORI_DATA_DIR": str(tmp),
           # the webhook receiver listens on loopback: allowed explicitly (docs/alerts.md)
           "MIZUMORI_WEBHOOK_ALLOW": "127.0.0.1"}
    server = ServerProcess(env, cwd=tmp, workers=2)
    server.prepare({"admin": ("admin", "bench-kanri-2026")})
    server.start()
    try:
        api = Api.login(server.url, "admin", "bench-kanri-2026")
        api.station({"code": "bench-01", "name": "bench", "site_type": "river",
                     "latitude": 33.2, "longitude": 130.1, "mount_height_mm": 5000,
                     "standby_mm": 1000, "caution_mm": 1500, "evacuation_mm": 2000,
                     "danger_mm": 2500})
        dev = Device(httpx.Client(base_url=server.url, timeout=30),
                     api.provision("esp32-bench-alerts", "bench-01"))
        out = []
        with receiver() as rec:
            r = api.http.post("/api/webhooks", json={"name": "bench", "url": rec.url,
                                                     "types": ["level"]})
            r.raise_for_status()
            for i in range(n):
                start = time.perf_counter()
                assert dev.send(reading(i + 1, 2600 if i % 2 == 0 else 500)).status_code == 200
                got = rec.wait_for(i + 1)
                out.append(time.perf_counter() - start)
                if len(got) < i + 1:
                    raise SystemExit(f"webhook {i + 1} did not arrive")
        return out
    finally:
        server.stop()


def print_alert_latency(kind: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    print(f"  {kind:10s} reading ingested -> alert webhook received: median "
          f"{statistics.median(ms):6.1f} ms, max {ms[-1]:6.1f} ms ({len(ms)} alerts; "
          "target: seconds, not minutes)")
