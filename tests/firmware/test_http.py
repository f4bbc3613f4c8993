# The station's HTTP client against scripted byte streams: a response ends at its
# Content-Length even while the connection stays open (MicroPython's TLS may never report
# the server's close), or at the end of the connection when no length is given.
from station import http


class Sock:
    """Hands out the scripted chunks; reading past them with the connection still open
    would block on a real socket, so here it fails the test."""

    def __init__(self, chunks, closes):
        self.chunks = list(chunks)
        self.closes = closes

    def read(self, n):
        if self.chunks:
            return self.chunks.pop(0)
        if self.closes:
            return b""
        raise AssertionError("read past the end of the response")


def test_response_ends_at_content_length_on_an_open_connection():
    raw = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Len",
           b"gth: 11\r\n\r\n{\"ack\":", b" 42}"]
    status, headers, body = http._parse(http._recv_all(Sock(raw, closes=False)))
    assert status == 200 and headers["content-type"] == "application/json"
    assert http.json_body(body) == {"ack": 42}


def test_response_without_length_runs_to_the_close():
    raw = [b"HTTP/1.1 503 Busy\r\n\r\nback ", b"later"]
    status, _, body = http._parse(http._recv_all(Sock(raw, closes=True)))
    assert status == 503 and body == b"back later"


def test_truncated_or_garbled_responses_are_errors():
    for raw in ([b"HTTP/1.1 200 OK\r\nContent-Length: 5"], [b"\x00\x01garbage\r\n\r\n"],
                [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"ack\""]):
        try:
            http._parse(http._recv_all(Sock(raw, closes=True)))
        except http.HTTPError:
            continue
        raise AssertionError("accepted %r" % raw)


class Sink:
    def __init__(self):
        self.data = b""

    def write(self, b):
        self.data += b


def test_download_streams_the_body_into_a_file_up_to_its_length():
    raw = [b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/10\r\n",
           b"Content-Length: 6\r\n\r\nabc", b"def"]
    sink = Sink()
    chunks = []
    status, headers, n = http._recv_to_file(Sock(raw, closes=False), sink,
                                            lambda: chunks.append(1))
    assert (status, n, sink.data) == (206, 6, b"abcdef")
    assert headers["content-range"] == "bytes 4-9/10" and len(chunks) == 2


def test_download_refused_or_cut_short_writes_nothing_or_fails():
    sink = Sink()
    raw = [b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden"]
    assert http._recv_to_file(Sock(raw, closes=True), sink)[0] == 403 and sink.data == b""
    raw = [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]
    try:
        http._recv_to_file(Sock(raw, closes=True), sink)
        raise AssertionError("a short download must fail")
    except http.HTTPError as e:
        assert "truncated" in str(e)


def test_a_body_arriving_after_the_headers_in_its_own_segment_is_read():
    # recv returns what has arrived: the headers alone, then the body
    raw = [b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", b"abc", b"def"]
    sink = Sink()
    status, _, n = http._recv_to_file(Sock(raw, closes=False), sink)
    assert (status, n, sink.data) == (200, 6, b"abcdef")


def test_a_reply_is_never_longer_than_its_bound():
    raw = [b"HTTP/1.1 200 OK\r\n\r\n"] + [b"x" * 1024] * 9
    try:
        http._recv_all(Sock(raw, closes=True))
    except http.HTTPError as e:
        assert "over" in str(e)
    else:
        raise AssertionError("an unbounded reply was accepted")
