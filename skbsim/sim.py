"""The receive path end to end, in simulated time: the reference engine.

traffic -> NIC queue (RSS, one per CPU) -> hard IRQ -> net_rx_action / NAPI
poll (weight 64, netdev_budget 300, 2 jiffies) -> driver RX -> GRO
(napi_gro_receive(): TCP segments merge, everything else goes up as built)
-> the stack -> UDP socket (sk_rcvbuf admission) -> the application
reading -> the skb freed -> caches and pages.  _deliver() is the one place
that hands skbs to a socket: every skb to one UDP socket, or with
``socket="tcp"`` to the flow's own socket (skbsim.sockets: TCP receivers of
the TCP model, UDP sockets), whose ACKs reach the synthetic TCP senders
(skbsim.tcp_sender) one RTT later.

Each arrow is one call; statistics are counted where the calls happen.  The
event loop is a heap of (time, order, kind, cpu) entries: frame arrivals are
pulled lazily from the traffic stream one at a time, so memory does not grow
with the length of the trace.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from dataclasses import dataclass, field, replace

from skbsim.drivers import DRIVERS
from skbsim.drivers.pp_common import queue_page_pool_stats, sum_page_pool_stats
from skbsim.errors import InputError
from skbsim.kernel import HZ, Kernel
from skbsim.mm.fault import fault_report, fault_rules
from skbsim.net.napi import NAPI_POLL_WEIGHT, napi_list_del, napi_schedule, napi_struct, net_device
from skbsim.net.skbuff import defer_ipi, skb_defer_free_flush
from skbsim.net.sock import RMEM_DEFAULT, sk_get_meminfo, udp_destroy_sock, udp_queue_rcv_skb, udp_recvmsg, udp_sock
from skbsim.profile import load_profile
# The memory series: at most 2000 points, halved as it grows (skbsim/fast/ mirrors it as sim._Series).
from skbsim.sockets import Thinned as _Series
from skbsim.traffic import DEFAULT_INDIRECTION_SIZE, parse_traffic

NETDEV_BUDGET = 300
#: netdev_budget_usecs defaults to 2 * USEC_PER_SEC / HZ: two jiffies.
NETDEV_BUDGET_NS = 2 * 1_000_000_000 // HZ

_ARRIVAL, _POLL, _READ, _GRO_TIMER = 0, 1, 2, 3
# Runs with a socket per flow (their heap entries carry a payload where the others carry a CPU):
# a flow's reader, a TCP receiver's timer, an ACK reaching its sender, a sender's own event.
_FLOW_READ, _TCP_TIMER, _SENDER_ACK, _SENDER = 4, 5, 6, 7
# A defer-list IPI reaching its CPU (kick_defer_list_purge()).
_IPI = 8

#: One RX queue per CPU, and RSS hashes over DEFAULT_INDIRECTION_SIZE table entries: more CPUs than
#: entries would never receive a frame.  Memory stays a few hundred MiB at the bound (docs/output.md).
MAX_CPUS = DEFAULT_INDIRECTION_SIZE
#: Synthetic TCP senders (--socket tcp --flows): each is a TCP socket with its own namespace and a sender,
#: about 22 KiB and 0.25 ms of set-up; 65536 of them took 15 s and 1.5 GB before the first frame.
MAX_TCP_SENDERS = 1 << 16
#: Simulated time is in ns; the fast engine holds it in an int64, the reference engine stays with it.
SIM_CLOCK_MAX_NS = (1 << 63) - 1


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
    #: reads per second; None: as fast as datagrams come; 0: nobody reads
    app_rate: float | None = None
    seed: int = 0
    irq_latency_ns: int = 2_000
    packet_cost_ns: int = 500
    #: fault injection from the first frame on: (layer, probability, interval, times, space) each
    faults: tuple = ()
    #: "udp": every skb to one UDP socket; "tcp": a socket per flow (TCP receivers and UDP sockets),
    #: with synthetic TCP senders for tcp-bulk traffic (skbsim.sockets, skbsim.tcp_sender)
    socket: str = "udp"
    #: the synthetic senders' application: bulk or messages:SIZE[@RATE][,tso=N]
    tcp: str = "bulk"
    #: the round-trip time the synthetic senders see, in ms
    rtt_ms: float = 1.0
    #: bytes a TCP read takes (None: all that is queued)
    app_read_size: int | None = None
    #: SO_RCVBUF on every TCP listener before listen() (None: not set; autotuning)
    so_rcvbuf: int | None = None
    #: the synthetic senders stop after this much simulated time, in ms
    duration_ms: float = 60_000.0

    def validate(self) -> None:
        if not 1 <= self.cpus <= MAX_CPUS:
            raise InputError(f"--cpus must be 1..{MAX_CPUS}, got {self.cpus}: RSS spreads flows over a "
                             f"{DEFAULT_INDIRECTION_SIZE}-entry indirection table, so more queues would never "
                             "receive a frame")
        if self.rcvbuf < 1:
            raise InputError(f"--rcvbuf must be positive, got {self.rcvbuf}")
        if self.app_rate is not None:
            if not self.app_rate >= 0:
                raise InputError(f"--app-rate must be 0 (no reader), a positive rate or 'unlimited', "
                                 f"got {self.app_rate}")
            if self.app_rate and not 1e9 / self.app_rate <= SIM_CLOCK_MAX_NS:
                raise InputError(f"--app-rate {self.app_rate:g}: fewer than one read before the simulated clock "
                                 "ends (2**63 ns, 292 years); --app-rate 0 is a reader that never reads")
        if self.rate is not None and not self.rate > 0:
            raise InputError(f"--rate must be positive, got {self.rate}")
        if self.count is not None and self.count < 0:
            raise InputError(f"--count must not be negative, got {self.count}")
        if self.driver not in DRIVERS:
            raise InputError(f"unknown driver {self.driver!r} (known: {', '.join(sorted(DRIVERS))})")
        if self.packet_cost_ns < 0 or self.irq_latency_ns < 0:
            raise InputError("per-packet cost and IRQ latency must not be negative")
        fault_rules(self.faults)
        self._validate_sockets()

    def _validate_sockets(self) -> None:
        kind = self.traffic.split(":", 1)[0].strip().lower()
        if self.socket == "auto" and kind in ("pcap", "pcapng"):
            # A capture's default, decided when the run starts (resolve_socket()); check what either
            # choice would check of the TCP options' ranges now.
            if self.app_read_size is not None and not 1 <= self.app_read_size <= 0x7FFFFFFF:
                raise InputError(f"--app-read-size must be 1..2147483647 bytes, got {self.app_read_size}")
            if self.so_rcvbuf is not None and not 0 <= self.so_rcvbuf <= 0x7FFFFFFF:
                raise InputError(f"--so-rcvbuf {self.so_rcvbuf} is outside 0..2147483647")
            return
        if self.socket not in ("udp", "tcp"):
            raise InputError(f"--socket must be udp or tcp, got {self.socket!r}")
        if self.socket == "udp":
            for value, name in ((self.app_read_size, "--app-read-size"), (self.so_rcvbuf, "--so-rcvbuf")):
                if value is not None:
                    raise InputError(f"{name} is for TCP sockets: add --socket tcp")
            return
        if kind not in ("tcp-bulk", "pcap", "pcapng"):
            raise InputError(f"--socket tcp needs TCP traffic: --traffic tcp-bulk[:mss=N,ts=0|1] (synthetic senders) "
                             f"or a capture, not {self.traffic!r}")
        if self.app_read_size is not None and not 1 <= self.app_read_size <= 0x7FFFFFFF:
            raise InputError(f"--app-read-size must be 1..2147483647 bytes, got {self.app_read_size}")
        if self.so_rcvbuf is not None and not 0 <= self.so_rcvbuf <= 0x7FFFFFFF:
            raise InputError(f"--so-rcvbuf {self.so_rcvbuf} is outside 0..2147483647")
        if kind == "tcp-bulk":
            from skbsim.tcp_sender import parse_sender

            # Both become whole ns of the simulated clock (round()): half a ns or less would be 0.
            if not (self.rtt_ms * 1e6 > 0.5 and self.rtt_ms <= 1e9):
                raise InputError(f"--rtt must be 1e-06..1e9 ms (at least 1 ns, the simulated clock's unit), "
                                 f"got {self.rtt_ms:g}")
            if not (self.duration_ms * 1e6 > 0.5 and self.duration_ms * 1e6 < SIM_CLOCK_MAX_NS / 2):
                raise InputError(f"--duration must be at least 1e-06 ms (1 ns, the simulated clock's unit) and "
                                 f"below 4.6e12 ms, got {self.duration_ms:g}")
            if self.rate is None:
                raise InputError("--socket tcp with synthetic senders needs a link rate (--rate)")
            if self.flows > MAX_TCP_SENDERS:
                raise InputError(f"--flows with --socket tcp must be 1..{MAX_TCP_SENDERS}, got {self.flows}: each "
                                 "flow is a TCP socket and a sender of its own (about 22 KiB each)")
            spec = parse_sender(self.tcp)
            if spec.tso > 1 and (self.driver != "virtio_net" or self.options.get("guest_gso", "1") != "1"):
                raise InputError(f"--tcp {self.tcp}: GSO frames (tso) reach only a driver that receives them: "
                                 "--driver virtio_net with guest_gso=1")

    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.kernel} {self.driver}" + (f" {opts}" if opts else "")


class _CpuState:
    """One CPU's NIC queue and NAPI instance, as the simulator schedules them."""

    __slots__ = ("cpu", "napi", "queue", "scheduled", "budget_left", "round_start", "busy_until", "oversize_seen",
                 "ring_seen", "timer_due")

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
        # When the NAPI's GRO flush timer fires (hrtimer_start() re-arms it: only the latest counts).
        self.timer_due = -1


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
            # Every frame's RSS hash, on one queue too: the NIC hashes it and GRO picks its bucket by it.
            rss=True,
        )
        self.dev = net_device("eth0")
        #: with a socket per flow (--socket tcp): the sockets, and the synthetic TCP senders
        self.sockets = None
        self.senders = None
        self.sock = udp_sock(self.kernel, config.rcvbuf) if config.socket == "udp" else None
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
        # The reader starts blocked in recvmsg(), waiting for the first datagram; --app-rate 0 has
        # no reader at all.
        self.app_waiting = config.app_rate != 0
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
        self.delivered = 0
        if config.socket == "tcp":
            from skbsim.sockets import Sockets

            self.sockets = Sockets(self, config, self._push, _FLOW_READ, _TCP_TIMER, _SENDER_ACK)
            if not capture:
                self._open_senders()

    # -- event plumbing ---------------------------------------------------------------------

    def _push(self, time_ns: int, kind: int, cpu: int = 0) -> None:
        self.order += 1
        heapq.heappush(self.events, (time_ns, self.order, kind, cpu))

    def _push_sender(self, time_ns: int, action: str, who) -> None:
        """A sender's callback (TcpSenders' push): a _SENDER event carrying (action, who)."""
        self.order += 1
        heapq.heappush(self.events, (time_ns, self.order, _SENDER, (action, who)))

    def _open_senders(self) -> None:
        """One synthetic TCP sender per flow, its receiver listening: the SYN at t = 0, the handshake's
        final ACK (and the first data) one RTT later (no frame of the handshake goes through the driver)."""
        from skbsim.tcp_sender import TcpSender, TcpSenders, parse_sender
        from skbsim.tcp_steps import SynOptions
        from skbsim.traffic.synthetic import TCPOLEN_TSTAMP_ALIGNED

        config = self.config
        source = self.source
        bulk = source.tcp
        sockets = self.sockets
        rtt_ns = sockets.rtt_ns
        senders = []
        for index in range(config.flows):
            state = source.flow_state(index)
            isn = (state.seq - 1) & 0xFFFFFFFF
            syn = SynOptions(mss=bulk.mss + (TCPOLEN_TSTAMP_ALIGNED if bulk.timestamps else 0), wscale=7,
                             ts=bulk.timestamps, sack=True)
            flow = sockets.tcp_flow((6,) + state.flow[:4], state.queue % config.cpus)
            # The receiver's ISN is the one the segments acknowledge: their ACK number less one.
            synack = sockets.listen(flow, 0, syn, isn, (state.template.ack_seq - 1) & 0xFFFFFFFF, state.ts_base)
            mss = min(bulk.mss, synack["mss"] - (TCPOLEN_TSTAMP_ALIGNED if bulk.timestamps else 0))
            sender = TcpSender(index, state.flow, state.rss_hash, state.queue, state.template, mss, bulk.timestamps,
                               isn, state.ip_id, state.ts_base)
            flow.sender = sender
            senders.append(sender)
            self._push_sender(rtt_ns, "establish", flow)
        self.senders = TcpSenders(parse_sender(config.tcp), senders, count=config.count, rate=config.rate,
                                  arrival=config.arrival, seed=config.seed, rtt_ns=rtt_ns, push=self._push_sender)
        self._push_sender(round(config.duration_ms * 1_000_000), "stop", None)
        self.traffic_text = (
            f"{bulk.describe()}; {config.flows} TCP/IPv4 flow{'s, each' if config.flows != 1 else ':'} a "
            f"{self.senders.describe()} sender within the receiver's window (no congestion control); RTT "
            f"{config.rtt_ms:g} ms; a link of {config.rate:g} frames/s ({config.arrival}); at most {config.count} "
            f"frames of new data, for at most {config.duration_ms:g} ms; seed {config.seed}; {source.rss.describe()}")

    def _flow_event(self, kind: int, payload, time_ns: int) -> None:
        """An event of a run with a socket per flow (see the _FLOW_READ .. _SENDER kinds)."""
        if kind == _FLOW_READ:
            self.sockets.read(payload, time_ns)
        elif kind == _TCP_TIMER:
            self.sockets.timer(payload, time_ns)
        elif kind == _SENDER_ACK:
            sender, ack, window, tsval = payload
            self.senders.ack(sender, time_ns, ack, window, tsval)
        else:
            action, who = payload
            senders = self.senders
            if action == "send":
                frame = senders.slot(time_ns)
                if frame is not None:
                    self._arrive(frame)
            elif action == "establish":
                self.sockets.establish(who, time_ns, who.sender.template.window)
                synack = who.synack
                wscale = synack["wscale"] or 0
                senders.start(who.sender, time_ns, (who.sender.isn + 1 + synack["win"]) & 0xFFFFFFFF, wscale)
            elif action == "write":
                senders.write(who, time_ns)
            elif action == "stop":
                senders.stop(time_ns)
            else:
                senders.timer(action, who, time_ns)

    def run(self) -> dict:
        frames = iter(self.source) if self.senders is None else iter(())
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
                elif kind == _READ:
                    self._app_read()
                elif kind == _GRO_TIMER:
                    self._gro_timer(cpus[cpu], time_ns)
                elif kind == _IPI:
                    with kernel.softirq(cpu):
                        defer_ipi(kernel)
                else:
                    self._flow_event(kind, cpu, time_ns)
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
        self._napi_schedule(state, time_ns + self.irq_latency_ns)

    def _napi_schedule(self, state: _CpuState, time_ns: int) -> None:
        state.scheduled = True
        napi_schedule(state.napi, state.cpu)
        start = max(time_ns, state.busy_until)
        state.budget_left = NETDEV_BUDGET
        state.round_start = start
        self._push(start, _POLL, state.cpu)

    def _send_ipis(self) -> None:
        """Deliver the IPIs kick_defer_list_purge() sent: each CPU takes its one as a hard interrupt
        would be taken, after the IRQ latency and once the softirq it is running is over."""
        for cpu in self.kernel.ipis:
            self._push(max(self.now + self.irq_latency_ns, self.cpus[cpu].busy_until), _IPI, cpu)
        self.kernel.ipis.clear()

    def _gro_timer(self, state: _CpuState, time_ns: int) -> None:
        """net/core/dev.c: napi_watchdog() - the GRO flush timer schedules the NAPI unless it is
        scheduled already; the poll finds no work and napi_complete_done() passes everything up."""
        if time_ns != state.timer_due or state.scheduled:
            return
        self._napi_schedule(state, time_ns)

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
        kernel.jiffies = self.now * HZ // 1_000_000_000
        napi = state.napi
        napi.timer_ns = 0
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
        if napi.timer_ns:
            # napi_complete_done() kept skbs in GRO and armed the flush timer.
            state.timer_due = end + napi.timer_ns
            self._push(state.timer_due, _GRO_TIMER, cpu)
        # A poll that took no frame off the ring (an allocation keeps failing) is not retried
        # when, with no traffic left, it would be retried for ever, or when the retry would
        # come at this same instant (no packet cost, no IRQ latency), which stops the clock:
        # NAPI ends instead, the next frame's interrupt schedules it again, and the frames
        # still on the ring at the end are dropped when it is closed.
        retry = end if work >= budget else end + self.irq_latency_ns
        stalled = (stats.frames + stats.frames_dropped == taken_before
                   and (self.traffic_done or retry == self.now))
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
            napi_list_del(state.napi)
            if _pending(state.queue) and not stalled:
                self._raise_irq(state, end)
        if self.sockets is not None:
            sockets = self.sockets
            sockets.poll_end(end)
            # Both sums run over every socket: taken only for the points the series keeps.
            if self.series.take():
                self.series.keep((end, kernel.pages.in_use, sockets.rmem_total()))
                self._sample_pinned()
            return
        if self.app_rate is None:
            self._push(end, _READ)
        elif self.app_waiting and self.sock.queued():
            self.app_waiting = False
            self._push(max(end, self.app_next), _READ)
        self.series.add((end, kernel.pages.in_use, self.sock.rmem_alloc))

    def _sample_pinned(self) -> int:
        """With a socket per flow: the distinct pages the queued skbs of every socket keep alive now
        (taken at the memory series' points: TCP coalescing and collapsing move pages between skbs)."""
        kernel = self.kernel
        pages = set()
        for skb in self.sockets.queued_skbs():
            pages.update(_pinned_pages(kernel, skb))
        if len(pages) > self.peak_pinned:
            self.peak_pinned = len(pages)
        return len(pages)

    def _deliver(self, skb, time_ns: int, cpu: int) -> None:
        """The stack takes the skb (netif_receive_skb) and queues it on the UDP socket (with a socket
        per flow: hands it to the flow's socket)."""
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
        if self.sockets is not None:
            outcome, flow_fields = self.sockets.deliver(skb, time_ns, cpu)
            if outcome == "delivered":
                self.delivered += 1
            if trace is not None:
                trace.write(time_ns, cpu, frame_len, record, outcome, flow_fields)
            return
        if udp_queue_rcv_skb(self.kernel, self.sock, skb):
            # Counted after queueing: skb_condense() may have dropped frag pages.
            pages = _pinned_pages(self.kernel, skb)
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
        peak_pages = kernel.pages.peak_in_use
        pages_allocated = dict(sorted(kernel.pages.allocated.items()))
        if self.sockets is not None:
            pinned_at_end = self._sample_pinned()
            # The flows' figures end with the last thing a receiver did, or when the senders stopped.
            end = max(self.sockets.last_ns, self.senders.stopped_at if self.senders is not None else 0)
            socket_report, flow_reports, self.tcp_series = self.sockets.finish(end)
        else:
            queued_at_end = self.sock.queued()
            pinned_at_end = len(self.pinned)
            meminfo = sk_get_meminfo(self.sock)
            udp_destroy_sock(kernel, self.sock)
            socket_report = {
                "rcvbuf": self.sock.rcvbuf,
                "peak_rmem_alloc": self.sock.peak_rmem,
                "queued_at_end": queued_at_end,
                "condensed": self.sock.condensed,
                "drops": self.sock.drops.get("socket_rcvbuf", 0),
                "meminfo_at_end": meminfo,
            }
        for state in self.cpus:
            with kernel.softirq(state.cpu):
                self.driver.close_queue(kernel, state.queue)
            if self.trace is not None:
                self._trace_driver_drops(state)
        driver_stats = _sum_stats(state.queue.stats.as_dict() for state in self.cpus)
        pool_stats = [queue_page_pool_stats(state.queue) for state in self.cpus]
        nc_stats = _napi_cache_stats(kernel)
        frag_stats = _page_frag_stats(kernel)
        report = kernel.leak_check()
        paths, head_sources, _ = self._skb_kinds_by()
        delivered = self.sock.enqueued if self.sockets is None else self.delivered
        dropped = {
            "ring_full": self.ring_drops,
            "oversize": self.oversize_drops,
            "driver": driver_stats.get("frames_dropped", 0),
            "socket_rcvbuf": socket_report["drops"],
        }
        if self.sockets is not None:
            dropped["tcp"] = self.sockets.tcp_drops
        result = {
            "engine": "reference",
            "kernel": kernel.profile.name,
            "release": kernel.profile.release,
            "driver": self.config.driver,
            "options": dict(sorted(self.config.options.items())),
            "traffic": self.source.describe() if self.senders is None else self.traffic_text,
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
            "socket": socket_report,
            "leaks": report.as_dict(),
            "warnings": list(kernel.warnings),
        }
        if self.config.faults:
            result["faults"] = fault_report(self.config.faults, kernel.faults.injected)
        gro = _gro_stats(self.cpus)
        if gro.tcp_segments:
            # Only runs where a segment could merge report GRO (the fast engine covers the others).
            result["gro"] = gro_report(gro)
        if pool_stats[0] is not None:
            # Drivers built on page_pool: the counters ethtool -S shows, summed over the queues.
            result["page_pool"] = sum_page_pool_stats(pool_stats)
        if self.sockets is not None:
            result["flows"] = flow_reports
            result["tcp"] = tcp_totals(self.config, flow_reports, self.senders)
        return result


