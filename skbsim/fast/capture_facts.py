"""The TCP facts of a classic pcap's frames for a GRO run, and their TCP_SKB_CB for TCP receivers, read by numpy
over the frames' bytes.

gro.frame_facts() reads them one frame at a time in Python (about 69,000 frames/s with the capture's reader);
here the compiled pcap scan (traffic._pcap_chunks()) finds the records, and each chunk's facts are read at once
from a matrix of the frames' leading bytes: the same tests and fields, in the same F_* columns, the flows
numbered in the order they first appear as frame_facts() numbers them, and the RSS hash of each distinct
address-and-port key from the capture's own classifier (FlowClassifier.classify_ethernet()).

-- TCP capture --: CaptureSegments reads each frame's TCP_SKB_CB row the same way, as tcp_capture.parse_segment()
and CapturePlan.cb_row() read it one frame at a time (about 30,000 frames/s), for CapturePlan.scan() and for the
rows beside the run's chunks (capture_segment_chunks()).
"""

from __future__ import annotations

import numpy as np

from skbsim.fast.gro import (
    F_ACK, F_FIELDS, F_FLAGS, F_FLOW, F_FRAG_OFF, F_HASH, F_IPID, F_OPT, F_OPT_WORDS, F_SEQ, F_TCP, F_THLEN,
    F_TOTLEN, F_TSECR, F_TSVAL, F_TTL_TOS,
)
from skbsim.fast.state import (
    CB_ACK_SEQ, CB_DOFF, CB_END_SEQ, CB_FIELDS, CB_FLOW, CB_FRAME, CB_SEGS, CB_SEQ, CB_TCP_FLAGS, CB_TSECR, CB_TSVAL,
    CB_WINDOW,
)
from skbsim.fast.tcp_capture import FLAGS_COVERED, parse_segment  # -- TCP capture --
from skbsim.net.ipv4.tcp import TCPHDR_ACK, TCPHDR_FIN, TCPHDR_RST, TCPHDR_SYN, U32
from skbsim.sockets import IPPROTO_TCP
from skbsim.traffic.capture import _kept_header
from skbsim.traffic.frame import HEADER_BYTES

ETH_HLEN = 14
IP_AT = ETH_HLEN
TCP_AT = ETH_HLEN + 20
#: the flow key frame_facts() compares: the MAC header, the addresses and the ports
FLOW_KEY = np.r_[0:ETH_HLEN, 26:38]
#: the bytes read: up to the end of the longest TCP header (60 bytes)
READ_BYTES = TCP_AT + 60


def _be(rows, at: int, width: int) -> np.ndarray:
    """The big-endian unsigned field of width bytes at column at of every row (uint8), as int64."""
    value = np.zeros(rows.shape[0], np.int64)
    for i in range(width):
        value = (value << 8) | rows[:, at + i].astype(np.int64)
    return value


class _ChunkReader:
    """What fills rows of its facts for a chunk's frames (traffic.PcapFrames) as traffic._pcap_chunks() finds their
    records: fill(buf, frames, first, last), which reads the frames' leading bytes (_leading_bytes()) and passes
    them to read(); a reader beside another over the same frames (_Both) is given the bytes the other read."""

    __slots__ = ("wire_adjust", "facts")

    def fill(self, buf, frames, first: int, last: int) -> None:
        if first < last:
            self.read(buf, frames, first, last, _leading_bytes(buf, frames, first, last, self.wire_adjust))

    def read(self, buf, frames, first: int, last: int, leading) -> None:
        """facts[first:last] from leading, _leading_bytes()' (rows, header lengths, bytes in the record)."""
        raise NotImplementedError


