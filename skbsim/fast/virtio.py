"""The fast engine's virtio_net: mergeable receive buffers from the queue's page frag, the device, the receive
loop and the refill, the close, compiled.

skbsim/drivers/virtio_net.py over the VirtioQueues record (skbsim.fast.state): each posted buffer's block
(a page id), offset and length, what the device wrote into it, each premapped block's struct virtnet_rq_dma
count; the queue's scalars (rq->alloc_frag, the EWMA, rq->last_dma, the buffer counts) are pcpu columns.
In scope: mergeable mode (VIRTIO_NET_F_MRG_RXBUF) without XDP on the releases whose buffers come from
skb_page_frag_refill() blocks; TCP segments through GRO (skbsim.fast.gro), other skbs up as built.  What the
virtio-net header and GRO do to each frame's head (pskb_may_pull() of the headers, eth_type_trans(), GRO's
pull from frags[0]) is measured once per distinct frame by the model itself (skbsim.fast.virtio_setup) and
arrives with the frame as its code: -1 when virtio_net_hdr_to_skb() refuses it, else the bytes left in the
head of an skb whose head had only the Ethernet header copied in (with TCP through GRO: once GRO pulled its
headers, plus its gso_size times GSO_CODE).
"""

from __future__ import annotations

from skbsim.drivers.virtio_net import GOOD_COPY_LEN
from skbsim.fast import gro, rx
from skbsim.fast.gro import G_ON, GS_GSO, M_HEAD_TS
from skbsim.fast.layout import ERR_EMPTY_FRAME, ERR_FRAG_LIST, ETH_HLEN, L_PAGE_FRAG, ORDER_0, njit
from skbsim.fast.mm import _add_frag, _alloc_pages, _nr_frags, _put_page
from skbsim.fast.napi import _alloc_rx_skb, _free_skb
from skbsim.fast.rules import _ewma_pkt_len_add, _get_mergeable_buf_len, _mergeable_buf_carve
from skbsim.fast.slub import _slab_alloc
from skbsim.fast.state import (
    CACHE_SKB, CB_N_1K, CB_N_BUILD, D_BUF_FAILURES, D_BYTES_COPIED, D_COPIED, D_FRAMES_DROPPED,
    D_NIC_FRAMES, D_PAGES_ALLOC, D_RELEASED, D_RING_DROPS, D_SKB_FAILURES, D_USED, ERR, HEAD_FRAGSZ, HEAD_KIND,
    HEAD_TRUESIZE, HW_NEXT, NTC, NTU, PAGE_REF, PAGE_SIZE, Q_DROPPED, Q_NIC_FRAMES, RING_COUNT,
    VB_LEN, VB_PAGE, VB_START, VQ_COPY_ROOM, VQ_EWMA, VQ_FRAG_OFFSET, VQ_FRAG_ORDER, VQ_FRAG_PAGE,
    VQ_FRAG_SIZE, VQ_HDR_LEN, VQ_HOLE_FOLD, VQ_IP_ALIGN, VQ_L1, VQ_LAST_DMA, VQ_MAX_FRAGS, VQ_MIN_BUF_LEN,
    VQ_OVERFLOW_FIX, VQ_PREMAPPED, VQ_REFILL, VQ_REPOLL, VQ_SHINFO, VQ_TS0, VU_CODE, VU_LEN, VU_NUM,
)
from skbsim.fast.state import TC_RUN  # -- TCP through NAPI drivers --

#: a frame's code with TCP through GRO: the bytes in the head, plus the skb's gso_size times GSO_CODE
GSO_CODE = 1 << 16


# -- the virtqueue and its premapped blocks --------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _virtnet_rq_unmap(k, pid):
    """virtnet_rq_unmap(): one use of block pid's DMA record ends; the last one puts the record's page reference."""
    k.virtio.dma[pid] -= 1
    if k.virtio.dma[pid] == 0:
        _put_page(k.pages, k.st, pid)


