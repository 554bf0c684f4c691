"""The fast engine's bnxt queues: the NIC side, the clean loop (bnxt_rx_pkt()), the close, compiled.

skbsim/drivers/bnxt.py over the BnxtRings record (skbsim.fast.state): each RX slot's buffer (a page_pool
fragment of rx_buf_size from 6.12, a NAPI page_frag piece before; in page mode a page_pool page), each
aggregation slot's page (the page_pool's; 6.1's alloc_page() outside page mode), and the frames the NIC
completed and the driver has not cleaned (a FIFO from pcpu NTC).  The queue's page_pool is pool row cpu.
A frame's head part (all of it without the aggregation ring) goes to the RX buffer: at most
rx_copybreak bytes are copied into napi_alloc_skb(len) (BnxtRings.copy says what that gives) and the buffer
stays; longer ones become an skb built on the buffer once a replacement was taken; in page mode the headers
are copied into napi_alloc_skb(eth_get_headlen()) and the page follows as frag 0.  The rest of the frame is
in aggregation pages, each a frag of BNXT_RX_PAGE_SIZE truesize.  Every skb goes up through GRO, which
passes UDP as it is (the skbs for the stack through k.batch).
"""

from __future__ import annotations

from skbsim.fast.layout import ERR_EMPTY_FRAME, L_NONE, ORDER_0, njit
from skbsim.fast.mm import _add_frag, _alloc_pages, _pf_alloc
from skbsim.fast.napi import _alloc_skb_by_table, _free_skb, _nc_get
from skbsim.fast.slub import _slab_alloc
from skbsim.fast.page_pool import _page_pool_destroy, _pp_alloc_frag, _pp_alloc_pages, _pp_put_buf
from skbsim.fast import rx  # (a module: rx dispatches to pp_drivers, which calls this one)
from skbsim.fast.state import (
    BC_AGG, BC_HEAD_LEN, BC_HLEN, BC_LEN, BC_NAGG, BC_SLOT, BN_AGG_COUNT, BN_AGG_PAGE, BN_AGG_POOL,
    BN_FRAGSZ, BN_HDS, BN_HEAD, BN_HEAD_PAGE_FRAG, BN_HEAD_PAGE_POOL, BN_JUMBO, BN_PAGE_MODE, BN_RX_ROOM, BR_DONE,
    BR_PAGE, BUILD_TRUESIZE, CACHE_SKB, COPYBREAK, CP_KIND, CP_ROOM, CP_TS,
    D_BUF_FAILURES, D_BYTES_COPIED, D_COPIED, D_NIC_FRAMES, D_RELEASED, D_REUSED, D_RING_DROPS, D_SKB_FAILURES,
    D_USED, ERR, HW_NEXT, NTC, PP_SOFTIRQ, Q_NIC_FRAMES, RING_COUNT, RX_BUF_LEN, TAIL,
)

# -- the NIC ----------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _bnxt_head_len(k, length, hlen):
    """bnxt_nic_receive()'s bytes for the RX buffer: all of the frame without the aggregation ring; with it, a
    frame above the header-data split threshold is split after its headers (hlen, its eth_get_headlen(), when
    that is neither nothing nor all of it), else one above jumbo_thresh at jumbo_thresh."""
    cfg = k.cfg
    if cfg[BN_AGG_COUNT] == 0:
        return length
    split = 0
    if cfg[BN_HDS] >= 0 and length > cfg[BN_HDS] and 0 < hlen < length:
        split = hlen
    if split == 0 and length > cfg[BN_JUMBO]:
        split = cfg[BN_JUMBO]
    return split if split else length


