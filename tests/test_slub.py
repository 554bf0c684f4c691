"""SLUB's lists after given sequences, each expected value worked out from mm/slub.c's rules.

The test cache: 256-byte objects, hardware-aligned, on a 2-CPU 6.18 kernel (4 KiB pages):
- calculate_order(): min_objects = 4 * (fls(2) + 1) = 12, get_order(12 * 256 = 3072) = 0, and 4096 % 256 = 0
  wastes nothing: order 0, objs_per_slab 4096 / 256 = 16;
- set_cpu_partial(): 256 >= 256, so 52 objects; slub_set_cpu_partial(): cpu_partial_slabs =
  DIV_ROUND_UP(52 * 2, 16) = 7;
- set_min_partial(): ilog2(256) / 2 = 4, clamped up to MIN_PARTIAL: 5.
"""

import pytest

from skbsim.kernel import Kernel
from skbsim.mm.gfp import GFP_ATOMIC, __GFP_MEMALLOC
from skbsim.mm.slab import (
    calculate_order,
    set_cpu_partial,
    set_min_partial,
    slub_set_cpu_partial,
)
from skbsim.profile import load_profile


def _kernel(release="6.18", ncpus=2, **features):
    profile = load_profile(release)
    if features:
        profile = profile.derive(origin="test", features=features)
    kernel = Kernel(profile, ncpus=ncpus)
    cache = kernel.slab.kmem_cache_create("test-256", 256, hwcache_align=True, fault_layer="skb_data")
    return kernel, cache


def _alloc(kernel, cache, n, cpu=0):
    with kernel.on_cpu(cpu):
        return [kernel.slab.kmem_cache_alloc(cache, GFP_ATOMIC, "test") for _ in range(n)]


def _free(kernel, cache, addrs, cpu=0):
    with kernel.on_cpu(cpu):
        for addr in addrs:
            kernel.slab.kmem_cache_free(cache, addr)


def _slab(kernel, addr):
    return kernel.pages.virt_to_head_page(addr).slab


def _numbers(kernel, cache):
    sysfs = kernel.slab.sysfs(cache)
    return {key: sysfs[key] for key in ("slabs", "partial", "cpu_slabs", "slabs_cpu_partial", "objects",
                                        "objects_partial")}


def test_geometry_of_the_test_cache():
    kernel, cache = _kernel()
    assert (cache.order, cache.objs_per_slab, cache.cpu_partial, cache.cpu_partial_slabs, cache.min_partial) == (
        0, 16, 52, 7, 5)


@pytest.mark.parametrize("size,cpu_partial,min_partial", [
    (64, 120, 5),      # below 256: 120; ilog2(64) / 2 = 3 -> MIN_PARTIAL 5
    (256, 52, 5),
    (1024, 24, 5),     # ilog2(1024) / 2 = 5
    (2048, 24, 5),
    (4096, 6, 6),      # a page or more: 6; ilog2(4096) / 2 = 6
    (8192, 6, 6),
    (1 << 21, 6, 10),  # ilog2 = 21, 21 / 2 = 10 = MAX_PARTIAL
    (1 << 23, 6, 10),  # 23 / 2 = 11, clamped down to MAX_PARTIAL 10
])
def test_set_cpu_partial_and_min_partial(size, cpu_partial, min_partial):
    assert set_cpu_partial(size, 4096, True) == cpu_partial
    assert set_cpu_partial(size, 4096, False) == 0
    assert set_min_partial(size) == min_partial


@pytest.mark.parametrize("nr_objects,objs,slabs", [
    (52, 14, 8),   # skbuff_small_head on the 6.18 host: DIV_ROUND_UP(104, 14) = 8
    (24, 16, 3),   # kmalloc-1k and -2k: DIV_ROUND_UP(48, 16) = 3
    (6, 8, 2),     # kmalloc-4k: DIV_ROUND_UP(12, 8) = 2
    (6, 4, 3),     # kmalloc-8k: DIV_ROUND_UP(12, 4) = 3
    (0, 16, 0),    # no CPU partial list
])
def test_cpu_partial_slabs(nr_objects, objs, slabs):
    assert slub_set_cpu_partial(nr_objects, objs) == slabs


