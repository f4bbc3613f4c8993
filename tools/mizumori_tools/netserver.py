"""The LoRaWAN side of the rig: a RAK3172 linked to the virtual station's UART (the
firmware's simulated module, speaking the AT dialogue byte for byte, on the board's clock)
whose radio reaches a small network server. The network server does what ChirpStack v4 does
for the fleet server: it admits the stations registered with it, posts each uplink to the
HTTP integration's URL (`?event=up`, JSON, the integration's secret header) — once per
gateway that heard it, as a network server without deduplication would, so the fleet
server's own deduplication is tested — and takes downlinks on ChirpStack's REST queue API
(`POST /api/devices/{devEui}/queue`, bearer token; `DELETE` on it flushes the queue) for the
device's next receive window.
Like a real network server it asks for MAC answers (LinkADRReq after a join, DevStatusReq now
and then), sets FPending while more downlinks wait, answers DeviceTimeReq with its clock,
can lose an acknowledgement (`lose_ack_every`) or a whole frame (`lose_every`), and can
forget a device's session (`forget`): then nothing is heard until the device joins again.
Like a real one it posts to the integration from a queue of its own, in order: the radio
never waits for the fleet server (a busy host once made the module's uplink time out while
the webhook was being answered). `settle()` waits until everything heard was posted.
"""

import base64
import datetime as dt
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from mizumori_tools import paths
from mizumori_tools.virtual import ESP32_EPOCH


