#!/usr/bin/env python3
"""Run the example grids on a local Dask cluster, write their results and reports, and the README's screenshot.

    python3 examples/make_examples.py [--only rcvbuf|copybreak]

- rcvbuf.toml -> examples/rcvbuf.parquet, examples/rcvbuf.html, and
  docs/img/grid-report.png (the report's top in headless chromium, the heat
  map showing rcvbuf 212992; skipped with a note where chromium is missing);
- copybreak.toml -> examples/copybreak.parquet, examples/copybreak.html and
  docs/img/grid-copybreak.png (the report's top: the last window's heat map and lines).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
IMAGES = ROOT / "docs" / "img"


def run_grid(name: str) -> Path:
    results, page = EXAMPLES / f"{name}.parquet", EXAMPLES / f"{name}.html"
    for old in (results, Path(f"{results}.parts")):
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    # Relative names, so that the results and the report show the commands as a user types them.
    subprocess.run([sys.executable, "-m", "skbsim.cli", "grid", f"examples/{name}.toml", "-o",
                    f"examples/{name}.parquet", "--report", f"examples/{name}.html", "--quiet"], cwd=ROOT, check=True)
    return page


def screenshot(page: Path, out: Path, charts: int, show: str = "") -> None:
    """The top of ``page`` in headless chromium, 1200 x 1150, after running the JavaScript ``show``."""
    sys.path.insert(0, str(ROOT / "tests"))
    import browser

    if browser.MISSING:
        print(f"screenshot skipped: {browser.MISSING}", file=sys.stderr)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="skbsim-chromium-") as profile, \
            browser.chromium(profile, 1200, 1150) as driver:
        browser.load(driver, page, charts=charts)
        if show:
            driver.execute_script(show)
        driver.execute_script("window.scrollTo(0, 0)")
        out.write_bytes(driver.get_screenshot_as_png())
    print(f"screenshot: {out.relative_to(ROOT)}", file=sys.stderr)


#: the rcvbuf report's heat map at the default rcvbuf (212992, the 5th choice in its menu)
RCVBUF_212992 = """
    const d = document.getElementById('chart-1'), k = 4;
    Plotly.restyle(d, {visible: d.data.map((_, i) => i === k)});
    Plotly.relayout(d, {'updatemenus[0].active': k});"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("rcvbuf", "copybreak"))
    args = parser.parse_args()
    if args.only in (None, "rcvbuf"):
        screenshot(run_grid("rcvbuf"), IMAGES / "grid-report.png", charts=4, show=RCVBUF_212992)
    if args.only in (None, "copybreak"):
        # Nine metrics: a heat map and a line chart each.
        screenshot(run_grid("copybreak"), IMAGES / "grid-copybreak.png", charts=18)


if __name__ == "__main__":
    main()
