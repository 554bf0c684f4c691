"""``skbsim validate``: the tun model against the running kernel, frame by frame.

Three modes share the command: tun frames (this module), ``--tcp`` (validate_tcp.py) and
``--driver virtio_net`` (validate_virtio.py).  Each mode's options default to None in the parser,
so that one given to another mode is refused (it used to be ignored without a word); their
defaults are filled in once the mode is known.
"""

from __future__ import annotations

from skbsim.commands import validate_tcp, validate_virtio
from skbsim.commands.common import integer
from skbsim.validate import DEFAULT_ROUTES, ROUTES

MODE = "validate (tun frames)"
#: dest: (option, default) of the tun mode.
OPTIONS = {
    "routes": ("--routes", ",".join(DEFAULT_ROUTES)),
    "lengths": ("--lengths", "60:1514"),
    "sample": ("--sample", 300),
    "seed": ("--seed", 0),
    "no_boundaries": ("--no-boundaries", False),
    "no_udp": ("--no-udp", False),
}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "validate",
        help="inject frames into a TAP in a private namespace and compare each skb with the model",
        description="Needs root, /dev/net/tun and tracefs (mounted if absent). Creates its own network "
        "namespace, TAP and tracefs instance and removes them again. For each tun route, frames of a sweep of "
        "lengths are written and len, data_len, truesize and nr_frags read from the route's tracepoint; the "
        "same frames go through the model. UDP adds SO_MEMINFO checks. Exit code 1 on any disagreement, "
        "2 when something needed is missing.",
    )
    p.add_argument("--kernel", default="host", help="the model's kernel: 'host' (default), a built-in or a .toml")
    p.add_argument("--routes", help=f"comma-separated, from {', '.join(ROUTES)} (default {','.join(DEFAULT_ROUTES)})")
    p.add_argument("--lengths", help="A:B[:step]: the range the sample is drawn from (default 60:1514)")
    p.add_argument("--sample", type=integer("--sample", 0),
                   help="how many lengths of the range (seeded random; 0 = every length; default 300)")
    p.add_argument("--seed", type=integer("--seed"), help="seed of the sample (default 0)")
    p.add_argument("--no-boundaries", action="store_true",
                   help="leave out the fixed boundary and jumbo lengths (14 .. 16000)")
    p.add_argument("--no-udp", action="store_true", help="skip the UDP socket checks")
    p.add_argument("--json", action="store_true",
                   help="print the result as one JSON object (docs/schema/validate.schema.json)")
    validate_virtio.add_arguments(p)
    validate_tcp.add_arguments(p)
    p.set_defaults(run=run)


def _given(value) -> bool:
    return value not in (None, False, [])


def check_modes(args) -> str:
    """The mode the arguments ask for; InputError naming both modes for an option of another one.
    Then the options of every mode get their defaults."""
    from skbsim.errors import InputError

    if args.scenario and not args.tcp:
        raise InputError("SCENARIO arguments need --tcp")
    mode = validate_tcp.MODE if args.tcp else validate_virtio.MODE if args.driver == "virtio_net" else MODE
    if args.driver is not None and mode == validate_tcp.MODE:
        owner = validate_virtio.MODE if args.driver == "virtio_net" else MODE
        raise InputError(f"--driver {args.driver} is for {owner}, not for {mode}")
    modes = {MODE: OPTIONS, validate_virtio.MODE: validate_virtio.OPTIONS, validate_tcp.MODE: validate_tcp.OPTIONS}
    for owner, options in modes.items():
        for dest, (option, _) in options.items():
            if owner != mode and _given(getattr(args, dest)):
                raise InputError(f"{option} is for {owner}, not for {mode}")
    if mode == validate_virtio.MODE:
        validate_virtio.check_options(args)
    for options in modes.values():
        for dest, (_, default) in options.items():
            if getattr(args, dest) is None:
                setattr(args, dest, default)
    return mode


def run(args) -> int:
    import sys

    mode = check_modes(args)
    if mode == validate_tcp.MODE:
        return validate_tcp.run(args)
    if mode == validate_virtio.MODE:
        return validate_virtio.run(args)

    from skbsim.commands.common import print_json
    from skbsim.validate import parse_length_range, parse_routes, sweep_lengths, validate

    routes = parse_routes(args.routes)
    length_range = parse_length_range(args.lengths)
    lengths = sweep_lengths(length_range, None if args.sample == 0 else args.sample, args.seed,
                            boundaries=not args.no_boundaries)
    progress = None if args.json or not sys.stderr.isatty() else (lambda text: print(text, file=sys.stderr))
    result = validate(args.kernel, routes, lengths, udp=not args.no_udp, progress=progress)
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
    table = Table(title=f"tun routes: live kernel vs model ({result['kernel']}, {result['release']})")
    for column in ("route", "event", "frames", "agree", "disagree", "refused writes", "frames/s"):
        table.add_column(column, justify="left" if column in ("route", "event") else "right")
    for route in result["routes"]:
        table.add_row(route["route"], route["event"], str(route["frames"]), str(route["agreements"]),
                      str(route["disagreements"]), str(route["rejected_writes"]), f"{route['frames_per_s']:.0f}")
    print_table(console, table)
    lengths = result["lengths"]
    console.print(f"{lengths['count']} lengths from {lengths['min']} to {lengths['max']}; {result['frames']} frames, "
                  f"{result['agreements']} agree; {result['frames_per_s']:.0f} frames/s injected "
                  "(namespace and trace setup included)", soft_wrap=True)

    for alloc in result["alloc"]:
        console.print(f"alloc --kernel {result['kernel']} --function {alloc['function']} (len {alloc['len']}): "
                      f"{alloc['agreements']} of {alloc['checks']} {alloc['route']} skbs agree", soft_wrap=True)

    udp = result["udp"]
    if udp:
        sweep = Table(title="UDP: SO_MEMINFO while queued and after reading (rmem_alloc, fwd_alloc, drops)")
        for column in ("route", "frames", "agree", "rcvbuf"):
            sweep.add_column(column, justify="left" if column == "route" else "right")
        for row in udp["sweeps"]:
            sweep.add_row(row["route"], str(row["frames"]), str(row["agreements"]), str(row["rcvbuf"]))
        print_table(console, sweep)
        fills = Table(title="UDP: filling a small receive buffer, nobody reading")
        for column in ("route", "fill", "frames", "rcvbuf", "admitted live", "model", "rmem live", "model ",
                       "agree"):
            fills.add_column(column, justify="left" if column in ("route", "fill") else "right")
        for row in udp["fills"]:
            fills.add_row(row["route"], row["fill"], str(row["frames"]), str(row["rcvbuf"]),
                          str(row["admitted_live"]), str(row["admitted_model"]), str(row["rmem_live"]),
                          str(row["rmem_model"]), "yes" if row["agree"] else Text("no", style="red"))
        print_table(console, fills)

    if result["model_leaks"]:
        for line in result["model_leaks"]:
            console.print(f"model leak check: {line}", style="red")
    disagreements = result["disagreements"]
    if disagreements:
        table = Table(title=f"{len(disagreements)} disagreements")
        for column in ("check", "route", "frame len", "field", "live", "model"):
            table.add_column(column, justify="right" if column in ("frame len", "live", "model") else "left")
        for d in disagreements:
            table.add_row(d["check"], d["route"], str(d["frame_len"]), d["field"], str(d["live"]), str(d["model"]))
        print_table(console, table)
        console.print("validation FAILED", style="red")
    else:
        console.print("validation passed: every frame and every socket check agrees", style="green")
