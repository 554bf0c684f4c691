"""The fast replay engine: the reference engine's model over integer state, compiled with numba.

Scope (everything else falls back to :mod:`skbsim.sim`, see :func:`unsupported`
and FastSimulation), on every kernel, any number of CPUs, synthetic or pcap
traffic, any rate, arrival process, app rate and rcvbuf up to 64 MiB:

- ice, rx=build_skb and rx=legacy, any MTU: frames of one buffer or several
  (legacy-rx 1664-byte buffers; build_skb 3072-byte buffers in order-1 pages
  above MTU 1500), in each release's clean-loop form; legacy header skbs from
  page_frag_1k (6.1-6.12), skbuff_small_head (6.18) or the upward-cut NAPI
  page_frag_cache (host);
- copybreak: copies into napi_alloc_skb(len) heads from page_frag_1k,
  skbuff_small_head or the NAPI page_frag_cache, larger frames built around
  ring buffers (replaced from the NAPI page_frag_cache, cut down to 6.12 and
  up from 6.13), frames of several buffers as frags;
- tun: every route, option and frame length (tun_build_skb() from each
  writer's task_frag, tun_alloc_skb() with kmalloc or page heads and paged
  rests, IFF_NAPI, IFF_NAPI_FRAGS), sk_wmem_alloc against sk_sndbuf;
- --fault on every driver (the same calls fail: the reference
  FaultInjector's rules and random.Random stream are replayed; tun's
  task_frag refill falling back to one page and 6.6+
  alloc_skb_with_frags() falling back to lower orders are followed in
  the loop, so a tun skb's blocks and truesize are decided there);
- --trace and --plot on every driver.

Not: --kernel-config.

Why the answers cannot differ: nothing is approximated.  The reference
engine builds the run (profile, traffic source, the rings as the driver's
open leaves them) and this module reads its constants from those objects,
or from the model's own functions on a scratch kernel (per length: a
copybreak copy head, what tun_get_user() does); the loop below then
performs, in the same order, the same state changes the reference functions
perform - NIC DMA into descriptors, the release's ice_clean_rx_irq() form
(put per buffer, per poll or per frame), the page reuse test on sampled
page counts and pagecnt_bias, the legacy header copy and frags, the 1K page
pieces, napi_skb_cache_get()/_put() with bulk refill and flush over SLUB
slabs (LIFO free lists, the partial list most-recent-last), page
allocation and freeing by order, every allocation's fault check and its
failure path, UDP admission, skb_condense(), forward allocation and
batched release, the reader and 6.18's defer lists, and the
NAPI/IRQ/time-squeeze timing - on integers instead of objects.  Object
identities that the JSON cannot see (pfns, slab addresses) are replaced by
recycled small ids; only their identity matters (which slab an object
returns to, which page a queued skb pins).  If the compiled loop reaches a
state it does not model (a table overflow, a descriptor without a buffer,
a leak at the end), the run is redone by the reference engine.
tests/test_fast_engine.py compares the two engines' JSON (and trace and
plot data) over random workloads; docs/engines.md has the design and the
figures.
"""

from __future__ import annotations

import math

import numpy as np

from skbsim.drivers.ice import PUT_PER_BUFFER, PUT_PER_FRAME, PUT_PER_POLL
from skbsim.mm.fault import LAYERS, fault_report
from skbsim.sim import NAPI_POLL_WEIGHT, NETDEV_BUDGET, NETDEV_BUDGET_NS, RunConfig, Simulation

try:  # numba is a dependency; without it the same loop runs as plain Python (slowly).
    from numba import njit as _numba_njit

    def njit(*args, **kwargs):
        """numba.njit without its reference-counting runtime (NRT).

        Every array here is allocated by Python and outlives the call; the
        compiled functions never allocate.  With NRT on, each call between
        them increments and decrements the reference count of every array it
        passes (atomically), which was three quarters of the loop's time.
        """
        kwargs.setdefault("_nrt", False)
        return _numba_njit(*args, **kwargs)
except ImportError:  # pragma: no cover
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda fn: fn

CHUNK = 1 << 16
#: the socket queue is a preallocated ring of rcvbuf / truesize entries
MAX_RCVBUF = 1 << 26

# -- indices into the scalar state array S -------------------------------------------------
(NOW, ORDER, APP_NEXT, APP_WAITING, NEV,
 PACKETS, BYTES, RING_DROPS, DELIVERED, TRUESIZE_TOTAL, POLLS, TIME_SQUEEZE, IRQS, PEAK_PINNED, PINNED,
 D_FRAMES, D_BYTES, D_NIC_FRAMES, D_RING_DROPS, D_OVERSIZE, D_USED, D_REUSED, D_RELEASED, D_PAGES_ALLOC, D_POLLS,
 IN_USE, PEAK_IN_USE, PG_FREE_TOP, PG_NEXT,
 NC_GETS, NC_HITS, NC_REFILLS, NC_PUTS, NC_FLUSHES,
 RMEM, FWD, DEFICIT, MEMALLOC, SK_DROPS, ENQUEUED, CONSUMED, PEAK_RMEM,
 Q_HEAD, Q_LEN, READER_LEN, ERR,
 SMALL_ALLOCS, SMALL_REFILLS, D_COPIED, D_BYTES_COPIED, CONDENSED, PF_ALLOCS, PF_REFILLS, PF_REUSES,
 CB_N_1K, CB_N_SMALL, CB_N_FRAG, CB_N_BUILD, FL_TOP, FL_NEXT,
 TRAFFIC_DONE, D_FRAMES_DROPPED, D_SKB_FAILURES, D_BUF_FAILURES, NC_REFILL_FAILURES, F_ANY,
 TR_LEN, SR_LEN, SR_EVERY, SR_COUNT,
 TUN_ROUTE_ALLOC, TUN_ROUTE_BUILD, TUN_EAGAIN, TUN_EINVAL,
 S_SIZE) = range(75)

# -- the fault injector (skbsim.mm.fault.FaultInjector) in S after the scalars ---------------------
#: layer numbers, in skbsim.mm.fault.LAYERS order; -1 for an allocation with no layer of its own
L_PAGE_ALLOC, L_SLAB, L_SKB_HEAD, L_SKB_DATA, L_PAGE_FRAG = range(5)
L_NONE = -1
#: one layer's rule: a FaultRule's fields, plus the draw threshold: fail when the 53-bit draw
#: behind random.random() is below it (ceil(probability * 2**53)); -1 when probability is 1 (no draw)
(FR_ACTIVE, FR_THRESHOLD, FR_INTERVAL, FR_TIMES, FR_SPACE, FR_COUNT, FR_INJECTED, FR_SIZE) = range(8)
F_RULES = S_SIZE
#: the seeded random.Random's Mersenne Twister: its position, then its 624 words
F_MT_INDEX = F_RULES + 5 * FR_SIZE
F_MT = F_MT_INDEX + 1
MT_N = 624
S_TOTAL = F_MT + MT_N

# -- indices into a slab cache's state K -----------------------------------------------------------
(K_NPARTIAL, K_FREE_TOP, K_NEXT, K_LIVE, K_ORDER, K_OBJS, K_LAYER, K_FAILED, K_SIZE) = range(9)

# -- indices into a CPU's row R of the per-CPU state (its NAPI, ring and caches) -------------------
(SCHEDULED, BUDGET_LEFT, ROUND_START, BUSY_UNTIL, NTU, NTC, NTA, FIRST_DESC, TAIL, HW_NEXT,
 Q_NIC_FRAMES, Q_FRAMES, NC_LEN, DEFER_LEN, P1K_PAGE, P1K_OFFSET, PF_PAGE, PF_OFFSET, PF_SIZE, PF_BIAS,
 Q_DROPPED, TF_PAGE, TF_OFFSET, TF_SIZE, TUN_WMEM, HQ_HEAD, HQ_LEN, R_SIZE) = range(28)

# -- indices into the constant array C -------------------------------------------------------
(RING_COUNT, RXMAX, RX_BUF_LEN, SKB_TRUESIZE_C, PAGE_SIZE_C, PUT_MODE, STRICT_FIT, FWD_DEFICIT_ONLY, DEFER_FREE,
 RCVBUF, APP_UNLIMITED, APP_GAP, COST, IRQ_LATENCY, NC_SIZE, NC_BULK, NC_FREE,
 LEGACY, HEAD_TRUESIZE, COND_ROOM, COND_TS, FRAME_SZ, HEAD_KIND, PF_ORDER, PF_FRAGSZ,
 DRIVER_CB, CB_COPYBREAK, CB_BUF_FRAGSZ, CB_BUILD_TS, PF_DOWN, CB_BUF_SIZE, RING_ORDER, TRACE, PLOT,
 DRIVER_TUN, TUN_SNDBUF, TF_ORDER, TUN_SMP, TUN_SMALL_KM, TUN_CHUNKS, TUN_MAX_ORDER, TUN_FRAG_LIMIT,
 C_SIZE) = range(43)
#: C[HEAD_KIND]: where a legacy-rx header skb's head comes from
HEAD_1K, HEAD_SMALL, HEAD_FRAG = 0, 1, 2

_PUT_MODES = {PUT_PER_BUFFER: 0, PUT_PER_POLL: 1, PUT_PER_FRAME: 2}
_POLL, _READ = 1, 2
#: net.core.skb_defer_max (Kernel.skb_defer_max)
SKB_DEFER_MAX = 64
USHRT_MAX = 0xFFFF
U32_MASK = 0xFFFFFFFF
#: error codes (S[ERR]): the compiled loop left its modelled ground
ERR_TABLE_FULL = 1
ERR_BUG = 2
ERR_EMPTY_FRAME = 4
ERR_FRAME_ABOVE_RING = 5
#: a copybreak skb head from skbuff_small_head is queued as this plus its object id (page ids stay below)
SMALL_TAG = 1 << 40
#: an skb's frags: -1 for none, a page id for one, FL_TAG plus a row of fl for several
FL_TAG = 1 << 41
#: --trace records (tr, a row each): their columns, and the outcomes (report.TRACE_FIELDS)
(T_TIME, T_CPU, T_FRAME_LEN, T_LEN, T_DATA_LEN, T_TRUESIZE, T_NR_FRAGS, T_KIND, T_OUTCOME, T_SIZE) = range(10)
OUTCOMES = ("delivered", "dropped:socket_rcvbuf", "dropped:ring_full", "dropped:oversize", "dropped:driver")
O_DELIVERED, O_SOCKET, O_RING_FULL, O_OVERSIZE, O_DRIVER = range(5)
#: --plot: the memory series keeps at most this many points (sim._Series)
SERIES_LIMIT = 2000
#: columns of the truesize table: nr_frags 0 .. MAX_SKB_FRAGS (17 with 4K pages) and one to spare
MAX_FRAGS_SEEN = 20
#: desc_dd of an ice descriptor: 0 not written back, DD_DONE written, DD_EOP written and the frame's last
DD_DONE, DD_EOP = 1, 2
#: a tun skb head that is a kmem cache object is queued as this plus (cache index << 32) plus its object id
KM_TAG = 1 << 42
#: tun's per-length table (_TunLengths): columns (T_DLEN: the paged bytes alloc_skb_with_frags() is asked
#: for; T_FRAGS on: the orders of its blocks when no allocation fails)
(T_ROUTE, T_TS, T_HEAD, T_CACHE, T_BUFLEN, T_NFRAGS, T_EXPAND, T_DLEN, T_FRAGS) = range(9)
#: T_ROUTE: refused (-EINVAL, -EMSGSIZE), tun_alloc_skb(), tun_build_skb(), tun_napi_alloc_frags()
ROUTE_NONE, ROUTE_ALLOC, ROUTE_BUILD, ROUTE_FRAGS = 0, 1, 2, 3
#: T_HEAD: the head is the writer's task_frag block, a kmem cache object (T_CACHE: which), or pages of
#: their own (kmalloc above KMALLOC_MAX_CACHE_SIZE; T_CACHE: their order)
TH_TASK_FRAG, TH_SLAB, TH_PAGES = 0, 1, 2
#: kmem caches a tun head may come from (skbuff_small_head and the kmalloc classes from 256 bytes up)
KM_MAX = 8
#: a tun queue holds at most this many written skbs the stack has not taken yet (else the run is redone)
TUN_INFLIGHT_MAX = 1 << 16
#: tun takes frames of ETH_HLEN (shorter ones are refused with -EINVAL) up to 65535 bytes
MIN_TUN_FRAME = 14
MAX_TUN_FRAME = 65535
ERR_REASONS = {
    ERR_EMPTY_FRAME: "a zero-length frame (the fast engine models frames of one or more bytes)",
    ERR_FRAME_ABOVE_RING: "a copybreak frame needs more buffers than the ring has",
    ERR_TABLE_FULL: "a table of the fast engine filled up",
    ERR_BUG: "the model reached a state the fast engine does not follow (a descriptor without a buffer)",
}
#: ice_construct_skb(): ICE_RX_HDR_SIZE, the header skb's size and the copy-everything bound
ICE_RX_HDR_SIZE = 256
ETH_HLEN = 14
SZ_1K = 1024
#: distinct headers the pcap reader's header table (_HeaderTable) and _frames_with_headlen()'s memo
#: hold at once; when full they start over empty, so memory does not grow with the trace and the
#: answers do not change
HEADER_TABLE_SIZE = 1 << 12
#: the odd multiplier of _header_slots()'s hash (2**64 / golden ratio); tests set 0, making every
#: header's hash collide, so that only the byte comparison tells headers apart
HEADER_HASH_MIX = 0x9E3779B97F4A7C15


def unsupported(config: RunConfig) -> str | None:
    """Why the fast engine cannot run this config (None when it can)."""
    if config.kernel_config:
        return "--kernel-config is not supported by the fast engine"
    if config.driver not in ("ice", "copybreak", "tun"):
        return f"the fast engine models only the ice, copybreak and tun drivers, not {config.driver}"
    if config.driver == "ice" and config.options.get("rx", "build_skb") not in ("build_skb", "legacy"):
        return "the fast engine models ice rx=build_skb and rx=legacy only"
    if config.rcvbuf > MAX_RCVBUF:
        return f"the fast engine sizes its socket queue for --rcvbuf up to {MAX_RCVBUF}"
    return None


# -- the compiled model ----------------------------------------------------------------------


@njit(cache=True)
def _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, time_ns, kind, cpu):
    n = S[NEV]
    if n >= ev_time.shape[0]:
        S[ERR] = ERR_TABLE_FULL
        return
    S[ORDER] += 1
    order = S[ORDER]
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if ev_time[parent] < time_ns or (ev_time[parent] == time_ns and ev_order[parent] < order):
            break
        ev_time[i] = ev_time[parent]
        ev_order[i] = ev_order[parent]
        ev_kind[i] = ev_kind[parent]
        ev_cpu[i] = ev_cpu[parent]
        i = parent
    ev_time[i] = time_ns
    ev_order[i] = order
    ev_kind[i] = kind
    ev_cpu[i] = cpu
    S[NEV] = n + 1


@njit(cache=True)
def _heap_pop(S, ev_time, ev_order, ev_kind, ev_cpu):
    """Remove the smallest (time, order); returns kind * 1024 + cpu (the caller reads the time first)."""
    kind = ev_kind[0] * 1024 + ev_cpu[0]
    n = S[NEV] - 1
    S[NEV] = n
    t = ev_time[n]
    o = ev_order[n]
    k = ev_kind[n]
    c = ev_cpu[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and (ev_time[child + 1] < ev_time[child] or
                              (ev_time[child + 1] == ev_time[child] and ev_order[child + 1] < ev_order[child])):
            child += 1
        if t < ev_time[child] or (t == ev_time[child] and o < ev_order[child]):
            break
        ev_time[i] = ev_time[child]
        ev_order[i] = ev_order[child]
        ev_kind[i] = ev_kind[child]
        ev_cpu[i] = ev_cpu[child]
        i = child
    if n > 0:
        ev_time[i] = t
        ev_order[i] = o
        ev_kind[i] = k
        ev_cpu[i] = c
    return kind


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


@njit(cache=True)
def _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, order, layer):
    """__alloc_pages() without limits: a new page id with refcount 1, or -1 when a fault is injected
    (the page_alloc layer, then the caller's own layer)."""
    if S[F_ANY] and (_should_fail(S, L_PAGE_ALLOC) or (layer >= 0 and _should_fail(S, layer))):
        return -1
    if S[PG_FREE_TOP] > 0:
        S[PG_FREE_TOP] -= 1
        pid = page_free[S[PG_FREE_TOP]]
    else:
        pid = S[PG_NEXT]
        if pid >= page_ref.shape[0]:
            S[ERR] = ERR_TABLE_FULL
            return -1
        S[PG_NEXT] = pid + 1
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
    page_free[S[PG_FREE_TOP]] = pid
    S[PG_FREE_TOP] += 1


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
        if K[K_FREE_TOP] > 0:
            K[K_FREE_TOP] -= 1
            slot = sl_slotfree[K[K_FREE_TOP]]
        else:
            slot = K[K_NEXT]
            if slot >= sl_top.shape[0]:
                S[ERR] = ERR_TABLE_FULL
                return -1
            K[K_NEXT] = slot + 1
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
        sl_slotfree[K[K_FREE_TOP]] = slot
        K[K_FREE_TOP] += 1
        _put_page(S, page_ref, page_order, page_free, pg_freed, sl_page[slot])


