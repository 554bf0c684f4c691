"""The library API: what the commands do, as functions returning what their ``--json`` prints.

Imported lazily by ``import skbsim`` (see skbsim/__init__.py); docs/api.md
shows each function with examples that tests/test_api.py runs.  Bad input
raises :class:`skbsim.errors.InputError` with the same one-line message the
command prints.
"""

from __future__ import annotations

from skbsim.errors import InputError


def profile_names() -> list[str]:
    """The built-in kernels, oldest first (``--kernel`` also takes 'host' and a profile file)."""
    from skbsim.profile import builtin_names

    return builtin_names()


def allocate(length: int, *, kernel: str = "6.9", kernel_config: str | None = None, function: str | None = None,
             gfp: str | None = None, context: str = "softirq", memalloc_socks: bool = False,
             low_memory: bool = False, alloc_flags: str = "") -> dict:
    """One RX allocation explained: ``skbsim alloc --len LENGTH``, one entry of its "allocations".

    ``function`` defaults to __napi_alloc_skb where the kernel has it (up to 6.9), else
    napi_alloc_skb; ``gfp`` is a mask such as "GFP_ATOMIC|__GFP_NOWARN".
    """
    from skbsim.alloc import default_function, explain_alloc, parse_length
    from skbsim.profile import load_profile

    profile = load_profile(kernel, kernel_config)
    return explain_alloc(profile, function or default_function(profile), parse_length(str(length)), gfp,
                         memalloc_socks=memalloc_socks, low_memory=low_memory, context=context,
                         alloc_flags=alloc_flags)


def receive(frame_len: int, *, kernel: str = "6.9", driver: str = "ice", options: dict[str, str] | None = None,
            kernel_config: str | None = None) -> dict:
    """One frame through a driver: ``skbsim rx``.  skbsim's default options apply (ice: rx=legacy)."""
    from skbsim.drivers import with_default_options
    from skbsim.profile import load_profile
    from skbsim.rx import receive_one

    profile = load_profile(kernel, kernel_config)
    return receive_one(profile, driver, with_default_options(driver, options, profile), frame_len)


def run(*, kernel: str = "6.9", driver: str = "ice", options: dict[str, str] | None = None, traffic: str = "imix",
        count: int | None = None, engine: str = "fast", faults: tuple[str, ...] = (), **config) -> dict:
    """Traffic through a driver, NAPI and a UDP socket: one entry of ``skbsim run --json``'s "runs".

    ``count`` defaults to 100000 frames of synthetic traffic and the whole
    capture for ``pcap:``; ``faults`` are ``--fault`` texts; every other
    keyword is a field of :class:`skbsim.sim.RunConfig` (``cpus``, ``flows``,
    ``rate`` (None: a capture's own timestamps), ``arrival``, ``rcvbuf``,
    ``app_rate`` (None: unlimited, 0: nobody reads), ``seed``,
    ``packet_cost_ns``, ``kernel_config``; ``socket`` "tcp" for a socket per
    flow - TCP receivers, with window-limited senders for tcp-bulk traffic -
    and ``tcp``, ``rtt_ms``, ``duration_ms``, ``app_read_size``,
    ``so_rcvbuf``: docs/tcp.md; the library's default is "udp", captures
    too).  A run the fast engine does not cover runs on the reference
    engine; its "engine" field says which ran.
    """
    from dataclasses import fields

    from skbsim.drivers import with_default_options
    from skbsim.fast import simulate_engine
    from skbsim.mm.fault import parse_fault
    from skbsim.profile import load_profile
    from skbsim.sim import RunConfig

    known = {f.name for f in fields(RunConfig)} - {"kernel", "driver", "options", "traffic", "count", "faults"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise InputError(f"run() has no setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if count is None and traffic.split(":", 1)[0].strip().lower() not in ("pcap", "pcapng"):
        count = 100_000
    if traffic.split(":", 1)[0].strip().lower() in ("pcap", "pcapng"):
        config.setdefault("rate", None)
    profile = load_profile(kernel, config.get("kernel_config"))
    run_config = RunConfig(kernel=kernel, driver=driver, options=with_default_options(driver, options, profile),
                           traffic=traffic, count=count, faults=tuple(parse_fault(text) for text in faults), **config)
    run_config.validate()
    result, _extra, _why = simulate_engine(run_config, engine)
    return result


def tcp(steps: list[str] | tuple[str, ...], *, kernel: str = "6.18", driver: str = "tun",
        options: dict[str, str] | None = None, so_rcvbuf: int | None = None, cc: str = "cubic",
        syn: str = "mss=1460,wscale=7,ts=0,sack=0", step_ms: int = 250, explain: bool = False,
        kernel_config: str | None = None) -> dict:
    """A scripted peer against one receiving TCP socket: one entry of ``skbsim tcp --json``'s "runs".

    ``steps`` are STEP texts (``"send:1000x3"``, ``"read"`` ...; docs/tcp.md) and ``syn`` the
    ``--syn`` text; skbsim.tcp_session.play() takes them parsed.  The kernel's leak check runs
    at the end (a leak raises).
    """
    from skbsim.drivers import with_default_options
    from skbsim.tcp_session import play
    from skbsim.tcp_steps import parse_steps, parse_syn

    if isinstance(steps, str):
        raise InputError("tcp() takes a list of steps, e.g. ['send:1000x3', 'read']")
    return play(kernel, driver, with_default_options(driver, options), parse_steps(list(steps)),
                so_rcvbuf=so_rcvbuf, cc=cc, syn=parse_syn(syn), step_ms=step_ms, explain=explain,
                kernel_config=kernel_config)


def length_sweep(lengths: str | int = "0:9000", *, kernels: tuple[str, ...] | list[str] | None = None,
                 function: str = "napi_alloc_skb", gfp: str | None = None, by_path: bool = False,
                 kernel_config: str | None = None, driver: str | None = None,
                 options: dict[str, str] | None = None) -> dict:
    """One allocation function at every length of ``lengths`` ("FIRST:LAST[:STEP]" or one length) on
    each kernel, or with ``driver`` one frame of each length through that driver (with ``options``):
    ``skbsim sweep --json``.  ``kernels`` defaults to every built-in."""
    from skbsim.errors import InputError
    from skbsim.profile import builtin_names, load_profile
    from skbsim.sweep import comparison_rows, parse_len_range, sweep, sweep_as_dict

    kernels = builtin_names() if kernels is None else kernels
    if options and driver is None:
        raise InputError("options need a driver")
    length_range = parse_len_range(str(lengths))
    sweeps = sweep([load_profile(spec, kernel_config) for spec in kernels], function, length_range, gfp,
                   driver=driver, options=options)
    return sweep_as_dict(sweeps, comparison_rows(sweeps, by_path=by_path), by_path)
