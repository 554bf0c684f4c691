"""The page allocator, after mm/page_alloc.c.

Pages have an order, a reference count and a pfmemalloc flag.  Addresses are
real numbers: a page's kernel virtual address is ``pfn * PAGE_SIZE`` (offset by
PAGE_OFFSET), so helpers such as ``virt_to_head_page()`` work as in the kernel.

Memory is split as the watermarks split it: ``limit_pages`` may be handed to
anyone; the ``reserve_pages`` beyond it only to allocations entitled to the
emergency reserves (``gfp_pfmemalloc_allowed()``), and such pages come back
with ``pfmemalloc`` set (mm/page_alloc.c: set_page_pfmemalloc() when
ALLOC_NO_WATERMARKS was needed).
"""

from __future__ import annotations

from collections import Counter

from skbsim.errors import KernelBug
from skbsim.mm.fault import FaultInjector
from skbsim.mm.gfp import __GFP_NOWARN, gfp_pfmemalloc_allowed

# Class bodies mangle names with two leading underscores: alias the flag here.
_GFP_NOWARN = __GFP_NOWARN

#: x86_64 PAGE_OFFSET with 4-level paging; only used so addresses look real.
PAGE_OFFSET = 0xFFFF888000000000
#: First pfn handed out; low memory is left alone as a real machine's is.
FIRST_PFN = 0x100000


class Page:
    """struct page (the head page of a compound page stands for the folio).

    ``pp`` and ``pp_ref_count`` are the page_pool words of the page's union
    (page->pp, page->pp_ref_count, called pp_frag_count up to 6.7); ``pp`` is
    None unless a page_pool owns the page (is_pp_page()).  ``nid`` is the NUMA
    node (the model's machine has one node, 0, unless a test says otherwise).
    """

    __slots__ = ("pfn", "order", "refcount", "pfmemalloc", "slab", "site", "pp", "pp_ref_count", "nid")

    def __init__(self, pfn: int, order: int, pfmemalloc: bool, site: str):
        self.pfn = pfn
        self.order = order
        self.refcount = 1
        self.pfmemalloc = pfmemalloc
        self.slab = None
        self.site = site
        self.pp = None
        self.pp_ref_count = 0
        self.nid = 0

    def __repr__(self) -> str:
        flag = " pfmemalloc" if self.pfmemalloc else ""
        return f"<page pfn={self.pfn:#x} order={self.order} ref={self.refcount}{flag} from {self.site}>"


