"""A socket per flow for ``skbsim run --socket tcp``: TCP receivers and UDP sockets, and their readers.

The run's one place that hands skbs to sockets, ``Simulation._deliver()``,
calls :meth:`Sockets.deliver` here: the skb's IPv4 addresses and ports
(from its header bytes, as __inet_lookup_skb() looks the socket up) pick
the socket, created on the flow's first skb:

- TCP (IPv4, no IP options, not a fragment): a receiving socket of the TCP
  model (skbsim.net.ipv4), set up as skbsim tcp sets one up
  (tcp_listen_sock(), tcp_conn_request() for the peer's SYN,
  tcp_passive_establish()), the segment then through ip_local_deliver()
  and tcp_v4_rcv().  A capture's flow uses the capture's SYN (or SYN-ACK)
  options; a flow first seen in mid-stream is opened at its first segment
  with the options that segment shows (timestamps), an MSS of 1460 and a
  window scale of 7.  The receiver sends no data of its own: when the
  peer acknowledges more than the model sent (a request the real receiver
  sent), snd_nxt follows.  FIN and RST are not modelled: a FIN's data is
  kept and the FIN ignored, a RST is freed; a SYN on an established flow
  starts a new connection (the old socket is closed).
- UDP: a UDP socket per flow (sk_rcvbuf ``--rcvbuf``).
- Everything else (non-IP, IPv6, ICMP, fragments, headers cut short by the
  capture): one more UDP socket, as every skb went to before.

Each socket has its own reader (``--app-rate`` reads per second,
``unlimited``: after every NAPI poll that queued something, ``0``: never;
a TCP read takes ``--app-read-size`` bytes, all that is queued by
default; a UDP read one datagram).  The TCP receivers' ACKs go to the
synthetic senders (skbsim.tcp_sender) one RTT later; their delayed-ACK
timers fire at their time.  Each TCP receiver has a network namespace of
its own (skbsim.net.ipv4.tcp_ipv4.net_ns), so its TcpExt counters are its
own; the run's total is their sum.
"""

from __future__ import annotations

from collections import Counter

from skbsim.net.ipv4.ip_input import ip_local_deliver
from skbsim.net.ipv4.tcp import (
    TCPEXT,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_RST,
    TCPHDR_SYN,
    U32,
    after,
    tcp_destroy,
    tcp_recvmsg,
)
from skbsim.net.ipv4.tcp_cong import tcp_ca_find
from skbsim.net.ipv4.tcp_ipv4 import net_ns, read_host_sysctls, tcp_v4_fill_cb, tcp_v4_rcv_verdict
from skbsim.net.ipv4.tcp_minisocks import tcp_conn_request, tcp_listen_sock, tcp_passive_establish
from skbsim.net.ipv4.tcp_timer import next_timer_us, run_timers
from skbsim.net.skbuff import kfree_skb
from skbsim.net.sock import (SK_MEMINFO_FIELDS, WMEM_DEFAULT, sk_get_meminfo, udp_destroy_sock, udp_queue_rcv_skb,
                              udp_recvmsg, udp_sock)
from skbsim.tcp_steps import SynOptions

IPPROTO_TCP = 6
IPPROTO_UDP = 17
#: The options assumed for a capture's flow whose SYN the capture does not hold.
MIDSTREAM_MSS = 1460
MIDSTREAM_WSCALE = 7
#: How many refused segments each flow lists (all are counted).
REFUSED_LISTED = 20
#: Drops of data the receiver already has (a capture's own retransmissions): not refusals.
OLD_DATA = ("TCP_OLD_DATA", "TCP_OLD_SEQUENCE")
#: Points of each flow's series in the JSON (the plot's series keeps up to 2000).
JSON_SERIES_POINTS = 64
#: The TcpExt counters of the pruning and collapsing that a run reports apart.
PRUNE_COUNTERS = ("PruneCalled", "RcvPruned", "TCPRcvCollapsed", "OfoPruned")
#: Keys of a TCP flow's series points, in order.
SERIES_KEYS = ("time_ms", "window", "rmem_alloc", "rcvbuf", "bytes_received")


