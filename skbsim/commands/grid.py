"""``skbsim grid``: the cells of a TOML spec, on a Dask cluster, into one Parquet file."""

from __future__ import annotations

import shlex
import sys

from skbsim.commands.common import integer
from skbsim.errors import InputError
from skbsim.files import shown

#: what a grid's results are called
RESULTS_SUFFIXES = (".parquet",)


def add_parser(sub) -> None:
    p = sub.add_parser("grid", help="run a grid of runs declared in a TOML file, on Dask, into one Parquet file")
    p.add_argument("spec", metavar="SPEC.toml", help="the grid: [grid] command, [traffic], [fixed], [axes], [report]")
    p.add_argument("-o", "--output", required=True, metavar="RESULTS.parquet",
                   help="one row per cell: its axes, cell.* (status, error, command line, ...) and result.*")
    p.add_argument("--resume", action="store_true",
                   help="keep the cells RESULTS.parquet (or an interrupted grid's parts) already has; run the rest")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="an existing Dask scheduler (tcp://host:8786), used as it is; default: a LocalCluster "
                   "here, one worker process per core")
    p.add_argument("--workers", type=integer("--workers", 1), help="the LocalCluster's worker processes (default: cores)")
    p.add_argument("--serial", action="store_true", help="no Dask: run the cells one after another in this process")
    p.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="how long to wait for --scheduler and its first worker (default 10)")
    p.add_argument("--report", metavar="FILE.html", help="also write the HTML report (as 'skbsim report' does)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _seconds(text: str) -> float:
    from skbsim.commands.common import number

    return number("--timeout", text)


def run(args) -> int:
    from skbsim.commands.common import output_file
    from skbsim.grid import load_spec, read_results, run_grid
    from skbsim.grid.report import grid_report
    from skbsim.htmlreport import REPORT_SUFFIXES

    if args.serial and args.scheduler:
        raise InputError("--serial and --scheduler exclude each other")
    # Where the results go is checked before the first cell, not after the last.
    output_file("-o", args.output, RESULTS_SUFFIXES)
    if args.report:
        output_file("--report", args.report, REPORT_SUFFIXES)
    spec = load_spec(args.spec)

    def failed(cell, row):
        axes = " ".join(f"{k}={v}" for k, v in cell.axes.items())
        print(f"cell {cell.index} ({axes}): {row['cell.error']}", file=sys.stderr)

    where = ("in this process" if args.serial else f"on the Dask scheduler at {args.scheduler}" if args.scheduler
             else "on a local Dask cluster")
    summary = run_grid(spec, args.output, scheduler=args.scheduler, workers=args.workers, serial=args.serial,
                       resume=args.resume, timeout=args.timeout, progress=not args.quiet, on_failure=failed)
    if summary.warm_up:
        seconds = sorted(summary.warm_up.values())
        print(f"warm-up: {len(seconds)} workers, {seconds[0]:.2f}-{seconds[-1]:.2f} s each", file=sys.stderr)
    earlier = f" ({summary.reused} recorded earlier)" if summary.reused else ""
    print(f"grid: {summary.cells} cells{earlier}; {summary.ran} run {where}, {summary.failed} failed, "
          f"in {summary.seconds:.1f} s; {shown(args.output)}: {summary.rows} rows", file=sys.stderr)
    if summary.interrupted:
        print(f"interrupted: '{shlex.join(['skbsim', 'grid', args.spec, '-o', args.output, '--resume'])}' runs the "
              f"{summary.cells - summary.rows} cells left", file=sys.stderr)
        return 130
    if args.report:
        table, meta = read_results(args.output)
        path = grid_report(table, meta, source=args.output).write(args.report)
        print(f"report: {shown(path)}", file=sys.stderr)
    return 1 if summary.failed else 0
