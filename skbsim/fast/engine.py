"""The fast engine's Python side: the run's state as the reference kernel left it, the run, the report."""

from __future__ import annotations

import math

import numpy as np

from skbsim.fast.layout import (
    APP_GAP, APP_UNLIMITED, APP_WAITING, BUDGET_LEFT, BYTES, CLOCK_LIMIT, DEFER_LIMIT_M1, LARGE_FIT, CB_BUF_FRAGSZ, CB_BUF_SIZE, CB_BUILD_TS,
    CB_COPYBREAK, CB_N_1K, CB_N_BUILD, CB_N_FRAG, CB_N_SMALL, CONDENSED, COND_ROOM, COND_TS, COST, C_SIZE,
    DD_EOP, DEFER_FREE, DELIVERED, DRIVER_CB, DRIVER_TUN, D_BUF_FAILURES, D_BYTES, D_BYTES_COPIED,
    D_COPIED, D_FRAMES, D_FRAMES_DROPPED, D_NIC_FRAMES, D_OVERSIZE, D_PAGES_ALLOC, D_POLLS, D_RELEASED,
    D_REUSED, D_RING_DROPS, D_SKB_FAILURES, D_USED, ENQUEUED, ERR, ERR_CLOCK, ERR_REASONS, FAULT_COUNT_LIMIT, FIRST_DESC, FRAME_SZ,
    FR_ACTIVE, FR_COUNT, FR_INJECTED, FR_INTERVAL, FR_SIZE, FR_SPACE, FR_THRESHOLD, FR_TIMES, FWD,
    FWD_DEFICIT_ONLY, F_ANY, F_MT, F_MT_INDEX, F_RULES, HEAD_1K, HEAD_FRAG, HEAD_KIND, HEAD_SMALL,
    HEAD_TRUESIZE, HW_NEXT, IN_USE, IRQS, IRQ_LATENCY, K_LAYER, K_LIVE, K_OBJS, K_ORDER, K_SIZE, LEGACY,
    MAX_FRAGS_SEEN, MAX_QUEUED, MAX_RCVBUF, MAX_TUN_FRAME, MT_N, NC_BULK, NC_FLUSHES, NC_FREE, NC_GETS, NC_HITS,
    NC_PUTS, NC_REFILLS, NC_REFILL_FAILURES, NC_SIZE, NOW, NTA, NTC, NTU, OUTCOMES, P1K_PAGE, PACKETS,
    PAGE_SIZE_C, PEAK_IN_USE, PEAK_PINNED, PEAK_RMEM, PF_ALLOCS, PF_BIAS, PF_DOWN, PF_FRAGSZ, PF_OFFSET,
    PF_ORDER, PF_PAGE, PF_REFILLS, PF_REUSES, PF_SIZE, PG_MAX_ORDER, PG_NEXT, PINNED, PLOT, POLLS, PUT_MODE, Q_DROPPED,
    Q_FRAMES, Q_LEN, Q_NIC_FRAMES, RCVBUF, RING_COUNT, RING_ORDER, RMEM, RXMAX, RX_BUF_LEN, R_SIZE,
    SERIES_LIMIT, SKB_DEFER_MAX, SKB_TRUESIZE_C, SK_DROPS, SMALL_ALLOCS, SMALL_REFILLS, SR_EVERY, SR_LEN,
    STEP_LIMIT, STRICT_FIT, S_TOTAL, TAIL, TF_ORDER, TF_PAGE, TIME_SQUEEZE, TRACE, TRUESIZE_TOTAL, TR_LEN, TUN_CHUNKS,
    TUN_FRAG_LIMIT, TUN_INFLIGHT_MAX, TUN_MAX_ORDER, TUN_SMALL_KM, TUN_SMP, TUN_SNDBUF, T_FRAGS, T_SIZE,
    _PUT_MODES,
)
from skbsim.fast.loop import _run, _teardown
from skbsim.fast.traffic import CHUNK, _Unscannable, _traffic_chunks
from skbsim.fast.tun import _TunLengths, _tun_state
from skbsim.mm.fault import LAYERS, fault_report
from skbsim.sim import NAPI_POLL_WEIGHT, NETDEV_BUDGET, RunConfig, Simulation


