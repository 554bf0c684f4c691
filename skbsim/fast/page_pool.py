"""The fast engine's page_pool: allocation cache, ptr_ring, fragments, recycling and destroy, compiled.

skbsim/net/page_pool.py over the PagePool record (skbsim.fast.state): a row of PP_* columns per
pool (its constants, state and statistics), its cache and ring as page ids, and page->pp and
page->pp_ref_count by page id.  A pool is a row number p (the driver's queue's pool).  Each
function mirrors the model function named in its docstring, step for step, and counts the
statistics where the model counts them.

The model's statistics are read once the queues are closed (Simulation._finish), so a pool counts
nothing once destroyed: what skbs give back later (Kernel.drain()) goes to the page allocator, as
page_pool_release_retry() does with it in the model.
"""

from __future__ import annotations

from skbsim.fast.layout import ERR_BUG, FL_TAG, L_NONE, L_PAGE_ALLOC, ORDER_0, njit
from skbsim.fast.mm import _alloc_pages, _fails, _fl_give, _put_page, _take_page
from skbsim.fast.rules import _page_pool_alloc_size, _pp_napi_local, _pp_recycle_direct, _pp_ref_count_unref
from skbsim.fast.state import (
    ERR, PAGE_REF, PAGE_SIZE, PP_ALLOC_EMPTY, PP_ALLOC_FAST, PP_ALLOC_REFILL, PP_ALLOC_SLOW, PP_ALLOC_SLOW_HO,
    PP_BIAS_MAX, PP_CACHED_ON_REUSE, PP_CACHE_LEN, PP_CACHE_SIZE, PP_DESTROYED, PP_DIRECT, PP_DIRECT_EVERY_PUT,
    PP_DIRECT_SKB_FREE, PP_FRAG_ALIGN, PP_FRAG_COUNTED, PP_FRAG_OFFSET, PP_FRAG_PAGE, PP_FRAG_USERS, PP_HOLD,
    PP_NAPI_CPU, PP_ORDER, PP_QSIZE, PP_RECYCLE_CACHED, PP_RECYCLE_CACHE_FULL, PP_RECYCLE_RELEASED_REF,
    PP_RECYCLE_RING, PP_RECYCLE_RING_FULL, PP_REFILL, PP_REF_ALWAYS, PP_RELEASE, PP_RING_HEAD, PP_RING_LEN,
    PP_SOFTIRQ, SCHEDULED,
)
from skbsim.fast.state import PP_SKBS_UNMARKED  # -- mlx5 --

# -- counters ------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _pp_count(pool, stat):
    """One more of a pool's statistics (pool: its row), while the pool lives (see the module's docstring)."""
    if pool[PP_DESTROYED] == 0:
        pool[stat] += 1


# -- fragment references (include/net/page_pool/helpers.h) ---------------------------------------------------


@njit(cache=True, forceinline=True)
def _pp_unref_page(pp, pool, pid, nr):
    """page_pool_unref_page(): nr fragment references less (pp_ref_count_unref()); what is left."""
    count = pp.ref[pid]
    pp.ref[pid] = _pp_ref_count_unref(count, nr, pool[PP_REF_ALWAYS] != 0)
    return count - nr


@njit(cache=True, forceinline=True)
def _pp_is_last_ref(pp, pool, pid):
    """page_pool_is_last_ref(): 6.1 pools without PP_FLAG_PAGE_FRAG do not count fragments."""
    if pool[PP_FRAG_COUNTED] == 0:
        return True
    return _pp_unref_page(pp, pool, pid, 1) == 0


# -- allocation ----------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _pp_got_page(k, p, pid):
    """The part of the slow path every new page shares: page_pool_set_pp_info() (6.7+: pp_ref_count 1) and
    pages_state_hold_cnt."""
    pool = k.pp.pool[p]
    k.pp.pp[pid] = p + 1
    if pool[PP_REF_ALWAYS]:
        k.pp.ref[pid] = 1
    pool[PP_HOLD] += 1


