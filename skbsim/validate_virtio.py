"""Live validation of the virtio_net model against this machine's own NIC.

``skbsim validate --driver virtio_net`` traces, in a tracefs instance of
its own filtered on the interface, every skb the driver builds
(net/napi_gro_receive_entry: len, data_len, truesize, nr_frags), every
NAPI poll (napi/napi_poll: how many frames each poll took, so the ring
refills of the model happen where the kernel's did) and what GRO hands up
(net/netif_receive_skb, .._entry and .._list_entry), while traffic
arrives.  Nothing is sent, injected or changed on the interface: the
device's features, MTU and ring size are read from sysfs and ethtool's
read-only ioctl.  ``--trace-file`` reads the same text from a file.

Then it replays the frames through the model.  The frames' lengths and
virtio-net headers (gso_type, gso_size, checksum state, as the trace shows
them) are the input; the buffers the driver built each skb from are what
the model must predict.  But the ring was filled before tracing began,
with buffer sizes from an EWMA of earlier packets and at a place in the
32 KiB frag block nobody saw.  So the replay first synchronises
(:func:`synchronise`): it follows many hypotheses about the ring at the
start of a window - every mergeable buffer size S the EWMA can give,
every place of the first buffer in a block cut into S-sized buffers, every
number (0..32) of free descriptors - through the frames, refills included,
and drops each hypothesis whose skbs disagree in truesize or nr_frags with
the trace.  The EWMA itself is followed as an interval, from the
mergeable_rx_buffer_size sysfs reading at the start (live) or from
nothing (a file), through every frame's length, and split where a refill's
buffer size depends on where in the interval it is.  When exactly one
hypothesis is left, it has seen a whole ring's worth of buffers and a
refill, the model's queue is loaded with that hypothesis's ring, frag
block and EWMA, and from then on the model alone predicts every skb, poll
by poll.  A hypothesis set that dies entirely (the ring before the window
held buffers of several sizes) restarts at the next poll; a refill whose
buffer size the remaining EWMA uncertainty cannot decide ends the
prediction and starts a new synchronisation.  Only skbs predicted by the
model count as agreements or disagreements.  After GRO each traced skb is
matched to what GRO handed up at its sk_buff address (the head of a
merged aggregate keeps its first segment's), and the len it went up with
(or that it went up inside another) is compared with the model's GRO.

Assumptions, all visible in the trace when they fail: one RX queue;
partial-checksum frames are TCP over IPv4 or IPv6 without options or
extension headers (their csum_start decides how many header bytes
virtio_net_hdr_to_skb() pulls); the 32 KiB frag block allocation never
falls back to a single page; the queue has received before (a nonzero
EWMA).
"""

from __future__ import annotations

import bisect
import re
import struct
import subprocess
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from skbsim.drivers import virtio_net as vn
from skbsim.errors import InputError
from skbsim.files import MAX_TRACE_BYTES, read_bounded_gunzip, shown
from skbsim.kernel import Kernel
from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.net.napi import NAPI_POLL_WEIGHT, napi_struct, net_device
from skbsim.net.skbuff import alloc_skb, kfree_skb, napi_alloc_skb, skb_tailroom
from skbsim.profile import Profile, load_profile

SKB_FIELDS = ("len", "data_len", "truesize", "nr_frags")
DRIVER_EVENT = "net/napi_gro_receive_entry"
POLL_EVENT = "napi/napi_poll"
#: What GRO hands up: netif_receive_skb_list_internal() (gro_normal_list()) fires none of the
#: verbose events on 6.18, only the plain net/netif_receive_skb in __netif_receive_skb_core().
STACK_EVENTS = ("net/netif_receive_skb_entry", "net/netif_receive_skb_list_entry", "net/netif_receive_skb")
TRACE_EVENTS = (DRIVER_EVENT, POLL_EVENT) + STACK_EVENTS
#: The longest live trace (validate --seconds).  The trace is read once, at the end, from a 32 MiB
#: ring per CPU: an hour of traffic would not fit in it (trace_complete false).
MAX_TRACE_SECONDS = 3600
#: The comment line a saved capture starts with: the device and the sysfs EWMA readings.
CAPTURE_HEADER = "# skbsim virtio_net capture:"
#: The largest EWMA value a frame can leave (64 KiB IP packet + Ethernet header).
EWMA_MAX = vn.IP_MAX_MTU + vn.ETH_HLEN

_POLL_BODY = re.compile(r"napi struct (\S+) for device (\S+) work (-?\d+) budget (\d+)")


# -- what the trace holds -------------------------------------------------------------------------


@dataclass
class Observation:
    """One skb at napi_gro_receive_entry, and the header the device must have written for it."""

    index: int
    len: int
    data_len: int
    truesize: int
    nr_frags: int
    protocol: int
    ip_summed: int
    gso_size: int
    gso_type: int
    napi_id: str
    timestamp: float
    skbaddr: str = ""
    #: The len GRO handed this skb up with (netif_receive_skb), None if it went up inside another.
    up_len: int | None = None

    @property
    def frame_len(self) -> int:
        """The frame's length on the wire: the trace's len is after eth_type_trans() pulled 14 bytes."""
        return self.len + vn.ETH_HLEN

    def fields(self) -> dict:
        return {name: getattr(self, name) for name in SKB_FIELDS}


@dataclass
class Poll:
    """The frames one RX NAPI poll took off the ring, and the budget it had."""

    frames: list[Observation]
    budget: int = NAPI_POLL_WEIGHT
    work: int | None = None
    timestamp: float = 0.0


