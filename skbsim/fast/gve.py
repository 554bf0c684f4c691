"""The fast engine's gve DQO queues: buffer states and their lists, the NIC side, the clean loop, the close.

skbsim/drivers/gve.py over the GveRings record (skbsim.fast.state): a buffer state per buffer (its page,
offset, truesize and, with own pages, pagecnt_bias), the free, recycled and used lists of states, the
buffer queue (the states posted, then those the device wrote frames into), and the frames not yet
cleaned.  Buffers are page_pool fragments (6.13+: pool row cpu) or own pages pre-charged with INT_MAX
references (up to 6.12).  A frame of at most rx_copybreak bytes in one buffer is copied into
napi_alloc_skb(len); with header split its headers are copied into napi_alloc_skb(hdr_len) and its
buffers follow as frags (napi_gro_receive()); otherwise its buffers are the frags of napi_get_frags()'s
skb (napi_gro_frags()).  What GRO pulls into the head of each frame's skb is the frame's code (from the
model, skbsim.fast.gve_setup.GveCodes), as is its header-split length.
"""

from __future__ import annotations

from skbsim.fast.layout import ERR_BUG, ERR_EMPTY_FRAME, L_NONE, ORDER_0, njit
from skbsim.fast.mm import _add_frag, _alloc_pages, _put_pages
from skbsim.fast.napi import _alloc_skb_by_table
from skbsim.fast.page_pool import _page_pool_destroy, _pp_dev_alloc, _pp_put_page
from skbsim.fast import rx  # (a module: rx dispatches to pp_drivers, which calls this one)
from skbsim.fast.state import (
    COPYBREAK, CP_KIND, CP_ROOM, CP_TS, D_BUF_FAILURES, D_BYTES_COPIED, D_COPIED, D_NIC_FRAMES, D_RELEASED,
    D_RING_DROPS, D_SKB_FAILURES, D_USED, ERR, GB_BIAS, GB_LAST_SINGLE, GB_OFFSET, GB_PAGE, GB_SIZE, GC_CODE,
    GC_LEN, GC_NBUFS, GV_BUF_SIZE, GV_CLEAN, GV_CODE_SPLIT, GV_FREE_HEAD, GV_GRO_MAX_HEAD, GV_HSPLIT,
    GV_LIST_FREE, GV_LIST_RECYCLED, GV_LIST_USED, GV_NIC, GV_POOL, GV_TAIL, NTC, PAGE_REF, PAGE_SIZE, PP_SOFTIRQ,
    Q_NIC_FRAMES, RING_COUNT,
)

INT_MAX = 0x7FFFFFFF
ETH_HLEN = 14

# -- the lists of buffer states (deques of the model) ------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _gve_list_push(k, cpu, which, ix):
    """deque.append() of state ix to list which (GV_LIST_*)."""
    q = k.pcpu[cpu]
    head, n = GV_FREE_HEAD + 2 * which, GV_FREE_HEAD + 2 * which + 1
    count = k.cfg[RING_COUNT]
    at = q[head] + q[n]
    k.gve.lists[cpu, which, at - count if at >= count else at] = ix
    q[n] += 1


@njit(cache=True, forceinline=True)
def _gve_list_push_front(k, cpu, which, ix):
    """deque.appendleft() of state ix to list which."""
    q = k.pcpu[cpu]
    head, n = GV_FREE_HEAD + 2 * which, GV_FREE_HEAD + 2 * which + 1
    q[head] = q[head] - 1 if q[head] > 0 else k.cfg[RING_COUNT] - 1
    k.gve.lists[cpu, which, q[head]] = ix
    q[n] += 1


@njit(cache=True, forceinline=True)
def _gve_list_pop(k, cpu, which):
    """deque.popleft() of list which: a state, or -1 when it is empty."""
    q = k.pcpu[cpu]
    head, n = GV_FREE_HEAD + 2 * which, GV_FREE_HEAD + 2 * which + 1
    if q[n] == 0:
        return -1
    ix = k.gve.lists[cpu, which, q[head]]
    q[head] = q[head] + 1 if q[head] + 1 < k.cfg[RING_COUNT] else 0
    q[n] -= 1
    return ix


# -- own pages (up to 6.12) --------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _gve_buf_ref_cnt(k, cpu, ix):
    """gve_buf_ref_cnt(): page references held by skbs (page_count() - pagecnt_bias)."""
    bs = k.gve.bs[cpu, ix]
    return k.pages.page[bs[GB_PAGE], PAGE_REF] - bs[GB_BIAS]


