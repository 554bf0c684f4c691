"""The fast engine's NAPI and stack: events, the skb cache, RX skb allocation, the socket, the reader, compiled."""

from __future__ import annotations

from skbsim.fast.layout import (
    APP_GAP, APP_NEXT, APP_UNLIMITED, APP_WAITING, BUDGET_LEFT, BUSY_UNTIL, CB_COPYBREAK, CLOCK_LIMIT, CONDENSED,
    DEFER_IPI, DEFER_LIMIT_M1, IPI_SENT, IPIS, LARGE_FIT, _IPI,
    COND_ROOM, COND_TS, CONSUMED, COST, DEFER_FREE, DEFER_LEN, DEFICIT, DELIVERED, DRIVER_CB, DRIVER_TUN,
    ENQUEUED, ERR, ERR_BUG, ERR_CLOCK, ERR_TABLE_FULL, ETH_HLEN, FL_TAG, FWD, FWD_DEFICIT_ONLY, HEAD_1K, HEAD_FRAG,
    HEAD_SMALL, IN_USE, IRQS, IRQ_LATENCY, KM_TAG, K_OBJS, MEMALLOC, NC_BULK, NC_FLUSHES, NC_FREE,
    NC_GETS, NC_HITS, NC_LEN, NC_PUTS, NC_REFILLS, NC_REFILL_FAILURES, NC_SIZE, NEV, NOW, ORDER,
    O_DELIVERED, O_SOCKET, PAGE_SIZE_C, PEAK_PINNED, PEAK_RMEM, PINNED, PLOT, Q_DROPPED, Q_FRAMES, Q_HEAD,
    Q_LEN, Q_NIC_FRAMES, RCVBUF, READER_LEN, RMEM, ROUND_START, SCHEDULED, SERIES_LIMIT, SKB_DEFER_MAX,
    SK_DROPS, SMALL_TAG, SR_COUNT, SR_EVERY, SR_LEN, STRICT_FIT, TIME_SQUEEZE, TRACE, TRAFFIC_DONE,
    TRUESIZE_TOTAL, TR_LEN, T_CPU, T_DATA_LEN, T_FRAME_LEN, T_KIND, T_LEN, T_NR_FRAGS, T_OUTCOME, T_TIME,
    T_TRUESIZE, U32_MASK, _POLL, _READ, njit,
)
from skbsim.fast.mm import (
    _km, _p1k_alloc, _pf_alloc, _pin_frags, _put_frags, _put_page, _slab_alloc, _slab_free, _slab_page,
)
from skbsim.fast.rules import DEFER_KICK, DEFER_NONE, _skb_defer_admit, _udp_rcvbuf_admits
from skbsim.sim import NETDEV_BUDGET, NETDEV_BUDGET_NS


@njit(cache=True)
def _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, time_ns, kind, cpu):
    """An event at time_ns; every event time passes here, so this is where the clock is bounded."""
    n = S[NEV]
    if n >= ev_time.shape[0]:
        S[ERR] = ERR_TABLE_FULL
        return
    if time_ns >= CLOCK_LIMIT:
        S[ERR] = ERR_CLOCK
        return
    S[ORDER] += 1
    order = S[ORDER]
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if ev_time[parent] < time_ns or (ev_time[parent] == time_ns and ev_order[parent] < order):
            break
        ev_time[i] = ev_time[parent]
        ev_order[i] = ev_order[parent]
        ev_kind[i] = ev_kind[parent]
        ev_cpu[i] = ev_cpu[parent]
        i = parent
    ev_time[i] = time_ns
    ev_order[i] = order
    ev_kind[i] = kind
    ev_cpu[i] = cpu
    S[NEV] = n + 1


