"""Webhook destinations (issue 16, item 6): an operator's webhook made the server POST to
loopback services, and the deliveries list told `200` from `Connection refused` per port —
an internal port scanner. Now a webhook may only reach public addresses, unless an admin
allows a destination (MIZUMORI_WEBHOOK_ALLOW); the address is checked when the webhook is
configured and again, resolved, at every delivery, which connects to exactly the address
it checked; deliveries record generic errors only."""

import ipaddress
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from device import Device, codec
from fastapi.testclient import TestClient
from mizumori_server import clock, destinations, notify
from mizumori_server.settings import Settings
from receiver import receiver

REFUSED_URLS = [
    "http://127.0.0.1:8080/hook", "http://localhost:5432/", "http://[::1]/",
    "http://0.0.0.0:22/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/",
    "http://172.16.3.4/", "http://192.168.1.1/admin", "http://100.64.0.1/",
    "http://224.0.0.251/", "http://240.0.0.1/", "http://[fd00::1]/", "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/", "http://2130706433/", "http://0x7f000001/",
    "http://127.1/",
]


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    t = int(time.time())
    monkeypatch.setattr(clock, "now", lambda: t)


def resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such name")
        return table[host]
    return resolve


def hook(client: TestClient, admin: dict[str, str], url: str) -> Any:
    return client.post("/api/webhooks", headers=admin, json={"name": "city", "url": url})


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_webhooks_to_internal_addresses_are_refused(app_client: TestClient,
                                                    admin: dict[str, str], url: str) -> None:
    r = hook(app_client, admin, url)
    assert r.status_code == 422 and "destination refused" in r.json()["detail"], r.text
    assert app_client.get("/api/webhooks", headers=admin).json() == []