def unsupported(config: RunConfig) -> str | None:
    """Why the fast engine cannot run this config (None when it can)."""
    if config.kernel_config:
        return "--kernel-config is not supported by the fast engine"
    if config.driver not in ("ice", "copybreak", "tun"):
        return f"the fast engine models only the ice, copybreak and tun drivers, not {config.driver}"
    if config.driver == "ice" and config.options.get("rx", "build_skb") not in ("build_skb", "legacy"):
        return "the fast engine models ice rx=build_skb and rx=legacy only"
    if config.rcvbuf > MAX_RCVBUF and (config.count is None or config.count > MAX_QUEUED):
        return (f"the fast engine sizes its socket queue for --rcvbuf up to {MAX_RCVBUF} "
                f"(or for runs of at most {MAX_QUEUED} frames)")
    # the clock's steps (see CLOCK_LIMIT); the reader's gap is Simulation._app_read's int(1e9 / app_rate)
    if config.packet_cost_ns >= STEP_LIMIT or config.irq_latency_ns >= STEP_LIMIT or (
            config.app_rate is not None and 1e9 / config.app_rate >= STEP_LIMIT):
        return ("the fast engine's 64-bit clock takes a per-packet cost, IRQ latency and reader gap "
                "(1e9 / --app-rate) below 2**55 ns each")
    return None


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
        self.S[PG_MAX_ORDER] = pages.max_order
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
        self.kind_names = None  # _kind_names(), once a trace record needs it
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
        C[LARGE_FIT] = ref.sock.large_fit
        C[DEFER_LIMIT_M1] = profile.feature("skb_defer_limit") == "skb_defer_max_minus_1"
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
        qcap = _socket_queue_capacity(config, ref.sock.rcvbuf, truesize)
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
        qcap = _socket_queue_capacity(config, ref.sock.rcvbuf, truesize)
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
        qcap = _socket_queue_capacity(config, ref.sock.rcvbuf, lengths.min_truesize)
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
        chunks = _traffic_chunks(self.ref.source, config, self.legacy, self.ref)
        try:
            while True:
                try:
                    chunk = next(chunks, None)
                except OverflowError:  # an arrival time beyond int64 (from the source's Python integers)
                    return self._give_up(ERR_CLOCK)
                if chunk is None:
                    break
                lengths, times, queues, hlens = chunk
                if len(times) and int(times.max()) >= CLOCK_LIMIT:
                    return self._give_up(ERR_CLOCK)
                n = len(lengths)
                if self.tun is not None:
                    self.tun.prepare(lengths)  # tun_get_user() of each new length, on the scratch kernel
                done = _run(S, C, CS, lengths, times, queues, hlens, n, False, *state)
                if S[ERR] or done != n:
                    return self._give_up(int(S[ERR]))
                self._write_trace(S, state[-2][0])  # obs = (tr, ...), before tn: _RunArrays.state()
                if self.progress is not None:
                    self.progress(int(S[PACKETS]))
        except _Unscannable:
            return None
        _run(S, C, CS, empty, empty, empty, empty, 0, True, *state)
        if S[ERR]:
            return self._give_up(int(S[ERR]))
        self._write_trace(S, state[-2][0])  # obs = (tr, ...), before tn: _RunArrays.state()
        return self._finish(S, C, CS, state)

    def _give_up(self, err: int) -> None:
        """The compiled loop left its modelled ground (an ERR_* code): say why; the run is redone."""
        self.why = ERR_REASONS.get(err)
        return None

    def _kind_names(self):
        """(path, head source, data_len or None) of each skb kind code the compiled loop records
        (T_KIND), indexed by code: a list, or for tun, whose code is the frame length and whose
        data_len the loop leaves to this table, _TunLengths.names (filled as lengths are met)."""
        ring = self.ref.cpus[0].queue
        if self.tun is not None:
            return self.tun.names
        if self.copybreak:
            by_kind = {h[0]: (h[3], h[4], None) for h in self.copy_heads}
            return [("", "", None), ("napi_build_skb", "copybreak rx buffer (page_frag)", None)] + [
                by_kind.get(kind, ("", "", None)) for kind in (HEAD_1K, HEAD_SMALL, HEAD_FRAG)]
        if self.legacy:
            return [(self.head["path"], self.head["source"], None)]
        return [("napi_build_skb", f"ice_rx_page (half of an order-{ring.config['page_order']} page)", None)]

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
        if self.kind_names is None:
            self.kind_names = self._kind_names()
        names = self.kind_names
        write = self.trace.write
        for time_ns, cpu, frame_len, length, data_len, truesize, nr_frags, kind, outcome in tr[:n].tolist():
            record = None
            if length >= 0:
                path, head_source, known_data_len = names[kind]
                record = (length, data_len if known_data_len is None else known_data_len, truesize, nr_frags,
                          path, head_source)
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


def _socket_queue_capacity(config: RunConfig, rcvbuf: int, smallest_truesize: int) -> int:
    """How many skbs the socket queue can ever hold: what rcvbuf admits of the smallest skb (and the one
    that may overshoot it), and never more than the run's frames."""
    fit = rcvbuf // smallest_truesize
    return (fit if config.count is None else min(fit, config.count)) + 2


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
        S[base + FR_INTERVAL] = min(rule.interval, FAULT_COUNT_LIMIT)
        S[base + FR_TIMES] = min(rule.times, FAULT_COUNT_LIMIT)
        S[base + FR_SPACE] = min(rule.space, FAULT_COUNT_LIMIT)
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
            # the records of a run the reference engine redoes must not stay in the trace: a file is
            # started over, a destination that cannot be rewound gets them only once the run is done
            spool = _TraceSpool(trace) if trace is not None and not trace.file.seekable() else None
            try:
                out = simulate_fast(config, progress=progress, why=why, trace=spool.writer if spool else trace,
                                    plot=plot)
            except ValueError as err:
                out, reason = None, str(err)
            if spool is not None:
                spool.finish(copy=out is not None)
            if out is not None:
                return out[0], out[1], None
            reason = reason or (why[0] if why else "the fast engine left its modelled ground") + "; rerun"
            if trace is not None and spool is None:
                trace.restart()
        config.validate()
        result, extra = simulate(config, trace=trace, progress=progress)
        return result, extra, reason
    result, extra = simulate(config, trace=trace, progress=progress)
    return result, extra, None


class _TraceSpool:
    """The fast engine's trace records for a destination that cannot be rewound (a pipe), in a
    temporary file of the same kind until the run is done."""

    def __init__(self, trace):
        import os
        import tempfile

        from skbsim.report import TraceWriter

        self.trace = trace
        handle, self.path = tempfile.mkstemp(prefix="skbsim-trace-", suffix=os.path.splitext(trace.path)[1])
        os.close(handle)
        self.writer = TraceWriter(self.path)

    def finish(self, copy: bool) -> None:
        """Hand the records to the real destination (past the header it already has), or drop them."""
        import os
        import shutil

        self.writer.close()
        try:
            if copy:
                with open(self.path, newline="") as records:
                    if self.writer.csv is not None:
                        records.readline()
                    shutil.copyfileobj(records, self.trace.file)
        finally:
            os.unlink(self.path)