@njit(cache=True)
def _heap_pop(S, ev_time, ev_order, ev_kind, ev_cpu):
    """Remove the smallest (time, order); returns kind * 1024 + cpu (the caller reads the time first)."""
    kind = ev_kind[0] * 1024 + ev_cpu[0]
    n = S[NEV] - 1
    S[NEV] = n
    t = ev_time[n]
    o = ev_order[n]
    k = ev_kind[n]
    c = ev_cpu[n]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and (ev_time[child + 1] < ev_time[child] or
                              (ev_time[child + 1] == ev_time[child] and ev_order[child + 1] < ev_order[child])):
            child += 1
        if t < ev_time[child] or (t == ev_time[child] and o < ev_order[child]):
            break
        ev_time[i] = ev_time[child]
        ev_order[i] = ev_order[child]
        ev_kind[i] = ev_kind[child]
        ev_cpu[i] = ev_cpu[child]
        i = child
    if n > 0:
        ev_time[i] = t
        ev_order[i] = o
        ev_kind[i] = k
        ev_cpu[i] = c
    return kind


@njit(cache=True)
def _nc_put(S, C, R, ncv, slab0, slab1,
            page_ref, page_order, page_free, pg_freed, obj, count_it):
    """napi_skb_cache_put() on one CPU's cache: a full cache gives its top NAPI_SKB_CACHE_FREE back."""
    if count_it:
        S[NC_PUTS] += 1
    ncv[R[NC_LEN]] = obj
    R[NC_LEN] += 1
    if R[NC_LEN] == C[NC_SIZE]:
        keep = C[NC_SIZE] - C[NC_FREE]
        for j in range(keep, C[NC_SIZE]):
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, ncv[j])
        R[NC_LEN] = keep
        if count_it:
            S[NC_FLUSHES] += 1


@njit(cache=True, inline="always")
def _head_page(slab1, tn, head):
    """virt_to_head_page() of an skb head: the head's own page (a page id), its skbuff_small_head
    slab's page (SMALL_TAG + object) or its tun kmem cache slab's page (KM_TAG + cache, object)."""
    if head < SMALL_TAG:
        return head
    if head < KM_TAG:
        return _slab_page(slab1, head - SMALL_TAG)
    c = (head - KM_TAG) >> 32
    obj = (head - KM_TAG) & U32_MASK
    return tn[6][c, obj // tn[2][c, K_OBJS]]


@njit(cache=True, inline="always")
def _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, head, frag):
    """skb_release_data(): the frag pages' references in frag order, then skb_free_head(): a page
    fragment's reference (skb_free_frag), an skbuff_small_head object, or a tun kmalloc head (kfree:
    a kmem cache object, or the pages of a large one, which are a page id)."""
    if frag >= 0:
        _put_frags(S, page_ref, page_order, page_free, pg_freed, fl, frag)
    if head < SMALL_TAG:
        _put_page(S, page_ref, page_order, page_free, pg_freed, head)
    elif head < KM_TAG:
        _slab_free(S, slab1, page_ref, page_order, page_free, pg_freed, head - SMALL_TAG)
    else:
        c = (head - KM_TAG) >> 32
        _slab_free(S, _km(tn, c), page_ref, page_order, page_free, pg_freed, (head - KM_TAG) & U32_MASK)


@njit(cache=True)
def _defer_flush(S, C, R, ncv, dfv_page, dfv_frag, dfv_obj, slab0, slab1, fl, tn,
                 page_ref, page_order, page_free, pg_freed, count_it):
    """skb_defer_free_flush(): napi_consume_skb() of every skb other CPUs handed back to this one."""
    n = R[DEFER_LEN]
    R[DEFER_LEN] = 0
    for j in range(n):
        _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, dfv_page[j], dfv_frag[j])
        _nc_put(S, C, R, ncv, slab0, slab1,
                page_ref, page_order, page_free, pg_freed, dfv_obj[j], count_it)


