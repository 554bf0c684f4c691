"""--socket tcp through virtio_net on both engines: the fast engine's TCP receivers joined to the skbs virtio_net
(mergeable receive buffers, no XDP) hands up, through GRO or with --opt gro=0 (skbsim/fast/tcp_napi.py).

The reference engine's JSON is the truth: every run here must give the same JSON on the fast engine, which must
not have handed it over (except where a test says what is still the reference engine's).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skbsim.fast import unsupported
from skbsim.fast.tcp import TCP_OFO, TCP_WHY
from skbsim.sim import RunConfig
from tcp_engines import RANDOM_WORKLOAD, TCP_RUN, run_both
from tcp_engines import same as _same

#: the releases whose virtio_net buffers come from page frags (7.1's come from page_pool)
KERNELS = ["6.1", "6.9", "6.12", "6.18", "host"]
#: GRO on and off, at the default MTU (1500) and at this machine's eth0's (1400)
FORMS = [{}, {"gro": "0"}, {"mtu": "1400"}, {"mtu": "1400", "gro": "0"}]
FORM_IDS = ["gro", "gro0", "mtu1400", "mtu1400-gro0"]


def _config(**kw) -> dict:
    return {**TCP_RUN, "driver": "virtio_net", **kw}


def _both(**kw) -> tuple[dict, dict, str | None]:
    return run_both(_config(**kw))


# (a bulk flow on every kernel, GRO on and off: test_fast_tcp_napi.test_bulk_flow, beside ice's and copybreak's)


@pytest.mark.parametrize("options", FORMS[2:], ids=FORM_IDS[2:])
@pytest.mark.parametrize("ts", [0, 1])
def test_mtu_1400(options, ts):
    reference, fast, why = _both(kernel="6.12", options=options, traffic=f"tcp-bulk:ts={ts}", count=1000)
    assert why is None and _same(reference, fast)
    # the MSS follows the device's MTU (VIRTIO_NET_F_MTU): 1400 - 40, less the timestamp option
    assert reference["flows"][0]["mss"] == (1348 if ts else 1360)


#: the device's other options: checksums the host hands over as valid or not at all (no pull by
#: virtio_net_hdr_to_skb(): without GRO the IP and TCP headers come from frag 0 in ip_rcv_core() and tcp_v4_rcv()),
#: a small ring (ring drops), premapped buffers (the DMA API), jumbo frames over several buffers, a small MTU,
#: no guest GSO (smaller buffers)
DEVICE_OPTIONS = [{"csum": "valid"}, {"csum": "none"}, {"ring": "64"}, {"dma_api": "1"}, {"mtu": "9000"},
                  {"mtu": "600"}, {"guest_gso": "0"}]


@pytest.mark.parametrize("kernel", ["6.1", "6.9", "6.18"])
@pytest.mark.parametrize("gro", ["1", "0"])
@pytest.mark.parametrize("options", DEVICE_OPTIONS, ids=lambda opts: ",".join(f"{k}={v}" for k, v in opts.items()))
def test_device_options(kernel, gro, options):
    mss = ",mss=8948" if options.get("mtu") == "9000" else ""  # (jumbo segments: each frame over several buffers)
    reference, fast, why = _both(kernel=kernel, options={**options, "gro": gro}, count=1500,
                                 traffic=f"tcp-bulk:ts=1{mss}", flows=2, cpus=2, rate=3e6)
    assert why is None and _same(reference, fast)


WORKLOADS = {
    # 16 flows on 3 CPUs, timestamps, a reader of 64 KiB at 20,000 reads/s
    "flows-cpus": dict(flows=16, cpus=3, traffic="tcp-bulk:ts=1", count=3000, app_rate=20000, app_read_size=65536),
    # small messages at a rate: frames above GOOD_COPY_LEN built on their buffers, tailroom coalescing, PSH
    "messages": dict(tcp="messages:100@50000", count=2000, rtt_ms=0.5),
    # the same behind a slow reader: each skb built on its buffer is coalesced into the queue's tail
    "slow-messages": dict(tcp="messages:100@50000", count=2000, rtt_ms=0.5, app_rate=1000),
    # messages of several segments with a short tail, and tiny ones copied whole into the copy head
    "messages-mixed": dict(tcp="messages:3000", count=1500, traffic="tcp-bulk:ts=1", flows=2, cpus=2),
    "tiny": dict(tcp="messages:20@100000", count=1500),
    # a reader that never reads: the window closes, zero-window probes (frames of 54 bytes: copied whole)
    "zero-window": dict(count=2000, app_rate=0, duration_ms=2000.0),
    # a small SO_RCVBUF and a slow reader: the window reaches zero with the reader behind
    "small-rcvbuf": dict(count=1500, so_rcvbuf=16384, app_rate=1000, app_read_size=1000, duration_ms=3000.0),
    # a failing slab: frames the driver drops, the out-of-order queue, SACKs, the sender's retransmissions
    "faults": dict(count=2000, flows=2, cpus=2, traffic="tcp-bulk:ts=1", faults=(("slab", 0.02, 1, -1, 0),)),
    # buffers refused now and then (skb_page_frag_refill()), with a slow reader and a long RTT
    "page-faults": dict(count=1500, rtt_ms=20.0, app_rate=1000, faults=(("page_alloc", 0.01, 1, -1, 100),)),
}


@pytest.mark.parametrize("kernel", ["6.1", "6.12", "6.18"])
@pytest.mark.parametrize("options", FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_workloads(kernel, options, workload):
    reference, fast, why = _both(kernel=kernel, options=options, **WORKLOADS[workload])
    assert why is None, why
    assert _same(reference, fast)


def test_workloads_reach_their_corners():
    # the zero-window workload closes the window and the sender probes it, on the fast engine
    reference, fast, why = _both(kernel="6.12", options={"gro": "0"}, **WORKLOADS["zero-window"])
    assert why is None and _same(reference, fast)
    assert reference["flows"][0]["sender"]["zero_window_probes"] > 0
    assert reference["flows"][0]["zero_window_ms"] > 0
    # the fault workload puts segments on the out-of-order queue and the sender retransmits
    reference, fast, why = _both(kernel="6.18", **WORKLOADS["faults"])
    assert why is None and _same(reference, fast)
    assert reference["tcp"]["counters"]["TCPOFOQueue"] > 0
    assert sum(flow["sender"]["retransmits"] for flow in reference["flows"]) > 0
    # small messages behind a slow reader are coalesced into the queue's tail
    reference, fast, why = _both(kernel="6.18", options={"gro": "0"}, **WORKLOADS["slow-messages"])
    assert why is None and _same(reference, fast)
    assert reference["tcp"]["counters"]["TCPRcvCoalesce"] > 0
    # a small SO_RCVBUF closes the window (zero window with the reader behind), without pruning
    for options in ({}, {"gro": "0"}):
        reference, fast, why = _both(kernel="6.18", options=options, **WORKLOADS["small-rcvbuf"])
        assert why is None and _same(reference, fast)
        assert reference["flows"][0]["zero_window_ms"] > 0 and reference["tcp"]["counters"]["TCPRcvCoalesce"] > 0


@pytest.mark.parametrize("options", [{}, {"gro": "0"}], ids=["gro", "gro0"])
@pytest.mark.parametrize("kernel", ["6.1", "6.18"])
def test_one_segment_built_on_its_buffer(kernel, options):
    # By hand, from drivers/net/virtio_net.c and include/linux/skbuff.h (x86-64, 4 KiB pages, 64-byte cache
    # lines): the header of a mergeable queue is struct virtio_net_hdr_mrg_rxbuf, 12 bytes; the ring's
    # buffers at open are get_mergeable_buf_len() of an empty EWMA: ALIGN(hdr_len + max(0, min_buf_len),
    # L1_CACHE_BYTES), min_buf_len being GOOD_PACKET_LEN = 1518 (mergeable_min_buf_len() of a 256-entry ring
    # with guest GSO: DIV_ROUND_UP(12 + 14 + 4 + 65535, 256) - 12 = 245 is below it): ALIGN(1530, 64) = 1536.
    # One message of 100 bytes (one a millisecond: alone in its segment) without options is a frame of
    # 14 + 20 + 20 + 100 = 154 bytes: above GOOD_COPY_LEN (128), and 1536 - 12 - 154 = 1370 bytes behind it hold
    # skb_shared_info (320 bytes, SKB_DATA_ALIGN), so page_to_skb() build_skb()s on the buffer:
    # end = 1536 - 320 = 1216 and truesize = SKB_TRUESIZE(1216)
    #                                      = 1216 + SKB_DATA_ALIGN(sizeof(struct sk_buff)) (256) + 320 = 1792.
    # tcp_v4_rcv() queues it whole (nothing to coalesce with): a reader that never reads leaves
    # sk_rmem_alloc at exactly that truesize.
    reference, fast, why = _both(kernel=kernel, options=options, tcp="messages:100@1000", count=1, app_rate=0)
    assert why is None and fast["engine"] == "fast" and _same(reference, fast)
    flow = fast["flows"][0]
    assert flow["bytes_received"] == 100
    assert flow["rmem_alloc"] == {"peak": 1792, "at_end": 1792}


@settings(max_examples=12, deadline=None)
@given(kernel=st.sampled_from(KERNELS), options=st.sampled_from(FORMS), **RANDOM_WORKLOAD)
def test_random_workloads(kernel, options, ts, tcp, flows, rtt, app_rate, read, so_rcvbuf, count, rate, cpus,
                          faults):
    reference, fast, why = _both(kernel=kernel, options=options, traffic=f"tcp-bulk:ts={ts}", tcp=tcp, flows=flows,
                                 rtt_ms=rtt, app_rate=app_rate, app_read_size=read, so_rcvbuf=so_rcvbuf, count=count,
                                 rate=rate, cpus=cpus, faults=faults)
    assert why is None or why.removesuffix("; rerun") == TCP_WHY[TCP_OFO], why
    assert _same(reference, fast)


@pytest.mark.parametrize("kernel,options,words", [
    ("6.18", {"mrg_rxbuf": "0"}, "mergeable buffers without XDP"),
    ("6.18", {"xdp": "1"}, "mergeable buffers without XDP"),
    ("7.1", {}, "page_pool"),
])
def test_other_forms_say_why(kernel, options, words):
    reason = unsupported(RunConfig(**_config(kernel=kernel, options=options, count=10)))
    assert reason is not None and reason.startswith("--socket tcp through virtio_net is the reference engine's")
    assert words in reason and "\n" not in reason



def test_pressure_on_the_fast_engine():
    # a slow reader of 1000 bytes at a time behind small messages: tcp_prune_queue() runs and collapses the queue
    # into alloc_skb() heads (tcp_engine.CollapseHeads), on the fast engine too
    for options in ({}, {"gro": "0"}):
        reference, fast, why = _both(options=options, tcp="messages:100@50000", count=2000, rtt_ms=0.5,
                                     app_rate=1000, app_read_size=1000)
        assert why is None and fast["engine"] == "fast", why
        assert reference["tcp"]["counters"]["PruneCalled"] > 0 and _same(reference, fast)


@pytest.mark.parametrize("options", [{}, {"gro": "0"}], ids=["gro", "gro0"])
@pytest.mark.parametrize("kernel", ["6.1", "6.18"])
def test_second_segment_copied_into_the_tailroom(kernel, options):
    # By hand, following on from test_one_segment_built_on_its_buffer: the first skb's head ends at
    # end = 1216 bytes past the buffer's start, its data (the virtio-net header reserved: 12, then the 154-byte
    # frame) ends at 166, so skb_tailroom() = 1216 - 166 = 1050.  The second message, 1 ms later and alone in
    # its poll (so alone in GRO too), is in order: tcp_try_coalesce() -> skb_try_coalesce() copies its 100
    # bytes into that tailroom (100 <= 1050) with *delta_truesize = 0, and frees it (kfree_skb_partial()):
    # sk_rmem_alloc stays 1792, one TCPRcvCoalesce.
    reference, fast, why = _both(kernel=kernel, options=options, tcp="messages:100@1000", count=2, app_rate=0)
    assert why is None and fast["engine"] == "fast" and _same(reference, fast)
    flow = fast["flows"][0]
    assert flow["bytes_received"] == 200 and flow["skbs"] == 2
    assert flow["counters"]["TCPRcvCoalesce"] == 1
    assert flow["rmem_alloc"] == {"peak": 1792, "at_end": 1792}
