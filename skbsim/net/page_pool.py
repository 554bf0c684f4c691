"""page_pool, after net/core/page_pool.c and include/net/page_pool/{types,helpers}.h.

A page_pool hands a driver's RX ring whole pages (or fragments of them) and
takes them back when the skbs built on them are freed, so that the pages go
round without touching the page allocator:

- the allocation cache, ``alloc`` (PP_ALLOC_CACHE_SIZE entries, no lock:
  only the pool's NAPI context touches it), refilled PP_ALLOC_CACHE_REFILL at
  a time from
- the ``ring`` (a ptr_ring of ``pool_size`` entries, default 1024), which
  any context may produce into, and from
- the page allocator in bulk (alloc_pages_bulk_node(), order-0 pools) or one
  compound page at a time (higher orders) when both are empty.

A page coming back is recycled only while the pool is its sole owner
(page_ref_count() == 1) and it is not a pfmemalloc page: into the cache when
the caller is allowed to (the pool's own NAPI context), else into the ring,
and to the page allocator when the ring is full.  Fragments of one page are
counted in ``pp_ref_count`` (6.1: ``pp_frag_count``); only the last one
returns the page.

Per-release rules are profile features (``pp_*``, see docs/versions.md).
Functions keep the kernel's names and take the Kernel first; the pool's
counters use the names ``ethtool -S`` prints (``rx_pp_alloc_fast``, ...).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from skbsim.errors import KernelBug
from skbsim.mm.gfp import GFP_ATOMIC, __GFP_COMP, __GFP_NOWARN
from skbsim.mm.page_alloc import Page
from skbsim.net.napi import in_softirq

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct
    from skbsim.profile import Profile

# include/net/page_pool/types.h
PP_FLAG_DMA_MAP = 1 << 0
PP_FLAG_DMA_SYNC_DEV = 1 << 1
#: 6.1 only (include/net/page_pool.h): fragments are counted only in pools made with it.
PP_FLAG_PAGE_FRAG = 1 << 2
PP_FLAG_ALL = PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV

NUMA_NO_NODE = -1
LONG_MAX = (1 << 63) - 1
#: net/core/page_pool.c: page_pool_init() - the ptr_ring's size when pool_size is 0.
PP_DEFAULT_RING_SIZE = 1024
#: v6.9: a larger pool_size is -E2BIG; 'page_pool: Clamp pool size to max 16K pages' (late 2025, stable
#: 6.1.y, 6.12.y, 6.18.y) clamps to 16384 instead.
PP_RING_SIZE_E2BIG = 32768
PP_RING_SIZE_CLAMP = 16384

EINVAL = 22
E2BIG = 7

#: The counters of struct page_pool_stats, in the order and with the names
#: page_pool_ethtool_stats_get_strings() gives them.
PP_STATS = (
    "rx_pp_alloc_fast",
    "rx_pp_alloc_slow",
    "rx_pp_alloc_slow_ho",
    "rx_pp_alloc_empty",
    "rx_pp_alloc_refill",
    "rx_pp_alloc_waive",
    "rx_pp_recycle_cached",
    "rx_pp_recycle_cache_full",
    "rx_pp_recycle_ring",
    "rx_pp_recycle_ring_full",
    "rx_pp_recycle_released_ref",
)


# -- constants that depend on the build ----------------------------------------------------


def pp_alloc_cache_refill(page_size: int, by_page_size: bool) -> int:
    """include/net/page_pool/types.h: PP_ALLOC_CACHE_REFILL - 64, or (7.1) 16 from 16K pages, 4 from 64K."""
    if not by_page_size or page_size < 16384:
        return 64
    return 16 if page_size < 65536 else 4


def pp_alloc_cache_size(refill: int, by_page_size: bool) -> int:
    """include/net/page_pool/types.h: PP_ALLOC_CACHE_SIZE - 128, or (7.1) twice the refill."""
    return refill * 2 if by_page_size else 128


def pp_bias_max(half: bool) -> int:
    """net/core/page_pool.c: BIAS_MAX - LONG_MAX, or LONG_MAX >> 1 from 6.8."""
    return LONG_MAX >> 1 if half else LONG_MAX


def pp_frag_align(dma_align: int, shinfo_align: int, with_shinfo: bool) -> int:
    """page_pool_alloc_frag(): the alignment of fragment sizes (and so of their offsets)."""
    return max(dma_align, shinfo_align) if with_shinfo else dma_align


def align_up(size: int, a: int) -> int:
    """include/linux/align.h: ALIGN() for a power-of-two a."""
    return (size + a - 1) & ~(a - 1)


#: include/linux/dma-mapping.h: dma_get_cache_alignment() is ARCH_DMA_MINALIGN
#: where the architecture defines one, else 1.  x86 defines none; arm64 has 128.
_DMA_MINALIGN = {"x86_64": 1, "i386": 1, "i686": 1, "arm64": 128, "aarch64": 128}


def dma_get_cache_alignment(profile: Profile) -> int:
    """include/linux/dma-mapping.h: dma_get_cache_alignment() for the profile's architecture.

    Architectures not in the table are taken to align DMA to a cache line
    (L1_CACHE_BYTES), as their ARCH_DMA_MINALIGN does where they define it.
    """
    return _DMA_MINALIGN.get(profile.arch, profile.L1_CACHE_BYTES)


def skb_shared_info_alignment(profile: Profile) -> int:
    """__alignof__(struct skb_shared_info): that of its longest scalar, a pointer (8 on 64-bit)."""
    return 4 if profile.arch in ("i386", "i686", "arm") else 8


# -- the pool ---------------------------------------------------------------------------------


class page_pool_params:
    """include/net/page_pool/types.h: struct page_pool_params (the fields the model uses).

    ``napi`` links the pool to its NAPI instance for direct recycling (6.4+);
    ``flags`` takes PP_FLAG_*; ``max_len`` and ``offset`` bound the
    sync-for-device done on each recycled page with PP_FLAG_DMA_SYNC_DEV.
    """

    __slots__ = ("flags", "order", "pool_size", "nid", "napi", "max_len", "offset", "netdev", "queue_idx")

    def __init__(self, *, flags: int = PP_FLAG_DMA_MAP, order: int = 0, pool_size: int = 0,
                 nid: int = NUMA_NO_NODE, napi: napi_struct | None = None, max_len: int = 0, offset: int = 0,
                 netdev=None, queue_idx: int = 0):
        self.flags = flags
        self.order = order
        self.pool_size = pool_size
        self.nid = nid
        self.napi = napi
        self.max_len = max_len
        self.offset = offset
        self.netdev = netdev
        self.queue_idx = queue_idx


class page_pool:
    """include/net/page_pool/types.h: struct page_pool.

    ``stats`` holds the alloc and recycle counters under their ethtool
    names (the kernel keeps the recycle ones per CPU and sums them in
    page_pool_get_stats(); one sum is what the model keeps).  ``destroyed``
    is set by page_pool_destroy(); the pool object lives on in the kernel's
    list while pages are in flight (the deferred release work).
    """

    __slots__ = (
        "p",
        "cpuid",
        "ring_qsize",
        "cache_size",
        "cache_refill",
        "bias_max",
        "frag_align",
        "alloc",
        "ring",
        "frag_page",
        "frag_offset",
        "frag_users",
        "pages_state_hold_cnt",
        "pages_state_release_cnt",
        "user_cnt",
        "destroy_cnt",
        "destroyed",
        "stats",
        "dma_sync_bytes",
        "name",
        # per-release rules, read from the profile once
        "ref_rule_always",
        "direct_rule",
        "cached_on_reuse",
    )

    def __init__(self, params: page_pool_params, cpuid: int, name: str):
        self.p = params
        self.cpuid = cpuid
        self.ring_qsize = PP_DEFAULT_RING_SIZE
        self.cache_size = 128
        self.cache_refill = 64
        self.bias_max = LONG_MAX
        self.frag_align = 1
        self.alloc: list[Page] = []          # pool->alloc.cache[0 .. count)
        self.ring: deque[Page] = deque()     # pool->ring, at most ring_qsize entries
        self.frag_page: Page | None = None
        self.frag_offset = 0
        self.frag_users = 0
        self.pages_state_hold_cnt = 0
        self.pages_state_release_cnt = 0
        self.user_cnt = 1
        self.destroy_cnt = 0
        self.destroyed = False
        self.stats = dict.fromkeys(PP_STATS, 0)
        self.dma_sync_bytes = 0
        self.name = name
        self.ref_rule_always = True
        self.direct_rule = "every_put"
        self.cached_on_reuse = False

    def __repr__(self) -> str:
        state = "destroyed" if self.destroyed else "live"
        return (f"<page_pool {self.name} {state}: {len(self.alloc)} cached, {len(self.ring)} in ring, "
                f"{page_pool_inflight(self)} in flight>")


def page_pool_create(kernel: Kernel, params: page_pool_params, cpuid: int = -1,
                     name: str = "page_pool") -> tuple[page_pool | None, int]:
    """net/core/page_pool.c: page_pool_create() / page_pool_create_percpu() - (pool, 0) or (None, -errno).

    page_pool_init()'s checks: only known flags; PP_FLAG_DMA_SYNC_DEV needs
    PP_FLAG_DMA_MAP and a max_len; the ring is pool_size entries (1024 when
    0), clamped to 16384 or refused above 32768 by the release's rule
    (``pp_ring_size_rule``); 7.1 refuses an order above MAX_PAGE_ORDER.
    """
    profile = kernel.profile
    frag_flag = profile.feature("pp_ref_count_rule") == "frag_flag"
    known = PP_FLAG_ALL | (PP_FLAG_PAGE_FRAG if frag_flag else 0)
    if params.flags & ~known:
        return None, -EINVAL
    if params.flags & PP_FLAG_DMA_SYNC_DEV and (not params.flags & PP_FLAG_DMA_MAP or not params.max_len):
        return None, -EINVAL
    ring_qsize = PP_DEFAULT_RING_SIZE
    if params.pool_size:
        if profile.feature("pp_ring_size_rule") == "clamp_16k":
            ring_qsize = min(params.pool_size, PP_RING_SIZE_CLAMP)
        else:
            ring_qsize = params.pool_size
            if ring_qsize > PP_RING_SIZE_E2BIG:
                return None, -E2BIG
    if profile.has("pp_create_checks_order") and params.order > profile.MAX_PAGE_ORDER:
        return None, -EINVAL
    pool = page_pool(params, cpuid, name)
    pool.ring_qsize = ring_qsize
    by_page_size = profile.feature("pp_alloc_cache_refill_rule") == "by_page_size"
    pool.cache_refill = pp_alloc_cache_refill(profile.PAGE_SIZE, by_page_size)
    pool.cache_size = pp_alloc_cache_size(pool.cache_refill, by_page_size)
    pool.bias_max = pp_bias_max(profile.feature("pp_bias_max") == "long_max_half")
    pool.frag_align = pp_frag_align(dma_get_cache_alignment(profile), skb_shared_info_alignment(profile),
                                    profile.feature("pp_frag_align") == "dma_or_shinfo")
    pool.ref_rule_always = not frag_flag
    pool.direct_rule = profile.feature("pp_direct_recycle")
    pool.cached_on_reuse = profile.feature("pp_frag_stats") == "cached_on_reuse"
    kernel.page_pools.append(pool)
    return pool, 0


# -- fragment reference counts (include/net/page_pool/helpers.h) -------------------------------


def page_pool_fragment_page(page: Page, nr: int) -> None:
    """helpers.h: page_pool_fragment_page() - charge a fresh page with nr references."""
    page.pp_ref_count = nr


def pp_ref_count_unref(count: int, nr: int, always: bool) -> int:
    """helpers.h: page_pool_unref_page()'s new pp_ref_count after dropping nr of count references.

    Dropping exactly what is there does not write: 6.7+ (always) then leaves
    the count at 1, so that every page starts its next life as one piece;
    6.1 leaves it as it was.  What is left is count - nr either way.  (Plain
    integers: the fast engine compiles this function.)
    """
    if count == nr:
        return 1 if always else count
    return count - nr


def page_pool_unref_page(pool: page_pool, page: Page, nr: int) -> int:
    """helpers.h: page_pool_unref_page() (6.1: page_pool_defrag_page()) - drop nr references, return what is
    left (pp_ref_count_unref())."""
    count = page.pp_ref_count
    if count < nr:
        raise KernelBug(f"pp_ref_count below zero on {page!r}")
    page.pp_ref_count = pp_ref_count_unref(count, nr, pool.ref_rule_always)
    return count - nr


def page_pool_ref_page(page: Page) -> None:
    """helpers.h: page_pool_ref_page() - one more fragment user."""
    page.pp_ref_count += 1


def page_pool_is_last_ref(pool: page_pool, page: Page) -> bool:
    """helpers.h: page_pool_is_last_ref() (6.1: page_pool_is_last_frag()).

    In 6.1 a pool made without PP_FLAG_PAGE_FRAG does not count fragments:
    every put is the last.
    """
    if not pool.ref_rule_always and not pool.p.flags & PP_FLAG_PAGE_FRAG:
        return True
    return page_pool_unref_page(pool, page, 1) == 0


# -- allocation -------------------------------------------------------------------------------


def page_pool_set_pp_info(pool: page_pool, page: Page) -> None:
    """net/core/page_pool.c: page_pool_set_pp_info() - the page belongs to the pool from now on.

    6.7+ also sets pp_ref_count to 1 (page_pool_fragment_page(page, 1)).
    """
    page.pp = pool
    if pool.ref_rule_always:
        page.pp_ref_count = 1


def page_pool_clear_pp_info(page: Page) -> None:
    """net/core/page_pool.c: page_pool_clear_pp_info()."""
    page.pp = None


def _pref_nid(kernel: Kernel, pool: page_pool) -> int:
    """The node refill wants: the pool's, or the current CPU's (numa_mem_id(); one node, 0, here)."""
    return 0 if pool.p.nid == NUMA_NO_NODE else pool.p.nid


def page_pool_refill_alloc_cache(kernel: Kernel, pool: page_pool) -> Page | None:
    """net/core/page_pool.c: page_pool_refill_alloc_cache() - move up to PP_ALLOC_CACHE_REFILL pages from the ring.

    An empty ring counts ``alloc_empty``.  A page of another node stops the
    refill and goes back to the page allocator (``alloc_waive``).  If any
    page made it, one is returned (``alloc_refill``).
    """
    stats = pool.stats
    ring = pool.ring
    if not ring:
        stats["rx_pp_alloc_empty"] += 1
        return None
    nid = _pref_nid(kernel, pool)
    cache = pool.alloc
    while True:
        if not ring:
            break
        page = ring.popleft()
        if page.nid == nid:
            cache.append(page)
        else:
            page_pool_return_page(kernel, pool, page)
            stats["rx_pp_alloc_waive"] += 1
            break
        if len(cache) >= pool.cache_refill:
            break
    if cache:
        stats["rx_pp_alloc_refill"] += 1
        return cache.pop()
    return None


def __page_pool_get_cached(kernel: Kernel, pool: page_pool) -> Page | None:
    """net/core/page_pool.c: __page_pool_get_cached() - the cache (``alloc_fast``), else a refill from the ring."""
    if pool.alloc:
        pool.stats["rx_pp_alloc_fast"] += 1
        return pool.alloc.pop()
    return page_pool_refill_alloc_cache(kernel, pool)


def _page_pool_got_page(kernel: Kernel, pool: page_pool, page: Page) -> None:
    """DMA map (always succeeds here), sync for device, set_pp_info and count the page in flight."""
    if pool.p.flags & PP_FLAG_DMA_SYNC_DEV:
        page_pool_dma_sync_for_device(pool, page, pool.p.max_len)
    page_pool_set_pp_info(pool, page)
    pool.pages_state_hold_cnt += 1


def __page_pool_alloc_page_order(kernel: Kernel, pool: page_pool, gfp: int) -> Page | None:
    """net/core/page_pool.c: __page_pool_alloc_page_order() - one compound page (``alloc_slow_ho``)."""
    page = kernel.pages.alloc_pages(gfp | __GFP_COMP, pool.p.order, f"page_pool {pool.name}")
    if page is None:
        return None
    pool.stats["rx_pp_alloc_slow_ho"] += 1
    _page_pool_got_page(kernel, pool, page)
    return page


def __page_pool_alloc_pages_slow(kernel: Kernel, pool: page_pool, gfp: int) -> Page | None:
    """net/core/page_pool.c: __page_pool_alloc_pages_slow() (6.14+: __page_pool_alloc_netmems_slow()).

    Order-0 pools take PP_ALLOC_CACHE_REFILL pages in one bulk allocation
    into the cache and return one (``alloc_slow``, once per bulk).
    """
    if pool.p.order:
        return __page_pool_alloc_page_order(kernel, pool, gfp)
    if pool.alloc:
        return pool.alloc.pop()
    pages = kernel.pages.alloc_pages_bulk(gfp, pool.cache_refill, f"page_pool {pool.name}")
    if not pages:
        return None
    for page in pages:
        _page_pool_got_page(kernel, pool, page)
        pool.alloc.append(page)
    pool.stats["rx_pp_alloc_slow"] += 1
    return pool.alloc.pop()


def page_pool_alloc_pages(kernel: Kernel, pool: page_pool, gfp: int) -> Page | None:
    """net/core/page_pool.c: page_pool_alloc_pages() (6.12+: page_pool_alloc_netmems()) - a whole page or None."""
    page = __page_pool_get_cached(kernel, pool)
    if page is not None:
        return page
    return __page_pool_alloc_pages_slow(kernel, pool, gfp)


def page_pool_dev_alloc_pages(kernel: Kernel, pool: page_pool) -> Page | None:
    """helpers.h: page_pool_dev_alloc_pages() - page_pool_alloc_pages(GFP_ATOMIC | __GFP_NOWARN)."""
    return page_pool_alloc_pages(kernel, pool, GFP_ATOMIC | __GFP_NOWARN)


def page_pool_drain_frag(kernel: Kernel, pool: page_pool, page: Page) -> Page | None:
    """net/core/page_pool.c: page_pool_drain_frag() - the frag page is full: reuse it if every fragment is back.

    The pool gives back the BIAS_MAX - frag_users references nobody took;
    if that was the last, the page is reused in place (when still
    recyclable) or returned; otherwise the last fragment's put will recycle it.
    """
    if page_pool_unref_page(pool, page, pool.bias_max - pool.frag_users):
        return None
    if __page_pool_page_can_be_recycled(page):
        if pool.p.flags & PP_FLAG_DMA_SYNC_DEV:
            page_pool_dma_sync_for_device(pool, page, -1)
        return page
    page_pool_return_page(kernel, pool, page)
    return None


def page_pool_free_frag(kernel: Kernel, pool: page_pool) -> None:
    """net/core/page_pool.c: page_pool_free_frag() - drop the pool's hold on its frag page (destroy)."""
    page = pool.frag_page
    pool.frag_page = None
    if page is None or page_pool_unref_page(pool, page, pool.bias_max - pool.frag_users):
        return
    page_pool_return_page(kernel, pool, page)