def tcp_totals(config: RunConfig, flows: list[dict], senders) -> dict:
    """The "tcp" object of a run with a socket per flow: its TCP flows summed (throughput and the
    window bound too: the flows run side by side)."""
    tcp = [flow for flow in flows if flow["protocol"] == "tcp"]
    counters: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for flow in tcp:
        counters.update(flow["counters"])
        dropped.update(flow["dropped"])
    received = sum(flow["bytes_received"] for flow in tcp)
    bounds = [flow["window_bound_mbps"] for flow in tcp if flow["window_bound_mbps"] is not None]
    throughputs = [flow["throughput_mbps"] for flow in tcp if flow["throughput_mbps"] is not None]
    totals = {
        "sender": None if senders is None else senders.describe(),
        "rtt_ms": config.rtt_ms if senders is not None else None,
        "flows": len(tcp),
        "bytes_received": received,
        "bytes_read": sum(flow["bytes_read"] for flow in tcp),
        "throughput_mbps": round(sum(throughputs), 3) if throughputs else None,
        "window_bound_mbps": round(sum(bounds), 3) if bounds else None,
        "zero_window_ms": round(sum(flow["zero_window_ms"] for flow in tcp), 6),
        "window_below_mss_ms": round(sum(flow["window_below_mss_ms"] for flow in tcp), 6),
        "collapse_copied_bytes": sum(flow["collapse_copied_bytes"] for flow in tcp),
        "dropped": dict(sorted(dropped.items())),
        "counters": dict(sorted(counters.items())),
    }
    if senders is None:
        totals["refused"] = {"segments": sum(flow["refused"]["segments"] for flow in tcp),
                             "bytes": sum(flow["refused"]["bytes"] for flow in tcp)}
    return totals


