"""The fast engine's GRO of TCP segments (net/core/gro.c, net/ipv4/af_inet.c, tcp_offload.c), compiled.

skbsim/net/gro.py over the Gro record: what napi_gro_receive() does with each skb a driver built
(dev_gro_receive(): the bucket, the flow's held skb, tcp_gro_receive()'s tests, skb_gro_receive()'s three
branches with their truesize, the held skb completed, the skb held or passed up), and the flush at the end
of every poll (napi_complete_done(), or __napi_poll() when the budget is used up).

Runs without gro_flush_timeout flush everything GRO holds at the end of each poll, so GRO's state lives
within one poll: one set of buckets serves every CPU (polls never interleave).  The headers GRO reads come
as facts computed once per frame from the traffic (tcp_bulk_chunks(), or frame_facts() of a capture's
bytes: flow, hash, sequence and acknowledgement numbers, flag word, options, IP ID and fields), carried
from the NIC to the clean loop with the frame's first descriptor.  A held skb is a row of Gro.held: its SKB_* columns (head, frags, sk_buff, truesize,
bytes in head and in frags), its first segment's facts, and GRO's control block (segments, mss, the last
skb of its frag_list).  An skb chained on a frag_list keeps its head and frags in Gro.member at the row of
its sk_buff (member[obj]: the next skb of the list, or -1), and so does its chain's owner: member[p, M_NEXT]
is p's first one.  Every free of an skb (napi._release_skb()) and the socket's pinned pages follow the chain.

The rules written once: tcp_gro_flags_verdict(), tcp_gro_flags_flush() (skbsim.net.ipv4.tcp_offload),
inet_gro_fixedid() and inet_gro_ipid_flush() (skbsim.net.ipv4.af_inet), compiled in skbsim.fast.rules.
"""

from __future__ import annotations

import struct
from collections import namedtuple

import numpy as np

from skbsim.fast import napi  # (a module: napi's frees call this one's _release_aggregate)
from skbsim.fast.layout import COUNTED, ERR_GRO_FRAGS_MOVED, ETH_HLEN, FL_TAG, SLAB_TAG, U32_MASK, njit
from skbsim.fast.mm import _add_frag, _fl_give, _nr_frags, _pin_frags, _pin_page, _put_frags
from skbsim.fast.page_pool import _pp_put_skb_frags
from skbsim.fast.rules import _inet_gro_fixedid, _inet_gro_ipid_flush, _tcp_gro_flags_flush, _tcp_gro_flags_verdict
from skbsim.fast.slub import _slab_free
from skbsim.fast.state import (
    CACHE_SKB, CB_ACK_SEQ, ERR, CB_DOFF, CB_END_SEQ, CB_FLOW, CB_GSO_SIZE, CB_SEGS, CB_SEQ, CB_TCP_FLAGS, CB_TSECR,
    CB_TSVAL, CB_WINDOW, PACKETS, SKB_DLEN, SKB_FIELDS, SKB_FRAG, SKB_HEAD, SKB_HLEN, SKB_OBJ, SKB_TS,
)
from skbsim.fast.state import (  # copybreak, virtio_net
    CB_KIND, CB_N_1K, CB_N_BUILD, CB_TRUESIZE, COPYBREAK, DRIVER, DRIVER_COPYBREAK, DRIVER_VIRTIO, HEAD_KIND,
    VQ_HDR_LEN, VQ_TS0,
)
from skbsim.fast.state import PAGE_POOL  # mana, libeth
from skbsim.fast.state import DRIVER_LIBETH, FQ_COUNT, FQ_SHORT_LEN, FQ_SKBS, FQ_TRUESIZE  # libeth
from skbsim.net.gro import GRO_HASH_BUCKETS, MAX_GRO_SKBS, gro_stats
from skbsim.net.ipv4.af_inet import IP_DF
from skbsim.net.ipv4.tcp_offload import (
    GRO_FLAGS_CHANGED, GRO_FLAGS_CWR, TCP_FLAG_FIN, TCP_FLAG_PSH, TCP_FLAG_RST, TCP_FLAG_SYN,
    TCP_GRO_CWR_RULES,
)
from skbsim.net.napi import GRO_LEGACY_MAX_SIZE

#: Gro.cfg: GRO of TCP on; the device's gro_max_size (and gro_ipv4_max_size); IPv4 aggregates may pass
#: 64K (feature gro_ipv4_max_size); tcp_gro_cwr's rule (an index of TCP_GRO_CWR_RULES); a fixed IP ID
#: without DF (gro_fixed_ip_id "any"); SKB_DATA_ALIGN(sizeof(struct sk_buff)); MAX_SKB_FRAGS;
#: SKB_TRUESIZE(end) of the run's header skbs (ice legacy-rx: what a frags-moved skb keeps; -1: none);
#: eth_skb_pad() to ETH_ZLEN (ice); the skbs' TCP_SKB_CB already written at their sk_buff (tun: a write keeps
#: its segment's there, and GRO, which merges no tun skbs, leaves it)
(G_ON, G_MAX_SIZE, G_BIG_TCP, G_CWR, G_FIXEDID_ANY, G_HEAD_STRUCT, G_MAX_FRAGS, G_HEAD_TS, G_PAD, G_OWN_CB,
 G_CFG_SIZE) = range(11)
#: why a held skb was completed: the model's flush reasons (skbsim.net.gro.gro_stats.flushes)
FLUSH_REASONS = ("napi_complete", "budget", "max_gro_skbs", "cwr", "tcp_flags_or_window", "ack_seq", "tcp_options",
                 "ip_header", "gso_size", "len_above_mss", "seq", "gro_max_size", "page_pool_mix", "gso_len",
                 "len_below_mss", "no_payload", "psh", "fin", "syn", "rst", "urg")
