"""The fast engine's NIC drivers: ice and copybreak (DMA, the clean loop in each release's form, the poll), compiled."""

from __future__ import annotations

from skbsim.fast.layout import (
    BUDGET_LEFT, CB_BUF_FRAGSZ, CB_BUF_SIZE, CB_BUILD_TS, CB_COPYBREAK, CB_N_1K, CB_N_BUILD, DD_DONE, DD_EOP,
    DEFER_LEN, DRIVER_CB, D_BUF_FAILURES, D_BYTES, D_BYTES_COPIED, D_COPIED, D_FRAMES, D_FRAMES_DROPPED,
    D_NIC_FRAMES, D_PAGES_ALLOC, D_POLLS, D_RELEASED, D_REUSED, D_RING_DROPS, D_SKB_FAILURES, D_USED, ERR,
    ERR_BUG, ERR_EMPTY_FRAME, ERR_FRAME_ABOVE_RING, FIRST_DESC, FL_TAG, FRAME_SZ, HEAD_KIND,
    HEAD_TRUESIZE, HW_NEXT, ICE_RX_HDR_SIZE, LEGACY, L_NONE, NOW, NTA, NTC, NTU, O_DRIVER, PF_FRAGSZ,
    POLLS, PUT_MODE, Q_DROPPED, Q_FRAMES, Q_NIC_FRAMES, RING_COUNT, RING_ORDER, RX_BUF_LEN,
    SKB_TRUESIZE_C, TAIL, TRACE, U32_MASK, USHRT_MAX, njit,
)
from skbsim.fast.mm import _add_frag, _alloc_pages, _fl_give, _fl_take, _free_page, _pf_alloc, _put_page
from skbsim.fast.stack import _alloc_rx_skb, _defer_flush, _deliver, _nc_get, _poll_done, _trace_drop
from skbsim.sim import NAPI_POLL_WEIGHT


@njit(cache=True, inline="always")
def _nic_buffers(S, C, length):
    """How many rx_buf_len buffers a frame of length bytes takes; 0, with S[ERR], for an empty one."""
    if length == 0:
        S[ERR] = ERR_EMPTY_FRAME
        return 0
    return 1 if length <= C[RX_BUF_LEN] else (length + C[RX_BUF_LEN] - 1) // C[RX_BUF_LEN]


@njit(cache=True, inline="always")
def _nic_dma(S, C, CS, cpu, length, nbufs, hlen, desc_dd, desc_len, desc_hlen):
    """The NIC writes a frame into nbufs descriptors from HW_NEXT on: rx_buf_len bytes each (the last
    the rest), the header length (ice legacy-rx) on the first, DD_EOP on the last."""
    count = C[RING_COUNT]
    hw = CS[cpu, HW_NEXT]
    remaining = length
    for b in range(nbufs):
        part = remaining if remaining < C[RX_BUF_LEN] else C[RX_BUF_LEN]
        remaining -= part
        desc_len[cpu, hw] = part
        desc_hlen[cpu, hw] = hlen if b == 0 else 0
        desc_dd[cpu, hw] = DD_EOP if b == nbufs - 1 else DD_DONE
        hw += 1
        if hw == count:
            hw = 0
    CS[cpu, HW_NEXT] = hw
    S[D_NIC_FRAMES] += 1
    CS[cpu, Q_NIC_FRAMES] += 1


@njit(cache=True)
def _ice_nic_receive(S, C, CS, cpu, length, hlen, desc_dd, desc_len, desc_hlen):
    """ice_nic_receive(): the frame into ceil(len / rx_buf_len) posted descriptors (up to the tail);
    False when there are too few (counted here) or when S[ERR] is set."""
    count = C[RING_COUNT]
    nbufs = _nic_buffers(S, C, length)
    if nbufs == 0:
        return False
    if ((CS[cpu, TAIL] - CS[cpu, HW_NEXT]) % count + count) % count < nbufs:
        S[D_RING_DROPS] += 1
        return False
    _nic_dma(S, C, CS, cpu, length, nbufs, hlen, desc_dd, desc_len, desc_hlen)
    return True


