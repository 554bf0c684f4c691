"""Synthetic traffic: length models, flows and arrival processes.

Randomness: every random stream is its own ``random.Random`` seeded with a
string derived from the user's seed and the stream's purpose (lengths,
flow choice, arrivals), never the global RNG. Each stream draws exactly one
variate per frame, so the frames of a shorter run are a prefix of a longer
run with the same seed, and batching does not change the stream.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from fractions import Fraction
from itertools import cycle, islice, repeat
from typing import Callable, Iterator, Sequence

from skbsim.errors import InputError
from skbsim.traffic.frame import (IPPROTO_TCP, IPPROTO_UDP, SYNTHETIC_IPV4_TCP_MIN, SYNTHETIC_IPV4_UDP_MIN,
                                  TCPOLEN_TSTAMP_ALIGNED, Frame, SyntheticHeaderTemplate, SyntheticTcpTemplate)
from skbsim.traffic.rss import RssConfig
from skbsim.traffic.source import FrameSource

#: Lengths, flow choices and arrival times are drawn in lists of this many
#: (one list of each alive at a time); frames are then yielded one by one so
#: each dies as soon as the consumer drops it (cheaper for the cyclic GC).
BATCH = 1020  # a multiple of the 12-frame IMIX cycle

#: Simple IMIX frame sizes on the wire *including* the 4-byte FCS, and their
#: 7:4:1 packet ratio (see docs/traffic.md for the provenance).
SIMPLE_IMIX_WITH_FCS = ((64, 7), (594, 4), (1518, 1))
ETH_FCS_LEN = 4
#: The same sizes as this model counts them (without FCS): 60/590/1514.
SIMPLE_IMIX = tuple((size - ETH_FCS_LEN, weight) for size, weight in SIMPLE_IMIX_WITH_FCS)

Sampler = Callable[[int], list]


def smooth_weighted_round_robin(weighted: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """One period of a smooth weighted round-robin over ``(value, weight)``.

    Each step every entry gains its weight, the entry with the largest
    credit (first one on a tie) is emitted and pays back the total weight.
    Over one period of ``sum(weights)`` steps each value appears exactly
    ``weight`` times and the occurrences are spread out rather than bunched.
    """
    total = sum(weight for _, weight in weighted)
    credit = [0] * len(weighted)
    period = []
    for _ in range(total):
        for i, (_, weight) in enumerate(weighted):
            credit[i] += weight
        chosen = max(range(len(weighted)), key=lambda i: (credit[i], -i))
        credit[chosen] -= total
        period.append(weighted[chosen][0])
    return tuple(period)


class LengthModel:
    """How frame lengths are drawn. Immutable; ``sampler(seed)`` starts a stream."""

    __slots__ = ()

    def sampler(self, seed: int) -> Sampler:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def distinct(self) -> int:
        """How many different lengths the model can produce."""
        raise NotImplementedError


def _lengths_rng(seed: int) -> random.Random:
    return random.Random(f"skbsim.traffic/{seed}/lengths")


class FixedLength(LengthModel):
    __slots__ = ("length",)

    def __init__(self, length: int):
        self.length = length

    def sampler(self, seed):
        length = self.length
        return lambda k: [length] * k

    def describe(self):
        return f"fixed:{self.length}"

    def distinct(self):
        return 1


class UniformLength(LengthModel):
    """Lengths uniform over ``low..high`` inclusive."""

    __slots__ = ("low", "high")

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def sampler(self, seed):
        choices = _lengths_rng(seed).choices
        population = range(self.low, self.high + 1)
        return lambda k: choices(population, k=k)

    def describe(self):
        return f"uniform:{self.low}-{self.high}"

    def distinct(self):
        return self.high - self.low + 1


class CycleLength(LengthModel):
    """A fixed sequence of lengths repeated forever (seed-independent)."""

    __slots__ = ("period", "name")

    def __init__(self, period: Sequence[int], name: str):
        self.period = tuple(period)
        self.name = name

    def sampler(self, seed):
        stream = cycle(self.period)
        return lambda k: list(islice(stream, k))

    def describe(self):
        return self.name

    def distinct(self):
        return len(set(self.period))


class WeightedLength(LengthModel):
    """Independent draws from a discrete distribution ``(length, weight)``."""

    __slots__ = ("lengths", "cum_weights", "name")

    def __init__(self, weighted: Sequence[tuple[int, float]], name: str):
        self.lengths = tuple(length for length, _ in weighted)
        total = 0.0
        cumulative = []
        for _, weight in weighted:
            total += weight
            cumulative.append(total)
        self.cum_weights = tuple(cumulative)
        self.name = name

    def sampler(self, seed):
        choices = _lengths_rng(seed).choices
        lengths, cum_weights = self.lengths, self.cum_weights
        return lambda k: choices(lengths, cum_weights=cum_weights, k=k)

    def describe(self):
        return self.name

    def distinct(self):
        return len(set(self.lengths))


def imix_deterministic() -> CycleLength:
    return CycleLength(smooth_weighted_round_robin(SIMPLE_IMIX),
                       "imix (simple IMIX 7:4:1 of 60/590/1514 B, repeating 12-frame cycle)")


def imix_random() -> WeightedLength:
    return WeightedLength(SIMPLE_IMIX,
                          "imix:random (simple IMIX 7:4:1 of 60/590/1514 B, drawn independently)")


# --- arrival processes -------------------------------------------------------

ARRIVALS = ("constant", "poisson")


def arrival_sampler(rate: float | None, arrival: str, seed: int) -> Sampler:
    """Arrival times in ns: first frame at 0, then per ``arrival``.

    * no rate: every frame at time 0 (the engine sets the pace);
    * ``constant``: frame ``i`` at ``floor(i * 1e9 / rate)`` computed in exact
      rational arithmetic, so there is no drift over long runs;
    * ``poisson``: exponential inter-arrival gaps of mean ``1e9 / rate`` ns,
      accumulated in floating point and floored to whole ns.
    """
    if rate is None:
        return lambda k: [0] * k
    if arrival == "constant":
        period = Fraction(10**9) / Fraction(rate)
        numerator, denominator = period.numerator, period.denominator
        position = 0

        def constant(k):
            nonlocal position
            start = position
            position += k
            return [(i * numerator) // denominator for i in range(start, start + k)]
        return constant
    if arrival == "poisson":
        uniform = random.Random(f"skbsim.traffic/{seed}/arrivals").random
        mean_ns = 1e9 / rate
        log = math.log
        clock = 0.0

        def poisson(k):
            nonlocal clock
            now = clock
            times = []
            append = times.append
            for _ in range(k):
                append(int(now))
                now -= log(1.0 - uniform()) * mean_ns
            clock = now
            return times
        return poisson
    raise InputError(f"unknown arrival process {arrival!r}: expected constant or poisson")


def describe_arrivals(rate: float | None, arrival: str) -> str:
    if rate is None:
        return "no arrival pacing (all frames at t=0)"
    return f"{arrival} arrivals at {rate:g} frames/s"


# --- flows -------------------------------------------------------------------

#: Synthetic sources sit in 198.18.0.0/15, the block RFC 2544 reserves for
#: benchmarking; the receiver is 192.0.2.1 (TEST-NET-1, RFC 5737).
_FLOW_SRC_BASE = 0xC6120000  # 198.18.0.0
_FLOW_SRC_SPAN = 1 << 17
FLOW_DST_ADDR = bytes((192, 0, 2, 1))


def synthetic_flow(seed: int, index: int) -> tuple[bytes, bytes, int, int, int]:
    """The ``index``-th synthetic UDP/IPv4 5-tuple for ``seed``.

    Source address ``198.18.0.0 + index`` (distinct for up to 131072 flows),
    ports 1024..65535 from a keyed hash of (seed, index), so flows can be
    produced lazily and in any order.
    """
    digest = hashlib.blake2b(f"{seed}/{index}".encode(), digest_size=4,
                             person=b"skbsim-flow").digest()
    src_port = 1024 + ((digest[0] << 8) | digest[1]) % (65536 - 1024)
    dst_port = 1024 + ((digest[2] << 8) | digest[3]) % (65536 - 1024)
    src = struct.pack(">I", _FLOW_SRC_BASE + index % _FLOW_SRC_SPAN)
    return (src, FLOW_DST_ADDR, src_port, dst_port, IPPROTO_UDP)


#: Headers are cached per (flow, length) only when there are at most this
#: many combinations; beyond that a cache would mostly miss, so each header
#: is built afresh (about 0.4 us).
_HEADER_CACHE_LIMIT = 1 << 16


class SyntheticSource(FrameSource):
    """``count`` frames from a length model, spread over ``flows`` flows.

    Each frame picks its flow uniformly at random (seeded) among ``flows``
    synthetic UDP/IPv4 flows; with one flow there is no draw. Frames shorter
    than 42 bytes cannot hold Ethernet+IPv4+UDP, so they are non-IP frames
    (EtherType 0x88B5): flow ``None``, hash 0, queue ``table[0]``.
    """

    __slots__ = ("lengths", "count", "seed", "flows", "rate", "arrival",
                 "rss", "headers")

    def __init__(self, lengths: LengthModel, *, count: int, seed: int, flows: int,
                 rate: float | None, arrival: str, rss: RssConfig, headers: bool = True):
        self.lengths = lengths
        self.count = count
        self.seed = seed
        self.flows = flows
        self.rate = rate
        self.arrival = arrival
        self.rss = rss
        self.headers = headers

    #: What the flows carry, for describe().
    FLOW_PROTOCOL = "UDP/IPv4"

    def describe(self) -> str:
        return (f"{self._describe_frames()}; {self.count} frames; "
                f"{self.flows} {self.FLOW_PROTOCOL} flow{'s' if self.flows != 1 else ''}; "
                f"{describe_arrivals(self.rate, self.arrival)}; seed {self.seed}; "
                f"{self.rss.describe()}")

    def _describe_frames(self) -> str:
        return self.lengths.describe()

    def length_batches(self, n: int) -> Iterator[list[int]]:
        take_lengths = self.lengths.sampler(self.seed)
        remaining = self.count
        while remaining > 0:
            k = min(n, remaining)
            remaining -= k
            yield take_lengths(k)

    def _flow_picker(self) -> Callable[[int], Sequence[int]]:
        if self.flows == 1:
            return lambda k: repeat(0, k)
        choices = random.Random(f"skbsim.traffic/{self.seed}/flows").choices
        population = range(self.flows)
        return lambda k: choices(population, k=k)

    def __iter__(self) -> Iterator[Frame]:
        return self._generate()

    def _flow_state(self, index: int) -> "_FlowState":
        flow = synthetic_flow(self.seed, index)
        src, dst, src_port, dst_port, _ = flow
        rss_hash = self.rss.toeplitz.ipv4_l4(src, dst, src_port, dst_port)
        return _FlowState(flow, rss_hash, self.rss.queue_of(rss_hash),
                          SyntheticHeaderTemplate(src, dst, src_port, dst_port))

    def _generate(self) -> Iterator[Frame]:
        take_lengths = self.lengths.sampler(self.seed)
        take_times = arrival_sampler(self.rate, self.arrival, self.seed)
        pick_flows = self._flow_picker()
        want_headers = self.headers
        cache_headers = self.flows * self.lengths.distinct() <= _HEADER_CACHE_LIMIT
        non_ip_queue = self.rss.table[0]
        short = SYNTHETIC_IPV4_UDP_MIN
        # flow index -> _FlowState, created on the flow's first frame
        per_flow = {}
        remaining = self.count
        while remaining > 0:
            k = min(BATCH, remaining)
            remaining -= k
            for length, time_ns, index in zip(take_lengths(k), take_times(k), pick_flows(k)):
                state = per_flow.get(index)
                if state is None:
                    state = per_flow[index] = self._flow_state(index)
                header = None
                if want_headers:
                    if cache_headers:
                        header = state.headers.get(length)
                    if header is None:
                        header = state.template.build(length)
                        if cache_headers:
                            state.headers[length] = header
                if length < short:
                    yield Frame(length, time_ns, None, 0, non_ip_queue, header)
                else:
                    yield Frame(length, time_ns, state.flow, state.rss_hash, state.queue, header)


class _FlowState:
    """A synthetic flow's tuple, hash, queue and header bytes by length."""

    __slots__ = ("flow", "rss_hash", "queue", "template", "headers")

    def __init__(self, flow, rss_hash, queue, template):
        self.flow = flow
        self.rss_hash = rss_hash
        self.queue = queue
        self.template = template
        self.headers = {}


