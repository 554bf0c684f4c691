"""Memory pressure in the TCP model, per release, against hand-derived numbers: the fast path's
overshoot, prune and collapse, the zero window, the admission rule, the backlog limit.

x86_64 built-ins, tun with blocking writes.  A 100-byte segment is a 154-byte frame: tun_alloc_skb()
-> alloc_skb(64 + 154 = 218): SKB_HEAD_ALIGN(218) = 256 + 320 = 576, so
  6.1:  kmalloc-1k, end 704, truesize 704 + 576 = 1280, tailroom after the frame 704 - 218 = 486;
  6.9:  skbuff_small_head of 640, end 320, truesize 896, tailroom 102;
  6.12, 6.18: skbuff_small_head of 704, end 384, truesize 960, tailroom 166;
so an skb's tailroom takes the next 100-byte segment (tcp_try_coalesce(), delta 0) 4, 1 and 1 times.

SO_RCVBUF 3000 -> sk_rcvbuf 6000 (locked), full space 3000 (6.9: 6000 * 65 >> 8 = 1523), rcv_wnd
2 * 1460 = 2920 (6.9: 1460), wscale 0, window clamp max(2920, 3000 - 1460) = 2920 (6.9: 1523),
rcv_ssthresh 2920 (6.9: 1460), rcv_mss 536.
"""


from skbsim.tcp_session import play
from skbsim.tcp_steps import parse_steps


def run(kernel, *steps, **kw):
    return play(kernel, "tun", {}, parse_steps(list(steps)), **kw)


def _fields(record):
    return (record["route"], record["verdict"], record["mem"]["rmem_alloc"], record["mem"]["fwd_alloc"])


def test_prune_and_collapse_6_18():
    """send:100x16 at SO_RCVBUF 3000 on 6.18 (6.12 is the same, see test_prune_and_collapse_6_12).

    Truesize 960.  S1 slow (one page: fwd 4096 - 960 = 3136); then the fast path while truesize <=
    fwd, each odd segment a new skb, each even one coalesced into its tailroom:
      S3 rmem 1920 fwd 2176, S5 2880/1216, S7 3840/256; S8 slow: 704 more -> a page, fwd 4352,
      coalesced; S9 4800/3392 (above sk_rcvbuf 6000? not yet), S11 5760/2432, S13 6720/1472 (over
      6000 on the fast path), S15 7680/512, all inside the window (right edge 200 + 2720 = 2920).
      S16 (truesize 960 > fwd 512): slow; tcp_can_ingest(): 7680 > 6000 -> tcp_prune_queue():
      PruneCalled; tcp_clamp_window() (locked: sk_rcvbuf stays; rcv_ssthresh = min(2920, 2 * 1460));
      tcp_collapse() from the first skb (480 of window for 200 bytes: bloated) over 0..1500: one
      alloc_skb(1500) (SKB_HEAD_ALIGN(1500) = 1856 -> kmalloc-2k, end 1728, truesize 2304) charged
      (rmem 9984, fwd 512 - 2304 = -1792), the 8 old skbs freed (TCPRcvCollapsed 8): rmem 2304; fwd
      -1792 + 8 * 960 with one page reclaimed when it reached 4928: 1792.  rmem 2304 <= 6000: done;
      S16 then coalesces into the new skb's tailroom (1728 - 1500 = 228).
    """
    result = run("6.18", "send:100x16", so_rcvbuf=3000)
    steps = result["steps"]
    assert [_fields(r) for r in steps[:3]] == [("slow", "queued", 960, 3136), ("fast", "coalesced", 960, 3136),
                                               ("fast", "queued", 1920, 2176)]
    assert _fields(steps[7]) == ("slow", "coalesced", 3840, 4352)
    assert _fields(steps[12]) == ("fast", "queued", 6720, 1472)     # the fast path's overshoot
    assert _fields(steps[14]) == ("fast", "queued", 7680, 512)
    assert steps[14]["counters"]["PruneCalled"] == 0
    assert _fields(steps[15]) == ("slow", "coalesced", 2304, 1792)
    counters = steps[15]["counters"]
    assert (counters["PruneCalled"], counters["TCPRcvCollapsed"], counters["RcvPruned"]) == (1, 8, 0)
    assert steps[15]["info"]["rcv_ssthresh"] == 2920
    assert steps[15]["mem"]["rcvbuf"] == 6000


