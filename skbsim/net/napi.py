"""Per-CPU NAPI state, after net/core/skbuff.c and net/core/dev.c.

- ``napi_alloc_cache``: the per-CPU page_frag_cache for NAPI heads, the 1K
  small-frag cache and the cache of free ``struct sk_buff`` heads with its
  bulk refill and flush (napi_skb_cache_get(), napi_skb_cache_put()).
- ``netdev_alloc_cache``: the page_frag_cache for allocations made with
  interrupts off (__netdev_alloc_skb(), netdev_alloc_frag()).
- The execution context of each CPU (hard IRQ, softirq, BH disabled, IRQs
  disabled), so ``in_softirq()`` and ``in_hardirq()`` answer as they would.
- ``net_device`` and ``napi_struct``, as much of them as allocation needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.mm.page_frag import page_frag_1k, page_frag_cache

if TYPE_CHECKING:
    from skbsim.kernel import Kernel

NAPI_POLL_WEIGHT = 64


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


class net_device:
    """include/linux/netdevice.h: struct net_device, as far as RX allocation needs."""

    __slots__ = ("name", "mtu", "ifindex")

    def __init__(self, name: str, mtu: int = 1500, ifindex: int = 2) -> None:
        self.name = name
        self.mtu = mtu
        self.ifindex = ifindex

    def __repr__(self) -> str:
        return f"<net_device {self.name} mtu={self.mtu}>"


class napi_struct:
    """include/linux/netdevice.h: struct napi_struct (device, weight, id, owning CPU)."""

    __slots__ = ("dev", "weight", "napi_id", "cpu")

    def __init__(self, dev: net_device, weight: int = NAPI_POLL_WEIGHT, napi_id: int = 0x2001, cpu: int = 0) -> None:
        self.dev = dev
        self.weight = weight
        self.napi_id = napi_id
        self.cpu = cpu


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


def napi_skb_cache_get(kernel: Kernel) -> int | None:
    """net/core/skbuff.c: napi_skb_cache_get() - a free sk_buff from this CPU's cache.

    An empty cache is refilled with NAPI_SKB_CACHE_BULK objects at once
    (kmem_cache_alloc_bulk(), all or nothing); returns the object's address.
    """
    profile = kernel.profile
    nc = kernel.cpus[kernel.cpu].napi_alloc_cache
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
