"""ntb_netdev over ntb_transport, after drivers/net/ntb_netdev.c and drivers/ntb/ntb_transport.c.

A PCIe Non-Transparent Bridge link between two hosts, as an Ethernet
device.  What matters for memory is how it receives:

- ntb_netdev_open() posts NTB_RXQ_SIZE (100) receive buffers, each
  ``netdev_alloc_skb(ndev, ndev->mtu + ETH_HLEN)``, with
  ntb_transport_rx_enqueue().  ntb_transport's MTU is
  ntb_transport_max_size() - ETH_HLEN: transport_mtu (0x10000) less the
  12-byte ntb_payload_header, 65524 - 14 = 65510 by default; so each
  buffer asks __netdev_alloc_skb() for 65524 bytes, beyond a page: a
  kmalloc'ed head of SKB_HEAD_ALIGN(65524 + NET_SKB_PAD) = 65920 bytes,
  rounded to kmalloc-128k, truesize 131328 on x86_64 - whatever the
  frame's length.
- The peer's frame is copied (ntb_process_rxc() -> ntb_memcpy_rx()) into
  the first posted buffer; ntb_complete_rxc() then runs the client's
  rx_handler, ntb_netdev_rx_handler(), in the transport's tasklet
  (softirq): skb_put(len), eth_type_trans(), netif_rx() - the per-CPU
  backlog, later process_backlog() -> __netif_receive_skb() - and a fresh
  netdev_alloc_skb(mtu + ETH_HLEN) is posted in its place (the ring slot
  is refilled per frame; when that allocation fails the slot is lost).
  A frame longer than a buffer is an rx_length error: the buffer is
  posted again.

Option ``copybreak`` (default 0, as upstream, which has no copybreak):
frames of at most that many bytes are copied into a right-sized
``netdev_alloc_skb_ip_align(ndev, len)`` and the ring's buffer is posted
again unused.  That is the downstream fix of TrueNAS (truenas/linux pull
request 312, "NAS-141771: fix NTB TCP 0 sized (permanent) window clamp",
July 2026, in its 6.12 and later kernels), which uses an rx_copybreak of
3646; no upstream kernel has it.  Option ``mtu`` (ntb_netdev_change_mtu():
68..65510).

Stats, in the terms of :class:`~skbsim.drivers.base.RxQueueStats`: a
frame the transport delivered into a buffer is a ``nic_frames``; frames
longer than a buffer are ``oversize_drops``, frames that found no posted
buffer ``ring_drops``; a buffer handed up is ``buffers_released``, one
posted again after a copy ``buffers_reused`` (and ``buffers_copied``,
``bytes_copied``); failed refills are ``buffer_alloc_failures`` (the
slot stays empty), failed copy skbs ``skb_alloc_failures`` (the frame is
dropped).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from skbsim.drivers.base import (
    Driver,
    DriverOption,
    RxQueueStats,
    frame_header,
    int_option,
    parse_options,
    synthetic_header_template,
)
from skbsim.net.ethernet import ETH_HLEN, eth_type_trans
from skbsim.net.napi import NET_RX_DROP, flush_backlog, netif_rx, process_backlog
from skbsim.net.skbuff import kfree_skb, netdev_alloc_skb, netdev_alloc_skb_ip_align, skb_put

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import sk_buff
    from skbsim.traffic.frame import Frame

#: drivers/net/ntb_netdev.c: NTB_RXQ_SIZE - receive buffers posted at open.
NTB_RXQ_SIZE = 100
#: drivers/ntb/ntb_transport.c: transport_mtu (module parameter, default 0x10000).
TRANSPORT_MTU = 0x10000
#: sizeof(struct ntb_payload_header): ver, len, flags.
NTB_PAYLOAD_HEADER = 12
#: ntb_transport_max_size() - ETH_HLEN: the default and largest MTU (65510).
NTB_MAX_MTU = TRANSPORT_MTU - NTB_PAYLOAD_HEADER - ETH_HLEN
#: include/uapi/linux/if_ether.h: ETH_MIN_MTU.
ETH_MIN_MTU = 68
#: The copybreak of the TrueNAS fix.
TRUENAS_COPYBREAK = 3646


class ntb_queue_entry:
    """drivers/ntb/ntb_transport.c: struct ntb_queue_entry - a posted receive buffer (cb_data is its skb)
    and, once the transport has copied a frame into it, the frame's length and first bytes."""

    __slots__ = ("skb", "len", "header", "done")

    def __init__(self, skb: sk_buff):
        self.skb = skb
        self.len = 0
        self.header: bytes | None = None
        self.done = False


