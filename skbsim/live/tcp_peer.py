"""A TCP peer in Python that talks raw TCP to one receiving socket of the live kernel.

The receiver is an ordinary socket: a listener in a network namespace of
our own (skbsim.live.tap), with SO_RCVBUF set before listen() when the
scenario asks and the congestion-control module chosen by TCP_CONGESTION,
and the socket accept() returns.  The peer is this module: it writes
Ethernet/IPv4/TCP frames into the namespace's TAP (blocking writes, so each
write is one skb built by tun_alloc_skb() and delivered by
netif_receive_skb() before write() returns) and reads the receiver's
segments back from the same TAP fd.

One scenario (:func:`run_scenario`) follows docs/tcp.md, the contract the
model (skbsim.tcp_session.play) keeps too:

* the handshake at the model's times (SYN at t = -2050 us, final ACK at
  -2000 us): a SYN with the chosen options (MSS, window scale, timestamps,
  SACK-permitted) in Linux's layout, the SYN-ACK read back (its raw window,
  wscale and MSS are ``synack``), the final ACK, accept();
* ``send:P[xN][@F]``: N in-order segments of P payload bytes, 1 ms apart,
  ACK|PSH, each frame padded after the IP datagram to at least F bytes, so
  the skb's truesize follows F while ip_rcv_core() trims skb->len; with
  timestamps the aligned NOP,NOP,TS the fast path expects, TSval the peer's
  millisecond clock at the segment's scheduled time, TSecr the receiver's
  latest TSval;
* ``read`` (one recvmsg() large enough for the whole queue) and ``read:B``
  by the application; ``readeach``: a read after every later segment, at
  its time; ``wait:MS``: time passes.  Every step is one record, every
  segment and every read too.

Time.  Every event is played at its scheduled time on CLOCK_MONOTONIC, t = 0
being 50 us after a jiffies tick (:func:`next_tick`), so delayed-ACK timers
fall between the same records in every run.  A record's ACKs are those read
from the TAP until the next event; its figures are read just before the next
event.  ``late_us`` says how far behind its time each event came.

Figures: SO_MEMINFO, TCP_INFO (decoded by its BTF layout), TCP_WINDOW_CLAMP,
``tp->scaling_ratio`` from a copy of the struct tcp_sock (skbsim.live.bpf)
and the TcpExt counters of the namespace's /proc/net/netstat less their
values before the SYN.  A segment's truesize is the one
net/netif_receive_skb_entry reports for its skb; a drop is the skb/kfree_skb
event for that skb on this socket, with the kernel's drop reason; both come
from a tracefs instance of our own.  The route and the queued/coalesced
verdict follow from the counters around the record (:meth:`LivePeer.finish`).
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import os
import select
import socket
import struct
import time
from collections.abc import Iterable, Iterator, Sequence

import dpkt

from skbsim.errors import InputError
from skbsim.live.bpf import TcpSockLayout, TcpSockReader
from skbsim.live.btf import DEFAULT_VMLINUX_BTF, BtfFile
from skbsim.live.probe import so_meminfo
from skbsim.live.tap import ETH_HLEN, Netns, NetnsThread, Tap
from skbsim.live.tracefs import TRACEFS_ROOT, TraceInstance, ensure_tracefs, sigterm_as_interrupt
from skbsim.tcp_session import (
    COUNTERS, FINAL_ACK_US, INFO_KEYS, MEM_KEYS, PEER_ISN, PEER_WINDOW, SEGMENT_US, STEP_MS, SYN_US, T0_US,
)
from skbsim.tcp_steps import DEFAULT_SYN, Step, SynOptions

RECEIVER_IP = "10.211.0.1"
PEER_IP = "10.211.0.2"
PEER_MAC = bytes.fromhex("020000534b43")
RECEIVER_PORT = 5001
PEER_PORT = 40001
IP_HEADER_LEN = 20
TCP_HEADER_LEN = 20

# include/uapi/linux/tcp.h, asm-generic/socket.h
TCP_WINDOW_CLAMP = 10
TCP_INFO = 11
TCP_CONGESTION = 13
# TCP option kinds (RFC 9293, 7323, 2018)
TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS, TCPOPT_WSCALE, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP = 0, 1, 2, 3, 4, 8
TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x02, 0x04, 0x08, 0x10
#: The record's ``info`` keys that TCP_INFO gives (struct tcp_info members without tcpi_); the
#: other two come from TCP_WINDOW_CLAMP and from struct tcp_sock.
TCP_INFO_FIELDS = tuple(key for key in INFO_KEYS if key not in ("window_clamp", "scaling_ratio"))
#: TcpExt counters read to tell a segment's route (not reported).
_ROUTE_COUNTERS = ("TCPHPHits", "TCPOFOQueue", "TCPOFODrop", "TCPOFOMerge", "TCPRcvCoalesce")

#: struct tcp_sock members read from the BPF copy: scaling_ratio for ``info``; the rest explain a
#: record (``timeline``).
TCP_SOCK_FIELDS = {
    "scaling_ratio": "scaling_ratio",
    "window_clamp": "window_clamp",
    "rcv_ssthresh": "rcv_ssthresh",
    "rcv_wnd": "rcv_wnd",
    "rcv_nxt": "rcv_nxt",
    "rcv_wup": "rcv_wup",
    "copied_seq": "copied_seq",
    "rcvq_space": "rcvq_space.space",
    "rcv_rtt_us": "rcv_rtt_est.rtt_us",
    "srtt_us": "srtt_us",
    "ack_pending": "inet_conn.icsk_ack.pending",
    "ack_quick": "inet_conn.icsk_ack.quick",
    "ack_pingpong": "inet_conn.icsk_ack.pingpong",
    "ack_ato": "inet_conn.icsk_ack.ato",
    "ack_rcv_mss": "inet_conn.icsk_ack.rcv_mss",
    "sk_rcvbuf": "inet_conn.icsk_inet.sk.sk_rcvbuf",
}

ACK_WAIT_LIMIT_S = 2.0
#: The read buffer: "large enough" for everything a receive queue can hold (tcp_rmem[2] is 32 MiB).
READ_BUFFER = 64 << 20
#: Where t = 0 lies: this long after a jiffies tick.  Timers (the delayed ACK) and ato's estimate
#: count jiffies, so where the ticks fall among the events decides which record a timer's ACK
#: belongs to; with t = 0 at 50 us after a tick, ticks come at t = -50 us + k * 1e6 / HZ, never
#: within the ~0.95 ms after an event at a whole millisecond in which the peer plays it (a read
#: under readeach comes 0.2-1 ms after its segment, the time the segment's figures take to read).
#: The model puts its ticks at t = -250 us; for events at whole milliseconds that is the same.
#: The timestamps' millisecond clock (tcp_clock_ms()) turns with CLOCK_MONOTONIC's milliseconds;
#: here the ticks fall ~10 us after those, so t = 0 is also just after a millisecond boundary.
TICK_PHASE_S = 0.00005
CLOCK_MONOTONIC_COARSE = 6  # linux/time.h; Python's time module does not name it
#: The handshake before t = 0, where the model has it, and how far ahead of now t = 0 is chosen so
#: that the listener is up before the SYN's time.
SYN_BEFORE_S = (T0_US - SYN_US) / 1e6
ACK_BEFORE_S = (T0_US - FINAL_ACK_US) / 1e6
HANDSHAKE_LEAD_S = 0.01
#: The last stretch before an event is spun rather than slept.
SPIN_S = 0.0003
REALTIME_PRIORITY = 10
#: Receive-side sysctls of the namespace, reported with each run.
SYSCTLS = ("net.ipv4.tcp_rmem", "net.core.rmem_max", "net.core.rmem_default", "net.ipv4.tcp_moderate_rcvbuf",
           "net.ipv4.tcp_adv_win_scale", "net.ipv4.tcp_app_win")


# ------------------------------------------------------------------------------------------ packets


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum of 16-bit words (odd length padded with a zero byte)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_options(*, mss: int | None, wscale: int | None, timestamps: tuple[int, int] | None,
                sack_permitted: bool) -> bytes:
    """A SYN's options, laid out as Linux lays out its own (tcp_options_write()):
    MSS; SACK-permitted folded into the timestamp's padding or NOP,NOP,SACK_PERM;
    NOP,NOP,TS; NOP,WSCALE; padded to a multiple of four with NOPs."""
    options = b""
    if mss is not None:
        options += struct.pack("!BBH", TCPOPT_MSS, 4, mss)
    if timestamps is not None:
        lead = struct.pack("!BB", TCPOPT_SACK_PERM, 2) if sack_permitted else bytes((TCPOPT_NOP, TCPOPT_NOP))
        options += lead + struct.pack("!BBII", TCPOPT_TIMESTAMP, 10, *timestamps)
    elif sack_permitted:
        options += bytes((TCPOPT_NOP, TCPOPT_NOP, TCPOPT_SACK_PERM, 2))
    if wscale is not None:
        options += bytes((TCPOPT_NOP, TCPOPT_WSCALE, 3, wscale))
    return options


def timestamp_option(tsval: int, tsecr: int) -> bytes:
    """NOP, NOP, TS: the 12-byte aligned form (tcp_parse_aligned_timestamp())."""
    return bytes((TCPOPT_NOP, TCPOPT_NOP)) + struct.pack("!BBII", TCPOPT_TIMESTAMP, 10, tsval, tsecr)


def tcp_frame(*, dst_mac: bytes, src_mac: bytes, src_ip: str, dst_ip: str, sport: int, dport: int,
              seq: int, ack: int, flags: int, window: int, options: bytes = b"", payload: bytes = b"",
              ip_id: int = 0, min_frame_len: int = 0) -> bytes:
    """One Ethernet frame with an IPv4/TCP segment, both checksums right, zero-padded after the
    IP datagram up to *min_frame_len* bytes (the receiver's IP layer trims the padding)."""
    if len(options) % 4 or len(options) > 40:
        raise InputError(f"TCP options of {len(options)} bytes (need a multiple of 4, at most 40)")
    segment = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF,
                           flags=flags, win=window, opts=options, data=payload)
    segment.off = (TCP_HEADER_LEN + len(options)) // 4
    datagram = dpkt.ip.IP(src=ipaddress.IPv4Address(src_ip).packed, dst=ipaddress.IPv4Address(dst_ip).packed,
                          p=dpkt.ip.IP_PROTO_TCP, ttl=64, id=ip_id & 0xFFFF, df=1, data=segment)
    frame = dst_mac + src_mac + struct.pack("!H", dpkt.ethernet.ETH_TYPE_IP) + bytes(datagram)
    return frame + bytes(max(0, min_frame_len - len(frame)))


