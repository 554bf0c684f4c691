"""A capture's TCP flows into TCP receivers on the fast engine (skbsim/fast/tcp_capture.py): the same JSON as the
reference engine's, over generated captures (flows with and without their SYN, segment sizes, gaps, segments out
of order, duplicated and retransmitted, bursts beyond the window, FIN and RST), kernels, drivers, SO_RCVBUF,
readers and faults; and what the receiver refuses, derived by hand."""

from __future__ import annotations

import os
import random
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast.engine import simulate_engine, unsupported
from skbsim.report import TraceWriter
from skbsim.sim import RunConfig
from tcp_engines import (
    ACK, FIN, PSH, RST, SYN, gro_burst, random_capture, run_both, same, segment, udp_datagram, write_capture,
)


def differences(reference: dict, fast: dict) -> dict:
    """The keys whose values differ (flows: the first differing flow's keys), for a failure's message."""
    out = {key: (reference[key], fast.get(key)) for key in reference
           if key not in ("engine", "flows") and reference[key] != fast.get(key)}
    for a, b in zip(reference.get("flows", []), fast.get("flows", [])):
        if a != b:
            out["flow"] = {key: (a[key], b.get(key)) for key in a if a[key] != b.get(key)}
            break
    if len(reference.get("flows", [])) != len(fast.get("flows", [])):
        out["flows"] = ([f["flow"] for f in reference["flows"]], [f["flow"] for f in fast["flows"]])
    return out


