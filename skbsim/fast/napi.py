"""The fast engine's NAPI: events and IRQs, the end of a poll, the NAPI skb cache and defer lists, RX skbs.

sim.Simulation's scheduling (the event heap, _raise_irq, the end of _poll, _send_ipis) and the
per-CPU parts of net/core/skbuff.c and dev.c it drives (napi_skb_cache_get/_put,
skb_defer_free_flush, an RX skb's allocations and skb_release_data), compiled.  Functions that
touch several objects take the Kernel record k (skbsim.fast.state), as the model's take the kernel.
"""

from __future__ import annotations

from skbsim.fast.layout import (
    CLOCK_LIMIT, COUNTED, ERR_CLOCK, ERR_TABLE_FULL, HEAD_1K, HEAD_FRAG, HEAD_SMALL, READER_CPU, SLAB_TAG, U32_MASK,
    _IPI, _POLL, _READ, njit,
)
from skbsim.fast.mm import _p1k_alloc, _pf_alloc, _put_frags, _put_page
from skbsim.fast.page_pool import _pp_put_skb_frags, _pp_put_skb_page
from skbsim.fast.slub import _slab_alloc, _slab_alloc_bulk, _slab_free, _slab_free_bulk, _slab_page
from skbsim.fast.state import (
    APP_NEXT, APP_UNLIMITED, APP_WAITING, BUDGET_LEFT, BUSY_UNTIL, CACHE_SKB, CACHE_SMALL, COST, DEFER_IPI,
    DEFER_LEN, ERR, EV_CPU, EV_FIELDS, EV_KIND, EV_LAST, EV_LEN, EV_ORDER, EV_TIME, IPI_SENT, IPIS, IRQ_LATENCY,
    IRQS, NC_BULK, NC_CACHE_SIZE, NC_FLUSHES, NC_FREE, NC_GETS, NC_HITS, NC_LEN, NC_PUTS, NC_REFILL_FAILURES,
    NC_REFILLS, NOW, PG_IN_USE, PLOT, Q_DROPPED, Q_FRAMES, Q_NIC_FRAMES, RMEM, ROUND_START, SCHEDULED, SK_LEN,
    SKB_FRAG, SKB_HEAD, SKB_OBJ, SR_COUNT, SR_EVERY, SR_LEN, TIME_SQUEEZE, TRAFFIC_DONE,
)
from skbsim.fast.state import TC_RUN  # -- TCP --: its memory series is tcp_run's
from skbsim.fast.state import PAGE_POOL, PP_SOFTIRQ  # page_pool
from skbsim.fast.state import CP_FRAGSZ, CP_KIND  # napi_alloc_skb() by a table (bnxt, gve)
from skbsim.sim import NETDEV_BUDGET, NETDEV_BUDGET_NS

# -- the event heap (Simulation.events: (time, order, kind, cpu), smallest first) ------------------------------


@njit(cache=True, forceinline=True)
def _push(events, st, time_ns, kind, cpu):
    """Simulation._push(): an event at time_ns; every event time passes here, so this is where the clock
    is bounded (CLOCK_LIMIT)."""
    if st[EV_LEN] >= events.heap.shape[0]:
        st[ERR] = ERR_TABLE_FULL
        return
    if time_ns >= CLOCK_LIMIT:
        st[ERR] = ERR_CLOCK
        return
    st[EV_LAST] += 1
    _sift_up(events, st, time_ns, st[EV_LAST], kind, cpu)


@njit(cache=True, forceinline=True)
def _sift_up(events, st, time_ns, order, kind, cpu):
    """heappush() of an event whose order the caller gives (tcp_run: an ACK's event pushed when the ACK reaches
    the head of its flow's queue keeps the order it was given when sent); the caller checked the heap's room."""
    heap = events.heap
    n = st[EV_LEN]
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent, EV_TIME] < time_ns or (heap[parent, EV_TIME] == time_ns and heap[parent, EV_ORDER] < order):
            break
        for f in range(EV_FIELDS):
            heap[i, f] = heap[parent, f]
        i = parent
    heap[i, EV_TIME] = time_ns
    heap[i, EV_ORDER] = order
    heap[i, EV_KIND] = kind
    heap[i, EV_CPU] = cpu
    st[EV_LEN] = n + 1