@njit(cache=True, inline="always")
def _nc_get(S, C, CS, cpu, nc, slab0, page_ref, page_order, page_free, pg_alloc, pg_freed):
    """napi_skb_cache_get(): an sk_buff object id from this CPU's cache, or -1.

    An empty cache is refilled by kmem_cache_alloc_bulk(), all or nothing: when
    one allocation fails, the objects already taken go back in the order taken.
    """
    S[NC_GETS] += 1
    if CS[cpu, NC_LEN] == 0:
        for _ in range(C[NC_BULK]):
            obj = _slab_alloc(S, slab0, page_ref, page_order, page_free, pg_alloc)
            if obj < 0:
                for j in range(CS[cpu, NC_LEN]):
                    _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, nc[cpu, j])
                CS[cpu, NC_LEN] = 0
                S[NC_REFILL_FAILURES] += 1
                return -1
            nc[cpu, CS[cpu, NC_LEN]] = obj
            CS[cpu, NC_LEN] += 1
        S[NC_REFILLS] += 1
    else:
        S[NC_HITS] += 1
    CS[cpu, NC_LEN] -= 1
    return nc[cpu, CS[cpu, NC_LEN]]


@njit(cache=True, inline="always")
def _alloc_rx_skb(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, pg_freed, slab0, slab1, nc, kind,
                  fragsz, buf_page):
    """An RX skb's allocations: (head, sk_buff object), the object -1 when one failed (everything taken
    on the way given back).

    kind -1, napi_build_skb(): the head is the driver's buffer (its page buf_page).  Otherwise
    __napi_alloc_skb(): HEAD_1K and HEAD_FRAG cut the head (fragsz bytes for the NAPI page_frag_cache)
    before taking the sk_buff, and skb_free_frag() it if that fails; HEAD_SMALL is __alloc_skb(),
    which takes the sk_buff first and the head from skbuff_small_head (the sk_buff goes back to its
    slab, not the cache, when there is none).
    """
    head = buf_page
    if kind == HEAD_1K or kind == HEAD_FRAG:
        if kind == HEAD_1K:
            head = _p1k_alloc(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc)
        else:
            head = _pf_alloc(S, C, CS, cpu, page_ref, page_order, page_free, pg_alloc, fragsz)
        if head < 0:
            return -1, -1
    obj = _nc_get(S, C, CS, cpu, nc, slab0, page_ref, page_order, page_free, pg_alloc, pg_freed)
    if obj < 0:
        if kind == HEAD_1K or kind == HEAD_FRAG:
            _put_page(S, page_ref, page_order, page_free, pg_freed, head)
        return -1, -1
    if kind == HEAD_SMALL:
        head = _slab_alloc(S, slab1, page_ref, page_order, page_free, pg_alloc)
        if head < 0:
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, obj)
            return -1, -1
        head += SMALL_TAG
    return head, obj


@njit(cache=True)
def _trace_drop(S, tr, time_ns, cpu, frame_len, outcome):
    """A --trace record of a frame refused by the NIC or dropped by the driver (no skb: its skb
    columns stay -1)."""
    row = S[TR_LEN]
    if row >= tr.shape[0]:
        S[ERR] = ERR_TABLE_FULL
        return
    tr[row, T_TIME] = time_ns
    tr[row, T_CPU] = cpu
    tr[row, T_FRAME_LEN] = frame_len
    for col in range(T_LEN, T_OUTCOME):
        tr[row, col] = -1
    tr[row, T_OUTCOME] = outcome
    S[TR_LEN] = row + 1


@njit(cache=True)
def _count_truesize(S, counts, values, frame_len, nr_frags, truesize):
    """truesize_by_len for --plot: skbs by (frame length, nr_frags), which fixes their truesize."""
    if frame_len >= counts.shape[0] or nr_frags >= counts.shape[1]:
        S[ERR] = ERR_TABLE_FULL
        return
    if counts[frame_len, nr_frags] and values[frame_len, nr_frags] != truesize:
        S[ERR] = ERR_BUG  # two truesizes for one (length, frags): not a run this table can describe
        return
    counts[frame_len, nr_frags] += 1
    values[frame_len, nr_frags] = truesize


