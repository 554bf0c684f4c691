"""What every subcommand does the same way: argument types, output destinations, tables and JSON.

Conventions (a new subcommand follows them by using these helpers):

- Bad input is :class:`~skbsim.errors.InputError`: one line on stderr, exit code 2 (skbsim/cli.py
  prints it).  The parser (skbsim/cli.py ``_Parser``) already refuses an empty value for any
  option and a single-value option given twice; options that compare (``--kernel`` ...) use
  ``action="append"``.
- Numbers are parsed by :func:`integer` and :func:`number`, which name the option and its range.
- Files the command will write are checked by :func:`output_file` / :func:`output_dir` *before*
  any work starts; paths in messages go through :func:`skbsim.files.shown`.
- Tables are printed by :func:`print_table`: as wide as their widest cell, so no number is ever cut,
  whatever the terminal, pipe or ``COLUMNS``.
- ``--json`` prints one JSON object per command (:func:`print_json`) whose shape is
  docs/schema/<command>.schema.json; tests/test_json_schema.py checks every command's output against
  it with the invocations listed in its ``EXAMPLES``.
- A closed stdout (``skbsim run | head``) ends the command quietly with exit code 0, wherever the
  write happens (:class:`Console` and skbsim/cli.py).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from skbsim.errors import InputError
from skbsim.files import shown


def integer(name: str, low: int | None = None, high: int | None = None):
    """An argparse ``type``: an integer (decimal, 0x.., 0o.., 0b..) within low..high, naming ``name``."""

    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise InputError(f"{name} {text!r} is not an integer") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{low}..{high}" if low is not None and high is not None else (
                f"at least {low}" if low is not None else f"at most {high}")
            raise InputError(f"{name} must be {bounds}, got {value}")
        return value

    return parse


def number(name: str, text: str, words: tuple[str, ...] = (), zero: str | None = None) -> float | str:
    """A positive finite number, or one of ``words`` (returned as the word); 0 too when ``zero``
    says what it means (e.g. "no reader")."""
    if text in words:
        return text
    try:
        value = float(text)
    except ValueError:
        also = f" (or {', '.join(words)})" if words else ""
        raise InputError(f"{name} {text!r} is not a number{also}") from None
    if value == 0 and zero is not None:
        return 0.0
    if not (value > 0 and math.isfinite(value)):
        zero_text = f", 0 ({zero})" if zero is not None else ""
        raise InputError(f"{name} must be a positive finite number{zero_text}, got {text}")
    return value


def output_file(option: str, path: str, suffixes: tuple[str, ...] | None = None) -> str:
    """Check, before any work, that ``path`` can be written (its folder exists, it is no folder, it
    ends in one of ``suffixes``); the path itself is not created here."""
    if suffixes is not None and not path.lower().endswith(suffixes):
        raise InputError(f"{option} {shown(path)}: the file name must end in {' or '.join(suffixes)}")
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{option} {shown(path)}: is a directory")
    folder = target.parent
    if not folder.is_dir():
        raise InputError(f"{option} {shown(path)}: folder {shown(folder)} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise InputError(f"{option} {shown(path)}: not writable")
    return path


def output_dir(option: str, path: str) -> Path:
    """Make folder ``path`` (and its parents) now, before any work, and check it can be written."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{option} {shown(path)}: exists and is not a folder") from None
    except OSError as err:
        raise InputError(f"{option} {shown(path)}: cannot create: {err.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{option} {shown(path)}: not writable")
    return folder


def print_json(value, sort_keys: bool = False) -> None:
    """The command's one JSON object on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=sort_keys) + "\n")


def _console_class():
    from rich.console import Console as RichConsole

    class Console(RichConsole):
        """rich's Console, but a closed stdout is a BrokenPipeError for skbsim/cli.py to end quietly
        (rich itself would exit with code 1)."""

        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return Console


def console(**options):
    """A rich Console on stdout (``stderr=True`` for stderr) that follows the conventions above.

    Markup, emoji codes and highlighting are off: the text printed holds file names, profile
    descriptions and other user text in which "[x]" is no style.  Pass ``markup=True`` to a
    print() whose own text has styles.
    """
    options.setdefault("markup", False)
    options.setdefault("emoji", False)
    options.setdefault("highlight", False)
    return _console_class()(**options)


def print_table(out, table) -> None:
    """Print a rich Table on Console ``out`` at least as wide as its widest row (no cell wraps, so no
    number is cut); its title goes on a line of its own above it."""
    from rich.measure import Measurement

    if table.title:
        out.print(table.title, highlight=False, soft_wrap=True)
        table.title = None
    for column in table.columns:
        column.no_wrap = True
    needed = Measurement.get(out, out.options.update_width(1 << 16), table).maximum
    width = out.width
    if needed > width:
        out.width = needed
    try:
        out.print(table)
    finally:
        out.width = width
