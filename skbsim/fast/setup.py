"""The fast engine's starting state: the Kernel record (skbsim.fast.state) as the reference engine's run left it.

The reference Simulation has validated the options, loaded the profile, opened the traffic
source, installed the fault rules and opened each queue as the driver's open leaves it; these
functions read the run's constants from those objects (or from the model's own functions on a
scratch kernel of the same profile: FastSimulation's tables) and size every table by the ring, the
socket queue and the caches, never by the packet count.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from skbsim.fast.layout import (
    FAULT_COUNT_LIMIT, HEAD_1K, HEAD_FRAG, HEAD_SMALL, MAX_FRAGS_SEEN, MAX_TUN_FRAME, SERIES_LIMIT,
    TUN_INFLIGHT_MAX, T_SIZE, _PUT_MODES,
)
from skbsim.fast.state import (
    ALLOCATED, APP_GAP, APP_WAITING, BUF_BIAS, BUF_PAGE, CACHE_SKB, CONFIG_FIELDS, Cpus, DESC_DD, DRIVER_COPYBREAK, DRIVER_ICE,
    DRIVER_TUN, D_PAGES_ALLOC, EV_FIELDS, Events, FIRST_DESC, FREED, FR_ACTIVE, FR_COUNT, FR_INJECTED, FR_INTERVAL,
    FR_SIZE, FR_SPACE, FR_THRESHOLD, FR_TIMES, F_ANY, F_MT_INDEX, Faults, Frags, HW_NEXT, Kernel, MT_N, NCPUS,
    NC_CACHE_SIZE, NTA, NTC, NTU, NapiCaches, PF_ALLOCS, PF_BIAS, PF_OFFSET, PF_PAGE, PF_REFILLS, PF_REUSES,
    PF_SIZE, PG_IN_USE, PG_MAX_ORDER, PG_NEXT, PG_PEAK, PLOT, RING_COUNT, RXMAX, SKB_FIELDS, Socket, TAIL, TRACE,
    SlabSpec, Trace, new_page_pools, new_pages, new_pcpu, new_rings, new_scalars, new_slabs, new_tun_queues,
    new_virtio_queues,
)
from skbsim.fast.state import new_skb_cb
from skbsim.fast.gro import new_gro  # GRO
from skbsim.fast.state import TC_FIELDS, LK_FIELDS, new_tcp_flows, new_tcp_senders, new_tcp_socks  # -- TCP --
from skbsim.fast.state import (
    DRIVER_LIBETH, DRIVER_MANA, FQE_PAGE, FQE_TRUESIZE, FQ_BUF_LEN, FQ_EMPTY, FQ_LO, FQ_TRUESIZE, new_libeth_fqs,
    PP_BIAS_MAX, PP_CACHED_ON_REUSE, PP_CACHE_LEN, PP_CACHE_SIZE, PP_DIRECT, PP_DIRECT_EVERY_PUT,
    PP_DIRECT_NEVER_FROM_SKB, PP_DIRECT_SKB_FREE, PP_FRAG_ALIGN, PP_FRAG_COUNTED, PP_FRAG_OFFSET, PP_FRAG_PAGE,
    PP_FRAG_USERS, PP_HOLD, PP_NAPI_CPU, PP_ORDER, PP_QSIZE, PP_REFILL, PP_REF_ALWAYS, PP_RELEASE, PP_RING_HEAD,
    PP_RING_LEN, PP_STATS_FIRST,
)
from skbsim.fast.state import (  # -- mlx5 --
    DRIVER_MLX5, FP_FRAGS, FP_HELD, FP_PAGE, G_SIZE, G_STRIDE, RQ_CI, RQ_HW_HEAD, RQ_HW_STRIDE, RQ_MISSING, WF_LAST,
    WF_OFFSET, WF_SLOT, W_CONSUMED, W_EMPTY, W_POSTED, W_STATE, W_WRITTEN, new_mlx5_rqs,
)
from skbsim.fast.state import CP_FIELDS, CP_FRAGSZ, CP_KIND, CP_ROOM, CP_TS, new_bnxt_rings  # -- bnxt --
from skbsim.fast.state import D_BUF_FAILURES  # -- mana v6.9 above a page --
from skbsim.fast.state import new_gve_rings  # -- gve --
from skbsim.fast.traffic import CHUNK
from skbsim.drivers.libeth import IAVF_RX_BUFFER_WRITE, LIBIE_MAX_CHAINED_BUFS
from skbsim.drivers.mlx5 import EMPTY, MLX5E_CACHE_SIZE, MLX5E_MAX_RX_FRAGS, POSTED, WRITTEN  # -- mlx5 --
from skbsim.mm.fault import LAYERS
from skbsim.net.page_pool import PP_FLAG_PAGE_FRAG, PP_STATS
from skbsim.sim import NAPI_POLL_WEIGHT, NETDEV_BUDGET, RunConfig, Simulation

#: heads of napi_alloc_skb(): Config.head_kind by the model's head_source
HEAD_KINDS = {"page_frag_1k": HEAD_1K, "skbuff_small_head": HEAD_SMALL, "page_frag": HEAD_FRAG}


def socket_queue_capacity(config: RunConfig, rcvbuf: int, smallest_truesize: int) -> int:
    """How many skbs the socket queue can ever hold: what rcvbuf admits of the smallest skb (and the one
    that may overshoot it), and never more than the run's frames."""
    fit = rcvbuf // smallest_truesize
    return (fit if config.count is None else min(fit, config.count)) + 2


def base_config(sim: Simulation, trace: bool, plot: bool) -> dict:
    """cfg's fields every driver sets: the run, the socket, the NAPI caches (the rest start at 0)."""
    config = sim.config
    profile = sim.kernel.profile
    sock = sim.sock
    fields = dict.fromkeys(CONFIG_FIELDS, 0)
    fields.update(
        NCPUS=config.cpus, PAGE_SIZE=profile.PAGE_SIZE, TRACE=int(trace), PLOT=int(plot),
        COST=config.packet_cost_ns, IRQ_LATENCY=config.irq_latency_ns, APP_UNLIMITED=int(config.app_rate is None),
        # --app-rate 0: a reader that never reads (APP_GAP -1, and new_kernel() leaves it not waiting)
        APP_GAP=0 if config.app_rate is None else int(1e9 / config.app_rate) if config.app_rate else -1,
        RCVBUF=sock.rcvbuf, STRICT_FIT=int(sock.strict_fit), LARGE_FIT=int(sock.large_fit),
        FWD_DEFICIT_ONLY=int(sock.fwd_deficit_only), DEFER_FREE=int(sock.defer_free),
        DEFER_LIMIT_MINUS_1=int(profile.feature("skb_defer_limit") == "skb_defer_max_minus_1"),
        DEFER_MAX=sim.kernel.skb_defer_max,
        NC_CACHE_SIZE=profile.NAPI_SKB_CACHE_SIZE, NC_BULK=profile.NAPI_SKB_CACHE_BULK,
        NC_FREE=profile.NAPI_SKB_CACHE_FREE,
        # __alloc_skb()'s sk_buff outside NAPI (tun, ntb, tcp_collapse(): tun._alloc_skb_sk_buff())
        NC_OUTSIDE_NAPI=int(profile.has("alloc_skb_napi_cache_outside_napi")),
    )
    return fields


