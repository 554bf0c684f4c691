"""The synthetic TCP senders of ``--socket tcp`` and the link they share, compiled (skbsim/tcp_sender.py).

One function per method of TcpSenders, the same name with a leading underscore.  ``s`` is the TcpSenders
record (state.py): s.link[LK_*] the link and the senders' shared figures, s.snd[flow, SN_*] each sender,
s.flight[flow, j] its segments sent and not acknowledged (FL_* columns; a ring from SN_FL_HEAD).  A sender's
callback (TcpSenders' push: "send", "persist", "rto", "write") is a row of s.pushes (time, action, flow)
for the caller's event loop; a frame sent is a row of s.frames (FR_* columns: the flow, the frame's length,
sequence number, payload, flags, TSval and TSecr, IP ID), LK_FRAMES of them, until the caller takes them.
"""

from __future__ import annotations

from skbsim.fast.layout import njit
from skbsim.fast.state import (
    A_PERSIST, A_RTO, A_SEND, A_WRITE, FL_LEN, FL_PSH, FL_SEQ, FR_FLAGS, FR_FLOW, FR_IP_ID, FR_LEN, FR_PAYLOAD,
    FR_SEQ, FR_TSECR, FR_TSVAL, LK_ERR, LK_FLOWS, LK_FRAMES, LK_FRAMES_LEFT, LK_LINK_FREE, LK_LINK_UNIT,
    LK_MESSAGES, LK_NEXT_TURN, LK_PERIOD_UNITS, LK_PUSHES, LK_RTO_NS, LK_SIZE, LK_SLOT_PENDING, LK_STOPPED,
    LK_STOPPED_AT, LK_WRITE_PERIOD, SN_BACKOFF, SN_BYTES_SENT, SN_FL_HEAD, SN_FL_LEN, SN_FRAMES, SN_HEADER_LEN,
    SN_IP_ID, SN_MSS, SN_PERSIST_DUE, SN_PROBE_PENDING, SN_RETRANSMITS, SN_REXMIT_PENDING, SN_RIGHT_EDGE,
    SN_RTO_BACKOFF, SN_RTO_DUE, SN_RTO_EVENT, SN_SEGMENTS, SN_SND_NXT, SN_SND_UNA, SN_STARTED, SN_TIMESTAMPS,
    SN_TSECR, SN_TS_BASE, SN_WINDOW_PROBES, SN_WRITE_START, SN_WRITE_WAKE, SN_WRITES, SN_WRITTEN, SN_WSCALE,
    SN_ZW_PROBES,
)
from skbsim.tcp_sender import TCP_RETRIES2, TCP_RTO_MAX_NS
from skbsim.traffic.frame import TCP_FLAG_ACK, TCP_FLAG_PSH

U32 = 0xFFFFFFFF
#: s.link[LK_ERR]: a table of the record filled up
SENDER_TABLE_FULL = 1


@njit(cache=True, forceinline=True)
def _after(a, b):
    return ((b - a) & U32) >= 0x80000000


@njit(cache=True, forceinline=True)
def _backed_off(rto_ns, backoff):
    """min(rto << backoff, TCP_RTO_MAX) without the shift leaving 64 bits."""
    if backoff >= 40:
        return TCP_RTO_MAX_NS
    return min(rto_ns << backoff, TCP_RTO_MAX_NS)


@njit(cache=True, forceinline=True)
def _push(s, time_ns, action, f):
    """TcpSenders' push(time_ns, action, sender): a row of s.pushes."""
    n = s.link[LK_PUSHES]
    if n >= s.pushes.shape[0]:
        s.link[LK_ERR] = SENDER_TABLE_FULL
        return
    s.pushes[n, 0] = time_ns
    s.pushes[n, 1] = action
    s.pushes[n, 2] = f
    s.link[LK_PUSHES] = n + 1


@njit(cache=True, forceinline=True)
def _next_len(sn):
    """TcpSender.next_len(): min(MSS, what is written and not sent); SN_WRITTEN -1 is always more."""
    if sn[SN_WRITTEN] < 0:
        return sn[SN_MSS]
    return min(sn[SN_MSS], sn[SN_WRITTEN] - sn[SN_BYTES_SENT])


@njit(cache=True, forceinline=True)
def _usable(sn):
    """TcpSender.usable()."""
    room = (sn[SN_RIGHT_EDGE] - sn[SN_SND_NXT]) & U32
    return 0 if room >= 0x80000000 else room


@njit(cache=True, forceinline=True)
def _fits(sn):
    size = _next_len(sn)
    return 0 < size <= _usable(sn)