@njit(cache=True, forceinline=True)
def _gve_alloc_page_dqo(k, cpu, ix):
    """gve_alloc_page_dqo(): an order-0 page charged with INT_MAX references; False when there is none."""
    pid = _alloc_pages(k.pages, k.faults, k.st, ORDER_0, L_NONE)
    if pid < 0:
        return False
    k.pages.page[pid, PAGE_REF] += INT_MAX - 1
    bs = k.gve.bs[cpu, ix]
    bs[GB_PAGE], bs[GB_OFFSET], bs[GB_BIAS], bs[GB_LAST_SINGLE] = pid, 0, INT_MAX, 0
    bs[GB_SIZE] = k.cfg[GV_BUF_SIZE]
    return True


@njit(cache=True, forceinline=True)
def _gve_free_page_dqo(k, cpu, ix):
    """gve_free_page_dqo(): the bias and the page's own reference given back."""
    bs = k.gve.bs[cpu, ix]
    _put_pages(k.pages, k.st, bs[GB_PAGE], bs[GB_BIAS])
    bs[GB_PAGE] = -1


@njit(cache=True, forceinline=True)
def _gve_dec_pagecnt_bias(k, cpu, ix):
    """gve_dec_pagecnt_bias(): one reference to the skb; recharged when the bias runs out."""
    bs = k.gve.bs[cpu, ix]
    bs[GB_BIAS] -= 1
    if bs[GB_BIAS] == 0:
        count = k.pages.page[bs[GB_PAGE], PAGE_REF]
        bs[GB_BIAS] = INT_MAX if count == 1 else INT_MAX - count
        k.pages.page[bs[GB_PAGE], PAGE_REF] += bs[GB_BIAS] - 1


@njit(cache=True, forceinline=True)
def _gve_try_recycle_buf(k, cpu, ix):
    """gve_try_recycle_buf(): on to the page's next buffer-sized chunk (recycled list), or onto the used list
    when the page has gone round without ever being down to one reference (or holds one buffer)."""
    bs = k.gve.bs[cpu, ix]
    page_size = k.cfg[PAGE_SIZE]
    buf_size = k.cfg[GV_BUF_SIZE]
    if buf_size * 2 > page_size:
        _gve_list_push(k, cpu, GV_LIST_USED, ix)
        return
    if _gve_buf_ref_cnt(k, cpu, ix) == 1:
        bs[GB_LAST_SINGLE] = bs[GB_OFFSET]
    bs[GB_OFFSET] = (bs[GB_OFFSET] + buf_size) & (page_size - 1)
    _gve_list_push(k, cpu, GV_LIST_USED if bs[GB_OFFSET] == bs[GB_LAST_SINGLE] else GV_LIST_RECYCLED, ix)


@njit(cache=True, forceinline=True)
def _gve_get_recycled_buf_state(k, cpu):
    """gve_get_recycled_buf_state(): a recycled state, else one from the used list (_gve_take_used()); a
    state, or -1."""
    ix = _gve_list_pop(k, cpu, GV_LIST_RECYCLED)
    if ix >= 0 or k.pcpu[cpu, GV_FREE_HEAD + 2 * GV_LIST_USED + 1] == 0:
        return ix
    return _gve_take_used(k, cpu)


@njit(cache=True)
def _gve_take_used(k, cpu):
    """gve_get_recycled_buf_state() past the recycled list: one of up to five used states whose references are
    all back; with no free state left, one used page is given up.  A state, or -1."""
    for _ in range(5):
        ix = _gve_list_pop(k, cpu, GV_LIST_USED)
        if _gve_buf_ref_cnt(k, cpu, ix) == 0:
            return ix
        _gve_list_push(k, cpu, GV_LIST_USED, ix)
    if k.pcpu[cpu, GV_FREE_HEAD + 2 * GV_LIST_FREE + 1] == 0:
        ix = _gve_list_pop(k, cpu, GV_LIST_USED)
        if _gve_buf_ref_cnt(k, cpu, ix) == 0:
            return ix
        _gve_free_page_dqo(k, cpu, ix)
        _gve_list_push(k, cpu, GV_LIST_FREE, ix)
    return -1


# -- buffers, either scheme ---------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _gve_alloc_buffer(k, cpu):
    """gve_alloc_buffer(): a free state with page_pool_alloc() of the buffer size (6.18), or a recycled state,
    else a free one with a new page.  A state, or -1."""
    if k.cfg[GV_POOL]:
        ix = _gve_list_pop(k, cpu, GV_LIST_FREE)
        if ix < 0:
            return -1
        pid, truesize = _pp_dev_alloc(k, cpu, k.cfg[GV_BUF_SIZE])
        if pid < 0:
            _gve_list_push_front(k, cpu, GV_LIST_FREE, ix)
            return -1
        bs = k.gve.bs[cpu, ix]
        bs[GB_PAGE], bs[GB_SIZE] = pid, truesize
        return ix
    ix = _gve_get_recycled_buf_state(k, cpu)
    if ix >= 0:
        return ix
    ix = _gve_list_pop(k, cpu, GV_LIST_FREE)
    if ix < 0:
        return -1
    if not _gve_alloc_page_dqo(k, cpu, ix):
        _gve_list_push_front(k, cpu, GV_LIST_FREE, ix)
        return -1
    return ix


