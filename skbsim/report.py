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
#: Further fields of runs with a socket per flow (--socket tcp), after those.
FLOW_TRACE_FIELDS = ("flow", "seq", "payload", "route", "verdict", "window", "rmem_alloc", "rcvbuf")


class TraceWriter:
    """One record per packet, streamed to .jsonl or .csv as the run goes."""

    def __init__(self, path: str, per_flow: bool = False):
        self.path = path
        self.fields = TRACE_FIELDS + FLOW_TRACE_FIELDS if per_flow else TRACE_FIELDS
        self.padding = (None,) * len(FLOW_TRACE_FIELDS) if per_flow else ()
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
        self._header()

    def _header(self) -> None:
        if self.csv is not None:
            try:
                self.csv.writerow(self.fields)
            except OSError as err:
                raise self._cannot_write(err) from None

    def _cannot_write(self, err: OSError) -> InputError:
        """A full disk is one line, not a traceback."""
        return InputError(f"--trace {shown(self.path)}: cannot write: {err.strerror}")

    def restart(self) -> bool:
        """Empty the file and start it over (a run redone by the other engine); False when the
        destination cannot be rewound (a pipe): the caller must not have written to it then."""
        if not self.file.seekable():
            return False
        self.file.seek(0)
        self.file.truncate()
        self._header()
        return True

    def write(self, time_ns: int, cpu: int, frame_len: int, record, outcome: str, flow: tuple = ()) -> None:
        """One record; ``flow`` holds the FLOW_TRACE_FIELDS of a run with a socket per flow (missing ones
        are null)."""
        if record is None:
            record = (None, None, None, None, None, None)
        row = (time_ns, cpu, frame_len, *record, outcome)
        if self.padding:
            row += tuple(flow) + self.padding[len(flow):]
        try:
            if self.csv is not None:
                self.csv.writerow(row)
            else:
                self.file.write(json.dumps(dict(zip(self.fields, row)), separators=(",", ":")) + "\n")
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


def summary_heading(results: list[dict]) -> list[str]:
    """The lines above the summary table: its title, then the traffic, said once for all the runs."""
    return ["skbsim run", *(f"traffic: {description}" for description in sorted({r["traffic"] for r in results}))]


def summary_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """The summary's column headers (one per run) and rows (a label, then one value per run): what the
    terminal's table and the HTML report both show."""
    headers = [""]
    for r in results:
        opts = ",".join(f"{k}={v}" for k, v in r["options"].items())
        headers.append(f"{r['kernel']} {r['driver']}" + (f"\n{opts}" if opts else ""))
    rows: list[list[str]] = []

    def row(label, fn):
        rows.append([label, *[str(fn(r)) for r in results]])

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
    if any("gro" in r for r in results):
        # TCP runs: what GRO merged, and what one merged skb costs.
        def gro(r, key, fmt="{:,}"):
            return fmt.format(r["gro"][key]) if "gro" in r else "-"

        row("GRO skbs in / out", lambda r: f"{gro(r, 'skbs_in')} / {gro(r, 'skbs_out')}")
        row("GRO segments / skb", lambda r: gro(r, "segments_per_skb"))
        row("GRO truesize / skb", lambda r: gro(r, "truesize_per_skb"))
        row("GRO truesize / byte", lambda r: gro(r, "truesize_per_byte"))
        row("GRO merged: stolen head/frags/frag_list", lambda r: "{stolen_head:,}/{frags:,}/{frag_list:,}".format(
            **r["gro"]["merged"]) if "gro" in r else "-")
        row("GRO sk_buffs to NAPI cache", lambda r: gro(r, "napi_cache_puts"))
        reasons = sorted({reason for r in results for reason in r.get("gro", {}).get("flushes", {})})
        for reason in reasons:
            row(f"GRO flushes: {reason}", lambda r, reason=reason: f"{r['gro']['flushes'].get(reason, 0):,}"
                if "gro" in r else "-")
    if any("tcp" in r for r in results):
        _tcp_rows(results, row)
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
    if any("page_pool" in r for r in results):
        from skbsim.net.page_pool import PP_STATS

        # The page_pool counters under the names ethtool -S gives them, summed over the queues.
        for name in PP_STATS:
            row(f"page_pool {name}", lambda r, name=name: f"{r['page_pool'][name]:,}" if "page_pool" in r else "-")
    return headers, rows


