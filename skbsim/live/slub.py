"""SLUB's lists on the running kernel: /sys/kernel/slab/<cache>/ after a known sequence.

The sequence: ``kmem_cache_shrink()`` of the cache (writing 1 to its
``shrink`` file: every CPU gives its slab and partial list to the node,
every empty slab is freed), then ``count`` IPv4/UDP frames written to a TAP
in a namespace of our own with a blocking write - each becomes one skb
whose head tun_alloc_skb() takes from the cache - queued on a bound UDP
socket that does not read, then all of them read (each head freed).  The
writing and reading thread is pinned to one CPU (sched_setaffinity()), so
every object is allocated and freed on that CPU.  The cache's numbers are
read after the shrink, after the writes and after the reads.

Only the thread's own CPU is pinned: other tasks and interrupts on the
machine may use the same cache meanwhile.  Caches that little else uses
(skbuff_small_head, the big kmalloc caches) keep that noise low, and each
round is repeated so the caller can see whether the numbers repeat.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from skbsim.errors import InputError
from skbsim.live.probe import PEER_IPV4, TAP_IPV4, _udp_pair, _wait_readable, requirements_missing
from skbsim.live.tap import ipv4_udp_frame, tap_in_new_netns

SYSFS_SLAB = "/sys/kernel/slab"
#: The files read each time: what the model's SlabAllocator.sysfs() computes.
LIST_FILES = ("slabs", "total_objects", "objects", "partial", "objects_partial", "cpu_slabs", "slabs_cpu_partial")
#: The files that describe the cache itself (compared once).
CACHE_FILES = ("object_size", "slab_size", "order", "objs_per_slab", "min_partial", "cpu_partial")
SO_RCVBUFFORCE = 33  # include/uapi/asm-generic/socket.h
PEER_MAC = bytes.fromhex("020000534b43")


def read_slab_file(cache: str, name: str, root: str = SYSFS_SLAB) -> int:
    """One number of /sys/kernel/slab/<cache>/<name>: the total before any ``N0=`` per-node part;
    for slabs_cpu_partial, the slab count in its ``objects(slabs)`` form."""
    with open(os.path.join(root, cache, name)) as handle:
        first = handle.read().split()[0]
    if "(" in first:
        return int(first[first.index("(") + 1: first.index(")")])
    return int(first)


def read_slab_sysfs(cache: str, names=LIST_FILES, root: str = SYSFS_SLAB) -> dict[str, int]:
    return {name: read_slab_file(cache, name, root) for name in names}


def sheaf_capacity(cache: str, root: str = SYSFS_SLAB) -> int | None:
    """/sys/kernel/slab/<cache>/sheaf_capacity (6.18+), or None where the file does not exist."""
    path = os.path.join(root, cache, "sheaf_capacity")
    if not os.path.exists(path):
        return None
    return read_slab_file(cache, "sheaf_capacity", root)


def slub_requirements(caches=(), root: str = SYSFS_SLAB) -> list[str]:
    """What this machine lacks for the SLUB check (empty when nothing)."""
    missing = list(requirements_missing())
    if not os.path.isdir(root):
        return missing + [f"{root} (a SLUB kernel with sysfs)"]
    for cache in caches:
        if not os.path.exists(os.path.join(root, cache, "slabs")):
            missing.append(f"{root}/{cache}/slabs (the cache, and CONFIG_SLUB_DEBUG for its counts)")
    return missing


def kmem_cache_shrink(cache: str, root: str = SYSFS_SLAB) -> None:
    """Write 1 to /sys/kernel/slab/<cache>/shrink (mm/slub.c: shrink_store())."""
    with open(os.path.join(root, cache, "shrink"), "w") as handle:
        handle.write("1")


@contextmanager
def pinned(cpu: int) -> Iterator[None]:
    """The calling thread on one CPU for the block (sched_setaffinity()), its affinity restored after."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@dataclass
class Round:
    """One round: the cache's numbers after the shrink, the writes and the reads."""

    shrunk: dict[str, int]
    written: dict[str, int]
    read: dict[str, int]
    frames_read: int


def slub_rounds(cache: str, frame_len: int, count: int, rounds: int, cpu: int) -> list[Round]:
    """``rounds`` times: shrink ``cache``, write ``count`` frames of ``frame_len`` bytes on ``cpu``, read them."""
    missing = slub_requirements([cache])
    if missing:
        raise InputError("the SLUB check needs: " + "; ".join(missing))
    if cpu not in os.sched_getaffinity(0):
        raise InputError(f"CPU {cpu} is not one this process may run on")
    out: list[Round] = []
    with tap_in_new_netns(ipv4=f"{TAP_IPV4}/24") as tap:
        receiver, sender = tap.netns.run(_udp_pair, TAP_IPV4)
        sender.close()
        with receiver:
            # Room for every frame: nothing may be dropped by the socket.
            receiver.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
            frame = ipv4_udp_frame(frame_len, tap.mac, PEER_MAC, PEER_IPV4, TAP_IPV4, 40000,
                                   receiver.getsockname()[1])
            with pinned(cpu):
                for _ in range(rounds):
                    kmem_cache_shrink(cache)
                    shrunk = read_slab_sysfs(cache)
                    for _ in range(count):
                        tap.write(frame)
                    written = read_slab_sysfs(cache)
                    got = 0
                    while got < count and _wait_readable(receiver, 1.0):
                        receiver.recv(0x10000)
                        got += 1
                    out.append(Round(shrunk, written, read_slab_sysfs(cache), got))
    return out
