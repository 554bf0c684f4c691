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


def render_records(result: dict, label: str, console) -> None:
    """One row per record: the event, what happened to the segment, the ACKs, memory and window state."""
    from rich.table import Table

    synack = result["synack"]
    wscale = synack["wscale"]
    title = (f"{label}: SYN-ACK window {synack['win']}, wscale {'-' if wscale is None else wscale}, "
             f"MSS {synack['mss']}")
    table = Table(title=title, title_justify="left", caption="ACKs: ack/raw window (bytes = raw << wscale)",
                  caption_justify="left")
    for name in ("#", "step", "frame", "truesize", "route", "verdict", "ACKs", "window", "rmem", "rcvbuf", "fwd",
                 "backlog", "drops", "ssthresh", "clamp", "rcv_wnd", "space", "mss", "ratio"):
        table.add_column(name, justify="left" if name in ("step", "route", "verdict", "ACKs") else "right",
                         overflow="fold")
    windows = advertised_windows(result)
    for record, window in zip(result["steps"], windows):
        mem, info = record["mem"], record["info"]
        table.add_row(
            str(record["i"]), _step_text(record), _opt(record["frame_len"]), _opt(record["truesize"]),
            record["route"] or "", (record["verdict"] or "").replace("dropped:", "drop "), _acks_text(record["acks"]),
            _opt(window), str(mem["rmem_alloc"]), str(mem["rcvbuf"]), str(mem["fwd_alloc"]), str(mem["backlog"]),
            str(mem["drops"]), str(info["rcv_ssthresh"]), str(info["window_clamp"]), str(info["rcv_wnd"]),
            str(info["rcv_space"]), str(info["rcv_mss"]), _opt(info["scaling_ratio"]),
        )
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


def render_summary(results: list[dict], labels: list[str], console) -> None:
    """The runs side by side: handshake, segments by verdict, the end state, the counters."""
    from rich.table import Table

    table = Table(title="side by side" if len(results) > 1 else "summary", title_justify="left")
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right", overflow="fold")

    def row(name: str, fn) -> None:
        table.add_row(name, *[str(fn(r)) for r in results])

    row("SYN-ACK window / wscale / MSS",
        lambda r: f"{r['synack']['win']} / {r['synack']['wscale']} / {r['synack']['mss']}")
    sends = lambda r: [s for s in r["steps"] if s["action"] == "send"]  # noqa: E731
    row("segments", lambda r: len(sends(r)))
    row("queued / coalesced / dropped", lambda r: " / ".join(str(sum(1 for s in sends(r) if (s["verdict"] or "")
                                                                     .startswith(v))) for v in
                                                              ("queued", "coalesced", "dropped")))
    row("dropped by reason", lambda r: "\n".join(f"{reason} {count}" for reason, count in sorted(
        Counter(s["verdict"].removeprefix("dropped:") for s in sends(r)
                if (s["verdict"] or "").startswith("dropped")).items())) or "-")
    row("bytes read", lambda r: sum(s["payload"] or 0 for s in r["steps"] if s["action"] == "read"))
    row("ACKs / with zero window", lambda r: f"{sum(len(s['acks']) for s in r['steps'])} / "
        f"{sum(1 for s in r['steps'] for _a, w in s['acks'] if w == 0)}")
    row("last window (bytes)", lambda r: advertised_windows(r)[-1] if r["steps"] else "")
    last = lambda r, part, key: r["steps"][-1][part][key] if r["steps"] else ""  # noqa: E731
    for part, key in (("mem", "rmem_alloc"), ("mem", "rcvbuf"), ("info", "rcv_ssthresh"), ("info", "window_clamp"),
                      ("info", "scaling_ratio"), ("info", "rcv_space")):
        row(f"{key} at the end", lambda r, part=part, key=key: last(r, part, key))
    for name in _SUMMARY_COUNTERS:
        row(name, lambda r, name=name: last(r, "counters", name))
    print_table(console, table)


def _opt(value) -> str:
    return "" if value is None else str(value)


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
    panels = (
        ("advertised window (bytes)", lambda r: advertised_windows(r)),
        ("rcv_ssthresh", lambda r: [s["info"]["rcv_ssthresh"] for s in r["steps"]]),
        ("sk_rmem_alloc", lambda r: [s["mem"]["rmem_alloc"] for s in r["steps"]]),
        ("sk_rcvbuf (log scale)", lambda r: [s["mem"]["rcvbuf"] for s in r["steps"]]),
    )
    styles = ("-", "--", "-.", ":")
    for axis, (panel, values) in zip(axes.flat, panels):
        for n, (result, label) in enumerate(zip(results, labels)):
            ys = values(result)
            xs = [s["i"] for s in result["steps"]]
            axis.step(xs, [y if y is not None else float("nan") for y in ys], where="post", label=label,
                      linestyle=styles[n % len(styles)], linewidth=max(1.0, 3.0 - 0.5 * n))
        axis.set_title(panel)
        axis.grid(alpha=0.3)
    axes[1][1].set_yscale("log")
    for axis in axes[1]:
        axis.set_xlabel("record (segment or read)")
    axes[0][0].legend(fontsize="small")
    if title:
        figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    path = os.path.join(directory, "tcp.png")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
