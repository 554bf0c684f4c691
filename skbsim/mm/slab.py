"""Slab allocation, after mm/slab_common.c and mm/slub.c.

Each kmem cache carves slabs (pages of the cache's order) into objects of a
fixed stride.  An object's address is a real address inside its slab page, so
``kfree(addr)`` finds its cache the kernel's way: through the page.

What is modelled: the kmalloc size classes and their names (kmalloc-96 ...
kmalloc-8k, dma-kmalloc-*, kmalloc-rcl-*, kmalloc-cg-*), kmalloc_size_roundup(),
page-backed kmalloc above KMALLOC_MAX_CACHE_SIZE, named caches, SLUB's slab
order choice (calculate_order()) with its fallback to the smallest order
(allocate_slab()), and where SLUB keeps a slab between allocations:

- each CPU's slab (``kmem_cache_cpu.slab``) and its lockless freelist, which
  only that CPU allocates from and frees to (a free from another CPU goes to
  the slab's own freelist);
- each CPU's partial list (CONFIG_SLUB_CPU_PARTIAL): slabs that got a free
  object back while full, up to ``cpu_partial_slabs`` (set_cpu_partial() by
  object size); a full list moves to the node list (__put_partials());
- the node's partial list, where an empty slab stays while fewer than
  ``min_partial`` slabs are there (set_min_partial()), and is otherwise given
  back to the page allocator (discard_slab());
- allocation order: the CPU's freelist, the slab's remote frees, the CPU
  partial list, the node partial list (taking up to cpu_partial_slabs / 2
  more slabs onto the CPU list), a new slab;
- bulk allocation and free (one failslab check per bulk call; objects freed
  per slab as build_detached_freelist() groups them), kmem_cache_shrink(),
  the rule that objects of a pfmemalloc slab go only to callers entitled to
  the reserves (checked on the slow path only, as in the kernel).

The machine has one NUMA node.  Not modelled: debug caches (red zones,
SLAB_STORE_USER's full list), freelist randomisation (it changes which
address an object gets, not how many slabs are kept), KFENCE, memcg
accounting, and per-CPU sheaves (feature ``slub_percpu_sheaves``): 6.18's
only serve caches created with a ``sheaf_capacity``, which none of the
modelled caches is; 7.0 gives every cache sheaves and removes the per-CPU
slab and partial lists, and the model runs such a release with a per-CPU
slab and no CPU partial list (``slub_cpu_partial`` false), an approximation.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from skbsim.errors import KernelBug
from skbsim.mm.gfp import (
    __GFP_ACCOUNT,
    __GFP_COMP,
    __GFP_DMA,
    __GFP_NORETRY,
    __GFP_NOWARN,
    __GFP_RECLAIMABLE,
    gfp_pfmemalloc_allowed,
)
from skbsim.mm.page_alloc import Page, PageAllocator
from skbsim.profile import get_order

if TYPE_CHECKING:
    from skbsim.kernel import Kernel

# Class bodies mangle names with two leading underscores: alias the flags here.
_GFP_COMP = __GFP_COMP
_GFP_FIRST_TRY = __GFP_NOWARN | __GFP_NORETRY

#: mm/slub.c: slub_max_order defaults to PAGE_ALLOC_COSTLY_ORDER.
PAGE_ALLOC_COSTLY_ORDER = 3
#: mm/slub.c: the bounds of a cache's min_partial.
MIN_PARTIAL = 5
MAX_PARTIAL = 10
#: mm/slub.c: kmem_cache_shrink() sorts partial slabs with up to this many free objects.
SHRINK_PROMOTE_MAX = 32
#: mm/slub.c: build_detached_freelist() gives up after this many objects of other slabs.
DETACHED_FREELIST_LOOKAHEAD = 3


# -- the integer rules (one plain function each) ------------------------------------------


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
    """mm/slub.c: calculate_order() with default boot parameters (6.7+).

    SLUB wants at least 4 * (fls(nr_cpu_ids) + 1) objects per slab, within
    slub_max_order, wasting at most 1/16, 1/8, 1/4 or 1/2 of the slab.
    (Up to 6.6 it lowered min_objects step by step instead of accepting half
    a slab of waste: 'mm/slub: remove min_objects loop from calculate_order()'.
    Every cache size the model uses gets the same order either way.)
    """
    min_objects = 4 * (nr_cpu_ids.bit_length() + 1)
    max_objects = (page_size << PAGE_ALLOC_COSTLY_ORDER) // size
    min_objects = max(1, min(min_objects, max_objects))
    min_order = get_order(min_objects * size, page_size)
    for fraction in (16, 8, 4, 2):
        order = calc_slab_order(size, page_size, min_order, PAGE_ALLOC_COSTLY_ORDER, fraction)
        if order <= PAGE_ALLOC_COSTLY_ORDER:
            return order
    return get_order(size, page_size)


def order_objects(order: int, size: int, page_size: int) -> int:
    """mm/slub.c: order_objects() - objects of size bytes in a slab of that order."""
    return (page_size << order) // size


def set_min_partial(size: int) -> int:
    """mm/slub.c: kmem_cache_open() -> set_min_partial(s, ilog2(s->size) / 2).

    The empty slabs a node keeps on its partial list: ilog2(size) / 2,
    clamped to MIN_PARTIAL..MAX_PARTIAL (5 up to 2 KiB objects, 6 at 4 KiB).
    """
    return max(MIN_PARTIAL, min(MAX_PARTIAL, (size.bit_length() - 1) // 2))


def set_cpu_partial(size: int, page_size: int, has_cpu_partial: bool) -> int:
    """mm/slub.c: set_cpu_partial() - s->cpu_partial, in objects, by object size.

    0 without CONFIG_SLUB_CPU_PARTIAL; else 6 from a page up, 24 from 1 KiB,
    52 from 256 bytes and 120 below.
    """
    if not has_cpu_partial:
        return 0
    if size >= page_size:
        return 6
    if size >= 1024:
        return 24
    if size >= 256:
        return 52
    return 120


def slub_set_cpu_partial(nr_objects: int, objs_per_slab: int) -> int:
    """mm/slub.c: slub_set_cpu_partial() - s->cpu_partial_slabs, the slabs a CPU partial list holds.

    DIV_ROUND_UP(nr_objects * 2, objects per slab): the objects, assuming half-full slabs.
    """
    return (nr_objects * 2 + objs_per_slab - 1) // objs_per_slab


def slab_discard_empty(inuse: int, nr_partial: int, min_partial: int) -> bool:
    """mm/slub.c: the test deactivate_slab(), __put_partials() and __slab_free() make before they give an
    empty slab's pages back: no object in use, and the node already keeps min_partial slabs."""
    return inuse == 0 and nr_partial >= min_partial


