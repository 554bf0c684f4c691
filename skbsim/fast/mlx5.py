"""The fast engine's mlx5 RQs: the NIC side, the clean loop, the refills, the close.

skbsim/drivers/mlx5.py over the Mlx5Rqs record (skbsim.fast.state): a row per RQ (its page_pool's row too),
each WQE's state, each page slot (struct mlx5e_frag_page), a legacy WQE's fragments as
mlx5e_init_frags_partition() laid them out, the completions not yet cleaned, a FIFO (fillers that close a
striding WQE included), and 6.1's RQ page cache.  Every page comes from the RQ's page_pool
(skbsim.fast.page_pool).  6.4+ (cfg MLX5_PP_FRAGMENTS) charges it with MLX5E_PAGECNT_BIAS_MAX references:
each skb that uses part of it takes one (its pages are marked for recycling), and the driver drops the rest
when it refills the slot (deferred release) or closes the RQ.  6.1 hands each skb a page reference
(page_ref_inc(); its skbs are not marked: their pages are put_page()'d), and gives a WQE's pages back as
soon as its frame is handled, into the RQ page cache, reused once its count is back to one.  Skbs are
built in place (linear), around a legacy WQE's first fragment (non-linear), or copied into
napi_alloc_skb(MLX5E_RX_MAX_HEAD) with the rest as frags (a striding RQ's non-linear frames).
"""

from __future__ import annotations

from skbsim.fast.layout import ERR_BUG, ERR_EMPTY_FRAME, ERR_TABLE_FULL, njit
from skbsim.fast.mm import _add_frag
from skbsim.fast.napi import _alloc_rx_skb, _nc_get
from skbsim.fast.page_pool import (
    _page_pool_destroy, _pp_alloc_pages, _pp_put_page, _pp_put_unrefed_page, _pp_return_page, _pp_unref_page,
)
from skbsim.fast import rx  # (a module: rx dispatches to pp_drivers, which calls this one)
from skbsim.fast.rules import _mlx5_skb_frag_sz
from skbsim.fast.state import (
    BUILD_OVERHEAD, CQ_CSTRIDES, CQ_FILLER, CQ_IX, CQ_KIND, CQ_LEN, CQ_MPWQE, CQ_STRIDE, CQ_WQE, D_BUF_FAILURES,
    D_BYTES_COPIED, D_NIC_FRAMES, D_RING_DROPS, D_SKB_FAILURES, D_USED, ERR, FP_FRAGS, FP_HELD, FP_PAGE, G_SIZE,
    G_STRIDE, HEAD_FRAGSZ, HEAD_KIND, HEAD_TRUESIZE, MLX5_BIAS_MAX, MLX5_HEADROOM, MLX5_INDEX_MASK, MLX5_LINEAR,
    MLX5_LOG_NUM_STRIDES, MLX5_LOG_STRIDE, MLX5_NFRAGS, MLX5_PAGES_PER_WQE, MLX5_PP_FRAGMENTS, MLX5_REFILL_UNIT,
    MLX5_SHINFO, MLX5_SMP, MLX5_STRIDING, MLX5_WQE_BULK, MLX5_WQ_SZ, PAGE_REF, PAGE_SIZE, PP_SOFTIRQ, Q_NIC_FRAMES,
    RQ_CACHE_HEAD, RQ_CACHE_LEN, RQ_CI, RQ_COMP_HEAD, RQ_COMP_LEN,
    RQ_HW_HEAD, RQ_HW_STRIDE, RQ_MISSING, WF_LAST, WF_OFFSET, WF_SLOT, W_CONSUMED, W_EMPTY, W_POSTED, W_STATE,
    W_WRITTEN,
)
from skbsim.drivers.mlx5 import MLX5E_RX_MAX_HEAD

# -- page ownership -------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _mlx5_cache_get(k, cpu):
    """6.1 mlx5e_rx_cache_get(): the RQ page cache's oldest page if nobody else holds it any more, else -1."""
    rq = k.mlx.rq[cpu]
    if rq[RQ_CACHE_LEN] == 0:
        return -1
    head = rq[RQ_CACHE_HEAD]
    pid = k.mlx.cache[cpu, head]
    if k.pages.page[pid, PAGE_REF] != 1:
        return -1
    rq[RQ_CACHE_HEAD] = head + 1 if head + 1 < k.mlx.cache.shape[1] else 0
    rq[RQ_CACHE_LEN] -= 1
    return pid


