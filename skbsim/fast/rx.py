"""The fast engine's NIC drivers: ice and copybreak (DMA, the clean loop in each release's form, the poll), compiled.

skbsim/drivers/ice.py and copybreak.py over the Rings record: each slot's buffer page and bias,
each descriptor's status and length, the ring's indices (skbsim.fast.state).
"""

from __future__ import annotations

from skbsim.fast import virtio
from skbsim.fast.layout import (
    DD_DONE, DD_EOP, ERR_BUG, ERR_EMPTY_FRAME, ERR_FRAME_ABOVE_RING, FL_TAG, ICE_RX_HDR_SIZE, L_NONE,
    O_DRIVER, USHRT_MAX, njit,
)
from skbsim.fast import pp_drivers  # (a module: pp_drivers uses this one's _batch_add and _frame_*)
from skbsim.fast.mm import _add_frag, _alloc_pages, _fl_give, _fl_take, _pf_alloc, _put_page, _put_pages
from skbsim.fast.napi import _alloc_rx_skb, _nc_get
from skbsim.fast import poll  # (a module, as tun imports it)
from skbsim.fast.rules import _ice_can_reuse_rx_page
from skbsim.fast.sock import _trace_drop
from skbsim.fast.state import (
    BUF_BIAS, BUF_PAGE, BUF_PGCNT, BUILD_TRUESIZE, CB_BUF_FRAGSZ, CB_BUF_SIZE, CB_BUILD_TS, CB_FRAGSZ, CB_KIND,
    CB_N_1K, CB_N_BUILD, CB_TRUESIZE, COPYBREAK, DESC_DD, DESC_HLEN, DESC_LEN, DRIVER,
    DRIVER_COPYBREAK, DRIVER_VIRTIO, D_BUF_FAILURES, D_BYTES, D_BYTES_COPIED, D_COPIED, D_FRAMES, D_FRAMES_DROPPED,
    D_NIC_FRAMES, D_PAGES_ALLOC, D_RELEASED, D_REUSED, D_RING_DROPS, D_SKB_FAILURES, D_USED, ERR, FIRST_DESC, FRAME_SZ,
    HEAD_FRAGSZ, HEAD_KIND, HEAD_TRUESIZE, HW_NEXT, LEGACY, NOW, NTA, NTC, NTU, PAGE_REF, PUT_MODE,
    Q_DROPPED, Q_FRAMES, Q_NIC_FRAMES, RING_COUNT, RING_ORDER, RX_BUF_LEN, SKB_DLEN, SKB_FRAG, SKB_HEAD, SKB_HLEN,
    SKB_OBJ, SKB_TS, TAIL, TRACE,
)
from skbsim.fast.state import PAGE_POOL, PP_SOFTIRQ  # page_pool
from skbsim.fast import gro  # GRO
from skbsim.fast.gro import G_ON  # GRO
from skbsim.fast import tcp_napi  # -- TCP through NAPI drivers -- (modules)
from skbsim.fast.state import D_OVERSIZE, RING_DROPS, RXMAX, SCHEDULED, TC_RUN  # -- TCP ... --
from skbsim.fast.napi import _raise_irq  # -- TCP through NAPI drivers --

#: Config.put_mode: ice puts buffers back per buffer (6.1), per poll (6.3 to 6.12.13), per frame (6.12.14+)
PUT_BUFFER, PUT_POLL, PUT_FRAME = 0, 1, 2

# -- the NIC ------------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _nic_buffers(k, length):
    """How many rx_buf_len buffers a frame of length bytes takes; 0, with err[0] set, for an empty one."""
    if length == 0:
        k.st[ERR] = ERR_EMPTY_FRAME
        return 0
    rx_buf_len = k.cfg[RX_BUF_LEN]
    return 1 if length <= rx_buf_len else (length + rx_buf_len - 1) // rx_buf_len


