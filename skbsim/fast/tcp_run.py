"""The fast engine's runs with a socket per flow (--socket tcp), compiled: skbsim.sockets.Sockets and the parts of
sim.Simulation that serve it (the senders' events, delivery to the receivers, their ACKs, timers and readers,
the pinned pages and the memory series).

The receivers are skbsim/fast/tcp.py's, the senders skbsim/fast/tcp_sender.py's; ``k.tcp``, ``k.tsnd`` and
``k.tfl`` hold them and what Sockets keeps of each flow (state.py).  Event kinds E_* carry the flow in the
event's CPU field.  The TCP facts of a tun skb of each frame length (its head, frags, tailroom once the
Ethernet and IP headers are pulled) are a table read from the model (tcp_setup.tun_tcp_facts()).
"""

from __future__ import annotations

import numpy as np

from skbsim.fast.layout import CLOCK_LIMIT, ERR_BUG, ERR_CLOCK, ERR_TABLE_FULL, FL_TAG, njit
from skbsim.fast.mm import _add_frag
from skbsim.fast.napi import _free_skb, _head_page, _push, _sift_up, _thinned_keep, _thinned_take
from skbsim.fast.sock import _attempt_defer_free, _observe  # -- TCP trace --: _observe
from skbsim.fast.slub import _slab_free
from skbsim.fast.state import (
    AQ_ACK, AQ_DUE, AQ_FIELDS, AQ_ORDER, AQ_QUEUED, AQ_TSVAL, AQ_WINDOW, EV_LAST, EV_LEN,
    CACHE_SKB, CB_ACK_SEQ, CB_END_SEQ, CB_FLOW, CB_GSO_SIZE, CB_SEQ, COST, DELIVERED, ERR, F_APP_NEXT,
    F_AQ_HEAD, F_AQ_LEN, F_CONTROL, F_CPU, F_DELIVERED, F_DROPS, F_FIRST_NS, F_INTEGRAL, F_INT_FIRST, F_INT_LAST,
    F_JS_COUNT, F_JS_EVERY, F_JS_LEN, F_LAST_NS, F_MSS, F_RCVBUF_MAX, F_RCV_MARK, F_RECEIVED, F_RMEM_PEAK,
    F_SEGMENTS, F_SINCE, F_SKBS, F_SMALL_NS, F_TIMER_DUE, F_TOUCHED, F_WAITING, F_WINDOW, F_ZERO_NS,
    LK_FLOWS, NOW, PEAK_PINNED, F_BYTES_READ, RQ_NR_FRAGS, RQ_PP_RECYCLE, RQ_TAILROOM, SKB_CPU, SKB_DLEN, SKB_FRAG,
    SKB_HEAD,
    SKB_HLEN, SKB_OBJ, SKB_TS, TC_ACKS, TC_APP_GAP, TC_DELIVERED, TC_EATEN, TC_EPOCH, TC_ERR, TC_LAST_NS,
    TC_READ_SIZE, TC_RTT_NS, TC_SR_COUNT, TC_SR_EVERY, TC_SR_LEN, TC_TCP_DROPS, TC_TOUCHED, TRUESIZE_TOTAL,
    TS_COPIED_SEQ, TS_NOW_US, TS_OFO_HEAD, TS_OFO_LEN, TS_RCVBUF, TS_RCV_NXT, TS_RCV_WSCALE, TS_RMEM, TS_RQ_HEAD,
    TS_RQ_LEN, TS_SND_NXT,
    TS_SND_UNA,
)
from skbsim.fast import tcp_napi  # -- TCP through NAPI drivers --
from skbsim.fast.gro import G_ON, M_NEXT, _append_frags
from skbsim.fast.state import DRIVER, DRIVER_TUN
from skbsim.fast.state import TRACE  # -- TCP trace --
from skbsim.fast.state import F_PS_COUNT, F_PS_EVERY, F_PS_LEN, PG_IN_USE, PLOT  # -- TCP plot --
from skbsim.fast.tcp import (
    EAT_FRAG, EAT_HOW, EAT_STOLEN, EAT_TO, SG_END_TS, SG_HEAD_FRAG, TCP_TABLE, TCP_UNMODELLED, V_COALESCED,
    V_OFO_STOLEN, V_COALESCED_STOLEN, V_DROPPED, V_NO_DATA,
    EAT_FRAGS, V_OFO_FRAGS,  # -- TCP through NAPI drivers --
    _next_timer_us, _run_timers, _sk_mem_reclaim, _tcp_rcv_established, _tcp_recvmsg,
)
from skbsim.fast.tcp_trace import _tcp_trace  # -- TCP trace --
# -- TCP capture --
from skbsim.fast.state import (
    F_ORDER, F_REF_LEN, F_REFUSED_BYTES, F_STATE, F_SYN_FRAME, F_SYN_NS, FS_ESTABLISHED, FS_LISTEN, FS_NONE,
    CB_FRAME, CB_TCP_FLAGS, RF_NS, RF_PAYLOAD, RF_REASON, RF_SEQ, ST_EST_FRAME, ST_EST_NS, ST_READY, ST_SYN_FRAME,
    ST_SYN_NS, TC_CAPTURE, TC_CAP_SEEN, TC_WANT_FLOW, F_RCV_START,
)
from skbsim.fast.tcp import DROP_REASONS, TCP_SETUP
from skbsim.net.ipv4.tcp import TCPHDR_RST, TCPHDR_SYN
from skbsim.sockets import OLD_DATA

