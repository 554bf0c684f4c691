"""The fast engine's libeth queues (iavf, idpf, ice's page_pool form): the NIC side, the clean loop, the close.

skbsim/drivers/libeth.py over the LibethFqs record (skbsim.fast.state): a row per fill queue (struct
libeth_fq: row cpu * cfg[FQ_COUNT] + q, which is also its page_pool's row), each slot's buffer
(struct libeth_fqe), and each queue's completions not yet cleaned, a FIFO from pcpu NTC.  Buffers come
from page_pool_dev_alloc() (skbsim.fast.page_pool); every frame becomes one skb built on its first
buffer, its other buffers added as frags, all of them given back to their pools when the skb is freed.
With header split (cfg[FQ_HSPLIT]) the last fill queue holds the header buffers: the NIC splits a frame
after its headers (the header length the traffic gives, eth_get_headlen() of its first bytes) into the
header buffer at the slot of its first payload buffer.
"""

from __future__ import annotations

from skbsim.fast import gro  # -- GRO --
from skbsim.fast.gro import G_ON  # -- GRO --
from skbsim.fast.layout import ERR_EMPTY_FRAME, njit
from skbsim.fast.mm import _add_frag
from skbsim.fast.napi import _nc_get
from skbsim.fast.page_pool import _page_pool_destroy, _pp_dev_alloc, _pp_put_page
from skbsim.fast import rx  # (a module: rx dispatches to pp_drivers, which calls this one)
from skbsim.fast.rules import _idpf_rx_hsplit_wa_len
from skbsim.fast.state import (
    BUILD_OVERHEAD, C_FQ, C_HDR_LEN, C_LEN, C_NBUFS, C_START, D_BUF_FAILURES, D_BYTES_COPIED, D_NIC_FRAMES,
    D_RELEASED, D_RING_DROPS, D_SKB_FAILURES, D_USED, ERR, FQE_DONE, FQE_PAGE, FQE_TRUESIZE, FQ_BUF_LEN, FQ_COUNT,
    FQ_EMPTY, FQ_HSPLIT, FQ_LO, FQ_NEXT_FREE, FQ_REFILL_EVERY, FQ_SHORT_LEN, FQ_SKBS, FQ_TRUESIZE, L1_CACHE_BYTES,
    NTC, PP_SOFTIRQ, Q_NIC_FRAMES, RING_COUNT,
)


# -- fill queues ----------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _libeth_fqe_put(lb, row, slot):
    """The slot's buffer is taken (by an skb or back to the pool): the slot is empty until the next refill."""
    fqe = lb.fqe[row, slot]
    fqe[FQE_PAGE] = -1
    fqe[FQE_DONE] = 0
    fq = lb.fq[row]
    fq[FQ_EMPTY] += 1
    if slot < fq[FQ_LO]:
        fq[FQ_LO] = slot


@njit(cache=True)
def _libeth_refill_fq(k, row):
    """_refill_fq(): libeth_rx_alloc() (page_pool_dev_alloc() of the queue's truesize) into every empty
    slot in slot order, stopping at the first failure.  The slots below FQ_LO all hold a buffer, so the
    scan starts there, and it ends once no slot is empty."""
    fq = k.lb.fq[row]
    fqe = k.lb.fqe[row]
    count = k.cfg[RING_COUNT]
    slot = fq[FQ_LO]
    while fq[FQ_EMPTY] > 0 and slot < count:
        if fqe[slot, FQE_PAGE] < 0:
            pid, truesize = _pp_dev_alloc(k, row, fq[FQ_TRUESIZE])
            if pid < 0:
                k.st[D_BUF_FAILURES] += 1
                fq[FQ_LO] = slot
                return
            fqe[slot, FQE_PAGE] = pid
            fqe[slot, FQE_TRUESIZE] = truesize
            fq[FQ_EMPTY] -= 1
        slot += 1
    fq[FQ_LO] = count if fq[FQ_EMPTY] == 0 else slot


@njit(cache=True)
def _libeth_refill_all(k, cpu):
    """_refill_all(): each fill queue of the RX queue refilled, in order."""
    nfq = k.cfg[FQ_COUNT]
    for q in range(nfq):
        _libeth_refill_fq(k, cpu * nfq + q)


