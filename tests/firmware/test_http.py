# The station's HTTP client against scripted servers: a reply ends at its Content-Length
# while the connection stays open (asking for more would wait for the socket's timeout), the
# requests of a wake share one connection, and one the server closed meanwhile is opened
# again once.
from station import http
from station.ota_install import _to_file as to_file


class Server:
    """A host socket speaking for a server: each request written gets the next scripted
    reply. It reads as a MicroPython TLS socket without recv does (read(n) waits for all n
    bytes: py/stream.c): asking past what the server sent on an open connection would wait
    for the timeout, so here it fails the test. `close_after`: replies before the server
    closes its end (then what is written is lost and reads see the end)."""

    def __init__(self, replies, close_after=None, fail=None):
        self.replies = list(replies)
        self.close_after = close_after
        self.fail = fail  # an OSError raised by the first read after a request
        self.pending = b""
        self.requests = []
        self.inbox = b""  # written, not yet a whole request
        self.closed = False

    def _ended(self):
        """The server has closed its end (after its last reply)."""
        return self.close_after is not None and len(self.requests) >= self.close_after

    def write(self, data):
        """A request is whole at the end of its head and Content-Length bytes of body,
        however many writes it takes (the client writes head and body apart)."""
        assert not self.closed, "write on a closed socket"
        self.inbox += bytes(data)
        while not self._ended():
            end = self.inbox.find(b"\r\n\r\n")
            if end < 0:
                break
            size = end + 4
            for line in self.inbox[:end].split(b"\r\n"):
                if line.startswith(b"Content-Length:"):
                    size += int(line[15:])
            if len(self.inbox) < size:
                break
            self.requests.append(self.inbox[:size])
            self.inbox = self.inbox[size:]
            self.pending += self.replies.pop(0)
        return len(data)  # after the server's close: taken by TCP, lost

    def _take(self, n):
        if self.fail:
            e, self.fail = self.fail, None
            raise e
        if len(self.pending) < n and not self._ended():
            raise AssertionError("read past the end of the reply")
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def read(self, n):
        return self._take(n)

    def readline(self, limit=-1):
        end = self.pending.find(b"\n")
        n = end + 1 if end >= 0 else len(self.pending) + (0 if self._ended() else 1)
        return self._take(n if limit < 0 else min(n, limit))

    def close(self):
        self.closed = True


class Net:
    """The board's network stack: each connection gets the next Server."""

    def __init__(self, *servers):
        self.servers = list(servers)
        self.opened = []

    def net_connect(self, host, port, timeout_s):
        self.opened.append(self.servers.pop(0))
        return self.opened[-1]


def ends(reply):
    """(status, body or bytes written) of a reply."""
    return reply[0], reply[2]


def ok(body, extra=b""):
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_requests_of_a_wake_share_one_connection_and_end_at_their_length():
    server = Server([ok(b'{"ack":%d}' % i) for i in range(4)])
    net = Net(server)
    conn = http.Connection(net)
    for i in range(4):
        status, headers, body = conn.request("POST", "http://x/api/ingest", b"b%d" % i, {})
        assert (status, http.json_body(body)) == (200, {"ack": i})
        assert headers["content-length"] == str(len(body))
    conn.close()
    assert net.opened == [server] and server.closed and conn.opened == 1
    assert all(b"Connection: close" not in r for r in server.requests)
    assert server.requests[3].startswith(b"POST /api/ingest HTTP/1.1\r\nHost: x\r\n")
    assert server.requests[3].endswith(b"Content-Length: 2\r\n\r\nb3")


def test_a_connection_the_server_closed_is_opened_again_once():
    first = Server([ok(b"1")], close_after=1)  # its keep-alive timeout ran out after one
    second = Server([ok(b"2"), ok(b"3")])
    net = Net(first, second)
    conn = http.Connection(net)
    assert conn.request("GET", "http://x/a", None, {})[2] == b"1"
    assert conn.request("GET", "http://x/b", None, {})[2] == b"2"  # went again on `second`
    assert conn.request("GET", "http://x/c", None, {})[2] == b"3"
    assert net.opened == [first, second] and first.closed and conn.opened == 2
    assert [r.split(b" ")[1] for r in second.requests] == [b"/b", b"/c"]