def leak_lines(results: list[dict]) -> list[str]:
    """The leak check's verdict (and a page_pool's own leak lines) and the model's warnings, per run."""
    lines = []
    for r, label in zip(results, run_labels(results)):
        leaks = r["leaks"]
        if leaks["clean"]:
            lines.append(f"leak check ({label}): clean - every page, slab object and skb was given back")
        else:
            lines.append(f"leak check ({label}): {leaks['skbs']} skbs, {leaks['slab_objects']} slab objects, "
                         f"{leaks['pages']} pages not given back")
            lines.extend(f"leak check ({label}): {line}" for line in leaks["details"] if line.startswith("<page_pool"))
            lines.extend(f"leak check ({label}): the modelled kernel's own leak, not a model bug: {leak['function']}() "
                         f"keeps {leak['page']}: {leak['why']}" for leak in leaks.get("kernel", ()))
        lines.extend(f"warning ({label}): {warning}" for warning in r["warnings"])
    return lines


def render_summary(results: list[dict], console) -> None:
    """One column per run: the same traffic side by side when there are several (said once, above)."""
    from rich.table import Table

    from skbsim.commands.common import print_table

    for line in summary_heading(results):
        console.print(line, highlight=False, soft_wrap=True)
    headers, rows = summary_rows(results)
    table = Table()
    table.add_column(headers[0])
    for header in headers[1:]:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*row)
    print_table(console, table)
    for line in leak_lines(results):
        console.print(line)


#: TcpExt counters the summary always shows for TCP runs (others only where a run counted some).
_TCP_SUMMARY_COUNTERS = ("PruneCalled", "RcvPruned", "TCPRcvCollapsed", "TCPToZeroWindowAdv", "TCPFromZeroWindowAdv")


def _tcp_rows(results: list[dict], row) -> None:
    """Runs with a socket per flow: their TCP receivers, summed over the flows (per flow: --json)."""

    def tcp(fn):
        return lambda r: fn(r["tcp"], [f for f in r["flows"] if f["protocol"] == "tcp"]) if "tcp" in r else "-"

    def mbps(value):
        return "-" if value is None else f"{value:,.1f}"

    row("TCP flows / UDP sockets", lambda r: f"{r['tcp']['flows']} / {len(r['flows']) - r['tcp']['flows']}"
        if "tcp" in r else "-")
    row("TCP sender", tcp(lambda t, f: t["sender"] or "the capture"))
    row("TCP bytes received / read", tcp(lambda t, f: f"{t['bytes_received']:,} / {t['bytes_read']:,}"))
    row("TCP throughput (Mbit/s)", tcp(lambda t, f: mbps(t["throughput_mbps"])))
    row("TCP window / RTT (Mbit/s)", tcp(lambda t, f: mbps(t["window_bound_mbps"])))
    row("TCP zero window / below 1 MSS (ms)",
        tcp(lambda t, f: f"{t['zero_window_ms']:,.1f} / {t['window_below_mss_ms']:,.1f}"))
    row("TCP rcvbuf at start / at most", tcp(lambda t, f: f"{max(x['rcvbuf']['initial'] for x in f):,} / "
                                                          f"{max(x['rcvbuf']['max'] for x in f):,}" if f else "-"))
    row("TCP peak rmem_alloc", tcp(lambda t, f: f"{max((x['rmem_alloc']['peak'] for x in f), default=0):,}"))
    reasons = sorted({reason for r in results if "tcp" in r for reason in r["tcp"]["dropped"]})
    for reason in reasons:
        row(f"TCP dropped: {reason}", tcp(lambda t, f, reason=reason: f"{t['dropped'].get(reason, 0):,}"))
    if any("refused" in r.get("tcp", {}) for r in results):
        row("TCP refused segments / bytes", tcp(lambda t, f: f"{t['refused']['segments']:,} / {t['refused']['bytes']:,}"
                                                if "refused" in t else "-"))
    if any(r.get("tcp", {}).get("sender") for r in results):
        row("TCP retransmits / window probes / zero-window probes", tcp(
            lambda t, f: "{:,} / {:,} / {:,}".format(*(sum(x["sender"][k] for x in f if "sender" in x) for k in (
                "retransmits", "window_probes", "zero_window_probes")))))
    row("TCP collapse: bytes copied", tcp(lambda t, f: f"{t['collapse_copied_bytes']:,}"))
    names = [name for name in sorted(set().union(*(r["tcp"]["counters"] for r in results if "tcp" in r)))
             if name in _TCP_SUMMARY_COUNTERS or any(r.get("tcp", {}).get("counters", {}).get(name) for r in results)]
    for name in names:
        row(f"TcpExt {name}", tcp(lambda t, f, name=name: f"{t['counters'][name]:,}"))


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


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