@dataclass
class Capture:
    """A parsed trace: the RX polls in order, the skbs GRO handed up, and how the trace was made."""

    polls: list[Poll]
    stack: list[dict]
    trailing: int = 0
    polls_traced: bool = True
    work_mismatches: int = 0
    complete: bool = True
    meta: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(len(p.frames) for p in self.polls)


def _int(text: str | None, default: int = 0) -> int:
    if text is None:
        return default
    try:
        return int(text, 0)
    except ValueError:
        return default


def parse_capture(text: str) -> Capture:
    """The events of a ``trace`` file (as ``cat instances/NAME/trace`` gives it) grouped into polls.

    The RX poll is the NAPI instance whose napi_poll events report work
    (a virtio_net queue pair has a TX NAPI instance too, which reports
    none).  The frames before each RX napi_poll event are that poll's.
    Without napi_poll events every frame is taken as its own poll, and the
    result says so.  A ``# skbsim virtio_net capture: k=v ...`` line
    (written by ``--save-trace``) gives the device's options and EWMA.
    """
    from skbsim.live.tracefs import parse_trace_line, parse_trace_text

    meta: dict = {}
    for line in text.splitlines():
        if line.startswith(CAPTURE_HEADER):
            for item in line[len(CAPTURE_HEADER):].split():
                key, _, value = item.partition("=")
                meta[key] = value
            break
    # Completeness (entries written, lost events) from tracefs's own parser; the events line by line.
    complete = parse_trace_text("\n".join(line for line in text.splitlines() if line.startswith(("#", "CPU:")))).complete
    observations: list[Observation] = []
    sequence: list[tuple[str, object]] = []
    stack: list[dict] = []
    polls_seen = False
    rx_napi: set[str] = set()
    given: dict[str, Observation] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        record = parse_trace_line(line)
        if record is None:
            continue
        if record.event == "napi_gro_receive_entry":
            f = record.fields
            obs = Observation(len(observations), record.len, record.data_len, record.truesize, record.nr_frags,
                              _int(f.get("protocol")), _int(f.get("ip_summed")), _int(f.get("gso_size")),
                              _int(f.get("gso_type")), f.get("napi_id", ""), record.timestamp,
                              record.skbaddr or "")
            if None in (obs.len, obs.data_len, obs.truesize, obs.nr_frags):
                continue
            observations.append(obs)
            sequence.append(("frame", obs))
            given[obs.skbaddr] = obs
        elif record.event == "napi_poll":
            match = _POLL_BODY.search(line)
            if match is None:
                continue
            polls_seen = True
            napi, work, budget = match.group(1), int(match.group(3)), int(match.group(4))
            if work > 0:
                rx_napi.add(napi)
            sequence.append(("poll", (napi, work, budget, record.timestamp)))
        elif record.event in ("netif_receive_skb_entry", "netif_receive_skb_list_entry", "netif_receive_skb"):
            stack.append({"event": record.event, "len": record.len, "data_len": record.data_len,
                          "truesize": record.truesize, "nr_frags": record.nr_frags, "skbaddr": record.skbaddr,
                          "timestamp": record.timestamp})
            # GRO hands up the sk_buff a flow's first segment came in: the latest one at that address
            # (the NAPI skb cache reuses addresses).
            head = given.pop(record.skbaddr, None)
            if head is not None and head.up_len is None:
                head.up_len = record.len
    napi_ids = {obs.napi_id for obs in observations}
    if len(napi_ids) > 1:
        raise InputError(f"the trace holds {len(napi_ids)} RX queues (napi_id {', '.join(sorted(napi_ids))}); "
                         "virtio_net validation follows one")
    capture = Capture([], stack, polls_traced=polls_seen, complete=complete, meta=meta)
    if not polls_seen:
        capture.polls = [Poll([obs], timestamp=obs.timestamp) for obs in observations]
        return capture
    pending: list[Observation] = []
    for kind, item in sequence:
        if kind == "frame":
            pending.append(item)
            continue
        napi, work, budget, stamp = item
        if napi not in rx_napi:
            continue
        if work != len(pending):
            capture.work_mismatches += 1
        capture.polls.append(Poll(pending, budget, work, stamp))
        pending = []
    capture.trailing = len(pending)
    return capture


