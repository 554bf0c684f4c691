"""The fast engine's integer state: the njit wrapper, and the indices, tags and codes every module shares."""

from __future__ import annotations

import numpy as np

from skbsim.drivers.ice import PUT_PER_BUFFER, PUT_PER_FRAME, PUT_PER_POLL


try:  # numba is a dependency; without it the same loop runs as plain Python (slowly).
    from numba import njit as _numba_njit

    from skbsim.fast import cache as _cache

    _cache.install()

    def njit(*args, **kwargs):
        """numba.njit without its reference-counting runtime (NRT), cached where skbsim.fast.cache says, and
        without the wrappers that let Python call a function unless it is an entry point (entry=True).

        Every array here is allocated by Python and outlives the call; the
        compiled functions never allocate.  With NRT on, each call between
        them increments and decrements the reference count of every array it
        passes (atomically), which was three quarters of the loop's time.
        The wrapper unboxes every array of every record a function takes
        from Python objects: building it took more than half of the compile.

        forceinline=True has LLVM inline the function into every caller (the
        attribute alwaysinline).  A record is passed to a function that is not
        inlined as all the words of all its arrays (about 250 for the Kernel),
        which cost up to 180 ns per call; numba's own inlining (inline="always")
        gives the same code but redoes type inference per call site, which made
        the compile half again as long.  forceinline is inherited by callees
        that do not say otherwise, so every function here says (default False).
        """
        entry = kwargs.pop("entry", False)
        kwargs.setdefault("_nrt", False)
        kwargs.setdefault("forceinline", False)
        if not entry:
            kwargs.setdefault("no_cpython_wrapper", True)
            kwargs.setdefault("no_cfunc_wrapper", True)
        if args and callable(args[0]):
            return njit(entry=entry, **kwargs)(args[0])

        def decorate(fn):
            if kwargs.get("cache"):
                _cache.register(fn)
            return _numba_njit(**kwargs)(fn)
        return decorate
except ImportError:  # pragma: no cover
    def njit(*args, **kwargs):
        kwargs.pop("entry", None)
        if args and callable(args[0]):
            return args[0]
        return lambda fn: fn


#: the socket queue is a preallocated ring of rcvbuf / truesize entries (at most the run's frames): up
#: to this rcvbuf, or for runs of up to MAX_QUEUED frames
MAX_RCVBUF = 1 << 26
MAX_QUEUED = 1 << 20

# Constants passed as arguments to compiled functions are np.int64: numba compiles a function once per
# literal value of a Python int (or bool) argument, but once for every np.int64.
#: fault layer numbers, in skbsim.mm.fault.LAYERS order (rows of Faults.rules); -1 for an allocation with
#: no layer of its own
L_PAGE_ALLOC, L_SLAB, L_SKB_HEAD, L_SKB_DATA, L_PAGE_FRAG = (np.int64(n) for n in range(5))
L_NONE = np.int64(-1)
#: order 0, for _alloc_pages()
ORDER_0 = np.int64(0)
#: _defer_flush(), _nc_put(): whether the NAPI cache's counters count (a poll), or not (Kernel.drain())
COUNTED, UNCOUNTED = np.bool_(True), np.bool_(False)
#: Config.head_kind (and a copybreak copy's kind): where a napi_alloc_skb() head comes from
HEAD_1K, HEAD_SMALL, HEAD_FRAG = 0, 1, 2

