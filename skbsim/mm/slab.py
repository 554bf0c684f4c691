"""Slab allocation, after mm/slab_common.c and mm/slub.c.

Each kmem cache carves slabs (pages of the cache's order) into objects of a
fixed stride.  An object's address is a real address inside its slab page, so
``kfree(addr)`` finds its cache the kernel's way: through the page.

What is modelled: the kmalloc size classes and their names (kmalloc-96 ...
kmalloc-8k, dma-kmalloc-*, kmalloc-rcl-*, kmalloc-cg-*), kmalloc_size_roundup(),
page-backed kmalloc above KMALLOC_MAX_CACHE_SIZE, named caches, bulk
allocation, SLUB's slab order choice (calculate_order()) and its rule that
objects of a pfmemalloc slab go only to callers entitled to the reserves.
Not modelled: per-CPU slabs and partial-list limits (an empty slab is given
back at once, so a drained model holds no slab pages), debug red zones.
"""

from __future__ import annotations

from skbsim.errors import KernelBug
from skbsim.mm.gfp import __GFP_ACCOUNT, __GFP_COMP, __GFP_DMA, __GFP_RECLAIMABLE, gfp_pfmemalloc_allowed
from skbsim.mm.page_alloc import Page, PageAllocator

# Class bodies mangle names with two leading underscores: alias the flag here.
_GFP_COMP = __GFP_COMP

#: mm/slub.c: slub_max_order defaults to PAGE_ALLOC_COSTLY_ORDER.
PAGE_ALLOC_COSTLY_ORDER = 3


class Slab:
    """struct slab: one slab page and its free objects (LIFO, as SLUB's freelist)."""

    __slots__ = ("cache", "page", "free", "inuse")

    def __init__(self, cache: KmemCache, page: Page, base: int):
        self.cache = cache
        self.page = page
        # Hand out the lowest address first, as a fresh SLUB freelist does.
        self.free = [base + i * cache.size for i in reversed(range(cache.objs_per_slab))]
        self.inuse = 0


class KmemCache:
    """struct kmem_cache: a named cache of same-sized objects."""

    __slots__ = (
        "name",
        "object_size",
        "size",
        "order",
        "objs_per_slab",
        "fault_layer",
        "slabs",
        "live",
        "active",
        "peak_active",
        "allocs",
        "frees",
        "failed",
    )

    def __init__(self, name: str, object_size: int, align: int, page_size: int, nr_cpu_ids: int, fault_layer: str):
        self.name = name
        self.object_size = object_size
        self.size = (object_size + align - 1) & ~(align - 1)
        self.order = calculate_order(self.size, page_size, nr_cpu_ids)
        self.objs_per_slab = (page_size << self.order) // self.size
        self.fault_layer = fault_layer
        self.slabs: list[Slab] = []  # slabs with at least one free object, most recent last
        self.live: dict[int, str] = {}  # address -> allocation site
        self.active = 0
        self.peak_active = 0
        self.allocs = 0
        self.frees = 0
        self.failed = 0

    def __repr__(self) -> str:
        return f"<kmem_cache {self.name} size={self.size} order={self.order} objs={self.objs_per_slab}>"


def calc_slab_order(size: int, page_size: int, min_order: int, max_order: int, fract_leftover: int) -> int:
    """mm/slub.c: calc_slab_order() - smallest order wasting at most 1/fract."""
    order = min_order
    while order <= max_order:
        slab_size = page_size << order
        if slab_size % size <= slab_size // fract_leftover:
            break
        order += 1
    return order


def calculate_order(size: int, page_size: int, nr_cpu_ids: int) -> int:
    """mm/slub.c: calculate_order() with default boot parameters.

    SLUB wants at least 4 * (fls(nr_cpu_ids) + 1) objects per slab, within
    slub_max_order, wasting at most 1/16, 1/8 or 1/4 of the slab.
    """
    min_objects = 4 * (nr_cpu_ids.bit_length() + 1)
    max_objects = (page_size << PAGE_ALLOC_COSTLY_ORDER) // size
    min_objects = max(1, min(min_objects, max_objects))
    min_order = 0
    while (page_size << min_order) < min_objects * size:
        min_order += 1
    for fraction in (16, 8, 4):
        order = calc_slab_order(size, page_size, min_order, PAGE_ALLOC_COSTLY_ORDER, fraction)
        if order <= PAGE_ALLOC_COSTLY_ORDER:
            return order
    order = 0
    while (page_size << order) < size:
        order += 1
    return order


