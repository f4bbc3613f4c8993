"""Issue 16, the server's side of the dashboard's defences: security headers on every
response, pages without inline script, where a login may lead (?next=), JSON in a page that
cannot end its block, and a download name that cannot inject a header parameter."""

import json
import re
from typing import Any

import pytest
from conftest import STATION
from fastapi.testclient import TestClient
from mizumori_server import headers
from mizumori_server.web import safe_next

CONFIG = re.compile(r'<script id="config" type="application/json">(.*?)</script>', re.S)


def csp(r: Any) -> dict[str, list[str]]:
    policy = r.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


def assert_secured(r: Any, what: str) -> None:
    h = r.headers
    assert h.get("X-Frame-Options") == "DENY", what
    assert h.get("X-Content-Type-Options") == "nosniff", what
    assert h.get("Referrer-Policy") == "same-origin", what
    policy = csp(r)
    assert policy["frame-ancestors"] == ["'none'"], what
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"], what
    for sources in policy.values():
        assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, what


def test_security_headers_on_every_kind_of_response(app_client: TestClient,
                                                    admin: dict[str, str]) -> None:
    app = app_client.app

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/test-boom", boom)  # type: ignore[attr-defined]
    app_client.post("/api/stations", headers=admin, json=STATION)
    seen = {}
    with TestClient(app, raise_server_exceptions=False) as client:
        for what, method, path, kw in (
                ("login page", "get", "/login", {}),
                ("redirect to login", "get", "/fleet", {"follow_redirects": False}),
                ("API JSON", "get", "/api/stations", {"headers": admin}),
                ("API 401", "get", "/api/stations", {}),
                ("API 404", "get", "/api/no-such-thing", {}),
                ("API 422", "post", "/api/login", {"json": {}}),
                ("API 500", "get", "/api/test-boom", {}),
                ("static script", "get", "/static/app.js", {}),
                ("static 404", "get", "/static/nothing.js", {}),
                ("vendored script", "get", "/static/vendor/leaflet/leaflet.js", {}),
                ("OpenAPI", "get", "/openapi.json", {}),
                ("API docs", "get", "/docs", {}),
                ("health", "get", "/healthz", {}),
                ("metrics", "get", "/metrics", {}),
                ("CSV", "get", "/api/stations/taku-01/readings.csv", {"headers": admin})):
            r = getattr(client, method)(path, **kw)
            seen[what] = r.status_code
            assert_secured(r, what)
        client.cookies.set("mizumori_session", admin["Authorization"][7:])
        r = client.get("/stations/taku-01")
        seen["dashboard page"] = r.status_code
        assert_secured(r, "dashboard page")
    assert seen["API 500"] == 500 and seen["API 404"] == 404 and seen["API 422"] == 422
    assert seen["dashboard page"] == 200 and seen["redirect to login"] == 303
    assert seen["static script"] == 200 and seen["static 404"] == 404


def test_the_dashboard_policy_allows_only_this_server_and_the_tiles(
        app_client: TestClient) -> None:
    policy = csp(app_client.get("/login"))
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"] and policy["connect-src"] == ["'self'"]
    # the settings' tile server (the GSI's by default) for images, nothing else
    assert policy["img-src"] == ["'self'", "data:", "https://cyberjapandata.gsi.go.jp"]
    docs = csp(app_client.get("/docs"))  # Swagger UI vendored: the same strict policy
    assert docs == policy


@pytest.mark.parametrize("url,source", [
    ("https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png",
     "https://cyberjapandata.gsi.go.jp"),
    ("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png", "https://*.tile.openstreetmap.org"),
    ("http://127.0.0.1:9/{z}/{x}/{y}.png", "http://127.0.0.1:9"),
    ("https://tiles.{s}.example.org/{z}/{x}/{y}.png", "https:"),  # only a first {s} label
    ("https://user:pw@tiles.example.org/{z}.png", "https://tiles.example.org"),
    ("https://tiles.example.org; script-src *", "https:"),  # no directive smuggled in
    ("", None), ("javascript:alert(1)", None)])
def test_tile_source(url: str, source: str | None) -> None:
    assert headers.tile_source(url) == source


def test_pages_have_no_inline_script_or_handler(app_client: TestClient,
                                                admin: dict[str, str]) -> None:
    app_client.post("/api/stations", headers=admin, json=STATION)
    app_client.cookies.set("mizumori_session", admin["Authorization"][7:])
    for path in ("/login", "/", "/fleet", "/stations/taku-01", "/alerts", "/ota",
                 "/provision", "/docs"):
        r = app_client.get(path)
        assert r.status_code == 200, path
        for tag in re.findall(r"<script\b[^>]*>", r.text):
            assert 'src="' in tag or 'type="application/json"' in tag, (path, tag)
        for body in re.findall(r"<script\b[^>]*>(.*?)</script>", r.text, re.S):
            assert not body.strip() or json.loads(body) is not None, path  # data only
        assert not re.search(r"\son[a-z]+\s*=", r.text), path  # no onclick= and the like
        assert "javascript:" not in r.text, path


def login_next(client: TestClient, raw_query: str) -> str:
    r = client.get("/login?" + raw_query)
    assert r.status_code == 200
    m = CONFIG.search(r.text)
    assert m is not None
    nxt: str = json.loads(m.group(1))["next"]
    return nxt


