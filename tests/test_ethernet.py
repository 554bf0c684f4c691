"""eth_get_headlen(), eth_type_trans() and eth_skb_pad() on hand-built frames.

Header lengths are the struct sizes of include/uapi/linux: ethhdr 14,
vlan_hdr 4, iphdr 20 (+ options, IHL*4), ipv6hdr 40, IPv6 extension header
(hdrlen + 1) * 8, frag_hdr 8, udphdr 8, tcphdr doff*4 (at least 20),
icmphdr 8.  eth_get_headlen() returns the payload offset of a good
dissection capped at len, and max(thoff, 14) of a failed one.
"""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.net.ethernet import (
    ETH_P_802_2,
    ETH_P_802_3,
    ETH_P_IP,
    eth_get_headlen,
    eth_skb_pad,
    eth_type_trans,
)
from skbsim.net.skbuff import __napi_alloc_skb, kfree_skb, skb_headroom, skb_put

MACS = bytes.fromhex("020000000001") + bytes.fromhex("020000000002")


def eth(ethertype: int) -> bytes:
    return MACS + struct.pack(">H", ethertype)


def vlan(tci: int, ethertype: int) -> bytes:
    return struct.pack(">HH", tci, ethertype)


def ipv4(proto: int, ihl: int = 5, frag: int = 0x4000, total: int = 100) -> bytes:
    head = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, frag, 64, proto, 0, bytes(4), bytes(4))
    return head + bytes(4 * (ihl - 5))


def ipv6(nexthdr: int) -> bytes:
    return struct.pack(">IHBB16s16s", 0x60000000, 100, nexthdr, 64, bytes(16), bytes(16))


def udp() -> bytes:
    return struct.pack(">HHHH", 1000, 2000, 50, 0)


def tcp(doff_words: int = 5) -> bytes:
    return struct.pack(">HHIIBBHHH", 1000, 2000, 0, 0, doff_words << 4, 0x10, 1000, 0, 0) + bytes(4 * (doff_words - 5))


PAYLOAD = bytes(200)

HEADLEN_CASES = [
    # 14 + 20 + 8
    ("ipv4/udp", eth(0x0800) + ipv4(17) + udp() + PAYLOAD, 42),
    # 14 + 20 + 20
    ("ipv4/tcp", eth(0x0800) + ipv4(6) + tcp() + PAYLOAD, 54),
    # 14 + 20 + 8 * 4 (doff 8: timestamps option)
    ("ipv4/tcp doff 8", eth(0x0800) + ipv4(6) + tcp(8) + PAYLOAD, 66),
    # 14 + 24 (IHL 6) + 8
    ("ipv4 options/udp", eth(0x0800) + ipv4(17, ihl=6) + udp() + PAYLOAD, 46),
    # 14 + 20 + 8 (icmphdr)
    ("ipv4/icmp", eth(0x0800) + ipv4(1) + bytes(8) + PAYLOAD, 42),
    # 14 + 40 + 8
    ("ipv6/udp", eth(0x86DD) + ipv6(17) + udp() + PAYLOAD, 62),
    # 14 + 40 + 20
    ("ipv6/tcp", eth(0x86DD) + ipv6(6) + tcp() + PAYLOAD, 74),
    # 14 + 40 + hop-by-hop (0 + 1) * 8 + 8
    ("ipv6/hbh/udp", eth(0x86DD) + ipv6(0) + bytes((17, 0)) + bytes(6) + udp() + PAYLOAD, 70),
    # 14 + 4 + 20 + 8
    ("vlan/ipv4/udp", eth(0x8100) + vlan(5, 0x0800) + ipv4(17) + udp() + PAYLOAD, 46),
    # 14 + 4 + 4 + 20 + 8
    ("qinq/ipv4/udp", eth(0x88A8) + vlan(5, 0x8100) + vlan(6, 0x0800) + ipv4(17) + udp() + PAYLOAD, 50),
    # IPv4 fragment with offset 0 and MF: the first fragment is parsed (PARSE_1ST_FRAG): 14 + 20 + 8
    ("ipv4 first frag", eth(0x0800) + ipv4(17, frag=0x2000) + udp() + PAYLOAD, 42),
    # A later fragment: no L4 header: 14 + 20
    ("ipv4 later frag", eth(0x0800) + ipv4(17, frag=0x0010) + udp() + PAYLOAD, 34),
    # IPv6 fragment header (first fragment, M=1): 14 + 40 + 8 + 8 (UDP parsed)
    ("ipv6 first frag", eth(0x86DD) + ipv6(44) + struct.pack(">BBHI", 17, 0, 0x0001, 7) + udp() + PAYLOAD, 70),
    # IPv6 later fragment (offset 8 bytes): stops after the fragment header: 14 + 40 + 8
    ("ipv6 later frag", eth(0x86DD) + ipv6(44) + struct.pack(">BBHI", 17, 0, 0x0008, 7) + udp() + PAYLOAD, 62),
    # IP in IP: 14 + 20 + 20 + 8
    ("ipip/udp", eth(0x0800) + ipv4(4) + ipv4(17) + udp() + PAYLOAD, 62),
    # ARP: the dissector stops at once, good: thoff 14, no L4: 14
    ("arp", eth(0x0806) + bytes(28) + PAYLOAD, 14),
    # Unknown EtherType: a failed dissection, max(thoff 14, 14)
    ("0x88b5", eth(0x88B5) + PAYLOAD, 14),
    # IHL 4 is invalid: failed at the IP header, thoff 14
    ("ipv4 ihl 4", eth(0x0800) + bytes((0x44,)) + bytes(19) + udp() + PAYLOAD, 14),
]