def cpu_partial_full(slabs: int, cpu_partial_slabs: int) -> bool:
    """mm/slub.c: put_cpu_partial() with drain - a CPU partial list of ``slabs`` slabs (the head's
    slab->slabs) has no room, and goes to the node list before the new slab starts a list of its own."""
    return slabs > 0 and slabs >= cpu_partial_slabs


def get_partial_node_done(taken: int, cpu_partial_slabs: int) -> bool:
    """mm/slub.c: get_partial_node() stops taking slabs from the node list once it holds ``taken``:
    after the first without a CPU partial list (cpu_partial_slabs 0), else once more than
    cpu_partial_slabs / 2 went onto the CPU list."""
    if taken == 1:
        return cpu_partial_slabs == 0
    return taken - 1 > cpu_partial_slabs // 2


# -- the structures -----------------------------------------------------------------------


class Slab:
    """struct slab: one slab page.

    ``freelist`` holds the objects freed to the slab itself, the last one at
    the end (its head).  ``inuse`` counts the objects not on it, including
    those a CPU holds on its lockless freelist while the slab is that CPU's.
    ``frozen``: the slab is a CPU's slab (6.1: or on a CPU partial list).
    ``node_partial``: on the node's partial list (SL_partial).
    """

    __slots__ = ("cache", "page", "objects", "freelist", "inuse", "frozen", "node_partial")

    def __init__(self, cache: KmemCache, page: Page, base: int, objects: int):
        self.cache = cache
        self.page = page
        self.objects = objects
        # A fresh slab hands out its lowest address first.
        self.freelist = [base + i * cache.size for i in range(objects - 1, -1, -1)]
        self.inuse = 0
        self.frozen = False
        self.node_partial = False

    def __repr__(self) -> str:
        return (f"<slab {self.cache.name} pfn={self.page.pfn:#x} inuse={self.inuse}/{self.objects} "
                f"free={len(self.freelist)}{' frozen' if self.frozen else ''}>")


