"""The TCP model's release rules on the same inputs: autotuning formulas, the admission test, the
backlog limit with cubic and bbr, the window selection - against hand-derived numbers."""

import pytest

from skbsim.net.ipv4.tcp_input import (
    can_ingest_value,
    comp_sack_delay_ns,
    grow_window_increment,
    rcvbuf_grow_value,
    rcvbuf_rcvmem,
    rcvbuf_space_from_win,
    rcvmem_per_segment,
    rcv_rtt_update_value,
    rule_code,
    scaling_ratio_of,
    win_from_space_adv,
    win_from_space_ratio,
)
from skbsim.net.ipv4.tcp_ipv4 import tcp_backlog_limit
from skbsim.net.ipv4.tcp_output import select_window_values, tcp_select_initial_window
from skbsim.profile import load_profile
from skbsim.tcp_session import play
from skbsim.tcp_steps import parse_steps

# -- autotuning: one RTT in which copied = 30000 bytes were read after rcvq_space.space = 14600, advmss
# 1460, tcp_rmem[2] 6 MiB, no out-of-order data.
COPIED, SPACE, ADVMSS, RMEM2 = 30000, 14600, 1460, 6291456


def test_autotuning_6_1_rcvmem():
    # rcvwin = 2 * 30000 + 16 * 1460 = 83360; grow = 83360 * 15400 / 14600 = 87927; rcvwin += 2 * 87927
    # = 259214.  rcvmem: SKB_TRUESIZE(1460 + 320) = 1780 + 576 = 2356, whose window worth (half) must reach
    # 1460: 2356 + 5 * 128 = 2996 (2868 gives 1434).  rcvbuf = 259214 / 1460 = 177 segments * 2996 = 530292.
    rcvmem = rcvmem_per_segment(2356, ADVMSS, 1)
    assert rcvmem == 2996
    assert rcvbuf_rcvmem(COPIED, SPACE, ADVMSS, rcvmem, RMEM2) == 530292


def test_autotuning_6_9_space_from_win():
    # The same rcvwin 259214, as memory: tcp_space_from_win() = 259214 * 256 / ratio:
    # ratio 128 -> 518428; ratio 65 (6.9's default) -> 66358784 / 65 = 1020904.
    assert rcvbuf_space_from_win(COPIED, SPACE, ADVMSS, 128, RMEM2) == 518428
    assert rcvbuf_space_from_win(COPIED, SPACE, ADVMSS, 65, RMEM2) == 1020904


def test_autotuning_6_12_inq_aware():
    # 6.12.y: 5000 bytes still queued do not count: copied 25000; rcvwin = 50000 + 23360 = 73360;
    # grow = 73360 * 10400 / 14600 = 52256; rcvwin = 73360 + 104512 = 177872; * 256 / 128 = 355744.
    assert rcvbuf_space_from_win(COPIED - 5000, SPACE, ADVMSS, 128, RMEM2) == 355744


def test_autotuning_6_16_6_17_double():
    # 6.16 'tcp: fix sk_rcvbuf overshoot': rcvwin = 2 * 30000 = 60000 -> 120000 at ratio 128; with an
    # out-of-order queue reaching 4000 bytes past rcv_nxt: 64000 -> 128000.
    assert rcvbuf_grow_value(rule_code("tcp_rcv_space_adjust", "double"), COPIED, SPACE, 0, 128, RMEM2, 0, 1000) == 120000
    assert rcvbuf_grow_value(rule_code("tcp_rcv_space_adjust", "double"), COPIED, SPACE, 4000, 128, RMEM2, 0, 1000) == 128000


