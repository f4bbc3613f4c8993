"""The `mizumori` command. Subcommands arrive with the parts they drive."""

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from mizumori_tools import paths


def demo(args: argparse.Namespace) -> int:
    """The server with a virtual fleet living through a flood (what `make run` starts)."""
    from mizumori_tools import simfleet

    env: dict[str, str] = {}
    if args.open_data:
        env["MIZUMORI_OPEN_DATA"] = "true"
    if args.release_key:
        keys = []
        for name in args.release_key:
            try:
                keys.append(read_public_keys(Path(name)))
            except (OSError, ValueError) as e:
                print(f"mizumori demo: --release-key {name}: {e}", file=sys.stderr)
                return 2
        env["MIZUMORI_RELEASE_KEYS"] = ",".join(keys)
    check_server_settings(env)
    return simfleet.run(simfleet.TAKU, args.scenario, args.hours, args.speed, port=args.port,
                        work=Path(args.data).absolute(), server_env=env,
                        prog="mizumori demo")


def check_server_settings(env: dict[str, str]) -> None:
    """The settings a server started by this command (the demo's, a fleet's) will have:
    this environment's MIZUMORI_* with `env` over it and the database, data folder and key
    the command sets itself. A bad one raises pydantic's ValidationError here, which main()
    prints as one line per setting, instead of the server dying at its start."""
    from mizumori_server.settings import Settings

    given: dict[str, Any] = {k.removeprefix("MIZUMORI_").lower(): v for k, v in env.items()}
    Settings(**given, data_dir=Path("."), database_url="sqlite://", secret_key="checked")


# Settings whose value is never printed (a key, a password in a database URL, a token).
_SECRET_WORDS = ("KEY", "SECRET", "PASSWORD", "TOKEN", "DATABASE_URL")


def settings_problems(e: BaseException) -> list[str] | None:
    """One line per bad setting of a pydantic ValidationError from Settings, naming its
    environment variable (MIZUMORI_…), the value when it is not a secret, and the problem;
    None for any other exception."""
    from pydantic import ValidationError

    if not isinstance(e, ValidationError) or e.title != "Settings":
        return None
    lines = []
    for err in e.errors():
        field = str(err["loc"][0]) if err.get("loc") else "?"
        name = "MIZUMORI_" + field.upper()
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        value = err.get("input")
        if err.get("type") == "missing":
            lines.append(f"{name}: must be set")
            continue
        shown = ""
        if isinstance(value, (str, int, float)) and not any(
                w in name for w in _SECRET_WORDS) and str(value) not in msg:
            shown = f"={str(value)!r}"
        lines.append(f"{name}{shown}: {msg[:1].lower() + msg[1:]}")
    return lines


def read_public_keys(path: Path) -> str:
    """The Ed25519 public keys (hex, one a line, # comments) in a .pub file, comma-separated.
    """
    import re

    keys = [line.split("#", 1)[0].strip().lower() for line in path.read_text().splitlines()]
    keys = [k for k in keys if k]
    bad = [k for k in keys if not re.fullmatch(r"[0-9a-f]{64}", k)]
    if bad or not keys:
        raise ValueError("not a public key file (64 hex digits a line, from "
                         "`mizumori release keygen`)")
    return ",".join(keys)


def _data_settings(data: str | None) -> "Any":
    """The server's settings, with --data DIR: the SQLite database in DIR, as the server (and
    the demo, `mizumori demo --data DIR`) started on that folder uses it."""
    from mizumori_server.settings import Settings, get_settings

    if data is None:
        return get_settings()
    return Settings(data_dir=Path(data).absolute(), database_url="")


