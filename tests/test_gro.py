"""GRO (skbsim.net.gro, skbsim.net.ipv4) against values worked out by hand from the kernel's rules.

x86_64 profiles: SKB_TRUESIZE(x) = x + SKB_DATA_ALIGN(sizeof(struct sk_buff)) 256 + SHINFO_SIZE 320;
MAX_SKB_FRAGS 17; a TCP segment with timestamps has 20 + 32 = 52 header bytes after the Ethernet
header, so an MSS of 1448 makes 1514-byte frames and 1500-byte skbs (len counts from the IP header).
"""

import pytest

from gro_helpers import ACK, CWR, FIN, PSH, BuiltSkbs, segments, tcp_frame
from skbsim.kernel import Kernel
from skbsim.net.gro import (
    GRO_HELD,
    GRO_MERGED,
    GRO_MERGED_FREE,
    GRO_NORMAL,
    napi_complete_done,
    napi_get_frags,
    napi_gro_frags,
    napi_gro_receive,
    netif_napi_del,
)
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.skbuff import kfree_skb, skb_add_rx_frag

RELEASES = ("6.1", "6.9", "6.12", "6.18")
# The flag and IP-ID rules do not depend on the driver: 7.1 builds its skbs with ice's page_pool (libeth) form.
RULE_RELEASES = RELEASES + ("7.1",)


def _gro(kernel, napi, skbs):
    """napi_gro_receive() of each skb inside one poll, then napi_complete_done(): the skbs passed up."""
    up = []
    with kernel.softirq():
        results = [napi_gro_receive(kernel, napi, skb, up.append) for skb in skbs]
        napi_complete_done(kernel, napi, len(skbs), up.append)
    return up, results


def _finish(kernel, built, up):
    built.close(*up)
    kernel.assert_no_leaks()


