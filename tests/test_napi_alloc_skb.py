"""__napi_alloc_skb() on the 6.9 profile, at every boundary of the seed's code.

Constants of the 6.9 profile (x86_64, 4K pages, L1 64, MAX_HEADER 176), by hand:
  NET_SKB_PAD           = max(32, L1_CACHE_BYTES)              = 64
  NET_IP_ALIGN          = 0 (x86)
  SHINFO                = SKB_DATA_ALIGN(sizeof(skb_shared_info)) = ALIGN(320, 64) = 320
  SKB_WITH_OVERHEAD(1K) = 1024 - 320                            = 704
  SKB_WITH_OVERHEAD(4K) = 4096 - 320                            = 3776
  SKB_TRUESIZE(x)       = x + ALIGN(232, 64) + 320              = x + 576
  MAX_TCP_HEADER        = L1_CACHE_ALIGN(128 + 176)             = 320
  SKB_SMALL_HEAD_SIZE   = SKB_HEAD_ALIGN(320) = 320 + 320       = 640 (not a power of two,
                          so SKB_SMALL_HEAD_CACHE_SIZE = 640, SKB_SMALL_HEAD_HEADROOM = 320)
  KMALLOC_MAX_CACHE_SIZE = 8192; KMALLOC_MAX_SIZE = 1 << (10 + 12) = 4 MiB
"""

import pytest

from skbsim.mm.gfp import GFP_ATOMIC, GFP_DMA, GFP_KERNEL
from skbsim.net.skbuff import (
    __napi_alloc_skb,
    kfree_skb,
    napi_alloc_skb,
    napi_consume_skb,
    skb_end_offset,
    skb_headroom,
    skb_tailroom,
)

# (len, gfp, path, head_source, head_size, end_offset, truesize)
# end_offset = head_size - 320; truesize = end_offset + 576; headroom = 64; tailroom = end - 64.
CASES = [
    # 0 + 64 = 64 <= 704: a 1K fragment; end = 1024 - 320 = 704; truesize = 704 + 576 = 1280
    (0, GFP_ATOMIC, "page_frag_1k", "page_frag_1k", 1024, 704, 1280),
    # 640 + 64 = 704 <= 704: still the 1K fragment
    (640, GFP_ATOMIC, "page_frag_1k", "page_frag_1k", 1024, 704, 1280),
    # 641 + 64 = 705 > 704: SKB_HEAD_ALIGN(705) = ALIGN(705, 64) + 320 = 768 + 320 = 1088;
    # end = 768; truesize = 768 + 576 = 1344
    (641, GFP_ATOMIC, "page_frag", "page_frag", 1088, 768, 1344),
    # 3712 + 64 = 3776 <= 3776: SKB_HEAD_ALIGN(3776) = 3776 + 320 = 4096; end 3776; truesize 4352
    (3712, GFP_ATOMIC, "page_frag", "page_frag", 4096, 3776, 4352),
    # 3713 + 64 = 3777 > 3776: __alloc_skb; SKB_HEAD_ALIGN(3777) = 3840 + 320 = 4160 > 640,
    # kmalloc_size_roundup(4160) = 8192 (kmalloc-8k); end = 7872; truesize = 8448
    (3713, GFP_ATOMIC, "kmalloc", "kmalloc-8k", 8192, 7872, 8448),
    # 9000 + 64 = 9064: SKB_HEAD_ALIGN = 9088 + 320 = 9408 > 8192, so a page-backed kmalloc:
    # PAGE_SIZE << get_order(9408) = 16384 (order 2); end = 16064; truesize = 16640
    (9000, GFP_ATOMIC, "kmalloc", "pages-order-2", 16384, 16064, 16640),
    # Largest that works: 4193920 + 64 = 4193984 (a multiple of 64) + 320 = 4194304 = KMALLOC_MAX_SIZE
    # -> order 10 = MAX_PAGE_ORDER; end = 4193984; truesize = 4193984 + 576 = 4194560
    (4193920, GFP_ATOMIC, "kmalloc", "pages-order-10", 4194304, 4193984, 4194560),
    # GFP_KERNEL has __GFP_DIRECT_RECLAIM: kmalloc path even for 100 bytes.  100 + 64 = 164,
    # SKB_HEAD_ALIGN(164) = 192 + 320 = 512 <= 640: skbuff_small_head, size 640; end = 320; truesize 896
    (100, GFP_KERNEL, "kmalloc", "skbuff_small_head", 640, 320, 896),
    # GFP_DMA: kmalloc path, and __GFP_DMA is a KMALLOC_NOT_NORMAL_BIT so no small-head cache:
    # kmalloc_size_roundup(512) = 512 from dma-kmalloc-512; end = 192; truesize = 768
    (100, GFP_DMA, "kmalloc", "dma-kmalloc-512", 512, 192, 768),
    # u32 wrap: 4294967295 + 64 = 63 (mod 2^32) <= 704: the 1K fragment, as the kernel would do
    (4294967295, GFP_ATOMIC, "page_frag_1k", "page_frag_1k", 1024, 704, 1280),
]


