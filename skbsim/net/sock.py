"""UDP receive-buffer accounting, after net/ipv4/udp.c and net/core/sock.c.

A UDP socket charges each queued skb's truesize to ``sk_rmem_alloc`` and
admits or drops it against ``sk_rcvbuf`` (__udp_enqueue_schedule_skb());
the charge goes back lazily when the reader consumes (udp_rmem_release()),
in batches of a quarter of the buffer, while forward-allocated memory is
kept in whole pages (``sk_forward_alloc``).  Which admission rule, which
forward-allocation rule and which free path apply is the profile's choice
(features ``udp_rcvbuf_check``, ``udp_rcvbuf_large_fit``, ``udp_fwd_alloc``,
``udp_consume``).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from skbsim.net.skbuff import consume_skb, kfree_skb, sk_buff, skb_attempt_defer_free, skb_condense

if TYPE_CHECKING:
    from skbsim.kernel import Kernel

#: net.core.rmem_default: a new socket's sk_rcvbuf (256 * SKB_TRUESIZE(256) on x86_64).
RMEM_DEFAULT = 212992
#: net.core.wmem_default.
WMEM_DEFAULT = 212992
#: include/net/sock.h: SOCK_MIN_RCVBUF = 2048 + SKB_TRUESIZE(256)'s overhead part, 2304.
SOCK_MIN_RCVBUF = 2304
INT_MAX = 0x7FFFFFFF
ENOMEM = 12

# include/uapi/linux/sock_diag.h: SK_MEMINFO_* indices of SO_MEMINFO
SK_MEMINFO_FIELDS = ("rmem_alloc", "rcvbuf", "wmem_alloc", "sndbuf", "fwd_alloc", "wmem_queued", "optmem",
                     "backlog", "drops")


class udp_sock:
    """struct udp_sock with the struct sock fields receive accounting uses."""

    __slots__ = (
        "rcvbuf",
        "rmem_alloc",
        "forward_alloc",
        "forward_deficit",
        "receive_queue",
        "reader_queue",
        "memory_allocated",
        "drops",
        "enqueued",
        "consumed",
        "peak_rmem",
        "condensed",
        "strict_fit",
        "large_fit",
        "fwd_deficit_only",
        "defer_free",
        "page_size",
    )

    def __init__(self, kernel: Kernel, rcvbuf: int = RMEM_DEFAULT):
        profile = kernel.profile
        self.rcvbuf = rcvbuf
        self.rmem_alloc = 0
        self.forward_alloc = 0
        self.forward_deficit = 0
        self.receive_queue: deque[sk_buff] = deque()
        self.reader_queue: deque[sk_buff] = deque()
        self.memory_allocated = 0  # pages charged to the protocol (udp_memory_allocated)
        self.drops: dict[str, int] = {}
        self.enqueued = 0
        self.consumed = 0
        self.peak_rmem = 0
        self.condensed = 0
        self.strict_fit = profile.feature("udp_rcvbuf_check") == "strict_fit"
        self.large_fit = profile.feature("udp_rcvbuf_large_fit")
        self.fwd_deficit_only = profile.feature("udp_fwd_alloc") == "deficit"
        self.defer_free = profile.feature("udp_consume") == "defer_free"
        self.page_size = profile.PAGE_SIZE

    @property
    def forward_threshold(self) -> int:
        """udp_lib_init_sock() / udp_set_rcvbuf: a quarter of the receive buffer."""
        return self.rcvbuf >> 2

    def queued(self) -> int:
        return len(self.receive_queue) + len(self.reader_queue)


def sock_set_rcvbuf(sk: udp_sock, val: int, rmem_max: int = RMEM_DEFAULT) -> None:
    """net/core/sock.c: SO_RCVBUF - doubled, capped by rmem_max, at least SOCK_MIN_RCVBUF."""
    val = min(val, rmem_max)
    sk.rcvbuf = max(2 * val, SOCK_MIN_RCVBUF)


def udp_forward_pages(size: int, forward_alloc: int, page_size: int, deficit_only: int) -> int:
    """net/ipv4/udp.c: the whole pages (sk_mem_pages()) udp_rmem_schedule() forward-allocates for an
    skb of size bytes while sk_forward_alloc is forward_alloc.

    6.9+ (udp_rmem_schedule) raises only the deficit; 6.1 raised whole pages
    for the full size once it reached sk_forward_alloc.  (Plain integers: the
    fast engine compiles this function.)
    """
    if deficit_only:
        size -= forward_alloc
        if size <= 0:
            return 0
    elif size < forward_alloc:
        return 0
    return (size + page_size - 1) // page_size


def udp_rmem_schedule(sk: udp_sock, size: int) -> None:
    """net/ipv4/udp.c: forward-allocate pages for an skb of size bytes (udp_forward_pages()), then
    charge it.  Protocol memory limits (udp_mem) are not modelled, so this never fails."""
    pages = udp_forward_pages(size, sk.forward_alloc, sk.page_size, sk.fwd_deficit_only)
    sk.forward_alloc += pages * sk.page_size - size
    sk.memory_allocated += pages


def udp_rcvbuf_admits(rmem: int, truesize: int, rcvbuf: int, strict_fit: int, large_fit: int) -> bool:
    """net/ipv4/udp.c: __udp_enqueue_schedule_skb()'s first test - may an skb of truesize bytes be
    queued while sk_rmem_alloc is rmem?

    An skb that fits (rmem + truesize <= rcvbuf) always may.  One that does not: never when
    large_fit and rcvbuf > INT_MAX >> 1 (6.15, 6.12.23+); else with strict_fit (6.18) only on an
    empty queue, and without it (up to 6.17) while rmem has not passed rcvbuf, so the charge may
    overshoot by one skb.  (Plain integers: the fast engine compiles this function.)
    """
    if rmem + truesize <= rcvbuf:
        return True
    if large_fit and rcvbuf > INT_MAX >> 1:
        return False
    if strict_fit:
        return rmem == 0
    return rmem <= rcvbuf


def __udp_enqueue_schedule_skb(kernel: Kernel, sk: udp_sock, skb: sk_buff) -> int:
    """net/ipv4/udp.c: __udp_enqueue_schedule_skb() - charge and queue, or -ENOMEM.

    Under pressure (sk_rmem_alloc above half the buffer) the skb is
    condensed first, which may lower the truesize that is charged.
    """
    rmem = sk.rmem_alloc
    rcvbuf = sk.rcvbuf
    if not udp_rcvbuf_admits(rmem, skb.truesize, rcvbuf, sk.strict_fit, sk.large_fit):
        return -ENOMEM
    if rmem > rcvbuf >> 1:
        before = skb.truesize
        skb_condense(kernel, skb)
        if skb.truesize != before:
            sk.condensed += 1
    size = skb.truesize
    sk.rmem_alloc += size
    udp_rmem_schedule(sk, size)
    sk.receive_queue.append(skb)
    sk.enqueued += 1
    if sk.rmem_alloc > sk.peak_rmem:
        sk.peak_rmem = sk.rmem_alloc
    return 0


def udp_queue_rcv_skb(kernel: Kernel, sk: udp_sock, skb: sk_buff) -> bool:
    """net/ipv4/udp.c: __udp_queue_rcv_skb() - True if queued; a refused skb is freed as a drop."""
    if __udp_enqueue_schedule_skb(kernel, sk, skb) == 0:
        return True
    sk.drops["socket_rcvbuf"] = sk.drops.get("socket_rcvbuf", 0) + 1
    kfree_skb(kernel, skb, "SOCKET_RCVBUFF")
    return False


def udp_rmem_release(sk: udp_sock, size: int, partial: int) -> None:
    """net/ipv4/udp.c: udp_rmem_release() - give back rmem in batches.

    Reads accumulate in forward_deficit; the charge is returned once it
    reaches forward_threshold or the reader queue runs dry.  Whole pages of
    forward allocation beyond what is kept go back to the protocol.
    """
    if partial:
        sk.forward_deficit += size
        size = sk.forward_deficit
        if size < sk.rcvbuf >> 2 and sk.reader_queue:  # sk.forward_threshold
            return
    else:
        size += sk.forward_deficit
    sk.forward_deficit = 0
    sk.forward_alloc += size
    amount = sk_mem_reclaimable(sk.forward_alloc, partial, sk.page_size)
    sk.forward_alloc -= amount
    sk.memory_allocated -= amount // sk.page_size
    sk.rmem_alloc -= size
    sk.reader_queue.extend(sk.receive_queue)
    sk.receive_queue.clear()


def sk_mem_reclaimable(forward_alloc: int, keep: int, page_size: int) -> int:
    """include/net/sock.h: what __sk_mem_reclaim() gives back of forward_alloc bytes when keep bytes
    are kept (udp_rmem_release()'s partial): whole pages.  (Plain integers: the fast engine compiles
    this function.)"""
    return (forward_alloc - keep) & ~(page_size - 1)


def udp_recvmsg(kernel: Kernel, sk: udp_sock) -> sk_buff | None:
    """net/ipv4/udp.c: udp_recvmsg() for one datagram: dequeue, uncharge, free.

    Returns the skb's length read, or None when nothing is queued.  Runs in
    the reader's (process) context on the current CPU.
    """
    if not sk.reader_queue:
        # __skb_try_recv_from_queue(): refill the reader queue from the receive queue.
        sk.reader_queue.extend(sk.receive_queue)
        sk.receive_queue.clear()
        if not sk.reader_queue:
            return None
    skb = sk.reader_queue.popleft()
    skb_consume_udp(kernel, sk, skb)
    sk.consumed += 1
    return skb


def skb_consume_udp(kernel: Kernel, sk: udp_sock, skb: sk_buff) -> None:
    """net/ipv4/udp.c: skb_consume_udp() - release the charge, then free the skb."""
    udp_rmem_release(sk, skb.truesize, 1)
    if sk.defer_free:
        skb_attempt_defer_free(kernel, skb)
    else:
        consume_skb(kernel, skb)


def udp_destroy_sock(kernel: Kernel, sk: udp_sock) -> None:
    """net/ipv4/udp.c: udp_destruct_common() - free what is queued, reclaim all forward memory."""
    total = 0
    for queue in (sk.reader_queue, sk.receive_queue):
        while queue:
            skb = queue.popleft()
            total += skb.truesize
            kfree_skb(kernel, skb)
    udp_rmem_release(sk, total, 0)


def sk_get_meminfo(sk: udp_sock) -> dict[str, int]:
    """net/core/sock.c: sk_get_meminfo() - the SO_MEMINFO view of the socket."""
    return {
        "rmem_alloc": sk.rmem_alloc,
        "rcvbuf": sk.rcvbuf,
        "wmem_alloc": 0,
        "sndbuf": WMEM_DEFAULT,
        "fwd_alloc": sk.forward_alloc,
        "wmem_queued": 0,
        "optmem": 0,
        "backlog": 0,
        "drops": sum(sk.drops.values()),
    }
