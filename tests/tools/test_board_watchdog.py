"""The watchdog through the radio: on a slow network every wait is fed, no request starts
after the wake's radio deadline, and what the wake measured was saved before the radio, so
a reset could not count it twice. The firmware under CPython with the strict sim board, a
real HTTP server on loopback whose round trips the board counts as slow."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mizumori_tools.hostport  # noqa: F401  (time.ticks_ms and friends, as on the board)
from station import app, codec, config, state
from station.flashqueue import FlashQueue
from station.hw import sim


class Ingest(BaseHTTPRequestHandler):
    posts: list[int] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        Ingest.posts.append(1)
        body = json.dumps({"ack_upto": 10 ** 6}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_slow_network_never_starves_the_watchdog(tmp_path: Path) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        cfg, errors = config.merge(config.DEFAULTS, {"wdt_ms": 30000, "batch_records": 1,
                                                     "upload_every": 1})
        assert errors == []
        config.save(cfg, str(tmp_path / "config.json"))
        (tmp_path / "secrets.json").write_text(json.dumps({
            "device_id": 1, "secret": "00" * 32, "ca": None,
            "server": f"http://127.0.0.1:{srv.server_address[1]}",
            "wifi": {"ssid": sim.SIM_SSID, "password": "pw"}}))
        q = FlashQueue(str(tmp_path / "queue"))
        for _ in range(5):  # a backlog: five batches of one reading
            q.append(b"\x2d\x24\x2c\x00" + codec.encode_full(q.next_seq, 0, 1000, 3900, 0,
                                                              20.0, 60.0, 1013.0, 0.0))
        w = sim.World()
        w.net_request_ms = 20000  # each round trip 20 s: 5 of them would be 100 s
        board = sim.Board(w, rtc_path=str(tmp_path / "rtc.bin"))
        e = None
        try:
            app.main(board, str(tmp_path / "config.json"), str(tmp_path / "queue"), None,
                     str(tmp_path / "secrets.json"))
        except sim.DeepSleep as slept:
            e = slept
        assert e is not None  # it went to sleep: no WatchdogReset
        st = state.load(board)
        # The 45 s radio deadline stopped it after three round trips; the rest waits.
        assert 2 <= len(Ingest.posts) <= 3, Ingest.posts
        assert "radio time" in st["uplink"], st["uplink"]
        assert st["wakes"] == 1 and st["counter"] == len(Ingest.posts)
    finally:
        srv.shutdown()
