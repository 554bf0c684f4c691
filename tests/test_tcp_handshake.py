"""The TCP model's set-up and first segments, per release, against hand-derived numbers.

Common inputs (built-in x86_64 profiles; the tun driver with blocking writes, MTU 1500; no
SO_RCVBUF; the peer's SYN mss=1460,wscale=7,ts=0,sack=0):

  net.core.rmem_max 212992; tcp_rmem = 4096 131072 R2 with R2 = 6291456 (6.1, 6.9, 6.12) or
  33554432 (6.18: 'tcp: increase tcp_rmem[2] to 32 MB'); tcp_wmem[1] 16384, [2] 4194304.
  The listener's sk_rcvbuf = tcp_rmem[1] = 131072.
  tcp_win_from_space(131072): 6.1 131072 - 131072 >> 1 = 65536 (adv_win_scale 1);
    6.9 131072 * 65 >> 8 = 33280 (default ratio (1200 << 8) / SKB_TRUESIZE(4096) = 307200 / 4672 = 65);
    6.12, 6.18 131072 * 128 >> 8 = 65536.
  Route advmss = 1500 - 40 = 1460.
  tcp_select_initial_window(full_space, 1460): space rounded down to the MSS:
    65536 -> 44 * 1460 = 64240; 33280 -> 22 * 1460 = 32120 (below 65535, so the 6.1/6.9 cap does nothing);
    wscale = ilog2(max(space, R2, rmem_max)) - 15 = ilog2(6291456) - 15 = 22 - 15 = 7, or 25 - 15 = 10;
    window_clamp = 65535 << wscale.
  tcp_init_buffer_space(): maxwin = full space; the clamp comes down to maxwin, then one segment is
    reserved: max(2 * 1460, maxwin - 1460) = 64076 (31820 on 6.9); rcv_ssthresh = min(rcv_wnd, clamp);
    rcvq_space = min(rcv_ssthresh, rcv_wnd, 10 * 1460) = 14600.
  rcv_mss = max(min(1460, 1460, rcv_wnd / 2, 536), 88) = 536.
  sk_sndbuf (cubic) = 2 * 10 * (roundup_pow_of_two(1460 + MAX_TCP_HEADER 320 + 320) + 256)
    = 20 * (4096 + 256) = 87040; bbr 3 * ... = 130560.
"""

import pytest

from skbsim.tcp_session import play
from skbsim.tcp_steps import parse_steps

RELEASES = ("6.1", "6.9", "6.12", "6.18", "7.1")


def records(kernel, *steps, **kw):
    return play(kernel, "tun", {}, parse_steps(list(steps)), **kw)


@pytest.mark.parametrize("kernel,synack", [
    ("6.1", {"win": 64240, "wscale": 7, "mss": 1460}),
    ("6.9", {"win": 32120, "wscale": 7, "mss": 1460}),   # full space 33280 with ratio 65
    ("6.12", {"win": 64240, "wscale": 7, "mss": 1460}),
    ("6.18", {"win": 64240, "wscale": 10, "mss": 1460}),  # tcp_rmem[2] 32 MiB: ilog2 25 - 15
    ("7.1", {"win": 64240, "wscale": 10, "mss": 1460}),   # the same rules as 6.18 up to the first read
])
def test_synack(kernel, synack):
    assert records(kernel, "wait:0")["synack"] == synack


@pytest.mark.parametrize("kernel,info", [
    # rcv_wscale, rcv_mss, rcv_ssthresh, advmss, rcv_space, rcv_wnd, window_clamp, scaling_ratio
    ("6.1", (7, 536, 64076, 1460, 14600, 64240, 64076, None)),
    ("6.9", (7, 536, 31820, 1460, 14600, 32120, 31820, 65)),   # clamp max(2920, 33280 - 1460) = 31820
    ("6.12", (7, 536, 64076, 1460, 14600, 64240, 64076, 128)),
    ("6.18", (10, 536, 64076, 1460, 14600, 64240, 64076, 128)),
    ("7.1", (10, 536, 64076, 1460, 14600, 64240, 64076, 128)),
])
def test_established_figures(kernel, info):
    record = records(kernel, "wait:0")["steps"][0]
    assert tuple(record["info"].values()) == info
    assert record["mem"] == {"rmem_alloc": 0, "rcvbuf": 131072, "fwd_alloc": 0, "backlog": 0, "drops": 0}
    assert record["acks"] == []


