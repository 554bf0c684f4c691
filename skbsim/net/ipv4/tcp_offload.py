"""TCP's GRO layer, after net/ipv4/tcp_offload.c: tcp4_gro_receive() and
tcp_gro_receive().

A segment merges into the held skb of its flow (same addresses, same
ports) when nothing tells them apart: the flag word (data offset, flags,
window) but FIN and PSH, the ACK number, every option byte (a changed
timestamp flushes), the IPv4 rule (inet_gro_flush()), a length not above
the held skb's mss (its first segment's payload), and the sequence number
right after the held bytes; then skb_gro_receive() must accept it.  A
segment shorter than the mss, or with URG, PSH, RST, SYN or FIN, completes
the aggregate (after joining it, when it could).  A segment with no
payload (a pure ACK) never merges and is never held.

Release differences (profile feature ``tcp_gro_cwr``): up to 6.12 a
segment with CWR set completes the held skb and CWR is otherwise ignored
("set"); 6.18 compares CWR like the other flags, so a held skb with CWR
also completes when a segment without it arrives ("set_or_changed"; "gro:
prevent ACE field corruption & better AccECN handling"); 7.0 drops the
flush on a set CWR, so segments that all carry CWR merge and only a change
completes the held skb ("changed"; "gro: flushing when CWR is set
negatively affects AccECN").
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from skbsim.net.ethernet import ETH_HLEN
from skbsim.net.gro import E2BIG, skb_gro_header, skb_gro_len, skb_gro_pull, skb_gro_receive
from skbsim.net.ipv4.af_inet import INET_OFFLOADS, IPPROTO_TCP, inet_gro_flush
from skbsim.net.skbuff import skb_is_gso

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.skbuff import sk_buff

U32_MASK = 0xFFFFFFFF
# include/net/tcp.h: TCP_FLAG_* as bits of the host-order word at byte 12 of the header
# (data offset, reserved bits, flags, window).
TCP_FLAG_CWR = 0x00800000
TCP_FLAG_ECE = 0x00400000
TCP_FLAG_URG = 0x00200000
TCP_FLAG_ACK = 0x00100000
TCP_FLAG_PSH = 0x00080000
TCP_FLAG_RST = 0x00040000
TCP_FLAG_SYN = 0x00020000
TCP_FLAG_FIN = 0x00010000

_TCPHDR = struct.Struct(">4sIII")
_FLUSH_FLAGS = ((TCP_FLAG_PSH, "psh"), (TCP_FLAG_FIN, "fin"), (TCP_FLAG_SYN, "syn"), (TCP_FLAG_RST, "rst"),
                (TCP_FLAG_URG, "urg"))


class tcphdr:
    """include/uapi/linux/tcp.h: struct tcphdr, parsed: ports (as the 4 bytes), seq, ack_seq,
    the flag word (tcp_flag_word(), host order), doff, and the option bytes."""

    __slots__ = ("ports", "seq", "ack_seq", "flags", "doff", "options")

    def __init__(self, data: bytes, offset: int) -> None:
        self.ports, self.seq, self.ack_seq, self.flags = _TCPHDR.unpack_from(data, offset)
        self.doff = self.flags >> 28
        self.options = data[offset + 20:offset + self.doff * 4]


#: profile feature tcp_gro_cwr's values, as the int tcp_gro_flags_verdict() takes (their index)
TCP_GRO_CWR_RULES = ("set", "set_or_changed", "changed")
#: tcp_gro_flags_verdict(): the flag words agree, a set CWR flushes, they differ
GRO_FLAGS_SAME, GRO_FLAGS_CWR, GRO_FLAGS_CHANGED = 0, 1, 2


def tcp_gro_flags_verdict(flags: int, held_flags: int, cwr_rule: int) -> int:
    """net/ipv4/tcp_offload.c: tcp_gro_receive()'s flag-word test against the held skb's (host-order
    words: data offset, flags, window).  FIN and PSH may differ; CWR by the release's rule (cwr_rule, an
    index of TCP_GRO_CWR_RULES): ignored but a set CWR flushes ("set"), compared and a set CWR flushes
    ("set_or_changed"), only compared ("changed").  A plain int function: the fast engine compiles it."""
    changed = flags ^ held_flags
    if cwr_rule == 0:
        changed &= ~TCP_FLAG_CWR
    changed &= ~(TCP_FLAG_FIN | TCP_FLAG_PSH)
    if flags & TCP_FLAG_CWR and cwr_rule != 2:
        return GRO_FLAGS_CWR
    return GRO_FLAGS_CHANGED if changed else GRO_FLAGS_SAME


def tcp_gro_flags_flush(flags: int) -> bool:
    """net/ipv4/tcp_offload.c: tcp_gro_receive()'s out_check_final - URG, PSH, RST, SYN or FIN completes
    the aggregate.  A plain int function: the fast engine compiles it."""
    return (flags & (TCP_FLAG_URG | TCP_FLAG_PSH | TCP_FLAG_RST | TCP_FLAG_SYN | TCP_FLAG_FIN)) != 0


def tcp_gro_pull_header(kernel: Kernel, skb: sk_buff) -> tcphdr | None:
    """net/ipv4/tcp_offload.c: tcp_gro_pull_header() (inline in tcp_gro_receive() up to 6.9).

    The 20-byte header, then all doff * 4 bytes of it, must be readable;
    the GRO offset moves past them.
    """
    off = skb.cb.data_offset
    if not skb_gro_header(kernel, skb, off + 20):
        return None
    thlen = (skb.header_bytes[ETH_HLEN + off + 12] >> 4) * 4
    if thlen < 20 or not skb_gro_header(kernel, skb, off + thlen):
        return None
    th = tcphdr(skb.header_bytes, ETH_HLEN + off)
    skb_gro_pull(skb, thlen)
    return th


def tcp4_gro_receive(kernel: Kernel, head: list, skb: sk_buff):
    """net/ipv4/tcp_offload.c: tcp4_gro_receive() - the checksum is taken as valid (see skbsim.net.gro)."""
    th = tcp_gro_pull_header(kernel, skb)
    if th is None:
        skb.cb.flush = 1
        return None
    skb.cb.th = th
    return tcp_gro_receive(kernel, head, skb, th)


def tcp_gro_lookup(head: list, th: tcphdr):
    """net/ipv4/tcp_offload.c: tcp_gro_lookup() - the first held same_flow skb with the same ports."""
    for p in head:
        pcb = p.cb
        if not pcb.same_flow:
            continue
        if pcb.th.ports != th.ports:
            pcb.same_flow = 0
            continue
        return p
    return None


def tcp_gro_receive(kernel: Kernel, head: list, skb: sk_buff, th: tcphdr):
    """net/ipv4/tcp_offload.c: tcp_gro_receive() - merge into the flow's held skb; the held skb to
    complete (or None).  ``skb.cb.flush_reason`` says why one is returned."""
    cb = skb.cb
    length = skb_gro_len(skb)
    flags = th.flags
    mss = 1
    reason = ""
    p = tcp_gro_lookup(head, th)
    if p is not None:
        pcb = p.cb
        th2 = pcb.th
        verdict = tcp_gro_flags_verdict(flags, th2.flags, TCP_GRO_CWR_RULES.index(kernel.profile.feature("tcp_gro_cwr")))
        if verdict == GRO_FLAGS_CWR:
            reason = "cwr"
        elif verdict == GRO_FLAGS_CHANGED:
            reason = "tcp_flags_or_window"
        elif th.ack_seq != th2.ack_seq:
            reason = "ack_seq"
        elif th.options != th2.options:
            reason = "tcp_options"
        elif inet_gro_flush(kernel, cb.iph, pcb.iph, p):
            reason = "ip_header"
        else:
            mss = p.shinfo.gso_size
            if skb_is_gso(skb):
                if mss != skb.shinfo.gso_size:
                    reason = "gso_size"
            elif (length - 1) & U32_MASK >= mss:
                reason = "len_above_mss"
            if not reason and (th2.seq + skb_gro_len(p)) & U32_MASK != th.seq:
                reason = "seq"
        if not reason:
            err = skb_gro_receive(kernel, p, skb)
            if err:
                reason = "gro_max_size" if err == -E2BIG else "page_pool_mix"
        if reason:
            mss = 1
        else:
            th2.flags |= flags & (TCP_FLAG_FIN | TCP_FLAG_PSH)
        if reason and kernel.explain is not None:
            kernel.note(f"tcp_gro_receive: seq {th.seq}, {length} bytes: not merged ({reason})")
    # out_check_final:
    if skb_is_gso(skb):
        flush = length != cb.count * skb.shinfo.gso_size
        final = "gso_len"
    else:
        flush = length < mss
        final = "len_below_mss" if p is not None else "no_payload"
    if tcp_gro_flags_flush(flags):
        flush = True
        final = next(name for bit, name in _FLUSH_FLAGS if flags & bit)
    pp = None
    if p is not None and (not cb.same_flow or flush):
        pp = p
        cb.flush_reason = reason if not cb.same_flow else final
    cb.flush |= int(flush)
    return pp


INET_OFFLOADS[IPPROTO_TCP] = tcp4_gro_receive