def page_pool_alloc_frag(kernel: Kernel, pool: page_pool, size: int, gfp: int) -> tuple[Page | None, int]:
    """net/core/page_pool.c: page_pool_alloc_frag() - (page, offset) of size bytes, or (None, 0).

    The size is rounded up to the pool's fragment alignment
    (``pp_frag_align``); fragments are cut from offset 0 upwards.  When the
    next one does not fit, the page is drained (reused at once if all its
    fragments came back) or left to its users and a new page taken; a new
    frag page is charged with BIAS_MAX references.  6.1 refuses pools made
    without PP_FLAG_PAGE_FRAG.
    """
    max_size = kernel.profile.PAGE_SIZE << pool.p.order
    if size > max_size or (not pool.ref_rule_always and not pool.p.flags & PP_FLAG_PAGE_FRAG):
        kernel.warn_once("page_pool_alloc_frag", f"WARNING: page_pool_alloc_frag({size}) on pool {pool.name}")
        return None, 0
    size = align_up(size, pool.frag_align)
    stats = pool.stats
    page = pool.frag_page
    offset = pool.frag_offset
    if page is not None and offset + size > max_size:
        page = page_pool_drain_frag(kernel, pool, page)
        if page is not None:
            if pool.cached_on_reuse:
                stats["rx_pp_recycle_cached"] += 1
            stats["rx_pp_alloc_fast"] += 1
            return _frag_reset(pool, page, size), 0
    if page is None:
        page = page_pool_alloc_pages(kernel, pool, gfp)
        if page is None:
            pool.frag_page = None
            return None, 0
        pool.frag_page = page
        return _frag_reset(pool, page, size), 0
    pool.frag_users += 1
    pool.frag_offset = offset + size
    if not pool.cached_on_reuse:
        stats["rx_pp_alloc_fast"] += 1
    return page, offset


