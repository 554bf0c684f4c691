"""-- TCP capture --: a capture's TCP flows replayed into TCP receivers on the fast engine (``--traffic pcap:FILE
--socket tcp``): what skbsim.sockets.Sockets does with a capture's segments, set up in Python.

The capture takes the synthetic senders' place: its frames reach the driver at their own times and in their own
order (the compiled loop's arrivals, in chunks), each with its TCP_SKB_CB read from its header here as
net/ipv4/tcp_ipv4.c tcp_v4_fill_cb() reads it (the model's own tcp_v4_fill_cb(); a FIN's sequence number taken
off as Sockets._tcp() does: FIN is not modelled).  A flow's receiver is set up by the model itself, when and as
Sockets._tcp() sets it up: net/ipv4/tcp_minisocks.c's tcp_listen_sock() and tcp_conn_request() for the flow's
first SYN, tcp_passive_establish() at its first other segment (a flow first seen in mid-stream: both at that
segment, with Sockets' assumed options).  The times of those segments are the run's own (the NIC, the poll, the
packet cost), so the compiled loop stops at a flow's first segment the model has not set up yet and says which
SYN and segment at which times (tcp_run._capture_flow()); the Kernel record goes back to where that call of the
loop started (:func:`checkpoint`, :func:`rewind`: one chunk of arrivals at most), the model sets the receiver up
(:class:`CaptureSetups`) and the call is made again, which now passes that segment.

Covered (:meth:`CapturePlan.scan` refuses the rest, each with its reason): captures whose every frame is an IPv4
TCP segment over Ethernet without IP options or fragments, neither padded nor cut short, whose flags are ACK,
PSH, FIN, SYN and RST only (a segment without SYN or RST carries ACK), without a SYN that would reopen a flow
after its data, of at most tcp_engine.MAX_FLOWS flows.
"""

from __future__ import annotations

import numpy as np

from skbsim.fast import state
from skbsim.net.ipv4.tcp import TCPHDR_ACK, TCPHDR_FIN, TCPHDR_PSH, TCPHDR_RST, TCPHDR_SYN, U32
from skbsim.sockets import (IPPROTO_TCP, MIDSTREAM_MSS, MIDSTREAM_WSCALE, OLD_DATA, ipv4_flow)

#: the TCP flags a covered capture's segments carry
FLAGS_COVERED = TCPHDR_ACK | TCPHDR_PSH | TCPHDR_FIN | TCPHDR_SYN | TCPHDR_RST
ETH_HLEN = 14
IP_HLEN = 20
#: CapturePlan.scan()'s words for what it refuses beyond parse_segment()'s
REFUSED = "--socket tcp with this capture is the reference engine's: {}"
SYN_AFTER_DATA = "a SYN after a flow's data (a new connection on the same addresses and ports)"
TOO_MANY_FLOWS = "--socket tcp with a capture of more than {} TCP flows is the reference engine's"


def parse_segment(header: bytes, length: int):
    """(tcp_skb_cb, tcp_options_received) of a capture's IPv4 TCP frame as Sockets.deliver() reads it (the model's
    tcp_v4_fill_cb()), or a reason the fast engine leaves it to the reference engine."""
    found = ipv4_flow(header)
    if found is None or found[0] != IPPROTO_TCP:
        return ("a frame that is no IPv4 TCP segment (UDP, IPv6, ARP, IP options, fragments: a capture's other "
                "flows into their sockets are the reference engine's)")
    proto, key, ihl, tot_len = found
    if tot_len + ETH_HLEN != length:
        return "a TCP segment padded or cut short in the capture (IPv4 tot_len not the frame's length)"
    from skbsim.net.ipv4.tcp_ipv4 import tcp_v4_fill_cb

    parsed = tcp_v4_fill_cb(header, ETH_HLEN + ihl, tot_len - ihl, None)
    if parsed is None:
        return "a TCP header the capture cut short"
    flags = parsed[0].tcp_flags
    if flags & ~FLAGS_COVERED & 0xFF:
        return "a TCP segment with URG, ECE or CWR"
    if not flags & (TCPHDR_SYN | TCPHDR_RST) and not flags & TCPHDR_ACK:
        return "a TCP segment without ACK"
    return key, parsed


