"""A grid's results: one part file per finished cell, one Parquet file at the end.

While the grid runs, each finished cell's row is written to its own small JSON
file in ``RESULTS.parquet.parts/``, under a temporary name, then renamed: a
rename is atomic, so if the grid is killed (SIGKILL) while writing, the part
is absent, never half there.  (Parts are not fsync'ed one by one: a part that
a power loss cut short does not parse, so --resume drops it and runs its cell
again.)  When the grid ends, finished or interrupted, the parts and the rows
of an earlier RESULTS.parquet are merged into RESULTS.parquet (written aside,
fsync'ed and renamed), ordered by cell, each column typed from all its values
(an integer column that is a float in some cell becomes a float; a column that
some cells lack is null there); then the parts are removed.  ``--resume``
reads the cell keys already in both, so a cell that finished is never run
again.

Why JSON parts: writing one takes about 0.2 ms; a one-row Parquet file takes
about 7 ms (per-column pages, statistics, compression) and a one-row Arrow
file about 1.4 ms (most of it building the table), which on short cells would
be a good part of the grid's own cost.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from skbsim.errors import InputError
from skbsim.files import shown

#: the Parquet schema metadata key holding the grid's description (GridSpec.metadata())
METADATA_KEY = b"skbsim.grid"
STATUSES = ("ok", "error")


class ResultStore:
    """RESULTS.parquet and its parts directory."""

    def __init__(self, out: str):
        self.out = Path(out)
        self.parts = Path(f"{out}.parts")

    def exists(self) -> bool:
        return self.out.exists() or self.parts.exists()

    def open(self) -> None:
        if self.out.is_dir():
            raise InputError(f"-o {shown(self.out)}: is a directory")
        try:
            self.parts.mkdir(parents=True, exist_ok=True)
            for stale in self.parts.glob(".*.tmp"):  # a write the grid was killed in: never renamed, so never done
                stale.unlink()
        except OSError as err:
            raise InputError(f"-o {shown(self.out)}: cannot write beside it: {err.strerror}") from None

    def done(self) -> dict[str, str]:
        """Cell key -> status ("ok" or "error") of every cell already recorded."""
        import pyarrow.parquet as pq

        done: dict[str, str] = {}
        if self.out.exists():
            # Only a grid's results are merged into (and then replaced): any other file is refused.
            read_description(str(self.out), columns=("cell.key", "cell.status"))
            try:
                table = pq.read_table(self.out, columns=["cell.key", "cell.status"])
            except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
                raise InputError(f"{shown(self.out)}: not a grid's results: {str(err).splitlines()[0]}") from None
            for key, status in zip(table.column("cell.key").to_pylist(), table.column("cell.status").to_pylist()):
                done[key] = status
        for key, status in self._part_keys():
            if done.get(key) != "ok" and self._read_part(key, status) is not None:
                done[key] = status
        return done

    def _part(self, key: str, status: str) -> Path:
        return self.parts / f"{key}.{status}.json"

    def _part_keys(self):
        if not self.parts.is_dir():
            return
        for path in self.parts.iterdir():
            key, dot, rest = path.name.partition(".")
            status = rest.removesuffix(".json")
            if dot and not path.name.startswith(".") and status in STATUSES:
                yield key, status

    def _read_part(self, key: str, status: str) -> dict | None:
        """A part's row, or None (and the part removed) if it cannot be read."""
        path = self._part(key, status)
        try:
            row = json.loads(path.read_bytes())
        except (OSError, ValueError):
            row = None
        if not isinstance(row, dict) or row.get("cell.key") != key:
            path.unlink(missing_ok=True)
            return None
        return row

    def write(self, row: dict) -> None:
        """Record one finished cell: its part file appears whole, or not at all."""
        key, status = row["cell.key"], row["cell.status"]
        tmp = self.parts / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(row))
        os.replace(tmp, self._part(key, status))
        for other in STATUSES:  # a cell rerun by --resume replaces its failed row
            if other != status:
                self._part(key, other).unlink(missing_ok=True)

    def finish(self, spec) -> int:
        """Merge the earlier results and the parts into RESULTS.parquet; return the rows it holds.

        Rows are those of cells in ``spec`` (cells a changed spec no longer has
        are left out); each row's axis columns, index and command line are the
        spec's, so relabelling a value in the spec relabels its rows.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        cells = {cell.key: cell for cell in spec.cells}
        # "error" sorts before "ok": a cell with both parts (killed between writing one and removing the
        # other) keeps its "ok" row.
        parts = {key: row for key, status in sorted(self._part_keys(), key=lambda ks: ks[1])
                 if (row := self._read_part(key, status)) is not None}
        rows = [row for key, row in parts.items() if key in cells]
        if self.out.exists():
            rows.extend(row for row in pq.read_table(self.out).to_pylist()
                        if row["cell.key"] not in parts and row["cell.key"] in cells)
        for row in rows:
            cell = cells[row["cell.key"]]
            row.update(cell.axes)
            row["cell.index"] = cell.index
            row["cell.command"] = cell.command_line(spec.command)
        rows.sort(key=lambda row: row["cell.index"])
        axes = [axis.name for axis in spec.axes]
        # Axes, then the cell's own columns, then the results in the order the cells had them.
        names = list(dict.fromkeys([*axes, *CELL_COLUMNS, *(name for row in rows for name in row)]))
        merged = pa.table({name: _column([row.get(name) for row in rows]) for name in names})
        merged = merged.replace_schema_metadata({METADATA_KEY: json.dumps(spec.metadata()).encode()})
        tmp = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
        try:
            pq.write_table(merged, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.out)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise InputError(f"-o {shown(self.out)}: cannot write: {err.strerror}") from None
        shutil.rmtree(self.parts, ignore_errors=True)
        return merged.num_rows


CELL_COLUMNS = ("cell.index", "cell.status", "cell.error", "cell.command", "cell.note", "cell.seconds",
                "cell.cpu_seconds", "cell.worker", "cell.session", "cell.key")


def _column(values: list):
    """One column from every row's value: integers and floats together make floats; anything else mixed
    (a result that is a number in one cell and text in another) becomes text."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values])