def kmalloc_size_classes(kmalloc_min_size: int, max_cache_size: int) -> list[int]:
    """include/linux/slab.h: the object sizes of the kmalloc caches, smallest first.

    Powers of two from KMALLOC_MIN_SIZE up, plus 96 and 192 where the minimum
    alignment lets them exist (KMALLOC_MIN_SIZE <= 32 and <= 64).
    """
    sizes = []
    size = kmalloc_min_size
    while size <= max_cache_size:
        sizes.append(size)
        size <<= 1
    if kmalloc_min_size <= 32:
        sizes.append(96)
    if kmalloc_min_size <= 64:
        sizes.append(192)
    return sorted(sizes)


def kmalloc_cache_name(size: int, prefix: str = "kmalloc-") -> str:
    """mm/slab_common.c: kmalloc_info[] names - kmalloc-96, kmalloc-1k, kmalloc-8k."""
    if size >= 1024 and size % 1024 == 0:
        return f"{prefix}{size // 1024}k"
    return f"{prefix}{size}"


def kmalloc_type_prefix(flags: int, zone_dma: bool = True, memcg: bool = True) -> str:
    """include/linux/slab.h: kmalloc_type() - which family of kmalloc caches serves flags."""
    if zone_dma and flags & __GFP_DMA:
        return "dma-kmalloc-"
    if flags & __GFP_RECLAIMABLE:
        return "kmalloc-rcl-"
    if memcg and flags & __GFP_ACCOUNT:
        return "kmalloc-cg-"
    return "kmalloc-"