@st.composite
def flow_frames(draw, index: int) -> list[bytes]:
    """One flow's frames in the order its peer sent them: a SYN (with options, without, or none: first seen in
    mid-stream), segments of drawn sizes (pure ACKs among them), some sent out of order, duplicated or
    retransmitted later, PSH on each or on the last, a FIN on the last, a RST after it at times."""
    sport = 40000 + index
    ts = draw(st.sampled_from([None, 1000]))
    isn = draw(st.integers(0, 0xFFFFFFFF))
    frames = []
    opening = draw(st.sampled_from(["syn", "syn_options", "midstream"]))
    if opening != "midstream":
        frames.append(segment(isn, 0, flags=SYN, sport=sport, ts=ts, ack=0, syn_options=opening == "syn_options"))
    mss = draw(st.sampled_from([536, 1000, 1448]))
    sizes = draw(st.lists(st.one_of(st.just(mss), st.integers(0, mss)), min_size=1, max_size=40))
    seq = (isn + 1) & 0xFFFFFFFF
    data = []
    for n, size in enumerate(sizes):
        data.append((seq, size, ts + n // 4 if ts is not None else None))
        seq = (seq + size) & 0xFFFFFFFF
    # out of order: a few neighbours swapped; duplicates and retransmissions: a few segments again, later
    for _ in range(draw(st.integers(0, 3))):
        if len(data) > 1:
            at = draw(st.integers(0, len(data) - 2))
            data[at], data[at + 1] = data[at + 1], data[at]
    for _ in range(draw(st.integers(0, 3))):
        again = draw(st.sampled_from(data))
        data.insert(draw(st.integers(data.index(again), len(data))), again)
    # PSH on every segment, or (a bulk sender's) on the last only: GRO merges a burst up to one with PSH
    push = draw(st.sampled_from([0, PSH]))
    ip_csum = draw(st.sampled_from([True, True, True, False]))  # (False: captured with checksum offload)
    for n, (seq, size, tsval) in enumerate(data):
        last = n == len(data) - 1
        flags = ACK | (PSH if last else push) | (FIN if last and draw(st.booleans()) else 0)
        frames.append(segment(seq, size, flags=flags, sport=sport, ts=tsval, ip_csum=ip_csum))
    if draw(st.integers(0, 4)) == 0:
        frames.append(segment(seq, 0, flags=RST | ACK, sport=sport, ts=None))
    return frames


@st.composite
def captures(draw, udp: bool = False) -> list[tuple[float, bytes]]:
    """Up to three flows' frames interleaved, with gaps of 0 (a burst) to 200 us (and UDP datagrams with udp)."""
    flows = [draw(flow_frames(n)) for n in range(draw(st.integers(1, 3)))]
    if udp:
        flows.append([udp_datagram(draw(st.integers(0, 1400))) for _ in range(draw(st.integers(1, 5)))])
    frames = []
    when = 0.0
    while any(flows):
        flow = draw(st.sampled_from([f for f in flows if f]))
        when += draw(st.sampled_from([0, 0, 1, 10, 200])) * 1e-6
        frames.append((when, flow.pop(0)))
    return frames


DRIVERS = [("tun", {}), ("ice", {"rx": "build_skb", "gro": "0"}), ("ice", {"rx": "legacy", "gro": "0"}),
           ("copybreak", {"gro": "0"}), ("virtio_net", {"gro": "0"}), ("virtio_net", {"mtu": "1400", "gro": "0"}),
           ("ntb", {}), ("ntb", {"copybreak": "3646"})]
#: through GRO (the default): bursts of segments merged into aggregates (not through tun: each write its own poll)
GRO_DRIVERS = [("ice", {"rx": "build_skb"}), ("ice", {"rx": "legacy"}), ("copybreak", {}), ("virtio_net", {}),
               ("virtio_net", {"mtu": "1400"}), ("tun", {"napi": "1"})]
DRIVERS += GRO_DRIVERS


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=captures(), kernel=st.sampled_from(["6.1", "6.9", "6.12", "6.18", "7.1"]),
       driver=st.sampled_from(DRIVERS), so_rcvbuf=st.sampled_from([None, None, 4096, 20000, 65536]),
       app_rate=st.sampled_from([None, 0, 1000, 50000]), read_size=st.sampled_from([None, 3000]),
       cpus=st.sampled_from([1, 1, 2]),
       faults=st.sampled_from([(), (), (("slab", 0.02, 1, -1, 0),), (("page_frag", 0.3, 2, 3, 10),)]))
def test_a_capture_into_tcp_receivers_gives_the_same_json_on_both_engines(frames, kernel, driver, so_rcvbuf,
                                                                           app_rate, read_size, cpus, faults):
    if kernel == "7.1" and driver[1].get("rx") == "legacy":
        driver = DRIVERS[1]  # (ice's page_pool form has no legacy-rx)
    with tempfile.TemporaryDirectory() as tmp:
        traffic = write_capture(os.path.join(tmp, "c.pcap"), frames)
        config = dict(kernel=kernel, driver=driver[0], options=driver[1], traffic=traffic, socket="tcp", count=None,
                      rate=None, so_rcvbuf=so_rcvbuf, app_rate=app_rate, app_read_size=read_size, cpus=cpus,
                      faults=faults)
        reference, fast, why = run_both(config)
        reason = unsupported(RunConfig(**config))  # (GRO's scope reads the capture)
    assert same(reference, fast), (why, differences(reference, fast))
    assert (why is None) == (fast["engine"] == "fast")
    if reason is None and why is not None:
        # handed over only for what the fast engine leaves to the reference engine, saying so
        assert ("page_pool" in why or "libeth" in why or "SYN or RST only" in why or "does not follow" in why
                or "memory pressure" in why or "left over at close" in why or "skb_condense" in why
                or "virtio_net's MTU" in why), why


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=captures(udp=True), kernel=st.sampled_from(["6.1", "6.18"]), driver=st.sampled_from(DRIVERS[:2]))
def test_a_capture_with_udp_flows_is_handed_over_whole(frames, kernel, driver):
    # mixed TCP and UDP captures are the reference engine's, saying why, with its JSON
    with tempfile.TemporaryDirectory() as tmp:
        traffic = write_capture(os.path.join(tmp, "c.pcap"), frames)
        config = dict(kernel=kernel, driver=driver[0], options=driver[1], traffic=traffic, socket="tcp", count=None,
                      rate=None)
        reference, fast, why = run_both(config)
    assert same(reference, fast) and "no IPv4 TCP segment" in why