def sim_fleet(args: argparse.Namespace) -> int:
    """N virtual stations through a scenario, against their own server or a given one."""
    import os
    from pathlib import Path

    from mizumori_tools import simfleet

    if args.n < 1:
        print("mizumori sim fleet: N must be at least 1", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("MIZUMORI_TOKEN")
    if args.server and not token:
        print("mizumori sim fleet: --server needs --token (or MIZUMORI_TOKEN) of an admin",
              file=sys.stderr)
        return 2
    if not args.server:
        check_server_settings({})
    return simfleet.run(simfleet.sites(args.n), args.scenario, args.hours, args.speed,
                        args.engine, args.port, args.server, token,
                        Path(args.clock_file) if args.clock_file else None, args.power_cuts,
                        Path(args.data) if args.data else None)


def serve(args: argparse.Namespace) -> int:
    """The fleet server under uvicorn; settings from MIZUMORI_* variables or .env."""
    import uvicorn
    from mizumori_server import db, keys
    from mizumori_server.settings import get_settings

    settings = get_settings()
    engine = _engine(settings.effective_database_url())
    if args.migrate or settings.auto_migrate:
        db.upgrade(engine)
    try:
        db.require_migrated(engine)
        # the key checks the workers make too, once here: with --workers N a refusal in the
        # workers alone would leave this process to exit 0
        keys.startup(settings, engine)
    except db.NotMigrated as e:
        print(f"mizumori serve: {e}", file=sys.stderr)
        return 2
    except keys.Refused as e:
        print(f"mizumori: {e}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    # With more than one worker the counters are kept in files every worker adds up
    # (docs/operations.md, "Monitoring"): the folder is made (or emptied) before they start.
    from mizumori_server import metrics

    metrics.prepare_multiprocess(args.workers)
    uvicorn.run("mizumori_server.main:app", host=args.host or settings.host,
                port=args.port or settings.port, workers=args.workers,
                ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                log_level="info", access_log=False,
                timeout_graceful_shutdown=15)  # a stuck client must not hold a restart
    return 0


MAX_WAIT_S = 3600  # `device provision --wait-report`'s bound


class BadDatabase(Exception):
    """The database URL cannot be used: the message is one line saying why."""


def shown_url(url: str) -> str:
    """A database URL as it may be printed: without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparsable: say nothing of what it holds but its scheme
        return url.split("://", 1)[0] + "://…" if "://" in url else repr(url[:40])


def database_error(e: BaseException) -> str:
    """The one-line reason of a database error (the driver's first line, without SQL)."""
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    return first.split(" (Background on this error")[0].strip()


def _engine(url: str) -> "Any":
    """db.make_engine, or BadDatabase for a URL it cannot use (unparsable, an unknown
    dialect, a driver that is not installed, a folder it cannot create)."""
    from mizumori_server import db
    from sqlalchemy.exc import ArgumentError

    try:
        return db.make_engine(url)
    except ArgumentError as e:
        raise BadDatabase(f"the database URL {shown_url(url)} is not one it can use: "
                          f"{database_error(e)} (MIZUMORI_DATABASE_URL: e.g. "
                          "postgresql+psycopg://user:password@host/mizumori, or "
                          "sqlite:////path/mizumori.db)") from None
    except ImportError as e:
        raise BadDatabase(f"the database URL {shown_url(url)} needs a driver that is not "
                          f"installed ({e.name or e})") from None
    except OSError as e:
        raise BadDatabase(f"cannot create the database's folder for {shown_url(url)}: "
                          f"{e.strerror or e}") from None


def opcua(args: argparse.Namespace) -> int:
    """The OPC UA server for SCADA, following the fleet server's database."""
    import asyncio
    import logging

    from mizumori_server import db
    from mizumori_server import opcua as ua_server
    from mizumori_server.settings import get_settings

    security = [s.strip() for s in args.security.split(",") if s.strip()]
    unknown = [s for s in security if s not in ua_server.SECURITY]
    if unknown or not security:
        print(f"mizumori opcua: --security takes {','.join(ua_server.SECURITY)}, "
              f"not {args.security!r}", file=sys.stderr)
        return 2
    settings = get_settings()
    engine = db.make_engine(settings.effective_database_url())
    try:
        db.require_migrated(engine)
    except db.NotMigrated as e:
        print(f"mizumori opcua: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    try:
        asyncio.run(ua_server.serve(
            db.sessions(engine), settings.late_after_intervals,
            settings.offline_after_intervals, args.endpoint, security,
            settings.data_dir / "opcua", args.poll))
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
    return 0


def db_upgrade(args: argparse.Namespace) -> int:
    from mizumori_server import db

    url = _data_settings(args.data).effective_database_url()
    db.upgrade(_engine(url))
    print(f"database at the newest migration: {shown_url(url)}")
    return 0


# `db prune`'s table, in this order: each kind pruned and the setting that keeps it (0: kept
# for ever; None: always pruned).
PRUNED_KINDS = ("sessions", "api_tokens", "login_attempts", "deliveries", "readings")


def _pruned_what(settings: "Any") -> dict[str, str]:
    return {
        "sessions": "dashboard sessions, once expired",
        "api_tokens": f"API tokens expired more than {settings.token_grace_days} day(s) ago "
                      "(MIZUMORI_TOKEN_GRACE_DAYS)",
        "login_attempts": "failed-login records older than a minute",
        "deliveries": f"webhook deliveries done more than {settings.delivery_retention_days} "
                      "day(s) ago (MIZUMORI_DELIVERY_RETENTION_DAYS)",
        "readings": f"readings measured more than {settings.reading_retention_days} day(s) "
                    "ago (MIZUMORI_READING_RETENTION_DAYS)",
    }


def db_prune(args: argparse.Namespace) -> int:
    """What the background loop prunes (docs/operations.md, "Data retention"), now, once."""
    import json

    from mizumori_server import clock, db, prune

    settings = _data_settings(args.data)
    engine, where = _user_database(args)
    try:
        done = prune.prune(db.sessions(engine), settings, clock.now())
    finally:
        engine.dispose()
    if args.json:  # a kind the settings keep for ever: null
        print(json.dumps({kind: done.get(kind) for kind in PRUNED_KINDS}))
        return 0
    print(f"pruned {sum(done.values())} row(s) in {where}:")
    what = _pruned_what(settings)
    for kind in PRUNED_KINDS:
        if kind in done:
            print(f"  {kind:15s} {done[kind]:>8d}  {what[kind]}")
        else:
            setting = what[kind].rsplit("(", 1)[1].rstrip(")")
            print(f"  {kind:15s} {'kept':>8s}  kept for ever ({setting}=0)")
    return 0


def _size(n: int) -> str:
    """A file size for people: 812 bytes, 1.4 MB."""
    if n < 1024:
        return f"{n} bytes"
    x = n / 1024
    for unit in ("KB", "MB"):
        if x < 1024:
            return f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} GB"


def db_backup(args: argparse.Namespace) -> int:
    """A consistent copy of the SQLite database while the server runs (db.backup: VACUUM
    INTO); one line and exit status 2 when it cannot be taken."""
    import sqlite3

    from mizumori_server import db
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    url = _data_settings(args.data).effective_database_url()
    dest = Path(args.file).absolute()
    parsed = make_url(url) if "://" in url else None
    source = parsed.database if parsed is not None and parsed.get_backend_name() == "sqlite" \
        else None
    if source and source != ":memory:" and not Path(source).exists():
        raise BadDatabase(f"no database at {source} (nothing to back up; --data DIR names "
                          "the folder of a server or demo)")
    engine = _engine(url)
    try:
        size = db.backup(engine, dest)
    except db.BackupError as e:
        print(f"mizumori db backup: {e}", file=sys.stderr)
        return 2
    except (OSError, SQLAlchemyError) as e:
        print(f"mizumori db backup: cannot write {dest}: {database_error(e)}",
              file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    try:
        with sqlite3.connect(f"file:{dest}?mode=ro", uri=True) as c:
            n = int(c.execute("SELECT count(*) FROM readings").fetchone()[0])
            stations = int(c.execute("SELECT count(*) FROM stations").fetchone()[0])
        what = f"{n} reading(s) of {stations} station(s)"
    except sqlite3.Error:  # a database before the first migration: no tables yet
        what = "the database (no readings table)"
    print(f"backed up {what} from {shown_url(url)} to {dest} ({_size(size)}); restore: "
          "stop the server, put it in place of mizumori.db and remove mizumori.db-wal and "
          "-shm")
    return 0


def _user_database(args: argparse.Namespace) -> "tuple[Any, str]":
    """(engine, where) of the users' database (--data DIR or the server's settings);
    BadDatabase (one line) when it cannot be used."""
    from mizumori_server import db

    url = _data_settings(args.data).effective_database_url()
    if args.data and not (Path(args.data) / "mizumori.db").exists():
        raise BadDatabase(f"no database in {args.data} (is it the folder of a running demo "
                          "or server? `mizumori demo` prints it)")
    engine = _engine(url)
    try:
        db.require_migrated(engine)
    except db.NotMigrated as e:
        engine.dispose()
        raise BadDatabase(str(e)) from None
    return engine, shown_url(url).split("@")[-1]


def _new_password(args: argparse.Namespace, prompt: str) -> str | None:
    """The password from --password, else asked (twice); None (said why) when refused."""
    import getpass

    from mizumori_server.security import password_problem

    password: str = args.password or getpass.getpass(prompt)
    if not args.password and getpass.getpass("again: ") != password:
        print("mizumori: the two passwords differ: nothing changed", file=sys.stderr)
        return None
    problem = password_problem(password, args.username)
    if problem:
        print(f"mizumori: the password {problem}: choose another", file=sys.stderr)
        return None
    return password


def user_create(args: argparse.Namespace) -> int:
    from mizumori_server import db
    from mizumori_server.api.people import create
    from mizumori_server.models import User
    from sqlalchemy import select

    password = _new_password(args, f"password for {args.username}: ")
    if password is None:
        return 2
    engine, where = _user_database(args)
    try:
        with db.transaction(db.sessions(engine)) as session:
            if session.scalars(select(User).where(User.username == args.username)).first():
                print(f"mizumori: user {args.username} exists in {where}", file=sys.stderr)
                return 1
            create(session, args.username, password, args.role)
    finally:
        engine.dispose()
    print(f"created {args.role} {args.username} in {where}; they can log in now")
    return 0


def user_reset_password(args: argparse.Namespace) -> int:
    """A new password for a user (a forgotten one, or the first admin's lost at a demo):
    the same policy as `user create`; their login sessions end (API tokens stay)."""
    from mizumori_server import db, security
    from mizumori_server.models import ApiToken, User
    from sqlalchemy import delete, select

    engine, where = _user_database(args)
    try:
        with db.transaction(db.sessions(engine)) as session:
            user = session.scalars(select(User).where(User.username == args.username)).first()
            if user is None:
                names = session.scalars(select(User.username).order_by(User.username)
                                        .limit(20)).all()
                print(f"mizumori user reset-password: no user {args.username} in {where} "
                      f"(users there: {', '.join(names) or 'none'}; "
                      "`mizumori user create` makes one)", file=sys.stderr)
                return 2
            password = _new_password(args, f"new password for {args.username}: ")
            if password is None:
                return 2
            user.password_hash = security.hash_password(password)
            ended = db.rowcount(session.execute(delete(ApiToken).where(
                ApiToken.user_id == user.id, ApiToken.kind == "session")))
    finally:
        engine.dispose()
    print(f"new password set for {user.role} {args.username} in {where}; "
          f"{ended} login session(s) ended, API tokens kept; "
          + ("the account is disabled: an admin enables it in the dashboard"
             if user.disabled else "they can log in now"))
    return 0


def keys_cmd(args: argparse.Namespace) -> int:
    """The server's secret key: a fresh one, or re-sealing every secret under a new one."""
    from mizumori_server import keys
    from mizumori_server.settings import get_settings

    if args.keys_command == "new":
        print(keys.new_key())
        return 0
    try:
        print(keys.rotate_from_settings(get_settings()))
    except keys.Refused as e:
        print(f"mizumori keys rotate: {e}", file=sys.stderr)
        return 2
    return 0


def _server_token(args: argparse.Namespace) -> str:
    """An API token for the fleet server: a login with --user (the password from
    MIZUMORI_PASSWORD or asked), else --token or MIZUMORI_TOKEN."""
    import getpass
    import os

    from mizumori_tools import device

    token: str = args.token or os.environ.get("MIZUMORI_TOKEN", "")
    if args.user:
        token = device.login(args.server, args.user, os.environ.get(
            "MIZUMORI_PASSWORD") or getpass.getpass(f"password for {args.user}: "), args.ca)
    if not token:
        raise device.DeviceError("log in with --user NAME, or give an API token: --token or "
                                 "MIZUMORI_TOKEN")
    return token


def device_cmd(args: argparse.Namespace) -> int:
    """The technician's commands; errors are one clear line, exit status 2."""
    import json

    from mizumori_tools import device

    try:
        if args.device_command == "flash":
            flashed = device.flash(args.port, not args.source,
                                   out=sys.stderr if args.json else sys.stdout)
            print(json.dumps(flashed) if args.json
                  else device.flash_sentence(args.port, flashed))
        elif args.device_command == "provision":
            if args.wait_report is not None and not 0 < args.wait_report <= MAX_WAIT_S:
                raise device.DeviceError(f"--wait-report takes 1 to {MAX_WAIT_S} seconds")
            wifi = device.wifi_settings(args.wifi_ssid, args.wifi_password, args.wifi_ip,
                                        args.wifi_netmask, args.wifi_gateway, args.wifi_dns)
            token = _server_token(args)
            result = device.provision(args.port, args.server, token, args.station,
                                      args.device_server, args.hardware_id, wifi, args.ca,
                                      args.release_key, args.lorawan, args.transport,
                                      args.replace)
            arrived = None
            if args.wait_report is not None:
                if not args.json:
                    print(f"Registered as device {result['device_id']}. Press reset on the "
                          "board now (or power-cycle it): waiting up to "
                          f"{args.wait_report:g} s for its first report…", flush=True)
                arrived = device.wait_for_report(args.server, token, result["device_id"],
                                                 result["last_seq"], args.wait_report, args.ca)
            if args.json:
                print(json.dumps({**result, "first_report": arrived}))
            else:
                print(device.provision_sentence(args.port, result, arrived, args.wait_report
                                                or 0))
            return 1 if arrived is False else 0
        elif args.device_command == "selftest":
            staff = None if args.staff_gauge is None else device.staff_mm(args.staff_gauge)
            report = device.selftest(args.port, staff, staff_tolerance(args))
            print(json.dumps(report) if args.json
                  else "\n".join(device.selftest_lines(report)))
            if staff is not None and not report["staff_gauge"]["passed"]:
                return 1
        elif args.device_command == "calibrate":
            kind = "scale" if args.scale else "check" if args.check_only else "offset"
            done = device.calibrate(args.port, args.staff_gauge, kind, args.server,
                                    _server_token(args) if args.server else None,
                                    args.station, args.ca, args.force)
            print(json.dumps(done) if args.json
                  else device.calibrate_sentence(args.port, done, args.station))
            if kind == "check" and abs(done["residual_mm"]) > staff_tolerance(args):
                return 1
        elif args.device_command == "info":
            state = device.info(args.port)
            print(json.dumps(state) if args.json else "\n".join(device.info_lines(state)))
        elif args.device_command == "check":
            from mizumori_tools import check

            staff = None if args.staff_gauge is None else device.staff_mm(args.staff_gauge)
            return check.cli(args.port, args.loop_points, args.loop_tolerance, args.yes,
                             args.json, staff, staff_tolerance(args))
        else:
            return device.console(args.port, args.raw)
    except device.DeviceError as e:
        print(f"mizumori device: {e}", file=sys.stderr)
        return 2
    return 0


def staff_tolerance(args: argparse.Namespace) -> int:
    """--staff-tolerance CM as mm (1 to 50 cm), or a DeviceError."""
    from mizumori_tools import device

    cm = args.staff_tolerance
    if not 0.1 <= cm <= 50:
        raise device.DeviceError("--staff-tolerance takes 0.1 to 50 cm")
    return round(cm * 10)


def release_cmd(args: argparse.Namespace) -> int:
    """The release engineer's commands; errors are one clear line, exit status 2."""
    import json
    import os
    from pathlib import Path

    from mizumori_tools import release

    try:
        if args.release_command == "keygen":
            key, pub = release.keygen(Path(args.out))
            print(f"private key {key} (keep it off the server; back it up offline)\n"
                  f"public key  {pub}: give it to the server (MIZUMORI_RELEASE_KEYS_FILE) "
                  "and to `mizumori device provision --release-key`")
        elif args.release_command == "build":
            bundle = release.build(Path(args.key), Path(args.out), Path(args.source),
                                   args.version, args.min_battery_mv, not args.py_source,
                                   [Path(c) for c in args.ca or []])
            print(bundle)
        else:
            token = args.token or os.environ.get("MIZUMORI_TOKEN", "")
            if not token:
                raise release.ReleaseError("give an API token: --token or MIZUMORI_TOKEN")
            print(json.dumps(release.upload(Path(args.bundle), args.server, token, args.ca)))
    except (release.ReleaseError, OSError, ValueError) as e:
        print(f"mizumori release: {e}", file=sys.stderr)
        return 2
    return 0


RIG_ACTIONS = {"r": "reset", "s": "service_button", "p": "power_cycle"}
RIG_HELP = ("type r Enter: press reset;  s Enter: hold the service button at a wake;  "
            "p Enter: power-cycle (RTC memory lost);  Ctrl-C stops")


def rig_cmd(args: argparse.Namespace) -> int:
    """A virtual station on a pseudo-terminal, until Ctrl-C or SIGTERM; the technician's
    hands (reset, service button, power) as one-letter lines on standard input."""
    import signal
    import time
    from pathlib import Path

    from mizumori_tools.rig import RigBusy, SerialRig
    from mizumori_tools.virtual import VirtualStation

    station = VirtualStation(Path(args.flash), hardware_id=args.hardware_id)
    try:
        rig = SerialRig(station, Path(args.port), time_scale=args.time_scale)
    except RigBusy as e:
        print(f"mizumori rig: {e}", file=sys.stderr)
        return 2
    # SIGTERM (kill, systemd, a closed terminal's SIGHUP) stops it as Ctrl-C does: the board
    # is killed and the port link removed.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    try:
        rig.start()
        print(f"virtual station on {args.port} (flash: {args.flash})\n{RIG_HELP}", flush=True)
        while True:
            line = sys.stdin.readline()
            if not line:  # no terminal (started in the background): just run
                while True:
                    time.sleep(3600)
            action = RIG_ACTIONS.get(line.strip()[:1].lower())
            if action is None:
                print(RIG_HELP, flush=True)
                continue
            getattr(rig, action)()
            print({"reset": "reset pressed: the board restarts (maintenance window)",
                   "service_button": "service button held: the board wakes into its "
                                     "maintenance window",
                   "power_cycle": "power cycled: RTC memory lost, the board boots as after "
                                  "a power-on"}[action], flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        rig.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    import signal

    # Ctrl-C stops every command, even one started from a script in the background (which
    # starts its children with SIGINT ignored, and Python then installs no handler).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="mizumori", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the server with a virtual fleet through a flood")
    p.add_argument("--hours", type=float, help="simulated hours (default: the scenario's)")
    p.add_argument("--speed", type=float, default=120,
                   help="simulated seconds per real second (default 120)")
    p.add_argument("--port", type=int, default=int(os.environ.get("MIZUMORI_PORT") or 8080),
                   help="the server's port (default $MIZUMORI_PORT or 8080)")
    p.add_argument("--scenario", default="flood", help="tools/mizumori_tools/scenarios/NAME")
    p.add_argument("--data", default=str(paths.REPO / "data" / "demo"),
                   help="its data folder, recreated at each run; one demo per folder "
                        "(default data/demo)")
    p.add_argument("--open-data", action="store_true",
                   help="anonymous read access to /ogc, /open and /cap (MIZUMORI_OPEN_DATA)")
    p.add_argument("--release-key", action="append", metavar="FILE.pub",
                   help="a release engineer's public key the server accepts releases signed "
                        "with (`mizumori release keygen`; repeatable)")
    p.set_defaults(func=demo)
    p = sub.add_parser("sim", help="virtual stations").add_subparsers(
        dest="sim_command", required=True).add_parser(
        "fleet", help="N virtual stations through a scenario against a fleet server")
    p.add_argument("n", type=int, help="how many stations")
    p.add_argument("--scenario", default="flood", help="tools/mizumori_tools/scenarios/NAME")
    p.add_argument("--hours", type=float, help="simulated hours (default: the scenario's)")
    p.add_argument("--speed", type=float, default=120,
                   help="simulated seconds per real second (default 120)")
    p.add_argument("--engine", choices=["micropython", "cpython"], default="micropython",
                   help="run stations after the first (on the rig) under MicroPython or, "
                        "cheaper, in-process under CPython")
    p.add_argument("--power-cuts", type=float, default=0.0,
                   help="chance that a wake is cut short by a power cut (MicroPython)")
    p.add_argument("--port", type=int, default=8080, help="port of the server started")
    p.add_argument("--server", help="use this server instead of starting one")
    p.add_argument("--token", help="its admin API token (default: $MIZUMORI_TOKEN)")
    p.add_argument("--clock-file", help="the server's MIZUMORI_CLOCK_FILE (else real time)")
    p.add_argument("--data", help="the stations' flash directories (default data/sim)")
    p.set_defaults(func=sim_fleet)
    p = sub.add_parser("serve", help="run the fleet server")
    p.add_argument("--host", help="listen address (default MIZUMORI_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default MIZUMORI_PORT or 8080)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--migrate", action="store_true", help="apply migrations first")
    p.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--ssl-keyfile", help="and this private key (PEM)")
    p.set_defaults(func=serve)
    p = sub.add_parser("opcua", help="the OPC UA server for SCADA/HMI (docs/gis.md)")
    p.add_argument("--endpoint", default="opc.tcp://127.0.0.1:4840/mizumori/",
                   help="where it listens (default %(default)s)")
    p.add_argument("--security", default="none,sign,encrypt",
                   help="endpoints offered, comma-separated: none, sign, encrypt "
                        "(Basic256Sha256; default %(default)s)")
    p.add_argument("--poll", type=float, default=2.0,
                   help="seconds between reads of the database (default %(default)s)")
    p.set_defaults(func=opcua)
    p = sub.add_parser("db", help="database administration")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    p = dbsub.add_parser("upgrade", help="apply the Alembic migrations")
    p.add_argument("--data", metavar="DIR", help="the SQLite database in DIR (e.g. data/demo; "
                                                 "default: MIZUMORI_DATABASE_URL, else "
                                                 "MIZUMORI_DATA_DIR or data/)")
    p.set_defaults(func=db_upgrade)
    p = dbsub.add_parser("prune", help="delete now what the settings do not keep (expired "
                                       "sessions, old deliveries, …; docs/operations.md)")
    p.add_argument("--data", metavar="DIR", help="the SQLite database in DIR (default: "
                                                 "MIZUMORI_DATABASE_URL, else "
                                                 "MIZUMORI_DATA_DIR or data/)")
    p.add_argument("--json", action="store_true", help="rows deleted per table, as JSON")
    p.set_defaults(func=db_prune)
    p = dbsub.add_parser("backup", help="a consistent copy of the SQLite database, while "
                                        "the server runs (VACUUM INTO)")
    p.add_argument("file", metavar="FILE", help="the copy to write (must not exist)")
    p.add_argument("--data", metavar="DIR", help="the SQLite database in DIR (default: "
                                                 "MIZUMORI_DATABASE_URL, else "
                                                 "MIZUMORI_DATA_DIR or data/)")
    p.set_defaults(func=db_backup)
    p = sub.add_parser("user", help="people who use the server")
    usub = p.add_subparsers(dest="user_command", required=True)
    p = usub.add_parser("create", help="create a user (e.g. the first admin)")
    p.add_argument("username")
    p.add_argument("--role", default="admin",
                   choices=["admin", "operator", "technician", "viewer"])
    p.add_argument("--password", help="(default: asked for)")
    p.add_argument("--data", metavar="DIR",
                   help="the server whose data is in DIR, e.g. the demo's: --data data/demo "
                        "(default: MIZUMORI_DATABASE_URL, else MIZUMORI_DATA_DIR or data/)")
    p.set_defaults(func=user_create)
    p = usub.add_parser("reset-password", help="set a new password for a user")
    p.add_argument("username")
    p.add_argument("--password", help="(default: asked for, twice)")
    p.add_argument("--data", metavar="DIR",
                   help="the server whose data is in DIR, e.g. the demo's: --data data/demo "
                        "(default: MIZUMORI_DATABASE_URL, else MIZUMORI_DATA_DIR or data/)")
    p.set_defaults(func=user_reset_password)
    p = sub.add_parser("keys", help="the server's secret key (MIZUMORI_SECRET_KEY)")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    ksub.add_parser("new", help="print a fresh secret key").set_defaults(func=keys_cmd)
    ksub.add_parser("rotate", help="re-seal every secret under MIZUMORI_SECRET_KEY (the old "
                                   "key in MIZUMORI_OLD_SECRET_KEYS)").set_defaults(
        func=keys_cmd)
    p = sub.add_parser("device", help="flash, provision and check a board on a serial port")
    dsub = p.add_subparsers(dest="device_command", required=True)
    for name, text in (("flash", "copy the firmware (only what changed), verify hashes"),
                       ("provision", "register the board and write its credentials"),
                       ("selftest", "read the sensors once and print what they say"),
                       ("info", "firmware, flash, queue depth, last errors, reset cause"),
                       ("check", "acceptance check of a new board: heap, sensors, loop, "
                                 "an upload from a cold power-on"),
                       ("calibrate", "calibrate the level against the staff gauge (量水標)"),
                       ("console", "the serial console, its lines decoded")):
        d = dsub.add_parser(name, help=text)
        d.add_argument("--port", required=True, help="e.g. /dev/ttyUSB0 or the rig's port")
        d.set_defaults(func=device_cmd)
        if name in ("info", "flash", "provision", "selftest"):
            d.add_argument("--json", action="store_true", help="one JSON object instead")
        if name == "check":
            d.add_argument("--loop-points", metavar="MA,MA,...",
                           help="check the 4-20 mA input at these calibrator currents "
                                "(default 4,12,20 on a current_loop station)")
            d.add_argument("--loop-tolerance", type=float, default=None, metavar="MA",
                           help="how far a loop reading may be off (default: the converter's "
                           "datasheet error, 0.6 mA on the ESP32 ADC with a 100 ohm shunt, "
                           "about 0.08 mA on an ADS1115)")
            d.add_argument("--yes", action="store_true",
                           help="do not wait at prompts (the calibrator is already set)")
            d.add_argument("--json", action="store_true", help="one JSON object instead")
        if name in ("selftest", "check", "calibrate"):
            d.add_argument("--staff-gauge", metavar="M", required=name == "calibrate",
                           help="the staff gauge reading now, in m to the cm (e.g. 1.23): "
                                + ("the level is calibrated to it" if name == "calibrate" else
                                   "the level must agree within --staff-tolerance"))
            d.add_argument("--staff-tolerance", type=float, default=2.0, metavar="CM",
                           help="how far the level may be from the staff gauge (default 2 cm)")
        if name == "calibrate":
            how = d.add_mutually_exclusive_group()
            how.add_argument("--scale", action="store_true",
                             help="also the scale, from this point and the last calibration's "
                                  "(at least 0.3 m apart)")
            how.add_argument("--check-only", action="store_true",
                             help="only compare with the staff gauge (the residual); change "
                                  "nothing")
            d.add_argument("--server", help="the fleet server's URL: record it in the station's "
                                            "calibration history")
            d.add_argument("--station", help="station code on the server")
            d.add_argument("--user", help="log in as this technician (password asked, or "
                                          "$MIZUMORI_PASSWORD)")
            d.add_argument("--token", help="or an API token (default: $MIZUMORI_TOKEN)")
            d.add_argument("--ca", help="CA certificate (PEM) of a server with a private CA")
            d.add_argument("--force", metavar="REASON",
                           help="calibrate even with a level unfit for it (no temperature "
                                "correction, rough water, too few good samples), saying why")
            d.add_argument("--json", action="store_true", help="one JSON object instead")
        if name == "console":
            d.add_argument("--raw", action="store_true",
                           help="everything the board prints, byte for byte (default: the "
                                "station's lines decoded, no REPL banner between wakes)")
        if name == "flash":
            d.add_argument("--source", action="store_true",
                           help="copy .py source instead of mpy-cross output")
        if name == "provision":
            d.add_argument("--server", required=True, help="the fleet server's URL")
            d.add_argument("--station", required=True, help="station code")
            d.add_argument("--user", help="log in as this technician (password asked, or "
                                          "$MIZUMORI_PASSWORD)")
            d.add_argument("--token", help="or an API token (default: $MIZUMORI_TOKEN)")
            d.add_argument("--device-server", help="URL the board uses (default: --server)")
            d.add_argument("--hardware-id", help="default: the board's unique id")
            d.add_argument("--wifi-ssid")
            d.add_argument("--wifi-password")
            d.add_argument("--wifi-ip", metavar="ADDRESS",
                           help="a static address for the station (reserved for it on the "
                                "network; default: DHCP). With --wifi-netmask and "
                                "--wifi-gateway (docs/technician.md)")
            d.add_argument("--wifi-netmask", metavar="MASK",
                           help="with --wifi-ip: like 255.255.255.0, or the prefix length 24")
            d.add_argument("--wifi-gateway", metavar="ADDRESS",
                           help="with --wifi-ip: the router's address")
            d.add_argument("--wifi-dns", metavar="ADDRESS",
                           help="with --wifi-ip: the DNS server (default: the gateway)")
            d.add_argument("--ca", help="CA certificate (PEM) the board verifies HTTPS with "
                                        "(and this command, for a server with a private CA)")
            d.add_argument("--lorawan", metavar="DEVEUI:JOINEUI:APPKEY",
                           help="its LoRaWAN module's OTAA keys, as registered on the "
                                "network server (docs/lorawan.md)")
            d.add_argument("--transport", choices=("wifi", "lorawan", "wifi,lorawan",
                                                   "lorawan,wifi"),
                           help="how it reports (default: wifi; lorawan with --lorawan, "
                                "wifi,lorawan with both)")
            d.add_argument("--release-key", help="the release engineer's public key (.pub): "
                                                 "the board installs only releases it signed")
            d.add_argument("--replace", action="store_true",
                           help="the station already has another device: replace it (it "
                                "leaves the station and can no longer report)")
            d.add_argument("--wait-report", type=float, metavar="SECONDS",
                           help="then wait up to SECONDS for the station's first report "
                                "(press reset meanwhile); exit status 1 if none arrives")
    p = sub.add_parser("release", help="build, sign and upload application releases")
    rsub = p.add_subparsers(dest="release_command", required=True)
    r = rsub.add_parser("keygen", help="an Ed25519 signing key pair (OUT.key, OUT.pub)")
    r.add_argument("--out", default="keys/release", help="path without suffix")
    r.set_defaults(func=release_cmd)
    r = rsub.add_parser("build", help="compile firmware/, write and sign the manifest")
    r.add_argument("--key", required=True, help="the private key (.key)")
    r.add_argument("--version", help="default: VERSION in firmware/station/__init__.py")
    r.add_argument("--source", default=str(paths.FIRMWARE), help="the firmware tree")
    r.add_argument("--out", default="dist", help="where the bundle goes")
    r.add_argument("--min-battery-mv", type=int, default=3400,
                   help="stations below this do not install it")
    r.add_argument("--py-source", action="store_true", help="ship .py instead of .mpy")
    r.add_argument("--ca", action="append", metavar="FILE.pem",
                   help="CA certificates for the stations' trust bundle (repeatable: the old "
                        "and the new CA during a change-over; docs/ota.md, Changing the CA)")
    r.set_defaults(func=release_cmd)
    r = rsub.add_parser("upload", help="send a bundle to the fleet server")
    r.add_argument("bundle")
    r.add_argument("--server", required=True)
    r.add_argument("--token", help="an operator's API token (default: $MIZUMORI_TOKEN)")
    r.add_argument("--ca", help="CA certificate (PEM) for a server with a private CA")
    r.set_defaults(func=release_cmd)
    p = sub.add_parser("rig", help="a virtual station on a pseudo-terminal")
    p.add_argument("--port", default="/tmp/mizumori-station", help="symlink to create")
    p.add_argument("--flash", default="data/rig-flash", help="the station's flash directory")
    p.add_argument("--hardware-id", default="sim-000000000001")
    p.add_argument("--time-scale", type=float, default=60.0,
                   help="simulated sleep seconds per real second")
    p.set_defaults(func=rig_cmd)
    args = parser.parse_args(argv)
    prog = " ".join(x for x in ("mizumori", args.command, getattr(args, "db_command", None),
                                getattr(args, "user_command", None),
                                getattr(args, "keys_command", None)) if x)
    try:
        return _run(args, prog)
    except Exception as e:
        problems = settings_problems(e)  # a bad MIZUMORI_* setting: one line each
        if problems is None:
            raise
        for line in problems:
            print(f"{prog}: {line}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, prog: str) -> int:
    if args.command not in ("db", "user", "serve", "keys"):
        result: int = args.func(args)
        return result
    from sqlalchemy.exc import SQLAlchemyError

    try:
        result = args.func(args)
    except BadDatabase as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    except SQLAlchemyError as e:  # the server is down, refuses us, or the database is bad
        print(f"{prog}: cannot use the database: {database_error(e)}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
