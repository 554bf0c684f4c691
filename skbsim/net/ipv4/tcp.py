"""The TCP socket, after net/ipv4/tcp.c, include/linux/tcp.h and include/net/tcp.h.

:class:`tcp_sock` gathers the fields of struct sock, inet_connection_sock
and tcp_sock that the receive side reads and writes, with their kernel
names (``sk_rcvbuf``, ``icsk_ack_*`` for ``icsk->icsk_ack.*``,
``rcv_nxt``...).  The functions here are tcp.c's: tcp_init_sock(),
tcp_set_window_clamp(), the read path (tcp_recvmsg() for the modelled
non-blocking reads, tcp_eat_recv_skb(), __tcp_cleanup_rbuf()) and the
figures TCP_INFO, TCP_WINDOW_CLAMP and SO_MEMINFO report.

Sequence numbers are 32-bit and compared with :func:`before` / :func:`after`
as the kernel compares them.  No payload bytes are kept: an skb's ``len``
is its data length.

Explanations are events: when ``sk.events`` is a list, the model appends
``(name, numbers)`` for each rule that decided a figure (see
:func:`tcp_event`); skbsim.commands.tcp turns them into words.  Every call
site tests ``sk.events is not None`` first, so that with explanations off
(every ``run``) no event's numbers are even computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.net.core_sock import (
    SOCK_MIN_RCVBUF,
    __sock_set_rcvbuf,
    release_sock,
    sk_mem_reclaim,
    sock_rfree,
)
from skbsim.net.skbuff import __kfree_skb, kfree_skb, skb_attempt_defer_free

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.ipv4.tcp_ipv4 import net_ns

U32 = 0xFFFFFFFF

# include/net/tcp.h
TCPHDR_FIN = 0x01
TCPHDR_SYN = 0x02
TCPHDR_RST = 0x04
TCPHDR_PSH = 0x08
TCPHDR_ACK = 0x10
TCPHDR_URG = 0x20
TCP_MSS_DEFAULT = 536
TCP_MIN_MSS = 88
TCP_MAX_QUICKACKS = 16
TCP_MAX_WSCALE = 14
TCP_INIT_CWND = 10
MAX_TCP_WINDOW = 32767
MAX_TCP_OPTION_SPACE = 40
TCP_RMEM_TO_WIN_SCALE = 8
TCPOLEN_TSTAMP_ALIGNED = 12
TCP_HEADER = 20  # sizeof(struct tcphdr)
U16_MAX = 0xFFFF

# include/net/inet_connection_sock.h: icsk_ack.pending bits
ICSK_ACK_SCHED = 1
ICSK_ACK_TIMER = 2
ICSK_ACK_PUSHED = 4
ICSK_ACK_PUSHED2 = 8
ICSK_ACK_NOW = 16
ICSK_ACK_NOMEM = 32

# include/linux/tcp.h: tsq_flags deferred to tcp_release_cb()
TCP_DELACK_TIMER_DEFERRED = 1
TCP_ACK_DEFERRED = 2

# include/net/tcp_states.h (the two this model uses)
TCP_ESTABLISHED = 1
TCP_LISTEN = 10

#: The TcpExt counters the model keeps (include/uapi/linux/snmp.h LINUX_MIB_* names as
#: /proc/net/netstat prints them).
TCPEXT = (
    "PruneCalled", "RcvPruned", "OfoPruned", "TCPRcvCollapsed", "TCPRcvCoalesce", "TCPBacklogCoalesce",
    "TCPRcvQDrop", "TCPZeroWindowDrop", "TCPWantZeroWindowAdv", "TCPToZeroWindowAdv",
    "TCPFromZeroWindowAdv", "TCPBacklogDrop", "TCPOFOQueue", "TCPOFODrop", "TCPOFOMerge", "TCPHPHits",
    "DelayedACKs", "TCPBeyondWindow",
)


def before(seq1: int, seq2: int) -> bool:
    """include/net/tcp.h: before() - seq1 precedes seq2 in 32-bit sequence space."""
    return ((seq1 - seq2) & U32) >= 0x80000000


def after(seq2: int, seq1: int) -> bool:
    """include/net/tcp.h: after()."""
    return before(seq1, seq2)


class tcp_skb_cb:
    """include/net/tcp.h: struct tcp_skb_cb (TCP_SKB_CB(skb)) with the header fields the model needs.

    ``doff`` is the TCP header length in bytes (th->doff * 4); ``window`` the
    raw window field; ``tsval``/``tsecr`` the timestamp option, or None.
    """

    __slots__ = ("seq", "end_seq", "ack_seq", "tcp_flags", "doff", "window", "tsval", "tsecr")

    def __init__(self, seq: int, end_seq: int, ack_seq: int, tcp_flags: int, doff: int, window: int,
                 tsval: int | None = None, tsecr: int | None = None):
        self.seq = seq
        self.end_seq = end_seq
        self.ack_seq = ack_seq
        self.tcp_flags = tcp_flags
        self.doff = doff
        self.window = window
        self.tsval = tsval
        self.tsecr = tsecr


#: The profile features the receive path asks on every segment: each tcp_sock holds the value of
#: tcp_NAME as rule_NAME (has_NAME for the switches), looked up once.
SOCK_RULES = (
    "tcp_scaling_ratio_clamp", "tcp_rcv_rtt_update", "tcp_rcv_rtt_ts", "tcp_rcv_space_adjust", "tcp_rcvbuf_admission",
    "tcp_nomem_ack", "tcp_sequence_check", "tcp_prune_ofo_queue", "tcp_prune_queue", "tcp_comp_sack_delay",
    "tcp_backlog_limit",
)
SOCK_SWITCHES = ("tcp_ofo_measure_rcv_mss", "tcp_backlog_ack_defer")


def _rule_attr(feature: str) -> str:
    return "rule_" + feature.removeprefix("tcp_")


def _switch_attr(feature: str) -> str:
    return "has_" + feature.removeprefix("tcp_")


#: The rules among SOCK_RULES that plain int functions take as codes: held as code_NAME too.
CODED_RULES = ("tcp_rcv_rtt_update", "tcp_rcv_space_adjust", "tcp_rcvbuf_admission", "tcp_prune_queue")


def _code_attr(feature: str) -> str:
    return "code_" + feature.removeprefix("tcp_")


class tcp_sock:
    """struct tcp_sock with its inet_connection_sock and struct sock, as far as receiving needs.

    ``icsk_ack_*`` stand for ``icsk->icsk_ack.*``; ``rcvq_space_*`` and
    ``rcv_rtt_est_*`` for the members of those structs; ``rx_opt_*`` for
    ``tp->rx_opt.*``.  ``pred_flags`` is kept as "header prediction on"
    plus the predicted raw window (the header word itself is not built).
    """

    __slots__ = (
        "kernel", "net", "name", "events", "acks", "rx", "collapse_copied",
        # struct sock
        "sk_state", "sk_rcvbuf", "sk_sndbuf", "sk_rmem_alloc", "sk_forward_alloc", "sk_userlocks",
        "sk_receive_queue", "sk_backlog", "sk_backlog_len", "sk_drops", "sk_rcvlowat", "owned_by_user",
        "sk_socket", "page_size", "memory_allocated",
        # inet_connection_sock
        "icsk_ack_pending", "icsk_ack_quick", "icsk_ack_pingpong", "icsk_ack_ato", "icsk_ack_timeout",
        "icsk_ack_lrcvtime", "icsk_ack_last_seg_size", "icsk_ack_rcv_mss", "icsk_rto", "icsk_delack_max",
        "icsk_ca_ops", "delack_timer_pending",
        # tcp_sock
        "rcv_nxt", "copied_seq", "rcv_wup", "rcv_wnd", "rcv_mwnd_seq", "rcv_ssthresh", "window_clamp", "advmss",
        "mss_cache",
        "tcp_header_len", "scaling_ratio", "rcvq_space_space", "rcvq_space_seq", "rcvq_space_time",
        "rcv_rtt_est_rtt_us", "rcv_rtt_est_seq", "rcv_rtt_est_time", "rcv_rtt_last_tsecr", "tcp_mstamp",
        "pred_flags", "snd_wnd", "snd_una", "snd_nxt", "snd_cwnd", "reordering", "srtt_us",
        "out_of_order_queue", "ooo_last_skb", "num_sacks", "compressed_ack", "compressed_ack_rcv_nxt",
        "dup_ack_counter", "compressed_ack_timer", "tsq_flags", "rcv_isn", "snd_isn",
        "rx_opt_tstamp_ok", "rx_opt_sack_ok", "rx_opt_wscale_ok", "rx_opt_snd_wscale", "rx_opt_rcv_wscale",
        "rx_opt_mss_clamp", "rx_opt_saw_tstamp", "rx_opt_rcv_tsval", "rx_opt_rcv_tsecr", "rx_opt_ts_recent",
        "ts_offset", "last_tsval_sent",
        # the release's rules, resolved once (SOCK_RULES, SOCK_SWITCHES)
        *(_rule_attr(feature) for feature in SOCK_RULES), *(_switch_attr(feature) for feature in SOCK_SWITCHES),
        # the codes of the rules that plain int functions take (tcp_input.rule_code())
        *(_code_attr(feature) for feature in CODED_RULES),
    )

    def __init__(self, kernel: Kernel, net: net_ns, name: str = "tcp"):
        self.kernel = kernel
        self.net = net
        self.name = name
        self.events: list | None = None
        # [ack_seq, raw window, tsval] of every ACK sent, in order (what the peer reads off the wire).
        self.acks: list[tuple[int, int, int | None]] = []
        # [skb, route, verdict] of the segment being received directly (None otherwise).
        self.rx: list | None = None
        # Bytes tcp_collapse() copied into new skbs (skbsim's count: the kernel keeps none).
        self.collapse_copied = 0
        self.sk_state = TCP_LISTEN
        self.sk_rcvbuf = 0
        self.sk_sndbuf = 0
        self.sk_rmem_alloc = 0
        self.sk_forward_alloc = 0
        self.sk_userlocks = 0
        self.sk_receive_queue: list = []
        self.sk_backlog: list = []
        self.sk_backlog_len = 0
        self.sk_drops = 0
        self.sk_rcvlowat = 1
        self.owned_by_user = False
        self.sk_socket = False
        self.page_size = kernel.profile.PAGE_SIZE
        self.memory_allocated = 0  # pages charged to tcp_memory_allocated
        self.icsk_ack_pending = 0
        self.icsk_ack_quick = 0
        self.icsk_ack_pingpong = 0
        self.icsk_ack_ato = 0
        self.icsk_ack_timeout = 0
        self.icsk_ack_lrcvtime = 0
        self.icsk_ack_last_seg_size = 0
        self.icsk_ack_rcv_mss = 0
        self.icsk_rto = net.HZ  # TCP_TIMEOUT_INIT
        self.icsk_delack_max = net.HZ // 5  # TCP_DELACK_MAX
        self.icsk_ca_ops = None
        self.delack_timer_pending = False
        self.rcv_nxt = 0
        self.copied_seq = 0
        self.rcv_wup = 0
        self.rcv_wnd = 0
        # 7.1: the right edge of the largest window ever advertised (RFC 7323 2.4), tcp_sequence()'s limit
        self.rcv_mwnd_seq = 0
        self.rcv_ssthresh = 0
        self.window_clamp = 0
        self.advmss = 0
        self.mss_cache = TCP_MSS_DEFAULT
        self.tcp_header_len = TCP_HEADER
        self.scaling_ratio = 0
        self.rcvq_space_space = 0
        self.rcvq_space_seq = 0
        self.rcvq_space_time = 0
        self.rcv_rtt_est_rtt_us = 0
        self.rcv_rtt_est_seq = 0
        self.rcv_rtt_est_time = 0
        self.rcv_rtt_last_tsecr = 0
        self.tcp_mstamp = 0
        self.pred_flags = None  # None: header prediction off; else the predicted raw window
        self.snd_wnd = 0
        self.snd_una = 0
        self.snd_nxt = 0
        self.snd_cwnd = TCP_INIT_CWND
        self.reordering = net.sysctl_tcp_reordering
        self.srtt_us = 0
        self.out_of_order_queue: list = []  # skbs in sequence order (the rbtree)
        self.ooo_last_skb = None
        self.num_sacks = 0
        self.compressed_ack = 0
        self.compressed_ack_rcv_nxt = 0
        self.dup_ack_counter = 0
        self.compressed_ack_timer = None  # expiry time in us, or None
        self.tsq_flags = 0
        self.rcv_isn = 0
        self.snd_isn = 0
        self.rx_opt_tstamp_ok = False
        self.rx_opt_sack_ok = False
        self.rx_opt_wscale_ok = False
        self.rx_opt_snd_wscale = 0
        self.rx_opt_rcv_wscale = 0
        self.rx_opt_mss_clamp = 0
        self.rx_opt_saw_tstamp = False
        self.rx_opt_rcv_tsval = 0
        self.rx_opt_rcv_tsecr = 0
        self.rx_opt_ts_recent = 0
        self.ts_offset = 0
        self.last_tsval_sent = 0
        # Asked for every segment: looked up in the profile once, here (the profile never changes).
        profile = kernel.profile
        for feature in SOCK_RULES:
            setattr(self, _rule_attr(feature), profile.feature(feature))
        for feature in SOCK_SWITCHES:
            setattr(self, _switch_attr(feature), profile.has(feature))
        for feature in CODED_RULES:
            setattr(self, _code_attr(feature), tcp_input.rule_code(feature, profile.feature(feature)))

    # -- struct sock hooks --------------------------------------------------------------------

    def skb_destructor(self, skb) -> None:
        """skb->destructor of an skb this socket owns: sock_rfree()."""
        sock_rfree(skb)

    def sk_backlog_rcv(self, skb) -> None:
        """sk->sk_backlog_rcv: tcp_v4_do_rcv()."""
        tcp_ipv4.tcp_v4_do_rcv(self, skb, from_backlog=True)

    def release_cb(self) -> None:
        """sk->sk_prot->release_cb: tcp_release_cb()."""
        tcp_output.tcp_release_cb(self)

    def __repr__(self) -> str:
        return f"<tcp_sock {self.name} rmem {self.sk_rmem_alloc} rcvbuf {self.sk_rcvbuf}>"


# -- small helpers of include/net/tcp.h -------------------------------------------------------


def tcp_event(sk: tcp_sock, name: str, **numbers) -> None:
    """Record that a rule fired, with its numbers (callers test ``sk.events is not None`` first: nothing
    is computed when explanations are off)."""
    if sk.events is not None:
        sk.events.append((name, numbers))


def NET_INC_STATS(sk: tcp_sock, name: str, count: int = 1) -> None:
    """include/net/ip.h: NET_INC_STATS() on the socket's namespace (TcpExt)."""
    sk.net.mib[name] += count


