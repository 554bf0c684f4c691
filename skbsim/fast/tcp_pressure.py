"""The fast engine's TCP receiver under memory pressure, compiled: tcp_try_rmem_schedule()'s pruning.

One function per function of the model's (skbsim/net/ipv4/tcp_input.py, "pressure"): tcp_prune_queue() with
tcp_clamp_window(), tcp_collapse_ofo_queue() and tcp_collapse() (new skbs from alloc_skb(), the bytes copied
into them, the skbs they replace freed as the model frees them), and tcp_prune_ofo_queue().  The integer
tests and formulas are the model's own plain functions (skbsim/fast/rules.py).

These functions take the Kernel record ``k`` beside the receivers ``t`` (k.tcp): collapsing allocates and
frees, on the CPU of the segment being received (k.tfl.seg's SKB_CPU), in the model's order.  A replay of a
receiver without a kernel (tcp._tcp_replay(): ``k`` is None) stops where pruning would start (TCP_PRUNE).

A queue here is a ring of rows (tcp.py): rq from TS_RQ_HEAD, oq from TS_OFO_HEAD; skbs are named by their
place j in it (0: the first).  tcp_collapse() of the out-of-order queue keeps its new skbs aside, as the
kernel's tmp tree, in the ring's free slots from its far end, and inserts them in order at the end.
"""

from __future__ import annotations

import numpy as np

from skbsim.fast import gro, tun
from skbsim.fast.layout import njit
from skbsim.fast.napi import _free_skb
from skbsim.fast.rules import _can_ingest_value, _clamp_window_values, _prune_fits_value, _prune_over_value
from skbsim.fast.state import (
    CB_END_SEQ, CB_FIELDS, CB_GSO_SIZE, CB_SEGS, CB_SEQ, CB_TCP_FLAGS, ERR, RQ_END_TS, RQ_FIELDS,
    RQ_HEAD_FRAG, RQ_NR_FRAGS, RQ_PP_RECYCLE, RQ_TAILROOM, SKB_CPU, SKB_DLEN, SKB_FRAG, SKB_HEAD, SKB_HLEN, SKB_OBJ,
    SKB_TS,
    TC_ERR, TC_R_ADMIT, TC_RMEM2, TS_ACK_QUICK, TS_ADVMSS, TS_COLLAPSE_COPIED, TS_DROPS, TS_FWD, TS_MIB,
    TS_OFO_HEAD, TS_OFO_LEN, TS_PRED, TS_RCVBUF, TS_RCV_NXT, TS_COPIED_SEQ, TS_RCV_SSTHRESH, TS_RMEM, TS_RQ_HEAD,
    TS_RQ_LEN, TS_USERLOCKS, TS_WINDOW_CLAMP,
    # -- TCP pressure --
    TC_COLLAPSE_MAX, TC_PRUNE_CPU, TC_R_PRUNE, TC_R_PRUNE_OFO,
)
from skbsim.fast.tcp import (
    TCP_CONDENSE, TCP_NAPI_PRUNE, TCP_PRUNE, TCP_TABLE, U32, _before, _sk_rmem_schedule, _sock_rfree,
    _tcp_win_from_space, _update_sacks,
)
from skbsim.net.core_sock import SOCK_RCVBUF_LOCK
from skbsim.net.ipv4.tcp import TCPEXT, TCPHDR_FIN, TCPHDR_SYN
from skbsim.net.ipv4.tcp_input import PRUNE_CAN_INGEST, rule_code

#: TcpExt counters, as columns of a socket's row
MIB_PRUNECALLED = TS_MIB + TCPEXT.index("PruneCalled")
MIB_RCVPRUNED = TS_MIB + TCPEXT.index("RcvPruned")
MIB_OFOPRUNED = TS_MIB + TCPEXT.index("OfoPruned")
MIB_TCPRCVCOLLAPSED = TS_MIB + TCPEXT.index("TCPRcvCollapsed")
#: the rule code of tcp_prune_ofo_queue()'s 6.2+ form
PRUNE_OFO_AFTER_IN_SKB = rule_code("tcp_prune_ofo_queue", "after_in_skb")
SYN_FIN = TCPHDR_SYN | TCPHDR_FIN
#: columns of TcpFlows.facts after tcp_run's TF_*, by byte count n: alloc_skb(n, GFP_ATOMIC)'s head (tun's
#: TH_* kind and the cache or page order, as tun._tun_kmalloc() takes them), truesize and tailroom
TF_C_KIND, TF_C_CACHE, TF_C_TS, TF_C_ROOM = range(8, 12)  # (tcp_run's TF_FIELDS is 8)


