"""The fast engine's GRO of TCP segments (skbsim/fast/gro.py): the same JSON, gro object and --trace as the
reference engine's for tcp-bulk traffic on ice (rx=build_skb and rx=legacy) and copybreak, and the
fallbacks for what it does not cover yet."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import simulate_engine, simulate_fast, unsupported
from skbsim.report import TraceWriter
from skbsim.sim import RunConfig, simulate

from test_fast_engine import KERNELS, _assert_same, _without_engine


def test_45_segments_in_one_poll_hand_derived():
    # 45 in-order segments of one flow, all on the ring before the first poll (every arrival at 0 ns), on
    # 6.9 ice rx=build_skb at MTU 1500: each frame (54 + 12 + 1448 = 1514 bytes) is napi_build_skb() on a
    # 2048-byte half page, truesize SKB_TRUESIZE(2048 - 320) = 2048 - 320 + 256 + 320 = 2304 (sk_buff 232 ->
    # 256, skb_shared_info 320 with 17 frags).  TSval is the same for all (one ms), IP IDs count up, seq
    # follows on: every segment merges.  p.len + 1448 stays below 65536: 52 + 45 * 1448 = 65212.
    # skb_gro_receive(): the first segment is held (linear, no frags); segments 2..18 have their heads
    # stolen (17 frags, MAX_SKB_FRAGS); the 19th is chained on the frag_list (p's frags are full) and
    # becomes the last skb; 20..36 steal into it (17 frags); the 37th is chained; 38..45 steal (8 frags).
    # Stolen: 17 + 17 + 8 = 42, each giving p 2304 - 256 = 2048 and its sk_buff to the NAPI cache; chained:
    # 2, each giving p its whole 2304.  p's truesize: 2304 + 42 * 2048 + 2 * 2304 = 92928.
    config = dict(kernel="6.9", options={"rx": "build_skb"}, traffic="tcp-bulk", count=45, flows=1, rate=None)
    _assert_same(**config)
    result = simulate_fast(RunConfig(**config))[0]
    gro = result["gro"]
    assert gro["skbs_in"] == 45 and gro["skbs_out"] == 1 and gro["aggregates"] == 1
    assert gro["merged"] == {"stolen_head": 42, "frags": 0, "frag_list": 2}
    assert gro["napi_cache_puts"] == 42 and gro["flushes"] == {"napi_complete": 1}
    assert gro["len_per_aggregate"] == 65212 - 0 and gro["truesize_per_aggregate"] == 92928
    assert result["truesize_total"] == 92928


def test_legacy_rx_moves_frags_and_frees_header_skbs():
    # rx=legacy: the header skb holds eth_get_headlen() = 14 + 20 + 32 bytes, the payload is frag 0, so
    # skb_gro_receive() moves the frag (headlen 52 <= the GRO offset 52) and the header skb goes to the NAPI
    # cache (__napi_kfree_skb()): every merged segment is a frags-moved one.
    config = dict(kernel="6.12", options={"rx": "legacy"}, traffic="tcp-bulk", count=30, flows=1, rate=None)
    _assert_same(**config)
    gro = simulate_fast(RunConfig(**config))[0]["gro"]
    # p keeps 1 frag and gains one per segment up to MAX_SKB_FRAGS (17): 16 moved, then the 18th is chained
    # and 12 more move into it.
    assert gro["merged"] == {"stolen_head": 0, "frags": 16 + 12, "frag_list": 1}
    assert gro["napi_cache_puts"] == 28


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("rx", ["build_skb", "legacy"])
@pytest.mark.parametrize("workload", [
    # the defaults: 16 flows over 8 buckets, timestamps changing every ms
    dict(traffic="tcp-bulk", count=6_000),
    # one flow at line rate: aggregates of up to 45 segments, frag_list chains, the budget flush
    dict(traffic="tcp-bulk", count=6_000, flows=1, rate=1e7),
    # no timestamps, 3 flows on 2 CPUs, a slow reader: socket drops, condensed and deferred frees
    dict(traffic="tcp-bulk:ts=0", count=6_000, flows=3, cpus=2, rate=4e6, rcvbuf=200_000, app_rate=2e5),
    # a small gro_max_size, tiny segments (below ETH_ZLEN: padded, so their tot_len flushes), many flows
    dict(traffic="tcp-bulk:mss=3", count=3_000, flows=40, rate=5e6, options={"gro_max_size": "3000"}),
    dict(traffic="tcp-bulk:mss=700", count=3_000, flows=64, rate=5e6, options={"gro_max_size": "3000"}),
    # jumbo segments over several buffers (frags moved and stolen heads with frags), faults
    dict(traffic="tcp-bulk:mss=8948", count=3_000, flows=2, rate=2e6, options={"mtu": "9000"},
         faults=(("slab", 0.01, 1, -1, 0), ("page_alloc", 0.01, 1, -1, 0))),
])
def test_tcp_bulk_through_gro(kernel, rx, workload):
    options = {"rx": rx, **workload.pop("options", {})}
    _assert_same(kernel=kernel, options=options, socket="udp", **workload)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("workload", [
    # the defaults (copybreak 256: every 1514-byte segment built around its buffer, its head stolen)
    dict(options={}, traffic="tcp-bulk", count=5_000),
    # every segment copied (1K, small-head and page_frag heads: stolen or chained), one flow at line rate
    dict(options={"copybreak": "1514"}, traffic="tcp-bulk", count=5_000, flows=1, rate=1e7),
    # small copies below copybreak, 2 CPUs, a slow reader (condensing a copied aggregate goes to the
    # reference engine: see _copy_aggregate), GRO's size limit
    dict(options={"copybreak": "300", "gro_max_size": "5000"}, traffic="tcp-bulk:mss=100", count=4_000, flows=3,
         cpus=2, rate=5e6),
    # jumbo segments of 18 buffers of 512 bytes (MAX_SKB_FRAGS + 1): frag_list chains at once, faults
    dict(options={"rx_buf": "512", "copybreak": "0"}, traffic="tcp-bulk:mss=8948,ts=0", count=1_000, flows=2,
         rate=2e7, cpus=2, faults=(("skb_head", 1.0, 3, 3, 76),)),
])
def test_copybreak_tcp_bulk_through_gro(kernel, workload):
    _assert_same(kernel=kernel, driver="copybreak", **workload)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(KERNELS), copybreak=st.sampled_from([None, "0", "100", "256", "700", "1514"]),
    rx_buf=st.sampled_from([None, "512", "1514", "2048"]), mss=st.sampled_from([None, "1", "100", "536", "1460", "8948"]),
    ts=st.sampled_from([None, "0"]), flows=st.integers(1, 20), cpus=st.integers(1, 3),
    rate=st.sampled_from([None, 1e6, 1e7]), count=st.integers(1, 2_000),
    faults=st.sampled_from([(), (("slab", 0.02, 1, -1, 0),), (("page_frag", 0.05, 1, -1, 0),)]),
)
def test_random_copybreak_tcp_bulk_workloads_give_identical_json(kernel, copybreak, rx_buf, mss, ts, flows, cpus,
                                                                  rate, count, faults):
    options = {name: value for name, value in (("copybreak", copybreak), ("rx_buf", rx_buf)) if value}
    if int(options.get("copybreak", 256)) > int(options.get("rx_buf", 2048)):
        options.pop("copybreak")
    args = ",".join(f"{name}={value}" for name, value in (("mss", mss), ("ts", ts)) if value)
    config = dict(kernel=kernel, driver="copybreak", options=options, count=count, flows=flows, cpus=cpus,
                  rate=rate, faults=faults, traffic="tcp-bulk" + (f":{args}" if args else ""))
    reference, _ = simulate(RunConfig(**config))
    out = simulate_fast(RunConfig(**config))
    assert out is not None
    assert _without_engine(out[0]) == _without_engine(reference)


@pytest.mark.parametrize("kernel", ["6.1", "6.18", "host"])
@pytest.mark.parametrize("faults", [
    (("slab", 0.05, 1, -1, 0),),
    (("page_alloc", 0.02, 1, -1, 0), ("skb_head", 0.05, 1, -1, 0), ("page_frag", 0.05, 1, -1, 0)),
])
def test_tcp_bulk_through_gro_with_faults(kernel, faults):
    for rx in ("build_skb", "legacy"):
        _assert_same(kernel=kernel, options={"rx": rx}, traffic="tcp-bulk", count=4_000, flows=2, rate=3e6,
                     faults=faults, cpus=2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(KERNELS), rx=st.sampled_from(["build_skb", "legacy"]),
    mss=st.sampled_from([None, "1", "40", "536", "1448", "1460", "3000", "8948"]), ts=st.sampled_from([None, "0", "1"]),
    mtu=st.sampled_from([None, "1500", "9000"]), gro_max_size=st.sampled_from([None, "1", "5000", "65536", "200000"]),
    ring=st.sampled_from([None, "64", "512"]), flows=st.integers(1, 20), cpus=st.integers(1, 3),
    rate=st.sampled_from([None, 1e5, 1e6, 5e6, 2e7]), count=st.integers(1, 3_000),
    app_rate=st.sampled_from([None, 1e5, 1e6]), rcvbuf=st.sampled_from([212_992, 50_000, 2_000_000]),
    faults=st.sampled_from([(), (("slab", 0.02, 1, -1, 0),), (("page_alloc", 0.02, 1, -1, 0),),
                            (("skb_head", 0.05, 1, -1, 0), ("page_frag", 0.05, 1, -1, 0))]),
)
def test_random_tcp_bulk_workloads_give_identical_json(kernel, rx, mss, ts, mtu, gro_max_size, ring, flows, cpus,
                                                        rate, count, app_rate, rcvbuf, faults):
    args = ",".join(f"{name}={value}" for name, value in (("mss", mss), ("ts", ts)) if value)
    options = {"rx": rx}
    for name, value in (("mtu", mtu), ("gro_max_size", gro_max_size), ("ring", ring)):
        if value:
            options[name] = value
    config = dict(kernel=kernel, options=options, traffic="tcp-bulk" + (f":{args}" if args else ""), count=count,
                  flows=flows, cpus=cpus, rate=rate, app_rate=app_rate, rcvbuf=rcvbuf, faults=faults)
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)


@pytest.mark.parametrize("kernel", ["6.1", "6.12", "6.18"])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("driver, options", [("ice", None), ("copybreak", {"copybreak": "1514"}),
                                             ("copybreak", {})])
def test_trace_of_tcp_through_gro_is_byte_identical(tmp_path, kernel, suffix, driver, options):
    if options is None:
        options = {"rx": "legacy" if kernel != "6.12" else "build_skb"}
    config = dict(kernel=kernel, driver=driver, options=options, traffic="tcp-bulk", count=3_000, flows=2,
                  rate=4e6, cpus=2, rcvbuf=400_000, app_rate=3e5)
    outputs = {}
    for engine in ("fast", "reference"):
        writer = TraceWriter(str(tmp_path / f"{engine}{suffix}"))
        result, _, fell_back = simulate_engine(RunConfig(**config), engine, trace=writer)
        writer.close()
        assert fell_back is None and result["engine"] == engine
        outputs[engine] = (_without_engine(result), (tmp_path / f"{engine}{suffix}").read_bytes())
    assert outputs["fast"] == outputs["reference"]


@pytest.mark.parametrize("config, reason", [
    (RunConfig(driver="virtio_net", options={}, traffic="tcp-bulk", count=300), "GRO on virtio_net"),
    (RunConfig(kernel="7.1", options={}, traffic="tcp-bulk", count=300), "GRO on ice's page_pool form (7.1)"),
    (RunConfig(driver="mana", options={}, traffic="tcp-bulk", count=300), "GRO on mana"),
    (RunConfig(driver="tun", options={"napi": "1"}, traffic="tcp-bulk", count=300), "GRO on tun"),
    (RunConfig(options={"rx": "legacy", "gro_flush_timeout": "100000"}, traffic="tcp-bulk", count=300),
     "gro_flush_timeout"),
])
def test_gro_out_of_scope_falls_back_and_says_why(config, reason):
    assert reason in unsupported(config)
    result, _, why = simulate_engine(config, "fast")
    reference, _ = simulate(config)
    assert result["engine"] == "reference" and reason in why and "gro" in result
    assert _without_engine(result) == _without_engine(reference)


def test_gro_plot_falls_back_and_says_why():
    config = RunConfig(options={"rx": "build_skb"}, traffic="tcp-bulk", count=300)
    result, _, why = simulate_engine(config, "fast", plot=True)
    assert result["engine"] == "reference" and "--plot of TCP through GRO" in why
