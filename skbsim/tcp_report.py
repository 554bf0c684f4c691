"""Tables and plots of ``skbsim tcp`` results (the dicts skbsim.tcp_session.play() returns)."""

from __future__ import annotations

import os
from collections import Counter

from skbsim.commands.common import output_dir, print_table

#: Counters the summary shows even when zero.
_SUMMARY_COUNTERS = ("PruneCalled", "RcvPruned", "TCPRcvCollapsed", "TCPRcvCoalesce", "TCPRcvQDrop",
                     "TCPZeroWindowDrop", "TCPToZeroWindowAdv", "TCPFromZeroWindowAdv", "TCPBacklogDrop",
                     "TCPOFOQueue")


def advertised_windows(result: dict) -> list[int | None]:
    """Per record, the window (in bytes: raw field << wscale) of the last ACK the receiver had sent by
    then; None before the first."""
    wscale = result["synack"]["wscale"] or 0
    window = result["synack"]["win"]
    out = []
    for record in result["steps"]:
        if record["acks"]:
            window = record["acks"][-1][1] << wscale
        out.append(window)
    return out


def _step_text(record: dict) -> str:
    if record["action"] in ("send", "read") and record["payload"] is not None:
        return f"{record['action']} {record['payload']}"
    return record["action"]


def _acks_text(acks: list) -> str:
    parts = [f"{ack}/{win}" for ack, win in acks]
    if len(parts) > 3:
        parts = parts[:1] + ["…"] + parts[-2:]
    return " ".join(parts)


#: render_records' columns: (name, left-aligned)
_RECORD_COLUMNS = (("#", False), ("step", True), ("frame", False), ("truesize", False), ("route", True),
                   ("verdict", True), ("ACKs", True), ("window", False), ("rmem", False), ("rcvbuf", False),
                   ("fwd", False), ("backlog", False), ("drops", False), ("ssthresh", False), ("clamp", False),
                   ("rcv_wnd", False), ("space", False), ("mss", False), ("ratio", False))
RECORDS_CAPTION = "ACKs: ack/raw window (bytes = raw << wscale)"


def synack_title(result: dict, label: str) -> str:
    synack = result["synack"]
    wscale = synack["wscale"]
    return (f"{label}: SYN-ACK window {synack['win']}, wscale {'-' if wscale is None else wscale}, "
            f"MSS {synack['mss']}")


def record_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """One row per record (the event, what happened to the segment, the ACKs, memory and window state):
    the terminal's table and the HTML report's."""
    rows = []
    for record, window in zip(result["steps"], advertised_windows(result)):
        mem, info = record["mem"], record["info"]
        rows.append([
            str(record["i"]), _step_text(record), _opt(record["frame_len"]), _opt(record["truesize"]),
            record["route"] or "", (record["verdict"] or "").replace("dropped:", "drop "), _acks_text(record["acks"]),
            _opt(window), str(mem["rmem_alloc"]), str(mem["rcvbuf"]), str(mem["fwd_alloc"]), str(mem["backlog"]),
            str(mem["drops"]), str(info["rcv_ssthresh"]), str(info["window_clamp"]), str(info["rcv_wnd"]),
            str(info["rcv_space"]), str(info["rcv_mss"]), _opt(info["scaling_ratio"]),
        ])
    return [name for name, _left in _RECORD_COLUMNS], rows


def render_records(result: dict, label: str, console) -> None:
    """One row per record: the event, what happened to the segment, the ACKs, memory and window state."""
    from rich.table import Table

    table = Table(title=synack_title(result, label), title_justify="left", caption=RECORDS_CAPTION,
                  caption_justify="left")
    for name, left in _RECORD_COLUMNS:
        table.add_column(name, justify="left" if left else "right", overflow="fold")
    for row in record_rows(result)[1]:
        table.add_row(*row)
    print_table(console, table)


