"""The fast engine's gve (DQO): the starting state (gve_kernel()), each frame's code (GveCodes), the report's names.

The reference Simulation has opened every queue (gve_rx_alloc_ring_dqo()); gve_kernel() copies its buffer
states, lists, posted buffers and page_pool into the GveRings and PagePool records (skbsim.fast.state).
What GRO does to a frame's skb depends on the frame's bytes; GveCodes asks the model once per distinct
frame.
"""

from __future__ import annotations

import numpy as np

from skbsim.fast.setup import (
    TableSizes, _load_napi_frag_cache, _load_pool, _pp_pages, base_config, live_skbs_bound, new_kernel, skb_caches,
    socket_queue_capacity,
)
from skbsim.fast.state import (
    CP_TS, DRIVER_GVE, GB_BIAS, GB_LAST_SINGLE, GB_OFFSET, GB_PAGE, GB_SIZE, GV_CODE_SPLIT, GV_FREE_HEAD,
    GV_LIST_FREE, GV_LIST_RECYCLED, GV_LIST_USED, GV_TAIL, new_gve_rings, new_page_pools,
)
from skbsim.sim import NAPI_POLL_WEIGHT, Simulation

ETH_HLEN = 14


class GveCodes:
    """A frame's code (header bytes, length): its header-split length * GV_CODE_SPLIT plus the bytes of the frame
    in its skb's head once GRO is done with it, from the model.

    The frame's skb is built as gve_rx_dqo() builds it, on a scratch queue of the run's profile and options
    (its buffers fresh pages at offset 0, as every buffer's offset keeps the same alignment), and goes through
    napi_gro_frags() (or with header split napi_gro_receive()).  A frame GRO would hold, or whose pulls would
    reallocate the head or use up a frag, is out of the fast engine's scope (ValueError), as is a frame
    shorter than its Ethernet header.
    """

    def __init__(self, ref: Simulation):
        from skbsim.drivers.gve import gve_rx_alloc_ring_dqo
        from skbsim.kernel import Kernel
        from skbsim.net.napi import napi_struct, net_device

        self.scratch = Kernel(ref.kernel.profile, ncpus=1)
        self.napi = napi_struct(net_device("eth0"), NAPI_POLL_WEIGHT, napi_id=0x2001, cpu=0)
        with self.scratch.softirq(0):
            self.rx = gve_rx_alloc_ring_dqo(self.scratch, self.napi.dev, self.napi, dict(ref.config.options))

    def __call__(self, header: bytes, length: int) -> int:
        from skbsim.drivers.gve import gve_header_split_len
        from skbsim.mm.gfp import GFP_ATOMIC
        from skbsim.net.ethernet import eth_type_trans
        from skbsim.net.gro import gro_flush_normal, napi_get_frags, napi_gro_frags, napi_gro_receive
        from skbsim.net.skbuff import kfree_skb, napi_alloc_skb, skb_add_rx_frag, skb_put

        scratch, rx, napi = self.scratch, self.rx, self.napi
        if length < ETH_HLEN:
            raise ValueError(f"a gve frame of {length} bytes, shorter than its Ethernet header")
        hdr_len = gve_header_split_len(rx, header, length)
        payload = length - hdr_len
        nbufs = -(-payload // rx.buf_size)
        if not hdr_len and nbufs == 1 and payload <= rx.copybreak:
            return length  # gve_rx_copy(): linear, GRO pulls nothing
        with scratch.softirq(0):
            if hdr_len:
                skb = napi_alloc_skb(scratch, napi, hdr_len)
                skb_put(skb, hdr_len)  # (__skb_put(): within the head)
                skb.protocol = eth_type_trans(skb, rx.dev, header)
            else:
                skb = napi_get_frags(scratch, napi)
            for i in range(nbufs):
                page = scratch.pages.alloc_pages(GFP_ATOMIC, 0, "GveCodes")
                skb_add_rx_frag(skb, len(skb.shinfo.frags), page, 0, min(rx.buf_size, payload - i * rx.buf_size),
                                rx.buf_size)
            head, nfrags = skb.head, len(skb.shinfo.frags)
            delivered: list = []
            if hdr_len:
                napi_gro_receive(scratch, napi, skb, delivered.append)
            else:
                skb.header_bytes = header
                napi_gro_frags(scratch, napi, delivered.append)
            if napi.gro.bitmask or napi.skb is not None or len(skb.shinfo.frags) != nfrags or skb.head != head:
                raise ValueError("a gve frame whose skb the fast engine does not follow through GRO (GRO holds or "
                                 "merges it, or its pulls reallocate the head or empty a frag)")
            code = hdr_len * GV_CODE_SPLIT + skb.len - skb.data_len + ETH_HLEN
            gro_flush_normal(scratch, napi.gro, False, delivered.append)
            for done in delivered:
                kfree_skb(scratch, done)
        return code


def gve_kernel(sim: Simulation, trace: bool, plot: bool, copy: np.ndarray) -> object:
    """gve: each queue's buffer states, lists, posted buffers and page_pool (6.18+) and its CPU's NAPI page_frag
    cache as gve_rx_alloc_ring_dqo() left them; copy: napi_alloc_skb_table()'s rows."""
    kernel = sim.kernel
    profile = kernel.profile
    rx = sim.cpus[0].queue
    pool = rx.page_pool
    frag_cache = kernel.cpus[0].napi_alloc_cache.page
    fields = base_config(sim, trace, plot)
    fields.update(
        DRIVER=DRIVER_GVE, RING_COUNT=rx.count, RXMAX=rx.rxmax, PAGE_POOL=1, COPYBREAK=rx.copybreak,
        PF_ORDER=frag_cache.max_order, PF_DOWN=0 if frag_cache.offset_up else 1,
        GV_POOL=int(rx.use_pool), GV_BUF_SIZE=rx.buf_size, GV_HSPLIT=int(rx.hsplit),
        GV_GRO_MAX_HEAD=profile.GRO_MAX_HEAD,
    )
    ncpus = sim.config.cpus
    qcap = socket_queue_capacity(sim.config, sim.sock.rcvbuf, int(copy[:, CP_TS].min()))
    slab_cap = live_skbs_bound(sim, qcap)
    inflight = slab_cap - ncpus * profile.NAPI_SKB_CACHE_SIZE  # skbs alive at once, outside the NAPI caches
    max_frags = -(-rx.rxmax // rx.buf_size)
    cache_size, ring_qsize, refill = (1, 1, 0) if pool is None else (pool.cache_size, pool.ring_qsize,
                                                                      pool.cache_refill)
    # Live pages: each pool's cache and ring, a page per buffer state, a head and frags per skb alive, the
    # page_frag caches, the slabs
    page_cap = (ncpus * (cache_size + ring_qsize + rx.count + refill + 4) + inflight * (max_frags + 1) + 2 * slab_cap
                + 16)
    sizes = TableSizes(pages=page_cap, caches=skb_caches(kernel, slab_cap), queue=qcap, frag_lists=inflight, frags=max_frags, ring_bias=0)
    k = new_kernel(sim, fields, sizes, pp=new_page_pools(ncpus, cache_size, ring_qsize, page_cap),
                   gve=new_gve_rings(ncpus, rx.count, copy))
    pools = {id(state.queue.page_pool): cpu for cpu, state in enumerate(sim.cpus)}
    pid_of = _pp_pages(sim, k, pools, others=True)  # page_frag pieces', alloc_page() and own pages too
    for cpu, state in enumerate(sim.cpus):
        _load_gve_queue(k, cpu, state.queue, pid_of)
        if pool is not None:
            _load_pool(k, cpu, state.queue.page_pool, state.napi.cpu, pid_of)
        if state.napi.skb is not None:
            raise ValueError("unexpected gve queue state at start")
        _load_napi_frag_cache(k, cpu, kernel.cpus[cpu], pid_of)
    return k


def _load_gve_queue(k, cpu: int, rx, pid_of: dict) -> None:
    """Queue cpu of k as the reference gve_rx_ring is: its buffer states, lists and posted buffers."""
    if rx.completions:
        raise ValueError("unexpected gve queue state at start")
    for ix, bs in enumerate(rx.buf_states):
        row = k.gve.bs[cpu, ix]
        row[GB_PAGE] = -1 if bs.page is None else pid_of[bs.page.pfn]
        row[GB_OFFSET], row[GB_SIZE], row[GB_BIAS] = bs.page_offset, bs.buf_size, bs.pagecnt_bias
        row[GB_LAST_SINGLE] = bs.last_single_ref_offset
    for which, states in ((GV_LIST_FREE, rx.free_states), (GV_LIST_RECYCLED, rx.recycled), (GV_LIST_USED, rx.used)):
        k.gve.lists[cpu, which, :len(states)] = list(states)
        k.pcpu[cpu, GV_FREE_HEAD + 2 * which], k.pcpu[cpu, GV_FREE_HEAD + 2 * which + 1] = 0, len(states)
    k.gve.ring[cpu, :len(rx.bufq)] = list(rx.bufq)
    k.pcpu[cpu, GV_TAIL] = len(rx.bufq)


def gve_kind_names(kinds: list) -> list:
    """(path, head source, None) of each kind the fast engine counts: 1 + napi_alloc_skb()'s head kind (kind 0,
    an skb built on a buffer, gve does not make)."""
    return [("", "", None)] + [(path, source, None) for path, source in kinds]
