"""The fast engine's SLUB (skbsim/fast/slub.py) against the model's (skbsim/mm/slab.py), operation by operation.

Random sequences of single and bulk allocations and frees on random CPUs, CPU flushes and shrinks, with
page allocation failures now and then, run on a reference Kernel's SlabAllocator and on the compiled
Slabs record side by side; after every operation the page counts by order and every list (each CPU's
slab, lockless freelist and partial list, the node list slab by slab) must agree.  The runs' JSON is
compared by tests/test_fast_engine.py and tests/tools/compare_engines.py; this test looks inside.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skbsim.fast.setup import load_faults, slab_spec
from skbsim.fast.slub import (
    _flush_cpu_slab, _kmem_cache_shrink, _slab_alloc, _slab_alloc_bulk, _slab_free, _slab_free_bulk,
)
from skbsim.fast.state import (
    ALLOCATED, C_FREE, C_NPARTIAL, C_SLAB, FREED, K_NODE_HEAD, K_NPARTIAL, K_NR_SLABS, K_SLOT_BASE, NO_SLAB,
    PG_IN_USE, PG_MAX_ORDER, SLAB_FREE, SLAB_NEXT, new_pages, new_scalars, new_slabs,
)
from skbsim.kernel import Kernel
from skbsim.mm.fault import FaultRule
from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.profile import load_profile

numba = pytest.importorskip("numba")

#: object sizes of the test caches: sk_buff-like, kmalloc-1k-like, a page, skbuff_small_head-like
SIZES = (256, 1000, 4096, 704)
ALLOC, ALLOC_BULK, FREE, FREE_BULK, FLUSH, SHRINK = range(6)


@numba.njit
def _op(slabs, pages, faults, scalars, args, p):
    """One operation (args: kind, cache, CPU, count) on the compiled SLUB; p holds the objects."""
    kind, c, cpu, n = args[0], args[1], args[2], args[3]
    if kind == ALLOC:
        return _slab_alloc(slabs, c, cpu, pages, faults, scalars)
    if kind == ALLOC_BULK:
        return 1 if _slab_alloc_bulk(slabs, c, cpu, p[:n], n, pages, faults, scalars) else 0
    if kind == FREE:
        _slab_free(slabs, c, cpu, pages, scalars, p[0])
    elif kind == FREE_BULK:
        _slab_free_bulk(slabs, c, cpu, p[:n], pages, scalars)
    elif kind == FLUSH:
        _flush_cpu_slab(slabs, c, cpu, pages, scalars)
    else:
        _kmem_cache_shrink(slabs, c, pages, scalars)
    return 0


class Pair:
    """A reference kernel's caches and the compiled Slabs record built from them."""

    def __init__(self, release: str, ncpus: int, cpu_partial: bool, max_order: int, seed: int):
        profile = load_profile(release).derive(origin="test", features={"slub_cpu_partial": cpu_partial},
                                               constants={"MAX_PAGE_ORDER": max_order})
        self.kernel = kernel = Kernel(profile, ncpus=ncpus, seed=seed)
        self.caches = [kernel.slab.kmem_cache_create(f"t{size}", size, True, "skb_data") for size in SIZES]
        # page_alloc fails now and then, drawn from one random stream both sides replay
        kernel.faults.set("page_alloc", FaultRule(probability=0.01))
        self.scalars = new_scalars()
        self.scalars[PG_MAX_ORDER] = kernel.pages.max_order
        self.faults = load_faults(kernel.faults, self.scalars)
        self.pages = new_pages(100_000)
        self.slabs = new_slabs([slab_spec(kernel, cache, 5_000) for cache in self.caches], ncpus)
        self.live = [([], []) for _ in SIZES]  # per cache: (reference addresses, fast objects), in step

    def run(self, kind: int, c: int, cpu: int, n: int, pick: random.Random) -> None:
        kernel, cache = self.kernel, self.caches[c]
        ref, fast = self.live[c]
        p = np.zeros(max(1, n), np.int64)
        args = np.array([kind, c, cpu, n], np.int64)
        if kind == ALLOC:
            with kernel.on_cpu(cpu):
                addr = kernel.slab.kmem_cache_alloc(cache, GFP_ATOMIC, "test")
            obj = _op(self.slabs, self.pages, self.faults, self.scalars, args, p)
            assert (addr is None) == (obj < 0)
            if addr is not None:
                ref.append(addr)
                fast.append(obj)
        elif kind == ALLOC_BULK:
            with kernel.on_cpu(cpu):
                got = kernel.slab.kmem_cache_alloc_bulk(cache, GFP_ATOMIC, n, "test")
            ok = _op(self.slabs, self.pages, self.faults, self.scalars, args, p)
            assert bool(got) == bool(ok)
            if got:
                ref += got
                fast += list(p[:n])
        elif kind in (FREE, FREE_BULK) and ref:
            picks = pick.sample(range(len(ref)), min(n, len(ref)))
            if kind == FREE:
                picks = picks[:1]
            p[:len(picks)] = [fast[j] for j in picks]
            args[3] = len(picks)
            with kernel.on_cpu(cpu):
                if kind == FREE:
                    kernel.slab.kmem_cache_free(cache, ref[picks[0]])
                else:
                    kernel.slab.kmem_cache_free_bulk(cache, [ref[j] for j in picks])
            _op(self.slabs, self.pages, self.faults, self.scalars, args, p)
            for j in sorted(picks, reverse=True):
                del ref[j], fast[j]
        elif kind == FLUSH:
            kernel.slab.flush_cpu_slab(cache, cpu)
            _op(self.slabs, self.pages, self.faults, self.scalars, args, p)
        elif kind == SHRINK:
            kernel.slab.kmem_cache_shrink(cache)
            _op(self.slabs, self.pages, self.faults, self.scalars, args, p)

    def check(self, sorted_node: bool = False) -> None:
        pages = self.kernel.pages
        for order in range(12):
            assert pages.allocated[order] == self.pages.counts[order, ALLOCATED], order
            assert pages.freed[order] == self.pages.counts[order, FREED], order
        assert pages.in_use == self.scalars[PG_IN_USE]
        for c, cache in enumerate(self.caches):
            K = self.slabs.caches[c]
            assert cache.nr_slabs == K[K_NR_SLABS]
            assert len(cache.node.partial) == K[K_NPARTIAL]
            for cpu, kc in enumerate(cache.cpu_slab):
                C = self.slabs.cpu[c, cpu]
                assert (kc.slab is None) == (C[C_SLAB] == NO_SLAB)
                assert len(kc.freelist) == C[C_FREE]
                assert len(kc.partial) == C[C_NPARTIAL]
            # the node list, slab by slab: free objects on each (kmem_cache_shrink() sorts the reference's)
            ref = [len(slab.freelist) for slab in cache.node.partial]
            fast = []
            slot = K[K_NODE_HEAD] if K[K_NPARTIAL] else NO_SLAB
            while slot != NO_SLAB:
                fast.append(int(self.slabs.slot[K[K_SLOT_BASE] + slot, SLAB_FREE]))
                slot = self.slabs.slot[K[K_SLOT_BASE] + slot, SLAB_NEXT]
            assert (sorted(ref) == sorted(fast)) if sorted_node else (ref == fast)


