"""The fast engine's memory: fault injection, pages, SLUB caches, page_frag caches and skb frag lists, compiled."""

from __future__ import annotations

from skbsim.fast.layout import (
    ERR, ERR_BUG, ERR_TABLE_FULL, FL_NEXT, FL_TAG, FL_TOP, FR_ACTIVE, FR_COUNT, FR_INJECTED, FR_INTERVAL,
    FR_SIZE, FR_SPACE, FR_THRESHOLD, FR_TIMES, F_ANY, F_MT, F_MT_INDEX, F_RULES, IN_USE, K_FAILED,
    K_FREE_TOP, K_LAYER, K_LIVE, K_NEXT, K_NPARTIAL, K_OBJS, K_ORDER, L_NONE, L_PAGE_ALLOC, L_PAGE_FRAG,
    L_SLAB, MT_N, P1K_OFFSET, P1K_PAGE, PAGE_SIZE_C, PEAK_IN_USE, PF_ALLOCS, PF_BIAS, PF_DOWN, PF_OFFSET,
    PF_ORDER, PF_PAGE, PF_REFILLS, PF_REUSES, PF_SIZE, PG_FREE_TOP, PG_MAX_ORDER, PG_NEXT, PINNED, SMALL_ALLOCS,
    SMALL_REFILLS, SZ_1K, njit,
)


@njit(cache=True)
def _mt_genrand(S):
    """random.Random's genrand_uint32() (Modules/_randommodule.c, MT19937) on the words in S."""
    index = S[F_MT_INDEX]
    if index >= MT_N:
        for k in range(MT_N):
            y = (S[F_MT + k] & 0x80000000) | (S[F_MT + (k + 1) % MT_N] & 0x7FFFFFFF)
            value = S[F_MT + (k + 397) % MT_N] ^ (y >> 1)
            if y & 1:
                value ^= 0x9908B0DF
            S[F_MT + k] = value
        index = 0
    y = S[F_MT + index]
    S[F_MT_INDEX] = index + 1
    y ^= y >> 11
    y ^= (y << 7) & 0x9D2C5680
    y ^= (y << 15) & 0xEFC60000
    y ^= y >> 18
    return y & 0xFFFFFFFF


@njit(cache=True)
def _should_fail(S, layer):
    """FaultInjector.should_fail() for one layer (lib/fault-inject.c: should_fail()).

    random.random() is (a >> 5) * 2**26 + (b >> 6) over 2**53 for two draws
    a, b; comparing that integer with the rule's threshold decides exactly
    as the float comparison does.
    """
    base = F_RULES + layer * FR_SIZE
    if S[base + FR_ACTIVE] == 0 or S[base + FR_TIMES] == 0:
        return False
    if S[base + FR_SPACE] > 0:
        S[base + FR_SPACE] -= 1
        return False
    S[base + FR_COUNT] += 1
    if S[base + FR_INTERVAL] > 1 and S[base + FR_COUNT] % S[base + FR_INTERVAL]:
        return False
    if S[base + FR_THRESHOLD] >= 0:
        a = _mt_genrand(S) >> 5
        b = _mt_genrand(S) >> 6
        if a * 67108864 + b >= S[base + FR_THRESHOLD]:
            return False
    if S[base + FR_TIMES] > 0:
        S[base + FR_TIMES] -= 1
    S[base + FR_INJECTED] += 1
    return True


@njit(cache=True, inline="always")
def _take_id(S, counters, top, nxt, free_ids, capacity):
    """An id from a pool of recycled small ids (page ids, slab slots, frag-list rows): the one given
    back last (free_ids[:counters[top]]), else the next never used (counters[nxt]); -1, with
    S[ERR], when all capacity ids are in use."""
    if counters[top] > 0:
        counters[top] -= 1
        return free_ids[counters[top]]
    taken = counters[nxt]
    if taken >= capacity:
        S[ERR] = ERR_TABLE_FULL
        return -1
    counters[nxt] = taken + 1
    return taken


@njit(cache=True, inline="always")
def _give_id(counters, top, free_ids, taken):
    """Give an id back to its pool (see _take_id)."""
    free_ids[counters[top]] = taken
    counters[top] += 1


@njit(cache=True)
def _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, order, layer):
    """__alloc_pages() without watermarks: a new page id with refcount 1, or -1 for an order above
    MAX_PAGE_ORDER (refused before any fault is drawn, as PageAllocator.alloc_pages() does) or when a
    fault is injected (the page_alloc layer, then the caller's own layer)."""
    if order > S[PG_MAX_ORDER]:
        return -1
    if S[F_ANY] and (_should_fail(S, L_PAGE_ALLOC) or (layer >= 0 and _should_fail(S, layer))):
        return -1
    pid = _take_id(S, S, PG_FREE_TOP, PG_NEXT, page_free, page_ref.shape[0])
    if pid < 0:
        return -1
    page_ref[pid] = 1
    page_order[pid] = order
    S[IN_USE] += 1 << order
    if S[IN_USE] > S[PEAK_IN_USE]:
        S[PEAK_IN_USE] = S[IN_USE]
    pg_alloc[order] += 1
    return pid


