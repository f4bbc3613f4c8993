"""Registering devices: by a technician, or by the device from the allowlist."""

from conftest import make_user
from device import Device, reading
from fastapi.testclient import TestClient
from httpx import Response
from mizumori_server.queries import iso


def provision(client: TestClient, headers: dict[str, str], hw: str = "esp32-0001",
              station: str | None = "taku-01", **extra: object) -> dict[str, object]:
    r = client.post("/api/devices/provision", headers=headers,
                    json={"hardware_id": hw, "station": station, **extra})
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
    second = Device(app_client, provision(app_client, admin, "esp32-second", replace=True))
    assert second.send(reading(1, 1150)).status_code == 200
    r = first.send(reading(2))  # removed from the station: its data would go nowhere
    assert r.status_code == 409 and r.json()["code"] == "not_installed"
    pts = app_client.get("/api/stations/taku-01/readings", headers=admin).json()["points"]
    assert [p["level_mm"] for p in pts] == [1100, 1150]
    hist = app_client.get("/api/stations/taku-01", headers=admin).json()["devices"]
    assert [h["device_id"] for h in hist] == [first.id, second.id]
    assert hist[0]["removed_at"] is not None and hist[1]["removed_at"] is None
    # the replacement is recorded: who took the first device off, and for which
    assert (hist[0]["removed_by"], hist[0]["replaced_by"]) == ("admin", second.id)
    assert (hist[1]["removed_by"], hist[1]["replaced_by"]) == (None, None)


def occupied(r: Response, station: str, device_id: object, hardware_id: str,
             last_report: int | None) -> None:
    """A 409 that names the station's device and when it last reported."""
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "station_has_device" and body["station"] == station
    cur = body["current_device"]
    assert (cur["device_id"], cur["hardware_id"], cur["last_report"]) == (
        device_id, hardware_id, last_report)
    assert f"device {device_id} ({hardware_id}" in body["detail"]
    assert '"replace": true' in body["detail"]
    if last_report is None:
        assert cur["last_report_at"] is None and "no report yet" in body["detail"]
    else:
        assert cur["last_report_at"] == iso(last_report)
        assert f"last report {iso(last_report)}" in body["detail"]


def test_registering_at_a_station_with_a_device_needs_replace(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> None:
    """Issue 18: registering a board at a station silently evicted the working one, which
    got 409 not_installed from then on."""
    working = Device(app_client, provision(app_client, admin, "esp32-working"))
    assert working.send(reading(1)).status_code == 200
    heard = app_client.get("/api/latest", headers=admin).json()[0]["last_seen"]
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-newboard", "station": "taku-01"})
    occupied(r, "taku-01", working.id, "esp32-working", heard)
    # nothing changed: no new device, and the working one still reports
    hws = [d["hardware_id"] for d in app_client.get("/api/devices", headers=admin).json()]
    assert hws == ["esp32-working"]
    assert working.send(reading(2)).status_code == 200
    # replace: false is the same refusal; re-provisioning the station's own device is not a
    # replacement
    r = app_client.post("/api/devices/provision", headers=admin, json={
        "hardware_id": "esp32-newboard", "station": "taku-01", "replace": False})
    assert r.status_code == 409
    again = Device(app_client, provision(app_client, admin, "esp32-working"))
    assert again.send(reading(3)).status_code == 200
    # a board registered without a station, then installed there: the same rule
    spare = provision(app_client, admin, "esp32-spare", None)
    r = app_client.post(f"/api/devices/{spare['device_id']}/install", headers=admin,
                        json={"station": "taku-01"})
    heard = app_client.get("/api/latest", headers=admin).json()[0]["last_seen"]
    occupied(r, "taku-01", working.id, "esp32-working", heard)
    assert again.send(reading(4)).status_code == 200
    r = app_client.post(f"/api/devices/{spare['device_id']}/install", headers=admin,
                        json={"station": "taku-01", "replace": True})
    assert r.status_code == 200 and r.json()["station"] == "taku-01"
    assert again.send(reading(5)).json()["code"] == "not_installed"
    # the station's new device never reported: the 409 says so
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-third", "station": "taku-01"})
    occupied(r, "taku-01", spare["device_id"], "esp32-spare", None)
    # replacing with a board that is already installed elsewhere moves it
    app_client.post("/api/stations", headers=admin, json={
        **{k: v for k, v in station.items() if k in ("name", "site_type", "latitude",
                                                        "longitude", "mount_height_mm")},
        "code": "taku-02"}).raise_for_status()
    r = app_client.post(f"/api/devices/{again.id}/install", headers=admin,
                        json={"station": "taku-02"})
    assert r.status_code == 200  # an empty station: no flag needed
    r = app_client.post(f"/api/devices/{again.id}/install", headers=admin,
                        json={"station": "taku-01", "replace": True})
    assert r.status_code == 200
    devs = {d["hardware_id"]: d["station"]
            for d in app_client.get("/api/devices", headers=admin).json()}
    assert devs == {"esp32-working": "taku-01", "esp32-spare": None}
    # removing needs no flag
    r = app_client.post(f"/api/devices/{again.id}/install", headers=admin,
                        json={"station": None})
    assert r.status_code == 200 and r.json()["station"] is None


def test_self_registration_replaces_only_when_its_entry_says_so(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> None:
    working = Device(app_client, provision(app_client, admin, "esp32-working"))
    assert working.send(reading(1)).status_code == 200
    heard = app_client.get("/api/latest", headers=admin).json()[0]["last_seen"]
    app_client.put("/api/provisioning/allowlist", headers=admin, json={"entries": [
        {"hardware_id": "esp32-batch-01", "station": "taku-01"}]}).raise_for_status()
    secret = {"X-Mizumori-Provisioning": "batch-secret-2026"}
    r = app_client.post("/api/devices/register", headers=secret,
                        json={"hardware_id": "esp32-batch-01"})
    occupied(r, "taku-01", working.id, "esp32-working", heard)
    assert working.send(reading(2)).status_code == 200
    app_client.put("/api/provisioning/allowlist", headers=admin, json={"entries": [
        {"hardware_id": "esp32-batch-01", "station": "taku-01", "replace": True}]}
                   ).raise_for_status()
    r = app_client.post("/api/devices/register", headers=secret,  # the entry was not used
                        json={"hardware_id": "esp32-batch-01"})
    assert r.status_code == 201 and r.json()["station"] == "taku-01", r.text
    assert working.send(reading(3)).json()["code"] == "not_installed"
    hist = app_client.get("/api/stations/taku-01", headers=admin).json()["devices"]
    assert hist[0]["removed_by"] == "self-registration"


def test_one_device_per_station_in_the_database(
        app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> None:
    """Two installations at once (two workers) cannot both stay: the database refuses the
    second current install of a station."""
    import pytest
    from mizumori_server.models import DeviceInstall
    from sqlalchemy.exc import IntegrityError

    first = provision(app_client, admin, "esp32-first")
    other = provision(app_client, admin, "esp32-other", None)
    with app_client.app.state.sessions() as s:  # type: ignore[attr-defined]
        s.add(DeviceInstall(device_id=other["device_id"], station_id=1, installed_at=1,
                            by_user="x"))
        with pytest.raises(IntegrityError):
            s.commit()
    assert first["station"] == "taku-01"


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
