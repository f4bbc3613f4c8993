"""The `mizumori` command. Subcommands arrive with the parts they drive."""

import argparse
import sys


def demo(args: argparse.Namespace) -> int:
    """The server with a virtual fleet living through a flood (what `make run` starts)."""
    from mizumori_tools import demo as demo_mod

    return demo_mod.run(args.hours, args.speed, args.port, args.scenario)


def serve(args: argparse.Namespace) -> int:
    """The fleet server under uvicorn; settings from MIZUMORI_* variables or .env."""
    import uvicorn
    from mizumori_server import db
    from mizumori_server.settings import get_settings

    settings = get_settings()
    engine = db.make_engine(settings.effective_database_url())
    if args.migrate or settings.auto_migrate:
        db.upgrade(engine)
    try:
        db.require_migrated(engine)
    except db.NotMigrated as e:
        print(f"mizumori serve: {e}", file=sys.stderr)
        return 2
    engine.dispose()
    uvicorn.run("mizumori_server.main:app", host=args.host or settings.host,
                port=args.port or settings.port, workers=args.workers,
                ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
                log_level="info", access_log=False)
    return 0


def db_upgrade(_: argparse.Namespace) -> int:
    from mizumori_server import db
    from mizumori_server.settings import get_settings

    url = get_settings().effective_database_url()
    db.upgrade(db.make_engine(url))
    print(f"database at the newest migration: {url.split('@')[-1]}")
    return 0


def user_create(args: argparse.Namespace) -> int:
    import getpass

    from mizumori_server import db
    from mizumori_server.api.people import create
    from mizumori_server.models import User
    from mizumori_server.settings import get_settings
    from sqlalchemy import select

    password = args.password or getpass.getpass(f"password for {args.username}: ")
    if len(password) < 10:
        print("mizumori: passwords need at least 10 characters", file=sys.stderr)
        return 2
    engine = db.make_engine(get_settings().effective_database_url())
    try:
        db.require_migrated(engine)
    except db.NotMigrated as e:
        print(f"mizumori: {e}", file=sys.stderr)
        return 2
    with db.transaction(db.sessions(engine)) as session:
        if session.scalars(select(User).where(User.username == args.username)).first():
            print(f"mizumori: user {args.username} exists", file=sys.stderr)
            return 1
        create(session, args.username, password, args.role)
    print(f"created {args.role} {args.username}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mizumori", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the server with a virtual fleet through a flood")
    p.add_argument("--hours", type=float, default=12, help="simulated hours (default 12)")
    p.add_argument("--speed", type=float, default=120,
                   help="simulated seconds per real second (default 120)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--scenario", default="flood", help="tools/mizumori_tools/scenarios/NAME")
    p.set_defaults(func=demo)
    p = sub.add_parser("serve", help="run the fleet server")
    p.add_argument("--host", help="listen address (default MIZUMORI_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default MIZUMORI_PORT or 8080)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--migrate", action="store_true", help="apply migrations first")
    p.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--ssl-keyfile", help="and this private key (PEM)")
    p.set_defaults(func=serve)
    p = sub.add_parser("db", help="database administration")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="apply the Alembic migrations").set_defaults(
        func=db_upgrade)
    p = sub.add_parser("user", help="people who use the server")
    usub = p.add_subparsers(dest="user_command", required=True)
    p = usub.add_parser("create", help="create a user (e.g. the first admin)")
    p.add_argument("username")
    p.add_argument("--role", default="admin",
                   choices=["admin", "operator", "technician", "viewer"])
    p.add_argument("--password", help="(default: asked for)")
    p.set_defaults(func=user_create)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
