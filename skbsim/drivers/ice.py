"""The ice (Intel E800 series) receive path, after drivers/net/ethernet/intel/ice.

Sources: ice_txrx.c, ice_txrx.h, ice_txrx_lib.[ch], ice_base.c, ice.h of
Linux 6.9 (the base), 6.1.192, 6.12.117 and 6.18.35.  Function names are
the driver's; each works on an :class:`ice_rx_ring` and its
:class:`ice_rx_buf` slots.

Geometry (ice_vsi_cfg_frame_size(), ice_setup_rx_ctx(), ice_rx_pg_order(),
ice_rx_frame_truesize() / 6.12+ ice_get_frame_sz(); 4K pages):

============================  ============  =========  ====  =========  ========
mode                          rx_buf_len    max_frame  page  frame_sz   headroom
============================  ============  =========  ====  =========  ========
rx=build_skb, MTU <= 1500     1536          1536       0     2048       ICE_SKB_PAD = 192
rx=build_skb, MTU > 1500      3072          9728       1     4096       192
rx=legacy (any MTU)           1664          8320       0     2048       0
============================  ============  =========  ====  =========  ========

The NIC accepts frames up to rxmax = min(max_frame, 5 * rx_buf_len) and
spreads one over ceil(len / rx_buf_len) descriptors.  Each page is shared by
two buffers (the half-page flip): the driver pre-charges USHRT_MAX - 1 extra
page references at allocation and counts its own share in pagecnt_bias, so
a buffer given to the stack costs one reference, and a page is put back on
the ring while no more than one of its halves is outside the driver.

Per-release differences (chosen by :func:`ice_rules_for` from the profile's
feature ``ice_rx_put``):

- 6.1.y (< 6.3): frames spanning descriptors grow an skb kept in
  ``ring.skb`` across polls (ice_add_rx_frag); every buffer is put back
  (ice_put_rx_buf) right after its descriptor; a failed skb allocation
  leaves the frame on the ring for the next poll.
- 6.3 .. 6.12.13 (6.9 here): buffers gather in the ring's xdp_buff and the
  skb is built once at the last descriptor; buffers carry a verdict and are
  all put back after the budget loop; the page count is sampled in
  ice_get_rx_buf(); a copied-out legacy buffer is reused without a flip.
- 6.12.14+ and 6.14+ (6.12.117, 6.18): buffers are put back per frame
  (ice_put_rx_mbuf()) before the skb goes up, the page counts are sampled
  just before the skb is built (ice_get_pgcnts()), and a copied-out legacy
  buffer is flipped too.

The header skb of legacy mode comes from __napi_alloc_skb(ICE_RX_HDR_SIZE,
GFP_ATOMIC | __GFP_NOWARN) where the profile has that function, else from
napi_alloc_skb() (6.10+); what that gives is the core's business (1K frag,
small-head slab, ...).  6.18's ice still uses this page-split scheme (no
page_pool/libeth buffers yet), so 6.18 is modelled with it.  The page_pool
form of later releases ('ice: switch to Page Pool', in 7.1.3; profile
feature ``ice_rx_buffers`` = "libeth") is skbsim.drivers.libeth's fill
queue with ice's limits, and has header split (docs/drivers/ice.md).

Not modelled: XDP programs, header split in the page-split form, VLAN tag stripping, checksum and
hash offloads, PTP, the flow-director control queue, AF_XDP, pages of 8K
or more (a different reuse rule), NUMA-remote pages.  The hardware side is
simplified: a frame that does not find enough posted descriptors is dropped
at once (real hardware buffers it in its FIFO for a while); whether rxmax
counts the stripped CRC is not known here, so it is compared with the
length without CRC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.drivers.base import (
    GRO_OPTIONS,
    Deliver,
    Driver,
    DriverOption,
    RxQueueStats,
    choice_option,
    frame_header,
    synthetic_header_template,
    int_option,
    netdev_set_gro,
    parse_options,
)
from skbsim.errors import InputError
from skbsim.mm.gfp import GFP_ATOMIC, __GFP_COMP, __GFP_MEMALLOC, __GFP_NOWARN
from skbsim.mm.page_alloc import Page
from skbsim.net import skbuff
from skbsim.net.gro import napi_complete_done, napi_gro_receive, netif_napi_del
from skbsim.net.ethernet import (
    ETH_DATA_LEN,
    ETH_FCS_LEN,
    ETH_HLEN,
    VLAN_HLEN,
    eth_get_headlen,
    eth_skb_pad,
    eth_type_trans,
)
from skbsim.net.skbuff import __skb_put, kfree_skb, napi_build_skb, skb_add_rx_frag, skb_frag_t, skb_reserve

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import sk_buff
    from skbsim.profile import Profile
    from skbsim.traffic.frame import Frame

# drivers/net/ethernet/intel/ice/ice_txrx.h, ice.h, ice_txrx.c
ICE_RXBUF_3072 = 3072
ICE_RXBUF_2048 = 2048
ICE_RXBUF_1664 = 1664
ICE_RXBUF_1536 = 1536
ICE_MAX_CHAINED_RX_BUFS = 5
ICE_MAX_FRAME_LEGACY_RX = 8320
ICE_AQ_SET_MAC_FRAME_SIZE_MAX = 9728
ICE_ETH_PKT_HDR_PAD = ETH_HLEN + ETH_FCS_LEN + VLAN_HLEN * 2
ICE_MAX_MTU = ICE_AQ_SET_MAC_FRAME_SIZE_MAX - ICE_ETH_PKT_HDR_PAD
ETH_MIN_MTU = 68
ICE_RX_HDR_SIZE = 256
ICE_DFLT_NUM_RX_DESC = 2048
ICE_MIN_NUM_DESC = 64
ICE_MAX_NUM_DESC = 8160  # E810 (6.18 allows 8096 on E830)
ICE_REQ_DESC_MULTIPLE = 32
USHRT_MAX = 0xFFFF
#: Distinct frame headers whose eth_get_headlen() a ring remembers.
HEADLEN_MEMO_LIMIT = 4096
U32_MASK = 0xFFFFFFFF

# Buffer verdicts (ice_txrx.h); only PASS and CONSUMED occur without XDP.
ICE_XDP_PASS = 0
ICE_XDP_CONSUMED = 1
ICE_XDP_TX = 2
ICE_XDP_REDIR = 4
ICE_SKB_CONSUMED = ICE_XDP_CONSUMED

#: include/linux/skbuff.h: dev_alloc_pages() = __dev_alloc_pages(GFP_ATOMIC | __GFP_NOWARN, order),
#: which adds __GFP_COMP | __GFP_MEMALLOC.
DEV_ALLOC_PAGES_GFP = GFP_ATOMIC | __GFP_NOWARN | __GFP_COMP | __GFP_MEMALLOC

PUT_PER_BUFFER = "buffer"  # 6.1: ice_put_rx_buf() after every descriptor
PUT_PER_POLL = "poll"      # 6.3 .. 6.12.13: all cleaned buffers after the budget loop
PUT_PER_FRAME = "frame"    # 6.12.14+ / 6.14+: ice_put_rx_mbuf() at the end of each frame


class ice_rx_rules:
    """Which release's ice RX rules a ring follows (see the module docstring)."""

    __slots__ = ("release", "put", "ring_skb", "pgcnt_before_build", "hdr_alloc_gfp")

    def __init__(self, release: str, put: str, hdr_alloc_gfp: bool):
        self.release = release
        self.put = put
        self.ring_skb = put == PUT_PER_BUFFER
        self.pgcnt_before_build = put == PUT_PER_FRAME
        self.hdr_alloc_gfp = hdr_alloc_gfp

    def describe(self) -> str:
        timing = {
            PUT_PER_BUFFER: "buffers put back per descriptor, partial frames kept in rx_ring->skb (6.1)",
            PUT_PER_POLL: "buffers put back after the poll loop, skb built from the xdp_buff (6.3-6.12.13)",
            PUT_PER_FRAME: "buffers put back per frame (ice_put_rx_mbuf), page counts sampled before the build "
            "(6.12.14+, 6.14+)",
        }[self.put]
        return timing


