"""``skbsim validate --driver virtio_net``: the virtio_net model against this machine's NIC (or a saved trace).

The arguments and the printing; skbsim.validate_virtio does the work.
"""

from __future__ import annotations

from skbsim.validate_virtio import MAX_TRACE_SECONDS

MODE = "validate --driver virtio_net"
#: dest: (option, default) of this mode (None in the parser: skbsim/commands/validate.py check_modes()).
LIVE_OPTIONS = {
    "iface": ("--iface", "eth0"),
    "seconds": ("--seconds", 10.0),
    "save_trace": ("--save-trace", None),
}
OPTIONS = {**LIVE_OPTIONS, "trace_file": ("--trace-file", None), "opt": ("--opt", [])}


def _seconds(text: str) -> float:
    from skbsim.commands.common import number
    from skbsim.errors import InputError

    value = number("--seconds", text)
    if value > MAX_TRACE_SECONDS:
        raise InputError(f"--seconds must be at most {MAX_TRACE_SECONDS}, got {text}")
    return value


def add_arguments(p) -> None:
    p.add_argument("--driver", choices=("tun", "virtio_net"),
                   help="tun (default): frames injected into a TAP; virtio_net: traffic arriving on a virtio_net NIC "
                   "is traced (nothing is sent or changed) and replayed through the model")
    p.add_argument("--iface", help="virtio_net: the interface to trace (default eth0)")
    p.add_argument("--seconds", type=_seconds,
                   help=f"virtio_net: how long to trace (default 10, at most {MAX_TRACE_SECONDS}); make traffic meanwhile")
    p.add_argument("--trace-file", help="virtio_net: replay a saved trace (the text of a tracefs instance's 'trace' "
                   "with net/napi_gro_receive_entry and napi/napi_poll, plain or gzip) instead of tracing")
    p.add_argument("--save-trace", help="virtio_net: also write the live trace (with the device's options) to this file")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="virtio_net with --trace-file: a driver option of the device that made the trace (repeatable)")


def check_options(args) -> None:
    """The options of a live trace and of --trace-file are not mixed (before their defaults are filled)."""
    from skbsim.errors import InputError

    if args.trace_file is not None:
        for dest, (option, _) in LIVE_OPTIONS.items():
            if getattr(args, dest) is not None:
                raise InputError(f"{option} is for a live trace, not for --trace-file")
    elif args.opt:
        raise InputError("--opt is for --trace-file, not for a live trace")


def run(args) -> int:
    import sys

    from skbsim.commands.common import output_file, print_json
    from skbsim.drivers.base import parse_opt_assignments
    from skbsim.validate_virtio import validate_live, validate_trace_file

    progress = None if args.json or not sys.stderr.isatty() else (lambda text: print(text, file=sys.stderr))
    if args.trace_file:
        result = validate_trace_file(args.trace_file, args.kernel, parse_opt_assignments(args.opt))
    else:
        if args.save_trace is not None:
            output_file("--save-trace", args.save_trace)
        result = validate_live(args.iface, args.seconds, args.kernel, save=args.save_trace, progress=progress)
    if args.json:
        print_json(result)
    else:
        print_result(result)
    return 0 if result["ok"] else 1


def print_result(result: dict) -> None:
    from rich.table import Table

    from skbsim.commands.common import console as new_console, print_table

    # No markup (the source line holds the trace file's name), and lines that do not wrap.
    console = new_console(soft_wrap=True)
    options = " ".join(f"{k}={v}" for k, v in result["options"].items())
    console.print(f"virtio_net: {result['source']}; model {result['kernel']} ({result['release']}), {options}")
    console.print(f"{result['frames_traced']} skbs traced in {result['polls']} polls"
                  + ("" if result["polls_traced"] else " (no napi_poll events: one poll per frame assumed)")
                  + f"; {result['skbs_used_to_synchronise']} used to synchronise, {result['skbs_predicted']} "
                  f"predicted by the model ({result['seconds']} s)")
    if not result["trace_complete"]:
        console.print("the trace buffer lost events: the replay cannot be trusted", style="red")
    table = Table(title="live vs model, per skb")
    for column in ("field", "agree", "of"):
        table.add_column(column, justify="left" if column == "field" else "right")
    for name, count in result["field_agreement"].items():
        table.add_row(name, str(count), str(result["skbs_predicted"]))
    gro = result["after_gro"]
    if gro["compared"]:
        table.add_row("len after GRO", str(gro["agreements"]), str(result["skbs_predicted"]))
    table.add_row("all of them", str(result["skbs_agreeing"]), str(result["skbs_predicted"]))
    print_table(console, table)
    for segment in result["segments"]:
        console.print(f"  polls {segment['first_poll']}..{segment['end_poll'] - 1} predicted from "
                      f"{segment['start_state']} (synchronised from poll {segment['synchronised_from_poll']}); "
                      f"{segment['skbs']} skbs; ended: {segment['ended']}")
    if gro["compared"]:
        merged = result["frames_traced"] - gro["handed_up_live"]
        console.print(f"after GRO (net/netif_receive_skb): {gro['events']} skbs handed up; of the "
                      f"{result['frames_traced']} GRO got, {merged} went up inside another")
    else:
        console.print("after GRO: not traced (no net/netif_receive_skb events in the trace)")
    for leak in result["model_leaks"]:
        console.print(f"model leak check: {leak}", style="red")
    disagreements = result["disagreements"]
    if disagreements:
        table = Table(title=f"{len(disagreements)} disagreements")
        for column in ("poll", "skb", "frame len", "field", "live", "model"):
            table.add_column(column, justify="left" if column == "field" else "right")
        for d in disagreements:
            table.add_row(str(d["poll"]), str(d["frame"]), str(d["frame_len"]), d["field"], str(d["live"]),
                          str(d["model"]))
        print_table(console, table)
    if result["ok"]:
        console.print(f"validation passed: all {result['skbs_predicted']} predicted skbs agree", style="green")
    elif not result["skbs_predicted"]:
        console.print("validation FAILED: the model never synchronised with the ring (too little traffic?)", style="red")
    else:
        console.print("validation FAILED", style="red")