@njit(cache=True, forceinline=True)
def _gve_rx_post_buffers_dqo(k, cpu):
    """gve_rx_post_buffers_dqo(): the buffer queue filled up to count - 1 buffers out (posted, or holding a
    frame not yet cleaned); the first failure ends it."""
    q = k.pcpu[cpu]
    count = k.cfg[RING_COUNT]
    while q[GV_TAIL] - q[GV_CLEAN] < count - 1:
        ix = _gve_alloc_buffer(k, cpu)
        if ix < 0:
            k.st[D_BUF_FAILURES] += 1
            return
        k.gve.ring[cpu, q[GV_TAIL] % count] = ix
        q[GV_TAIL] += 1


@njit(cache=True, forceinline=True)
def _gve_free_buffer(k, cpu, ix):
    """gve_free_buffer(): a buffer no skb took: back to the pool (page_pool_put_full_page(allow_direct)) and its
    state free (6.18), or onto the recycled list."""
    if k.cfg[GV_POOL]:
        _pp_put_page(k, cpu, k.gve.bs[cpu, ix, GB_PAGE], True)
        k.gve.bs[cpu, ix, GB_PAGE] = -1
        _gve_list_push(k, cpu, GV_LIST_FREE, ix)
    else:
        _gve_list_push(k, cpu, GV_LIST_RECYCLED, ix)


@njit(cache=True, forceinline=True)
def _gve_reuse_buffer(k, cpu, ix):
    """gve_reuse_buffer(): an skb took the buffer: its state is free (6.18), or one page reference goes to the
    skb and the buffer moves on."""
    if k.cfg[GV_POOL]:
        k.gve.bs[cpu, ix, GB_PAGE] = -1
        _gve_list_push(k, cpu, GV_LIST_FREE, ix)
    else:
        _gve_dec_pagecnt_bias(k, cpu, ix)
        _gve_try_recycle_buf(k, cpu, ix)


