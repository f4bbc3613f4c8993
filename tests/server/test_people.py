"""Login, sessions, tokens, rate limiting and roles."""

import pytest
from conftest import ADMIN_PASSWORD, STATION, login, make_user
from fastapi.testclient import TestClient


def test_login_wrong_password_and_unknown_user(app_client: TestClient) -> None:
    r = app_client.post("/api/login", json={"username": "admin", "password": "nope"})
    assert r.status_code == 401 and r.json()["detail"] == "wrong username or password"
    r = app_client.post("/api/login", json={"username": "ghost", "password": "x"})
    assert r.status_code == 401


def test_session_cookie_and_logout(app_client: TestClient) -> None:
    r = app_client.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200 and "mizumori_session" in r.cookies
    assert app_client.get("/api/me").json()["username"] == "admin"  # by cookie
    assert app_client.post("/api/logout").status_code == 200
    app_client.cookies.clear()
    token = r.json()["token"]
    assert app_client.get("/api/me", headers={"Authorization": f"Bearer {token}"}
                          ).status_code == 401


def test_failed_logins_are_rate_limited(app_client: TestClient) -> None:
    for _ in range(10):
        app_client.post("/api/login", json={"username": "admin", "password": "bad"})
    r = app_client.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"


def test_personal_api_tokens(app_client: TestClient, admin: dict[str, str]) -> None:
    r = app_client.post("/api/tokens", headers=admin, json={"name": "gis export"})
    assert r.status_code == 201
    token = r.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/api/stations", headers=bearer).status_code == 200
    listed = app_client.get("/api/tokens", headers=admin).json()
    assert [t["name"] for t in listed] == ["gis export"] and "token" not in listed[0]
    assert app_client.delete(f"/api/tokens/{r.json()['id']}", headers=admin).status_code == 200
    assert app_client.get("/api/stations", headers=bearer).status_code == 401


def test_tokens_are_stored_hashed(app_client: TestClient, admin: dict[str, str]) -> None:
    token = app_client.post("/api/tokens", headers=admin, json={"name": "t"}).json()["token"]
    from mizumori_server.models import ApiToken, User

    with app_client.app.state.sessions() as s:  # type: ignore[attr-defined]
        stored = [t.token_hash for t in s.query(ApiToken)]
        assert token not in stored and all(len(h) == 64 for h in stored)
        assert s.query(User).first().password_hash.startswith("$argon2")


def test_viewer_reads_and_nothing_else(app_client: TestClient, admin: dict[str, str]) -> None:
    viewer = make_user(app_client, admin, "viewer1", "viewer")
    assert app_client.get("/api/stations", headers=viewer).status_code == 200
    for method, path, body in (
            ("post", "/api/stations", STATION),
            ("patch", "/api/stations/x", {"name": "y"}),
            ("post", "/api/devices/provision", {"hardware_id": "esp32-aa"}),
            ("put", "/api/provisioning/allowlist", {"entries": []}),
            ("post", "/api/users", {"username": "u", "password": "p" * 12, "role": "admin"}),
            ("patch", "/api/devices/1/config", {"settings": {}})):
        r = getattr(app_client, method)(path, headers=viewer, json=body)
        assert r.status_code == 403, (path, r.status_code)
        assert "needs role" in r.json()["detail"]


def test_technician_provisions_but_cannot_manage_users(app_client: TestClient,
                                                      admin: dict[str, str]) -> None:
    tech = make_user(app_client, admin, "tech1", "technician")
    assert app_client.post("/api/devices/provision", headers=tech,
                           json={"hardware_id": "esp32-01"}).status_code == 201
    assert app_client.get("/api/users", headers=tech).status_code == 403
    assert app_client.post("/api/stations", headers=tech, json=STATION).status_code == 403


def test_disabling_a_user_ends_their_sessions(app_client: TestClient,
                                              admin: dict[str, str]) -> None:
    op = make_user(app_client, admin, "op1", "operator")
    uid = app_client.get("/api/me", headers=op).json()["id"]
    assert app_client.patch(f"/api/users/{uid}", headers=admin,
                            json={"disabled": True}).status_code == 200
    assert app_client.get("/api/me", headers=op).status_code == 401
    r = app_client.post("/api/login", json={"username": "op1", "password": "op1-password-1"})
    assert r.status_code == 401


def test_no_credentials_and_bad_input_are_json_errors(app_client: TestClient,
                                                      admin: dict[str, str]) -> None:
    r = app_client.get("/api/stations")
    assert r.status_code == 401 and r.json()["detail"]
    r = app_client.post("/api/users", headers=admin,
                        json={"username": "x y", "password": "short", "role": "king"})
    assert r.status_code == 422
    assert "password" in r.json()["detail"] and "role" in r.json()["detail"]
    assert login(app_client)["Authorization"].startswith("Bearer ")


def test_tokens_never_start_like_a_command_line_option(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    from mizumori_server import security

    drawn = iter(["-Xk3v", "_-9a", "Qz-1"])
    monkeypatch.setattr(security.secrets, "token_urlsafe", lambda n: next(drawn))
    assert security.new_token() == "_-9a"  # `--token -Xk3v` would read as an option