def test_autotuning_6_18_rcvbuf_grow():
    # 6.18: rcvwin = 60000; grow = 60000 * 15400 / 14600 = 63287; rcvwin += 2 * 63287 = 186574 -> 373148.
    assert rcvbuf_grow_value(rule_code("tcp_rcv_space_adjust", "rcvbuf_grow"), COPIED, SPACE, 0, 128, RMEM2, 0, 1000) == 373148
    # 6.19's low-RTT form: RTT 500 us < 1000: grow = 60000 * 500 / 1000 = 30000 -> 90000 -> 180000;
    # RTT 2000 us: grow = 120000 * 15400 / 14600 = 126575 -> 186575 -> 373150.
    assert rcvbuf_grow_value(rule_code("tcp_rcv_space_adjust", "rcvbuf_grow_low_rtt"), COPIED, SPACE, 0, 128, RMEM2, 500, 1000) == 180000
    assert rcvbuf_grow_value(rule_code("tcp_rcv_space_adjust", "rcvbuf_grow_low_rtt"), COPIED, SPACE, 0, 128, RMEM2, 2000, 1000) == 373150
    # At most tcp_rmem[2].
    assert rcvbuf_grow_value(rule_code("tcp_rcv_space_adjust", "rcvbuf_grow"), 10_000_000, 1000, 0, 128, RMEM2, 0, 1000) == RMEM2


@pytest.mark.parametrize("kernel,k,rcvbuf,clamp", [
    # readeach send:1000x90 (tun): each segment is read at once.  Without timestamps the receive RTT is the
    # time one window of data took: the first segment (rcv_nxt 1000) starts a measure that ends when
    # rcv_nxt passes 1000 + rcv_wnd (the initial 64240; 6.9: 32120): at segment k = 66 (34), k - 1 ms
    # later: rtt_us = 8 * 65000 (33000).  The read right after it is the first tcp_rcv_space_adjust() to
    # act: time since the handshake (2 ms before segment 1) 67000 >= 65000 us; copied = 66000 (34000) bytes
    # > rcvq_space 14600.  Ratio 1000 * 256 / 2304 = 111 (6.6+).
    # 6.18 tcp_rcvbuf_grow(66000): rcvwin 132000 + 2 * (132000 * 51400 / 14600 = 464712) = 1061424;
    #   rcvbuf = 1061424 * 256 / 111 = 2447968; clamp 2447968 * 111 >> 8 = 1061423.
    ("6.18", 66, 2447968, 1061423),
    # 6.12: rcvwin 2 * 66000 + 16 * 1460 = 155360, + 2 * (155360 * 51400 / 14600 = 546952) = 1249264;
    #   rcvbuf = 1249264 * 256 / 111 = 2881185; clamp 1249263.
    ("6.12", 66, 2881185, 1249263),
    # 6.1: the same rcvwin 1249264 / 1460 = 855 segments of rcvmem 2996: 2561580; clamp (half) 1280790.
    ("6.1", 66, 2561580, 1280790),
    # 6.9: copied 34000: rcvwin 68000 + 23360 = 91360, + 2 * (91360 * 19400 / 14600 = 121396) = 334152;
    #   rcvbuf = 334152 * 256 / 111 = 770656; clamp 334151.
    ("6.9", 34, 770656, 334151),
    # 7.1 ('rcvbuf_grow_low_rtt'): rtt 65000 us is not below tcp_rcvbuf_low_rtt 1000, so the slow-start
    #   growth: 264000 * 51400 / 14600 = 929424 (6.18 doubled 464712: the same here); rcvwin 1061424, the
    #   same rcvbuf and clamp.  Its tcp_rcv_space_adjust() keeps the segment's tcp_mstamp, which readeach
    #   reads in the same instant: the same k.
    ("7.1", 66, 2447968, 1061423),
])
def test_autotuning_in_a_scenario(kernel, k, rcvbuf, clamp):
    steps = play(kernel, "tun", {}, parse_steps(["readeach", "send:1000x90"]))["steps"]
    before, read = steps[2 * k - 2], steps[2 * k]
    assert (before["action"], read["action"]) == ("read", "read")
    assert before["mem"]["rcvbuf"] == 131072
    assert read["mem"]["rcvbuf"] == rcvbuf
    assert read["info"]["window_clamp"] == clamp
    assert read["info"]["rcv_space"] == k * 1000