@njit(cache=True, inline="always")
def _slab_page(slab, obj):
    """virt_to_head_page() of a slab object: its slab's page."""
    return slab[4][obj // slab[0][K_OBJS]]


@njit(cache=True)
def _nc_put(S, C, R, ncv, slab0, slab1,
            page_ref, page_order, page_free, pg_freed, obj, count_it):
    """napi_skb_cache_put() on one CPU's cache: a full cache gives its top NAPI_SKB_CACHE_FREE back."""
    if count_it:
        S[NC_PUTS] += 1
    ncv[R[NC_LEN]] = obj
    R[NC_LEN] += 1
    if R[NC_LEN] == C[NC_SIZE]:
        keep = C[NC_SIZE] - C[NC_FREE]
        for j in range(keep, C[NC_SIZE]):
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, ncv[j])
        R[NC_LEN] = keep
        if count_it:
            S[NC_FLUSHES] += 1


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
    fl[S[FL_TOP], fl.shape[1] - 1] = entry
    S[FL_TOP] += 1


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
def _head_page(slab1, tn, head):
    """virt_to_head_page() of an skb head: the head's own page (a page id), its skbuff_small_head
    slab's page (SMALL_TAG + object) or its tun kmem cache slab's page (KM_TAG + cache, object)."""
    if head < SMALL_TAG:
        return head
    if head < KM_TAG:
        return _slab_page(slab1, head - SMALL_TAG)
    c = (head - KM_TAG) >> 32
    obj = (head - KM_TAG) & U32_MASK
    return tn[6][c, obj // tn[2][c, K_OBJS]]


@njit(cache=True, inline="always")
def _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, head, frag):
    """skb_release_data(): the frag pages' references in frag order, then skb_free_head(): a page
    fragment's reference (skb_free_frag), an skbuff_small_head object, or a tun kmalloc head (kfree:
    a kmem cache object, or the pages of a large one, which are a page id)."""
    if frag >= 0:
        _put_frags(S, page_ref, page_order, page_free, pg_freed, fl, frag)
    if head < SMALL_TAG:
        _put_page(S, page_ref, page_order, page_free, pg_freed, head)
    elif head < KM_TAG:
        _slab_free(S, slab1, page_ref, page_order, page_free, pg_freed, head - SMALL_TAG)
    else:
        c = (head - KM_TAG) >> 32
        _slab_free(S, _km(tn, c), page_ref, page_order, page_free, pg_freed, (head - KM_TAG) & U32_MASK)


@njit(cache=True)
def _defer_flush(S, C, R, ncv, dfv_page, dfv_frag, dfv_obj, slab0, slab1, fl, tn,
                 page_ref, page_order, page_free, pg_freed, count_it):
    """skb_defer_free_flush(): napi_consume_skb() of every skb other CPUs handed back to this one."""
    n = R[DEFER_LEN]
    R[DEFER_LEN] = 0
    for j in range(n):
        _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, dfv_page[j], dfv_frag[j])
        _nc_put(S, C, R, ncv, slab0, slab1,
                page_ref, page_order, page_free, pg_freed, dfv_obj[j], count_it)


@njit(cache=True)
def _cb_nic_receive(S, C, CS, cpu, length, desc_dd, desc_len, desc_hlen, ring_page):
    """copybreak_nic_receive(): the frame into ceil(len / rx_buf) consecutive slots, each cleaned and
    holding a buffer (desc_hlen marks the end of the frame); False when dropped for want of slots
    (counted here) or when S[ERR] is set."""
    count = C[RING_COUNT]
    if length == 0:
        S[ERR] = ERR_EMPTY_FRAME
        return False
    nbufs = (length + C[RX_BUF_LEN] - 1) // C[RX_BUF_LEN]
    if nbufs > count:
        S[ERR] = ERR_FRAME_ABOVE_RING
        return False
    hw = CS[cpu, HW_NEXT]
    for _ in range(nbufs):
        if desc_dd[cpu, hw] or ring_page[cpu, hw] < 0:
            S[D_RING_DROPS] += 1
            return False
        hw += 1
        if hw == count:
            hw = 0
    hw = CS[cpu, HW_NEXT]
    remaining = length
    for b in range(nbufs):
        part = remaining if remaining < C[RX_BUF_LEN] else C[RX_BUF_LEN]
        remaining -= part
        desc_len[cpu, hw] = part
        desc_hlen[cpu, hw] = 1 if b == nbufs - 1 else 0
        desc_dd[cpu, hw] = 1
        hw += 1
        if hw == count:
            hw = 0
    CS[cpu, HW_NEXT] = hw
    S[D_NIC_FRAMES] += 1
    CS[cpu, Q_NIC_FRAMES] += 1
    return True


@njit(cache=True)
def _run(S, C, CS, lengths, times, queues, hlens, n, final,
         ev_time, ev_order, ev_kind, ev_cpu,
         page_ref, page_order, page_free, page_pin, pg_alloc, pg_freed,
         ring_page, ring_bias, ring_pgcnt, desc_dd, desc_len, desc_hlen,
         slab0, slab1,
         nc, df_page, df_frag, df_obj, q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl,
         obs, tn):
    """Arrivals lengths[:n] at times[:n] on CPUs queues[:n], with every event before each;
    with final, then all remaining events."""
    i = 0
    count = C[RING_COUNT]
    ncpus = CS.shape[0]
    if final:
        S[TRAFFIC_DONE] = 1
    while S[ERR] == 0:
        if i < n:
            arrival = times[i]
            if S[NEV] > 0 and ev_time[0] < arrival:
                pass
            else:
                # -- a frame arrives (Simulation._arrive, ice_nic_receive) --------------------------
                S[NOW] = arrival
                length = lengths[i]
                cpu = queues[i] % ncpus
                i += 1
                S[PACKETS] += 1
                S[BYTES] += length
                if C[DRIVER_TUN]:
                    # tun: the frame is a write() into the queue (_tun_write); a refused one is counted there
                    if _tun_write(S, C, CS, cpu, length, page_ref, page_order, page_free, pg_alloc, pg_freed,
                                  slab0, slab1, nc, fl, tn):
                        if CS[cpu, SCHEDULED] == 0:
                            _raise_irq(S, C, CS[cpu], ev_time, ev_order, ev_kind, ev_cpu, S[NOW], cpu)
                    elif S[ERR]:
                        return i
                    elif C[TRACE]:
                        _trace_drop(S, obs[0], S[NOW], cpu, length, O_DRIVER)  # the write was refused
                    continue
                ok = True
                if length > C[RXMAX]:
                    S[D_OVERSIZE] += 1
                    ok = False
                elif C[DRIVER_CB]:
                    if not _cb_nic_receive(S, C, CS, cpu, length, desc_dd, desc_len, desc_hlen, ring_page):
                        if S[ERR]:
                            return i
                        ok = False
                    else:
                        if CS[cpu, SCHEDULED] == 0:
                            _raise_irq(S, C, CS[cpu], ev_time, ev_order, ev_kind, ev_cpu, S[NOW], cpu)
                        continue
                elif length == 0:
                    S[ERR] = ERR_EMPTY_FRAME
                    return i
                else:
                    # ice_nic_receive(): ceil(len / rx_buf_len) posted descriptors, or a drop
                    nbufs = 1 if length <= C[RX_BUF_LEN] else (length + C[RX_BUF_LEN] - 1) // C[RX_BUF_LEN]
                    if ((CS[cpu, TAIL] - CS[cpu, HW_NEXT]) % count + count) % count < nbufs:
                        S[D_RING_DROPS] += 1
                        ok = False
                if not ok:
                    S[RING_DROPS] += 1
                    if C[TRACE]:
                        _trace_drop(S, obs[0], S[NOW], cpu, length, O_OVERSIZE if length > C[RXMAX] else O_RING_FULL)
                else:
                    idx = CS[cpu, HW_NEXT]
                    remaining = length
                    for b in range(nbufs):
                        part = remaining if remaining < C[RX_BUF_LEN] else C[RX_BUF_LEN]
                        remaining -= part
                        desc_len[cpu, idx] = part
                        desc_hlen[cpu, idx] = hlens[i - 1] if b == 0 else 0
                        desc_dd[cpu, idx] = DD_EOP if b == nbufs - 1 else DD_DONE
                        idx += 1
                        if idx == count:
                            idx = 0
                    CS[cpu, HW_NEXT] = idx
                    S[D_NIC_FRAMES] += 1
                    CS[cpu, Q_NIC_FRAMES] += 1
                    if CS[cpu, SCHEDULED] == 0:
                        _raise_irq(S, C, CS[cpu], ev_time, ev_order, ev_kind, ev_cpu, S[NOW], cpu)
                continue
        elif not final or S[NEV] == 0:
            return i
        # -- the next event -----------------------------------------------------------------------
        S[NOW] = ev_time[0]
        code = _heap_pop(S, ev_time, ev_order, ev_kind, ev_cpu)
        kind = code // 1024
        cpu = code % 1024
        if kind == _POLL and C[DRIVER_TUN]:
            _tun_poll(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu, page_ref, page_order, page_free, page_pin,
                      pg_freed, slab0, slab1, nc, df_page, df_frag, df_obj, q_page, q_frag, q_obj, q_ts, q_cpu,
                      dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl, tn, obs)
        elif kind == _POLL:
            _poll(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu,
                  page_ref, page_order, page_free, page_pin, pg_alloc, pg_freed,
                  ring_page, ring_bias, ring_pgcnt, desc_dd, desc_len, desc_hlen,
                  slab0, slab1,
                  nc, df_page, df_frag, df_obj, q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj,
                  dl_hlen, dl_dlen, dl_ts, cb_tab, fl, tn, obs)
        else:
            _app_read(S, C, CS, ev_time, ev_order, ev_kind, ev_cpu, page_ref, page_order, page_free, page_pin,
                      pg_freed, slab0, slab1, nc, df_page, df_frag, df_obj,
                      q_page, q_frag, q_obj, q_ts, q_cpu, fl, tn)
    return i


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


@njit(cache=True, inline="always")
def _nc_get(S, C, CS, cpu, nc, slab0, page_ref, page_order, page_free, pg_alloc, pg_freed):
    """napi_skb_cache_get(): an sk_buff object id from this CPU's cache, or -1.

    An empty cache is refilled by kmem_cache_alloc_bulk(), all or nothing: when
    one allocation fails, the objects already taken go back in the order taken.
    """
    S[NC_GETS] += 1
    if CS[cpu, NC_LEN] == 0:
        for _ in range(C[NC_BULK]):
            obj = _slab_alloc(S, slab0, page_ref, page_order, page_free, pg_alloc)
            if obj < 0:
                for j in range(CS[cpu, NC_LEN]):
                    _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, nc[cpu, j])
                CS[cpu, NC_LEN] = 0
                S[NC_REFILL_FAILURES] += 1
                return -1
            nc[cpu, CS[cpu, NC_LEN]] = obj
            CS[cpu, NC_LEN] += 1
        S[NC_REFILLS] += 1
    else:
        S[NC_HITS] += 1
    CS[cpu, NC_LEN] -= 1
    return nc[cpu, CS[cpu, NC_LEN]]


@njit(cache=True, inline="always")
def _alloc_rx_skb(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, pg_freed, slab0, slab1, nc, kind,
                  fragsz, buf_page):
    """An RX skb's allocations: (head, sk_buff object), the object -1 when one failed (everything taken
    on the way given back).

    kind -1, napi_build_skb(): the head is the driver's buffer (its page buf_page).  Otherwise
    __napi_alloc_skb(): HEAD_1K and HEAD_FRAG cut the head (fragsz bytes for the NAPI page_frag_cache)
    before taking the sk_buff, and skb_free_frag() it if that fails; HEAD_SMALL is __alloc_skb(),
    which takes the sk_buff first and the head from skbuff_small_head (the sk_buff goes back to its
    slab, not the cache, when there is none).
    """
    head = buf_page
    if kind == HEAD_1K or kind == HEAD_FRAG:
        if kind == HEAD_1K:
            head = _p1k_alloc(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc)
        else:
            head = _pf_alloc(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, fragsz)
        if head < 0:
            return -1, -1
    obj = _nc_get(S, C, CS, cpu, nc, slab0, page_ref, page_order, page_free, pg_alloc, pg_freed)
    if obj < 0:
        if kind == HEAD_1K or kind == HEAD_FRAG:
            _put_page(S, page_ref, page_order, page_free, pg_freed, head)
        return -1, -1
    if kind == HEAD_SMALL:
        head = _slab_alloc(S, slab1, page_ref, page_order, page_free, pg_alloc)
        if head < 0:
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, obj)
            return -1, -1
        head += SMALL_TAG
    return head, obj


@njit(cache=True, inline="always")
def _ice_fill_head(S, C, cpu, ring_bias, desc_hlen, slot, size):
    """The bytes of the frame's first buffer (size of them) that end up in the skb's head.

    build_skb: all of them, in place.  legacy-rx (ice_construct_skb): a buffer of at most
    ICE_RX_HDR_SIZE is copied whole and its reference given back (6.9 does it in the put loop through
    ICE_SKB_CONSUMED, before the reuse test, as here); a longer one has its eth_get_headlen() bytes
    copied and the rest becomes frag 0.
    """
    if not C[LEGACY]:
        return size
    headlen = size
    if size > ICE_RX_HDR_SIZE:
        headlen = desc_hlen[cpu, slot]
    S[D_BYTES_COPIED] += headlen
    if size <= headlen:
        S[D_COPIED] += 1
        ring_bias[cpu, slot] += 1
    return headlen


@njit(cache=True)
def _fl_take(S, fl):
    """A free row of fl (frag lists of several pages), or -1 when the table is full."""
    if S[FL_TOP] > 0:
        S[FL_TOP] -= 1
        return fl[S[FL_TOP], fl.shape[1] - 1]
    entry = S[FL_NEXT]
    if entry >= fl.shape[0]:
        S[ERR] = ERR_TABLE_FULL
        return -1
    S[FL_NEXT] += 1
    return entry


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
def _trace_drop(S, tr, time_ns, cpu, frame_len, outcome):
    """A --trace record of a frame refused by the NIC or dropped by the driver (no skb: its skb
    columns stay -1)."""
    row = S[TR_LEN]
    if row >= tr.shape[0]:
        S[ERR] = ERR_TABLE_FULL
        return
    tr[row, T_TIME] = time_ns
    tr[row, T_CPU] = cpu
    tr[row, T_FRAME_LEN] = frame_len
    for col in range(T_LEN, T_OUTCOME):
        tr[row, col] = -1
    tr[row, T_OUTCOME] = outcome
    S[TR_LEN] = row + 1


@njit(cache=True)
def _count_truesize(S, counts, values, frame_len, nr_frags, truesize):
    """truesize_by_len for --plot: skbs by (frame length, nr_frags), which fixes their truesize."""
    if frame_len >= counts.shape[0] or nr_frags >= counts.shape[1]:
        S[ERR] = ERR_TABLE_FULL
        return
    if counts[frame_len, nr_frags] and values[frame_len, nr_frags] != truesize:
        S[ERR] = ERR_BUG  # two truesizes for one (length, frags): not a run this table can describe
        return
    counts[frame_len, nr_frags] += 1
    values[frame_len, nr_frags] = truesize