def test_the_live_hosts_geometry():
    # /sys/kernel/slab on the 6.18.44 host (2 CPUs): skbuff_small_head 576 bytes, order 1, 14 objects;
    # kmalloc-8k order 3, 4 objects.  min_objects = 12: get_order(12 * 576 = 6912) = 1 and
    # 8192 % 576 = 128 <= 8192 / 16; kmalloc-8k: max_objects = 32768 / 8192 = 4 -> get_order(32768) = 3.
    assert calculate_order(576, 4096, 2) == 1
    assert calculate_order(8192, 4096, 2) == 3


def test_an_object_freed_on_its_cpu_keeps_the_slab():
    # One object from a fresh slab, freed on the same CPU: the slab is CPU 0's slab (c->slab), so the free
    # goes to the lockless freelist and nothing reaches the page allocator.
    kernel, cache = _kernel()
    (addr,) = _alloc(kernel, cache, 1)
    _free(kernel, cache, [addr])
    assert kernel.pages.allocated[0] == 1 and kernel.pages.freed[0] == 0
    assert cache.cpu_slab[0].slab is _slab(kernel, addr) and len(cache.cpu_slab[0].freelist) == 16
    assert _numbers(kernel, cache) == {"slabs": 1, "partial": 0, "cpu_slabs": 1, "slabs_cpu_partial": 0,
                                       "objects": 16, "objects_partial": 0}
    kernel.assert_no_leaks()
    assert kernel.pages.freed[0] == 1  # the leak check's kmem_cache_shrink() gave it back


def test_ten_slabs_freed_in_order_on_one_cpu():
    # 160 objects on CPU 0 fill ten slabs s1..s10; s10 is CPU 0's slab, s1..s9 are full and on no list.
    # Freeing them in the same order on CPU 0:
    # - s1's first object finds it full (no freelist) and unfrozen: put_cpu_partial() -> CPU 0's list [s1];
    #   its other 15 frees only fill its freelist (it is on no node list), so s1 stays there, empty;
    # - s2..s7 likewise: the list holds 7 = cpu_partial_slabs;
    # - s8's first free finds the list full: __put_partials() of s7, s6, ..., s1 (head first): s7..s3 go to
    #   the node's tail while it holds fewer than min_partial 5; s2 and s1 find 5 there and are discarded.
    #   The list restarts as [s8];
    # - s9 -> [s9, s8];
    # - s10's objects go back to CPU 0's lockless freelist.
    # Left: 8 slabs (5 empty on the node list, 2 on CPU 0's list, the CPU slab); 2 order-0 pages freed.
    kernel, cache = _kernel()
    addrs = _alloc(kernel, cache, 160)
    slabs = [_slab(kernel, addrs[16 * i]) for i in range(10)]
    assert _numbers(kernel, cache) == {"slabs": 10, "partial": 0, "cpu_slabs": 1, "slabs_cpu_partial": 0,
                                       "objects": 160, "objects_partial": 0}
    _free(kernel, cache, addrs)
    assert kernel.pages.freed[0] == 2
    assert list(cache.node.partial) == [slabs[6], slabs[5], slabs[4], slabs[3], slabs[2]]
    assert cache.cpu_slab[0].partial == [slabs[7], slabs[8]]  # head (s9) last
    assert cache.cpu_slab[0].slab is slabs[9]
    # objects: the 128 of 8 slabs, less the 80 free on the node list; the CPU's free ones count as in use.
    assert _numbers(kernel, cache) == {"slabs": 8, "partial": 5, "cpu_slabs": 3, "slabs_cpu_partial": 2,
                                       "objects": 48, "objects_partial": 0}
    # kmem_cache_shrink(): CPU 0's slab is deactivated empty with 5 on the node list (discarded), its list
    # goes to the node (both empty, discarded), then every empty slab on the node list is discarded.
    kernel.slab.kmem_cache_shrink(cache)
    assert kernel.pages.freed[0] == 10 and cache.nr_slabs == 0
    kernel.assert_no_leaks()


