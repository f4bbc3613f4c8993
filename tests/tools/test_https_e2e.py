"""Wi-Fi uplink over HTTPS as in the field: the station verifies the server's certificate
against the CA provisioned on it (CERT_REQUIRED, MicroPython's mbedtls), and refuses a server
its CA did not sign, keeping its readings until it can deliver them."""

from pathlib import Path

from mizumori_tools import certs
from mizumori_tools.fleet import Api, Fleet, ServerProcess
from mizumori_tools.virtual import ESP32_EPOCH, Scenario, VirtualStation
from station.flashqueue import FlashQueue

START = 1_790_000_000


def test_station_reports_over_verified_https(tmp_path: Path) -> None:
    pki = certs.make(tmp_path / "pki", start=START)
    clock = tmp_path / "clock"
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
                            "MIZUMORI_CLOCK_FILE": str(clock),
                            "MIZUMORI_SECRET_KEY": "tls-secret"}, cwd=tmp_path, tls=pki)
    server.prepare({"admin": ("admin", "kawa-kanri-2026")})
    fleet = Fleet(Scenario.load("calm"), clock, START)
    server.start()
    try:
        assert server.url.startswith("https://")
        api = Api.login(server.url, "admin", "kawa-kanri-2026", ca=str(pki["ca"]))
        api.station({"code": "shizuoka-up-01", "name": "静岡 地下道", "site_type": "underpass",
                     "latitude": 34.9716, "longitude": 138.3890, "mount_height_mm": 3000,
                     "upload_every": 1})
        p = api.provision("esp32-tls-01", "shizuoka-up-01")
        station = VirtualStation(tmp_path / "flash")
        station.provision(p, server.url, p["config"], ca=pki["ca"])
        fleet.add(station, "shizuoka-up-01", mount_mm=3000)

        def stored() -> int:
            r = api.get("/api/stations/shizuoka-up-01/readings", start=START - 60,
                        end=START + 86400, max_points=100000)
            return len(r["points"])

        fleet.run_until(START + 3600)
        assert stored() >= 6 and station.state()["uplink"] == ""

        # A server this CA did not sign (another CA's certificate on the device): refused.
        other = certs.make(tmp_path / "other", start=START)
        (station.flash / "ca.pem").write_bytes(other["ca"].read_bytes())
        before = stored()
        fleet.run_until(START + 2 * 3600)
        assert stored() == before
        assert station.state()["uplink"] != "", station.state()
        assert FlashQueue(str(station.flash / "queue")).depth() >= 5  # kept, not lost

        (station.flash / "ca.pem").write_bytes(pki["ca"].read_bytes())
        fleet.run_until(START + 3 * 3600)
        assert stored() >= before + 12 and station.state()["uplink"] == ""
    finally:
        server.stop()


def test_a_cold_board_learns_the_time_before_its_first_https_upload(tmp_path: Path) -> None:
    """After a long power loss the RTC reads 2000 and the clock floor in flash is older than
    the server's certificate: mbedTLS refuses it, so the station asks the server's time with
    a reply signed by its own key (no certificate needed), then uploads over verified TLS."""
    pki = certs.make(tmp_path / "pki", start=START)
    clock = tmp_path / "clock"
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
                            "MIZUMORI_CLOCK_FILE": str(clock),
                            "MIZUMORI_SECRET_KEY": "tls-secret"}, cwd=tmp_path, tls=pki)
    server.prepare({"admin": ("admin", "kawa-kanri-2026")})
    fleet = Fleet(Scenario.load("calm"), clock, START)
    server.start()
    try:
        api = Api.login(server.url, "admin", "kawa-kanri-2026", ca=str(pki["ca"]))
        api.station({"code": "cold-01", "name": "cold", "site_type": "river",
                     "latitude": 33.2, "longitude": 130.1, "mount_height_mm": 4000,
                     "upload_every": 1})
        p = api.provision("esp32-cold-01", "cold-01")
        station = VirtualStation(tmp_path / "flash")
        station.provision(p, server.url, p["config"], ca=pki["ca"])
        fleet.add(station, "cold-01", mount_mm=4000)
        station.set_clock(START - ESP32_EPOCH - 30 * 86400)  # a floor older than the cert
        slept = station.wake(Scenario.load("calm").world(0), START - ESP32_EPOCH,
                             reset_cause="power_on")
        assert slept is not None
        st = station.state()
        assert st["synced"] and st["uplink"] == "", st
        r = api.get("/api/stations/cold-01/readings", start=START - 60, end=START + 3600)
        assert len(r["points"]) == 1
        assert abs(r["points"][0]["t"] - START) <= 10  # on the true time, not the floor's
    finally:
        server.stop()