@njit(cache=True, forceinline=True)
def _catch_up(s, f, now):
    """TcpSenders._catch_up(): the writes of messages:SIZE@RATE made by now."""
    lk = s.link
    sn = s.snd[f]
    if lk[LK_WRITE_PERIOD] and sn[SN_STARTED] and not lk[LK_STOPPED] and lk[LK_FRAMES_LEFT] > 0:
        due = (now - sn[SN_WRITE_START]) // lk[LK_WRITE_PERIOD] + 1
        if due > sn[SN_WRITES]:
            sn[SN_WRITTEN] += (due - sn[SN_WRITES]) * lk[LK_SIZE]
            sn[SN_WRITES] = due


@njit(cache=True, forceinline=True)
def _link_free_ns(lk):
    return -(-lk[LK_LINK_FREE] // lk[LK_LINK_UNIT])


@njit(cache=True, forceinline=True)
def _kick(s, now):
    """TcpSenders.kick(): a link slot unless one is coming."""
    lk = s.link
    if lk[LK_STOPPED] or lk[LK_SLOT_PENDING]:
        return
    lk[LK_SLOT_PENDING] = 1
    _push(s, max(now, _link_free_ns(lk)), A_SEND, -1)


@njit(cache=True, forceinline=True)
def _arm_rto(s, f, now):
    """TcpSenders._arm_rto()."""
    sn = s.snd[f]
    sn[SN_RTO_DUE] = now + _backed_off(s.link[LK_RTO_NS], sn[SN_RTO_BACKOFF])
    if sn[SN_RTO_EVENT] < 0:
        sn[SN_RTO_EVENT] = sn[SN_RTO_DUE]
        _push(s, sn[SN_RTO_DUE], A_RTO, f)


@njit(cache=True, forceinline=True)
def _check_persist(s, f, now):
    """TcpSenders._check_persist(): tcp_check_probe_timer()."""
    lk = s.link
    sn = s.snd[f]
    if (lk[LK_STOPPED] or not sn[SN_STARTED] or sn[SN_FL_LEN] or sn[SN_PERSIST_DUE] >= 0 or lk[LK_FRAMES_LEFT] <= 0
            or _next_len(sn) == 0 or _fits(sn)):
        return
    sn[SN_PERSIST_DUE] = now + _backed_off(lk[LK_RTO_NS], sn[SN_BACKOFF])
    _push(s, sn[SN_PERSIST_DUE], A_PERSIST, f)


@njit(cache=True, forceinline=True)
def _wake_for_writes(s, f, now):
    """TcpSenders._wake_for_writes()."""
    lk = s.link
    sn = s.snd[f]
    if (not lk[LK_WRITE_PERIOD] or sn[SN_WRITE_WAKE] or lk[LK_STOPPED] or lk[LK_FRAMES_LEFT] <= 0
            or (_next_len(sn) > 0 and not _fits(sn))):
        return
    sn[SN_WRITE_WAKE] = 1
    due = sn[SN_WRITE_START] + sn[SN_WRITES] * lk[LK_WRITE_PERIOD]
    _push(s, max(due, now + 1, _link_free_ns(lk)), A_WRITE, f)


@njit(cache=True)
def _sender_start(s, f, now, right_edge, wscale):
    """TcpSenders.start(): the handshake is done."""
    sn = s.snd[f]
    sn[SN_STARTED] = 1
    sn[SN_RIGHT_EDGE] = right_edge
    sn[SN_WSCALE] = wscale
    if s.link[LK_MESSAGES]:
        if not s.link[LK_WRITE_PERIOD]:  # back to back
            sn[SN_WRITTEN] = -1
        else:
            sn[SN_WRITTEN] = 0
            sn[SN_WRITE_START] = now
            sn[SN_WRITE_WAKE] = 1
            _push(s, now, A_WRITE, f)
            return
    _kick(s, now)
    _check_persist(s, f, now)


@njit(cache=True, forceinline=True)
def _sender_write(s, f, now):
    """TcpSenders.write()."""
    s.snd[f, SN_WRITE_WAKE] = 0
    if s.link[LK_STOPPED] or s.link[LK_FRAMES_LEFT] <= 0:
        return
    _catch_up(s, f, now)
    _kick(s, now)
    _check_persist(s, f, now)
    _wake_for_writes(s, f, now)


@njit(cache=True, forceinline=True)
def _sender_ack(s, f, now, ack, window, tsval):
    """TcpSenders.ack(): an ACK reaches the sender (tsval -1: none)."""
    _catch_up(s, f, now)
    sn = s.snd[f]
    if tsval >= 0:
        sn[SN_TSECR] = tsval
    if _after(ack, sn[SN_SND_UNA]):
        sn[SN_SND_UNA] = ack
        cap = s.flight.shape[1]
        while sn[SN_FL_LEN]:
            first = s.flight[f, sn[SN_FL_HEAD]]
            if _after((first[FL_SEQ] + first[FL_LEN]) & U32, ack):
                break
            head = sn[SN_FL_HEAD] + 1
            sn[SN_FL_HEAD] = head if head < cap else 0
            sn[SN_FL_LEN] -= 1
        sn[SN_RTO_BACKOFF] = 0
        sn[SN_RTO_DUE] = -1
        if sn[SN_FL_LEN]:
            _arm_rto(s, f, now)
    sn[SN_RIGHT_EDGE] = (ack + (window << sn[SN_WSCALE])) & U32
    if sn[SN_PERSIST_DUE] >= 0 and _fits(sn):
        sn[SN_PERSIST_DUE] = -1
        sn[SN_BACKOFF] = 0
    _kick(s, now)
    _check_persist(s, f, now)
    _wake_for_writes(s, f, now)


@njit(cache=True)
def _sender_timer(s, action, f, now):
    """TcpSenders.timer(): the persist timer or the retransmission timer."""
    lk = s.link
    if lk[LK_STOPPED]:
        return
    _catch_up(s, f, now)
    sn = s.snd[f]
    if action == A_PERSIST:
        if sn[SN_PERSIST_DUE] != now:
            return
        sn[SN_PERSIST_DUE] = -1
        if sn[SN_FL_LEN] or lk[LK_FRAMES_LEFT] <= 0 or _next_len(sn) == 0 or _fits(sn):
            _kick(s, now)
            return
        sn[SN_PROBE_PENDING] = 1
    elif action == A_RTO:
        sn[SN_RTO_EVENT] = -1
        if sn[SN_RTO_DUE] < 0 or not sn[SN_FL_LEN]:
            return
        if sn[SN_RTO_DUE] > now:
            sn[SN_RTO_EVENT] = sn[SN_RTO_DUE]
            _push(s, sn[SN_RTO_DUE], A_RTO, f)
            return
        sn[SN_RTO_BACKOFF] += 1
        _arm_rto(s, f, now)
        sn[SN_REXMIT_PENDING] = 1
    _kick(s, now)


@njit(cache=True)
def _sender_stop(s, now):
    """TcpSenders.stop()."""
    s.link[LK_STOPPED] = 1
    s.link[LK_STOPPED_AT] = now


@njit(cache=True, forceinline=True)
def _frame(s, f, now, seq, size, psh):
    """TcpSenders._frame(): the segment's row of s.frames."""
    sn = s.snd[f]
    n = s.link[LK_FRAMES]
    if n >= s.frames.shape[0]:
        s.link[LK_ERR] = SENDER_TABLE_FULL
        return
    fr = s.frames[n]
    fr[FR_FLOW] = f
    fr[FR_LEN] = sn[SN_HEADER_LEN] + size
    fr[FR_SEQ] = seq
    fr[FR_PAYLOAD] = size
    fr[FR_FLAGS] = TCP_FLAG_ACK | (TCP_FLAG_PSH if psh else 0)
    fr[FR_TSVAL] = (sn[SN_TS_BASE] + now // 1_000_000) & U32 if sn[SN_TIMESTAMPS] else -1
    fr[FR_TSECR] = sn[SN_TSECR]
    fr[FR_IP_ID] = sn[SN_IP_ID]
    sn[SN_IP_ID] = (sn[SN_IP_ID] + 1) & 0xFFFF
    s.link[LK_FRAMES] = n + 1


@njit(cache=True, forceinline=True)
def _new_data(s, f, now, size, push):
    """TcpSenders._new_data(): the segments it counts."""
    lk = s.link
    sn = s.snd[f]
    lk[LK_FRAMES_LEFT] -= 1
    seq = sn[SN_SND_NXT]
    start = sn[SN_BYTES_SENT]
    psh = push or (lk[LK_MESSAGES] and (start + size) // lk[LK_SIZE] > start // lk[LK_SIZE])
    sn[SN_SND_NXT] = (seq + size) & U32
    cap = s.flight.shape[1]
    if sn[SN_FL_LEN] >= cap:
        lk[LK_ERR] = SENDER_TABLE_FULL
        return 1
    at = sn[SN_FL_HEAD] + sn[SN_FL_LEN]
    row = s.flight[f, at if at < cap else at - cap]
    row[FL_SEQ] = seq
    row[FL_LEN] = size
    row[FL_PSH] = psh
    sn[SN_FL_LEN] += 1
    sn[SN_BYTES_SENT] += size
    segments = max(1, -(-size // sn[SN_MSS]))
    sn[SN_SEGMENTS] += segments
    if sn[SN_RTO_DUE] < 0:
        _arm_rto(s, f, now)
    _frame(s, f, now, seq, size, psh)
    return segments


@njit(cache=True, forceinline=True)
def _transmit(s, f, now):
    """TcpSenders._transmit(): a retransmission, a probe or new data (no TSO here); the segments it takes."""
    sn = s.snd[f]
    sn[SN_FRAMES] += 1
    if sn[SN_REXMIT_PENDING]:
        sn[SN_REXMIT_PENDING] = 0
        first = s.flight[f, sn[SN_FL_HEAD]]
        sn[SN_RETRANSMITS] += 1
        _frame(s, f, now, first[FL_SEQ], first[FL_LEN], first[FL_PSH])
        return max(1, -(-first[FL_LEN] // sn[SN_MSS]))
    if sn[SN_PROBE_PENDING]:
        sn[SN_PROBE_PENDING] = 0
        room = _usable(sn)
        if room == 0:
            sn[SN_ZW_PROBES] += 1
            if sn[SN_BACKOFF] < TCP_RETRIES2:
                sn[SN_BACKOFF] += 1
            sn[SN_PERSIST_DUE] = now + _backed_off(s.link[LK_RTO_NS], sn[SN_BACKOFF])
            _push(s, sn[SN_PERSIST_DUE], A_PERSIST, f)
            _frame(s, f, now, (sn[SN_SND_UNA] - 1) & U32, 0, False)
            return 1
        sn[SN_WINDOW_PROBES] += 1
        sn[SN_BACKOFF] = 0
        return _new_data(s, f, now, min(room, _next_len(sn)), True)
    return _new_data(s, f, now, _next_len(sn), False)


@njit(cache=True, forceinline=True)
def _sender_slot(s, now):
    """TcpSenders.slot(): the next flow (round robin) with something to send sends one frame: its flow, or -1
    when nobody can send."""
    lk = s.link
    lk[LK_SLOT_PENDING] = 0
    if lk[LK_STOPPED]:
        return -1
    n = lk[LK_FLOWS]
    for turn in range(n):
        f = (lk[LK_NEXT_TURN] + turn) % n
        _catch_up(s, f, now)
        sn = s.snd[f]
        if sn[SN_STARTED] and (sn[SN_REXMIT_PENDING] or sn[SN_PROBE_PENDING]
                               or (lk[LK_FRAMES_LEFT] > 0 and _fits(sn))):
            lk[LK_NEXT_TURN] = (lk[LK_NEXT_TURN] + turn + 1) % n
            segments = _transmit(s, f, now)
            lk[LK_LINK_FREE] = max(lk[LK_LINK_FREE], now * lk[LK_LINK_UNIT]) + lk[LK_PERIOD_UNITS] * segments
            _kick(s, now)
            return f
    return -1


# -- the senders driven call by call (tests: tests/test_fast_tcp.py) ----------------------------------------------

#: _sender_replay()'s calls: [kind, time, flow, a, b, c]: start (right edge a, window scale b), write, ack (ack
#: a, raw window b, TSval c or -1), timer (action a), stop, slot
C_START, C_WRITE, C_ACK, C_TIMER, C_STOP, C_SLOT = range(6)


@njit(cache=True, entry=True)
def _sender_replay(s, calls, out, snd_snap, link_snap):
    """Each call on the senders; out[i] = the flow a slot sent from (-1: none); the senders' rows and the link
    after it in snd_snap[i] and link_snap[i]."""
    for i in range(calls.shape[0]):
        kind, now, f = calls[i, 0], calls[i, 1], calls[i, 2]
        out[i] = -1
        if kind == C_START:
            _sender_start(s, f, now, calls[i, 3], calls[i, 4])
        elif kind == C_WRITE:
            _sender_write(s, f, now)
        elif kind == C_ACK:
            _sender_ack(s, f, now, calls[i, 3], calls[i, 4], calls[i, 5])
        elif kind == C_TIMER:
            _sender_timer(s, calls[i, 3], f, now)
        elif kind == C_STOP:
            _sender_stop(s, now)
        else:
            out[i] = _sender_slot(s, now)
        for g in range(s.snd.shape[0]):
            for col in range(s.snd.shape[1]):
                snd_snap[i, g, col] = s.snd[g, col]
        for col in range(s.link.shape[0]):
            link_snap[i, col] = s.link[col]
        if s.link[LK_ERR]:
            return i
    return calls.shape[0]
