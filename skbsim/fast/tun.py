"""The fast engine's tun driver: the writer's tun_get_user() (from a per-length table) and the queue's poll."""

from __future__ import annotations

import numpy as np

from skbsim.fast.layout import (
    ERR_GRO_TUN, ERR_TABLE_FULL, FL_TAG, HEAD_1K, HEAD_FRAG, HEAD_SMALL, L_NONE, L_PAGE_FRAG, L_SKB_DATA, MAX_TUN_FRAME,
    MIN_TUN_FRAME, ORDER_0, ROUTE_ALLOC, ROUTE_BUILD, ROUTE_FRAGS, ROUTE_NONE, SLAB_TAG, TH_PAGES, TH_SLAB,
    TH_TASK_FRAG, T_BUFLEN, T_CACHE, T_DLEN, T_EXPAND, T_FRAGS, T_HEAD, T_NFRAGS, T_ROUTE, T_TS, njit,
)
from skbsim.fast.mm import _alloc_pages, _fails, _fl_take, _p1k_alloc, _pf_alloc, _put_page
from skbsim.fast.napi import _free_skb, _nc_get, _release_data
from skbsim.fast.rules import _alloc_skb_with_frags_order
from skbsim.fast import poll  # (a module: tcp_run, which it calls, comes back to tun through tcp_pressure)
from skbsim.fast import gro  # -- GRO -- (IFF_NAPI)
from skbsim.fast.slub import _slab_alloc, _slab_free
from skbsim.fast.state import NC_GETS, NC_HITS, NC_LEN, NC_OUTSIDE_NAPI  # -- TCP pressure --
from skbsim.fast.state import (
    CACHES, CACHE_KMALLOC, CACHE_SKB, CACHE_SMALL, D_BYTES, D_BYTES_COPIED, D_COPIED,
    D_FRAMES, D_FRAMES_DROPPED, D_NIC_FRAMES, D_PAGES_ALLOC, D_RELEASED, D_REUSED, D_SKB_FAILURES, ERR,
    HEAD_FRAGSZ, HEAD_KIND, HQ_HEAD, HQ_LEN, PAGE_ORDER, PAGE_REF, PAGE_SIZE, Q_DROPPED, Q_FRAMES,
    Q_NIC_FRAMES, SKB_DLEN, SKB_FIELDS, SKB_FRAG, SKB_HEAD, SKB_HLEN, SKB_OBJ, SKB_TS, TF_OFFSET, TF_ORDER, TF_PAGE,
    TF_SIZE, TUN_CHUNKS, TUN_EAGAIN, TUN_EINVAL, TUN_FRAG_LIMIT, TUN_MAX_ORDER, TUN_ROUTE_ALLOC, TUN_ROUTE_BUILD,
    TUN_SMP, TUN_SNDBUF, WMEM,
)
from skbsim.sim import NAPI_POLL_WEIGHT, RunConfig, Simulation


# drivers/net/tun.c over the TunQueues record (skbsim.fast.state): the writer's tun_get_user() with the
# route and sizes of each frame length from the per-length table (tab, filled by _TunLengths from the
# model's tun_get_user()), and each queue's FIFO of written skbs, which its poll hands to the stack
# (rx_handoff without IFF_NAPI, sk_write_queue with it: both are taken in order, up to the budget).


@njit(cache=True, forceinline=True)
def _tun_refused(k, cpu, errno_nomem):
    """nic_receive()'s count of a refused write: frames_dropped, and skb_alloc_failures for -ENOMEM and
    -ENOBUFS; a failure that set err[0] is not counted (the run is redone)."""
    if k.st[ERR]:
        return
    k.st[D_FRAMES_DROPPED] += 1
    k.pcpu[cpu, Q_DROPPED] += 1
    if errno_nomem:
        k.st[D_SKB_FAILURES] += 1


@njit(cache=True, forceinline=True)
def _tun_kmalloc(k, cpu, kind, c):
    """kmalloc_reserve() of a tun head (no reserves to retry with: GFP_KERNEL and GFP_ATOMIC lack
    __GFP_MEMALLOC): an object of kmem cache c (kind TH_SLAB: slab, then the cache's layer) as SLAB_TAG plus
    (c << 32) plus the object, or pages of order c (__kmalloc_large_node(): skb_data, then page_alloc) as a
    page id; -1 when it fails."""
    if kind == TH_SLAB:
        o = _slab_alloc(k.slabs, c, cpu, k.pages, k.faults, k.st)
        return -1 if o < 0 else SLAB_TAG + (c << 32) + o
    if _fails(k.faults, k.st, L_SKB_DATA):
        return -1
    return _alloc_pages(k.pages, k.faults, k.st, c, L_NONE)


