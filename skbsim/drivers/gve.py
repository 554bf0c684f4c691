"""The gve (Google Virtual Ethernet) receive path in DQO RDA mode, after drivers/net/ethernet/google/gve.

Sources: gve_rx_dqo.c (gve_rx_dqo(), gve_rx_append_frags(),
gve_rx_post_buffers_dqo(), gve_rx_complete_skb(), and up to 6.12
gve_get_recycled_buf_state(), gve_alloc_page_dqo(), gve_try_recycle_buf(),
gve_buf_ref_cnt()), gve_buffer_mgmt_dqo.c (6.18: gve_alloc_buffer(),
gve_alloc_from_page_pool(), gve_rx_create_page_pool(), gve_reuse_buffer(),
gve_free_buffer()), gve_utils.c (gve_dec_pagecnt_bias(), gve_rx_copy_data()),
gve_main.c (gve_get_pkt_buf_size(), GVE_DEFAULT_RX_COPYBREAK) of 6.1.192,
v6.9, 6.12.117, 6.18.35 and 7.1.3.

One buffer queue of packet buffers (GVE_DEFAULT_RX_BUFFER_SIZE = 2048
bytes; 4096 with header split); a frame longer than one buffer continues in
the next ones.  Per frame:

- ``len <= rx_copybreak`` (256) in one buffer: gve_rx_copy() -
  napi_alloc_skb(len), the bytes copied, the buffer kept;
- otherwise the first buffer becomes frag 0 of napi_get_frags()'s skb
  (napi_alloc_skb(GRO_MAX_HEAD)), every further buffer another frag; each
  frag's truesize is the buffer size; the skb goes up through
  napi_gro_frags();
- with header split (ethtool tcp-data-split, 6.9+) the NIC writes the
  headers into a separate header buffer (not pages: one DMA-coherent
  block) which gve_rx_copy_data() copies into napi_alloc_skb(hdr_len); the
  payload buffers follow as frags (4096 each) and the skb goes up through
  napi_gro_receive().

Buffers (profile feature ``gve_dqo_rx_buffers``):

- ``own_pages`` (up to 6.12): a buf_state per buffer owns an order-0 page
  pre-charged with INT_MAX references (pagecnt_bias); after a frame the
  buffer moves to the page's other 2K half (gve_try_recycle_buf()), and a
  page whose every half went to skbs waits on the used list until its
  references are back (checked five at a time when buffers are posted).
- ``page_pool`` (6.13+: 'gve: adopt page pool for DQ RDA mode'; here
  6.18): page_pool_alloc_netmem(buffer size) per buffer
  (two 2K buffers per page, or a page each for 4K), pool_size 4 x the ring,
  skbs marked for recycling, copied-out buffers given back with
  page_pool_put_full_page(allow_direct).

``gve_rx_buf_len``: 2048 only and no header split (6.1); 4096 with header
split (6.9 to 6.18, when the device allows 4K buffers, which the model
assumes); rx-buf-len set with ethtool -G (7.1).

gve_rx_complete_skb() sets skb->hash from the descriptor's RSS hash and
hands the skb to GRO (``gro`` and the other GRO_OPTIONS as ethtool -K sets
them): one with nothing in its linear part - napi_get_frags()'s - through
napi_gro_frags(), which pulls the Ethernet header (and for a frame GRO does
not hold or merge its IP header) out of frag 0 and reuses the skb as
napi->skb when its frags moved into an aggregate; the others through
napi_gro_receive().  A poll that did less than its budget completes NAPI.

Not modelled: GQI mode, QPL mode and its copy-on-demand, XDP/AF_XDP, RSC
(the device merging TCP itself), the starvation timer.  The ring size and the MTU limit come from the
device; the model takes 1024 descriptors and an MTU of at most 9000 (Google
Cloud VPC networks allow up to 8896).
"""

from __future__ import annotations