def peak_label(result: dict, label: str) -> str:
    """The name of a run's peak sk_rmem_alloc line, with how far it went over sk_rcvbuf."""
    peak = result["socket"]["peak_rmem_alloc"]
    over = peak - result["socket"]["rcvbuf"]
    return f"{label}: peak {peak:,} B" + (f" ({over:+,} B over sk_rcvbuf)" if over > 0 else "")


def has_socket_limit(result: dict) -> bool:
    """Whether a run's socket panel has one sk_rcvbuf to draw.  A run with a socket per flow
    (``--socket tcp``) draws the sum of its sockets' sk_rmem_alloc instead, without limit lines:
    each socket has its own (tcp.png shows the TCP receivers')."""
    return "tcp" not in result


def socket_line_label(result: dict, label: str) -> str:
    """The name of a run's sk_rmem_alloc line."""
    return label if has_socket_limit(result) else f"{label}: all sockets"


def socket_zoom(results: list[dict]) -> tuple[float, float] | None:
    """The sk_rmem_alloc axis range (KiB) when a socket fills up: the top quarter, where the limit and
    any overshoot are; None when no run comes near its limit, or a run has no single limit."""
    if not all(has_socket_limit(r) for r in results):
        return None
    rcvbufs = [r["socket"]["rcvbuf"] for r in results]
    peaks = [r["socket"]["peak_rmem_alloc"] for r in results]
    if max(peaks) < 0.9 * min(rcvbufs):
        return None
    return 0.75 * min(rcvbufs) / 1024, 1.01 * max(peaks + rcvbufs) / 1024


