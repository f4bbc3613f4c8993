"""Build, sign, upload, roll out; the stations update over real HTTP (or refuse, or roll
back) and tell the server. Every station is the real firmware under MicroPython, booting
from its flash slots through boot.py."""

import json
import re
import shutil
import sqlite3
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mizumori_tools import paths, release
from mizumori_tools.virtual import VirtualStation
from otarig import OtaRig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[OtaRig]:
    r = OtaRig(tmp_path)
    yield r
    r.server.stop()


def rounds(rig: OtaRig, stations: list[VirtualStation], n: int, step_s: int = 600,
           **world: object) -> None:
    for _ in range(n):
        rig.tick(step_s)
        for st in stations:
            assert rig.wake(st, world) is not None


def running(st: VirtualStation) -> str:
    """The version in the slot boot.py starts (from the station's flash)."""
    slot = json.loads((st.flash / "slot.json").read_text())["good"]
    return str(json.loads((st.flash / slot / "manifest.json").read_text())["version"])


def events(rig: OtaRig, st: VirtualStation) -> list[dict]:
    return list(rig.api.get(f"/api/devices/{st.device_id}/ota-events"))  # type: ignore


def test_happy_path_update_confirmed_and_running(rig: OtaRig) -> None:
    st = rig.add_station(1)
    assert rig.wake(st, cause="power_on") is not None
    assert rig.device(st)["firmware_version"] == "0.1.0"
    rig.upload(rig.build("0.2.0"))
    ro = rig.rollout("0.2.0")
    rounds(rig, [st], 1)  # offered, downloaded, installed, rebooting
    assert "trial" in (st.flash / "slot.json").read_text()
    rounds(rig, [st], 2)  # the trial reports, confirms
    assert rig.device(st)["firmware_version"] == "0.2.0"
    assert (st.flash / "slot.json").read_text() == '{"good": "b"}'
    assert (st.flash / "b" / "confirmed").exists()
    states = [e["state"] for e in events(rig, st)]
    assert states == ["offered", "downloading", "downloaded", "installed", "confirmed"]
    done = rig.api.get(f"/api/rollouts/{ro['id']}")
    assert done["state"] == "completed" and done["counts"]["confirmed"] == 1
    # and the next update goes back into slot a, copying what did not change
    rig.upload(rig.build("0.3.0"))
    rig.rollout("0.3.0")
    rounds(rig, [st], 3)
    assert rig.device(st)["firmware_version"] == "0.3.0"
    assert (st.flash / "slot.json").read_text() == '{"good": "a"}'


def _db(rig: OtaRig, sql: str, *args: object) -> None:
    with sqlite3.connect(rig.tmp / "m.db") as conn:
        conn.execute(sql, args)


def test_refusals_are_reported_with_their_reason(rig: OtaRig) -> None:
    low = rig.add_station(1)
    # its radio still works at 3300 mV (radio_min_mv, 3450 by default, would skip the radio
    # and the update together): the update's own battery check has to refuse
    cfg = json.loads((low.flash / "config.json").read_text())
    (low.flash / "config.json").write_text(json.dumps({**cfg, "radio_min_mv": 3200}))
    small = rig.add_station(2)
    other_key = rig.add_station(3, key="11" * 32)
    for st in rig.stations:
        rig.wake(st, cause="power_on")
    rig.upload(rig.build("0.2.0"))
    rig.rollout("0.2.0")
    rig.tick(600)
    rig.wake(low, {"battery_mv": 3300})
    rig.wake(small, {"flash_free": 20000})
    rig.wake(other_key)
    rounds(rig, rig.stations, 1)  # the next upload reports the refusal
    why = {st.hardware_id: [e for e in events(rig, st) if e["state"] == "failed"]
           for st in rig.stations}
    # the station reads its 3300 mV through the ESP32 ADC: +-60 mV at the 2:1 divider's pin
    m = re.match(r"battery (\d+) mV below", why[low.hardware_id][0]["reason"])
    assert m and abs(int(m.group(1)) - 3300) <= 120, why[low.hardware_id]
    assert "not enough flash: 20000 bytes free" in why[small.hardware_id][0]["reason"]
    assert "bad signature" in why[other_key.hardware_id][0]["reason"]
    for st in rig.stations:
        assert rig.device(st)["firmware_version"] == "0.1.0"
        assert not (st.flash / "b" / "manifest.json").exists()


