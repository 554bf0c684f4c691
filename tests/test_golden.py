"""The reference engine still computes exactly what it computed when the golden files were made.

Each workload of tests/golden/make_golden.py (every built-in kernel, every
driver, several CPUs, overload, socket drops, skb_condense, Poisson
arrivals) is run again; its result, plot data and per-packet trace digest
must equal the stored text byte for byte.  This guards changes made for
speed: they must not change a single number.  The stored files are
baselines recorded from the engine, not hand-derived expectations.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("make_golden", Path(__file__).parent / "golden" / "make_golden.py")
make_golden = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(make_golden)


@pytest.mark.parametrize("name", sorted(make_golden.WORKLOADS))
def test_golden_output_unchanged(name):
    expected = make_golden.golden_path(name).read_text().rstrip("\n")
    actual = make_golden.run_workload(name)
    if actual != expected:
        # Point at the first difference rather than printing two long lines.
        at = next((i for i, (a, b) in enumerate(zip(actual, expected)) if a != b), min(len(actual), len(expected)))
        pytest.fail(f"{name}: output differs from the golden file at character {at}: "
                    f"got ...{actual[max(0, at - 80):at + 80]!r}... expected ...{expected[max(0, at - 80):at + 80]!r}...")