@njit(cache=True, forceinline=True)
def _nic_dma(k, cpu, length, nbufs, hlen):
    """The NIC writes a frame into nbufs descriptors from HW_NEXT on: rx_buf_len bytes each (the last the
    rest), the header length (ice legacy-rx) on the first, DD_EOP on the last."""
    desc = k.rings.desc[cpu]
    count = k.cfg[RING_COUNT]
    rx_buf_len = k.cfg[RX_BUF_LEN]
    hw = k.pcpu[cpu, HW_NEXT]
    if k.gro.cfg[G_ON]:  # -- GRO --: the frame's TCP facts go with its first descriptor
        gro._gro_nic(k, cpu, hw)
    remaining = length
    for b in range(nbufs):
        part = remaining if remaining < rx_buf_len else rx_buf_len
        remaining -= part
        desc[hw, DESC_LEN] = part
        desc[hw, DESC_HLEN] = hlen if b == 0 else 0
        desc[hw, DESC_DD] = DD_EOP if b == nbufs - 1 else DD_DONE
        hw += 1
        if hw == count:
            hw = 0
    k.pcpu[cpu, HW_NEXT] = hw
    k.st[D_NIC_FRAMES] += 1
    k.pcpu[cpu, Q_NIC_FRAMES] += 1


@njit(cache=True, forceinline=True)
def _ring_distance(start, end, count):
    """Slots from index start up to index end of a ring of count (both in [0, count)): (end - start) mod count,
    without a division."""
    distance = end - start
    return distance + count if distance < 0 else distance


@njit(cache=True, forceinline=True)
def _nic_receive(k, cpu, length, hlen):
    """ice_nic_receive() / copybreak_nic_receive(): the frame into ceil(len / rx_buf_len) descriptors; False
    when there are too few (a ring drop, counted here) or when err[0] is set.  ice needs them posted (up to
    the tail); copybreak needs consecutive slots, each cleaned and holding a buffer."""
    if k.cfg[PAGE_POOL]:
        return pp_drivers._pp_nic_receive(k, cpu, length, hlen)
    buf = k.rings.buf[cpu]
    desc = k.rings.desc[cpu]
    count = k.cfg[RING_COUNT]
    nbufs = _nic_buffers(k, length)
    if nbufs == 0:
        return False
    if k.cfg[DRIVER] == DRIVER_COPYBREAK:
        if nbufs > count:
            k.st[ERR] = ERR_FRAME_ABOVE_RING
            return False
        hw = k.pcpu[cpu, HW_NEXT]
        for _ in range(nbufs):
            if desc[hw, DESC_DD] or buf[hw, BUF_PAGE] < 0:
                k.st[D_RING_DROPS] += 1
                return False
            hw += 1
            if hw == count:
                hw = 0
    elif _ring_distance(k.pcpu[cpu, HW_NEXT], k.pcpu[cpu, TAIL], count) < nbufs:
        k.st[D_RING_DROPS] += 1
        return False
    _nic_dma(k, cpu, length, nbufs, hlen)
    return True


@njit(cache=True, forceinline=True)
def _nic_arrive(k, cpu, length, hlen):
    """Simulation._arrive()'s nic_receive() of a frame on queue cpu (hlen: what the traffic measured of it) and the
    IRQ: True when the NIC wrote it; a frame above rxmax is dropped as oversize, one that finds too few
    descriptors as ring_full (counted; not when st[ERR] is set)."""
    cfg = k.cfg
    ok = False
    if length > cfg[RXMAX]:
        k.st[D_OVERSIZE] += 1
    elif cfg[DRIVER] == DRIVER_VIRTIO:
        ok = virtio._virtnet_device_rx(k, cpu, length, hlen)  # hlen: the frame's code (fast.virtio)
    else:
        ok = _nic_receive(k, cpu, length, 0 if cfg[DRIVER] == DRIVER_COPYBREAK else hlen)
    if k.st[ERR]:
        return False
    if not ok:
        k.st[RING_DROPS] += 1
    elif k.pcpu[cpu, SCHEDULED] == 0:
        _raise_irq(k, cpu, k.st[NOW])
    return ok


