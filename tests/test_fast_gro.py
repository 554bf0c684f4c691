"""The fast engine's GRO of TCP segments (skbsim/fast/gro.py): the same JSON, gro object and --trace as the
reference engine's for tcp-bulk traffic on ice (rx=build_skb and rx=legacy) and copybreak, and the
fallbacks for what it does not cover yet."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dpkt

from gro_helpers import CWR, FIN, PSH, segments, tcp_frame
from skbsim.fast import simulate_engine, simulate_fast, unsupported
from skbsim.sim import RunConfig, simulate

from test_fast_engine import KERNELS, _assert_same, _assert_same_trace, _without_engine


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
    rx_buf=st.sampled_from([None, "512", "1514", "2048"]),
    mss=st.sampled_from([None, "1", "100", "536", "1460", "8948"]),
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
    _assert_same_trace(tmp_path, dict(kernel=kernel, driver=driver, options=options, traffic="tcp-bulk", count=3_000,
                                      flows=2, rate=4e6, cpus=2, rcvbuf=400_000, app_rate=3e5), suffix)


@pytest.mark.parametrize("config, reason", [
    (RunConfig(driver="virtio_net", options={"gro_flush_timeout": "100000"}, traffic="tcp-bulk", count=300),
     "gro_flush_timeout"),
    (RunConfig(kernel="7.1", options={"hsplit": "on"}, traffic="tcp-bulk", count=300), "with header split"),
    (RunConfig(kernel="6.18", driver="mlx5", options={}, traffic="tcp-bulk", count=300), "GRO on mlx5"),
    (RunConfig(driver="tun", options={"napi": "1", "gro_flush_timeout": "100000"}, traffic="tcp-bulk", count=300),
     "gro_flush_timeout"),
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


def _capture(path, frames, gap=1e-6):
    """Frames as a pcap (their header bytes, zero-padded to the frame length), gap seconds apart."""
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f)
        for i, frame in enumerate(frames):
            writer.writepkt(frame.header + bytes(frame.length - len(frame.header)), ts=i * gap)
    return str(path)


def _mixed_tcp_frames():
    """Every rule tcp_gro_receive() and inet_gro_receive() apply, in one capture: in-order runs, a TSval that
    moves, PSH, FIN, CWR, another TTL, TOS and DF, a fixed IP ID, a gap in seq, a longer segment, a short
    one, padding, a bad IP checksum, UDP, other flows, an ACK without payload, options without timestamps."""
    frames = segments(20)
    frames += segments(6, seq=1_000_000 + 20 * 1448, ip_id=21, ts=1001)
    frames += [tcp_frame(2_000_000 + i * 1000, 1000, ip_id=7, sport=41000) for i in range(5)]  # a fixed IP ID
    frames += [tcp_frame(3_000_000 + i * 500, 500, ip_id=i, sport=42000, flags=0x10 | (PSH if i == 3 else 0))
               for i in range(6)]
    frames += [tcp_frame(4_000_000 + i * 500, 500, ip_id=i, sport=43000, flags=0x10 | (CWR if i in (2, 3) else 0))
               for i in range(6)]
    frames += [tcp_frame(5_000_000 + i * 300, 300, ip_id=i, sport=44000, ttl=64 if i != 2 else 63) for i in range(4)]
    frames += [tcp_frame(6_000_000 + i * 300, 300, ip_id=i, sport=45000, tos=0 if i != 2 else 4) for i in range(4)]
    frames += [tcp_frame(7_000_000 + i * 300 + (50 if i == 2 else 0), 300, ip_id=i, sport=46000) for i in range(4)]
    frames += [tcp_frame(8_000_000 + i * 300, 300 if i != 2 else 400, ip_id=i, sport=47000) for i in range(4)]
    frames += [tcp_frame(9_000_000 + i * 300, 300 if i != 2 else 100, ip_id=i, sport=48000) for i in range(4)]
    frames += [tcp_frame(10_000_000 + i, 1, ip_id=i, sport=49000, ts=None, pad_to=60) for i in range(4)]  # padded
    frames += [tcp_frame(11_000_000, 0, ip_id=i, sport=50000) for i in range(3)]  # pure ACKs
    frames += [tcp_frame(12_000_000 + i * 700, 700, ip_id=i, sport=51000, ts=None) for i in range(5)]
    frames += [tcp_frame(13_000_000 + i * 700, 700, ip_id=i, sport=52000, df=False) for i in range(4)]
    frames += [tcp_frame(14_000_000 + i * 700, 700, ip_id=i, sport=53000, flags=0x10 | (FIN if i == 2 else 0))
               for i in range(4)]
    frames += list(segments(40, payload=1448, seq=20_000_000, ip_id=100, sport=54000))  # frag_list chains
    udp = tcp_frame(0, 200, sport=55000)
    header = bytearray(udp.header)
    header[23] = 17  # protocol UDP (the checksum then fails too: either way not TCP)
    frames.append(type(udp)(udp.length, 0, None, 0, 0, bytes(header)))
    return frames


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("driver, options", [("ice", {"rx": "build_skb"}), ("ice", {"rx": "legacy"}),
                                             ("copybreak", {}), ("copybreak", {"copybreak": "1514"}),
                                             # (tun's GRO merges nothing: each write's poll flushes its skb)
                                             ("tun", {"napi": "1"}), ("tun", {"napi": "1", "frags": "1"})])
@pytest.mark.parametrize("gap", [1e-6, 1e-8])
def test_a_mixed_tcp_capture_through_gro(tmp_path, kernel, driver, options, gap):
    path = _capture(tmp_path / "mixed.pcap", _mixed_tcp_frames(), gap)
    config = dict(kernel=kernel, driver=driver, options=options, traffic=f"pcap:{path}", count=None, rate=None)
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)
    _assert_same(**{**config, "cpus": 2, "rcvbuf": 30_000})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(0, 1500), st.integers(0, 3),
                                 st.sampled_from([0x10, 0x10, 0x10, 0x18, 0x11, 0x90, 0x12])),
                       min_size=1, max_size=300),
       kernel=st.sampled_from(KERNELS), rx=st.sampled_from(["build_skb", "legacy"]), gap=st.sampled_from([1e-8, 1e-6]))
def test_random_tcp_captures_give_identical_json(tmp_path_factory, frames, kernel, rx, gap):
    # Each frame: its flow, how its seq moves from the flow's last (0: in order), payload, TSval step, flags.
    state = {}
    out = []
    for flow, jump, payload, ts_step, flags in frames:
        seq, ip_id, ts = state.get(flow, (flow * 10_000_000, 0, 1000))
        seq += 0 if jump == 0 else (jump - 2) * 700
        out.append(tcp_frame(seq & 0xFFFFFFFF, payload, ip_id=ip_id, ts=ts, sport=40000 + flow, flags=flags))
        state[flow] = (seq + payload, ip_id + 1, ts + (ts_step == 3))
    path = _capture(tmp_path_factory.mktemp("cap") / "random.pcap", out, gap)
    _assert_same(kernel=kernel, options={"rx": rx}, traffic=f"pcap:{path}", count=None, rate=None)
