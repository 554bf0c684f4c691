"""The fast engine's ntb_netdev run: what __netdev_alloc_skb() gives for each length (from the model itself),
and the Kernel record as ntb_netdev_open() leaves it (skbsim/fast/ntb.py is the compiled driver)."""

from __future__ import annotations

import types

import numpy as np

from skbsim.fast.layout import (
    NTB_BUF_ROW, ROUTE_ALLOC, TH_PAGE_FRAG, T_BUFLEN, T_CACHE, T_FRAGS, T_HEAD, T_ROOM, T_ROUTE, T_TS,
)
from skbsim.fast.ntb import _ntb_open
from skbsim.fast.tun import head_caches, kmalloc_head_kind
from skbsim.fast.setup import TableSizes, base_config, new_kernel, slab_spec, socket_queue_capacity
from skbsim.fast.state import (
    ALLOCATED, CACHE_SKB, DRIVER_NTB, D_BUF_FAILURES, F_ANY,
    PG_IN_USE, new_tun_queues,
)
from skbsim.sim import NAPI_POLL_WEIGHT, RunConfig, Simulation


class NtbLengths:
    """What netdev_alloc_skb() gives ntb_netdev, from the model itself.

    The ring's buffer, netdev_alloc_skb(mtu + ETH_HLEN), and for each frame
    length up to copybreak its copy, netdev_alloc_skb_ip_align(len), are
    allocated once through the model's own functions on a scratch kernel of
    the same profile and CPU count, in softirq as ntb_netdev_rx_handler()
    runs, and read: where the head comes from (a NAPI page_frag_cache
    fragment and its size, a kmem cache, or pages of their own), the
    truesize, the path and head source the report names.  All of that
    depends on the length only; the state an allocation meets is the
    compiled loop's.
    """

    __slots__ = ("kernel", "dev", "copybreak", "rxmax", "caches", "cache_index", "tab", "names", "min_truesize",
                 "posted")

    def __init__(self, ref: Simulation, config: RunConfig):
        from skbsim.kernel import Kernel
        from skbsim.net.napi import net_device

        queue = ref.cpus[0].queue
        self.copybreak = queue.copybreak
        self.rxmax = queue.config["buffer"]
        # the scratch kernel has no fault rules: every length's skb is the one no failure changes
        kernel = self.kernel = Kernel(ref.kernel.profile, ncpus=config.cpus)
        self.dev = net_device("ntb0")
        self.caches = head_caches(kernel, "ntb")  # by their index in Slabs, as tun's
        self.cache_index = {cache.name: c for c, cache in self.caches.items()}
        self.tab = np.zeros((NTB_BUF_ROW + 1, T_FRAGS), np.int64)
        #: per row: (path, head_source) of the skb handed up
        self.names: dict[int, tuple[str, str]] = {}
        #: whether the ring's buffers can be posted at all (no frame is handled, nor copied, when not)
        self.posted = True
        self._store(NTB_BUF_ROW, None)
        self.min_truesize = int(self.tab[NTB_BUF_ROW, T_TS])
        if self.copybreak:
            # truesize grows with the length, so the shortest frame's copy is the smallest skb of the run
            self._store(1, 1)
            self.min_truesize = min(self.min_truesize, int(self.tab[1, T_TS]))

    def prepare(self, lengths) -> None:
        """Rows for every length of a chunk that the handler copies and that has none yet."""
        if not self.copybreak or not self.posted or len(lengths) == 0:
            return
        copied = lengths[(lengths <= min(self.copybreak, self.rxmax)) & (lengths > 0)]
        for length in np.unique(copied[self.tab[copied, T_ROUTE] == 0]).tolist():
            self._store(length, length)
            if self.tab[length, T_TS] < self.min_truesize:
                raise ValueError(f"an ntb copy of {length} bytes is smaller than the fast engine sized for")

    def _store(self, row: int, copy: int | None) -> None:
        """Row row of the table: netdev_alloc_skb_ip_align(copy), or the ring's buffer when copy is None."""
        from skbsim.net.skbuff import kfree_skb, skb_tailroom

        kernel = self.kernel
        skb = self._alloc(kernel, copy)
        if skb is None and copy is None:
            # A head above the profile's largest page order: every netdev_alloc_skb() of the ring fails in the
            # run as here (no buffer is ever posted, every frame is a ring drop).  Its kind is read on a scratch
            # kernel whose largest order holds it; the run's allocator refuses that order as the model's does.
            from skbsim.kernel import Kernel

            roomy = Kernel(kernel.profile.derive(origin="ntb_setup", constants={"MAX_PAGE_ORDER": 10}),
                           ncpus=kernel.ncpus)
            skb = self._alloc(roomy, None)
            page = None if skb is None or skb.head_frag else roomy.pages.virt_to_head_page(skb.head)
            if page is None or page.slab is not None or page.order <= kernel.pages.max_order:
                raise ValueError(f"netdev_alloc_skb({self.rxmax}) fails on a fresh {kernel.profile.name} kernel "
                                 "for another reason than its order")
            kernel = roomy
            self.posted = False
        elif skb is None:
            raise ValueError(f"netdev_alloc_skb_ip_align({copy}) fails on a fresh {kernel.profile.name} kernel")
        if skb.truesize != kernel.profile.SKB_TRUESIZE(skb.end):
            raise ValueError("skb_condense() would change the truesize of an ntb skb")
        values = self.tab[row]
        # (the room from skb->data, where the frame's Ethernet header goes, to the end: TCP's tailroom)
        values[T_ROUTE], values[T_TS], values[T_ROOM] = ROUTE_ALLOC, skb.truesize, skb_tailroom(skb)
        if skb.head_frag:
            if skb.head_source != "page_frag":
                raise ValueError(f"an ntb head from {skb.head_source}, which the fast engine does not model")
            values[T_HEAD], values[T_BUFLEN] = TH_PAGE_FRAG, skb.head_size
        else:
            values[T_HEAD], values[T_CACHE] = kmalloc_head_kind(kernel, skb, self.cache_index, "an ntb")
        # ntb_netdev_rx_handler(): a copy keeps its path; the ring's skb is named after its buffer
        self.names[row] = ((skb.path or "page_frag", skb.head_source) if copy is not None
                           else (skb.path, f"ntb rx buffer ({skb.head_source})"))
        with kernel.softirq(0):
            kfree_skb(kernel, skb)

    def _alloc(self, kernel, copy: int | None):
        """The ring's netdev_alloc_skb(mtu + ETH_HLEN) (copy None) or netdev_alloc_skb_ip_align(copy), in softirq
        as ntb_netdev_rx_handler() runs; None when it fails."""
        from skbsim.net.skbuff import netdev_alloc_skb, netdev_alloc_skb_ip_align

        with kernel.softirq(0):
            if copy is None:
                return netdev_alloc_skb(kernel, self.dev, self.rxmax)
            return netdev_alloc_skb_ip_align(kernel, self.dev, copy)

    def kind_names(self) -> "_KindNames":
        """(path, head source, None) of each trace kind code: the frame's length (skbsim.fast.sock._observe())."""
        return _KindNames(self)

    def names_of(self, delivered) -> tuple[dict, dict]:
        """paths and head_sources of the report, from the skbs handed up per frame length."""
        paths: dict[str, int] = {}
        head_sources: dict[str, int] = {}
        for length in np.flatnonzero(delivered).tolist():
            n = int(delivered[length])
            path, source = self.names[length if length <= self.copybreak else NTB_BUF_ROW]
            paths[path] = paths.get(path, 0) + n
            head_sources[source] = head_sources.get(source, 0) + n
        return dict(sorted(paths.items())), dict(sorted(head_sources.items()))


