"""``skbsim tcp``: a scripted peer against one receiving TCP socket, on one or more kernels side by side."""

from __future__ import annotations

import sys

from skbsim.commands.common import integer, output_dir, output_file, print_json
from skbsim.files import shown


def add_parser(sub) -> None:
    from skbsim.drivers import DRIVERS

    p = sub.add_parser(
        "tcp",
        help="play a peer's segments against one receiving TCP socket and show its window and memory",
        description="A peer sends segments to one receiving TCP socket behind a driver; after every "
        "segment and read: the ACKs (number and raw window), SO_MEMINFO, TCP_INFO, the window clamp, "
        "the scaling ratio and TcpExt counters. docs/tcp.md defines the steps, the timing and the fields.",
        epilog="STEP: send:P[xN][@F] (N segments of P bytes in frames of at least F bytes), read, read:B, "
        "readeach, hold, release, wait, wait:MS. Example: skbsim tcp --kernel 6.12 --kernel 6.18 --driver ntb "
        "--opt copybreak=0 --opt copybreak=3646 send:100x40 read",
    )
    p.add_argument("steps", nargs="+", metavar="STEP", help="the scenario, in order")
    p.add_argument("--kernel", action="append", help="kernel profile; repeat to compare (default 6.18)")
    p.add_argument("--kernel-config", help="derive config-dependent constants from this .config")
    p.add_argument("--driver", default="tun", help=f"one of: {', '.join(sorted(DRIVERS))} (default tun)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="driver option; repeat a key with other values to compare, e.g. --opt copybreak=0 "
                   "--opt copybreak=3646")
    p.add_argument("--so-rcvbuf", type=integer("--so-rcvbuf", 0, 2**31 - 1), help="SO_RCVBUF set on the listener before listen()")
    p.add_argument("--cc", default="cubic", help="congestion control of the socket: cubic or bbr (default cubic)")
    p.add_argument("--syn", default="mss=1460,wscale=7,ts=0,sack=0",
                   help="the peer's SYN options (default mss=1460,wscale=7,ts=0,sack=0; wscale=none for none)")
    p.add_argument("--step-ms", type=integer("--step-ms", 0, 3_600_000), default=250, help="length of a step in ms (default 250)")
    p.add_argument("--json", action="store_true", help='print one JSON object, {"runs": [...]}: one run per kernel and option set (docs/schema/tcp.schema.json)')
    p.add_argument("--plot", metavar="DIR", help="write window, rcv_ssthresh, rmem_alloc and rcvbuf per step "
                   "(tcp.png) into DIR")
    p.add_argument("--report", metavar="FILE.html",
                   help="write one self-contained HTML page: the summary, each run's records, the window and memory "
                   "charts per kernel, the command line")
    p.add_argument("--explain", action="store_true", help="say for each record which rules produced its figures")
    p.add_argument("--summary", action="store_true", help="print only the side-by-side summary, not every record")
    p.set_defaults(run=run)


def runs_from_args(args) -> tuple[list[tuple[str, dict]], list, object]:
    """What one ``skbsim tcp`` command line asks for, checked: its (kernel, driver options) runs (one per
    --kernel and --opt value), its steps and its SYN options."""
    from skbsim.commands.run import _option_sets
    from skbsim.tcp_steps import parse_steps, parse_syn

    steps = parse_steps(args.steps)
    syn = parse_syn(args.syn)
    kernels = args.kernel or ["6.18"]
    runs = [(kernel, options) for kernel in kernels for _driver, options in _option_sets(args.opt, [args.driver])]
    return runs, steps, syn


def play_run(args, kernel: str, options: dict, steps: list, syn) -> dict:
    """One run of the command line: skbsim.tcp_session.play() with its options."""
    from skbsim.tcp_session import play

    return play(kernel, args.driver, options, steps, so_rcvbuf=args.so_rcvbuf, cc=args.cc, syn=syn,
                step_ms=args.step_ms, explain=args.explain, kernel_config=args.kernel_config)


def run(args) -> int:
    from skbsim.cli import command_line
    from skbsim.commands.common import console as make_console
    from skbsim.htmlreport import REPORT_SUFFIXES
    from skbsim.tcp_report import (render_explanations, render_records, render_summary, write_tcp_plot,
                                   write_tcp_report)

    runs, steps, syn = runs_from_args(args)
    if args.plot:
        output_dir("--plot", args.plot)
    if args.report:
        output_file("--report", args.report, REPORT_SUFFIXES)
    results, labels = [], []
    for kernel, options in runs:
        result = play_run(args, kernel, options, steps, syn)
        results.append(result)
        labels.append(_label(result, options))
        print(f"leak check ({labels[-1]}): clean - every page, slab object and skb was given back", file=sys.stderr)
    if args.json:
        print_json({"runs": results})
    else:
        console = make_console()
        for result, label in zip(results, labels):
            if args.summary:
                break
            if args.explain:
                render_explanations(result, label, console)
            else:
                render_records(result, label, console)
        render_summary(results, labels, console)
    if args.plot:
        path = write_tcp_plot(args.plot, results, labels, title="skbsim tcp " + " ".join(args.steps))
        print(f"plot: {shown(path)}", file=sys.stderr)
    if args.report:
        path = write_tcp_report(args.report, results, labels, command_line(args))
        print(f"report: {shown(path)}", file=sys.stderr)
    return 0


def _label(result: dict, options: dict) -> str:
    opts = " ".join(f"{key}={value}" for key, value in sorted(options.items()))
    return f"{result['kernel']} {result['driver']}" + (f" {opts}" if opts else "")
