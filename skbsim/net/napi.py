"""Per-CPU NAPI state, after net/core/skbuff.c and net/core/dev.c.

- ``napi_alloc_cache``: the per-CPU page_frag_cache for NAPI heads, the 1K
  small-frag cache and the cache of free ``struct sk_buff`` heads with its
  bulk refill and flush (napi_skb_cache_get(), napi_skb_cache_put()).
- ``netdev_alloc_cache``: the page_frag_cache for allocations made with
  interrupts off (__netdev_alloc_skb(), netdev_alloc_frag()).
- The execution context of each CPU (hard IRQ, softirq, BH disabled, IRQs
  disabled), so ``in_softirq()`` and ``in_hardirq()`` answer as they would.
- ``net_device`` and ``napi_struct``, as much of them as allocation and GRO
  need (the GRO state itself, ``napi->gro``, lives in skbsim.net.gro).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.mm.page_frag import page_frag_1k, page_frag_cache

if TYPE_CHECKING:
    from skbsim.kernel import Kernel

NAPI_POLL_WEIGHT = 64

#: include/linux/netdev_features.h: NETIF_F_GRO (NETIF_F_GRO_BIT 14).
NETIF_F_GRO = 1 << 14
#: include/linux/netdevice.h: GRO_LEGACY_MAX_SIZE, the default gro_max_size and gro_ipv4_max_size.
GRO_LEGACY_MAX_SIZE = 65536
#: include/linux/netdevice.h: GRO_MAX_SIZE, the most ``ip link set ... gro_max_size`` accepts (BIG TCP).
GRO_MAX_SIZE = 8 * 65535


class napi_alloc_cache:
    """net/core/skbuff.c: struct napi_alloc_cache (one per CPU)."""

    __slots__ = ("page", "page_small", "skb_cache", "gets", "hits", "refills", "flushes", "puts", "refill_failures")

    def __init__(self, page: page_frag_cache) -> None:
        self.page = page
        self.page_small = page_frag_1k()
        self.skb_cache: list[int] = []  # addresses of free sk_buff objects; skb_count is its length
        self.gets = 0
        self.hits = 0
        self.refills = 0
        self.refill_failures = 0
        self.flushes = 0
        self.puts = 0


class CpuState:
    """One CPU: its NAPI caches and what it is executing."""

    __slots__ = (
        "cpu",
        "napi_alloc_cache",
        "netdev_alloc_cache",
        "hardirq_count",
        "softirq_count",
        "irqs_disabled",
        "defer_list",
        "defer_ipi_scheduled",
        "input_pkt_queue",
        "backlog_dropped",
    )

    def __init__(self, cpu: int, profile) -> None:
        self.cpu = cpu
        self.napi_alloc_cache = napi_alloc_cache(new_page_frag_cache(profile))
        self.netdev_alloc_cache = new_page_frag_cache(profile)
        self.hardirq_count = 0
        self.softirq_count = 0
        self.irqs_disabled = False
        # softnet_data.defer_list: skbs freed elsewhere, to be freed here.
        self.defer_list: list = []
        # softnet_data.defer_ipi_scheduled: an IPI to flush the list is on its way.
        self.defer_ipi_scheduled = False
        # softnet_data.input_pkt_queue (netif_rx()'s per-CPU backlog) and its drops.
        self.input_pkt_queue: deque = deque()
        self.backlog_dropped = 0


class net_device:
    """include/linux/netdevice.h: struct net_device, as far as RX allocation and GRO need.

    ``features`` holds NETIF_F_GRO unless GRO was turned off (``ethtool -K
    DEV gro off``); ``gro_max_size`` (IPv6) and ``gro_ipv4_max_size`` are
    ``ip link set DEV gro_max_size N gro_ipv4_max_size N``;
    ``gro_flush_timeout`` (ns) is /sys/class/net/DEV/gro_flush_timeout.
    """

    __slots__ = ("name", "mtu", "ifindex", "features", "gro_max_size", "gro_ipv4_max_size", "gro_flush_timeout")

    def __init__(self, name: str, mtu: int = 1500, ifindex: int = 2) -> None:
        self.name = name
        self.mtu = mtu
        self.ifindex = ifindex
        # register_netdevice() turns the software features (GSO, GRO) on.
        self.features = NETIF_F_GRO
        self.gro_max_size = GRO_LEGACY_MAX_SIZE
        self.gro_ipv4_max_size = GRO_LEGACY_MAX_SIZE
        self.gro_flush_timeout = 0

    def __repr__(self) -> str:
        return f"<net_device {self.name} mtu={self.mtu}>"


class napi_struct:
    """include/linux/netdevice.h: struct napi_struct (device, weight, id, owning CPU, GRO).

    ``gro`` is its struct gro_node (6.15+; the gro_hash/gro_bitmask/rx_list
    fields of napi_struct before); ``skb`` is napi->skb, the skb
    napi_get_frags() hands out next; ``timer_ns`` is the delay of the GRO
    flush timer napi_complete_done() last armed (0: none).  ``list_owner``
    is the CPU whose poll list holds the instance while it is scheduled, -1
    otherwise (set by ____napi_schedule(), cleared when NAPI completes);
    page_pool reads it to decide direct recycling.
    """

    __slots__ = ("dev", "weight", "napi_id", "cpu", "gro", "skb", "timer_ns", "list_owner")

    def __init__(self, dev: net_device, weight: int = NAPI_POLL_WEIGHT, napi_id: int = 0x2001, cpu: int = 0) -> None:
        from skbsim.net.gro import gro_node  # gro builds on skbuff, which builds on this module

        self.dev = dev
        self.weight = weight
        self.napi_id = napi_id
        self.cpu = cpu
        self.gro = gro_node()
        self.skb = None
        self.timer_ns = 0
        self.list_owner = -1


def napi_schedule(napi: napi_struct, cpu: int) -> None:
    """net/core/dev.c: ____napi_schedule() - put the instance on cpu's poll list (list_owner = cpu)."""
    napi.list_owner = cpu


