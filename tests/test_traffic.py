"""Tests for skbsim.traffic: frame sources, capture reading, RSS.

Expected values are derived by hand in the comments, taken from published
test vectors (Microsoft RSS verification suite), or computed by an
independent reference written here from the specification (the bitwise
Toeplitz below), never from the module under test.
"""

from __future__ import annotations

import io
import ipaddress
import math
import struct
import tracemalloc
import types
from array import array
from collections import Counter

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.errors import InputError
from skbsim.traffic import (MICROSOFT_RSS_KEY, FlowClassifier, Frame, FrameSource, RssConfig,
                            Toeplitz, chunks, parse_traffic)

ip = lambda text: ipaddress.ip_address(text).packed  # noqa: E731


# --- RSS: published vectors ----------------------------------------------------

# Microsoft, "Verifying the RSS Hash Calculation" (learn.microsoft.com/en-us/
# windows-hardware/drivers/network/verifying-the-rss-hash-calculation), with
# the 40-byte key 6d5a56da...01fa. The same tables appear in the Intel 82599
# datasheet section 7.1.2.8.3 "RSS Verification Suite" and DPDK's
# app/test/test_thash.c. Columns: destination addr:port, source addr:port,
# hash over IPv4 (or IPv6) only, hash over IPv4 (IPv6) with TCP.
IPV4_VECTORS = [
    ("161.142.100.80", 1766, "66.9.149.187", 2794, 0x323E8FC2, 0x51CCC178),
    ("65.69.140.83", 4739, "199.92.111.2", 14230, 0xD718262A, 0xC626B0EA),
    ("12.22.207.184", 38024, "24.19.198.95", 12898, 0xD2D0A5DE, 0x5C2B394A),
    ("209.142.163.6", 2217, "38.27.205.30", 48228, 0x82989176, 0xAFC7327F),
    ("202.188.127.2", 1303, "153.39.163.191", 44251, 0x5D1809C5, 0x10E828A2),
]
IPV6_VECTORS = [
    ("3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2CC18CD5, 0x40207D3D),
    ("ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0F0C461C, 0xDDE51BBF),
    ("fe80::200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251,
     0x4B61E985, 0x02D1FEEF),
]


def reference_toeplitz(key: bytes, data: bytes) -> int:
    """Microsoft's ComputeHash pseudocode, bit by bit, for cross-checks."""
    key_bits = int.from_bytes(key, "big")
    nbits = len(key) * 8
    result = 0
    for bit_index in range(len(data) * 8):
        if data[bit_index // 8] & (0x80 >> (bit_index % 8)):
            result ^= (key_bits >> (nbits - 32 - bit_index)) & 0xFFFFFFFF
    return result


def test_microsoft_key_is_the_published_one():
    assert MICROSOFT_RSS_KEY.hex() == ("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b4"
                                       "77cb2da38030f20c6a42b73bbeac01fa")


@pytest.mark.parametrize("dst, dport, src, sport, l3_hash, l4_hash", IPV4_VECTORS)
def test_toeplitz_ipv4_published_vectors(dst, dport, src, sport, l3_hash, l4_hash):
    toeplitz = Toeplitz()
    assert toeplitz.ipv4(ip(src), ip(dst)) == l3_hash
    assert toeplitz.ipv4_l4(ip(src), ip(dst), sport, dport) == l4_hash


@pytest.mark.parametrize("dst, dport, src, sport, l3_hash, l4_hash", IPV6_VECTORS)
def test_toeplitz_ipv6_published_vectors(dst, dport, src, sport, l3_hash, l4_hash):
    toeplitz = Toeplitz()
    assert toeplitz.ipv6(ip(src), ip(dst)) == l3_hash
    assert toeplitz.ipv6_l4(ip(src), ip(dst), sport, dport) == l4_hash


def test_reference_toeplitz_agrees_with_published_vector():
    # guards the reference used below: first IPv4 row, with TCP
    data = ip("66.9.149.187") + ip("161.142.100.80") + struct.pack(">HH", 2794, 1766)
    assert reference_toeplitz(MICROSOFT_RSS_KEY, data) == 0x51CCC178


@given(st.binary(min_size=0, max_size=36), st.binary(min_size=40, max_size=52))
def test_toeplitz_tables_match_bitwise_definition(data, key):
    assert Toeplitz(key).hash(data) == reference_toeplitz(key, data)


def test_default_indirection_table():
    # ethtool_rxfh_indir_default(): entry i = i % nqueues, 128 entries
    rss = RssConfig(7)
    assert rss.table == tuple(i % 7 for i in range(128))
    # 0x51ccc178 & 127 = 0x78 = 120; 120 % 7 = 1
    assert rss.queue_of(0x51CCC178) == 1
    # 0x323e8fc2 & 127 = 0x42 = 66; 66 % 7 = 3
    assert rss.queue_of(0x323E8FC2) == 3


def test_rss_config_rejects_bad_input():
    with pytest.raises(InputError):
        RssConfig(0)
    with pytest.raises(InputError):
        RssConfig(4, table_size=100)
    with pytest.raises(InputError):
        RssConfig(4, key=b"short")
    with pytest.raises(InputError):
        RssConfig(2, table=(0, 1, 2, 0))


# --- flow parsing ----------------------------------------------------------------

def ether(payload, ethertype=dpkt.ethernet.ETH_TYPE_IP, vlan=False):
    frame = dpkt.ethernet.Ethernet(dst=b"\x02\0\0\0\0\x01", src=b"\x02\0\0\0\0\x02",
                                   type=ethertype, data=payload)
    raw = bytes(frame)
    if vlan:  # insert an 802.1Q tag (TPID 0x8100, VID 5) after the MACs
        raw = raw[:12] + b"\x81\x00\x00\x05" + raw[12:]
    return raw


def ipv4_packet(src, dst, l4, proto, *, mf=False):
    packet = dpkt.ip.IP(src=ip(src), dst=ip(dst), p=proto, data=l4, ttl=64)
    if mf:
        packet.mf = 1
    return packet


def tcp(sport, dport, payload=b""):
    return dpkt.tcp.TCP(sport=sport, dport=dport, data=payload)


def udp(sport, dport, payload=b""):
    return dpkt.udp.UDP(sport=sport, dport=dport, data=payload)


def ipv6_packet(src, dst, l4, nxt):
    return dpkt.ip6.IP6(src=ip(src), dst=ip(dst), nxt=nxt, hlim=64, data=l4,
                        plen=len(bytes(l4)))


FIRST_V4 = ("66.9.149.187", "161.142.100.80", 2794, 1766)


def test_classify_ipv4_tcp_and_udp_use_4_tuple():
    classifier = FlowClassifier(RssConfig(7))
    src, dst, sport, dport = FIRST_V4
    for proto, l4 in ((6, tcp(sport, dport)), (17, udp(sport, dport))):
        flow, rss_hash, queue = classifier.classify_ethernet(
            ether(ipv4_packet(src, dst, l4, proto)))
        assert flow == (ip(src), ip(dst), sport, dport, proto)
        assert rss_hash == 0x51CCC178          # published IPv4-with-TCP value
        assert queue == 1                      # 0x78 = 120, 120 % 7


def test_classify_vlan_tagged_frame():
    classifier = FlowClassifier(RssConfig(7))
    src, dst, sport, dport = FIRST_V4
    raw = ether(ipv4_packet(src, dst, tcp(sport, dport), 6), vlan=True)
    assert classifier.classify_ethernet(raw)[1] == 0x51CCC178


def test_classify_fragment_and_icmp_use_addresses_only():
    classifier = FlowClassifier(RssConfig(7))
    src, dst, sport, dport = FIRST_V4
    fragment = ether(ipv4_packet(src, dst, tcp(sport, dport), 6, mf=True))
    flow, rss_hash, _ = classifier.classify_ethernet(fragment)
    assert rss_hash == 0x323E8FC2              # published IPv4-only value
    assert flow == (ip(src), ip(dst), 0, 0, 6)
    icmp = ether(ipv4_packet(src, dst, dpkt.icmp.ICMP(type=8, data=b"x" * 8), 1))
    assert classifier.classify_ethernet(icmp)[1] == 0x323E8FC2


def test_classify_ipv4_with_options():
    classifier = FlowClassifier(RssConfig(7))
    src, dst, sport, dport = FIRST_V4
    packet = ipv4_packet(src, dst, tcp(sport, dport), 6)
    packet.opts = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    packet.hl = 6                         # dpkt does not update IHL itself: 24 bytes
    assert classifier.classify_ethernet(ether(packet))[1] == 0x51CCC178


def test_classify_ipv6():
    classifier = FlowClassifier(RssConfig(4))
    dst, dport, src, sport, l3_hash, l4_hash = IPV6_VECTORS[0]
    flow, rss_hash, queue = classifier.classify_ethernet(
        ether(ipv6_packet(src, dst, tcp(sport, dport), 6), dpkt.ethernet.ETH_TYPE_IP6))
    assert (flow, rss_hash) == ((ip(src), ip(dst), sport, dport, 6), l4_hash)
    assert queue == (l4_hash & 127) % 4        # 0x3d & 127 = 61, 61 % 4 = 1
    assert queue == 1
    icmp6 = ether(ipv6_packet(src, dst, b"\x80\0\0\0\0\0\0\0", 58), dpkt.ethernet.ETH_TYPE_IP6)
    assert classifier.classify_ethernet(icmp6)[1] == l3_hash


def test_classify_non_ip_and_truncated():
    classifier = FlowClassifier(RssConfig(4))
    arp = ether(b"\0" * 28, dpkt.ethernet.ETH_TYPE_ARP)
    assert classifier.classify_ethernet(arp) == (None, 0, 0)
    src, dst, sport, dport = FIRST_V4
    raw = ether(ipv4_packet(src, dst, tcp(sport, dport), 6))
    # captured only up to the end of the IPv4 header: ports unknown -> 2-tuple
    assert classifier.classify_ethernet(raw[:34])[1] == 0x323E8FC2
    # cut inside the IPv4 header: nothing to hash
    assert classifier.classify_ethernet(raw[:30]) == (None, 0, 0)
    assert classifier.classify_ethernet(raw[:5]) == (None, 0, 0)


def test_classify_cooked_and_raw_captures():
    classifier = FlowClassifier(RssConfig(4))
    src, dst, sport, dport = FIRST_V4
    packet = bytes(ipv4_packet(src, dst, tcp(sport, dport), 6))
    # SLL: packet type, ARPHRD_ETHER (1), address length 6, address (8), protocol
    sll = struct.pack(">HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x02\0\0", 0x0800) + packet
    assert classifier.classify_linux_sll(sll)[1] == 0x51CCC178
    # SLL2: protocol, reserved, ifindex, ARPHRD, packet type, address length, address
    sll2 = struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x02\0\0\0\0\x02\0\0") + packet
    assert classifier.classify_linux_sll2(sll2)[1] == 0x51CCC178
    assert classifier.classify_raw_ip(packet)[1] == 0x51CCC178


# --- spec parsing ----------------------------------------------------------------

@given(st.integers(min_value=14, max_value=65535))
def test_fixed_any_valid_length(length):
    frames = list(parse_traffic(f"fixed:{length}", count=3))
    assert [f.length for f in frames] == [length] * 3


@given(st.one_of(st.integers(min_value=0, max_value=13),
                 st.integers(min_value=65536, max_value=2**70)))
def test_fixed_out_of_range_is_input_error(length):
    with pytest.raises(InputError, match=str(length)):
        parse_traffic(f"fixed:{length}", count=1)


@pytest.mark.parametrize("spec", [
    "", "   ", "fixed", "fixed:", "fixed:abc", "fixed:-60", "fixed:60.5", "fixed:0x40",
    "uniform:60", "uniform:60-", "uniform:-60", "uniform:100-60", "uniform:10-60",
    "uniform:60-70000", "imix:weird", "dist:", "pcap:", "pcapng:", "bogus", "bogus:1",
    "fixed:4294967296",
])
def test_bad_specs_are_one_line_input_errors(spec):
    with pytest.raises(InputError) as err:
        parse_traffic(spec, count=10)
    assert "\n" not in str(err.value)


def test_u32_overflow_is_named():
    with pytest.raises(InputError, match="32 bits"):
        parse_traffic("fixed:4294967296", count=1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(count=None), "count"),
    (dict(count=-1), "count"),
    (dict(count=1.5), "count"),
    (dict(count=10, flows=0), "flows"),
    (dict(count=10, rate=0), "rate"),
    (dict(count=10, rate=-5.0), "rate"),
    (dict(count=10, rate=math.nan), "rate"),
    (dict(count=10, rate=math.inf), "rate"),
    (dict(count=10, arrival="bursty"), "arrival"),
    (dict(count=10, arrival="poisson"), "poisson"),
    (dict(count=10, nqueues=0), "queues"),
    (dict(count=10, indirection_size=96), "power of two"),
])
def test_bad_parameters_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        parse_traffic("fixed:60", **kwargs)


@settings(max_examples=300)
@given(st.text(max_size=30))
def test_arbitrary_spec_never_crashes(spec):
    try:
        source = parse_traffic(spec, count=2)
    except InputError:
        return
    assert len(list(source)) <= 2


@given(st.integers(14, 65535), st.integers(14, 65535), st.integers(0, 2**32))
def test_uniform_stays_in_bounds(a, b, seed):
    low, high = min(a, b), max(a, b)
    lengths = [f.length for f in parse_traffic(f"uniform:{low}-{high}", count=50, seed=seed)]
    assert all(low <= n <= high for n in lengths)


def test_uniform_is_inclusive():
    # 3 values, 600 draws: each value is missed with probability (2/3)**600 < 1e-100
    lengths = Counter(f.length for f in parse_traffic("uniform:60-62", count=600, seed=1))
    assert set(lengths) == {60, 61, 62}


# --- IMIX ------------------------------------------------------------------------

# Smooth weighted round-robin over 60:7, 590:4, 1514:1 (total 12), by hand;
# credits (c60, c590, c1514) after adding the weights, pick the largest
# (earliest on a tie), subtract 12 from the pick:
#  1: 7,4,1 -> 60     2: 2,8,2 -> 590    3: 9,0,3 -> 60     4: 4,4,4 -> 60
#  5: -1,8,5 -> 590   6: 6,0,6 -> 60     7: 1,4,7 -> 1514   8: 8,8,-4 -> 60
#  9: 3,12,-3 -> 590 10: 10,4,-2 -> 60  11: 5,8,-1 -> 590  12: 12,0,0 -> 60
# after step 12 every credit is 0 again, so the pattern repeats.
IMIX_CYCLE = [60, 590, 60, 60, 590, 60, 1514, 60, 590, 60, 590, 60]


def test_imix_cycle_exact():
    lengths = [f.length for f in parse_traffic("imix", count=36)]
    assert lengths == IMIX_CYCLE * 3


def test_imix_proportions_exact_every_12():
    lengths = [f.length for f in parse_traffic("imix", count=1200, seed=99)]
    for start in range(0, 1200, 12):
        assert Counter(lengths[start:start + 12]) == {60: 7, 590: 4, 1514: 1}


def test_imix_sizes_are_the_simple_imix_without_fcs():
    # simple IMIX on the wire with FCS: 64, 594, 1518; minus the 4-byte FCS
    from skbsim.traffic import SIMPLE_IMIX, SIMPLE_IMIX_WITH_FCS
    assert SIMPLE_IMIX_WITH_FCS == ((64, 7), (594, 4), (1518, 1))
    assert SIMPLE_IMIX == ((60, 7), (590, 4), (1514, 1))


def test_imix_random_statistically_bounded():
    n = 120_000
    counts = Counter(f.length for f in parse_traffic("imix:random", count=n, seed=5))
    for length, weight in ((60, 7), (590, 4), (1514, 1)):
        p = weight / 12
        mean, sd = n * p, math.sqrt(n * p * (1 - p))   # binomial
        assert abs(counts[length] - mean) < 6 * sd


# --- dist: files -----------------------------------------------------------------

def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_dist_file_parses_and_samples(tmp_path):
    path = write(tmp_path, "d.csv", "# sizes seen on a link\nlength,weight\n"
                 "64, 3   # small\n\n1500,1\n")
    n = 40_000
    counts = Counter(f.length for f in parse_traffic(f"dist:{path}", count=n, seed=3))
    assert set(counts) == {64, 1500}
    p = 3 / 4
    assert abs(counts[64] - n * p) < 6 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("text, line, words", [
    ("64,0\n", 1, "positive"),
    ("64,-1\n", 1, "positive"),
    ("64,nan\n", 1, "positive"),
    ("64,inf\n", 1, "positive"),
    ("64,heavy\n", 1, "not a number"),
    ("# c\n13,1\n", 2, "outside"),
    ("64,1\nabc,1\n", 2, "whole number"),
    ("64,1\n64.5,1\n", 2, "whole number"),
    ("64,1\n70000,1\n", 2, "outside"),
    ("64\n", 1, "length,weight"),
    ("64,1,2\n", 1, "length,weight"),
    ("64,1\n128,1\n64,2\n", 3, "line 1"),
])
def test_dist_errors_name_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(InputError, match=f"bad.csv:{line}: .*{words}"):
        parse_traffic(f"dist:{path}", count=5)


def test_dist_empty_and_missing(tmp_path):
    path = write(tmp_path, "empty.csv", "# nothing\n\n")
    with pytest.raises(InputError, match="no 'length,weight' lines"):
        parse_traffic(f"dist:{path}", count=5)
    with pytest.raises(InputError, match="absent.csv: no such file"):
        parse_traffic(f"dist:{tmp_path}/absent.csv", count=5)


# --- determinism, arrivals, flows ------------------------------------------------

def test_same_seed_same_stream_and_replay():
    source = parse_traffic("uniform:60-1514", count=500, seed=7, flows=16, nqueues=4,
                           rate=1e5, arrival="poisson")
    first = [f.astuple() for f in source]
    assert first == [f.astuple() for f in source]      # re-iterating replays
    again = parse_traffic("uniform:60-1514", count=500, seed=7, flows=16, nqueues=4,
                          rate=1e5, arrival="poisson")
    assert first == [f.astuple() for f in again]
    other = parse_traffic("uniform:60-1514", count=500, seed=8, flows=16, nqueues=4,
                          rate=1e5, arrival="poisson")
    assert first != [f.astuple() for f in other]


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**40), st.integers(1, 2500), st.integers(1, 2500))
def test_shorter_run_is_a_prefix(seed, n1, n2):
    short, long = sorted((n1, n2))
    make = lambda n: [f.astuple() for f in parse_traffic(  # noqa: E731
        "imix:random", count=n, seed=seed, flows=5, rate=2e6, arrival="poisson")]
    assert make(long)[:short] == make(short)


