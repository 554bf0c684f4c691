"""The fast engine's event loop (_run) and the end of a run (_teardown), compiled."""

from __future__ import annotations

from skbsim.fast.layout import (
    O_DRIVER, ROUTE_FRAGS, SZ_1K, TEARDOWN_CPU, T_ROUTE, UNCOUNTED, _IPI, _POLL, _READ, njit,
)
from skbsim.fast.mm import _free_page, _put_page
from skbsim.fast.napi import _defer_flush, _free_skb, _pop, _raise_irq, _send_ipis, _take_ipi
from skbsim.fast.pp_drivers import _pp_close_queue
from skbsim.fast.rx import _nic_arrive, _poll
from skbsim.fast.slub import _kmem_cache_shrink, _slab_free_bulk
from skbsim.fast.sock import WHOLE, _app_read, _trace_drop, _trace_nic_drop, _udp_rmem_release
from skbsim.fast.state import (
    BUF_BIAS, BUF_PAGE, BYTES, CACHE_SKB, DEFER_LEN, DRIVER, DRIVER_TUN, DRIVER_VIRTIO, ERR, EV_LEN,
    EV_TIME, HQ_HEAD, HQ_LEN, IPIS, NCPUS, NC_LEN, NOW, P1K_OFFSET, P1K_PAGE, PACKETS, PAGE_REF, PF_BIAS, PF_PAGE,
    RING_COUNT, SCHEDULED, SKB_FRAG, SKB_HEAD, SKB_HLEN, SKB_OBJ, SKB_TS, SK_HEAD, SK_LEN,
    TF_PAGE, TRACE, TRAFFIC_DONE, WMEM,
)
from skbsim.fast.state import PAGE_POOL  # page_pool
from skbsim.fast.tun import _tun_poll, _tun_write
from skbsim.fast.ntb import _ntb_arrive, _ntb_close_queue, _ntb_poll
from skbsim.fast.state import DRIVER_NTB
from skbsim.fast.tcp_events import _tcp_event  # -- TCP --
from skbsim.fast.tcp_events import _capture_arrive  # -- TCP capture --
from skbsim.fast.state import TC_CAPTURE  # -- TCP capture --
from skbsim.fast.state import TR_LEN  # -- TCP trace --
from skbsim.fast.virtio import _virtnet_close_queue
from skbsim.sim import NAPI_POLL_WEIGHT  # -- TCP trace --

#: -- TCP trace --: the trace rows one event of the loop can write, and then some
TRACE_ROOM = 2 * NAPI_POLL_WEIGHT


@njit(cache=True, forceinline=True)
def _arrive(k, length, cpu, hlen):
    """Simulation._arrive(): a frame on queue cpu at the clock's time: a tun write, or the NIC's DMA (a frame
    above rxmax is dropped as oversize, one that finds too few descriptors as ring_full), then the IRQ."""
    cfg = k.cfg
    now = k.st[NOW]
    k.st[PACKETS] += 1
    k.st[BYTES] += length
    if k.tcp.tc[TC_CAPTURE]:  # -- TCP capture --: a capture's frame into the TCP receivers
        _capture_arrive(k, length, cpu, hlen)
        return
    if cfg[DRIVER] == DRIVER_TUN:
        # the frame is a write() into the queue; a refused one is counted by _tun_write
        if _tun_write(k, cpu, length):
            if k.pcpu[cpu, SCHEDULED] == 0:
                _raise_irq(k, cpu, now)
        elif cfg[TRACE] and not k.st[ERR]:
            _trace_drop(k.trace, k.st, now, cpu, length, O_DRIVER)
        return
    if cfg[DRIVER] == DRIVER_NTB:
        _ntb_arrive(k, cpu, length)  # (a dropped frame's trace record is _ntb_arrive()'s)
        return
    if not _nic_arrive(k, cpu, length, hlen):
        _trace_nic_drop(k, cpu, length)


@njit(cache=True, entry=True)
def _run(k, lengths, times, queues, hlens, n, final):
    """Arrivals lengths[:n] at times[:n] on CPUs queues[:n] (with header lengths hlens[:n]), each after every
    event before it (Simulation.run); with final, then all remaining events.  Returns the arrivals taken."""
    st = k.st
    heap = k.events.heap
    ncpus = k.cfg[NCPUS]
    i = 0
    if final:
        st[TRAFFIC_DONE] = 1
    while st[ERR] == 0:
        if i < n and (st[EV_LEN] == 0 or heap[0, EV_TIME] >= times[i]):
            st[NOW] = times[i]
            queue = queues[i]  # (a division only for a queue number from ncpus up)
            _arrive(k, lengths[i], queue if 0 <= queue < ncpus else queue % ncpus, hlens[i])
            i += 1
            continue
        if i >= n and (not final or st[EV_LEN] == 0):
            return i
        code = _pop(k.events, st)
        kind = code // 1024
        cpu = code % 1024
        if kind == _POLL:
            if k.cfg[DRIVER] == DRIVER_TUN:
                _tun_poll(k, cpu)
            elif k.cfg[DRIVER] == DRIVER_NTB:
                _ntb_poll(k, cpu)
            else:
                _poll(k, cpu)
        elif kind == _IPI:
            _take_ipi(k, cpu)
        elif kind == _READ:
            _app_read(k)
            if st[IPIS]:
                _send_ipis(k)
        else:  # -- TCP --: a run with a socket per flow (cpu: the flow)
            _tcp_event(k, kind, cpu)
        # -- TCP trace --: the final call (all of a TCP run's frames) pauses once its trace table might not take
        # another event's records (a poll's, at most NAPI_POLL_WEIGHT); FastSimulation._stream() resumes it
        if final and k.cfg[TRACE] and st[TR_LEN] > k.trace.records.shape[0] - TRACE_ROOM:
            return i
    return i