@njit(cache=True)
def _free_page(S, page_ref, page_order, page_free, pg_freed, pid):
    S[IN_USE] -= 1 << page_order[pid]
    pg_freed[page_order[pid]] += 1
    _give_id(S, PG_FREE_TOP, page_free, pid)


@njit(cache=True)
def _put_page(S, page_ref, page_order, page_free, pg_freed, pid):
    page_ref[pid] -= 1
    if page_ref[pid] == 0:
        _free_page(S, page_ref, page_order, page_free, pg_freed, pid)
    elif page_ref[pid] < 0:
        S[ERR] = ERR_BUG


@njit(cache=True)
def _slab_alloc(S, slab, page_ref, page_order, page_free, pg_alloc):
    """kmem_cache_alloc() on one cache: an object id = slab slot * objs + index.

    slab = (K, stack, top, inuse, page, partial, slotfree); K holds the cache's
    partial-list length, free-slot stack top, next new slot, live objects,
    slab order and objects per slab.  A slab's freelist is the objects freed
    to it, last freed first (stack[slot, :top]), then those never handed out,
    lowest address first, from stack[slot, objs] on: a new slab costs nothing
    to set up however many objects it holds.
    """
    K, sl_stack, sl_top, sl_inuse, sl_page, sl_partial, sl_slotfree = slab
    if S[F_ANY] and (_should_fail(S, L_SLAB) or _should_fail(S, K[K_LAYER])):
        K[K_FAILED] += 1
        return -1
    objs = K[K_OBJS]
    if K[K_NPARTIAL] == 0:
        pid = _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, K[K_ORDER], L_NONE)
        if pid < 0:
            K[K_FAILED] += 1
            return -1
        slot = _take_id(S, K, K_FREE_TOP, K_NEXT, sl_slotfree, sl_top.shape[0])
        if slot < 0:
            return -1
        sl_stack[slot, objs] = 0  # the next object never handed out
        sl_top[slot] = 0
        sl_inuse[slot] = 0
        sl_page[slot] = pid
        sl_partial[K[K_NPARTIAL]] = slot
        K[K_NPARTIAL] += 1
    slot = sl_partial[K[K_NPARTIAL] - 1]
    if sl_top[slot] > 0:
        sl_top[slot] -= 1
        index = sl_stack[slot, sl_top[slot]]
    else:
        index = sl_stack[slot, objs]
        sl_stack[slot, objs] = index + 1
    sl_inuse[slot] += 1
    if sl_inuse[slot] == objs:
        K[K_NPARTIAL] -= 1  # full: it was the last entry of the partial list
    K[K_LIVE] += 1
    return slot * objs + index


@njit(cache=True)
def _slab_free(S, slab, page_ref, page_order, page_free, pg_freed, obj):
    """kmem_cache_free(): back to its slab; an empty slab leaves the partial list and frees its page."""
    K, sl_stack, sl_top, sl_inuse, sl_page, sl_partial, sl_slotfree = slab
    objs = K[K_OBJS]
    slot = obj // objs
    if sl_inuse[slot] == objs:  # it was full: back on the partial list
        sl_partial[K[K_NPARTIAL]] = slot
        K[K_NPARTIAL] += 1
    sl_stack[slot, sl_top[slot]] = obj - slot * objs
    sl_top[slot] += 1
    sl_inuse[slot] -= 1
    K[K_LIVE] -= 1
    if sl_inuse[slot] == 0:
        n = K[K_NPARTIAL]
        j = 0
        while sl_partial[j] != slot:
            j += 1
        for k in range(j, n - 1):
            sl_partial[k] = sl_partial[k + 1]
        K[K_NPARTIAL] = n - 1
        _give_id(K, K_FREE_TOP, sl_slotfree, slot)
        _put_page(S, page_ref, page_order, page_free, pg_freed, sl_page[slot])


@njit(cache=True, inline="always")
def _slab_page(slab, obj):
    """virt_to_head_page() of a slab object: its slab's page."""
    return slab[4][obj // slab[0][K_OBJS]]


@njit(cache=True, inline="always")
def _put_frags(S, page_ref, page_order, page_free, pg_freed, fl, frag):
    """An skb's frag pages, each page's reference put in frag order: one page id, or FL_TAG plus a row
    of fl (count, page ids) that then goes back to the free stack, kept in fl's last column."""
    if frag < FL_TAG:
        _put_page(S, page_ref, page_order, page_free, pg_freed, frag)
        return
    entry = frag - FL_TAG
    for j in range(1, fl[entry, 0] + 1):
        _put_page(S, page_ref, page_order, page_free, pg_freed, fl[entry, j])
    _fl_give(S, fl, entry)


@njit(cache=True, inline="always")
def _pin_frags(S, page_pin, fl, frag, delta):
    """Queued-skb pins of an skb's frag pages (+1 on queueing, -1 on reading); frag as in _put_frags."""
    single = frag < FL_TAG
    entry = frag - FL_TAG
    for j in range(1, 2 if single else fl[entry, 0] + 1):
        pid = frag if single else fl[entry, j]
        if delta > 0:
            if page_pin[pid] == 0:
                S[PINNED] += 1
            page_pin[pid] += 1
        else:
            page_pin[pid] -= 1
            if page_pin[pid] == 0:
                S[PINNED] -= 1


@njit(cache=True, inline="always")
def _p1k_alloc(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc):
    """page_frag_alloc_1k() on this CPU: the id of the page holding the new 1K piece, or -1.

    Pieces are cut from the top down; a new page carries one reference per piece at once.
    """
    off = CS[cpu, P1K_OFFSET] - SZ_1K
    if off < 0:
        pid = _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, 0, L_PAGE_FRAG)
        if pid < 0:
            return -1
        CS[cpu, P1K_PAGE] = pid
        off = C[PAGE_SIZE_C] - SZ_1K
        page_ref[pid] += off // SZ_1K
        S[SMALL_REFILLS] += 1
    CS[cpu, P1K_OFFSET] = off
    S[SMALL_ALLOCS] += 1
    return CS[cpu, P1K_PAGE]