def test_sack_compression_delay():
    # 1 ms at most (tcp_comp_sack_delay_ns).  Receive RTT 100 us (rtt_us 800 in 1/8 us):
    #   up to 6.18: 800 * 125 / 20 = 5000 ns (5 %); 7.1: (800 + 200) * 33 = 33000 ns (33 %).
    assert comp_sack_delay_ns(False, 800, 33, 1_000_000) == 5000
    assert comp_sack_delay_ns(True, 800, 33, 1_000_000) == 33000
    # RTT 10 ms (80000): 500000 ns against (80000 + 20000) * 33 = 3.3 ms, capped at 1 ms.
    assert comp_sack_delay_ns(False, 80000, 33, 1_000_000) == 500000
    assert comp_sack_delay_ns(True, 80000, 33, 1_000_000) == 1_000_000
    # The 7.1 profile takes the percent rule, 6.18 the 5 % one.
    assert load_profile("7.1").feature("tcp_comp_sack_delay") == "rtt_percent"
    assert load_profile("6.18").feature("tcp_comp_sack_delay") == "rtt_div_20"


# -- the receive RTT


@pytest.mark.parametrize("rule,old,sample,win_dep,empty,expected", [
    ("smoothed", 0, 500, True, True, 4000),        # first sample: 8 * 500
    ("smoothed", 4000, 400, True, True, 3200),     # window-based, smaller: 8 * 400
    ("smoothed", 4000, 600, True, True, 4000),     # window-based, larger: kept
    ("smoothed", 4000, 600, False, True, 4100),    # timestamps: 4000 + 600 - 4000 / 8
    ("min", 4000, 600, False, False, 4100),        # larger timestamp sample: 4000 - 500 + 600
    ("min", 4000, 600, True, True, 4000),          # larger window sample: ignored
    ("min_idle", 4000, 600, False, False, 4000),   # larger timestamp sample with data queued: ignored
    ("min_idle", 4000, 600, False, True, 4100),
    ("min_idle", 4000, 300, False, False, 2400),   # smaller: always taken
])
def test_rcv_rtt_update(rule, old, sample, win_dep, empty, expected):
    assert rcv_rtt_update_value(rule_code("tcp_rcv_rtt_update", rule), old, sample, win_dep, empty) == expected


# -- window arithmetic


def test_win_from_space_and_ratio():
    # 6.1 with tcp_adv_win_scale 1: 131072 - 65536; negative spaces stay negative (arithmetic shifts).
    assert win_from_space_adv(1, 131072) == 65536
    assert win_from_space_adv(1, -256) == -128
    assert win_from_space_ratio(128, 131072) == 65536
    assert win_from_space_ratio(1, -256) == -1
    # 1460 * 256 / 2304 = 162.2; 1000 * 256 / 131328 = 1.9; a ratio of 0 becomes 1.
    assert scaling_ratio_of(1460, 2304) == 162
    assert scaling_ratio_of(1000, 131328) == 1
    assert scaling_ratio_of(10, 131328) == 1


def test_select_initial_window_u16_cap():
    # A full space of 200000 with MSS 1460: 136 * 1460 = 198560; up to 6.10 the initial window is
    # capped at 65535, from 6.11 it is 198560.  wscale from tcp_rmem[2] 6 MiB: 7.
    assert tcp_select_initial_window(200000, 1460, 0, True, 6291456, 212992, True) == (65535, 65535 << 7, 7)
    assert tcp_select_initial_window(200000, 1460, 0, True, 6291456, 212992, False) == (198560, 65535 << 7, 7)
    # A clamp limits the scale: clamp 8192 -> ilog2(8192) - 15 < 0 -> 0; the clamp stays 8192.
    assert tcp_select_initial_window(8192, 1460, 8192, True, 33554432, 212992, False) == (7300, 8192, 0)