class TcpSegment:
    """The parts of a received TCP segment the peer needs."""

    __slots__ = ("src", "dst", "sport", "dport", "seq", "ack", "flags", "window", "options",
                 "payload_len", "checksums_ok")

    def __init__(self, src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
                 window: int, options: dict[int, object], payload_len: int, checksums_ok: bool) -> None:
        self.src, self.dst, self.sport, self.dport = src, dst, sport, dport
        self.seq, self.ack, self.flags, self.window = seq, ack, flags, window
        self.options = options
        self.payload_len = payload_len
        self.checksums_ok = checksums_ok

    @property
    def mss(self) -> int | None:
        raw = self.options.get(TCPOPT_MSS)
        return struct.unpack("!H", raw)[0] if raw is not None else None  # type: ignore[arg-type]

    @property
    def wscale(self) -> int | None:
        raw = self.options.get(TCPOPT_WSCALE)
        return raw[0] if raw is not None else None  # type: ignore[index]

    @property
    def timestamps(self) -> tuple[int, int] | None:
        raw = self.options.get(TCPOPT_TIMESTAMP)
        return struct.unpack("!II", raw) if raw is not None else None  # type: ignore[arg-type]

    @property
    def sack_permitted(self) -> bool:
        return TCPOPT_SACK_PERM in self.options