def test_frees_from_another_cpu_go_to_the_slab():
    # 16 objects on CPU 0 use up slab s1 (CPU 0's slab, frozen).  Freed on CPU 1 they go to s1's own
    # freelist (__slab_free() of a frozen slab takes no list decision).  CPU 0's next allocation finds its
    # lockless freelist empty and takes s1's freelist (get_freelist()): no new slab.
    kernel, cache = _kernel()
    addrs = _alloc(kernel, cache, 16)
    _free(kernel, cache, addrs, cpu=1)
    s1 = _slab(kernel, addrs[0])
    assert s1.inuse == 0 and len(s1.freelist) == 16 and s1.frozen and cache.cpu_slab[0].slab is s1
    (again,) = _alloc(kernel, cache, 1)
    assert _slab(kernel, again) is s1 and kernel.pages.allocated[0] == 1
    assert len(cache.cpu_slab[0].freelist) == 15 and not s1.freelist
    _free(kernel, cache, [again])
    kernel.assert_no_leaks()


def test_a_full_slab_freed_remotely_joins_the_freeing_cpus_list():
    # 17 objects on CPU 0: s1 is used up; the 17th finds s1's freelist empty (c->slab = NULL, s1 full on no
    # list) and takes a new slab s2.  One of s1's objects freed on CPU 1 goes onto CPU 1's partial list.
    # cpu_slabs counts CPU 0's slab and CPU 1's one-slab list: 2.
    kernel, cache = _kernel()
    addrs = _alloc(kernel, cache, 17)
    _free(kernel, cache, [addrs[0]], cpu=1)
    s1, s2 = _slab(kernel, addrs[0]), _slab(kernel, addrs[16])
    assert cache.cpu_slab[1].partial == [s1] and cache.cpu_slab[0].slab is s2 and cache.cpu_slab[0].partial == []
    assert _numbers(kernel, cache)["cpu_slabs"] == 2
    _free(kernel, cache, addrs[1:])
    kernel.assert_no_leaks()


def _nine_partial_slabs_on_cpu1(kernel, cache):
    """160 objects on CPU 0 (s1..s10), then one object of each of s1..s9 freed on CPU 1.

    s1..s7 fill CPU 1's list (7); s8 drains them to the node's tail in the order s7, s6, ..., s1 (none is
    empty, so none is discarded) and starts [s8]; s9 -> [s9, s8]."""
    addrs = _alloc(kernel, cache, 160)
    slabs = [_slab(kernel, addrs[16 * i]) for i in range(10)]
    _free(kernel, cache, [addrs[16 * i] for i in range(9)], cpu=1)
    return addrs, slabs


def test_node_list_after_a_remote_drain():
    kernel, cache = _kernel()
    addrs, s = _nine_partial_slabs_on_cpu1(kernel, cache)
    assert list(cache.node.partial) == [s[6], s[5], s[4], s[3], s[2], s[1], s[0]]
    assert cache.cpu_slab[1].partial == [s[7], s[8]]
    assert _numbers(kernel, cache) == {"slabs": 10, "partial": 7, "cpu_slabs": 3, "slabs_cpu_partial": 2,
                                       "objects": 160 - 7, "objects_partial": 7 * 15}
    _free(kernel, cache, [a for i, a in enumerate(addrs) if i % 16 or i >= 144])
    kernel.assert_no_leaks()


def test_allocation_order_and_get_partial_node():
    # From the state above, allocating on CPU 1 (no slab yet):
    # 1. CPU 1's list head s9 becomes its slab: its one free object;
    # 2. s9 used up (c->slab = NULL), then s8 from the list: one object;
    # 3. the list is empty: get_partial_node() takes the node's head s7 as the CPU slab and moves more slabs
    #    onto CPU 1's list while their count stays within cpu_partial_slabs / 2 = 3 ... it stops after the
    #    one that makes it 4 (> 3): s6, s5, s4, s3.  The node keeps [s2, s1].  s7 gives its free object;
    # 4. then the list's head, s3 (pushed last), and so on.
    kernel, cache = _kernel()
    addrs, s = _nine_partial_slabs_on_cpu1(kernel, cache)
    got = _alloc(kernel, cache, 3, cpu=1)
    assert [_slab(kernel, a) for a in got] == [s[8], s[7], s[6]]
    assert list(cache.node.partial) == [s[1], s[0]]
    assert cache.cpu_slab[1].partial == [s[5], s[4], s[3], s[2]]
    (fourth,) = _alloc(kernel, cache, 1, cpu=1)
    assert _slab(kernel, fourth) is s[2] and cache.cpu_slab[1].slab is s[2]
    assert kernel.pages.allocated[0] == 10  # still the ten slabs: no new one
    _free(kernel, cache, [a for i, a in enumerate(addrs) if i % 16 or i >= 144] + got + [fourth])
    kernel.assert_no_leaks()


