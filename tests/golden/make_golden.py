#!/usr/bin/env python3
"""Golden outputs of the reference engine (``skbsim.sim.simulate``).

Each workload below is run once and its whole outcome is stored in
``tests/golden/NAME.json``: the JSON result, the plot data (``extra``) and
a SHA-256 digest of the per-packet trace records.  ``tests/test_golden.py``
runs every workload again and compares the text byte for byte, so a change
meant to make the engine faster (and nothing else) proves it changed no
result.

These files are regression baselines, not expectations derived by hand:
they say "what the engine computed when the golden files were made".
Regenerate them (``python3 tests/golden/make_golden.py``) only for a change
that is meant to alter results, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent
ROOT = GOLDEN_DIR.parent.parent
DIST_CSV = GOLDEN_DIR / "dist_small_large.csv"

# name -> RunConfig keyword arguments.  Between them they cover every built-in
# kernel, every driver and its main options, several CPUs, overload (ring
# drops), a small receive buffer with a slow reader (socket drops, skb_condense)
# and Poisson arrivals.
WORKLOADS: dict[str, dict] = {
    "ice_legacy_6.9_imix": dict(kernel="6.9", driver="ice", options={"rx": "legacy"}, traffic="imix", count=20_000),
    "ice_legacy_6.1_imix": dict(kernel="6.1", driver="ice", options={"rx": "legacy"}, traffic="imix", count=10_000),
    "ice_legacy_6.12_imix": dict(kernel="6.12", driver="ice", options={"rx": "legacy"}, traffic="imix", count=10_000),
    "ice_legacy_6.18_imix": dict(kernel="6.18", driver="ice", options={"rx": "legacy"}, traffic="imix", count=10_000),
    "ice_build_6.9_imix": dict(kernel="6.9", driver="ice", options={"rx": "build_skb"}, traffic="imix", count=10_000),
    "ice_build_mtu9000_6.1_uniform": dict(kernel="6.1", driver="ice", options={"rx": "build_skb", "mtu": "9000"},
                                          traffic="uniform:60-9000", count=5_000, seed=3),
    "ice_build_mtu9000_6.18_overload": dict(kernel="6.18", driver="ice",
                                            options={"rx": "build_skb", "mtu": "9000", "ring": "64"},
                                            traffic="uniform:60-9014", count=5_000, rate=5_000_000.0, seed=4),
    "ice_legacy_mtu9000_6.12_jumbo": dict(kernel="6.12", driver="ice", options={"rx": "legacy", "mtu": "9000"},
                                          traffic="fixed:8000", count=3_000, rate=300_000.0),
    "ice_legacy_6.9_burst": dict(kernel="6.9", driver="ice", options={"rx": "legacy", "ring": "256"},
                                 traffic="imix", count=5_000, rate=None),
    "copybreak_6.9_imix": dict(kernel="6.9", driver="copybreak", options={}, traffic="imix", count=10_000),
    "copybreak_0_6.1_uniform": dict(kernel="6.1", driver="copybreak", options={"copybreak": "0"},
                                    traffic="uniform:60-1514", count=5_000, seed=5),
    "copybreak_1500_6.18_overload": dict(kernel="6.18", driver="copybreak", options={"copybreak": "1500", "ring": "64"},
                                         traffic="imix", count=5_000, rate=4_000_000.0),
    "tun_block_6.9_imix": dict(kernel="6.9", driver="tun", options={"write": "block", "napi": "0"},
                               traffic="imix", count=5_000),
    "tun_nonblock_napi_6.12_imix": dict(kernel="6.12", driver="tun", options={"write": "nonblock", "napi": "1"},
                                        traffic="imix", count=5_000, rate=3_000_000.0),
    "tun_napi_frags_6.18_uniform": dict(kernel="6.18", driver="tun", options={"napi": "1", "frags": "1"},
                                        traffic="uniform:60-1514", count=5_000, seed=6),
    "tun_sndbuf_6.1_imix": dict(kernel="6.1", driver="tun", options={"sndbuf": "1000000"}, traffic="imix", count=5_000),
    "ice_legacy_6.9_cpus2": dict(kernel="6.9", driver="ice", options={"rx": "legacy"}, traffic="imix", count=10_000,
                                 cpus=2, flows=16, rate=2_000_000.0),
    "ice_build_6.18_cpus3_poisson": dict(kernel="6.18", driver="ice", options={"rx": "build_skb"}, traffic="imix",
                                         count=10_000, cpus=3, flows=32, rate=3_000_000.0, arrival="poisson", seed=7),
    "ice_legacy_6.9_small_rcvbuf": dict(kernel="6.9", driver="ice", options={"rx": "legacy"}, traffic="imix",
                                        count=10_000, rcvbuf=20_000, app_rate=100_000.0),
    "ice_legacy_6.1_small_rcvbuf_mtu9000": dict(kernel="6.1", driver="ice", options={"rx": "legacy", "mtu": "9000"},
                                                traffic="uniform:60-4000", count=5_000, rcvbuf=30_000,
                                                app_rate=150_000.0, seed=8),
    "ice_legacy_6.18_cpus2_defer": dict(kernel="6.18", driver="ice", options={"rx": "legacy"}, traffic="imix",
                                        count=10_000, cpus=2, rate=1_500_000.0, arrival="poisson",
                                        rcvbuf=60_000, app_rate=400_000.0, seed=9),
    "copybreak_6.12_cpus2_small_rcvbuf": dict(kernel="6.12", driver="copybreak", options={}, traffic="imix",
                                              count=5_000, cpus=2, rcvbuf=10_000, app_rate=200_000.0, seed=10),
    "tun_napi_6.9_poisson_small_rcvbuf": dict(kernel="6.9", driver="tun", options={"napi": "1"}, traffic="imix",
                                              count=5_000, arrival="poisson", rate=800_000.0, rcvbuf=15_000,
                                              app_rate=300_000.0, seed=11),
    "ice_legacy_6.12_dist": dict(kernel="6.12", driver="ice", options={"rx": "legacy"}, traffic=f"dist:{DIST_CSV}",
                                 count=5_000, seed=12),
    # 7.1: tun's blocking writes take sk_buffs from the NAPI skb cache (6.19); virtio_net on page_pool;
    # two CPUs with skb_defer_max 128 and alien skbs deferred
    "tun_block_7.1_imix": dict(kernel="7.1", driver="tun", options={"write": "block", "napi": "0"},
                               traffic="imix", count=5_000),
    "virtio_net_7.1_imix": dict(kernel="7.1", driver="virtio_net", options={}, traffic="imix", count=5_000),
    "copybreak_7.1_cpus2_defer": dict(kernel="7.1", driver="copybreak", options={}, traffic="imix", count=5_000,
                                      cpus=2, rate=1_500_000.0, arrival="poisson", rcvbuf=60_000,
                                      app_rate=400_000.0, seed=13),
}


class _DigestTrace:
    """A trace sink that hashes every record the engine writes (in order)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.records = 0

    def write(self, time_ns, cpu, frame_len, record, outcome) -> None:
        self.records += 1
        self.digest.update(repr((time_ns, cpu, frame_len, record, outcome)).encode())


def run_workload(name: str) -> str:
    """The golden text of one workload: result, plot data and trace digest as sorted JSON."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from skbsim.sim import RunConfig, simulate

    kwargs = dict(WORKLOADS[name])
    kwargs["options"] = dict(kwargs.get("options", {}))
    trace = _DigestTrace()
    result, extra = simulate(RunConfig(**kwargs), trace=trace)
    # The dist: file's path is machine-specific; the result names it.
    text = json.dumps({"result": result, "extra": extra,
                       "trace": {"records": trace.records, "sha256": trace.digest.hexdigest()}}, sort_keys=True)
    return text.replace(str(DIST_CSV), "DIST_CSV")


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.json"


def main() -> int:
    names = sys.argv[1:] or list(WORKLOADS)
    for name in names:
        text = run_workload(name)
        golden_path(name).write_text(text + "\n")
        result = json.loads(text)["result"]
        print(f"{name}: {result['packets']} packets, delivered {result['delivered']}, dropped {result['dropped']}, "
              f"condensed {result['socket']['condensed']}, leaks clean {result['leaks']['clean']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
