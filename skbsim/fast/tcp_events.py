"""The events of a run with a socket per flow (--socket tcp), compiled: Simulation._flow_event() and the senders'
callbacks and frames (Simulation._push_sender(), _arrive()); the receivers' side is skbsim/fast/tcp_run.py."""

from __future__ import annotations

from skbsim.fast.layout import njit
from skbsim.fast.napi import _push, _raise_irq, _send_ipis
from skbsim.fast.state import (
    AQ_ACK, AQ_TSVAL, AQ_WINDOW, A_PERSIST, A_RTO, A_SEND, BYTES, ERR, FR_FLOW, FR_LEN, F_AQ_HEAD, F_AQ_LEN,
    F_QUEUE, F_START_EDGE, F_WSCALE, HQ_HEAD, HQ_LEN, IPIS, LK_ERR, LK_FRAMES, LK_PUSHES, NOW, PACKETS,
    Q_NIC_FRAMES, SCHEDULED, SKB_OBJ, TC_ERR, TC_WANT_LEN,
)
from skbsim.fast.tcp import TCP_LENGTH, TCP_TABLE
from skbsim.fast.tcp_run import (
    ERR_TCP, TF_KNOWN, E_ACK, E_ESTABLISH, E_PERSIST, E_READ, E_RTO, E_SEND, E_TIMER, E_WRITE, _flow_read, _flow_timer,
    _next_ack,
)
from skbsim.fast.tcp_sender import (
    _sender_ack, _sender_slot, _sender_start, _sender_stop, _sender_timer, _sender_write,
)
from skbsim.fast.tun import _tun_write
from skbsim.fast import tcp_napi  # -- TCP through NAPI drivers --
from skbsim.fast.gro import G_ON
from skbsim.fast.rx import _nic_arrive
from skbsim.fast.ntb import _ntb_arrive
from skbsim.fast.state import DRIVER_NTB
from skbsim.fast.state import DRIVER, DRIVER_TUN
from skbsim.fast.tcp_run import TF_NIC_HLEN
# -- TCP trace --
from skbsim.fast.layout import O_DRIVER
from skbsim.fast.sock import _trace_drop, _trace_nic_drop
from skbsim.fast.state import TRACE
from skbsim.fast.state import CB_FIELDS, TC_CAP_BASE  # -- TCP capture --

U32 = 0xFFFFFFFF


# -- TCP capture --


@njit(cache=True, forceinline=True)
def _capture_arrive(k, length, cpu, hlen):
    """Simulation._arrive() of a capture's frame in a run with a socket per flow (PACKETS and BYTES counted): the
    tun write, ntb_process_rxc() or the NIC's DMA as loop._arrive() makes them, the frame's TCP_SKB_CB
    (k.tfl.capture, read from its header: tcp_capture.CapturePlan.cb_row()) kept with its sk_buff, or on the
    NIC's FIFO, as a sender's is (_send_frame())."""
    st = k.st
    row = k.tfl.capture[st[PACKETS] - 1 - k.tcp.tc[TC_CAP_BASE]]
    if k.cfg[DRIVER] == DRIVER_NTB:  # ntb_process_rxc()
        if _ntb_arrive(k, cpu, length):
            tcp_napi._nicq_cb(k, cpu, row)
        return
    if k.cfg[DRIVER] != DRIVER_TUN:
        if _nic_arrive(k, cpu, length, hlen):
            tcp_napi._nicq_cb(k, cpu, row)
        else:
            _trace_nic_drop(k, cpu, length)
        return
    if not k.tfl.facts[length, TF_KNOWN]:  # (every length of the capture is read from the model up front)
        k.tcp.tc[TC_WANT_LEN] = length
        k.tcp.tc[TC_ERR] = TCP_LENGTH
        st[ERR] = ERR_TCP
        return
    before = k.pcpu[cpu, Q_NIC_FRAMES]
    if not _tun_write(k, cpu, length) or k.pcpu[cpu, Q_NIC_FRAMES] == before:
        return
    q = k.pcpu[cpu]
    cap = k.tun.queue.shape[1]
    at = q[HQ_HEAD] + q[HQ_LEN] - 1
    cb = k.skbcb.cb[k.tun.queue[cpu, at if at < cap else at - cap, SKB_OBJ]]
    for c in range(CB_FIELDS):
        cb[c] = row[c]
    if q[SCHEDULED] == 0:
        _raise_irq(k, cpu, st[NOW])