@njit(cache=True)
def _fl_take(S, fl):
    """A free row of fl (frag lists of several pages), or -1 when the table is full.  The free rows'
    stack is fl's last column (entry i in row i, whichever row that names)."""
    return _take_id(S, S, FL_TOP, FL_NEXT, fl[:, fl.shape[1] - 1], fl.shape[0])


@njit(cache=True, inline="always")
def _fl_give(S, fl, entry):
    """Row entry of fl back to the free rows (see _fl_take)."""
    _give_id(S, FL_TOP, fl[:, fl.shape[1] - 1], entry)


@njit(cache=True, inline="always")
def _add_frag(S, fl, frag, pid):
    """skb_add_rx_frag() of page pid to an skb's frags: none (-1) becomes the page id itself, a
    second page moves both into a row of fl (FL_TAG + row), further ones are appended."""
    if frag < 0:
        return pid
    if frag < FL_TAG:
        entry = _fl_take(S, fl)
        if entry < 0:
            return frag
        fl[entry, 0] = 2
        fl[entry, 1] = frag
        fl[entry, 2] = pid
        return FL_TAG + entry
    entry = frag - FL_TAG
    n = fl[entry, 0] + 1
    if n > fl.shape[1] - 2:
        S[ERR] = ERR_TABLE_FULL
        return frag
    fl[entry, n] = pid
    fl[entry, 0] = n
    return frag


@njit(cache=True)
def _pf_refill(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, bias_max):
    """The page_frag_cache's refill (__page_frag_cache_refill): a PAGE_FRAG_CACHE_MAX_ORDER page, else
    one order-0 page, pre-charged with bias_max references; False (and no page) when both fail."""
    pid = -1
    if C[PF_ORDER] > 0:
        pid = _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, C[PF_ORDER], L_PAGE_FRAG)
    if pid < 0:
        pid = _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, 0, L_PAGE_FRAG)
    CS[cpu, PF_PAGE] = pid
    if pid < 0:
        return False
    CS[cpu, PF_SIZE] = C[PAGE_SIZE_C] << page_order[pid]
    page_ref[pid] += bias_max
    CS[cpu, PF_BIAS] = bias_max + 1
    CS[cpu, PF_OFFSET] = 0
    S[PF_REFILLS] += 1
    return True


@njit(cache=True)
def _pf_alloc(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, fragsz):
    """page_frag_alloc_align() on this CPU's NAPI page_frag_cache, cut downwards (up to 6.12,
    _alloc_counting_down) or upwards (6.13+, _alloc_counting_up); the id of the page cut, or -1."""
    bias_max = C[PAGE_SIZE_C] << C[PF_ORDER]
    down = C[PF_DOWN]
    if CS[cpu, PF_PAGE] < 0:
        if not _pf_refill(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, bias_max):
            return -1
        if down:
            CS[cpu, PF_OFFSET] = CS[cpu, PF_SIZE]
    off = CS[cpu, PF_OFFSET]
    if (off - fragsz < 0) if down else (off + fragsz > CS[cpu, PF_SIZE]):
        old = CS[cpu, PF_PAGE]
        page_ref[old] -= CS[cpu, PF_BIAS]
        if page_ref[old] == 0:
            # every fragment came back: the page is reused in place
            page_ref[old] = bias_max + 1
            CS[cpu, PF_BIAS] = bias_max + 1
            S[PF_REUSES] += 1
        else:
            if page_ref[old] < 0:
                S[ERR] = ERR_BUG
            if not _pf_refill(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, bias_max):
                return -1
        off = CS[cpu, PF_SIZE] - fragsz if down else 0
    else:
        off = off - fragsz if down else off
    CS[cpu, PF_BIAS] -= 1
    CS[cpu, PF_OFFSET] = off if down else off + fragsz
    S[PF_ALLOCS] += 1
    return CS[cpu, PF_PAGE]


@njit(cache=True, inline="always")
def _km(tn, c):
    """The slab tuple (as _slab_alloc takes it) of tun's kmem cache number c (tn: see skbsim.fast.tun)."""
    return (tn[2][c], tn[3][c], tn[4][c], tn[5][c], tn[6][c], tn[7][c], tn[8][c])