class CapturePlan:
    """A capture's TCP flows (by their first frame) and frame lengths, from one pass over it (memory: the flows'
    keys and the distinct lengths); :meth:`cb_row` reads each frame's TCP_SKB_CB as the run streams it."""

    __slots__ = ("index", "keys", "lengths", "frames", "flow_frames")

    def __init__(self):
        self.index: dict = {}
        self.keys: list = []
        self.lengths: set[int] = set()
        self.frames = 0
        #: each flow's frames (a receiver queues at most that many skbs)
        self.flow_frames: list[int] = []

    @classmethod
    def scan(cls, source, max_flows: int) -> "CapturePlan":
        """The plan of a capture; ValueError with the reason when the fast engine does not cover it.  A classic
        Ethernet pcap is read by numpy (capture_facts.CaptureSegments), any other frame by frame."""
        from skbsim.fast.capture_facts import capture_segment_chunks
        from skbsim.fast.traffic import _Unscannable

        read = capture_segment_chunks(source, None, False, False, scan=True)
        if read is not None:
            try:
                return cls._scan_rows(*read, max_flows)
            except _Unscannable:  # read frame by frame: the capture's reader reports what it met
                pass
        return cls._scan_frames(source, max_flows)

    @classmethod
    def _scan_rows(cls, reader, chunks, max_flows: int) -> "CapturePlan":
        """scan() of a capture's chunks of TCP_SKB_CB rows: the same checks, frame by frame in order."""
        from skbsim.fast.capture_facts import SEG_COVERED

        plan = cls()
        counts = np.zeros(0, np.int64)
        had_data = np.zeros(1, bool)  # each flow's data seen in an earlier chunk
        for lengths, _, _, _, rows, _ in chunks:
            n = len(rows)
            covered = rows[:, SEG_COVERED] != 0
            flows = rows[:, state.CB_FLOW]
            flags = rows[:, state.CB_TCP_FLAGS]
            nflows = len(reader.keys)
            counts = np.concatenate([counts, np.zeros(nflows - len(counts), np.int64)])
            # (a row more: a frame not covered reads flow 0, which may not be there)
            had_data = np.concatenate([had_data, np.zeros(nflows + 1 - len(had_data), bool)])
            data = covered & (flags & (TCPHDR_SYN | TCPHDR_RST) == 0)
            first_data = np.full(nflows + 1, n, np.int64)
            np.minimum.at(first_data, flows[data], np.flatnonzero(data))
            # a SYN after its flow's data; a flow beyond max_flows (numbered in the order they first appear)
            late_syn = covered & (flags & TCPHDR_SYN != 0) & (had_data[flows] | (first_data[flows] < np.arange(n)))
            failed = ~covered | late_syn | (covered & (flows >= max_flows))
            if failed.any():
                i = int(np.argmax(failed))
                if not covered[i]:
                    raise ValueError(REFUSED.format(reader.refused[1]))
                if late_syn[i]:
                    raise ValueError(REFUSED.format(SYN_AFTER_DATA))
                raise ValueError(TOO_MANY_FLOWS.format(max_flows))
            had_data[flows[data]] = True
            counts += np.bincount(flows, minlength=nflows)
            plan.lengths.update(np.unique(lengths).tolist())
            plan.frames += n
        plan.keys = list(reader.keys)
        plan.index = {key: f for f, key in enumerate(plan.keys)}
        plan.flow_frames = counts.tolist()
        return plan

    @classmethod
    def _scan_frames(cls, source, max_flows: int) -> "CapturePlan":
        """scan() of a capture read frame by frame."""
        plan = cls()
        data: set = set()
        for frame in source:
            found = parse_segment(frame.header or b"", frame.length)
            if isinstance(found, str):
                raise ValueError(REFUSED.format(found))
            key, (cb, _) = found
            flags = cb.tcp_flags
            if flags & TCPHDR_SYN and key in data:
                raise ValueError(REFUSED.format(SYN_AFTER_DATA))
            if not flags & (TCPHDR_SYN | TCPHDR_RST):
                data.add(key)
            if key not in plan.index:
                if len(plan.keys) >= max_flows:
                    raise ValueError(TOO_MANY_FLOWS.format(max_flows))
                plan.index[key] = len(plan.keys)
                plan.keys.append(key)
                plan.flow_frames.append(0)
            plan.lengths.add(frame.length)
            plan.flow_frames[plan.index[key]] += 1
            plan.frames += 1
        return plan

    def cb_row(self, frame, number: int) -> list[int]:
        """TCP_SKB_CB of the capture's frame of that number (CB_* columns), as Sockets._tcp() hands it to
        tcp_v4_rcv(): without a FIN (not modelled: its data kept), TSval -1 without the option."""
        key, (cb, _) = parse_segment(frame.header, frame.length)
        flags = cb.tcp_flags
        end_seq = cb.end_seq
        if flags & TCPHDR_FIN and not flags & (TCPHDR_SYN | TCPHDR_RST):
            flags &= ~TCPHDR_FIN
            end_seq = (end_seq - 1) & U32
        tsval = -1 if cb.tsval is None else cb.tsval
        row = [0] * state.CB_FIELDS
        row[state.CB_FLOW] = self.index[key]
        row[state.CB_SEQ] = cb.seq
        row[state.CB_END_SEQ] = end_seq
        row[state.CB_ACK_SEQ] = cb.ack_seq
        row[state.CB_TCP_FLAGS] = flags
        row[state.CB_DOFF] = cb.doff
        row[state.CB_WINDOW] = cb.window
        row[state.CB_TSVAL] = tsval
        row[state.CB_TSECR] = (cb.tsecr or 0) if tsval >= 0 else 0
        row[state.CB_SEGS] = 1
        row[state.CB_FRAME] = number
        return row


