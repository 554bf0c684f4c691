"""The sending side of struct sock, after net/core/sock.c and include/net/sock.h.

What a socket that *writes* skbs needs, as tun's queue socket uses it:

- ``sk_wmem_alloc``: a refcount that starts at SK_WMEM_ALLOC_BIAS (1, the
  socket's own reference) and holds the truesize of every skb the socket
  owns (skb_set_owner_w()); sock_wfree() gives it back when the skb is
  orphaned or freed.  SO_MEMINFO and sock_alloc_send_pskb() read it without
  the bias (sk_wmem_alloc_get()).
- ``sk_sndbuf``: the limit sock_alloc_send_pskb() waits on.
- ``struct page_frag``: a task's (current->task_frag) or socket's page being
  cut into buffers; skb_page_frag_refill() keeps it filled.

sock_alloc_send_pskb() here cannot sleep: the model has no other task that
could free memory meanwhile, so a blocking writer over its send buffer gets
the same "would block" answer (-EAGAIN) a non-blocking one does, and the
caller counts it.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from skbsim.mm.gfp import GFP_KERNEL, __GFP_COMP, __GFP_DIRECT_RECLAIM, __GFP_NORETRY, __GFP_NOWARN
from skbsim.mm.page_alloc import Page
from skbsim.net.skbuff import alloc_skb_with_frags, sk_buff

if TYPE_CHECKING:
    from skbsim.kernel import Kernel

INT_MAX = 0x7FFFFFFF
#: include/net/sock.h: SK_WMEM_ALLOC_BIAS - sk_wmem_alloc's own reference.
SK_WMEM_ALLOC_BIAS = 1
#: include/net/sock.h: SKB_FRAG_PAGE_ORDER = get_order(32768).
SKB_FRAG_PAGE_SIZE = 32768
#: include/linux/mmzone.h: PAGE_ALLOC_COSTLY_ORDER.
PAGE_ALLOC_COSTLY_ORDER = 3

EAGAIN = 11
EPIPE = 32


class page_frag:
    """include/linux/mm_types_task.h: struct page_frag - a page, an offset and its size."""

    __slots__ = ("page", "offset", "size", "refills", "reuses", "releases")

    def __init__(self) -> None:
        self.page: Page | None = None
        self.offset = 0
        self.size = 0
        # Statistics, counted where they happen: new blocks, blocks reused from
        # offset 0, blocks given up (still referenced by skbs) for a new one.
        self.refills = 0
        self.reuses = 0
        self.releases = 0


class sock:
    """struct sock, the fields a writing socket's memory accounting uses.

    ``skb_destructor`` is what skb_release_all() calls for an skb this
    socket owns: sock_wfree(), the destructor skb_set_owner_w() installs.
    """

    __slots__ = ("name", "sk_sndbuf", "sk_wmem_alloc", "sk_allocation", "sk_shutdown", "sk_err",
                 "sk_write_queue", "dead", "freed", "charged", "uncharged")

    def __init__(self, name: str = "sock", sndbuf: int = INT_MAX) -> None:
        self.name = name
        self.sk_sndbuf = sndbuf
        self.sk_wmem_alloc = SK_WMEM_ALLOC_BIAS
        # sock_init_data(): sk->sk_allocation = GFP_KERNEL.
        self.sk_allocation = GFP_KERNEL
        self.sk_shutdown = 0
        self.sk_err = 0
        self.sk_write_queue: deque[sk_buff] = deque()
        self.dead = False
        self.freed = False
        self.charged = 0
        self.uncharged = 0

    def skb_destructor(self, skb: sk_buff) -> None:
        sock_wfree(skb)

    def __repr__(self) -> str:
        return f"<sock {self.name} wmem {sk_wmem_alloc_get(self)} sndbuf {self.sk_sndbuf}>"


def sk_wmem_alloc_get(sk: sock) -> int:
    """include/net/sock.h: sk_wmem_alloc_get() - owned bytes without the socket's own reference."""
    return sk.sk_wmem_alloc - SK_WMEM_ALLOC_BIAS


def __sk_free(sk: sock) -> None:
    """net/core/sock.c: __sk_free() - the last in-flight skb of a closed socket is gone."""
    sk.freed = True