class NetworkServer:
    def __init__(self, webhook_url: str, secret: str, api_token: str, gateways: int = 2,
                 now: Callable[[], int] = lambda: int(time.time())):
        self.webhook_url = webhook_url
        self.secret = secret
        self.api_token = api_token
        self.gateways = gateways
        self.now = now
        self.devices: set[str] = set()
        self.sessions: set[str] = set()  # devices joined since the last forget()
        self.queues: dict[str, list[tuple[int, bytes]]] = {}
        self.answers: dict[str, int] = {}  # MAC-answer bytes the last downlink asked for
        self.frames: dict[str, int] = {}  # frames heard per device since its join
        self.seen: set[tuple[str, int]] = set()  # (device, FCnt) already posted
        self.lose_ack_every = 0  # every Nth confirmed frame's acknowledgement is lost
        self.lose_every = 0  # every Nth frame a device sends is heard by no gateway
        self.transmitted = 0  # frames sent by the devices, heard or not
        self.joins = 0
        self.posts = 0  # webhook requests made
        self.uplinks = 0  # frames heard
        self.refused: list[str] = []  # what the fleet server refused (status and text)
        self.lock = threading.Lock()
        self.http = httpx.Client(timeout=30)
        self._api = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.api_url = f"http://127.0.0.1:{self._api.server_address[1]}"
        threading.Thread(target=self._api.serve_forever, daemon=True).start()
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._post_events, daemon=True).start()

    def register(self, dev_eui: str) -> None:
        self.devices.add(dev_eui.lower())

    # --- the radio side (called by the simulated module) ---------------------------------
    def forget(self, dev_eui: str) -> None:
        """Lose the device's session (a restored or migrated network server)."""
        self.sessions.discard(dev_eui.lower())

    def join(self, dev_eui: str, app_eui: str, app_key: str) -> bool:
        if dev_eui not in self.devices:
            return False
        with self.lock:
            self.joins += 1
            self.sessions.add(dev_eui)
            self.seen = {k for k in self.seen if k[0] != dev_eui}  # FCnt starts again
            self.frames[dev_eui] = 0
            self.answers[dev_eui] = 0
        return True

    def pending(self, dev_eui: str) -> bool:
        """FPending: more downlinks wait for this device."""
        return bool(self.queues.get(dev_eui))

    def mac_answers(self, dev_eui: str) -> int:
        """Bytes of MAC answers the last downlink asked for: LinkADRAns (1) after the first
        frame of a session, DevStatusAns (3) every 24th frame, as ChirpStack's device
        profiles do."""
        return self.answers.get(dev_eui, 0)

    def uplink(self, dev_eui: str, port: int, payload: bytes, confirmed: bool, dr: int,
               fcnt: int) -> tuple[bool, list[tuple[int, bytes]]]:
        with self.lock:
            self.transmitted += 1
            if self.lose_every and self.transmitted % self.lose_every == 0:
                return False, []  # lost in the air
        if dev_eui not in self.sessions:
            return False, []  # no session: the frame's MIC checks against nothing
        with self.lock:
            self.uplinks += 1
            n = self.frames[dev_eui] = self.frames.get(dev_eui, 0) + 1
            self.answers[dev_eui] = 1 if n == 1 else 3 if n % 24 == 0 else 0
            first = (dev_eui, fcnt) not in self.seen
            self.seen.add((dev_eui, fcnt))
            lost = confirmed and first and self.lose_ack_every and n % self.lose_ack_every == 0
            downlinks = [] if lost else self.queues.get(dev_eui, [])[:1]
            self.queues[dev_eui] = self.queues.get(dev_eui, [])[len(downlinks):]
        if port == 0 or not first:
            # MAC commands alone (no application payload), or a retransmission: ChirpStack
            # posts neither to the integration
            return not lost, downlinks
        sent = dt.datetime.fromtimestamp(self.now(), dt.UTC).isoformat()
        for gw in range(self.gateways):
            event = {
                "deduplicationId": str(uuid.uuid4()), "time": sent,
                "deviceInfo": {"tenantName": "rig", "applicationName": "mizumori rig",
                               "deviceProfileName": "RAK3172 AS923-1",
                               "deviceName": dev_eui, "devEui": dev_eui},
                "devAddr": "01" + dev_eui[-6:], "adr": False, "dr": dr, "fCnt": fcnt,
                "fPort": port, "confirmed": confirmed,
                "data": base64.b64encode(payload).decode(),
                "rxInfo": [{"gatewayId": f"00800000a000{gw:04x}", "rssi": -95 - 7 * gw,
                            "snr": 6.5 - 3 * gw, "channel": 2}],
                "txInfo": {"frequency": 923200000, "modulation": {"lora": {
                    "bandwidth": 125000, "spreadingFactor": 12 - dr,
                    "codeRate": "CR_4_5"}}}}
            self._events.put(event)
        return not lost, downlinks

    def _post_events(self) -> None:
        while (event := self._events.get()) is not None:
            try:
                r = self.http.post(self.webhook_url, params={"event": "up"}, json=event,
                                   headers={"X-Mizumori-Secret": self.secret})
                self.posts += 1
                if r.status_code != 200:
                    self.refused.append(f"{r.status_code} {r.text}")
            except Exception as e:  # noqa: BLE001 - said in refused; the thread goes on
                self.refused.append(f"no answer: {e!r}")
            finally:
                self._events.task_done()

    def settle(self, timeout_s: float = 120) -> None:
        """Wait until every frame heard so far was posted to the integration."""
        end = time.monotonic() + timeout_s
        while self._events.unfinished_tasks:
            if time.monotonic() > end:
                raise TimeoutError(f"{self._events.unfinished_tasks} webhook posts still "
                                   f"pending after {timeout_s} s")
            time.sleep(0.02)

    # --- ChirpStack's queue API ----------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ns = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if eui := self._device():  # Enqueue
                    item = json.loads(body)["queueItem"]
                    with ns.lock:
                        ns.queues.setdefault(eui, []).append(
                            (int(item["fPort"]), base64.b64decode(item["data"])))
                    self._reply(200, {"id": str(uuid.uuid4())})

            def do_DELETE(self) -> None:  # noqa: N802 - FlushQueue: every item goes
                if eui := self._device():
                    with ns.lock:
                        ns.queues[eui] = []
                    self._reply(200, {})

            def _device(self) -> str | None:
                """The device of a /api/devices/{devEui}/queue request; None: refused."""
                parts = self.path.strip("/").split("/")
                if self.headers.get("Authorization") != f"Bearer {ns.api_token}":
                    self._reply(401, {"error": "authentication failed"})
                elif len(parts) != 4 or parts[:2] != ["api", "devices"] or parts[3] != "queue":
                    self._reply(404, {"error": "not found"})
                elif parts[2].lower() not in ns.devices:
                    self._reply(404, {"error": "object does not exist"})
                else:
                    return parts[2].lower()
                return None

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def close(self) -> None:
        self._events.put(None)
        self._api.shutdown()
        self._api.server_close()
        self.http.close()


