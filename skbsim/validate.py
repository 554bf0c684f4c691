"""Live validation: the tun model against the kernel running on this machine.

For every chosen tun route, frames of a sweep of lengths are written to a
TAP in a network namespace of our own (skbsim.live), the skb each one
became is read from a tracefs instance of our own (len, data_len,
truesize, nr_frags at the route's receive tracepoint), and the same frames,
in the same order, go through the model's tun driver on the ``--kernel``
profile (``host`` by default: the running kernel's rules and sizes).  Every
field of every frame must agree.

UDP adds the receiving socket: IPv4/UDP frames over the same routes to a
socket bound inside the namespace, with SO_MEMINFO read while each datagram
is queued and after it is read (compared with skbsim.net.sock's
accounting: sk_rmem_alloc, sk_forward_alloc, drops), and a fill of a small
receive buffer without reading, where the number of datagrams admitted and
the charge left must agree.

Everything is created by skbsim.live and removed on every way out
(errors, Ctrl-C, SIGTERM); nothing outside the namespace and the tracefs
instance is touched.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from skbsim.drivers import tun
from skbsim.drivers.base import make_frame
from skbsim.errors import InputError
from skbsim.ranges import parse_range
from skbsim.kernel import Kernel
from skbsim.net.napi import NAPI_POLL_WEIGHT, napi_struct, net_device
from skbsim.net.skbuff import kfree_skb
from skbsim.net.sock import sk_get_meminfo, udp_destroy_sock, udp_queue_rcv_skb, udp_recvmsg, udp_sock
from skbsim.profile import Profile, load_profile

ETH_HLEN = 14
ETH_P_LOCAL_EXPERIMENTAL = 0x88B5
HEADER_BYTES = 128
#: IPv4 + UDP headers after the Ethernet header: the shortest UDP frame.
UDP_FRAME_MIN = ETH_HLEN + 20 + 8
UDP_FRAME_MAX = 65535

SKB_FIELDS = ("len", "data_len", "truesize", "nr_frags")
UDP_FIELDS = ("rmem_alloc", "fwd_alloc", "drops")


@dataclass(frozen=True)
class Route:
    """A tun route of the validation: the live probe's route and the model's options."""

    name: str
    probe: str
    options: dict
    description: str
    #: IFF_NAPI_FRAGS only: the first iovec segment's length (the rest goes in PAGE_SIZE pieces).
    frags_head: int = tun.MAX_FRAME_LEN


ROUTES: dict[str, Route] = {route.name: route for route in (
    Route("block", "blocking", {"write": "block"}, "blocking write: tun_alloc_skb, netif_receive_skb"),
    Route("nonblock", "nonblocking", {"write": "nonblock"},
          "O_NONBLOCK write: tun_build_skb up to 3456 bytes, then tun_alloc_skb; netif_receive_skb"),
    Route("napi", "napi", {"write": "block", "napi": "1"}, "IFF_NAPI, blocking write: napi_gro_receive"),
    Route("napi_nonblock", "napi_nonblocking", {"write": "nonblock", "napi": "1"},
          "IFF_NAPI, O_NONBLOCK write: napi_gro_receive"),
    Route("frags", "napi_frags", {"napi": "1", "frags": "1"},
          "IFF_NAPI|IFF_NAPI_FRAGS, one iovec segment (write()): napi_gro_frags"),
    Route("frags_iov", "napi_frags", {"napi": "1", "frags": "1"},
          "IFF_NAPI|IFF_NAPI_FRAGS, writev of 64 bytes then 4096-byte pieces: page frags, napi_gro_frags",
          frags_head=64),
)}
DEFAULT_ROUTES = ("block", "nonblock", "napi", "frags_iov")

#: Lengths where a route, a kmalloc size or a page-block order changes (x86_64, 4K pages): the small
#: head, kmalloc-512/1k/2k/4k/8k steps of tun_alloc_skb's head, tun_build_skb's limit 3456, the
#: linear limit (64 + len reaching a page, then good_linear 3712), page-block orders of the rest.
BOUNDARIES = (14, 15, 59, 60, 61, 128, 129, 192, 193, 256, 257, 640, 641, 1500, 1514, 1664, 1665, 3456, 3457,
              3712, 3713, 4031, 4032, 4033, 7808, 7809, 8000, 9000, 9014, 9216, 11904, 11905, 12000, 16000)
#: Frame lengths of the UDP sweep.
UDP_SWEEP = (42, 60, 100, 300, 576, 1000, 1514, 2000, 3456, 3457, 4000, 4032, 8000, 9000, 16000, 30000, 65535)


@dataclass
class Disagreement:
    check: str
    route: str
    frame_len: int
    field: str
    live: object
    model: object

    def as_dict(self) -> dict:
        return {"check": self.check, "route": self.route, "frame_len": self.frame_len, "field": self.field,
                "live": self.live, "model": self.model}


@dataclass
class RouteResult:
    route: str
    event: str = ""
    frames: int = 0
    agreements: int = 0
    rejected: int = 0
    seconds: float = 0.0
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {"route": self.route, "event": self.event, "frames": self.frames, "agreements": self.agreements,
                "disagreements": len(self.disagreements), "rejected_writes": self.rejected,
                "seconds": round(self.seconds, 4), "frames_per_s": round(self.frames_per_s, 1)}


# -- the sweep ---------------------------------------------------------------------------------


def parse_length_range(text: str) -> tuple[int, int, int]:
    """``A:B[:step]`` -> (A, B, step), with 14 <= A <= B <= 65535 and step >= 1."""
    return parse_range(text, "--lengths", tun.MIN_FRAME_LEN, tun.MAX_FRAME_LEN)


def sweep_lengths(length_range: tuple[int, int, int] = (60, 1514, 1), sample: int | None = 300, seed: int = 0,
                  boundaries: bool = True) -> list[int]:
    """The frame lengths of a validation run, in the order they are written.

    From the range (every step-th length from A to B): ``sample`` of them
    drawn with a seeded generator (all when None or at least the range's
    size), plus the range's ends, plus :data:`BOUNDARIES` (including the
    jumbo sizes) when ``boundaries``.  Sorted ascending.
    """
    low, high, step = length_range
    candidates = range(low, high + 1, step)
    if sample is not None and sample < 0:
        raise InputError(f"--sample must not be negative, got {sample}")
    if sample is None or sample >= len(candidates):
        chosen = set(candidates)
    else:
        chosen = set(random.Random(seed).sample(candidates, sample))
    chosen.update((low, candidates[-1]))
    if boundaries:
        chosen.update(BOUNDARIES)
    return sorted(chosen)


def parse_routes(text: str | Sequence[str]) -> list[str]:
    names = [part.strip() for part in text.split(",")] if isinstance(text, str) else list(text)
    names = [name for name in names if name]
    if not names:
        raise InputError("--routes names no route")
    for name in names:
        if name not in ROUTES:
            raise InputError(f"unknown route {name!r} (known: {', '.join(ROUTES)})")
    return list(dict.fromkeys(names))


# -- the model side ----------------------------------------------------------------------------------


def _ethernet_header(ethertype: int = ETH_P_LOCAL_EXPERIMENTAL) -> bytes:
    return b"\xff" * 6 + bytes.fromhex("020000534b42") + struct.pack("!H", ethertype)


class ModelTap:
    """The model's counterpart of one live TAP: a kernel and one tun queue with the route's options."""

    def __init__(self, profile: Profile, route: Route):
        self.kernel = Kernel(profile)
        self.dev = net_device("skbt0")
        self.napi = napi_struct(self.dev)
        self.queue = tun.DRIVER.open_queue(self.kernel, self.dev, self.napi, dict(route.options))

    def write(self, length: int, header: bytes, deliver: Callable, segments: list[int] | None = None) -> bool:
        """One write() (or a writev() of ``segments``); every skb the stack gets goes to ``deliver``."""
        kernel = self.kernel
        if segments is not None and len(segments) > 1:
            queue = self.queue
            with kernel.on_cpu(self.napi.cpu):
                written, _, _ = tun.tun_get_user(kernel, queue.tun, queue.tfile, queue.task, length,
                                                 header[:HEADER_BYTES], queue.noblock, segments=segments)
            if written < 0:
                return False
        elif not tun.DRIVER.nic_receive(kernel, self.queue, make_frame(length, header[:HEADER_BYTES])):
            return False
        with kernel.softirq(self.napi.cpu):
            while tun.pending(kernel, self.queue):
                tun.DRIVER.poll(kernel, self.queue, NAPI_POLL_WEIGHT, deliver)
        return True

    def close(self) -> str | None:
        """Take the queue down; the leak check's summary if anything was not given back."""
        tun.DRIVER.close_queue(self.kernel, self.queue)
        report = self.kernel.leak_check()
        return None if report.clean else report.summary()


