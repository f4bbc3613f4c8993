# The uplink's pieces that need no server: bodies, ages across clock changes, signing.
# Talking to a real server is tested in tests/server/test_station_e2e.py.
import struct

from records import decode
from station import batch, codec, hmac_sha256, signed, state, uplink
from station.flashqueue import FlashQueue
from support import tempdir


def stored(t, seq):
    return struct.pack(">I", t) + codec.encode_full(seq, 0, 1000 + seq, 3700, 0, 20.0, 50.0,
                                                    1000.0, 0.0)


def test_body_sets_each_age_at_sending_and_ends_with_status():
    q = FlashQueue(tempdir())
    for t in (1000, 1600, 2200):
        q.append(stored(t, q.next_seq))
    st = state.defaults()
    status = batch.encode_status(3, 0, 0, 4, -60)
    body, seqs = uplink.build_body(q, st, 2500, status, 10, 4096)
    recs = decode(body)
    assert seqs == [1, 2, 3]
    assert [r["age_s"] for r in recs[:3]] == [1500, 900, 300]
    assert recs[3]["type"] == "status" and recs[3]["queue_depth"] == 3
    body, seqs = uplink.build_body(q, st, 2500, status, 2, 4096)
    assert seqs == [1, 2]


def test_signature_covers_device_counter_and_body():
    creds = {"device_id": 7, "key": b"k" * 32}
    h = signed.signed_headers(creds, 42, b"\x11body")
    want = hmac_sha256.hexdigest(b"k" * 32, b"MZM1\n7\n42\n\x11body")
    assert h["X-Mizumori-Signature"] == want and h["X-Mizumori-Counter"] == "42"


def test_credentials_missing_or_broken_mean_not_provisioned():
    d = tempdir()
    assert uplink.load_credentials(d + "/secrets.json") is None
    for bad in (b"{", b'{"device_id": 1}', b'{"device_id": 1, "secret": "zz"}'):
        with open(d + "/secrets.json", "wb") as f:
            f.write(bad)
        assert uplink.load_credentials(d + "/secrets.json") is None


class Server:
    """The fleet server's ingest as far as the station sees it (server/mizumori_server/
    ingest.py): stores each (device, seq) once, claims the counter, acknowledges what it
    got and asks for `resend_from` when an upload starts above the newest it holds + 1."""

    def __init__(self):
        self.stored = set()
        self.last_seq = 0
        self.last_counter = 0
        self.batches = []

    def restore(self, upto):
        """Back to a backup taken when it held readings 1..upto (the counter is older too)."""
        self.stored = set(range(1, upto + 1))
        self.last_seq = upto
        self.last_counter = 1

    def post(self, board, creds, state, path, body, content_type=None, feed=None, conn=None):
        state["counter"] += 1
        if state["counter"] <= self.last_counter:
            return 401, {"code": "stale_counter", "last_counter": self.last_counter}
        self.last_counter = state["counter"]
        seqs = [r["seq"] for r in decode(body) if r["type"] != "status"]
        self.batches.append(seqs)
        reply = {"ack_upto": max(seqs) if seqs else None}
        if seqs and min(seqs) > self.last_seq + 1:
            reply["resend_from"] = self.last_seq + 1
        self.stored.update(seqs)
        self.last_seq = max([self.last_seq] + seqs)
        return 200, reply


def wifi_station(n, **changes):
    from station import config
    from station.hw import sim

    cfg, errors = config.merge(config.DEFAULTS, changes)
    assert errors == []
    q = FlashQueue(tempdir(), keep=cfg["queue_keep"], segment_records=8)
    add(q, n)
    board = sim.Board(sim.World())
    creds = {"device_id": 1, "key": b"k" * 32, "server": "http://x",
             "wifi": {"ssid": sim.SIM_SSID, "password": "pw"}}
    return cfg, q, board, creds, state.defaults()


def add(q, n):
    for _ in range(n):
        q.append(stored(1000 + q.next_seq, q.next_seq))


def upload(server, cfg, q, board, creds, st):
    real = signed.post_signed
    signed.post_signed = server.post
    try:
        server.batches = []
        return uplink.send(board, cfg, tempdir() + "/c.json", creds, st, q)
    finally:
        signed.post_signed = real


def test_a_restored_server_gets_the_acknowledged_readings_again():
    server = Server()
    cfg, q, board, creds, st = wifi_station(30)
    assert upload(server, cfg, q, board, creds, st) is not None
    assert q.acked == 30 and q.depth() == 0 and q.oldest() == 1  # acknowledged, kept
    server.restore(10)  # the backup was taken after reading 10; its counter is older
    add(q, 2)
    reply = upload(server, cfg, q, board, creds, st)
    # 31, 32 showed the gap: the server asked from 11 and got 11..30 in the next batch; the
    # station's counter, higher than the restored one, was taken at once
    assert server.batches == [[31, 32], list(range(11, 31))]
    assert server.stored == set(range(1, 33)) and reply is not None
    assert st["resend"] is None and st["gone"] == 0 and q.depth() == 0


