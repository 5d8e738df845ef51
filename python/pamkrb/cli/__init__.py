"""The ``pamkrb`` command: operator tools for a hub that uses pamkrb.

Each subcommand lives in its own module with an ``add_parser(subparsers)``
that declares its options (their help texts are the documentation) and sets
``run(args) -> int`` and ``prog`` (for messages) as parser defaults. Exit
codes: 0 all good, 1 a problem was found (doctor), 2 a usage error (bad
option, missing path).
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import doctor, kernelspec, nginx
from .errors import UsageError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pamkrb",
        description="Operator tools for JupyterHub with pamkrb (PAM login plus a Kerberos ticket per user).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    doctor.add_parser(commands)
    kernelspec.add_parser(commands)
    nginx.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``pamkrb`` with ``argv`` (default: the command line); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except UsageError as e:
        # The same shape as argparse's own errors, without a traceback.
        print(f"{args.prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


__all__ = ["main"]
