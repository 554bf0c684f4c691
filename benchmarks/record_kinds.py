#!/usr/bin/env python3
"""Which kind of record numba compiles, caches and runs well, for the fast engine's state.

The same small piece of the engine (a pool of recycled ids with its counters, as the page
allocator and the slab caches keep them, driven through a call that numba does not inline, as
the poll calls the allocator) written five ways:

- ``positional``: every array a parameter of its own (the fast engine before issue 11);
- ``tuple_st``: a typed named tuple of arrays, its scalars in one int64 array indexed by named
  constants (``pool.st[IN_USE]``);
- ``tuple_cells``: a typed named tuple of arrays, each scalar a one-element array
  (``pool.in_use[0]``);
- ``structref``: numba.experimental.structref, mutable scalar fields (``pool.in_use``); needs
  numba's reference-counting runtime;
- ``jitclass``: numba.experimental.jitclass, the same fields; needs the runtime too, and
  numba cannot cache it.

Each variant runs in a child process of its own with an empty cache directory (compile), then
again (load from the cache); both are timed from import to the end of a first tiny call, and
the run over N operations is timed (min of 3) in the second child.  The operations take an id
(twice) and give one back (once), keeping at most 64 taken.  Prints a table.

Usage: python3 benchmarks/record_kinds.py [--ops 20000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import namedtuple

import numpy as np

VARIANTS = ("positional", "tuple_st", "tuple_cells", "structref", "jitclass")
CAPACITY = 4096
IN_USE, PEAK, FREE_TOP, NEXT, TAKEN, ST_SIZE = range(6)

Pool = namedtuple("Pool", ("ref", "free", "st"))
PoolCells = namedtuple("PoolCells", ("ref", "free", "in_use", "peak", "free_top", "next", "taken"))


def _build(variant: str):
    """The variant's compiled driver run(n, pool) -> checksum, and a fresh pool."""
    from numba import njit

    plain = dict(cache=True, _nrt=False)
    if variant == "positional":
        @njit(inline="always", **plain)
        def take(ref, free, st):
            if st[FREE_TOP] > 0:
                st[FREE_TOP] -= 1
                pid = free[st[FREE_TOP]]
            else:
                pid = st[NEXT]
                st[NEXT] += 1
            ref[pid] = 1
            st[IN_USE] += 1
            st[TAKEN] += 1
            if st[IN_USE] > st[PEAK]:
                st[PEAK] = st[IN_USE]
            return pid

        @njit(inline="always", **plain)
        def give(ref, free, st, pid):
            ref[pid] = 0
            free[st[FREE_TOP]] = pid
            st[FREE_TOP] += 1
            st[IN_USE] -= 1

        @njit(**plain)
        def step(ref, free, st, held, i):
            if i % 3 == 2 and held[64] > 0:
                held[64] -= 1
                give(ref, free, st, held[held[64]])
            elif held[64] < 64:
                held[held[64]] = take(ref, free, st)
                held[64] += 1

        @njit(**plain)
        def run(n, ref, free, st, held):
            for i in range(n):
                step(ref, free, st, held, i)
            return st[TAKEN] + st[PEAK]

        def call(n, pool):
            return run(n, pool[0], pool[1], pool[2], pool[3])

        def fresh():
            return (np.zeros(CAPACITY, np.int64), np.zeros(CAPACITY, np.int64), np.zeros(ST_SIZE, np.int64),
                    np.zeros(65, np.int64))
        return call, fresh
    if variant in ("tuple_st", "tuple_cells"):
        cells = variant == "tuple_cells"

        if cells:
            @njit(inline="always", **plain)
            def take(pool):
                if pool.free_top[0] > 0:
                    pool.free_top[0] -= 1
                    pid = pool.free[pool.free_top[0]]
                else:
                    pid = pool.next[0]
                    pool.next[0] += 1
                pool.ref[pid] = 1
                pool.in_use[0] += 1
                pool.taken[0] += 1
                if pool.in_use[0] > pool.peak[0]:
                    pool.peak[0] = pool.in_use[0]
                return pid

            @njit(inline="always", **plain)
            def give(pool, pid):
                pool.ref[pid] = 0
                pool.free[pool.free_top[0]] = pid
                pool.free_top[0] += 1
                pool.in_use[0] -= 1

            @njit(**plain)
            def checksum(pool):
                return pool.taken[0] + pool.peak[0]
        else:
            @njit(inline="always", **plain)
            def take(pool):
                st = pool.st
                if st[FREE_TOP] > 0:
                    st[FREE_TOP] -= 1
                    pid = pool.free[st[FREE_TOP]]
                else:
                    pid = st[NEXT]
                    st[NEXT] += 1
                pool.ref[pid] = 1
                st[IN_USE] += 1
                st[TAKEN] += 1
                if st[IN_USE] > st[PEAK]:
                    st[PEAK] = st[IN_USE]
                return pid

            @njit(inline="always", **plain)
            def give(pool, pid):
                pool.ref[pid] = 0
                pool.free[pool.st[FREE_TOP]] = pid
                pool.st[FREE_TOP] += 1
                pool.st[IN_USE] -= 1

            @njit(**plain)
            def checksum(pool):
                return pool.st[TAKEN] + pool.st[PEAK]

        @njit(**plain)
        def step(pool, held, i):
            if i % 3 == 2 and held[64] > 0:
                held[64] -= 1
                give(pool, held[held[64]])
            elif held[64] < 64:
                held[held[64]] = take(pool)
                held[64] += 1

        @njit(**plain)
        def run(n, pool, held):
            for i in range(n):
                step(pool, held, i)
            return checksum(pool)

        def fresh():
            if cells:
                one = [np.zeros(1, np.int64) for _ in range(5)]
                pool = PoolCells(np.zeros(CAPACITY, np.int64), np.zeros(CAPACITY, np.int64), *one)
            else:
                pool = Pool(np.zeros(CAPACITY, np.int64), np.zeros(CAPACITY, np.int64), np.zeros(ST_SIZE, np.int64))
            return pool, np.zeros(65, np.int64)
        return (lambda n, state: run(n, state[0], state[1])), fresh
    if variant == "structref":
        return _structref()
    return _jitclass()


