"""``skbsim run``: traffic through a driver, NAPI and a UDP socket (or a socket per flow: TCP receivers
and UDP sockets), on one or more kernels."""

from __future__ import annotations

import itertools
import sys
import time

from skbsim.commands.common import integer, number
from skbsim.drivers import DRIVERS, defaults_help
from skbsim.errors import InputError
from skbsim.files import shown


def add_parser(sub) -> None:
    from skbsim.sim import MAX_CPUS

    p = sub.add_parser("run", help="simulate the receive path end to end and report memory and drops",
                       description="Traffic through a driver, NAPI and a UDP socket (--socket tcp: a socket per "
                       "flow, TCP receivers with window-limited senders; docs/tcp.md) on one or more kernels. "
                       "--kernel, --driver and --opt compare: every combination runs on the same traffic, side "
                       "by side; every other option takes one value.")
    p.add_argument("--kernel", action="append", help="kernel profile; repeat to compare (default 6.9)")
    p.add_argument("--kernel-config", help="derive config-dependent constants from this .config")
    p.add_argument("--driver", action="append",
                   help=f"one of: {', '.join(sorted(DRIVERS))} (their options: skbsim rx --help); repeat to compare "
                   "(default ice)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="driver option; repeat a key with other values to compare; with several drivers each "
                   f"takes the keys it knows (skbsim's default for ice: {defaults_help('ice')}, the path "
                   "through __napi_alloc_skb; the kernel's own is rx=build_skb)")
    p.add_argument("--traffic", help="fixed:N, uniform:A-B, imix, dist:FILE.csv, tcp-bulk[:mss=N,ts=0|1], pcap:FILE "
                   "(default imix; with --socket tcp, tcp-bulk)")
    p.add_argument("--count", type=integer("--count", 0),
                   help="frames to generate (synthetic default 100000; pcap: all)")
    p.add_argument("--cpus", type=integer("--cpus"), default=1,
                   help=f"CPUs, one RX queue each (RSS), 1..{MAX_CPUS}")
    p.add_argument("--flows", type=integer("--flows", 1),
                   help="synthetic flows spread by RSS (default 16, with --socket tcp 1, at most 65536 there; a capture's "
                   "flows are its own)")
    p.add_argument("--rate", help="arrival rate in packets/s; default 1000000 for synthetic traffic and the "
                   "capture's own timestamps for a pcap ('capture'); for TCP senders the link's rate in frames/s")
    p.add_argument("--arrival", default="constant", choices=("constant", "poisson"))
    p.add_argument("--rcvbuf", type=integer("--rcvbuf", 1), default=212992,
                   help="the UDP socket's sk_rcvbuf in bytes (with --socket tcp: each UDP socket's)")
    p.add_argument("--app-rate", default="unlimited",
                   help="reads per second of each socket's application (a UDP read takes one datagram), "
                   "'unlimited' (as fast as data comes, the default) or 0 (nobody reads)")
    p.add_argument("--socket", choices=("udp", "tcp"),
                   help="udp: every skb lands on one UDP socket (the default for synthetic traffic and for captures "
                   "without TCP); tcp: a socket per flow - TCP receivers (the TCP model) and UDP sockets - with "
                   "window-limited TCP senders for tcp-bulk traffic (the default for captures holding IPv4 TCP)")
    p.add_argument("--tcp", metavar="SENDER",
                   help="--socket tcp with tcp-bulk traffic: each flow's sender, bulk (the default) or "
                   "messages:SIZE[@RATE] (SIZE-byte writes, RATE per second), optionally ,tso=N (GSO frames of "
                   "up to N segments: virtio_net)")
    p.add_argument("--rtt", metavar="MS", help="the senders' round-trip time in ms (default 1): ACKs reach them this "
                   "much later")
    p.add_argument("--duration", metavar="MS",
                   help="the senders stop after this much simulated time (default 60000 ms; --count also bounds them)")
    p.add_argument("--app-read-size", type=integer("--app-read-size", 1), metavar="BYTES",
                   help="bytes one TCP read takes (default: all that is queued)")
    p.add_argument("--so-rcvbuf", type=integer("--so-rcvbuf", 0, 0x7FFFFFFF), metavar="BYTES",
                   help="SO_RCVBUF on every TCP receiver before listen() (doubled, locked: no autotuning; "
                   "default not set)")
    p.add_argument("--seed", type=integer("--seed"), default=0)
    p.add_argument("--packet-cost-ns", type=integer("--packet-cost-ns", 0), default=500,
                   help="simulated softirq CPU time per packet (default 500)")
    p.add_argument("--fault", action="append", default=[], metavar="LAYER[:KEY=VALUE,...]",
                   help="inject allocation failures from the first frame on, as failslab/fail_page_alloc do; "
                   "LAYER is page_alloc, slab, skb_head, skb_data or page_frag; KEYs probability (0..1), "
                   "interval, times (-1: no limit), space (calls let through first), e.g. "
                   "skb_head:probability=0.01 or page_alloc:space=999,times=1; repeat for more layers")
    p.add_argument("--engine", default="fast", choices=("fast", "reference"),
                   help="fast (compiled; used wherever it supports the options, else the reference engine "
                   "runs and says why on stderr) or reference (default fast)")
    p.add_argument("--json", action="store_true",
                   help="print {\"runs\": [one object per run]} (docs/schema/run.schema.json, docs/output.md)")
    p.add_argument("--trace", help="write one record per packet to FILE.jsonl or FILE.csv (fields: docs/output.md)")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots into DIR")
    p.add_argument("--report", metavar="FILE.html",
                   help="write one self-contained HTML page: the summary, interactive charts, the command line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _option_sets(pairs: list[str], drivers: list[str]) -> list[tuple[str, dict]]:
    """(driver, options) of every run: a key given several values makes several runs (their product);
    with several drivers, each takes the keys it knows (skbsim's defaults are added per kernel: see
    with_default_options)."""
    from skbsim.drivers import get_driver

    values: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--opt {pair!r} is not KEY=VALUE")
        values.setdefault(key, [])
        if value not in values[key]:
            values[key].append(value)
    known = {name: {option.name for option in get_driver(name).options} for name in drivers}
    for key in values:
        if not any(key in names for names in known.values()):
            raise InputError(f"--opt {key}: no option of {' or '.join(drivers)} "
                             f"(known: {', '.join(sorted(set().union(*known.values())))})")
    runs = []
    for driver in drivers:
        mine = {key: chosen for key, chosen in values.items() if key in known[driver]}
        keys = sorted(mine)
        runs += [(driver, dict(zip(keys, combo))) for combo in itertools.product(*(mine[k] for k in keys))]
    return runs


def configs_from_args(args) -> list:
    """The RunConfigs one ``skbsim run`` command line asks for (one per --kernel, --driver and --opt
    value), validated."""
    from skbsim.drivers import with_default_options
    from skbsim.mm.fault import parse_fault
    from skbsim.profile import load_profile
    from skbsim.sim import RunConfig

    traffic = args.traffic or ("tcp-bulk" if args.socket == "tcp" else "imix")
    capture = _is_capture(traffic)
    if capture and args.flows is not None:
        raise InputError("--flows is for synthetic traffic: a capture's flows are its packets' own addresses "
                         "and ports")
    rate = number("--rate", args.rate or ("capture" if capture else "1000000"), ("capture",))
    app_rate = number("--app-rate", args.app_rate, ("unlimited",), zero="nobody reads")
    count = args.count if args.count is not None else _default_count(traffic)
    # A capture's default socket is decided when its run starts (sim.resolve_socket()).
    socket = args.socket or ("auto" if capture else "udp")
    senders = socket == "tcp" and not capture
    for option, value in (("--tcp", args.tcp), ("--rtt", args.rtt), ("--duration", args.duration)):
        if value is not None and not senders:
            raise InputError(f"{option} is for TCP senders: --socket tcp with tcp-bulk traffic")
    rtt = number("--rtt", args.rtt or "1")
    duration = number("--duration", args.duration or "60000")
    kernels = list(dict.fromkeys(args.kernel or ["6.9"]))
    drivers = list(dict.fromkeys(args.driver or ["ice"]))
    profiles = {k: load_profile(k, args.kernel_config) for k in kernels}
    configs = [
        RunConfig(kernel=k, kernel_config=args.kernel_config, driver=driver,
                  options=with_default_options(driver, opts, profiles[k]),
                  traffic=traffic, count=count,
                  cpus=args.cpus, flows=args.flows or (1 if senders else 16), rate=None if rate == "capture" else rate,
                  arrival=args.arrival, rcvbuf=args.rcvbuf, app_rate=None if app_rate == "unlimited" else app_rate,
                  seed=args.seed, packet_cost_ns=args.packet_cost_ns,
                  faults=tuple(parse_fault(text) for text in args.fault), socket=socket, tcp=args.tcp or "bulk",
                  rtt_ms=rtt, app_read_size=args.app_read_size, so_rcvbuf=args.so_rcvbuf, duration_ms=duration)
        for k in kernels
        for driver, opts in _option_sets(args.opt, drivers)
    ]
    for config in configs:
        config.validate()
    return configs


def run(args) -> int:
    from skbsim.cli import command_line
    from skbsim.commands.common import console, output_dir, output_file, print_json
    from skbsim.fast import simulate_engine
    from skbsim.htmlreport import REPORT_SUFFIXES
    from skbsim.report import TRACE_SUFFIXES, TraceWriter, render_summary, write_plots, write_run_report
    from skbsim.sim import resolve_socket

    configs = configs_from_args(args)
    if args.trace and len(configs) > 1:
        raise InputError("--trace takes one run; drop the extra --kernel/--driver/--opt values")
    # Where the results go is checked before the first packet, not after the last.
    if args.trace:
        output_file("--trace", args.trace, TRACE_SUFFIXES)
    if args.plot:
        output_dir("--plot", args.plot)
    if args.report:
        output_file("--report", args.report, REPORT_SUFFIXES)

    engine = args.engine
    if engine == "fast":
        from skbsim.fast.cache import prepare

        # compiled yet?  If not: small runs use the reference engine while it compiles in the
        # background, larger ones wait for it; either is said on stderr
        engine = prepare(configs, say=lambda line: print(line, file=sys.stderr))
    runs = []
    for config in configs:
        config = resolve_socket(config)
        trace = TraceWriter(args.trace, per_flow=config.socket == "tcp") if args.trace else None
        started = time.perf_counter()
        with _Progress(config, quiet=args.quiet) as progress:
            try:
                result, extra, fell_back = simulate_engine(config, engine, trace=trace, plot=bool(args.plot or args.report),
                                                           progress=progress.update)
            finally:
                if trace is not None:
                    trace.close()
        elapsed = time.perf_counter() - started
        if fell_back:
            print(f"{config.label()}: reference engine used: {fell_back}", file=sys.stderr)
        runs.append((result, extra))
        if not args.json:
            rate_pps = result["packets"] / elapsed if elapsed > 0 else 0
            print(f"{config.label()}: {result['packets']:,} packets in {elapsed:.2f} s "
                  f"({rate_pps:,.0f} packets/s simulated)", file=sys.stderr)
    results = [r for r, _ in runs]
    if args.json:
        print_json({"runs": results}, sort_keys=True)
    else:
        render_summary(results, console())
    if args.plot:
        for path in write_plots(args.plot, runs):
            print(f"plot: {shown(path)}", file=sys.stderr)
    if args.report:
        print(f"report: {shown(write_run_report(args.report, runs, command_line(args)))}", file=sys.stderr)
    return 0 if all(r["leaks"]["clean"] for r in results) else 1


def _is_capture(traffic: str) -> bool:
    return traffic.split(":", 1)[0].strip().lower() in ("pcap", "pcapng")


def _default_count(traffic: str) -> int | None:
    return None if _is_capture(traffic) else 100_000


class _Progress:
    """A rich progress bar on stderr, shown only after a second, on a terminal, unless --quiet."""

    def __init__(self, config, quiet: bool):
        self.enabled = not quiet and sys.stderr.isatty()
        self.total = config.count
        self.started = time.perf_counter()
        self.bar = None
        self.task = None

    def __enter__(self):
        return self

    def update(self, packets: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.perf_counter() - self.started < 1.0:
                return
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("simulating", total=self.total)
        self.bar.update(self.task, completed=packets)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
