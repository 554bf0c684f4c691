"""The fast engine's ntb_netdev driver: ntb_netdev_open()'s posted buffers, ntb_process_rxc(), the tasklet's
ntb_netdev_rx_handler() with netif_rx() and process_backlog(), and ntb_netdev_close(), compiled.

skbsim/drivers/ntb.py over the TunQueues record (skbsim.fast.state): tab is what __netdev_alloc_skb() gives
for each length (T_* columns, filled by skbsim.fast.ntb_setup.NtbLengths from the model), the ring
buffer's own row at NTB_BUF_ROW; queue[cpu, n % RING_COUNT] is the n-th entry ever posted on the queue.
The transport's two lists (rx_pend_q, rx_post_q) are FIFOs whose entries go from the head of one to the
tail of the other, so one ring of NTB_RXQ_SIZE slots holds both, as counts that never wrap: pcpu NTC
entries taken by the handler, HW_NEXT filled by the transport, NTU posted (post: NTC..HW_NEXT, pend:
HW_NEXT..NTU).  delivered[length]: skbs handed to the stack by frame length (a length up to copybreak is
always a copy, a longer one always the ring's buffer: their names, NtbLengths.names_of()).
"""

from __future__ import annotations

from skbsim.fast import tcp_napi  # -- TCP through NAPI drivers -- (modules)
from skbsim.fast.layout import (
    ERR_EMPTY_FRAME, ERR_TABLE_FULL, NTB_BUF_ROW, O_DRIVER, O_OVERSIZE, O_RING_FULL, ROUTE_NONE, TH_PAGE_FRAG,
    T_BUFLEN, T_CACHE, T_HEAD, T_ROUTE, T_TS, njit,
)
from skbsim.fast.mm import _pf_alloc, _put_page
from skbsim.fast.napi import _free_skb, _raise_irq
from skbsim.fast import poll  # (a module, as tun imports it)
from skbsim.fast.rx import _batch_add
from skbsim.fast.slub import _slab_alloc
from skbsim.fast.sock import _trace_drop
from skbsim.fast.state import (
    CACHE_SKB, COPYBREAK, D_BUF_FAILURES, D_BYTES, D_BYTES_COPIED, D_COPIED, D_FRAMES, D_FRAMES_DROPPED,
    D_NIC_FRAMES, D_OVERSIZE, D_RELEASED, D_REUSED, D_RING_DROPS, D_SKB_FAILURES,
    D_USED, ERR, HW_NEXT, NCPUS, NTC, NTU, Q_DROPPED, Q_FRAMES, Q_NIC_FRAMES, RING_COUNT, RXMAX, SCHEDULED,
    SKB_HEAD, SKB_HLEN, SKB_OBJ, SKB_TS, NOW, TRACE,
)
from skbsim.fast.state import TC_RUN  # -- TCP through NAPI drivers --
from skbsim.fast.tun import _alloc_skb


@njit(cache=True, forceinline=True)
def _ntb_netdev_alloc_skb(k, cpu, row):
    """net/core/skbuff.c: __netdev_alloc_skb() of the length whose table row is row: (head, sk_buff), the sk_buff
    -1 when it failed (what was taken given back).  A page fragment (TH_PAGE_FRAG) of the NAPI page_frag_cache
    (the model runs the handler in softirq, IRQs on), then __build_skb()'s sk_buff from skbuff_head_cache
    (skb_free_frag() when there is none); otherwise __alloc_skb(): its sk_buff, then kmalloc_reserve()'s head
    (skbuff_small_head, a kmalloc cache or pages of their own), the sk_buff back to its slab without one."""
    kind = row[T_HEAD]
    if kind == TH_PAGE_FRAG:
        head = _pf_alloc(k.pages, k.faults, k.st, k.pcpu[cpu], k.cfg, row[T_BUFLEN])
        if head < 0:
            return -1, -1
        obj = _slab_alloc(k.slabs, CACHE_SKB, cpu, k.pages, k.faults, k.st)
        if obj < 0:
            if not k.st[ERR]:
                _put_page(k.pages, k.st, head)
            return -1, -1
        return head, obj
    return _alloc_skb(k, cpu, kind, row[T_CACHE])