@njit(cache=True)
def _pp_refill_alloc_cache(k, p):
    """page_pool_refill_alloc_cache(): up to PP_ALLOC_CACHE_REFILL pages from the ring into the cache (every
    page is of the pool's node here); one of them, or -1 when the ring was empty (alloc_empty)."""
    pool = k.pp.pool[p]
    cache = k.pp.cache[p]
    ring = k.pp.ring[p]
    if pool[PP_RING_LEN] == 0:
        _pp_count(pool, PP_ALLOC_EMPTY)
        return -1
    while pool[PP_RING_LEN] > 0:
        head = pool[PP_RING_HEAD]
        cache[pool[PP_CACHE_LEN]] = ring[head]
        pool[PP_CACHE_LEN] += 1
        pool[PP_RING_HEAD] = head + 1 if head + 1 < pool[PP_QSIZE] else 0
        pool[PP_RING_LEN] -= 1
        if pool[PP_CACHE_LEN] >= pool[PP_REFILL]:
            break
    _pp_count(pool, PP_ALLOC_REFILL)
    pool[PP_CACHE_LEN] -= 1
    return cache[pool[PP_CACHE_LEN]]


@njit(cache=True)
def _pp_alloc_pages_slow(k, p):
    """__page_pool_alloc_pages_slow(): one compound page for a pool of order > 0 (alloc_slow_ho); for order 0,
    alloc_pages_bulk_node() of PP_ALLOC_CACHE_REFILL pages into the cache (alloc_slow), one returned.  The
    bulk path asks the page_alloc fault layer once and, refused, takes one ordinary page."""
    pool = k.pp.pool[p]
    pages = k.pages
    if pool[PP_ORDER] > 0:
        pid = _alloc_pages(pages, k.faults, k.st, pool[PP_ORDER], L_NONE)
        if pid < 0:
            return -1
        _pp_count(pool, PP_ALLOC_SLOW_HO)
        _pp_got_page(k, p, pid)
        return pid
    cache = k.pp.cache[p]
    if _fails(k.faults, k.st, L_PAGE_ALLOC):
        pid = _alloc_pages(pages, k.faults, k.st, ORDER_0, L_NONE)
        if pid < 0:
            return -1
        _pp_got_page(k, p, pid)
        cache[pool[PP_CACHE_LEN]] = pid
        pool[PP_CACHE_LEN] += 1
    else:
        for _ in range(pool[PP_REFILL]):
            pid = _take_page(pages, k.st, ORDER_0)
            if pid < 0:
                return -1
            _pp_got_page(k, p, pid)
            cache[pool[PP_CACHE_LEN]] = pid
            pool[PP_CACHE_LEN] += 1
    _pp_count(pool, PP_ALLOC_SLOW)
    pool[PP_CACHE_LEN] -= 1
    return cache[pool[PP_CACHE_LEN]]


@njit(cache=True, forceinline=True)
def _pp_alloc_pages(k, p):
    """page_pool_alloc_pages() (6.12+: page_pool_alloc_netmems()): the cache (alloc_fast), a refill from the
    ring, else the slow path; a page id, or -1."""
    pool = k.pp.pool[p]
    if pool[PP_CACHE_LEN] > 0:
        _pp_count(pool, PP_ALLOC_FAST)
        pool[PP_CACHE_LEN] -= 1
        return k.pp.cache[p, pool[PP_CACHE_LEN]]
    pid = _pp_refill_alloc_cache(k, p)
    if pid >= 0:
        return pid
    return _pp_alloc_pages_slow(k, p)


@njit(cache=True, forceinline=True)
def _pp_frag_reset(k, pool, pid, size):
    """The frag_reset label: the page starts over with one user and BIAS_MAX references."""
    pool[PP_FRAG_USERS] = 1
    pool[PP_FRAG_OFFSET] = size
    k.pp.ref[pid] = pool[PP_BIAS_MAX]
    return pid


@njit(cache=True)
def _pp_drain_frag(k, p, pid):
    """page_pool_drain_frag(): the pool's unused references on its full frag page dropped; the page back for
    reuse when that was the last (it is its only owner here), else -1 (its last fragment recycles it)."""
    pool = k.pp.pool[p]
    if _pp_unref_page(k.pp, pool, pid, pool[PP_BIAS_MAX] - pool[PP_FRAG_USERS]) != 0:
        return -1
    if k.pages.page[pid, PAGE_REF] == 1:
        return pid
    _pp_return_page(k, p, pid)
    return -1


