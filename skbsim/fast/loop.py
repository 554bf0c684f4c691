"""The fast engine's event loop (_run) and the end of a run (_teardown), compiled."""

from __future__ import annotations

from skbsim.fast.layout import (
    BYTES, DEFER_LEN, DEFICIT, DRIVER_CB, DRIVER_TUN, D_OVERSIZE, ERR, FWD, HQ_HEAD, HQ_LEN, MEMALLOC,
    NC_LEN, NEV, NOW, O_DRIVER, O_OVERSIZE, O_RING_FULL, P1K_OFFSET, P1K_PAGE, PACKETS, PAGE_SIZE_C,
    PF_BIAS, PF_PAGE, Q_HEAD, Q_LEN, READER_LEN, RING_COUNT, RING_DROPS, RMEM, ROUTE_FRAGS, RXMAX,
    SCHEDULED, SZ_1K, TF_PAGE, TRACE, TRAFFIC_DONE, TUN_WMEM, T_ROUTE, DEFER_IPI, IPIS, _IPI, _POLL, njit,
)
from skbsim.fast.mm import _free_page, _put_page, _slab_free
from skbsim.fast.rx import _cb_nic_receive, _ice_nic_receive, _poll
from skbsim.fast.stack import _app_read, _defer_flush, _heap_pop, _raise_irq, _release_data, _send_ipis, _trace_drop
from skbsim.fast.tun import _tun_poll, _tun_write


@njit(cache=True)
def _run(S, C, CS, lengths, times, queues, hlens, n, final,
         ev_time, ev_order, ev_kind, ev_cpu,
         page_ref, page_order, page_free, page_pin, pg_alloc, pg_freed,
         ring_page, ring_bias, ring_pgcnt, desc_dd, desc_len, desc_hlen,
         slab0, slab1,
         nc, df_page, df_frag, df_obj, q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl,
         obs, tn):
    """Arrivals lengths[:n] at times[:n] on CPUs queues[:n], with every event before each;
    with final, then all remaining events."""
    i = 0
    ncpus = CS.shape[0]
    if final:
        S[TRAFFIC_DONE] = 1
    while S[ERR] == 0:
        if i < n:
            arrival = times[i]
            if S[NEV] > 0 and ev_time[0] < arrival:
                pass
            else:
                # -- a frame arrives (Simulation._arrive, ice_nic_receive) --------------------------
                S[NOW] = arrival
                length = lengths[i]
                cpu = queues[i] % ncpus
                i += 1
                S[PACKETS] += 1
                S[BYTES] += length
                if C[DRIVER_TUN]:
                    # tun: the frame is a write() into the queue (_tun_write); a refused one is counted there
                    if _tun_write(S, C, CS, cpu, length, page_ref, page_order, page_free, pg_alloc, pg_freed,
                                  slab0, slab1, nc, fl, tn):
                        if CS[cpu, SCHEDULED] == 0:
                            _raise_irq(S, C, CS[cpu], ev_time, ev_order, ev_kind, ev_cpu, S[NOW], cpu)
                    elif S[ERR]:
                        return i
                    elif C[TRACE]:
                        _trace_drop(S, obs[0], S[NOW], cpu, length, O_DRIVER)  # the write was refused
                    continue
                if length > C[RXMAX]:
                    S[D_OVERSIZE] += 1
                    ok = False
                elif C[DRIVER_CB]:
                    ok = _cb_nic_receive(S, C, CS, cpu, length, desc_dd, desc_len, desc_hlen, ring_page)
                else:
                    ok = _ice_nic_receive(S, C, CS, cpu, length, hlens[i - 1], desc_dd, desc_len, desc_hlen)
                if S[ERR]:
                    return i
                if not ok:
                    S[RING_DROPS] += 1
                    if C[TRACE]:
                        _trace_drop(S, obs[0], S[NOW], cpu, length, O_OVERSIZE if length > C[RXMAX] else O_RING_FULL)
                elif CS[cpu, SCHEDULED] == 0:
                    _raise_irq(S, C, CS[cpu], ev_time, ev_order, ev_kind, ev_cpu, S[NOW], cpu)
                continue
        elif not final or S[NEV] == 0:
            return i
        # -- the next event -----------------------------------------------------------------------
        S[NOW] = ev_time[0]
        code = _heap_pop(S, ev_time, ev_order, ev_kind, ev_cpu)
        kind = code // 1024
        cpu = code % 1024
        if kind == _POLL and C[DRIVER_TUN]:
            _tun_poll(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu, page_ref, page_order, page_free, page_pin,
                      pg_freed, slab0, slab1, nc, df_page, df_frag, df_obj, q_page, q_frag, q_obj, q_ts, q_cpu,
                      dl_page, dl_frag, dl_obj, dl_hlen, dl_dlen, dl_ts, cb_tab, fl, tn, obs)
        elif kind == _POLL:
            _poll(S, C, CS, cpu, ev_time, ev_order, ev_kind, ev_cpu,
                  page_ref, page_order, page_free, page_pin, pg_alloc, pg_freed,
                  ring_page, ring_bias, ring_pgcnt, desc_dd, desc_len, desc_hlen,
                  slab0, slab1,
                  nc, df_page, df_frag, df_obj, q_page, q_frag, q_obj, q_ts, q_cpu, dl_page, dl_frag, dl_obj,
                  dl_hlen, dl_dlen, dl_ts, cb_tab, fl, tn, obs)
        elif kind == _IPI:
            # skbsim.net.skbuff.defer_ipi(): the IPI taken, the defer list flushed
            CS[cpu, DEFER_IPI] = 0
            if CS[cpu, DEFER_LEN]:
                _defer_flush(S, C, CS[cpu], nc[cpu], df_page[cpu], df_frag[cpu], df_obj[cpu], slab0, slab1, fl, tn,
                             page_ref, page_order, page_free, pg_freed, True)
        else:
            _app_read(S, C, CS, ev_time, ev_order, ev_kind, ev_cpu, page_ref, page_order, page_free, page_pin,
                      pg_freed, slab0, slab1, nc, df_page, df_frag, df_obj,
                      q_page, q_frag, q_obj, q_ts, q_cpu, fl, tn)
            if S[IPIS]:
                _send_ipis(S, C, CS, ev_time, ev_order, ev_kind, ev_cpu)
    return i