def napi_list_del(napi: napi_struct) -> None:
    """net/core/dev.c: the part of napi_complete_done() that takes the instance off the poll list
    (list_owner = -1).  The run loop calls it once the poll's skbs have gone up (which is where the
    kernel's poll would have handed them over, with the instance still on the list); GRO's part of
    napi_complete_done() is skbsim.net.gro.napi_complete_done()."""
    napi.list_owner = -1


def new_page_frag_cache(profile) -> page_frag_cache:
    """A page_frag_cache that cuts pages the way the profile's release does."""
    return page_frag_cache(
        max_order=profile.PAGE_FRAG_CACHE_MAX_ORDER,
        offset_up=profile.feature("page_frag_offset") == "up",
        big_request_fails=profile.feature("page_frag_big_request") == "fit_or_fail",
    )


# -- execution context (include/linux/preempt.h, bottom_half.h) --------------------------


def in_softirq(kernel: Kernel) -> bool:
    """Serving a softirq or with bottom halves disabled (softirq_count() != 0)."""
    return kernel.cpus[kernel.cpu].softirq_count > 0


def in_hardirq(kernel: Kernel) -> bool:
    return kernel.cpus[kernel.cpu].hardirq_count > 0


def irqs_disabled(kernel: Kernel) -> bool:
    return kernel.cpus[kernel.cpu].irqs_disabled


def local_bh_disable(kernel: Kernel) -> None:
    kernel.cpus[kernel.cpu].softirq_count += 1


def local_bh_enable(kernel: Kernel) -> None:
    state = kernel.cpus[kernel.cpu]
    if state.softirq_count <= 0:
        raise RuntimeError("local_bh_enable() without local_bh_disable()")
    state.softirq_count -= 1


# -- the skb head cache (net/core/skbuff.c) ---------------------------------------------


