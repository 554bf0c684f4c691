"""What every driver's poll does around its own work, compiled: net/core/dev.c napi_poll() as Simulation._poll
runs it for ice, copybreak, virtio_net and the page_pool drivers (rx._poll()), tun (tun._tun_poll()) and ntb
(ntb._ntb_poll()): the start (_poll_start()), the poll's skbs to the stack (_poll_deliver()) and the end
(_poll_end())."""

from __future__ import annotations

from skbsim.fast.layout import COUNTED, njit
from skbsim.fast.napi import _defer_flush, _poll_done
from skbsim.fast.sock import _deliver
from skbsim.fast.state import (
    BUDGET_LEFT, COST, D_POLLS, DEFER_LEN, ERR, NOW, POLLS, Q_DROPPED, Q_FRAMES, TC_ERR, TC_RUN,
)
from skbsim.fast.tcp_run import ERR_TCP, _tcp_deliver, _tcp_poll_end
from skbsim.sim import NAPI_POLL_WEIGHT


@njit(cache=True, forceinline=True)
def _poll_start(k, cpu):
    """The start of Simulation._poll on queue cpu: the poll counted, the CPU's defer list flushed
    (skb_defer_free_flush()), the budget: NAPI_POLL_WEIGHT within what net_rx_action() has left.  Returns (the
    queue's frames taken and dropped so far, the budget)."""
    k.st[POLLS] += 1
    q = k.pcpu[cpu]
    taken_before = q[Q_FRAMES] + q[Q_DROPPED]
    if q[DEFER_LEN]:
        _defer_flush(k, cpu, COUNTED)
    k.st[D_POLLS] += 1
    return taken_before, NAPI_POLL_WEIGHT if NAPI_POLL_WEIGHT < q[BUDGET_LEFT] else q[BUDGET_LEFT]


@njit(cache=True, forceinline=True)
def _poll_deliver(k, cpu, n):
    """The poll's n skbs (k.batch) to the stack: the UDP socket (sock._deliver()), or with a socket per flow the
    receivers (tcp_run._tcp_deliver(); the poll's TCP_SKB_CBs used up, a receiver's stop made the run's)."""
    if k.tcp.tc[TC_RUN]:
        _tcp_deliver(k, cpu, n)
        k.tfl.polled[-1, 0] = 0
        if k.tcp.tc[TC_ERR]:
            k.st[ERR] = ERR_TCP
    else:
        _deliver(k, cpu, n)


@njit(cache=True, forceinline=True)
def _poll_end(k, cpu, work, budget, ndel, taken_before):
    """The end of Simulation._poll: napi._poll_done(), then with a socket per flow Sockets.poll_end()
    (tcp_run._tcp_poll_end() at the time the poll's work ends)."""
    _poll_done(k, cpu, work, budget, ndel, taken_before)
    if k.tcp.tc[TC_RUN]:
        _tcp_poll_end(k, k.st[NOW] + (work if work > ndel else ndel) * k.cfg[COST])