def sock_wfree(skb: sk_buff) -> None:
    """net/core/sock.c: sock_wfree() - give the skb's truesize back to sk_wmem_alloc.

    The kernel first keeps one byte back around sk_write_space() and drops
    it after; the sum is the same.  A socket already closed (sk_free() has
    dropped its bias) is freed when its count reaches zero.
    """
    sk = skb.sk
    sk.sk_wmem_alloc -= skb.truesize
    sk.uncharged += skb.truesize
    if sk.sk_wmem_alloc < 0:
        raise AssertionError(f"sk_wmem_alloc of {sk.name} below zero")
    if sk.sk_wmem_alloc == 0:
        __sk_free(sk)


def skb_orphan(skb: sk_buff) -> None:
    """include/linux/skbuff.h: skb_orphan() - run the destructor now and forget the owner."""
    if skb.sk is not None:
        skb.sk.skb_destructor(skb)
        skb.sk = None


def skb_set_owner_w(skb: sk_buff, sk: sock) -> None:
    """net/core/sock.c: skb_set_owner_w() - charge skb->truesize to sk_wmem_alloc.

    The destructor (sock_wfree) runs when the skb is orphaned or freed.
    """
    skb_orphan(skb)
    skb.sk = sk
    sk.sk_wmem_alloc += skb.truesize
    sk.charged += skb.truesize


def sk_free(sk: sock) -> None:
    """net/core/sock.c: sk_free() - drop the socket's own wmem reference on close.

    The socket itself goes once in-flight skbs have given back theirs too.
    """
    sk.dead = True
    sk.sk_wmem_alloc -= SK_WMEM_ALLOC_BIAS
    if sk.sk_wmem_alloc == 0:
        __sk_free(sk)


def sock_alloc_send_pskb(kernel: Kernel, sk: sock, header_len: int, data_len: int, noblock: bool,
                         max_page_order: int) -> tuple[sk_buff | None, int]:
    """net/core/sock.c: sock_alloc_send_pskb() - (skb, 0) or (None, -errno).

    Below the send buffer (sk_wmem_alloc_get() < sk_sndbuf): an skb of
    header_len linear bytes and data_len bytes of page blocks
    (alloc_skb_with_frags() with sk->sk_allocation), owned by sk.  At or
    over it: -EAGAIN (see the module docstring for the blocking case).
    """
    if sk.sk_err:
        return None, -sk.sk_err
    if sk.sk_shutdown:
        return None, -EPIPE
    if not sk_wmem_alloc_get(sk) < sk.sk_sndbuf:
        if kernel.explain is not None:
            kernel.note(
                f"sock_alloc_send_pskb: sk_wmem_alloc {sk_wmem_alloc_get(sk)} >= sk_sndbuf {sk.sk_sndbuf}: "
                + ("-EAGAIN (non-blocking)" if noblock else "the writer would sleep until the stack frees skbs")
            )
        return None, -EAGAIN
    skb, err = alloc_skb_with_frags(kernel, header_len, data_len, max_page_order, sk.sk_allocation)
    if skb is not None:
        skb_set_owner_w(skb, sk)
    return skb, err


def skb_page_frag_refill(kernel: Kernel, sz: int, pfrag: page_frag, gfp: int,
                         high_order_alloc_disable: bool = False) -> bool:
    """net/core/sock.c: skb_page_frag_refill() - make sure pfrag has sz bytes free.

    A page no one else references any more (refcount 1: every buffer cut
    from it has been freed) is reused from offset 0; one with room left is
    kept; otherwise the holder's reference is dropped and a new block taken:
    order SKB_FRAG_PAGE_ORDER (32 KiB) without direct reclaim or retries
    unless net.core.high_order_alloc_disable, then a single page with gfp.
    """
    pages = kernel.pages
    if pfrag.page is not None:
        if pfrag.page.refcount == 1:
            pfrag.offset = 0
            pfrag.reuses += 1
            return True
        if pfrag.offset + sz <= pfrag.size:
            return True
        pages.put_page(pfrag.page)
        pfrag.page = None
        pfrag.releases += 1
    pfrag.offset = 0
    order = kernel.profile.get_order(SKB_FRAG_PAGE_SIZE)
    if order and not high_order_alloc_disable:
        mask = (gfp & ~__GFP_DIRECT_RECLAIM) | __GFP_COMP | __GFP_NOWARN | __GFP_NORETRY
        page = pages.alloc_pages(mask, order, "skb_page_frag_refill", fault_layer="page_frag")
        if page is not None:
            pfrag.page = page
            pfrag.size = pages.page_size << order
            pfrag.refills += 1
            if kernel.explain is not None:
                kernel.note(f"skb_page_frag_refill: a new order-{order} block of {pfrag.size} bytes")
            return True
    page = pages.alloc_pages(gfp, 0, "skb_page_frag_refill", fault_layer="page_frag")
    if page is None:
        return False
    pfrag.page = page
    pfrag.size = pages.page_size
    pfrag.refills += 1
    if kernel.explain is not None:
        kernel.note("skb_page_frag_refill: a single page (the high-order block was refused)")
    return True


