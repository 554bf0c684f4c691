"""Both engines on one --socket tcp run: the fast engine's TCP tests compare their JSON; captures of TCP (and UDP)
flows for them (tests/test_fast_tcp_pcap.py, tests/tools/compare_engines.py)."""

import struct

import dpkt
from hypothesis import strategies as st

from skbsim.fast import simulate_engine
from skbsim.live.tcp_peer import internet_checksum
from skbsim.sim import RunConfig, simulate

#: the tests' starting point: one bulk flow without timestamps on 6.18 (each test file adds its driver)
TCP_RUN = dict(kernel="6.18", options={}, socket="tcp", traffic="tcp-bulk:ts=0", tcp="bulk", flows=1)

#: a random TCP workload's draws beside the kernel and the driver (tests/test_fast_tcp_napi.py,
#: test_fast_tcp_virtio.py, test_fast_tcp_tun_napi.py)
RANDOM_WORKLOAD = dict(
    ts=st.sampled_from([0, 1]),
    tcp=st.sampled_from(["bulk", "messages:3000", "messages:20000@2000", "messages:100@50000", "messages:1460"]),
    flows=st.sampled_from([1, 2, 3, 16]), rtt=st.sampled_from([0.05, 0.5, 1.0, 20.0]),
    app_rate=st.sampled_from([None, 0, 1000, 20000, 200000]), read=st.sampled_from([None, 1000, 65536]),
    so_rcvbuf=st.sampled_from([None, 8192, 65536, 1 << 20]), count=st.integers(1, 1500),
    rate=st.sampled_from([1e5, 1e6, 3e6, 1234567.0]), cpus=st.integers(1, 3),
    faults=st.sampled_from([(), (), (("slab", 0.02, 1, -1, 0),), (("page_alloc", 0.01, 1, -1, 0),),
                            (("skb_head", 0.001, 1, -1, 100), ("page_frag", 0.3, 2, 3, 10))]))


def run_both(config: dict) -> tuple[dict, dict, str | None]:
    """(the reference engine's JSON, the fast engine's, why the fast engine handed the run over or None)."""
    reference, _ = simulate(RunConfig(**config))
    fast, _, why = simulate_engine(RunConfig(**config), "fast")
    # the leak check: every page, slab object and skb given back at the end of the run, on both engines
    assert reference["leaks"]["clean"] and fast["leaks"]["clean"], (reference["leaks"], fast["leaks"])
    return reference, fast, why


def same(reference: dict, fast: dict) -> bool:
    """The same JSON, key for key and in the same order, but for the engine's name."""
    return {**fast, "engine": "reference"} == reference and list(reference) == list(fast)


# -- TCP capture --

SYN, RST, PSH, ACK, FIN = 0x02, 0x04, 0x08, 0x10, 0x01
SRC, DST = bytes((198, 18, 0, 1)), bytes((192, 0, 2, 1))
MACS = bytes.fromhex("020000000001") + bytes.fromhex("020000000002")


def segment(seq: int, payload: int, *, flags: int = ACK | PSH, sport: int = 40000, dport: int = 5001,
            ack: int = 7, window: int = 502, ts: int | None = 1000, syn_options: bool = False,
            ip_csum: bool = True) -> bytes:
    """An Ethernet + IPv4 + TCP frame of payload bytes (zeros): the timestamps option with TSval ts (none when
    None); a SYN with syn_options carries MSS 1460, SACK-permitted and window scale 7 as Linux lays them out.  The
    IPv4 header checksum is right, or (ip_csum False) 0 as a sender's capture with checksum offload shows it:
    GRO passes such a segment up alone (inet_gro_receive())."""
    options = b""
    if syn_options:
        options = struct.pack(">BBH", 2, 4, 1460)
        options += struct.pack(">BBBBII", 4, 2, 8, 10, ts, 0) if ts is not None else struct.pack(">BBBB", 1, 1, 4, 2)
        options += struct.pack(">BBBB", 1, 3, 3, 7)
    elif ts is not None:
        options = struct.pack(">BBBBII", 1, 1, 8, 10, ts, 99)
    thlen = 20 + len(options)
    tot_len = 20 + thlen + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, tot_len, 1, 0x4000, 64, 6, 0, SRC, DST)
    if ip_csum:
        ip = ip[:10] + struct.pack(">H", internet_checksum(ip)) + ip[12:]
    tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, ack, (thlen // 4) << 4, flags, window, 0, 0) + options
    return MACS + b"\x08\x00" + ip + tcp + bytes(payload)


def gro_burst(syn: bool) -> list:
    """One flow's frames for a capture (tests/test_fast_tcp_pcap.py, test_fast_tcp_tun_napi.py derive what GRO makes
    of them): a SYN with MSS, SACK, timestamps and window scale (with syn) at 0, then at 100 us 8 in-order segments
    of 1448 bytes from seq 1000 with TSval 1001, ACK on the first 7 and ACK | PSH on the 8th."""
    frames = [(0.0, segment(999, 0, flags=SYN, ack=0, ts=1000, syn_options=True))] if syn else []
    return frames + [(1e-4, segment(1000 + 1448 * n, 1448, flags=ACK | (PSH if n == 7 else 0), ts=1001))
                     for n in range(8)]


def udp_datagram(payload: int, sport: int = 7000) -> bytes:
    """An Ethernet + IPv4 + UDP frame of payload bytes."""
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 28 + payload, 1, 0x4000, 64, 17, 0, SRC, DST)
    return MACS + b"\x08\x00" + ip + struct.pack(">HHHH", sport, 9000, 8 + payload, 0) + bytes(payload)