@njit(cache=True, forceinline=True)
def _ntb_rx_enqueue(k, cpu, head, obj, ts):
    """drivers/ntb/ntb_transport.c: ntb_transport_rx_enqueue() - an skb posted at the tail of rx_pend_q."""
    q = k.pcpu[cpu]
    entry = k.tun.queue[cpu, q[NTU] % k.cfg[RING_COUNT]]
    entry[SKB_HEAD] = head
    entry[SKB_OBJ] = obj
    entry[SKB_TS] = ts
    entry[SKB_HLEN] = 0
    q[NTU] += 1


@njit(cache=True, entry=True)
def _ntb_open(k):
    """drivers/net/ntb_netdev.c: ntb_netdev_open() of each CPU's queue on that CPU: NTB_RXQ_SIZE (RING_COUNT) buffers of
    netdev_alloc_skb(mtu + ETH_HLEN) posted (a failed one counted and skipped).  Runs before the traffic,
    with no fault rule on (the caller turns them on after, as Simulation does)."""
    row = k.tun.tab[NTB_BUF_ROW]
    for cpu in range(k.cfg[NCPUS]):
        for _ in range(k.cfg[RING_COUNT]):
            head, obj = _ntb_netdev_alloc_skb(k, cpu, row)
            if obj < 0:
                k.st[D_BUF_FAILURES] += 1
            else:
                _ntb_rx_enqueue(k, cpu, head, obj, row[T_TS])


@njit(cache=True, forceinline=True)
def _ntb_arrive(k, cpu, length):
    """drivers/ntb/ntb_transport.c: ntb_process_rxc() of a frame on queue cpu, then the IRQ: into the first posted
    buffer; none posted is a ring drop, a frame longer than a buffer (RXMAX: mtu + ETH_HLEN) an oversize drop
    (both counted); False when dropped or when err[0] is set."""
    q = k.pcpu[cpu]
    if length == 0:
        k.st[ERR] = ERR_EMPTY_FRAME
        return False
    if q[NTU] == q[HW_NEXT]:
        k.st[D_RING_DROPS] += 1
        if k.cfg[TRACE]:
            _trace_drop(k.trace, k.st, k.st[NOW], cpu, length, O_RING_FULL)
        return False
    if length > k.cfg[RXMAX]:
        k.st[D_OVERSIZE] += 1
        if k.cfg[TRACE]:
            _trace_drop(k.trace, k.st, k.st[NOW], cpu, length, O_OVERSIZE)
        return False
    k.tun.queue[cpu, q[HW_NEXT] % k.cfg[RING_COUNT], SKB_HLEN] = length
    q[HW_NEXT] += 1
    k.st[D_NIC_FRAMES] += 1
    q[Q_NIC_FRAMES] += 1
    if q[SCHEDULED] == 0:
        _raise_irq(k, cpu, k.st[NOW])
    return True


@njit(cache=True, forceinline=True)
def _ntb_frame_up(k, cpu, length):
    """net/core/dev.c: netif_rx() took the frame (the backlog never holds more than a poll's skbs, far below
    netdev_max_backlog, so it never drops one): counted."""
    k.st[D_FRAMES] += 1
    k.pcpu[cpu, Q_FRAMES] += 1
    k.st[D_BYTES] += length
    k.tun.delivered[length] += 1
    if k.tcp.tc[TC_RUN]:  # -- TCP through NAPI drivers --: its TCP facts are the poll's next skb's
        tcp_napi._frame_taken(k, cpu, True)