@njit(cache=True, entry=True)
def _teardown(k):
    """udp_destroy_sock() (on CPU 0, where Simulation._finish runs), the driver's close per queue on its CPU
    (ice_clean_rx_ring(), copybreak's buffers, tun's written skbs and task_frag reference), then
    Kernel.drain(): defer lists, NAPI caches and their page fragments, and kmem_cache_shrink() of every
    cache."""
    _destroy_socket(k)
    for cpu in range(k.cfg[NCPUS]):
        _close_queue(k, cpu)
    for cpu in range(k.cfg[NCPUS]):
        if k.pcpu[cpu, DEFER_LEN]:
            _defer_flush(k, cpu, UNCOUNTED)
    for cpu in range(k.cfg[NCPUS]):
        _drain_caches(k, cpu)
    for c in range(k.slabs.caches.shape[0]):
        _kmem_cache_shrink(k.slabs, c, k.pages, k.st)


@njit(cache=True)
def _destroy_socket(k):
    """udp_destroy_sock(): free what is queued (kfree_skb()), then udp_rmem_release(total, 0)."""
    st = k.st
    queue = k.sock.queue
    qcap = queue.shape[0]
    total = 0
    while st[SK_LEN] > 0:
        at = st[SK_HEAD]
        total += queue[at, SKB_TS]
        _free_skb(k, TEARDOWN_CPU, queue[at, SKB_HEAD], queue[at, SKB_FRAG], queue[at, SKB_OBJ])
        st[SK_HEAD] = at + 1 if at + 1 < qcap else 0
        st[SK_LEN] -= 1
    _udp_rmem_release(k.cfg, st, total, WHOLE)


@njit(cache=True)
def _close_queue(k, cpu):
    """The driver's close of queue cpu: the ring's pages (ice_clean_rx_ring(): the driver's references), or
    tun's written skbs not yet taken (each uncharged from sk_wmem_alloc) and its task_frag reference, or
    ntb_netdev_close()'s posted skbs."""
    if k.cfg[DRIVER] == DRIVER_VIRTIO:
        _virtnet_close_queue(k, cpu)
        return
    if k.cfg[DRIVER] == DRIVER_NTB:
        _ntb_close_queue(k, cpu)
        return
    if k.cfg[PAGE_POOL]:
        _pp_close_queue(k, cpu)
        return
    rings = k.rings
    pages = k.pages
    for slot in range(k.cfg[RING_COUNT]):
        pid = rings.buf[cpu, slot, BUF_PAGE]
        if pid < 0:
            continue
        pages.page[pid, PAGE_REF] -= rings.buf[cpu, slot, BUF_BIAS]
        if pages.page[pid, PAGE_REF] == 0:
            _free_page(pages, k.st, pid)
        rings.buf[cpu, slot, BUF_PAGE] = -1
    if k.cfg[DRIVER] != DRIVER_TUN:
        return
    tun = k.tun
    q = k.pcpu[cpu]
    cap = tun.queue.shape[1]
    while q[HQ_LEN] > 0:
        skb = tun.queue[cpu, q[HQ_HEAD]]
        _free_skb(k, cpu, skb[SKB_HEAD], skb[SKB_FRAG], skb[SKB_OBJ])
        if tun.tab[skb[SKB_HLEN], T_ROUTE] != ROUTE_FRAGS:
            q[WMEM] -= skb[SKB_TS]
        at = q[HQ_HEAD]
        q[HQ_HEAD] = at + 1 if at + 1 < cap else 0
        q[HQ_LEN] -= 1
    if q[TF_PAGE] >= 0:
        _put_page(pages, k.st, q[TF_PAGE])
        q[TF_PAGE] = -1


@njit(cache=True)
def _drain_caches(k, cpu):
    """Kernel.drain() of one CPU's NAPI caches: the skb cache's sk_buffs back to their slab in one
    kmem_cache_free_bulk() (from CPU 0, where Kernel.drain() runs), page_frag_1k_drain() (the references
    held for pieces not handed out) and page_frag_cache_drain() (the cache's own references)."""
    nc = k.pcpu[cpu]
    pages = k.pages
    if nc[NC_LEN]:
        _slab_free_bulk(k.slabs, CACHE_SKB, TEARDOWN_CPU, k.nc.skb[cpu, :nc[NC_LEN]], pages, k.st)
    nc[NC_LEN] = 0
    pid = nc[P1K_PAGE]
    if pid >= 0 and nc[P1K_OFFSET] > 0:
        pages.page[pid, PAGE_REF] -= nc[P1K_OFFSET] // SZ_1K
        if pages.page[pid, PAGE_REF] == 0:
            _free_page(pages, k.st, pid)
    nc[P1K_PAGE] = -1
    nc[P1K_OFFSET] = 0
    pid = nc[PF_PAGE]
    if pid >= 0:
        pages.page[pid, PAGE_REF] -= nc[PF_BIAS]
        if pages.page[pid, PAGE_REF] == 0:
            _free_page(pages, k.st, pid)
    nc[PF_PAGE] = -1
