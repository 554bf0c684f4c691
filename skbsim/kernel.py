"""The kernel object: every piece of modelled state lives here.

``Kernel(profile)`` owns the page allocator, the slab caches, the per-CPU
NAPI state and the set of live skbs.  Functions that model kernel functions
take it as their first argument, so two kernels can run side by side in one
process (for comparisons) and nothing is global.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skbsim.mm.fault import FaultInjector
from skbsim.mm.page_alloc import PageAllocator
from skbsim.mm.page_frag import page_frag_1k_drain, page_frag_cache_drain
from skbsim.mm.slab import SlabAllocator
from skbsim.net.napi import CpuState
from skbsim.profile import Profile, load_profile

#: CONFIG_HZ of the distribution configs the profiles stand for (Debian and
#: the 6.18.44 host: 250).  jiffies advance HZ times a second.
HZ = 250


@dataclass
class LeakReport:
    """What has not been given back: pages, slab objects, skbs and page_pools.

    A page_pool counts until it is freed: one its driver never destroyed, or
    one destroyed while pages were still in flight that never came back
    (page_pool_destroy()'s deferred release).  Its cached and ring pages are
    reported with the other pages.

    ``kernel`` holds the pages the modelled kernel itself never gives back
    (Kernel.kernel_leak(): the kernel function that skips them, and why):
    modelled kernel behaviour, not a bug of the model.  They are counted
    with the pages and make the report unclean, but not ``model_clean``.
    """

    pages: list = field(default_factory=list)
    objects: list = field(default_factory=list)
    skbs: list = field(default_factory=list)
    pools: list = field(default_factory=list)
    kernel: list = field(default_factory=list)  # (page, function, why)

    @property
    def clean(self) -> bool:
        return self.model_clean and not self.kernel

    @property
    def model_clean(self) -> bool:
        """Nothing is left over but what the modelled kernel itself leaks."""
        return not (self.pages or self.objects or self.skbs or self.pools)

    def lines(self) -> list[str]:
        out = [f"skb at {addr:#x} ({skb.describe()})" for addr, skb in self.skbs]
        out += [repr(pool) for pool in self.pools]
        out += [f"{name} object at {addr:#x} allocated by {site}" for name, addr, site in self.objects]
        out += [repr(page) for page in self.pages]
        out += [f"{page!r}: the modelled kernel's own leak ({function}(): {why})" for page, function, why in self.kernel]
        return out

    def summary(self) -> str:
        if self.clean:
            return "leak check: clean (every page, slab object and skb was given back)"
        pools = f", {len(self.pools)} page_pools" if self.pools else ""
        kernel = f" ({len(self.kernel)} of them the modelled kernel's own leak)" if self.kernel else ""
        return (
            f"leak check: {len(self.skbs)} skbs, {len(self.objects)} slab objects{pools} and "
            f"{len(self.pages) + len(self.kernel)} pages not given back{kernel}"
        )

    def as_dict(self) -> dict:
        out = {
            "clean": self.clean,
            "skbs": len(self.skbs),
            "slab_objects": len(self.objects),
            "pages": len(self.pages) + len(self.kernel),
            # page_pools not freed are named in details (and make clean false).
            "details": self.lines()[:50],
        }
        if self.kernel:
            # only when the modelled kernel leaks: which of its functions, and why (not a bug of the model)
            out["kernel"] = [{"function": function, "page": repr(page), "why": why} for page, function, why in self.kernel]
        return out


# Execution contexts.  Plain classes rather than contextlib generators: the
# simulator enters them several times per NAPI poll, and a generator-based
# context manager costs several times as much to enter and leave.


class _OnCpu:
    """``with kernel.on_cpu(cpu)``: the current CPU becomes cpu until the block ends."""

    __slots__ = ("kernel", "cpu", "previous")

    def __init__(self, kernel: Kernel, cpu: int | None):
        self.kernel = kernel
        self.cpu = cpu  # None: whichever CPU is current when the block is entered

    def __enter__(self) -> CpuState:
        kernel = self.kernel
        cpu = self.previous = kernel.cpu
        if self.cpu is not None:
            cpu = self.cpu
        state = kernel.cpus[cpu]  # an unknown CPU raises before anything changes
        kernel.cpu = cpu
        return state

    def __exit__(self, *exc) -> None:
        self.kernel.cpu = self.previous


class _InSoftirq(_OnCpu):
    """``with kernel.softirq(cpu)``: on cpu, with softirq_count raised for the block."""

    __slots__ = ("state",)

    def __enter__(self) -> CpuState:
        state = self.state = _OnCpu.__enter__(self)
        state.softirq_count += 1
        return state

    def __exit__(self, *exc) -> None:
        self.state.softirq_count -= 1
        self.kernel.cpu = self.previous


class _InHardirq(_OnCpu):
    """``with kernel.hardirq(cpu)``: on cpu, in a hard interrupt with IRQs off for the block."""

    __slots__ = ("state", "saved_irqs_disabled")

    def __enter__(self) -> CpuState:
        state = self.state = _OnCpu.__enter__(self)
        state.hardirq_count += 1
        self.saved_irqs_disabled, state.irqs_disabled = state.irqs_disabled, True
        return state

    def __exit__(self, *exc) -> None:
        state = self.state
        state.irqs_disabled = self.saved_irqs_disabled
        state.hardirq_count -= 1
        self.kernel.cpu = self.previous


class Kernel:
    """One modelled kernel: a profile plus all of its runtime state."""

    def __init__(
        self,
        profile: Profile | str = "6.9",
        *,
        ncpus: int = 1,
        seed: int = 0,
        limit_pages: int | None = None,
        reserve_pages: int = 0,
    ):
        if isinstance(profile, str):
            profile = load_profile(profile)
        if ncpus < 1:
            raise ValueError("a kernel needs at least one CPU")
        self.profile = profile
        self.ncpus = ncpus
        self.seed = seed
        self.warnings: list[str] = []
        self._warned_once: set[str] = set()
        self.faults = FaultInjector(seed)
        self.pages = PageAllocator(
            profile.PAGE_SIZE,
            profile.MAX_PAGE_ORDER,
            self.faults,
            self.warnings,
            limit_pages=limit_pages,
            reserve_pages=reserve_pages,
        )
        self.slab = SlabAllocator(self, self.pages, profile, nr_cpu_ids=ncpus)
        # net/core/skbuff.c: skb_init() creates these at boot.
        self.skbuff_cache = self.slab.kmem_cache_create(
            "skbuff_head_cache", profile.sizeof_sk_buff, hwcache_align=True, fault_layer="skb_head"
        )
        # struct sk_buff_fclones: two sk_buffs and a refcount_t.
        self.skbuff_fclone_cache = self.slab.kmem_cache_create(
            "skbuff_fclone_cache", 2 * profile.sizeof_sk_buff + 4, hwcache_align=True, fault_layer="skb_head"
        )
        self.skb_small_head_cache = None
        if profile.has("small_head_cache"):
            self.skb_small_head_cache = self.slab.kmem_cache_create(
                "skbuff_small_head", profile.SKB_SMALL_HEAD_CACHE_SIZE, hwcache_align=True, fault_layer="skb_data"
            )
        self.cpus = [CpuState(cpu, profile) for cpu in range(ncpus)]
        self.cpu = 0
        # net.core.skb_defer_max: how long a CPU's defer list may grow (skb_defer_admit()); its default:
        # 64, 128 from 6.19.
        self.skb_defer_max = int(profile.feature("skb_defer_max_default"))
        # CPUs sent a defer-list IPI (kick_defer_list_purge()) not yet delivered: the simulation
        # delivers them (skbuff.defer_ipi()); outside one they stay here.
        self.ipis: list[int] = []
        # sk_memalloc_socks(): true once any socket serves swap (SOCK_MEMALLOC).
        self.memalloc_socks = False
        # Live skbs by the address of their struct sk_buff, for the leak check.
        self.live_skbs: dict[int, object] = {}
        # page_pools not yet freed (live, or destroyed with pages in flight).
        self.page_pools: list = []
        # When a list, allocation functions append the reasons for each branch.
        self.explain: list[str] | None = None
        # The jiffies counter; whoever keeps simulated time advances it (GRO ages held skbs by it).
        self.jiffies = 0
        # Pages (by pfn) the modelled kernel itself never gives back: (function, why); see kernel_leak().
        self.kernel_leaks: dict[int, tuple[str, str]] = {}

    # -- CPUs and contexts ----------------------------------------------------------------

    def this_cpu(self) -> CpuState:
        return self.cpus[self.cpu]

    def on_cpu(self, cpu: int) -> _OnCpu:
        """Run the body on another CPU (as if the scheduler had put us there).

        ``with kernel.on_cpu(cpu) as state:`` - state is that CPU's CpuState.
        """
        return _OnCpu(self, cpu)

    def softirq(self, cpu: int | None = None) -> _InSoftirq:
        """Run the body as NET_RX softirq work on a CPU (__do_softirq())."""
        return _InSoftirq(self, cpu)

    def hardirq(self, cpu: int | None = None) -> _InHardirq:
        """Run the body as a hard interrupt handler (IRQs off)."""
        return _InHardirq(self, cpu)

    def sk_memalloc_socks(self) -> bool:
        return self.memalloc_socks

    def warn_once(self, site: str, message: str) -> None:
        """WARN_ON_ONCE / DEBUG_NET_WARN_ON_ONCE: record the first hit of a site."""
        if site not in self._warned_once:
            self._warned_once.add(site)
            self.warnings.append(message)

    def kernel_leak(self, page, function: str, why: str) -> None:
        """The modelled kernel keeps a reference to page that nothing will ever put: function is the kernel
        function that skips it.  The leak check reports the page as the kernel's own leak."""
        self.kernel_leaks[page.pfn] = (function, why)

    def note(self, message: str) -> None:
        if self.explain is not None:
            self.explain.append(message)

    # -- teardown and the leak check ---------------------------------------------------------

    def drain(self) -> None:
        """Give back what the per-CPU caches hold (what CPU hot-unplug would do).

        Destroyed page_pools still waiting for pages get their deferred
        release run once more (page_pool_release_retry()).

        Last, every kmem cache is shrunk as kmem_cache_shrink() does: each CPU
        gives up its slab and partial list, and every empty slab is freed,
        whatever min_partial says.  The slabs SLUB keeps are the allocator's
        own, not leaks; once shrunk, a slab page still allocated holds an
        object that was not freed, and the leak check reports that object.
        """
        from skbsim.net.page_pool import page_pool_release_retry
        from skbsim.net.skbuff import skb_defer_free_flush

        for state in self.cpus:
            with self.softirq(state.cpu):
                skb_defer_free_flush(self)
        for pool in [pool for pool in self.page_pools if pool.destroyed]:
            page_pool_release_retry(self, pool)
        for state in self.cpus:
            nc = state.napi_alloc_cache
            if nc.skb_cache:
                self.slab.kmem_cache_free_bulk(self.skbuff_cache, nc.skb_cache)
                nc.skb_cache.clear()
            page_frag_cache_drain(self.pages, nc.page)
            page_frag_1k_drain(self.pages, nc.page_small)
            page_frag_cache_drain(self.pages, state.netdev_alloc_cache)
        self.slab.shrink_all()

    def leak_check(self, drain: bool = True) -> LeakReport:
        """Everything still allocated; with ``drain``, after emptying the caches first."""
        if drain:
            self.drain()
        pages, known = [], []
        for page in self.pages.outstanding():
            if page.pfn in self.kernel_leaks and page.refcount == 1:  # the one reference the kernel keeps
                known.append((page, *self.kernel_leaks[page.pfn]))
            else:
                pages.append(page)
        return LeakReport(
            pages=pages,
            objects=self.slab.outstanding(),
            skbs=list(self.live_skbs.items()),
            pools=list(self.page_pools),
            kernel=known,
        )

    def assert_no_leaks(self) -> None:
        """Nothing left over but what the modelled kernel itself leaks (LeakReport.model_clean)."""
        report = self.leak_check()
        if not report.model_clean:
            detail = "\n  ".join(report.lines()[:20])
            raise AssertionError(f"{report.summary()}:\n  {detail}")
