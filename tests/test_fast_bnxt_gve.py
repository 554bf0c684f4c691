"""The fast engine gives the reference engine's answers for bnxt, key for key (the engine name aside).

As in test_fast_engine.py, the reference engine is the oracle (tests/test_drivers_page_pool.py hand-derives
its figures); these tests demand equality over random workloads across every option and release, over
fixed ones that reach the driver's corners (copies, page mode, the aggregation ring, frames split after
their headers, skb_condense() of each kind of head, failed allocations of every layer the driver takes
memory from), and of --trace and --plot.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import simulate_engine, unsupported
from skbsim.sim import RunConfig, simulate
from test_fast_engine import FAULTS, RUN_SPACE, _assert_same, _traced_runs

# -- bnxt ----------------------------------------------------------------------------------------------------

#: every release: 6.1's page_frag RX buffers with build_skb() and alloc_page() aggregation pages, v6.9's
#: napi_build_skb() and page_pool aggregation pages, 6.12+'s page_pool RX buffers, 6.18+'s rx-copybreak
BNXT_KERNELS = ("6.1", "6.9", "6.12", "6.18", "host", "7.1")
#: the releases where rx-copybreak is tunable ('bnxt_en: add support for rx-copybreak ethtool command', 6.14)
BNXT_TUNABLE = ("6.18", "host", "7.1")
#: option sets: the aggregation ring with small RX buffers (tpa=on, the default: frames above 256 bytes split
#: after their headers, 6.18+ above hds_thresh 640), whole frames in one buffer (tpa=off), page mode and its
#: largest MTU (frames above 3520 bytes continue in an aggregation page), jumbo frames in up to three
#: aggregation pages, a small ring
BNXT_OPTIONS = [{}, {"tpa": "off"}, {"page_mode": "on"}, {"page_mode": "on", "mtu": "3502"},
                {"mtu": "9000"}, {"tpa": "off", "mtu": "9500", "ring": "64"}]
BNXT_WORKLOADS = [
    # IMIX at a moderate rate: buffers recycled, copies below copybreak
    dict(traffic="imix", count=5_000, rate=3e6),
    # a slow reader against a small buffer: socket drops, skb_condense() of each kind of head
    dict(traffic="uniform:14-9014", count=3_000, rcvbuf=30_000, app_rate=2e5, rate=5e6),
    # every frame at t=0: ring drops, polls that use their budget, time squeeze
    dict(traffic="fixed:1514", count=3_000, rate=None, packet_cost_ns=2_000),
    # several CPUs: a ring and pool per queue, the reader's frees on CPU 0 (6.18: defer lists and their IPIs)
    dict(traffic="uniform:60-9014", count=6_000, cpus=3, flows=16, rate=6e6, app_rate=1e6),
]


@pytest.mark.parametrize("kernel", BNXT_KERNELS)
@pytest.mark.parametrize("options", BNXT_OPTIONS)
@pytest.mark.parametrize("workload", BNXT_WORKLOADS)
def test_bnxt_fixed_workloads(kernel, options, workload):
    _assert_same(kernel=kernel, driver="bnxt", options=options, **workload)


@pytest.mark.parametrize("kernel", BNXT_TUNABLE)
@pytest.mark.parametrize("copybreak", ["0", "60", "1024"])
@pytest.mark.parametrize("tpa", ["on", "off"])
def test_bnxt_rx_copybreak(kernel, copybreak, tpa):
    # no copy at all, copies of short frames only, and (1024) heads of any frame up to 1024 bytes copied,
    # under pressure (skb_condense() of napi_alloc_skb() heads with aggregation pages)
    _assert_same(kernel=kernel, driver="bnxt", options={"copybreak": copybreak, "tpa": tpa},
                 traffic="uniform:14-2000", count=4_000, rate=3e6, rcvbuf=30_000, app_rate=3e5, cpus=2)


@pytest.mark.parametrize("kernel", BNXT_KERNELS)
@pytest.mark.parametrize("options", [{}, {"page_mode": "on", "mtu": "3502"}, {"tpa": "off"}])
@pytest.mark.parametrize("faults", [
    # pages, sk_buffs and page_frag pieces failing at times: frames lost with their old buffers
    # kept (RX buffer or aggregation page not replaced), skbs freed with the aggregation pages attached so far
    (("page_alloc", 0.05, 1, -1, 0), ("slab", 0.05, 1, -1, 0), ("page_frag", 0.05, 1, -1, 0)),
    # no page at all from the 300th allocation on: the pools and page_frag caches live on what comes back
    (("page_alloc", 1.0, 1, -1, 300),),
    # every third sk_buff bulk refill fails, twenty times; heads of napi_alloc_skb() failing
    (("slab", 1.0, 3, 20, 0), ("skb_head", 0.1, 1, -1, 0)),
])
def test_bnxt_fault_workloads(kernel, options, faults):
    _assert_same(kernel=kernel, driver="bnxt", options=options, traffic="uniform:14-9014", count=4_000, rate=3e6,
                 cpus=2, app_rate=1e4, rcvbuf=4_000_000, faults=faults)


def test_bnxt_workloads_reach_their_corners():
    # the workloads above are meant to reach these states (read from the reference engine)
    seen = dict.fromkeys(("buffers_copied", "bytes_copied", "buffer_alloc_failures", "skb_alloc_failures",
                          "ring_drops", "rx_pp_alloc_fast", "rx_pp_alloc_slow", "rx_pp_recycle_cached",
                          "rx_pp_recycle_ring", "condensed"), 0)
    runs = [("6.18", {}, BNXT_WORKLOADS[1], ()), ("6.1", {"page_mode": "on"}, BNXT_WORKLOADS[1], ()),
            ("6.9", {"mtu": "9000"}, BNXT_WORKLOADS[2], ()),
            ("6.12", {}, dict(traffic="uniform:14-9014", count=4_000, rate=3e6, cpus=2, app_rate=1e4,
                              rcvbuf=4_000_000), (("page_alloc", 1.0, 1, -1, 300),)),
            ("6.1", {"tpa": "off"}, BNXT_WORKLOADS[0], (("slab", 1.0, 3, 20, 0),)),
            # napi_alloc_frag() refusing replacement buffers (v6.9's page_frag RX buffers)
            ("6.9", {"tpa": "off"}, BNXT_WORKLOADS[0], (("page_frag", 1.0, 1, -1, 600),))]
    for kernel, options, workload, faults in runs:
        result, _ = simulate(RunConfig(kernel=kernel, driver="bnxt", options=options, faults=faults, **workload))
        for name in seen:
            seen[name] += (result["page_pool"].get(name, 0) + result["driver_stats"].get(name, 0)
                           + result["socket"].get(name, 0) + result["page_frag"].get(name, 0))
    assert all(seen.values()), seen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(BNXT_KERNELS),
    mtu=st.sampled_from([None, "60", "1500", "3000", "3502", "3600", "9000", "9500"]),
    ring=st.sampled_from([None, "1", "8", "64", "511"]),
    tpa=st.sampled_from([None, "on", "off"]),
    page_mode=st.sampled_from([None, "on", "off"]),
    copybreak=st.sampled_from([None, "0", "14", "256", "640", "1024"]),
    gro=st.sampled_from([None, "0", "1"]),
    traffic=st.sampled_from(["imix", "fixed:14", "fixed:60", "fixed:1514", "uniform:14-1600", "uniform:60-4100",
                             "uniform:14-9014", "fixed:9014", "uniform:14-300"]),
    run=RUN_SPACE,
    faults=FAULTS,
)
def test_random_bnxt_workloads_give_identical_json(kernel, mtu, ring, tpa, page_mode, copybreak, gro, traffic, run,
                                                   faults):
    options = {name: value for name, value in (("mtu", mtu), ("ring", ring), ("tpa", tpa), ("page_mode", page_mode),
                                                ("copybreak", copybreak), ("gro", gro)) if value}
    if kernel not in BNXT_TUNABLE:
        options.pop("copybreak", None)  # fixed at 256
    if page_mode == "on" and int(mtu or 1500) > 3502:
        options.pop("mtu")  # above BNXT_MAX_PAGE_MODE_MTU
    _assert_same(kernel=kernel, driver="bnxt", options=options, traffic=traffic, faults=faults, **run)


@pytest.mark.parametrize("kernel, options", [
    ("6.1", {"tpa": "off"}),  # build_skb() on page_frag buffers, copies
    ("6.9", {"mtu": "9000", "ring": "64"}),  # aggregation pages from the page_pool, ring drops
    ("6.12", {"page_mode": "on", "mtu": "3502"}),  # page mode's header copies and page frags
    ("6.18", {"copybreak": "1024"}),  # copies of every head part up to 1024 bytes with aggregation pages
])
def test_bnxt_trace_and_plot_data_are_the_reference_engines(tmp_path, kernel, options):
    config = dict(kernel=kernel, driver="bnxt", options=options, traffic="uniform:14-9014", count=4_000, rate=2e7,
                  rcvbuf=30_000, app_rate=1e6, cpus=2,
                  faults=(("page_alloc", 0.05, 1, -1, 0), ("slab", 0.05, 1, -1, 0)))
    outputs = _traced_runs(tmp_path, config, ".csv")
    assert outputs["fast"] == outputs["reference"]


def test_bnxt_runs_on_the_fast_engine():
    config = RunConfig(kernel="6.18", driver="bnxt", options={}, traffic="imix", count=300)
    assert unsupported(config) is None
    result, _, why = simulate_engine(config, "fast")
    assert result["engine"] == "fast" and why is None


# -- gve (DQO) -----------------------------------------------------------------------------------------------

#: own pages split in 2K buffers (6.1 without header split; 6.9, 6.12 with it: 4K buffers), page_pool
#: buffers (6.18, 7.1; 7.1's rx-buf-len)
GVE_KERNELS = ("6.1", "6.9", "6.12", "6.18", "host", "7.1")
#: option sets: one 2048-byte buffer per frame up to MTU 2034 (copies up to 256 bytes), up to five at 9000,
#: header split (the headers copied, the payload in 4K buffers), a small ring
GVE_OPTIONS = [{}, {"mtu": "9000"}, {"hsplit": "on"}, {"hsplit": "on", "mtu": "9000", "ring": "64"}, {"ring": "64"}]
GVE_WORKLOADS = [
    # IMIX at a moderate rate: buffers recycled (own pages: the other half of the page), copies
    dict(traffic="imix", count=5_000, rate=3e6),
    # a slow reader against a small buffer: socket drops, skb_condense() of napi_get_frags()' and header heads
    dict(traffic="uniform:14-9014", count=3_000, rcvbuf=30_000, app_rate=2e5, rate=5e6),
    # every frame at t=0: ring drops, polls that use their budget (the buffer queue refilled at their end)
    dict(traffic="fixed:1514", count=3_000, rate=None, packet_cost_ns=2_000),
    # several CPUs: a queue (and pool) per CPU, the reader's frees on CPU 0, pages waiting on the used list
    dict(traffic="uniform:60-9014", count=6_000, cpus=3, flows=16, rate=6e6, app_rate=1e6),
]


def _gve_options(kernel, options):
    return {name: value for name, value in options.items() if not (name == "hsplit" and kernel == "6.1")}


@pytest.mark.parametrize("kernel", GVE_KERNELS)
@pytest.mark.parametrize("options", GVE_OPTIONS)
@pytest.mark.parametrize("workload", GVE_WORKLOADS)
def test_gve_fixed_workloads(kernel, options, workload):
    _assert_same(kernel=kernel, driver="gve", options=_gve_options(kernel, options), **workload)


@pytest.mark.parametrize("rx_buf_len", ["2048", "4096"])
@pytest.mark.parametrize("hsplit", ["on", "off"])
def test_gve_7_1_rx_buf_len(rx_buf_len, hsplit):
    _assert_same(kernel="7.1", driver="gve", options={"rx_buf_len": rx_buf_len, "hsplit": hsplit},
                 traffic="uniform:14-9014", count=4_000, rate=3e6, rcvbuf=30_000, app_rate=3e5, cpus=2)


@pytest.mark.parametrize("kernel", GVE_KERNELS)
@pytest.mark.parametrize("options", [{}, {"hsplit": "on", "mtu": "9000"}])
@pytest.mark.parametrize("faults", [
    # pages, sk_buffs and page_frag heads failing at times: buffers not posted (the queue refilled at the next
    # poll), frames dropped with their buffers back (gve_free_buffer())
    (("page_alloc", 0.05, 1, -1, 0), ("slab", 0.05, 1, -1, 0), ("page_frag", 0.05, 1, -1, 0)),
    # no page at all from the 300th allocation on: buffers live on what comes back (used pages given up)
    (("page_alloc", 1.0, 1, -1, 300),),
    # every third sk_buff bulk refill fails, twenty times; small heads failing
    (("slab", 1.0, 3, 20, 0), ("skb_head", 0.1, 1, -1, 0)),
])
def test_gve_fault_workloads(kernel, options, faults):
    _assert_same(kernel=kernel, driver="gve", options=_gve_options(kernel, options), traffic="uniform:14-9014",
                 count=4_000, rate=3e6, cpus=2, app_rate=1e4, rcvbuf=4_000_000, faults=faults)


def test_gve_workloads_reach_their_corners():
    # the workloads above are meant to reach these states (read from the reference engine)
    seen = dict.fromkeys(("buffers_copied", "bytes_copied", "buffer_alloc_failures", "skb_alloc_failures",
                          "ring_drops", "rx_pp_alloc_fast", "rx_pp_alloc_slow", "rx_pp_recycle_cached",
                          "rx_pp_recycle_ring", "condensed"), 0)
    runs = [("6.18", {}, GVE_WORKLOADS[1], ()), ("6.12", {"hsplit": "on"}, GVE_WORKLOADS[1], ()),
            ("6.9", {}, GVE_WORKLOADS[2], ()),
            # pages refused while the queue is refilled (a small ring of own pages)
            ("6.1", {"ring": "64"}, dict(traffic="uniform:14-9014", count=4_000, rate=3e6, cpus=2, app_rate=1e4,
                                         rcvbuf=4_000_000), (("page_alloc", 0.3, 1, -1, 0),)),
            ("6.18", {}, GVE_WORKLOADS[0], (("slab", 1.0, 3, 20, 0),))]
    for kernel, options, workload, faults in runs:
        result, _ = simulate(RunConfig(kernel=kernel, driver="gve", options=options, faults=faults, **workload))
        for name in seen:
            seen[name] += (result["page_pool"].get(name, 0) + result["driver_stats"].get(name, 0)
                           + result["socket"].get(name, 0))
    assert all(seen.values()), seen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(GVE_KERNELS),
    mtu=st.sampled_from([None, "68", "1500", "2034", "2035", "4000", "9000"]),
    ring=st.sampled_from([None, "64", "100", "1024"]),
    hsplit=st.sampled_from([None, "on", "off"]),
    rx_buf_len=st.sampled_from([None, "2048", "4096"]),
    gro=st.sampled_from([None, "0", "1"]),
    traffic=st.sampled_from(["imix", "fixed:14", "fixed:60", "fixed:1514", "uniform:14-1600", "uniform:60-4100",
                             "uniform:14-9014", "fixed:9014", "uniform:14-300"]),
    run=RUN_SPACE,
    faults=FAULTS,
)
def test_random_gve_workloads_give_identical_json(kernel, mtu, ring, hsplit, rx_buf_len, gro, traffic, run, faults):
    options = {name: value for name, value in (("mtu", mtu), ("ring", ring), ("hsplit", hsplit),
                                                ("rx_buf_len", rx_buf_len), ("gro", gro)) if value}
    if kernel == "6.1":
        options.pop("hsplit", None)  # no header split before 6.9
    if kernel != "7.1":
        options.pop("rx_buf_len", None)  # settable from 7.x
    _assert_same(kernel=kernel, driver="gve", options=options, traffic=traffic, faults=faults, **run)


@pytest.mark.parametrize("kernel, options", [
    ("6.1", {}),  # copies and napi_get_frags() skbs of own pages
    ("6.12", {"hsplit": "on", "ring": "64"}),  # header copies, 4K buffers on the used list, ring drops
    ("6.18", {"mtu": "9000"}),  # page_pool fragments, frames of several buffers
    ("7.1", {"rx_buf_len": "4096", "gro": "0"}),  # whole pages; without GRO only the Ethernet header pulled
])
def test_gve_trace_and_plot_data_are_the_reference_engines(tmp_path, kernel, options):
    config = dict(kernel=kernel, driver="gve", options=options, traffic="uniform:14-9014", count=4_000, rate=2e7,
                  rcvbuf=30_000, app_rate=1e6, cpus=2,
                  faults=(("page_alloc", 0.05, 1, -1, 0), ("slab", 0.05, 1, -1, 0)))
    outputs = _traced_runs(tmp_path, config, ".csv")
    assert outputs["fast"] == outputs["reference"]


def test_gve_capture_of_frames_gro_pulls_differently(tmp_path):
    # a capture's frames (non-IP: GRO pulls the Ethernet header only) come through the source with their codes
    from test_fast_engine import _pcap

    path = _pcap(tmp_path / "gve.pcap", [14, 15, 60, 257, 1514, 3000, 9014] * 300)
    for options in ({}, {"hsplit": "on"}):
        _assert_same(kernel="6.18", driver="gve", options=options, traffic=f"pcap:{path}", count=None, rate=None)
