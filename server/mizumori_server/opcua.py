"""An OPC UA server (asyncua) mirroring every station for SCADA/HMI: `mizumori opcua`
(docs/gis.md, "OPC UA").

It follows the database, not one API worker: every poll it reads each station's latest
state (one row per station, as the map does) and writes what changed, so it works beside
any number of API workers, and a station added through the API appears by itself. The
address space is read-only; node ids are stable strings (ns=<urn:mizumori:stations>;
s=<station code>.<Variable>) so that an HMI's tags survive a restart."""

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from asyncua import Node, Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy.orm import Session, sessionmaker

from mizumori_server import clock, queries

log = logging.getLogger("mizumori.opcua")
NAMESPACE = "urn:mizumori:stations"
APPLICATION_URI = "urn:mizumori:opcua"
DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:4840/mizumori/"
SECURITY = {  # --security names → asyncua's policies
    "none": ua.SecurityPolicyType.NoSecurity,
    "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}
DEFAULT_SECURITY = ("none", "sign", "encrypt")
D, I32, S, T = (ua.VariantType.Double, ua.VariantType.Int32, ua.VariantType.String,
                ua.VariantType.DateTime)
# What an unknown value holds beside its BadNoData status (a Variant cannot be empty).
PLACEHOLDER = {D: 0.0, I32: 0, S: "", T: ua.DateTime(1601, 1, 1, tzinfo=dt.UTC)}


def _utc(t: int | None) -> ua.DateTime | None:
    return None if t is None else ua.DateTime.fromtimestamp(t, dt.UTC)


def _m(mm: int | None) -> float | None:
    return None if mm is None else mm / 1000


# Each variable: name, type, its value from a queries.latest() row, and the time it holds
# for (the reading's, for measured values).
VARIABLES: Sequence[tuple[str, ua.VariantType, Callable[[dict[str, Any]], Any], bool]] = (
    ("WaterLevel", D, lambda r: _m(r["level_mm"]), True),  # metres above station datum
    ("AlertLevel", I32, lambda r: r["alert_level"], False),  # river level reached, 0..4
    ("Battery", D, lambda r: _m(r["battery_mv"]), True),  # volts
    ("Temperature", D, lambda r: r["temperature_c"], True),  # °C
    ("LastSeen", T, lambda r: _utc(r["last_seen"]), False),
    ("Status", S, lambda r: r["status"], False),  # online | late | offline | unseen
)


class Mirror:
    """The Stations folder and one object per station, updated from the database."""

    def __init__(self, server: Server, idx: int, folder: Node):
        self.server = server
        self.idx = idx
        self.folder = folder
        self.nodes: dict[str, dict[str, Node]] = {}
        self.values: dict[tuple[str, str], Any] = {}

    async def add(self, row: dict[str, Any]) -> None:
        code = row["code"]
        i = self.idx
        obj = await self.folder.add_object(f"ns={i};s={code}", f"{i}:{code}")
        try:
            await obj.add_property(f"ns={i};s={code}.Name", f"{i}:Name", row["name"])
            await obj.add_property(f"ns={i};s={code}.SiteType", f"{i}:SiteType",
                                   row["site_type"])
            nodes = {}
            for name, vtype, _, _ in VARIABLES:
                nodes[name] = await obj.add_variable(
                    f"ns={i};s={code}.{name}", f"{i}:{name}",
                    data_value(None, vtype, None), vtype)
        except Exception:  # all or nothing, so that the next poll can add it again
            await self.server.delete_nodes([obj], recursive=True)
            raise
        self.nodes[code] = nodes

    async def sync(self, rows: list[dict[str, Any]]) -> int:
        """Bring the address space to these stations' state; the number of values written."""
        written = 0
        for row in rows:
            if row["code"] not in self.nodes:
                await self.add(row)
            for name, vtype, value_of, measured in VARIABLES:
                value = value_of(row)
                key = (row["code"], name)
                if key in self.values and self.values[key] == value:
                    continue
                await self.nodes[row["code"]][name].write_value(
                    data_value(value, vtype, _utc(row["t"]) if measured else None))
                self.values[key] = value
                written += 1
        gone = set(self.nodes) - {r["code"] for r in rows}
        for code in gone:
            await self.server.delete_nodes([await self.folder.get_child(f"{self.idx}:{code}")],
                                           recursive=True)
            del self.nodes[code]
            self.values = {k: v for k, v in self.values.items() if k[0] != code}
        return written


def data_value(value: Any, vtype: ua.VariantType, source: ua.DateTime | None) -> ua.DataValue:
    """A value with its source time; an unknown one (no reading yet, no echo) is
    BadNoData rather than a made-up number."""
    now = ua.DateTime.now(dt.UTC)
    if value is None:
        return ua.DataValue(ua.Variant(PLACEHOLDER[vtype], vtype), StatusCode=ua.StatusCode(
            ua.UInt32(ua.StatusCodes.BadNoData)), SourceTimestamp=source or now,
            ServerTimestamp=now)
    return ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=source or now,
                        ServerTimestamp=now)


def read_latest(sessions: sessionmaker[Session], late_after: float,
                offline_after: float) -> list[dict[str, Any]]:
    with sessions() as session:
        return queries.latest(session, clock.now(), late_after, offline_after)


async def certificate(folder: Path, endpoint: str) -> tuple[Path, Path]:
    """The server's own certificate and key for the signed endpoints: made once (self-signed,
    renewed when invalid) under folder; a client must trust it (docs/gis.md)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "server-cert.der", folder / "server-key.pem"
    host = endpoint.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    await setup_self_signed_certificate(
        key, cert, APPLICATION_URI, host, [ExtendedKeyUsageOID.SERVER_AUTH,
                                     ExtendedKeyUsageOID.CLIENT_AUTH],
        {"countryName": "JP", "organizationName": "Mizumori", "commonName": "Mizumori OPC UA"})
    return cert, key


async def serve(sessions: sessionmaker[Session], late_after: float, offline_after: float,
                endpoint: str = DEFAULT_ENDPOINT, security: Sequence[str] = DEFAULT_SECURITY,
                cert_dir: Path = Path("data/opcua"), poll_s: float = 2.0,
                stop: asyncio.Event | None = None) -> None:
    """Run until stop is set (or forever)."""
    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    server.set_server_name("Mizumori water levels")
    await server.set_application_uri(APPLICATION_URI)
    server.set_security_policy([SECURITY[s] for s in security])
    if set(security) - {"none"}:
        cert, key = await certificate(cert_dir, endpoint)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
    idx = await server.register_namespace(NAMESPACE)
    folder = await server.nodes.objects.add_folder(f"ns={idx};s=Stations", f"{idx}:Stations")
    mirror = Mirror(server, idx, folder)
    stop = stop or asyncio.Event()
    async with server:
        log.info("OPC UA on %s (security: %s)", endpoint, ", ".join(security))
        while not stop.is_set():
            try:
                rows = await asyncio.to_thread(read_latest, sessions, late_after,
                                               offline_after)
                await mirror.sync(rows)
            except Exception:  # the database restarting must not end the server
                log.exception("reading the stations failed; trying again")
            try:
                await asyncio.wait_for(stop.wait(), poll_s)
            except TimeoutError:
                pass
