"""The fast engine's bnxt: the starting state (bnxt_kernel()), the frames' header lengths, the report's names.

The reference Simulation has opened every queue (bnxt_open_queue()); bnxt_kernel() copies its rings and
page_pool into the BnxtRings and PagePool records (skbsim.fast.state), and reads what napi_alloc_skb(len)
gives for every length a copy or a page-mode header may have from the model on a scratch kernel.
"""

from __future__ import annotations

import numpy as np

from skbsim.drivers.bnxt import HEAD_PAGE_FRAG, HEAD_PAGE_FRAG_NAPI, HEAD_PAGE_POOL
from skbsim.fast.setup import (
    TableSizes, _load_napi_frag_cache, _load_pool, _pp_pages, base_config, live_skbs_bound, napi_alloc_skb_table,
    collapse_pages, new_kernel, skb_caches, socket_queue_capacity,
)
from skbsim.fast.state import (
    BN_HEAD_PAGE_FRAG, BN_HEAD_PAGE_FRAG_NAPI, BN_HEAD_PAGE_POOL, BR_PAGE, CP_TS, DRIVER_BNXT, new_bnxt_rings,
    new_page_pools,
)
from skbsim.sim import Simulation

#: napi_alloc_skb(len) is read for every len below this (skbsim.fast.setup.napi_alloc_skb_table()): bnxt's copies
#: (rx-copybreak at most 1024) and page mode's eth_get_headlen(), gve's copies, header-split lengths and
#: GRO_MAX_HEAD (a longer one makes the run the reference engine's)
COPY_LENGTHS = 1025


def napi_alloc_skb_heads(ref: Simulation) -> tuple[np.ndarray, list]:
    """napi_alloc_skb_table() of bnxt's and gve's heads."""
    return napi_alloc_skb_table(ref, COPY_LENGTHS, f"{ref.config.driver}'s napi_alloc_skb() heads")


#: cfg[BN_HEAD] by the profile's bnxt_rx_head
BN_HEADS = {HEAD_PAGE_POOL: BN_HEAD_PAGE_POOL, HEAD_PAGE_FRAG_NAPI: BN_HEAD_PAGE_FRAG_NAPI,
            HEAD_PAGE_FRAG: BN_HEAD_PAGE_FRAG}