def parse_tcp_options(raw: bytes) -> dict[int, bytes]:
    """``{kind: option data}`` of a TCP header's options (EOL ends, NOP skipped)."""
    options: dict[int, bytes] = {}
    for kind, data in dpkt.tcp.parse_opts(raw):
        if kind == TCPOPT_EOL:
            break
        if kind != TCPOPT_NOP:
            options[kind] = data
    return options


def parse_frame(frame: bytes) -> TcpSegment | None:
    """An Ethernet/IPv4/TCP frame -> :class:`TcpSegment`; None for anything else."""
    if len(frame) < ETH_HLEN + IP_HEADER_LEN + TCP_HEADER_LEN:
        return None
    if struct.unpack_from("!H", frame, 12)[0] != dpkt.ethernet.ETH_TYPE_IP:
        return None
    ip_bytes = frame[ETH_HLEN:]
    header_len = (ip_bytes[0] & 0x0F) * 4
    total_len = struct.unpack_from("!H", ip_bytes, 2)[0]
    if ip_bytes[0] >> 4 != 4 or ip_bytes[9] != dpkt.ip.IP_PROTO_TCP or total_len > len(ip_bytes):
        return None
    ip_bytes = ip_bytes[:total_len]
    tcp_bytes = ip_bytes[header_len:]
    try:
        segment = dpkt.tcp.TCP(tcp_bytes)
    except dpkt.UnpackError:
        return None
    pseudo = ip_bytes[12:20] + struct.pack("!BBH", 0, dpkt.ip.IP_PROTO_TCP, len(tcp_bytes))
    checksums_ok = internet_checksum(ip_bytes[:header_len]) == 0 and internet_checksum(pseudo + tcp_bytes) == 0
    return TcpSegment(str(ipaddress.IPv4Address(ip_bytes[12:16])), str(ipaddress.IPv4Address(ip_bytes[16:20])),
                      segment.sport, segment.dport, segment.seq, segment.ack, segment.flags, segment.win,
                      parse_tcp_options(segment.opts), len(segment.data), checksums_ok)


# ------------------------------------------------------------------------------------------ the socket side


