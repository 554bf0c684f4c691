"""Random sequences of SLUB operations keep every object and every slab in exactly one place.

Operations: allocations and frees (one and bulk) on any of three CPUs, a CPU giving up its slab and
partial list (flush_cpu_slab()), kmem_cache_shrink(), and page allocation failures.  After each step:

- every slab of a cache is in one place: a CPU's slab, one CPU partial list, the node partial list, or
  no list at all (then it is full: no free object, unfrozen);
- every object of every slab is in one place: handed out, on the lockless freelist of the CPU whose slab
  it is, or on its slab's freelist; inuse counts the objects not on the slab's freelist;
- a CPU's slab is frozen; a CPU partial slab is frozen only where the release freezes them (6.1) and has
  a free object; a node partial slab is unfrozen, marked as on the node list, and never full;
- a CPU partial list holds at most cpu_partial_slabs slabs (none without CONFIG_SLUB_CPU_PARTIAL);
- the node list holds at most min_partial empty slabs (an empty slab only joins, or stays, below that);
- the cache's slab and object counts, and the page allocator's pages in use, match the slabs.
At the end everything is freed and the leak check (which shrinks every cache) gives every page back.
"""

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from skbsim.kernel import Kernel
from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.profile import load_profile

NCPUS = 3
#: (object size, hardware-aligned): 256 -> 16 per order-0 slab, 7 on a CPU list; 1000 -> 1024-byte objects, 16
#: per order-2 slab, 3 on a CPU list; 4096 -> 8 per order-3 slab, 2 on a CPU list, min_partial 6.
SIZES = (256, 1000, 4096)


def _check_cache(kernel, cache, frozen_partial):
    slab_pages = [page.slab for page in kernel.pages.live.values() if page.slab is not None and page.slab.cache is cache]
    place = {}
    for cpu, c in enumerate(cache.cpu_slab):
        if c.slab is not None:
            assert place.setdefault(id(c.slab), f"cpu{cpu}") == f"cpu{cpu}"
            assert c.slab.frozen
        for slab in c.partial:
            assert id(slab) not in place, "a slab on two lists"
            place[id(slab)] = f"partial{cpu}"
            assert slab.frozen == frozen_partial and slab.freelist and not slab.node_partial
        assert len(c.partial) <= cache.cpu_partial_slabs
        if c.slab is None:
            assert not c.freelist
    for slab in cache.node.partial:
        assert id(slab) not in place, "a slab on two lists"
        place[id(slab)] = "node"
        assert not slab.frozen and slab.node_partial and slab.freelist
    assert sum(1 for slab in cache.node.partial if slab.inuse == 0) <= cache.min_partial
    for slab in slab_pages:
        if id(slab) not in place:
            assert slab.inuse == slab.objects and not slab.freelist and not slab.frozen and not slab.node_partial
        assert slab.inuse == slab.objects - len(slab.freelist)
    assert len(place) == len({id(s) for s in slab_pages if id(s) in place})  # every listed slab is alive
    assert cache.nr_slabs == len(slab_pages)
    assert cache.total_objects == sum(slab.objects for slab in slab_pages)
    # Objects: each in exactly one place.
    on_cpu = {}
    for c in cache.cpu_slab:
        for addr in c.freelist:
            assert kernel.pages.virt_to_head_page(addr).slab is c.slab
            on_cpu[addr] = on_cpu.get(addr, 0) + 1
    for slab in slab_pages:
        base = kernel.pages.page_address(slab.page)
        objects = {base + i * cache.size for i in range(slab.objects)}
        free = slab.freelist
        for addr in objects:
            count = (addr in cache.live) + on_cpu.get(addr, 0) + free.count(addr)
            assert count == 1, f"{addr:#x} is in {count} places"
        assert set(free) <= objects
    assert cache.active == len(cache.live)
    return sum(1 << slab.page.order for slab in slab_pages)


class SlubMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.kernel = None

    @precondition(lambda self: self.kernel is None)
    @rule(release=st.sampled_from(["6.1", "6.18"]), cpu_partial=st.booleans())
    def boot(self, release, cpu_partial):
        profile = load_profile(release).derive(origin="test", features={"slub_cpu_partial": cpu_partial})
        self.kernel = Kernel(profile, ncpus=NCPUS)
        self.frozen_partial = profile.has("slub_cpu_partial_frozen")
        self.caches = [self.kernel.slab.kmem_cache_create(f"test-{size}", size, hwcache_align=True,
                                                          fault_layer="skb_data") for size in SIZES]
        self.live = []  # (cache index, address)

    @precondition(lambda self: self.kernel is not None)
    @rule(which=st.integers(0, len(SIZES) - 1), cpu=st.integers(0, NCPUS - 1), n=st.integers(1, 40))
    def alloc(self, which, cpu, n):
        cache = self.caches[which]
        with self.kernel.on_cpu(cpu):
            for _ in range(n):
                addr = self.kernel.slab.kmem_cache_alloc(cache, GFP_ATOMIC, "test")
                if addr is not None:
                    self.live.append((which, addr))

    @precondition(lambda self: self.kernel is not None)
    @rule(which=st.integers(0, len(SIZES) - 1), cpu=st.integers(0, NCPUS - 1), n=st.integers(1, 40))
    def alloc_bulk(self, which, cpu, n):
        with self.kernel.on_cpu(cpu):
            taken = self.kernel.slab.kmem_cache_alloc_bulk(self.caches[which], GFP_ATOMIC, n, "bulk")
        assert len(taken) in (0, n)
        self.live += [(which, addr) for addr in taken]

    @precondition(lambda self: self.kernel is not None and self.live)
    @rule(data=st.data(), cpu=st.integers(0, NCPUS - 1))
    def free_some(self, data, cpu):
        picks = data.draw(st.lists(st.integers(0, len(self.live) - 1), min_size=1, max_size=40, unique=True))
        with self.kernel.on_cpu(cpu):
            for index in sorted(picks, reverse=True):
                which, addr = self.live.pop(index)
                self.kernel.slab.kmem_cache_free(self.caches[which], addr)

    @precondition(lambda self: self.kernel is not None and self.live)
    @rule(data=st.data(), cpu=st.integers(0, NCPUS - 1), which=st.integers(0, len(SIZES) - 1))
    def free_bulk(self, data, cpu, which):
        mine = [i for i, (w, _) in enumerate(self.live) if w == which]
        if not mine:
            return
        picks = data.draw(st.lists(st.sampled_from(mine), min_size=1, max_size=40, unique=True))
        addrs = [self.live[i][1] for i in picks]  # in the drawn order: it decides the grouping
        for index in sorted(picks, reverse=True):
            self.live.pop(index)
        with self.kernel.on_cpu(cpu):
            self.kernel.slab.kmem_cache_free_bulk(self.caches[which], addrs)

    @precondition(lambda self: self.kernel is not None)
    @rule(which=st.integers(0, len(SIZES) - 1), cpu=st.integers(0, NCPUS - 1))
    def flush_cpu(self, which, cpu):
        self.kernel.slab.flush_cpu_slab(self.caches[which], cpu)

    @precondition(lambda self: self.kernel is not None)
    @rule(which=st.integers(0, len(SIZES) - 1))
    def shrink(self, which):
        self.kernel.slab.kmem_cache_shrink(self.caches[which])

    @precondition(lambda self: self.kernel is not None)
    @rule(nth=st.integers(1, 4), times=st.integers(1, 3))
    def page_failures(self, nth, times):
        # The next page allocations fail: allocate_slab() falls back to the smallest order, or gives up.
        self.kernel.faults.fail_nth("page_alloc", nth=nth, times=times)

    @invariant()
    def everything_in_one_place(self):
        if self.kernel is None:
            return
        pages = sum(_check_cache(self.kernel, cache, self.frozen_partial) for cache in self.caches)
        assert self.kernel.pages.in_use == pages

    def teardown(self):
        if self.kernel is None:
            return
        for which, addr in self.live:
            self.kernel.slab.kmem_cache_free(self.caches[which], addr)
        self.kernel.assert_no_leaks()
        assert self.kernel.pages.in_use == 0 and all(cache.nr_slabs == 0 for cache in self.caches)


TestSlub = SlubMachine.TestCase
TestSlub.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@pytest.mark.parametrize("release", ["6.1", "6.18"])
def test_machine_smoke(release):
    # One fixed run through every rule, so a failure of the machine itself shows without hypothesis.
    machine = SlubMachine()
    machine.boot(release, True)
    machine.alloc(0, 0, 40)
    machine.alloc_bulk(1, 1, 20)
    machine.everything_in_one_place()
    machine.flush_cpu(0, 0)
    machine.shrink(1)
    machine.everything_in_one_place()
    machine.teardown()
