"""The fast engine's virtio_net, Python side: its starting state and what the model says of each frame.

virtio_kernel() reads the run's constants from the reference Simulation after virtnet_open_queue() filled
each ring, and copies the rings, the frag blocks and their DMA records into the Kernel record.
VirtioCodes asks the model's own page_to_skb() and virtnet_receive_done() (virtio_net_hdr_to_skb(),
eth_type_trans(), napi_gro_receive()) on a scratch kernel what becomes of each distinct frame.
"""

from __future__ import annotations

from skbsim.fast.setup import (
    HEAD_KINDS, TableSizes, _new_page, base_config, collapse_pages, live_skbs_bound, new_kernel, skb_caches,
    socket_queue_capacity,
)
from skbsim.fast.state import (
    D_PAGES_ALLOC, DRIVER_VIRTIO, NTC, NTU, VB_LEN, VB_PAGE, VB_START, VQ_EWMA, VQ_FRAG_OFFSET, VQ_FRAG_PAGE,
    VQ_FRAG_SIZE, VQ_LAST_DMA, new_virtio_queues,
)
from skbsim.fast.virtio import GSO_CODE
from skbsim.sim import NAPI_POLL_WEIGHT, Simulation


def unsupported_virtio(profile, options: dict) -> str | None:
    """Why the fast engine cannot run this virtio_net queue (None when it can)."""
    if profile.feature("virtio_rx_buffers") != "page_frag":
        return "the fast engine models virtio_net's buffers from page frags, not 7.1's page_pool"
    if options.get("mrg_rxbuf", "1") != "1" or options.get("xdp", "0") != "0":
        return "the fast engine models virtio_net's mergeable buffers without XDP (mrg_rxbuf=1, xdp=0) only"
    return None


def copy_head(ref: Simulation) -> dict:
    """page_to_skb()'s napi_alloc_skb(GOOD_COPY_LEN) on a scratch kernel of the run's profile: its head kind,
    truesize, page_frag fragment size, tailroom, path and head source."""
    from skbsim.drivers.virtio_net import GOOD_COPY_LEN
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import consume_skb, napi_alloc_skb

    scratch = Kernel(ref.kernel.profile, ncpus=1)
    napi = napi_struct(net_device("eth0"), NAPI_POLL_WEIGHT, napi_id=0x2001, cpu=0)
    with scratch.softirq(0):
        skb = napi_alloc_skb(scratch, napi, GOOD_COPY_LEN)
        if skb is None or skb.head_source not in HEAD_KINDS:
            raise ValueError(f"the fast engine models napi_alloc_skb() heads from {', '.join(HEAD_KINDS)} only")
        if skb.truesize != scratch.profile.SKB_TRUESIZE(skb.end):
            raise ValueError(f"napi_alloc_skb({GOOD_COPY_LEN}): skb_condense() would change its truesize")
        head = {"kind": HEAD_KINDS[skb.head_source], "truesize": skb.truesize, "fragsz": skb.head_size,
                "room": skb.end - skb.tail, "path": skb.path, "source": skb.head_source}
        consume_skb(scratch, skb)
    return head