# --- TCP bulk senders --------------------------------------------------------

#: The MSS of a Linux sender on a 1500-byte MTU path: 1460, less the 12
#: bytes of the timestamp option when both ends use it (Linux does by default).
TCP_BULK_MSS = {True: 1448, False: 1460}


class TcpBulk:
    """A bulk TCP sender's segments: every one MSS bytes of payload, in order, ACK set.

    ``mss`` is the payload per segment; ``timestamps`` adds the 12-byte
    timestamp option (TSval ticks every millisecond of the sender's clock,
    here the segment's arrival time, so segments of different milliseconds
    differ in their options).  Frames are 54 + 12 (with timestamps) + mss
    bytes.
    """

    __slots__ = ("mss", "timestamps")

    def __init__(self, mss: int | None = None, timestamps: bool = True):
        self.timestamps = timestamps
        self.mss = TCP_BULK_MSS[timestamps] if mss is None else mss

    @property
    def header_len(self) -> int:
        return SYNTHETIC_IPV4_TCP_MIN + (TCPOLEN_TSTAMP_ALIGNED if self.timestamps else 0)

    @property
    def frame_len(self) -> int:
        return self.header_len + self.mss

    def describe(self) -> str:
        ts = "with" if self.timestamps else "without"
        return f"tcp-bulk (MSS {self.mss} {ts} timestamps: {self.frame_len}-byte segments)"