(R_NAPI_COMPLETE, R_BUDGET, R_MAX_GRO_SKBS, R_CWR, R_FLAGS, R_ACK, R_OPTIONS, R_IP, R_GSO_SIZE, R_ABOVE_MSS,
 R_SEQ, R_MAX_SIZE, R_PP_MIX, R_GSO_LEN, R_BELOW_MSS, R_NO_PAYLOAD, R_PSH, R_FIN, R_SYN, R_RST,
 R_URG) = range(len(FLUSH_REASONS))
#: Gro.st: skbsim.net.gro.gro_stats's counters (in its COUNTERS order), the flushes by reason (from
#: GS_FLUSH), the packet count when the current chunk of facts began, and the gso_size of the skb being
#: received (GS_GSO: set by virtio_net for a GSO frame, SKB_GSO_DODGY; 0 otherwise)
GS_COUNTERS = gro_stats.COUNTERS
(GS_RECEIVED, GS_NORMAL, GS_HELD, GS_STOLEN, GS_FRAGS, GS_FRAG_LIST, GS_TCP, GS_UP, GS_SEGS_UP, GS_LEN_UP,
 GS_TS_UP, GS_AGG, GS_AGG_SEGS, GS_AGG_LEN, GS_AGG_TS, GS_NC_PUTS, GS_REUSED) = range(len(GS_COUNTERS))
GS_FLUSH = len(GS_COUNTERS)
GS_BASE = GS_FLUSH + len(FLUSH_REASONS)
GS_GSO = GS_BASE + 1
GS_SIZE = GS_GSO + 1
#: a frame's facts (Gro.facts rows, one a frame of the chunk; Gro.fdesc[cpu, slot] at its first
#: descriptor): TCP over IPv4 that tcp4_gro_receive() parses (0: GRO passes it up as built); the flow (a
#: number for its MAC header, addresses and ports) and RSS hash; seq, ack_seq, the flag word
#: (tcp_flag_word(): data offset, flags, window); TSval and TSecr (0 without the option); the TCP header
#: length; IP ID, TTL << 8 | TOS, frag_off, tot_len; the option bytes as F_OPT_WORDS words (a capture's:
#: every option byte, 0-padded; tcp-bulk's: 0, its only option being the timestamps)
(F_TCP, F_FLOW, F_HASH, F_SEQ, F_ACK, F_FLAGS, F_TSVAL, F_TSECR, F_THLEN, F_IPID, F_TTL_TOS, F_FRAG_OFF, F_TOTLEN,
 F_OPT) = range(14)
F_OPT_WORDS = 5
F_FIELDS = F_OPT + F_OPT_WORDS
#: Gro.held rows: the skb's SKB_* columns, its first segment's facts (from H_F), then NAPI_GRO_CB's count,
#: the mss (gso_size), the IP ID found fixed, the last skb of its frag_list (-1: itself), row in use
H_F = SKB_FIELDS
H_COUNT, H_MSS, H_FIXEDID, H_LAST, H_USED = range(H_F + F_FIELDS, H_F + F_FIELDS + 5)
H_FIELDS = H_USED + 1
HELD_ROWS = GRO_HASH_BUCKETS * MAX_GRO_SKBS
#: Gro.member[obj]: the next skb of a frag_list (or an owner's first), the skb's head and frags, the
#: length of the frame it was built from (copybreak: which kind of skb it is, for the trace),
#: virtio_net's SKB_TRUESIZE(end) of a head built on its buffer (0: a copy; the trace's kind, skb_condense()),
#: and the frame's row among those the poll handed on (TcpFlows.polled, with a socket per flow: its TCP_SKB_CB)
M_NEXT, M_HEAD, M_FRAG, M_FRAME, M_HEAD_TS, M_POLLED, M_FIELDS = range(7)
#: skb_gro_receive()'s result: merged (by which branch, in gro_stats' order), or -E2BIG
MERGED_STOLEN, MERGED_FRAGS, MERGED_FRAG_LIST, NOT_MERGED = 0, 1, 2, 3

#: cfg, st; facts[CHUNK] of the chunk being run; fdesc[cpu, slot]: the facts of the frame whose first
#: descriptor is slot; held[row] and bucket[b] (its held rows youngest first, bucket[b, 0] of them);
#: member[obj]; cur: the skb being received (SKB_* columns); copy_room[len]: copybreak's napi_alloc_skb(len)
#: head's room from its tail to its end before the copy (skb_condense() of an aggregate on a copy)
Gro = namedtuple("Gro", ("cfg", "st", "facts", "fdesc", "held", "bucket", "member", "cur", "copy_room"))


def new_gro(cfg=None, chunk: int = 1, ncpus: int = 1, slots: int = 1, objects: int = 1, copy_room=(0,)) -> Gro:
    """The Gro record; with cfg None, GRO of TCP is off (one row each)."""
    member = np.zeros((max(objects, 1), M_FIELDS), np.int64)
    member[:, M_NEXT] = -1
    return Gro(np.asarray(cfg if cfg is not None else np.zeros(G_CFG_SIZE), np.int64), np.zeros(GS_SIZE, np.int64),
               np.zeros((chunk, F_FIELDS), np.int64), np.zeros((ncpus, slots, F_FIELDS), np.int64),
               np.zeros((HELD_ROWS, H_FIELDS), np.int64), np.zeros((GRO_HASH_BUCKETS, MAX_GRO_SKBS + 1), np.int64),
               member, np.zeros(SKB_FIELDS, np.int64), np.asarray(copy_room, np.int64))


