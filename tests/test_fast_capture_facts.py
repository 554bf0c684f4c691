"""A classic pcap's TCP facts for GRO runs read by numpy (skbsim.fast.capture_facts) against gro.frame_facts()."""

from __future__ import annotations

import struct

import dpkt
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gro_helpers import CWR, FIN, PSH, tcp_frame
from skbsim.fast.capture_facts import capture_fact_chunks
from skbsim.fast.gro import F_FIELDS, F_FLAGS, F_FLOW, F_OPT, F_SEQ, F_TSECR, F_TSVAL, capture_chunks, frame_facts
from skbsim.fast.traffic import _frames_with_headlen
from skbsim.sim import RunConfig, Simulation


def _capture(path, heads, snaplen=65535):
    """Frames given as (header bytes, frame length), zero-padded to their length, cut to snaplen, 1 us apart."""
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=snaplen)
        for i, (head, length) in enumerate(heads):
            data = (head + bytes(max(0, length - len(head))))[:length]
            writer.writepkt(data[:snaplen], ts=i * 1e-6)
    return str(path)


def _per_frame(path, legacy: bool, cpus: int = 1):
    """What gro.capture_chunks() reads frame by frame (its path for every other capture)."""
    from skbsim.drivers.base import frame_header

    ref = Simulation(RunConfig(kernel="6.12", options={"rx": "legacy" if legacy else "build_skb"},
                               traffic=f"pcap:{path}", count=None, rate=None, cpus=cpus))
    templates = [state.queue.synthetic for state in ref.cpus]
    flows: dict = {}
    rows = []

    def frames():
        for frame in ref.source:
            rows.append(frame_facts(frame_header(frame, templates[frame.queue % len(templates)]), frame.rss_hash,
                                    flows))
            yield frame

    chunks = _frames_with_headlen(frames(), ref) if legacy else _frames_with_headlen(
        frames(), ref, lambda header, length: 0, 1 << 16)
    out = [list(chunk) for chunk in chunks]
    return out, np.array(rows, np.int64).reshape(len(rows), F_FIELDS)


def _by_numpy(path, legacy: bool):
    ref = Simulation(RunConfig(kernel="6.12", options={"rx": "legacy" if legacy else "build_skb"},
                               traffic=f"pcap:{path}", count=None, rate=None))
    chunks = capture_fact_chunks(ref.source, ref, legacy)
    assert chunks is not None
    return [list(chunk) for chunk in chunks]


def _assert_same_facts(path, legacy: bool):
    expected, rows = _per_frame(path, legacy)
    got = _by_numpy(path, legacy)
    assert len(got) == len(expected)
    for (lengths, times, queues, hlens, facts), want in zip(got, expected):
        for a, b in zip((lengths, times, queues, hlens), want):
            assert np.array_equal(a, b)
    assert np.array_equal(np.concatenate([chunk[4] for chunk in got]), rows)


