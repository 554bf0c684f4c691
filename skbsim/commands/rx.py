"""``skbsim rx``: one frame through a modelled NIC driver, the skb as the stack gets it."""

from __future__ import annotations

from skbsim.drivers import defaults_help


def add_parser(sub) -> None:
    from skbsim.drivers import DRIVERS

    from skbsim.drivers import DEFAULT_OPTIONS

    lines = []
    for driver in DRIVERS.values():
        lines.append(f"{driver.name}: {driver.summary}")
        lines.extend(f"    --opt {text}" for text in driver.option_help(DEFAULT_OPTIONS.get(driver.name)))
    p = sub.add_parser(
        "rx",
        help="receive one frame through a driver and show the skb it builds",
        description="Driver options:\n  " + "\n  ".join(lines),
        formatter_class=_raw_description(),
    )
    p.add_argument("--kernel", default="6.9",
                   help="built-in kernel (6.1, 6.9, 6.12, 6.18, 7.1), 'host' or a profile .toml (default 6.9)")
    p.add_argument("--kernel-config", help="take the config-dependent inputs (LL_MAX_HEADER, MAX_HEADER, "
                   "MAX_SKB_FRAGS, ...) from this kernel .config")
    p.add_argument("--driver", required=True, help=f"one of: {', '.join(sorted(DRIVERS))}")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a driver option (repeatable, one value per key), e.g. --opt mtu=9000; skbsim's default "
                   f"for ice is {defaults_help('ice')} (the path through __napi_alloc_skb; the kernel's own is "
                   "rx=build_skb), as for skbsim run")
    p.add_argument("--frame-len", required=True, help="frame length on the wire without FCS, 14..65535")
    p.add_argument("--json", action="store_true",
                   help="print the result as one JSON object (docs/schema/rx.schema.json)")
    p.set_defaults(run=run)


def _raw_description():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def run(args) -> int:
    from skbsim.commands.common import print_json
    from skbsim.drivers import parse_opt_assignments, with_default_options
    from skbsim.profile import load_profile
    from skbsim.rx import receive_one

    profile = load_profile(args.kernel, args.kernel_config)
    options = with_default_options(args.driver, parse_opt_assignments(list(args.opt)), profile)
    result = receive_one(profile, args.driver, options, args.frame_len)
    if args.json:
        print_json(result)
    else:
        _print_rx(result)
    return 0


def _print_rx(r: dict) -> None:
    options = " ".join(f"{key}={value}" for key, value in r["options"].items() if key != "rules")
    print(f"{r['driver']} on Linux {r['kernel']} ({r['release']}): {options}")
    if "rules" in r["options"]:
        print(f"  rules: {r['options']['rules']}")
    print(f"one {r['frame_len']}-byte frame")
    if not r["ok"]:
        print(f"  not delivered: {r['reason']}")
    else:
        # tun says which tracepoint its route reaches.  A napi_get_frags() skb (gve) is shown as
        # napi_gro_frags() hands it on after pulling the Ethernet header: what
        # netif_receive_skb_list_entry sees for a flow GRO does not merge.
        frags_skb = r["driver_path"] == "napi_get_frags"
        event = r["options"].get("event", "netif_receive_skb_list_entry" if frags_skb else "napi_gro_receive_entry")
        print(
            f"  skb at {event}: len {r['len']}, data_len {r['data_len']}, truesize {r['truesize']}, "
            f"nr_frags {r['nr_frags']}, head_frag {int(r['head_frag'])}, protocol {r['protocol']}"
        )
        print(f"  built by {r['driver_path']}; path {r['path']}; head from {r['head_source']} "
              f"({r['head_size']} B), headroom {r['headroom']}")
        if r["frags"]:
            sizes = ", ".join(str(frag["size"]) for frag in r["frags"])
            print(f"  frags: {sizes}")
    b = r["buffers"]
    print(
        f"  ring buffers: {b['used']} used, {b['reused']} reused, {b['released']} released, "
        f"{b['copied']} copied out ({b['bytes_copied']} bytes copied into the head)"
    )
    if "page_pool" in r:
        nonzero = ", ".join(f"{name} {value}" for name, value in r["page_pool"].items() if value)
        print(f"  page_pool: {nonzero or 'all counters 0'}")
    for warning in r["warnings"]:
        print(f"warning: {warning}")
    print("leak check: clean" if r["leak_check"] == "clean" else r["leak_check"])