def tcp_through_gro(config: RunConfig) -> bool:
    """Whether GRO sees TCP segments in this run (and so may merge them, and the run reports "gro").

    TCP traffic is tcp-bulk, or a capture with an IPv4 TCP frame over
    Ethernet (skbsim.traffic.capture.capture_has_tcp(), within --count).
    Every NAPI driver hands its skbs to GRO unless ``--opt gro=0``; tun
    does only with IFF_NAPI; ntb never (netif_rx() to the backlog).
    """
    options = config.options
    if options.get("gro", "1") == "0" or (config.driver == "tun" and options.get("napi", "0") != "1") or (
            config.driver == "ntb"):
        return False
    kind = config.traffic.split(":", 1)[0].strip().lower()
    if kind == "tcp-bulk":
        return True
    if kind not in ("pcap", "pcapng"):
        return False
    from skbsim.traffic.capture import capture_has_tcp

    return capture_has_tcp(parse_traffic(config.traffic, count=config.count, nqueues=config.cpus))


def _pinned_pages(kernel: Kernel, skb) -> list[int]:
    """The pfns of the pages an skb keeps alive: its head's, its frags', and those of its frag_list skbs."""
    virt_to_head_page = kernel.pages.virt_to_head_page
    pages = [virt_to_head_page(skb.head).pfn]
    shinfo = skb.shinfo
    if shinfo.frags:
        pages.extend([frag.page.pfn for frag in shinfo.frags])
    for member in shinfo.frag_list or ():
        pages.extend(_pinned_pages(kernel, member))
    return pages