@njit(cache=True, forceinline=True)
def _virtnet_rq_get_buf(k, cpu):
    """virtnet_rq_get_buf(): the next used buffer's slot (its descriptor free again), unmapped when premapped."""
    q = k.pcpu[cpu]
    slot = q[NTC] & (k.cfg[RING_COUNT] - 1)
    q[NTC] += 1
    if k.cfg[VQ_PREMAPPED]:
        _virtnet_rq_unmap(k, k.virtio.buf[cpu, slot, VB_PAGE])
    return slot


@njit(cache=True, forceinline=True)
def _virtnet_device_rx(k, cpu, length, code):
    """virtnet_device_rx() in mergeable mode: the header and frame fill posted buffers in order, each completely
    before the next; False (a ring drop, counted here) when the posted buffers cannot hold it."""
    if length == 0:
        k.st[ERR] = ERR_EMPTY_FRAME
        return False
    q = k.pcpu[cpu]
    buf = k.virtio.buf[cpu]
    used = k.virtio.used[cpu]
    mask = k.cfg[RING_COUNT] - 1
    total = k.cfg[VQ_HDR_LEN] + length
    room = 0
    count = 0
    at = q[HW_NEXT]
    while at < q[NTU] and room < total:
        room += buf[at & mask, VB_LEN]
        count += 1
        at += 1
    if room < total:
        k.st[D_RING_DROPS] += 1
        return False
    if k.gro.cfg[G_ON]:  # -- GRO --: the frame's TCP facts go with its first buffer
        gro._gro_nic(k, cpu, q[HW_NEXT] & mask)
    left = total
    for j in range(count):
        slot = (q[HW_NEXT] + j) & mask
        written = buf[slot, VB_LEN] if buf[slot, VB_LEN] < left else left
        left -= written
        used[slot, VU_LEN] = written
        used[slot, VU_NUM] = count if j == 0 else 0
        used[slot, VU_CODE] = code
    q[HW_NEXT] += count
    k.st[D_NIC_FRAMES] += 1
    q[Q_NIC_FRAMES] += 1
    return True


# -- posting buffers -------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _skb_page_frag_refill(k, cpu, size):
    """skb_page_frag_refill() of rq->alloc_frag: reused from 0 when only the queue holds it, kept while size
    bytes fit, else a new block (SKB_FRAG_PAGE_SIZE, then one page); False when none could be had."""
    q = k.pcpu[cpu]
    pid = q[VQ_FRAG_PAGE]
    if pid >= 0:
        if k.pages.page[pid, PAGE_REF] == 1:
            q[VQ_FRAG_OFFSET] = 0
            return True
        if q[VQ_FRAG_OFFSET] + size <= q[VQ_FRAG_SIZE]:
            return True
        _put_page(k.pages, k.st, pid)
        q[VQ_FRAG_PAGE] = -1
    q[VQ_FRAG_OFFSET] = 0
    order = k.cfg[VQ_FRAG_ORDER]
    if order:
        pid = _alloc_pages(k.pages, k.faults, k.st, order, L_PAGE_FRAG)
        if pid >= 0:
            q[VQ_FRAG_PAGE] = pid
            q[VQ_FRAG_SIZE] = k.cfg[PAGE_SIZE] << order
            k.st[D_PAGES_ALLOC] += 1
            return True
    pid = _alloc_pages(k.pages, k.faults, k.st, ORDER_0, L_PAGE_FRAG)
    if pid < 0:
        return False
    q[VQ_FRAG_PAGE] = pid
    q[VQ_FRAG_SIZE] = k.cfg[PAGE_SIZE]
    k.st[D_PAGES_ALLOC] += 1
    return True