def _frag_reset(pool: page_pool, page: Page, size: int) -> Page:
    """The frag_reset label: a page starts over with one user and BIAS_MAX references."""
    pool.frag_users = 1
    pool.frag_offset = size
    page_pool_fragment_page(page, pool.bias_max)
    return page


def page_pool_dev_alloc_frag(kernel: Kernel, pool: page_pool, size: int) -> tuple[Page | None, int]:
    """helpers.h: page_pool_dev_alloc_frag() - page_pool_alloc_frag(GFP_ATOMIC | __GFP_NOWARN)."""
    return page_pool_alloc_frag(kernel, pool, size, GFP_ATOMIC | __GFP_NOWARN)


def page_pool_alloc(kernel: Kernel, pool: page_pool, size: int, gfp: int) -> tuple[Page | None, int, int]:
    """helpers.h: page_pool_alloc() (6.12+: page_pool_alloc_netmem()) - (page, offset, size) or (None, 0, size).

    More than half the pool's page: a whole page, offset 0, size the page.
    Otherwise a fragment, and when the next fragment of the same size would
    not fit, the rest of the page is folded into this one (size grows to the
    page's end and the pool's frag_offset moves there), so that truesize
    covers all of the page.
    """
    if not kernel.profile.has("pp_dev_alloc"):
        raise KernelBug(f"page_pool_alloc() does not exist in {kernel.profile.name} (6.7+)")
    max_size = kernel.profile.PAGE_SIZE << pool.p.order
    if size << 1 > max_size:
        return page_pool_alloc_pages(kernel, pool, gfp), 0, max_size
    page, offset = page_pool_alloc_frag(kernel, pool, size, gfp)
    if page is None:
        return None, 0, size
    folded = page_pool_alloc_size(pool.frag_offset, offset, size, max_size)
    if folded != size:
        size = folded
        pool.frag_offset = max_size
    return page, offset, size


