"""Traffic for the fast engine: lengths, arrival times, RX queues and header lengths as int64 chunks, streamed."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from skbsim.fast.layout import ICE_RX_HDR_SIZE, njit
from skbsim.sim import RunConfig, Simulation


CHUNK = 1 << 16
#: distinct headers the pcap reader's header table (_HeaderTable) and _frames_with_headlen()'s memo
#: hold at once; when full they start over empty, so memory does not grow with the trace and the
#: answers do not change
HEADER_TABLE_SIZE = 1 << 12
#: the odd multiplier of _header_slots()'s hash (2**64 / golden ratio); tests set 0, making every
#: header's hash collide, so that only the byte comparison tells headers apart
HEADER_HASH_MIX = 0x9E3779B97F4A7C15


def _traffic_chunks(source, config: RunConfig, legacy: bool = False, ref: Simulation | None = None, measure=None):
    """(lengths, arrival times, RX queues) as int64 arrays of up to CHUNK frames, streamed.

    Synthetic sources give lengths without building frames (length_batches),
    arrival times by the same rule the frames use, and queues from the same
    seeded flow draws and per-flow RSS queue as SyntheticSource._generate; a
    classic pcap on one CPU is scanned by a compiled loop over 1 MiB reads
    (the same arithmetic as CaptureSource._pcap_frames), for rx=legacy with
    its frames' headers grouped by a compiled table (_HeaderTable) so that
    eth_get_headlen() runs once per distinct header; other captures are
    read frame by frame through the source.  Raises _Unscannable when the
    fast reader meets something it leaves to the reference reader.  With
    measure (virtio_net: a value of each frame's header bytes and length,
    skbsim.fast.virtio_setup.VirtioCodes) the fourth array holds it for every
    frame, measured once per (flow, length) or distinct frame.
    """
    from skbsim.traffic.capture import CaptureSource
    from skbsim.traffic.synthetic import SyntheticSource

    if measure is not None:
        if isinstance(source, SyntheticSource) and source.headers:
            yield from _synthetic_with_headlen(source, config, ref, measure, 0)
        else:
            yield from _frames_with_headlen(source, ref, measure, 0)
        return
    if legacy:
        if isinstance(source, SyntheticSource) and source.headers:
            yield from _synthetic_with_headlen(source, config, ref)
        elif (isinstance(source, CaptureSource) and source.format == "pcap" and config.cpus == 1
              and source.headers and _pcap_is_ethernet(source)):
            from skbsim.net.ethernet import eth_get_headlen

            dev = ref.dev

            def headlen_of(head: bytes) -> int:
                return eth_get_headlen(dev, head, ICE_RX_HDR_SIZE)

            for lengths, times, hlens in _pcap_chunks(source, headlen_of):
                yield lengths, times, np.zeros(len(lengths), np.int64), hlens
        else:
            yield from _frames_with_headlen(source, ref)
        return
    if isinstance(source, SyntheticSource):
        take_times = _arrival_times(source.rate, source.arrival, source.seed)
        take_queues = _synthetic_queues(source) if config.cpus > 1 else None
        for lengths in _length_arrays(source, CHUNK):
            queues = take_queues(lengths) if take_queues else np.zeros(len(lengths), np.int64)
            yield lengths, take_times(len(lengths)), queues, lengths
        return
    if isinstance(source, CaptureSource) and source.format == "pcap" and config.cpus == 1:
        for lengths, times, _ in _pcap_chunks(source):
            yield lengths, times, np.zeros(len(lengths), np.int64), lengths
        return
    lengths = []
    times = []
    queues = []
    for frame in source:
        lengths.append(frame.length)
        times.append(frame.time_ns)
        queues.append(frame.queue)
        if len(lengths) == CHUNK:
            arr = np.asarray(lengths, np.int64)
            yield arr, np.asarray(times, np.int64), np.asarray(queues, np.int64), arr
            lengths = []
            times = []
            queues = []
    if lengths:
        arr = np.asarray(lengths, np.int64)
        yield arr, np.asarray(times, np.int64), np.asarray(queues, np.int64), arr


def _length_arrays(source, n: int):
    """source.length_batches(n) as int64 arrays.  A cycle of lengths (imix) or a fixed length is cut from
    the period repeated by numpy, starting where the last batch ended (as CycleLength's cycle() stream
    does), without building lists."""
    from skbsim.traffic.synthetic import CycleLength, FixedLength

    model = source.lengths
    period = ()
    if isinstance(model, CycleLength):
        period = model.period
    elif isinstance(model, FixedLength):
        period = (model.length,)
    if not period:
        for batch in source.length_batches(n):
            yield np.asarray(batch, np.int64)
        return
    tiled = np.tile(np.asarray(period, np.int64), n // len(period) + 2)
    start = 0
    remaining = source.count
    while remaining > 0:
        k = min(n, remaining)
        remaining -= k
        yield tiled[start:start + k].copy()
        start = (start + k) % len(period)


def _pcap_is_ethernet(source) -> bool:
    """Ethernet captures keep their leading bytes as Frame.header (CaptureSource._pcap_frames)."""
    from skbsim.traffic import capture

    header = capture._read_pcap_header(source._head, source.path)
    return bool(capture.link_info(header.linktype)[3])


def _legacy_headlen(ref: Simulation):
    """ice_construct_skb()'s header length of a frame: the model's eth_get_headlen() of its bytes."""
    from skbsim.net.ethernet import eth_get_headlen

    dev = ref.dev
    return lambda header, length: eth_get_headlen(dev, header, ICE_RX_HDR_SIZE)


def _synthetic_with_headlen(source, config: RunConfig, ref: Simulation, headlen=None, above=ICE_RX_HDR_SIZE):
    """Synthetic frames in chunks with their eth_get_headlen() (or headlen(header, length) of each frame
    above `above` bytes), without building Frame objects.

    A synthetic frame's header bytes are its flow's template built for its
    length (SyntheticSource._generate), so the header length depends on
    (flow, length) only: it is measured once per pair by the model's
    eth_get_headlen() on exactly those bytes.  Flows are drawn per frame
    with the source's own seeded picker, as the frames draw them.
    """
    from skbsim.traffic.synthetic import SYNTHETIC_IPV4_UDP_MIN

    measure_header = headlen or _legacy_headlen(ref)
    take_times = _arrival_times(source.rate, source.arrival, source.seed)
    pick_flows = source._flow_picker()
    non_ip_queue = source.rss.table[0]
    flow_states: dict = {}
    headlen_of: dict[int, int] = {}

    def flow_state(index):
        state = flow_states.get(index)
        if state is None:
            state = flow_states[index] = source._flow_state(index)
        return state

    def measure(index, length):
        key = index * 65536 + length
        value = headlen_of.get(key)
        if value is None:
            header = flow_state(index).template.build(length)
            value = headlen_of[key] = measure_header(header, length)
            return value
        return value

    # On one CPU the flow matters only through the header length.  While every flow gives a
    # length the same header length, the per-frame flow draws are not needed; once one does
    # not, the draws are made (catching up on the frames already passed: the picker's draws
    # do not depend on how they are grouped) and used from then on.  Till then
    # same_for_all_flows[length] is that header length (0 up to `above`, -1 not measured yet).
    same_for_all_flows = None
    if config.cpus == 1 and source.flows <= 64:
        same_for_all_flows = np.full(above + 2, -1, np.int64)
        same_for_all_flows[:above + 1] = 0
    frames_done = 0
    for lengths in _length_arrays(source, CHUNK):
        n = len(lengths)
        if same_for_all_flows is not None:
            longest = int(lengths.max())
            if longest >= len(same_for_all_flows):
                same_for_all_flows = np.concatenate(
                    (same_for_all_flows, np.full(longest + 1 - len(same_for_all_flows), -1, np.int64)))
            hlens = same_for_all_flows[lengths]
            unmeasured = hlens < 0
            if unmeasured.any():
                for length in np.unique(lengths[unmeasured]).tolist():
                    values = {measure(index, length) for index in range(source.flows)}
                    if len(values) != 1:
                        same_for_all_flows = None
                        pick_flows(frames_done)
                        break
                    same_for_all_flows[length] = values.pop()
                else:
                    hlens = same_for_all_flows[lengths]
        if same_for_all_flows is not None:
            frames_done += n
            yield lengths, take_times(n), np.zeros(n, np.int64), hlens
            continue
        hlens = np.zeros(n, np.int64)
        long = lengths > above
        picks = np.fromiter(pick_flows(n), np.int64, n)
        flows = np.unique(picks)
        queue_of = np.zeros(int(flows[-1]) + 1 if len(flows) else 1, np.int64)
        for index in flows.tolist():
            queue_of[index] = flow_state(index).queue
        queues = queue_of[picks]
        queues[lengths < SYNTHETIC_IPV4_UDP_MIN] = non_ip_queue
        if long.any():
            keys = picks[long] * 65536 + lengths[long]
            unique, inverse = np.unique(keys, return_inverse=True)
            values = np.empty(len(unique), np.int64)
            for j, key in enumerate(unique.tolist()):
                index, length = divmod(key, 65536)
                values[j] = measure(index, length)
            hlens[long] = values[inverse]
        frames_done += n
        yield lengths, take_times(n), queues, hlens


def _frames_with_headlen(source, ref: Simulation, headlen=None, above=ICE_RX_HDR_SIZE):
    """Frames through the source, with what eth_get_headlen() finds in the bytes the NIC writes.

    ice_construct_skb() copies eth_get_headlen(header, ICE_RX_HDR_SIZE) bytes of
    a frame above ICE_RX_HDR_SIZE; the header is frame_header(frame, the
    ring's template), as ice_nic_receive() writes it, and the model's own
    eth_get_headlen() measures it (once per distinct header while the memo
    holds it: the memo is emptied when it reaches HEADER_TABLE_SIZE headers,
    so a capture of many distinct headers does not grow it without bound).
    headlen(header, length), for frames above `above` bytes, replaces it (its
    memo keyed by both).
    """
    from skbsim.drivers.base import frame_header

    measure = headlen or _legacy_headlen(ref)
    templates = [state.queue.synthetic for state in ref.cpus]
    ncpus = len(templates)
    known: dict = {}
    memo_size = max(1, HEADER_TABLE_SIZE)
    lengths = np.zeros(CHUNK, np.int64)
    times = np.zeros(CHUNK, np.int64)
    queues = np.zeros(CHUNK, np.int64)
    hlens = np.zeros(CHUNK, np.int64)
    n = 0
    for frame in source:
        length = frame.length
        lengths[n] = length
        times[n] = frame.time_ns
        queues[n] = frame.queue
        if length > above:
            header = frame_header(frame, templates[frame.queue % ncpus])
            key = header if headlen is None else (header, length)
            value = known.get(key)
            if value is None:
                if len(known) >= memo_size:
                    known.clear()
                value = known[key] = measure(header, length)
            hlens[n] = value
        n += 1
        if n == CHUNK:
            yield lengths.copy(), times.copy(), queues.copy(), hlens.copy()
            n = 0
    if n:
        yield lengths[:n].copy(), times[:n].copy(), queues[:n].copy(), hlens[:n].copy()


def _synthetic_queues(source):
    """Each frame's RX queue as SyntheticSource._generate gives it: the seeded flow draw (made for
    every frame), the flow's RSS queue, or the indirection table's first entry for frames too
    short for IPv4/UDP."""
    from skbsim.traffic.synthetic import SYNTHETIC_IPV4_UDP_MIN

    pick_flows = source._flow_picker()
    non_ip_queue = source.rss.table[0]
    queue_of_flow: dict[int, int] = {}

    def queues(lengths):
        picks = pick_flows(len(lengths))
        out = np.empty(len(lengths), np.int64)
        for i, index in enumerate(picks):
            queue = queue_of_flow.get(index)
            if queue is None:
                queue = queue_of_flow[index] = source._flow_state(index).queue
            out[i] = queue
        out[lengths < SYNTHETIC_IPV4_UDP_MIN] = non_ip_queue
        return out
    return queues


class _Unscannable(Exception):
    """The fast pcap reader stops; the reference engine reads the file (and reports the error)."""


def _arrival_times(rate, arrival, seed):
    """skbsim.traffic.synthetic.arrival_sampler as int64 arrays.

    Constant arrivals are floor(i * numerator / denominator) of the same
    exact fraction 1e9/rate; numpy computes them while both terms stay
    within int64, the sampler's own Python integers beyond that.
    """
    from fractions import Fraction

    from skbsim.traffic.synthetic import arrival_sampler

    sampler = arrival_sampler(rate, arrival, seed)
    if rate is None or arrival != "constant":
        return lambda k: np.asarray(sampler(k), np.int64)
    period = Fraction(10**9) / Fraction(rate)
    numerator, denominator = period.numerator, period.denominator
    position = 0

    def times(k):
        nonlocal position
        start = position
        position += k
        end = start + k
        if end * numerator < denominator:  # a rate above 1e9 * count frames/s: every frame at 0 ns
            return np.zeros(k, np.int64)
        if end * numerator < (1 << 62) and denominator < (1 << 62):
            index = np.arange(start, end, dtype=np.int64)
            return index * numerator // denominator
        # Python integers; a time beyond int64 raises OverflowError, which the engine takes as the
        # clock leaving its range (see CLOCK_LIMIT)
        sampler_times = [(i * numerator) // denominator for i in range(start, end)]
        return np.asarray(sampler_times, np.int64)
    return times


#: a chunk of pcap frames: each one's length and arrival time (ns from the first), where its bytes
#: start in the read buffer and how many were captured
PcapFrames = namedtuple("PcapFrames", ("lengths", "times", "hstart", "caplens"))
#: _scan_pcap()'s form (an int64 array): byte order (1 big-endian), record header length, ns per
#: timestamp fraction, the original lengths a frame may have, the largest caplen, what turns an
#: original length into a frame length
FORM_BIG, FORM_RECORD_LEN, FORM_FRAC_TO_NS, FORM_ORIG_MIN, FORM_ORIG_MAX, FORM_MAX_CAPLEN, FORM_ADJUST, FORM_SIZE = (
    range(8))
#: _scan_pcap()'s state (an int64 array): the position in the buffer, the first frame's time, the last
#: time given, frames read, the frame limit (-1 none), frames in the chunk, status (1: a corrupt record,
#: left to the reference reader)
SCAN_POS, SCAN_FIRST_NS, SCAN_LAST_NS, SCAN_INDEX, SCAN_LIMIT, SCAN_FILLED, SCAN_STATUS, SCAN_SIZE = range(8)


@njit(cache=True, forceinline=True)
def _u32(buf, pos, big):
    """The 32-bit field at buf[pos:pos + 4], big- or little-endian."""
    b0, b1, b2, b3 = np.int64(buf[pos]), np.int64(buf[pos + 1]), np.int64(buf[pos + 2]), np.int64(buf[pos + 3])
    if big:
        return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
    return (b3 << 24) | (b2 << 16) | (b1 << 8) | b0


@njit(cache=True, entry=True)
def _scan_pcap(buf, size, form, frames, st):
    """Classic pcap records from buf[st[SCAN_POS]:size] into frames (PcapFrames), the record layout in
    form (FORM_*), the reader's state in st (SCAN_*)."""
    pos = st[SCAN_POS]
    filled = st[SCAN_FILLED]
    big = form[FORM_BIG] != 0
    record_len = form[FORM_RECORD_LEN]
    while filled < frames.lengths.shape[0] and pos + record_len <= size:
        if 0 <= st[SCAN_LIMIT] <= st[SCAN_INDEX]:
            break
        sec, frac = _u32(buf, pos, big), _u32(buf, pos + 4, big)
        caplen, orig = _u32(buf, pos + 8, big), _u32(buf, pos + 12, big)
        if caplen > orig or caplen > form[FORM_MAX_CAPLEN]:
            st[SCAN_STATUS] = 1
            break
        end = pos + record_len + caplen
        if end > size:
            break
        if orig < form[FORM_ORIG_MIN] or orig > form[FORM_ORIG_MAX]:
            st[SCAN_STATUS] = 1
            break
        time_ns = sec * 1_000_000_000 + frac * form[FORM_FRAC_TO_NS]
        if st[SCAN_INDEX] == 0:
            st[SCAN_FIRST_NS] = time_ns
        time_ns -= st[SCAN_FIRST_NS]
        if time_ns < st[SCAN_LAST_NS]:
            time_ns = st[SCAN_LAST_NS]
        else:
            st[SCAN_LAST_NS] = time_ns
        frames.lengths[filled] = orig + form[FORM_ADJUST]
        frames.times[filled] = time_ns
        frames.hstart[filled] = pos + record_len  # where the record's bytes start in buf
        frames.caplens[filled] = caplen
        filled += 1
        st[SCAN_INDEX] += 1
        pos = end
    st[SCAN_POS] = pos
    st[SCAN_FILLED] = filled


