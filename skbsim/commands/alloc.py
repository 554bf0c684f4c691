"""``skbsim alloc``: one RX allocation, every branch decision explained."""

from __future__ import annotations


def add_parser(sub) -> None:
    from skbsim.alloc import CONTEXTS, FUNCTIONS

    p = sub.add_parser("alloc", help="allocate one RX skb and explain every decision")
    p.add_argument("--kernel", default="6.9", help="built-in kernel (6.9, ...), 'host', or a profile .toml")
    p.add_argument("--kernel-config", help="take the config-dependent inputs (LL_MAX_HEADER, MAX_HEADER, "
                   "MAX_SKB_FRAGS, ...) from this kernel .config")
    p.add_argument("--len", dest="length", help="length asked for, 0..4294967295; omit to show a set of lengths")
    p.add_argument(
        "--function",
        choices=FUNCTIONS,
        help="default: __napi_alloc_skb where the kernel has it (up to 6.9), else napi_alloc_skb",
    )
    p.add_argument("--gfp", help="gfp mask, e.g. GFP_ATOMIC, GFP_KERNEL, GFP_DMA, GFP_ATOMIC|__GFP_NOWARN")
    p.add_argument("--context", default="softirq", choices=CONTEXTS, help="where the call runs (default softirq)")
    p.add_argument("--alloc-flags", help="__alloc_skb flags, e.g. SKB_ALLOC_RX|SKB_ALLOC_NAPI")
    p.add_argument("--memalloc-socks", action="store_true", help="sk_memalloc_socks() is true (swap over network)")
    p.add_argument(
        "--low-memory",
        action="store_true",
        help="free memory is below the min watermark: only callers entitled to the reserves get pages",
    )
    p.add_argument("--json", action="store_true",
                   help="print {\"allocations\": [one object per allocation]} (docs/schema/alloc.schema.json)")
    p.set_defaults(run=run)


def run(args) -> int:
    from skbsim.alloc import default_function, explain_alloc, interesting_lengths, parse_length
    from skbsim.commands.common import print_json
    from skbsim.profile import load_profile

    profile = load_profile(args.kernel, args.kernel_config)
    function = args.function or default_function(profile)

    options = dict(
        memalloc_socks=args.memalloc_socks,
        low_memory=args.low_memory,
        context=args.context,
        alloc_flags=args.alloc_flags or "",
    )
    lengths = [parse_length(args.length)] if args.length is not None else interesting_lengths(profile, function)
    results = [explain_alloc(profile, function, n, args.gfp, **options) for n in lengths]
    if args.json:
        print_json({"allocations": results})
    elif args.length is not None:
        _print_alloc(results[0])
    else:
        _print_alloc_table(results)
    return 0


def _print_alloc(result: dict) -> None:
    from skbsim.alloc import draw_buffer

    print(f"{result['function']}(len={result['len']}, gfp={result['gfp']}) on Linux {result['kernel']} "
          f"({result['release']}), {result['context']} context")
    for line in result["decisions"]:
        print(f"  - {line}")
    if not result["ok"]:
        print(f"result: NULL ({result['reason']})")
    else:
        print(
            f"result: path {result['path']}, head from {result['head_source']} ({result['head_size']} B), "
            f"sk_buff from {result['skb_from']}"
        )
        print(
            f"        truesize {result['truesize']}, headroom {result['headroom']}, tailroom {result['tailroom']}, "
            f"end offset {result['end_offset']}, head_frag {int(result['head_frag'])}, "
            f"pfmemalloc {int(result['pfmemalloc'])}"
        )
        print()
        for line in draw_buffer(result):
            print(f"  {line}")
        print()
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    print(result["leak_check"] if result["leak_check"] != "clean" else "leak check: clean")


def _print_alloc_table(results: list[dict]) -> None:
    from rich.table import Table

    from skbsim.commands.common import console, print_table

    first = results[0]
    table = Table(
        title=f"{first['function']} on Linux {first['kernel']} ({first['release']}), gfp {first['gfp']}",
        title_justify="left",
    )
    for column in ("len", "path", "head from", "head size", "truesize", "headroom", "tailroom", "sk_buff from"):
        table.add_column(column, justify="right" if column not in ("path", "head from", "sk_buff from") else "left")
    for r in results:
        if r["ok"]:
            table.add_row(
                str(r["len"]), r["path"], r["head_source"], str(r["head_size"]), str(r["truesize"]),
                str(r["headroom"]), str(r["tailroom"]), r["skb_from"],
            )
        else:
            table.add_row(str(r["len"]), "NULL", "-", "-", "-", "-", "-", "-")
    out = console()
    print_table(out, table)
    leaks = {r["leak_check"] for r in results}
    out.print("leak check: clean after every allocation" if leaks == {"clean"} else f"leak check: {leaks}")
    out.print("One length in detail: skbsim alloc --len 256")