@njit(cache=True, forceinline=True)
def _virtnet_rq_alloc(k, cpu, pid):
    """virtnet_rq_alloc() of a buffer of block pid: premapped, a block cut from offset 0 gets its DMA record
    (the previous block's loses its extra count) and every buffer counts in it; every buffer takes a page
    reference."""
    q = k.pcpu[cpu]
    if k.cfg[VQ_PREMAPPED]:
        if q[VQ_FRAG_OFFSET] == 0:
            if q[VQ_LAST_DMA] >= 0:
                _virtnet_rq_unmap(k, q[VQ_LAST_DMA])
                q[VQ_LAST_DMA] = -1
            k.pages.page[pid, PAGE_REF] += 1
            k.virtio.dma[pid] = 1
            q[VQ_LAST_DMA] = pid
        k.virtio.dma[pid] += 1
    k.pages.page[pid, PAGE_REF] += 1


@njit(cache=True, forceinline=True)
def _add_recvbuf_mergeable(k, cpu):
    """add_recvbuf_mergeable() without XDP: a buffer of get_mergeable_buf_len() bytes cut from the frag block
    (mergeable_buf_carve()), its truesize its length; False on -ENOMEM."""
    cfg = k.cfg
    q = k.pcpu[cpu]
    length = _get_mergeable_buf_len(q[VQ_EWMA], cfg[VQ_MIN_BUF_LEN], cfg[VQ_HDR_LEN], 0, cfg[PAGE_SIZE], cfg[VQ_L1])
    if not _skb_page_frag_refill(k, cpu, length):
        k.st[D_BUF_FAILURES] += 1
        return False
    pid = q[VQ_FRAG_PAGE]
    start, length, offset = _mergeable_buf_carve(q[VQ_FRAG_OFFSET], q[VQ_FRAG_SIZE], length, 0, 0,
                                                 cfg[VQ_PREMAPPED], cfg[VQ_OVERFLOW_FIX], cfg[VQ_HOLE_FOLD])
    _virtnet_rq_alloc(k, cpu, pid)
    q[VQ_FRAG_OFFSET] = offset
    slot = q[NTU] & (cfg[RING_COUNT] - 1)
    buf = k.virtio.buf[cpu, slot]
    buf[VB_PAGE] = pid
    buf[VB_START] = start
    buf[VB_LEN] = length
    q[NTU] += 1
    return True


@njit(cache=True, forceinline=True)
def _try_fill_recv(k, cpu):
    """try_fill_recv(): post buffers while descriptors are free; False when one could not be allocated."""
    q = k.pcpu[cpu]
    while q[NTU] - q[NTC] < k.cfg[RING_COUNT]:
        if not _add_recvbuf_mergeable(k, cpu):
            return False
    return True


# -- receiving -------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _page_to_skb(k, cpu, slot):
    """page_to_skb() of a frame's first buffer: build_skb() on the buffer (the frame above GOOD_COPY_LEN with
    skb_shared_info's room behind it, NET_IP_ALIGN 0), else napi_alloc_skb(GOOD_COPY_LEN) with the frame (or
    its Ethernet header, the rest of the buffer frag 0) copied.  (head, frag, sk_buff, truesize, bytes in
    the head); the sk_buff -1 when one could not be allocated."""
    cfg = k.cfg
    buf = k.virtio.buf[cpu, slot]
    pid = buf[VB_PAGE]
    truesize = buf[VB_LEN]
    length = k.virtio.used[cpu, slot, VU_LEN] - cfg[VQ_HDR_LEN]
    if not cfg[VQ_IP_ALIGN] and length > GOOD_COPY_LEN and truesize - cfg[VQ_HDR_LEN] - length >= cfg[VQ_SHINFO]:
        obj = _slab_alloc(k.slabs, CACHE_SKB, cpu, k.pages, k.faults, k.st)
        return pid, -1, obj, cfg[VQ_TS0] + truesize - cfg[VQ_SHINFO], length
    head, obj = _alloc_rx_skb(k, cpu, cfg[HEAD_KIND], cfg[HEAD_FRAGSZ], -1)
    if obj < 0:
        return head, -1, obj, 0, 0
    copy = length if length <= cfg[VQ_COPY_ROOM] else ETH_HLEN
    k.st[D_BYTES_COPIED] += copy
    if length > copy:
        return head, pid, obj, cfg[HEAD_TRUESIZE] + truesize, copy
    k.st[D_COPIED] += 1
    _put_page(k.pages, k.st, pid)
    return head, -1, obj, cfg[HEAD_TRUESIZE], copy