class Thinned:
    """A series that keeps at most ``limit`` points by halving itself as it grows; ``add()`` says
    whether the point was kept."""

    __slots__ = ("limit", "every", "count", "points")

    def __init__(self, limit: int = 2000):
        self.limit = limit
        self.every = 1
        self.count = 0
        self.points: list[tuple] = []

    def add(self, point: tuple) -> bool:
        if not self.take():
            return False
        self.keep(point)
        return True

    def take(self) -> bool:
        """Count one point and say whether it is kept: then ``keep()`` it (a point that costs work to
        make is made only when kept)."""
        self.count += 1
        return not self.count % self.every

    def keep(self, point: tuple) -> None:
        self.points.append(point)
        if len(self.points) >= self.limit:
            self.points = self.points[::2]
            self.every *= 2


def ipv4_flow(header: bytes | None):
    """The flow of a frame from its header bytes: (protocol, key, ihl, tot_len field) for IPv4 TCP and UDP
    without IP options, not fragments, with the transport header's ports in the bytes; None otherwise.
    ``key`` is (protocol, saddr, daddr, sport, dport)."""
    if header is None or len(header) < 38 or header[12] != 0x08 or header[13] != 0x00 or header[14] != 0x45:
        return None
    proto = header[23]
    if proto not in (IPPROTO_TCP, IPPROTO_UDP) or (header[20] & 0x3F) or header[21]:
        return None
    key = (proto, header[26:30], header[30:34], (header[34] << 8) | header[35], (header[36] << 8) | header[37])
    return proto, key, 20, (header[16] << 8) | header[17]


def flow_name(key) -> str:
    """``198.18.0.1:40000 > 192.0.2.1:5201`` for a flow key."""
    _, src, dst, sport, dport = key
    return f"{'.'.join(map(str, src))}:{sport} > {'.'.join(map(str, dst))}:{dport}"


class _Reader:
    """One socket's application: when it reads next, and whether it is blocked waiting for data."""

    __slots__ = ("app_next", "waiting")

    def __init__(self, reads: bool):
        self.app_next = 0
        self.waiting = reads


class UdpFlow:
    """A UDP socket of its own for one flow (or for everything that is no IPv4 TCP/UDP flow: key None)."""

    __slots__ = ("key", "name", "cpu", "sock", "reader", "skbs", "delivered", "dropped", "datagrams_read")

    protocol = "udp"
    closed = False  # a UDP socket stays open to the end of the run

    def __init__(self, kernel, key, cpu: int, rcvbuf: int, reads: bool):
        self.key = key
        self.name = flow_name(key) if key is not None else "other"
        self.cpu = cpu
        self.sock = udp_sock(kernel, rcvbuf)
        self.reader = _Reader(reads)
        self.skbs = 0
        self.delivered = 0
        self.dropped = 0
        self.datagrams_read = 0

    def queued(self) -> bool:
        return bool(self.sock.queued())

    def queued_skbs(self):
        return list(self.sock.reader_queue) + list(self.sock.receive_queue)

    def report(self) -> dict:
        return {"flow": self.name, "protocol": "udp" if self.key is not None else "other", "cpu": self.cpu,
                "skbs": self.skbs, "delivered": self.delivered, "dropped": {"socket_rcvbuf": self.dropped},
                "datagrams_read": self.datagrams_read, "peak_rmem_alloc": self.sock.peak_rmem,
                "queued_at_end": self.sock.queued()}