#: _header_slots()'s table (see there); limits: the bytes a frame's length counts beyond its header bytes
#: (wire_adjust) and the most header bytes compared; mix: the hash multiplier; used[0]: slots taken
HeaderSlots = namedtuple("HeaderSlots", ("index", "words", "nbytes", "hashes", "seen_at", "scratch", "slot_of",
                                         "used", "limits", "mix"))
LIM_WIRE_ADJUST, LIM_MAX_BYTES = range(2)


@njit(cache=True, forceinline=True)
def _header_words(buf, start, usable, scratch, mix):
    """The header buf[start:start + usable] as little-endian 64-bit words into scratch (the last one
    zero-padded); returns its hash."""
    h = np.uint64(usable) * mix
    for w in range((usable + 7) >> 3):
        base = start + 8 * w
        if usable - 8 * w >= 8:  # a whole word: eight fixed shifts, which the compiler turns into one load
            word = (np.uint64(buf[base]) | (np.uint64(buf[base + 1]) << np.uint64(8))
                    | (np.uint64(buf[base + 2]) << np.uint64(16)) | (np.uint64(buf[base + 3]) << np.uint64(24))
                    | (np.uint64(buf[base + 4]) << np.uint64(32)) | (np.uint64(buf[base + 5]) << np.uint64(40))
                    | (np.uint64(buf[base + 6]) << np.uint64(48)) | (np.uint64(buf[base + 7]) << np.uint64(56)))
        else:
            word = np.uint64(0)
            for k in range(usable - 8 * w):
                word |= np.uint64(buf[base + k]) << np.uint64(8 * k)
        scratch[w] = word
        h = (h ^ word) * mix
        h ^= h >> np.uint64(29)
    return h