@njit(cache=True)
def _cb_nic_receive(S, C, CS, cpu, length, desc_dd, desc_len, desc_hlen, ring_page):
    """copybreak_nic_receive(): the frame into ceil(len / rx_buf) consecutive slots, each cleaned and
    holding a buffer; False when dropped for want of slots (counted here) or when S[ERR] is set."""
    count = C[RING_COUNT]
    nbufs = _nic_buffers(S, C, length)
    if nbufs == 0:
        return False
    if nbufs > count:
        S[ERR] = ERR_FRAME_ABOVE_RING
        return False
    hw = CS[cpu, HW_NEXT]
    for _ in range(nbufs):
        if desc_dd[cpu, hw] or ring_page[cpu, hw] < 0:
            S[D_RING_DROPS] += 1
            return False
        hw += 1
        if hw == count:
            hw = 0
    _nic_dma(S, C, CS, cpu, length, nbufs, 0, desc_dd, desc_len, desc_hlen)
    return True


@njit(cache=True, inline="always")
def _ice_fill_head(S, C, cpu, ring_bias, desc_hlen, slot, size):
    """The bytes of the frame's first buffer (size of them) that end up in the skb's head.

    build_skb: all of them, in place.  legacy-rx (ice_construct_skb): a buffer of at most
    ICE_RX_HDR_SIZE is copied whole and its reference given back (6.9 does it in the put loop through
    ICE_SKB_CONSUMED, before the reuse test, as here); a longer one has its eth_get_headlen() bytes
    copied and the rest becomes frag 0.
    """
    if not C[LEGACY]:
        return size
    headlen = size
    if size > ICE_RX_HDR_SIZE:
        headlen = desc_hlen[cpu, slot]
    S[D_BYTES_COPIED] += headlen
    if size <= headlen:
        S[D_COPIED] += 1
        ring_bias[cpu, slot] += 1
    return headlen


@njit(cache=True)
def _put_rx_buf(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias, ring_pgcnt, count, slot):
    """ice_put_rx_buf(): reuse the page at next_to_alloc, or drain the driver's references."""
    pid = ring_page[cpu, slot]
    if ((ring_pgcnt[cpu, slot] - ring_bias[cpu, slot]) & U32_MASK) <= 1:
        if ring_bias[cpu, slot] == 1:
            page_ref[pid] += USHRT_MAX - 1
            ring_bias[cpu, slot] = USHRT_MAX
        nta = CS[cpu, NTA]
        bias = ring_bias[cpu, slot]
        nxt = nta + 1
        CS[cpu, NTA] = nxt if nxt < count else 0
        ring_page[cpu, nta] = pid
        ring_bias[cpu, nta] = bias
        S[D_REUSED] += 1
    else:
        page_ref[pid] -= ring_bias[cpu, slot]
        if page_ref[pid] == 0:
            _free_page(S, page_ref, page_order, page_free, pg_freed, pid)
        elif page_ref[pid] < 0:
            S[ERR] = ERR_BUG
        S[D_RELEASED] += 1
    ring_page[cpu, slot] = -1


@njit(cache=True, inline="always")
def _ice_put_frame(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias, ring_pgcnt, count,
                   first, ntc, consumed, put):
    """The buffers of the frame in slots [first, ntc): a dropped (consumed) frame gives each its reference
    back (ICE_XDP_CONSUMED); with put, each goes through ice_put_rx_buf() now, as 6.12.14+'s
    ice_put_rx_mbuf() does (6.9 puts them in the loop after the poll)."""
    b = first
    while b != ntc:
        if consumed:
            ring_bias[cpu, b] += 1
        if put:
            _put_rx_buf(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias, ring_pgcnt,
                        count, b)
        b += 1
        if b == count:
            b = 0