def write_capture(path: str, frames: list) -> str:
    """A classic pcap of (time in s, frame bytes); the --traffic of it."""
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for when, frame in frames:
            writer.writepkt(frame, ts=when)
    return f"pcap:{path}"


def random_capture(rng, path: str, max_frames: int, udp_share: float = 0.15) -> tuple[str, int]:
    """A capture drawn with rng (random.Random): 1 to 4 TCP flows, each with a SYN (with options or not) or
    first seen in mid-stream, segments of an MSS or less (pure ACKs among them), neighbours swapped, segments
    repeated later, PSH on each or on the last, a FIN, a RST; interleaved with gaps of 0 to 200 us; now and then
    a UDP flow too.  Returns (the --traffic, its frames)."""
    budget = max(2, min(max_frames, 400))
    flows = []
    for index in range(rng.randint(1, 4)):
        sport = 40000 + index
        ts = rng.choice((None, rng.randint(0, 1 << 31)))
        isn = rng.randint(0, 0xFFFFFFFF)
        frames = []
        opening = rng.choice(("syn", "syn_options", "midstream"))
        if opening != "midstream":
            frames.append(segment(isn, 0, flags=SYN, sport=sport, ts=ts, ack=0, syn_options=opening == "syn_options"))
        mss = rng.choice((536, 1000, 1448))
        seq = (isn + 1) & 0xFFFFFFFF
        data = []
        for n in range(rng.randint(1, budget)):
            size = mss if rng.random() < 0.7 else rng.randint(0, mss)
            data.append((seq, size, None if ts is None else (ts + n // 8) & 0xFFFFFFFF))
            seq = (seq + size) & 0xFFFFFFFF
        for _ in range(rng.randint(0, 4)):
            at = rng.randrange(len(data))
            if at + 1 < len(data):
                data[at], data[at + 1] = data[at + 1], data[at]
        for _ in range(rng.randint(0, 4)):
            at = rng.randrange(len(data))
            data.insert(rng.randint(at, len(data)), data[at])
        # PSH on every segment, or (a bulk sender's) on the last only: GRO merges segments up to one with PSH
        push = PSH if rng.random() < 0.5 else 0
        ip_csum = rng.random() < 0.9  # (else captured at a sender with checksum offload)
        for n, (seq, size, tsval) in enumerate(data):
            fin = FIN if n == len(data) - 1 and rng.random() < 0.5 else 0
            flags = ACK | (PSH if n == len(data) - 1 else push) | fin
            frames.append(segment(seq, size, flags=flags, sport=sport, ts=tsval, ip_csum=ip_csum))
        if rng.random() < 0.2:
            frames.append(segment(seq, 0, flags=RST | ACK, sport=sport, ts=None))
        flows.append(frames)
    if rng.random() < udp_share:
        flows.append([udp_datagram(rng.randint(0, 1400)) for _ in range(rng.randint(1, 20))])
    out = []
    when = 0.0
    gaps = rng.choice(((0, 1, 10), (0, 10, 200), (1,), (200,)))
    while any(flows):
        frames = rng.choice([f for f in flows if f])
        when += rng.choice(gaps) * 1e-6
        out.append((when, frames.pop(0)))
    return write_capture(path, out), len(out)