@pytest.mark.parametrize("release", RELEASES)
def test_45_segments_on_ice_build_skb(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    skbs = built.build(segments(46))
    # ice build_skb: napi_build_skb(hard_start, frame_sz 2048) -> truesize SKB_TRUESIZE(2048 - 320) = 2304,
    # the whole frame in the head (a page fragment: head_frag).
    assert {(s.len, s.truesize, s.head_frag, s.nr_frags) for s in skbs} == {(1500, 2304, True, 0)}
    addrs = [s.addr for s in skbs]
    puts = kernel.cpus[0].napi_alloc_cache.puts
    up, results = _gro(kernel, built.napi, skbs)
    # Segment 1 is held.  Segments 2..18 steal their heads into p's frags (0 + 1 + 0 <= 17 ... 16 + 1 = 17);
    # segment 19 finds 17 + 1 > MAX_SKB_FRAGS and is chained on the frag_list, where segments 20..36 steal
    # their heads into its frags; segment 37 is chained; 38..45 steal into it: 17 + 17 + 8 = 42 stolen,
    # 2 chained.  Segment 46: p->len 1500 + 44 * 1448 = 65212, + 1448 = 66660 >= gro_max_size 65536:
    # -E2BIG, so p is completed and segment 46 held, then napi_complete_done() completes it too.
    assert results == [GRO_HELD] + [GRO_MERGED_FREE] * 17 + [GRO_MERGED] + [GRO_MERGED_FREE] * 17 + \
        [GRO_MERGED] + [GRO_MERGED_FREE] * 8 + [GRO_HELD]
    aggregate, last = up
    assert (aggregate.len, aggregate.data_len) == (65212, 44 * 1448)
    # truesize: p's own 2304; a stolen head adds 2304 - SKB_DATA_ALIGN(sizeof(struct sk_buff)) 256 = 2048;
    # a chained skb adds all of its 2304: 2304 + 42 * 2048 + 2 * 2304 = 92928.
    assert aggregate.truesize == 2304 + 42 * 2048 + 2 * 2304 == 92928
    assert aggregate.nr_frags == 17
    assert [m.addr for m in aggregate.shinfo.frag_list] == [addrs[18], addrs[36]]
    assert [m.nr_frags for m in aggregate.shinfo.frag_list] == [17, 8]
    # a chained skb had its 52 header bytes pulled: 1448 of its own, plus its frags
    assert [m.len for m in aggregate.shinfo.frag_list] == [18 * 1448, 9 * 1448]
    assert (aggregate.shinfo.gso_size, aggregate.shinfo.gso_segs) == (1448, 45)
    assert (last.addr, last.len, last.truesize, last.shinfo.gso_size) == (addrs[45], 1500, 2304, 0)
    # The stolen heads' sk_buffs (segments 2-18, 20-36, 38-45) went to the NAPI skb cache: 46 skbs took
    # 3 bulk refills of 16 and left 2 there; 2 + 42 = 44 < NAPI_SKB_CACHE_SIZE 64, so all are still there.
    stolen = addrs[1:18] + addrs[19:36] + addrs[37:45]
    assert kernel.cpus[0].napi_alloc_cache.puts - puts == 42
    assert set(stolen) <= set(kernel.cpus[0].napi_alloc_cache.skb_cache)
    stats = built.napi.gro.stats
    assert (stats.merged_stolen_head, stats.merged_frag_list, stats.merged_frags) == (42, 2, 0)
    assert stats.flushes == {"gro_max_size": 1, "napi_complete": 1}
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RELEASES)
def test_ice_legacy_moves_frags_and_frees_the_small_heads(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="legacy")
    skbs = built.build(segments(3))
    # legacy-rx: eth_get_headlen() = 14 + 20 + 32 = 66 header bytes copied into a napi_alloc_skb(256) head;
    # 1448 bytes stay in the page as frag 0 (truesize frame_sz 2048).  The head: 256 + NET_SKB_PAD 64 = 320:
    # 6.1/6.9/6.12 a 1K piece (end 1024 - 320 = 704, SKB_TRUESIZE 1280); 6.18 (no 1K cache, 320 <= 384)
    # skbuff_small_head (end SKB_WITH_OVERHEAD(704) = 384, SKB_TRUESIZE 960).
    head = 960 if release == "6.18" else 1280
    assert {(s.len, s.data_len, s.truesize, s.nr_frags) for s in skbs} == {(1500, 1448, head + 2048, 1)}
    up, results = _gro(kernel, built.napi, skbs)
    # headlen 52 <= GRO offset 52: the frags move; the skb keeps SKB_TRUESIZE(end), p gains 2048 each,
    # and the skb (its small head, its sk_buff to the NAPI cache) is freed: GRO_MERGED_FREE.
    assert results == [GRO_HELD, GRO_MERGED_FREE, GRO_MERGED_FREE]
    (p,) = up
    assert (p.len, p.data_len, p.nr_frags, p.truesize) == (1500 + 2 * 1448, 3 * 1448, 3, head + 3 * 2048)
    assert built.napi.gro.stats.merged_frags == 2
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RELEASES)
def test_a_timestamp_change_flushes(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    # TSval 1000 on segments 1-5, 1001 from segment 6 on (the sender's millisecond clock ticked).
    frames = segments(5, ts=1000) + segments(4, seq=1_000_000 + 5 * 1448, ip_id=6, ts=1001)
    up, _ = _gro(kernel, built.napi, built.build(frames))
    # tcp_gro_receive() compares every option byte: segment 6 differs, so p (5 segments) is completed
    # and segment 6 starts the next aggregate (mss reset to 1: it is held, not flushed).
    assert [(s.len, s.shinfo.gso_segs) for s in up] == [(1500 + 4 * 1448, 5), (1500 + 3 * 1448, 4)]
    assert built.napi.gro.stats.flushes == {"tcp_options": 1, "napi_complete": 1}
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RELEASES)
def test_pure_acks_are_never_merged_nor_held(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    # A held data segment, then pure ACKs of the same flow (no payload; a 66-byte frame, no padding).
    frames = segments(1) + [tcp_frame(1_000_000 + 1448, 0, ip_id=2 + i, ack_seq=8 + i) for i in range(3)]
    up, results = _gro(kernel, built.napi, built.build(frames))
    # The first ACK: ack_seq differs -> not merged, p completed (same_flow 0); its own length 0 < mss 1
    # flushes it: GRO_NORMAL.  The next ACKs find nothing held: 0 < 1 again: GRO_NORMAL.
    assert results == [GRO_HELD, GRO_NORMAL, GRO_NORMAL, GRO_NORMAL]
    assert [s.len for s in up] == [1500, 52, 52, 52]
    assert built.napi.gro.stats.held == 1
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RELEASES)
def test_psh_and_a_short_segment_join_then_complete(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    frames = segments(3) + [tcp_frame(1_000_000 + 3 * 1448, 1448, ip_id=4, flags=ACK | PSH)] + \
        segments(2, seq=1_000_000 + 4 * 1448, ip_id=5) + [tcp_frame(1_000_000 + 6 * 1448, 500, ip_id=7)]
    up, _ = _gro(kernel, built.napi, built.build(frames))
    # PSH merges (FIN and PSH are left out of the flag comparison) and then flushes: 4 segments go up.
    # The 500-byte segment merges (500 - 1 < mss 1448) and flushes (500 < mss): 3 segments.
    assert [s.shinfo.gso_segs for s in up] == [4, 3]
    assert up[1].len == 1500 + 1448 + 500
    assert built.napi.gro.stats.flushes == {"psh": 1, "len_below_mss": 1}
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RELEASES)
def test_max_gro_skbs_evicts_the_oldest(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    # Nine flows whose hashes share bucket hash & 7 = 3 (3, 11, 19, ...), one segment each.
    frames = [tcp_frame(5000, 1448, sport=1000 + i, rss_hash=3 + 8 * i) for i in range(9)]
    up, results = _gro(kernel, built.napi, built.build(frames))
    # Eight are held (MAX_GRO_SKBS 8); the ninth finds the bucket full: gro_flush_oldest() completes the
    # first flow's skb and the ninth is held in its place.  napi_complete_done() completes the other 8,
    # oldest first.
    assert results == [GRO_HELD] * 9
    assert [s.len for s in up] == [1500] * 9
    assert [s.hash for s in up] == [3 + 8 * i for i in (0, 1, 2, 3, 4, 5, 6, 7, 8)]
    assert built.napi.gro.stats.flushes == {"max_gro_skbs": 1, "napi_complete": 8}
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RELEASES)
def test_gro_max_size(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb", gro_max_size=20000)
    up, _ = _gro(kernel, built.napi, built.build(segments(14)))
    # p->len + 1448 >= 20000 refuses the merge: 1500 + 1448 k + 1448 < 20000 holds for k <= 11, so p
    # takes 12 merges: 13 segments, len 1500 + 12 * 1448 = 18876; the 14th goes on alone.
    assert [(s.len, s.shinfo.gso_segs) for s in up] == [(18876, 13), (1500, 0)]
    _finish(kernel, built, up)


@pytest.mark.parametrize("release, segs", [("6.1", 45), ("6.9", 90), ("6.12", 90), ("6.18", 90)])
def test_big_tcp_for_ipv4_from_6_3(release, segs):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb", gro_max_size=131072, ring=256)
    up, _ = _gro(kernel, built.napi, built.build(segments(92)))
    # gro_max_size 131072: 6.9+ (gro_ipv4_max_size, IPv4 BIG TCP) merge while 1500 + 1448 (k + 1) < 131072,
    # k <= 88: 89 merges, 90 segments, len 1500 + 89 * 1448 = 130372.  6.1 applies the limit to IPv4 too
    # but refuses IPv4 from GRO_LEGACY_MAX_SIZE 65536 on: 45 segments, as with the default.
    assert up[0].shinfo.gso_segs == segs
    assert up[0].len == 1500 + (segs - 1) * 1448
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RULE_RELEASES)
def test_cwr(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    # Segment 1 carries CWR, 2-3 do not; then a segment with CWR.
    frames = [tcp_frame(1_000_000, 1448, ip_id=1, flags=ACK | CWR)] + segments(2, seq=1_000_000 + 1448, ip_id=2) + \
        [tcp_frame(1_000_000 + 3 * 1448, 1448, ip_id=4, flags=ACK | CWR)]
    up, _ = _gro(kernel, built.napi, built.build(frames))
    if release == "7.1":
        # 'changed': a set CWR no longer completes anything; segment 2's CWR differs from the held one's:
        # p completed alone; 2 and 3 merge; segment 4's CWR differs from theirs: 2-3 completed, 4 held alone.
        assert [s.shinfo.gso_segs for s in up] == [0, 2, 0]
    elif release == "6.18":
        # 'set_or_changed': segment 2's CWR differs from the held one's: p completed alone; 2 and 3 merge;
        # segment 4 has CWR set: 2-3 completed; 4 is held alone.
        assert [s.shinfo.gso_segs for s in up] == [0, 2, 0]
    else:
        # 'set': a different CWR is ignored, so 1-3 merge; segment 4 with CWR set completes them.
        assert [s.shinfo.gso_segs for s in up] == [3, 0]
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RULE_RELEASES)
def test_cwr_on_every_segment(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    frames = [tcp_frame(1_000_000 + i * 1448, 1448, ip_id=1 + i, flags=ACK | CWR) for i in range(4)]
    up, _ = _gro(kernel, built.napi, built.build(frames))
    if release == "7.1":
        # 'changed': the flag words are equal and a set CWR alone flushes nothing: all four merge.
        assert [s.shinfo.gso_segs for s in up] == [4]
    else:
        # 'set' and 'set_or_changed': each segment with CWR completes the held one and is held alone.
        assert [s.shinfo.gso_segs for s in up] == [0, 0, 0, 0]
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RULE_RELEASES)
def test_a_fixed_ip_id_without_df(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    # Four segments, DF clear, every IP ID 77.
    frames = [tcp_frame(1_000_000 + i * 1448, 1448, ip_id=77, df=False) for i in range(4)]
    up, _ = _gro(kernel, built.napi, built.build(frames))
    if release in ("6.18", "7.1"):
        # 'any': the second packet's ID offset 0 marks the flow fixed-ID; all four merge.
        assert [s.shinfo.gso_segs for s in up] == [4]
    else:
        # 'df_only': without DF the ID must go up by the count each time: every pair differs.
        assert [s.shinfo.gso_segs for s in up] == [0, 0, 0, 0]
        assert built.napi.gro.stats.flushes == {"ip_header": 3, "napi_complete": 1}
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RELEASES)
def test_ip_checks_ttl_and_incrementing_ids(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    # 1-2 incrementing IDs (DF), 3 skips an ID, 4-5 follow 3, 6 has another TTL.
    frames = [tcp_frame(1_000_000 + i * 1448, 1448, ip_id=ip_id, ttl=ttl)
              for i, (ip_id, ttl) in enumerate([(10, 64), (11, 64), (13, 64), (14, 64), (15, 64), (16, 63)])]
    up, _ = _gro(kernel, built.napi, built.build(frames))
    assert [s.shinfo.gso_segs for s in up] == [2, 3, 0]
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RELEASES)
def test_padding_and_udp_go_up_alone(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    from skbsim.traffic import parse_traffic

    # a 10-byte segment (IP tot_len 20 + 32 + 10 = 62) in an 80-byte frame: 66 bytes after the Ethernet
    # header, so the total length is not the skb's (u16)(tot_len ^ gro_len) != 0: flush
    frames = segments(1) + [tcp_frame(1_000_000 + 1448, 10, ip_id=2, pad_to=80)] + \
        list(parse_traffic("fixed:1514", count=2, flows=1))
    up, results = _gro(kernel, built.napi, built.build(frames))
    # The padded segment cannot merge (the skb is marked flush: -E2BIG), p is completed, and it goes up
    # alone; UDP without a GRO socket: flushed, GRO_NORMAL.
    assert results == [GRO_HELD, GRO_NORMAL, GRO_NORMAL, GRO_NORMAL]
    assert [s.len for s in up] == [1500, 66, 1500, 1500]
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RELEASES)
def test_gro_off_passes_everything_up_as_built(release):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, rx="build_skb")
    skbs = built.build(segments(5))
    built.dev.features = 0  # ethtool -K eth0 gro off
    up, results = _gro(kernel, built.napi, skbs)
    assert results == [GRO_NORMAL] * 5 and up == skbs
    assert built.napi.gro.stats.tcp_segments == 0
    _finish(kernel, built, up)


