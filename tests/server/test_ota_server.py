"""Releases and rollouts on the server (SQLite and PostgreSQL): bundle checks, immutable
releases, deterministic stages, pacing, auto-halt, operator actions, token-gated ranged
downloads, device reports."""

import hashlib
import io
import json
import tarfile
from typing import Any

import pytest
from conftest import make_user
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from device import Device, reading
from fastapi.testclient import TestClient
from mizumori_server import rollouts
from mizumori_server.settings import Settings

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def pub(k: Ed25519PrivateKey) -> str:
    return k.public_key().public_bytes(serialization.Encoding.Raw,
                                       serialization.PublicFormat.Raw).hex()


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path, auto_migrate=True,
                    secret_key="test-secret-key", release_keys=pub(KEY))


FILES = {"station/__init__.mpy": b"M\x06init", "station/app.mpy": bytes(range(100)) * 9}


def bundle(version: str = "1.1.0", files: dict[str, bytes] | None = None,
           key: Ed25519PrivateKey = KEY, extra: dict[str, bytes] | None = None,
           manifest: dict[str, Any] | None = None, tamper: bytes | None = None) -> bytes:
    files = FILES if files is None else files
    m = manifest or {"version": version, "mpy": "6.3", "min_battery_mv": 3400,
                     "files": [{"path": p, "sha256": hashlib.sha256(d).hexdigest(),
                                "size": len(d)} for p, d in sorted(files.items())]}
    raw = json.dumps(m, sort_keys=True).encode()
    sig = key.sign(raw).hex().encode()
    members = {"manifest.json": tamper or raw, "manifest.sig": sig,
               **{"files/" + p: d for p, d in files.items()}, **(extra or {})}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def upload(client: TestClient, headers: dict[str, str], body: bytes) -> Any:
    return client.post("/api/releases", content=body, headers=headers)


def test_signed_release_is_stored_and_immutable(app_client: TestClient,
                                                admin: dict[str, str]) -> None:
    r = upload(app_client, admin, bundle())
    assert r.status_code == 201, r.text
    assert r.json()["key_id"] == pub(KEY)[:16] and r.json()["size"] == sum(map(len, FILES.values()))
    again = upload(app_client, admin, bundle())
    assert again.status_code == 409 and "immutable" in again.json()["detail"]
    assert [x["version"] for x in app_client.get("/api/releases", headers=admin).json()] == [
        "1.1.0"]


@pytest.mark.parametrize("body,status,words", [
    (b"not a tar at all", 400, "not a release bundle"),
    (bundle(key=OTHER), 422, "does not verify with any trusted"),
    (bundle(tamper=b'{"version":"1.1.0","mpy":"6.3","files":[]}'), 422, "does not verify"),
    (bundle(files={"station/app.mpy": b"x"}, extra={"files/station/evil.mpy": b"y"}), 422,
     "does not list"),
    (bundle(extra={"../../etc/passwd": b"x"}), 400, "unexpected bundle member"),
    (bundle(manifest={"version": "1.1.0", "mpy": "6.3",
                      "files": [{"path": "station/app.mpy", "sha256": "0" * 64,
                                 "size": 900}]}), 422, "does not match the manifest"),
    (bundle(manifest={"version": "../x", "mpy": "6.3", "files": []}), 422, "version"),
])
def test_bad_bundles_are_refused_and_nothing_stored(app_client: TestClient,
                                                    admin: dict[str, str], body: bytes,
                                                    status: int, words: str) -> None:
    r = upload(app_client, admin, body)
    assert r.status_code == status and words in r.json()["detail"], r.text
    assert app_client.get("/api/releases", headers=admin).json() == []


def test_unsigned_bundle_and_roles(app_client: TestClient, admin: dict[str, str]) -> None:
    raw = bundle()
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()  # type: ignore
                   if m.name != "manifest.sig"]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for m, data in members:
            tar.addfile(m, io.BytesIO(data))
    r = upload(app_client, admin, out.getvalue())
    assert r.status_code == 400 and "manifest.sig" in r.json()["detail"]
    viewer = make_user(app_client, admin, "vera", "viewer")
    assert upload(app_client, viewer, bundle()).status_code == 403