@njit(cache=True, forceinline=True)
def _drop_rest(k, cpu, num):
    """mergeable_buf_free(): the frame's other num - 1 buffers go back."""
    for _ in range(num - 1):
        slot = _virtnet_rq_get_buf(k, cpu)
        _put_page(k.pages, k.st, k.virtio.buf[cpu, slot, VB_PAGE])
        k.st[D_USED] += 1


@njit(cache=True, forceinline=True)
def _append_frags(k, cpu, num, frag, last_end):
    """receive_mergeable()'s loop over the frame's other num - 1 buffers, virtnet_skb_append_frag(): a new
    frag, or the last one extended (its page reference put) when the buffer continues it in the same block.
    (frag, truesize added, bytes added); a frag_list skb (beyond MAX_SKB_FRAGS) is left to the reference
    engine (st[ERR])."""
    ts = 0
    nbytes = 0
    last = frag
    for _ in range(num - 1):
        slot = _virtnet_rq_get_buf(k, cpu)
        k.st[D_USED] += 1
        buf = k.virtio.buf[cpu, slot]
        pid = buf[VB_PAGE]
        nfrags = _nr_frags(k.frags, frag)
        if nfrags == k.cfg[VQ_MAX_FRAGS]:
            k.st[ERR] = ERR_FRAG_LIST
            return frag, ts, nbytes
        written = k.virtio.used[cpu, slot, VU_LEN]
        if nfrags and last == pid and last_end == buf[VB_START]:
            _put_page(k.pages, k.st, pid)
        else:
            frag = _add_frag(k.frags, k.st, frag, pid)
        last = pid
        last_end = buf[VB_START] + written
        ts += buf[VB_LEN]
        nbytes += written
    return frag, ts, nbytes


@njit(cache=True, forceinline=True)
def _receive_mergeable(k, cpu, ndel):
    """receive_buf() -> receive_mergeable() of the next used frame, then virtnet_receive_done(): the skb to the
    poll's batch (napi_gro_receive(): up as built, or GRO's for a TCP run), or the frame dropped.  Returns the
    batch's length."""
    cfg = k.cfg
    first = _virtnet_rq_get_buf(k, cpu)
    used = k.virtio.used[cpu, first]
    num = used[VU_NUM]
    code = used[VU_CODE]
    k.st[D_USED] += 1
    frame_len = used[VU_LEN] - cfg[VQ_HDR_LEN]
    copied = k.st[D_COPIED]
    head, frag, obj, ts, hlen = _page_to_skb(k, cpu, first)
    if obj < 0:
        _put_page(k.pages, k.st, k.virtio.buf[cpu, first, VB_PAGE])
        _drop_rest(k, cpu, num)
        k.st[D_SKB_FAILURES] += 1
        rx._frame_dropped(k, cpu, frame_len + _rest_len(k, cpu, first, num))
        return ndel
    if num > 1:
        buf = k.virtio.buf[cpu, first]
        frag, more_ts, more = _append_frags(k, cpu, num, frag, buf[VB_START] + used[VU_LEN])
        ts += more_ts
        frame_len += more
    k.pcpu[cpu, VQ_EWMA] = _ewma_pkt_len_add(k.pcpu[cpu, VQ_EWMA], frame_len)
    k.st[D_RELEASED] += num - (k.st[D_COPIED] - copied)
    if code < 0:
        # virtio_net_hdr_to_skb() refused the header: kfree_skb()
        _free_skb(k, cpu, head, frag, obj)
        rx._frame_dropped(k, cpu, frame_len)
        return ndel
    rx._frame_done(k, cpu, frame_len)
    # paths and head_sources count the skbs handed to the stack: built on the buffer, or a copy
    built = head == k.virtio.buf[cpu, first, VB_PAGE]
    if built:
        k.st[CB_N_BUILD] += 1
    else:
        k.st[CB_N_1K + cfg[HEAD_KIND]] += 1
    if frag >= 0:
        hlen = ETH_HLEN + (code & (GSO_CODE - 1))  # the headers pulled in, measured by the model
    ndel = rx._batch_add(k, ndel, head, frag, obj, hlen, frame_len - hlen, ts)
    if k.gro.cfg[G_ON] or k.tcp.tc[TC_RUN]:  # -- GRO --, -- TCP through NAPI drivers --: the head's shape
        # (a head built on the buffer holds the whole frame, num 1: ts is SKB_TRUESIZE(end) of the buffer's)
        k.gro.member[obj, M_HEAD_TS] = ts if built else 0
    if k.gro.cfg[G_ON]:  # -- GRO --: napi_gro_receive()
        # virtio_net sets no skb->hash (no VIRTIO_NET_F_HASH_REPORT): every skb in GRO's bucket 0, whatever the
        # frame's RSS hash (the traffic's and the TCP senders' frames carry theirs)
        k.gro.fdesc[cpu, first, gro.F_HASH] = 0
        k.gro.st[GS_GSO] = code // GSO_CODE
        ndel = gro._napi_gro_receive(k, cpu, ndel, first)
    return ndel


