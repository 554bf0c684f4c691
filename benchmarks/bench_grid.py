#!/usr/bin/env python3
"""``skbsim grid``: one grid serially and on a Dask LocalCluster; speed-up, per-cell overhead, warm-up.

Prints figures; asserts nothing but that both ways give the same results.

1. A grid of 4 kernels x 4 drivers x 13 rcvbuf sizes = 208 cells of
   ``skbsim run`` (--cells-count frames of IMIX each), run serially in this
   process (after one untimed cell, so that numba's cache is loaded) and then
   on a LocalCluster of --workers processes.  Wall times, their ratio (the
   speed-up), and the per-cell overhead two ways:
   - wall: the worker time per cell not spent inside a cell, (workers x wall
     of the cell phase - sum of the cells' own seconds) / cells; serially,
     (wall - sum of the cells' seconds) / cells.  On a machine others are
     using, this counts the time the workers waited for a CPU;
   - CPU: CPU time of this process and its children (the cluster's nannies
     and workers, the scheduler's thread here), less the cells' own CPU time
     (cell.cpu_seconds), per cell, after taking off what a 2-cell grid costs
     (cluster start, imports, warm-up).  Other processes do not inflate it.
2. The same grid with 1-frame cells: almost nothing but the overhead, so the
   cluster's wall time per cell is what a cell costs at the least.
3. The warm-up: per worker, the warm-up task's seconds and, without it, the
   first cell's seconds against the median cell on that worker; with
   --cold, also with an empty numba cache (NUMBA_CACHE_DIR), where each worker
   compiles the fast engine once (not once per cell).

Usage: python3 benchmarks/bench_grid.py [--workers N] [--cells-count 300000] [--cold]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEC = """
[grid]
command = "run"
[fixed]
count = {count}
[axes]
kernel = ["6.1", "6.9", "6.12", "6.18"]
nic = [
  {{ name = "ice rx=legacy", driver = "ice", opt = {{ rx = "legacy" }} }},
  {{ name = "ice rx=build_skb", driver = "ice", opt = {{ rx = "build_skb" }} }},
  {{ name = "copybreak", driver = "copybreak" }},
  {{ name = "tun", driver = "tun" }},
]
rcvbuf = [2304, 4096, 8192, 16384, 32768, 65536, 131072, 212992, 425984, 851968, 1703936, 4194304, 8388608]
"""


def grid(tmp: Path, name: str, count: int, rcvbufs: int = 13, **kwargs):
    """Run the grid (its first ``rcvbufs`` rcvbuf sizes) into tmp/name.parquet; (summary, rows, CPU seconds).

    The CPU seconds are this process's and its children's (waited for: the
    cluster's processes, once it is closed).
    """
    import pyarrow.parquet as pq

    from skbsim.grid import load_spec, run_grid

    spec_path = tmp / f"{name}.toml"
    text = SPEC.format(count=count)
    sizes = text.split("rcvbuf = [", 1)[1].split("]", 1)[0].split(", ")
    spec_path.write_text(text.replace(", ".join(sizes), ", ".join(sizes[:rcvbufs])))
    out = tmp / f"{name}.parquet"
    before = _cpu()
    summary = run_grid(load_spec(str(spec_path)), str(out), progress=False, **kwargs)
    cpu = _cpu() - before
    rows = pq.read_table(out).to_pylist()
    assert summary.failed == 0 and len(rows) == summary.cells, summary
    return summary, rows, cpu


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def results(rows: list[dict]) -> dict:
    return {r["cell.key"]: {k: v for k, v in r.items() if k.startswith("result.")} for r in rows}


def phase(summary) -> float:
    return summary.seconds - summary.setup_seconds


def report(label: str, run, workers: int, base=None) -> None:
    """Wall and CPU figures of one grid run; ``base``: the same way's 2-cell run (its fixed costs)."""
    summary, rows, cpu = run
    cell_seconds = sum(r["cell.seconds"] for r in rows)
    cell_cpu = sum(r["cell.cpu_seconds"] for r in rows)
    n = len(rows)
    if base is not None:
        _, base_rows, base_cpu = base
        cpu_overhead = ((cpu - cell_cpu) - (base_cpu - sum(r["cell.cpu_seconds"] for r in base_rows))) / (n - len(base_rows))
    else:
        cpu_overhead = (cpu - cell_cpu) / n
    if workers == 0:
        overhead = (summary.seconds - cell_seconds) / n
        print(f"{label:<28} {summary.seconds:6.2f} s wall; cells' own {cell_seconds:6.2f} s wall, {cell_cpu:6.2f} s CPU; "
              f"overhead {overhead * 1e3:5.2f} ms wall, {cpu_overhead * 1e3:5.2f} ms CPU per cell")
    else:
        overhead = (workers * phase(summary) - cell_seconds) / n
        print(f"{label:<28} {summary.seconds:6.2f} s wall ({summary.setup_seconds:4.2f} s cluster start and warm-up); "
              f"cells' own {cell_seconds:6.2f} s wall, {cell_cpu:6.2f} s CPU; overhead {overhead * 1e3:5.2f} ms wall "
              f"per cell per worker, {cpu_overhead * 1e3:5.2f} ms CPU per cell")


def per_worker(rows: list[dict]) -> list[str]:
    lines = []
    by_worker: dict[str, list[float]] = {}
    for r in sorted(rows, key=lambda r: r["cell.index"]):
        by_worker.setdefault(r["cell.worker"], []).append(r["cell.seconds"])
    for worker, seconds in sorted(by_worker.items()):
        lines.append(f"{worker}: first cell {seconds[0] * 1e3:7.1f} ms, median {statistics.median(seconds) * 1e3:6.1f} ms "
                     f"over {len(seconds)} cells")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cells-count", type=int, default=300_000, help="frames per cell (default 300000)")
    parser.add_argument("--cold", action="store_true", help="also measure workers starting with an empty numba cache")
    args = parser.parse_args()
    w = args.workers
    print(f"machine: {os.cpu_count()} CPUs; LocalCluster of {w} worker processes, one thread each")
    with tempfile.TemporaryDirectory(prefix="skbsim-bench-grid-") as tmpdir:
        tmp = Path(tmpdir)
        from skbsim.commands.run import configs_from_args  # noqa: F401 - imports outside the timings
        from skbsim.fast import simulate_engine
        from skbsim.sim import RunConfig

        simulate_engine(RunConfig(count=100))  # this process loads numba's cache once, untimed

        serial = grid(tmp, "serial", args.cells_count, serial=True)
        serial_base = grid(tmp, "serial-2", args.cells_count, rcvbufs=1, serial=True)
        local = grid(tmp, "local", args.cells_count, workers=w)
        local_base = grid(tmp, "local-2", args.cells_count, rcvbufs=1, workers=w)
        assert results(serial[1]) == results(local[1]), "serial and cluster results differ"
        print(f"\n1. {len(serial[1])} cells of {args.cells_count:,} IMIX frames (same results both ways)")
        report("serial, in this process", serial, 0, serial_base)
        report(f"LocalCluster, {w} workers", local, w, local_base)
        print(f"speed-up: {serial[0].seconds / local[0].seconds:.2f}x wall, "
              f"{serial[0].seconds / phase(local[0]):.2f}x for the cells alone (ideal {w}x)")

        tiny_serial = grid(tmp, "tiny-serial", 1, serial=True)
        tiny = grid(tmp, "tiny", 1, workers=w)
        tiny_base = grid(tmp, "tiny-2", 1, rcvbufs=1, workers=w)
        n = len(tiny[1])
        print(f"\n2. {n} cells of 1 frame: the overhead alone")
        report("serial, in this process", tiny_serial, 0, grid(tmp, "tiny-serial-2", 1, rcvbufs=1, serial=True))
        report(f"LocalCluster, {w} workers", tiny, w, tiny_base)
        print(f"wall per cell: {phase(tiny[0]) / n * 1e3:.2f} ms on the cluster, "
              f"{tiny_serial[0].seconds / n * 1e3:.2f} ms serially")

        print("\n3. the fast engine, once per worker")
        print("warm-up task per worker (numba's cache loaded): "
              + ", ".join(f"{s:.2f} s" for s in local[0].warm_up.values()))
        for line in per_worker(local[1]):
            print(f"  with warm-up     {line}")
        for line in per_worker(grid(tmp, "nowarm", args.cells_count, workers=w, warm=False)[1]):
            print(f"  without warm-up  {line}")
        if args.cold:
            os.environ["NUMBA_CACHE_DIR"] = str(tmp / "empty-numba-cache")
            started = time.perf_counter()
            cold, cold_rows, _ = grid(tmp, "cold", args.cells_count, workers=w)
            print("empty numba cache: warm-up (compiling) per worker "
                  + ", ".join(f"{s:.1f} s" for s in cold.warm_up.values())
                  + f"; grid {time.perf_counter() - started:.1f} s")
            for line in per_worker(cold_rows):
                print(f"  cold cache       {line}")


if __name__ == "__main__":
    main()