def tcp_receive_window_of(rcv_wup: int, rcv_wnd: int, rcv_nxt: int) -> int:
    """include/net/tcp.h: tcp_receive_window() - what is left of the offered window (an s32, at least 0)."""
    win = (rcv_wup + rcv_wnd - rcv_nxt) & U32
    if win >= 0x80000000:
        return 0
    return win


def tcp_receive_window(tp: tcp_sock) -> int:
    return tcp_receive_window_of(tp.rcv_wup, tp.rcv_wnd, tp.rcv_nxt)


def tcp_max_receive_window(tp: tcp_sock) -> int:
    """include/net/tcp.h: tcp_max_receive_window() (7.1) - how far past rcv_nxt the largest window ever
    advertised reaches (an s32, at least 0)."""
    return tcp_receive_window_of(tp.rcv_mwnd_seq, 0, tp.rcv_nxt)


def tcp_update_max_rcv_wnd_seq(tp: tcp_sock) -> None:
    """include/net/tcp.h: tcp_update_max_rcv_wnd_seq() (7.1) - move rcv_mwnd_seq to the offered window's right
    edge when that is further.  Releases before 7.1 have no such field; keeping it costs nothing there."""
    wre = (tp.rcv_wup + tp.rcv_wnd) & U32
    if after(wre, tp.rcv_mwnd_seq):
        tp.rcv_mwnd_seq = wre


