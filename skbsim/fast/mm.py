"""The fast engine's memory: fault injection, pages, page_frag caches and skb frag lists, compiled.

Each function works on the records of the model object it mirrors (skbsim.fast.state): the page
allocator (Pages), the fault injector (Faults), the per-CPU NAPI caches (NapiCaches) and the frag lists
(Frags).  The kmem caches (Slabs) are in skbsim.fast.slub.
"""

from __future__ import annotations

from skbsim.fast.layout import (
    ERR_BUG, ERR_TABLE_FULL, FL_TAG, L_PAGE_ALLOC, L_PAGE_FRAG, ORDER_0, SZ_1K, njit,
)
from skbsim.fast.state import (
    ALLOCATED, ERR, F_ANY, F_MT_INDEX, FL_NEXT, FL_TOP, FR_ACTIVE, FR_COUNT, FR_INJECTED, FR_INTERVAL, FR_SPACE,
    FR_THRESHOLD, FR_TIMES, FREED, MT_N, P1K_OFFSET, P1K_PAGE, PAGE_ORDER, PAGE_REF, PAGE_SIZE, PF_ALLOCS,
    PF_BIAS, PF_DOWN, PF_OFFSET, PF_ORDER, PF_PAGE, PF_REFILLS, PF_REUSES, PF_SIZE, PG_FREE_TOP, PG_IN_USE,
    PG_MAX_ORDER, PG_NEXT, PG_PEAK, PINNED, SMALL_ALLOCS, SMALL_REFILLS,
)

# -- the fault injector (skbsim.mm.fault.FaultInjector) ---------------------------------------------------


@njit(cache=True)
def _mt_genrand(faults, st):
    """random.Random's genrand_uint32() (Modules/_randommodule.c, MT19937) on the words in faults.mt."""
    mt = faults.mt
    index = st[F_MT_INDEX]
    if index >= MT_N:
        for k in range(MT_N):
            y = (mt[k] & 0x80000000) | (mt[(k + 1) % MT_N] & 0x7FFFFFFF)
            value = mt[(k + 397) % MT_N] ^ (y >> 1)
            if y & 1:
                value ^= 0x9908B0DF
            mt[k] = value
        index = 0
    y = mt[index]
    st[F_MT_INDEX] = index + 1
    y ^= y >> 11
    y ^= (y << 7) & 0x9D2C5680
    y ^= (y << 15) & 0xEFC60000
    y ^= y >> 18
    return y & 0xFFFFFFFF


@njit(cache=True, entry=True)
def _should_fail(faults, st, layer):
    """FaultInjector.should_fail() for one layer (lib/fault-inject.c: should_fail()).

    random.random() is (a >> 5) * 2**26 + (b >> 6) over 2**53 for two draws
    a, b; comparing that integer with the rule's threshold decides exactly
    as the float comparison does.
    """
    rule = faults.rules[layer]
    if rule[FR_ACTIVE] == 0 or rule[FR_TIMES] == 0:
        return False
    if rule[FR_SPACE] > 0:
        rule[FR_SPACE] -= 1
        return False
    rule[FR_COUNT] += 1
    if rule[FR_INTERVAL] > 1 and rule[FR_COUNT] % rule[FR_INTERVAL]:
        return False
    if rule[FR_THRESHOLD] >= 0:
        a = _mt_genrand(faults, st) >> 5
        b = _mt_genrand(faults, st) >> 6
        if a * 67108864 + b >= rule[FR_THRESHOLD]:
            return False
    if rule[FR_TIMES] > 0:
        rule[FR_TIMES] -= 1
    rule[FR_INJECTED] += 1
    return True


@njit(cache=True, forceinline=True)
def _fails(faults, st, layer):
    """A fault check that costs one load when no rule is set (the common case)."""
    return st[F_ANY] != 0 and _should_fail(faults, st, layer)


# -- pools of recycled ids -----------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _take_id(st, counters, top, nxt, free_ids, capacity):
    """An id from a pool of recycled small ids (page ids, slab slots, frag-list rows): the one given back
    last (free_ids[:counters[top]]), else the next never used (counters[nxt]); -1, with st[ERR] set, when
    all capacity ids are in use."""
    if counters[top] > 0:
        counters[top] -= 1
        return free_ids[counters[top]]
    taken = counters[nxt]
    if taken >= capacity:
        st[ERR] = ERR_TABLE_FULL
        return -1
    counters[nxt] = taken + 1
    return taken


@njit(cache=True, forceinline=True)
def _give_id(counters, top, free_ids, taken):
    """Give an id back to its pool (see _take_id)."""
    free_ids[counters[top]] = taken
    counters[top] += 1


# -- the page allocator (skbsim.mm.page_alloc.PageAllocator) ---------------------------------------------------