TRUESIZE_AXES = ("frame length on the wire (bytes)", "skb truesize (bytes)")
MEMORY_AXES = ("simulated time (ms)", "memory in use (KiB)", "socket sk_rmem_alloc (KiB)")
ZOOM_TITLE = "sk_rmem_alloc near the limit (top quarter)"


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
    results = [result for result, _ in runs]
    labels = run_labels(results)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (result, extra), label in zip(runs, labels):
        lengths, means = truesize_curve(extra)
        ax.plot(lengths, means, marker="o", linestyle="", markersize=3, label=label)
    ax.set_xlabel(TRUESIZE_AXES[0])
    ax.set_ylabel(TRUESIZE_AXES[1])
    ax.set_title("truesize against frame length")
    ax.grid(True, alpha=0.3)
    ax.legend()
    path = out / "truesize.png"
    _save(fig, path)
    written.append(str(path))

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
    for (result, extra), label in zip(runs, labels):
        if not extra["series"]:
            continue
        times, memory, rmem = memory_series(extra)
        top.plot(times, memory, label=label)
        line, = bottom.plot(times, rmem, label=socket_line_label(result, label))
        if has_socket_limit(result):
            bottom.axhline(result["socket"]["peak_rmem_alloc"] / 1024, color=line.get_color(), linestyle=":",
                           linewidth=1.2, label=peak_label(result, label))
    for rcvbuf in sorted({r["socket"]["rcvbuf"] for r in results if has_socket_limit(r)}):
        bottom.axhline(rcvbuf / 1024, color="black", linestyle="--", linewidth=1, label=f"sk_rcvbuf {rcvbuf:,} B")
    zoom = socket_zoom(results)
    if zoom is not None:
        bottom.set_ylim(*zoom)
        bottom.set_title(ZOOM_TITLE, fontsize=9)
    top.set_ylabel(MEMORY_AXES[1])
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    bottom.set_ylabel(MEMORY_AXES[2])
    bottom.set_xlabel(MEMORY_AXES[0])
    bottom.grid(True, alpha=0.3)
    bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    path = out / "memory.png"
    _save(fig, path)
    written.append(str(path))
    tcp_runs = [(result, extra, label) for (result, extra), label in zip(runs, labels) if "tcp" in result]
    if tcp_runs:
        written.append(_plot_tcp(plt, out, tcp_runs))
    return written


def _summed(flows: list[tuple[str, list]], index: int) -> tuple[list[float], list[int]]:
    """Times (ms) and the sum over the flows of field ``index`` of their series points, each flow's value
    holding from one point to its next."""
    changes = sorted((point[0], n, point[index]) for n, (_, points) in enumerate(flows) for point in points)
    current = [0] * len(flows)
    times, values = [], []
    for t, n, value in changes:
        current[n] = value
        times.append(t / 1e6)
        values.append(sum(current))
    return times, values


