"""``skbsim run``: traffic through a driver, NAPI and a UDP socket, on one or more kernels."""

from __future__ import annotations

import itertools
import json
import sys
import time

from skbsim.errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="simulate the receive path end to end and report memory and drops")
    p.add_argument("--kernel", action="append", help="kernel profile; repeat to compare (default 6.9)")
    p.add_argument("--kernel-config", help="derive config-dependent constants from this .config")
    p.add_argument("--driver", default="ice", help="ice, copybreak or tun (default ice)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="driver option; repeat a key with other values to compare (default for ice: rx=legacy)")
    p.add_argument("--traffic", default="imix", help="fixed:N, uniform:A-B, imix, dist:FILE.csv, pcap:FILE")
    p.add_argument("--count", type=_int("--count"), help="frames to generate (synthetic default 100000; pcap: all)")
    p.add_argument("--cpus", type=_int("--cpus"), default=1, help="CPUs, one RX queue each (RSS)")
    p.add_argument("--flows", type=_int("--flows"), default=16, help="synthetic flows spread by RSS")
    p.add_argument("--rate", help="arrival rate in packets/s; default 1000000 for synthetic traffic and the "
                   "capture's own timestamps for a pcap ('capture')")
    p.add_argument("--arrival", default="constant", choices=("constant", "poisson"))
    p.add_argument("--rcvbuf", type=_int("--rcvbuf"), default=212992, help="the socket's sk_rcvbuf in bytes")
    p.add_argument("--app-rate", default="unlimited", help="application reads per second, or 'unlimited'")
    p.add_argument("--seed", type=_int("--seed"), default=0)
    p.add_argument("--packet-cost-ns", type=_int("--packet-cost-ns"), default=500,
                   help="simulated softirq CPU time per packet (default 500)")
    p.add_argument("--fault", action="append", default=[], metavar="LAYER[:KEY=VALUE,...]",
                   help="inject allocation failures from the first frame on, as failslab/fail_page_alloc do; "
                   "LAYER is page_alloc, slab, skb_head, skb_data or page_frag; KEYs probability (0..1), "
                   "interval, times (-1: no limit), space (calls let through first), e.g. "
                   "skb_head:probability=0.01 or page_alloc:space=999,times=1; repeat for more layers")
    p.add_argument("--engine", default="fast", choices=("fast", "reference"),
                   help="fast (compiled; used wherever it supports the options, else the reference engine "
                   "runs and says why on stderr) or reference (default fast)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--trace", help="write one record per packet to FILE.jsonl or FILE.csv")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots into DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _int(name):
    def parse(text: str) -> int:
        try:
            return int(text, 0)
        except ValueError:
            raise InputError(f"{name} {text!r} is not an integer") from None
    return parse


def _rate(text: str, name: str, words: tuple[str, ...]) -> float | None:
    if text in words:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{name} {text!r} is not a number (or one of: {', '.join(words)})") from None
    if not value > 0 or value != value or value == float("inf"):
        raise InputError(f"{name} must be a positive number, got {text}")
    return value


def _option_sets(pairs: list[str], driver: str) -> list[dict]:
    """--opt k=v ...: a key given several values makes several runs (their product)."""
    values: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--opt {pair!r} is not KEY=VALUE")
        values.setdefault(key, [])
        if value not in values[key]:
            values[key].append(value)
    if driver == "ice" and "rx" not in values:
        values["rx"] = ["legacy"]  # the seed's path: ice_construct_skb -> __napi_alloc_skb
    keys = sorted(values)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values[k] for k in keys))] or [{}]


def run(args) -> int:
    from rich.console import Console

    from skbsim.report import TraceWriter, render_summary, write_plots
    from skbsim.fast import simulate_engine
    from skbsim.mm.fault import parse_fault
    from skbsim.sim import RunConfig

    if args.cpus < 1:
        raise InputError(f"--cpus must be at least 1, got {args.cpus}")
    capture = args.traffic.split(":", 1)[0].strip().lower() in ("pcap", "pcapng")
    rate = _rate(args.rate or ("capture" if capture else "1000000"), "--rate", ("capture",))
    app_rate = _rate(args.app_rate, "--app-rate", ("unlimited",))
    kernels = args.kernel or ["6.9"]
    configs = [
        RunConfig(kernel=k, kernel_config=args.kernel_config, driver=args.driver, options=opts,
                  traffic=args.traffic, count=args.count if args.count is not None else _default_count(args.traffic),
                  cpus=args.cpus, flows=args.flows, rate=rate, arrival=args.arrival, rcvbuf=args.rcvbuf,
                  app_rate=app_rate, seed=args.seed, packet_cost_ns=args.packet_cost_ns,
                  faults=tuple(parse_fault(text) for text in args.fault))
        for k in kernels
        for opts in _option_sets(args.opt, args.driver)
    ]
    if args.trace and len(configs) > 1:
        raise InputError("--trace takes one run; drop the extra --kernel/--opt values")
    for config in configs:
        config.validate()

    engine = args.engine
    if engine == "fast":
        from skbsim.fast.cache import prepare

        # compiled yet?  If not: small runs use the reference engine while it compiles in the
        # background, larger ones wait for it; either is said on stderr
        engine = prepare(configs, say=lambda line: print(line, file=sys.stderr))
    console = Console(stderr=False)
    runs = []
    for config in configs:
        trace = TraceWriter(args.trace) if args.trace else None
        started = time.perf_counter()
        with _Progress(config, quiet=args.quiet) as progress:
            try:
                result, extra, fell_back = simulate_engine(config, engine, trace=trace, plot=bool(args.plot),
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
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2, sort_keys=True))
    else:
        render_summary(results, console)
    if args.plot:
        for path in write_plots(args.plot, runs):
            print(f"plot: {path}", file=sys.stderr)
    return 0 if all(r["leaks"]["clean"] for r in results) else 1


def _default_count(traffic: str) -> int | None:
    return None if traffic.split(":", 1)[0].lower() in ("pcap", "pcapng") else 100_000


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