# -- TCP pressure --
@njit(cache=True, forceinline=True)
def _alloc_skb_sk_buff(k, cpu):
    """__alloc_skb()'s sk_buff for a caller outside NAPI (no SKB_ALLOC_NAPI or SKB_ALLOC_FCLONE; not in hard
    IRQ, IRQs on): from 6.19 ('net: use napi_skb_cache even in process context', cfg NC_OUTSIDE_NAPI) one this
    CPU's NAPI skb cache holds (napi_skb_cache_get(false): never refilled), else skbuff_head_cache's; -1 when
    there is none.  A head that then fails sends it to the slab either way (kmem_cache_free())."""
    nc = k.pcpu[cpu]
    if k.cfg[NC_OUTSIDE_NAPI] and nc[NC_LEN]:
        k.st[NC_GETS] += 1
        k.st[NC_HITS] += 1
        nc[NC_LEN] -= 1
        return k.nc.skb[cpu][nc[NC_LEN]]
    return _slab_alloc(k.slabs, CACHE_SKB, cpu, k.pages, k.faults, k.st)


@njit(cache=True, forceinline=True)
def _alloc_skb(k, cpu, kind, c):
    """net/core/skbuff.c __alloc_skb() outside NAPI with a kmalloc'ed head (tun_alloc_skb(), __netdev_alloc_skb()
    beyond the page_frag sizes, tcp_collapse()'s alloc_skb()): the sk_buff (_alloc_skb_sk_buff()), then
    kmalloc_reserve()'s head of kind and cache or order c (_tun_kmalloc(); no reserves to retry with); without a
    head the sk_buff goes back to skbuff_head_cache.  (head, sk_buff), the sk_buff -1 when either failed."""
    obj = _alloc_skb_sk_buff(k, cpu)
    if obj < 0:
        return -1, -1
    head = _tun_kmalloc(k, cpu, kind, c)
    if head < 0:
        if not k.st[ERR]:
            _slab_free(k.slabs, CACHE_SKB, cpu, k.pages, k.st, obj)
        return -1, -1
    return head, obj


@njit(cache=True, forceinline=True)
def _tun_build_skb(k, cpu, length):
    """tun_build_skb(): buflen bytes of current->task_frag at an SMP_CACHE_BYTES-aligned offset (the block is
    reused when only the task holds it, kept while the buffer fits, else given up for a new
    SKB_FRAG_PAGE_ORDER block, or one page when that fails: skb_page_frag_refill()), then build_skb()'s
    sk_buff and the skb's own reference on the block.  (head, sk_buff); -1 for a refused write."""
    cfg = k.cfg
    tf = k.pcpu[cpu]
    buflen = k.tun.tab[length, T_BUFLEN]
    smp = cfg[TUN_SMP]
    off = (tf[TF_OFFSET] + smp - 1) & ~(smp - 1)
    pid = tf[TF_PAGE]
    fresh = True
    if pid >= 0:
        if k.pages.page[pid, PAGE_REF] == 1:
            off = 0
            k.st[D_REUSED] += 1
            fresh = False
        elif off + buflen <= tf[TF_SIZE]:
            fresh = False
        else:
            _put_page(k.pages, k.st, pid)
            tf[TF_PAGE] = -1
            k.st[D_RELEASED] += 1
    if fresh:
        off = 0
        pid = -1
        if cfg[TF_ORDER] > 0:
            pid = _alloc_pages(k.pages, k.faults, k.st, cfg[TF_ORDER], L_PAGE_FRAG)
            if k.st[ERR]:
                return -1, -1
        if pid < 0:
            pid = _alloc_pages(k.pages, k.faults, k.st, ORDER_0, L_PAGE_FRAG)
            if pid < 0:
                tf[TF_OFFSET] = 0
                _tun_refused(k, cpu, True)
                return -1, -1
        tf[TF_PAGE] = pid
        tf[TF_SIZE] = cfg[PAGE_SIZE] << k.pages.page[pid, PAGE_ORDER]
        k.st[D_PAGES_ALLOC] += 1
    tf[TF_OFFSET] = off
    obj = _slab_alloc(k.slabs, CACHE_SKB, cpu, k.pages, k.faults, k.st)
    if obj < 0:
        _tun_refused(k, cpu, True)
        return -1, -1
    k.pages.page[pid, PAGE_REF] += 1
    tf[TF_OFFSET] = off + buflen
    k.st[TUN_ROUTE_BUILD] += 1
    return pid, obj