class TcpFlow:
    """One TCP connection's receiver, its reader and what the run reports about it."""

    __slots__ = (
        "key", "name", "cpu", "net", "listener", "req", "synack", "sk", "sender", "reader", "timer_due",
        "rcv_start", "rcv_mark", "received", "first_data_ns", "last_data_ns", "mss",
        # the advertised window: now, since when, time at zero and below one MSS, its integral over time
        "window", "window_since", "zero_ns", "small_ns", "window_integral", "integral_at_first", "integral_at_last",
        "skbs", "segments", "delivered", "dropped", "control", "bytes_read", "refused", "refused_count",
        "refused_bytes", "rcvbuf_initial", "rcvbuf_max", "rmem_peak", "series", "json_series", "closed",
    )

    protocol = "tcp"

    def __init__(self, key, cpu: int, net):
        self.key = key
        self.name = flow_name(key)
        self.cpu = cpu
        self.net = net
        self.listener = None
        self.req = None
        self.synack = None
        self.sk = None
        self.sender = None
        self.reader = None
        self.timer_due: int | None = None
        self.rcv_start = 0
        # rcv_nxt when bytes_received() last looked, and the bytes it had counted by then
        self.rcv_mark = 0
        self.received = 0
        self.first_data_ns: int | None = None
        self.last_data_ns: int | None = None
        self.window = 0
        self.window_since = 0
        self.zero_ns = 0
        self.small_ns = 0
        self.mss = 0
        self.window_integral = 0
        self.integral_at_first = 0
        self.integral_at_last = 0
        self.skbs = 0
        self.segments = 0
        self.delivered = 0
        self.dropped: Counter[str] = Counter()
        self.control = 0
        self.bytes_read = 0
        self.refused: list = []
        self.refused_count: Counter[str] = Counter()
        self.refused_bytes = 0
        self.rcvbuf_initial = 0
        self.rcvbuf_max = 0
        self.rmem_peak = 0
        self.series = Thinned()
        self.json_series = Thinned(JSON_SERIES_POINTS)
        self.closed = False

    def queued(self) -> bool:
        sk = self.sk
        return sk is not None and sk.rcv_nxt != sk.copied_seq

    def queued_skbs(self):
        sk = self.sk
        if sk is None:
            return []
        return sk.sk_receive_queue + sk.out_of_order_queue + sk.sk_backlog

    def bytes_received(self) -> int:
        """In-order bytes accepted (rcv_nxt's advance since the first byte), counted on past 4 GiB where
        rcv_nxt wraps: this is asked after every ACK the receiver sends, long before rcv_nxt can move
        2 GiB (the window is at most 1 GiB)."""
        sk = self.sk
        if sk is None:
            return 0
        self.received += (sk.rcv_nxt - self.rcv_mark) & U32
        self.rcv_mark = sk.rcv_nxt
        return self.received