def ice_rules_for(profile: Profile) -> ice_rx_rules:
    """The ice RX rules of the profile's release (feature ``ice_rx_put``)."""
    return ice_rx_rules(profile.release, profile.feature("ice_rx_put"), profile.has("napi_alloc_skb_gfp"))


# -- ring state ------------------------------------------------------------------------------


class ice_rx_desc:
    """One RX descriptor as the driver reads it back (union ice_32b_rx_flex_desc, write-back).

    ``header`` stands for the bytes the NIC wrote at the start of the first
    buffer of a frame (the model keeps no other payload).
    """

    __slots__ = ("dd", "eop", "pkt_len", "header", "rss_hash")

    def __init__(self) -> None:
        self.dd = False
        self.eop = False
        self.pkt_len = 0
        self.header: bytes | None = None
        self.rss_hash = 0


class ice_rx_buf:
    """ice_txrx.h: struct ice_rx_buf (the DMA address is not modelled)."""

    __slots__ = ("page", "page_offset", "pgcnt", "act", "pagecnt_bias")

    def __init__(self) -> None:
        self.page: Page | None = None
        self.page_offset = 0
        self.pgcnt = 0
        self.act = ICE_XDP_PASS
        self.pagecnt_bias = 0


class ice_xdp_buff:
    """The ring's struct xdp_buff: the frame being gathered (data None = no frame open)."""

    __slots__ = ("data", "hard_start", "size", "header", "frags", "frags_size", "frag_pfmemalloc", "frame_sz")

    def __init__(self) -> None:
        self.data: int | None = None
        self.hard_start = 0
        self.size = 0
        self.header = b""
        self.frags: list[skb_frag_t] = []
        self.frags_size = 0
        self.frag_pfmemalloc = False
        self.frame_sz = 0


class ice_rx_ring:
    """ice_txrx.h: struct ice_rx_ring, with the NIC's view of it (``hw_next``, ``tail``)."""

    __slots__ = (
        "driver",
        "dev",
        "napi",
        "stats",
        "config",
        "rules",
        "last_path",
        "q_index",
        "count",
        "rx_buf",
        "desc",
        "next_to_use",
        "next_to_clean",
        "next_to_alloc",
        "first_desc",
        "nr_frags",
        "tail",
        "hw_next",
        "rx_buf_len",
        "max_frame",
        "rxmax",
        "rx_offset",
        "build_skb",
        "xdp",
        "skb",
        "skb_header",
        "synthetic",
        "headlen_memo",
    )

    def __init__(self, dev: net_device, napi: napi_struct, count: int, rules: ice_rx_rules):
        self.driver = "ice"
        self.dev = dev
        self.napi = napi
        self.stats = RxQueueStats()
        self.config: dict = {}
        self.rules = rules
        self.last_path = ""
        self.q_index = 0
        self.count = count
        self.rx_buf = [ice_rx_buf() for _ in range(count)]
        self.desc = [ice_rx_desc() for _ in range(count)]
        self.next_to_use = 0
        self.next_to_clean = 0
        self.next_to_alloc = 0
        self.first_desc = 0
        self.nr_frags = 0
        self.tail = 0
        self.hw_next = 0
        self.rx_buf_len = 0
        self.max_frame = 0
        self.rxmax = 0
        self.rx_offset = 0
        self.build_skb = True
        self.xdp = ice_xdp_buff()
        self.skb: sk_buff | None = None  # 6.1: a frame still being gathered
        self.skb_header = b""
        self.synthetic = synthetic_header_template()
        # header bytes -> eth_get_headlen(dev, header, ICE_RX_HDR_SIZE): a pure
        # function of the bytes, and a flow's frames repeat them (bounded below).
        self.headlen_memo: dict[bytes, int] = {}