@pytest.mark.parametrize("kernel", RELEASES)
def test_syn_options_change_the_synack(kernel):
    # Without a window-scale option neither side scales: wscale None, clamp at most 65535;
    # with timestamps the initial window is rounded to 1460 - 12 = 1448: 65536 -> 45 * 1448 = 65160,
    # which 6.1 and 6.9 cap at 65535 only if above (it is not); 6.9's 33280 -> 22 * 1448 = 31856.
    nows = records(kernel, "wait:0", syn=_syn("wscale=none"))
    assert nows["synack"]["wscale"] is None
    assert nows["steps"][0]["info"]["rcv_wscale"] == 0
    ts = records(kernel, "wait:0", syn=_syn("ts=1"))
    assert ts["synack"]["win"] == (31856 if kernel == "6.9" else 65160)
    # The passive side takes the 12-byte option off advmss: 1448.  rcvq_space = 10 * 1448 = 14480
    # where that happens before tcp_init_transfer() (6.1.y, 6.12.y, 6.16+), 14600 on 6.9.
    info = ts["steps"][0]["info"]
    assert info["advmss"] == 1448
    assert info["rcv_space"] == (14600 if kernel == "6.9" else 14480)


def _syn(text):
    from skbsim.tcp_steps import parse_syn

    return parse_syn(text)


@pytest.mark.parametrize("kernel,rcvbuf,synack", [
    # SO_RCVBUF 8192 -> sk_rcvbuf 16384 (doubled), locked: the request's clamp is the full space
    # 6.1: 16384 - 8192 = 8192; 6.9: 16384 * 65 >> 8 = 4160; others 8192.  Space 8192 ->
    # 5 * 1460 = 7300 (4160 -> 2 * 1460 = 2920); wscale from min(max(space, R2, rmem_max), clamp
    # 8192) -> ilog2(8192) - 15 < 0 -> 0.
    ("6.1", 16384, {"win": 7300, "wscale": 0, "mss": 1460}),
    ("6.9", 16384, {"win": 2920, "wscale": 0, "mss": 1460}),
    ("6.12", 16384, {"win": 7300, "wscale": 0, "mss": 1460}),
    ("6.18", 16384, {"win": 7300, "wscale": 0, "mss": 1460}),
    ("7.1", 16384, {"win": 7300, "wscale": 0, "mss": 1460}),
])
def test_so_rcvbuf(kernel, rcvbuf, synack):
    result = records(kernel, "wait:0", so_rcvbuf=8192)
    assert result["synack"] == synack
    assert result["steps"][0]["mem"]["rcvbuf"] == rcvbuf


def test_so_rcvbuf_floor_and_rmem_max():
    # SO_RCVBUF 100 -> max(200, SOCK_MIN_RCVBUF 2304) = 2304; 10 MiB -> min(val, rmem_max 212992) * 2.
    assert records("6.18", "wait:0", so_rcvbuf=100)["steps"][0]["mem"]["rcvbuf"] == 2304
    assert records("6.18", "wait:0", so_rcvbuf=10 << 20)["steps"][0]["mem"]["rcvbuf"] == 425984