@pytest.mark.parametrize("length,gfp,path,source,head_size,end,truesize", CASES)
def test_boundaries(kernel, napi, length, gfp, path, source, head_size, end, truesize):
    with kernel.softirq():
        skb = __napi_alloc_skb(kernel, napi, length, gfp)
        assert skb is not None
        assert (skb.path, skb.head_source, skb.head_size) == (path, source, head_size)
        assert skb_end_offset(skb) == end
        assert skb.truesize == truesize
        assert skb_headroom(skb) == 64  # NET_SKB_PAD + NET_IP_ALIGN
        assert skb_tailroom(skb) == end - 64
        assert skb.len == 0 and skb.data_len == 0
        assert skb.head_frag == (path != "kmalloc")
        assert skb.skb_from == "napi_skb_cache"  # SKB_ALLOC_NAPI without FCLONE, or __napi_build_skb
        assert skb.dev is napi.dev
        napi_consume_skb(kernel, skb, 64)
    assert not kernel.warnings


def test_length_that_fails(kernel, napi):
    # 4193921 + 64 = 4193985 -> ALIGN 4194048 + 320 = 4194368 > KMALLOC_MAX_SIZE (4194304):
    # kmalloc_size_roundup() returns it unchanged and kmalloc needs order 11 > MAX_PAGE_ORDER 10.
    with kernel.softirq():
        assert __napi_alloc_skb(kernel, napi, 4193921, GFP_ATOMIC) is None
    assert kernel.pages.failed[11] == 1


def test_napi_alloc_skb_is_gfp_atomic(kernel, napi):
    with kernel.softirq():
        skb = napi_alloc_skb(kernel, napi, 256)
        # 256 + 64 = 320 <= 704: 1K fragment
        assert skb.path == "page_frag_1k"
        kfree_skb(kernel, skb)


def test_outside_softirq_warns_once(kernel, napi):
    # DEBUG_NET_WARN_ON_ONCE(!in_softirq()): recorded once, the allocation still happens.
    for _ in range(3):
        skb = __napi_alloc_skb(kernel, napi, 100, GFP_ATOMIC)
        kfree_skb(kernel, skb)
    assert len(kernel.warnings) == 1 and "outside softirq" in kernel.warnings[0]


def _warm_then_starve(kernel):
    """Warm the skb head cache, then leave only the emergency reserves."""
    with kernel.softirq():
        from skbsim.net.napi import napi_skb_cache_get, napi_skb_cache_put

        napi_skb_cache_put(kernel, napi_skb_cache_get(kernel))
    kernel.pages.limit_pages = kernel.pages.in_use
    kernel.pages.reserve_pages = 64


def test_memalloc_socks_takes_a_reserve_page(kernel, napi):
    # With sk_memalloc_socks(), __napi_alloc_skb adds __GFP_MEMALLOC; the 1K cache's new order-0
    # page can then only come from the reserves, so it is pfmemalloc and so is the skb.
    _warm_then_starve(kernel)
    kernel.memalloc_socks = True
    with kernel.softirq():
        skb = __napi_alloc_skb(kernel, napi, 256, GFP_ATOMIC)
        assert skb is not None and skb.path == "page_frag_1k"
        assert skb.pfmemalloc
        assert kernel.pages.pfmemalloc_pages == 1
        napi_consume_skb(kernel, skb, 64)


def test_without_memalloc_socks_low_memory_is_null(kernel, napi):
    _warm_then_starve(kernel)
    with kernel.softirq():
        assert __napi_alloc_skb(kernel, napi, 256, GFP_ATOMIC) is None


def test_memalloc_kmalloc_retry_marks_pfmemalloc(kernel, napi):
    # kmalloc_reserve(): the first try adds __GFP_NOMEMALLOC and fails (a new skbuff_small_head
    # slab is needed); __GFP_MEMALLOC (from sk_memalloc_socks + SKB_ALLOC_RX) allows a retry
    # from the reserves, and the skb is marked pfmemalloc.
    _warm_then_starve(kernel)
    kernel.memalloc_socks = True
    with kernel.softirq():
        skb = __napi_alloc_skb(kernel, napi, 100, GFP_KERNEL)
        assert skb.head_source == "skbuff_small_head" and skb.pfmemalloc
        napi_consume_skb(kernel, skb, 64)
