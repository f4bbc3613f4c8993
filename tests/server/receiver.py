"""A webhook receiver: a real HTTP server in a thread that records what it is sent and
answers with the status the test sets."""

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.lock = threading.Lock()
        self.got = threading.Condition(self.lock)
        self.url = ""

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def wait_for(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        with self.got:
            self.got.wait_for(lambda: len(self.requests) >= n, timeout)
        return self.bodies()

    @staticmethod
    def verify(secret: str, request: dict[str, Any]) -> bool:
        """The signature check a receiver does (docs/alerts.md)."""
        h = request["headers"]
        mac = hmac.new(secret.encode(), h["x-mizumori-timestamp"].encode() + b"." +
                       request["body"], hashlib.sha256).hexdigest()
        return hmac.compare_digest("sha256=" + mac, h["x-mizumori-signature"])


@contextmanager
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with rec.got:
                status = rec.status
                if status < 300:
                    rec.requests.append({"headers": {k.lower(): v for k, v in
                                                     self.headers.items()}, "body": body,
                                         "path": self.path})
                    rec.got.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