def collapse_alloc_columns(lengths, facts: np.ndarray) -> np.ndarray:
    """facts (tcp_run's TF_* columns) with the TF_C_* columns for every byte count tcp_collapse() may copy
    into one new skb (1 to SKB_MAX_ORDER(0, 0)), read from alloc_skb() on the scratch kernel of lengths
    (tun._TunLengths).  The head depends on SKB_HEAD_ALIGN(n) only: one allocation per value of it."""
    from skbsim.mm.gfp import GFP_ATOMIC
    from skbsim.net.ipv4.tcp_input import SKB_MAX_ORDER0
    from skbsim.net.skbuff import alloc_skb, kfree_skb, skb_tailroom

    if facts.shape[1] != TF_C_KIND:
        raise ValueError("the TCP facts table has other columns than tcp_pressure expects")
    kernel = lengths.kernel
    profile = kernel.profile
    top = SKB_MAX_ORDER0(profile)
    cols = np.zeros((facts.shape[0], 4), np.int64)
    seen: dict[int, list[int]] = {}
    for n in range(1, min(top, facts.shape[0] - 1) + 1):
        aligned = profile.SKB_HEAD_ALIGN(n)
        if aligned not in seen:
            with kernel.softirq(0):
                skb = alloc_skb(kernel, n, GFP_ATOMIC)
                kind, cache = tun.kmalloc_head_kind(kernel, skb, lengths.cache_index, "a collapsed skb's")
                seen[aligned] = [kind, cache, skb.truesize, skb_tailroom(skb)]
                kfree_skb(kernel, skb)
        cols[n] = seen[aligned]
    return np.hstack([facts, cols])


@njit(cache=True, forceinline=True)
def _at(q, sk, head_col, j):
    """The ring slot of the queue's j-th skb."""
    at = sk[head_col] + j
    return at if at < q.shape[0] else at - q.shape[0]


@njit(cache=True)
def _ring_remove(q, sk, head_col, len_col, j):
    """Unlink the queue's j-th skb (those after it move up one place)."""
    n = sk[len_col]
    for m in range(j, n - 1):
        dst = q[_at(q, sk, head_col, m)]
        src = q[_at(q, sk, head_col, m + 1)]
        for col in range(RQ_FIELDS):
            dst[col] = src[col]
    sk[len_col] = n - 1


@njit(cache=True)
def _ring_open(q, sk, head_col, len_col, j):
    """Make room for an skb at place j (those from j move down one place); its slot.  The caller checks that
    the ring has a free slot."""
    n = sk[len_col]
    for m in range(n, j, -1):
        dst = q[_at(q, sk, head_col, m)]
        src = q[_at(q, sk, head_col, m - 1)]
        for col in range(RQ_FIELDS):
            dst[col] = src[col]
    sk[len_col] = n + 1
    return _at(q, sk, head_col, j)


@njit(cache=True)
def _tcp_free_queued(k, t, f, q, head_col, len_col, j):
    """__kfree_skb() of the queue's j-th skb, unlinked first: its destructor (sock_rfree()), then its data and
    sk_buff, on the CPU the pruning runs on."""
    sk = t.sk[f]
    row = q[_at(q, sk, head_col, j)]
    head, frag, obj, truesize = row[SKB_HEAD], row[SKB_FRAG], row[SKB_OBJ], row[SKB_TS]
    _ring_remove(q, sk, head_col, len_col, j)
    _sock_rfree(t.tc, sk, truesize)
    _free_skb(k, t.tc[TC_PRUNE_CPU], head, frag, obj)


@njit(cache=True)
def _tcp_collapse_one(k, t, f, q, head_col, len_col, j):
    """tcp_input.tcp_collapse_one(): the j-th skb freed (TCPRcvCollapsed); the next one takes its place."""
    _tcp_free_queued(k, t, f, q, head_col, len_col, j)
    t.sk[f, MIB_TCPRCVCOLLAPSED] += 1


@njit(cache=True)
def _tcp_clamp_window(tc, sk):
    """tcp_input.tcp_clamp_window(): no more quick ACKs; sk_rcvbuf and rcv_ssthresh by the model's rule."""
    sk[TS_ACK_QUICK] = 0
    sk[TS_RCVBUF], sk[TS_RCV_SSTHRESH] = _clamp_window_values(
        sk[TS_RCVBUF], sk[TS_RMEM], tc[TC_RMEM2], (sk[TS_USERLOCKS] & SOCK_RCVBUF_LOCK) != 0,
        sk[TS_WINDOW_CLAMP], sk[TS_ADVMSS], sk[TS_RCV_SSTHRESH])