def page_pool_alloc_size(frag_offset: int, offset: int, size: int, max_size: int) -> int:
    """page_pool_alloc()'s fragment size: the rest of the page from offset when a next fragment of size
    bytes would not fit after frag_offset (the pool's offset once this one is cut), else size.  (Plain
    integers: the fast engine compiles this function.)"""
    return max_size - offset if frag_offset + size > max_size else size


def page_pool_dev_alloc(kernel: Kernel, pool: page_pool, size: int) -> tuple[Page | None, int, int]:
    """helpers.h: page_pool_dev_alloc() - page_pool_alloc(GFP_ATOMIC | __GFP_NOWARN)."""
    return page_pool_alloc(kernel, pool, size, GFP_ATOMIC | __GFP_NOWARN)


def page_pool_dev_alloc_va(kernel: Kernel, pool: page_pool, size: int) -> tuple[int | None, int]:
    """helpers.h: page_pool_dev_alloc_va() - (virtual address, size) of page_pool_dev_alloc()."""
    page, offset, size = page_pool_dev_alloc(kernel, pool, size)
    if page is None:
        return None, size
    return kernel.pages.page_address(page) + offset, size


# -- giving pages back ------------------------------------------------------------------------


def page_pool_dma_sync_for_device(pool: page_pool, page: Page, dma_sync_size: int) -> None:
    """net/core/page_pool.c: page_pool_dma_sync_for_device() - min(dma_sync_size, max_len) bytes from offset.

    No effect on any size the stack sees; the bytes are counted so a report
    can say how much the device was given back.  -1 means the whole max_len.
    """
    size = pool.p.max_len if dma_sync_size < 0 else min(dma_sync_size, pool.p.max_len)
    pool.dma_sync_bytes += size


