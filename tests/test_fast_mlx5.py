"""The fast engine's mlx5 gives the reference engine's answers, key for key (the engine name aside).

As in tests/test_fast_engine.py the reference engine is the oracle (tests/test_drivers_page_pool.py
hand-derives its mlx5 figures); these tests demand equality over fixed workloads that reach the driver's
corners, fault workloads for every layer mlx5 allocates from, random workloads over every option, and
--trace / --plot.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import simulate_engine, unsupported
from skbsim.sim import RunConfig, simulate
from test_fast_engine import FAULTS, RUN_SPACE, _assert_same, _traced_runs

#: every release the model has: 6.1's RQ page cache, 6.4+'s page_pool fragments
MLX5_KERNELS = ("6.1", "6.9", "6.12", "6.18", "host", "7.1")
#: the RQ and MTU decide the skbs (mlx5e_rx_is_linear_skb(): MLX5_SKB_FRAG_SZ(64 + MTU + 22) within a page up to
#: MTU 3690): striding linear (2048-byte strides at 1500) and non-linear (256-byte strides, a 256-byte copy
#: and the rest page by page, at 9000); legacy linear (two WQEs a page at 1500, eight at 68) and non-linear
#: (a 1664-byte first fragment and 2048-byte ones at 9000; page-sized ones above 9834)
MLX5_OPTIONS = [
    {"rq": "striding"},
    {"rq": "striding", "mtu": "9000"},
    {"rq": "legacy"},
    {"rq": "legacy", "mtu": "68", "ring": "64"},
    {"rq": "legacy", "mtu": "9000"},
    {"rq": "legacy", "mtu": "9978", "ring": "64"},
]
MLX5_WORKLOADS = [
    # IMIX at a moderate rate: pages recycled through the pool's alloc cache (6.1: the RQ page cache)
    dict(traffic="imix", count=6_000, rate=3e6),
    # a slow reader against a small buffer: socket drops freed in the pool's NAPI context, skb_condense() of
    # non-linear skbs (the frags pulled into the head's tailroom)
    dict(traffic="uniform:14-9022", count=3_000, rcvbuf=30_000, app_rate=2e5, rate=5e6),
    # every frame at t=0: ring drops, polls that use their budget, time squeeze, striding WQEs closed by fillers
    dict(traffic="uniform:60-1600", count=3_000, rate=None, packet_cost_ns=2_000),
    # several CPUs: a pool per RQ, the reader's frees on CPU 0 (6.18: defer lists and their IPIs)
    dict(traffic="uniform:60-9022", count=8_000, cpus=3, flows=16, rate=6e6, app_rate=1e6),
]


@pytest.mark.parametrize("kernel", MLX5_KERNELS)
@pytest.mark.parametrize("options", MLX5_OPTIONS)
@pytest.mark.parametrize("workload", MLX5_WORKLOADS)
def test_mlx5_fixed_workloads(kernel, options, workload):
    _assert_same(kernel=kernel, driver="mlx5", options=options, **workload)


@pytest.mark.parametrize("kernel", MLX5_KERNELS)
@pytest.mark.parametrize("options", [{"rq": "striding", "mtu": "9000"}, {"rq": "legacy", "mtu": "9000"},
                                     {"rq": "striding", "mtu": "3000"}])
@pytest.mark.parametrize("faults", [
    # pages (the pool's bulk refills) and sk_buffs failing at times: WQEs left empty and posted later, frames
    # lost when napi_build_skb() or napi_alloc_skb() fails
    (("page_alloc", 0.05, 1, -1, 0), ("slab", 0.05, 1, -1, 0)),
    # a page in three refused under a slow reader: WQE refills that fail (the RQ lives on what its pool, and
    # on 6.1 its page cache, recycles) and sk_buffs that cannot be had
    (("page_alloc", 0.3, 1, -1, 0),),
    # every third sk_buff bulk refill fails, twenty times
    (("slab", 1.0, 3, 20, 0),),
    # the heads of a striding RQ's non-linear skbs: page_frag_1k, skbuff_small_head or the NAPI page_frag_cache
    (("page_frag", 0.1, 1, -1, 0), ("skb_head", 0.1, 1, -1, 0)),
])
def test_mlx5_fault_workloads(kernel, options, faults):
    _assert_same(kernel=kernel, driver="mlx5", options=options, traffic="uniform:14-9022", count=4_000, rate=3e6,
                 cpus=2, app_rate=1e4, rcvbuf=4_000_000, faults=faults)


def test_mlx5_workloads_reach_their_corners():
    # the workloads above are meant to reach these states (read from the reference engine): refills and
    # sk_buffs that fail, copied heads, condensed skbs, ring drops, and the page_pool counters these pools
    # move (6.1's pages released while skbs hold them, its full RQ page cache sending pages to the pool)
    seen = dict.fromkeys(("rx_pp_alloc_fast", "rx_pp_alloc_slow", "rx_pp_alloc_empty", "rx_pp_alloc_refill",
                          "rx_pp_recycle_cached", "rx_pp_recycle_cache_full", "rx_pp_recycle_ring",
                          "rx_pp_recycle_ring_full", "rx_pp_recycle_released_ref", "buffer_alloc_failures",
                          "skb_alloc_failures", "bytes_copied", "ring_drops", "condensed"), 0)
    runs = [(kernel, options, workload, ()) for kernel in ("6.1", "6.18") for options in MLX5_OPTIONS[:5]
            for workload in MLX5_WORKLOADS[1:3]]
    runs += [(kernel, {"rq": rq, "mtu": "9000"}, dict(traffic="uniform:14-9022", count=4_000, rate=3e6, cpus=2,
                                                        app_rate=1e4, rcvbuf=4_000_000), faults)
             for kernel in ("6.1", "6.9") for rq in ("striding", "legacy")
             for faults in ((("page_alloc", 0.3, 1, -1, 0),), (("slab", 1.0, 3, 20, 0),))]
    for kernel, options, workload, faults in runs:
        result, _ = simulate(RunConfig(kernel=kernel, driver="mlx5", options=options, faults=faults, **workload))
        for name in seen:
            seen[name] += (result["page_pool"].get(name, 0) + result["driver_stats"].get(name, 0)
                           + (result["socket"]["condensed"] if name == "condensed" else 0))
    assert all(seen.values()), seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(MLX5_KERNELS),
    rq=st.sampled_from([None, "striding", "legacy"]),
    mtu=st.sampled_from([None, "68", "1500", "1642", "1643", "3690", "3691", "9000", "9834", "9835", "9978"]),
    # (not 16: with the legacy RQ's small strides both engines refuse it, see test_mlx5_small_legacy_ring_is_refused)
    ring=st.sampled_from([None, "64", "200", "1024", "8192"]),
    gro=st.sampled_from([None, "0", "1"]),
    traffic=st.sampled_from(["imix", "fixed:14", "fixed:60", "fixed:1514", "uniform:14-1600", "uniform:60-4100",
                             "uniform:14-9022", "fixed:9014", "uniform:3000-16000", "uniform:14-300"]),
    run=RUN_SPACE,
    faults=FAULTS,
)
def test_random_mlx5_workloads_give_identical_json(kernel, rq, mtu, ring, gro, traffic, run, faults):
    options = {name: value for name, value in (("rq", rq), ("mtu", mtu), ("ring", ring), ("gro", gro)) if value}
    _assert_same(kernel=kernel, driver="mlx5", options=options, traffic=traffic, faults=faults, **run)


@pytest.mark.parametrize("kernel", ["6.1", "6.9", "6.18"])
@pytest.mark.parametrize("options", [{"rq": "striding", "ring": "64"}, {"rq": "legacy", "mtu": "9000"},
                                     {"rq": "legacy", "mtu": "68", "ring": "64"}])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_mlx5_trace_and_plot_data_are_the_reference_engines(tmp_path, kernel, options, suffix):
    # every outcome: delivered, socket and ring drops, oversize frames, frames the driver drops (no page or
    # sk_buff); the trace byte for byte, the memory series and the truesize-by-length table
    config = dict(kernel=kernel, driver="mlx5", options=options, traffic="uniform:14-9100", count=4_000, rate=2e7,
                  rcvbuf=30_000, app_rate=1e6, cpus=2,
                  faults=(("page_alloc", 0.05, 1, -1, 0), ("slab", 0.05, 1, -1, 0)))
    outputs = _traced_runs(tmp_path, config, suffix)
    assert outputs["fast"] == outputs["reference"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_mlx5_striding_nonlinear_trace_is_the_reference_engines(tmp_path, suffix):
    # napi_alloc_skb() heads with the rest as frags; --trace alone (--plot falls back, below)
    config = dict(kernel="6.18", driver="mlx5", options={"rq": "striding", "mtu": "9000"},
                  traffic="uniform:14-9100", count=4_000, rate=2e7, rcvbuf=30_000, app_rate=1e6, cpus=2,
                  faults=(("skb_head", 0.05, 1, -1, 0), ("slab", 0.05, 1, -1, 0)))
    outputs = _traced_runs(tmp_path, config, suffix, plot=False)
    assert outputs["fast"] == outputs["reference"]


def test_mlx5_striding_nonlinear_plot_falls_back_and_says_why():
    # a striding RQ's frag truesize is ALIGN(bytes in each page, stride): one frame length and frag count can
    # have several truesizes, which the fast engine's --plot table (one per length and frags) cannot keep
    config = RunConfig(kernel="6.18", driver="mlx5", options={"rq": "striding", "mtu": "9000"}, traffic="imix",
                       count=300)
    assert unsupported(config) is None
    result, _, why = simulate_engine(config, "fast", plot=True)
    assert result["engine"] == "reference" and "--plot for mlx5's striding non-linear frames" in why


def test_mlx5_small_legacy_ring_is_refused():
    # A legacy RQ of 16 WQEs at MTU 68: MLX5_SKB_FRAG_SZ(64 + 68 + 22) = 192 + 320 = 512 bytes a WQE, so
    # wqe_index_mask 7 (eight WQEs a page); mlx5e_rx_compute_wqe_bulk_params(): 16 / 4 = 4 WQEs of 512 bytes,
    # wqe_bulk = max(8, 4) = 8, split_factor = DIV_ROUND_UP(512 KiB, 64 * 4 KiB) = 2, refill_unit = 4. The second
    # half of a page's refill would drain the page its first half had just taken (mlx5e_refill_rx_wqes()), so
    # both engines refuse the ring at open with the smallest that works: at ring 64, wqe_bulk = 16, refill 8.
    from skbsim.errors import InputError
    from skbsim.fast import simulate_fast

    config = dict(kernel="6.9", driver="mlx5", options={"rq": "legacy", "mtu": "68", "ring": "16"},
                  traffic="fixed:60", count=1_500, rate=1e6, app_rate=5e5, rcvbuf=5_000, cpus=2)
    for run in (simulate, simulate_fast):
        with pytest.raises(InputError, match="refill 4 WQEs at a time while 8 share a page.*use ring=64"):
            run(RunConfig(**config))