def _frags_skb(kernel, napi, frame, page, offset):
    """A frags driver's receive: napi_get_frags(), the whole frame as page frag 0 (truesize 2048)."""
    skb = napi_get_frags(kernel, napi)
    kernel.pages.get_page(page)
    skb_add_rx_frag(skb, 0, page, offset, frame.length, 2048)
    skb.header_bytes = frame.header
    skb.hash = frame.rss_hash
    return skb


@pytest.mark.parametrize("release, head_truesize", [("6.1", 1280), ("6.9", 1280), ("6.12", 1280), ("6.18", 960)])
def test_napi_gro_frags_reuses_one_skb_for_a_whole_aggregate(release, head_truesize):
    kernel = Kernel(release)
    dev = net_device("eth0")
    napi = napi_struct(dev)
    # napi_get_frags(): napi_alloc_skb(GRO_MAX_HEAD 304): 304 + 64 = 368; 6.1-6.12 a 1K piece (end 704,
    # SKB_TRUESIZE 1280), 6.18 skbuff_small_head (SKB_HEAD_ALIGN(368) = 704: end 384, SKB_TRUESIZE 960).
    with kernel.softirq():
        page = kernel.pages.alloc_pages(0, 0, "test")
        up, used, results = [], [], []
        for i, frame in enumerate(segments(45)):
            skb = _frags_skb(kernel, napi, frame, page, (i % 2) * 2048)
            used.append(skb.addr)
            results.append(napi_gro_frags(kernel, napi, up.append))
        napi_complete_done(kernel, napi, 45, up.append)
    # Segment 1 (skb A) is held: its 52 header bytes are pulled out of the frag.  Segment 2's new skb B
    # has no linear data after the Ethernet header: its frag moves to p, B keeps SKB_TRUESIZE(end) and
    # napi_reuse_skb() makes it napi->skb again, so segments 3..17 come in B too.  Segment 18 finds p at
    # 17 frags: B is chained whole (headers eaten from its frag); C serves 19..34 (into B's frags),
    # 35 chains C, D serves 36..45.
    a, b, c, d = used[0], used[1], used[18], used[35]
    assert used == [a] + [b] * 17 + [c] * 17 + [d] * 10
    assert results.count(GRO_MERGED_FREE) == 42 and results.count(GRO_HELD) == 1
    (p,) = up
    assert p.addr == a and [m.addr for m in p.shinfo.frag_list] == [b, c]
    assert (p.len, p.shinfo.gso_segs) == (1500 + 44 * 1448, 45)
    # truesize: A, B and C each bring SKB_TRUESIZE(end) + 2048; the 42 frags-moved segments 2048 each.
    assert p.truesize == 3 * (head_truesize + 2048) + 42 * 2048
    assert napi.gro.stats.napi_skb_reused == 42 and napi.gro.stats.napi_cache_puts == 0
    assert napi.skb is not None and napi.skb.addr == d and napi.skb.len == 0
    with kernel.softirq():
        kfree_skb(kernel, p)
        netif_napi_del(kernel, napi)
        kernel.pages.put_page(page)
    kernel.assert_no_leaks()