def _flow_number(seed: int, index: int, purpose: str) -> int:
    """A 32-bit number of flow ``index`` for ``purpose`` (ISN, IP ID, clocks), from a keyed hash."""
    digest = hashlib.blake2b(f"{seed}/{index}/{purpose}".encode(), digest_size=4,
                             person=b"skbsim-tcp").digest()
    return int.from_bytes(digest, "big")


class TcpBulkSource(SyntheticSource):
    """``count`` segments of bulk TCP senders, one per flow, spread over ``flows`` flows.

    Each frame picks its flow as UDP synthetic traffic does (same seeded
    draws, same addresses and ports, protocol TCP, so RSS spreads the flows
    the same way); each flow's segments carry consecutive sequence numbers
    from a per-flow initial sequence number, an IP ID counting up by one,
    and (with timestamps) a TSval of the flow's clock base plus the arrival
    time in milliseconds.
    """

    __slots__ = ("tcp",)

    def __init__(self, tcp: TcpBulk, *, count: int, seed: int, flows: int, rate: float | None, arrival: str,
                 rss: RssConfig, headers: bool = True):
        super().__init__(FixedLength(tcp.frame_len), count=count, seed=seed, flows=flows, rate=rate,
                         arrival=arrival, rss=rss, headers=headers)
        self.tcp = tcp

    FLOW_PROTOCOL = "TCP/IPv4"

    def _describe_frames(self) -> str:
        return self.tcp.describe()

    def flow_state(self, index: int) -> "_TcpFlowState":
        """Flow ``index`` as its first segment finds it: tuple, hash, queue, header template, initial
        sequence number, IP ID and clock base (the closed-loop senders of run --socket tcp start here)."""
        return self._flow_state(index)

    def _flow_state(self, index: int) -> "_TcpFlowState":
        src, dst, src_port, dst_port, _ = synthetic_flow(self.seed, index)
        rss_hash = self.rss.toeplitz.ipv4_l4(src, dst, src_port, dst_port)
        seed = self.seed
        template = SyntheticTcpTemplate(src, dst, src_port, dst_port, timestamps=self.tcp.timestamps,
                                        ack_seq=_flow_number(seed, index, "ack"),
                                        tsecr=_flow_number(seed, index, "tsecr"))
        return _TcpFlowState((src, dst, src_port, dst_port, IPPROTO_TCP), rss_hash, self.rss.queue_of(rss_hash),
                             template, _flow_number(seed, index, "isn"), _flow_number(seed, index, "ipid") & 0xFFFF,
                             _flow_number(seed, index, "tsval"))

    def _generate(self) -> Iterator[Frame]:
        take_times = arrival_sampler(self.rate, self.arrival, self.seed)
        pick_flows = self._flow_picker()
        want_headers = self.headers
        length = self.tcp.frame_len
        mss = self.tcp.mss
        per_flow: dict[int, _TcpFlowState] = {}
        remaining = self.count
        while remaining > 0:
            k = min(BATCH, remaining)
            remaining -= k
            for time_ns, index in zip(take_times(k), pick_flows(k)):
                state = per_flow.get(index)
                if state is None:
                    state = per_flow[index] = self._flow_state(index)
                header = None
                if want_headers:
                    header = state.template.build(length, state.seq, state.ip_id,
                                                  state.ts_base + time_ns // 1_000_000)
                state.seq = (state.seq + mss) & 0xFFFFFFFF
                state.ip_id = (state.ip_id + 1) & 0xFFFF
                yield Frame(length, time_ns, state.flow, state.rss_hash, state.queue, header)


class _TcpFlowState:
    """A synthetic TCP flow's tuple, hash, queue, header template and the sender's counters."""

    __slots__ = ("flow", "rss_hash", "queue", "template", "seq", "ip_id", "ts_base")

    def __init__(self, flow, rss_hash, queue, template, seq, ip_id, ts_base):
        self.flow = flow
        self.rss_hash = rss_hash
        self.queue = queue
        self.template = template
        self.seq = seq
        self.ip_id = ip_id
        self.ts_base = ts_base
