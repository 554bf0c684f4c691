"""Stateful behaviour of the per-CPU caches on the 6.9 profile.

page_frag_cache: PAGE_FRAG_CACHE_MAX_SIZE = 32768 (order 3 on 4K pages), fragments of
SKB_HEAD_ALIGN(len + 64).  NAPI skb cache: NAPI_SKB_CACHE_SIZE 64, BULK 16, FREE (HALF) 32.
"""

from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.net.skbuff import __napi_alloc_skb, napi_consume_skb


def _alloc(kernel, napi, n, length):
    return [__napi_alloc_skb(kernel, napi, length, GFP_ATOMIC) for _ in range(n)]


def test_100_allocations_take_the_predicted_order3_pages(kernel, napi):
    # len 1000 + NET_SKB_PAD 64 = 1064; SKB_HEAD_ALIGN(1064) = ALIGN(1064, 64) + 320 = 1088 + 320 = 1408.
    # One 32768-byte page holds 32768 // 1408 = 23 fragments, so 100 need ceil(100 / 23) = 5 pages.
    with kernel.softirq():
        skbs = _alloc(kernel, napi, 100, 1000)
        assert all(s.path == "page_frag" and s.head_size == 1408 for s in skbs)
        assert kernel.pages.allocated[3] == 5
        nc = kernel.this_cpu().napi_alloc_cache.page
        assert nc.refills == 5 and nc.reuses == 0
        # The last page has 100 - 4 * 23 = 8 fragments out: offset 32768 - 8 * 1408 = 21504.
        assert nc.offset == 21504
        for skb in skbs:
            napi_consume_skb(kernel, skb, 64)
        # Pages 1-4 were released by the cache and are freed with their last fragment.
        assert kernel.pages.freed[3] == 4
        # The next allocation is cut from the page the cache still holds: no new page.
        skb = __napi_alloc_skb(kernel, napi, 1000, GFP_ATOMIC)
        assert kernel.pages.allocated[3] == 5
        assert kernel.pages.virt_to_head_page(skb.head) is nc.page
        napi_consume_skb(kernel, skb, 64)


def test_page_is_reused_in_place_when_all_fragments_came_back(kernel, napi):
    # 23 fragments use the page down to offset 32768 - 23 * 1408 = 384.  Once all 23 are freed
    # the page's count equals the cache's bias, so the 24th allocation reuses the page in place.
    with kernel.softirq():
        skbs = _alloc(kernel, napi, 23, 1000)
        nc = kernel.this_cpu().napi_alloc_cache.page
        page = nc.page
        assert nc.offset == 384
        for skb in skbs:
            napi_consume_skb(kernel, skb, 64)
        skb = __napi_alloc_skb(kernel, napi, 1000, GFP_ATOMIC)
        assert nc.page is page and nc.reuses == 1
        assert kernel.pages.allocated[3] == 1
        # Reset: offset = 32768 - 1408 = 31360; bias = 32769 - 1 = 32768.
        assert nc.offset == 31360 and nc.pagecnt_bias == 32768
        napi_consume_skb(kernel, skb, 64)


def test_page_held_by_an_outstanding_fragment_is_not_reused(kernel, napi):
    with kernel.softirq():
        skbs = _alloc(kernel, napi, 23, 1000)
        keep = skbs.pop()
        for skb in skbs:
            napi_consume_skb(kernel, skb, 64)
        skb = __napi_alloc_skb(kernel, napi, 1000, GFP_ATOMIC)
        # One fragment is still out, so the cache lets the page go and takes a new one.
        assert kernel.pages.allocated[3] == 2
        napi_consume_skb(kernel, keep, 64)
        assert kernel.pages.freed[3] == 1
        napi_consume_skb(kernel, skb, 64)


def test_1k_cache_cuts_a_page_in_four(kernel, napi):
    # PAGE_SIZE / SZ_1K = 4 pieces per order-0 page, handed out from offset 3072 down to 0.
    with kernel.softirq():
        skbs = _alloc(kernel, napi, 5, 100)
        small = kernel.this_cpu().napi_alloc_cache.page_small
        assert kernel.pages.allocated[0] == 2 + 1  # two 1K pages + one skbuff_head_cache slab page
        offsets = [s.head - kernel.pages.page_address(kernel.pages.virt_to_head_page(s.head)) for s in skbs]
        assert offsets == [3072, 2048, 1024, 0, 3072]
        assert small.refills == 2
        first_page = kernel.pages.virt_to_head_page(skbs[0].head)
        assert first_page.refcount == 4  # one reference per piece, none for the cache
        for skb in skbs[:4]:
            napi_consume_skb(kernel, skb, 64)
        assert first_page.refcount == 0
        napi_consume_skb(kernel, skbs[4], 64)


def test_skb_head_cache_refills_16_and_flushes_to_32(kernel, napi):
    with kernel.softirq():
        nc = kernel.this_cpu().napi_alloc_cache
        skbs = _alloc(kernel, napi, 64, 100)
        # 64 gets from an empty cache: a bulk refill of 16 every 16 gets.
        assert nc.refills == 4 and len(nc.skb_cache) == 0
        assert kernel.skbuff_cache.allocs == 64
        for skb in skbs[:63]:
            napi_consume_skb(kernel, skb, 64)
        assert len(nc.skb_cache) == 63 and nc.flushes == 0
        napi_consume_skb(kernel, skbs[63], 64)
        # The 64th put fills the cache (NAPI_SKB_CACHE_SIZE): 32 go back to the slab at once.
        assert nc.flushes == 1 and len(nc.skb_cache) == 32
        assert kernel.skbuff_cache.frees == 32
        skb = __napi_alloc_skb(kernel, napi, 100, GFP_ATOMIC)
        assert nc.refills == 4 and len(nc.skb_cache) == 31  # a hit, no refill
        napi_consume_skb(kernel, skb, 64)


def test_zero_budget_frees_to_the_slab(kernel, napi):
    # napi_consume_skb(skb, 0) is a non-NAPI caller: an ordinary consume_skb, nothing cached.
    with kernel.softirq():
        skb = __napi_alloc_skb(kernel, napi, 100, GFP_ATOMIC)
        cached = len(kernel.this_cpu().napi_alloc_cache.skb_cache)
        napi_consume_skb(kernel, skb, 0)
        assert len(kernel.this_cpu().napi_alloc_cache.skb_cache) == cached
        assert kernel.skbuff_cache.frees == 1


def test_each_cpu_has_its_own_caches(napi):
    from skbsim.kernel import Kernel

    kernel = Kernel("6.9", ncpus=2)
    with kernel.softirq(cpu=0):
        a = __napi_alloc_skb(kernel, napi, 1000, GFP_ATOMIC)
    with kernel.softirq(cpu=1):
        b = __napi_alloc_skb(kernel, napi, 1000, GFP_ATOMIC)
    # Two CPUs, two page_frag_caches, two order-3 pages.
    assert kernel.pages.allocated[3] == 2
    assert kernel.pages.virt_to_head_page(a.head) is not kernel.pages.virt_to_head_page(b.head)
    with kernel.softirq(cpu=1):
        napi_consume_skb(kernel, a, 64)  # freed on another CPU: its sk_buff joins CPU 1's cache
        napi_consume_skb(kernel, b, 64)
    assert len(kernel.cpus[1].napi_alloc_cache.skb_cache) == 15 + 2
    kernel.assert_no_leaks()
