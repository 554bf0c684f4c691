"""Frames from a capture file: pcap (all four magics) and pcapng, streamed.

Why the record loop is ours and not ``dpkt.pcap.Reader``/``dpkt.pcapng.Reader``:
those readers yield ``(timestamp, captured_bytes)`` only, so the original
wire length (pcap ``orig_len``, pcapng "original packet length") that this
model needs is lost for truncated captures; they also accept a short last
record silently, keep only the first pcapng interface, and build one dpkt
object per record (slow). dpkt is used where it fits: it parses the pcap file
header (``dpkt.pcap.FileHdr``) and the pcapng Section Header and Interface
Description blocks with their options (``dpkt.pcapng``). Packet records are
decoded with ``struct.unpack_from`` straight from a 1 MiB read buffer, so
memory stays flat however long the file is.

Lengths: a frame's ``length`` is the original length minus any FCS the
capture says it contains (pcap FCS-length bits, pcapng ``if_fcslen``),
converted to Ethernet framing where the capture is not Ethernet but the
link-layer header size is known: Linux cooked captures replace their
16-byte (SLL) or 20-byte (SLL2) pseudo-header by the 14-byte Ethernet
header; raw-IP captures (LINKTYPE_RAW/IPV4/IPV6) gain 14 bytes. Other link
types keep their length as is and have no flow.

Timestamps: relative to the first frame, in ns; a timestamp earlier than the
previous frame's is raised to it (captures from several queues can be out
of order, the simulator consumes frames in file order). pcapng Simple
Packet Blocks carry no timestamp and get the previous frame's time.
"""

from __future__ import annotations

import functools
import os
import struct
from typing import Iterator

import dpkt
import dpkt.pcap
import dpkt.pcapng

from skbsim.errors import InputError
from skbsim.files import shown
from skbsim.net.ethernet import ETH_HLEN
from skbsim.traffic.frame import HEADER_BYTES, MAX_FRAME_LEN, MIN_FRAME_LEN, Frame
from skbsim.traffic.rss import FlowClassifier, RssConfig
from skbsim.traffic.source import FrameSource
from skbsim.traffic.synthetic import BATCH, arrival_sampler, describe_arrivals

_READ_CHUNK = 1 << 20
#: libpcap's MAXIMUM_SNAPLEN: no sane record captures more than this.
_MAX_CAPLEN = 262144
#: Largest pcapng block we accept (libpcap uses the same 16 MiB bound).
_MAX_BLOCK = 16 * 1024 * 1024

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

# linktype -> (name, bytes to add for Ethernet framing, classifier method,
#              captured bytes are an Ethernet frame)
_LINKS = {
    LINKTYPE_ETHERNET: ("ETHERNET", 0, "classify_ethernet", True),
    LINKTYPE_LINUX_SLL: ("LINUX_SLL", 14 - 16, "classify_linux_sll", False),
    LINKTYPE_LINUX_SLL2: ("LINUX_SLL2", 14 - 20, "classify_linux_sll2", False),
    LINKTYPE_RAW: ("RAW", 14, "classify_raw_ip", False),
    LINKTYPE_IPV4: ("IPV4", 14, "classify_raw_ip", False),
    LINKTYPE_IPV6: ("IPV6", 14, "classify_raw_ip", False),
}


def link_info(linktype: int):
    return _LINKS.get(linktype, (f"linktype {linktype}", 0, None, False))