def capture_tcp_chunks(source, ref, plan: CapturePlan, setups: "CaptureSetups", legacy: bool, measure=None,
                       gro: bool = False):
    """The capture's frames in chunks (traffic._frames_with_headlen()'s lengths, arrival times, RX queues and header
    lengths: legacy-rx's eth_get_headlen(), or measure(header, length): virtio_net's codes), each frame's
    TCP_SKB_CB (CapturePlan.cb_row()) and, through GRO, what GRO reads of it (skbsim.fast.gro.F_* columns; else
    None); the frames of flows still without a receiver held by setups.  A classic Ethernet pcap on one CPU is read
    once, by numpy (capture_facts.capture_segment_chunks()); any other capture frame by frame, through GRO in
    gro.capture_chunks()' chunks with the TCP_SKB_CB rows read beside them from a second pass."""
    from skbsim.fast.capture_facts import capture_segment_chunks
    from skbsim.fast.gro import capture_chunks
    from skbsim.fast.traffic import _frames_with_headlen

    read = capture_segment_chunks(source, ref, legacy, gro, setups) if measure is None else None
    if read is not None:  # a classic Ethernet pcap, on one CPU: read by numpy
        for lengths, times, queues, hlens, segments, facts in read[1]:
            yield lengths, times, queues, hlens, segments[:, :state.CB_FIELDS], facts
        return
    rows: list = []

    def frames():
        for number, frame in enumerate(source):
            row = plan.cb_row(frame, number)
            setups.hold(row[state.CB_FLOW], number, frame)
            rows.append(row)
            yield frame

    if gro:
        read = frames()
        for lengths, times, queues, hlens, facts in capture_chunks(source, ref, legacy, measure):
            n = len(lengths)
            for _ in range(n):
                next(read)
            yield lengths, times, queues, hlens, _taken(rows, n), facts
        return
    if legacy:
        chunks = _frames_with_headlen(frames(), ref)
    elif measure is not None:
        chunks = _frames_with_headlen(frames(), ref, measure, 0)
    else:
        chunks = _plain_chunks(frames())
    for lengths, times, queues, hlens in chunks:
        yield lengths, times, queues, hlens, _taken(rows, len(lengths)), None


def _taken(rows: list, n: int) -> np.ndarray:
    """The first n TCP_SKB_CB rows as an array, taken off the list."""
    array = np.array(rows[:n], np.int64).reshape(n, state.CB_FIELDS)
    del rows[:n]
    return array


def _plain_chunks(frames):
    """(lengths, arrival times, RX queues, zero header lengths) of the frames, CHUNK at a time."""
    from skbsim.fast.traffic import CHUNK

    batch: list = []
    for frame in frames:
        batch.append((frame.length, frame.time_ns, frame.queue, 0))
        if len(batch) == CHUNK:
            yield tuple(np.array(column, np.int64) for column in zip(*batch))
            batch.clear()
    if batch:
        yield tuple(np.array(column, np.int64) for column in zip(*batch))