@pytest.mark.parametrize("kernel", RELEASES)
def test_three_full_segments(kernel):
    """send:1460x3 read - the windows of the three quick ACKs (see the module docstring for the set-up).

    Each 1514-byte frame: a tun kmalloc head SKB_HEAD_ALIGN(64 + 1514) = 1920 -> kmalloc-2k,
    end 1728, truesize 1728 + 256 + 320 = 2304.  Segment 1 finds sk_forward_alloc 0 < 2304: slow path,
    one page forward-allocated (fwd 4096 - 2304 = 1792); segment 2 again (512 more needed: fwd
    1792 + 4096 - 2304 = 3584); segment 3 fits (fast path, fwd 1280).
    The first segment sets rcv_mss 1460 and (6.6+) the ratio 1460 * 256 / 2304 = 162.
    Window per ACK (quick-ACK mode, one per segment), free space tcp_space() at most rcv_ssthresh,
    rounded up to 2^wscale:
      6.1: space(131072 - 2304k) = half: 64384 (capped to 64076 -> 64128 = 501 << 7), 63232 (494), 62080 (485).
      6.9: clamp 31820 and rcv_ssthresh 31820 (no room to grow): ALIGN(31820, 128) = 31872 = 249 << 7, thrice.
      6.12: the clamp becomes tcp_win_from_space(131072) = 131072 * 162 >> 8 = 82944; rcv_ssthresh
        grows by 2 advmss = 2920 per segment (tcp_win_from_space(2304) = 1457 <= 1460) while there is
        room: 64076 -> 66996 -> 69916 -> 72836; windows ALIGN(ssthresh, 128): 67072 (524), 70016 (547),
        72960 (570).
      6.18: tcp_set_window_clamp(82944) also raises rcv_ssthresh to min(rcv_wnd 64240, 82944) = 64240:
        67160, 70080, 73000 -> ALIGN(, 1024): 67584 (66), 70656 (69), 73728 (72).
      7.1: as 6.18 (its receive rules differ only in autotuning after an RTT, the SACK compression
        timer and rcv_mwnd_seq, none of which these steps reach).
    """
    result = records(kernel, "send:1460x3", "read")
    acks = [r["acks"] for r in result["steps"]]
    expected = {
        "6.1": [[[1460, 501]], [[2920, 494]], [[4380, 485]], []],
        "6.9": [[[1460, 249]], [[2920, 249]], [[4380, 249]], []],
        "6.12": [[[1460, 524]], [[2920, 547]], [[4380, 570]], []],
        "6.18": [[[1460, 66]], [[2920, 69]], [[4380, 72]], []],
        "7.1": [[[1460, 66]], [[2920, 69]], [[4380, 72]], []],
    }[kernel]
    assert acks == expected
    routes = [(r["route"], r["verdict"], r["truesize"]) for r in result["steps"][:3]]
    assert routes == [("slow", "queued", 2304)] * 2 + [("fast", "queued", 2304)]
    mems = [(r["mem"]["rmem_alloc"], r["mem"]["fwd_alloc"]) for r in result["steps"]]
    # The read gives back 3 * 2304: fwd 1280 + 2304 = 3584, + 2304 = 5888 -> reclaim a page: 1792,
    # + 2304 = 4096 -> reclaim: 0.
    assert mems == [(2304, 1792), (4608, 3584), (6912, 1280), (0, 0)]
    ssthresh = [r["info"]["rcv_ssthresh"] for r in result["steps"][:3]]
    assert ssthresh == {"6.1": [64076] * 3, "6.9": [31820] * 3, "6.12": [66996, 69916, 72836],
                        "6.18": [67160, 70080, 73000], "7.1": [67160, 70080, 73000]}[kernel]
    ratio = {"6.1": None, "6.9": 162, "6.12": 162, "6.18": 162, "7.1": 162}[kernel]
    assert result["steps"][0]["info"]["scaling_ratio"] == ratio
    clamp = {"6.1": 64076, "6.9": 31820, "6.12": 82944, "6.18": 82944, "7.1": 82944}[kernel]
    assert result["steps"][2]["info"]["window_clamp"] == clamp
    assert result["steps"][3]["payload"] == 4380


@pytest.mark.parametrize("kernel,sndbuf", [("6.1", (87040, 130560)), ("6.18", (87040, 130560)),
                                           ("7.1", (87040, 130560))])
def test_sndbuf_by_congestion_control(kernel, sndbuf):
    """tcp_sndbuf_expand(): 2 (cubic) or 3 (bbr) x 10 segments x 4352 bytes.  sk_sndbuf is not in the
    records; the backlog limit shows it (tests/test_tcp_pressure.py), the explanation says it."""
    for cc, expected in zip(("cubic", "bbr"), sndbuf):
        result = records(kernel, "wait:0", cc=cc, explain=True)
        text = "\n".join(result["steps"][0]["explain"])
        assert f"sk_sndbuf {expected}" in text