@njit(cache=True)
def _series_add(S, series, time_ns, in_use, rmem):
    """sim._Series.add(): a point every SR_EVERY calls; at SERIES_LIMIT points every other one is
    dropped and the step doubles."""
    S[SR_COUNT] += 1
    if S[SR_COUNT] % S[SR_EVERY]:
        return
    n = S[SR_LEN]
    series[n, 0] = time_ns
    series[n, 1] = in_use
    series[n, 2] = rmem
    n += 1
    if n >= SERIES_LIMIT:
        for j in range(0, n, 2):
            series[j // 2, 0] = series[j, 0]
            series[j // 2, 1] = series[j, 1]
            series[j // 2, 2] = series[j, 2]
        n = (n + 1) // 2
        S[SR_EVERY] *= 2
    S[SR_LEN] = n


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


@njit(cache=True)
def _raise_irq(S, C, R, ev_time, ev_order, ev_kind, ev_cpu, time_ns, cpu):
    S[IRQS] += 1
    R[SCHEDULED] = 1
    start = time_ns + C[IRQ_LATENCY]
    if R[BUSY_UNTIL] > start:
        start = R[BUSY_UNTIL]
    R[BUDGET_LEFT] = NETDEV_BUDGET
    R[ROUND_START] = start
    _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, start, _POLL, cpu)


@njit(cache=True)
def _put_rx_buf(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias, ring_pgcnt, count, slot):
    """ice_put_rx_buf(): reuse the page at next_to_alloc, or drain the driver's references."""
    pid = ring_page[cpu, slot]
    if ((ring_pgcnt[cpu, slot] - ring_bias[cpu, slot]) & U32_MASK) <= 1:
        if ring_bias[cpu, slot] == 1:
            page_ref[pid] += USHRT_MAX - 1
            ring_bias[cpu, slot] = USHRT_MAX
        nta = CS[cpu, NTA]
        bias = ring_bias[cpu, slot]
        nxt = nta + 1
        CS[cpu, NTA] = nxt if nxt < count else 0
        ring_page[cpu, nta] = pid
        ring_bias[cpu, nta] = bias
        S[D_REUSED] += 1
    else:
        page_ref[pid] -= ring_bias[cpu, slot]
        if page_ref[pid] == 0:
            _free_page(S, page_ref, page_order, page_free, pg_freed, pid)
        elif page_ref[pid] < 0:
            S[ERR] = ERR_BUG
        S[D_RELEASED] += 1
    ring_page[cpu, slot] = -1


@njit(cache=True, inline="always")
def _ice_put_frame(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias, ring_pgcnt, count,
                   first, ntc, consumed, put):
    """The buffers of the frame in slots [first, ntc): a dropped (consumed) frame gives each its reference
    back (ICE_XDP_CONSUMED); with put, each goes through ice_put_rx_buf() now, as 6.12.14+'s
    ice_put_rx_mbuf() does (6.9 puts them in the loop after the poll)."""
    b = first
    while b != ntc:
        if consumed:
            ring_bias[cpu, b] += 1
        if put:
            _put_rx_buf(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias, ring_pgcnt,
                        count, b)
        b += 1
        if b == count:
            b = 0


@njit(cache=True)
def _poll(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu, page_ref, page_order, page_free, page_pin, pg_alloc,
          pg_freed, ring_page, ring_bias, ring_pgcnt, desc_dd, desc_len, desc_hlen,
          slab0, slab1,
          nc, dfv_page, dfv_frag, dfv_obj, q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl,
          tn, obs):
    """One napi_poll() (Simulation._poll) with the driver's poll inside (ice_napi_poll() /
    ice_clean_rx_irq(), or copybreak_poll()), then the stack and the end of the poll."""
    count = C[RING_COUNT]
    mode = C[PUT_MODE]
    S[POLLS] += 1
    taken_before = CS[cpu, Q_FRAMES] + CS[cpu, Q_DROPPED]
    if CS[cpu, DEFER_LEN]:
        _defer_flush(S, C, CS[cpu], nc[cpu], dfv_page[cpu], dfv_frag[cpu], dfv_obj[cpu], slab0, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, True)
    budget = NAPI_POLL_WEIGHT if NAPI_POLL_WEIGHT < CS[cpu, BUDGET_LEFT] else CS[cpu, BUDGET_LEFT]
    S[D_POLLS] += 1
    ndel = 0
    work = budget
    if budget > 0 and C[DRIVER_CB]:
        # copybreak_clean_rx_irq(): a frame of one or more buffers; copy up to copybreak, else build_skb
        total = 0
        ntc = CS[cpu, NTC]
        while total < budget:
            if desc_dd[cpu, ntc] == 0:
                break
            # _frame_slots(): the frame's descriptors up to the one marked end of packet
            nslots = 1
            size = desc_len[cpu, ntc]
            if desc_hlen[cpu, ntc] == 0:
                last = ntc
                complete = True
                while desc_hlen[cpu, last] == 0:
                    last += 1
                    if last == count:
                        last = 0
                    if desc_dd[cpu, last] == 0 or last == ntc:
                        complete = False
                        break
                    size += desc_len[cpu, last]
                    nslots += 1
                if not complete:
                    break
            slot = ntc
            for b in range(nslots):
                if ring_page[cpu, slot] < 0:
                    S[ERR] = ERR_BUG
                    return
                slot += 1
                if slot == count:
                    slot = 0
            slot = ntc
            S[D_USED] += nslots
            frag_entry = -1
            first_len = desc_len[cpu, ntc]
            dropped = False
            if size <= C[CB_COPYBREAK]:
                # copybreak_copy_skb(): napi_alloc_skb(len), the head's source depending on len; the
                # buffer stays on the ring either way
                kind = cb_tab[0, size]
                S[D_REUSED] += 1
                head_pid, obj = _alloc_rx_skb(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, pg_freed,
                                              slab0, slab1, nc, kind, cb_tab[2, size], -1)
                if obj < 0:
                    S[D_SKB_FAILURES] += 1
                    dropped = True
                else:
                    S[D_BYTES_COPIED] += size
                    S[D_COPIED] += 1
                    S[CB_N_1K + kind] += 1
                    dl_ts[ndel] = cb_tab[1, size]
            else:
                # copybreak_build_skb(): a replacement for every buffer of the frame first (napi_alloc_frag;
                # held in a row of fl until all are there), then napi_build_skb() around the first old
                # buffer and the others as frags (truesize buf_size each)
                kind = -1
                frag_entry = _fl_take(S, fl)
                if frag_entry < 0:
                    return
                taken = 0
                while taken < nslots:
                    page = _pf_alloc(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, C[CB_BUF_FRAGSZ])
                    if page < 0:
                        break
                    taken += 1
                    fl[frag_entry, taken] = page
                if taken < nslots:
                    # no replacement: those taken go back, the frame is dropped and its buffers stay
                    S[D_BUF_FAILURES] += 1
                    S[D_REUSED] += nslots
                    for b in range(1, taken + 1):
                        _put_page(S, page_ref, page_order, page_free, pg_freed, fl[frag_entry, b])
                    dropped = True
                else:
                    head_pid = ring_page[cpu, slot]
                    for b in range(nslots):
                        old = ring_page[cpu, slot]
                        ring_page[cpu, slot] = fl[frag_entry, b + 1]
                        if b > 0:
                            fl[frag_entry, b] = old  # frag b - 1
                        slot += 1
                        if slot == count:
                            slot = 0
                    fl[frag_entry, 0] = nslots - 1
                    S[D_RELEASED] += nslots
                    obj = _nc_get(S, C, CS, cpu, nc, slab0, page_ref, page_order, page_free, pg_alloc, pg_freed)
                    if obj < 0:
                        # no sk_buff: the old buffers are freed (skb_free_frag), the frame dropped
                        S[D_SKB_FAILURES] += 1
                        _put_page(S, page_ref, page_order, page_free, pg_freed, head_pid)
                        for b in range(1, nslots):
                            _put_page(S, page_ref, page_order, page_free, pg_freed, fl[frag_entry, b])
                        dropped = True
                    else:
                        S[CB_N_BUILD] += 1
                        dl_ts[ndel] = C[CB_BUILD_TS] + (nslots - 1) * C[CB_BUF_SIZE]
                if dropped or nslots == 1:
                    # the row goes back to the free stack (one buffer: no frags to keep)
                    fl[S[FL_TOP], fl.shape[1] - 1] = frag_entry
                    S[FL_TOP] += 1
                    frag_entry = -1
            for b in range(nslots):
                desc_dd[cpu, ntc] = 0
                ntc += 1
                if ntc == count:
                    ntc = 0
            total += 1
            if dropped:
                S[D_FRAMES_DROPPED] += 1
                CS[cpu, Q_DROPPED] += 1
                if C[TRACE]:
                    _trace_drop(S, obs[0], S[NOW], cpu, size, O_DRIVER)
                continue
            # dl_hlen / dl_dlen: the first buffer's bytes and the frags' (skb_condense's test)
            S[D_BYTES] += size
            S[D_FRAMES] += 1
            CS[cpu, Q_FRAMES] += 1
            dl_page[ndel] = head_pid
            dl_frag[ndel] = FL_TAG + frag_entry if frag_entry >= 0 else -1
            dl_obj[ndel] = obj
            dl_hlen[ndel] = first_len
            dl_dlen[ndel] = size - first_len
            ndel += 1
        CS[cpu, NTC] = ntc
        work = total
    elif budget > 0:
        total = 0
        ntc = CS[cpu, NTC]
        cached_ntc = CS[cpu, FIRST_DESC]
        cleaned_count = 0
        if mode == 0:
            cleaned_count = (0 if CS[cpu, NTC] > CS[cpu, NTU] else count) + CS[cpu, NTC] - CS[cpu, NTU] - 1
        head_ts = C[HEAD_TRUESIZE] if C[LEGACY] else C[SKB_TRUESIZE_C]
        ice_kind = C[HEAD_KIND] if C[LEGACY] else -1  # ice_construct_skb's header skb, or ice_build_skb
        # the frame being gathered: its first slot, bytes, skb head and sk_buff, bytes in the head,
        # frags (a page id, or FL_TAG + a row of fl) and how many
        in_frame = False
        f_first = 0
        f_size = 0
        f_head = -1
        f_obj = -1
        f_hlen = 0
        f_frag = -1
        f_nfrags = 0
        while total < budget:
            if desc_dd[cpu, ntc] == 0:
                if in_frame:
                    S[ERR] = ERR_BUG  # the NIC writes whole frames: a half-written one is not modelled
                    return
                break
            size = desc_len[cpu, ntc]
            eop = desc_dd[cpu, ntc] == DD_EOP
            slot = ntc
            if ring_page[cpu, slot] < 0:
                # A written descriptor without a buffer: the reference model fails here too;
                # leave it to the reference engine rather than read a page that is not there.
                S[ERR] = ERR_BUG
                return
            # ice_get_rx_buf() (6.12.14+ samples the page counts at the frame's end, ice_get_pgcnts();
            # nothing between changes them)
            ring_pgcnt[cpu, slot] = page_ref[ring_page[cpu, slot]]
            ring_bias[cpu, slot] -= 1
            S[D_USED] += 1
            if not in_frame:
                in_frame = True
                f_first = slot
                f_size = size
                f_frag = -1
                f_nfrags = 0
                if mode == 0:
                    # 6.1 builds the skb at the frame's first buffer (ice_build_skb / ice_construct_skb)
                    f_head, f_obj = _alloc_rx_skb(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc,
                                                  pg_freed, slab0, slab1, nc, ice_kind, C[PF_FRAGSZ],
                                                  ring_page[cpu, slot])
                    if f_obj < 0:
                        # the frame stays on the ring with the buffer's reference back; the next poll retries
                        S[D_SKB_FAILURES] += 1
                        ring_bias[cpu, slot] += 1
                        break
                    f_hlen = _ice_fill_head(S, C, cpu, ring_bias, desc_hlen, slot, size)
                    if f_hlen < size:
                        f_frag = ring_page[cpu, slot]  # the rest of the first buffer: frag 0
                        f_nfrags = 1
            else:
                f_size += size
                if mode == 0:
                    # ice_add_rx_frag(): the buffer joins the skb at once
                    f_frag = _add_frag(S, fl, f_frag, ring_page[cpu, slot])
                    f_nfrags += 1
            ntc += 1
            if ntc == count:
                ntc = 0
            if mode == 0:
                _put_rx_buf(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias, ring_pgcnt,
                            count, slot)
                cleaned_count += 1
            if not eop:
                continue
            in_frame = False
            if mode != 0:
                # 6.3+: the skb is built at the frame's last buffer around the gathered xdp_buff
                f_head, f_obj = _alloc_rx_skb(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, pg_freed,
                                              slab0, slab1, nc, ice_kind, C[PF_FRAGSZ], ring_page[cpu, f_first])
                if f_obj < 0:
                    # dropped; every buffer of the frame gets its reference back (ICE_XDP_CONSUMED) and is
                    # put back now (6.12.14+, ice_put_rx_mbuf) or by the loop after (6.9)
                    S[D_SKB_FAILURES] += 1
                    S[D_FRAMES_DROPPED] += 1
                    CS[cpu, Q_DROPPED] += 1
                    if C[TRACE]:
                        _trace_drop(S, obs[0], S[NOW], cpu, f_size, O_DRIVER)
                    _ice_put_frame(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias,
                                   ring_pgcnt, count, f_first, ntc, True, mode == 2)
                    CS[cpu, FIRST_DESC] = ntc
                    break
                f_hlen = _ice_fill_head(S, C, cpu, ring_bias, desc_hlen, f_first, desc_len[cpu, f_first])
                if f_hlen < desc_len[cpu, f_first]:
                    f_frag = ring_page[cpu, f_first]
                    f_nfrags = 1
                # xdp_update_skb_shared_info(): the gathered buffers follow as frags
                b = f_first + 1
                if b == count:
                    b = 0
                while b != ntc:
                    f_frag = _add_frag(S, fl, f_frag, ring_page[cpu, b])
                    f_nfrags += 1
                    b += 1
                    if b == count:
                        b = 0
                if mode == 2:
                    _ice_put_frame(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias,
                                   ring_pgcnt, count, f_first, ntc, False, True)
                CS[cpu, FIRST_DESC] = ntc
            if S[ERR]:
                return
            # eth_skb_pad() raises len to 60; the driver counts skb->len
            S[D_BYTES] += f_size if f_size >= 60 else 60
            S[D_FRAMES] += 1
            CS[cpu, Q_FRAMES] += 1
            dl_page[ndel] = f_head
            dl_frag[ndel] = f_frag
            dl_obj[ndel] = f_obj
            dl_hlen[ndel] = f_hlen
            dl_dlen[ndel] = f_size - f_hlen
            dl_ts[ndel] = head_ts + f_nfrags * C[FRAME_SZ]
            ndel += 1
            total += 1
        if mode == 1:
            first = CS[cpu, FIRST_DESC]
            while cached_ntc != first:
                _put_rx_buf(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias, ring_pgcnt,
                            count, cached_ntc)
                cached_ntc += 1
                if cached_ntc >= count:
                    cached_ntc = 0
        CS[cpu, NTC] = ntc
        # ice_alloc_rx_bufs()
        if mode == 0:
            want = cleaned_count
        else:
            want = (0 if CS[cpu, FIRST_DESC] > CS[cpu, NTU] else count) + CS[cpu, FIRST_DESC] - CS[cpu, NTU] - 1
        if want:
            ntu = CS[cpu, NTU]
            while want:
                if ring_page[cpu, ntu] < 0:
                    pid = _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, C[RING_ORDER], L_NONE)
                    if pid < 0:
                        S[D_BUF_FAILURES] += 1
                        break
                    S[D_PAGES_ALLOC] += 1
                    ring_page[cpu, ntu] = pid
                    page_ref[pid] += USHRT_MAX - 1
                    ring_bias[cpu, ntu] = USHRT_MAX
                desc_dd[cpu, ntu] = 0
                ntu += 1
                if ntu == count:
                    ntu = 0
                # as ice_alloc_rx_bufs(): the status of the next descriptor is cleared too
                desc_dd[cpu, ntu] = 0
                want -= 1
            if CS[cpu, NTU] != ntu:
                prev = CS[cpu, NTU] & ~7
                CS[cpu, NTU] = ntu
                CS[cpu, NTA] = ntu
                if prev != (ntu & ~7):
                    CS[cpu, TAIL] = ntu & ~7
        # ice_clean_rx_irq() returns the whole budget when a buffer could not be posted
        work = budget if total >= budget or want else (total if total < budget - 1 else budget - 1)
    _deliver(S, C, cpu, ndel, page_ref, page_order, page_free, page_pin, pg_freed, slab0, slab1,
             q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl, tn, obs)
    if S[ERR]:
        return
    _poll_done(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu, work, budget, ndel, taken_before, obs)


@njit(cache=True)
def _deliver(S, C, cpu, ndel, page_ref, page_order, page_free, page_pin, pg_freed, slab0, slab1,
             q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl, tn, obs):
    """Simulation._deliver() of the poll's skbs (dl_*: head, frags, sk_buff, bytes in the head and in
    frags, truesize), in order: the stack takes each and queues it on the UDP socket, or drops it."""
    cost = C[COST]
    qcap = q_page.shape[0]
    page_size = C[PAGE_SIZE_C]
    rcvbuf = C[RCVBUF]
    for d in range(ndel):
        pid = dl_page[d]
        frag = dl_frag[d]
        obj = dl_obj[d]
        ts = dl_ts[d]
        S[DELIVERED] += 1
        S[TRUESIZE_TOTAL] += ts
        if C[TRACE] or C[PLOT]:
            # what Simulation._deliver records before queueing (skb->len + ETH_HLEN, after eth_skb_pad()
            # for ice), and which kind of skb it is (path, head source: see _kind_names)
            size = dl_hlen[d] + dl_dlen[d]
            frame_len = size if C[DRIVER_CB] or C[DRIVER_TUN] or size >= 60 else 60
            nr_frags = 0 if frag < 0 else (1 if frag < FL_TAG else fl[frag - FL_TAG, 0])
            kind = 0
            if C[DRIVER_CB]:
                kind = 1 + (cb_tab[0, size] + 1 if size <= C[CB_COPYBREAK] else 0)
            elif C[DRIVER_TUN]:
                kind = size  # tun: what an skb is depends on its length (_TunLengths.names)
            record_ts = ts
            if C[PLOT]:
                _count_truesize(S, obs[1], obs[2], frame_len, nr_frags, ts)
        rmem = S[RMEM]
        refused = False
        if C[STRICT_FIT]:
            if rmem + ts > rcvbuf and (rcvbuf > (0x7FFFFFFF >> 1) or rmem):
                refused = True
        elif rmem > rcvbuf:
            refused = True
        if not refused:
            if rmem > (rcvbuf >> 1) and frag >= 0:
                # skb_condense(): paged data that fits the head's tailroom is pulled in and its page
                # reference dropped; truesize is then the head's alone.  (A linear skb keeps its truesize.)
                # (the skbs with frags of a run all have the same kind of head: C[COND_ROOM] is its
                # room from the headroom to the end, C[COND_TS] its truesize)
                if dl_dlen[d] <= C[COND_ROOM] - dl_hlen[d]:
                    _put_frags(S, page_ref, page_order, page_free, pg_freed, fl, frag)
                    frag = -1
                    ts = C[COND_TS]
                    S[CONDENSED] += 1
            S[RMEM] += ts
            if C[FWD_DEFICIT_ONLY]:
                delta = ts - S[FWD]
                if delta > 0:
                    pages = (delta + page_size - 1) // page_size
                    S[FWD] += pages * page_size
                    S[MEMALLOC] += pages
            elif ts >= S[FWD]:
                pages = (ts + page_size - 1) // page_size
                S[FWD] += pages * page_size
                S[MEMALLOC] += pages
            S[FWD] -= ts
            if S[Q_LEN] >= qcap:
                S[ERR] = ERR_TABLE_FULL
                return
            tail = S[Q_HEAD] + S[Q_LEN]
            if tail >= qcap:
                tail -= qcap
            q_page[tail] = pid
            q_frag[tail] = frag
            q_obj[tail] = obj
            q_ts[tail] = ts
            q_cpu[tail] = cpu
            S[Q_LEN] += 1
            S[ENQUEUED] += 1
            if S[RMEM] > S[PEAK_RMEM]:
                S[PEAK_RMEM] = S[RMEM]
            head_page = _head_page(slab1, tn, pid)
            if page_pin[head_page] == 0:
                S[PINNED] += 1
            page_pin[head_page] += 1
            if frag >= 0:
                _pin_frags(S, page_pin, fl, frag, 1)
            if S[PINNED] > S[PEAK_PINNED]:
                S[PEAK_PINNED] = S[PINNED]
        else:
            S[SK_DROPS] += 1
            # kfree_skb(): frag pages, the head, then the sk_buff to its slab
            _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, pid, frag)
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, obj)
        if C[TRACE]:
            tr = obs[0]
            row = S[TR_LEN]
            if row >= tr.shape[0]:
                S[ERR] = ERR_TABLE_FULL
                return
            tr[row, T_TIME] = S[NOW] + (d + 1) * cost
            tr[row, T_CPU] = cpu
            tr[row, T_FRAME_LEN] = frame_len
            tr[row, T_LEN] = frame_len - ETH_HLEN
            tr[row, T_DATA_LEN] = dl_dlen[d]
            tr[row, T_TRUESIZE] = record_ts
            tr[row, T_NR_FRAGS] = nr_frags
            tr[row, T_KIND] = kind
            tr[row, T_OUTCOME] = O_SOCKET if refused else O_DELIVERED
            S[TR_LEN] = row + 1


