"""IPv4's GRO layer: net/ipv4/af_inet.c inet_gro_receive() and the IPv4 flush
rule of include/net/gro.h (inet_gro_flush(), used from tcp_gro_receive()).

Headers are read from ``skb.header_bytes`` (the frame from its MAC header;
GRO offsets count from skb->data, the network header, ETH_HLEN bytes in).

Release differences (profile features):

- ``gro_fixed_ip_id``: a flow whose IP ID does not move (the second packet
  has the first one's ID) is accepted as "fixed-ID" only with DF set
  ("df_only", 6.1 .. 6.17) or whatever DF says ("any", 6.18: "net: gro:
  remove unnecessary df checks").  6.1 and 6.9 compute the same answer in
  another form (flush_id and is_atomic, set in inet_gro_receive() and read
  in tcp_gro_receive(); 6.10 "net: gro: move L3 flush checks to
  tcp_gro_receive and udp_gro_receive_segment" moved it): for TCP over
  IPv4 without encapsulation every case agrees, so one rule stands for both.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from skbsim.net.ethernet import ETH_HLEN, ETH_P_IP
from skbsim.net.gro import PACKET_OFFLOADS, skb_gro_header, skb_gro_len, skb_gro_pull

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.skbuff import sk_buff

IPPROTO_TCP = 6
IPPROTO_UDP = 17
# include/net/ip.h (host order, as used after ntohs/ntohl)
IP_CE = 0x8000
IP_DF = 0x4000
IP_MF = 0x2000
IP_OFFSET = 0x1FFF

#: inet_offloads[]: IP protocol -> its gro_receive (registered by tcp_offload and udp_offload, imported below).
INET_OFFLOADS: dict = {}

_IPHDR = struct.Struct(">BBHHHBBH4s4s")
_WORDS = struct.Struct(">10H")


class iphdr:
    """include/uapi/linux/ip.h: struct iphdr, parsed (host order); ``csum_ok``: ip_fast_csum() is 0."""

    __slots__ = ("ver_ihl", "tos", "tot_len", "id", "frag_off", "ttl", "protocol", "saddr", "daddr", "csum_ok")

    def __init__(self, data: bytes, offset: int) -> None:
        (self.ver_ihl, self.tos, self.tot_len, self.id, self.frag_off, self.ttl, self.protocol, _check,
         self.saddr, self.daddr) = _IPHDR.unpack_from(data, offset)
        total = sum(_WORDS.unpack_from(data, offset))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        self.csum_ok = total == 0xFFFF


def ip_is_fragment(iph: iphdr) -> bool:
    """include/net/ip.h: ip_is_fragment() - MF set or a fragment offset."""
    return bool(iph.frag_off & (IP_MF | IP_OFFSET))


def inet_gro_receive(kernel: Kernel, head: list, skb: sk_buff):
    """net/ipv4/af_inet.c: inet_gro_receive() - the IPv4 step; returns a held skb to complete, or None.

    Only a 20-byte header (0x45), not a fragment, with a good checksum and a
    protocol with a GRO handler (TCP, UDP) goes on; its flush bits are a
    total length that is not the skb's (padding, truncation) and any
    fragment bit but DF.  Held skbs with another protocol or address pair
    stop being same_flow.
    """
    cb = skb.cb
    off = cb.data_offset
    flush = 1
    pp = None
    if skb_gro_header(kernel, skb, off + 20):
        iph = cb.iph = iphdr(skb.header_bytes, ETH_HLEN + off)
        receive = INET_OFFLOADS.get(iph.protocol)
        if receive is not None and iph.ver_ihl == 0x45 and not ip_is_fragment(iph) and iph.csum_ok:
            cb.proto = iph.protocol
            flush = ((iph.tot_len ^ skb_gro_len(skb)) | (iph.frag_off & ~IP_DF)) & 0xFFFF
            for p in head:
                pcb = p.cb
                if not pcb.same_flow:
                    continue
                iph2 = pcb.iph
                if iph.protocol != iph2.protocol or iph.saddr != iph2.saddr or iph.daddr != iph2.daddr:
                    pcb.same_flow = 0
            cb.flush |= flush
            cb.network_offset = off
            skb_gro_pull(skb, 20)
            pp = receive(kernel, head, skb)
            if flush and kernel.explain is not None:
                kernel.note(f"inet_gro_receive: tot_len {iph.tot_len} vs {skb_gro_len(skb) + 20} bytes, "
                            f"frag_off {iph.frag_off:#x}: flush")
        elif kernel.explain is not None:
            kernel.note(f"inet_gro_receive: protocol {iph.protocol}, version/ihl {iph.ver_ihl:#x}, frag_off "
                        f"{iph.frag_off:#x}, checksum {'good' if iph.csum_ok else 'bad'}: not merged")
    # skb_gro_flush_final()
    cb.flush |= flush
    return pp


def inet_gro_flush(kernel: Kernel, iph: iphdr, iph2: iphdr, p: sk_buff) -> int:
    """include/net/gro.h: inet_gro_flush() - the IPv4 fields that must agree with the held p.

    TTL, TOS and DF must be equal.  The IP ID must be p's plus the segments
    p holds (an incrementing ID), or p's own when p was found to carry a
    fixed ID: decided when the second packet comes, with ID offset 0 (and
    DF set, unless feature ``gro_fixed_ip_id`` is "any").  Nonzero: flush.
    """
    if iph.ttl != iph2.ttl or iph.tos != iph2.tos or (iph.frag_off ^ iph2.frag_off) & IP_DF:
        return 1
    pcb = p.cb
    if inet_gro_fixedid(iph.id, iph2.id, pcb.count, iph.frag_off,
                        kernel.profile.feature("gro_fixed_ip_id") == "any"):
        pcb.ip_fixedid = True
    return inet_gro_ipid_flush(iph.id, iph2.id, pcb.count, pcb.ip_fixedid)


def inet_gro_fixedid(id_: int, held_id: int, count: int, frag_off: int, any_df: bool) -> bool:
    """include/net/gro.h: inet_gro_flush() - does the held skb (count segments, its first IP ID held_id)
    turn out to carry a fixed IP ID: the second packet repeats the ID, with DF set unless any_df
    (feature gro_fixed_ip_id "any").  A plain int function: the fast engine compiles it."""
    return (count & 0xFFFF) == 1 and not (id_ - held_id) & 0xFFFF and (frag_off & IP_DF != 0 or any_df)


def inet_gro_ipid_flush(id_: int, held_id: int, count: int, fixedid: bool) -> int:
    """include/net/gro.h: inet_gro_flush()'s ID test - the ID must be the held skb's plus its segments
    (or its own, with a fixed ID).  Nonzero: flush.  A plain int function: the fast engine compiles it."""
    return ((id_ - held_id) & 0xFFFF) ^ (0 if fixedid else count & 0xFFFF)


def inet_gro_complete(skb: sk_buff) -> None:
    """net/ipv4/af_inet.c: inet_gro_complete() -> tcp4_gro_complete(): the GSO fields of an aggregate.

    (The IP total length and checksums the kernel rewrites live in the
    payload bytes the model does not keep.)
    """


PACKET_OFFLOADS[ETH_P_IP] = inet_gro_receive
import skbsim.net.ipv4.tcp_offload  # noqa: E402,F401 - registers INET_OFFLOADS[IPPROTO_TCP]
import skbsim.net.ipv4.udp_offload  # noqa: E402,F401 - registers INET_OFFLOADS[IPPROTO_UDP]