@njit(cache=True, forceinline=True)
def _collapse_alloc_skb(k, cpu, n):
    """alloc_skb(n, GFP_ATOMIC) (tun._alloc_skb(); no reserves: GFP_ATOMIC lacks __GFP_MEMALLOC) with the head
    facts give for n bytes (collapse_alloc_columns()): (head, sk_buff), the sk_buff -1 when either failed."""
    facts = k.tfl.facts
    return tun._alloc_skb(k, cpu, facts[n, TF_C_KIND], facts[n, TF_C_CACHE])


@njit(cache=True, forceinline=True)
def _queue_cols(in_rq):
    """The receive queue's or the out-of-order queue's columns: (its head, its length)."""
    if in_rq:
        return TS_RQ_HEAD, TS_RQ_LEN
    return TS_OFO_HEAD, TS_OFO_LEN


@njit(cache=True)
def _collapse_scan(k, t, f, in_rq, i, tidx, start):
    """tcp_collapse()'s first walk, from the queue's i-th skb up to the tail (place tidx; -1: the queue's end):
    skbs wholly before start freed (tcp_collapse_one()), up to the first worth collapsing (its truesize worth
    more window than its len, or starting before start) or not contiguous with the next.  (its place, tidx,
    start, whether there is one)."""
    tc = t.tc
    sk = t.sk[f]
    cbs = k.skbcb.cb
    q = t.rq[f] if in_rq else t.oq[f]
    head_col, len_col = _queue_cols(in_rq)
    while True:
        restart = False
        while i < sk[len_col] and i != tidx:
            row = q[_at(q, sk, head_col, i)]
            cb = cbs[row[SKB_OBJ]]
            if not _before(start, cb[CB_END_SEQ]):
                _tcp_collapse_one(k, t, f, q, head_col, len_col, i)
                if tidx > i:
                    tidx -= 1
                restart = i < sk[len_col]
                break
            if not cb[CB_TCP_FLAGS] & SYN_FIN and (
                    _tcp_win_from_space(tc, sk, row[SKB_TS]) > row[SKB_HLEN] + row[SKB_DLEN]
                    or _before(cb[CB_SEQ], start)):
                return i, tidx, start, True
            n = i + 1
            if n < sk[len_col] and n != tidx and cb[CB_END_SEQ] != cbs[q[_at(q, sk, head_col, n), SKB_OBJ], CB_SEQ]:
                return i, tidx, start, True
            start = cb[CB_END_SEQ]
            i = n
        if not restart:
            return i, tidx, start, False


