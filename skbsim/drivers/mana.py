"""The mana (Microsoft Azure Network Adapter) receive path, after drivers/net/ethernet/microsoft/mana/mana_en.c.

One RX buffer per work queue entry, one frame per buffer (the NIC does not
chain buffers).  mana_get_rxbuf_cfg() sizes the buffer from the MTU:
datasize = mtu + ETH_HLEN is what the NIC may write, alloc_size what the
driver passes to napi_build_skb() as the buffer's size (so truesize is
alloc_size + SKB_DATA_ALIGN(sizeof(struct sk_buff))).  When a frame
completes, mana_refill_rx_oob() takes a new buffer for the slot *first*;
only then does the old one become the skb (no new buffer: the frame is
dropped and the old buffer stays posted).  skbs on page_pool memory are
marked for recycling.

Where the buffers come from (profile feature ``mana_rx_buffers``):

- ``pool_page_or_frag`` (v6.9): alloc_size = mtu + MANA_RXBUF_PAD +
  headroom, not rounded; up to PAGE_SIZE a whole order-0 page_pool page per
  buffer (truesize counts alloc_size, not the page), above it
  napi_alloc_frag(alloc_size) from the NAPI page_frag cache, not recycled.
  The queue has RX_BUFFERS_PER_QUEUE = 512 entries, not changeable.
- ``pool_whole_pages`` (6.12.117 and 6.1.192, both carrying 'net: mana: Fix
  RX buf alloc_size alignment and atomic op panic' (6.10) and 'net: mana:
  Switch to page pool for jumbo frames' (6.15) by backport): alloc_size =
  SKB_DATA_ALIGN(mtu + MANA_RXBUF_PAD + headroom), at least PAGE_SIZE; a
  whole page_pool page of get_order(alloc_size) per buffer.  The ring takes
  ``ethtool -G`` (128..8192, rounded up to a power of two, default 512).
- ``pool_fragments`` (6.18: 'net: mana: Use page pool fragments for RX
  buffers instead of full pages to improve memory efficiency.'): when
  mtu + MANA_RXBUF_PAD fits half a page,
  no XDP headroom and page_pool fragments of ALIGN(SKB_DATA_ALIGN(mtu +
  MANA_RXBUF_PAD), 64) bytes, PAGE_SIZE / that many per page; larger MTUs
  take one page_pool page of get_order(SKB_DATA_ALIGN(mtu +
  MANA_RXBUF_PAD)) and pass its whole size as alloc_size, so truesize
  covers the page.  Default ring 1024 (6.13: 'net: mana: Increase the
  DEF_RX_BUFFERS_PER_QUEUE to 1024').

MANA_RXBUF_PAD = SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) + ETH_HLEN;
the XDP headroom (XDP_PACKET_HEADROOM, 256) is reserved up to 6.12 whenever
the MTU allows XDP (mtu <= MANA_XDP_MTU_MAX = PAGE_SIZE - MANA_RXBUF_PAD -
256), program or not.

Every skb goes to GRO (mana_rx_skb(): napi_gro_receive(); ``gro`` and the
other GRO_OPTIONS as ethtool -K sets them), skb->hash from the CQE's RSS hash.

Not modelled: XDP, the pre-allocated buffers of an MTU change, checksum
offloads, RX CQE coalescing (7.x), the device's own adapter MTU
(max_mtu is taken as 9000; older firmware reports 1500).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.drivers.base import (
    GRO_OPTIONS,
    Deliver,
    Driver,
    DriverOption,
    frame_header,
    int_option,
    netdev_set_gro,
    parse_options,
)
from skbsim.drivers.pp_common import PPQueue, RxCompletion, align, finish_rx_skb, pp_napi_complete, roundup_pow_of_two
from skbsim.errors import InputError
from skbsim.net.ethernet import ETH_HLEN
from skbsim.net.gro import netif_napi_del
from skbsim.net.page_pool import (
    PP_FLAG_DMA_MAP,
    PP_FLAG_DMA_SYNC_DEV,
    page_pool_create,
    page_pool_destroy,
    page_pool_dev_alloc_frag,
    page_pool_dev_alloc_pages,
    page_pool_free_va,
    page_pool_params,
    page_pool_put_full_page,
    page_pool_recycle_direct,
    skb_mark_for_recycle,
)
from skbsim.net.skbuff import napi_alloc_frag, napi_build_skb, netdev_alloc_frag, skb_put, skb_reserve

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.profile import Profile
    from skbsim.traffic.frame import Frame

XDP_PACKET_HEADROOM = 256
MANA_RX_FRAG_ALIGNMENT = 64
RX_BUFFERS_PER_QUEUE = 512          # v6.9 include/net/mana/mana.h
MIN_RX_BUFFERS_PER_QUEUE = 128
MAX_RX_BUFFERS_PER_QUEUE = 8192
ETH_MIN_MTU = 68
#: max_mtu = adapter_mtu - ETH_HLEN; the adapter MTU the model assumes (jumbo-capable firmware).
MANA_MAX_MTU = 9000

MANA_POOL_PAGE_OR_FRAG = "pool_page_or_frag"
MANA_POOL_WHOLE_PAGES = "pool_whole_pages"
MANA_POOL_FRAGMENTS = "pool_fragments"


def mana_rxbuf_pad(profile: Profile) -> int:
    """include/net/mana/mana.h: MANA_RXBUF_PAD - SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) + ETH_HLEN."""
    return profile.SHINFO_SIZE + ETH_HLEN


def mana_xdp_mtu_max(profile: Profile) -> int:
    """include/net/mana/mana.h: MANA_XDP_MTU_MAX - PAGE_SIZE - MANA_RXBUF_PAD - XDP_PACKET_HEADROOM."""
    return profile.PAGE_SIZE - mana_rxbuf_pad(profile) - XDP_PACKET_HEADROOM


def mana_get_rxbuf_cfg(profile: Profile, mtu: int) -> tuple[int, int, int, int]:
    """mana_en.c: mana_get_rxbuf_cfg() - (datasize, alloc_size, headroom, frag_count) for the release.

    frag_count 1 means a whole page (or, 6.9 above a page, a napi_alloc_frag
    buffer) per frame.
    """
    rule = profile.feature("mana_rx_buffers")
    page_size = profile.PAGE_SIZE
    pad = mana_rxbuf_pad(profile)
    datasize = mtu + ETH_HLEN
    if rule == MANA_POOL_FRAGMENTS:
        if mtu + pad > page_size // 2:
            alloc_size = profile.SKB_DATA_ALIGN(mtu + pad)
            return datasize, page_size << profile.get_order(alloc_size), 0, 1
        buf_size = align(profile.SKB_DATA_ALIGN(mtu + pad), MANA_RX_FRAG_ALIGNMENT)
        return datasize, buf_size, 0, page_size // buf_size
    headroom = 0 if mtu > mana_xdp_mtu_max(profile) else XDP_PACKET_HEADROOM
    if rule == MANA_POOL_PAGE_OR_FRAG:
        return datasize, mtu + pad + headroom, headroom, 1
    alloc_size = max(profile.SKB_DATA_ALIGN(mtu + pad + headroom), page_size)
    return datasize, alloc_size, headroom, 1


class mana_recv_buf_oob:
    """include/net/mana/mana.h: struct mana_recv_buf_oob - one posted buffer (None: no buffer)."""

    __slots__ = ("buf_va", "from_pool")

    def __init__(self) -> None:
        self.buf_va: int | None = None
        self.from_pool = False


class mana_rxq(PPQueue):
    """include/net/mana/mana.h: struct mana_rxq, with the NIC's next buffer (``hw_next``)."""

    __slots__ = ("rule", "count", "rx_oobs", "buf_index", "hw_next", "posted", "datasize", "alloc_size",
                 "headroom", "frag_count", "page_pool")

    def __init__(self, dev: net_device, napi: napi_struct, count: int, rule: str):
        super().__init__("mana", dev, napi)
        self.rule = rule
        self.count = count
        self.rx_oobs = [mana_recv_buf_oob() for _ in range(count)]
        self.buf_index = 0
        self.hw_next = 0
        self.posted = 0
        self.datasize = 0
        self.alloc_size = 0
        self.headroom = 0
        self.frag_count = 1
        self.page_pool = None