def header_for(obs: Observation) -> tuple[vn.virtio_net_hdr, bytes]:
    """The virtio-net header and leading frame bytes the device wrote for a traced skb.

    ip_summed CHECKSUM_PARTIAL (3) means NEEDS_CSUM, CHECKSUM_UNNECESSARY (1)
    DATA_VALID; a partial checksum starts at the TCP header after a plain
    IPv4 or IPv6 header (UDP for UDP GSO); the GSO type is mapped back from
    the skb's gso_type.
    """
    proto = obs.protocol
    ip_len = 20 if proto == vn.ETH_P_IP else 40 if proto == vn.ETH_P_IPV6 else 0
    udp = bool(obs.gso_type & (vn.SKB_GSO_UDP | vn.SKB_GSO_UDP_L4))
    hdr = vn.virtio_net_hdr()
    if obs.ip_summed == 3 and ip_len:
        hdr.flags = vn.VIRTIO_NET_HDR_F_NEEDS_CSUM
        hdr.csum_start = vn.ETH_HLEN + ip_len
        hdr.csum_offset = vn.UDP_CHECK_OFFSET if udp else vn.TCP_CHECK_OFFSET
    elif obs.ip_summed == 1:
        hdr.flags = vn.VIRTIO_NET_HDR_F_DATA_VALID
    gso = obs.gso_type
    if gso & vn.SKB_GSO_TCPV4:
        hdr.gso_type = vn.VIRTIO_NET_HDR_GSO_TCPV4
    elif gso & vn.SKB_GSO_TCPV6:
        hdr.gso_type = vn.VIRTIO_NET_HDR_GSO_TCPV6
    elif gso & vn.SKB_GSO_UDP_L4:
        hdr.gso_type = vn.VIRTIO_NET_HDR_GSO_UDP_L4
    elif gso & vn.SKB_GSO_UDP:
        hdr.gso_type = vn.VIRTIO_NET_HDR_GSO_UDP
    if hdr.gso_type and gso & vn.SKB_GSO_TCP_ECN:
        hdr.gso_type |= vn.VIRTIO_NET_HDR_GSO_ECN
    hdr.gso_size = obs.gso_size
    header = b"\x02" * 12 + struct.pack("!H", proto)
    l4 = vn.IPPROTO_UDP if udp else vn.IPPROTO_TCP
    if proto == vn.ETH_P_IP:
        header += bytes((0x45, 0, 0, 0, 0, 0, 0, 0, 64, l4)) + bytes(10)
    elif proto == vn.ETH_P_IPV6:
        header += bytes((0x60, 0, 0, 0, 0, 0, l4, 64)) + bytes(32)
    return hdr, header + bytes(20)


# -- the model's constants for the hypotheses ---------------------------------------------------


class LayoutConstants:
    """The numbers the hypotheses compute with, taken from the model's own queue and allocators."""

    __slots__ = ("ring", "hdr_len", "min_buf_len", "page_size", "l1", "frag_size", "premapped", "overflow_fix",
                 "shinfo_size", "build_overhead", "copy_truesize", "copy_tailroom", "fraglist_truesize",
                 "max_frags", "net_ip_align", "sizes", "threshold_budget")

    def __init__(self, profile: Profile, options: dict[str, str]):
        kernel = Kernel(profile)
        dev = net_device("eth0")
        napi = napi_struct(dev)
        rq = vn.virtnet_open_queue(kernel, dev, napi, dict(options))
        if rq.mode != "mergeable" or rq.xdp_headroom:
            vn.virtnet_close_queue(kernel, rq)
            raise InputError("virtio_net validation follows mergeable receive buffers (VIRTIO_NET_F_MRG_RXBUF) "
                             "without XDP; this device runs in " + rq.mode + " mode")
        self.ring = rq.vq.num
        self.hdr_len = rq.hdr_len
        self.min_buf_len = rq.min_buf_len
        self.page_size = profile.PAGE_SIZE
        self.l1 = profile.L1_CACHE_BYTES
        self.frag_size = rq.alloc_frag.size
        self.premapped = rq.premapped
        self.overflow_fix = rq.rules.overflow_fix
        self.shinfo_size = profile.SHINFO_SIZE
        self.build_overhead = profile.SKB_HEAD_STRUCT_SIZE
        self.max_frags = profile.MAX_SKB_FRAGS
        self.net_ip_align = profile.NET_IP_ALIGN
        with kernel.softirq(napi.cpu):
            skb = napi_alloc_skb(kernel, napi, vn.GOOD_COPY_LEN)
            self.copy_truesize = skb.truesize
            self.copy_tailroom = skb_tailroom(skb)
            kfree_skb(kernel, skb)
            nskb = alloc_skb(kernel, 0, GFP_ATOMIC)
            self.fraglist_truesize = nskb.truesize
            kfree_skb(kernel, nskb)
        vn.virtnet_close_queue(kernel, rq)
        kernel.assert_no_leaks()
        self.sizes = sorted({self.buf_len(e) for e in range(self.min_buf_len - 1, self.page_size + 1)})

    def buf_len(self, ewma: int) -> int:
        return vn.get_mergeable_buf_len(ewma, self.min_buf_len, self.hdr_len, 0, self.page_size, self.l1)

    def ewma_range(self, size: int, lo: int = 1, hi: int = EWMA_MAX) -> tuple[int, int] | None:
        """The EWMA values in [lo, hi] for which the next buffer is ``size`` bytes (None if none)."""
        values = range(lo, hi + 1)
        first = bisect.bisect_left(values, size, key=self.buf_len)
        last = bisect.bisect_right(values, size, key=self.buf_len) - 1
        if first > last:
            return None
        return values[first], values[last]


def skb_shape(c: LayoutConstants, total: int, bufs: Sequence[tuple]) -> tuple[int, int]:
    """(truesize, nr_frags) of the skb receive_mergeable() builds from ``bufs`` for ``total`` bytes.

    ``bufs`` are (block, start, size, ...) of the buffers the device filled,
    in order; ``total`` counts the virtio-net header.  The same decisions
    as page_to_skb() and virtnet_skb_append_frag(), on numbers only: the
    model's synchronisation tests thousands of hypotheses with it (tests
    check it against the driver).  The header pull cannot empty a frag
    here, so nr_frags does not depend on the frame's headers.
    """
    key0, start0, size0 = bufs[0][0], bufs[0][1], bufs[0][2]
    first = min(size0, total)
    length = first - c.hdr_len
    tailroom = size0 - c.hdr_len - length
    last = None
    if not c.net_ip_align and length > vn.GOOD_COPY_LEN and tailroom >= c.shinfo_size:
        truesize = size0 + c.build_overhead
        nr = 0
    else:
        truesize = c.copy_truesize
        copy = length if length <= c.copy_tailroom else vn.ETH_HLEN
        nr = 0
        if length - copy:
            truesize += size0
            nr = 1
            last = (key0, start0 + first)
    current = nr
    in_head = True
    for buf in bufs[1:]:
        key, start, size = buf[0], buf[1], buf[2]
        if current == c.max_frags:
            truesize += c.fraglist_truesize
            current = 0
            in_head = False
            last = None
        truesize += size
        if current and last == (key, start):
            last = (key, start + size)
            continue
        current += 1
        if in_head:
            nr += 1
        last = (key, start + size)
    return truesize, nr