@njit(cache=True)
def _poll(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu, page_ref, page_order, page_free, page_pin, pg_alloc,
          pg_freed, ring_page, ring_bias, ring_pgcnt, desc_dd, desc_len, desc_hlen,
          slab0, slab1,
          nc, dfv_page, dfv_frag, dfv_obj, q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl,
          tn, obs):
    """One napi_poll() (Simulation._poll) with the driver's poll inside (ice_napi_poll() /
    ice_clean_rx_irq(), or copybreak_poll()), then the stack and the end of the poll."""
    count = C[RING_COUNT]
    mode = C[PUT_MODE]
    S[POLLS] += 1
    taken_before = CS[cpu, Q_FRAMES] + CS[cpu, Q_DROPPED]
    if CS[cpu, DEFER_LEN]:
        _defer_flush(S, C, CS[cpu], nc[cpu], dfv_page[cpu], dfv_frag[cpu], dfv_obj[cpu], slab0, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, True)
    budget = NAPI_POLL_WEIGHT if NAPI_POLL_WEIGHT < CS[cpu, BUDGET_LEFT] else CS[cpu, BUDGET_LEFT]
    S[D_POLLS] += 1
    ndel = 0
    work = budget
    if budget > 0 and C[DRIVER_CB]:
        # copybreak_clean_rx_irq(): a frame of one or more buffers; copy up to copybreak, else build_skb
        total = 0
        ntc = CS[cpu, NTC]
        while total < budget:
            if desc_dd[cpu, ntc] == 0:
                break
            # _frame_slots(): the frame's descriptors up to the one marked end of packet
            nslots = 1
            size = desc_len[cpu, ntc]
            if desc_dd[cpu, ntc] != DD_EOP:
                last = ntc
                complete = True
                while desc_dd[cpu, last] != DD_EOP:
                    last += 1
                    if last == count:
                        last = 0
                    if desc_dd[cpu, last] == 0 or last == ntc:
                        complete = False
                        break
                    size += desc_len[cpu, last]
                    nslots += 1
                if not complete:
                    break
            slot = ntc
            for b in range(nslots):
                if ring_page[cpu, slot] < 0:
                    S[ERR] = ERR_BUG
                    return
                slot += 1
                if slot == count:
                    slot = 0
            slot = ntc
            S[D_USED] += nslots
            frag_entry = -1
            first_len = desc_len[cpu, ntc]
            dropped = False
            if size <= C[CB_COPYBREAK]:
                # copybreak_copy_skb(): napi_alloc_skb(len), the head's source depending on len; the
                # buffer stays on the ring either way
                kind = cb_tab[0, size]
                S[D_REUSED] += 1
                head_pid, obj = _alloc_rx_skb(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, pg_freed,
                                              slab0, slab1, nc, kind, cb_tab[2, size], -1)
                if obj < 0:
                    S[D_SKB_FAILURES] += 1
                    dropped = True
                else:
                    S[D_BYTES_COPIED] += size
                    S[D_COPIED] += 1
                    S[CB_N_1K + kind] += 1
                    dl_ts[ndel] = cb_tab[1, size]
            else:
                # copybreak_build_skb(): a replacement for every buffer of the frame first (napi_alloc_frag;
                # held in a row of fl until all are there), then napi_build_skb() around the first old
                # buffer and the others as frags (truesize buf_size each)
                kind = -1
                frag_entry = _fl_take(S, fl)
                if frag_entry < 0:
                    return
                taken = 0
                while taken < nslots:
                    page = _pf_alloc(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, C[CB_BUF_FRAGSZ])
                    if page < 0:
                        break
                    taken += 1
                    fl[frag_entry, taken] = page
                if taken < nslots:
                    # no replacement: those taken go back, the frame is dropped and its buffers stay
                    S[D_BUF_FAILURES] += 1
                    S[D_REUSED] += nslots
                    for b in range(1, taken + 1):
                        _put_page(S, page_ref, page_order, page_free, pg_freed, fl[frag_entry, b])
                    dropped = True
                else:
                    head_pid = ring_page[cpu, slot]
                    for b in range(nslots):
                        old = ring_page[cpu, slot]
                        ring_page[cpu, slot] = fl[frag_entry, b + 1]
                        if b > 0:
                            fl[frag_entry, b] = old  # frag b - 1
                        slot += 1
                        if slot == count:
                            slot = 0
                    fl[frag_entry, 0] = nslots - 1
                    S[D_RELEASED] += nslots
                    obj = _nc_get(S, C, CS, cpu, nc, slab0, page_ref, page_order, page_free, pg_alloc, pg_freed)
                    if obj < 0:
                        # no sk_buff: the old buffers are freed (skb_free_frag), the frame dropped
                        S[D_SKB_FAILURES] += 1
                        _put_page(S, page_ref, page_order, page_free, pg_freed, head_pid)
                        for b in range(1, nslots):
                            _put_page(S, page_ref, page_order, page_free, pg_freed, fl[frag_entry, b])
                        dropped = True
                    else:
                        S[CB_N_BUILD] += 1
                        dl_ts[ndel] = C[CB_BUILD_TS] + (nslots - 1) * C[CB_BUF_SIZE]
                if dropped or nslots == 1:
                    # the row goes back to the free stack (one buffer: no frags to keep)
                    _fl_give(S, fl, frag_entry)
                    frag_entry = -1
            for b in range(nslots):
                desc_dd[cpu, ntc] = 0
                ntc += 1
                if ntc == count:
                    ntc = 0
            total += 1
            if dropped:
                S[D_FRAMES_DROPPED] += 1
                CS[cpu, Q_DROPPED] += 1
                if C[TRACE]:
                    _trace_drop(S, obs[0], S[NOW], cpu, size, O_DRIVER)
                continue
            # dl_hlen / dl_dlen: the first buffer's bytes and the frags' (skb_condense's test)
            S[D_BYTES] += size
            S[D_FRAMES] += 1
            CS[cpu, Q_FRAMES] += 1
            dl_page[ndel] = head_pid
            dl_frag[ndel] = FL_TAG + frag_entry if frag_entry >= 0 else -1
            dl_obj[ndel] = obj
            dl_hlen[ndel] = first_len
            dl_dlen[ndel] = size - first_len
            ndel += 1
        CS[cpu, NTC] = ntc
        work = total
    elif budget > 0:
        total = 0
        ntc = CS[cpu, NTC]
        cached_ntc = CS[cpu, FIRST_DESC]
        cleaned_count = 0
        if mode == 0:
            cleaned_count = (0 if CS[cpu, NTC] > CS[cpu, NTU] else count) + CS[cpu, NTC] - CS[cpu, NTU] - 1
        head_ts = C[HEAD_TRUESIZE] if C[LEGACY] else C[SKB_TRUESIZE_C]
        ice_kind = C[HEAD_KIND] if C[LEGACY] else -1  # ice_construct_skb's header skb, or ice_build_skb
        # the frame being gathered: its first slot, bytes, skb head and sk_buff, bytes in the head,
        # frags (a page id, or FL_TAG + a row of fl) and how many
        in_frame = False
        f_first = 0
        f_size = 0
        f_head = -1
        f_obj = -1
        f_hlen = 0
        f_frag = -1
        f_nfrags = 0
        while total < budget:
            if desc_dd[cpu, ntc] == 0:
                if in_frame:
                    S[ERR] = ERR_BUG  # the NIC writes whole frames: a half-written one is not modelled
                    return
                break
            size = desc_len[cpu, ntc]
            eop = desc_dd[cpu, ntc] == DD_EOP
            slot = ntc
            if ring_page[cpu, slot] < 0:
                # A written descriptor without a buffer: the reference model fails here too;
                # leave it to the reference engine rather than read a page that is not there.
                S[ERR] = ERR_BUG
                return
            # ice_get_rx_buf() (6.12.14+ samples the page counts at the frame's end, ice_get_pgcnts();
            # nothing between changes them)
            ring_pgcnt[cpu, slot] = page_ref[ring_page[cpu, slot]]
            ring_bias[cpu, slot] -= 1
            S[D_USED] += 1
            if not in_frame:
                in_frame = True
                f_first = slot
                f_size = size
                f_frag = -1
                f_nfrags = 0
                if mode == 0:
                    # 6.1 builds the skb at the frame's first buffer (ice_build_skb / ice_construct_skb)
                    f_head, f_obj = _alloc_rx_skb(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc,
                                                  pg_freed, slab0, slab1, nc, ice_kind, C[PF_FRAGSZ],
                                                  ring_page[cpu, slot])
                    if f_obj < 0:
                        # the frame stays on the ring with the buffer's reference back; the next poll retries
                        S[D_SKB_FAILURES] += 1
                        ring_bias[cpu, slot] += 1
                        break
                    f_hlen = _ice_fill_head(S, C, cpu, ring_bias, desc_hlen, slot, size)
                    if f_hlen < size:
                        f_frag = ring_page[cpu, slot]  # the rest of the first buffer: frag 0
                        f_nfrags = 1
            else:
                f_size += size
                if mode == 0:
                    # ice_add_rx_frag(): the buffer joins the skb at once
                    f_frag = _add_frag(S, fl, f_frag, ring_page[cpu, slot])
                    f_nfrags += 1
            ntc += 1
            if ntc == count:
                ntc = 0
            if mode == 0:
                _put_rx_buf(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias, ring_pgcnt,
                            count, slot)
                cleaned_count += 1
            if not eop:
                continue
            in_frame = False
            if mode != 0:
                # 6.3+: the skb is built at the frame's last buffer around the gathered xdp_buff
                f_head, f_obj = _alloc_rx_skb(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, pg_freed,
                                              slab0, slab1, nc, ice_kind, C[PF_FRAGSZ], ring_page[cpu, f_first])
                if f_obj < 0:
                    # dropped; every buffer of the frame gets its reference back (ICE_XDP_CONSUMED) and is
                    # put back now (6.12.14+, ice_put_rx_mbuf) or by the loop after (6.9)
                    S[D_SKB_FAILURES] += 1
                    S[D_FRAMES_DROPPED] += 1
                    CS[cpu, Q_DROPPED] += 1
                    if C[TRACE]:
                        _trace_drop(S, obs[0], S[NOW], cpu, f_size, O_DRIVER)
                    _ice_put_frame(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias,
                                   ring_pgcnt, count, f_first, ntc, True, mode == 2)
                    CS[cpu, FIRST_DESC] = ntc
                    break
                f_hlen = _ice_fill_head(S, C, cpu, ring_bias, desc_hlen, f_first, desc_len[cpu, f_first])
                if f_hlen < desc_len[cpu, f_first]:
                    f_frag = ring_page[cpu, f_first]
                    f_nfrags = 1
                # xdp_update_skb_shared_info(): the gathered buffers follow as frags
                b = f_first + 1
                if b == count:
                    b = 0
                while b != ntc:
                    f_frag = _add_frag(S, fl, f_frag, ring_page[cpu, b])
                    f_nfrags += 1
                    b += 1
                    if b == count:
                        b = 0
                if mode == 2:
                    _ice_put_frame(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias,
                                   ring_pgcnt, count, f_first, ntc, False, True)
                CS[cpu, FIRST_DESC] = ntc
            if S[ERR]:
                return
            # eth_skb_pad() raises len to 60; the driver counts skb->len
            S[D_BYTES] += f_size if f_size >= 60 else 60
            S[D_FRAMES] += 1
            CS[cpu, Q_FRAMES] += 1
            dl_page[ndel] = f_head
            dl_frag[ndel] = f_frag
            dl_obj[ndel] = f_obj
            dl_hlen[ndel] = f_hlen
            dl_dlen[ndel] = f_size - f_hlen
            dl_ts[ndel] = head_ts + f_nfrags * C[FRAME_SZ]
            ndel += 1
            total += 1
        if mode == 1:
            first = CS[cpu, FIRST_DESC]
            while cached_ntc != first:
                _put_rx_buf(S, CS, cpu, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias, ring_pgcnt,
                            count, cached_ntc)
                cached_ntc += 1
                if cached_ntc >= count:
                    cached_ntc = 0
        CS[cpu, NTC] = ntc
        # ice_alloc_rx_bufs()
        if mode == 0:
            want = cleaned_count
        else:
            want = (0 if CS[cpu, FIRST_DESC] > CS[cpu, NTU] else count) + CS[cpu, FIRST_DESC] - CS[cpu, NTU] - 1
        if want:
            ntu = CS[cpu, NTU]
            while want:
                if ring_page[cpu, ntu] < 0:
                    pid = _alloc_pages(S, page_ref, page_order, page_free, pg_alloc, C[RING_ORDER], L_NONE)
                    if pid < 0:
                        S[D_BUF_FAILURES] += 1
                        break
                    S[D_PAGES_ALLOC] += 1
                    ring_page[cpu, ntu] = pid
                    page_ref[pid] += USHRT_MAX - 1
                    ring_bias[cpu, ntu] = USHRT_MAX
                desc_dd[cpu, ntu] = 0
                ntu += 1
                if ntu == count:
                    ntu = 0
                # as ice_alloc_rx_bufs(): the status of the next descriptor is cleared too
                desc_dd[cpu, ntu] = 0
                want -= 1
            if CS[cpu, NTU] != ntu:
                prev = CS[cpu, NTU] & ~7
                CS[cpu, NTU] = ntu
                CS[cpu, NTA] = ntu
                if prev != (ntu & ~7):
                    CS[cpu, TAIL] = ntu & ~7
        # ice_clean_rx_irq() returns the whole budget when a buffer could not be posted
        work = budget if total >= budget or want else (total if total < budget - 1 else budget - 1)
    _deliver(S, C, cpu, ndel, page_ref, page_order, page_free, page_pin, pg_freed, slab0, slab1,
             q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl, tn, obs)
    if S[ERR]:
        return
    _poll_done(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu, work, budget, ndel, taken_before, obs)