@pytest.mark.parametrize("name,frame,expected", HEADLEN_CASES, ids=[case[0] for case in HEADLEN_CASES])
def test_eth_get_headlen(name, frame, expected):
    assert eth_get_headlen(None, frame, 256) == expected


def test_eth_get_headlen_caps_at_len():
    frame = eth(0x0800) + ipv4(6) + tcp() + PAYLOAD
    # len 40: the IPv4 header (14..34) fits, TCP's data offset byte (34 + 12 = 46) does not,
    # so __skb_get_poff() stops at thoff 34; min(34, 40) = 34.
    assert eth_get_headlen(None, frame, 40) == 34
    # len 30: not even the IPv4 header fits: failed dissection, thoff = min(14, 30), max(14, 14) = 14
    assert eth_get_headlen(None, frame, 30) == 14
    # len 50: the TCP header is read (doff 5) and poff 54 is capped at 50
    assert eth_get_headlen(None, frame, 50) == 50
    # below ETH_HLEN eth_get_headlen() returns len itself
    assert eth_get_headlen(None, frame, 10) == 10


@given(st.binary(min_size=14, max_size=300), st.integers(min_value=0, max_value=300))
def test_eth_get_headlen_never_exceeds_len_unless_short(data, length):
    # A good dissection is capped at len; a failed one gives max(thoff, 14) with thoff <= len.
    result = eth_get_headlen(None, data, length)
    assert result <= max(length, 14)
    if length >= 14:
        assert result >= 14


def test_eth_type_trans_pulls_the_header(kernel, napi):
    with kernel.softirq():
        skb = __napi_alloc_skb(kernel, napi, 256, GFP_ATOMIC)
        skb_put(skb, 100)
        data_before = skb.data
        protocol = eth_type_trans(skb, napi.dev, eth(0x0800) + ipv4(17) + udp())
        # ETH_HLEN pulled: len 100 - 14; data moves 14 on; mac_header is where data was
        assert (skb.len, skb.data, skb.mac_header, protocol) == (86, data_before + 14, data_before, ETH_P_IP)
        assert skb.dev is napi.dev
        kfree_skb(kernel, skb)


def test_eth_type_trans_802_3_length_field(kernel, napi):
    with kernel.softirq():
        for after, expected in ((b"\xaa\xaa", ETH_P_802_2), (b"\xff\xff", ETH_P_802_3)):
            skb = __napi_alloc_skb(kernel, napi, 256, GFP_ATOMIC)
            skb_put(skb, 60)
            # 0x002e (46) < 0x0600 is a length: 802.2 LLC, or raw IPX when 0xFFFF follows
            assert eth_type_trans(skb, napi.dev, eth(0x002E) + after) == expected
            kfree_skb(kernel, skb)


def test_eth_skb_pad(kernel, napi):
    with kernel.softirq():
        skb = __napi_alloc_skb(kernel, napi, 256, GFP_ATOMIC)
        skb_put(skb, 20)
        truesize = skb.truesize
        headroom = skb_headroom(skb)
        eth_skb_pad(kernel, skb)
        # padded to ETH_ZLEN 60 in the tailroom; truesize and headroom unchanged
        assert (skb.len, skb.truesize, skb_headroom(skb)) == (60, truesize, headroom)
        eth_skb_pad(kernel, skb)
        assert skb.len == 60
        kfree_skb(kernel, skb)
