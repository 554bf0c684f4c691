"""What a grid's cell is: one command line of an skbsim command, run to its JSON result.

A cell is the argv of ``skbsim run`` or ``skbsim tcp``, parsed by that
command's own argument parser, so a cell and the command line printed beside
it in the results and the report are the same run.  A command
joins grids through one :class:`CellCommand` in :data:`CELL_COMMANDS`: which
options are parameters (every option of its parser but its output options),
how to check a cell cheaply before the grid starts, how to run it, and which
results the report shows by default.

A cell's result is what the command's ``--json`` prints for that one run;
``skbsim tcp``'s records are summarised (tcp_summary: the last and smallest
window, zero-window ACKs, drops, bytes read, the end state, the counters).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from skbsim.errors import InputError


@dataclass(frozen=True)
class CellCommand:
    """How a grid runs one cell of an skbsim command."""

    name: str
    #: args -> None; raises InputError for a cell that cannot run (cheap: it runs on every cell first)
    check: Callable[[argparse.Namespace], None]
    #: args -> (the result as the command's --json prints it for one run, a note or None)
    execute: Callable[[argparse.Namespace], tuple[dict, str | None]]
    #: the report's default metrics, as dotted paths into the result
    metrics: tuple[str, ...]
    #: options that only choose what is printed or written: never grid parameters
    outputs: frozenset = frozenset({"json", "trace", "plot", "report", "quiet"})
    #: KEY=VALUE options that take a table, and an axis per key ("opt.rx")
    keyed: frozenset = frozenset({"opt"})
    #: value -> the same value with file names made absolute against a directory
    resolve_paths: Callable[[str, object, str], object] = lambda name, value, base: value
    #: parsed arguments that make a cell tiny, for the worker's warm-up run, set over the cell's own
    #: (an option given twice is an error, so they are not appended to its argv); empty: no warm-up
    warmup: dict = field(default_factory=dict)
    #: args -> what decides which compiled code a cell runs; the warm-up runs one cell of each kind
    kind: Callable[[argparse.Namespace], object] = lambda args: None
    #: the command's parser, built once
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def parser(self) -> argparse.ArgumentParser:
        if "parser" not in self._cache:
            from skbsim.cli import _Parser

            top = _Parser(prog="skbsim")
            sub = top.add_subparsers(dest="command", parser_class=_Parser)
            importlib.import_module(f"skbsim.commands.{self.name}").add_parser(sub)
            self._cache["parser"] = sub.choices[self.name]
        return self._cache["parser"]

    def parameters(self) -> dict[str, argparse.Action]:
        """The command's options a grid may set, by their argparse name (``app_rate`` for --app-rate)."""
        return {a.dest: a for a in self.parser()._actions
                if a.dest not in self.outputs and not isinstance(a, argparse._HelpAction)}

    def parse(self, argv: list[str]) -> argparse.Namespace:
        return self.parser().parse_args(argv)


def _check_run(args) -> None:
    from skbsim.commands.run import configs_from_args

    configs = configs_from_args(args)
    if len(configs) != 1:
        raise InputError(f"a cell is one run, this one is {len(configs)} (several kernels, drivers or values "
                         "of one option): make them an axis")
    _profile_exists(configs[0].kernel, configs[0].kernel_config)
    if configs[0].traffic.split(":", 1)[0].strip().lower() not in ("pcap", "pcapng"):
        _synthetic_traffic_parses(configs[0].traffic)  # a capture is read when its cell runs


@functools.lru_cache(maxsize=64)
def _synthetic_traffic_parses(traffic: str) -> None:
    """A synthetic --traffic spec (fixed:N, dist:FILE ...) is one (a typo failed every cell, one by one)."""
    from skbsim.traffic import parse_traffic

    parse_traffic(traffic, count=1)


@functools.lru_cache(maxsize=64)
def _profile_exists(kernel: str, kernel_config: str | None) -> None:
    from skbsim.profile import load_profile

    load_profile(kernel, kernel_config) if kernel_config else load_profile(kernel)


def _execute_run(args) -> tuple[dict, str | None]:
    from skbsim.commands.run import configs_from_args
    from skbsim.fast import simulate_engine

    (config,) = configs_from_args(args)
    result, _, fell_back = simulate_engine(config, args.engine)
    return result, (f"reference engine used: {fell_back}" if fell_back else None)


def _check_tcp(args) -> None:
    from skbsim.commands.tcp import runs_from_args

    runs, _steps, _syn = runs_from_args(args)
    if len(runs) != 1:
        raise InputError(f"a cell is one run, this one is {len(runs)} (several kernels or values of one option): "
                         "make them an axis")
    _profile_exists(runs[0][0], args.kernel_config)


