"""``skbsim sweep``: truesize and path against len, kernel by kernel."""

from __future__ import annotations

import time

from skbsim.files import shown


def add_parser(sub) -> None:
    from skbsim.sweep import SWEEP_FUNCTIONS

    p = sub.add_parser(
        "sweep",
        help="run one allocation function at every length of a range on several kernels and compare",
        description="Run the model at every length of FIRST:LAST[:STEP] on each kernel; print the ranges "
        "where any kernel's answer (path, head source, truesize) changes; optionally write a CSV "
        "(one row per length) and a step plot (one line per kernel).",
    )
    p.add_argument(
        "--kernel",
        action="append",
        help="a built-in kernel (6.1, 6.9, 6.12, 6.18, 7.1), 'host', or a profile .toml; repeat to compare "
        "(default: every built-in)",
    )
    p.add_argument("--kernel-config", help="take the config-dependent inputs of every kernel from this .config")
    p.add_argument("--function", choices=tuple(SWEEP_FUNCTIONS),
                   help="default napi_alloc_skb; page_pool_dev_alloc builds skb heads on page_pool memory")
    p.add_argument("--driver", help="run frames of every length through this driver instead (one NIC write and "
                   "one poll each); --len is then the frame length, 14..65535")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a driver option for --driver (repeatable)")
    p.add_argument("--gfp", help="gfp mask for the functions that take one (default GFP_ATOMIC)")
    p.add_argument("--len", dest="lengths", default="0:9000",
                   help="FIRST:LAST[:STEP], LAST included, or one length (default 0:9000)")
    p.add_argument("--by-path", action="store_true",
                   help="one row per change of path or head source (truesize shown as a span) instead of "
                   "one per change of truesize")
    p.add_argument("--csv", help="write one row per length to this file ('-' for stdout, then no table)")
    p.add_argument("--plot", help="write a step plot of truesize against len to this file (.png, .svg, .pdf)")
    p.add_argument("--json", action="store_true",
                   help="print the comparison as one JSON object (docs/schema/sweep.schema.json)")
    p.set_defaults(run=run)


def run(args) -> int:
    import sys

    from skbsim.commands.common import output_file, print_json
    from skbsim.errors import InputError
    from skbsim.profile import builtin_names, load_profile
    from skbsim.sweep import PLOT_SUFFIXES, comparison_rows, parse_len_range, plot, sweep, sweep_as_dict, write_csv

    lengths = parse_len_range(args.lengths)
    specs = args.kernel or builtin_names()
    if args.json and args.csv == "-":
        raise InputError("--json and --csv - both want stdout: give --csv a file name")
    # Where the results go is checked before the sweep, not after it.
    if args.csv and args.csv != "-":
        output_file("--csv", args.csv)
    if args.plot:
        output_file("--plot", args.plot, PLOT_SUFFIXES)
    profiles = [load_profile(spec, args.kernel_config) for spec in specs]
    started = time.perf_counter()
    if args.driver is not None:
        from skbsim.drivers.base import parse_opt_assignments

        if args.function is not None or args.gfp is not None:
            raise InputError("--driver sweeps frames through a driver: --function and --gfp do not apply")
        sweeps = sweep(profiles, None, lengths, driver=args.driver, options=parse_opt_assignments(args.opt))
    else:
        if args.opt:
            raise InputError("--opt needs --driver")
        sweeps = sweep(profiles, args.function or "napi_alloc_skb", lengths, args.gfp)
    elapsed = time.perf_counter() - started

    if args.csv == "-":
        write_csv(sweeps, sys.stdout)
    elif args.csv:
        try:
            with open(args.csv, "w", newline="") as handle:
                write_csv(sweeps, handle)
        except OSError as err:
            raise InputError(f"--csv {shown(args.csv)}: cannot write: {err.strerror}") from None
    if args.plot:
        plot(sweeps, args.plot)
    rows = comparison_rows(sweeps, by_path=args.by_path)
    if args.json:
        print_json(sweep_as_dict(sweeps, rows, args.by_path))
        return 0
    if args.csv == "-":
        return 0
    _print_table(sweeps, rows, lengths, elapsed, args.by_path)
    if args.csv:
        print(f"CSV: {shown(args.csv)} ({len(lengths)} rows)")
    if args.plot:
        print(f"plot: {shown(args.plot)}")
    return 0


def _print_table(sweeps, rows, lengths, elapsed: float, by_path: bool) -> None:
    from rich.table import Table

    from skbsim.commands.common import console, print_table
    from skbsim.sweep import describe_cell

    first = sweeps[0]
    step = f", every {lengths.step} bytes" if lengths.step > 1 else ""
    what = "path or head source" if by_path else "truesize, path or head source"
    call = f"{first.function}(len), gfp {first.gfp}" if first.gfp != "-" else f"{first.function}, one frame of len bytes"
    title = f"{call}: ranges of len where a kernel's {what} changes (len {lengths[0]}..{lengths[-1]}{step})"
    table = Table()
    header = "truesize, path: head"
    body = [
        [str(row.first) if row.first == row.last else f"{row.first}-{row.last}"]
        + [describe_cell(cell) for cell in row.cells]
        for row in rows
    ]
    table.add_column("len", justify="right", no_wrap=True)
    for s in sweeps:
        table.add_column(f"{s.name}\n{header}", no_wrap=True)
    for cells in body:
        table.add_row(*cells)
    out = console()
    out.print(title, highlight=False, soft_wrap=True)
    print_table(out, table)
    for s in sweeps:
        out.print(f"{s.name}: Linux {s.profile.release}", highlight=False, soft_wrap=True)
    leaks = {s.leak_check for s in sweeps}
    out.print(
        f"{len(lengths)} length{'s' if len(lengths) != 1 else ''} x {len(sweeps)} "
        f"kernel{'s' if len(sweeps) != 1 else ''} in {elapsed:.1f} s; "
        + ("leak check: clean" if leaks == {"clean"} else f"leak check: {', '.join(sorted(leaks))}"),
        highlight=False,
    )
