"""-- TCP through NAPI drivers --: the fast engine's TCP receivers (tcp_run.py) joined to the skbs a NAPI driver, or
GRO, hands to the stack (the poll's batch, as netif_receive_skb() takes it), compiled.

The reference engine's Simulation._deliver() gives each skb to Sockets.deliver(): TCP_SKB_CB from the segment's
header (tcp_v4_fill_cb()), ip_local_deliver() (the IP header into the head and pulled, the skb trimmed to
tot_len), then tcp_v4_rcv() (the TCP header into the head).  Here:

- TCP_SKB_CB.  A frame the senders put on a NAPI driver's queue (tcp_events._send_frame()) leaves its control
  block in the queue's FIFO (TcpFlows.nicq).  Every driver takes its frames in order and either hands one on as
  an skb (rx._frame_done(), then the batch) or drops it (rx._frame_dropped()), so without GRO the poll's n-th
  skb is the n-th frame done (TcpFlows.polled).  With GRO, GRO fills each skb's SkbCb as it hands it up, from
  the facts the frame left at its first descriptor (_gro_frame_facts()); the doff, TSval and end_seq are then
  taken as tcp_v4_fill_cb() takes them (doff in bytes, no TSval without the option, end_seq from tot_len).  A
  capture's frame reaches GRO with the facts of its own header (gro.frame_facts()), and its row read from that
  header goes through the FIFO as without GRO; GRO notes each skb's place in the poll's frames (gro.M_POLLED), so
  an aggregate takes its first segment's row, with GRO's flags, length and segments (_capture_gro_cb()).
- Its shape as tcp_v4_rcv() sees it: the bytes in the head once the Ethernet and IP headers are pulled, its
  frags (a GRO frag_list never coalesces: skb_try_coalesce() refuses it), its tailroom (trimmed to tot_len:
  ice's eth_skb_pad() undone), whether its head is a page fragment, SKB_TRUESIZE(end): by the driver's head
  (_head_shape()).  A GRO aggregate's head is its first segment's.  virtio_net's head depends on the buffer,
  not on the frame (page_to_skb(): build_skb() on a buffer whose truesize follows the EWMA, or the copy head):
  virtio records it at the skb's sk_buff (gro.M_HEAD_TS, with GRO or without), and without GRO the rest of the
  headers its copy head lacks are pulled from frag 0 here (ip_rcv_core(), tcp_v4_rcv(): pskb_may_pull()).

Covered: ice (rx=build_skb, rx=legacy), copybreak, virtio_net (mergeable buffers without XDP) and the page_pool
drivers libeth (iavf, idpf, ice's page_pool form) and mana, with GRO or --opt gro=0, bnxt with --opt gro=0, and
ntb_netdev (netif_rx(), no GRO).  A page_pool driver's skbs are marked for recycling (_pp_recycle()):
skb_try_coalesce() keeps them apart from tcp_collapse()'s skbs, and their pages go back to their pools wherever they
are freed (napi._release_data()).  The frames of the other NAPI drivers (mlx5, gve) reach this join too (their poll
hands on the batch the same way); what their heads are is theirs to add to _head_shape() (tcp_engine.unsupported_tcp()
says which are the reference engine's).
"""

from __future__ import annotations

from skbsim.fast import gro
from skbsim.fast.layout import ETH_HLEN, FL_TAG, HEAD_SMALL, U32_MASK, njit
from skbsim.fast.mm import _nr_frags
from skbsim.fast.napi import _head_page
from skbsim.fast.state import (
    BUILD_TRUESIZE, CB_ACK_SEQ, CB_DOFF, CB_FRAME, CB_END_SEQ, CB_FIELDS, CB_FLOW, CB_GSO_SIZE, CB_KIND, CB_SEGS, CB_SEQ,
    CB_BUILD_TS, CB_TCP_FLAGS, CB_TRUESIZE, CB_TSECR, CB_TSVAL, CB_WINDOW, COND_ROOM, COPYBREAK, DRIVER,
    DRIVER_COPYBREAK, DRIVER_ICE, FR_FLAGS, FR_IP_ID, FR_PAYLOAD, FR_SEQ, FR_TSECR, FR_TSVAL, F_ACK_SEQ, F_DOFF,
    F_TWINDOW, HEAD_KIND, HEAD_TRUESIZE, LEGACY, PACKETS, RQ_NR_FRAGS, RQ_TAILROOM, SKB_DLEN, SKB_FIELDS, SKB_FRAG,
    SKB_HLEN, SKB_OBJ, SN_TIMESTAMPS, TC_ERR,
)
from skbsim.fast.state import TC_CAPTURE  # -- TCP capture --
from skbsim.fast.state import DRIVER_VIRTIO, VQ_COPY_ROOM  # virtio_net
from skbsim.fast.layout import NTB_BUF_ROW, TH_PAGE_FRAG, T_HEAD, T_ROOM, T_TS  # ntb_netdev
from skbsim.fast.state import DRIVER_NTB  # ntb_netdev
from skbsim.fast.state import COND_TS, DRIVER_LIBETH, DRIVER_MANA, MANA_NAPI_FRAG, RQ_PP_RECYCLE  # page_pool drivers
from skbsim.fast import bnxt  # -- bnxt -- (a module: its heads)
from skbsim.fast.state import BN_HEAD, BN_HEAD_PAGE_FRAG, DRIVER_BNXT  # -- bnxt --
from skbsim.fast.tcp import SG_END_TS, SG_HEAD_FRAG, TCP_PULL, TCP_TABLE, TCP_UNMODELLED
from skbsim.net.ipv4.af_inet import IP_DF
from skbsim.net.ipv4.tcp import TCPHDR_PSH  # -- TCP capture --