def gro_config(sim) -> np.ndarray:
    """Gro.cfg of the reference simulation's device and profile (GRO of TCP on)."""
    profile = sim.kernel.profile
    dev = sim.dev
    cfg = np.zeros(G_CFG_SIZE, np.int64)
    big = profile.has("gro_ipv4_max_size")
    cfg[G_ON] = 1
    cfg[G_MAX_SIZE] = dev.gro_ipv4_max_size if big else dev.gro_max_size
    cfg[G_BIG_TCP] = int(big)
    cfg[G_CWR] = TCP_GRO_CWR_RULES.index(profile.feature("tcp_gro_cwr"))
    cfg[G_FIXEDID_ANY] = int(profile.feature("gro_fixed_ip_id") == "any")
    cfg[G_HEAD_STRUCT] = profile.SKB_HEAD_STRUCT_SIZE
    cfg[G_MAX_FRAGS] = profile.MAX_SKB_FRAGS
    cfg[G_HEAD_TS] = -1
    return cfg


def gro_stats_of(g: Gro):
    """skbsim.net.gro.gro_stats from the compiled counters (for sim.gro_report())."""
    stats = gro_stats()
    for i, name in enumerate(GS_COUNTERS):
        setattr(stats, name, int(g.st[i]))
    for i, reason in enumerate(FLUSH_REASONS):
        if g.st[GS_FLUSH + i]:
            stats.flushes[reason] = int(g.st[GS_FLUSH + i])
    return stats


# -- the NIC ------------------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _gro_nic(k, cpu, slot):
    """The frame being written (the last that arrived) leaves its facts at its first descriptor (tun's: at its
    skb's sk_buff, slot, in the one row cpu 0)."""
    g = k.gro
    row = k.st[PACKETS] - 1 - g.st[GS_BASE]
    for c in range(F_FIELDS):
        g.fdesc[cpu, slot, c] = g.facts[row, c]


# -- handing up (gro_normal_one(), gro_complete()) -----------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _skb_len(g, size):
    """skb->len of a frame of size bytes once eth_type_trans() pulled its header (ice pads to ETH_ZLEN)."""
    if g.cfg[G_PAD] and size < 60:
        return 60 - ETH_HLEN
    return size - ETH_HLEN


@njit(cache=True, forceinline=True)
def _hand_up(k, n, row, count):
    """gro_normal_one(): the skb (SKB_* columns of row) is the poll's n-th for the stack; counted, and its
    TCP_SKB_CB filled (k.skbcb, where sized).  Returns n + 1."""
    g = k.gro
    gs = g.st
    size = row[SKB_HLEN] + row[SKB_DLEN]
    length = _skb_len(g, size)
    gs[GS_UP] += 1
    gs[GS_SEGS_UP] += count
    gs[GS_LEN_UP] += length
    gs[GS_TS_UP] += row[SKB_TS]
    if count > 1:
        gs[GS_AGG] += 1
        gs[GS_AGG_SEGS] += count
        gs[GS_AGG_LEN] += length
        gs[GS_AGG_TS] += row[SKB_TS]
    out = k.batch[n]
    for c in range(SKB_FIELDS):
        out[c] = row[c]
    return n + 1


@njit(cache=True, forceinline=True)
def _fills_cb(k):
    """Whether GRO fills the TCP_SKB_CB of the skbs it hands up: with a socket per flow (k.skbcb sized), unless
    the driver wrote each skb's with it (G_OWN_CB)."""
    return k.skbcb.cb.shape[0] > 1 and not k.gro.cfg[G_OWN_CB]


@njit(cache=True, forceinline=True)
def _fill_cb(k, row, f, count, mss):
    """The TCP_SKB_CB facts of an skb GRO hands up (row: its SKB_* columns, f: its first segment's facts)."""
    cb = k.skbcb.cb
    obj = row[SKB_OBJ]
    if obj >= cb.shape[0]:
        return
    payload = _skb_len(k.gro, row[SKB_HLEN] + row[SKB_DLEN]) - 20 - f[F_THLEN]
    flags = f[F_FLAGS]
    cb[obj, CB_FLOW] = f[F_FLOW]
    cb[obj, CB_SEQ] = f[F_SEQ]
    cb[obj, CB_END_SEQ] = (f[F_SEQ] + payload + ((flags >> 17) & 1) + ((flags >> 16) & 1)) & U32_MASK
    cb[obj, CB_ACK_SEQ] = f[F_ACK]
    cb[obj, CB_TCP_FLAGS] = (flags >> 16) & 0xFF
    cb[obj, CB_DOFF] = (flags >> 28) & 0xF
    cb[obj, CB_WINDOW] = flags & 0xFFFF
    cb[obj, CB_TSVAL] = f[F_TSVAL]
    cb[obj, CB_TSECR] = f[F_TSECR]
    cb[obj, CB_SEGS] = count
    cb[obj, CB_GSO_SIZE] = mss if count > 1 else 0


@njit(cache=True, forceinline=True)
def _complete(k, n, b, j, reason):
    """gro_complete() of the j-th held skb of bucket b (completed for reason): handed up, its row freed, taken
    out of the bucket (the caller keeps the bucket's count).  Returns n + 1."""
    g = k.gro
    bucket = g.bucket[b]
    h = g.held[bucket[j]]
    g.st[GS_FLUSH + reason] += 1
    if _fills_cb(k):
        _fill_cb(k, h, h[H_F:H_F + F_FIELDS], h[H_COUNT], h[H_MSS])
    n = _hand_up(k, n, h, h[H_COUNT])
    h[H_USED] = 0
    for i in range(j, bucket[0]):
        bucket[i] = bucket[i + 1]
    return n


@njit(cache=True)
def _gro_flush(k, n, budget_used):
    """__gro_flush() at the end of a poll (napi_complete_done(), or __napi_poll() when the budget was used
    up: every held skb, HZ being below 1000): every bucket in index order, each oldest first.  Returns the
    poll's skbs for the stack."""
    g = k.gro
    reason = R_BUDGET if budget_used else R_NAPI_COMPLETE
    for b in range(GRO_HASH_BUCKETS):
        bucket = g.bucket[b]
        while bucket[0]:
            n = _complete(k, n, b, bucket[0], reason)
            bucket[0] -= 1
    return n