# -- hypotheses about the ring ------------------------------------------------------------------------


class Hypothesis:
    """One possible state of the RX ring, followed through the frames.

    ``ring`` holds the posted buffers in the order the device will use
    them, each (block, start, size, block after, offset after): the frag
    block and offset the carving left behind it.

    A window starts with a ring of ``pre_size`` buffers whose number is
    known only as a range: ring - free0 for free0 in ``free_lo``..``free_hi``
    (``ring`` holds the buffers of free0 = 0, ``consumed`` counts those
    taken).  The window's first refill appends free0 + consumed buffers
    after the last one that exists.  If they have the pre-window size, the
    carving simply goes on and free0 no longer matters; otherwise the refill
    waits in ``switch`` (its size and the consumed count) and later refills
    in ``pending`` (count, size), until a frame reaches the first place the
    new buffers may start: there the hypothesis forks (see :func:`_consume`).
    ``lo``..``hi`` bound the EWMA.
    """

    __slots__ = ("ring", "frag_key", "frag_off", "next_key", "lo", "hi", "free_lo", "free_hi", "consumed",
                 "pre_size", "switch", "pending", "refilled_at", "last_after", "buffers_seen", "refills", "label")

    def __init__(self) -> None:
        self.ring: deque = deque()
        self.frag_key = 0
        self.frag_off = 0
        self.next_key = 1
        self.lo = 1
        self.hi = EWMA_MAX
        self.free_lo = 0
        self.free_hi = 0
        self.consumed = 0
        self.pre_size: int | None = None
        self.switch: tuple[int, int] | None = None
        self.pending: tuple[tuple[int, int], ...] = ()
        # ``consumed`` at the last refill, while the first one waits (the ring was full then).
        self.refilled_at = 0
        # (block, offset) the carving had reached after the last buffer consumed.
        self.last_after: tuple[int, int] | None = None
        self.buffers_seen = 0
        self.refills = 0
        self.label = ""

    def copy(self) -> Hypothesis:
        other = Hypothesis()
        for name in self.__slots__:
            setattr(other, name, getattr(self, name))
        other.ring = deque(self.ring)
        return other

    def carve(self, c: LayoutConstants, size: int) -> None:
        """add_recvbuf_mergeable() of one buffer of ``size`` (skb_page_frag_refill() and the carve)."""
        key, off = self.frag_key, self.frag_off
        if off + size > c.frag_size:
            key = self.next_key
            self.next_key += 1
            off = 0
        start, length, off = vn.mergeable_buf_carve(off, c.frag_size, size, 0, 0, c.premapped, c.overflow_fix, False)
        self.frag_key, self.frag_off = key, off
        self.ring.append((key, start, length, key, off))

    @property
    def settled(self) -> bool:
        """The ring is known buffer by buffer (the window's assumption is behind it)."""
        return self.pre_size is None

    def signature(self) -> tuple:
        """Everything that decides this hypothesis's future, with block names made relative."""
        names: dict[int, int] = {}
        ring = tuple((names.setdefault(b[0], len(names)), b[1], b[2]) for b in self.ring)
        frag = (names.setdefault(self.frag_key, len(names)), self.frag_off)
        pre = None
        if self.pre_size is not None:
            pre = (self.pre_size, self.free_lo, self.free_hi, self.consumed, self.switch, self.pending)
        return ring, frag, pre


def initial_hypotheses(c: LayoutConstants, lo: int, hi: int, budget: int = NAPI_POLL_WEIGHT) -> list[Hypothesis]:
    """Every uniform ring the window may start with: each buffer size, each place in its block.

    The ring holds ``ring - f`` buffers of one size S, carved one after
    the other from a block cut into S-sized buffers from its start, the
    first at any of the block's places; f, the free descriptors, is
    0..min(budget, ring) / 2 (more would have been refilled).
    """
    out = []
    threshold = min(budget, c.ring) // 2
    for size in c.sizes:
        template = Hypothesis()
        places = 0
        while True:
            template.carve(c, size)
            if template.frag_key != 0:
                break
            places += 1
        for place in range(places):
            h = Hypothesis()
            h.lo, h.hi = lo, hi
            h.free_lo, h.free_hi = 0, threshold
            h.pre_size = size
            h.label = f"S={size} place={place}"
            for _ in range(place):
                h.carve(c, size)
            h.ring.clear()
            for _ in range(c.ring):
                h.carve(c, size)
            out.append(h)
    return out