@njit(cache=True)
def _poll_done(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu, work, budget, ndel, taken_before, obs):
    """The end of napi_poll() in Simulation._poll: the CPU busy for the work done, then poll again
    (budget used up; a spent netdev_budget or 2 jiffies is a time squeeze), or napi_complete_done()
    and an IRQ at once for frames that came meanwhile; the reader woken."""
    cost = C[COST]
    now = S[NOW]
    end = now + (work if work > ndel else ndel) * cost
    CS[cpu, BUSY_UNTIL] = end
    CS[cpu, BUDGET_LEFT] -= work
    # Simulation._poll: with no traffic left, a poll that took no frame off the ring ends NAPI
    stalled = S[TRAFFIC_DONE] and CS[cpu, Q_FRAMES] + CS[cpu, Q_DROPPED] == taken_before
    if work >= budget and not stalled:
        if CS[cpu, BUDGET_LEFT] <= 0 or end - CS[cpu, ROUND_START] >= NETDEV_BUDGET_NS:
            S[TIME_SQUEEZE] += 1
            CS[cpu, BUDGET_LEFT] = NETDEV_BUDGET
            CS[cpu, ROUND_START] = end
        _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, end, _POLL, cpu)
    else:
        CS[cpu, SCHEDULED] = 0
        if CS[cpu, Q_NIC_FRAMES] > CS[cpu, Q_FRAMES] + CS[cpu, Q_DROPPED] and not stalled:
            _raise_irq(S, C, CS[cpu], ev_time, ev_order, ev_kind, ev_cpu, end, cpu)
    if C[APP_UNLIMITED]:
        _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, end, _READ, 0)
    elif S[APP_WAITING] and S[Q_LEN] > 0:
        S[APP_WAITING] = 0
        _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, end if end > S[APP_NEXT] else S[APP_NEXT], _READ, 0)
    if C[PLOT]:
        _series_add(S, obs[3], end, S[IN_USE], S[RMEM])


@njit(cache=True)
def _app_read(S, C, CS, ev_time, ev_order, ev_kind, ev_cpu, page_ref, page_order, page_free, page_pin, pg_freed,
              slab0, slab1, nc, df_page, df_frag, df_obj,
              q_page, q_frag, q_obj, q_ts, q_cpu, fl, tn):
    """Simulation._app_read on CPU 0: udp_recvmsg() per datagram, the skb freed in process context."""
    page_size = C[PAGE_SIZE_C]
    threshold = C[RCVBUF] >> 2
    qcap = q_page.shape[0]
    while True:
        if S[Q_LEN] == 0:
            S[APP_WAITING] = 1
            return
        if S[READER_LEN] == 0:
            S[READER_LEN] = S[Q_LEN]
        head = S[Q_HEAD]
        pid = q_page[head]
        frag = q_frag[head]
        obj = q_obj[head]
        ts = q_ts[head]
        owner = q_cpu[head]
        head += 1
        S[Q_HEAD] = head if head < qcap else 0
        S[Q_LEN] -= 1
        S[READER_LEN] -= 1
        # udp_rmem_release(truesize, partial=1)
        S[DEFICIT] += ts
        size = S[DEFICIT]
        if not (size < threshold and S[READER_LEN] > 0):
            S[DEFICIT] = 0
            S[FWD] += size
            amount = (S[FWD] - 1) & ~(page_size - 1)
            S[FWD] -= amount
            S[MEMALLOC] -= amount // page_size
            S[RMEM] -= size
            S[READER_LEN] = S[Q_LEN]
        head_page = _head_page(slab1, tn, pid)  # the pages are looked up before udp_recvmsg()
        if C[DEFER_FREE]:
            # skb_attempt_defer_free(): freed here into CPU 0's NAPI cache when local (or the owner's
            # list is full), else queued on the allocating CPU until its next net_rx_action()
            Ro = CS[owner]
            if owner == 0 or Ro[DEFER_LEN] >= SKB_DEFER_MAX:
                _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, pid, frag)
                _nc_put(S, C, CS[0], nc[0], slab0, slab1,
                        page_ref, page_order, page_free, pg_freed, obj, True)
            else:
                df_page[owner, Ro[DEFER_LEN]] = pid
                df_frag[owner, Ro[DEFER_LEN]] = frag
                df_obj[owner, Ro[DEFER_LEN]] = obj
                Ro[DEFER_LEN] += 1
        else:
            # consume_skb(): frag pages, the head, then the sk_buff to its slab
            _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, pid, frag)
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, obj)
        S[CONSUMED] += 1
        page_pin[head_page] -= 1
        if page_pin[head_page] == 0:
            S[PINNED] -= 1
        if frag >= 0:
            _pin_frags(S, page_pin, fl, frag, -1)
        if not C[APP_UNLIMITED]:
            S[APP_NEXT] = S[NOW] + C[APP_GAP]
            _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, S[APP_NEXT], _READ, 0)
            return


@njit(cache=True)
def _teardown(S, C, CS, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias,
              slab0, slab1, nc, df_page, df_frag, df_obj,
              q_page, q_frag, q_obj, q_ts, fl, tn):
    """udp_destroy_sock(), the driver's close per queue (ice_clean_rx_ring(), copybreak's buffers, tun's
    written skbs and task_frag reference), then Kernel.drain(): defer lists, NAPI caches."""
    page_size = C[PAGE_SIZE_C]
    qcap = q_page.shape[0]
    total = 0
    while S[Q_LEN] > 0:
        head = S[Q_HEAD]
        total += q_ts[head]
        _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, q_page[head], q_frag[head])
        _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, q_obj[head])
        head += 1
        S[Q_HEAD] = head if head < qcap else 0
        S[Q_LEN] -= 1
    size = total + S[DEFICIT]
    S[DEFICIT] = 0
    S[FWD] += size
    amount = S[FWD] & ~(page_size - 1)
    S[FWD] -= amount
    S[MEMALLOC] -= amount // page_size
    S[RMEM] -= size
    S[READER_LEN] = 0
    ncpus = CS.shape[0]
    for cpu in range(ncpus):
        for slot in range(C[RING_COUNT]):
            pid = ring_page[cpu, slot]
            if pid < 0:
                continue
            page_ref[pid] -= ring_bias[cpu, slot]
            if page_ref[pid] == 0:
                _free_page(S, page_ref, page_order, page_free, pg_freed, pid)
            ring_page[cpu, slot] = -1
        if C[DRIVER_TUN]:
            R = CS[cpu]
            cap = tn[9].shape[1]
            while R[HQ_LEN] > 0:
                k = R[HQ_HEAD]
                _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, tn[9][cpu, k],
                              tn[10][cpu, k])
                _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, tn[11][cpu, k])
                if tn[0][tn[13][cpu, k], T_ROUTE] != ROUTE_FRAGS:
                    R[TUN_WMEM] -= tn[12][cpu, k]
                k += 1
                R[HQ_HEAD] = k if k < cap else 0
                R[HQ_LEN] -= 1
            if R[TF_PAGE] >= 0:
                _put_page(S, page_ref, page_order, page_free, pg_freed, R[TF_PAGE])
                R[TF_PAGE] = -1
    for cpu in range(ncpus):
        if CS[cpu, DEFER_LEN]:
            _defer_flush(S, C, CS[cpu], nc[cpu], df_page[cpu], df_frag[cpu], df_obj[cpu], slab0, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, False)
    for cpu in range(ncpus):
        for j in range(CS[cpu, NC_LEN]):
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, nc[cpu, j])
        CS[cpu, NC_LEN] = 0
        # page_frag_1k_drain(): the references held for pieces not handed out
        pid = CS[cpu, P1K_PAGE]
        if pid >= 0 and CS[cpu, P1K_OFFSET] > 0:
            page_ref[pid] -= CS[cpu, P1K_OFFSET] // SZ_1K
            if page_ref[pid] == 0:
                _free_page(S, page_ref, page_order, page_free, pg_freed, pid)
        CS[cpu, P1K_PAGE] = -1
        CS[cpu, P1K_OFFSET] = 0
        # page_frag_cache_drain(): the cache's own references
        pid = CS[cpu, PF_PAGE]
        if pid >= 0:
            page_ref[pid] -= CS[cpu, PF_BIAS]
            if page_ref[pid] == 0:
                _free_page(S, page_ref, page_order, page_free, pg_freed, pid)
        CS[cpu, PF_PAGE] = -1


# -- tun (drivers/net/tun.c): the writer's tun_get_user(), the queue's hand-off, the stack ------------
#
# tn, tun's own state: (tab, dcount, km_K, km_stack, km_top, km_inuse, km_page, km_partial, km_slotfree,
# hq_head, hq_frag, hq_obj, hq_ts, hq_len).  tab is the per-length table _TunLengths fills from the
# model's tun_get_user(); dcount counts delivered skbs by frame length; km_* are the kmem caches heads
# come from, one row each (see _km); hq_* is each queue's FIFO of written skbs not yet handed to the
# stack (rx_handoff without IFF_NAPI, sk_write_queue with it: both are taken in order, up to the budget).


@njit(cache=True, inline="always")
def _km(tn, c):
    """The slab tuple (as _slab_alloc takes it) of tun's kmem cache number c."""
    return (tn[2][c], tn[3][c], tn[4][c], tn[5][c], tn[6][c], tn[7][c], tn[8][c])


@njit(cache=True, inline="always")
def _tun_refused(S, R, errno_nomem):
    """nic_receive()'s count of a refused write: frames_dropped, and skb_alloc_failures for -ENOMEM and
    -ENOBUFS; always False (the caller returns it)."""
    S[D_FRAMES_DROPPED] += 1
    R[Q_DROPPED] += 1
    if errno_nomem:
        S[D_SKB_FAILURES] += 1
    return False


@njit(cache=True, inline="always")
def _tun_kmalloc(S, page_ref, page_order, page_free, pg_alloc, tn, kind, c):
    """kmalloc_reserve() of a tun head (no reserves to retry with: GFP_KERNEL and GFP_ATOMIC lack
    __GFP_MEMALLOC): a kmem cache object (kind TH_SLAB: slab, then the cache's layer) as KM_TAG plus
    (c << 32) plus the object, or pages of order c (__kmalloc_large_node(): skb_data, then page_alloc)
    as a page id; -1 when it fails."""
    if kind == TH_SLAB:
        o = _slab_alloc(S, _km(tn, c), page_ref, page_order, page_free, pg_alloc)
        return -1 if o < 0 else KM_TAG + (c << 32) + o
    if S[F_ANY] and _should_fail(S, L_SKB_DATA):
        return -1
    return _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, c, L_NONE)


@njit(cache=True)
def _tun_write(S, C, CS, cpu, length, page_ref, page_order, page_free, pg_alloc, pg_freed, slab0, slab1, nc, fl,
               tn):
    """tun nic_receive(): the writer's tun_get_user() of one frame on queue cpu; False when refused
    (-EINVAL below ETH_HLEN, -EAGAIN at sk_sndbuf, -ENOMEM / -ENOBUFS when an allocation fails) or
    when S[ERR] is set.

    Route and sizes come from the per-length table; the state changes are the run's: the task_frag
    block (skb_page_frag_refill: reused when only the task holds it, kept while the buffer fits, else
    given up for a new SKB_FRAG_PAGE_ORDER block, or one page when that fails), sk_wmem_alloc against
    sk_sndbuf (sock_alloc_send_pskb), the sk_buff from skbuff_head_cache, the kmalloc head,
    alloc_skb_with_frags()'s blocks (from 6.6 their orders fall back one by one when refused, so the
    blocks and the truesize are decided here); with IFF_NAPI_FRAGS napi_get_frags()'s
    napi_alloc_skb(GRO_MAX_HEAD) (this CPU's NAPI caches, head kind C[HEAD_KIND]) and __skb_grow()'s
    pskb_expand_head() (the new kmalloc head, then the old one freed).  Each allocation asks the fault
    layers the reference asks, in its order; each failure gives back what the reference gives back,
    in its order.
    """
    tab = tn[0]
    R = CS[cpu]
    route = tab[length, T_ROUTE]
    if route == ROUTE_NONE:
        S[TUN_EINVAL] += 1
        return _tun_refused(S, R, False)
    ts = tab[length, T_TS]
    frag = -1
    if route == ROUTE_BUILD:
        # tun_build_skb(): buflen bytes of current->task_frag at an SMP_CACHE_BYTES-aligned offset
        buflen = tab[length, T_BUFLEN]
        smp = C[TUN_SMP]
        off = (R[TF_OFFSET] + smp - 1) & ~(smp - 1)
        pid = R[TF_PAGE]
        fresh = True
        if pid >= 0:
            if page_ref[pid] == 1:
                off = 0
                S[D_REUSED] += 1
                fresh = False
            elif off + buflen <= R[TF_SIZE]:
                fresh = False
            else:
                _put_page(S, page_ref, page_order, page_free, pg_freed, pid)
                R[TF_PAGE] = -1
                S[D_RELEASED] += 1
        if fresh:
            # skb_page_frag_refill(): an SKB_FRAG_PAGE_ORDER block, else a single page (page_frag layer)
            off = 0
            pid = -1
            if C[TF_ORDER] > 0:
                pid = _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, C[TF_ORDER], L_PAGE_FRAG)
                if S[ERR]:
                    return False
            if pid < 0:
                pid = _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, 0, L_PAGE_FRAG)
                if pid < 0:
                    R[TF_OFFSET] = 0
                    return False if S[ERR] else _tun_refused(S, R, True)
            R[TF_PAGE] = pid
            R[TF_SIZE] = C[PAGE_SIZE_C] << page_order[pid]
            S[D_PAGES_ALLOC] += 1
        R[TF_OFFSET] = off
        # build_skb(): the sk_buff from skbuff_head_cache; then the skb's own reference on the block
        obj = _slab_alloc(S, slab0, page_ref, page_order, page_free, pg_alloc)
        if obj < 0:
            return False if S[ERR] else _tun_refused(S, R, True)
        page_ref[pid] += 1
        R[TF_OFFSET] = off + buflen
        head = pid
        S[TUN_ROUTE_BUILD] += 1
    elif route == ROUTE_FRAGS:
        # napi_get_frags(): __napi_alloc_skb(GRO_MAX_HEAD) as ice's header skb takes it (not charged): a
        # page-fragment head before the sk_buff (given back if there is none), or __alloc_skb()'s sk_buff
        # from the NAPI cache then a skbuff_small_head object (the sk_buff back to its slab if none)
        kind = C[HEAD_KIND]
        head = 0
        if kind == HEAD_1K or kind == HEAD_FRAG:
            if kind == HEAD_1K:
                head = _p1k_alloc(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc)
            else:
                head = _pf_alloc(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, C[PF_FRAGSZ])
            if head < 0:
                return False if S[ERR] else _tun_refused(S, R, True)
        obj = _nc_get(S, C, CS, cpu, nc, slab0, page_ref, page_order, page_free, pg_alloc, pg_freed)
        if obj < 0:
            if S[ERR]:
                return False
            if kind == HEAD_1K or kind == HEAD_FRAG:
                _put_page(S, page_ref, page_order, page_free, pg_freed, head)  # skb_free_frag()
            return _tun_refused(S, R, True)
        if kind == HEAD_SMALL:
            o = _slab_alloc(S, _km(tn, C[TUN_SMALL_KM]), page_ref, page_order, page_free, pg_alloc)
            if o < 0:
                if S[ERR]:
                    return False
                _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, obj)
                return _tun_refused(S, R, True)
            head = KM_TAG + (C[TUN_SMALL_KM] << 32) + o
        if tab[length, T_EXPAND]:
            # pskb_expand_head(): kmalloc_reserve() of the new head, then skb_free_head() of the old
            grown = _tun_kmalloc(S, page_ref, page_order, page_free, pg_alloc, tn, tab[length, T_HEAD],
                                 tab[length, T_CACHE])
            if grown < 0:
                if S[ERR]:
                    return False
                # napi_free_frags(): kfree_skb() of napi->skb: its head, then the sk_buff to its slab
                _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, head, -1)
                _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, obj)
                return _tun_refused(S, R, True)
            _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, head, -1)
            head = grown
    else:
        # tun_alloc_skb() -> sock_alloc_send_pskb(): over the send buffer the write would block
        if R[TUN_WMEM] >= C[TUN_SNDBUF]:
            S[TUN_EAGAIN] += 1
            return _tun_refused(S, R, False)
        # alloc_skb(): the sk_buff, then kmalloc_reserve()'s head (-ENOBUFS without one, the sk_buff
        # given back); then alloc_skb_with_frags()'s blocks
        obj = _slab_alloc(S, slab0, page_ref, page_order, page_free, pg_alloc)
        if obj < 0:
            return False if S[ERR] else _tun_refused(S, R, True)
        head = _tun_kmalloc(S, page_ref, page_order, page_free, pg_alloc, tn, tab[length, T_HEAD],
                            tab[length, T_CACHE])
        if head < 0:
            if S[ERR]:
                return False
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, obj)
            return _tun_refused(S, R, True)
        data_len = tab[length, T_DLEN]
        if data_len > 0:
            entry = _fl_take(S, fl)
            if entry < 0:
                return False
            n = tab[length, T_NFRAGS]
            page_size = C[PAGE_SIZE_C]
            nr_frags = 0
            failed = False
            fl[entry, 0] = 0
            if not C[TUN_CHUNKS]:
                # up to 6.5: order-0 pages (tun passes max_page_order 0), the truesize charged up front
                for j in range(n):
                    pid = _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, tab[length, T_FRAGS + j],
                                       L_NONE)
                    if pid < 0:
                        failed = True
                        break
                    nr_frags += 1
                    fl[entry, nr_frags] = pid
                    fl[entry, 0] = nr_frags
            else:
                # 6.6+: blocks of falling order; a refused high-order block lowers the order by one and
                # tries again; the truesize grows by each block taken
                for j in range(n):
                    ts -= page_size << tab[length, T_FRAGS + j]
                order = C[TUN_MAX_ORDER]
                while data_len > 0:
                    if nr_frags == C[TUN_FRAG_LIMIT]:
                        failed = True
                        break
                    aligned = (data_len + page_size - 1) & ~(page_size - 1)
                    while order > 0 and aligned < (page_size << order):
                        order -= 1
                    pid = _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, order, L_NONE)
                    if pid < 0:
                        if order > 0 and S[ERR] == 0:
                            order -= 1
                            continue
                        failed = True
                        break
                    nr_frags += 1
                    fl[entry, nr_frags] = pid
                    fl[entry, 0] = nr_frags
                    block = page_size << order
                    ts += block
                    data_len -= data_len if data_len < block else block
            if failed:
                if S[ERR]:
                    return False
                # kfree_skb(): the blocks taken, the head, then the sk_buff
                _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, head, FL_TAG + entry)
                _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, obj)
                return _tun_refused(S, R, True)
            frag = FL_TAG + entry
            S[D_PAGES_ALLOC] += nr_frags
        S[TUN_ROUTE_ALLOC] += 1
    if route != ROUTE_FRAGS:
        R[TUN_WMEM] += ts  # skb_set_owner_w(); napi_get_frags()'s skb has no owner
    S[D_NIC_FRAMES] += 1
    R[Q_NIC_FRAMES] += 1
    S[D_COPIED] += 1
    S[D_BYTES_COPIED] += length
    hq_head = tn[9]
    cap = hq_head.shape[1]
    if R[HQ_LEN] >= cap:
        S[ERR] = ERR_TABLE_FULL
        return False
    tail = R[HQ_HEAD] + R[HQ_LEN]
    if tail >= cap:
        tail -= cap
    hq_head[cpu, tail] = head
    tn[10][cpu, tail] = frag
    tn[11][cpu, tail] = obj
    tn[12][cpu, tail] = ts
    tn[13][cpu, tail] = length
    R[HQ_LEN] += 1
    return True