@pytest.mark.parametrize("seed", range(10))
def test_drawn_captures_of_long_flows(tmp_path, seed):
    # captures of up to 4 flows of up to 400 segments each (tcp_engines.random_capture(): the window exceeded in
    # bursts, segments reordered and repeated), through each driver in turn, a reader or none
    rng = random.Random(seed)
    traffic, _ = random_capture(rng, str(tmp_path / "c.pcap"), 400, udp_share=0)
    driver, options = DRIVERS[seed % len(DRIVERS)]
    config = dict(kernel=rng.choice(["6.1", "6.9", "6.12", "6.18"]), driver=driver, options=options, traffic=traffic,
                  socket="tcp", count=None, rate=None, so_rcvbuf=rng.choice([None, 8192, 65536]),
                  app_rate=rng.choice([None, 0, 2000]), cpus=rng.choice([1, 2]))
    reference, fast, why = run_both(config)
    assert same(reference, fast), (why, differences(reference, fast))


def test_tun_and_ice_replay_a_capture_on_the_fast_engine(tmp_path):
    frames = [(0.0, segment(999, 0, flags=SYN, syn_options=True))]
    frames += [(1e-5 * (n + 1), segment(1000 + 1448 * n, 1448, ts=1001 + n)) for n in range(30)]
    frames += [(1e-3, segment(5000, 100, sport=41000, ts=None))]
    traffic = write_capture(str(tmp_path / "c.pcap"), frames)
    for driver, options in DRIVERS[:2]:
        reference, fast, why = run_both(dict(kernel="6.18", driver=driver, options=options, traffic=traffic,
                                             socket="tcp", count=None, rate=None))
        assert why is None and fast["engine"] == "fast" and same(reference, fast)
        assert [flow["bytes_received"] for flow in fast["flows"]] == [30 * 1448, 100]


def test_trace_of_a_capture_stays_the_reference_engines(tmp_path):
    traffic = write_capture(str(tmp_path / "c.pcap"), [(0.0, segment(1000, 1448))])
    for driver, options in (("tun", {}), ("ice", {"rx": "build_skb"})):
        config = RunConfig(kernel="6.18", driver=driver, options=options, traffic=traffic, socket="tcp", count=None,
                           rate=None)
        assert unsupported(config) is None
        writer = TraceWriter(str(tmp_path / f"{driver}.jsonl"), per_flow=True)
        result, _, why = simulate_engine(config, "fast", trace=writer)
        writer.close()
        assert result["engine"] == "reference" and "--trace" in why


