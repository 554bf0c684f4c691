"""The ``skbsim`` command: argument parsing and messages only.

Every subcommand calls a library function and prints what it returns.  Bad
input of any kind ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from skbsim.errors import InputError

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        raise InputError(f"{message} (see '{self.prog} --help')")


#: Subcommand modules, each with add_parser(subparsers) and run(args).
COMMANDS = ("alloc", "run", "profile", "sweep", "rx", "validate", "grid", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="skbsim", description="An executable model of Linux RX sk_buff allocation.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)
    for name in COMMANDS:
        importlib.import_module(f"skbsim.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        return args.run(args)
    except InputError as err:
        print(f"skbsim: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("skbsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def command_line(args) -> str:
    """The command line that gave ``args``, quoted for a shell (for reports that show how to rerun)."""
    import shlex

    return shlex.join(["skbsim", *getattr(args, "argv", [])])


if __name__ == "__main__":
    sys.exit(main())
