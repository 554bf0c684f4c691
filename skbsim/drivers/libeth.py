"""libeth's RX buffers and the Intel drivers built on them: iavf, idpf and ice's page_pool form.

Sources: drivers/net/ethernet/intel/libeth/rx.c and include/net/libeth/rx.h
(libeth_rx_fq_create(), libeth_rx_page_pool_params(),
libeth_rx_page_pool_params_zc(), libeth_rx_hw_len_mtu(),
libeth_rx_hw_len_truesize(), libeth_rx_alloc(), libeth_rx_sync_for_cpu()),
include/linux/net/intel/libie/rx.h, iavf_txrx.c (iavf_setup_rx_descriptors(),
iavf_clean_rx_irq(), iavf_build_skb(), iavf_add_rx_frag()), idpf_txrx.c
(idpf_rx_bufs_init_all(), idpf_rx_splitq_clean(), idpf_rx_hsplit_wa()) of
6.12.117 and 6.18.35, and ice_base.c / ice_txrx.c of 7.1.3 for ice's
page_pool form (ice_rxq_pp_create(), ice_clean_rx_irq()).

A libeth fill queue (``libeth_fq``) is a page_pool of order-0 pages plus the
numbers every buffer shares: ``buf_len``, what the NIC may write per buffer,
and ``truesize``, what each buffer takes of a page.  Buffers come from
page_pool_dev_alloc(truesize), so two 2048-byte buffers share a 4K page and
a 4096-byte one takes the whole page.  The pool's offset (the headroom the
stack needs, LIBETH_SKB_HEADROOM = NET_SKB_PAD + NET_IP_ALIGN) precedes the
data in each buffer.

Buffer types (enum libeth_fqe_type):

- MTU: buf_len = ALIGN(mtu + LIBETH_RX_LL_LEN, 128), at most the driver's
  limit and LIBETH_RX_PAGE_LEN(headroom) = 3712 on 4K pages; truesize =
  roundup_pow_of_two(SKB_HEAD_ALIGN(headroom + buf_len)).
- SHORT (idpf's second buffer queue): truesize asked for is half the MTU
  queue's; buf_len = ALIGN_DOWN(SKB_WITH_OVERHEAD(truesize - headroom), 128).
- HDR (header-split header buffers): buf_len = ALIGN(LIBETH_MAX_HEAD, 128).
- With header split the payload buffers carry no headroom or skb_shared_info
  (libeth_rx_page_pool_params_zc()): buf_len = truesize =
  clamp(roundup_pow_of_two(mtu), 128, PAGE_SIZE).

Every frame becomes one skb: napi_build_skb() on its first buffer with the
buffer's truesize, skb_reserve(headroom); the following buffers (and, with
header split, the payload buffer after the header buffer) are added with
skb_add_rx_frag() and their truesize; the skb is marked for recycling.
Buffers are refilled from the pool: iavf after every 16 cleaned
descriptors and at the end of the poll, idpf and ice at the end of the
poll.

The NIC: iavf and ice chain up to 5 buffers per frame; idpf (split queue
model) writes a frame into the short buffer queue when it fits one short
buffer, else into MTU buffers - the model's reading of the device's
buffer-queue selection, which the driver does not state.  Header split
splits after the L4 header (eth_get_headlen()); a frame it cannot split goes
whole into payload buffers, and idpf copies its first bytes into the header
buffer (idpf_rx_hsplit_wa(): all of it up to L1_CACHE_BYTES, else
ETH_HLEN).

Every skb goes to GRO (iavf_receive_skb() / idpf_rx_process_skb_fields()
and napi_gro_receive() / ice_receive_skb(); ``gro`` and the other
GRO_OPTIONS as ethtool -K sets them) with skb->hash from the descriptor's
RSS hash (libeth_rx_pt_set_hash()); a poll that did less than its budget
completes NAPI (napi_complete_done()).

libeth exists from 6.10 ('libeth: add Rx buffer management'); the profile
feature ``libeth_rx`` says whether a release has it.  Not modelled: XDP
(its 256-byte headroom), AF_XDP, checksum/VLAN offloads, iavf's legacy
descriptors.
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
from skbsim.drivers.pp_common import PPQueue, RxCompletion, align, finish_rx_skb, pp_napi_complete, roundup_pow_of_two
from skbsim.errors import InputError
from skbsim.net.ethernet import ETH_FCS_LEN, ETH_HLEN, VLAN_HLEN, eth_get_headlen
from skbsim.net.gro import netif_napi_del
from skbsim.net.page_pool import (
    PP_FLAG_DMA_MAP,
    PP_FLAG_DMA_SYNC_DEV,
    page_pool_create,
    page_pool_destroy,
    page_pool_dev_alloc,
    page_pool_params,
    page_pool_put_full_page,
    skb_mark_for_recycle,
)
from skbsim.net.skbuff import __skb_put, napi_build_skb, skb_add_rx_frag, skb_reserve

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.profile import Profile
    from skbsim.traffic.frame import Frame

# include/net/libeth/rx.h, include/linux/net/intel/libie/rx.h
LIBETH_RX_LL_LEN = ETH_HLEN + 2 * VLAN_HLEN + ETH_FCS_LEN
LIBETH_RX_PAGE_ORDER = 0
LIBETH_FQE_MTU = "mtu"
LIBETH_FQE_SHORT = "short"
LIBETH_FQE_HDR = "hdr"
LIBIE_MAX_RX_BUF_LEN = 9728
__LIBIE_MAX_RX_FRM_LEN = 16382
LIBIE_MAX_CHAINED_BUFS = 5
IAVF_RX_BUFFER_WRITE = 16
IDPF_RX_MAX_BUF_SZ = 16384 - 128
ETH_MIN_MTU = 68
U32_MAX = 0xFFFFFFFF

# Per NIC: (ring default, ring min, ring max, ring multiple, largest MTU, buffer limit for MTU buffers)
_NICS = {
    "iavf": (512, 64, 4096, 32, LIBIE_MAX_RX_BUF_LEN),
    "idpf": (512, 64, 8128, 64, IDPF_RX_MAX_BUF_SZ),
    "ice": (2048, 64, 8160, 32, LIBIE_MAX_RX_BUF_LEN),
}
ICE_AQ_SET_MAC_FRAME_SIZE_MAX = 9728
ICE_MAX_MTU = ICE_AQ_SET_MAC_FRAME_SIZE_MAX - (ETH_HLEN + ETH_FCS_LEN + 2 * VLAN_HLEN)


def align_down(x: int, a: int) -> int:
    return x & ~(a - 1)


def rounddown_pow_of_two(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def libeth_skb_headroom(profile: Profile) -> int:
    """include/net/libeth/rx.h: LIBETH_SKB_HEADROOM - NET_SKB_PAD + NET_IP_ALIGN."""
    return profile.NET_SKB_PAD + profile.NET_IP_ALIGN


def libeth_rx_buf_stride(profile: Profile) -> int:
    """LIBETH_RX_BUF_STRIDE - SKB_DATA_ALIGN(128)."""
    return profile.SKB_DATA_ALIGN(128)


def libeth_max_head(profile: Profile) -> int:
    """LIBETH_MAX_HEAD - roundup_pow_of_two(max(MAX_HEADER, 256))."""
    return roundup_pow_of_two(max(profile.MAX_HEADER, 256))


def libeth_rx_page_len(profile: Profile, headroom: int) -> int:
    """LIBETH_RX_PAGE_LEN(hr) - ALIGN_DOWN(SKB_MAX_ORDER(hr, 0), LIBETH_RX_BUF_STRIDE): 3712 on 4K pages."""
    return align_down(profile.SKB_WITH_OVERHEAD((profile.PAGE_SIZE << LIBETH_RX_PAGE_ORDER) - headroom),
                      libeth_rx_buf_stride(profile))


def libie_max_mtu(profile: Profile) -> int:
    """libie/rx.h: LIBIE_MAX_MTU - the longest frame 5 chained buffers take (at most 16382) minus LIBETH_RX_LL_LEN."""
    buf = min(libeth_rx_page_len(profile, libeth_skb_headroom(profile)), LIBIE_MAX_RX_BUF_LEN)
    return min(__LIBIE_MAX_RX_FRM_LEN, buf * LIBIE_MAX_CHAINED_BUFS) - LIBETH_RX_LL_LEN


# -- fill queues (libeth/rx.c) ------------------------------------------------------------------------


class libeth_fqe:
    """include/net/libeth/rx.h: struct libeth_fqe - a posted buffer (page None: empty slot).

    ``done`` (the model's): the NIC wrote into it and the driver has not cleaned it yet.
    """

    __slots__ = ("page", "offset", "truesize", "done")

    def __init__(self) -> None:
        self.page = None
        self.offset = 0
        self.truesize = 0
        self.done = False


class libeth_fq:
    """include/net/libeth/rx.h: struct libeth_fq - pool, buffers and their shared sizes."""

    __slots__ = ("pp", "fqes", "truesize", "count", "type", "hsplit", "buf_len", "offset", "max_len")

    def __init__(self, count: int, fqe_type: str = LIBETH_FQE_MTU, buf_len: int = 0, truesize: int = 0,
                 hsplit: bool = False):
        self.pp = None
        self.fqes = [libeth_fqe() for _ in range(count)]
        self.truesize = truesize
        self.count = count
        self.type = fqe_type
        self.hsplit = hsplit
        self.buf_len = buf_len
        self.offset = 0      # the pool's p.offset: headroom before the data
        self.max_len = 0     # the pool's p.max_len: HW-writeable bytes per page


def libeth_rx_hw_len_mtu(profile: Profile, mtu: int, max_len: int, pp_max_len: int) -> int:
    """libeth/rx.c: libeth_rx_hw_len_mtu() - ALIGN(mtu + LL, stride), within the driver's and the page's limit."""
    stride = libeth_rx_buf_stride(profile)
    length = align(mtu + LIBETH_RX_LL_LEN, stride)
    return min(length, align_down(max_len or U32_MAX, stride), pp_max_len)


def libeth_rx_hw_len_truesize(profile: Profile, offset: int, max_len: int, pp_max_len: int, truesize: int) -> int:
    """libeth/rx.c: libeth_rx_hw_len_truesize() - the buffer length a wanted truesize leaves (short buffers)."""
    stride = libeth_rx_buf_stride(profile)
    low = profile.SKB_HEAD_ALIGN(offset + stride)
    truesize = max(roundup_pow_of_two(low), min(roundup_pow_of_two(truesize),
                                                profile.PAGE_SIZE << LIBETH_RX_PAGE_ORDER))
    length = align_down(profile.SKB_WITH_OVERHEAD(truesize - offset), stride) or stride
    return min(length, align_down(max_len or U32_MAX, stride), pp_max_len)


def libeth_rx_page_pool_params(profile: Profile, fq: libeth_fq, mtu: int) -> None:
    """libeth/rx.c: libeth_rx_page_pool_params() - headroom, buf_len and truesize with the stack's overhead."""
    fq.offset = libeth_skb_headroom(profile)
    fq.max_len = libeth_rx_page_len(profile, fq.offset)
    if fq.type == LIBETH_FQE_MTU:
        fq.buf_len = libeth_rx_hw_len_mtu(profile, mtu, fq.buf_len, fq.max_len)
    elif fq.type == LIBETH_FQE_SHORT:
        fq.buf_len = libeth_rx_hw_len_truesize(profile, fq.offset, fq.buf_len, fq.max_len, fq.truesize)
    else:
        fq.buf_len = align(libeth_max_head(profile), libeth_rx_buf_stride(profile))
    fq.truesize = roundup_pow_of_two(profile.SKB_HEAD_ALIGN(fq.offset + fq.buf_len))


def libeth_rx_page_pool_params_zc(profile: Profile, fq: libeth_fq, mtu: int) -> None:
    """libeth/rx.c: libeth_rx_page_pool_params_zc() - payload buffers of header split: no headroom, no shinfo."""
    fq.offset = 0
    fq.max_len = profile.PAGE_SIZE << LIBETH_RX_PAGE_ORDER
    size = mtu if fq.type == LIBETH_FQE_MTU else fq.truesize
    size = roundup_pow_of_two(size)
    top = min(rounddown_pow_of_two(fq.buf_len or U32_MAX), fq.max_len)
    fq.buf_len = max(libeth_rx_buf_stride(profile), min(size, top))
    fq.truesize = fq.buf_len


def libeth_rx_fq_create(kernel: Kernel, fq: libeth_fq, napi: napi_struct, mtu: int, name: str) -> int:
    """libeth/rx.c: libeth_rx_fq_create() - the sizes, then a page_pool of fq.count order-0 pages; 0 or -errno."""
    profile = kernel.profile
    if fq.hsplit and fq.type != LIBETH_FQE_HDR:
        libeth_rx_page_pool_params_zc(profile, fq, mtu)
    else:
        libeth_rx_page_pool_params(profile, fq, mtu)
    params = page_pool_params(flags=PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV, order=LIBETH_RX_PAGE_ORDER,
                              pool_size=fq.count, napi=napi, max_len=fq.max_len, offset=fq.offset, netdev=napi.dev)
    pool, err = page_pool_create(kernel, params, name=name)
    if pool is None:
        return err
    fq.pp = pool
    return 0


def libeth_rx_alloc(kernel: Kernel, fq: libeth_fq, i: int) -> bool:
    """include/net/libeth/rx.h: libeth_rx_alloc() - page_pool_dev_alloc(truesize) into slot i (False: none)."""
    buf = fq.fqes[i]
    page, offset, truesize = page_pool_dev_alloc(kernel, fq.pp, fq.truesize)
    if page is None:
        return False
    buf.page, buf.offset, buf.truesize = page, offset, truesize
    return True


def libeth_rx_recycle_slow(kernel: Kernel, page) -> None:
    """libeth/rx.c: libeth_rx_recycle_slow() - page_pool_put_full_page() (6.12: page_pool_recycle_direct())."""
    page_pool_put_full_page(kernel, page.pp, page, False)


def libeth_rx_fq_destroy(kernel: Kernel, fq: libeth_fq) -> None:
    """libeth/rx.c: libeth_rx_fq_destroy() - the buffers still posted go back, then the pool."""
    for buf in fq.fqes:
        if buf.page is not None:
            libeth_rx_recycle_slow(kernel, buf.page)
            buf.page = None
            buf.done = False
    page_pool_destroy(kernel, fq.pp)


# -- the queue --------------------------------------------------------------------------------------------


class libeth_rx_queue(PPQueue):
    """An RX queue on libeth fill queues: ``fqs`` are the payload queues (idpf: MTU and short),
    ``hdr_fq`` the header queue with header split; ``next_free[q]`` is where the NIC writes next in fill
    queue q and ``posted[q]`` how many of its buffers are posted."""

    __slots__ = ("nic", "count", "fqs", "hdr_fq", "next_free", "refill_at", "frag_limit")

    def __init__(self, nic: str, dev: net_device, napi: napi_struct, count: int):
        super().__init__("ice" if nic == "ice" else "libeth", dev, napi)
        self.nic = nic
        self.count = count
        self.fqs: list[libeth_fq] = []
        self.hdr_fq: libeth_fq | None = None
        self.next_free: list[int] = []
        self.refill_at = 0
        self.frag_limit = 0


def _ring_size(nic: str, text: str) -> int:
    default, low, high, multiple, _ = _NICS[nic]
    if text == "default":
        return default
    count = int_option("ring", low, high, f" (ethtool -G rx for {nic})")(text)
    return -(-count // multiple) * multiple


def _mtu_limit(profile: Profile, nic: str) -> int:
    return ICE_MAX_MTU if nic == "ice" else libie_max_mtu(profile)


def libeth_open(kernel: Kernel, nic: str, dev: net_device, napi: napi_struct, mtu: int, ring: str,
                hsplit: bool) -> libeth_rx_queue:
    """Open one queue: the fill queue(s) as the NIC's driver asks libeth for them, every buffer posted."""
    profile = kernel.profile
    count = _ring_size(nic, ring)
    queue = libeth_rx_queue(nic, dev, napi, count)
    dev.mtu = mtu
    buf_limit = _NICS[nic][4]
    label = f"{nic} rxq {napi.napi_id:#x}"
    main = libeth_fq(count, LIBETH_FQE_MTU, buf_len=buf_limit, hsplit=hsplit)
    fqs = [main]
    if libeth_rx_fq_create(kernel, main, napi, mtu, label):
        raise InputError(f"{nic}: page_pool_create() failed for {count} buffers")
    if nic == "idpf":
        # idpf_rx_bufs_init_all(): the second buffer queue asks for half the first one's truesize.
        short = libeth_fq(count, LIBETH_FQE_SHORT, buf_len=buf_limit, truesize=main.truesize >> 1, hsplit=hsplit)
        if libeth_rx_fq_create(kernel, short, napi, mtu, label + " short"):
            raise InputError(f"{nic}: page_pool_create() failed for the short buffer queue")
        fqs.append(short)
    queue.fqs = fqs
    if hsplit:
        hdr = libeth_fq(count, LIBETH_FQE_HDR)
        if libeth_rx_fq_create(kernel, hdr, napi, mtu, label + " hdr"):
            raise InputError(f"{nic}: page_pool_create() failed for the header buffers")
        queue.hdr_fq = hdr
    queue.page_pools = [fq.pp for fq in fqs] + ([queue.hdr_fq.pp] if hsplit else [])
    queue.next_free = [0] * len(fqs)
    queue.frag_limit = profile.MAX_SKB_FRAGS
    max_frame = ICE_AQ_SET_MAC_FRAME_SIZE_MAX if nic == "ice" else mtu + LIBETH_RX_LL_LEN - ETH_FCS_LEN
    queue.rxmax = min(max_frame, LIBIE_MAX_CHAINED_BUFS * main.buf_len, __LIBIE_MAX_RX_FRM_LEN)
    queue.config = {
        "nic": nic,
        "mtu": mtu,
        "ring": count,
        "hsplit": "on" if hsplit else "off",
        "buf_len": main.buf_len,
        "truesize": main.truesize,
        "headroom": main.offset,
        "rxmax": queue.rxmax,
    }
    if nic == "idpf":
        queue.config.update(short_buf_len=fqs[1].buf_len, short_truesize=fqs[1].truesize)
    if hsplit:
        queue.config.update(hdr_buf_len=queue.hdr_fq.buf_len, hdr_truesize=queue.hdr_fq.truesize)
    for q in range(len(fqs)):
        _refill(kernel, queue, q)
    if hsplit:
        _refill_fq(kernel, queue, queue.hdr_fq)
    return queue


def _refill_fq(kernel: Kernel, queue: libeth_rx_queue, fq: libeth_fq) -> int:
    """Post a buffer in every empty slot (in slot order); stop at the first failure. Returns how many were posted."""
    posted = 0
    for i, buf in enumerate(fq.fqes):
        if buf.page is None:
            if not libeth_rx_alloc(kernel, fq, i):
                queue.stats.buffer_alloc_failures += 1
                break
            posted += 1
    return posted


def _refill(kernel: Kernel, queue: libeth_rx_queue, q: int) -> None:
    _refill_fq(kernel, queue, queue.fqs[q])


def libeth_nic_receive(kernel: Kernel, queue: libeth_rx_queue, frame: Frame) -> bool:
    """The NIC: the frame into ceil(len / buf_len) posted buffers of the fill queue it picks (and one header
    buffer with header split), or dropped."""
    length = frame.length
    if length > queue.rxmax:
        queue.stats.oversize_drops += 1
        return False
    header = frame_header(frame, queue.synthetic)
    hdr_len = 0
    if queue.hdr_fq is not None:
        hdr_len = eth_get_headlen(queue.dev, header, queue.hdr_fq.buf_len)
        if hdr_len >= length or hdr_len > queue.hdr_fq.buf_len:
            hdr_len = 0
    payload = length - hdr_len
    # The short queue (idpf) takes frames that fit one short buffer; with header split only the
    # MTU queue is used (the model's simplification).
    q = 1 if len(queue.fqs) > 1 and queue.hdr_fq is None and payload <= queue.fqs[1].buf_len else 0
    fq = queue.fqs[q]
    nbufs = -(-payload // fq.buf_len)
    start = queue.next_free[q]
    slots = [(start + i) % fq.count for i in range(nbufs)]
    # A header buffer sits at the same index as the frame's first payload buffer.
    hslot = start if queue.hdr_fq is not None else None
    used = [fq.fqes[i] for i in slots] + ([queue.hdr_fq.fqes[hslot]] if hslot is not None else [])
    if nbufs > fq.count or any(buf.page is None or buf.done for buf in used):
        queue.stats.ring_drops += 1
        return False
    for buf in used:
        buf.done = True
    sizes = [min(fq.buf_len, payload - i * fq.buf_len) for i in range(nbufs)]
    queue.next_free[q] = (start + nbufs) % fq.count
    comp = RxCompletion(slots, sizes, header, frame.rss_hash)
    comp.length = length
    queue.completions.append((q, hslot, hdr_len, comp))
    queue.stats.nic_frames += 1
    return True


def idpf_rx_hsplit_wa_len(payload_len: int, l1_cache_bytes: int) -> int:
    """idpf_rx_hsplit_wa(): the bytes of a frame the NIC did not split that are copied into the header buffer
    (payload_len: its first payload buffer's) - all of them up to L1_CACHE_BYTES, else ETH_HLEN.  (Plain
    integers: the fast engine compiles this function.)"""
    return payload_len if payload_len <= l1_cache_bytes else ETH_HLEN


def libeth_build_frame(kernel: Kernel, queue: libeth_rx_queue, q: int, hslot: int | None, hdr_len: int,
                       comp: RxCompletion):
    """One frame's skb: napi_build_skb() on the first buffer (the header buffer with header split),
    skb_add_rx_frag() for the rest, skb_mark_for_recycle().  None when no sk_buff could be had (the
    buffers go back to their pools)."""
    pages = kernel.pages
    fq = queue.fqs[q]
    # (fill queue, buffer, bytes, offset of the bytes past the pool's headroom)
    bufs = [(fq, fq.fqes[i], size, 0) for i, size in zip(comp.slots, comp.sizes)]
    if queue.hdr_fq is not None:
        if hdr_len == 0:
            # Not split by the NIC: the first bytes are copied into the header buffer (idpf's
            # workaround; ice's page_pool form is modelled the same way).
            hdr_len = idpf_rx_hsplit_wa_len(bufs[0][2], kernel.profile.L1_CACHE_BYTES)
            data_fq, data, size, _ = bufs[0]
            queue.stats.bytes_copied += hdr_len
            if size == hdr_len:
                libeth_rx_recycle_slow(kernel, data.page)
                data.page = None
                data.done = False
                bufs.pop(0)
            else:
                bufs[0] = (data_fq, data, size - hdr_len, hdr_len)
        bufs.insert(0, (queue.hdr_fq, queue.hdr_fq.fqes[hslot], hdr_len, 0))
    first_fq, first, size, _ = bufs[0]
    skb = napi_build_skb(kernel, pages.page_address(first.page) + first.offset, first.truesize)
    if skb is None:
        for _, buf, _, _ in bufs:
            libeth_rx_recycle_slow(kernel, buf.page)
            buf.page = None
            buf.done = False
        return None
    skb_mark_for_recycle(skb)
    skb_reserve(skb, first_fq.offset)
    __skb_put(skb, size)
    skb.head_source = f"libeth {first_fq.type} buffer (page_pool)"
    skb.path = "napi_build_skb"
    first.page = None
    first.done = False
    for bfq, buf, bsize, skip in bufs[1:]:
        if skb.nr_frags >= queue.frag_limit:
            libeth_rx_recycle_slow(kernel, buf.page)
        else:
            skb_add_rx_frag(skb, skb.nr_frags, buf.page, buf.offset + bfq.offset + skip, bsize, buf.truesize)
        buf.page = None
        buf.done = False
    return skb


def libeth_poll(kernel: Kernel, queue: libeth_rx_queue, budget: int, deliver: Deliver) -> int:
    """The NIC driver's clean routine over the completed frames; buffers refilled as the driver does."""
    stats = queue.stats
    stats.polls += 1
    if budget <= 0:
        return budget
    done = 0
    cleaned = 0
    with kernel.softirq(queue.napi.cpu):
        while done < budget and queue.completions:
            q, hslot, hdr_len, comp = queue.completions.popleft()
            nbufs = len(comp.slots) + (1 if hslot is not None else 0)
            stats.buffers_used += nbufs
            stats.buffers_released += nbufs
            skb = libeth_build_frame(kernel, queue, q, hslot, hdr_len, comp)
            done += 1
            cleaned += nbufs
            if skb is None:
                stats.skb_alloc_failures += 1
                stats.drop(comp.length)
            else:
                queue.last_path = _BUILDERS[queue.nic]
                finish_rx_skb(kernel, queue, skb, comp, deliver)
            if queue.nic == "iavf" and cleaned >= IAVF_RX_BUFFER_WRITE:
                _refill_all(kernel, queue)
                cleaned = 0
        _refill_all(kernel, queue)
        return pp_napi_complete(kernel, queue, done, budget, deliver)


_BUILDERS = {"iavf": "iavf_build_skb", "idpf": "idpf_rx_build_skb", "ice": "xdp_build_skb_from_buff"}


def _refill_all(kernel: Kernel, queue: libeth_rx_queue) -> None:
    for fq in queue.fqs:
        _refill_fq(kernel, queue, fq)
    if queue.hdr_fq is not None:
        _refill_fq(kernel, queue, queue.hdr_fq)


def libeth_close(kernel: Kernel, queue: libeth_rx_queue) -> None:
    """Frames not cleaned are lost; every fill queue gives its buffers back and is destroyed."""
    while queue.completions:
        queue.stats.drop(queue.completions.popleft()[3].length)
    for fq in queue.fqs:
        libeth_rx_fq_destroy(kernel, fq)
    if queue.hdr_fq is not None:
        libeth_rx_fq_destroy(kernel, queue.hdr_fq)
    # The driver's netif_napi_del() (iavf_free_q_vectors(), idpf_vport_intr_rel(), ice_vsi_free_q_vectors()):
    # what GRO still holds is freed.
    netif_napi_del(kernel, queue.napi)


# -- the libeth driver (iavf, idpf) -------------------------------------------------------------------------


def _check_release(profile: Profile, what: str) -> None:
    if not profile.has("libeth_rx"):
        raise InputError(f"{what}: kernel {profile.name} has no libeth (6.10+, 'libeth: add Rx buffer "
                         "management'); its iavf and idpf manage their RX pages themselves, which is not modelled")


OPTIONS = GRO_OPTIONS + (
    DriverOption("nic", "iavf", "iavf (one buffer queue) or idpf (split queue model: an MTU and a short buffer queue)",
                 choice_option("nic", ("iavf", "idpf"))),
    DriverOption("mtu", "1500", "interface MTU, 68..LIBIE_MAX_MTU (16356 on 4K pages)", int_option("mtu", ETH_MIN_MTU, 65535)),
    DriverOption("ring", "default", "RX descriptors: iavf 64..4096 (default 512, multiple of 32), idpf 64..8128 "
                 "(default 512, multiple of 64)", str),
    DriverOption("hsplit", "off", "header split (ethtool -G tcp-data-split; idpf only here)",
                 choice_option("hsplit", ("on", "off"))),
)


def libeth_open_queue(kernel: Kernel, dev: net_device, napi: napi_struct, options: dict[str, str] | None):
    values = parse_options("libeth", OPTIONS, options)
    profile = kernel.profile
    nic = values["nic"]
    _check_release(profile, f"libeth nic={nic}")
    if values["mtu"] > _mtu_limit(profile, nic):
        raise InputError(f"option mtu={values['mtu']} is above {_mtu_limit(profile, nic)}, the largest {nic} takes "
                         "(LIBIE_MAX_MTU)")
    if values["hsplit"] == "on" and nic != "idpf":
        raise InputError("option hsplit=on: iavf has no header split (use nic=idpf)")
    netdev_set_gro(dev, values)
    return libeth_open(kernel, nic, dev, napi, values["mtu"], values["ring"], values["hsplit"] == "on")


DRIVER = Driver(
    name="libeth",
    summary="Intel iavf/idpf on libeth (6.10+): page_pool buffers sized by libeth_rx_fq_create()",
    options=OPTIONS,
    open_queue=libeth_open_queue,
    nic_receive=libeth_nic_receive,
    poll=libeth_poll,
    close_queue=libeth_close,
)
