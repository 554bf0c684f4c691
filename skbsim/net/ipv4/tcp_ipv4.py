"""IPv4 TCP entry points, after net/ipv4/tcp_ipv4.c.

- :class:`net_ns`: the network namespace as TCP sees it: the TCP sysctls
  tcp_sk_init() sets (tcp_rmem, tcp_wmem ...), the global net.core ones
  (rmem_max), HZ, the TcpExt counters, and the simulated clock.
- :func:`tcp_v4_rcv`: a segment for an established socket: processed at
  once, or put on the socket backlog when its owner holds the lock
  (:func:`tcp_v4_rcv_verdict` notes what became of it);
- :func:`tcp_v4_fill_cb`: TCP_SKB_CB from a segment's header bytes.
- :func:`tcp_add_backlog` with its coalescing and its limit, which depends
  on sk_sndbuf and so on the congestion control.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from typing import TYPE_CHECKING

from skbsim.errors import InputError
from skbsim.net.core_sock import INT_MAX, sk_add_backlog
from skbsim.net.ipv4.tcp import (
    TCPEXT,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_RST,
    TCPHDR_SYN,
    TCPHDR_URG,
    NET_INC_STATS,
    tcp_event,
    tcp_skb_cb,
    tcp_sock,
)
import skbsim.net.ipv4.tcp_input as tcp_input  # a module: it may still be initialising here (tcp binds this module)
from skbsim.net.skbuff import kfree_skb, kfree_skb_partial, pskb_may_pull, skb_condense, skb_try_coalesce

if TYPE_CHECKING:
    from skbsim.profile import Profile

UINT_MAX = 0xFFFFFFFF

#: Where the jiffies ticks fall: this many microseconds before every multiple of 1/HZ s of the clock
#: (the live peer starts its schedule 250 us after a tick; docs/tcp.md).
TICK_PHASE_US = 250

#: net/core/sock.c: sysctl_rmem_max and sysctl_rmem_default = SK_RMEM_MAX (256 * SKB_TRUESIZE(256)
#: on x86_64 with a 256-byte aligned sk_buff: 212992).
SK_RMEM_MAX = 212992


class net_ns:
    """struct net, the part TCP reads: sysctls, TcpExt counters, and the model's clock and HZ.

    ``now_us`` is the simulated time in microseconds; jiffies follow it
    at HZ.  Per-namespace sysctls take tcp_sk_init()'s defaults, except
    tcp_rmem and tcp_wmem, which a new namespace copies from the initial
    one; rmem_max is global.
    """

    __slots__ = (
        "HZ", "now_us", "mib", "sysctl_rmem_max", "sysctl_tcp_rmem", "sysctl_tcp_wmem", "sysctl_tcp_adv_win_scale",
        "sysctl_tcp_app_win", "sysctl_tcp_moderate_rcvbuf", "sysctl_tcp_backlog_ack_defer",
        "sysctl_tcp_shrink_window", "sysctl_tcp_workaround_signed_windows", "sysctl_tcp_comp_sack_nr",
        "sysctl_tcp_comp_sack_delay_ns", "sysctl_tcp_comp_sack_rtt_percent", "sysctl_tcp_rcvbuf_low_rtt",
        "sysctl_tcp_reordering", "sources",
    )

    def __init__(self, profile: Profile, hz: int = 250):
        self.HZ = hz
        self.now_us = 0
        self.mib: Counter[str] = Counter({name: 0 for name in TCPEXT})
        self.sysctl_rmem_max = SK_RMEM_MAX
        # tcp_sk_init() / tcp_init(): tcp_rmem = {4096, 131072, 6 MiB or 32 MiB}, tcp_wmem = {4096, 16384, 4 MiB}.
        self.sysctl_tcp_rmem = (4096, 131072, 33554432 if profile.feature("tcp_rmem2_default") == "32MiB" else 6291456)
        self.sysctl_tcp_wmem = (4096, 16384, 4194304)
        self.sysctl_tcp_adv_win_scale = 1
        self.sysctl_tcp_app_win = 31
        self.sysctl_tcp_moderate_rcvbuf = 1
        self.sysctl_tcp_backlog_ack_defer = 1
        self.sysctl_tcp_shrink_window = 0
        self.sysctl_tcp_workaround_signed_windows = 0
        self.sysctl_tcp_comp_sack_nr = 44
        self.sysctl_tcp_comp_sack_delay_ns = 1_000_000
        self.sysctl_tcp_comp_sack_rtt_percent = 33
        self.sysctl_tcp_rcvbuf_low_rtt = 1000
        self.sysctl_tcp_reordering = 3
        #: Where values came from, for reports: "defaults of <profile>" or the files read.
        self.sources = f"defaults of {profile.name}"

    def jiffies(self) -> int:
        """jiffies at now_us: a tick every 1/HZ s, the ticks TICK_PHASE_US ahead of the clock's whole
        milliseconds (docs/tcp.md, "Timing": a tick 250 us before a step's time)."""
        return jiffies_at(self.now_us, self.HZ)

    def jiffies_to_us(self, j: int) -> int:
        """The time jiffy j begins, in microseconds."""
        return jiffy_start_us(j, self.HZ)


def jiffies_at(now_us: int, hz: int) -> int:
    """net_ns.jiffies() as ints: the jiffies clock at now_us (ticks TICK_PHASE_US ahead of whole ms)."""
    return (now_us + TICK_PHASE_US) * hz // 1_000_000


def jiffy_start_us(j: int, hz: int) -> int:
    """net_ns.jiffies_to_us() as ints: the microsecond jiffy j begins."""
    return -(-j * 1_000_000 // hz) - TICK_PHASE_US


#: The host files net_ns.from_host() reads, and what each sets.
_HOST_SYSCTLS = (
    ("/proc/sys/net/core/rmem_max", "sysctl_rmem_max", 1),
    ("/proc/sys/net/ipv4/tcp_rmem", "sysctl_tcp_rmem", 3),
    ("/proc/sys/net/ipv4/tcp_wmem", "sysctl_tcp_wmem", 3),
)


def read_host_sysctls(net: net_ns, root: str = "") -> None:
    """The running kernel's net.core.rmem_max, net.ipv4.tcp_rmem and tcp_wmem into net (a namespace made now
    copies tcp_rmem/tcp_wmem from the initial one), and CONFIG_HZ from its config."""
    read = []
    for path, attr, count in _HOST_SYSCTLS:
        try:
            with open(root + path) as handle:
                values = tuple(int(word) for word in handle.read().split())
        except (OSError, ValueError):
            continue
        if len(values) != count:
            continue
        setattr(net, attr, values[0] if count == 1 else values)
        read.append(path)
    try:
        from skbsim.live.kconfig import host_config

        hz = host_config().value("HZ")
        if isinstance(hz, int) and hz > 0:
            net.HZ = hz
            read.append("CONFIG_HZ")
    except (InputError, OSError):
        pass
    if read:
        net.sources = "the running kernel: " + ", ".join(os.path.basename(p) for p in read)


# -- the backlog -------------------------------------------------------------------------------


def tcp_backlog_limit(rule: str, rcvbuf: int, sndbuf: int) -> int:
    """net/ipv4/tcp_ipv4.c: tcp_add_backlog()'s limit on sk_backlog.len + sk_rmem_alloc.

    'rcvbuf_half_sndbuf' (6.9.0): sk_rcvbuf + sk_sndbuf / 2 + 64 KiB, as a
    u32.  'twice_rcvbuf_half_sndbuf' (6.10, 'tcp: avoid premature drops in
    tcp_add_backlog()'; in 6.1.y and 6.12.y): 2 * sk_rcvbuf + sk_sndbuf /
    2 + 64 KiB, at most UINT_MAX.
    """
    if rule == "rcvbuf_half_sndbuf":
        return (rcvbuf + (sndbuf >> 1) + 65536) & UINT_MAX
    return min((rcvbuf << 1) + (sndbuf >> 1) + 65536, UINT_MAX)


def tcp_add_backlog(sk: tcp_sock, skb) -> tuple[bool, str]:
    """net/ipv4/tcp_ipv4.c: tcp_add_backlog() - (dropped, verdict) for a segment that found the lock held.

    The skb is condensed first (skb_condense(): its truesize drops to that
    of its head when its paged bytes fit the head).  It is then coalesced
    into the backlog's tail when it continues it with the same flags and
    header length ("coalesced"; sk_backlog.len grows by the truesize that
    moved), even above the limit; else it is queued while sk_backlog.len +
    sk_rmem_alloc stays within the limit, or dropped (SOCKET_BACKLOG).
    """
    kernel = sk.kernel
    before = skb.truesize
    skb_condense(kernel, skb)
    if skb.truesize != before:
        if sk.events is not None:
            tcp_event(sk, "skb_condense", before=before, after=skb.truesize)
    cb = skb.cb
    tail = sk.sk_backlog[-1] if sk.sk_backlog else None
    if tail is not None:
        tcb = tail.cb
        if (tcb.end_seq == cb.seq
                and not ((tcb.tcp_flags | cb.tcp_flags) & (TCPHDR_SYN | TCPHDR_RST | TCPHDR_URG))
                and (tcb.tcp_flags & cb.tcp_flags) & TCPHDR_ACK
                and tcb.doff == cb.doff):
            # __skb_pull(skb, hdrlen): the header goes, the data is appended to the tail.
            skb.data += cb.doff
            skb.len -= cb.doff
            done, stolen, delta = skb_try_coalesce(kernel, tail, skb)
            if done:
                tcb.end_seq = cb.end_seq
                tcb.ack_seq = cb.ack_seq
                tcb.window = cb.window
                tcb.tcp_flags |= cb.tcp_flags
                if cb.tsval is not None:
                    # The options compared equal (memcmp), so the tail keeps the same timestamps.
                    tcb.tsval, tcb.tsecr = cb.tsval, cb.tsecr
                sk.sk_backlog_len += delta
                NET_INC_STATS(sk, "TCPBacklogCoalesce")
                if sk.events is not None:
                    tcp_event(sk, "backlog_coalesce", delta=delta, backlog=sk.sk_backlog_len)
                kfree_skb_partial(kernel, skb, stolen)
                return False, "coalesced"
            skb.data -= cb.doff
            skb.len += cb.doff
    rule = sk.rule_backlog_limit
    limit = tcp_backlog_limit(rule, sk.sk_rcvbuf, sk.sk_sndbuf)
    if sk_add_backlog(sk, skb, limit):
        NET_INC_STATS(sk, "TCPBacklogDrop")
        if sk.events is not None:
            tcp_event(sk, "backlog_drop", limit=limit, rule=rule, backlog=sk.sk_backlog_len,
                      rmem=sk.sk_rmem_alloc, rcvbuf=sk.sk_rcvbuf, sndbuf=sk.sk_sndbuf)
        return True, "dropped:SOCKET_BACKLOG"
    if sk.events is not None:
        tcp_event(sk, "backlog_queue", limit=limit, rule=rule, backlog=sk.sk_backlog_len, rmem=sk.sk_rmem_alloc,
                  rcvbuf=sk.sk_rcvbuf, sndbuf=sk.sk_sndbuf)
    return False, "queued"


# -- receive ---------------------------------------------------------------------------------------


def tcp_v4_do_rcv(sk: tcp_sock, skb, from_backlog: bool = False) -> tuple[str, str]:
    """net/ipv4/tcp_ipv4.c: tcp_v4_do_rcv() for an established socket: tcp_rcv_established().

    Returns (route, verdict) as the step records name them.
    """
    return tcp_input.tcp_rcv_established(sk, skb)


def tcp_v4_rcv(sk: tcp_sock, skb) -> tuple[str, str]:
    """net/ipv4/tcp_ipv4.c: tcp_v4_rcv() for a segment of sk's connection, skb->data at the TCP header.

    The TCP header with its options is first pulled into the head
    (pskb_may_pull(skb, th->doff * 4): a segment whose headers the driver
    left in a page fragment); if that fails the segment is freed.  Under
    the socket lock held by the process the segment goes to the backlog
    (tcp_add_backlog(); a refused one is freed with sk_drops counted),
    otherwise it is processed at once.  Returns (route, verdict).
    """
    if not pskb_may_pull(sk.kernel, skb, skb.cb.doff):
        kfree_skb(sk.kernel, skb, "NOT_SPECIFIED")  # discard_it, before the socket lookup
        return "slow", "dropped:NOT_SPECIFIED"
    if not sk.owned_by_user:
        return tcp_v4_do_rcv(sk, skb)
    dropped, verdict = tcp_add_backlog(sk, skb)
    if dropped:
        sk.sk_drops += 1  # sk_drops_add(): gso_segs or 1
        kfree_skb(sk.kernel, skb, "SOCKET_BACKLOG")
    return "backlog", verdict


def tcp_v4_rcv_verdict(sk: tcp_sock, skb) -> tuple[str, str]:
    """tcp_v4_rcv() of a segment, with what became of it noted on the way (sk.rx): (route, verdict) as
    skbsim tcp's records name them (route fast/slow/backlog/ofo; verdict queued, coalesced or
    dropped:REASON with the kernel's skb_drop_reason, or '' for a segment without data)."""
    sk.rx = [skb, "slow", ""]
    try:
        return tcp_v4_rcv(sk, skb)
    finally:
        sk.rx = None


def tcp_v4_fill_cb(header: bytes, th_offset: int, tcp_len: int, flags: int | None = None):
    """net/ipv4/tcp_ipv4.c: tcp_v4_fill_cb() - TCP_SKB_CB(skb) from the header at header[th_offset:] of a
    segment of tcp_len bytes (header and payload), with its options (tcp_parse_options()).

    Returns (tcp_skb_cb, tcp_options_received); None when the header or its
    options do not fit in ``header`` (a capture cut short) or doff is below 5.
    end_seq is seq + payload + SYN + FIN.  ``flags`` replaces the header's
    flag byte (a GRO aggregate carries the FIN and PSH of every segment it
    merged).
    """
    if len(header) < th_offset + 20:
        return None
    seq, ack_seq = struct.unpack_from(">II", header, th_offset + 4)
    doff = (header[th_offset + 12] >> 4) * 4
    if doff < 20 or len(header) < th_offset + doff or tcp_len < doff:
        return None
    if flags is None:
        flags = header[th_offset + 13]
    window = (header[th_offset + 14] << 8) | header[th_offset + 15]
    opt = tcp_input.tcp_parse_options(header[th_offset + 20:th_offset + doff], bool(flags & TCPHDR_SYN))
    end_seq = (seq + tcp_len - doff + (1 if flags & TCPHDR_SYN else 0) + (1 if flags & TCPHDR_FIN else 0)) & UINT_MAX
    return tcp_skb_cb(seq, end_seq, ack_seq, flags, doff, window, opt.rcv_tsval, opt.rcv_tsecr), opt


def ipv4_default_advmss(mtu: int) -> int:
    """net/ipv4/route.c: ipv4_default_advmss() - MTU less the IPv4 and TCP headers, at least
    ip_rt_min_advmss (256), at most IPV4_MAX_PMTU (65535) less them."""
    return min(max(mtu - 40, 256), 65535 - 40)


def tcp_mtu_to_mss(mtu: int, mss_clamp: int, tcp_header_len: int) -> int:
    """net/ipv4/tcp_output.c: tcp_mtu_to_mss() - MTU less 40, at most mss_clamp, at least 48
    (tcp_min_snd_mss), less the options of every segment (the timestamp option)."""
    return max(min(mtu - 40, mss_clamp), 48) - (tcp_header_len - 20)


def check_rmem_max(value: int) -> None:
    if not 0 < value <= INT_MAX:
        raise InputError(f"rmem_max {value} is outside 1..{INT_MAX}")
