"""The ``vqsim`` command line.

Each group of subcommands lives in its own module exposing
``register(subparsers)``, which adds its parsers and sets ``func`` on each
(heavy imports such as torch happen inside the handlers, so ``vqsim --help``
stays fast).

Exit status and messages say who is at fault:

* **2, the input**: errors vqsim raises on purpose (``codec.errors.VQSimError``
  and its subclasses: bad parameter, corrupt bitstream, bad checkpoint, limit
  exceeded, …), missing / unreadable files and the machine's state (disk
  full, read-only file system: ``ENVIRONMENT_ERRNOS``) print one line
  ``vqsim CMD: error: …``; options shared by several commands (``--seed``,
  ``--threads``, ``--device``) are checked before any work (``check_common_args``);
* **1, vqsim**: anything else is a bug: one line ``vqsim CMD: internal error
  (Type: message)`` asking for a report;
* **130**: interrupted.

``VQSIM_DEBUG=1`` re-raises either kind so the traceback is printed.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from codec.errors import one_line

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
"""Exceptions that mean "the input is at fault" (exit 2); everything else is an internal error (exit 1)."""

TORCH_COMMANDS = frozenset({"encode", "decode", "eval", "conceal", "train-transformer", "index-data", "train-codec",
                            "export-codec", "finetune-codec", "sweep", "demo", "bench",
                            "train-robust-decoder", "conceal-eval"})
"""Commands that run torch models: the CLI applies ``codec.runtime.configure_cpu`` (denormals flushed,
large buffers kept on the heap; identical results, 1.7× faster decoding measured) before them, once per
process. ``VQSIM_NO_CPU_TUNING=1`` turns it off."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqsim",
        description="Send VQGAN-compressed images over unreliable networks: codec, channels, FEC, concealment.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:  # every group ships with vqsim: one that fails to import is a bug, not skipped
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    debug = os.environ.get("VQSIM_DEBUG", "") not in ("", "0")
    try:
        check_common_args(args)  # before any work: one line and exit 2, not an internal error mid-run
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
        print(f"vqsim {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vqsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if debug:
            raise
        if e.errno not in ENVIRONMENT_ERRNOS:
            return _internal(args, e)
        # the machine, not vqsim: a full disk, a read-only or missing mount; every file is written atomically
        # (a sweep keeps the rows it has and resumes), so nothing already computed is lost
        where = f": {e.filename}" if e.filename else ""
        print(f"vqsim {args.command}: error: {os.strerror(e.errno or 0)}{where} (errno {e.errno}); free space or fix "
              f"the path and run the command again", file=sys.stderr)
        return 2
    except Exception as e:  # a bug in vqsim, not the user's input
        if debug:
            raise
        return _internal(args, e)
    return int(rc or 0)


def _internal(args, e: BaseException) -> int:
    print(f"vqsim {args.command}: internal error ({type(e).__name__}: {one_line(e)}); "
          f"please report it with the traceback from VQSIM_DEBUG=1 vqsim {args.command} …", file=sys.stderr)
    return 1


ENVIRONMENT_ERRNOS = frozenset(getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG", "EMFILE", "ENFILE",
                                                           "ENAMETOOLONG", "ELOOP") if hasattr(errno, n))
"""OSErrors that are the machine's state, not a bug: exit 2 with the reason (e.g. ``[Errno 28]`` disk full)."""

MAX_THREADS = 1024
SEED_LIMIT = 1 << 63


def check_common_args(args) -> None:
    """Options several commands share, checked before any work (``ParameterError``: one line, exit 2).

    * ``--seed``: an integer in [0, 2^63) (numpy and torch take no negative seed);
    * ``--threads``: an integer in [1, 1024] (torch would try to start them all);
    * ``--device``: a device torch knows and this machine has (``codec.api.pick_device``).
    """
    from codec.errors import ParameterError

    seed = getattr(args, "seed", None)
    if seed is not None and not (isinstance(seed, int) and 0 <= seed < SEED_LIMIT):
        raise ParameterError(f"--seed must be an integer in [0, 2^63), got {seed}")
    threads = getattr(args, "threads", None)
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS):
        raise ParameterError(f"--threads must be an integer in [1, {MAX_THREADS}], got {threads}")
    device = getattr(args, "device", None)
    if isinstance(device, str):
        from codec.api import pick_device

        pick_device(device)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
