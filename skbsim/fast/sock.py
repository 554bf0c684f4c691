"""The fast engine's stack above the driver: UDP delivery, the reader, and --trace/--plot records, compiled.

Simulation._deliver() and __udp_enqueue_schedule_skb() (admission, skb_condense(), forward
allocation, the queue and its pinned pages), Simulation._app_read() with udp_recvmsg(),
udp_rmem_release() and the free (consume_skb(), or skb_attempt_defer_free() and its IPI).
"""

from __future__ import annotations

import numpy as np

from skbsim.drivers.virtio_net import GOOD_COPY_LEN

from skbsim.fast.layout import (
    COUNTED, ERR_BUG, ERR_TABLE_FULL, ETH_HLEN, O_DELIVERED, O_OVERSIZE, O_RING_FULL, O_SOCKET, READER_CPU, T_CPU,
    T_DATA_LEN, T_FRAME_LEN, T_KIND, T_LEN, T_NR_FRAGS, T_OUTCOME, T_TIME, T_TRUESIZE, _READ, njit,
)
from skbsim.fast.mm import _nr_frags, _pin_frags, _pin_page
from skbsim.fast.napi import _free_skb, _head_page, _nc_put, _push, _release_skb
from skbsim.fast.rules import (
    DEFER_KICK, DEFER_NONE, _sk_mem_reclaimable, _skb_defer_admit, _udp_forward_pages, _udp_rcvbuf_admits,
)
from skbsim.fast.state import (
    APP_GAP, APP_NEXT, APP_UNLIMITED, APP_WAITING, CB_KIND, CONDENSED, CONSUMED, COND_ROOM, COND_TS, COPYBREAK, COST,
    DEFER_FREE, DEFER_IPI, DEFER_LEN, DEFER_LIMIT_MINUS_1, DEFICIT, DELIVERED, DRIVER, DRIVER_COPYBREAK, DRIVER_ICE,
    DRIVER_TUN, DRIVER_VIRTIO, ENQUEUED, ERR, FWD, FWD_DEFICIT_ONLY, IPI_SENT, IPIS, LARGE_FIT, MEMALLOC, NOW,
    PAGE_SIZE,
    PEAK_PINNED, PEAK_RMEM, PINNED, PLOT, RCVBUF, READER_LEN, RMEM, RXMAX, SK_DROPS, SK_HEAD, SK_LEN, SKB_CPU, SKB_DLEN,
    SKB_FRAG, SKB_HEAD, SKB_HLEN, SKB_OBJ, SKB_TS, STRICT_FIT, TB_COUNT, TB_TRUESIZE, TR_LEN, TRACE,
    TRUESIZE_TOTAL, VQ_IP_ALIGN,
)
from skbsim.fast.state import DRIVER_LIBETH, FQ_COUNT, FQ_HSPLIT, FQ_SHORT_LEN, PP_SOFTIRQ  # page_pool
from skbsim.fast.state import DEFER_MAX  # net.core.skb_defer_max
from skbsim.fast import bnxt  # -- bnxt -- (a module: its skbs' kinds and heads)
from skbsim.fast.state import DRIVER_BNXT  # -- bnxt --
from skbsim.fast import gve  # -- gve -- (a module: its skbs' heads)
from skbsim.fast.state import DRIVER_GVE  # -- gve --
from skbsim.fast.state import DRIVER_NTB  # ntb_netdev
from skbsim.fast import gro  # GRO

# -- --trace and --plot ---------------------------------------------------------------------------------------


@njit(cache=True)
def _trace_record(trace, st, time_ns, cpu, frame_len, outcome):
    """The next --trace record's row (its skb columns -1: none), or -1 with st[ERR] set when the table is
    full."""
    row = st[TR_LEN]
    records = trace.records
    if row >= records.shape[0]:
        st[ERR] = ERR_TABLE_FULL
        return -1
    records[row, T_TIME] = time_ns
    records[row, T_CPU] = cpu
    records[row, T_FRAME_LEN] = frame_len
    for col in range(T_LEN, T_OUTCOME):
        records[row, col] = -1
    records[row, T_OUTCOME] = outcome
    st[TR_LEN] = row + 1
    return row


@njit(cache=True)
def _trace_drop(trace, st, time_ns, cpu, frame_len, outcome):
    """A --trace record of a frame refused by the NIC or dropped by the driver (no skb)."""
    _trace_record(trace, st, time_ns, cpu, frame_len, outcome)


@njit(cache=True, forceinline=True)
def _trace_nic_drop(k, cpu, length):
    """_trace_drop() of a frame the NIC refused (rx._nic_arrive() false): longer than its buffers take, or no
    descriptor posted (Simulation._arrive()'s record of either)."""
    if k.cfg[TRACE] and not k.st[ERR]:
        outcome = O_OVERSIZE if length > k.cfg[RXMAX] else O_RING_FULL
        _trace_drop(k.trace, k.st, k.st[NOW], cpu, length, outcome)


