"""What the page_pool drivers (mlx5, bnxt, mana, libeth/idpf/iavf, gve, ice's page_pool form) share.

Each driver module models its own ring, because their buffer schemes
differ; this module holds the pieces that do not:

- :class:`PPQueue`, the attributes every such queue has (those the
  simulator reads, the queue's page_pools, the NIC's view of the ring and
  the frames it completed but the driver has not yet cleaned);
- :class:`RxCompletion`, one frame the NIC wrote: which buffers, how many
  bytes in each, the frame's leading bytes;
- small integer helpers from include/linux/log2.h and align.h;
- :func:`finish_rx_skb`, the end of every driver's per-frame work: the RSS
  hash, eth_type_trans(), the counters, and the hand-off to GRO
  (:func:`skbsim.net.gro.napi_gro_receive`);
- :func:`pp_napi_complete`, the end of every driver's poll: NAPI completes
  (GRO flushes) when the poll did less than its budget.

Every one of these drivers gives the stack its skbs through GRO, as the
kernel's do (mlx5e_complete_rx_cqe() / bnxt_deliver_skb() / mana_rx_skb() /
libeth's and ice's napi_gro_receive(); gve's frag-only skbs through
napi_gro_frags()), takes GRO_OPTIONS and sets skb->hash from the NIC's RSS
hash (NETIF_F_RXHASH is on by default on each).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from skbsim.drivers.base import Deliver, RxQueueStats, synthetic_header_template
from skbsim.net.ethernet import eth_type_trans
from skbsim.net.gro import napi_complete_done, napi_gro_receive
from skbsim.net.page_pool import PP_STATS, page_pool_get_stats

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
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
    """One frame the NIC wrote: the buffers (ring slots) it used, the bytes in each, its first bytes and
    the RSS hash the NIC computed for it (the completion descriptor's)."""

    __slots__ = ("slots", "sizes", "length", "header", "rss_hash")

    def __init__(self, slots: list[int], sizes: list[int], header: bytes, rss_hash: int = 0):
        self.slots = slots
        self.sizes = sizes
        self.length = sum(sizes)
        self.header = header
        self.rss_hash = rss_hash


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


def finish_rx_skb(kernel: Kernel, queue: PPQueue, skb: sk_buff, comp: RxCompletion, deliver: Deliver) -> None:
    """The end of a driver's per-frame work: counters, skb_set_hash() from the completion's RSS hash,
    eth_type_trans() (the frame's leading bytes stay with the skb for GRO), napi_gro_receive()."""
    stats = queue.stats
    stats.bytes += skb.len
    skb.hash = comp.rss_hash
    skb.protocol = eth_type_trans(skb, queue.dev, comp.header)
    stats.frames += 1
    napi_gro_receive(kernel, queue.napi, skb, deliver)


def pp_napi_complete(kernel: Kernel, queue: PPQueue, work: int, budget: int, deliver: Deliver) -> int:
    """The end of a poll: with work left (``work`` at the budget) NAPI stays scheduled and the poll
    returns its budget (__napi_poll() flushes GRO then); otherwise napi_complete_done(), which passes up
    what GRO holds.  Returns what the poll returns.  (The poll list itself - napi->list_owner, which
    page_pool's direct recycling reads - is left to the caller: skbsim.net.napi.napi_list_del().)"""
    if work >= budget:
        return budget
    napi_complete_done(kernel, queue.napi, work, deliver)
    return work