@njit(cache=True, forceinline=True)
def _same_header(table, slot, h, usable):
    """Whether slot holds the header in table.scratch (its hash h, usable bytes)."""
    if table.hashes[slot] != h or table.nbytes[slot] != usable:
        return False
    for w in range((usable + 7) >> 3):
        if table.words[slot, w] != table.scratch[w]:
            return False
    return True


@njit(cache=True, entry=True)
def _header_slots(buf, frames, first, last, table):
    """Give each frame of frames.lengths[first:last] above ICE_RX_HDR_SIZE the table slot of its header
    (its first min(length - wire_adjust, caplen, max_bytes) bytes in buf), others -1, into table.slot_of.

    A slot holds one distinct header: its bytes (as little-endian 64-bit words, the last one
    zero-padded, with the byte count beside them), their hash, and where in buf it was first
    seen.  index is an open-addressing table (linear probing, a power of two at least twice
    the slot count) of slot numbers, -1 empty.  A hash match counts only once the byte count
    and every word are equal, so two frames share a slot exactly when their headers are the
    same bytes.  Unseen headers take the next free slot (used[0] counts them); when none is
    left the pass stops and returns the frame it stopped at (else last), for the caller to
    measure the new slots' headers and start the table over.
    """
    mask = table.index.shape[0] - 1
    capacity = table.words.shape[0]
    taken = table.used[0]
    j = first
    while j < last:
        length = frames.lengths[j]
        if length <= ICE_RX_HDR_SIZE:
            table.slot_of[j] = -1
            j += 1
            continue
        usable = min(length - table.limits[LIM_WIRE_ADJUST], frames.caplens[j], table.limits[LIM_MAX_BYTES])
        start = frames.hstart[j]
        h = _header_words(buf, start, usable, table.scratch, table.mix)
        probe = np.int64(h & np.uint64(mask))
        slot = table.index[probe]
        while slot >= 0 and not _same_header(table, slot, h, usable):
            probe = (probe + 1) & mask
            slot = table.index[probe]
        if slot < 0:
            if taken == capacity:
                break
            slot = taken
            taken += 1
            table.index[probe] = slot
            table.hashes[slot] = h
            table.nbytes[slot] = usable
            table.seen_at[slot] = start
            for w in range((usable + 7) >> 3):
                table.words[slot, w] = table.scratch[w]
        table.slot_of[j] = slot
        j += 1
    table.used[0] = taken
    return j