class Fleet:
    """Stations with provisioned devices that upload through the real ingest."""

    def __init__(self, client: TestClient, admin: dict[str, str], n: int):
        self.client = client
        self.admin = admin
        self.devices: list[Device] = []
        for i in range(n):
            code = f"st-{i:03d}"
            r = client.post("/api/stations", headers=admin, json={
                "code": code, "name": code, "site_type": "river", "latitude": 33.0,
                "longitude": 130.0, "mount_height_mm": 5000,
                "tags": ["north"] if i % 2 == 0 else []})
            assert r.status_code == 201, r.text
            p = client.post("/api/devices/provision", headers=admin,
                            json={"hardware_id": f"esp32-{i:04d}", "station": code}).json()
            self.devices.append(Device(client, p))
        self.seq = 0

    def upload(self, d: Device) -> dict[str, Any]:
        self.seq += 1
        r = d.send(reading(self.seq))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def report(self, d: Device, version: str, *events: tuple[str, str, str]) -> Any:
        body = json.dumps({"version": version, "slot": "b", "events": [
            {"release": rel, "state": s, "reason": why} for rel, s, why in events]}).encode()
        h = d.headers(body)
        h["Content-Type"] = "application/json"
        return self.client.post("/api/ota/report", content=body, headers=h)

    def rollout(self, **spec: Any) -> dict[str, Any]:
        body = {"release": "1.1.0", "target": {"all": True}, "jitter_s": 0,
                "per_minute": 1000, **spec}
        r = self.client.post("/api/rollouts", headers=self.admin, json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def detail(self, rid: int) -> dict[str, Any]:
        return dict(self.client.get(f"/api/rollouts/{rid}", headers=self.admin).json())


@pytest.fixture
def fleet(app_client: TestClient, admin: dict[str, str]) -> Fleet:
    assert upload(app_client, admin, bundle()).status_code == 201
    return Fleet(app_client, admin, 20)


def test_stages_are_deterministic_and_offers_travel_in_the_ingest_reply(fleet: Fleet) -> None:
    ro = fleet.rollout(stages=[25, 100], auto_advance=False, success_pct=100)
    offered = {d.id: fleet.upload(d)["ota"] for d in fleet.devices}
    in_stage = {d.id for d in fleet.devices if rollouts.bucket(d.id, "1.1.0") < 2500}
    assert {i for i, o in offered.items() if o} == in_stage and 0 < len(in_stage) < 20
    o = next(o for o in offered.values() if o)
    assert o["release"] == "1.1.0" and o["url"] == "/api/ota/releases/1.1.0/"
    for d in fleet.devices:
        if d.id in in_stage:
            assert fleet.report(d, "1.1.0", ("1.1.0", "confirmed", "")).status_code == 200
    r = fleet.detail(ro["id"])
    assert r["state"] == "waiting" and "waiting for an operator" in r["reason"]
    assert not any(fleet.upload(d)["ota"] for d in fleet.devices if d.id not in in_stage)
    fleet.client.post(f"/api/rollouts/{ro['id']}/resume", headers=fleet.admin)
    assert all(fleet.upload(d)["ota"] for d in fleet.devices if d.id not in in_stage)


def test_target_by_tag_and_one_active_rollout_per_device(fleet: Fleet) -> None:
    ro = fleet.rollout(target={"tag": "north"}, stages=[100])
    assert ro["counts"]["pending"] == 10
    r = fleet.client.post("/api/rollouts", headers=fleet.admin,
                          json={"release": "1.1.0", "target": {"all": True}})
    assert r.status_code == 409 and "already in an active rollout" in r.json()["detail"]
    fleet.client.post(f"/api/rollouts/{ro['id']}/abort", headers=fleet.admin)
    assert fleet.rollout(stages=[100])["counts"]["pending"] == 20


def test_pacing_limits_offers_per_minute(fleet: Fleet) -> None:
    fleet.rollout(stages=[100], per_minute=3)
    offers = [fleet.upload(d)["ota"] for d in fleet.devices]
    assert sum(1 for o in offers if o) == 3


def test_auto_halt_on_failures_stops_offering(fleet: Fleet) -> None:
    ro = fleet.rollout(stages=[100], max_failure_pct=50, min_devices=4, max_failures=None)
    first = fleet.devices[:4]
    for d in first:
        assert fleet.upload(d)["ota"]
    for d in first[:2]:
        fleet.report(d, "1.0.0", ("1.1.0", "rolled_back", "crashed: boom"))
    fleet.report(first[2], "1.1.0", ("1.1.0", "confirmed", ""))
    r = fleet.detail(ro["id"])
    assert r["state"] == "active"  # 2 of 3 finished failed, but fewer than min_devices
    fleet.report(first[3], "1.0.0", ("1.1.0", "failed", "battery 3300 mV below"))
    r = fleet.detail(ro["id"])
    assert r["state"] == "halted" and "3 of 4 devices that finished failed" in r["reason"], r
    assert not any(fleet.upload(d)["ota"] for d in fleet.devices[4:])
    why = {d["device_id"]: d["reason"] for d in r["devices"]}
    assert why[first[3].id] == "battery 3300 mV below"


def test_pause_resume_abort(fleet: Fleet) -> None:
    ro = fleet.rollout(stages=[100])
    base = f"/api/rollouts/{ro['id']}"
    assert fleet.client.post(base + "/pause", headers=fleet.admin).json()["state"] == "paused"
    assert not fleet.upload(fleet.devices[0])["ota"]
    assert fleet.client.post(base + "/resume", headers=fleet.admin).json()["state"] == "active"
    offer = fleet.upload(fleet.devices[0])["ota"]
    assert offer
    assert fleet.client.post(base + "/abort", headers=fleet.admin).json()["state"] == "aborted"
    assert fleet.client.post(base + "/resume", headers=fleet.admin).status_code == 409
    d = fleet.devices[0]
    got = fleet.client.get("/api/ota/releases/1.1.0/manifest.json", headers={
        "X-Mizumori-Device": str(d.id), "X-Mizumori-Ota-Token": offer["token"]})
    assert got.status_code == 403  # an aborted offer downloads nothing


def test_downloads_need_the_offer_token_and_support_ranges(fleet: Fleet) -> None:
    fleet.rollout(stages=[100])
    d, other = fleet.devices[0], fleet.devices[1]
    offer = fleet.upload(d)["ota"]
    url = "/api/ota/releases/1.1.0/files/station/app.mpy"
    mine = {"X-Mizumori-Device": str(d.id), "X-Mizumori-Ota-Token": offer["token"]}
    whole = fleet.client.get(url, headers=mine)
    assert whole.status_code == 200 and whole.content == FILES["station/app.mpy"]
    part = fleet.client.get(url, headers={**mine, "Range": "bytes=100-"})
    assert part.status_code == 206 and part.content == FILES["station/app.mpy"][100:]
    assert part.headers["content-range"] == "bytes 100-899/900"
    tail = fleet.client.get(url, headers={**mine, "Range": "bytes=-10"})
    assert tail.content == FILES["station/app.mpy"][-10:]
    assert fleet.client.get(url, headers={**mine, "Range": "bytes=900-"}).status_code == 416
    assert fleet.client.get(url, headers={**mine, "Range": "lines=1-2"}).status_code == 416
    sig = fleet.client.get("/api/ota/releases/1.1.0/manifest.sig", headers=mine).text
    raw = fleet.client.get("/api/ota/releases/1.1.0/manifest.json", headers=mine).content
    KEY.public_key().verify(bytes.fromhex(sig), raw)  # the exact signed bytes
    stolen = {"X-Mizumori-Device": str(other.id), "X-Mizumori-Ota-Token": offer["token"]}
    assert fleet.client.get(url, headers=stolen).status_code == 403
    # a newer reply re-issues the token; the old one stops working
    new = fleet.upload(d)["ota"]
    assert fleet.client.get(url, headers=mine).status_code == 403
    assert fleet.client.get(url, headers={**mine, "X-Mizumori-Ota-Token": new["token"]}
                            ).status_code == 200


def test_reports_move_states_forward_with_history(fleet: Fleet) -> None:
    ro = fleet.rollout(stages=[100])
    d = fleet.devices[0]
    fleet.upload(d)
    assert fleet.report(d, "1.0.0", ("1.1.0", "downloading", ""),
                        ("1.1.0", "downloaded", "")).json() == {"taken": 2}
    fleet.report(d, "1.0.0", ("1.1.0", "downloading", ""))  # late duplicate: no step back
    state = {x["device_id"]: x["state"] for x in fleet.detail(ro["id"])["devices"]}
    assert state[d.id] == "downloaded"
    fleet.report(d, "1.1.0")  # runs the release: confirmed even if that event was lost
    state = {x["device_id"]: x["state"] for x in fleet.detail(ro["id"])["devices"]}
    assert state[d.id] == "confirmed"
    hist = fleet.client.get(f"/api/devices/{d.id}/ota-events", headers=fleet.admin).json()
    assert [h["state"] for h in hist] == ["offered", "downloading", "downloaded",
                                          "downloading"]
    dev = fleet.client.get(f"/api/devices/{d.id}", headers=fleet.admin).json()
    assert dev["firmware_version"] == "1.1.0"


def test_bad_reports_are_refused(fleet: Fleet) -> None:
    d = fleet.devices[0]
    body = b'{"version": "1.0.0", "events": [{"release": "1.1.0", "state": "exploded"}]}'
    h = d.headers(body)
    r = fleet.client.post("/api/ota/report", content=body, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "bad_report"
    h = d.headers(body)
    h["X-Mizumori-Signature"] = "0" * 64
    assert fleet.client.post("/api/ota/report", content=body, headers=h).json()[
        "code"] == "bad_signature"
    assert fleet.report(d, "1.0.0").status_code == 200
    stale = fleet.client.post("/api/ota/report", content=b"{}", headers=d.headers(b"{}", 1))
    assert stale.status_code == 401 and stale.json()["code"] == "stale_counter"


def test_timeouts_fail_stalled_devices(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    from mizumori_server import clock
    ro = fleet.rollout(stages=[100], timeout_s=3600, max_failure_pct=None)
    d = fleet.devices[0]
    fleet.upload(d)
    later = clock.now() + 7200
    monkeypatch.setattr(clock, "now", lambda: later)
    from mizumori_server.api import ota
    monkeypatch.setattr(ota, "now", lambda: later)
    state = {x["device_id"]: x for x in fleet.detail(ro["id"])["devices"]}
    assert state[d.id]["state"] == "failed" and "no progress in 3600 s" in state[d.id]["reason"]


# --- bounded bundles and reports (issue 16) ------------------------------------------------

def compressed(raw: bytes, kind: str) -> bytes:
    import bz2
    import gzip
    import lzma

    return {"gz": lambda: gzip.compress(raw, 9), "xz": lambda: lzma.compress(raw),
            "bz2": lambda: bz2.compress(raw, 9)}[kind]()


@pytest.mark.parametrize("kind", ["gz", "xz", "bz2"])
def test_a_compressed_bundle_is_refused_before_it_is_inflated(
        app_client: TestClient, admin: dict[str, str], kind: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A decompression bomb: a validly signed release of 12 MiB of zeros compresses to a
    few KiB, far under the 8 MiB upload limit (which counted compressed bytes). Refused
    (415) without inflating it."""
    import tarfile as tarmodule

    big = {"station/app.mpy": bytes(12 * 1024 * 1024)}
    body = compressed(bundle(files=big), kind)
    assert len(body) < 200 * 1024
    opened: list[str] = []
    real_open = tarmodule.open

    def spy(*args: Any, **kwargs: Any) -> Any:
        opened.append(str(kwargs.get("mode", args[1] if len(args) > 1 else "r")))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(tarmodule, "open", spy)
    r = upload(app_client, admin, body)
    assert r.status_code == 415 and "compressed" in r.json()["detail"], r.text
    assert opened == []  # never handed to tarfile, let alone inflated
    assert app_client.get("/api/releases", headers=admin).json() == []
    # the same release as the plain tar `mizumori release build` writes: over the limit
    assert upload(app_client, admin, bundle(files=big)).status_code == 413


def test_bundle_members_are_bounded(app_client: TestClient, admin: dict[str, str]) -> None:
    many = {f"station/m{i}.mpy": b"x" for i in range(1001)}
    r = upload(app_client, admin, bundle(files=many))
    assert r.status_code == 400 and "more than 1000 members" in r.json()["detail"], r.text
    # a sparse member would read back its holes as zeros beyond the bytes sent
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("files/station/app.mpy")
        info.type = tarfile.GNUTYPE_SPARSE
        info.size = 0
        tar.addfile(info)
    r = upload(app_client, admin, out.getvalue())
    assert r.status_code == 400, r.text
    assert app_client.get("/api/releases", headers=admin).json() == []


def test_a_deeply_nested_manifest_is_refused(app_client: TestClient,
                                             admin: dict[str, str]) -> None:
    deep = {"version": "1.1.0", "mpy": "6.3", "files": [], "x": json.loads("[" * 30 + "]" * 30)}
    for depth in (40, 5000, 200000):
        raw = b'{"version": "1.1.0", "mpy": "6.3", "files": [], "x": ' + b"[" * depth + \
            b"]" * depth + b"}"
        sig = KEY.sign(raw).hex().encode()
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for name, data in (("manifest.json", raw), ("manifest.sig", sig)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        r = upload(app_client, admin, out.getvalue())
        assert r.status_code == 422 and "nested deeper" in r.json()["detail"], (depth, r.text)
    assert deep["x"]  # as deep as a manifest may nest is fine (then: lists no files)
    assert "lists no files" in upload(app_client, admin, bundle(manifest=deep)).json()["detail"]


def test_a_deeply_nested_report_is_refused(fleet: Fleet) -> None:
    d = fleet.devices[0]
    for depth in (40, 900, 5000, 8000):  # the body may be 16 KiB
        body = b'{"version": "1.0.0", "events": ' + b"[" * depth + b"]" * depth + b"}"
        r = fleet.client.post("/api/ota/report", content=body, headers=d.headers(body))
        assert r.status_code == 422 and r.json()["code"] == "bad_report", (depth, r.text)
        assert "nested deeper than 32" in r.json()["detail"], r.text
    body = b'{"version": "1.0.0", "events": [], "error": "x\\u0000y"}'
    r = fleet.client.post("/api/ota/report", content=body, headers=d.headers(body))
    assert r.status_code == 422 and r.json()["code"] == "bad_report", r.text
    assert fleet.report(d, "1.0.0").status_code == 200


def test_a_member_with_a_negative_size_is_refused(app_client: TestClient,
                                                  admin: dict[str, str]) -> None:
    """A GNU base-256 size field can be negative: tarfile then steps back to an earlier
    header, and members that overlap the whole upload could be read again and again."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("files/station/app.mpy")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"abcd"))
    raw = bytearray(out.getvalue())
    raw[124:136] = b"\xff" + (256 ** 11 - 512).to_bytes(11, "big")  # size -512, base-256
    raw[148:156] = b" " * 8
    raw[148:155] = b"%06o\x00" % sum(raw[:512])
    r = upload(app_client, admin, bytes(raw))
    assert r.status_code == 400 and "bad size or position" in r.json()["detail"], r.text
    assert app_client.get("/api/releases", headers=admin).json() == []


def test_a_release_carrying_a_trust_bundle_and_its_trust_events(app_client: TestClient,
                                                                 admin: dict[str, str]) -> None:
    """A trust bundle (docs/ota.md, "Changing the CA") is one more signed file, trust.pem,
    served like the others; the station's later word on it ("trust bundle in use", or a
    failed "trust bundle not used") is history and never moves a confirmed device back or
    counts as a failure of the rollout."""
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    files = {**FILES, "trust.pem": pem}
    assert upload(app_client, admin, bundle("1.1.0", files)).status_code == 201
    listed = app_client.get("/api/releases", headers=admin).json()[0]["files"]
    assert "trust.pem" in [f["path"] for f in listed]
    fleet = Fleet(app_client, admin, 1)
    ro = fleet.rollout(stages=[100], max_failures=1)
    d = fleet.devices[0]
    offer = fleet.upload(d)["ota"]
    got = app_client.get(offer["url"] + "files/trust.pem",
                         headers={"X-Mizumori-Device": str(d.id),
                                  "X-Mizumori-Ota-Token": offer["token"]})
    assert got.status_code == 200 and got.content == pem
    assert fleet.report(d, "1.1.0", ("1.1.0", "confirmed", ""),
                        ("1.1.0", "failed", "trust bundle not used: it does not verify the "
                         "server (TLS: …); the station keeps its current CA")).status_code == 200
    r = fleet.detail(ro["id"])
    assert r["state"] == "completed" and r["counts"]["confirmed"] == 1, r
    assert r["counts"]["failed"] == 0
    hist = app_client.get(f"/api/devices/{d.id}/ota-events", headers=admin).json()
    assert "trust bundle not used" in hist[-1]["reason"]