class CaptureFacts(_ChunkReader):
    """Fills facts[first:last] for frames (traffic.PcapFrames) whose record bytes are in buf."""

    __slots__ = ("classify", "flows", "hashes")

    def __init__(self, wire_adjust: int, classify, chunk: int):
        self.wire_adjust = wire_adjust
        self.classify = classify  # FlowClassifier.classify_ethernet, or None (the capture's flows not parsed)
        self.flows: dict = {}  # flow key bytes -> flow number, in the order the flows first appear
        self.hashes: dict = {}  # address-and-port bytes -> RSS hash
        self.facts = np.zeros((chunk, F_FIELDS), np.int64)

    def read(self, buf, frames, first: int, last: int, leading) -> None:
        facts = self.facts[first:last]
        facts[:] = 0
        rows, hlen, _ = leading
        n = last - first
        ok = (hlen >= TCP_AT) & (rows[:, 12] == 0x08) & (rows[:, 13] == 0x00)
        ok &= (rows[:, IP_AT + 9] == 6) & (rows[:, IP_AT] == 0x45)
        frag_off = _be(rows, IP_AT + 6, 2)
        ok &= (frag_off & 0x3FFF) == 0  # IP_MF | IP_OFFSET
        total = np.zeros(n, np.int64)
        for w in range(10):
            total += _be(rows, IP_AT + 2 * w, 2)
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        ok &= total == 0xFFFF
        ok &= hlen >= TCP_AT + 20
        thlen = (rows[:, TCP_AT + 12] >> 4).astype(np.int64) * 4
        ok &= (thlen >= 20) & (hlen >= TCP_AT + thlen)
        picked = np.flatnonzero(ok)
        if not len(picked):
            return
        rows = rows[picked]
        thlen = thlen[picked]
        out = facts[picked]
        out[:, F_TCP] = 1
        out[:, F_FLOW] = self._flow_numbers(rows)
        out[:, F_HASH] = self._rss_hashes(rows, hlen[picked])
        out[:, F_SEQ] = _be(rows, TCP_AT + 4, 4)
        out[:, F_ACK] = _be(rows, TCP_AT + 8, 4)
        out[:, F_FLAGS] = _be(rows, TCP_AT + 12, 4)
        out[:, F_THLEN] = thlen
        out[:, F_IPID] = _be(rows, IP_AT + 4, 2)
        out[:, F_TTL_TOS] = rows[:, IP_AT + 8].astype(np.int64) << 8 | rows[:, IP_AT + 1]
        out[:, F_FRAG_OFF] = frag_off[picked]
        out[:, F_TOTLEN] = _be(rows, IP_AT + 2, 2)
        # the option bytes, zeros after them, as little-endian words (struct "<q": signed)
        options = _option_bytes(rows, thlen, 8 * F_OPT_WORDS)
        out[:, F_OPT:F_OPT + F_OPT_WORDS] = np.ascontiguousarray(options).view("<i8")
        has, tsval, tsecr = _timestamps(rows, options, thlen)
        out[has, F_TSVAL] = tsval[has]
        out[has, F_TSECR] = tsecr[has]
        facts[picked] = out

    def _flow_numbers(self, rows) -> np.ndarray:
        """frame_facts()'s flow numbers: a new key takes the next number, in the order of its first frame."""
        return _flow_numbers(rows[:, FLOW_KEY], self.flows)

    def _rss_hashes(self, rows, hlen) -> np.ndarray:
        """Frame.rss_hash of each TCP frame: an untagged IPv4 TCP frame without IP options or fragment bits,
        so classify_ethernet()'s lookup by the addresses and ports (bytes 26 to 38); 0 when the capture's flows
        are not parsed."""
        if self.classify is None:
            return np.zeros(len(rows), np.int64)
        first, inverse = _groups(rows[:, 26:38])
        values = np.zeros(len(first), np.int64)
        for g, j in enumerate(first):
            key = rows[j, 26:38].tobytes()
            value = self.hashes.get(key)
            if value is None:
                value = self.hashes[key] = self.classify(rows[j, :hlen[j]].tobytes())[1]
            values[g] = value
        return values[inverse]