def test_constant_arrivals_exact():
    # rate 3/s: frame i at floor(i * 1e9 / 3) ns
    times = [f.time_ns for f in parse_traffic("fixed:60", count=4, rate=3, arrival="constant")]
    assert times == [0, 333_333_333, 666_666_666, 1_000_000_000]
    times = [f.time_ns for f in parse_traffic("fixed:60", count=3, rate=1e6)]
    assert times == [0, 1000, 2000]


def test_no_rate_means_time_zero():
    assert {f.time_ns for f in parse_traffic("imix", count=50)} == {0}


def test_poisson_arrivals_mean_gap():
    n = 100_000
    times = [f.time_ns for f in parse_traffic("fixed:60", count=n, rate=1e6,
                                              arrival="poisson", seed=11)]
    assert times[0] == 0
    assert all(b >= a for a, b in zip(times, times[1:]))
    # exponential gaps of mean 1000 ns: the mean of n-1 gaps has sd 1000/sqrt(n-1)
    # ~= 3.2 ns; flooring each time to whole ns shifts nothing on average by
    # more than 1 ns
    mean_gap = times[-1] / (n - 1)
    assert abs(mean_gap - 1000) < 6 * 1000 / math.sqrt(n - 1) + 1


def test_flows_spread_and_hash_like_the_reference():
    nqueues = 4
    frames = list(parse_traffic("fixed:200", count=2000, flows=8, nqueues=nqueues, seed=2))
    flows = {f.flow for f in frames}
    # 2000 uniform draws over 8 flows: one unused with probability < 8*(7/8)**2000
    assert len(flows) == 8
    for frame in frames:
        src, dst, sport, dport, proto = frame.flow
        assert proto == 17
        expected = reference_toeplitz(MICROSOFT_RSS_KEY, src + dst + struct.pack(">HH", sport, dport))
        assert frame.rss_hash == expected
        assert frame.queue == (expected & 127) % nqueues