class KmemCacheCpu:
    """struct kmem_cache_cpu: one CPU's slab, its lockless freelist and its partial list.

    ``partial`` is the list c->partial points to, its head at the end; the
    kernel keeps the length in the head slab's ``slabs`` field.
    """

    __slots__ = ("slab", "freelist", "partial")

    def __init__(self) -> None:
        self.slab: Slab | None = None
        self.freelist: list[int] = []
        self.partial: list[Slab] = []


class KmemCacheNode:
    """struct kmem_cache_node: the node's partial list, its head first (nr_partial is its length)."""

    __slots__ = ("partial",)

    def __init__(self) -> None:
        self.partial: OrderedDict[Slab, None] = OrderedDict()


class KmemCache:
    """struct kmem_cache: a named cache of same-sized objects."""

    __slots__ = (
        "name",
        "object_size",
        "size",
        "order",
        "objs_per_slab",
        "min_order",
        "min_objects",
        "min_partial",
        "cpu_partial",
        "cpu_partial_slabs",
        "cpu_slab",
        "node",
        "fault_layer",
        "nr_slabs",
        "total_objects",
        "live",
        "active",
        "peak_active",
        "allocs",
        "frees",
        "failed",
        "slabs_allocated",
        "slabs_freed",
    )

    def __init__(self, name: str, object_size: int, align: int, page_size: int, nr_cpu_ids: int,
                 fault_layer: str, has_cpu_partial: bool = True):
        self.name = name
        self.object_size = object_size
        self.size = (object_size + align - 1) & ~(align - 1)
        # calculate_sizes(): s->oo and, for when memory is short, s->min.
        self.order = calculate_order(self.size, page_size, nr_cpu_ids)
        self.objs_per_slab = order_objects(self.order, self.size, page_size)
        self.min_order = get_order(self.size, page_size)
        self.min_objects = order_objects(self.min_order, self.size, page_size)
        self.min_partial = set_min_partial(self.size)
        self.cpu_partial = set_cpu_partial(self.size, page_size, has_cpu_partial)
        self.cpu_partial_slabs = slub_set_cpu_partial(self.cpu_partial, self.objs_per_slab)
        self.cpu_slab = [KmemCacheCpu() for _ in range(nr_cpu_ids)]
        self.node = KmemCacheNode()
        self.fault_layer = fault_layer
        self.nr_slabs = 0  # node_nr_slabs(): every slab of the cache, wherever it is
        self.total_objects = 0  # node_nr_objs()
        self.live: dict[int, str] = {}  # address -> allocation site
        self.active = 0
        self.peak_active = 0
        self.allocs = 0
        self.frees = 0
        self.failed = 0
        self.slabs_allocated = 0
        self.slabs_freed = 0

    def __repr__(self) -> str:
        return f"<kmem_cache {self.name} size={self.size} order={self.order} objs={self.objs_per_slab}>"


def pfmemalloc_match(slab: Slab, gfp_mask: int) -> bool:
    """mm/slub.c: pfmemalloc_match() - a slab of reserve pages serves only callers entitled to them."""
    return not slab.page.pfmemalloc or gfp_pfmemalloc_allowed(gfp_mask)


def get_freelist(slab: Slab) -> list[int]:
    """mm/slub.c: get_freelist() - take the objects freed to a CPU's slab; it stays frozen only if any."""
    freelist = slab.freelist
    slab.freelist = []
    slab.inuse = slab.objects
    slab.frozen = bool(freelist)
    return freelist