# -- the NIC --------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _libeth_hdr_len(k, cpu, length, hlen):
    """With header split, the bytes the NIC writes into the header buffer: the frame's header length (hlen)
    unless that is all of it or more than a header buffer takes (0: not split); 0 without header split."""
    if k.cfg[FQ_HSPLIT] == 0:
        return 0
    hdr_buf_len = k.lb.fq[cpu * k.cfg[FQ_COUNT] + k.cfg[FQ_COUNT] - 1, FQ_BUF_LEN]
    return 0 if hlen >= length or hlen > hdr_buf_len else hlen


@njit(cache=True, forceinline=True)
def _libeth_nic_receive(k, cpu, length, hlen):
    """libeth_nic_receive() (the frame is within rxmax): the fill queue it picks (idpf's short queue when the
    frame fits one short buffer), ceil(payload / buf_len) buffers from its next slot on (and with header
    split the header buffer at the first one's slot), each posted and not holding a completion; else a
    ring drop."""
    if length == 0:
        k.st[ERR] = ERR_EMPTY_FRAME
        return False
    nfq = k.cfg[FQ_COUNT]
    count = k.cfg[RING_COUNT]
    hdr_len = _libeth_hdr_len(k, cpu, length, hlen)
    payload = length - hdr_len
    q = 1 if payload <= k.cfg[FQ_SHORT_LEN] else 0
    row = cpu * nfq + q
    fq = k.lb.fq[row]
    fqe = k.lb.fqe[row]
    nbufs = (payload + fq[FQ_BUF_LEN] - 1) // fq[FQ_BUF_LEN]
    start = fq[FQ_NEXT_FREE]
    hdr = k.lb.fqe[cpu * nfq + nfq - 1, start]
    if nbufs > count or (k.cfg[FQ_HSPLIT] and (hdr[FQE_PAGE] < 0 or hdr[FQE_DONE])):
        k.st[D_RING_DROPS] += 1
        return False
    slot = start
    for _ in range(nbufs):
        if fqe[slot, FQE_PAGE] < 0 or fqe[slot, FQE_DONE]:
            k.st[D_RING_DROPS] += 1
            return False
        slot = slot + 1 if slot + 1 < count else 0
    slot = start
    for _ in range(nbufs):
        fqe[slot, FQE_DONE] = 1
        slot = slot + 1 if slot + 1 < count else 0
    fq[FQ_NEXT_FREE] = slot
    if k.cfg[FQ_HSPLIT]:
        hdr[FQE_DONE] = 1
    comps = k.lb.comp[cpu]
    tail = (k.pcpu[cpu, NTC] + rx._rx_pending(k, cpu)) % comps.shape[0]
    comps[tail, C_FQ] = q
    comps[tail, C_START] = start
    comps[tail, C_NBUFS] = nbufs
    comps[tail, C_LEN] = length
    comps[tail, C_HDR_LEN] = hdr_len
    if k.gro.cfg[G_ON]:  # -- GRO --: the frame's TCP facts go with its completion
        gro._gro_nic(k, cpu, tail)
    k.st[D_NIC_FRAMES] += 1
    k.pcpu[cpu, Q_NIC_FRAMES] += 1
    return True


# -- the clean loop -------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _libeth_recycle(k, row, slot, n):
    """libeth_rx_recycle_slow() of n buffers of fill queue row from slot on (page_pool_put_full_page())."""
    count = k.cfg[RING_COUNT]
    for _ in range(n):
        _pp_put_page(k, row, k.lb.fqe[row, slot, FQE_PAGE], False)
        _libeth_fqe_put(k.lb, row, slot)
        slot = slot + 1 if slot + 1 < count else 0


