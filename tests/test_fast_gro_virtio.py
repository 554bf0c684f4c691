"""The fast engine's GRO of TCP segments on virtio_net (skbsim/fast/virtio.py with skbsim/fast/gro.py): the same
JSON, gro object and --trace as the reference engine's for tcp-bulk traffic and TCP captures, over every option
of virtio_net's mergeable mode, with faults and several CPUs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import simulate_fast, unsupported
from skbsim.sim import RunConfig

from test_fast_engine import FAULTS, KERNELS, _assert_same, _assert_same_trace, virtio_options
from test_fast_gro import _capture, _mixed_tcp_frames


def test_45_segments_on_virtio_net_hand_derived():
    # 45 in-order segments of one flow on the ring before the first poll (every arrival at 0 ns), on 6.9
    # virtio_net with its defaults (mergeable buffers, NEEDS_CSUM headers, guest GSO, MTU 1500).
    # The buffers posted at open are get_mergeable_buf_len() of an empty EWMA: GOOD_PACKET_LEN 1518 plus the
    # 12-byte header, aligned to 64: 1536, 21 to a 32 KiB block, the last taking the 32768 - 21 * 1536 = 512
    # bytes left too (2048).  A frame (12 + 1514 = 1526 bytes) fits one; in a 1536-byte buffer 10 bytes behind
    # it are less than skb_shared_info (320), so page_to_skb() copies: napi_alloc_skb(128) takes a 1K page
    # fragment (truesize SKB_TRUESIZE(1024 - 320) = 704 + 256 + 320 = 1280), the Ethernet header is copied,
    # the other 1500 bytes are frag 0 (truesize 1536): 2816 in all.  In a block's last buffer (frames 21 and
    # 42) 522 bytes are left: build_skb() on it, truesize SKB_TRUESIZE(2048 - 320) = 2304, all headers in the
    # head, so skb_gro_receive() steals its head as a frag (it keeps 256; p gains 2048).
    # virtio_net_hdr_to_skb() pulls csum_start 34 + csum_offset 16 + 2 = 52 bytes into the head, so after
    # eth_type_trans() the head holds 38; tcp_gro_receive() needs 20 + 32 = 52, pskb_may_pull() takes 14 more:
    # headlen 52 = the GRO offset, and skb_gro_receive() moves each later segment's frag (frags: 1 + 1 each).
    # p holds 1 frag and takes 16 (17 = MAX_SKB_FRAGS); the 18th segment is chained on the frag_list and takes
    # the next 16; the 35th is chained and takes the last 10.  Of those 42, 2 are stolen heads and 40 moved
    # frags (each giving p its 1536, its sk_buff and 1K head to the NAPI cache: __napi_kfree_skb()); chained:
    # 2 (each 2816).  p.len 52 + 45 * 1448 = 65212 < 65536.  truesize 2816 + 40 * 1536 + 2 * 2048 + 2 * 2816
    # = 73984.
    config = dict(kernel="6.9", driver="virtio_net", options={}, traffic="tcp-bulk", count=45, flows=1, rate=None)
    _assert_same(**config)
    result = simulate_fast(RunConfig(**config))[0]
    assert result["engine"] == "fast"
    gro = result["gro"]
    assert gro["skbs_in"] == 45 and gro["skbs_out"] == 1 and gro["aggregates"] == 1
    assert gro["merged"] == {"stolen_head": 2, "frags": 40, "frag_list": 2}
    assert gro["napi_cache_puts"] == 42 and gro["flushes"] == {"napi_complete": 1}
    assert gro["len_per_aggregate"] == 65212 and gro["truesize_per_aggregate"] == 73984
    assert result["truesize_total"] == 73984
    assert result["paths"] == {"page_frag_1k": 1}


def test_gso_frames_go_up_alone():
    # MTU 1400 with guest GSO: a 1514-byte segment (IP packet 1500 > 1400) comes with a GSO header, gso_size
    # 1400 - 20 - 20 = 1360 < its 1448 + 12 bytes of TCP payload, so virtio_net_hdr_to_skb() makes it a GSO skb
    # (SKB_GSO_DODGY, gso_segs 0): dev_gro_receive() marks it flush, and each goes up alone (GRO_NORMAL).
    config = dict(kernel="6.18", driver="virtio_net", options={"mtu": "1400"}, traffic="tcp-bulk", count=300,
                  flows=2, rate=1e6)
    _assert_same(**config)
    gro = simulate_fast(RunConfig(**config))[0]["gro"]
    assert gro["skbs_in"] == gro["skbs_out"] == gro["normal"] == 300 and gro["aggregates"] == 0


def test_build_skb_heads_are_stolen():
    # 40 segments of 400 bytes (frames of 14 + 20 + 32 + 400 = 466 bytes) at 0 ns on 6.12's defaults: in a
    # 1536-byte buffer 1536 - 12 - 466 = 1058 bytes are left, room for skb_shared_info (320), so page_to_skb()
    # builds the skb on the buffer (truesize SKB_TRUESIZE(1536 - 320) = 1216 + 256 + 320 = 1792; the 21st,
    # a block's last buffer of 2048 bytes: 2304).  Its headers are in the head: skb_gro_receive() steals each
    # later segment's head as a frag (it keeps 256).  p holds no frag and steals 17 heads; the 19th segment is
    # chained on the frag_list and steals the next 17 (the 21st among them); the 37th is chained and steals
    # the last 3: 37 stolen, 2 chained.  truesize 1792 + 36 * 1536 + 2048 + 2 * 1792 = 62720; len 52 +
    # 40 * 400 = 16052.
    config = dict(kernel="6.12", driver="virtio_net", options={}, traffic="tcp-bulk:mss=400", count=40, flows=1,
                  rate=None)
    _assert_same(**config)
    result = simulate_fast(RunConfig(**config))[0]
    gro = result["gro"]
    assert gro["merged"] == {"stolen_head": 37, "frags": 0, "frag_list": 2}
    assert gro["len_per_aggregate"] == 16052 and gro["truesize_per_aggregate"] == 62720
    assert result["paths"] == {"build_skb": 1}


VIRTIO_GRO_WORKLOADS = [
    # the defaults: 16 flows over 8 buckets, timestamps changing every ms
    dict(traffic="tcp-bulk", count=6_000),
    # one flow at line rate: aggregates of up to 45 segments, frag_list chains, the budget flush
    dict(traffic="tcp-bulk", count=6_000, flows=1, rate=1e7),
    # no timestamps, 3 flows on 2 CPUs, a slow reader: socket drops, condensed and deferred frees
    dict(traffic="tcp-bulk:ts=0", count=6_000, flows=3, cpus=2, rate=4e6, rcvbuf=200_000, app_rate=2e5),
    # short segments built on their buffers (heads stolen), their aggregates condensed under pressure (the
    # buffer's room and truesize)
    dict(traffic="tcp-bulk:mss=100", count=4_000, flows=2, rate=4e6, rcvbuf=20_000, app_rate=3e5),
    # tiny segments copied whole, a small gro_max_size, many flows
    dict(traffic="tcp-bulk:mss=3", count=3_000, flows=40, rate=5e6, options={"gro_max_size": "3000"}),
    # GSO frames (MTU 1400; jumbo segments at MTU 1500) between the others, DATA_VALID and no checksum
    dict(traffic="tcp-bulk", count=3_000, flows=4, rate=3e6, options={"mtu": "1400", "csum": "valid"}),
    dict(traffic="tcp-bulk:mss=8948", count=2_000, flows=2, rate=2e6, options={"csum": "none"}),
    # jumbo segments without GSO over several buffers, a small ring, the DMA API, faults
    dict(traffic="tcp-bulk:mss=8948", count=2_000, flows=2, rate=2e6,
         options={"mtu": "9000", "guest_gso": "0", "ring": "64", "dma_api": "1"},
         faults=(("slab", 0.01, 1, -1, 0), ("page_alloc", 0.01, 1, -1, 0))),
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("workload", VIRTIO_GRO_WORKLOADS)
def test_virtio_net_tcp_bulk_through_gro(kernel, workload):
    config = dict(kernel=kernel, driver="virtio_net", **{"options": {}, **workload})
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)


@pytest.mark.parametrize("kernel", ["6.1", "6.18", "host"])
@pytest.mark.parametrize("faults", [
    (("slab", 0.05, 1, -1, 0),),
    (("page_alloc", 0.02, 1, -1, 0), ("skb_head", 0.05, 1, -1, 0), ("page_frag", 0.05, 1, -1, 0)),
    (("page_frag", 1.0, 1, 40, 0),),
])
def test_virtio_net_through_gro_with_faults(kernel, faults):
    _assert_same(kernel=kernel, driver="virtio_net", options={"ring": "64"}, traffic="tcp-bulk", count=4_000,
                 flows=2, rate=3e6, faults=faults, cpus=2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(KERNELS),
    options=virtio_options(["1", "3000", "65536", "200000"]),
    mss=st.sampled_from([None, "1", "40", "300", "536", "1448", "1460", "3000", "8948"]),
    ts=st.sampled_from([None, "0", "1"]), flows=st.integers(1, 20), cpus=st.integers(1, 3),
    rate=st.sampled_from([None, 1e5, 1e6, 5e6, 2e7]), count=st.integers(1, 3_000),
    app_rate=st.sampled_from([None, 1e5, 1e6]), rcvbuf=st.sampled_from([212_992, 50_000, 2_000_000]),
    faults=FAULTS,
)
def test_random_virtio_net_tcp_bulk_workloads_give_identical_json(kernel, options, mss, ts, flows, cpus, rate, count,
                                                                  app_rate, rcvbuf, faults):
    args = ",".join(f"{name}={value}" for name, value in (("mss", mss), ("ts", ts)) if value)
    config = dict(kernel=kernel, driver="virtio_net", options=options, traffic="tcp-bulk" + (f":{args}" if args else ""),
                  count=count, flows=flows, cpus=cpus, rate=rate, app_rate=app_rate, rcvbuf=rcvbuf, faults=faults)
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("options", [{}, {"csum": "none"}, {"mtu": "1400"}, {"ring": "8", "csum": "valid"}])
@pytest.mark.parametrize("gap", [1e-6, 1e-8])
def test_a_mixed_tcp_capture_through_gro_on_virtio_net(tmp_path, kernel, options, gap):
    path = _capture(tmp_path / "mixed.pcap", _mixed_tcp_frames(), gap)
    config = dict(kernel=kernel, driver="virtio_net", options=options, traffic=f"pcap:{path}", count=None, rate=None)
    assert unsupported(RunConfig(**config)) is None
    _assert_same(**config)
    _assert_same(**{**config, "cpus": 2, "rcvbuf": 30_000})


@pytest.mark.parametrize("kernel", ["6.1", "6.9", "6.18"])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("options, traffic", [({}, "tcp-bulk"), ({"mtu": "1400"}, "tcp-bulk:mss=300")])
def test_trace_of_tcp_through_gro_on_virtio_net_is_byte_identical(tmp_path, kernel, suffix, options, traffic):
    _assert_same_trace(tmp_path, dict(kernel=kernel, driver="virtio_net", options=options, traffic=traffic,
                                      count=3_000, flows=2, rate=4e6, cpus=2, rcvbuf=100_000, app_rate=3e5), suffix)