# -- buffers ----------------------------------------------------------------------------------------


def mana_get_rxfrag(kernel: Kernel, rxq: mana_rxq, in_napi: bool) -> tuple[int | None, bool]:
    """mana_en.c: mana_get_rxfrag() - (buffer address, from_pool) or (None, False)."""
    pages = kernel.pages
    if rxq.rule == MANA_POOL_PAGE_OR_FRAG and rxq.alloc_size > kernel.profile.PAGE_SIZE:
        va = napi_alloc_frag(kernel, rxq.alloc_size) if in_napi else netdev_alloc_frag(kernel, rxq.alloc_size)
        if va is None:
            return None, False
        page = pages.virt_to_head_page(va)
        # The page_frag cache fell back to a single page: too small for the frame.
        if page.order < kernel.profile.get_order(rxq.alloc_size):
            pages.put_page(page)
            return None, False
        return va, False
    if rxq.frag_count == 1:
        page = page_pool_dev_alloc_pages(kernel, rxq.page_pool)
        if page is None:
            return None, False
        return pages.page_address(page), True
    page, offset = page_pool_dev_alloc_frag(kernel, rxq.page_pool, rxq.alloc_size)
    if page is None:
        return None, False
    return pages.page_address(page) + offset, True


def mana_put_rx_buf(kernel: Kernel, rxq: mana_rxq, va: int, from_pool: bool) -> None:
    """Give a buffer back: mana_put_rx_page() for whole pages, page_pool_free_va() for fragments."""
    if not from_pool:
        kernel.pages.put_page(kernel.pages.virt_to_head_page(va))
    elif rxq.frag_count == 1:
        page_pool_put_full_page(kernel, rxq.page_pool, kernel.pages.virt_to_head_page(va), False)
    else:
        page_pool_free_va(kernel, rxq.page_pool, va, True)