def _leading_bytes(buf, frames, first: int, last: int, wire_adjust: int):
    """The leading READ_BYTES of frames[first:last]'s Frame.header as rows of a uint8 matrix (zeros past it), the
    header's length and the bytes the record holds of it.  Frame.header: the record's first min(frame length,
    caplen, HEADER_BYTES) bytes, at least an Ethernet header (zeros complete it: capture._kept_header())."""
    usable = np.minimum(np.minimum(frames.lengths[first:last] - wire_adjust, frames.caplens[first:last]),
                        HEADER_BYTES)
    hlen = np.maximum(usable, ETH_HLEN)
    columns = np.arange(READ_BYTES)
    inside = columns[None, :] < usable[:, None]
    at = np.where(inside, frames.hstart[first:last, None] + columns[None, :], 0)
    return np.where(inside, buf[at], np.uint8(0)), hlen, usable


def _flow_numbers(keys, flows: dict, new=None) -> np.ndarray:
    """Each row's flow number by its key bytes (rows of keys): flows maps a key's bytes to its number, a new key
    taking the next one in the order of its first row (and passed to new(key bytes))."""
    first, inverse = _groups(keys)
    numbers = np.zeros(len(first), np.int64)
    for g in np.argsort(first, kind="stable"):
        key = keys[first[g]].tobytes()
        number = flows.get(key)
        if number is None:
            number = flows[key] = len(flows)
            if new is not None:
                new(key)
        numbers[g] = number
    return numbers[inverse]


#: _groups()' hash multiplier (odd: 2**64 / the golden ratio)
MIX = np.uint64(0x9E3779B97F4A7C15)


