"""The operator dashboard in a real browser: Playwright driving Debian's chromium against a
running server. Screenshots of every page go to test-artifacts/dashboard/."""

import datetime
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from device import Device, codec, reading
from helpers import need
from mizumori_server import i18n
from mizumori_tools import release
from mizumori_tools.fleet import Api, ServerProcess

ARTIFACTS = Path(os.environ.get("MIZUMORI_ARTIFACTS", "test-artifacts")) / "dashboard"
USERS = {"admin": ("admin", "kawa-kanri-2026"), "ops": ("operator", "unyou-kawa-2026"),
         "tech": ("technician", "gishi-kawa-2026"), "guest": ("viewer", "kyaku-kawa-2026")}
STATION_ERROR = "cycle: <img src=x onerror=alert(1)> OSError(-9984)"
# What an operator, a user or a station could type, shown on every page (issue 16): it must
# read as text and run nothing (window.__xss stays undefined).
HOSTILE = '<img src=x onerror="window.__xss=1">'
HOSTILE_VERSION = "<img src=x onerror=__xss=1>"  # a firmware version holds 32 characters
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


class Site:
    def __init__(self, server: ServerProcess, api: Api, devices: dict[str, Device],
                 bundle: Path):
        self.server, self.api, self.devices, self.bundle = server, api, devices, bundle
        self.url = server.url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("dashboard")
    key, pub = release.keygen(tmp / "keys" / "release")
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                            "MIZUMORI_SECRET_KEY": "dash-secret", "MIZUMORI_DATA_DIR": str(tmp),
                            "MIZUMORI_RELEASE_KEYS_FILE": str(pub),
                            # a tile server nobody answers at: the closed city network
                            "MIZUMORI_TILE_URL": "http://127.0.0.1:9/{z}/{x}/{y}.png"},
                           cwd=tmp)
    server.prepare(USERS)
    server.start()
    try:
        api = Api.login(server.url, "admin", "kawa-kanri-2026")
        http = httpx.Client(base_url=server.url, timeout=30)
        devices = {}
        for i, (code, name, lat, lon) in enumerate([
                ("taku-01", "六角川 多久橋", 33.2886, 130.1100),
                ("shizuoka-01", "静岡 アンダーパス", 34.9756, 138.3828)]):
            api.station({"code": code, "name": name, "site_type": "river", "latitude": lat,
                         "longitude": lon, "mount_height_mm": 5000, "standby_mm": 1000,
                         "caution_mm": 1500, "evacuation_mm": 2000, "danger_mm": 2500})
            devices[code] = Device(http, api.provision(f"esp32-dash-{i}", code))
        # taku-01: a day of hourly readings rising to 2.1 m (evacuation decision)
        body = b"".join(reading(k + 1, 600 + 1500 * k // 23, (23 - k) * 3600)
                        for k in range(24))
        assert devices["taku-01"].send(body).status_code == 200
        assert devices["shizuoka-01"].send(reading(1, 300)).status_code == 200
        # taku-01 came back from a watchdog reset with an error that looks like HTML
        health = json.dumps({"version": "0.1.0", "events": [], "reset_cause": "wdt",
                             "error": STATION_ERROR}).encode()
        r = http.post("/api/ota/report", content=health,
                      headers=devices["taku-01"].headers(health))
        assert r.status_code == 200, r.text
        bundle = release.build(key, tmp / "dist", version="0.9.0")
        yield Site(server, api, devices, bundle)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    need(chromium is not None, "Debian's chromium (tools/system-packages.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def watch_csp(pg: Any) -> list[str]:
    """What the Content-Security-Policy refused on this page (chromium says so on its
    console): the dashboard runs with the policy on and must need nothing it refuses."""
    refused: list[str] = []
    pg.on("console", lambda m: refused.append(m.text)
          if "Content Security Policy" in m.text else None)
    return refused


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860},
                                  timezone_id="Asia/Tokyo")
    pg = context.new_page()
    pg.set_default_timeout(30000)  # generous: CI machines are busy
    refused = watch_csp(pg)
    yield pg
    context.close()
    assert not refused, refused