def test_single_flow_is_one_tuple():
    assert len({f.flow for f in parse_traffic("imix", count=100)}) == 1


def test_synthetic_header_is_valid_ethernet_ipv4_udp():
    for length in (42, 60, 127, 128, 590, 1514, 9000, 65535):
        (frame,) = parse_traffic(f"fixed:{length}", count=1, seed=4)
        header = frame.header
        assert len(header) == min(length, 128)
        eth_type, = struct.unpack_from(">H", header, 12)
        assert eth_type == 0x0800
        version_ihl, total_len = struct.unpack_from(">BxH", header, 14)
        assert version_ihl == 0x45 and total_len == length - 14
        words = struct.unpack(">10H", header[14:34])
        checksum = sum(words)
        checksum = (checksum & 0xFFFF) + (checksum >> 16)
        assert checksum == 0xFFFF                    # RFC 1071: valid header sums to ~0
        assert header[23] == 17
        src, dst, sport, dport, _ = frame.flow
        assert header[26:30] == src and header[30:34] == dst
        assert struct.unpack_from(">HHH", header, 34) == (sport, dport, length - 34)


def test_synthetic_frames_too_short_for_udp_are_non_ip():
    frames = list(parse_traffic("fixed:41", count=3, flows=3, nqueues=4))
    for frame in frames:
        assert frame.flow is None and frame.rss_hash == 0 and frame.queue == 0
        assert len(frame.header) == 41
        assert frame.header[12:14] == b"\x88\xb5"  # IEEE local experimental EtherType
    (tiny,) = parse_traffic("fixed:14", count=1)
    assert len(tiny.header) == 14