class TcpInfoLayout:
    """struct tcp_info of the running kernel, decoded by its BTF member offsets."""

    __slots__ = ("size", "members")

    def __init__(self, btf: BtfFile, fields: Sequence[str] = TCP_INFO_FIELDS) -> None:
        self.size = btf.struct_size("tcp_info")
        self.members = {name: btf.member("tcp_info", f"tcpi_{name}") for name in fields}

    def decode(self, raw: bytes) -> dict[str, int]:
        if len(raw) < self.size:
            raise InputError(f"TCP_INFO returned {len(raw)} bytes; this kernel's struct tcp_info has {self.size}")
        return {name: member.read(raw) for name, member in self.members.items()}


def open_netstat() -> int:
    """An fd of /proc/net/netstat of the calling thread's namespace (the file keeps that namespace,
    so any thread can read it afterwards with :func:`read_tcpext`)."""
    return os.open("/proc/thread-self/net/netstat", os.O_RDONLY | os.O_CLOEXEC)


def read_tcpext(fd: int) -> dict[str, int]:
    """The TcpExt counters, read afresh from an fd of :func:`open_netstat`."""
    lines = os.pread(fd, 1 << 16, 0).decode().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:])))
    raise InputError("/proc/net/netstat has no TcpExt lines")


def listen_receiver(so_rcvbuf: int | None, cc: str | None) -> socket.socket:
    """The receiver's listening socket (call it inside the namespace): SO_RCVBUF before listen() as
    the scenario asks, the congestion control by TCP_CONGESTION, bound to RECEIVER_IP:RECEIVER_PORT."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if so_rcvbuf is not None:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, so_rcvbuf)
        if cc is not None:
            try:
                listener.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, cc.encode())
            except OSError as exc:
                raise InputError(f"congestion control {cc!r} is not available on this kernel: "
                                 f"{exc.strerror}") from None
        listener.bind((RECEIVER_IP, RECEIVER_PORT))
        listener.listen(1)
    except BaseException:
        listener.close()
        raise
    return listener


def accept_receiver(listener: socket.socket) -> socket.socket:
    """accept() the peer's connection once the handshake is done (non-blocking socket; a handshake
    that never completes is one line)."""
    listener.settimeout(ACK_WAIT_LIMIT_S)
    try:
        accepted, _address = listener.accept()
    except TimeoutError:
        raise InputError("the handshake did not complete: accept() timed out") from None
    accepted.setblocking(False)
    return accepted


class _Measure:
    """Everything read after a record: ``(mem, info, TcpExt counters, tcp_sock fields)``.

    About 0.15 ms, most of it the kernel writing /proc/net/netstat; the call needs no namespace
    thread (the socket, the iterator and the netstat fd work from any thread)."""

    __slots__ = ("info_layout", "sock_layout", "reader", "netstat", "address")

    def __init__(self, btf: BtfFile, reader: TcpSockReader, netstat: int) -> None:
        self.info_layout = TcpInfoLayout(btf)
        self.sock_layout = TcpSockLayout(btf, TCP_SOCK_FIELDS)
        self.reader = reader
        self.netstat = netstat
        self.address: int | None = None  # the watched struct sock's kernel address

    def tcp_sock(self) -> dict[str, int]:
        copies = self.reader.snapshot()
        if len(copies) != 1:
            raise InputError(f"the socket iterator returned {len(copies)} sockets, not the one watched")
        (self.address, raw), = copies.items()
        return self.sock_layout.decode(raw)

    def __call__(self, sock: socket.socket) -> tuple[dict, dict, dict, dict]:
        meminfo = so_meminfo(sock)
        info = self.info_layout.decode(sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, self.info_layout.size))
        info["window_clamp"] = sock.getsockopt(socket.IPPROTO_TCP, TCP_WINDOW_CLAMP)
        tcp_sock = self.tcp_sock()
        info["scaling_ratio"] = tcp_sock["scaling_ratio"]
        return ({key: meminfo[key] for key in MEM_KEYS}, {key: info[key] for key in INFO_KEYS},
                read_tcpext(self.netstat), tcp_sock)


# ------------------------------------------------------------------------------------------ one scenario


class _Event:
    """One record's event on the schedule: what happens and when (µs after the handshake)."""

    __slots__ = ("at_us", "action", "payload", "frame_len", "nbytes", "last_of_step")

    def __init__(self, at_us: int, action: str, payload: int | None = None, frame_len: int | None = None,
                 nbytes: int | None = None) -> None:
        self.at_us = at_us
        self.action = action
        self.payload = payload
        self.frame_len = frame_len
        self.nbytes = nbytes
        self.last_of_step = False


