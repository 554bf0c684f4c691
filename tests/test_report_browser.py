"""The HTML reports opened in a real headless browser (Debian's chromium, driven by selenium: see browser.py).

Each page must load with no console error, request nothing from the network,
draw every chart (its SVG and, per chart kind, the nodes of its traces), and
give a screenshot of the expected size that is not blank where a chart is.
Skips with the reason where chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import io

import browser as chromium_browser
import pytest

from skbsim.cli import main

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1280, 1000


@pytest.fixture
def browser(tmp_path):
    if chromium_browser.MISSING:
        pytest.skip(chromium_browser.MISSING)
    pytest.importorskip("selenium", reason="needs selenium (pip install '.[test]')")
    with chromium_browser.chromium(tmp_path / "chromium-profile", WIDTH, HEIGHT) as driver:
        yield driver


def _open(driver, path, charts: int) -> list[dict]:
    """Load the page: no console error, nothing asked of the network, every chart drawn."""
    rendered, errors, requested = chromium_browser.load(driver, path, charts)
    assert errors == []
    assert [u for u in requested if not u.startswith(("file:", "data:", "blob:", "chrome:", "about:"))] == []
    assert path.resolve().as_uri() in requested
    assert all(chart["svgs"] for chart in rendered)
    return rendered


def _check_screenshot(driver, chart: dict, out) -> None:
    """With the chart scrolled to the top, the viewport's screenshot has the expected size and the chart's
    area is drawn: inked, in many colours, not one flat fill."""
    from PIL import Image

    left, top, width, height = chromium_browser.scroll_to(driver, chart["id"])
    png = driver.get_screenshot_as_png()
    out.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    area = image.crop((int(left), int(top), int(min(WIDTH, left + width)), int(min(HEIGHT, top + height))))
    colours = area.getcolors(maxcolors=1 << 24)
    white = sum(n for n, colour in colours if colour == (255, 255, 255))
    assert white < 0.99 * area.width * area.height
    assert len(colours) > 50  # axes, text and the data's colours


def test_grid_report_renders_in_chromium(browser, tmp_path):
    spec = tmp_path / "grid.toml"
    spec.write_text("""
[fixed]
count = 2000
app-rate = 1
traffic = "fixed:1514"
[axes]
nic = [{ name = "ice legacy", driver = "ice", opt = { rx = "legacy" } }, { name = "tun", driver = "tun" }]
kernel = ["6.9", "6.18"]
rcvbuf = [4096, 65536, 212992]
[report]
metric = ["delivered", "truesize_per_packet"]
""")
    results, page = tmp_path / "r.parquet", tmp_path / "report.html"
    assert main(["grid", str(spec), "-o", str(results), "--serial", "--quiet", "--report", str(page)]) == 0
    charts = _open(browser, page, charts=4)
    # Per metric: a heat map (kernel against nic, one rcvbuf at a time) and lines over rcvbuf, one per kernel.
    heatmaps, lines = charts[0::2], charts[1::2]
    assert all(c["heatmaps"] == 1 for c in heatmaps)
    assert all(c["lines"] == 2 and c["points"] == 2 * 3 for c in lines)
    _check_screenshot(browser, charts[0], tmp_path / "grid.png")


def test_run_report_renders_in_chromium(browser, tmp_path):
    page = tmp_path / "run.html"
    assert main(["run", "--count", "3000", "--kernel", "6.9", "--kernel", "6.18", "--traffic", "imix", "--quiet",
                 "--report", str(page)]) == 0
    truesize, memory = _open(browser, page, charts=2)
    assert truesize["points"] == 2 * 3  # two kernels, IMIX's three lengths
    # Per kernel: memory, sk_rmem_alloc and its peak (dotted); one sk_rcvbuf line (both 212992, the default).
    assert memory["lines"] == 2 * 3 + 1
    _check_screenshot(browser, truesize, tmp_path / "run.png")


def test_tcp_report_renders_in_chromium(browser, tmp_path):
    page = tmp_path / "tcp.html"
    assert main(["tcp", "--kernel", "6.12", "--kernel", "6.18", "--driver", "ntb", "--opt", "copybreak=0",
                 "--opt", "copybreak=3646", "--summary", "--report", str(page), "send:1000x70", "read"]) == 0
    charts = _open(browser, page, charts=2)  # one per kernel
    # Per kernel chart: its two runs (copybreak 0 and 3646) in each of the four panels (window,
    # rcv_ssthresh, sk_rmem_alloc, sk_rcvbuf).
    assert all(chart["lines"] == 2 * 4 for chart in charts)
    _check_screenshot(browser, charts[1], tmp_path / "tcp.png")
