"""The established-state receive path, after net/ipv4/tcp_input.c.

In the order a segment meets them:

- :func:`tcp_rcv_established`: header prediction (in-order, expected
  flags and window, ``truesize <= sk_forward_alloc``: queued with no other
  memory check) or the slow path: :func:`tcp_validate_incoming`
  (tcp_sequence()), then :func:`tcp_data_queue`;
- admission: :func:`tcp_try_rmem_schedule` with each release's rule
  (:func:`tcp_can_ingest`), forward allocation in pages
  (sk_rmem_schedule()), pruning (:func:`tcp_prune_queue`: the window
  clamp, :func:`tcp_collapse` into fresh 4 KiB-class heads, the
  out-of-order queue);
- queueing: :func:`tcp_queue_rcv` with :func:`tcp_try_coalesce`, the
  out-of-order queue (:func:`tcp_data_queue_ofo`);
- accounting for the window: :func:`tcp_event_data_recv` ->
  :func:`tcp_measure_rcv_mss` (the scaling ratio and, by release, the
  window clamp), receive RTT, :func:`tcp_grow_window` (rcv_ssthresh);
- :func:`tcp_rcv_space_adjust` (receive-buffer autotuning, per release);
- :func:`__tcp_ack_snd_check`: ACK now or later.

Global TCP memory pressure (tcp_mem) is never reached in the model:
tcp_under_memory_pressure() is false and sk_rmem_schedule() succeeds.
Every integer formula is a plain module-level function of ints.
"""

from __future__ import annotations

import struct

from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.net.core_sock import (
    SOCK_RCVBUF_LOCK,
    SOCK_SNDBUF_LOCK,
    sk_forced_mem_schedule,
    sk_mem_charge,
    sk_rmem_schedule,
    skb_set_owner_r,
)
from skbsim.net.ipv4.tcp import (
    ICSK_ACK_NOMEM,
    ICSK_ACK_NOW,
    ICSK_ACK_PUSHED,
    ICSK_ACK_PUSHED2,
    TCP_ACK_DEFERRED,
    TCP_HEADER,
    TCP_INIT_CWND,
    TCP_MAX_QUICKACKS,
    TCP_MIN_MSS,
    TCP_MSS_DEFAULT,
    TCP_RMEM_TO_WIN_SCALE,
    TCPOLEN_TSTAMP_ALIGNED,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_PSH,
    TCPHDR_SYN,
    TCPHDR_URG,
    U32,
    NET_INC_STATS,
    after,
    before,
    inet_csk_ack_scheduled,
    inet_csk_schedule_ack,
    tcp_event,
    tcp_jiffies32,
    tcp_mstamp_refresh,
    tcp_max_receive_window,
    tcp_receive_window,
    tcp_set_window_clamp,
    tcp_skb_cb,
    tcp_sock,
)
from skbsim.net.skbuff import (
    __kfree_skb,
    alloc_skb,
    kfree_skb,
    kfree_skb_partial,
    skb_condense,
    skb_headlen,
    skb_put,
    skb_try_coalesce,
)

#: include/net/tcp.h: TCP_REMNANT - flags that mark a segment as not full-sized.
TCP_REMNANT = TCPHDR_FIN | TCPHDR_URG | TCPHDR_SYN | TCPHDR_PSH
#: net/ipv4/tcp_input.c: three duplicate ACKs before ACK compression (TCP_FASTRETRANS_THRESH).
TCP_FASTRETRANS_THRESH = 3


#: Codes of the release rules the plain int functions below take (rule_code(): the value's place in the
#: feature's choices, skbsim.profile.FEATURES), so that the fast engine compiles those functions as they are.
RTT_SMOOTHED, RTT_MIN, RTT_MIN_IDLE = range(3)  # tcp_rcv_rtt_update
(SPACE_RCVMEM, SPACE_FROM_WIN, SPACE_FROM_WIN_INQ, SPACE_DOUBLE, SPACE_RCVBUF_GROW,
 SPACE_RCVBUF_GROW_LOW_RTT) = range(6)  # tcp_rcv_space_adjust
ADMIT_RMEM, ADMIT_RMEM_PLUS_TRUESIZE, ADMIT_RMEM_PLUS_LEN = range(3)  # tcp_rcvbuf_admission
PRUNE_RMEM_VS_RCVBUF, PRUNE_CAN_INGEST = range(2)  # tcp_prune_queue


def rule_code(feature: str, value: str) -> int:
    """The code of a string feature's value: its place among the feature's choices (skbsim.profile.FEATURES)."""
    from skbsim.profile import FEATURES

    return FEATURES[feature][1].index(value)


def TCP_ATO_MIN(hz: int) -> int:
    """include/net/tcp.h: TCP_ATO_MIN = HZ / 25 (40 ms)."""
    return hz // 25


def TCP_DELACK_MIN(hz: int) -> int:
    """include/net/tcp.h: TCP_DELACK_MIN = HZ / 25."""
    return hz // 25


# -- window <-> memory ---------------------------------------------------------------------------


def win_from_space_ratio(scaling_ratio: int, space: int) -> int:
    """include/net/tcp.h: __tcp_win_from_space() (6.6+) - space * scaling_ratio / 256 (arithmetic shift)."""
    return (space * scaling_ratio) >> TCP_RMEM_TO_WIN_SCALE


def win_from_space_adv(adv_win_scale: int, space: int) -> int:
    """include/net/tcp.h: tcp_win_from_space() up to 6.5 - space less space >> tcp_adv_win_scale."""
    if adv_win_scale <= 0:
        return space >> -adv_win_scale
    return space - (space >> adv_win_scale)