def test_a_name_that_resolves_inside_is_refused_when_configured(
        app_client: TestClient, admin: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(destinations, "system_resolver", resolver({
        "inside.example.com": ["93.184.216.34", "10.1.2.3"],
        "outside.example.com": ["93.184.216.34", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]}))
    r = hook(app_client, admin, "https://inside.example.com/hook")
    detail = r.json()["detail"]
    assert r.status_code == 422 and "not a public address" in detail, r.text
    assert "10.1.2.3" not in detail  # the answer does not map internal names
    ok = hook(app_client, admin, "https://outside.example.com/hook")
    assert ok.status_code == 201, ok.text
    # nor can a change of URL point it inside
    r = app_client.patch(f"/api/webhooks/{ok.json()['id']}", headers=admin,
                         json={"url": "http://127.0.0.1:6379/"})
    assert r.status_code == 422, r.text
    assert [w["url"] for w in app_client.get("/api/webhooks", headers=admin).json()] == [
        "https://outside.example.com/hook"]


def alert(client: TestClient, admin: dict[str, str]) -> None:
    """A reading over the station's standby level: one alert, one delivery per webhook."""
    r = client.post("/api/devices/provision", headers=admin,
                    json={"hardware_id": "esp32-0001", "station": "taku-01"})
    dev = Device(client, r.json())
    assert dev.send(codec.encode_full(1, 0, 1200, 3700, 0, 18.0, 60.0, 1010.0, 0.0)
                    ).status_code == 200


def deliveries(client: TestClient, admin: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for w in client.get("/api/webhooks", headers=admin).json():
        out += client.get(f"/api/webhooks/{w['id']}/deliveries", headers=admin).json()
    return out


def send(client: TestClient, resolve: Callable[[str, int], list[str]]) -> int:
    app: Any = client.app
    with httpx.Client() as http:
        return notify.send_due(app.state.sessions, app.state.box, app.state.settings, http,
                               resolve=resolve)


def test_dns_cannot_turn_an_allowed_name_into_loopback(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with receiver() as rec:
        port = int(rec.url.rsplit(":", 1)[1].split("/")[0])
        url = f"http://hooks.example.com:{port}/hook"
        # public when it was configured...
        monkeypatch.setattr(destinations, "system_resolver",
                            resolver({"hooks.example.com": ["93.184.216.34"]}))
        assert hook(app_client, admin, url).status_code == 201
        alert(app_client, admin)
        # ... loopback when it is sent: refused, nothing sent
        assert send(app_client, resolver({"hooks.example.com": ["127.0.0.1"]})) == 1
        assert rec.requests == []
        [d] = deliveries(app_client, admin)
        assert (d["state"], d["last_status"], d["last_error"]) == (
            "pending", None, "destination refused")


def test_an_admin_allows_a_destination_by_name_or_address(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object],
        settings: Settings) -> None:
    app: Any = app_client.app
    with receiver() as rec:
        port = int(rec.url.rsplit(":", 1)[1].split("/")[0])
        app.state.settings = settings.model_copy(update={
            "webhook_allow": f"hooks.city.local:{port}, 10.0.0.0/8"})
        ok = hook(app_client, admin, f"http://hooks.city.local:{port}/hook")
        assert ok.status_code == 201, ok.text
        inside = hook(app_client, admin, "http://10.9.8.7:8080/")
        assert inside.status_code == 201, inside.text
        app_client.delete(f"/api/webhooks/{inside.json()['id']}", headers=admin)
        assert hook(app_client, admin, "http://127.0.0.1:8080/").status_code == 422
        alert(app_client, admin)
        # the name resolves to loopback: allowed by name, the connection goes to the
        # address resolved, and the receiver sees the name in Host
        send(app_client, resolver({"hooks.city.local": ["127.0.0.1"]}))
        [req] = rec.requests
        assert req["headers"]["host"] == f"hooks.city.local:{port}"
        [d] = deliveries(app_client, admin)
        assert d["state"] == "delivered"


def test_deliveries_show_generic_errors_only(app_client: TestClient, admin: dict[str, str],
                                             station: dict[str, object],
                                             settings: Settings) -> None:
    """What an allowed but closed port, a refused address and an error status show: no
    socket message, no reply body."""
    app: Any = app_client.app
    app.state.settings = settings.model_copy(update={"webhook_allow": "127.0.0.0/8"})
    with receiver() as rec:
        rec.status = 500
        assert hook(app_client, admin, rec.url).status_code == 201
        assert hook(app_client, admin, "http://127.0.0.1:9/closed").status_code == 201
        assert hook(app_client, admin, "http://127.0.0.2:9/other").status_code == 201
        alert(app_client, admin)
        app.state.settings = settings.model_copy(update={"webhook_allow": "127.0.0.1"})
        assert send(app_client, destinations.system_resolver) == 3
    errors = sorted(d["last_error"] for d in deliveries(app_client, admin))
    assert errors == ["HTTP 500", "connection failed", "destination refused"], errors


def test_the_allow_list_setting() -> None:
    allow = destinations.parse_allow(" 127.0.0.1:8080, 10.20.0.0/16,[fd00::1]:443 ,"
                                     "gis.city.local:8443, alarms.city.local,[::1]")
    assert len(allow) == 6
    v4 = ipaddress.ip_address
    assert destinations.permitted("x", v4("127.0.0.1"), 8080, allow)
    assert not destinations.permitted("x", v4("127.0.0.1"), 8081, allow)
    assert destinations.permitted("x", v4("10.20.3.4"), 1, allow)
    assert destinations.permitted("x", v4("fd00::1"), 443, allow)
    assert destinations.permitted("gis.city.local", v4("10.99.0.1"), 8443, allow)
    assert not destinations.permitted("gis.city.local", v4("10.99.0.1"), 443, allow)
    assert destinations.permitted("alarms.city.local.", v4("127.0.0.1"), 1, allow)
    assert destinations.permitted("x", v4("::1"), 9, allow)
    assert destinations.permitted("x", v4("93.184.216.34"), 80, ())  # public needs nothing
    assert not destinations.permitted("x", v4("198.51.100.7"), 80, ())  # documentation
    for bad in ("127.0.0.1:0", "host:http", "[::1", "a b", "-x-.local", "[::1]x"):
        with pytest.raises(ValueError):
            destinations.parse_allow(bad)
    with pytest.raises(ValueError):
        Settings(webhook_allow="127.0.0.1:99999")
    t = destinations.target("https://user:pw@hooks.example.com/a?b=1", (),
                            resolver({"hooks.example.com": ["2606:2800:21f::1"]}))
    assert (t.url, t.host_header, t.server_name) == (
        "https://user:pw@[2606:2800:21f::1]:443/a?b=1", "hooks.example.com",
        "hooks.example.com")
    with pytest.raises(destinations.Refused):  # every address must be allowed
        destinations.target("http://two.example.com/", (), resolver(
            {"two.example.com": ["93.184.216.34", "127.0.0.1"]}))