# -- the poll -----------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _poll(k, cpu):
    """One napi_poll() (Simulation._poll) of an ice, copybreak or virtio_net queue (tun's: tun._tun_poll): the
    CPU's defer list first, the driver's poll (ice_napi_poll() / ice_clean_rx_irq(), copybreak_poll() or
    virtnet_poll()) within the
    budget, the poll's skbs to the stack, the end of the poll."""
    k.st[PP_SOFTIRQ] = cpu + 1  # kernel.softirq(cpu)
    taken_before, budget = poll._poll_start(k, cpu)
    work = ndel = 0
    if budget > 0:
        if k.cfg[DRIVER] == DRIVER_COPYBREAK:
            work, ndel = _cb_clean_rx_irq(k, cpu, budget)
        elif k.cfg[DRIVER] == DRIVER_VIRTIO:
            work, ndel = virtio._virtnet_receive(k, cpu, budget)
        elif k.cfg[PAGE_POOL]:
            work, ndel = pp_drivers._pp_poll(k, cpu, budget)
        else:
            work, ndel = _ice_clean_rx_irq(k, cpu, budget)
    if k.st[ERR]:
        return
    if k.gro.cfg[G_ON]:  # -- GRO --: napi_complete_done(), or __napi_poll() with the budget used up
        ndel = gro._gro_flush(k, ndel, work >= budget)
    poll._poll_deliver(k, cpu, ndel)
    k.st[PP_SOFTIRQ] = 0
    if k.st[ERR]:
        return
    poll._poll_end(k, cpu, work, budget, ndel, taken_before)


@njit(cache=True, forceinline=True)
def _batch_add(k, n, head, frag, obj, hlen, dlen, ts):
    """The poll's n-th skb for the stack (Simulation._poll's delivered list); returns n + 1."""
    skb = k.batch[n]
    skb[SKB_HEAD] = head
    skb[SKB_FRAG] = frag
    skb[SKB_OBJ] = obj
    skb[SKB_HLEN] = hlen
    skb[SKB_DLEN] = dlen
    skb[SKB_TS] = ts
    return n + 1


@njit(cache=True, forceinline=True)
def _frame_dropped(k, cpu, length):
    """A frame the driver dropped after DMA (no skb): counted, and traced."""
    k.st[D_FRAMES_DROPPED] += 1
    k.pcpu[cpu, Q_DROPPED] += 1
    if k.tcp.tc[TC_RUN]:  # -- TCP through NAPI drivers --: the frame's TCP facts go with it
        tcp_napi._frame_taken(k, cpu, False)
    if k.cfg[TRACE]:
        _trace_drop(k.trace, k.st, k.st[NOW], cpu, length, O_DRIVER)


@njit(cache=True, forceinline=True)
def _rx_pending(k, cpu):
    """sim._pending(): the frames the NIC wrote on queue cpu that the driver has not taken yet (the page_pool
    drivers' completions not yet cleaned)."""
    q = k.pcpu[cpu]
    return q[Q_NIC_FRAMES] - q[Q_FRAMES] - q[Q_DROPPED]


@njit(cache=True, forceinline=True)
def _frame_done(k, cpu, nbytes):
    """A frame the driver handed on: counted (nbytes: what the driver counts of it)."""
    k.st[D_BYTES] += nbytes
    k.st[D_FRAMES] += 1
    k.pcpu[cpu, Q_FRAMES] += 1
    if k.tcp.tc[TC_RUN]:  # -- TCP through NAPI drivers --: its TCP facts are the poll's next skb's
        tcp_napi._frame_taken(k, cpu, True)


# -- copybreak ----------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _cb_frame_slots(k, cpu, ntc):
    """copybreak's _frame_slots(): (slots, bytes) of the frame whose first descriptor is ntc, up to the one
    marked end of packet; (0, 0) when it is not all written yet."""
    desc = k.rings.desc[cpu]
    count = k.cfg[RING_COUNT]
    nslots = 1
    size = desc[ntc, DESC_LEN]
    last = ntc
    while desc[last, DESC_DD] != DD_EOP:
        last += 1
        if last == count:
            last = 0
        if desc[last, DESC_DD] == 0 or last == ntc:
            return 0, 0
        size += desc[last, DESC_LEN]
        nslots += 1
    return nslots, size