def _structref():
    from numba import njit, types
    from numba.experimental import structref

    @structref.register
    class PoolType(types.StructRef):
        def preprocess_fields(self, fields):
            return tuple((name, types.unliteral(typ)) for name, typ in fields)

    class PoolRef(structref.StructRefProxy):
        pass

    structref.define_proxy(PoolRef, PoolType, ["ref", "free", "in_use", "peak", "free_top", "next", "taken"])

    @njit(cache=True, inline="always")
    def take(pool):
        if pool.free_top > 0:
            pool.free_top -= 1
            pid = pool.free[pool.free_top]
        else:
            pid = pool.next
            pool.next += 1
        pool.ref[pid] = 1
        pool.in_use += 1
        pool.taken += 1
        if pool.in_use > pool.peak:
            pool.peak = pool.in_use
        return pid

    @njit(cache=True, inline="always")
    def give(pool, pid):
        pool.ref[pid] = 0
        pool.free[pool.free_top] = pid
        pool.free_top += 1
        pool.in_use -= 1

    @njit(cache=True)
    def step(pool, held, i):
        if i % 3 == 2 and held[64] > 0:
            held[64] -= 1
            give(pool, held[held[64]])
        elif held[64] < 64:
            held[held[64]] = take(pool)
            held[64] += 1

    @njit(cache=True)
    def run(n, pool, held):
        for i in range(n):
            step(pool, held, i)
        return pool.taken + pool.peak

    def fresh():
        return PoolRef(np.zeros(CAPACITY, np.int64), np.zeros(CAPACITY, np.int64), 0, 0, 0, 0, 0), np.zeros(65, np.int64)
    return (lambda n, state: run(n, state[0], state[1])), fresh


def _jitclass():
    from numba import int64, njit
    from numba.experimental import jitclass

    @jitclass([("ref", int64[:]), ("free", int64[:]), ("in_use", int64), ("peak", int64), ("free_top", int64),
               ("next", int64), ("taken", int64)])
    class PoolClass:
        def __init__(self, ref, free):
            self.ref = ref
            self.free = free
            self.in_use = 0
            self.peak = 0
            self.free_top = 0
            self.next = 0
            self.taken = 0

        def take(self):
            if self.free_top > 0:
                self.free_top -= 1
                pid = self.free[self.free_top]
            else:
                pid = self.next
                self.next += 1
            self.ref[pid] = 1
            self.in_use += 1
            self.taken += 1
            if self.in_use > self.peak:
                self.peak = self.in_use
            return pid

        def give(self, pid):
            self.ref[pid] = 0
            self.free[self.free_top] = pid
            self.free_top += 1
            self.in_use -= 1

    @njit
    def step(pool, held, i):
        if i % 3 == 2 and held[64] > 0:
            held[64] -= 1
            pool.give(held[held[64]])
        elif held[64] < 64:
            held[held[64]] = pool.take()
            held[64] += 1

    @njit
    def run(n, pool, held):
        for i in range(n):
            step(pool, held, i)
        return pool.taken + pool.peak

    def fresh():
        return PoolClass(np.zeros(CAPACITY, np.int64), np.zeros(CAPACITY, np.int64)), np.zeros(65, np.int64)
    return (lambda n, state: run(n, state[0], state[1])), fresh


def child(variant: str, ops: int, timed: bool) -> None:
    started = time.perf_counter()
    call, fresh = _build(variant)
    call(10, fresh())
    ready = time.perf_counter() - started
    best = float("nan")
    if timed:
        best = min(_timed(call, fresh, ops) for _ in range(3))
    print(ready, best)


def _timed(call, fresh, ops):
    state = fresh()
    started = time.perf_counter()
    call(ops, state)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=20_000_000)
    parser.add_argument("--child", choices=VARIANTS)
    parser.add_argument("--timed", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.ops, args.timed)
        return 0
    print(f"{'variant':>12} {'compile+first call':>19} {'cached load+call':>17} {'run, ns/op (min of 3)':>22}")
    for variant in VARIANTS:
        with tempfile.TemporaryDirectory(prefix="skbsim-records-") as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            runs = []
            for timed in (False, True):
                out = subprocess.run([sys.executable, __file__, "--child", variant, "--ops", str(args.ops)]
                                     + (["--timed"] if timed else []), env=env, capture_output=True, text=True,
                                     check=True).stdout.split()
                runs.append((float(out[0]), float(out[1])))
        (cold, _), (warm, run) = runs
        print(f"{variant:>12} {cold:>18.2f}s {warm:>16.2f}s {run / args.ops * 1e9:>22.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