from collections import deque
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
from skbsim.drivers.pp_common import PPQueue, RxCompletion, pp_napi_complete
from skbsim.errors import InputError
from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.net.ethernet import ETH_HLEN, eth_get_headlen, eth_type_trans
from skbsim.net.gro import napi_get_frags, napi_gro_frags, napi_gro_receive, netif_napi_del
from skbsim.net.page_pool import (
    PP_FLAG_DMA_MAP,
    PP_FLAG_DMA_SYNC_DEV,
    page_pool_alloc,
    page_pool_create,
    page_pool_destroy,
    page_pool_params,
    page_pool_put_full_page,
    skb_mark_for_recycle,
)
from skbsim.net.skbuff import __skb_put, napi_alloc_skb, skb_add_rx_frag

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.traffic.frame import Frame

GVE_DEFAULT_RX_BUFFER_SIZE = 2048
GVE_MAX_RX_BUFFER_SIZE = 4096
GVE_DEFAULT_RX_COPYBREAK = 256
GVE_DEFAULT_HEADER_BUFFER_SIZE = 128
GVE_PAGE_POOL_SIZE_MULTIPLIER = 4
GVE_DEFAULT_RX_RING = 1024       # the device's rx_queue_entries (assumed)
GVE_MAX_MTU = 9000               # the device's MTU (assumed; Google Cloud allows up to 8896)
ETH_MIN_MTU = 68
INT_MAX = 0x7FFFFFFF


class gve_rx_buf_state_dqo:
    """gve_dqo.h: struct gve_rx_buf_state_dqo - a buffer: its page, offset, size and (own pages) bias."""

    __slots__ = ("page", "page_offset", "buf_size", "pagecnt_bias", "last_single_ref_offset")

    def __init__(self) -> None:
        self.page = None
        self.page_offset = 0
        self.buf_size = 0
        self.pagecnt_bias = 0
        self.last_single_ref_offset = 0


class gve_rx_ring(PPQueue):
    """gve.h: struct gve_rx_ring (DQO) - buffer states, the posted queue, recycled/used lists."""

    __slots__ = ("use_pool", "buf_size", "hsplit", "copybreak", "count", "buf_states", "free_states",
                 "recycled", "used", "bufq", "page_pool")

    def __init__(self, dev: net_device, napi: napi_struct, count: int):
        super().__init__("gve", dev, napi)
        self.use_pool = False
        self.buf_size = GVE_DEFAULT_RX_BUFFER_SIZE
        self.hsplit = False
        self.copybreak = GVE_DEFAULT_RX_COPYBREAK
        self.count = count
        self.buf_states = [gve_rx_buf_state_dqo() for _ in range(count)]
        self.free_states: deque[int] = deque(range(count))
        self.recycled: deque[int] = deque()
        self.used: deque[int] = deque()
        self.bufq: deque[int] = deque()   # posted buffers in the order the NIC uses them
        self.page_pool = None

    def buffers_out(self) -> int:
        """Buffers the NIC holds: posted, or written into and not yet cleaned."""
        return len(self.bufq) + sum(len(comp.slots) for _, comp in self.completions)


# -- own pages (up to 6.12) -------------------------------------------------------------------------------


def gve_buf_ref_cnt(bs: gve_rx_buf_state_dqo) -> int:
    """gve_rx_dqo.c: gve_buf_ref_cnt() - page references held by skbs (page_count() - pagecnt_bias)."""
    return bs.page.refcount - bs.pagecnt_bias


def gve_alloc_page_dqo(kernel: Kernel, rx: gve_rx_ring, bs: gve_rx_buf_state_dqo) -> bool:
    """gve_rx_dqo.c: gve_alloc_page_dqo() - an order-0 page charged with INT_MAX references."""
    page = kernel.pages.alloc_pages(GFP_ATOMIC, 0, "gve_alloc_page_dqo")
    if page is None:
        return False
    kernel.pages.page_ref_add(page, INT_MAX - 1)
    bs.page, bs.page_offset, bs.pagecnt_bias, bs.last_single_ref_offset = page, 0, INT_MAX, 0
    bs.buf_size = rx.buf_size
    return True