def render_explanations(result: dict, label: str, console) -> None:
    """Each record as a line of figures followed by the rules that produced them (--explain)."""
    synack = result["synack"]
    console.print(f"{label}: SYN-ACK window {synack['win']}, wscale {synack['wscale']}, MSS {synack['mss']}",
                  style="bold", markup=False, highlight=False)
    for record in result["steps"]:
        mem, info = record["mem"], record["info"]
        head = f"#{record['i']} {_step_text(record)}"
        if record["action"] == "send":
            head += f" (frame {record['frame_len']}, truesize {record['truesize']}): {record['route']}, {record['verdict']}"
        console.print(head, highlight=False, style="bold", markup=False, soft_wrap=True)
        for line in record.get("explain", []):
            console.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)
        console.print(f"    => ACKs {_acks_text(record['acks']) or 'none'}; rmem {mem['rmem_alloc']}, rcvbuf "
                      f"{mem['rcvbuf']}, fwd {mem['fwd_alloc']}, backlog {mem['backlog']}; rcv_ssthresh "
                      f"{info['rcv_ssthresh']}, window_clamp {info['window_clamp']}, rcv_wnd {info['rcv_wnd']}, "
                      f"scaling_ratio {info['scaling_ratio']}", highlight=False, markup=False, soft_wrap=True)


#: the figures at the end of the scenario that the summary shows: (part of a record, key)
END_STATE = (("mem", "rmem_alloc"), ("mem", "rcvbuf"), ("info", "rcv_ssthresh"), ("info", "window_clamp"),
             ("info", "scaling_ratio"), ("info", "rcv_space"))


def tcp_summary(result: dict) -> dict:
    """A run's figures as numbers: what the summary table shows, and a grid cell's result.

    ``min_window`` is the smallest window (bytes) the receiver offered, over the
    SYN-ACK (never scaled) and every ACK; ``zero_window_acks`` the ACKs that
    offered none; ``end`` the SO_MEMINFO and TCP_INFO figures after the last
    record and ``counters`` the TcpExt counters then (None/empty for a scenario
    without records).
    """
    sends = [s for s in result["steps"] if s["action"] == "send"]
    verdicts = [s["verdict"] or "" for s in sends]
    wscale = result["synack"]["wscale"] or 0
    offered = [result["synack"]["win"], *(win << wscale for s in result["steps"] for _ack, win in s["acks"])]
    last = result["steps"][-1] if result["steps"] else None
    return {
        "segments": len(sends),
        "queued": sum(v.startswith("queued") for v in verdicts),
        "coalesced": sum(v.startswith("coalesced") for v in verdicts),
        "dropped": sum(v.startswith("dropped") for v in verdicts),
        "dropped_by_reason": dict(sorted(Counter(v.removeprefix("dropped:") for v in verdicts
                                                 if v.startswith("dropped")).items())),
        "bytes_read": sum(s["payload"] or 0 for s in result["steps"] if s["action"] == "read"),
        "acks": sum(len(s["acks"]) for s in result["steps"]),
        "zero_window_acks": sum(1 for s in result["steps"] for _ack, win in s["acks"] if win == 0),
        "last_window": advertised_windows(result)[-1] if last else None,
        "min_window": min(offered),
        "end": {key: (last[part][key] if last else None) for part, key in END_STATE},
        "counters": dict(last["counters"]) if last else {},
    }


def summary_rows(results: list[dict], labels: list[str]) -> tuple[list[str], list[list[str]]]:
    """The runs side by side (handshake, segments by verdict, the end state, the counters): the terminal's
    summary table and the HTML report's."""
    summaries = [tcp_summary(r) for r in results]
    rows: list[list[str]] = []

    def row(name: str, fn) -> None:
        rows.append([name, *[str(fn(r, s)) for r, s in zip(results, summaries)]])

    def blank(value) -> object:
        return "" if value is None else value

    row("SYN-ACK window / wscale / MSS",
        lambda r, s: f"{r['synack']['win']} / {r['synack']['wscale']} / {r['synack']['mss']}")
    row("segments", lambda r, s: s["segments"])
    row("queued / coalesced / dropped", lambda r, s: f"{s['queued']} / {s['coalesced']} / {s['dropped']}")
    row("dropped by reason", lambda r, s: "\n".join(f"{reason} {count}" for reason, count in
                                                     s["dropped_by_reason"].items()) or "-")
    row("bytes read", lambda r, s: s["bytes_read"])
    row("ACKs / with zero window", lambda r, s: f"{s['acks']} / {s['zero_window_acks']}")
    row("last window (bytes)", lambda r, s: blank(s["last_window"]))
    for _part, key in END_STATE:
        row(f"{key} at the end", lambda r, s, key=key: blank(s["end"][key]))
    for name in _SUMMARY_COUNTERS:
        row(name, lambda r, s, name=name: s["counters"].get(name, ""))
    return ["", *labels], rows