# -- skb_gro_receive() ----------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _append_frags(k, lp_frag, frag):
    """skb's frags (as _add_frag() keeps them) appended to the last skb's; returns the last skb's frags."""
    if frag < 0:
        return lp_frag
    if frag < FL_TAG:
        return _add_frag(k.frags, k.st, lp_frag, frag)
    entry = frag - FL_TAG
    fl = k.frags.fl
    for j in range(1, fl[entry, 0] + 1):
        lp_frag = _add_frag(k.frags, k.st, lp_frag, fl[entry, j])
    _fl_give(k.frags, k.st, entry)
    return lp_frag


@njit(cache=True, forceinline=True)
def _skb_gro_receive(k, h, skb, length, flush, hdr):
    """skb_gro_receive() of skb (SKB_* columns; length bytes of payload, hdr bytes of headers) into the held
    h: NOT_MERGED (-E2BIG: gro_max_size, 64K without BIG TCP for IPv4, or skb marked flush), or the branch
    that took it: frags moved, the head stolen as a frag, or chained on the frag_list.  The data goes to
    h's last skb; h grows by the bytes and by the truesize the skb gives up."""
    g = k.gro
    cfg = g.cfg
    p_len = h[SKB_HLEN] + h[SKB_DLEN] - ETH_HLEN
    if p_len + length >= cfg[G_MAX_SIZE] or flush:
        return NOT_MERGED
    if p_len + length >= GRO_LEGACY_MAX_SIZE and not cfg[G_BIG_TCP]:
        return NOT_MERGED
    last = h[H_LAST]
    lp_frag = h[SKB_FRAG] if last < 0 else g.member[last, M_FRAG]
    nr_lp = _nr_frags(k.frags, lp_frag)
    nr_skb = _nr_frags(k.frags, skb[SKB_FRAG])
    headlen = skb[SKB_HLEN] - ETH_HLEN
    branch = MERGED_FRAG_LIST
    if headlen <= hdr:
        if nr_lp + nr_skb <= cfg[G_MAX_FRAGS]:
            branch = MERGED_FRAGS
    elif skb[SKB_HEAD] < SLAB_TAG and nr_lp + 1 + nr_skb <= cfg[G_MAX_FRAGS]:  # a page-fragment head
        branch = MERGED_STOLEN
    if branch == MERGED_FRAGS:
        if cfg[G_HEAD_TS] < 0:
            k.st[ERR] = ERR_GRO_FRAGS_MOVED  # a frags-moved skb whose head truesize the run does not know
            return NOT_MERGED
        lp_frag = _append_frags(k, lp_frag, skb[SKB_FRAG])
        delta = skb[SKB_TS] - cfg[G_HEAD_TS]
    elif branch == MERGED_STOLEN:
        lp_frag = _add_frag(k.frags, k.st, lp_frag, skb[SKB_HEAD])
        lp_frag = _append_frags(k, lp_frag, skb[SKB_FRAG])
        delta = skb[SKB_TS] - cfg[G_HEAD_STRUCT]
    else:
        obj = skb[SKB_OBJ]
        m = g.member[obj]
        m[M_NEXT] = -1
        m[M_HEAD] = skb[SKB_HEAD]
        m[M_FRAG] = skb[SKB_FRAG]
        g.member[h[SKB_OBJ] if last < 0 else last, M_NEXT] = obj
        h[H_LAST] = obj
        delta = skb[SKB_TS]
    if branch != MERGED_FRAG_LIST:
        if last < 0:
            h[SKB_FRAG] = lp_frag
        else:
            g.member[last, M_FRAG] = lp_frag
    h[H_COUNT] += 1
    h[SKB_DLEN] += length
    h[SKB_TS] += delta
    return branch


# -- tcp_gro_receive() ----------------------------------------------------------------------------------------------


@njit(cache=True, forceinline=True)
def _tcp_gro_match(k, h, f, length, seq_ok_len, gso):
    """tcp_gro_receive()'s tests of a segment (facts f, length bytes, gso_size gso when a GSO skb) against its
    flow's held h, in the kernel's order: 0 when it may merge, else the flush reason.  (Sets h's fixed-ID mark,
    as inet_gro_flush() does.)"""
    cfg = k.gro.cfg
    hf = h[H_F:H_F + F_FIELDS]
    verdict = _tcp_gro_flags_verdict(f[F_FLAGS], hf[F_FLAGS], cfg[G_CWR])
    if verdict == GRO_FLAGS_CWR:
        return R_CWR
    if verdict == GRO_FLAGS_CHANGED:
        return R_FLAGS
    if f[F_ACK] != hf[F_ACK]:
        return R_ACK
    if f[F_TSVAL] != hf[F_TSVAL] or f[F_TSECR] != hf[F_TSECR]:
        return R_OPTIONS
    for w in range(F_OPT, F_OPT + F_OPT_WORDS):
        if f[w] != hf[w]:
            return R_OPTIONS
    if f[F_TTL_TOS] != hf[F_TTL_TOS] or (f[F_FRAG_OFF] ^ hf[F_FRAG_OFF]) & IP_DF:
        return R_IP
    if _inet_gro_fixedid(f[F_IPID], hf[F_IPID], h[H_COUNT], f[F_FRAG_OFF], cfg[G_FIXEDID_ANY] != 0):
        h[H_FIXEDID] = 1
    if _inet_gro_ipid_flush(f[F_IPID], hf[F_IPID], h[H_COUNT], h[H_FIXEDID] != 0):
        return R_IP
    if gso:
        if gso != h[H_MSS]:
            return R_GSO_SIZE
    elif (length - 1) & U32_MASK >= h[H_MSS]:
        return R_ABOVE_MSS
    if (hf[F_SEQ] + seq_ok_len) & U32_MASK != f[F_SEQ]:
        return R_SEQ
    return 0


