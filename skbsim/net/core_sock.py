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