@njit(cache=True, forceinline=True)
def _tun_napi_alloc_frags(k, cpu, length):
    """IFF_NAPI_FRAGS: napi_get_frags()'s napi_alloc_skb(GRO_MAX_HEAD) from this CPU's NAPI caches (not
    charged; head kind cfg[HEAD_KIND]: a page-fragment head before the sk_buff, given back if there is
    none, or __alloc_skb()'s sk_buff then a skbuff_small_head object, the sk_buff back to its slab if
    none), grown by __skb_grow()'s pskb_expand_head() past its tailroom (the new kmalloc head, then the
    old one freed).  (head, sk_buff); -1 for a refused write."""
    cfg = k.cfg
    tab = k.tun.tab
    kind = cfg[HEAD_KIND]
    head = 0
    if kind == HEAD_1K or kind == HEAD_FRAG:
        if kind == HEAD_1K:
            head = _p1k_alloc(k, cpu)
        else:
            head = _pf_alloc(k.pages, k.faults, k.st, k.pcpu[cpu], cfg, cfg[HEAD_FRAGSZ])
        if head < 0:
            _tun_refused(k, cpu, True)
            return -1, -1
    obj = _nc_get(k, cpu)
    if obj < 0:
        if not k.st[ERR] and (kind == HEAD_1K or kind == HEAD_FRAG):
            _put_page(k.pages, k.st, head)  # skb_free_frag()
        _tun_refused(k, cpu, True)
        return -1, -1
    if kind == HEAD_SMALL:
        small = _slab_alloc(k.slabs, CACHE_SMALL, cpu, k.pages, k.faults, k.st)
        if small < 0:
            if not k.st[ERR]:
                _slab_free(k.slabs, CACHE_SKB, cpu, k.pages, k.st, obj)
            _tun_refused(k, cpu, True)
            return -1, -1
        head = SLAB_TAG + (CACHE_SMALL << 32) + small
    if tab[length, T_EXPAND]:
        # pskb_expand_head(): kmalloc_reserve() of the new head, then skb_free_head() of the old
        grown = _tun_kmalloc(k, cpu, tab[length, T_HEAD], tab[length, T_CACHE])
        if grown < 0:
            if not k.st[ERR]:
                _free_skb(k, cpu, head, -1, obj)  # napi_free_frags(): kfree_skb() of napi->skb
            _tun_refused(k, cpu, True)
            return -1, -1
        _release_data(k, cpu, head, -1)
        head = grown
    return head, obj


@njit(cache=True, forceinline=True)
def _tun_alloc_frags(k, length, ts):
    """alloc_skb_with_frags()'s blocks for the table's data_len: (row of frags.fl, truesize, failed); the row
    -1 when the table is full.  Up to 6.5 (npages) order-0 pages, the truesize charged up front (the
    table's); 6.6+ (chunks) blocks of falling order, a refused high-order block lowering the order by one
    and trying again, the truesize growing by each block taken."""
    cfg = k.cfg
    tab = k.tun.tab
    fl = k.frags.fl
    entry = _fl_take(k.frags, k.st)
    if entry < 0:
        return -1, ts, True
    page_size = cfg[PAGE_SIZE]
    nr_frags = 0
    fl[entry, 0] = 0
    if not cfg[TUN_CHUNKS]:
        for j in range(tab[length, T_NFRAGS]):
            pid = _alloc_pages(k.pages, k.faults, k.st, tab[length, T_FRAGS + j], L_NONE)
            if pid < 0:
                return entry, ts, True
            nr_frags += 1
            fl[entry, nr_frags] = pid
            fl[entry, 0] = nr_frags
        k.st[D_PAGES_ALLOC] += nr_frags
        return entry, ts, False
    for j in range(tab[length, T_NFRAGS]):
        ts -= page_size << tab[length, T_FRAGS + j]
    data_len = tab[length, T_DLEN]
    order = cfg[TUN_MAX_ORDER]
    while data_len > 0:
        if nr_frags == cfg[TUN_FRAG_LIMIT]:
            return entry, ts, True
        order = _alloc_skb_with_frags_order(data_len, order, page_size)
        pid = _alloc_pages(k.pages, k.faults, k.st, order, L_NONE)
        if pid < 0:
            if order > 0 and k.st[ERR] == 0:
                order -= 1
                continue
            return entry, ts, True
        nr_frags += 1
        fl[entry, nr_frags] = pid
        fl[entry, 0] = nr_frags
        block = page_size << order
        ts += block
        data_len -= data_len if data_len < block else block
    k.st[D_PAGES_ALLOC] += nr_frags
    return entry, ts, False