@njit(cache=True)
def _teardown(S, C, CS, page_ref, page_order, page_free, pg_freed, ring_page, ring_bias,
              slab0, slab1, nc, df_page, df_frag, df_obj,
              q_page, q_frag, q_obj, q_ts, fl, tn):
    """udp_destroy_sock(), the driver's close per queue (ice_clean_rx_ring(), copybreak's buffers, tun's
    written skbs and task_frag reference), then Kernel.drain(): defer lists, NAPI caches."""
    page_size = C[PAGE_SIZE_C]
    qcap = q_page.shape[0]
    total = 0
    while S[Q_LEN] > 0:
        head = S[Q_HEAD]
        total += q_ts[head]
        _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, q_page[head], q_frag[head])
        _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, q_obj[head])
        head += 1
        S[Q_HEAD] = head if head < qcap else 0
        S[Q_LEN] -= 1
    size = total + S[DEFICIT]
    S[DEFICIT] = 0
    S[FWD] += size
    amount = S[FWD] & ~(page_size - 1)
    S[FWD] -= amount
    S[MEMALLOC] -= amount // page_size
    S[RMEM] -= size
    S[READER_LEN] = 0
    ncpus = CS.shape[0]
    for cpu in range(ncpus):
        for slot in range(C[RING_COUNT]):
            pid = ring_page[cpu, slot]
            if pid < 0:
                continue
            page_ref[pid] -= ring_bias[cpu, slot]
            if page_ref[pid] == 0:
                _free_page(S, page_ref, page_order, page_free, pg_freed, pid)
            ring_page[cpu, slot] = -1
        if C[DRIVER_TUN]:
            R = CS[cpu]
            cap = tn[9].shape[1]
            while R[HQ_LEN] > 0:
                k = R[HQ_HEAD]
                _release_data(S, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, tn[9][cpu, k],
                              tn[10][cpu, k])
                _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, tn[11][cpu, k])
                if tn[0][tn[13][cpu, k], T_ROUTE] != ROUTE_FRAGS:
                    R[TUN_WMEM] -= tn[12][cpu, k]
                k += 1
                R[HQ_HEAD] = k if k < cap else 0
                R[HQ_LEN] -= 1
            if R[TF_PAGE] >= 0:
                _put_page(S, page_ref, page_order, page_free, pg_freed, R[TF_PAGE])
                R[TF_PAGE] = -1
    for cpu in range(ncpus):
        if CS[cpu, DEFER_LEN]:
            _defer_flush(S, C, CS[cpu], nc[cpu], df_page[cpu], df_frag[cpu], df_obj[cpu], slab0, slab1, fl, tn, page_ref, page_order, page_free, pg_freed, False)
    for cpu in range(ncpus):
        for j in range(CS[cpu, NC_LEN]):
            _slab_free(S, slab0, page_ref, page_order, page_free, pg_freed, nc[cpu, j])
        CS[cpu, NC_LEN] = 0
        # page_frag_1k_drain(): the references held for pieces not handed out
        pid = CS[cpu, P1K_PAGE]
        if pid >= 0 and CS[cpu, P1K_OFFSET] > 0:
            page_ref[pid] -= CS[cpu, P1K_OFFSET] // SZ_1K
            if page_ref[pid] == 0:
                _free_page(S, page_ref, page_order, page_free, pg_freed, pid)
        CS[cpu, P1K_PAGE] = -1
        CS[cpu, P1K_OFFSET] = 0
        # page_frag_cache_drain(): the cache's own references
        pid = CS[cpu, PF_PAGE]
        if pid >= 0:
            page_ref[pid] -= CS[cpu, PF_BIAS]
            if page_ref[pid] == 0:
                _free_page(S, page_ref, page_order, page_free, pg_freed, pid)
        CS[cpu, PF_PAGE] = -1
