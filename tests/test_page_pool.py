"""page_pool (net/core/page_pool.c, include/net/page_pool/helpers.h): hand-derived numbers.

Every expected value below is worked out from the kernel functions named
beside it; x86_64 with 4K pages, so PAGE_SIZE << order = 4096 for order 0,
dma_get_cache_alignment() = 1 and __alignof__(struct skb_shared_info) = 8.
"""

from __future__ import annotations

import pytest

from skbsim.kernel import Kernel
from skbsim.profile import load_profile
from skbsim.net.napi import napi_list_del, napi_schedule, napi_struct, net_device
from skbsim.net.page_pool import (
    E2BIG,
    EINVAL,
    LONG_MAX,
    page_pool_create,
    page_pool_destroy,
    page_pool_dev_alloc,
    page_pool_dev_alloc_pages,
    page_pool_inflight,
    page_pool_params,
    page_pool_put_full_page,
    skb_mark_for_recycle,
)
from skbsim.net.skbuff import kfree_skb, napi_build_skb, napi_consume_skb

RELEASES = ("6.1", "6.9", "6.12", "6.18")


def make_pool(kernel, pool_size=0, order=0, napi=None):
    pool, err = page_pool_create(kernel, page_pool_params(pool_size=pool_size, order=order, napi=napi))
    assert err == 0
    return pool


# -- page_pool_dev_alloc(): offsets and sizes ------------------------------------------------------
#
# helpers.h page_pool_alloc(): size * 2 > 4096 takes a whole page; else
# page_pool_alloc_frag() cuts ALIGN(size, a) bytes at pool->frag_offset, and
# when frag_offset + size (the unaligned request) > 4096 the fragment grows to
# the page's end.  a is 1 where pp_frag_align = "dma" (6.9, 6.18) and 8 where
# it is "dma_or_shinfo" (6.12.117, stable 'page_pool: keep frag_offset aligned
# for odd-sized requests').

DEV_ALLOC_CASES = [
    # release, request, [(page number, offset, size) per call]
    # 1024: offsets 0, 1024, 2048, 3072; after the 4th frag_offset = 4096, and
    # 4096 + 1024 > 4096 folds "the rest", which is exactly 1024: no change.
    # The 5th call does not fit (4096 + 1024 > 4096): a new page at offset 0.
    ("6.9", 1024, [(0, 0, 1024), (0, 1024, 1024), (0, 2048, 1024), (0, 3072, 1024), (1, 0, 1024)]),
    ("6.12", 1024, [(0, 0, 1024), (0, 1024, 1024), (0, 2048, 1024), (0, 3072, 1024), (1, 0, 1024)]),
    # 1500, align 1: frag 1 at 0 (frag_offset 1500; 1500 + 1500 <= 4096 keeps 1500);
    # frag 2 at 1500 (frag_offset 3000; 3000 + 1500 = 4500 > 4096: size 4096 - 1500 = 2596).
    ("6.9", 1500, [(0, 0, 1500), (0, 1500, 2596), (1, 0, 1500)]),
    ("6.18", 1500, [(0, 0, 1500), (0, 1500, 2596), (1, 0, 1500)]),
    # 1500, align 8 (ALIGN(1500, 8) = 1504): frag 2 at 1504, 3008 + 1500 > 4096: size 4096 - 1504 = 2592.
    ("6.12", 1500, [(0, 0, 1500), (0, 1504, 2592), (1, 0, 1500)]),
    # 1001, align 1: 0, 1001, 2002 keep 1001 (next end 2002, 3003, 4004 <= 4096);
    # the 4th at 3003 ends at 4004, 4004 + 1001 > 4096: size 4096 - 3003 = 1093.
    ("6.9", 1001, [(0, 0, 1001), (0, 1001, 1001), (0, 2002, 1001), (0, 3003, 1093), (1, 0, 1001)]),
    # 1001, align 8 (1008 per piece): 0, 1008, 2016; the 4th at 3024 ends at 4032,
    # 4032 + 1001 > 4096: size 4096 - 3024 = 1072.
    ("6.12", 1001, [(0, 0, 1001), (0, 1008, 1001), (0, 2016, 1001), (0, 3024, 1072), (1, 0, 1001)]),
    # 2048: 2 * 2048 = 4096 is not > 4096, so fragments: 0 and 2048 (the second ends
    # at 4096 and folds nothing more).
    ("6.18", 2048, [(0, 0, 2048), (0, 2048, 2048), (1, 0, 2048)]),
    # 2049: 2 * 2049 > 4096: a whole page each time, offset 0, size 4096.
    ("6.9", 2049, [(0, 0, 4096), (1, 0, 4096)]),
    ("6.18", 3000, [(0, 0, 4096), (1, 0, 4096)]),
]