@pytest.mark.parametrize("raw", [
    "next=/%09/evil.invalid/",  # a browser drops the tab: //evil.invalid/
    "next=/%0a/evil.invalid/",  # ... and the newline
    "next=/%0d%0a/evil.invalid/",
    "next=%09//evil.invalid/",
    "next=%20//evil.invalid/",  # leading space, stripped
    "next=//evil.invalid/",
    "next=/%2F/evil.invalid/",  # decoded: //evil.invalid/
    "next=/%5Cevil.invalid/",  # /\evil.invalid/: a browser reads \ as /
    "next=%5C%5Cevil.invalid/",
    "next=/%09%5Cevil.invalid/",
    "next=https://evil.invalid/",
    "next=https:evil.invalid",
    "next=javascript:alert(1)",
    "next=java%09script:alert(1)",
    "next=evil.invalid/",
    "next=",
])
def test_login_never_leads_off_the_site(app_client: TestClient, raw: str) -> None:
    assert login_next(app_client, raw) == "/"


@pytest.mark.parametrize("raw,path", [
    ("next=/fleet", "/fleet"),
    ("next=%2Fstations%2Ftaku-01", "/stations/taku-01"),
    ("next=/stations/taku-01%3Frange%3Dweek%23chart", "/stations/taku-01?range=week#chart"),
    ("", "/"),
])
def test_login_leads_back_to_the_page_asked_for(app_client: TestClient, raw: str,
                                                path: str) -> None:
    assert login_next(app_client, raw) == path


def test_safe_next_rebuilds_only_a_path() -> None:
    for value in ("/\t/evil.invalid/", "/\n/evil.invalid/", "/\r\n\\evil.invalid",
                  "\x00//evil.invalid", "/\x7f/evil.invalid", " /\\evil", "http://x/",
                  "//x", "\\/x", "mailto:x@y", None):
        assert safe_next(value) == "/", repr(value)
    assert safe_next("/a/b?c=d#e") == "/a/b?c=d#e"
    assert safe_next("/a\t/b") == "/a/b"  # cleaned as the browser would read it


def test_page_json_cannot_end_its_script_block(app_client: TestClient,
                                               admin: dict[str, str]) -> None:
    app_client.cookies.set("mizumori_session", admin["Authorization"][7:])
    code = "<!--<script>x&y"
    r = app_client.get("/stations/" + code)
    assert r.status_code == 200
    m = CONFIG.search(r.text)
    assert m is not None and "<" not in m.group(1) and ">" not in m.group(1)
    assert json.loads(m.group(1))["station"] == code
    assert r.text.count("<script") == r.text.count("</script>")


HOSTILE_NAMES = [
    ('a"; filename="evil.sh', "a___filename__evil.sh.csv",
     "a%22%3B%20filename%3D%22evil.sh.csv"),  # a second filename parameter, once
    ("六角川", "___.csv", "%E5%85%AD%E8%A7%92%E5%B7%9D.csv"),  # not Latin-1: was a 500
    ("a\r\nSet-Cookie: x=1", "a__Set-Cookie__x_1.csv", "a%0D%0ASet-Cookie%3A%20x%3D1.csv"),
]


@pytest.mark.parametrize("station", [name for name, _, _ in HOSTILE_NAMES])
def test_csv_download_station_never_breaks_the_header(app_client: TestClient,
                                                      admin: dict[str, str],
                                                      station: str) -> None:
    """`?station=` went raw into the download's name: a quote added a second filename, a
    name outside Latin-1 was a 500. Refused as no station code (422), or named safely."""
    r = app_client.get("/open/readings.csv", params={"station": station}, headers=admin)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        value = r.headers["Content-Disposition"]
        assert value.isascii() and value.count("filename=") == 1 and value.count('"') == 2
    assert "set-cookie" not in r.headers
    r = app_client.get("/open/readings.csv", params={"station": "taku-01"}, headers=admin)
    assert r.headers["Content-Disposition"] == 'attachment; filename="taku-01.csv"'


@pytest.mark.parametrize("name,plain,real", HOSTILE_NAMES)
def test_attachment_header_is_one_safe_parameter(name: str, plain: str, real: str) -> None:
    value = headers.attachment(name + ".csv")
    assert value == f"attachment; filename=\"{plain}\"; filename*=UTF-8''{real}"
    assert value.isascii() and value.count("filename=") == 1 and value.count('"') == 2


def test_attachment_header() -> None:
    assert headers.attachment("readings.csv") == 'attachment; filename="readings.csv"'
    long = headers.attachment("x" * 5000 + ".csv")
    assert len(long) < 300 and long.endswith('.csv"')


def test_guesses_sent_all_at_once_still_count_each_other(app_client: TestClient) -> None:
    """Each attempt is recorded before the count: 30 wrong passwords in parallel get at most
    the 10 answers the limit allows, the rest 429 (on PostgreSQL they run truly at once)."""
    from concurrent.futures import ThreadPoolExecutor

    def guess(i: int) -> int:
        return app_client.post("/api/login", json={"username": "admin",
                                                   "password": f"wrong-guess-{i:04d}"}
                               ).status_code

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(guess, range(30)))
    assert codes.count(401) <= 10 and codes.count(429) >= 20, codes
