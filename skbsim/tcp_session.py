"""One receiving TCP socket played against a scripted peer: the library behind ``skbsim tcp``.

``play(kernel, driver, options, steps, ...)`` opens one RX queue of the
driver on a fresh model kernel, makes a listening IPv4 socket (SO_RCVBUF
before listen() when ``so_rcvbuf`` is given), lets the peer open a
connection with the SYN options ``syn``, then plays the steps (see
skbsim.tcp_steps) and returns one JSON-ready dict per kernel:

``{"kernel", "driver", "options", "synack": {"win", "wscale", "mss"}, "steps": [record, ...]}``

Each record has the keys ``i``, ``action``, ``payload``, ``frame_len``,
``truesize``, ``route``, ``verdict``, ``acks``, ``mem``, ``info`` and
``counters`` (and ``explain`` with explain=True).  docs/tcp.md defines every
key, the timing rules (when segments arrive, when a record's figures are
taken, which ACKs belong to which record) and the peer's behaviour;
docs/schema/tcp.schema.json is the same as a JSON Schema.  skbsim validate
--tcp plays the same steps against the running kernel and compares.
"""

from __future__ import annotations

import struct

from skbsim.drivers import get_driver
from skbsim.drivers.base import parse_options
from skbsim.errors import InputError
from skbsim.kernel import Kernel
from skbsim.net.core_sock import lock_sock, release_sock
from skbsim.net.ipv4.ip_input import ip_local_deliver
from skbsim.net.ipv4.tcp import (
    TCPHDR_ACK,
    TCPHDR_PSH,
    TCPHDR_SYN,
    U32,
    tcp_destroy,
    tcp_get_info,
    tcp_recvmsg,
    tcp_skb_cb,
    tcp_sock,
    sk_get_meminfo,
)
from skbsim.net.ipv4.tcp_cong import tcp_ca_find
from skbsim.net.ipv4.tcp_ipv4 import net_ns, read_host_sysctls, tcp_v4_rcv_verdict
from skbsim.net.ipv4.tcp_minisocks import tcp_conn_request, tcp_listen_sock, tcp_passive_establish
from skbsim.net.ipv4.tcp_timer import next_timer_us, run_timers
from skbsim.net.napi import NAPI_POLL_WEIGHT, napi_struct, net_device
from skbsim.net.skbuff import kfree_skb
from skbsim.profile import load_profile
from skbsim.tcp_explain import explain_lines
from skbsim.tcp_steps import DEFAULT_SYN, SEGMENT_OVERHEAD, Step, SynOptions
from skbsim.traffic.frame import SYNTHETIC_DST_MAC, SYNTHETIC_SRC_MAC, Frame

#: Simulated time between two segments of one send step (docs/tcp.md, "Timing").
SEGMENT_US = 1000
#: The default length of a step, and of a bare ``wait``.
STEP_MS = 250

#: TcpExt counters every record carries, cumulative from the start of the scenario.
COUNTERS = (
    "PruneCalled",
    "RcvPruned",
    "TCPRcvCollapsed",
    "TCPRcvCoalesce",
    "TCPBacklogCoalesce",
    "TCPRcvQDrop",
    "TCPZeroWindowDrop",
    "TCPWantZeroWindowAdv",
    "TCPToZeroWindowAdv",
    "TCPFromZeroWindowAdv",
    "TCPBacklogDrop",
    "TCPOFOQueue",
)
#: SO_MEMINFO fields every record carries (include/uapi/linux/sock_diag.h names).
MEM_KEYS = ("rmem_alloc", "rcvbuf", "fwd_alloc", "backlog", "drops")
#: tcp_info fields (and window_clamp, scaling_ratio) every record carries.
INFO_KEYS = ("rcv_wscale", "rcv_mss", "rcv_ssthresh", "advmss", "rcv_space", "rcv_wnd", "window_clamp",
             "scaling_ratio")
#: Keys of every step record, in order.
RECORD_KEYS = ("i", "action", "payload", "frame_len", "truesize", "route", "verdict", "acks", "mem", "info",
               "counters")
#: Routes a segment takes into the socket.
ROUTES = ("fast", "slow", "backlog", "ofo")


#: The peer's and the receiver's initial sequence numbers (any values would do: ACK numbers are reported
#: relative to the peer's ISN + 1).
PEER_ISN = 0x1000_0000
RECEIVER_ISN = 0x7000_0000
#: The simulated clock when the first step begins (a multiple of every 1/HZ period, so a jiffies tick
#: falls 250 us before it), and when the handshake's SYN (and SYN-ACK) and final ACK come before it.
T0_US = 10_000_000
SYN_US = T0_US - 2050
FINAL_ACK_US = T0_US - 2000
#: The peer's raw window field, in every segment.
PEER_WINDOW = 65535
#: The peer's address and port, and the receiver's (TEST-NET addresses).
PEER_ADDR = bytes((198, 18, 0, 1))
RECEIVER_ADDR = bytes((192, 0, 2, 1))
PEER_PORT = 40000
RECEIVER_PORT = 5000


