"""The fast engine's state: named records of integer arrays, one per object of the reference model.

Compiled code gets the state as typed named tuples of numpy arrays.  numba passes a tuple to a
function it calls as all of its arrays' fields, one machine word each (seven to eleven words an
array), so a call's cost grows with the arrays it carries: about 2 ns an array on this machine.
So the records hold only their tables, and every scalar sits in one of two shared int64 arrays with
named indices: Kernel.st, the kernel's scalars (each object's counters and state, the run's
statistics and its error code ERR), and Kernel.pcpu, the per-CPU scalars (a row per CPU); the run's
constants are the int64 array Kernel.cfg, indexed by the Config names below.  docs/engines.md has
the measurements behind the choice.

=============  =================================================  ==========================
record         what it holds                                      mirrors
=============  =================================================  ==========================
cfg            the run's constants (read-only)                    RunConfig, profile, driver
st             the kernel's scalars: the page allocator's, the    (each object's scalars)
               fault injector's, the NAPI caches' counters, the
               socket's, the event queue's, the trace's, the
               statistics, the error code
pcpu           per CPU: NAPI scheduling, the queue's frame        sim._CpuState, softnet_data,
               counts, the defer list's length and IPI, the NAPI  napi_alloc_cache, the ring,
               caches, the ring's indices, tun's writer           tun's queue
Pages          page ids: refcount, order, free ids, counts by     mm/page_alloc.py
               order                                              PageAllocator
Faults         the rules by layer and random.Random's state       mm/fault.py FaultInjector
Slabs          the kmem caches, their per-CPU and node lists and  mm/slab.py KmemCache,
               their slabs                                        KmemCacheCpu, KmemCacheNode, Slab
Frags          skbs' frag lists of several pages                  skb_shared_info.frags
NapiCaches     per CPU: the NAPI skb cache                        net/napi.py napi_alloc_cache
Cpus           per CPU: the defer list                            softnet_data.defer_list
Rings          per CPU: ice/copybreak buffers and descriptors     drivers/ice.py, copybreak.py
TunQueues      per CPU: written skbs; the per-length table        drivers/tun.py, ntb.py
               (ntb: the posted entries; netdev_alloc_skb's)
Socket         the UDP socket's queue, queued skbs' pages         net/sock.py udp_sock, sim
Events         the event heap                                     sim.Simulation.events
batch          the skbs one poll hands to the stack               sim.Simulation._poll
Trace          --trace records, --plot's table and series         report.TraceWriter, sim._Series
VirtioQueues   virtio_net's posted and used buffers, DMA records  drivers/virtio_net.py
PagePool       each page_pool: cache, ptr_ring, counters; page->pp  net/page_pool.py page_pool
LibethFqs      libeth's fill queues: buffers, the NIC's completions  drivers/libeth.py libeth_fq
Mlx5Rqs        mlx5's RQs: WQEs, page slots, completions          drivers/mlx5.py mlx5e_rq
BnxtRings      bnxt's RX and aggregation buffers, completions     drivers/bnxt.py bnxt_rx_ring_info
GveRings       gve's buffer states, their lists, the buffer queue  drivers/gve.py gve_rx_ring
Kernel         all of the above                                   kernel.Kernel + Simulation
=============  =================================================  ==========================
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

# -- cfg: the run's constants -------------------------------------------------------------------
CONFIG_FIELDS = (
    # the run
    "NCPUS", "PAGE_SIZE", "DRIVER", "TRACE", "PLOT",
    # time (sim.Simulation): per-packet cost, IRQ latency, the reader (unlimited, or one read per APP_GAP ns)
    "COST", "IRQ_LATENCY", "APP_UNLIMITED", "APP_GAP",
    # the UDP socket (net/sock.py) and skb_attempt_defer_free()
    "RCVBUF", "STRICT_FIT", "LARGE_FIT", "FWD_DEFICIT_ONLY", "DEFER_FREE", "DEFER_LIMIT_MINUS_1",
    # the NAPI skb cache and page_frag_cache (net/napi.py, mm/page_frag.py)
    "NC_CACHE_SIZE", "NC_BULK", "NC_FREE", "PF_ORDER", "PF_DOWN",
    # the ring (ice, copybreak): its size, the largest frame, buffer length and page order, ice's put rule,
    # frame_sz and the build_skb truesize, legacy-rx's header skb (head kind, truesize, fragment size)
    "RING_COUNT", "RXMAX", "RX_BUF_LEN", "RING_ORDER", "PUT_MODE", "FRAME_SZ", "BUILD_TRUESIZE", "LEGACY",
    "HEAD_KIND", "HEAD_TRUESIZE", "HEAD_FRAGSZ",
    # skb_condense() of the run's skbs with frags: the head's room from its headroom on, and its truesize
    "COND_ROOM", "COND_TS",
    # copybreak: the copy limit, a replacement buffer's fragment size, the build truesize, buf_size
    "COPYBREAK", "CB_BUF_FRAGSZ", "CB_BUILD_TS", "CB_BUF_SIZE",
    # tun: sk_sndbuf, the task_frag order, SMP_CACHE_BYTES, alloc_skb_with_frags()'s form, first order, limit
    "TUN_SNDBUF", "TF_ORDER", "TUN_SMP", "TUN_CHUNKS", "TUN_MAX_ORDER", "TUN_FRAG_LIMIT",
    # virtio_net (mergeable buffers): the virtio-net header, mergeable_min_buf_len(), premapped frag blocks
    # (a DMA record), 6.13's overflow fix, the hole fold, a failed refill's repoll, the frag block's order,
    # L1_CACHE_BYTES, SKB_TRUESIZE(0), SHINFO_SIZE, NET_IP_ALIGN, MAX_SKB_FRAGS, napi_alloc_skb(GOOD_COPY_LEN)'s
    # tailroom
    "VQ_HDR_LEN", "VQ_MIN_BUF_LEN", "VQ_PREMAPPED", "VQ_OVERFLOW_FIX", "VQ_HOLE_FOLD", "VQ_REPOLL", "VQ_FRAG_ORDER",
    "VQ_L1", "VQ_TS0", "VQ_SHINFO", "VQ_IP_ALIGN", "VQ_MAX_FRAGS", "VQ_COPY_ROOM",
    # page_pool drivers: skbs' pages come from page_pools (their frees go to napi_pp_put_page()); mana's
    # buffers are page_pool fragments (not whole pages)
    "PAGE_POOL", "PP_FRAGS",
    # libeth (iavf, idpf, ice's page_pool form): payload fill queues per RX queue (each its page_pool: pool
    # row cpu * FQ_COUNT + q), buffers cleaned between iavf's refills (0: at the poll's end only), idpf's
    # short buffer length (0: none), napi_build_skb()'s truesize beyond the buffer's (SKB_TRUESIZE(0) - shinfo);
    # header split (the header buffers' fill queue is the last, FQ_COUNT - 1) and L1_CACHE_BYTES
    "FQ_COUNT", "FQ_REFILL_EVERY", "FQ_SHORT_LEN", "BUILD_OVERHEAD", "FQ_HSPLIT", "L1_CACHE_BYTES",
    # net.core.skb_defer_max (Kernel.skb_defer_max): skb_attempt_defer_free()'s limit, 128 from 6.19
    "DEFER_MAX",
    # -- mlx5 -- (skbsim/fast/mlx5.py): striding RQ or legacy, linear skbs, WQEs, fragments a legacy WQE, the
    # headroom, wqe_bulk and the refill unit, wqe_index_mask; striding: log stride size, log strides a WQE,
    # pages a WQE; MLX5E_PAGECNT_BIAS_MAX, SMP_CACHE_BYTES and SKB_DATA_ALIGN(shinfo) (MLX5_SKB_FRAG_SZ()); the
    # pages' owner (1: page_pool fragments, 6.4+; 0: 6.1's RQ page cache, skbs holding page references and
    # not marked for recycling: PP_SKBS_UNMARKED)
    "MLX5_STRIDING", "MLX5_LINEAR", "MLX5_WQ_SZ", "MLX5_NFRAGS", "MLX5_HEADROOM", "MLX5_WQE_BULK",
    "MLX5_REFILL_UNIT", "MLX5_INDEX_MASK", "MLX5_LOG_STRIDE", "MLX5_LOG_NUM_STRIDES", "MLX5_PAGES_PER_WQE",
    "MLX5_BIAS_MAX", "MLX5_SMP", "MLX5_SHINFO", "MLX5_PP_FRAGMENTS", "PP_SKBS_UNMARKED",
    # -- bnxt --: the aggregation ring's size (0: none), the header-data split threshold (-1: none) and
    # jumbo_thresh, page mode, BNXT_RX_PAGE_SIZE, an RX buffer skb's room from its headroom to its end, where RX
    # buffers come from (BN_HEAD_*), whether aggregation pages come from the page_pool (else alloc_page()),
    # napi_alloc_frag()'s SKB_DATA_ALIGN(rx_buf_size)
    "BN_AGG_COUNT", "BN_HDS", "BN_JUMBO", "BN_PAGE_MODE", "BN_AGG_PAGE", "BN_RX_ROOM", "BN_HEAD",
    "BN_AGG_POOL", "BN_FRAGSZ",
    # -- gve --: buffers from a page_pool (else own pages), the packet buffer size, header split, GRO_MAX_HEAD
    "GV_POOL", "GV_BUF_SIZE", "GV_HSPLIT", "GV_GRO_MAX_HEAD",
    # -- mana v6.9 above a page --: buffers from napi_alloc_frag(), of SKB_DATA_ALIGN(alloc_size) bytes, on a page of
    # at least get_order(alloc_size)
    "MANA_NAPI_FRAG", "MANA_FRAGSZ", "MANA_FRAG_ORDER",
    # -- TCP pressure --: __alloc_skb() outside NAPI first takes an sk_buff the NAPI skb cache holds (6.19; tun's
    # writes, tcp_collapse())
    "NC_OUTSIDE_NAPI",
)
(NCPUS, PAGE_SIZE, DRIVER, TRACE, PLOT, COST, IRQ_LATENCY, APP_UNLIMITED, APP_GAP, RCVBUF, STRICT_FIT, LARGE_FIT,
 FWD_DEFICIT_ONLY, DEFER_FREE, DEFER_LIMIT_MINUS_1, NC_CACHE_SIZE, NC_BULK, NC_FREE, PF_ORDER, PF_DOWN, RING_COUNT,
 RXMAX, RX_BUF_LEN, RING_ORDER, PUT_MODE, FRAME_SZ, BUILD_TRUESIZE, LEGACY, HEAD_KIND, HEAD_TRUESIZE, HEAD_FRAGSZ,
 COND_ROOM, COND_TS, COPYBREAK, CB_BUF_FRAGSZ, CB_BUILD_TS, CB_BUF_SIZE, TUN_SNDBUF, TF_ORDER, TUN_SMP, TUN_CHUNKS,
 TUN_MAX_ORDER, TUN_FRAG_LIMIT, VQ_HDR_LEN, VQ_MIN_BUF_LEN, VQ_PREMAPPED, VQ_OVERFLOW_FIX, VQ_HOLE_FOLD, VQ_REPOLL,
 VQ_FRAG_ORDER, VQ_L1, VQ_TS0, VQ_SHINFO, VQ_IP_ALIGN, VQ_MAX_FRAGS, VQ_COPY_ROOM, PAGE_POOL, PP_FRAGS,
 FQ_COUNT, FQ_REFILL_EVERY, FQ_SHORT_LEN, BUILD_OVERHEAD, FQ_HSPLIT, L1_CACHE_BYTES,
 DEFER_MAX,
 # -- mlx5 --
 MLX5_STRIDING, MLX5_LINEAR, MLX5_WQ_SZ, MLX5_NFRAGS, MLX5_HEADROOM, MLX5_WQE_BULK, MLX5_REFILL_UNIT,
 MLX5_INDEX_MASK, MLX5_LOG_STRIDE, MLX5_LOG_NUM_STRIDES, MLX5_PAGES_PER_WQE, MLX5_BIAS_MAX, MLX5_SMP, MLX5_SHINFO,
 MLX5_PP_FRAGMENTS, PP_SKBS_UNMARKED,
 BN_AGG_COUNT, BN_HDS, BN_JUMBO, BN_PAGE_MODE, BN_AGG_PAGE, BN_RX_ROOM, BN_HEAD,  # -- bnxt --
 BN_AGG_POOL, BN_FRAGSZ,
 GV_POOL, GV_BUF_SIZE, GV_HSPLIT, GV_GRO_MAX_HEAD,  # -- gve --
 MANA_NAPI_FRAG, MANA_FRAGSZ, MANA_FRAG_ORDER,  # -- mana v6.9 above a page --
 NC_OUTSIDE_NAPI,  # -- TCP pressure --
 CONFIG_SIZE) = range(len(CONFIG_FIELDS) + 1)
#: cfg[DRIVER]
DRIVER_ICE, DRIVER_COPYBREAK, DRIVER_TUN = 0, 1, 2
DRIVER_MANA = 3
DRIVER_VIRTIO = 4
DRIVER_LIBETH = 5
DRIVER_MLX5 = 8  # -- mlx5 --
DRIVER_BNXT = 6  # -- bnxt --
#: cfg[BN_HEAD] (profile feature bnxt_rx_head): page_pool fragments (6.12+), page_frag buffers with napi_build_skb()
#: (v6.9) or build_skb() (6.1)
BN_HEAD_PAGE_POOL, BN_HEAD_PAGE_FRAG_NAPI, BN_HEAD_PAGE_FRAG = 0, 1, 2
DRIVER_GVE = 7  # -- gve --
DRIVER_NTB = 9  # ntb_netdev (skbsim/fast/ntb.py): its entries in TunQueues, its ring counts in NTU, HW_NEXT, NTC

# -- st: the kernel's scalars ---------------------------------------------------------------------------
(ERR,  # the run's error code (ERR_* in layout.py): the compiled loop left its modelled ground
 # the page allocator: pages in use and their peak, its free ids' stack top, the next id never used,
 # MAX_PAGE_ORDER
 PG_IN_USE, PG_PEAK, PG_FREE_TOP, PG_NEXT, PG_MAX_ORDER,
 # the fault injector: the twister's position (random.Random's state: its 624 words in Faults.mt, then
 # this), and whether any rule is set
 F_MT_INDEX, F_ANY,
 # the frag lists' free rows: stack top, next row never used
 FL_TOP, FL_NEXT,
 # the NAPI caches' counters, all CPUs (sim._napi_cache_stats, _page_frag_stats)
 NC_GETS, NC_HITS, NC_REFILLS, NC_PUTS, NC_FLUSHES, NC_REFILL_FAILURES, SMALL_ALLOCS, SMALL_REFILLS,
 PF_ALLOCS, PF_REFILLS, PF_REUSES,
 # the UDP socket (udp_sock) and its queue (a ring of Socket.queue from SK_HEAD, SK_LEN long), queued
 # skbs' pages (Simulation.pinned), the reader (Simulation.app_next, app_waiting)
 RMEM, FWD, DEFICIT, MEMALLOC, SK_DROPS, ENQUEUED, CONSUMED, PEAK_RMEM, SK_HEAD, SK_LEN, READER_LEN, CONDENSED,
 PINNED, PEAK_PINNED, APP_NEXT, APP_WAITING,
 # the event heap's length, the last order given, the clock, whether the traffic is over, IPIs to send
 EV_LEN, EV_LAST, NOW, TRAFFIC_DONE, IPIS,
 # --trace records in Trace.records; the memory series' length, step and count
 TR_LEN, SR_LEN, SR_EVERY, SR_COUNT,
 # the run's and the driver's statistics
 PACKETS, BYTES, RING_DROPS, DELIVERED, TRUESIZE_TOTAL, POLLS, TIME_SQUEEZE, IRQS,
 D_FRAMES, D_BYTES, D_NIC_FRAMES, D_RING_DROPS, D_OVERSIZE, D_USED, D_REUSED, D_RELEASED, D_PAGES_ALLOC,
 D_POLLS, D_COPIED, D_BYTES_COPIED, D_FRAMES_DROPPED, D_SKB_FAILURES, D_BUF_FAILURES,
 CB_N_1K, CB_N_SMALL, CB_N_FRAG, CB_N_BUILD, TUN_ROUTE_ALLOC, TUN_ROUTE_BUILD, TUN_EAGAIN, TUN_EINVAL,
 # page_pool: the CPU whose softirq (or bottom-half-disabled section) is running, plus one; 0 in process
 # context (kernel.cpu and in_softirq(), which decide direct recycling)
 PP_SOFTIRQ,
 ST_SIZE) = range(79)

# -- pcpu: the per-CPU scalars ---------------------------------------------------------------------------
(  # sim._CpuState's scheduling; the frames the NIC (or tun's writer) queued, the driver took and it dropped
 SCHEDULED, BUDGET_LEFT, ROUND_START, BUSY_UNTIL, Q_NIC_FRAMES, Q_FRAMES, Q_DROPPED,
 # softnet_data's defer list: its length, its IPI on the way, the IPI's place among those the last read sent
 DEFER_LEN, DEFER_IPI, IPI_SENT,
 # napi_alloc_cache: the skb cache's length, page_frag_1k (page, offset), the NAPI page_frag_cache (page,
 # offset, size, pagecnt_bias)
 NC_LEN, P1K_PAGE, P1K_OFFSET, PF_PAGE, PF_OFFSET, PF_SIZE, PF_BIAS,
 # the ice / copybreak ring's indices
 NTU, NTC, NTA, FIRST_DESC, TAIL, HW_NEXT,
 # tun: the writer's task_frag (page, offset, size), sk_wmem_alloc, the written skbs' FIFO (head, length)
 TF_PAGE, TF_OFFSET, TF_SIZE, WMEM, HQ_HEAD, HQ_LEN,
 # virtio_net's receive queue: rq->alloc_frag (page, offset, size), the EWMA of packet lengths, rq->last_dma's
 # block (a page id, -1 for none), refill_work() pending; NTU, HW_NEXT and NTC count buffers posted, used by the
 # device and taken by the driver (never wrapped: a slot is the count modulo the ring)
 VQ_FRAG_PAGE, VQ_FRAG_OFFSET, VQ_FRAG_SIZE, VQ_EWMA, VQ_LAST_DMA, VQ_REFILL,
 # -- gve --: its lists of buffer states (free, recycled, used: each a FIFO of GveRings.lists, head and length),
 # its buffers taken by the driver, used by the device and posted (counts never wrapped: a slot of GveRings.ring
 # is the count modulo the ring)
 GV_FREE_HEAD, GV_FREE_LEN, GV_RECYCLED_HEAD, GV_RECYCLED_LEN, GV_USED_HEAD, GV_USED_LEN, GV_CLEAN, GV_NIC, GV_TAIL,
 PCPU_SIZE) = range(45)

# -- an skb, as queues and lists hold it ---------------------------------------------------------------
#: the columns of a row standing for an skb (struct sk_buff) in the socket queue, a tun queue, a defer
#: list and a poll's batch: its head (a page id, or SLAB_TAG plus a kmem cache object), its frags (-1, a
#: page id, or FL_TAG plus a row of Frags.fl), its sk_buff (an object of skbuff_head_cache), its truesize,
#: the CPU that allocated it, its bytes in the head and in frags (tun: the frame's length in SKB_HLEN)
SKB_HEAD, SKB_FRAG, SKB_OBJ, SKB_TS, SKB_CPU, SKB_HLEN, SKB_DLEN, SKB_FIELDS = range(8)

# -- the records ------------------------------------------------------------------------------------------
#: page[pid]: a page's reference count and order; free: ids given back (a stack); counts[order]:
#: allocated and freed by order (orders 0 .. MAX_ORDERS - 1)
Pages = namedtuple("Pages", ("page", "free", "counts"))
PAGE_REF, PAGE_ORDER, PAGE_FIELDS = range(3)
ALLOCATED, FREED = range(2)
MAX_ORDERS = 32
#: rules[layer]: a FaultRule's fields, plus the draw threshold: fail when the 53-bit draw behind
#: random.random() is below it (ceil(probability * 2**53)); -1 when probability is 1 (no draw); mt:
#: random.Random's 624 words
Faults = namedtuple("Faults", ("rules", "mt"))
FR_ACTIVE, FR_THRESHOLD, FR_INTERVAL, FR_TIMES, FR_SPACE, FR_COUNT, FR_INJECTED, FR_SIZE = range(8)
MT_N = 624
#: SLUB (skbsim/fast/slub.py): caches[c] is kmem_cache c with its one kmem_cache_node: the node partial
#: list's length, head and tail (slots linked through SLAB_PREV / SLAB_NEXT), its free slots' stack top and
#: the next slot never used, live objects, the slab order and objects of a slab (s->oo) and the smallest
#: ones (s->min), the fault layer, failed allocations, min_partial, cpu_partial_slabs (0 without a CPU
#: partial list), whether a slab on a CPU partial list is frozen (up to 6.7), where its slots start in slot
#: and slotfree and its words in stack (objs + 1 a slot: the free objects, last freed first, then the next
#: never handed out), how many slots it may use, and its slabs (node_nr_slabs());
#: slot[global slot]: a slab (struct slab): its free objects' stack top, page, objects, objects on its own
#: freelist, frozen, on the node list, and its neighbours there; cpu[c, cpu]: kmem_cache_cpu: its slab
#: (NO_SLAB for none), the objects on its lockless freelist, its partial list's length; cpu_partial[c, cpu]:
#: that partial list, its head last
Slabs = namedtuple("Slabs", ("caches", "stack", "slot", "slotfree", "cpu", "cpu_partial"))
(K_NPARTIAL, K_NODE_HEAD, K_NODE_TAIL, K_FREE_TOP, K_NEXT, K_LIVE, K_ORDER, K_OBJS, K_MIN_ORDER, K_MIN_OBJS,
 K_LAYER, K_FAILED, K_MIN_PARTIAL, K_CPS, K_FROZEN_PARTIAL, K_SLOT_BASE, K_SLOTS, K_STACK_BASE, K_NR_SLABS,
 K_SIZE) = range(20)
(SLAB_TOP, SLAB_PAGE, SLAB_OBJECTS, SLAB_FREE, SLAB_FROZEN, SLAB_ON_NODE, SLAB_PREV, SLAB_NEXT,
 SLAB_FIELDS) = range(9)
C_SLAB, C_FREE, C_NPARTIAL, C_FIELDS = range(4)
NO_SLAB = -1
#: the caches of a run, by index: skbuff_head_cache, skbuff_small_head (where the release has it), then
#: the kmalloc caches tun heads may come from (np.int64: passed to compiled functions as a value, not a
#: literal, so that they are compiled once)
CACHE_SKB, CACHE_SMALL, CACHE_KMALLOC = np.int64(0), np.int64(1), 2
#: rows of Slabs.caches (a fixed number: one compiled loop serves every run)
CACHES = 16
#: fl rows: [count, page ids..., free-stack slot] (the last column of row i is entry i of the free stack)
Frags = namedtuple("Frags", ("fl",))
#: skb[cpu]: each CPU's skb cache (sk_buff objects), NC_LEN of them
NapiCaches = namedtuple("NapiCaches", ("skb",))
#: defer[cpu, j]: the skbs (SKB_* columns) waiting on the CPU's defer list, DEFER_LEN of them
Cpus = namedtuple("Cpus", ("defer",))
#: buf[cpu, slot]: each slot's buffer (struct ice_rx_buf: a page id, its pagecnt_bias, the page count
#: sampled when cleaned); desc[cpu, slot]: each descriptor's status (DD_*), length and header length;
#: copy: copybreak's table by length (CB_* rows)
Rings = namedtuple("Rings", ("buf", "desc", "copy"))
BUF_PAGE, BUF_BIAS, BUF_PGCNT, BUF_FIELDS = range(4)
DESC_DD, DESC_LEN, DESC_HLEN, DESC_FIELDS = range(4)
CB_KIND, CB_TRUESIZE, CB_FRAGSZ = range(3)
#: tab: the per-length table (T_* columns, filled by tun._TunLengths); delivered: skbs by frame length;
#: queue[cpu, j]: each queue's FIFO of written skbs not yet taken by the stack (SKB_* columns).  ntb uses the
#: same record for its transport's entries (skbsim/fast/ntb.py says how)
TunQueues = namedtuple("TunQueues", ("tab", "delivered", "queue"))
#: queue: the queued skbs (SKB_* columns); pin[pid]: queued skbs keeping page pid alive
Socket = namedtuple("Socket", ("queue", "pin"))
#: heap[i]: an event's time, order, kind and CPU (Simulation.events' tuples), a binary heap of EV_LEN
Events = namedtuple("Events", ("heap",))
EV_TIME, EV_ORDER, EV_KIND, EV_CPU, EV_FIELDS = range(5)
#: records: rows of T_* columns (layout.py); table[frame length, nr_frags]: skbs and their truesize;
#: series: (time, pages in use, rmem) points
Trace = namedtuple("Trace", ("records", "table", "series"))
TB_COUNT, TB_TRUESIZE = range(2)

#: virtio_net: dma[pid], the count of a premapped frag block's struct virtnet_rq_dma (its posted buffers, plus
#: one while it is the queue's current block); buf[cpu, slot] / used[cpu, slot]: each posted buffer (VB_*
#: columns) and what the device wrote into it (VU_*)
VirtioQueues = namedtuple("VirtioQueues", ("dma", "buf", "used"))
VB_PAGE, VB_START, VB_LEN, VB_FIELDS = range(4)
VU_NUM, VU_LEN, VU_CODE, VU_FIELDS = range(4)

#: struct page_pool, a row of pool per pool (PP_* columns: its constants from page_pool_create(), its
#: state and its statistics in PP_STATS order); cache[p]: its alloc cache (page ids, PP_CACHE_LEN of them);
#: ring[p]: its ptr_ring (PP_RING_LEN page ids from PP_RING_HEAD, circular); pp[pid]: page->pp (the pool
#: plus one, 0 for a page no pool owns); ref[pid]: page->pp_ref_count
PagePool = namedtuple("PagePool", ("pool", "cache", "ring", "pp", "ref"))
(  # constants: the pool's NAPI instance's CPU, pool->p.order, the ring's and the cache's sizes, the refill
 # batch, BIAS_MAX, the fragment alignment, whether fragments are counted (6.7+: always; 6.1: with
 # PP_FLAG_PAGE_FRAG) and always in pp_ref_count, the direct recycling rule (PP_DIRECT_*), whether a reused
 # frag page counts recycle_cached (pp_frag_stats)
 PP_NAPI_CPU, PP_ORDER, PP_QSIZE, PP_CACHE_SIZE, PP_REFILL, PP_BIAS_MAX, PP_FRAG_ALIGN, PP_FRAG_COUNTED,
 PP_REF_ALWAYS, PP_DIRECT, PP_CACHED_ON_REUSE,
 # state: the cache's length, the ring's head and length, the frag page and its offset and users,
 # pages_state_hold_cnt and _release_cnt, destroyed
 PP_CACHE_LEN, PP_RING_HEAD, PP_RING_LEN, PP_FRAG_PAGE, PP_FRAG_OFFSET, PP_FRAG_USERS, PP_HOLD, PP_RELEASE,
 PP_DESTROYED,
 # the statistics (skbsim.net.page_pool.PP_STATS, in that order)
 PP_ALLOC_FAST, PP_ALLOC_SLOW, PP_ALLOC_SLOW_HO, PP_ALLOC_EMPTY, PP_ALLOC_REFILL, PP_ALLOC_WAIVE,
 PP_RECYCLE_CACHED, PP_RECYCLE_CACHE_FULL, PP_RECYCLE_RING, PP_RECYCLE_RING_FULL, PP_RECYCLE_RELEASED_REF,
 PP_SIZE) = range(32)
PP_STATS_FIRST = PP_ALLOC_FAST
#: PP_DIRECT: who may recycle into the cache (profile feature pp_direct_recycle)
PP_DIRECT_NEVER_FROM_SKB, PP_DIRECT_SKB_FREE, PP_DIRECT_EVERY_PUT = 0, 1, 2

#: libeth's fill queues (struct libeth_fq), a row per fill queue (cpu * FQ_COUNT + q, its page_pool's row
#: too): fq[row] its FQ_* columns (buffer length and truesize; the NIC's next slot; empty slots and the
#: lowest of them; skbs built on its buffers); fqe[row, slot]: each buffer (struct libeth_fqe: page id, -1
#: for none, truesize, written by the NIC and not yet cleaned); comp[cpu, j]: the frames the NIC completed
#: and the driver has not cleaned (C_* columns: fill queue, first slot, buffers, length, header length with
#: header split: its header buffer is the header queue's slot of the first payload buffer), a FIFO from
#: pcpu NTC, sim._pending()'s count long
LibethFqs = namedtuple("LibethFqs", ("fq", "fqe", "comp"))
FQ_BUF_LEN, FQ_TRUESIZE, FQ_NEXT_FREE, FQ_EMPTY, FQ_LO, FQ_SKBS, FQ_FIELDS = range(7)
FQE_PAGE, FQE_TRUESIZE, FQE_DONE, FQE_FIELDS = range(4)
C_FQ, C_START, C_NBUFS, C_LEN, C_HDR_LEN, C_FIELDS = range(6)

#: cb[obj]: TCP_SKB_CB(skb) and the GSO facts of a TCP skb, kept with its sk_buff as skb->cb is: the row is
#: the skb's SKB_OBJ (its skbuff_head_cache object). CB_FLOW is the flow (the socket's index; -1: not TCP),
#: CB_SEQ .. CB_TSECR are struct tcp_skb_cb's fields the model keeps (skbsim.net.ipv4.tcp.tcp_skb_cb),
#: CB_SEGS and CB_GSO_SIZE skb_shinfo()'s gso_segs and gso_size; -- TCP capture --: CB_FRAME the capture frame
#: the skb was built from (its number from 0; -1: a sender's).  One row in runs without TCP.
SkbCb = namedtuple("SkbCb", ("cb",))
(CB_FLOW, CB_SEQ, CB_END_SEQ, CB_ACK_SEQ, CB_TCP_FLAGS, CB_DOFF, CB_WINDOW, CB_TSVAL, CB_TSECR, CB_SEGS, CB_GSO_SIZE,
 CB_FRAME, CB_FIELDS) = range(13)

# -- mlx5 --
#: mlx5's RQs (struct mlx5e_rq), a row per queue (its page_pool's row too): rq[cpu] its RQ_* columns (the WQE
#: the NIC writes into and, striding, its next stride; the next WQE to post; WQEs waiting to be posted; the
#: completions' FIFO: head and length); wqe[cpu, ix]: each WQE's state (W_EMPTY, W_POSTED, W_WRITTEN) and a
#: striding WQE's consumed strides; fp[cpu, slot]: each page slot (struct mlx5e_frag_page: page id, fragment
#: references handed to skbs, held by the driver), a striding WQE's pages at slots ix * pages_per_wqe on;
#: frag[ix, f]: a legacy WQE's fragments (mlx5e_init_frags_partition(): page slot, offset, last in its
#: page); comp[cpu, j]: the completions not yet cleaned (CQ_* columns; kind CQ_WQE, CQ_MPWQE or CQ_FILLER);
#: geo[f]: a legacy WQE's fragment sizes and strides; cache[cpu]: 6.1's RQ page cache (page ids, a FIFO of
#: RQ_CACHE_LEN from RQ_CACHE_HEAD)
Mlx5Rqs = namedtuple("Mlx5Rqs", ("rq", "wqe", "fp", "frag", "comp", "geo", "cache"))
(RQ_HW_HEAD, RQ_HW_STRIDE, RQ_CI, RQ_MISSING, RQ_COMP_HEAD, RQ_COMP_LEN, RQ_CACHE_HEAD, RQ_CACHE_LEN,
 RQ_FIELDS) = range(9)
W_STATE, W_CONSUMED, W_FIELDS = range(3)
W_EMPTY, W_POSTED, W_WRITTEN = 0, 1, 2
FP_PAGE, FP_FRAGS, FP_HELD, FP_FIELDS = range(4)
WF_SLOT, WF_OFFSET, WF_LAST, WF_FIELDS = range(4)
CQ_KIND, CQ_IX, CQ_STRIDE, CQ_CSTRIDES, CQ_LEN, CQ_FIELDS = range(6)
CQ_WQE, CQ_MPWQE, CQ_FILLER = 0, 1, 2
G_SIZE, G_STRIDE, G_FIELDS = range(3)

# -- bnxt --
#: bnxt's rings (struct bnxt_rx_ring_info): rx[cpu, slot] / agg[cpu, slot] each RX and aggregation buffer (BR_*:
#: its page id, -1 for none, and whether the NIC wrote into it and the driver has not cleaned it); comp[cpu, j]
#: the frames the NIC completed and the driver has not cleaned (BC_*: RX slot, bytes there, aggregation buffers,
#: the first's slot, frame length, eth_get_headlen()), a FIFO from pcpu NTC; copy[len]: what napi_alloc_skb(len)
#: gives (CP_*: head kind, truesize, page_frag fragment size, room from its headroom to its end); kinds[kind]:
#: the skbs handed to GRO by kind (0: built on an RX buffer, 1 + head kind: napi_alloc_skb()'s).  The NIC's
#: next RX slot is pcpu HW_NEXT, its next aggregation slot pcpu TAIL.
BnxtRings = namedtuple("BnxtRings", ("rx", "agg", "comp", "copy", "kinds"))
BR_PAGE, BR_DONE, BR_FIELDS = range(3)
BC_SLOT, BC_HEAD_LEN, BC_NAGG, BC_AGG, BC_LEN, BC_HLEN, BC_FIELDS = range(7)
CP_KIND, CP_TS, CP_FRAGSZ, CP_ROOM, CP_FIELDS = range(5)

# -- gve --
#: gve's DQO queues (struct gve_rx_ring): bs[cpu, i] each buffer state (GB_*: page id, -1 for none, offset in the
#: page, its truesize, pagecnt_bias and last_single_ref_offset with own pages); lists[cpu, GV_LIST_*] the free,
#: recycled and used lists of states (FIFOs, pcpu GV_*_HEAD / _LEN); ring[cpu, n % count] the states posted to the
#: buffer queue (pcpu GV_NIC up to GV_TAIL) and those the device used for frames not yet cleaned (GV_CLEAN up to
#: GV_NIC); comp[cpu, j] those frames (GC_*: buffers, length, the frame's code: header-split length and the bytes
#: in the skb's head once GRO is done with it, skbsim.fast.gve_setup.GveCodes), a FIFO from pcpu NTC; copy[len]
#: what napi_alloc_skb(len) gives (CP_* columns); kinds[kind]: the skbs handed to GRO by napi_alloc_skb()'s head kind
GveRings = namedtuple("GveRings", ("bs", "lists", "ring", "comp", "copy", "kinds"))
GB_PAGE, GB_OFFSET, GB_SIZE, GB_BIAS, GB_LAST_SINGLE, GB_FIELDS = range(6)
GV_LIST_FREE, GV_LIST_RECYCLED, GV_LIST_USED = 0, 1, 2
GC_NBUFS, GC_LEN, GC_CODE, GC_FIELDS = range(4)
#: GC_CODE: header-split length * GV_CODE_SPLIT + bytes in the head
GV_CODE_SPLIT = 1 << 20

Kernel = namedtuple("Kernel", ("cfg", "st", "pcpu", "pages", "faults", "slabs", "frags", "nc", "cpus", "rings", "tun",
                               "sock", "events", "batch", "trace", "pp", "virtio", "lb", "skbcb",
                               "mlx",  # -- mlx5 --
                               "bnxt", "gve",  # -- bnxt --, -- gve --
                               # -- GRO -- (skbsim.fast.gro.Gro)
                               "gro",
                               # -- TCP --: TcpSocks, TcpSenders, TcpFlows (one row each in other runs)
                               "tcp", "tsnd", "tfl"))


def _zeros(*shape, dtype=np.int64):
    return np.zeros(shape, dtype)


def new_scalars() -> np.ndarray:
    st = _zeros(ST_SIZE)
    st[APP_WAITING] = 1  # the reader starts blocked in recvmsg(), waiting for the first datagram
    st[SR_EVERY] = 1
    return st


def new_pcpu(ncpus: int, budget: int) -> np.ndarray:
    pcpu = _zeros(ncpus, PCPU_SIZE)
    pcpu[:, BUDGET_LEFT] = budget
    pcpu[:, P1K_PAGE] = -1
    pcpu[:, PF_PAGE] = -1
    pcpu[:, TF_PAGE] = -1
    pcpu[:, VQ_FRAG_PAGE] = -1
    pcpu[:, VQ_LAST_DMA] = -1
    return pcpu


def new_skb_cb(objects: int) -> SkbCb:
    """A control block for each of `objects` sk_buff objects (1 in runs without TCP)."""
    cb = _zeros(max(objects, 1), CB_FIELDS)
    cb[:, CB_FLOW] = -1
    return SkbCb(cb)


def new_pages(capacity: int) -> Pages:
    return Pages(_zeros(capacity, PAGE_FIELDS), _zeros(capacity), _zeros(MAX_ORDERS, 2))


#: a kmem cache as new_slabs() takes it (setup.slab_spec() reads it from the reference cache)
SlabSpec = namedtuple("SlabSpec", ("order", "objs", "min_order", "min_objs", "layer", "min_partial",
                                   "cpu_partial_slabs", "frozen_partial", "slots"))


def new_slabs(caches, ncpus: int) -> Slabs:
    """The kmem caches: caches[i] is cache i's SlabSpec (or None), the rest unused; no slab yet."""
    table = _zeros(CACHES, K_SIZE)
    table[:, K_OBJS] = 1
    table[:, K_NODE_HEAD] = table[:, K_NODE_TAIL] = NO_SLAB
    slot_base = stack_base = 0
    longest = 1
    for c, spec in enumerate(caches):
        if spec is None:
            continue
        row = table[c]
        row[K_ORDER], row[K_OBJS] = spec.order, spec.objs
        row[K_MIN_ORDER], row[K_MIN_OBJS] = spec.min_order, spec.min_objs
        row[K_LAYER], row[K_MIN_PARTIAL], row[K_CPS] = spec.layer, spec.min_partial, spec.cpu_partial_slabs
        row[K_FROZEN_PARTIAL] = spec.frozen_partial
        row[K_SLOT_BASE], row[K_SLOTS], row[K_STACK_BASE] = slot_base, spec.slots, stack_base
        slot_base += spec.slots
        stack_base += spec.slots * (spec.objs + 1)
        # put_cpu_partial() drains at cpu_partial_slabs; get_partial_node() adds up to half of it plus one
        longest = max(longest, spec.cpu_partial_slabs + 1, spec.cpu_partial_slabs // 2 + 2)
    slots = max(1, slot_base)
    cpu = _zeros(CACHES, ncpus, C_FIELDS)
    cpu[:, :, C_SLAB] = NO_SLAB
    return Slabs(table, _zeros(max(1, stack_base), dtype=np.int32), _zeros(slots, SLAB_FIELDS), _zeros(slots), cpu,
                 _zeros(CACHES, ncpus, longest))


def new_rings(ncpus: int, count: int, bias: int, copy) -> Rings:
    buf = _zeros(ncpus, count, BUF_FIELDS)
    buf[:, :, BUF_PAGE] = -1
    buf[:, :, BUF_BIAS] = bias
    return Rings(buf, _zeros(ncpus, count, DESC_FIELDS), copy)


def new_virtio_queues(pages: int, ncpus: int, count: int) -> VirtioQueues:
    return VirtioQueues(_zeros(pages), _zeros(ncpus, count, VB_FIELDS), _zeros(ncpus, count, VU_FIELDS))


def new_page_pools(npools: int, cache_size: int, ring_size: int, pages: int) -> PagePool:
    pool = _zeros(max(1, npools), PP_SIZE)
    pool[:, PP_FRAG_PAGE] = -1
    return PagePool(pool, _zeros(max(1, npools), cache_size), _zeros(max(1, npools), ring_size), _zeros(pages),
                    _zeros(pages))


def new_libeth_fqs(nfqs: int, count: int, ncpus: int, completions: int) -> LibethFqs:
    fqe = _zeros(max(1, nfqs), count, FQE_FIELDS)
    fqe[:, :, FQE_PAGE] = -1
    return LibethFqs(_zeros(max(1, nfqs), FQ_FIELDS), fqe, _zeros(ncpus, completions, C_FIELDS))


def new_bnxt_rings(ncpus: int, count: int, agg_count: int, copy) -> BnxtRings:  # -- bnxt --
    rx = _zeros(ncpus, max(1, count), BR_FIELDS)
    rx[:, :, BR_PAGE] = -1
    agg = _zeros(ncpus, max(1, agg_count), BR_FIELDS)
    agg[:, :, BR_PAGE] = -1
    return BnxtRings(rx, agg, _zeros(ncpus, max(1, count), BC_FIELDS), copy, _zeros(4))


def new_gve_rings(ncpus: int, count: int, copy) -> GveRings:  # -- gve --
    bs = _zeros(ncpus, count, GB_FIELDS)
    bs[:, :, GB_PAGE] = -1
    return GveRings(bs, _zeros(ncpus, 3, count), _zeros(ncpus, count), _zeros(ncpus, count, GC_FIELDS), copy,
                    _zeros(4))


def new_tun_queues(tab, ncpus: int, inflight: int) -> TunQueues:
    return TunQueues(tab, _zeros(tab.shape[0]), _zeros(ncpus, inflight, SKB_FIELDS))


# -- mlx5 --
def new_mlx5_rqs(ncpus: int, wq_sz: int, slots: int, nfrags: int, completions: int, cache: int) -> Mlx5Rqs:
    fp = _zeros(ncpus, slots, FP_FIELDS)
    fp[:, :, FP_PAGE] = -1
    return Mlx5Rqs(_zeros(ncpus, RQ_FIELDS), _zeros(ncpus, wq_sz, W_FIELDS), fp, _zeros(wq_sz, nfrags, WF_FIELDS),
                   _zeros(ncpus, completions, CQ_FIELDS), _zeros(nfrags, G_FIELDS), _zeros(ncpus, cache))
# -- TCP --
#: TcpSocks (skbsim/fast/tcp.py): the TCP receivers of a run with a socket per flow.  tc[TC_*]: the run's
#: constants (the namespace's sysctls, the release's rules as codes: skbsim.net.ipv4.tcp_input.rule_code());
#: sk[flow, TS_*]: one receiver's struct sock, inet_connection_sock and tcp_sock scalars (skbsim.net.ipv4.tcp
#: tcp_sock's fields of the same names; TS_PRED is pred_flags' window, -1 with header prediction off;
#: TS_COMP_TIMER compressed_ack_timer, -1 for none) and its namespace's clock and TcpExt counters (TS_MIB + n
#: in TCPEXT order); rq[flow, j]: its receive queue, a ring from sk[flow, TS_RQ_HEAD] of sk[flow, TS_RQ_LEN]
#: skbs (SKB_* columns, then RQ_*), their TCP_SKB_CB in SkbCb at the row SKB_OBJ;
#: acks[n]: the ACKs sent (ACK_* columns: flow, ack_seq, raw window, TSval or -1), tc[TC_ACKS] of them,
#: until the caller takes them; eaten[n]: the skbs a read finished with, or a segment's step dropped from the
#: out-of-order queue or coalesced there (SKB_* columns; tc[TC_FREED]: how many of them the caller frees whole),
#: TC_EATEN of them; oq[flow, j]: the out-of-order queue in sequence order, a ring from TS_OFO_HEAD
TcpSocks = namedtuple("TcpSocks", ("tc", "sk", "rq", "acks", "eaten", "oq"))
(TC_HZ, TC_RMEM2, TC_ADV_WIN_SCALE, TC_MODERATE_RCVBUF, TC_LOW_RTT, TC_COMP_SACK_NR, TC_BACKLOG_ACK_DEFER,
 TC_R_SCALING_CLAMP, TC_R_NOMEM, TC_R_ADMIT, TC_R_SEQUENCE, TC_R_RTT_UPDATE, TC_R_RTT_TS, TC_R_SPACE,
 TC_OFO_MEASURE, TC_PAGE_SIZE, TC_HEAD_STRUCT, TC_MAX_SKB_FRAGS, TC_MIN_RCVBUF, TC_ACKS, TC_EATEN, TC_ERR,
 # a run with a socket per flow (skbsim/fast/tcp_run.py, sim.Simulation and skbsim.sockets.Sockets): whether this
 # is one, the RTT, the reader (TC_APP_GAP: -1 unlimited, 0 never, else ns between reads) and its read size (-1:
 # all), the time of the last skb or read, the TCP drops, the skbs delivered, the flows touched by this poll,
 # the memory series' Thinned (count, every, length), the pinned pages' count epoch
 TC_RUN, TC_RTT_NS, TC_APP_GAP, TC_READ_SIZE, TC_LAST_NS, TC_TCP_DROPS, TC_DELIVERED, TC_TOUCHED,
 TC_SR_COUNT, TC_SR_EVERY, TC_SR_LEN, TC_EPOCH,
 # a frame length whose tun skb the run has not read from the model yet (the run stops; tcp_engine redoes it)
 TC_WANT_LEN,
 # SACK compression: net.ipv4.tcp_comp_sack_delay_ns and _rtt_percent, the release's rule (1: rtt_percent)
 TC_COMP_SACK_DELAY_NS, TC_COMP_SACK_PCT, TC_R_COMP_SACK, TC_FIELDS) = range(39)
# -- TCP capture --: a capture's TCP flows replayed (skbsim/fast/tcp_capture.py): whether this run is one, the packet
# number of the first frame of the chunk in TcpFlows.capture, the flows a skb has reached so far (their order),
# the flow whose receiver the run stopped to set up first (tcp_capture.CaptureSetups)
TC_CAPTURE, TC_CAP_BASE, TC_CAP_SEEN, TC_WANT_FLOW = range(TC_FIELDS, TC_FIELDS + 4)
TC_FIELDS += 4
# -- TCP pressure --: tcp_prune_queue()'s and tcp_prune_ofo_queue()'s rule codes, SKB_MAX_ORDER(0, 0) (the most
# tcp_collapse() copies into one skb), the CPU a prune runs on (skbsim/fast/tcp_pressure.py)
TC_R_PRUNE, TC_R_PRUNE_OFO, TC_COLLAPSE_MAX, TC_PRUNE_CPU = range(TC_FIELDS, TC_FIELDS + 4)
TC_FIELDS += 4
(TS_RCVBUF, TS_SNDBUF, TS_RMEM, TS_FWD, TS_USERLOCKS, TS_DROPS, TS_RCVLOWAT, TS_MEM_PAGES, TS_SOCKET,
 TS_ACK_PENDING, TS_ACK_QUICK, TS_ACK_PINGPONG, TS_ACK_ATO, TS_ACK_TIMEOUT, TS_ACK_LRCVTIME, TS_ACK_LAST_SEG,
 TS_ACK_RCV_MSS, TS_RTO, TS_DELACK_MAX, TS_DELACK_PENDING,
 TS_RCV_NXT, TS_COPIED_SEQ, TS_RCV_WUP, TS_RCV_WND, TS_RCV_MWND_SEQ, TS_RCV_SSTHRESH, TS_WINDOW_CLAMP, TS_ADVMSS,
 TS_MSS_CACHE, TS_HEADER_LEN, TS_SCALING_RATIO, TS_RCVQ_SPACE, TS_RCVQ_SEQ, TS_RCVQ_TIME, TS_RTT_US, TS_RTT_SEQ,
 TS_RTT_TIME, TS_RTT_LAST_TSECR, TS_MSTAMP, TS_PRED, TS_SND_WND, TS_SND_UNA, TS_SND_NXT, TS_SRTT, TS_NUM_SACKS,
 TS_COMPRESSED_ACK, TS_COMP_TIMER, TS_TSQ_FLAGS, TS_RCV_ISN, TS_TSTAMP_OK, TS_SACK_OK, TS_SND_WSCALE,
 TS_RCV_WSCALE, TS_SAW_TSTAMP, TS_RCV_TSVAL, TS_RCV_TSECR, TS_TS_RECENT, TS_TS_OFFSET, TS_LAST_TSVAL, TS_RCVMEM,
 TS_NOW_US, TS_COLLAPSE_COPIED, TS_RQ_HEAD, TS_RQ_LEN, TS_OFO_LEN, TS_OFO_HEAD, TS_COMP_RCV_NXT, TS_DUP_ACK,
 TS_MIB) = range(69)
#: the TcpExt counters (skbsim.net.ipv4.tcp.TCPEXT), TS_MIB + n
TS_FIELDS = TS_MIB + 18
#: a queued skb's row beyond SKB_*: its frags, its head's room after the tail (end - tail: skb_tailroom() while it
#: is linear, what skb_condense() may pull in), whether its head is a page fragment, SKB_TRUESIZE(end),
#: skb->pp_recycle (-- TCP through NAPI drivers --: a page_pool driver's skbs are marked for recycling; the ones
#: tcp_collapse() makes are not)
RQ_NR_FRAGS, RQ_TAILROOM, RQ_HEAD_FRAG, RQ_END_TS, RQ_PP_RECYCLE, RQ_FIELDS = range(SKB_FIELDS, SKB_FIELDS + 6)
ACK_FLOW, ACK_SEQ, ACK_WINDOW, ACK_TSVAL, ACK_FIELDS = range(5)


def new_tcp_socks(tc, flows: int, queue: int, acks: int) -> TcpSocks:
    """TcpSocks for flows receivers of at most queue skbs queued each, and acks ACKs between two takes."""
    sk = _zeros(max(1, flows), TS_FIELDS)
    sk[:, TS_PRED] = -1
    sk[:, TS_COMP_TIMER] = -1
    return TcpSocks(tc, sk, _zeros(max(1, flows), queue, RQ_FIELDS), _zeros(acks, ACK_FIELDS),
                    _zeros(queue, SKB_FIELDS + 2), _zeros(max(1, flows), queue, RQ_FIELDS))
#: TcpSenders (skbsim/fast/tcp_sender.py): the synthetic senders (skbsim.tcp_sender.TcpSenders). link[LK_*]:
#: the link and what the senders share (SN_WRITTEN -1: always more to send; times -1: none); snd[flow, SN_*]:
#: each TcpSender; flight[flow, j]: its in_flight segments (FL_*), a ring from SN_FL_HEAD; pushes[n]: the
#: callbacks asked for (time, action A_*, flow), link[LK_PUSHES] of them; frames[n]: the frames sent (FR_*),
#: link[LK_FRAMES] of them, until the caller takes them
TcpSenders = namedtuple("TcpSenders", ("link", "snd", "flight", "pushes", "frames"))
(LK_FLOWS, LK_FRAMES_LEFT, LK_PERIOD_UNITS, LK_LINK_UNIT, LK_LINK_FREE, LK_WRITE_PERIOD, LK_SLOT_PENDING,
 LK_NEXT_TURN, LK_RTO_NS, LK_STOPPED, LK_STOPPED_AT, LK_MESSAGES, LK_SIZE, LK_PUSHES, LK_FRAMES, LK_ERR,
 LK_FIELDS) = range(17)
(SN_SND_UNA, SN_SND_NXT, SN_RIGHT_EDGE, SN_WSCALE, SN_MSS, SN_TIMESTAMPS, SN_HEADER_LEN, SN_IP_ID, SN_TS_BASE,
 SN_WRITTEN, SN_WRITES, SN_WRITE_START, SN_WRITE_WAKE, SN_TSECR, SN_PERSIST_DUE, SN_BACKOFF, SN_RTO_DUE,
 SN_RTO_EVENT, SN_RTO_BACKOFF, SN_PROBE_PENDING, SN_REXMIT_PENDING, SN_STARTED, SN_FRAMES, SN_SEGMENTS,
 SN_BYTES_SENT, SN_RETRANSMITS, SN_WINDOW_PROBES, SN_ZW_PROBES, SN_FL_HEAD, SN_FL_LEN, SN_FIELDS) = range(31)
FL_SEQ, FL_LEN, FL_PSH, FL_FIELDS = range(4)
FR_FLOW, FR_LEN, FR_SEQ, FR_PAYLOAD, FR_FLAGS, FR_TSVAL, FR_TSECR, FR_IP_ID, FR_FIELDS = range(9)
#: a sender's callbacks (TcpSenders' push actions "send", "persist", "rto", "write")
A_SEND, A_PERSIST, A_RTO, A_WRITE = range(4)


def new_tcp_senders(link, flows: int, flight: int, pushes: int, frames: int) -> TcpSenders:
    """TcpSenders for flows senders of up to flight segments in flight each; pushes and frames between takes."""
    snd = _zeros(max(1, flows), SN_FIELDS)
    for col in (SN_PERSIST_DUE, SN_RTO_DUE, SN_RTO_EVENT):
        snd[:, col] = -1
    return TcpSenders(link, snd, _zeros(max(1, flows), flight, FL_FIELDS), _zeros(pushes, 3), _zeros(frames, FR_FIELDS))
#: TcpFlows (skbsim/fast/tcp_run.py): what skbsim.sockets.TcpFlow keeps of each flow beside its socket: fl[flow,
#: F_*] (F_DROPS + n: drops by tcp.DROP_REASONS[n]; times -1: none), json[flow, j]: its JSON series' points
#: (SERIES_KEYS: time in ns, window, rmem_alloc, rcvbuf, bytes received), F_JS_LEN of them; ackq[flow, j]: the
#: ACKs on their way to its sender (when due, ack, raw window, TSval or -1) in the order they reach it, a ring
#: from F_AQ_HEAD; touched: the flows
#: a poll delivered to, in order (tc[TC_TOUCHED] of them); mark[pid]: the epoch a page was last counted in;
#: facts[frame length]: a tun skb's TCP facts (tcp_run.TF_*); seg: the segment being received (tcp.SG_* row)
#: -- TCP through NAPI drivers -- (skbsim/fast/tcp_napi.py): nicq[cpu, j] the TCP_SKB_CB (CB_* columns) of each
#: frame the senders put on a NAPI driver's queue cpu, in order, until the driver takes it, a ring from
#: nicq_at[cpu, 0] of nicq_at[cpu, 1]; polled[j]: those of the frames the poll handed on, in order (polled[-1, 0]
#: of them); rss[flow]: its RSS hash (GRO's bucket)
#: -- TCP capture -- (skbsim/fast/tcp_capture.py): capture[j]: the TCP_SKB_CB (CB_* columns) of the chunk's frames,
#: the frame of packet number p at p - tc[TC_CAP_BASE]; stage[flow]: the receiver the model set up for the flow
#: (ST_* columns: for which SYN and first segment, at which times), its tcp_sock row in sk0[flow], its TcpFlow's
#: figures in fl0[flow] and its JSON series in json0[flow]; refused[flow, j]: the first REFUSED_LISTED segments its
#: receiver refused (time in ns, sequence number from the first byte, payload, index in tcp.DROP_REASONS)
#: -- TCP plot --: series[flow, j]: with --plot, its plot series' points (as json's; F_PS_LEN of them, up to
#: layout.SERIES_LIMIT: TcpFlow.series), else one row
TcpFlows = namedtuple("TcpFlows", ("fl", "json", "ackq", "touched", "mark", "facts", "seg",
                                   "nicq", "nicq_at", "polled", "rss",
                                   "capture", "stage", "sk0", "fl0", "json0", "refused", "series"))
(F_CPU, F_QUEUE, F_SKBS, F_SEGMENTS, F_DELIVERED, F_CONTROL, F_DROPS) = range(7)
(F_BYTES_READ, F_FIRST_NS, F_LAST_NS, F_WINDOW, F_SINCE, F_ZERO_NS, F_SMALL_NS, F_INTEGRAL, F_INT_FIRST,
 F_INT_LAST, F_MSS, F_RCVBUF_INIT, F_RCVBUF_MAX, F_RMEM_PEAK, F_TIMER_DUE, F_RCV_START, F_RCV_MARK, F_RECEIVED,
 F_APP_NEXT, F_WAITING, F_TOUCHED, F_JS_COUNT, F_JS_EVERY, F_JS_LEN, F_AQ_HEAD, F_AQ_LEN, F_START_EDGE,
 F_WSCALE, F_ACK_SEQ, F_TWINDOW, F_DOFF, F_FIELDS) = range(F_DROPS + 7, F_DROPS + 7 + 32)
# -- TCP capture --: the order the flow's first skb came in (-1: none yet), its receiver's state (FS_*), the first
# SYN's frame and time (-1: none), the bytes refused, the refused segments listed
(F_ORDER, F_STATE, F_SYN_FRAME, F_SYN_NS, F_REFUSED_BYTES, F_REF_LEN) = range(F_FIELDS, F_FIELDS + 6)
F_FIELDS += 6
# -- TCP plot --: the plot series' Thinned (count, step, length), as F_JS_* are the JSON series'
(F_PS_COUNT, F_PS_EVERY, F_PS_LEN) = range(F_FIELDS, F_FIELDS + 3)
F_FIELDS += 3
#: F_STATE: nothing yet, listening (a SYN came), established
FS_NONE, FS_LISTEN, FS_ESTABLISHED = 0, 1, 2
#: stage's columns: whether set up, the SYN's frame (-1: none) and time, the first segment's frame and time
ST_READY, ST_SYN_FRAME, ST_SYN_NS, ST_EST_FRAME, ST_EST_NS, ST_FIELDS = range(6)
#: refused's columns
RF_NS, RF_SEQ, RF_PAYLOAD, RF_REASON, RF_FIELDS = range(5)
#: the refused segments each flow lists (skbsim.sockets.REFUSED_LISTED)
REFUSED_ROWS = 20
JSON_POINTS = 64
#: ackq's columns: when due, ack, raw window, TSval or -1, the order of its E_ACK event, whether that event is in
#: the heap (only the head's must be: tcp_run._ack_queue())
AQ_DUE, AQ_ACK, AQ_WINDOW, AQ_TSVAL, AQ_ORDER, AQ_QUEUED, AQ_FIELDS = range(7)


def new_tcp_flows(flows: int, acks: int, pages: int, facts=None, ncpus: int = 1, nicq: int = 1,
                  polled: int = 1, capture: int = 0) -> TcpFlows:
    """TcpFlows of flows flows; a NAPI driver's runs: nicq frames waiting on each of ncpus queues, polled a poll;
    a capture's (-- TCP capture --): capture frames a chunk."""
    fl = _zeros(max(1, flows), F_FIELDS)
    fl[:, F_FIRST_NS] = -1
    fl[:, F_TIMER_DUE] = -1
    fl[:, F_JS_EVERY] = 1
    fl[:, F_PS_EVERY] = 1
    fl[:, F_ORDER] = -1
    fl[:, F_SYN_FRAME] = -1
    fl[:, F_SYN_NS] = -1
    staged = max(1, flows) if capture else 1
    return TcpFlows(fl, _zeros(max(1, flows), JSON_POINTS, 5), _zeros(max(1, flows), acks, AQ_FIELDS), _zeros(max(1, flows)),
                    _zeros(max(1, pages)), _zeros(1, 6) if facts is None else facts, _zeros(RQ_FIELDS),
                    _zeros(ncpus, nicq, CB_FIELDS), _zeros(ncpus, 2), _zeros(polled + 1, CB_FIELDS),
                    _zeros(max(1, flows)),
                    _zeros(max(1, capture), CB_FIELDS), _zeros(staged, ST_FIELDS), _zeros(staged, TS_FIELDS),
                    _zeros(staged, F_FIELDS), _zeros(staged, JSON_POINTS, 5), _zeros(staged, REFUSED_ROWS, RF_FIELDS),
                    _zeros(1, 1, 5))