def inet_csk_ack_scheduled(sk: tcp_sock) -> bool:
    """include/net/inet_connection_sock.h: inet_csk_ack_scheduled()."""
    return bool(sk.icsk_ack_pending & ICSK_ACK_SCHED)


def inet_csk_schedule_ack(sk: tcp_sock) -> None:
    """include/net/inet_connection_sock.h: inet_csk_schedule_ack()."""
    sk.icsk_ack_pending |= ICSK_ACK_SCHED


def tcp_jiffies32(sk: tcp_sock) -> int:
    """The jiffies clock (include/net/tcp.h: tcp_jiffies32) of the socket's simulated time."""
    return sk.net.jiffies()


def tcp_mstamp_refresh(tp: tcp_sock) -> None:
    """net/ipv4/tcp_output.c: tcp_mstamp_refresh() - tp->tcp_mstamp is now (microseconds)."""
    tp.tcp_mstamp = tp.net.now_us


def sock_owned_by_user(sk: tcp_sock) -> bool:
    return sk.owned_by_user


# -- tcp.c -----------------------------------------------------------------------------------


def tcp_init_sock(sk: tcp_sock) -> None:
    """net/ipv4/tcp.c: tcp_init_sock() - the buffers from tcp_rmem[1] and tcp_wmem[1], the default scaling
    ratio, the default MSS, the congestion control of the namespace."""
    net = sk.net
    sk.icsk_rto = net.HZ
    sk.mss_cache = TCP_MSS_DEFAULT
    sk.snd_cwnd = TCP_INIT_CWND
    sk.reordering = net.sysctl_tcp_reordering
    sk.sk_sndbuf = net.sysctl_tcp_wmem[1]
    sk.sk_rcvbuf = net.sysctl_tcp_rmem[1]
    tcp_input.tcp_scaling_ratio_init(sk)


