"""``skbsim report``: a grid's Parquet results as one self-contained HTML page."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write a grid's results (skbsim grid -o) as one self-contained HTML page")
    p.add_argument("results", metavar="RESULTS.parquet")
    p.add_argument("-o", "--output", required=True, metavar="FILE.html")
    p.add_argument("--metric", action="append", metavar="NAME",
                   help="a result to compare (e.g. delivered, socket.drops); repeat for more "
                   "(default: the spec's [report] metric)")
    p.add_argument("--heatmap", nargs=2, metavar=("X", "Y"), help="the two axes of the heat map")
    p.add_argument("--lines", metavar="AXIS", help="the axis along the line chart's x")
    p.set_defaults(run=run)


def run(args) -> int:
    from skbsim.commands.common import output_file
    from skbsim.htmlreport import REPORT_SUFFIXES
    from skbsim.files import shown
    from skbsim.grid import read_results
    from skbsim.grid.report import grid_report

    output_file("-o", args.output, REPORT_SUFFIXES)
    table, meta = read_results(args.results)
    report = grid_report(table, meta, metrics=args.metric, heatmap=args.heatmap, lines=args.lines,
                         source=args.results)
    print(f"report: {shown(report.write(args.output, option='-o'))}", file=sys.stderr)
    return 0