@njit(cache=True, forceinline=True)
def _cb_build(k, cpu, ntc, nslots, size):
    """copybreak_build_skb(): a replacement for every buffer of the frame first (napi_alloc_frag(), held in
    a row of frags.fl until all are there), then napi_build_skb() around the first old buffer, the others
    as frags (truesize buf_size each).  (head, frags as _add_frag() keeps them, sk_buff, truesize); the
    sk_buff -1 when the frame is dropped (its buffers stay, or are freed when there is no sk_buff)."""
    buf = k.rings.buf[cpu]
    cfg = k.cfg
    fl = k.frags.fl
    entry = _fl_take(k.frags, k.st)
    if entry < 0:
        return -1, -1, -1, 0
    taken = 0
    while taken < nslots:
        page = _pf_alloc(k.pages, k.faults, k.st, k.pcpu[cpu], cfg, cfg[CB_BUF_FRAGSZ])
        if page < 0:
            break
        taken += 1
        fl[entry, taken] = page
    if taken < nslots:
        # no replacement: those taken go back, the frame is dropped and its buffers stay
        k.st[D_BUF_FAILURES] += 1
        k.st[D_REUSED] += nslots
        for b in range(1, taken + 1):
            _put_page(k.pages, k.st, fl[entry, b])
        _fl_give(k.frags, k.st, entry)
        return -1, -1, -1, 0
    slot = ntc
    head = buf[slot, BUF_PAGE]
    for b in range(nslots):
        old = buf[slot, BUF_PAGE]
        buf[slot, BUF_PAGE] = fl[entry, b + 1]
        if b > 0:
            fl[entry, b] = old  # frag b - 1
        slot += 1
        if slot == cfg[RING_COUNT]:
            slot = 0
    fl[entry, 0] = nslots - 1
    k.st[D_RELEASED] += nslots
    obj = _nc_get(k, cpu)
    if obj < 0:
        # no sk_buff: the old buffers are freed (skb_free_frag), the frame dropped
        k.st[D_SKB_FAILURES] += 1
        _put_page(k.pages, k.st, head)
        for b in range(1, nslots):
            _put_page(k.pages, k.st, fl[entry, b])
        _fl_give(k.frags, k.st, entry)
        return -1, -1, -1, 0
    k.st[CB_N_BUILD] += 1
    if nslots == 1:
        _fl_give(k.frags, k.st, entry)  # one buffer: no frags to keep
        return head, -1, obj, cfg[CB_BUILD_TS]
    return head, FL_TAG + entry, obj, cfg[CB_BUILD_TS] + (nslots - 1) * cfg[CB_BUF_SIZE]


@njit(cache=True, forceinline=True)
def _cb_clean_rx_irq(k, cpu, budget):
    """copybreak_clean_rx_irq(): frames of one or more buffers, up to budget of them; a frame of at most
    copybreak bytes is copied into napi_alloc_skb(len) (the head's source depending on len; the buffer
    stays on the ring), a longer one built around its buffers.  (work, skbs for the stack)."""
    buf = k.rings.buf[cpu]
    desc = k.rings.desc[cpu]
    cfg = k.cfg
    rings = k.rings
    copy = rings.copy
    count = cfg[RING_COUNT]
    total = ndel = 0
    ntc = k.pcpu[cpu, NTC]
    while total < budget:
        if desc[ntc, DESC_DD] == 0:
            break
        nslots, size = _cb_frame_slots(k, cpu, ntc)
        if nslots == 0:
            break
        slot = ntc
        for b in range(nslots):
            if buf[slot, BUF_PAGE] < 0:
                k.st[ERR] = ERR_BUG  # a written descriptor without a buffer
                return 0, 0
            slot = slot + 1 if slot + 1 < count else 0
        k.st[D_USED] += nslots
        first = ntc
        first_len = desc[ntc, DESC_LEN]
        if size <= cfg[COPYBREAK]:
            kind = copy[CB_KIND, size]
            k.st[D_REUSED] += 1
            head, obj = _alloc_rx_skb(k, cpu, kind, copy[CB_FRAGSZ, size], -1)
            frag = -1
            ts = copy[CB_TRUESIZE, size]
            if obj < 0:
                k.st[D_SKB_FAILURES] += 1
            else:
                k.st[D_BYTES_COPIED] += size
                k.st[D_COPIED] += 1
                k.st[CB_N_1K + kind] += 1
        else:
            head, frag, obj, ts = _cb_build(k, cpu, ntc, nslots, size)
            if k.st[ERR]:
                return 0, 0
        for b in range(nslots):
            desc[ntc, DESC_DD] = 0
            ntc = ntc + 1 if ntc + 1 < count else 0
        total += 1
        if obj < 0:
            _frame_dropped(k, cpu, size)
            continue
        # hlen / dlen: the first buffer's bytes and the frags' (skb_condense's test)
        _frame_done(k, cpu, size)
        ndel = _batch_add(k, ndel, head, frag, obj, first_len, size - first_len, ts)
        if k.gro.cfg[G_ON]:  # -- GRO --
            ndel = gro._napi_gro_receive(k, cpu, ndel, first)
            if k.st[ERR]:
                return 0, 0
    k.pcpu[cpu, NTC] = ntc
    return total, ndel


