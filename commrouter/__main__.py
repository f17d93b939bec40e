"""Command line: `commrouter lab`, `commrouter demo`, `commrouter kernel install`,
`commrouter simulate`, `commrouter logs`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="commrouter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    lab = commands.add_parser("lab", help="JupyterLab with the kernel and the demo notebook")
    lab.add_argument("--port", type=int, default=8888, help="preferred port on 127.0.0.1")
    commands.add_parser("demo", help="a short live run on the in-memory transports")
    kernel = commands.add_parser("kernel", help="the reference Jupyter kernel")
    kernel_commands = kernel.add_subparsers(dest="kernel_command", required=True)
    install = kernel_commands.add_parser("install", help="write the kernelspec")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="in the user's Jupyter data dir")
    where.add_argument("--sys-prefix", action="store_true", help="in this environment")
    where.add_argument("--prefix", help="under PREFIX/share/jupyter/kernels")
    from commrouter.simulation import cli as simulation_cli

    simulate = commands.add_parser("simulate", help="run failure scenarios in virtual time")
    simulation_cli.configure(simulate)
    from commrouter.observability import cli as logs_cli

    logs = commands.add_parser("logs", help="read, filter, follow, trace JSON-lines logs")
    logs_cli.configure(logs)
    args = parser.parse_args(argv)
    if args.command == "simulate":
        return simulation_cli.run(args)
    if args.command == "logs":
        return logs_cli.run(args)
    if args.command == "lab":
        from commrouter.lab import main as lab_main

        return lab_main(port=args.port)
    if args.command == "demo":
        from commrouter.demo import main as demo

        return demo()
    from commrouter.kernel.spec import install as install_spec

    path = install_spec(user=args.user, prefix=args.prefix, sys_prefix=args.sys_prefix)
    print(f"installed kernelspec 'commrouter' in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