@pytest.mark.parametrize("kernel", ["6.1", "6.18"])
@pytest.mark.parametrize("syn", [True, False])
def test_a_burst_that_gro_merges_into_one_aggregate_derived_by_hand(tmp_path, kernel, syn):
    # One flow (a SYN with MSS 1460, SACK, window scale 7 and timestamps, or first seen in mid-stream), then 8
    # in-order segments of 1448 bytes in one burst (the same arrival time, 100 us after the SYN), the same TSval,
    # IP ID 1 with DF, ACK on the first 7 and ACK | PSH on the 8th, through ice rx=build_skb with GRO on.
    #   The burst reaches the ring before the IRQ's poll (2 us of IRQ latency), so one poll takes all 8 (budget
    #   64).  napi_gro_receive(): segment 1 has nothing to merge with and no flush flag: held (its gso_size the
    #   payload, 1448).  Segments 2..8 find it (same hash, addresses and ports); tcp_gro_receive()'s tests pass:
    #   the same flag word but PSH, ack_seq and options; TTL, TOS, DF; the IP ID repeats with DF (a fixed ID,
    #   inet_gro_flush(), on every release); 1448 bytes, not above the mss; each seq the held skb's end.  Each is
    #   merged by skb_gro_receive(): build_skb's head is a page fragment holding the whole frame, so its head is
    #   stolen as a frag (7 of them).  Segment 8 carries PSH: out_check_final completes the aggregate (flush
    #   "psh"), 8 segments: len 20 + 32 + 8 * 1448 = 11636 bytes, truesize the first skb's (its 2048-byte half
    #   page and the 256-byte sk_buff) plus each stolen head's less the sk_buff it gives back to the NAPI cache:
    #   2304 + 7 * 2048 = 16640.  A SYN goes up alone (SYN is a flush flag, nothing held to merge into).
    #   The receiver: the SYN (control), then the aggregate, in order within the initial window (8 * 1448 =
    #   11584 bytes, below 10 segments): delivered, segments = 11584 / gso_size 1448 = 8.
    traffic = write_capture(str(tmp_path / "burst.pcap"), gro_burst(syn))
    reference, fast, why = run_both(dict(kernel=kernel, driver="ice", options={"rx": "build_skb"}, traffic=traffic,
                                         socket="tcp", count=None, rate=None))
    assert why is None and fast["engine"] == "fast" and same(reference, fast), (why, differences(reference, fast))
    gro = fast["gro"]
    assert (gro["skbs_in"], gro["skbs_out"], gro["tcp_segments"]) == (8 + syn, 1 + syn, 8 + syn)
    assert gro["merged"] == {"stolen_head": 7, "frags": 0, "frag_list": 0} and gro["flushes"] == {"psh": 1}
    assert (gro["aggregates"], gro["segments_per_aggregate"], gro["len_per_aggregate"]) == (1, 8, 11636)
    assert gro["truesize_per_aggregate"] == 16640 and gro["napi_cache_puts"] == 7
    (flow,) = fast["flows"]
    assert (flow["skbs"], flow["segments"], flow["delivered"], flow["control"]) == (1 + syn, 8, 1, int(syn))
    assert flow["bytes_received"] == 8 * 1448 and flow["refused"]["segments"] == 0