# -- ice ----------------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _put_rx_buf(rings, pages, st, pcpu, cpu, slot):
    """ice_put_rx_buf(): ice_can_reuse_rx_page() on the sampled count and bias, then ice_reuse_rx_page() into
    next_to_alloc, or the driver's references drained."""
    buf = rings.buf[cpu]
    pid = buf[slot, BUF_PAGE]
    if _ice_can_reuse_rx_page(buf[slot, BUF_PGCNT], buf[slot, BUF_BIAS]):
        if buf[slot, BUF_BIAS] == 1:
            pages.page[pid, PAGE_REF] += USHRT_MAX - 1
            buf[slot, BUF_BIAS] = USHRT_MAX
        nta = pcpu[cpu, NTA]
        pcpu[cpu, NTA] = nta + 1 if nta + 1 < rings.buf.shape[1] else 0
        buf[nta, BUF_PAGE] = pid
        buf[nta, BUF_BIAS] = buf[slot, BUF_BIAS]
        st[D_REUSED] += 1
    else:
        _put_pages(pages, st, pid, buf[slot, BUF_BIAS])
        st[D_RELEASED] += 1
    buf[slot, BUF_PAGE] = -1


@njit(cache=True, forceinline=True)
def _ice_put_frame(k, cpu, first, ntc, consumed, put):
    """The buffers of the frame in slots [first, ntc): a dropped (consumed) frame gives each its reference
    back (ICE_XDP_CONSUMED); with put, each goes through ice_put_rx_buf() now, as 6.12.14+'s
    ice_put_rx_mbuf() does (6.9 puts them in the loop after the poll)."""
    buf = k.rings.buf[cpu]
    count = k.cfg[RING_COUNT]
    b = first
    while b != ntc:
        if consumed:
            buf[b, BUF_BIAS] += 1
        if put:
            _put_rx_buf(k.rings, k.pages, k.st, k.pcpu, cpu, b)
        b = b + 1 if b + 1 < count else 0


@njit(cache=True, forceinline=True)
def _ice_fill_head(k, cpu, slot, size):
    """The bytes of the frame's first buffer (size of them) that end up in the skb's head.

    build_skb: all of them, in place.  legacy-rx (ice_construct_skb): a buffer of at most ICE_RX_HDR_SIZE
    is copied whole and its reference given back (6.9 does it in the put loop through ICE_SKB_CONSUMED,
    before the reuse test, as here); a longer one has its eth_get_headlen() bytes copied and the rest
    becomes frag 0.
    """
    buf = k.rings.buf[cpu]
    desc = k.rings.desc[cpu]
    if not k.cfg[LEGACY]:
        return size
    headlen = size
    if size > ICE_RX_HDR_SIZE:
        headlen = desc[slot, DESC_HLEN]
    k.st[D_BYTES_COPIED] += headlen
    if size <= headlen:
        k.st[D_COPIED] += 1
        buf[slot, BUF_BIAS] += 1
    return headlen