class VirtioCodes:
    """What the header and GRO do to a frame of given bytes and length, from the model (the frame's code).

    The frame goes through page_to_skb() on a scratch queue of the run's profile and options, in a buffer
    it fills (so the copy path: its Ethernet header copied, the rest frag 0, or all of it copied), then
    through virtnet_receive_done(): -1 when virtio_net_hdr_to_skb() refuses it, else the bytes in its
    head afterwards (after eth_type_trans() and GRO's pulls).  A frame whose pulls would reallocate the
    head or use up frag 0 is out of the fast engine's scope (ValueError), and so is one GRO would hold,
    unless the run's TCP goes through GRO (gro): then GRO holds it with its headers pulled out of frag 0
    (gro_try_pull_from_frag0(), the bytes a merged skb's head has at most), and the code also carries the
    gso_size virtio_net_hdr_to_skb() gave the skb (a GSO frame: SKB_GSO_DODGY), times GSO_CODE.
    """

    def __init__(self, ref: Simulation, gro: bool = False):
        from skbsim.drivers.virtio_net import virtnet_open_queue
        from skbsim.kernel import Kernel
        from skbsim.net.napi import napi_struct, net_device

        self.scratch = Kernel(ref.kernel.profile, ncpus=1)
        self.napi = napi_struct(net_device("eth0"), NAPI_POLL_WEIGHT, napi_id=0x2001, cpu=0)
        self.gro = gro
        self.gso_size = 0
        with self.scratch.softirq(0):
            self.rq = virtnet_open_queue(self.scratch, self.napi.dev, self.napi, dict(ref.config.options))
        self.rq.gro_entry = self._entry  # the skb as napi_gro_receive() gets it

    def _entry(self, skb) -> None:
        self.gso_size = skb.shinfo.gso_size

    def __call__(self, header: bytes, length: int) -> int:
        from skbsim.drivers.virtio_net import (
            page_to_skb, virtio_net_hdr_for_frame, virtnet_receive_done, vring_used_elem,
        )
        from skbsim.mm.gfp import GFP_ATOMIC
        from skbsim.net.gro import gro_flush_normal
        from skbsim.net.skbuff import kfree_skb

        scratch, rq = self.scratch, self.rq
        total = rq.hdr_len + length
        with scratch.softirq(0):
            page = scratch.pages.alloc_pages(GFP_ATOMIC, 0, "VirtioCodes")
            skb = page_to_skb(scratch, rq, page, 0, total, total, 0)
            nfrags = len(skb.shinfo.frags)
            head = skb.head
            elem = vring_used_elem(None, total, 0, 1)
            elem.hdr = virtio_net_hdr_for_frame(header, length, rq.mtu, rq.csum, rq.gso)
            elem.header = header
            elem.frame_len = length
            delivered: list = []
            if not virtnet_receive_done(scratch, rq, skb, elem, delivered.append):
                return -1
            if (rq.napi.gro.bitmask and not self.gro) or len(skb.shinfo.frags) != nfrags or skb.head != head:
                raise ValueError("a virtio_net frame whose headers the fast engine does not follow (GRO holds it, "
                                 "or its pulls reallocate the head or empty a frag)")
            code = skb.len - skb.data_len
            if self.gro:
                code += self.gso_size * GSO_CODE
            gro_flush_normal(scratch, rq.napi.gro, False, delivered.append)
            for done in delivered:
                kfree_skb(scratch, done)
        return code


