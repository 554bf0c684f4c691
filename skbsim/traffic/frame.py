"""The received-frame record and the synthetic frame header.

A :class:`Frame` is what the simulated NIC hands to a driver RX path: how
long the frame was on the wire, when it arrived, which flow it belongs to,
what RSS hash the NIC computed and which RX queue (= CPU) that selected, and
the first bytes of the frame for drivers that copy headers into the skb
linear area (``eth_get_headlen()`` style).
"""

from __future__ import annotations

import struct

#: Ethernet header length (include/uapi/linux/if_ether.h: ETH_HLEN). A frame
#: shorter than its own Ethernet header cannot reach a driver.
MIN_FRAME_LEN = 14
#: Largest frame length the drivers accept (skb lengths and the pcap/IPv4
#: length fields the model feeds them are 16-bit here).
MAX_FRAME_LEN = 65535
#: How many leading bytes of a frame :attr:`Frame.header` carries at most.
HEADER_BYTES = 128

#: Ethernet + IPv4 (no options) + UDP: the smallest synthetic frame that can
#: carry a valid IPv4/UDP header.
SYNTHETIC_IPV4_UDP_MIN = 14 + 20 + 8
#: Ethernet + IPv4 + TCP without options, and the timestamp option's 12 bytes
#: (NOP, NOP, kind 8 length 10: TSval, TSecr) that Linux peers agree on.
SYNTHETIC_IPV4_TCP_MIN = 14 + 20 + 20
TCPOLEN_TSTAMP_ALIGNED = 12
TCP_FLAG_ACK = 0x10
TCP_FLAG_PSH = 0x08

#: Destination MAC of synthetic frames: locally administered (bit 1 of the
#: first octet set), unicast; stands for the simulated NIC's own address.
SYNTHETIC_DST_MAC = bytes.fromhex("020000000001")
#: Source MAC of synthetic frames (the simulated peer), locally administered.
SYNTHETIC_SRC_MAC = bytes.fromhex("020000000002")
#: EtherType of synthetic frames too short for IPv4+UDP (< 42 bytes):
#: IEEE 802 "Local Experimental EtherType 1" (0x88B5), which no stack parses.
ETHERTYPE_LOCAL_EXPERIMENTAL = 0x88B5
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPPROTO_TCP = 6
IPPROTO_UDP = 17


class Frame:
    """One received frame.

    Attributes:
        length: frame length on the wire in bytes, Ethernet header included,
            FCS excluded (what a NIC reports in its RX descriptor once it has
            stripped the CRC); 14..65535.
        time_ns: simulated arrival time in nanoseconds, non-decreasing along
            a stream, first frame at 0.
        flow: ``(src_addr, dst_addr, src_port, dst_port, ip_proto)`` with the
            addresses as packed ``bytes`` (4 or 16 long) and ports 0 where the
            frame has none (non-TCP/UDP or a fragment); ``None`` for non-IP
            frames or when flows were not parsed.
        rss_hash: 32-bit Toeplitz hash the NIC computed (0 when none: non-IP,
            or RSS not evaluated).
        queue: RX queue index the indirection table chose (= the CPU whose
            NAPI instance polls it).
        header: the first ``min(length, 128)`` bytes of the frame as it
            would sit in the RX buffer (fewer if the capture was truncated),
            or ``None`` when unknown (non-Ethernet captures).
    """

    __slots__ = ("length", "time_ns", "flow", "rss_hash", "queue", "header")

    def __init__(self, length, time_ns, flow, rss_hash, queue, header):
        self.length = length
        self.time_ns = time_ns
        self.flow = flow
        self.rss_hash = rss_hash
        self.queue = queue
        self.header = header

    def astuple(self):
        return (self.length, self.time_ns, self.flow, self.rss_hash,
                self.queue, self.header)

    def __eq__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        return self.astuple() == other.astuple()

    __hash__ = None  # mutable record: equality by value, not hashable

    def __repr__(self):
        header = "None" if self.header is None else f"<{len(self.header)} bytes>"
        return (f"Frame(length={self.length}, time_ns={self.time_ns}, "
                f"flow={self.flow!r}, rss_hash=0x{self.rss_hash:08x}, "
                f"queue={self.queue}, header={header})")


