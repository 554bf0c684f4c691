"""The delayed-ACK and compressed-ACK timers, after net/ipv4/tcp_timer.c and tcp_output.c.

The model has no timer wheel: the session asks :func:`next_timer_us` when
the socket's next timer falls due and runs :func:`run_timers` at that
simulated time.  A timer that fires while the process holds the socket
lock is deferred to tcp_release_cb(), as the kernel does.
"""

from __future__ import annotations

from skbsim.net.ipv4.tcp import (
    ICSK_ACK_TIMER,
    TCP_DELACK_TIMER_DEFERRED,
    NET_INC_STATS,
    inet_csk_ack_scheduled,
    tcp_event,
    tcp_jiffies32,
    tcp_mstamp_refresh,
    tcp_sock,
)
from skbsim.net.ipv4.tcp_output import tcp_send_ack


def tcp_delack_timer_handler(sk: tcp_sock) -> None:
    """net/ipv4/tcp_timer.c: tcp_delack_timer_handler() - send the delayed ACK; a missed one inflates ato.

    Pending compressed ACKs (SACK) are sent instead when there are some.
    """
    if sk.compressed_ack:
        tcp_mstamp_refresh(sk)
        sk.compressed_ack = 0
        tcp_send_ack(sk)
        return
    if not sk.icsk_ack_pending & ICSK_ACK_TIMER:
        return
    if sk.icsk_ack_timeout > tcp_jiffies32(sk):
        sk.delack_timer_pending = True
        return
    sk.icsk_ack_pending &= ~ICSK_ACK_TIMER
    if inet_csk_ack_scheduled(sk):
        if not sk.icsk_ack_pingpong:
            old = sk.icsk_ack_ato
            sk.icsk_ack_ato = min(old << 1, sk.icsk_rto)
            if sk.events is not None:
                tcp_event(sk, "delack_fired", ato=old, new_ato=sk.icsk_ack_ato)
        tcp_mstamp_refresh(sk)
        tcp_send_ack(sk)
        NET_INC_STATS(sk, "DelayedACKs")


def tcp_delack_timer(sk: tcp_sock) -> None:
    """net/ipv4/tcp_timer.c: tcp_delack_timer() - the timer expired: handle it, or defer it to
    tcp_release_cb() when the process holds the lock."""
    sk.delack_timer_pending = False
    if not sk.icsk_ack_pending & ICSK_ACK_TIMER and not sk.compressed_ack:
        return
    if not sk.owned_by_user:
        tcp_delack_timer_handler(sk)
    else:
        sk.tsq_flags |= TCP_DELACK_TIMER_DEFERRED


def tcp_compressed_ack_kick(sk: tcp_sock) -> None:
    """net/ipv4/tcp_output.c: tcp_compressed_ack_kick() - the compressed-ACK hrtimer expired."""
    sk.compressed_ack_timer = None
    if not sk.owned_by_user:
        if sk.compressed_ack:
            sk.compressed_ack -= 1
            tcp_mstamp_refresh(sk)
            tcp_send_ack(sk)
    else:
        sk.tsq_flags |= TCP_DELACK_TIMER_DEFERRED


def next_timer_us(sk: tcp_sock) -> int | None:
    """When the socket's next timer expires, in simulated microseconds (None: no timer armed)."""
    due = sk.net.jiffies_to_us(sk.icsk_ack_timeout) if sk.delack_timer_pending else None
    compressed = sk.compressed_ack_timer
    if compressed is not None and (due is None or compressed < due):
        due = compressed
    return due


def run_timers(sk: tcp_sock) -> None:
    """Fire every timer due at the socket's current time (net.now_us)."""
    now = sk.net.now_us
    if sk.compressed_ack_timer is not None and sk.compressed_ack_timer <= now:
        tcp_compressed_ack_kick(sk)
    if sk.delack_timer_pending and sk.net.jiffies_to_us(sk.icsk_ack_timeout) <= now:
        tcp_delack_timer(sk)