@njit(cache=True, forceinline=True)
def _bnxt_nic_receive(k, cpu, length, hlen):
    """bnxt_nic_receive() (the frame is within rxmax): its head part into the next RX buffer, the rest into
    aggregation buffers from the next one on; a ring drop when a buffer is missing or holds a completion not
    yet cleaned, or the frame needs more aggregation buffers than the ring has."""
    if length == 0:
        k.st[ERR] = ERR_EMPTY_FRAME
        return False
    b = k.bnxt
    count = k.cfg[RING_COUNT]
    agg_count = k.cfg[BN_AGG_COUNT]
    head_len = _bnxt_head_len(k, length, hlen)
    page = k.cfg[BN_AGG_PAGE]
    nagg = (length - head_len + page - 1) // page
    ix = k.pcpu[cpu, HW_NEXT]
    if b.rx[cpu, ix, BR_PAGE] < 0 or b.rx[cpu, ix, BR_DONE] or nagg > agg_count:
        k.st[D_RING_DROPS] += 1
        return False
    start = k.pcpu[cpu, TAIL]
    a = start
    for _ in range(nagg):
        if b.agg[cpu, a, BR_PAGE] < 0 or b.agg[cpu, a, BR_DONE]:
            k.st[D_RING_DROPS] += 1
            return False
        a = a + 1 if a + 1 < agg_count else 0
    a = start
    for _ in range(nagg):
        b.agg[cpu, a, BR_DONE] = 1
        a = a + 1 if a + 1 < agg_count else 0
    k.pcpu[cpu, TAIL] = a
    b.rx[cpu, ix, BR_DONE] = 1
    k.pcpu[cpu, HW_NEXT] = ix + 1 if ix + 1 < count else 0
    comps = b.comp[cpu]
    tail = (k.pcpu[cpu, NTC] + rx._rx_pending(k, cpu)) % comps.shape[0]
    comps[tail, BC_SLOT] = ix
    comps[tail, BC_HEAD_LEN] = head_len
    comps[tail, BC_NAGG] = nagg
    comps[tail, BC_AGG] = start
    comps[tail, BC_LEN] = length
    comps[tail, BC_HLEN] = hlen
    k.st[D_NIC_FRAMES] += 1
    k.pcpu[cpu, Q_NIC_FRAMES] += 1
    return True


# -- skbs -------------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _bnxt_alloc_rx_data(k, cpu):
    """bnxt_alloc_rx_data() in NAPI: a page_pool page (page mode), a page_pool fragment of rx_buf_size (6.12+)
    or napi_alloc_frag(rx_buf_size) (6.1, v6.9); its page id, or -1."""
    cfg = k.cfg
    if cfg[BN_PAGE_MODE]:
        return _pp_alloc_pages(k, cpu)
    if cfg[BN_HEAD] == BN_HEAD_PAGE_POOL:
        return _pp_alloc_frag(k, cpu, cfg[RX_BUF_LEN])
    return _pf_alloc(k.pages, k.faults, k.st, k.pcpu[cpu], cfg, cfg[BN_FRAGSZ])


@njit(cache=True, forceinline=True)
def _bnxt_replace_rx_buf(k, cpu, ix):
    """_bnxt_replace_rx_buf(): bnxt_alloc_rx_data() for the slot (a page_pool page in page mode, else a
    fragment of rx_buf_size) before its buffer goes up: the old buffer's page, or -1 when none came (the
    frame is dropped, the old buffer stays)."""
    old = k.bnxt.rx[cpu, ix, BR_PAGE]
    new = _bnxt_alloc_rx_data(k, cpu)
    if new < 0:
        k.st[D_BUF_FAILURES] += 1
        k.st[D_REUSED] += 1
        return -1
    k.bnxt.rx[cpu, ix, BR_PAGE] = new
    k.st[D_RELEASED] += 1
    return old


