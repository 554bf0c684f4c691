"""``python -m skbsim`` and the ``skbsim`` command.

Ctrl-C before the program is ready to handle it (while Python imports numpy,
rich, ...) would print a traceback; so the first thing this module does is to
make it one line and exit code 130.  skbsim.cli.main() then takes over
(KeyboardInterrupt, so that clean-ups run).
"""

import os
import signal


def _interrupted_early(signum, frame):
    os.write(2, b"skbsim: interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted_early)


def main() -> int:
    from skbsim.cli import main as cli_main

    try:
        return cli_main()
    finally:
        # The interpreter's shutdown is no place for a traceback either.
        signal.signal(signal.SIGINT, _interrupted_early)


if __name__ == "__main__":
    raise SystemExit(main())