def schedule(steps: Sequence[Step], step_ms: int, segment_us: int) -> tuple[list[_Event], int]:
    """The records' events and the scenario's end, after docs/tcp.md "Timing".

    Step k begins at T(k); a send step's segment j arrives at T(k) + j * segment_us, with
    ``readeach`` followed at the same time by a read; every other step is one event at T(k).
    A step lasts step_ms (wait:MS: MS; a send step at least N * segment_us).
    """
    events: list[_Event] = []
    readeach = False
    start = 0
    for step in steps:
        if step.action == "send":
            for j in range(step.count):
                events.append(_Event(start + j * segment_us, "send", step.payload, step.frame_len))
                if readeach:
                    events.append(_Event(start + j * segment_us, "read"))
            duration = max(step_ms * 1000, step.count * segment_us)
        else:
            events.append(_Event(start, step.action, nbytes=step.nbytes))
            readeach = readeach or step.action == "readeach"
            duration = (step.ms if step.action == "wait" and step.ms is not None else step_ms) * 1000
        events[-1].last_of_step = True
        start += duration
    return events, start


class LiveRun:
    """What :func:`run_scenario` returns.

    ``result``: the per-kernel object of skbsim.tcp_session.play() (docs/schema/tcp.schema.json),
    kernel "live".  ``timeline``: per record, when its event happened (``at_us``, ``late_us``
    behind the schedule) and fields of struct tcp_sock when its figures were taken, to explain
    a disagreement.  ``sysctls``: the receive-side sysctls the namespace had.
    """

    __slots__ = ("result", "timeline", "sysctls")

    def __init__(self, result: dict, timeline: list[dict], sysctls: dict[str, str]) -> None:
        self.result = result
        self.timeline = timeline
        self.sysctls = sysctls

    def as_dict(self) -> dict:
        return {"live": self.result, "timeline": self.timeline, "sysctls": self.sysctls}


class _Segment:
    """A segment written: what its route and verdict are decided from once the scenario is over."""

    __slots__ = ("record", "seq", "rcv_nxt_before", "counters_before", "truesize", "drop")

    def __init__(self, record: dict, seq: int, rcv_nxt_before: int, counters_before: dict[str, int]) -> None:
        self.record = record
        self.seq = seq
        self.rcv_nxt_before = rcv_nxt_before
        self.counters_before = counters_before
        self.truesize: int | None = None  # net/netif_receive_skb_entry's, at the step's end
        self.drop: str | None = None      # skb/kfree_skb's reason, if it was dropped