@njit(cache=True, forceinline=True)
def _bnxt_head_skb(k, cpu, ix, length, hlen):
    """The skb of the frame's RX buffer part (length bytes): bnxt_copy_skb() up to copybreak,
    bnxt_rx_page_skb() in page mode (hlen: eth_get_headlen()), else bnxt_rx_skb().  (head, frags, sk_buff,
    truesize, bytes in the head); the sk_buff -1 when the frame is dropped."""
    cfg = k.cfg
    copy = k.bnxt.copy
    if length <= cfg[COPYBREAK] and not cfg[BN_PAGE_MODE]:
        k.st[D_REUSED] += 1  # the buffer stays (bnxt_reuse_rx_data())
        head, obj = _alloc_skb_by_table(k, cpu, copy, length)
        if obj < 0:
            return -1, -1, -1, 0, 0
        k.st[D_BYTES_COPIED] += length
        k.st[D_COPIED] += 1
        return head, -1, obj, copy[length, CP_TS], length
    old = _bnxt_replace_rx_buf(k, cpu, ix)
    if old < 0:
        return -1, -1, -1, 0, 0
    if cfg[BN_PAGE_MODE]:
        payload = hlen if hlen < length else length  # eth_get_headlen() of the buffer's bytes
        head, obj = _alloc_skb_by_table(k, cpu, copy, payload)
        if obj < 0:
            _pp_put_buf(k, cpu, old, True)  # page_pool_recycle_direct()
            return -1, -1, -1, 0, 0
        k.st[D_BYTES_COPIED] += payload
        return head, old, obj, copy[payload, CP_TS] + cfg[BN_AGG_PAGE], payload
    if cfg[BN_HEAD] == BN_HEAD_PAGE_FRAG:
        obj = _slab_alloc(k.slabs, CACHE_SKB, cpu, k.pages, k.faults, k.st)  # build_skb(data, rx_buf_size)
    else:
        obj = _nc_get(k, cpu)  # napi_build_skb(data, rx_buf_size)
    if obj < 0:
        _pp_put_buf(k, cpu, old, True)  # page_pool_free_va(allow_direct), skb_free_frag()
        return -1, -1, -1, 0, 0
    return old, -1, obj, cfg[BUILD_TRUESIZE], length


@njit(cache=True, forceinline=True)
def _bnxt_rx_agg_pages(k, cpu, frag, start, nagg):
    """__bnxt_rx_agg_pages(): each aggregation page attached as a frag once a replacement was taken; no
    replacement: the rest stay posted (bnxt_reuse_rx_agg_bufs()).  (frags, pages attached: nagg when all)."""
    agg = k.bnxt.agg[cpu]
    agg_count = k.cfg[BN_AGG_COUNT]
    a = start
    for i in range(nagg):
        if k.cfg[BN_AGG_POOL]:
            new = _pp_alloc_pages(k, cpu)
        else:
            new = _alloc_pages(k.pages, k.faults, k.st, ORDER_0, L_NONE)  # alloc_page() (6.1)
        if new < 0:
            k.st[D_BUF_FAILURES] += 1
            for _ in range(nagg - i):
                agg[a, BR_DONE] = 0
                a = a + 1 if a + 1 < agg_count else 0
            return frag, i
        frag = _add_frag(k.frags, k.st, frag, agg[a, BR_PAGE])
        agg[a, BR_PAGE] = new
        agg[a, BR_DONE] = 0
        a = a + 1 if a + 1 < agg_count else 0
    return frag, nagg


@njit(cache=True, forceinline=True)
def _bnxt_reuse_agg(k, cpu, start, nagg):
    """bnxt_reuse_rx_agg_bufs(): the frame's aggregation buffers stay posted."""
    agg_count = k.cfg[BN_AGG_COUNT]
    a = start
    for _ in range(nagg):
        k.bnxt.agg[cpu, a, BR_DONE] = 0
        a = a + 1 if a + 1 < agg_count else 0


@njit(cache=True, forceinline=True)
def _bnxt_rx_pkt(k, cpu, at):
    """bnxt_rx_pkt() of completion at: the RX buffer's skb, then the aggregation pages (a page missing frees
    the skb: kfree_skb()).  (head, frags, sk_buff, truesize, bytes in the head), the sk_buff -1 when the frame
    was dropped."""
    c = k.bnxt.comp[cpu, at]
    ix, nagg = c[BC_SLOT], c[BC_NAGG]
    k.st[D_USED] += 1 + nagg
    k.bnxt.rx[cpu, ix, BR_DONE] = 0
    head, frag, obj, ts, hlen = _bnxt_head_skb(k, cpu, ix, c[BC_HEAD_LEN], c[BC_HLEN])
    if obj < 0:
        _bnxt_reuse_agg(k, cpu, c[BC_AGG], nagg)
        return -1, -1, -1, 0, 0
    if nagg:
        frag, attached = _bnxt_rx_agg_pages(k, cpu, frag, c[BC_AGG], nagg)
        if attached < nagg:
            _free_skb(k, cpu, head, frag, obj)
            return -1, -1, -1, 0, 0
        ts += nagg * k.cfg[BN_AGG_PAGE]
    return head, frag, obj, ts, hlen


