"""OTA figures: bytes a station downloads for a one-file change against a whole release
(real server, real firmware under MicroPython), and Ed25519 verification time of a
manifest under the MicroPython unix port, with an estimate for an ESP32 at 240 MHz."""

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import httpx
from mizumori_tools import paths, release
from mizumori_tools.fleet import Api, ServerProcess
from mizumori_tools.virtual import ESP32_EPOCH, VirtualStation

ROOT = Path(__file__).resolve().parents[1]
START = 1_790_000_000
WORLD = {"level_mm": 800, "air_temp_c": 15.0, "battery_mv": 3900, "faults": []}

VERIFY = """
import sys, time, binascii
sys.path.insert(0, sys.argv[1])
from station import ed25519
pub, msg, sig = [binascii.unhexlify(x) for x in open(sys.argv[2]).read().split()]
assert ed25519.verify(pub, msg, sig)
n = 10
t0 = time.ticks_us()
for _ in range(n):
    ed25519.verify(pub, msg, sig)
print(time.ticks_diff(time.ticks_us(), t0) // n)
"""


def downloads(tmp: Path) -> tuple[int, int, int, int, int]:
    """(file bytes for a one-file change, files copied, manifest + signature bytes, file
    bytes when every file changed, release size), the station's figures from its
    "downloaded" event."""
    clock = tmp / "clock"
    clock.write_text(str(START))
    key, pub = release.keygen(tmp / "release")
    server = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                            "MIZUMORI_CLOCK_FILE": str(clock), "MIZUMORI_SECRET_KEY": "bench-ota",
                            "MIZUMORI_RELEASE_KEYS_FILE": str(pub)}, cwd=tmp)
    server.prepare({"admin": ("admin", "bench-password-1")})
    server.start()
    try:
        api = Api.login(server.url, "admin", "bench-password-1")
        api.station({"code": "b-1", "name": "b-1", "site_type": "river", "latitude": 33.0,
                     "longitude": 130.0, "mount_height_mm": 5000, "upload_every": 1})
        st = VirtualStation(tmp / "flash", hardware_id="sim-bench-0001")
        st.install_firmware()
        p = api.provision(st.hardware_id, "b-1")
        st.provision(p, server.url, p["config"], release_key=pub.read_text().strip())
        now = START
        results = []
        for version, compiled in (("0.2.0", True), ("0.3.0", False)):
            bundle = release.build(key, tmp / "dist", paths.FIRMWARE, version,
                                   compile_mpy=compiled)
            r = api.http.post("/api/releases", content=bundle.read_bytes())
            r.raise_for_status()
            size = r.json()["size"]
            with tarfile.open(bundle) as tar:
                overhead = sum(m.size for m in tar.getmembers()
                               if m.name.startswith("manifest"))
            api.http.post("/api/rollouts", json={"release": version, "target": {"all": True},
                                                 "stages": [100], "jitter_s": 0}
                          ).raise_for_status()
            for _ in range(3):
                now += 600
                clock.write_text(str(now))
                st.wake(WORLD, now - ESP32_EPOCH)
            events = api.get(f"/api/devices/{p['device_id']}/ota-events")
            why = [e["reason"] for e in events
                   if e["release"] == version and e["state"] == "downloaded"][0]
            got, local = int(why.split()[0]), int(why.split(", ")[1].split()[0])
            results.append((got, local, size, overhead))
    finally:
        server.stop()
    (one, copied, _, overhead), (full, _, full_size, _) = results
    return one, copied, overhead, full, full_size


def verify_us() -> int:
    key = release.Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = json.dumps({"files": [{"path": f"station/m{i}.mpy", "sha256": "ab" * 32,
                                          "size": 1000} for i in range(30)]}).encode()
        f = Path(tmp) / "v.txt"
        f.write_text(" ".join(x.hex() for x in (bytes.fromhex(release.public_hex(key)),
                                                 manifest, key.sign(manifest))))
        script = Path(tmp) / "verify.py"
        script.write_text(VERIFY)
        out = subprocess.run([paths.micropython(), str(script), str(paths.FIRMWARE), str(f)],
                             capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def main() -> None:
    print("OTA (bench/ota.py)")
    with tempfile.TemporaryDirectory(prefix="mizumori-bench-ota-") as tmp:
        try:
            one, copied, overhead, full, size = downloads(Path(tmp))
        except httpx.HTTPError as e:
            sys.exit(f"bench/ota.py: {e}")
    print(f"  one-file change      {one + overhead:8d} B downloaded: {one} B of files + "
          f"{overhead} B manifest and signature; {copied} files copied on the device")
    print(f"  every file changed   {full + overhead:8d} B downloaded (files {full} B of a "
          f"{size} B release)")
    us = verify_us()
    print(f"  Ed25519 verify of a 30-file manifest, MicroPython unix port: {us / 1000:7.1f} ms")
    # Estimate for an ESP32 (LX6, 240 MHz): this host core runs at ~3 GHz (x12.5), is
    # out of order (about x2 per clock on interpreter loops), and MicroPython's bigints
    # use 16-bit digits on 32-bit ports instead of 32-bit ones here (x4 for the
    # schoolbook multiplications that dominate): about x100, and at least x50.
    print(f"  estimate on an ESP32 at 240 MHz (x50..x100, see comment): "
          f"{us * 50 / 1e6:4.1f}..{us * 100 / 1e6:4.1f} s")


if __name__ == "__main__":
    main()