def test_min_partial_decides_which_empty_node_slabs_stay():
    # From the state after the remote drain (node: s7, s6, s5, s4, s3, s2, s1, each with 15 objects in use),
    # free the rest of s1, then s2, ... s7, on CPU 1 (none is CPU 1's slab; all are on the node list):
    # s1 empties with 7 on the list (>= min_partial 5): removed and discarded; s2 with 6: discarded; s3 with
    # 5: discarded; s4 empties with 4 on the list: it stays, and so do s5, s6, s7 (still 4 on the list).
    kernel, cache = _kernel()
    addrs, s = _nine_partial_slabs_on_cpu1(kernel, cache)
    for i in range(7):
        _free(kernel, cache, addrs[16 * i + 1:16 * (i + 1)], cpu=1)
    assert kernel.pages.freed[0] == 3
    assert list(cache.node.partial) == [s[6], s[5], s[4], s[3]]
    assert all(slab.inuse == 0 for slab in cache.node.partial)
    _free(kernel, cache, [a for i, a in enumerate(addrs) if i >= 112 and (i % 16 or i >= 144)])
    kernel.assert_no_leaks()


def test_6_1_freezes_cpu_partial_slabs_with_the_same_lists():
    # 6.1 freezes a slab it puts on a CPU partial list (__slab_free(), acquire_slab()); 6.8+ does not
    # ('slub: Delay freezing of partial slabs').  The lists and the slabs freed are the same either way.
    outcomes = []
    for release in ("6.1", "6.18"):
        kernel, cache = _kernel(release)
        addrs, s = _nine_partial_slabs_on_cpu1(kernel, cache)
        frozen = [slab.frozen for slab in cache.cpu_slab[1].partial]
        _alloc_more = _alloc(kernel, cache, 3, cpu=1)
        frozen_after = [slab.frozen for slab in cache.cpu_slab[1].partial]
        outcomes.append((_numbers(kernel, cache), [s.index(x) for x in cache.node.partial],
                         [s.index(x) for x in cache.cpu_slab[1].partial]))
        assert frozen == [release == "6.1"] * 2 and frozen_after == [release == "6.1"] * 4
        _free(kernel, cache, [a for i, a in enumerate(addrs) if i % 16 or i >= 144] + _alloc_more)
        kernel.assert_no_leaks()
    assert outcomes[0] == outcomes[1]


def test_without_cpu_partial_slabs_go_to_the_node_list():
    # CONFIG_SLUB_CPU_PARTIAL=n: cpu_partial 0.  The ten-slab sequence of test_ten_slabs_freed_in_order:
    # s1's first free takes the node lock and adds it to the node's tail; when its last object comes back
    # the list holds 1 < min_partial 5, so it stays, empty; so do s2, s3, s4.  s5 joins as the 5th and,
    # emptied with 5 there, is discarded; s6..s9 likewise.  s10 is the CPU slab.  Left: 5 slabs (4 empty
    # on the node list: 64 free objects of 80), 5 pages freed.
    kernel, cache = _kernel(slub_cpu_partial=False)
    assert cache.cpu_partial == 0 and cache.cpu_partial_slabs == 0
    addrs = _alloc(kernel, cache, 160)
    _free(kernel, cache, addrs)
    assert kernel.pages.freed[0] == 5
    assert _numbers(kernel, cache) == {"slabs": 5, "partial": 4, "cpu_slabs": 1, "slabs_cpu_partial": 0,
                                       "objects": 16, "objects_partial": 0}
    kernel.assert_no_leaks()


def test_bulk_free_groups_objects_as_build_detached_freelist():
    # Objects [a1, b1, a2, b2, c1, a3] of slabs A, B, C.  build_detached_freelist() starts from the last,
    # a3 (A), and scans back: c1 and b2 are misses (lookahead 3 -> 1), a2 joins A's list and is swapped
    # behind the rest, b1 is the third miss: stop.  Then b2 (B) with b1; then c1; then a1 on its own.
    kernel, cache = _kernel()
    addrs = _alloc(kernel, cache, 48)
    a, b, c = addrs[0:16], addrs[16:32], addrs[32:48]
    p = [a[0], b[0], a[1], b[1], c[0], a[2]]
    groups = []
    size = len(p)
    while size:
        slab, objects, size = kernel.slab.build_detached_freelist(p, size)
        groups.append(objects)
    assert groups == [[a[2], a[1]], [b[1], b[0]], [c[0]], [a[0]]]
    _free(kernel, cache, addrs)
    kernel.assert_no_leaks()