OPS = st.tuples(st.sampled_from([ALLOC] * 3 + [ALLOC_BULK, FREE, FREE, FREE_BULK, FLUSH]),
                st.integers(0, len(SIZES) - 1), st.integers(0, 2), st.integers(1, 40))


@settings(max_examples=40, deadline=None)
@given(release=st.sampled_from(["6.1", "6.18"]), ncpus=st.integers(1, 3), cpu_partial=st.booleans(),
       max_order=st.sampled_from([10, 1]), seed=st.integers(0, 2**16), ops=st.lists(OPS, max_size=120))
def test_compiled_slub_keeps_the_models_lists(release, ncpus, cpu_partial, max_order, seed, ops):
    pair = Pair(release, ncpus, cpu_partial, max_order, seed)
    pick = random.Random(seed)
    for kind, c, cpu, n in ops:
        for _ in range(n if kind == ALLOC else 1):
            pair.run(kind, c, cpu % ncpus, n, pick)
        pair.check()
    # the end of a run: shrink (the model sorts the node list, the fast engine does not), then free
    # everything and shrink again, as the leak check does: no page is left
    for c in range(len(SIZES)):
        pair.run(SHRINK, c, 0, 0, pick)
    pair.check(sorted_node=True)
    for c, (ref, _) in enumerate(pair.live):
        while ref:
            pair.run(FREE_BULK, c, 0, 40, pick)
        pair.run(SHRINK, c, 0, 0, pick)
    pair.check(sorted_node=True)
    assert pair.kernel.pages.in_use == 0 and pair.scalars[PG_IN_USE] == 0