def iovec_layout(length: int, head: int, page_size: int = 4096) -> list[int]:
    """Segment lengths of the live probe's writev(): ``head`` bytes, then page-sized pieces."""
    first = min(head, length)
    rest = length - first
    return [first] + [min(page_size, rest - offset) for offset in range(0, rest, page_size)]


def model_route(profile: Profile, route: Route, lengths: Sequence[int]) -> tuple[list[dict | None], str | None]:
    """What the model's skb is for each frame (None where the write is refused), and its leak check."""
    tap = ModelTap(profile, route)
    header = _ethernet_header()
    rows: list[dict | None] = []
    for length in lengths:
        seen = []

        def deliver(skb) -> None:
            seen.append({name: getattr(skb, name) for name in SKB_FIELDS})
            # The stack drops EtherType 0x88b5 frames (no handler): kfree_skb.
            kfree_skb(tap.kernel, skb)

        tap.write(length, header, deliver, iovec_layout(length, route.frags_head))
        rows.append(seen[0] if len(seen) == 1 else None)
    return rows, tap.close()


# -- comparing ----------------------------------------------------------------------------------------


def compare_route(route: Route, lengths: Sequence[int], live_rows: Sequence[dict],
                  model_rows: Sequence[dict | None]) -> RouteResult:
    result = RouteResult(route.name, frames=len(lengths))
    for length, live, model in zip(lengths, live_rows, model_rows):
        result.event = result.event or (live.get("event") or "")
        if live.get("error"):
            result.rejected += 1
            if model is None:
                result.agreements += 1
            else:
                result.disagreements.append(Disagreement("skb", route.name, length, "write", live["error"], "accepted"))
            continue
        if model is None:
            result.disagreements.append(Disagreement("skb", route.name, length, "write", "accepted", "refused"))
            continue
        wrong = [Disagreement("skb", route.name, length, name, live[name], model[name])
                 for name in SKB_FIELDS if live[name] != model[name]]
        if wrong:
            result.disagreements.extend(wrong)
        else:
            result.agreements += 1
    return result


