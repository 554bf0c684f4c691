"""What a run prints and writes: rich tables, the per-packet trace, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from skbsim.errors import InputError

TRACE_FIELDS = ("time_ns", "cpu", "frame_len", "len", "data_len", "truesize", "nr_frags", "path", "head_source",
                "outcome")


class TraceWriter:
    """One record per packet, streamed to .jsonl or .csv as the run goes."""

    def __init__(self, path: str):
        self.path = path
        if path.endswith(".jsonl"):
            self.kind = "jsonl"
        elif path.endswith(".csv"):
            self.kind = "csv"
        else:
            raise InputError(f"--trace {path}: the file name must end in .jsonl or .csv")
        try:
            self.file = open(path, "w", newline="")
        except OSError as err:
            raise InputError(f"--trace {path}: cannot write: {err.strerror}") from None
        self.csv = None
        if self.kind == "csv":
            self.csv = csv.writer(self.file)
        self._header()

    def _header(self) -> None:
        if self.csv is not None:
            self.csv.writerow(TRACE_FIELDS)

    def restart(self) -> bool:
        """Empty the file and start it over (a run redone by the other engine); False when the
        destination cannot be rewound (a pipe): the caller must not have written to it then."""
        if not self.file.seekable():
            return False
        self.file.seek(0)
        self.file.truncate()
        self._header()
        return True

    def write(self, time_ns: int, cpu: int, frame_len: int, record, outcome: str) -> None:
        if record is None:
            record = (None, None, None, None, None, None)
        row = (time_ns, cpu, frame_len, *record, outcome)
        if self.csv is not None:
            self.csv.writerow(row)
        else:
            self.file.write(json.dumps(dict(zip(TRACE_FIELDS, row)), separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.file.close()


def render_summary(results: list[dict], console) -> None:
    """One column per run: the same traffic side by side when there are several."""
    from rich.table import Table

    table = Table(title="skbsim run", title_justify="left")
    table.add_column("")
    for r in results:
        opts = ",".join(f"{k}={v}" for k, v in r["options"].items())
        table.add_column(f"{r['kernel']} {r['driver']}" + (f"\n{opts}" if opts else ""), justify="right")

    def row(label, fn):
        table.add_row(label, *[str(fn(r)) for r in results])

    row("engine", lambda r: r["engine"])
    row("traffic", lambda r: r["traffic"])
    row("packets", lambda r: f"{r['packets']:,}")
    row("bytes", lambda r: f"{r['bytes']:,}")
    row("delivered", lambda r: f"{r['delivered']:,}")
    for reason in ("ring_full", "oversize", "driver", "socket_rcvbuf"):
        row(f"dropped: {reason}", lambda r, reason=reason: f"{r['dropped'][reason]:,}")
    row("truesize / packet", lambda r: r["truesize_per_packet"])
    row("truesize / wire byte", lambda r: r["truesize_per_byte"])
    paths = sorted({p for r in results for p in r["paths"]})
    for path in paths:
        row(f"path {path}", lambda r, path=path: f"{r['paths'].get(path, 0):,}")
    sources = sorted({s for r in results for s in r["head_sources"]})
    for source in sources:
        row(f"head {source}", lambda r, source=source: f"{r['head_sources'].get(source, 0):,}")
    orders = sorted({int(o) for r in results for o in r["pages"]["allocated_by_order"]})
    for order in orders:
        row(
            f"pages order {order} taken/returned",
            lambda r, o=str(order): f"{r['pages']['allocated_by_order'].get(o, 0):,}/{r['pages']['freed_by_order'].get(o, 0):,}",
        )
    row("peak memory in use", lambda r: _bytes(r["pages"]["peak_bytes_in_use"]))
    row("peak pages pinned by queued skbs", lambda r: f"{r['pages']['peak_pinned_by_queued_skbs']:,}")
    row("page_frag allocs/refills/reuses", lambda r: "{napi_allocs:,}/{napi_refills:,}/{napi_reuses:,}".format(**r["page_frag"]))
    row("1K frag allocs/refills", lambda r: "{small_1k_allocs:,}/{small_1k_refills:,}".format(**r["page_frag"]))
    row("skb cache gets/hits", lambda r: "{gets:,}/{hits:,}".format(**r["napi_skb_cache"]))
    row("skb cache refills/flushes", lambda r: "{refills:,}/{flushes:,}".format(**r["napi_skb_cache"]))
    row("NAPI polls / time squeeze", lambda r: f"{r['napi']['polls']:,} / {r['napi']['time_squeeze']:,}")
    row("socket rcvbuf / peak rmem", lambda r: f"{r['socket']['rcvbuf']:,} / {r['socket']['peak_rmem_alloc']:,}")
    row("socket drops", lambda r: f"{r['socket']['drops']:,}")
    layers = sorted({layer for r in results for layer in r.get("faults", {})})
    if layers:
        # --fault runs: what was injected, and what the driver and the skb cache made of it
        for layer in layers:
            row(f"faults injected: {layer}", lambda r, layer=layer: f"{r.get('faults', {}).get(layer, {}).get('injected', 0):,}")
        row("skb / buffer alloc failures", lambda r: "{skb_alloc_failures:,} / {buffer_alloc_failures:,}".format(
            **r["driver_stats"]))
        row("skb cache refill failures", lambda r: f"{r['napi_skb_cache']['refill_failures']:,}")
    console.print(table)
    for r in results:
        leaks = r["leaks"]
        label = f"{r['kernel']} {r['driver']}"
        if leaks["clean"]:
            console.print(f"leak check ({label}): clean - every page, slab object and skb was given back")
        else:
            console.print(
                f"leak check ({label}): {leaks['skbs']} skbs, {leaks['slab_objects']} slab objects, "
                f"{leaks['pages']} pages not given back"
            )
        for warning in r["warnings"]:
            console.print(f"warning ({label}): {warning}")


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def write_plots(directory: str, runs: list[tuple[dict, dict]]) -> list[str]:
    """PNG plots: truesize against frame length; memory and socket occupancy over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--plot {directory}: cannot create: {err.strerror}") from None
    written = []

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for result, extra in runs:
        lengths = sorted(extra["truesize_by_len"])
        means = [
            sum(t * n for t, n in extra["truesize_by_len"][length].items()) / sum(extra["truesize_by_len"][length].values())
            for length in lengths
        ]
        ax.plot(lengths, means, marker="o", linestyle="", markersize=3, label=f"{result['kernel']} {result['driver']}")
    ax.set_xlabel("frame length on the wire (bytes)")
    ax.set_ylabel("skb truesize (bytes)")
    ax.set_title("truesize against frame length")
    ax.grid(True, alpha=0.3)
    ax.legend()
    path = out / "truesize.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(str(path))

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for result, extra in runs:
        series = extra["series"]
        if not series:
            continue
        times = [t / 1e6 for t, _, _ in series]
        label = f"{result['kernel']} {result['driver']}"
        top.plot(times, [m * extra["page_size"] / 1024 for _, m, _ in series], label=label)
        bottom.plot(times, [s / 1024 for _, _, s in series], label=label)
    top.set_ylabel("memory in use (KiB)")
    top.grid(True, alpha=0.3)
    top.legend()
    bottom.set_ylabel("socket sk_rmem_alloc (KiB)")
    bottom.set_xlabel("simulated time (ms)")
    bottom.grid(True, alpha=0.3)
    path = out / "memory.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(str(path))
    return written