def napi_skb_cache_get(kernel: Kernel, alloc: bool = True) -> int | None:
    """net/core/skbuff.c: napi_skb_cache_get() - a free sk_buff from this CPU's cache.

    An empty cache is refilled with NAPI_SKB_CACHE_BULK objects at once
    (kmem_cache_alloc_bulk(), all or nothing); returns the object's address.
    With ``alloc`` false (6.19's @alloc, for __alloc_skb() outside NAPI) an
    empty cache is not refilled: None, and the caller goes to the slab.
    """
    profile = kernel.profile
    nc = kernel.cpus[kernel.cpu].napi_alloc_cache
    if not nc.skb_cache and not alloc:
        return None
    nc.gets += 1
    if not nc.skb_cache:
        taken = kernel.slab.kmem_cache_alloc_bulk(
            kernel.skbuff_cache, GFP_ATOMIC, profile.NAPI_SKB_CACHE_BULK, "napi_skb_cache_get"
        )
        if not taken:
            nc.refill_failures += 1
            return None
        nc.skb_cache.extend(taken)
        nc.refills += 1
    else:
        nc.hits += 1
    return nc.skb_cache.pop()


def napi_skb_cache_put(kernel: Kernel, addr: int) -> None:
    """net/core/skbuff.c: napi_skb_cache_put() - keep a freed sk_buff for reuse.

    When the cache becomes full, NAPI_SKB_CACHE_FREE objects from its top go
    back to the slab in one kmem_cache_free_bulk().
    """
    profile = kernel.profile
    nc = kernel.cpus[kernel.cpu].napi_alloc_cache
    nc.puts += 1
    nc.skb_cache.append(addr)
    if len(nc.skb_cache) == profile.NAPI_SKB_CACHE_SIZE:
        keep = profile.NAPI_SKB_CACHE_SIZE - profile.NAPI_SKB_CACHE_FREE
        kernel.slab.kmem_cache_free_bulk(kernel.skbuff_cache, nc.skb_cache[keep:])
        del nc.skb_cache[keep:]
        nc.flushes += 1


# -- netif_rx() and the per-CPU backlog (net/core/dev.c) -----------------------------------

#: net.core.netdev_max_backlog (default 1000).
NETDEV_MAX_BACKLOG = 1000
NET_RX_SUCCESS = 0
NET_RX_DROP = 1


def enqueue_to_backlog(kernel: Kernel, skb, cpu: int) -> int:
    """net/core/dev.c: enqueue_to_backlog() - queue on the CPU's input_pkt_queue unless it holds more than
    netdev_max_backlog skbs (then the skb is dropped: softnet_data.dropped)."""
    from skbsim.net.skbuff import kfree_skb

    state = kernel.cpus[cpu]
    if len(state.input_pkt_queue) <= NETDEV_MAX_BACKLOG:
        state.input_pkt_queue.append(skb)
        return NET_RX_SUCCESS
    state.backlog_dropped += 1
    kfree_skb(kernel, skb, "CPU_BACKLOG")
    return NET_RX_DROP


def netif_rx(kernel: Kernel, skb) -> int:
    """net/core/dev.c: netif_rx() - hand an skb to the stack from outside NAPI: the current CPU's backlog
    (no RPS), processed later by process_backlog()."""
    return enqueue_to_backlog(kernel, skb, kernel.cpu)


def process_backlog(kernel: Kernel, quota: int, deliver) -> int:
    """net/core/dev.c: process_backlog() - up to quota skbs of this CPU's backlog to __netif_receive_skb()
    (``deliver``); returns how many."""
    queue = kernel.this_cpu().input_pkt_queue
    work = 0
    while work < quota and queue:
        deliver(queue.popleft())
        work += 1
    return work


def flush_backlog(kernel: Kernel, dev: net_device) -> None:
    """net/core/dev.c: flush_backlog() - free the backlog's skbs of a device going down."""
    from skbsim.net.skbuff import kfree_skb

    for state in kernel.cpus:
        kept = deque()
        while state.input_pkt_queue:
            skb = state.input_pkt_queue.popleft()
            if skb.dev is dev:
                kfree_skb(kernel, skb)
            else:
                kept.append(skb)
        state.input_pkt_queue = kept