def test_headers_can_be_skipped():
    assert all(f.header is None for f in parse_traffic("imix", count=24, headers=False))


# --- streaming and chunks --------------------------------------------------------

def test_sources_are_lazy():
    source = parse_traffic("imix", count=10**15, flows=4, nqueues=2)
    assert isinstance(source, FrameSource)
    frames = iter(source)
    assert isinstance(frames, types.GeneratorType)
    first = [next(frames) for _ in range(5)]
    assert [f.length for f in first] == IMIX_CYCLE[:5]
    assert source.count == 10**15


def test_chunks_match_frames():
    source = parse_traffic("uniform:60-1514", count=2500, seed=9, flows=3)
    pieces = list(chunks(source, 1000))
    assert [len(p) for p in pieces] == [1000, 1000, 500]
    assert all(isinstance(p, array) and p.typecode == "I" for p in pieces)
    assert [n for p in pieces for n in p] == [f.length for f in source]
    # any iterable of frames works too
    frames = [Frame(60, 0, None, 0, 0, None), Frame(70, 0, None, 0, 0, None)]
    assert [list(p) for p in chunks(frames, 1)] == [[60], [70]]
    with pytest.raises(InputError):
        chunks(source, 0)


def test_describe_mentions_the_setup():
    text = parse_traffic("imix", count=10, flows=4, nqueues=2, rate=1e6,
                         arrival="poisson").describe()
    for word in ("imix", "7:4:1", "60/590/1514", "10 frames", "4 UDP/IPv4 flows",
                 "poisson", "2 queues", "128-entry"):
        assert word in text