def test_fin_is_never_held():
    kernel = Kernel("6.18")
    built = BuiltSkbs(kernel, rx="build_skb")
    frames = segments(2) + [tcp_frame(1_000_000 + 2 * 1448, 100, ip_id=3, flags=ACK | FIN)]
    up, results = _gro(kernel, built.napi, built.build(frames))
    # FIN merges (its 100 bytes fit) and completes the aggregate at once; FIN survives on p's header.
    assert results[2] == GRO_MERGED_FREE
    assert [s.shinfo.gso_segs for s in up] == [3]
    assert up[0].cb.th.flags & 0x00010000
    _finish(kernel, built, up)


# -- properties ---------------------------------------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_segment = st.tuples(
    st.integers(0, 3),                      # flow
    st.sampled_from([1448, 1448, 1448, 700, 1, 0]),  # payload (0: a pure ACK)
    st.sampled_from([ACK, ACK, ACK, ACK | PSH, ACK | CWR]),
    st.booleans(),                          # the sender's clock ticks before this segment
    st.booleans(),                          # a sequence gap before this segment
)


@settings(max_examples=60, deadline=None)
@given(release=st.sampled_from(RELEASES), mode=st.sampled_from(["build_skb", "legacy", "copybreak"]),
       stream=st.lists(_segment, min_size=1, max_size=60), polls=st.integers(1, 3))
