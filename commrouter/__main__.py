"""Command line: `commrouter demo` (more subcommands arrive with the kernel, logs, simulation)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="commrouter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="a short live run on the in-memory transports")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from commrouter.demo import main as demo

        return demo()
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