@pytest.mark.parametrize("driver, options", GRO_DRIVERS[:4])
def test_segments_gro_does_not_parse_go_up_alone(tmp_path, driver, options):
    # The burst above captured at a sender with checksum offload: every IPv4 header checksum 0.
    # inet_gro_receive() takes a segment only when ip_fast_csum() of its header is 0; these fail, so GRO passes
    # each up as the driver built it (no TCP segment reached tcp4_gro_receive(): the JSON has no "gro" object).
    # The receiver gets 8 skbs of 1448 bytes, each in order (virtio_net's copy head holds the headers only up to
    # the checksum field: ip_rcv_core() and tcp_v4_rcv() pull the rest from frag 0).
    frames = [(1e-4, segment(1000 + 1448 * n, 1448, flags=ACK | (PSH if n == 7 else 0), ts=1001, ip_csum=False))
              for n in range(8)]
    traffic = write_capture(str(tmp_path / "offloaded.pcap"), frames)
    reference, fast, why = run_both(dict(kernel="6.12", driver=driver, options=options, traffic=traffic,
                                         socket="tcp", count=None, rate=None))
    assert why is None and fast["engine"] == "fast" and same(reference, fast), (why, differences(reference, fast))
    assert "gro" not in fast
    (flow,) = fast["flows"]
    assert (flow["skbs"], flow["segments"], flow["delivered"], flow["bytes_received"]) == (8, 8, 8, 8 * 1448)


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
def test_what_a_receiver_refuses_beyond_its_window_derived_by_hand(tmp_path, kernel):
    # Two flows, each a SYN with timestamps (no MSS option, no window scale) then 40 in-order 1448-byte
    # segments, interleaved 10 us apart, through ice (rx=build_skb, GRO off: one 2304-byte skb a segment,
    # half a 4K page and the sk_buff) with SO_RCVBUF 4096 and nobody reading.
    #   sk_rcvbuf = 2 * 4096 = 8192; tcp_full_space() = tcp_win_from_space(8192) = 8192 / 2 = 4096 (6.1:
    #   tcp_adv_win_scale 1; 6.12: the initial scaling_ratio 128 / 256).  The SYN-ACK's window:
    #   rounddown(4096, advmss 1460 - 12 of timestamps = 1448) = 2896, no scaling (the SYN had none).
    #   tcp_init_buffer_space(): window_clamp 4096 > 2 * 1448 and 4096 + 1448 > 4096: max(2 * 1448,
    #   4096 - 1448) = 2896; rcv_ssthresh = min(2896, 2896).
    #   Segment 1 (quickack: ACKed at once): free space tcp_space() = (8192 - 2304) / 2 = 2944 on 6.1
    #   (6.12 re-derives the ratio 1448 * 256 / 2304 = 160: 5888 * 160 / 256 = 3680), capped at
    #   rcv_ssthresh 2896 (growth is capped by window_clamp 2896); the old rcv_wnd 2896 is neither at or
    #   below free - mss nor above free: kept.  Right edge 1448 + 2896 = 4344.
    #   Segments 2 and 3 end at 2896 and 4344: taken.  Free space then (8192 - 6912) / 2 = 640 (6.12:
    #   800) below one MSS: the window is 0 and the edge stays at 4344 (a window never shrinks).
    #   Segment 4 (4344..5792) starts at the edge: tcp_sequence() lets it through (it checks the start
    #   against rcv_nxt + 0), tcp_data_queue() drops it for the zero window: TCP_ZEROWINDOW.
    #   Segments 5..40 start beyond the edge: tcp_sequence() refuses them, TCP_INVALID_SEQUENCE.
    # So each flow: 3 delivered (4344 bytes), 37 refused (37 * 1448 = 53576 bytes), listed from 4344 on.
    frames = []
    for sport in (40000, 40001):
        frames.append([segment(999_999, 0, flags=SYN, sport=sport, ack=0, ts=1000)]
                      + [segment(1_000_000 + 1448 * n, 1448, sport=sport, ts=1001) for n in range(40)])
    interleaved = [frame for pair in zip(*frames) for frame in pair]
    traffic = write_capture(str(tmp_path / "two.pcap"), [(n * 1e-5, frame) for n, frame in enumerate(interleaved)])
    reference, fast, why = run_both(dict(kernel=kernel, driver="ice", options={"rx": "build_skb", "gro": "0"},
                                         traffic=traffic, socket="tcp", count=None, rate=None, so_rcvbuf=4096,
                                         app_rate=0))
    assert why is None and fast["engine"] == "fast" and same(reference, fast)
    assert [flow["flow"] for flow in fast["flows"]] == ["198.18.0.1:40000 > 192.0.2.1:5001",
                                                         "198.18.0.1:40001 > 192.0.2.1:5001"]
    for flow in fast["flows"]:
        assert (flow["delivered"], flow["bytes_received"], flow["control"]) == (3, 4344, 1)
        refused = flow["refused"]
        assert (refused["segments"], refused["bytes"]) == (37, 37 * 1448)
        assert refused["by_reason"] == {"TCP_ZEROWINDOW": 1, "TCP_INVALID_SEQUENCE": 36}
        assert len(refused["first"]) == 20
        assert [entry[1:] for entry in refused["first"][:2]] == [[4344, 1448, "TCP_ZEROWINDOW"],
                                                                  [5792, 1448, "TCP_INVALID_SEQUENCE"]]
    assert fast["tcp"]["refused"] == {"segments": 74, "bytes": 74 * 1448} and fast["dropped"]["tcp"] == 74