@njit(cache=True, forceinline=True)
def _pop(events, st):
    """heappop(): remove the smallest (time, order) and make its time the clock's; returns kind * 1024 + cpu."""
    heap = events.heap
    st[NOW] = heap[0, EV_TIME]
    code = heap[0, EV_KIND] * 1024 + heap[0, EV_CPU]
    n = st[EV_LEN] - 1
    st[EV_LEN] = n
    t = heap[n, EV_TIME]
    o = heap[n, EV_ORDER]
    kind = heap[n, EV_KIND]
    c = heap[n, EV_CPU]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and (heap[child + 1, EV_TIME] < heap[child, EV_TIME] or
                              (heap[child + 1, EV_TIME] == heap[child, EV_TIME]
                               and heap[child + 1, EV_ORDER] < heap[child, EV_ORDER])):
            child += 1
        if t < heap[child, EV_TIME] or (t == heap[child, EV_TIME] and o < heap[child, EV_ORDER]):
            break
        for f in range(EV_FIELDS):
            heap[i, f] = heap[child, f]
        i = child
    if n > 0:
        heap[i, EV_TIME] = t
        heap[i, EV_ORDER] = o
        heap[i, EV_KIND] = kind
        heap[i, EV_CPU] = c
    return code


# -- NAPI scheduling (Simulation._raise_irq, the end of Simulation._poll, _send_ipis) ---------------------------


@njit(cache=True, forceinline=True)
def _raise_irq(k, cpu, time_ns):
    """Simulation._raise_irq(): hard IRQ -> napi_schedule(); NET_RX runs after the IRQ latency."""
    k.st[IRQS] += 1
    napi = k.pcpu[cpu]
    napi[SCHEDULED] = 1
    start = time_ns + k.cfg[IRQ_LATENCY]
    if napi[BUSY_UNTIL] > start:
        start = napi[BUSY_UNTIL]
    napi[BUDGET_LEFT] = NETDEV_BUDGET
    napi[ROUND_START] = start
    _push(k.events, k.st, start, _POLL, cpu)


@njit(cache=True, forceinline=True)
def _poll_done(k, cpu, work, budget, ndel, taken_before):
    """The end of napi_poll() in Simulation._poll: the CPU busy for the work done, then poll again (budget
    used up; a spent netdev_budget or 2 jiffies is a time squeeze), or napi_complete_done() and an IRQ at
    once for frames that came meanwhile; the reader woken; a point of the memory series."""
    cfg = k.cfg
    st = k.st
    napi = k.pcpu[cpu]
    end = st[NOW] + (work if work > ndel else ndel) * cfg[COST]
    napi[BUSY_UNTIL] = end
    napi[BUDGET_LEFT] -= work
    # a poll that took no frame off the ring ends NAPI with no traffic left, or when its retry would come at
    # this same instant (Simulation._poll)
    retry = end if work >= budget else end + cfg[IRQ_LATENCY]
    stalled = napi[Q_FRAMES] + napi[Q_DROPPED] == taken_before and (st[TRAFFIC_DONE] or retry == st[NOW])
    if work >= budget and not stalled:
        if napi[BUDGET_LEFT] <= 0 or end - napi[ROUND_START] >= NETDEV_BUDGET_NS:
            st[TIME_SQUEEZE] += 1
            napi[BUDGET_LEFT] = NETDEV_BUDGET
            napi[ROUND_START] = end
        _push(k.events, st, end, _POLL, cpu)
    else:
        napi[SCHEDULED] = 0
        if napi[Q_NIC_FRAMES] > napi[Q_FRAMES] + napi[Q_DROPPED] and not stalled:  # sim._pending()
            _raise_irq(k, cpu, end)
    if cfg[APP_UNLIMITED]:
        _push(k.events, st, end, _READ, READER_CPU)
    elif st[APP_WAITING] and st[SK_LEN] > 0:
        st[APP_WAITING] = 0
        _push(k.events, st, end if end > st[APP_NEXT] else st[APP_NEXT], _READ, READER_CPU)
    if cfg[PLOT] and not k.tcp.tc[TC_RUN]:  # (with a socket per flow: tcp_run._tcp_poll_end())
        _series_add(k.trace, st, end, st[PG_IN_USE], st[RMEM])


@njit(cache=True, forceinline=True)
def _send_ipis(k):
    """Simulation._send_ipis(): the IPIs the last read sent (kick_defer_list_purge()), in the order sent, each
    taken by its CPU after the IRQ latency and once that CPU's softirq work in progress is over."""
    st = k.st
    pcpu = k.pcpu
    for sent in range(1, st[IPIS] + 1):
        for cpu in range(pcpu.shape[0]):
            if pcpu[cpu, IPI_SENT] == sent:
                pcpu[cpu, IPI_SENT] = 0
                start = st[NOW] + k.cfg[IRQ_LATENCY]
                if pcpu[cpu, BUSY_UNTIL] > start:
                    start = pcpu[cpu, BUSY_UNTIL]
                _push(k.events, st, start, _IPI, cpu)
    st[IPIS] = 0


