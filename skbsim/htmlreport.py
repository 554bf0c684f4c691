"""One self-contained HTML page: tables, interactive plotly charts and command lines.

The page needs no network to open: plotly.js is written into it once, inline
(no CDN), and nothing else is loaded.  ``skbsim run --report``, ``skbsim
report`` (a grid's Parquet results) and any other command that wants a report
build an :class:`HtmlReport` and call :meth:`HtmlReport.write`.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from skbsim.errors import InputError
from skbsim.files import shown

#: what a report's file name ends in
REPORT_SUFFIXES = (".html", ".htm")

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
p.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; vertical-align: top; }
th { background: #f2f2f2; white-space: pre-line; }
td { white-space: pre; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.bad { background: #fde2e2; }
div.table { overflow-x: auto; max-width: 100%; }
td code { white-space: nowrap; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.85em; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; white-space: pre-wrap; }
div.chart { width: 100%; max-width: 1100px; }
p.caption { color: #555; font-size: 0.9em; }
"""


class HtmlReport:
    """An HTML page built part by part, in order; :meth:`write` puts it in one file."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.parts: list[str] = []
        self.charts = 0
        if subtitle:
            self.parts.append(f'<p class="sub">{html.escape(subtitle)}</p>')

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, headers: list[str], rows: list[list], bad_rows: set[int] = frozenset()) -> None:
        """A table; cells that are numbers are right-aligned, rows in ``bad_rows`` are marked."""
        out = ['<div class="table"><table>', "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr>"]
        for i, row in enumerate(rows):
            cells = []
            for value in row:
                if isinstance(value, Code):
                    cells.append(f"<td><code>{html.escape(value.text)}</code></td>")
                    continue
                numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
                text = _format(value)
                css = ["num"] if numeric or _looks_numeric(text) else []
                if i in bad_rows:
                    css.append("bad")
                klass = f' class="{" ".join(css)}"' if css else ""
                cells.append(f"<td{klass}>{html.escape(text)}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table></div>")
        self.parts.append("\n".join(out))

    def figure(self, fig, caption: str = "", height: int = 450) -> None:
        """A plotly figure, drawn by the inline plotly.js when the page loads."""
        import plotly.io as pio

        self.charts += 1
        fig.update_layout(height=height, template="plotly_white",
                          margin=dict(l=70, r=30, t=fig.layout.margin.t or 60, b=60))  # room a menu asked for
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"chart-{self.charts}",
                          config={"displaylogo": False, "responsive": True})
        self.parts.append(f'<div class="chart" style="height:{height}px">{div}</div>')
        if caption:
            self.parts.append(f'<p class="caption">{html.escape(caption)}</p>')

    def commands(self, lines: list[str]) -> None:
        """Command lines that reproduce what the page shows, one per line."""
        self.parts.append("<pre>" + "\n".join(html.escape(line) for line in lines) + "</pre>")

    def html(self) -> str:
        from plotly.offline import get_plotlyjs

        script = f'<script type="text/javascript">{get_plotlyjs()}</script>' if self.charts else ""
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{html.escape(self.title)}</title>\n<style>{_STYLE}</style>\n{script}\n</head>\n<body>\n"
                f"<h1>{html.escape(self.title)}</h1>\n" + "\n".join(self.parts) + "\n</body>\n</html>\n")

    def write(self, path: str, option: str = "--report") -> str:
        """Write the page to ``path`` atomically (a partial page is never left behind)."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(self.html(), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise InputError(f"{option} {shown(path)}: cannot write: {err.strerror}") from None
        return str(target)


class Code:
    """A table cell shown as code (a command line)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return ""
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _looks_numeric(text: str) -> bool:
    """A number, with or without a unit or a second number after it ("8.2 MiB", "20,000/5,000")."""
    return _NUMERIC.match(text) is not None


_NUMERIC = re.compile(r"-?[\d,.]+(\s*[/ ]\s*-?[\d,.]+)*( [KMG]?i?B)?$")