class _KindNames:
    """FastSimulation._kind_names() of an ntb run: a frame up to copybreak is its copy, a longer one the ring's
    buffer."""

    __slots__ = ("lengths",)

    def __init__(self, lengths: NtbLengths):
        self.lengths = lengths

    def __getitem__(self, length: int) -> tuple[str, str, None]:
        lengths = self.lengths
        return lengths.names[length if length <= lengths.copybreak else NTB_BUF_ROW] + (None,)


def ntb_kernel(sim: Simulation, lengths: NtbLengths, trace: bool = False, plot: bool = False,
               queued: int | None = None):
    """ntb_netdev: the Kernel record as ntb_netdev_open() leaves each queue.

    The reference Simulation has opened its queues already (NTB_RXQ_SIZE skbs each, their sk_buffs in
    skbuff_head_cache's slabs); rather than copy SLUB's state, the record starts from the kernel as it was
    before (a fresh Kernel of the same profile, CPUs, seed and fault rules: the open draws no fault) and the
    compiled ntb_netdev_open() posts the same buffers with the fault rules off; the result is checked
    against the reference kernel's pages.  queued: the most skbs the sockets hold at once (a run with a socket
    per flow's receivers; else the UDP socket's)."""
    from skbsim.drivers.ntb import NTB_RXQ_SIZE
    from skbsim.kernel import Kernel
    from skbsim.mm.fault import fault_rules

    kernel = sim.kernel
    profile = kernel.profile
    config = sim.config
    queue = sim.cpus[0].queue
    # (a ring buffer above the largest page order is never posted: NtbLengths)
    failed = sum(state.queue.stats.buffer_alloc_failures for state in sim.cpus)
    before = Kernel(profile, ncpus=config.cpus, seed=config.seed)
    for layer, rule in fault_rules(config.faults).items():
        before.faults.set(layer, rule)
    before.skb_defer_max = kernel.skb_defer_max
    frag_cache = kernel.cpus[0].napi_alloc_cache.page
    fields = base_config(sim, trace, plot)
    fields.update(
        DRIVER=DRIVER_NTB, RING_COUNT=NTB_RXQ_SIZE, RXMAX=lengths.rxmax, COPYBREAK=lengths.copybreak,
        COND_ROOM=-1,  # skb_condense() changes no ntb skb (NtbLengths checks it per length)
        PF_ORDER=frag_cache.max_order, PF_DOWN=0 if frag_cache.offset_up else 1,
    )
    ncpus = config.cpus
    qcap = socket_queue_capacity(config, sim.sock.rcvbuf, lengths.min_truesize) if queued is None else queued
    # Live sk_buffs: queued, posted, in the NAPI caches and defer lists, two polls' worth in hand.
    live_bound = (qcap + ncpus * (NTB_RXQ_SIZE + profile.NAPI_SKB_CACHE_SIZE + kernel.skb_defer_max
                                  + 2 * NAPI_POLL_WEIGHT) + 16)
    slab_cap = live_bound + 16
    # Live pages per skb: its head's (page_frag, slab or pages of its own) and its sk_buff's slab page;
    # plus each CPU's page_frag page.
    page_cap = live_bound * 3 + ncpus + 64
    caches = [None] * (max(lengths.caches) + 1)
    caches[CACHE_SKB] = slab_spec(kernel, kernel.skbuff_cache, slab_cap)
    for c, cache in lengths.caches.items():
        caches[c] = slab_spec(kernel, cache, slab_cap)
    sizes = TableSizes(pages=page_cap, caches=caches, queue=qcap, frag_lists=1, frags=1, ring_bias=0)
    k = new_kernel(types.SimpleNamespace(kernel=before, config=config), fields, sizes,
                   tun=new_tun_queues(lengths.tab, ncpus, NTB_RXQ_SIZE))
    any_rule = k.st[F_ANY]
    k.st[F_ANY] = 0
    _ntb_open(k)
    k.st[F_ANY] = any_rule
    allocated = {order: int(n) for order, n in enumerate(k.pages.counts[:, ALLOCATED]) if n}
    if (k.st[D_BUF_FAILURES] != failed or int(k.st[PG_IN_USE]) != kernel.pages.in_use
            or allocated != dict(kernel.pages.allocated)):
        raise ValueError("the fast engine's ntb_netdev_open() left other pages than the model's")
    if queue.config["ring"] != NTB_RXQ_SIZE:
        raise ValueError("an ntb queue of another size than NTB_RXQ_SIZE")
    return k