def test_merging_conserves_bytes_segments_and_truesize(release, mode, stream, polls):
    kernel = Kernel(release)
    built = BuiltSkbs(kernel, "copybreak", copybreak=256) if mode == "copybreak" else BuiltSkbs(kernel, rx=mode)
    seq = [1000 * (i + 1) for i in range(4)]
    ip_id = [100 * i for i in range(4)]
    clock = 5000
    frames = []
    for flow, payload, flags, tick, gap in stream:
        clock += tick
        seq[flow] += 7 if gap else 0
        frames.append(tcp_frame(seq[flow], payload, ip_id=ip_id[flow], flags=flags, ts=clock, sport=2000 + flow,
                                rss_hash=flow * 5))
        seq[flow] += payload
        ip_id[flow] += 1
    skbs = built.build(frames)
    before = [(skb.len, skb.truesize) for skb in skbs]
    up = []
    per_poll = -(-len(skbs) // polls)
    results = []
    with kernel.softirq():
        for start in range(0, len(skbs), per_poll):
            batch = skbs[start:start + per_poll]
            results += [napi_gro_receive(kernel, built.napi, skb, up.append) for skb in batch]
            napi_complete_done(kernel, built.napi, len(batch), up.append)
    merged = [i for i, r in enumerate(results) if r in (GRO_MERGED, GRO_MERGED_FREE)]
    # Every segment is in exactly one skb that went up.
    assert sum(max(1, s.shinfo.gso_segs) for s in up) == len(skbs)
    assert len(up) == len(skbs) - len(merged)
    # Bytes: a merged segment brings its payload only (its 20 + 32 header bytes stay behind).
    assert sum(s.len for s in up) == sum(length for length, _ in before) - 52 * len(merged)
    # truesize: what went up holds all that came in, except what merged skbs kept: a stolen head's
    # sk_buff (256) or a frags-moved skb's SKB_TRUESIZE(end), both freed by GRO.
    kept = sum(skbs[i].truesize for i in merged if results[i] == GRO_MERGED_FREE)
    assert sum(s.truesize for s in up) == sum(ts for _, ts in before) - kept
    stats = built.napi.gro.stats
    assert stats.merged == len(merged) and stats.received == len(skbs)
    assert stats.truesize_up == sum(s.truesize for s in up)
    _finish(kernel, built, up)


@pytest.mark.parametrize("release", RELEASES)
def test_a_poll_that_uses_its_budget_flushes_gro(release):
    from skbsim.drivers import ice

    kernel = Kernel(release)
    dev = net_device("eth0")
    napi = napi_struct(dev)
    with kernel.softirq():
        ring = ice.ice_open_queue(kernel, dev, napi, {"rx": "build_skb"})
    for frame in segments(70):
        assert ice.ice_nic_receive(kernel, ring, frame)
    first, second = [], []
    # The first poll takes its budget of 64 frames: segment 46 ends the first aggregate (gro_max_size),
    # 46..64 (19 segments) are held when the budget runs out, and __napi_poll() completes them (HZ 250
    # < 1000: everything, not only what is older than this jiffy).  The second poll does the last 6 and
    # completes NAPI.
    assert ice.DRIVER.poll(kernel, ring, 64, first.append) == 64
    assert ice.DRIVER.poll(kernel, ring, 64, second.append) == 6
    assert [s.shinfo.gso_segs for s in first] == [45, 19] and [s.shinfo.gso_segs for s in second] == [6]
    assert napi.gro.stats.flushes == {"gro_max_size": 1, "budget": 1, "napi_complete": 1}
    with kernel.softirq():
        for skb in first + second:
            kfree_skb(kernel, skb)
        ice.ice_clean_rx_ring(kernel, ring)
    kernel.assert_no_leaks()


def test_gso_skbs_from_a_driver():
    # What virtio_net hands up for a GSO packet from the host: gso_size and gso_type set by
    # virtio_net_hdr_to_skb(), SKB_GSO_DODGY, gso_segs 0.  GRO only merges TCP GSO skbs that are not
    # DODGY; their count is gso_segs, and a following segment must match their gso_size.
    from skbsim.net.skbuff import SKB_GSO_DODGY, SKB_GSO_TCPV4

    kernel = Kernel("6.18")
    built = BuiltSkbs(kernel, rx="build_skb", mtu=9000)
    big, after, dodgy = built.build([tcp_frame(1_000_000, 3 * 1448, ip_id=1), tcp_frame(1_000_000 + 3 * 1448, 1448, ip_id=4),
                                     tcp_frame(2_000_000, 2 * 1448, ip_id=9, sport=41000)])
    big.shinfo.gso_size, big.shinfo.gso_type, big.shinfo.gso_segs = 1448, SKB_GSO_TCPV4, 3
    dodgy.shinfo.gso_size, dodgy.shinfo.gso_type = 1448, SKB_GSO_TCPV4 | SKB_GSO_DODGY
    up, results = _gro(kernel, built.napi, [big, after, dodgy])
    # big is held with count 3 and keeps its gso_size; after merges (1448 - 1 < 1448, seq right after
    # big's 3 * 1448 bytes, IP ID 1 + count 3): 4 segments; the DODGY one goes up alone.
    assert results == [GRO_HELD, GRO_MERGED_FREE, GRO_NORMAL]
    assert [(s.len, s.shinfo.gso_segs) for s in up] == [(52 + 2 * 1448, 0), (52 + 4 * 1448, 4)]
    _finish(kernel, built, up)