@njit(cache=True)
def _count_truesize(trace, st, frame_len, nr_frags, truesize):
    """truesize_by_len for --plot: skbs by (frame length, nr_frags), which fixes their truesize."""
    table = trace.table
    if frame_len >= table.shape[0] or nr_frags >= table.shape[1]:
        st[ERR] = ERR_TABLE_FULL
        return
    if table[frame_len, nr_frags, TB_COUNT] and table[frame_len, nr_frags, TB_TRUESIZE] != truesize:
        st[ERR] = ERR_BUG  # two truesizes for one (length, frags): not a run this table can describe
        return
    table[frame_len, nr_frags, TB_COUNT] += 1
    table[frame_len, nr_frags, TB_TRUESIZE] = truesize


@njit(cache=True)
def _observe(k, skb, cpu, time_ns, refused):
    """What Simulation._deliver records of an skb of the batch for --trace and --plot, taken before queueing:
    skb->len + ETH_HLEN (after eth_skb_pad() for ice), data_len, truesize, nr_frags, and which kind of skb
    it is (its path and head source, named by FastSimulation._kind_names)."""
    cfg = k.cfg
    size = skb[SKB_HLEN] + skb[SKB_DLEN]
    frame_len = size if cfg[DRIVER] != DRIVER_ICE or size >= 60 else 60
    nr_frags = _nr_frags(k.frags, skb[SKB_FRAG])
    if cfg[PLOT]:
        _count_truesize(k.trace, k.st, frame_len, nr_frags, skb[SKB_TS])
    if not cfg[TRACE]:
        return
    kind = 0
    if cfg[DRIVER] == DRIVER_COPYBREAK:
        built = size
        if k.gro.cfg[gro.G_ON]:  # -- GRO --: an aggregate is the kind of skb its first segment was
            built = k.gro.member[skb[SKB_OBJ], gro.M_FRAME]
        kind = 1 + (k.rings.copy[CB_KIND, built] + 1 if built <= cfg[COPYBREAK] else 0)
    elif cfg[DRIVER] == DRIVER_VIRTIO:
        # built on the buffer (page_to_skb()'s build_skb(): above GOOD_COPY_LEN, NET_IP_ALIGN 0, no frags), or a copy
        kind = 0 if skb[SKB_FRAG] < 0 and size > GOOD_COPY_LEN and not cfg[VQ_IP_ALIGN] else 1
        if k.gro.cfg[gro.G_ON]:  # -- GRO --: an aggregate is the kind of skb its first segment was
            kind = 0 if k.gro.member[skb[SKB_OBJ], gro.M_HEAD_TS] else 1
    elif cfg[DRIVER] == DRIVER_TUN or cfg[DRIVER] == DRIVER_NTB:
        kind = size  # tun, ntb: what an skb is depends on its length (_TunLengths.names, NtbLengths.kind_names)
    elif cfg[DRIVER] == DRIVER_BNXT:  # -- bnxt --
        kind = bnxt._bnxt_skb_kind(k, skb[SKB_HLEN])
    elif cfg[DRIVER] == DRIVER_GVE:  # -- gve --
        kind = gve._gve_skb_kind(k, skb[SKB_FRAG], skb[SKB_HLEN])
    elif cfg[DRIVER] == DRIVER_LIBETH:
        # the fill queue of its head's buffer (FastSimulation._kind_names): the header queue (header split),
        # idpf's short queue or the MTU queue
        built = size
        if k.gro.cfg[gro.G_ON]:  # -- GRO --: an aggregate is the kind of skb its first segment was
            built = k.gro.member[skb[SKB_OBJ], gro.M_FRAME]
        kind = cfg[FQ_COUNT] - 1 if cfg[FQ_HSPLIT] else (1 if built <= cfg[FQ_SHORT_LEN] else 0)
    row = _trace_record(k.trace, k.st, time_ns, cpu, frame_len, O_SOCKET if refused else O_DELIVERED)
    if row >= 0:
        records = k.trace.records
        records[row, T_LEN] = frame_len - ETH_HLEN
        records[row, T_DATA_LEN] = skb[SKB_DLEN]
        records[row, T_TRUESIZE] = skb[SKB_TS]
        records[row, T_NR_FRAGS] = nr_frags
        records[row, T_KIND] = kind


# -- delivery: Simulation._deliver, __udp_enqueue_schedule_skb -----------------------------------------------------