# --- captures --------------------------------------------------------------------

def frames_for_capture():
    """Three Ethernet frames with known lengths and flows."""
    src, dst, sport, dport = FIRST_V4
    tcp_frame = ether(ipv4_packet(src, dst, tcp(sport, dport, b"a" * 500), 6))
    # 14 + 20 + 20 + 500 = 554
    udp_frame = ether(ipv4_packet("10.0.0.1", "10.0.0.2", udp(1000, 2000, b"b" * 1472), 17))
    # 14 + 20 + 8 + 1472 = 1514
    arp_frame = ether(b"\0" * 46, dpkt.ethernet.ETH_TYPE_ARP)   # 60
    return [tcp_frame, udp_frame, arp_frame]


def write_pcap(path, records, *, linktype=1, nano=False, snaplen=65535):
    """records: (ts_seconds, frame bytes, captured length or None)."""
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=snaplen, linktype=linktype, nano=nano)
        for ts, frame, caplen in records:
            if caplen is None:
                writer.writepkt(frame, ts=ts)
            else:  # a record cut by snaplen: caplen < original length
                sec, frac = int(ts), round((ts % 1) * (1e9 if nano else 1e6))
                f.write(bytes(dpkt.pcap.LEPktHdr(tv_sec=sec, tv_usec=frac, caplen=caplen,
                                                 len=len(frame))) + frame[:caplen])
        f.flush()


def test_pcap_round_trip_lengths_flows_headers(tmp_path):
    tcp_frame, udp_frame, arp_frame = frames_for_capture()
    assert [len(tcp_frame), len(udp_frame), len(arp_frame)] == [554, 1514, 60]
    path = tmp_path / "t.pcap"
    write_pcap(path, [(1000.000000, tcp_frame, None),
                      (1000.000250, udp_frame, 96),       # truncated to 96 bytes
                      (1000.001000, arp_frame, None)])
    frames = list(parse_traffic(f"pcap:{path}", nqueues=7))
    assert [f.length for f in frames] == [554, 1514, 60]   # original lengths
    assert [f.time_ns for f in frames] == [0, 250_000, 1_000_000]
    src, dst, sport, dport = FIRST_V4
    assert frames[0].flow == (ip(src), ip(dst), sport, dport, 6)
    assert frames[0].rss_hash == 0x51CCC178 and frames[0].queue == 1
    assert frames[1].flow == (ip("10.0.0.1"), ip("10.0.0.2"), 1000, 2000, 17)
    assert frames[2].flow is None and frames[2].queue == 0
    assert frames[0].header == tcp_frame[:128]
    assert frames[1].header == udp_frame[:96]              # only what was captured
    assert frames[2].header == arp_frame