@njit(cache=True)
def _collapse_copy(k, t, f, in_rq, i, tidx, start, end):
    """tcp_collapse()'s copy of [start, end) from the queue's i-th skb on into new skbs of at most
    SKB_MAX_ORDER(0, 0) bytes each (alloc_skb(); none: it stops), charged to the socket (skb_set_owner_r()),
    the bytes counted (collapse_copied); each old skb freed once copied (tcp_collapse_one()), up to the tail
    (place tidx; -1: the end) or a SYN or FIN.  In the receive queue a new skb goes before the one it copies
    from; the out-of-order queue's are kept aside (the ring's free slots from its far end).  (tidx, how many
    were kept aside)."""
    tc = t.tc
    sk = t.sk[f]
    cbs = k.skbcb.cb
    facts = k.tfl.facts
    cpu = tc[TC_PRUNE_CPU]
    q = t.rq[f] if in_rq else t.oq[f]
    head_col, len_col = _queue_cols(in_rq)
    cap = q.shape[0]
    kept = 0
    while _before(start, end):
        copy = min(tc[TC_COLLAPSE_MAX], (end - start) & U32)
        if sk[len_col] + kept >= cap:
            tc[TC_ERR] = TCP_TABLE
            return tidx, kept
        head, obj = _collapse_alloc_skb(k, cpu, copy)
        if obj < 0:
            break
        src = cbs[q[_at(q, sk, head_col, i), SKB_OBJ]]
        ncb = cbs[obj]
        for col in range(CB_FIELDS):
            ncb[col] = src[col]
        ncb[CB_SEQ] = start
        ncb[CB_END_SEQ] = start
        ncb[CB_SEGS] = 0
        ncb[CB_GSO_SIZE] = 0
        if in_rq:
            row = q[_ring_open(q, sk, head_col, len_col, i)]
            i += 1
        else:
            row = q[_at(q, sk, head_col, cap - 1 - kept)]
            kept += 1
        row[SKB_HEAD], row[SKB_FRAG], row[SKB_OBJ], row[SKB_CPU] = head, -1, obj, cpu
        row[SKB_TS] = row[RQ_END_TS] = facts[copy, TF_C_TS]
        # (alloc_skb()'s skb is not marked for recycling: no page_pool skb coalesces into it)
        row[SKB_HLEN] = row[SKB_DLEN] = row[RQ_NR_FRAGS] = row[RQ_HEAD_FRAG] = row[RQ_PP_RECYCLE] = 0
        row[RQ_TAILROOM] = facts[copy, TF_C_ROOM]
        sk[TS_RMEM] += row[SKB_TS]
        sk[TS_FWD] -= row[SKB_TS]
        while copy > 0:
            scb = cbs[q[_at(q, sk, head_col, i), SKB_OBJ]]
            size = (scb[CB_END_SEQ] - start) & U32
            if size and size < 0x80000000:
                size = min(copy, size)
                row[SKB_HLEN] += size  # skb_put()
                row[RQ_TAILROOM] -= size
                sk[TS_COLLAPSE_COPIED] += size
                ncb[CB_END_SEQ] = (ncb[CB_END_SEQ] + size) & U32
                copy -= size
                start = (start + size) & U32
            if not _before(start, scb[CB_END_SEQ]):
                _tcp_collapse_one(k, t, f, q, head_col, len_col, i)
                if tidx > i:
                    tidx -= 1
                if (i >= sk[len_col] or i == tidx
                        or cbs[q[_at(q, sk, head_col, i), SKB_OBJ], CB_TCP_FLAGS] & SYN_FIN):
                    return tidx, kept
    return tidx, kept


@njit(cache=True)
def _collapse_insert_kept(k, t, f, kept, tidx):
    """The new skbs tcp_collapse() kept aside, into the out-of-order queue in sequence order (tcp_ooo_insert():
    after every skb that starts no later).  The one nearest the queue goes first, so that the queue only grows
    into slots already read; their order is the same either way (they start at different places).  Returns
    the tail's new place (tidx; -1: the end)."""
    sk = t.sk[f]
    cbs = k.skbcb.cb
    oq = t.oq[f]
    cap = oq.shape[0]
    for j in range(kept - 1, -1, -1):
        kept_row = oq[_at(oq, sk, TS_OFO_HEAD, cap - 1 - j)]
        head, obj, truesize = kept_row[SKB_HEAD], kept_row[SKB_OBJ], kept_row[SKB_TS]
        cpu, hlen, room = kept_row[SKB_CPU], kept_row[SKB_HLEN], kept_row[RQ_TAILROOM]
        seq = cbs[obj, CB_SEQ]
        pos = sk[TS_OFO_LEN]
        while pos > 0 and _before(seq, cbs[oq[_at(oq, sk, TS_OFO_HEAD, pos - 1), SKB_OBJ], CB_SEQ]):
            pos -= 1
        row = oq[_ring_open(oq, sk, TS_OFO_HEAD, TS_OFO_LEN, pos)]
        row[SKB_HEAD], row[SKB_FRAG], row[SKB_OBJ], row[SKB_CPU] = head, -1, obj, cpu
        row[SKB_TS] = row[RQ_END_TS] = truesize
        row[SKB_HLEN], row[RQ_TAILROOM] = hlen, room
        row[SKB_DLEN] = row[RQ_NR_FRAGS] = row[RQ_HEAD_FRAG] = row[RQ_PP_RECYCLE] = 0
        if 0 <= pos <= tidx:
            tidx += 1
    return tidx


@njit(cache=True)
def _tcp_collapse(k, t, f, in_rq, i, tidx, start, end):
    """tcp_input.tcp_collapse() of [start, end) from the queue's i-th skb to its tail (place tidx; -1: the
    end).  Returns the tail's place afterwards (-1: the end)."""
    i, tidx, start, found = _collapse_scan(k, t, f, in_rq, i, tidx, start)
    if not found or t.tc[TC_ERR] or k.st[ERR]:
        return tidx
    q = t.rq[f] if in_rq else t.oq[f]
    head_col, _ = _queue_cols(in_rq)
    if k.skbcb.cb[q[_at(q, t.sk[f], head_col, i), SKB_OBJ], CB_TCP_FLAGS] & SYN_FIN:
        return tidx
    tidx, kept = _collapse_copy(k, t, f, in_rq, i, tidx, start, end)
    if kept and not t.tc[TC_ERR] and not k.st[ERR]:
        tidx = _collapse_insert_kept(k, t, f, kept, tidx)
    return tidx