def test_bulk_allocation_asks_failslab_once():
    # kmem_cache_alloc_bulk(): slab_pre_alloc_hook() -> should_failslab() once for all 16 objects.
    kernel, cache = _kernel()
    kernel.faults.fail_nth("slab", nth=2, times=1)
    with kernel.on_cpu(0):
        first = kernel.slab.kmem_cache_alloc_bulk(cache, GFP_ATOMIC, 16, "bulk")
        second = kernel.slab.kmem_cache_alloc_bulk(cache, GFP_ATOMIC, 16, "bulk")
        third = kernel.slab.kmem_cache_alloc_bulk(cache, GFP_ATOMIC, 16, "bulk")
        assert len(first) == 16 and second == [] and len(third) == 16
        kernel.slab.kmem_cache_free_bulk(cache, first + third)
    assert kernel.faults.injected["slab"] == 1
    kernel.assert_no_leaks()


def test_a_new_slab_falls_back_to_the_smallest_order():
    # allocate_slab(): the cache's order first (with __GFP_NORETRY), then s->min, the order one object
    # needs.  skbuff_small_head on 6.18 with one CPU: 704 bytes, order 1 (min_objects 8, get_order(5632) =
    # 1, 8192 % 704 = 448 <= 512), 11 objects; s->min is order 0 with 4096 / 704 = 5 objects.
    kernel = Kernel("6.18")
    cache = kernel.skb_small_head_cache
    assert (cache.order, cache.objs_per_slab, cache.min_order, cache.min_objects) == (1, 11, 0, 5)
    kernel.faults.fail_nth("page_alloc", nth=1, times=1)
    with kernel.on_cpu(0):
        addr = kernel.slab.kmem_cache_alloc(cache, GFP_ATOMIC, "test")
    slab = _slab(kernel, addr)
    assert slab.page.order == 0 and slab.objects == 5
    assert kernel.pages.failed[1] == 1 and kernel.pages.allocated == {0: 1}
    _free(kernel, cache, [addr])
    kernel.assert_no_leaks()


def test_pfmemalloc_cpu_slab_serves_the_fast_path_but_not_the_slow_path():
    # A CPU slab of reserve pages: its lockless freelist serves anyone (the fast path does not look), but
    # when that is empty a caller without __GFP_MEMALLOC makes ___slab_alloc() deactivate it.
    kernel, cache = _kernel()
    kernel.pages.limit_pages = 0
    kernel.pages.reserve_pages = 16
    first = _alloc_gfp(kernel, cache, GFP_ATOMIC | __GFP_MEMALLOC, 1)  # a reserve page, for an entitled caller
    pf_slab = _slab(kernel, first[0])
    assert pf_slab.page.pfmemalloc
    rest = _alloc_gfp(kernel, cache, GFP_ATOMIC, 15)  # not entitled, but from the CPU's freelist
    assert {_slab(kernel, addr) for addr in rest} == {pf_slab}
    _free(kernel, cache, first[:1])  # back to the CPU's freelist
    # The freelist has one object of the reserve slab again: the fast path hands it out.
    assert _slab(kernel, _alloc_gfp(kernel, cache, GFP_ATOMIC, 1)[0]) is pf_slab
    # Now empty: the slow path sees a pfmemalloc slab and a caller without the right: deactivate_slab();
    # a new slab needs a page below the limit (0): none, so the allocation fails.
    assert _alloc_gfp(kernel, cache, GFP_ATOMIC, 1) == [None]
    assert cache.cpu_slab[0].slab is None
    kernel.pages.limit_pages = None
    _free(kernel, cache, [a for a in cache.live])
    kernel.assert_no_leaks()


def _alloc_gfp(kernel, cache, gfp, n):
    with kernel.on_cpu(0):
        return [kernel.slab.kmem_cache_alloc(cache, gfp, "test") for _ in range(n)]
