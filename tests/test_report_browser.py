"""The HTML reports opened in a real headless browser (Debian's chromium, driven by selenium).

Why selenium: it drives Debian's own chromedriver (package chromium-driver, the
same version as the browser), so nothing is downloaded at test time, and it
gives the browser's console log, the network log and screenshots through one
small, well-kept API.  Playwright would fetch its own browser build; a
hand-written DevTools client would be more code to keep.

Each page must load with no console error, request nothing from the network,
draw every chart (its SVG and, per chart kind, the nodes of its traces), and
give a screenshot of the expected size that is not blank where the first
chart is.  Skips with the reason where chromium, chromedriver or selenium is
missing.
"""

from __future__ import annotations

import io
import json
import shutil

import pytest

from skbsim.cli import main

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
WIDTH, HEIGHT = 1280, 1000

#: what each chart has drawn once plotly.js has run: its SVG layers and its traces' nodes
_RENDERED = """
return Array.from(document.querySelectorAll('div.plotly-graph-div')).map(d => {
  const box = d.getBoundingClientRect();
  return {id: d.id, svgs: d.querySelectorAll('svg.main-svg').length,
          heatmaps: d.querySelectorAll('g.hm image').length,
          lines: d.querySelectorAll('g.scatterlayer g.trace path.js-line').length,
          points: d.querySelectorAll('g.scatterlayer g.trace path.point').length,
          box: [box.left, box.top, box.width, box.height]};
});
"""


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--window-size={WIDTH},{HEIGHT}",
                "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        # The page's viewport itself (the window's size includes what headless chromium keeps for its frame).
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()


def _open(driver, path, charts: int) -> list[dict]:
    """Load the page, wait for its charts to be drawn, check the console and the network; the charts."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: len([c for c in d.execute_script(_RENDERED) if c["svgs"]]) == charts)
    rendered = driver.execute_script(_RENDERED)
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    requested = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert [u for u in requested if not u.startswith(("file:", "data:", "blob:", "chrome:", "about:"))] == []
    assert path.as_uri() in requested
    return rendered


def _check_screenshot(driver, chart: dict, out) -> None:
    """With the chart scrolled to the top, the viewport's screenshot has the expected size and the chart's
    area is drawn: inked, in many colours, not one flat fill."""
    from PIL import Image

    left, top, width, height = driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.scrollIntoView(); "
        "const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height];", chart["id"])
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
    assert memory["lines"] == 2 * 2  # memory and sk_rmem_alloc, per kernel
    _check_screenshot(browser, truesize, tmp_path / "run.png")