@njit(cache=True)
def _tcp_collapse_ofo_queue(k, t, f):
    """tcp_input.tcp_collapse_ofo_queue(): each range of overlapping or touching skbs of the out-of-order
    queue collapsed, unless it is one skb of less than SKB_MAX_ORDER(0, 0) bytes (those stop the walk once
    their truesize adds up to more than an eighth of sk_rcvbuf)."""
    tc = t.tc
    sk = t.sk[f]
    cbs = k.skbcb.cb
    oq = t.oq[f]
    i = 0
    sum_tiny = 0
    while i < sk[TS_OFO_LEN]:
        first = oq[_at(oq, sk, TS_OFO_HEAD, i)]
        start, end = cbs[first[SKB_OBJ], CB_SEQ], cbs[first[SKB_OBJ], CB_END_SEQ]
        head_truesize = range_truesize = first[SKB_TS]
        j = i + 1
        while j < sk[TS_OFO_LEN]:
            row = oq[_at(oq, sk, TS_OFO_HEAD, j)]
            seq, end_seq = cbs[row[SKB_OBJ], CB_SEQ], cbs[row[SKB_OBJ], CB_END_SEQ]
            if _before(end, seq) or _before(end_seq, start):
                break
            range_truesize += row[SKB_TS]
            if _before(seq, start):
                start = seq
            if _before(end, end_seq):
                end = end_seq
            j += 1
        if range_truesize != head_truesize or ((end - start) & U32) >= tc[TC_COLLAPSE_MAX]:
            tidx = _tcp_collapse(k, t, f, False, i, j if j < sk[TS_OFO_LEN] else -1, start, end)
            if tc[TC_ERR] or k.st[ERR]:
                return
            i = tidx if tidx >= 0 else sk[TS_OFO_LEN]
        else:
            sum_tiny += range_truesize
            if sum_tiny > sk[TS_RCVBUF] >> 3:
                return
            i = j


@njit(cache=True)
def _tcp_prune_ofo_queue(k, t, f, in_seq, in_truesize, in_len):
    """tcp_input.tcp_prune_ofo_queue(): out-of-order skbs dropped from the end (TCP_OFO_QUEUE_PRUNE), an
    eighth of sk_rcvbuf at a time, until the incoming skb (in_seq, in_truesize, in_len) would be admitted;
    6.2+ stops at one that starts before it.  OfoPruned; the SACK blocks.  Whether it pruned (6.1: True)."""
    tc = t.tc
    sk = t.sk[f]
    oq = t.oq[f]
    if not sk[TS_OFO_LEN]:
        return False
    after_in_skb = tc[TC_R_PRUNE_OFO] == PRUNE_OFO_AFTER_IN_SKB
    goal = sk[TS_RCVBUF] >> 3
    pruned = False
    if not after_in_skb:
        sk[MIB_OFOPRUNED] += 1
    while sk[TS_OFO_LEN]:
        last = sk[TS_OFO_LEN] - 1
        row = oq[_at(oq, sk, TS_OFO_HEAD, last)]
        if after_in_skb and _before(k.skbcb.cb[row[SKB_OBJ], CB_SEQ], in_seq):
            break
        pruned = True
        goal -= row[SKB_TS]
        sk[TS_DROPS] += 1  # tcp_drop_reason()
        _tcp_free_queued(k, t, f, oq, TS_OFO_HEAD, TS_OFO_LEN, last)
        if not sk[TS_OFO_LEN] or goal <= 0:
            if _can_ingest_value(tc[TC_R_ADMIT], sk[TS_RMEM], sk[TS_RCVBUF], in_truesize, in_len):
                break
            goal = sk[TS_RCVBUF] >> 3
    if pruned and after_in_skb:
        sk[MIB_OFOPRUNED] += 1
    if pruned:
        _update_sacks(t, f, k.skbcb.cb)
    return pruned or not after_in_skb