@njit(cache=True)
def _tun_poll(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu, page_ref, page_order, page_free, page_pin, pg_freed,
              slab0, slab1, nc, df_page, df_frag, df_obj, q_page, q_frag, q_obj, q_ts, q_cpu,
              dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl, tn, obs):
    """One napi_poll() (Simulation._poll) of a tun queue: up to budget written skbs, orphaned, to the stack
    (tun poll(): tun_napi_poll() with IFF_NAPI, the netif_receive_skb() hand-off without; both in order).
    skb_condense() changes no tun skb (checked per length: C[COND_ROOM] is -1)."""
    R = CS[cpu]
    S[POLLS] += 1
    taken_before = R[Q_FRAMES] + R[Q_DROPPED]
    if R[DEFER_LEN]:
        _defer_flush(S, C, R, nc[cpu], df_page[cpu], df_frag[cpu], df_obj[cpu], slab0, slab1, fl, tn,
                     page_ref, page_order, page_free, pg_freed, True)
    budget = NAPI_POLL_WEIGHT if NAPI_POLL_WEIGHT < R[BUDGET_LEFT] else R[BUDGET_LEFT]
    S[D_POLLS] += 1
    dcount = tn[1]
    hq_head, hq_frag, hq_obj, hq_ts, hq_len = tn[9], tn[10], tn[11], tn[12], tn[13]
    cap = hq_head.shape[1]
    work = 0
    while work < budget and R[HQ_LEN] > 0:
        k = R[HQ_HEAD]
        length = hq_len[cpu, k]
        dl_page[work] = hq_head[cpu, k]
        dl_frag[work] = hq_frag[cpu, k]
        dl_obj[work] = hq_obj[cpu, k]
        dl_ts[work] = hq_ts[cpu, k]
        dl_hlen[work] = length  # for --trace and --plot: the frame's length, its kind (see _write_trace)
        dl_dlen[work] = 0
        k += 1
        R[HQ_HEAD] = k if k < cap else 0
        R[HQ_LEN] -= 1
        S[D_FRAMES] += 1
        R[Q_FRAMES] += 1
        S[D_BYTES] += length
        if tn[0][length, T_ROUTE] != ROUTE_FRAGS:
            R[TUN_WMEM] -= dl_ts[work]  # skb_orphan(): sock_wfree()
        dcount[length] += 1
        work += 1
    _deliver(S, C, cpu, work, page_ref, page_order, page_free, page_pin, pg_freed, slab0, slab1,
             q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl, tn, obs)
    if S[ERR]:
        return
    _poll_done(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu, work, budget, work, taken_before, obs)


# -- the Python side ---------------------------------------------------------------------------


class _RunArrays:
    """The integer state every driver's run starts from, as the reference kernel left it.

    Sized by the ring, the socket queue and the caches (never by the packet
    count).  Page counters start from the reference page allocator's; the
    caller fills in the ring's pages and descriptors.  ``state()`` is the
    tuple _run() takes, in its order.
    """

    def __init__(self, kernel, C, ncpus: int, count: int, page_cap: int, slab_cap: int, qcap: int,
                 slab1, cb_tab, fl, ring_bias: int, tn: tuple | None = None):
        self.S = np.zeros(S_TOTAL, np.int64)
        self.S[APP_WAITING] = 1
        _load_faults(self.S, kernel.faults)
        self.CS = np.zeros((ncpus, R_SIZE), np.int64)
        self.CS[:, BUDGET_LEFT] = NETDEV_BUDGET
        self.CS[:, P1K_PAGE] = -1
        self.CS[:, PF_PAGE] = -1
        self.ev = [np.zeros(4096, np.int64) for _ in range(4)]
        self.page_ref = np.zeros(page_cap, np.int64)
        self.page_order = np.zeros(page_cap, np.int64)
        self.page_free = np.zeros(page_cap, np.int64)
        self.page_pin = np.zeros(page_cap, np.int64)
        self.pg_alloc = np.zeros(32, np.int64)
        self.pg_freed = np.zeros(32, np.int64)
        pages = kernel.pages
        for order, n in pages.allocated.items():
            self.pg_alloc[order] = n
        for order, n in pages.freed.items():
            self.pg_freed[order] = n
        self.S[IN_USE] = pages.in_use
        self.S[PEAK_IN_USE] = pages.peak_in_use
        self.ring_page = np.full((ncpus, count), -1, np.int64)
        self.ring_bias = np.full((ncpus, count), ring_bias, np.int64)
        self.ring_pgcnt = np.zeros((ncpus, count), np.int64)
        self.desc_dd = np.zeros((ncpus, count), np.int64)
        self.desc_len = np.zeros((ncpus, count), np.int64)
        self.desc_hlen = np.zeros((ncpus, count), np.int64)
        cache = kernel.skbuff_cache
        self.slab0 = _new_slab_cache(cache, slab_cap)
        # Without a second cache in use, a one-slab stand-in keeps the call signature.
        self.slab1 = _new_slab_cache(slab1, slab_cap) if slab1 is not None else _new_slab_cache(cache, 1)
        self.nc = np.zeros((ncpus, int(C[NC_SIZE]) + 1), np.int64)
        self.df = [np.zeros((ncpus, SKB_DEFER_MAX), np.int64) for _ in range(3)]  # page, frag, obj
        self.q = [np.zeros(qcap, np.int64) for _ in range(5)]  # page, frag, obj, ts, cpu
        self.dl = [np.zeros(NAPI_POLL_WEIGHT, np.int64) for _ in range(6)]  # page, frag, obj, hlen, dlen, ts
        self.cb_tab = cb_tab
        self.fl = fl
        # --trace records of one _run() call: at most one per frame that arrives in it or was on a ring
        tr_rows = CHUNK + ncpus * count + 16 if C[TRACE] else 1
        # --plot: skbs by (frame length, nr_frags) and their truesize; the memory series
        lengths = int(C[RXMAX]) + 61 if C[PLOT] else 1
        self.obs = (np.zeros((tr_rows, T_SIZE), np.int64), np.zeros((lengths, MAX_FRAGS_SEEN), np.int64),
                    np.zeros((lengths, MAX_FRAGS_SEEN), np.int64), np.zeros((SERIES_LIMIT, 3), np.int64))
        self.S[SR_EVERY] = 1
        # tun's state (see _km / _tun_write); other drivers pass a stand-in of the same types
        self.tn = tn if tn is not None else _tun_state(np.zeros((1, T_FRAGS + 1), np.int64), [], 1, 1, 1, 1)

    def state(self) -> tuple:
        return (*self.ev, self.page_ref, self.page_order, self.page_free, self.page_pin, self.pg_alloc,
                self.pg_freed, self.ring_page, self.ring_bias, self.ring_pgcnt, self.desc_dd, self.desc_len,
                self.desc_hlen, self.slab0, self.slab1, self.nc, *self.df, *self.q, *self.dl, self.cb_tab, self.fl,
                self.obs, self.tn)


def _tun_state(tab, caches, ncpus: int, inflight: int, slab_cap: int, max_objs: int) -> tuple:
    """tun's compiled state tn: the per-length table, delivered counts by length, the kmem caches heads
    come from (one row each; see _km) and each queue's FIFO of written skbs."""
    K = np.zeros((KM_MAX, K_SIZE), np.int64)
    for c, cache in enumerate(caches):
        K[c, K_ORDER] = cache.order
        K[c, K_OBJS] = cache.objs_per_slab
        K[c, K_LAYER] = LAYERS.index(cache.fault_layer)
    K[len(caches):, K_OBJS] = 1
    km = (K, np.zeros((KM_MAX, slab_cap, max_objs + 1), np.int32)) + tuple(
        np.zeros((KM_MAX, slab_cap), np.int64) for _ in range(5))
    hq = tuple(np.zeros((ncpus, inflight), np.int64) for _ in range(5))  # head, frag, obj, truesize, length
    return (tab, np.zeros(tab.shape[0], np.int64)) + km + hq