@njit(cache=True, forceinline=True)
def _rest_len(k, cpu, first, num):
    """The bytes a frame wrote into its buffers after the first (read back after they were freed)."""
    mask = k.cfg[RING_COUNT] - 1
    total = 0
    for j in range(1, num):
        total += k.virtio.used[cpu, (first + j) & mask, VU_LEN]
    return total


@njit(cache=True, forceinline=True)
def _virtnet_receive(k, cpu, budget):
    """virtnet_poll() -> virtnet_receive(): up to budget frames, a refill once more than min(budget, ring) / 2
    descriptors are free (a failure: the whole budget returned, 6.18.7+, or refill_work() right after the
    poll); GRO's flush follows in the poll (rx._poll).  (work, skbs for the stack)."""
    q = k.pcpu[cpu]
    count = k.cfg[RING_COUNT]
    packets = ndel = 0
    while packets < budget and q[NTC] < q[HW_NEXT]:
        ndel = _receive_mergeable(k, cpu, ndel)
        if k.st[ERR]:
            return 0, 0
        packets += 1
    half = (budget if budget < count else count) // 2
    if count - (q[NTU] - q[NTC]) > half and not _try_fill_recv(k, cpu):
        if k.cfg[VQ_REPOLL]:
            packets = budget
        else:
            q[VQ_REFILL] = 1
    if q[VQ_REFILL]:
        q[VQ_REFILL] = 0 if _try_fill_recv(k, cpu) else 1  # refill_work(), GFP_KERNEL
    return packets, ndel


# -- the close -------------------------------------------------------------------------------------------------


@njit(cache=True)
def _virtnet_close_queue(k, cpu):
    """virtnet_close_queue(): frames still used on the ring are dropped, every buffer (used, then posted) goes
    back (unmapped, its page reference put), then the last DMA record and the frag block."""
    q = k.pcpu[cpu]
    mask = k.cfg[RING_COUNT] - 1
    while q[NTC] < q[NTU]:
        slot = q[NTC] & mask
        if q[NTC] < q[HW_NEXT] and k.virtio.used[cpu, slot, VU_NUM]:
            k.st[D_FRAMES_DROPPED] += 1
            q[Q_DROPPED] += 1
        _virtnet_rq_get_buf(k, cpu)
        _put_page(k.pages, k.st, k.virtio.buf[cpu, slot, VB_PAGE])
    q[HW_NEXT] = q[NTU]
    if q[VQ_FRAG_PAGE] >= 0:
        if q[VQ_LAST_DMA] >= 0:
            _virtnet_rq_unmap(k, q[VQ_LAST_DMA])
            q[VQ_LAST_DMA] = -1
        _put_page(k.pages, k.st, q[VQ_FRAG_PAGE])
        q[VQ_FRAG_PAGE] = -1