@njit(cache=True)
def _tcp_prune_queue(k, t, f, skb, length):
    """tcp_input.tcp_prune_queue() for the incoming skb (its row; length bytes): 0 once it fits, else -1.
    PruneCalled; tcp_clamp_window() when over; the out-of-order queue collapsed, then the receive queue from
    copied_seq to rcv_nxt; then the out-of-order queue pruned; RcvPruned (header prediction off) when
    nothing helped.  The release's tests: tcp_input.prune_over_value() and prune_fits_value()."""
    tc = t.tc
    sk = t.sk[f]
    rule, admit, truesize = tc[TC_R_PRUNE], tc[TC_R_ADMIT], skb[SKB_TS]
    if rule == PRUNE_CAN_INGEST and not sk[TS_RMEM]:
        return -1
    tc[TC_PRUNE_CPU] = skb[SKB_CPU]
    over = _prune_over_value(rule, admit, sk[TS_RMEM], sk[TS_RCVBUF], truesize, length)
    sk[MIB_PRUNECALLED] += 1
    if over:
        _tcp_clamp_window(tc, sk)
    if _prune_fits_value(rule, admit, sk[TS_RMEM], sk[TS_RCVBUF], truesize, length):
        return 0
    _tcp_collapse_ofo_queue(k, t, f)
    if sk[TS_RQ_LEN] and not tc[TC_ERR] and not k.st[ERR]:
        _tcp_collapse(k, t, f, True, 0, -1, sk[TS_COPIED_SEQ], sk[TS_RCV_NXT])
    if tc[TC_ERR] or k.st[ERR]:
        return -1
    if _prune_fits_value(rule, admit, sk[TS_RMEM], sk[TS_RCVBUF], truesize, length):
        return 0
    _tcp_prune_ofo_queue(k, t, f, k.skbcb.cb[skb[SKB_OBJ], CB_SEQ], truesize, length)
    if _prune_fits_value(rule, admit, sk[TS_RMEM], sk[TS_RCVBUF], truesize, length):
        return 0
    sk[MIB_RCVPRUNED] += 1
    sk[TS_PRED] = -1
    return -1


@njit(cache=True)
def _skb_condense(t, row, k):
    """net/core/skbuff.c skb_condense() of the skb at row, which tcp_data_queue_ofo() has just queued: paged data
    that fits the head's tailroom is pulled in (its frag references dropped, a GRO aggregate's frag_list freed,
    on the CPU receiving it), and its truesize becomes its head's alone, SKB_TRUESIZE(end).  Paged data that
    does not fit leaves it as it is.  Without a kernel (tcp._tcp_replay()) pulling stops the replay."""
    dlen = row[SKB_DLEN]
    if dlen > row[RQ_TAILROOM]:
        return
    if dlen:
        if k is None:
            t.tc[TC_ERR] = TCP_CONDENSE
            return
        gro._pull_paged(k, row[SKB_CPU], row[SKB_FRAG], row[SKB_OBJ])
        row[SKB_FRAG] = -1
        row[SKB_HLEN] += dlen
        row[SKB_DLEN] = 0
        row[RQ_TAILROOM] -= dlen
        row[RQ_NR_FRAGS] = 0
    row[SKB_TS] = row[RQ_END_TS]


@njit(cache=True, forceinline=True)
def _tcp_try_rmem_schedule(t, f, skb, length, k):
    """tcp_input.tcp_try_rmem_schedule() of the incoming skb (length bytes): past tcp_can_ingest() the
    forward allocation is made (sk_rmem_schedule() never fails here: no protocol limit is modelled); else
    the queues are pruned first (tcp_prune_queue()).  False when it cannot be admitted.  Without a kernel
    (k None: tcp._tcp_replay()) pruning stops the replay (TCP_PRUNE).  Inlined into every segment's path;
    the pruning is not (a call passing the Kernel record costs every segment otherwise)."""
    tc = t.tc
    sk = t.sk[f]
    if not _can_ingest_value(tc[TC_R_ADMIT], sk[TS_RMEM], sk[TS_RCVBUF], skb[SKB_TS], length):
        if k is None:
            tc[TC_ERR] = TCP_PRUNE
            return False
        if k.tfl.facts.shape[1] <= TF_C_KIND:  # (no heads for tcp_collapse(): TcpRun.heads)
            tc[TC_ERR] = TCP_NAPI_PRUNE
            return False
        if _tcp_prune_queue(k, t, f, skb, length) < 0:
            return False
    _sk_rmem_schedule(tc, sk, skb[SKB_TS])
    return True
