"""``skbsim report``: a grid's results as one HTML page.

A heat map of each chosen metric over two axes and its lines over a third
(the other axes chosen in a drop-down; each heat map coloured over its own
range, its values written in it), then every cell: its axes, status, metrics
and the command line that reruns it (add ``--report FILE.html`` to it for that
run's own charts).
"""

from __future__ import annotations

import itertools

from skbsim.errors import InputError
from skbsim.grid.cells import cell_command
from skbsim.htmlreport import Code, HtmlReport

#: heat maps up to this many cells write each cell's value in it
_ANNOTATE_CELLS = 300


def metric_column(name: str, columns: list[str]) -> str:
    """``delivered``, ``socket.drops`` or ``result.delivered`` -> the results column."""
    for candidate in (name, f"result.{name}"):
        if candidate in columns:
            return candidate
    known = [c.removeprefix("result.") for c in columns if c.startswith("result.")]
    if not known:
        raise InputError(f"--metric {name}: no cell of this grid has a result (see the cells' errors)")
    raise InputError(f"--metric {name}: no such result (some: {', '.join(known[:12])}, ...)")


def grid_report(table, meta: dict, metrics: list[str] | None = None, heatmap: list[str] | None = None,
                lines: str | None = None, source: str = "") -> HtmlReport:
    """The report of a grid's results (``table``, ``meta`` from :func:`skbsim.grid.store.read_results`)."""
    columns = table.column_names
    rows = table.to_pylist()
    axes = meta["axes"]
    names = [a["name"] for a in axes]
    chosen = meta.get("report", {})
    if not metrics and not any(c.startswith("result.") for c in columns):
        metrics = []  # no cell has a result (every one failed): no charts, the cells and their errors
    else:
        metrics = metrics or _as_list(chosen.get("metric")) or list(cell_command(meta["command"]).metrics)[:1]
    metric_columns = [metric_column(m, columns) for m in metrics]
    for column in metric_columns:
        if not all(_number(r.get(column)) or r.get(column) is None for r in rows):
            raise InputError(f"--metric {column.removeprefix('result.')}: not a number")
    heatmap = heatmap or chosen.get("heatmap") or names[:2]
    lines = lines or chosen.get("lines") or (names[2] if len(names) > 2 else names[0] if names else None)
    for name in [*heatmap, *([lines] if lines else [])]:
        if name not in names:
            raise InputError(f"{name!r} is not an axis of this grid (axes: {', '.join(names) or 'none'})")

    ok = sum(r["cell.status"] == "ok" for r in rows)
    shape = " x ".join(f"{a['name']} ({len(a['values'])})" for a in axes) or "no axes"
    report = HtmlReport(meta["title"], subtitle=f"skbsim grid, command '{meta['command']}': {len(rows)} of "
                        f"{meta['cells']} cells, {ok} ok, {len(rows) - ok} failed; axes {shape}")
    report.heading("How to rerun")
    report.commands([f"skbsim grid {meta['spec']} -o RESULTS.parquet",
                     f"skbsim report {source or 'RESULTS.parquet'} -o report.html"
                     + "".join(f" --metric {m}" for m in metrics)])
    values = {a["name"]: a["values"] for a in axes}
    for metric, column in zip(metrics, metric_columns):
        if len(heatmap) == 2 and heatmap[0] != heatmap[1]:
            report.heading(f"{metric}: {heatmap[1]} against {heatmap[0]}")
            fig, facets = _heatmap(rows, column, metric, heatmap[0], heatmap[1], values)
            report.figure(fig, height=max(420, 60 + 40 * len(values[heatmap[1]])),
                          caption=_facet_caption(facets))
        if lines:
            color = next((h for h in reversed(heatmap) if h != lines), None)
            report.heading(f"{metric} against {lines}" + (f", one line per {color}" if color else ""))
            fig, facets = _lines(rows, column, metric, lines, color, values)
            report.figure(fig, caption=_facet_caption(facets))

    if not metrics:
        report.paragraph("No cell has a result to chart: " + ("every cell recorded failed (the errors are below)."
                                                               if rows else "no cell was recorded yet."))
    report.heading("Cells")
    default = [metric_column(m, columns) for m in cell_command(meta["command"]).metrics if _has(m, columns)]
    shown = list(dict.fromkeys(metric_columns + default))
    failed = any(r["cell.status"] != "ok" for r in rows)
    headers = ["#", *names, "status", *(c.removeprefix("result.") for c in shown), "seconds",
               *(["error"] if failed else []), "command line"]
    body, bad = [], set()
    for i, r in enumerate(rows):
        if r["cell.status"] != "ok":
            bad.add(i)
        body.append([r["cell.index"], *(r.get(n) for n in names), r["cell.status"], *(r.get(c) for c in shown),
                     r.get("cell.seconds"), *([r.get("cell.error") or ""] if failed else []),
                     Code(r["cell.command"])])
    report.table(headers, body, bad_rows=bad)
    report.paragraph("Each command line reruns its cell alone; add --report FILE.html to it for that run's "
                     "summary, truesize and memory charts.")
    return report