def gve_free_page_dqo(kernel: Kernel, bs: gve_rx_buf_state_dqo) -> None:
    """gve_rx_dqo.c: gve_free_page_dqo() - give back the bias and the page's own reference."""
    page = bs.page
    if kernel.pages.page_ref_sub_and_test(page, bs.pagecnt_bias):
        kernel.pages.free_the_page(page)
    bs.page = None


def gve_dec_pagecnt_bias(kernel: Kernel, bs: gve_rx_buf_state_dqo) -> None:
    """gve_utils.c: gve_dec_pagecnt_bias() - one reference to the skb; recharge when the bias runs out."""
    bs.pagecnt_bias -= 1
    if bs.pagecnt_bias == 0:
        count = bs.page.refcount
        bs.pagecnt_bias = INT_MAX if count == 1 else INT_MAX - count
        kernel.pages.page_ref_add(bs.page, bs.pagecnt_bias - 1)


def gve_try_recycle_buf(kernel: Kernel, rx: gve_rx_ring, ix: int) -> None:
    """gve_rx_dqo.c: gve_try_recycle_buf() - move to the page's next buffer-sized chunk, or wait on the
    used list when the page has gone round without ever being down to one reference."""
    bs = rx.buf_states[ix]
    page_size = kernel.profile.PAGE_SIZE
    if rx.buf_size * 2 > page_size:
        rx.used.append(ix)
        return
    if gve_buf_ref_cnt(bs) == 1:
        bs.last_single_ref_offset = bs.page_offset
    bs.page_offset = (bs.page_offset + rx.buf_size) & (page_size - 1)
    if bs.page_offset == bs.last_single_ref_offset:
        rx.used.append(ix)
        return
    rx.recycled.append(ix)


def gve_get_recycled_buf_state(kernel: Kernel, rx: gve_rx_ring) -> int | None:
    """gve_rx_dqo.c: gve_get_recycled_buf_state() - recycled first, then up to five used ones whose
    references are all back; with no free state left, one used page is given up."""
    if rx.recycled:
        return rx.recycled.popleft()
    if not rx.used:
        return None
    for _ in range(5):
        ix = rx.used.popleft()
        if gve_buf_ref_cnt(rx.buf_states[ix]) == 0:
            return ix
        rx.used.append(ix)
    if not rx.free_states:
        ix = rx.used.popleft()
        bs = rx.buf_states[ix]
        if gve_buf_ref_cnt(bs) == 0:
            return ix
        gve_free_page_dqo(kernel, bs)
        rx.free_states.append(ix)
    return None


# -- buffers, either scheme ---------------------------------------------------------------------------------


def gve_alloc_buffer(kernel: Kernel, rx: gve_rx_ring) -> int | None:
    """A buffer to post: gve_alloc_buffer() (6.18, page_pool) or gve_rx_post_buffers_dqo()'s recycled-or-new."""
    if rx.use_pool:
        if not rx.free_states:
            return None
        ix = rx.free_states.popleft()
        bs = rx.buf_states[ix]
        page, offset, size = page_pool_alloc(kernel, rx.page_pool, rx.buf_size, GFP_ATOMIC)
        if page is None:
            rx.free_states.appendleft(ix)
            return None
        bs.page, bs.page_offset, bs.buf_size = page, offset, size
        return ix
    ix = gve_get_recycled_buf_state(kernel, rx)
    if ix is not None:
        return ix
    if not rx.free_states:
        return None
    ix = rx.free_states.popleft()
    if not gve_alloc_page_dqo(kernel, rx, rx.buf_states[ix]):
        rx.free_states.appendleft(ix)
        return None
    return ix


def gve_rx_post_buffers_dqo(kernel: Kernel, rx: gve_rx_ring) -> None:
    """gve_rx_dqo.c: gve_rx_post_buffers_dqo() - fill the buffer queue (one slot stays empty)."""
    while rx.buffers_out() < rx.count - 1:
        ix = gve_alloc_buffer(kernel, rx)
        if ix is None:
            rx.stats.buffer_alloc_failures += 1
            return
        rx.bufq.append(ix)


