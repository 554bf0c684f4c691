"""The fast engine's integer state: the njit wrapper, and the indices, tags and codes every module shares."""

from __future__ import annotations

from skbsim.drivers.ice import PUT_PER_BUFFER, PUT_PER_FRAME, PUT_PER_POLL


try:  # numba is a dependency; without it the same loop runs as plain Python (slowly).
    from numba import njit as _numba_njit

    from skbsim.fast import cache as _cache

    _cache.install()

    def njit(*args, **kwargs):
        """numba.njit without its reference-counting runtime (NRT), cached where skbsim.fast.cache says.

        Every array here is allocated by Python and outlives the call; the
        compiled functions never allocate.  With NRT on, each call between
        them increments and decrements the reference count of every array it
        passes (atomically), which was three quarters of the loop's time.
        """
        kwargs.setdefault("_nrt", False)
        if args and callable(args[0]):
            return njit(**kwargs)(args[0])

        def decorate(fn):
            if kwargs.get("cache"):
                _cache.register(fn)
            return _numba_njit(**kwargs)(fn)
        return decorate
except ImportError:  # pragma: no cover
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda fn: fn


#: the socket queue is a preallocated ring of rcvbuf / truesize entries (at most the run's frames): up
#: to this rcvbuf, or for runs of up to MAX_QUEUED frames
MAX_RCVBUF = 1 << 26
MAX_QUEUED = 1 << 20

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
 TUN_ROUTE_ALLOC, TUN_ROUTE_BUILD, TUN_EAGAIN, TUN_EINVAL, PG_MAX_ORDER, IPIS,
 S_SIZE) = range(77)

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
 Q_DROPPED, TF_PAGE, TF_OFFSET, TF_SIZE, TUN_WMEM, HQ_HEAD, HQ_LEN, DEFER_IPI, IPI_SENT, R_SIZE) = range(30)

# -- indices into the constant array C -------------------------------------------------------
(RING_COUNT, RXMAX, RX_BUF_LEN, SKB_TRUESIZE_C, PAGE_SIZE_C, PUT_MODE, STRICT_FIT, FWD_DEFICIT_ONLY, DEFER_FREE,
 RCVBUF, APP_UNLIMITED, APP_GAP, COST, IRQ_LATENCY, NC_SIZE, NC_BULK, NC_FREE,
 LEGACY, HEAD_TRUESIZE, COND_ROOM, COND_TS, FRAME_SZ, HEAD_KIND, PF_ORDER, PF_FRAGSZ,
 DRIVER_CB, CB_COPYBREAK, CB_BUF_FRAGSZ, CB_BUILD_TS, PF_DOWN, CB_BUF_SIZE, RING_ORDER, TRACE, PLOT,
 DRIVER_TUN, TUN_SNDBUF, TF_ORDER, TUN_SMP, TUN_SMALL_KM, TUN_CHUNKS, TUN_MAX_ORDER, TUN_FRAG_LIMIT,
 LARGE_FIT, DEFER_LIMIT_M1,
 C_SIZE) = range(45)
#: C[HEAD_KIND]: where a legacy-rx header skb's head comes from
HEAD_1K, HEAD_SMALL, HEAD_FRAG = 0, 1, 2

_PUT_MODES = {PUT_PER_BUFFER: 0, PUT_PER_POLL: 1, PUT_PER_FRAME: 2}
#: event kinds (sim._POLL, _READ, _IPI)
_POLL, _READ, _IPI = 1, 2, 3
#: net.core.skb_defer_max (Kernel.skb_defer_max)
SKB_DEFER_MAX = 64
USHRT_MAX = 0xFFFF
U32_MASK = 0xFFFFFFFF
#: error codes (S[ERR]): the compiled loop left its modelled ground
ERR_TABLE_FULL = 1
ERR_BUG = 2
ERR_EMPTY_FRAME = 4
ERR_FRAME_ABOVE_RING = 5
ERR_CLOCK = 6
#: The simulated clock in ns, int64 here and a Python integer in the reference engine.  Every arrival
#: and event time the fast engine holds stays below CLOCK_LIMIT (146 years), and every step added to a
#: time (a poll's work, at most NAPI_POLL_WEIGHT packets, times the per-packet cost; the IRQ latency;
#: the reader's gap) below STEP_LIMIT, so that no sum can wrap; a run that needs more is redone by
#: the reference engine (ERR_CLOCK, or unsupported() before it starts).
CLOCK_LIMIT = 1 << 62
STEP_LIMIT = 1 << 55
#: A fault rule's space, interval and times are held as at most this.  Each is only compared with, or
#: stepped by one per allocation call, and no run makes 2**62 allocation calls (ten thousand years at
#: ten million a second), so a larger value behaves exactly as this one.
FAULT_COUNT_LIMIT = 1 << 62
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
#: desc_dd of a descriptor: 0 not written back, DD_DONE written, DD_EOP written and the frame's last
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
    ERR_CLOCK: "the simulated clock passes 2**62 ns (146 years), beyond the fast engine's 64-bit clock",
    ERR_TABLE_FULL: "a table of the fast engine filled up",
    ERR_BUG: "the model reached a state the fast engine does not follow (a descriptor without a buffer)",
}
#: ice_construct_skb(): ICE_RX_HDR_SIZE, the header skb's size and the copy-everything bound
ICE_RX_HDR_SIZE = 256
ETH_HLEN = 14
SZ_1K = 1024