@njit(cache=True, forceinline=True)
def _mlx5_cache_put(k, cpu, pid):
    """6.1 mlx5e_rx_cache_put(): the page at the RQ page cache's tail; False when it is full (MLX5E_CACHE_SIZE,
    one slot always empty).  (No page here is a pfmemalloc one.)"""
    rq = k.mlx.rq[cpu]
    size = k.mlx.cache.shape[1]
    if rq[RQ_CACHE_LEN] + 1 >= size:
        return False
    tail = rq[RQ_CACHE_HEAD] + rq[RQ_CACHE_LEN]
    k.mlx.cache[cpu, tail - size if tail >= size else tail] = pid
    rq[RQ_CACHE_LEN] += 1
    return True


@njit(cache=True, forceinline=True)
def _mlx5_page_alloc(k, cpu, slot):
    """A page for the slot, held by the driver: 6.4+ mlx5e_page_alloc_fragmented() (from the RQ's page_pool,
    charged with MLX5E_PAGECNT_BIAS_MAX references: page_pool_fragment_page()), 6.1 mlx5e_page_alloc_pool()
    (the RQ page cache first, then the pool); False when there was none."""
    fp = k.mlx.fp[cpu, slot]
    if fp[FP_HELD]:
        k.st[ERR] = ERR_BUG  # the model's KernelBug: a slot refilled while the driver still holds its page
        return False
    if k.cfg[MLX5_PP_FRAGMENTS]:
        pid = _pp_alloc_pages(k, cpu)
        if pid < 0:
            return False
        k.pp.ref[pid] = k.cfg[MLX5_BIAS_MAX]
    else:
        pid = _mlx5_cache_get(k, cpu)
        if pid < 0:
            pid = _pp_alloc_pages(k, cpu)
            if pid < 0:
                return False
    fp[FP_PAGE] = pid
    fp[FP_FRAGS] = 0
    fp[FP_HELD] = 1
    return True


@njit(cache=True, forceinline=True)
def _mlx5_page_release(k, cpu, slot, recycle):
    """The driver lets go of the slot's page: 6.4+ mlx5e_page_release_fragmented() (the references no skb
    took dropped; the last one recycles the page, direct); 6.1 mlx5e_page_release_dynamic() (into the RQ page
    cache, or page_pool_recycle_direct() when it is full; without recycle, at close,
    page_pool_release_page() and put_page())."""
    fp = k.mlx.fp[cpu, slot]
    if fp[FP_HELD] == 0:
        return
    fp[FP_HELD] = 0
    pid = fp[FP_PAGE]
    if k.cfg[MLX5_PP_FRAGMENTS]:
        if _pp_unref_page(k.pp, k.pp.pool[cpu], pid, k.cfg[MLX5_BIAS_MAX] - fp[FP_FRAGS]) == 0:
            _pp_put_unrefed_page(k, cpu, pid, True)
    elif not recycle:
        _pp_return_page(k, cpu, pid)
    elif not _mlx5_cache_put(k, cpu, pid):
        _pp_put_page(k, cpu, pid, True)


@njit(cache=True, forceinline=True)
def _mlx5_skb_takes(k, cpu, slot):
    """An skb now uses part of the slot's page: one pp fragment reference (6.4+), or page_ref_inc() (6.1)."""
    if k.cfg[MLX5_PP_FRAGMENTS]:
        k.mlx.fp[cpu, slot, FP_FRAGS] += 1
    else:
        k.pages.page[k.mlx.fp[cpu, slot, FP_PAGE], PAGE_REF] += 1


# -- legacy RQ: WQEs of fragments ------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _mlx5_alloc_wqe(k, cpu, ix):
    """mlx5e_alloc_rx_wqe(): a page for every fragment that starts one; on a failure the pages this WQE took
    go back (the model's error path)."""
    frag = k.mlx.frag[ix]
    for f in range(k.cfg[MLX5_NFRAGS]):
        if frag[f, WF_OFFSET] == 0 and not _mlx5_page_alloc(k, cpu, frag[f, WF_SLOT]):
            for g in range(f):
                if frag[g, WF_OFFSET] == 0:
                    _mlx5_page_release(k, cpu, frag[g, WF_SLOT], True)
            return False
    return True