def page_frag_release(kernel: Kernel, pfrag: page_frag) -> None:
    """The holder's reference goes (a task exiting: exit_task_frag -> put_page)."""
    if pfrag.page is not None:
        kernel.pages.put_page(pfrag.page)
        pfrag.page = None
        pfrag.offset = 0
        pfrag.size = 0


# -- the receiving side of struct sock (net/core/sock.c, include/net/sock.h) --------------
#
# Functions over any socket object with the struct sock fields receive
# accounting uses: sk_rcvbuf, sk_rmem_alloc, sk_forward_alloc, sk_userlocks,
# sk_backlog (an skb list) and sk_backlog_len, and page_size.  Protocol
# memory limits (tcp_mem, memcg) are not modelled: __sk_mem_schedule()
# always succeeds, as it does below the first tcp_mem threshold.

#: include/net/sock.h: sk_userlocks bits.
SOCK_SNDBUF_LOCK = 1
SOCK_RCVBUF_LOCK = 2
ENOBUFS = 105


def SKB_TRUESIZE_MIN(profile) -> int:
    """include/net/sock.h: TCP_SKB_MIN_TRUESIZE = 2048 + SKB_DATA_ALIGN(sizeof(struct sk_buff))."""
    return 2048 + profile.SKB_HEAD_STRUCT_SIZE


def SOCK_MIN_RCVBUF(profile) -> int:
    """include/net/sock.h: SOCK_MIN_RCVBUF = TCP_SKB_MIN_TRUESIZE (2304 on x86_64)."""
    return SKB_TRUESIZE_MIN(profile)


def SOCK_MIN_SNDBUF(profile) -> int:
    """include/net/sock.h: SOCK_MIN_SNDBUF = 2 * TCP_SKB_MIN_TRUESIZE."""
    return 2 * SKB_TRUESIZE_MIN(profile)