@njit(cache=True, forceinline=True)
def _take_ipi(k, cpu):
    """skbsim.net.skbuff.defer_ipi(): trigger_rx_softirq() takes the IPI, net_rx_action() flushes the list."""
    k.pcpu[cpu, DEFER_IPI] = 0
    if k.pcpu[cpu, DEFER_LEN]:
        k.st[PP_SOFTIRQ] = cpu + 1  # the softirq the IPI raised
        _defer_flush(k, cpu, COUNTED)
        k.st[PP_SOFTIRQ] = 0


@njit(cache=True)
def _series_add(trace, st, time_ns, in_use, rmem):
    """sim._Series.add() of the memory series (st's SR_* columns, trace.series)."""
    if not _thinned_take(st, SR_COUNT, SR_EVERY):
        return
    point = trace.series[st[SR_LEN]]
    point[0] = time_ns
    point[1] = in_use
    point[2] = rmem
    _thinned_keep(trace.series, st, SR_LEN, SR_EVERY)


@njit(cache=True, forceinline=True)
def _thinned_take(row, count, every):
    """skbsim.sockets.Thinned.take() of a series whose count and step are row[count] and row[every]: count one
    point; whether it is kept (then written at points[row[length]] and _thinned_keep())."""
    row[count] += 1
    return row[count] % row[every] == 0


