"""End to end: the real firmware (MicroPython processes with the sim board) provisioned
against a live `mizumori serve`, reporting over HTTP, in simulated time."""

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mizumori_tools.fleet import Api, Fleet, ServerProcess
from mizumori_tools.virtual import Scenario, VirtualStation
from station.flashqueue import FlashQueue  # the firmware's own queue, read on the host

START = 1_790_000_000  # simulated time of the first wake (2026-09)


class Rig:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.clock = tmp / "clock"
        self.server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                                     "MIZUMORI_CLOCK_FILE": str(self.clock),
                                     "MIZUMORI_SECRET_KEY": "e2e-secret"}, cwd=tmp)
        self.server.prepare({"admin": ("admin", "kawa-kanri-2026")})
        self.fleet = Fleet(Scenario.load("flood"), self.clock, START)
        self.server.start()
        self.api = Api.login(self.server.url, "admin", "kawa-kanri-2026")
        self.api.station({"code": "taku-01", "name": "牛津川 多久橋", "site_type": "river",
                          "latitude": 33.2869, "longitude": 130.1133, "mount_height_mm": 5000,
                          "standby_mm": 1000, "caution_mm": 1500, "evacuation_mm": 2000,
                          "danger_mm": 2500})
        self.station = VirtualStation(tmp / "flash")
        self.provision()
        self.member = self.fleet.add(self.station, "taku-01")

    def provision(self) -> None:
        p = self.api.provision("esp32-e2e-01", "taku-01")
        self.station.provision(p, self.server.url, p["config"])

    def readings(self) -> list[dict[str, object]]:
        r = self.api.get("/api/stations/taku-01/readings", start=START - 86400,
                         end=START + 30 * 86400, max_points=100000)
        points: list[dict[str, object]] = r["points"]
        return points


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.server.stop()


def test_station_reports_with_correct_timestamps(rig: Rig) -> None:
    wake_times: list[int] = []
    rig.fleet.run_until(START + 2 * 3600,
                        on_wake=lambda m, r: wake_times.append(rig.fleet.now))
    pts = rig.readings()
    assert len(pts) >= len(wake_times) - 2  # the newest may wait for the next upload
    # each stored reading carries the simulated time of the wake that measured it, to within
    # the seconds the wake takes (the board's time runs through sampling and Wi-Fi while the
    # fleet's clock, which the server reads, stands still during a wake)
    got = [int(str(p["t"])) for p in pts]
    assert all(abs(t - w) <= 10 for t, w in zip(got, wake_times, strict=False)), (
        got, wake_times)
    assert got == sorted(got) and len(set(got)) == len(got)
    levels = [p["level_mm"] for p in pts]
    assert all(isinstance(v, int) and abs(v - 810) < 40 for v in levels[:6]), levels
    assert pts[0]["temperature_c"] is not None
    # the firmware's own report after its power-on: the reset cause reached the server
    device = rig.api.get("/api/stations/taku-01")["device"]
    assert device["reset_cause"] == "power_on" and device["reset_at"] is not None, device
    assert [e["text"] for e in device["events"] if e["kind"] == "reset"] == ["power_on"]


def test_outage_then_every_reading_once_oldest_first(rig: Rig) -> None:
    rig.fleet.run_until(START + 3600)
    before = len(rig.readings())
    rig.server.stop()
    rig.fleet.run_until(START + 4 * 3600)  # three simulated hours without the server
    assert rig.station.state()["backoff_s"] > 0
    rig.server.start()
    rig.fleet.run_until(START + 8 * 3600)
    pts = rig.readings()
    times = [int(str(p["t"])) for p in pts]
    assert len(pts) > before + 3 * 6  # the outage's readings arrived
    assert times == sorted(times) and len(set(times)) == len(times)
    wakes = rig.member.wakes
    assert len(pts) >= wakes - 2  # everything measured, apart from the last unsent ones


def test_power_cuts_at_random_moments_lose_and_duplicate_nothing(rig: Rig) -> None:
    rig.fleet.power_cut_rate = 0.4
    rig.fleet.rng = random.Random(11)
    rig.fleet.run_until(START + 6 * 3600)
    rig.fleet.power_cut_rate = 0.0
    rig.fleet.run_until(START + 9 * 3600)  # clean wakes drain what is left
    assert rig.member.power_cuts >= 5
    pts = rig.readings()
    times = [int(str(p["t"])) for p in pts]
    assert times == sorted(times) and len(set(times)) == len(times)  # no duplicates
    st = rig.station.state()
    # everything the station stored reached the server: its sequence count matches
    q = FlashQueue(str(rig.station.flash / "queue"))
    assert q.acked == q.next_seq - 1 - q.depth()
    assert len(pts) == q.acked - q.dropped - st.get("poisoned", 0)


def test_rotated_secret_is_refused_until_reprovisioned(rig: Rig) -> None:
    rig.fleet.run_until(START + 3600)
    delivered = len(rig.readings())
    rig.api.provision("esp32-e2e-01", "taku-01")  # the server rotates; the board still has
    rig.fleet.run_until(START + 3 * 3600)          # the old secret
    assert len(rig.readings()) == delivered
    assert "401" in rig.station.state()["uplink"]
    rig.provision()  # the technician re-provisions: the queue kept everything meanwhile
    rig.fleet.run_until(START + 6 * 3600)
    times = [int(str(p["t"])) for p in rig.readings()]
    assert len(times) >= rig.member.wakes - 2
    assert times == sorted(times)


def test_erased_board_reprovisioned_loses_nothing_to_old_numbers(rig: Rig) -> None:
    rig.fleet.run_until(START + 2 * 3600)
    before, wakes = len(rig.readings()), rig.member.wakes
    shutil.rmtree(rig.station.flash)  # the flash erased (a new board, the same hardware id):
    rig.station.flash.mkdir()         # its queue would count from 1 again
    rig.member.reset_cause = "power_on"
    rig.provision()
    rig.fleet.run_until(START + 4 * 3600)
    after = rig.readings()
    assert len(after) >= before + rig.member.wakes - wakes - 2
    times = [int(str(p["t"])) for p in after]
    assert times == sorted(set(times))