def _switch_at(c: LayoutConstants, h: Hypothesis, position: int) -> Hypothesis:
    """A copy of a hypothesis with a waiting first refill in which the new buffers start at ring
    position ``position`` (counted in buffers from the window's start): free0 = ring - position."""
    child = h.copy()
    size, consumed_then = child.switch
    free0 = c.ring - position
    while len(child.ring) > position - child.consumed:
        child.ring.pop()
    after = child.ring[-1][3:5] if child.ring else child.last_after
    if after is not None:
        child.frag_key, child.frag_off = after
    for _ in range(free0 + consumed_then):
        child.carve(c, size)
    for count, later in child.pending:
        for _ in range(count):
            child.carve(c, later)
    child.pre_size = None
    child.switch = None
    child.pending = ()
    child.free_lo = child.free_hi = 0
    return child


def _consume(c: LayoutConstants, h: Hypothesis, obs: Observation) -> list[Hypothesis]:
    """The frame takes its buffers off the ring: the hypotheses left if its skb is the traced one.

    Before the window's first refill the ring may be shorter than
    ``ring``: taking a buffer rules out the free counts that would not
    have left it.  With a first refill waiting, the frame may reach the
    place its new buffers start: each possible place within the buffers
    the frame takes becomes a hypothesis of its own.
    """
    total = obs.frame_len + c.hdr_len
    ring = h.ring
    taken = 0
    room = 0
    while room < total:
        if taken >= len(ring):
            break
        room += ring[taken][2]
        taken += 1
    out: list[Hypothesis] = []
    if h.switch is not None:
        # The new buffers may start at any place from ring - free_hi on.
        first = max(h.consumed, c.ring - h.free_hi)
        last = min(h.consumed + taken - (1 if room >= total else 0), c.ring - h.free_lo)
        for position in range(first, last + 1):
            child = _switch_at(c, h, position)
            out.extend(_consume(c, child, obs))
    if room < total:
        return out
    if h.pre_size is not None:
        limit = c.ring - (h.consumed + taken)
        if limit < h.free_hi:
            h.free_hi = limit
            if h.free_hi < h.free_lo:
                return out
    bufs = [ring[i] for i in range(taken)]
    truesize, nr_frags = skb_shape(c, total, bufs)
    if truesize != obs.truesize or nr_frags != obs.nr_frags:
        return out
    last_buf = bufs[-1]
    h.last_after = (last_buf[3], last_buf[4])
    for _ in range(taken):
        ring.popleft()
    h.consumed += taken
    h.buffers_seen += taken
    h.lo = vn.ewma_pkt_len_add(h.lo, obs.frame_len)
    h.hi = vn.ewma_pkt_len_add(h.hi, obs.frame_len)
    out.append(h)
    return out


def _sizes_in(c: LayoutConstants, lo: int, hi: int) -> list[tuple[int, int, int]]:
    """(buffer size, EWMA lo, EWMA hi) for each buffer size the EWMA interval can give."""
    first, last = c.buf_len(lo), c.buf_len(hi)
    if first == last:
        return [(first, lo, hi)]
    out = []
    for size in c.sizes:
        if first <= size <= last:
            found = c.ewma_range(size, lo, hi)
            if found:
                out.append((size, found[0], found[1]))
    return out


def _end_of_poll(c: LayoutConstants, h: Hypothesis, budget: int) -> list[Hypothesis]:
    """virtnet_receive()'s refill check after a poll, on a hypothesis: what it may lead to.

    More than min(budget, ring) / 2 free descriptors: every free one gets a
    buffer of get_mergeable_buf_len() bytes, one hypothesis per size the
    EWMA interval allows.  Before the window's first refill the free count
    is a range; it splits where the check's answer changes.
    """
    threshold = min(budget, c.ring) // 2
    if h.switch is not None or h.pre_size is None:
        # After the window's first refill the free count is known: with that refill still waiting,
        # what was taken since the last refill (the ring was full then).
        free = h.consumed - h.refilled_at if h.switch is not None else c.ring - len(h.ring)
        if free <= threshold:
            return [h]
        out = []
        for size, lo, hi in _sizes_in(c, h.lo, h.hi):
            child = h.copy()
            child.lo, child.hi = lo, hi
            child.refills += 1
            if child.switch is not None:
                child.pending = child.pending + ((free, size),)
                child.refilled_at = child.consumed
            else:
                for _ in range(free):
                    child.carve(c, size)
            out.append(child)
        return out
    if h.free_hi + h.consumed <= threshold:
        return [h]
    out = []
    if h.free_lo + h.consumed <= threshold:
        waiting = h.copy()
        waiting.free_hi = threshold - h.consumed
        out.append(waiting)
        h = h.copy()
        h.free_lo = threshold + 1 - h.consumed
    for size, lo, hi in _sizes_in(c, h.lo, h.hi):
        child = h.copy()
        child.lo, child.hi = lo, hi
        child.refills += 1
        if size == h.pre_size:
            # The new buffers continue the carving of the assumed ones: the free count does not matter.
            for _ in range(child.consumed):
                child.carve(c, size)
            child.pre_size = None
            child.free_lo = child.free_hi = 0
        else:
            child.switch = (size, child.consumed)
            child.refilled_at = child.consumed
        out.append(child)
    return out