class Sockets:
    """Every socket of a run with a socket per flow, and the work of delivering to them and reading.

    ``push(time_ns, kind, payload)`` asks the run loop for a callback
    (:data:`READ`, :data:`TIMER` with a flow, :data:`ACK` with (sender,
    ack, window, tsval)); see skbsim.sim.
    """

    def __init__(self, sim, config, push, read_kind: int, timer_kind: int, ack_kind: int):
        self.sim = sim
        self.kernel = sim.kernel
        self.config = config
        self.push = push
        self.READ, self.TIMER, self.ACK = read_kind, timer_kind, ack_kind
        self.app_rate = config.app_rate
        self.read_size = config.app_read_size
        capture = config.traffic.split(":", 1)[0].strip().lower() in ("pcap", "pcapng")
        #: the synthetic senders' RTT (a capture's flows have none: their peer is the capture)
        self.rtt_ns = None if capture else round(config.rtt_ms * 1_000_000)
        self.flows: list = []
        self.by_key: dict = {}
        self.other: UdpFlow | None = None
        self.touched: dict[int, object] = {}
        self.mtu = sim.dev.mtu
        self.ca_ops = tcp_ca_find("cubic")
        profile = self.kernel.profile
        self.net_template = net_ns(profile)
        if config.kernel == "host":
            read_host_sysctls(self.net_template)
        self.tcp_drops = 0
        #: the time of the last skb or read (a flow's zero-window time ends there, or when the senders stop)
        self.last_ns = 0

    # -- sockets -----------------------------------------------------------------------------------

    def _net(self):
        """A namespace for one TCP receiver: the run's sysctls, counters of its own."""
        template = self.net_template
        net = net_ns(self.kernel.profile, template.HZ)
        for name in ("sysctl_rmem_max", "sysctl_tcp_rmem", "sysctl_tcp_wmem", "sources"):
            setattr(net, name, getattr(template, name))
        return net

    def _reads(self) -> bool:
        return self.app_rate != 0

    def udp_flow(self, key, cpu: int) -> UdpFlow:
        flow = UdpFlow(self.kernel, key, cpu, self.config.rcvbuf, self._reads())
        self.flows.append(flow)
        if key is None:
            self.other = flow
        else:
            self.by_key[key] = flow
        return flow

    def tcp_flow(self, key, cpu: int) -> TcpFlow:
        flow = TcpFlow(key, cpu, self._net())
        flow.reader = _Reader(self._reads())
        self.flows.append(flow)
        self.by_key[key] = flow
        return flow

    def listen(self, flow: TcpFlow, now_ns: int, syn: SynOptions, peer_isn: int, receiver_isn: int,
               syn_tsval: int) -> dict:
        """socket(), SO_RCVBUF, listen(), and the peer's SYN: returns the SYN-ACK's figures."""
        net = flow.net
        net.now_us = max(net.now_us, now_ns // 1000)
        flow.listener = tcp_listen_sock(self.kernel, net, self.ca_ops, receiver_isn, self.config.so_rcvbuf)
        flow.req, flow.synack = tcp_conn_request(flow.listener, syn, peer_isn, self.mtu, syn_tsval)
        flow.window = flow.synack["win"]
        return flow.synack

    def establish(self, flow: TcpFlow, now_ns: int, ack_window: int) -> None:
        """The peer's final ACK: the connection is accepted (tcp_passive_establish())."""
        net = flow.net
        net.now_us = max(net.now_us, now_ns // 1000)
        sk = tcp_passive_establish(flow.listener, flow.req, self.mtu, flow.name, ack_window)
        flow.sk = sk
        flow.rcv_start = flow.rcv_mark = sk.rcv_nxt
        flow.window_since = now_ns
        flow.rcvbuf_initial = flow.rcvbuf_max = sk.sk_rcvbuf
        flow.mss = sk.mss_cache
        self._sample(flow, now_ns)

    # -- delivery ----------------------------------------------------------------------------------

    def deliver(self, skb, time_ns: int, cpu: int) -> tuple[str, tuple]:
        """An skb from the stack (data at its IP header): to its flow's socket.

        Returns (outcome, the trace's flow fields): outcome
        ``delivered``, ``dropped:socket_rcvbuf`` (UDP), ``dropped:REASON``
        (TCP, the kernel's drop reason) or ``control`` (a TCP segment without
        data: the handshake, pure ACKs, probes, RST).
        """
        self.last_ns = time_ns
        found = ipv4_flow(skb.header_bytes)
        if found is not None:
            proto, key, ihl, tot_len = found
            if skb.shinfo.gso_segs > 1 or (tot_len == 0 and skb.shinfo.gso_size):
                tot_len = skb.len  # an aggregate: GRO rewrote tot_len to its length (iph_totlen())
            elif not ihl <= tot_len <= skb.len:
                # ip_rcv_core() drops it (PKT_TOO_SMALL, IP_INHDR): no IPv4 datagram as the kernel sees it
                found = None
        if found is not None:
            flow = self.by_key.get(key)
            if proto == IPPROTO_TCP:
                th = getattr(skb.cb, "th", None)
                flags = (th.flags >> 16) & 0xFF if th is not None else None
                parsed = tcp_v4_fill_cb(skb.header_bytes, 14 + ihl, tot_len - ihl, flags)
                if parsed is not None:
                    if flow is None or flow.closed:
                        flow = self.tcp_flow(key, cpu)
                    return self._tcp(flow, skb, time_ns, tot_len, parsed)
            elif proto == IPPROTO_UDP:
                if flow is None:
                    flow = self.udp_flow(key, cpu)
                return self._udp(flow, skb, time_ns), (flow.name,)
        flow = self.other or self.udp_flow(None, cpu)
        return self._udp(flow, skb, time_ns), (flow.name,)

    def _udp(self, flow: UdpFlow, skb, time_ns: int) -> str:
        flow.skbs += 1
        self.touched[id(flow)] = flow
        if udp_queue_rcv_skb(self.kernel, flow.sock, skb):
            flow.delivered += 1
            return "delivered"
        flow.dropped += 1
        return "dropped:socket_rcvbuf"

    def _tcp(self, flow: TcpFlow, skb, time_ns: int, tot_len: int, parsed) -> tuple[str, tuple]:
        cb, opt = parsed
        kernel = self.kernel
        net = flow.net
        net.now_us = max(net.now_us, time_ns // 1000)
        flags = cb.tcp_flags
        payload = (cb.end_seq - cb.seq) & U32
        if flags & TCPHDR_SYN and flow.sk is not None:
            # A new connection on the same addresses and ports: the old socket closes.
            self.close(flow)
            flow = self.tcp_flow(flow.key, flow.cpu)
        flow.skbs += 1
        if flags & TCPHDR_SYN:
            if flow.listener is None:
                syn = SynOptions(mss=opt.mss_clamp or 536, wscale=opt.snd_wscale, ts=opt.rcv_tsval is not None,
                                 sack=opt.sack_ok)
                self.listen(flow, time_ns, syn, cb.seq, (cb.ack_seq - 1) & U32 if flags & TCPHDR_ACK else 0,
                            opt.rcv_tsval or 0)
            return self._control(flow, skb, time_ns, cb)
        if flags & TCPHDR_RST:
            return self._control(flow, skb, time_ns, cb)
        if flow.sk is None:
            if flow.listener is None:
                # First seen in mid-stream: opened at this segment.
                syn = SynOptions(mss=MIDSTREAM_MSS, wscale=MIDSTREAM_WSCALE, ts=cb.tsval is not None, sack=False)
                self.listen(flow, time_ns, syn, (cb.seq - 1) & U32, (cb.ack_seq - 1) & U32, cb.tsval or 0)
            self.establish(flow, time_ns, cb.window)
        sk = flow.sk
        if flags & TCPHDR_FIN:
            # FIN is not modelled: its data is kept, the FIN itself ignored.
            cb.tcp_flags &= ~TCPHDR_FIN
            cb.end_seq = (cb.end_seq - 1) & U32
            payload -= 1
        if after(cb.ack_seq, sk.snd_nxt):
            sk.snd_nxt = sk.snd_una = cb.ack_seq  # what the real receiver sent, outside the model
        if payload:
            # a GRO aggregate or a GSO packet: its segments of gso_size (gso_segs is 0 in a DODGY one)
            gso_size = skb.shinfo.gso_size
            flow.segments += -(-payload // gso_size) if gso_size else 1
        rcv_nxt = sk.rcv_nxt
        seq = (cb.seq - flow.rcv_start) & U32
        skb.cb = cb
        reason = ip_local_deliver(kernel, skb, tot_len)
        route, verdict = tcp_v4_rcv_verdict(sk, skb) if reason is None else (None, f"dropped:{reason}")
        if sk.rcv_nxt != rcv_nxt:
            integral = flow.window_integral + flow.window * (time_ns - flow.window_since)
            flow.last_data_ns = time_ns
            flow.integral_at_last = integral
            if flow.first_data_ns is None:
                flow.first_data_ns = time_ns
                flow.integral_at_first = integral
        if not payload:
            outcome = "control"
            flow.control += 1
        elif verdict.startswith("dropped:"):
            outcome = verdict
            reason = verdict[8:]
            flow.dropped[reason] += 1
            self.tcp_drops += 1
            if flow.sender is None and reason not in OLD_DATA:
                flow.refused_count[reason] += 1
                flow.refused_bytes += payload
                if len(flow.refused) < REFUSED_LISTED:
                    flow.refused.append([round(time_ns / 1e6, 3), seq, payload, reason])
        else:
            outcome = "delivered"
            flow.delivered += 1
        if sk.sk_rmem_alloc > flow.rmem_peak:
            flow.rmem_peak = sk.sk_rmem_alloc
        self.touched[id(flow)] = flow
        self._after(flow, time_ns)
        return outcome, (flow.name, seq, payload, route, verdict, flow.window, sk.sk_rmem_alloc, sk.sk_rcvbuf)

    def _control(self, flow: TcpFlow, skb, time_ns: int, cb) -> tuple[str, tuple]:
        """A segment the model does not take through tcp_v4_rcv() (SYN, RST): freed."""
        flow.control += 1
        kfree_skb(self.kernel, skb)
        return "control", (flow.name, (cb.seq - flow.rcv_start) & U32, 0, None, None, flow.window, None, None)

    # -- after every step of a receiver: its ACKs, its timers, its series ---------------------------

    def _after(self, flow: TcpFlow, now_ns: int) -> None:
        sk = flow.sk
        acks = sk.acks
        if acks:
            wscale = sk.rx_opt_rcv_wscale
            sender = flow.sender
            for ack, window, tsval in acks:
                self._window(flow, now_ns, window << wscale)
                if sender is not None:
                    self.push(now_ns + self.rtt_ns, self.ACK, (sender, ack, window, tsval))
            acks.clear()
            self._sample(flow, now_ns)
        if sk.sk_rcvbuf > flow.rcvbuf_max:
            flow.rcvbuf_max = sk.sk_rcvbuf
        due = next_timer_us(sk)
        if due is not None and (flow.timer_due is None or due < flow.timer_due):
            flow.timer_due = due
            self.push(due * 1000, self.TIMER, flow)

    def _window(self, flow: TcpFlow, now_ns: int, window: int) -> None:
        """The receiver advertised ``window`` bytes at now_ns."""
        elapsed = now_ns - flow.window_since
        if elapsed > 0:
            flow.window_integral += flow.window * elapsed
            if flow.window < flow.mss:
                flow.small_ns += elapsed
                if flow.window == 0:
                    flow.zero_ns += elapsed
            flow.window_since = now_ns
        flow.window = window

    def _sample(self, flow: TcpFlow, now_ns: int) -> None:
        sk = flow.sk
        point = (now_ns, flow.window, sk.sk_rmem_alloc, sk.sk_rcvbuf, flow.bytes_received())
        flow.series.add(point)
        flow.json_series.add(point)

    def timer(self, flow: TcpFlow, now_ns: int) -> None:
        """A receiver's delayed-ACK (or compressed-ACK) timer is due."""
        now_us = now_ns // 1000
        if flow.timer_due != now_us or flow.closed:
            return
        flow.timer_due = None
        sk = flow.sk
        net = flow.net
        net.now_us = max(net.now_us, now_us)
        due = next_timer_us(sk)
        if due is not None and due <= net.now_us:
            with self.kernel.softirq(flow.cpu):
                run_timers(sk)
        self._after(flow, now_ns)

    # -- readers -----------------------------------------------------------------------------------

    def poll_end(self, end: int) -> None:
        """After a NAPI poll: wake the readers of the sockets that got something."""
        if not self.touched:
            return
        touched = list(self.touched.values())
        self.touched.clear()
        unlimited = self.app_rate is None
        for flow in touched:
            reader = flow.reader
            if not flow.queued():
                continue
            if unlimited:
                self.push(end, self.READ, flow)
            elif reader.waiting:
                reader.waiting = False
                self.push(max(end, reader.app_next), self.READ, flow)

    def read(self, flow, now_ns: int) -> None:
        """One read of the flow's application (unlimited: everything queued)."""
        kernel = self.kernel
        app_rate = self.app_rate
        reader = flow.reader
        if not flow.queued():
            reader.waiting = app_rate is not None
            return
        self.last_ns = now_ns
        with kernel.on_cpu(self.sim.app_cpu):
            if flow.protocol == "tcp":
                net = flow.net
                net.now_us = max(net.now_us, now_ns // 1000)
                flow.bytes_read += tcp_recvmsg(flow.sk, self.read_size)
            elif app_rate is None:
                while flow.sock.queued():
                    udp_recvmsg(kernel, flow.sock)
                    flow.datagrams_read += 1
            else:
                udp_recvmsg(kernel, flow.sock)
                flow.datagrams_read += 1
        if flow.protocol == "tcp":
            self._after(flow, now_ns)
        if app_rate is not None:
            reader.app_next = now_ns + int(1e9 / app_rate)
            self.push(reader.app_next, self.READ, flow)

    # -- the end -------------------------------------------------------------------------------------

    def rmem_total(self) -> int:
        """sk_rmem_alloc summed over the open sockets."""
        total = 0
        for flow in self.flows:
            if flow.closed:
                continue
            if flow.protocol == "tcp":
                total += flow.sk.sk_rmem_alloc if flow.sk is not None else 0
            else:
                total += flow.sock.rmem_alloc
        return total

    def queued_skbs(self):
        """Every skb queued on an open socket (receive, out-of-order and backlog queues)."""
        for flow in self.flows:
            if not flow.closed:
                yield from flow.queued_skbs()

    def close(self, flow: TcpFlow) -> None:
        """close() of a receiver: its queues freed, its figures kept."""
        if flow.closed:
            return
        now = self.sim.now
        if flow.sk is not None:
            self._window(flow, max(now, flow.window_since), flow.window)
            with self.kernel.on_cpu(flow.cpu):
                tcp_destroy(flow.sk)
        flow.closed = True
        self.by_key.pop(flow.key, None)

    def finish(self, end_ns: int) -> tuple[dict, list[dict], list]:
        """Close every socket: (the socket object of the run's JSON, the flows' reports, the plot series)."""
        reports = []
        series = []
        udp_report = {"rcvbuf": self.config.rcvbuf, "peak_rmem_alloc": 0, "queued_at_end": 0, "condensed": 0,
                      "drops": 0, "meminfo_at_end": None}
        meminfo_total: Counter[str] = Counter()
        for flow in self.flows:
            if flow.protocol == "tcp":
                reports.append(self._tcp_report(flow, end_ns))
                series.append((flow.name, flow.series.points))
                if not flow.closed and flow.sk is not None:
                    with self.kernel.on_cpu(flow.cpu):
                        tcp_destroy(flow.sk)
                flow.closed = True
                continue
            sock = flow.sock
            reports.append(flow.report())
            udp_report["peak_rmem_alloc"] = max(udp_report["peak_rmem_alloc"], sock.peak_rmem)
            udp_report["queued_at_end"] += sock.queued()
            udp_report["condensed"] += sock.condensed
            udp_report["drops"] += sock.drops.get("socket_rcvbuf", 0)
            meminfo_total.update(sk_get_meminfo(sock))
            udp_destroy_sock(self.kernel, sock)
        # SO_MEMINFO summed over the UDP sockets, but the limits: each one's.
        meminfo = {key: meminfo_total[key] for key in SK_MEMINFO_FIELDS}
        meminfo["rcvbuf"] = self.config.rcvbuf
        meminfo["sndbuf"] = WMEM_DEFAULT
        udp_report["meminfo_at_end"] = meminfo
        return udp_report, reports, series

    def _tcp_report(self, flow: TcpFlow, end_ns: int) -> dict:
        sk = flow.sk
        net = flow.net
        if sk is None:
            received = 0
        else:
            received = flow.bytes_received()
            if not flow.closed:
                self._window(flow, max(end_ns, flow.window_since), flow.window)
        rtt_ns = self.rtt_ns
        if rtt_ns is None and sk is not None and sk.rcv_rtt_est_rtt_us:
            rtt_ns = (sk.rcv_rtt_est_rtt_us >> 3) * 1000
        duration = None
        if flow.first_data_ns is not None:
            duration = flow.last_data_ns - flow.first_data_ns + (self.rtt_ns or 0)
        throughput = window_bound = None
        if duration:
            throughput = round(received * 8 / duration * 1000, 3)  # bits per ns * 1000 = Mbit/s
            span = flow.last_data_ns - flow.first_data_ns
            mean_window = (flow.integral_at_last - flow.integral_at_first) / span if span else flow.window
            if rtt_ns:
                window_bound = round(mean_window * 8 / rtt_ns * 1000, 3)
        counters = {name: net.mib[name] for name in TCPEXT}
        report = {
            "flow": flow.name,
            "protocol": "tcp",
            "cpu": flow.cpu,
            "skbs": flow.skbs,
            "segments": flow.segments,
            "delivered": flow.delivered,
            "dropped": dict(sorted(flow.dropped.items())),
            "control": flow.control,
            "bytes_received": received,
            "bytes_read": flow.bytes_read,
            "duration_ms": None if duration is None else round(duration / 1e6, 6),
            "throughput_mbps": throughput,
            "rtt_ms": None if rtt_ns is None else round(rtt_ns / 1e6, 6),
            "window_bound_mbps": window_bound,
            "zero_window_ms": round(flow.zero_ns / 1e6, 6),
            "window_below_mss_ms": round(flow.small_ns / 1e6, 6),
            "mss": flow.mss,
            "window_at_end": flow.window,
            "rcvbuf": {"initial": flow.rcvbuf_initial, "max": flow.rcvbuf_max,
                       "at_end": sk.sk_rcvbuf if sk is not None else 0},
            "rmem_alloc": {"peak": flow.rmem_peak, "at_end": sk.sk_rmem_alloc if sk is not None else 0},
            "collapse_copied_bytes": sk.collapse_copied if sk is not None else 0,
            "counters": counters,
            "series": [dict(zip(SERIES_KEYS, (round(p[0] / 1e6, 6),) + p[1:])) for p in flow.json_series.points],
        }
        if flow.sender is None:
            report["refused"] = {"segments": sum(flow.refused_count.values()), "bytes": flow.refused_bytes,
                                 "by_reason": dict(sorted(flow.refused_count.items())), "first": flow.refused}
        else:
            sender = flow.sender
            report["sender"] = {"frames": sender.frames, "segments": sender.segments, "bytes": sender.bytes_sent,
                                "retransmits": sender.retransmits, "window_probes": sender.window_probes,
                                "zero_window_probes": sender.zero_window_probes}
        return report