def render_summary(results: list[dict], labels: list[str], console) -> None:
    """The runs side by side: handshake, segments by verdict, the end state, the counters."""
    from rich.table import Table

    table = Table(title=summary_title(results), title_justify="left")
    headers, rows = summary_rows(results, labels)
    table.add_column(headers[0])
    for label in headers[1:]:
        table.add_column(label, justify="right", overflow="fold")
    for row in rows:
        table.add_row(*row)
    print_table(console, table)


def summary_title(results: list[dict]) -> str:
    return "side by side" if len(results) > 1 else "summary"


def _opt(value) -> str:
    return "" if value is None else str(value)


#: the four panels of the plot and of the report's charts: (title, run -> one value per record)
PANELS = (
    ("advertised window (bytes)", advertised_windows),
    ("rcv_ssthresh", lambda r: [s["info"]["rcv_ssthresh"] for s in r["steps"]]),
    ("sk_rmem_alloc", lambda r: [s["mem"]["rmem_alloc"] for s in r["steps"]]),
    ("sk_rcvbuf (log scale)", lambda r: [s["mem"]["rcvbuf"] for s in r["steps"]]),
)
RECORD_AXIS = "record (segment or read)"


def write_tcp_plot(directory: str, results: list[dict], labels: list[str], title: str | None = None) -> str:
    """window, rcv_ssthresh, rmem_alloc and rcvbuf per record for each run, in DIR/tcp.png.

    Runs that agree draw over each other, so each run has its own line style and width (the
    first the widest); sk_rcvbuf is on a log scale (autotuning can take it from 4 KiB to 32 MiB).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir("--plot", directory)
    figure, axes = plt.subplots(2, 2, figsize=(12, 7.5), sharex=True)
    styles = ("-", "--", "-.", ":")
    for axis, (panel, values) in zip(axes.flat, PANELS):
        for n, (result, label) in enumerate(zip(results, labels)):
            ys = values(result)
            xs = [s["i"] for s in result["steps"]]
            axis.step(xs, [y if y is not None else float("nan") for y in ys], where="post", label=label,
                      linestyle=styles[n % len(styles)], linewidth=max(1.0, 3.0 - 0.5 * n))
        axis.set_title(panel)
        axis.grid(alpha=0.3)
    axes[1][1].set_yscale("log")
    for axis in axes[1]:
        axis.set_xlabel(RECORD_AXIS)
    axes[0][0].legend(fontsize="small")
    if title:
        figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    path = os.path.join(directory, "tcp.png")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_tcp_report(path: str, results: list[dict], labels: list[str], command_line: str) -> str:
    """``skbsim tcp --report``: the summary and each run's records as the terminal shows them, and per
    kernel the four panels of the plot (window, rcv_ssthresh, sk_rmem_alloc, sk_rcvbuf per record, one
    line per run of that kernel) as interactive charts, with the command line, in one HTML file."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    from skbsim.htmlreport import HtmlReport

    report = HtmlReport("skbsim tcp", subtitle=", ".join(labels))
    report.heading(summary_title(results))
    report.table(*summary_rows(results, labels))

    kernels = list(dict.fromkeys(r["kernel"] for r in results))
    for kernel in kernels:
        mine = [(r, label) for r, label in zip(results, labels) if r["kernel"] == kernel]
        report.heading(f"Window and memory per record: {kernel}")
        fig = make_subplots(rows=2, cols=2, shared_xaxes=True, vertical_spacing=0.12, horizontal_spacing=0.1,
                            subplot_titles=[title for title, _values in PANELS])
        for n, (result, label) in enumerate(mine):
            color = qualitative.Plotly[n % len(qualitative.Plotly)]
            xs = [s["i"] for s in result["steps"]]
            for p, (_title, values) in enumerate(PANELS):
                fig.add_trace(go.Scatter(x=xs, y=values(result), mode="lines", line=dict(color=color, shape="hv"),
                                         name=label, legendgroup=label, showlegend=p == 0),
                              row=p // 2 + 1, col=p % 2 + 1)
        fig.update_yaxes(type="log", row=2, col=2)
        fig.update_xaxes(title_text=RECORD_AXIS, row=2)
        report.figure(fig, height=650, caption="Per record (a segment or a read): the window the receiver's last "
                      "ACK offered (bytes), rcv_ssthresh, sk_rmem_alloc and sk_rcvbuf after it.")

    report.heading("Records")
    for result, label in zip(results, labels):
        report.paragraph(synack_title(result, label))
        report.table(*record_rows(result))
        report.paragraph(RECORDS_CAPTION)

    report.heading("Command line")
    report.commands([command_line])
    return report.write(path)