def _merge(hypotheses: list[Hypothesis]) -> list[Hypothesis]:
    """Hypotheses with the same future are one; their EWMA intervals join.

    Comparing whole rings is costly, so only hypotheses that agree on the
    ring's length, its first buffer and the frag state are compared in full.
    """
    groups: dict[tuple, list[Hypothesis]] = {}
    for h in hypotheses:
        first = h.ring[0][1:3] if h.ring else None
        groups.setdefault((len(h.ring), first, h.frag_off, h.pre_size, h.free_lo, h.free_hi, h.switch), []).append(h)
    out = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        by_signature: dict[tuple, Hypothesis] = {}
        for h in group:
            key = h.signature()
            other = by_signature.get(key)
            if other is None:
                by_signature[key] = h
                out.append(h)
            else:
                other.lo = min(other.lo, h.lo)
                other.hi = max(other.hi, h.hi)
                other.buffers_seen = min(other.buffers_seen, h.buffers_seen)
    return out


#: A window may start only where the EWMA leaves at most this many buffer sizes open.
WINDOW_MAX_SIZES = 1
#: Hypotheses beyond this many mean the window cannot be decided soon: start a later one.
MAX_HYPOTHESES = 5000


def ewma_bounds(polls: Sequence[Poll], lo: int, hi: int) -> list[tuple[int, int]]:
    """The EWMA interval before each poll (and after the last), from the frames' lengths alone."""
    out = []
    for poll in polls:
        out.append((lo, hi))
        for obs in poll.frames:
            lo = vn.ewma_pkt_len_add(lo, obs.frame_len)
            hi = vn.ewma_pkt_len_add(hi, obs.frame_len)
    out.append((lo, hi))
    return out


@dataclass
class SyncResult:
    """Where the model can take over: after poll ``poll`` with this ring state."""

    poll: int
    hypothesis: Hypothesis
    started: int
    windows: int


def synchronise(c: LayoutConstants, polls: Sequence[Poll], start: int,
                bounds: Sequence[tuple[int, int]]) -> SyncResult | None:
    """Find the ring state from poll ``start`` on (see the module docstring); None if the trace ends first.

    A window starts at a poll where the EWMA interval (``bounds``, from
    :func:`ewma_bounds`) leaves few buffer sizes open.  Its hypotheses are
    pruned frame by frame; the window succeeds when one is left that has
    seen a ring's worth of buffers and a refill, and fails when none is
    left, or too many; then the next poll starts a new window.
    """
    windows = 0
    window = start
    while window < len(polls):
        lo, hi = bounds[window]
        if c.sizes.index(c.buf_len(hi)) - c.sizes.index(c.buf_len(lo)) >= WINDOW_MAX_SIZES:
            window += 1
            continue
        windows += 1
        hypotheses = initial_hypotheses(c, lo, hi, polls[window].budget)
        index = window
        while index < len(polls) and hypotheses:
            poll = polls[index]
            if poll.work is not None and poll.work != len(poll.frames):
                hypotheses = []  # the driver dropped frames the trace does not show
                break
            for obs in poll.frames:
                survivors: list[Hypothesis] = []
                for h in hypotheses:
                    survivors.extend(_consume(c, h, obs))
                hypotheses = survivors
                if not hypotheses:
                    break
            if not hypotheses:
                break
            following: list[Hypothesis] = []
            for h in hypotheses:
                following.extend(_end_of_poll(c, h, poll.budget))
            hypotheses = _merge(following)
            if len(hypotheses) > MAX_HYPOTHESES:
                hypotheses = []
                break
            index += 1
            if len(hypotheses) == 1:
                h = hypotheses[0]
                if h.settled and h.refills and h.buffers_seen >= c.ring:
                    return SyncResult(index, h, window, windows)
        window = index + 1
    return None


# -- the model's replay ------------------------------------------------------------------------------


@dataclass
class Disagreement:
    poll: int
    frame: int
    frame_len: int
    field: str
    live: object
    model: object

    def as_dict(self) -> dict:
        return {"poll": self.poll, "frame": self.frame, "frame_len": self.frame_len, "field": self.field,
                "live": self.live, "model": self.model}


@dataclass
class Segment:
    """The polls one synchronisation let the model predict, and why the prediction stopped."""

    synced_from: int
    first_poll: int
    end_poll: int = 0
    skbs: int = 0
    agreements: int = 0
    field_agreements: Counter = field(default_factory=Counter)
    disagreements: list[Disagreement] = field(default_factory=list)
    ended: str = "end of trace"
    hypothesis: str = ""
    leak: str | None = None

    def as_dict(self) -> dict:
        return {"synchronised_from_poll": self.synced_from, "first_poll": self.first_poll,
                "end_poll": self.end_poll, "skbs": self.skbs, "agreements": self.agreements,
                "ended": self.ended, "start_state": self.hypothesis, "model_leak": self.leak}