def test_new_readings_share_each_batch_and_the_resend_is_bounded_per_wake():
    server = Server()
    cfg, q, board, creds, st = wifi_station(100, batch_records=10, batches_per_wake=2)
    for _ in range(5):
        upload(server, cfg, q, board, creds, st)
    assert q.acked == 100
    server.restore(0)  # a backup from before the station's first upload
    wakes = 0
    while server.stored != set(range(1, q.next_seq)):
        add(q, 6)  # new readings keep coming, six a wake
        upload(server, cfg, q, board, creds, st)
        wakes += 1
        # batches_per_wake, + the one try send() keeps for a stale counter
        assert len(server.batches) <= 3 and all(len(b) <= 10 for b in server.batches)
        assert q.depth() <= 6  # the new ones never wait behind the old
        assert wakes < 20
    assert st["resend"] is None and st["gone"] == 0 and wakes == 5
    assert server.batches[0] == sorted(server.batches[0])  # oldest first in each batch


def test_what_the_flash_no_longer_holds_is_counted_and_said_and_asked_once():
    server = Server()
    cfg, q, board, creds, st = wifi_station(40, queue_keep=10)
    upload(server, cfg, q, board, creds, st)
    assert q.acked == 40 and q.oldest() == 25  # the newest 10 and their segments kept
    server.restore(4)
    add(q, 1)
    upload(server, cfg, q, board, creds, st)
    assert server.batches == [[41], list(range(25, 41))]
    assert st["gone"] == 20 and "5..24" in st["err"] and st["resend"] is None
    add(q, 1)
    upload(server, cfg, q, board, creds, st)
    assert server.batches == [[42]] and st["gone"] == 20  # not asked again: no loop


class IngestSocket:
    """The fleet server's end of one TCP connection, under the sim board's SimSocket: each
    whole POST gets an HTTP/1.1 reply acknowledging its readings, with its Content-Length,
    and the connection stays open (as uvicorn keeps it)."""

    def __init__(self, server):
        self.server = server
        self.got = b""
        self.out = b""
        self.closed = False
        server.connections.append(self)

    def write(self, data):
        self.got += bytes(data)
        head, sep, body = self.got.partition(b"\r\n\r\n")
        n = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) if sep else -1
        if 0 <= n <= len(body):
            self.got = b""
            seqs = [r["seq"] for r in decode(body[:n]) if r["type"] != "status"]
            self.server.batches.append(seqs)
            reply = b'{"ack_upto": %d}' % max(seqs)
            self.out += b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (
                len(reply), reply)
        return len(data)

    def recv(self, n):
        assert self.out, "read past the end of the reply"
        out, self.out = self.out[:n], self.out[n:]
        return out

    def close(self):
        self.closed = True


class Ingest:
    def __init__(self):
        self.connections = []
        self.batches = []


def wake_over_the_sim_network(keepalive_ms):
    """One backlog wake of 4 batches through the sim board's sockets (station/net.py's
    connect answered by an Ingest), with the server's keep-alive timeout set."""
    from station import net
    from station.hw import sim_net

    server = Ingest()
    cfg, q, board, creds, st = wifi_station(40, batch_records=10, batches_per_wake=4)
    real = net.connect, sim_net.SERVER_KEEPALIVE_MS
    net.connect = lambda host, port, timeout_s: IngestSocket(server)
    sim_net.SERVER_KEEPALIVE_MS = keepalive_ms
    try:
        reply = uplink.send(board, cfg, tempdir() + "/c.json", creds, st, q)
    finally:
        net.connect, sim_net.SERVER_KEEPALIVE_MS = real
    assert reply == {"ack_upto": 40} and q.depth() == 0 and st["uplink"] == ""
    assert server.batches == [list(range(i, i + 10)) for i in (1, 11, 21, 31)]
    assert all(c.closed for c in server.connections)
    return server, board


def test_the_batches_of_a_wake_share_one_connection():
    server, board = wake_over_the_sim_network(5000)
    assert len(server.connections) == 1


def test_a_connection_the_server_closed_between_batches_is_opened_again():
    # a server that closes a connection as soon as it is idle: every batch after the first
    # finds it closed, and goes again on a new one
    server, board = wake_over_the_sim_network(0)
    assert len(server.connections) == 4


def test_the_sim_server_closes_a_connection_idle_for_its_keep_alive_timeout():
    from station.hw import sim, sim_net

    board = sim.Board(sim.World())
    server = Ingest()
    body = codec.encode_full(1, 0, 1000, 3700, 0, 20.0, 50.0, 1000.0, 0.0)
    post = b"POST /api/ingest HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    for idle_ms, answered in ((sim_net.SERVER_KEEPALIVE_MS - 1, True),
                              (sim_net.SERVER_KEEPALIVE_MS, False)):
        sock = sim_net.SimSocket(board, IngestSocket(server), 15)
        sock.write(post)
        assert sock.readline().startswith(b"HTTP/1.1 200")
        assert sock.read(len(sock.sock.out)).endswith(b"}")
        board.advance(idle_ms)
        sock.write(post)
        assert (sock.readline() != b"") == answered
        assert sock.sock.closed != answered
