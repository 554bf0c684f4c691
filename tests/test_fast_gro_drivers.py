"""The fast engine's GRO of TCP segments on the NAPI drivers beyond ice, copybreak and virtio_net (mana's and libeth's
page_pool buffers): the same JSON, gro object and --trace as the reference engine's."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import simulate_fast, unsupported
from skbsim.sim import RunConfig

from test_fast_engine import KERNELS, _assert_same, _assert_same_trace
from test_fast_gro import _capture, _mixed_tcp_frames


# -- mana ----------------------------------------------------------------------------------------------------------


def test_45_segments_on_mana_hand_derived():
    # 45 in-order segments of one flow at 0 ns on 6.12 mana at MTU 1500: whole page_pool pages (alloc_size
    # max(SKB_DATA_ALIGN(1500 + pad + 256 of XDP headroom), 4096) = 4096), each skb napi_build_skb() on its page,
    # truesize SKB_TRUESIZE(4096 - 320) = 3776 + 256 + 320 = 4352, the frame linear.  skb_gro_receive() steals
    # each later segment's head as a frag (it keeps 256, p gains 4096): p steals 17 (MAX_SKB_FRAGS), the 19th
    # is chained on the frag_list and steals the next 17, the 37th is chained and steals the last 8: 42
    # stolen, 2 chained.  truesize 4352 + 42 * 4096 + 2 * 4352 = 185088; len 52 + 45 * 1448 = 65212.
    config = dict(kernel="6.12", driver="mana", options={}, traffic="tcp-bulk", count=45, flows=1, rate=None)
    _assert_same(**config)
    result = simulate_fast(RunConfig(**config))[0]
    assert result["engine"] == "fast"
    gro = result["gro"]
    assert gro["merged"] == {"stolen_head": 42, "frags": 0, "frag_list": 2} and gro["napi_cache_puts"] == 42
    assert gro["len_per_aggregate"] == 65212 and gro["truesize_per_aggregate"] == 185088


MANA_GRO_WORKLOADS = [
    # the defaults: 16 flows over 8 buckets (skb->hash from the CQE)
    dict(traffic="tcp-bulk", count=6_000),
    # one flow at line rate: aggregates of up to 45 segments, frag_list chains of page_pool heads, the budget
    dict(traffic="tcp-bulk", count=6_000, flows=1, rate=1e7),
    # no timestamps, 3 flows on 2 CPUs, a slow reader: socket drops, condensed aggregates (short segments),
    # page_pool pages recycled from other CPUs
    dict(traffic="tcp-bulk:ts=0", count=6_000, flows=3, cpus=2, rate=4e6, rcvbuf=200_000, app_rate=2e5),
    dict(traffic="tcp-bulk:mss=200", count=4_000, flows=2, rate=4e6, rcvbuf=60_000, app_rate=3e5),
    # a small gro_max_size, tiny segments, many flows; jumbo frames (v6.9: napi_alloc_frag() buffers)
    dict(traffic="tcp-bulk:mss=3", count=3_000, flows=40, rate=5e6, options={"gro_max_size": "3000"}),
    dict(traffic="tcp-bulk:mss=8948", count=2_000, flows=2, rate=2e6, options={"mtu": "9000"},
         faults=(("slab", 0.01, 1, -1, 0), ("page_alloc", 0.01, 1, -1, 0))),
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("workload", MANA_GRO_WORKLOADS)
def test_mana_tcp_bulk_through_gro(kernel, workload):
    config = dict(kernel=kernel, driver="mana", **{"options": {}, **workload})
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(KERNELS),
    mtu=st.sampled_from([None, "68", "1500", "1714", "1715", "3762", "3763", "9000"]),
    gro_max_size=st.sampled_from([None, "1", "5000", "65536"]),
    mss=st.sampled_from([None, "1", "100", "536", "1448", "3000", "8948"]), ts=st.sampled_from([None, "0"]),
    flows=st.integers(1, 20), cpus=st.integers(1, 3), rate=st.sampled_from([None, 1e5, 1e6, 1e7]),
    count=st.integers(1, 2_000), app_rate=st.sampled_from([None, 1e5, 1e6]),
    rcvbuf=st.sampled_from([212_992, 50_000]),
    faults=st.sampled_from([(), (("slab", 0.02, 1, -1, 0),), (("page_alloc", 0.02, 1, -1, 0),)]),
)
def test_random_mana_tcp_bulk_workloads_give_identical_json(kernel, mtu, gro_max_size, mss, ts, flows, cpus, rate,
                                                             count, app_rate, rcvbuf, faults):
    options = {name: value for name, value in (("mtu", mtu), ("gro_max_size", gro_max_size)) if value}
    args = ",".join(f"{name}={value}" for name, value in (("mss", mss), ("ts", ts)) if value)
    config = dict(kernel=kernel, driver="mana", options=options, traffic="tcp-bulk" + (f":{args}" if args else ""),
                  count=count, flows=flows, cpus=cpus, rate=rate, app_rate=app_rate, rcvbuf=rcvbuf, faults=faults)
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_mixed_tcp_capture_through_gro_on_mana(tmp_path, kernel):
    path = _capture(tmp_path / "mixed.pcap", _mixed_tcp_frames(), 1e-6)
    config = dict(kernel=kernel, driver="mana", options={}, traffic=f"pcap:{path}", count=None, rate=None)
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)
    _assert_same(**{**config, "cpus": 2, "rcvbuf": 30_000})


@pytest.mark.parametrize("kernel", ["6.1", "6.18"])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_trace_of_tcp_through_gro_on_mana_is_byte_identical(tmp_path, kernel, suffix):
    _assert_same_trace(tmp_path, dict(kernel=kernel, driver="mana", options={}, traffic="tcp-bulk", count=3_000,
                                      flows=2, rate=4e6, cpus=2, rcvbuf=100_000, app_rate=3e5), suffix)


# -- libeth (iavf, idpf, ice's page_pool form) ------------------------------------------------------------------------


def test_45_segments_on_iavf_hand_derived():
    # 45 in-order segments of one flow at 0 ns on 6.18 iavf at MTU 1500: page_pool fragments of 2048 bytes
    # (roundup_pow_of_two(SKB_HEAD_ALIGN(headroom + buf_len)), two a page), each skb napi_build_skb() on its
    # buffer, truesize 2048 + 256 (the sk_buff) = 2304, the frame linear.  skb_gro_receive() steals each later
    # head (p gains 2048): 17 into p, the 19th chained, 17 into it, the 37th chained, 8 into it: 42 stolen, 2
    # chained.  truesize 2304 + 42 * 2048 + 2 * 2304 = 92928; len 52 + 45 * 1448 = 65212.
    config = dict(kernel="6.18", driver="libeth", options={}, traffic="tcp-bulk", count=45, flows=1, rate=None)
    _assert_same(**config)
    result = simulate_fast(RunConfig(**config))[0]
    assert result["engine"] == "fast"
    gro = result["gro"]
    assert gro["merged"] == {"stolen_head": 42, "frags": 0, "frag_list": 2} and gro["napi_cache_puts"] == 42
    assert gro["len_per_aggregate"] == 65212 and gro["truesize_per_aggregate"] == 92928
    assert result["paths"] == {"napi_build_skb": 1}


LIBETH_GRO_WORKLOADS = [
    # iavf's defaults: 16 flows over 8 buckets (skb->hash from the descriptor)
    dict(traffic="tcp-bulk", count=6_000),
    # one flow at line rate: frag_list chains, the budget flush; iavf's refills every 16 buffers
    dict(traffic="tcp-bulk", count=6_000, flows=1, rate=1e7),
    # idpf: short segments on its short buffer queue, aggregates condensed with that queue's room, 2 CPUs
    dict(traffic="tcp-bulk:mss=100", count=5_000, flows=3, cpus=2, rate=4e6, rcvbuf=30_000, app_rate=3e5,
         options={"nic": "idpf"}),
    dict(traffic="tcp-bulk:ts=0", count=5_000, flows=3, rate=4e6, rcvbuf=100_000, app_rate=2e5,
         options={"nic": "idpf"}),
    # jumbo frames of several buffers (heads stolen with their frags), a small ring, faults
    dict(traffic="tcp-bulk:mss=8948", count=2_000, flows=2, rate=2e6, options={"mtu": "9000", "ring": "64"},
         faults=(("slab", 0.01, 1, -1, 0), ("page_alloc", 0.01, 1, -1, 0))),
    # a small gro_max_size, tiny segments, many flows
    dict(traffic="tcp-bulk:mss=3", count=3_000, flows=40, rate=5e6, options={"gro_max_size": "3000"}),
]


@pytest.mark.parametrize("kernel", ["6.12", "6.18", "host", "7.1"])
@pytest.mark.parametrize("workload", LIBETH_GRO_WORKLOADS)
def test_libeth_tcp_bulk_through_gro(kernel, workload):
    config = dict(kernel=kernel, driver="libeth", **{"options": {}, **workload})
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)


@pytest.mark.parametrize("workload", [dict(traffic="tcp-bulk", count=6_000, flows=1, rate=1e7),
                                      dict(traffic="tcp-bulk:mss=100", count=5_000, flows=3, cpus=2, rate=4e6,
                                           rcvbuf=30_000, app_rate=3e5, options={"mtu": "9000"})])
def test_ice_page_pool_form_tcp_bulk_through_gro(workload):
    config = dict(kernel="7.1", driver="ice", **{"options": {}, **workload})
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(["6.12", "6.18", "host", "7.1"]), nic=st.sampled_from(["iavf", "idpf"]),
    mtu=st.sampled_from([None, "68", "1500", "3000", "9000"]), ring=st.sampled_from([None, "64", "512"]),
    gro_max_size=st.sampled_from([None, "1", "5000", "65536"]),
    mss=st.sampled_from([None, "1", "100", "536", "1448", "3000", "8948"]), ts=st.sampled_from([None, "0"]),
    flows=st.integers(1, 20), cpus=st.integers(1, 3), rate=st.sampled_from([None, 1e5, 1e6, 1e7]),
    count=st.integers(1, 2_000), app_rate=st.sampled_from([None, 1e5, 1e6]),
    rcvbuf=st.sampled_from([212_992, 30_000]),
    faults=st.sampled_from([(), (("slab", 0.02, 1, -1, 0),), (("page_alloc", 0.02, 1, -1, 0),)]),
)
def test_random_libeth_tcp_bulk_workloads_give_identical_json(kernel, nic, mtu, ring, gro_max_size, mss, ts, flows,
                                                               cpus, rate, count, app_rate, rcvbuf, faults):
    options = {name: value for name, value in (("nic", nic), ("mtu", mtu), ("ring", ring),
                                               ("gro_max_size", gro_max_size)) if value}
    args = ",".join(f"{name}={value}" for name, value in (("mss", mss), ("ts", ts)) if value)
    config = dict(kernel=kernel, driver="libeth", options=options, traffic="tcp-bulk" + (f":{args}" if args else ""),
                  count=count, flows=flows, cpus=cpus, rate=rate, app_rate=app_rate, rcvbuf=rcvbuf, faults=faults)
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)


@pytest.mark.parametrize("options", [{}, {"nic": "idpf"}])
def test_a_mixed_tcp_capture_through_gro_on_libeth(tmp_path, options):
    path = _capture(tmp_path / "mixed.pcap", _mixed_tcp_frames(), 1e-6)
    config = dict(kernel="6.18", driver="libeth", options=options, traffic=f"pcap:{path}", count=None, rate=None)
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)
    _assert_same(**{**config, "cpus": 2, "rcvbuf": 30_000})


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("options, traffic", [({}, "tcp-bulk"), ({"nic": "idpf"}, "tcp-bulk:mss=100")])
def test_trace_of_tcp_through_gro_on_libeth_is_byte_identical(tmp_path, suffix, options, traffic):
    _assert_same_trace(tmp_path, dict(kernel="6.18", driver="libeth", options=options, traffic=traffic, count=3_000,
                                      flows=2, rate=4e6, cpus=2, rcvbuf=100_000, app_rate=3e5), suffix)