@njit(cache=True, forceinline=True)
def _pp_alloc_frag(k, p, size):
    """page_pool_alloc_frag(): the page of a fragment of size bytes (aligned), cut from offset 0 upwards; a
    full frag page is drained (and reused at once when every fragment came back) or left to its users;
    -1 when no page could be had."""
    pool = k.pp.pool[p]
    max_size = k.cfg[PAGE_SIZE] << pool[PP_ORDER]
    align = pool[PP_FRAG_ALIGN]
    size = (size + align - 1) & ~(align - 1)
    pid = pool[PP_FRAG_PAGE]
    offset = pool[PP_FRAG_OFFSET]
    if pid >= 0 and offset + size > max_size:
        pid = _pp_drain_frag(k, p, pid)
        if pid >= 0:
            if pool[PP_CACHED_ON_REUSE]:
                _pp_count(pool, PP_RECYCLE_CACHED)
            _pp_count(pool, PP_ALLOC_FAST)
            return _pp_frag_reset(k, pool, pid, size)
    if pid < 0:
        pid = _pp_alloc_pages(k, p)
        pool[PP_FRAG_PAGE] = pid
        if pid < 0:
            return -1
        return _pp_frag_reset(k, pool, pid, size)
    pool[PP_FRAG_USERS] += 1
    pool[PP_FRAG_OFFSET] = offset + size
    if pool[PP_CACHED_ON_REUSE] == 0:
        _pp_count(pool, PP_ALLOC_FAST)
    return pid


@njit(cache=True, forceinline=True)
def _pp_dev_alloc(k, p, size):
    """page_pool_dev_alloc(): more than half a page takes a whole page (offset 0, the page's size); else a
    fragment, the rest of its page folded in when a next one would not fit (page_pool_alloc_size()).
    (page id, size), the id -1 when no page could be had."""
    pool = k.pp.pool[p]
    max_size = k.cfg[PAGE_SIZE] << pool[PP_ORDER]
    if size << 1 > max_size:
        return _pp_alloc_pages(k, p), max_size
    pid = _pp_alloc_frag(k, p, size)
    if pid < 0:
        return -1, size
    align = pool[PP_FRAG_ALIGN]
    offset = pool[PP_FRAG_OFFSET] - ((size + align - 1) & ~(align - 1))
    folded = _page_pool_alloc_size(pool[PP_FRAG_OFFSET], offset, size, max_size)
    if folded != size:
        pool[PP_FRAG_OFFSET] = max_size
    return pid, folded


# -- giving pages back ---------------------------------------------------------------------------------------


@njit(cache=True)
def _pp_return_page(k, p, pid):
    """page_pool_return_page(): the page leaves the pool (pp info cleared, release count raised), put_page()."""
    k.pp.pp[pid] = 0
    k.pp.pool[p, PP_RELEASE] += 1
    _put_page(k.pages, k.st, pid)


@njit(cache=True, forceinline=True)
def _pp_napi_local_here(k, pool):
    """page_pool_napi_local() in the current context (st[PP_SOFTIRQ]): the pool's NAPI instance is on this
    CPU's poll list (its CPU's NAPI scheduled; none once the pool is destroyed).  The pools here have no
    cpuid (-1)."""
    here = k.st[PP_SOFTIRQ] - 1
    napi_cpu = pool[PP_NAPI_CPU]
    owner = -1
    if pool[PP_DESTROYED] == 0 and napi_cpu >= 0 and k.pcpu[napi_cpu, SCHEDULED]:
        owner = napi_cpu
    return _pp_napi_local(here >= 0, here, -1, owner)


@njit(cache=True)
def _pp_put_unrefed_page(k, p, pid, allow_direct):
    """page_pool_put_unrefed_page() with __page_pool_put_page(): a recyclable page into the cache when
    allowed (6.10+ asks page_pool_napi_local() itself), else into the ring; the ring full, or a page shared
    with someone else, back to the page allocator."""
    pool = k.pp.pool[p]
    if pool[PP_DESTROYED]:
        _pp_return_page(k, p, pid)  # page_pool_release_retry() would free it: the pool counts nothing now
        return
    if not allow_direct and pool[PP_DIRECT] == PP_DIRECT_EVERY_PUT:
        allow_direct = _pp_napi_local_here(k, pool)
    if k.pages.page[pid, PAGE_REF] != 1:
        _pp_count(pool, PP_RECYCLE_RELEASED_REF)
        _pp_return_page(k, p, pid)
        return
    if _pp_recycle_direct(allow_direct, pool[PP_DIRECT] == PP_DIRECT_EVERY_PUT, k.st[PP_SOFTIRQ] > 0):
        if pool[PP_CACHE_LEN] < pool[PP_CACHE_SIZE]:
            k.pp.cache[p, pool[PP_CACHE_LEN]] = pid
            pool[PP_CACHE_LEN] += 1
            _pp_count(pool, PP_RECYCLE_CACHED)
            return
        _pp_count(pool, PP_RECYCLE_CACHE_FULL)
    if pool[PP_RING_LEN] >= pool[PP_QSIZE]:
        _pp_count(pool, PP_RECYCLE_RING_FULL)
        _pp_return_page(k, p, pid)
        return
    tail = pool[PP_RING_HEAD] + pool[PP_RING_LEN]
    k.pp.ring[p, tail - pool[PP_QSIZE] if tail >= pool[PP_QSIZE] else tail] = pid
    pool[PP_RING_LEN] += 1
    _pp_count(pool, PP_RECYCLE_RING)