def login(page: Any, site: Site, user: str) -> None:
    page.goto(site.url + "/")
    page.wait_for_url("**/login**")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", USERS[user][1])
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/")


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_login_map_and_language(page: Any, site: Site) -> None:
    page.goto(site.url + "/login?next=//example.org/")  # a link that would leave the site
    page.fill("input[name=username]", "ops")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    page.fill("input[name=password]", USERS["ops"][1])
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/")  # ... lands on the dashboard instead
    page.wait_for_selector("body[data-stations='2']")
    assert page.locator("header nav a").first.inner_text() == "地図"  # Japanese by default
    # no tile server reachable: the stations are still on the map, and it says so
    page.wait_for_selector("#tiles-failed:not([hidden])")
    markers = page.locator("path.leaflet-interactive")
    assert markers.count() == 2
    colours = {markers.nth(i).get_attribute("fill") for i in range(2)}
    assert "#e03131" in colours  # taku-01 at the evacuation-decision level: red
    markers.nth(0).dispatch_event("click")  # (the legend may lie over it in a small window)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "m" in popup.inner_text()
    shot(page, "map")
    page.click("#lang-switch")
    page.wait_for_selector("header nav a:text('Map')")
    assert page.locator("html").get_attribute("lang") == "en"
    shot(page, "map-en")
    page.click("#lang-switch")
    page.wait_for_selector("header nav a:text('地図')")