@njit(cache=True, forceinline=True)
def _bnxt_poll(k, cpu, budget):
    """bnxt_poll(): bnxt_rx_pkt() per completion, up to budget; the skbs for the stack through k.batch
    (bnxt_deliver_skb(): napi_gro_receive(), which passes UDP up as built).  (work, skbs for the stack)."""
    comps = k.bnxt.comp[cpu]
    done = ndel = 0
    while done < budget and rx._rx_pending(k, cpu) > 0:
        at = k.pcpu[cpu, NTC]
        k.pcpu[cpu, NTC] = at + 1 if at + 1 < comps.shape[0] else 0
        length = comps[at, BC_LEN]
        head, frag, obj, ts, hlen = _bnxt_rx_pkt(k, cpu, at)
        if k.st[ERR]:
            return 0, 0
        done += 1
        if obj < 0:
            k.st[D_SKB_FAILURES] += 1
            rx._frame_dropped(k, cpu, length)
            continue
        rx._frame_done(k, cpu, length)
        k.bnxt.kinds[_bnxt_skb_kind(k, hlen)] += 1
        ndel = rx._batch_add(k, ndel, head, frag, obj, hlen, length - hlen, ts)
    return done, ndel


@njit(cache=True)
def _bnxt_close(k, cpu):
    """bnxt_close_queue() in the queue's softirq: each RX buffer back (page_pool_recycle_direct() of a page,
    page_pool_free_va(allow_direct) of a fragment, skb_free_frag()), each aggregation page
    (page_pool_put_full_page(), put_page()), then page_pool_destroy() of a queue that has a pool.
    (Completions left make the run the reference engine's.)"""
    b = k.bnxt
    k.st[PP_SOFTIRQ] = cpu + 1
    for slot in range(k.cfg[RING_COUNT]):
        pid = b.rx[cpu, slot, BR_PAGE]
        if pid >= 0:
            _pp_put_buf(k, cpu, pid, True)
            b.rx[cpu, slot, BR_PAGE] = -1
    for slot in range(k.cfg[BN_AGG_COUNT]):
        pid = b.agg[cpu, slot, BR_PAGE]
        if pid >= 0:
            _pp_put_buf(k, cpu, pid, False)
            b.agg[cpu, slot, BR_PAGE] = -1
    k.st[PP_SOFTIRQ] = 0
    if k.cfg[BN_AGG_POOL]:
        _page_pool_destroy(k, cpu)


# -- what the stack asks of a bnxt skb (its head is told by the bytes in it) --------------------------------------


@njit(cache=True, forceinline=True)
def _bnxt_skb_kind(k, hlen):
    """The kind of a bnxt skb of hlen bytes in its head: 0 built on an RX buffer, 1 + head kind for
    napi_alloc_skb(hlen)'s (every skb of page mode, a copy up to copybreak)."""
    if k.cfg[BN_PAGE_MODE] or hlen <= k.cfg[COPYBREAK]:
        return 1 + k.bnxt.copy[hlen, CP_KIND]
    return 0


@njit(cache=True, forceinline=True)
def _bnxt_condense(k, hlen):
    """skb_condense() of a bnxt skb of hlen bytes in its head: (its room from the headroom to the end, the
    truesize it is left with, SKB_TRUESIZE(end))."""
    if k.cfg[BN_PAGE_MODE] or hlen <= k.cfg[COPYBREAK]:
        return k.bnxt.copy[hlen, CP_ROOM], k.bnxt.copy[hlen, CP_TS]
    return k.cfg[BN_RX_ROOM], k.cfg[BUILD_TRUESIZE]