@njit(cache=True, forceinline=True)
def _mlx5_release_wqe(k, cpu, ix):
    """mlx5e_free_rx_wqe(): the pages whose last fragment this WQE has."""
    frag = k.mlx.frag[ix]
    for f in range(k.cfg[MLX5_NFRAGS]):
        if frag[f, WF_LAST]:
            _mlx5_page_release(k, cpu, frag[f, WF_SLOT], True)


@njit(cache=True, forceinline=True)
def _mlx5_posted(k, cpu, ix):
    """WQE ix is posted: the NIC may write into it."""
    wqe = k.mlx.wqe[cpu, ix]
    if wqe[W_STATE] == W_EMPTY:
        k.mlx.rq[cpu, RQ_MISSING] -= 1
    wqe[W_STATE] = W_POSTED
    k.mlx.rq[cpu, RQ_CI] = ix + 1 if ix + 1 < k.cfg[MLX5_WQ_SZ] else 0


@njit(cache=True, forceinline=True)
def _mlx5_emptied(k, cpu, ix):
    """WQE ix leaves the WQ (mlx5_wq_cyc_pop() / mlx5_wq_ll_pop()): to be posted again."""
    wqe = k.mlx.wqe[cpu, ix]
    if wqe[W_STATE] != W_EMPTY:
        k.mlx.rq[cpu, RQ_MISSING] += 1
    wqe[W_STATE] = W_EMPTY


@njit(cache=True)
def _mlx5_post_rx_wqes(k, cpu):
    """mlx5e_post_rx_wqes(): once wqe_bulk WQEs are missing, refill them up to a page boundary
    (wqe_index_mask), refill_unit at a time, each unit's old pages released first; True if an allocation
    failed."""
    cfg = k.cfg
    rq = k.mlx.rq[cpu]
    missing = rq[RQ_MISSING]
    if missing < cfg[MLX5_WQE_BULK]:
        return False
    wq_sz = cfg[MLX5_WQ_SZ]
    head = rq[RQ_CI]
    bulk = missing - ((head + missing) & cfg[MLX5_INDEX_MASK])
    done = 0
    while done < bulk:
        unit = cfg[MLX5_REFILL_UNIT] if cfg[MLX5_REFILL_UNIT] < bulk - done else bulk - done
        start = head + done
        for i in range(unit):
            if cfg[MLX5_PP_FRAGMENTS]:  # 6.4+: deferred release (6.1 released them when the frame was handled)
                _mlx5_release_wqe(k, cpu, (start + i) % wq_sz)
        for i in range(unit):
            ix = (start + i) % wq_sz
            if not _mlx5_alloc_wqe(k, cpu, ix):
                k.st[D_BUF_FAILURES] += 1
                return True
            _mlx5_posted(k, cpu, ix)
            done += 1
    return False


# -- striding RQ: WQEs of pages_per_wqe pages ------------------------------------------------------------------


@njit(cache=True)
def _mlx5_mpwqe_alloc(k, cpu, ix):
    """mlx5e_alloc_rx_mpwqe(): the WQE's pages (slots ix * pages_per_wqe on); on a failure those taken go back."""
    ppw = k.cfg[MLX5_PAGES_PER_WQE]
    base = ix * ppw
    for i in range(ppw):
        if not _mlx5_page_alloc(k, cpu, base + i):
            for j in range(i):
                _mlx5_page_release(k, cpu, base + j, True)
            return False
    k.mlx.wqe[cpu, ix, W_CONSUMED] = 0
    return True


@njit(cache=True)
def _mlx5_mpwqe_release(k, cpu, ix):
    """mlx5e_free_rx_mpwqe(): every page of the WQE."""
    ppw = k.cfg[MLX5_PAGES_PER_WQE]
    for i in range(ppw):
        _mlx5_page_release(k, cpu, ix * ppw + i, True)