@pytest.mark.parametrize("release,size,expected", DEV_ALLOC_CASES)
def test_page_pool_dev_alloc_offsets_and_sizes(release, size, expected):
    kernel = Kernel(release)
    pool = make_pool(kernel)
    pages = []
    got = []
    with kernel.softirq():
        for _ in expected:
            page, offset, truesize = page_pool_dev_alloc(kernel, pool, size)
            got.append((page, offset, truesize))
            if page not in pages:
                pages.append(page)
    assert [(pages.index(page), offset, truesize) for page, offset, truesize in got] == expected
    # Every fragment goes back (one page_pool_put_full_page() each), then the pool.
    for page, _, _ in got:
        page_pool_put_full_page(kernel, pool, page, False)
    page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()


def test_page_pool_dev_alloc_is_missing_in_6_1():
    kernel = Kernel("6.1")
    pool = make_pool(kernel)
    with pytest.raises(Exception, match="does not exist"):
        page_pool_dev_alloc(kernel, pool, 1024)
    page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()


def test_fragment_references_of_a_page_left_to_its_users():
    """page_pool_alloc_frag(): a full frag page is drained of BIAS_MAX - frag_users references.

    Four 1024-byte fragments: pp_ref_count = BIAS_MAX (LONG_MAX >> 1 from 6.8)
    after the first; the 5th request drains BIAS_MAX - 4, leaving 4 - one per
    fragment user.  Each put takes one; the 4th is the last (page_pool_unref_page()
    finds count == 1) and recycles the page (to the ring: process context).
    """
    kernel = Kernel("6.18")
    pool = make_pool(kernel)
    first, _, _ = page_pool_dev_alloc(kernel, pool, 1024)
    assert first.pp_ref_count == LONG_MAX >> 1
    for _ in range(3):
        page_pool_dev_alloc(kernel, pool, 1024)
    second, _, _ = page_pool_dev_alloc(kernel, pool, 1024)
    assert second is not first and first.pp_ref_count == 4
    for left in (3, 2, 1):
        page_pool_put_full_page(kernel, pool, first, False)
        assert first.pp_ref_count == left
    page_pool_put_full_page(kernel, pool, first, False)
    assert first.pp_ref_count == 1 and list(pool.ring) == [first]
    assert pool.stats["rx_pp_recycle_ring"] == 1
    page_pool_put_full_page(kernel, pool, second, False)
    page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()


# -- 200 frees through skbs, in and out of the pool's NAPI context ----------------------------------
#
# 200 page_pool_dev_alloc_pages() on an order-0 pool: the 1st, 65th, 129th and
# 193rd find cache and ring empty (alloc_empty) and take PP_ALLOC_CACHE_REFILL =
# 64 pages in one bulk (alloc_slow); the other 196 come from the cache
# (alloc_fast).  256 pages taken, 56 left in the cache.
#
# Each page becomes the head of an skb (napi_build_skb, skb_mark_for_recycle)
# and the skb is freed: skb_free_head() -> napi_pp_put_page() -> the pool.
# In NAPI (softirq on CPU 0 while the pool's NAPI is on CPU 0's poll list) from
# 6.4: direct recycling; the cache takes 128 - 56 = 72 (recycle_cached), the
# other 128 count recycle_cache_full and go to the ring; with a 64-entry ring
# 64 fit (recycle_ring) and 64 more are released (recycle_ring_full) to the
# page allocator.  6.1 never recycles an skb's page directly: all 200 go to the
# ring, as they do everywhere outside NAPI (process context): a 1024 ring takes
# them all, a 64 ring takes 64 and releases 136.