@njit(cache=True, forceinline=True)
def _final_reason(flags):
    """out_check_final's flag that completes the aggregate (PSH, FIN, SYN, RST, URG in that order), or -1."""
    if not _tcp_gro_flags_flush(flags):
        return -1
    if flags & TCP_FLAG_PSH:
        return R_PSH
    if flags & TCP_FLAG_FIN:
        return R_FIN
    if flags & TCP_FLAG_SYN:
        return R_SYN
    if flags & TCP_FLAG_RST:
        return R_RST
    return R_URG


@njit(cache=True, forceinline=True)
def _find_held(g, b, f):
    """gro_list_prepare(), inet_gro_receive()'s and tcp_gro_lookup()'s flow tests: the position in bucket b
    of the youngest held skb of f's flow (hash, MAC header, addresses and ports), or 0."""
    bucket = g.bucket[b]
    for j in range(1, bucket[0] + 1):
        h = g.held[bucket[j]]
        if h[H_F + F_FLOW] == f[F_FLOW] and h[H_F + F_HASH] == f[F_HASH]:
            return j
    return 0


@njit(cache=True, forceinline=True)
def _hold(k, n, b, f, length):
    """dev_gro_receive()'s hold: a full bucket completes its oldest first; the skb (g.cur) becomes the
    bucket's youngest, its mss the payload's length.  Returns the poll's skbs for the stack."""
    g = k.gro
    bucket = g.bucket[b]
    if bucket[0] >= MAX_GRO_SKBS:
        n = _complete(k, n, b, bucket[0], R_MAX_GRO_SKBS)
        bucket[0] -= 1
    row = 0
    while g.held[row, H_USED]:
        row += 1
    h = g.held[row]
    for c in range(SKB_FIELDS):
        h[c] = g.cur[c]
    for c in range(F_FIELDS):
        h[H_F + c] = f[c]
    h[H_COUNT] = 1
    h[H_MSS] = length
    h[H_FIXEDID] = 0
    h[H_LAST] = -1
    h[H_USED] = 1
    for i in range(bucket[0], 0, -1):
        bucket[i + 1] = bucket[i]
    bucket[1] = row
    bucket[0] += 1
    g.st[GS_HELD] += 1
    return n


@njit(cache=True, forceinline=True)
def _merged_free(k, cpu, branch):
    """gro_skb_finish() of a merged skb (g.cur): the stolen head's sk_buff to the NAPI cache
    (napi_skb_free_stolen_head()), a frags-moved skb freed into it (__napi_kfree_skb()); a frag_list one
    lives on in its aggregate.  (copybreak, virtio_net, libeth: a merged skb never reaches the stack, so it
    leaves the count of its kind of skb, which Simulation._deliver takes.)"""
    g = k.gro
    g.st[GS_STOLEN + branch] += 1
    if k.cfg[DRIVER] == DRIVER_COPYBREAK:
        size = g.cur[SKB_HLEN] + g.cur[SKB_DLEN]
        k.st[CB_N_1K + k.rings.copy[CB_KIND, size] if size <= k.cfg[COPYBREAK] else CB_N_BUILD] -= 1
    elif k.cfg[DRIVER] == DRIVER_VIRTIO:  # (built on its buffer, or a copy)
        k.st[CB_N_BUILD if g.member[g.cur[SKB_OBJ], M_HEAD_TS] else CB_N_1K + k.cfg[HEAD_KIND]] -= 1
    elif k.cfg[DRIVER] == DRIVER_LIBETH:  # (its fill queue's skbs: idpf's short queue, or the MTU one)
        size = g.cur[SKB_HLEN] + g.cur[SKB_DLEN]
        k.lb.fq[cpu * k.cfg[FQ_COUNT] + (1 if size <= k.cfg[FQ_SHORT_LEN] else 0), FQ_SKBS] -= 1
    if branch == MERGED_FRAG_LIST:
        return
    if branch == MERGED_FRAGS:
        napi._release_data(k, cpu, g.cur[SKB_HEAD], -1)
    g.st[GS_NC_PUTS] += 1
    napi._nc_put(k, cpu, g.cur[SKB_OBJ], COUNTED)


@njit(cache=True, forceinline=True)
def _napi_gro_receive(k, cpu, n, slot):
    """napi_gro_receive() of the skb just added to the poll's batch (its n-th, n - 1), whose frame's facts are
    at descriptor slot: merged into its flow's held skb, held, or passed up as built; a held skb the segment
    completes goes up first.  Returns the poll's skbs for the stack."""
    return _gro_receive(k, cpu, n, k.gro.fdesc[cpu, slot])