def _check(out: list[Disagreement], check: str, route: str, length: int, name: str, live, model) -> bool:
    if live != model:
        out.append(Disagreement(check, route, length, name, live, model))
        return False
    return True


# -- alloc --kernel host ---------------------------------------------------------------------------------


#: Routes whose skbs show one allocation function's answer, and how: (function, len asked of it, gfp,
#: context, what of the live skb is that allocation's truesize).
ALLOC_CHECKS = {
    # A blocking write that tun keeps linear (data_len 0): tun_alloc_skb() -> sock_alloc_send_pskb() ->
    # alloc_skb_with_frags() -> alloc_skb(NET_SKB_PAD + len) (tun_set_iff() sets tun->align to
    # NET_SKB_PAD); nothing else changes truesize on the way to netif_receive_skb_entry.
    "block": ("__alloc_skb", "NET_SKB_PAD + frame length", "GFP_KERNEL", "process"),
    # IFF_NAPI_FRAGS, writev of 64 bytes then pages: napi_get_frags() -> napi_alloc_skb(GRO_MAX_HEAD); the
    # 64 bytes fit its tailroom (no __skb_grow() reallocation) and each further segment adds its length
    # (data_len in all) to truesize.
    "frags_iov": ("napi_alloc_skb", "GRO_MAX_HEAD", None, "softirq"),
}


