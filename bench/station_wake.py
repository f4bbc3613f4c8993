"""Virtual-station wake benchmark (part of `make bench`): the real firmware under the
MicroPython unix port, one process per wake as on the rig, reporting to a live server on
loopback over HTTP and over HTTPS (CERT_REQUIRED). A counting TCP proxy between them gives
the bytes on the air per reading."""

import json
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mizumori_tools import certs, paths
from mizumori_tools.fleet import Api, Fleet, ServerProcess
from mizumori_tools.virtual import ESP32_EPOCH, CPythonStation, Scenario, VirtualStation

START = 1_790_000_000
WAKES = 24
OUTAGE_WAKES = 60


class CountingProxy:
    """Forwards TCP connections to the server and counts the bytes each way."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.up = self.down = self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.sock.accept()
            server = socket.create_connection(self.target)
            self.connections += 1
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, way: str) -> None:
        try:
            while data := src.recv(65536):
                setattr(self, way, getattr(self, way) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def take(self) -> tuple[int, int, int]:
        figures = (self.up, self.down, self.connections)
        self.up = self.down = self.connections = 0
        return figures


class TimedStation(VirtualStation):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def wake(self, *args: Any, **kwargs: Any) -> tuple[int, int] | None:
        ru0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        result = super().wake(*args, **kwargs)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall.append(time.perf_counter() - t0)
        self.cpu.append(ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime)
        return result


def measure(tmp: Path, tls: bool) -> dict[str, float]:
    pki = certs.make(tmp / "pki") if tls else None
    clock = tmp / "clock"
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                            "MIZUMORI_CLOCK_FILE": str(clock),
                            "MIZUMORI_SECRET_KEY": "bench"}, cwd=tmp, tls=pki)
    server.prepare({"admin": ("admin", "bench-pass-1")})
    calm = Scenario.load("calm")
    outage_h = (WAKES * 600 / 3600, (WAKES + OUTAGE_WAKES) * 600 / 3600)
    scenario = Scenario("bench", 24, {**calm.spec, "outages": [
        {"from_h": outage_h[0], "to_h": outage_h[1]}]})
    fleet = Fleet(scenario, clock, START)
    server.start()
    try:
        ca = str(pki["ca"]) if pki else None
        api = Api.login(server.url, "admin", "bench-pass-1", ca)
        api.station({"code": "bench-01", "name": "bench", "site_type": "river",
                     "latitude": 33.28, "longitude": 130.11, "mount_height_mm": 5000,
                     "upload_every": 1})
        p = api.provision("esp32-bench-01", "bench-01")
        proxy = CountingProxy(server.port)
        station = TimedStation(tmp / "flash")
        url = f"{'https' if tls else 'http'}://127.0.0.1:{proxy.port}"
        station.provision(p, url, p["config"], ca=pki["ca"] if pki else None)
        member = fleet.add(station, "bench-01")
        fleet.run_until(START + 600 * WAKES - 1)
        up, down, conns = proxy.take()
        single = {"wall_ms": statistics.median(station.wall[1:]) * 1000,
                  "cpu_ms": statistics.median(station.cpu[1:]) * 1000,
                  "up_per_reading": up / member.wakes, "down_per_reading": down / member.wakes,
                  "uploads": conns}
        # a Wi-Fi outage: the backlog goes in batches at the first wake that gets through
        wakes_before = member.wakes
        while proxy.connections == 0:
            fleet.run_until(fleet.now + 600)
        up, down, conns = proxy.take()
        single["backlog"] = member.wakes - wakes_before
        single["batch_up_per_reading"] = up / single["backlog"]
        single["batch_uploads"] = conns
        single["batch_wall_ms"] = station.wall[-1] * 1000
        return single
    finally:
        server.stop()


def main() -> None:
    print("Virtual station wake under MicroPython, reporting on loopback "
          f"(median of {WAKES - 1} wakes; one process per wake, as on the rig)")
    for tls in (False, True):
        with tempfile.TemporaryDirectory(prefix="mizumori-wake-") as tmp:
            f = measure(Path(tmp), tls)
        kind = "HTTPS (TLS, CERT_REQUIRED)" if tls else "HTTP (rig)"
        print(f"  {kind}")
        print(f"    wake incl. upload, wall          {f['wall_ms']:8.1f} ms")
        print(f"    wake incl. upload, CPU           {f['cpu_ms']:8.1f} ms")
        print(f"    bytes sent per reading, 1/upload {f['up_per_reading']:8.0f} B  "
              f"(received {f['down_per_reading']:.0f} B)")
        print(f"    bytes sent per reading, backlog  {f['batch_up_per_reading']:8.0f} B  "
              f"({f['backlog']:.0f} readings in {f['batch_uploads']:.0f} uploads, "
              f"{f['batch_wall_ms']:.0f} ms)")
    keepalive()
    sys.stdout.flush()


def backlog_wake(tmp: Path, reuse: bool) -> tuple[float, float, int]:
    """The board's awake time (s), charge (mAh) and TLS handshakes of a wake sending a
    backlog of 4 batches of 10 readings over HTTPS; reuse False: a connection per request, as
    the firmware did before keep-alive. The sim board's own ledger (its NET_MS and
    hardware/energy.json), the firmware in this process against a live server."""
    from energy import mah

    paths.import_firmware()
    from station import http
    from station.hw import sim_tls

    pki = certs.make(tmp / "pki", start=START)
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                            "MIZUMORI_CLOCK_FILE": str(tmp / "clock"),
                            "MIZUMORI_SECRET_KEY": "bench"}, cwd=tmp, tls=pki)
    server.prepare({"admin": ("admin", "bench-pass-1")})
    server.start()
    real = http.Connection.request, sim_tls.wrap
    handshakes: list[int] = []
    try:
        api = Api.login(server.url, "admin", "bench-pass-1", str(pki["ca"]))
        api.station({"code": "bench-ka", "name": "bench", "site_type": "river",
                     "latitude": 33.28, "longitude": 130.11, "mount_height_mm": 5000,
                     "upload_every": 1})
        p = api.provision("esp32-bench-ka", "bench-ka")
        station = CPythonStation(tmp / "flash")
        station.provision(p, server.url, {**p["config"], "batch_records": 10}, ca=pki["ca"],
                          clock=START - ESP32_EPOCH)
        calm = Scenario.load("calm")
        t = START
        for i in range(36):  # one wake that reports, 35 with no access point: 36 readings
            (tmp / "clock").write_text(str(t))
            station.wake({**calm.world(i / 6), "faults": ["link_down"] if i else []},
                         t - ESP32_EPOCH)
            t += 600
        t += 3600  # past the uplink's backoff
        (tmp / "clock").write_text(str(t))
        if not reuse:
            def one_each(self: Any, method: str, url: str, body: Any, headers: Any,
                         verify: bool = True, last: bool = False) -> Any:
                return real[0](self, method, url, body, headers, verify, True)

            http.Connection.request = one_each

        def counted(*args: Any) -> Any:
            handshakes.append(1)
            return real[1](*args)

        sim_tls.wrap = counted
        ledger = station.flash / "energy.json"
        before = json.loads(ledger.read_text())
        station.wake(calm.world((t - START) / 3600), t - ESP32_EPOCH)
        after = json.loads(ledger.read_text())
        assert station.state()["uplink"] == "", station.state()
        spent = {k: after[k] - before.get(k, 0) for k in after if k not in ("wakes",
                                                                           "deep_sleep")}
        awake = sum(v for k, v in spent.items() if not k.startswith("rail_"))
        return awake / 1000, mah(spent), len(handshakes)
    finally:
        http.Connection.request = real[0]
        sim_tls.wrap = real[1]
        server.stop()


def keepalive() -> None:
    print("A backlog wake (4 batches of 10 readings, HTTPS), sim board's ledger:")
    for reuse, label in ((False, "a connection per request"), (True, "one kept connection")):
        with tempfile.TemporaryDirectory(prefix="mizumori-ka-") as tmp:
            s, charge, tls = backlog_wake(Path(tmp), reuse)
        print(f"  {label:26s} awake {s:5.1f} s  {charge * 1000:6.1f} uAh  "
              f"{tls} TLS handshakes")


if __name__ == "__main__":
    main()
