"""Random sequences of page_pool operations keep the pool's books balanced.

A driver takes pages and fragments (page_pool_dev_alloc_pages(),
page_pool_dev_alloc() / page_pool_dev_alloc_frag()), builds recycling skbs
on them or gives them back itself, clones skbs, holds extra page references,
and frees from the pool's NAPI context, from another softirq and from process
context, on any release.  After every step (net/core/page_pool.c):

- every pool page alive in the page allocator is in exactly one place: the
  alloc cache, the ptr_ring, or out with its users (a driver's piece, an
  skb, or the pool's current frag page) - and page_pool_inflight() counts
  exactly those pages;
- the cache never holds more than PP_ALLOC_CACHE_SIZE pages nor the ring
  more than its size, and pages in either have page_ref_count() == 1 and (6.7+)
  pp_ref_count 1;
- a page out with users has one pp_ref_count per user (plus, for the
  current frag page, the references the pool still holds for pieces it has
  not cut);

and once everything is freed and the pool destroyed, the leak check is clean.
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from skbsim.kernel import Kernel
from skbsim.net.napi import napi_list_del, napi_schedule, napi_struct, net_device
from skbsim.net.page_pool import (
    PP_FLAG_DMA_MAP,
    PP_FLAG_PAGE_FRAG,
    page_pool_create,
    page_pool_destroy,
    page_pool_dev_alloc,
    page_pool_dev_alloc_frag,
    page_pool_dev_alloc_pages,
    page_pool_fragment_page,
    page_pool_inflight,
    page_pool_params,
    page_pool_put_full_page,
    page_pool_put_unrefed_page,
    page_pool_unref_page,
    skb_mark_for_recycle,
)
from skbsim.net.skbuff import (
    kfree_skb, napi_build_skb, napi_consume_skb, skb_add_rx_frag, skb_clone, skb_defer_free_flush,
)

RELEASES = ("6.1", "6.9", "6.12", "6.18", "7.1")
CONTEXTS = ("napi", "softirq_other_cpu", "process")


class PagePoolMachine(RuleBasedStateMachine):
    @initialize(release=st.sampled_from(RELEASES), pool_size=st.sampled_from([0, 8, 64]),
                order=st.sampled_from([0, 0, 1]))
    def setup(self, release, pool_size, order):
        self.kernel = Kernel(release, ncpus=2)
        self.napi = napi_struct(net_device("eth0"), cpu=0)
        self.frag_flag = self.kernel.profile.feature("pp_ref_count_rule") == "frag_flag"
        flags = PP_FLAG_DMA_MAP | (PP_FLAG_PAGE_FRAG if self.frag_flag else 0)
        self.pool, err = page_pool_create(self.kernel, page_pool_params(flags=flags, pool_size=pool_size,
                                                                        order=order, napi=self.napi))
        assert err == 0
        self.pieces = []      # (page, offset, size) the driver holds
        self.skbs = []        # skbs the stack holds (clones included)
        self.extra_refs = []  # pages someone holds a page reference on

    # -- the driver takes memory -----------------------------------------------------------------

    @rule()
    def alloc_page(self):
        k = self.kernel
        with k.softirq(0):
            page = page_pool_dev_alloc_pages(k, self.pool)
        if page is not None:
            if self.frag_flag:
                page_pool_fragment_page(page, 1)   # 6.1 frag pools: the driver says "one piece"
            self.pieces.append((page, 0, k.profile.PAGE_SIZE << self.pool.p.order))

    @rule(pieces=st.integers(0, 4))
    def alloc_page_split_by_driver(self, pieces):
        """mlx5's scheme (mlx5e_page_alloc_fragmented() / mlx5e_page_release_fragmented()): charge a
        whole page with MLX5E_PAGECNT_BIAS_MAX = PAGE_SIZE / 64 references, hand out some pieces, then
        drop the references not handed out; if that was all of them the page goes back at once."""
        k = self.kernel
        bias = k.profile.PAGE_SIZE // 64
        with k.softirq(0):
            page = page_pool_dev_alloc_pages(k, self.pool)
            if page is None:
                return
            page_pool_fragment_page(page, bias)
            size = 1024
            for i in range(pieces):
                self.pieces.append((page, i * size, size))
            if page_pool_unref_page(self.pool, page, bias - pieces) == 0:
                page_pool_put_unrefed_page(k, self.pool, page, -1, True)

    @rule(size=st.integers(1, 9000))
    def alloc_fragment(self, size):
        k = self.kernel
        with k.softirq(0):
            if k.profile.has("pp_dev_alloc"):
                page, offset, size = page_pool_dev_alloc(k, self.pool, size)
            else:
                if size > k.profile.PAGE_SIZE << self.pool.p.order:
                    return
                page, offset = page_pool_dev_alloc_frag(k, self.pool, size)
        if page is not None:
            self.pieces.append((page, offset, size))

    # -- skbs ------------------------------------------------------------------------------------

    @precondition(lambda self: self.pieces)
    @rule(index=st.integers(0, 1 << 16), frags=st.integers(0, 3))
    def build_skb(self, index, frags):
        """napi_build_skb() on one piece, skb_add_rx_frag() of up to three more, skb_mark_for_recycle()."""
        k = self.kernel
        page, offset, size = self.pieces.pop(index % len(self.pieces))
        if size < k.profile.SHINFO_SIZE + 64:
            self.pieces.append((page, offset, size))
            return
        with k.softirq(0):
            skb = napi_build_skb(k, k.pages.page_address(page) + offset, size)
        if skb is None:
            self.pieces.append((page, offset, size))
            return
        skb_mark_for_recycle(skb)
        for i in range(min(frags, len(self.pieces))):
            fpage, foffset, fsize = self.pieces.pop()
            skb_add_rx_frag(skb, i, fpage, foffset, min(fsize, 1000), fsize)
        self.skbs.append(skb)

    @precondition(lambda self: self.skbs)
    @rule(index=st.integers(0, 1 << 16))
    def clone(self, index):
        k = self.kernel
        with k.softirq(0):
            n = skb_clone(k, self.skbs[index % len(self.skbs)], 0)
        if n is not None:
            self.skbs.append(n)

    @precondition(lambda self: self.skbs)
    @rule(index=st.integers(0, 1 << 16), where=st.sampled_from(CONTEXTS))
    def free_skb(self, index, where):
        k = self.kernel
        skb = self.skbs.pop(index % len(self.skbs))
        if where == "napi":
            napi_schedule(self.napi, 0)
            with k.softirq(0):
                napi_consume_skb(k, skb, 64)
            napi_list_del(self.napi)
        elif where == "softirq_other_cpu":
            with k.softirq(1):
                napi_consume_skb(k, skb, 64)
            # From 7.1 (napi_consume_defers_alien) an skb allocated on CPU 0 goes back to CPU 0's defer
            # list; CPU 0 frees it at its next NET_RX softirq (skb_defer_free_flush() in net_rx_action()).
            with k.softirq(0):
                skb_defer_free_flush(k)
        else:
            kfree_skb(k, skb)

    # -- the driver gives memory back itself -------------------------------------------------------

    @precondition(lambda self: self.pieces)
    @rule(index=st.integers(0, 1 << 16), direct=st.booleans())
    def put_piece(self, index, direct):
        """page_pool_put_full_page(); allow_direct only when in the pool's NAPI, as drivers do."""
        k = self.kernel
        page, _, _ = self.pieces.pop(index % len(self.pieces))
        if direct:
            napi_schedule(self.napi, 0)
            with k.softirq(0):
                page_pool_put_full_page(k, self.pool, page, True)
            napi_list_del(self.napi)
        else:
            page_pool_put_full_page(k, self.pool, page, False)

    @precondition(lambda self: self.pieces)
    @rule(index=st.integers(0, 1 << 16))
    def hold_page_reference(self, index):
        page = self.pieces[index % len(self.pieces)][0]
        self.kernel.pages.get_page(page)
        self.extra_refs.append(page)

    @precondition(lambda self: self.extra_refs)
    @rule()
    def drop_page_reference(self):
        self.kernel.pages.put_page(self.extra_refs.pop())

    # -- the books ---------------------------------------------------------------------------------

    def _users(self):
        """Page -> the references its users hold (pieces, and each skb's data once per shared info)."""
        users = {}
        for page, _, _ in self.pieces:
            users[id(page)] = users.get(id(page), 0) + 1
        seen = set()
        for skb in self.skbs:
            if id(skb.shinfo) in seen:
                continue
            seen.add(id(skb.shinfo))
            head = self.kernel.pages.virt_to_head_page(skb.head)
            for page in [head] + [frag.page for frag in skb.shinfo.frags]:
                users[id(page)] = users.get(id(page), 0) + 1
        return users

    @invariant()
    def every_page_in_one_place(self):
        if not hasattr(self, "pool"):
            return
        pool = self.pool
        live = [page for page in self.kernel.pages.live.values() if page.pp is pool]
        cached = {id(page) for page in pool.alloc}
        ring = {id(page) for page in pool.ring}
        assert len(cached) == len(pool.alloc) and len(ring) == len(pool.ring) and not cached & ring
        assert len(pool.alloc) <= pool.cache_size and len(pool.ring) <= pool.ring_qsize
        assert page_pool_inflight(pool) == len(live)
        users = self._users()
        for page in live:
            if id(page) in cached or id(page) in ring:
                assert page.refcount == 1 and id(page) not in users
                if not self.frag_flag:
                    assert page.pp_ref_count == 1
                continue
            count = users.get(id(page), 0)
            if page is pool.frag_page:
                # The pool holds BIAS_MAX - frag_users for pieces it has not cut.
                assert page.pp_ref_count == pool.bias_max - pool.frag_users + count
            else:
                assert count >= 1 and (self.frag_flag or page.pp_ref_count == count)

    def teardown(self):
        if not hasattr(self, "pool"):
            return
        k = self.kernel
        for skb in self.skbs:
            kfree_skb(k, skb)
        for page, _, _ in self.pieces:
            page_pool_put_full_page(k, self.pool, page, False)
        for page in self.extra_refs:
            k.pages.put_page(page)
        page_pool_destroy(k, self.pool)
        k.assert_no_leaks()


PagePoolMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=50, deadline=None)
TestPagePoolMachine = PagePoolMachine.TestCase