@njit(cache=True, forceinline=True)
def _ntb_rx_handler(k, cpu, n):
    """drivers/net/ntb_netdev.c: ntb_netdev_rx_handler() of the first entry of rx_post_q: a frame up to copybreak
    copied into netdev_alloc_skb_ip_align(len) and the ring's skb posted again; a longer one handed up in its
    buffer and a fresh netdev_alloc_skb(mtu + ETH_HLEN) posted (the slot lost when that fails).  The skb for the
    stack is the batch's n-th; returns the batch's length."""
    q = k.pcpu[cpu]
    tab = k.tun.tab
    entry = k.tun.queue[cpu, q[NTC] % k.cfg[RING_COUNT]]
    q[NTC] += 1
    length = entry[SKB_HLEN]
    head, obj, ts = entry[SKB_HEAD], entry[SKB_OBJ], entry[SKB_TS]
    k.st[D_USED] += 1
    if length <= k.cfg[COPYBREAK]:
        if tab[length, T_ROUTE] == ROUTE_NONE:
            k.st[ERR] = ERR_TABLE_FULL  # a length NtbLengths.prepare() did not see
            return n
        copy_head, copy_obj = _ntb_netdev_alloc_skb(k, cpu, tab[length])
        if k.st[ERR]:
            return n
        _ntb_rx_enqueue(k, cpu, head, obj, ts)
        k.st[D_REUSED] += 1
        if copy_obj < 0:
            k.st[D_SKB_FAILURES] += 1
            k.st[D_FRAMES_DROPPED] += 1
            q[Q_DROPPED] += 1
            if k.tcp.tc[TC_RUN]:  # -- TCP through NAPI drivers --: the frame's TCP facts go with it
                tcp_napi._frame_taken(k, cpu, False)
            if k.cfg[TRACE]:
                _trace_drop(k.trace, k.st, k.st[NOW], cpu, length, O_DRIVER)
            return n
        k.st[D_COPIED] += 1
        k.st[D_BYTES_COPIED] += length
        _ntb_frame_up(k, cpu, length)
        return _batch_add(k, n, copy_head, -1, copy_obj, length, 0, tab[length, T_TS])
    _ntb_frame_up(k, cpu, length)
    n = _batch_add(k, n, head, -1, obj, length, 0, ts)
    k.st[D_RELEASED] += 1
    row = tab[NTB_BUF_ROW]
    new_head, new_obj = _ntb_netdev_alloc_skb(k, cpu, row)
    if new_obj < 0:
        if not k.st[ERR]:
            k.st[D_BUF_FAILURES] += 1
        return n
    _ntb_rx_enqueue(k, cpu, new_head, new_obj, row[T_TS])
    return n


@njit(cache=True, forceinline=True)
def _ntb_poll(k, cpu):
    """One napi_poll() (Simulation._poll) of an ntb queue: the defer list, the transport's tasklet for up to
    budget frames (drivers/ntb/ntb_transport.c: ntb_complete_rxc() -> ntb_netdev_rx_handler(), each skb to
    netif_rx()), then net/core/dev.c: process_backlog() hands them all to the stack, in order."""
    taken_before, budget = poll._poll_start(k, cpu)
    q = k.pcpu[cpu]
    work = n = 0
    while work < budget and q[HW_NEXT] > q[NTC]:
        n = _ntb_rx_handler(k, cpu, n)
        if k.st[ERR]:
            return
        work += 1
    poll._poll_deliver(k, cpu, n)
    if k.st[ERR]:
        return
    poll._poll_end(k, cpu, work, budget, n, taken_before)


@njit(cache=True, forceinline=True)
def _ntb_close_queue(k, cpu):
    """drivers/net/ntb_netdev.c: ntb_netdev_close() of queue cpu: every entry's skb freed, rx_post_q's (frames
    never handled) first, then rx_pend_q's; the backlog is empty between polls."""
    q = k.pcpu[cpu]
    count = k.cfg[RING_COUNT]
    while q[NTC] < q[NTU]:
        entry = k.tun.queue[cpu, q[NTC] % count]
        _free_skb(k, cpu, entry[SKB_HEAD], -1, entry[SKB_OBJ])
        q[NTC] += 1
    q[HW_NEXT] = q[NTC]