FREE_CASES = [
    # release, in NAPI, pool_size, cached, cache_full, ring, ring_full
    ("6.9", True, 0, 72, 128, 128, 0),
    ("6.9", True, 64, 72, 128, 64, 64),
    ("6.12", True, 0, 72, 128, 128, 0),
    ("6.18", True, 64, 72, 128, 64, 64),
    ("6.1", True, 0, 0, 0, 200, 0),
    ("6.1", True, 64, 0, 0, 64, 136),
    ("6.1", False, 0, 0, 0, 200, 0),
    ("6.9", False, 0, 0, 0, 200, 0),
    ("6.12", False, 64, 0, 0, 64, 136),
    ("6.18", False, 0, 0, 0, 200, 0),
    ("6.18", False, 64, 0, 0, 64, 136),
    # 7.1 on 4K pages: PP_ALLOC_CACHE_REFILL 64 and PP_ALLOC_CACHE_SIZE 128 as before ('by_page_size').
    ("7.1", True, 64, 72, 128, 64, 64),
    ("7.1", False, 0, 0, 0, 200, 0),
]


@pytest.mark.parametrize("release,in_napi,pool_size,cached,cache_full,ring,ring_full", FREE_CASES)
def test_200_frees_into_a_pool(release, in_napi, pool_size, cached, cache_full, ring, ring_full):
    kernel = Kernel(release)
    napi = napi_struct(net_device("eth0"))
    pool = make_pool(kernel, pool_size=pool_size, napi=napi)
    skbs = []
    with kernel.softirq():
        for _ in range(200):
            page = page_pool_dev_alloc_pages(kernel, pool)
            skb = napi_build_skb(kernel, kernel.pages.page_address(page), 4096)
            skb_mark_for_recycle(skb)
            skbs.append(skb)
    assert (pool.stats["rx_pp_alloc_empty"], pool.stats["rx_pp_alloc_slow"], pool.stats["rx_pp_alloc_fast"]) == (4, 4, 196)
    assert len(pool.alloc) == 56 and pool.pages_state_hold_cnt == 256
    if in_napi:
        napi_schedule(napi, 0)
        with kernel.softirq(0):
            for skb in skbs:
                napi_consume_skb(kernel, skb, 64)
        napi_list_del(napi)
    else:
        for skb in skbs:
            kfree_skb(kernel, skb)
    stats = pool.stats
    assert (stats["rx_pp_recycle_cached"], stats["rx_pp_recycle_cache_full"], stats["rx_pp_recycle_ring"],
            stats["rx_pp_recycle_ring_full"]) == (cached, cache_full, ring, ring_full)
    assert stats["rx_pp_recycle_released_ref"] == 0
    assert len(pool.alloc) == 56 + cached and len(pool.ring) == ring
    assert pool.pages_state_release_cnt == ring_full                 # back in the page allocator
    assert sum(page.site.startswith("page_pool") for page in kernel.pages.live.values()) == 256 - ring_full
    assert page_pool_inflight(pool) == 256 - ring_full
    assert page_pool_destroy(kernel, pool) == 0                      # cache and ring emptied
    kernel.assert_no_leaks()


# -- ring size, waive, pfmemalloc and refcount rules ---------------------------------------------------


@pytest.mark.parametrize("release,pool_size,expected", [
    # page_pool_init(): 6.9 takes pool_size as it is up to 32768 and refuses more;
    # 6.1.192 (stable backport), 6.12 and 6.18 clamp to 16384.
    ("6.9", 20000, 20000), ("6.9", 40000, -E2BIG), ("6.1", 20000, 16384), ("6.12", 40000, 16384),
    ("6.18", 0, 1024), ("6.9", 0, 1024),
])
def test_ring_size(release, pool_size, expected):
    kernel = Kernel(release)
    pool, err = page_pool_create(kernel, page_pool_params(pool_size=pool_size))
    if expected < 0:
        assert pool is None and err == expected
    else:
        assert err == 0 and pool.ring_qsize == expected
        page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()


