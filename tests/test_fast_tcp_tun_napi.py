"""--socket tcp through tun with IFF_NAPI (--opt napi=1) and IFF_NAPI_FRAGS (frags=1) on both engines: each written
skb through the fast engine's GRO (napi_gro_receive() or napi_gro_frags(), then the napi_complete_done() of its
write's poll) into the TCP receivers; tcp-bulk traffic into the UDP socket through the same GRO; captures through it.

The reference engine's JSON (and --trace) is the truth: every run here must give the same on the fast engine, which
must not have handed it over (except where a test says what is still the reference engine's: gro_flush_timeout).
"""

from __future__ import annotations

import pathlib
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import simulate_engine, unsupported
from skbsim.fast.tcp import TCP_OFO, TCP_PRUNE, TCP_WHY
from skbsim.sim import RunConfig, simulate
from tcp_engines import RANDOM_WORKLOAD, TCP_RUN, gro_burst, run_both, write_capture
from tcp_engines import same as _same

KERNELS = ["6.1", "6.9", "6.12", "6.18", "host"]
NAPI = {"napi": "1"}
FRAGS = {"napi": "1", "frags": "1"}
#: what a TCP run may still be redone for (memory pressure's corners, the rest of the out-of-order queue)
REDONE = (TCP_WHY[TCP_OFO], TCP_WHY[TCP_PRUNE])


def _both(**kw) -> tuple[dict, dict, str | None]:
    return run_both({**TCP_RUN, "driver": "tun", "options": NAPI, **kw})


WORKLOADS = {
    # one bulk flow: blocking writes, tun_alloc_skb()'s kmalloc heads; GRO holds each segment until its poll ends
    "bulk": dict(count=3000),
    # non-blocking writes: tun_build_skb() on the writer's task_frag
    "nonblock": dict(count=3000, options={**NAPI, "write": "nonblock"}, traffic="tcp-bulk:ts=1"),
    # 16 flows on 3 CPUs with timestamps and a reader of 64 KiB at 20,000 reads/s
    "flows-cpus": dict(flows=16, cpus=3, traffic="tcp-bulk:ts=1", count=3000, app_rate=20000, app_read_size=65536),
    # small messages: PSH on every segment, which GRO passes up at once (out_check_final)
    "messages": dict(tcp="messages:100@50000", count=2000, rtt_ms=0.5),
    # frames above a page: tun_alloc_skb()'s paged rest (6.6+) or a kmalloc head of its own
    "jumbo": dict(traffic="tcp-bulk:mss=8000", count=1000),
    # a reader that never reads: the window closes, zero-window probes
    "zero-window": dict(count=2000, app_rate=0, duration_ms=2000.0),
    # a failing slab refuses writes: the out-of-order queue, SACKs, retransmissions
    "faults": dict(count=2000, flows=2, cpus=2, traffic="tcp-bulk:ts=1", faults=(("slab", 0.02, 1, -1, 0),)),
    # a small send buffer (TUNSETSNDBUF): writes refused with -EAGAIN
    "sndbuf": dict(count=2000, options={**NAPI, "sndbuf": "20000"}, cpus=2, flows=3),
    # IFF_NAPI with --opt gro=0: no GRO, and no "gro" object, as without IFF_NAPI
    "gro0": dict(count=2000, options={**NAPI, "gro": "0"}),
    # IFF_NAPI_FRAGS: napi_get_frags()'s skbs (grown by pskb_expand_head() for long frames), napi_gro_frags()
    "frags": dict(count=3000, flows=3, cpus=2, options=FRAGS),
    "frags-jumbo": dict(traffic="tcp-bulk:mss=8000", count=1000, options=FRAGS),
    "frags-faults": dict(count=2000, options=FRAGS, faults=(("slab", 0.02, 1, -1, 0), ("page_frag", 0.3, 2, 3, 10))),
}


@pytest.mark.parametrize("kernel", ["6.1", "6.12", "6.18"])
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_workloads(kernel, workload):
    reference, fast, why = _both(kernel=kernel, **WORKLOADS[workload])
    assert why is None or why.removesuffix("; rerun") in REDONE, why
    assert _same(reference, fast)
    assert ("gro" in reference) == (workload != "gro0")