def test_pcap_flows_parsed_only_when_needed(tmp_path):
    path = tmp_path / "t.pcap"
    write_pcap(path, [(1.0, frame, None) for frame in frames_for_capture()])
    single = list(parse_traffic(f"pcap:{path}"))             # one queue: no RSS work
    assert all(f.flow is None and f.rss_hash == 0 and f.queue == 0 for f in single)
    forced = list(parse_traffic(f"pcap:{path}", rss=True))
    assert forced[0].rss_hash == 0x51CCC178


def test_pcap_nanosecond_and_big_endian(tmp_path):
    tcp_frame = frames_for_capture()[0]
    path = tmp_path / "nano.pcap"
    write_pcap(path, [(5.000000001, tcp_frame, None), (5.000000010, tcp_frame, None)], nano=True)
    assert [f.time_ns for f in parse_traffic(f"pcap:{path}")] == [0, 9]
    # big-endian microsecond file, built by hand: magic a1b2c3d4, v2.4, snaplen, DLT 1
    raw = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    raw += struct.pack(">IIII", 7, 1, 60, 554) + tcp_frame[:60]
    raw += struct.pack(">IIII", 7, 3, 554, 554) + tcp_frame
    path = tmp_path / "be.pcap"
    path.write_bytes(raw)
    frames = list(parse_traffic(f"pcap:{path}", nqueues=7))
    assert [(f.length, f.time_ns, f.rss_hash) for f in frames] == [
        (554, 0, 0x51CCC178), (554, 2000, 0x51CCC178)]


def test_modified_pcap_24_byte_records(tmp_path):
    # "modified" pcap, magic a1b2cd34: record header = ts_sec, ts_usec, caplen,
    # len, then ifindex (4), protocol (2), pkt_type (1), pad (1): 24 bytes
    arp_frame = frames_for_capture()[2]
    raw = struct.pack(">IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1)
    raw += struct.pack(">IIIIIHBB", 9, 0, 60, 60, 2, 0x0806, 0, 0) + arp_frame
    raw += struct.pack(">IIIIIHBB", 9, 40, 60, 60, 2, 0x0806, 0, 0) + arp_frame
    path = tmp_path / "mod.pcap"
    path.write_bytes(raw)
    assert [(f.length, f.time_ns) for f in parse_traffic(f"pcap:{path}")] == [
        (60, 0), (60, 40_000)]


def test_pcap_out_of_order_time_is_clamped(tmp_path):
    frame = frames_for_capture()[2]
    path = tmp_path / "ooo.pcap"
    write_pcap(path, [(2.0, frame, None), (3.0, frame, None), (2.5, frame, None)])
    assert [f.time_ns for f in parse_traffic(f"pcap:{path}")] == [0, 10**9, 10**9]


def test_pcap_count_and_rate_override(tmp_path):
    path = tmp_path / "t.pcap"
    write_pcap(path, [(i * 0.5, frame, None) for i, frame in enumerate(frames_for_capture())])
    assert len(list(parse_traffic(f"pcap:{path}", count=2))) == 2
    assert len(list(parse_traffic(f"pcap:{path}", count=10))) == 3   # file has 3
    assert list(parse_traffic(f"pcap:{path}", count=0)) == []
    paced = list(parse_traffic(f"pcap:{path}", rate=1000))
    assert [f.time_ns for f in paced] == [0, 1_000_000, 2_000_000]
    assert [f.length for f in paced] == [554, 1514, 60]
    with pytest.raises(InputError, match="flows"):
        parse_traffic(f"pcap:{path}", flows=4)


def test_pcap_linux_sll_and_other_linktypes(tmp_path):
    src, dst, sport, dport = FIRST_V4
    packet = bytes(ipv4_packet(src, dst, tcp(sport, dport, b"z" * 100), 6))  # 140 bytes
    sll = struct.pack(">HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x02\0\0", 0x0800) + packet
    path = tmp_path / "sll.pcap"
    write_pcap(path, [(1.0, sll, None)], linktype=113)
    (frame,) = parse_traffic(f"pcap:{path}", nqueues=7)
    # 16-byte cooked header replaced by a 14-byte Ethernet header: 156 - 2
    assert frame.length == 154 == 14 + len(packet)
    assert frame.rss_hash == 0x51CCC178 and frame.header is None
    raw_path = tmp_path / "raw.pcap"
    write_pcap(raw_path, [(1.0, packet, None)], linktype=101)
    (frame,) = parse_traffic(f"pcap:{raw_path}", nqueues=7)
    assert frame.length == 154 and frame.rss_hash == 0x51CCC178
    other = tmp_path / "wifi.pcap"
    write_pcap(other, [(1.0, b"\x08" * 80, None)], linktype=105)   # 802.11: unknown here
    (frame,) = parse_traffic(f"pcap:{other}", nqueues=7)
    assert (frame.length, frame.flow, frame.header) == (80, None, None)


def test_pcap_fcs_bits_in_linktype(tmp_path):
    frame = frames_for_capture()[2] + b"\xde\xad\xbe\xef"   # 60 bytes + 4-byte FCS
    path = tmp_path / "fcs.pcap"
    # link-type field: DLT_EN10MB, P bit (26) set, FCS length 2 (16-bit words)
    write_pcap(path, [(1.0, frame, None)], linktype=1 | (1 << 26) | (2 << 28))
    (parsed,) = parse_traffic(f"pcap:{path}")
    assert parsed.length == 60 and parsed.header == frame[:60]


def test_pcap_length_outside_driver_range(tmp_path):
    path = tmp_path / "tiny.pcap"
    write_pcap(path, [(1.0, b"\0" * 10, None)])
    with pytest.raises(InputError, match=r"record 0 at byte offset 24: frame length 10"):
        list(parse_traffic(f"pcap:{path}"))


def write_pcapng_with_truncated(path):
    tcp_frame, udp_frame, arp_frame = frames_for_capture()
    buf = io.BytesIO()
    writer = dpkt.pcapng.Writer(buf, snaplen=65535)
    writer.writepkt(tcp_frame, ts=10.0)
    # Enhanced Packet Block by hand (dpkt's writer always stores the whole
    # frame): type 6, total length, interface 0, timestamp high/low (us),
    # captured length 64, original length 1514, data padded to 4, trailer
    ts = int(10.0005 * 1e6)
    body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, 64, len(udp_frame)) + udp_frame[:64]
    total = 8 + len(body) + 4
    buf.write(struct.pack("<II", 6, total) + body + struct.pack("<I", total))
    writer.writepkt(arp_frame, ts=10.001)
    path.write_bytes(buf.getvalue())
    return tcp_frame, udp_frame, arp_frame


