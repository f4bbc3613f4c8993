# What goes wrong after a wake has reported (state.note_after: the end of a wake, a crash, a
# rain tip's wake) reaches the server in a later wake's OTA report, however many wakes in
# between could not tell it, and only once.
import json

from station import app, config, signed, state
from station.hw import sim
from support import raises, tempdir

STUCK = "rain gauge switch stays closed"


class Server:
    """The fleet server as the station's uplink sees it: acknowledges every reading (or
    fails, while `down`), keeps each OTA report."""

    def __init__(self):
        self.reports = []
        self.down = False

    def post(self, board, creds, st, path, body, content_type=None, feed=None, conn=None):
        st["counter"] += 1
        if self.down:
            return 503, {"detail": "down"}
        if path == "/api/ota/report":
            self.reports.append(json.loads(body))
            return 200, {}
        return 200, {"ack_upto": 2**31 - 1}


def station():
    d = tempdir()
    cfg, errors = config.merge(config.DEFAULTS, {"upload_every": 1})
    assert errors == []
    config.save(cfg, d + "/config.json")
    with open(d + "/secrets.json", "w") as f:
        f.write(json.dumps({"device_id": 1, "secret": "11" * 32, "server": "http://x",
                            "wifi": {"ssid": sim.SIM_SSID, "password": "pw"}}))
    return d


def wake(d, w, server):
    """One wake through app.main, its signed requests to `server`. Under MicroPython the
    wake lets modules go (app.release) and imports them again, which would drop the patch
    here and give later test files new module objects (batch.CodecError among them): it
    keeps them this time."""
    w.now += 600
    real = signed.post_signed, app.release
    signed.post_signed, app.release = server.post, lambda names: None
    try:
        raises(sim.DeepSleep, app.main, sim.Board(w, rtc_path=d + "/rtc.bin"),
               d + "/config.json", d + "/queue", None, d + "/secrets.json")
    finally:
        signed.post_signed, app.release = real
    return state.load(sim.Board(w, rtc_path=d + "/rtc.bin"))


def test_a_message_from_the_end_of_a_wake_reaches_the_next_report_once():
    d, w, server = station(), sim.World(), Server()
    w.faults.add("reed_stuck")
    st = wake(d, w, server)  # reports (a first wake), then finds the switch held closed
    assert len(server.reports) == 1 and STUCK not in server.reports[0]["error"]
    assert STUCK in st["carry"]
    wake(d, w, server)
    assert STUCK in server.reports[1]["error"]
    st = wake(d, w, server)  # told: the next error (none) replaces it
    assert not st["carry"] and STUCK not in st["err"]
    assert [STUCK in r["error"] for r in server.reports] == [False, True, False]


def test_it_waits_through_wakes_whose_upload_fails():
    d, w, server = station(), sim.World(), Server()
    w.faults.add("reed_stuck")
    wake(d, w, server)
    server.down = True
    for _ in range(3):
        st = wake(d, w, server)
        assert STUCK in st["carry"] and st["err"].startswith(STUCK)
    server.down = False
    wake(d, w, server)
    assert STUCK in server.reports[-1]["error"]
    assert sum(STUCK in r["error"] for r in server.reports) == 1