@njit(cache=True, forceinline=True)
def _ice_gathered_skb(k, cpu, first, ntc):
    """6.3+: the skb built at the frame's last buffer around the gathered xdp_buff: (head, sk_buff, bytes in
    the head, frags, nr_frags); the sk_buff -1 when it could not be allocated."""
    buf = k.rings.buf[cpu]
    desc = k.rings.desc[cpu]
    cfg = k.cfg
    head, obj = _alloc_rx_skb(k, cpu, cfg[HEAD_KIND] if cfg[LEGACY] else -1, cfg[HEAD_FRAGSZ], buf[first, BUF_PAGE])
    if obj < 0:
        return head, obj, 0, -1, 0
    first_len = desc[first, DESC_LEN]
    hlen = _ice_fill_head(k, cpu, first, first_len)
    frag = -1
    nfrags = 0
    if hlen < first_len:
        frag = buf[first, BUF_PAGE]
        nfrags = 1
    # xdp_update_skb_shared_info(): the gathered buffers follow as frags
    count = k.cfg[RING_COUNT]
    b = first + 1 if first + 1 < count else 0
    while b != ntc:
        frag = _add_frag(k.frags, k.st, frag, buf[b, BUF_PAGE])
        nfrags += 1
        b = b + 1 if b + 1 < count else 0
    return head, obj, hlen, frag, nfrags


@njit(cache=True, forceinline=True)
def _ice_clean_rx_irq(k, cpu, budget):
    """ice_clean_rx_irq() in the release's form: up to budget frames of one or more buffers.  6.1 builds the
    skb at the first buffer and adds the others as frags as they come, putting each buffer back at once
    (a frame whose skb cannot be allocated stays on the ring); 6.3+ gathers the frame and builds the skb
    at its last buffer, putting buffers back per poll or per frame (a frame without an skb is dropped).
    Then ice_alloc_rx_bufs().  (work, skbs for the stack)."""
    buf = k.rings.buf[cpu]
    desc = k.rings.desc[cpu]
    cfg = k.cfg
    ring = k.pcpu[cpu]
    count = cfg[RING_COUNT]
    mode = cfg[PUT_MODE]
    total = ndel = 0
    ntc = ring[NTC]
    cached_ntc = ring[FIRST_DESC]
    cleaned = 0
    if mode == PUT_BUFFER:
        cleaned = (0 if ring[NTC] > ring[NTU] else count) + ring[NTC] - ring[NTU] - 1
    head_ts = cfg[HEAD_TRUESIZE] if cfg[LEGACY] else cfg[BUILD_TRUESIZE]
    head_kind = cfg[HEAD_KIND] if cfg[LEGACY] else -1  # ice_construct_skb()'s header skb, or ice_build_skb()
    # the frame being gathered: its first slot, bytes, skb head and sk_buff, bytes in the head, frags
    in_frame = False
    f_first = f_size = f_hlen = f_nfrags = 0
    f_head = f_obj = f_frag = -1
    while total < budget:
        if desc[ntc, DESC_DD] == 0:
            if in_frame:
                k.st[ERR] = ERR_BUG  # the NIC writes whole frames: a half-written one is not modelled
                return 0, 0
            break
        size = desc[ntc, DESC_LEN]
        eop = desc[ntc, DESC_DD] == DD_EOP
        slot = ntc
        if buf[slot, BUF_PAGE] < 0:
            # a written descriptor without a buffer: the reference model fails here too
            k.st[ERR] = ERR_BUG
            return 0, 0
        # ice_get_rx_buf() (6.12.14+ samples the page counts at the frame's end, ice_get_pgcnts(); nothing
        # between changes them)
        buf[slot, BUF_PGCNT] = k.pages.page[buf[slot, BUF_PAGE], PAGE_REF]
        buf[slot, BUF_BIAS] -= 1
        k.st[D_USED] += 1
        if not in_frame:
            in_frame = True
            f_first = slot
            f_size = size
            f_frag = -1
            f_nfrags = 0
            if mode == PUT_BUFFER:
                f_head, f_obj = _alloc_rx_skb(k, cpu, head_kind, cfg[HEAD_FRAGSZ], buf[slot, BUF_PAGE])
                if f_obj < 0:
                    # the frame stays on the ring with the buffer's reference back; the next poll retries
                    k.st[D_SKB_FAILURES] += 1
                    buf[slot, BUF_BIAS] += 1
                    break
                f_hlen = _ice_fill_head(k, cpu, slot, size)
                if f_hlen < size:
                    f_frag = buf[slot, BUF_PAGE]  # the rest of the first buffer: frag 0
                    f_nfrags = 1
        else:
            f_size += size
            if mode == PUT_BUFFER:
                # ice_add_rx_frag(): the buffer joins the skb at once
                f_frag = _add_frag(k.frags, k.st, f_frag, buf[slot, BUF_PAGE])
                f_nfrags += 1
        ntc = ntc + 1 if ntc + 1 < count else 0
        if mode == PUT_BUFFER:
            _put_rx_buf(k.rings, k.pages, k.st, k.pcpu, cpu, slot)
            cleaned += 1
        if not eop:
            continue
        in_frame = False
        if mode != PUT_BUFFER:
            f_head, f_obj, f_hlen, f_frag, f_nfrags = _ice_gathered_skb(k, cpu, f_first, ntc)
            if f_obj < 0:
                # dropped; every buffer of the frame gets its reference back (ICE_XDP_CONSUMED) and is put
                # back now (6.12.14+, ice_put_rx_mbuf) or by the loop after (6.9)
                k.st[D_SKB_FAILURES] += 1
                _frame_dropped(k, cpu, f_size)
                _ice_put_frame(k, cpu, f_first, ntc, True, mode == PUT_FRAME)
                ring[FIRST_DESC] = ntc
                break
            if mode == PUT_FRAME:
                _ice_put_frame(k, cpu, f_first, ntc, False, True)
            ring[FIRST_DESC] = ntc
        if k.st[ERR]:
            return 0, 0
        # eth_skb_pad() raises len to 60; the driver counts skb->len
        _frame_done(k, cpu, f_size if f_size >= 60 else 60)
        ndel = _batch_add(k, ndel, f_head, f_frag, f_obj, f_hlen, f_size - f_hlen, head_ts + f_nfrags * cfg[FRAME_SZ])
        if k.gro.cfg[G_ON]:  # -- GRO --
            ndel = gro._napi_gro_receive(k, cpu, ndel, f_first)
            if k.st[ERR]:
                return 0, 0
        total += 1
    if mode == PUT_POLL:
        first = ring[FIRST_DESC]
        while cached_ntc != first:
            _put_rx_buf(k.rings, k.pages, k.st, k.pcpu, cpu, cached_ntc)
            cached_ntc = cached_ntc + 1 if cached_ntc + 1 < count else 0
    ring[NTC] = ntc
    if mode == PUT_BUFFER:
        want = cleaned
    else:
        want = (0 if ring[FIRST_DESC] > ring[NTU] else count) + ring[FIRST_DESC] - ring[NTU] - 1
    refused = _ice_alloc_rx_bufs(k, cpu, want)
    # ice_clean_rx_irq() returns the whole budget when a buffer could not be posted
    work = budget if total >= budget or refused else (total if total < budget - 1 else budget - 1)
    return work, ndel


