"""Server benchmarks (part of `make bench`): ingest over real HTTP on loopback against the raw
bulk-insert rate, latest state over many stations, and a downsampled year.

Sizes shrink with BENCH_SCALE (default 1.0 = 10,000 stations and 10 million readings).
"""

import asyncio
import functools
import hashlib
import hmac
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
import gis  # noqa: E402  bench/gis.py
from mizumori_server import db, devices, queries, security  # noqa: E402
from mizumori_server.models import Station  # noqa: E402
from mizumori_tools.fleet import ServerProcess  # noqa: E402
from station import codec  # noqa: E402  the firmware's encoder

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
PG_ADMIN = os.environ.get("MIZUMORI_TEST_DATABASE_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECRET_KEY = "bench-secret-key"
CONCURRENCY = 32
T0 = 1_700_000_000  # start of the stored history


class Database:
    def __init__(self, kind: str, tmp: Path):
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite:///{tmp / 'bench.db'}"
        else:
            self.name = f"mizumori_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN.replace("+psycopg", ""), autocommit=True) as c:
                c.execute(f"CREATE DATABASE {self.name}")
            self.url = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.name
        self.engine = db.make_engine(self.url)
        db.upgrade(self.engine)
        self.sessions = db.sessions(self.engine)

    def drop(self) -> None:
        self.engine.dispose()
        if self.kind == "postgresql":
            with psycopg.connect(PG_ADMIN.replace("+psycopg", ""), autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def add_stations(database: Database, n: int, first: int = 0) -> list[int]:
    rows = [{"code": f"st-{first + i:05d}", "name": f"Station {first + i}",
             "site_type": "river", "latitude": 33 + (i % 100) / 100,
             "longitude": 130 + (i // 100) / 100, "datum_m": 0.0, "mount_height_mm": 5000,
             "standby_mm": 1000, "caution_mm": 1500, "evacuation_mm": 2000,
             "danger_mm": 2500, "rise_limit_mm_h": 300, "interval_normal_s": 600,
             "interval_flood_s": 120, "upload_every": 3, "created_at": 0} for i in range(n)]
    with database.sessions() as s:
        s.execute(insert(Station), rows)
        s.commit()
        return list(s.scalars(text("SELECT id FROM stations ORDER BY id")))[-n:]


def add_devices(database: Database, n: int) -> list[tuple[int, bytes]]:
    box = security.SecretBox(SECRET_KEY)
    out = []
    with database.sessions() as s:
        for i, sid in enumerate(add_stations(database, n, first=50000)):
            d, secret = devices.provision(s, box, f"bench-{i:04d}", s.get(Station, sid),
                                          "bench")
            out.append((d.id, secret))
        s.commit()
    return out


def start_server(database: Database, tmp: Path) -> ServerProcess:
    """`mizumori serve` with two workers on the benchmark's database."""
    server = ServerProcess({"MIZUMORI_DATABASE_URL": database.url,
                            "MIZUMORI_SECRET_KEY": SECRET_KEY, "MIZUMORI_DATA_DIR": str(tmp)},
                           cwd=tmp, workers=2)
    server.start()
    return server


def signed_requests(devs: list[tuple[int, bytes]], batch: int, total: int,
                    port: int) -> list[bytes]:
    """Pre-built HTTP/1.1 requests, each device's counters and sequences in order."""
    reqs = []
    state = {d: [0, 0] for d, _ in devs}
    for i in range(total):
        dev_id, secret = devs[i % len(devs)]
        counter_seq = state[dev_id]
        counter_seq[0] += 1
        body = b"".join(codec.encode_full(counter_seq[1] + k + 1, 0, 1000 + k, 3700, 0, 20.0,
                                          50.0, 1000.0, 0.0) for k in range(batch))
        counter_seq[1] += batch
        sig = hmac.new(secret, b"MZM1\n" + f"{dev_id}\n{counter_seq[0]}\n".encode() + body,
                       hashlib.sha256).hexdigest()
        reqs.append((f"POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"X-Mizumori-Device: {dev_id}\r\nX-Mizumori-Counter: {counter_seq[0]}\r\n"
                     f"X-Mizumori-Signature: {sig}\r\nContent-Length: {len(body)}\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n").encode() + body)
    return reqs


async def blast(port: int, per_conn: list[list[bytes]]) -> tuple[float, dict[int, int]]:
    """Each connection sends its requests one after another (keep-alive)."""
    statuses: dict[int, int] = {}

    async def one(reqs: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for req in reqs:
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            statuses[status] = statuses.get(status, 0) + 1
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one(r) for r in per_conn))
    return time.perf_counter() - start, statuses


def ingest_rate(database: Database, tmp: Path, batch: int) -> tuple[float, float]:
    devs = add_devices(database, CONCURRENCY)
    server = start_server(database, tmp)
    try:
        total = max(CONCURRENCY * 4, int((3000 if batch == 1 else 30000 // batch) * SCALE))
        reqs = signed_requests(devs, batch, total, server.port)
        # device i's requests all go through connection i, in counter order
        per_conn = [reqs[i::CONCURRENCY] for i in range(CONCURRENCY)]
        seconds, statuses = asyncio.run(blast(server.port, per_conn))
    finally:
        server.stop()
    if set(statuses) != {200}:
        raise SystemExit(f"ingest answered {statuses}")
    return total / seconds, total * batch / seconds


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (the uvicorn workers), MiB."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines()
                          if ":" in line)
        except OSError:
            continue
        if int(status.parent.name) == pid or int(fields["PPid"]) == pid:
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


def burst(database: Database, tmp: Path) -> tuple[float, float, dict[int, int]]:
    """A whole fleet flushing its backlog at once: 10x the connections, 10-record batches.
    Returns (RSS before, peak RSS during, answers by status)."""
    n = CONCURRENCY * 10
    devs = add_devices(database, n)
    server = start_server(database, tmp)
    peak = before = tree_rss_mib(server.pid)
    stop = False

    async def sample() -> None:
        nonlocal peak
        while not stop:
            peak = max(peak, tree_rss_mib(server.pid))
            await asyncio.sleep(0.05)

    async def run(per_conn: list[list[bytes]]) -> dict[int, int]:
        nonlocal stop
        sampler = asyncio.create_task(sample())
        _, statuses = await blast(server.port, per_conn)
        stop = True
        await sampler
        return statuses

    try:
        reqs = signed_requests(devs, 10, n * 4, server.port)
        statuses = asyncio.run(run([reqs[i::n] for i in range(n)]))
    finally:
        server.stop()
    return before, peak, statuses


def raw_insert_rate(database: Database, n: int) -> float:
    """The same rows into the same table as fast as the driver goes (executemany / COPY)."""
    sid = add_stations(database, 1, first=90000)[0]
    with database.sessions() as s:
        d, _ = devices.provision(s, security.SecretBox(SECRET_KEY), "bench-raw",
                                 s.get(Station, sid), "bench")
        s.commit()
        dev_id = d.id
    rows = [(sid, dev_id, i + 1, 1_700_000_000 + i, 1_700_000_000 + i, 1000, 3700, 0, 20.0,
             50.0, 1000.0, 0.0) for i in range(n)]
    cols = ("station_id, device_id, seq, t, received, level_mm, battery_mv, flags, "
            "temperature_c, humidity_pct, pressure_hpa, rain_mm")
    start = time.perf_counter()
    raw = database.engine.raw_connection()
    try:
        cur = raw.cursor()
        if database.kind == "postgresql":
            with cur.copy(f"COPY readings ({cols}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
        else:
            cur.executemany(f"INSERT INTO readings ({cols}) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        raw.commit()
    finally:
        raw.close()
    return n / (time.perf_counter() - start)


def fill_history(database: Database, stations: int, readings: int) -> tuple[int, float]:
    """stations stations, readings readings spread over them; one station gets a full year at
    10-minute steps. Returns (that station's id, seconds taken)."""
    ids = add_stations(database, stations)
    start = time.perf_counter()
    year = 365 * 144
    t0 = 1_700_000_000
    raw = database.engine.raw_connection()
    cols = "station_id, device_id, seq, t, received, level_mm, flags"
    with database.sessions() as s:
        d, _ = devices.provision(s, security.SecretBox(SECRET_KEY), "bench-history",
                                 s.get(Station, ids[0]), "bench")
        s.commit()
        dev_id = d.id

    def rows() -> Any:
        for i in range(year):
            yield (ids[0], dev_id, i + 1, t0 + i * 600, t0 + i * 600, 1000 + (i * 37) % 900, 0)
        per = max(1, (readings - year) // stations)
        seq = year
        for sid in ids:
            for k in range(per):
                seq += 1
                yield (sid, dev_id, seq, t0 + k * 600, t0 + k * 600, 1000 + k % 500, 0)

    try:
        cur = raw.cursor()
        if database.kind == "postgresql":
            with cur.copy(f"COPY readings ({cols}) FROM STDIN") as copy:
                for r in rows():
                    copy.write_row(r)
        else:
            cur.executemany(f"INSERT INTO readings ({cols}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            rows())
        # every station's latest state, as ingest keeps it
        cur.execute("INSERT INTO station_latest (station_id, device_id, t, level_mm, flags, "
                    "last_seen) SELECT id, %s, %s, 1200, 0, %s FROM stations"
                    .replace("%s", "?" if database.kind == "sqlite" else "%s"),
                    (dev_id, t0, t0))
        raw.commit()
        if database.kind == "sqlite":
            cur.execute("ANALYZE")
    finally:
        raw.close()
    if database.kind == "postgresql":  # VACUUM must run outside a transaction
        with psycopg.connect(database.url.replace("+psycopg", ""), autocommit=True) as c:
            c.execute("VACUUM ANALYZE")
    return ids[0], time.perf_counter() - start


def timed(fn: Any, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    kinds = ["sqlite", "postgresql"]
    print(f"Fleet server (2 uvicorn workers, {CONCURRENCY} concurrent keep-alive clients, "
          f"loopback, durable commits; scale {SCALE})")
    print(f"  {'':38s}{'SQLite':>14s}{'PostgreSQL':>14s}")
    results: dict[str, dict[str, float]] = {k: {} for k in kinds}
    bursts: dict[str, tuple[float, float, dict[int, int]]] = {}
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="mizumori-bench-") as t:
            tmp = Path(t)
            for batch in (1, 10, 100):
                database = Database(kind, tmp / f"b{batch}")
                try:
                    msgs, recs = ingest_rate(database, tmp, batch)
                finally:
                    database.drop()
                results[kind][f"msg{batch}"] = msgs
                results[kind][f"rec{batch}"] = recs
            database = Database(kind, tmp / "burst")
            try:
                bursts[kind] = burst(database, tmp)
            finally:
                database.drop()
            database = Database(kind, tmp / "raw")
            try:
                results[kind]["raw"] = raw_insert_rate(database, int(100_000 * SCALE) or 1000)
            finally:
                database.drop()
    for batch in (1, 10, 100):
        line = f"  ingest, {batch:3d} record(s)/message, msg/s"
        print(line.ljust(40) + "".join(f"{results[k][f'msg{batch}']:14,.0f}" for k in kinds))
        line = f"  ingest, {batch:3d} record(s)/message, records/s"
        print(line.ljust(40) + "".join(f"{results[k][f'rec{batch}']:14,.0f}" for k in kinds))
    print("  raw bulk insert, records/s".ljust(40) +
          "".join(f"{results[k]['raw']:14,.0f}" for k in kinds))
    print("  batched ingest (100) / raw bulk insert".ljust(40) +
          "".join(f"{results[k]['rec100'] / results[k]['raw']:14.0%}" for k in kinds))
    print("  targets: 1-record messages >= 3,000/s; batched >= 50 % of raw")
    for kind in kinds:
        before, peak, statuses = bursts[kind]
        print(f"  10x burst ({CONCURRENCY * 10} connections), {kind}: worker memory "
              f"{before:.0f} -> peak {peak:.0f} MiB; answers {dict(sorted(statuses.items()))}"
              " (503 = shed with Retry-After, device retries)")

    stations = max(100, int(10_000 * SCALE))
    readings = max(100_000, int(10_000_000 * SCALE))
    print(f"Queries over {stations:,} stations and {readings:,} readings")
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="mizumori-bench-") as t:
            database = Database(kind, Path(t))
            try:
                year_station, fill_s = fill_history(database, stations, readings)
                with database.sessions() as s:
                    n_latest = len(queries.latest(s, T0, 1.5, 3.0))
                    latest_s = timed(functools.partial(queries.latest, s, T0, 1.5, 3.0))
                    year = (s, year_station, T0, T0 + 365 * 86400, 1000)
                    pts = queries.series(*year)
                    year_s = timed(functools.partial(queries.series, *year))
                # 10 x 10 stations of the grid (add_stations), their first day
                ogc = gis.ogc_timings(database.url, Path(t), stations, "130,33,130.095,33.095",
                                      (T0, T0 + 86400), SECRET_KEY)
            finally:
                database.drop()
        print(f"  {kind:10s} load {fill_s:6.1f} s; latest state of {n_latest:,} stations "
              f"{latest_s * 1000:7.1f} ms (target < 50); one year ({pts['count']:,} readings) "
              f"-> {len(pts['points'])} points {year_s * 1000:6.1f} ms (target < 50)")
        print(f"  {'':10s} OGC API over HTTP: stations items, {ogc['stations']:,} in one page "
              f"({ogc['bytes'] / 1e6:.1f} MB) {ogc['stations_s'] * 1000:7.1f} ms; observations "
              f"bbox + one day: first page of {gis.PAGE} {ogc['first_page_s'] * 1000:6.1f} ms, "
              f"all {ogc['observations']:,} through next links {ogc['walk_s']:5.2f} s")
    print("Alerts")
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="mizumori-bench-") as t:
            database = Database(kind, Path(t))
            try:
                latency = gis.alert_latency(database.url, Path(t))
            finally:
                database.drop()
        gis.print_alert_latency(kind, latency)


if __name__ == "__main__":
    main()