def test_workloads_run_on_the_fast_engine():
    # (the parametrized runs may be redone for memory pressure's corners; these are not)
    for kernel in KERNELS:
        reference, fast, why = _both(kernel=kernel, count=2000)
        assert why is None and fast["engine"] == "fast" and _same(reference, fast)
        # each segment reaches GRO alone: held, then flushed by its write's napi_complete_done()
        gro = fast["gro"]
        assert gro["skbs_in"] == gro["skbs_out"] == gro["held"] == gro["flushes"]["napi_complete"] == 2000


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel=st.sampled_from(KERNELS), write=st.sampled_from([None, "nonblock", "frags"]), **RANDOM_WORKLOAD)
def test_random_workloads(kernel, ts, write, tcp, flows, rtt, app_rate, read, so_rcvbuf, count, rate, cpus, faults):
    options = FRAGS if write == "frags" else {**NAPI, **({"write": write} if write else {})}
    reference, fast, why = _both(kernel=kernel, options=options, traffic=f"tcp-bulk:ts={ts}", tcp=tcp, flows=flows,
                                 rtt_ms=rtt, app_rate=app_rate, app_read_size=read, so_rcvbuf=so_rcvbuf, count=count,
                                 rate=rate, cpus=cpus, faults=faults)
    assert why is None or why.removesuffix("; rerun") in REDONE, why
    assert _same(reference, fast)


@pytest.mark.parametrize("kernel", ["6.1", "6.18"])
@pytest.mark.parametrize("syn", [True, False])
@pytest.mark.parametrize("options", [NAPI, FRAGS], ids=["napi", "frags"])
def test_a_burst_gro_cannot_merge_through_tun_derived_by_hand(tmp_path, kernel, syn, options):
    # The burst tests/test_fast_tcp_pcap.py merges into one aggregate on ice, written to tun with IFF_NAPI: one
    # flow (a SYN with MSS, SACK, timestamps and window scale, or first seen in mid-stream), then 8 in-order
    # segments of 1448 bytes with TSval 1001, ACK on the first 7 and ACK | PSH on the 8th.
    #   tun_napi_poll() hands each write's skb to napi_gro_receive() and that write's poll ends with
    #   napi_complete_done(), which flushes what GRO holds (no gro_flush_timeout): GRO never holds two tun skbs,
    #   so nothing merges.  Segments 1..7 have no flush flag: held, then flushed "napi_complete" (7).  The 8th has
    #   PSH and the SYN is a SYN: out_check_final with nothing held passes each up as it came ("normal", no flush
    #   counted).  9 or 8 skbs in and out, one segment each; every frame is TCP GRO parses.
    #   Truesize (blocking writes: tun_alloc_skb(), sock_alloc_send_pskb() of NET_SKB_PAD 64 + the frame, all
    #   linear): a segment's frame is 14 + 20 + 32 + 1448 = 1514 bytes, 64 + 1514 = 1578, SKB_DATA_ALIGN 1600 plus
    #   SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) 320 = 1920: kmalloc-2k, end 2048 - 320 = 1728,
    #   SKB_TRUESIZE(1728) = 1728 + 256 (the sk_buff) + 320 = 2304.  The SYN's frame is 14 + 20 + 40 = 74 bytes:
    #   64 + 74 = 138, 192 + 320 = 512: on 6.1 kmalloc-512, end 192, truesize 192 + 256 + 320 = 768; on 6.18 at
    #   most SKB_SMALL_HEAD_CACHE_SIZE (704) takes an skbuff_small_head object of 704, end 384, truesize 960.
    #   truesize per skb: 2304 without the SYN; with it (768 + 8 * 2304) / 9 = 2133.33 on 6.1, (960 + 18432) / 9
    #   = 2154.67 on 6.18.  The receiver: the SYN (control), then 8 skbs in order, each its own segment.
    #   IFF_NAPI_FRAGS: napi_gro_frags() of napi_get_frags()'s skb, the whole frame copied into its head (grown by
    #   pskb_expand_head() when longer than its tailroom), then napi_complete(): the same GRO counts.  Its skbs are
    #   not charged to the queue socket; their truesize is not derived here (the two engines agree on it).
    traffic = write_capture(str(tmp_path / "burst.pcap"), gro_burst(syn))
    reference, fast, why = run_both(dict(kernel=kernel, driver="tun", options=options, traffic=traffic, socket="tcp",
                                         count=None, rate=None))
    assert why is None and fast["engine"] == "fast" and _same(reference, fast)
    gro = fast["gro"]
    assert (gro["skbs_in"], gro["skbs_out"], gro["tcp_segments"]) == (8 + syn, 8 + syn, 8 + syn)
    assert (gro["held"], gro["normal"], gro["flushes"]) == (7, 1 + syn, {"napi_complete": 7})
    assert gro["merged"] == {"stolen_head": 0, "frags": 0, "frag_list": 0} and gro["aggregates"] == 0
    truesize = {(False, "6.1"): 2304.0, (False, "6.18"): 2304.0, (True, "6.1"): 2133.33, (True, "6.18"): 2154.67}
    if options == NAPI:
        assert gro["truesize_per_skb"] == truesize[syn, kernel]
    (flow,) = fast["flows"]
    assert (flow["skbs"], flow["segments"], flow["delivered"], flow["control"]) == (8 + syn, 8, 8, int(syn))
    assert flow["bytes_received"] == 8 * 1448