def sock_rcvbuf_from_setsockopt(val: int, rmem_max: int, min_rcvbuf: int) -> int:
    """net/core/sock.c: SO_RCVBUF -> __sock_set_rcvbuf(): min(val, rmem_max), at most INT_MAX / 2,
    doubled, at least SOCK_MIN_RCVBUF."""
    val = min(val, rmem_max, INT_MAX // 2)
    return max(val * 2, min_rcvbuf)


def __sock_set_rcvbuf(sk, val: int, rmem_max: int, min_rcvbuf: int) -> None:
    """net/core/sock.c: __sock_set_rcvbuf() for SO_RCVBUF: the doubled value, and SOCK_RCVBUF_LOCK."""
    sk.sk_userlocks |= SOCK_RCVBUF_LOCK
    sk.sk_rcvbuf = sock_rcvbuf_from_setsockopt(val, rmem_max, min_rcvbuf)


def sk_mem_pages(amt: int, page_size: int) -> int:
    """include/net/sock.h: sk_mem_pages() - whole pages to hold amt bytes."""
    return (amt + page_size - 1) // page_size


def sk_mem_reclaimable(forward_alloc: int, page_size: int) -> int:
    """include/net/sock.h: sk_mem_reclaim() + __sk_mem_reclaim(): the bytes of whole pages given
    back once at least a page is spare (no reserved memory: SO_RESERVE_MEM is not modelled)."""
    if forward_alloc >= page_size:
        return (forward_alloc // page_size) * page_size
    return 0


def __sk_mem_schedule(sk, size: int) -> int:
    """net/core/sock.c: __sk_mem_schedule() - forward-allocate the whole pages size needs; 1."""
    pages = sk_mem_pages(size, sk.page_size)
    sk.sk_forward_alloc += pages * sk.page_size
    sk.memory_allocated += pages
    return 1


def __sk_rmem_schedule(sk, size: int, pfmemalloc: bool) -> bool:
    """include/net/sock.h: __sk_rmem_schedule() - make sk_forward_alloc cover size bytes."""
    delta = size - sk.sk_forward_alloc
    return delta <= 0 or bool(__sk_mem_schedule(sk, delta)) or pfmemalloc


def sk_rmem_schedule(sk, skb, size: int) -> bool:
    """include/net/sock.h: sk_rmem_schedule()."""
    return __sk_rmem_schedule(sk, size, skb.pfmemalloc)


def sk_forced_mem_schedule(sk, size: int) -> None:
    """net/ipv4/tcp_output.c: sk_forced_mem_schedule() - forward-allocate whatever the limits say."""
    delta = size - sk.sk_forward_alloc
    if delta <= 0:
        return
    pages = sk_mem_pages(delta, sk.page_size)
    sk.sk_forward_alloc += pages * sk.page_size
    sk.memory_allocated += pages


def sk_mem_charge(sk, size: int) -> None:
    """include/net/sock.h: sk_mem_charge() - use size bytes of the forward allocation."""
    sk.sk_forward_alloc -= size


def sk_mem_reclaim(sk) -> None:
    """include/net/sock.h: sk_mem_reclaim() - give whole spare pages back to the protocol."""
    amount = sk_mem_reclaimable(sk.sk_forward_alloc, sk.page_size)
    if amount:
        sk.sk_forward_alloc -= amount
        sk.memory_allocated -= amount // sk.page_size


def sk_mem_uncharge(sk, size: int) -> None:
    """include/net/sock.h: sk_mem_uncharge() - size bytes back to the forward allocation, then reclaim."""
    sk.sk_forward_alloc += size
    sk_mem_reclaim(sk)


def skb_set_owner_r(skb, sk) -> None:
    """include/net/sock.h: skb_set_owner_r() - charge truesize to sk_rmem_alloc and the forward allocation.

    The skb's destructor becomes sock_rfree() (sk.skb_destructor).
    """
    skb_orphan(skb)
    skb.sk = sk
    sk.sk_rmem_alloc += skb.truesize
    sk_mem_charge(sk, skb.truesize)


def sock_rfree(skb) -> None:
    """net/core/sock.c: sock_rfree() - give the skb's truesize back (the destructor of skb_set_owner_r)."""
    sk = skb.sk
    sk.sk_rmem_alloc -= skb.truesize
    sk_mem_uncharge(sk, skb.truesize)


def sk_rcvqueues_full(sk, limit: int) -> bool:
    """include/net/sock.h: sk_rcvqueues_full() - backlog and receive queue together above limit."""
    return sk.sk_backlog_len + sk.sk_rmem_alloc > limit


def sk_add_backlog(sk, skb, limit: int) -> int:
    """include/net/sock.h: sk_add_backlog() - 0, or -ENOBUFS when the queues are over limit.

    pfmemalloc skbs (refused by a non-SOCK_MEMALLOC socket) are not modelled.
    """
    if sk_rcvqueues_full(sk, limit):
        return -ENOBUFS
    sk.sk_backlog.append(skb)
    sk.sk_backlog_len += skb.truesize
    return 0


def __release_sock(sk) -> None:
    """net/core/sock.c: __release_sock() - run the backlog through sk_backlog_rcv().

    sk_backlog.len is zeroed only once the backlog is empty, so while it
    runs the window still counts the backlog's truesize.
    """
    while sk.sk_backlog:
        batch = list(sk.sk_backlog)
        sk.sk_backlog.clear()
        for skb in batch:
            sk.sk_backlog_rcv(skb)
    sk.sk_backlog_len = 0


def release_sock(sk) -> None:
    """net/core/sock.c: release_sock() - process the backlog, run the protocol's release_cb, unlock."""
    if sk.sk_backlog:
        __release_sock(sk)
    sk.release_cb()
    sk.owned_by_user = False


def lock_sock(sk) -> None:
    """net/core/sock.c: lock_sock() - the process now owns the socket (softirq input goes to the backlog)."""
    sk.owned_by_user = True