def bnxt_kernel(sim: Simulation, trace: bool, plot: bool, copy: np.ndarray, queued: int | None = None,
                collapse: dict | None = None) -> object:
    """bnxt: each queue's RX and aggregation buffers, its page_pool (if it has one) and its CPU's NAPI page_frag
    cache as bnxt_open_queue() left them; copy: napi_alloc_skb_table()'s rows; queued and collapse as
    setup.ice_kernel() takes them."""
    kernel = sim.kernel
    profile = kernel.profile
    rxr = sim.cpus[0].queue
    p = rxr.p
    pool = rxr.page_pool
    frag_cache = kernel.cpus[0].napi_alloc_cache.page
    build_ts = profile.SKB_TRUESIZE(p.rx_buf_size - profile.SHINFO_SIZE)  # napi_build_skb(data, rx_buf_size)
    fields = base_config(sim, trace, plot)
    fields.update(
        DRIVER=DRIVER_BNXT, RING_COUNT=p.ring_size, RXMAX=rxr.rxmax, RX_BUF_LEN=p.rx_buf_size, PAGE_POOL=1,
        BUILD_TRUESIZE=build_ts, COPYBREAK=p.copybreak, PF_ORDER=frag_cache.max_order,
        PF_DOWN=0 if frag_cache.offset_up else 1,
        BN_AGG_COUNT=p.agg_ring_size, BN_HDS=-1 if p.hds_threshold is None else p.hds_threshold,
        BN_JUMBO=p.jumbo_thresh, BN_PAGE_MODE=int(rxr.page_mode), BN_AGG_PAGE=profile.PAGE_SIZE,
        # an RX buffer skb: end (rx_buf_size less the aligned skb_shared_info) from its headroom on
        BN_RX_ROOM=p.rx_buf_size - profile.SHINFO_SIZE - p.rx_offset,
        BN_HEAD=BN_HEADS[rxr.head], BN_AGG_POOL=int(pool is not None),
        BN_FRAGSZ=profile.SKB_DATA_ALIGN_u32(p.rx_buf_size),  # napi_alloc_frag(rx_buf_size)
    )
    ncpus = sim.config.cpus
    qcap = socket_queue_capacity(sim.config, sim.sock.rcvbuf, int(min(build_ts, copy[:, CP_TS].min())))
    qcap = qcap if queued is None else queued
    slab_cap = live_skbs_bound(sim, qcap)
    inflight = slab_cap - ncpus * profile.NAPI_SKB_CACHE_SIZE  # skbs alive at once, outside the NAPI caches
    max_frags = 1 + -(-rxr.rxmax // profile.PAGE_SIZE)  # page mode's page and the aggregation pages
    cache_size, ring_qsize, refill = (1, 1, 0) if pool is None else (pool.cache_size, pool.ring_qsize,
                                                                      pool.cache_refill)
    per_pool = cache_size + ring_qsize + p.ring_size + p.agg_ring_size + refill + 2
    page_cap = (ncpus * per_pool + inflight * (max_frags + 1) + ncpus * 2 + 2 * slab_cap + 16
                + collapse_pages(collapse, slab_cap))
    sizes = TableSizes(pages=page_cap, caches=skb_caches(kernel, slab_cap, collapse), queue=qcap, frag_lists=inflight,
                       frags=max_frags, ring_bias=0)
    k = new_kernel(sim, fields, sizes, pp=new_page_pools(ncpus, cache_size, ring_qsize, page_cap),
                   bnxt=new_bnxt_rings(ncpus, p.ring_size, p.agg_ring_size, copy))
    pools = {id(state.queue.page_pool): cpu for cpu, state in enumerate(sim.cpus)}
    pid_of = _pp_pages(sim, k, pools, others=True)  # page_frag pieces', alloc_page() and own pages too
    pages = kernel.pages
    for cpu, state in enumerate(sim.cpus):
        rxr = state.queue
        if (rxr.completions or any(rxr.rx_done) or any(rxr.agg_done) or rxr.rx_next or rxr.agg_next
                or rxr.page_pools != ([] if pool is None else [rxr.page_pool])):
            raise ValueError("unexpected bnxt queue state at start")
        if pool is not None:
            napi = rxr.page_pool.p.napi
            _load_pool(k, cpu, rxr.page_pool, -1 if napi is None else state.napi.cpu, pid_of)
        _load_napi_frag_cache(k, cpu, kernel.cpus[cpu], pid_of)
        for slot, data in enumerate(rxr.rx_buf):
            if data is not None:
                page = data if rxr.page_mode else pages.virt_to_head_page(data)
                k.bnxt.rx[cpu, slot, BR_PAGE] = pid_of[page.pfn]
        for slot, page in enumerate(rxr.agg_buf):
            if page is not None:
                k.bnxt.agg[cpu, slot, BR_PAGE] = pid_of[page.pfn]
    return k  # (the NIC's next slots, pcpu HW_NEXT and TAIL, are 0 as the open left them)


def bnxt_kind_names(ref: Simulation, kinds: list) -> list:
    """(path, head source, None) of each kind _bnxt_skb_kind() gives: an RX buffer's skb, then napi_alloc_skb()'s
    by head kind."""
    head = ref.cpus[0].queue.head
    built = (("build_skb" if head == HEAD_PAGE_FRAG else "napi_build_skb"),
             "bnxt rx buffer (page_pool)" if head == HEAD_PAGE_POOL else "bnxt rx buffer (page_frag)", None)
    return [built] + [(path, source, None) for path, source in kinds]


def bnxt_headlen(dev):
    """The header length of a frame (header bytes, length): the model's eth_get_headlen() of its bytes (bnxt's
    header-data split and page mode's copy)."""
    from skbsim.net.ethernet import eth_get_headlen

    return lambda header, length: eth_get_headlen(dev, header, length)
