"""The fast engine's tun driver: the writer's tun_get_user() (from a per-length table) and the queue's poll."""

from __future__ import annotations

import numpy as np

from skbsim.fast.layout import (
    BUDGET_LEFT, DEFER_LEN, D_BYTES, D_BYTES_COPIED, D_COPIED, D_FRAMES, D_FRAMES_DROPPED, D_NIC_FRAMES,
    D_PAGES_ALLOC, D_POLLS, D_RELEASED, D_REUSED, D_SKB_FAILURES, ERR, ERR_TABLE_FULL, FL_TAG, F_ANY,
    HEAD_1K, HEAD_FRAG, HEAD_KIND, HEAD_SMALL, HQ_HEAD, HQ_LEN, KM_MAX, KM_TAG, K_LAYER, K_OBJS, K_ORDER,
    K_SIZE, L_NONE, L_PAGE_FRAG, L_SKB_DATA, MAX_TUN_FRAME, MIN_TUN_FRAME, PAGE_SIZE_C, PF_FRAGSZ, POLLS,
    Q_DROPPED, Q_FRAMES, Q_NIC_FRAMES, ROUTE_ALLOC, ROUTE_BUILD, ROUTE_FRAGS, ROUTE_NONE, TF_OFFSET,
    TF_ORDER, TF_PAGE, TF_SIZE, TH_PAGES, TH_SLAB, TH_TASK_FRAG, TUN_CHUNKS, TUN_EAGAIN, TUN_EINVAL,
    TUN_FRAG_LIMIT, TUN_MAX_ORDER, TUN_ROUTE_ALLOC, TUN_ROUTE_BUILD, TUN_SMALL_KM, TUN_SMP, TUN_SNDBUF,
    TUN_WMEM, T_BUFLEN, T_CACHE, T_DLEN, T_EXPAND, T_FRAGS, T_HEAD, T_NFRAGS, T_ROUTE, T_TS, njit,
)
from skbsim.fast.mm import (
    _alloc_pages, _fl_take, _km, _p1k_alloc, _pf_alloc, _put_page, _should_fail, _slab_alloc, _slab_free,
)
from skbsim.fast.stack import _defer_flush, _deliver, _nc_get, _poll_done, _release_data
from skbsim.mm.fault import LAYERS
from skbsim.sim import NAPI_POLL_WEIGHT, RunConfig, Simulation


# drivers/net/tun.c: the writer's tun_get_user(), the queue's hand-off, the stack.
#
# tn, tun's own state: (tab, dcount, km_K, km_stack, km_top, km_inuse, km_page, km_partial, km_slotfree,
# hq_head, hq_frag, hq_obj, hq_ts, hq_len).  tab is the per-length table _TunLengths fills from the
# model's tun_get_user(); dcount counts delivered skbs by frame length; km_* are the kmem caches heads
# come from, one row each (see _km); hq_* is each queue's FIFO of written skbs not yet handed to the
# stack (rx_handoff without IFF_NAPI, sk_write_queue with it: both are taken in order, up to the budget).


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