def validate_alloc(profile: Profile, route: str, lengths: Sequence[int], live_rows: Sequence[dict]) -> tuple[dict, list]:
    """``skbsim alloc --kernel host`` against the live kernel, through a route of ALLOC_CHECKS: every
    live skb whose truesize is one allocation's, against what ``alloc`` says that allocation costs.
    Returns the summary and the disagreements."""
    from skbsim.alloc import explain_alloc

    function, asked, gfp, context = ALLOC_CHECKS[route]
    disagreements: list[Disagreement] = []
    checks = agreements = 0
    answers: dict[int, int | None] = {}
    for length, live in zip(lengths, live_rows):
        if live.get("error"):
            continue
        if route == "block":
            if live["data_len"] != 0:
                continue  # part of it in page frags: not one __alloc_skb()
            size, live_truesize = profile.NET_SKB_PAD + length, live["truesize"]
        else:
            size, live_truesize = profile.GRO_MAX_HEAD, live["truesize"] - live["data_len"]
        if size not in answers:
            model = explain_alloc(profile, function, size, gfp, context=context)
            answers[size] = model["truesize"] if model["ok"] else None
        checks += 1
        if _check(disagreements, f"alloc {function}", route, length, "truesize", live_truesize, answers[size]):
            agreements += 1
    summary = {"function": function, "len": asked, "gfp": gfp or "default", "route": route, "checks": checks,
               "agreements": agreements, "lengths": len(answers)}
    return summary, disagreements


# -- UDP ------------------------------------------------------------------------------------------------


def model_udp_sweep(profile: Profile, route: Route, lengths: Sequence[int], rcvbuf: int) -> list[dict]:
    """Per frame: the model's socket meminfo with the datagram queued and after reading it."""
    from skbsim.live.probe import PEER_IPV4, TAP_IPV4
    from skbsim.live.tap import ipv4_udp_frame

    tap = ModelTap(profile, route)
    sk = udp_sock(tap.kernel, rcvbuf)
    rows = []
    for length in lengths:
        header = ipv4_udp_frame(length, b"\x02" * 6, b"\x02" * 6, PEER_IPV4, TAP_IPV4, 40000, 5000)
        tap.write(length, header, lambda skb: udp_queue_rcv_skb(tap.kernel, sk, skb))
        queued = sk_get_meminfo(sk)
        udp_recvmsg(tap.kernel, sk)
        rows.append({"queued": queued, "drained": sk_get_meminfo(sk)})
    udp_destroy_sock(tap.kernel, sk)
    rows.append({"leak": tap.close()})
    return rows


def model_udp_fill(profile: Profile, route: Route, lengths: Sequence[int], rcvbuf: int) -> dict:
    """The model's socket after the frames arrive with no reader: admitted count and meminfo."""
    from skbsim.live.probe import PEER_IPV4, TAP_IPV4
    from skbsim.live.tap import ipv4_udp_frame

    tap = ModelTap(profile, route)
    sk = udp_sock(tap.kernel, rcvbuf)
    for length in lengths:
        header = ipv4_udp_frame(length, b"\x02" * 6, b"\x02" * 6, PEER_IPV4, TAP_IPV4, 40000, 5000)
        tap.write(length, header, lambda skb: udp_queue_rcv_skb(tap.kernel, sk, skb))
    result = {"admitted": sk.enqueued, "meminfo": sk_get_meminfo(sk)}
    udp_destroy_sock(tap.kernel, sk)
    result["leak"] = tap.close()
    return result


