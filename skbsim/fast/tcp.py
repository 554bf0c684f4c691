"""The fast engine's TCP receiver, compiled: a socket's scalars as a row of TcpSocks.sk, its receive queue.

One function per function of the model's receive side (skbsim/net/ipv4/tcp.py, tcp_input.py, tcp_output.py,
tcp_timer.py, net/core_sock.py), with the same name and a leading underscore; the integer formulas are the
model's own plain functions, compiled by skbsim/fast/rules.py.  ``t`` is the TcpSocks record, ``f`` the flow
(its row), ``sk`` that row (t.sk[f]), ``tc`` t.tc (the run's constants), ``cbs`` the SkbCb record's array.

An skb here is a row of SKB_* columns (state.py) with the RQ_* ones (its frags, tailroom, head fragment and
SKB_TRUESIZE(end)); the segment being received is one too, its skb->len SKB_HLEN + SKB_DLEN (data at the TCP
header as tcp_v4_rcv() sees it).  Moving pages between skbs and freeing them is the caller's: a coalesced
segment is returned as such, and what a step freed (a read's skbs, after sock_rfree(); what the out-of-order
queue dropped or coalesced; a stolen head) is listed in t.eaten, in order.

Memory pressure (tcp_try_rmem_schedule()'s pruning and collapsing) is skbsim/fast/tcp_pressure.py's: it
allocates and frees, so the segment's functions take the Kernel record k too (None in a replay).  What the
model does and this module does not follow yet (the backlog, which no run fills) sets tc[TC_ERR] (TCP_WHY
says what): the caller hands the run to the reference engine.
"""

from __future__ import annotations

from skbsim.fast.layout import njit
from skbsim.fast.rules import _comp_sack_delay_ns
from skbsim.fast.state import (
    SKB_FIELDS, TC_COMP_SACK_DELAY_NS, TC_COMP_SACK_NR, TC_COMP_SACK_PCT, TC_OFO_MEASURE, TC_R_COMP_SACK,
    TS_COMP_RCV_NXT, TS_DUP_ACK, TS_NUM_SACKS, TS_OFO_HEAD, TS_SACK_OK, TS_SOCKET,
)
from skbsim.fast.rules import (
    _grow_window_increment, _jiffies_at, _jiffy_start_us, _rcv_rtt_update_value,
    _rcvbuf_grow_value, _rcvbuf_rcvmem, _rcvbuf_space_from_win, _scaling_ratio_of, _select_window_pressure,
    _select_window_values, _sk_mem_pages, _tcp_mem_reclaimable,
    _tcp_receive_window_of, _tcp_set_window_clamp_values, _truesize_adjust_value, _usecs_to_jiffies,
    _win_from_space_adv, _win_from_space_ratio,
)
from skbsim.fast.state import (
    ACK_FLOW, ACK_SEQ, ACK_TSVAL, ACK_WINDOW, CB_ACK_SEQ, CB_DOFF, CB_END_SEQ, CB_GSO_SIZE, CB_SEQ, CB_TCP_FLAGS,
    CB_TSECR, CB_TSVAL, CB_WINDOW, RQ_END_TS, RQ_FIELDS, RQ_HEAD_FRAG, RQ_NR_FRAGS, RQ_PP_RECYCLE, RQ_TAILROOM,
    SKB_DLEN, SKB_HLEN, SKB_OBJ, SKB_TS,
    TC_ACKS, TC_ADV_WIN_SCALE, TC_EATEN, TC_ERR, TC_HEAD_STRUCT, TC_HZ, TC_LOW_RTT,
    TC_MAX_SKB_FRAGS, TC_MIN_RCVBUF, TC_MODERATE_RCVBUF, TC_PAGE_SIZE, TC_RMEM2, TC_R_NOMEM,
    TC_R_RTT_TS, TC_R_RTT_UPDATE, TC_R_SCALING_CLAMP, TC_R_SEQUENCE, TC_R_SPACE, TS_ACK_ATO, TS_ACK_LAST_SEG,
    TS_ACK_LRCVTIME, TS_ACK_PENDING, TS_ACK_PINGPONG, TS_ACK_QUICK, TS_ACK_RCV_MSS, TS_ACK_TIMEOUT, TS_ADVMSS,
    TS_COMPRESSED_ACK, TS_COMP_TIMER, TS_COPIED_SEQ, TS_DELACK_MAX, TS_DELACK_PENDING, TS_DROPS, TS_FWD,
    TS_HEADER_LEN, TS_LAST_TSVAL, TS_MEM_PAGES, TS_MIB, TS_MSTAMP, TS_NOW_US, TS_OFO_LEN, TS_PRED, TS_RCVBUF,
    TS_RCVLOWAT, TS_RCVMEM, TS_RCVQ_SEQ, TS_RCVQ_SPACE, TS_RCVQ_TIME, TS_RCV_MWND_SEQ, TS_RCV_NXT,
    TS_RCV_SSTHRESH, TS_RCV_TSECR, TS_RCV_TSVAL, TS_RCV_WND, TS_RCV_WSCALE, TS_RCV_WUP, TS_RMEM, TS_RQ_HEAD,
    TS_RQ_LEN, TS_RTO, TS_RTT_LAST_TSECR, TS_RTT_SEQ, TS_RTT_TIME, TS_RTT_US, TS_SAW_TSTAMP, TS_SCALING_RATIO,
    TS_SND_NXT, TS_SND_WND, TS_SND_WSCALE, TS_SRTT, TS_TSTAMP_OK, TS_WINDOW_CLAMP, TS_TS_OFFSET, TS_TS_RECENT,
    TS_USERLOCKS,
)
from skbsim.net.core_sock import SOCK_RCVBUF_LOCK
from skbsim.net.ipv4.tcp import (
    ICSK_ACK_NOMEM, ICSK_ACK_NOW, ICSK_ACK_PUSHED, ICSK_ACK_PUSHED2, ICSK_ACK_SCHED, ICSK_ACK_TIMER, TCPEXT,
    TCPHDR_ACK, TCPHDR_PSH, TCP_MAX_QUICKACKS, TCP_MIN_MSS, TCP_MSS_DEFAULT, TCP_HEADER, U16_MAX,
)
from skbsim.net.ipv4.tcp_input import (
    TCP_FASTRETRANS_THRESH, SPACE_DOUBLE, SPACE_FROM_WIN, SPACE_RCVBUF_GROW_LOW_RTT, SPACE_RCVMEM, TCP_REMNANT,
)
from skbsim.profile import FEATURES

U32 = 0xFFFFFFFF
#: the incoming segment's row is a queued skb's (whether its head is a page fragment, SKB_TRUESIZE(end) kept too)
SG_HEAD_FRAG, SG_END_TS, SG_FIELDS = RQ_HEAD_FRAG, RQ_END_TS, RQ_FIELDS
#: tc[TC_ERR]: what made the run leave this module's ground (TCP_WHY says it in words)
TCP_UNMODELLED, TCP_PRUNE, TCP_OFO, TCP_SACK, TCP_TABLE, TCP_WARN, TCP_LENGTH = range(1, 8)
TCP_WHY = {
    TCP_UNMODELLED: "a TCP receiver reached a state the fast engine does not follow",
    TCP_PRUNE: "a TCP receiver came under memory pressure outside a run (a replay without a kernel)",
    TCP_OFO: "a TCP receiver's out-of-order queue reached a state the fast engine does not follow",
    TCP_SACK: "a TCP receiver compressed SACKs (not compiled yet)",
    TCP_TABLE: "a table of the fast engine's TCP records filled up",
    TCP_WARN: "skb_try_coalesce() warned (a truesize below len), a warning the fast engine does not report",
    TCP_LENGTH: "a frame length to read from the model first",
}
#: -- TCP pressure --: a receiver came under memory pressure in a run without the heads tcp_collapse()'s new skbs
#: take (tcp_engine.TcpRun.heads: every run with a socket per flow has them; kept as the loop's own check)
TCP_NAPI_PRUNE = 8
TCP_WHY[TCP_NAPI_PRUNE] = ("a TCP receiver came under memory pressure in a run without tcp_collapse()'s heads "
                           "(the fast engine's tables)")
# -- TCP capture --: a capture's flow met its first segment before the model set its receiver up (the loop goes
# back to where its call started and makes it again with the receiver: skbsim/fast/tcp_capture.py)
TCP_SETUP = 9
TCP_WHY[TCP_SETUP] = "a capture's TCP flow to set up by the model first"
#: a replay without a kernel (_tcp_replay()) reached skb_condense() of paged data (tcp_pressure._skb_condense())
TCP_CONDENSE = 10
TCP_WHY[TCP_CONDENSE] = ("a TCP receiver replayed without a kernel condensed paged data on its out-of-order queue "
                         "(pages to give back)")
