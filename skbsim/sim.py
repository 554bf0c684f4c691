"""The receive path end to end, in simulated time: the reference engine.

traffic -> NIC queue (RSS, one per CPU) -> hard IRQ -> net_rx_action / NAPI
poll (weight 64, netdev_budget 300, 2 jiffies) -> driver RX -> the stack
(skb handed over after eth_type_trans) -> UDP socket (sk_rcvbuf admission)
-> the application reading -> the skb freed -> caches and pages.

Each arrow is one call; statistics are counted where the calls happen.  The
event loop is a heap of (time, order, kind, cpu) entries: frame arrivals are
pulled lazily from the traffic stream one at a time, so memory does not grow
with the length of the trace.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from dataclasses import dataclass, field

from skbsim.drivers import DRIVERS
from skbsim.errors import InputError
from skbsim.kernel import Kernel
from skbsim.mm.fault import fault_report, fault_rules
from skbsim.net.napi import NAPI_POLL_WEIGHT, napi_struct, net_device
from skbsim.net.skbuff import defer_ipi, skb_defer_free_flush
from skbsim.net.sock import RMEM_DEFAULT, sk_get_meminfo, udp_destroy_sock, udp_queue_rcv_skb, udp_recvmsg, udp_sock
from skbsim.profile import load_profile
from skbsim.traffic import parse_traffic

NETDEV_BUDGET = 300
HZ = 250
#: netdev_budget_usecs defaults to 2 * USEC_PER_SEC / HZ: two jiffies.
NETDEV_BUDGET_NS = 2 * 1_000_000_000 // HZ

_ARRIVAL, _POLL, _READ, _IPI = 0, 1, 2, 3


@dataclass
class RunConfig:
    """Everything one simulated run depends on (and nothing else: same config, same result)."""

    kernel: str = "6.9"
    kernel_config: str | None = None
    driver: str = "ice"
    options: dict = field(default_factory=lambda: {"rx": "legacy"})
    traffic: str = "imix"
    count: int | None = 100_000
    cpus: int = 1
    flows: int = 16
    rate: float | None = 1_000_000.0
    arrival: str = "constant"
    rcvbuf: int = RMEM_DEFAULT
    app_rate: float | None = None
    seed: int = 0
    irq_latency_ns: int = 2_000
    packet_cost_ns: int = 500
    #: fault injection from the first frame on: (layer, probability, interval, times, space) each
    faults: tuple = ()

    def validate(self) -> None:
        if self.cpus < 1:
            raise InputError(f"--cpus must be at least 1, got {self.cpus}")
        if self.rcvbuf < 1:
            raise InputError(f"--rcvbuf must be positive, got {self.rcvbuf}")
        if self.app_rate is not None and not self.app_rate > 0:
            raise InputError(f"--app-rate must be positive (or 'unlimited'), got {self.app_rate}")
        if self.rate is not None and not self.rate > 0:
            raise InputError(f"--rate must be positive, got {self.rate}")
        if self.count is not None and self.count < 0:
            raise InputError(f"--count must not be negative, got {self.count}")
        if self.driver not in DRIVERS:
            raise InputError(f"unknown driver {self.driver!r} (known: {', '.join(sorted(DRIVERS))})")
        if self.packet_cost_ns < 0 or self.irq_latency_ns < 0:
            raise InputError("per-packet cost and IRQ latency must not be negative")
        fault_rules(self.faults)

    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.kernel} {self.driver}" + (f" {opts}" if opts else "")


class _Series:
    """A time series that keeps at most ``limit`` points by thinning as it grows."""

    __slots__ = ("limit", "every", "count", "points")

    def __init__(self, limit: int = 2000):
        self.limit = limit
        self.every = 1
        self.count = 0
        self.points: list[tuple[int, int, int]] = []

    def add(self, time_ns: int, memory: int, socket: int) -> None:
        self.count += 1
        if self.count % self.every:
            return
        self.points.append((time_ns, memory, socket))
        if len(self.points) >= self.limit:
            self.points = self.points[::2]
            self.every *= 2


class _CpuState:
    """One CPU's NIC queue and NAPI instance, as the simulator schedules them."""

    __slots__ = ("cpu", "napi", "queue", "scheduled", "budget_left", "round_start", "busy_until", "oversize_seen",
                 "ring_seen")

    def __init__(self, cpu: int, napi: napi_struct, queue):
        self.cpu = cpu
        self.napi = napi
        self.queue = queue
        self.scheduled = False
        self.budget_left = NETDEV_BUDGET
        self.round_start = 0
        self.busy_until = 0
        # The queue's drop counters as far as the simulator has accounted for them.
        self.oversize_seen = queue.stats.oversize_drops
        self.ring_seen = queue.stats.ring_drops


