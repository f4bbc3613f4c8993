"""The city's systems as real clients of a running server: GDAL's OAPIF driver (what QGIS
uses) reads OGC API – Features with bbox and paging, and an asyncua client browses, reads
and subscribes to the OPC UA server following the same database."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID
from device import Device, codec, reading
from helpers import need
from mizumori_tools.fleet import Api, ServerProcess, free_port

STATIONS = [
    ("taku-01", "六角川 多久橋", "river", 33.2886, 130.1100),
    ("shizuoka-01", "静岡 アンダーパス", "underpass", 34.9756, 138.3828),
    ("niigata-01", "新潟 水田", "paddy", 37.9161, 139.0364),
]
TAKU_READINGS = 230  # enough for several pages


class Running:
    def __init__(self, server: ServerProcess, api: Api, devices: dict[str, Device],
                 env: dict[str, str], cwd: Path):
        self.server, self.api, self.devices, self.env, self.cwd = server, api, devices, env, cwd


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A server with three stations: taku-01 with TAKU_READINGS readings ten minutes apart
    (the newest at 2.1 m, the evacuation-decision level), the others with one each."""
    tmp = tmp_path_factory.mktemp("gis")
    env = {"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
           "MIZUMORI_DATA_DIR": str(tmp), "MIZUMORI_SECRET_KEY": "gis-secret"}
    server = ServerProcess(env, cwd=tmp)
    server.prepare({"admin": ("admin", "kawa-kanri-2026")})
    server.start()
    try:
        api = Api.login(server.url, "admin", "kawa-kanri-2026")
        devices = {}
        http = httpx.Client(base_url=server.url, timeout=30)
        for i, (code, name, kind, lat, lon) in enumerate(STATIONS):
            api.station({"code": code, "name": name, "site_type": kind, "latitude": lat,
                         "longitude": lon, "mount_height_mm": 5000, "standby_mm": 1000,
                         "caution_mm": 1500, "evacuation_mm": 2000, "danger_mm": 2500})
            devices[code] = Device(http, api.provision(f"esp32-gis-{i}", code))
        n = TAKU_READINGS
        body = b"".join(reading(k + 1, 800 + k * 1300 // (n - 1), (n - 1 - k) * 600)
                        for k in range(n))
        for start in range(0, len(body), 40 * 18):  # in uploads of 40, as a station does
            assert devices["taku-01"].send(body[start:start + 40 * 18]).status_code == 200
        for code in ("shizuoka-01", "niigata-01"):
            assert devices[code].send(reading(1, 300)).status_code == 200
        yield Running(server, api, devices, env, tmp)
    finally:
        server.stop()


# --- GDAL ---------------------------------------------------------------------------------

def ogr(running: Running, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    need(shutil.which(tool) is not None, f"GDAL's {tool} (Debian's gdal-bin)")
    token = running.api.http.headers["Authorization"]
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"Authorization: {token}", "CPL_DEBUG": "ON",
           "GDAL_HTTP_TIMEOUT": "30"}
    done = subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_gdal_lists_and_reads_the_collections(running: Running) -> None:
    url = f"OAPIF:{running.server.url}/ogc"
    layers = ogr(running, "ogrinfo", "-ro", "-q", url).stdout
    assert "stations" in layers and "observations" in layers
    summary = ogr(running, "ogrinfo", "-ro", "-so", "-al", url, "stations").stdout
    assert "Feature Count: 3" in summary
    assert "Geometry: Point" in summary
    for field in ("code", "level_m", "alert_level", "status", "last_seen"):
        assert f"{field}:" in summary, summary
    one = ogr(running, "ogrinfo", "-ro", "-al", "-q", url, "stations",
              "-spat", "129.5", "32.5", "131.5", "34.0").stdout  # Kyushu only
    assert "taku-01" in one and "shizuoka-01" not in one and "niigata-01" not in one
    assert "alert_level (Integer) = 3" in one  # 2.1 m: evacuation decision
    assert "POINT (130.11 33.2886)" in one


def test_gdal_pages_through_observations_with_a_bbox(running: Running,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "taku.geojson"
    done = ogr(running, "ogr2ogr", "-f", "GeoJSON", str(out),
               f"OAPIF:{running.server.url}/ogc", "observations", "-oo", "PAGE_SIZE=50",
               "-spat", "129.5", "32.5", "131.5", "34.0")
    features = json.loads(out.read_text())["features"]
    assert len(features) == TAKU_READINGS
    assert {f["properties"]["station"] for f in features} == {"taku-01"}
    assert len({f["properties"]["time"] for f in features}) == TAKU_READINGS
    fetched = [line for line in done.stderr.splitlines()
               if "/ogc/collections/observations/items" in line and "bbox=" in line]
    # GDAL sent the bbox to the server and followed the next links page by page
    offsets = {part for line in fetched for part in line.split("&") if "offset=" in part}
    assert len(offsets) >= TAKU_READINGS // 50, done.stderr[-3000:]


# --- OPC UA ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def opcua(running: Running) -> Iterator[str]:
    port = free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}/mizumori/"
    proc = subprocess.Popen([sys.executable, "-m", "mizumori_tools.cli", "opcua",
                             "--endpoint", endpoint, "--poll", "0.2"],
                            env={**os.environ, **running.env}, cwd=running.cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        asyncio.run(wait_for_endpoint(endpoint, proc))
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(30)


async def wait_for_endpoint(endpoint: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            async with Client(endpoint, timeout=5) as client:
                stations = await client.nodes.objects.get_child(
                    [f"{await ns(client)}:Stations"])
                if len(await stations.get_children()) == len(STATIONS):
                    return
        except (TimeoutError, OSError, ua.UaError):
            pass
        await asyncio.sleep(0.2)
    proc.terminate()
    raise AssertionError("the OPC UA server did not come up: "
                         + (proc.stderr.read().decode()[-3000:] if proc.stderr else ""))


async def ns(client: Client) -> int:
    return int(await client.get_namespace_index("urn:mizumori:stations"))


def test_opcua_browse_read_and_subscribe(running: Running, opcua: str) -> None:
    asyncio.run(browse_read_and_subscribe(running, opcua))


async def browse_read_and_subscribe(running: Running, endpoint: str) -> None:
    async with Client(endpoint, timeout=10) as client:
        idx = await ns(client)
        stations = await client.nodes.objects.get_child([f"{idx}:Stations"])
        names = sorted([(await n.read_browse_name()).Name
                        for n in await stations.get_children()])
        assert names == ["niigata-01", "shizuoka-01", "taku-01"]
        taku = await stations.get_child([f"{idx}:taku-01"])
        variables = {str((await v.read_browse_name()).Name): v
                     for v in await taku.get_children()}
        assert {"WaterLevel", "AlertLevel", "Battery", "Temperature", "LastSeen", "Status",
                "Name"} <= set(variables)
        assert await variables["Name"].read_value() == "六角川 多久橋"
        level = client.get_node(f"ns={idx};s=taku-01.WaterLevel")  # stable node ids
        assert await level.read_value() == pytest.approx(2.1)
        assert await variables["AlertLevel"].read_value() == 3
        assert await variables["Battery"].read_value() == pytest.approx(3.7)
        assert await variables["Status"].read_value() == "online"
        latest = running.api.get("/api/stations/taku-01")["latest"]
        seen = await variables["LastSeen"].read_value()
        assert int(seen.timestamp()) == latest["last_seen"]
        # read-only for SCADA
        with pytest.raises(ua.UaStatusCodeError):
            await level.write_value(ua.DataValue(ua.Variant(9.9, ua.VariantType.Double)))

        changes: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        class Handler:
            async def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
                await changes.put((node.nodeid.Identifier, val))

        sub = await client.create_subscription(100, Handler())
        await sub.subscribe_data_change([level, variables["AlertLevel"]])
        initial = {await changes.get(), await changes.get()}  # the current values first
        assert ("taku-01.AlertLevel", 3) in initial
        # a new reading arrives through the API: 2.6 m, the danger level
        dev = running.devices["taku-01"]
        assert dev.send(codec.encode_full(TAKU_READINGS + 1, 0, 2600, 3650, 0, 17.0, 70.0,
                                          1000.0, 1.5)).status_code == 200
        got: dict[str, Any] = {}
        while len(got) < 2:
            node, val = await asyncio.wait_for(changes.get(), 30)
            got[node] = val
        assert got["taku-01.WaterLevel"] == pytest.approx(2.6)
        assert got["taku-01.AlertLevel"] == 4
        await sub.delete()


def test_opcua_signed_and_encrypted(running: Running, opcua: str, tmp_path: Path) -> None:
    asyncio.run(encrypted_read(opcua, tmp_path))


async def encrypted_read(endpoint: str, tmp: Path) -> None:
    cert, key = tmp / "scada-cert.der", tmp / "scada-key.pem"
    await setup_self_signed_certificate(
        key, cert, "urn:city:scada", "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"countryName": "JP", "organizationName": "City SCADA", "commonName": "scada"})
    client = Client(endpoint, timeout=10)
    client.application_uri = "urn:city:scada"
    await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
    async with client:
        idx = await ns(client)
        status = await client.get_node(f"ns={idx};s=niigata-01.Status").read_value()
        assert status == "online"
        assert await client.get_node(f"ns={idx};s=niigata-01.WaterLevel").read_value() == \
            pytest.approx(0.3)