class NtbQueue:
    """One ntb_netdev device's receive side: the transport's posted entries (rx_pend_q) and the ones
    holding a frame (rx_post_q, DESC_DONE_FLAG set)."""

    __slots__ = ("driver", "dev", "napi", "stats", "config", "last_path", "mtu", "copybreak", "rx_pend_q",
                 "rx_post_q", "synthetic")

    def __init__(self, dev: net_device, napi: napi_struct, mtu: int, copybreak: int):
        self.driver = "ntb"
        self.dev = dev
        self.napi = napi
        self.stats = RxQueueStats()
        self.mtu = mtu
        self.copybreak = copybreak
        self.rx_pend_q: deque[ntb_queue_entry] = deque()
        self.rx_post_q: deque[ntb_queue_entry] = deque()
        self.last_path = ""
        self.synthetic = synthetic_header_template()
        self.config = {
            "mtu": mtu,
            "copybreak": copybreak,
            "ring": NTB_RXQ_SIZE,
            "buffer": mtu + ETH_HLEN,
            "rules": "upstream ntb_netdev" if not copybreak else "ntb_netdev with TrueNAS's rx_copybreak",
            # netif_rx() fires net:netif_rx_entry; process_backlog() passes the skb on without another event.
            "event": "netif_rx_entry",
        }


OPTIONS = (
    DriverOption("copybreak", "0", "frames of at most this many bytes are copied into a right-sized "
                 "netdev_alloc_skb_ip_align() skb and the ring buffer is kept (0: never, as upstream; "
                 f"TrueNAS's fix uses {TRUENAS_COPYBREAK})", int_option("copybreak", 0, 65535)),
    DriverOption("mtu", str(NTB_MAX_MTU), f"the device MTU, {ETH_MIN_MTU}..{NTB_MAX_MTU} (ntb_netdev_change_mtu(); "
                 "receive buffers are mtu + 14 bytes)", int_option("mtu", ETH_MIN_MTU, NTB_MAX_MTU)),
)


def ntb_transport_rx_enqueue(queue: NtbQueue, skb: sk_buff) -> None:
    """drivers/ntb/ntb_transport.c: ntb_transport_rx_enqueue() - post a receive buffer."""
    queue.rx_pend_q.append(ntb_queue_entry(skb))


def ntb_netdev_open(kernel: Kernel, dev: net_device, napi: napi_struct, options: dict[str, str] | None) -> NtbQueue:
    """drivers/net/ntb_netdev.c: ntb_netdev_open() - post NTB_RXQ_SIZE buffers of mtu + ETH_HLEN bytes."""
    values = parse_options("ntb", OPTIONS, options)
    queue = NtbQueue(dev, napi, values["mtu"], values["copybreak"])
    dev.mtu = queue.mtu
    with kernel.on_cpu(napi.cpu):
        for _ in range(NTB_RXQ_SIZE):
            skb = netdev_alloc_skb(kernel, dev, queue.mtu + ETH_HLEN)
            if skb is None:
                queue.stats.buffer_alloc_failures += 1
                continue
            ntb_transport_rx_enqueue(queue, skb)
    return queue


def ntb_process_rxc(kernel: Kernel, queue: NtbQueue, frame: Frame) -> bool:
    """drivers/ntb/ntb_transport.c: ntb_process_rxc() - the peer's frame into the first posted buffer.

    No posted buffer: the frame stays in the memory window (the model
    drops it: ring_drops).  Longer than the buffer: rx_err_oflow, the
    entry completes with -EIO (oversize_drops) and its buffer is posted
    again.
    """
    stats = queue.stats
    if not queue.rx_pend_q:
        stats.ring_drops += 1
        return False
    if frame.length > queue.mtu + ETH_HLEN:
        stats.oversize_drops += 1
        return False
    entry = queue.rx_pend_q.popleft()
    entry.len = frame.length
    entry.header = frame_header(frame, queue.synthetic)
    entry.done = True
    queue.rx_post_q.append(entry)
    stats.nic_frames += 1
    return True