def _groups(keys) -> tuple[np.ndarray, np.ndarray]:
    """The rows of keys (uint8) grouped by equal bytes: each group's first row, and each row's group.  Rows are
    grouped by a 64-bit hash of their bytes, then checked byte for byte against their group's first row; on a
    collision, by the bytes themselves."""
    n, width = keys.shape
    words = np.zeros((n, -(-width // 8) * 8), np.uint8)
    words[:, :width] = keys
    words = words.view("<u8")
    h = np.zeros(n, np.uint64)
    for c in range(words.shape[1]):
        h = (h ^ words[:, c]) * MIX
        h ^= h >> np.uint64(29)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if (keys == keys[first[inverse]]).all():
        return first, inverse
    seen: dict = {}
    group = np.array([seen.setdefault(row.tobytes(), len(seen)) for row in keys], np.int64)
    _, first = np.unique(group, return_index=True)
    return first, group


def _option_bytes(rows, thlen, width: int) -> np.ndarray:
    """Each row's first width bytes of TCP options (its header of thlen bytes), zeros after them."""
    options = rows[:, TCP_AT + 20:TCP_AT + 20 + width].copy()
    options[np.arange(width)[None, :] >= (thlen - 20)[:, None]] = 0
    return options


def _timestamps(rows, options, thlen, last: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(whether, TSval, TSecr) of each row's timestamp option (its option bytes, header of thlen bytes; the first,
    or with last the last: _timestamp_options()), TSval and TSecr 0 without one."""
    tsval_at = _timestamp_options(options, thlen - 20, last)
    has = tsval_at >= 0
    where = TCP_AT + 20 + tsval_at[has]
    stamped = rows[has]
    index = np.arange(len(stamped))
    val = np.zeros(len(stamped), np.int64)
    ecr = np.zeros(len(stamped), np.int64)
    for i in range(4):
        val = (val << 8) | stamped[index, where + i]
        ecr = (ecr << 8) | stamped[index, where + 4 + i]
    tsval = np.zeros(len(rows), np.int64)
    tsecr = np.zeros(len(rows), np.int64)
    tsval[has] = val
    tsecr[has] = ecr
    return has, tsval, tsecr


def _timestamp_options(options, length, last: bool = False) -> np.ndarray:
    """gro._timestamp_option() of every row at once: where TSval starts in its option bytes
    (options[r, :length[r]]), or -1; with last, the last timestamp option's, as tcp_parse_options() reads them
    all."""
    n = options.shape[0]
    found = np.full(n, -1, np.int64)
    pos = np.zeros(n, np.int64)
    active = pos < length
    rows = np.arange(n)
    width = options.shape[1]
    while active.any():
        r = rows[active]
        i = pos[r]
        kind = options[r, i].astype(np.int64)
        nxt = np.where(i + 1 < width, options[r, np.minimum(i + 1, width - 1)], 0).astype(np.int64)
        end = kind == 0
        nop = kind == 1
        bad = ~end & ~nop & ((i + 1 >= length[r]) | (nxt < 2))
        stamp = ~end & ~nop & ~bad & (kind == 8) & (nxt == 10) & (i + 10 <= length[r])
        found[r[stamp]] = i[stamp] + 2
        step = np.where(nop, 1, nxt)
        pos[r] = i + step
        stop = end | bad if last else end | bad | stamp
        active[r[stop]] = False
        active &= pos < length
    return found


def capture_fact_chunks(source, ref, legacy: bool):
    """gro.capture_chunks()'s chunks of a classic Ethernet pcap on one CPU (traffic._pcap_chunks(): the compiled
    scan, header lengths measured for legacy-rx only) with each frame's facts read here; None for any other
    capture (read frame by frame)."""
    from skbsim.fast.traffic import CHUNK, _legacy_headlen, _pcap_chunks, _pcap_is_ethernet
    from skbsim.traffic import capture
    from skbsim.traffic.capture import CaptureSource

    if not (isinstance(source, CaptureSource) and source.format == "pcap" and ref.config.cpus == 1
            and source.headers and _pcap_is_ethernet(source)):
        return None
    header = capture._read_pcap_header(source._head, source.path)
    _, wire_adjust, classify_name, _ = capture.link_info(header.linktype)
    classify = source._classifier(classify_name)
    headlen_of = _legacy_headlen_of(_legacy_headlen(ref)) if legacy else None

    facts = CaptureFacts(wire_adjust, classify, CHUNK)
    return ((lengths, times, np.zeros(len(lengths), np.int64), hlens, rows)
            for lengths, times, hlens, rows in _pcap_chunks(source, headlen_of, facts))


def _legacy_headlen_of(measure):
    """eth_get_headlen() of a frame's kept header bytes, as _frames_with_headlen() measures Frame.header."""
    from skbsim.traffic import capture

    return lambda head: measure(capture._kept_header(head), 0)


# -- TCP capture --: each frame's TCP_SKB_CB, as tcp_capture.parse_segment() and CapturePlan.cb_row() read it


#: CaptureSegments' column beyond CB_*: 1 when the frame is a segment the fast engine covers (parse_segment()
#: returns no reason)
SEG_COVERED = CB_FIELDS
SEG_FIELDS = CB_FIELDS + 1
#: the address-and-port bytes of a flow's key (tcp_capture's keys are (IPPROTO_TCP, saddr, daddr, sport, dport))
PORTS_KEY = np.r_[26:38]


class CaptureSegments(_ChunkReader):
    """Fills rows[first:last] (CB_* columns and SEG_COVERED) for frames (traffic.PcapFrames) whose record bytes are
    in buf: each covered frame's TCP_SKB_CB row as CapturePlan.cb_row() reads it, its flow numbered in the order
    the flows first appear (keys: their CapturePlan.keys); the first frame not covered keeps its reason
    (``refused``: (frame number, parse_segment()'s words)).  With a holder (tcp_capture.CaptureSetups), each
    flow's frames it asks for are passed to it with their header bytes (CaptureSetups.keep())."""

    __slots__ = ("flows", "keys", "number", "refused", "holder")

    def __init__(self, wire_adjust: int, chunk: int, holder=None, facts=None):
        self.wire_adjust = wire_adjust
        self.flows: dict = {}  # address-and-port bytes -> flow number
        self.keys: list = []
        self.facts = np.zeros((chunk, SEG_FIELDS), np.int64) if facts is None else facts
        self.number = 0  # the capture's frames filled before
        self.refused: tuple[int, str] | None = None
        self.holder = holder

    def read(self, buf, frames, first: int, last: int, leading) -> None:
        out = self.facts[first:last]
        out[:] = 0
        rows, hlen, usable = leading
        n = last - first
        base = self.number
        self.number += n
        lengths = frames.lengths[first:last]
        tot_len = _be(rows, IP_AT + 2, 2)
        doff = (rows[:, TCP_AT + 12] >> 4).astype(np.int64) * 4
        flags = rows[:, TCP_AT + 13].astype(np.int64)
        # sockets.ipv4_flow(): IPv4 TCP without options or fragment bits, its ports in the header
        ok = (hlen >= TCP_AT + 4) & (rows[:, 12] == 0x08) & (rows[:, 13] == 0x00) & (rows[:, IP_AT] == 0x45)
        ok &= (rows[:, IP_AT + 9] == IPPROTO_TCP) & ((rows[:, IP_AT + 6] & 0x3F) == 0) & (rows[:, IP_AT + 7] == 0)
        ok &= tot_len + ETH_HLEN == lengths  # neither padded nor cut short
        # tcp_v4_fill_cb(): the header and its options in the bytes, doff of at least 5 words
        ok &= (hlen >= TCP_AT + 20) & (doff >= 20) & (hlen >= TCP_AT + doff) & (tot_len - 20 >= doff)
        ok &= (flags & ~FLAGS_COVERED & 0xFF) == 0
        ok &= (flags & (TCPHDR_SYN | TCPHDR_RST | TCPHDR_ACK)) != 0
        out[:, SEG_COVERED] = ok
        if self.refused is None and not ok.all():
            i = int(np.argmin(ok))
            self.refused = (base + i, parse_segment(self._header(buf, frames, first + i, usable[i]),
                                                    int(lengths[i])))
        picked = np.flatnonzero(ok)
        if not len(picked):
            return
        rows = rows[picked]
        doff = doff[picked]
        flags = flags[picked]
        flows = _flow_numbers(rows[:, PORTS_KEY], self.flows, self._new_key)
        seq = _be(rows, TCP_AT + 4, 4)
        syn_fin = (flags & TCPHDR_SYN != 0).astype(np.int64) + (flags & TCPHDR_FIN != 0)
        end_seq = (seq + tot_len[picked] - 20 - doff + syn_fin) & U32
        # Sockets._tcp(): a FIN not modelled, its data kept
        fin = (flags & TCPHDR_FIN != 0) & (flags & (TCPHDR_SYN | TCPHDR_RST) == 0)
        flags = np.where(fin, flags & ~TCPHDR_FIN, flags)
        end_seq = np.where(fin, (end_seq - 1) & U32, end_seq)
        # tcp_parse_options(): the last timestamp option's TSval and TSecr (TSval -1: none)
        has, tsval, tsecr = _timestamps(rows, _option_bytes(rows, doff, 40), doff, last=True)
        tsval[~has] = -1
        cb = out[picked]
        cb[:, CB_FLOW] = flows
        cb[:, CB_SEQ] = seq
        cb[:, CB_END_SEQ] = end_seq
        cb[:, CB_ACK_SEQ] = _be(rows, TCP_AT + 8, 4)
        cb[:, CB_TCP_FLAGS] = flags
        cb[:, CB_DOFF] = doff
        cb[:, CB_WINDOW] = _be(rows, TCP_AT + 14, 2)
        cb[:, CB_TSVAL] = tsval
        cb[:, CB_TSECR] = tsecr
        cb[:, CB_SEGS] = 1
        cb[:, CB_FRAME] = base + picked
        out[picked] = cb
        if self.holder is not None:
            for f, i in self._wanted(picked, flows):
                self.holder.keep(f, base + i, self._header(buf, frames, first + i, usable[i]), int(lengths[i]))

    def _new_key(self, ports: bytes) -> None:
        self.keys.append((IPPROTO_TCP, ports[0:4], ports[4:8], int.from_bytes(ports[8:10], "big"),
                          int.from_bytes(ports[10:12], "big")))

    def _wanted(self, picked, flows):
        """(flow, place) of the frames of the flows the holder still wants, up to as many as it wants of each."""
        for f in np.unique(flows).tolist():
            room = self.holder.room(f)
            if room:
                for i in picked[flows == f][:room].tolist():
                    yield f, i

    @staticmethod
    def _header(buf, frames, at: int, usable: int) -> bytes:
        """Frame.header of frames[at]: its kept leading bytes."""
        start = int(frames.hstart[at])
        return _kept_header(buf[start:start + max(int(usable), 0)].tobytes())


def capture_segment_chunks(source, ref, legacy: bool, gro: bool, holder=None, scan: bool = False):
    """(reader, chunks) of a classic Ethernet pcap, read by numpy: traffic._pcap_chunks()'s (lengths, arrival
    times, RX queues, header lengths: legacy-rx's) with each frame's TCP_SKB_CB row and, through GRO, its
    CaptureFacts row (else None); the reader (CaptureSegments) holds the flows' keys and the first frame not
    covered.  None for a capture read frame by frame: another format or link, or RSS over several CPUs (the
    queues; scan: only the rows wanted)."""
    from skbsim.fast.traffic import CHUNK, _legacy_headlen, _pcap_chunks, _pcap_is_ethernet
    from skbsim.traffic import capture
    from skbsim.traffic.capture import CaptureSource

    if not (isinstance(source, CaptureSource) and source.format == "pcap" and (scan or ref.config.cpus == 1)
            and source.headers and _pcap_is_ethernet(source)):
        return None
    header = capture._read_pcap_header(source._head, source.path)
    _, wire_adjust, classify_name, _ = capture.link_info(header.linktype)
    headlen_of = _legacy_headlen_of(_legacy_headlen(ref)) if legacy and not scan else None
    if not gro:
        reader = CaptureSegments(wire_adjust, CHUNK, holder)
        return reader, ((lengths, times, np.zeros(len(lengths), np.int64), hlens, rows, None)
                        for lengths, times, hlens, rows in _pcap_chunks(source, headlen_of, reader))
    both = _Both(CHUNK, CaptureFacts(wire_adjust, source._classifier(classify_name), CHUNK), wire_adjust, holder)
    return both.segments, ((lengths, times, np.zeros(len(lengths), np.int64), hlens, rows[:, F_FIELDS:],
                            rows[:, :F_FIELDS])
                           for lengths, times, hlens, rows in _pcap_chunks(source, headlen_of, both))


class _Both:
    """CaptureFacts and CaptureSegments of the same frames, in one matrix (GRO's F_* columns, then SEG_FIELDS),
    from one reading of their leading bytes."""

    __slots__ = ("facts", "gro", "segments")

    def __init__(self, chunk: int, gro: CaptureFacts, wire_adjust: int, holder):
        self.facts = np.zeros((chunk, F_FIELDS + SEG_FIELDS), np.int64)
        gro.facts = self.facts[:, :F_FIELDS]
        self.gro = gro
        self.segments = CaptureSegments(wire_adjust, chunk, holder, self.facts[:, F_FIELDS:])

    def fill(self, buf, frames, first: int, last: int) -> None:
        if first < last:
            leading = _leading_bytes(buf, frames, first, last, self.segments.wire_adjust)
            self.gro.read(buf, frames, first, last, leading)
            self.segments.read(buf, frames, first, last, leading)
