"""The ``vqsim`` command line.

Each group of subcommands lives in its own module exposing
``register(subparsers)``, which adds its parsers and sets ``func`` on each
(heavy imports such as torch happen inside the handlers, so ``vqsim --help``
stays fast).  Errors vqsim raises on purpose (bad input, corrupt bitstream,
missing file, invalid parameter: VQSimError / ValueError / OSError) are
printed as one line and exit with status 2; set VQSIM_DEBUG=1 for the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# modules that add subcommands, in help order
COMMAND_MODULES = [
    "experiments.cmd_codec",     # encode, decode, eval, models
    "experiments.cmd_sim",       # transmit, channels
    "experiments.cmd_conceal",   # conceal, train-transformer
    "experiments.cmd_train",     # train-codec, reduce
    "experiments.cmd_sweep",     # sweep, plot
    "experiments.demo",          # demo
    "experiments.cmd_bench",     # bench
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqsim",
        description="Send VQGAN-compressed images over unreliable networks: codec, channels, FEC, concealment.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a command group not built yet
            if e.name == name:
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    from codec.errors import VQSimError

    try:
        rc = args.func(args)
    except (VQSimError, ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
        # bad input / parameters: one line, exit 2 (VQSIM_DEBUG=1 shows the traceback)
        if os.environ.get("VQSIM_DEBUG"):
            raise
        print(f"vqsim {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vqsim {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
