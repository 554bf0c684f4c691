"""``skbsim validate --tcp``: the TCP receive model against the running kernel, record by record.

Kept apart from skbsim/commands/validate.py, which only hands over to
:func:`run` when --tcp is given.
"""

from __future__ import annotations

import sys

from skbsim.commands.common import integer
from skbsim.tcp_session import STEP_MS

MODE = "validate --tcp"
#: dest: (option, default) of this mode (None in the parser: skbsim/commands/validate.py check_modes()).
OPTIONS = {
    "live_only": ("--live-only", False),
    "so_rcvbuf": ("--so-rcvbuf", None),
    "syn": ("--syn", None),
    "cc": ("--cc", "cubic"),
    "step_ms": ("--step-ms", STEP_MS),
}


def add_arguments(p) -> None:
    from skbsim.validate_tcp import BUILTIN

    group = p.add_argument_group(
        "TCP (--tcp)",
        "Play scenarios against a socket of the running kernel (a raw-TCP peer behind a tap in a private "
        "namespace) and in the model (skbsim tcp --kernel host --driver tun), and compare every field of "
        "every record (docs/tcp.md). SCENARIO is a built-in name or a quoted list of steps ('send:1448x3 "
        f"read'); without any, the built-in set runs: {', '.join(s.name for s in BUILTIN)}. "
        "docs/validate-tcp.md describes them.")
    group.add_argument("--tcp", action="store_true", help="validate the TCP receive model")
    group.add_argument("scenario", nargs="*", metavar="SCENARIO", help="with --tcp: built-in names or step lists")
    group.add_argument("--live-only", action="store_true",
                       help="with --tcp: only play the scenarios live and report the records (no model)")
    group.add_argument("--so-rcvbuf", type=integer("--so-rcvbuf", 0, 0x7FFFFFFF),
                       help="with --tcp: SO_RCVBUF before listen() for the step lists given")
    group.add_argument("--syn", help="with --tcp: the peer's SYN options for the step lists "
                       "given (mss=1460,wscale=7,ts=0,sack=0)")
    group.add_argument("--cc", help="with --tcp: congestion control (default cubic)")
    group.add_argument("--step-ms", type=integer("--step-ms", 1),
                       help=f"with --tcp: the length of a step in ms (default {STEP_MS})")


def run(args) -> int:
    from skbsim.commands.common import print_json
    from skbsim.validate_tcp import scenarios_from_args, validate_tcp

    scenarios = scenarios_from_args(args.scenario, so_rcvbuf=args.so_rcvbuf, syn=args.syn, cc=args.cc,
                                    step_ms=args.step_ms)
    progress = None if args.json or not sys.stderr.isatty() else (lambda text: print(text, file=sys.stderr))
    result = validate_tcp(scenarios, kernel=args.kernel, live_only=args.live_only, progress=progress)
    if args.json:
        print_json(result)
    else:
        _print(result)
    return 0 if result["ok"] else 1


def _print(result: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    from skbsim.commands.common import console as new_console, print_table

    console = new_console()
    runs = Table(title="TCP scenarios on the running kernel" + ("" if result["live_only"] else " and in the model "
                                                                 f"({result['kernel']}, {result['driver']})"))
    for column in ("scenario", "steps", "records", "disagree", "s", "max late µs", "runs"):
        runs.add_column(column, justify="left" if column in ("scenario", "steps") else "right")
    for entry in result["scenarios"]:
        runs.add_row(entry["scenario"]["name"], entry["scenario"]["steps"], str(len(entry["live"]["steps"])),
                     "-" if result["live_only"] else str(entry["disagreements"]), f"{entry['seconds']:.1f}",
                     str(entry["max_late_us"]), str(entry["attempts"]))
    print_table(console, runs)
    if result["live_only"]:
        for entry in result["scenarios"]:
            _print_records(console, entry)
        return
    fields = Table(title="Agreement per field (SYN-ACK once per scenario, the rest once per record)")
    for column in ("field", "agree", "disagree"):
        fields.add_column(column, justify="left" if column == "field" else "right")
    for row in result["fields"]:
        fields.add_row(row["field"], str(row["agree"]),
                       Text(str(row["disagree"]), style="red") if row["disagree"] else "0")
    print_table(console, fields)
    disagreements = result["disagreements"]
    if disagreements:
        table = Table(title=f"{len(disagreements)} disagreements")
        for column in ("scenario", "i", "action", "field", "live", "model"):
            table.add_column(column, justify="right" if column == "i" else "left")
        for d in disagreements:
            table.add_row(d["scenario"], "" if d["i"] is None else str(d["i"]), d["action"] or "", d["field"],
                          str(d["live"]), str(d["model"]))
        print_table(console, table)
        console.print("validation FAILED", style="red")
    else:
        console.print("validation passed: every field of every record agrees", style="green")


def _print_records(console, entry: dict) -> None:
    from rich.table import Table

    from skbsim.commands.common import print_table

    live = entry["live"]
    table = Table(title=f"{entry['scenario']['name']}: SYN-ACK win {live['synack']['win']} wscale "
                        f"{live['synack']['wscale']} mss {live['synack']['mss']}")
    for column in ("i", "action", "payload", "frame", "truesize", "route", "verdict", "acks", "rmem", "rcvbuf",
                   "fwd", "rcv_wnd", "ssthresh", "clamp", "ratio", "counters"):
        table.add_column(column, justify="left" if column in ("action", "route", "verdict", "acks", "counters")
                         else "right")
    for record in live["steps"]:
        mem, info = record["mem"], record["info"]
        counters = " ".join(f"{k}={v}" for k, v in record["counters"].items() if v)
        table.add_row(*(str(x) if x is not None else "" for x in (
            record["i"], record["action"], record["payload"], record["frame_len"], record["truesize"],
            record["route"], record["verdict"], " ".join(f"{a}/{w}" for a, w in record["acks"]), mem["rmem_alloc"],
            mem["rcvbuf"], mem["fwd_alloc"], info["rcv_wnd"], info["rcv_ssthresh"], info["window_clamp"],
            info["scaling_ratio"], counters)))
    print_table(console, table)
