"""deploy/: the systemd unit, the proxy examples and the Prometheus alert rules load in their
own tools where those are installed, and the rules name only metrics the server exports;
with two workers, /metrics adds every worker's counters up (multiprocess mode)."""

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, which schemathesis brings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from device import Device, batch, reading
from fastapi.testclient import TestClient
from mizumori_tools.fleet import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "mizumori-rules.yml"
# Series in the rules that come from Prometheus itself or the blackbox exporter.
EXTERNAL = {"up", "probe_success"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (the Debian package is not one the test suite "
                    "installs; see docs/operations.md, 'Deployment')")
    return path


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mizumori.example.city.jp")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def with_certs(text: str, folder: Path) -> str:
    cert, key = self_signed(folder)
    return (text.replace("/etc/mizumori/tls/fullchain.pem", str(cert))
            .replace("/etc/mizumori/tls/privkey.pem", str(key)))


# --- the unit and the proxies ---------------------------------------------------------------

def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    # the unit names the installed command: a stand-in where the checkout would be
    (tmp_path / "bin").mkdir()
    stub = tmp_path / "bin" / "mizumori"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    unit = tmp_path / "mizumori.service"
    unit.write_text((DEPLOY / "mizumori.service").read_text()
                    .replace("/opt/mizumori/.venv/bin/mizumori", str(stub)))
    r = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    text = unit.read_text()
    assert "EnvironmentFile=/etc/mizumori/mizumori.env" in text
    assert "Environment=MIZUMORI_DATA_DIR=/var/lib/mizumori" in text
    assert "PROMETHEUS_MULTIPROC_DIR=/run/mizumori/metrics" in text


def test_the_nginx_example_passes_nginx_t(tmp_path: Path) -> None:
    nginx = tool("nginx")
    site = tmp_path / "mizumori.conf"
    site.write_text(with_certs((DEPLOY / "nginx-mizumori.conf").read_text(), tmp_path))
    conf = tmp_path / "nginx.conf"
    temp = "".join(f"  {kind}_temp_path {tmp_path}/{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
                    f"events {{}}\nhttp {{\n  access_log off;\n{temp}  include {site};\n}}\n")
    r = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "test is successful" in r.stderr


def test_the_caddyfile_validates(tmp_path: Path) -> None:
    caddy = tool("caddy")
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(with_certs((DEPLOY / "Caddyfile").read_text(), tmp_path))
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path)}
    r = subprocess.run([caddy, "validate", "--config", str(caddyfile), "--adapter",
                        "caddyfile"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Valid configuration" in r.stdout + r.stderr


def test_the_example_environment_file_names_only_known_settings() -> None:
    from mizumori_server import keys

    names = {line.split("=", 1)[0].lstrip("#") for line in
             (DEPLOY / "mizumori.env").read_text().splitlines()
             if re.match(r"#?[A-Z_]+=", line)}
    unknown = keys.unknown_settings({n: "" for n in names}, None)
    assert unknown == [], unknown
    assert "FORWARDED_ALLOW_IPS" in names and "MIZUMORI_SECRET_KEY" in names


# --- the alert rules ------------------------------------------------------------------------

@pytest.fixture
def dev(app_client: TestClient, admin: dict[str, str], station: dict[str, object]) -> Device:
    r = app_client.post("/api/devices/provision", headers=admin,
                        json={"hardware_id": "esp32-0001", "station": "taku-01"})
    return Device(app_client, r.json())


def exported(text: str) -> set[str]:
    """Every metric name an exposition holds: series and families without samples yet."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.add(m[1])
            if m[2] == "counter":
                names.add(m[1] + "_total")
            if m[2] == "histogram":
                names |= {m[1] + s for s in ("_bucket", "_sum", "_count")}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_every_rule_names_metrics_the_server_exports(dev: Device,
                                                     app_client: TestClient) -> None:
    assert dev.send(reading(1) + batch.encode_status(3, 3, 0, 4, -67)).status_code == 200
    names = exported(app_client.get("/metrics").text)
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {"MizumoriFleetSilent", "MizumoriManyStationsLate",
                                           "MizumoriWebhooksFailing", "MizumoriDiskFilling"}
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        named = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?=[{\[)\s<>=!]|$)", rule["expr"]))
        metrics_named = {n for n in named if n.startswith("mizumori_")} | (named & EXTERNAL)
        assert metrics_named, rule["expr"]
        missing = metrics_named - names - EXTERNAL
        assert not missing, f"{rule['alert']}: {missing} not exported"


def test_the_rules_load_in_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed: only Debian's `prometheus` package ships it "
                    "(a whole Prometheus server, 96 MB), which the suite does not install; "
                    "the rules are parsed and their metrics checked by "
                    "test_every_rule_names_metrics_the_server_exports")
    r = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# --- two workers ----------------------------------------------------------------------------

def test_metrics_add_up_across_two_workers(tmp_path: Path) -> None:
    """What `mizumori serve --workers 2` does (metrics.prepare_multiprocess, then uvicorn's
    workers): whichever worker answers /metrics, the counters are every worker's sum."""
    env = {**os.environ, "MIZUMORI_DATA_DIR": str(tmp_path),
           "MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'mizumori.db'}",
           "MIZUMORI_SECRET_KEY": "two-workers-test-key", "MIZUMORI_BACKGROUND": "false"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run([sys.executable, "-m", "mizumori_tools.cli", "db", "upgrade"], env=env,
                   check=True, cwd=tmp_path, capture_output=True)
    port = free_port()
    serve = ("import sys, uvicorn\n"
             "from mizumori_server import metrics\n"
             "print(metrics.prepare_multiprocess(2), flush=True)\n"
             "uvicorn.run('mizumori_server.main:app', host='127.0.0.1', port=int(sys.argv[1]),"
             " workers=2, log_level='warning')\n")
    proc = subprocess.Popen([sys.executable, "-c", serve, str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        folder = proc.stdout.readline().strip()
        assert Path(folder).is_dir()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        for _ in range(40):  # a new connection each: the workers share them out
            assert httpx.get(url + "/readyz").status_code == 200

        def readyz_count() -> float:
            text = httpx.get(url + "/metrics").text
            return sum(float(v) for v in re.findall(
                r'^mizumori_http_requests_total\{[^}]*route="/readyz"[^}]*\} (\S+)$', text,
                re.M))

        while readyz_count() < 40 and time.monotonic() < deadline:
            time.sleep(0.1)  # the last request's count lands just after its answer
        counts = [readyz_count() for _ in range(8)]
        assert counts == [40.0] * 8, counts
        pids = {p.name.split("_")[-1] for p in Path(folder).glob("*.db")}
        assert len(pids) >= 2, pids  # both workers wrote their values
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not Path(folder).exists()  # the private folder goes with the server