def freeze_slab(slab: Slab) -> list[int]:
    """mm/slub.c: freeze_slab() (6.8+; acquire_slab() before) - a partial slab becomes a CPU's slab."""
    freelist = slab.freelist
    slab.freelist = []
    slab.inuse = slab.objects
    slab.frozen = True
    return freelist


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
    """All kmem caches of one kernel, and kmalloc over them.

    The current CPU is the kernel's (``kernel.cpu``): it decides which
    kmem_cache_cpu an allocation or a free uses.
    """

    __slots__ = (
        "kernel",
        "pages",
        "page_size",
        "nr_cpu_ids",
        "l1_cache_bytes",
        "kmalloc_sizes",
        "kmalloc_max_cache_size",
        "has_cpu_partial",
        "cpu_partial_frozen",
        "caches",
        "large_live",
    )

    def __init__(self, kernel: Kernel, pages: PageAllocator, profile, nr_cpu_ids: int):
        self.kernel = kernel
        self.pages = pages
        self.page_size = profile.PAGE_SIZE
        self.nr_cpu_ids = nr_cpu_ids
        self.l1_cache_bytes = profile.L1_CACHE_BYTES
        self.kmalloc_max_cache_size = profile.KMALLOC_MAX_CACHE_SIZE
        self.kmalloc_sizes = kmalloc_size_classes(profile.KMALLOC_MIN_SIZE, profile.KMALLOC_MAX_CACHE_SIZE)
        self.has_cpu_partial = profile.has("slub_cpu_partial")
        self.cpu_partial_frozen = profile.has("slub_cpu_partial_frozen")
        self.caches: dict[str, KmemCache] = {}
        self.large_live: dict[int, str] = {}  # page-backed kmalloc: address -> site

    # -- caches --------------------------------------------------------------------------

    def _new_cache(self, name: str, object_size: int, align: int, fault_layer: str) -> KmemCache:
        cache = KmemCache(name, object_size, align, self.page_size, self.nr_cpu_ids, fault_layer,
                          self.has_cpu_partial)
        self.caches[name] = cache
        return cache

    def kmem_cache_create(self, name: str, object_size: int, hwcache_align: bool, fault_layer: str) -> KmemCache:
        """mm/slab_common.c: kmem_cache_create() (SLAB_HWCACHE_ALIGN aligns to L1)."""
        align = self.l1_cache_bytes if hwcache_align else _natural_align(object_size)
        return self._new_cache(name, object_size, align, fault_layer)

    def kmalloc_slab(self, size: int, flags: int) -> KmemCache:
        """mm/slab_common.c: kmalloc_slab() - the cache that serves a kmalloc of size."""
        for object_size in self.kmalloc_sizes:
            if size <= object_size:
                break
        name = kmalloc_cache_name(object_size, kmalloc_type_prefix(flags))
        cache = self.caches.get(name)
        if cache is None:
            # Power-of-two kmalloc caches are naturally aligned (mm/slab_common.c).
            cache = self._new_cache(name, object_size, _natural_align(object_size), "skb_data")
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
            return self.page_size << get_order(size, self.page_size)
        return size

    # -- allocation ------------------------------------------------------------------------

    def kmem_cache_alloc(self, cache: KmemCache, gfp_mask: int, site: str) -> int | None:
        """mm/slub.c: slab_alloc_node() - an object address, or None.

        The fast path takes the head of this CPU's lockless freelist, whatever
        its slab's pfmemalloc state (the kernel checks that on the slow path
        only); otherwise ___slab_alloc().
        """
        faults = self.pages.faults
        # faults.rules is empty unless a test or --fault asked for failures.
        if faults.rules and (faults.should_fail("slab") or faults.should_fail(cache.fault_layer)):
            cache.failed += 1
            return None
        c = cache.cpu_slab[self.kernel.cpu]
        if c.freelist:
            addr = c.freelist.pop()
        else:
            addr = self.___slab_alloc(cache, gfp_mask, c)
            if addr is None:
                cache.failed += 1
                return None
        cache.live[addr] = site
        cache.active += 1
        cache.allocs += 1
        if cache.active > cache.peak_active:
            cache.peak_active = cache.active
        return addr

    def ___slab_alloc(self, cache: KmemCache, gfp_mask: int, c: KmemCacheCpu) -> int | None:
        """mm/slub.c: ___slab_alloc() - the slow path, with this CPU's freelist empty.

        In order: objects other CPUs freed to this CPU's slab (get_freelist());
        the CPU partial list; the node partial list (get_partial_node()); a
        new slab.  A slab of reserve pages that this caller may not use is
        deactivated (the CPU's slab) or put on the node list (a CPU partial one).
        """
        slab = c.slab
        if slab is not None:
            if not pfmemalloc_match(slab, gfp_mask):
                freelist, c.slab, c.freelist = c.freelist, None, []
                self.deactivate_slab(cache, slab, freelist)
            else:
                freelist = get_freelist(slab)
                if freelist:
                    return self._load_freelist(c, freelist)
                c.slab = None  # full: it is on no list until an object comes back
        partial = c.partial
        while partial:
            slab = partial.pop()
            if pfmemalloc_match(slab, gfp_mask):
                c.slab = slab
                return self._load_freelist(c, get_freelist(slab))
            self.__put_partials(cache, [slab])
        slab = self.get_partial_node(cache, c, gfp_mask)
        if slab is not None:
            c.slab = slab
            return self._load_freelist(c, freeze_slab(slab))
        slab = self.new_slab(cache, gfp_mask)
        if slab is None:
            return None
        # A new slab of reserve pages only comes to a caller entitled to them,
        # so it always matches here.
        c.slab = slab
        return self._load_freelist(c, freeze_slab(slab))

    @staticmethod
    def _load_freelist(c: KmemCacheCpu, freelist: list[int]) -> int:
        """___slab_alloc()'s load_freelist: the head object is returned, the rest is the CPU's freelist."""
        addr = freelist.pop()
        c.freelist = freelist
        return addr

    def new_slab(self, cache: KmemCache, gfp_mask: int) -> Slab | None:
        """mm/slub.c: allocate_slab() - pages for a new slab, or None.

        The cache's order is tried first without warnings or retries; when
        that fails, s->min: the smallest order an object fits (the same order
        again for order-0 caches).
        """
        pages = self.pages
        order, objects = cache.order, cache.objs_per_slab
        page = pages.alloc_pages(gfp_mask | _GFP_COMP | _GFP_FIRST_TRY, order, f"slab {cache.name}")
        if page is None:
            order, objects = cache.min_order, cache.min_objects
            page = pages.alloc_pages(gfp_mask | _GFP_COMP, order, f"slab {cache.name}")
            if page is None:
                return None
        slab = Slab(cache, page, pages.page_address(page), objects)
        page.slab = slab
        cache.nr_slabs += 1
        cache.total_objects += objects
        cache.slabs_allocated += 1
        kernel = self.kernel
        if kernel.explain is not None:
            kernel.note(
                f"{cache.name}: no free object on CPU {kernel.cpu}'s slab, its partial list or the node's "
                f"({len(cache.node.partial)} slabs): new order-{order} slab of {objects} objects"
            )
        return slab

    def get_partial_node(self, cache: KmemCache, c: KmemCacheCpu, gfp_mask: int) -> Slab | None:
        """mm/slub.c: get_partial_node() - the first usable slab of the node list, or None.

        With a CPU partial list, up to cpu_partial_slabs / 2 + 1 further slabs
        move from the node list to this CPU's list (put_cpu_partial() without
        a drain).  Slabs of reserve pages the caller may not use are skipped.
        (get_any_partial() looks at other nodes: there are none.)
        """
        node_partial = cache.node.partial
        if not node_partial:
            return None
        limit = cache.cpu_partial_slabs
        taken: list[Slab] = []
        for slab in node_partial:
            if not pfmemalloc_match(slab, gfp_mask):
                continue
            taken.append(slab)
            if get_partial_node_done(len(taken), limit):
                break
        if not taken:
            return None
        for slab in taken:
            remove_partial(cache.node, slab)
        for slab in taken[1:]:
            # 6.1 froze the slabs it moved (acquire_slab()); 6.8+ leaves them unfrozen.
            slab.frozen = self.cpu_partial_frozen
            self.put_cpu_partial(cache, c, slab, drain=False)
        return taken[0]

    def kmem_cache_alloc_bulk(self, cache: KmemCache, gfp_mask: int, nr: int, site: str) -> list[int]:
        """mm/slub.c: kmem_cache_alloc_bulk() - all nr objects, or none at all.

        One failslab check for the whole call (slab_pre_alloc_hook()), then the
        CPU's freelist and ___slab_alloc() object by object; if that fails, the
        objects taken go back (__kmem_cache_free_bulk()).
        """
        faults = self.pages.faults
        if faults.rules and (faults.should_fail("slab") or faults.should_fail(cache.fault_layer)):
            cache.failed += 1
            return []
        c = cache.cpu_slab[self.kernel.cpu]
        taken: list[int] = []
        for _ in range(nr):
            if c.freelist:
                taken.append(c.freelist.pop())
                continue
            addr = self.___slab_alloc(cache, gfp_mask, c)
            if addr is None:
                cache.failed += 1
                self._free_bulk(cache, taken)
                return []
            taken.append(addr)
        live = cache.live
        for addr in taken:
            live[addr] = site
        cache.active += nr
        cache.allocs += nr
        if cache.active > cache.peak_active:
            cache.peak_active = cache.active
        return taken

    # -- free ------------------------------------------------------------------------------

    def _slab_of(self, cache: KmemCache | None, addr: int) -> Slab:
        """virt_to_slab() with the checks kmem_cache_free() makes (cache_from_obj())."""
        slab = self.pages.virt_to_head_page(addr).slab
        if slab is None or (cache is not None and slab.cache is not cache):
            owner = slab.cache.name if slab else "no cache"
            name = cache.name if cache is not None else "kfree"
            raise KernelBug(f"kmem_cache_free({name}) of an object from {owner} at {addr:#x}")
        if slab.cache.live.pop(addr, None) is None:
            raise KernelBug(f"double free of {slab.cache.name} object at {addr:#x}")
        return slab

    def kmem_cache_free(self, cache: KmemCache, addr: int) -> None:
        """mm/slub.c: kmem_cache_free() - checks the object belongs to cache."""
        slab = self._slab_of(cache, addr)
        cache.active -= 1
        cache.frees += 1
        self.do_slab_free(cache, slab, [addr])

    def do_slab_free(self, cache: KmemCache, slab: Slab, objects: list[int]) -> None:
        """mm/slub.c: do_slab_free() - objects of one slab (the last is the freelist's head).

        To this CPU's lockless freelist if the slab is this CPU's slab, else __slab_free().
        """
        c = cache.cpu_slab[self.kernel.cpu]
        if slab is c.slab:
            c.freelist += objects
        else:
            self.__slab_free(cache, c, slab, objects)

    def __slab_free(self, cache: KmemCache, c: KmemCacheCpu, slab: Slab, objects: list[int]) -> None:
        """mm/slub.c: __slab_free() - objects back to a slab that is not this CPU's slab.

        A frozen slab (some CPU's slab; in 6.1 also a CPU partial one) just
        takes them.  A full slab goes onto *this* CPU's partial list
        (put_cpu_partial()), or, without CONFIG_SLUB_CPU_PARTIAL, onto the
        node list.  A slab on the node list that becomes empty is discarded
        if the node keeps min_partial slabs already.  An unfrozen slab on a
        CPU partial list (6.8+) is left where it is, empty or not.
        """
        prior = bool(slab.freelist)
        was_frozen = slab.frozen
        slab.freelist += objects
        slab.inuse -= len(objects)
        if was_frozen:
            return
        if not prior and self.has_cpu_partial:
            # 6.1 froze the slab here; 6.8+ ('slub: Delay freezing of partial slabs') does not.
            slab.frozen = self.cpu_partial_frozen
            self.put_cpu_partial(cache, c, slab, drain=True)
            return
        if prior and (slab.inuse or not slab.node_partial):
            return
        node = cache.node
        if slab_discard_empty(slab.inuse, len(node.partial), cache.min_partial):
            if prior:
                remove_partial(node, slab)
            self.discard_slab(cache, slab, "it became empty and the node list holds min_partial slabs")
            return
        if not prior:
            add_partial(node, slab, tail=True)

    def put_cpu_partial(self, cache: KmemCache, c: KmemCacheCpu, slab: Slab, drain: bool) -> None:
        """mm/slub.c: put_cpu_partial() - push a slab onto this CPU's partial list.

        With ``drain``, a list already holding cpu_partial_slabs slabs goes to
        the node list first (__put_partials()) and the slab starts a new one.
        """
        partial = c.partial
        if drain and cpu_partial_full(len(partial), cache.cpu_partial_slabs):
            c.partial = [slab]
            kernel = self.kernel
            if kernel.explain is not None:
                kernel.note(f"{cache.name}: CPU {kernel.cpu}'s partial list holds {len(partial)} slabs "
                            f"(cpu_partial_slabs {cache.cpu_partial_slabs}): all go to the node list")
            self.__put_partials(cache, partial[::-1])
        else:
            partial.append(slab)

    def __put_partials(self, cache: KmemCache, slabs: list[Slab]) -> None:
        """mm/slub.c: __put_partials() (6.1: __unfreeze_partials()) - CPU partial slabs, head first, to the node.

        Each goes to the tail of the node list, except an empty one when the
        node already holds min_partial slabs: those are discarded afterwards,
        the last found first.
        """
        node = cache.node
        discard = []
        for slab in slabs:
            slab.frozen = False
            if slab_discard_empty(slab.inuse, len(node.partial), cache.min_partial):
                discard.append(slab)
            else:
                add_partial(node, slab, tail=True)
        for slab in reversed(discard):
            self.discard_slab(cache, slab, "an empty CPU partial slab, and the node list holds min_partial slabs")

    def deactivate_slab(self, cache: KmemCache, slab: Slab, freelist: list[int]) -> None:
        """mm/slub.c: deactivate_slab() - a CPU gives its slab up, with its lockless freelist.

        The CPU's objects go back to the slab; an empty slab is discarded if
        the node keeps min_partial slabs already, one with free objects goes
        on the node list (at the tail if other CPUs had freed to it, else the
        head), a full one on no list.
        """
        tail = bool(slab.freelist)
        slab.freelist += freelist
        slab.inuse -= len(freelist)
        slab.frozen = False
        node = cache.node
        if slab_discard_empty(slab.inuse, len(node.partial), cache.min_partial):
            self.discard_slab(cache, slab, "deactivated empty, and the node list holds min_partial slabs")
        elif slab.freelist:
            add_partial(node, slab, tail)

    def discard_slab(self, cache: KmemCache, slab: Slab, why: str) -> None:
        """mm/slub.c: discard_slab() - the slab's pages go back to the page allocator."""
        cache.nr_slabs -= 1
        cache.total_objects -= slab.objects
        cache.slabs_freed += 1
        kernel = self.kernel
        if kernel.explain is not None:
            kernel.note(f"{cache.name}: order-{slab.page.order} slab freed ({why})")
        page = slab.page
        page.slab = None
        self.pages.put_page(page)

    def kmem_cache_free_bulk(self, cache: KmemCache, addrs: list[int]) -> None:
        """mm/slub.c: kmem_cache_free_bulk() - objects freed one slab at a time, as build_detached_freelist() groups them."""
        for addr in addrs:
            self._slab_of(cache, addr)
        cache.active -= len(addrs)
        cache.frees += len(addrs)
        self._free_bulk(cache, addrs)

    def _free_bulk(self, cache: KmemCache, addrs: list[int]) -> None:
        """mm/slub.c: __kmem_cache_free_bulk() - the grouping and the frees, without the accounting."""
        rest = list(addrs)
        size = len(rest)
        while size:
            slab, objects, size = self.build_detached_freelist(rest, size)
            self.do_slab_free(cache, slab, objects)

    def build_detached_freelist(self, p: list[int], size: int) -> tuple[Slab, list[int], int]:
        """mm/slub.c: build_detached_freelist() - (slab, its objects, what is left of p[:size]).

        The last object's slab, and the objects of that slab found scanning
        back from it until DETACHED_FREELIST_LOOKAHEAD objects of other slabs
        were seen; those found are swapped out of the part still to free.
        The objects come back tail first, the head (the last found) at the end.
        """
        virt_to_head_page = self.pages.virt_to_head_page
        size -= 1
        first = p[size]
        slab = virt_to_head_page(first).slab
        objects = [first]
        same = size
        lookahead = DETACHED_FREELIST_LOOKAHEAD
        while size:
            size -= 1
            addr = p[size]
            if virt_to_head_page(addr).slab is slab:
                objects.append(addr)
                same -= 1
                if size != same:
                    p[size], p[same] = p[same], p[size]
                continue
            lookahead -= 1
            if not lookahead:
                break
        return slab, objects, same

    # -- kmalloc ---------------------------------------------------------------------------------

    def kmalloc(self, size: int, gfp_mask: int, site: str, max_size: int) -> tuple[int | None, str]:
        """mm/slab_common.c: __do_kmalloc_node() - (address or None, source name).

        Above KMALLOC_MAX_CACHE_SIZE the object is a compound page of its own
        (__kmalloc_large_node()); its source is named ``pages-order-K``.
        """
        if size > self.kmalloc_max_cache_size:
            order = get_order(size, self.page_size)
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

    # -- flushing and shrinking ----------------------------------------------------------------

    def flush_cpu_slab(self, cache: KmemCache, cpu: int) -> None:
        """mm/slub.c: flush_cpu_slab() - a CPU gives up its slab (flush_slab()) and its partial list."""
        c = cache.cpu_slab[cpu]
        slab = c.slab
        if slab is not None:
            freelist, c.slab, c.freelist = c.freelist, None, []
            self.deactivate_slab(cache, slab, freelist)
        if c.partial:
            partial, c.partial = c.partial, []
            self.__put_partials(cache, partial[::-1])

    def kmem_cache_shrink(self, cache: KmemCache) -> None:
        """mm/slub.c: __kmem_cache_shrink() - flush every CPU, then __kmem_cache_do_shrink().

        Every empty slab on the node list is discarded, whatever min_partial
        says; the rest are sorted so the fullest (fewest free objects) come first.
        """
        for cpu in range(len(cache.cpu_slab)):
            self.flush_cpu_slab(cache, cpu)
        node = cache.node
        promote: list[list[Slab]] = [[] for _ in range(SHRINK_PROMOTE_MAX)]
        rest = []
        discard = []
        for slab in node.partial:
            free = slab.objects - slab.inuse
            if free == slab.objects:
                discard.append(slab)
            elif free <= SHRINK_PROMOTE_MAX:
                promote[free - 1].append(slab)
            else:
                rest.append(slab)
        node.partial.clear()
        # list_move() to a promote list puts each slab at its head: the last moved comes first.
        for bucket in promote:
            for slab in reversed(bucket):
                node.partial[slab] = None
        for slab in rest:
            node.partial[slab] = None
        for slab in discard:
            slab.node_partial = False
        for slab in reversed(discard):
            self.discard_slab(cache, slab, "kmem_cache_shrink()")

    def shrink_all(self) -> None:
        """kmem_cache_shrink() of every cache (what the leak check's drain does)."""
        for cache in self.caches.values():
            self.kmem_cache_shrink(cache)

    # -- what /sys/kernel/slab/<cache>/ shows -------------------------------------------------

    def sysfs(self, cache: KmemCache) -> dict[str, int]:
        """mm/slub.c: the numbers of /sys/kernel/slab/<cache>/ (show_slab_objects() and friends).

        ``objects`` counts every object not free on the node partial list, so
        objects on CPU freelists and CPU partial slabs count as in use, as
        the kernel counts them.
        """
        node_partial = cache.node.partial
        cpu_slabs = sum((c.slab is not None) + len(c.partial) for c in cache.cpu_slab)
        free_on_node = sum(slab.objects - slab.inuse for slab in node_partial)
        return {
            "object_size": cache.object_size,
            "slab_size": cache.size,
            "order": cache.order,
            "objs_per_slab": cache.objs_per_slab,
            "min_partial": cache.min_partial,
            "cpu_partial": cache.cpu_partial,
            "slabs": cache.nr_slabs,
            "total_objects": cache.total_objects,
            "objects": cache.total_objects - free_on_node,
            "partial": len(node_partial),
            "objects_partial": sum(slab.inuse for slab in node_partial),
            "cpu_slabs": cpu_slabs,
            "slabs_cpu_partial": sum(len(c.partial) for c in cache.cpu_slab),
        }

    # -- leak check ------------------------------------------------------------------------------

    def outstanding(self) -> list[tuple[str, int, str]]:
        """(cache name, address, allocation site) of every object not freed."""
        left = [(cache.name, addr, site) for cache in self.caches.values() for addr, site in cache.live.items()]
        left += [("kmalloc-large", addr, site) for addr, site in self.large_live.items()]
        return left

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            name: {"allocs": c.allocs, "frees": c.frees, "active": c.active, "peak": c.peak_active, "failed": c.failed,
                   "slabs": c.nr_slabs, "slabs_allocated": c.slabs_allocated, "slabs_freed": c.slabs_freed}
            for name, c in sorted(self.caches.items())
            if c.allocs or c.failed
        }


def add_partial(node: KmemCacheNode, slab: Slab, tail: bool) -> None:
    """mm/slub.c: add_partial() - onto the node list, at its tail (DEACTIVATE_TO_TAIL) or head."""
    node.partial[slab] = None
    if not tail:
        node.partial.move_to_end(slab, last=False)
    slab.node_partial = True


def remove_partial(node: KmemCacheNode, slab: Slab) -> None:
    """mm/slub.c: remove_partial()."""
    del node.partial[slab]
    slab.node_partial = False


def _natural_align(size: int) -> int:
    """Largest power of two dividing size, capped at a page (kmalloc caches' alignment)."""
    return size & -size if size else 8