def gro_report(stats) -> dict:
    """The "gro" object of a run's JSON: what GRO did and what a merged skb costs (skbsim.net.gro.gro_stats)."""
    up = stats.handed_up
    aggregates = stats.aggregates
    return {
        "skbs_in": stats.received,
        "skbs_out": up,
        "segments_per_skb": round(stats.segments_up / up, 3) if up else 0,
        "held": stats.held,
        "normal": stats.normal,
        "tcp_segments": stats.tcp_segments,
        "merged": {"stolen_head": stats.merged_stolen_head, "frags": stats.merged_frags,
                   "frag_list": stats.merged_frag_list},
        "flushes": dict(sorted(stats.flushes.items())),
        "aggregates": aggregates,
        "segments_per_aggregate": round(stats.aggregate_segments / aggregates, 3) if aggregates else 0,
        "len_per_aggregate": round(stats.aggregate_len / aggregates, 1) if aggregates else 0,
        "truesize_per_aggregate": round(stats.aggregate_truesize / aggregates, 1) if aggregates else 0,
        "truesize_per_skb": round(stats.truesize_up / up, 2) if up else 0,
        "truesize_per_byte": round(stats.truesize_up / stats.len_up, 4) if stats.len_up else 0,
        "napi_cache_puts": stats.napi_cache_puts,
        "napi_skbs_reused": stats.napi_skb_reused,
    }


