"""Page fragment caches.

- ``page_frag_cache``: mm/page_alloc.c (6.1-6.9: __page_frag_alloc_align(),
  __page_frag_cache_refill()), moved to mm/page_frag_cache.c in later
  releases.  One compound page (PAGE_FRAG_CACHE_MAX_SIZE, falling back to a
  single page) is cut into fragments.  The cache pre-charges the page's
  refcount with a large bias and counts its own use down in ``pagecnt_bias``,
  so handing out a fragment costs no atomic operation; when the page is used
  up, subtracting the bias tells whether every fragment has come back, in
  which case the page is reused in place.
- ``page_frag_1k``: net/core/skbuff.c (page_frag_alloc_1k(), 6.3-6.12 and
  backports): one order-0 page cut into 1 KiB pieces, the page's refcount
  raised up front for every piece.

Fragments are freed with :func:`page_frag_free` (put_page on the head page).
"""

from __future__ import annotations

from skbsim.mm.gfp import __GFP_COMP, __GFP_DIRECT_RECLAIM, __GFP_NOMEMALLOC, __GFP_NORETRY, __GFP_NOWARN
from skbsim.mm.page_alloc import Page, PageAllocator

SZ_1K = 1024


class page_frag_cache:
    """struct page_frag_cache: the page being cut, the offset and the bias.

    How it cuts is fixed when it is made, from the profile: the order of its
    large pages, whether offsets count down (up to 6.12) or up (6.13+), and
    whether a request above PAGE_SIZE that does not fit fails at once (6.13+).
    """

    __slots__ = (
        "max_order",
        "offset_up",
        "big_request_fails",
        "page",
        "offset",
        "size",
        "pagecnt_bias",
        "pfmemalloc",
        "refills",
        "reuses",
        "allocs",
    )

    def __init__(self, max_order: int = 3, offset_up: bool = False, big_request_fails: bool = False) -> None:
        self.max_order = max_order
        self.offset_up = offset_up
        self.big_request_fails = big_request_fails
        self.page: Page | None = None
        self.offset = 0
        self.size = 0
        self.pagecnt_bias = 0
        self.pfmemalloc = False
        # Statistics, observed here rather than derived later.
        self.refills = 0
        self.reuses = 0
        self.allocs = 0


class page_frag_1k:
    """net/core/skbuff.c: struct page_frag_1k - an order-0 page cut in 1K pieces."""

    __slots__ = ("page", "offset", "pfmemalloc", "refills", "allocs")

    def __init__(self) -> None:
        self.page: Page | None = None
        self.offset = 0
        self.pfmemalloc = False
        self.refills = 0
        self.allocs = 0


def __page_frag_cache_refill(pages: PageAllocator, nc: page_frag_cache, gfp_mask: int) -> Page | None:
    """mm/page_alloc.c: __page_frag_cache_refill().

    First try a PAGE_FRAG_CACHE_MAX_SIZE compound page without direct reclaim,
    without retries and never from the reserves; if that fails, one page with
    the caller's own mask (which may reach the reserves).
    """
    page = None
    if nc.max_order > 0:
        large_mask = (gfp_mask & ~__GFP_DIRECT_RECLAIM) | __GFP_COMP | __GFP_NOWARN | __GFP_NORETRY | __GFP_NOMEMALLOC
        page = pages.alloc_pages(large_mask, nc.max_order, "page_frag_cache", fault_layer="page_frag")
    if page is None:
        page = pages.alloc_pages(gfp_mask, 0, "page_frag_cache", fault_layer="page_frag")
    nc.page = page
    if page is not None:
        nc.size = pages.page_size << page.order
    return page


def page_frag_alloc_align(pages: PageAllocator, nc: page_frag_cache, fragsz: int, gfp_mask: int,
                          align_mask: int = ~0) -> int | None:
    """mm/page_alloc.c (mm/page_frag_cache.c from 6.13): __page_frag_alloc_align().

    The address of fragsz bytes, or None.  A page whose fragments have all
    come back is reused in place; otherwise the cache lets it go (its last
    fragment frees it) and takes a new one.
    """
    if nc.offset_up:
        return _alloc_counting_up(pages, nc, fragsz, gfp_mask, align_mask)
    return _alloc_counting_down(pages, nc, fragsz, gfp_mask, align_mask)


def _alloc_counting_down(pages, nc, fragsz, gfp_mask, align_mask):
    """Up to 6.12: fragments are cut from the end of the page downwards."""
    if nc.page is None and not _refill(pages, nc, gfp_mask):
        return None
    offset = nc.offset - fragsz
    if offset < 0:
        if not _recycle_or_refill(pages, nc, gfp_mask):
            return None
        offset = nc.size - fragsz
        if offset < 0:
            # A fragment larger than the page: the kernel refuses it.
            return None
    nc.pagecnt_bias -= 1
    offset &= align_mask
    nc.offset = offset
    nc.allocs += 1
    return pages.page_address(nc.page) + offset