@njit(cache=True, forceinline=True)
def _tun_alloc_skb(k, cpu, length):
    """tun_alloc_skb() -> sock_alloc_send_pskb(): -EAGAIN over the send buffer; alloc_skb()'s sk_buff, then
    kmalloc_reserve()'s head (-ENOBUFS without one, the sk_buff given back); then alloc_skb_with_frags()'s
    blocks (kfree_skb() of what was taken when they fail).  (head, frags, sk_buff, truesize); -1 for a
    refused write."""
    tab = k.tun.tab
    if k.pcpu[cpu, WMEM] >= k.cfg[TUN_SNDBUF]:
        k.st[TUN_EAGAIN] += 1
        _tun_refused(k, cpu, False)
        return -1, -1, -1, 0
    head, obj = _alloc_skb(k, cpu, tab[length, T_HEAD], tab[length, T_CACHE])
    if obj < 0:
        _tun_refused(k, cpu, True)
        return -1, -1, -1, 0
    ts = tab[length, T_TS]
    frag = -1
    if tab[length, T_DLEN] > 0:
        entry, ts, failed = _tun_alloc_frags(k, length, ts)
        if entry < 0:
            return -1, -1, -1, 0
        if failed:
            if not k.st[ERR]:
                _free_skb(k, cpu, head, FL_TAG + entry, obj)  # kfree_skb(): the blocks taken, the head, the sk_buff
            _tun_refused(k, cpu, True)
            return -1, -1, -1, 0
        frag = FL_TAG + entry
    k.st[TUN_ROUTE_ALLOC] += 1
    return head, frag, obj, ts


@njit(cache=True, forceinline=True)
def _tun_write(k, cpu, length):
    """tun nic_receive(): the writer's tun_get_user() of one frame on queue cpu, by the route its length
    takes; False when refused (-EINVAL below ETH_HLEN, -EMSGSIZE, -EAGAIN at sk_sndbuf, -ENOMEM /
    -ENOBUFS when an allocation fails; counted) or when err[0] is set.  A written skb is charged to
    sk_wmem_alloc (skb_set_owner_w(); napi_get_frags()'s skb has no owner) and queued for the poll."""
    tun = k.tun
    route = tun.tab[length, T_ROUTE]
    frag = -1
    ts = tun.tab[length, T_TS]
    if route == ROUTE_NONE:
        k.st[TUN_EINVAL] += 1
        _tun_refused(k, cpu, False)
        return False
    if route == ROUTE_BUILD:
        head, obj = _tun_build_skb(k, cpu, length)
    elif route == ROUTE_FRAGS:
        head, obj = _tun_napi_alloc_frags(k, cpu, length)
    else:
        head, frag, obj, ts = _tun_alloc_skb(k, cpu, length)
    if obj < 0:
        return False
    q = k.pcpu[cpu]
    if route != ROUTE_FRAGS:
        q[WMEM] += ts
    k.st[D_NIC_FRAMES] += 1
    k.pcpu[cpu, Q_NIC_FRAMES] += 1
    k.st[D_COPIED] += 1
    k.st[D_BYTES_COPIED] += length
    cap = tun.queue.shape[1]
    if q[HQ_LEN] >= cap:
        k.st[ERR] = ERR_TABLE_FULL
        return False
    tail = q[HQ_HEAD] + q[HQ_LEN]
    if tail >= cap:
        tail -= cap
    skb = tun.queue[cpu, tail]
    skb[SKB_HEAD] = head
    skb[SKB_FRAG] = frag
    skb[SKB_OBJ] = obj
    skb[SKB_TS] = ts
    skb[SKB_HLEN] = length
    q[HQ_LEN] += 1
    if k.gro.cfg[gro.G_ON]:  # -- GRO --: the frame's TCP facts go with its skb (by sk_buff: fdesc's one row)
        gro._gro_nic(k, 0, obj)
    return True