def load_faults(injector, st) -> Faults:
    """The reference kernel's FaultInjector: its rules as the run starts and its random stream (the
    twister's position and whether any rule is set go to st)."""
    version, words, _ = injector.rng.getstate()
    if version != 3 or len(words) != MT_N + 1:
        raise ValueError("unexpected random.Random state")
    rules = np.zeros((len(LAYERS), FR_SIZE), np.int64)
    st[F_MT_INDEX] = words[MT_N]
    for layer, rule in injector.rules.items():
        row = rules[LAYERS.index(layer)]
        st[F_ANY] = 1
        row[FR_ACTIVE] = 1
        # random() < p  <=>  k / 2**53 < p  <=>  k < ceil(p * 2**53) for the integer k behind random()
        row[FR_THRESHOLD] = -1 if rule.probability >= 1.0 else math.ceil(rule.probability * 2.0 ** 53)
        # beyond FAULT_COUNT_LIMIT a value behaves as that one (see layout.py)
        row[FR_INTERVAL] = min(rule.interval, FAULT_COUNT_LIMIT)
        row[FR_TIMES] = min(rule.times, FAULT_COUNT_LIMIT)
        row[FR_SPACE] = min(rule.space, FAULT_COUNT_LIMIT)
        row[FR_COUNT] = rule.count
        row[FR_INJECTED] = injector.injected[layer]
    return Faults(rules, np.array(words[:MT_N], np.int64))


def live_skbs_bound(sim: Simulation, qcap: int) -> int:
    """The most sk_buff objects a run holds at once: the socket queue's qcap, and per CPU its NAPI skb cache,
    its defer list and two polls' worth in hand; the slab tables are sized by it."""
    kernel = sim.kernel
    per_cpu = 2 * NAPI_POLL_WEIGHT + kernel.profile.NAPI_SKB_CACHE_SIZE + kernel.skb_defer_max
    return qcap + sim.config.cpus * per_cpu + 16


def slabs_kept(min_partial: int, cpu_partial_slabs: int, ncpus: int) -> int:
    """The most slabs a cache may keep without a live object: up to min_partial on the node list, and on each
    CPU its slab and a partial list of up to cpu_partial_slabs + 1 (6.8+ leaves an empty one there)."""
    return min_partial + 1 + ncpus * (cpu_partial_slabs + 2)


def slab_spec(kernel, cache, live: int) -> SlabSpec:
    """A kmem cache of the reference kernel as new_slabs() takes it, with room for live objects at once (a
    slab each at worst) and the empty slabs SLUB keeps."""
    return SlabSpec(cache.order, cache.objs_per_slab, cache.min_order, cache.min_objects,
                    LAYERS.index(cache.fault_layer), cache.min_partial, cache.cpu_partial_slabs,
                    int(kernel.slab.cpu_partial_frozen),
                    live + slabs_kept(cache.min_partial, cache.cpu_partial_slabs, kernel.ncpus))


def skb_caches(kernel, slab_cap: int, collapse: dict | None = None) -> list[SlabSpec]:
    """The caches of a run whose heads napi_alloc_skb() may take from skbuff_small_head: skbuff_head_cache and,
    where the release has it, skbuff_small_head, each with room for slab_cap objects; -- TCP pressure --: with
    collapse (TcpRun.heads.caches: tun.head_caches() by index), the kmem caches tcp_collapse()'s alloc_skb()
    takes heads from too."""
    caches = [slab_spec(kernel, kernel.skbuff_cache, slab_cap)]
    if kernel.skb_small_head_cache is not None:
        caches.append(slab_spec(kernel, kernel.skb_small_head_cache, slab_cap))
    if collapse:
        caches += [None] * (max(collapse) + 1 - len(caches))  # (unused ones: no slabs)
        for c, cache in collapse.items():
            caches[c] = caches[c] or slab_spec(kernel, cache, slab_cap)
    return caches


def built_skb_caches(kernel, slab_cap: int, collapse: dict | None = None) -> list[SlabSpec]:
    """skb_caches() of a run whose heads are the driver's buffers (napi_build_skb()): skbuff_head_cache alone, or
    with collapse every cache tcp_collapse()'s heads may come from too."""
    caches = skb_caches(kernel, slab_cap, collapse)
    return caches if collapse else caches[:1]


def collapse_pages(collapse: dict | None, slab_cap: int) -> int:
    """-- TCP pressure --: the pages tcp_collapse()'s heads may hold besides the driver's: one slab page or block
    of pages of its own per live skb at most (a collapsed skb replaces those it copies)."""
    return slab_cap if collapse else 0


#: how many of each a run may hold at once: pages, slab objects per cache (slab_spec() rows), socket queue
#: entries, frag lists and frags a list; and the value a ring buffer's pagecnt_bias starts at
TableSizes = namedtuple("TableSizes", ("pages", "caches", "queue", "frag_lists", "frags", "ring_bias"))