def test_compromised_server_cannot_install_tampered_files_or_manifest(rig: OtaRig) -> None:
    st = rig.add_station(1)
    rig.wake(st, cause="power_on")
    rig.upload(rig.build("0.2.0"))
    # what a compromised server could do after the upload: change a file (one the station
    # downloads: unchanged ones are copied from its own slot), or the manifest
    # (|| makes TEXT of a BLOB: cast back, or the server reads a text column)
    _db(rig, "UPDATE release_files SET content = CAST(content || x'00' AS BLOB) "
             "WHERE path = 'station/__init__.mpy'")
    rig.rollout("0.2.0")
    rounds(rig, [st], 2)
    failed = [e for e in events(rig, st) if e["state"] == "failed"]
    assert "sha256 mismatch for station/__init__.mpy" in failed[0]["reason"]
    rig.upload(rig.build("0.2.1"))
    with sqlite3.connect(rig.tmp / "m.db") as conn:
        (raw,) = conn.execute("SELECT manifest FROM releases "
                              "WHERE version = '0.2.1'").fetchone()
        conn.execute("UPDATE releases SET manifest = ? WHERE version = '0.2.1'",
                     (raw.replace(b'"min_battery_mv":3400', b'"min_battery_mv":3000'),))
    rig.rollout("0.2.1")
    rounds(rig, [st], 2)
    failed = [e for e in events(rig, st) if e["state"] == "failed"]
    assert "bad signature" in failed[1]["reason"]
    assert rig.device(st)["firmware_version"] == "0.1.0"
    assert (st.flash / "slot.json").read_text() == '{"good": "a"}'


def test_wrong_mpy_version_is_refused(rig: OtaRig, monkeypatch: pytest.MonkeyPatch) -> None:
    st = rig.add_station(1)
    rig.wake(st, cause="power_on")
    monkeypatch.setattr(release, "mpy_version", lambda: "6.1")
    rig.upload(rig.build("0.2.0"))
    rig.rollout("0.2.0")
    rounds(rig, [st], 2)
    failed = [e for e in events(rig, st) if e["state"] == "failed"]
    assert "built for mpy 6.1, this firmware loads 6.3" in failed[0]["reason"]


