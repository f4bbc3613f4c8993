"""Login, sessions, tokens, rate limiting and roles."""

import pytest
from conftest import ADMIN_PASSWORD, STATION, USER_PASSWORD, login, make_user
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
    r = app_client.post("/api/login", json={"username": "op1", "password": USER_PASSWORD})
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


# --- issue 16: the login limit as documented, timing, the password policy ------------------

def bad_login(client: TestClient, username: str = "admin") -> int:
    return client.post("/api/login", json={"username": username,
                                           "password": "wrong-password"}).status_code


def test_login_limit_is_ten_failures_per_user_name(app_client: TestClient) -> None:
    # docs/server.md: after 10 failed logins in a minute the answer is 429 (each failure
    # was counted twice, once per user name and once per address: 429 after 5)
    assert [bad_login(app_client) for _ in range(9)] == [401] * 9
    r = app_client.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200  # 9 failures: still let in
    assert bad_login(app_client) == 401  # the 10th failure is still an answer
    r = app_client.post("/api/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"


def test_login_limit_is_ten_failures_per_address(app_client: TestClient) -> None:
    assert [bad_login(app_client, f"nobody{i}") for i in range(10)] == [401] * 10
    assert bad_login(app_client, "someone-else") == 429


def test_login_runs_the_hash_for_unknown_and_disabled_users(
        app_client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A login takes as long whether the user exists or not: the password hash runs in
    every case (it ran only for existing users: 140 ms against 24 ms)."""
    from mizumori_server import security

    op = make_user(app_client, admin, "op1", "operator")
    uid = app_client.get("/api/me", headers=op).json()["id"]
    app_client.patch(f"/api/users/{uid}", headers=admin, json={"disabled": True})
    verify = security.verify_password
    seen: list[str] = []

    def counting(stored: str, password: str) -> bool:
        seen.append(stored)
        return verify(stored, password)

    monkeypatch.setattr(security, "verify_password", counting)
    for name, password in (("ghost", "x"), ("admin", "wrong"), ("op1", USER_PASSWORD)):
        seen.clear()
        r = app_client.post("/api/login", json={"username": name, "password": password})
        assert r.status_code == 401 and r.json()["detail"] == "wrong username or password"
        assert len(seen) == 1 and seen[0].startswith("$argon2"), name
    assert security.dummy_hash() != security.hash_password("x")  # no password matches it


@pytest.mark.parametrize("username,password,why", [
    ("kenji", "aaaaaaaaaa", "different characters"),
    ("kenji", "abababababab", "different characters"),
    ("kenji", "1234567890", "too common"),
    ("kenji", "qwertyuiop", "too common"),
    ("kenji", "Password123!", "too common"),  # a common one with digits added
    ("kenji", "Manchester2026", "too common"),
    ("kenji", "KENJI-river-77", "user name"),  # any case
    ("riverwatch", "RiverWatch", "user name"),  # equal to it
    ("kenji", "short", "at least 10"),
])
def test_password_policy_on_user_create(app_client: TestClient, admin: dict[str, str],
                                        username: str, password: str, why: str) -> None:
    r = app_client.post("/api/users", headers=admin,
                        json={"username": username, "password": password, "role": "viewer"})
    assert r.status_code == 422, r.text
    assert "password" in r.json()["detail"] and why in r.json()["detail"], r.json()
    assert username not in [u["username"] for u in
                            app_client.get("/api/users", headers=admin).json()]


def test_password_policy_on_password_change(app_client: TestClient,
                                            admin: dict[str, str]) -> None:
    make_user(app_client, admin, "kenji", "viewer")
    uid = next(u["id"] for u in app_client.get("/api/users", headers=admin).json()
               if u["username"] == "kenji")
    for weak in ("kenji-2026-rain", "1q2w3e4r5t", "zzzzzzzzzzzz"):
        r = app_client.patch(f"/api/users/{uid}", headers=admin,
                             json={"password": weak, "role": "admin"})
        assert r.status_code == 422 and "password" in r.json()["detail"], r.text
    me = login(app_client, "kenji", USER_PASSWORD)  # the old password, and nothing changed
    assert app_client.get("/api/me", headers=me).json()["role"] == "viewer"
    r = app_client.patch(f"/api/users/{uid}", headers=admin,
                         json={"password": "hotaru-no-hikari"})
    assert r.status_code == 200
    login(app_client, "kenji", "hotaru-no-hikari")


def test_password_policy_holds_for_the_command_line_too(app_client: TestClient) -> None:
    """`mizumori user create` creates its user through people.create, as the API does."""
    from mizumori_server import security
    from mizumori_server.api.people import create

    with app_client.app.state.sessions() as s:  # type: ignore[attr-defined]
        with pytest.raises(security.WeakPassword, match="user name"):
            create(s, "admin", "admin-password-1", "admin")
        with pytest.raises(security.WeakPassword, match="too common"):
            create(s, "boss", "password1234", "admin")
        assert create(s, "boss", "hotaru-no-hikari", "admin").id
        s.rollback()
