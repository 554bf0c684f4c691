"""The model's kernel rules that are integer arithmetic, compiled for the fast engine.

Each is the reference model's own plain function (the module and function named beside it), given to
numba as it is, so that both engines compute it from one text.
"""

from __future__ import annotations

from skbsim.fast.layout import njit
from skbsim.net.skbuff import DEFER_KICK, DEFER_NONE, DEFER_QUEUE, skb_defer_admit
from skbsim.net.sock import udp_rcvbuf_admits

# skbsim.net.sock.udp_rcvbuf_admits: __udp_enqueue_schedule_skb()'s admission test
_udp_rcvbuf_admits = njit(cache=True, inline="always")(udp_rcvbuf_admits)
# skbsim.net.skbuff.skb_defer_admit: skb_attempt_defer_free()'s test on the owner's defer list
_skb_defer_admit = njit(cache=True, inline="always")(skb_defer_admit)

__all__ = ["DEFER_KICK", "DEFER_NONE", "DEFER_QUEUE", "_skb_defer_admit", "_udp_rcvbuf_admits"]