def sock_setsockopt_rcvbuf(sk: tcp_sock, val: int) -> None:
    """net/core/sock.c: sk_setsockopt(SO_RCVBUF): __sock_set_rcvbuf(min(val, rmem_max)) - doubled, at least
    SOCK_MIN_RCVBUF, and SOCK_RCVBUF_LOCK so autotuning leaves it alone."""
    __sock_set_rcvbuf(sk, val, sk.net.sysctl_rmem_max, SOCK_MIN_RCVBUF(sk.kernel.profile))
    if sk.events is not None:
        tcp_event(sk, "so_rcvbuf", val=val, rmem_max=sk.net.sysctl_rmem_max, rcvbuf=sk.sk_rcvbuf)


def tcp_set_window_clamp_values(window_clamp: int, rcv_wnd: int, rcv_ssthresh: int, val: int,
                                min_rcvbuf: int) -> tuple[int, int, int]:
    """net/ipv4/tcp.c: tcp_set_window_clamp() for a non-zero val, as ints.

    Returns (window_clamp, rcv_ssthresh, shrunk): the clamp becomes
    max(SOCK_MIN_RCVBUF / 2, val); growing it raises rcv_ssthresh to
    min(rcv_wnd, clamp) if that is more; shrinking it (shrunk = 1) leaves
    rcv_ssthresh to __tcp_adjust_rcv_ssthresh(), which the caller runs.
    """
    new_clamp = max(min_rcvbuf // 2, val)
    if new_clamp == window_clamp:
        return window_clamp, rcv_ssthresh, 0
    if new_clamp < window_clamp:
        return new_clamp, rcv_ssthresh, 1
    return new_clamp, max(min(rcv_wnd, new_clamp), rcv_ssthresh), 0


def tcp_set_window_clamp(sk: tcp_sock, val: int) -> None:
    """net/ipv4/tcp.c: tcp_set_window_clamp() (val > 0; the floor is SOCK_MIN_RCVBUF / 2 = 1152)."""
    old = sk.window_clamp
    sk.window_clamp, sk.rcv_ssthresh, shrunk = tcp_set_window_clamp_values(
        old, sk.rcv_wnd, sk.rcv_ssthresh, val, SOCK_MIN_RCVBUF(sk.kernel.profile))
    if shrunk:
        tcp_input.__tcp_adjust_rcv_ssthresh(sk, sk.window_clamp)
    if sk.events is not None:
        tcp_event(sk, "tcp_set_window_clamp", val=val, old=old, window_clamp=sk.window_clamp,
                  rcv_ssthresh=sk.rcv_ssthresh)


def tcp_eat_recv_skb(sk: tcp_sock, skb) -> None:
    """net/ipv4/tcp.c: tcp_eat_recv_skb() - unlink a read skb, give its memory back (sock_rfree()),
    free it where it was allocated (skb_attempt_defer_free())."""
    sk.sk_receive_queue.remove(skb)
    if skb.sk is sk:
        sock_rfree(skb)
        skb.sk = None
        skb_attempt_defer_free(sk.kernel, skb)
        return
    __kfree_skb(sk.kernel, skb)


def tcp_recvmsg(sk: tcp_sock, length: int | None) -> int:
    """net/ipv4/tcp.c: tcp_recvmsg() with MSG_DONTWAIT: lock, copy, clean up, release.

    Copies skbs from copied_seq on until ``length`` bytes (None: all that is
    queued) are read; after each skb tcp_rcv_space_adjust() runs, and an
    skb read to its end is eaten.  Then tcp_cleanup_rbuf() may send a
    window-update ACK, and release_sock() processes the backlog.  Returns
    the bytes read (0 when nothing is queued: -EAGAIN in the kernel).
    """
    tcp_rcv_space_adjust = tcp_input.tcp_rcv_space_adjust
    sk.owned_by_user = True
    copied = 0
    remaining = length
    while remaining is None or remaining > 0:
        skb = sk.sk_receive_queue[0] if sk.sk_receive_queue else None
        if skb is None:
            break
        offset = (sk.copied_seq - skb.cb.seq) & U32
        used = skb.len - offset
        if remaining is not None and remaining < used:
            used = remaining
        sk.copied_seq = (sk.copied_seq + used) & U32
        copied += used
        if remaining is not None:
            remaining -= used
        tcp_rcv_space_adjust(sk)
        if used + offset < skb.len:
            continue
        tcp_eat_recv_skb(sk, skb)
    tcp_cleanup_rbuf(sk, copied)
    release_sock(sk)
    return copied


def __tcp_cleanup_rbuf(sk: tcp_sock, copied: int) -> None:
    """net/ipv4/tcp.c: __tcp_cleanup_rbuf() - ACK after a read when it is due or the window opened a lot.

    An ACK is sent when one is scheduled and more than one rcv_mss is
    unacknowledged, or the read emptied the socket after a pushed segment;
    or when the read raised the window we could offer to at least twice
    what is left of the current one (checked only while that is at most
    half the window clamp).
    """
    time_to_ack = False
    if inet_csk_ack_scheduled(sk):
        pending = sk.icsk_ack_pending
        if ((sk.rcv_nxt - sk.rcv_wup) & U32) > sk.icsk_ack_rcv_mss or (
            copied > 0
            and (pending & ICSK_ACK_PUSHED2 or (pending & ICSK_ACK_PUSHED and not sk.icsk_ack_pingpong))
            and not sk.sk_rmem_alloc
        ):
            time_to_ack = True
            if sk.events is not None:
                tcp_event(sk, "cleanup_rbuf_ack_due", unacked=(sk.rcv_nxt - sk.rcv_wup) & U32,
                          rcv_mss=sk.icsk_ack_rcv_mss)
    if copied > 0 and not time_to_ack:
        rcv_window_now = tcp_receive_window(sk)
        if 2 * rcv_window_now <= sk.window_clamp:
            new_window = tcp_output.__tcp_select_window(sk)
            if new_window and new_window >= 2 * rcv_window_now:
                time_to_ack = True
                if sk.events is not None:
                    tcp_event(sk, "cleanup_rbuf_window_update", now=rcv_window_now, new=new_window)
    if time_to_ack:
        tcp_mstamp_refresh(sk)
        tcp_output.tcp_send_ack(sk)


def tcp_cleanup_rbuf(sk: tcp_sock, copied: int) -> None:
    """net/ipv4/tcp.c: tcp_cleanup_rbuf()."""
    __tcp_cleanup_rbuf(sk, copied)


# -- what the socket reports -----------------------------------------------------------------


def sk_get_meminfo(sk: tcp_sock) -> dict[str, int]:
    """net/core/sock.c: sk_get_meminfo() - the SO_MEMINFO fields the records show."""
    return {
        "rmem_alloc": sk.sk_rmem_alloc,
        "rcvbuf": sk.sk_rcvbuf,
        "fwd_alloc": sk.sk_forward_alloc,
        "backlog": sk.sk_backlog_len,
        "drops": sk.sk_drops,
    }


def tcp_get_info(sk: tcp_sock) -> dict[str, int | None]:
    """net/ipv4/tcp.c: tcp_get_info() fields of the receive side, TCP_WINDOW_CLAMP and tp->scaling_ratio
    (None where the release has no scaling ratio)."""
    return {
        "rcv_wscale": sk.rx_opt_rcv_wscale,
        "rcv_mss": sk.icsk_ack_rcv_mss,
        "rcv_ssthresh": sk.rcv_ssthresh,
        "advmss": sk.advmss,
        "rcv_space": sk.rcvq_space_space,
        "rcv_wnd": sk.rcv_wnd,
        "window_clamp": sk.window_clamp,
        "scaling_ratio": sk.scaling_ratio if sk.scaling_ratio else None,
    }


def tcp_destroy(sk: tcp_sock) -> None:
    """close() of the socket as far as memory goes (tcp_close() -> inet_csk_destroy_sock()): every queued
    skb is freed, the forward allocation is reclaimed."""
    kernel = sk.kernel
    for skb in sk.sk_backlog:
        kfree_skb(kernel, skb)
    sk.sk_backlog.clear()
    sk.sk_backlog_len = 0
    for skb in sk.sk_receive_queue:
        kfree_skb(kernel, skb)
    sk.sk_receive_queue.clear()
    for skb in sk.out_of_order_queue:
        kfree_skb(kernel, skb)
    sk.out_of_order_queue.clear()
    sk.ooo_last_skb = None
    sk_mem_reclaim(sk)


# The modules that build on this one, bound as modules at the end (they import names from here): calls
# into them look an attribute up instead of running an import statement each time.
import skbsim.net.ipv4.tcp_input as tcp_input  # noqa: E402
import skbsim.net.ipv4.tcp_ipv4 as tcp_ipv4  # noqa: E402
import skbsim.net.ipv4.tcp_output as tcp_output  # noqa: E402