def replay(profile: Profile, options: dict[str, str], c: LayoutConstants, polls: Sequence[Poll],
           sync: SyncResult, after_gro: bool = False) -> Segment:
    """Run the model from the synchronised state, poll by poll, and compare every skb it builds and,
    with ``after_gro``, the len GRO handed each up with (or that it went up inside another).

    The model's EWMA starts at the low end of the hypothesis's interval; the
    high end is followed beside it.  A refill where the two give different
    buffer sizes ends the segment (the EWMA is not known well enough to
    predict it), as does a poll whose frames the trace does not all show.
    """
    h = sync.hypothesis
    segment = Segment(sync.started, sync.poll, sync.poll, hypothesis=f"{h.label}, EWMA {h.lo}..{h.hi}")
    kernel = Kernel(profile)
    dev = net_device("eth0")
    napi = napi_struct(dev)
    rq = vn.virtnet_open_queue(kernel, dev, napi, dict(options))
    vn.virtnet_rq_load_mergeable(kernel, rq, [b[:3] for b in h.ring], (h.frag_key, h.frag_off), h.lo)
    entered: list[tuple] = []
    heads: dict[int, tuple] = {}

    def gro_entry(skb) -> None:
        # What napi_gro_receive_entry reports, and which entry an skb GRO hands up started as.
        heads[id(skb)] = (skb, len(entered))
        entered.append((skb.len, skb.data_len, skb.truesize, skb.nr_frags))

    rq.gro_entry = gro_entry
    high = h.hi
    index = sync.poll
    while index < len(polls):
        poll = polls[index]
        if poll.work is not None and poll.work != len(poll.frames):
            segment.ended = f"poll {index}: the driver took {poll.work} frames, the trace shows {len(poll.frames)}"
            break
        refused = None
        for obs in poll.frames:
            hdr, header = header_for(obs)
            if not vn.virtnet_device_rx(kernel, rq, obs.frame_len, hdr, header):
                refused = obs
                break
        if refused is not None:
            segment.disagreements.append(Disagreement(index, refused.index, refused.frame_len, "ring", "received",
                                                      "no room in the model's ring"))
            segment.ended = f"poll {index}: the model's ring had no room for a frame"
            break
        threshold = min(poll.budget, rq.vq.num) // 2
        refill = rq.vq.num_free + len(rq.vq.used) > threshold
        delivered: list = []
        entered.clear()
        heads.clear()
        vn.DRIVER.poll(kernel, rq, poll.budget, delivered.append)
        up: list[int | None] = [None] * len(entered)
        for skb in delivered:
            head = heads.get(id(skb))
            if head is not None and head[0] is skb:
                up[head[1]] = skb.len
        for i, obs in enumerate(poll.frames):
            if i >= len(entered):
                segment.disagreements.append(Disagreement(index, obs.index, obs.frame_len, "skb", "built", "none"))
                continue
            _compare(segment, index, obs, entered[i], up[i] if after_gro else _NOT_COMPARED)
        with kernel.softirq(napi.cpu):
            for skb in delivered:
                kfree_skb(kernel, skb)
        for obs in poll.frames:
            high = vn.ewma_pkt_len_add(high, obs.frame_len)
        index += 1
        if refill and c.buf_len(rq.mrg_avg_pkt_len) != c.buf_len(high):
            segment.ended = (f"poll {index - 1}: the refill's buffer size depends on the EWMA "
                             f"({rq.mrg_avg_pkt_len}..{high} gives {c.buf_len(rq.mrg_avg_pkt_len)} or {c.buf_len(high)})")
            break
    segment.end_poll = index
    vn.virtnet_close_queue(kernel, rq)
    report = kernel.leak_check()
    segment.leak = None if report.clean else report.summary()
    return segment


_NOT_COMPARED = object()


def _compare(segment: Segment, poll: int, obs: Observation, model: tuple, up_len) -> None:
    """One traced skb against the model's: the four fields at GRO's entry, and what GRO handed up."""
    segment.skbs += 1
    pairs = [(name, getattr(obs, name), value) for name, value in zip(SKB_FIELDS, model)]
    if up_len is not _NOT_COMPARED:
        pairs.append(("after_gro_len", obs.up_len, up_len))
    wrong = False
    for name, live, value in pairs:
        if live == value:
            segment.field_agreements[name] += 1
        else:
            wrong = True
            segment.disagreements.append(Disagreement(poll, obs.index, obs.frame_len, name, live, value))
    if not wrong:
        segment.agreements += 1


# -- the whole validation ------------------------------------------------------------------------------


def validate_capture(capture: Capture, profile: Profile, options: dict[str, str],
                     ewma_start: tuple[int, int] = (1, EWMA_MAX)) -> dict:
    """Synchronise and replay a parsed capture; a plain dict (``ok`` False on any disagreement)."""
    c = LayoutConstants(profile, options)
    polls = capture.polls
    bounds = ewma_bounds(polls, *ewma_start)
    segments: list[Segment] = []
    started = time.perf_counter()
    index = 0
    while index < len(polls):
        sync = synchronise(c, polls, index, bounds)
        if sync is None:
            break
        segment = replay(profile, options, c, polls, sync, after_gro=bool(capture.stack))
        segments.append(segment)
        index = max(segment.end_poll, sync.poll + 1)
    seconds = time.perf_counter() - started
    predicted = sum(s.skbs for s in segments)
    fields = Counter()
    for s in segments:
        fields.update(s.field_agreements)
    disagreements = [d for s in segments for d in s.disagreements]
    leaks = [s.leak for s in segments if s.leak]
    result = {
        "driver": "virtio_net",
        "kernel": profile.name,
        "release": profile.release,
        "options": dict(sorted(options.items())),
        "frames_traced": capture.frames,
        "polls_traced": capture.polls_traced,
        "polls": len(polls),
        "trace_complete": capture.complete,
        "frames_after_last_poll": capture.trailing,
        "skbs_predicted": predicted,
        "skbs_agreeing": sum(s.agreements for s in segments),
        "skbs_used_to_synchronise": capture.frames - predicted - capture.trailing,
        "field_agreement": {name: fields[name] for name in SKB_FIELDS},
        "segments": [s.as_dict() for s in segments],
        "after_gro": {"events": len(capture.stack), "compared": bool(capture.stack),
                      "agreements": fields["after_gro_len"],
                      "handed_up_live": sum(1 for p in polls for o in p.frames if o.up_len is not None)},
        "disagreements": [d.as_dict() for d in disagreements],
        "model_leaks": leaks,
        "seconds": round(seconds, 2),
    }
    result["ok"] = predicted > 0 and not disagreements and not leaks and capture.complete
    return result


