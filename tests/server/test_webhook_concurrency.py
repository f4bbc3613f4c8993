"""Alerts do not wait behind a dead webhook (issue 21, item 6): the workers' sender sends
at most webhook_concurrency deliveries at once per webhook, each in its own thread, so a
receiver that accepts connections and never answers holds only its own deliveries; and
the offline check runs on its own timer."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from conftest import ADMIN_PASSWORD, STATION, login
from device import Device, codec
from fastapi.testclient import TestClient
from mizumori_server import notify
from mizumori_server.api.people import create
from mizumori_server.app import create_app
from mizumori_server.models import Delivery
from mizumori_server.settings import Settings
from receiver import receiver
from sqlalchemy import select


class Silent:
    """A receiver that accepts every connection and never answers (a dead service behind
    a load balancer, or a firewall that lets the handshake through)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)

    def accepted(self) -> int:
        with self.lock:
            return len(self.conns)

    def close(self) -> None:
        self.sock.close()
        with self.lock:
            for c in self.conns:
                c.close()


@contextmanager
def silent() -> Iterator[Silent]:
    s = Silent()
    try:
        yield s
    finally:
        s.close()


def wait_until(what: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_dead_webhook_does_not_delay_the_others(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={
        "background": True, "webhook_allow": "127.0.0.1",
        # the dead receiver's sends hang for the whole test: whatever the healthy one
        # gets, it gets while they hang
        "webhook_timeout_s": 60.0, "webhook_concurrency": 2}))
    with app.state.sessions() as s:
        create(s, "admin", ADMIN_PASSWORD, "admin")
        s.commit()
    with silent() as dead, receiver() as rec, TestClient(app) as client:
        auth = login(client)
        client.post("/api/stations", headers=auth, json=STATION).raise_for_status()
        # the dead one first: its deliveries come first in every claim
        dead_hook = client.post("/api/webhooks", headers=auth,
                                json={"name": "dead", "url": dead.url}).json()
        client.post("/api/webhooks", headers=auth,
                    json={"name": "city", "url": rec.url}).raise_for_status()
        dev = Device(client, client.post("/api/devices/provision", headers=auth, json={
            "hardware_id": "esp32-bg", "station": "taku-01"}).json())
        # a flood: standby, caution, evacuation, danger, one upload each
        for seq, level in enumerate((1200, 1700, 2100, 2600), 1):
            r = dev.send(codec.encode_full(seq, 0, level, 3700, 0, 18.0, 60.0, 1010.0, 0.0))
            assert r.status_code == 200, r.text
        bodies = rec.wait_for(4, timeout=30)
        assert sorted(b["event"] for b in bodies) == ["alert.opened", "alert.raised",
                                                      "alert.raised", "alert.raised"]
        assert sorted(b["alert"]["level"] for b in bodies) == [1, 2, 3, 4]
        # ... while the dead receiver holds exactly its share, and nothing more
        assert wait_until(lambda: dead.accepted() == 2)
        time.sleep(0.5)
        assert dead.accepted() == 2
        with app.state.sessions() as s:
            mine = s.execute(select(Delivery.state, Delivery.attempts, Delivery.last_error)
                             .where(Delivery.webhook_id == dead_hook["id"])
                             .order_by(Delivery.id)).all()
        # two leased and hanging (attempt 1, no outcome yet), two not yet tried
        assert mine == [("pending", 1, ""), ("pending", 1, ""), ("pending", 0, ""),
                        ("pending", 0, "")]
        dead.close()  # the hanging sends fail now: recorded as failed, to retry later
        assert wait_until(lambda: [d["last_error"] for d in client.get(
            f"/api/webhooks/{dead_hook['id']}/deliveries", headers=auth).json()].count(
                notify.FAILED) >= 2)
    app.state.engine.dispose()


def test_claims_leave_out_webhooks_that_have_their_share(settings: Settings) -> None:
    """notify.claim itself: with one webhook's share in flight, the next claim takes the
    other webhooks' deliveries, though the busy one's are older."""
    app = create_app(settings.model_copy(update={"webhook_allow": "127.0.0.1"}))
    with app.state.sessions() as s:
        create(s, "admin", ADMIN_PASSWORD, "admin")
        s.commit()
    with TestClient(app) as client:
        auth = login(client)
        client.post("/api/stations", headers=auth, json=STATION).raise_for_status()
        ids = [client.post("/api/webhooks", headers=auth, json={
            "name": name, "url": f"http://127.0.0.1:9/{name}"}).json()["id"]
            for name in ("a", "b")]
        dev = Device(client, client.post("/api/devices/provision", headers=auth, json={
            "hardware_id": "esp32-c", "station": "taku-01"}).json())
        for seq, level in enumerate((1200, 1700, 2100, 2600), 1):
            assert dev.send(codec.encode_full(seq, 0, level, 3700, 0, 18.0, 60.0, 1010.0,
                                              0.0)).status_code == 200
        now = int(time.time()) + 10
        first = notify.claim(app.state.sessions, app.state.settings, now, limit=3,
                             busy={}, per_destination=2)
        busy: dict[int, int] = {}
        for d in first:
            busy[d.webhook_id] = busy.get(d.webhook_id, 0) + 1
        assert all(n <= 2 for n in busy.values())
        second = notify.claim(app.state.sessions, app.state.settings, now, limit=20,
                              busy=busy, per_destination=2)
        for d in second:
            busy[d.webhook_id] = busy.get(d.webhook_id, 0) + 1
        assert busy == {ids[0]: 2, ids[1]: 2}
        assert notify.claim(app.state.sessions, app.state.settings, now, limit=20,
                            busy=busy, per_destination=2) == []
        # without a share (the one-at-a-time send_due of the tests): all that are due
        assert len(notify.claim(app.state.sessions, app.state.settings, now)) == 4
    app.state.engine.dispose()