class ModemLink:
    """The simulated RAK3172 of a virtual station, on the board's clock: the board's UART
    (firmware station/hw/sim_link.py) connects to `address` and sends each write, read and
    any() with the board's true time in ms, and the module answers as of that time (its own
    clock counts from its first call, its power-on). One clock for both, so what the module
    prints while the board light-sleeps is lost however busy the host. The module lives
    here, between wakes as through them: it stays powered while the ESP32 deep-sleeps, and
    goes on with what it started (its own uplink after a downlink with FPending, a retry)
    when the board's process ends, printing to a UART that is off. Before it answers, the
    network server has posted what it heard, as a real one does in the seconds before the
    device's next uplink: the fleet server's answers (a resend request, a delivery report)
    wait in the queue for that uplink whichever process the host runs first. A call the
    module could not answer is kept in `errors` (and the board reads a line it cannot
    parse)."""

    def __init__(self, network: NetworkServer):
        paths.import_firmware()
        from station.hw.rak3172_sim import Rak3172Sim

        self.network = network
        self.origin: int | None = None  # the board's time at the first call
        self.now = 0  # the module's time (ms since its power-on)
        self.errors: list[str] = []
        self.module = Rak3172Sim(network, lambda: self.now)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp:127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with conn, conn.makefile("rwb") as f:
                for line in f:
                    try:
                        out = self._answer(line.decode().split())
                    except Exception as e:  # noqa: BLE001 - kept for the test to see
                        self.errors.append(f"{line.decode().strip()[:40]}: {e!r}")
                        out = "error"
                    f.write(out.encode() + b"\n")
                    f.flush()
            try:
                self._board_asleep()
            except Exception as e:  # noqa: BLE001 - the thread must serve the next wake
                self.errors.append(f"while the board slept: {e!r}")

    def _answer(self, call: list[str]) -> str:
        op, t = call[0], int(call[1])
        if self.origin is None:
            self.origin = t
        self.now = max(self.now, t - self.origin)
        if op == "W":
            n = self.module.write(bytes.fromhex(call[2]) if len(call) > 2 else b"")
            self.network.settle()
            return str(n)
        if op == "A":
            return str(self.module.any())
        n = int(call[2])
        return (self.module.read(None if n < 0 else n) or b"").hex()

    def time_s(self) -> int:
        """The true time at the module's clock (Unix seconds; the board's calls carry the
        rig's time since the ESP32 epoch): the network server's clock (NetworkServer.now) for
        its DeviceTimeReq answers and events, as of the uplink, not the start of the wake."""
        if self.origin is None:
            raise RuntimeError("the board has not called the modem yet")
        return (self.origin + self.now) // 1000 + ESP32_EPOCH

    def _board_asleep(self) -> None:
        """The board's process ended (deep sleep): the module does what it had scheduled,
        each at its time, and what it prints is lost."""
        for _ in range(100):
            if not self.module.pending:
                break
            self.now = max(self.now, min(p[0] for p in self.module.pending))
            self.module.read()
        self.network.settle()

    def close(self) -> None:
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self._server.close()
        self._thread.join(2)