class _HeaderTable:
    """Header lengths of pcap frames, each distinct header measured once by the model's function.

    The bytes are grouped by _header_slots() (compiled, exact byte comparison); only headers
    new to the table reach headlen_of(), in Python.  The table has HEADER_TABLE_SIZE slots
    (and fixed arrays): when it fills, the headers seen so far are measured and it starts
    over empty, so a capture of many distinct headers costs measurements, not memory.
    """

    __slots__ = ("headlen_of", "slots", "headlens")

    def __init__(self, headlen_of, wire_adjust: int, max_bytes: int, chunk: int):
        size = max(1, HEADER_TABLE_SIZE)
        self.headlen_of = headlen_of
        nwords = (max_bytes + 7) // 8
        self.slots = HeaderSlots(
            index=np.full(1 << (2 * size - 1).bit_length(), -1, np.int64), words=np.zeros((size, nwords), np.uint64),
            nbytes=np.zeros(size, np.int64), hashes=np.zeros(size, np.uint64), seen_at=np.zeros(size, np.int64),
            scratch=np.zeros(nwords, np.uint64), slot_of=np.zeros(chunk, np.int64), used=np.zeros(1, np.int64),
            limits=np.array([wire_adjust, max_bytes], np.int64), mix=np.uint64(HEADER_HASH_MIX))
        self.headlens = np.zeros(size, np.int64)

    def fill(self, data: bytes, buf, frames: PcapFrames, first: int, last: int, hlens) -> None:
        """hlens[first:last]: the header length of each frame above ICE_RX_HDR_SIZE (others 0)."""
        table = self.slots
        while first < last:
            known = int(table.used[0])
            stop = _header_slots(buf, frames, first, last, table)
            for slot in range(known, int(table.used[0])):
                start = int(table.seen_at[slot])
                self.headlens[slot] = self.headlen_of(data[start:start + int(table.nbytes[slot])])
            slots = table.slot_of[first:stop]
            hlens[first:stop] = np.where(slots >= 0, self.headlens[slots], 0)
            if stop < last:  # full: every slot is measured and used; start over from the frame that found none
                table.index[:] = -1
                table.used[0] = 0
            first = stop


