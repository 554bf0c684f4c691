"""Window selection and ACKs, after net/ipv4/tcp_output.c.

- :func:`tcp_select_initial_window`: the SYN-ACK's window, the window
  scale and the clamp (plain ints);
- :func:`__tcp_select_window` / :func:`tcp_select_window`: the window an
  ACK offers - free space, rounding to the window-scale unit, the
  zero-window thresholds, never shrinking what was offered;
- :func:`tcp_send_ack`, :func:`tcp_send_delayed_ack`,
  :func:`tcp_event_ack_sent`: ACKs now or after the delayed-ACK timeout;
- :func:`tcp_release_cb`: what release_sock() runs for TCP (an ACK or
  timer deferred while the process held the lock).

An ACK is not built as an skb (its memory is the sender's, not the
receiver's): the socket records (ACK number, raw window, TSval) in
``sk.acks``, which is what the peer sees on the wire.
"""

from __future__ import annotations

from skbsim.net.ipv4.tcp import (
    ICSK_ACK_NOMEM,
    ICSK_ACK_PUSHED,
    ICSK_ACK_SCHED,
    ICSK_ACK_TIMER,
    MAX_TCP_WINDOW,
    TCP_ACK_DEFERRED,
    TCP_DELACK_TIMER_DEFERRED,
    TCP_MAX_WSCALE,
    U16_MAX,
    U32,
    NET_INC_STATS,
    inet_csk_ack_scheduled,
    tcp_event,
    tcp_jiffies32,
    tcp_receive_window,
    tcp_sock,
    tcp_update_max_rcv_wnd_seq,
)
import skbsim.net.ipv4.tcp_input as tcp_input  # a module: tcp_input and this one call each other


def ilog2(value: int) -> int:
    """include/linux/log2.h: ilog2() of a positive value."""
    return value.bit_length() - 1