@njit(cache=True)
def _alloc_pages(pages, faults, st, order, layer):
    """__alloc_pages() without watermarks: a new page id with refcount 1, or -1 for an order above
    MAX_PAGE_ORDER (refused before any fault is drawn, as PageAllocator.alloc_pages() does) or when a
    fault is injected (the page_alloc layer, then the caller's own layer)."""
    if order > st[PG_MAX_ORDER]:
        return -1
    if _fails(faults, st, L_PAGE_ALLOC) or (layer >= 0 and _fails(faults, st, layer)):
        return -1
    return _take_page(pages, st, order)


@njit(cache=True, forceinline=True)
def _take_page(pages, st, order):
    """PageAllocator._take(): the accounting every allocation shares (a new page id, refcount 1), or -1."""
    pid = _take_id(st, st, PG_FREE_TOP, PG_NEXT, pages.free, pages.page.shape[0])
    if pid < 0:
        return -1
    pages.page[pid, PAGE_REF] = 1
    pages.page[pid, PAGE_ORDER] = order
    st[PG_IN_USE] += 1 << order
    if st[PG_IN_USE] > st[PG_PEAK]:
        st[PG_PEAK] = st[PG_IN_USE]
    pages.counts[order, ALLOCATED] += 1
    return pid


@njit(cache=True)
def _free_page(pages, st, pid):
    """PageAllocator.__free_pages(): the block goes back."""
    order = pages.page[pid, PAGE_ORDER]
    st[PG_IN_USE] -= 1 << order
    pages.counts[order, FREED] += 1
    _give_id(st, PG_FREE_TOP, pages.free, pid)


@njit(cache=True, forceinline=True)
def _put_page(pages, st, pid):
    """put_page(): one reference less; freed at zero."""
    pages.page[pid, PAGE_REF] -= 1
    if pages.page[pid, PAGE_REF] == 0:
        _free_page(pages, st, pid)
    elif pages.page[pid, PAGE_REF] < 0:
        st[ERR] = ERR_BUG


@njit(cache=True, forceinline=True)
def _put_pages(pages, st, pid, count):
    """page_ref_sub_and_test() and the free: count references less."""
    pages.page[pid, PAGE_REF] -= count
    if pages.page[pid, PAGE_REF] == 0:
        _free_page(pages, st, pid)
    elif pages.page[pid, PAGE_REF] < 0:
        st[ERR] = ERR_BUG


# -- frag lists (skb_shared_info.frags of several pages) ----------------------------------------------------------


@njit(cache=True)
def _fl_take(frags, st):
    """A free row of frags.fl, or -1 when the table is full.  The free rows' stack is the last column
    (entry i in row i, whichever row that names)."""
    fl = frags.fl
    return _take_id(st, st, FL_TOP, FL_NEXT, fl[:, fl.shape[1] - 1], fl.shape[0])


@njit(cache=True, forceinline=True)
def _fl_give(frags, st, entry):
    """Row entry of frags.fl back to the free rows (see _fl_take)."""
    _give_id(st, FL_TOP, frags.fl[:, frags.fl.shape[1] - 1], entry)


@njit(cache=True, forceinline=True)
def _add_frag(frags, st, frag, pid):
    """skb_add_rx_frag() of page pid to an skb's frags: none (-1) becomes the page id itself, a second
    page moves both into a row of frags.fl (FL_TAG + row), further ones are appended."""
    if frag < 0:
        return pid
    fl = frags.fl
    if frag < FL_TAG:
        entry = _fl_take(frags, st)
        if entry < 0:
            return frag
        fl[entry, 0] = 2
        fl[entry, 1] = frag
        fl[entry, 2] = pid
        return FL_TAG + entry
    entry = frag - FL_TAG
    n = fl[entry, 0] + 1
    if n > fl.shape[1] - 2:
        st[ERR] = ERR_TABLE_FULL
        return frag
    fl[entry, n] = pid
    fl[entry, 0] = n
    return frag


@njit(cache=True, forceinline=True)
def _nr_frags(frags, frag):
    """skb_shinfo(skb)->nr_frags of frags as _add_frag() keeps them."""
    return 0 if frag < 0 else (1 if frag < FL_TAG else frags.fl[frag - FL_TAG, 0])


@njit(cache=True, forceinline=True)
def _put_frags(pages, frags, st, frag):
    """An skb's frag pages, each page's reference put in frag order; a row of frags.fl goes back."""
    if frag < FL_TAG:
        _put_page(pages, st, frag)
        return
    entry = frag - FL_TAG
    for j in range(1, frags.fl[entry, 0] + 1):
        _put_page(pages, st, frags.fl[entry, j])
    _fl_give(frags, st, entry)


