"""What a run prints and writes: rich tables, the per-packet trace, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from skbsim.errors import InputError
from skbsim.files import shown

#: One record per packet, in this order (docs/output.md says what each field means).
TRACE_FIELDS = ("time_ns", "cpu", "frame_len", "len", "data_len", "truesize", "nr_frags", "path", "head_source",
                "outcome")
TRACE_SUFFIXES = (".jsonl", ".csv")


class TraceWriter:
    """One record per packet, streamed to .jsonl or .csv as the run goes."""

    def __init__(self, path: str):
        self.path = path
        if path.endswith(".jsonl"):
            self.kind = "jsonl"
        elif path.endswith(".csv"):
            self.kind = "csv"
        else:
            raise InputError(f"--trace {shown(path)}: the file name must end in .jsonl or .csv")
        try:
            self.file = open(path, "w", newline="")
        except OSError as err:
            raise InputError(f"--trace {shown(path)}: cannot write: {err.strerror}") from None
        self.csv = None
        if self.kind == "csv":
            self.csv = csv.writer(self.file)
            try:
                self.csv.writerow(TRACE_FIELDS)
            except OSError as err:
                raise self._cannot_write(err) from None

    def _cannot_write(self, err: OSError) -> InputError:
        """A full disk is one line, not a traceback."""
        return InputError(f"--trace {shown(self.path)}: cannot write: {err.strerror}")

    def write(self, time_ns: int, cpu: int, frame_len: int, record, outcome: str) -> None:
        if record is None:
            record = (None, None, None, None, None, None)
        row = (time_ns, cpu, frame_len, *record, outcome)
        try:
            if self.csv is not None:
                self.csv.writerow(row)
            else:
                self.file.write(json.dumps(dict(zip(TRACE_FIELDS, row)), separators=(",", ":")) + "\n")
        except OSError as err:
            raise self._cannot_write(err) from None

    def close(self) -> None:
        if self.file.closed:
            return
        try:
            self.file.close()
        except OSError as err:
            raise self._cannot_write(err) from None


def run_labels(results: list[dict]) -> list[str]:
    """A name for each run: kernel and driver, and the options in which the runs differ, so that no
    two runs of a comparison share a name."""
    keys = sorted({key for r in results for key in r["options"]})
    differing = [key for key in keys if len({r["options"].get(key) for r in results}) > 1]
    labels = []
    for r in results:
        opts = ",".join(f"{key}={r['options'][key]}" for key in differing if key in r["options"])
        labels.append(f"{r['kernel']} {r['driver']}" + (f" {opts}" if opts else ""))
    return labels


def render_summary(results: list[dict], console) -> None:
    """One column per run: the same traffic side by side when there are several (said once, above)."""
    from rich.table import Table

    from skbsim.commands.common import print_table

    console.print("skbsim run", highlight=False)
    for description in sorted({r["traffic"] for r in results}):
        console.print(f"traffic: {description}", highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("")
    for r in results:
        opts = ",".join(f"{k}={v}" for k, v in r["options"].items())
        table.add_column(f"{r['kernel']} {r['driver']}" + (f"\n{opts}" if opts else ""), justify="right")

    def row(label, fn):
        table.add_row(label, *[str(fn(r)) for r in results])

    row("engine", lambda r: r["engine"])
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
    print_table(console, table)
    for r, label in zip(results, run_labels(results)):
        leaks = r["leaks"]
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
    """PNG plots: truesize against frame length; memory and socket occupancy over time.

    Lines are named by run_labels() (what differs between the runs).  The
    socket panel draws each sk_rcvbuf as a dashed line and each run's peak
    sk_rmem_alloc (from the run's own counters: the series is thinned and may
    miss the peak) as a dotted one, so an overshoot of the limit shows.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"--plot {shown(directory)}: cannot create: {err.strerror}") from None
    written = []
    labels = run_labels([result for result, _ in runs])

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (result, extra), label in zip(runs, labels):
        lengths = sorted(extra["truesize_by_len"])
        means = [
            sum(t * n for t, n in extra["truesize_by_len"][length].items()) / sum(extra["truesize_by_len"][length].values())
            for length in lengths
        ]
        ax.plot(lengths, means, marker="o", linestyle="", markersize=3, label=label)
    ax.set_xlabel("frame length on the wire (bytes)")
    ax.set_ylabel("skb truesize (bytes)")
    ax.set_title("truesize against frame length")
    ax.grid(True, alpha=0.3)
    ax.legend()
    path = out / "truesize.png"
    _save(fig, path)
    written.append(str(path))

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    rcvbufs = sorted({result["socket"]["rcvbuf"] for result, _ in runs})
    for (result, extra), label in zip(runs, labels):
        series = extra["series"]
        if not series:
            continue
        times = [t / 1e6 for t, _, _ in series]
        top.plot(times, [m * extra["page_size"] / 1024 for _, m, _ in series], label=label)
        line, = bottom.plot(times, [s / 1024 for _, _, s in series], label=label)
        peak = result["socket"]["peak_rmem_alloc"]
        over = peak - result["socket"]["rcvbuf"]
        bottom.axhline(peak / 1024, color=line.get_color(), linestyle=":", linewidth=1.2,
                       label=f"{label}: peak {peak:,} B" + (f" ({over:+,} B over sk_rcvbuf)" if over > 0 else ""))
    for rcvbuf in rcvbufs:
        bottom.axhline(rcvbuf / 1024, color="black", linestyle="--", linewidth=1,
                       label=f"sk_rcvbuf {rcvbuf:,} B")
    peaks = [result["socket"]["peak_rmem_alloc"] for result, _ in runs]
    if max(peaks) >= 0.9 * min(rcvbufs):
        # The socket fills up: show the top quarter, where the limit and any overshoot are.
        bottom.set_ylim(0.75 * min(rcvbufs) / 1024, 1.01 * max(peaks + rcvbufs) / 1024)
        bottom.set_title("sk_rmem_alloc near the limit (top quarter)", fontsize=9)
    top.set_ylabel("memory in use (KiB)")
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    bottom.set_ylabel("socket sk_rmem_alloc (KiB)")
    bottom.set_xlabel("simulated time (ms)")
    bottom.grid(True, alpha=0.3)
    bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    path = out / "memory.png"
    _save(fig, path)
    written.append(str(path))
    return written


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as err:
        raise InputError(f"--plot {shown(path)}: cannot write: {err.strerror}") from None
    finally:
        plt.close(fig)