@njit(cache=True)
def _mlx5_post_rx_mpwqes(k, cpu):
    """mlx5e_post_rx_mpwqes(): once min_wqe_bulk WQEs are missing, refill each (6.4+: its old pages released
    first, mlx5e_free_rx_mpwqe()); True if an allocation failed."""
    cfg = k.cfg
    rq = k.mlx.rq[cpu]
    missing = rq[RQ_MISSING]
    if missing < (cfg[MLX5_WQE_BULK] if cfg[MLX5_WQE_BULK] > 1 else 1):
        return False
    for _ in range(missing):
        ix = rq[RQ_CI]
        if cfg[MLX5_PP_FRAGMENTS]:
            _mlx5_mpwqe_release(k, cpu, ix)
        if not _mlx5_mpwqe_alloc(k, cpu, ix):
            k.st[D_BUF_FAILURES] += 1
            return True
        _mlx5_posted(k, cpu, ix)
    return False


@njit(cache=True, forceinline=True)
def _mlx5_mpwqe_consumed(k, cpu, ix, cstrides):
    """A striding WQE's strides used; one whose strides are all used leaves the WQ (6.1: and its pages go back
    at once)."""
    wqe = k.mlx.wqe[cpu, ix]
    wqe[W_CONSUMED] += cstrides
    if wqe[W_CONSUMED] >= 1 << k.cfg[MLX5_LOG_NUM_STRIDES]:
        _mlx5_emptied(k, cpu, ix)
        if k.cfg[MLX5_PP_FRAGMENTS] == 0:
            _mlx5_mpwqe_release(k, cpu, ix)


# -- the NIC --------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _mlx5_complete(k, cpu, kind, ix, stride, cstrides, length):
    """A completion at the FIFO's tail (CQ_* columns)."""
    rq = k.mlx.rq[cpu]
    comps = k.mlx.comp[cpu]
    n = comps.shape[0]
    if rq[RQ_COMP_LEN] >= n:
        k.st[ERR] = ERR_TABLE_FULL
        return
    tail = rq[RQ_COMP_HEAD] + rq[RQ_COMP_LEN]
    comp = comps[tail - n if tail >= n else tail]
    comp[CQ_KIND] = kind
    comp[CQ_IX] = ix
    comp[CQ_STRIDE] = stride
    comp[CQ_CSTRIDES] = cstrides
    comp[CQ_LEN] = length
    rq[RQ_COMP_LEN] += 1


@njit(cache=True, forceinline=True)
def _mlx5_nic_receive(k, cpu, length):
    """mlx5e_nic_receive() (the frame is within rxmax): a legacy WQE per frame, or ceil(len / stride) strides
    (one for linear skbs) of the current striding WQE; a WQE too full for them is closed by a filler
    completion and the frame goes to the next.  A WQE not posted is a ring drop."""
    if length == 0:
        k.st[ERR] = ERR_EMPTY_FRAME
        return False
    cfg = k.cfg
    rq = k.mlx.rq[cpu]
    wqe = k.mlx.wqe[cpu]
    wq_sz = cfg[MLX5_WQ_SZ]
    ix = rq[RQ_HW_HEAD]
    if wqe[ix, W_STATE] != W_POSTED:
        k.st[D_RING_DROPS] += 1
        return False
    if cfg[MLX5_STRIDING] == 0:
        wqe[ix, W_STATE] = W_WRITTEN
        rq[RQ_HW_HEAD] = ix + 1 if ix + 1 < wq_sz else 0
        _mlx5_complete(k, cpu, CQ_WQE, ix, 0, 0, length)
    else:
        num_strides = 1 << cfg[MLX5_LOG_NUM_STRIDES]
        log_stride = cfg[MLX5_LOG_STRIDE]
        cstrides = 1 if cfg[MLX5_LINEAR] else (length + (1 << log_stride) - 1) >> log_stride
        if rq[RQ_HW_STRIDE] + cstrides > num_strides:
            nxt = ix + 1 if ix + 1 < wq_sz else 0
            if wqe[nxt, W_STATE] != W_POSTED:
                k.st[D_RING_DROPS] += 1
                return False
            _mlx5_complete(k, cpu, CQ_FILLER, ix, rq[RQ_HW_STRIDE], num_strides - rq[RQ_HW_STRIDE], 0)
            wqe[ix, W_STATE] = W_WRITTEN
            ix = nxt
            rq[RQ_HW_HEAD] = nxt
            rq[RQ_HW_STRIDE] = 0
        _mlx5_complete(k, cpu, CQ_MPWQE, ix, rq[RQ_HW_STRIDE], cstrides, length)
        rq[RQ_HW_STRIDE] += cstrides
        if rq[RQ_HW_STRIDE] == num_strides:
            wqe[ix, W_STATE] = W_WRITTEN
            rq[RQ_HW_HEAD] = ix + 1 if ix + 1 < wq_sz else 0
            rq[RQ_HW_STRIDE] = 0
    k.st[D_NIC_FRAMES] += 1
    k.pcpu[cpu, Q_NIC_FRAMES] += 1
    return True