def _ones_complement_sum(data: bytes) -> int:
    """Sum of big-endian 16-bit words, not yet folded (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f">{len(data) // 2}H", data))


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


class SyntheticHeaderTemplate:
    """Ethernet + IPv4 + UDP header of one synthetic flow, for any length.

    Everything but the three length-dependent fields (IPv4 total length,
    IPv4 header checksum, UDP length) is fixed per flow, so the checksum is
    precomputed without the total length and finished per frame length with
    one ones-complement addition. The UDP checksum is 0 ("not computed"),
    which RFC 768 allows over IPv4. Bytes after the UDP header are zero.
    """

    __slots__ = ("_before_total_len", "_between", "_after_checksum",
                 "_partial_sum", "_non_ip")

    _PACK = struct.Struct(">16sH6sH12sH2x").pack
    _ZEROS = bytes(HEADER_BYTES)

    def __init__(self, src_addr: bytes, dst_addr: bytes, src_port: int,
                 dst_port: int):
        eth = SYNTHETIC_DST_MAC + SYNTHETIC_SRC_MAC + struct.pack(">H", ETHERTYPE_IPV4)
        # version 4, IHL 5 words, DSCP/ECN 0
        self._before_total_len = eth + b"\x45\x00"
        # identification 0, flags DF (0x4000), fragment offset 0, TTL 64, UDP
        self._between = struct.pack(">HHBB", 0, 0x4000, 64, IPPROTO_UDP)
        self._after_checksum = src_addr + dst_addr + struct.pack(">HH", src_port, dst_port)
        self._partial_sum = _fold(_ones_complement_sum(
            b"\x45\x00" + self._between + src_addr + dst_addr))
        self._non_ip = (SYNTHETIC_DST_MAC + SYNTHETIC_SRC_MAC
                        + struct.pack(">H", ETHERTYPE_LOCAL_EXPERIMENTAL))

    def build(self, length: int) -> bytes:
        """First ``min(length, 128)`` bytes of a synthetic frame of ``length``."""
        if length < SYNTHETIC_IPV4_UDP_MIN:
            return self._non_ip + self._ZEROS[:length - 14]
        total_len = length - 14
        # partial sum and total length are both < 0x10000: one carry at most
        folded = self._partial_sum + total_len
        folded = (folded & 0xFFFF) + (folded >> 16)
        head = self._PACK(self._before_total_len, total_len, self._between,
                          ~folded & 0xFFFF, self._after_checksum, length - 34)
        if length >= HEADER_BYTES:
            return head + self._ZEROS[:HEADER_BYTES - SYNTHETIC_IPV4_UDP_MIN]
        return head + self._ZEROS[:length - SYNTHETIC_IPV4_UDP_MIN]


class SyntheticTcpTemplate:
    """Ethernet + IPv4 + TCP header of one synthetic bulk-sending flow, for any segment.

    What a Linux sender puts there: DF, TTL 64, an IP ID that the caller
    increments per segment, ACK set with a fixed acknowledgement number and
    window (a one-way transfer), and with ``timestamps`` the aligned
    timestamp option (NOP, NOP, TSval, TSecr), TSecr fixed.  The IPv4
    checksum is right; the TCP checksum is 0 (the model takes TCP
    checksums as verified, as a NIC reporting CHECKSUM_UNNECESSARY does).
    Bytes after the headers are zero.
    """

    __slots__ = ("_eth", "_addrs", "_ports", "ack_seq", "window", "_tsecr", "timestamps", "header_len",
                 "_partial_sum")

    _IP = struct.Struct(">BBHHHBBH4s4s")
    _TCP = struct.Struct(">4sIIBBHHH")
    _TS = struct.Struct(">BBBBII")
    _ZEROS = bytes(HEADER_BYTES)

    def __init__(self, src_addr: bytes, dst_addr: bytes, src_port: int, dst_port: int, *,
                 timestamps: bool, ack_seq: int, window: int = 502, tsecr: int = 0):
        self._eth = SYNTHETIC_DST_MAC + SYNTHETIC_SRC_MAC + struct.pack(">H", ETHERTYPE_IPV4)
        self._addrs = (src_addr, dst_addr)
        self._ports = struct.pack(">HH", src_port, dst_port)
        self.ack_seq = ack_seq
        self.window = window
        self._tsecr = tsecr
        self.timestamps = timestamps
        self.header_len = SYNTHETIC_IPV4_TCP_MIN + (TCPOLEN_TSTAMP_ALIGNED if timestamps else 0)
        # IPv4 header sum without total length, ID and checksum.
        self._partial_sum = _ones_complement_sum(
            struct.pack(">BBHHHBBH", 0x45, 0, 0, 0, 0x4000, 64, IPPROTO_TCP, 0) + src_addr + dst_addr)

    def build(self, length: int, seq: int = 0, ip_id: int = 0, tsval: int = 0, flags: int = TCP_FLAG_ACK,
              tsecr: int | None = None) -> bytes:
        """First ``min(length, 128)`` bytes of a segment frame of ``length`` bytes (the header layout,
        as eth_get_headlen() reads it, does not depend on seq, ip_id, tsval or tsecr; ``tsecr`` None:
        the template's)."""
        if length < self.header_len:
            raise ValueError(f"a TCP frame of {length} bytes cannot hold its {self.header_len} header bytes")
        total_len = length - 14
        checksum = ~_fold(self._partial_sum + total_len + ip_id) & 0xFFFF
        src, dst = self._addrs
        ip = self._IP.pack(0x45, 0, total_len, ip_id, 0x4000, 64, IPPROTO_TCP, checksum, src, dst)
        doff = (self.header_len - 34) // 4
        tcp = self._TCP.pack(self._ports, seq & 0xFFFFFFFF, self.ack_seq, doff << 4, flags, self.window, 0, 0)
        head = self._eth + ip + tcp
        if self.timestamps:
            head += self._TS.pack(1, 1, 8, 10, tsval & 0xFFFFFFFF, self._tsecr if tsecr is None else tsecr)
        keep = min(length, HEADER_BYTES)
        return head[:keep] + self._ZEROS[:keep - len(head)] if keep > len(head) else head[:keep]