def live_udp_fill(route: Route, lengths: Sequence[int], so_rcvbuf: int) -> dict:
    """Frames on a live route into a bound UDP socket with SO_RCVBUF so_rcvbuf, nobody reading.

    Returns the socket's rcvbuf, SO_MEMINFO after the last frame, and how
    many datagrams could then be read (= admitted).
    """
    from skbsim.live.probe import PEER_IPV4, ROUTES as PROBE_ROUTES, TAP_IPV4, so_meminfo
    from skbsim.live.tap import ipv4_udp_frame, tap_in_new_netns

    chosen = PROBE_ROUTES[route.probe]

    def make_socket() -> socket.socket:
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, so_rcvbuf)
        receiver.bind((TAP_IPV4, 0))
        return receiver

    with tap_in_new_netns(napi=chosen.napi, ipv4=f"{TAP_IPV4}/24") as tap:
        receiver = tap.netns.run(make_socket)
        with receiver:
            port = receiver.getsockname()[1]
            tap.set_nonblocking(chosen.nonblocking)
            for length in lengths:
                tap.write(ipv4_udp_frame(length, tap.mac, bytes.fromhex("020000534b43"), PEER_IPV4, TAP_IPV4,
                                         40000, port))
            meminfo = so_meminfo(receiver)
            admitted = 0
            receiver.setblocking(False)
            while True:
                try:
                    receiver.recv(0x10000)
                except BlockingIOError:
                    break
                admitted += 1
    return {"rcvbuf": meminfo["rcvbuf"], "admitted": admitted, "meminfo": meminfo}


#: Fills of a small receive buffer: (name, frame lengths, SO_RCVBUF).  SO_RCVBUF 16384 gives
#: sk_rcvbuf 32768; 1514-byte frames of 2176 (build_skb) or 2304 (kmalloc) bytes fill it in 15 or 14.
UDP_FILLS = (
    ("1514x40", (1514,) * 40, 16384),
    ("mixed", (60, 1514, 9000, 300, 4000, 42) * 8, 32768),
    ("jumbo-first", (16000, 60, 60, 60), 1),
)


def validate_udp(profile: Profile, routes: Sequence[Route], lengths: Sequence[int] = UDP_SWEEP) -> dict:
    """UDP sweep and fills on every route that delivers plain skbs (not frags)."""
    from skbsim.live.probe import udp_tap_meminfo

    disagreements: list[Disagreement] = []
    sweeps = []
    fills = []
    checks = 0
    for route in routes:
        if route.probe == "napi_frags":
            continue
        started = time.perf_counter()
        live = udp_tap_meminfo(lengths, route.probe)
        seconds = time.perf_counter() - started
        rcvbuf = live[0]["queued"]["rcvbuf"] if live else 0
        model = model_udp_sweep(profile, route, lengths, rcvbuf)
        leak = model.pop()["leak"]
        agree = 0
        for length, live_row, model_row in zip(lengths, live, model):
            ok = True
            for phase in ("queued", "drained"):
                for name in UDP_FIELDS:
                    checks += 1
                    ok &= _check(disagreements, f"udp {phase}", route.name, length, name,
                                 live_row[phase][name], model_row[phase][name])
            agree += ok
        if leak:
            disagreements.append(Disagreement("udp model leak", route.name, 0, "leak", "clean", leak))
        sweeps.append({"route": route.name, "frames": len(lengths), "agreements": agree, "rcvbuf": rcvbuf,
                       "seconds": round(seconds, 4)})
        for name, frame_lengths, so_rcvbuf in UDP_FILLS:
            live_fill = live_udp_fill(route, frame_lengths, so_rcvbuf)
            model_fill = model_udp_fill(profile, route, frame_lengths, live_fill["rcvbuf"])
            ok = _check(disagreements, "udp fill", route.name, len(frame_lengths), f"{name} admitted",
                        live_fill["admitted"], model_fill["admitted"])
            for field_name in ("rmem_alloc", "fwd_alloc", "drops"):
                ok &= _check(disagreements, "udp fill", route.name, len(frame_lengths), f"{name} {field_name}",
                             live_fill["meminfo"][field_name], model_fill["meminfo"][field_name])
            checks += 4
            if model_fill["leak"]:
                disagreements.append(Disagreement("udp model leak", route.name, 0, "leak", "clean", model_fill["leak"]))
            fills.append({"route": route.name, "fill": name, "frames": len(frame_lengths),
                          "rcvbuf": live_fill["rcvbuf"], "admitted_live": live_fill["admitted"],
                          "admitted_model": model_fill["admitted"],
                          "rmem_live": live_fill["meminfo"]["rmem_alloc"],
                          "rmem_model": model_fill["meminfo"]["rmem_alloc"], "agree": ok})
    return {"sweeps": sweeps, "fills": fills, "checks": checks,
            "disagreements": [d.as_dict() for d in disagreements], "_disagreements": disagreements}