def new_kernel(sim: Simulation, fields: dict, sizes: TableSizes, copy=None, **tables) -> Kernel:
    """The Kernel record: every table sized, the page allocator's counters as the reference kernel has
    them; the caller fills in the rings (and the caches the driver's open filled).  ``tables``: the
    driver's own records by their Kernel field (tun, pp, virtio, lb, skbcb); the others get one row."""
    unknown = set(tables) - {"tun", "pp", "virtio", "lb", "skbcb", "mlx", "bnxt", "gve", "gro", "tcp", "tsnd",
                             "tfl"}
    if unknown:
        raise TypeError(f"new_kernel(): no such table {sorted(unknown)}")
    cfg = np.array([fields[name] for name in CONFIG_FIELDS], np.int64)
    ncpus = int(cfg[NCPUS])
    st = new_scalars()
    if cfg[APP_GAP] < 0:
        st[APP_WAITING] = 0  # no reader blocks in recvmsg(): it is never woken
    if any(cache.nr_slabs for cache in sim.kernel.slab.caches.values()):
        raise ValueError("unexpected slabs at start")
    # the pages of the empty slabs SLUB may keep, beyond the builder's count of slab pages
    kept = sum(slabs_kept(spec.min_partial, spec.cpu_partial_slabs, ncpus) for spec in sizes.caches if spec)
    pages = new_pages(sizes.pages + kept)
    ref_pages = sim.kernel.pages
    for order, n in ref_pages.allocated.items():
        pages.counts[order, ALLOCATED] = n
    for order, n in ref_pages.freed.items():
        pages.counts[order, FREED] = n
    st[PG_IN_USE] = ref_pages.in_use
    st[PG_PEAK] = ref_pages.peak_in_use
    st[PG_MAX_ORDER] = ref_pages.max_order
    # --trace records of one _run() call: at most one per frame that arrives in it or was on a ring
    trace_rows = CHUNK + ncpus * int(cfg[RING_COUNT]) + 16 if cfg[TRACE] else 1
    # --plot: skbs by (frame length, nr_frags) and their truesize
    lengths = int(cfg[RXMAX]) + 61 if cfg[PLOT] else 1
    if copy is None:
        copy = np.zeros((3, 1), np.int64)
    return Kernel(
        cfg=cfg, st=st, pcpu=new_pcpu(ncpus, NETDEV_BUDGET), pages=pages, faults=load_faults(sim.kernel.faults, st),
        slabs=new_slabs(sizes.caches, ncpus), frags=Frags(np.zeros((sizes.frag_lists, sizes.frags + 2), np.int64)),
        nc=NapiCaches(np.zeros((ncpus, int(cfg[NC_CACHE_SIZE]) + 1), np.int64)),
        cpus=Cpus(np.zeros((ncpus, sim.kernel.skb_defer_max, SKB_FIELDS), np.int64)),
        rings=new_rings(ncpus, int(cfg[RING_COUNT]), sizes.ring_bias, copy),
        tun=tables.get("tun") or new_tun_queues(np.zeros((1, 16), np.int64), 1, 1),
        sock=Socket(np.zeros((sizes.queue, SKB_FIELDS), np.int64), np.zeros(sizes.pages + kept, np.int64)),
        events=Events(np.zeros((4096, EV_FIELDS), np.int64)),
        batch=np.zeros((NAPI_POLL_WEIGHT, SKB_FIELDS), np.int64),
        trace=Trace(np.zeros((trace_rows, T_SIZE), np.int64), np.zeros((lengths, MAX_FRAGS_SEEN, 2), np.int64),
                    np.zeros((SERIES_LIMIT, 3), np.int64)),
        virtio=tables.get("virtio") or new_virtio_queues(1, 1, 1),
        pp=tables.get("pp") or new_page_pools(0, 1, 1, 1),
        lb=tables.get("lb") or new_libeth_fqs(0, 1, 1, 1),
        skbcb=tables.get("skbcb") or new_skb_cb(1),
        mlx=tables.get("mlx") or new_mlx5_rqs(1, 1, 1, 1, 1, 1),  # -- mlx5 --
        bnxt=tables.get("bnxt") or new_bnxt_rings(1, 1, 1, np.zeros((1, CP_FIELDS), np.int64)),  # -- bnxt --
        gve=tables.get("gve") or new_gve_rings(1, 1, np.zeros((1, CP_FIELDS), np.int64)),  # -- gve --
        gro=tables.get("gro") or new_gro(),  # -- GRO --
        # -- TCP --
        tcp=tables.get("tcp") or new_tcp_socks(np.zeros(TC_FIELDS, np.int64), 1, 1, 1),
        tsnd=tables.get("tsnd") or new_tcp_senders(np.zeros(LK_FIELDS, np.int64), 1, 1, 1, 1),
        tfl=tables.get("tfl") or new_tcp_flows(1, 1, 1),
    )


def _new_page(k: Kernel, refcount: int, order: int) -> int:
    """A page id for a page the reference kernel holds as the run starts."""
    pid = int(k.st[PG_NEXT])
    k.st[PG_NEXT] += 1
    k.pages.page[pid] = refcount, order
    return pid


