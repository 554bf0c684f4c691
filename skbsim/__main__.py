"""``python -m skbsim`` and the ``skbsim`` command.

Ctrl-C before the program is ready to handle it (while Python imports numpy,
rich, ...) would print a traceback; so the first thing this module does is to
make it one line and exit code 130.  skbsim.cli.main() then takes over
(KeyboardInterrupt, so that clean-ups run).
"""

# _signal, not signal: the signal module builds its enums on import, a window in
# which Ctrl-C would still print a traceback through this file.  os is loaded by
# the interpreter before any of our code runs.
import _signal
import os


def _interrupted_early(signum, frame):
    os.write(2, b"skbsim: interrupted\n")
    os._exit(130)


_signal.signal(_signal.SIGINT, _interrupted_early)


def main() -> int:
    from skbsim.cli import main as cli_main

    try:
        return cli_main(program=True)
    finally:
        # The interpreter's shutdown is no place for a traceback either.
        _signal.signal(_signal.SIGINT, _interrupted_early)


if __name__ == "__main__":
    raise SystemExit(main())
