"""Fat skbs: ntb_netdev's 64 KiB receive buffers and their copybreak fix, and the tap's way of
reproducing them (frames padded to 127000 bytes), per release, against hand-derived numbers.

ntb (MTU 65510): every frame arrives in netdev_alloc_skb(65524): 65524 + 64 > a page, so a kmalloc'ed
head of SKB_HEAD_ALIGN(65588) = 65600 + 320 = 65920 -> kmalloc-128k, end 131072 - 320 = 130752,
truesize 130752 + 256 + 320 = 131328.  Route advmss = min(max(65510 - 40, 256), 65495) = 65470.
The SYN-ACK: space 65536 (6.9: 33280) rounded down to 65470 (space > mss) or kept (33280 < mss).
tcp_init_buffer_space(): clamp = maxwin 65536 (no one-segment reservation: 65536 < 2 * 65470);
rcv_ssthresh = min(65470, 65536) = 65470 (6.9: 33280), rcvq_space 65470, rcv_mss 536.

A 1000-byte segment (frame 1054) on ntb: the first one takes the slow path and forward-allocates
ceil(131328 / 4096) = 33 pages (fwd 135168 - 131328 = 3840); its ratio 1000 * 256 / 131328 = 1.
"""

import pytest

from skbsim.tcp_session import play
from skbsim.tcp_steps import parse_steps


def run(kernel, driver, options, *steps, **kw):
    return play(kernel, driver, options, parse_steps(list(steps)), **kw)


def _info(record, *keys):
    return tuple(record["info"][k] for k in keys)


@pytest.mark.parametrize("kernel,synack", [
    ("6.1", {"win": 65470, "wscale": 7, "mss": 65470}),
    ("6.9", {"win": 33280, "wscale": 7, "mss": 65470}),
    ("6.12", {"win": 65470, "wscale": 7, "mss": 65470}),
    ("6.18", {"win": 65470, "wscale": 10, "mss": 65470}),
])
def test_ntb_synack(kernel, synack):
    assert run(kernel, "ntb", {}, "wait:0")["synack"] == synack


@pytest.mark.parametrize("kernel,expected", [
    # (scaling_ratio, window_clamp, rcv_ssthresh, rcv_space, first ACK's raw window)
    # 6.1: no ratio; clamp 65536 stays; the zero window wanted (free space 131072 - 131328 < 0) is not
    #   offered: the old right edge 65470 - 1000 = 64470, rounded up to 128: 64512 = 504 << 7.
    ("6.1", (None, 65536, 65470, 65470, 504)),
    # 6.9: ratio 1, the clamp is not touched (33280), rcv_ssthresh 33280; 33280 - 1000 = 32280 ->
    #   32384 = 253 << 7.
    ("6.9", (1, 33280, 33280, 33280, 253)),
    # 6.12: window_clamp = tcp_win_from_space(131072) = 131072 * 1 >> 8 = 512, rcvq_space capped to it;
    #   rcv_ssthresh untouched; ACK 64512 = 504 << 7.
    ("6.12", (1, 512, 65470, 512, 504)),
    # 6.18: tcp_set_window_clamp(512) -> the floor SOCK_MIN_RCVBUF / 2 = 1152, and rcv_ssthresh cut to it;
    #   rcvq_space capped at 1152; ACK ALIGN(64470, 1024) = 64512 = 63 << 10.
    ("6.18", (1, 1152, 1152, 1152, 63)),
])
def test_ntb_fat_skb_collapses_the_ratio(kernel, expected):
    steps = run(kernel, "ntb", {}, "send:1000x3")["steps"]
    first = steps[0]
    assert first["truesize"] == 131328
    assert (first["route"], first["verdict"]) == ("slow", "queued")
    assert _info(first, "scaling_ratio", "window_clamp", "rcv_ssthresh", "rcv_space") == expected[:4]
    assert first["acks"] == [[1000, expected[4]]]
    assert first["counters"]["TCPWantZeroWindowAdv"] == 1
    assert (first["mem"]["rmem_alloc"], first["mem"]["fwd_alloc"]) == (131328, 3840)
    # The second segment: 131328 > fwd 3840, slow path; sk_rmem_alloc 131328 > sk_rcvbuf 131072:
    # prune; tcp_clamp_window() raises the unlocked sk_rcvbuf to what is allocated (131328); it then
    # fits; 127488 more bytes forward-allocated (32 pages: fwd 134912); the 1000 bytes are copied into
    # the first skb's tailroom (130752 - 64 - 1054), truesize unchanged.  The third takes the fast path.
    second, third = steps[1], steps[2]
    assert (second["route"], second["verdict"]) == ("slow", "coalesced")
    assert (second["mem"]["rmem_alloc"], second["mem"]["rcvbuf"], second["mem"]["fwd_alloc"]) == (131328, 131328, 134912)
    assert second["counters"]["PruneCalled"] == 1
    assert (third["route"], third["verdict"], third["mem"]["rmem_alloc"]) == ("fast", "coalesced", 131328)