# -- SLUB's lists ------------------------------------------------------------------------------------------


#: Caches whose lists are checked, and a frame length whose blocking tun write takes its skb head from
#: that cache (checked against the model's tun driver before use).  They have few other users on the 6.18
#: host (kmalloc-2k had more: one round in five disturbed), and between them three slab geometries: 14
#: objects per order-1 slab with 8 on a CPU list, 8 per order-3 slab with 2, 4 per order-3 slab with 3.
SLUB_CACHES = (("skbuff_small_head", 100), ("kmalloc-4k", 2000), ("kmalloc-8k", 4000))
SLUB_ROUNDS = 5


def slub_count(objs_per_slab: int, cpu_partial_slabs: int, free_before: int) -> int:
    """Frames of a SLUB round: every free object the shrink left is used up, then enough new slabs that
    two CPU partial lists fill and drain to the node (2 * cpu_partial_slabs + 3 of them) and half of one more."""
    return free_before + (2 * cpu_partial_slabs + 3) * objs_per_slab + objs_per_slab // 2


def model_cache(kernel: Kernel, name: str):
    """The model's kmem cache of that name: a boot-time one, or the kmalloc cache of that size."""
    caches = kernel.slab.caches
    if name in caches:
        return caches[name]
    if name.startswith("kmalloc-"):
        text = name[len("kmalloc-"):]
        size = int(text[:-1]) * 1024 if text.endswith("k") else int(text)
        cache = kernel.slab.kmalloc_slab(size, 0)
        if cache.name == name:
            return cache
    raise InputError(f"the model has no kmem cache {name!r}")


