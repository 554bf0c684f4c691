"""--socket tcp through the page_pool drivers on both engines: the fast engine's TCP receivers joined to the skbs of
ice's page_pool form (libeth: the kernels whose ice_rx_buffers is "libeth", 7.1 here), libeth's iavf and idpf, and
mana, through GRO or with --opt gro=0, and bnxt with --opt gro=0 (skbsim/fast/tcp_napi.py).

Their skbs are napi_build_skb() on a page_pool buffer (bnxt's copies and page mode's heads napi_alloc_skb()'s) and
marked for recycling (not 6.1's bnxt, nor mana's v6.9 buffers above a page): a stolen head or a moved frag goes back
to its pool when the skb that took it is freed, what tcp_collapse() copies and frees too, and skb_try_coalesce()
refuses to mix such an skb with tcp_collapse()'s own (not marked).  The reference engine's JSON is the truth, its
page_pool statistics included: every run here must give the same JSON on the fast engine, which must not have
handed it over (except where a test says what is still the reference engine's).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import unsupported
from skbsim.fast.tcp import TCP_CONDENSE, TCP_OFO, TCP_PULL, TCP_WHY
from skbsim.sim import RunConfig
from tcp_engines import TCP_RUN, run_both
from tcp_engines import same as _same
from test_fast_tcp_napi import WORKLOADS as NAPI_WORKLOADS

#: (kernel, driver, options): ice's page_pool form, iavf, idpf (its short buffer queue; header split without GRO)
#: and mana (v6.9's buffers above a page are napi_alloc_frag() pieces, not marked for recycling), GRO on and off;
#: bnxt without GRO
FORMS = [("7.1", "ice", {}), ("7.1", "ice", {"gro": "0"}),
         ("6.18", "libeth", {}), ("6.18", "libeth", {"gro": "0"}),
         ("6.12", "libeth", {"nic": "idpf"}), ("6.12", "libeth", {"nic": "idpf", "gro": "0"}),
         ("6.18", "libeth", {"nic": "idpf", "hsplit": "on", "gro": "0"}),
         ("6.12", "mana", {}), ("6.12", "mana", {"gro": "0"}),
         ("6.9", "mana", {"mtu": "9000", "gro": "0"}), ("7.1", "mana", {}),
         # bnxt (its TCP through GRO is the reference engine's): buffers built on and marked for recycling (6.18),
         # page_frag buffers not marked (6.1), page mode's napi_alloc_skb() headers, copies up to rx-copybreak,
         # jumbo frames in aggregation pages
         ("6.18", "bnxt", {"gro": "0"}), ("6.1", "bnxt", {"gro": "0"}),
         ("6.12", "bnxt", {"gro": "0", "page_mode": "on"}), ("6.18", "bnxt", {"gro": "0", "copybreak": "1024"}),
         ("6.18", "bnxt", {"gro": "0", "mtu": "9000"})]
FORM_IDS = ["ice-7.1", "ice-7.1-gro0", "iavf", "iavf-gro0", "idpf", "idpf-gro0", "idpf-hsplit-gro0", "mana",
            "mana-gro0", "mana-6.9-jumbo-gro0", "mana-7.1", "bnxt", "bnxt-6.1", "bnxt-page-mode", "bnxt-copybreak",
            "bnxt-jumbo"]


#: what the fast engine still hands over behind these drivers: the out-of-order queue's corners, skb_condense() of an
#: skb bound for it, headers beyond the head (idpf's header split of a frame the NIC did not split)
HANDED_OVER = tuple(TCP_WHY[code] for code in (TCP_OFO, TCP_CONDENSE, TCP_PULL))


def _both(form, **kw) -> tuple[dict, dict, str | None]:
    kernel, driver, options = form
    return run_both({**TCP_RUN, "kernel": kernel, "driver": driver, "options": options, **kw})


@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
def test_the_forms_are_the_fast_engines(form):
    kernel, driver, options = form
    assert unsupported(RunConfig(**{**TCP_RUN, "kernel": kernel, "driver": driver, "options": options,
                                    "count": 10})) is None


@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("ts", [0, 1])
def test_bulk_flow(form, ts):
    reference, fast, why = _both(form, traffic=f"tcp-bulk:ts={ts}", count=1500)
    assert why is None and fast["engine"] == "fast", why
    assert _same(reference, fast)
    mss = 1448 if ts else 1460  # (the senders' MSS, whatever the device's MTU)
    assert reference["tcp"]["bytes_received"] == 1500 * mss == reference["flows"][0]["sender"]["bytes"]
    if form[1] in ("ice", "libeth"):  # (every buffer from the pools: recycled ones taken from their caches)
        assert reference["page_pool"]["rx_pp_alloc_fast"] > 0


#: test_fast_tcp_napi's workloads (many flows on several CPUs, small messages, a closed window, slab and head
#: faults), and two of page_pool's own
WORKLOADS = {
    **NAPI_WORKLOADS,
    # pages refused now and then (page_pool's slow path fails), with a slow reader and a long RTT
    "page-faults": dict(count=1500, rtt_ms=20.0, app_rate=1000, faults=(("page_alloc", 0.01, 1, -1, 100),)),
    # SO_RCVBUF 8192 and 100-byte messages: tcp_prune_queue() collapses the queue into alloc_skb() heads, whose
    # copies free the page_pool buffers; later skbs may not coalesce into a collapsed skb (not marked for recycling)
    "collapse": dict(count=400, so_rcvbuf=8192, app_rate=1000, app_read_size=1000, tcp="messages:100@50000"),
}


@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_workloads(form, workload):
    reference, fast, why = _both(form, **WORKLOADS[workload])
    assert why is None, why
    assert _same(reference, fast)


#: libeth's forms (mana has no ring option) with a ring of 64 buffers
SMALL_RINGS = [(kernel, driver, {**options, "ring": "64"}) for kernel, driver, options in FORMS if driver != "mana"]


@pytest.mark.parametrize("form", SMALL_RINGS, ids=[i for i, f in zip(FORM_IDS, FORMS) if f[1] != "mana"])
def test_ring_drops(form):
    # two flows at 10 Gb/s into a ring of 64 buffers: frames dropped as ring_full leave holes, so segments go to
    # the out-of-order queue (SACKs, the senders' retransmissions) and are coalesced there
    reference, fast, why = _both(form, count=2000, flows=2, cpus=2, traffic="tcp-bulk:ts=1", rate=1e7)
    assert why is None or why.removesuffix("; rerun") in HANDED_OVER, why
    assert _same(reference, fast)


def test_workloads_reach_their_corners():
    # the collapse workload prunes and collapses behind ice's page_pool form, a small ring drops frames (the
    # out-of-order queue), the zero-window workload reaches the probes
    reference, fast, why = _both(FORMS[1], **WORKLOADS["collapse"])
    assert why is None and _same(reference, fast)
    counters = reference["flows"][0]["counters"]
    assert counters["PruneCalled"] > 0 and counters["TCPRcvCollapsed"] > 0
    assert reference["tcp"]["collapse_copied_bytes"] > 0
    reference, fast, why = _both(SMALL_RINGS[1], count=2000, flows=2, cpus=2, traffic="tcp-bulk:ts=1", rate=1e7)
    assert why is None and _same(reference, fast)
    assert reference["dropped"]["ring_full"] > 0 and reference["tcp"]["counters"]["TCPOFOQueue"] > 0
    reference, fast, why = _both(FORMS[7], **WORKLOADS["zero-window"])
    assert why is None and _same(reference, fast)
    assert reference["flows"][0]["sender"]["zero_window_probes"] > 0


def test_ten_segments_on_ice_page_pool_form_hand_derived():
    # 7.1's ice on libeth at MTU 1500, no GRO, a reader that never reads: each frame is napi_build_skb() on a
    # page_pool fragment of truesize roundup_pow_of_two(SKB_HEAD_ALIGN(headroom + buf_len)) = 2048 (two a page),
    # so skb->truesize = SKB_TRUESIZE(end) with end = 2048 - SKB_DATA_ALIGN(shinfo) 320 = 1728: 1728 + 320 +
    # SKB_DATA_ALIGN(sk_buff) 256 = 2304.  The head's room after the 1514-byte frame, 1728 - headroom 64 - 1514 =
    # 150, takes no 1460-byte segment, so tcp_try_coalesce() steals each later head (a page fragment, both skbs
    # marked for recycling): the queued skb gains truesize - SKB_DATA_ALIGN(sk_buff) = 2048 each time.
    # rmem_alloc = 2304 + 9 * 2048 = 20736, with 9 TCPRcvCoalesce.
    reference, fast, why = _both(FORMS[1], count=10, app_rate=0)
    assert why is None and fast["engine"] == "fast" and _same(reference, fast)
    flow = fast["flows"][0]
    assert fast["truesize_per_packet"] == 2304
    assert flow["rmem_alloc"] == {"peak": 20736, "at_end": 20736}
    assert flow["counters"]["TCPRcvCoalesce"] == 9
    assert fast["head_sources"] == {"libeth mtu buffer (page_pool)": 10}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form=st.sampled_from(FORMS), ts=st.sampled_from([0, 1]),
       tcp=st.sampled_from(["bulk", "messages:3000", "messages:20000@2000", "messages:100@50000", "messages:1460"]),
       flows=st.sampled_from([1, 2, 3, 16]), rtt=st.sampled_from([0.05, 0.5, 1.0, 20.0]),
       app_rate=st.sampled_from([None, 0, 1000, 20000, 200000]), read=st.sampled_from([None, 1000, 65536]),
       so_rcvbuf=st.sampled_from([None, 4096, 8192, 65536, 1 << 20]), count=st.integers(1, 1500),
       rate=st.sampled_from([1e5, 1e6, 3e6, 1234567.0]), cpus=st.integers(1, 3),
       faults=st.sampled_from([(), (), (("slab", 0.02, 1, -1, 0),), (("page_alloc", 0.01, 1, -1, 0),),
                               (("skb_head", 0.001, 1, -1, 100), ("page_alloc", 0.3, 2, 3, 10))]))
def test_random_workloads(form, ts, tcp, flows, rtt, app_rate, read, so_rcvbuf, count, rate, cpus, faults):
    reference, fast, why = _both(form, traffic=f"tcp-bulk:ts={ts}", tcp=tcp, flows=flows, rtt_ms=rtt,
                                 app_rate=app_rate, app_read_size=read, so_rcvbuf=so_rcvbuf, count=count, rate=rate,
                                 cpus=cpus, faults=faults)
    assert why is None or why.removesuffix("; rerun") in HANDED_OVER, why
    assert _same(reference, fast)


@pytest.mark.parametrize("driver, words", [
    ("mlx5", "--socket tcp through mlx5 is the reference engine's"),
    ("gve", "--socket tcp through gve is the reference engine's"),
])
def test_the_other_page_pool_drivers_say_why(driver, words):
    reason = unsupported(RunConfig(**{**TCP_RUN, "driver": driver, "options": {"gro": "0"}, "count": 10}))
    assert reason is not None and reason.startswith(words) and "\n" not in reason


@pytest.mark.parametrize("seed", range(len(FORMS)))
def test_drawn_captures(tmp_path, seed):
    # a capture's TCP flows (tcp_engines.random_capture(): up to 4 flows, SYNs or mid-stream, segments reordered
    # and repeated, bursts beyond the window) through each form in turn, a reader or none
    import random

    from tcp_engines import random_capture

    rng = random.Random(seed)
    traffic, _ = random_capture(rng, str(tmp_path / "c.pcap"), 400, udp_share=0)
    reference, fast, why = _both(FORMS[seed], traffic=traffic, tcp=None, count=None, rate=None,
                                 so_rcvbuf=rng.choice([None, 8192, 65536]), app_rate=rng.choice([None, 0, 2000]),
                                 cpus=rng.choice([1, 2]))
    assert why is None or why.removesuffix("; rerun") in HANDED_OVER or "SYN or RST only" in why, why
    assert _same(reference, fast)


@pytest.mark.parametrize("form", [form for form in FORMS if form[2].get("gro") == "0"],
                         ids=[i for i, form in zip(FORM_IDS, FORMS) if form[2].get("gro") == "0"])
def test_plot_data_is_the_same(form):
    # --plot without GRO: the memory series, truesize by frame length and each flow's series
    from test_fast_tcp_plot import WORKLOADS as PLOT_WORKLOADS
    from test_fast_tcp_plot import _assert_same as _assert_same_plot
    from test_fast_tcp_plot import _both as _both_plot

    kernel, driver, options = form
    for workload in PLOT_WORKLOADS.values():
        _assert_same_plot(*_both_plot({**TCP_RUN, "kernel": kernel, "driver": driver, "options": options,
                                       **workload}))


def test_headers_beyond_the_head_say_why():
    # idpf with header split and the timestamp option, a reader that never reads: the sender's zero-window probes
    # are 66-byte frames, all headers, which the NIC does not split (eth_get_headlen() is the whole frame);
    # idpf_rx_hsplit_wa() copies only the Ethernet header of a frame above L1_CACHE_BYTES (64) into the header
    # buffer, so ip_rcv_core() and tcp_v4_rcv() pull the IP and TCP headers from frag 0: the fast engine hands the
    # run over, saying so
    reference, fast, why = _both(("6.18", "libeth", {"nic": "idpf", "hsplit": "on", "gro": "0"}),
                                 traffic="tcp-bulk:ts=1", count=600, app_rate=0, so_rcvbuf=4096, rtt_ms=0.5)
    assert why.removesuffix("; rerun") == TCP_WHY[TCP_PULL] and _same(reference, fast)
    assert reference["flows"][0]["sender"]["zero_window_probes"] > 0