def test_pcapng_round_trip(tmp_path):
    path = tmp_path / "t.pcapng"
    tcp_frame, udp_frame, arp_frame = write_pcapng_with_truncated(path)
    source = parse_traffic(f"pcap:{path}", nqueues=7)
    assert "pcapng" in source.describe()
    frames = list(source)
    assert [f.length for f in frames] == [554, 1514, 60]
    assert [f.time_ns for f in frames] == [0, 500_000, 1_000_000]
    assert frames[0].rss_hash == 0x51CCC178
    assert frames[1].header == udp_frame[:64]
    assert frames[1].flow == (ip("10.0.0.1"), ip("10.0.0.2"), 1000, 2000, 17)
    assert frames[2].flow is None


def test_pcapng_nanosecond_resolution_and_simple_packet_block(tmp_path):
    frame = frames_for_capture()[2]
    # IDB with if_tsresol = 9 (10^-9 s): option code 9, length 1, value, 3 pad
    # bytes, then opt_endofopt
    idb = dpkt.pcapng.InterfaceDescriptionBlockLE(snaplen=65535, linktype=1, opts=[
        dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_IF_TSRESOL, data=b"\x09"),
        dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_ENDOFOPT)])
    buf = io.BytesIO()
    dpkt.pcapng.Writer(buf, idb=idb)

    def epb(ts_ns):
        body = struct.pack("<IIIII", 0, ts_ns >> 32, ts_ns & 0xFFFFFFFF, 60, 60) + frame
        return struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    buf.write(epb(1_000_000_007))
    buf.write(epb(1_000_000_019))
    # Simple Packet Block: type 3, total length, original length, data, trailer
    spb = struct.pack("<I", 60) + frame
    buf.write(struct.pack("<II", 3, 12 + len(spb)) + spb + struct.pack("<I", 12 + len(spb)))
    path = tmp_path / "ns.pcapng"
    path.write_bytes(buf.getvalue())
    frames = list(parse_traffic(f"pcap:{path}"))
    # 12 ns apart; the SPB has no timestamp and inherits the previous one
    assert [(f.length, f.time_ns) for f in frames] == [(60, 0), (60, 12), (60, 12)]


def test_pcapng_second_section_big_endian_with_two_interfaces(tmp_path):
    tcp_frame, udp_frame, arp_frame = frames_for_capture()
    first = io.BytesIO()
    dpkt.pcapng.Writer(first, snaplen=65535).writepkt(arp_frame, ts=100.0)   # little-endian
    # second section in big-endian byte order, built from dpkt's BE block
    # classes: interface 0 Ethernet, interface 1 LINKTYPE_RAW (101)
    packet = tcp_frame[14:]                                              # 540-byte IPv4
    ts = int(100.25 * 1e6)
    second = b"".join(bytes(block) for block in (
        dpkt.pcapng.SectionHeaderBlock(),
        dpkt.pcapng.InterfaceDescriptionBlock(linktype=1, snaplen=65535),
        dpkt.pcapng.InterfaceDescriptionBlock(linktype=101, snaplen=65535),
        dpkt.pcapng.EnhancedPacketBlock(iface_id=1, ts_high=ts >> 32,
                                        ts_low=ts & 0xFFFFFFFF, pkt_data=packet),
    ))
    path = tmp_path / "two.pcapng"
    path.write_bytes(first.getvalue() + second)
    frames = list(parse_traffic(f"pcap:{path}", nqueues=7))
    assert [f.length for f in frames] == [60, 554]       # raw IP gains 14 bytes
    assert [f.time_ns for f in frames] == [0, 250_000_000]
    assert frames[1].rss_hash == 0x51CCC178 and frames[1].header is None


