"""Two `mizumori serve --workers 2` processes on one PostgreSQL store exactly what one would,
raise each alert once and send each notification once."""

import hashlib
import hmac
import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from device import reading
from mizumori_tools.fleet import free_port
from receiver import Receiver, receiver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def servers(pg_server: str, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    with psycopg.connect(pg_server.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    env = {**os.environ, "MIZUMORI_DATABASE_URL": pg_server,
           "MIZUMORI_SECRET_KEY": "workers-test-key", "MIZUMORI_DATA_DIR": str(tmp_path),
           # the webhook receiver listens on loopback: allowed explicitly (docs/alerts.md)
           "MIZUMORI_WEBHOOK_ALLOW": "127.0.0.1"}
    cli = [sys.executable, "-m", "mizumori_tools.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, cwd=tmp_path)
    subprocess.run([*cli, "user", "create", "admin", "--password", "kawa-kanri-2026"],
                   env=env, check=True, cwd=tmp_path)
    urls, procs = [], []
    for _ in range(2):
        port = free_port()
        procs.append(subprocess.Popen([*cli, "serve", "--workers", "2", "--port", str(port)],
                                      env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        for url in urls:
            while True:
                try:
                    if httpx.get(url + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield pg_server, urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_same_batches_through_two_servers_are_stored_once(
        servers: tuple[str, list[str]]) -> None:
    with receiver() as rec:
        same_batches_twice(servers, rec)


def same_batches_twice(servers: tuple[str, list[str]], rec: Receiver) -> None:
    pg, urls = servers
    http = httpx.Client(timeout=30)
    token = http.post(urls[0] + "/api/login", json={"username": "admin",
                                                   "password": "kawa-kanri-2026"}).json()
    auth = {"Authorization": f"Bearer {token['token']}"}
    http.post(urls[0] + "/api/webhooks", headers=auth,
              json={"name": "city", "url": rec.url}).raise_for_status()
    devices = []
    for i in range(3):
        http.post(urls[i % 2] + "/api/stations", headers=auth, json={
            "code": f"taku-{i}", "name": f"Taku {i}", "site_type": "river",
            "latitude": 33.29, "longitude": 130.11 + i / 100, "mount_height_mm": 5000,
            "standby_mm": 1005,  # every batch reaches it
        }).raise_for_status()
        r = http.post(urls[1] + "/api/devices/provision", headers=auth,
                      json={"hardware_id": f"esp32-w{i}", "station": f"taku-{i}"})
        r.raise_for_status()
        p = r.json()
        devices.append((p["device_id"], bytes.fromhex(p["secret"]), itertools.count(1),
                        threading.Lock()))

    def send(job: tuple[int, int, str]) -> list[int]:
        d, batch, url = job
        dev_id, secret, counter, lock = devices[d]
        body = b"".join(reading(batch * 10 + k + 1, 1000 + k) for k in range(10))
        with httpx.Client(timeout=30) as c:
            for _ in range(50):
                with lock:
                    n = next(counter)
                msg = b"MZM1\n" + f"{dev_id}\n{n}\n".encode() + body
                r = c.post(url + "/api/ingest", content=body, headers={
                    "X-Mizumori-Device": str(dev_id), "X-Mizumori-Counter": str(n),
                    "X-Mizumori-Signature": hmac.new(secret, msg, hashlib.sha256).hexdigest()})
                if r.status_code == 200:
                    acked: list[int] = r.json()["acked"]
                    return acked
                # a concurrent request took a higher counter (401 stale), or busy (503)
                assert r.status_code in (401, 503), r.text
                time.sleep(0.01)
        raise AssertionError("never accepted")

    # every batch twice, once through each server, all at once
    jobs = [(d, b, url) for d in range(3) for b in range(20) for url in urls]
    with ThreadPoolExecutor(16) as pool:
        acks = list(pool.map(send, jobs))
    assert all(len(a) == 10 for a in acks)
    with psycopg.connect(pg.replace("+psycopg", "")) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, seq)) FROM readings").fetchone()
        assert row is not None
        total, distinct = row
        per_device: dict[int, int] = dict(conn.execute(
            "SELECT device_id, max(seq) FROM readings GROUP BY device_id").fetchall())
        alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()
    assert total == distinct == 3 * 20 * 10  # exactly what one server would store
    assert sorted(per_device.values()) == [200, 200, 200]
    assert alerts == (3,)  # one per station, though 4 workers saw the level reached
    # the four workers' senders deliver each notification once (and nothing more comes)
    bodies = rec.wait_for(4, timeout=10)
    assert sorted(b["alert"]["station"] for b in bodies) == ["taku-0", "taku-1", "taku-2"]
    ids = [r["headers"]["x-mizumori-delivery"] for r in rec.requests]
    assert len(set(ids)) == len(ids) == 3
