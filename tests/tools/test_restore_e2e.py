"""A restore loses nothing (issue 21, item 2): take a backup of the server's SQLite database
while a station reports, let the station report more (acknowledged: a station used to delete
those from its flash), restore the backup (stop the server, put the copy in place), and
every reading is back after the station's next wakes: the server finds the upload above its
newest reading + 1 and asks for the range again (`resend_from`), and the station still keeps
the acknowledged readings in flash (docs/operations.md, "Backups")."""

import sqlite3
from contextlib import closing
from pathlib import Path

from mizumori_server import db
from mizumori_tools.fleet import Api, Fleet, ServerProcess
from mizumori_tools.virtual import Scenario, VirtualStation
from station.flashqueue import FlashQueue

START = 1_790_000_000


def seqs(path: Path) -> list[int]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as c:
        return [int(r[0]) for r in c.execute("SELECT seq FROM readings ORDER BY seq")]


def test_every_reading_is_back_after_a_restore(tmp_path: Path) -> None:
    data = tmp_path / "m.db"
    clock = tmp_path / "clock"
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{data}",
                            "MIZUMORI_CLOCK_FILE": str(clock),
                            "MIZUMORI_SECRET_KEY": "restore-secret"}, cwd=tmp_path)
    server.prepare({"admin": ("admin", "kawa-kanri-2026")})
    fleet = Fleet(Scenario.load("calm"), clock, START)
    server.start()
    try:
        api = Api.login(server.url, "admin", "kawa-kanri-2026")
        api.station({"code": "taku-restore", "name": "多久 復元", "site_type": "river",
                     "latitude": 33.28, "longitude": 130.11, "mount_height_mm": 5000,
                     "upload_every": 1})
        p = api.provision("esp32-restore-01", "taku-restore")
        station = VirtualStation(tmp_path / "flash")
        station.provision(p, server.url, p["config"])
        fleet.add(station, "taku-restore")

        fleet.run_until(START + 2 * 3600)
        engine = db.make_engine(f"sqlite:///{data}")
        db.backup(engine, tmp_path / "backup.db")  # while the server runs
        engine.dispose()
        in_backup = seqs(tmp_path / "backup.db")
        fleet.run_until(START + 5 * 3600)
        before_restore = seqs(data)
        q = FlashQueue(str(station.flash / "queue"))
        assert q.depth() == 0 and q.oldest() == 1  # all acknowledged, all still in flash
        assert len(in_backup) >= 12 and len(before_restore) >= len(in_backup) + 18

        server.stop()  # the restore: the backup in place of the database
        for suffix in ("-wal", "-shm"):
            Path(f"{data}{suffix}").unlink(missing_ok=True)
        data.write_bytes((tmp_path / "backup.db").read_bytes())
        assert seqs(data) == in_backup
        server.start()

        fleet.run_until(START + 5 * 3600 + 1800)  # the next wakes (three, at 10 minutes)
        after = seqs(data)
        newest = FlashQueue(str(station.flash / "queue")).next_seq - 1
        assert after == list(range(1, newest + 1))  # every reading, none twice
        assert set(before_restore) <= set(after)
        st = station.state()
        assert st["resend"] is None and st["gone"] == 0 and st["uplink"] == "", st
    finally:
        server.stop()
