"""The fast engine's SLUB: the kmem caches' per-CPU slabs and partial lists and the node partial list, compiled.

Each function mirrors the skbsim.mm.slab.SlabAllocator method of the same name (mm/slub.c), over the
Slabs record (skbsim.fast.state): caches[c] is the kmem_cache with its one kmem_cache_node, cpu[c, cpu]
its kmem_cache_cpu, cpu_partial[c, cpu] that CPU's partial list (its head last), slot[] the slabs.  The
list decisions are the model's own plain functions (slab_discard_empty, cpu_partial_full,
get_partial_node_done), compiled by skbsim.fast.rules.  The machine has no watermarks in the fast engine's scope, so no
slab is pfmemalloc.

A slab's free objects are one stack of indices (stack[words:words + top], then those never handed out
from stack[words + objs] on): which of its free objects goes first never shows.  Of them SLAB_FREE are
on the slab's own freelist and, while it is a CPU's slab, that CPU's C_FREE on its lockless freelist.
An object id is slot * objs + index (objs: objects of a slab of the cache's order).
"""

from __future__ import annotations

from skbsim.fast.layout import ERR_TABLE_FULL, L_NONE, L_SLAB, njit
from skbsim.fast.mm import _alloc_pages, _give_id, _put_page, _should_fail, _take_id
from skbsim.fast.state import (
    C_FREE, C_NPARTIAL, C_SLAB, ERR, F_ANY, K_CPS, K_FAILED, K_FREE_TOP, K_FROZEN_PARTIAL, K_LAYER, K_LIVE,
    K_MIN_OBJS, K_MIN_ORDER, K_MIN_PARTIAL, K_NEXT, K_NODE_HEAD, K_NODE_TAIL, K_NPARTIAL, K_NR_SLABS, K_OBJS,
    K_ORDER, K_SLOT_BASE, K_SLOTS, K_STACK_BASE, NO_SLAB, SLAB_FREE, SLAB_FROZEN, SLAB_NEXT, SLAB_OBJECTS,
    SLAB_ON_NODE, SLAB_PAGE, SLAB_PREV, SLAB_TOP,
)
from skbsim.fast.rules import _cpu_partial_full, _get_partial_node_done, _slab_discard_empty
from skbsim.mm.slab import DETACHED_FREELIST_LOOKAHEAD


# -- one slab's free objects ---------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _take_object(slabs, c, slot):
    """The next free object of a slab: the last given back, else the lowest never handed out."""
    K = slabs.caches[c]
    g = K[K_SLOT_BASE] + slot
    objs = K[K_OBJS]
    words = K[K_STACK_BASE] + slot * (objs + 1)
    if slabs.slot[g, SLAB_TOP] > 0:
        slabs.slot[g, SLAB_TOP] -= 1
        index = slabs.stack[words + slabs.slot[g, SLAB_TOP]]
    else:
        index = slabs.stack[words + objs]
        slabs.stack[words + objs] = index + 1
    return slot * objs + index


@njit(cache=True, forceinline=True)
def _give_object(slabs, c, slot, obj):
    """An object back onto its slab's stack of free objects."""
    K = slabs.caches[c]
    g = K[K_SLOT_BASE] + slot
    slabs.stack[K[K_STACK_BASE] + slot * (K[K_OBJS] + 1) + slabs.slot[g, SLAB_TOP]] = obj - slot * K[K_OBJS]
    slabs.slot[g, SLAB_TOP] += 1