def _has(metric: str, columns: list[str]) -> bool:
    return f"result.{metric}" in columns or metric in columns


def _as_list(value) -> list:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _wide(values: list) -> bool:
    """Positive numbers spanning a factor of 100 or more: a log axis shows them better."""
    return bool(values) and all(_number(v) and v > 0 for v in values) and max(values) / min(values) >= 100


def _facets(rows: list[dict], used: list[str], values: dict) -> list[dict]:
    """Every combination of the axes not in ``used``, as {axis: value}, in spec order."""
    rest = [name for name in values if name not in used]
    return [dict(zip(rest, combo)) for combo in itertools.product(*(values[n] for n in rest))]


def _matches(row: dict, facet: dict) -> bool:
    return all(row.get(k) == v for k, v in facet.items())


def _facet_label(facet: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in facet.items())


def _facet_caption(facets: list[dict]) -> str:
    if len(facets) < 2:
        return ""
    return f"Choose {', '.join(facets[0])} in the menu above the chart ({len(facets)} choices)."


def _menu(fig, facets: list[dict], traces_per_facet: int) -> None:
    """A drop-down that shows one facet's traces at a time."""
    if len(facets) < 2:
        return
    buttons = []
    for i, facet in enumerate(facets):
        visible = [j // traces_per_facet == i for j in range(len(facets) * traces_per_facet)]
        buttons.append(dict(label=_facet_label(facet), method="restyle", args=[{"visible": visible}]))
    fig.update_layout(updatemenus=[dict(buttons=buttons, direction="down", x=0, xanchor="left", y=1.15,
                                        yanchor="top", showactive=True)], margin=dict(t=90))


def _heatmap(rows, column, metric, x_axis, y_axis, values):
    import plotly.graph_objects as go

    facets = _facets(rows, [x_axis, y_axis], values)
    xs, ys = values[x_axis], values[y_axis]
    cells = {(r.get(x_axis), r.get(y_axis), tuple(r.get(k) for k in facets[0])): r.get(column) for r in rows}
    annotate = len(xs) * len(ys) <= _ANNOTATE_CELLS
    fig = go.Figure()
    for i, facet in enumerate(facets):
        key = tuple(facet.values())
        z = [[cells.get((x, y, key)) for x in xs] for y in ys]
        fig.add_trace(go.Heatmap(
            x=[str(x) for x in xs], y=[str(y) for y in ys], z=z, colorscale="Viridis",
            colorbar=dict(title=dict(text=metric)), visible=i == 0, name=_facet_label(facet) or metric,
            texttemplate="%{z}" if annotate else None,
            hovertemplate=f"{x_axis}=%{{x}}<br>{y_axis}=%{{y}}<br>{metric}=%{{z}}<extra>{_facet_label(facet)}</extra>"))
    fig.update_layout(xaxis=dict(title=dict(text=x_axis), type="category"),
                      yaxis=dict(title=dict(text=y_axis), type="category"))
    _menu(fig, facets, 1)
    return fig, facets


def _lines(rows, column, metric, x_axis, color_axis, values):
    import plotly.graph_objects as go

    facets = _facets(rows, [x_axis] + ([color_axis] if color_axis else []), values)
    xs = values[x_axis]
    colors = values[color_axis] if color_axis else [None]
    numeric_x = all(_number(x) for x in xs)
    fig = go.Figure()
    for i, facet in enumerate(facets):
        for c in colors:
            picked = {r.get(x_axis): r.get(column) for r in rows
                      if _matches(r, facet) and (color_axis is None or r.get(color_axis) == c)}
            fig.add_trace(go.Scatter(
                x=xs if numeric_x else [str(x) for x in xs], y=[picked.get(x) for x in xs], mode="lines+markers",
                name=str(c) if color_axis else metric, visible=i == 0,
                hovertemplate=f"{x_axis}=%{{x}}<br>{metric}=%{{y}}<extra>{c if color_axis else ''}</extra>"))
    ys = [v for v in (r.get(column) for r in rows) if _number(v)]
    fig.update_layout(xaxis=dict(title=dict(text=x_axis), type="log" if _wide(xs) else None if numeric_x else "category"),
                      yaxis=dict(title=dict(text=metric), type="log" if _wide(ys) else None),
                      legend=dict(title=dict(text=color_axis or "")))
    _menu(fig, facets, len(colors))
    return fig, facets
