"""IPv4 receive as far as TCP's memory needs it, after net/ipv4/ip_input.c.

ip_rcv_core() first makes sure the IP header is in the linear part
(pskb_may_pull(): a driver that built the skb around page fragments, as
napi_get_frags() does, leaves every header in frags[0]), then trims the
skb to the datagram's tot_len (padding after the datagram goes:
pskb_trim_rcsum(), which leaves truesize alone unless it condenses an skb
no socket owns) and only then orphans it (a tun skb is still charged to
the tap's socket while it is trimmed, so it is not condensed);
ip_local_deliver_finish() pulls the IP header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.net.core_sock import skb_orphan
from skbsim.net.skbuff import kfree_skb, pskb_may_pull, pskb_trim_rcsum, skb_pull

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.skbuff import sk_buff

#: sizeof(struct iphdr) without options.
IPV4_HLEN = 20


def ip_rcv_core(kernel: Kernel, skb: sk_buff, tot_len: int) -> str | None:
    """net/ipv4/ip_input.c: ip_rcv_core() - the header into the head, trim to tot_len, then skb_orphan().

    Returns None, or the drop reason when the header cannot be pulled into the head (pskb_may_pull()
    failed to reallocate it: ``goto inhdr_error``); the skb is then freed.
    """
    if not pskb_may_pull(kernel, skb, IPV4_HLEN):
        kfree_skb(kernel, skb, "IP_INHDR")
        return "IP_INHDR"
    pskb_trim_rcsum(kernel, skb, tot_len)
    skb_orphan(skb)
    return None


def ip_local_deliver(kernel: Kernel, skb: sk_buff, tot_len: int) -> str | None:
    """ip_rcv() .. ip_local_deliver_finish(): the skb as the transport protocol gets it (data at its header).

    None, or the drop reason of an skb ip_rcv_core() dropped (and freed).
    """
    reason = ip_rcv_core(kernel, skb, tot_len)
    if reason is None:
        skb_pull(skb, IPV4_HLEN)
    return reason
