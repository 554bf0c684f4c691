"""virtio_net's receive path, after drivers/net/virtio_net.c and include/linux/virtio_net.h.

Sources: drivers/net/virtio_net.c of Linux 6.1.192, 6.9.0, 6.12.117 and
6.18.35 (checked against the running 6.18.44), include/linux/virtio_net.h
for virtio_net_hdr_to_skb().  Function names are the driver's; one
:class:`receive_queue` is one RX virtqueue with its NAPI instance.

The three receive modes, chosen by the device's features as virtnet_probe()
chooses them:

- **mergeable** (VIRTIO_NET_F_MRG_RXBUF): every buffer is one piece of the
  queue's page frag (``rq->alloc_frag``, a 32 KiB block from
  skb_page_frag_refill(), a single page when that fails).  Its length is
  get_mergeable_buf_len(): the EWMA of received packet lengths
  (DECLARE_EWMA(pkt_len, 0, 64)) clamped to [min_buf_len, PAGE_SIZE -
  hdr_len], plus the header, aligned to L1_CACHE_BYTES; min_buf_len is
  mergeable_min_buf_len(): a 64 KiB packet (or the device MTU) spread over
  the ring, at least GOOD_PACKET_LEN (1518).  When the rest of the block
  is too small for another buffer it is added to the last one.  The device
  spreads a frame over as many buffers as it needs (num_buffers); the first
  becomes the skb head (build_skb() when the frame leaves room for
  skb_shared_info behind it, else a napi_alloc_skb(GOOD_COPY_LEN) head with
  the frame copied in when it fits, or just its Ethernet header), the others
  page frags, merged with the previous frag when contiguous in the same
  block (skb_coalesce_rx_frag()), chained as frag_list skbs after
  MAX_SKB_FRAGS.  Each buffer's truesize is its length, kept in the ring's
  per-buffer context.
- **big** (no MRG_RXBUF, guest GSO or MTU above 1500): every buffer is a
  chain of MAX_SKB_FRAGS + 1 pages (or ceil(mtu / PAGE_SIZE) + 1) taken from
  the queue's private page list; page_to_skb() builds the skb and gives
  unused pages back to the list.
- **small** (neither): one SKB_DATA_ALIGN(hdr + NET_SKB_PAD + 1518) +
  skb_shared_info piece of the page frag per frame, wrapped by build_skb().

Per-release differences (profile features, see docs/versions.md):
``virtio_rx_dma_record`` (a 16-byte struct virtnet_rq_dma at the start of
every frag block: 6.9 only with VIRTIO_F_ACCESS_PLATFORM, 6.18 always),
``virtio_rq_alloc_overflow_fix``, ``virtio_mrg_xdp_hole``,
``virtio_xdp_pass_skb``, ``virtio_refill_retry`` and ``virtio_rx_buffers``;
the core allocation behind napi_alloc_skb() and build_skb() follows the
profile as usual.

7.1 ('virtio_net: add page_pool support for buffer allocation', feature
``virtio_rx_buffers`` = "page_pool") takes mergeable and small buffers from
an order-0 page_pool of the ring's size instead of the frag block:
page_pool_alloc_va() of len + room, a page fragment whose page remainder is
folded into it when another buffer of that size would not fit (so the ring
context's truesize is what page_pool handed out), a whole page above half a
page (XDP buffers); no DMA record; skbs marked for recycling; buffers the
stack does not take go back with page_pool_put_page().  Big mode keeps its
private page list.

The device side is modelled as Firecracker and QEMU behave: buffers are
used in the order they were posted, each filled completely before the
next one, and a frame that does not find enough posted buffers is dropped
(real devices hold it back instead).  The device writes a virtio-net
header built from the frame (:func:`virtio_net_hdr_for_frame`), or the one
the caller gives (:func:`virtnet_device_rx`, which ``skbsim validate``
uses to replay traced frames).

skbs go to GRO (skbsim.net.gro.napi_gro_receive()); a poll that ends
below its budget completes NAPI, which flushes GRO.  Not modelled: multiple queues, XDP
programs other than one that passes every frame, XDP multi-buffer, AF_XDP,
hash reports, UDP tunnel headers, device errors (lengths the device should
never write), and page reuse by skb_page_frag_refill() while buffers of
the block are still posted (it needs the whole ring drained).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from skbsim.drivers.base import (
    GRO_OPTIONS,
    Deliver,
    Driver,
    DriverOption,
    RxQueueStats,
    choice_option,
    frame_header,
    int_option,
    netdev_set_gro,
    parse_options,
    synthetic_header_template,
)
from skbsim.errors import InputError
from skbsim.mm.gfp import GFP_ATOMIC, GFP_KERNEL, __GFP_COMP, __GFP_DIRECT_RECLAIM, __GFP_NORETRY, __GFP_NOWARN
from skbsim.net.core_sock import SKB_FRAG_PAGE_SIZE, page_frag, skb_page_frag_refill
from skbsim.net.ethernet import ETH_DATA_LEN, ETH_HLEN, VLAN_HLEN, eth_type_trans
from skbsim.net.gro import napi_complete_done, napi_gro_receive, netif_napi_del
from skbsim.net.page_pool import (
    PP_FLAG_DMA_MAP,
    PP_FLAG_DMA_SYNC_DEV,
    page_pool_alloc,
    page_pool_create,
    page_pool_destroy,
    page_pool_params,
    page_pool_put_page,
    skb_mark_for_recycle,
)
from skbsim.net.skbuff import (
    CHECKSUM_PARTIAL,
    CHECKSUM_UNNECESSARY,
    SKB_GSO_DODGY,
    SKB_GSO_TCP_ECN,
    SKB_GSO_TCPV4,
    SKB_GSO_TCPV6,
    __skb_put,
    alloc_skb,
    build_skb,
    kfree_skb,
    napi_alloc_skb,
    pskb_may_pull,
    skb_add_rx_frag,
    skb_can_coalesce,
    skb_coalesce_rx_frag,
    skb_put,
    skb_reserve,
    skb_tailroom,
)

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.mm.page_alloc import Page
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import sk_buff
    from skbsim.profile import Profile
    from skbsim.traffic.frame import Frame

# drivers/net/virtio_net.c
GOOD_PACKET_LEN = ETH_HLEN + VLAN_HLEN + ETH_DATA_LEN
GOOD_COPY_LEN = 128
MRG_CTX_HEADER_SHIFT = 22
#: DECLARE_EWMA(pkt_len, 0, 64): precision 0, weight reciprocal 64 (log2 6).
EWMA_PKT_LEN_WEIGHT_RCP_LOG2 = 6
#: sizeof(struct virtnet_rq_dma): dma_addr_t addr, u32 ref, u16 len, u16 need_sync.
VIRTNET_RQ_DMA_SIZE = 16
#: sizeof(struct padded_vnet_hdr): struct virtio_net_hdr_v1_hash (20) + 12 bytes of padding.
PADDED_VNET_HDR_SIZE = 32
# include/uapi/linux/virtio_net.h
VIRTIO_NET_HDR_SIZE = 10             # struct virtio_net_hdr
VIRTIO_NET_HDR_MRG_RXBUF_SIZE = 12   # struct virtio_net_hdr_mrg_rxbuf
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_ECN = 0x80
# include/linux/skbuff.h: the UDP gso types virtio_net_hdr_to_skb() sets (the TCP ones are skbuff's)
SKB_GSO_UDP = 1 << 16
SKB_GSO_UDP_L4 = 1 << 17
# include/uapi/linux/bpf.h, include/linux/if_ether.h, include/net/ip.h
XDP_PACKET_HEADROOM = 256
ETH_MIN_MTU = 68
ETH_MAX_MTU = 0xFFFF
IP_MAX_MTU = 0xFFFF
IPPROTO_TCP = 6
IPPROTO_UDP = 17
TCPHDR_SIZE = 20
UDPHDR_SIZE = 8
TCP_CHECK_OFFSET = 16   # offsetof(struct tcphdr, check)
UDP_CHECK_OFFSET = 6    # offsetof(struct udphdr, check)
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
U32_MASK = 0xFFFFFFFF

ENOMEM = 12
ENOSPC = 28

RING_DEFAULT = 256     # QEMU's and Firecracker's RX queue size
RING_MIN = 2
RING_MAX = 32768


# -- integer formulas (one place each) -------------------------------------------------------


def ewma_pkt_len_add(internal: int, val: int) -> int:
    """include/linux/average.h: ewma_pkt_len_add() for DECLARE_EWMA(pkt_len, 0, 64).

    The first sample is taken as it is; then internal = (63 * internal + val) / 64,
    rounded down.
    """
    if not internal:
        return val
    return ((internal << EWMA_PKT_LEN_WEIGHT_RCP_LOG2) - internal + val) >> EWMA_PKT_LEN_WEIGHT_RCP_LOG2


def mergeable_min_buf_len(hdr_len: int, rq_size: int, packet_len: int) -> int:
    """virtio_net.c: mergeable_min_buf_len() - the smallest mergeable buffer (without header).

    A packet of packet_len (IP_MAX_MTU with guest GSO, else the device's
    max MTU) plus Ethernet, VLAN and virtio-net headers spread over the
    whole ring, but never below GOOD_PACKET_LEN.
    """
    buf_len = hdr_len + ETH_HLEN + VLAN_HLEN + packet_len
    min_buf_len = -(-buf_len // rq_size)
    return max(max(min_buf_len, hdr_len) - hdr_len, GOOD_PACKET_LEN)


def get_mergeable_buf_len(ewma: int, min_buf_len: int, hdr_len: int, room: int, page_size: int,
                          l1_cache_bytes: int) -> int:
    """virtio_net.c: get_mergeable_buf_len() - the data length of the next mergeable buffer.

    With XDP room: PAGE_SIZE - room.  Otherwise hdr_len + the EWMA clamped
    to [min_buf_len, PAGE_SIZE - hdr_len], aligned up to L1_CACHE_BYTES.
    """
    if room:
        return page_size - room
    length = hdr_len + min(max(ewma, min_buf_len), page_size - hdr_len)
    return (length + l1_cache_bytes - 1) & ~(l1_cache_bytes - 1)


def mergeable_buf_carve(offset: int, frag_size: int, length: int, room: int, headroom: int, dma_record: bool,
                        overflow_fix: bool, fold_with_headroom: bool) -> tuple[int, int, int]:
    """add_recvbuf_mergeable() after skb_page_frag_refill(): where the buffer goes in the frag block.

    Returns (start, len, new offset): the buffer occupies [start, start +
    len + room) of the block (its data begins headroom bytes in), the ring
    gets len.  A block starting with a DMA record (virtnet_rq_alloc()) has
    its first buffer at sizeof(struct virtnet_rq_dma); 6.13+ first shortens a
    buffer that would then overfill the block.  When less than len + room
    is left behind the buffer, the rest goes to it (not with XDP headroom
    from 6.3) and the next buffer starts a new block.  The hole is an
    unsigned difference, as in the kernel: an overfilled block (6.9 with the
    DMA record on a single page) leaves a huge hole, so nothing is folded.
    """
    if overflow_fix and not offset and length + room + VIRTNET_RQ_DMA_SIZE > frag_size:
        length -= VIRTNET_RQ_DMA_SIZE
    if dma_record and not offset:
        offset = VIRTNET_RQ_DMA_SIZE
    start = offset
    offset += length + room
    hole = (frag_size - offset) & U32_MASK
    if hole < length + room:
        if not headroom or fold_with_headroom:
            length += hole
        offset += hole
    return start, length, offset


def small_buf_len(hdr_len: int, net_skb_pad: int, net_ip_align: int, xdp_headroom: int, shinfo_size: int,
                  smp_cache_bytes: int) -> int:
    """add_recvbuf_small(): SKB_DATA_ALIGN(hdr + VIRTNET_RX_PAD + GOOD_PACKET_LEN + xdp headroom) + shinfo."""
    length = hdr_len + net_ip_align + net_skb_pad + GOOD_PACKET_LEN + xdp_headroom
    return ((length + smp_cache_bytes - 1) & ~(smp_cache_bytes - 1)) + shinfo_size


def mergeable_len_to_ctx(truesize: int, headroom: int) -> int:
    """virtio_net.c: mergeable_len_to_ctx() - truesize and headroom in one word."""
    return (headroom << MRG_CTX_HEADER_SHIFT) | truesize


def mergeable_ctx_to_truesize(ctx: int) -> int:
    return ctx & ((1 << MRG_CTX_HEADER_SHIFT) - 1)


def mergeable_ctx_to_headroom(ctx: int) -> int:
    return ctx >> MRG_CTX_HEADER_SHIFT


# -- the virtio-net header ---------------------------------------------------------------------


class virtio_net_hdr:
    """include/uapi/linux/virtio_net.h: struct virtio_net_hdr_mrg_rxbuf, as the device writes it."""

    __slots__ = ("flags", "gso_type", "hdr_len", "gso_size", "csum_start", "csum_offset", "num_buffers")

    def __init__(self, flags: int = 0, gso_type: int = VIRTIO_NET_HDR_GSO_NONE, gso_size: int = 0,
                 csum_start: int = 0, csum_offset: int = 0, hdr_len: int = 0):
        self.flags = flags
        self.gso_type = gso_type
        self.hdr_len = hdr_len
        self.gso_size = gso_size
        self.csum_start = csum_start
        self.csum_offset = csum_offset
        self.num_buffers = 1

    def __repr__(self) -> str:
        return (f"virtio_net_hdr(flags={self.flags}, gso_type={self.gso_type}, gso_size={self.gso_size}, "
                f"csum_start={self.csum_start}, csum_offset={self.csum_offset})")


def _l3_l4(header: bytes) -> tuple[int, int, int] | None:
    """(ethertype, offset of the L4 header, IP protocol) of an untagged IPv4/IPv6 frame, else None."""
    if len(header) < ETH_HLEN + 20:
        return None
    proto = header[12] << 8 | header[13]
    if proto == ETH_P_IP:
        return proto, ETH_HLEN + (header[ETH_HLEN] & 0x0F) * 4, header[ETH_HLEN + 9]
    if proto == ETH_P_IPV6 and len(header) >= ETH_HLEN + 40:
        return proto, ETH_HLEN + 40, header[ETH_HLEN + 6]
    return None


def virtio_net_hdr_for_frame(header: bytes, length: int, mtu: int, csum: str, gso: bool) -> virtio_net_hdr:
    """The header a host writes for a frame: what tun/vhost's virtio_net_hdr_from_skb() would give.

    ``csum`` is how the host hands checksums over: 'partial' (NEEDS_CSUM
    with csum_start/offset of the TCP or UDP header: skbs from a local
    stack or host GRO), 'valid' (DATA_VALID: checked by a physical NIC) or
    'none'.  A TCP frame longer than the MTU is a GSO packet when the guest
    takes GSO (``gso``): TCPV4/TCPV6 with gso_size = MTU - IP - TCP header.
    """
    l3l4 = _l3_l4(header)
    hdr = virtio_net_hdr()
    if l3l4 is None:
        return hdr
    proto, l4_off, ip_proto = l3l4
    if ip_proto not in (IPPROTO_TCP, IPPROTO_UDP):
        return hdr
    if csum == "partial":
        hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM
        hdr.csum_start = l4_off
        hdr.csum_offset = TCP_CHECK_OFFSET if ip_proto == IPPROTO_TCP else UDP_CHECK_OFFSET
    elif csum == "valid":
        hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID
    if gso and ip_proto == IPPROTO_TCP and length - ETH_HLEN > mtu:
        hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4 if proto == ETH_P_IP else VIRTIO_NET_HDR_GSO_TCPV6
        hdr.gso_size = mtu - (l4_off - ETH_HLEN) - TCPHDR_SIZE
        hdr.hdr_len = l4_off + TCPHDR_SIZE
    return hdr


def virtio_net_hdr_to_skb(kernel: Kernel, skb: sk_buff, hdr: virtio_net_hdr, header: bytes) -> int:
    """include/linux/virtio_net.h: virtio_net_hdr_to_skb() - 0, or -EINVAL (the frame is dropped).

    Runs before eth_type_trans(), so offsets count from the MAC header.
    NEEDS_CSUM: the bytes up to csum_start + max(transport header,
    csum_offset + 2) are pulled into the head, then up to the transport
    header's end; the skb becomes CHECKSUM_PARTIAL.  A GSO frame without
    NEEDS_CSUM is dissected (from ``header``, the frame's first bytes) and
    pulled up to its transport header's end.  gso_size and gso_type are set
    (with SKB_GSO_DODGY) when the payload exceeds gso_size.
    """
    gso_type = 0
    thlen = 0
    ip_proto = 0
    base = hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE:
        if base == VIRTIO_NET_HDR_GSO_TCPV4:
            gso_type, ip_proto, thlen = SKB_GSO_TCPV4, IPPROTO_TCP, TCPHDR_SIZE
        elif base == VIRTIO_NET_HDR_GSO_TCPV6:
            gso_type, ip_proto, thlen = SKB_GSO_TCPV6, IPPROTO_TCP, TCPHDR_SIZE
        elif base == VIRTIO_NET_HDR_GSO_UDP:
            gso_type, ip_proto, thlen = SKB_GSO_UDP, IPPROTO_UDP, UDPHDR_SIZE
        elif base == VIRTIO_NET_HDR_GSO_UDP_L4:
            gso_type, ip_proto, thlen = SKB_GSO_UDP_L4, IPPROTO_UDP, UDPHDR_SIZE
        else:
            return -22
        if hdr.gso_type & VIRTIO_NET_HDR_GSO_ECN:
            gso_type |= SKB_GSO_TCP_ECN
        if not hdr.gso_size:
            return -22
    p_off = 0
    if hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
        start, off = hdr.csum_start, hdr.csum_offset
        if not pskb_may_pull(kernel, skb, start + max(thlen, off + 2)):
            return -22
        skb.ip_summed = CHECKSUM_PARTIAL  # skb_partial_csum_set()
        p_off = start + thlen
        if not pskb_may_pull(kernel, skb, p_off):
            return -22
    elif gso_type:
        l3l4 = _l3_l4(header)
        if l3l4 is None or l3l4[2] != ip_proto:
            return -22
        p_off = l3l4[1] + thlen
        if not pskb_may_pull(kernel, skb, p_off):
            return -22
    if gso_type:
        nh_off = p_off - thlen if gso_type & SKB_GSO_UDP else p_off
        if skb.len - nh_off > hdr.gso_size:
            shinfo = skb.shinfo
            shinfo.gso_size = hdr.gso_size
            shinfo.gso_type = gso_type | SKB_GSO_DODGY
            shinfo.gso_segs = 0
    return 0


# -- the virtqueue and the device --------------------------------------------------------------


class vring_used_elem:
    """One buffer the device has used: the driver's token, the bytes written, the context.

    The first buffer of a frame also carries the header the device wrote
    and the frame's leading bytes (the model keeps no other payload).
    """

    __slots__ = ("token", "len", "ctx", "ndesc", "hdr", "header", "frame_len")

    def __init__(self, token, length: int, ctx: int, ndesc: int):
        self.token = token
        self.len = length
        self.ctx = ctx
        self.ndesc = ndesc
        self.hdr: virtio_net_hdr | None = None
        self.header: bytes | None = None
        self.frame_len = 0


class virtqueue:
    """drivers/virtio/virtio_ring.c: a split virtqueue as the receive path sees it.

    ``avail`` holds what the driver posted and the device has not used yet
    (token, sg length, context, descriptors), in order; ``used`` what the
    device wrote and the driver has not taken.  ``num_free`` counts
    descriptors in neither.
    """

    __slots__ = ("num", "num_free", "avail", "used", "indirect")

    def __init__(self, num: int, indirect: bool):
        self.num = num
        self.num_free = num
        self.avail: deque[tuple[object, int, int, int]] = deque()
        self.used: deque[vring_used_elem] = deque()
        self.indirect = indirect


def virtqueue_add_inbuf_ctx(vq: virtqueue, token, sg_len: int, ctx: int, nsg: int = 1) -> int:
    """virtio_ring.c: virtqueue_add_inbuf_ctx() - post one buffer; -ENOSPC without descriptors.

    A chain of several sg entries takes one descriptor when indirect
    descriptors were negotiated, else one per entry.
    """
    ndesc = 1 if nsg == 1 or vq.indirect else nsg
    if vq.num_free < ndesc:
        return -ENOSPC
    vq.num_free -= ndesc
    vq.avail.append((token, sg_len, ctx, ndesc))
    return 0


def virtqueue_get_buf_ctx(vq: virtqueue) -> vring_used_elem | None:
    """virtio_ring.c: virtqueue_get_buf_ctx() - the next used buffer; its descriptors are free again."""
    if not vq.used:
        return None
    elem = vq.used.popleft()
    vq.num_free += elem.ndesc
    return elem


# -- queue state -------------------------------------------------------------------------------


class virtnet_rq_dma:
    """virtio_net.c: struct virtnet_rq_dma - the record at the start of a premapped frag block.

    ``ref`` counts the posted buffers cut from the block, plus one while the
    block is the queue's current one (rq->last_dma); the block holds one
    page reference of its own until ``ref`` drops to zero.
    """

    __slots__ = ("page", "ref")

    def __init__(self, page: Page):
        self.page = page
        self.ref = 0


class virtnet_rules:
    """The profile's virtio_net features, read once per queue."""

    __slots__ = ("dma_record", "overflow_fix", "xdp_hole_fold", "xdp_pass_page_to_skb", "refill_repoll", "page_pool")

    def __init__(self, profile: Profile, dma_api: bool):
        record = profile.feature("virtio_rx_dma_record")
        self.page_pool = profile.feature("virtio_rx_buffers") == "page_pool"
        # page_pool buffers carry no DMA record: page_pool maps the pages (PP_FLAG_DMA_MAP).
        self.dma_record = not self.page_pool and (record == "always" or (record == "with_dma_api" and dma_api))
        self.overflow_fix = profile.has("virtio_rq_alloc_overflow_fix")
        self.xdp_hole_fold = profile.feature("virtio_mrg_xdp_hole") == "fold"
        self.xdp_pass_page_to_skb = profile.feature("virtio_xdp_pass_skb") == "page_to_skb"
        self.refill_repoll = profile.feature("virtio_refill_retry") == "repoll"


class receive_queue:
    """virtio_net.c: struct receive_queue, with the parts of struct virtnet_info it reads.

    ``mode`` is 'mergeable', 'big' or 'small'; ``dma`` maps a premapped
    frag block's pfn to its :class:`virtnet_rq_dma`; ``pages`` is the
    big-mode page list (rq->pages), last element first out; ``page_pool``
    the queue's pool (7.1, mergeable and small mode), listed in
    ``page_pools`` for its statistics (None without one).
    """

    __slots__ = (
        "driver", "dev", "napi", "stats", "config", "last_path", "rules", "mode", "vq", "hdr_len",
        "xdp_headroom", "big_packets_num_skbfrags", "mrg_avg_pkt_len", "min_buf_len", "alloc_frag",
        "last_dma", "dma", "premapped", "pages", "refill_pending", "csum", "gso", "mtu", "max_frame",
        "synthetic", "q_index", "gro_entry", "page_pool", "page_pools",
    )

    def __init__(self, dev: net_device, napi: napi_struct):
        self.driver = "virtio_net"
        self.dev = dev
        self.napi = napi
        self.stats = RxQueueStats()
        self.config: dict = {}
        self.last_path = ""
        self.rules: virtnet_rules | None = None
        self.mode = "mergeable"
        self.vq = virtqueue(RING_DEFAULT, False)
        self.hdr_len = VIRTIO_NET_HDR_MRG_RXBUF_SIZE
        self.xdp_headroom = 0
        self.big_packets_num_skbfrags = 0
        self.mrg_avg_pkt_len = 0
        self.min_buf_len = 0
        self.alloc_frag = page_frag()
        self.last_dma: virtnet_rq_dma | None = None
        self.dma: dict[int, virtnet_rq_dma] = {}
        self.premapped = False
        self.pages: list[Page] = []
        self.refill_pending = False
        self.csum = "partial"
        self.gso = True
        self.mtu = ETH_DATA_LEN
        self.max_frame = 0
        self.synthetic = synthetic_header_template()
        self.q_index = 0
        # Called with every skb as napi_gro_receive() gets it (the napi_gro_receive_entry
        # tracepoint of the model), or None.
        self.gro_entry = None
        self.page_pool = None
        self.page_pools = None


def virtnet_get_headroom(rq: receive_queue) -> int:
    """virtio_net.c: virtnet_get_headroom() - XDP_PACKET_HEADROOM while an XDP program is attached."""
    return rq.xdp_headroom


# -- premapped frag blocks (virtnet_rq_alloc / virtnet_rq_unmap) -------------------------------


def virtnet_rq_unmap(kernel: Kernel, rq: receive_queue, dma: virtnet_rq_dma) -> None:
    """virtio_net.c: virtnet_rq_unmap() - one use of the block's mapping ends; the last unmaps it."""
    dma.ref -= 1
    if dma.ref:
        return
    del rq.dma[dma.page.pfn]
    kernel.pages.put_page(dma.page)


def virtnet_rq_alloc(kernel: Kernel, rq: receive_queue, start: int, size: int) -> int:
    """virtio_net.c: virtnet_rq_alloc() - take size bytes at ``start`` of the current frag block.

    ``start`` comes from :func:`mergeable_buf_carve` (or the small-mode
    layout).  A premapped queue sets up the block's DMA record when the
    block is new (offset 0): the previous block's record loses its extra
    reference, the new one gets a page reference and ref 1.  Every buffer
    takes a page reference and, premapped, a record reference.  Returns the
    buffer's address.
    """
    frag = rq.alloc_frag
    page = frag.page
    pages = kernel.pages
    if rq.premapped:
        if not frag.offset:
            if rq.last_dma is not None:
                virtnet_rq_unmap(kernel, rq, rq.last_dma)
                rq.last_dma = None
            dma = virtnet_rq_dma(page)
            rq.dma[page.pfn] = dma
            pages.get_page(page)
            dma.ref = 1
            rq.last_dma = dma
        rq.dma[page.pfn].ref += 1
    pages.get_page(page)
    return pages.page_address(page) + start


def virtnet_put_page(kernel: Kernel, rq: receive_queue, page: Page, allow_direct: bool) -> None:
    """A buffer's page the stack did not take: page_pool_put_page() on a page_pool queue (7.1), put_page()
    otherwise."""
    if rq.page_pool is not None:
        page_pool_put_page(kernel, rq.page_pool, page, -1, allow_direct)
    else:
        kernel.pages.put_page(page)


def virtnet_rq_put_buf(kernel: Kernel, rq: receive_queue, buf: int) -> None:
    """A buffer leaves the ring: on a premapped queue its share of the block's mapping ends."""
    if rq.premapped:
        page = kernel.pages.virt_to_head_page(buf)
        virtnet_rq_unmap(kernel, rq, rq.dma[page.pfn])


def virtnet_rq_get_buf(kernel: Kernel, rq: receive_queue) -> vring_used_elem | None:
    """virtio_net.c: virtnet_rq_get_buf() - the next used buffer, unmapped (big mode: plain get_buf)."""
    elem = virtqueue_get_buf_ctx(rq.vq)
    if elem is not None and rq.mode != "big":
        virtnet_rq_put_buf(kernel, rq, elem.token)
    return elem


# -- posting buffers -----------------------------------------------------------------------------


def add_recvbuf_mergeable(kernel: Kernel, rq: receive_queue, gfp: int) -> int:
    """virtio_net.c: add_recvbuf_mergeable() - one buffer of get_mergeable_buf_len() bytes; 0 or -errno."""
    profile = kernel.profile
    rules = rq.rules
    headroom = virtnet_get_headroom(rq)
    tailroom = profile.sizeof_skb_shared_info if headroom else 0
    room = profile.SKB_DATA_ALIGN(headroom + tailroom)
    length = get_mergeable_buf_len(rq.mrg_avg_pkt_len, rq.min_buf_len, rq.hdr_len, room, profile.PAGE_SIZE,
                                   profile.L1_CACHE_BYTES)
    if rq.page_pool is not None:
        return add_recvbuf_mergeable_pp(kernel, rq, length, headroom, room, gfp)
    frag = rq.alloc_frag
    refills = frag.refills
    if not skb_page_frag_refill(kernel, length + room, frag, gfp):
        rq.stats.buffer_alloc_failures += 1
        return -ENOMEM
    rq.stats.pages_allocated += frag.refills - refills
    start, length, offset = mergeable_buf_carve(frag.offset, frag.size, length, room, headroom, rq.premapped,
                                                rules.overflow_fix, rules.xdp_hole_fold)
    buf = virtnet_rq_alloc(kernel, rq, start, length + room) + headroom
    frag.offset = offset
    truesize = length if rules.xdp_hole_fold else length + room
    if kernel.explain is not None:
        kernel.note(f"add_recvbuf_mergeable: buffer of {length} bytes at offset {start + headroom} of a "
                    f"{frag.size}-byte frag block (EWMA {rq.mrg_avg_pkt_len}, min_buf_len {rq.min_buf_len})")
    err = virtqueue_add_inbuf_ctx(rq.vq, buf, length, mergeable_len_to_ctx(truesize, headroom))
    if err < 0:
        virtnet_rq_put_buf(kernel, rq, buf)
        kernel.pages.put_page(kernel.pages.virt_to_head_page(buf))
    return err


def add_recvbuf_mergeable_pp(kernel: Kernel, rq: receive_queue, length: int, headroom: int, room: int,
                             gfp: int) -> int:
    """add_recvbuf_mergeable() of 7.1: page_pool_alloc_va(len + room); without XDP headroom the buffer takes
    whatever page_pool handed out (a folded remainder included), and the context's truesize says so."""
    asked = length + room
    page, offset, alloc_len = page_pool_alloc(kernel, rq.page_pool, asked, gfp)
    if page is None:
        rq.stats.buffer_alloc_failures += 1
        return -ENOMEM
    buf = kernel.pages.page_address(page) + offset + headroom
    if not headroom:
        length = alloc_len - room
    if kernel.explain is not None:
        kernel.note(f"add_recvbuf_mergeable: page_pool_alloc_va({asked}) gave {alloc_len} bytes at offset {offset} "
                    f"of a page: a {length}-byte buffer (EWMA {rq.mrg_avg_pkt_len}, min_buf_len {rq.min_buf_len})")
    err = virtqueue_add_inbuf_ctx(rq.vq, buf, length, mergeable_len_to_ctx(length + room, headroom))
    if err < 0:
        page_pool_put_page(kernel, rq.page_pool, page, -1, False)
    return err


def add_recvbuf_small(kernel: Kernel, rq: receive_queue, gfp: int) -> int:
    """virtio_net.c: add_recvbuf_small() - one build_skb()-ready piece for a frame of up to 1518 bytes."""
    profile = kernel.profile
    xdp_headroom = virtnet_get_headroom(rq)
    length = small_buf_len(rq.hdr_len, profile.NET_SKB_PAD, profile.NET_IP_ALIGN, xdp_headroom,
                           profile.SHINFO_SIZE, profile.SMP_CACHE_BYTES)
    if rq.page_pool is not None:
        # 7.1: a page_pool fragment (with any folded remainder); the context holds its length for build_skb().
        page, offset, alloc_len = page_pool_alloc(kernel, rq.page_pool, length, gfp)
        if page is None:
            rq.stats.buffer_alloc_failures += 1
            return -ENOMEM
        buf = kernel.pages.page_address(page) + offset + profile.NET_IP_ALIGN + profile.NET_SKB_PAD + xdp_headroom
        err = virtqueue_add_inbuf_ctx(rq.vq, buf, rq.hdr_len + GOOD_PACKET_LEN,
                                      mergeable_len_to_ctx(alloc_len, xdp_headroom))
        if err < 0:
            page_pool_put_page(kernel, rq.page_pool, page, -1, False)
        return err
    frag = rq.alloc_frag
    refills = frag.refills
    if not skb_page_frag_refill(kernel, length, frag, gfp):
        rq.stats.buffer_alloc_failures += 1
        return -ENOMEM
    rq.stats.pages_allocated += frag.refills - refills
    start = VIRTNET_RQ_DMA_SIZE if rq.premapped and not frag.offset else frag.offset
    buf = virtnet_rq_alloc(kernel, rq, start, length)
    frag.offset = start + length
    buf += profile.NET_IP_ALIGN + profile.NET_SKB_PAD + xdp_headroom
    err = virtqueue_add_inbuf_ctx(rq.vq, buf, rq.hdr_len + GOOD_PACKET_LEN, xdp_headroom)
    if err < 0:
        virtnet_rq_put_buf(kernel, rq, buf)
        kernel.pages.put_page(kernel.pages.virt_to_head_page(buf))
    return err


def give_pages(rq: receive_queue, chain: list[Page]) -> None:
    """virtio_net.c: give_pages() - a chain of pages back to the front of rq->pages."""
    rq.pages.extend(reversed(chain))


def get_a_page(kernel: Kernel, rq: receive_queue, gfp: int) -> Page | None:
    """virtio_net.c: get_a_page() - the first page of rq->pages, else a new one."""
    if rq.pages:
        return rq.pages.pop()
    page = kernel.pages.alloc_pages(gfp, 0, "virtio_net get_a_page")
    if page is not None:
        rq.stats.pages_allocated += 1
    return page


def add_recvbuf_big(kernel: Kernel, rq: receive_queue, gfp: int) -> int:
    """virtio_net.c: add_recvbuf_big() - a chain of big_packets_num_skbfrags + 1 pages.

    The header sg and the first data sg share the first page (data at
    sizeof(struct padded_vnet_hdr)); every other sg is a whole page.  The
    token is the chain, first page first.
    """
    page_size = kernel.profile.PAGE_SIZE
    rest: list[Page] = []
    for _ in range(rq.big_packets_num_skbfrags):
        page = get_a_page(kernel, rq, gfp)
        if page is None:
            give_pages(rq, list(reversed(rest)))
            rq.stats.buffer_alloc_failures += 1
            return -ENOMEM
        rest.append(page)
    first = get_a_page(kernel, rq, gfp)
    if first is None:
        give_pages(rq, list(reversed(rest)))
        rq.stats.buffer_alloc_failures += 1
        return -ENOMEM
    # Pages were taken for the last sg first; the chain runs in sg order.
    chain = [first] + list(reversed(rest))
    capacity = rq.hdr_len + page_size - PADDED_VNET_HDR_SIZE + rq.big_packets_num_skbfrags * page_size
    err = virtqueue_add_inbuf_ctx(rq.vq, chain, capacity, 0, rq.big_packets_num_skbfrags + 2)
    if err < 0:
        give_pages(rq, chain)
    return err


def try_fill_recv(kernel: Kernel, rq: receive_queue, gfp: int) -> bool:
    """virtio_net.c: try_fill_recv() - post buffers until the ring is full; False only on -ENOMEM."""
    add = {"mergeable": add_recvbuf_mergeable, "big": add_recvbuf_big, "small": add_recvbuf_small}[rq.mode]
    err = 0
    vq = rq.vq
    while vq.num_free:
        err = add(kernel, rq, gfp)
        if err:
            break
    return err != -ENOMEM


# -- building skbs -------------------------------------------------------------------------------


def _built_on_buffer(rq: receive_queue, skb: sk_buff, how: str) -> None:
    """Where an skb built around a receive buffer came from (for reports)."""
    skb.head_source = "virtio_net rx buffer"
    skb.path = "build_skb"
    rq.last_path = how


def page_to_skb(kernel: Kernel, rq: receive_queue, page: Page, offset: int, length: int, truesize: int,
                headroom: int, chain: list[Page] | None = None) -> sk_buff | None:
    """virtio_net.c: page_to_skb() - the skb of the first buffer of a frame.

    ``length`` includes the virtio-net header.  The frame goes into the
    buffer itself (build_skb(), truesize the buffer's) when it is longer
    than GOOD_COPY_LEN and skb_shared_info fits behind it (never with
    NET_IP_ALIGN); otherwise into a napi_alloc_skb(GOOD_COPY_LEN) head:
    all of it if it fits the head's tailroom, else its Ethernet header, the
    rest staying in the buffer as frag 0 (mergeable) or in the chain's pages
    (big).  Big mode passes the page ``chain``; pages it does not use go
    back to rq->pages.
    """
    profile = kernel.profile
    pages = kernel.pages
    hdr_len = rq.hdr_len
    hdr_padded_len = hdr_len if rq.mode == "mergeable" else PADDED_VNET_HDR_SIZE
    p = pages.page_address(page) + offset
    buf = p - headroom
    length -= hdr_len
    offset += hdr_padded_len
    p += hdr_padded_len
    tailroom = truesize - headroom - hdr_padded_len - length
    explain = kernel.explain is not None
    if not profile.NET_IP_ALIGN and length > GOOD_COPY_LEN and tailroom >= profile.SHINFO_SIZE:
        skb = build_skb(kernel, buf, truesize)
        if skb is None:
            return None
        skb_reserve(skb, p - buf)
        skb_put(skb, length)
        _built_on_buffer(rq, skb, "page_to_skb build_skb")
        if explain:
            kernel.note(f"page_to_skb: {length} bytes > GOOD_COPY_LEN {GOOD_COPY_LEN} and {tailroom} bytes "
                        f"behind them hold skb_shared_info: build_skb() on the {truesize}-byte buffer")
        if chain is not None and len(chain) > 1:
            give_pages(rq, chain[1:])
        return skb

    skb = napi_alloc_skb(kernel, rq.napi, GOOD_COPY_LEN)
    if skb is None:
        return None
    copy = length if length <= skb_tailroom(skb) else ETH_HLEN
    __skb_put(skb, copy)
    rq.stats.bytes_copied += copy
    length -= copy
    offset += copy
    if explain:
        kernel.note(f"page_to_skb: napi_alloc_skb({GOOD_COPY_LEN}) head, {copy} bytes copied "
                    f"({'the whole frame' if not length else 'the Ethernet header'}), {length} left in the buffer")
    rq.last_path = "page_to_skb copy"
    if rq.mode == "mergeable":
        if length:
            skb_add_rx_frag(skb, 0, page, offset, length, truesize)
        else:
            rq.stats.buffers_copied += 1
            virtnet_put_page(kernel, rq, page, True)
        return skb
    index = 0
    page_size = profile.PAGE_SIZE
    while length:
        frag_size = min(page_size - offset, length)
        skb_add_rx_frag(skb, skb.shinfo.nr_frags, chain[index], offset, frag_size, truesize)
        length -= frag_size
        index += 1
        offset = 0
    if index < len(chain):
        if not index:
            rq.stats.buffers_copied += 1
        give_pages(rq, chain[index:])
    return skb


def virtnet_skb_append_frag(kernel: Kernel, rq: receive_queue, head_skb: sk_buff, curr_skb: sk_buff, page: Page,
                            buf: int, length: int, truesize: int) -> sk_buff | None:
    """virtio_net.c: virtnet_skb_append_frag() (inline in receive_mergeable() up to 6.9).

    The buffer joins the current skb as a new frag, or extends the last
    one when it continues it in the same block; after MAX_SKB_FRAGS a new
    alloc_skb(0) is chained on the head's frag_list and counted in the
    head's truesize.  Returns the skb now being filled, None when the
    chained skb cannot be allocated.  With page_pool buffers (7.1) a chained
    skb is marked for recycling like the head and a coalesced buffer's extra
    page reference goes back to the pool.
    """
    num_skb_frags = curr_skb.shinfo.nr_frags
    if num_skb_frags == kernel.profile.MAX_SKB_FRAGS:
        nskb = alloc_skb(kernel, 0, GFP_ATOMIC)
        if nskb is None:
            return None
        if head_skb.pp_recycle:
            skb_mark_for_recycle(nskb)
        # The first goes to the head's frag_list, later ones to the previous one's ->next.
        if head_skb.shinfo.frag_list is None:
            head_skb.shinfo.frag_list = []
        head_skb.shinfo.frag_list.append(nskb)
        curr_skb = nskb
        head_skb.truesize += nskb.truesize
        num_skb_frags = 0
    if curr_skb is not head_skb:
        head_skb.data_len += length
        head_skb.len += length
        head_skb.truesize += truesize
    offset = buf - kernel.pages.page_address(page)
    if skb_can_coalesce(curr_skb, num_skb_frags, page, offset):
        virtnet_put_page(kernel, rq, page, True)
        skb_coalesce_rx_frag(curr_skb, num_skb_frags - 1, length, truesize)
    else:
        skb_add_rx_frag(curr_skb, num_skb_frags, page, offset, length, truesize)
    return curr_skb


def _drop_rest(kernel: Kernel, rq: receive_queue, num_buf: int) -> None:
    """virtio_net.c: mergeable_buf_free() - the remaining buffers of a dropped frame go back."""
    while num_buf > 1:
        elem = virtnet_rq_get_buf(kernel, rq)
        if elem is None:
            break
        virtnet_put_page(kernel, rq, kernel.pages.virt_to_head_page(elem.token), True)
        rq.stats.buffers_used += 1
        num_buf -= 1


def receive_mergeable(kernel: Kernel, rq: receive_queue, elem: vring_used_elem) -> sk_buff | None:
    """virtio_net.c: receive_mergeable() - the frame's num_buffers buffers into one skb.

    With an XDP program attached (that passes everything) the skb comes
    from receive_mergeable_xdp(): build_skb() over the whole buffer
    (6.3+), or page_to_skb() with the buffer taken as PAGE_SIZE (6.1).
    """
    pages = kernel.pages
    buf = elem.token
    num_buf = elem.hdr.num_buffers
    page = pages.virt_to_head_page(buf)
    offset = buf - pages.page_address(page)
    truesize = mergeable_ctx_to_truesize(elem.ctx)
    headroom = mergeable_ctx_to_headroom(elem.ctx)
    rq.stats.buffers_used += 1
    if rq.xdp_headroom:
        return receive_mergeable_xdp(kernel, rq, elem, page, offset, truesize, headroom)
    head_skb = page_to_skb(kernel, rq, page, offset, elem.len, truesize, headroom)
    if head_skb is None:
        virtnet_put_page(kernel, rq, page, True)
        _drop_rest(kernel, rq, num_buf)
        return None
    if rq.page_pool is not None:
        skb_mark_for_recycle(head_skb)
    curr_skb = head_skb
    while num_buf > 1:
        num_buf -= 1
        elem = virtnet_rq_get_buf(kernel, rq)
        buf = elem.token
        rq.stats.buffers_used += 1
        page = pages.virt_to_head_page(buf)
        curr_skb = virtnet_skb_append_frag(kernel, rq, head_skb, curr_skb, page, buf, elem.len,
                                           mergeable_ctx_to_truesize(elem.ctx))
        if curr_skb is None:
            virtnet_put_page(kernel, rq, page, True)
            _drop_rest(kernel, rq, num_buf)
            kfree_skb(kernel, head_skb)
            return None
    rq.mrg_avg_pkt_len = ewma_pkt_len_add(rq.mrg_avg_pkt_len, head_skb.len)
    return head_skb


def receive_mergeable_xdp(kernel: Kernel, rq: receive_queue, elem: vring_used_elem, page: Page, offset: int,
                          truesize: int, headroom: int) -> sk_buff | None:
    """virtio_net.c: the XDP_PASS path of a one-buffer frame (receive_mergeable_xdp() from 6.3).

    6.3+: build_skb_from_xdp_buff(): build_skb(data_hard_start, frame_sz =
    the buffer's truesize), headroom and header reserved, the frame put.
    6.1: page_to_skb() with the buffer taken as PAGE_SIZE.  No EWMA update:
    XDP buffers have a fixed size.
    """
    if rq.rules.xdp_pass_page_to_skb:
        return page_to_skb(kernel, rq, page, offset, elem.len, kernel.profile.PAGE_SIZE, headroom)
    buf = elem.token
    data_hard_start = buf - headroom
    skb = build_skb(kernel, data_hard_start, truesize)
    if skb is None:
        virtnet_put_page(kernel, rq, page, True)
        return None
    skb_reserve(skb, headroom + rq.hdr_len)
    __skb_put(skb, elem.len - rq.hdr_len)
    if rq.page_pool is not None:
        skb_mark_for_recycle(skb)
    _built_on_buffer(rq, skb, "build_skb_from_xdp_buff")
    return skb


def receive_small(kernel: Kernel, rq: receive_queue, elem: vring_used_elem) -> sk_buff | None:
    """virtio_net.c: receive_small() / receive_small_build_skb() - build_skb() around the buffer.

    The XDP variant (receive_small_xdp() with XDP_PASS) builds the same skb
    over the larger buffer.  7.1's page_pool buffers keep their length
    (what page_pool handed out) and XDP headroom in the ring context, and
    the skb is marked for recycling.
    """
    profile = kernel.profile
    if rq.page_pool is not None:
        xdp_headroom = mergeable_ctx_to_headroom(elem.ctx)
    else:
        xdp_headroom = elem.ctx
    header_offset = profile.NET_IP_ALIGN + profile.NET_SKB_PAD + xdp_headroom
    buf = elem.token - header_offset
    rq.stats.buffers_used += 1
    headroom = rq.hdr_len + header_offset
    if rq.page_pool is not None:
        buflen = mergeable_ctx_to_truesize(elem.ctx)
    else:
        buflen = profile.SKB_DATA_ALIGN(GOOD_PACKET_LEN + headroom) + profile.SHINFO_SIZE
    skb = build_skb(kernel, buf, buflen)
    if skb is None:
        virtnet_put_page(kernel, rq, kernel.pages.virt_to_head_page(buf), True)
        return None
    skb_reserve(skb, headroom)
    skb_put(skb, elem.len - rq.hdr_len)
    if rq.page_pool is not None:
        skb_mark_for_recycle(skb)
    _built_on_buffer(rq, skb, "receive_small_build_skb")
    return skb


def receive_big(kernel: Kernel, rq: receive_queue, elem: vring_used_elem) -> sk_buff | None:
    """virtio_net.c: receive_big() - page_to_skb() on the chain's first page, truesize PAGE_SIZE per page."""
    chain = elem.token
    rq.stats.buffers_used += 1
    skb = page_to_skb(kernel, rq, chain[0], 0, elem.len, kernel.profile.PAGE_SIZE, 0, chain)
    if skb is None:
        give_pages(rq, chain)
    return skb


def virtnet_receive_done(kernel: Kernel, rq: receive_queue, skb: sk_buff, elem: vring_used_elem,
                         deliver: Deliver) -> bool:
    """virtio_net.c: virtnet_receive_done() (the tail of receive_buf() before 6.12).

    DATA_VALID makes the skb CHECKSUM_UNNECESSARY; virtio_net_hdr_to_skb()
    applies the header (pulling headers into the head); the queue is
    recorded and eth_type_trans() pulls the Ethernet header; then
    napi_gro_receive().  A header the stack refuses drops the frame.
    """
    hdr = elem.hdr
    header = elem.header or b""
    if hdr.flags & VIRTIO_NET_HDR_F_DATA_VALID:
        skb.ip_summed = CHECKSUM_UNNECESSARY
    if virtio_net_hdr_to_skb(kernel, skb, hdr, header):
        kfree_skb(kernel, skb)
        return False
    skb.queue_mapping = rq.q_index + 1  # skb_record_rx_queue()
    skb.protocol = eth_type_trans(skb, rq.dev, header)
    if rq.gro_entry is not None:
        rq.gro_entry(skb)
    napi_gro_receive(kernel, rq.napi, skb, deliver)
    return True


def receive_buf(kernel: Kernel, rq: receive_queue, elem: vring_used_elem, deliver: Deliver) -> None:
    """virtio_net.c: receive_buf() - one frame off the ring, by the queue's mode.

    Buffers whose memory the skb took count as released; those copied out
    entirely went straight back to the allocator (buffers_copied).
    """
    stats = rq.stats
    used, copied = stats.buffers_used, stats.buffers_copied
    if rq.mode == "mergeable":
        skb = receive_mergeable(kernel, rq, elem)
    elif rq.mode == "big":
        skb = receive_big(kernel, rq, elem)
    else:
        skb = receive_small(kernel, rq, elem)
    if skb is None:
        stats.skb_alloc_failures += 1
        stats.drop(elem.frame_len)
        return
    stats.buffers_released += (stats.buffers_used - used) - (stats.buffers_copied - copied)
    if virtnet_receive_done(kernel, rq, skb, elem, deliver):
        stats.frames += 1
        stats.bytes += elem.frame_len
    else:
        stats.drop(elem.frame_len)


def virtnet_receive(kernel: Kernel, rq: receive_queue, budget: int, deliver: Deliver) -> int:
    """virtio_net.c: virtnet_receive() - up to budget frames, then a refill once more than
    min(budget, ring) / 2 descriptors are free.

    A refill that fails (no memory) makes the poll return its whole budget
    (6.18.7+: NAPI polls again) or leaves it to the refill work, which the
    model runs right after the poll (older releases).
    """
    packets = 0
    vq = rq.vq
    while packets < budget:
        elem = virtnet_rq_get_buf(kernel, rq)
        if elem is None:
            break
        receive_buf(kernel, rq, elem, deliver)
        packets += 1
    if vq.num_free > min(budget, vq.num) // 2:
        if not try_fill_recv(kernel, rq, GFP_ATOMIC):
            if rq.rules.refill_repoll:
                packets = budget
            else:
                rq.refill_pending = True
    return packets


def refill_work(kernel: Kernel, rq: receive_queue) -> None:
    """virtio_net.c: refill_work() - try_fill_recv(GFP_KERNEL) in process context (older releases)."""
    with kernel.on_cpu(rq.napi.cpu):
        rq.refill_pending = not try_fill_recv(kernel, rq, GFP_KERNEL)


def virtnet_poll(kernel: Kernel, rq: receive_queue, budget: int, deliver: Deliver) -> int:
    """virtio_net.c: virtnet_poll() for the receive side (TX cleaning not modelled).

    Fewer frames than the budget: virtqueue_napi_complete() completes NAPI
    (napi_complete_done(): GRO flushes).
    """
    rq.stats.polls += 1
    if budget <= 0:
        return budget
    with kernel.softirq(rq.napi.cpu):
        received = virtnet_receive(kernel, rq, budget, deliver)
        if received < budget:
            napi_complete_done(kernel, rq.napi, received, deliver)
    if rq.refill_pending:
        refill_work(kernel, rq)
    return received


# -- the device ----------------------------------------------------------------------------------


def virtnet_device_rx(kernel: Kernel, rq: receive_queue, length: int, hdr: virtio_net_hdr,
                      header: bytes | None) -> bool:
    """The device writes one frame of ``length`` bytes with header ``hdr``; False if it is dropped.

    Mergeable: the header and frame fill posted buffers in order, each
    completely before the next, and num_buffers says how many.  Big and
    small: one buffer (a page chain, or one piece) must hold all of it.
    """
    stats = rq.stats
    vq = rq.vq
    if length > rq.max_frame:
        stats.oversize_drops += 1
        return False
    total = rq.hdr_len + length
    if rq.mode == "mergeable":
        room = 0
        count = 0
        for _, sg_len, _, _ in vq.avail:
            room += sg_len
            count += 1
            if room >= total:
                break
        if room < total:
            stats.ring_drops += 1
            return False
        hdr.num_buffers = count
        first = None
        left = total
        for _ in range(count):
            token, sg_len, ctx, ndesc = vq.avail.popleft()
            written = min(sg_len, left)
            left -= written
            elem = vring_used_elem(token, written, ctx, ndesc)
            if first is None:
                first = elem
            vq.used.append(elem)
    else:
        if not vq.avail:
            stats.ring_drops += 1
            return False
        if total > vq.avail[0][1]:
            stats.oversize_drops += 1
            return False
        token, sg_len, ctx, ndesc = vq.avail.popleft()
        first = vring_used_elem(token, total, ctx, ndesc)
        vq.used.append(first)
    first.hdr = hdr
    first.header = header
    first.frame_len = length
    stats.nic_frames += 1
    return True


# -- options and the driver interface -------------------------------------------------------------


def _ring_size(text: str) -> int:
    size = int_option("ring", RING_MIN, RING_MAX, " (the RX virtqueue size)")(text)
    if size & (size - 1):
        raise InputError(f"option ring={size} is not a power of two (split virtqueues need one)")
    return size


def _mtu(text: str) -> int | None:
    if text == "none":
        return None
    return int_option("mtu", ETH_MIN_MTU, ETH_MAX_MTU, " (or 'none': no VIRTIO_NET_F_MTU)")(text)


def _flag(name: str):
    return choice_option(name, ("0", "1"))


OPTIONS = GRO_OPTIONS + (
    DriverOption("mrg_rxbuf", "1", "1: VIRTIO_NET_F_MRG_RXBUF (mergeable buffers); 0: big or small mode", _flag("mrg_rxbuf")),
    DriverOption("guest_gso", "1", "1: the device offers guest TSO/UFO (GUEST_TSO4/6, GUEST_UFO): GSO frames up to "
                 "64 KiB arrive; without MRG_RXBUF this selects big mode", _flag("guest_gso")),
    DriverOption("mtu", "none", f"the MTU the device offers with VIRTIO_NET_F_MTU, {ETH_MIN_MTU}..{ETH_MAX_MTU}, or "
                 "'none' (max MTU 65535); above 1500 without MRG_RXBUF it selects big mode", _mtu),
    DriverOption("ring", str(RING_DEFAULT), f"RX virtqueue size, a power of two {RING_MIN}..{RING_MAX}", _ring_size),
    DriverOption("xdp", "0", "1: an XDP program that passes every frame is attached (XDP_PACKET_HEADROOM in every "
                 "buffer; the device then sends neither GSO nor partial checksums)", _flag("xdp")),
    DriverOption("csum", "partial", "the header the device writes: partial (NEEDS_CSUM, as a host stack or host "
                 "GRO gives), valid (DATA_VALID) or none", choice_option("csum", ("partial", "valid", "none"))),
    DriverOption("dma_api", "0", "1: VIRTIO_F_ACCESS_PLATFORM (the ring uses the DMA API; 6.9 premaps only then)",
                 _flag("dma_api")),
    DriverOption("indirect", "0", "1: VIRTIO_RING_F_INDIRECT_DESC (a big-mode page chain takes one descriptor)",
                 _flag("indirect")),
)


def virtnet_open_queue(kernel: Kernel, dev: net_device, napi: napi_struct,
                       options: dict[str, str] | None) -> receive_queue:
    """virtnet_probe() for one queue pair, then virtnet_open(): try_fill_recv(GFP_KERNEL) fills the ring."""
    values = parse_options("virtio_net", OPTIONS, options)
    profile = kernel.profile
    netdev_set_gro(dev, values)
    rq = receive_queue(dev, napi)
    mergeable = values["mrg_rxbuf"] == "1"
    guest_gso = values["guest_gso"] == "1"
    xdp = values["xdp"] == "1"
    device_mtu = values["mtu"]
    ring = values["ring"]
    rq.rules = virtnet_rules(profile, values["dma_api"] == "1")
    rq.vq = virtqueue(ring, values["indirect"] == "1")
    # virtnet_probe(): header size, modes, big_packets (virtnet_set_big_packets()).
    rq.hdr_len = VIRTIO_NET_HDR_MRG_RXBUF_SIZE
    mtu = device_mtu or 0
    big_packets = guest_gso or mtu > ETH_DATA_LEN
    if big_packets:
        rq.big_packets_num_skbfrags = profile.MAX_SKB_FRAGS if guest_gso else -(-mtu // profile.PAGE_SIZE)
    rq.mode = "mergeable" if mergeable else ("big" if big_packets else "small")
    max_mtu = device_mtu if device_mtu else ETH_MAX_MTU
    dev.mtu = device_mtu if device_mtu else ETH_DATA_LEN
    if xdp:
        if rq.mode == "big":
            raise InputError("option xdp=1 needs mrg_rxbuf=1 or small mode: XDP expects header and data in one page "
                             "(virtnet_xdp_set() refuses big mode)")
        room = profile.SKB_DATA_ALIGN(XDP_PACKET_HEADROOM + profile.sizeof_skb_shared_info)
        max_sz = profile.PAGE_SIZE - room - ETH_HLEN
        if dev.mtu > max_sz:
            raise InputError(f"option xdp=1 with mtu={dev.mtu}: virtnet_xdp_set() allows at most {max_sz} "
                             "(MTU too large to enable XDP)")
        rq.xdp_headroom = XDP_PACKET_HEADROOM
    rq.premapped = rq.rules.dma_record and rq.mode != "big"
    if rq.rules.page_pool and rq.mode != "big":
        # virtnet_create_page_pools(): order 0, the ring's size, this queue's NAPI; with the DMA API
        # page_pool maps the pages (PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV, max_len PAGE_SIZE).
        flags = PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV if values["dma_api"] == "1" else 0
        params = page_pool_params(flags=flags, order=0, pool_size=ring, napi=napi, max_len=profile.PAGE_SIZE,
                                  netdev=dev)
        pool, err = page_pool_create(kernel, params, name=f"virtio_net rq {napi.napi_id:#x}")
        if pool is None:
            raise InputError(f"virtio_net: page_pool_create() failed with {err} (pool_size {ring})")
        rq.page_pool = pool
        rq.page_pools = [pool]
    if rq.mode == "mergeable":
        packet_len = IP_MAX_MTU if big_packets else max_mtu
        rq.min_buf_len = mergeable_min_buf_len(rq.hdr_len, ring, packet_len)
    # What the device can send: GSO only when offered and no XDP program cleared the guest offloads.
    rq.gso = guest_gso and not xdp
    rq.csum = "valid" if xdp and values["csum"] == "partial" else values["csum"]
    rq.mtu = dev.mtu
    if rq.mode == "small":
        rq.max_frame = GOOD_PACKET_LEN
    elif xdp:
        rq.max_frame = dev.mtu + ETH_HLEN
    elif rq.gso:
        rq.max_frame = IP_MAX_MTU + ETH_HLEN
    else:
        rq.max_frame = max_mtu + ETH_HLEN
    if rq.mode == "big":
        rq.max_frame = min(rq.max_frame, profile.PAGE_SIZE - PADDED_VNET_HDR_SIZE
                           + rq.big_packets_num_skbfrags * profile.PAGE_SIZE)
    rq.config = {
        "mode": rq.mode,
        "mrg_rxbuf": int(mergeable),
        "guest_gso": int(guest_gso),
        "mtu": device_mtu if device_mtu else "none",
        "ring": ring,
        "xdp": int(xdp),
        "csum": rq.csum,
        "hdr_len": rq.hdr_len,
        "premapped": int(rq.premapped),
        "page_pool": int(rq.page_pool is not None),
        "min_buf_len": rq.min_buf_len if rq.mode == "mergeable" else None,
        "big_packets_num_skbfrags": rq.big_packets_num_skbfrags if rq.mode == "big" else None,
        "max_frame": rq.max_frame,
        "rxmax": rq.max_frame,
    }
    try_fill_recv(kernel, rq, GFP_KERNEL)
    return rq


def virtnet_nic_receive(kernel: Kernel, rq: receive_queue, frame: Frame) -> bool:
    """The device side of one frame: its header from the frame (see :func:`virtio_net_hdr_for_frame`)."""
    header = frame.header if frame.header is not None else frame_header(frame, rq.synthetic)
    hdr = virtio_net_hdr_for_frame(header, frame.length, rq.mtu, rq.csum, rq.gso)
    return virtnet_device_rx(kernel, rq, frame.length, hdr, header)


def virtnet_close_queue(kernel: Kernel, rq: receive_queue) -> None:
    """virtnet_close() and remove: frames still on the ring are dropped, every buffer and page goes back.

    free_unused_bufs() (virtnet_rq_unmap_free_buf()), free_receive_bufs()
    (rq->pages) and free_receive_page_frags() (the last DMA record, the
    frag block).
    """
    stats = rq.stats
    pages = kernel.pages
    vq = rq.vq
    with kernel.softirq(rq.napi.cpu):
        while vq.used:
            elem = vq.used.popleft()
            if elem.hdr is not None:
                stats.drop(elem.frame_len)
            _free_token(kernel, rq, elem.token, elem.ctx)
        while vq.avail:
            token, _, ctx, _ = vq.avail.popleft()
            _free_token(kernel, rq, token, ctx)
    vq.num_free = vq.num
    while rq.pages:
        pages.put_page(rq.pages.pop())
    if rq.page_pool is not None:
        # virtnet_destroy_page_pools(): pages still in skbs come back to the pool later (page_pool_release()).
        page_pool_destroy(kernel, rq.page_pool)
    if rq.alloc_frag.page is not None:
        if rq.last_dma is not None:
            virtnet_rq_unmap(kernel, rq, rq.last_dma)
            rq.last_dma = None
        pages.put_page(rq.alloc_frag.page)
        rq.alloc_frag.page = None
        rq.alloc_frag.offset = 0
    elif rq.last_dma is not None:
        # The queue's last skb_page_frag_refill() failed: it put the old block and left alloc_frag.page NULL,
        # and free_receive_page_frags() looks at last_dma only when alloc_frag.page is set. The record's own
        # reference (ref 1, taken by virtnet_rq_alloc()) is never dropped: the kernel leaks the block's page
        # (6.6's premapped buffers through 6.18; 7.x's page_pool buffers have no record).
        kernel.kernel_leak(rq.last_dma.page, "free_receive_page_frags",
                           "the queue's last refill failed, alloc_frag.page is NULL and the last DMA record "
                           "(rq->last_dma) is skipped: its page reference is never put")
    # virtnet_del_vqs() -> netif_napi_del(): what GRO still holds is freed.
    netif_napi_del(kernel, rq.napi)


def virtnet_rq_load_mergeable(kernel: Kernel, rq: receive_queue, buffers: list[tuple[int, int, int]],
                              frag: tuple[int, int], ewma: int) -> None:
    """Put a mergeable queue's ring in a given state (``skbsim validate`` replays from a ring it found).

    ``buffers`` are (block, start, length) in the order the device will
    use them, blocks being skb_page_frag_refill() blocks named by any
    integers; ``frag`` is the (block, offset) the next buffer is cut at;
    ``ewma`` the packet-length average.  The queue's own buffers go back
    first.  Each block is held as the driver would hold it: one reference
    per posted buffer, the frag's own on the current block and, premapped,
    the DMA record's (its count: the block's posted buffers, plus one on
    the current block).
    """
    if rq.mode != "mergeable" or rq.page_pool is not None:
        raise ValueError("only a mergeable queue's ring of frag blocks can be loaded")
    virtnet_close_queue(kernel, rq)
    pages = kernel.pages
    frag_size = rq.alloc_frag.size or SKB_FRAG_PAGE_SIZE
    order = kernel.profile.get_order(frag_size)
    mask = (GFP_ATOMIC & ~__GFP_DIRECT_RECLAIM) | __GFP_COMP | __GFP_NOWARN | __GFP_NORETRY
    blocks: dict[int, Page] = {}

    def block(key: int) -> Page:
        page = blocks.get(key)
        if page is None:
            page = pages.alloc_pages(mask, order, "virtio_net frag block (loaded)")
            if page is None:
                raise MemoryError("no memory for a loaded frag block")
            blocks[key] = page
            if rq.premapped:
                rq.dma[page.pfn] = virtnet_rq_dma(page)
                pages.get_page(page)
        return page

    for key, start, length in buffers:
        page = block(key)
        pages.get_page(page)
        if rq.premapped:
            rq.dma[page.pfn].ref += 1
        if virtqueue_add_inbuf_ctx(rq.vq, pages.page_address(page) + start, length,
                                   mergeable_len_to_ctx(length, 0)) < 0:
            raise ValueError(f"more buffers than the ring's {rq.vq.num} descriptors")
    frag_key, frag_offset = frag
    page = block(frag_key)
    rq.alloc_frag.page = page
    rq.alloc_frag.offset = frag_offset
    rq.alloc_frag.size = frag_size
    if rq.premapped:
        rq.last_dma = rq.dma[page.pfn]
        rq.last_dma.ref += 1
    for key, held in blocks.items():
        if key != frag_key:
            pages.put_page(held)  # only the current block keeps the allocation's reference (the frag's)
    rq.mrg_avg_pkt_len = ewma


def _free_token(kernel: Kernel, rq: receive_queue, token, ctx: int) -> None:
    """virtnet_rq_unmap_free_buf() -> virtnet_rq_free_buf() for one buffer never handed to the stack."""
    if rq.mode == "big":
        for page in token:
            kernel.pages.put_page(page)
        return
    buf = token
    if rq.mode == "small":
        xdp_headroom = mergeable_ctx_to_headroom(ctx) if rq.page_pool is not None else ctx
        buf -= kernel.profile.NET_IP_ALIGN + kernel.profile.NET_SKB_PAD + xdp_headroom
    virtnet_rq_put_buf(kernel, rq, buf)
    virtnet_put_page(kernel, rq, kernel.pages.virt_to_head_page(buf), False)


DRIVER = Driver(
    name="virtio_net",
    summary="virtio_net (KVM/QEMU, Firecracker): mergeable buffers from a 32 KiB page frag sized by an EWMA of "
    "packet lengths; big and small modes; XDP headroom",
    options=OPTIONS,
    open_queue=virtnet_open_queue,
    nic_receive=virtnet_nic_receive,
    poll=virtnet_poll,
    close_queue=virtnet_close_queue,
)