U32 = 0xFFFFFFFF
#: event kinds of a run with a socket per flow (after layout's _POLL, _READ, _IPI), the flow in the CPU field
E_READ, E_TIMER, E_ACK, E_SEND, E_PERSIST, E_RTO, E_WRITE, E_ESTABLISH, E_STOP = (np.int64(n) for n in range(4, 13))
#: tun_tcp_facts() columns: a tun skb of a frame length as tcp_v4_rcv() gets it (-- TCP through NAPI drivers --:
#: TF_KNOWN and what the NIC takes with the frame, TF_NIC_HLEN: legacy-rx's eth_get_headlen())
TF_HLEN, TF_DLEN, TF_NR_FRAGS, TF_TAILROOM, TF_HEAD_FRAG, TF_END_TS, TF_KNOWN, TF_NIC_HLEN, TF_FIELDS = range(9)
#: st[ERR] of a run a TCP receiver or sender left (tc[TC_ERR] says which)
ERR_TCP = 8
#: a window integral beyond this would leave int64 (the reference's are Python ints)
INTEGRAL_LIMIT = 1 << 62
# -- TCP capture --: what _capture_flow() made of a capture's segment; the drops that are no refusal (by index)
CAP_ON, CAP_CONTROL, CAP_STOP = 0, 1, 2
R_OLD_DATA, R_OLD_SEQUENCE = (DROP_REASONS.index(reason) for reason in OLD_DATA)


# -- the receivers' side: Sockets ---------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _window(fl, now, window):
    """Sockets._window(): the receiver advertised window bytes at now."""
    elapsed = now - fl[F_SINCE]
    if elapsed > 0:
        fl[F_INTEGRAL] += fl[F_WINDOW] * elapsed
        if fl[F_WINDOW] < fl[F_MSS]:
            fl[F_SMALL_NS] += elapsed
            if fl[F_WINDOW] == 0:
                fl[F_ZERO_NS] += elapsed
        fl[F_SINCE] = now
    fl[F_WINDOW] = window


@njit(cache=True, forceinline=True)
def _bytes_received(fl, sk):
    """TcpFlow.bytes_received()."""
    fl[F_RECEIVED] += (sk[TS_RCV_NXT] - fl[F_RCV_MARK]) & U32
    fl[F_RCV_MARK] = sk[TS_RCV_NXT]
    return fl[F_RECEIVED]


@njit(cache=True, forceinline=True)
def _sample(k, f, now):
    """Sockets._sample(): a point of the flow's series (with --plot) and of its JSON series (a Thinned of
    JSON_POINTS)."""
    fl = k.tfl.fl[f]
    sk = k.tcp.sk[f]
    received = _bytes_received(fl, sk)
    if k.cfg[PLOT]:
        _flow_point(k.tfl.series[f], fl, F_PS_COUNT, F_PS_EVERY, F_PS_LEN, now, sk, received)
    _flow_point(k.tfl.json[f], fl, F_JS_COUNT, F_JS_EVERY, F_JS_LEN, now, sk, received)