def validate_trace_file(path: str, kernel: str | Profile = "host", options: dict[str, str] | None = None) -> dict:
    """``--trace-file``: the same from a saved trace (plain or gzip); driver options from ``options``,
    else from the file's ``# skbsim virtio_net capture:`` line, else the driver's defaults."""
    text = read_bounded_gunzip(path, MAX_TRACE_BYTES, "--trace-file ").decode("utf-8", "replace")
    capture = parse_capture(text)
    if not capture.polls:
        raise InputError(f"--trace-file {shown(path)}: no napi_gro_receive_entry events")
    profile = load_profile(kernel) if isinstance(kernel, str) else kernel
    chosen = {k: v for k, v in capture.meta.items() if k in {o.name for o in vn.OPTIONS}}
    chosen.update(options or {})
    ewma = _ewma_start_from_meta(capture.meta, profile, chosen)
    result = validate_capture(capture, profile, chosen, ewma)
    result["source"] = path
    return result


def _ewma_start_from_meta(meta: dict, profile: Profile, options: dict[str, str]) -> tuple[int, int]:
    """The EWMA interval at the trace's start from the sysfs buffer sizes a capture header names."""
    sizes = [int(v) for v in meta.get("mergeable_rx_buffer_size", "").split(",") if v.isdigit()]
    if not sizes:
        return 1, EWMA_MAX
    c = LayoutConstants(profile, options)
    ranges = [c.ewma_range(size) for size in sizes]
    if any(r is None for r in ranges):
        return 1, EWMA_MAX
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


# -- live capture ------------------------------------------------------------------------------------


def requirements() -> list[str]:
    """What this machine lacks for live validation (empty when nothing)."""
    import os

    from skbsim.live.tracefs import TRACEFS_ROOT

    missing = []
    if os.geteuid() != 0:
        missing.append("root (uid 0)")
    if not os.path.isdir(TRACEFS_ROOT):
        missing.append(f"tracefs at {TRACEFS_ROOT}")
    return missing


def capture_live(iface: str, seconds: float, during: Callable[[], None] | None = None,
                 progress: Callable[[str], None] | None = None) -> tuple[str, dict]:
    """Trace the interface for ``seconds`` (or until ``during`` returns, if later); the trace text and
    the device as read.  Only reads: the tracefs instance is our own and removed on every way out."""
    from skbsim.live.tracefs import TraceInstance
    from skbsim.live.virtio import driver_options, mergeable_rx_buffer_size, read_virtio_device

    device = read_virtio_device(iface)
    if device.rx_queues != 1:
        raise InputError(f"{iface} has {device.rx_queues} RX queues; virtio_net validation follows one")
    options = driver_options(device)
    sizes = [mergeable_rx_buffer_size(iface)]
    filters = {POLL_EVENT: f'dev_name == "{iface}"'}
    with TraceInstance(TRACE_EVENTS, device=iface, buffer_size_kb=32768, filters=filters) as trace:
        sizes.append(mergeable_rx_buffer_size(iface))
        if progress:
            progress(f"tracing {iface} for {seconds:g} s")
        worker = None
        if during is not None:
            worker = threading.Thread(target=during, daemon=True)
            worker.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline or (worker is not None and worker.is_alive()):
            time.sleep(0.1)
        time.sleep(0.2)
        with open(f"{trace.path}/trace") as handle:
            text = handle.read()
    known = ",".join(str(s) for s in sizes if s)
    header = " ".join([f"{CAPTURE_HEADER} iface={iface}", f"mergeable_rx_buffer_size={known}"]
                      + [f"{k}={v}" for k, v in sorted(options.items())])
    return header + "\n" + text, {"device": device.as_dict(), "options": options}


def validate_live(iface: str = "eth0", seconds: float = 10.0, kernel: str | Profile = "host",
                  during: Callable[[], None] | None = None, save: str | None = None,
                  progress: Callable[[str], None] | None = None) -> dict:
    """Trace the live interface, then synchronise and replay (see the module docstring)."""
    missing = requirements()
    if missing:
        raise InputError("live validation needs " + "; ".join(missing))
    if not 0 < seconds <= MAX_TRACE_SECONDS:
        raise InputError(f"--seconds must be more than 0 and at most {MAX_TRACE_SECONDS}, got {seconds}")
    profile = load_profile(kernel) if isinstance(kernel, str) else kernel
    text, info = capture_live(iface, seconds, during, progress)
    if save:
        with open(save, "w") as handle:
            handle.write(text)
    capture = parse_capture(text)
    if not capture.polls:
        raise InputError(f"no frames arrived on {iface} in {seconds:g} s (make some traffic while it traces)")
    ewma = _ewma_start_from_meta(capture.meta, profile, info["options"])
    result = validate_capture(capture, profile, info["options"], ewma)
    result["device"] = info["device"]
    result["source"] = f"live {iface}, {seconds:g} s"
    return result


def pip_download(package: str, directory: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Traffic for the tests: one ``pip download`` of a package from the package index (PyPI), no cache."""
    import sys

    return subprocess.run([sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "--no-deps",
                           "--progress-bar", "off", "-d", directory, package],
                          capture_output=True, text=True, timeout=timeout)
