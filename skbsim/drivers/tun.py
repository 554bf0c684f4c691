"""tun/tap, after drivers/net/tun.c: a TAP queue that a user task writes frames to.

One write() of a frame is one call of tun_get_user() in the writer's
process context (the model's ``nic_receive``).  The device is a TAP
opened with IFF_TAP | IFF_NO_PI and no IFF_VNET_HDR, written with plain
write() (no msg_control, so never zerocopy).  tun_get_user() picks one of
the allocation routes:

- **B, tun_build_skb()** when tun_can_build_skb() holds: a non-blocking
  write, the queue socket's sk_sndbuf still INT_MAX (TUNSETSNDBUF never
  used), and SKB_DATA_ALIGN(len + TUN_RX_PAD + XDP_PACKET_HEADROOM) plus
  the aligned skb_shared_info fit in a page (len <= 3456 on x86_64).  The
  buffer is cut from the writer's ``current->task_frag`` (a 32 KiB block,
  skb_page_frag_refill()) and wrapped by build_skb(): truesize = buflen +
  SKB_DATA_ALIGN(sizeof(struct sk_buff)).
- **A, tun_alloc_skb()** otherwise: sock_alloc_send_pskb() ->
  alloc_skb_with_frags() with a kmalloc'ed head.  Up to 6.5 the whole frame
  is linear; from 6.6 the linear part stops at SKB_MAX_HEAD(align) = 3712
  once NET_SKB_PAD + len reaches a page, and the rest goes into page
  blocks of up to order 3 (profile feature ``tun_alloc_linear``).
- **D, tun_napi_alloc_frags()** with IFF_NAPI_FRAGS: napi_get_frags()'s skb,
  grown to hold the first iovec segment (the whole frame for write()),
  then napi_gro_frags() and napi_complete() inside the write.

Routes A and B charge the skb to the queue socket (skb_set_owner_w(), given
back by sock_wfree()).  eth_type_trans() pulls the Ethernet header in
tun_get_user() for every route.  Delivery: with IFF_NAPI (route **C**) the
skb waits on the socket's sk_write_queue and tun_napi_poll() hands it to
napi_gro_receive(); without it tun_rx_batched() calls netif_receive_skb().

GRO: each write() runs the queue's NAPI poll itself (the local_bh_enable()
at the end of tun_get_user() runs the NET_RX softirq it raised), and that
poll finds just this skb and completes NAPI, so GRO passes it up at once:
a writer's segments merge only with a gro_flush_timeout on the device
(napi_complete_done() then keeps what came within the jiffy).  Likewise
IFF_NAPI_FRAGS calls napi_complete() right after napi_gro_frags().

Two differences from the kernel, both in *when*, not *what*:

- The kernel delivers inside the write (netif_receive_skb() directly, or
  the NAPI poll that the local_bh_enable() at the end of tun_get_user()
  runs, or napi_gro_frags()).  The model hands skbs over in ``poll()``,
  one write at a time as above, so a caller sees them through the same
  ``deliver`` as every driver's.  skbs waiting there are still charged to
  the queue socket, which only matters for a small ``sndbuf``.
- The stack orphans an IP packet first thing (ip_rcv_core()'s
  skb_orphan()); the model does so as it hands the skb over (before GRO,
  which would drop the owner of a merged skb without its destructor), so
  the queue socket's sk_wmem_alloc holds only skbs still inside the
  driver.

Options: ``write=block|nonblock`` (O_NONBLOCK on the fd), ``napi=0|1``
(IFF_NAPI), ``frags=0|1`` (IFF_NAPI_FRAGS, needs napi=1), ``sndbuf=N``
(TUNSETSNDBUF; INT_MAX, the default, is "never set").

Stats, in the terms of :class:`~skbsim.drivers.base.RxQueueStats`: a
write whose frame became an skb is a ``nic_frames``; the copy from user
space is a ``buffers_copied`` of the whole frame; a refused write is a
``frames_dropped``; the task_frag block reused from offset 0 (every skb cut
from it freed) is a ``buffers_reused``, one given up for a fresh block a
``buffers_released``; ``pages_allocated`` counts task_frag blocks and the
page blocks of paged skbs.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import TYPE_CHECKING

from skbsim.drivers.base import (
    GRO_OPTIONS,
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
from skbsim.mm.gfp import GFP_KERNEL
from skbsim.net.core_sock import (
    INT_MAX,
    PAGE_ALLOC_COSTLY_ORDER,
    page_frag,
    page_frag_release,
    sk_free,
    sk_wmem_alloc_get,
    skb_orphan,
    skb_page_frag_refill,
    skb_set_owner_w,
    sock,
    sock_alloc_send_pskb,
)
from skbsim.net.ethernet import ETH_HLEN, eth_type_trans
from skbsim.net.gro import (
    napi_complete,
    napi_complete_done,
    napi_free_frags,
    napi_get_frags,
    napi_gro_frags,
    napi_gro_receive,
    netif_napi_del,
)
from skbsim.net.napi import NAPI_POLL_WEIGHT, local_bh_disable, local_bh_enable
from skbsim.net.skbuff import (
    __skb_grow,
    build_skb,
    kfree_skb,
    netdev_alloc_frag,
    sk_buff,
    skb_fill_page_desc,
    skb_push,
    skb_put,
    skb_reserve,
    skb_tailroom,
)

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.traffic.frame import Frame

# include/uapi/linux/if_tun.h
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_NAPI = 0x0010
IFF_NAPI_FRAGS = 0x0020
IFF_NO_PI = 0x1000
TUN_TYPE_MASK = 0x000F
# include/uapi/linux/bpf.h
XDP_PACKET_HEADROOM = 256
# include/uapi/linux/if_ether.h: ETH_MAX_MTU
ETH_MAX_MTU = 0xFFFF

EINVAL = 22
ENOMEM = 12
EAGAIN = 11
EPIPE = 32
EMSGSIZE = 90
ENOBUFS = 105

#: Frame lengths the model takes (a TAP refuses fewer than ETH_HLEN bytes).
MIN_FRAME_LEN = ETH_HLEN
MAX_FRAME_LEN = 65535


# -- kernel objects ------------------------------------------------------------------------


class tun_struct:
    """drivers/net/tun.c: struct tun_struct - the device's flags, alignment and send buffer.

    ``align`` is NET_SKB_PAD from TUNSETIFF (TUNSETHEADROOM could raise it;
    not modelled).  No XDP program is ever attached.
    """

    __slots__ = ("flags", "dev", "align", "sndbuf", "rx_batched")

    def __init__(self, dev: net_device, flags: int, align: int, sndbuf: int = INT_MAX):
        self.flags = flags
        self.dev = dev
        self.align = align
        self.sndbuf = sndbuf
        self.rx_batched = 0


class tun_file:
    """drivers/net/tun.c: struct tun_file - one queue: its socket, its NAPI and its queue index."""

    __slots__ = ("sk", "napi", "napi_enabled", "napi_frags_enabled", "napi_scheduled", "queue_index",
                 "rx_handoff")

    def __init__(self, sk: sock, napi: napi_struct, napi_enabled: bool, napi_frags: bool):
        self.sk = sk
        self.napi = napi
        self.napi_enabled = napi_enabled
        self.napi_frags_enabled = napi_enabled and napi_frags
        self.napi_scheduled = False
        self.queue_index = 0
        # skbs netif_receive_skb() or napi_gro_frags() was called on, until the model's poll() hands
        # them over.
        self.rx_handoff: deque[sk_buff] = deque()


class task_struct:
    """The writing task: only its page_frag (current->task_frag) matters here."""

    __slots__ = ("task_frag",)

    def __init__(self) -> None:
        self.task_frag = page_frag()


class TunQueue:
    """One tun queue as the simulator drives it: the device, its file, the writer, counters."""

    __slots__ = ("driver", "dev", "napi", "stats", "config", "tun", "tfile", "task", "noblock", "routes",
                 "write_errors", "last_path", "stack_orphans", "synthetic")

    def __init__(self, dev: net_device, napi: napi_struct, tun: tun_struct, tfile: tun_file, noblock: bool,
                 config: dict):
        self.driver = "tun"
        self.dev = dev
        self.napi = napi
        self.stats = RxQueueStats()
        self.config = config
        self.tun = tun
        self.tfile = tfile
        self.task = task_struct()
        self.noblock = noblock
        # Which allocation route each accepted write took, and why writes failed.
        self.routes: Counter[str] = Counter()
        self.write_errors: Counter[str] = Counter()
        self.last_path = ""
        # False: poll() orphans each skb as it hands it over (see the module docstring).  True: the
        # caller's IP layer does (ip_rcv_core() trims first, then orphans), as skbsim.tcp_session's does.
        self.stack_orphans = False
        # the header of a frame without header bytes (built once: frame_header()), as the other drivers keep it
        self.synthetic = synthetic_header_template()


# -- constants of tun_get_user -------------------------------------------------------------


def TUN_RX_PAD(kernel: Kernel) -> int:
    """drivers/net/tun.c: TUN_RX_PAD = NET_IP_ALIGN + NET_SKB_PAD."""
    return kernel.profile.NET_IP_ALIGN + kernel.profile.NET_SKB_PAD


def SKB_MAX_HEAD(kernel: Kernel, x: int) -> int:
    """include/linux/skbuff.h: SKB_MAX_HEAD(X) = SKB_WITH_OVERHEAD(PAGE_SIZE - X)."""
    return kernel.profile.SKB_WITH_OVERHEAD(kernel.profile.PAGE_SIZE - x)


# -- the routes ----------------------------------------------------------------------------


def tun_can_build_skb(kernel: Kernel, tun: tun_struct, tfile: tun_file, length: int, noblock: bool,
                      zerocopy: bool = False) -> bool:
    """drivers/net/tun.c: tun_can_build_skb() - may this write use tun_build_skb()?

    The XDP headroom is counted whether or not a program is attached.
    """
    profile = kernel.profile
    explain = kernel.explain is not None
    if tun.flags & TUN_TYPE_MASK != IFF_TAP:
        return False
    if tfile.sk.sk_sndbuf != INT_MAX:
        if explain:
            kernel.note(f"tun_can_build_skb: sk_sndbuf {tfile.sk.sk_sndbuf} is not INT_MAX (TUNSETSNDBUF was used)")
        return False
    if not noblock:
        if explain:
            kernel.note("tun_can_build_skb: a blocking write never uses tun_build_skb")
        return False
    if zerocopy:
        return False
    needed = profile.SKB_DATA_ALIGN(length + TUN_RX_PAD(kernel) + XDP_PACKET_HEADROOM) + profile.SHINFO_SIZE
    if needed > profile.PAGE_SIZE:
        if explain:
            kernel.note(
                f"tun_can_build_skb: SKB_DATA_ALIGN({length} + TUN_RX_PAD {TUN_RX_PAD(kernel)} + XDP_PACKET_HEADROOM "
                f"{XDP_PACKET_HEADROOM}) + {profile.SHINFO_SIZE} = {needed} > PAGE_SIZE {profile.PAGE_SIZE}"
            )
        return False
    if explain:
        kernel.note(f"tun_can_build_skb: non-blocking, sk_sndbuf INT_MAX and {needed} <= PAGE_SIZE: tun_build_skb")
    return True


def __tun_build_skb(kernel: Kernel, tfile: tun_file, alloc_frag: page_frag, buf: int, buflen: int, length: int,
                    pad: int) -> sk_buff | None:
    """drivers/net/tun.c: __tun_build_skb() - build_skb() around the task_frag buffer.

    The skb takes its own reference on the block (get_page) and the frag
    moves past the buffer.
    """
    skb = build_skb(kernel, buf, buflen)
    if skb is None:
        return None
    skb_reserve(skb, pad)
    skb_put(skb, length)
    skb_set_owner_w(skb, tfile.sk)
    kernel.pages.get_page(alloc_frag.page)
    alloc_frag.offset += buflen
    return skb


def tun_build_skb(kernel: Kernel, tun: tun_struct, tfile: tun_file, task: task_struct,
                  length: int) -> tuple[sk_buff | None, int]:
    """drivers/net/tun.c: tun_build_skb() with no XDP program - (skb, 0) or (None, -errno).

    buflen = SKB_DATA_ALIGN(len + TUN_RX_PAD) + SKB_DATA_ALIGN(sizeof(struct
    skb_shared_info)), cut from current->task_frag at an offset rounded up
    to SMP_CACHE_BYTES.
    """
    profile = kernel.profile
    alloc_frag = task.task_frag
    pad = TUN_RX_PAD(kernel)
    buflen = profile.SHINFO_SIZE + profile.SKB_DATA_ALIGN(length + pad)
    alloc_frag.offset = profile.SKB_DATA_ALIGN(alloc_frag.offset)
    if not skb_page_frag_refill(kernel, buflen, alloc_frag, GFP_KERNEL):
        return None, -ENOMEM
    buf = kernel.pages.page_address(alloc_frag.page) + alloc_frag.offset
    if kernel.explain is not None:
        kernel.note(
            f"tun_build_skb: buflen = SKB_DATA_ALIGN({length} + {pad}) + {profile.SHINFO_SIZE} = {buflen} at offset "
            f"{alloc_frag.offset} of the task's {alloc_frag.size}-byte block; truesize = {buflen} + "
            f"{profile.SKB_HEAD_STRUCT_SIZE}"
        )
    skb = __tun_build_skb(kernel, tfile, alloc_frag, buf, buflen, length, pad)
    if skb is None:
        return None, -ENOMEM
    skb.head_source = "task_frag"
    return skb, 0


def tun_alloc_skb(kernel: Kernel, tfile: tun_file, prepad: int, length: int, linear: int,
                  noblock: bool) -> tuple[sk_buff | None, int]:
    """drivers/net/tun.c: tun_alloc_skb() - (skb, 0) or (None, -errno).

    A frame that fits a page with its headroom (prepad + len < PAGE_SIZE)
    is made all linear; so is every frame when linear is 0 (6.1's caller
    always passes 0).  From 6.6 the paged part may use blocks up to
    PAGE_ALLOC_COSTLY_ORDER and is limited to MAX_SKB_FRAGS such blocks;
    6.1 passes max_page_order 0.
    """
    profile = kernel.profile
    whole_frame = profile.feature("tun_alloc_linear") == "whole_frame"
    if prepad + length < profile.PAGE_SIZE or (whole_frame and not linear):
        linear = length
    max_page_order = 0 if whole_frame else PAGE_ALLOC_COSTLY_ORDER
    if not whole_frame:
        limit = profile.MAX_SKB_FRAGS * (profile.PAGE_SIZE << PAGE_ALLOC_COSTLY_ORDER)
        if length - linear > limit:
            linear = length - limit
    if kernel.explain is not None:
        kernel.note(
            f"tun_alloc_skb: sock_alloc_send_pskb(header_len = {prepad} + {linear}, data_len = {length - linear}, "
            f"max_page_order {max_page_order})"
        )
    skb, err = sock_alloc_send_pskb(kernel, tfile.sk, prepad + linear, length - linear, noblock, max_page_order)
    if skb is None:
        return None, err
    skb_reserve(skb, prepad)
    skb_put(skb, linear)
    skb.data_len = length - linear
    skb.len += length - linear
    return skb, 0


def tun_napi_alloc_frags(kernel: Kernel, tfile: tun_file, length: int,
                         segments: list[int]) -> tuple[sk_buff | None, int]:
    """drivers/net/tun.c: tun_napi_alloc_frags() - (skb, 0) or (None, -errno).

    The first iovec segment becomes the linear part of napi_get_frags()'s
    skb (__skb_grow(), which reallocates the head when its tailroom is too
    small); every further segment (1..PAGE_SIZE bytes) a netdev_alloc_frag()
    page fragment of exactly its size.  truesize grows by the paged length
    only.  The skb is not charged to the socket.
    """
    profile = kernel.profile
    if sum(segments) != length or not segments:
        raise ValueError("iovec segments must add up to the frame length")
    if len(segments) > profile.MAX_SKB_FRAGS + 1 or length > ETH_MAX_MTU - profile.NET_SKB_PAD - profile.NET_IP_ALIGN:
        return None, -EMSGSIZE
    local_bh_disable(kernel)
    skb = napi_get_frags(kernel, tfile.napi)
    local_bh_enable(kernel)
    if skb is None:
        return None, -ENOMEM
    linear = segments[0]
    if kernel.explain is not None:
        kernel.note(f"tun_napi_alloc_frags: napi skb with tailroom {skb_tailroom(skb)}, linear part {linear}")
    err = __skb_grow(kernel, skb, linear)
    if err:
        napi_free_frags(kernel, tfile.napi)
        return None, err
    skb.len = length
    skb.data_len = length - linear
    skb.truesize += skb.data_len
    for i, fragsz in enumerate(segments[1:], start=1):
        if fragsz == 0 or fragsz > profile.PAGE_SIZE:
            napi_free_frags(kernel, tfile.napi)
            return None, -EINVAL
        frag = netdev_alloc_frag(kernel, fragsz)
        if frag is None:
            napi_free_frags(kernel, tfile.napi)
            return None, -ENOMEM
        page = kernel.pages.virt_to_head_page(frag)
        skb_fill_page_desc(skb, i - 1, page, frag - kernel.pages.page_address(page), fragsz)
    return skb, 0


def tun_napi_frags_handoff(kernel: Kernel, tfile: tun_file) -> None:
    """The start of napi_gro_frags() in tun_get_user(): napi_frags_skb() takes napi->skb (the next
    write's napi_get_frags() allocates afresh).  The rest, and napi_complete(), run at the hand-off
    in poll()."""
    skb, tfile.napi.skb = tfile.napi.skb, None
    tfile.rx_handoff.append(skb)


# -- tun_get_user and delivery ---------------------------------------------------------------


def netif_receive_skb(kernel: Kernel, tfile: tun_file, skb: sk_buff) -> None:
    """net/core/dev.c: netif_receive_skb() as tun calls it: the skb goes to the stack.

    The model hands it over at the next poll() (see the module docstring).
    """
    tfile.rx_handoff.append(skb)


def tun_rx_batched(kernel: Kernel, tun: tun_struct, tfile: tun_file, skb: sk_buff, more: bool) -> None:
    """drivers/net/tun.c: tun_rx_batched() - rx_batched is 0 by default: netif_receive_skb() at once."""
    local_bh_disable(kernel)
    skb.queue_mapping = tfile.queue_index + 1  # skb_record_rx_queue()
    netif_receive_skb(kernel, tfile, skb)
    local_bh_enable(kernel)


def napi_schedule(tfile: tun_file) -> None:
    """include/linux/netdevice.h: napi_schedule() - the queue's poll will run."""
    tfile.napi_scheduled = True


def tun_get_user(kernel: Kernel, tun: tun_struct, tfile: tun_file, task: task_struct, length: int,
                 header: bytes, noblock: bool, more: bool = False,
                 segments: list[int] | None = None) -> tuple[int, str, sk_buff | None]:
    """drivers/net/tun.c: tun_get_user() for a TAP without PI or vnet header and no msg_control.

    Returns (bytes written or -errno, route taken, the skb built).  The
    route is "tun_build_skb", "tun_alloc_skb" or "tun_napi_alloc_frags";
    the skb is on its way to the stack (the caller must not free it).
    ``segments`` are the iovec lengths of a writev() (IFF_NAPI_FRAGS only
    looks at them); a write() is one segment of the whole frame.
    ``header`` is the frame's first bytes (for eth_type_trans()).
    """
    profile = kernel.profile
    align = tun.align
    frags = tfile.napi_frags_enabled
    if tun.flags & TUN_TYPE_MASK == IFF_TAP:
        align += profile.NET_IP_ALIGN
        if length < ETH_HLEN:
            return -EINVAL, "", None
    good_linear = SKB_MAX_HEAD(kernel, align)

    if not frags and tun_can_build_skb(kernel, tun, tfile, length, noblock):
        route = "tun_build_skb"
        skb, err = tun_build_skb(kernel, tun, tfile, task, length)
    elif frags:
        route = "tun_napi_alloc_frags"
        skb, err = tun_napi_alloc_frags(kernel, tfile, length, segments or [length])
    else:
        route = "tun_alloc_skb"
        copylen = length
        # Without a vnet header gso.hdr_len is 0, so linear starts at 0.
        linear = 0
        if profile.feature("tun_alloc_linear") == "good_linear" and not linear:
            linear = min(good_linear, copylen)
        skb, err = tun_alloc_skb(kernel, tfile, align, copylen, linear, noblock)
    if skb is None:
        return err, route, None
    skb.path = route
    # skb_copy_datagram_from_iter() / copy_page_from_iter(): the bytes themselves are not modelled.

    skb.protocol = eth_type_trans(skb, tun.dev, header)
    skb.queue_mapping = tfile.queue_index + 1  # skb_record_rx_queue()

    if frags:
        # skb_push(ETH_HLEN) for eth_get_headlen(), then napi_gro_frags(); the model pushes at the hand-off.
        tun_napi_frags_handoff(kernel, tfile)
    elif tfile.napi_enabled:
        # spin_lock_bh(): the BH stay off until the local_bh_enable() below.
        local_bh_disable(kernel)
        tfile.sk.sk_write_queue.append(skb)
        if not more or len(tfile.sk.sk_write_queue) > NAPI_POLL_WEIGHT:
            napi_schedule(tfile)
        local_bh_enable(kernel)
    else:
        tun_rx_batched(kernel, tun, tfile, skb, more)
    return length, route, skb


# -- the driver interface ----------------------------------------------------------------------

OPTIONS = GRO_OPTIONS + (
    DriverOption("write", "block", "how the writer's fd is opened: block, or nonblock (O_NONBLOCK)",
                 choice_option("write", ("block", "nonblock"))),
    DriverOption("napi", "0", "1: IFF_NAPI (skbs go through the queue's NAPI and napi_gro_receive)",
                 choice_option("napi", ("0", "1"))),
    DriverOption("frags", "0", "1: IFF_NAPI_FRAGS (napi_get_frags skbs, needs napi=1)",
                 choice_option("frags", ("0", "1"))),
    DriverOption("sndbuf", str(INT_MAX), f"TUNSETSNDBUF value; anything but {INT_MAX} (INT_MAX) disables tun_build_skb",
                 int_option("sndbuf", 1, INT_MAX)),
)


def open_queue(kernel: Kernel, dev: net_device, napi: napi_struct, options: dict[str, str] | None) -> TunQueue:
    """tun_chr_open() + TUNSETIFF(IFF_TAP | IFF_NO_PI [| IFF_NAPI [| IFF_NAPI_FRAGS]]) [+ TUNSETSNDBUF]."""
    values = parse_options("tun", OPTIONS, options)
    napi_enabled = values["napi"] == "1"
    napi_frags = values["frags"] == "1"
    if napi_frags and not napi_enabled:
        raise InputError("option frags=1 needs napi=1 (tun refuses IFF_NAPI_FRAGS without IFF_NAPI)")
    flags = IFF_TAP | IFF_NO_PI
    if napi_enabled:
        flags |= IFF_NAPI
    if napi_frags:
        flags |= IFF_NAPI_FRAGS
    profile = kernel.profile
    sndbuf = values["sndbuf"]
    tun = tun_struct(dev, flags, align=profile.NET_SKB_PAD, sndbuf=sndbuf)
    # tun_chr_open() sets sk_sndbuf to INT_MAX; TUNSETIFF copies tun->sndbuf to the queue socket.
    sk = sock(f"tun {dev.name} queue 0", sndbuf=tun.sndbuf)
    tfile = tun_file(sk, napi, napi_enabled, napi_frags)
    netdev_set_gro(dev, values)
    noblock = values["write"] == "nonblock"
    align = tun.align + profile.NET_IP_ALIGN
    config = {
        "write": values["write"],
        "napi": int(napi_enabled),
        "frags": int(napi_frags),
        "sndbuf": sndbuf,
        "align": align,
        "good_linear": SKB_MAX_HEAD(kernel, align),
        "build_skb_max_len": _build_skb_max_len(kernel) if sndbuf == INT_MAX and noblock and not napi_frags else None,
        "linear_rule": profile.feature("tun_alloc_linear"),
        "event": "napi_gro_frags_entry" if napi_frags else ("napi_gro_receive_entry" if napi_enabled
                                                            else "netif_receive_skb_entry"),
    }
    return TunQueue(dev, napi, tun, tfile, noblock, config)


def _build_skb_max_len(kernel: Kernel) -> int:
    """The longest frame tun_can_build_skb() accepts (3456 on x86_64 with 4K pages)."""
    profile = kernel.profile
    room = profile.PAGE_SIZE - profile.SHINFO_SIZE
    return room - (room % profile.SMP_CACHE_BYTES) - TUN_RX_PAD(kernel) - XDP_PACKET_HEADROOM


def nic_receive(kernel: Kernel, queue: TunQueue, frame: Frame) -> bool:
    """The user task's write() of one frame: tun_chr_write_iter() -> tun_get_user().

    Runs in process context on the NAPI's CPU.  False when the write is
    refused (-EINVAL for a frame shorter than ETH_HLEN, -EAGAIN over the
    send buffer, -ENOMEM / -ENOBUFS without memory, -EMSGSIZE);
    ``queue.write_errors`` says which.
    """
    stats = queue.stats
    pfrag = queue.task.task_frag
    refills, reuses, releases = pfrag.refills, pfrag.reuses, pfrag.releases
    with kernel.on_cpu(queue.napi.cpu):
        written, route, skb = tun_get_user(kernel, queue.tun, queue.tfile, queue.task, frame.length,
                                           frame_header(frame, queue.synthetic), queue.noblock)
    stats.buffers_reused += pfrag.reuses - reuses
    stats.buffers_released += pfrag.releases - releases
    stats.pages_allocated += pfrag.refills - refills
    queue.last_path = route
    if written < 0:
        stats.frames_dropped += 1
        queue.write_errors[_errno_name(-written)] += 1
        if written in (-ENOMEM, -ENOBUFS):
            stats.skb_alloc_failures += 1
        return False
    stats.pages_allocated += skb.nr_frags if route == "tun_alloc_skb" else 0
    stats.nic_frames += 1
    stats.buffers_copied += 1
    stats.bytes_copied += frame.length
    queue.routes[route] += 1
    return True


def _errno_name(errno_value: int) -> str:
    return {EINVAL: "EINVAL", ENOMEM: "ENOMEM", EMSGSIZE: "EMSGSIZE", EAGAIN: "EAGAIN", EPIPE: "EPIPE",
            ENOBUFS: "ENOBUFS"}.get(errno_value, f"errno {errno_value}")


def written_skbs(tfile: tun_file):
    """Where tun_get_user() leaves the skbs it wrote for the queue's poll: the socket's sk_write_queue with
    IFF_NAPI (not IFF_NAPI_FRAGS), else the model's rx_handoff."""
    return tfile.sk.sk_write_queue if tfile.napi_enabled and not tfile.napi_frags_enabled else tfile.rx_handoff


def poll(kernel: Kernel, queue: TunQueue, budget: int, deliver) -> int:
    """The skbs writes handed on, in order, at most ``budget`` of them (see the module docstring).

    Each is orphaned first (unless the caller's IP layer orphans it after
    trimming, ``queue.stack_orphans``).  With IFF_NAPI, its write's tun_napi_poll():
    tun_napi_receive() gives it to napi_gro_receive(), and having done less
    than its budget completes NAPI (napi_complete_done(), work 1).  With
    IFF_NAPI_FRAGS, the rest of its write's napi_gro_frags() (the Ethernet
    header pushed back first, as tun_get_user() left it) and napi_complete().
    Without IFF_NAPI, netif_receive_skb(): straight to ``deliver``.  With
    IFF_NAPI the queue's NAPI is unscheduled once its queue is empty, and a
    poll that finds nothing (the GRO flush timer's) completes NAPI.
    """
    stats = queue.stats
    stats.polls += 1
    tfile = queue.tfile
    napi = tfile.napi
    frags = tfile.napi_frags_enabled
    napi_enabled = tfile.napi_enabled
    waiting = written_skbs(tfile)
    done = 0
    while done < budget and waiting:
        skb = waiting.popleft()
        if not queue.stack_orphans:
            skb_orphan(skb)
        stats.frames += 1
        stats.bytes += skb.len + ETH_HLEN
        if frags:
            skb_push(skb, ETH_HLEN)
            napi.skb = skb
            napi_gro_frags(kernel, napi, deliver)
            napi_complete(kernel, napi, deliver)
        elif napi_enabled:
            napi_gro_receive(kernel, napi, skb, deliver)
            napi_complete_done(kernel, napi, 1, deliver)
        else:
            deliver(skb)
        done += 1
    if napi_enabled and not frags and not done:
        # A poll with nothing queued (the GRO flush timer's): tun_napi_poll() completes NAPI.
        napi_complete_done(kernel, napi, 0, deliver)
    if napi_enabled and not frags and done < budget:
        tfile.napi_scheduled = False
    return done


def pending(kernel: Kernel, queue: TunQueue) -> bool:
    """Frames written but not yet handed to the stack."""
    tfile = queue.tfile
    return bool(tfile.rx_handoff or tfile.sk.sk_write_queue)


def close_queue(kernel: Kernel, queue: TunQueue) -> None:
    """close() of the queue fd (tun_detach: the write queue is purged), then the writer exits.

    skbs still in the driver are freed (their sock_wfree() runs); the
    writer's task_frag reference goes; the socket drops its own wmem
    reference and is gone once skbs the stack holds are freed too.
    """
    tfile = queue.tfile
    with kernel.on_cpu(queue.napi.cpu):
        for waiting in (tfile.sk.sk_write_queue, tfile.rx_handoff):
            while waiting:
                kfree_skb(kernel, waiting.popleft())
        # tun_napi_del() -> netif_napi_del(): napi->skb and what GRO holds.
        netif_napi_del(kernel, tfile.napi)
        page_frag_release(kernel, queue.task.task_frag)
    sk_free(tfile.sk)


def stats(queue: TunQueue) -> dict[str, int]:
    """The queue's counters, plus tun's own: routes taken, refused writes, socket charge."""
    out = queue.stats.as_dict()
    for route in ("tun_build_skb", "tun_alloc_skb", "tun_napi_alloc_frags"):
        out[f"route_{route}"] = queue.routes.get(route, 0)
    for name, count in sorted(queue.write_errors.items()):
        out[f"write_{name}"] = count
    out["wmem_alloc"] = sk_wmem_alloc_get(queue.tfile.sk)
    return out


DRIVER = Driver(
    "tun",
    "drivers/net/tun.c: a TAP queue written by a user task (tun_build_skb / tun_alloc_skb, IFF_NAPI, IFF_NAPI_FRAGS)",
    OPTIONS,
    open_queue,
    nic_receive,
    poll,
    close_queue,
)