def __page_pool_page_can_be_recycled(page: Page) -> bool:
    """net/core/page_pool.c: __page_pool_page_can_be_recycled() - sole owner, not from the reserves."""
    return page.refcount == 1 and not page.pfmemalloc


def page_pool_inflight(pool: page_pool) -> int:
    """net/core/page_pool.c: page_pool_inflight() - pages handed out and not yet returned to the allocator.

    Pages in the cache and the ring count as in flight too: they leave only
    through page_pool_return_page().
    """
    return pool.pages_state_hold_cnt - pool.pages_state_release_cnt


def page_pool_return_page(kernel: Kernel, pool: page_pool, page: Page) -> None:
    """net/core/page_pool.c: page_pool_return_page() (6.18: page_pool_return_netmem()).

    The page leaves the pool: DMA unmapped, pp info cleared, the release
    count raised, and put_page() - freeing it unless someone else still
    holds a page reference.
    """
    page_pool_clear_pp_info(page)
    pool.pages_state_release_cnt += 1
    kernel.pages.put_page(page)


def page_pool_recycle_in_ring(pool: page_pool, page: Page) -> bool:
    """net/core/page_pool.c: page_pool_recycle_in_ring() - into the ptr_ring unless it is full (``recycle_ring``)."""
    if len(pool.ring) >= pool.ring_qsize:
        return False
    pool.ring.append(page)
    pool.stats["rx_pp_recycle_ring"] += 1
    return True