@njit(cache=True, forceinline=True)
def _gro_receive(k, cpu, n, f):
    """napi_gro_receive() of the poll's n-th skb (n - 1) on queue cpu, whose frame's facts are f (a row of
    Gro.fdesc): _napi_gro_receive() for a driver whose facts are not at a descriptor (tun: at the sk_buff)."""
    g = k.gro
    gs = g.st
    n -= 1
    cur = g.cur
    for c in range(SKB_FIELDS):
        cur[c] = k.batch[n, c]
    gs[GS_RECEIVED] += 1
    length = _skb_len(g, cur[SKB_HLEN] + cur[SKB_DLEN])
    m = g.member[cur[SKB_OBJ]]
    m[M_FRAME] = cur[SKB_HLEN] + cur[SKB_DLEN]
    m[M_POLLED] = k.tfl.polled[-1, 0] - 1  # (the driver counted it done just before: rx._frame_done())
    if not f[F_TCP]:
        gs[GS_NORMAL] += 1
        if _fills_cb(k):  # (a capture's frame GRO does not parse: a segment alone)
            _fill_cb(k, cur, f, 1, 0)
        return _hand_up(k, n, cur, 1)
    gs[GS_TCP] += 1
    hdr = 20 + f[F_THLEN]
    gso = gs[GS_GSO]
    # inet_gro_receive()'s flush: a total length that is not the skb's, a fragment bit but DF; and
    # dev_gro_receive()'s for a GSO skb from a device (SKB_GSO_DODGY)
    flush = ((f[F_TOTLEN] ^ length) | (f[F_FRAG_OFF] & ~IP_DF)) & 0xFFFF != 0 or gso != 0
    length -= hdr
    b = f[F_HASH] & (GRO_HASH_BUCKETS - 1)
    j = _find_held(g, b, f)
    mss = 1
    reason = 0
    branch = NOT_MERGED
    if j:
        h = g.held[g.bucket[b, j]]
        reason = _tcp_gro_match(k, h, f, length, h[SKB_HLEN] + h[SKB_DLEN] - ETH_HLEN - hdr, gso)
        if not reason:
            mss = h[H_MSS]
            branch = _skb_gro_receive(k, h, cur, length, flush, hdr)
            if k.st[ERR]:
                return n
            if branch == NOT_MERGED:
                reason = R_MAX_SIZE
        if reason:
            mss = 1
        else:
            h[H_F + F_FLAGS] |= f[F_FLAGS] & (TCP_FLAG_FIN | TCP_FLAG_PSH)
    # out_check_final (a GSO skb: NAPI_GRO_CB's count, virtio_net_hdr_to_skb()'s gso_segs, is 0)
    final = R_GSO_LEN if gso else R_BELOW_MSS
    final_flush = length != 0 if gso else length < mss
    flag_reason = _final_reason(f[F_FLAGS])
    if flag_reason >= 0:
        final_flush = True
        final = flag_reason
    if j and (branch == NOT_MERGED or final_flush):
        n = _complete(k, n, b, j, reason if branch == NOT_MERGED else final)
        g.bucket[b, 0] -= 1
    if branch != NOT_MERGED:
        _merged_free(k, cpu, branch)
        return n
    if flush or final_flush:
        gs[GS_NORMAL] += 1
        if _fills_cb(k):
            _fill_cb(k, cur, f, 1, 0)
        return _hand_up(k, n, cur, 1)
    return _hold(k, n, b, f, length)


@njit(cache=True, forceinline=True)
def _virtio_built_head(k, head_ts):
    """(room from the Ethernet header to the end, SKB_TRUESIZE(end)) of a head virtio_net's page_to_skb() built on
    its buffer, from the SKB_TRUESIZE(end) it recorded (M_HEAD_TS): end = head_ts - SKB_TRUESIZE(0), the frame
    starting after the virtio-net header (skb_reserve(hdr_len))."""
    return head_ts - k.cfg[VQ_TS0] - k.cfg[VQ_HDR_LEN], head_ts


@njit(cache=True, forceinline=True)
def _condense_head(k, obj, room, truesize):
    """skb_condense()'s room (end less the tail before the copy) and truesize (SKB_TRUESIZE(end)) of obj's skb:
    the run's (room, truesize), or for a GRO aggregate on a copybreak copy, its napi_alloc_skb(len) head's, on a
    virtio_net buffer (build_skb()), the buffer's: its end less the virtio-net header before the frame, or on a
    buffer of idpf's short queue, that queue's."""
    head_ts = k.gro.member[obj, M_HEAD_TS]
    if head_ts:
        return _virtio_built_head(k, head_ts)
    length = k.gro.member[obj, M_FRAME]
    if k.cfg[DRIVER] == DRIVER_LIBETH:
        return _libeth_head(k, length, room, truesize)
    if k.cfg[DRIVER] != DRIVER_COPYBREAK or length > k.cfg[COPYBREAK]:
        return room, truesize
    return k.gro.copy_room[length], k.rings.copy[CB_TRUESIZE, length]


@njit(cache=True, forceinline=True)
def _libeth_head(k, length, room, truesize):
    """(room, truesize) of the head libeth_build_frame() built for a frame of length bytes: the run's (room, truesize)
    (its MTU queue's buffers, or with header split its header queue's), or on a buffer of idpf's short queue (row
    1), the run's being the MTU queue's (row 0), smaller by the difference of their truesizes (the same headroom)."""
    if length <= k.cfg[FQ_SHORT_LEN]:
        less = k.lb.fq[0, FQ_TRUESIZE] - k.lb.fq[1, FQ_TRUESIZE]
        return room - less, truesize - less
    return room, truesize


# -- frag_list chains: their frees and pinned pages ------------------------------------------------------------------


@njit(cache=True)
def _release_aggregate(k, cpu, head, frag, obj):
    """skb_release_data() of an skb with a frag_list (non-page_pool drivers): its frag pages, then each
    chained skb freed whole (kfree_skb(): its frags, its head, its sk_buff to the slab on this CPU), then the
    head (a page fragment's page, or a kmem cache object)."""
    _drop_paged(k, cpu, frag, obj)
    napi._release_data(k, cpu, head, -1)


@njit(cache=True)
def _pull_paged(k, cpu, frag, obj):
    """__pskb_pull_tail() of all of the paged data of obj's skb, as skb_condense() does once it fits the head's
    tailroom: its frag references dropped (a page_pool frag's back to its pool) and, for a GRO aggregate, its
    frag_list's skbs freed on this CPU."""
    if k.gro.cfg[G_ON] and k.gro.member[obj, M_NEXT] >= 0:
        _drop_paged(k, cpu, frag, obj)
    elif k.cfg[PAGE_POOL]:
        _pp_put_skb_frags(k, frag)
    else:
        _put_frags(k.pages, k.frags, k.st, frag)