def gve_free_buffer(kernel: Kernel, rx: gve_rx_ring, ix: int) -> None:
    """gve_buffer_mgmt_dqo.c: gve_free_buffer() - a buffer not handed to an skb: back to the pool (6.18), or
    onto the recycled list."""
    bs = rx.buf_states[ix]
    if rx.use_pool:
        page_pool_put_full_page(kernel, rx.page_pool, bs.page, True)
        bs.page = None
        rx.free_states.append(ix)
    else:
        rx.recycled.append(ix)


def gve_reuse_buffer(kernel: Kernel, rx: gve_rx_ring, ix: int) -> None:
    """gve_buffer_mgmt_dqo.c: gve_reuse_buffer() - the skb took the buffer: its state is free (6.18), or one
    page reference goes to the skb and the buffer moves on (gve_dec_pagecnt_bias(), gve_try_recycle_buf())."""
    bs = rx.buf_states[ix]
    if rx.use_pool:
        bs.page = None
        rx.free_states.append(ix)
    else:
        gve_dec_pagecnt_bias(kernel, bs)
        gve_try_recycle_buf(kernel, rx, ix)


# -- the NIC ----------------------------------------------------------------------------------------------


def gve_header_split_len(rx: gve_rx_ring, header: bytes, length: int) -> int:
    """The bytes of a frame the device writes into the header buffer with header split: its eth_get_headlen()
    (up to a header buffer), 0 when that is nothing, all of the frame or more than the buffer (not split), and
    without header split."""
    if not rx.hsplit:
        return 0
    hdr_len = eth_get_headlen(rx.dev, header, GVE_DEFAULT_HEADER_BUFFER_SIZE)
    return 0 if not 0 < hdr_len < length or hdr_len > GVE_DEFAULT_HEADER_BUFFER_SIZE else hdr_len


