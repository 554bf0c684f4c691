"""A generic copybreak receive path: copy small frames, hand big buffers up.

Many drivers copy a frame that is at most ``copybreak`` bytes long into a
freshly allocated small skb and keep their DMA buffer on the ring, and give
larger frames to the stack in the DMA buffer itself.  This model is that
pattern, put together from real drivers (Linux 6.9 .. 6.18 sources):

- Buffers: one fragment per descriptor from the per-CPU page_frag cache,
  SKB_DATA_ALIGN(NET_SKB_PAD + NET_IP_ALIGN + rx_buf) + SKB_DATA_ALIGN(
  sizeof(struct skb_shared_info)) bytes, laid out for build_skb(), as tg3
  (drivers/net/ethernet/broadcom/tg3.c: tg3_alloc_rx_data(),
  napi_alloc_frag()) does; the first fill at open uses netdev_alloc_frag()
  (process context).
- The test: ``len <= copybreak`` copies, as tg3 (TG3_RX_COPY_THRESHOLD 256),
  ena (ena_rx_skb(), ENA_DEFAULT_RX_COPYBREAK 256) and bnxt do; e1000e
  copies only below its threshold (``len < copybreak``, also 256 by
  default), so an e1000e frame of exactly 256 bytes would not be copied.
- Copy: napi_alloc_skb(napi, len) and the bytes copied, as ena and e1000e
  do; the buffer stays on the ring for the next frame.  (tg3 uses
  netdev_alloc_skb() here.)  No skb: the frame is dropped, the buffer kept.
- Larger frames: replace before use, as tg3 does - a new fragment is taken
  for every buffer of the frame first (none: the frame is dropped and the
  old buffers stay), then napi_build_skb() around the first buffer
  (truesize = buffer size + sizeof-sk_buff overhead), headroom NET_SKB_PAD
  + NET_IP_ALIGN.  A frame longer than one buffer continues in the next
  descriptors, each attached as a page fragment with the buffer size as its
  truesize, as ena and virtio_net's mergeable buffers do, up to
  MAX_SKB_FRAGS fragments.
- eth_type_trans() on every skb; no eth_skb_pad() (these drivers leave short
  frames as the NIC delivered them).

Options: ``copybreak`` (0 copies nothing), ``rx_buf`` (data bytes per
buffer; at most what fits one page with headroom and skb_shared_info, so
buffers are always page fragments - tg3's kmalloc'ed jumbo buffers are not
modelled), ``ring`` (descriptors, all of them posted).  Frames longer than
(MAX_SKB_FRAGS + 1) * rx_buf are dropped by the NIC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.drivers.base import (
    GRO_OPTIONS,
    Deliver,
    Driver,
    DriverOption,
    RxQueueStats,
    frame_header,
    int_option,
    netdev_set_gro,
    parse_options,
    synthetic_header_template,
)
from skbsim.errors import InputError
from skbsim.net.ethernet import eth_type_trans
from skbsim.net.gro import napi_complete_done, napi_gro_receive, netif_napi_del
from skbsim.net.skbuff import (
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
    from skbsim.net.skbuff import sk_buff
    from skbsim.profile import Profile
    from skbsim.traffic.frame import Frame

COPYBREAK_DEFAULT = 256
RX_BUF_DEFAULT = 2048
RX_BUF_MIN = 256
RING_DEFAULT = 256  # e1000e's E1000_DEFAULT_RXD
RING_MIN = 8
RING_MAX = 4096


class copybreak_desc:
    """One RX descriptor's write-back: done, end of packet, length, and the frame's first bytes."""

    __slots__ = ("dd", "eop", "pkt_len", "header", "rss_hash")

    def __init__(self) -> None:
        self.dd = False
        self.eop = False
        self.pkt_len = 0
        self.header: bytes | None = None
        self.rss_hash = 0


class copybreak_ring:
    """One RX queue: descriptors, the buffer address of each slot (None = empty), geometry."""

    __slots__ = (
        "driver",
        "dev",
        "napi",
        "stats",
        "config",
        "last_path",
        "count",
        "buffers",
        "desc",
        "next_to_clean",
        "hw_next",
        "empty",
        "rx_buf",
        "headroom",
        "buf_size",
        "copybreak",
        "rxmax",
        "synthetic",
    )

    def __init__(self, dev: net_device, napi: napi_struct, count: int):
        self.driver = "copybreak"
        self.dev = dev
        self.napi = napi
        self.stats = RxQueueStats()
        self.config: dict = {}
        self.last_path = ""
        self.count = count
        self.buffers: list[int | None] = [None] * count
        self.desc = [copybreak_desc() for _ in range(count)]
        self.next_to_clean = 0
        self.hw_next = 0
        self.empty = count
        self.rx_buf = 0
        self.headroom = 0
        self.buf_size = 0
        self.copybreak = 0
        self.rxmax = 0
        self.synthetic = synthetic_header_template()


def max_rx_buf(profile: Profile) -> int:
    """The largest rx_buf whose buffer fits one page: SKB_MAX_HEAD(NET_SKB_PAD + NET_IP_ALIGN)."""
    return profile.SKB_WITH_OVERHEAD(profile.PAGE_SIZE) - (profile.NET_SKB_PAD + profile.NET_IP_ALIGN)


def copybreak_buf_size(profile: Profile, rx_buf: int) -> int:
    """Bytes of one buffer: SKB_DATA_ALIGN(headroom + rx_buf) + SKB_DATA_ALIGN(sizeof(skb_shared_info))."""
    return profile.SKB_DATA_ALIGN(profile.NET_SKB_PAD + profile.NET_IP_ALIGN + rx_buf) + profile.SHINFO_SIZE


def _fill_empty_slots(kernel: Kernel, ring: copybreak_ring, in_napi: bool) -> None:
    """Give every empty slot a buffer (at open, and after polls if an earlier fill failed)."""
    for i, data in enumerate(ring.buffers):
        if data is not None:
            continue
        data = napi_alloc_frag(kernel, ring.buf_size) if in_napi else netdev_alloc_frag(kernel, ring.buf_size)
        if data is None:
            ring.stats.buffer_alloc_failures += 1
            return
        ring.buffers[i] = data
        ring.empty -= 1


OPTIONS_DOC = (
    ("copybreak", str(COPYBREAK_DEFAULT), "frames of at most this many bytes are copied into a new small skb "
     "(0: never), 0..rx_buf"),
    ("rx_buf", str(RX_BUF_DEFAULT), f"data bytes per ring buffer, {RX_BUF_MIN}..SKB_MAX_HEAD(NET_SKB_PAD) "
     "(3712 on 4K pages)"),
    ("ring", str(RING_DEFAULT), f"RX descriptors, {RING_MIN}..{RING_MAX}"),
)

OPTIONS = GRO_OPTIONS + (
    DriverOption(*OPTIONS_DOC[0], int_option("copybreak", 0, 1 << 20)),
    DriverOption(*OPTIONS_DOC[1], int_option("rx_buf", RX_BUF_MIN, 1 << 20)),
    DriverOption(*OPTIONS_DOC[2], int_option("ring", RING_MIN, RING_MAX)),
)


def copybreak_open_queue(kernel: Kernel, dev: net_device, napi: napi_struct,
                         options: dict[str, str] | None) -> copybreak_ring:
    """Bring the queue up: check the options against the profile, fill every slot."""
    values = parse_options("copybreak", OPTIONS, options)
    profile = kernel.profile
    largest = max_rx_buf(profile)
    if values["rx_buf"] > largest:
        raise InputError(f"option rx_buf={values['rx_buf']} is above {largest}, the most one page holds "
                         f"with NET_SKB_PAD and skb_shared_info on {profile.name}")
    if values["copybreak"] > values["rx_buf"]:
        raise InputError(f"option copybreak={values['copybreak']} is above rx_buf={values['rx_buf']}")
    ring = copybreak_ring(dev, napi, values["ring"])
    netdev_set_gro(dev, values)
    ring.rx_buf = values["rx_buf"]
    ring.copybreak = values["copybreak"]
    ring.headroom = profile.NET_SKB_PAD + profile.NET_IP_ALIGN
    ring.buf_size = copybreak_buf_size(profile, ring.rx_buf)
    ring.rxmax = (profile.MAX_SKB_FRAGS + 1) * ring.rx_buf
    ring.config = {
        "copybreak": ring.copybreak,
        "rx_buf": ring.rx_buf,
        "ring": ring.count,
        "buf_size": ring.buf_size,
        "headroom": ring.headroom,
        "rxmax": ring.rxmax,
    }
    _fill_empty_slots(kernel, ring, in_napi=False)
    return ring


def copybreak_nic_receive(kernel: Kernel, ring: copybreak_ring, frame: Frame) -> bool:
    """The NIC: the frame into ceil(len / rx_buf) consecutive free slots, or dropped."""
    length = frame.length
    if length > ring.rxmax:
        ring.stats.oversize_drops += 1
        return False
    nbufs = -(-length // ring.rx_buf)
    if nbufs > ring.count:
        # More buffers than the ring has descriptors: the NIC can never take it.
        ring.stats.ring_drops += 1
        return False
    idx = ring.hw_next
    for _ in range(nbufs):
        if ring.desc[idx].dd or ring.buffers[idx] is None:
            ring.stats.ring_drops += 1
            return False
        idx = (idx + 1) % ring.count
    header = frame_header(frame, ring.synthetic)
    remaining = length
    idx = ring.hw_next
    for i in range(nbufs):
        desc = ring.desc[idx]
        desc.pkt_len = min(remaining, ring.rx_buf)
        remaining -= desc.pkt_len
        desc.eop = i == nbufs - 1
        desc.header = header if i == 0 else None
        desc.rss_hash = frame.rss_hash
        desc.dd = True
        idx = (idx + 1) % ring.count
    ring.hw_next = idx
    ring.stats.nic_frames += 1
    return True


def _frame_slots(ring: copybreak_ring) -> list[int] | None:
    """Slots of the complete frame at next_to_clean, or None if none is ready."""
    slots = []
    idx = ring.next_to_clean
    while ring.desc[idx].dd:
        slots.append(idx)
        if ring.desc[idx].eop:
            return slots
        idx = (idx + 1) % ring.count
        if idx == ring.next_to_clean:
            break
    return None


def _give_back_descriptors(ring: copybreak_ring, slots: list[int]) -> None:
    for idx in slots:
        desc = ring.desc[idx]
        desc.dd = False
        desc.header = None
    ring.next_to_clean = (slots[-1] + 1) % ring.count


def copybreak_copy_skb(kernel: Kernel, ring: copybreak_ring, length: int) -> sk_buff | None:
    """Copy path: napi_alloc_skb(len), the frame copied in; the buffer stays on the ring."""
    skb = napi_alloc_skb(kernel, ring.napi, length)
    ring.stats.buffers_reused += 1
    if skb is None:
        ring.stats.skb_alloc_failures += 1
        return None
    skb_put(skb, length)
    ring.stats.bytes_copied += length
    ring.stats.buffers_copied += 1
    ring.last_path = "copybreak_copy_skb"
    return skb


def copybreak_build_skb(kernel: Kernel, ring: copybreak_ring, slots: list[int]) -> sk_buff | None:
    """Build path: replace every buffer of the frame, then an skb around the old ones.

    No replacement: the frame is dropped and its buffers stay.  No sk_buff:
    the old buffers are freed and the frame is dropped (the slots already
    hold their replacements).
    """
    replacements = []
    for _ in slots:
        data = napi_alloc_frag(kernel, ring.buf_size)
        if data is None:
            ring.stats.buffer_alloc_failures += 1
            ring.stats.buffers_reused += len(slots)
            for taken in replacements:
                skb_free_frag(kernel, taken)
            return None
        replacements.append(data)
    old = [ring.buffers[idx] for idx in slots]
    for idx, data in zip(slots, replacements):
        ring.buffers[idx] = data
    ring.stats.buffers_released += len(slots)

    skb = napi_build_skb(kernel, old[0], ring.buf_size)
    if skb is None:
        ring.stats.skb_alloc_failures += 1
        for data in old:
            skb_free_frag(kernel, data)
        return None
    skb.head_source = "copybreak rx buffer (page_frag)"
    skb.path = "napi_build_skb"
    skb_reserve(skb, ring.headroom)
    skb_put(skb, ring.desc[slots[0]].pkt_len)
    pages = kernel.pages
    for i, (idx, data) in enumerate(zip(slots[1:], old[1:])):
        page = pages.virt_to_head_page(data)
        offset = data + ring.headroom - pages.page_address(page)
        skb_add_rx_frag(skb, i, page, offset, ring.desc[idx].pkt_len, ring.buf_size)
    ring.last_path = "copybreak_build_skb"
    return skb


def copybreak_clean_rx_irq(kernel: Kernel, ring: copybreak_ring, budget: int, deliver: Deliver) -> int:
    """Up to budget frames: copy or build each; the RSS hash (skb_set_hash(), as ena and bnxt do),
    eth_type_trans, napi_gro_receive."""
    stats = ring.stats
    done = 0
    while done < budget:
        slots = _frame_slots(ring)
        if slots is None:
            break
        stats.buffers_used += len(slots)
        first = ring.desc[slots[0]]
        length = sum(ring.desc[idx].pkt_len for idx in slots)
        header = first.header or b""
        rss_hash = first.rss_hash
        if length <= ring.copybreak:
            skb = copybreak_copy_skb(kernel, ring, length)
        else:
            skb = copybreak_build_skb(kernel, ring, slots)
        _give_back_descriptors(ring, slots)
        done += 1
        if skb is None:
            stats.drop(length)
            continue
        stats.bytes += skb.len
        skb.hash = rss_hash
        skb.protocol = eth_type_trans(skb, ring.dev, header)
        stats.frames += 1
        napi_gro_receive(kernel, ring.napi, skb, deliver)
    if ring.empty:
        _fill_empty_slots(kernel, ring, in_napi=True)
    return done


def copybreak_poll(kernel: Kernel, ring: copybreak_ring, budget: int, deliver: Deliver) -> int:
    """The NAPI poll: budget used up means poll again; less means done (napi_complete_done())."""
    ring.stats.polls += 1
    if budget <= 0:
        return budget
    with kernel.softirq(ring.napi.cpu):
        done = copybreak_clean_rx_irq(kernel, ring, budget, deliver)
        if done < budget:
            napi_complete_done(kernel, ring.napi, done, deliver)
    return done


def copybreak_close_queue(kernel: Kernel, ring: copybreak_ring) -> None:
    """Free every buffer on the ring (frames not yet polled are lost)."""
    for i, data in enumerate(ring.buffers):
        if data is not None:
            skb_free_frag(kernel, data)
            ring.buffers[i] = None
    for desc in ring.desc:
        desc.dd = False
        desc.header = None
    ring.empty = ring.count
    ring.next_to_clean = ring.hw_next = 0
    netif_napi_del(kernel, ring.napi)


DRIVER = Driver(
    name="copybreak",
    summary="generic copybreak driver (tg3/ena/e1000e pattern): copy frames <= copybreak, build_skb above",
    options=OPTIONS,
    open_queue=copybreak_open_queue,
    nic_receive=copybreak_nic_receive,
    poll=copybreak_poll,
    close_queue=copybreak_close_queue,
)