def test_a_page_of_another_node_is_waived_on_refill():
    """page_pool_refill_alloc_cache(): a ring page of another node stops the refill and is released."""
    kernel = Kernel("6.12")
    pool = make_pool(kernel)
    pages = [page_pool_dev_alloc_pages(kernel, pool) for _ in range(64)]   # one bulk, cache now empty
    pages[1].nid = 1
    for page in pages:
        page_pool_put_full_page(kernel, pool, page, False)                # process context: ring
    assert len(pool.ring) == 64 and not pool.alloc
    freed = kernel.pages.freed[0]
    page = page_pool_dev_alloc_pages(kernel, pool)
    # Ring order is put order: pages[0] is taken into the cache, pages[1] (node 1)
    # is returned (alloc_waive) and the refill stops; the one cached page is handed out.
    assert page is pages[0]
    assert (pool.stats["rx_pp_alloc_waive"], pool.stats["rx_pp_alloc_refill"]) == (1, 1)
    assert kernel.pages.freed[0] == freed + 1 and len(pool.ring) == 62
    page_pool_put_full_page(kernel, pool, page, False)
    page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()


def test_pfmemalloc_and_shared_pages_are_released_not_recycled():
    """__page_pool_put_page(): page_ref_count() != 1 or page_is_pfmemalloc() -> recycle_released_ref."""
    kernel = Kernel("6.18")
    pool = make_pool(kernel)
    a = page_pool_dev_alloc_pages(kernel, pool)
    b = page_pool_dev_alloc_pages(kernel, pool)
    a.pfmemalloc = True
    kernel.pages.get_page(b)                      # someone else holds b too
    page_pool_put_full_page(kernel, pool, a, False)
    page_pool_put_full_page(kernel, pool, b, False)
    assert pool.stats["rx_pp_recycle_released_ref"] == 2 and not pool.ring
    assert a.pfn not in kernel.pages.live          # freed at once
    assert b.pp is None and b.refcount == 1        # no longer a pool page; its other owner frees it
    kernel.pages.put_page(b)
    page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()


def test_destroy_with_a_page_in_flight_waits_for_it():
    """page_pool_destroy(): an skb still holding a page keeps the pool; the leak check names both."""
    kernel = Kernel("6.9")
    pool = make_pool(kernel)
    with kernel.softirq():
        page = page_pool_dev_alloc_pages(kernel, pool)
        skb = napi_build_skb(kernel, kernel.pages.page_address(page), 4096)
        skb_mark_for_recycle(skb)
    assert page_pool_destroy(kernel, pool) == 1     # 63 cached pages returned, one in flight
    report = kernel.leak_check()
    assert not report.clean and report.pools == [pool] and len(report.skbs) == 1
    kfree_skb(kernel, skb)                          # back through the ring (no NAPI link any more)
    assert list(pool.ring) == [page]
    kernel.assert_no_leaks()                        # the retried release empties the ring and frees the pool
    assert kernel.page_pools == []


def test_undestroyed_pool_is_a_leak():
    kernel = Kernel("6.12")
    pool = make_pool(kernel)
    page_pool_put_full_page(kernel, pool, page_pool_dev_alloc_pages(kernel, pool), False)
    report = kernel.leak_check()
    assert report.pools == [pool] and len(report.pages) == 64
    assert "page_pools" in report.summary()