def space_from_win_ratio(scaling_ratio: int, win: int) -> int:
    """include/net/tcp.h: __tcp_space_from_win() (6.6+) - the inverse: win * 256 / scaling_ratio."""
    return ((win << TCP_RMEM_TO_WIN_SCALE) // scaling_ratio) & U32


def scaling_ratio_of(length: int, truesize: int) -> int:
    """net/ipv4/tcp_input.c: tcp_measure_rcv_mss()'s ratio - len * 256 / truesize, 1 when that is 0,
    stored in the u8 tp->scaling_ratio."""
    val = (length << TCP_RMEM_TO_WIN_SCALE) // truesize
    return (val if val else 1) & 0xFF


def default_scaling_ratio(rule: str, skb_truesize_4096: int) -> int:
    """include/net/tcp.h: TCP_DEFAULT_SCALING_RATIO by feature ``tcp_scaling_ratio``.

    'none' (up to 6.5): 0, no ratio; '1200_per_4k' (6.6 'tcp: get rid of
    sysctl_tcp_adv_win_scale' to 6.9): 1200 bytes of payload per
    SKB_TRUESIZE(4096), (1200 << 8) / 4672 = 65 on x86_64; 'half' (6.10,
    'tcp: increase the default TCP scaling ratio'): 128.
    """
    if rule == "none":
        return 0
    if rule == "1200_per_4k":
        return (1200 << TCP_RMEM_TO_WIN_SCALE) // skb_truesize_4096
    return 1 << (TCP_RMEM_TO_WIN_SCALE - 1)


def tcp_scaling_ratio_init(sk: tcp_sock) -> None:
    """include/net/tcp.h: tcp_scaling_ratio_init()."""
    profile = sk.kernel.profile
    sk.scaling_ratio = default_scaling_ratio(profile.feature("tcp_scaling_ratio"), profile.SKB_TRUESIZE(4096))


def tcp_win_from_space(sk: tcp_sock, space: int) -> int:
    """include/net/tcp.h: tcp_win_from_space() - the window a memory amount is worth."""
    if sk.scaling_ratio:
        return win_from_space_ratio(sk.scaling_ratio, space)
    return win_from_space_adv(sk.net.sysctl_tcp_adv_win_scale, space)


def tcp_space_from_win(sk: tcp_sock, win: int) -> int:
    """include/net/tcp.h: tcp_space_from_win() (6.6+)."""
    return space_from_win_ratio(sk.scaling_ratio, win)


def tcp_space(sk: tcp_sock) -> int:
    """include/net/tcp.h: tcp_space() - the window the free part of sk_rcvbuf is worth (may be negative)."""
    return tcp_win_from_space(sk, sk.sk_rcvbuf - sk.sk_backlog_len - sk.sk_rmem_alloc)


def tcp_full_space(sk: tcp_sock) -> int:
    """include/net/tcp.h: tcp_full_space() - the window the whole sk_rcvbuf is worth."""
    return tcp_win_from_space(sk, sk.sk_rcvbuf)


def __tcp_adjust_rcv_ssthresh(sk: tcp_sock, new_ssthresh: int) -> None:
    """include/net/tcp.h: __tcp_adjust_rcv_ssthresh() - rcv_ssthresh at most new_ssthresh (no
    SO_RESERVE_MEM in the model)."""
    sk.rcv_ssthresh = min(sk.rcv_ssthresh, new_ssthresh)


def tcp_adjust_rcv_ssthresh(sk: tcp_sock) -> None:
    """include/net/tcp.h: tcp_adjust_rcv_ssthresh() - at most four advmss."""
    __tcp_adjust_rcv_ssthresh(sk, 4 * sk.advmss)


# -- set-up -------------------------------------------------------------------------------------


def roundup_pow_of_two(n: int) -> int:
    """include/linux/log2.h: roundup_pow_of_two()."""
    return 1 << (n - 1).bit_length()


def sndbuf_expand_value(mss_clamp: int, mss_cache: int, max_tcp_header: int, shinfo_size: int,
                        skb_struct_size: int, snd_cwnd: int, reordering: int, factor: int) -> int:
    """net/ipv4/tcp_input.c: tcp_sndbuf_expand()'s sndmem, as ints.

    per_mss = roundup_pow_of_two(max(mss_clamp, mss_cache) + MAX_TCP_HEADER
    + SKB_DATA_ALIGN(sizeof(struct skb_shared_info))) + SKB_DATA_ALIGN(
    sizeof(struct sk_buff)); segments = max(TCP_INIT_CWND, cwnd,
    reordering + 1); sndmem = factor (cubic 2, bbr 3) * segments * per_mss.
    """
    per_mss = roundup_pow_of_two(max(mss_clamp, mss_cache) + max_tcp_header + shinfo_size) + skb_struct_size
    nr_segs = max(TCP_INIT_CWND, snd_cwnd, reordering + 1)
    return factor * nr_segs * per_mss


def tcp_sndbuf_expand(sk: tcp_sock) -> None:
    """net/ipv4/tcp_input.c: tcp_sndbuf_expand() - sk_sndbuf for cwnd full-sized segments, at most tcp_wmem[2]."""
    profile = sk.kernel.profile
    factor = sk.icsk_ca_ops.sndbuf_expand or 2
    sndmem = sndbuf_expand_value(sk.rx_opt_mss_clamp, sk.mss_cache, profile.MAX_TCP_HEADER, profile.SHINFO_SIZE,
                                 profile.SKB_HEAD_STRUCT_SIZE, sk.snd_cwnd, sk.reordering, factor)
    if sk.sk_sndbuf < sndmem:
        sk.sk_sndbuf = min(sndmem, sk.net.sysctl_tcp_wmem[2])
    if sk.events is not None:
        tcp_event(sk, "sndbuf_expand", cc=sk.icsk_ca_ops.name, factor=factor, sndmem=sndmem, sndbuf=sk.sk_sndbuf)


def init_buffer_space_values(window_clamp: int, maxwin: int, advmss: int, app_win: int, rcv_ssthresh: int,
                             rcv_wnd: int) -> tuple[int, int, int]:
    """net/ipv4/tcp_input.c: tcp_init_buffer_space()'s figures: (window_clamp, rcv_ssthresh, rcvq_space).

    A clamp at or above the full space (maxwin) comes down to it, less
    maxwin >> tcp_app_win (31: nothing) but not below 4 advmss; then one
    segment is reserved (maxwin - advmss, not below 2 advmss) if the clamp
    leaves less; rcv_ssthresh is at most the clamp; rcvq_space.space =
    min(rcv_ssthresh, rcv_wnd, TCP_INIT_CWND * advmss).
    """
    if window_clamp >= maxwin:
        window_clamp = maxwin
        if app_win and maxwin > 4 * advmss:
            window_clamp = max(maxwin - (maxwin >> app_win), 4 * advmss)
    if app_win and window_clamp > 2 * advmss and window_clamp + advmss > maxwin:
        window_clamp = max(2 * advmss, maxwin - advmss)
    rcv_ssthresh = min(rcv_ssthresh, window_clamp)
    return window_clamp, rcv_ssthresh, min(rcv_ssthresh, rcv_wnd, TCP_INIT_CWND * advmss)


def tcp_init_buffer_space(sk: tcp_sock) -> None:
    """net/ipv4/tcp_input.c: tcp_init_buffer_space() - sk_sndbuf, the window clamp, rcvq_space."""
    if not sk.sk_userlocks & SOCK_SNDBUF_LOCK:
        tcp_sndbuf_expand(sk)
    tcp_mstamp_refresh(sk)
    sk.rcvq_space_time = sk.tcp_mstamp
    sk.rcvq_space_seq = sk.copied_seq
    maxwin = tcp_full_space(sk)
    old_clamp = sk.window_clamp
    sk.window_clamp, sk.rcv_ssthresh, sk.rcvq_space_space = init_buffer_space_values(
        sk.window_clamp, maxwin, sk.advmss, sk.net.sysctl_tcp_app_win, sk.rcv_ssthresh, sk.rcv_wnd)
    if sk.events is not None:
        tcp_event(sk, "init_buffer_space", maxwin=maxwin, old_clamp=old_clamp, window_clamp=sk.window_clamp,
                  advmss=sk.advmss, rcv_ssthresh=sk.rcv_ssthresh, rcv_space=sk.rcvq_space_space)


def initialize_rcv_mss_value(advmss: int, mss_cache: int, rcv_wnd: int) -> int:
    """net/ipv4/tcp_input.c: tcp_initialize_rcv_mss() - min(advmss, mss_cache, rcv_wnd / 2, 536), at least 88."""
    hint = min(advmss, mss_cache, rcv_wnd // 2, TCP_MSS_DEFAULT)
    return max(hint, TCP_MIN_MSS)


def tcp_initialize_rcv_mss(sk: tcp_sock) -> None:
    """net/ipv4/tcp_input.c: tcp_initialize_rcv_mss()."""
    sk.icsk_ack_rcv_mss = initialize_rcv_mss_value(sk.advmss, sk.mss_cache, sk.rcv_wnd)


# -- per-segment accounting ---------------------------------------------------------------------


def tcp_measure_rcv_mss(sk: tcp_sock, skb) -> None:
    """net/ipv4/tcp_input.c: tcp_measure_rcv_mss() - rcv_mss, the scaling ratio and (by release) the clamp.

    A segment of at least rcv_mss bytes that is not exactly rcv_mss long
    (6.6+) remeasures the scaling ratio as len * 256 / truesize; when the
    ratio changes, by feature ``tcp_scaling_ratio_clamp``: nothing
    ('none', 6.6 to 6.10); window_clamp = tcp_win_from_space(sk_rcvbuf)
    ('write', 6.11 'tcp: Update window clamping condition'), and with
    rcvq_space.space capped at the clamp ('write_cap_rcvq', 6.12.y); or
    tcp_set_window_clamp() of it - floor 1152, rcv_ssthresh lowered with
    it - and the cap ('set_window_clamp', 6.14 'tcp: adjust rcvq_space
    after updating scaling ratio').  rcv_mss becomes min(len, advmss).
    Shorter segments only count as full-sized when they repeat (a
    segment without PSH of at least TCP_MIN_MSS, or at least 536 bytes).
    The length measured is gso_size for a GRO aggregate or GSO packet,
    skb->len otherwise (the ratio itself is always skb->len / truesize).
    """
    lss = sk.icsk_ack_last_seg_size
    sk.icsk_ack_last_seg_size = 0
    # A GRO aggregate (or a GSO frame) counts as segments of its gso_size.
    length = skb.shinfo.gso_size or skb.len
    cb = skb.cb
    if length >= sk.icsk_ack_rcv_mss:
        if sk.scaling_ratio and length != sk.icsk_ack_rcv_mss:
            old_ratio = sk.scaling_ratio
            sk.scaling_ratio = scaling_ratio_of(skb.len, skb.truesize)
            if sk.events is not None:
                tcp_event(sk, "scaling_ratio", len=skb.len, truesize=skb.truesize, old=old_ratio,
                          ratio=sk.scaling_ratio)
            rule = sk.rule_scaling_ratio_clamp
            if old_ratio != sk.scaling_ratio and rule != "none":
                val = tcp_win_from_space(sk, sk.sk_rcvbuf)
                if rule == "set_window_clamp":
                    tcp_set_window_clamp(sk, val)
                else:
                    sk.window_clamp = val
                    if sk.events is not None:
                        tcp_event(sk, "window_clamp_from_ratio", rcvbuf=sk.sk_rcvbuf, window_clamp=val)
                if rule != "write" and sk.window_clamp < sk.rcvq_space_space:
                    sk.rcvq_space_space = sk.window_clamp
        sk.icsk_ack_rcv_mss = min(length, sk.advmss)
        if cb.tcp_flags & TCPHDR_PSH:
            sk.icsk_ack_pending |= ICSK_ACK_PUSHED
        return
    length += cb.doff
    if length >= TCP_MSS_DEFAULT + TCP_HEADER or (
            length >= TCP_MIN_MSS + TCP_HEADER and not cb.tcp_flags & TCP_REMNANT):
        length -= sk.tcp_header_len
        sk.icsk_ack_last_seg_size = length
        if length == lss:
            sk.icsk_ack_rcv_mss = length
            return
    if sk.icsk_ack_pending & ICSK_ACK_PUSHED:
        sk.icsk_ack_pending |= ICSK_ACK_PUSHED2
    sk.icsk_ack_pending |= ICSK_ACK_PUSHED


def tcp_incr_quickack(sk: tcp_sock, max_quickacks: int) -> None:
    """net/ipv4/tcp_input.c: tcp_incr_quickack() - up to rcv_wnd / (2 rcv_mss) quick ACKs (at least 2)."""
    quickacks = sk.rcv_wnd // (2 * sk.icsk_ack_rcv_mss)
    if quickacks == 0:
        quickacks = 2
    quickacks = min(quickacks, max_quickacks)
    if quickacks > sk.icsk_ack_quick:
        sk.icsk_ack_quick = quickacks


def tcp_enter_quickack_mode(sk: tcp_sock, max_quickacks: int) -> None:
    """net/ipv4/tcp_input.c: tcp_enter_quickack_mode()."""
    tcp_incr_quickack(sk, max_quickacks)
    sk.icsk_ack_pingpong = 0
    sk.icsk_ack_ato = TCP_ATO_MIN(sk.net.HZ)


def tcp_in_quickack_mode(sk: tcp_sock) -> bool:
    """net/ipv4/tcp_input.c: tcp_in_quickack_mode() (no RTAX_QUICKACK route metric)."""
    return bool(sk.icsk_ack_quick) and not sk.icsk_ack_pingpong


def truesize_adjust_value(adjust: bool, truesize: int, length: int, headlen: int, head_truesize: int) -> int:
    """net/ipv4/tcp_input.c: truesize_adjust() - for an skb with all its data in frags, leave out the
    head (SKB_TRUESIZE(skb_end_offset)), unless that leaves less than len."""
    if adjust and not headlen:
        adjusted = truesize - head_truesize
        if adjusted >= length:
            return adjusted
    return truesize


def grow_window_increment(win_truesize: int, length: int, win_rmem2: int, rcv_ssthresh: int, advmss: int,
                          rcv_mss: int) -> int:
    """net/ipv4/tcp_input.c: tcp_grow_window()'s check #2 and __tcp_grow_window(), as ints.

    win_truesize and win_rmem2 are tcp_win_from_space() of the skb's
    (adjusted) truesize and of tcp_rmem[2].  An skb whose truesize is worth
    no more window than its len grows rcv_ssthresh by 2 advmss; otherwise,
    halving both the skb's window worth and tcp_rmem[2]'s while
    rcv_ssthresh is at most the latter, by 2 rcv_mss once the skb's worth
    fits its len; else not at all.
    """
    if win_truesize <= length:
        return 2 * advmss
    truesize = win_truesize >> 1
    window = win_rmem2 >> 1
    while rcv_ssthresh <= window:
        if truesize <= length:
            return 2 * rcv_mss
        truesize >>= 1
        window >>= 1
    return 0


def tcp_grow_window(sk: tcp_sock, skb, adjust: bool) -> None:
    """net/ipv4/tcp_input.c: tcp_grow_window() - raise rcv_ssthresh by max(increment, 2 len), within room.

    room = min(window_clamp, tcp_space()) - rcv_ssthresh; the increment is
    :func:`grow_window_increment` of the skb's truesize, adjusted for
    frag-only skbs (:func:`truesize_adjust_value`).
    """
    room = min(sk.window_clamp, tcp_space(sk)) - sk.rcv_ssthresh
    if room <= 0:
        if sk.events is not None:
            tcp_event(sk, "grow_window_no_room", window_clamp=sk.window_clamp, space=tcp_space(sk),
                      rcv_ssthresh=sk.rcv_ssthresh)
        return
    profile = sk.kernel.profile
    truesize = truesize_adjust_value(adjust, skb.truesize, skb.len, skb_headlen(skb), profile.SKB_TRUESIZE(skb.end))
    incr = grow_window_increment(tcp_win_from_space(sk, truesize), skb.len,
                                 tcp_win_from_space(sk, sk.net.sysctl_tcp_rmem[2]), sk.rcv_ssthresh, sk.advmss,
                                 sk.icsk_ack_rcv_mss)
    old = sk.rcv_ssthresh
    if incr:
        incr = max(incr, 2 * skb.len)
        sk.rcv_ssthresh += min(room, incr)
        sk.icsk_ack_quick |= 1
    if sk.events is not None:
        tcp_event(sk, "grow_window", truesize=truesize, len=skb.len, win_truesize=tcp_win_from_space(sk, truesize),
                  incr=incr, room=room, old=old, rcv_ssthresh=sk.rcv_ssthresh)


def tcp_clamp_window(sk: tcp_sock) -> None:
    """net/ipv4/tcp_input.c: tcp_clamp_window() - after hitting sk_rcvbuf: no more quick ACKs; an
    unlocked sk_rcvbuf below tcp_rmem[2] grows to what is allocated; rcv_ssthresh drops to
    min(window_clamp, 2 advmss) while rmem is still above sk_rcvbuf."""
    sk.icsk_ack_quick = 0
    old_rcvbuf, old_ssthresh = sk.sk_rcvbuf, sk.rcv_ssthresh
    sk.sk_rcvbuf, sk.rcv_ssthresh = clamp_window_values(
        sk.sk_rcvbuf, sk.sk_rmem_alloc, sk.net.sysctl_tcp_rmem[2], bool(sk.sk_userlocks & SOCK_RCVBUF_LOCK),
        sk.window_clamp, sk.advmss, sk.rcv_ssthresh)
    if sk.events is not None:
        tcp_event(sk, "clamp_window", rmem=sk.sk_rmem_alloc, old_rcvbuf=old_rcvbuf, rcvbuf=sk.sk_rcvbuf,
                  old_ssthresh=old_ssthresh, rcv_ssthresh=sk.rcv_ssthresh)


def clamp_window_values(rcvbuf: int, rmem: int, rmem2: int, rcvbuf_locked: bool, window_clamp: int, advmss: int,
                        rcv_ssthresh: int) -> tuple[int, int]:
    """The (sk_rcvbuf, rcv_ssthresh) :func:`tcp_clamp_window` leaves, as ints."""
    if rcvbuf < rmem2 and not rcvbuf_locked:
        rcvbuf = min(rmem, rmem2)
    if rmem > rcvbuf:
        rcv_ssthresh = min(window_clamp, 2 * advmss)
    return rcvbuf, rcv_ssthresh


# -- receive RTT and autotuning ------------------------------------------------------------------


def rcv_rtt_update_value(rule: int, old_sample: int, sample: int, win_dep: bool, queue_empty: bool) -> int:
    """net/ipv4/tcp_input.c: tcp_rcv_rtt_update() - the new rcv_rtt_est.rtt_us (8 times the RTT in us).

    ``rule`` is the feature ``tcp_rcv_rtt_update``'s code (:func:`rule_code`: RTT_SMOOTHED, RTT_MIN,
    RTT_MIN_IDLE), an int so that the fast engine compiles this function as it is.

    'smoothed' (6.9.0): the first sample sets it, a window-based one lowers
    it to a smaller one, a timestamp one moves it by 1/8.  'min' (6.16
    'tcp: always seek for minimal rtt in tcp_rcv_rtt_update()', 6.1.y and
    6.12.y): any smaller sample sets it; larger window-based ones are
    ignored, larger timestamp ones move it by 1/8.  'min_idle' (6.16 'tcp:
    skip big rtt sample if receive queue is not empty'): those only while
    the receive queue is empty.
    """
    m = sample << 3
    if rule == RTT_SMOOTHED:
        if old_sample:
            if not win_dep:
                return old_sample + (sample - (old_sample >> 3))
            return m if m < old_sample else old_sample
        return m
    if old_sample == 0 or m < old_sample:
        return m
    if win_dep or (rule == RTT_MIN_IDLE and not queue_empty):
        return old_sample
    return old_sample - (old_sample >> 3) + sample


def tcp_rcv_rtt_update(sk: tcp_sock, sample: int, win_dep: bool) -> None:
    old = sk.rcv_rtt_est_rtt_us
    sk.rcv_rtt_est_rtt_us = rcv_rtt_update_value(sk.code_rcv_rtt_update, old, sample,
                                                 win_dep, sk.rcv_nxt == sk.copied_seq) & U32
    if sk.events is not None:
        tcp_event(sk, "rcv_rtt", sample=sample, win_dep=win_dep, old=old, rtt_us=sk.rcv_rtt_est_rtt_us)


def tcp_rcv_rtt_measure(sk: tcp_sock) -> None:
    """net/ipv4/tcp_input.c: tcp_rcv_rtt_measure() - without timestamps: the time one window of data took."""
    if sk.rcv_rtt_est_time:
        if before(sk.rcv_nxt, sk.rcv_rtt_est_seq):
            return
        delta_us = (sk.tcp_mstamp - sk.rcv_rtt_est_time) & U32
        tcp_rcv_rtt_update(sk, delta_us or 1, True)
    sk.rcv_rtt_est_seq = (sk.rcv_nxt + sk.rcv_wnd) & U32
    sk.rcv_rtt_est_time = sk.tcp_mstamp


def tcp_rcv_rtt_measure_ts(sk: tcp_sock, skb) -> None:
    """net/ipv4/tcp_input.c: tcp_rcv_rtt_measure_ts() - with timestamps: now less the echoed TSval, for a
    segment of at least rcv_mss bytes with a new TSecr.

    By feature ``tcp_rcv_rtt_ts``: 'ms' (6.1) milliseconds, a zero delta
    counting as 1 ms; 'us' (6.7+, tcp_rtt_tsopt_us()) microseconds, zero
    included; 'us_nonzero' (6.16 'tcp: remove zero TCP TS samples for
    autotuning', 6.12.y) zero samples ignored.
    """
    if not sk.rx_opt_saw_tstamp or sk.rx_opt_rcv_tsecr == sk.rcv_rtt_last_tsecr:
        return
    sk.rcv_rtt_last_tsecr = sk.rx_opt_rcv_tsecr
    cb = skb.cb
    if ((cb.end_seq - cb.seq) & U32) < sk.icsk_ack_rcv_mss:
        return
    delta = (tcp_output.tcp_time_stamp_ms(sk) - sk.rx_opt_rcv_tsecr) & U32
    if delta >= 0x80000000:
        return
    rule = sk.rule_rcv_rtt_ts
    if rule == "ms":
        tcp_rcv_rtt_update(sk, (delta or 1) * 1000, False)
    elif delta or rule == "us":
        tcp_rcv_rtt_update(sk, delta * 1000, False)


def rcvbuf_rcvmem(copied: int, space: int, advmss: int, rcvmem: int, rmem2: int) -> int:
    """net/ipv4/tcp_input.c: tcp_rcv_space_adjust() up to 6.5 - the new sk_rcvbuf candidate.

    rcvwin = 2 copied + 16 advmss, plus twice rcvwin * (copied - space) /
    space for the sender's growth; rcvbuf = rcvwin / advmss segments of
    rcvmem bytes each (see :func:`rcvmem_per_segment`), at most
    tcp_rmem[2].
    """
    rcvwin = (copied << 1) + 16 * advmss
    grow = rcvwin * (copied - space) // space
    rcvwin += grow << 1
    return min((rcvwin // advmss) * rcvmem, rmem2)


def rcvmem_per_segment(advmss_truesize: int, advmss: int, adv_win_scale: int) -> int:
    """6.1's rcvmem: SKB_TRUESIZE(advmss + MAX_TCP_HEADER), raised by 128 until its window worth reaches advmss."""
    rcvmem = advmss_truesize
    while win_from_space_adv(adv_win_scale, rcvmem) < advmss:
        rcvmem += 128
    return rcvmem


def rcvbuf_space_from_win(copied: int, space: int, advmss: int, scaling_ratio: int, rmem2: int) -> int:
    """net/ipv4/tcp_input.c: tcp_rcv_space_adjust() of 6.6 to 6.15: rcvwin as up to 6.5, rcvbuf =
    tcp_space_from_win(rcvwin), at most tcp_rmem[2]."""
    rcvwin = (copied << 1) + 16 * advmss
    grow = rcvwin * (copied - space) // space
    rcvwin += grow << 1
    return min(space_from_win_ratio(scaling_ratio, rcvwin), rmem2)


def rcvbuf_grow_value(rule: int, newval: int, oldval: int, ooo: int, scaling_ratio: int, rmem2: int,
                      rtt_us: int, low_rtt: int) -> int:
    """net/ipv4/tcp_input.c: tcp_rcvbuf_grow() (6.16+) - the new sk_rcvbuf candidate, as ints (``rule``: the
    code of feature ``tcp_rcv_space_adjust``, SPACE_DOUBLE, SPACE_RCVBUF_GROW or SPACE_RCVBUF_GROW_LOW_RTT).

    'double' (6.16 'tcp: fix sk_rcvbuf overshoot', 6.17): rcvwin = 2 space;
    'rcvbuf_grow' (6.18, 'tcp: fix too slow tcp_rcvbuf_grow() action'):
    rcvwin = 2 newval, plus twice rcvwin * (newval - oldval) / oldval;
    'rcvbuf_grow_low_rtt' (6.19, 'tcp: add net.ipv4.tcp_rcvbuf_low_rtt'):
    the growth is rcvwin * rtt / tcp_rcvbuf_low_rtt below that RTT.  Then
    the out-of-order queue's span (ooo) is added, and rcvbuf =
    tcp_space_from_win(rcvwin), at most tcp_rmem[2].
    """
    rcvwin = (newval << 1) & U32
    if rule == SPACE_RCVBUF_GROW:
        grow = rcvwin * (newval - oldval) // oldval
        rcvwin = (rcvwin + (grow << 1)) & U32
    elif rule == SPACE_RCVBUF_GROW_LOW_RTT:
        if rtt_us < low_rtt:
            grow = rcvwin * rtt_us // low_rtt
        else:
            grow = (rcvwin << 1) * (newval - oldval) // oldval
        rcvwin = (rcvwin + grow) & U32
    rcvwin = (rcvwin + ooo) & U32
    return min(space_from_win_ratio(scaling_ratio, rcvwin), rmem2)


def _ooo_span(sk: tcp_sock) -> int:
    if not sk.out_of_order_queue:
        return 0
    return (sk.ooo_last_skb.cb.end_seq - sk.rcv_nxt) & U32


def tcp_rcvbuf_grow(sk: tcp_sock, newval: int) -> None:
    """net/ipv4/tcp_input.c: tcp_rcvbuf_grow() (6.16+): rcvq_space.space becomes newval; unless autotuning
    is off or SO_RCVBUF locked the buffer, sk_rcvbuf grows to :func:`rcvbuf_grow_value` and the window
    clamp follows."""
    oldval = sk.rcvq_space_space
    sk.rcvq_space_space = newval
    net = sk.net
    if not net.sysctl_tcp_moderate_rcvbuf or sk.sk_userlocks & SOCK_RCVBUF_LOCK:
        return
    rule = sk.rule_rcv_space_adjust
    rcvbuf = rcvbuf_grow_value(sk.code_rcv_space_adjust, newval, oldval, _ooo_span(sk), sk.scaling_ratio, net.sysctl_tcp_rmem[2],
                               sk.rcv_rtt_est_rtt_us >> 3, net.sysctl_tcp_rcvbuf_low_rtt)
    _raise_rcvbuf(sk, rcvbuf, rule, newval=newval, oldval=oldval)


def _raise_rcvbuf(sk: tcp_sock, rcvbuf: int, rule: str, **numbers) -> None:
    old = sk.sk_rcvbuf
    if rcvbuf > sk.sk_rcvbuf:
        sk.sk_rcvbuf = rcvbuf
        sk.window_clamp = tcp_win_from_space(sk, rcvbuf)
    if sk.events is not None:
        tcp_event(sk, "rcvbuf_grow", rule=rule, candidate=rcvbuf, old=old, rcvbuf=sk.sk_rcvbuf,
                  window_clamp=sk.window_clamp, **numbers)


def tcp_rcv_space_adjust(sk: tcp_sock) -> None:
    """net/ipv4/tcp_input.c: tcp_rcv_space_adjust() - after a read: once per receive RTT, grow sk_rcvbuf
    when more was copied in that RTT than last time (rcvq_space.space).

    The formula is the release's (feature ``tcp_rcv_space_adjust``):
    'rcvmem' (up to 6.5), 'space_from_win' (6.6 to 6.15), 'space_from_win_inq'
    (the 6.12.y stable form of 6.16's 'tcp: add receive queue awareness in
    tcp_rcv_space_adjust()': bytes still queued do not count as copied),
    'double' (6.16, 6.17), 'rcvbuf_grow' (6.18), 'rcvbuf_grow_low_rtt'
    (6.19, which also stops refreshing tcp_mstamp here).
    """
    rule = sk.rule_rcv_space_adjust
    if rule != "rcvbuf_grow_low_rtt":
        tcp_mstamp_refresh(sk)
    elif not sk.rcv_rtt_est_rtt_us:
        return
    elapsed = (sk.tcp_mstamp - sk.rcvq_space_time) & U32
    if elapsed < (sk.rcv_rtt_est_rtt_us >> 3) or sk.rcv_rtt_est_rtt_us == 0:
        return
    copied = (sk.copied_seq - sk.rcvq_space_seq) & U32
    if rule not in ("rcvmem", "space_from_win"):
        copied -= (sk.rcv_nxt - sk.copied_seq) & U32
    space = sk.rcvq_space_space
    if sk.events is not None:
        tcp_event(sk, "rcv_space_adjust", time=elapsed, rtt_us=sk.rcv_rtt_est_rtt_us >> 3, copied=copied, space=space)
    if copied > space:
        if rule in ("double", "rcvbuf_grow", "rcvbuf_grow_low_rtt"):
            if rule == "double":
                sk.rcvq_space_space = copied
                tcp_rcvbuf_grow(sk, copied)
            else:
                tcp_rcvbuf_grow(sk, copied)
        else:
            net = sk.net
            if net.sysctl_tcp_moderate_rcvbuf and not sk.sk_userlocks & SOCK_RCVBUF_LOCK:
                profile = sk.kernel.profile
                if rule == "rcvmem":
                    rcvmem = rcvmem_per_segment(profile.SKB_TRUESIZE(sk.advmss + profile.MAX_TCP_HEADER), sk.advmss,
                                                net.sysctl_tcp_adv_win_scale)
                    rcvbuf = rcvbuf_rcvmem(copied, space, sk.advmss, rcvmem, net.sysctl_tcp_rmem[2])
                else:
                    rcvbuf = rcvbuf_space_from_win(copied, space, sk.advmss, sk.scaling_ratio,
                                                   net.sysctl_tcp_rmem[2])
                _raise_rcvbuf(sk, rcvbuf, rule, newval=copied, oldval=space)
            sk.rcvq_space_space = copied
    sk.rcvq_space_seq = sk.copied_seq
    sk.rcvq_space_time = sk.tcp_mstamp


def tcp_event_data_recv(sk: tcp_sock, skb) -> None:
    """net/ipv4/tcp_input.c: tcp_event_data_recv() - new in-order data: schedule an ACK, measure rcv_mss
    and the receive RTT, update ato (the first data starts quick-ACK mode, a gap above the RTO
    restarts it), grow rcv_ssthresh for segments of 128 bytes or more."""
    inet_csk_schedule_ack(sk)
    tcp_measure_rcv_mss(sk, skb)
    tcp_rcv_rtt_measure(sk)
    now = tcp_jiffies32(sk)
    ato_min = TCP_ATO_MIN(sk.net.HZ)
    if not sk.icsk_ack_ato:
        tcp_incr_quickack(sk, TCP_MAX_QUICKACKS)
        sk.icsk_ack_ato = ato_min
    else:
        m = (now - sk.icsk_ack_lrcvtime) & U32
        if m >= 0x80000000:
            m -= 1 << 32
        if m <= ato_min // 2:
            sk.icsk_ack_ato = (sk.icsk_ack_ato >> 1) + ato_min // 2
        elif m < sk.icsk_ack_ato:
            sk.icsk_ack_ato = min((sk.icsk_ack_ato >> 1) + m, sk.icsk_rto)
        elif m > sk.icsk_rto:
            tcp_incr_quickack(sk, TCP_MAX_QUICKACKS)
            if sk.events is not None:
                tcp_event(sk, "quickack_after_gap", gap=m, rto=sk.icsk_rto, quick=sk.icsk_ack_quick)
    sk.icsk_ack_lrcvtime = now
    if skb.len >= 128:
        tcp_grow_window(sk, skb, True)


# -- queueing -----------------------------------------------------------------------------------


def tcp_drop_reason(sk: tcp_sock, skb, reason: str) -> None:
    """net/ipv4/tcp_input.c: tcp_drop_reason() - count the drop on the socket (sk_drops) and free the skb."""
    sk.sk_drops += 1
    _verdict(sk, skb, f"dropped:{reason}")
    kfree_skb(sk.kernel, skb, reason)


def _verdict(sk: tcp_sock, skb, verdict: str, route: str | None = None) -> None:
    """Note what happened to the segment being received (the step record's route and verdict)."""
    rx = sk.rx
    if rx is not None and rx[0] is skb:
        rx[2] = verdict
        if route is not None:
            rx[1] = route


def tcp_try_coalesce(sk: tcp_sock, to, frm) -> tuple[bool, bool]:
    """net/ipv4/tcp_input.c: tcp_try_coalesce() - append frm to the queued skb to: (done, fragstolen).

    Only contiguous data; the truesize that moves (skb_try_coalesce()'s
    delta) is charged to the socket.
    """
    if frm.cb.seq != to.cb.end_seq:
        return False, False
    done, stolen, delta = skb_try_coalesce(sk.kernel, to, frm)
    if not done:
        return False, False
    sk.sk_rmem_alloc += delta
    sk_mem_charge(sk, delta)
    NET_INC_STATS(sk, "TCPRcvCoalesce")
    to.cb.end_seq = frm.cb.end_seq
    to.cb.ack_seq = frm.cb.ack_seq
    to.cb.tcp_flags |= frm.cb.tcp_flags
    if sk.events is not None:
        tcp_event(sk, "coalesce", len=frm.len, delta=delta, stolen=stolen, to_truesize=to.truesize)
    return True, stolen


def tcp_can_ingest(sk: tcp_sock, skb) -> bool:
    """net/ipv4/tcp_input.c: tcp_can_ingest() / the sk_rcvbuf test of tcp_try_rmem_schedule().

    Feature ``tcp_rcvbuf_admission``: 'rmem' (up to 6.16, and 6.18.y
    after the 2026 stable 'tcp: give up on stronger sk_rcvbuf checks (for
    now)'): sk_rmem_alloc <= sk_rcvbuf; 'rmem_plus_truesize' (6.17 'tcp:
    stronger sk_rcvbuf checks'): plus the skb's truesize; 'rmem_plus_len'
    (6.18.0 'tcp: use skb->len instead of skb->truesize in
    tcp_can_ingest()'): plus its len.
    """
    return can_ingest_value(sk.code_rcvbuf_admission, sk.sk_rmem_alloc, sk.sk_rcvbuf,
                            skb.truesize, skb.len)


def can_ingest_value(rule: int, rmem: int, rcvbuf: int, truesize: int, length: int) -> bool:
    """The admission test of :func:`tcp_can_ingest`, as ints (``rule``: the code of feature
    ``tcp_rcvbuf_admission``, ADMIT_RMEM, ADMIT_RMEM_PLUS_TRUESIZE or ADMIT_RMEM_PLUS_LEN)."""
    if rule == ADMIT_RMEM_PLUS_TRUESIZE:
        return rmem + truesize <= rcvbuf
    if rule == ADMIT_RMEM_PLUS_LEN:
        return rmem + length <= rcvbuf
    return rmem <= rcvbuf


def tcp_try_rmem_schedule(sk: tcp_sock, skb, size: int) -> int:
    """net/ipv4/tcp_input.c: tcp_try_rmem_schedule() - 0 if size bytes may be charged, else -1.

    Over the admission rule, or without forward allocation, the queues are
    pruned first (tcp_prune_queue(), then the out-of-order queue).
    """
    ingest = tcp_can_ingest(sk, skb)
    if not ingest or not sk_rmem_schedule(sk, skb, size):
        if sk.events is not None:
            tcp_event(sk, "rmem_schedule_fails", rule=sk.rule_rcvbuf_admission,
                      rmem=sk.sk_rmem_alloc, rcvbuf=sk.sk_rcvbuf, truesize=skb.truesize, len=skb.len)
        if tcp_prune_queue(sk, skb) < 0:
            return -1
        while not sk_rmem_schedule(sk, skb, size):
            if not tcp_prune_ofo_queue(sk, skb):
                return -1
    return 0


def tcp_rcv_nxt_update(sk: tcp_sock, seq: int) -> None:
    """net/ipv4/tcp_input.c: tcp_rcv_nxt_update()."""
    sk.rcv_nxt = seq & U32


def tcp_queue_rcv(sk: tcp_sock, skb) -> tuple[int, bool]:
    """net/ipv4/tcp_input.c: tcp_queue_rcv() - coalesce into the receive queue's tail or append: (eaten, stolen)."""
    tail = sk.sk_receive_queue[-1] if sk.sk_receive_queue else None
    eaten, stolen = tcp_try_coalesce(sk, tail, skb) if tail is not None else (False, False)
    tcp_rcv_nxt_update(sk, skb.cb.end_seq)
    if not eaten:
        sk.sk_receive_queue.append(skb)
        skb_set_owner_r(skb, sk)
        _verdict(sk, skb, "queued")
    else:
        _verdict(sk, skb, "coalesced")
    return int(eaten), stolen


def tcp_fast_path_on(sk: tcp_sock) -> None:
    """include/net/tcp.h: tcp_fast_path_on() - predict the peer's next header (its window field)."""
    sk.pred_flags = sk.snd_wnd >> sk.rx_opt_snd_wscale


def tcp_fast_path_check(sk: tcp_sock) -> None:
    """include/net/tcp.h: tcp_fast_path_check() - header prediction back on when nothing is out of order,
    the window is open and sk_rmem_alloc is below sk_rcvbuf."""
    if not sk.out_of_order_queue and sk.rcv_wnd and sk.sk_rmem_alloc < sk.sk_rcvbuf:
        tcp_fast_path_on(sk)


def tcp_ofo_queue(sk: tcp_sock) -> None:
    """net/ipv4/tcp_input.c: tcp_ofo_queue() - move what the new data made in-order into the receive queue."""
    ofo = sk.out_of_order_queue
    while ofo:
        skb = ofo[0]
        if after(skb.cb.seq, sk.rcv_nxt):
            break
        ofo.pop(0)
        if not after(skb.cb.end_seq, sk.rcv_nxt):
            tcp_drop_reason(sk, skb, "TCP_OFO_DROP")
            continue
        tail = sk.sk_receive_queue[-1] if sk.sk_receive_queue else None
        eaten, stolen = tcp_try_coalesce(sk, tail, skb) if tail is not None else (False, False)
        tcp_rcv_nxt_update(sk, skb.cb.end_seq)
        if not eaten:
            sk.sk_receive_queue.append(skb)
        else:
            kfree_skb_partial(sk.kernel, skb, stolen)
    sk.ooo_last_skb = ofo[-1] if ofo else None
    _update_sacks(sk)


def _update_sacks(sk: tcp_sock) -> None:
    """The number of SACK blocks the out-of-order queue needs (tcp_sack_new_ofo_skb(), tcp_sack_remove()),
    at most 4."""
    if not sk.rx_opt_sack_ok:
        sk.num_sacks = 0
        return
    blocks = 0
    end = None
    for skb in sk.out_of_order_queue:
        if end is None or after(skb.cb.seq, end):
            blocks += 1
        end = skb.cb.end_seq if end is None or after(skb.cb.end_seq, end) else end
    sk.num_sacks = min(blocks, 4)


def tcp_ooo_insert(sk: tcp_sock, skb) -> None:
    """tcp_rbtree_insert() into the out-of-order queue, kept in sequence order."""
    ofo = sk.out_of_order_queue
    i = len(ofo)
    while i and before(skb.cb.seq, ofo[i - 1].cb.seq):
        i -= 1
    ofo.insert(i, skb)


def tcp_data_queue_ofo(sk: tcp_sock, skb) -> None:
    """net/ipv4/tcp_input.c: tcp_data_queue_ofo() - a segment beyond rcv_nxt goes to the out-of-order queue.

    It is admitted like in-order data (tcp_try_rmem_schedule(); refused:
    TCPOFODrop, PROTO_MEM), then coalesced into the queue's last skb when
    it continues it, or inserted in sequence order (overlaps are not
    modelled: the peer never sends them), condensed (skb_condense()) and
    charged.  6.12.y and 6.17+ measure rcv_mss first (feature
    ``tcp_ofo_measure_rcv_mss``); with SACK the window grows too; 6.16+
    may grow sk_rcvbuf for the queue's span (tcp_rcvbuf_grow()).
    """
    _verdict(sk, skb, "", "ofo")
    if tcp_try_rmem_schedule(sk, skb, skb.truesize):
        NET_INC_STATS(sk, "TCPOFODrop")
        tcp_drop_reason(sk, skb, "PROTO_MEM")
        return
    if sk.has_ofo_measure_rcv_mss:
        tcp_measure_rcv_mss(sk, skb)
    sk.pred_flags = None
    inet_csk_schedule_ack(sk)
    NET_INC_STATS(sk, "TCPOFOQueue")
    ofo = sk.out_of_order_queue
    last = sk.ooo_last_skb
    queued = skb
    if last is not None:
        eaten, stolen = tcp_try_coalesce(sk, last, skb)
        if eaten:
            if sk.rx_opt_sack_ok:
                tcp_grow_window(sk, skb, True)
            _verdict(sk, skb, "coalesced")
            kfree_skb_partial(sk.kernel, skb, stolen)
            queued = None
    if queued is not None:
        tcp_ooo_insert(sk, skb)
        sk.ooo_last_skb = ofo[-1]
        if sk.rx_opt_sack_ok:
            tcp_grow_window(sk, skb, False)
        before_condense = skb.truesize
        skb_condense(sk.kernel, skb)
        if skb.truesize != before_condense:
            if sk.events is not None:
                tcp_event(sk, "skb_condense", before=before_condense, after=skb.truesize)
        skb_set_owner_r(skb, sk)
        _verdict(sk, skb, "queued")
    _update_sacks(sk)
    if sk.rule_rcv_space_adjust in ("double", "rcvbuf_grow", "rcvbuf_grow_low_rtt") and sk.sk_socket:
        tcp_rcvbuf_grow(sk, sk.rcvq_space_space)


def tcp_data_queue(sk: tcp_sock, skb) -> None:
    """net/ipv4/tcp_input.c: tcp_data_queue() - in-order data into the receive queue, the rest elsewhere.

    With a zero receive window the segment is dropped (TCPZeroWindowDrop).
    Otherwise it must pass tcp_try_rmem_schedule(); when that fails (feature
    ``tcp_nomem_ack``): up to 6.7 the segment is dropped (TCPRcvQDrop), unless
    the receive queue was empty, in which case memory is forced without a
    check; from 6.8 an immediate zero-window ACK is scheduled and the
    segment dropped only if data is queued (else forced).  Then it is
    queued (coalesced when possible) and counted (tcp_event_data_recv()),
    the out-of-order queue is drained into the receive queue, header
    prediction checked.  Segments beyond rcv_nxt go to
    tcp_data_queue_ofo(), beyond the window they are dropped
    (TCP_OVERWINDOW).
    """
    cb = skb.cb
    if cb.seq == cb.end_seq:
        __kfree_skb(sk.kernel, skb)
        return
    # __skb_pull(skb, th->doff * 4)
    skb.data += cb.doff
    skb.len -= cb.doff
    if cb.seq == sk.rcv_nxt:
        if tcp_receive_window(sk) == 0:
            NET_INC_STATS(sk, "TCPZeroWindowDrop")
            if sk.events is not None:
                tcp_event(sk, "zero_window_drop", rcv_wnd=sk.rcv_wnd)
            _out_of_window(sk, skb, "TCP_ZEROWINDOW")
            return
        nomem = sk.rule_nomem_ack
        if nomem == "none":
            if not sk.sk_receive_queue:
                sk_forced_mem_schedule(sk, skb.truesize)
            elif tcp_try_rmem_schedule(sk, skb, skb.truesize):
                NET_INC_STATS(sk, "TCPRcvQDrop")
                if sk.events is not None:
                    tcp_event(sk, "rcvq_drop", rmem=sk.sk_rmem_alloc, rcvbuf=sk.sk_rcvbuf)
                tcp_drop_reason(sk, skb, "PROTO_MEM")
                return
        elif tcp_try_rmem_schedule(sk, skb, skb.truesize):
            sk.icsk_ack_pending |= ICSK_ACK_NOMEM | ICSK_ACK_NOW
            inet_csk_schedule_ack(sk)
            if sk.sk_receive_queue and skb.len:
                NET_INC_STATS(sk, "TCPRcvQDrop")
                if sk.events is not None:
                    tcp_event(sk, "rcvq_drop", rmem=sk.sk_rmem_alloc, rcvbuf=sk.sk_rcvbuf)
                tcp_drop_reason(sk, skb, "PROTO_MEM")
                return
            sk_forced_mem_schedule(sk, skb.truesize)
            if sk.events is not None:
                tcp_event(sk, "forced_mem_schedule", truesize=skb.truesize, fwd_alloc=sk.sk_forward_alloc)
        eaten, stolen = tcp_queue_rcv(sk, skb)
        if skb.len:
            tcp_event_data_recv(sk, skb)
        if sk.out_of_order_queue:
            tcp_ofo_queue(sk)
            if not sk.out_of_order_queue:
                sk.icsk_ack_pending |= ICSK_ACK_NOW
        tcp_fast_path_check(sk)
        if eaten:
            kfree_skb_partial(sk.kernel, skb, stolen)
        return
    if not after(cb.end_seq, sk.rcv_nxt):
        # A retransmission: the peer of the model never sends one.
        _out_of_window(sk, skb, "TCP_OLD_DATA")
        return
    if not before(cb.seq, (sk.rcv_nxt + tcp_receive_window(sk)) & U32):
        if sk.rule_sequence_check == "end_seq_max_wnd":
            NET_INC_STATS(sk, "TCPBeyondWindow")  # 7.1 counts these too
        _out_of_window(sk, skb, "TCP_OVERWINDOW")
        return
    tcp_data_queue_ofo(sk, skb)


def _out_of_window(sk: tcp_sock, skb, reason: str) -> None:
    """tcp_data_queue()'s out_of_window: quick-ACK mode, an ACK scheduled, the segment dropped."""
    tcp_enter_quickack_mode(sk, TCP_MAX_QUICKACKS)
    inet_csk_schedule_ack(sk)
    tcp_drop_reason(sk, skb, reason)


# -- pressure -----------------------------------------------------------------------------------


def SKB_MAX_ORDER0(profile) -> int:
    """include/linux/skbuff.h: SKB_MAX_ORDER(0, 0) = SKB_WITH_OVERHEAD(PAGE_SIZE): the data of one collapsed skb."""
    return profile.SKB_WITH_OVERHEAD(profile.PAGE_SIZE)


def _queue_of(sk: tcp_sock, in_receive_queue: bool) -> list:
    return sk.sk_receive_queue if in_receive_queue else sk.out_of_order_queue


def _next_in(queue: list, skb):
    i = queue.index(skb) + 1
    return queue[i] if i < len(queue) else None


def tcp_collapse_one(sk: tcp_sock, skb, queue: list):
    """net/ipv4/tcp_input.c: tcp_collapse_one() - free a collapsed skb (TCPRcvCollapsed); return the next one."""
    nxt = _next_in(queue, skb)
    queue.remove(skb)
    __kfree_skb(sk.kernel, skb)
    NET_INC_STATS(sk, "TCPRcvCollapsed")
    return nxt


def tcp_collapse(sk: tcp_sock, in_receive_queue: bool, head, tail, start: int, end: int) -> None:
    """net/ipv4/tcp_input.c: tcp_collapse() - copy the data of [start, end) into compact skbs.

    From the first skb worth collapsing - one whose truesize is worth more
    window than its len ("bloated"), or that starts before ``start``, or
    that is not contiguous with the next - the bytes are copied into new
    skbs of at most SKB_WITH_OVERHEAD(PAGE_SIZE) bytes (alloc_skb(): a
    4 KiB-class kmalloc head, truesize 4352 on x86_64), each charged to the
    socket, and the old skbs are freed.
    """
    kernel = sk.kernel
    queue = _queue_of(sk, in_receive_queue)
    skb = head
    while True:
        end_of_skbs = True
        restart = False
        while skb is not None and skb is not tail:
            n = _next_in(queue, skb)
            if not before(start, skb.cb.end_seq):
                skb = tcp_collapse_one(sk, skb, queue)
                if skb is None:
                    break
                restart = True
                break
            if not skb.cb.tcp_flags & (TCPHDR_SYN | TCPHDR_FIN) and (
                    tcp_win_from_space(sk, skb.truesize) > skb.len or before(skb.cb.seq, start)):
                end_of_skbs = False
                break
            if n is not None and n is not tail and skb.cb.end_seq != n.cb.seq:
                end_of_skbs = False
                break
            start = skb.cb.end_seq
            skb = n
        if not restart:
            break
    if end_of_skbs or skb.cb.tcp_flags & (TCPHDR_SYN | TCPHDR_FIN):
        return
    if sk.events is not None:
        tcp_event(sk, "collapse", queue="receive" if in_receive_queue else "ofo", start=start, end=end,
                  truesize=skb.truesize, len=skb.len)
    tmp = []
    max_copy = SKB_MAX_ORDER0(kernel.profile)
    while before(start, end):
        copy = min(max_copy, (end - start) & U32)
        nskb = alloc_skb(kernel, copy, GFP_ATOMIC)
        if nskb is None:
            break
        c = skb.cb
        nskb.cb = tcp_skb_cb(start, start, c.ack_seq, c.tcp_flags, c.doff, c.window, c.tsval, c.tsecr)
        if in_receive_queue:
            queue.insert(queue.index(skb), nskb)
        else:
            tmp.append(nskb)
        skb_set_owner_r(nskb, sk)
        if sk.events is not None:
            tcp_event(sk, "collapse_skb", copy=copy, truesize=nskb.truesize)
        done = False
        while copy > 0:
            size = (skb.cb.end_seq - start) & U32
            if size and size < 0x80000000:
                size = min(copy, size)
                skb_put(nskb, size)
                sk.collapse_copied += size
                nskb.cb.end_seq = (nskb.cb.end_seq + size) & U32
                copy -= size
                start = (start + size) & U32
            if not before(start, skb.cb.end_seq):
                skb = tcp_collapse_one(sk, skb, queue)
                if skb is None or skb is tail or skb.cb.tcp_flags & (TCPHDR_SYN | TCPHDR_FIN):
                    done = True
                    break
        if done:
            break
    for nskb in tmp:
        tcp_ooo_insert(sk, nskb)


def tcp_collapse_ofo_queue(sk: tcp_sock) -> None:
    """net/ipv4/tcp_input.c: tcp_collapse_ofo_queue() - collapse each contiguous range of the out-of-order
    queue, except single skbs worth less than a page of data (stopping once those add up to an eighth
    of sk_rcvbuf)."""
    profile = sk.kernel.profile
    ofo = sk.out_of_order_queue
    sum_tiny = 0
    i = 0
    while i < len(ofo):
        head = ofo[i]
        start, end = head.cb.seq, head.cb.end_seq
        range_truesize = head.truesize
        j = i + 1
        while j < len(ofo):
            skb = ofo[j]
            if after(skb.cb.seq, end) or before(skb.cb.end_seq, start):
                break
            range_truesize += skb.truesize
            if before(skb.cb.seq, start):
                start = skb.cb.seq
            if after(skb.cb.end_seq, end):
                end = skb.cb.end_seq
            j += 1
        nxt = ofo[j] if j < len(ofo) else None
        if range_truesize != head.truesize or ((end - start) & U32) >= profile.SKB_WITH_OVERHEAD(profile.PAGE_SIZE):
            tcp_collapse(sk, False, head, nxt, start, end)
        else:
            sum_tiny += range_truesize
            if sum_tiny > sk.sk_rcvbuf >> 3:
                return
        i = ofo.index(nxt) if nxt is not None else len(ofo)
    sk.ooo_last_skb = ofo[-1] if ofo else None


def tcp_prune_ofo_queue(sk: tcp_sock, in_skb) -> bool:
    """net/ipv4/tcp_input.c: tcp_prune_ofo_queue() - drop out-of-order skbs from the end (an eighth of
    sk_rcvbuf at a time) until the incoming skb fits.

    Feature ``tcp_prune_ofo_queue``: 'all' (6.1) may drop everything;
    'after_in_skb' (6.2 'tcp: refine tcp_prune_ofo_queue() logic') stops at
    skbs before the incoming one.
    """
    ofo = sk.out_of_order_queue
    if not ofo:
        return False
    after_in_skb = sk.rule_prune_ofo_queue == "after_in_skb"
    goal = sk.sk_rcvbuf >> 3
    pruned = False
    if not after_in_skb:
        NET_INC_STATS(sk, "OfoPruned")
    while ofo:
        skb = ofo[-1]
        if after_in_skb and after(in_skb.cb.seq, skb.cb.seq):
            break
        pruned = True
        ofo.pop()
        goal -= skb.truesize
        tcp_drop_reason(sk, skb, "TCP_OFO_QUEUE_PRUNE")
        if not ofo or goal <= 0:
            if tcp_can_ingest(sk, in_skb):
                break
            goal = sk.sk_rcvbuf >> 3
    sk.ooo_last_skb = ofo[-1] if ofo else None
    if pruned and after_in_skb:
        NET_INC_STATS(sk, "OfoPruned")
    if pruned:
        _update_sacks(sk)
    if sk.events is not None:
        tcp_event(sk, "prune_ofo", pruned=pruned, left=len(ofo))
    return pruned if after_in_skb else True


def prune_fits_value(rule: int, admit: int, rmem: int, rcvbuf: int, truesize: int, length: int) -> bool:
    """Whether :func:`tcp_prune_queue` is done (``rule``: the code of feature ``tcp_prune_queue``, ``admit``
    that of ``tcp_rcvbuf_admission``; the incoming skb's truesize and len)."""
    if rule == PRUNE_CAN_INGEST:
        return can_ingest_value(admit, rmem, rcvbuf, truesize, length)
    return rmem <= rcvbuf


def prune_over_value(rule: int, admit: int, rmem: int, rcvbuf: int, truesize: int, length: int) -> bool:
    """Whether :func:`tcp_prune_queue` clamps the window first (tcp_clamp_window())."""
    if rule == PRUNE_CAN_INGEST:
        return not can_ingest_value(admit, rmem, rcvbuf, truesize, length)
    return rmem >= rcvbuf


def tcp_prune_queue(sk: tcp_sock, in_skb) -> int:
    """net/ipv4/tcp_input.c: tcp_prune_queue() - 0 once the incoming skb fits again, -1 if it cannot.

    PruneCalled; over sk_rcvbuf, tcp_clamp_window(); then collapse the
    out-of-order queue and the receive queue (copied_seq..rcv_nxt), then
    prune the out-of-order queue; RcvPruned when nothing helped.  Feature
    ``tcp_prune_queue``: 'rmem_vs_rcvbuf' (up to 6.16) clamps when
    sk_rmem_alloc >= sk_rcvbuf and stops when it is <= sk_rcvbuf;
    'can_ingest' (6.17+) uses tcp_can_ingest() for both and does nothing
    (-1) with empty queues.
    """
    rule = sk.rule_prune_queue
    code, admit = sk.code_prune_queue, sk.code_rcvbuf_admission
    if code == PRUNE_CAN_INGEST and not sk.sk_rmem_alloc:
        return -1

    def fits() -> bool:
        return prune_fits_value(code, admit, sk.sk_rmem_alloc, sk.sk_rcvbuf, in_skb.truesize, in_skb.len)
    over = prune_over_value(code, admit, sk.sk_rmem_alloc, sk.sk_rcvbuf, in_skb.truesize, in_skb.len)
    NET_INC_STATS(sk, "PruneCalled")
    if sk.events is not None:
        tcp_event(sk, "prune", rule=rule, rmem=sk.sk_rmem_alloc, rcvbuf=sk.sk_rcvbuf)
    if over:
        tcp_clamp_window(sk)
    if fits():
        return 0
    tcp_collapse_ofo_queue(sk)
    if sk.sk_receive_queue:
        tcp_collapse(sk, True, sk.sk_receive_queue[0], None, sk.copied_seq, sk.rcv_nxt)
    if sk.events is not None:
        tcp_event(sk, "after_collapse", rmem=sk.sk_rmem_alloc, rcvbuf=sk.sk_rcvbuf)
    if fits():
        return 0
    tcp_prune_ofo_queue(sk, in_skb)
    if fits():
        return 0
    NET_INC_STATS(sk, "RcvPruned")
    sk.pred_flags = None
    if sk.events is not None:
        tcp_event(sk, "rcv_pruned", rmem=sk.sk_rmem_alloc, rcvbuf=sk.sk_rcvbuf)
    return -1


# -- ACKs ---------------------------------------------------------------------------------------


def __tcp_ack_snd_check(sk: tcp_sock, ofo_possible: bool) -> None:
    """net/ipv4/tcp_input.c: __tcp_ack_snd_check() - ACK now, or arm the delayed-ACK timer.

    Now when more than one rcv_mss is unacknowledged and the window we
    would offer is at least the current one, in quick-ACK mode, or when
    ICSK_ACK_NOW asks.  While the backlog is processed (the process holds
    the lock) 6.8+ defers that ACK to tcp_release_cb() (feature
    ``tcp_backlog_ack_defer``, sysctl tcp_backlog_ack_defer).  With SACK
    and an out-of-order queue, ACKs after the third duplicate are
    compressed behind a short hrtimer.
    """
    unacked = (sk.rcv_nxt - sk.rcv_wup) & U32
    now = False
    if unacked > sk.icsk_ack_rcv_mss and (
            ((sk.rcv_nxt - sk.copied_seq) & U32) < sk.sk_rcvlowat or tcp_output.__tcp_select_window(sk) >= sk.rcv_wnd):
        now = True
        if sk.events is not None:
            tcp_event(sk, "ack_now_two_segments", unacked=unacked, rcv_mss=sk.icsk_ack_rcv_mss)
    elif tcp_in_quickack_mode(sk):
        now = True
        if sk.events is not None:
            tcp_event(sk, "ack_now_quick", quick=sk.icsk_ack_quick)
    elif sk.icsk_ack_pending & ICSK_ACK_NOW:
        now = True
        if sk.events is not None:
            tcp_event(sk, "ack_now_flag")
    if now:
        if sk.owned_by_user and sk.has_backlog_ack_defer and sk.net.sysctl_tcp_backlog_ack_defer:
            sk.tsq_flags |= TCP_ACK_DEFERRED
            return
        tcp_output.tcp_send_ack(sk)
        return
    if not ofo_possible or not sk.out_of_order_queue:
        tcp_output.tcp_send_delayed_ack(sk)
        return
    if not sk.rx_opt_sack_ok or sk.compressed_ack >= sk.net.sysctl_tcp_comp_sack_nr:
        tcp_output.tcp_send_ack(sk)
        return
    if sk.compressed_ack_rcv_nxt != sk.rcv_nxt:
        sk.compressed_ack_rcv_nxt = sk.rcv_nxt
        sk.dup_ack_counter = 0
    if sk.dup_ack_counter < TCP_FASTRETRANS_THRESH:
        sk.dup_ack_counter += 1
        tcp_output.tcp_send_ack(sk)
        return
    sk.compressed_ack += 1
    if sk.compressed_ack_timer is not None:
        return
    rtt = sk.rcv_rtt_est_rtt_us
    if sk.srtt_us and sk.srtt_us < rtt:
        rtt = sk.srtt_us
    net = sk.net
    delay_ns = comp_sack_delay_ns(sk.rule_comp_sack_delay == "rtt_percent", rtt,
                                  net.sysctl_tcp_comp_sack_rtt_percent, net.sysctl_tcp_comp_sack_delay_ns)
    sk.compressed_ack_timer = net.now_us + delay_ns // 1000
    if sk.events is not None:
        tcp_event(sk, "ack_compressed", count=sk.compressed_ack, delay_ns=delay_ns)


def comp_sack_delay_ns(rtt_percent_rule: bool, rtt8: int, rtt_percent: int, delay_max_ns: int) -> int:
    """net/ipv4/tcp_input.c: __tcp_ack_snd_check()'s SACK compression delay in ns, from the receive RTT rtt8
    (microseconds << 3): 5 % of the RTT, rtt8 * (NSEC_PER_USEC >> 3) / 20, up to 6.18; from 6.19 ('tcp: add
    net.ipv4.tcp_comp_sack_rtt_percent') (rtt8 + rtt8 / 4) * tcp_comp_sack_rtt_percent, i.e. that percent of
    the RTT; at most tcp_comp_sack_delay_ns either way."""
    if rtt_percent_rule:
        return min((rtt8 + (rtt8 >> 2)) * rtt_percent, delay_max_ns)
    return min(delay_max_ns, rtt8 * (1000 >> 3) // 20)


def tcp_ack_snd_check(sk: tcp_sock) -> None:
    """net/ipv4/tcp_input.c: tcp_ack_snd_check() - only if an ACK is scheduled."""
    if not inet_csk_ack_scheduled(sk):
        return
    __tcp_ack_snd_check(sk, True)


def tcp_send_dupack(sk: tcp_sock, skb) -> None:
    """net/ipv4/tcp_input.c: tcp_send_dupack() - an ACK for an unacceptable segment (quick-ACK mode for
    old data first)."""
    cb = skb.cb
    if cb.end_seq != cb.seq and before(cb.seq, sk.rcv_nxt):
        tcp_enter_quickack_mode(sk, TCP_MAX_QUICKACKS)
    tcp_output.tcp_send_ack(sk)


# -- the segment ---------------------------------------------------------------------------------

# include/net/tcp.h: TCP option kinds
TCPOPT_EOL = 0
TCPOPT_NOP = 1
TCPOPT_MSS = 2
TCPOPT_WINDOW = 3
TCPOPT_SACK_PERM = 4
TCPOPT_TIMESTAMP = 8
#: NOP, NOP, then the timestamp option (kind 8, length 10): TCPOLEN_TSTAMP_ALIGNED bytes, what Linux puts on
#: every segment once timestamps are on (tcp_options_write()).
TCPOPT_TSTAMP_ALIGNED = bytes((TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP, 10))
_TSTAMP_VALUES = struct.Struct(">II")


class tcp_options_received:
    """include/linux/tcp.h: struct tcp_options_received, the part the receive side reads: the SYN's MSS
    (``mss_clamp``, 0 without the option), window scale (``snd_wscale``, None without the option), SACK
    permitted, and any segment's timestamps (``rcv_tsval``/``rcv_tsecr``, None without the option)."""

    __slots__ = ("mss_clamp", "snd_wscale", "sack_ok", "rcv_tsval", "rcv_tsecr")

    def __init__(self) -> None:
        self.mss_clamp = 0
        self.snd_wscale: int | None = None
        self.sack_ok = False
        self.rcv_tsval: int | None = None
        self.rcv_tsecr: int | None = None


def tcp_parse_options(options: bytes, syn: bool) -> tcp_options_received:
    """net/ipv4/tcp_input.c: tcp_parse_options() - the option bytes after the 20-byte header.

    MSS, window scale and SACK permitted count only on a SYN; the
    timestamp option on every segment.  An option that runs past the end,
    or with a length below 2, ends the parse, as in the kernel.
    """
    opt = tcp_options_received()
    if len(options) == TCPOLEN_TSTAMP_ALIGNED and options[:4] == TCPOPT_TSTAMP_ALIGNED:
        # The common layout, read at once (the loop below would read the same two NOPs and the option).
        opt.rcv_tsval, opt.rcv_tsecr = _TSTAMP_VALUES.unpack_from(options, 4)
        return opt
    i = 0
    end = len(options)
    while i < end:
        kind = options[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            break
        size = options[i + 1]
        if size < 2 or i + size > end:
            break
        if kind == TCPOPT_MSS and size == 4 and syn:
            opt.mss_clamp = int.from_bytes(options[i + 2:i + 4], "big")
        elif kind == TCPOPT_WINDOW and size == 3 and syn:
            opt.snd_wscale = min(options[i + 2], 14)
        elif kind == TCPOPT_SACK_PERM and size == 2 and syn:
            opt.sack_ok = True
        elif kind == TCPOPT_TIMESTAMP and size == 10:
            opt.rcv_tsval = int.from_bytes(options[i + 2:i + 6], "big")
            opt.rcv_tsecr = int.from_bytes(options[i + 6:i + 10], "big")
        i += size
    return opt


def tcp_ack_update_window(sk: tcp_sock, skb) -> None:
    """net/ipv4/tcp_input.c: tcp_ack_update_window() on the slow path, as far as the receive side needs it:
    a changed window field becomes snd_wnd (scaled by the peer's window scale), and header prediction
    is redone for it (tcp_fast_path_check()).  The receiver of the model sends no data, so the ACK
    number acknowledges nothing and the update is always allowed."""
    nwin = skb.cb.window << sk.rx_opt_snd_wscale
    if nwin != sk.snd_wnd:
        sk.snd_wnd = nwin
        sk.pred_flags = None
        tcp_fast_path_check(sk)




def tcp_parse_timestamps(sk: tcp_sock, skb) -> None:
    """tcp_fast_parse_options() for the timestamp option: saw_tstamp, rcv_tsval, rcv_tsecr."""
    cb = skb.cb
    if cb.tsval is not None and sk.rx_opt_tstamp_ok:
        sk.rx_opt_saw_tstamp = True
        sk.rx_opt_rcv_tsval = cb.tsval
        sk.rx_opt_rcv_tsecr = cb.tsecr
    else:
        sk.rx_opt_saw_tstamp = False


def tcp_replace_ts_recent(sk: tcp_sock, seq: int) -> None:
    """net/ipv4/tcp_input.c: tcp_replace_ts_recent() - remember the peer's TSval of a segment at the window's
    left edge (PAWS never fails: the peer's clock only moves forward)."""
    if sk.rx_opt_saw_tstamp and not after(seq, sk.rcv_wup):
        sk.rx_opt_ts_recent = sk.rx_opt_rcv_tsval


def tcp_sequence(sk: tcp_sock, seq: int, end_seq: int) -> str | None:
    """net/ipv4/tcp_input.c: tcp_sequence() - None when acceptable, else the drop reason.

    Feature ``tcp_sequence_check``: 'seq' (up to 6.16) refuses a segment
    that starts beyond the window; 'end_seq' (6.17 'tcp: do not accept
    packets beyond window') also one that ends beyond it, unless the
    receive queue is empty; 'end_seq_max_wnd' (7.1 'tcp: implement RFC
    7323 window retraction receiver requirements') the same against the
    largest window ever advertised (rcv_mwnd_seq), so a segment the peer
    sent into a window since retracted (the stored zero window) passes here
    and tcp_data_queue() decides.  (The FIN exception is not modelled: the
    peer sends no FIN.)
    """
    if before(end_seq, sk.rcv_wup):
        return "TCP_OLD_SEQUENCE"
    rule = sk.rule_sequence_check
    if rule == "end_seq_max_wnd":
        limit = (sk.rcv_nxt + tcp_max_receive_window(sk)) & U32
    else:
        limit = (sk.rcv_nxt + tcp_receive_window(sk)) & U32
    if rule != "seq":
        if after(end_seq, limit):
            if after(seq, limit):
                return "TCP_INVALID_SEQUENCE"
            if sk.sk_receive_queue:
                return "TCP_INVALID_END_SEQUENCE"
        return None
    if after(seq, limit):
        return "TCP_INVALID_SEQUENCE"
    return None


def tcp_validate_incoming(sk: tcp_sock, skb) -> bool:
    """net/ipv4/tcp_input.c: tcp_validate_incoming() - the sequence check; an unacceptable segment gets a
    duplicate ACK and is dropped.  (RST, SYN and PAWS rejections are not modelled: the peer sends none.)"""
    tcp_parse_timestamps(sk, skb)
    reason = tcp_sequence(sk, skb.cb.seq, skb.cb.end_seq)
    if reason is None:
        return True
    if reason in ("TCP_INVALID_SEQUENCE", "TCP_INVALID_END_SEQUENCE") and \
            sk.rule_sequence_check != "seq":
        NET_INC_STATS(sk, "TCPBeyondWindow")
    if sk.events is not None:
        tcp_event(sk, "sequence_drop", reason=reason, seq=skb.cb.seq, end_seq=skb.cb.end_seq, rcv_nxt=sk.rcv_nxt,
                  window=tcp_receive_window(sk))
    tcp_send_dupack(sk, skb)
    tcp_drop_reason(sk, skb, reason)
    return False


def tcp_rcv_established(sk: tcp_sock, skb) -> tuple[str, str]:
    """net/ipv4/tcp_input.c: tcp_rcv_established() - (route, verdict) of a data segment.

    Header prediction ('fast'): the expected flags, header length and
    window, seq == rcv_nxt, and (6.17+) the segment inside the window;
    then only ``truesize <= sk_forward_alloc`` is checked before the skb is
    queued (a larger one takes the slow path's step 5 without the sequence
    check).  The slow path ('slow'): tcp_validate_incoming(), then
    tcp_data_queue().  Afterwards an ACK may be sent.
    """
    cb = skb.cb
    tcp_mstamp_refresh(sk)
    sk.rx_opt_saw_tstamp = False
    length = skb.len
    flags_ok = (cb.tcp_flags & ~TCPHDR_PSH) == TCPHDR_ACK and cb.doff == sk.tcp_header_len
    if (sk.pred_flags is not None and flags_ok and cb.window == sk.pred_flags and cb.seq == sk.rcv_nxt
            and not after(cb.ack_seq, sk.snd_nxt)):
        tcp_parse_timestamps(sk, skb)
        paws_ok = not sk.rx_opt_tstamp_ok or (sk.rx_opt_saw_tstamp and
                                              ((sk.rx_opt_rcv_tsval - sk.rx_opt_ts_recent) & U32) < 0x80000000)
        if paws_ok and length > sk.tcp_header_len:
            beyond = (sk.rule_sequence_check != "seq"
                      and after(cb.end_seq, (sk.rcv_nxt + tcp_receive_window(sk)) & U32))
            if not beyond:
                if skb.truesize > sk.sk_forward_alloc:
                    if sk.events is not None:
                        tcp_event(sk, "fast_path_no_fwd_alloc", truesize=skb.truesize, fwd_alloc=sk.sk_forward_alloc)
                    return _step5(sk, skb)
                if sk.rx_opt_tstamp_ok and sk.rcv_nxt == sk.rcv_wup:
                    sk.rx_opt_ts_recent = sk.rx_opt_rcv_tsval
                tcp_rcv_rtt_measure_ts(sk, skb)
                NET_INC_STATS(sk, "TCPHPHits")
                _verdict(sk, skb, "", "fast")
                if sk.events is not None:
                    tcp_event(sk, "fast_path", truesize=skb.truesize, fwd_alloc=sk.sk_forward_alloc)
                skb.data += sk.tcp_header_len
                skb.len -= sk.tcp_header_len
                eaten, stolen = tcp_queue_rcv(sk, skb)
                tcp_event_data_recv(sk, skb)
                __tcp_ack_snd_check(sk, False)
                result = _result(sk, skb)
                if eaten:
                    kfree_skb_partial(sk.kernel, skb, stolen)
                return result
    if not tcp_validate_incoming(sk, skb):
        return _result(sk, skb)
    return _step5(sk, skb)


def _result(sk: tcp_sock, skb) -> tuple[str, str]:
    """(route, verdict) of the segment being received directly."""
    rx = sk.rx
    if rx is not None and rx[0] is skb:
        return rx[1], rx[2]
    return "slow", ""


def _step5(sk: tcp_sock, skb) -> tuple[str, str]:
    """tcp_rcv_established()'s step5: the ACK field (nothing to acknowledge; a changed window field
    updates snd_wnd), timestamps, the data."""
    tcp_parse_timestamps(sk, skb)
    tcp_ack_update_window(sk, skb)
    tcp_replace_ts_recent(sk, skb.cb.seq)
    tcp_rcv_rtt_measure_ts(sk, skb)
    result_skb = skb
    tcp_data_queue(sk, skb)
    result = _result(sk, result_skb)
    tcp_ack_snd_check(sk)
    return result


# tcp_output builds on this module (it imports names from here): bound as a module at the end.
import skbsim.net.ipv4.tcp_output as tcp_output  # noqa: E402
