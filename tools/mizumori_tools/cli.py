"""The `mizumori` command. Subcommands arrive with the parts they drive."""

import argparse
import subprocess
import sys
import tempfile

from mizumori_tools import paths


def demo(args: argparse.Namespace) -> int:
    """Run the virtual station through a simulated flood under the real MicroPython."""
    with tempfile.TemporaryDirectory(prefix="mizumori-demo-") as work:
        cmd = [paths.micropython(), str(paths.REPO / "tools" / "mizumori_tools" /
                                        "demo_station.py"),
               str(paths.FIRMWARE), work, str(args.hours)]
        return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mizumori", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run a virtual station through a simulated flood")
    p.add_argument("--hours", type=int, default=12, help="simulated hours (default 12)")
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