@pytest.mark.parametrize("frames, reason", [
    ([segment(1000, 100), udp_datagram(100)], "no IPv4 TCP segment"),
    ([segment(1000, 10) + bytes(20)], "padded or cut short"),
    ([segment(1000, 100, flags=ACK | 0x20)], "URG, ECE or CWR"),
    ([segment(1000, 100, flags=PSH)], "without ACK"),
    ([segment(999, 0, flags=SYN), segment(1000, 100), segment(5000, 0, flags=SYN)], "a SYN after a flow's data"),
    # five flows in five frames: each receiver set up costs the fast engine two copies of its tables
    # (tcp_engine.CAPTURE_FLOWS, CAPTURE_FRAMES_PER_FLOW): the reference engine is the faster
    ([segment(1000, 100, sport=40000 + n) for n in range(5)], "5 TCP flows in 5 frames"),
])
def test_what_the_fast_engine_leaves_of_a_capture_to_the_reference_engine(tmp_path, frames, reason):
    traffic = write_capture(str(tmp_path / "c.pcap"), [(n * 1e-5, frame) for n, frame in enumerate(frames)])
    reference, fast, why = run_both(dict(kernel="6.18", driver="tun", options={}, traffic=traffic, socket="tcp",
                                         count=None, rate=None))
    assert fast["engine"] == "reference" and reason in why and same(reference, fast)


def test_a_capture_refused_only_for_what_it_holds_within_count(tmp_path):
    # --count stops the capture before its UDP datagram: the fast engine replays the TCP segments before it
    frames = [segment(1000 + 100 * n, 100) for n in range(5)] + [udp_datagram(100)]
    traffic = write_capture(str(tmp_path / "c.pcap"), [(n * 1e-5, frame) for n, frame in enumerate(frames)])
    reference, fast, why = run_both(dict(kernel="6.18", driver="tun", options={}, traffic=traffic, socket="tcp",
                                         count=5, rate=None))
    assert why is None and same(reference, fast) and fast["flows"][0]["bytes_received"] == 500


def test_a_capture_of_more_flows_with_frames_enough_for_each_stays_on_the_fast_engine(tmp_path):
    # 6 flows of 4000 frames (tcp_engine.CAPTURE_FRAMES_PER_FLOW), starting 100 us apart, each a SYN then
    # segments of 100 bytes, interleaved: each receiver is set up where its first segment reaches TCP, the loop
    # going back to where that call started (FastSimulation._run_loop()); a reader that keeps up
    flows = 6
    frames = []
    for f in range(flows):
        frames.append((f * 1e-4, segment(999, 0, flags=SYN, sport=40000 + f, syn_options=True)))
        frames += [(f * 1e-4 + (n + 1) * 1e-5, segment(1000 + 100 * n, 100, sport=40000 + f, ts=1001 + n))
                   for n in range(3999)]
    frames.sort(key=lambda frame: frame[0])
    traffic = write_capture(str(tmp_path / "c.pcap"), frames)
    reference, fast, why = run_both(dict(kernel="6.18", driver="tun", options={}, traffic=traffic, socket="tcp",
                                         count=None, rate=None))
    assert why is None and fast["engine"] == "fast" and same(reference, fast), why
    # every segment in order and in the window: 3999 segments of 100 bytes a flow
    assert [flow["bytes_received"] for flow in fast["flows"]] == [3999 * 100] * flows


