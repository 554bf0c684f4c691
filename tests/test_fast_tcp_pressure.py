"""The fast engine's TCP receiver under memory pressure (skbsim/fast/tcp_pressure.py) against the model's.

Whole ``skbsim run --socket tcp`` runs through tun (and behind the NAPI drivers: ice, copybreak, virtio_net, with
GRO and without) that reach tcp_prune_queue() (a small SO_RCVBUF, small
segments whose truesize is worth more window than their length, a slow reader or none) give the same JSON on
both engines, with the pruning's TcpExt counters and the bytes tcp_collapse() copied; the workloads are
checked to reach the corner they are for.  A hypothesis test draws random workloads of that kind, with faults
(which also fail tcp_collapse()'s own allocations and leave holes for the out-of-order queue).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skbsim.sim import RunConfig
from tcp_engines import TCP_RUN, run_both
from tcp_engines import same as _same
from test_fast_tcp import _both

#: the counters the pruning bumps
PRESSURE = ("PruneCalled", "RcvPruned", "OfoPruned", "TCPRcvCollapsed", "TCPRcvQDrop", "TCPOFODrop")


def _counters(result: dict) -> dict:
    return {key: sum(flow["counters"].get(key, 0) for flow in result["flows"]) for key in PRESSURE}


@pytest.mark.parametrize("kernel", ["6.1", "6.9", "6.12", "6.18", "host", "7.1"])
@pytest.mark.parametrize("so_rcvbuf", [4096, 8192, 65536])
@pytest.mark.parametrize("app_rate", [0, 1000])
def test_collapse_of_small_segments(kernel, so_rcvbuf, app_rate):
    # (7.1: tcp_collapse()'s alloc_skb() and tun's writes take an sk_buff the NAPI skb cache holds)
    # 100-byte messages: each tun skb's truesize is worth more window than its 100 bytes, so tcp_prune_queue()
    # collapses the receive queue into new skbs of at most SKB_MAX_ORDER(0, 0) bytes (6.12+ in every case
    # here; on 6.1 and 6.9 the window the sender sees stops it first in some)
    reference, fast, why = _both(kernel=kernel, count=400, so_rcvbuf=so_rcvbuf, app_rate=app_rate,
                                 app_read_size=1000, tcp="messages:100@50000")
    assert why is None and fast["engine"] == "fast", why
    assert _same(reference, fast)
    counters = _counters(reference)
    if kernel not in ("6.1", "6.9"):
        assert counters["PruneCalled"] > 0 and counters["TCPRcvCollapsed"] > 0
        assert reference["tcp"]["collapse_copied_bytes"] > 0


@pytest.mark.parametrize("kw, corner", [
    # 6.1: the pruning does not help, RcvPruned; the segment is dropped (TCPRcvQDrop)
    (dict(kernel="6.1", traffic="tcp-bulk:ts=0", tcp="messages:300@20000", so_rcvbuf=8192, app_rate=0,
          app_read_size=1000, count=800, rtt_ms=0.05, faults=(("slab", 0.03, 1, -1, 0),)), "RcvPruned"),
    # holes from failed writes: the out-of-order queue is pruned (OfoPruned) and segments refused (TCPOFODrop)
    (dict(kernel="6.18", traffic="tcp-bulk:ts=0", tcp="messages:50@100000", flows=2, so_rcvbuf=16384, app_rate=0,
          app_read_size=1000, count=300, rtt_ms=0.05, faults=(("slab", 0.2, 1, -1, 0),)), "OfoPruned"),
    (dict(kernel="6.18", traffic="tcp-bulk:ts=0", tcp="messages:50@100000", flows=2, so_rcvbuf=16384, app_rate=0,
          app_read_size=1000, count=300, rtt_ms=0.05, faults=(("slab", 0.2, 1, -1, 0),)), "TCPOFODrop"),
    # two flows collapsing with a failing slab (tcp_collapse()'s alloc_skb() fails now and then)
    (dict(kernel="6.18", tcp="messages:300@20000", flows=2, so_rcvbuf=8192, app_rate=0, count=800, rtt_ms=0.05,
          faults=(("slab", 0.03, 1, -1, 0),)), "TCPRcvCollapsed"),
])
def test_pressure_corners(kw, corner):
    reference, fast, why = _both(**kw)
    assert why is None and fast["engine"] == "fast", why
    assert _same(reference, fast)
    assert _counters(reference)[corner] > 0


#: the draws of a random workload that may come under pressure (its driver and kernel aside)
WORKLOADS = dict(
    ts=st.sampled_from([0, 1]),
    tcp=st.sampled_from(["messages:100@50000", "messages:300@20000", "messages:50@100000", "messages:1000", "bulk"]),
    flows=st.sampled_from([1, 2, 3]), rtt=st.sampled_from([0.05, 0.5, 5.0]),
    app_rate=st.sampled_from([None, 0, 100, 1000]), read=st.sampled_from([None, 100, 1000]),
    so_rcvbuf=st.sampled_from([4096, 8192, 16384, 65536]), count=st.integers(50, 900))


@settings(max_examples=40, deadline=None)
@given(kernel=st.sampled_from(["6.1", "6.9", "6.12", "6.18", "host", "7.1"]), **WORKLOADS,
       faults=st.sampled_from([(), (("slab", 0.03, 1, -1, 0),), (("slab", 0.2, 1, -1, 0),),
                               (("skb_data", 0.3, 1, -1, 0),), (("page_alloc", 0.05, 1, -1, 0),)]))
def test_random_pressure_workloads_give_identical_json(kernel, ts, tcp, flows, rtt, app_rate, read, so_rcvbuf,
                                                       count, faults):
    reference, fast, why = _both(kernel=kernel, traffic=f"tcp-bulk:ts={ts}", tcp=tcp, flows=flows, rtt_ms=rtt,
                                 app_rate=app_rate, app_read_size=read, so_rcvbuf=so_rcvbuf, count=count,
                                 faults=faults)
    # the out-of-order queue's corners the compiled receiver does not follow yet still go back
    from skbsim.fast.tcp import TCP_OFO, TCP_WHY

    assert why is None or why.removesuffix("; rerun") == TCP_WHY[TCP_OFO], why
    assert _same(reference, fast)


@pytest.mark.parametrize("kernel, n, cache, truesize, tailroom", [
    # alloc_skb(n): kmalloc_reserve() of SKB_HEAD_ALIGN(n) = SKB_DATA_ALIGN(n) + SKB_DATA_ALIGN(shinfo 320);
    # the head's end is the object less 320, truesize SKB_TRUESIZE(end) = end + 320 + SKB_DATA_ALIGN(sk_buff) 256
    # 6.1 has no skbuff_small_head: 128 + 320 = 448 -> kmalloc-512, end 192, truesize 192 + 576 = 768
    ("6.1", 100, "kmalloc-512", 768, 192),
    # 6.18: 448 <= SKB_SMALL_HEAD_CACHE_SIZE (704 on x86_64) -> skbuff_small_head, end 384, truesize 960
    ("6.18", 100, "skbuff_small_head", 960, 384),
    # 2304 + 320 = 2624 -> kmalloc-4k, end 3776, truesize 3776 + 576 = 4352
    ("6.18", 2300, "kmalloc-4k", 4352, 3776),
    # SKB_MAX_ORDER(0, 0) = SKB_WITH_OVERHEAD(4096) = 3776, the most tcp_collapse() copies into one skb
    ("6.18", 3776, "kmalloc-4k", 4352, 3776),
])
def test_collapsed_skbs_heads_by_hand(kernel, n, cache, truesize, tailroom):
    import numpy as np

    from skbsim.fast.tcp_pressure import TF_C_CACHE, TF_C_KIND, TF_C_ROOM, TF_C_TS, collapse_alloc_columns
    from skbsim.fast.layout import TH_SLAB
    from skbsim.fast.tun import _TunLengths
    from skbsim.sim import Simulation

    config = RunConfig(kernel=kernel, driver="tun", options={}, socket="tcp", traffic="tcp-bulk", tcp="bulk", count=1)
    sim = Simulation(config)
    if kernel == "6.18":
        assert sim.kernel.profile.SKB_SMALL_HEAD_CACHE_SIZE == 704
    lengths = _TunLengths(sim, config)
    cols = collapse_alloc_columns(lengths, np.zeros((4000, TF_C_KIND), np.int64))
    names = {index: name for name, index in lengths.cache_index.items()}
    assert cols[n, TF_C_KIND] == TH_SLAB and names[cols[n, TF_C_CACHE]] == cache
    assert (cols[n, TF_C_TS], cols[n, TF_C_ROOM]) == (truesize, tailroom)


#: NAPI drivers whose skbs reach the receivers, with GRO and without (tcp_collapse()'s heads: tcp_engine.CollapseHeads)
NAPI_DRIVERS = [("ice", {}), ("ice", {"gro": "0"}), ("ice", {"rx": "legacy"}), ("ice", {"rx": "legacy", "gro": "0"}),
                ("copybreak", {}), ("copybreak", {"gro": "0"}), ("virtio_net", {}), ("virtio_net", {"gro": "0"})]


@pytest.mark.parametrize("driver, options", NAPI_DRIVERS)
@pytest.mark.parametrize("kernel", ["6.1", "6.18"])
def test_collapse_behind_a_napi_driver(driver, options, kernel):
    # 100-byte messages and a reader of 1000 bytes a millisecond behind SO_RCVBUF 8192: every skb's truesize (half
    # a page or more) is worth far more window than its 100 bytes, so tcp_prune_queue() collapses the receive
    # queue into alloc_skb() heads, and the run stays on the fast engine
    reference, fast, why = run_both({**TCP_RUN, "driver": driver, "options": options, "kernel": kernel,
                                     "count": 400, "so_rcvbuf": 8192, "app_rate": 1000, "app_read_size": 1000,
                                     "tcp": "messages:100@50000"})
    assert why is None and fast["engine"] == "fast", why
    assert _same(reference, fast)
    counters = _counters(reference)
    assert counters["PruneCalled"] > 0 and counters["TCPRcvCollapsed"] > 0
    assert reference["tcp"]["collapse_copied_bytes"] > 0


@settings(max_examples=40, deadline=None)
@given(driver=st.sampled_from(NAPI_DRIVERS), kernel=st.sampled_from(["6.1", "6.9", "6.12", "6.18", "host"]),
       **WORKLOADS, faults=st.sampled_from([(), (("slab", 0.03, 1, -1, 0),), (("page_frag", 0.2, 1, -1, 0),),
                               (("skb_data", 0.3, 1, -1, 0),), (("page_alloc", 0.05, 1, -1, 0),)]))
def test_random_pressure_behind_napi_drivers_gives_identical_json(driver, kernel, ts, tcp, flows, rtt, app_rate,
                                                                  read, so_rcvbuf, count, faults):
    reference, fast, why = run_both({**TCP_RUN, "driver": driver[0], "options": driver[1], "kernel": kernel,
                                     "traffic": f"tcp-bulk:ts={ts}", "tcp": tcp, "flows": flows, "rtt_ms": rtt,
                                     "app_rate": app_rate, "app_read_size": read, "so_rcvbuf": so_rcvbuf,
                                     "count": count, "faults": faults})
    # what the fast engine still hands over behind a NAPI driver: the out-of-order queue's corners, and skb_condense()
    # of an skb bound for it
    from skbsim.fast.tcp import TCP_CONDENSE, TCP_OFO, TCP_WHY

    assert why is None or why.removesuffix("; rerun") in (TCP_WHY[TCP_OFO], TCP_WHY[TCP_CONDENSE]), why
    assert _same(reference, fast)