class PageAllocator:
    """Zone free memory and the pages handed out of it."""

    __slots__ = (
        "page_size",
        "page_shift",
        "max_order",
        "limit_pages",
        "reserve_pages",
        "faults",
        "warnings",
        "_next_pfn",
        "_by_pfn",
        "live",
        "in_use",
        "peak_in_use",
        "allocated",
        "freed",
        "failed",
        "pfmemalloc_pages",
    )

    def __init__(
        self,
        page_size: int,
        max_order: int,
        faults: FaultInjector,
        warnings: list,
        limit_pages: int | None = None,
        reserve_pages: int = 0,
    ):
        self.page_size = page_size
        self.page_shift = page_size.bit_length() - 1
        self.max_order = max_order
        self.limit_pages = limit_pages
        self.reserve_pages = reserve_pages
        self.faults = faults
        self.warnings = warnings
        self._next_pfn = FIRST_PFN
        self._by_pfn: dict[int, Page] = {}
        self.live: dict[int, Page] = {}
        self.in_use = 0
        self.peak_in_use = 0
        self.allocated: Counter[int] = Counter()
        self.freed: Counter[int] = Counter()
        self.failed: Counter[int] = Counter()
        self.pfmemalloc_pages = 0

    # -- allocation ----------------------------------------------------------------

    def alloc_pages(self, gfp_mask: int, order: int, site: str, fault_layer: str | None = None) -> Page | None:
        """mm/page_alloc.c: __alloc_pages() - a 2**order block, refcount 1, or None."""
        if order > self.max_order:
            if not gfp_mask & _GFP_NOWARN:
                self.warnings.append(f"page allocation of order {order} > MAX_PAGE_ORDER {self.max_order} ({site})")
            self.failed[order] += 1
            return None
        faults = self.faults
        # faults.rules is empty unless a test or --fault asked for failures.
        if faults.rules and (faults.should_fail("page_alloc") or (fault_layer and faults.should_fail(fault_layer))):
            self.failed[order] += 1
            return None
        pages = 1 << order
        pfmemalloc = False
        if self.limit_pages is not None and self.in_use + pages > self.limit_pages:
            # Below the min watermark: only the reserves are left.
            if not gfp_pfmemalloc_allowed(gfp_mask) or self.in_use + pages > self.limit_pages + self.reserve_pages:
                self.failed[order] += 1
                return None
            pfmemalloc = True
            self.pfmemalloc_pages += pages
        return self._take(order, pfmemalloc, site)

    def alloc_pages_bulk(self, gfp_mask: int, nr_pages: int, site: str) -> list[Page]:
        """mm/page_alloc.c: alloc_pages_bulk_node() (alloc_pages_bulk_array_node() before 6.14).

        Up to nr_pages order-0 pages, fewer when memory runs short.  The bulk
        path checks for an injected failure once for the whole batch
        (prepare_alloc_pages()); on one, or when not even the first page can
        be taken above the watermark, it falls back to one ordinary
        allocation (which may dip into the reserves and is checked again).
        """
        faults = self.faults
        if faults.rules and faults.should_fail("page_alloc"):
            page = self.alloc_pages(gfp_mask, 0, site)
            return [] if page is None else [page]
        pages = []
        limit = self.limit_pages
        while len(pages) < nr_pages:
            if limit is not None and self.in_use + 1 > limit:
                break
            pages.append(self._take(0, False, site))
        if not pages:
            page = self.alloc_pages(gfp_mask, 0, site)
            return [] if page is None else [page]
        return pages

    def _take(self, order: int, pfmemalloc: bool, site: str) -> Page:
        """Hand out the next 2**order frames as a page (the accounting every allocation shares)."""
        pages = 1 << order
        pfn = self._next_pfn
        self._next_pfn += pages
        page = Page(pfn, order, pfmemalloc, site)
        for tail in range(pfn, pfn + pages):
            self._by_pfn[tail] = page
        self.live[pfn] = page
        self.in_use += pages
        if self.in_use > self.peak_in_use:
            self.peak_in_use = self.in_use
        self.allocated[order] += 1
        return page

    def __free_pages(self, page: Page) -> None:
        """mm/page_alloc.c: free the block once its last reference is gone."""
        if page.pfn not in self.live:
            raise KernelBug(f"double free of {page!r}")
        del self.live[page.pfn]
        pages = 1 << page.order
        for tail in range(page.pfn, page.pfn + pages):
            del self._by_pfn[tail]
        self.in_use -= pages
        self.freed[page.order] += 1

    # -- reference counts (include/linux/page_ref.h, mm.h) ---------------------------

    def get_page(self, page: Page) -> None:
        if page.refcount <= 0:
            raise KernelBug(f"get_page on a free page {page!r}")
        page.refcount += 1

    def put_page(self, page: Page) -> None:
        """include/linux/mm.h: put_page() - drop one reference; free at zero."""
        if page.refcount <= 0:
            raise KernelBug(f"put_page on a free page {page!r}")
        page.refcount -= 1
        if page.refcount == 0:
            self.__free_pages(page)

    def page_ref_add(self, page: Page, nr: int) -> None:
        page.refcount += nr

    def page_ref_sub_and_test(self, page: Page, nr: int) -> bool:
        """include/linux/page_ref.h: drop nr references; True at zero (the caller then frees or reuses)."""
        page.refcount -= nr
        if page.refcount < 0:
            raise KernelBug(f"page refcount below zero: {page!r}")
        return page.refcount == 0

    def free_the_page(self, page: Page) -> None:
        """Give back a page whose count the caller already took to zero."""
        self.__free_pages(page)

    def set_page_count(self, page: Page, count: int) -> None:
        page.refcount = count

    # -- address helpers (include/linux/mm.h) -------------------------------------------

    def page_address(self, page: Page) -> int:
        return PAGE_OFFSET + (page.pfn << self.page_shift)

    def virt_to_head_page(self, addr: int) -> Page:
        pfn = (addr - PAGE_OFFSET) >> self.page_shift
        page = self._by_pfn.get(pfn)
        if page is None:
            raise KernelBug(f"address {addr:#x} is not in an allocated page")
        return page

    # -- leak check ------------------------------------------------------------------------

    def outstanding(self) -> list[Page]:
        return list(self.live.values())
