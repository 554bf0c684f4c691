"""Fault injection at each layer: the call returns NULL, gives back what it took, and nothing leaks.

The `kernel` fixture runs the leak check when each test ends.
"""

import pytest

from skbsim.mm.fault import FaultRule
from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.net.skbuff import __napi_alloc_skb, __netdev_alloc_skb, alloc_skb, napi_build_skb, napi_consume_skb


# (layer, len): which layer fails for which path.
#  len 100 -> 1K fragment; len 1000 -> page_frag; len 5000 -> kmalloc-8k via __alloc_skb.
@pytest.mark.parametrize(
    "layer,length",
    [
        ("skb_head", 100),    # napi_skb_cache_get's bulk refill fails after the 1K piece was taken
        ("skb_head", 1000),   # ... after the page fragment was taken
        ("skb_head", 5000),   # __alloc_skb: no sk_buff, nothing else taken yet
        ("skb_data", 5000),   # kmalloc of the head fails: the sk_buff goes back
        ("page_frag", 100),   # the 1K cache gets no page
        ("page_frag", 1000),  # the page_frag_cache gets neither the order-3 nor the order-0 page
        ("page_alloc", 1000),
        ("slab", 5000),
    ],
)
def test_layer_failure_returns_null_and_frees(kernel, napi, layer, length):
    kernel.faults.fail_nth(layer, nth=1, times=1000)
    with kernel.softirq():
        assert __napi_alloc_skb(kernel, napi, length, GFP_ATOMIC) is None
    assert kernel.faults.injected[layer] >= 1
    assert not kernel.live_skbs


def test_fragment_is_given_back_when_the_skb_head_fails(kernel, napi):
    with kernel.softirq():
        ok = __napi_alloc_skb(kernel, napi, 1000, GFP_ATOMIC)  # warms the page_frag_cache
        cache = kernel.this_cpu().napi_alloc_cache
        napi_consume_skb(kernel, ok, 64)
        # Empty the skb cache so the next get must refill, then make the refill fail.
        kernel.slab.kmem_cache_free_bulk(kernel.skbuff_cache, cache.skb_cache)
        cache.skb_cache.clear()
        page = cache.page.page
        before = page.refcount
        kernel.faults.fail_nth("skb_head")
        assert __napi_alloc_skb(kernel, napi, 1000, GFP_ATOMIC) is None
        # The fragment was taken (bias down by one) and freed (refcount down by one).
        assert page.refcount == before - 1


def test_nth_failure_only(kernel, napi):
    # The 1K cache asks for a page on calls 1 and 5 (four 1K pieces per 4K page) and, after the
    # failure on call 5, again on call 6.  Failing only the 2nd page_frag attempt gives
    # four successes, one NULL, then successes again from a new page.
    kernel.faults.fail_nth("page_frag", nth=2, times=1)
    with kernel.softirq():
        results = [__napi_alloc_skb(kernel, napi, 100, GFP_ATOMIC) for _ in range(8)]
        assert [r is not None for r in results] == [True] * 4 + [False] + [True] * 3
        for skb in filter(None, results):
            napi_consume_skb(kernel, skb, 64)
    assert kernel.faults.injected["page_frag"] == 1


def test_probability_rule_is_deterministic_for_a_seed(napi):
    from skbsim.kernel import Kernel

    def run(seed):
        k = Kernel("6.9", seed=seed)
        k.faults.set("page_frag", FaultRule(probability=0.5))
        outcomes = []
        with k.softirq():
            for _ in range(40):
                skb = __napi_alloc_skb(k, napi, 100, GFP_ATOMIC)
                outcomes.append(skb is not None)
                if skb:
                    napi_consume_skb(k, skb, 64)
        k.assert_no_leaks()
        return outcomes

    assert run(7) == run(7)
    assert False in run(7) and True in run(7)


def test_alloc_skb_and_netdev_paths_fail_cleanly(kernel, napi):
    kernel.faults.fail_nth("skb_head", times=2)
    assert alloc_skb(kernel, 100, GFP_ATOMIC) is None
    assert __netdev_alloc_skb(kernel, napi.dev, 1000, GFP_ATOMIC) is None


def test_napi_build_skb_without_head_leaves_buffer_to_caller(kernel):
    page = kernel.pages.alloc_pages(GFP_ATOMIC, 0, "driver")
    kernel.faults.fail_nth("skb_head")
    with kernel.softirq():
        assert napi_build_skb(kernel, kernel.pages.page_address(page), 2048) is None
    kernel.pages.put_page(page)  # the driver still owns its buffer