class Simulation:
    """One run of the reference engine."""

    def __init__(self, config: RunConfig, trace=None, progress=None):
        config.validate()
        self.config = config
        profile = load_profile(config.kernel, config.kernel_config) if config.kernel_config else load_profile(config.kernel)
        self.kernel = Kernel(profile, ncpus=config.cpus, seed=config.seed)
        self.driver = DRIVERS[config.driver]
        self.trace = trace
        self.progress = progress
        capture = config.traffic.split(":", 1)[0].strip().lower() in ("pcap", "pcapng")
        self.source = parse_traffic(
            config.traffic,
            count=config.count,
            seed=config.seed,
            flows=1 if capture else config.flows,
            rate=config.rate,
            arrival=config.arrival,
            nqueues=config.cpus,
        )
        self.dev = net_device("eth0")
        self.sock = udp_sock(self.kernel, config.rcvbuf)
        self.cpus: list[_CpuState] = []
        for cpu in range(config.cpus):
            napi = napi_struct(self.dev, NAPI_POLL_WEIGHT, napi_id=0x2001 + cpu, cpu=cpu)
            with self.kernel.softirq(cpu):
                queue = self.driver.open_queue(self.kernel, self.dev, napi, dict(config.options))
            self.cpus.append(_CpuState(cpu, napi, queue))
            if trace is not None:
                queue.stats.drop_log = []  # frames the driver drops after DMA, for their trace records
        # Faults start with the traffic: the rings are already filled, as on a running system.
        for layer, rule in fault_rules(config.faults).items():
            self.kernel.faults.set(layer, rule)
        # Set once the last frame has arrived: a poll that then takes nothing off the ring
        # ends NAPI instead of retrying a failing allocation for ever (see _poll).
        self.traffic_done = False
        # Per-run constants, read on every packet or poll.
        self.packet_cost_ns = config.packet_cost_ns
        self.irq_latency_ns = config.irq_latency_ns
        self.app_rate = config.app_rate
        self.events: list = []
        self.order = 0
        self.now = 0
        self.app_next = 0
        # The reader starts blocked in recvmsg(), waiting for the first datagram.
        self.app_waiting = True
        self.app_cpu = 0
        # Statistics, counted where they happen.
        self.packets = 0
        self.bytes = 0
        self.ring_drops = 0
        self.oversize_drops = 0
        self.delivered_to_stack = 0
        self.truesize_total = 0
        # Delivered skbs by (path, head_source, frame length, truesize): one
        # count per packet here; paths, head_sources and truesize_by_len are
        # sums over it (see _skb_kinds_by()).
        self.skb_kinds: dict[tuple[str, str, int, int], int] = {}
        self.polls = 0
        self.time_squeeze = 0
        self.irqs = 0
        # pfn -> how many queued skbs keep that page alive.
        self.pinned: dict[int, int] = {}
        self.peak_pinned = 0
        # (skb, its pages) in socket queue order: the reader consumes in this
        # order, so the pages it unpins need not be looked up again.
        self.queued_pages: deque[tuple[object, list[int]]] = deque()
        self.series = _Series()

    # -- event plumbing ---------------------------------------------------------------------

    def _push(self, time_ns: int, kind: int, cpu: int = 0) -> None:
        self.order += 1
        heapq.heappush(self.events, (time_ns, self.order, kind, cpu))

    def run(self) -> dict:
        frames = iter(self.source)
        pending = next(frames, None)
        self.traffic_done = pending is None
        kernel = self.kernel
        events = self.events
        heappop = heapq.heappop
        cpus = self.cpus
        while True:
            arrival_time = pending.time_ns if pending is not None else None
            if events and (arrival_time is None or events[0][0] < arrival_time):
                time_ns, _, kind, cpu = heappop(events)
                self.now = time_ns
                if kind == _POLL:
                    self._poll(cpus[cpu])
                elif kind == _IPI:
                    with kernel.softirq(cpu):
                        defer_ipi(kernel)
                else:
                    self._app_read()
                if kernel.ipis:
                    self._send_ipis()
                continue
            if pending is None:
                break
            self.now = arrival_time
            self._arrive(pending)
            pending = next(frames, None)
            if pending is None:
                self.traffic_done = True
        return self._finish(kernel)

    # -- the NIC and its interrupt ---------------------------------------------------------------

    def _arrive(self, frame) -> None:
        self.packets += 1
        self.bytes += frame.length
        state = self.cpus[frame.queue % len(self.cpus)]
        if not self.driver.nic_receive(self.kernel, state.queue, frame):
            reason = self._refusal_reason(state)
            if self.trace is not None:
                self.trace.write(self.now, state.cpu, frame.length, None, f"dropped:{reason}")
        elif not state.scheduled:
            self._raise_irq(state, self.now)
        if self.progress is not None and not self.packets & 1023:
            self.progress(self.packets)

    def _refusal_reason(self, state: _CpuState) -> str:
        """Why the driver refused a frame, from the queue's own counters.

        The NIC drops frames longer than the queue accepts and frames that
        find no free descriptor; a driver that refuses in software (a tun
        write that would block) counts the frame in frames_dropped, which
        the report takes from the driver's statistics.
        """
        stats = state.queue.stats
        if stats.oversize_drops > state.oversize_seen:
            state.oversize_seen += 1
            self.oversize_drops += 1
            return "oversize"
        if stats.ring_drops > state.ring_seen:
            state.ring_seen += 1
            self.ring_drops += 1
            return "ring_full"
        return "driver"

    def _trace_driver_drops(self, state: _CpuState) -> None:
        """Trace records of the frames the driver dropped since the last call (no skb: a failed
        allocation in its poll, or frames left on its ring when it closes)."""
        log = state.queue.stats.drop_log
        for frame_len in log:
            self.trace.write(self.now, state.cpu, frame_len, None, "dropped:driver")
        log.clear()

    def _raise_irq(self, state: _CpuState, time_ns: int) -> None:
        """Hard IRQ -> napi_schedule(): NET_RX softirq runs after the IRQ latency."""
        self.irqs += 1
        state.scheduled = True
        start = max(time_ns + self.irq_latency_ns, state.busy_until)
        state.budget_left = NETDEV_BUDGET
        state.round_start = start
        self._push(start, _POLL, state.cpu)

    def _send_ipis(self) -> None:
        """Deliver the IPIs kick_defer_list_purge() sent: each CPU takes its one as a hard interrupt
        would be taken, after the IRQ latency and once the softirq it is running is over."""
        for cpu in self.kernel.ipis:
            self._push(max(self.now + self.irq_latency_ns, self.cpus[cpu].busy_until), _IPI, cpu)
        self.kernel.ipis.clear()

    # -- NAPI ---------------------------------------------------------------------------------------

    def _poll(self, state: _CpuState) -> None:
        """One napi_poll() inside net_rx_action() on state's CPU."""
        kernel = self.kernel
        cost = self.packet_cost_ns
        cpu = state.cpu
        self.polls += 1
        delivered = []
        stats = state.queue.stats
        taken_before = stats.frames + stats.frames_dropped
        with kernel.softirq(cpu):
            skb_defer_free_flush(kernel)
            budget = min(NAPI_POLL_WEIGHT, state.budget_left)
            work = self.driver.poll(kernel, state.queue, budget, delivered.append)
            if self.trace is not None:
                self._trace_driver_drops(state)
            deliver = self._deliver
            time_ns = self.now
            for skb in delivered:
                time_ns += cost
                deliver(skb, time_ns, cpu)
        end = self.now + max(work, len(delivered)) * cost
        state.busy_until = end
        state.budget_left -= work
        # With no traffic left, a poll that took no frame off the ring (an allocation keeps
        # failing) would be retried for ever: NAPI ends instead, and the frames still on
        # the ring are dropped when it is closed.
        stalled = self.traffic_done and stats.frames + stats.frames_dropped == taken_before
        if work >= budget and not stalled:
            # Budget used up: stay scheduled.  A spent netdev_budget or two
            # jiffies end this net_rx_action round (time_squeeze); ksoftirqd
            # carries on with a fresh budget.
            if state.budget_left <= 0 or end - state.round_start >= NETDEV_BUDGET_NS:
                self.time_squeeze += 1
                state.budget_left = NETDEV_BUDGET
                state.round_start = end
            self._push(end, _POLL, state.cpu)
        else:
            # napi_complete_done(): interrupts back on; frames that arrived
            # during the poll raise one at once.
            state.scheduled = False
            if _pending(state.queue) and not stalled:
                self._raise_irq(state, end)
        if self.app_rate is None:
            self._push(end, _READ)
        elif self.app_waiting and self.sock.queued():
            self.app_waiting = False
            self._push(max(end, self.app_next), _READ)
        self.series.add(end, kernel.pages.in_use, self.sock.rmem_alloc)

    def _deliver(self, skb, time_ns: int, cpu: int) -> None:
        """The stack takes the skb (netif_receive_skb) and queues it on the UDP socket."""
        self.delivered_to_stack += 1
        truesize = skb.truesize
        frame_len = skb.len + 14
        self.truesize_total += truesize
        kinds = self.skb_kinds
        kind = (skb.path, skb.head_source, frame_len, truesize)
        kinds[kind] = kinds.get(kind, 0) + 1
        trace = self.trace
        if trace is not None:
            # Taken before queueing: skb_condense() or a drop changes the skb.
            record = (skb.len, skb.data_len, truesize, len(skb.shinfo.frags), skb.path, skb.head_source)
        if udp_queue_rcv_skb(self.kernel, self.sock, skb):
            # Counted after queueing: skb_condense() may have dropped frag pages.
            pages = [self.kernel.pages.virt_to_head_page(skb.head).pfn]  # the pages the skb keeps alive
            if skb.shinfo.frags:
                pages.extend([frag.page.pfn for frag in skb.shinfo.frags])
            self.queued_pages.append((skb, pages))
            pinned = self.pinned
            for page in pages:
                pinned[page] = pinned.get(page, 0) + 1
            if len(pinned) > self.peak_pinned:
                self.peak_pinned = len(pinned)
            outcome = "delivered"
        else:
            outcome = "dropped:socket_rcvbuf"
        if trace is not None:
            trace.write(time_ns, cpu, frame_len, record, outcome)

    def _skb_kinds_by(self) -> tuple[Counter, Counter, dict[int, Counter]]:
        """(paths, head_sources, truesize_by_len) of the delivered skbs, from skb_kinds."""
        paths: Counter[str] = Counter()
        head_sources: Counter[str] = Counter()
        truesize_by_len: dict[int, Counter] = {}
        for (path, head_source, frame_len, truesize), n in self.skb_kinds.items():
            paths[path or "build_skb"] += n
            head_sources[head_source or "driver"] += n
            by_len = truesize_by_len.get(frame_len)
            if by_len is None:
                by_len = truesize_by_len[frame_len] = Counter()
            by_len[truesize] += n
        return paths, head_sources, truesize_by_len

    # -- the application -------------------------------------------------------------------------

    def _app_read(self) -> None:
        kernel = self.kernel
        sock = self.sock
        pinned = self.pinned
        queued_pages = self.queued_pages
        app_rate = self.app_rate
        with kernel.on_cpu(self.app_cpu):
            while True:
                if not sock.reader_queue and not sock.receive_queue:
                    self.app_waiting = True
                    return
                head, pages = queued_pages.popleft()
                if udp_recvmsg(kernel, sock) is not head:
                    raise RuntimeError("the socket did not return its queued skbs in order")
                for page in pages:
                    left = pinned[page] - 1
                    if left:
                        pinned[page] = left
                    else:
                        del pinned[page]
                if app_rate is not None:
                    self.app_next = self.now + int(1e9 / app_rate)
                    self._push(self.app_next, _READ)
                    return

    # -- the end of a run ---------------------------------------------------------------------------

    def _finish(self, kernel: Kernel) -> dict:
        # Let the application drain what is queued?  No: report what is left,
        # then tear down as the kernel would on close (the socket frees its
        # queue; the driver frees its ring).
        queued_at_end = self.sock.queued()
        pinned_at_end = len(self.pinned)
        meminfo = sk_get_meminfo(self.sock)
        peak_pages = kernel.pages.peak_in_use
        pages_allocated = dict(sorted(kernel.pages.allocated.items()))
        udp_destroy_sock(kernel, self.sock)
        for state in self.cpus:
            with kernel.softirq(state.cpu):
                self.driver.close_queue(kernel, state.queue)
            if self.trace is not None:
                self._trace_driver_drops(state)
        driver_stats = _sum_stats(state.queue.stats.as_dict() for state in self.cpus)
        nc_stats = _napi_cache_stats(kernel)
        frag_stats = _page_frag_stats(kernel)
        report = kernel.leak_check()
        paths, head_sources, _ = self._skb_kinds_by()
        delivered = self.sock.enqueued
        dropped = {
            "ring_full": self.ring_drops,
            "oversize": self.oversize_drops,
            "driver": driver_stats.get("frames_dropped", 0),
            "socket_rcvbuf": self.sock.drops.get("socket_rcvbuf", 0),
        }
        result = {
            "engine": "reference",
            "kernel": kernel.profile.name,
            "release": kernel.profile.release,
            "driver": self.config.driver,
            "options": dict(sorted(self.config.options.items())),
            "traffic": self.source.describe(),
            "cpus": self.config.cpus,
            "seed": self.config.seed,
            "packets": self.packets,
            "bytes": self.bytes,
            "delivered": delivered,
            "dropped": dropped,
            "dropped_total": sum(dropped.values()),
            "truesize_total": self.truesize_total,
            "truesize_per_packet": round(self.truesize_total / self.delivered_to_stack, 2) if self.delivered_to_stack else 0,
            "truesize_per_byte": round(self.truesize_total / max(1, self.bytes), 4),
            "paths": dict(sorted(paths.items())),
            "head_sources": dict(sorted(head_sources.items())),
            "pages": {
                "allocated_by_order": {str(k): v for k, v in pages_allocated.items()},
                "freed_by_order": {str(k): v for k, v in sorted(kernel.pages.freed.items())},
                "peak_in_use": peak_pages,
                "peak_bytes_in_use": peak_pages * kernel.profile.PAGE_SIZE,
                "peak_pinned_by_queued_skbs": self.peak_pinned,
                "pinned_at_end": pinned_at_end,
            },
            "napi_skb_cache": nc_stats,
            "page_frag": frag_stats,
            "driver_stats": driver_stats,
            "napi": {"polls": self.polls, "irqs": self.irqs, "time_squeeze": self.time_squeeze},
            "socket": {
                "rcvbuf": self.sock.rcvbuf,
                "peak_rmem_alloc": self.sock.peak_rmem,
                "queued_at_end": queued_at_end,
                "condensed": self.sock.condensed,
                "drops": self.sock.drops.get("socket_rcvbuf", 0),
                "meminfo_at_end": meminfo,
            },
            "leaks": report.as_dict(),
            "warnings": list(kernel.warnings),
        }
        if self.config.faults:
            result["faults"] = fault_report(self.config.faults, kernel.faults.injected)
        return result


