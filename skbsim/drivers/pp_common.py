"""What the page_pool drivers (mlx5, bnxt, mana, libeth/idpf/iavf, gve, ice's page_pool form) share.

Each driver module models its own ring, because their buffer schemes
differ; this module holds the pieces that do not:

- :class:`PPQueue`, the attributes every such queue has (those the
  simulator reads, the queue's page_pools, the NIC's view of the ring and
  the frames it completed but the driver has not yet cleaned);
- :class:`RxCompletion`, one frame the NIC wrote: which buffers, how many
  bytes in each, the frame's leading bytes;
- small integer helpers from include/linux/log2.h and align.h;
- :func:`finish_rx_skb`, the end of every driver's per-frame work:
  eth_type_trans(), the counters, and the hand-off to the stack through
  :func:`skbsim.drivers.base.napi_gro_receive`.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from skbsim.drivers.base import Deliver, RxQueueStats, napi_gro_receive, synthetic_header_template
from skbsim.net.ethernet import eth_type_trans
from skbsim.net.page_pool import PP_STATS, page_pool_get_stats

if TYPE_CHECKING:
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import sk_buff


def roundup_pow_of_two(n: int) -> int:
    """include/linux/log2.h: roundup_pow_of_two() (n >= 1)."""
    return 1 << (n - 1).bit_length()


def order_base_2(n: int) -> int:
    """include/linux/log2.h: order_base_2() - ceil(log2(n)), 0 for n <= 1."""
    return (n - 1).bit_length() if n > 1 else 0


def align(x: int, a: int) -> int:
    """include/linux/align.h: ALIGN() for a power-of-two a."""
    return (x + a - 1) & ~(a - 1)


def div_round_up(n: int, d: int) -> int:
    """include/linux/math.h: DIV_ROUND_UP()."""
    return -(-n // d)


class RxCompletion:
    """One frame the NIC wrote: the buffers (ring slots) it used, the bytes in each, its first bytes."""

    __slots__ = ("slots", "sizes", "length", "header")

    def __init__(self, slots: list[int], sizes: list[int], header: bytes):
        self.slots = slots
        self.sizes = sizes
        self.length = sum(sizes)
        self.header = header


class PPQueue:
    """The attributes every page_pool driver's RX queue has.

    ``page_pools`` lists the queue's pools (for their statistics);
    ``completions`` holds the frames written by the NIC and not yet cleaned;
    ``rxmax`` is the longest frame the queue takes (longer ones the NIC
    drops as oversize).
    """

    __slots__ = ("driver", "dev", "napi", "stats", "config", "last_path", "page_pools", "completions", "rxmax",
                 "synthetic")

    def __init__(self, driver: str, dev: net_device, napi: napi_struct):
        self.driver = driver
        self.dev = dev
        self.napi = napi
        self.stats = RxQueueStats()
        self.config: dict = {}
        self.last_path = ""
        self.page_pools: list = []
        self.completions: deque[RxCompletion] = deque()
        self.rxmax = 0
        self.synthetic = synthetic_header_template()


def queue_page_pool_stats(queue) -> dict[str, int] | None:
    """The queue's page_pool counters by ethtool name, or None for a driver without page_pools."""
    pools = getattr(queue, "page_pools", None)
    if pools is None:
        return None
    return page_pool_get_stats(pools)


def sum_page_pool_stats(parts) -> dict[str, int]:
    total = dict.fromkeys(PP_STATS, 0)
    for part in parts:
        for name, value in part.items():
            total[name] += value
    return total


def finish_rx_skb(queue: PPQueue, skb: sk_buff, header: bytes, deliver: Deliver) -> None:
    """The end of a driver's per-frame work: eth_type_trans(), counters, napi_gro_receive()."""
    stats = queue.stats
    stats.bytes += skb.len
    skb.protocol = eth_type_trans(skb, queue.dev, header)
    stats.frames += 1
    napi_gro_receive(queue.napi, skb, deliver)
