"""Registering devices: by a technician, or by the device from the allowlist."""

from conftest import make_user
from device import Device, reading
from fastapi.testclient import TestClient


def provision(client: TestClient, headers: dict[str, str], hw: str = "esp32-0001",
              station: str | None = "taku-01") -> dict[str, object]:
    r = client.post("/api/devices/provision", headers=headers,
                    json={"hardware_id": hw, "station": station})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


def test_provisioning_returns_id_secret_once_and_station_config(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> None:
    p = provision(app_client, admin)
    assert len(str(p["secret"])) == 64 and p["station"] == "taku-01"
    cfg = p["config"]
    assert isinstance(cfg, dict)
    assert cfg["mount_mm"] == 5000 and cfg["thresholds_mm"] == [1000, 1500, 2000, 2500]
    detail = app_client.get(f"/api/devices/{p['device_id']}", headers=admin).json()
    assert "secret" not in detail and "secret_enc" not in detail


def test_secret_is_encrypted_at_rest(app_client: TestClient, admin: dict[str, str],
                                     station: dict[str, object]) -> None:
    p = provision(app_client, admin)
    from mizumori_server.models import Device as Row

    with app_client.app.state.sessions() as s:  # type: ignore[attr-defined]
        stored = s.get(Row, p["device_id"]).secret_enc
    assert bytes.fromhex(str(p["secret"])) not in stored


def test_reprovisioning_rotates_the_secret_at_once(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> None:
    old = Device(app_client, provision(app_client, admin))
    assert old.send(reading(1)).status_code == 200
    new = Device(app_client, provision(app_client, admin))
    assert new.id == old.id and new.secret != old.secret
    r = old.send(reading(2))
    assert r.status_code == 401 and r.json()["code"] == "bad_signature"
    assert new.send(reading(2)).status_code == 200


def test_self_registration_from_the_allowlist_once(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> None:
    tech = make_user(app_client, admin, "tech", "technician")
    r = app_client.put("/api/provisioning/allowlist", headers=tech, json={"entries": [
        {"hardware_id": "esp32-batch-01", "station": "taku-01"},
        {"hardware_id": "esp32-batch-02"}]})
    assert r.json() == {"added": 2, "total": 2}
    secret = {"X-Mizumori-Provisioning": "batch-secret-2026"}
    r = app_client.post("/api/devices/register", headers=secret,
                        json={"hardware_id": "esp32-batch-01"})
    assert r.status_code == 201 and r.json()["station"] == "taku-01"
    assert Device(app_client, r.json()).send(reading(1)).status_code == 200
    again = app_client.post("/api/devices/register", headers=secret,
                            json={"hardware_id": "esp32-batch-01"})
    assert again.status_code == 403
    assert app_client.post("/api/devices/register", headers=secret,
                           json={"hardware_id": "esp32-stranger"}).status_code == 403
    assert app_client.post("/api/devices/register", headers={"X-Mizumori-Provisioning": "no"},
                           json={"hardware_id": "esp32-batch-02"}).status_code == 401


def test_replacing_a_device_keeps_the_station_history(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> None:
    first = Device(app_client, provision(app_client, admin, "esp32-first"))
    assert first.send(reading(1, 1100, age_s=600)).status_code == 200
    second = Device(app_client, provision(app_client, admin, "esp32-second"))
    assert second.send(reading(1, 1150)).status_code == 200
    r = first.send(reading(2))  # removed from the station: its data would go nowhere
    assert r.status_code == 409 and r.json()["code"] == "not_installed"
    pts = app_client.get("/api/stations/taku-01/readings", headers=admin).json()["points"]
    assert [p["level_mm"] for p in pts] == [1100, 1150]
    hist = app_client.get("/api/stations/taku-01", headers=admin).json()["devices"]
    assert [h["device_id"] for h in hist] == [first.id, second.id]
    assert hist[0]["removed_at"] is not None and hist[1]["removed_at"] is None


def test_bad_provisioning_requests(app_client: TestClient, admin: dict[str, str]) -> None:
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-x", "station": "nowhere"})
    assert r.status_code == 404 and "nowhere" in r.json()["detail"]
    r = app_client.post("/api/devices/provision", headers=admin, json={"hardware_id": "a b"})
    assert r.status_code == 422


def test_a_deveui_belongs_to_one_device(app_client: TestClient, admin: dict[str, str]) -> None:
    body = {"hardware_id": "rak-0001", "transport": "lorawan", "dev_eui": "70B3D57ED0061234"}
    assert app_client.post("/api/devices/provision", headers=admin, json=body).status_code == 201
    r = app_client.post("/api/devices/provision", headers=admin,
                        json=dict(body, hardware_id="rak-0002"))
    assert r.status_code == 409 and "70b3d57ed0061234" in r.json()["detail"]
    r = app_client.post("/api/devices/provision", headers=admin,  # however it is written
                        json=dict(body, hardware_id="rak-0002", dev_eui="70b3d57ed0061234"))
    assert r.status_code == 409
    assert app_client.post("/api/devices/provision", headers=admin,  # re-provisioning: fine
                           json=body).status_code == 201


def test_self_registration_never_rekeys_a_provisioned_device(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> None:
    """Issue 16: a board provisioned by a technician whose allowlist entry is still unused
    could be given a new secret by anyone with the batch secret and its hardware id; the
    real station then got 401 and the attacker's uploads 200."""
    tech = make_user(app_client, admin, "tech", "technician")
    real = Device(app_client, provision(app_client, tech, "esp32-a4cf12345678"))
    assert real.send(reading(1)).status_code == 200
    r = app_client.put("/api/provisioning/allowlist", headers=tech, json={"entries": [
        {"hardware_id": "esp32-a4cf12345678", "station": "taku-01"}]})
    assert r.status_code == 200
    secret = {"X-Mizumori-Provisioning": "batch-secret-2026"}
    r = app_client.post("/api/devices/register", headers=secret,
                        json={"hardware_id": "esp32-a4cf12345678"})
    assert r.status_code == 409 and "secret" not in r.json(), r.text
    assert "already provisioned" in r.json()["detail"]
    assert real.send(reading(2)).status_code == 200  # the station keeps its secret
    # nothing changed: the entry is still unused, and the device what it was
    from mizumori_server.models import AllowlistEntry

    with app_client.app.state.sessions() as s:  # type: ignore[attr-defined]
        entry = s.get(AllowlistEntry, "esp32-a4cf12345678")
        assert entry is not None and entry.used_at is None
    # re-keying is a technician's explicit provisioning (rotate): the old secret stops
    rotated = Device(app_client, provision(app_client, tech, "esp32-a4cf12345678"))
    assert rotated.secret != real.secret
    assert real.send(reading(3)).json()["code"] == "bad_signature"
    assert rotated.send(reading(3)).status_code == 200
    # a board on the allowlist that was never provisioned still registers itself, once
    app_client.put("/api/provisioning/allowlist", headers=tech,
                   json={"entries": [{"hardware_id": "esp32-a4cf00000001"}]})
    r = app_client.post("/api/devices/register", headers=secret,
                        json={"hardware_id": "esp32-a4cf00000001"})
    assert r.status_code == 201, r.text
    again = app_client.post("/api/devices/register", headers=secret,
                            json={"hardware_id": "esp32-a4cf00000001"})
    assert again.status_code == 403