def test_prune_and_collapse_6_12():
    # The same steps on 6.12: same truesize, same window, and the prune's test sk_rmem_alloc >= sk_rcvbuf
    # (7680 >= 6000) agrees with 6.18's tcp_can_ingest() here.
    steps = run("6.12", "send:100x16", so_rcvbuf=3000)["steps"]
    assert _fields(steps[15]) == ("slow", "coalesced", 2304, 1792)
    assert (steps[15]["counters"]["PruneCalled"], steps[15]["counters"]["TCPRcvCollapsed"]) == (1, 8)


def test_prune_and_collapse_6_1():
    """6.1: truesize 1280, four segments per skb.  S1: the receive queue is empty, so memory is forced
    (tcp_data_queue() up to 6.7): fwd 4096 - 1280 = 2816.  S2-S5 coalesce; S6 new (rmem 2560, fwd 1536),
    S7-S10 coalesce; S11 new (3840, 256); S12 slow (a page: fwd 4352), coalesced; S13-S15 coalesce;
    S16 new (5120, 3072); S17-S20 coalesce; S21 new (6400: over 6000 on the fast path, fwd 1792);
    S22-S25 coalesce; S26 new (7680, 512).  S27 (seq 2600..2700, inside 200 + 2720): slow,
    7680 > 6000: prune; tcp_collapse() over 0..2600 into alloc_skb(2600) (SKB_HEAD_ALIGN = 2944 ->
    kmalloc-4k, end 3776, truesize 4352): rmem 7680 + 4352 - 6 * 1280 = 4352, fwd 512 - 4352 + 7680
    = 3840 (never a whole spare page on the way), TCPRcvCollapsed 6; S27 coalesces into it.
    """
    steps = run("6.1", "send:100x27", so_rcvbuf=3000)["steps"]
    assert _fields(steps[0]) == ("slow", "queued", 1280, 2816)
    assert [r["verdict"] for r in steps[1:5]] == ["coalesced"] * 4
    assert _fields(steps[10]) == ("fast", "queued", 3840, 256)
    assert _fields(steps[11]) == ("slow", "coalesced", 3840, 4352)
    assert _fields(steps[20]) == ("fast", "queued", 6400, 1792)
    assert _fields(steps[25]) == ("fast", "queued", 7680, 512)
    assert _fields(steps[26]) == ("slow", "coalesced", 4352, 3840)
    assert (steps[26]["counters"]["PruneCalled"], steps[26]["counters"]["TCPRcvCollapsed"]) == (1, 6)


def test_zero_window_6_9():
    """6.9 on the same traffic: full space 1523 (ratio 65), rcv_wnd 1460, right edge 100 + 1360 = 1460
    after the first ACK.  Truesize 896, one coalesce per skb.  Up to 6.16 the fast path does not check
    the segment's end against the window: S15 (1400..1500), S16 and S17 go in over the edge while
    truesize <= fwd (rmem 8064, fwd 128 after S17).  S18 (896 > 128) takes the slow path:
    tcp_sequence() accepts it (its start 1700 is not beyond rcv_nxt + 0), but tcp_receive_window()
    is 0: dropped, TCP_ZEROWINDOW, TCPZeroWindowDrop; quick-ACK mode sends a zero window
    (TCPToZeroWindowAdv)."""
    steps = run("6.9", "send:100x18", so_rcvbuf=3000)["steps"]
    assert _fields(steps[14]) == ("fast", "queued", 7168, 1024)
    assert _fields(steps[16]) == ("fast", "queued", 8064, 128)
    assert _fields(steps[17]) == ("slow", "dropped:TCP_ZEROWINDOW", 8064, 128)
    assert steps[17]["acks"] == [[1700, 0]]
    counters = steps[17]["counters"]
    assert (counters["TCPZeroWindowDrop"], counters["TCPToZeroWindowAdv"], counters["PruneCalled"]) == (1, 1, 0)
    assert steps[17]["mem"]["drops"] == 1