# -- skbs -----------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _mlx5_linear_truesize(cfg, length):
    """napi_build_skb()'s truesize of a linear skb: frag_size MLX5_SKB_FRAG_SZ(headroom + the frame's bytes)."""
    return _mlx5_skb_frag_sz(cfg[MLX5_HEADROOM] + length, cfg[MLX5_SMP], cfg[MLX5_SHINFO]) + cfg[BUILD_OVERHEAD]


@njit(cache=True, forceinline=True)
def _mlx5_skb_from_cqe(k, cpu, ix, length):
    """mlx5e_skb_from_cqe_linear() / mlx5e_skb_from_cqe_nonlinear() of legacy WQE ix: napi_build_skb() on its
    first fragment (linear: frag_size from the frame; non-linear: its stride), each further fragment used
    added with its stride as truesize; every page used takes one fragment reference.  (head page, frags,
    sk_buff, truesize, bytes in the head), the sk_buff -1 when none could be had."""
    cfg = k.cfg
    frag = k.mlx.frag[ix]
    fp = k.mlx.fp[cpu]
    geo = k.mlx.geo
    obj = _nc_get(k, cpu)
    if obj < 0:
        return -1, -1, -1, 0, 0
    slot = frag[0, WF_SLOT]
    _mlx5_skb_takes(k, cpu, slot)
    if cfg[MLX5_LINEAR]:
        return fp[slot, FP_PAGE], -1, obj, _mlx5_linear_truesize(cfg, length), length
    truesize = geo[0, G_STRIDE] + cfg[BUILD_OVERHEAD]
    first = geo[0, G_SIZE] if geo[0, G_SIZE] < length else length
    left = length - first
    skb_frags = -1
    f = 1
    while left:
        size = geo[f, G_SIZE] if geo[f, G_SIZE] < left else left
        fslot = frag[f, WF_SLOT]
        skb_frags = _add_frag(k.frags, k.st, skb_frags, fp[fslot, FP_PAGE])
        truesize += geo[f, G_STRIDE]
        _mlx5_skb_takes(k, cpu, fslot)
        left -= size
        f += 1
    return fp[slot, FP_PAGE], skb_frags, obj, truesize, first


@njit(cache=True, forceinline=True)
def _mlx5_skb_from_mpwqe(k, cpu, ix, stride_ix, length):
    """mlx5e_skb_from_cqe_mpwrq_linear() (built in place at the stride) / _mpwrq_nonlinear() (the first
    MLX5E_RX_MAX_HEAD bytes copied into napi_alloc_skb(), the rest added page by page with truesize
    ALIGN(bytes in the page, stride)) of striding WQE ix.  As _mlx5_skb_from_cqe()."""
    cfg = k.cfg
    page_size = cfg[PAGE_SIZE]
    log_stride = cfg[MLX5_LOG_STRIDE]
    offset = stride_ix << log_stride
    page_idx = offset // page_size
    head_offset = offset - page_idx * page_size
    base = ix * cfg[MLX5_PAGES_PER_WQE]
    fp = k.mlx.fp[cpu]
    if cfg[MLX5_LINEAR]:
        obj = _nc_get(k, cpu)
        if obj < 0:
            return -1, -1, -1, 0, 0
        _mlx5_skb_takes(k, cpu, base + page_idx)
        return fp[base + page_idx, FP_PAGE], -1, obj, _mlx5_linear_truesize(cfg, length), length
    headlen = MLX5E_RX_MAX_HEAD if MLX5E_RX_MAX_HEAD < length else length
    head, obj = _alloc_rx_skb(k, cpu, cfg[HEAD_KIND], cfg[HEAD_FRAGSZ], -1)
    if obj < 0:
        return -1, -1, -1, 0, 0
    stride = 1 << log_stride
    truesize = cfg[HEAD_TRUESIZE]
    frag_offset = head_offset + headlen
    byte_cnt = length - headlen
    if frag_offset >= page_size:
        page_idx += 1
        frag_offset -= page_size
    skb_frags = -1
    while byte_cnt:
        consumed = page_size - frag_offset if page_size - frag_offset < byte_cnt else byte_cnt
        slot = base + page_idx
        skb_frags = _add_frag(k.frags, k.st, skb_frags, fp[slot, FP_PAGE])
        truesize += (consumed + stride - 1) & ~(stride - 1)
        _mlx5_skb_takes(k, cpu, slot)
        byte_cnt -= consumed
        frag_offset = 0
        page_idx += 1
    k.st[D_BYTES_COPIED] += headlen
    return head, skb_frags, obj, truesize, headlen


