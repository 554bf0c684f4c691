"""Receive Side Scaling: the Toeplitz hash and the indirection table.

The hash is the one Microsoft specified for RSS and that NICs implement in
hardware ("RSS Hashing Functions", learn.microsoft.com/windows-hardware/
drivers/network/rss-hashing-functions): for every set bit of the input,
MSB of the first byte first, XOR into the result the 32 key bits that start
at that bit position. Inputs, in network byte order:

* IPv4 2-tuple: source address, destination address (8 bytes)
* IPv4 4-tuple: source address, destination address, source port,
  destination port (12 bytes)
* IPv6 2-tuple / 4-tuple likewise (32 / 36 bytes)

The queue is ``indirection_table[hash & (table_size - 1)]``: NICs index
their redirection table with the low-order bits of the hash. The default
table fills entry ``i`` with ``i % nqueues``, as the kernel's
``ethtool_rxfh_indir_default()`` (include/linux/ethtool.h) does for drivers
that have no user-set table; 128 entries is the size used by e.g. ixgbe's
RETA (82599). ice uses larger tables; pass ``table_size`` to match one.
"""

from __future__ import annotations

import struct

from skbsim.errors import InputError
from skbsim.traffic.frame import (ETHERTYPE_IPV4, ETHERTYPE_IPV6,
                                  IPPROTO_TCP, IPPROTO_UDP)

#: The 40-byte key from Microsoft's RSS verification suite ("Verifying the RSS
#: Hash Calculation"); also the default key of many drivers and of DPDK.
MICROSOFT_RSS_KEY = bytes.fromhex(
    "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c"
    "6a42b73bbeac01fa")
DEFAULT_INDIRECTION_SIZE = 128

_ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad, old QinQ
_IPV4_FRAGMENT_MASK = 0x3FFF  # MF flag + fragment offset
#: Above this many distinct flows the per-source hash cache is dropped and
#: refilled, so memory stays bounded on traces with endless flows.
_FLOW_CACHE_LIMIT = 1 << 16


