"""The observation mode (MLIT crisis-gauge profile, docs/firmware.md "Schedule") on the
dashboard, in a real browser: a station's page and its map popup say the mode the server
derives from the station's profile settings and latest level."""

from typing import Any

import test_dashboard as dash
from mizumori_server import i18n
from test_dashboard import Site, login, shot

browser, site, page = dash.browser, dash.site, dash.page  # its fixtures, for this module


def test_the_station_page_and_map_show_the_observation_mode(page: Any, site: Site) -> None:
    dev = site.devices["shizuoka-01"]  # its latest reading: 0.3 m
    r = site.api.http.patch(f"/api/devices/{dev.id}/config", json={"settings": {
        "profile": "mlit", "obs_start_mm": 200, "obs_interval_s": 300}})
    assert r.status_code == 200, r.text
    ja = i18n.words("ja")
    login(page, site, "ops")
    page.goto(site.url + "/stations/shizuoka-01")
    page.wait_for_selector("#station-mode[data-mode=observation]")
    assert page.locator("#station-mode").inner_text() == (
        ja["observation_mode"] + ": " + ja["mode_observation"])
    shot(page, "station-observation-mode")
    page.goto(site.url + "/stations/taku-01")
    page.wait_for_selector("#station-mode[data-mode=standard]")
    assert ja["mode_standard"] in page.locator("#station-mode").inner_text()
    page.goto(site.url + "/")
    page.wait_for_selector("body[data-stations='2']")
    markers = page.locator("path.leaflet-interactive")
    seen = set()
    for i in range(markers.count()):  # each marker's popup says its station's mode
        markers.nth(i).dispatch_event("click")
        popup = page.locator(".leaflet-popup-content .station-popup").last
        popup.wait_for()
        seen.add((popup.get_attribute("data-station"), popup.inner_text().count(
            ja["mode_observation"]), popup.inner_text().count(ja["mode_standard"])))
    assert seen == {("shizuoka-01", 1, 0), ("taku-01", 0, 1)}, seen