@njit(cache=True, forceinline=True)
def _udp_rmem_schedule(cfg, st, size):
    """udp_rmem_schedule(): forward-allocate whole pages for the skb (udp_forward_pages()), then charge it."""
    pages = _udp_forward_pages(size, st[FWD], cfg[PAGE_SIZE], cfg[FWD_DEFICIT_ONLY])
    st[FWD] += pages * cfg[PAGE_SIZE] - size
    st[MEMALLOC] += pages


@njit(cache=True, forceinline=True)
def _enqueue(k, skb, cpu):
    """__udp_enqueue_schedule_skb() past admission: skb_condense() under pressure (paged data that fits the
    head's tailroom is pulled in and its page references dropped), the charge, the queue, the pinned pages.
    False when the queue table is full (st[ERR] set)."""
    cfg = k.cfg
    st = k.st
    frag = skb[SKB_FRAG]
    ts = skb[SKB_TS]
    aggregate = k.gro.cfg[gro.G_ON] != 0 and k.gro.member[skb[SKB_OBJ], gro.M_NEXT] >= 0  # -- GRO --: a frag_list
    if st[RMEM] > (cfg[RCVBUF] >> 1) and (frag >= 0 or aggregate):
        # (the skbs with frags of a run all have the same kind of head: cfg[COND_ROOM] is its room from the
        # headroom to the end, cfg[COND_TS] its truesize; bnxt's and gve's by the bytes in it; a linear skb
        # keeps its truesize)
        room, cond_ts = cfg[COND_ROOM], cfg[COND_TS]
        if cfg[DRIVER] == DRIVER_BNXT:  # -- bnxt --: its heads differ by the bytes in them
            room, cond_ts = bnxt._bnxt_condense(k, skb[SKB_HLEN])
        elif cfg[DRIVER] == DRIVER_GVE:  # -- gve --
            room, cond_ts = gve._gve_condense(k, frag, skb[SKB_HLEN])
        elif k.gro.cfg[gro.G_ON]:  # -- GRO --: an aggregate on a copybreak copy has the copy's head
            room, cond_ts = gro._condense_head(k, skb[SKB_OBJ], room, cond_ts)
        if skb[SKB_DLEN] <= room - skb[SKB_HLEN]:
            # (no paged data to pull, bnxt's page mode's frame all headers: the frag stays, truesize drops)
            if skb[SKB_DLEN]:
                gro._pull_paged(k, cpu, frag, skb[SKB_OBJ])  # a GRO aggregate's frag_list freed too
                aggregate = False
                frag = -1
            ts = cond_ts
            st[CONDENSED] += 1
    st[RMEM] += ts
    _udp_rmem_schedule(cfg, st, ts)
    queue = k.sock.queue
    qcap = queue.shape[0]
    if st[SK_LEN] >= qcap:
        st[ERR] = ERR_TABLE_FULL
        return False
    tail = st[SK_HEAD] + st[SK_LEN]
    if tail >= qcap:
        tail -= qcap
    queue[tail, SKB_HEAD] = skb[SKB_HEAD]
    queue[tail, SKB_FRAG] = frag
    queue[tail, SKB_OBJ] = skb[SKB_OBJ]
    queue[tail, SKB_TS] = ts
    queue[tail, SKB_CPU] = cpu
    st[SK_LEN] += 1
    st[ENQUEUED] += 1
    if st[RMEM] > st[PEAK_RMEM]:
        st[PEAK_RMEM] = st[RMEM]
    _pin_page(k.sock, st, _head_page(k.slabs, skb[SKB_HEAD]), 1)
    if frag >= 0:
        _pin_frags(k.sock, k.frags, st, frag, 1)
    if aggregate:  # -- GRO --
        gro._pin_members(k, skb[SKB_OBJ], 1)
    if st[PINNED] > st[PEAK_PINNED]:
        st[PEAK_PINNED] = st[PINNED]
    return True


@njit(cache=True, forceinline=True)
def _deliver(k, cpu, n):
    """Simulation._deliver() of the poll's n skbs (k.batch), in order: the stack takes each and queues it on
    the UDP socket, or drops it (kfree_skb(): frag pages, the head, then the sk_buff)."""
    cfg = k.cfg
    st = k.st
    now = st[NOW]
    for d in range(n):
        skb = k.batch[d]
        ts = skb[SKB_TS]
        st[DELIVERED] += 1
        st[TRUESIZE_TOTAL] += ts
        refused = not _udp_rcvbuf_admits(st[RMEM], ts, cfg[RCVBUF], cfg[STRICT_FIT], cfg[LARGE_FIT])
        if cfg[TRACE] or cfg[PLOT]:
            _observe(k, skb, cpu, now + (d + 1) * cfg[COST], refused)
        if refused:
            st[SK_DROPS] += 1
            _free_skb(k, cpu, skb[SKB_HEAD], skb[SKB_FRAG], skb[SKB_OBJ])
        elif not _enqueue(k, skb, cpu):
            return