@njit(cache=True, forceinline=True)
def _slab_page(slabs, c, obj):
    """virt_to_head_page() of an object of cache c: its slab's page."""
    return slabs.slot[slabs.caches[c, K_SLOT_BASE] + obj // slabs.caches[c, K_OBJS], SLAB_PAGE]


# -- the node's partial list: slots linked through SLAB_PREV / SLAB_NEXT ------------------------------------------


@njit(cache=True)
def _add_partial(slabs, c, slot, tail):
    """add_partial(): onto the node list, at its tail or its head."""
    K = slabs.caches[c]
    base = K[K_SLOT_BASE]
    row = slabs.slot[base + slot]
    if K[K_NPARTIAL] == 0:
        row[SLAB_PREV] = row[SLAB_NEXT] = NO_SLAB
        K[K_NODE_HEAD] = K[K_NODE_TAIL] = slot
    elif tail:
        row[SLAB_PREV] = K[K_NODE_TAIL]
        row[SLAB_NEXT] = NO_SLAB
        slabs.slot[base + K[K_NODE_TAIL], SLAB_NEXT] = slot
        K[K_NODE_TAIL] = slot
    else:
        row[SLAB_NEXT] = K[K_NODE_HEAD]
        row[SLAB_PREV] = NO_SLAB
        slabs.slot[base + K[K_NODE_HEAD], SLAB_PREV] = slot
        K[K_NODE_HEAD] = slot
    row[SLAB_ON_NODE] = 1
    K[K_NPARTIAL] += 1


@njit(cache=True)
def _remove_partial(slabs, c, slot):
    """remove_partial()."""
    K = slabs.caches[c]
    base = K[K_SLOT_BASE]
    row = slabs.slot[base + slot]
    prev, nxt = row[SLAB_PREV], row[SLAB_NEXT]
    if prev == NO_SLAB:
        K[K_NODE_HEAD] = nxt
    else:
        slabs.slot[base + prev, SLAB_NEXT] = nxt
    if nxt == NO_SLAB:
        K[K_NODE_TAIL] = prev
    else:
        slabs.slot[base + nxt, SLAB_PREV] = prev
    row[SLAB_ON_NODE] = 0
    K[K_NPARTIAL] -= 1


# -- giving slabs up -------------------------------------------------------------------------------------------


@njit(cache=True)
def _discard_slab(slabs, c, slot, pages, st):
    """discard_slab(): the slot is free again and the slab's page goes back."""
    K = slabs.caches[c]
    K[K_NR_SLABS] -= 1
    _give_id(K, K_FREE_TOP, slabs.slotfree[K[K_SLOT_BASE]:], slot)
    _put_page(pages, st, slabs.slot[K[K_SLOT_BASE] + slot, SLAB_PAGE])


@njit(cache=True)
def _deactivate_slab(slabs, c, slot, cpu_free, pages, st):
    """deactivate_slab(): a CPU gives its slab up with cpu_free objects on its lockless freelist; an empty
    slab is discarded when the node keeps min_partial slabs, one with free objects goes on the node list
    (its tail if other CPUs had freed to it, else its head)."""
    K = slabs.caches[c]
    row = slabs.slot[K[K_SLOT_BASE] + slot]
    tail = row[SLAB_FREE] > 0
    row[SLAB_FREE] += cpu_free
    row[SLAB_FROZEN] = 0
    if _slab_discard_empty(row[SLAB_OBJECTS] - row[SLAB_FREE], K[K_NPARTIAL], K[K_MIN_PARTIAL]):
        _discard_slab(slabs, c, slot, pages, st)
    elif row[SLAB_FREE] > 0:
        _add_partial(slabs, c, slot, tail)


@njit(cache=True)
def _put_partials(slabs, c, cpu, count, pages, st):
    """__put_partials() of cpu_partial[c, cpu, :count], head (the last) first, to the node list's tail; the
    empty slabs the node has no room for are discarded afterwards, the last found first."""
    K = slabs.caches[c]
    base = K[K_SLOT_BASE]
    part = slabs.cpu_partial[c, cpu]
    top = count - 1
    discard = 0
    for j in range(top, -1, -1):
        slot = part[j]
        row = slabs.slot[base + slot]
        row[SLAB_FROZEN] = 0
        if _slab_discard_empty(row[SLAB_OBJECTS] - row[SLAB_FREE], K[K_NPARTIAL], K[K_MIN_PARTIAL]):
            # kept in the order found, from the top down, in the part already walked
            part[top - discard] = slot
            discard += 1
        else:
            _add_partial(slabs, c, slot, True)
    for j in range(top - discard + 1, top + 1):
        _discard_slab(slabs, c, part[j], pages, st)


@njit(cache=True)
def _put_cpu_partial(slabs, c, cpu, slot, drain, pages, st):
    """put_cpu_partial(): the slab onto this CPU's partial list; with drain, a full list goes to the node
    first and the slab starts a new one."""
    C = slabs.cpu[c, cpu]
    n = C[C_NPARTIAL]
    part = slabs.cpu_partial[c, cpu]
    if drain and _cpu_partial_full(n, slabs.caches[c, K_CPS]):
        _put_partials(slabs, c, cpu, n, pages, st)
        n = 0
    if n >= part.shape[0]:
        st[ERR] = ERR_TABLE_FULL
        return
    part[n] = slot
    C[C_NPARTIAL] = n + 1


# -- allocation --------------------------------------------------------------------------------------------------


@njit(cache=True)
def _new_slab(slabs, c, pages, faults, st):
    """allocate_slab(): a slab of the cache's order, else of its smallest (s->min); its slot, or -1."""
    K = slabs.caches[c]
    order, objects = K[K_ORDER], K[K_OBJS]
    pid = _alloc_pages(pages, faults, st, order, L_NONE)
    if pid < 0:
        order, objects = K[K_MIN_ORDER], K[K_MIN_OBJS]
        pid = _alloc_pages(pages, faults, st, order, L_NONE)
        if pid < 0:
            return -1
    base = K[K_SLOT_BASE]
    slot = _take_id(st, K, K_FREE_TOP, K_NEXT, slabs.slotfree[base:], K[K_SLOTS])
    if slot < 0:
        return -1
    row = slabs.slot[base + slot]
    slabs.stack[K[K_STACK_BASE] + slot * (K[K_OBJS] + 1) + K[K_OBJS]] = 0  # the next object never handed out
    row[SLAB_TOP] = 0
    row[SLAB_PAGE] = pid
    row[SLAB_OBJECTS] = objects
    row[SLAB_FREE] = objects  # all on its freelist until a CPU freezes it
    row[SLAB_FROZEN] = 0
    row[SLAB_ON_NODE] = 0
    K[K_NR_SLABS] += 1
    return slot


@njit(cache=True)
def _get_partial_node(slabs, c, cpu, pages, st):
    """get_partial_node(): the node list's head for the CPU, and up to cpu_partial_slabs / 2 + 1 more onto its
    partial list (frozen up to 6.7); -1 when the node list is empty."""
    K = slabs.caches[c]
    if K[K_NPARTIAL] == 0:
        return -1
    first = K[K_NODE_HEAD]
    _remove_partial(slabs, c, first)
    taken = 1
    while not _get_partial_node_done(taken, K[K_CPS]) and K[K_NPARTIAL] > 0:
        slot = K[K_NODE_HEAD]
        _remove_partial(slabs, c, slot)
        slabs.slot[K[K_SLOT_BASE] + slot, SLAB_FROZEN] = K[K_FROZEN_PARTIAL]
        _put_cpu_partial(slabs, c, cpu, slot, False, pages, st)
        taken += 1
    return first


@njit(cache=True, forceinline=True)
def _load_freelist(slabs, c, cpu, slot):
    """get_freelist() / freeze_slab() and ___slab_alloc()'s load_freelist: the slab's free objects become the
    CPU's, its head handed out."""
    row = slabs.slot[slabs.caches[c, K_SLOT_BASE] + slot]
    C = slabs.cpu[c, cpu]
    C[C_SLAB] = slot
    C[C_FREE] = row[SLAB_FREE] - 1
    row[SLAB_FREE] = 0
    row[SLAB_FROZEN] = 1
    return _take_object(slabs, c, slot)


@njit(cache=True)
def _slab_alloc_slowpath(slabs, c, cpu, pages, faults, st):
    """___slab_alloc() with the CPU's lockless freelist empty: the objects other CPUs freed to its slab, the
    CPU partial list, the node list, a new slab; an object, or -1."""
    C = slabs.cpu[c, cpu]
    slot = C[C_SLAB]
    if slot != NO_SLAB:
        row = slabs.slot[slabs.caches[c, K_SLOT_BASE] + slot]
        if row[SLAB_FREE] > 0:
            return _load_freelist(slabs, c, cpu, slot)
        row[SLAB_FROZEN] = 0  # full: on no list until an object comes back
        C[C_SLAB] = NO_SLAB
    if C[C_NPARTIAL] > 0:
        C[C_NPARTIAL] -= 1
        return _load_freelist(slabs, c, cpu, slabs.cpu_partial[c, cpu, C[C_NPARTIAL]])
    slot = _get_partial_node(slabs, c, cpu, pages, st)
    if slot < 0:
        slot = _new_slab(slabs, c, pages, faults, st)
        if slot < 0:
            return -1
    return _load_freelist(slabs, c, cpu, slot)


@njit(cache=True, forceinline=True)
def _failslab(slabs, c, faults, st):
    """slab_pre_alloc_hook()'s should_failslab(): the slab layer, then the cache's own."""
    return st[F_ANY] != 0 and (_should_fail(faults, st, L_SLAB) or _should_fail(faults, st, slabs.caches[c, K_LAYER]))


@njit(cache=True, forceinline=True)  # a call passes its four records' arrays word by word: 100 words
def _slab_alloc(slabs, c, cpu, pages, faults, st):
    """kmem_cache_alloc() on cache c from CPU cpu (slab_alloc_node()): an object id, or -1."""
    K = slabs.caches[c]
    if _failslab(slabs, c, faults, st):
        K[K_FAILED] += 1
        return -1
    C = slabs.cpu[c, cpu]
    if C[C_FREE] > 0:
        C[C_FREE] -= 1
        obj = _take_object(slabs, c, C[C_SLAB])
    else:
        obj = _slab_alloc_slowpath(slabs, c, cpu, pages, faults, st)
        if obj < 0:
            K[K_FAILED] += 1
            return -1
    K[K_LIVE] += 1
    return obj


@njit(cache=True)
def _slab_alloc_bulk(slabs, c, cpu, p, n, pages, faults, st):
    """kmem_cache_alloc_bulk() into p[:n] after its one failslab check: True, or False with every object
    taken given back (__kmem_cache_free_bulk())."""
    K = slabs.caches[c]
    if _failslab(slabs, c, faults, st):
        K[K_FAILED] += 1
        return False
    C = slabs.cpu[c, cpu]
    for i in range(n):
        if C[C_FREE] > 0:
            C[C_FREE] -= 1
            p[i] = _take_object(slabs, c, C[C_SLAB])
            continue
        obj = _slab_alloc_slowpath(slabs, c, cpu, pages, faults, st)
        if obj < 0:
            K[K_FAILED] += 1
            _free_bulk(slabs, c, cpu, p[:i], pages, st)
            return False
        p[i] = obj
    K[K_LIVE] += n
    return True


# -- free ----------------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _do_slab_free(slabs, c, cpu, slot, cnt, pages, st):
    """do_slab_free() of cnt objects of one slab, already on its stack: this CPU's lockless freelist if it is
    this CPU's slab, else __slab_free(): a frozen slab takes them, a full one goes onto this CPU's partial
    list (or the node list without one), one that empties on the node list is discarded when the node keeps
    min_partial slabs; an unfrozen one on no node list (6.8+: a CPU partial slab) stays where it is.  The
    tests are inlined; only a slab that changes lists costs a call (_slab_free_lists)."""
    C = slabs.cpu[c, cpu]
    if C[C_SLAB] == slot:
        C[C_FREE] += cnt
        return
    row = slabs.slot[slabs.caches[c, K_SLOT_BASE] + slot]
    prior = row[SLAB_FREE] > 0
    row[SLAB_FREE] += cnt
    if row[SLAB_FROZEN]:
        return
    if prior and (row[SLAB_OBJECTS] - row[SLAB_FREE] > 0 or not row[SLAB_ON_NODE]):
        return
    _slab_free_lists(slabs, c, cpu, slot, prior, pages, st)


@njit(cache=True)
def _slab_free_lists(slabs, c, cpu, slot, prior, pages, st):
    """__slab_free()'s list work for a slab that was full (not prior: onto this CPU's partial list, or the
    node list) or is now empty on the node list (discarded, or kept)."""
    K = slabs.caches[c]
    row = slabs.slot[K[K_SLOT_BASE] + slot]
    if not prior and K[K_CPS] > 0:
        row[SLAB_FROZEN] = K[K_FROZEN_PARTIAL]
        _put_cpu_partial(slabs, c, cpu, slot, True, pages, st)
        return
    inuse = row[SLAB_OBJECTS] - row[SLAB_FREE]
    if _slab_discard_empty(inuse, K[K_NPARTIAL], K[K_MIN_PARTIAL]):
        if prior:
            _remove_partial(slabs, c, slot)
        _discard_slab(slabs, c, slot, pages, st)
    elif not prior:
        _add_partial(slabs, c, slot, True)


@njit(cache=True, forceinline=True)
def _slab_free(slabs, c, cpu, pages, st, obj):
    """kmem_cache_free() of object obj of cache c on CPU cpu."""
    slabs.caches[c, K_LIVE] -= 1
    slot = obj // slabs.caches[c, K_OBJS]
    _give_object(slabs, c, slot, obj)
    _do_slab_free(slabs, c, cpu, slot, 1, pages, st)


@njit(cache=True)
def _free_bulk(slabs, c, cpu, p, pages, st):
    """__kmem_cache_free_bulk() of p (reordered in place): build_detached_freelist() takes the last object's
    slab and the objects of that slab found scanning back until DETACHED_FREELIST_LOOKAHEAD objects of other
    slabs were seen (swapped behind the rest), and frees them together."""
    objs = slabs.caches[c, K_OBJS]
    size = p.shape[0]
    while size > 0:
        size -= 1
        slot = p[size] // objs
        _give_object(slabs, c, slot, p[size])
        cnt = 1
        same = size
        lookahead = DETACHED_FREELIST_LOOKAHEAD
        i = size
        while i > 0:
            i -= 1
            if p[i] // objs == slot:
                _give_object(slabs, c, slot, p[i])
                cnt += 1
                same -= 1
                if i != same:
                    p[i], p[same] = p[same], p[i]
                continue
            lookahead -= 1
            if lookahead == 0:
                break
        _do_slab_free(slabs, c, cpu, slot, cnt, pages, st)
        size = same


@njit(cache=True)
def _slab_free_bulk(slabs, c, cpu, p, pages, st):
    """kmem_cache_free_bulk() of the objects p of cache c on CPU cpu (p is reordered)."""
    slabs.caches[c, K_LIVE] -= p.shape[0]
    _free_bulk(slabs, c, cpu, p, pages, st)


# -- flushing and shrinking ----------------------------------------------------------------------------------------


@njit(cache=True)
def _flush_cpu_slab(slabs, c, cpu, pages, st):
    """flush_cpu_slab(): the CPU gives up its slab (deactivate_slab()) and its partial list (__put_partials())."""
    C = slabs.cpu[c, cpu]
    slot = C[C_SLAB]
    if slot != NO_SLAB:
        cpu_free = C[C_FREE]
        C[C_SLAB] = NO_SLAB
        C[C_FREE] = 0
        _deactivate_slab(slabs, c, slot, cpu_free, pages, st)
    n = C[C_NPARTIAL]
    if n > 0:
        C[C_NPARTIAL] = 0
        _put_partials(slabs, c, cpu, n, pages, st)


@njit(cache=True)
def _kmem_cache_shrink(slabs, c, pages, st):
    """kmem_cache_shrink(): every CPU flushed, then every empty slab of the node list discarded (the order of
    those left is not sorted: only the leak check follows, and it looks at none of them)."""
    for cpu in range(slabs.cpu.shape[1]):
        _flush_cpu_slab(slabs, c, cpu, pages, st)
    K = slabs.caches[c]
    base = K[K_SLOT_BASE]
    slot = K[K_NODE_HEAD] if K[K_NPARTIAL] > 0 else NO_SLAB
    while slot != NO_SLAB:
        nxt = slabs.slot[base + slot, SLAB_NEXT]
        if slabs.slot[base + slot, SLAB_FREE] == slabs.slot[base + slot, SLAB_OBJECTS]:
            _remove_partial(slabs, c, slot)
            _discard_slab(slabs, c, slot, pages, st)
        slot = nxt