def _execute_tcp(args) -> tuple[dict, str | None]:
    """One ``skbsim tcp`` run, its records summarised (skbsim.tcp_report.tcp_summary): a row holds the
    figures a report plots, not the hundreds of records (the cell's command line gives them back)."""
    from skbsim.commands.tcp import play_run, runs_from_args
    from skbsim.tcp_report import tcp_summary

    ((kernel, options),), steps, syn = runs_from_args(args)
    result = play_run(args, kernel, options, steps, syn)
    return {**{key: result[key] for key in ("kernel", "driver", "options", "synack")}, **tcp_summary(result)}, None


def _input_paths(name: str, value, base: str):
    """--traffic pcap:/pcapng:/dist: files, --kernel-config and profile files, relative to the spec."""
    if not isinstance(value, str):
        return value
    if name == "traffic":
        kind, sep, rest = value.partition(":")
        if sep and kind.strip().lower() in ("pcap", "pcapng", "dist"):
            return f"{kind}:{_absolute(rest, base)}"
    if name == "kernel_config" or (name == "kernel" and value.endswith(".toml")):
        return _absolute(value, base)
    return value


def _absolute(path: str, base: str) -> str:
    path = os.path.expanduser(path.strip())
    full = path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))
    if not os.path.exists(full):
        raise InputError(f"{path}: no such file (relative names are taken from the spec's directory)")
    return full


CELL_COMMANDS: dict[str, CellCommand] = {
    "run": CellCommand(
        "run", check=_check_run, execute=_execute_run,
        metrics=("delivered", "dropped_total", "truesize_per_packet", "socket.peak_rmem_alloc",
                 "pages.peak_bytes_in_use"),
        resolve_paths=_input_paths, warmup={"count": 64}, kind=lambda args: (tuple(args.driver or ()), args.engine),
    ),
    "tcp": CellCommand(
        "tcp", check=_check_tcp, execute=_execute_tcp,
        metrics=("last_window", "min_window", "zero_window_acks", "dropped", "bytes_read", "end.rcvbuf",
                 "end.scaling_ratio", "end.window_clamp", "end.rcv_ssthresh"),
        outputs=frozenset({"json", "plot", "report", "explain", "summary"}), resolve_paths=_input_paths,
    ),
}


def cell_command(name: str) -> CellCommand:
    try:
        return CELL_COMMANDS[name]
    except KeyError:
        raise InputError(f"command {name!r} cannot be a grid cell (known: {', '.join(CELL_COMMANDS)})") from None


def flatten(value, prefix: str, out: dict) -> dict:
    """Nested JSON objects as dotted column names; lists as JSON text."""
    import json

    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}", out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(value, sort_keys=True)
    else:
        out[prefix] = value
    return out


def execute_cell(command: str, argv: list[str], meta: dict) -> dict:
    """Run one cell where this is called (a Dask worker or the grid's own process): its Parquet row.

    ``meta`` holds the cell's own columns (index, key, axes, ...).  An error in
    the cell is its result: the row says so, and the grid goes on.
    """
    row = dict(meta)
    row["cell.worker"] = f"{socket.gethostname()}:{os.getpid()}"
    started, cpu = time.perf_counter(), time.thread_time()
    try:
        adapter = cell_command(command)
        result, note = adapter.execute(adapter.parse(argv))
        flatten(result, "result", row)
        row["cell.status"] = "ok"
        row["cell.error"] = None
        row["cell.note"] = note
    except Exception as err:  # noqa: BLE001 - a failed cell is recorded, never raised
        row["cell.status"] = "error"
        row["cell.error"] = error_text(err)
        row["cell.note"] = None
    row["cell.seconds"] = round(time.perf_counter() - started, 6)
    row["cell.cpu_seconds"] = round(time.thread_time() - cpu, 6)
    return row


def error_text(err: BaseException) -> str:
    """One line for a cell that failed: the exception and, unless it is bad input, where it was raised."""
    text = f"{type(err).__name__}: {err}".splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, InputError):
        return text
    frames = traceback.extract_tb(err.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {os.path.basename(last.filename)}:{last.lineno} in {last.name})"
    return text


def warm_up(command: str, argvs: list[list[str]]) -> dict:
    """On a worker: run each argv made tiny, so the fast engine's compiled code is loaded once, before any cell.

    numba's on-disk cache holds the machine code; loading it still costs a few
    hundred milliseconds per process, and a cold cache a compilation.  Returns
    the worker's name, the seconds it took and the errors of the tiny runs
    that failed (the cells themselves report theirs).
    """
    started = time.perf_counter()
    adapter = cell_command(command)
    errors = []
    for argv in argvs:
        try:
            args = adapter.parse(argv)
            for dest, value in adapter.warmup.items():
                setattr(args, dest, value)
            adapter.execute(args)
        except Exception as err:  # noqa: BLE001 - recorded; the cell itself will report it
            errors.append(error_text(err))
    return {"worker": f"{socket.gethostname()}:{os.getpid()}", "seconds": time.perf_counter() - started,
            "errors": errors}