def test_a_new_connection_that_ends_at_once_is_not_tried_again():
    net = Net(Server([b""], close_after=0), Server([ok(b"never")]))
    try:
        http.Connection(net).request("GET", "http://x/a", None, {})
        raise AssertionError("a closed new connection must fail")
    except http.Closed:
        pass
    assert len(net.opened) == 1


def test_a_kept_connection_that_times_out_is_not_tried_again():
    server = Server([ok(b"1"), ok(b"2")])
    net = Net(server, Server([ok(b"never")]))
    conn = http.Connection(net)
    conn.request("GET", "http://x/a", None, {})
    server.fail = OSError(116)  # ETIMEDOUT: the server is there but does not answer
    try:
        conn.request("GET", "http://x/b", None, {})
        raise AssertionError("a timeout must fail")
    except OSError as e:
        assert e.args[0] == 116
    assert len(net.opened) == 1 and server.closed


def test_a_reply_without_length_or_with_close_ends_the_connection():
    no_length = Server([b"HTTP/1.1 503 Busy\r\n\r\nback later"], close_after=1)
    close = Server([ok(b"x", b"Connection: close\r\n")], close_after=1)
    net = Net(no_length, close, Server([ok(b"y")]))
    conn = http.Connection(net)
    assert ends(conn.request("GET", "http://x/a", None, {})) == (503, b"back later")
    assert conn.request("GET", "http://x/b", None, {})[2] == b"x"
    assert conn.request("GET", "http://x/c", None, {})[2] == b"y"
    assert len(net.opened) == 3 and no_length.closed and close.closed


def test_one_request_alone_asks_the_server_to_close():
    server = Server([ok(b"{}")], close_after=1)
    assert http.request(Net(server), "GET", "http://x/t", None, {})[0] == 200
    assert b"\r\nConnection: close\r\n" in server.requests[0] and server.closed


def test_truncated_garbled_or_chunked_replies_are_errors():
    for reply in (b"HTTP/1.1 200 OK\r\nContent-Length: 5", b"\x00\x01garbage\r\n\r\n",
                  b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"ack\"",
                  b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"):
        server = Server([reply], close_after=1)
        try:
            http.Connection(Net(server)).request("GET", "http://x/a", None, {})
        except http.HTTPError:
            assert server.closed
            continue
        raise AssertionError("accepted %r" % reply)


class Sink:
    def __init__(self):
        self.data = b""

    def write(self, b):
        self.data += b


def test_downloads_stream_into_a_file_and_keep_the_connection():
    """The update's downloads (ota_install._to_file over http's Connection)."""
    part = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/10\r\n" \
        b"Content-Length: 6\r\n\r\nabcdef"
    refused = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden"
    big = ok(b"z" * 5000)
    server = Server([part, refused, big])
    net = Net(server)
    fed = []
    conn = http.Connection(net, feed=lambda: fed.append(1))
    sink = Sink()
    assert to_file(conn, "http://x/f", {"Range": "bytes=4-"}, sink) == (206, 6)
    assert sink.data == b"abcdef"
    assert server.requests[0].count(b"Range: bytes=4-") == 1
    assert to_file(conn, "http://x/g", {}, sink) == (403, 0)
    assert sink.data == b"abcdef"  # a refusal's body is not written
    assert to_file(conn, "http://x/h", {}, sink) == (200, 5000)
    assert sink.data == b"abcdef" + b"z" * 5000 and len(net.opened) == 1
    assert len(fed) >= 3  # the watchdog, after every chunk


def test_a_download_cut_short_fails():
    server = Server([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], close_after=1)
    try:
        to_file(http.Connection(Net(server)), "http://x/f", {}, Sink())
        raise AssertionError("a short download must fail")
    except http.HTTPError as e:
        assert "truncated" in str(e)


def test_a_reply_is_never_longer_than_its_bound():
    for reply in (ok(b"x" * (http.MAX_REPLY + 1)),
                  b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (http.MAX_REPLY + 1),
                  b"HTTP/1.1 200 OK\r\nX: " + b"y" * http.MAX_REPLY + b"\r\n\r\n"):
        try:
            http.Connection(Net(Server([reply], close_after=1))).request(
                "GET", "http://x/a", None, {})
        except http.HTTPError as e:
            assert "over" in str(e)
        else:
            raise AssertionError("an unbounded reply was accepted")