# -- the senders' side -----------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _drain_pushes(k):
    """The senders' callbacks, in the order they asked, as events (Simulation._push_sender())."""
    s = k.tsnd
    for i in range(s.link[LK_PUSHES]):
        action = s.pushes[i, 1]
        kind = E_SEND if action == A_SEND else (E_PERSIST if action == A_PERSIST else (
            E_RTO if action == A_RTO else E_WRITE))
        _push(k.events, k.st, s.pushes[i, 0], kind, max(s.pushes[i, 2], 0))
    s.link[LK_PUSHES] = 0
    if s.link[LK_ERR]:
        k.tcp.tc[TC_ERR] = TCP_TABLE


@njit(cache=True, forceinline=True)
def _send_frame(k):
    """Simulation._arrive() of the frame the link's slot sent: a tun write on the flow's queue (with the segment's
    TCP_SKB_CB kept at its sk_buff), then the IRQ."""
    s = k.tsnd
    st = k.st
    fr = s.frames[0]
    s.link[LK_FRAMES] = 0
    f = fr[FR_FLOW]
    fl = k.tfl.fl[f]
    cpu = fl[F_QUEUE]
    length = fr[FR_LEN]
    if not k.tfl.facts[length, TF_KNOWN]:
        # a length the model has not been asked about (tcp_engine.TcpRun): the run is redone knowing it
        k.tcp.tc[TC_WANT_LEN] = length
        k.tcp.tc[TC_ERR] = TCP_LENGTH
        k.st[ERR] = ERR_TCP
        return
    st[PACKETS] += 1
    st[BYTES] += length

    before = k.pcpu[cpu, Q_NIC_FRAMES]
    if k.gro.cfg[G_ON]:  # what GRO reads of the frame, for the NIC or the tun write to take
        tcp_napi._gro_frame_facts(k, f, fr, length)
    if k.cfg[DRIVER] != DRIVER_TUN:  # -- TCP through NAPI drivers --: the NIC's DMA, the TCP facts kept in order
        if k.cfg[DRIVER] == DRIVER_NTB:  # ntb_process_rxc()
            if _ntb_arrive(k, cpu, length):
                tcp_napi._nicq_push(k, cpu, f, fr)
        elif _nic_arrive(k, cpu, length, k.tfl.facts[length, TF_NIC_HLEN]):
            tcp_napi._nicq_push(k, cpu, f, fr)
        else:
            _trace_nic_drop(k, cpu, length)
        return
    if not _tun_write(k, cpu, length):
        if k.cfg[TRACE] and not st[ERR]:  # -- TCP trace --: Simulation._arrive()'s record of a refused write
            _trace_drop(k.trace, st, st[NOW], cpu, length, O_DRIVER)
        return
    if k.pcpu[cpu, Q_NIC_FRAMES] == before:
        return
    q = k.pcpu[cpu]
    cap = k.tun.queue.shape[1]
    at = q[HQ_HEAD] + q[HQ_LEN] - 1
    obj = k.tun.queue[cpu, at if at < cap else at - cap, SKB_OBJ]
    tcp_napi._frame_cb(k.skbcb.cb[obj], fl, f, fr)
    if q[SCHEDULED] == 0:
        _raise_irq(k, cpu, st[NOW])


@njit(cache=True, forceinline=True)
def _tcp_event(k, kind, f):
    """Simulation._flow_event(): a reader, a receiver's timer, an ACK reaching its sender, a sender's event."""
    s = k.tsnd
    now = k.st[NOW]
    if kind == E_READ:
        _flow_read(k, f, now)
    elif kind == E_TIMER:
        _flow_timer(k, f, now)
    elif kind == E_ACK:
        fl = k.tfl.fl[f]
        q = k.tfl.ackq[f]
        ack = q[fl[F_AQ_HEAD]]
        head = fl[F_AQ_HEAD] + 1
        fl[F_AQ_HEAD] = head if head < q.shape[0] else 0
        fl[F_AQ_LEN] -= 1
        _sender_ack(s, f, now, ack[AQ_ACK], ack[AQ_WINDOW], ack[AQ_TSVAL])
        _next_ack(k, f)
    elif kind == E_SEND:
        sent = _sender_slot(s, now)
        _drain_pushes(k)
        if sent >= 0 and s.link[LK_FRAMES]:
            _send_frame(k)
        return
    elif kind == E_PERSIST:
        _sender_timer(s, A_PERSIST, f, now)
    elif kind == E_RTO:
        _sender_timer(s, A_RTO, f, now)
    elif kind == E_WRITE:
        _sender_write(s, f, now)
    elif kind == E_ESTABLISH:
        fl = k.tfl.fl[f]
        _sender_start(s, f, now, fl[F_START_EDGE], fl[F_WSCALE])
    else:
        _sender_stop(s, now)
    _drain_pushes(k)
    if k.st[IPIS]:
        _send_ipis(k)
