"""LoRaWAN end to end on the rig: the real firmware under MicroPython drives the simulated
RAK3172 through its UART, on the board's clock (netserver.ModemLink); the module joins, a
flood's readings go up as unconfirmed uplinks through a network server that loses every 7th
frame in the air and posts each frame it hears twice (two gateways) to the fleet server's
ChirpStack endpoint, which stores each reading once and asks for what is missing; a
threshold changed by an operator reaches the station as a downlink through ChirpStack's
queue API; a session the network server forgot is left."""

import json
import sqlite3
from pathlib import Path

from mizumori_tools.fleet import Api, Fleet, ServerProcess
from mizumori_tools.netserver import ModemLink, NetworkServer
from mizumori_tools.virtual import Scenario, VirtualStation

START = 1_790_000_000
EUI = "ac1f09fffe0a1b2c"
OTAA = {"dev_eui": EUI, "app_eui": "ac1f09fff8680000",
        "app_key": "2b7e151628aed2a6abf7158809cf4f3c"}


def test_station_reports_over_lorawan(tmp_path: Path) -> None:
    clock = tmp_path / "clock"
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
                            "MIZUMORI_CLOCK_FILE": str(clock),
                            "MIZUMORI_SECRET_KEY": "lora-secret"}, cwd=tmp_path)
    server.prepare({"admin": ("admin", "kawa-kanri-2026")})
    fleet = Fleet(Scenario.load("flood"), clock, START)
    server.start()
    ns = modem = None
    try:
        api = Api.login(server.url, "admin", "kawa-kanri-2026")
        api.station({"code": "ogi-paddy-01", "name": "小城 水田", "site_type": "paddy",
                     "latitude": 33.2900, "longitude": 130.2000, "mount_height_mm": 5000,
                     "standby_mm": 1500, "caution_mm": 2000, "evacuation_mm": 2600,
                     "danger_mm": 3200})
        r = api.http.post("/api/devices/provision", json={
            "hardware_id": "esp32-lora-01", "station": "ogi-paddy-01",
            "transport": "lorawan", "dev_eui": EUI})
        r.raise_for_status()
        device = r.json()
        ns = NetworkServer("", "", "ns-api-token-1", gateways=2)
        integ = api.http.post("/api/lorawan/integrations", json={
            "name": "city-chirpstack", "kind": "chirpstack", "api_url": ns.api_url,
            "api_token": "ns-api-token-1"}).json()
        ns.webhook_url, ns.secret = integ["endpoint"], integ["secret"]
        ns.register(EUI)
        ns.lose_every = 7  # now and then no gateway hears a frame
        modem = ModemLink(ns)
        ns.now = modem.time_s  # the network's clock at the uplink, not the wake's start

        station = VirtualStation(tmp_path / "flash")
        station.uarts = {"1": modem.address}
        station.provision(device, server.url, {**device["config"], "transport": "lorawan"},
                          lorawan=OTAA)
        fleet.add(station, "ogi-paddy-01", mount_mm=5000)

        def readings() -> list[dict[str, object]]:
            return api.get("/api/stations/ogi-paddy-01/readings", start=START - 60,
                           end=START + 86400, max_points=100000)["points"]

        fleet.run_until(START + 3 * 3600)
        ns.settle()
        assert modem.errors == []
        assert station.state()["uplink"] == "", station.state()
        assert ns.refused == []
        got = readings()
        assert len(got) >= 15  # 3 h at 10 min, more once the water rises
        assert ns.posts % 2 == 0 and ns.posts <= 2 * ns.uplinks  # each frame came twice ...
        stored = [int(str(p["t"])) for p in got]
        assert len(stored) == len(set(stored))  # ... and was stored once
        first = got[0]
        assert START - 600 <= int(str(first["t"])) <= START + 600

        # an operator lowers the caution level: it reaches the station as a downlink
        r = api.http.patch("/api/stations/ogi-paddy-01", json={"caution_mm": 1800})
        r.raise_for_status()
        # within the hour, and the station's status record says it was applied
        now = START + 4 * 3600
        fleet.run_until(now)
        ns.settle()
        cfg = json.loads((station.flash / "config.json").read_text())
        dev = api.get(f"/api/devices/{device['device_id']}")
        assert cfg["thresholds_mm"][1] == 1800
        assert dev["reported_config_version"] == dev["config_version"] == cfg["config_version"]
        assert station.state()["uplink"] == ""

        # the network server loses the session (restored from a backup): in flood the
        # station finds out from two unanswered link checks and joins again
        assert station.state()["flood"]
        ns.forget(EUI)
        fleet.run_until(now + 3600 + 600)
        ns.settle()
        assert ns.joins == 2 and station.state()["uplink"] == "", station.state()
        # nothing measured is lost: what the air and the dead session swallowed was asked
        # for again (RESEND at a hole; a resend lost again is caught by the next delivery
        # report, every 96 readings: 3.2 h in flood) and stored once
        fleet.run_until(now + 5 * 3600)
        ns.settle()
        after = readings()
        assert len(after) >= len(got) + 20
        stored = [int(str(p["t"])) for p in after]
        assert stored == sorted(stored) and len(stored) == len(set(stored))
        held = station.state()["lora_sent"]
        with sqlite3.connect(tmp_path / "m.db") as db:
            seqs = [r[0] for r in db.execute("SELECT seq FROM readings ORDER BY seq")]
        assert ns.transmitted > ns.uplinks  # frames were lost ...
        missing = sorted(set(range(1, held + 1)) - set(seqs))
        # ... and sent again (seq 68: lost in the air, its RESEND went into the dead session,
        # and the next report request was lost too: asked again at the next wake). Only the
        # last wake's uplinks (4) may still be unheard.
        assert [m for m in missing if m <= held - 4] == [], (missing, held)
        assert modem.errors == []
    finally:
        server.stop()
        if modem:
            modem.close()
        if ns:
            ns.close()