def test_fleet_table_sorts_filters_and_goes_live(page: Any, site: Site) -> None:
    login(page, site, "ops")
    page.goto(site.url + "/fleet")
    rows = page.locator("#fleet-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 2
    page.click("th[data-key=alert_level]")
    page.click("th[data-key=alert_level]")  # descending: the highest level first
    assert rows.first.get_attribute("data-station") == "taku-01"
    page.select_option("#f-level", "3")
    assert rows.count() == 1
    page.select_option("#f-level", "")
    shot(page, "fleet")
    # a new reading arrives: the table shows it without a reload
    dev = site.devices["shizuoka-01"]
    assert dev.send(codec.encode_level(2, 0, 1200, 3650, 0)).status_code == 200
    page.wait_for_selector("tr[data-station='shizuoka-01'] td:text('1.20 m')", timeout=30000)


def test_station_chart_and_threshold_edit(page: Any, site: Site) -> None:
    login(page, site, "ops")
    page.goto(site.url + "/stations/taku-01")
    page.wait_for_selector("#level-chart .uplot")
    assert int(page.locator("#level-chart .uplot").get_attribute("data-points")) == 24
    legend = page.locator("#level-chart .u-legend").inner_text()
    assert "避難判断水位" in legend and "はん濫危険水位" in legend  # the threshold lines
    page.click("#ranges button[data-range=year]")
    page.wait_for_selector("#ranges button[data-range=year].active")
    assert page.locator("#station-alerts li").count() >= 1
    # the station's own report: a watchdog reset stands out, its error is text, not HTML
    page.wait_for_selector("#station-reset.reset-alarm[data-cause=wdt]")
    assert "ウォッチドッグ" in page.locator("#station-health").inner_text()
    assert page.locator("#station-error").inner_text() == STATION_ERROR
    assert page.locator("#station-health img, #station-events img").count() == 0
    assert page.locator("#station-events li[data-kind=reset]").count() == 1
    shot(page, "station")
    # levels in m, as on the chart (0.9 m = 900 mm: below standby, refused, in Japanese)
    page.fill("input[name=caution_mm]", "0.9")
    page.click("#station-form button[type=submit]")
    page.wait_for_selector("#station-form-error:not([hidden])")
    assert "の順に" in page.locator("#station-form-error").inner_text()
    assert site.api.get("/api/stations/taku-01")["caution_mm"] == 1500
    page.fill("input[name=caution_mm]", "1.6")
    page.click("#station-form button[type=submit]")
    page.wait_for_selector("#toast.show")
    assert site.api.get("/api/stations/taku-01")["caution_mm"] == 1600


def test_acknowledge_an_alert(page: Any, site: Site) -> None:
    login(page, site, "ops")
    page.goto(site.url + "/alerts")
    [alert] = [a for a in site.api.get("/api/alerts", station="taku-01")
               if a["type"] == "level"]
    row = page.locator(f"#active-alerts tr[data-alert='{alert['id']}']")
    row.wait_for()
    assert row.get_attribute("data-state") == "open"
    shot(page, "alerts")
    row.locator("input.ack-note").fill("現地確認に向かう")
    row.locator("button.ack").click()
    page.wait_for_selector(f"#active-alerts tr[data-alert='{alert['id']}']"
                           "[data-state=acknowledged]")
    [alert] = [a for a in site.api.get("/api/alerts", station="taku-01")
               if a["type"] == "level"]
    assert (alert["state"], alert["acknowledged_by"], alert["ack_note"]) == (
        "acknowledged", "ops", "現地確認に向かう")
    # a new alert appears without a reload: shizuoka-01's battery runs low
    low = codec.encode_level(3, 0, 1200, 3300, 0)
    assert site.devices["shizuoka-01"].send(low).status_code == 200
    page.wait_for_selector("#active-alerts tr:has-text('shizuoka-01'):has-text('電池低下')",
                           timeout=30000)


def test_upload_a_release_then_start_and_pause_a_rollout(page: Any, site: Site) -> None:
    login(page, site, "ops")
    page.goto(site.url + "/ota")
    page.set_input_files("#release-form input[type=file]", str(site.bundle))
    page.click("#release-form button[type=submit]")
    page.wait_for_selector("#releases li:has-text('0.9.0')")
    page.wait_for_selector("#rollout-form select[name=release] option[value='0.9.0']",
                           state="attached")
    page.fill("#rollout-form input[name=stages]", "50, 100")
    page.fill("#rollout-form input[name=max_failure_pct]", "30")
    page.click("#rollout-form button[type=submit]")
    box = page.locator(".rollout").first
    box.wait_for()
    assert box.locator("ul.devices li").count() == 2  # per-device progress
    box.locator("button[data-action=pause]").click()
    page.wait_for_selector(".rollout[data-state=paused]")
    shot(page, "ota")
    [r] = site.api.get("/api/rollouts")
    assert (r["state"], r["release"], r["stages"]) == ("paused", "0.9.0", [50, 100])
    assert r["max_failure_pct"] == 30 and r["target"] == {"all": True}


def new_station(site: Site, code: str, name: str) -> None:
    site.api.station({"code": code, "name": name, "site_type": "river", "latitude": 33.25,
                      "longitude": 130.2, "mount_height_mm": 5000, "standby_mm": 1000,
                      "caution_mm": 1500, "evacuation_mm": 2000, "danger_mm": 2500})


def test_provisioning_shows_the_secret_once(page: Any, site: Site) -> None:
    new_station(site, "ogi-01", "小城 新設")  # a new station: nothing to replace
    login(page, site, "tech")
    page.goto(site.url + "/provision")
    page.fill("input[name=hardware_id]", "esp32-dash-new")
    page.select_option("select[name=station]", "ogi-01")
    page.click("#provision-form button[type=submit]")
    page.wait_for_selector("#provisioned:not([hidden])")
    assert len(page.locator("#p-secret").inner_text()) == 64
    assert page.locator("#replace-confirm").is_hidden()
    shot(page, "provision")


def local_time(unix: int, lang: str) -> str:
    """A time as the dashboard shows it (Intl.DateTimeFormat, Asia/Tokyo)."""
    d = datetime.datetime.fromtimestamp(unix, ZoneInfo("Asia/Tokyo"))
    return f"{d:%Y/%m/%d %H:%M}" if lang == "ja" else f"{d:%d/%m/%Y, %H:%M}"


def in_language(page: Any, site: Site, lang: str) -> None:
    page.context.add_cookies([{"name": "mizumori_lang", "value": lang, "url": site.url}])


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_replacing_a_reporting_device_needs_confirmation(page: Any, site: Site,
                                                         lang: str) -> None:
    """Issue 18: choosing a station that has a reporting device replaced it silently; the
    live station got 409 not_installed from then on. The form names the device and its
    last report, and replaces it only when the technician confirms."""
    code, old_hw, new_hw = f"kashima-{lang}", f"esp32-live-{lang}", f"esp32-swap-{lang}"
    new_station(site, code, "鹿島 " + lang)
    http = httpx.Client(base_url=site.url, timeout=30)
    live = Device(http, site.api.provision(old_hw, code))
    assert live.send(reading(1, 800)).status_code == 200
    [heard] = [s["last_seen"] for s in site.api.get("/api/latest") if s["code"] == code]
    in_language(page, site, lang)
    login(page, site, "tech")
    page.goto(site.url + "/provision")
    page.locator(f"select[name=station] option[value='{code}']").wait_for(state="attached")
    page.fill("input[name=hardware_id]", new_hw)
    page.select_option("select[name=station]", code)
    page.click("#provision-form button[type=submit]")
    box = page.locator("#replace-confirm")
    box.wait_for()
    warning = page.locator("#replace-warning")
    assert warning.locator("b[data-field=hardware]").inner_text() == old_hw
    assert warning.locator("b[data-field=device]").inner_text() == str(live.id)
    assert warning.locator("b[data-field=last]").inner_text() == local_time(heard, lang)
    words = {"ja": ("稼働中の端末", "最終受信", "置き換えて登録"),
             "en": ("already has a device", "last report", "Replace it and register")}[lang]
    text = box.inner_text()
    assert all(w in text for w in words), text
    assert page.locator("#provisioned").is_hidden()
    shot(page, f"provision-replace-{lang}")
    # nothing has changed yet: the station's device still reports
    assert live.send(reading(2, 810)).status_code == 200
    assert new_hw not in [d["hardware_id"] for d in site.api.get("/api/devices")]
    # cancel: the warning goes, nothing is registered
    page.click("#replace-no")
    assert box.is_hidden()
    assert live.send(reading(3, 820)).status_code == 200
    # asked again, and confirmed: the new board is registered, the old one is off
    page.click("#provision-form button[type=submit]")
    box.wait_for()
    page.click("#replace-yes")
    page.wait_for_selector("#provisioned:not([hidden])")
    assert box.is_hidden()
    assert len(page.locator("#p-secret").inner_text()) == 64
    r = live.send(reading(4, 830))
    assert r.status_code == 409 and r.json()["code"] == "not_installed"
    hist = site.api.get(f"/api/stations/{code}")["devices"]
    assert [(h["device_id"], h["removed_by"]) for h in hist][0] == (live.id, "tech")
    assert hist[0]["replaced_by"] == int(page.locator("#p-device").inner_text())
    # the station page says who replaced it, with which device
    page.goto(site.url + f"/stations/{code}")
    item = page.locator(f"#station-devices li[data-device='{live.id}']")
    item.wait_for()
    replaced = {"ja": f"端末 #{hist[1]['device_id']} に交換",
                "en": f"replaced by device #{hist[1]['device_id']}"}[lang]
    assert replaced in item.inner_text()


def test_a_viewer_sees_no_write_controls_and_is_refused(page: Any, site: Site) -> None:
    login(page, site, "guest")
    assert page.locator("header nav a[data-nav=provision]").count() == 0
    page.goto(site.url + "/alerts")
    page.locator("#active-alerts tbody tr").first.wait_for()
    assert page.locator("button.ack").count() == 0
    page.goto(site.url + "/ota")
    assert page.locator("#release-form").count() == 0
    assert page.locator("#rollout-form").count() == 0
    page.goto(site.url + "/stations/taku-01")
    page.wait_for_selector("#level-chart .uplot")
    assert page.locator("#station-form").count() == 0
    # forcing the request from the viewer's own session: the API refuses it
    status = page.evaluate("""async () => (await fetch('/api/stations/taku-01', {
        method: 'PATCH', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({danger_mm: 9000})})).status""")
    assert status == 403
    assert site.api.get("/api/stations/taku-01")["danger_mm"] == 2500
    assert page.goto(site.url + "/provision").status == 403


def test_usable_on_a_tablet(browser: Any, site: Site) -> None:
    context = browser.new_context(viewport={"width": 820, "height": 1180},
                                  device_scale_factor=2, has_touch=True)
    page = context.new_page()
    refused = watch_csp(page)
    try:
        login(page, site, "ops")
        for path in ("/", "/fleet", "/alerts", "/ota", "/stations/taku-01"):
            page.goto(site.url + path)
            page.wait_for_load_state("networkidle")
            wide = page.evaluate("document.documentElement.scrollWidth > innerWidth")
            assert not wide, path  # nothing sideways: wide tables scroll inside themselves
        shot(page, "station-tablet")
    finally:
        context.close()
    assert not refused, refused


# --- issue 16: hostile text on every page, where a login may lead -------------------------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A server of its own whose station name, device texts (firmware version, error, an
    update's failure reason) and alert note are all markup with a script in it."""
    tmp = tmp_path_factory.mktemp("hostile")
    key, pub = release.keygen(tmp / "keys" / "release")
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                            "MIZUMORI_SECRET_KEY": "dash-secret", "MIZUMORI_DATA_DIR": str(tmp),
                            "MIZUMORI_RELEASE_KEYS_FILE": str(pub),
                            "MIZUMORI_TILE_URL": "http://127.0.0.1:9/{z}/{x}/{y}.png"},
                           cwd=tmp)
    server.prepare({"admin": USERS["admin"]})
    server.start()
    try:
        api = Api.login(server.url, "admin", USERS["admin"][1])
        http = httpx.Client(base_url=server.url, timeout=30)
        api.station({"code": "evil-01", "name": HOSTILE, "site_type": "river",
                     "latitude": 33.29, "longitude": 130.11, "mount_height_mm": 5000,
                     "standby_mm": 1000, "caution_mm": 1500, "evacuation_mm": 2000,
                     "danger_mm": 2500})
        dev = Device(http, api.provision("esp32-evil-0", "evil-01"))
        assert dev.send(reading(1, 2100)).status_code == 200  # an alert opens
        bundle = release.build(key, tmp / "dist", version="0.9.0")
        r = api.http.post("/api/releases", content=bundle.read_bytes(),
                          headers={"Content-Type": "application/x-tar"})
        assert r.status_code == 201, r.text
        r = api.http.post("/api/rollouts", json={"release": "0.9.0", "target": {"all": True},
                                                 "stages": [100]})
        assert r.status_code == 201, r.text
        report = json.dumps({"version": HOSTILE_VERSION, "reset_cause": "wdt",
                             "error": HOSTILE, "events": [
                                 {"release": "0.9.0", "state": "failed",
                                  "reason": HOSTILE}]}).encode()
        r = http.post("/api/ota/report", content=report, headers=dev.headers(report))
        assert r.status_code == 200, r.text
        [alert] = api.get("/api/alerts", station="evil-01")
        r = api.http.post(f"/api/alerts/{alert['id']}/ack", json={"note": HOSTILE})
        assert r.status_code == 200, r.text
        yield Site(server, api, {"evil-01": dev}, bundle)
    finally:
        server.stop()