class LivePeer:
    """The peer and the receiving socket of one scenario (see :func:`run_scenario`)."""

    def __init__(self, tap: Tap, ns: NetnsThread, trace: TraceInstance, measure: _Measure,
                 syn: SynOptions) -> None:
        self.tap = tap
        self.ns = ns
        self.trace = trace
        self.measure = measure
        self.syn = syn
        self.poll = select.poll()
        self.poll.register(tap.fd, select.POLLIN)
        self.snd_nxt = PEER_ISN + 1
        self.irs = 0
        self.ts_ok = False
        self.ts_recent = 0
        self.ip_id = 1
        self.at = 0.0  # the scheduled time of the event being played
        self.handshake_frames = 0  # frames of the handshake still in the trace buffer
        self.ts_clock0 = time.monotonic()  # TSval 1000 at the SYN, then +1 per ms
        self.sock: socket.socket | None = None
        self.read_buffer = bytearray(READ_BUFFER)
        self.baseline: dict[str, int] = {}
        self.records: list[dict] = []
        self.timeline: list[dict] = []
        self.segments: list[_Segment] = []
        # The state last read (after the handshake, then after each record).
        self.tcpext: dict[str, int] = {}
        self.tcp_sock: dict[str, int] = {}

    # -- wire

    def _tsval(self, at: float | None = None) -> int:
        return 1000 + int(((time.monotonic() if at is None else at) - self.ts_clock0) * 1000)

    def _frame(self, flags: int, options: bytes = b"", payload: bytes = b"", min_frame_len: int = 0) -> bytes:
        self.ip_id += 1
        return tcp_frame(dst_mac=self.tap.mac, src_mac=PEER_MAC, src_ip=PEER_IP, dst_ip=RECEIVER_IP,
                         sport=PEER_PORT, dport=RECEIVER_PORT, seq=self.snd_nxt, ack=self.irs + 1, flags=flags,
                         window=PEER_WINDOW, options=options, payload=payload, ip_id=self.ip_id,
                         min_frame_len=min_frame_len)

    def _drain(self, timeout_ms: int = 0) -> list[TcpSegment]:
        """The receiver's segments waiting on the TAP (waiting up to *timeout_ms* for the first)."""
        segments = []
        while self.poll.poll(timeout_ms if not segments else 0):
            segment = parse_frame(os.read(self.tap.fd, 1 << 17))
            if segment is None or segment.sport != RECEIVER_PORT or segment.dport != PEER_PORT:
                continue
            if not segment.checksums_ok:
                raise InputError("the receiver sent a segment with a bad checksum")
            if segment.flags & TCP_RST:
                raise InputError("the receiver reset the connection")
            if segment.timestamps is not None:
                self.ts_recent = segment.timestamps[0]
            segments.append(segment)
        return segments

    @staticmethod
    def _acks(segments: Iterable[TcpSegment]) -> list[list[int]]:
        return [[(s.ack - (PEER_ISN + 1)) & 0xFFFFFFFF, s.window] for s in segments if s.flags & TCP_ACK]

    # -- handshake

    def handshake(self, so_rcvbuf: int | None, cc: str | None, start: float) -> dict:
        """Listen, then the SYN at t = -2050 us and the final ACK at t = -2000 us (where the model
        has them), accept; *start* is t = 0 on CLOCK_MONOTONIC."""
        listener = self.ns.call(listen_receiver, so_rcvbuf, cc)
        try:
            self.baseline = read_tcpext(self.measure.netstat)
            syn = self.syn
            options = syn_options(mss=syn.mss, wscale=syn.wscale,
                                  timestamps=(self._tsval(), 0) if syn.ts else None, sack_permitted=syn.sack)
            frame = tcp_frame(dst_mac=self.tap.mac, src_mac=PEER_MAC, src_ip=PEER_IP, dst_ip=RECEIVER_IP,
                              sport=PEER_PORT, dport=RECEIVER_PORT, seq=PEER_ISN, ack=0, flags=TCP_SYN,
                              window=PEER_WINDOW, options=options)
            _sleep_until(start - SYN_BEFORE_S)
            self.tap.write(frame)
            answer = [s for s in self._drain(int(ACK_WAIT_LIMIT_S * 1000)) if s.flags & TCP_SYN]
            if len(answer) != 1 or not answer[0].flags & TCP_ACK or answer[0].ack != PEER_ISN + 1:
                raise InputError("no SYN-ACK from the receiver")
            synack = answer[0]
            self.irs = synack.seq
            self.ts_ok = synack.timestamps is not None
            frame = self._frame(TCP_ACK, timestamp_option(self._tsval(start - ACK_BEFORE_S), self.ts_recent)
                                if self.ts_ok else b"")
            _sleep_until(start - ACK_BEFORE_S)
            self.tap.write(frame)
            self.handshake_frames = 2
            self.sock = self.ns.call(accept_receiver, listener)
        finally:
            listener.close()
        self.measure.reader.watch(self.sock)
        self._drain()
        _mem, _info, self.tcpext, self.tcp_sock = self.measure(self.sock)
        return {"win": synack.window, "wscale": synack.wscale, "mss": synack.mss}

    # -- records

    def _open(self, event: _Event, late_us: int) -> dict:
        record = {"i": len(self.records), "action": event.action, "payload": None, "frame_len": None,
                  "truesize": None, "route": None, "verdict": None, "acks": []}
        self.records.append(record)
        self.timeline.append({"at_us": event.at_us, "late_us": late_us})
        return record

    def close_record(self) -> None:
        """The last record's ACKs up to now and its figures now (just before the next event)."""
        acks = self._acks(self._drain())
        if not self.records:
            if acks:
                raise InputError(f"the receiver sent {len(acks)} ACK(s) before any data")
            return
        record = self.records[-1]
        mem, info, self.tcpext, self.tcp_sock = self.measure(self.sock)
        record["acks"] += acks
        record["mem"] = mem
        record["info"] = info
        record["counters"] = {name: self.tcpext.get(name, 0) - self.baseline.get(name, 0) for name in COUNTERS}
        self.timeline[-1]["tcp_sock"] = self.tcp_sock
        self.timeline[-1]["route_counters"] = {name: self.tcpext.get(name, 0) for name in _ROUTE_COUNTERS}

    def prepare(self, event: _Event, at: float) -> tuple[int, bytes] | None:
        """A send event's frame, built before its time *at* (dpkt takes ~60 us): (the TSecr it echoes,
        frame).  TSval is the peer's millisecond clock at *at*, so it never depends on lateness."""
        self.at = at
        if event.action != "send":
            return None
        options = timestamp_option(self._tsval(at), self.ts_recent) if self.ts_ok else b""
        frame = self._frame(TCP_ACK | TCP_PSH, options, _payload_bytes(self.snd_nxt, event.payload),
                            event.frame_len or 0)
        return self.ts_recent, frame

    def play(self, event: _Event, late_us: int, prepared: tuple[int, bytes] | None) -> None:
        record = self._open(event, late_us)
        if event.action == "send":
            tsecr, frame = prepared
            if self.ts_ok and tsecr != self.ts_recent:
                # An ACK came meanwhile: echo its TSval, as the peer of docs/tcp.md does.
                tsecr, frame = self.prepare(event, self.at)
            record["payload"] = event.payload
            record["frame_len"] = len(frame)
            self.segments.append(_Segment(record, self.snd_nxt, self.tcp_sock["rcv_nxt"],
                                          {name: self.tcpext.get(name, 0) for name in _ROUTE_COUNTERS}))
            self.tap.write(frame)
            self.snd_nxt = (self.snd_nxt + event.payload) & 0xFFFFFFFF
        elif event.action == "read":
            record["payload"] = _read(self.sock, self.read_buffer, event.nbytes)
        elif event.action not in ("readeach", "wait"):
            raise InputError(f"step {event.action!r} cannot be played on the live kernel")

    def resolve(self) -> None:
        """Truesize and drop reason of the segments written since the last call, from one trace read."""
        segments = [segment for segment in self.segments if segment.truesize is None]
        if not segments:
            return
        snapshot = self.trace.take()
        if not snapshot.complete:
            raise InputError("the trace buffer lost events")
        received = 0
        open_skbs: dict[str, _Segment] = {}
        for event in snapshot.records:
            if event.event == "netif_receive_skb_entry" and self.handshake_frames:
                self.handshake_frames -= 1  # the SYN and the final ACK, traced before t = 0
            elif event.event == "netif_receive_skb_entry":
                if received == len(segments):
                    raise InputError("more netif_receive_skb_entry events traced than segments written")
                segment = segments[received]
                segment.truesize = segment.record["truesize"] = event.truesize
                open_skbs[event.skbaddr] = segment
                received += 1
            elif event.event == "kfree_skb" and event.skbaddr in open_skbs and \
                    _as_address(event.fields.get("rx_sk")) == self.measure.address:
                # A segment's drop: the first kfree_skb of its skb after its receive event.
                open_skbs.pop(event.skbaddr).drop = event.fields.get("reason", "?")
        if received != len(segments):
            raise InputError(f"{len(segments)} segments written but {received} netif_receive_skb_entry "
                             "events traced")

    def finish(self) -> None:
        """Each segment's verdict and route, from its drop and the counters around its record."""
        for segment in self.segments:
            record = segment.record
            after = self.timeline[record["i"]]["route_counters"]
            delta = {name: after[name] - segment.counters_before[name] for name in _ROUTE_COUNTERS}
            if segment.drop is not None:
                record["verdict"] = f"dropped:{segment.drop}"
            elif delta["TCPRcvCoalesce"] > 0:
                record["verdict"] = "coalesced"
            else:
                record["verdict"] = "queued"
            if delta["TCPHPHits"] > 0:
                record["route"] = "fast"
            elif segment.seq != segment.rcv_nxt_before and (
                    delta["TCPOFOQueue"] or delta["TCPOFODrop"] or delta["TCPOFOMerge"]):
                record["route"] = "ofo"
            else:
                record["route"] = "slow"

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _as_address(text: str | None) -> int | None:
    """A kernel pointer as the trace prints it with hash-ptr off (hex digits, with or without 0x)."""
    try:
        return int(text, 16) if text else None
    except ValueError:
        return None