def segment_frame(length: int, tot_len: int, seq: int, ack: int, flags: int, doff: int) -> Frame:
    """An Ethernet + IPv4 + TCP frame of ``length`` bytes whose datagram is tot_len bytes (the rest is padding)."""
    eth = SYNTHETIC_DST_MAC + SYNTHETIC_SRC_MAC + struct.pack(">H", 0x0800)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, tot_len, 0, 0x4000, 64, 6, 0, PEER_ADDR, RECEIVER_ADDR)
    tcp = struct.pack(">HHIIBBHHH", PEER_PORT, RECEIVER_PORT, seq, ack, (doff // 4) << 4, flags, PEER_WINDOW, 0, 0)
    header = (eth + ip + tcp)[:min(length, 128)]
    return Frame(length, 0, None, 0, 0, header)


class _Record:
    """A step record being filled: its event's fields, and where its ACKs and explanations start."""

    __slots__ = ("fields", "ack_start", "event_start")

    def __init__(self, fields: dict, ack_start: int, event_start: int):
        self.fields = fields
        self.ack_start = ack_start
        self.event_start = event_start


class TcpSession:
    """One receiving socket behind one driver on one model kernel, played step by step (see :func:`play`)."""

    def __init__(self, kernel: str, driver: str, options: dict, *, so_rcvbuf: int | None, cc: str,
                 syn: SynOptions, step_ms: int, explain: bool, kernel_config: str | None, segment_us: int):
        if step_ms < 0:
            raise InputError(f"step_ms must not be negative, got {step_ms}")
        if segment_us < 1:
            raise InputError(f"segment_us {segment_us} must be at least 1")
        profile = load_profile(kernel, kernel_config)
        self.kernel = Kernel(profile)
        self.net = net_ns(profile)
        if kernel == "host":
            read_host_sysctls(self.net)
        self.driver = get_driver(driver)
        self.options = {key: str(value) for key, value in (options or {}).items()}
        self.option_values = parse_options(driver, self.driver.options, self.options)
        self.syn = syn
        self.step_us = step_ms * 1000
        self.segment_us = segment_us
        self.explain = explain
        self.ca_ops = tcp_ca_find(cc)
        if so_rcvbuf is not None and not 0 <= so_rcvbuf <= 0x7FFFFFFF:
            raise InputError(f"--so-rcvbuf {so_rcvbuf} is outside 0..2147483647")
        self.so_rcvbuf = so_rcvbuf
        self.dev = net_device(driver + "0")
        self.napi = napi_struct(self.dev)
        self.queue = None
        self.sk: tcp_sock | None = None
        self.records: list[dict] = []
        self.open: _Record | None = None
        self.readeach = False
        self.held = False
        self.peer_seq = (PEER_ISN + 1) & U32
        self.handshake_events: list = []

    # -- the peer's frames -----------------------------------------------------------------------

    def _tcp_header_len(self) -> int:
        return 32 if self.syn.ts else 20

    def frame_len(self, payload: int, frame_len: int | None) -> int:
        natural = SEGMENT_OVERHEAD + (self._tcp_header_len() - 20) + payload
        return max(natural, frame_len or 0)

    def check_frame(self, step: Step) -> None:
        """Refuse a segment the driver cannot take, with the limits (one line)."""
        tcp_len = self._tcp_header_len()
        if 20 + tcp_len + step.payload > 65535:
            raise InputError(f"step {step.text()!r}: P {step.payload} with a {tcp_len}-byte TCP header makes an IPv4 "
                             f"datagram above 65535 bytes (P at most {65535 - 20 - tcp_len})")
        length = self.frame_len(step.payload, step.frame_len)
        if self.driver.name == "ntb":
            limit = self.option_values["mtu"] + 14
            if length > limit:
                raise InputError(f"step {step.text()!r}: a {length}-byte frame is longer than ntb's {limit}-byte "
                                 f"receive buffers (mtu {self.option_values['mtu']} + 14)")

    def _deliver_frame(self, frame: Frame, cb: tcp_skb_cb, tot_len: int, handler) -> None:
        """The peer's frame through the driver (its write, or the transport's copy) to handler(skb)."""
        kernel = self.kernel
        with kernel.on_cpu(self.napi.cpu):
            if not self.driver.nic_receive(kernel, self.queue, frame):
                errors = getattr(self.queue, "write_errors", None)
                why = f" ({', '.join(errors)})" if errors else ""
                raise InputError(f"the {self.driver.name} driver of {kernel.profile.name} refused a {frame.length}-byte "
                                 f"frame{why}")
        delivered = []
        with kernel.softirq(self.napi.cpu):
            self.driver.poll(kernel, self.queue, NAPI_POLL_WEIGHT, delivered.append)
            for skb in delivered:
                skb.cb = cb
                reason = ip_local_deliver(kernel, skb, tot_len)
                if reason is not None:
                    raise InputError(f"the {self.driver.name} driver of {kernel.profile.name} built an skb whose IP "
                                     f"header could not be pulled into its head ({reason})")
                handler(skb)

    # -- set-up ------------------------------------------------------------------------------------

    def open_connection(self) -> dict:
        """Open the driver's queue, listen, and let the peer connect; returns the SYN-ACK's figures."""
        kernel = self.kernel
        net = self.net
        self.queue = self.driver.open_queue(kernel, self.dev, self.napi, self.options)
        if hasattr(self.queue, "stack_orphans"):
            self.queue.stack_orphans = True
        mtu = self.dev.mtu
        listener = tcp_listen_sock(kernel, net, self.ca_ops, RECEIVER_ISN, self.so_rcvbuf,
                                   events=self.handshake_events if self.explain else None)
        syn = self.syn
        tcp_len = self._tcp_header_len()
        # The SYN: through the driver, then the listener answers it.
        net.now_us = SYN_US
        syn_len = 14 + 20 + 20 + _syn_options_len(syn)
        self._deliver_frame(segment_frame(syn_len, syn_len - 14, PEER_ISN, 0, TCPHDR_SYN, syn_len - 34),
                            tcp_skb_cb(PEER_ISN, (PEER_ISN + 1) & U32, 0, TCPHDR_SYN, syn_len - 34, PEER_WINDOW),
                            syn_len - 14, lambda skb: kfree_skb(kernel, skb))
        req, synack = tcp_conn_request(listener, syn, PEER_ISN, mtu)
        # The final ACK, 50 us later (the live peer answers at once).
        net.now_us = FINAL_ACK_US
        ack_len = 14 + 20 + tcp_len
        self._deliver_frame(segment_frame(ack_len, ack_len - 14, self.peer_seq, (RECEIVER_ISN + 1) & U32, TCPHDR_ACK,
                                          tcp_len),
                            tcp_skb_cb(self.peer_seq, self.peer_seq, (RECEIVER_ISN + 1) & U32, TCPHDR_ACK, tcp_len,
                                       PEER_WINDOW),
                            ack_len - 14, lambda skb: kfree_skb(kernel, skb))
        sk = tcp_passive_establish(listener, req, mtu, "accepted")
        sk.events = [] if self.explain else None
        self.sk = sk
        return synack

    # -- records -----------------------------------------------------------------------------------

    def advance(self, t_us: int) -> None:
        """Let simulated time reach t_us, firing the socket's timers on the way."""
        sk = self.sk
        net = self.net
        while True:
            due = next_timer_us(sk)
            if due is None or due > t_us:
                break
            net.now_us = max(net.now_us, due)
            with self.kernel.softirq(self.napi.cpu):
                run_timers(sk)
        net.now_us = max(net.now_us, t_us)

    def begin(self, t_us: int, action: str, **fields) -> None:
        """A new record at t_us: time runs to it (timers fire for the previous record), which then closes."""
        self.advance(t_us)
        self.close()
        sk = self.sk
        record = {"i": len(self.records), "action": action, "payload": None, "frame_len": None, "truesize": None,
                  "route": None, "verdict": None}
        record.update(fields)
        self.open = _Record(record, len(sk.acks), len(sk.events) if sk.events is not None else 0)

    def close(self) -> None:
        """Take the open record's figures now and file it."""
        rec = self.open
        if rec is None:
            return
        sk = self.sk
        record = rec.fields
        base = (PEER_ISN + 1) & U32
        record["acks"] = [[(ack - base) & U32, window] for ack, window, _tsval in sk.acks[rec.ack_start:]]
        record["mem"] = sk_get_meminfo(sk)
        record["info"] = tcp_get_info(sk)
        record["counters"] = {name: self.net.mib[name] for name in COUNTERS}
        if self.explain:
            events = sk.events[rec.event_start:]
            if not self.records:
                events = self.handshake_events + events
            record["explain"] = explain_lines(events)
        self.records.append(record)
        self.open = None

    # -- steps -------------------------------------------------------------------------------------

    def send_segment(self, t_us: int, payload: int, frame_len: int | None) -> None:
        sk = self.sk
        length = self.frame_len(payload, frame_len)
        self.begin(t_us, "send", payload=payload, frame_len=length)
        tcp_len = self._tcp_header_len()
        seq = self.peer_seq
        self.peer_seq = (seq + payload) & U32
        tsval = tsecr = None
        if self.syn.ts:
            tsval = (self.net.now_us // 1000 + 1_000_000) & U32
            tsecr = sk.last_tsval_sent
        cb = tcp_skb_cb(seq, self.peer_seq, (RECEIVER_ISN + 1) & U32, TCPHDR_ACK | TCPHDR_PSH, tcp_len, PEER_WINDOW,
                        tsval, tsecr)
        record = self.open.fields

        def receive(skb) -> None:
            record["truesize"] = skb.truesize
            record["route"], record["verdict"] = tcp_v4_rcv_verdict(sk, skb)

        self._deliver_frame(segment_frame(length, 20 + tcp_len + payload, seq, cb.ack_seq, cb.tcp_flags, tcp_len),
                            cb, 20 + tcp_len + payload, receive)

    def read(self, t_us: int, nbytes: int | None) -> None:
        self.begin(t_us, "read")
        with self.kernel.on_cpu(self.napi.cpu):
            self.open.fields["payload"] = tcp_recvmsg(self.sk, nbytes)

    def play_steps(self, steps: list[Step]) -> None:
        t = T0_US
        for step in steps:
            duration = self.step_us if step.action != "wait" or step.ms is None else step.ms * 1000
            action = step.action
            if action == "send":
                self.check_frame(step)
                for j in range(step.count):
                    when = t + j * self.segment_us
                    self.send_segment(when, step.payload, step.frame_len)
                    if self.readeach and not self.held:
                        self.read(when, None)
                duration = max(duration, step.count * self.segment_us)
            elif action == "read":
                self.read(t, step.nbytes)
            else:
                self.begin(t, action)
                if action == "readeach":
                    self.readeach = True
                elif action == "hold":
                    lock_sock(self.sk)
                    self.held = True
                elif action == "release":
                    with self.kernel.softirq(self.napi.cpu):
                        release_sock(self.sk)
                    self.held = False
            t += duration
        self.advance(t)
        self.close()

    def teardown(self) -> None:
        """Close the socket and the driver; the leak check must then be clean."""
        kernel = self.kernel
        with kernel.on_cpu(self.napi.cpu):
            if self.sk is not None:
                tcp_destroy(self.sk)
            if self.queue is not None:
                self.driver.close_queue(kernel, self.queue)
        report = kernel.leak_check()
        if not report.clean:
            detail = "; ".join(report.lines()[:5])
            raise AssertionError(f"{report.summary()} after the TCP scenario on {kernel.profile.name}: {detail}")


def _syn_options_len(syn: SynOptions) -> int:
    """Bytes of the peer's SYN options as Linux lays them out: MSS 4, SACK-permitted and timestamps
    (10 + 2, or NOP NOP + 10, or SACK-permitted with NOPs 4), NOP + window scale 4."""
    length = 4
    if syn.ts:
        length += 12
    elif syn.sack:
        length += 4
    if syn.wscale is not None:
        length += 4
    return length


def play(
    kernel: str,
    driver: str,
    options: dict,
    steps: list[Step],
    *,
    so_rcvbuf: int | None = None,
    cc: str = "cubic",
    syn: SynOptions = DEFAULT_SYN,
    step_ms: int = STEP_MS,
    explain: bool = False,
    kernel_config: str | None = None,
    segment_us: int = SEGMENT_US,
) -> dict:
    """Play ``steps`` against one receiving socket on ``kernel`` behind ``driver``.

    ``kernel`` is a profile name, a profile .toml or "host" (its TCP sysctls
    - rmem_max, tcp_rmem, tcp_wmem - and HZ then come from the running
    kernel); ``options`` the driver options (``{"copybreak": "3646"}``);
    ``so_rcvbuf`` the SO_RCVBUF value set on the listener before listen()
    (None: not set); ``cc`` the congestion control, "cubic" or "bbr" (it
    decides sk_sndbuf, and with it the backlog limit).  Returns the
    per-kernel dict described in the module docstring.  Bad input raises
    InputError; the kernel's leak check runs at the end and a leak raises
    AssertionError (a model bug).
    """
    session = TcpSession(kernel, driver, options, so_rcvbuf=so_rcvbuf, cc=cc, syn=syn, step_ms=step_ms,
                         explain=explain, kernel_config=kernel_config, segment_us=segment_us)
    try:
        synack = session.open_connection()
        session.play_steps(steps)
    except BaseException:
        try:
            session.teardown()
        except AssertionError:
            pass  # the first error is the one to report
        raise
    session.teardown()
    return {
        "kernel": session.kernel.profile.name,
        "driver": session.driver.name,
        "options": dict(session.option_values),
        "synack": synack,
        "steps": session.records,
    }