# --- corrupt captures -------------------------------------------------------------

def good_pcap_bytes(tmp_path):
    path = tmp_path / "good.pcap"
    write_pcap(path, [(1.0 + i, frame, None) for i, frame in enumerate(frames_for_capture())])
    return path.read_bytes()


def read_all(tmp_path, raw, name="x.pcap"):
    path = tmp_path / name
    path.write_bytes(raw)
    return list(parse_traffic(f"pcap:{path}"))


def test_garbage_file(tmp_path):
    with pytest.raises(InputError, match="not a pcap or pcapng file .*byte offset 0"):
        read_all(tmp_path, b"this is not a capture at all, just text\n" * 10)
    with pytest.raises(InputError, match="byte offset 0"):
        read_all(tmp_path, b"")


def test_truncated_file_header(tmp_path):
    raw = good_pcap_bytes(tmp_path)
    with pytest.raises(InputError, match="truncated pcap file header.*byte offset 10"):
        read_all(tmp_path, raw[:10])


def test_truncated_record_header_and_body(tmp_path):
    raw = good_pcap_bytes(tmp_path)
    # records: header 24 bytes, then 16 + 554 at offset 24, 16 + 1514 at 594
    with pytest.raises(InputError, match="truncated record header at byte offset 24"):
        read_all(tmp_path, raw[:24 + 7])
    with pytest.raises(InputError, match="truncated record 1 at byte offset 594"):
        read_all(tmp_path, raw[:594 + 16 + 100])


def test_corrupt_record_lengths(tmp_path):
    raw = bytearray(good_pcap_bytes(tmp_path))
    # second record's caplen (offset 594 + 8) set above its original length
    struct.pack_into("<I", raw, 594 + 8, 5000)
    with pytest.raises(InputError, match="corrupt record 1 at byte offset 594"):
        read_all(tmp_path, bytes(raw))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=24, max_value=24 + 570 + 1530 + 76 - 1))
def test_any_truncation_is_an_error_or_a_clean_prefix(tmp_path, cut):
    raw = good_pcap_bytes(tmp_path)
    boundaries = {24: 0, 24 + 570: 1, 24 + 570 + 1530: 2}   # record starts -> frames before
    if cut in boundaries:
        assert len(read_all(tmp_path, raw[:cut])) == boundaries[cut]
    else:
        start = max(b for b in boundaries if b < cut)
        with pytest.raises(InputError, match=f"byte offset {start}"):
            read_all(tmp_path, raw[:cut])


def test_pcapng_corruptions(tmp_path):
    path = tmp_path / "t.pcapng"
    write_pcapng_with_truncated(path)
    raw = path.read_bytes()
    shb_len = struct.unpack_from("<I", raw, 4)[0]
    idb_len = struct.unpack_from("<I", raw, shb_len + 4)[0]
    first_epb = shb_len + idb_len
    with pytest.raises(InputError, match=f"truncated pcapng block at byte offset {first_epb}"):
        read_all(tmp_path, raw[:first_epb + 40], "a.pcapng")
    bad_trailer = bytearray(raw)
    epb_len = struct.unpack_from("<I", raw, first_epb + 4)[0]
    struct.pack_into("<I", bad_trailer, first_epb + epb_len - 4, epb_len + 4)
    with pytest.raises(InputError, match=f"byte offset {first_epb}: leading and trailing"):
        read_all(tmp_path, bytes(bad_trailer), "b.pcapng")
    bad_len = bytearray(raw)
    struct.pack_into("<I", bad_len, first_epb + 4, 13)
    with pytest.raises(InputError, match=f"corrupt pcapng block at byte offset {first_epb}"):
        read_all(tmp_path, bytes(bad_len), "c.pcapng")
    bad_bom = bytearray(raw)
    bad_bom[8:12] = b"\0\0\0\0"
    with pytest.raises(InputError, match="byte-order magic"):
        read_all(tmp_path, bytes(bad_bom), "d.pcapng")
    with pytest.raises(InputError, match="byte offset 0"):
        read_all(tmp_path, raw[:20], "e.pcapng")


def test_missing_and_directory(tmp_path):
    with pytest.raises(InputError, match="cannot open"):
        parse_traffic(f"pcap:{tmp_path}/nope.pcap")
    with pytest.raises(InputError, match="directory"):
        parse_traffic(f"pcap:{tmp_path}")


def test_pcap_streams_in_bounded_memory(tmp_path):
    frame = frames_for_capture()[1]
    path = tmp_path / "big.pcap"
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535)
        writer.writepkts((i * 1e-6, frame) for i in range(20_000))   # ~30 MB
    source = parse_traffic(f"pcap:{path}", nqueues=2)
    frames = iter(source)
    assert isinstance(frames, types.GeneratorType)
    tracemalloc.start()
    try:
        count = sum(1 for _ in frames)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    # the 1 MiB read buffer and its refill copy, plus small change; the file is 30 MB
    assert peak < 4 * 1024 * 1024