def ice_kernel(sim: Simulation, trace: bool, plot: bool, head: dict | None, queued: int | None = None,
               collapse: dict | None = None) -> Kernel:
    """ice, rx=build_skb (head None) or rx=legacy (head: the header skb, legacy_header_skb()): the rings as
    ice_open() left them.  queued: the most skbs the sockets hold at once (a run with a socket per flow's
    receivers; else the UDP socket's); collapse: the caches tcp_collapse()'s heads come from (skb_caches())."""
    kernel = sim.kernel
    profile = kernel.profile
    ring = sim.cpus[0].queue
    fields = base_config(sim, trace, plot)
    frame_sz = ring.config["frame_sz"]
    build_ts = profile.SKB_TRUESIZE(frame_sz - profile.SHINFO_SIZE)
    fields.update(
        DRIVER=DRIVER_ICE, RING_COUNT=ring.count, RXMAX=ring.rxmax, RX_BUF_LEN=ring.rx_buf_len,
        BUILD_TRUESIZE=build_ts, PUT_MODE=_PUT_MODES[ring.rules.put], FRAME_SZ=frame_sz,
        RING_ORDER=ring.config["page_order"],
        # skb_condense() room of a build_skb head (end - headroom) and the truesize it is left with
        COND_ROOM=frame_sz - profile.SHINFO_SIZE - ring.config["rx_offset"], COND_TS=build_ts,
    )
    if head is not None:
        fields.update(
            LEGACY=1, HEAD_TRUESIZE=head["truesize"], HEAD_KIND=HEAD_KINDS[head["source"]],
            # skb_condense() room of a header skb: end - tail before the copy
            COND_ROOM=head["end"] - head["tail"], COND_TS=head["truesize"],
            PF_ORDER=kernel.cpus[0].napi_alloc_cache.page.max_order, HEAD_FRAGSZ=head["head_size"],
        )
    ncpus = sim.config.cpus
    truesize = head["truesize"] if head is not None else build_ts  # the smallest skb
    qcap = socket_queue_capacity(sim.config, sim.sock.rcvbuf, truesize) if queued is None else queued
    # Live sk_buffs: queued, in the NAPI caches and defer lists, in one poll's hands.
    slab_cap = live_skbs_bound(sim, qcap)
    # Live pages: ring pages, a head and up to a page per buffer for each queued, deferred or polled skb,
    # the 1K pages, and the slabs of both caches.
    max_bufs = -(-ring.rxmax // ring.rx_buf_len)
    page_cap = (ncpus * ring.count + (1 + max_bufs) * (qcap + ncpus * (kernel.skb_defer_max + 2 * NAPI_POLL_WEIGHT))
                + 2 * ncpus + 2 * slab_cap + 16 + collapse_pages(collapse, slab_cap))
    # (build_skb's heads are the ring's pages: nothing from skbuff_small_head)
    caches = (skb_caches if head is not None else built_skb_caches)(kernel, slab_cap, collapse)
    # frag lists of skbs of several buffers
    sizes = TableSizes(pages=page_cap, caches=caches, queue=qcap, frag_lists=slab_cap if max_bufs > 1 else 1,
                       frags=profile.MAX_SKB_FRAGS, ring_bias=0)
    k = new_kernel(sim, fields, sizes)
    # The rings as ice_open() left them in the reference kernel.
    if len(kernel.pages.live) != sum(1 for st in sim.cpus for b in st.queue.rx_buf if b.page is not None):
        raise ValueError("unexpected pages at start")
    for cpu, cpu_state in enumerate(sim.cpus):
        ring = cpu_state.queue
        for slot, buf in enumerate(ring.rx_buf):
            if buf.page is not None:
                k.rings.buf[cpu, slot, BUF_PAGE] = _new_page(k, buf.page.refcount, buf.page.order)
                k.rings.buf[cpu, slot, BUF_BIAS] = buf.pagecnt_bias
        for slot, desc in enumerate(ring.desc):
            k.rings.desc[cpu, slot, DESC_DD] = desc.dd
        indices = k.pcpu[cpu]
        indices[NTU], indices[NTC], indices[NTA] = ring.next_to_use, ring.next_to_clean, ring.next_to_alloc
        indices[FIRST_DESC], indices[TAIL], indices[HW_NEXT] = ring.first_desc, ring.tail, ring.hw_next
        k.st[D_PAGES_ALLOC] += ring.stats.pages_allocated
    return k


def copybreak_kernel(sim: Simulation, trace: bool, plot: bool, heads: list[tuple], queued: int | None = None,
                     collapse: dict | None = None) -> Kernel:
    """copybreak: the rings and NAPI page_frag caches as copybreak_open_queue() left them; heads: what
    napi_alloc_skb(len) gives for every len up to copybreak (copybreak_copy_skbs()); queued and collapse as
    ice_kernel()'s."""
    kernel = sim.kernel
    profile = kernel.profile
    ring = sim.cpus[0].queue
    frag_cache = kernel.cpus[0].napi_alloc_cache.page
    fields = base_config(sim, trace, plot)
    build_ts = profile.SKB_TRUESIZE(ring.buf_size - profile.SHINFO_SIZE)
    fields.update(
        DRIVER=DRIVER_COPYBREAK, RING_COUNT=ring.count, RXMAX=ring.rxmax, RX_BUF_LEN=ring.rx_buf,
        COPYBREAK=ring.copybreak, CB_BUF_FRAGSZ=profile.SKB_DATA_ALIGN_u32(ring.buf_size), CB_BUILD_TS=build_ts,
        CB_BUF_SIZE=ring.buf_size, COND_ROOM=ring.buf_size - profile.SHINFO_SIZE - ring.headroom,  # end - headroom
        COND_TS=build_ts, PF_ORDER=frag_cache.max_order, PF_DOWN=0 if frag_cache.offset_up else 1,
    )
    ncpus = sim.config.cpus
    copy = np.zeros((3, ring.copybreak + 1), np.int64)
    for length, (kind, truesize, fragsz, _path, _source, _room) in enumerate(heads):
        copy[:, length] = kind, truesize, fragsz
    truesize = min([build_ts] + [h[1] for h in heads])  # the smallest skb
    qcap = socket_queue_capacity(sim.config, sim.sock.rcvbuf, truesize) if queued is None else queued
    slab_cap = live_skbs_bound(sim, qcap)
    # Live pages: the ring buffers' pages, one per queued or deferred skb head, the 1K and page_frag pages,
    # and the slabs of both caches.
    page_cap = (ncpus * ring.count + 2 * qcap + ncpus * (2 * kernel.skb_defer_max + 2 * NAPI_POLL_WEIGHT + 4)
                + ncpus * kernel.skb_defer_max * (profile.MAX_SKB_FRAGS + 1) + 2 * slab_cap + 16
                + collapse_pages(collapse, slab_cap))
    # frag lists: a frame's MAX_SKB_FRAGS + 1 replacement buffers are held in a row first
    sizes = TableSizes(pages=page_cap, caches=skb_caches(kernel, slab_cap, collapse), queue=qcap, frag_lists=slab_cap,
                       frags=profile.MAX_SKB_FRAGS + 1, ring_bias=1)  # one page reference per buffer
    k = new_kernel(sim, fields, sizes, copy=copy)
    _copybreak_start(sim, k)
    return k


def _copybreak_start(sim: Simulation, k: Kernel) -> None:
    """The reference kernel's live pages (each ring's buffers, each CPU's NAPI page_frag_cache) as page ids."""
    kernel = sim.kernel
    pages = kernel.pages
    pid_of = {pfn: _new_page(k, page.refcount, page.order) for pfn, page in pages.live.items()}
    seen = set()
    for cpu, cpu_state in enumerate(sim.cpus):
        ring = cpu_state.queue
        for slot, data in enumerate(ring.buffers):
            if data is not None:
                pfn = pages.virt_to_head_page(data).pfn
                k.rings.buf[cpu, slot, BUF_PAGE] = pid_of[pfn]
                seen.add(pfn)
        for slot, desc in enumerate(ring.desc):
            k.rings.desc[cpu, slot, DESC_DD] = desc.dd
        row = k.pcpu[cpu]
        row[NTC], row[HW_NEXT] = ring.next_to_clean, ring.hw_next
        _load_napi_frag_cache(k, cpu, kernel.cpus[cpu], pid_of)
        if kernel.cpus[cpu].napi_alloc_cache.page.page is not None:
            seen.add(kernel.cpus[cpu].napi_alloc_cache.page.page.pfn)
    if seen != set(pages.live):
        raise ValueError("unexpected pages at start")


def tun_kernel(sim: Simulation, trace: bool, plot: bool, lengths, tcp_queued: int | None = None, tcp_frags: int = 0,
               **tcp_tables) -> Kernel:
    """tun: queues as open_queue() left them (no memory held), each writer's task_frag empty; lengths: the
    per-length table (tun._TunLengths).  A run with a socket per flow gives the bound on skbs its TCP
    receivers may queue (tcp_queued), the frags a coalesced skb may gather (tcp_frags) and its records
    (tcp_tables: tcp_engine.TcpRun.tables())."""
    from skbsim.net.core_sock import PAGE_ALLOC_COSTLY_ORDER, SKB_FRAG_PAGE_SIZE

    kernel = sim.kernel
    profile = kernel.profile
    config = sim.config
    if kernel.pages.live or kernel.live_skbs:
        raise ValueError("unexpected pages at start")
    fields = base_config(sim, trace, plot)
    fields.update(
        DRIVER=DRIVER_TUN, COND_ROOM=-1,  # skb_condense() changes no tun skb (_TunLengths checks it per length)
        RING_COUNT=1, RXMAX=MAX_TUN_FRAME, TUN_SNDBUF=sim.cpus[0].queue.tfile.sk.sk_sndbuf,
        TF_ORDER=profile.get_order(SKB_FRAG_PAGE_SIZE), TUN_SMP=profile.SMP_CACHE_BYTES,
        # alloc_skb_with_frags() as tun_alloc_skb() calls it: its form, the starting order, the frag limit
        TUN_CHUNKS=int(lengths.chunks),
        TUN_MAX_ORDER=0 if profile.feature("tun_alloc_linear") == "whole_frame" else PAGE_ALLOC_COSTLY_ORDER,
        TUN_FRAG_LIMIT=profile.MAX_SKB_FRAGS - (
            1 if profile.feature("alloc_skb_with_frags_limit") == "max_skb_frags_minus_1" else 0),
    )
    if lengths.napi_head is not None:
        # IFF_NAPI_FRAGS: napi_get_frags()'s head from this CPU's NAPI caches
        frag_cache = kernel.cpus[0].napi_alloc_cache.page
        fields.update(HEAD_KIND=lengths.napi_head["kind"], HEAD_FRAGSZ=lengths.napi_head["fragsz"],
                      PF_ORDER=frag_cache.max_order, PF_DOWN=0 if frag_cache.offset_up else 1)
    ncpus = config.cpus
    # Written skbs waiting for the stack: a queue holds at most the frames of the run (and the fast engine
    # gives up beyond TUN_INFLIGHT_MAX), all queues together at most the frames of the run
    inflight = TUN_INFLIGHT_MAX if config.count is None else max(1, min(config.count + 1, TUN_INFLIGHT_MAX))
    waiting = ncpus * inflight if config.count is None else min(ncpus * inflight, config.count + 1)
    qcap = socket_queue_capacity(config, sim.sock.rcvbuf, lengths.min_truesize) if tcp_queued is None else tcp_queued
    # Live sk_buffs: queued, written and waiting, in the NAPI caches and defer lists.
    live_bound = (qcap + waiting + ncpus * (profile.NAPI_SKB_CACHE_SIZE + kernel.skb_defer_max + NAPI_POLL_WEIGHT)
                  + 16)
    slab_cap = live_bound + 16
    # Live pages per skb: its head's page (task_frag block, slab or pages of its own), its sk_buff's slab page
    # and its frag blocks; plus each writer's task_frag block.
    frags = max(lengths.max_frags, tcp_frags)
    page_cap = live_bound * (frags + 3) + ncpus + 64
    caches = [None] * (max(lengths.caches) + 1)  # (unused ones: no slabs)
    caches[CACHE_SKB] = slab_spec(kernel, kernel.skbuff_cache, slab_cap)
    for c, cache in lengths.caches.items():
        caches[c] = slab_spec(kernel, cache, slab_cap)
    sizes = TableSizes(pages=page_cap, caches=caches, queue=qcap, frag_lists=live_bound, frags=frags, ring_bias=0)
    return new_kernel(sim, fields, sizes, tun=new_tun_queues(lengths.tab, ncpus, inflight), **tcp_tables)


# -- tables read from the model on a scratch kernel ------------------------------------------------------


def legacy_header_skb(ref: Simulation) -> dict:
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


class ScratchNapi:
    """napi_alloc_skb() of the model on a scratch kernel of the run's profile and a NAPI instance of its own (the
    run's kernel is untouched)."""

    def __init__(self, ref: Simulation):
        from skbsim.kernel import Kernel
        from skbsim.net.napi import napi_struct, net_device

        self.kernel = Kernel(ref.kernel.profile, ncpus=1)
        self.napi = napi_struct(net_device("eth0"), NAPI_POLL_WEIGHT, napi_id=0x2001, cpu=0)

    def head(self, length: int, what: str) -> tuple:
        """What napi_alloc_skb(length) gives: (head kind, truesize, page_frag fragment size, path, head source,
        tailroom after its reserve).  A head from anywhere but the 1K pieces, skbuff_small_head or the NAPI
        page_frag_cache, or one skb_condense() would change, is out of scope (what: whose heads, for the
        message)."""
        from skbsim.net.skbuff import consume_skb, napi_alloc_skb

        scratch = self.kernel
        with scratch.softirq(0):
            skb = napi_alloc_skb(scratch, self.napi, length)
            if skb is None or skb.head_source not in HEAD_KINDS:
                raise ValueError(f"the fast engine models {what} from {', '.join(HEAD_KINDS)} only; "
                                 f"napi_alloc_skb({length}) on {scratch.profile.name} takes one from "
                                 f"{None if skb is None else skb.head_source}")
            if skb.truesize != scratch.profile.SKB_TRUESIZE(skb.end):
                raise ValueError(f"napi_alloc_skb({length}): skb_condense() would change its truesize")
            head = (HEAD_KINDS[skb.head_source], skb.truesize, skb.head_size, skb.path, skb.head_source,
                    skb.end - skb.tail)
            consume_skb(scratch, skb)
        return head


def copybreak_copy_skbs(ref: Simulation) -> list[tuple]:
    """What copybreak_copy_skb()'s napi_alloc_skb(len) gives for every len up to copybreak
    (napi_alloc_skb_table()): (head kind, truesize, page_frag fragment size, path, head source, room from the
    tail to the end before the copy: what skb_condense() of a GRO aggregate on the copy has)."""
    table, names = napi_alloc_skb_table(ref, ref.cpus[0].queue.copybreak + 1, "copybreak copies into heads")
    return [(kind, truesize, fragsz, *names[kind], room) for kind, truesize, fragsz, room in table.tolist()]


def napi_alloc_skb_table(ref: Simulation, lengths: int, what: str) -> tuple[np.ndarray, list]:
    """What napi_alloc_skb(len) gives for every len below lengths (ScratchNapi): rows of CP_* columns (head
    kind, truesize, page_frag fragment size, end - tail) and, by head kind, (path, head source)."""
    scratch = ScratchNapi(ref)
    table = np.zeros((lengths, CP_FIELDS), np.int64)
    names: dict[int, tuple[str, str]] = {}
    for length in range(lengths):
        kind, truesize, fragsz, path, source, room = scratch.head(length, what)
        if names.setdefault(kind, (path, source)) != (path, source):
            raise ValueError("napi_alloc_skb() heads of one kind with different paths")
        table[length, CP_KIND], table[length, CP_TS], table[length, CP_FRAGSZ], table[length, CP_ROOM] = (
            kind, truesize, fragsz, room)
    return table, [names.get(kind, ("", "")) for kind in range(max(names) + 1)]


# -- page_pool drivers -------------------------------------------------------------------------------------


def _pool_row(pool, napi_cpu: int) -> list[tuple[int, int]]:
    """A reference page_pool's constants as (PP_* column, value) pairs (page_pool_create()'s answers)."""
    direct = {"never_from_skb": PP_DIRECT_NEVER_FROM_SKB, "skb_free": PP_DIRECT_SKB_FREE,
              "every_put": PP_DIRECT_EVERY_PUT}[pool.direct_rule]
    if pool.cpuid != -1 or pool.destroyed or pool.user_cnt != 1:
        raise ValueError("the fast engine models page_pools of a NAPI instance, without a cpuid")
    return [(PP_NAPI_CPU, napi_cpu), (PP_ORDER, pool.p.order), (PP_QSIZE, pool.ring_qsize),
            (PP_CACHE_SIZE, pool.cache_size), (PP_REFILL, pool.cache_refill), (PP_BIAS_MAX, pool.bias_max),
            (PP_FRAG_ALIGN, pool.frag_align),
            (PP_FRAG_COUNTED, int(pool.ref_rule_always or bool(pool.p.flags & PP_FLAG_PAGE_FRAG))),
            (PP_REF_ALWAYS, int(pool.ref_rule_always)), (PP_DIRECT, direct),
            (PP_CACHED_ON_REUSE, int(pool.cached_on_reuse))]


def _load_pool(k: Kernel, p: int, pool, napi_cpu: int, pid_of: dict) -> None:
    """Pool p of k as the reference pool is: its constants, cache, ring, frag page, counters and pages."""
    row = k.pp.pool[p]
    for column, value in _pool_row(pool, napi_cpu):
        row[column] = value
    for j, page in enumerate(pool.alloc):
        k.pp.cache[p, j] = pid_of[page.pfn]
    for j, page in enumerate(pool.ring):
        k.pp.ring[p, j] = pid_of[page.pfn]
    row[PP_CACHE_LEN], row[PP_RING_HEAD], row[PP_RING_LEN] = len(pool.alloc), 0, len(pool.ring)
    row[PP_FRAG_PAGE] = -1 if pool.frag_page is None else pid_of[pool.frag_page.pfn]
    row[PP_FRAG_OFFSET], row[PP_FRAG_USERS] = pool.frag_offset, pool.frag_users
    row[PP_HOLD], row[PP_RELEASE] = pool.pages_state_hold_cnt, pool.pages_state_release_cnt
    for n, name in enumerate(PP_STATS):
        row[PP_STATS_FIRST + n] = pool.stats[name]


def _pp_pages(sim: Simulation, k: Kernel, pools: dict, others: bool = False) -> dict:
    """The reference kernel's live pages as page ids, page->pp (pools: the row of each reference pool, by
    id()) and pp_ref_count with them: {pfn: pid}.  With others, pages no pool owns too (page_frag pieces,
    alloc_page() pages, a driver's own pages)."""
    pid_of = {}
    for pfn, page in sim.kernel.pages.live.items():
        pid = pid_of[pfn] = _new_page(k, page.refcount, page.order)
        if others and page.pp is None and not page.pfmemalloc:
            continue
        if page.pfmemalloc or page.pp is None or id(page.pp) not in pools:
            raise ValueError("unexpected pages at start")
        k.pp.pp[pid] = pools[id(page.pp)] + 1
        k.pp.ref[pid] = page.pp_ref_count
    return pid_of


def mana_kernel(sim: Simulation, trace: bool, plot: bool, queued: int | None = None,
                collapse: dict | None = None) -> Kernel:
    """mana: each queue's buffers and page_pool as mana_create_rxq() left them (every buffer a page_pool page or
    fragment, or v6.9's above a page a napi_alloc_frag() piece: then each CPU's NAPI page_frag_cache too); queued
    and collapse as ice_kernel() takes them."""
    kernel = sim.kernel
    profile = kernel.profile
    rxq = sim.cpus[0].queue
    pool = rxq.page_pool
    fields = base_config(sim, trace, plot)
    build_ts = profile.SKB_TRUESIZE(rxq.alloc_size - profile.SHINFO_SIZE)  # napi_build_skb(va, alloc_size)
    fields.update(DRIVER=DRIVER_MANA, RING_COUNT=rxq.count, RXMAX=rxq.rxmax, RX_BUF_LEN=rxq.alloc_size,
                  BUILD_TRUESIZE=build_ts, PAGE_POOL=1, PP_FRAGS=int(rxq.frag_count > 1),
                  # the head's room from the headroom on (end - headroom) and SKB_TRUESIZE(end): what a GRO
                  # aggregate's skb_condense() and the TCP receivers (tcp_napi._head_shape()) read
                  COND_ROOM=rxq.alloc_size - profile.SHINFO_SIZE - rxq.headroom, COND_TS=build_ts)
    napi_frag = mana_napi_frag(rxq, profile)
    if napi_frag:  # -- mana v6.9 above a page --
        frag_cache = kernel.cpus[0].napi_alloc_cache.page
        fields.update(MANA_NAPI_FRAG=1, MANA_FRAGSZ=profile.SKB_DATA_ALIGN_u32(rxq.alloc_size),
                      MANA_FRAG_ORDER=profile.get_order(rxq.alloc_size), PF_ORDER=frag_cache.max_order,
                      PF_DOWN=0 if frag_cache.offset_up else 1)
    ncpus = sim.config.cpus
    qcap = socket_queue_capacity(sim.config, sim.sock.rcvbuf, build_ts) if queued is None else queued
    slab_cap = live_skbs_bound(sim, qcap)
    # Live pages: each pool's cache, ring, posted buffers, frag page and a refill in progress; a page per
    # queued, deferred or polled skb; the slabs.
    per_pool = pool.cache_size + pool.ring_qsize + rxq.count + pool.cache_refill + 2
    page_cap = (ncpus * per_pool + qcap + ncpus * (kernel.skb_defer_max + 2 * NAPI_POLL_WEIGHT) + 2 * slab_cap
                + 16 + collapse_pages(collapse, slab_cap))
    caches = built_skb_caches(kernel, slab_cap, collapse)
    sizes = TableSizes(pages=page_cap, caches=caches, queue=qcap, frag_lists=1, frags=1, ring_bias=0)
    k = new_kernel(sim, fields, sizes, pp=new_page_pools(ncpus, pool.cache_size, pool.ring_qsize, page_cap))
    pid_of = _pp_pages(sim, k, {id(state.queue.page_pool): cpu for cpu, state in enumerate(sim.cpus)}, napi_frag)
    for cpu, state in enumerate(sim.cpus):
        rxq = state.queue
        if napi_frag:  # -- mana v6.9 above a page --
            _load_napi_frag_cache(k, cpu, kernel.cpus[cpu], pid_of)
        stats = rxq.stats.as_dict()
        # (buffers the open could not have: v6.9's napi_alloc_frag() above a page when the page_frag cache
        # cannot get a page large enough, as on a profile whose largest order is below its own)
        failed = stats.pop("buffer_alloc_failures")
        if rxq.completions or any(stats.values()) or rxq.page_pools != [rxq.page_pool]:
            raise ValueError("unexpected mana queue state at start")
        k.st[D_BUF_FAILURES] += failed
        _load_pool(k, cpu, rxq.page_pool, state.napi.cpu, pid_of)
        for slot, oob in enumerate(rxq.rx_oobs):
            if oob.buf_va is not None:
                if oob.from_pool == napi_frag:
                    raise ValueError("unexpected mana buffers at start")
                k.rings.buf[cpu, slot, BUF_PAGE] = pid_of[kernel.pages.virt_to_head_page(oob.buf_va).pfn]
        k.pcpu[cpu, HW_NEXT], k.pcpu[cpu, NTC] = rxq.hw_next, rxq.buf_index
    return k


def mana_napi_frag(rxq, profile) -> bool:
    """Whether mana_get_rxfrag() takes the queue's buffers from napi_alloc_frag() (v6.9 above a page)."""
    from skbsim.drivers.mana import MANA_POOL_PAGE_OR_FRAG

    return rxq.rule == MANA_POOL_PAGE_OR_FRAG and rxq.alloc_size > profile.PAGE_SIZE


def libeth_kernel(sim: Simulation, trace: bool, plot: bool, queued: int | None = None,
                  collapse: dict | None = None) -> Kernel:
    """libeth (iavf, idpf, ice's page_pool form): each queue's fill queues, their buffers and page_pools as
    libeth_open() left them (fill queue q of queue cpu is row cpu * FQ_COUNT + q of both LibethFqs and
    PagePool; with header split the header queue is the last); queued and collapse as ice_kernel() takes them."""
    kernel = sim.kernel
    profile = kernel.profile
    queue = sim.cpus[0].queue
    hsplit = queue.hdr_fq is not None
    fqs = libeth_fqs(queue)
    nfq = len(fqs)
    ncpus = sim.config.cpus
    overhead = profile.SKB_TRUESIZE(0) - profile.SHINFO_SIZE  # napi_build_skb(va, truesize): beyond truesize
    head = fqs[-1] if hsplit else fqs[0]  # the buffers of the skbs with frags (idpf's short ones have none)
    fields = base_config(sim, trace, plot)
    fields.update(DRIVER=DRIVER_LIBETH, RING_COUNT=queue.count, RXMAX=queue.rxmax, PAGE_POOL=1,
                  # skb_condense() of an skb with frags: its head's room from the headroom on
                  COND_ROOM=head.truesize - profile.SHINFO_SIZE - head.offset, COND_TS=head.truesize + overhead,
                  FQ_COUNT=nfq, FQ_REFILL_EVERY=IAVF_RX_BUFFER_WRITE if queue.nic == "iavf" else 0,
                  # the NIC uses idpf's short queue without header split only
                  FQ_SHORT_LEN=fqs[1].buf_len if len(queue.fqs) > 1 and not hsplit else 0, BUILD_OVERHEAD=overhead,
                  FQ_HSPLIT=int(hsplit), L1_CACHE_BYTES=profile.L1_CACHE_BYTES)
    smallest = min(fq.truesize for fq in fqs) + overhead
    qcap = socket_queue_capacity(sim.config, sim.sock.rcvbuf, smallest) if queued is None else queued
    slab_cap = live_skbs_bound(sim, qcap)
    inflight = slab_cap - ncpus * profile.NAPI_SKB_CACHE_SIZE  # skbs alive at once, outside the NAPI caches
    pool = fqs[0].pp
    per_pool = pool.cache_size + pool.ring_qsize + queue.count + pool.cache_refill + 2
    page_cap = (ncpus * nfq * per_pool + inflight * (LIBIE_MAX_CHAINED_BUFS + 1) + 2 * slab_cap + 16
                + collapse_pages(collapse, slab_cap))
    caches = built_skb_caches(kernel, slab_cap, collapse)
    sizes = TableSizes(pages=page_cap, caches=caches, queue=qcap, frag_lists=inflight, frags=LIBIE_MAX_CHAINED_BUFS,
                       ring_bias=0)
    k = new_kernel(sim, fields, sizes, pp=new_page_pools(ncpus * nfq, pool.cache_size, pool.ring_qsize, page_cap),
                   lb=new_libeth_fqs(ncpus * nfq, queue.count, ncpus, nfq * queue.count + 1))
    rows = {id(fq.pp): cpu * nfq + q for cpu, state in enumerate(sim.cpus)
            for q, fq in enumerate(libeth_fqs(state.queue))}
    pid_of = _pp_pages(sim, k, rows)
    for cpu, state in enumerate(sim.cpus):
        rxq = state.queue
        if rxq.completions or any(rxq.stats.as_dict().values()) or any(rxq.next_free):
            raise ValueError("unexpected libeth queue state at start")
        for q, fq in enumerate(libeth_fqs(rxq)):
            _load_fq(k, cpu * nfq + q, fq, state.napi.cpu, pid_of)
    return k


def libeth_fqs(queue) -> list:
    """A libeth queue's fill queues in the fast engine's order: the payload queues, then the header queue."""
    return queue.fqs + ([queue.hdr_fq] if queue.hdr_fq is not None else [])


def _load_fq(k: Kernel, row: int, fq, napi_cpu: int, pid_of: dict) -> None:
    """Fill queue row of k as the reference libeth_fq is: its sizes, buffers and page_pool."""
    _load_pool(k, row, fq.pp, napi_cpu, pid_of)
    k.lb.fq[row, FQ_BUF_LEN], k.lb.fq[row, FQ_TRUESIZE] = fq.buf_len, fq.truesize
    empty = [slot for slot, fqe in enumerate(fq.fqes) if fqe.page is None]
    k.lb.fq[row, FQ_EMPTY], k.lb.fq[row, FQ_LO] = len(empty), empty[0] if empty else fq.count
    for slot, fqe in enumerate(fq.fqes):
        if fqe.page is not None:
            if fqe.done:
                raise ValueError("unexpected libeth buffer state at start")
            k.lb.fqe[row, slot, FQE_PAGE], k.lb.fqe[row, slot, FQE_TRUESIZE] = pid_of[fqe.page.pfn], fqe.truesize


# -- mlx5 --------------------------------------------------------------------------------------------------


def mlx5_head_skb(ref: Simulation) -> dict:
    """What mlx5e_skb_from_cqe_mpwrq_nonlinear()'s napi_alloc_skb(MLX5E_RX_MAX_HEAD) is on this kernel (ScratchNapi):
    its head kind, source, path, truesize, tailroom after the reserve and page_frag fragment size."""
    from skbsim.drivers.mlx5 import MLX5E_RX_MAX_HEAD

    kind, truesize, head_size, path, source, room = ScratchNapi(ref).head(MLX5E_RX_MAX_HEAD,
                                                                          "mlx5's striding non-linear heads")
    return {"kind": kind, "source": source, "path": path, "truesize": truesize, "room": room,
            "head_size": head_size}


def mlx5_kernel(sim: Simulation, trace: bool, plot: bool, head: dict | None) -> Kernel:
    """mlx5 (page_pool fragments, 6.4+; 6.1's RQ page cache): each RQ's WQEs, page slots and page_pool as
    mlx5e_open_rq() left them (RQ cpu is row cpu of both Mlx5Rqs and PagePool); head: mlx5_head_skb() for a
    striding RQ's non-linear frames, else None."""
    kernel = sim.kernel
    profile = kernel.profile
    rq = sim.cpus[0].queue
    geo = rq.geo.describe()
    striding, linear = rq.striding, geo["linear"]
    ncpus = sim.config.cpus
    overhead = profile.SKB_TRUESIZE(0) - profile.SHINFO_SIZE  # napi_build_skb(va, frag_size): beyond frag_size
    wq_sz = rq.wq_sz
    nfrags = 1 if striding else len(geo["frag_sizes"])
    num_strides = 1 << geo.get("log_num_strides", 0)
    # completions not yet cleaned: a legacy WQE holds one frame, a striding one a frame a stride and a filler
    pending = wq_sz * (num_strides + 1) if striding else wq_sz
    if sim.config.count is not None:
        pending = min(pending, sim.config.count + wq_sz + 1)
    fields = base_config(sim, trace, plot)
    fields.update(
        DRIVER=DRIVER_MLX5, RING_COUNT=pending, RXMAX=rq.rxmax, PAGE_POOL=1, BUILD_OVERHEAD=overhead,
        MLX5_STRIDING=int(striding), MLX5_LINEAR=int(linear), MLX5_WQ_SZ=wq_sz, MLX5_NFRAGS=nfrags,
        MLX5_HEADROOM=geo["headroom"], MLX5_WQE_BULK=geo["wqe_bulk"], MLX5_REFILL_UNIT=geo.get("refill_unit", 1),
        MLX5_INDEX_MASK=geo.get("wqe_index_mask", 0), MLX5_LOG_STRIDE=geo.get("log_stride_sz", 0),
        MLX5_LOG_NUM_STRIDES=geo.get("log_num_strides", 0), MLX5_PAGES_PER_WQE=geo.get("pages_per_wqe", 0),
        MLX5_BIAS_MAX=rq.bias_max, MLX5_SMP=profile.SMP_CACHE_BYTES, MLX5_SHINFO=profile.SHINFO_SIZE,
        MLX5_PP_FRAGMENTS=int(rq.pp_fragments), PP_SKBS_UNMARKED=int(not rq.pp_fragments),
        COND_ROOM=-1,  # linear skbs: skb_condense() changes none
    )
    if head is not None:  # napi_alloc_skb(MLX5E_RX_MAX_HEAD) heads with the frame's rest as frags
        frag_cache = kernel.cpus[0].napi_alloc_cache.page
        fields.update(HEAD_KIND=head["kind"], HEAD_TRUESIZE=head["truesize"], HEAD_FRAGSZ=head["head_size"],
                      PF_ORDER=frag_cache.max_order, PF_DOWN=0 if frag_cache.offset_up else 1,
                      COND_ROOM=head["room"], COND_TS=head["truesize"])
        smallest = head["truesize"]
    elif not linear:  # napi_build_skb() on the first fragment (its stride as frag_size), the others as frags
        stride0 = geo["frag_strides"][0]
        fields.update(COND_ROOM=stride0 - profile.SHINFO_SIZE - geo["headroom"], COND_TS=stride0 + overhead)
        smallest = stride0 + overhead
    else:
        smallest = profile.SKB_DATA_ALIGN(geo["headroom"] + 1) + profile.SHINFO_SIZE + overhead
    qcap = socket_queue_capacity(sim.config, sim.sock.rcvbuf, smallest)
    slab_cap = live_skbs_bound(sim, qcap)
    inflight = slab_cap - ncpus * profile.NAPI_SKB_CACHE_SIZE  # skbs alive at once, outside the NAPI caches
    max_frags = MLX5E_MAX_RX_FRAGS + 1  # a striding RQ's non-linear frame: its rest over up to 4 pages
    pool = rq.page_pool
    nslots = wq_sz * geo["pages_per_wqe"] if striding else len(rq.frag_pages)
    rq_cache = 1 if rq.pp_fragments else MLX5E_CACHE_SIZE  # 6.1's RQ page cache
    per_pool = pool.cache_size + pool.ring_qsize + nslots + pool.cache_refill + rq_cache + 2
    page_cap = ncpus * per_pool + inflight * (max_frags + 1) + 2 * slab_cap + 2 * ncpus + 16
    caches = [slab_spec(kernel, kernel.skbuff_cache, slab_cap)]
    if head is not None and kernel.skb_small_head_cache is not None:
        caches.append(slab_spec(kernel, kernel.skb_small_head_cache, slab_cap))
    sizes = TableSizes(pages=page_cap, caches=caches, queue=qcap, frag_lists=inflight, frags=max_frags, ring_bias=0)
    k = new_kernel(sim, fields, sizes, pp=new_page_pools(ncpus, pool.cache_size, pool.ring_qsize, page_cap),
                   mlx=new_mlx5_rqs(ncpus, wq_sz, nslots, nfrags, pending, rq_cache))
    pid_of = _pp_pages(sim, k, {id(state.queue.page_pool): cpu for cpu, state in enumerate(sim.cpus)})
    if not striding:
        for f, (size, stride) in enumerate(zip(geo["frag_sizes"], geo["frag_strides"])):
            k.mlx.geo[f, G_SIZE], k.mlx.geo[f, G_STRIDE] = size, stride
        for ix, (frags, lasts) in enumerate(zip(rq.wqe_frags, rq.last_in_page)):
            for f, ((slot, offset), last) in enumerate(zip(frags, lasts)):
                row = k.mlx.frag[ix, f]
                row[WF_SLOT], row[WF_OFFSET], row[WF_LAST] = slot, offset, last
    for cpu, state in enumerate(sim.cpus):
        rxq = state.queue
        if (rxq.completions or any(rxq.stats.as_dict().values()) or rxq.page_pools != [rxq.page_pool]
                or rxq.page_cache):
            raise ValueError("unexpected mlx5 queue state at start")
        _load_pool(k, cpu, rxq.page_pool, state.napi.cpu, pid_of)
        slots = [fp for pages in rxq.mpw for fp in pages] if striding else rxq.frag_pages
        for slot, fp in enumerate(slots):
            if fp.page is not None:
                k.mlx.fp[cpu, slot, FP_PAGE] = pid_of[fp.page.pfn] if fp.held else -1
                k.mlx.fp[cpu, slot, FP_FRAGS], k.mlx.fp[cpu, slot, FP_HELD] = fp.frags, int(fp.held)
        for ix, wqe_state in enumerate(rxq.state):
            k.mlx.wqe[cpu, ix, W_STATE] = {EMPTY: W_EMPTY, POSTED: W_POSTED, WRITTEN: W_WRITTEN}[wqe_state]
            if striding:
                k.mlx.wqe[cpu, ix, W_CONSUMED] = rxq.mpw_ready[ix]
        row = k.mlx.rq[cpu]
        row[RQ_HW_HEAD], row[RQ_HW_STRIDE], row[RQ_CI] = rxq.hw_head, rxq.hw_stride, rxq.ci
        row[RQ_MISSING] = rxq.state.count(EMPTY)
    return k
# -- bnxt, gve, mana v6.9 above a page: RX buffers or heads from the NAPI page_frag cache --


def _load_napi_frag_cache(k, cpu: int, state, pid_of: dict) -> None:
    """A CPU's NAPI page_frag_cache (napi_alloc_frag(): the RX buffers before 6.12, napi_alloc_skb()'s page_frag
    heads) as the open left it; the other per-CPU caches must be empty."""
    nc = state.napi_alloc_cache
    if (nc.page_small.page is not None or state.netdev_alloc_cache.page is not None or nc.skb_cache
            or nc.page.pfmemalloc):
        raise ValueError("unexpected per-CPU cache state at start")
    row = k.pcpu[cpu]
    if nc.page.page is not None:
        row[PF_PAGE] = pid_of[nc.page.page.pfn]
        row[PF_OFFSET], row[PF_SIZE], row[PF_BIAS] = nc.page.offset, nc.page.size, nc.page.pagecnt_bias
    k.st[PF_ALLOCS] += nc.page.allocs
    k.st[PF_REFILLS] += nc.page.refills
    k.st[PF_REUSES] += nc.page.reuses
