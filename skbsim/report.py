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
            self.csv.writerow(TRACE_FIELDS)

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


def summary_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The summary's column headers (one per run) and rows (a label, then one value per run)."""
    headers = [""]
    for r in results:
        opts = ",".join(f"{k}={v}" for k, v in r["options"].items())
        headers.append(f"{r['kernel']} {r['driver']}" + (f"\n{opts}" if opts else ""))
    rows: list[list[str]] = []

    def row(label, fn):
        rows.append([label, *[str(fn(r)) for r in results]])

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
    return headers, rows


def leak_lines(results: list[dict]) -> list[str]:
    """The leak check's verdict and the model's warnings, one line each, per run."""
    lines = []
    for r in results:
        leaks = r["leaks"]
        label = f"{r['kernel']} {r['driver']}"
        if leaks["clean"]:
            lines.append(f"leak check ({label}): clean - every page, slab object and skb was given back")
        else:
            lines.append(
                f"leak check ({label}): {leaks['skbs']} skbs, {leaks['slab_objects']} slab objects, "
                f"{leaks['pages']} pages not given back"
            )
        lines.extend(f"warning ({label}): {warning}" for warning in r["warnings"])
    return lines


def render_summary(results: list[dict], console) -> None:
    """One column per run: the same traffic side by side when there are several."""
    from rich.table import Table

    headers, rows = summary_rows(results)
    table = Table(title="skbsim run", title_justify="left")
    table.add_column(headers[0])
    for header in headers[1:]:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for line in leak_lines(results):
        console.print(line)


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def run_label(result: dict) -> str:
    return f"{result['kernel']} {result['driver']}"


def truesize_curve(extra: dict) -> tuple[list[int], list[float]]:
    """Mean truesize per frame length on the wire, from a run's extra data."""
    lengths = sorted(extra["truesize_by_len"])
    means = [
        sum(t * n for t, n in extra["truesize_by_len"][length].items()) / sum(extra["truesize_by_len"][length].values())
        for length in lengths
    ]
    return lengths, means


def memory_series(extra: dict) -> tuple[list[float], list[float], list[float]]:
    """(simulated ms, memory in use in KiB, sk_rmem_alloc in KiB) over a run, from its extra data."""
    series = extra["series"]
    return ([t / 1e6 for t, _, _ in series], [m * extra["page_size"] / 1024 for _, m, _ in series],
            [s / 1024 for _, _, s in series])


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
        lengths, means = truesize_curve(extra)
        ax.plot(lengths, means, marker="o", linestyle="", markersize=3, label=run_label(result))
    ax.set_xlabel(TRUESIZE_AXES[0])
    ax.set_ylabel(TRUESIZE_AXES[1])
    ax.set_title("truesize against frame length")
    ax.grid(True, alpha=0.3)
    ax.legend()
    path = out / "truesize.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(str(path))

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for result, extra in runs:
        if not extra["series"]:
            continue
        times, memory, rmem = memory_series(extra)
        top.plot(times, memory, label=run_label(result))
        bottom.plot(times, rmem, label=run_label(result))
    top.set_ylabel(MEMORY_AXES[1])
    top.grid(True, alpha=0.3)
    top.legend()
    bottom.set_ylabel(MEMORY_AXES[2])
    bottom.set_xlabel(MEMORY_AXES[0])
    bottom.grid(True, alpha=0.3)
    path = out / "memory.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(str(path))
    return written


TRUESIZE_AXES = ("frame length on the wire (bytes)", "skb truesize (bytes)")
MEMORY_AXES = ("simulated time (ms)", "memory in use (KiB)", "socket sk_rmem_alloc (KiB)")


def write_run_report(path: str, runs: list[tuple[dict, dict]], command_line: str) -> str:
    """``skbsim run --report``: the summary table and the PNG plots as interactive charts, in one HTML file."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    from skbsim.htmlreport import HtmlReport

    results = [result for result, _ in runs]
    report = HtmlReport("skbsim run", subtitle=", ".join(run_label(r) for r in results))
    report.heading("Summary")
    headers, rows = summary_rows(results)
    report.table(headers, rows)
    for line in leak_lines(results):
        report.paragraph(line)

    report.heading("truesize against frame length")
    fig = go.Figure()
    for result, extra in runs:
        lengths, means = truesize_curve(extra)
        fig.add_trace(go.Scatter(x=lengths, y=means, mode="markers", marker=dict(size=5), name=_trace_name(result)))
    fig.update_layout(xaxis_title=TRUESIZE_AXES[0], yaxis_title=TRUESIZE_AXES[1], hovermode="closest")
    report.figure(fig, caption="Mean skb truesize of the delivered skbs at each frame length.")

    report.heading("Memory and socket occupancy over time")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for i, (result, extra) in enumerate(runs):
        times, memory, rmem = memory_series(extra)
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        name = _trace_name(result)
        fig.add_trace(go.Scatter(x=times, y=memory, mode="lines", name=name, legendgroup=name,
                                 line=dict(color=color)), row=1, col=1)
        fig.add_trace(go.Scatter(x=times, y=rmem, mode="lines", name=name, legendgroup=name, showlegend=False,
                                 line=dict(color=color)), row=2, col=1)
    fig.update_yaxes(title_text=MEMORY_AXES[1], row=1, col=1)
    fig.update_yaxes(title_text=MEMORY_AXES[2], row=2, col=1)
    fig.update_xaxes(title_text=MEMORY_AXES[0], row=2, col=1)
    report.figure(fig, height=600, caption="Pages in use by the whole receive path, and the socket's sk_rmem_alloc.")

    report.heading("Command line")
    report.commands([command_line])
    return report.write(path)


def _trace_name(result: dict) -> str:
    opts = ",".join(f"{k}={v}" for k, v in result["options"].items())
    return run_label(result) + (f" {opts}" if opts else "")

