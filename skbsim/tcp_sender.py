"""The TCP senders of ``skbsim run --socket tcp``: peers that send only within the receiver's window.

Not a kernel model: the sender's kernel is not modelled, only what a Linux
sender puts on the wire when the receiver's window is the limit.  One
:class:`TcpSender` per synthetic flow, all sharing one link
(:class:`TcpSenders`):

- The application: ``bulk`` (always more to send) or ``messages:SIZE[@RATE]``
  (SIZE-byte writes, RATE per second, or back to back without a rate).
  The socket has TCP_NODELAY: what was written leaves at once, in
  MSS-sized segments, the last one of a write shorter; a segment holding
  the end of a message carries PSH.  Writes at a rate are counted from the
  clock when the sender looks (the k-th at start + k/RATE), and the run is
  only asked to wake the sender for them while it could send them: not
  while the window holds it back, and not more often than the link takes a
  frame, so the work follows the frames sent, not the writes.
- The window: data leaves only while it ends at or before the right edge
  the receiver last advertised (ACK number + window << window scale),
  and only whole segments of min(MSS, what is written) bytes, as
  tcp_snd_wnd_test() allows.  ACKs reach the sender one RTT after the
  receiver sent them (the data's own trip takes no time), so the sender
  knows the window as it was one RTT ago.
- No congestion control: no congestion window, slow start or pacing; the
  window and the link are the only limits.  The link takes one frame
  every 1/RATE seconds (``--rate``, frames per second; a GSO frame takes
  one slot per segment; ``--arrival poisson`` draws the gaps), flows
  taking turns (round robin).
- Zero and small windows: with data waiting, nothing in flight and less
  window than a segment, the persist timer (tcp_probe_timer()) fires after
  max(RTO, 200 ms) << backoff (at most 120 s): a window probe of what the
  window allows (tcp_write_wakeup(), PSH; the backoff restarts), or with no
  window at all a zero-window probe (no data, sequence snd_una - 1, which
  the receiver answers with an ACK; the backoff doubles).
- Loss: a segment the receiver dropped is sent again by the retransmission
  timer (RTO = RTT + 200 ms, the first unacknowledged segment, doubling
  up to 120 s); no fast retransmit and no SACK.
- TSO/GSO (``tso=N``): up to N segments leave as one GSO frame, for
  drivers that receive them (virtio_net with guest_gso=1).
- ``--count`` bounds the frames of new data; after ``--duration`` the
  senders stop (no new data, retransmission or probe).
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from fractions import Fraction

from skbsim.errors import InputError
from skbsim.traffic.frame import TCP_FLAG_ACK, TCP_FLAG_PSH, Frame

U32 = 0xFFFFFFFF
#: include/net/tcp.h: TCP_RTO_MIN (200 ms) and TCP_RTO_MAX (120 s), in ns.
TCP_RTO_MIN_NS = 200_000_000
TCP_RTO_MAX_NS = 120_000_000_000
#: net.ipv4.tcp_retries2: the zero-window probe backoff stops growing after this many doublings.
TCP_RETRIES2 = 15
#: The largest GSO frame: 65535 bytes with its headers.
MAX_GSO_FRAME = 65535

_SPEC = re.compile(r"(bulk|messages:([0-9]+)(?:@([0-9.eE+]+))?)(?:,tso=([0-9]+))?")
SENDER_HELP = "bulk or messages:SIZE[@RATE], optionally ,tso=N"


def _after(a: int, b: int) -> bool:
    return ((b - a) & U32) >= 0x80000000


class SenderSpec:
    """What each flow's application does: ``bulk`` or ``messages`` (``size`` bytes, ``rate`` per second,
    None: back to back), and ``tso`` segments per GSO frame (1: none)."""

    __slots__ = ("kind", "size", "rate", "tso")

    def __init__(self, kind: str = "bulk", size: int | None = None, rate: float | None = None, tso: int = 1):
        self.kind = kind
        self.size = size
        self.rate = rate
        self.tso = tso

    def describe(self) -> str:
        text = "bulk" if self.kind == "bulk" else f"messages of {self.size} B" + (
            f" at {self.rate:g}/s" if self.rate else " back to back")
        return text + (f", GSO frames of up to {self.tso} segments" if self.tso > 1 else "")


def parse_sender(text: str) -> SenderSpec:
    """``bulk`` | ``messages:SIZE[@RATE]``, optionally followed by ``,tso=N`` (2..64)."""
    match = _SPEC.fullmatch(text.strip())
    if match is None:
        raise InputError(f"--tcp {text!r}: expected {SENDER_HELP}, e.g. bulk or messages:16384@1000")
    tso = int(match.group(4)) if match.group(4) else 1
    if not 1 <= tso <= 64:
        raise InputError(f"--tcp {text!r}: tso must be 1..64 segments, got {tso}")
    if match.group(1) == "bulk":
        return SenderSpec("bulk", tso=tso)
    size = int(match.group(2))
    if not 1 <= size <= 1 << 30:
        raise InputError(f"--tcp {text!r}: SIZE must be 1..{1 << 30} bytes, got {size}")
    rate = None
    if match.group(3):
        try:
            rate = float(match.group(3))
        except ValueError:
            raise InputError(f"--tcp {text!r}: RATE {match.group(3)!r} is not a number") from None
        if not (math.isfinite(rate) and 0 < rate <= 1e9):
            raise InputError(f"--tcp {text!r}: RATE must be above 0 and at most 1e9 messages/s, got {match.group(3)}")
    return SenderSpec("messages", size, rate, tso)


class TcpSender:
    """One flow's sender: its segments' header, its view of the receiver's window, what it has sent.

    Sequence numbers are absolute (32-bit); stream offsets (what is written, ``bytes_sent``: the new data
    sent, snd_nxt's advance) are counted from isn + 1 without wrapping.
    """

    __slots__ = (
        "index", "flow", "rss_hash", "queue", "template", "mss", "timestamps", "isn", "ip_id", "ts_base",
        "wscale", "snd_una", "snd_nxt", "right_edge", "in_flight", "written", "writes", "write_start",
        "write_wake", "tsecr",
        "persist_due", "backoff", "rto_due", "rto_event", "rto_backoff", "probe_pending", "rexmit_pending", "started",
        "frames", "segments", "bytes_sent", "retransmits", "window_probes", "zero_window_probes",
    )

    def __init__(self, index: int, flow: tuple, rss_hash: int, queue: int, template, mss: int, timestamps: bool,
                 isn: int, ip_id: int, ts_base: int):
        self.index = index
        self.flow = flow
        self.rss_hash = rss_hash
        self.queue = queue
        self.template = template
        self.mss = mss
        self.timestamps = timestamps
        self.isn = isn
        self.ip_id = ip_id
        self.ts_base = ts_base
        self.wscale = 0
        self.snd_una = self.snd_nxt = self.right_edge = (isn + 1) & U32
        # (seq, length, psh) of every segment sent and not yet acknowledged, in order.
        self.in_flight: deque[tuple[int, int, bool]] = deque()
        #: stream bytes the application has written (None: bulk, always more)
        self.written: int | None = None
        #: messages:SIZE@RATE: messages written so far, when the first one was, and whether a "write"
        #: callback is pending
        self.writes = 0
        self.write_start = 0
        self.write_wake = False
        self.tsecr = 0
        self.persist_due: int | None = None
        self.backoff = 0
        self.rto_due: int | None = None
        self.rto_event: int | None = None
        self.rto_backoff = 0
        self.probe_pending = False
        self.rexmit_pending = False
        self.started = False
        self.frames = 0
        self.segments = 0
        self.bytes_sent = 0
        self.retransmits = 0
        self.window_probes = 0
        self.zero_window_probes = 0

    def available(self) -> int | None:
        """Written bytes not yet sent (None: unlimited)."""
        if self.written is None:
            return None
        return self.written - self.bytes_sent

    def next_len(self) -> int:
        """The payload of the next new segment: min(MSS, what is written), 0 with nothing to send."""
        left = self.available()
        return self.mss if left is None else min(self.mss, left)

    def usable(self) -> int:
        """Bytes of window beyond snd_nxt (0 when the right edge is behind it)."""
        room = (self.right_edge - self.snd_nxt) & U32
        return 0 if room >= 0x80000000 else room


class TcpSenders:
    """Every flow's sender and the link they share.

    ``push(time_ns, action, sender)`` is how a sender asks the run loop
    for a callback (action ``"send"``: the link's next slot, sender None;
    ``"persist"``, ``"rto"``, ``"write"``: that sender's timer or
    application write).
    """

    def __init__(self, spec: SenderSpec, senders: list[TcpSender], *, count: int, rate: float, arrival: str,
                 seed: int, rtt_ns: int, push):
        self.spec = spec
        self.senders = senders
        self.frames_left = count
        self.period = Fraction(10**9) / Fraction(rate)
        #: messages:SIZE@RATE: ns between two writes
        self.write_period = int(1e9 / spec.rate) if spec.kind == "messages" and spec.rate else 0
        self.poisson = random.Random(f"skbsim.tcp/{seed}/link").random if arrival == "poisson" else None
        self.link_free = Fraction(0)
        self.slot_pending = False
        self.next_turn = 0
        self.rto_ns = rtt_ns + TCP_RTO_MIN_NS
        self.push = push
        self.stopped = False
        self.stopped_at = 0

    # -- the application ------------------------------------------------------------------------

    def start(self, sender: TcpSender, now: int, right_edge: int, wscale: int) -> None:
        """The handshake is done (the SYN-ACK's window, unscaled, is the first right edge): data may flow."""
        sender.started = True
        sender.right_edge = right_edge
        sender.wscale = wscale
        spec = self.spec
        if spec.kind == "messages":
            if spec.rate is None:
                sender.written = None  # back to back: always more, PSH every SIZE bytes
            else:
                sender.written = 0
                sender.write_start = now
                sender.write_wake = True
                self.push(now, "write", sender)
                return
        self.kick(now)
        self._check_persist(sender, now)

    def _catch_up(self, sender: TcpSender, now: int) -> None:
        """messages:SIZE@RATE: the writes made by ``now`` (the k-th at write_start + k * write_period),
        none once the senders stopped or --count frames of new data are sent."""
        if self.write_period and sender.started and not self.stopped and self.frames_left > 0:
            due = (now - sender.write_start) // self.write_period + 1
            if due > sender.writes:
                sender.written += (due - sender.writes) * self.spec.size
                sender.writes = due

    def write(self, sender: TcpSender, now: int) -> None:
        """The "write" callback (messages:SIZE@RATE): the writes made by now, and the next callback."""
        sender.write_wake = False
        if self.stopped or self.frames_left <= 0:
            return
        self._catch_up(sender, now)
        self.kick(now)
        self._check_persist(sender, now)
        self._wake_for_writes(sender, now)

    def _wake_for_writes(self, sender: TcpSender, now: int) -> None:
        """Ask for a "write" callback at the next write, or when the link is next free if later (what is
        written meanwhile cannot leave sooner) - unless one is pending, or the window holds back what is
        written already (an ACK or the persist timer comes first and looks at the writes then)."""
        if (not self.write_period or sender.write_wake or self.stopped or self.frames_left <= 0
                or (sender.next_len() > 0 and not self._fits(sender))):
            return
        sender.write_wake = True
        due = sender.write_start + sender.writes * self.write_period
        self.push(max(due, now + 1, math.ceil(self.link_free)), "write", sender)

    def _psh(self, sender: TcpSender, start: int, end: int) -> bool:
        """Whether the segment of stream bytes [start, end) holds the end of a message: every message is
        SIZE bytes, so its ends are the multiples of SIZE, and a segment never goes past what is written."""
        spec = self.spec
        return spec.kind == "messages" and end // spec.size > start // spec.size

    # -- the receiver's ACKs ----------------------------------------------------------------------

    def ack(self, sender: TcpSender, now: int, ack: int, window: int, tsval: int | None) -> None:
        """An ACK reaches the sender (one RTT after the receiver sent it)."""
        self._catch_up(sender, now)
        if tsval is not None:
            sender.tsecr = tsval
        if _after(ack, sender.snd_una):
            sender.snd_una = ack
            flight = sender.in_flight
            while flight and not _after((flight[0][0] + flight[0][1]) & U32, ack):
                flight.popleft()
            sender.rto_backoff = 0
            sender.rto_due = None
            if flight:
                self._arm_rto(sender, now)
        sender.right_edge = (ack + (window << sender.wscale)) & U32
        if sender.persist_due is not None and self._fits(sender):
            sender.persist_due = None
            sender.backoff = 0
        self.kick(now)
        self._check_persist(sender, now)
        self._wake_for_writes(sender, now)

    def _fits(self, sender: TcpSender) -> bool:
        size = sender.next_len()
        return size > 0 and size <= sender.usable()

    def _arm_rto(self, sender: TcpSender, now: int) -> None:
        """(Re)start the retransmission timer.  At most one callback is pending per sender: one that
        comes early (the timer was restarted since) asks again for the new time."""
        sender.rto_due = now + min(self.rto_ns << sender.rto_backoff, TCP_RTO_MAX_NS)
        if sender.rto_event is None:
            sender.rto_event = sender.rto_due
            self.push(sender.rto_due, "rto", sender)

    def _check_persist(self, sender: TcpSender, now: int) -> None:
        """tcp_check_probe_timer(): data waiting, nothing in flight, no room for a segment: arm the
        persist timer (probe0: max(RTO, 200 ms) << backoff, at most 120 s)."""
        if (self.stopped or not sender.started or sender.in_flight or sender.persist_due is not None
                or self.frames_left <= 0 or sender.next_len() == 0 or self._fits(sender)):
            return
        sender.persist_due = now + min(self.rto_ns << sender.backoff, TCP_RTO_MAX_NS)
        self.push(sender.persist_due, "persist", sender)

    # -- timers -------------------------------------------------------------------------------------

    def timer(self, action: str, sender: TcpSender, now: int) -> None:
        if self.stopped:
            return
        self._catch_up(sender, now)
        if action == "persist":
            if sender.persist_due != now:
                return
            sender.persist_due = None
            if sender.in_flight or self.frames_left <= 0 or sender.next_len() == 0 or self._fits(sender):
                self.kick(now)
                return
            sender.probe_pending = True
        elif action == "rto":
            sender.rto_event = None
            if sender.rto_due is None or not sender.in_flight:
                return
            if sender.rto_due > now:
                sender.rto_event = sender.rto_due
                self.push(sender.rto_due, "rto", sender)
                return
            sender.rto_backoff += 1
            self._arm_rto(sender, now)
            sender.rexmit_pending = True
        self.kick(now)

    def stop(self, now: int) -> None:
        """--duration reached: nothing more is sent."""
        self.stopped = True
        self.stopped_at = now

    # -- the link ------------------------------------------------------------------------------------

    def kick(self, now: int) -> None:
        """Ask for a link slot unless one is already coming."""
        if self.stopped or self.slot_pending:
            return
        self.slot_pending = True
        self.push(max(now, math.ceil(self.link_free)), "send", None)

    def _sendable(self, sender: TcpSender) -> bool:
        if not sender.started:
            return False
        if sender.rexmit_pending or sender.probe_pending:
            return True
        return self.frames_left > 0 and self._fits(sender)

    def slot(self, now: int) -> Frame | None:
        """The link is free at ``now``: the next flow (round robin) with something to send sends one
        frame, which is returned (None: nobody can send; the link idles until an ACK, a write or a
        timer asks again)."""
        self.slot_pending = False
        if self.stopped:
            return None
        senders = self.senders
        n = len(senders)
        for turn in range(n):
            sender = senders[(self.next_turn + turn) % n]
            self._catch_up(sender, now)
            if self._sendable(sender):
                self.next_turn = (self.next_turn + turn + 1) % n
                frame, segments = self._transmit(sender, now)
                gap = self.period * segments
                if self.poisson is not None:
                    gap = Fraction(-math.log(1.0 - self.poisson()) * float(self.period) * segments)
                self.link_free = max(self.link_free, Fraction(now)) + gap
                self.kick(now)
                return frame
        return None

    def _transmit(self, sender: TcpSender, now: int) -> tuple[Frame, int]:
        """Build the sender's next frame: a retransmission, a probe, or new data."""
        sender.frames += 1
        if sender.rexmit_pending:
            sender.rexmit_pending = False
            seq, length, psh = sender.in_flight[0]
            sender.retransmits += 1
            return self._frame(sender, now, seq, length, psh), max(1, -(-length // sender.mss))
        if sender.probe_pending:
            sender.probe_pending = False
            room = sender.usable()
            if room == 0:
                # tcp_xmit_probe_skb(): no data, the sequence number one below snd_una.
                sender.zero_window_probes += 1
                if sender.backoff < TCP_RETRIES2:
                    sender.backoff += 1
                sender.persist_due = now + min(self.rto_ns << sender.backoff, TCP_RTO_MAX_NS)
                self.push(sender.persist_due, "persist", sender)
                return self._frame(sender, now, (sender.snd_una - 1) & U32, 0, False), 1
            # tcp_write_wakeup(): what the window allows, with PSH; the backoff restarts.
            sender.window_probes += 1
            sender.backoff = 0
            return self._new_data(sender, now, min(room, sender.next_len()), True)
        size = sender.next_len()
        if self.spec.tso > 1 and size == sender.mss:
            # tcp_tso_segs(): as many whole segments as the window, the data and the frame allow.
            most = min(self.spec.tso, (MAX_GSO_FRAME - sender.template.header_len) // sender.mss)
            left = sender.available()
            full = min(most, sender.usable() // sender.mss, most if left is None else left // sender.mss)
            size = max(1, full) * sender.mss
        return self._new_data(sender, now, size, False)

    def _new_data(self, sender: TcpSender, now: int, size: int, push: bool) -> tuple[Frame, int]:
        self.frames_left -= 1
        seq = sender.snd_nxt
        start = sender.bytes_sent
        psh = self._psh(sender, start, start + size) or push
        sender.snd_nxt = (seq + size) & U32
        sender.in_flight.append((seq, size, psh))
        sender.bytes_sent += size
        segments = max(1, -(-size // sender.mss))
        sender.segments += segments
        if sender.rto_due is None:
            self._arm_rto(sender, now)
        return self._frame(sender, now, seq, size, psh), segments

    def _frame(self, sender: TcpSender, now: int, seq: int, size: int, psh: bool) -> Frame:
        template = sender.template
        length = template.header_len + size
        flags = TCP_FLAG_ACK | (TCP_FLAG_PSH if psh else 0)
        header = template.build(length, seq, sender.ip_id, sender.ts_base + now // 1_000_000, flags, sender.tsecr)
        sender.ip_id = (sender.ip_id + 1) & 0xFFFF
        return Frame(length, now, sender.flow, sender.rss_hash, sender.queue, header)

    def describe(self) -> str:
        return self.spec.describe()