@pytest.mark.parametrize("release,fast,cached", [
    # Four 1024-byte fragments fill a page; after all four come back the 5th request
    # drains the page and reuses it.  6.12 (pp_frag_stats "fast_per_frag"): alloc_fast
    # for frags 2-4 and for the reuse = 4; 6.18 ("cached_on_reuse"): one alloc_fast and
    # one recycle_cached, for the reuse only.  The first frag's page came from the slow
    # path in both (alloc_slow 1).
    ("6.12", 4, 0), ("6.18", 1, 1),
])
def test_fragment_statistics(release, fast, cached):
    kernel = Kernel(release)
    pool = make_pool(kernel)
    pieces = [page_pool_dev_alloc(kernel, pool, 1024)[0] for _ in range(4)]
    for page in pieces:
        page_pool_put_full_page(kernel, pool, page, False)
    again, offset, _ = page_pool_dev_alloc(kernel, pool, 1024)
    assert again is pieces[0] and offset == 0
    assert (pool.stats["rx_pp_alloc_slow"], pool.stats["rx_pp_alloc_fast"], pool.stats["rx_pp_recycle_cached"]) == (
        1, fast, cached)
    page_pool_put_full_page(kernel, pool, again, False)
    page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()


def test_high_order_pool_takes_one_page_per_slow_allocation():
    """__page_pool_alloc_page_order(): no bulk for order > 0; each counts alloc_slow_ho."""
    kernel = Kernel("6.9")
    pool = make_pool(kernel, order=1)
    pages = [page_pool_dev_alloc_pages(kernel, pool) for _ in range(3)]
    assert pool.stats["rx_pp_alloc_slow_ho"] == 3 and pool.stats["rx_pp_alloc_empty"] == 3
    assert all(page.order == 1 for page in pages) and kernel.pages.allocated[1] == 3
    for page in pages:
        page_pool_put_full_page(kernel, pool, page, False)
    page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()


def test_gfp_atomic_dev_alloc_fails_as_null_when_memory_is_gone():
    kernel = Kernel("6.18", limit_pages=0)
    pool = make_pool(kernel)
    assert page_pool_dev_alloc_pages(kernel, pool) is None
    assert page_pool_dev_alloc(kernel, pool, 512)[0] is None
    page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()


# -- 7.1: the alloc cache scales with the page size, page_pool_create() checks the order ------------------


@pytest.mark.parametrize("release, page_size, refill, size", [
    # include/net/page_pool/types.h of 7.1.3: PP_ALLOC_CACHE_REFILL 64 / 16 / 4 for 4K / 16K / 64K pages,
    # PP_ALLOC_CACHE_SIZE twice that; 6.18: 64 and 128 on every page size.
    ("7.1", 4096, 64, 128), ("7.1", 16384, 16, 32), ("7.1", 65536, 4, 8),
    ("6.18", 16384, 64, 128), ("6.18", 65536, 64, 128),
])
def test_alloc_cache_size_by_page_size(release, page_size, refill, size):
    profile = load_profile(release).derive(origin="test", name=f"{release}-{page_size}",
                                           constants={"PAGE_SIZE": page_size})
    kernel = Kernel(profile)
    pool = make_pool(kernel)
    assert (pool.cache_refill, pool.cache_size) == (refill, size)
    with kernel.softirq():
        pages = [page_pool_dev_alloc_pages(kernel, pool) for _ in range(20)]
    # 20 allocations from an empty pool: a bulk refill of PP_ALLOC_CACHE_REFILL whenever the cache is empty,
    # at allocations 1, 1 + refill, ...: ceil(20 / refill) slow ones, the rest fast.
    slow = -(-20 // refill)
    assert (pool.stats["rx_pp_alloc_slow"], pool.stats["rx_pp_alloc_fast"]) == (slow, 20 - slow)
    assert len(pool.alloc) == slow * refill - 20
    for page in pages:
        page_pool_put_full_page(kernel, pool, page, False)
    page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()


@pytest.mark.parametrize("release, created", [("7.1", False), ("6.18", True)])
def test_an_order_above_max_page_order(release, created):
    kernel = Kernel(release)
    # MAX_PAGE_ORDER 10: 7.1.3's page_pool_init() refuses order 11 ('net: page_pool: sanitise allocation
    # order'); 6.18 makes the pool, and every allocation from it fails in the page allocator.
    pool, err = page_pool_create(kernel, page_pool_params(order=11))
    if not created:
        assert pool is None and err == -EINVAL
    else:
        assert err == 0
        with kernel.softirq():
            assert page_pool_dev_alloc_pages(kernel, pool) is None
        page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()
