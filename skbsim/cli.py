"""The ``skbsim`` command: argument parsing and messages only.

Every subcommand calls a library function and prints what it returns.  Bad
input of any kind ends with one line on stderr and exit code 2; so does an
output that cannot be written (a full disk).  Ctrl-C is one line and exit
code 130; a reader that closes the pipe early (``skbsim run | head``) ends
the command quietly with exit code 0.  skbsim/commands/common.py lists the
conventions the subcommands share.
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import os
import signal
import sys
import threading

from skbsim.errors import InputError
from skbsim.files import shown

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _Once(argparse.Action):
    """Store one value; the same option given again is an error, not a silent overwrite."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_skbsim_given", {})
        if self.dest in given:
            raise InputError(f"{option_string} given twice ({given[self.dest]!r} and {values!r}): "
                             f"'{parser.prog}' takes one")
        given[self.dest] = values
        setattr(namespace, self.dest, values)


def _not_empty(option: str, parse):
    def check(text: str):
        if isinstance(text, str) and not text.strip():
            raise InputError(f"{option}: empty value")
        return parse(text) if parse is not None else text

    return check


def _checked(names: tuple, kwargs: dict) -> dict:
    """``add_argument``'s keywords with the parser's rules: no empty value, one value given once."""
    action = kwargs.get("action")
    takes_value = action in (None, "store", "append") and kwargs.get("nargs") != 0
    if takes_value:
        option = names[0] if names else kwargs.get("dest", "value")
        if names and names[0].startswith("-"):
            option = max(names, key=len)
        kwargs["type"] = _not_empty(option, kwargs.get("type"))
        if action in (None, "store") and names and names[0].startswith("-"):
            kwargs["action"] = _Once
    return kwargs


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, no option takes an empty value,
    and an option that takes one value refuses a second one (in argument groups too)."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        raise InputError(f"{message} (see '{self.prog} --help')")

    def add_argument(self, *names, **kwargs):
        return super().add_argument(*names, **_checked(names, kwargs))

    # A group's add_argument is argparse's own, not the one above: groups get the same rules.
    def add_argument_group(self, *args, **kwargs):
        return _with_rules(super().add_argument_group(*args, **kwargs))

    def add_mutually_exclusive_group(self, **kwargs):
        return _with_rules(super().add_mutually_exclusive_group(**kwargs))


def _with_rules(group):
    plain = group.add_argument
    group.add_argument = lambda *names, **options: plain(*names, **_checked(names, options))
    return group


#: Subcommand modules, each with add_parser(subparsers) and run(args).
COMMANDS = ("alloc", "run", "profile", "sweep", "rx", "tcp", "validate", "grid", "report")


class _Version(argparse._VersionAction):
    """--version, the version looked up (importlib.metadata) only when asked for."""

    def __call__(self, parser, namespace, values, option_string=None):
        from skbsim import __version__

        self.version = f"skbsim {__version__}"
        super().__call__(parser, namespace, values, option_string)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with argv whose first word names a subcommand, only that subcommand's module is
    imported (the others' names are there, without their options: the arguments never reach them)."""
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    parser = _Parser(prog="skbsim", description="An executable model of Linux RX sk_buff allocation.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)
    for name in COMMANDS:
        if chosen is None or name == chosen:
            importlib.import_module(f"skbsim.commands.{name}").add_parser(sub)
        else:
            sub.add_parser(name)
    return parser


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what could not be
    written (a closed pipe, a full disk) neither fails nor prints."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _one_line(text: str) -> str:
    """An error message on one line whatever it quotes (a file name with a newline...)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def main(argv: list[str] | None = None, program: bool = False) -> int:
    """The command; program: this process is the skbsim program (its entry points say so), not a caller of
    main() as a library function."""
    if program:
        # Loading the program (argparse, the command's modules) makes many objects and no garbage: the
        # collector waits, then leaves what was loaded frozen (never walked again), which spares the
        # collections of start-up most of their work.
        gc.disable()
    try:
        # The program's own Ctrl-C handling (skbsim/__main__.py may have installed a quieter one
        # for the time before this point).
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser(argv).parse_args(argv)
        if program:
            gc.freeze()
            gc.enable()
        args.argv = argv
        code = args.run(args)
        sys.stdout.flush()
        return code
    except InputError as err:
        print(f"skbsim: error: {_one_line(str(err))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("skbsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader stopped reading (skbsim run | head): it has what it wanted.
        _quiet_stdout()
        return 0
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS):
            raise
        # Only writing our output gets here (inputs are InputErrors): stdout on a full disk, say.
        _quiet_stdout()
        where = shown(err.filename) if err.filename else "standard output"
        print(f"skbsim: error: cannot write {where}: {err.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT


def command_line(args) -> str:
    """The command line that gave ``args``, quoted for a shell (for reports that show how to rerun)."""
    import shlex

    return shlex.join(["skbsim", *getattr(args, "argv", [])])


if __name__ == "__main__":
    sys.exit(main(program=True))