_PCAP_MAGICS = {
    # magic as read big-endian -> (byte order, nanosecond stamps, record header length)
    dpkt.pcap.TCPDUMP_MAGIC: (">", False, 16),
    dpkt.pcap.TCPDUMP_MAGIC_NANO: (">", True, 16),
    dpkt.pcap.MODPCAP_MAGIC: (">", False, 24),
    dpkt.pcap.PMUDPCT_MAGIC: ("<", False, 16),
    dpkt.pcap.PMUDPCT_MAGIC_NANO: ("<", True, 16),
    dpkt.pcap.PACPDOM_MAGIC: ("<", False, 24),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BT_SHB = dpkt.pcapng.PCAPNG_BT_SHB  # 0x0A0D0D0A: same in either byte order
_BOM_BIG = struct.pack(">I", dpkt.pcapng.BYTE_ORDER_MAGIC)
_BOM_LITTLE = struct.pack("<I", dpkt.pcapng.BYTE_ORDER_MAGIC)
_FILE_HEADER_LEN = 24
_DPKT_ERRORS = (dpkt.dpkt.Error, struct.error, ValueError, UnicodeDecodeError, IndexError)


def _open(path: str):
    try:
        return open(path, "rb", buffering=0)
    except OSError as err:
        raise InputError(f"pcap:{shown(path)}: cannot open: {err.strerror or err}") from None


class _PcapHeader:
    __slots__ = ("order", "nano", "record_len", "snaplen", "linktype", "fcs_len")


def _kept_header(head: bytes) -> bytes:
    """The leading bytes an Ethernet frame keeps for the drivers: a record cut inside its 14-byte Ethernet
    header is completed with zeros (EtherType 0: no IP frame), since every driver reads a whole Ethernet
    header (eth_type_trans()) and the capture does not say what the rest of it was."""
    if len(head) >= ETH_HLEN:
        return head
    return head + bytes(ETH_HLEN - len(head))


def _read_pcap_header(head: bytes, path: str) -> _PcapHeader:
    magic = struct.unpack(">I", head[:4])[0]
    order, nano, record_len = _PCAP_MAGICS[magic]
    if len(head) < _FILE_HEADER_LEN:
        raise InputError(f"pcap:{shown(path)}: truncated pcap file header: file ends at byte "
                         f"offset {len(head)}, the header needs {_FILE_HEADER_LEN}")
    parsed = (dpkt.pcap.LEFileHdr if order == "<" else dpkt.pcap.FileHdr)(head)
    if parsed.v_major != dpkt.pcap.PCAP_VERSION_MAJOR:
        raise InputError(f"pcap:{shown(path)}: unsupported pcap version {parsed.v_major}."
                         f"{parsed.v_minor} (byte offset 4)")
    header = _PcapHeader()
    header.order, header.nano, header.record_len = order, nano, record_len
    header.snaplen = parsed.snaplen
    # The 32-bit link-type field also carries, in its top bits, whether and
    # how much FCS each record includes (the P bit 26; FCS length in 16-bit
    # words in bits 28-31).
    header.linktype = parsed.linktype & 0xFFFF
    header.fcs_len = ((parsed.linktype >> 28) & 0xF) * 2 if parsed.linktype & (1 << 26) else 0
    return header


class _Interface:
    """One pcapng Interface Description Block, reduced to what we use."""

    __slots__ = ("linktype", "snaplen", "ts_mul", "ts_div", "ts_offset_ns", "fcs_len",
                 "wire_adjust", "classify_name", "ethernet")

    def __init__(self, idb, order: str):
        self.linktype = idb.linktype
        self.snaplen = idb.snaplen
        self.ts_mul, self.ts_div = 1000, 1  # default resolution: microseconds
        self.ts_offset_ns = 0
        self.fcs_len = 0
        for option in idb.opts:
            data = option.data
            if option.code == dpkt.pcapng.PCAPNG_OPT_IF_TSRESOL and len(data) >= 1:
                exponent = data[0] & 0x7F
                if data[0] & 0x80:  # 2**-exponent seconds
                    self.ts_mul, self.ts_div = 10**9, 1 << exponent
                elif exponent <= 9:
                    self.ts_mul, self.ts_div = 10 ** (9 - exponent), 1
                else:
                    self.ts_mul, self.ts_div = 1, 10 ** (exponent - 9)
            elif option.code == dpkt.pcapng.PCAPNG_OPT_IF_TSOFFSET and len(data) >= 8:
                self.ts_offset_ns = struct.unpack(order + "q", data[:8])[0] * 10**9
            elif option.code == dpkt.pcapng.PCAPNG_OPT_IF_FCSLEN and len(data) >= 1:
                self.fcs_len = data[0] // 8  # the option counts bits
        _, self.wire_adjust, self.classify_name, self.ethernet = link_info(self.linktype)


def _sniff(path: str) -> tuple[str, bytes]:
    with _open(path) as f:
        head = f.read(_FILE_HEADER_LEN)
    if len(head) < 4:
        raise InputError(f"pcap:{shown(path)}: not a pcap or pcapng file: only {len(head)} bytes "
                         f"(truncated at byte offset {len(head)})")
    if head[:4] == _PCAPNG_SHB:
        return "pcapng", head
    if struct.unpack(">I", head[:4])[0] in _PCAP_MAGICS:
        return "pcap", head
    raise InputError(f"pcap:{shown(path)}: not a pcap or pcapng file (magic 0x{head[:4].hex()} "
                     f"at byte offset 0)")


class CaptureSource(FrameSource):
    """Frames of a pcap/pcapng file, with the capture's timing or a paced rate.

    ``parse_flows``: decode IP addresses/ports and compute RSS hash and queue
    per frame. When off, frames carry flow ``None``, hash 0, queue 0 (the
    only queue, when the NIC has one).
    """

    __slots__ = ("path", "format", "count", "seed", "rate", "arrival", "rss",
                 "parse_flows", "headers", "_head", "_summary", "_limit")

    def __init__(self, path: str, *, count: int | None, seed: int, rate: float | None,
                 arrival: str, rss: RssConfig, parse_flows: bool, headers: bool = True):
        self.path = path
        if os.path.isdir(path):
            raise InputError(f"pcap:{shown(path)}: is a directory")
        self.format, self._head = _sniff(path)
        # how many frames the file holds is unknown until it is read; the
        # requested count is only an upper bound (_limit)
        self.count = None
        self.seed = seed
        self.rate = rate
        self.arrival = arrival
        self.rss = rss
        self.parse_flows = parse_flows
        self.headers = headers
        self._limit = count
        if self.format == "pcap":
            header = _read_pcap_header(self._head, path)
            self._summary = (f"pcap, linktype {link_info(header.linktype)[0]}, "
                             f"snaplen {header.snaplen}")
        else:
            self._summary = self._peek_pcapng()

    def describe(self) -> str:
        limit = "all frames" if self._limit is None else f"first {self._limit} frames"
        timing = ("capture timestamps" if self.rate is None
                  else describe_arrivals(self.rate, self.arrival))
        flows = self.rss.describe() if self.parse_flows else "flows not parsed (every frame on queue 0)"
        return f"pcap:{shown(self.path)} ({self._summary}); {limit}; {timing}; {flows}"

    def __iter__(self) -> Iterator[Frame]:
        frames = self._pcap_frames() if self.format == "pcap" else self._pcapng_frames()
        if self.rate is None:
            return frames
        return self._paced(frames)

    def _paced(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        take_times = arrival_sampler(self.rate, self.arrival, self.seed)
        times = iter(())
        for frame in frames:
            time_ns = next(times, None)
            if time_ns is None:
                times = iter(take_times(BATCH))
                time_ns = next(times)
            frame.time_ns = time_ns
            yield frame

    def _classifier(self, classify_name):
        if not self.parse_flows or classify_name is None:
            return None
        return getattr(FlowClassifier(self.rss), classify_name)

    # --- pcap -----------------------------------------------------------------

    def _pcap_frames(self) -> Iterator[Frame]:
        path = self.path
        header = _read_pcap_header(self._head, path)
        _, wire_adjust, classify_name, ethernet = link_info(header.linktype)
        classify = self._classifier(classify_name)
        keep_header = ethernet and self.headers
        need_bytes = keep_header or classify is not None
        unpack_record = struct.Struct(header.order + "IIII").unpack_from
        record_len = header.record_len
        frac_to_ns = 1 if header.nano else 1000
        fcs_len = header.fcs_len
        # orig_len bounds that give a frame length of 14..65535
        orig_min = MIN_FRAME_LEN + fcs_len - wire_adjust
        orig_max = MAX_FRAME_LEN + fcs_len - wire_adjust
        max_caplen = max(header.snaplen, _MAX_CAPLEN)
        remaining = -1 if self._limit is None else self._limit
        if remaining == 0:
            return

        index = 0
        first_ns = None
        last_ns = 0
        with _open(path) as f:
            f.seek(_FILE_HEADER_LEN)
            buf = b""
            pos = 0
            base = _FILE_HEADER_LEN  # file offset of buf[0]
            while True:
                more = f.read(_READ_CHUNK)
                buf = buf[pos:] + more
                base += pos
                pos = 0
                size = len(buf)
                if not more:
                    if size:
                        self._pcap_tail_error(buf, base, index, record_len, unpack_record)
                    return
                # every complete record now in buf
                while pos + record_len <= size:
                    sec, frac, caplen, orig_len = unpack_record(buf, pos)
                    if caplen > orig_len or caplen > max_caplen:
                        raise InputError(
                            f"pcap:{shown(path)}: corrupt record {index} at byte offset "
                            f"{base + pos}: captured length {caplen}, original length "
                            f"{orig_len}")
                    start = pos + record_len
                    end = start + caplen
                    if end > size:
                        break  # the rest of this record is in the next chunk
                    if orig_len < orig_min or orig_len > orig_max:
                        raise InputError(
                            f"pcap:{shown(path)}: record {index} at byte offset {base + pos}: "
                            f"frame length {orig_len - fcs_len + wire_adjust} outside "
                            f"{MIN_FRAME_LEN}..{MAX_FRAME_LEN}")
                    time_ns = sec * 1_000_000_000 + frac * frac_to_ns
                    if first_ns is None:
                        first_ns = time_ns
                    time_ns -= first_ns
                    if time_ns < last_ns:
                        time_ns = last_ns
                    else:
                        last_ns = time_ns
                    pos = end
                    index += 1
                    if need_bytes:
                        usable = orig_len - fcs_len
                        if usable > caplen:
                            usable = caplen
                        if usable > HEADER_BYTES:
                            usable = HEADER_BYTES
                        head = buf[start:start + usable]
                        if classify is None:
                            yield Frame(orig_len - fcs_len + wire_adjust, time_ns,
                                        None, 0, 0, _kept_header(head))
                        else:
                            flow, rss_hash, queue = classify(head)
                            yield Frame(orig_len - fcs_len + wire_adjust, time_ns,
                                        flow, rss_hash, queue, _kept_header(head) if keep_header else None)
                    else:
                        yield Frame(orig_len - fcs_len + wire_adjust, time_ns,
                                    None, 0, 0, None)
                    if index == remaining:
                        return

    def _pcap_tail_error(self, tail: bytes, offset: int, index: int, record_len: int,
                         unpack_record) -> None:
        """The file ended inside record ``index`` that starts at ``offset``."""
        if len(tail) < record_len:
            raise InputError(
                f"pcap:{shown(self.path)}: truncated record header at byte offset {offset} "
                f"(record {index}): {len(tail)} of {record_len} bytes")
        caplen = unpack_record(tail, 0)[2]
        raise InputError(
            f"pcap:{shown(self.path)}: truncated record {index} at byte offset {offset}: "
            f"{caplen} captured bytes announced, file ends at byte offset "
            f"{offset + len(tail)}")

    # --- pcapng ---------------------------------------------------------------

    def _peek_pcapng(self) -> str:
        """Validate the Section Header and find the first interface's link type."""
        blocks = self._pcapng_blocks(peek=True)
        try:
            for linktype in blocks:
                return f"pcapng, first interface linktype {link_info(linktype)[0]}"
            return "pcapng, no interface"
        finally:
            blocks.close()

    def _pcapng_frames(self) -> Iterator[Frame]:
        return self._pcapng_blocks(peek=False)

    def _pcapng_blocks(self, peek: bool):
        """Walk pcapng blocks; yield frames, or (``peek``) the first link type."""
        path = self.path
        keep_headers = self.headers
        classifier = FlowClassifier(self.rss) if self.parse_flows else None
        remaining = -1 if self._limit is None else self._limit
        if remaining == 0 and not peek:
            return
        bt_epb = dpkt.pcapng.PCAPNG_BT_EPB
        bt_pb = dpkt.pcapng.PCAPNG_BT_PB
        bt_spb = dpkt.pcapng.PCAPNG_BT_SPB

        order = None
        # per section, by interface id: (interface, classify, keep header)
        interfaces = []
        unpack_block_head = unpack_u32 = unpack_epb = unpack_pb = None
        index = 0
        first_ns = None
        last_ns = 0
        with _open(path) as f:
            buf = b""
            pos = 0
            base = 0  # file offset of buf[0]
            while True:
                more = f.read(_READ_CHUNK)
                buf = buf[pos:] + more
                base += pos
                pos = 0
                size = len(buf)
                if not more:
                    if size:
                        self._pcapng_tail_error(buf, base, order)
                    return
                # every complete block now in buf
                while pos + 12 <= size:
                    if order is not None:
                        block_type, block_len = unpack_block_head(buf, pos)
                    if order is None or block_type == _PCAPNG_BT_SHB:
                        # a new section may switch byte order (the SHB block
                        # type reads the same either way)
                        if buf[pos:pos + 4] != _PCAPNG_SHB:
                            raise InputError(f"pcap:{shown(path)}: pcapng file does not start with "
                                             f"a section header block (byte offset 0)")
                        bom = buf[pos + 8:pos + 12]
                        if bom == _BOM_BIG:
                            order = ">"
                        elif bom == _BOM_LITTLE:
                            order = "<"
                        else:
                            raise InputError(
                                f"pcap:{shown(path)}: corrupt pcapng section header at byte offset "
                                f"{base + pos}: byte-order magic 0x{bom.hex()}")
                        unpack_block_head = struct.Struct(order + "II").unpack_from
                        unpack_u32 = struct.Struct(order + "I").unpack_from
                        unpack_epb = struct.Struct(order + "IIIII").unpack_from
                        unpack_pb = struct.Struct(order + "HHIIII").unpack_from
                        block_type, block_len = unpack_block_head(buf, pos)
                    if block_len < 12 or block_len & 3 or block_len > _MAX_BLOCK:
                        raise InputError(
                            f"pcap:{shown(path)}: corrupt pcapng block at byte offset {base + pos}: "
                            f"total length {block_len}")
                    end = pos + block_len
                    if end > size:
                        break  # the rest of this block is in the next chunk
                    if unpack_u32(buf, end - 4)[0] != block_len:
                        raise InputError(
                            f"pcap:{shown(path)}: corrupt pcapng block at byte offset {base + pos}: "
                            f"leading and trailing block lengths differ")

                    if block_type == bt_epb or block_type == bt_pb:
                        if block_len < 32:
                            raise InputError(
                                f"pcap:{shown(path)}: corrupt pcapng packet block at byte offset "
                                f"{base + pos}: total length {block_len}")
                        if block_type == bt_epb:
                            iface_id, ts_high, ts_low, caplen, orig_len = unpack_epb(buf, pos + 8)
                        else:
                            iface_id, _, ts_high, ts_low, caplen, orig_len = unpack_pb(buf, pos + 8)
                        if caplen > block_len - 32:
                            raise InputError(
                                f"pcap:{shown(path)}: corrupt pcapng packet block at byte offset "
                                f"{base + pos}: captured length {caplen} does not fit its "
                                f"{block_len}-byte block")
                        if iface_id >= len(interfaces):
                            raise InputError(
                                f"pcap:{shown(path)}: corrupt pcapng packet block at byte offset "
                                f"{base + pos}: interface {iface_id} was never described")
                        iface, classify, keep_header = interfaces[iface_id]
                        time_ns = (((ts_high << 32) | ts_low) * iface.ts_mul // iface.ts_div
                                   + iface.ts_offset_ns)
                        if first_ns is None:
                            first_ns = time_ns
                        time_ns -= first_ns
                        if time_ns < last_ns:
                            time_ns = last_ns
                        else:
                            last_ns = time_ns
                        data_start = pos + 28
                    elif block_type == bt_spb:
                        if block_len < 16:
                            raise InputError(
                                f"pcap:{shown(path)}: corrupt pcapng simple packet block at byte "
                                f"offset {base + pos}: total length {block_len}")
                        if not interfaces:
                            raise InputError(
                                f"pcap:{shown(path)}: corrupt pcapng simple packet block at byte "
                                f"offset {base + pos}: no interface described before it")
                        iface, classify, keep_header = interfaces[0]
                        orig_len = unpack_u32(buf, pos + 8)[0]
                        caplen = min(orig_len, block_len - 16)
                        if iface.snaplen:
                            caplen = min(caplen, iface.snaplen)
                        time_ns = last_ns  # no timestamp in a simple packet block
                        data_start = pos + 12
                    else:
                        if block_type == dpkt.pcapng.PCAPNG_BT_SHB:
                            self._check_shb(buf[pos:end], order, base + pos)
                            interfaces = []
                        elif block_type == dpkt.pcapng.PCAPNG_BT_IDB:
                            iface = self._parse_idb(buf[pos:end], order, base + pos)
                            if peek:
                                yield iface.linktype
                                return
                            classify = None
                            if classifier is not None and iface.classify_name:
                                classify = getattr(classifier, iface.classify_name)
                            interfaces.append((iface, classify, keep_headers and iface.ethernet))
                        pos = end
                        continue  # other block types carry no frames

                    length = orig_len - iface.fcs_len + iface.wire_adjust
                    if length < MIN_FRAME_LEN or length > MAX_FRAME_LEN:
                        raise InputError(
                            f"pcap:{shown(path)}: packet {index} at byte offset {base + pos}: frame "
                            f"length {length} outside {MIN_FRAME_LEN}..{MAX_FRAME_LEN}")
                    pos = end
                    index += 1
                    if classify is not None or keep_header:
                        usable = orig_len - iface.fcs_len
                        if usable > caplen:
                            usable = caplen
                        if usable > HEADER_BYTES:
                            usable = HEADER_BYTES
                        head = buf[data_start:data_start + usable]
                        if classify is None:
                            yield Frame(length, time_ns, None, 0, 0, _kept_header(head))
                        else:
                            flow, rss_hash, queue = classify(head)
                            yield Frame(length, time_ns, flow, rss_hash, queue,
                                        _kept_header(head) if keep_header else None)
                    else:
                        yield Frame(length, time_ns, None, 0, 0, None)
                    if index == remaining:
                        return

    def _pcapng_tail_error(self, tail: bytes, offset: int, order: str | None) -> None:
        """The file ended inside the block that starts at ``offset``."""
        if len(tail) < 12:
            raise InputError(f"pcap:{shown(self.path)}: truncated pcapng block header at byte "
                             f"offset {offset}: {len(tail)} of 12 bytes")
        if tail[:4] == _PCAPNG_SHB:
            order = ">" if tail[8:12] == _BOM_BIG else "<"
        block_len = struct.unpack_from((order or "<") + "I", tail, 4)[0]
        raise InputError(f"pcap:{shown(self.path)}: truncated pcapng block at byte offset {offset}: "
                         f"{block_len} bytes announced, file ends at byte offset "
                         f"{offset + len(tail)}")

    def _check_options(self, block: bytes, start: int, order: str, offset: int, what: str) -> None:
        """Every option of a block (code, length, value padded to 4 bytes; opt_endofopt ends them) must
        lie inside the block: dpkt stops quietly at one that overruns, and the file would read as
        something it is not."""
        end = len(block) - 4  # the trailing block length
        pos = start
        while pos < end:
            if pos + 4 > end:
                raise InputError(f"pcap:{shown(self.path)}: corrupt pcapng {what} at byte offset {offset}: "
                                 f"{end - pos} stray bytes where an option header needs 4")
            code, length = struct.unpack_from(order + "HH", block, pos)
            if code == dpkt.pcapng.PCAPNG_OPT_ENDOFOPT:
                return
            padded = (length + 3) & ~3
            if pos + 4 + padded > end:
                raise InputError(f"pcap:{shown(self.path)}: corrupt pcapng {what} at byte offset {offset}: "
                                 f"option {code} at byte offset {offset + pos} is {length} bytes long and "
                                 f"overruns the block ({end - pos - 4} bytes left)")
            pos += 4 + padded

    def _check_shb(self, block: bytes, order: str, offset: int) -> None:
        cls = dpkt.pcapng.SectionHeaderBlockLE if order == "<" else dpkt.pcapng.SectionHeaderBlock
        try:
            shb = cls(block)
        except _DPKT_ERRORS as err:
            raise InputError(f"pcap:{shown(self.path)}: corrupt pcapng section header at byte "
                             f"offset {offset}: {err or type(err).__name__}") from None
        if shb.v_major != dpkt.pcapng.PCAPNG_VERSION_MAJOR:
            raise InputError(f"pcap:{shown(self.path)}: unsupported pcapng version {shb.v_major}."
                             f"{shb.v_minor} at byte offset {offset}")

    def _parse_idb(self, block: bytes, order: str, offset: int) -> _Interface:
        self._check_options(block, 16, order, offset, "interface description")
        cls = (dpkt.pcapng.InterfaceDescriptionBlockLE if order == "<"
               else dpkt.pcapng.InterfaceDescriptionBlock)
        try:
            return _Interface(cls(block), order)
        except _DPKT_ERRORS as err:
            raise InputError(f"pcap:{shown(self.path)}: corrupt pcapng interface description at "
                             f"byte offset {offset}: {err or type(err).__name__}") from None


# --- which protocols a capture holds ---------------------------------------------

def _ipv4_tcp_over_ethernet(head: bytes) -> bool:
    """An untagged Ethernet frame carrying IPv4 with protocol TCP (what GRO's TCP path reads)."""
    return len(head) >= 24 and head[12] == 0x08 and head[13] == 0x00 and head[23] == 6


def capture_has_tcp(source: CaptureSource) -> bool:
    """Whether any frame the source yields (its count limit applies) is IPv4 TCP over Ethernet.

    Only Ethernet captures keep their bytes as Frame.header; frames of other
    link types reach the drivers with synthetic UDP headers.  A classic pcap
    is scanned by a compiled loop over 1 MiB reads (about as long as one
    read of the file: the walk from record to record is bound by memory
    latency), once per file, size and modification time in a process;
    pcapng files frame by frame.
    """
    if source.format != "pcap":
        return any(frame.header is not None and _ipv4_tcp_over_ethernet(frame.header) for frame in source)
    header = _read_pcap_header(source._head, source.path)
    if not link_info(header.linktype)[3]:
        return False
    stat = os.stat(source.path)
    limit = -1 if source._limit is None else source._limit
    return _pcap_has_tcp(source.path, stat.st_size, stat.st_mtime_ns, header.order == ">", header.record_len, limit)


@functools.lru_cache(maxsize=16)
def _pcap_has_tcp(path: str, size: int, mtime_ns: int, big: bool, record_len: int, limit: int) -> bool:
    import numpy as np

    scan = _tcp_scanner()
    state = np.zeros(3, np.int64)  # position in the buffer, frames seen, found
    with _open(path) as f:
        f.seek(_FILE_HEADER_LEN)
        rest = b""
        while True:
            more = f.read(_READ_CHUNK)
            data = rest + more
            state[0] = 0
            scan(np.frombuffer(data, np.uint8), len(data), big, record_len, limit, state)
            if state[2]:
                return True
            if not more or 0 <= limit <= state[1]:
                return False
            rest = data[state[0]:]


@functools.lru_cache(maxsize=1)
def _tcp_scanner():
    """The compiled record loop of capture_has_tcp() (numba; plain Python without it)."""
    import numpy as np

    try:
        from numba import njit
    except ImportError:  # pragma: no cover - numba is a dependency
        def njit(**_kwargs):
            return lambda fn: fn

    @njit(cache=True)
    def scan(buf, size, big, record_len, limit, state):
        pos = state[0]
        seen = state[1]
        while pos + record_len <= size:
            if 0 <= limit <= seen:
                break
            if big:
                caplen = ((np.int64(buf[pos + 8]) << 24) | (np.int64(buf[pos + 9]) << 16)
                          | (np.int64(buf[pos + 10]) << 8) | np.int64(buf[pos + 11]))
            else:
                caplen = ((np.int64(buf[pos + 11]) << 24) | (np.int64(buf[pos + 10]) << 16)
                          | (np.int64(buf[pos + 9]) << 8) | np.int64(buf[pos + 8]))
            start = pos + record_len
            if start + caplen > size:
                break
            seen += 1
            if caplen >= 24 and buf[start + 12] == 8 and buf[start + 13] == 0 and buf[start + 23] == 6:
                state[2] = 1
                break
            pos = start + caplen
        state[0] = pos
        state[1] = seen

    return scan