@pytest.mark.parametrize("kernel", ["6.12", "6.18"])
def test_a_capture_through_ntb_derived_by_hand(tmp_path, kernel):
    # A SYN with options, then 3 segments of 100 bytes 10 us apart, through ntb_netdev without copybreak, a reader
    # that keeps up.  Each frame lands in a posted netdev_alloc_skb(mtu + ETH_HLEN) buffer: mtu 65510
    # (ntb_transport_max_size() - ETH_HLEN: transport_mtu 0x10000 - sizeof(struct ntb_payload_header) 12 - 14),
    # 65524 bytes, + NET_SKB_PAD 64 = 65588; __alloc_skb(): SKB_DATA_ALIGN(65588) = 65600 + SKB_DATA_ALIGN(sizeof(struct skb_shared_info) 320) =
    # 65920 bytes, above the largest kmalloc cache: kmalloc_large(), order get_order(65920) = 5, 131072 bytes; so
    # truesize = 131072 + SKB_DATA_ALIGN(sizeof(struct sk_buff)) 256 = 131328 for each of the 4 skbs.  A reader
    # that keeps up frees each before the next one comes: sk_rmem_alloc peaks at one skb's truesize.
    frames = [(0.0, segment(999, 0, flags=SYN, syn_options=True, ack=0))]
    frames += [((n + 1) * 1e-5, segment(1000 + 100 * n, 100, ts=1001 + n)) for n in range(3)]
    traffic = write_capture(str(tmp_path / "c.pcap"), frames)
    reference, fast, why = run_both(dict(kernel=kernel, driver="ntb", options={}, traffic=traffic, socket="tcp",
                                         count=None, rate=None))
    assert why is None and fast["engine"] == "fast" and same(reference, fast)
    assert fast["truesize_total"] == 4 * 131328 and fast["delivered"] == 3
    flow = fast["flows"][0]
    assert (flow["bytes_received"], flow["control"], flow["rmem_alloc"]["peak"]) == (300, 1, 131328)


@pytest.mark.parametrize("kernel", ["6.1", "6.12"])
@pytest.mark.parametrize("payload,condensed", [(500, True), (1000, False)])
def test_an_out_of_order_segment_condensed_derived_by_hand(tmp_path, kernel, payload, condensed):
    # A SYN without options, then one segment without timestamps 1000 bytes beyond the receiver's rcv_nxt: it
    # goes to the out-of-order queue, where tcp_data_queue_ofo() condenses it (skb_condense()).  Through ice
    # rx=legacy, GRO off: ice_construct_skb() takes napi_alloc_skb(ICE_RX_HDR_SIZE 256), which on these kernels
    # (the 1K small-frag cache) is a 1024-byte piece of a page: end = 1024 - SKB_DATA_ALIGN(sizeof(struct
    # skb_shared_info) 320) = 704, SKB_TRUESIZE(704) = 704 + SKB_DATA_ALIGN(sizeof(struct sk_buff)) 256 + 320 =
    # 1280.  The frame (54 bytes of headers + payload) is above 256 bytes, so the head gets its eth_get_headlen(),
    # the 54 bytes of headers, after NET_SKB_PAD 64 of headroom, and the payload stays in a frag of half a 4K
    # page: truesize 1280 + 2048 = 3328.  skb_condense() pulls the frag in when data_len fits end - tail =
    # 704 - 64 - 54 = 586: 500 bytes do (the frag's page reference dropped, truesize SKB_TRUESIZE(end) = 1280),
    # 1000 bytes do not (3328 stays).  No segment fills the gap, so sk_rmem_alloc ends at that truesize.
    frames = [(0.0, segment(999, 0, flags=SYN, ts=None, ack=0)),
              (1e-5, segment(1000 + 1000, payload, ts=None))]
    traffic = write_capture(str(tmp_path / "c.pcap"), frames)
    reference, fast, why = run_both(dict(kernel=kernel, driver="ice", options={"rx": "legacy", "gro": "0"},
                                         traffic=traffic, socket="tcp", count=None, rate=None))
    assert why is None and fast["engine"] == "fast" and same(reference, fast), differences(reference, fast)
    flow = fast["flows"][0]
    assert flow["bytes_received"] == 0 and fast["tcp"]["counters"]["TCPOFOQueue"] == 1
    assert flow["rmem_alloc"]["peak"] == (1280 if condensed else 3328)