def ntb_netdev_rx_handler(kernel: Kernel, queue: NtbQueue, entry: ntb_queue_entry) -> None:
    """drivers/net/ntb_netdev.c: ntb_netdev_rx_handler() - the frame to netif_rx(), the slot refilled.

    With copybreak (TrueNAS) a frame of at most copybreak bytes is copied
    into netdev_alloc_skb_ip_align(len) and the ring's skb posted again.
    """
    stats = queue.stats
    length = entry.len
    skb = entry.skb
    stats.buffers_used += 1
    if length <= queue.copybreak:
        nskb = netdev_alloc_skb_ip_align(kernel, queue.dev, length)
        ntb_transport_rx_enqueue(queue, skb)
        stats.buffers_reused += 1
        if nskb is None:
            stats.skb_alloc_failures += 1
            stats.drop(length)
            return
        skb_put(nskb, length)
        stats.buffers_copied += 1
        stats.bytes_copied += length
        nskb.path = nskb.path or "page_frag"
        _hand_up(kernel, queue, nskb, entry.header, length)
        queue.last_path = "ntb_netdev_rx_handler (copybreak)"
        return
    skb_put(skb, length)
    skb.head_source = f"ntb rx buffer ({skb.head_source})"
    _hand_up(kernel, queue, skb, entry.header, length)
    stats.buffers_released += 1
    queue.last_path = "ntb_netdev_rx_handler"
    new = netdev_alloc_skb(kernel, queue.dev, queue.mtu + ETH_HLEN)
    if new is None:
        stats.buffer_alloc_failures += 1
        return
    ntb_transport_rx_enqueue(queue, new)


def _hand_up(kernel: Kernel, queue: NtbQueue, skb: sk_buff, header: bytes, length: int) -> None:
    skb.protocol = eth_type_trans(skb, queue.dev, header)
    if netif_rx(kernel, skb) == NET_RX_DROP:
        queue.stats.drop(length)
        return
    queue.stats.frames += 1
    queue.stats.bytes += length


def ntb_poll(kernel: Kernel, queue: NtbQueue, budget: int, deliver) -> int:
    """The transport's tasklet (ntb_transport_rxc_db() -> ntb_complete_rxc()) for up to ``budget`` frames,
    then the backlog's NAPI (process_backlog()) hands the skbs to the stack."""
    queue.stats.polls += 1
    done = 0
    with kernel.softirq(queue.napi.cpu):
        while done < budget and queue.rx_post_q:
            ntb_netdev_rx_handler(kernel, queue, queue.rx_post_q.popleft())
            done += 1
        process_backlog(kernel, max(budget, done), deliver)
    return done


def ntb_netdev_close(kernel: Kernel, queue: NtbQueue) -> None:
    """drivers/net/ntb_netdev.c: ntb_netdev_close() - every posted buffer is freed (ntb_transport_rx_remove()),
    frames not yet handled with them; the backlog's skbs of the device go too."""
    with kernel.on_cpu(queue.napi.cpu):
        for entries in (queue.rx_post_q, queue.rx_pend_q):
            while entries:
                entry = entries.popleft()
                if entry.done:
                    queue.stats.drop(entry.len)
                kfree_skb(kernel, entry.skb)
        flush_backlog(kernel, queue.dev)


DRIVER = Driver(
    "ntb",
    "drivers/net/ntb_netdev.c over ntb_transport: 100 posted netdev_alloc_skb(mtu + 14) buffers, netif_rx(), "
    "optional copybreak (TrueNAS's fix)",
    OPTIONS,
    ntb_netdev_open,
    ntb_process_rxc,
    ntb_poll,
    ntb_netdev_close,
)
