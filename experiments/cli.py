"""The ``vqsim`` command line.

Each group of subcommands lives in its own module exposing
``register(subparsers)``, which adds its parsers and sets ``func`` on each
(heavy imports such as torch happen inside the handlers, so ``vqsim --help``
stays fast).

Exit status and messages say who is at fault:

* **2, the input**: errors vqsim raises on purpose (``codec.errors.VQSimError``
  and its subclasses: bad parameter, corrupt bitstream, bad checkpoint, limit
  exceeded, …) and missing / unreadable files print one line
  ``vqsim CMD: error: …``;
* **1, vqsim**: anything else is a bug: one line ``vqsim CMD: internal error
  (Type: message)`` asking for a report;
* **130**: interrupted.

``VQSIM_DEBUG=1`` re-raises either kind so the traceback is printed.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# modules that add subcommands, in help order
COMMAND_MODULES = [
    "experiments.cmd_codec",     # encode, decode, eval
    "experiments.cmd_models",    # models
    "experiments.cmd_sim",       # transmit, channels
    "experiments.cmd_conceal",   # conceal, train-transformer
    "experiments.cmd_train",     # train-codec, reduce
    "experiments.cmd_sweep",     # sweep, plot, report
    "experiments.demo",          # demo
    "experiments.cmd_bench",     # bench
]


def _user_errors() -> tuple[type[BaseException], ...]:
    from codec.errors import VQSimError

    return (VQSimError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)


USER_ERRORS = _user_errors()

TORCH_COMMANDS = frozenset({"encode", "decode", "eval", "conceal", "train-transformer", "index-data", "train-codec",
                            "export-codec", "finetune-codec", "sweep", "demo", "bench"})
"""Commands that run torch models: the CLI applies ``codec.runtime.configure_cpu`` (denormals flushed,
large buffers kept on the heap; identical results, 1.7× faster decoding measured) before them, once per
process. ``VQSIM_NO_CPU_TUNING=1`` turns it off."""
"""Exceptions that mean "the input is at fault" (exit 2); everything else is an internal error (exit 1)."""


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
    debug = os.environ.get("VQSIM_DEBUG", "") not in ("", "0")
    try:
        if args.command in TORCH_COMMANDS:
            from codec.runtime import configure_cpu

            configure_cpu()
        rc = args.func(args)
    except BrokenPipeError:  # the reader went away (`vqsim links | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush of stdout cannot fail again
        return 141
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"vqsim {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vqsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug in vqsim, not the user's input
        if debug:
            raise
        print(f"vqsim {args.command}: internal error ({type(e).__name__}: {_one_line(e)}); "
              f"please report it with the traceback from VQSIM_DEBUG=1 vqsim {args.command} …", file=sys.stderr)
        return 1
    return int(rc or 0)


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