def _pending(queue) -> bool:
    """Frames the NIC wrote that the driver has not yet taken off the ring."""
    stats = queue.stats
    return stats.nic_frames > stats.frames + stats.frames_dropped


def _sum_stats(parts) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    return dict(sorted(total.items()))


def _napi_cache_stats(kernel: Kernel) -> dict[str, int]:
    total: Counter[str] = Counter()
    for state in kernel.cpus:
        nc = state.napi_alloc_cache
        total.update(gets=nc.gets, hits=nc.hits, refills=nc.refills, refill_failures=nc.refill_failures,
                     puts=nc.puts, flushes=nc.flushes)
    return dict(sorted(total.items()))


def _page_frag_stats(kernel: Kernel) -> dict[str, int]:
    total: Counter[str] = Counter()
    for state in kernel.cpus:
        nc = state.napi_alloc_cache
        total.update(
            napi_allocs=nc.page.allocs,
            napi_refills=nc.page.refills,
            napi_reuses=nc.page.reuses,
            small_1k_allocs=nc.page_small.allocs,
            small_1k_refills=nc.page_small.refills,
            netdev_allocs=state.netdev_alloc_cache.allocs,
            netdev_refills=state.netdev_alloc_cache.refills,
        )
    return dict(sorted(total.items()))


def simulate(config: RunConfig, trace=None, progress=None) -> tuple[dict, dict]:
    """Run once; return (the JSON result, extra data for plots)."""
    sim = Simulation(config, trace=trace, progress=progress)
    result = sim.run()
    _, _, truesize_by_len = sim._skb_kinds_by()
    extra = {
        "series": sim.series.points,
        "truesize_by_len": {length: dict(c) for length, c in sorted(truesize_by_len.items())},
        "page_size": sim.kernel.profile.PAGE_SIZE,
    }
    return result, extra
