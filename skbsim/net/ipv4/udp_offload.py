"""UDP's GRO layer, after net/ipv4/udp_offload.c: udp4_gro_receive() and udp_gro_receive().

Without a socket that asked for UDP GRO (UDP_GRO, or a tunnel socket with a
gro_receive hook) and without NETIF_F_GRO_UDP_FWD or NETIF_F_GRO_FRAGLIST
on the device - the model has none of them - udp_gro_receive() marks the
skb flush: every UDP datagram goes up alone (GRO_NORMAL), unchanged.  The
same in every modelled release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.net.gro import skb_gro_header
from skbsim.net.ipv4.af_inet import INET_OFFLOADS, IPPROTO_UDP

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.skbuff import sk_buff


def udp4_gro_receive(kernel: Kernel, head: list, skb: sk_buff):
    """net/ipv4/udp_offload.c: udp4_gro_receive() - reads the UDP header; no aggregation: flush."""
    skb_gro_header(kernel, skb, skb.cb.data_offset + 8)
    skb.cb.flush = 1
    return None


INET_OFFLOADS[IPPROTO_UDP] = udp4_gro_receive
