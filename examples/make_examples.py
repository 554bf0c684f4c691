#!/usr/bin/env python3
"""Run the example grids on a local Dask cluster, write their results and reports, and the README's screenshot.

    python3 examples/make_examples.py [--only rcvbuf|copybreak]

- rcvbuf.toml -> examples/rcvbuf.parquet, examples/rcvbuf.html, and
  docs/img/grid-report.png (the report's top in headless chromium, the heat
  map showing rcvbuf 212992; skipped with a note where chromium is missing);
- copybreak.toml -> examples/copybreak.parquet and examples/copybreak.html,
  once `skbsim tcp` can be a grid's cell (skipped with a note until then).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCREENSHOT = ROOT / "docs" / "img" / "grid-report.png"


def run_grid(name: str) -> Path:
    results, page = EXAMPLES / f"{name}.parquet", EXAMPLES / f"{name}.html"
    for old in (results, Path(f"{results}.parts")):
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    # Relative names, so that the results and the report show the commands as a user types them.
    subprocess.run([sys.executable, "-m", "skbsim.cli", "grid", f"examples/{name}.toml", "-o",
                    f"examples/{name}.parquet", "--report", f"examples/{name}.html", "--quiet"], cwd=ROOT, check=True)
    return page


def screenshot(page: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import browser

    if browser.MISSING:
        print(f"screenshot skipped: {browser.MISSING}", file=sys.stderr)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="skbsim-chromium-") as profile, \
            browser.chromium(profile, 1200, 1150) as driver:
        browser.load(driver, page, charts=4)
        # The heat map at the default rcvbuf (212992, the 5th choice in its menu).
        driver.execute_script("""
            const d = document.getElementById('chart-1'), k = 4;
            Plotly.restyle(d, {visible: d.data.map((_, i) => i === k)});
            Plotly.relayout(d, {'updatemenus[0].active': k});""")
        driver.execute_script("window.scrollTo(0, 0)")
        SCREENSHOT.write_bytes(driver.get_screenshot_as_png())
    print(f"screenshot: {SCREENSHOT.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("rcvbuf", "copybreak"))
    args = parser.parse_args()
    if args.only in (None, "rcvbuf"):
        screenshot(run_grid("rcvbuf"))
    if args.only in (None, "copybreak"):
        from skbsim.grid.cells import CELL_COMMANDS

        if "tcp" in CELL_COMMANDS:
            run_grid("copybreak")
        else:
            print("copybreak.toml skipped: `skbsim tcp` is not a grid cell command yet (skbsim/grid/cells.py)",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