@pytest.mark.parametrize("options", [NAPI, FRAGS], ids=["napi", "frags"])
def test_a_capture_on_two_cpus(tmp_path, options):
    # (GRO's facts of a capture on more than one CPU are read frame by frame, with the queue's header template)
    traffic = write_capture(str(tmp_path / "burst.pcap"), gro_burst(True) + gro_burst(False))
    reference, fast, why = run_both(dict(kernel="6.12", driver="tun", options=options, traffic=traffic, socket="tcp",
                                         count=None, rate=None, cpus=2))
    assert why is None and fast["engine"] == "fast" and _same(reference, fast)


@pytest.mark.parametrize("kernel", ["6.1", "6.12", "6.18"])
@pytest.mark.parametrize("workload", ["bulk", "faults", "messages", "frags"])
def test_trace_is_byte_identical(kernel, workload):
    from test_fast_tcp_trace import _traces

    with tempfile.TemporaryDirectory() as tmp:
        config = {"options": NAPI, **WORKLOADS[workload]}
        fast, reference = _traces(pathlib.Path(tmp), kernel=kernel, **config)
    assert fast[2] is None and fast[3] == "fast", fast[2]
    assert fast[:2] == reference[:2]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("workload", [dict(count=4000), dict(count=3000, flows=3, cpus=2, rate=4e6, rcvbuf=200_000,
                                                             app_rate=2e5, options={**NAPI, "write": "nonblock"}),
                                      dict(traffic="tcp-bulk:mss=8000", count=1000),
                                      dict(count=3000, flows=3, options=FRAGS)])
def test_tcp_bulk_into_the_udp_socket_through_gro(kernel, workload):
    from test_fast_engine import _assert_same

    config = dict(kernel=kernel, driver="tun", **{"traffic": "tcp-bulk", "options": NAPI, **workload})
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)


@pytest.mark.parametrize("config, said", [
    (dict(options={**NAPI, "gro_flush_timeout": "2000000"}), "gro_flush_timeout"),
    (dict(options={**FRAGS, "gro_flush_timeout": "2000000"}, socket="udp"), "gro_flush_timeout"),
])
def test_what_stays_the_reference_engines_says_why(config, said):
    config = RunConfig(**{**TCP_RUN, "driver": "tun", "count": 300, **config})
    assert said in unsupported(config)
    result, _, why = simulate_engine(config, "fast")
    reference, _ = simulate(config)
    assert result["engine"] == "reference" and said in why
    assert {**result, "engine": "reference"} == reference