class CaptureSetups:
    """The receivers the model sets up for a capture's flows, one at a time as the run meets each flow's first
    segment (tcp_run._capture_flow()), and the frames they are set up from: the first few of each flow still
    without one, as the run streams them (any other is read from the capture again)."""

    __slots__ = ("plan", "ready", "held", "arrived", "series")

    #: frames held for each flow still without a receiver: its SYN and first segments are among them unless the
    #: NIC or the driver dropped that many first
    HELD = 64

    def __init__(self, plan: CapturePlan):
        self.plan = plan
        #: the flows whose receivers are set up
        self.ready: set[int] = set()
        self.held: dict[int, dict[int, tuple[bytes, int]]] = {}
        #: the flows whose data has reached the driver (a frame that is neither SYN nor RST)
        self.arrived: set[int] = set()
        #: -- TCP plot --: each flow's plot series begun too (TcpFlows.series)
        self.series = False

    def waiting(self) -> bool:
        """Whether a flow's data reached the driver but its receiver is not set up: the loop may stop for it."""
        return len(self.arrived) > len(self.ready)

    def parts(self, cbs: np.ndarray) -> list[tuple[int, int]]:
        """A chunk's frames (their TCP_SKB_CB rows) in parts, each new one starting at the first data frame of a
        flow: the calls of the loop before it need no copy of the Kernel record to go back to."""
        data = np.flatnonzero(cbs[:, state.CB_TCP_FLAGS] & (TCPHDR_SYN | TCPHDR_RST) == 0)
        flows, first = np.unique(cbs[data, state.CB_FLOW], return_index=True)
        starts = sorted(int(data[i]) for f, i in zip(flows.tolist(), first) if f not in self.arrived)
        bounds = [0] + [start for start in starts if start] + [len(cbs)]
        return list(zip(bounds, bounds[1:]))

    def arrive(self, cbs: np.ndarray, start: int) -> None:
        """The part of the chunk from start on goes to the loop: its first frame's flow, if data, has arrived."""
        row = cbs[start] if start < len(cbs) else None
        if row is not None and not row[state.CB_TCP_FLAGS] & (TCPHDR_SYN | TCPHDR_RST):
            self.arrived.add(int(row[state.CB_FLOW]))

    def hold(self, f: int, number: int, frame) -> None:
        """Frame number of flow f, as the run streams it: kept while the flow has no receiver."""
        if self.room(f):
            self.keep(f, number, frame.header or b"", frame.length)

    def room(self, f: int) -> int:
        """How many more of flow f's frames to hold (none once its receiver is set up)."""
        return 0 if f in self.ready else self.HELD - len(self.held.get(f, ()))

    def keep(self, f: int, number: int, header: bytes, length: int) -> None:
        self.held.setdefault(f, {})[number] = (header, length)

    def _frames(self, source, f: int, numbers: set[int]) -> dict[int, tuple[bytes, int]]:
        """(header, length) of flow f's frames of these numbers: held, or read from the capture again."""
        held = self.held.pop(f, {})
        found = {number: held[number] for number in numbers if number in held}
        missing = numbers - found.keys()
        if missing:
            last = max(missing)
            for number, frame in enumerate(source):
                if number in missing:
                    found[number] = (frame.header or b"", frame.length)
                if number >= last:
                    break
        return found

    def set_up(self, ref, f: int, stage_row, tfl) -> None:
        """The receiver of flow f set up by the model from the SYN and segment the loop stopped at (its stage row,
        ST_* columns), as Sockets._tcp() sets it up, on the reference Simulation's Sockets (nothing of it touches
        the kernel's memory), into tfl's stage, sk0, fl0 and json0 rows (tcp_run._capture_flow() copies them)."""
        from skbsim.fast.tcp_engine import _thinned_row
        from skbsim.fast.tcp_setup import sock_to_row
        from skbsim.tcp_steps import SynOptions

        syn_frame, syn_ns, est_frame, est_ns = (int(stage_row[c]) for c in (
            state.ST_SYN_FRAME, state.ST_SYN_NS, state.ST_EST_FRAME, state.ST_EST_NS))
        frames = self._frames(ref.source, f, {n for n in (syn_frame, est_frame) if n >= 0})
        self.ready.add(f)
        sockets = ref.sockets
        flow = sockets.tcp_flow(self.plan.keys[f], 0)
        if syn_frame >= 0:
            _, (cb, opt) = parse_segment(*frames[syn_frame])
            flow.net.now_us = max(flow.net.now_us, syn_ns // 1000)
            syn = SynOptions(mss=opt.mss_clamp or 536, wscale=opt.snd_wscale, ts=opt.rcv_tsval is not None,
                             sack=opt.sack_ok)
            sockets.listen(flow, syn_ns, syn, cb.seq, (cb.ack_seq - 1) & U32 if cb.tcp_flags & TCPHDR_ACK else 0,
                           opt.rcv_tsval or 0)
        _, (cb, _) = parse_segment(*frames[est_frame])
        flow.net.now_us = max(flow.net.now_us, est_ns // 1000)
        if flow.listener is None:  # first seen in mid-stream (Sockets._tcp())
            syn = SynOptions(mss=MIDSTREAM_MSS, wscale=MIDSTREAM_WSCALE, ts=cb.tsval is not None, sack=False)
            sockets.listen(flow, est_ns, syn, (cb.seq - 1) & U32, (cb.ack_seq - 1) & U32, cb.tsval or 0)
        sockets.establish(flow, est_ns, cb.window)
        sock_to_row(flow.sk, tfl.sk0[f])
        row = tfl.fl0[f]
        values = {state.F_WINDOW: flow.window, state.F_SINCE: flow.window_since, state.F_ZERO_NS: flow.zero_ns,
                  state.F_SMALL_NS: flow.small_ns, state.F_INTEGRAL: flow.window_integral,
                  state.F_INT_FIRST: flow.integral_at_first, state.F_INT_LAST: flow.integral_at_last,
                  state.F_MSS: flow.mss, state.F_RCVBUF_INIT: flow.rcvbuf_initial,
                  state.F_RCVBUF_MAX: flow.rcvbuf_max, state.F_RCV_START: flow.rcv_start,
                  state.F_RCV_MARK: flow.rcv_mark, state.F_RECEIVED: flow.received}
        for col, value in values.items():
            row[col] = value
        _thinned_row(flow.json_series, tfl.json0[f], row, (state.F_JS_COUNT, state.F_JS_EVERY, state.F_JS_LEN))
        if self.series:  # -- TCP plot --: into the flow's own rows (nothing touches them before its receiver; the
            # copy of the Kernel record the loop goes back to is made again after this)
            _thinned_row(flow.series, tfl.series[f], tfl.fl[f], (state.F_PS_COUNT, state.F_PS_EVERY, state.F_PS_LEN))
        stage = tfl.stage[f]
        stage[state.ST_SYN_FRAME], stage[state.ST_SYN_NS], stage[state.ST_EST_FRAME], stage[state.ST_EST_NS] = (
            syn_frame, syn_ns, est_frame, est_ns)
        stage[state.ST_READY] = 1


class Checkpoint:
    """A copy of every array of a Kernel record (namedtuples of arrays, nested) to go back to: kept in arrays of
    its own, made once and written over by each save()."""

    __slots__ = ("copies",)

    def __init__(self):
        self.copies: list[np.ndarray] | None = None

    def save(self, k) -> None:
        if self.copies is None:
            self.copies = [array.copy() for array in _arrays(k)]
            return
        for copy, array in zip(self.copies, _arrays(k), strict=True):
            np.copyto(copy, array)

    def rewind(self, k) -> None:
        """k's arrays back to what the last save() copied."""
        for array, copy in zip(_arrays(k), self.copies, strict=True):
            np.copyto(array, copy)


def _arrays(record):
    for value in record:
        if isinstance(value, np.ndarray):
            yield value
        elif isinstance(value, tuple):
            yield from _arrays(value)
        else:  # (state the loop keeps elsewhere would not go back with the arrays)
            raise TypeError(f"a Kernel record holds a {type(value).__name__}: Checkpoint copies arrays only")


def refused_report(fl, refused, reasons) -> dict:
    """Sockets._tcp_report()'s "refused" of a capture's flow: its drops of data it did not have, by reason (every
    drop but OLD_DATA's: the same count), the bytes, the first segments (time in ms, sequence number from the
    first byte, payload, reason)."""
    by_reason = {name: int(fl[state.F_DROPS + n]) for n, name in enumerate(reasons)
                 if fl[state.F_DROPS + n] and name not in OLD_DATA}
    first = [[round(int(row[state.RF_NS]) / 1e6, 3), int(row[state.RF_SEQ]), int(row[state.RF_PAYLOAD]),
              reasons[int(row[state.RF_REASON])]] for row in refused[:int(fl[state.F_REF_LEN])]]
    return {"segments": sum(by_reason.values()), "bytes": int(fl[state.F_REFUSED_BYTES]),
            "by_reason": dict(sorted(by_reason.items())), "first": first}
