"""benchmarks/bench_tcp.py with tiny counts: it prints its figures (the model's for each workload;
the live kernel's and the ratios where root, /dev/net/tun and namespaces are there, else the note
that the live side was skipped).  No timing is checked: the figures are the benchmark's to print.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from skbsim.live.tap import our_namespaces

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_tcp import WORKLOADS, live_missing  # noqa: E402


def test_bench_tcp_prints_its_figures():
    child = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "bench_tcp.py"), "--segments", "40",
                              "--live-segments", "300", "--repeat", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    out, err = child.communicate(timeout=600)
    assert child.returncode == 0, err
    models = re.findall(r"^model   (\w+) engine.*?: (\d+) segments in .* = ([\d,]+) segments/s, ", out, re.M)
    assert [int(count) for _, count, _ in models] == [40] * len(WORKLOADS)
    assert {engine for engine, _, _ in models} <= {"fast", "reference"}
    if live_missing():
        assert "live    skipped: " in out
        assert "ratio" not in out
    else:
        lives = re.findall(r"^live    kernel .*: 300 segments, 438,000 bytes \(all read back\) in .* segments/s", out,
                           re.M)
        assert len(lives) == len(WORKLOADS), out
        assert len(re.findall(r"^ratio   .*: model / live kernel = [\d.]+ in wall time", out, re.M)) == len(WORKLOADS)
        assert our_namespaces(child.pid) == []  # a fresh namespace per pass, each removed