@njit(cache=True)
def _series_add(S, series, time_ns, in_use, rmem):
    """sim._Series.add(): a point every SR_EVERY calls; at SERIES_LIMIT points every other one is
    dropped and the step doubles."""
    S[SR_COUNT] += 1
    if S[SR_COUNT] % S[SR_EVERY]:
        return
    n = S[SR_LEN]
    series[n, 0] = time_ns
    series[n, 1] = in_use
    series[n, 2] = rmem
    n += 1
    if n >= SERIES_LIMIT:
        for j in range(0, n, 2):
            series[j // 2, 0] = series[j, 0]
            series[j // 2, 1] = series[j, 1]
            series[j // 2, 2] = series[j, 2]
        n = (n + 1) // 2
        S[SR_EVERY] *= 2
    S[SR_LEN] = n


@njit(cache=True)
def _raise_irq(S, C, R, ev_time, ev_order, ev_kind, ev_cpu, time_ns, cpu):
    S[IRQS] += 1
    R[SCHEDULED] = 1
    start = time_ns + C[IRQ_LATENCY]
    if R[BUSY_UNTIL] > start:
        start = R[BUSY_UNTIL]
    R[BUDGET_LEFT] = NETDEV_BUDGET
    R[ROUND_START] = start
    _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, start, _POLL, cpu)


@njit(cache=True)
def _deliver(S, C, cpu, ndel, page_ref, page_order, page_free, page_pin, pg_freed, slab0, slab1,
             q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl, tn, obs):
    """Simulation._deliver() of the poll's skbs (dl_*: head, frags, sk_buff, bytes in the head and in
    frags, truesize), in order: the stack takes each and queues it on the UDP socket, or drops it."""
    cost = C[COST]
    qcap = q_page.shape[0]
    page_size = C[PAGE_SIZE_C]
    rcvbuf = C[RCVBUF]
    for d in range(ndel):
        pid = dl_page[d]
        frag = dl_frag[d]
        obj = dl_obj[d]
        ts = dl_ts[d]
        S[DELIVERED] += 1
        S[TRUESIZE_TOTAL] += ts
        if C[TRACE] or C[PLOT]:
            # what Simulation._deliver records before queueing (skb->len + ETH_HLEN, after eth_skb_pad()
            # for ice), and which kind of skb it is (path, head source: see _kind_names)
            size = dl_hlen[d] + dl_dlen[d]
            frame_len = size if C[DRIVER_CB] or C[DRIVER_TUN] or size >= 60 else 60
            nr_frags = 0 if frag < 0 else (1 if frag < FL_TAG else fl[frag - FL_TAG, 0])
            kind = 0
            if C[DRIVER_CB]:
                kind = 1 + (cb_tab[0, size] + 1 if size <= C[CB_COPYBREAK] else 0)
            elif C[DRIVER_TUN]:
                kind = size  # tun: what an skb is depends on its length (_TunLengths.names)
            record_ts = ts
            if C[PLOT]:
                _count_truesize(S, obs[1], obs[2], frame_len, nr_frags, ts)
        rmem = S[RMEM]
        refused = not _udp_rcvbuf_admits(rmem, ts, rcvbuf, C[STRICT_FIT], C[LARGE_FIT])
        if not refused:
            if rmem > (rcvbuf >> 1) and frag >= 0:
                # skb_condense(): paged data that fits the head's tailroom is pulled in and its page
                # reference dropped; truesize is then the head's alone.  (A linear skb keeps its truesize.)
                # (the skbs with frags of a run all have the same kind of head: C[COND_ROOM] is its
                # room from the headroom to the end, C[COND_TS] its truesize)
                if dl_dlen[d] <= C[COND_ROOM] - dl_hlen[d]:
                    _put_frags(S, page_ref, page_order, page_free, pg_freed, fl, frag)
                    frag = -1
                    ts = C[COND_TS]
                    S[CONDENSED] += 1
            S[RMEM] += ts
            if C[FWD_DEFICIT_ONLY]:
                delta = ts - S[FWD]
                if delta > 0:
                    pages = (delta + page_size - 1) // page_size
                    S[FWD] += pages * page_size
                    S[MEMALLOC] += pages
            elif ts >= S[FWD]:
                pages = (ts + page_size - 1) // page_size
                S[FWD] += pages * page_size
                S[MEMALLOC] += pages
            S[FWD] -= ts
            if S[Q_LEN] >= qcap:
                S[ERR] = ERR_TABLE_FULL
                return
            tail = S[Q_HEAD] + S[Q_LEN]
            if tail >= qcap:
                tail -= qcap
            q_page[tail] = pid
            q_frag[tail] = frag
            q_obj[tail] = obj
            q_ts[tail] = ts
            q_cpu[tail] = cpu
            S[Q_LEN] += 1
            S[ENQUEUED] += 1
            if S[RMEM] > S[PEAK_RMEM]:
                S[PEAK_RMEM] = S[RMEM]
            head_page = _head_page(slab1, tn, pid)
            if page_pin[head_page] == 0:
                S[PINNED] += 1
            page_pin[head_page] += 1
            if frag >= 0:
                _pin_frags(S, page_pin, fl, frag, 1)
            if S[PINNED] > S[PEAK_PINNED]:
                S[PEAK_PINNED] = S[PINNED]
        else:
            S[SK_DROPS] += 1
            # kfree_skb(): frag pages, the head, then the sk_buff to its slab
            _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, pid, frag)
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, obj)
        if C[TRACE]:
            tr = obs[0]
            row = S[TR_LEN]
            if row >= tr.shape[0]:
                S[ERR] = ERR_TABLE_FULL
                return
            tr[row, T_TIME] = S[NOW] + (d + 1) * cost
            tr[row, T_CPU] = cpu
            tr[row, T_FRAME_LEN] = frame_len
            tr[row, T_LEN] = frame_len - ETH_HLEN
            tr[row, T_DATA_LEN] = dl_dlen[d]
            tr[row, T_TRUESIZE] = record_ts
            tr[row, T_NR_FRAGS] = nr_frags
            tr[row, T_KIND] = kind
            tr[row, T_OUTCOME] = O_SOCKET if refused else O_DELIVERED
            S[TR_LEN] = row + 1