# -- the NIC ------------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _gve_nic_receive(k, cpu, length, code):
    """gve_nic_receive() (the frame is within rxmax): the frame (its payload, with header split) into the next
    posted buffers; a ring drop when there are too few.  code: the frame's (GveCodes)."""
    if length == 0:
        k.st[ERR] = ERR_EMPTY_FRAME
        return False
    buf_size = k.cfg[GV_BUF_SIZE]
    nbufs = (length - code // GV_CODE_SPLIT + buf_size - 1) // buf_size
    q = k.pcpu[cpu]
    if nbufs > q[GV_TAIL] - q[GV_NIC]:
        k.st[D_RING_DROPS] += 1
        return False
    q[GV_NIC] += nbufs
    comps = k.gve.comp[cpu]
    tail = (q[NTC] + rx._rx_pending(k, cpu)) % comps.shape[0]
    comps[tail, GC_NBUFS] = nbufs
    comps[tail, GC_LEN] = length
    comps[tail, GC_CODE] = code
    k.st[D_NIC_FRAMES] += 1
    k.pcpu[cpu, Q_NIC_FRAMES] += 1
    return True


# -- skbs ---------------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _gve_free_frame(k, cpu, first, nbufs):
    """The frame's buffers (from ring position first) back with gve_free_buffer(): no skb took them."""
    count = k.cfg[RING_COUNT]
    for b in range(first, first + nbufs):
        _gve_free_buffer(k, cpu, k.gve.ring[cpu, b % count])


@njit(cache=True, forceinline=True)
def _gve_rx_dqo(k, cpu, first, nbufs, length, code):
    """gve_rx_dqo() over one frame's buffers (from ring position first): gve_rx_copy(), gve_rx_copy_data() of the
    header buffer, or napi_get_frags(); then each buffer a frag (its truesize) and gve_reuse_buffer().
    (head, frags, sk_buff, truesize, bytes in the head after GRO), the sk_buff -1 when it was dropped."""
    cfg = k.cfg
    copy = k.gve.copy
    hdr_len = code // GV_CODE_SPLIT
    if hdr_len == 0 and nbufs == 1 and length <= cfg[COPYBREAK]:
        head, obj = _alloc_skb_by_table(k, cpu, copy, length)
        _gve_free_frame(k, cpu, first, 1)  # the buffer is kept either way
        if obj < 0:
            return -1, -1, -1, 0, 0
        k.st[D_BYTES_COPIED] += length
        k.st[D_COPIED] += 1
        return head, -1, obj, copy[length, CP_TS], length
    if hdr_len == 0 and cfg[GV_HSPLIT]:
        k.st[ERR] = ERR_BUG  # an unsplit frame's napi_get_frags() skb among header-split ones: not followed
        return -1, -1, -1, 0, 0
    head, obj = _alloc_skb_by_table(k, cpu, copy, hdr_len if hdr_len else cfg[GV_GRO_MAX_HEAD])
    if obj < 0:
        _gve_free_frame(k, cpu, first, nbufs)
        return -1, -1, -1, 0, 0
    if hdr_len:
        k.st[D_BYTES_COPIED] += hdr_len
    ts = copy[hdr_len if hdr_len else cfg[GV_GRO_MAX_HEAD], CP_TS]
    frag = -1
    count = cfg[RING_COUNT]
    for b in range(first, first + nbufs):
        ix = k.gve.ring[cpu, b % count]
        frag = _add_frag(k.frags, k.st, frag, k.gve.bs[cpu, ix, GB_PAGE])
        ts += k.gve.bs[cpu, ix, GB_SIZE]
        _gve_reuse_buffer(k, cpu, ix)
    k.st[D_RELEASED] += nbufs
    return head, frag, obj, ts, code % GV_CODE_SPLIT


@njit(cache=True, forceinline=True)
def _gve_rx_poll_dqo(k, cpu, budget):
    """gve_rx_poll_dqo(): frames up to the budget, then gve_rx_post_buffers_dqo(); the skbs for the stack
    through k.batch (GRO passes UDP up, its headers pulled into the head as the frame's code says).
    (work, skbs for the stack)."""
    comps = k.gve.comp[cpu]
    q = k.pcpu[cpu]
    done = ndel = 0
    while done < budget and rx._rx_pending(k, cpu) > 0:
        at = q[NTC]
        q[NTC] = at + 1 if at + 1 < comps.shape[0] else 0
        nbufs, length = comps[at, GC_NBUFS], comps[at, GC_LEN]
        first = q[GV_CLEAN]
        q[GV_CLEAN] += nbufs
        k.st[D_USED] += nbufs
        done += 1
        head, frag, obj, ts, hlen = _gve_rx_dqo(k, cpu, first, nbufs, length, comps[at, GC_CODE])
        if k.st[ERR]:
            return 0, 0
        if obj < 0:
            k.st[D_SKB_FAILURES] += 1
            rx._frame_dropped(k, cpu, length)
            continue
        rx._frame_done(k, cpu, length - ETH_HLEN)  # skb->len after eth_type_trans()
        k.gve.kinds[_gve_skb_kind(k, frag, hlen)] += 1
        ndel = rx._batch_add(k, ndel, head, frag, obj, hlen, length - hlen, ts)
    _gve_rx_post_buffers_dqo(k, cpu)
    return done, ndel


@njit(cache=True)
def _gve_rx_free_ring_dqo(k, cpu):
    """gve_rx_free_ring_dqo() in the queue's softirq: every state's page back (page_pool_put_full_page(), or the
    bias and its own reference), then page_pool_destroy().  (Completions left make the run the reference
    engine's.)"""
    k.st[PP_SOFTIRQ] = cpu + 1
    bs = k.gve.bs[cpu]
    for ix in range(k.cfg[RING_COUNT]):
        if bs[ix, GB_PAGE] < 0:
            continue
        if k.cfg[GV_POOL]:
            _pp_put_page(k, cpu, bs[ix, GB_PAGE], False)
            bs[ix, GB_PAGE] = -1
        else:
            _gve_free_page_dqo(k, cpu, ix)
    k.st[PP_SOFTIRQ] = 0
    if k.cfg[GV_POOL]:
        _page_pool_destroy(k, cpu)


# -- what the stack asks of a gve skb -------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _gve_head_len(k, frag, hlen):
    """The napi_alloc_skb() length a gve skb's head was allocated with: a copy's length (no frags), the
    header-split length (header split), GRO_MAX_HEAD (napi_get_frags())."""
    if frag < 0 or k.cfg[GV_HSPLIT]:
        return hlen
    return k.cfg[GV_GRO_MAX_HEAD]


@njit(cache=True, forceinline=True)
def _gve_skb_kind(k, frag, hlen):
    """The kind of a gve skb: 1 + the head kind napi_alloc_skb() gave it (FastSimulation._kind_names())."""
    return 1 + k.gve.copy[_gve_head_len(k, frag, hlen), CP_KIND]


@njit(cache=True, forceinline=True)
def _gve_condense(k, frag, hlen):
    """skb_condense() of a gve skb: (its head's room from the headroom to the end, SKB_TRUESIZE(end))."""
    n = _gve_head_len(k, frag, hlen)
    return k.gve.copy[n, CP_ROOM], k.gve.copy[n, CP_TS]