@njit(cache=True, forceinline=True)
def _thinned_keep(points, row, length, every):
    """Thinned.keep() of the point just written at points[row[length]]: at the limit (points' rows, the
    Thinned's limit) every other point is dropped and the step doubles."""
    n = row[length] + 1
    if n >= points.shape[0]:
        for j in range(0, n, 2):
            for col in range(points.shape[1]):
                points[j // 2, col] = points[j, col]
        n = (n + 1) // 2
        row[every] *= 2
    row[length] = n


# -- the NAPI skb cache and defer lists (net/core/skbuff.c, dev.c) -----------------------------------------------


@njit(cache=True, forceinline=True)
def _nc_get(k, cpu):
    """napi_skb_cache_get(): an sk_buff object id from this CPU's cache, or -1.

    An empty cache is refilled by one kmem_cache_alloc_bulk() on this CPU, all or nothing.
    """
    st = k.st
    nc = k.pcpu[cpu]
    cache = k.nc.skb[cpu]
    st[NC_GETS] += 1
    if nc[NC_LEN] == 0:
        if not _slab_alloc_bulk(k.slabs, CACHE_SKB, cpu, cache, k.cfg[NC_BULK], k.pages, k.faults, st):
            st[NC_REFILL_FAILURES] += 1
            return -1
        nc[NC_LEN] = k.cfg[NC_BULK]
        st[NC_REFILLS] += 1
    else:
        st[NC_HITS] += 1
    nc[NC_LEN] -= 1
    return cache[nc[NC_LEN]]


@njit(cache=True, forceinline=True)
def _nc_put(k, cpu, obj, count_it):
    """napi_skb_cache_put() on one CPU's cache: a full cache gives its top NAPI_SKB_CACHE_FREE back to the slab
    in one kmem_cache_free_bulk() on that CPU."""
    st = k.st
    cfg = k.cfg
    nc = k.pcpu[cpu]
    cache = k.nc.skb[cpu]
    if count_it:
        st[NC_PUTS] += 1
    cache[nc[NC_LEN]] = obj
    nc[NC_LEN] += 1
    if nc[NC_LEN] == cfg[NC_CACHE_SIZE]:
        keep = cfg[NC_CACHE_SIZE] - cfg[NC_FREE]
        _slab_free_bulk(k.slabs, CACHE_SKB, cpu, cache[keep:cfg[NC_CACHE_SIZE]], k.pages, st)
        nc[NC_LEN] = keep
        if count_it:
            st[NC_FLUSHES] += 1


@njit(cache=True)
def _defer_flush(k, cpu, count_it):
    """skb_defer_free_flush(): napi_consume_skb() of every skb other CPUs handed back to this one (count_it:
    in a NAPI poll, whose cache statistics count; not in Kernel.drain())."""
    n = k.pcpu[cpu, DEFER_LEN]
    k.pcpu[cpu, DEFER_LEN] = 0
    defer = k.cpus.defer[cpu]
    for j in range(n):
        _release_skb(k, cpu, defer[j, SKB_HEAD], defer[j, SKB_FRAG], defer[j, SKB_OBJ])
        _nc_put(k, cpu, defer[j, SKB_OBJ], count_it)


# -- an skb's memory -------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _head_page(slabs, head):
    """virt_to_head_page() of an skb head: the head's own page (a page id) or its slab's page (SLAB_TAG +
    cache, object)."""
    if head < SLAB_TAG:
        return head
    return _slab_page(slabs, (head - SLAB_TAG) >> 32, (head - SLAB_TAG) & U32_MASK)


@njit(cache=True, forceinline=True)
def _release_data(k, cpu, head, frag):
    """skb_release_data() on CPU cpu: the frag pages' references in frag order, then skb_free_head(): a page
    fragment's reference (skb_free_frag), or a kmem cache object (skbuff_small_head or kmalloc: kfree);
    the pages of a large kmalloc head are a page id."""
    if frag >= 0:
        if k.cfg[PAGE_POOL]:
            _pp_put_skb_frags(k, frag)  # skb_pp_recycle(): page_pool frags go back to their pools
        else:
            _put_frags(k.pages, k.frags, k.st, frag)
    if head < SLAB_TAG:
        if k.cfg[PAGE_POOL]:
            _pp_put_skb_page(k, head)  # skb_pp_recycle(): a page_pool head goes back to its pool
        else:
            _put_page(k.pages, k.st, head)
    else:
        _slab_free(k.slabs, (head - SLAB_TAG) >> 32, cpu, k.pages, k.st, (head - SLAB_TAG) & U32_MASK)


@njit(cache=True, forceinline=True)
def _free_skb(k, cpu, head, frag, obj):
    """kfree_skb() / consume_skb() on CPU cpu of an skb nobody else holds: its data, then the sk_buff to its
    slab."""
    _release_skb(k, cpu, head, frag, obj)
    _slab_free(k.slabs, CACHE_SKB, cpu, k.pages, k.st, obj)


# -- GRO --
@njit(cache=True, forceinline=True)
def _release_skb(k, cpu, head, frag, obj):
    """skb_release_data() of the skb whose sk_buff is obj: with a frag_list (GRO's aggregates, kept by
    skbsim.fast.gro) its chained skbs are freed between its frags and its head."""
    if k.gro.cfg[gro.G_ON] and k.gro.member[obj, gro.M_NEXT] >= 0:
        gro._release_aggregate(k, cpu, head, frag, obj)
    else:
        _release_data(k, cpu, head, frag)


@njit(cache=True, forceinline=True)
def _alloc_rx_skb(k, cpu, kind, fragsz, buf_page):
    """An RX skb's allocations: (head, sk_buff object), the object -1 when one failed (everything taken on the
    way given back).

    kind -1, napi_build_skb(): the head is the driver's buffer (its page buf_page).  Otherwise
    __napi_alloc_skb(): HEAD_1K and HEAD_FRAG cut the head (fragsz bytes for the NAPI page_frag_cache)
    before taking the sk_buff, and skb_free_frag() it if that fails; HEAD_SMALL is __alloc_skb(), which
    takes the sk_buff first and the head from skbuff_small_head (the sk_buff goes back to its slab, not
    the cache, when there is none).
    """
    head = buf_page
    if kind == HEAD_1K or kind == HEAD_FRAG:
        if kind == HEAD_1K:
            head = _p1k_alloc(k, cpu)
        else:
            head = _pf_alloc(k.pages, k.faults, k.st, k.pcpu[cpu], k.cfg, fragsz)
        if head < 0:
            return -1, -1
    obj = _nc_get(k, cpu)
    if obj < 0:
        if kind == HEAD_1K or kind == HEAD_FRAG:
            _put_page(k.pages, k.st, head)
        return -1, -1
    if kind == HEAD_SMALL:
        small = _slab_alloc(k.slabs, CACHE_SMALL, cpu, k.pages, k.faults, k.st)
        if small < 0:
            _slab_free(k.slabs, CACHE_SKB, cpu, k.pages, k.st, obj)
            return -1, -1
        head = SLAB_TAG + (CACHE_SMALL << 32) + small
    return head, obj


@njit(cache=True, forceinline=True)
def _alloc_skb_by_table(k, cpu, copy, length):
    """napi_alloc_skb(length) by a table of what it gives for each length (CP_* rows, setup.napi_alloc_skb_table()):
    (head, sk_buff), -1 when it failed; a length beyond the table sets st[ERR] (the run is redone)."""
    if length >= copy.shape[0]:
        k.st[ERR] = ERR_TABLE_FULL
        return -1, -1
    return _alloc_rx_skb(k, cpu, copy[length, CP_KIND], copy[length, CP_FRAGSZ], -1)
from skbsim.fast import gro  # noqa: E402 - GRO (a module: gro uses this one's frees and NAPI cache)
