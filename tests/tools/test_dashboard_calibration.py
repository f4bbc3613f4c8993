"""The station page's calibration section (issue 20) in a real browser, in Japanese and
English: an operator enters the staff gauge reading; the offset is computed from the
station's latest reading, listed in the history (who, when, gauge, reading, offset, scale,
residual) and waits for the station to take it; a check shows its residual; a refusal is
said in the form. Text nodes only. Screenshots go to test-artifacts/dashboard/."""

import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from device import Device, codec, reading
from helpers import need
from mizumori_server import i18n
from mizumori_tools.fleet import Api, ServerProcess
from test_dashboard import CHROMIUM_FLAGS, USERS, in_language, login, shot, watch_csp

HOSTILE_NAME = '<img src=x onerror="window.__xss=1">'


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Api]]:
    tmp = tmp_path_factory.mktemp("dashcal")
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                            "MIZUMORI_SECRET_KEY": "dashcal-secret",
                            "MIZUMORI_DATA_DIR": str(tmp),
                            "MIZUMORI_TILE_URL": "http://127.0.0.1:9/{z}/{x}/{y}.png"},
                           cwd=tmp)
    server.prepare(USERS)
    server.start()
    try:
        yield server, Api.login(server.url, "admin", "kawa-kanri-2026")
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


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_calibration_section(browser: Any, site: tuple[ServerProcess, Api], lang: str) -> None:
    server, api = site
    code = f"cal-{lang}"
    api.station({"code": code, "name": HOSTILE_NAME, "site_type": "river", "latitude": 33.25,
                 "longitude": 130.2, "mount_height_mm": 5000})
    dev = Device(httpx.Client(base_url=server.url, timeout=30),
                 api.provision(f"esp32-cal-{lang}", code))
    assert dev.send(reading(1, 1262)).status_code == 200
    w = i18n.words(lang)

    class Site:
        url = server.url

    context = browser.new_context(viewport={"width": 1280, "height": 1400},
                                  timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.set_default_timeout(30000)
    refused = watch_csp(page)
    in_language(page, Site, lang)  # type: ignore[arg-type]
    login(page, Site, "ops")  # type: ignore[arg-type]
    page.goto(server.url + f"/stations/{code}")
    current = page.locator("#cal-current")
    current.filter(has_text=w["cal_uncalibrated"]).wait_for()
    assert w["calibration"] in page.locator("#calibration h2").inner_text()

    page.fill("#cal-form input[name=staff_gauge_m]", "1.23")
    page.click("#cal-form button[type=submit]")
    page.locator("#cal-history li[data-calibration]").first.wait_for()
    text = current.inner_text()
    assert f"{w['cal_offset']} -32 mm" in text and w["cal_pending"] in text, text
    item = page.locator("#cal-history li").first.inner_text()
    assert w["cal_kind_offset"] in item and "1.23 m" in item and "1.26 m" not in item
    assert "(ops)" in item and f"{w['cal_residual']} 0 mm" in item, item

    page.fill("#cal-form input[name=staff_gauge_m]", "1.25")
    page.select_option("#cal-form select[name=kind]", "check")
    page.click("#cal-form button[type=submit]")
    page.locator("#cal-last-check[data-residual='-20']").wait_for()
    assert f"{w['cal_residual']} -20 mm" in page.locator("#cal-last-check").inner_text()

    page.fill("#cal-form input[name=staff_gauge_m]", "1.60")  # 0.37 m: a scale would do,
    page.select_option("#cal-form select[name=kind]", "scale")  # but 0.1 m apart would not
    page.fill("#cal-form input[name=staff_gauge_m]", "1.30")
    page.click("#cal-form button[type=submit]")
    error = page.locator("#cal-form-error")
    error.wait_for()
    assert "0.3 m" in error.inner_text()
    assert page.locator("#cal-history li[data-calibration]").count() == 2
    # a reading from rough water is refused, in the page's language
    noisy = reading(2, 1300) + codec.encode_quality(codec.NOISY, 45, 1)
    assert dev.send(noisy).status_code == 200
    page.select_option("#cal-form select[name=kind]", "offset")
    page.fill("#cal-form input[name=staff_gauge_m]", "1.30")
    page.click("#cal-form button[type=submit]")
    said = i18n.text(i18n.PROBLEMS["cal_reading_noisy"], lang, station=code, spread=45)
    error.filter(has_text=said).wait_for()
    assert page.locator("#cal-history li[data-calibration]").count() == 2
    assert page.evaluate("window.__xss") is None
    shot(page, f"station-calibration-{lang}")
    context.close()
    assert not refused, refused