def mana_fill_rx_oob(kernel: Kernel, rxq: mana_rxq, oob: mana_recv_buf_oob, in_napi: bool) -> bool:
    va, from_pool = mana_get_rxfrag(kernel, rxq, in_napi)
    if va is None:
        rxq.stats.buffer_alloc_failures += 1
        return False
    oob.buf_va = va
    oob.from_pool = from_pool
    return True


# -- the driver interface ---------------------------------------------------------------------------


def _ring_option(profile: Profile, text: str) -> int:
    if profile.feature("mana_rx_queue") == "fixed_512":
        value = int_option("ring", RX_BUFFERS_PER_QUEUE, RX_BUFFERS_PER_QUEUE,
                           " (v6.9 mana has RX_BUFFERS_PER_QUEUE = 512 and no ethtool -G)")(text)
        return value
    value = int_option("ring", MIN_RX_BUFFERS_PER_QUEUE, MAX_RX_BUFFERS_PER_QUEUE, " (ethtool -G rx for mana)")(text)
    return roundup_pow_of_two(value)   # mana_set_ringparam()


def _default_ring(profile: Profile) -> int:
    return 1024 if profile.feature("mana_rx_queue") == "ethtool_1024" else 512


OPTIONS = GRO_OPTIONS + (
    DriverOption("mtu", "1500", f"interface MTU, {ETH_MIN_MTU}..{MANA_MAX_MTU}", int_option("mtu", ETH_MIN_MTU, MANA_MAX_MTU)),
    DriverOption("ring", "default", "RX buffers per queue: 512 (1024 from 6.18); 128..8192 rounded up to a power of "
                 "two where ethtool -G exists (not in v6.9)", str),
)