def test_select_window_rules():
    # Rule 0: free 50000, rcv_ssthresh 40000, wscale 7: ALIGN(40000, 128) = 40064.
    assert select_window_values(1460, 50000, 65536, 64076, 40000, 7, 60000) == (40064, 0)
    # Rule 2: free 20000 < full / 2 = 32038 and... 20000 >= 65536 / 16 and >= mss: not zero: rounded down
    # to 2^7 (19968), then at most rcv_ssthresh, up to 2^7 again: 19968.
    assert select_window_values(1460, 20000, 65536, 64076, 40000, 7, 60000) == (19968, 0)
    # free 1000 < mss 1460 under pressure: zero.
    assert select_window_values(1460, 1000, 65536, 64076, 40000, 7, 60000) == (0, 2)
    # No scaling: the current window 60000 is kept while free - mss < 60000 <= free.
    assert select_window_values(1460, 61000, 65536, 64076, 64076, 0, 60000) == (60000, 1)
    # ... and rounded down to the MSS when above the free space: 50000 -> 34 * 1460 = 49640.
    assert select_window_values(1460, 50000, 65536, 64076, 64076, 0, 60000) == (49640, 1)


def test_grow_window_increment():
    # An skb worth no more window than its len: 2 advmss.  A fat one (131328 at ratio 1 -> 513 of window
    # for len 1000): 513 <= 1000 -> 2 advmss too.  At ratio 128 it is worth 65664 > 1000: halve it (32832)
    # and tcp_rmem[2]'s worth (3145728 / 2 = 1572864) while rcv_ssthresh 64076 is at most the latter:
    # (16416, 786432), (8208, 393216), (4104, 196608), (2052, 98304), (1026, 49152): 64076 > 49152 ends
    # the loop before 1026 gets to 1000: no growth.
    assert grow_window_increment(1457, 1460, 3145728, 64076, 1460, 1460) == 2920
    assert grow_window_increment(513, 1000, 3145728, 64076, 1460, 1000) == 2920
    assert grow_window_increment(65664, 1000, 3145728, 64076, 1460, 1000) == 0
    # With a small rcv_ssthresh (1000) the halvings reach 1000 bytes' worth: 2 * rcv_mss.
    assert grow_window_increment(65664, 1000, 3145728, 1000, 1460, 536) == 1072


# -- admission: tcp_can_ingest()


@pytest.mark.parametrize("rule,rmem,expected", [
    # sk_rcvbuf 17628, an skb of truesize 2304 and len 1000
    ("rmem", 16128, True),                  # 16128 <= 17628
    ("rmem_plus_len", 16128, True),         # 17128 <= 17628
    ("rmem_plus_truesize", 16128, False),   # 18432 > 17628
    ("rmem", 17628, True),
    ("rmem", 17629, False),
])
def test_can_ingest(rule, rmem, expected):
    assert can_ingest_value(rule_code("tcp_rcvbuf_admission", rule), rmem, 17628, 2304, 1000) is expected


def _profile(**features):
    return load_profile("6.18").derive(origin="test", features=features, name="6.18-variant")


def _play_profile(profile, steps, **kw):
    import skbsim.tcp_session as session

    original = session.load_profile
    session.load_profile = lambda spec, config=None: profile
    try:
        return play("6.18", "tun", {}, parse_steps(steps), **kw)
    finally:
        session.load_profile = original