@njit(cache=True, forceinline=True)
def _ice_alloc_rx_bufs(k, cpu, want):
    """ice_alloc_rx_bufs(): a page (bias USHRT_MAX) for each of want empty slots from next_to_use, each
    descriptor's status cleared (and the next one's); the tail moves in steps of 8.  True when a page
    could not be allocated (the rest stay empty)."""
    buf = k.rings.buf[cpu]
    desc = k.rings.desc[cpu]
    if not want:
        return False
    cfg = k.cfg
    ring = k.pcpu[cpu]
    count = cfg[RING_COUNT]
    ntu = ring[NTU]
    while want:
        if buf[ntu, BUF_PAGE] < 0:
            pid = _alloc_pages(k.pages, k.faults, k.st, cfg[RING_ORDER], L_NONE)
            if pid < 0:
                k.st[D_BUF_FAILURES] += 1
                break
            k.st[D_PAGES_ALLOC] += 1
            buf[ntu, BUF_PAGE] = pid
            k.pages.page[pid, PAGE_REF] += USHRT_MAX - 1
            buf[ntu, BUF_BIAS] = USHRT_MAX
        desc[ntu, DESC_DD] = 0
        ntu = ntu + 1 if ntu + 1 < count else 0
        # as ice_alloc_rx_bufs(): the status of the next descriptor is cleared too
        desc[ntu, DESC_DD] = 0
        want -= 1
    if ring[NTU] != ntu:
        prev = ring[NTU] & ~7
        ring[NTU] = ntu
        ring[NTA] = ntu
        if prev != (ntu & ~7):
            ring[TAIL] = ntu & ~7
    return want != 0