@njit(cache=True)
def _poll_done(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu, work, budget, ndel, taken_before, obs):
    """The end of napi_poll() in Simulation._poll: the CPU busy for the work done, then poll again
    (budget used up; a spent netdev_budget or 2 jiffies is a time squeeze), or napi_complete_done()
    and an IRQ at once for frames that came meanwhile; the reader woken."""
    cost = C[COST]
    now = S[NOW]
    end = now + (work if work > ndel else ndel) * cost
    CS[cpu, BUSY_UNTIL] = end
    CS[cpu, BUDGET_LEFT] -= work
    # Simulation._poll: with no traffic left, a poll that took no frame off the ring ends NAPI
    stalled = S[TRAFFIC_DONE] and CS[cpu, Q_FRAMES] + CS[cpu, Q_DROPPED] == taken_before
    if work >= budget and not stalled:
        if CS[cpu, BUDGET_LEFT] <= 0 or end - CS[cpu, ROUND_START] >= NETDEV_BUDGET_NS:
            S[TIME_SQUEEZE] += 1
            CS[cpu, BUDGET_LEFT] = NETDEV_BUDGET
            CS[cpu, ROUND_START] = end
        _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, end, _POLL, cpu)
    else:
        CS[cpu, SCHEDULED] = 0
        if CS[cpu, Q_NIC_FRAMES] > CS[cpu, Q_FRAMES] + CS[cpu, Q_DROPPED] and not stalled:
            _raise_irq(S, C, CS[cpu], ev_time, ev_order, ev_kind, ev_cpu, end, cpu)
    if C[APP_UNLIMITED]:
        _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, end, _READ, 0)
    elif S[APP_WAITING] and S[Q_LEN] > 0:
        S[APP_WAITING] = 0
        _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, end if end > S[APP_NEXT] else S[APP_NEXT], _READ, 0)
    if C[PLOT]:
        _series_add(S, obs[3], end, S[IN_USE], S[RMEM])