@njit(cache=True)
def _drop_paged(k, cpu, frag, obj):
    """The paged data of obj's skb given up, as skb_release_data() and a whole __pskb_pull_tail() (skb_condense())
    do: its frag pages in order, then each chained skb freed whole (kfree_skb() on this CPU)."""
    g = k.gro
    if frag >= 0:
        if k.cfg[PAGE_POOL]:
            _pp_put_skb_frags(k, frag)  # skb_frag_unref() of an skb marked for recycling (mana, libeth)
        else:
            _put_frags(k.pages, k.frags, k.st, frag)
    m = g.member[obj, M_NEXT]
    g.member[obj, M_NEXT] = -1
    while m >= 0:
        nxt = g.member[m, M_NEXT]
        g.member[m, M_NEXT] = -1
        napi._release_data(k, cpu, g.member[m, M_HEAD], g.member[m, M_FRAG])
        _slab_free(k.slabs, CACHE_SKB, cpu, k.pages, k.st, m)
        m = nxt


@njit(cache=True)
def _pin_members(k, obj, delta):
    """Simulation.pinned of the pages of obj's frag_list skbs (heads and frags), +1 queued, -1 read."""
    g = k.gro
    m = g.member[obj, M_NEXT]
    while m >= 0:
        _pin_page(k.sock, k.st, napi._head_page(k.slabs, g.member[m, M_HEAD]), delta)
        if g.member[m, M_FRAG] >= 0:
            _pin_frags(k.sock, k.frags, k.st, g.member[m, M_FRAG], delta)
        m = g.member[m, M_NEXT]




# -- the traffic's facts --------------------------------------------------------------------------------------------