def page_pool_recycle_in_cache(pool: page_pool, page: Page) -> bool:
    """net/core/page_pool.c: page_pool_recycle_in_cache() - into the alloc cache (``recycle_cached``) unless
    it holds PP_ALLOC_CACHE_SIZE pages (``recycle_cache_full``)."""
    if len(pool.alloc) == pool.cache_size:
        pool.stats["rx_pp_recycle_cache_full"] += 1
        return False
    pool.alloc.append(page)
    pool.stats["rx_pp_recycle_cached"] += 1
    return True


def __page_pool_put_page(kernel: Kernel, pool: page_pool, page: Page, dma_sync_size: int,
                         allow_direct: bool) -> Page | None:
    """net/core/page_pool.c: __page_pool_put_page() - the page to put in the ring, or None.

    A recyclable page goes to the cache when allowed (up to 6.9 the caller
    must also be in softirq), else it is returned for the ring.  A page
    someone else still holds a reference on is released to the allocator
    (``recycle_released_ref``).
    """
    if __page_pool_page_can_be_recycled(page):
        if pool.p.flags & PP_FLAG_DMA_SYNC_DEV:
            page_pool_dma_sync_for_device(pool, page, dma_sync_size)
        if pp_recycle_direct(allow_direct, pool.direct_rule == "every_put", in_softirq(kernel)):
            if page_pool_recycle_in_cache(pool, page):
                return None
        return page
    pool.stats["rx_pp_recycle_released_ref"] += 1
    page_pool_return_page(kernel, pool, page)
    return None


