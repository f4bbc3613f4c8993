"""A station with a static address (issue 17 §4): `mizumori device provision --wifi-ip`
refuses values the board would take wrongly, and a virtual station provisioned with one
reports without DHCP's time on each wake; one whose address does not fit the access point's
network keeps its readings until the address is corrected."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import one_clear_line
from mizumori_tools import device
from mizumori_tools.fleet import Api, Fleet, ServerProcess
from mizumori_tools.virtual import Scenario, VirtualStation
from station.flashqueue import FlashQueue
from station.hw.sim import SIM_SSID
from station.hw.sim_net import SimWLAN

START = 1_790_000_000
PASSWORD = "virtual-station"


def test_a_static_address_is_checked_and_written_out() -> None:
    assert device.wifi_settings("kasen", "pw", " 192.168.10.50", "24", "192.168.10.1") == {
        "ssid": "kasen", "password": "pw", "ip": "192.168.10.50",
        "netmask": "255.255.255.0", "gateway": "192.168.10.1", "dns": "192.168.10.1"}
    wide = device.wifi_settings("kasen", "pw", "10.8.1.20", "255.255.252.0", "10.8.0.1",
                                "8.8.8.8")
    assert wide and (wide["netmask"], wide["dns"]) == ("255.255.252.0", "8.8.8.8")
    assert device.wifi_settings("kasen", "pw") == {"ssid": "kasen", "password": "pw"}
    assert device.wifi_settings(None, None) is None


@pytest.mark.parametrize(("args", "says"), [
    (("10.0.0.300", "24", "10.0.0.1"), "'10.0.0.300' is not an IPv4 address"),
    (("10.0.0.5", "0.0.0.255", "10.0.0.1"), "'0.0.0.255' is not a station's netmask"),
    (("10.0.0.5", "31", "10.0.0.4"), "'31' is not a station's netmask"),
    (("10.0.0.255", "24", "10.0.0.1"), "the subnet 10.0.0.0/24's own address or its broadcast"),
    (("127.0.0.5", "24", "127.0.0.1"), "cannot be a station's address"),
    (("10.0.0.5", "24", "10.0.1.1"), "must be the router's address, another host of the "
                                     "station's subnet 10.0.0.0/24"),
    (("10.0.0.5", "24", "10.0.0.5"), "must be the router's address"),
    (("10.0.0.5", "24", "10.0.0.1", "10.0.0.255"), "is not a DNS server's address"),
    (("10.0.0.5", None, "10.0.0.1"), "only --wifi-ip, --wifi-gateway given"),
    ((None, "24", None), "only --wifi-netmask given"),
])
def test_bad_static_values_are_refused(args: tuple[str | None, ...], says: str) -> None:
    with pytest.raises(device.DeviceError) as e:
        device.wifi_settings("kasen", "pw", *args)
    assert says in str(e.value)


def test_the_command_refuses_them_before_anything_is_registered(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIZUMORI_")}
    done = subprocess.run(
        [sys.executable, "-m", "mizumori_tools.cli", "device", "provision", "--port",
         "/dev/null", "--server", "http://127.0.0.1:9", "--station", "taku-30", "--token", "t",
         "--wifi-ssid", "kasen", "--wifi-password", "pw", "--wifi-ip", "192.168.1.300",
         "--wifi-netmask", "24", "--wifi-gateway", "192.168.1.1"],
        capture_output=True, text=True, timeout=120, env=env)
    line = one_clear_line(done)  # not "server unreachable": refused before asking it
    assert "--wifi-ip '192.168.1.300' is not an IPv4 address" in line
    done = subprocess.run(
        [sys.executable, "-m", "mizumori_tools.cli", "device", "provision", "--port",
         "/dev/null", "--server", "http://127.0.0.1:9", "--station", "taku-30", "--token", "t",
         "--wifi-gateway", "192.168.1.1"], capture_output=True, text=True, timeout=120, env=env)
    assert "--wifi-gateway without --wifi-ssid" in one_clear_line(done)


def set_wifi(station: VirtualStation, wifi: dict[str, str] | None) -> None:
    """secrets.json's Wi-Fi as `mizumori device provision` writes it."""
    path = station.flash / "secrets.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "wifi": wifi}))


def test_a_virtual_station_with_a_static_address_reports(tmp_path: Path) -> None:
    clock = tmp_path / "clock"
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
                            "MIZUMORI_CLOCK_FILE": str(clock),
                            "MIZUMORI_SECRET_KEY": "static-ip-key"}, cwd=tmp_path)
    server.prepare({"admin": ("admin", "kawa-kanri-2026")})
    fleet = Fleet(Scenario.load("calm"), clock, START)
    server.start()
    try:
        api = Api.login(server.url, "admin", "kawa-kanri-2026")
        stations = {}
        for code in ("dhcp-01", "static-01"):
            api.station({"code": code, "name": code, "site_type": "river", "latitude": 33.2,
                         "longitude": 130.1, "mount_height_mm": 5000, "upload_every": 1})
            p = api.provision(f"esp32-{code}", code)
            stations[code] = VirtualStation(tmp_path / code)
            stations[code].provision(p, server.url, p["config"])
            fleet.add(stations[code], code)
        static = stations["static-01"]
        # the sim's access point is on 192.168.4.0/24 with its router at .1
        set_wifi(static, device.wifi_settings(SIM_SSID, PASSWORD, "192.168.4.20", "24",
                                              "192.168.4.1"))

        def stored(code: str) -> int:
            return int(api.get(f"/api/stations/{code}/readings", start=START - 60,
                               end=START + 86400, max_points=100000)["count"])

        fleet.run_until(START + 3600)
        ledgers = {c: json.loads((s.flash / "energy.json").read_text())
                   for c, s in stations.items()}
        wakes = ledgers["static-01"]["wakes"]
        assert wakes == ledgers["dhcp-01"]["wakes"] >= 6
        assert stored("static-01") >= wakes - 1 and static.state()["uplink"] == ""
        saved = (ledgers["dhcp-01"]["wifi"] - ledgers["static-01"]["wifi"]) / wakes
        assert SimWLAN.DHCP_MS - 50 <= saved <= SimWLAN.DHCP_MS + 50  # DHCP's exchange

        # An address of another network (a valid one: a router changed, a typo of a digit):
        # the link comes up, nothing is answered, the readings wait in flash.
        set_wifi(static, device.wifi_settings(SIM_SSID, PASSWORD, "192.168.5.20", "24",
                                              "192.168.5.1"))
        before = stored("static-01")
        fleet.run_until(START + 2 * 3600)
        assert stored("static-01") == before and static.state()["uplink"] != ""
        assert FlashQueue(str(static.flash / "queue")).depth() >= 5
        set_wifi(static, device.wifi_settings(SIM_SSID, PASSWORD, "192.168.4.20", "24",
                                              "192.168.4.1"))
        fleet.run_until(START + 3 * 3600)
        assert stored("static-01") >= before + 12 and static.state()["uplink"] == ""
    finally:
        server.stop()
