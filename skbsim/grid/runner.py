"""Running a grid's cells: in this process, or on a Dask cluster, recording each as it finishes."""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

from skbsim.errors import InputError
from skbsim.files import shown
from skbsim.grid.cells import cell_command, error_text, execute_cell, warm_up
from skbsim.grid.spec import GridSpec
from skbsim.grid.store import ResultStore


@dataclass
class GridSummary:
    cells: int
    #: cells whose result an earlier run had already recorded (--resume)
    reused: int = 0
    ran: int = 0
    failed: int = 0
    rows: int = 0
    seconds: float = 0.0
    #: of which: starting or reaching the cluster and warming its workers up
    setup_seconds: float = 0.0
    interrupted: bool = False
    #: worker -> seconds its warm-up took
    warm_up: dict = field(default_factory=dict)
    session: str = ""


def run_grid(spec: GridSpec, out: str, *, scheduler: str | None = None, workers: int | None = None,
             serial: bool = False, resume: bool = False, timeout: float = 10.0, progress: bool = True,
             on_failure=None, warm: bool = True) -> GridSummary:
    """Run every cell not already recorded in ``out`` and write the results there.

    ``serial``: in this process, one cell after another.  Otherwise on Dask:
    the cluster at ``scheduler`` as it is, or a LocalCluster of ``workers``
    processes (default one per core) with one thread each.  ``on_failure(cell,
    row)`` is called for each failed cell.  ``warm``: each worker loads the
    compiled fast engine before the first cell (off only to measure it).
    """
    store = ResultStore(out)
    if store.exists() and not resume:
        raise InputError(f"{shown(out)} (or {shown(store.parts.name)}) exists: --resume runs only the cells it lacks; "
                         "or remove it")
    done = store.done() if resume else {}
    todo = [cell for cell in spec.cells if done.get(cell.key) != "ok"]
    summary = GridSummary(cells=len(spec.cells), reused=len(spec.cells) - len(todo), session=uuid.uuid4().hex[:12])
    store.open()
    started = time.perf_counter()
    meta = {cell.key: _meta(spec, cell, summary.session) for cell in todo}
    cells = {cell.key: cell for cell in todo}

    def record(row: dict) -> None:
        store.write(row)
        summary.ran += 1
        if row["cell.status"] != "ok":
            summary.failed += 1
            if on_failure is not None:
                on_failure(cells[row["cell.key"]], row)
        bar.advance(row["cell.status"] != "ok")

    try:
        with _Bar(len(spec.cells), summary.reused, enabled=progress) as bar:
            if serial:
                for cell in todo:
                    record(execute_cell(spec.command, cell.argv, meta[cell.key]))
            elif todo:
                with _client(scheduler, workers, timeout) as client:
                    if warm:
                        summary.warm_up = _warm_up(client, spec, todo)
                    summary.setup_seconds = time.perf_counter() - started
                    _run_on_cluster(client, spec, todo, meta, record)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.rows = store.finish(spec)
        summary.seconds = time.perf_counter() - started
    return summary


def _meta(spec: GridSpec, cell, session: str) -> dict:
    """A row's columns known before the cell runs."""
    return {**cell.axes, "cell.index": cell.index, "cell.key": cell.key,
            "cell.command": cell.command_line(spec.command), "cell.session": session}


@contextmanager
def _client(scheduler: str | None, workers: int | None, timeout: float):
    """A Dask client: on the cluster at ``scheduler``, left as it is, or on a LocalCluster of our own."""
    import dask
    from distributed import Client, LocalCluster

    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if scheduler is None:
        n = workers or os.cpu_count() or 1
        # Our own cluster does without what costs CPU all the time and serves only the dashboard and
        # diagnostics: the workers' statistical profiler (a stack sample every 10 ms), the system monitor
        # every 0.5 s and the 20 ms tick; idle, that is ~10% of a core for two workers, ~3% without.
        with dask.config.set({"distributed.worker.profile.enabled": False,
                              "distributed.admin.system-monitor.interval": "5s",
                              "distributed.admin.tick.interval": "1s"}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   scheduler_port=0, silence_logs=logging.CRITICAL)
            try:
                with Client(cluster) as client:
                    yield client
            finally:
                cluster.close()
        return
    try:
        client = Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError, ValueError, TypeError) as err:
        raise InputError(f"--scheduler {shown(scheduler)}: cannot reach a Dask scheduler there "
                         f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise InputError(f"--scheduler {shown(scheduler)}: the scheduler has no workers") from None
        yield client
    finally:
        client.close()


def _warm_up(client, spec: GridSpec, todo: list) -> dict:
    """One warm-up task pinned to each worker, before any cell: each worker loads the fast engine once."""
    adapter = cell_command(spec.command)
    if not adapter.warmup:
        return {}
    # One tiny run of each kind of cell (its first), e.g. each driver of a run grid.
    argvs: dict = {}
    for cell in todo:
        argvs.setdefault(adapter.kind(adapter.parse(cell.argv)), cell.argv)
    workers = list(client.scheduler_info()["workers"])
    futures = [client.submit(warm_up, spec.command, list(argvs.values()), workers=[w], allow_other_workers=False,
                             pure=False, key=f"skbsim-warm-up-{uuid.uuid4().hex[:8]}") for w in workers]
    out = {}
    for future in futures:
        info = future.result()
        out[info["worker"]] = round(info["seconds"], 3)
    return out


def _run_on_cluster(client, spec: GridSpec, todo: list, meta: dict, record) -> None:
    from distributed import as_completed

    keys = [f"skbsim-cell-{cell.key}-{meta[cell.key]['cell.session']}" for cell in todo]
    futures = client.map(execute_cell, [spec.command] * len(todo), [cell.argv for cell in todo],
                         [meta[cell.key] for cell in todo], key=keys, pure=False, retries=0)
    by_key = {future.key: cell for future, cell in zip(futures, todo)}
    # Results are fetched a batch at a time (all that finished since the last batch): one request for
    # many rows instead of one per cell.
    for batch in as_completed(futures).batches():
        done = [f for f in batch if f.status == "finished"]
        rows = client.gather(done, errors="skip") if done else []
        for future, row in zip(done, rows):
            record(row)
        for future in batch:
            if future.status != "finished":  # the worker died or the task was lost: the cell failed
                cell = by_key[future.key]
                record({**meta[cell.key], "cell.status": "error", "cell.error": error_text(_exception(future)),
                        "cell.note": None, "cell.seconds": None, "cell.cpu_seconds": None, "cell.worker": None})
            future.release()


def _exception(future) -> BaseException:
    try:
        return future.exception(timeout=10) or RuntimeError(f"task {future.status}")
    except Exception as err:  # noqa: BLE001 - cancelled or lost: that is the error
        return err


class _Bar:
    """A rich progress bar over cells on stderr, when it is a terminal."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self.total, self.done, self.failed = total, done, 0
        self.bar = self.task = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("cells", total=self.total, completed=self.done, failed=0)
        return self

    def advance(self, failed: bool) -> None:
        self.failed += failed
        if self.bar is not None:
            self.bar.update(self.task, advance=1, failed=self.failed)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