def _alloc_counting_up(pages, nc, fragsz, gfp_mask, align_mask):
    """6.13+: fragments are cut from the start of the page upwards (offset rounded up to the alignment)."""
    if nc.page is None and not _refill(pages, nc, gfp_mask):
        return None
    offset = (nc.offset + ~align_mask) & align_mask
    if offset + fragsz > nc.size:
        if nc.big_request_fails and fragsz > pages.page_size:
            return None
        if not _recycle_or_refill(pages, nc, gfp_mask):
            return None
        offset = 0
        if fragsz > nc.size:
            return None
    nc.pagecnt_bias -= 1
    nc.offset = offset + fragsz
    nc.allocs += 1
    return pages.page_address(nc.page) + offset


def _recycle_or_refill(pages: PageAllocator, nc: page_frag_cache, gfp_mask: int) -> bool:
    """The current page is used up: reuse it if every fragment came back, else take a new one."""
    page = nc.page
    if not pages.page_ref_sub_and_test(page, nc.pagecnt_bias):
        # Fragments of the old page are still out: the last one frees it.
        return _refill(pages, nc, gfp_mask)
    if nc.pfmemalloc:
        # Never keep a reserve page: give it back and take a fresh one.
        pages.free_the_page(page)
        return _refill(pages, nc, gfp_mask)
    bias = _frag_bias(pages, nc)
    pages.set_page_count(page, bias + 1)
    nc.pagecnt_bias = bias + 1
    nc.offset = 0 if nc.offset_up else nc.size
    nc.reuses += 1
    return True


def _frag_bias(pages: PageAllocator, nc: page_frag_cache) -> int:
    """PAGE_FRAG_CACHE_MAX_SIZE: the bias the cache pre-charges every page with."""
    return pages.page_size << nc.max_order


def _refill(pages: PageAllocator, nc: page_frag_cache, gfp_mask: int) -> bool:
    page = __page_frag_cache_refill(pages, nc, gfp_mask)
    if page is None:
        return False
    bias = _frag_bias(pages, nc)
    # Add to the count rather than set it: others may hold speculative refs.
    pages.page_ref_add(page, bias)
    nc.pfmemalloc = page.pfmemalloc
    nc.pagecnt_bias = bias + 1
    nc.offset = 0 if nc.offset_up else nc.size
    nc.refills += 1
    return True


def page_frag_cache_drain(pages: PageAllocator, nc: page_frag_cache) -> None:
    """mm/page_frag_cache.c: page_frag_cache_drain() - return the cache's own references."""
    if nc.page is not None:
        if pages.page_ref_sub_and_test(nc.page, nc.pagecnt_bias):
            pages.free_the_page(nc.page)
        nc.page = None
        nc.pagecnt_bias = 0
        nc.offset = 0


def page_frag_free(pages: PageAllocator, addr: int) -> None:
    """mm/page_alloc.c: page_frag_free() - put_page() on the fragment's head page."""
    pages.put_page(pages.virt_to_head_page(addr))


def page_frag_alloc_1k(pages: PageAllocator, nc: page_frag_1k, gfp_mask: int) -> int | None:
    """net/core/skbuff.c: page_frag_alloc_1k().

    Pieces are handed out from the top of the page down.  A new page gets one
    reference per piece at once (its own plus PAGE_SIZE/1K - 1 more), so the
    cache holds no reference of its own and the page is freed when the last
    piece is.
    """
    offset = nc.offset - SZ_1K
    if offset < 0:
        page = pages.alloc_pages(gfp_mask, 0, "page_frag_1k", fault_layer="page_frag")
        if page is None:
            return None
        nc.page = page
        nc.pfmemalloc = page.pfmemalloc
        offset = pages.page_size - SZ_1K
        pages.page_ref_add(page, offset // SZ_1K)
        nc.refills += 1
    nc.offset = offset
    nc.allocs += 1
    return pages.page_address(nc.page) + offset


def page_frag_1k_drain(pages: PageAllocator, nc: page_frag_1k) -> None:
    """Give back the references held for pieces not yet handed out (teardown only)."""
    if nc.page is not None and nc.offset > 0:
        unused = nc.offset // SZ_1K
        if pages.page_ref_sub_and_test(nc.page, unused):
            pages.free_the_page(nc.page)
    nc.page = None
    nc.offset = 0