@pytest.mark.parametrize("rule,so_rcvbuf,sequence,verdict", [
    # SO_RCVBUF 8814 -> sk_rcvbuf 17628.  1000-byte segments of truesize 2304 (kmalloc-2k heads, too little
    # tailroom to coalesce).  Forward allocation makes segments 1, 2, 4, 6 and 8 take the slow path
    # (truesize > sk_forward_alloc: 0, 1792, 1280, 768, 256 left).  At the 8th, sk_rmem_alloc is 7 * 2304 =
    # 16128: the admission rules of the table above decide.  A refused segment: prune (nothing to
    # collapse: 2304 is worth 999 of window for 1000 bytes, not bloated), RcvPruned, dropped PROTO_MEM with
    # a zero-window ACK.
    ("rmem", 8814, "end_seq", "queued"),
    ("rmem_plus_len", 8814, "end_seq", "queued"),
    ("rmem_plus_truesize", 8814, "end_seq", "dropped:PROTO_MEM"),
    # SO_RCVBUF 8314 -> 16628: 16128 + 1000 > 16628.  The offered right edge (5 * 1460 = 7300) is below
    # the 8th segment's end (8000): tcp_sequence_check 'seq' (before 6.17) lets the fast path send it to
    # tcp_data_queue(), where 300 bytes of window are left.
    ("rmem", 8314, "seq", "queued"),
    ("rmem_plus_len", 8314, "seq", "dropped:PROTO_MEM"),
])
def test_admission_rule_switch(rule, so_rcvbuf, sequence, verdict):
    profile = _profile(tcp_rcvbuf_admission=rule, tcp_sequence_check=sequence)
    steps = _play_profile(profile, ["send:1000x8"], so_rcvbuf=so_rcvbuf)["steps"]
    assert [r["route"] for r in steps] == ["slow", "slow", "fast", "slow", "fast", "slow", "fast", "slow"]
    assert steps[6]["mem"]["rmem_alloc"] == 16128
    eighth = steps[7]
    assert eighth["verdict"] == verdict
    if verdict.startswith("dropped"):
        counters = eighth["counters"]
        assert (counters["PruneCalled"], counters["RcvPruned"], counters["TCPRcvQDrop"]) == (1, 1, 1)
        assert eighth["acks"] == [[7000, 0]]
        assert eighth["mem"]["rmem_alloc"] == 16128
    else:
        assert eighth["mem"]["rmem_alloc"] == 18432


# -- the backlog limit


def test_backlog_limit_formula():
    # 6.10+: 2 * 131072 + 87040 / 2 + 65536 = 371200 (cubic), + 130560 / 2 = 392960 (bbr).
    # 6.9: 131072 + 43520 + 65536 = 240128; with bbr 261888.
    assert tcp_backlog_limit("twice_rcvbuf_half_sndbuf", 131072, 87040) == 371200
    assert tcp_backlog_limit("twice_rcvbuf_half_sndbuf", 131072, 130560) == 392960
    assert tcp_backlog_limit("rcvbuf_half_sndbuf", 131072, 87040) == 240128
    assert tcp_backlog_limit("rcvbuf_half_sndbuf", 131072, 130560) == 261888


@pytest.mark.parametrize("kernel,cc,queued", [
    # hold; send:1000x200; release.  Each segment (truesize 2304, not condensable: no frags; no room in
    # the backlog's tail to coalesce) adds 2304 to sk_backlog.len; one is refused once backlog + rmem (0)
    # already exceeds the limit: n queued with 2304 * n > limit >= 2304 * (n - 1).
    ("6.18", "cubic", 162),   # 371200 / 2304 = 161.1 -> 162 (373248 > 371200)
    ("6.18", "bbr", 171),     # 392960 / 2304 = 170.6 -> 171
    ("6.9", "cubic", 105),    # 240128 / 2304 = 104.2 -> 105
    ("6.9", "bbr", 114),      # 261888 / 2304 = 113.7 -> 114
    ("6.1", "cubic", 162),    # 6.1.y has the 6.10 limit
])
def test_backlog_limit(kernel, cc, queued):
    steps = play(kernel, "tun", {}, parse_steps(["hold", "send:1000x200", "release"]), cc=cc)["steps"]
    sends = steps[1:201]
    assert all(r["route"] == "backlog" for r in sends)
    verdicts = [r["verdict"] for r in sends]
    assert verdicts == ["queued"] * queued + ["dropped:SOCKET_BACKLOG"] * (200 - queued)
    assert sends[queued - 1]["mem"]["backlog"] == 2304 * queued
    assert sends[-1]["counters"]["TCPBacklogDrop"] == 200 - queued
    assert sends[-1]["mem"]["drops"] == 200 - queued
    # release_sock() runs the backlog and zeroes sk_backlog.len.
    assert steps[201]["mem"]["backlog"] == 0
