"""Congestion control, after net/ipv4/tcp_cong.c, tcp_cubic.c and tcp_bbr.c.

A receiver never sends data, so of a congestion-control module only what
sizes receive-side memory matters: ``sndbuf_expand``, the factor
tcp_sndbuf_expand() gives sk_sndbuf at connection set-up - and sk_sndbuf
bounds the socket backlog (tcp_add_backlog()).
"""

from __future__ import annotations

from skbsim.errors import InputError


class tcp_congestion_ops:
    """include/net/tcp.h: struct tcp_congestion_ops - the name and the sndbuf_expand factor (None: the
    default of 2)."""

    __slots__ = ("name", "sndbuf_expand")

    def __init__(self, name: str, sndbuf_expand: int | None):
        self.name = name
        self.sndbuf_expand = sndbuf_expand


#: net/ipv4/tcp_cubic.c: cubictcp has no sndbuf_expand (tcp_sndbuf_expand() uses 2).
CUBIC = tcp_congestion_ops("cubic", None)
#: net/ipv4/tcp_bbr.c: bbr_sndbuf_expand() returns 3 ("BBR may slow-start even during recovery").
BBR = tcp_congestion_ops("bbr", 3)

CONGESTION_OPS = {ops.name: ops for ops in (CUBIC, BBR)}


def tcp_ca_find(name: str) -> tcp_congestion_ops:
    """net/ipv4/tcp_cong.c: tcp_ca_find() - the module by name (TCP_CONGESTION); InputError if unknown."""
    ops = CONGESTION_OPS.get(name)
    if ops is None:
        raise InputError(f"unknown congestion control {name!r} (modelled: {', '.join(CONGESTION_OPS)})")
    return ops