def gve_nic_receive(kernel: Kernel, rx: gve_rx_ring, frame: Frame) -> bool:
    """The device: the frame (its payload, with header split) into the next posted buffers."""
    length = frame.length
    if length > rx.rxmax:
        rx.stats.oversize_drops += 1
        return False
    header = frame_header(frame, rx.synthetic)
    hdr_len = gve_header_split_len(rx, header, length)
    payload = length - hdr_len
    nbufs = -(-payload // rx.buf_size)
    if nbufs > len(rx.bufq):
        rx.stats.ring_drops += 1
        return False
    slots = [rx.bufq.popleft() for _ in range(nbufs)]
    sizes = [min(rx.buf_size, payload - i * rx.buf_size) for i in range(nbufs)]
    comp = RxCompletion(slots, sizes, header, frame.rss_hash)
    comp.length = length
    rx.completions.append((hdr_len, comp))
    rx.stats.nic_frames += 1
    return True


# -- skbs -------------------------------------------------------------------------------------------------


def gve_rx_dqo_frame(kernel: Kernel, rx: gve_rx_ring, hdr_len: int, comp: RxCompletion, deliver: Deliver) -> bool:
    """gve_rx_dqo() over one frame's descriptors, then gve_rx_complete_skb(); False when it was dropped."""
    stats = rx.stats
    slots, sizes = comp.slots, comp.sizes
    if not hdr_len and len(slots) == 1 and sizes[0] <= rx.copybreak:
        # gve_rx_copy(): napi_alloc_skb(len), the bytes copied (eth_type_trans() there), the buffer kept.
        skb = napi_alloc_skb(kernel, rx.napi, sizes[0])
        gve_free_buffer(kernel, rx, slots[0])
        if skb is None:
            return False
        __skb_put(skb, sizes[0])
        skb.protocol = eth_type_trans(skb, rx.dev, comp.header)
        stats.bytes_copied += sizes[0]
        stats.buffers_copied += 1
        slots = []
        builder = "gve_rx_copy"
    elif hdr_len:
        # gve_rx_copy_data(): the header buffer copied into napi_alloc_skb(hdr_len), eth_type_trans() there.
        skb = napi_alloc_skb(kernel, rx.napi, hdr_len)
        if skb is None:
            for ix in slots:
                gve_free_buffer(kernel, rx, ix)
            return False
        __skb_put(skb, hdr_len)
        skb.protocol = eth_type_trans(skb, rx.dev, comp.header)
        stats.bytes_copied += hdr_len
        builder = "gve_rx_copy_data"
    else:
        # napi_get_frags(): napi->skb (one GRO gave back empty), or a napi_alloc_skb(GRO_MAX_HEAD).
        skb = napi_get_frags(kernel, rx.napi)
        if skb is None:
            for ix in slots:
                gve_free_buffer(kernel, rx, ix)
            return False
        builder = "napi_get_frags"
    if rx.use_pool and slots:
        skb_mark_for_recycle(skb)
    for ix, size in zip(slots, sizes):
        bs = rx.buf_states[ix]
        skb_add_rx_frag(skb, skb.nr_frags, bs.page, bs.page_offset, size, bs.buf_size)
        gve_reuse_buffer(kernel, rx, ix)
    stats.buffers_released += len(slots)
    rx.last_path = builder
    # gve_rx_complete_skb(): skb->hash from the descriptor (NETIF_F_RXHASH); an skb with nothing in its
    # linear part goes through napi_gro_frags() (the frame's leading bytes with it, as its frag 0 has them).
    skb.hash = comp.rss_hash
    stats.frames += 1
    if builder == "napi_get_frags":
        stats.bytes += skb.len - ETH_HLEN   # counted as the other paths count it: after eth_type_trans()
        skb.header_bytes = comp.header
        napi_gro_frags(kernel, rx.napi, deliver)
    else:
        stats.bytes += skb.len
        napi_gro_receive(kernel, rx.napi, skb, deliver)
    return True


def gve_rx_poll_dqo(kernel: Kernel, rx: gve_rx_ring, budget: int, deliver: Deliver) -> int:
    """gve_rx_dqo.c: gve_rx_poll_dqo() - frames up to the budget, then gve_rx_post_buffers_dqo()."""
    stats = rx.stats
    stats.polls += 1
    if budget <= 0:
        return budget
    done = 0
    with kernel.softirq(rx.napi.cpu):
        while done < budget and rx.completions:
            hdr_len, comp = rx.completions.popleft()
            stats.buffers_used += len(comp.slots)
            done += 1
            if not gve_rx_dqo_frame(kernel, rx, hdr_len, comp, deliver):
                stats.skb_alloc_failures += 1
                stats.drop(comp.length)
        gve_rx_post_buffers_dqo(kernel, rx)
        # gve_napi_poll_dqo(): work left (the budget used) reschedules; otherwise napi_complete_done().
        return pp_napi_complete(kernel, rx, done, budget, deliver)


# -- the driver interface ---------------------------------------------------------------------------------


OPTIONS = GRO_OPTIONS + (
    DriverOption("mtu", "1500", f"interface MTU, {ETH_MIN_MTU}..{GVE_MAX_MTU} (the device's limit; Google Cloud "
                 "allows up to 8896)", int_option("mtu", ETH_MIN_MTU, GVE_MAX_MTU)),
    DriverOption("ring", str(GVE_DEFAULT_RX_RING), "RX buffer queue entries, 64..4096 (the device's default "
                 "assumed 1024)", int_option("ring", 64, 4096)),
    DriverOption("hsplit", "off", "header split (ethtool -G tcp-data-split), 6.9+; 4K packet buffers",
                 choice_option("hsplit", ("on", "off"))),
    DriverOption("rx_buf_len", "2048", "packet buffer size (ethtool -G rx-buf-len, 7.x): 2048 or 4096",
                 choice_option("rx_buf_len", ("2048", "4096"))),
)


def gve_rx_alloc_ring_dqo(kernel: Kernel, dev: net_device, napi: napi_struct, options: dict[str, str] | None):
    """gve_rx_dqo.c: gve_rx_alloc_ring_dqo() and gve_rx_post_buffers_dqo() for one queue."""
    values = parse_options("gve", OPTIONS, options)
    profile = kernel.profile
    if profile.PAGE_SIZE != 4096:
        raise InputError(f"gve: PAGE_SIZE {profile.PAGE_SIZE} is not modelled")
    rule = profile.feature("gve_rx_buf_len")
    hsplit = values["hsplit"] == "on"
    if hsplit and rule == "fixed_2048":
        raise InputError(f"option hsplit=on: gve of {profile.name} has no header split (6.9+)")
    if values["rx_buf_len"] != "2048" and rule != "ethtool":
        raise InputError(f"option rx_buf_len={values['rx_buf_len']}: gve of {profile.name} sizes its buffers "
                         "itself (4096 only with header split); rx-buf-len is settable from 7.x")
    rx = gve_rx_ring(dev, napi, values["ring"])
    dev.mtu = values["mtu"]
    netdev_set_gro(dev, values)
    rx.rxmax = dev.mtu + ETH_HLEN
    rx.hsplit = hsplit
    if rule == "ethtool":
        rx.buf_size = int(values["rx_buf_len"])
    else:
        rx.buf_size = GVE_MAX_RX_BUFFER_SIZE if hsplit else GVE_DEFAULT_RX_BUFFER_SIZE   # gve_get_pkt_buf_size()
    rx.use_pool = profile.feature("gve_dqo_rx_buffers") == "page_pool"
    if rx.use_pool:
        params = page_pool_params(flags=PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV,
                                  pool_size=GVE_PAGE_POOL_SIZE_MULTIPLIER * rx.count, napi=napi,
                                  max_len=profile.PAGE_SIZE, netdev=dev)
        pool, err = page_pool_create(kernel, params, name=f"gve rx {napi.napi_id:#x}")
        if pool is None:
            raise InputError(f"gve: page_pool_create() failed with {err}")
        rx.page_pool = pool
        rx.page_pools = [pool]
    else:
        rx.page_pools = []
    rx.config = {
        "mtu": dev.mtu,
        "ring": rx.count,
        "hsplit": values["hsplit"],
        "buf_size": rx.buf_size,
        "copybreak": rx.copybreak,
        "rxmax": rx.rxmax,
        "rules": "page_pool buffers (6.18)" if rx.use_pool else "own pages split in buffer-sized chunks (up to 6.12)",
    }
    with kernel.softirq(napi.cpu):
        gve_rx_post_buffers_dqo(kernel, rx)
    return rx


def gve_rx_free_ring_dqo(kernel: Kernel, rx: gve_rx_ring) -> None:
    """gve_rx_dqo.c: gve_rx_reset_ring_dqo() / gve_rx_free_ring_dqo() - every buffer's page back, the pool
    destroyed."""
    while rx.completions:
        _, comp = rx.completions.popleft()
        rx.bufq.extend(comp.slots)
        rx.stats.drop(comp.length)
    with kernel.softirq(rx.napi.cpu):
        for bs in rx.buf_states:
            if bs.page is None:
                continue
            if rx.use_pool:
                page_pool_put_full_page(kernel, rx.page_pool, bs.page, False)
                bs.page = None
            else:
                gve_free_page_dqo(kernel, bs)
    # gve_remove_napi() -> netif_napi_del(): napi->skb and what GRO still holds are freed.
    netif_napi_del(kernel, rx.napi)
    rx.bufq.clear()
    rx.recycled.clear()
    rx.used.clear()
    if rx.page_pool is not None:
        page_pool_destroy(kernel, rx.page_pool)


DRIVER = Driver(
    name="gve",
    summary="Google gVNIC (gve) DQO RDA: 2K packet buffers, rx copybreak, napi_get_frags skbs, header split",
    options=OPTIONS,
    open_queue=gve_rx_alloc_ring_dqo,
    nic_receive=gve_nic_receive,
    poll=gve_rx_poll_dqo,
    close_queue=gve_rx_free_ring_dqo,
)