def ran_nothing(page: Any, where: str) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined", where
    assert page.locator("img[src='x']").count() == 0, where  # never parsed as markup


def test_hostile_text_renders_as_text_and_runs_nothing(browser: Any, hostile: Site) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860},
                                  timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.set_default_timeout(30000)
    refused = watch_csp(page)
    try:
        page.goto(hostile.url + "/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", USERS["admin"][1])
        page.click("button[type=submit]")
        page.wait_for_url(hostile.url + "/")
        # the map: the marker's tooltip (hover) and popup (click) hold the name as text
        page.wait_for_selector("body[data-stations='1']")
        marker = page.locator("path.leaflet-interactive").first
        marker.dispatch_event("mouseover")
        tooltip = page.locator(".leaflet-tooltip")
        tooltip.wait_for()
        assert tooltip.inner_text() == HOSTILE
        marker.dispatch_event("click")
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for()
        assert popup.locator("b").inner_text() == HOSTILE
        assert popup.locator("a").get_attribute("href") == "/stations/evil-01"
        page.wait_for_timeout(300)  # an image that failed would have run its handler by now
        ran_nothing(page, "map")
        # the fleet: the device's firmware version as it reported it
        page.goto(hostile.url + "/fleet")
        page.wait_for_selector(f"#fleet-table td:text-is('{HOSTILE_VERSION}')")
        ran_nothing(page, "fleet")
        # the station page: its name, the device's error and its events
        page.goto(hostile.url + "/stations/evil-01")
        page.wait_for_selector("#station-error")
        assert page.locator("#station-title").inner_text() == f"{HOSTILE} (evil-01)"
        assert page.locator("#station-error").inner_text() == HOSTILE
        assert HOSTILE in page.locator("#station-events").inner_text()
        page.wait_for_selector("#station-alerts li")
        ran_nothing(page, "station")
        # alerts: the acknowledgement's note
        page.goto(hostile.url + "/alerts")
        row = page.locator("#active-alerts tbody tr").first
        row.wait_for()
        assert HOSTILE in row.inner_text()
        ran_nothing(page, "alerts")
        # updates: the device's reason for failing the update
        page.goto(hostile.url + "/ota")
        page.wait_for_selector(".rollout ul.devices li")
        assert HOSTILE in page.locator(".rollout ul.devices").inner_text()
        ran_nothing(page, "ota")
        # provisioning: the station list
        page.goto(hostile.url + "/provision")
        option = page.locator("select[name=station] option[value='evil-01']")
        option.wait_for(state="attached")
        assert option.inner_text() == f"evil-01 {HOSTILE}"
        ran_nothing(page, "provision")
        shot(page, "hostile-provision")
    finally:
        context.close()
    assert not refused, refused


