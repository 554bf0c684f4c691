"""Clones, fast clones, frags and the non-NAPI allocators, on the 6.9 profile."""

import pytest

from skbsim.errors import KernelBug, SkbOverPanic, SkbUnderPanic
from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.net.skbuff import (
    SKB_FCLONE_CLONE,
    SKB_FCLONE_ORIG,
    __netdev_alloc_skb,
    alloc_skb,
    alloc_skb_fclone,
    build_skb,
    consume_skb,
    kfree_skb,
    napi_alloc_frag,
    netdev_alloc_frag,
    pskb_trim_rcsum,
    skb_add_rx_frag,
    skb_clone,
    skb_coalesce_rx_frag,
    skb_pull,
    skb_push,
    skb_put,
    skb_reserve,
)


def test_clone_shares_the_head_until_the_last_user(kernel):
    skb = alloc_skb(kernel, 100, GFP_ATOMIC)
    clone = skb_clone(kernel, skb, GFP_ATOMIC)
    assert clone.head == skb.head and clone.shinfo is skb.shinfo
    assert skb.shinfo.dataref == 2 and skb.cloned and clone.cloned
    assert clone.skb_from == "skbuff_head_cache"
    kfree_skb(kernel, skb)
    # The head is still there for the clone.
    assert kernel.skb_small_head_cache.active == 1
    consume_skb(kernel, clone)
    assert kernel.skb_small_head_cache.active == 0


def test_fclone_uses_its_companion(kernel):
    skb = alloc_skb_fclone(kernel, 100, GFP_ATOMIC)
    assert skb.fclone == SKB_FCLONE_ORIG and skb.skb_from == "skbuff_fclone_cache"
    clone = skb_clone(kernel, skb, GFP_ATOMIC)
    assert clone.fclone == SKB_FCLONE_CLONE
    assert kernel.skbuff_fclone_cache.active == 1 and kernel.skbuff_cache.active == 0
    # A second clone cannot use the companion: it comes from skbuff_head_cache.
    second = skb_clone(kernel, skb, GFP_ATOMIC)
    assert second.skb_from == "skbuff_head_cache"
    for s in (clone, skb, second):
        kfree_skb(kernel, s)
    assert kernel.skbuff_fclone_cache.active == 0


def test_netdev_alloc_skb_picks_the_cache_by_context(kernel):
    # 1000 + NET_SKB_PAD 64 = 1064 in (704, 3776]: a fragment of SKB_HEAD_ALIGN(1064) = 1408.
    skb = __netdev_alloc_skb(kernel, None, 1000, GFP_ATOMIC)
    assert skb.head_source == "page_frag" and skb.head_size == 1408 and skb.skb_from == "skbuff_head_cache"
    with kernel.hardirq():
        hard = __netdev_alloc_skb(kernel, None, 1000, GFP_ATOMIC)
    assert hard.head_source == "netdev_page_frag"
    # 100 + 64 = 164 <= 704: no 1K cache outside NAPI, so kmalloc (small head, 640 bytes).
    small = __netdev_alloc_skb(kernel, None, 100, GFP_ATOMIC)
    assert small.head_source == "skbuff_small_head"
    for s in (skb, hard, small):
        consume_skb(kernel, s)


def test_frag_allocators_align_to_cache_lines(kernel):
    # SKB_DATA_ALIGN(100) = 128: two fragments 128 bytes apart, cut downwards.
    with kernel.softirq():
        a = napi_alloc_frag(kernel, 100)
        b = napi_alloc_frag(kernel, 100)
    assert a - b == 128
    c = netdev_alloc_frag(kernel, 100)
    assert b - c == 128  # same per-CPU NAPI cache, taken under local_bh_disable()
    for addr in (a, b, c):
        kernel.pages.put_page(kernel.pages.virt_to_head_page(addr))


def test_build_skb_and_rx_frags_account_truesize(kernel):
    page = kernel.pages.alloc_pages(GFP_ATOMIC, 0, "driver")
    data = kernel.pages.page_address(page)
    # build_skb(data, 2048): end = 2048 - 320 = 1728; truesize = SKB_TRUESIZE(1728) = 1728 + 576 = 2304.
    skb = build_skb(kernel, data, 2048)
    assert skb.truesize == 2304 and skb.head_frag
    skb_reserve(skb, 64)
    skb_put(skb, 100)
    frag_page = kernel.pages.alloc_pages(GFP_ATOMIC, 0, "driver")
    skb_add_rx_frag(skb, 0, frag_page, 0, 1000, 2048)
    skb_coalesce_rx_frag(skb, 0, 500, 0)
    assert (skb.len, skb.data_len, skb.truesize) == (1600, 1500, 2304 + 2048)
    with pytest.raises(KernelBug):
        skb_put(skb, 1)  # SKB_LINEAR_ASSERT: the skb is non-linear now
    with pytest.raises(KernelBug):
        skb_pull(skb, 101)  # past the 100-byte linear part
    assert skb_pull(skb, 5000) is None  # more than skb->len: refused, not a BUG
    kfree_skb(kernel, skb)