#: a NAPI driver's skb whose head lacks some of its IP and TCP headers (idpf's header split of a frame the NIC did not
#: split, above L1_CACHE_BYTES: idpf_rx_hsplit_wa() copies its Ethernet header only), which tcp_napi._napi_segment()
#: pulls from frag 0 for virtio_net only
TCP_PULL = 11
TCP_WHY[TCP_PULL] = ("a NAPI driver's skb without all of its IP and TCP headers in its head, whose pull from its frags "
                     "(ip_rcv_core(), tcp_v4_rcv()) the fast engine does not follow but for virtio_net's")
#: TcpExt counters, as columns of a socket's row
MIB_TCPRCVCOALESCE = TS_MIB + TCPEXT.index("TCPRcvCoalesce")
MIB_TCPZEROWINDOWDROP = TS_MIB + TCPEXT.index("TCPZeroWindowDrop")
MIB_TCPWANTZEROWINDOWADV = TS_MIB + TCPEXT.index("TCPWantZeroWindowAdv")
MIB_TCPTOZEROWINDOWADV = TS_MIB + TCPEXT.index("TCPToZeroWindowAdv")
MIB_TCPFROMZEROWINDOWADV = TS_MIB + TCPEXT.index("TCPFromZeroWindowAdv")
MIB_TCPHPHITS = TS_MIB + TCPEXT.index("TCPHPHits")
MIB_DELAYEDACKS = TS_MIB + TCPEXT.index("DelayedACKs")
MIB_TCPBEYONDWINDOW = TS_MIB + TCPEXT.index("TCPBeyondWindow")
MIB_TCPRCVQDROP = TS_MIB + TCPEXT.index("TCPRcvQDrop")
MIB_TCPOFOQUEUE = TS_MIB + TCPEXT.index("TCPOFOQueue")
MIB_TCPOFODROP = TS_MIB + TCPEXT.index("TCPOFODrop")  # -- TCP pressure --
#: t.eaten's columns after the skb's: how the caller frees it (EAT_STOLEN: its head went to the receive queue's
#: row EAT_TO as a frag, only its sk_buff is freed), and that row
EAT_HOW, EAT_TO = SKB_FIELDS, SKB_FIELDS + 1
EAT_READ, EAT_FREE, EAT_STOLEN, EAT_FRAG = 0, 1, 2, 3  # EAT_FRAG: the head to row EAT_TO, nothing freed yet
EAT_FRAGS = 4  # -- TCP through NAPI drivers --: its frags to row EAT_TO, its head and sk_buff freed


def _code(feature: str, value: str) -> int:
    return FEATURES[feature][1].index(value)


# rule codes the compiled code compares with (skbsim.net.ipv4.tcp_input.rule_code())
CLAMP_NONE, CLAMP_WRITE = _code("tcp_scaling_ratio_clamp", "none"), _code("tcp_scaling_ratio_clamp", "write")
CLAMP_SET = _code("tcp_scaling_ratio_clamp", "set_window_clamp")
NOMEM_NONE, NOMEM_STORED = _code("tcp_nomem_ack", "none"), _code("tcp_nomem_ack", "zero_window_stored")
SEQ_SEQ, SEQ_MAX_WND = _code("tcp_sequence_check", "seq"), _code("tcp_sequence_check", "end_seq_max_wnd")
TS_MS, TS_US = _code("tcp_rcv_rtt_ts", "ms"), _code("tcp_rcv_rtt_ts", "us")
#: verdicts of _tcp_rcv_established(): queued, coalesced (the caller frees the segment, its head stolen or
#: not: stolen by the receive queue's tail, or V_OFO_STOLEN by the out-of-order queue's), dropped (the caller
#: frees it; reason in the return's high bits), no data
V_QUEUED, V_COALESCED, V_COALESCED_STOLEN, V_DROPPED, V_NO_DATA, V_OFO_STOLEN = range(6)
#: -- TCP through NAPI drivers --: coalesced without linear data (skb_try_coalesce()'s frags moved: the caller moves
#: the pages and frees the rest, its head and sk_buff): into the receive queue's tail (eaten EAT_FRAGS), or the
#: out-of-order queue's
V_COALESCED_FRAGS, V_OFO_FRAGS = 6, 7
#: the drop reasons _tcp_rcv_established() reports (V_DROPPED + 8 * reason)
(R_ZEROWINDOW, R_PROTO_MEM, R_OLD_DATA, R_OVERWINDOW, R_OLD_SEQUENCE, R_INVALID_SEQUENCE,
 R_INVALID_END_SEQUENCE) = range(7)
DROP_REASONS = ("TCP_ZEROWINDOW", "PROTO_MEM", "TCP_OLD_DATA", "TCP_OVERWINDOW", "TCP_OLD_SEQUENCE",
                "TCP_INVALID_SEQUENCE", "TCP_INVALID_END_SEQUENCE")


@njit(cache=True, forceinline=True)
def _before(seq1, seq2):
    """include/net/tcp.h: before()."""
    return ((seq1 - seq2) & U32) >= 0x80000000


# -- window <-> memory --------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _tcp_win_from_space(tc, sk, space):
    """tcp_input.tcp_win_from_space()."""
    if sk[TS_SCALING_RATIO]:
        return _win_from_space_ratio(sk[TS_SCALING_RATIO], space)
    return _win_from_space_adv(tc[TC_ADV_WIN_SCALE], space)


@njit(cache=True, forceinline=True)
def _tcp_space(tc, sk):
    """tcp_input.tcp_space() (the backlog is always empty here: no segment meets the lock held)."""
    return _tcp_win_from_space(tc, sk, sk[TS_RCVBUF] - sk[TS_RMEM])


@njit(cache=True, forceinline=True)
def _tcp_receive_window(sk):
    return _tcp_receive_window_of(sk[TS_RCV_WUP], sk[TS_RCV_WND], sk[TS_RCV_NXT])


@njit(cache=True, forceinline=True)
def _jiffies(tc, sk):
    """tcp_jiffies32(): the receiver's jiffies clock (net_ns.jiffies())."""
    return _jiffies_at(sk[TS_NOW_US], tc[TC_HZ])


# -- memory: net/core_sock.py -------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _sk_rmem_schedule(tc, sk, size):
    """core_sock.sk_rmem_schedule() (and sk_forced_mem_schedule(): the same without limits here):
    forward-allocate the whole pages size needs beyond sk_forward_alloc."""
    delta = size - sk[TS_FWD]
    if delta > 0:
        pages = _sk_mem_pages(delta, tc[TC_PAGE_SIZE])
        sk[TS_FWD] += pages * tc[TC_PAGE_SIZE]
        sk[TS_MEM_PAGES] += pages


@njit(cache=True, forceinline=True)
def _sk_mem_reclaim(tc, sk):
    """core_sock.sk_mem_reclaim()."""
    amount = _tcp_mem_reclaimable(sk[TS_FWD], tc[TC_PAGE_SIZE])
    if amount:
        sk[TS_FWD] -= amount
        sk[TS_MEM_PAGES] -= amount // tc[TC_PAGE_SIZE]


@njit(cache=True, forceinline=True)
def _sock_rfree(tc, sk, truesize):
    """core_sock.sock_rfree(): rmem and the forward allocation back (sk_mem_uncharge()), then reclaim."""
    sk[TS_RMEM] -= truesize
    sk[TS_FWD] += truesize
    _sk_mem_reclaim(tc, sk)


# -- tcp_output.py: the window offered, ACKs ------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def __tcp_select_window(tc, sk):
    """tcp_output.__tcp_select_window()."""
    free_space = _tcp_space(tc, sk)
    allowed_space = _tcp_win_from_space(tc, sk, sk[TS_RCVBUF])
    if _select_window_pressure(free_space, sk[TS_WINDOW_CLAMP], allowed_space):
        sk[TS_ACK_QUICK] = 0
    window, _ = _select_window_values(sk[TS_ACK_RCV_MSS], free_space, allowed_space, sk[TS_WINDOW_CLAMP],
                                      sk[TS_RCV_SSTHRESH], sk[TS_RCV_WSCALE], sk[TS_RCV_WND])
    return window