@njit(cache=True, forceinline=True)
def _libeth_build_frame(k, cpu, row, start, nbufs, length, hdr_len):
    """libeth_build_frame(): napi_build_skb() on the first buffer (with header split the header buffer, into
    which idpf_rx_hsplit_wa() copies the first bytes of a frame the NIC did not split, giving back a first
    payload buffer it empties), its truesize, marked for recycling; skb_add_rx_frag() of the payload
    buffers after it with theirs.  (head page, frags, sk_buff, truesize, bytes in the head), the sk_buff -1
    when none could be had: every buffer then goes back to its pool (libeth_rx_recycle_slow())."""
    count = k.cfg[RING_COUNT]
    fqe = k.lb.fqe[row]
    size = length if length < k.lb.fq[row, FQ_BUF_LEN] else k.lb.fq[row, FQ_BUF_LEN]  # the first buffer's
    head_row, first, nfrags = row, start + 1 if start + 1 < count else 0, nbufs - 1
    if k.cfg[FQ_HSPLIT]:
        head_row, first, nfrags = cpu * k.cfg[FQ_COUNT] + k.cfg[FQ_COUNT] - 1, start, nbufs
        if hdr_len == 0:
            hdr_len = _idpf_rx_hsplit_wa_len(size, k.cfg[L1_CACHE_BYTES])
            k.st[D_BYTES_COPIED] += hdr_len
            if size == hdr_len:
                _libeth_recycle(k, row, start, 1)
                first, nfrags = start + 1 if start + 1 < count else 0, nbufs - 1
        size = hdr_len
    obj = _nc_get(k, cpu)
    if obj < 0:
        _libeth_recycle(k, head_row, start, 1)
        _libeth_recycle(k, row, first, nfrags)
        return -1, -1, -1, 0, 0
    head = k.lb.fqe[head_row, start, FQE_PAGE]
    truesize = k.lb.fqe[head_row, start, FQE_TRUESIZE] + k.cfg[BUILD_OVERHEAD]
    _libeth_fqe_put(k.lb, head_row, start)
    k.lb.fq[head_row, FQ_SKBS] += 1
    frag = -1
    slot = first
    for _ in range(nfrags):
        frag = _add_frag(k.frags, k.st, frag, fqe[slot, FQE_PAGE])
        truesize += fqe[slot, FQE_TRUESIZE]
        _libeth_fqe_put(k.lb, row, slot)
        slot = slot + 1 if slot + 1 < count else 0
    return head, frag, obj, truesize, size


@njit(cache=True, forceinline=True)
def _libeth_poll(k, cpu, budget):
    """libeth_poll(): libeth_build_frame() per completion, up to budget (iavf refills every 16 buffers
    cleaned), the fill queues refilled at the end; the skbs for the stack through k.batch
    (napi_gro_receive(): UDP goes up as built).  (work, skbs for the stack)."""
    comps = k.lb.comp[cpu]
    nfq = k.cfg[FQ_COUNT]
    every = k.cfg[FQ_REFILL_EVERY]
    done = ndel = cleaned = 0
    while done < budget and rx._rx_pending(k, cpu) > 0:
        at = k.pcpu[cpu, NTC]
        k.pcpu[cpu, NTC] = at + 1 if at + 1 < comps.shape[0] else 0
        nbufs = comps[at, C_NBUFS] + k.cfg[FQ_HSPLIT]  # the header buffer too
        length = comps[at, C_LEN]
        k.st[D_USED] += nbufs
        k.st[D_RELEASED] += nbufs
        head, frag, obj, truesize, hlen = _libeth_build_frame(k, cpu, cpu * nfq + comps[at, C_FQ], comps[at, C_START],
                                                              comps[at, C_NBUFS], length, comps[at, C_HDR_LEN])
        if k.st[ERR]:
            return 0, 0
        done += 1
        cleaned += nbufs
        if obj < 0:
            k.st[D_SKB_FAILURES] += 1
            rx._frame_dropped(k, cpu, length)
        else:
            rx._frame_done(k, cpu, length)
            ndel = rx._batch_add(k, ndel, head, frag, obj, hlen, length - hlen, truesize)
            if k.gro.cfg[G_ON]:  # -- GRO --: napi_gro_receive(), its facts at the completion
                ndel = gro._napi_gro_receive(k, cpu, ndel, at)
        if every and cleaned >= every:
            _libeth_refill_all(k, cpu)
            cleaned = 0
    _libeth_refill_all(k, cpu)
    return done, ndel


@njit(cache=True)
def _libeth_close(k, cpu):
    """libeth_close() in the queue's softirq: each fill queue's posted buffers back to its pool
    (libeth_rx_recycle_slow()), then its page_pool_destroy().  (Completions left make the run the
    reference engine's.)"""
    k.st[PP_SOFTIRQ] = cpu + 1
    nfq = k.cfg[FQ_COUNT]
    for q in range(nfq):
        row = cpu * nfq + q
        for slot in range(k.cfg[RING_COUNT]):
            pid = k.lb.fqe[row, slot, FQE_PAGE]
            if pid >= 0:
                _pp_put_page(k, row, pid, False)
                _libeth_fqe_put(k.lb, row, slot)
        _page_pool_destroy(k, row)
    k.st[PP_SOFTIRQ] = 0