def virtio_kernel(sim: Simulation, trace: bool, plot: bool, head: dict, queued: int | None = None,
                  collapse: dict | None = None):
    """virtio_net: each ring, frag block and DMA record as virtnet_open_queue() left them; head: page_to_skb()'s
    copy head (copy_head()); queued: the most skbs the sockets hold at once (a run with a socket per flow's
    receivers, tcp_engine.TcpRun.tables()), else the UDP socket's bound; collapse: the caches tcp_collapse()'s
    heads come from (setup.skb_caches())."""
    from skbsim.net.core_sock import SKB_FRAG_PAGE_SIZE

    kernel = sim.kernel
    profile = kernel.profile
    rq = sim.cpus[0].queue
    frag_cache = kernel.cpus[0].napi_alloc_cache.page
    fields = base_config(sim, trace, plot)
    fields.update(
        DRIVER=DRIVER_VIRTIO, RING_COUNT=rq.vq.num, RXMAX=rq.max_frame, VQ_HDR_LEN=rq.hdr_len,
        VQ_MIN_BUF_LEN=rq.min_buf_len, VQ_PREMAPPED=int(rq.premapped), VQ_OVERFLOW_FIX=int(rq.rules.overflow_fix),
        VQ_HOLE_FOLD=int(rq.rules.xdp_hole_fold), VQ_REPOLL=int(rq.rules.refill_repoll),
        VQ_FRAG_ORDER=profile.get_order(SKB_FRAG_PAGE_SIZE), VQ_L1=profile.L1_CACHE_BYTES,
        VQ_TS0=profile.SKB_TRUESIZE(0), VQ_SHINFO=profile.SHINFO_SIZE, VQ_IP_ALIGN=profile.NET_IP_ALIGN,
        VQ_MAX_FRAGS=profile.MAX_SKB_FRAGS, VQ_COPY_ROOM=head["room"],
        HEAD_KIND=head["kind"], HEAD_TRUESIZE=head["truesize"], HEAD_FRAGSZ=head["fragsz"],
        PF_ORDER=frag_cache.max_order, PF_DOWN=0 if frag_cache.offset_up else 1,
        # skb_condense() of a copy head with frags: end - tail before the copy, and its truesize
        COND_ROOM=head["room"], COND_TS=head["truesize"],
    )
    ncpus = sim.config.cpus
    count = rq.vq.num
    qcap = socket_queue_capacity(sim.config, sim.sock.rcvbuf, head["truesize"]) if queued is None else queued
    slab_cap = live_skbs_bound(sim, qcap)
    # Live pages: a block per posted buffer at most, a head and MAX_SKB_FRAGS blocks per queued, deferred or
    # polled skb, the NAPI caches' pages, and the slabs of both caches.
    held = qcap + ncpus * (kernel.skb_defer_max + 2 * NAPI_POLL_WEIGHT)
    page_cap = (ncpus * (count + 4) + (2 + profile.MAX_SKB_FRAGS) * held + 2 * slab_cap + 64
                + collapse_pages(collapse, slab_cap))
    sizes = TableSizes(pages=page_cap, caches=skb_caches(kernel, slab_cap, collapse), queue=qcap, frag_lists=slab_cap,
                       frags=profile.MAX_SKB_FRAGS, ring_bias=0)
    k = new_kernel(sim, fields, sizes, virtio=new_virtio_queues(page_cap, ncpus, count))
    _virtio_start(sim, k)
    return k


def _virtio_start(sim: Simulation, k) -> None:
    """The reference kernel's live pages (each queue's frag blocks) as page ids; each ring's posted buffers,
    frag, EWMA and DMA records."""
    from skbsim.drivers.virtio_net import mergeable_ctx_to_truesize

    pages = sim.kernel.pages
    pid_of = {pfn: _new_page(k, page.refcount, page.order) for pfn, page in pages.live.items()}
    for cpu, cpu_state in enumerate(sim.cpus):
        rq = cpu_state.queue
        row = k.pcpu[cpu]
        if rq.vq.used or rq.pages or sim.kernel.cpus[cpu].napi_alloc_cache.page.page is not None:
            raise ValueError("unexpected virtio_net queue state at start")
        for slot, (token, sg_len, ctx, _ndesc) in enumerate(rq.vq.avail):
            page = pages.virt_to_head_page(token)
            if mergeable_ctx_to_truesize(ctx) != sg_len:
                raise ValueError("a virtio_net buffer whose truesize is not its length")
            k.virtio.buf[cpu, slot, [VB_PAGE, VB_START, VB_LEN]] = (
                pid_of[page.pfn], token - pages.page_address(page), sg_len)
        row[NTU] = len(rq.vq.avail)
        row[NTC] = 0
        frag = rq.alloc_frag
        if frag.page is not None:
            row[VQ_FRAG_PAGE] = pid_of[frag.page.pfn]
            row[VQ_FRAG_OFFSET], row[VQ_FRAG_SIZE] = frag.offset, frag.size
        row[VQ_EWMA] = rq.mrg_avg_pkt_len
        if rq.last_dma is not None:
            row[VQ_LAST_DMA] = pid_of[rq.last_dma.page.pfn]
        for pfn, dma in rq.dma.items():
            k.virtio.dma[pid_of[pfn]] = dma.ref
        k.st[D_PAGES_ALLOC] += rq.stats.pages_allocated


