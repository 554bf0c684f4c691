"""A classic pcap's TCP_SKB_CB rows and plan for TCP receivers read by numpy (capture_facts.CaptureSegments, behind
tcp_capture.CapturePlan.scan() and capture_tcp_chunks()) against the frame-by-frame reading (parse_segment(),
CapturePlan.cb_row()) the fast engine keeps for every other capture."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import capture_facts, state
from skbsim.fast.tcp_capture import CapturePlan, CaptureSetups, capture_tcp_chunks
from skbsim.sim import RunConfig, Simulation
from tcp_engines import (ACK, FIN, PSH, SYN, internet_checksum, random_capture, segment, udp_datagram,
                         write_capture)

#: the readings compared: (driver, options, legacy-rx's header lengths, GRO's facts too)
FORMS = [("tun", {}, False, False), ("ice", {"rx": "legacy", "gro": "0"}, True, False),
         ("ice", {"rx": "build_skb"}, False, True)]


def _with_options(seq: int, payload: int, options: bytes, flags: int = ACK | PSH) -> bytes:
    """segment() with other TCP option bytes (a multiple of 4)."""
    frame = bytearray(segment(seq, payload, flags=flags, ts=None))
    ip, tcp, data = frame[14:34], frame[34:54], frame[54:]
    tcp[12] = ((20 + len(options)) // 4) << 4
    ip[2:4] = struct.pack(">H", 40 + len(options) + len(data))
    ip[10:12] = b"\0\0"
    ip[10:12] = struct.pack(">H", internet_checksum(bytes(ip)))
    return bytes(frame[:14] + ip + tcp + options + data)


def _odd_frame(rng: random.Random) -> bytes:
    """A frame the readers must agree on that random_capture() does not draw."""
    kind = rng.randrange(8)
    if kind == 0:
        return segment(5, 10, flags=ACK | 0x20)  # URG
    if kind == 1:
        return segment(5, 10, flags=PSH)  # no ACK
    if kind == 2:
        return segment(999, 0, flags=SYN, ack=0)  # a SYN, after data when it comes late
    if kind == 3:
        return segment(1, 10)[:60]  # cut inside the TCP header
    if kind == 4:
        return udp_datagram(30)
    if kind == 5:
        frame = bytearray(segment(1, 10))
        frame[20] = 0x20  # IP_MF
        return bytes(frame)
    if kind == 6:
        return segment(1, 2) + bytes(6)  # padded past tot_len
    two = bytes([1, 1, 8, 10]) + struct.pack(">II", 11, 12) + bytes([1, 1, 8, 10]) + struct.pack(">II", 21, 22)
    return _with_options(1000, 30, two)  # two timestamp options: tcp_parse_options() keeps the last


def _both_readings(traffic: str, driver: str, options: dict, legacy: bool, gro: bool, max_flows: int = 3):
    """(plan or its refusal, chunks, held frames) by numpy, then frame by frame."""
    ref = Simulation(RunConfig(driver=driver, options=options, traffic=traffic, socket="tcp", count=None,
                               rate=None))
    assert capture_facts.capture_segment_chunks(ref.source, ref, legacy, gro) is not None
    out = []
    for scan in (CapturePlan.scan, CapturePlan._scan_frames):
        try:
            plan = scan(ref.source, max_flows)
        except ValueError as err:
            out.append((str(err), None, None))
            continue
        setups = CaptureSetups(plan)
        if scan is CapturePlan.scan:
            chunks = list(capture_tcp_chunks(ref.source, ref, plan, setups, legacy, None, gro))
        else:  # the frame-by-frame path, as for a capture numpy does not read
            real = capture_facts.capture_segment_chunks
            capture_facts.capture_segment_chunks = lambda *args, **kw: None
            try:
                chunks = list(capture_tcp_chunks(ref.source, ref, plan, setups, legacy, None, gro))
            finally:
                capture_facts.capture_segment_chunks = real
        fields = {name: getattr(plan, name) for name in ("keys", "index", "lengths", "frames", "flow_frames")}
        out.append((fields, chunks, setups.held))
    return out


def _assert_same(traffic: str, driver: str, options: dict, legacy: bool, gro: bool) -> None:
    (plan, chunks, held), (plan_1, chunks_1, held_1) = _both_readings(traffic, driver, options, legacy, gro)
    assert plan == plan_1
    if chunks is None:
        return
    assert len(chunks) == len(chunks_1) and held == held_1
    for chunk, chunk_1 in zip(chunks, chunks_1):
        for a, b in zip(chunk, chunk_1):
            assert (a is None) == (b is None) and (a is None or np.array_equal(a, b))


def test_one_segment_derived_by_hand(tmp_path):
    # A SYN (ISN 999) with MSS, SACK-permitted with the timestamps, window scale: 4 + 12 + 4 = 20 bytes of options,
    # a frame of 14 + 20 + 40 = 74 bytes.  Then a segment of 100 bytes at sequence 1000 with FIN|ACK|PSH, the
    # timestamps option (NOP, NOP, TSval 1001, TSecr 99: segment()'s), ack_seq 7, window 502: a frame of 14 + 20 +
    # 32 + 100 = 166 bytes; end_seq = 1000 + 100 + 1 (the FIN) = 1101, less the FIN the model leaves out
    # (Sockets._tcp()): 1100, its flags ACK|PSH; doff 20 + 12 = 32 bytes.  One flow, keyed by addresses and ports.
    frames = [(0.0, segment(999, 0, flags=SYN, ack=0, syn_options=True)),
              (1e-5, segment(1000, 100, flags=ACK | PSH | FIN, ts=1001))]
    traffic = write_capture(str(tmp_path / "c.pcap"), frames)
    ref = Simulation(RunConfig(driver="tun", options={}, traffic=traffic, socket="tcp", count=None, rate=None))
    plan = CapturePlan.scan(ref.source, 3)
    assert plan.keys == [(6, bytes([198, 18, 0, 1]), bytes([192, 0, 2, 1]), 40000, 5001)]
    assert (plan.frames, plan.flow_frames, plan.lengths) == (2, [2], {74, 166})
    (chunk,) = list(capture_tcp_chunks(ref.source, ref, plan, CaptureSetups(plan), False, None, False))
    row = chunk[4][1]
    assert (row[state.CB_FLOW], row[state.CB_SEQ], row[state.CB_END_SEQ], row[state.CB_ACK_SEQ]) == (0, 1000, 1100, 7)
    assert (row[state.CB_TCP_FLAGS], row[state.CB_DOFF], row[state.CB_WINDOW]) == (ACK | PSH, 32, 502)
    assert (row[state.CB_TSVAL], row[state.CB_TSECR], row[state.CB_SEGS], row[state.CB_FRAME]) == (1001, 99, 1, 1)


@pytest.mark.parametrize("form", FORMS, ids=["tun", "ice-legacy", "ice-gro"])
def test_odd_frames_read_alike(tmp_path, form):
    rng = random.Random(7)
    for trial in range(12):
        frames = [segment(1000 + 100 * n, 100, ts=rng.choice([None, 5])) for n in range(rng.randint(1, 4))]
        frames.insert(rng.randrange(len(frames) + 1), _odd_frame(rng))
        traffic = write_capture(str(tmp_path / f"c{trial}.pcap"), [(n * 1e-5, f) for n, f in enumerate(frames)])
        _assert_same(traffic, *form)


def test_a_capture_without_tcp_read_alike(tmp_path):
    frames = [(n * 1e-5, udp_datagram(10 * n)) for n in range(3)]
    _assert_same(write_capture(str(tmp_path / "c.pcap"), frames), "tun", {}, False, False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), form=st.sampled_from(FORMS))
def test_random_captures_read_alike(tmp_path, seed, form):
    traffic, _ = random_capture(random.Random(seed), str(tmp_path / "c.pcap"), 300, udp_share=0.3)
    _assert_same(traffic, *form)