@njit(cache=True, forceinline=True)
def _tcp_update_max_rcv_wnd_seq(sk):
    """tcp.tcp_update_max_rcv_wnd_seq()."""
    wre = (sk[TS_RCV_WUP] + sk[TS_RCV_WND]) & U32
    if _before(sk[TS_RCV_MWND_SEQ], wre):
        sk[TS_RCV_MWND_SEQ] = wre


@njit(cache=True, forceinline=True)
def _tcp_select_window(tc, sk):
    """tcp_output.tcp_select_window(): the raw window field of an ACK."""
    old_win = sk[TS_RCV_WND]
    if sk[TS_ACK_PENDING] & ICSK_ACK_NOMEM and tc[TC_R_NOMEM] != NOMEM_NONE:
        if tc[TC_R_NOMEM] == NOMEM_STORED:
            sk[TS_PRED] = -1
            sk[TS_RCV_WND] = 0
            sk[TS_RCV_WUP] = sk[TS_RCV_NXT]
            _tcp_update_max_rcv_wnd_seq(sk)
        return 0
    cur_win = _tcp_receive_window(sk)
    new_win = __tcp_select_window(tc, sk)
    wscale = sk[TS_RCV_WSCALE]
    if new_win < cur_win:
        if new_win == 0:
            sk[MIB_TCPWANTZEROWINDOWADV] += 1
        unit = 1 << wscale
        new_win = (cur_win + unit - 1) & ~(unit - 1)
    sk[TS_RCV_WND] = new_win
    sk[TS_RCV_WUP] = sk[TS_RCV_NXT]
    _tcp_update_max_rcv_wnd_seq(sk)
    new_win = min(new_win, U16_MAX << wscale) >> wscale
    if new_win == 0:
        sk[TS_PRED] = -1
        if old_win:
            sk[MIB_TCPTOZEROWINDOWADV] += 1
    elif old_win == 0:
        sk[MIB_TCPFROMZEROWINDOWADV] += 1
    return new_win