def test_over_and_under_panic(kernel):
    skb = alloc_skb(kernel, 100, GFP_ATOMIC)
    with pytest.raises(SkbUnderPanic):
        skb_push(skb, 1)
    skb.data += 1  # undo what the failed push did (the kernel would be dead by now)
    skb.len -= 1
    with pytest.raises(SkbOverPanic):
        skb_put(skb, skb.end + 1)
    kfree_skb(kernel, skb)


def _paged_skb(kernel, frag_sizes):
    """An skb with a 100-byte linear part (build_skb over half a page) and one page per frag."""
    data = kernel.pages.page_address(kernel.pages.alloc_pages(GFP_ATOMIC, 0, "driver"))
    skb = build_skb(kernel, data, 2048)
    skb_reserve(skb, 64)
    skb_put(skb, 100)
    for i, size in enumerate(frag_sizes):
        skb_add_rx_frag(skb, i, kernel.pages.alloc_pages(GFP_ATOMIC, 0, "driver"), 0, size, 4096)
    return skb


def test_pskb_trim_into_the_frag_list_keeps_the_frags(kernel):
    # head 100 + frags 1000 + 1000, then a frag_list of two skbs of 100 + 500 bytes each (len 600):
    # offsets 0..100 head, ..1100, ..2100 frags, ..2700 first member, ..3300 second.  Trimming to 2400
    # cuts the first member to 300 bytes (2400 - 2100) and frees the second; the frags stay whole
    # (net/core/skbuff.c ___pskb_trim(): only a cut in the head or the frags drops the frag_list).  The
    # member belongs to no socket, so its own trim condenses it: its 200 paged bytes fit its tailroom.
    skb = _paged_skb(kernel, [1000, 1000])
    members = [_paged_skb(kernel, [500]) for _ in range(2)]
    skb.shinfo.frag_list = members
    for member in members:
        skb.len += member.len
        skb.data_len += member.len
    skb.sk = object()  # owned: no skb_condense() afterwards
    assert pskb_trim_rcsum(kernel, skb, 2400) == 0
    assert [frag.size for frag in skb.shinfo.frags] == [1000, 1000]
    assert skb.shinfo.frag_list == [members[0]] and (members[0].len, members[0].data_len) == (300, 0)
    assert (skb.len, skb.data_len) == (2400, 2300)
    skb.sk = None
    kfree_skb(kernel, skb)


def test_pskb_trim_into_the_head_drops_frags_and_frag_list(kernel):
    # Trimming to 60 (inside the 100-byte head) drops both frags and the whole frag_list; the skb
    # belongs to no socket, so skb_condense() makes its truesize the head's: SKB_TRUESIZE(1728) = 2304.
    skb = _paged_skb(kernel, [1000, 1000])
    member = _paged_skb(kernel, [500])
    skb.shinfo.frag_list = [member]
    skb.len += member.len
    skb.data_len += member.len
    pskb_trim_rcsum(kernel, skb, 60)
    assert (skb.len, skb.data_len, skb.shinfo.frags, skb.shinfo.frag_list) == (60, 0, [], None)
    assert skb.truesize == 2304
    kfree_skb(kernel, skb)


@pytest.mark.parametrize("limit, waiting", [("skb_defer_max", 64), ("skb_defer_max_minus_1", 63)])
def test_defer_list_limit_and_the_ipi_at_half_capacity(limit, waiting):
    # skb_attempt_defer_free() on CPU 0 of 100 skbs allocated on CPU 1 (skb_defer_max 64): up to 6.17
    # the count is checked before it is raised, so 64 wait; 6.18 raises it first, so 63 wait (the 64th
    # call sees 64 >= 64).  The rest are freed on CPU 0, into its NAPI skb cache.  The skb that finds
    # 64 >> 1 = 32 waiting (the 33rd) sends CPU 1 one IPI, and no other is sent while it is on its way;
    # taking it frees CPU 1's list into CPU 1's NAPI cache.
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import defer_ipi, napi_alloc_skb, skb_attempt_defer_free
    from skbsim.profile import load_profile

    profile = load_profile("6.18").derive(origin="test", features={"skb_defer_limit": limit})
    kernel = Kernel(profile, ncpus=2)
    napi = napi_struct(net_device("eth0"), cpu=1)
    with kernel.softirq(1):
        skbs = [napi_alloc_skb(kernel, napi, 60) for _ in range(100)]
    ipis = []
    with kernel.on_cpu(0):
        for n, skb in enumerate(skbs, 1):
            skb_attempt_defer_free(kernel, skb)
            if kernel.ipis and not ipis:
                ipis.append(n)
    assert ipis == [33] and kernel.ipis == [1] and kernel.cpus[1].defer_ipi_scheduled
    assert len(kernel.cpus[1].defer_list) == waiting
    assert kernel.cpus[0].napi_alloc_cache.puts == 100 - waiting
    puts = kernel.cpus[1].napi_alloc_cache.puts
    kernel.ipis.clear()
    with kernel.softirq(1):
        defer_ipi(kernel)
    assert not kernel.cpus[1].defer_list and not kernel.cpus[1].defer_ipi_scheduled
    assert kernel.cpus[1].napi_alloc_cache.puts == puts + waiting
    kernel.assert_no_leaks()