def model_slub_round(profile: Profile, ncpus: int, name: str, cpu: int, shrunk: dict[str, int],
                     count: int, spread: Sequence[int] | None = None) -> tuple[dict, dict, dict] | None:
    """The model's numbers for one round: (after the shrink, after the writes, after the reads).

    The state after the shrink is rebuilt from the live numbers: ``slabs`` slabs, ``partial`` of them
    on the node list holding ``objects_partial`` objects between them, the rest full.  sysfs does not
    say which slab holds how many; ``spread`` gives them (default: as evenly as possible), and once a
    round has used up every free object any spread gives the same counts.  None when the live cache has
    slabs of another order (total_objects is not slabs times objs_per_slab), which this rebuild does
    not make.
    """
    from skbsim.mm.gfp import GFP_KERNEL

    kernel = Kernel(profile, ncpus=ncpus)
    cache = model_cache(kernel, name)
    slab = kernel.slab
    objs = cache.objs_per_slab
    slabs, partial, in_use = shrunk["slabs"], shrunk["partial"], shrunk["objects_partial"]
    if shrunk["total_objects"] != slabs * objs or not partial <= in_use <= partial * (objs - 1):
        return None
    if spread is None:
        spread = [in_use // partial + (index < in_use % partial) for index in range(partial)]
    if len(spread) != partial or sum(spread) != in_use or not all(0 < keep < objs for keep in spread):
        raise ValueError(f"spread {spread} does not fit {partial} partial slabs holding {in_use} objects")
    with kernel.on_cpu(0):
        others = [slab.kmem_cache_alloc(cache, GFP_KERNEL, "others") for _ in range(slabs * objs)]
        for index, keep in enumerate(spread):
            for addr in others[index * objs + keep:(index + 1) * objs]:
                slab.kmem_cache_free(cache, addr)
    slab.kmem_cache_shrink(cache)
    before = slab.sysfs(cache)
    with kernel.on_cpu(cpu):
        probe = [slab.kmem_cache_alloc(cache, GFP_KERNEL, "probe") for _ in range(count)]
        written = slab.sysfs(cache)
        for addr in probe:
            slab.kmem_cache_free(cache, addr)
    return before, written, slab.sysfs(cache)


def validate_slub(profile: Profile, caches=SLUB_CACHES, rounds: int = SLUB_ROUNDS, cpu: int | None = None) -> dict:
    """SLUB's per-CPU and node lists: the live /sys/kernel/slab numbers against the model's, round by round.

    Per cache: its geometry (object and slab size, order, objects per slab, min_partial, cpu_partial)
    and, 6.18+, a sheaf_capacity of 0; then ``rounds`` rounds of shrink, writes, reads (skbsim.live.slub),
    each compared with the model's prediction from the same starting numbers.  A cache passes when
    most rounds agree in every number: the rest of the machine may use the cache during a round.
    """
    from skbsim.live.slub import (
        CACHE_FILES,
        LIST_FILES,
        kmem_cache_shrink,
        read_slab_sysfs,
        sheaf_capacity,
        slub_rounds,
    )
    from skbsim.rx import receive_one

    ncpus = os.cpu_count() or 1
    cpu = min(os.sched_getaffinity(0)) if cpu is None else cpu
    disagreements: list[Disagreement] = []
    results = []
    probe = Kernel(profile, ncpus=ncpus)
    for name, frame_len in caches:
        head = receive_one(profile, "tun", {"write": "block"}, frame_len)["head_source"]
        if head != name:
            # The profile is not this kernel's (a release without the cache, other sizes): nothing to compare.
            disagreements.append(Disagreement("slub cache", name, frame_len, "head source of the model's tun write",
                                              name, head))
            continue
        cache = model_cache(probe, name)
        live_cache = read_slab_sysfs(name, CACHE_FILES)
        geometry_ok = True
        for field_name in CACHE_FILES:
            model_value = getattr(cache, {"slab_size": "size"}.get(field_name, field_name))
            geometry_ok &= _check(disagreements, "slub cache", name, frame_len, field_name,
                                  live_cache[field_name], model_value)
        sheaves = sheaf_capacity(name)
        if sheaves is not None:
            geometry_ok &= _check(disagreements, "slub cache", name, frame_len, "sheaf_capacity", sheaves, 0)
        kmem_cache_shrink(name)
        shrunk = read_slab_sysfs(name)
        # One slab's worth more than the shrink left free, for what others free before the round starts.
        count = slub_count(cache.objs_per_slab, cache.cpu_partial_slabs,
                           shrunk["total_objects"] - shrunk["objects"] + cache.objs_per_slab)
        rows = []
        for live in slub_rounds(name, frame_len, count, rounds, cpu):
            model = model_slub_round(profile, ncpus, name, cpu, live.shrunk, count)
            wrong: list[Disagreement] = []
            if live.frames_read != count:
                wrong.append(Disagreement("slub round", name, frame_len, "frames read", live.frames_read, count))
            if model is None:
                wrong.append(Disagreement("slub round", name, frame_len, "slabs of the model's order",
                                          f"{live.shrunk['slabs']} slabs, {live.shrunk['total_objects']} objects",
                                          f"{cache.objs_per_slab} objects per slab"))
            else:
                for phase, live_numbers, model_numbers in zip(("shrunk", "written", "read"),
                                                              (live.shrunk, live.written, live.read), model):
                    for field_name in LIST_FILES:
                        _check(wrong, f"slub {phase}", name, frame_len, field_name,
                               live_numbers[field_name], model_numbers[field_name])
            shown = None if model is None else {
                phase: {key: numbers[key] for key in LIST_FILES}
                for phase, numbers in zip(("shrunk", "written", "read"), model)
            }
            rows.append({"live": {"shrunk": live.shrunk, "written": live.written, "read": live.read},
                         "model": shown,
                         "agree": not wrong, "disagreements": [d.as_dict() for d in wrong]})
        agreeing = sum(row["agree"] for row in rows)
        if 2 * agreeing <= len(rows):
            disagreements += [Disagreement(**d) for row in rows for d in row["disagreements"]]
        results.append({"cache": name, "frame_len": frame_len, "frames": count, "cpu": cpu,
                        "objs_per_slab": cache.objs_per_slab, "cpu_partial_slabs": cache.cpu_partial_slabs,
                        "min_partial": cache.min_partial, "geometry_agrees": geometry_ok,
                        "rounds": rows, "agreeing_rounds": agreeing})
    return {"caches": results, "disagreements": [d.as_dict() for d in disagreements],
            "_disagreements": disagreements}


# -- the whole run ---------------------------------------------------------------------------------------


def requirements() -> list[str]:
    """What this machine lacks for live validation (empty when nothing)."""
    from skbsim.live.probe import requirements_missing

    return requirements_missing()


def validate(kernel: str | Profile = "host", routes: Iterable[str] = DEFAULT_ROUTES,
             lengths: Sequence[int] | None = None, *, udp: bool = True, slub: bool = True, batch_size: int = 128,
             progress: Callable[[str], None] | None = None) -> dict:
    """Run the validation; a plain dict (``ok`` is False on any disagreement)."""
    missing = requirements()
    if missing:
        raise InputError("live validation needs " + "; ".join(missing))
    from skbsim.live.probe import measure

    profile = load_profile(kernel) if isinstance(kernel, str) else kernel
    chosen = [ROUTES[name] for name in parse_routes(list(routes))]
    lengths = list(lengths) if lengths is not None else sweep_lengths()
    for length in lengths:
        if not tun.MIN_FRAME_LEN <= length <= tun.MAX_FRAME_LEN:
            raise InputError(f"frame length {length} outside {tun.MIN_FRAME_LEN}..{tun.MAX_FRAME_LEN}")
    results: list[RouteResult] = []
    model_leaks = []
    alloc_results, alloc_disagreements = [], []
    for route in chosen:
        if progress:
            progress(f"route {route.name}: {len(lengths)} frames")
        started = time.perf_counter()
        live_rows = measure(route.probe, lengths, on_reject="record", batch_size=batch_size,
                            frags_head=route.frags_head)
        seconds = time.perf_counter() - started
        model_rows, leak = model_route(profile, route, lengths)
        result = compare_route(route, lengths, live_rows, model_rows)
        result.seconds = seconds
        if leak:
            model_leaks.append(f"{route.name}: {leak}")
        results.append(result)
        if route.name in ALLOC_CHECKS:
            summary, wrong = validate_alloc(profile, route.name, lengths, live_rows)
            alloc_results.append(summary)
            alloc_disagreements += wrong
    udp_result = None
    if udp:
        if progress:
            progress("UDP: SO_MEMINFO sweep and receive-buffer fills")
        udp_result = validate_udp(profile, chosen)
    slub_result = None
    if slub:
        if progress:
            progress("SLUB: /sys/kernel/slab lists after shrink, writes and reads")
        slub_result = validate_slub(profile)
    disagreements = [d for r in results for d in r.disagreements] + alloc_disagreements
    if udp_result:
        disagreements += udp_result.pop("_disagreements")
    if slub_result:
        disagreements += slub_result.pop("_disagreements")
    frames = sum(r.frames for r in results)
    seconds = sum(r.seconds for r in results)
    return {
        "kernel": profile.name,
        "release": profile.release,
        "routes": [r.as_dict() for r in results],
        "frames": frames,
        "agreements": sum(r.agreements for r in results),
        "frames_per_s": round(frames / seconds, 1) if seconds else 0.0,
        "lengths": {"count": len(lengths), "min": min(lengths, default=0), "max": max(lengths, default=0)},
        "alloc": alloc_results,
        "udp": udp_result,
        "slub": slub_result,
        "model_leaks": model_leaks,
        "disagreements": [d.as_dict() for d in disagreements],
        "ok": not disagreements and not model_leaks,
    }