@njit(cache=True, forceinline=True)
def _pp_put_page(k, p, pid, allow_direct):
    """page_pool_put_page() (and put_full_page, recycle_direct, free_va): one fragment reference less; the
    last one recycles the page."""
    if _pp_is_last_ref(k.pp, k.pp.pool[p], pid):
        _pp_put_unrefed_page(k, p, pid, allow_direct)


@njit(cache=True, forceinline=True)
def _napi_pp_put_page(k, pid):
    """napi_pp_put_page() (6.1: page_pool_return_skb_page()) of an skb's page_pool page: 6.4-6.9 allow direct
    recycling when page_pool_napi_local() says so; 6.1 never; 6.10+ leave it to the put."""
    p = k.pp.pp[pid] - 1
    pool = k.pp.pool[p]
    allow_direct = pool[PP_DIRECT] == PP_DIRECT_SKB_FREE and _pp_napi_local_here(k, pool)
    _pp_put_page(k, p, pid, allow_direct)


@njit(cache=True, forceinline=True)
def _pp_put_skb_page(k, pid):
    """skb_free_head() / napi_frag_unref() of a page of an skb marked for recycling: to its pool when it is a
    pool page (page->pp), else put_page().  (6.1's mlx5 skbs are not marked: put_page() of every page.)"""
    if k.pp.pp[pid] and not k.cfg[PP_SKBS_UNMARKED]:
        _napi_pp_put_page(k, pid)
    else:
        _put_page(k.pages, k.st, pid)


@njit(cache=True, forceinline=True)
def _pp_put_buf(k, p, pid, allow_direct):
    """A driver's buffer given back without an skb: page_pool_put_page() (put_full_page, recycle_direct, free_va)
    to pool p when it is a pool page, else put_page() (skb_free_frag() of a page_frag piece, a page of the
    driver's own)."""
    if k.pp.pp[pid]:
        _pp_put_page(k, p, pid, allow_direct)
    else:
        _put_page(k.pages, k.st, pid)


@njit(cache=True, forceinline=True)
def _pp_put_skb_frags(k, frag):
    """The frag pages of an skb marked for recycling (skb_release_data(), __pskb_pull_tail()): each through
    napi_frag_unref() in frag order (_pp_put_skb_page()); a row of frags.fl goes back (frag as
    mm._add_frag() keeps them)."""
    if frag < FL_TAG:
        _pp_put_skb_page(k, frag)
        return
    entry = frag - FL_TAG
    for j in range(1, k.frags.fl[entry, 0] + 1):
        _pp_put_skb_page(k, k.frags.fl[entry, j])
    _fl_give(k.frags, k.st, entry)


# -- teardown ------------------------------------------------------------------------------------------------


@njit(cache=True)
def _page_pool_destroy(k, p):
    """page_pool_destroy(): direct recycling off, the frag page's unused references dropped
    (page_pool_free_frag()), then page_pool_release(): the cache and the ring back to the page allocator.
    Pages still in skbs come back later (see _pp_put_unrefed_page)."""
    pool = k.pp.pool[p]
    pid = pool[PP_FRAG_PAGE]
    pool[PP_FRAG_PAGE] = -1
    if pid >= 0 and _pp_unref_page(k.pp, pool, pid, pool[PP_BIAS_MAX] - pool[PP_FRAG_USERS]) == 0:
        _pp_return_page(k, p, pid)
    pool[PP_DESTROYED] = 1
    while pool[PP_CACHE_LEN] > 0:
        pool[PP_CACHE_LEN] -= 1
        _pp_return_page(k, p, k.pp.cache[p, pool[PP_CACHE_LEN]])
    while pool[PP_RING_LEN] > 0:
        head = pool[PP_RING_HEAD]
        if k.pages.page[k.pp.ring[p, head], PAGE_REF] != 1:
            k.st[ERR] = ERR_BUG  # the model warns of a refcount violation: not followed here
        _pp_return_page(k, p, k.pp.ring[p, head])
        pool[PP_RING_HEAD] = head + 1 if head + 1 < pool[PP_QSIZE] else 0
        pool[PP_RING_LEN] -= 1