@njit(cache=True, forceinline=True)
def _flow_point(points, fl, count, every, length, now, sk, received):
    """Thinned.add() of a flow's point (SERIES_KEYS: time, window, rmem_alloc, rcvbuf, bytes received) to the
    series whose count, step and length are fl's columns count, every and length."""
    if not _thinned_take(fl, count, every):
        return
    point = points[fl[length]]
    point[0] = now
    point[1] = fl[F_WINDOW]
    point[2] = sk[TS_RMEM]
    point[3] = sk[TS_RCVBUF]
    point[4] = received
    _thinned_keep(points, fl, length, every)


@njit(cache=True, forceinline=True)
def _ack_queue(k, f, due, ack, window, tsval):
    """An ACK on its way to the flow's sender, due then: its E_ACK events leave the heap in (time, push) order,
    and a read's ACK may be due before those of skbs its poll stamped later, so the queue is kept in that order
    (the reference carries the ACK in its event).  Only the queue's head needs its event in the heap: each ACK
    takes its event's order now, and an event is pushed now only for an ACK that heads the queue (the others'
    when they come to head it: _next_ack()), so that events leave the heap in the same order while the heap
    holds a few events instead of a window's ACKs.  False when the queue is full."""
    fl = k.tfl.fl[f]
    q = k.tfl.ackq[f]
    cap = q.shape[0]
    n = fl[F_AQ_LEN]
    if n >= cap:
        return False
    pos = n
    while pos > 0:
        at = fl[F_AQ_HEAD] + pos - 1
        prev = q[at if at < cap else at - cap]
        if prev[AQ_DUE] <= due:
            break
        at += 1
        row = q[at if at < cap else at - cap]
        for col in range(AQ_FIELDS):
            row[col] = prev[col]
        pos -= 1
    at = fl[F_AQ_HEAD] + pos
    row = q[at if at < cap else at - cap]
    row[AQ_DUE] = due
    row[AQ_ACK] = ack
    row[AQ_WINDOW] = window
    row[AQ_TSVAL] = tsval
    fl[F_AQ_LEN] = n + 1
    st = k.st
    row[AQ_QUEUED] = pos == 0
    if pos == 0:
        _push(k.events, st, due, E_ACK, f)
    elif due >= CLOCK_LIMIT:  # _push()'s bound on the clock
        st[ERR] = ERR_CLOCK
    else:
        st[EV_LAST] += 1
    row[AQ_ORDER] = st[EV_LAST]
    return True


@njit(cache=True, forceinline=True)
def _next_ack(k, f):
    """After an E_ACK event took the head of the flow's queue: the new head's event into the heap, with the
    order it was given (_ack_queue()), unless it is there already."""
    fl = k.tfl.fl[f]
    if not fl[F_AQ_LEN]:
        return
    row = k.tfl.ackq[f, fl[F_AQ_HEAD]]
    if row[AQ_QUEUED]:
        return
    if k.st[EV_LEN] >= k.events.heap.shape[0]:
        k.st[ERR] = ERR_TABLE_FULL
        return
    row[AQ_QUEUED] = 1
    _sift_up(k.events, k.st, row[AQ_DUE], row[AQ_ORDER], E_ACK, f)


@njit(cache=True, forceinline=True)
def _after(k, f, now):
    """Sockets._after(): the ACKs the receiver sent (the window they carry; each reaches the sender one RTT
    later), its series, its rcvbuf's peak, its next timer."""
    t = k.tcp
    fl = k.tfl.fl[f]
    sk = t.sk[f]
    n = t.tc[TC_ACKS]
    if n:
        for i in range(n):
            window = t.acks[i, 2]
            _window(fl, now, window << sk[TS_RCV_WSCALE])
            if t.tc[TC_RTT_NS] < 0:  # -- TCP capture --: no sender to reach (Sockets: rtt_ns None)
                continue
            if not _ack_queue(k, f, now + t.tc[TC_RTT_NS], t.acks[i, 1], window, t.acks[i, 3]):
                t.tc[TC_ERR] = TCP_TABLE
                return
        t.tc[TC_ACKS] = 0
        if fl[F_INTEGRAL] >= INTEGRAL_LIMIT:
            t.tc[TC_ERR] = TCP_UNMODELLED
        _sample(k, f, now)
    if sk[TS_RCVBUF] > fl[F_RCVBUF_MAX]:
        fl[F_RCVBUF_MAX] = sk[TS_RCVBUF]
    due = _next_timer_us(t, f)
    if due >= 0 and (fl[F_TIMER_DUE] < 0 or due < fl[F_TIMER_DUE]):
        fl[F_TIMER_DUE] = due
        _push(k.events, k.st, due * 1000, E_TIMER, f)