@njit(cache=True, forceinline=True)
def _tcp_send_ack(t, f):
    """tcp_output.tcp_send_ack(): the ACK into t.acks (flow, ack, window, TSval or -1), then
    tcp_event_ack_sent(): compressed ACKs end, a quick ACK used up (tcp_dec_quickack_mode()), the timer off."""
    tc = t.tc
    sk = t.sk[f]
    window = _tcp_select_window(tc, sk)
    tsval = -1
    if sk[TS_TSTAMP_OK]:
        tsval = (sk[TS_NOW_US] // 1000 + sk[TS_TS_OFFSET]) & U32
        sk[TS_LAST_TSVAL] = tsval
    n = tc[TC_ACKS]
    if n >= t.acks.shape[0]:
        tc[TC_ERR] = TCP_TABLE
        return
    t.acks[n, ACK_FLOW] = f
    t.acks[n, ACK_SEQ] = sk[TS_RCV_NXT]
    t.acks[n, ACK_WINDOW] = window
    t.acks[n, ACK_TSVAL] = tsval
    tc[TC_ACKS] = n + 1
    if sk[TS_COMPRESSED_ACK]:
        sk[TS_COMPRESSED_ACK] = 0
        sk[TS_COMP_TIMER] = -1
    if sk[TS_ACK_QUICK]:
        pkts = 1 if sk[TS_ACK_PENDING] & ICSK_ACK_SCHED else 0
        if pkts >= sk[TS_ACK_QUICK]:
            sk[TS_ACK_QUICK] = 0
            sk[TS_ACK_ATO] = tc[TC_HZ] // 25  # TCP_ATO_MIN
        else:
            sk[TS_ACK_QUICK] -= pkts
    sk[TS_ACK_PENDING] = 0
    sk[TS_DELACK_PENDING] = 0


@njit(cache=True, forceinline=True)
def _tcp_send_delayed_ack(t, f):
    """tcp_output.tcp_send_delayed_ack(): arm the delayed-ACK timer, or ACK now when the armed one is due."""
    tc = t.tc
    sk = t.sk[f]
    hz = tc[TC_HZ]
    ato = sk[TS_ACK_ATO]
    if ato > hz // 25:
        max_ato = hz // 2
        if sk[TS_ACK_PINGPONG] or sk[TS_ACK_PENDING] & ICSK_ACK_PUSHED:
            max_ato = hz // 5
        if sk[TS_SRTT]:
            rtt = max(_usecs_to_jiffies(sk[TS_SRTT] >> 3, hz), hz // 25)
            if rtt < max_ato:
                max_ato = rtt
        ato = min(ato, max_ato)
    ato = min(ato, sk[TS_DELACK_MAX])
    now = _jiffies(tc, sk)
    timeout = now + ato
    if sk[TS_ACK_PENDING] & ICSK_ACK_TIMER:
        if sk[TS_ACK_TIMEOUT] <= now + (ato >> 2):
            _tcp_send_ack(t, f)
            return
        if timeout >= sk[TS_ACK_TIMEOUT]:
            timeout = sk[TS_ACK_TIMEOUT]
    sk[TS_ACK_PENDING] |= ICSK_ACK_SCHED | ICSK_ACK_TIMER
    sk[TS_ACK_TIMEOUT] = timeout
    sk[TS_DELACK_PENDING] = 1


@njit(cache=True, forceinline=True)
def _next_timer_us(t, f):
    """tcp_timer.next_timer_us(): when the receiver's next timer is due (-1: none)."""
    sk = t.sk[f]
    due = _jiffy_start_us(sk[TS_ACK_TIMEOUT], t.tc[TC_HZ]) if sk[TS_DELACK_PENDING] else -1
    compressed = sk[TS_COMP_TIMER]
    if compressed >= 0 and (due < 0 or compressed < due):
        due = compressed
    return due


@njit(cache=True)
def _run_timers(t, f):
    """tcp_timer.run_timers() at the receiver's clock: tcp_delack_timer() and its handler (never deferred:
    nothing holds the lock between two events of a run)."""
    tc = t.tc
    sk = t.sk[f]
    if 0 <= sk[TS_COMP_TIMER] <= sk[TS_NOW_US]:  # tcp_compressed_ack_kick()
        sk[TS_COMP_TIMER] = -1
        if sk[TS_COMPRESSED_ACK]:
            sk[TS_COMPRESSED_ACK] -= 1
            sk[TS_MSTAMP] = sk[TS_NOW_US]
            _tcp_send_ack(t, f)
    if not (sk[TS_DELACK_PENDING] and _jiffy_start_us(sk[TS_ACK_TIMEOUT], tc[TC_HZ]) <= sk[TS_NOW_US]):
        return
    sk[TS_DELACK_PENDING] = 0
    if not sk[TS_ACK_PENDING] & ICSK_ACK_TIMER and not sk[TS_COMPRESSED_ACK]:
        return
    if sk[TS_COMPRESSED_ACK]:  # the delayed-ACK timer sends the compressed ACKs
        sk[TS_MSTAMP] = sk[TS_NOW_US]
        sk[TS_COMPRESSED_ACK] = 0
        _tcp_send_ack(t, f)
        return
    if sk[TS_ACK_TIMEOUT] > _jiffies(tc, sk):
        sk[TS_DELACK_PENDING] = 1
        return
    sk[TS_ACK_PENDING] &= ~ICSK_ACK_TIMER
    if sk[TS_ACK_PENDING] & ICSK_ACK_SCHED:
        if not sk[TS_ACK_PINGPONG]:
            sk[TS_ACK_ATO] = min(sk[TS_ACK_ATO] << 1, sk[TS_RTO])
        sk[TS_MSTAMP] = sk[TS_NOW_US]
        _tcp_send_ack(t, f)
        sk[MIB_DELAYEDACKS] += 1


# -- tcp_input.py: per-segment accounting ---------------------------------------------------------------------


@njit(cache=True)
def _tcp_set_window_clamp(tc, sk, val):
    """tcp.tcp_set_window_clamp()."""
    clamp, ssthresh, shrunk = _tcp_set_window_clamp_values(sk[TS_WINDOW_CLAMP], sk[TS_RCV_WND],
                                                           sk[TS_RCV_SSTHRESH], val, tc[TC_MIN_RCVBUF])
    sk[TS_WINDOW_CLAMP] = clamp
    sk[TS_RCV_SSTHRESH] = ssthresh
    if shrunk:
        sk[TS_RCV_SSTHRESH] = min(sk[TS_RCV_SSTHRESH], clamp)


@njit(cache=True, forceinline=True)
def _tcp_measure_rcv_mss(tc, sk, length, skb_len, truesize, flags, doff):
    """tcp_input.tcp_measure_rcv_mss() of a segment: length its gso_size or len, skb_len its len."""
    lss = sk[TS_ACK_LAST_SEG]
    sk[TS_ACK_LAST_SEG] = 0
    if length >= sk[TS_ACK_RCV_MSS]:
        if sk[TS_SCALING_RATIO] and length != sk[TS_ACK_RCV_MSS]:
            old_ratio = sk[TS_SCALING_RATIO]
            sk[TS_SCALING_RATIO] = _scaling_ratio_of(skb_len, truesize)
            rule = tc[TC_R_SCALING_CLAMP]
            if old_ratio != sk[TS_SCALING_RATIO] and rule != CLAMP_NONE:
                val = _tcp_win_from_space(tc, sk, sk[TS_RCVBUF])
                if rule == CLAMP_SET:
                    _tcp_set_window_clamp(tc, sk, val)
                else:
                    sk[TS_WINDOW_CLAMP] = val
                if rule != CLAMP_WRITE and sk[TS_WINDOW_CLAMP] < sk[TS_RCVQ_SPACE]:
                    sk[TS_RCVQ_SPACE] = sk[TS_WINDOW_CLAMP]
        sk[TS_ACK_RCV_MSS] = min(length, sk[TS_ADVMSS])
        if flags & TCPHDR_PSH:
            sk[TS_ACK_PENDING] |= ICSK_ACK_PUSHED
        return
    length += doff
    if length >= TCP_MSS_DEFAULT + TCP_HEADER or (length >= TCP_MIN_MSS + TCP_HEADER and not flags & TCP_REMNANT):
        length -= sk[TS_HEADER_LEN]
        sk[TS_ACK_LAST_SEG] = length
        if length == lss:
            sk[TS_ACK_RCV_MSS] = length
            return
    if sk[TS_ACK_PENDING] & ICSK_ACK_PUSHED:
        sk[TS_ACK_PENDING] |= ICSK_ACK_PUSHED2
    sk[TS_ACK_PENDING] |= ICSK_ACK_PUSHED


@njit(cache=True, forceinline=True)
def _tcp_incr_quickack(sk, max_quickacks):
    """tcp_input.tcp_incr_quickack()."""
    quickacks = sk[TS_RCV_WND] // (2 * sk[TS_ACK_RCV_MSS])
    if quickacks == 0:
        quickacks = 2
    quickacks = min(quickacks, max_quickacks)
    if quickacks > sk[TS_ACK_QUICK]:
        sk[TS_ACK_QUICK] = quickacks


@njit(cache=True, forceinline=True)
def _tcp_grow_window(tc, sk, skb, length, adjust):
    """tcp_input.tcp_grow_window() of an skb of length bytes (its row: truesize, headlen, SKB_TRUESIZE(end))."""
    room = min(sk[TS_WINDOW_CLAMP], _tcp_space(tc, sk)) - sk[TS_RCV_SSTHRESH]
    if room <= 0:
        return
    headlen = skb[SKB_HLEN]
    truesize = _truesize_adjust_value(adjust, skb[SKB_TS], length, headlen, skb[SG_END_TS])
    incr = _grow_window_increment(_tcp_win_from_space(tc, sk, truesize), length,
                                  _tcp_win_from_space(tc, sk, tc[TC_RMEM2]), sk[TS_RCV_SSTHRESH], sk[TS_ADVMSS],
                                  sk[TS_ACK_RCV_MSS])
    if incr:
        incr = max(incr, 2 * length)
        sk[TS_RCV_SSTHRESH] += min(room, incr)
        sk[TS_ACK_QUICK] |= 1


@njit(cache=True, forceinline=True)
def _tcp_rcv_rtt_update(tc, sk, sample, win_dep):
    """tcp_input.tcp_rcv_rtt_update()."""
    sk[TS_RTT_US] = _rcv_rtt_update_value(tc[TC_R_RTT_UPDATE], sk[TS_RTT_US], sample, win_dep,
                                          sk[TS_RCV_NXT] == sk[TS_COPIED_SEQ]) & U32


@njit(cache=True, forceinline=True)
def _tcp_rcv_rtt_measure(tc, sk):
    """tcp_input.tcp_rcv_rtt_measure(): without timestamps, the time one window of data took."""
    if sk[TS_RTT_TIME]:
        if _before(sk[TS_RCV_NXT], sk[TS_RTT_SEQ]):
            return
        delta_us = (sk[TS_MSTAMP] - sk[TS_RTT_TIME]) & U32
        _tcp_rcv_rtt_update(tc, sk, delta_us if delta_us else 1, True)
    sk[TS_RTT_SEQ] = (sk[TS_RCV_NXT] + sk[TS_RCV_WND]) & U32
    sk[TS_RTT_TIME] = sk[TS_MSTAMP]


@njit(cache=True, forceinline=True)
def _tcp_rcv_rtt_measure_ts(tc, sk, payload):
    """tcp_input.tcp_rcv_rtt_measure_ts() of a segment of payload bytes (end_seq - seq)."""
    if not sk[TS_SAW_TSTAMP] or sk[TS_RCV_TSECR] == sk[TS_RTT_LAST_TSECR]:
        return
    sk[TS_RTT_LAST_TSECR] = sk[TS_RCV_TSECR]
    if payload < sk[TS_ACK_RCV_MSS]:
        return
    delta = ((sk[TS_NOW_US] // 1000 + sk[TS_TS_OFFSET]) - sk[TS_RCV_TSECR]) & U32
    if delta >= 0x80000000:
        return
    rule = tc[TC_R_RTT_TS]
    if rule == TS_MS:
        _tcp_rcv_rtt_update(tc, sk, (delta if delta else 1) * 1000, False)
    elif delta or rule == TS_US:
        _tcp_rcv_rtt_update(tc, sk, delta * 1000, False)


@njit(cache=True, forceinline=True)
def _raise_rcvbuf(tc, sk, rcvbuf):
    if rcvbuf > sk[TS_RCVBUF]:
        sk[TS_RCVBUF] = rcvbuf
        sk[TS_WINDOW_CLAMP] = _tcp_win_from_space(tc, sk, rcvbuf)


@njit(cache=True)
def _tcp_rcvbuf_grow(tc, sk, newval, oldval, ooo):
    """tcp_input.tcp_rcvbuf_grow() (6.16+) with the out-of-order queue's span ooo: rcvq_space.space becomes
    newval, sk_rcvbuf grows unless autotuning is off or SO_RCVBUF locked it."""
    sk[TS_RCVQ_SPACE] = newval
    if not tc[TC_MODERATE_RCVBUF] or sk[TS_USERLOCKS] & SOCK_RCVBUF_LOCK:
        return
    _raise_rcvbuf(tc, sk, _rcvbuf_grow_value(tc[TC_R_SPACE], newval, oldval, ooo, sk[TS_SCALING_RATIO], tc[TC_RMEM2],
                                             sk[TS_RTT_US] >> 3, tc[TC_LOW_RTT]))


@njit(cache=True, forceinline=True)
def _tcp_rcv_space_adjust(tc, sk, ooo):
    """tcp_input.tcp_rcv_space_adjust() (ooo: the out-of-order queue's span, for tcp_rcvbuf_grow())."""
    rule = tc[TC_R_SPACE]
    if rule != SPACE_RCVBUF_GROW_LOW_RTT:
        sk[TS_MSTAMP] = sk[TS_NOW_US]
    elif not sk[TS_RTT_US]:
        return
    elapsed = (sk[TS_MSTAMP] - sk[TS_RCVQ_TIME]) & U32
    if elapsed < (sk[TS_RTT_US] >> 3) or sk[TS_RTT_US] == 0:
        return
    copied = (sk[TS_COPIED_SEQ] - sk[TS_RCVQ_SEQ]) & U32
    if rule != SPACE_RCVMEM and rule != SPACE_FROM_WIN:
        copied -= (sk[TS_RCV_NXT] - sk[TS_COPIED_SEQ]) & U32
    space = sk[TS_RCVQ_SPACE]
    if copied > space:
        locked = not tc[TC_MODERATE_RCVBUF] or sk[TS_USERLOCKS] & SOCK_RCVBUF_LOCK
        if rule >= SPACE_DOUBLE:
            # ('double' sets rcvq_space.space first, so tcp_rcvbuf_grow()'s oldval is copied: its rule ignores it)
            _tcp_rcvbuf_grow(tc, sk, copied, space, ooo)
        else:
            if not locked:
                if rule == SPACE_RCVMEM:
                    rcvbuf = _rcvbuf_rcvmem(copied, space, sk[TS_ADVMSS], sk[TS_RCVMEM], tc[TC_RMEM2])
                else:
                    rcvbuf = _rcvbuf_space_from_win(copied, space, sk[TS_ADVMSS], sk[TS_SCALING_RATIO], tc[TC_RMEM2])
                _raise_rcvbuf(tc, sk, rcvbuf)
            sk[TS_RCVQ_SPACE] = copied
    sk[TS_RCVQ_SEQ] = sk[TS_COPIED_SEQ]
    sk[TS_RCVQ_TIME] = sk[TS_MSTAMP]


@njit(cache=True, forceinline=True)
def _tcp_event_data_recv(tc, sk, skb, cb, length):
    """tcp_input.tcp_event_data_recv() of new in-order data (skb: the segment's row, cb its TCP_SKB_CB)."""
    sk[TS_ACK_PENDING] |= ICSK_ACK_SCHED
    gso = cb[CB_GSO_SIZE]
    _tcp_measure_rcv_mss(tc, sk, gso if gso else length, length, skb[SKB_TS], cb[CB_TCP_FLAGS], cb[CB_DOFF])
    _tcp_rcv_rtt_measure(tc, sk)
    now = _jiffies(tc, sk)
    ato_min = tc[TC_HZ] // 25
    if not sk[TS_ACK_ATO]:
        _tcp_incr_quickack(sk, TCP_MAX_QUICKACKS)
        sk[TS_ACK_ATO] = ato_min
    else:
        m = (now - sk[TS_ACK_LRCVTIME]) & U32
        if m >= 0x80000000:
            m -= 1 << 32
        if m <= ato_min // 2:
            sk[TS_ACK_ATO] = (sk[TS_ACK_ATO] >> 1) + ato_min // 2
        elif m < sk[TS_ACK_ATO]:
            sk[TS_ACK_ATO] = min((sk[TS_ACK_ATO] >> 1) + m, sk[TS_RTO])
        elif m > sk[TS_RTO]:
            _tcp_incr_quickack(sk, TCP_MAX_QUICKACKS)
    sk[TS_ACK_LRCVTIME] = now
    if length >= 128:
        _tcp_grow_window(tc, sk, skb, length, True)


# -- queueing ---------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _skb_try_coalesce(tc, to, frm, length):
    """skbuff.skb_try_coalesce() of frm (length bytes, its header pulled) onto the queued skb to, as far as the
    rows go: (done, stolen, delta); to's row takes the bytes, the truesize and the frag count (the caller moves
    the pages).  No skb here is cloned, none has a frag_list.  A page_pool skb (marked for recycling) and one that
    is not (tcp_collapse()'s) refuse each other before anything is tried, the tailroom copy included: the frags of
    one skb go back by one route (skb_pp_recycle())."""
    if to[RQ_PP_RECYCLE] != frm[RQ_PP_RECYCLE]:
        return False, False, 0
    if to[SKB_DLEN] == 0 and length <= to[RQ_TAILROOM]:  # skb_tailroom(): none once it has paged data
        to[SKB_HLEN] += length
        to[RQ_TAILROOM] -= length
        return True, False, 0
    nr_to = to[RQ_NR_FRAGS]
    nr_frm = frm[RQ_NR_FRAGS]
    stolen = False
    if frm[SKB_HLEN]:
        if nr_to + nr_frm >= tc[TC_MAX_SKB_FRAGS] or not frm[SG_HEAD_FRAG]:
            return False, False, 0
        delta = frm[SKB_TS] - tc[TC_HEAD_STRUCT]
        to[RQ_NR_FRAGS] = nr_to + 1 + nr_frm
        stolen = True
    else:
        if nr_to + nr_frm > tc[TC_MAX_SKB_FRAGS]:
            return False, False, 0
        delta = frm[SKB_TS] - frm[SG_END_TS]
        to[RQ_NR_FRAGS] = nr_to + nr_frm
        frm[RQ_NR_FRAGS] = -1  # its frags are to's (_frags_moved(): the caller moves the pages)
    if delta < length:
        tc[TC_ERR] = TCP_WARN  # the kernel's WARN_ONCE (a warning in the run's JSON)
    to[SKB_TS] += delta
    to[SKB_DLEN] += length
    return True, stolen, delta


@njit(cache=True, forceinline=True)
def _frags_moved(skb):
    """Whether _skb_try_coalesce() moved the skb's frags to another (its frag pages not yet moved)."""
    return skb[RQ_NR_FRAGS] < 0


@njit(cache=True, forceinline=True)
def _tcp_try_coalesce(tc, sk, to, tcb, frm, cb, length):
    """tcp_input.tcp_try_coalesce(): frm (its TCP_SKB_CB cb, length bytes) appended to the queued skb to (tcb)
    when contiguous: the delta charged, TCPRcvCoalesce, to's end_seq, ack_seq and flags.  (done, stolen)."""
    if cb[CB_SEQ] != tcb[CB_END_SEQ]:
        return False, False
    done, stolen, delta = _skb_try_coalesce(tc, to, frm, length)
    if not done:
        return False, False
    sk[TS_RMEM] += delta
    sk[TS_FWD] -= delta
    sk[MIB_TCPRCVCOALESCE] += 1
    tcb[CB_END_SEQ] = cb[CB_END_SEQ]
    tcb[CB_ACK_SEQ] = cb[CB_ACK_SEQ]
    tcb[CB_TCP_FLAGS] |= cb[CB_TCP_FLAGS]
    return True, stolen


@njit(cache=True, forceinline=True)
def _tcp_queue_rcv(t, f, skb, cb, cbs, length):
    """tcp_input.tcp_queue_rcv(): coalesce into the receive queue's tail (tcp_try_coalesce(): TCPRcvCoalesce,
    the delta charged, the tail's end_seq, ack_seq and flags) or append the skb (skb_set_owner_r()); rcv_nxt
    follows.  Returns V_QUEUED, V_COALESCED or V_COALESCED_STOLEN."""
    tc = t.tc
    sk = t.sk[f]
    rq = t.rq[f]
    qcap = rq.shape[0]
    verdict = V_QUEUED
    if sk[TS_RQ_LEN]:
        at = sk[TS_RQ_HEAD] + sk[TS_RQ_LEN] - 1
        tail = rq[at if at < qcap else at - qcap]
        done, stolen = _tcp_try_coalesce(tc, sk, tail, cbs[tail[SKB_OBJ]], skb, cb, length)
        if done:
            verdict = V_COALESCED_STOLEN if stolen else V_COALESCED
            if stolen:  # the head is the tail's frag now; its sk_buff is freed after the step
                _eat(t, skb, EAT_FRAG, at if at < qcap else at - qcap)
            elif _frags_moved(skb):
                _eat(t, skb, EAT_FRAGS, at if at < qcap else at - qcap)
                verdict = V_COALESCED_FRAGS
    sk[TS_RCV_NXT] = cb[CB_END_SEQ] & U32
    if verdict == V_QUEUED:
        if sk[TS_RQ_LEN] >= qcap:
            tc[TC_ERR] = TCP_TABLE
            return verdict
        at = sk[TS_RQ_HEAD] + sk[TS_RQ_LEN]
        row = rq[at if at < qcap else at - qcap]
        for col in range(RQ_FIELDS):
            row[col] = skb[col]
        sk[TS_RQ_LEN] += 1
        sk[TS_RMEM] += skb[SKB_TS]
        sk[TS_FWD] -= skb[SKB_TS]
    return verdict


@njit(cache=True, forceinline=True)
def _tcp_fast_path_check(sk):
    """tcp_input.tcp_fast_path_check(): header prediction back on (tcp_fast_path_on())."""
    if sk[TS_OFO_LEN] == 0 and sk[TS_RCV_WND] and sk[TS_RMEM] < sk[TS_RCVBUF]:
        sk[TS_PRED] = sk[TS_SND_WND] >> sk[TS_SND_WSCALE]


@njit(cache=True)
def _out_of_window(t, f, reason):
    """tcp_data_queue()'s out_of_window: quick-ACK mode (tcp_enter_quickack_mode()), an ACK scheduled, the
    segment dropped (tcp_drop_reason(): sk_drops)."""
    sk = t.sk[f]
    _tcp_incr_quickack(sk, TCP_MAX_QUICKACKS)
    sk[TS_ACK_PINGPONG] = 0
    sk[TS_ACK_ATO] = t.tc[TC_HZ] // 25
    sk[TS_ACK_PENDING] |= ICSK_ACK_SCHED
    sk[TS_DROPS] += 1
    return V_DROPPED + 8 * reason


@njit(cache=True)
def _ooo_span(t, f, cbs):
    """tcp_input._ooo_span(): how far the out-of-order queue's last skb ends past rcv_nxt (0: empty)."""
    sk = t.sk[f]
    if not sk[TS_OFO_LEN]:
        return 0
    oq = t.oq[f]
    at = sk[TS_OFO_HEAD] + sk[TS_OFO_LEN] - 1
    last = oq[at if at < oq.shape[0] else at - oq.shape[0]]
    return (cbs[last[SKB_OBJ], CB_END_SEQ] - sk[TS_RCV_NXT]) & U32


@njit(cache=True)
def _update_sacks(t, f, cbs):
    """tcp_input._update_sacks(): the SACK blocks the out-of-order queue needs, at most 4."""
    sk = t.sk[f]
    if not sk[TS_SACK_OK]:
        sk[TS_NUM_SACKS] = 0
        return
    oq = t.oq[f]
    blocks = 0
    end = 0
    for j in range(sk[TS_OFO_LEN]):
        at = sk[TS_OFO_HEAD] + j
        cb = cbs[oq[at if at < oq.shape[0] else at - oq.shape[0], SKB_OBJ]]
        if j == 0 or _before(end, cb[CB_SEQ]):
            blocks += 1
        if j == 0 or _before(end, cb[CB_END_SEQ]):
            end = cb[CB_END_SEQ]
    sk[TS_NUM_SACKS] = min(blocks, 4)


@njit(cache=True)
def _eat(t, skb, how, to):
    """An skb for the caller to free after this step (EAT_FREE: kfree_skb() on the step's CPU; EAT_READ:
    skb_attempt_defer_free() after a read), in order."""
    tc = t.tc
    n = tc[TC_EATEN]
    if n >= t.eaten.shape[0]:
        tc[TC_ERR] = TCP_TABLE
        return
    for col in range(SKB_FIELDS):
        t.eaten[n, col] = skb[col]
    t.eaten[n, EAT_HOW] = how
    t.eaten[n, EAT_TO] = to
    tc[TC_EATEN] = n + 1


@njit(cache=True)
def _tcp_ofo_queue(t, f, cbs):
    """tcp_input.tcp_ofo_queue(): what the new data made in order moves from the out-of-order queue into the
    receive queue (coalesced into its tail when it can: freed, its truesize given back); what it covers
    entirely is dropped (TCP_OFO_DROP)."""
    tc = t.tc
    sk = t.sk[f]
    oq = t.oq[f]
    rq = t.rq[f]
    while sk[TS_OFO_LEN]:
        skb = oq[sk[TS_OFO_HEAD]]
        scb = cbs[skb[SKB_OBJ]]
        if _before(sk[TS_RCV_NXT], scb[CB_SEQ]):
            break
        head = sk[TS_OFO_HEAD] + 1
        sk[TS_OFO_HEAD] = head if head < oq.shape[0] else 0
        sk[TS_OFO_LEN] -= 1
        if not _before(sk[TS_RCV_NXT], scb[CB_END_SEQ]):
            sk[TS_DROPS] += 1
            _sock_rfree(tc, sk, skb[SKB_TS])
            _eat(t, skb, EAT_FREE, -1)
            continue
        done = stolen = False
        at = sk[TS_RQ_HEAD] + sk[TS_RQ_LEN] - 1
        at = at if at < rq.shape[0] else at - rq.shape[0]
        if sk[TS_RQ_LEN]:
            tail = rq[at]
            length = skb[SKB_HLEN] + skb[SKB_DLEN]
            done, stolen = _tcp_try_coalesce(tc, sk, tail, cbs[tail[SKB_OBJ]], skb, scb, length)
        sk[TS_RCV_NXT] = scb[CB_END_SEQ] & U32
        if done:  # kfree_skb_partial(): the destructor gives its truesize back
            _sock_rfree(tc, sk, skb[SKB_TS])
            _eat(t, skb, EAT_STOLEN if stolen else (EAT_FRAGS if _frags_moved(skb) else EAT_FREE), at)
        elif sk[TS_RQ_LEN] >= rq.shape[0]:
            tc[TC_ERR] = TCP_TABLE
            return
        else:
            at = sk[TS_RQ_HEAD] + sk[TS_RQ_LEN]
            row = rq[at if at < rq.shape[0] else at - rq.shape[0]]
            for col in range(RQ_FIELDS):
                row[col] = skb[col]
            sk[TS_RQ_LEN] += 1
    _update_sacks(t, f, cbs)


@njit(cache=True)
def _tcp_ofo_insert(t, f, skb, cbs):
    """tcp_ooo_insert(): the skb into the out-of-order queue in sequence order; its row there, -1 when the queue
    is full."""
    sk = t.sk[f]
    oq = t.oq[f]
    cap = oq.shape[0]
    n = sk[TS_OFO_LEN]
    if n >= cap:
        return -1
    seq = cbs[skb[SKB_OBJ], CB_SEQ]
    pos = n
    while pos > 0:
        at = sk[TS_OFO_HEAD] + pos - 1
        prev = oq[at if at < cap else at - cap]
        if not _before(seq, cbs[prev[SKB_OBJ], CB_SEQ]):
            break
        at += 1
        row = oq[at if at < cap else at - cap]
        for col in range(RQ_FIELDS):
            row[col] = prev[col]
        pos -= 1
    at = sk[TS_OFO_HEAD] + pos
    at = at if at < cap else at - cap
    row = oq[at]
    for col in range(RQ_FIELDS):
        row[col] = skb[col]
    sk[TS_OFO_LEN] = n + 1
    return at


@njit(cache=True)
def _tcp_data_queue_ofo(t, f, skb, cb, cbs, length, k):
    """tcp_input.tcp_data_queue_ofo(): a segment beyond rcv_nxt, admitted (refused: TCPOFODrop), coalesced into
    the out-of-order queue's last skb when it continues it, else inserted in order, condensed (skb_condense())
    and charged."""
    tc = t.tc
    sk = t.sk[f]
    oq = t.oq[f]
    if not tcp_pressure._tcp_try_rmem_schedule(t, f, skb, length, k):  # -- TCP pressure --
        sk[MIB_TCPOFODROP] += 1
        sk[TS_DROPS] += 1
        return V_DROPPED + 8 * R_PROTO_MEM
    if tc[TC_OFO_MEASURE]:
        gso = cb[CB_GSO_SIZE]
        _tcp_measure_rcv_mss(tc, sk, gso if gso else length, length, skb[SKB_TS], cb[CB_TCP_FLAGS], cb[CB_DOFF])
    sk[TS_PRED] = -1
    sk[TS_ACK_PENDING] |= ICSK_ACK_SCHED
    sk[MIB_TCPOFOQUEUE] += 1
    verdict = V_QUEUED
    if sk[TS_OFO_LEN]:
        at = sk[TS_OFO_HEAD] + sk[TS_OFO_LEN] - 1
        last = oq[at if at < oq.shape[0] else at - oq.shape[0]]
        done, stolen = _tcp_try_coalesce(tc, sk, last, cbs[last[SKB_OBJ]], skb, cb, length)
        if done:
            if sk[TS_SACK_OK]:
                _tcp_grow_window(tc, sk, skb, length, True)
            verdict = V_OFO_STOLEN if stolen else (V_OFO_FRAGS if _frags_moved(skb) else V_COALESCED)
    if verdict == V_QUEUED:
        at = _tcp_ofo_insert(t, f, skb, cbs)
        if at < 0:
            tc[TC_ERR] = TCP_TABLE
            return verdict
        if sk[TS_SACK_OK]:
            _tcp_grow_window(tc, sk, skb, length, False)  # (with the truesize it came with)
        queued = oq[at]
        tcp_pressure._skb_condense(t, queued, k)
        if tc[TC_ERR]:
            return verdict
        sk[TS_RMEM] += queued[SKB_TS]
        sk[TS_FWD] -= queued[SKB_TS]
    _update_sacks(t, f, cbs)
    if tc[TC_R_SPACE] >= SPACE_DOUBLE and sk[TS_SOCKET]:
        _tcp_rcvbuf_grow(tc, sk, sk[TS_RCVQ_SPACE], sk[TS_RCVQ_SPACE], _ooo_span(t, f, cbs))
    return verdict


@njit(cache=True, forceinline=True)
def _tcp_data_queue(t, f, skb, cb, cbs, length, k):
    """tcp_input.tcp_data_queue() for a segment whose header was pulled (length payload bytes); k: the Kernel
    record pruning allocates from and frees to (None in a replay: tcp_pressure)."""
    tc = t.tc
    sk = t.sk[f]
    if cb[CB_SEQ] == cb[CB_END_SEQ]:
        return V_NO_DATA
    if cb[CB_SEQ] == sk[TS_RCV_NXT]:
        if _tcp_receive_window(sk) == 0:
            sk[MIB_TCPZEROWINDOWDROP] += 1
            return _out_of_window(t, f, R_ZEROWINDOW)
        # -- TCP pressure --: tcp_try_rmem_schedule() failed: TCPRcvQDrop, or (6.8+) a zero-window ACK now
        if tc[TC_R_NOMEM] == NOMEM_NONE and not sk[TS_RQ_LEN]:
            _sk_rmem_schedule(tc, sk, skb[SKB_TS])  # sk_forced_mem_schedule()
        elif not tcp_pressure._tcp_try_rmem_schedule(t, f, skb, length, k):
            if tc[TC_R_NOMEM] != NOMEM_NONE:
                sk[TS_ACK_PENDING] |= ICSK_ACK_NOMEM | ICSK_ACK_NOW | ICSK_ACK_SCHED
            if tc[TC_R_NOMEM] == NOMEM_NONE or (sk[TS_RQ_LEN] and length):
                sk[MIB_TCPRCVQDROP] += 1
                sk[TS_DROPS] += 1
                return V_DROPPED + 8 * R_PROTO_MEM
            _sk_rmem_schedule(tc, sk, skb[SKB_TS])  # sk_forced_mem_schedule()
        verdict = _tcp_queue_rcv(t, f, skb, cb, cbs, length)
        if length:
            _tcp_event_data_recv(tc, sk, skb, cb, length)
        if sk[TS_OFO_LEN]:
            _tcp_ofo_queue(t, f, cbs)
            if not sk[TS_OFO_LEN]:
                sk[TS_ACK_PENDING] |= ICSK_ACK_NOW
        _tcp_fast_path_check(sk)
        return verdict
    if not _before(sk[TS_RCV_NXT], cb[CB_END_SEQ]):
        return _out_of_window(t, f, R_OLD_DATA)
    if not _before(cb[CB_SEQ], (sk[TS_RCV_NXT] + _tcp_receive_window(sk)) & U32):
        if tc[TC_R_SEQUENCE] == SEQ_MAX_WND:
            sk[MIB_TCPBEYONDWINDOW] += 1
        return _out_of_window(t, f, R_OVERWINDOW)
    return _tcp_data_queue_ofo(t, f, skb, cb, cbs, length, k)


@njit(cache=True, forceinline=True)
def __tcp_ack_snd_check(t, f, ofo_possible):
    """tcp_input.__tcp_ack_snd_check(): ACK now, or arm the delayed-ACK timer."""
    sk = t.sk[f]
    unacked = (sk[TS_RCV_NXT] - sk[TS_RCV_WUP]) & U32
    now = False
    if unacked > sk[TS_ACK_RCV_MSS] and (((sk[TS_RCV_NXT] - sk[TS_COPIED_SEQ]) & U32) < sk[TS_RCVLOWAT]
                                        or __tcp_select_window(t.tc, sk) >= sk[TS_RCV_WND]):
        now = True
    elif sk[TS_ACK_QUICK] and not sk[TS_ACK_PINGPONG]:
        now = True
    elif sk[TS_ACK_PENDING] & ICSK_ACK_NOW:
        now = True
    if now:
        _tcp_send_ack(t, f)  # never deferred: the lock is not held (tcp_backlog_ack_defer)
        return
    if not ofo_possible or sk[TS_OFO_LEN] == 0:
        _tcp_send_delayed_ack(t, f)
        return
    tc = t.tc
    if not sk[TS_SACK_OK] or sk[TS_COMPRESSED_ACK] >= tc[TC_COMP_SACK_NR]:
        _tcp_send_ack(t, f)
        return
    if sk[TS_COMP_RCV_NXT] != sk[TS_RCV_NXT]:
        sk[TS_COMP_RCV_NXT] = sk[TS_RCV_NXT]
        sk[TS_DUP_ACK] = 0
    if sk[TS_DUP_ACK] < TCP_FASTRETRANS_THRESH:
        sk[TS_DUP_ACK] += 1
        _tcp_send_ack(t, f)
        return
    sk[TS_COMPRESSED_ACK] += 1
    if sk[TS_COMP_TIMER] >= 0:
        return
    rtt = sk[TS_RTT_US]
    if sk[TS_SRTT] and sk[TS_SRTT] < rtt:
        rtt = sk[TS_SRTT]
    delay_ns = _comp_sack_delay_ns(tc[TC_R_COMP_SACK] == 1, rtt, tc[TC_COMP_SACK_PCT], tc[TC_COMP_SACK_DELAY_NS])
    sk[TS_COMP_TIMER] = sk[TS_NOW_US] + delay_ns // 1000


@njit(cache=True)
def _tcp_sequence(tc, sk, seq, end_seq):
    """tcp_input.tcp_sequence(): -1 when acceptable, else the drop reason."""
    if _before(end_seq, sk[TS_RCV_WUP]):
        return R_OLD_SEQUENCE
    rule = tc[TC_R_SEQUENCE]
    if rule == SEQ_MAX_WND:
        limit = (sk[TS_RCV_NXT] + _tcp_receive_window_of(sk[TS_RCV_MWND_SEQ], 0, sk[TS_RCV_NXT])) & U32
    else:
        limit = (sk[TS_RCV_NXT] + _tcp_receive_window(sk)) & U32
    if rule != SEQ_SEQ:
        if _before(limit, end_seq):
            if _before(limit, seq):
                return R_INVALID_SEQUENCE
            if sk[TS_RQ_LEN]:
                return R_INVALID_END_SEQUENCE
        return -1
    if _before(limit, seq):
        return R_INVALID_SEQUENCE
    return -1


@njit(cache=True, forceinline=True)
def _tcp_parse_timestamps(sk, cb):
    """tcp_input.tcp_parse_timestamps()."""
    if cb[CB_TSVAL] >= 0 and sk[TS_TSTAMP_OK]:
        sk[TS_SAW_TSTAMP] = 1
        sk[TS_RCV_TSVAL] = cb[CB_TSVAL]
        sk[TS_RCV_TSECR] = cb[CB_TSECR]
    else:
        sk[TS_SAW_TSTAMP] = 0


@njit(cache=True)
def _tcp_validate_incoming(t, f, cb):
    """tcp_input.tcp_validate_incoming(): -1, or the reason of a drop after a duplicate ACK
    (tcp_send_dupack())."""
    sk = t.sk[f]
    _tcp_parse_timestamps(sk, cb)
    reason = _tcp_sequence(t.tc, sk, cb[CB_SEQ], cb[CB_END_SEQ])
    if reason < 0:
        return -1
    if (reason == R_INVALID_SEQUENCE or reason == R_INVALID_END_SEQUENCE) and t.tc[TC_R_SEQUENCE] != SEQ_SEQ:
        sk[MIB_TCPBEYONDWINDOW] += 1
    if cb[CB_END_SEQ] != cb[CB_SEQ] and _before(cb[CB_SEQ], sk[TS_RCV_NXT]):
        _tcp_incr_quickack(sk, TCP_MAX_QUICKACKS)
        sk[TS_ACK_PINGPONG] = 0
        sk[TS_ACK_ATO] = t.tc[TC_HZ] // 25
    _tcp_send_ack(t, f)
    sk[TS_DROPS] += 1
    return reason


@njit(cache=True, forceinline=True)
def _step5(t, f, skb, cb, cbs, k):
    """tcp_rcv_established()'s step5: the window field (tcp_ack_update_window()), timestamps, the data
    (the header pulled), then tcp_ack_snd_check()."""
    tc = t.tc
    sk = t.sk[f]
    _tcp_parse_timestamps(sk, cb)
    nwin = cb[CB_WINDOW] << sk[TS_SND_WSCALE]
    if nwin != sk[TS_SND_WND]:
        sk[TS_SND_WND] = nwin
        sk[TS_PRED] = -1
        _tcp_fast_path_check(sk)
    if sk[TS_SAW_TSTAMP] and not _before(sk[TS_RCV_WUP], cb[CB_SEQ]):
        sk[TS_TS_RECENT] = sk[TS_RCV_TSVAL]
    _tcp_rcv_rtt_measure_ts(tc, sk, (cb[CB_END_SEQ] - cb[CB_SEQ]) & U32)
    length = skb[SKB_HLEN] + skb[SKB_DLEN] - cb[CB_DOFF]
    skb[SKB_HLEN] -= cb[CB_DOFF]
    verdict = _tcp_data_queue(t, f, skb, cb, cbs, length, k)
    if sk[TS_ACK_PENDING] & ICSK_ACK_SCHED:
        __tcp_ack_snd_check(t, f, True)
    return verdict


@njit(cache=True, forceinline=True)
def _tcp_rcv_established(t, f, skb, cbs, now_us, k):
    """tcp_input.tcp_rcv_established() of a segment (its row skb; its TCP_SKB_CB at cbs[skb[SKB_OBJ]]) at
    now_us: header prediction's fast path, else tcp_validate_incoming() and step5 (k: tcp_data_queue()'s).
    Returns the verdict (V_*; V_DROPPED + 8 * R_* for a drop) and whether the fast path took it."""
    tc = t.tc
    sk = t.sk[f]
    cb = cbs[skb[SKB_OBJ]]
    sk[TS_NOW_US] = max(sk[TS_NOW_US], now_us)
    sk[TS_MSTAMP] = sk[TS_NOW_US]
    sk[TS_SAW_TSTAMP] = 0
    length = skb[SKB_HLEN] + skb[SKB_DLEN]
    flags_ok = (cb[CB_TCP_FLAGS] & ~TCPHDR_PSH) == TCPHDR_ACK and cb[CB_DOFF] == sk[TS_HEADER_LEN]
    if (sk[TS_PRED] >= 0 and flags_ok and cb[CB_WINDOW] == sk[TS_PRED] and cb[CB_SEQ] == sk[TS_RCV_NXT]
            and not _before(sk[TS_SND_NXT], cb[CB_ACK_SEQ])):
        _tcp_parse_timestamps(sk, cb)
        paws_ok = not sk[TS_TSTAMP_OK] or (sk[TS_SAW_TSTAMP] and
                                           ((sk[TS_RCV_TSVAL] - sk[TS_TS_RECENT]) & U32) < 0x80000000)
        if paws_ok and length > sk[TS_HEADER_LEN]:
            beyond = (tc[TC_R_SEQUENCE] != SEQ_SEQ
                      and _before((sk[TS_RCV_NXT] + _tcp_receive_window(sk)) & U32, cb[CB_END_SEQ]))
            if not beyond:
                if skb[SKB_TS] > sk[TS_FWD]:
                    return _step5(t, f, skb, cb, cbs, k), False
                if sk[TS_TSTAMP_OK] and sk[TS_RCV_NXT] == sk[TS_RCV_WUP]:
                    sk[TS_TS_RECENT] = sk[TS_RCV_TSVAL]
                _tcp_rcv_rtt_measure_ts(tc, sk, (cb[CB_END_SEQ] - cb[CB_SEQ]) & U32)
                sk[MIB_TCPHPHITS] += 1
                length -= sk[TS_HEADER_LEN]
                skb[SKB_HLEN] -= sk[TS_HEADER_LEN]
                verdict = _tcp_queue_rcv(t, f, skb, cb, cbs, length)
                _tcp_event_data_recv(tc, sk, skb, cb, length)
                __tcp_ack_snd_check(t, f, False)
                return verdict, True
    reason = _tcp_validate_incoming(t, f, cb)
    if reason >= 0:
        return V_DROPPED + 8 * reason, False
    return _step5(t, f, skb, cb, cbs, k), False


# -- the reader: tcp.py --------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def __tcp_cleanup_rbuf(t, f, copied):
    """tcp.__tcp_cleanup_rbuf(): ACK after a read when one is due or the window opened a lot."""
    sk = t.sk[f]
    time_to_ack = False
    pending = sk[TS_ACK_PENDING]
    if pending & ICSK_ACK_SCHED:
        if ((sk[TS_RCV_NXT] - sk[TS_RCV_WUP]) & U32) > sk[TS_ACK_RCV_MSS] or (
                copied > 0 and (pending & ICSK_ACK_PUSHED2 or (pending & ICSK_ACK_PUSHED and not sk[TS_ACK_PINGPONG]))
                and not sk[TS_RMEM]):
            time_to_ack = True
    if copied > 0 and not time_to_ack:
        rcv_window_now = _tcp_receive_window(sk)
        if 2 * rcv_window_now <= sk[TS_WINDOW_CLAMP]:
            new_window = __tcp_select_window(t.tc, sk)
            if new_window and new_window >= 2 * rcv_window_now:
                time_to_ack = True
    if time_to_ack:
        sk[TS_MSTAMP] = sk[TS_NOW_US]
        _tcp_send_ack(t, f)


@njit(cache=True, forceinline=True)
def _tcp_recvmsg(t, f, length, cbs, now_us):
    """tcp.tcp_recvmsg() at now_us of up to length bytes (-1: all queued): the bytes read.  Each skb read to its
    end is unlinked and its memory given back (tcp_eat_recv_skb()'s sock_rfree()); its row goes to t.eaten
    for the caller to free in that order (skb_attempt_defer_free())."""
    tc = t.tc
    sk = t.sk[f]
    rq = t.rq[f]
    qcap = rq.shape[0]
    sk[TS_NOW_US] = max(sk[TS_NOW_US], now_us)
    copied = 0
    remaining = length
    while (remaining < 0 or remaining > 0) and sk[TS_RQ_LEN]:
        skb = rq[sk[TS_RQ_HEAD]]
        skb_len = skb[SKB_HLEN] + skb[SKB_DLEN]
        offset = (sk[TS_COPIED_SEQ] - cbs[skb[SKB_OBJ], CB_SEQ]) & U32
        used = skb_len - offset
        if 0 <= remaining < used:
            used = remaining
        sk[TS_COPIED_SEQ] = (sk[TS_COPIED_SEQ] + used) & U32
        copied += used
        if remaining >= 0:
            remaining -= used
        _tcp_rcv_space_adjust(tc, sk, _ooo_span(t, f, cbs))
        if used + offset < skb_len:
            continue
        _eat(t, skb, EAT_READ, -1)
        head = sk[TS_RQ_HEAD] + 1
        sk[TS_RQ_HEAD] = head if head < qcap else 0
        sk[TS_RQ_LEN] -= 1
        _sock_rfree(tc, sk, skb[SKB_TS])
    __tcp_cleanup_rbuf(t, f, copied)
    return copied


# -- a receiver driven step by step (tests: skbsim.fast.tcp_setup, tests/test_fast_tcp.py) ---------------------

#: _tcp_replay()'s steps: [kind, flow, time in us, argument]: a segment (its row of segs), a read (bytes, -1:
#: all), a timer
STEP_SEG, STEP_READ, STEP_TIMER = range(3)


@njit(cache=True, entry=True)
def _tcp_replay(t, cbs, steps, segs, out, snap):
    """Each step on its receiver; out[i] = (verdict, fast path or bytes read, ACKs sent so far, skbs eaten),
    snap[i] = the receiver's row after it.  Stops at a step this module does not follow (tc[TC_ERR])."""
    for i in range(steps.shape[0]):
        kind, f, now_us, arg = steps[i, 0], steps[i, 1], steps[i, 2], steps[i, 3]
        t.tc[TC_EATEN] = 0
        if kind == STEP_SEG:
            verdict, fast = _tcp_rcv_established(t, f, segs[arg], cbs, now_us, None)
            out[i, 3] = t.tc[TC_EATEN]
            out[i, 0] = verdict
            out[i, 1] = fast
        elif kind == STEP_READ:
            out[i, 1] = _tcp_recvmsg(t, f, arg, cbs, now_us)
            out[i, 3] = t.tc[TC_EATEN]
        else:
            t.sk[f, TS_NOW_US] = max(t.sk[f, TS_NOW_US], now_us)
            _run_timers(t, f)
        out[i, 2] = t.tc[TC_ACKS]
        for col in range(t.sk.shape[1]):
            snap[i, col] = t.sk[f, col]
        if t.tc[TC_ERR]:
            return i
    return steps.shape[0]


# -- TCP pressure --: tcp_try_rmem_schedule() and the pruning it does (a module: it uses this one's helpers)
from skbsim.fast import tcp_pressure  # noqa: E402