# -- the reader: Simulation._app_read on CPU 0 -------------------------------------------------------------------


#: udp_rmem_release()'s partial: 1 as udp_recvmsg() calls it, 0 from udp_destroy_sock()
PARTIAL, WHOLE = np.int64(1), np.int64(0)


@njit(cache=True, forceinline=True)
def _udp_rmem_release(cfg, st, size, partial):
    """udp_rmem_release(size, partial): reads (partial) accumulate in forward_deficit; the charge goes back
    once it reaches a quarter of the buffer or the reader queue runs dry, with the whole pages of forward
    allocation beyond what is kept; the receive queue becomes the reader queue."""
    if partial:
        st[DEFICIT] += size
        size = st[DEFICIT]
        if size < (cfg[RCVBUF] >> 2) and st[READER_LEN] > 0:
            return
    else:
        size += st[DEFICIT]
    page_size = cfg[PAGE_SIZE]
    st[DEFICIT] = 0
    st[FWD] += size
    amount = _sk_mem_reclaimable(st[FWD], partial, page_size)
    st[FWD] -= amount
    st[MEMALLOC] -= amount // page_size
    st[RMEM] -= size
    st[READER_LEN] = st[SK_LEN]


@njit(cache=True, forceinline=True)
def _attempt_defer_free(k, head, frag, obj, owner):
    """skb_attempt_defer_free() on CPU 0: freed here into CPU 0's NAPI cache when local or when the owner's
    list is full (skb_defer_admit()), else queued on the owner's list until its next net_rx_action(); the
    skb that fills the list to half sends the owner an IPI (kick_defer_list_purge(), one at a time),
    sent once this read is over (_send_ipis)."""
    napi = k.pcpu[owner]
    verdict = DEFER_NONE
    if owner != 0:
        verdict = _skb_defer_admit(napi[DEFER_LEN], k.cfg[DEFER_MAX], k.cfg[DEFER_LIMIT_MINUS_1])
    if verdict == DEFER_NONE:
        k.st[PP_SOFTIRQ] = READER_CPU + 1  # kfree_skb_napi_cache(): bottom halves off
        _release_skb(k, READER_CPU, head, frag, obj)
        k.st[PP_SOFTIRQ] = 0
        _nc_put(k, READER_CPU, obj, COUNTED)
        return
    skb = k.cpus.defer[owner, napi[DEFER_LEN]]
    skb[SKB_HEAD] = head
    skb[SKB_FRAG] = frag
    skb[SKB_OBJ] = obj
    napi[DEFER_LEN] += 1
    if verdict == DEFER_KICK and napi[DEFER_IPI] == 0:
        napi[DEFER_IPI] = 1
        k.st[IPIS] += 1
        napi[IPI_SENT] = k.st[IPIS]


@njit(cache=True, forceinline=True)
def _app_read(k):
    """Simulation._app_read on CPU 0: udp_recvmsg() per datagram (the reader queue refilled from the receive
    queue when empty), the charge released, the skb freed in process context; one datagram per read at a
    limited rate, else all that is queued."""
    cfg = k.cfg
    st = k.st
    queue = k.sock.queue
    qcap = queue.shape[0]
    while True:
        if st[SK_LEN] == 0:
            st[APP_WAITING] = 1
            return
        if st[READER_LEN] == 0:
            st[READER_LEN] = st[SK_LEN]
        at = st[SK_HEAD]
        head = queue[at, SKB_HEAD]
        frag = queue[at, SKB_FRAG]
        obj = queue[at, SKB_OBJ]
        owner = queue[at, SKB_CPU]
        st[SK_HEAD] = at + 1 if at + 1 < qcap else 0
        st[SK_LEN] -= 1
        st[READER_LEN] -= 1
        _udp_rmem_release(cfg, st, queue[at, SKB_TS], PARTIAL)
        head_page = _head_page(k.slabs, head)  # the pages are looked up before udp_recvmsg()
        if k.gro.cfg[gro.G_ON] and k.gro.member[obj, gro.M_NEXT] >= 0:  # -- GRO --: a frag_list's pages
            gro._pin_members(k, obj, -1)
        if cfg[DEFER_FREE]:
            _attempt_defer_free(k, head, frag, obj, owner)
        else:
            _free_skb(k, READER_CPU, head, frag, obj)  # consume_skb()
        st[CONSUMED] += 1
        _pin_page(k.sock, st, head_page, -1)
        if frag >= 0:
            _pin_frags(k.sock, k.frags, st, frag, -1)
        if not cfg[APP_UNLIMITED]:
            st[APP_NEXT] = st[NOW] + cfg[APP_GAP]
            _push(k.events, st, st[APP_NEXT], _READ, READER_CPU)
            return