class Toeplitz:
    """Toeplitz hash with a fixed key, table-driven: one XOR per input byte.

    For input byte position ``i`` and byte value ``v``, ``tables[i][v]`` is
    the XOR of the 32-bit key windows of the bits set in ``v``; hashing is
    then ``XOR of tables[i][input[i]]``. Inputs may be up to
    ``len(key) - 4`` bytes long (36 for the 40-byte key: IPv6 4-tuple).
    """

    __slots__ = ("key", "_tables")

    def __init__(self, key: bytes = MICROSOFT_RSS_KEY):
        key = bytes(key)
        if len(key) < 40:
            raise InputError(f"RSS key must be at least 40 bytes, got {len(key)}")
        self.key = key
        key_bits = int.from_bytes(key, "big")
        nbits = len(key) * 8
        tables = []
        for byte_index in range((nbits - 32) // 8):
            # window[k]: key bits [p, p+32) for the input bit of weight 1<<k
            # of this byte, i.e. absolute bit position p = 8*byte_index + 7-k
            window = [(key_bits >> (nbits - 32 - (8 * byte_index + 7 - k))) & 0xFFFFFFFF
                      for k in range(8)]
            table = [0] * 256
            for value in range(1, 256):
                lowest = value & -value
                table[value] = table[value ^ lowest] ^ window[lowest.bit_length() - 1]
            tables.append(tuple(table))
        self._tables = tuple(tables)

    def hash(self, data: bytes) -> int:
        if len(data) > len(self._tables):
            raise ValueError(f"Toeplitz input of {len(data)} bytes needs a key of "
                             f"{len(data) + 4} bytes, have {len(self.key)}")
        result = 0
        for table, byte in zip(self._tables, data):
            result ^= table[byte]
        return result

    def ipv4(self, src: bytes, dst: bytes) -> int:
        return self.hash(src + dst)

    def ipv4_l4(self, src: bytes, dst: bytes, src_port: int, dst_port: int) -> int:
        return self.hash(src + dst + struct.pack(">HH", src_port, dst_port))

    ipv6 = ipv4
    ipv6_l4 = ipv4_l4


class RssConfig:
    """Key + indirection table: what ``ethtool -x`` shows for a NIC."""

    __slots__ = ("nqueues", "toeplitz", "table", "mask")

    def __init__(self, nqueues: int, *, key: bytes = MICROSOFT_RSS_KEY,
                 table_size: int = DEFAULT_INDIRECTION_SIZE,
                 table: tuple[int, ...] | None = None):
        if isinstance(nqueues, bool) or not isinstance(nqueues, int) or nqueues < 1:
            raise InputError(f"number of RX queues must be a positive integer, got {nqueues!r}")
        if table is None:
            if table_size < 1 or table_size & (table_size - 1):
                raise InputError(f"RSS indirection table size must be a power of two, "
                                 f"got {table_size}")
            table = tuple(i % nqueues for i in range(table_size))
        else:
            table = tuple(table)
            if not table or len(table) & (len(table) - 1):
                raise InputError(f"RSS indirection table must have a power-of-two "
                                 f"number of entries, got {len(table)}")
            if any(not 0 <= q < nqueues for q in table):
                raise InputError(f"RSS indirection table names a queue outside 0..{nqueues - 1}")
        self.nqueues = nqueues
        self.toeplitz = Toeplitz(key)
        self.table = table
        self.mask = len(table) - 1

    def queue_of(self, rss_hash: int) -> int:
        return self.table[rss_hash & self.mask]

    def describe(self) -> str:
        key = ("Microsoft verification key" if self.toeplitz.key == MICROSOFT_RSS_KEY
               else f"key {self.toeplitz.key.hex()}")
        return (f"RSS Toeplitz ({key}), {len(self.table)}-entry indirection table "
                f"-> {self.nqueues} queue{'s' if self.nqueues != 1 else ''}")


class FlowClassifier:
    """What the NIC parser does before hashing: find IP addresses and ports.

    Each ``classify_*`` method takes the captured leading bytes of a frame
    (link-layer header included) and returns ``(flow, rss_hash, queue)``.
    Frames the NIC cannot hash (not IPv4/IPv6, or cut short before the
    addresses) get hash 0 and ``table[0]``, i.e. the default queue. IPv4
    fragments (MF set or non-zero offset) and IPv6 packets whose next header
    is not directly TCP/UDP are hashed on addresses only, as the Microsoft
    specification requires and as NICs do since later fragments carry no
    ports. TCP and UDP are both hashed with ports (the ice default).
    """

    __slots__ = ("rss", "_cache", "_tcp4", "_udp4", "_non_ip")

    def __init__(self, rss: RssConfig):
        self.rss = rss
        # (proto, src, dst, ports) -> (flow, hash, queue)
        self._cache = {}
        # fast path for the common case, option-less unfragmented IPv4 TCP/UDP
        # in untagged Ethernet: frame bytes 26..37 (addresses + ports) -> result
        self._tcp4 = {}
        self._udp4 = {}
        self._non_ip = (None, 0, rss.table[0])

    def _lookup(self, proto, src, dst, ports):
        cache_key = (proto, src, dst, ports)
        hit = self._cache.get(cache_key)
        if hit is not None:
            return hit
        rss = self.rss
        rss_hash = rss.toeplitz.hash(src + dst + ports)
        if ports:
            src_port, dst_port = struct.unpack(">HH", ports)
        else:
            src_port = dst_port = 0
        result = ((src, dst, src_port, dst_port, proto), rss_hash,
                  rss.table[rss_hash & rss.mask])
        if len(self._cache) >= _FLOW_CACHE_LIMIT:
            self._cache.clear()
        self._cache[cache_key] = result
        return result

    def classify_l3(self, data: bytes, offset: int, ethertype: int):
        while ethertype in _ETHERTYPE_VLAN:
            if len(data) < offset + 4:
                return self._non_ip
            ethertype = (data[offset + 2] << 8) | data[offset + 3]
            offset += 4
        if ethertype == ETHERTYPE_IPV4:
            if len(data) < offset + 20 or data[offset] >> 4 != 4:
                return self._non_ip
            ihl = (data[offset] & 0x0F) * 4
            proto = data[offset + 9]
            src = data[offset + 12:offset + 16]
            dst = data[offset + 16:offset + 20]
            l4 = offset + ihl
            fragment = ((data[offset + 6] << 8) | data[offset + 7]) & _IPV4_FRAGMENT_MASK
            if (proto == IPPROTO_TCP or proto == IPPROTO_UDP) and not fragment \
                    and ihl >= 20 and len(data) >= l4 + 4:
                return self._lookup(proto, src, dst, data[l4:l4 + 4])
            return self._lookup(proto, src, dst, b"")
        if ethertype == ETHERTYPE_IPV6:
            if len(data) < offset + 40 or data[offset] >> 4 != 6:
                return self._non_ip
            proto = data[offset + 6]
            src = data[offset + 8:offset + 24]
            dst = data[offset + 24:offset + 40]
            if (proto == IPPROTO_TCP or proto == IPPROTO_UDP) and len(data) >= offset + 44:
                return self._lookup(proto, src, dst, data[offset + 40:offset + 44])
            return self._lookup(proto, src, dst, b"")
        return self._non_ip

    def classify_ethernet(self, data: bytes):
        # EtherType IPv4, version 4 + IHL 5, no fragment bits, TCP or UDP:
        # addresses and ports sit contiguously at bytes 26..37.
        if data[12:15] == b"\x08\x00\x45" and len(data) >= 38 \
                and not (data[20] & 0x3F or data[21]):
            proto = data[23]
            if proto == IPPROTO_UDP or proto == IPPROTO_TCP:
                cache = self._udp4 if proto == IPPROTO_UDP else self._tcp4
                key = data[26:38]
                hit = cache.get(key)
                if hit is None:
                    if len(cache) >= _FLOW_CACHE_LIMIT:
                        cache.clear()
                    hit = cache[key] = self._lookup(proto, data[26:30], data[30:34],
                                                    data[34:38])
                return hit
        if len(data) < 14:
            return self._non_ip
        return self.classify_l3(data, 14, (data[12] << 8) | data[13])

    def classify_linux_sll(self, data: bytes):
        """LINKTYPE_LINUX_SLL: 16-byte cooked header, protocol at bytes 14-15."""
        if len(data) < 16:
            return self._non_ip
        return self.classify_l3(data, 16, (data[14] << 8) | data[15])

    def classify_linux_sll2(self, data: bytes):
        """LINKTYPE_LINUX_SLL2: 20-byte cooked header, protocol at bytes 0-1."""
        if len(data) < 20:
            return self._non_ip
        return self.classify_l3(data, 20, (data[0] << 8) | data[1])

    def classify_raw_ip(self, data: bytes):
        """LINKTYPE_RAW / IPV4 / IPV6: the capture starts at the IP header."""
        if not data:
            return self._non_ip
        version = data[0] >> 4
        if version == 4:
            return self.classify_l3(data, 0, ETHERTYPE_IPV4)
        if version == 6:
            return self.classify_l3(data, 0, ETHERTYPE_IPV6)
        return self._non_ip
