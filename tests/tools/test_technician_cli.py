"""The `mizumori` commands around the server that a technician or an administrator types
(issue 18): replacing a station's device only when asked, the secret key commands, resetting
a password, one line for a bad database URL or OpenSSL's jargon, the human sentences of
`device flash`/`provision`, and waiting for a provisioned station's first report."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import one_clear_line
from mizumori_tools import device
from mizumori_tools.fleet import Api, ServerProcess, free_port
from mizumori_tools.virtual import ESP32_EPOCH, CPythonStation

ADMIN = ("admin", "kawa-kanri-2026")
KEY_A = "technician-cli-key-a-0123456789abcdef"
KEY_B = "technician-cli-key-b-0123456789abcdef"


def mizumori(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MIZUMORI_")}
    return subprocess.run([sys.executable, "-m", "mizumori_tools.cli", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd,
                          input=stdin, env={**base, **(env or {})})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("server")
    s = ServerProcess({"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp / 'm.db'}",
                       "MIZUMORI_SECRET_KEY": KEY_A}, cwd=tmp)
    s.prepare({"admin": ("admin", ADMIN[1]), "tech": ("technician", "gishi-kawa-2026")})
    s.start()
    yield s
    s.stop()


# --- device provision --replace ------------------------------------------------------------

def test_provisioning_over_a_working_device_needs_replace(server: ServerProcess,
                                                         tmp_path: Path) -> None:
    admin = Api.login(server.url, *ADMIN)
    admin.station({"code": "taku-20", "name": "replace", "site_type": "river",
                   "latitude": 33.28, "longitude": 130.11, "mount_height_mm": 5000})
    old = admin.provision("sim-00000000a1d0", "taku-20")
    port = tmp_path / "ttyUSB0"  # the server refuses before anything is sent to the board
    port.write_text("")
    args = ("device", "provision", "--port", str(port), "--server", server.url, "--station",
            "taku-20", "--user", "tech", "--hardware-id", "sim-00000000be11",
            "--wifi-ssid", "w", "--wifi-password", "p")
    env = {"MIZUMORI_PASSWORD": "gishi-kawa-2026"}
    line = one_clear_line(mizumori(*args, env=env))
    assert (f"station taku-20 already has device {old['device_id']} (hardware id "
            "sim-00000000a1d0), which has never reported") in line
    assert line.endswith("run again with --replace to replace it")
    assert admin.get("/api/stations/taku-20")["device"]["hardware_id"] == "sim-00000000a1d0"

    done = mizumori(*args, "--replace", env=env)  # registered, then the (fake) port fails
    assert "already has device" not in done.stderr
    assert admin.get("/api/stations/taku-20")["device"]["hardware_id"] == "sim-00000000be11"


def test_the_conflict_says_when_the_device_last_reported() -> None:
    now = 1_790_000_000
    text = device.station_has_device(
        {"code": "station_has_device", "station": "taku-01",
         "current_device": {"device_id": 7, "hardware_id": "esp32-a4cf12345678",
                            "last_report": now - 3 * 3600, "last_report_at": "…"}},
        "taku-01")
    assert "device 7 (hardware id esp32-a4cf12345678), which last reported 2026-" in text
    assert device._ago(now - 3 * 3600, now).endswith("UTC (3 h ago)")
    assert device._ago(now - 90, now).endswith("(90 s ago)")


# --- OpenSSL's words ------------------------------------------------------------------------

def test_https_to_an_http_port_is_said_plainly(server: ServerProcess, tmp_path: Path) -> None:
    port = tmp_path / "ttyUSB0"
    port.write_text("")
    line = one_clear_line(mizumori(
        "device", "provision", "--port", str(port), "--server",
        server.url.replace("http://", "https://"), "--station", "taku-20", "--token", "t",
        "--hardware-id", "sim-1", "--wifi-ssid", "w", "--wifi-password", "p"))
    assert "the server does not speak HTTPS on that port" in line
    assert "WRONG_VERSION_NUMBER" not in line and "SSL" not in line


# --- waiting for the first report ------------------------------------------------------------

def test_waiting_for_the_first_report(server: ServerProcess, tmp_path: Path) -> None:
    admin = Api.login(server.url, *ADMIN)
    admin.station({"code": "taku-21", "name": "wait", "site_type": "river",
                   "latitude": 33.28, "longitude": 130.11, "mount_height_mm": 5000,
                   "upload_every": 1})
    dev = admin.provision("sim-00000000a17e", "taku-21")
    token = admin.http.headers["Authorization"].split()[1]
    started = time.monotonic()
    assert not device.wait_for_report(server.url, token, dev["device_id"], dev["last_seq"],
                                      1.5, poll_s=0.5)
    assert time.monotonic() - started < 5  # bounded
    station = CPythonStation(tmp_path / "flash", hardware_id="sim-00000000a17e")
    station.provision(dev, server.url, dev["config"])
    station.wake({"level_mm": 1200}, int(time.time()) - ESP32_EPOCH, 0, "power_on")
    assert device.wait_for_report(server.url, token, dev["device_id"], dev["last_seq"], 20)


def test_wait_report_is_bounded() -> None:
    line = one_clear_line(mizumori(
        "device", "provision", "--port", "/dev/null", "--server", "http://127.0.0.1:9",
        "--station", "x", "--token", "t", "--wait-report", "86400"))
    assert "--wait-report takes 1 to 3600 seconds" in line


def test_the_last_sentences_say_what_happened_and_what_next() -> None:
    text = device.flash_sentence("/dev/ttyUSB0", {"copied": 31, "unchanged": 0, "removed": 2})
    assert text.startswith("Flashed /dev/ttyUSB0: 31 file(s) copied, 0 already up to date, "
                           "2 removed; every file verified. Next: `mizumori device provision")
    assert "nothing copied" in device.flash_sentence(
        "/dev/ttyUSB0", {"copied": 0, "unchanged": 31, "removed": 0})
    result = {"device_id": 4, "hardware_id": "esp32-a4cf12345678", "station": "taku-01",
              "readings_before_provisioning_dropped": 0, "replaced": False}
    text = device.provision_sentence("/dev/ttyUSB0", result)
    assert text.startswith("Provisioned esp32-a4cf12345678 on /dev/ttyUSB0 as device 4 at "
                           "station taku-01")
    assert "Next: press reset" in text
    assert "first report reached the server" in device.provision_sentence(
        "/dev/ttyUSB0", result, True, 60)
    assert "No report reached the server in 60 s" in device.provision_sentence(
        "/dev/ttyUSB0", result, False, 60)


def test_info_has_units_in_a_fixed_order() -> None:
    lines = device.info_lines({"wakes": 431, "queue_depth": 12, "free_flash_bytes": 1490944,
                               "firmware": "0.2.0", "reset_cause": "wdt", "last_error": "",
                               "new_key": 1})
    assert [x.split()[0] for x in lines] == ["firmware", "reset_cause", "last_error",
                                             "free_flash_bytes", "queue_depth", "wakes",
                                             "new_key"]
    table = dict(x.split(None, 1) for x in lines)
    assert table["free_flash_bytes"] == "1490944 bytes (1.42 MB)"
    assert table["queue_depth"] == "12 readings waiting to be sent"
    assert table["wakes"] == "431 since power-on"


# --- the secret key ---------------------------------------------------------------------------

def test_keys_new_prints_a_fresh_key() -> None:
    a, b = mizumori("keys", "new"), mizumori("keys", "new")
    assert a.returncode == b.returncode == 0
    assert len(a.stdout.strip()) >= 40 and a.stdout != b.stdout


def test_keys_rotate(tmp_path: Path) -> None:
    env = {"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
           "MIZUMORI_SECRET_KEY": KEY_B}
    assert mizumori("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    line = one_clear_line(mizumori("keys", "rotate", env=env, cwd=tmp_path))
    assert line.startswith("mizumori keys rotate: MIZUMORI_OLD_SECRET_KEYS is empty")
    done = mizumori("keys", "rotate", env={**env, "MIZUMORI_OLD_SECRET_KEYS": KEY_A},
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("re-sealed under the new key: 0 in devices")


def test_serve_with_workers_exits_non_zero_when_the_key_is_refused(tmp_path: Path) -> None:
    env = {"MIZUMORI_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    assert mizumori("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    done = mizumori("serve", "--port", str(free_port()), "--workers", "2", env=env,
                    cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "mizumori: MIZUMORI_SECRET_KEY is not set" in done.stderr


# --- users --------------------------------------------------------------------------------------

def test_reset_password(tmp_path: Path) -> None:
    from mizumori_server import security
    from sqlalchemy import create_engine, text

    data = str(tmp_path)
    assert mizumori("db", "upgrade", "--data", data).returncode == 0
    done = mizumori("user", "create", "tanaka", "--role", "technician", "--password",
                    "gishi-kawa-2026", "--data", data)
    assert done.returncode == 0, done.stderr

    line = one_clear_line(mizumori("user", "reset-password", "yamada", "--password",
                                   "new-kawa-2027", "--data", data))
    assert "no user yamada" in line and "tanaka" in line
    line = one_clear_line(mizumori("user", "reset-password", "tanaka", "--password",
                                   "tanaka", "--data", data))
    assert "choose another" in line  # the same policy as `user create`
    done = mizumori("user", "reset-password", "tanaka", "--data", data,
                    stdin="new-kawa-2027\nnot-the-same\n")  # asked twice (no terminal here)
    assert done.returncode == 2 and done.stderr.splitlines()[-1] == (
        "mizumori: the two passwords differ: nothing changed")

    done = mizumori("user", "reset-password", "tanaka", "--password", "new-kawa-2027",
                    "--data", data)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("new password set for technician tanaka")
    with create_engine(f"sqlite:///{tmp_path / 'mizumori.db'}").connect() as conn:
        stored = conn.execute(text("select password_hash from users where username = "
                                   "'tanaka'")).scalar_one()
    assert security.verify_password(stored, "new-kawa-2027")
    assert not security.verify_password(stored, "gishi-kawa-2026")


# --- a bad database URL ---------------------------------------------------------------------

@pytest.mark.parametrize("url, says", [
    ("not a url", "is not one it can use"),
    ("mysql://u:hunter2@127.0.0.1/x", "needs a driver that is not installed"),
    ("postgresql+psycopg://u:hunter2@127.0.0.1:1/x", "cannot use the database"),
])
@pytest.mark.parametrize("command", [("db", "upgrade"), ("user", "create", "sato",
                                                          "--password", "kawa-kanri-2026"),
                                     ("serve", "--port", "1")])
def test_a_bad_database_url_is_one_line(tmp_path: Path, url: str, says: str,
                                        command: tuple[str, ...]) -> None:
    line = one_clear_line(mizumori(*command, env={"MIZUMORI_DATABASE_URL": url,
                                                  "MIZUMORI_SECRET_KEY": KEY_A},
                                   cwd=tmp_path))
    assert line.startswith(f"mizumori {' '.join(command[:2 if command[0] != 'serve' else 1])}"
                           ": ") and says in line, line
    assert "hunter2" not in line
