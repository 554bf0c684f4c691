"""IPv4 receive as far as TCP's memory needs it, after net/ipv4/ip_input.c.

ip_rcv_core() trims an skb to the datagram's tot_len (padding after the
datagram goes: pskb_trim_rcsum(), which leaves truesize alone unless it
condenses an skb no socket owns) and only then orphans it (a tun skb is
still charged to the tap's socket while it is trimmed, so it is not
condensed); ip_local_deliver_finish() pulls the IP header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.net.core_sock import skb_orphan
from skbsim.net.skbuff import pskb_trim_rcsum, skb_pull

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.skbuff import sk_buff

#: sizeof(struct iphdr) without options.
IPV4_HLEN = 20


def ip_rcv_core(kernel: Kernel, skb: sk_buff, tot_len: int) -> None:
    """net/ipv4/ip_input.c: ip_rcv_core() - trim to tot_len, then skb_orphan()."""
    pskb_trim_rcsum(kernel, skb, tot_len)
    skb_orphan(skb)


def ip_local_deliver(kernel: Kernel, skb: sk_buff, tot_len: int) -> None:
    """ip_rcv() .. ip_local_deliver_finish(): the skb as the transport protocol gets it (data at its header)."""
    ip_rcv_core(kernel, skb, tot_len)
    skb_pull(skb, IPV4_HLEN)
