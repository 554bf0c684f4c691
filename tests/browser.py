"""Headless chromium driven by selenium, for the HTML report tests and the README's screenshot.

Why selenium: it drives Debian's own chromedriver (package chromium-driver, the
same version as the browser), so nothing is downloaded at test time, and it
gives the browser's console log, the network log and screenshots through one
small, well-kept API.  Playwright would fetch a browser build of its own; a
hand-written DevTools client would be more code to keep.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = ("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
           if CHROMIUM is None or CHROMEDRIVER is None else None)

#: what each chart has drawn once plotly.js has run: its SVG layers and its traces' nodes
RENDERED = """
return Array.from(document.querySelectorAll('div.plotly-graph-div')).map(d => ({
  id: d.id, svgs: d.querySelectorAll('svg.main-svg').length,
  heatmaps: d.querySelectorAll('g.hm image').length,
  lines: d.querySelectorAll('g.scatterlayer g.trace path.js-line').length,
  points: d.querySelectorAll('g.scatterlayer g.trace path.point').length}));
"""


@contextmanager
def chromium(profile_dir, width: int, height: int):
    """A selenium driver of headless chromium with a new, empty profile and a width x height viewport."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile_dir}", f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        # The page's viewport itself (the window's size includes what headless chromium keeps for its frame).
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()


def load(driver, path, charts: int) -> tuple[list[dict], list[dict], list[str]]:
    """Open the page and wait until ``charts`` charts are drawn: (charts, console errors, URLs requested)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 60).until(lambda d: len([c for c in d.execute_script(RENDERED) if c["svgs"]]) == charts)
    rendered = driver.execute_script(RENDERED)
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    requested = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    return rendered, errors, requested


def scroll_to(driver, element_id: str) -> tuple[float, float, float, float]:
    """Scroll the element to the top of the viewport; its box (left, top, width, height) there."""
    return tuple(driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.scrollIntoView(); "
        "const b = e.getBoundingClientRect(); return [b.left, b.top, b.width, b.height];", element_id))