def tcp_select_initial_window(space: int, mss: int, window_clamp: int, wscale_ok: bool, rmem2: int,
                              rmem_max: int, u16_cap: bool, workaround_signed: bool = False,
                              init_rcv_wnd: int = 0) -> tuple[int, int, int]:
    """net/ipv4/tcp_output.c: tcp_select_initial_window() - (rcv_wnd, window_clamp, rcv_wscale).

    The free space, at most the clamp (0: 65535 << 14), rounded down to the
    MSS, is the initial window; up to 6.10 it is also capped at 65535
    ('tcp: remove 64 KByte limit for initial tp->rcv_wnd value' removed
    that in 6.11; feature ``tcp_initial_rcv_wnd``).  The window scale
    covers max(space, tcp_rmem[2], rmem_max), at most the clamp:
    ilog2(that) - 15, in 0..14.  The clamp ends at most 65535 << wscale.
    """
    space = max(space, 0)
    if window_clamp == 0:
        window_clamp = U16_MAX << TCP_MAX_WSCALE
    space = min(window_clamp, space)
    if space > mss:
        space = (space // mss) * mss
    if workaround_signed:
        rcv_wnd = min(space, MAX_TCP_WINDOW)
    elif u16_cap:
        rcv_wnd = min(space, U16_MAX)
    else:
        rcv_wnd = space
    if init_rcv_wnd:
        rcv_wnd = min(rcv_wnd, init_rcv_wnd * mss)
    rcv_wscale = 0
    if wscale_ok:
        scale_space = max(space, rmem2)
        scale_space = max(scale_space, rmem_max)
        scale_space = min(scale_space, window_clamp)
        rcv_wscale = min(max(ilog2(scale_space) - 15, 0), TCP_MAX_WSCALE) if scale_space > 0 else 0
    window_clamp = min(U16_MAX << rcv_wscale, window_clamp)
    return rcv_wnd, window_clamp, rcv_wscale


def select_window_values(mss: int, free_space: int, allowed_space: int, window_clamp: int, rcv_ssthresh: int,
                         rcv_wscale: int, rcv_wnd: int) -> tuple[int, int]:
    """net/ipv4/tcp_output.c: __tcp_select_window() without tcp_shrink_window, as ints: (window, rule).

    rule says which branch decided: 0 = the free space (capped by
    rcv_ssthresh) rounded up to the scale unit, 1 = the current window kept
    or rounded to the MSS (no scaling), 2 = zero: the space fell below half
    the full space and then below 1/16 of the allowed space or one MSS,
    3 = zero: the full space is below one byte.  A free space below half
    the full space also ends quick-ACK mode (the caller does that: rule 0
    or 2 with free < full / 2 is reported by :func:`select_window_pressure`).
    """
    full_space = min(window_clamp, allowed_space)
    if mss > full_space:
        mss = full_space
        if mss <= 0:
            return 0, 3
    if free_space < (full_space >> 1):
        free_space = free_space & ~((1 << rcv_wscale) - 1)
        if free_space < (allowed_space >> 4) or free_space < mss:
            return 0, 2
    if free_space > rcv_ssthresh:
        free_space = rcv_ssthresh
    if rcv_wscale:
        unit = 1 << rcv_wscale
        return (free_space + unit - 1) & ~(unit - 1), 0
    window = rcv_wnd
    if window <= free_space - mss or window > free_space:
        window = (free_space // mss) * mss
    elif mss == full_space and free_space > window + (full_space >> 1):
        window = free_space
    return window, 1


def select_window_pressure(free_space: int, window_clamp: int, allowed_space: int) -> bool:
    """__tcp_select_window(): is the free space below half the full space (quick ACKs end)?"""
    return free_space < (min(window_clamp, allowed_space) >> 1)


def __tcp_select_window(sk: tcp_sock) -> int:
    """net/ipv4/tcp_output.c: __tcp_select_window() - the window the socket could offer now.

    The window-shrinking sysctl (tcp_shrink_window, default 0) is not modelled.
    """
    mss = sk.icsk_ack_rcv_mss
    free_space = tcp_input.tcp_space(sk)
    allowed_space = tcp_input.tcp_full_space(sk)
    if select_window_pressure(free_space, sk.window_clamp, allowed_space):
        sk.icsk_ack_quick = 0
    window, rule = select_window_values(mss, free_space, allowed_space, sk.window_clamp, sk.rcv_ssthresh,
                                        sk.rx_opt_rcv_wscale, sk.rcv_wnd)
    if sk.events is not None:
        tcp_event(sk, "select_window", rule=rule, window=window, free_space=free_space, allowed=allowed_space,
                  window_clamp=sk.window_clamp, rcv_ssthresh=sk.rcv_ssthresh, mss=mss, wscale=sk.rx_opt_rcv_wscale,
                  rcvbuf=sk.sk_rcvbuf, rmem=sk.sk_rmem_alloc, backlog=sk.sk_backlog_len)
    return window


def tcp_select_window(sk: tcp_sock) -> int:
    """net/ipv4/tcp_output.c: tcp_select_window() - the raw 16-bit window field of an outgoing ACK.

    Out of memory (ICSK_ACK_NOMEM) the answer is 0: from 6.8 ('net: tcp:
    send zero-window ACK when no memory') without touching rcv_wnd; from
    6.14 and 6.12.y ('tcp: correct handling of extreme memory squeeze')
    storing it (feature ``tcp_nomem_ack``).  Otherwise a window smaller
    than what is left of the offered one is not offered (the old right
    edge is kept, rounded up to the scale unit; TCPWantZeroWindowAdv when
    the new one was zero); rcv_wnd and rcv_wup record what is offered.
    """
    old_win = sk.rcv_wnd
    nomem = sk.rule_nomem_ack
    if sk.icsk_ack_pending & ICSK_ACK_NOMEM and nomem != "none":
        if nomem == "zero_window_stored":
            sk.pred_flags = None
            sk.rcv_wnd = 0
            sk.rcv_wup = sk.rcv_nxt
            tcp_update_max_rcv_wnd_seq(sk)
        if sk.events is not None:
            tcp_event(sk, "nomem_zero_window", stored=nomem == "zero_window_stored")
        return 0
    cur_win = tcp_receive_window(sk)
    new_win = __tcp_select_window(sk)
    wscale = sk.rx_opt_rcv_wscale
    if new_win < cur_win:
        if new_win == 0:
            NET_INC_STATS(sk, "TCPWantZeroWindowAdv")
        unit = 1 << wscale
        if sk.events is not None:
            tcp_event(sk, "never_shrink", wanted=new_win, offered=cur_win)
        new_win = (cur_win + unit - 1) & ~(unit - 1)
    sk.rcv_wnd = new_win
    sk.rcv_wup = sk.rcv_nxt
    tcp_update_max_rcv_wnd_seq(sk)
    new_win = min(new_win, U16_MAX << wscale) >> wscale
    if new_win == 0:
        sk.pred_flags = None
        if old_win:
            NET_INC_STATS(sk, "TCPToZeroWindowAdv")
    elif old_win == 0:
        NET_INC_STATS(sk, "TCPFromZeroWindowAdv")
    return new_win


def tcp_time_stamp_ms(sk: tcp_sock) -> int:
    """include/net/tcp.h: tcp_time_stamp_ts() in milliseconds (TCP_TS_HZ 1000) with the socket's offset."""
    return (sk.net.now_us // 1000 + sk.ts_offset) & U32


def tcp_dec_quickack_mode(sk: tcp_sock) -> None:
    """include/net/tcp.h: tcp_dec_quickack_mode() - an ACK of new data uses up one quick ACK."""
    if sk.icsk_ack_quick:
        pkts = 1 if inet_csk_ack_scheduled(sk) else 0
        if pkts >= sk.icsk_ack_quick:
            sk.icsk_ack_quick = 0
            sk.icsk_ack_ato = tcp_input.TCP_ATO_MIN(sk.net.HZ)
        else:
            sk.icsk_ack_quick -= pkts


def tcp_event_ack_sent(sk: tcp_sock) -> None:
    """net/ipv4/tcp_output.c: tcp_event_ack_sent() - compressed ACKs end, a quick ACK is used up, the
    delayed-ACK timer stops (inet_csk_clear_xmit_timer(ICSK_TIME_DACK) clears icsk_ack.pending)."""
    if sk.compressed_ack:
        sk.compressed_ack = 0
        sk.compressed_ack_timer = None
    tcp_dec_quickack_mode(sk)
    sk.icsk_ack_pending = 0
    sk.delack_timer_pending = False


def tcp_send_ack(sk: tcp_sock) -> None:
    """net/ipv4/tcp_output.c: tcp_send_ack() -> __tcp_transmit_skb() of a bare ACK.

    The window field is tcp_select_window() (evaluated before the ACK
    clears icsk_ack.pending); with timestamps the TSval is the socket's
    millisecond clock.
    """
    window = tcp_select_window(sk)
    tsval = None
    if sk.rx_opt_tstamp_ok:
        tsval = tcp_time_stamp_ms(sk)
        sk.last_tsval_sent = tsval
    sk.acks.append((sk.rcv_nxt, window, tsval))
    if sk.events is not None:
        tcp_event(sk, "ack", ack=sk.rcv_nxt, acked=(sk.rcv_nxt - sk.rcv_isn - 1) & U32, window=window,
                  scaled=window << sk.rx_opt_rcv_wscale)
    tcp_event_ack_sent(sk)


def tcp_send_delayed_ack(sk: tcp_sock) -> None:
    """net/ipv4/tcp_output.c: tcp_send_delayed_ack() - arm the delayed-ACK timer ato jiffies from now.

    An inflated ato is bounded by HZ/2 (TCP_DELACK_MAX after a push) and
    by the smoothed RTT; every ato by icsk_delack_max.  A timer already
    armed keeps the earlier expiry, and one about to expire (within a
    quarter of ato) becomes an ACK now.
    """
    hz = sk.net.HZ
    ato = sk.icsk_ack_ato
    if ato > tcp_input.TCP_DELACK_MIN(hz):
        max_ato = hz // 2
        if sk.icsk_ack_pingpong or sk.icsk_ack_pending & ICSK_ACK_PUSHED:
            max_ato = hz // 5
        if sk.srtt_us:
            rtt = max(usecs_to_jiffies(sk.srtt_us >> 3, hz), tcp_input.TCP_DELACK_MIN(hz))
            if rtt < max_ato:
                max_ato = rtt
        ato = min(ato, max_ato)
    ato = min(ato, sk.icsk_delack_max)
    now = tcp_jiffies32(sk)
    timeout = now + ato
    if sk.icsk_ack_pending & ICSK_ACK_TIMER:
        if sk.icsk_ack_timeout <= now + (ato >> 2):
            if sk.events is not None:
                tcp_event(sk, "delack_due_now", timeout=sk.icsk_ack_timeout, now=now)
            tcp_send_ack(sk)
            return
        if timeout >= sk.icsk_ack_timeout:
            timeout = sk.icsk_ack_timeout
    sk.icsk_ack_pending |= ICSK_ACK_SCHED | ICSK_ACK_TIMER
    sk.icsk_ack_timeout = timeout
    sk.delack_timer_pending = True
    if sk.events is not None:
        tcp_event(sk, "delack_armed", ato=ato, timeout=timeout)


def usecs_to_jiffies(us: int, hz: int) -> int:
    """include/linux/jiffies.h: usecs_to_jiffies() - rounded up."""
    return -(-us * hz // 1_000_000)


def tcp_release_cb(sk: tcp_sock) -> None:
    """net/ipv4/tcp_output.c: tcp_release_cb() - run the delayed-ACK timer or send the ACK that were
    deferred while the process held the socket lock."""
    flags = sk.tsq_flags
    if not flags:
        return
    sk.tsq_flags = 0
    if flags & TCP_DELACK_TIMER_DEFERRED:
        tcp_timer.tcp_delack_timer_handler(sk)
    if flags & TCP_ACK_DEFERRED and inet_csk_ack_scheduled(sk):
        if sk.events is not None:
            tcp_event(sk, "deferred_ack")
        tcp_send_ack(sk)


# tcp_timer builds on this module (it imports names from here): bound as a module at the end.
import skbsim.net.ipv4.tcp_timer as tcp_timer  # noqa: E402