def test_release_that_crashes_rolls_back_everywhere_and_halts(rig: OtaRig,
                                                              tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(paths.FIRMWARE, broken)
    app = broken / "station" / "app.py"
    app.write_text(app.read_text() + "\nraise RuntimeError('boom at import')\n")
    fleet = [rig.add_station(n) for n in range(1, 9)]
    for st in fleet:
        rig.wake(st, cause="power_on")
    rig.upload(rig.build("0.2.0", broken))
    ro = rig.rollout("0.2.0", per_minute=1, max_failures=2, max_failure_pct=None)
    rounds(rig, fleet, 10, step_s=60)
    r = rig.api.get(f"/api/rollouts/{ro['id']}")
    assert r["state"] == "halted" and "auto-halt: 2 devices failed" in r["reason"], r
    tried = [d for d in r["devices"] if d["state"] != "pending"]
    assert r["counts"]["pending"] > 0  # halted before reaching everyone
    rounds(rig, fleet, 6, step_s=60)  # those mid-trial finish rolling back by themselves
    r = rig.api.get(f"/api/rollouts/{ro['id']}")
    assert {d["state"] for d in r["devices"] if d["state"] != "pending"} == {"rolled_back"}
    assert len([d for d in r["devices"] if d["state"] != "pending"]) == len(tried)
    for st in fleet:
        assert rig.device(st)["firmware_version"] == "0.1.0"
        assert running(st) == "0.1.0"
    back = [e for e in events(rig, fleet[0]) if e["state"] == "rolled_back"]
    assert back and "boom at import" in back[0]["reason"]


def test_release_commands(rig: OtaRig, tmp_path: Path) -> None:
    """What a release engineer types: keygen refuses to overwrite a key, build prints the
    bundle, upload shows progress and reports the server's refusals in one line."""
    import subprocess
    import sys

    def mizumori(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mizumori_tools.cli", *args],
                              capture_output=True, text=True, cwd=tmp_path)

    again = mizumori("release", "keygen", "--out", str(rig.key.with_suffix("")))
    assert again.returncode == 2 and "not overwriting" in again.stderr
    built = mizumori("release", "build", "--key", str(rig.key), "--version", "0.9.0",
                     "--out", str(tmp_path / "d"))
    assert built.returncode == 0, built.stderr
    bundle = built.stdout.strip()
    token = rig.api.http.headers["Authorization"].split()[1]
    up = mizumori("release", "upload", bundle, "--server", rig.server.url, "--token", token)
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["version"] == "0.9.0" and "bytes" in up.stderr
    dup = mizumori("release", "upload", bundle, "--server", rig.server.url, "--token", token)
    assert dup.returncode == 2 and "(409)" in dup.stderr and "immutable" in dup.stderr
    other, _ = release.keygen(tmp_path / "other")
    foreign = release.build(other, tmp_path / "f", version="0.9.1")
    refused = mizumori("release", "upload", str(foreign), "--server", rig.server.url,
                       "--token", token)
    assert refused.returncode == 2 and "does not verify" in refused.stderr
    # a trust bundle from the command line; a server's own key in it is refused
    from mizumori_tools import certs

    pki = certs.make(tmp_path / "pki")
    with_ca = mizumori("release", "build", "--key", str(rig.key), "--version", "0.9.2",
                       "--out", str(tmp_path / "t"), "--ca", str(pki["ca"]))
    assert with_ca.returncode == 0, with_ca.stderr
    with tarfile.open(with_ca.stdout.strip()) as tar:
        assert "files/trust.pem" in tar.getnames()
    key = mizumori("release", "build", "--key", str(rig.key), "--version", "0.9.3",
                   "--out", str(tmp_path / "k"), "--ca", str(pki["key"]))
    assert key.returncode == 2 and "PRIVATE KEY" in key.stderr


def test_a_release_changes_the_ca_and_the_station_follows_the_server_to_it(
        tmp_path: Path) -> None:
    """docs/ota.md, "Changing the CA": a station trusting CA1 gets a release carrying CA1 and
    CA2; once its trial is confirmed and the bundle verifies the server, it trusts both; the
    server moves to a certificate from CA2 and the station keeps reporting. A station left
    out of the rollout, trusting CA1 alone, is cut off: the bundle is what carried it over."""
    from mizumori_tools import certs
    from mizumori_tools.fleet import Api, ServerProcess
    from otarig import EPOCH, START, WORLD

    pki1 = certs.make(tmp_path / "pki1", start=START)
    pki2 = certs.make(tmp_path / "pki2", start=START)  # the city's new CA
    clock = tmp_path / "clock"
    clock.write_text(str(START))
    key, pub = release.keygen(tmp_path / "keys" / "release")
    env = {"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
           "MIZUMORI_CLOCK_FILE": str(clock), "MIZUMORI_SECRET_KEY": "ca-secret",
           "MIZUMORI_RELEASE_KEYS_FILE": str(pub)}
    server = ServerProcess(env, cwd=tmp_path, tls=pki1)
    server.prepare({"admin": ("admin", "kawa-kanri-2026")})
    server.start()
    now = START
    try:
        login = Api.login(server.url, "admin", "kawa-kanri-2026", ca=str(pki1["ca"]))
        token = login.http.post("/api/tokens", json={"name": "ca"}).json()["token"]
        api = Api(server.url, token, ca=str(pki1["ca"]))
        stations = []
        ids: dict[str, int] = {}
        for code in ("ca-01", "ca-02"):
            api.station({"code": code, "name": code, "site_type": "river",
                         "latitude": 33.28, "longitude": 130.11, "mount_height_mm": 5000,
                         "upload_every": 1})
            st = VirtualStation(tmp_path / code, hardware_id=f"sim-{code}")
            st.install_firmware()
            p = api.provision(st.hardware_id, code)
            st.provision(p, server.url, p["config"], ca=pki1["ca"],
                         release_key=pub.read_text().strip(), clock=START - EPOCH)
            ids[code] = p["device_id"]
            stations.append(st)
        moving, left = stations

        def wake(st: VirtualStation, cause: str = "deepsleep") -> None:
            assert st.wake(dict(WORLD), now - EPOCH, 0, cause) is not None

        def tick(s: int) -> None:
            nonlocal now
            now += s
            clock.write_text(str(now))

        for st in stations:
            wake(st, "power_on")
            assert st.state()["uplink"] == "", st.state()
        bundle = release.build(key, tmp_path / "dist", paths.FIRMWARE, "0.2.0",
                               ca=[pki1["ca"], pki2["ca"]])
        r = api.http.post("/api/releases", content=bundle.read_bytes())
        assert r.status_code == 201, r.text
        assert "trust.pem" in [f["path"] for f in r.json()["files"]]
        r = api.http.post("/api/rollouts", json={
            "release": "0.2.0", "target": {"stations": ["ca-01"]}, "stages": [100],
            "jitter_s": 0, "per_minute": 1000, "min_devices": 1})
        assert r.status_code == 201, r.text
        for _ in range(3):  # offered, installed; the trial confirms, the bundle verifies
            tick(600)
            for st in stations:
                wake(st)
        assert running(moving) == "0.2.0"
        trusted = (moving.flash / "ca.pem").read_bytes()
        assert trusted == pki1["ca"].read_bytes() + pki2["ca"].read_bytes()
        assert (left.flash / "ca.pem").read_bytes() == pki1["ca"].read_bytes()
        tick(600)
        wake(moving)  # reports the trust event
        why = [e["reason"] for e in api.get(f"/api/devices/{ids['ca-01']}/ota-events")]
        assert "trust bundle in use: 2 CA certificates" in why, why
    finally:
        server.stop()

    # The city moves the server to a certificate from its new CA.
    server = ServerProcess(env, cwd=tmp_path, port=server.port, tls=pki2)
    server.start()
    try:
        api = Api(server.url, token, ca=str(pki2["ca"]))

        def stored(code: str) -> int:
            r = api.get(f"/api/stations/{code}/readings", start=START - 60, end=now + 60,
                        max_points=100000)
            return len(r["points"])

        before = {code: stored(code) for code in ("ca-01", "ca-02")}
        for _ in range(3):
            tick(600)
            for st in stations:
                wake(st)
        assert moving.state()["uplink"] == "", moving.state()
        assert stored("ca-01") >= before["ca-01"] + 3
        assert stored("ca-02") == before["ca-02"]  # CA1 alone does not verify CA2's server
        assert "TLS" in left.state()["uplink"], left.state()
    finally:
        server.stop()


def test_a_trust_bundle_that_does_not_parse_is_refused_at_build_and_at_install(
        rig: OtaRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`release build --ca` refuses what is not a CA certificate; a bundle that got into a
    signed release anyway is refused by the station before the slot is complete, with an OTA
    event, and the station goes on reporting on its old version and trust."""
    from mizumori_tools import certs

    pki = certs.make(tmp_path / "pki")
    bad = tmp_path / "bad.pem"
    for data, words in [(b"", "no PEM certificate"),
                        (pki["key"].read_bytes(), "holds PRIVATE KEY"),
                        (pki["ca"].read_bytes() + pki["key"].read_bytes(), "not only"),
                        (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                         "not a PEM certificate"),
                        (pki["cert"].read_bytes(), "not a CA certificate")]:
        bad.write_bytes(data)
        with pytest.raises(release.ReleaseError, match=words):
            release.build(rig.key, tmp_path / "d", version="0.9.9", ca=[bad])
    with pytest.raises(release.ReleaseError, match="No such file"):
        release.build(rig.key, tmp_path / "d", version="0.9.9", ca=[tmp_path / "none.pem"])

    st = rig.add_station(1)
    rig.wake(st, cause="power_on")
    monkeypatch.setattr(release, "trust_bundle",
                        lambda files: b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n"
                                      b"-----END CERTIFICATE-----\n")
    rig.upload(rig.build("0.2.0", ca=[bad]))
    rig.rollout("0.2.0")
    rounds(rig, [st], 3)
    failed = [e for e in events(rig, st) if e["state"] == "failed"]
    assert failed and "trust bundle trust.pem refused" in failed[0]["reason"], failed
    assert rig.device(st)["firmware_version"] == "0.1.0" and running(st) == "0.1.0"
    assert not (st.flash / "b" / "manifest.json").exists()  # never bootable
    assert st.state()["uplink"] == ""