def _pcap_chunks(source, headlen_of=None, facts=None):
    """A classic pcap's (lengths, times, header lengths), as CaptureSource._pcap_frames() (and
    _paced()) give them.  With headlen_of(header bytes), frames above ICE_RX_HDR_SIZE get it
    applied to their first min(frame length, caplen, HEADER_BYTES) captured bytes (the
    Frame.header a Ethernet capture carries), once per distinct header (_HeaderTable); others
    get 0.  With facts (capture_facts.CaptureFacts: GRO's TCP facts of each frame), each chunk
    comes with its facts as a fourth array."""
    from skbsim.traffic import capture
    from skbsim.traffic.frame import MAX_FRAME_LEN, MIN_FRAME_LEN

    header = capture._read_pcap_header(source._head, source.path)
    _, wire_adjust, _, _ = capture.link_info(header.linktype)
    fcs_len = header.fcs_len
    limit = -1 if source._limit is None else source._limit
    if limit == 0:
        return
    paced = _arrival_times(source.rate, source.arrival, source.seed) if source.rate is not None else None
    st = np.zeros(SCAN_SIZE, np.int64)
    st[SCAN_LIMIT] = limit
    from skbsim.traffic.frame import HEADER_BYTES

    frames = PcapFrames(*(np.zeros(CHUNK, np.int64) for _ in PcapFrames._fields))
    hlens = np.zeros(CHUNK, np.int64)
    table = None if headlen_of is None else _HeaderTable(headlen_of, wire_adjust, HEADER_BYTES, CHUNK)
    form = np.zeros(FORM_SIZE, np.int64)
    form[FORM_BIG] = header.order == ">"
    form[FORM_RECORD_LEN] = header.record_len
    form[FORM_FRAC_TO_NS] = 1 if header.nano else 1000
    form[FORM_ORIG_MIN] = MIN_FRAME_LEN + fcs_len - wire_adjust
    form[FORM_ORIG_MAX] = MAX_FRAME_LEN + fcs_len - wire_adjust
    form[FORM_MAX_CAPLEN] = max(header.snaplen, capture._MAX_CAPLEN)
    form[FORM_ADJUST] = wire_adjust - fcs_len
    with capture._open(source.path) as f:
        f.seek(capture._FILE_HEADER_LEN)
        rest = b""
        eof = False
        while True:
            more = b"" if eof else f.read(capture._READ_CHUNK)
            eof = not more
            data = rest + more
            buf = np.frombuffer(data, np.uint8)
            st[SCAN_POS] = 0
            while True:
                before = int(st[SCAN_FILLED])
                _scan_pcap(buf, len(data), form, frames, st)
                if st[SCAN_STATUS]:
                    raise _Unscannable
                if table is not None:
                    # while this read's bytes are at hand: the header lengths of the new frames
                    table.fill(data, buf, frames, before, int(st[SCAN_FILLED]), hlens)
                if facts is not None:
                    facts.fill(buf, frames, before, int(st[SCAN_FILLED]))
                if st[SCAN_FILLED] == CHUNK:
                    yield (frames.lengths.copy(), (paced(CHUNK) if paced else frames.times.copy()), hlens.copy()) + (
                        () if facts is None else (facts.facts.copy(),))
                    hlens[:] = 0
                    st[SCAN_FILLED] = 0
                    continue
                break
            rest = data[st[SCAN_POS]:]
            if 0 <= limit <= st[SCAN_INDEX] or (eof and not rest):
                break
            if eof:
                raise _Unscannable  # a partial record at the end: the reference reader names the offset
    n = int(st[SCAN_FILLED])
    if n:
        yield (frames.lengths[:n].copy(), (paced(n) if paced else frames.times[:n].copy()), hlens[:n].copy()) + (
            () if facts is None else (facts.facts[:n].copy(),))