@njit(cache=True, forceinline=True)
def _pin_page(sock, st, pid, delta):
    """Simulation.pinned: queued skbs keeping page pid alive, +1 on queueing and -1 on reading."""
    if delta > 0:
        if sock.pin[pid] == 0:
            st[PINNED] += 1
        sock.pin[pid] += 1
    else:
        sock.pin[pid] -= 1
        if sock.pin[pid] == 0:
            st[PINNED] -= 1


@njit(cache=True, forceinline=True)
def _pin_frags(sock, frags, st, frag, delta):
    """_pin_page() of each of an skb's frag pages (frag as _add_frag() keeps them)."""
    if frag < FL_TAG:
        _pin_page(sock, st, frag, delta)
        return
    entry = frag - FL_TAG
    for j in range(1, frags.fl[entry, 0] + 1):
        _pin_page(sock, st, frags.fl[entry, j], delta)


# -- the per-CPU page fragment caches (skbsim.mm.page_frag) -----------------------------------------------------


@njit(cache=True, forceinline=True)
def _p1k_alloc(k, cpu):
    """page_frag_alloc_1k() on this CPU: the id of the page holding the new 1K piece, or -1.

    Pieces are cut from the top down; a new page carries one reference per piece at once.
    """
    st = k.st
    nc = k.pcpu[cpu]
    off = nc[P1K_OFFSET] - SZ_1K
    if off < 0:
        pid = _alloc_pages(k.pages, k.faults, st, ORDER_0, L_PAGE_FRAG)
        if pid < 0:
            return -1
        nc[P1K_PAGE] = pid
        off = k.cfg[PAGE_SIZE] - SZ_1K
        k.pages.page[pid, PAGE_REF] += off // SZ_1K
        st[SMALL_REFILLS] += 1
    nc[P1K_OFFSET] = off
    st[SMALL_ALLOCS] += 1
    return nc[P1K_PAGE]


@njit(cache=True)
def _pf_refill(pages, faults, st, nc, cfg):
    """__page_frag_cache_refill() of a CPU's NAPI page_frag_cache (nc: its row of pcpu): a
    PAGE_FRAG_CACHE_MAX_ORDER page, else one order-0 page, pre-charged with the bias (page_frag._refill);
    False (and no page) when both fail."""
    bias_max = cfg[PAGE_SIZE] << cfg[PF_ORDER]
    pid = -1
    if cfg[PF_ORDER] > 0:
        pid = _alloc_pages(pages, faults, st, cfg[PF_ORDER], L_PAGE_FRAG)
    if pid < 0:
        pid = _alloc_pages(pages, faults, st, ORDER_0, L_PAGE_FRAG)
    nc[PF_PAGE] = pid
    if pid < 0:
        return False
    nc[PF_SIZE] = cfg[PAGE_SIZE] << pages.page[pid, PAGE_ORDER]
    pages.page[pid, PAGE_REF] += bias_max
    nc[PF_BIAS] = bias_max + 1
    nc[PF_OFFSET] = 0 if cfg[PF_DOWN] == 0 else nc[PF_SIZE]
    st[PF_REFILLS] += 1
    return True


@njit(cache=True)
def _pf_alloc(pages, faults, st, nc, cfg, fragsz):
    """page_frag_alloc_align() on a CPU's NAPI page_frag_cache (nc: its row of pcpu), cut downwards (up to
    6.12, _alloc_counting_down) or upwards (6.13+, _alloc_counting_up); the id of the page cut, or -1."""
    bias_max = cfg[PAGE_SIZE] << cfg[PF_ORDER]
    down = cfg[PF_DOWN]
    if nc[PF_PAGE] < 0 and not _pf_refill(pages, faults, st, nc, cfg):
        return -1
    off = nc[PF_OFFSET]
    if (off - fragsz < 0) if down else (off + fragsz > nc[PF_SIZE]):
        # _recycle_or_refill(): the page is used up
        old = nc[PF_PAGE]
        pages.page[old, PAGE_REF] -= nc[PF_BIAS]
        if pages.page[old, PAGE_REF] == 0:
            # every fragment came back: the page is reused in place
            pages.page[old, PAGE_REF] = bias_max + 1
            nc[PF_BIAS] = bias_max + 1
            st[PF_REUSES] += 1
        else:
            if pages.page[old, PAGE_REF] < 0:
                st[ERR] = ERR_BUG
            if not _pf_refill(pages, faults, st, nc, cfg):
                return -1
        off = nc[PF_SIZE] - fragsz if down else 0
        if down and off < 0:
            return -1  # a fragment larger than the page (an order-0 fallback): refused
    else:
        off = off - fragsz if down else off
    nc[PF_BIAS] -= 1
    nc[PF_OFFSET] = off if down else off + fragsz
    st[PF_ALLOCS] += 1
    return nc[PF_PAGE]
