"""OTA end to end: a live `mizumori serve` with a trusted release key, virtual stations
booting the firmware from their flash slots (MicroPython processes), releases built and
signed with `mizumori release`."""

from pathlib import Path

from mizumori_tools import release
from mizumori_tools.fleet import Api, ServerProcess
from mizumori_tools.virtual import VirtualStation

START = 1_790_000_000
EPOCH = 946684800
WORLD = {"level_mm": 800, "air_temp_c": 15.0, "battery_mv": 3900, "faults": []}


class OtaRig:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.clock = tmp / "clock"
        self.now = START
        self.key, self.pub = release.keygen(tmp / "keys" / "release")
        self.server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                                     "MIZUMORI_CLOCK_FILE": str(self.clock),
                                     "MIZUMORI_SECRET_KEY": "ota-secret",
                                     "MIZUMORI_RELEASE_KEYS_FILE": str(self.pub)}, cwd=tmp)
        self.server.prepare({"admin": ("admin", "kawa-kanri-2026")})
        self.tick(0)
        self.server.start()
        login = Api.login(self.server.url, "admin", "kawa-kanri-2026")
        # a personal API token: a login session would expire in simulated time
        token = login.http.post("/api/tokens", json={"name": "ota-tests"}).json()["token"]
        self.api = Api(self.server.url, token)
        self.stations: list[VirtualStation] = []

    def tick(self, seconds: int) -> None:
        self.now += seconds
        self.clock.write_text(str(self.now))

    def add_station(self, n: int, key: str | None = None, tags: list[str] | None = None
                    ) -> VirtualStation:
        code = f"st-{n:02d}"
        self.api.station({"code": code, "name": code, "site_type": "river",
                          "latitude": 33.28, "longitude": 130.11, "mount_height_mm": 5000,
                          "upload_every": 1, "tags": tags or []})
        st = VirtualStation(self.tmp / code, hardware_id=f"sim-ota-{n:04d}")
        st.install_firmware()
        p = self.api.provision(st.hardware_id, code)
        st.provision(p, self.server.url, p["config"],
                     release_key=key if key is not None else self.pub.read_text().strip())
        st.device_id = p["device_id"]  # type: ignore[attr-defined]
        self.stations.append(st)
        return st

    def wake(self, st: VirtualStation, world: dict | None = None, cause: str = "deepsleep",
             cut_after_writes: int | None = None) -> tuple[int, int] | None:
        return st.wake({**WORLD, **(world or {})}, self.now - EPOCH, 0, cause,
                       cut_after_writes=cut_after_writes)

    def build(self, version: str, source: Path | None = None, **kw: object) -> Path:
        from mizumori_tools import paths

        return release.build(self.key, self.tmp / "dist", source or paths.FIRMWARE,
                             version, **kw)  # type: ignore[arg-type]

    def upload(self, bundle: Path) -> dict:
        r = self.api.http.post("/api/releases", content=bundle.read_bytes())
        assert r.status_code == 201, r.text
        return dict(r.json())

    def rollout(self, version: str, **spec: object) -> dict:
        body = {"release": version, "target": {"all": True}, "stages": [100],
                "jitter_s": 0, "per_minute": 1000, "min_devices": 1, **spec}
        r = self.api.http.post("/api/rollouts", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def device(self, st: VirtualStation) -> dict:
        return dict(self.api.get(f"/api/devices/{st.device_id}"))  # type: ignore[attr-defined]