@njit(cache=True)
def _send_ipis(S, C, CS, ev_time, ev_order, ev_kind, ev_cpu):
    """Simulation._send_ipis(): the IPIs of the last read, in the order sent, each taken by its CPU
    after the IRQ latency and once that CPU's softirq work in progress is over."""
    for k in range(1, S[IPIS] + 1):
        for cpu in range(CS.shape[0]):
            if CS[cpu, IPI_SENT] == k:
                CS[cpu, IPI_SENT] = 0
                start = S[NOW] + C[IRQ_LATENCY]
                if CS[cpu, BUSY_UNTIL] > start:
                    start = CS[cpu, BUSY_UNTIL]
                _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, start, _IPI, cpu)
    S[IPIS] = 0


@njit(cache=True)
def _app_read(S, C, CS, ev_time, ev_order, ev_kind, ev_cpu, page_ref, page_order, page_free, page_pin, pg_freed,
              slab0, slab1, nc, df_page, df_frag, df_obj,
              q_page, q_frag, q_obj, q_ts, q_cpu, fl, tn):
    """Simulation._app_read on CPU 0: udp_recvmsg() per datagram, the skb freed in process context."""
    page_size = C[PAGE_SIZE_C]
    threshold = C[RCVBUF] >> 2
    qcap = q_page.shape[0]
    while True:
        if S[Q_LEN] == 0:
            S[APP_WAITING] = 1
            return
        if S[READER_LEN] == 0:
            S[READER_LEN] = S[Q_LEN]
        head = S[Q_HEAD]
        pid = q_page[head]
        frag = q_frag[head]
        obj = q_obj[head]
        ts = q_ts[head]
        owner = q_cpu[head]
        head += 1
        S[Q_HEAD] = head if head < qcap else 0
        S[Q_LEN] -= 1
        S[READER_LEN] -= 1
        # udp_rmem_release(truesize, partial=1)
        S[DEFICIT] += ts
        size = S[DEFICIT]
        if not (size < threshold and S[READER_LEN] > 0):
            S[DEFICIT] = 0
            S[FWD] += size
            amount = (S[FWD] - 1) & ~(page_size - 1)
            S[FWD] -= amount
            S[MEMALLOC] -= amount // page_size
            S[RMEM] -= size
            S[READER_LEN] = S[Q_LEN]
        head_page = _head_page(slab1, tn, pid)  # the pages are looked up before udp_recvmsg()
        if C[DEFER_FREE]:
            # skb_attempt_defer_free(): freed here into CPU 0's NAPI cache when local (or the owner's
            # list is full), else queued on the allocating CPU until its next net_rx_action()
            Ro = CS[owner]
            verdict = DEFER_NONE if owner == 0 else _skb_defer_admit(Ro[DEFER_LEN], SKB_DEFER_MAX, C[DEFER_LIMIT_M1])
            if verdict == DEFER_NONE:
                _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, pid, frag)
                _nc_put(S, C, CS[0], nc[0], slab0, slab1,
                        page_ref, page_order, page_free, pg_freed, obj, True)
            else:
                df_page[owner, Ro[DEFER_LEN]] = pid
                df_frag[owner, Ro[DEFER_LEN]] = frag
                df_obj[owner, Ro[DEFER_LEN]] = obj
                Ro[DEFER_LEN] += 1
                if verdict == DEFER_KICK and Ro[DEFER_IPI] == 0:
                    # kick_defer_list_purge(): an IPI, sent (by _send_ipis) once this read is over
                    Ro[DEFER_IPI] = 1
                    S[IPIS] += 1
                    Ro[IPI_SENT] = S[IPIS]
        else:
            # consume_skb(): frag pages, the head, then the sk_buff to its slab
            _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, pid, frag)
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, obj)
        S[CONSUMED] += 1
        page_pin[head_page] -= 1
        if page_pin[head_page] == 0:
            S[PINNED] -= 1
        if frag >= 0:
            _pin_frags(S, page_pin, fl, frag, -1)
        if not C[APP_UNLIMITED]:
            S[APP_NEXT] = S[NOW] + C[APP_GAP]
            _heap_push(S, ev_time, ev_order, ev_kind, ev_cpu, S[APP_NEXT], _READ, 0)
            return