# -- the poll and the close -----------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _mlx5_poll(k, cpu, budget):
    """mlx5e_poll_rx_cq(): each completion up to budget frames (fillers only retire strides), then the WQ
    refill; the skbs for the stack through k.batch (napi_gro_receive(): UDP goes up as built).  (what the
    poll returns: its budget when a refill failed, else the frames; skbs for the stack)."""
    cfg = k.cfg
    rq = k.mlx.rq[cpu]
    comps = k.mlx.comp[cpu]
    n = comps.shape[0]
    striding = cfg[MLX5_STRIDING] != 0
    work = ndel = 0
    while work < budget and rq[RQ_COMP_LEN] > 0:
        at = rq[RQ_COMP_HEAD]
        rq[RQ_COMP_HEAD] = at + 1 if at + 1 < n else 0
        rq[RQ_COMP_LEN] -= 1
        comp = comps[at]
        ix = comp[CQ_IX]
        if comp[CQ_KIND] == CQ_FILLER:
            _mlx5_mpwqe_consumed(k, cpu, ix, comp[CQ_CSTRIDES])
            continue
        work += 1
        length = comp[CQ_LEN]
        if comp[CQ_KIND] == CQ_WQE:
            k.st[D_USED] += cfg[MLX5_NFRAGS]
            head, frags, obj, truesize, hlen = _mlx5_skb_from_cqe(k, cpu, ix, length)
            if cfg[MLX5_PP_FRAGMENTS] == 0:
                _mlx5_release_wqe(k, cpu, ix)  # 6.1: at once, into the RQ page cache
            _mlx5_emptied(k, cpu, ix)
        else:
            k.st[D_USED] += comp[CQ_CSTRIDES]
            head, frags, obj, truesize, hlen = _mlx5_skb_from_mpwqe(k, cpu, ix, comp[CQ_STRIDE], length)
            _mlx5_mpwqe_consumed(k, cpu, ix, comp[CQ_CSTRIDES])
        if k.st[ERR]:
            return 0, 0
        if obj < 0:
            k.st[D_SKB_FAILURES] += 1
            rx._frame_dropped(k, cpu, length)
        else:
            rx._frame_done(k, cpu, length)
            ndel = rx._batch_add(k, ndel, head, frags, obj, hlen, length - hlen, truesize)
    failed = _mlx5_post_rx_mpwqes(k, cpu) if striding else _mlx5_post_rx_wqes(k, cpu)
    return (budget if failed else work), ndel


@njit(cache=True)
def _mlx5_close_rq(k, cpu):
    """mlx5e_close_rq() in the RQ's softirq: the completions left (only fillers: frames left make the run the
    reference engine's) dropped, every page the driver still holds released (6.1: to the page allocator, and
    the RQ page cache emptied there), then page_pool_destroy()."""
    k.st[PP_SOFTIRQ] = cpu + 1
    rq = k.mlx.rq[cpu]
    rq[RQ_COMP_LEN] = 0
    recycle = k.cfg[MLX5_PP_FRAGMENTS] != 0
    for slot in range(k.mlx.fp.shape[1]):
        _mlx5_page_release(k, cpu, slot, recycle)
    while rq[RQ_CACHE_LEN] > 0:
        head = rq[RQ_CACHE_HEAD]
        _pp_return_page(k, cpu, k.mlx.cache[cpu, head])
        rq[RQ_CACHE_HEAD] = head + 1 if head + 1 < k.mlx.cache.shape[1] else 0
        rq[RQ_CACHE_LEN] -= 1
    _page_pool_destroy(k, cpu)
    k.st[PP_SOFTIRQ] = 0