def _plot_tcp(plt, out: Path, runs: list) -> str:
    """tcp.png: per run, the advertised window, the throughput against the window bound (window / RTT),
    and sk_rcvbuf and sk_rmem_alloc over simulated time, summed over the run's TCP flows."""
    fig, (win_ax, rate_ax, mem_ax) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for result, extra, label in runs:
        flows = [flow for flow in extra.get("tcp_series") or [] if flow[1]]
        if not flows:
            continue
        times, windows = _summed(flows, 1)
        line, = win_ax.step(times, [w / 1024 for w in windows], where="post", label=label)
        color = line.get_color()
        _, rmem = _summed(flows, 2)
        _, rcvbuf = _summed(flows, 3)
        mem_ax.step(times, [r / 1024 for r in rcvbuf], where="post", color=color, label=f"{label}: sk_rcvbuf")
        mem_ax.step(times, [r / 1024 for r in rmem], where="post", color=color, linestyle=":",
                    label=f"{label}: sk_rmem_alloc")
        # Throughput in bins of the run's span, from the bytes received by each bin's end.
        _, received = _summed(flows, 4)
        if len(times) > 1 and times[-1] > times[0]:
            bins = 50
            width = (times[-1] - times[0]) / bins
            edges = [times[0] + i * width for i in range(bins + 1)]
            at, j, values = [], 0, []
            for edge in edges:
                while j < len(times) and times[j] <= edge:
                    j += 1
                at.append(received[j - 1] if j else 0)
            values = [(b - a) * 8 / (width * 1e3) for a, b in zip(at, at[1:])]
            rate_ax.step(edges[:-1], values, where="post", color=color, label=f"{label}: throughput")
        rtt = result["tcp"]["rtt_ms"]
        if rtt:
            rate_ax.step(times, [w * 8 / (rtt * 1e3) for w in windows], where="post", color=color, linestyle="--",
                         label=f"{label}: window / RTT")
    win_ax.set_ylabel("advertised window (KiB)")
    win_ax.set_title("TCP receivers, summed over each run's flows (log scales, linear below 1)", fontsize=9)
    rate_ax.set_ylabel("Mbit/s")
    mem_ax.set_ylabel("KiB")
    for ax in (win_ax, rate_ax, mem_ax):
        # Runs differ by orders of magnitude (a collapsed window against an open one); zero stays visible.
        ax.set_yscale("symlog", linthresh=1)
    mem_ax.set_xlabel("simulated time (ms)")
    for ax in (win_ax, rate_ax, mem_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    path = out / "tcp.png"
    _save(fig, path)
    return str(path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as err:
        raise InputError(f"--plot {shown(path)}: cannot write: {err.strerror}") from None
    finally:
        plt.close(fig)


def write_run_report(path: str, runs: list[tuple[dict, dict]], command_line: str) -> str:
    """``skbsim run --report``: what the terminal shows (the traffic line, the summary table, the leak
    check) and the PNG plots as interactive charts, with the command line, in one HTML file."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    from skbsim.htmlreport import HtmlReport

    results = [result for result, _ in runs]
    labels = run_labels(results)
    title, *traffic = summary_heading(results)
    report = HtmlReport(title, subtitle=", ".join(labels))
    for line in traffic:
        report.paragraph(line)
    report.heading("Summary")
    report.table(*summary_rows(results))
    for line in leak_lines(results):
        report.paragraph(line)

    report.heading("truesize against frame length")
    fig = go.Figure()
    for (result, extra), label in zip(runs, labels):
        lengths, means = truesize_curve(extra)
        fig.add_trace(go.Scatter(x=lengths, y=means, mode="markers", marker=dict(size=5), name=label))
    fig.update_layout(xaxis_title=TRUESIZE_AXES[0], yaxis_title=TRUESIZE_AXES[1], hovermode="closest")
    report.figure(fig, caption="Mean skb truesize of the delivered skbs at each frame length.")

    report.heading("Memory and socket occupancy over time")
    zoom = socket_zoom(results)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("", ZOOM_TITLE if zoom is not None else ""))
    span: list[float] = []  # the simulated time the runs cover, for the horizontal lines
    for i, ((result, extra), label) in enumerate(zip(runs, labels)):
        if not extra["series"]:
            continue
        times, memory, rmem = memory_series(extra)
        span += [times[0], times[-1]]
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        fig.add_trace(go.Scatter(x=times, y=memory, mode="lines", name=label, legendgroup=label,
                                 line=dict(color=color)), row=1, col=1)
        fig.add_trace(go.Scatter(x=times, y=rmem, mode="lines", name=socket_line_label(result, label),
                                 legendgroup=label, showlegend=False, line=dict(color=color)), row=2, col=1)
        if not has_socket_limit(result):
            continue
        peak = result["socket"]["peak_rmem_alloc"] / 1024
        fig.add_trace(go.Scatter(x=[times[0], times[-1]], y=[peak, peak], mode="lines", name=peak_label(result, label),
                                 line=dict(color=color, dash="dot", width=1.2)), row=2, col=1)
    for rcvbuf in sorted({r["socket"]["rcvbuf"] for r in results if has_socket_limit(r)}) if span else ():
        fig.add_trace(go.Scatter(x=[min(span), max(span)], y=[rcvbuf / 1024] * 2, mode="lines",
                                 name=f"sk_rcvbuf {rcvbuf:,} B", line=dict(color="black", dash="dash", width=1)),
                      row=2, col=1)
    if zoom is not None:
        fig.update_yaxes(range=list(zoom), row=2, col=1)
    fig.update_yaxes(title_text=MEMORY_AXES[1], row=1, col=1)
    fig.update_yaxes(title_text=MEMORY_AXES[2], row=2, col=1)
    fig.update_xaxes(title_text=MEMORY_AXES[0], row=2, col=1)
    report.figure(fig, height=650, caption="Pages in use by the whole receive path, and the socket's sk_rmem_alloc "
                  "with each sk_rcvbuf (dashed) and each run's peak (dotted; from the run's own counters, since the "
                  "series is thinned and may miss it).")

    report.heading("Command line")
    report.commands([command_line])
    return report.write(path)