@pytest.mark.parametrize("kernel,expected", [
    # copybreak=3646: the 1054-byte frame is copied into netdev_alloc_skb_ip_align(1054): 1054 + 64 = 1118
    # is above the kmalloc threshold and fits a page: a page fragment of SKB_HEAD_ALIGN(1118) = 1472,
    # truesize 1152 + 576 = 1728 (6.9: the same; 6.1: the same).  Ratio 1000 * 256 / 1728 = 148.
    # 6.12: clamp = 131072 * 148 >> 8 = 75776; rcv_ssthresh grows: room = min(75776, tcp_space(129344) =
    #   74777) - 65470 = 9307, increment 2 advmss (tcp_win_from_space(1728) = 999 <= 1000): 74777;
    #   window ALIGN(74777, 128) = 74880 = 585 << 7.
    ("6.12", (148, 75776, 74777, 585)),
    # 6.18: tcp_set_window_clamp(75776) grows the clamp (rcv_ssthresh max(min(65470, 75776), 65470)),
    #   then the same growth to 74777; ALIGN(74777, 1024) = 75776 = 74 << 10.
    ("6.18", (148, 75776, 74777, 74)),
    # 6.9: ratio 148, clamp 33280 untouched, room min(33280, ...) - 33280 = 0: no growth; the window
    #   min(free 74777, rcv_ssthresh 33280) -> ALIGN(33280, 128) = 33280 = 260 << 7.
    ("6.9", (148, 33280, 33280, 260)),
    # 6.1: no ratio: tcp_win_from_space(129344) = 64672, room min(65536, 64672) - 65470 < 0: no growth;
    #   window min(64672, 65470) -> ALIGN(64672, 128) = 64768 = 506 << 7.
    ("6.1", (None, 65536, 65470, 506)),
])
def test_ntb_copybreak_keeps_the_window(kernel, expected):
    first = run(kernel, "ntb", {"copybreak": "3646"}, "send:1000")["steps"][0]
    assert first["truesize"] == 1728
    assert _info(first, "scaling_ratio", "window_clamp", "rcv_ssthresh") == expected[:3]
    assert first["acks"] == [[1000, expected[3]]]


def test_tap_fat_skbs_grow_rcvbuf_one_skb_at_a_time():
    """6.18, tun, send:1000x9@127000: a 127000-byte write becomes a 3712-byte linear part (kmalloc-4k,
    truesize 4352) and 123288 bytes of page blocks (3 x 32 KiB, 16, 8 and 4 KiB): truesize 131328;
    IP trims the skb to its datagram (the frags go, truesize stays: the tap's socket still owns it).
    The head's tailroom (3776 - 64 - 1054 = 2658) takes the next two segments, so every third segment
    brings a new fat skb.  Each one arrives on the fast path (fwd 134912 - 131328 = 3584 left), overshoots
    sk_rcvbuf, and the next segment's prune raises the unlocked sk_rcvbuf to sk_rmem_alloc
    (tcp_clamp_window()): 131328, 262656, 393984.  The ratio 1 and the clamp's floor 1152 (rcv_ssthresh
    with it) come with the first segment, as on ntb.
    """
    steps = run("6.18", "tun", {}, "send:1000x9@127000")["steps"]
    assert {r["truesize"] for r in steps} == {131328}
    assert [r["verdict"] for r in steps] == ["queued", "coalesced", "coalesced"] * 3
    assert [r["mem"]["rcvbuf"] for r in steps] == [131072, 131328, 131328, 131328, 262656, 262656, 262656,
                                                   393984, 393984]
    assert [r["mem"]["rmem_alloc"] for r in steps] == [131328] * 3 + [262656] * 3 + [393984] * 3
    assert [r["counters"]["PruneCalled"] for r in steps] == [0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert _info(steps[-1], "scaling_ratio", "window_clamp", "rcv_ssthresh") == (1, 1152, 1152)


def test_ntb_window_collapse_and_its_fix_side_by_side():
    """The README's example, in numbers: 140 segments of 1000 bytes, a read after 70.  On 6.18 without
    copybreak rcv_ssthresh stays at the clamp's floor 1152, so after the first read the window offered is
    ALIGN(1152, 1024) = 2048 at most: most of the second burst falls beyond it and is dropped.  With
    TrueNAS's copybreak nothing is dropped."""
    steps = parse_steps(["send:1000x70", "read", "send:1000x70", "read"])
    broken = play("6.18", "ntb", {"copybreak": "0"}, steps)["steps"]
    fixed = play("6.18", "ntb", {"copybreak": "3646"}, steps)["steps"]
    dropped = lambda recs: sum(1 for r in recs if (r["verdict"] or "").startswith("dropped"))  # noqa: E731
    assert dropped(fixed) == 0
    assert dropped(broken) > 60
    assert broken[-1]["info"]["rcv_ssthresh"] == 1152
    assert max(w for r in broken[71:] for _a, w in r["acks"]) <= 2