def pp_recycle_direct(allow_direct: bool, every_put: bool, softirq: bool) -> bool:
    """__page_pool_put_page()'s test for the alloc cache: the caller allows it and, up to 6.9 (every_put
    False), runs in softirq.  (Plain values: the fast engine compiles this function.)"""
    return allow_direct and (every_put or softirq)


def pp_napi_local(softirq: bool, cpu: int, cpuid: int, list_owner: int) -> bool:
    """page_pool_napi_local()'s test: in softirq on the pool's CPU (cpuid) or on the CPU whose poll list
    holds the pool's NAPI instance (list_owner, -1 for none).  (Plain integers: the fast engine compiles
    this function.)"""
    return softirq and (cpuid == cpu or list_owner == cpu)


def page_pool_napi_local(kernel: Kernel, pool: page_pool, napi_safe: bool = False) -> bool:
    """net/core/page_pool.c: page_pool_napi_local() (6.10+; up to 6.9 the same test in napi_pp_put_page()).

    Direct recycling is safe in softirq (or, 6.9, when the caller says it
    runs in NAPI: napi_safe) on the CPU the pool is tied to (pool->cpuid,
    per-CPU pools) or on the CPU whose poll list holds the pool's NAPI
    instance right now (napi->list_owner).
    """
    napi = pool.p.napi
    return pp_napi_local(napi_safe or in_softirq(kernel), kernel.cpu, pool.cpuid,
                         -1 if napi is None else napi.list_owner)


def page_pool_put_unrefed_page(kernel: Kernel, pool: page_pool, page: Page, dma_sync_size: int,
                               allow_direct: bool) -> None:
    """net/core/page_pool.c: page_pool_put_unrefed_page() (6.1: page_pool_put_defragged_page()).

    From 6.10 a caller that did not allow direct recycling gets it anyway
    when page_pool_napi_local() says it is safe.  What the cache does not
    take goes to the ring; when the ring is full, to the page allocator
    (``recycle_ring_full``).
    """
    if not allow_direct and pool.direct_rule == "every_put":
        allow_direct = page_pool_napi_local(kernel, pool)
    page = __page_pool_put_page(kernel, pool, page, dma_sync_size, allow_direct)
    if page is not None and not page_pool_recycle_in_ring(pool, page):
        pool.stats["rx_pp_recycle_ring_full"] += 1
        page_pool_return_page(kernel, pool, page)


def page_pool_put_page(kernel: Kernel, pool: page_pool, page: Page, dma_sync_size: int,
                       allow_direct: bool) -> None:
    """helpers.h: page_pool_put_page() - drop one fragment reference; the last one recycles the page."""
    if not page_pool_is_last_ref(pool, page):
        return
    page_pool_put_unrefed_page(kernel, pool, page, dma_sync_size, allow_direct)


def page_pool_put_full_page(kernel: Kernel, pool: page_pool, page: Page, allow_direct: bool) -> None:
    """helpers.h: page_pool_put_full_page() - page_pool_put_page() syncing all of max_len."""
    page_pool_put_page(kernel, pool, page, -1, allow_direct)


def page_pool_recycle_direct(kernel: Kernel, pool: page_pool, page: Page) -> None:
    """helpers.h: page_pool_recycle_direct() - for callers in the pool's NAPI context."""
    page_pool_put_full_page(kernel, pool, page, True)