def _payload_bytes(seq: int, length: int) -> bytes:
    """Recognisable payload: the byte at sequence number s is s mod 251."""
    start = seq % 251
    return (bytes(range(251)) * (length // 251 + 2))[start:start + length]


def _read(sock: socket.socket, buffer: bytearray, limit: int | None) -> int:
    """One recvmsg() of at most *limit* bytes (everything queued when None): the bytes read."""
    try:
        return sock.recv_into(buffer, min(limit or len(buffer), len(buffer)), socket.MSG_DONTWAIT)
    except BlockingIOError:
        return 0


def requirements_missing() -> list[str]:
    """What the live TCP peer lacks on this machine (empty when nothing)."""
    from skbsim.live.probe import requirements_missing as tap_requirements

    missing = tap_requirements()
    if not os.path.exists(DEFAULT_VMLINUX_BTF):
        missing.append(f"{DEFAULT_VMLINUX_BTF} (CONFIG_DEBUG_INFO_BTF) for the tcp_info and tcp_sock layouts")
    elif not missing:
        # on a fresh machine tracefs may not be mounted yet (TraceInstance mounts it): mount it to look
        try:
            ensure_tracefs()
        except InputError as error:
            missing.append(str(error))
        else:
            if not os.path.isdir(os.path.join(TRACEFS_ROOT, "events", "skb", "kfree_skb")):
                missing.append("the skb/kfree_skb trace event")
    return missing


def _sleep_until(deadline: float) -> None:
    """Sleep to just before *deadline*, then spin the rest: segments are 1 ms apart."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if remaining > SPIN_S:
            time.sleep(remaining - SPIN_S)


def tick_ns() -> int:
    """The jiffies tick period in ns: 1e9 / CONFIG_HZ, or the smallest step of the coarse clock."""
    from skbsim.live.kconfig import host_config

    try:
        hz = host_config().value("HZ")
    except InputError:
        hz = None
    if isinstance(hz, int) and hz > 0:
        return 1_000_000_000 // hz
    steps = set()
    last = time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:
        now = time.clock_gettime_ns(CLOCK_MONOTONIC_COARSE)
        if now != last:
            steps.add(now - last)
            last = now
    if not steps:
        raise InputError("cannot tell the jiffies tick period (no CONFIG_HZ, the coarse clock did not move)")
    return min(steps)


def next_tick(period_ns: int, after: float) -> float:
    """The CLOCK_MONOTONIC time (s) of the first jiffies tick after *after*.

    kernel/time/tick-sched.c: tick_init_jiffy_update() puts the first tick on a multiple of TICK_NSEC
    and every later one TICK_NSEC after it, so the ticks (and jiffies' steps) lie on the multiples of
    the period in CLOCK_MONOTONIC (/proc/timer_list's .last_tick shows it).  Not the values of
    CLOCK_MONOTONIC_COARSE: timekeeping adds whole clocksource intervals whose length in ns NTP
    adjusts, so that clock's grid drifts from the ticks' (here 0.86 ms off them, moving 35 ppm).
    """
    later = int(after * 1e9)
    return (later // period_ns * period_ns + period_ns) / 1e9


def _set_realtime(on: bool) -> None:
    """SCHED_FIFO for the calling thread while a scenario plays, so that the other work on the
    machine does not push our writes off their schedule (RT throttling still leaves others 5%;
    the thread sleeps between records anyway).  Without the privilege it stays as it was."""
    try:
        if on:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (PermissionError, AttributeError):
        pass


@contextlib.contextmanager
def _realtime(ns: NetnsThread) -> Iterator[None]:
    """SCHED_FIFO for both threads, and no garbage collection while the scenario plays (a full
    collection in a large process, a test run's, stalled the peer for 26 ms)."""
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    _set_realtime(True)
    ns.call(_set_realtime, True)
    try:
        yield
    finally:
        ns.call(_set_realtime, False)
        _set_realtime(False)
        if gc_was_enabled:
            gc.enable()


def run_scenario(steps: Sequence[Step], *, so_rcvbuf: int | None = None, cc: str | None = "cubic",
                 syn: SynOptions = DEFAULT_SYN, step_ms: int = STEP_MS,
                 segment_us: int = SEGMENT_US, btf: BtfFile | None = None) -> LiveRun:
    """Play *steps* against a socket of the running kernel, on the schedule of docs/tcp.md.

    Every record's event is written or read at its scheduled time (late_us in the timeline
    says by how much the machine missed it); its ACKs are those that arrive before the next
    event, and its figures are read just before the next event (after the step's time for the
    last record of a step).  *btf* saves reading the kernel's BTF again when several scenarios run.
    """
    for step in steps:
        if step.action in ("hold", "release"):
            raise InputError(f"step {step.action!r} cannot be played on the live kernel: a user-space peer "
                             "cannot hold the receiving socket's lock at a chosen moment")
    missing = requirements_missing()
    if missing:
        raise InputError("the live TCP peer needs " + "; ".join(missing))
    events, end_us = schedule(steps, step_ms, segment_us)
    btf = btf if btf is not None else BtfFile(DEFAULT_VMLINUX_BTF)
    with sigterm_as_interrupt(), Netns() as netns, \
            Tap(netns, ipv4=f"{RECEIVER_IP}/24") as tap, \
            NetnsThread(netns.path) as ns, TcpSockReader(btf) as reader, \
            TraceInstance(["net/netif_receive_skb_entry", "skb/kfree_skb"], device=tap.name,
                          filters={"skb/kfree_skb": f"protocol == {dpkt.ethernet.ETH_TYPE_IP}"},
                          options={"hash-ptr": "0"}) as trace:
        netns.ip("neigh", "replace", PEER_IP, "lladdr", PEER_MAC.hex(":"), "dev", tap.name, "nud", "permanent")
        sysctls = {key: netns.sysctl(key) for key in SYSCTLS}
        netstat = ns.call(open_netstat)
        peer = LivePeer(tap, ns, trace, _Measure(btf, reader, netstat), syn)
        try:
            trace.take()
            with _realtime(ns):
                start = next_tick(tick_ns(), time.monotonic() + HANDSHAKE_LEAD_S) + TICK_PHASE_S
                synack = peer.handshake(so_rcvbuf, cc, start)
                for event in events:
                    at = start + event.at_us / 1e6
                    prepared = peer.prepare(event, at)
                    _sleep_until(at)
                    late_us = int((time.monotonic() - start) * 1e6) - event.at_us
                    peer.close_record()
                    peer.play(event, late_us, prepared)
                    if event.last_of_step:
                        peer.resolve()
                _sleep_until(start + end_us / 1e6)
                peer.close_record()
            peer.finish()
        finally:
            peer.close()
            os.close(netstat)
    result = {"kernel": "live", "driver": "tun", "options": {"write": "block"}, "synack": synack,
              "steps": peer.records}
    return LiveRun(result, peer.timeline, sysctls)
