"""Dashboard render times in a real browser (part of `make bench`): Debian's chromium,
driven by Playwright, against a server with many stations and one with a year of readings
every 10 minutes. Time from navigation to the map's markers all drawn, to a station page's
chart, and to its year view (downsampled by the server)."""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mizumori_tools.fleet import ServerProcess  # noqa: E402
from sqlalchemy import text  # noqa: E402

import server as bench_server  # noqa: E402  bench/server.py: the database filler

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def timed(fn: object, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("Dashboard: skipped (no chromium; make system-packages installs it)")
        return
    from playwright.sync_api import sync_playwright

    stations = max(100, int(2000 * SCALE))
    with tempfile.TemporaryDirectory(prefix="mizumori-bench-") as t:
        tmp = Path(t)
        database = bench_server.Database("sqlite", tmp)
        try:
            year_station, _ = bench_server.fill_history(database, stations,
                                                        365 * 144 + stations * 10)
            code = f"st-{0:05d}"
            with database.engine.begin() as conn:  # its latest state: the year's end
                conn.execute(text("UPDATE station_latest SET t = :t, last_seen = :t "
                                  "WHERE station_id = :s"),
                             {"t": bench_server.T0 + (365 * 144 - 1) * 600, "s": year_station})
            server = ServerProcess({"MIZUMORI_DATABASE_URL": database.url,
                                    "MIZUMORI_SECRET_KEY": bench_server.SECRET_KEY,
                                    "MIZUMORI_DATA_DIR": str(tmp), "MIZUMORI_TILE_URL": ""},
                                   cwd=tmp)
            server.prepare({"bench": ("operator", "sokutei-kawa-2026")})
            server.start()
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
                    page = browser.new_page(viewport={"width": 1280, "height": 860})
                    page.set_default_timeout(120000)
                    page.goto(server.url + "/login")
                    page.fill("input[name=username]", "bench")
                    page.fill("input[name=password]", "sokutei-kawa-2026")
                    page.click("button[type=submit]")
                    page.wait_for_url(server.url + "/")

                    def map_page() -> None:
                        page.goto(server.url + "/")
                        page.wait_for_selector(f"body[data-stations='{stations}']")

                    def station_page() -> None:
                        page.goto(f"{server.url}/stations/{code}")
                        page.wait_for_selector("#level-chart .uplot")

                    def year_view() -> None:
                        page.click("#ranges button[data-range=day]")
                        page.wait_for_selector("#level-chart .uplot")
                        page.click("#ranges button[data-range=year]")
                        page.wait_for_function(
                            "document.querySelector('#level-chart .uplot') && "
                            "+document.querySelector('#level-chart .uplot').dataset.points"
                            " > 300")

                    map_s = timed(map_page)
                    station_s = timed(station_page)
                    page.goto(f"{server.url}/stations/{code}")
                    page.wait_for_selector("#level-chart .uplot")
                    year_s = timed(year_view)
                    browser.close()
            finally:
                server.stop()
        finally:
            database.drop()
    print(f"Dashboard in chromium (SQLite, {stations:,} stations; one with a year every 10 min)")
    print(f"  map page to every marker drawn      {map_s * 1000:8.0f} ms")
    print(f"  station page to its chart           {station_s * 1000:8.0f} ms")
    print(f"  its year view (52,560 readings)     {year_s * 1000:8.0f} ms  (target < 1 s each)")


if __name__ == "__main__":
    main()