@njit(cache=True, forceinline=True)
def _flow_timer(k, f, now):
    """Sockets.timer(): the receiver's delayed-ACK timer is due."""
    fl = k.tfl.fl[f]
    now_us = now // 1000
    if fl[F_TIMER_DUE] != now_us:
        return
    fl[F_TIMER_DUE] = -1
    sk = k.tcp.sk[f]
    sk[TS_NOW_US] = max(sk[TS_NOW_US], now_us)
    due = _next_timer_us(k.tcp, f)
    if 0 <= due <= sk[TS_NOW_US]:
        _run_timers(k.tcp, f)
    _after(k, f, now)


@njit(cache=True, forceinline=True)
def _flow_read(k, f, now):
    """Sockets.read(): tcp_recvmsg() of the read size; each skb read to its end freed where it was allocated
    (tcp_eat_recv_skb(): skb_attempt_defer_free() on the reader's CPU)."""
    t = k.tcp
    tc = t.tc
    fl = k.tfl.fl[f]
    sk = t.sk[f]
    if sk[TS_RCV_NXT] == sk[TS_COPIED_SEQ]:
        fl[F_WAITING] = tc[TC_APP_GAP] > 0
        return
    tc[TC_LAST_NS] = now
    tc[TC_EATEN] = 0
    fl[F_BYTES_READ] += _tcp_recvmsg(t, f, tc[TC_READ_SIZE], k.skbcb.cb, now // 1000)
    for i in range(tc[TC_EATEN]):
        skb = t.eaten[i]
        _attempt_defer_free(k, skb[SKB_HEAD], skb[SKB_FRAG], skb[SKB_OBJ], skb[SKB_CPU])
    tc[TC_EATEN] = 0
    _after(k, f, now)
    if tc[TC_APP_GAP] > 0:
        fl[F_APP_NEXT] = now + tc[TC_APP_GAP]
        _push(k.events, k.st, fl[F_APP_NEXT], E_READ, f)


@njit(cache=True)
def _sample_pinned(k):
    """Simulation._sample_pinned(): the distinct pages the queued skbs of every receiver keep alive; the peak."""
    t = k.tcp
    tc = t.tc
    mark = k.tfl.mark
    tc[TC_EPOCH] += 1
    epoch = tc[TC_EPOCH]
    count = 0
    for f in range(2 * k.tsnd.link[LK_FLOWS]):
        sk = t.sk[f >> 1]
        rq = t.oq[f >> 1] if f & 1 else t.rq[f >> 1]  # the receive queue, then the out-of-order queue
        head = sk[TS_OFO_HEAD] if f & 1 else sk[TS_RQ_HEAD]
        for j in range(sk[TS_OFO_LEN] if f & 1 else sk[TS_RQ_LEN]):
            at = head + j
            skb = rq[at if at < rq.shape[0] else at - rq.shape[0]]
            pid = _head_page(k.slabs, skb[SKB_HEAD])
            if mark[pid] != epoch:
                mark[pid] = epoch
                count += 1
            if k.gro.cfg[G_ON] and k.gro.member[skb[SKB_OBJ], M_NEXT] >= 0:  # -- TCP through NAPI drivers --
                count += tcp_napi._mark_members(k, skb[SKB_OBJ], mark, epoch)
            frag = skb[SKB_FRAG]
            if frag < 0:
                continue
            if frag < FL_TAG:
                if mark[frag] != epoch:
                    mark[frag] = epoch
                    count += 1
                continue
            row = k.frags.fl[frag - FL_TAG]
            for i in range(1, row[0] + 1):
                if mark[row[i]] != epoch:
                    mark[row[i]] = epoch
                    count += 1
    if count > k.st[PEAK_PINNED]:
        k.st[PEAK_PINNED] = count
    return count


@njit(cache=True, forceinline=True)
def _tcp_poll_end(k, end):
    """The end of Simulation._poll() with a socket per flow: Sockets.poll_end() wakes the readers of the flows
    that got something, in the order they got it; a point of the memory series, and the pinned pages then."""
    tc = k.tcp.tc
    for i in range(tc[TC_TOUCHED]):
        f = k.tfl.touched[i]
        fl = k.tfl.fl[f]
        fl[F_TOUCHED] = 0
        sk = k.tcp.sk[f]
        if sk[TS_RCV_NXT] == sk[TS_COPIED_SEQ]:
            continue
        if tc[TC_APP_GAP] < 0:
            _push(k.events, k.st, end, E_READ, f)
        elif fl[F_WAITING]:
            fl[F_WAITING] = 0
            _push(k.events, k.st, max(end, fl[F_APP_NEXT]), E_READ, f)
    tc[TC_TOUCHED] = 0
    # both sums run over every receiver: taken only for the points the series keeps
    if not _thinned_take(tc, TC_SR_COUNT, TC_SR_EVERY):
        return
    point = k.trace.series[tc[TC_SR_LEN]]
    point[0] = end
    point[1] = k.st[PG_IN_USE]
    point[2] = _rmem_total(k)
    _thinned_keep(k.trace.series, tc, TC_SR_LEN, TC_SR_EVERY)
    _sample_pinned(k)


@njit(cache=True, forceinline=True)
def _rmem_total(k):
    """Sockets.rmem_total(): sk_rmem_alloc summed over the receivers."""
    total = 0
    for f in range(k.tsnd.link[LK_FLOWS]):
        total += k.tcp.sk[f, TS_RMEM]
    return total


@njit(cache=True, forceinline=True)
def _segment(k, skb, facts, seg):
    """The poll's skb as tcp_v4_rcv() gets it (ip_local_deliver(): the IP header pulled; the Ethernet header
    went in eth_type_trans()): its row and its TCP facts by frame length."""
    for col in range(SKB_HLEN):
        seg[col] = skb[col]
    row = facts[skb[SKB_HLEN]]
    seg[SKB_HLEN] = row[TF_HLEN]
    seg[SKB_DLEN] = row[TF_DLEN]
    seg[RQ_NR_FRAGS] = row[TF_NR_FRAGS]
    seg[RQ_TAILROOM] = row[TF_TAILROOM]
    seg[SG_HEAD_FRAG] = row[TF_HEAD_FRAG]
    seg[SG_END_TS] = row[TF_END_TS]
    seg[RQ_PP_RECYCLE] = 0  # (tun's skbs are not page_pool's)


@njit(cache=True, forceinline=True)
def _tcp_deliver(k, cpu, n):
    """Simulation._deliver() of the poll's n skbs with a socket per flow: each to its flow's receiver
    (Sockets._tcp()), what happened counted, the skb freed unless queued."""
    st = k.st
    t = k.tcp
    tc = t.tc
    seg = k.tfl.seg
    facts = k.tfl.facts
    for d in range(n):
        skb = k.batch[d]
        time_ns = st[NOW] + (d + 1) * k.cfg[COST]
        st[DELIVERED] += 1
        st[TRUESIZE_TOTAL] += skb[SKB_TS]
        tc[TC_LAST_NS] = time_ns
        if k.cfg[DRIVER] != DRIVER_TUN:  # -- TCP through NAPI drivers --
            tcp_napi._napi_cb(k, skb, d)
        cb = k.skbcb.cb[skb[SKB_OBJ]]
        f = cb[CB_FLOW]
        fl = k.tfl.fl[f]
        sk = t.sk[f]
        sk[TS_NOW_US] = max(sk[TS_NOW_US], time_ns // 1000)
        fl[F_SKBS] += 1
        if tc[TC_CAPTURE]:  # -- TCP capture --: the flow's first skb, a SYN or RST, its receiver's set-up
            how = _capture_flow(k, f, cb, cpu, time_ns)
            if how == CAP_STOP:
                return
            if how == CAP_CONTROL:  # Sockets._control(): freed
                if k.cfg[PLOT]:  # -- TCP plot --: in the truesize table as every skb handed up
                    _observe(k, skb, cpu, time_ns, False)
                _free_skb(k, cpu, skb[SKB_HEAD], skb[SKB_FRAG], skb[SKB_OBJ])
                continue
        if ((sk[TS_SND_NXT] - cb[CB_ACK_SEQ]) & U32) >= 0x80000000:
            sk[TS_SND_NXT] = cb[CB_ACK_SEQ]
            sk[TS_SND_UNA] = cb[CB_ACK_SEQ]
        payload = (cb[CB_END_SEQ] - cb[CB_SEQ]) & U32
        if payload:  # a GRO aggregate: its segments of gso_size
            gso = cb[CB_GSO_SIZE]
            fl[F_SEGMENTS] += (payload + gso - 1) // gso if gso else 1
        rcv_nxt = sk[TS_RCV_NXT]
        if k.cfg[DRIVER] == DRIVER_TUN:
            _segment(k, skb, facts, seg)
        elif not tcp_napi._napi_segment(k, skb, seg):  # -- TCP through NAPI drivers --
            if not tc[TC_ERR]:  # (else TCP_PULL: its headers beyond its head)
                tc[TC_ERR] = TCP_UNMODELLED
            return
        seg[SKB_CPU] = cpu  # the CPU that frees it after a read defers to (as sock._enqueue() keeps it)
        tc[TC_EATEN] = 0
        # -- TCP trace --: the skb's columns taken before the receiver changes it, the flow's after _after()
        seq = cb[CB_SEQ]
        if k.cfg[TRACE] or k.cfg[PLOT]:  # -- TCP plot --: its truesize by length
            _observe(k, skb, cpu, time_ns, False)
        verdict, fast = _tcp_rcv_established(t, f, seg, k.skbcb.cb, time_ns // 1000, k)
        if tc[TC_ERR]:
            return
        for i in range(tc[TC_EATEN]):  # what tcp_ofo_queue() dropped or coalesced, freed as it went
            eaten = t.eaten[i]
            if eaten[EAT_HOW] == EAT_STOLEN:
                _steal_head(k, t.rq[f, eaten[EAT_TO]], eaten, cpu)
            elif eaten[EAT_HOW] == EAT_FRAG:  # the head, then its frags (a GRO aggregate's), to the tail's
                to = t.rq[f, eaten[EAT_TO]]
                to[SKB_FRAG] = _add_frag(k.frags, k.st, to[SKB_FRAG], eaten[SKB_HEAD])
                to[SKB_FRAG] = _append_frags(k, to[SKB_FRAG], eaten[SKB_FRAG])
            elif eaten[EAT_HOW] == EAT_FRAGS:  # -- TCP through NAPI drivers --
                _move_frags(k, t.rq[f, eaten[EAT_TO]], eaten, cpu)
            else:
                _free_skb(k, cpu, eaten[SKB_HEAD], eaten[SKB_FRAG], eaten[SKB_OBJ])
        tc[TC_EATEN] = 0
        if sk[TS_RCV_NXT] != rcv_nxt:
            integral = fl[F_INTEGRAL] + fl[F_WINDOW] * (time_ns - fl[F_SINCE])
            fl[F_LAST_NS] = time_ns
            fl[F_INT_LAST] = integral
            if fl[F_FIRST_NS] < 0:
                fl[F_FIRST_NS] = time_ns
                fl[F_INT_FIRST] = integral
        code = verdict % 8
        if not payload:
            fl[F_CONTROL] += 1
        elif code == V_DROPPED:
            fl[F_DROPS + verdict // 8] += 1
            tc[TC_TCP_DROPS] += 1
            if tc[TC_CAPTURE]:  # -- TCP capture --
                _refused(k, f, time_ns, (seq - fl[F_RCV_START]) & U32, payload, verdict // 8)
        else:
            fl[F_DELIVERED] += 1
            tc[TC_DELIVERED] += 1
        if code == V_COALESCED_STOLEN:  # its head went to the receive queue's tail (EAT_FRAG): the sk_buff
            _slab_free(k.slabs, CACHE_SKB, cpu, k.pages, k.st, seg[SKB_OBJ])
        elif code == V_OFO_STOLEN:
            _coalesce_head(k, f, seg, cpu)
        elif code == V_OFO_FRAGS:  # -- TCP through NAPI drivers --
            _move_frags(k, t.oq[f, _ofo_last(t, f)], seg, cpu)
        elif code == V_COALESCED or code == V_DROPPED or code == V_NO_DATA:
            _free_skb(k, cpu, seg[SKB_HEAD], seg[SKB_FRAG], seg[SKB_OBJ])
        if sk[TS_RMEM] > fl[F_RMEM_PEAK]:
            fl[F_RMEM_PEAK] = sk[TS_RMEM]
        if not fl[F_TOUCHED]:
            fl[F_TOUCHED] = 1
            k.tfl.touched[tc[TC_TOUCHED]] = f
            tc[TC_TOUCHED] += 1
        _after(k, f, time_ns)
        if k.cfg[TRACE]:  # -- TCP trace --
            _tcp_trace(k, f, seq, payload, verdict, fast, rcv_nxt)
        if st[ERR] or tc[TC_ERR]:
            return


# -- TCP capture --


@njit(cache=True)
def _capture_flow(k, f, cb, cpu, time_ns):
    """skbsim.sockets.Sockets.deliver() and _tcp() of a capture's segment before tcp_v4_rcv(): the flow opened at
    its first skb (its CPU, its reader), a SYN (the listener: its first SYN's frame and time kept) or RST taken as
    control (CAP_CONTROL), the receiver set up at the flow's first other segment from what the model set up for it
    (tcp_capture.CaptureSetups: net/ipv4/tcp_minisocks.c tcp_listen_sock(), tcp_conn_request() and
    tcp_passive_establish() of this SYN and this segment at these times), or the run stopped to have the model set
    it up (CAP_STOP, TC_WANT_FLOW)."""
    t = k.tcp
    tc = t.tc
    fl = k.tfl.fl[f]
    if fl[F_ORDER] < 0:
        fl[F_ORDER] = tc[TC_CAP_SEEN]
        tc[TC_CAP_SEEN] += 1
        fl[F_CPU] = cpu
        fl[F_WAITING] = tc[TC_APP_GAP] != 0
    flags = cb[CB_TCP_FLAGS]
    if flags & (TCPHDR_SYN | TCPHDR_RST):
        if flags & TCPHDR_SYN:
            if fl[F_STATE] == FS_ESTABLISHED:  # a new connection on the same ports: tcp_capture refuses these
                tc[TC_ERR] = TCP_UNMODELLED
                return CAP_STOP
            if fl[F_STATE] == FS_NONE:
                fl[F_STATE] = FS_LISTEN
                fl[F_SYN_FRAME] = cb[CB_FRAME]
                fl[F_SYN_NS] = time_ns
        fl[F_CONTROL] += 1
        return CAP_CONTROL
    if fl[F_STATE] == FS_ESTABLISHED:
        return CAP_ON
    stage = k.tfl.stage[f]
    if not (stage[ST_READY] and stage[ST_SYN_FRAME] == fl[F_SYN_FRAME] and stage[ST_SYN_NS] == fl[F_SYN_NS]
            and stage[ST_EST_FRAME] == cb[CB_FRAME] and stage[ST_EST_NS] == time_ns):
        stage[ST_READY] = 0
        stage[ST_SYN_FRAME] = fl[F_SYN_FRAME]
        stage[ST_SYN_NS] = fl[F_SYN_NS]
        stage[ST_EST_FRAME] = cb[CB_FRAME]
        stage[ST_EST_NS] = time_ns
        tc[TC_WANT_FLOW] = f
        tc[TC_ERR] = TCP_SETUP
        return CAP_STOP
    sk = t.sk[f]
    sk0 = k.tfl.sk0[f]
    for col in range(sk.shape[0]):
        sk[col] = sk0[col]
    fl0 = k.tfl.fl0[f]
    # what Sockets.listen() and establish() set: the window and since when, the MSS, rcvbuf, rcv_nxt's start
    # and the series' first point
    for col in range(F_WINDOW, F_RCVBUF_MAX + 1):
        fl[col] = fl0[col]
    for col in range(F_RCV_START, F_RECEIVED + 1):
        fl[col] = fl0[col]
    for col in range(F_JS_COUNT, F_JS_LEN + 1):
        fl[col] = fl0[col]
    json = k.tfl.json[f]
    json0 = k.tfl.json0[f]
    for j in range(fl[F_JS_LEN]):
        for col in range(json.shape[1]):
            json[j, col] = json0[j, col]
    fl[F_STATE] = FS_ESTABLISHED
    return CAP_ON


@njit(cache=True)
def _refused(k, f, time_ns, seq, payload, reason):
    """Sockets._tcp()'s count and list of a capture's segment the receiver refused (a drop of data it does not
    have: not TCP_OLD_DATA or TCP_OLD_SEQUENCE)."""
    if reason == R_OLD_DATA or reason == R_OLD_SEQUENCE:
        return
    fl = k.tfl.fl[f]
    fl[F_REFUSED_BYTES] += payload
    n = fl[F_REF_LEN]
    rows = k.tfl.refused[f]
    if n < rows.shape[0]:
        row = rows[n]
        row[RF_NS] = time_ns
        row[RF_SEQ] = seq
        row[RF_PAYLOAD] = payload
        row[RF_REASON] = reason
        fl[F_REF_LEN] = n + 1


@njit(cache=True)
def _coalesce_head(k, f, seg, cpu):
    """kfree_skb_partial() of a segment whose head skb_try_coalesce() stole for the out-of-order queue's tail."""
    _steal_head(k, k.tcp.oq[f, _ofo_last(k.tcp, f)], seg, cpu)


@njit(cache=True, forceinline=True)
def _ofo_last(t, f):
    """Where the out-of-order queue's last skb is (its row of t.oq[f])."""
    sk = t.sk[f]
    at = sk[TS_OFO_HEAD] + sk[TS_OFO_LEN] - 1
    return at if at < t.oq.shape[1] else at - t.oq.shape[1]


@njit(cache=True)
def _move_frags(k, to, skb, cpu):
    """-- TCP through NAPI drivers --: kfree_skb_partial() of an skb whose frags skb_try_coalesce() moved to the
    skb to (no linear data: the references move), the rest freed (its head, its sk_buff)."""
    to[SKB_FRAG] = _append_frags(k, to[SKB_FRAG], skb[SKB_FRAG])
    _free_skb(k, cpu, skb[SKB_HEAD], -1, skb[SKB_OBJ])


@njit(cache=True)
def _steal_head(k, to, skb, cpu):
    """The head's page, then the skb's frags, become frags of the skb to (skb_try_coalesce(): the references
    move), the sk_buff goes back to its slab."""
    if skb[SKB_HEAD] >= FL_TAG:
        k.st[ERR] = ERR_BUG  # a head that is no page fragment is never stolen
        return
    to[SKB_FRAG] = _add_frag(k.frags, k.st, to[SKB_FRAG], skb[SKB_HEAD])
    to[SKB_FRAG] = _append_frags(k, to[SKB_FRAG], skb[SKB_FRAG])
    _slab_free(k.slabs, CACHE_SKB, cpu, k.pages, k.st, skb[SKB_OBJ])


@njit(cache=True, entry=True)
def _tcp_close(k):
    """Sockets.finish()'s tcp_destroy() of every receiver on its CPU: its queued skbs freed in order
    (kfree_skb()), then sk_mem_reclaim()."""
    t = k.tcp
    for f in range(k.tsnd.link[LK_FLOWS]):
        sk = t.sk[f]
        cpu = k.tfl.fl[f, F_CPU]
        _free_queue(k, t.rq[f], sk, TS_RQ_HEAD, TS_RQ_LEN, cpu)
        _free_queue(k, t.oq[f], sk, TS_OFO_HEAD, TS_OFO_LEN, cpu)
        _sk_mem_reclaim(t.tc, sk)


@njit(cache=True)
def _free_queue(k, queue, sk, head_col, len_col, cpu):
    """kfree_skb() of every skb of a receiver's queue (its ring from sk[head_col], sk[len_col] of them), in order."""
    while sk[len_col]:
        skb = queue[sk[head_col]]
        _free_skb(k, cpu, skb[SKB_HEAD], skb[SKB_FRAG], skb[SKB_OBJ])
        head = sk[head_col] + 1
        sk[head_col] = head if head < queue.shape[0] else 0
        sk[len_col] -= 1



@njit(cache=True, entry=True)
def _tcp_start(k, rtt_ns, stop_ns):
    """Simulation._open_senders()'s events: each flow's "establish" one RTT in (its receiver was established by
    the model: tcp_engine.TcpRun; its sender starts then), and the senders' "stop" at --duration."""
    for f in range(k.tsnd.link[LK_FLOWS]):
        _push(k.events, k.st, rtt_ns, E_ESTABLISH, f)
    _push(k.events, k.st, stop_ns, E_STOP, 0)


@njit(cache=True, entry=True)
def _tcp_pinned(k):
    """_sample_pinned() as the run ends (Simulation._finish())."""
    return _sample_pinned(k)