def read_results(path: str):
    """A grid's results and its description: (pyarrow Table, metadata dict).  The description is
    checked first (the report reads it without further checks); then the rows are read."""
    import pyarrow.parquet as pq

    meta = read_description(path)
    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InputError(f"{shown(path)}: not a Parquet file: {str(err).splitlines()[0]}") from None
    return table, meta


def read_description(path: str, columns: tuple[str, ...] = ("cell.index", "cell.status", "cell.command")) -> dict:
    """The description (GridSpec.metadata()) of the grid whose results are in ``path``, checked, and
    ``columns`` there; InputError when the file is not a grid's results or is damaged."""
    import pyarrow.parquet as pq

    where = Path(path)
    if where.is_dir():
        raise InputError(f"{shown(path)}: is a directory")
    if not where.exists():
        raise InputError(f"{shown(path)}: no such file")
    if not where.is_file():
        raise InputError(f"{shown(path)}: not a regular file")
    try:
        schema = pq.read_schema(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InputError(f"{shown(path)}: not a Parquet file: {str(err).splitlines()[0]}") from None
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise InputError(f"{shown(path)}: not the results of 'skbsim grid' (no {METADATA_KEY.decode()} metadata)")
    try:
        return _checked_metadata(raw, schema.names, columns)
    except ValueError as err:
        raise InputError(f"{shown(path)}: damaged results of 'skbsim grid': {err}") from None


def _checked_metadata(raw: bytes, names: list[str], columns: tuple[str, ...]) -> dict:
    """The grid's description (GridSpec.metadata()) from its JSON, with the shape the report reads
    (docs/schema/parquet/grid.schema.json); ValueError saying what is wrong."""
    import math

    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"its {METADATA_KEY.decode()} metadata is not JSON") from None
    if not isinstance(meta, dict):
        raise ValueError(f"its {METADATA_KEY.decode()} metadata is not an object")
    for key, kind, words in (("command", str, "a string"), ("title", str, "a string"), ("spec", str, "a string"),
                             ("axes", list, "a list"), ("report", dict, "an object"), ("cells", int, "an integer")):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise ValueError(f"{key!r} in its {METADATA_KEY.decode()} metadata is missing or not {words}")
    for axis in meta["axes"]:
        if not (isinstance(axis, dict) and isinstance(axis.get("name"), str) and isinstance(axis.get("values"), list)
                and axis["values"]):
            raise ValueError(f"an axis in its {METADATA_KEY.decode()} metadata is not {{name, values}}")
    for key, value in meta["report"].items():
        if not (isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"report {key} in its {METADATA_KEY.decode()} metadata is not a name or a list of names")
    # The spec's cells are the product of its axes: anything else is no grid's description (and a
    # product of made-up axes could be too many charts to draw).
    if meta["cells"] != math.prod(len(axis["values"]) for axis in meta["axes"]):
        raise ValueError(f"{meta['cells']} cells is not the product of its axes")
    missing = [name for name in columns if name not in names]
    if missing:
        raise ValueError(f"no {', '.join(missing)} column")
    return meta