def _with_options(frame, options: bytes):
    """The frame's TCP header with other option bytes (their length a multiple of 4), IP checksum redone."""
    head = bytearray(frame.header[:54])
    head[46] = ((20 + len(options)) // 4) << 4
    ip = head[14:34]
    tot_len = 20 + 20 + len(options) + (frame.length - 14 - 20 - ((frame.header[46] >> 4) * 4))
    ip[2:4] = struct.pack(">H", tot_len)
    ip[10:12] = b"\0\0"
    total = sum(struct.unpack(">10H", bytes(ip)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    ip[10:12] = struct.pack(">H", ~total & 0xFFFF)
    head[14:34] = ip
    return bytes(head) + options, 14 + tot_len


def test_one_segment_hand_derived(tmp_path):
    # seq 0x01020304, TSval 0x0A0B0C0D (the helper's option bytes: NOP NOP TS, TSval, TSecr 99), ACK|PSH:
    # the flag word is doff 8 (32 bytes of TCP header) << 28 | flags 0x18 << 16 | window 502
    frame = tcp_frame(0x01020304, 100, ts=0x0A0B0C0D, flags=0x18)
    path = _capture(tmp_path / "one.pcap", [(frame.header, frame.length)])
    (chunk,) = _by_numpy(path, False)
    row = chunk[4][0]
    assert row[F_SEQ] == 0x01020304 and row[F_TSVAL] == 0x0A0B0C0D and row[F_TSECR] == 99
    assert row[F_FLAGS] == (8 << 28) | (0x18 << 16) | 502 and row[F_FLOW] == 0
    # the options as little-endian words: 01 01 08 0a, then TSval's bytes 0a 0b 0c 0d
    assert row[F_OPT] == int.from_bytes(bytes((1, 1, 8, 10, 10, 11, 12, 13)), "little")
    _assert_same_facts(path, False)


@pytest.mark.parametrize("legacy", [False, True])
def test_every_kind_of_frame(tmp_path, legacy):
    frames = [tcp_frame(1000 + i * 1448, 1448, ip_id=i, sport=40000 + i % 3) for i in range(12)]
    frames += [tcp_frame(5, 300, flags=0x10 | PSH | FIN | CWR, ts=None, ttl=63, tos=4, df=False),
               tcp_frame(9, 1, ts=None, pad_to=60), tcp_frame(11, 0), tcp_frame(12, 500, src=bytes((10, 0, 0, 9)))]
    heads = [(f.header, f.length) for f in frames]
    bad = bytearray(frames[0].header)
    bad[24] ^= 0xFF  # the IP checksum fails
    heads.append((bytes(bad), frames[0].length))
    udp = bytearray(frames[1].header)
    udp[23] = 17
    heads.append((bytes(udp), frames[1].length))
    frag = bytearray(frames[2].header)
    frag[20] |= 0x20  # MF
    heads.append((bytes(frag), frames[2].length))
    heads.append((b"\x00" * 10, 60))  # cut inside the Ethernet header
    for options in (b"\x08\x0a\x00\x00\x00\x07\x00\x00\x00\x08\x01\x01",  # TS first
                    b"\x02\x04\x05\xb4\x01\x03\x03\x07\x08\x0a\x00\x00\x00\x05\x00\x00\x00\x06\x00\x00",
                    b"\x01\x00\x08\x0a\x00\x00\x00\x05\x00\x00\x00\x06",  # EOL before TS
                    b"\x05\x01\x08\x0a", b"\x08\x0a\x00\x00", b"\x01" * 40):  # a bad length, a TS cut short
        heads.append(_with_options(frames[3], options))
    path = _capture(tmp_path / "kinds.pcap", heads)
    _assert_same_facts(path, legacy)
    short = _capture(tmp_path / "short.pcap", heads, snaplen=60)  # headers cut by the snap length
    _assert_same_facts(short, legacy)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1500), st.sampled_from([None, 1000, 2 ** 31]),
                                 st.sampled_from([0x10, 0x18, 0x11, 0x90, 0x12, 0x04]),
                                 st.integers(0, 255), st.booleans()),
                       min_size=1, max_size=120),
       snaplen=st.sampled_from([65535, 54, 70, 100]), legacy=st.booleans())
def test_random_captures_give_the_per_frame_facts(tmp_path, frames, snaplen, legacy):
    heads = []
    for flow, payload, ts, flags, ttl, df in frames:
        frame = tcp_frame(flow * 7_000_000 + payload, payload, ts=ts, flags=flags, ttl=ttl, df=df, sport=40000 + flow,
                          ip_id=payload)
        heads.append((frame.header, frame.length))
    path = _capture(tmp_path / f"random-{len(frames)}-{snaplen}.pcap", heads, snaplen)
    _assert_same_facts(path, legacy)


def test_other_captures_keep_the_per_frame_reader(tmp_path):
    frame = tcp_frame(1, 100)
    path = _capture(tmp_path / "one.pcap", [(frame.header, frame.length)])
    ref = Simulation(RunConfig(kernel="6.12", traffic=f"pcap:{path}", count=None, rate=None, cpus=2))
    assert capture_fact_chunks(ref.source, ref, False) is None  # several CPUs: the RSS queue of each frame
    (chunk,) = list(capture_chunks(ref.source, ref, False))
    assert chunk[4][0][F_SEQ] == 1