@pytest.mark.parametrize("nxt", ["/%09/evil.invalid/", "/%0a/evil.invalid/",
                                 "/%0d%0a%5Cevil.invalid/"])
def test_login_stays_on_the_site_whatever_next_says(page: Any, site: Site, nxt: str) -> None:
    # chromium drops the tab or newline and reads //evil.invalid/: another site
    page.goto(site.url + "/login?next=" + nxt)
    page.fill("input[name=username]", "guest")
    page.fill("input[name=password]", USERS["guest"][1])
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/")
    page.goto(site.url + "/login?next=/fleet%3Fx%3D1")  # and a path here is followed
    page.fill("input[name=username]", "guest")
    page.fill("input[name=password]", USERS["guest"][1])
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/fleet?x=1")


# --- issue 18: an alert shows when its level was reached ----------------------------------

@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, list[int]]]:
    """A server on a simulated clock: a station reaches standby at T0, and four hours later
    danger (one alert, raised in place). Yields the site and [T0, T0 + 4 h]."""
    tmp = tmp_path_factory.mktemp("flood")
    clock_file = tmp / "clock"
    t0 = (int(time.time()) // 3600 - 8) * 3600  # on the hour, 8 h ago
    clock_file.write_text(str(t0))
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                            "MIZUMORI_SECRET_KEY": "dash-secret", "MIZUMORI_DATA_DIR": str(tmp),
                            "MIZUMORI_CLOCK_FILE": str(clock_file),
                            "MIZUMORI_TILE_URL": "http://127.0.0.1:9/{z}/{x}/{y}.png"},
                           cwd=tmp)
    server.prepare({"ops": USERS["ops"]})
    server.start()
    try:
        api = Api.login(server.url, "ops", USERS["ops"][1])
        api.station({"code": "ariake-01", "name": "有明 排水機場", "site_type": "river",
                     "latitude": 33.2, "longitude": 130.3, "mount_height_mm": 5000,
                     "standby_mm": 1000, "caution_mm": 1500, "evacuation_mm": 2000,
                     "danger_mm": 2500})
        dev = Device(httpx.Client(base_url=server.url, timeout=30),
                     api.provision("esp32-ariake", "ariake-01"))
        assert dev.send(reading(1, 1050)).status_code == 200  # standby at T0
        danger = t0 + 4 * 3600
        clock_file.write_text(str(danger))
        assert dev.send(reading(2, 2600)).status_code == 200  # danger, 4 h later
        yield Site(server, api, {"ariake-01": dev}, tmp), [t0, danger]
    finally:
        server.stop()


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_an_escalated_alert_shows_when_its_level_was_reached(
        browser: Any, flood: tuple[Site, list[int]], lang: str) -> None:
    """Issue 18: an alert raised from standby to danger kept its opening time, so the table
    said danger was reached hours before it was. The time shown is the danger level's,
    with the levels before it."""
    site, (t0, danger) = flood
    [alert] = [a for a in site.api.get("/api/alerts") if a["type"] == "level"]
    context = browser.new_context(viewport={"width": 1280, "height": 860},
                                  timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.set_default_timeout(30000)
    refused = watch_csp(page)
    try:
        in_language(page, site, lang)
        login(page, site, "ops")
        page.goto(site.url + "/alerts")
        row = page.locator(f"#active-alerts tr[data-alert='{alert['id']}']")
        row.wait_for()
        header = page.locator("#active-alerts thead th").nth(3).inner_text()
        assert header == {"ja": "現段階の発生", "en": "Current level since"}[lang]
        assert row.locator(".since-cell .since").inner_text() == local_time(danger, lang)
        steps = row.locator("ol.level-history li")
        assert steps.count() == 2
        assert [steps.nth(i).get_attribute("data-level") for i in range(2)] == ["1", "4"]
        names = {"ja": ("水防団待機水位", "はん濫危険水位"), "en": ("standby", "danger")}[lang]
        assert steps.nth(0).inner_text() == f"{names[0]} {local_time(t0, lang)}"
        assert steps.nth(1).inner_text() == f"{names[1]} {local_time(danger, lang)}"
        shot(page, f"alerts-level-history-{lang}")
        # the station page's alert list: the same time
        page.goto(site.url + "/stations/ariake-01")
        item = page.locator("#station-alerts li:has-text('%s')" % (
            "河川水位" if lang == "ja" else "river level"))
        item.wait_for()
        assert item.locator(".since").inner_text() == local_time(danger, lang)
    finally:
        context.close()
    assert not refused, refused


# --- issue 18: one language per page; charts that speak it ---------------------------------

CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")
ENGLISH_WORD = re.compile(r"[A-Za-z_]{3,}")  # units (m, V, mm) are shorter


def one_language(text: str, lang: str) -> bool:
    """No Japanese in English text; no English words in Japanese text."""
    return not (CJK.search(text) if lang == "en" else ENGLISH_WORD.search(text))


def new_page(browser: Any, site: Site, lang: str, user: str = "ops") -> tuple[Any, Any, list]:
    context = browser.new_context(viewport={"width": 1280, "height": 860},
                                  timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.set_default_timeout(30000)
    refused = watch_csp(page)
    in_language(page, site, lang)
    login(page, site, user)
    return context, page, refused


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_alerts_refusals_and_states_are_in_one_language(browser: Any, site: Site,
                                                        lang: str) -> None:
    """Issue 18: `rising 0.33 m/h (limit 0.30 m/h)` and `sensor fault ...: no_echo` in the
    Japanese dashboard, `水防団待機水位 (standby) reached` in the English one, rollout
    states `active`/`pending`, `secret`, and `body: Value error, river levels must rise…`.
    Every alert's message, type and state, a refusal and the rollout states read in the
    page's language only."""
    code = f"imari-{lang}"
    new_station(site, code, "伊万里 " + lang)
    dev = Device(httpx.Client(base_url=site.url, timeout=30),
                 site.api.provision(f"esp32-imari-{lang}", code))
    no_echo, dropped = 1, 1 << codec.FLAG_NAMES.index("queue_dropped")
    for seq, (level, age, flags) in enumerate([(2200, 1200, dropped), (None, 900, no_echo),
                                               (None, 600, no_echo), (None, 300, no_echo),
                                               (2600, 0, 0)], start=1):
        body = codec.encode_full(seq, age, level, 3300, flags, 18.0, 60.0, 1010.0, 0.0)
        assert dev.send(body).status_code == 200
    types = {a["type"] for a in site.api.get("/api/alerts", station=code)}
    assert types == {"level", "rise", "battery", "fault", "queue_overflow"}
    if not site.api.get("/api/rollouts"):  # (when run on its own)
        site.api.http.post("/api/releases", content=site.bundle.read_bytes(),
                           headers={"Content-Type": "application/x-tar"})
        site.api.http.post("/api/rollouts", json={"release": "0.9.0",
                                                  "target": {"all": True}})
    context, page, refused = new_page(browser, site, lang)
    try:
        page.goto(site.url + "/alerts")
        rows = page.locator("#active-alerts tbody tr", has=page.locator(
            f"a:text-is('{code}')"))
        rows.nth(4).wait_for()
        assert rows.count() == 5
        said = []
        for i in range(5):
            cells = rows.nth(i).locator("td")
            said += [cells.nth(1).inner_text(), cells.nth(2).inner_text(),
                     cells.nth(4).inner_text()]
        assert all(one_language(x, lang) for x in said), said
        want = {"ja": ("はん濫危険水位に達しました", "毎時", "反射なし", "電池電圧"),
                "en": ("danger reached", "m/h", "no echo", "battery low")}[lang]
        assert all(any(w in x for x in said) for w in want), said
        shot(page, f"alerts-one-language-{lang}")
        # a refusal from the server, in the page's language
        page.goto(site.url + f"/stations/{code}")
        page.wait_for_selector("#station-form[data-filled]")
        page.fill("input[name=caution_mm]", "0.9")
        page.click("#station-form button[type=submit]")
        error = page.locator("#station-form-error")
        error.wait_for()
        assert one_language(error.inner_text(), lang), error.inner_text()
        assert {"ja": "の順に", "en": "river levels must rise"}[lang] in error.inner_text()
        # rollout and device states through the words table
        page.goto(site.url + "/ota")
        box = page.locator(".rollout").first
        box.locator("ul.devices li").first.wait_for()
        [r] = site.api.get("/api/rollouts")[:1]
        words = i18n.words(lang)
        assert box.locator(".rollout-state").inner_text() == words["rollout_" + r["state"]]
        for li in box.locator("ul.devices li").all():
            state = li.get_attribute("data-state")
            assert words["device_" + state] in li.inner_text()
            assert one_language(li.inner_text(), lang) or lang == "en"
        progress = box.locator(".rollout-progress").inner_text()
        assert lang == "en" or "pending" not in progress, progress
        page.goto(site.url + "/provision")
        assert page.locator("#provisioned dt").nth(1).text_content() == words["secret"]
    finally:
        context.close()
    assert not refused, refused


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_charts_speak_the_page_language_and_span_the_range(browser: Any, site: Site,
                                                           lang: str) -> None:
    """Issue 18: `5:00pm`, `11/28/26` and a legend `Time` in Japanese mode; point markers
    on every line, the threshold lines included; the week and year buttons showed a day's
    axis when data was short; the chart in m, the form in mm."""
    context, page, refused = new_page(browser, site, lang)
    words = i18n.words(lang)
    try:
        page.goto(site.url + "/stations/taku-01")
        chart = page.locator("#level-chart .uplot")
        chart.wait_for()
        legend = page.locator("#level-chart .u-legend").inner_text()
        assert words["time"] in legend and (lang == "en" or "Time" not in legend), legend
        assert words["level_m"] in legend
        # lines only: the level (24 readings) and the four thresholds mark no points
        assert chart.get_attribute("data-markers") == "false,false,false,false,false"
        expect = {"day": r"\d{2}:\d{2}",
                  "week": {"ja": r"\d{2}/\d{2} \d{2}:\d{2}",
                           "en": r"\d{2}/\d{2}, \d{2}:\d{2}"}[lang],
                  "year": {"ja": r"\d{4}/\d{2}/\d{2}", "en": r"\d{2}/\d{2}/\d{4}"}[lang]}
        spans = {"day": 86400, "week": 7 * 86400, "year": 365 * 86400}
        for rng, pattern in expect.items():
            if rng != "day":
                page.click(f"#ranges button[data-range={rng}]")
            page.wait_for_function(
                """([sel, span]) => { const e = document.querySelector(sel);
                   if (!e || !e.dataset.range || !e.dataset.xticks) return false;
                   const [lo, hi] = e.dataset.range.split("-").map(Number);
                   return hi - lo === span; }""",
                arg=["#level-chart .uplot", spans[rng]])
            # the axis itself spans the range, though the data covers one day
            x = page.evaluate("""() => { const u = document.querySelector('#level-chart')
                .querySelector('.uplot'); return u.dataset.range; }""")
            lo, hi = map(int, x.split("-"))
            assert hi - lo == spans[rng]
            ticks = chart.get_attribute("data-xticks").split("|")
            assert ticks and all(re.fullmatch(pattern, t) for t in ticks), (rng, ticks)
            assert not any(re.search(r"[ap]m", t, re.I) for t in ticks), ticks
            shot(page, f"station-chart-{rng}-{lang}")
        # one unit for the operator: the form in m as the chart, the mm it stores beside it
        label = page.locator("label", has=page.locator("input[name=standby_mm]"))
        assert "(m)" in label.inner_text()
        assert page.input_value("input[name=standby_mm]") == "1"
        assert page.locator("output[data-for=standby_mm]").inner_text() == "= 1000 mm"
    finally:
        context.close()
    assert not refused, refused


def test_api_docs_load_on_a_closed_network(browser: Any, site: Site) -> None:
    """Issue 18: /docs was blank without the internet (Swagger UI from a CDN). Every
    request leaving this server is refused here, and the page still shows the API."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30000)
    refused = watch_csp(page)
    outside: list[str] = []

    def only_here(route: Any) -> None:
        if route.request.url.startswith(site.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    try:
        page.route("**/*", only_here)
        page.goto(site.url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title:has-text('Mizumori')")
        page.locator(".opblock").first.wait_for()
        assert page.locator(".opblock").count() > 20
        shot(page, "api-docs")
    finally:
        context.close()
    assert outside == [] and not refused, (outside, refused)
