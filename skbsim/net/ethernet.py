"""Ethernet receive helpers: net/ethernet/eth.c, include/linux/etherdevice.h and
the part of net/core/flow_dissector.c that eth_get_headlen() relies on.

The model keeps no payload bytes in its buffers, so functions that look at
the packet take the frame's leading bytes as an argument (``header``): what
the NIC wrote at the start of the buffer, as much of it as is known.

- :func:`eth_type_trans` - set ``skb->dev``, reset the MAC header, pull
  ETH_HLEN and return the protocol (6.9 net/ethernet/eth.c).
- :func:`eth_get_headlen` - the length of the Ethernet + L3 + L4 headers a
  driver copies into the skb head (6.9 net/ethernet/eth.c, with
  __skb_flow_dissect() and __skb_get_poff() of net/core/flow_dissector.c
  over the basic keys: control and basic only).
- :func:`eth_skb_pad` - pad a short frame to ETH_ZLEN (skb_put_padto()).

Flow dissector coverage: Ethernet, 802.1Q and 802.1AD tags, IPv4 (options,
fragments), IPv6 (hop-by-hop, routing, destination options and fragment
headers), IP-in-IP and IPv6-in-IP, MPLS, ARP/RARP, FCoE, PTP (1588) and CFM,
and the L4 lengths __skb_get_poff() adds (TCP with its data offset, UDP,
UDP-Lite, ICMP, ICMPv6, IGMP, DCCP, SCTP).  Not modelled: GRE (the kernel
follows GRE into the inner packet; here GRE counts as an opaque L4
protocol, so the result stops after the outer IP header), PPPoE sessions,
TIPC, batman-adv and HSR/PRP (here treated like an unknown EtherType), and
BPF flow dissector programs.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from skbsim.net.skbuff import __skb_put, sk_buff, skb_cloned, skb_is_nonlinear, skb_pull, skb_tailroom

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import net_device

# include/uapi/linux/if_ether.h
ETH_ALEN = 6
ETH_HLEN = 14
ETH_ZLEN = 60
ETH_DATA_LEN = 1500
ETH_FCS_LEN = 4
ETH_P_802_3_MIN = 0x0600
ETH_P_802_3 = 0x0001
ETH_P_802_2 = 0x0004
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_RARP = 0x8035
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_IPV6 = 0x86DD
ETH_P_MPLS_UC = 0x8847
ETH_P_MPLS_MC = 0x8848
ETH_P_FCOE = 0x8906
ETH_P_1588 = 0x88F7
ETH_P_CFM = 0x8902
# include/linux/if_vlan.h
VLAN_HLEN = 4

# include/uapi/linux/in.h, in6.h
IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_IGMP = 2
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_GRE = 47
IPPROTO_ICMPV6 = 58
IPPROTO_DSTOPTS = 60
IPPROTO_DCCP = 33
IPPROTO_SCTP = 132
IPPROTO_UDPLITE = 136
IPPROTO_MPLS = 137

# include/net/flow_dissector.h: control flags and dissector flags
FLOW_DIS_IS_FRAGMENT = 0x1
FLOW_DIS_FIRST_FRAG = 0x2
FLOW_DIS_ENCAPSULATION = 0x4
FLOW_DISSECTOR_F_PARSE_1ST_FRAG = 0x1
#: net/core/flow_dissector.c: how many headers one dissection may walk.
MAX_FLOW_DISSECT_HDRS = 15

# Header sizes the L4 step adds (include/uapi/linux/*.h struct sizes).
_L4_FIXED_LENGTH = {
    IPPROTO_UDP: 8,       # struct udphdr
    IPPROTO_UDPLITE: 8,
    IPPROTO_ICMP: 8,      # struct icmphdr
    IPPROTO_ICMPV6: 8,    # struct icmp6hdr
    IPPROTO_IGMP: 8,      # struct igmphdr
    IPPROTO_DCCP: 12,     # struct dccp_hdr
    IPPROTO_SCTP: 12,     # struct sctphdr
}
TCP_HDR_MIN = 20          # sizeof(struct tcphdr)
IPV4_HDR_MIN = 20         # sizeof(struct iphdr)
IPV6_HDR_LEN = 40         # sizeof(struct ipv6hdr)
IPV6_FRAG_HDR_LEN = 8     # sizeof(struct frag_hdr)
MPLS_LABEL_LEN = 4        # sizeof(struct mpls_label)
FCOE_HEADER_LEN = 38      # include/scsi/fc/fc_fcoe.h
PTP_HEADER_LEN = 34       # sizeof(struct ptp_header)
IP_MF = 0x2000
IP_OFFSET = 0x1FFF
IP6_OFFSET = 0xFFF8

# Results of one protocol step (enum flow_dissect_ret).
_CONTINUE, _OUT_GOOD, _OUT_BAD, _PROTO_AGAIN, _IPPROTO_AGAIN = range(5)


class flow_keys_basic:
    """include/net/flow_dissector.h: struct flow_keys_basic (control + basic keys)."""

    __slots__ = ("thoff", "flags", "n_proto", "ip_proto")

    def __init__(self) -> None:
        self.thoff = 0
        self.flags = 0
        self.n_proto = 0
        self.ip_proto = 0


def _header_pointer(data: bytes, offset: int, length: int, hlen: int) -> bytes | None:
    """__skb_header_pointer() with no skb: the bytes if they lie within hlen, else None.

    Bytes past the end of ``data`` are unknown to the model and count as
    unavailable too (a driver's header sample is at least as long as the
    headers in any frame skbsim builds).
    """
    if offset < 0 or hlen - offset < length or offset + length > len(data):
        return None
    return data[offset:offset + length]


def skb_flow_dissect_flow_keys_basic(data: bytes, proto: int, nhoff: int, hlen: int,
                                     flags: int) -> tuple[bool, flow_keys_basic]:
    """include/linux/skbuff.h: the basic-keys dissection of net/core/flow_dissector.c.

    Walks the headers from ``nhoff`` for EtherType ``proto`` inside the first
    ``hlen`` bytes.  Returns (good, keys); keys.thoff is where the walk
    stopped, capped at hlen as the kernel caps it (in a u16).
    """
    keys = flow_keys_basic()
    ip_proto = 0
    num_hdrs = 0
    good = False

    def allowed() -> bool:
        nonlocal num_hdrs
        num_hdrs += 1
        return num_hdrs <= MAX_FLOW_DISSECT_HDRS

    dissect_l3 = True
    while True:
        if dissect_l3:
            ret = _CONTINUE
            if proto == ETH_P_IP:
                iph = _header_pointer(data, nhoff, IPV4_HDR_MIN, hlen)
                ihl = iph[0] & 0x0F if iph is not None else 0
                if iph is None or ihl < 5:
                    ret = _OUT_BAD
                else:
                    nhoff += ihl * 4
                    ip_proto = iph[9]
                    frag_off = struct.unpack_from(">H", iph, 6)[0]
                    if frag_off & (IP_MF | IP_OFFSET):
                        keys.flags |= FLOW_DIS_IS_FRAGMENT
                        if frag_off & IP_OFFSET:
                            ret = _OUT_GOOD
                        else:
                            keys.flags |= FLOW_DIS_FIRST_FRAG
                            if not flags & FLOW_DISSECTOR_F_PARSE_1ST_FRAG:
                                ret = _OUT_GOOD
            elif proto == ETH_P_IPV6:
                iph = _header_pointer(data, nhoff, IPV6_HDR_LEN, hlen)
                if iph is None:
                    ret = _OUT_BAD
                else:
                    ip_proto = iph[6]
                    nhoff += IPV6_HDR_LEN
            elif proto in (ETH_P_8021Q, ETH_P_8021AD):
                vlan = _header_pointer(data, nhoff, VLAN_HLEN, hlen)
                if vlan is None:
                    ret = _OUT_BAD
                else:
                    proto = struct.unpack_from(">H", vlan, 2)[0]
                    nhoff += VLAN_HLEN
                    # Every tag, outer or inner, just moves on to the next EtherType.
                    ret = _PROTO_AGAIN
            elif proto in (ETH_P_MPLS_UC, ETH_P_MPLS_MC):
                # Without MPLS keys the dissector stops at the first label, past it.
                nhoff += MPLS_LABEL_LEN
                ret = _OUT_GOOD
            elif proto == ETH_P_FCOE:
                if hlen - nhoff < FCOE_HEADER_LEN:
                    ret = _OUT_BAD
                else:
                    nhoff += FCOE_HEADER_LEN
                    ret = _OUT_GOOD
            elif proto in (ETH_P_ARP, ETH_P_RARP, ETH_P_CFM):
                # Without ARP/CFM keys: stop here, a good result.
                ret = _OUT_GOOD
            elif proto == ETH_P_1588:
                if _header_pointer(data, nhoff, PTP_HEADER_LEN, hlen) is None:
                    ret = _OUT_BAD
                else:
                    nhoff += PTP_HEADER_LEN
                    ret = _OUT_GOOD
            else:
                ret = _OUT_BAD

            if ret == _OUT_GOOD:
                good = True
                break
            if ret == _OUT_BAD:
                break
            if ret == _PROTO_AGAIN:
                if allowed():
                    continue
                good = True
                break

        # The IP protocol step.
        dissect_l3 = True
        ret = _CONTINUE
        if ip_proto in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS):
            if proto == ETH_P_IPV6:
                opthdr = _header_pointer(data, nhoff, 2, hlen)
                if opthdr is None:
                    ret = _OUT_BAD
                else:
                    ip_proto = opthdr[0]
                    nhoff += (opthdr[1] + 1) << 3
                    ret = _IPPROTO_AGAIN
        elif ip_proto == IPPROTO_FRAGMENT:
            if proto == ETH_P_IPV6:
                fh = _header_pointer(data, nhoff, IPV6_FRAG_HDR_LEN, hlen)
                if fh is None:
                    ret = _OUT_BAD
                else:
                    keys.flags |= FLOW_DIS_IS_FRAGMENT
                    nhoff += IPV6_FRAG_HDR_LEN
                    ip_proto = fh[0]
                    ret = _OUT_GOOD
                    if not struct.unpack_from(">H", fh, 2)[0] & IP6_OFFSET:
                        keys.flags |= FLOW_DIS_FIRST_FRAG
                        if flags & FLOW_DISSECTOR_F_PARSE_1ST_FRAG:
                            ret = _IPPROTO_AGAIN
        elif ip_proto == IPPROTO_IPIP:
            proto = ETH_P_IP
            keys.flags |= FLOW_DIS_ENCAPSULATION
            ret = _PROTO_AGAIN
        elif ip_proto == IPPROTO_IPV6:
            proto = ETH_P_IPV6
            keys.flags |= FLOW_DIS_ENCAPSULATION
            ret = _PROTO_AGAIN
        elif ip_proto == IPPROTO_MPLS:
            proto = ETH_P_MPLS_UC
            ret = _PROTO_AGAIN

        if ret == _PROTO_AGAIN:
            if allowed():
                continue
            good = True
            break
        if ret == _IPPROTO_AGAIN:
            if allowed():
                dissect_l3 = False
                continue
            good = True
            break
        if ret == _OUT_BAD:
            break
        good = True
        break

    keys.thoff = min(nhoff & 0xFFFF, hlen & 0xFFFF)
    keys.n_proto = proto
    keys.ip_proto = ip_proto
    return good, keys


def __skb_get_poff(data: bytes, keys: flow_keys_basic, hlen: int) -> int:
    """net/core/flow_dissector.c: __skb_get_poff() - where the L4 payload starts."""
    poff = keys.thoff
    if keys.flags & FLOW_DIS_IS_FRAGMENT and not keys.flags & FLOW_DIS_FIRST_FRAG:
        return poff
    if keys.ip_proto == IPPROTO_TCP:
        doff = _header_pointer(data, poff + 12, 1, hlen)
        if doff is None:
            return poff
        return poff + max(TCP_HDR_MIN, (doff[0] & 0xF0) >> 2)
    return poff + _L4_FIXED_LENGTH.get(keys.ip_proto, 0)


def eth_get_headlen(dev: net_device | None, data: bytes, length: int) -> int:
    """net/ethernet/eth.c: eth_get_headlen() - bytes of headers in the first length bytes.

    Dissects from the EtherType at offset 12 with FLOW_DISSECTOR_F_PARSE_1ST_FRAG.
    A failed dissection gives max(thoff, ETH_HLEN); a good one the payload
    offset __skb_get_poff() finds, capped at length.  ``data`` holds the
    frame's first bytes (at least min(length, frame length) of them for an
    exact answer).  ``dev`` is accepted for the kernel's signature (its
    network namespace only selects a BPF dissector, which is not modelled).
    """
    if length < ETH_HLEN:
        return length
    if len(data) < ETH_HLEN:
        raise ValueError("eth_get_headlen needs at least the 14-byte Ethernet header")
    proto = struct.unpack_from(">H", data, 12)[0]
    good, keys = skb_flow_dissect_flow_keys_basic(data, proto, ETH_HLEN, length, FLOW_DISSECTOR_F_PARSE_1ST_FRAG)
    if not good:
        return max(keys.thoff, ETH_HLEN)
    return min(__skb_get_poff(data, keys, length), length)


def eth_type_trans(skb: sk_buff, dev: net_device, header: bytes) -> int:
    """net/ethernet/eth.c: eth_type_trans() - the protocol; pulls the Ethernet header.

    Sets skb->dev, records the MAC header at the current data offset and
    pulls ETH_HLEN.  The protocol is the EtherType when it is one (>= 0x0600);
    otherwise an 802.3 length field: ETH_P_802_3 for raw IPX (0xFFFF after the
    header), else ETH_P_802_2.  ``header`` is the bytes at skb->data (the
    model keeps no payload).  The packet type (host, broadcast, ...) is not
    modelled: sk_buff here has no pkt_type.  The caller stores the result in
    skb->protocol, as drivers do.  ``header`` stays with the skb
    (``skb.header_bytes``): GRO and the protocols read the headers there.
    """
    if len(header) < ETH_HLEN:
        raise ValueError("eth_type_trans needs the 14-byte Ethernet header")
    skb.dev = dev
    skb.mac_header = skb.data
    skb.header_bytes = header
    skb_pull(skb, ETH_HLEN)
    h_proto = header[12] << 8 | header[13]  # big-endian h_proto
    if h_proto >= ETH_P_802_3_MIN:
        return h_proto
    # skb_header_pointer(skb, 0, 2): the two bytes after the header, if the skb has them.
    if skb.len >= 2 and len(header) >= ETH_HLEN + 2 and header[ETH_HLEN:ETH_HLEN + 2] == b"\xff\xff":
        return ETH_P_802_3
    return ETH_P_802_2


def eth_skb_pad(kernel: Kernel, skb: sk_buff) -> int:
    """include/linux/etherdevice.h: eth_skb_pad() - skb_put_padto(skb, ETH_ZLEN).

    A frame shorter than 60 bytes is zero-padded in its tailroom and its
    length raised to 60; truesize does not change.  Returns 0 (the kernel's
    -ENOMEM, which frees the skb, needs a head reallocation that no modelled
    driver reaches; it is refused rather than guessed).
    """
    if skb.len >= ETH_ZLEN:
        return 0
    pad = ETH_ZLEN - skb.len
    if skb_cloned(skb) or skb_is_nonlinear(skb) or skb_tailroom(skb) < pad:
        raise NotImplementedError("eth_skb_pad needing skb_linearize/pskb_expand_head is not modelled")
    __skb_put(skb, pad)
    return 0