class FastSimulation:
    """One run of the fast engine; the reference Simulation supplies setup and constants."""

    def __init__(self, config: RunConfig, progress=None, trace=None, plot: bool = False):
        reason = unsupported(config)
        if reason:
            raise ValueError(reason)
        self.config = config
        self.progress = progress
        self.trace = trace
        self.plot = plot
        self.extra: dict = {}
        self.ref = Simulation(config)  # validates, loads the profile, opens the ring as ice_open() does
        ring = self.ref.cpus[0].queue
        self.copybreak = config.driver == "copybreak"
        self.legacy = False
        self.tun = None
        if config.driver == "tun":
            self.tun = _TunLengths(self.ref, config)
            return
        if self.copybreak:
            self.copy_heads = _copybreak_copy_skbs(self.ref)
            return
        self.legacy = not ring.build_skb
        if self.legacy:
            self.head = _legacy_header_skb(self.ref)
            frag_cache = self.ref.kernel.cpus[0].napi_alloc_cache.page
            heads = ("page_frag_1k", "skbuff_small_head") + (("page_frag",) if frag_cache.offset_up else ())
            if self.head["source"] not in heads:
                raise ValueError(f"the fast engine models legacy-rx header skbs from {', '.join(heads)} only; "
                                 f"{self.ref.kernel.profile.name} takes them from {self.head['source']}")

    def run(self) -> dict:
        ref = self.ref
        config = self.config
        kernel = ref.kernel
        profile = kernel.profile
        ring = ref.cpus[0].queue
        count = getattr(ring, "count", 1)  # tun has no ring
        C = np.zeros(C_SIZE, np.int64)
        C[RING_COUNT] = count
        C[PAGE_SIZE_C] = profile.PAGE_SIZE
        C[STRICT_FIT] = ref.sock.strict_fit
        C[FWD_DEFICIT_ONLY] = ref.sock.fwd_deficit_only
        C[DEFER_FREE] = ref.sock.defer_free
        C[RCVBUF] = ref.sock.rcvbuf
        C[APP_UNLIMITED] = config.app_rate is None
        C[APP_GAP] = 0 if config.app_rate is None else int(1e9 / config.app_rate)
        C[COST] = config.packet_cost_ns
        C[IRQ_LATENCY] = config.irq_latency_ns
        C[NC_SIZE] = profile.NAPI_SKB_CACHE_SIZE
        C[NC_BULK] = profile.NAPI_SKB_CACHE_BULK
        C[NC_FREE] = profile.NAPI_SKB_CACHE_FREE
        C[TRACE] = self.trace is not None
        C[PLOT] = self.plot
        if self.copybreak:
            return self._run_copybreak(C)
        if self.tun is not None:
            return self._run_tun(C)
        C[RXMAX] = ring.rxmax
        C[RX_BUF_LEN] = ring.rx_buf_len
        C[SKB_TRUESIZE_C] = profile.SKB_TRUESIZE(ring.config["frame_sz"] - profile.SHINFO_SIZE)
        C[PUT_MODE] = _PUT_MODES[ring.rules.put]
        C[FRAME_SZ] = ring.config["frame_sz"]
        C[RING_ORDER] = ring.config["page_order"]
        # skb_condense() room of a build_skb head (end - headroom) and the truesize it is left with
        C[COND_ROOM] = ring.config["frame_sz"] - profile.SHINFO_SIZE - ring.config["rx_offset"]
        C[COND_TS] = C[SKB_TRUESIZE_C]
        if self.legacy:
            C[LEGACY] = 1
            C[HEAD_TRUESIZE] = self.head["truesize"]
            # skb_condense() room of a header skb: end - tail before the copy
            C[COND_ROOM] = self.head["end"] - self.head["tail"]
            C[COND_TS] = self.head["truesize"]
            C[HEAD_KIND] = {"page_frag_1k": HEAD_1K, "skbuff_small_head": HEAD_SMALL,
                            "page_frag": HEAD_FRAG}[self.head["source"]]
            C[PF_ORDER] = kernel.cpus[0].napi_alloc_cache.page.max_order
            C[PF_FRAGSZ] = self.head["head_size"]

        truesize = int(C[HEAD_TRUESIZE]) if self.legacy else int(C[SKB_TRUESIZE_C])  # the smallest skb
        ncpus = config.cpus
        qcap = ref.sock.rcvbuf // truesize + 2
        # Live sk_buffs: queued, in the NAPI caches and defer lists, in one poll's hands.
        live_bound = qcap + ncpus * (2 * NAPI_POLL_WEIGHT + int(C[NC_SIZE]) + SKB_DEFER_MAX)
        slab_cap = live_bound + 16
        # Live pages: ring pages, a head and up to a page per buffer for each queued, deferred or
        # polled skb, the 1K pages, and the slabs of both caches.
        max_bufs = -(-ring.rxmax // ring.rx_buf_len)
        page_cap = (ncpus * count + (1 + max_bufs) * (qcap + ncpus * (SKB_DEFER_MAX + 2 * NAPI_POLL_WEIGHT))
                    + 2 * ncpus + 2 * slab_cap + 16)
        # frag lists of skbs of several buffers, a row each: [count, page ids..., free-stack slot]
        fl = np.zeros((slab_cap if max_bufs > 1 else 1, profile.MAX_SKB_FRAGS + 2), np.int64)

        small = kernel.skb_small_head_cache
        a = _RunArrays(kernel, C, ncpus, count, page_cap, slab_cap, qcap,
                       slab1=small if small is not None and self.legacy else None,
                       cb_tab=np.zeros((3, 1), np.int64),
                       fl=fl,
                       ring_bias=0)
        S, CS = a.S, a.CS
        # The rings as ice_open() left them in the reference kernel.
        pages = kernel.pages
        ring_pages = sum(1 for st in ref.cpus for b in st.queue.rx_buf if b.page is not None)
        if len(pages.live) != ring_pages:
            raise ValueError("unexpected pages at start")
        for cpu, cpu_state in enumerate(ref.cpus):
            ring = cpu_state.queue
            for slot, buf in enumerate(ring.rx_buf):
                if buf.page is not None:
                    pid = S[PG_NEXT]
                    S[PG_NEXT] += 1
                    a.page_ref[pid] = buf.page.refcount
                    a.page_order[pid] = buf.page.order
                    a.ring_page[cpu, slot] = pid
                    a.ring_bias[cpu, slot] = buf.pagecnt_bias
            for slot, desc in enumerate(ring.desc):
                a.desc_dd[cpu, slot] = desc.dd
            R = CS[cpu]
            R[NTU], R[NTC], R[NTA], R[FIRST_DESC] = (ring.next_to_use, ring.next_to_clean, ring.next_to_alloc,
                                                     ring.first_desc)
            R[TAIL], R[HW_NEXT] = ring.tail, ring.hw_next
            S[D_PAGES_ALLOC] += ring.stats.pages_allocated
        return self._stream(S, C, CS, a.state())

    def _run_copybreak(self, C) -> dict | None:
        """The copybreak driver: the rings and NAPI page_frag caches as copybreak_open_queue() left them."""
        ref = self.ref
        config = self.config
        kernel = ref.kernel
        profile = kernel.profile
        ring = ref.cpus[0].queue
        count = ring.count
        ncpus = config.cpus
        C[RXMAX] = ring.rxmax
        C[RX_BUF_LEN] = ring.rx_buf
        C[DRIVER_CB] = 1
        C[CB_COPYBREAK] = ring.copybreak
        C[CB_BUF_FRAGSZ] = profile.SKB_DATA_ALIGN_u32(ring.buf_size)
        C[CB_BUILD_TS] = profile.SKB_TRUESIZE(ring.buf_size - profile.SHINFO_SIZE)
        C[CB_BUF_SIZE] = ring.buf_size
        C[COND_ROOM] = ring.buf_size - profile.SHINFO_SIZE - ring.headroom  # end - headroom
        C[COND_TS] = C[CB_BUILD_TS]
        frag_cache = kernel.cpus[0].napi_alloc_cache.page
        C[PF_ORDER] = frag_cache.max_order
        C[PF_DOWN] = 0 if frag_cache.offset_up else 1
        heads = self.copy_heads
        cb_tab = np.zeros((3, ring.copybreak + 1), np.int64)
        for length, (kind, truesize, fragsz, _path, _source) in enumerate(heads):
            cb_tab[0, length] = kind
            cb_tab[1, length] = truesize
            cb_tab[2, length] = fragsz
        truesize = min([int(C[CB_BUILD_TS])] + [h[1] for h in heads])  # the smallest skb
        qcap = ref.sock.rcvbuf // truesize + 2
        live_bound = qcap + ncpus * (2 * NAPI_POLL_WEIGHT + int(C[NC_SIZE]) + SKB_DEFER_MAX)
        slab_cap = live_bound + 16
        # Live pages: the ring buffers' pages, one per queued or deferred skb head, the 1K and
        # page_frag pages, and the slabs of both caches.
        page_cap = (ncpus * count + 2 * qcap + ncpus * (2 * SKB_DEFER_MAX + 2 * NAPI_POLL_WEIGHT + 4)
                    + ncpus * SKB_DEFER_MAX * (profile.MAX_SKB_FRAGS + 1) + 2 * slab_cap + 16)
        # frag lists of skbs of several buffers, a row each: [count, page ids..., free-stack slot]; a
        # frame's MAX_SKB_FRAGS + 1 replacement buffers are held in a row first (the last column of
        # row i is entry i of the free stack, whichever row that names)
        fl = np.zeros((slab_cap, profile.MAX_SKB_FRAGS + 3), np.int64)

        a = _RunArrays(kernel, C, ncpus, count, page_cap, slab_cap, qcap,
                       slab1=kernel.skb_small_head_cache, cb_tab=cb_tab, fl=fl,
                       ring_bias=1)  # one page reference per buffer
        S, CS = a.S, a.CS
        pages = kernel.pages
        pid_of = {}
        for pfn, page in pages.live.items():
            pid = int(S[PG_NEXT])
            S[PG_NEXT] += 1
            pid_of[pfn] = pid
            a.page_ref[pid] = page.refcount
            a.page_order[pid] = page.order
        seen = set()
        for cpu, cpu_state in enumerate(ref.cpus):
            ring = cpu_state.queue
            for slot, data in enumerate(ring.buffers):
                if data is not None:
                    pfn = pages.virt_to_head_page(data).pfn
                    a.ring_page[cpu, slot] = pid_of[pfn]
                    seen.add(pfn)
            for slot, desc in enumerate(ring.desc):
                a.desc_dd[cpu, slot] = desc.dd
            R = CS[cpu]
            R[NTC], R[HW_NEXT] = ring.next_to_clean, ring.hw_next
            state = kernel.cpus[cpu]
            nc = state.napi_alloc_cache
            if (nc.page_small.page is not None or state.netdev_alloc_cache.page is not None
                    or nc.skb_cache or nc.page.pfmemalloc):
                raise ValueError("unexpected per-CPU cache state at start")
            if nc.page.page is not None:
                R[PF_PAGE] = pid_of[nc.page.page.pfn]
                R[PF_OFFSET], R[PF_SIZE], R[PF_BIAS] = nc.page.offset, nc.page.size, nc.page.pagecnt_bias
                seen.add(nc.page.page.pfn)
            S[PF_ALLOCS] += nc.page.allocs
            S[PF_REFILLS] += nc.page.refills
            S[PF_REUSES] += nc.page.reuses
        if seen != set(pages.live):
            raise ValueError("unexpected pages at start")
        return self._stream(S, C, CS, a.state())

    def _run_tun(self, C) -> dict | None:
        """The tun driver: queues as open_queue() left them (no memory held), the writer's task_frag empty."""
        from skbsim.net.core_sock import PAGE_ALLOC_COSTLY_ORDER, SKB_FRAG_PAGE_SIZE

        ref = self.ref
        config = self.config
        kernel = ref.kernel
        profile = kernel.profile
        lengths = self.tun
        ncpus = config.cpus
        if kernel.pages.live or kernel.live_skbs:
            raise ValueError("unexpected pages at start")
        C[DRIVER_TUN] = 1
        C[COND_ROOM] = -1  # skb_condense() changes no tun skb (_TunLengths checks it per length)
        C[RING_COUNT] = 1
        C[RXMAX] = MAX_TUN_FRAME
        C[TUN_SNDBUF] = ref.cpus[0].queue.tfile.sk.sk_sndbuf
        C[TF_ORDER] = profile.get_order(SKB_FRAG_PAGE_SIZE)
        C[TUN_SMP] = profile.SMP_CACHE_BYTES
        # alloc_skb_with_frags() as tun_alloc_skb() calls it: its form, the starting order, the frag limit
        C[TUN_CHUNKS] = lengths.chunks
        C[TUN_MAX_ORDER] = 0 if profile.feature("tun_alloc_linear") == "whole_frame" else PAGE_ALLOC_COSTLY_ORDER
        C[TUN_FRAG_LIMIT] = profile.MAX_SKB_FRAGS - (
            1 if profile.feature("alloc_skb_with_frags_limit") == "max_skb_frags_minus_1" else 0)
        if lengths.napi_head is not None:
            # IFF_NAPI_FRAGS: napi_get_frags()'s head from this CPU's NAPI caches
            C[HEAD_KIND] = lengths.napi_head["kind"]
            C[PF_FRAGSZ] = lengths.napi_head["fragsz"]
            frag_cache = kernel.cpus[0].napi_alloc_cache.page
            C[PF_ORDER] = frag_cache.max_order
            C[PF_DOWN] = 0 if frag_cache.offset_up else 1
            C[TUN_SMALL_KM] = lengths.cache_index.get("skbuff_small_head", 0)
        # Written skbs waiting for the stack: a queue holds at most the frames of the run (and the fast
        # engine gives up beyond TUN_INFLIGHT_MAX), all queues together at most the frames of the run
        inflight = TUN_INFLIGHT_MAX if config.count is None else max(1, min(config.count + 1, TUN_INFLIGHT_MAX))
        waiting = ncpus * inflight if config.count is None else min(ncpus * inflight, config.count + 1)
        qcap = ref.sock.rcvbuf // lengths.min_truesize + 2
        # Live sk_buffs: queued, written and waiting, in the NAPI caches and defer lists.
        live_bound = qcap + waiting + ncpus * (int(C[NC_SIZE]) + SKB_DEFER_MAX + NAPI_POLL_WEIGHT) + 16
        slab_cap = live_bound + 16
        # Live pages per skb: its head's page (task_frag block, slab or pages of its own), its sk_buff's
        # slab page and its frag blocks; plus each writer's task_frag block.
        frags = lengths.max_frags
        page_cap = live_bound * (frags + 3) + ncpus + 64
        fl = np.zeros((live_bound, frags + 2), np.int64)  # frag lists: [count, page ids..., free-stack slot]
        tn = _tun_state(lengths.tab, lengths.caches, ncpus, inflight, slab_cap, lengths.max_objs)
        a = _RunArrays(kernel, C, ncpus, 1, page_cap, slab_cap, qcap, slab1=None,
                       cb_tab=np.zeros((3, 1), np.int64), fl=fl, ring_bias=0, tn=tn)
        a.CS[:, TF_PAGE] = -1
        return self._stream(a.S, C, a.CS, a.state())

    def _stream(self, S, C, CS, state) -> dict | None:
        """Feed the traffic through the compiled loop chunk by chunk, then the remaining events."""
        config = self.config
        empty = np.zeros(0, np.int64)
        try:
            for lengths, times, queues, hlens in _traffic_chunks(self.ref.source, config, self.legacy, self.ref):
                n = len(lengths)
                if self.tun is not None:
                    self.tun.prepare(lengths)  # tun_get_user() of each new length, on the scratch kernel
                done = _run(S, C, CS, lengths, times, queues, hlens, n, False, *state)
                if S[ERR] or done != n:
                    self.why = ERR_REASONS.get(int(S[ERR]))
                    return None
                self._write_trace(S, state[-2][0])  # obs = (tr, ...), before tn: _RunArrays.state()
                if self.progress is not None:
                    self.progress(int(S[PACKETS]))
        except _Unscannable:
            return None
        _run(S, C, CS, empty, empty, empty, empty, 0, True, *state)
        if S[ERR]:
            self.why = ERR_REASONS.get(int(S[ERR]))
            return None
        self._write_trace(S, state[-2][0])  # obs = (tr, ...), before tn: _RunArrays.state()
        return self._finish(S, C, CS, state)

    def _kind_names(self):
        """(path, head source) of each skb kind code the compiled loop records (T_KIND): a list, or
        for tun, whose code is the frame length, _TunLengths.names (path, head source, data_len)."""
        ring = self.ref.cpus[0].queue
        if self.tun is not None:
            return self.tun.names
        if self.copybreak:
            by_kind = {h[0]: (h[3], h[4]) for h in self.copy_heads}
            return [("", ""), ("napi_build_skb", "copybreak rx buffer (page_frag)")] + [
                by_kind.get(kind, ("", "")) for kind in (HEAD_1K, HEAD_SMALL, HEAD_FRAG)]
        if self.legacy:
            return [(self.head["path"], self.head["source"])]
        return [("napi_build_skb", f"ice_rx_page (half of an order-{ring.config['page_order']} page)")]

    def _trace_lost_frames(self, S, CS, desc_dd, desc_len) -> None:
        """Trace records of the frames still on each ice ring when it closes, from next_to_clean on
        (ice_clean_rx_ring() drops them; only a failing allocation leaves any)."""
        count = desc_dd.shape[1]
        for cpu in range(CS.shape[0]):
            idx = int(CS[cpu, NTC])
            for _ in range(int(CS[cpu, Q_NIC_FRAMES] - CS[cpu, Q_FRAMES] - CS[cpu, Q_DROPPED])):
                frame_len = 0
                while True:
                    frame_len += int(desc_len[cpu, idx])
                    eop = desc_dd[cpu, idx] == DD_EOP
                    idx = idx + 1 if idx + 1 < count else 0
                    if eop:
                        break
                self.trace.write(int(S[NOW]), cpu, frame_len, None, "dropped:driver")

    def _write_trace(self, S, tr) -> None:
        """Hand the records of the last _run() call to the TraceWriter, in the order they happened."""
        n = int(S[TR_LEN])
        if self.trace is None or not n:
            return
        names = self._kind_names()
        write = self.trace.write
        for time_ns, cpu, frame_len, length, data_len, truesize, nr_frags, kind, outcome in tr[:n].tolist():
            record = None
            if length >= 0:
                path, head_source, *tun_data_len = names[kind]
                record = (length, tun_data_len[0] if tun_data_len else data_len, truesize, nr_frags, path,
                          head_source)
            write(time_ns, cpu, frame_len, record, OUTCOMES[outcome])
        S[TR_LEN] = 0

    def _finish(self, S, C, CS, state) -> dict | None:
        (ev_time, ev_order, ev_kind, ev_cpu, page_ref, page_order, page_free, page_pin, pg_alloc, pg_freed,
         ring_page, ring_bias, ring_pgcnt, desc_dd, desc_len, desc_hlen,
         slab0, slab1, nc, df_page, df_frag, df_obj,
         q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl, obs, tn) = state
        ref = self.ref
        config = self.config
        kernel = ref.kernel
        profile = kernel.profile
        sock_queued = int(S[Q_LEN])
        pinned_at_end = int(S[PINNED])
        meminfo = {
            "rmem_alloc": int(S[RMEM]), "rcvbuf": int(C[RCVBUF]), "wmem_alloc": 0,
            "sndbuf": _wmem_default(), "fwd_alloc": int(S[FWD]), "wmem_queued": 0, "optmem": 0,
            "backlog": 0, "drops": int(S[SK_DROPS]),
        }
        peak_pages = int(S[PEAK_IN_USE])
        pages_allocated = {order: int(n) for order, n in enumerate(pg_alloc) if n}
        nc_stats = {"flushes": int(S[NC_FLUSHES]), "gets": int(S[NC_GETS]), "hits": int(S[NC_HITS]),
                    "puts": int(S[NC_PUTS]), "refill_failures": int(S[NC_REFILL_FAILURES]),
                    "refills": int(S[NC_REFILLS])}
        frames_dropped = int(S[D_FRAMES_DROPPED])
        if not self.copybreak and self.tun is None:
            # ice_clean_rx_ring(): frames written but never cleaned are lost with the ring
            frames_dropped = int(S[D_NIC_FRAMES]) - int(S[D_FRAMES])
            if self.trace is not None:
                self._trace_lost_frames(S, CS, desc_dd, desc_len)
        _teardown(S, C, CS, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias,
                  slab0, slab1, nc, df_page, df_frag, df_obj, q_page, q_frag, q_obj, q_ts, fl, tn)
        if S[ERR] or S[IN_USE] != 0 or slab0[0][K_LIVE] != 0 or slab1[0][K_LIVE] != 0 or tn[2][:, K_LIVE].any():
            return None  # something left over: only the reference engine can itemise it
        pages_freed = {order: int(n) for order, n in enumerate(pg_freed) if n}
        stats = {key: 0 for key in ref.cpus[0].queue.stats.as_dict()}
        stats.update(
            frames=int(S[D_FRAMES]), bytes=int(S[D_BYTES]), nic_frames=int(S[D_NIC_FRAMES]),
            ring_drops=int(S[D_RING_DROPS]), oversize_drops=int(S[D_OVERSIZE]), frames_dropped=frames_dropped,
            buffers_used=int(S[D_USED]), buffers_reused=int(S[D_REUSED]), buffers_released=int(S[D_RELEASED]),
            buffers_copied=int(S[D_COPIED]), bytes_copied=int(S[D_BYTES_COPIED]),
            skb_alloc_failures=int(S[D_SKB_FAILURES]), buffer_alloc_failures=int(S[D_BUF_FAILURES]),
            pages_allocated=int(S[D_PAGES_ALLOC]), polls=int(S[D_POLLS]),
        )
        driver_stats = dict(sorted(stats.items()))
        frag_stats = {"napi_allocs": int(S[PF_ALLOCS]), "napi_refills": int(S[PF_REFILLS]),
                      "napi_reuses": int(S[PF_REUSES]), "netdev_allocs": 0,
                      "netdev_refills": 0, "small_1k_allocs": int(S[SMALL_ALLOCS]),
                      "small_1k_refills": int(S[SMALL_REFILLS])}
        delivered_to_stack = int(S[DELIVERED])
        truesize_total = int(S[TRUESIZE_TOTAL])
        packets = int(S[PACKETS])
        nbytes = int(S[BYTES])
        ring = ref.cpus[0].queue
        if self.copybreak:
            paths, head_sources = {}, {}
            kinds = {HEAD_1K: CB_N_1K, HEAD_SMALL: CB_N_SMALL, HEAD_FRAG: CB_N_FRAG}
            named = {h[0]: (h[3], h[4]) for h in self.copy_heads}
            named[-1] = ("napi_build_skb", "copybreak rx buffer (page_frag)")
            for kind, (path, head_source) in named.items():
                n = int(S[kinds[kind]] if kind >= 0 else S[CB_N_BUILD])
                if n:
                    paths[path] = paths.get(path, 0) + n
                    head_sources[head_source] = head_sources.get(head_source, 0) + n
            paths, head_sources = dict(sorted(paths.items())), dict(sorted(head_sources.items()))
        elif self.tun is not None:
            paths, head_sources = self.tun.names_of(tn[1])
        elif self.legacy:
            path, head_source = self.head["path"], self.head["source"]
        else:
            path, head_source = "napi_build_skb", f"ice_rx_page (half of an order-{ring.config['page_order']} page)"
        if not self.copybreak and self.tun is None:
            paths = {path: delivered_to_stack} if delivered_to_stack else {}
            head_sources = {head_source: delivered_to_stack} if delivered_to_stack else {}
        dropped = {"ring_full": int(S[D_RING_DROPS]), "oversize": int(S[D_OVERSIZE]), "driver": frames_dropped,
                   "socket_rcvbuf": int(S[SK_DROPS])}
        result = {
            "engine": "fast",
            "kernel": profile.name,
            "release": profile.release,
            "driver": config.driver,
            "options": dict(sorted(config.options.items())),
            "traffic": ref.source.describe(),
            "cpus": config.cpus,
            "seed": config.seed,
            "packets": packets,
            "bytes": nbytes,
            "delivered": int(S[ENQUEUED]),
            "dropped": dropped,
            "dropped_total": sum(dropped.values()),
            "truesize_total": truesize_total,
            "truesize_per_packet": round(truesize_total / delivered_to_stack, 2) if delivered_to_stack else 0,
            "truesize_per_byte": round(truesize_total / max(1, nbytes), 4),
            "paths": paths,
            "head_sources": head_sources,
            "pages": {
                "allocated_by_order": {str(k): v for k, v in sorted(pages_allocated.items())},
                "freed_by_order": {str(k): v for k, v in sorted(pages_freed.items())},
                "peak_in_use": peak_pages,
                "peak_bytes_in_use": peak_pages * profile.PAGE_SIZE,
                "peak_pinned_by_queued_skbs": int(S[PEAK_PINNED]),
                "pinned_at_end": pinned_at_end,
            },
            "napi_skb_cache": nc_stats,
            "page_frag": frag_stats,
            "driver_stats": driver_stats,
            "napi": {"polls": int(S[POLLS]), "irqs": int(S[IRQS]), "time_squeeze": int(S[TIME_SQUEEZE])},
            "socket": {
                "rcvbuf": int(C[RCVBUF]),
                "peak_rmem_alloc": int(S[PEAK_RMEM]),
                "queued_at_end": sock_queued,
                "condensed": int(S[CONDENSED]),
                "drops": int(S[SK_DROPS]),
                "meminfo_at_end": meminfo,
            },
            "leaks": {"clean": True, "details": [], "pages": 0, "skbs": 0, "slab_objects": 0},
            "warnings": list(kernel.warnings),
        }
        if config.faults:
            injected = {layer: int(S[F_RULES + n * FR_SIZE + FR_INJECTED]) for n, layer in enumerate(LAYERS)}
            result["faults"] = fault_report(config.faults, injected)
        _, counts, values, series = obs
        truesize_by_len: dict[int, dict[int, int]] = {}
        for frame_len, nr_frags in zip(*np.nonzero(counts)):
            by_len = truesize_by_len.setdefault(int(frame_len), {})
            truesize = int(values[frame_len, nr_frags])
            by_len[truesize] = by_len.get(truesize, 0) + int(counts[frame_len, nr_frags])
        self.extra = {"series": [tuple(point) for point in series[:int(S[SR_LEN])].tolist()],
                      "truesize_by_len": truesize_by_len, "page_size": profile.PAGE_SIZE}
        return result


def _wmem_default() -> int:
    from skbsim.net.sock import WMEM_DEFAULT

    return WMEM_DEFAULT


def _load_faults(S, faults) -> None:
    """The reference kernel's FaultInjector (its rules as the run starts, its random stream) into S."""
    version, words, _ = faults.rng.getstate()
    if version != 3 or len(words) != MT_N + 1:
        raise ValueError("unexpected random.Random state")
    S[F_MT:F_MT + MT_N] = words[:MT_N]
    S[F_MT_INDEX] = words[MT_N]
    for layer, rule in faults.rules.items():
        base = F_RULES + LAYERS.index(layer) * FR_SIZE
        S[F_ANY] = 1
        S[base + FR_ACTIVE] = 1
        # random() < p  <=>  k / 2**53 < p  <=>  k < ceil(p * 2**53) for the integer k behind random()
        S[base + FR_THRESHOLD] = -1 if rule.probability >= 1.0 else math.ceil(rule.probability * 2.0 ** 53)
        S[base + FR_INTERVAL] = rule.interval
        S[base + FR_TIMES] = rule.times
        S[base + FR_SPACE] = rule.space
        S[base + FR_COUNT] = rule.count
        S[base + FR_INJECTED] = faults.injected[layer]


def _new_slab_cache(cache, capacity: int) -> tuple:
    """The integer state of one kmem cache (see _slab_alloc): K and its slab tables."""
    K = np.zeros(K_SIZE, np.int64)
    K[K_ORDER] = cache.order
    K[K_OBJS] = cache.objs_per_slab
    K[K_LAYER] = LAYERS.index(cache.fault_layer)
    return (K, np.zeros((capacity, cache.objs_per_slab + 1), np.int32), np.zeros(capacity, np.int64),
            np.zeros(capacity, np.int64), np.zeros(capacity, np.int64), np.zeros(capacity, np.int64),
            np.zeros(capacity, np.int64))


def _legacy_header_skb(ref: Simulation) -> dict:
    """What ice_construct_skb()'s header skb is on this kernel, from the model itself.

    _ice_alloc_hdr_skb() runs on a scratch kernel of the same profile (so the
    run's kernel is untouched): its head source, truesize, end and tail after
    the reserve are what every legacy header skb of the run gets.
    """
    from skbsim.drivers.ice import _ice_alloc_hdr_skb
    from skbsim.kernel import Kernel

    scratch = Kernel(ref.kernel.profile, ncpus=1)
    ring = ref.cpus[0].queue
    with scratch.softirq(0):
        skb = _ice_alloc_hdr_skb(scratch, ring)
    return {"source": skb.head_source, "path": skb.path, "truesize": skb.truesize, "end": skb.end,
            "tail": skb.tail, "head_size": skb.head_size}


def _copybreak_copy_skbs(ref: Simulation) -> list[tuple]:
    """What copybreak_copy_skb()'s napi_alloc_skb(len) gives for every len up to copybreak.

    Each length runs through the model's napi_alloc_skb() on a scratch kernel
    of the same profile (the run's kernel is untouched): (head kind, truesize,
    page_frag fragment size, path, head source).  A head from anywhere but the
    1K pieces, skbuff_small_head or the NAPI page_frag_cache is out of scope.
    """
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import consume_skb, napi_alloc_skb

    ring = ref.cpus[0].queue
    scratch = Kernel(ref.kernel.profile, ncpus=1)
    napi = napi_struct(net_device("eth0"), NAPI_POLL_WEIGHT, napi_id=0x2001, cpu=0)
    kinds = {"page_frag_1k": HEAD_1K, "skbuff_small_head": HEAD_SMALL, "page_frag": HEAD_FRAG}
    heads = []
    for length in range(ring.copybreak + 1):
        with scratch.softirq(0):
            skb = napi_alloc_skb(scratch, napi, length)
            if skb is None or skb.head_source not in kinds:
                raise ValueError(f"the fast engine models copybreak copies into heads from {', '.join(kinds)} only; "
                                 f"napi_alloc_skb({length}) on {scratch.profile.name} takes one from "
                                 f"{None if skb is None else skb.head_source}")
            if skb.truesize != scratch.profile.SKB_TRUESIZE(skb.end):
                raise ValueError(f"napi_alloc_skb({length}): skb_condense() would change its truesize")
            heads.append((kinds[skb.head_source], skb.truesize, skb.head_size, skb.path, skb.head_source))
            consume_skb(scratch, skb)
    for kind, _truesize, _fragsz, path, source in heads:
        if (path, source) != next((h[3], h[4]) for h in heads if h[0] == kind):
            raise ValueError("copybreak copies of one head kind with different paths")
    return heads


class _TunLengths:
    """What tun_get_user() does with a frame of each length, from the model itself.

    Each new length is written once through the model's tun_get_user() on a
    scratch kernel of the same profile and CPU count, into a scratch queue
    opened with the run's options (the run's kernel is untouched), and the
    skb is read: the route (tun_build_skb, tun_alloc_skb or refused), its
    truesize, where its head comes from (the task_frag block and buflen, a
    kmem cache, or pages of their own) and the orders of its frag blocks.
    All of that depends on the length and the options only; the state a
    write meets (the task_frag block, sk_wmem_alloc, the slabs) is the
    compiled loop's.  An skb that skb_condense() would change is out of scope.
    """

    def __init__(self, ref: Simulation, config: RunConfig):
        from skbsim.drivers.tun import open_queue
        from skbsim.kernel import Kernel
        from skbsim.mm.gfp import GFP_KERNEL
        from skbsim.net.napi import napi_struct, net_device

        # the scratch kernel has no fault rules: every length's skb is the one no failure changes
        kernel = self.kernel = Kernel(ref.kernel.profile, ncpus=config.cpus)
        self.chunks = kernel.profile.feature("alloc_skb_with_frags") == "chunks"
        napi = napi_struct(net_device("eth0"), NAPI_POLL_WEIGHT, napi_id=0x2001, cpu=0)
        with kernel.softirq(0):
            self.queue = open_queue(kernel, napi.dev, napi, dict(config.options))
        # The caches a head may come from: skbuff_small_head and kmalloc from 256 bytes up (a head is
        # at least SKB_HEAD_ALIGN(NET_SKB_PAD + ETH_HLEN) bytes).  The scratch kernel has the run's CPU
        # count, so SLUB picks the same slab orders.
        caches = [kernel.skb_small_head_cache] if kernel.skb_small_head_cache is not None else []
        caches += [kernel.slab.kmalloc_slab(size, GFP_KERNEL) for size in kernel.slab.kmalloc_sizes if size >= 256]
        if len(caches) > KM_MAX:
            raise ValueError("the fast engine models tun heads from at most 8 kmem caches")
        self.caches = caches
        self.cache_index = {cache.name: c for c, cache in enumerate(caches)}
        self.max_objs = max(cache.objs_per_slab for cache in caches)
        #: per length: the skb's path, head source and data_len (for the report and --trace)
        self.names: dict[int, tuple[str, str, int]] = {}
        # IFF_NAPI_FRAGS: napi_get_frags()'s skb, napi_alloc_skb(GRO_MAX_HEAD), is the same for every
        # write; __skb_grow() gives it a kmalloc head when the frame is longer than its tailroom
        self.napi_head = None
        if self.queue.tfile.napi_frags_enabled:
            from skbsim.net.skbuff import consume_skb, napi_alloc_skb, skb_tailroom

            kinds = {"page_frag_1k": HEAD_1K, "skbuff_small_head": HEAD_SMALL, "page_frag": HEAD_FRAG}
            with kernel.softirq(0):
                skb = napi_alloc_skb(kernel, napi, kernel.profile.GRO_MAX_HEAD)
                if skb is None or skb.head_source not in kinds:
                    raise ValueError("the fast engine models IFF_NAPI_FRAGS skbs with heads from "
                                     f"{', '.join(kinds)} only")
                self.napi_head = {"kind": kinds[skb.head_source], "source": skb.head_source,
                                  "fragsz": skb.head_size, "tailroom": skb_tailroom(skb)}
                consume_skb(kernel, skb)
        largest = self._row(MAX_TUN_FRAME)
        # alloc_skb_with_frags() fits the rest in blocks of falling order, so a shorter frame may need
        # more of them than the longest: room for MAX_SKB_FRAGS where the longest is paged at all
        self.max_frags = ref.kernel.profile.MAX_SKB_FRAGS if largest[T_NFRAGS] else 1
        self.tab = np.zeros((MAX_TUN_FRAME + 1, T_FRAGS + self.max_frags), np.int64)
        self.known = np.zeros(MAX_TUN_FRAME + 1, np.bool_)
        self._store(MAX_TUN_FRAME, largest)
        # truesize grows with the length (a longer frame never gets a smaller head or fewer frags), so
        # the shortest frame's sizes the socket queue; prepare() checks every length against it
        self._store(MIN_TUN_FRAME, self._row(MIN_TUN_FRAME))
        self.min_truesize = int(self.tab[MIN_TUN_FRAME, T_TS])

    def prepare(self, lengths) -> None:
        """Rows for every length of a chunk that has none yet."""
        if len(lengths) == 0:
            return
        if int(lengths.min()) < 0 or int(lengths.max()) > MAX_TUN_FRAME:
            raise ValueError(f"a tun frame outside 0..{MAX_TUN_FRAME} bytes")
        for length in np.unique(lengths[~self.known[lengths]]).tolist():
            self._store(length, self._row(length))
            if 0 < self.tab[length, T_TS] < self.min_truesize:
                # the socket queue was sized by the smallest truesize (never the case: see __init__)
                raise ValueError(f"a tun skb of {length} bytes is smaller than the fast engine sized for")

    def _store(self, length: int, row: list[int]) -> None:
        if row[T_NFRAGS] > self.max_frags:
            raise ValueError(f"a tun skb of {length} bytes has more frags than the fast engine has room for")
        self.tab[length, :len(row)] = row
        self.known[length] = True

    def _row(self, length: int) -> list[int]:
        from skbsim.drivers.base import frame_header, make_frame
        from skbsim.drivers.tun import EINVAL, EMSGSIZE, tun_get_user
        from skbsim.net.skbuff import kfree_skb

        kernel = self.kernel
        profile = kernel.profile
        queue = self.queue
        tfile = queue.tfile
        with kernel.on_cpu(0):
            written, route, skb = tun_get_user(kernel, queue.tun, tfile, queue.task, length,
                                               frame_header(make_frame(length)), queue.noblock)
        row = [0] * T_FRAGS
        if written < 0:
            if written not in (-EINVAL, -EMSGSIZE):
                raise ValueError(f"tun_get_user() of {length} bytes fails ({written}) on a fresh queue")
            return row
        waiting = tfile.sk.sk_write_queue if tfile.napi_enabled and not tfile.napi_frags_enabled else tfile.rx_handoff
        if not waiting or waiting[-1] is not skb or skb.cloned:
            raise ValueError("tun_get_user() left its skb elsewhere than the fast engine looks")
        waiting.pop()
        if skb.data_len:
            if skb.data_len <= skb.end - skb.tail:
                raise ValueError(f"skb_condense() would pull a tun skb of {length} bytes into its head")
        elif skb.truesize != profile.SKB_TRUESIZE(skb.end):
            raise ValueError(f"skb_condense() would change the truesize of a tun skb of {length} bytes")
        row[T_ROUTE] = {"tun_build_skb": ROUTE_BUILD, "tun_alloc_skb": ROUTE_ALLOC,
                        "tun_napi_alloc_frags": ROUTE_FRAGS}[route]
        row[T_TS] = skb.truesize
        if route == "tun_napi_alloc_frags":
            row[T_EXPAND] = int(length > self.napi_head["tailroom"])
            if not row[T_EXPAND]:
                if skb.head_source != self.napi_head["source"] or skb.data_len:
                    raise ValueError(f"an IFF_NAPI_FRAGS skb of {length} bytes the fast engine does not follow")
                self.names[length] = (route, skb.head_source, skb.data_len)
                with kernel.on_cpu(0):
                    kfree_skb(kernel, skb)
                return row
        if skb.head_frag:
            if route != "tun_build_skb":
                raise ValueError(f"{route} built a head from a page fragment")
            row[T_HEAD], row[T_BUFLEN] = TH_TASK_FRAG, skb.head_size
        else:
            page = kernel.pages.virt_to_head_page(skb.head)
            if page.slab is not None:
                index = self.cache_index.get(page.slab.cache.name)
                if index is None:
                    raise ValueError(f"a tun head from {page.slab.cache.name}, which the fast engine does not model")
                row[T_HEAD], row[T_CACHE] = TH_SLAB, index
            else:
                row[T_HEAD], row[T_CACHE] = TH_PAGES, page.order
        row[T_NFRAGS] = len(skb.shinfo.frags)
        row[T_DLEN] = skb.data_len
        row += [frag.page.order for frag in skb.shinfo.frags]
        if row[T_NFRAGS] and not self.chunks and any(row[T_FRAGS:]):
            # the up-to-6.5 form falls back from high orders differently; tun never asks it for them
            raise ValueError(f"a tun skb of {length} bytes with high-order blocks from the up-to-6.5 "
                             "alloc_skb_with_frags(), which the fast engine does not follow")
        self.names[length] = (route, skb.head_source, skb.data_len)
        with kernel.on_cpu(0):
            kfree_skb(kernel, skb)
        return row

    def names_of(self, delivered) -> tuple[dict, dict]:
        """paths and head_sources of the report, from the skbs delivered per frame length."""
        paths: dict[str, int] = {}
        head_sources: dict[str, int] = {}
        for length in np.flatnonzero(delivered).tolist():
            n = int(delivered[length])
            path, source, _ = self.names[length]
            paths[path] = paths.get(path, 0) + n
            head_sources[source] = head_sources.get(source, 0) + n
        return dict(sorted(paths.items())), dict(sorted(head_sources.items()))


def _traffic_chunks(source, config: RunConfig, legacy: bool = False, ref: Simulation | None = None):
    """(lengths, arrival times, RX queues) as int64 arrays of up to CHUNK frames, streamed.

    Synthetic sources give lengths without building frames (length_batches),
    arrival times by the same rule the frames use, and queues from the same
    seeded flow draws and per-flow RSS queue as SyntheticSource._generate; a
    classic pcap on one CPU is scanned by a compiled loop over 1 MiB reads
    (the same arithmetic as CaptureSource._pcap_frames), for rx=legacy with
    its frames' headers grouped by a compiled table (_HeaderTable) so that
    eth_get_headlen() runs once per distinct header; other captures are
    read frame by frame through the source.  Raises _Unscannable when the
    fast reader meets something it leaves to the reference reader.
    """
    from skbsim.traffic.capture import CaptureSource
    from skbsim.traffic.synthetic import SyntheticSource

    if legacy:
        if isinstance(source, SyntheticSource) and source.headers:
            yield from _synthetic_with_headlen(source, config, ref)
        elif (isinstance(source, CaptureSource) and source.format == "pcap" and config.cpus == 1
              and source.headers and _pcap_is_ethernet(source)):
            from skbsim.net.ethernet import eth_get_headlen

            dev = ref.dev

            def headlen_of(head: bytes) -> int:
                return eth_get_headlen(dev, head, ICE_RX_HDR_SIZE)

            for lengths, times, hlens in _pcap_chunks(source, headlen_of):
                yield lengths, times, np.zeros(len(lengths), np.int64), hlens
        else:
            yield from _frames_with_headlen(source, ref)
        return
    if isinstance(source, SyntheticSource):
        take_times = _arrival_times(source.rate, source.arrival, source.seed)
        take_queues = _synthetic_queues(source) if config.cpus > 1 else None
        for batch in source.length_batches(CHUNK):
            lengths = np.asarray(batch, np.int64)
            queues = take_queues(lengths) if take_queues else np.zeros(len(batch), np.int64)
            yield lengths, take_times(len(batch)), queues, lengths
        return
    if isinstance(source, CaptureSource) and source.format == "pcap" and config.cpus == 1:
        for lengths, times, _ in _pcap_chunks(source):
            yield lengths, times, np.zeros(len(lengths), np.int64), lengths
        return
    lengths = []
    times = []
    queues = []
    for frame in source:
        lengths.append(frame.length)
        times.append(frame.time_ns)
        queues.append(frame.queue)
        if len(lengths) == CHUNK:
            arr = np.asarray(lengths, np.int64)
            yield arr, np.asarray(times, np.int64), np.asarray(queues, np.int64), arr
            lengths = []
            times = []
            queues = []
    if lengths:
        arr = np.asarray(lengths, np.int64)
        yield arr, np.asarray(times, np.int64), np.asarray(queues, np.int64), arr


def _pcap_is_ethernet(source) -> bool:
    """Ethernet captures keep their leading bytes as Frame.header (CaptureSource._pcap_frames)."""
    from skbsim.traffic import capture

    header = capture._read_pcap_header(source._head, source.path)
    return bool(capture.link_info(header.linktype)[3])


def _synthetic_with_headlen(source, config: RunConfig, ref: Simulation):
    """Synthetic frames in chunks with their eth_get_headlen(), without building Frame objects.

    A synthetic frame's header bytes are its flow's template built for its
    length (SyntheticSource._generate), so the header length depends on
    (flow, length) only: it is measured once per pair by the model's
    eth_get_headlen() on exactly those bytes.  Flows are drawn per frame
    with the source's own seeded picker, as the frames draw them.
    """
    from skbsim.net.ethernet import eth_get_headlen
    from skbsim.traffic.synthetic import SYNTHETIC_IPV4_UDP_MIN

    take_times = _arrival_times(source.rate, source.arrival, source.seed)
    pick_flows = source._flow_picker()
    non_ip_queue = source.rss.table[0]
    flow_states: dict = {}
    headlen_of: dict[int, int] = {}
    dev = ref.dev

    def flow_state(index):
        state = flow_states.get(index)
        if state is None:
            state = flow_states[index] = source._flow_state(index)
        return state

    def measure(index, length):
        key = index * 65536 + length
        headlen = headlen_of.get(key)
        if headlen is None:
            header = flow_state(index).template.build(length)
            headlen = headlen_of[key] = eth_get_headlen(dev, header, ICE_RX_HDR_SIZE)
        return headlen

    # On one CPU the flow matters only through the header length.  While every flow gives a
    # length the same header length, the per-frame flow draws are not needed; once one does
    # not, the draws are made (catching up on the frames already passed: the picker's draws
    # do not depend on how they are grouped) and used from then on.
    same_for_all_flows: dict[int, int] | None = {} if config.cpus == 1 and source.flows <= 64 else None
    frames_done = 0
    for batch in source.length_batches(CHUNK):
        lengths = np.asarray(batch, np.int64)
        hlens = np.zeros(len(batch), np.int64)
        long = lengths > ICE_RX_HDR_SIZE
        if same_for_all_flows is not None:
            for length in np.unique(lengths[long]).tolist():
                if length not in same_for_all_flows:
                    values = {measure(index, length) for index in range(source.flows)}
                    if len(values) != 1:
                        same_for_all_flows = None
                        pick_flows(frames_done)
                        break
                    same_for_all_flows[length] = values.pop()
        if same_for_all_flows is not None:
            if long.any():
                table = np.zeros(int(lengths.max()) + 1, np.int64)
                for length, headlen in same_for_all_flows.items():
                    if length < len(table):
                        table[length] = headlen
                hlens[long] = table[lengths[long]]
            frames_done += len(batch)
            yield lengths, take_times(len(batch)), np.zeros(len(batch), np.int64), hlens
            continue
        picks = np.fromiter(pick_flows(len(batch)), np.int64, len(batch))
        flows = np.unique(picks)
        queue_of = np.zeros(int(flows[-1]) + 1 if len(flows) else 1, np.int64)
        for index in flows.tolist():
            queue_of[index] = flow_state(index).queue
        queues = queue_of[picks]
        queues[lengths < SYNTHETIC_IPV4_UDP_MIN] = non_ip_queue
        if long.any():
            keys = picks[long] * 65536 + lengths[long]
            unique, inverse = np.unique(keys, return_inverse=True)
            values = np.empty(len(unique), np.int64)
            for j, key in enumerate(unique.tolist()):
                index, length = divmod(key, 65536)
                values[j] = measure(index, length)
            hlens[long] = values[inverse]
        frames_done += len(batch)
        yield lengths, take_times(len(batch)), queues, hlens


def _frames_with_headlen(source, ref: Simulation):
    """Frames through the source, with what eth_get_headlen() finds in the bytes the NIC writes.

    ice_construct_skb() copies eth_get_headlen(header, ICE_RX_HDR_SIZE) bytes of
    a frame above ICE_RX_HDR_SIZE; the header is frame_header(frame, the
    ring's template), as ice_nic_receive() writes it, and the model's own
    eth_get_headlen() measures it (once per distinct header while the memo
    holds it: the memo is emptied when it reaches HEADER_TABLE_SIZE headers,
    so a capture of many distinct headers does not grow it without bound).
    """
    from skbsim.drivers.base import frame_header
    from skbsim.net.ethernet import eth_get_headlen

    templates = [state.queue.synthetic for state in ref.cpus]
    ncpus = len(templates)
    dev = ref.dev
    known: dict[bytes, int] = {}
    memo_size = max(1, HEADER_TABLE_SIZE)
    lengths = np.zeros(CHUNK, np.int64)
    times = np.zeros(CHUNK, np.int64)
    queues = np.zeros(CHUNK, np.int64)
    hlens = np.zeros(CHUNK, np.int64)
    n = 0
    for frame in source:
        length = frame.length
        lengths[n] = length
        times[n] = frame.time_ns
        queues[n] = frame.queue
        if length > ICE_RX_HDR_SIZE:
            header = frame_header(frame, templates[frame.queue % ncpus])
            headlen = known.get(header)
            if headlen is None:
                if len(known) >= memo_size:
                    known.clear()
                headlen = known[header] = eth_get_headlen(dev, header, ICE_RX_HDR_SIZE)
            hlens[n] = headlen
        n += 1
        if n == CHUNK:
            yield lengths.copy(), times.copy(), queues.copy(), hlens.copy()
            n = 0
    if n:
        yield lengths[:n].copy(), times[:n].copy(), queues[:n].copy(), hlens[:n].copy()


def _synthetic_queues(source):
    """Each frame's RX queue as SyntheticSource._generate gives it: the seeded flow draw (made for
    every frame), the flow's RSS queue, or the indirection table's first entry for frames too
    short for IPv4/UDP."""
    from skbsim.traffic.synthetic import SYNTHETIC_IPV4_UDP_MIN

    pick_flows = source._flow_picker()
    non_ip_queue = source.rss.table[0]
    queue_of_flow: dict[int, int] = {}

    def queues(lengths):
        picks = pick_flows(len(lengths))
        out = np.empty(len(lengths), np.int64)
        for i, index in enumerate(picks):
            queue = queue_of_flow.get(index)
            if queue is None:
                queue = queue_of_flow[index] = source._flow_state(index).queue
            out[i] = queue
        out[lengths < SYNTHETIC_IPV4_UDP_MIN] = non_ip_queue
        return out
    return queues


class _Unscannable(Exception):
    """The fast pcap reader stops; the reference engine reads the file (and reports the error)."""


def _arrival_times(rate, arrival, seed):
    """skbsim.traffic.synthetic.arrival_sampler as int64 arrays.

    Constant arrivals are floor(i * numerator / denominator) of the same
    exact fraction 1e9/rate; numpy computes them while i * numerator stays
    within int64, the sampler's own Python integers beyond that.
    """
    from fractions import Fraction

    from skbsim.traffic.synthetic import arrival_sampler

    sampler = arrival_sampler(rate, arrival, seed)
    if rate is None or arrival != "constant":
        return lambda k: np.asarray(sampler(k), np.int64)
    period = Fraction(10**9) / Fraction(rate)
    numerator, denominator = period.numerator, period.denominator
    position = 0

    def times(k):
        nonlocal position
        start = position
        position += k
        sampler_times = None
        if (start + k) * numerator < (1 << 62):
            index = np.arange(start, start + k, dtype=np.int64)
            return index * numerator // denominator
        sampler_times = [(i * numerator) // denominator for i in range(start, start + k)]
        return np.asarray(sampler_times, np.int64)
    return times


@njit(cache=True)
def _scan_pcap(buf, size, big, record_len, frac_to_ns, orig_min, orig_max, max_caplen, length_adjust,
               lengths, times, hstart, caplens, st):
    """Classic pcap records from buf[st[0]:size] into lengths/times (and where each record's bytes start
    in buf, and how many were captured, into hstart/caplens); st = [pos, first_ns, last_ns, index,
    limit (-1 none), filled, status].  status 1: a corrupt record (left to the reference reader)."""
    pos = st[0]
    filled = st[5]
    cap = lengths.shape[0]
    while filled < cap and pos + record_len <= size:
        if st[4] >= 0 and st[3] >= st[4]:
            break
        if big:
            sec = (np.int64(buf[pos]) << 24) | (np.int64(buf[pos + 1]) << 16) | (np.int64(buf[pos + 2]) << 8) | buf[pos + 3]
            frac = (np.int64(buf[pos + 4]) << 24) | (np.int64(buf[pos + 5]) << 16) | (np.int64(buf[pos + 6]) << 8) | buf[pos + 7]
            caplen = (np.int64(buf[pos + 8]) << 24) | (np.int64(buf[pos + 9]) << 16) | (np.int64(buf[pos + 10]) << 8) | buf[pos + 11]
            orig = (np.int64(buf[pos + 12]) << 24) | (np.int64(buf[pos + 13]) << 16) | (np.int64(buf[pos + 14]) << 8) | buf[pos + 15]
        else:
            sec = (np.int64(buf[pos + 3]) << 24) | (np.int64(buf[pos + 2]) << 16) | (np.int64(buf[pos + 1]) << 8) | buf[pos]
            frac = (np.int64(buf[pos + 7]) << 24) | (np.int64(buf[pos + 6]) << 16) | (np.int64(buf[pos + 5]) << 8) | buf[pos + 4]
            caplen = (np.int64(buf[pos + 11]) << 24) | (np.int64(buf[pos + 10]) << 16) | (np.int64(buf[pos + 9]) << 8) | buf[pos + 8]
            orig = (np.int64(buf[pos + 15]) << 24) | (np.int64(buf[pos + 14]) << 16) | (np.int64(buf[pos + 13]) << 8) | buf[pos + 12]
        if caplen > orig or caplen > max_caplen:
            st[6] = 1
            break
        end = pos + record_len + caplen
        if end > size:
            break
        if orig < orig_min or orig > orig_max:
            st[6] = 1
            break
        time_ns = sec * 1_000_000_000 + frac * frac_to_ns
        if st[3] == 0:
            st[1] = time_ns
        time_ns -= st[1]
        if time_ns < st[2]:
            time_ns = st[2]
        else:
            st[2] = time_ns
        lengths[filled] = orig + length_adjust
        times[filled] = time_ns
        hstart[filled] = pos + record_len  # where the record's bytes start in buf
        caplens[filled] = caplen
        filled += 1
        st[3] += 1
        pos = end
    st[0] = pos
    st[5] = filled


@njit(cache=True)
def _header_slots(buf, hstart, caplens, lengths, first, last, wire_adjust, max_bytes, mix,
                  index, words, nbytes, hashes, seen_at, scratch, slot_of, used):
    """Give each frame of lengths[first:last] above ICE_RX_HDR_SIZE the table slot of its header
    (its first min(length - wire_adjust, caplen, max_bytes) bytes in buf), others -1, into slot_of.

    A slot holds one distinct header: its bytes (as little-endian 64-bit words, the last one
    zero-padded, with the byte count beside them), their hash, and where in buf it was first
    seen.  index is an open-addressing table (linear probing, a power of two at least twice
    the slot count) of slot numbers, -1 empty.  A hash match counts only once the byte count
    and every word are equal, so two frames share a slot exactly when their headers are the
    same bytes.  Unseen headers take the next free slot (used[0] counts them); when none is
    left the pass stops and returns the frame it stopped at (else last), for the caller to
    measure the new slots' headers and start the table over.
    """
    mask = index.shape[0] - 1
    capacity = words.shape[0]
    taken = used[0]
    j = first
    while j < last:
        length = lengths[j]
        if length <= ICE_RX_HDR_SIZE:
            slot_of[j] = -1
            j += 1
            continue
        usable = min(length - wire_adjust, caplens[j], max_bytes)
        start = hstart[j]
        nwords = (usable + 7) >> 3
        h = np.uint64(usable) * mix
        for w in range(nwords):
            base = start + 8 * w
            if usable - 8 * w >= 8:  # a whole word: eight fixed shifts, which the compiler turns into one load
                word = (np.uint64(buf[base]) | (np.uint64(buf[base + 1]) << np.uint64(8))
                        | (np.uint64(buf[base + 2]) << np.uint64(16)) | (np.uint64(buf[base + 3]) << np.uint64(24))
                        | (np.uint64(buf[base + 4]) << np.uint64(32)) | (np.uint64(buf[base + 5]) << np.uint64(40))
                        | (np.uint64(buf[base + 6]) << np.uint64(48)) | (np.uint64(buf[base + 7]) << np.uint64(56)))
            else:
                word = np.uint64(0)
                for k in range(usable - 8 * w):
                    word |= np.uint64(buf[base + k]) << np.uint64(8 * k)
            scratch[w] = word
            h = (h ^ word) * mix
            h ^= h >> np.uint64(29)
        probe = np.int64(h & np.uint64(mask))
        slot = index[probe]
        while slot >= 0:
            if hashes[slot] == h and nbytes[slot] == usable:
                same = True
                for w in range(nwords):
                    if words[slot, w] != scratch[w]:
                        same = False
                        break
                if same:
                    break
            probe = (probe + 1) & mask
            slot = index[probe]
        if slot < 0:
            if taken == capacity:
                break
            slot = taken
            taken += 1
            index[probe] = slot
            hashes[slot] = h
            nbytes[slot] = usable
            seen_at[slot] = start
            for w in range(nwords):
                words[slot, w] = scratch[w]
        slot_of[j] = slot
        j += 1
    used[0] = taken
    return j


class _HeaderTable:
    """Header lengths of pcap frames, each distinct header measured once by the model's function.

    The bytes are grouped by _header_slots() (compiled, exact byte comparison); only headers
    new to the table reach headlen_of(), in Python.  The table has HEADER_TABLE_SIZE slots
    (and fixed arrays): when it fills, the headers seen so far are measured and it starts
    over empty, so a capture of many distinct headers costs measurements, not memory.
    """

    __slots__ = ("headlen_of", "wire_adjust", "max_bytes", "mix", "index", "words", "nbytes", "hashes", "seen_at",
                 "scratch", "headlens", "slot_of", "used")

    def __init__(self, headlen_of, wire_adjust: int, max_bytes: int, chunk: int):
        size = max(1, HEADER_TABLE_SIZE)
        self.headlen_of = headlen_of
        self.wire_adjust = wire_adjust
        self.max_bytes = max_bytes
        self.mix = np.uint64(HEADER_HASH_MIX)
        self.index = np.full(1 << (2 * size - 1).bit_length(), -1, np.int64)
        self.words = np.zeros((size, (max_bytes + 7) // 8), np.uint64)
        self.nbytes = np.zeros(size, np.int64)
        self.hashes = np.zeros(size, np.uint64)
        self.seen_at = np.zeros(size, np.int64)
        self.scratch = np.zeros((max_bytes + 7) // 8, np.uint64)
        self.headlens = np.zeros(size, np.int64)
        self.slot_of = np.zeros(chunk, np.int64)
        self.used = np.zeros(1, np.int64)

    def fill(self, data: bytes, buf, hstart, caplens, lengths, first: int, last: int, hlens) -> None:
        """hlens[first:last]: the header length of each frame above ICE_RX_HDR_SIZE (others 0)."""
        while first < last:
            known = int(self.used[0])
            stop = _header_slots(buf, hstart, caplens, lengths, first, last, self.wire_adjust, self.max_bytes,
                                 self.mix, self.index, self.words, self.nbytes, self.hashes, self.seen_at, self.scratch,
                                 self.slot_of, self.used)
            for slot in range(known, int(self.used[0])):
                start = int(self.seen_at[slot])
                self.headlens[slot] = self.headlen_of(data[start:start + int(self.nbytes[slot])])
            slots = self.slot_of[first:stop]
            hlens[first:stop] = np.where(slots >= 0, self.headlens[slots], 0)
            if stop < last:  # full: every slot is measured and used; start over from the frame that found none
                self.index[:] = -1
                self.used[0] = 0
            first = stop


def _pcap_chunks(source, headlen_of=None):
    """A classic pcap's (lengths, times, header lengths), as CaptureSource._pcap_frames() (and
    _paced()) give them.  With headlen_of(header bytes), frames above ICE_RX_HDR_SIZE get it
    applied to their first min(frame length, caplen, HEADER_BYTES) captured bytes (the
    Frame.header a Ethernet capture carries), once per distinct header (_HeaderTable); others
    get 0."""
    from skbsim.traffic import capture
    from skbsim.traffic.frame import MAX_FRAME_LEN, MIN_FRAME_LEN

    header = capture._read_pcap_header(source._head, source.path)
    _, wire_adjust, _, _ = capture.link_info(header.linktype)
    fcs_len = header.fcs_len
    limit = -1 if source._limit is None else source._limit
    if limit == 0:
        return
    paced = _arrival_times(source.rate, source.arrival, source.seed) if source.rate is not None else None
    st = np.zeros(7, np.int64)
    st[4] = limit
    from skbsim.traffic.frame import HEADER_BYTES

    lengths = np.zeros(CHUNK, np.int64)
    times = np.zeros(CHUNK, np.int64)
    hstart = np.zeros(CHUNK, np.int64)
    caplens = np.zeros(CHUNK, np.int64)
    hlens = np.zeros(CHUNK, np.int64)
    table = None if headlen_of is None else _HeaderTable(headlen_of, wire_adjust, HEADER_BYTES, CHUNK)
    args = (header.order == ">", header.record_len, 1 if header.nano else 1000, MIN_FRAME_LEN + fcs_len - wire_adjust,
            MAX_FRAME_LEN + fcs_len - wire_adjust, max(header.snaplen, capture._MAX_CAPLEN), wire_adjust - fcs_len)
    with capture._open(source.path) as f:
        f.seek(capture._FILE_HEADER_LEN)
        rest = b""
        eof = False
        while True:
            more = b"" if eof else f.read(capture._READ_CHUNK)
            eof = not more
            data = rest + more
            buf = np.frombuffer(data, np.uint8)
            st[0] = 0
            while True:
                before = int(st[5])
                _scan_pcap(buf, len(data), *args, lengths, times, hstart, caplens, st)
                if st[6]:
                    raise _Unscannable
                if table is not None:
                    # while this read's bytes are at hand: the header lengths of the new frames
                    table.fill(data, buf, hstart, caplens, lengths, before, int(st[5]), hlens)
                if st[5] == CHUNK:
                    yield lengths.copy(), (paced(CHUNK) if paced else times.copy()), hlens.copy()
                    hlens[:] = 0
                    st[5] = 0
                    continue
                break
            rest = data[st[0]:]
            if 0 <= limit <= st[3] or (eof and not rest):
                break
            if eof:
                raise _Unscannable  # a partial record at the end: the reference reader names the offset
    n = int(st[5])
    if n:
        yield lengths[:n].copy(), (paced(n) if paced else times[:n].copy()), hlens[:n].copy()


def simulate_fast(config: RunConfig, progress=None, why: list | None = None, trace=None,
                  plot: bool = False) -> tuple[dict, dict] | None:
    """Run on the fast engine; None when this run must be redone by the reference engine."""
    sim = FastSimulation(config, progress=progress, trace=trace, plot=plot)
    result = sim.run()
    if result is None:
        if why is not None:
            why.append(getattr(sim, "why", None) or "the fast engine left its modelled ground")
        return None
    return result, sim.extra


ENGINES = ("fast", "reference")


def simulate_engine(config: RunConfig, engine: str = "fast", trace=None, plot: bool = False,
                    progress=None) -> tuple[dict, dict, str | None]:
    """Run on the chosen engine: (result, extra, why the reference engine ran instead of fast, or None)."""
    from skbsim.errors import InputError
    from skbsim.sim import simulate

    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    if engine == "fast":
        reason = unsupported(config)
        if reason is None:
            why: list = []
            try:
                out = simulate_fast(config, progress=progress, why=why, trace=trace, plot=plot)
            except ValueError as err:
                out, reason = None, str(err)
            if out is not None:
                return out[0], out[1], None
            reason = reason or (why[0] if why else "the fast engine left its modelled ground") + "; rerun"
        config.validate()
        result, extra = simulate(config, trace=trace, progress=progress)
        return result, extra, reason
    result, extra = simulate(config, trace=trace, progress=progress)
    return result, extra, None