class SlabAllocator:
    """All kmem caches of one kernel, and kmalloc over them."""

    __slots__ = (
        "pages",
        "page_size",
        "nr_cpu_ids",
        "l1_cache_bytes",
        "kmalloc_sizes",
        "kmalloc_max_cache_size",
        "caches",
        "large_live",
    )

    def __init__(self, pages: PageAllocator, profile, nr_cpu_ids: int):
        self.pages = pages
        self.page_size = profile.PAGE_SIZE
        self.nr_cpu_ids = nr_cpu_ids
        self.l1_cache_bytes = profile.L1_CACHE_BYTES
        self.kmalloc_max_cache_size = profile.KMALLOC_MAX_CACHE_SIZE
        self.kmalloc_sizes = kmalloc_size_classes(profile.KMALLOC_MIN_SIZE, profile.KMALLOC_MAX_CACHE_SIZE)
        self.caches: dict[str, KmemCache] = {}
        self.large_live: dict[int, str] = {}  # page-backed kmalloc: address -> site

    # -- caches --------------------------------------------------------------------------

    def kmem_cache_create(self, name: str, object_size: int, hwcache_align: bool, fault_layer: str) -> KmemCache:
        """mm/slab_common.c: kmem_cache_create() (SLAB_HWCACHE_ALIGN aligns to L1)."""
        align = self.l1_cache_bytes if hwcache_align else _natural_align(object_size)
        cache = KmemCache(name, object_size, align, self.page_size, self.nr_cpu_ids, fault_layer)
        self.caches[name] = cache
        return cache

    def kmalloc_slab(self, size: int, flags: int) -> KmemCache:
        """mm/slab_common.c: kmalloc_slab() - the cache that serves a kmalloc of size."""
        for object_size in self.kmalloc_sizes:
            if size <= object_size:
                break
        name = kmalloc_cache_name(object_size, kmalloc_type_prefix(flags))
        cache = self.caches.get(name)
        if cache is None:
            # Power-of-two kmalloc caches are naturally aligned (mm/slab_common.c).
            cache = KmemCache(name, object_size, _natural_align(object_size), self.page_size, self.nr_cpu_ids, "skb_data")
            self.caches[name] = cache
        return cache

    def kmalloc_size_roundup(self, size: int, max_size: int, oversize_to_pages: bool = False) -> int:
        """mm/slab_common.c: kmalloc_size_roundup() - what kmalloc(size) really gives.

        Above KMALLOC_MAX_SIZE, 6.6 and later return the size unchanged; earlier
        releases round it to whole pages as below (``oversize_to_pages``).
        Either way kmalloc of it fails.
        """
        if 0 < size <= self.kmalloc_max_cache_size:
            for object_size in self.kmalloc_sizes:
                if size <= object_size:
                    return object_size
        if 0 < size and (size <= max_size or oversize_to_pages):
            order = 0
            while (self.page_size << order) < size:
                order += 1
            return self.page_size << order
        return size

    # -- allocation ------------------------------------------------------------------------

    def kmem_cache_alloc(self, cache: KmemCache, gfp_mask: int, site: str) -> int | None:
        """mm/slub.c: slab_alloc_node() - an object address, or None."""
        faults = self.pages.faults
        # faults.rules is empty unless a test or --fault asked for failures.
        if faults.rules and (faults.should_fail("slab") or faults.should_fail(cache.fault_layer)):
            cache.failed += 1
            return None
        slabs = cache.slabs
        if slabs and not slabs[-1].page.pfmemalloc:
            # The usual case: the newest partial slab, which any caller may use.
            slab = slabs[-1]
        else:
            allowed = gfp_pfmemalloc_allowed(gfp_mask)
            slab = None
            for candidate in reversed(slabs):
                # mm/slub.c: pfmemalloc_match() - reserve objects only for those entitled.
                if allowed or not candidate.page.pfmemalloc:
                    slab = candidate
                    break
        if slab is None:
            page = self.pages.alloc_pages(gfp_mask | _GFP_COMP, cache.order, f"slab {cache.name}")
            if page is None:
                cache.failed += 1
                return None
            slab = Slab(cache, page, self.pages.page_address(page))
            page.slab = slab
            cache.slabs.append(slab)
        addr = slab.free.pop()
        slab.inuse += 1
        if not slab.free:
            cache.slabs.remove(slab)
        cache.live[addr] = site
        cache.active += 1
        cache.allocs += 1
        if cache.active > cache.peak_active:
            cache.peak_active = cache.active
        return addr

    def kmem_cache_alloc_bulk(self, cache: KmemCache, gfp_mask: int, nr: int, site: str) -> list[int]:
        """mm/slub.c: kmem_cache_alloc_bulk() - all nr objects, or none at all."""
        taken: list[int] = []
        for _ in range(nr):
            addr = self.kmem_cache_alloc(cache, gfp_mask, site)
            if addr is None:
                for back in taken:
                    self.kmem_cache_free(cache, back)
                return []
            taken.append(addr)
        return taken

    def kmem_cache_free(self, cache: KmemCache, addr: int) -> None:
        """mm/slub.c: kmem_cache_free() - checks the object belongs to cache."""
        page = self.pages.virt_to_head_page(addr)
        slab = page.slab
        if slab is None or slab.cache is not cache:
            owner = slab.cache.name if slab else "no cache"
            raise KernelBug(f"kmem_cache_free({cache.name}) of an object from {owner} at {addr:#x}")
        if cache.live.pop(addr, None) is None:
            raise KernelBug(f"double free of {cache.name} object at {addr:#x}")
        if not slab.free:
            cache.slabs.append(slab)
        slab.free.append(addr)
        slab.inuse -= 1
        cache.active -= 1
        cache.frees += 1
        if slab.inuse == 0:
            cache.slabs.remove(slab)
            page.slab = None
            self.pages.put_page(page)

    def kmem_cache_free_bulk(self, cache: KmemCache, addrs: list[int]) -> None:
        for addr in addrs:
            self.kmem_cache_free(cache, addr)

    def kmalloc(self, size: int, gfp_mask: int, site: str, max_size: int) -> tuple[int | None, str]:
        """mm/slab_common.c: __do_kmalloc_node() - (address or None, source name).

        Above KMALLOC_MAX_CACHE_SIZE the object is a compound page of its own
        (__kmalloc_large_node()); its source is named ``pages-order-K``.
        """
        if size > self.kmalloc_max_cache_size:
            order = 0
            while (self.page_size << order) < size:
                order += 1
            faults = self.pages.faults
            if faults.should_fail("skb_data"):
                return None, f"pages-order-{order}"
            page = self.pages.alloc_pages(gfp_mask | _GFP_COMP, order, site)
            if page is None:
                return None, f"pages-order-{order}"
            addr = self.pages.page_address(page)
            self.large_live[addr] = site
            return addr, f"pages-order-{order}"
        cache = self.kmalloc_slab(size, gfp_mask)
        return self.kmem_cache_alloc(cache, gfp_mask, site), cache.name

    def kfree(self, addr: int) -> None:
        """mm/slab_common.c: kfree() - finds the cache through the page."""
        page = self.pages.virt_to_head_page(addr)
        if page.slab is not None:
            self.kmem_cache_free(page.slab.cache, addr)
            return
        if self.large_live.pop(addr, None) is None:
            raise KernelBug(f"kfree of {addr:#x}, which kmalloc did not hand out")
        self.pages.put_page(page)

    def ksize(self, addr: int) -> int:
        page = self.pages.virt_to_head_page(addr)
        if page.slab is not None:
            return page.slab.cache.object_size
        return self.page_size << page.order

    # -- leak check ------------------------------------------------------------------------------

    def outstanding(self) -> list[tuple[str, int, str]]:
        """(cache name, address, allocation site) of every object not freed."""
        left = [(cache.name, addr, site) for cache in self.caches.values() for addr, site in cache.live.items()]
        left += [("kmalloc-large", addr, site) for addr, site in self.large_live.items()]
        return left

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            name: {"allocs": c.allocs, "frees": c.frees, "active": c.active, "peak": c.peak_active, "failed": c.failed}
            for name, c in sorted(self.caches.items())
            if c.allocs or c.failed
        }


def _natural_align(size: int) -> int:
    """Largest power of two dividing size, capped at a page (kmalloc caches' alignment)."""
    return size & -size if size else 8