#: the Ethernet and IP headers, pulled before tcp_v4_rcv() (eth_type_trans(), ip_local_deliver())
IP_PULLED = ETH_HLEN + 20
#: a GRO aggregate with a frag_list counts this many frags more: skb_try_coalesce() never takes it nor adds to it
FRAG_LIST_FRAGS = 1 << 20
#: TCPHDR_SYN | TCPHDR_FIN: each takes a sequence number
SYN_FIN = 0x03


@njit(cache=True, forceinline=True)
def _frame_cb(cb, fl, f, fr):
    """TCP_SKB_CB of a frame a sender sent (fr: its FR_* row; fl: its flow's row), as tcp_v4_fill_cb() reads it
    from the header: seq, end_seq, the template's ack_seq, window and doff, the flags, the timestamps (TSval -1:
    no option)."""
    cb[CB_FLOW] = f
    cb[CB_SEQ] = fr[FR_SEQ]
    cb[CB_END_SEQ] = (fr[FR_SEQ] + fr[FR_PAYLOAD]) & U32_MASK
    cb[CB_ACK_SEQ] = fl[F_ACK_SEQ]
    cb[CB_TCP_FLAGS] = fr[FR_FLAGS]
    cb[CB_DOFF] = fl[F_DOFF]
    cb[CB_WINDOW] = fl[F_TWINDOW]
    cb[CB_TSVAL] = fr[FR_TSVAL]
    cb[CB_TSECR] = fr[FR_TSECR] if fr[FR_TSVAL] >= 0 else 0
    cb[CB_SEGS] = 1
    cb[CB_GSO_SIZE] = 0
    cb[CB_FRAME] = -1