# -- geometry ---------------------------------------------------------------------------------


def ice_2k_too_small_with_padding(profile: Profile) -> bool:
    """ice_txrx.h: ICE_2K_TOO_SMALL_WITH_PADDING - a 1536-byte buffer plus NET_SKB_PAD exceeds 2K."""
    return profile.NET_SKB_PAD + ICE_RXBUF_1536 > profile.SKB_WITH_OVERHEAD(ICE_RXBUF_2048)


def ice_compute_pad(profile: Profile, rx_buf_len: int) -> int:
    """ice_txrx.h: ice_compute_pad() - room before the data in a half page."""
    half_page_size = -(-rx_buf_len // (profile.PAGE_SIZE // 2)) * (profile.PAGE_SIZE // 2)
    return profile.SKB_WITH_OVERHEAD(half_page_size) - rx_buf_len


def ice_skb_pad(profile: Profile) -> int:
    """ice_txrx.h: ice_skb_pad() (ICE_SKB_PAD on 4K pages): 192 on x86_64."""
    if ice_2k_too_small_with_padding(profile):
        rx_buf_len = ICE_RXBUF_3072 + profile.SKB_DATA_ALIGN(profile.NET_IP_ALIGN)
    else:
        rx_buf_len = ICE_RXBUF_1536
    return ice_compute_pad(profile, rx_buf_len - profile.NET_IP_ALIGN)


def ice_vsi_cfg_frame_size(profile: Profile, mtu: int, legacy_rx: bool) -> tuple[int, int]:
    """ice_base.c: ice_vsi_cfg_frame_size() - (max_frame, rx_buf_len)."""
    if legacy_rx:
        return ICE_MAX_FRAME_LEGACY_RX, ICE_RXBUF_1664
    if not ice_2k_too_small_with_padding(profile) and mtu <= ETH_DATA_LEN:
        size = ICE_RXBUF_1536 - profile.NET_IP_ALIGN
        return size, size
    return ICE_AQ_SET_MAC_FRAME_SIZE_MAX, ICE_RXBUF_3072


def ice_rx_pg_order(kernel: Kernel, ring: ice_rx_ring) -> int:
    """ice_txrx.h: ice_rx_pg_order() - order-1 pages for buffers above half a 4K page."""
    return 1 if ring.rx_buf_len > kernel.profile.PAGE_SIZE // 2 else 0


def ice_rx_pg_size(kernel: Kernel, ring: ice_rx_ring) -> int:
    return kernel.profile.PAGE_SIZE << ice_rx_pg_order(kernel, ring)


def ice_rx_frame_truesize(kernel: Kernel, ring: ice_rx_ring) -> int:
    """ice_txrx.c: ice_rx_frame_truesize() (6.12+: ice_get_frame_sz()) - half the page."""
    return ice_rx_pg_size(kernel, ring) // 2


def ice_rx_desc_unused(ring: ice_rx_ring, start: int) -> int:
    """ICE_RX_DESC_UNUSED() (start = first_desc) / 6.1 ICE_DESC_UNUSED() (start = next_to_clean)."""
    return (0 if start > ring.next_to_use else ring.count) + start - ring.next_to_use - 1


# -- buffers ----------------------------------------------------------------------------------


def ice_alloc_mapped_page(kernel: Kernel, ring: ice_rx_ring, bi: ice_rx_buf) -> bool:
    """ice_txrx.c: ice_alloc_mapped_page() - a slot keeps its page; an empty one gets a new page.

    The new page's count is raised by USHRT_MAX - 1 and pagecnt_bias set to
    USHRT_MAX: the driver owns all those references and gives one away per
    buffer the stack takes.
    """
    if bi.page is not None:
        return True
    page = kernel.pages.alloc_pages(DEV_ALLOC_PAGES_GFP, ice_rx_pg_order(kernel, ring), "ice_alloc_mapped_page")
    if page is None:
        ring.stats.buffer_alloc_failures += 1
        return False
    ring.stats.pages_allocated += 1
    bi.page = page
    bi.page_offset = ring.rx_offset
    kernel.pages.page_ref_add(page, USHRT_MAX - 1)
    bi.pagecnt_bias = USHRT_MAX
    return True


def ice_release_rx_desc(ring: ice_rx_ring, val: int) -> None:
    """ice_txrx_lib.c: ice_release_rx_desc() - new next_to_use; the tail moves in steps of 8."""
    prev_ntu = ring.next_to_use & ~0x7
    ring.next_to_use = val
    ring.next_to_alloc = val
    val &= ~0x7
    if prev_ntu != val:
        ring.tail = val


def ice_alloc_rx_bufs(kernel: Kernel, ring: ice_rx_ring, cleaned_count: int) -> bool:
    """ice_txrx.c: ice_alloc_rx_bufs() - post cleaned_count buffers; True if an allocation failed."""
    if not cleaned_count:
        return False
    ntu = ring.next_to_use
    while cleaned_count:
        if not ice_alloc_mapped_page(kernel, ring, ring.rx_buf[ntu]):
            break
        # Writing the buffer address hands the descriptor back to the NIC.
        desc = ring.desc[ntu]
        desc.dd = False
        desc.eop = False
        desc.pkt_len = 0
        desc.header = None
        ntu += 1
        if ntu == ring.count:
            ntu = 0
        # The kernel also clears the status of the descriptor that follows
        # (status_error0 at the new next_to_use), so the clean loop stops there
        # instead of reading a stale write-back on a descriptor not yet posted.
        ring.desc[ntu].dd = False
        cleaned_count -= 1
    if ring.next_to_use != ntu:
        ice_release_rx_desc(ring, ntu)
    return bool(cleaned_count)


def ice_rx_buf_adjust_pg_offset(rx_buf: ice_rx_buf, size: int) -> None:
    """ice_txrx.c: ice_rx_buf_adjust_pg_offset() - flip to the other half of the page (4K pages)."""
    rx_buf.page_offset ^= size


def dev_page_is_reusable(page: Page) -> bool:
    """include/linux/skbuff.h: dev_page_is_reusable() - not from the reserves (one NUMA node)."""
    return not page.pfmemalloc


def ice_page_count_reusable(pgcnt: int, pagecnt_bias: int) -> bool:
    """ice_txrx.c: ice_can_reuse_rx_page()'s count test - at most one reference outside the driver.

    pgcnt - pagecnt_bias is computed in unsigned int, as in the kernel.  (Plain
    integers: the fast engine compiles this function.)
    """
    return (pgcnt - pagecnt_bias) & U32_MASK <= 1


def ice_can_reuse_rx_page(kernel: Kernel, rx_buf: ice_rx_buf) -> bool:
    """ice_txrx.c: ice_can_reuse_rx_page() - only while at most one reference is outside the driver.

    A bias worn down to 1 is restocked with another USHRT_MAX - 1 references.
    """
    page = rx_buf.page
    if page.pfmemalloc:  # not dev_page_is_reusable(page)
        return False
    if not ice_page_count_reusable(rx_buf.pgcnt, rx_buf.pagecnt_bias):
        return False
    if rx_buf.pagecnt_bias == 1:
        kernel.pages.page_ref_add(page, USHRT_MAX - 1)
        rx_buf.pagecnt_bias = USHRT_MAX
    return True


def ice_reuse_rx_page(ring: ice_rx_ring, old_buf: ice_rx_buf) -> None:
    """ice_txrx.c: ice_reuse_rx_page() - move the page into the slot next_to_alloc points at."""
    nta = ring.next_to_alloc
    new_buf = ring.rx_buf[nta]
    nta += 1
    ring.next_to_alloc = nta if nta < ring.count else 0
    new_buf.page = old_buf.page
    new_buf.page_offset = old_buf.page_offset
    new_buf.pagecnt_bias = old_buf.pagecnt_bias


def __page_frag_cache_drain(kernel: Kernel, page: Page, count: int) -> None:
    """mm/page_alloc.c: __page_frag_cache_drain() - drop count references at once."""
    if kernel.pages.page_ref_sub_and_test(page, count):
        kernel.pages.free_the_page(page)


def ice_get_rx_buf(kernel: Kernel, ring: ice_rx_ring, size: int, ntc: int) -> ice_rx_buf:
    """ice_txrx.c: ice_get_rx_buf() - take the slot's buffer; one page reference goes with it.

    Up to 6.12.13 the page count is sampled here for the reuse test.
    """
    rx_buf = ring.rx_buf[ntc]
    if not ring.rules.pgcnt_before_build:
        rx_buf.pgcnt = rx_buf.page.refcount
    if size:
        rx_buf.pagecnt_bias -= 1
        ring.stats.buffers_used += 1
    return rx_buf


def ice_get_pgcnts(ring: ice_rx_ring, ntc: int) -> None:
    """ice_txrx.c (6.12.14+): ice_get_pgcnts() - sample page counts of the frame's buffers."""
    idx = ring.first_desc
    while idx != ntc:
        rx_buf = ring.rx_buf[idx]
        rx_buf.pgcnt = rx_buf.page.refcount
        idx += 1
        if idx == ring.count:
            idx = 0


def ice_put_rx_buf(kernel: Kernel, ring: ice_rx_ring, rx_buf: ice_rx_buf | None) -> None:
    """ice_txrx.c: ice_put_rx_buf() - recycle the page onto the ring, or let it go.

    Letting go drops the driver's remaining references (pagecnt_bias); the
    page is freed when the stack drops its last one.
    """
    if rx_buf is None:
        return
    if ice_can_reuse_rx_page(kernel, rx_buf):
        ice_reuse_rx_page(ring, rx_buf)
        ring.stats.buffers_reused += 1
    else:
        __page_frag_cache_drain(kernel, rx_buf.page, rx_buf.pagecnt_bias)
        ring.stats.buffers_released += 1
    rx_buf.page = None


def ice_put_rx_mbuf(kernel: Kernel, ring: ice_rx_ring, xdp: ice_xdp_buff, ntc: int, verdict: int) -> None:
    """ice_txrx.c (6.12.14+): ice_put_rx_mbuf() - put every buffer of the frame just finished.

    A frame that went up (verdict not CONSUMED) flips each buffer; a dropped
    one gets its references back (bias + 1) on the buffers it still holds.
    """
    idx = ring.first_desc
    xdp_frags = len(xdp.frags)
    i = 0
    while idx != ntc:
        buf = ring.rx_buf[idx]
        idx += 1
        if idx == ring.count:
            idx = 0
        if verdict != ICE_XDP_CONSUMED:
            ice_rx_buf_adjust_pg_offset(buf, xdp.frame_sz)
        else:
            if i <= xdp_frags:
                buf.pagecnt_bias += 1
            i += 1
        ice_put_rx_buf(kernel, ring, buf)
    xdp.data = None
    ring.first_desc = ntc


def ice_set_rx_bufs_act(ring: ice_rx_ring, act: int) -> None:
    """ice_txrx_lib.h: ice_set_rx_bufs_act() - the verdict for every buffer of the frame."""
    idx = ring.first_desc
    for _ in range(ring.nr_frags + 1):
        ring.rx_buf[idx].act = act
        idx += 1
        if idx == ring.count:
            idx = 0


def ice_add_xdp_frag(kernel: Kernel, ring: ice_rx_ring, xdp: ice_xdp_buff, rx_buf: ice_rx_buf, size: int) -> int:
    """ice_txrx.c: ice_add_xdp_frag() - a further buffer joins the frame as a fragment (0 or -ENOMEM)."""
    if not size:
        return 0
    if len(xdp.frags) == kernel.profile.MAX_SKB_FRAGS:
        ice_set_rx_bufs_act(ring, ICE_XDP_CONSUMED)
        return -12
    xdp.frags.append(skb_frag_t(rx_buf.page, rx_buf.page_offset, size))
    xdp.frags_size += size
    ring.nr_frags = len(xdp.frags)
    if rx_buf.page.pfmemalloc:
        xdp.frag_pfmemalloc = True
    return 0


def xdp_update_skb_shared_info(skb: sk_buff, frags: list[skb_frag_t], size: int, truesize: int,
                               pfmemalloc: bool) -> None:
    """include/net/xdp.h: xdp_update_skb_shared_info() (6.18: xdp_update_skb_frags_info()).

    The xdp_buff's fragments become the skb's; len, data_len and truesize
    grow by their sizes.
    """
    skb.shinfo.frags.extend(frags)
    skb.len += size
    skb.data_len += size
    skb.truesize += truesize
    if pfmemalloc:
        skb.pfmemalloc = True


def ice_add_rx_frag(kernel: Kernel, ring: ice_rx_ring, rx_buf: ice_rx_buf, skb: sk_buff, size: int) -> None:
    """ice_txrx.c (6.1): ice_add_rx_frag() - attach the buffer to the skb and flip it."""
    truesize = ice_rx_pg_size(kernel, ring) // 2
    if not size:
        return
    skb_add_rx_frag(skb, skb.nr_frags, rx_buf.page, rx_buf.page_offset, size, truesize)
    ice_rx_buf_adjust_pg_offset(rx_buf, truesize)


# -- skb construction -------------------------------------------------------------------------


def ice_build_skb(kernel: Kernel, ring: ice_rx_ring, xdp: ice_xdp_buff,
                  rx_buf: ice_rx_buf | None = None) -> sk_buff | None:
    """ice_txrx.c: ice_build_skb() - an skb around the buffer itself (no copy).

    napi_build_skb(hard_start, frame_sz): truesize = SKB_TRUESIZE(frame_sz -
    shinfo) = frame_sz + 256 on x86_64; headroom ICE_SKB_PAD; gathered
    fragments add frame_sz each.  The 6.1 form takes the buffer and flips it
    here.
    """
    skb = napi_build_skb(kernel, xdp.hard_start, xdp.frame_sz)
    if skb is None:
        return None
    skb.queue_mapping = ring.q_index + 1  # skb_record_rx_queue()
    skb_reserve(skb, xdp.data - xdp.hard_start)
    __skb_put(skb, xdp.size)
    skb.head_source = f"ice_rx_page (half of an order-{ice_rx_pg_order(kernel, ring)} page)"
    skb.path = "napi_build_skb"
    if xdp.frags:
        xdp_update_skb_shared_info(skb, xdp.frags, xdp.frags_size, len(xdp.frags) * xdp.frame_sz,
                                   xdp.frag_pfmemalloc)
    if rx_buf is not None:
        ice_rx_buf_adjust_pg_offset(rx_buf, xdp.frame_sz)
    ring.last_path = "ice_build_skb"
    return skb


def _ice_alloc_hdr_skb(kernel: Kernel, ring: ice_rx_ring) -> sk_buff | None:
    """The header skb of ice_construct_skb(): __napi_alloc_skb(256, GFP_ATOMIC|__GFP_NOWARN) or napi_alloc_skb(256)."""
    if ring.rules.hdr_alloc_gfp:
        return skbuff.__napi_alloc_skb(kernel, ring.napi, ICE_RX_HDR_SIZE, GFP_ATOMIC | __GFP_NOWARN)
    return skbuff.napi_alloc_skb(kernel, ring.napi, ICE_RX_HDR_SIZE)


def ice_construct_skb(kernel: Kernel, ring: ice_rx_ring, xdp: ice_xdp_buff,
                      rx_buf: ice_rx_buf | None = None) -> sk_buff | None:
    """ice_txrx.c: ice_construct_skb() - legacy-rx: copy the headers, attach the rest.

    A small head skb (ICE_RX_HDR_SIZE) takes the whole first buffer if it is
    at most 256 bytes, else the eth_get_headlen() bytes of it; what is left
    of the first buffer becomes frag 0 with truesize frame_sz, gathered
    buffers follow.  A buffer copied out entirely stays with the driver: its
    reference is given back (6.9 marks it ICE_SKB_CONSUMED for the put loop;
    6.1 and 6.12+ add it to pagecnt_bias here).
    """
    size = xdp.size
    skb = _ice_alloc_hdr_skb(kernel, ring)
    if skb is None:
        return None
    first = rx_buf if rx_buf is not None else ring.rx_buf[ring.first_desc]
    skb.queue_mapping = ring.q_index + 1
    headlen = size
    if headlen > ICE_RX_HDR_SIZE:
        header = xdp.header
        memo = ring.headlen_memo if type(header) is bytes else None  # only immutable bytes are remembered
        headlen = memo.get(header) if memo is not None else None
        if headlen is None:
            headlen = eth_get_headlen(ring.dev, header, ICE_RX_HDR_SIZE)
            if memo is not None:
                if len(memo) >= HEADLEN_MEMO_LIMIT:
                    memo.clear()
                memo[header] = headlen
    __skb_put(skb, headlen)
    ring.stats.bytes_copied += headlen
    size -= headlen
    if size:
        if len(xdp.frags) >= kernel.profile.MAX_SKB_FRAGS - 1:
            kfree_skb(kernel, skb)
            return None
        skb_add_rx_frag(skb, 0, first.page, first.page_offset + headlen, size, xdp.frame_sz)
        if rx_buf is not None:
            ice_rx_buf_adjust_pg_offset(rx_buf, xdp.frame_sz)
    else:
        ring.stats.buffers_copied += 1
        if ring.rules.put == PUT_PER_POLL:
            first.act = ICE_SKB_CONSUMED
        else:
            first.pagecnt_bias += 1
    if xdp.frags:
        xdp_update_skb_shared_info(skb, xdp.frags, xdp.frags_size, len(xdp.frags) * xdp.frame_sz,
                                   xdp.frag_pfmemalloc)
    ring.last_path = "ice_construct_skb"
    return skb


def ice_process_skb_fields(ring: ice_rx_ring, skb: sk_buff, header: bytes, rx_desc: ice_rx_desc) -> None:
    """ice_txrx_lib.c: ice_process_skb_fields() - ice_rx_hash() (the RSS hash of the EOP descriptor,
    NETIF_F_RXHASH being on by default) and eth_type_trans(); checksum, VLAN and PTP work is not modelled."""
    skb.hash = rx_desc.rss_hash
    skb.protocol = eth_type_trans(skb, ring.dev, header)


def ice_receive_skb(kernel: Kernel, ring: ice_rx_ring, skb: sk_buff, deliver: Deliver) -> None:
    """ice_txrx_lib.c: ice_receive_skb() - napi_gro_receive()."""
    napi_gro_receive(kernel, ring.napi, skb, deliver)


def _xdp_prepare_buff(kernel: Kernel, ring: ice_rx_ring, xdp: ice_xdp_buff, rx_buf: ice_rx_buf, size: int,
                      header: bytes) -> None:
    """xdp_prepare_buff() for the first buffer of a frame; the fragment list starts empty."""
    xdp.hard_start = kernel.pages.page_address(rx_buf.page) + rx_buf.page_offset - ring.rx_offset
    xdp.data = xdp.hard_start + ring.rx_offset
    xdp.size = size
    xdp.header = header
    xdp.frags = []
    xdp.frags_size = 0
    xdp.frag_pfmemalloc = False


# -- the poll loop ----------------------------------------------------------------------------


def ice_clean_rx_irq(kernel: Kernel, ring: ice_rx_ring, budget: int, deliver: Deliver) -> int:
    """ice_txrx.c: ice_clean_rx_irq() - up to budget frames; the release decides the form."""
    if ring.rules.ring_skb:
        return _ice_clean_rx_irq_ring_skb(kernel, ring, budget, deliver)
    return _ice_clean_rx_irq_xdp_buff(kernel, ring, budget, deliver)


def _ice_clean_rx_irq_xdp_buff(kernel: Kernel, ring: ice_rx_ring, budget: int, deliver: Deliver) -> int:
    """ice_clean_rx_irq() of 6.3+: gather in the xdp_buff, build at the last descriptor.

    6.9 puts every cleaned buffer back after the loop, by its verdict;
    6.12.14+ does it per frame with ice_put_rx_mbuf().
    """
    per_poll = ring.rules.put == PUT_PER_POLL
    xdp = ring.xdp
    stats = ring.stats
    frame_sz = xdp.frame_sz = ice_rx_frame_truesize(kernel, ring)
    total_rx_pkts = 0
    cached_ntc = ring.first_desc
    ntc = ring.next_to_clean
    cnt = ring.count
    descs = ring.desc
    build_skb = ring.build_skb

    while total_rx_pkts < budget:
        rx_desc = descs[ntc]
        if not rx_desc.dd:
            break
        size = rx_desc.pkt_len
        rx_buf = ice_get_rx_buf(kernel, ring, size, ntc)
        if not per_poll:
            ntc += 1
            if ntc == cnt:
                ntc = 0
        if xdp.data is None:
            _xdp_prepare_buff(kernel, ring, xdp, rx_buf, size, rx_desc.header or b"")
        elif ice_add_xdp_frag(kernel, ring, xdp, rx_buf, size):
            if not per_poll:
                ice_put_rx_mbuf(kernel, ring, xdp, ntc, ICE_XDP_CONSUMED)
            break
        if per_poll:
            ntc += 1
            if ntc == cnt:
                ntc = 0
        if not rx_desc.eop:
            continue

        if not per_poll:
            ice_get_pgcnts(ring, ntc)
        else:
            ice_set_rx_bufs_act(ring, ICE_XDP_PASS)  # ice_run_xdp() without a program
        header = xdp.header
        if build_skb:
            skb = ice_build_skb(kernel, ring, xdp)
        else:
            skb = ice_construct_skb(kernel, ring, xdp)
        if skb is None:
            stats.skb_alloc_failures += 1
            stats.drop(xdp.size + xdp.frags_size)
            if per_poll:
                rx_buf.act = ICE_XDP_CONSUMED
                if xdp.frags:
                    ice_set_rx_bufs_act(ring, ICE_XDP_CONSUMED)
                xdp.data = None
                ring.first_desc = ntc
                ring.nr_frags = 0
            else:
                ice_put_rx_mbuf(kernel, ring, xdp, ntc, ICE_XDP_CONSUMED)
            break
        if per_poll:
            xdp.data = None
            ring.first_desc = ntc
            ring.nr_frags = 0
        else:
            ice_put_rx_mbuf(kernel, ring, xdp, ntc, ICE_XDP_PASS)

        eth_skb_pad(kernel, skb)
        stats.bytes += skb.len
        ice_process_skb_fields(ring, skb, header, rx_desc)
        stats.frames += 1
        ice_receive_skb(kernel, ring, skb, deliver)
        total_rx_pkts += 1

    if per_poll:
        first = ring.first_desc
        rx_bufs = ring.rx_buf
        while cached_ntc != first:
            buf = rx_bufs[cached_ntc]
            act = buf.act
            if act & (ICE_XDP_TX | ICE_XDP_REDIR):
                ice_rx_buf_adjust_pg_offset(buf, frame_sz)
            elif act & ICE_XDP_CONSUMED:
                buf.pagecnt_bias += 1
            elif act == ICE_XDP_PASS:
                ice_rx_buf_adjust_pg_offset(buf, frame_sz)
            ice_put_rx_buf(kernel, ring, buf)
            cached_ntc += 1
            if cached_ntc >= cnt:
                cached_ntc = 0
    ring.next_to_clean = ntc
    failure = ice_alloc_rx_bufs(kernel, ring, ice_rx_desc_unused(ring, ring.first_desc))
    return budget if failure else total_rx_pkts


def _ice_clean_rx_irq_ring_skb(kernel: Kernel, ring: ice_rx_ring, budget: int, deliver: Deliver) -> int:
    """ice_clean_rx_irq() of 6.1: one buffer at a time, a partial frame kept in rx_ring->skb."""
    xdp = ring.xdp
    stats = ring.stats
    xdp.frame_sz = ice_rx_frame_truesize(kernel, ring)
    total_rx_pkts = 0
    cleaned_count = ice_rx_desc_unused(ring, ring.next_to_clean)
    skb = ring.skb
    ntc = ring.next_to_clean
    cnt = ring.count

    while total_rx_pkts < budget:
        rx_desc = ring.desc[ntc]
        if not rx_desc.dd:
            break
        size = rx_desc.pkt_len
        rx_buf = ice_get_rx_buf(kernel, ring, size, ntc)
        if skb is not None:
            ice_add_rx_frag(kernel, ring, rx_buf, skb, size)
        else:
            _xdp_prepare_buff(kernel, ring, xdp, rx_buf, size, rx_desc.header or b"")
            ring.skb_header = xdp.header
            if ring.build_skb:
                skb = ice_build_skb(kernel, ring, xdp, rx_buf)
            else:
                skb = ice_construct_skb(kernel, ring, xdp, rx_buf)
            # In 6.1 the xdp_buff only describes the current buffer; no frame stays open in it.
            xdp.data = None
        if skb is None:
            # The frame stays on the ring: the next poll tries again.
            stats.skb_alloc_failures += 1
            rx_buf.pagecnt_bias += 1
            break
        ntc += 1
        if ntc == cnt:
            ntc = 0
        ice_put_rx_buf(kernel, ring, rx_buf)
        cleaned_count += 1
        if not rx_desc.eop:
            continue
        eth_skb_pad(kernel, skb)
        stats.bytes += skb.len
        ice_process_skb_fields(ring, skb, ring.skb_header, rx_desc)
        stats.frames += 1
        ice_receive_skb(kernel, ring, skb, deliver)
        skb = None
        total_rx_pkts += 1

    ring.next_to_clean = ntc
    failure = ice_alloc_rx_bufs(kernel, ring, cleaned_count)
    ring.skb = skb
    return budget if failure else total_rx_pkts


# -- the driver interface ---------------------------------------------------------------------


def _ring_size(text: str) -> int:
    count = int_option("ring", ICE_MIN_NUM_DESC, ICE_MAX_NUM_DESC, " (ethtool -G rx for ice)")(text)
    # ice_set_ringparam() rounds the count up to a multiple of ICE_REQ_DESC_MULTIPLE.
    return -(-count // ICE_REQ_DESC_MULTIPLE) * ICE_REQ_DESC_MULTIPLE


OPTIONS = GRO_OPTIONS + (
    DriverOption("rx", "build_skb", "build_skb (the kernel's default) or legacy (the legacy-rx private flag: "
                 "ice_construct_skb copies headers into a small skb; skbsim's default)", choice_option("rx", ("build_skb", "legacy"))),
    DriverOption("mtu", "1500", f"interface MTU, {ETH_MIN_MTU}..{ICE_MAX_MTU}; above 1500 build_skb mode uses 3K "
                 "buffers in order-1 pages", int_option("mtu", ETH_MIN_MTU, ICE_MAX_MTU)),
    DriverOption("ring", str(ICE_DFLT_NUM_RX_DESC), f"RX descriptors, {ICE_MIN_NUM_DESC}..{ICE_MAX_NUM_DESC}, "
                 f"rounded up to a multiple of {ICE_REQ_DESC_MULTIPLE}", _ring_size),
    DriverOption("hsplit", "off", "header split (ethtool -G tcp-data-split); only ice's page_pool (libeth) form "
                 "has it", choice_option("hsplit", ("on", "off"))),
)


def ice_has_legacy_rx(profile: Profile) -> bool:
    """The legacy-rx private flag exists while ice splits pages itself; its page_pool (libeth) form has none."""
    return profile.feature("ice_rx_buffers") != "libeth"


def ice_pp_open_queue(kernel: Kernel, dev: net_device, napi: napi_struct, values: dict):
    """ice_open() of ice's page_pool form (profile feature ``ice_rx_buffers`` = "libeth", as 7.1.3's
    ice_rxq_pp_create()): libeth MTU buffers, header buffers with header split; see skbsim.drivers.libeth."""
    from skbsim.drivers.libeth import libeth_open

    if values["rx"] == "legacy":
        raise InputError(f"option rx=legacy: ice's page_pool form ({kernel.profile.name}) has no legacy-rx")
    queue = libeth_open(kernel, "ice", dev, napi, values["mtu"], str(values["ring"]), values["hsplit"] == "on")
    netdev_set_gro(dev, values)
    return queue


def ice_open_queue(kernel: Kernel, dev: net_device, napi: napi_struct, options: dict[str, str] | None) -> ice_rx_ring:
    """ice_open() for one queue: ice_vsi_cfg_frame_size(), ice_setup_rx_ring(), ice_setup_rx_ctx(),
    then ice_alloc_rx_bufs(ICE_RX_DESC_UNUSED) - every descriptor but one gets a page.

    rx=legacy with an MTU above 8294 is the state reached by raising the MTU
    before setting the flag (ice_set_priv_flags() does not check the MTU).
    """
    values = parse_options("ice", OPTIONS, options)
    profile = kernel.profile
    if not ice_has_legacy_rx(profile):
        return ice_pp_open_queue(kernel, dev, napi, values)
    if values["hsplit"] == "on":
        raise InputError(f"option hsplit=on: ice of {profile.name} splits pages itself and has no header split "
                         "(ice_rx_buffers = page_split)")
    if profile.PAGE_SIZE >= 8192:
        raise InputError(f"ice: PAGE_SIZE {profile.PAGE_SIZE} is not modelled (its buffer reuse rule differs)")
    legacy = values["rx"] == "legacy"
    ring = ice_rx_ring(dev, napi, values["ring"], ice_rules_for(profile))
    dev.mtu = values["mtu"]
    netdev_set_gro(dev, values)
    ring.max_frame, ring.rx_buf_len = ice_vsi_cfg_frame_size(profile, dev.mtu, legacy)
    ring.rxmax = min(ring.max_frame, ICE_MAX_CHAINED_RX_BUFS * ring.rx_buf_len)
    ring.build_skb = not legacy
    ring.rx_offset = ice_skb_pad(profile) if ring.build_skb else 0
    ring.tail = 0
    ring.config = {
        "rx": values["rx"],
        "mtu": dev.mtu,
        "ring": ring.count,
        "rx_buf_len": ring.rx_buf_len,
        "max_frame": ring.max_frame,
        "rxmax": ring.rxmax,
        "rx_offset": ring.rx_offset,
        "page_order": ice_rx_pg_order(kernel, ring),
        "frame_sz": ice_rx_frame_truesize(kernel, ring),
        "rules": ring.rules.describe(),
    }
    ice_alloc_rx_bufs(kernel, ring, ice_rx_desc_unused(ring, ring.first_desc))
    return ring


def ice_nic_receive(kernel: Kernel, ring: ice_rx_ring, frame: Frame) -> bool:
    """The E810's receive DMA: the frame into ceil(len / rx_buf_len) posted descriptors.

    The NIC owns descriptors from where it last wrote up to the tail the
    driver wrote (next_to_use rounded down to a multiple of 8).  Frames
    above rxmax, or without enough descriptors, are dropped.
    """
    if type(ring) is not ice_rx_ring:  # the page_pool (libeth) form
        return _libeth().libeth_nic_receive(kernel, ring, frame)
    length = frame.length
    if length > ring.rxmax:
        ring.stats.oversize_drops += 1
        return False
    rx_buf_len = ring.rx_buf_len
    count = ring.count
    nbufs = -(-length // rx_buf_len)
    if (ring.tail - ring.hw_next) % count < nbufs:
        ring.stats.ring_drops += 1
        return False
    header = frame.header if frame.header is not None else frame_header(frame, ring.synthetic)
    remaining = length
    idx = ring.hw_next
    descs = ring.desc
    last = nbufs - 1
    for i in range(nbufs):
        desc = descs[idx]
        desc.pkt_len = size = remaining if remaining < rx_buf_len else rx_buf_len
        remaining -= size
        desc.eop = i == last
        desc.header = header if i == 0 else None
        desc.rss_hash = frame.rss_hash
        desc.dd = True
        idx += 1
        if idx == count:
            idx = 0
    ring.hw_next = idx
    ring.stats.nic_frames += 1
    return True


def ice_napi_poll(kernel: Kernel, ring: ice_rx_ring, budget: int, deliver: Deliver) -> int:
    """ice_txrx.c: ice_napi_poll() for a vector with this one RX ring (TX cleaning not modelled).

    Returns budget when the ring used all of it (or a refill failed), else
    completes NAPI (napi_complete_done(): GRO flushes) and returns
    min(work, budget - 1).
    """
    if type(ring) is not ice_rx_ring:  # the page_pool (libeth) form
        cleaned = _libeth().libeth_poll(kernel, ring, budget, deliver)
        return budget if cleaned >= budget else min(cleaned, budget - 1)
    ring.stats.polls += 1
    if budget <= 0:
        return budget
    with kernel.softirq(ring.napi.cpu):
        cleaned = ice_clean_rx_irq(kernel, ring, budget, deliver)
        if cleaned >= budget:
            return budget
        work_done = min(cleaned, budget - 1)
        napi_complete_done(kernel, ring.napi, work_done, deliver)
    return work_done


def ice_clean_rx_ring(kernel: Kernel, ring: ice_rx_ring) -> None:
    """ice_txrx.c: ice_clean_rx_ring() - drop a half-gathered frame, drain every page.

    Frames the NIC wrote that were never cleaned (a failing allocation kept
    them on the ring) are lost with it; they are counted in frames_dropped.
    """
    if type(ring) is not ice_rx_ring:  # the page_pool (libeth) form
        _libeth().libeth_close(kernel, ring)
        return
    stats = ring.stats
    idx = ring.next_to_clean
    for _ in range(stats.nic_frames - stats.frames - stats.frames_dropped):
        frame_len = 0
        while True:
            desc = ring.desc[idx]
            frame_len += desc.pkt_len
            idx = idx + 1 if idx + 1 < ring.count else 0
            if desc.eop:
                break
        stats.drop(frame_len)
    if ring.skb is not None:
        kfree_skb(kernel, ring.skb)
        ring.skb = None
    xdp = ring.xdp
    if xdp.data is not None:
        # xdp_return_buff(): the references the gathered buffers took go back.
        kernel.pages.put_page(kernel.pages.virt_to_head_page(xdp.data))
        for frag in xdp.frags:
            kernel.pages.put_page(frag.page)
        xdp.data = None
        xdp.frags = []
    for rx_buf in ring.rx_buf:
        if rx_buf.page is None:
            continue
        __page_frag_cache_drain(kernel, rx_buf.page, rx_buf.pagecnt_bias)
        rx_buf.page = None
        rx_buf.page_offset = 0
    for desc in ring.desc:
        desc.dd = False
        desc.header = None
    ring.next_to_alloc = ring.next_to_clean = ring.first_desc = ring.next_to_use = 0
    ring.hw_next = ring.tail = 0
    # ice_vsi_free_q_vectors() -> netif_napi_del(): what GRO still holds is freed.
    netif_napi_del(kernel, ring.napi)


def _libeth():
    from skbsim.drivers import libeth

    return libeth


DRIVER = Driver(
    name="ice",
    summary="Intel E800 series (ice): half-page buffers with page reuse; build_skb or legacy-rx header copy",
    options=OPTIONS,
    open_queue=ice_open_queue,
    nic_receive=ice_nic_receive,
    poll=ice_napi_poll,
    close_queue=ice_clean_rx_ring,
)