def tcp_bulk_chunks(source, config, ref, legacy: bool, measure=None):
    """tcp-bulk traffic (skbsim.traffic.synthetic.TcpBulkSource) in chunks for a GRO run: (lengths, arrival
    times, RX queues, header lengths, facts), facts a row per frame (F_* columns).

    Each frame's flow is the source's own seeded draw; a flow's n-th segment carries its initial sequence
    number plus n * mss, its first IP ID plus n, and (with timestamps) TSval of the flow's clock base plus
    the arrival time in ms, as TcpBulkSource._generate() builds its header; the rest of its header is the
    flow's template: ACK, the window, TSecr, TTL 64, DF.  legacy: the header length ice_construct_skb()
    copies (the model's eth_get_headlen() of the template: one layout for every segment); measure(header,
    length), in its place: virtio_net's code of the template (skbsim.fast.virtio_setup.VirtioCodes).
    """
    from skbsim.fast.traffic import CHUNK, _arrival_times, _legacy_headlen
    from skbsim.net.ipv4.tcp_offload import TCP_FLAG_ACK

    tcp = source.tcp
    length = tcp.frame_len
    take_times = _arrival_times(source.rate, source.arrival, source.seed)
    pick_flows = flow_draws(source)
    # a row per value, a column per flow: queue, hash, isn, ipid, tsbase, ack, tsecr, segments so far
    per_flow = np.zeros((8, 0), np.int64)
    thlen = tcp.header_len - 34
    template = source._flow_state(0).template
    flag_word = ((thlen // 4) << 28) | TCP_FLAG_ACK | template.window
    if legacy:
        measure = _legacy_headlen(ref)
    hlen = measure(template.build(length), length) if measure is not None else length
    same_for_all = np.zeros(F_FIELDS, np.int64)
    for column, value in ((F_TCP, 1), (F_FLAGS, flag_word), (F_THLEN, thlen), (F_TTL_TOS, 64 << 8),
                          (F_FRAG_OFF, IP_DF), (F_TOTLEN, length - ETH_HLEN)):
        same_for_all[column] = value
    remaining = source.count
    while remaining > 0:
        n = min(CHUNK, remaining)
        remaining -= n
        picks = pick_flows(n)
        top = int(picks.max()) + 1
        if top > per_flow.shape[1]:  # the flows first drawn in this chunk
            new = [source._flow_state(index) for index in range(per_flow.shape[1], top)]
            per_flow = np.concatenate([per_flow, np.array(
                [[s.queue for s in new], [s.rss_hash for s in new], [s.seq for s in new], [s.ip_id for s in new],
                 [s.ts_base for s in new], [s.template.ack_seq for s in new], [s.template._tsecr for s in new],
                 [0] * len(new)], np.int64)], axis=1)
        times = take_times(n)
        facts = np.empty((n, F_FIELDS), np.int64)
        queues = np.empty(n, np.int64)
        _tcp_bulk_facts(facts, queues, picks, times, per_flow, same_for_all, np.int64(tcp.mss), np.int64(tcp.timestamps))
        yield np.full(n, length, np.int64), times, queues, np.full(n, hlen, np.int64), facts


@njit(cache=True, entry=True)
def _tcp_bulk_facts(facts, queues, picks, times, per_flow, same_for_all, mss, timestamps):
    """tcp_bulk_chunks()'s rows, frame by frame: facts[i] (F_* columns) and queues[i] of the frame of flow
    picks[i] arriving at times[i]; per_flow (a row per value, a column per flow: queue, hash, initial
    sequence number, first IP ID, TSval base, ack_seq, TSecr, segments so far) counts each flow's segments."""
    for i in range(picks.shape[0]):
        f = picks[i]
        nth = per_flow[7, f]
        per_flow[7, f] = nth + 1
        row = facts[i]
        for c in range(row.shape[0]):
            row[c] = same_for_all[c]
        row[F_FLOW] = f
        row[F_HASH] = per_flow[1, f]
        row[F_SEQ] = (per_flow[2, f] + nth * mss) & U32_MASK
        row[F_ACK] = per_flow[5, f]
        if timestamps:
            row[F_TSVAL] = (per_flow[4, f] + times[i] // 1_000_000) & U32_MASK
            row[F_TSECR] = per_flow[6, f]
        row[F_IPID] = (per_flow[3, f] + nth) & 0xFFFF
        queues[i] = per_flow[0, f]


def flow_draws(source):
    """SyntheticSource._flow_picker() as int64 arrays: the same draws, made by numpy.

    The picker is random.Random(seed string).choices(range(flows), k), which takes floor(random() * flows) per
    frame, random() being genrand_res53() of MT19937: two 32-bit outputs a, b give ((a >> 5) * 2**26 + (b >>
    6)) / 2**53.  numpy's MT19937, given the Random's state, makes the same 32-bit outputs."""
    import random

    flows = source.flows
    if flows == 1:
        return lambda k: np.zeros(k, np.int64)
    _, words, _ = random.Random(f"skbsim.traffic/{source.seed}/flows").getstate()
    bits = np.random.MT19937()
    bits.state = {"bit_generator": "MT19937", "state": {"key": np.asarray(words[:624], np.uint32), "pos": words[624]}}

    def draws(k):
        raw = bits.random_raw(2 * k).astype(np.uint64)
        x = ((raw[0::2] >> np.uint64(5)) * np.uint64(67108864) + (raw[1::2] >> np.uint64(6))).astype(np.float64)
        return np.floor(x / 9007199254740992.0 * flows).astype(np.int64)
    return draws


def capture_chunks(source, ref, legacy: bool, measure=None):
    """A capture's frames in chunks for a GRO run: traffic._frames_with_headlen()'s (lengths, arrival times,
    RX queues, header lengths: measured for legacy-rx only, or measure(header, length) of every frame:
    virtio_net's codes) and each frame's facts, read from its leading bytes as the driver writes them
    (skbsim.drivers.base.frame_header()) and GRO reads them: frame_facts()."""
    from skbsim.fast.capture_facts import capture_fact_chunks  # -- capture facts --
    from skbsim.fast.traffic import _frames_with_headlen

    # -- capture facts --: a classic pcap's, by numpy (not yet with a driver's own measure: virtio_net's codes)
    fast = capture_fact_chunks(source, ref, legacy) if measure is None else None
    if fast is not None:
        yield from fast
        return
    facts_of = capture_facts_reader(ref)
    rows: list = []

    def frames():
        for frame in source:
            rows.append(facts_of(frame))
            yield frame

    # (without legacy-rx or measure nothing is measured: every frame is at most 65535 bytes)
    if legacy:
        chunks = _frames_with_headlen(frames(), ref)
    elif measure is not None:
        chunks = _frames_with_headlen(frames(), ref, measure, 0)
    else:
        chunks = _frames_with_headlen(frames(), ref, lambda header, length: 0, 1 << 16)
    for lengths, times, queues, hlens in chunks:
        n = len(lengths)
        facts = np.array(rows[:n], np.int64).reshape(n, F_FIELDS)
        del rows[:n]
        yield lengths, times, queues, hlens, facts


def capture_facts_reader(ref):
    """A function giving each frame of a capture, in order, its facts: frame_facts() of its leading bytes as the
    driver writes them (skbsim.drivers.base.frame_header()), its flow numbered among the frames before it."""
    from skbsim.drivers.base import frame_header

    templates = [state.queue.synthetic for state in ref.cpus]
    flows: dict = {}

    def facts_of(frame) -> tuple:
        return frame_facts(frame_header(frame, templates[frame.queue % len(templates)]), frame.rss_hash, flows)
    return facts_of


_NO_FACTS = (0,) * F_FIELDS
_OPT_WORDS = struct.Struct(f"<{F_OPT_WORDS}q")


def frame_facts(header: bytes, rss_hash: int, flows: dict) -> tuple:
    """What GRO reads of a frame (F_* columns): F_TCP 0 unless inet_gro_receive() and tcp4_gro_receive() take it
    (EtherType IPv4, a 20-byte IPv4 header (0x45) that is not a fragment, with a good checksum, protocol TCP,
    the whole TCP header within the frame's bytes).  The flow is a number per distinct (MAC header,
    addresses, ports) in flows, which gro_list_prepare(), inet_gro_receive() and tcp_gro_lookup() compare."""
    from skbsim.net.ipv4.af_inet import IP_MF, IP_OFFSET, IPPROTO_TCP, iphdr
    from skbsim.net.ipv4.tcp_offload import tcphdr

    if len(header) < ETH_HLEN + 20 or header[12:14] != b"\x08\x00":
        return _NO_FACTS
    iph = iphdr(header, ETH_HLEN)
    if (iph.protocol != IPPROTO_TCP or iph.ver_ihl != 0x45 or iph.frag_off & (IP_MF | IP_OFFSET)
            or not iph.csum_ok):
        return _NO_FACTS
    at = ETH_HLEN + 20
    if len(header) < at + 20:
        return _NO_FACTS
    thlen = (header[at + 12] >> 4) * 4
    if thlen < 20 or len(header) < at + thlen:
        return _NO_FACTS
    th = tcphdr(header, at)
    key = (header[:ETH_HLEN], iph.saddr, iph.daddr, th.ports)
    flow = flows.get(key)
    if flow is None:
        flow = flows[key] = len(flows)
    options = th.options
    tsval = tsecr = 0
    tsval_at = _timestamp_option(options)
    if tsval_at >= 0:
        tsval = int.from_bytes(options[tsval_at:tsval_at + 4], "big")
        tsecr = int.from_bytes(options[tsval_at + 4:tsval_at + 8], "big")
    # (in F_* order)
    return (1, flow, rss_hash, th.seq, th.ack_seq, th.flags, tsval, tsecr, thlen, iph.id, iph.ttl << 8 | iph.tos,
            iph.frag_off, iph.tot_len) + _OPT_WORDS.unpack(options + bytes(8 * F_OPT_WORDS - len(options)))


def _timestamp_option(options: bytes) -> int:
    """Where TSval starts in TCP option bytes (kind 8, length 10), or -1: the timestamps TCP_SKB_CB keeps."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            return -1
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            return -1
        if kind == 8 and options[i + 1] == 10 and i + 10 <= len(options):
            return i + 2
        i += options[i + 1]
    return -1