@njit(cache=True, forceinline=True)  # a call passes every array of k word by word: 790 words a poll
def _tun_poll(k, cpu):
    """One napi_poll() (Simulation._poll) of a tun queue: up to budget written skbs, orphaned, to the stack
    (tun poll(): tun_napi_poll() with IFF_NAPI, the netif_receive_skb() hand-off without; both in order).
    skb_condense() changes no tun skb (checked per length: cfg[COND_ROOM] is -1).

    With GRO of TCP (IFF_NAPI): each skb goes to napi_gro_receive() (IFF_NAPI_FRAGS: napi_gro_frags(), the
    frame all in the head) and its write's poll ends with napi_complete_done() (napi_complete()): the model's
    poll(), as in the kernel each write runs the NAPI poll that finds just its skb.  That flushes what GRO
    holds: without gro_flush_timeout GRO never holds two tun skbs, so none merge and each goes up as written,
    in order (held and flushed, or passed up), with GRO's counts."""
    taken_before, budget = poll._poll_start(k, cpu)
    q = k.pcpu[cpu]
    tun = k.tun
    cap = tun.queue.shape[1]
    work = 0
    while work < budget and q[HQ_LEN] > 0:
        at = q[HQ_HEAD]
        skb = k.batch[work]
        for f in range(SKB_FIELDS):
            skb[f] = tun.queue[cpu, at, f]  # SKB_HLEN: the frame's length, for --trace and --plot (its kind)
        skb[SKB_DLEN] = 0
        length = skb[SKB_HLEN]
        q[HQ_HEAD] = at + 1 if at + 1 < cap else 0
        q[HQ_LEN] -= 1
        k.st[D_FRAMES] += 1
        q[Q_FRAMES] += 1
        k.st[D_BYTES] += length
        if tun.tab[length, T_ROUTE] != ROUTE_FRAGS:
            q[WMEM] -= skb[SKB_TS]  # skb_orphan(): sock_wfree()
        tun.delivered[length] += 1
        work += 1
        if k.gro.cfg[gro.G_ON]:  # -- GRO --: napi_gro_receive(), then napi_complete_done(): one skb up
            if gro._gro_flush(k, gro._gro_receive(k, cpu, work, k.gro.fdesc[0, skb[SKB_OBJ]]), False) != work:
                k.st[ERR] = ERR_GRO_TUN
                return
    poll._poll_deliver(k, cpu, work)
    if k.st[ERR]:
        return
    poll._poll_end(k, cpu, work, budget, work, taken_before)


def head_caches(kernel, whose: str) -> dict:
    """The kmem caches an skb head from kmalloc_reserve() may come from on kernel, by their index in Slabs:
    skbuff_small_head (where the release has it) and kmalloc from 256 bytes up (a head is at least
    SKB_HEAD_ALIGN(NET_SKB_PAD + ETH_HLEN) bytes).  A scratch kernel with the run's CPU count gives the run's
    slab orders.  CACHE_SKB is the run's own skbuff_head_cache."""
    from skbsim.mm.gfp import GFP_KERNEL

    kmalloc = [kernel.slab.kmalloc_slab(size, GFP_KERNEL) for size in kernel.slab.kmalloc_sizes if size >= 256]
    if CACHE_KMALLOC + len(kmalloc) > CACHES:
        raise ValueError(f"the fast engine models {whose} heads from at most {CACHES - CACHE_KMALLOC} kmalloc caches")
    caches = {CACHE_KMALLOC + i: cache for i, cache in enumerate(kmalloc)}
    if kernel.skb_small_head_cache is not None:
        caches[CACHE_SMALL] = kernel.skb_small_head_cache
    return caches


def kmalloc_head_kind(kernel, skb, cache_index: dict, whose: str) -> tuple[int, int]:
    """Where a model skb's kmalloc'ed head came from, as _tun_kmalloc() takes it: (TH_SLAB, the cache's index in
    Slabs) for a kmem cache object, (TH_PAGES, order) for pages of its own (__kmalloc_large_node()).  whose names
    the skb in the ValueError for a cache the fast engine does not model."""
    page = kernel.pages.virt_to_head_page(skb.head)
    if page.slab is None:
        return TH_PAGES, page.order
    index = cache_index.get(page.slab.cache.name)
    if index is None:
        raise ValueError(f"{whose} head from {page.slab.cache.name}, which the fast engine does not model")
    return TH_SLAB, index


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
        from skbsim.net.napi import napi_struct, net_device

        # the scratch kernel has no fault rules: every length's skb is the one no failure changes
        kernel = self.kernel = Kernel(ref.kernel.profile, ncpus=config.cpus)
        self.chunks = kernel.profile.feature("alloc_skb_with_frags") == "chunks"
        napi = napi_struct(net_device("eth0"), NAPI_POLL_WEIGHT, napi_id=0x2001, cpu=0)
        with kernel.softirq(0):
            self.queue = open_queue(kernel, napi.dev, napi, dict(config.options))
        #: Slabs index -> the scratch kernel's cache
        self.caches = head_caches(kernel, "tun")
        self.cache_index = {cache.name: c for c, cache in self.caches.items()}
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
        from skbsim.drivers.tun import EINVAL, EMSGSIZE, tun_get_user, written_skbs
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
        waiting = written_skbs(tfile)
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
            row[T_HEAD], row[T_CACHE] = kmalloc_head_kind(kernel, skb, self.cache_index, "a tun")
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