_PUT_MODES = {PUT_PER_BUFFER: 0, PUT_PER_POLL: 1, PUT_PER_FRAME: 2}
#: the reader's CPU (Simulation.app_cpu)
READER_CPU = np.int64(0)
#: the current CPU of Simulation._finish's udp_destroy_sock() and of Kernel.drain() outside its per-CPU
#: softirq work (kernel.cpu outside any on_cpu() block)
TEARDOWN_CPU = np.int64(0)
#: event kinds (sim._POLL, _READ, _IPI)
_POLL, _READ, _IPI = np.int64(1), np.int64(2), np.int64(3)
USHRT_MAX = 0xFFFF
U32_MASK = 0xFFFFFFFF
#: error codes (Kernel.err[0]): the compiled loop left its modelled ground
ERR_TABLE_FULL = 1
ERR_BUG = 2
ERR_EMPTY_FRAME = 4
ERR_FRAME_ABOVE_RING = 5
ERR_CLOCK = 6
ERR_FRAG_LIST = 7
ERR_GRO_FRAGS_MOVED = 8  # -- GRO --
ERR_GRO_TUN = 9  # -- GRO --
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
#: an skb's head: a page id (page ids stay below 2**40), or a kmem cache object, SLAB_TAG plus (the
#: cache's index in Slabs << 32) plus the object id
SLAB_TAG = 1 << 42
#: an skb's frags: -1 for none, a page id for one, FL_TAG plus a row of Frags.fl for several
FL_TAG = 1 << 41
#: --trace records (Trace.records, a row each): their columns, and the outcomes (report.TRACE_FIELDS)
(T_TIME, T_CPU, T_FRAME_LEN, T_LEN, T_DATA_LEN, T_TRUESIZE, T_NR_FRAGS, T_KIND, T_OUTCOME, T_SIZE) = range(10)
OUTCOMES = ("delivered", "dropped:socket_rcvbuf", "dropped:ring_full", "dropped:oversize", "dropped:driver")
O_DELIVERED, O_SOCKET, O_RING_FULL, O_OVERSIZE, O_DRIVER = (np.int64(n) for n in range(5))
#: --plot: the memory series keeps at most this many points (sim._Series)
SERIES_LIMIT = 2000
#: columns of the truesize table: nr_frags 0 .. MAX_SKB_FRAGS (17 with 4K pages) and one to spare
MAX_FRAGS_SEEN = 20
#: Rings.dd of a descriptor: 0 not written back, DD_DONE written, DD_EOP written and the frame's last
DD_DONE, DD_EOP = 1, 2
#: tun's per-length table (_TunLengths): columns (T_DLEN: the paged bytes alloc_skb_with_frags() is asked
#: for; T_FRAGS on: the orders of its blocks when no allocation fails)
(T_ROUTE, T_TS, T_HEAD, T_CACHE, T_BUFLEN, T_NFRAGS, T_EXPAND, T_DLEN, T_FRAGS) = range(9)
#: T_ROUTE: refused (-EINVAL, -EMSGSIZE), tun_alloc_skb(), tun_build_skb(), tun_napi_alloc_frags()
ROUTE_NONE, ROUTE_ALLOC, ROUTE_BUILD, ROUTE_FRAGS = 0, 1, 2, 3
#: T_HEAD: the head is the writer's task_frag block, a kmem cache object (T_CACHE: which, in Slabs), or
#: pages of their own (kmalloc above KMALLOC_MAX_CACHE_SIZE; T_CACHE: their order); ntb's table: or a
#: fragment of T_BUFLEN bytes of the NAPI page_frag_cache (__netdev_alloc_skb() in softirq)
TH_TASK_FRAG, TH_SLAB, TH_PAGES, TH_PAGE_FRAG = 0, 1, 2, 3
#: ntb's table: the head's room from skb->data (the Ethernet header) to its end, in the column tun's rows keep
#: their frags' count in (an ntb skb is all head)
T_ROOM = T_NFRAGS
#: ntb's table: the ring buffer's row, netdev_alloc_skb(mtu + ETH_HLEN) (rows 0..65535: the copies by frame length)
NTB_BUF_ROW = 65536
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
    ERR_FRAG_LIST: "a virtio_net frame needs more than MAX_SKB_FRAGS frags (a frag_list skb)",
    ERR_BUG: "the model reached a state the fast engine does not follow (a descriptor without a buffer)",
    # -- GRO --
    ERR_GRO_FRAGS_MOVED: "GRO moved the frags of an skb whose head's truesize the run does not know (not ice legacy-rx)",
    ERR_GRO_TUN: "GRO merged a tun skb or held one past its write's poll (the fast engine hands each up alone)",
}
#: ice_construct_skb(): ICE_RX_HDR_SIZE, the header skb's size and the copy-everything bound
ICE_RX_HDR_SIZE = 256
ETH_HLEN = 14
SZ_1K = 1024