def page_pool_free_va(kernel: Kernel, pool: page_pool, va: int, allow_direct: bool) -> None:
    """helpers.h: page_pool_free_va() - put the page an address from page_pool_dev_alloc_va() is in."""
    page_pool_put_page(kernel, pool, kernel.pages.virt_to_head_page(va), -1, allow_direct)


# -- the skb side (net/core/skbuff.c) ----------------------------------------------------------


def napi_pp_put_page(kernel: Kernel, page: Page, napi_safe: bool = False) -> bool:
    """net/core/skbuff.c: napi_pp_put_page() (6.1: page_pool_return_skb_page()) - False if not a pool page.

    Who may recycle into the cache (``pp_direct_recycle``): 6.1 never (the
    put goes to the ring); 6.4-6.9 this function asks page_pool_napi_local()
    (napi_safe counts as softirq); 6.10+ passes no permission and the put
    itself asks.
    """
    pool = page.pp
    if pool is None:
        return False
    rule = pool.direct_rule
    allow_direct = rule == "skb_free" and page_pool_napi_local(kernel, pool, napi_safe)
    page_pool_put_full_page(kernel, pool, page, allow_direct)
    return True


def skb_mark_for_recycle(skb) -> None:
    """include/linux/skbuff.h: skb_mark_for_recycle() - the skb's pages go back to their page_pool."""
    skb.pp_recycle = True


# -- teardown ---------------------------------------------------------------------------------


def page_pool_empty_ring(kernel: Kernel, pool: page_pool) -> None:
    """net/core/page_pool.c: page_pool_empty_ring() - every ring page back to the allocator."""
    while pool.ring:
        page = pool.ring.popleft()
        if page.refcount != 1:
            kernel.warnings.append(f"page_pool_empty_ring() page_pool refcnt {page.refcount} violation")
        page_pool_return_page(kernel, pool, page)


def page_pool_empty_alloc_cache_once(kernel: Kernel, pool: page_pool) -> None:
    """net/core/page_pool.c: page_pool_empty_alloc_cache_once() - the cache, on the first release only."""
    if pool.destroy_cnt:
        return
    while pool.alloc:
        page_pool_return_page(kernel, pool, pool.alloc.pop())


def page_pool_scrub(kernel: Kernel, pool: page_pool) -> None:
    """net/core/page_pool.c: page_pool_scrub()."""
    page_pool_empty_alloc_cache_once(kernel, pool)
    pool.destroy_cnt += 1
    page_pool_empty_ring(kernel, pool)


def page_pool_release(kernel: Kernel, pool: page_pool) -> int:
    """net/core/page_pool.c: page_pool_release() - scrub; free the pool once nothing is in flight.

    Returns the pages still in flight (held by skbs or a driver).
    """
    page_pool_scrub(kernel, pool)
    inflight = page_pool_inflight(pool)
    if inflight < 0:
        kernel.warnings.append(f"Negative({inflight}) inflight packet-pages in page_pool {pool.name}")
    if not inflight:
        kernel.page_pools.remove(pool)
    return inflight


def page_pool_disable_direct_recycling(pool: page_pool) -> None:
    """net/core/page_pool.c: page_pool_disable_direct_recycling() (6.9+) - cpuid -1, no NAPI link."""
    pool.cpuid = -1
    pool.p.napi = None


def page_pool_destroy(kernel: Kernel, pool: page_pool | None) -> int:
    """net/core/page_pool.c: page_pool_destroy() - the driver lets go of its pool.

    The frag page and every page in the cache and the ring go back to the
    allocator.  Pages still in flight keep the pool alive: the kernel
    retries the release every second (page_pool_release_retry()), which the
    model does when its caches are drained (Kernel.drain()); until then they
    come back through the ring.  Returns the pages in flight.
    """
    if pool is None:
        return 0
    pool.user_cnt -= 1
    if pool.user_cnt:
        return page_pool_inflight(pool)
    page_pool_disable_direct_recycling(pool)
    page_pool_free_frag(kernel, pool)
    pool.destroyed = True
    return page_pool_release(kernel, pool)


def page_pool_release_retry(kernel: Kernel, pool: page_pool) -> int:
    """net/core/page_pool.c: page_pool_release_retry() - the deferred work, once."""
    return page_pool_release(kernel, pool)


def page_pool_get_stats(pools) -> dict[str, int]:
    """net/core/page_pool.c: page_pool_get_stats() summed over pools, by ethtool name (zeros for none)."""
    total = dict.fromkeys(PP_STATS, 0)
    for pool in pools:
        for name, value in pool.stats.items():
            total[name] += value
    return total