def mana_create_rxq(kernel: Kernel, dev: net_device, napi: napi_struct, options: dict[str, str] | None) -> mana_rxq:
    """mana_en.c: mana_create_rxq() - buffer geometry, the page_pool (mana_create_page_pool()), every buffer posted."""
    values = parse_options("mana", OPTIONS, options)
    profile = kernel.profile
    ring_text = values["ring"]
    count = _default_ring(profile) if ring_text == "default" else _ring_option(profile, ring_text)
    rxq = mana_rxq(dev, napi, count, profile.feature("mana_rx_buffers"))
    dev.mtu = values["mtu"]
    netdev_set_gro(dev, values)
    rxq.datasize, rxq.alloc_size, rxq.headroom, rxq.frag_count = mana_get_rxbuf_cfg(profile, dev.mtu)
    rxq.rxmax = rxq.datasize
    if rxq.rule == MANA_POOL_FRAGMENTS:
        pool_size = count // rxq.frag_count + 1
        order = profile.get_order(rxq.alloc_size)
        flags = PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV if rxq.frag_count > 1 else 0
        max_len = profile.PAGE_SIZE if rxq.frag_count > 1 else 0
    elif rxq.rule == MANA_POOL_WHOLE_PAGES:
        pool_size, order, flags, max_len = count, profile.get_order(rxq.alloc_size), 0, 0
    else:
        pool_size, order, flags, max_len = RX_BUFFERS_PER_QUEUE, 0, 0, 0
    # 6.1.192's pool has no NAPI link (and 6.1 never recycles skb pages directly anyway).
    params = page_pool_params(flags=flags, order=order, pool_size=pool_size, napi=napi, max_len=max_len, netdev=dev)
    pool, err = page_pool_create(kernel, params, name=f"mana rxq {napi.napi_id:#x}")
    if pool is None:
        raise InputError(f"mana: page_pool_create() failed with {err} (pool_size {pool_size}, order {order})")
    rxq.page_pool = pool
    rxq.page_pools = [pool]
    rxq.config = {
        "mtu": dev.mtu,
        "ring": count,
        "datasize": rxq.datasize,
        "alloc_size": rxq.alloc_size,
        "headroom": rxq.headroom,
        "frag_count": rxq.frag_count,
        "pool_order": order,
        "pool_size": pool.ring_qsize,
        "rxmax": rxq.rxmax,
        "rules": {MANA_POOL_PAGE_OR_FRAG: "page_pool page per buffer, napi_alloc_frag above a page (v6.9)",
                  MANA_POOL_WHOLE_PAGES: "a whole page_pool page of get_order(alloc_size) per buffer (6.12)",
                  MANA_POOL_FRAGMENTS: "page_pool fragments of alloc_size, whole pages for jumbo (6.18)"}[rxq.rule],
    }
    for oob in rxq.rx_oobs:
        if mana_fill_rx_oob(kernel, rxq, oob, in_napi=False):
            rxq.posted += 1
    return rxq


def mana_nic_receive(kernel: Kernel, rxq: mana_rxq, frame: Frame) -> bool:
    """The adapter: the frame into the next posted buffer, or dropped (too long, or no buffer)."""
    if frame.length > rxq.rxmax:
        rxq.stats.oversize_drops += 1
        return False
    if len(rxq.completions) >= rxq.count or rxq.rx_oobs[rxq.hw_next].buf_va is None:
        rxq.stats.ring_drops += 1
        return False
    slot = rxq.hw_next
    rxq.hw_next = (slot + 1) % rxq.count
    rxq.completions.append(RxCompletion([slot], [frame.length], frame_header(frame, rxq.synthetic), frame.rss_hash))
    rxq.stats.nic_frames += 1
    return True