def _gro_stats(cpus):
    """GRO's counters summed over the CPUs' NAPI instances."""
    from skbsim.net.gro import gro_stats

    total = gro_stats()
    for state in cpus:
        total.add(state.napi.gro.stats)
    return total


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


def resolve_socket(config: RunConfig) -> RunConfig:
    """A capture's default socket (``socket="auto"``): a socket per flow when the capture holds IPv4
    TCP (within --count), else the one UDP socket.  Decided when the run starts, not when its command
    line is read, so that a grid can check its cells without reading their captures."""
    if config.socket != "auto":
        return config
    from skbsim.traffic.capture import capture_has_tcp

    tcp = capture_has_tcp(parse_traffic(config.traffic, count=config.count, nqueues=config.cpus))
    resolved = replace(config, socket="tcp" if tcp else "udp")
    resolved.validate()
    return resolved


def simulate(config: RunConfig, trace=None, progress=None) -> tuple[dict, dict]:
    """Run once; return (the JSON result, extra data for plots)."""
    sim = Simulation(resolve_socket(config), trace=trace, progress=progress)
    result = sim.run()
    _, _, truesize_by_len = sim._skb_kinds_by()
    extra = {
        "series": sim.series.points,
        "truesize_by_len": {length: dict(c) for length, c in sorted(truesize_by_len.items())},
        "page_size": sim.kernel.profile.PAGE_SIZE,
    }
    if sim.sockets is not None:
        extra["tcp_series"] = sim.tcp_series
    return result, extra
