"""One TLS connection for the upload batches of a wake, against the real fleet server (uvicorn
over HTTPS, CERT_REQUIRED): a backlog of 4 batches costs one handshake, and a connection the
server closed between batches (its keep-alive timeout, in the board's time) is opened again
without losing a reading. The firmware and its sim board run in this process
(CPythonStation) so the handshakes can be counted."""

from pathlib import Path
from typing import Any

import pytest
from mizumori_tools import certs
from mizumori_tools.fleet import Api, ServerProcess
from mizumori_tools.virtual import ESP32_EPOCH, CPythonStation, Scenario

START = 1_790_000_000
READINGS = 37  # the first wake reports; the next 35 find no access point; then 4 batches


def backlog_wake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 keepalive_ms: int) -> tuple[int, int]:
    """(TLS handshakes of the wake that delivers the backlog, readings the server stores)."""
    from station.hw import sim_net, sim_tls

    pki = certs.make(tmp_path / "pki", start=START)
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
                            "MIZUMORI_CLOCK_FILE": str(tmp_path / "clock"),
                            "MIZUMORI_SECRET_KEY": "keepalive"}, cwd=tmp_path, tls=pki)
    server.prepare({"admin": ("admin", "kawa-kanri-2026")})
    server.start()
    try:
        api = Api.login(server.url, "admin", "kawa-kanri-2026", ca=str(pki["ca"]))
        api.station({"code": "ka-01", "name": "keep-alive", "site_type": "river",
                     "latitude": 34.97, "longitude": 138.39, "mount_height_mm": 3000,
                     "upload_every": 1})
        p = api.provision("esp32-ka-01", "ka-01")
        station = CPythonStation(tmp_path / "flash")
        station.provision(p, server.url, {**p["config"], "batch_records": 10},
                          ca=pki["ca"], clock=START - ESP32_EPOCH)
        (tmp_path / "clock").write_text(str(START))
        calm = Scenario.load("calm")
        for i in range(READINGS - 1):  # the first wake also reports the firmware version
            world: dict[str, Any] = {**calm.world(i / 6), "faults": ["link_down"] if i else []}
            station.wake(world, START - ESP32_EPOCH + 600 * i)
        handshakes = []
        real = sim_tls.wrap

        def counted(*args: Any) -> Any:
            handshakes.append(1)
            return real(*args)

        monkeypatch.setattr(sim_tls, "wrap", counted)
        monkeypatch.setattr(sim_net, "SERVER_KEEPALIVE_MS", keepalive_ms)
        t = START + 600 * (READINGS - 2) + 3600  # past the uplink's backoff (an hour)
        (tmp_path / "clock").write_text(str(t))
        station.wake(calm.world((t - START) / 3600), t - ESP32_EPOCH)
        assert station.state()["uplink"] == "", station.state()
        r = api.get("/api/stations/ka-01/readings", start=START - 60, end=t + 60,
                    max_points=1000)
        return len(handshakes), len(r["points"])
    finally:
        server.stop()


def test_a_backlog_of_four_batches_takes_one_tls_handshake(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # uvicorn keeps the connection open between the batches (its 5 s keep-alive timeout)
    assert backlog_wake(tmp_path, monkeypatch, 5000) == (1, READINGS)


def test_a_connection_the_server_closed_is_opened_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a server closing every connection once idle: each batch after the first finds it
    # closed and goes again on a new one; nothing is lost
    assert backlog_wake(tmp_path, monkeypatch, 0) == (4, READINGS)