def mana_rx_skb(kernel: Kernel, rxq: mana_rxq, buf_va: int | None, from_pool: bool, comp: RxCompletion,
                deliver: Deliver) -> None:
    """mana_en.c: mana_rx_skb() without XDP - napi_build_skb(alloc_size), reserve headroom, put the frame."""
    stats = rxq.stats
    if buf_va is None:
        stats.drop(comp.length)
        return
    skb = napi_build_skb(kernel, buf_va, rxq.alloc_size)
    if skb is None:
        stats.skb_alloc_failures += 1
        stats.drop(comp.length)
        if from_pool:
            if rxq.frag_count == 1:
                page_pool_recycle_direct(kernel, rxq.page_pool, kernel.pages.virt_to_head_page(buf_va))
            else:
                page_pool_free_va(kernel, rxq.page_pool, buf_va, True)
        else:
            kernel.pages.put_page(kernel.pages.virt_to_head_page(buf_va))
        return
    skb_reserve(skb, rxq.headroom)
    skb_put(skb, comp.length)
    if from_pool:
        skb_mark_for_recycle(skb)
        skb.head_source = "page_pool fragment" if rxq.frag_count > 1 else "page_pool page"
    else:
        skb.head_source = "page_frag (napi_alloc_frag)"
    skb.path = "napi_build_skb"
    rxq.last_path = "mana_rx_skb"
    # skb_set_hash() under NETIF_F_RXHASH, eth_type_trans(), napi_gro_receive().
    finish_rx_skb(kernel, rxq, skb, comp, deliver)


def mana_poll(kernel: Kernel, rxq: mana_rxq, budget: int, deliver: Deliver) -> int:
    """mana_en.c: mana_poll() -> mana_process_rx_cqe() per completion: refill the slot, then the old buffer's skb."""
    stats = rxq.stats
    stats.polls += 1
    if budget <= 0:
        return budget
    done = 0
    with kernel.softirq(rxq.napi.cpu):
        while done < budget and rxq.completions:
            comp = rxq.completions.popleft()
            slot = comp.slots[0]
            oob = rxq.rx_oobs[slot]
            stats.buffers_used += 1
            old_va, old_fp = oob.buf_va, oob.from_pool
            # mana_refill_rx_oob(): a new buffer first; none means the frame is lost, the old one stays.
            if mana_fill_rx_oob(kernel, rxq, oob, in_napi=True):
                stats.buffers_released += 1
            else:
                old_va = None
                stats.buffers_reused += 1
            rxq.buf_index = (slot + 1) % rxq.count
            mana_rx_skb(kernel, rxq, old_va, old_fp, comp, deliver)
            done += 1
        # mana_poll(): fewer completions than the budget - napi_complete_done().
        return pp_napi_complete(kernel, rxq, done, budget, deliver)


def mana_destroy_rxq(kernel: Kernel, rxq: mana_rxq) -> None:
    """mana_en.c: mana_destroy_rxq() - every posted buffer back, then page_pool_destroy()."""
    stats = rxq.stats
    while rxq.completions:
        stats.drop(rxq.completions.popleft().length)
    # napi_disable() and netif_napi_del() come first: what GRO still holds is freed.
    netif_napi_del(kernel, rxq.napi)
    for oob in rxq.rx_oobs:
        if oob.buf_va is not None:
            mana_put_rx_buf(kernel, rxq, oob.buf_va, oob.from_pool)
            oob.buf_va = None
    page_pool_destroy(kernel, rxq.page_pool)
    rxq.hw_next = rxq.buf_index = 0


DRIVER = Driver(
    name="mana",
    summary="Microsoft Azure Network Adapter: one page_pool buffer (page or fragment) per frame, refilled before the skb",
    options=OPTIONS,
    open_queue=mana_create_rxq,
    nic_receive=mana_nic_receive,
    poll=mana_poll,
    close_queue=mana_destroy_rxq,
)
