"""The bnxt_en (Broadcom NetXtreme-C/E) receive path, after drivers/net/ethernet/broadcom/bnxt/bnxt.c.

Sources: bnxt.c of 6.1.192, v6.9, 6.12.117 and 6.18.35 (bnxt_set_ring_params(),
bnxt_init_ring_params(), bnxt_hwrm_vnic_set_hds(), bnxt_alloc_rx_data(),
__bnxt_alloc_rx_frag(), __bnxt_alloc_rx_page(), bnxt_alloc_rx_page() /
bnxt_alloc_rx_netmem(), bnxt_alloc_rx_page_pool(), bnxt_rx_pkt(),
bnxt_copy_skb(), bnxt_rx_skb(), bnxt_rx_page_skb(), __bnxt_rx_agg_pages() /
__bnxt_rx_agg_netmems(), bnxt_deliver_skb()) and bnxt.h.

Buffers (x86_64, 4K pages, NET_SKB_PAD 64):

- The RX ring's buffers hold a whole frame when there is no aggregation
  ring: rx_size = SKB_DATA_ALIGN(mtu + ETH_HLEN + NET_IP_ALIGN + 8) bytes,
  rx_buf_size = rx_size + ALIGN(max(NET_SKB_PAD, XDP_PACKET_HEADROOM), 8)
  + SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) (2112 at MTU 1500); the
  skb is built around the buffer with rx_buf_size as its size, so truesize
  is rx_buf_size + SKB_DATA_ALIGN(sizeof(struct sk_buff)).
- With the aggregation ring (``tpa=on``: hardware GRO/LRO, on by default on
  chips that have it; and always for an MTU whose rx_buf_size passes a
  page) the RX buffers shrink to the header part: rx_size =
  SKB_DATA_ALIGN(256 + NET_IP_ALIGN) (6.18: the largest of 256, the
  rx-copybreak and hds_thresh, 640 by default), rx_buf_size = rx_size +
  NET_SKB_PAD + shinfo (640; 6.18 1024).  The firmware splits a frame
  longer than the header-data-split threshold after its L4 header (or,
  without one it can parse, past jumbo_thresh) and writes the rest into
  aggregation buffers of BNXT_RX_PAGE_SIZE (a 4K page), each adding
  BNXT_RX_PAGE_SIZE to truesize.
- rx_copybreak: a head part of at most rx_copybreak bytes (256; tunable
  from 6.18) is copied into napi_alloc_skb(len) and the buffer stays on the
  ring.  Longer ones become the skb after a replacement buffer was taken
  (none: the frame is dropped, the buffer reused).
- Page mode (``page_mode=on``: what attaching an XDP program does - the
  program's run is not modelled, every frame passes): each RX buffer is a
  page_pool page, MTU at most BNXT_MAX_PAGE_MODE_MTU (3502); bnxt_rx_page_skb()
  copies the headers (eth_get_headlen()) into napi_alloc_skb() and attaches
  the page with truesize BNXT_RX_PAGE_SIZE.

Per release (profile features ``bnxt_rx_head`` and ``bnxt_rx_copybreak``):
6.1 takes RX buffers from the NAPI page_frag cache (netdev_alloc_frag() at
open), builds skbs with build_skb() and its aggregation pages with
alloc_page(); v6.9 keeps the page_frag buffers, uses napi_build_skb(), takes
aggregation pages from a page_pool and marks every skb for recycling
(bnxt_deliver_skb(); 6.6: 'bnxt_en: Use the unified RX page pool buffers for
XDP and non-XDP', 'bnxt: use the NAPI skb allocation cache'); 6.12 and 6.18
take the RX buffers from the page_pool too (page_pool_alloc_frag(rx_buf_size);
6.13: 'eth: bnxt: use page pool for head frags', in Debian 6.12.117 by
backport).  6.18 makes rx-copybreak tunable and sizes the aggregation-mode RX
buffers by hds_thresh (6.14: 'bnxt_en: add support for rx-copybreak ethtool
command', 'bnxt_en: add support for hds-thresh ethtool command').

Every skb goes to GRO (bnxt_deliver_skb(): napi_gro_receive(); ``gro`` and
the other GRO_OPTIONS as ethtool -K sets them), skb->hash from the
completion's RSS hash.

Not modelled: TPA aggregation itself (the NIC merging TCP before software
GRO sees it; ``tpa`` only shapes the buffers), XDP programs, the
completion ring, 64K-page splitting, VF representors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.drivers.base import (
    GRO_OPTIONS,
    Deliver,
    Driver,
    DriverOption,
    choice_option,
    frame_header,
    int_option,
    netdev_set_gro,
    parse_options,
)
from skbsim.drivers.pp_common import PPQueue, RxCompletion, div_round_up, finish_rx_skb, pp_napi_complete
from skbsim.errors import InputError
from skbsim.mm.gfp import GFP_ATOMIC, GFP_KERNEL
from skbsim.net.ethernet import ETH_HLEN, VLAN_HLEN, eth_get_headlen
from skbsim.net.gro import netif_napi_del
from skbsim.net.page_pool import (
    PP_FLAG_DMA_MAP,
    PP_FLAG_DMA_SYNC_DEV,
    page_pool_alloc_frag,
    page_pool_create,
    page_pool_destroy,
    page_pool_dev_alloc_pages,
    page_pool_free_va,
    page_pool_params,
    page_pool_put_full_page,
    page_pool_recycle_direct,
    skb_mark_for_recycle,
)
from skbsim.net.skbuff import (
    build_skb,
    kfree_skb,
    napi_alloc_frag,
    napi_alloc_skb,
    napi_build_skb,
    netdev_alloc_frag,
    skb_add_rx_frag,
    skb_free_frag,
    skb_put,
    skb_reserve,
)

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.profile import Profile
    from skbsim.traffic.frame import Frame

XDP_PACKET_HEADROOM = 256
BNXT_RX_COPY_THRESH = 256          # BNXT_DEFAULT_RX_COPYBREAK from 6.18
BNXT_MAX_RX_COPYBREAK = 1024
BNXT_MAX_MTU = 9500
BNXT_MIN_MTU = 60                  # ETH_ZLEN
BNXT_DEFAULT_RX_RING_SIZE = 511
RX_DESC_CNT = 4096 // 16           # BNXT_PAGE_SIZE / sizeof(struct rx_bd)
MAX_RX_PAGES = 32
MAX_RX_PAGES_AGG_ENA = 8
BNXT_MAX_RX_DESC_CNT = RX_DESC_CNT * MAX_RX_PAGES - 1
BNXT_MAX_RX_DESC_CNT_JUM_ENA = RX_DESC_CNT * MAX_RX_PAGES_AGG_ENA - 1

HEAD_PAGE_FRAG = "page_frag_build_skb"
HEAD_PAGE_FRAG_NAPI = "page_frag_pp_agg"
HEAD_PAGE_POOL = "page_pool"


def bnxt_rx_page_size(profile: Profile) -> int:
    """bnxt.h: BNXT_RX_PAGE_SIZE - 1 << min(PAGE_SHIFT, 15)."""
    return 1 << min(profile.PAGE_SHIFT, 15)


def bnxt_max_page_mode_mtu(profile: Profile) -> int:
    """bnxt.h: BNXT_MAX_PAGE_MODE_MTU - PAGE_SIZE - VLAN_ETH_HLEN - NET_IP_ALIGN - XDP_PACKET_HEADROOM - shinfo."""
    return profile.PAGE_SIZE - (ETH_HLEN + VLAN_HLEN) - profile.NET_IP_ALIGN - XDP_PACKET_HEADROOM - profile.SHINFO_SIZE


class bnxt_params:
    """What bnxt_set_ring_params() computes: buffer sizes, the aggregation ring, the thresholds."""

    __slots__ = ("rx_size", "rx_buf_size", "agg_factor", "agg_ring_size", "ring_size", "copybreak",
                 "hds_threshold", "jumbo_thresh", "rx_offset")


def bnxt_set_ring_params(profile: Profile, mtu: int, ring_size: int, tpa: bool, page_mode: bool,
                         copybreak: int) -> bnxt_params:
    """bnxt.c: bnxt_set_ring_params() (+ 6.18's bnxt_init_ring_params() defaults) and the placement
    thresholds bnxt_hwrm_vnic_set_hds() gives the firmware."""
    p = bnxt_params()
    pad = max(profile.NET_SKB_PAD, XDP_PACKET_HEADROOM)
    pad = (pad + 7) & ~7
    rx_size = profile.SKB_DATA_ALIGN(mtu + ETH_HLEN + profile.NET_IP_ALIGN + 8)
    rx_space = rx_size + pad + profile.SHINFO_SIZE
    agg_factor = min(4, 65536 // bnxt_rx_page_size(profile)) if tpa and not page_mode else 0
    if rx_space > profile.PAGE_SIZE:
        jumbo = -(-(mtu - 40) // profile.PAGE_SIZE)
        agg_factor = max(agg_factor, jumbo)
    tunable = profile.feature("bnxt_rx_copybreak") == "tunable_hds_thresh"
    hds_thresh = max(BNXT_RX_COPY_THRESH, 1024 - profile.NET_SKB_PAD - profile.SHINFO_SIZE)
    p.copybreak = copybreak if tunable else BNXT_RX_COPY_THRESH
    if agg_factor:
        ring_size = min(ring_size, BNXT_MAX_RX_DESC_CNT_JUM_ENA)
        if page_mode:
            rx_space = profile.PAGE_SIZE
            rx_size = profile.PAGE_SIZE - pad - profile.SHINFO_SIZE
        else:
            base = max(BNXT_RX_COPY_THRESH, p.copybreak, hds_thresh) if tunable else BNXT_RX_COPY_THRESH
            rx_size = profile.SKB_DATA_ALIGN(base + profile.NET_IP_ALIGN)
            rx_space = rx_size + profile.NET_SKB_PAD + profile.SHINFO_SIZE
    p.rx_size, p.rx_buf_size = rx_size, rx_space
    p.agg_factor = agg_factor
    p.ring_size = ring_size
    p.agg_ring_size = ring_size * agg_factor
    # bnxt_hwrm_vnic_set_hds(): where the firmware splits a frame between the RX and aggregation buffers.
    if tunable:
        p.jumbo_thresh = rx_size
        p.hds_threshold = hds_thresh if agg_factor and not page_mode else None
    elif page_mode:
        p.jumbo_thresh, p.hds_threshold = rx_size, None
    else:
        p.jumbo_thresh = p.hds_threshold = BNXT_RX_COPY_THRESH
    p.rx_offset = profile.NET_IP_ALIGN + (XDP_PACKET_HEADROOM if page_mode else profile.NET_SKB_PAD)
    return p


class bnxt_rx_ring_info(PPQueue):
    """bnxt.h: struct bnxt_rx_ring_info - RX buffers, aggregation buffers, their pool(s).

    ``rx_buf[i]`` is the buffer's address (page_frag / page_pool fragment)
    or page (page mode); ``agg_buf[i]`` an aggregation page; None is empty.
    ``rx_done``/``agg_done``: written by the NIC, not yet consumed.
    """

    __slots__ = ("p", "head", "page_mode", "rx_buf", "rx_done", "agg_buf", "agg_done", "rx_next", "agg_next",
                 "page_pool", "head_pool")

    def __init__(self, dev: net_device, napi: napi_struct, p: bnxt_params, head: str, page_mode: bool):
        super().__init__("bnxt", dev, napi)
        self.p = p
        self.head = head
        self.page_mode = page_mode
        self.rx_buf: list = [None] * p.ring_size
        self.rx_done = [False] * p.ring_size
        self.agg_buf: list = [None] * p.agg_ring_size
        self.agg_done = [False] * p.agg_ring_size
        self.rx_next = 0
        self.agg_next = 0
        self.page_pool = None
        self.head_pool = None


# -- buffers --------------------------------------------------------------------------------------------------


def bnxt_alloc_rx_data(kernel: Kernel, rxr: bnxt_rx_ring_info, gfp: int):
    """bnxt.c: bnxt_alloc_rx_data() - a page_pool page (page mode), a page_pool fragment of rx_buf_size
    (6.12+) or a page_frag of rx_buf_size (napi_alloc_frag() in NAPI, netdev_alloc_frag() at open)."""
    if rxr.page_mode:
        return page_pool_dev_alloc_pages(kernel, rxr.page_pool)
    if rxr.head == HEAD_PAGE_POOL:
        page, offset = page_pool_alloc_frag(kernel, rxr.head_pool, rxr.p.rx_buf_size, gfp)
        return None if page is None else kernel.pages.page_address(page) + offset
    if gfp == GFP_ATOMIC:
        return napi_alloc_frag(kernel, rxr.p.rx_buf_size)
    return netdev_alloc_frag(kernel, rxr.p.rx_buf_size)


def bnxt_free_rx_data(kernel: Kernel, rxr: bnxt_rx_ring_info, data) -> None:
    """Give an RX buffer back (bnxt_free_rx_skbs(): page_pool_recycle_direct(), page_pool_free_va(), skb_free_frag())."""
    if rxr.page_mode:
        page_pool_recycle_direct(kernel, rxr.page_pool, data)
    elif rxr.head == HEAD_PAGE_POOL:
        page_pool_free_va(kernel, rxr.head_pool, data, True)
    else:
        skb_free_frag(kernel, data)


def bnxt_alloc_rx_page(kernel: Kernel, rxr: bnxt_rx_ring_info, gfp: int):
    """bnxt.c: bnxt_alloc_rx_page() (6.18: bnxt_alloc_rx_netmem()) - an aggregation page: alloc_page() in 6.1,
    the page_pool after."""
    if rxr.page_pool is None:
        return kernel.pages.alloc_pages(gfp, 0, "bnxt_alloc_rx_page")
    return page_pool_dev_alloc_pages(kernel, rxr.page_pool)


def bnxt_free_agg_page(kernel: Kernel, rxr: bnxt_rx_ring_info, page) -> None:
    if rxr.page_pool is None:
        kernel.pages.put_page(page)
    else:
        page_pool_put_full_page(kernel, rxr.page_pool, page, False)


# -- the NIC ----------------------------------------------------------------------------------------------------


def bnxt_nic_receive(kernel: Kernel, rxr: bnxt_rx_ring_info, frame: Frame) -> bool:
    """The NIC: the frame into the next RX buffer, or its head part there and the rest into aggregation buffers."""
    length = frame.length
    if length > rxr.rxmax:
        rxr.stats.oversize_drops += 1
        return False
    header = frame_header(frame, rxr.synthetic)
    p = rxr.p
    head_len = length
    if p.agg_ring_size:
        split = 0
        if p.hds_threshold is not None and length > p.hds_threshold:
            split = eth_get_headlen(rxr.dev, header, length)
            split = split if 0 < split < length else 0
        if not split and length > p.jumbo_thresh:
            split = p.jumbo_thresh
        if split:
            head_len = split
    agg_page = bnxt_rx_page_size(kernel.profile)
    nagg = div_round_up(length - head_len, agg_page)
    ix = rxr.rx_next
    if rxr.rx_buf[ix] is None or rxr.rx_done[ix]:
        rxr.stats.ring_drops += 1
        return False
    aggs = [(rxr.agg_next + i) % max(1, p.agg_ring_size) for i in range(nagg)]
    if nagg > p.agg_ring_size or any(rxr.agg_buf[a] is None or rxr.agg_done[a] for a in aggs):
        rxr.stats.ring_drops += 1
        return False
    rxr.rx_done[ix] = True
    for a in aggs:
        rxr.agg_done[a] = True
    rxr.rx_next = (ix + 1) % p.ring_size
    if nagg:
        rxr.agg_next = (aggs[-1] + 1) % p.agg_ring_size
    rest = length - head_len
    sizes = [head_len] + [min(agg_page, rest - i * agg_page) for i in range(nagg)]
    comp = RxCompletion([ix] + aggs, sizes, header, frame.rss_hash)
    rxr.completions.append(comp)
    rxr.stats.nic_frames += 1
    return True


# -- skbs -------------------------------------------------------------------------------------------------------


def bnxt_copy_skb(kernel: Kernel, rxr: bnxt_rx_ring_info, length: int):
    """bnxt.c: bnxt_copy_skb() / bnxt_copy_data() - napi_alloc_skb(len) and the bytes copied."""
    skb = napi_alloc_skb(kernel, rxr.napi, length)
    if skb is None:
        return None
    skb_put(skb, length)
    rxr.stats.bytes_copied += length
    rxr.stats.buffers_copied += 1
    return skb


def _bnxt_replace_rx_buf(kernel: Kernel, rxr: bnxt_rx_ring_info, ix: int):
    """bnxt_alloc_rx_data() for the slot before its buffer goes up: the old buffer, or None when no new one
    came (the frame is dropped and the old buffer stays, bnxt_reuse_rx_data())."""
    old = rxr.rx_buf[ix]
    new = bnxt_alloc_rx_data(kernel, rxr, GFP_ATOMIC)
    if new is None:
        rxr.stats.buffer_alloc_failures += 1
        rxr.stats.buffers_reused += 1
        return None
    rxr.rx_buf[ix] = new
    rxr.stats.buffers_released += 1
    return old


def bnxt_rx_skb(kernel: Kernel, rxr: bnxt_rx_ring_info, ix: int, length: int):
    """bnxt.c: bnxt_rx_skb() - replacement buffer first, then the skb around the old one (rx_buf_size)."""
    data = _bnxt_replace_rx_buf(kernel, rxr, ix)
    if data is None:
        return None
    build = build_skb if rxr.head == HEAD_PAGE_FRAG else napi_build_skb
    skb = build(kernel, data, rxr.p.rx_buf_size)
    if skb is None:
        bnxt_free_rx_data(kernel, rxr, data)
        return None
    if rxr.head == HEAD_PAGE_POOL:
        skb_mark_for_recycle(skb)
    skb_reserve(skb, rxr.p.rx_offset)
    skb_put(skb, length)
    skb.head_source = "bnxt rx buffer (page_pool)" if rxr.head == HEAD_PAGE_POOL else "bnxt rx buffer (page_frag)"
    skb.path = "napi_build_skb" if build is napi_build_skb else "build_skb"
    return skb


def bnxt_rx_page_skb(kernel: Kernel, rxr: bnxt_rx_ring_info, ix: int, length: int, header: bytes):
    """bnxt.c: bnxt_rx_page_skb() - page mode: the headers copied into napi_alloc_skb(), the page attached
    with truesize BNXT_RX_PAGE_SIZE."""
    page = _bnxt_replace_rx_buf(kernel, rxr, ix)
    if page is None:
        return None
    payload = eth_get_headlen(rxr.dev, header, length)
    skb = napi_alloc_skb(kernel, rxr.napi, payload)
    if skb is None:
        page_pool_recycle_direct(kernel, rxr.page_pool, page)
        return None
    skb_mark_for_recycle(skb)
    skb_add_rx_frag(skb, 0, page, rxr.p.rx_offset, length, bnxt_rx_page_size(kernel.profile))
    # The headers move into the linear part: frag 0 shrinks by payload bytes.
    frag = skb.shinfo.frags[0]
    frag.size -= payload
    frag.offset += payload
    skb.data_len -= payload
    skb.tail += payload
    rxr.stats.bytes_copied += payload
    return skb


def bnxt_rx_agg_pages(kernel: Kernel, rxr: bnxt_rx_ring_info, skb, comp: RxCompletion) -> bool:
    """bnxt.c: __bnxt_rx_agg_pages() / __bnxt_rx_agg_netmems() - each aggregation page attached (truesize
    BNXT_RX_PAGE_SIZE) after a replacement was taken; no replacement: False (the caller drops the frame)."""
    agg_page = bnxt_rx_page_size(kernel.profile)
    for i, (a, size) in enumerate(zip(comp.slots[1:], comp.sizes[1:])):
        page = rxr.agg_buf[a]
        new = bnxt_alloc_rx_page(kernel, rxr, GFP_ATOMIC)
        if new is None:
            rxr.stats.buffer_alloc_failures += 1
            # bnxt_reuse_rx_agg_bufs(): the rest stay posted.
            for b in comp.slots[1 + i:]:
                rxr.agg_done[b] = False
            return False
        rxr.agg_buf[a] = new
        rxr.agg_done[a] = False
        skb_add_rx_frag(skb, skb.nr_frags, page, 0, size, agg_page)
    return True


def bnxt_poll(kernel: Kernel, rxr: bnxt_rx_ring_info, budget: int, deliver: Deliver) -> int:
    """bnxt.c: bnxt_poll() -> bnxt_rx_pkt() per completion."""
    stats = rxr.stats
    stats.polls += 1
    if budget <= 0:
        return budget
    done = 0
    with kernel.softirq(rxr.napi.cpu):
        while done < budget and rxr.completions:
            comp = rxr.completions.popleft()
            done += 1
            ix = comp.slots[0]
            length = comp.sizes[0]
            stats.buffers_used += len(comp.slots)
            rxr.rx_done[ix] = False
            if length <= rxr.p.copybreak and not rxr.page_mode:
                skb = bnxt_copy_skb(kernel, rxr, length)    # the buffer stays (bnxt_reuse_rx_data())
                stats.buffers_reused += 1
                builder = "bnxt_copy_skb"
            elif rxr.page_mode:
                skb = bnxt_rx_page_skb(kernel, rxr, ix, length, comp.header)
                builder = "bnxt_rx_page_skb"
            else:
                skb = bnxt_rx_skb(kernel, rxr, ix, length)
                builder = "bnxt_rx_skb"
            if skb is not None and len(comp.slots) > 1:
                if not bnxt_rx_agg_pages(kernel, rxr, skb, comp):
                    if rxr.page_pool is not None:
                        skb_mark_for_recycle(skb)
                    kfree_skb(kernel, skb)
                    skb = None
            elif skb is None:
                for a in comp.slots[1:]:
                    rxr.agg_done[a] = False   # bnxt_reuse_rx_agg_bufs()
            if skb is None:
                stats.skb_alloc_failures += 1
                stats.drop(comp.length)
                continue
            if rxr.head != HEAD_PAGE_FRAG:
                skb_mark_for_recycle(skb)   # bnxt_deliver_skb() (v6.9+)
            rxr.last_path = builder
            # bnxt_rx_pkt(): skb_set_hash() under NETIF_F_RXHASH, eth_type_trans(); bnxt_deliver_skb():
            # napi_gro_receive().
            finish_rx_skb(kernel, rxr, skb, comp, deliver)
        # bnxt_poll(): no work left within the budget - napi_complete_done().
        return pp_napi_complete(kernel, rxr, done, budget, deliver)


# -- the driver interface ---------------------------------------------------------------------------------------


OPTIONS = GRO_OPTIONS + (
    DriverOption("mtu", "1500", f"interface MTU, {BNXT_MIN_MTU}..{BNXT_MAX_MTU}", int_option("mtu", BNXT_MIN_MTU, BNXT_MAX_MTU)),
    DriverOption("ring", str(BNXT_DEFAULT_RX_RING_SIZE), f"RX ring entries (ethtool -G rx), 1..{BNXT_MAX_RX_DESC_CNT}; "
                 f"{BNXT_MAX_RX_DESC_CNT_JUM_ENA} at most with the aggregation ring",
                 int_option("ring", 1, BNXT_MAX_RX_DESC_CNT)),
    DriverOption("tpa", "on", "hardware GRO (rx-gro-hw; on by default where the chip has TPA): brings the "
                 "aggregation ring and small RX buffers", choice_option("tpa", ("on", "off"))),
    DriverOption("copybreak", str(BNXT_RX_COPY_THRESH), f"rx-copybreak (ethtool --set-tunable), 0..{BNXT_MAX_RX_COPYBREAK}; "
                 "fixed at 256 before 6.14", int_option("copybreak", 0, BNXT_MAX_RX_COPYBREAK)),
    DriverOption("page_mode", "off", "on: page mode, as with an XDP program attached (page_pool page per "
                 "buffer, MTU at most 3502)", choice_option("page_mode", ("on", "off"))),
)


def bnxt_open_queue(kernel: Kernel, dev: net_device, napi: napi_struct, options: dict[str, str] | None):
    """bnxt.c: __bnxt_open_nic() for one RX ring: ring parameters, page_pool(s), every buffer posted."""
    values = parse_options("bnxt", OPTIONS, options)
    profile = kernel.profile
    if profile.PAGE_SIZE != 4096:
        raise InputError(f"bnxt: PAGE_SIZE {profile.PAGE_SIZE} is not modelled")
    page_mode = values["page_mode"] == "on"
    tunable = profile.feature("bnxt_rx_copybreak") == "tunable_hds_thresh"
    if values["copybreak"] != BNXT_RX_COPY_THRESH and not tunable:
        raise InputError(f"option copybreak={values['copybreak']}: bnxt of {profile.name} has a fixed rx copy "
                         "threshold of 256 (rx-copybreak is tunable from 6.14)")
    if page_mode and values["mtu"] > bnxt_max_page_mode_mtu(profile):
        raise InputError(f"option mtu={values['mtu']} is above {bnxt_max_page_mode_mtu(profile)}, the largest page "
                         "mode takes (BNXT_MAX_PAGE_MODE_MTU)")
    dev.mtu = values["mtu"]
    netdev_set_gro(dev, values)
    p = bnxt_set_ring_params(profile, dev.mtu, values["ring"], values["tpa"] == "on", page_mode,
                             values["copybreak"])
    head = profile.feature("bnxt_rx_head")
    rxr = bnxt_rx_ring_info(dev, napi, p, head, page_mode)
    rxr.rxmax = dev.mtu + ETH_HLEN + VLAN_HLEN
    # bnxt_alloc_rx_page_pool(): 6.1 only in page mode (no DMA mapping, no NAPI link); later one pool for
    # the aggregation pages, page-mode buffers and (6.12+) the RX buffers (a separate head pool only where
    # the aggregation page is not one order-0 page).
    params = None
    if head == HEAD_PAGE_FRAG:
        if page_mode:
            params = page_pool_params(flags=0, pool_size=p.ring_size, netdev=dev)
    else:
        params = page_pool_params(flags=PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV,
                                  pool_size=p.agg_ring_size + (p.ring_size if page_mode else 0), napi=napi,
                                  max_len=profile.PAGE_SIZE, netdev=dev)
    if params is not None:
        pool, err = page_pool_create(kernel, params, name=f"bnxt rxr {napi.napi_id:#x}")
        if pool is None:
            raise InputError(f"bnxt: page_pool_create() failed with {err}")
        rxr.page_pool = rxr.head_pool = pool
        rxr.page_pools = [pool]
    rxr.config = {
        "mtu": dev.mtu,
        "ring": p.ring_size,
        "tpa": values["tpa"],
        "page_mode": values["page_mode"],
        "rx_size": p.rx_size,
        "rx_buf_size": p.rx_buf_size,
        "agg_ring": p.agg_ring_size,
        "copybreak": p.copybreak,
        "hds_threshold": p.hds_threshold if p.agg_ring_size else None,
        "jumbo_thresh": p.jumbo_thresh if p.agg_ring_size else None,
        "rxmax": rxr.rxmax,
        "rules": {HEAD_PAGE_FRAG: "page_frag RX buffers, build_skb, alloc_page aggregation pages (6.1)",
                  HEAD_PAGE_FRAG_NAPI: "page_frag RX buffers, page_pool aggregation pages (v6.9)",
                  HEAD_PAGE_POOL: "page_pool RX buffers and aggregation pages (6.12+)"}[head],
    }
    for i in range(p.ring_size):
        data = bnxt_alloc_rx_data(kernel, rxr, GFP_KERNEL)
        if data is None:
            rxr.stats.buffer_alloc_failures += 1
            break
        rxr.rx_buf[i] = data
    for i in range(p.agg_ring_size):
        page = bnxt_alloc_rx_page(kernel, rxr, GFP_KERNEL)
        if page is None:
            rxr.stats.buffer_alloc_failures += 1
            break
        rxr.agg_buf[i] = page
    return rxr


def bnxt_close_queue(kernel: Kernel, rxr: bnxt_rx_ring_info) -> None:
    """bnxt.c: bnxt_free_rx_skbs() and bnxt_free_rx_rings(): every buffer back, the pool destroyed."""
    while rxr.completions:
        rxr.stats.drop(rxr.completions.popleft().length)
    with kernel.softirq(rxr.napi.cpu):
        for i, data in enumerate(rxr.rx_buf):
            if data is not None:
                bnxt_free_rx_data(kernel, rxr, data)
                rxr.rx_buf[i] = None
        for i, page in enumerate(rxr.agg_buf):
            if page is not None:
                bnxt_free_agg_page(kernel, rxr, page)
                rxr.agg_buf[i] = None
    if rxr.page_pool is not None:
        page_pool_destroy(kernel, rxr.page_pool)
    # bnxt_del_napi() -> netif_napi_del(): what GRO still holds is freed.
    netif_napi_del(kernel, rxr.napi)


DRIVER = Driver(
    name="bnxt",
    summary="Broadcom NetXtreme-C/E (bnxt_en): rx_copybreak, aggregation ring with header-data split, page mode",
    options=OPTIONS,
    open_queue=bnxt_open_queue,
    nic_receive=bnxt_nic_receive,
    poll=bnxt_poll,
    close_queue=bnxt_close_queue,
)