@njit(cache=True, forceinline=True)
def _gro_frame_facts(k, f, fr, length):
    """What GRO reads of a sender's frame (gro.F_* columns, as tcp_bulk_chunks() makes them for the same header),
    as the chunk of facts the NIC's _gro_nic() takes: the frame is the chunk's only one (counted in PACKETS)."""
    g = k.gro
    fl = k.tfl.fl[f]
    facts = g.facts[0]
    for c in range(facts.shape[0]):
        facts[c] = 0
    facts[gro.F_TCP] = 1
    facts[gro.F_FLOW] = f
    facts[gro.F_HASH] = k.tfl.rss[f]
    facts[gro.F_SEQ] = fr[FR_SEQ]
    facts[gro.F_ACK] = fl[F_ACK_SEQ]
    facts[gro.F_FLAGS] = ((fl[F_DOFF] // 4) << 28) | (fr[FR_FLAGS] << 16) | fl[F_TWINDOW]
    if fr[FR_TSVAL] >= 0:
        facts[gro.F_TSVAL] = fr[FR_TSVAL]
        facts[gro.F_TSECR] = fr[FR_TSECR]
    facts[gro.F_THLEN] = fl[F_DOFF]
    facts[gro.F_IPID] = fr[FR_IP_ID]
    facts[gro.F_TTL_TOS] = 64 << 8
    facts[gro.F_FRAG_OFF] = IP_DF
    facts[gro.F_TOTLEN] = length - ETH_HLEN
    g.st[gro.GS_BASE] = k.st[PACKETS] - 1


@njit(cache=True, forceinline=True)
def _nicq_push(k, cpu, f, fr):
    """The frame the NIC just took on queue cpu leaves its TCP_SKB_CB at the FIFO's tail."""
    tail = _nicq_tail(k, cpu)
    if tail >= 0:
        _frame_cb(k.tfl.nicq[cpu, tail], k.tfl.fl[f], f, fr)


@njit(cache=True, forceinline=True)
def _nicq_tail(k, cpu):
    """A new row at the tail of queue cpu's FIFO of TCP_SKB_CBs: where it is, or -1 when the FIFO is full."""
    q = k.tfl.nicq[cpu]
    at = k.tfl.nicq_at[cpu]
    if at[1] >= q.shape[0]:
        k.tcp.tc[TC_ERR] = TCP_TABLE
        return -1
    tail = at[0] + at[1]
    at[1] += 1
    return tail if tail < q.shape[0] else tail - q.shape[0]


@njit(cache=True, forceinline=True)
def _nicq_cb(k, cpu, row):
    """-- TCP capture --: the capture's frame the NIC just took on queue cpu leaves its TCP_SKB_CB (row, read
    from its header) at the FIFO's tail."""
    tail = _nicq_tail(k, cpu)
    if tail >= 0:
        cb = k.tfl.nicq[cpu, tail]
        for c in range(CB_FIELDS):
            cb[c] = row[c]


@njit(cache=True)
def _frame_taken(k, cpu, done):
    """The driver took queue cpu's oldest frame: handed on (done: its TCP_SKB_CB is the poll's next), or
    dropped."""
    q = k.tfl.nicq[cpu]
    at = k.tfl.nicq_at[cpu]
    if at[1] == 0:
        k.tcp.tc[TC_ERR] = TCP_UNMODELLED  # a frame no sender sent
        return
    row = q[at[0]]
    at[0] = at[0] + 1 if at[0] + 1 < q.shape[0] else 0
    at[1] -= 1
    if not done:
        return
    polled = k.tfl.polled
    n = polled[-1, 0]
    if n + 1 >= polled.shape[0]:
        k.tcp.tc[TC_ERR] = TCP_TABLE
        return
    for c in range(CB_FIELDS):
        polled[n, c] = row[c]
    polled[-1, 0] = n + 1


@njit(cache=True, forceinline=True)
def _napi_cb(k, skb, d):
    """TCP_SKB_CB of the poll's d-th skb (k.skbcb at its sk_buff), as tcp_v4_fill_cb() fills it: the d-th frame
    the driver handed on, or (GRO) what GRO filled, its doff in bytes, end_seq from its bytes (tot_len: ice's
    padding is not the segment's) and no TSval without the option; a capture's through GRO: _capture_gro_cb()."""
    cb = k.skbcb.cb[skb[SKB_OBJ]]
    if not k.gro.cfg[gro.G_ON]:
        row = k.tfl.polled[d]
        for c in range(CB_FIELDS):
            cb[c] = row[c]
        return
    if k.tcp.tc[TC_CAPTURE]:  # -- TCP capture --
        _capture_gro_cb(k, skb, cb)
        return
    fl = k.tfl.fl[cb[CB_FLOW]]
    cb[CB_DOFF] = fl[F_DOFF]
    syn_fin = 1 if cb[CB_TCP_FLAGS] & SYN_FIN else 0
    cb[CB_END_SEQ] = (cb[CB_SEQ] + _tcp_payload(skb, cb[CB_DOFF]) + syn_fin) & U32_MASK
    if k.tsnd.snd[cb[CB_FLOW], SN_TIMESTAMPS] == 0:  # (GRO's facts carry 0 without the option)
        cb[CB_TSVAL] = -1
        cb[CB_TSECR] = 0


@njit(cache=True, forceinline=True)
def _tcp_payload(skb, doff):
    """The payload of the poll's skb (SKB_* columns) whose TCP header is doff bytes: its bytes less the Ethernet,
    IP and TCP headers (an aggregate's tot_len is its length: iph_totlen())."""
    return skb[SKB_HLEN] + skb[SKB_DLEN] - IP_PULLED - doff


@njit(cache=True, forceinline=True)
def _capture_gro_cb(k, skb, cb):
    """-- TCP capture --: TCP_SKB_CB of a capture's skb GRO handed up (cb: what gro._fill_cb() filled), as
    Sockets.deliver() and _tcp() take it from the skb's header: its first segment's (the capture's row that frame
    left at TcpFlows.polled: its flow, frame, seq, ack_seq, window, doff, timestamps), and for an aggregate the
    flag byte GRO's tcp_gro_receive() grew by the PSH of what it merged (FIN is not modelled: taken off, as the
    row's), end_seq from its length, gso_segs and gso_size."""
    segs = cb[CB_SEGS]
    gso = cb[CB_GSO_SIZE]
    flags = cb[CB_TCP_FLAGS]
    row = k.tfl.polled[k.gro.member[skb[SKB_OBJ], gro.M_POLLED]]
    for c in range(CB_FIELDS):
        cb[c] = row[c]
    if segs > 1:
        cb[CB_TCP_FLAGS] |= flags & TCPHDR_PSH
        cb[CB_END_SEQ] = (cb[CB_SEQ] + _tcp_payload(skb, cb[CB_DOFF])) & U32_MASK
        cb[CB_SEGS] = segs
        cb[CB_GSO_SIZE] = gso


@njit(cache=True, forceinline=True)
def _head_shape(k, frame, obj, hlen):
    """(the head's room from the Ethernet header to its end, SKB_TRUESIZE(end), whether it is a page fragment) of
    the skb at sk_buff obj, which the driver built for a frame of frame bytes with hlen bytes in its head; room -1
    for a driver this join does not know yet.

    virtio_net's head depends on the buffer, not on the frame (drivers/net/virtio_net.c, page_to_skb()): built on
    the buffer, build_skb(buf, truesize) makes end = truesize - SKB_DATA_ALIGN(sizeof(struct skb_shared_info)), the
    frame after the virtio-net header (skb_reserve(hdr_len)), so its room is end - hdr_len; virtio recorded
    SKB_TRUESIZE(end) = SKB_TRUESIZE(0) + truesize - shinfo at the skb (gro.M_HEAD_TS).  Else the copy head,
    napi_alloc_skb(GOOD_COPY_LEN) (M_HEAD_TS 0)."""
    cfg = k.cfg
    if cfg[DRIVER] == DRIVER_VIRTIO:
        head_ts = k.gro.member[obj, gro.M_HEAD_TS]
        if head_ts:
            room, end_ts = gro._virtio_built_head(k, head_ts)
            return room, end_ts, 1
        return cfg[VQ_COPY_ROOM], cfg[HEAD_TRUESIZE], int(cfg[HEAD_KIND] != HEAD_SMALL)
    if cfg[DRIVER] == DRIVER_COPYBREAK:
        if frame > cfg[COPYBREAK]:
            return cfg[COND_ROOM], cfg[CB_BUILD_TS], 1  # napi_build_skb() on the RX buffer
        return k.gro.copy_room[frame], k.rings.copy[CB_TRUESIZE, frame], int(k.rings.copy[CB_KIND, frame] != HEAD_SMALL)
    if cfg[DRIVER] == DRIVER_ICE:
        if cfg[LEGACY]:  # the header skb: napi_alloc_skb(ICE_RX_HDR_SIZE)
            return cfg[COND_ROOM], cfg[HEAD_TRUESIZE], int(cfg[HEAD_KIND] != HEAD_SMALL)
        return cfg[COND_ROOM], cfg[BUILD_TRUESIZE], 1
    if cfg[DRIVER] == DRIVER_LIBETH or cfg[DRIVER] == DRIVER_MANA:
        # napi_build_skb(va, truesize) on the frame's first buffer (libeth with header split: its header buffer),
        # skb_reserve(headroom): end - headroom from the Ethernet header on, SKB_TRUESIZE(end) = truesize +
        # SKB_TRUESIZE(0) - shinfo (cfg COND_ROOM, COND_TS); idpf's short queue's buffers are smaller
        room, end_ts = gro._libeth_head(k, frame, cfg[COND_ROOM], cfg[COND_TS])
        return room, end_ts, 1
    if cfg[DRIVER] == DRIVER_BNXT:  # -- bnxt --: napi_alloc_skb(hlen)'s copy (page mode's headers), or the buffer
        room, end_ts = bnxt._bnxt_condense(k, hlen)
        return room, end_ts, int(bnxt._bnxt_skb_kind(k, hlen) != 1 + HEAD_SMALL)
    if cfg[DRIVER] == DRIVER_NTB:
        # ntb_netdev_rx_handler(): the copy, netdev_alloc_skb_ip_align(len), or the ring's buffer,
        # netdev_alloc_skb(mtu + ETH_HLEN) (a kmalloc head of up to 128 KiB: its tailroom takes whole segments
        # that tcp_try_coalesce() copies in); NtbLengths read each from the model
        row = k.tun.tab[frame if frame <= cfg[COPYBREAK] else NTB_BUF_ROW]
        return row[T_ROOM], row[T_TS], int(row[T_HEAD] == TH_PAGE_FRAG)
    return -1, 0, 0


@njit(cache=True, forceinline=True)
def _napi_segment(k, skb, seg):
    """The poll's skb as tcp_v4_rcv() gets it (the Ethernet and IP headers pulled, trimmed to tot_len): its row
    and its shape (RQ_* columns).  False when the join does not know its head, or (tc[TC_ERR] TCP_PULL) when
    pskb_may_pull() of the headers would have to pull (a head without them) beyond what the join follows."""
    for c in range(SKB_FIELDS):
        seg[c] = skb[c]
    obj = skb[SKB_OBJ]
    on = k.gro.cfg[gro.G_ON]
    frame = k.gro.member[obj, gro.M_FRAME] if on else skb[SKB_HLEN] + skb[SKB_DLEN]
    room, end_ts, head_frag = _head_shape(k, frame, obj, skb[SKB_HLEN])
    if room < 0:
        return False
    hlen = skb[SKB_HLEN]
    need = IP_PULLED + k.skbcb.cb[obj, CB_DOFF]
    if hlen < need:
        # ip_rcv_core()'s pskb_may_pull(skb, sizeof(struct iphdr)) and tcp_v4_rcv()'s pskb_may_pull(skb,
        # th->doff * 4): __pskb_pull_tail() moves the missing bytes from frag 0 into the head.  Followed for
        # virtio_net's copy head (virtio_net_hdr_to_skb() pulled up to the checksum field only) without GRO, or
        # with GRO for a segment it passed up unparsed (a capture's with a wrong IPv4 header checksum: GRO's own
        # pulls are of the segments it parses), when the head's tailroom takes them (no pskb_expand_head()).
        # Frag 0 then always keeps some bytes: it holds the frame's first buffer past the head, either all of a
        # frame above GOOD_COPY_LEN (128 > the 94 bytes of headers at most) or a whole buffer of at least
        # GOOD_PACKET_LEN (mergeable_min_buf_len()).
        if k.cfg[DRIVER] != DRIVER_VIRTIO or skb[SKB_DLEN] == 0 or need > room:
            k.tcp.tc[TC_ERR] = TCP_PULL
            return False
        seg[SKB_DLEN] = skb[SKB_DLEN] - (need - hlen)
        hlen = need
    seg[SKB_HLEN] = hlen - IP_PULLED
    nr_frags = _nr_frags(k.frags, skb[SKB_FRAG])
    if on and k.gro.member[obj, gro.M_NEXT] >= 0:
        nr_frags += FRAG_LIST_FRAGS
    seg[RQ_NR_FRAGS] = nr_frags
    seg[RQ_TAILROOM] = room - hlen
    seg[SG_HEAD_FRAG] = head_frag
    seg[SG_END_TS] = end_ts
    seg[RQ_PP_RECYCLE] = _pp_recycle(k.cfg)
    return True


@njit(cache=True, forceinline=True)
def _pp_recycle(cfg):
    """skb->pp_recycle of the driver's skbs: libeth's and mana's are marked for recycling (skb_mark_for_recycle()),
    except mana's buffers from napi_alloc_frag() (v6.9 above a page); bnxt's, copies included, unless its buffers
    are page_frag pieces (bnxt_deliver_skb()); the other drivers' skbs here own their pages."""
    if cfg[DRIVER] == DRIVER_LIBETH:
        return 1
    if cfg[DRIVER] == DRIVER_BNXT:
        return 0 if cfg[BN_HEAD] == BN_HEAD_PAGE_FRAG else 1
    if cfg[DRIVER] == DRIVER_MANA:
        return 0 if cfg[MANA_NAPI_FRAG] else 1
    return 0


@njit(cache=True)
def _mark_members(k, obj, mark, epoch):
    """The pages of obj's frag_list skbs (heads and frags) not yet marked in this epoch: marked, and counted
    (Simulation._sample_pinned() of a queued GRO aggregate)."""
    g = k.gro
    count = 0
    m = g.member[obj, gro.M_NEXT]
    while m >= 0:
        pid = _head_page(k.slabs, g.member[m, gro.M_HEAD])
        if mark[pid] != epoch:
            mark[pid] = epoch
            count += 1
        frag = g.member[m, gro.M_FRAG]
        if 0 <= frag < FL_TAG:
            if mark[frag] != epoch:
                mark[frag] = epoch
                count += 1
        elif frag >= FL_TAG:
            row = k.frags.fl[frag - FL_TAG]
            for i in range(1, row[0] + 1):
                if mark[row[i]] != epoch:
                    mark[row[i]] = epoch
                    count += 1
        m = g.member[m, gro.M_NEXT]
    return count
