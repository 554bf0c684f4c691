"""Grids of runs: a TOML spec's axes, their cells run on Dask (or serially), results in one Parquet file.

- :mod:`skbsim.grid.spec`: the spec and the cells (command lines) it makes;
- :mod:`skbsim.grid.cells`: how a cell of each command runs (``run``; ``tcp`` plugs in there);
- :mod:`skbsim.grid.runner`: running the cells serially or on a Dask cluster;
- :mod:`skbsim.grid.store`: part files as cells finish, one Parquet file at the end, --resume;
- :mod:`skbsim.grid.report`: the HTML report of a grid's results.
"""

from skbsim.grid.runner import GridSummary, run_grid
from skbsim.grid.spec import GridSpec, load_spec
from skbsim.grid.store import read_results

__all__ = ["GridSpec", "GridSummary", "load_spec", "read_results", "run_grid"]
