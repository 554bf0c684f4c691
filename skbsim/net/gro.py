"""Generic receive offload, after net/core/gro.c, include/net/gro.h and the
GRO parts of net/core/dev.c (napi_complete_done(), __napi_poll()).

Entry points, as drivers call them (``deliver`` stands for the stack behind
GRO, netif_receive_skb_list_internal(): the model's stack is the caller's,
as in every driver's poll):

- :func:`napi_gro_receive` - an skb the driver built (data at the network
  header, eth_type_trans() done);
- :func:`napi_get_frags` / :func:`napi_gro_frags` - napi->skb, filled with
  page frags by the driver, data at the MAC header;
- :func:`napi_complete_done` - the end of a poll that did less than its
  budget: held skbs are completed (all of them, or with a gro_flush_timeout
  only those older than this jiffy) and the GRO_NORMAL batch goes up;
- :func:`gro_flush_normal` - what __napi_poll() does when a poll used its
  whole budget (``flush_old`` = HZ >= 1000);
- :func:`netif_napi_del` - teardown: napi->skb and every held skb freed.

What GRO holds lives in ``napi.gro`` (:class:`gro_node`): GRO_HASH_BUCKETS
lists of held skbs (youngest first), at most MAX_GRO_SKBS each, chosen by
skb->hash; the GRO_NORMAL batch (rx_list, passed up every
gro_normal_batch segments); and counters (:class:`gro_stats`).

The protocol handlers are in skbsim.net.ipv4 (inet_gro_receive(),
tcp4_gro_receive(), udp4_gro_receive()); they read the headers from
``skb.header_bytes`` (the model keeps no payload).  Checksums of TCP
payloads are taken as valid (ice reports CHECKSUM_UNNECESSARY; a TAP
writer sends correct ones).  Not modelled: IPv6, tunnels and other
encapsulations (no offload handler: GRO_NORMAL), VLAN tags, GRO of
fraglist (NETIF_F_GRO_FRAGLIST) and UDP GRO sockets, napi_defer_hard_irqs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from skbsim.net.skbuff import (
    SKB_FCLONE_UNAVAILABLE,
    SKB_GSO_DODGY,
    SKB_GSO_TCPV4,
    SKB_GSO_TCPV6,
    __kfree_skb,
    __napi_kfree_skb,
    consume_skb,
    kfree_skb,
    napi_alloc_skb,
    pskb_may_pull,
    skb_frag_t,
    skb_has_frag_list,
    skb_is_gso,
    skb_pull,
    skb_push,
    skb_reserve,
)
from skbsim.net.ethernet import ETH_HLEN, ETH_P_IPV6, IPPROTO_TCP, eth_type_trans
from skbsim.net.napi import GRO_LEGACY_MAX_SIZE, NETIF_F_GRO, napi_skb_cache_put

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import sk_buff

Deliver = Callable[["sk_buff"], None]

#: net/core/gro.c: MAX_GRO_SKBS - held skbs per hash bucket.
MAX_GRO_SKBS = 8
#: include/net/gro.h: GRO_HASH_BUCKETS.
GRO_HASH_BUCKETS = 8
#: net.core.gro_normal_batch (net_hotdata.gro_normal_batch), 8 in every release.
GRO_NORMAL_BATCH = 8
E2BIG = 7
ETOOMANYREFS = 109

# include/linux/netdevice.h: enum gro_result
GRO_MERGED = 0
GRO_MERGED_FREE = 1
GRO_HELD = 2
GRO_NORMAL = 3
GRO_CONSUMED = 4

# include/net/gro.h: NAPI_GRO_CB(skb)->free
NAPI_GRO_FREE = 1
NAPI_GRO_FREE_STOLEN_HEAD = 2


class napi_gro_cb:
    """include/net/gro.h: struct napi_gro_cb - GRO's view of an skb (skb->cb).

    ``frag0_len`` bytes of headers are readable without pulling, in the
    linear part or (``frag0_in_frag``) at the start of frags[0];
    ``data_offset`` is skb_gro_offset(); ``iph`` and ``th`` are the parsed
    IPv4 and TCP headers (skbsim.net.ipv4), kept while the skb is held
    (th's flag word grows by the FIN/PSH of what merges into it).
    """

    __slots__ = ("frag0_in_frag", "frag0_len", "data_offset", "flush", "count", "same_flow", "free", "age", "last",
                 "proto", "network_offset", "ip_fixedid", "iph", "th", "flush_reason")

    def __init__(self) -> None:
        self.frag0_in_frag = False
        self.frag0_len = 0
        self.data_offset = 0
        self.flush = 0
        self.count = 1
        self.same_flow = 0
        self.free = 0
        self.age = 0
        self.last = None
        self.proto = 0
        self.network_offset = 0
        self.ip_fixedid = False
        self.iph = None
        self.th = None
        # The model's: why the protocol handler returned a held skb to complete (for the counters).
        self.flush_reason = ""


class gro_list:
    """include/net/gro.h: struct gro_list - one hash bucket: held skbs, youngest first."""

    __slots__ = ("list", "count")

    def __init__(self) -> None:
        self.list: list[sk_buff] = []
        self.count = 0


class gro_stats:
    """What GRO did, counted where it happens (the model's, not the kernel's).

    received: skbs given to napi_gro_receive() / napi_gro_frags().
    normal, held: GRO_NORMAL and GRO_HELD results.
    merged_stolen_head / merged_frags / merged_frag_list: skbs merged into a
        held one by skb_gro_receive()'s three branches (head page stolen as a
        frag, frags moved, chained on the frag_list).
    tcp_segments: skbs that reached tcp_gro_receive().
    handed_up: skbs passed up by gro_normal_one(), and their segments
        (``segments_up``), len and truesize; aggregates: those of more
        than one segment.
    napi_cache_puts: sk_buffs GRO returned to the NAPI skb cache (stolen
        heads, and frags-moved skbs freed by __napi_kfree_skb());
        napi_skb_reused: skbs napi_reuse_skb() gave back as napi->skb.
    flushes: completed held skbs by why they were completed.
    """

    COUNTERS = ("received", "normal", "held", "merged_stolen_head", "merged_frags", "merged_frag_list",
                "tcp_segments", "handed_up", "segments_up", "len_up", "truesize_up", "aggregates",
                "aggregate_segments", "aggregate_len", "aggregate_truesize", "napi_cache_puts", "napi_skb_reused")
    __slots__ = COUNTERS + ("flushes",)

    def __init__(self) -> None:
        for name in self.COUNTERS:
            setattr(self, name, 0)
        self.flushes: dict[str, int] = {}

    @property
    def merged(self) -> int:
        return self.merged_stolen_head + self.merged_frags + self.merged_frag_list

    def add(self, other: gro_stats) -> None:
        for name in self.COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.flushes.items():
            self.flushes[reason] = self.flushes.get(reason, 0) + n


class gro_node:
    """include/net/gro.h: struct gro_node (6.15+; before, fields of struct napi_struct).

    ``entry`` (the model's) stands for the napi_gro_receive_entry and
    napi_gro_frags_entry tracepoints: None, or a callable given each skb as
    GRO takes it (napi_gro_frags(): after napi_frags_skb() pulled the
    Ethernet header), before GRO changes it.
    """

    __slots__ = ("hash", "bitmask", "rx_list", "rx_count", "stats", "entry")

    def __init__(self) -> None:
        self.hash = [gro_list() for _ in range(GRO_HASH_BUCKETS)]
        self.bitmask = 0
        self.rx_list: list[sk_buff] = []
        self.rx_count = 0
        self.stats = gro_stats()
        self.entry: Callable[[sk_buff], None] | None = None

    def held(self) -> int:
        return sum(bucket.count for bucket in self.hash)


# -- feature settings of the device ---------------------------------------------------------------


def netif_elide_gro(dev: net_device) -> bool:
    """include/linux/netdevice.h: netif_elide_gro() - GRO off (no XDP programs in the model)."""
    return not dev.features & NETIF_F_GRO


def netif_set_gro(dev: net_device, on: bool) -> None:
    """``ethtool -K DEV gro on|off``: NETIF_F_GRO in dev->features."""
    dev.features = dev.features | NETIF_F_GRO if on else dev.features & ~NETIF_F_GRO


def netif_get_gro_max_size(kernel: Kernel, dev: net_device, p: sk_buff) -> int:
    """include/linux/netdevice.h: netif_get_gro_max_size() - the limit for p's protocol.

    With feature ``gro_ipv4_max_size`` (6.3+) IPv4 has a limit of its own;
    6.1 has one limit for both.
    """
    if p.protocol == ETH_P_IPV6 or not kernel.profile.has("gro_ipv4_max_size"):
        return dev.gro_max_size
    return dev.gro_ipv4_max_size


# -- headers: frag0 and pulls (include/net/gro.h) --------------------------------------------------


def skb_gro_offset(skb: sk_buff) -> int:
    return skb.cb.data_offset


def skb_gro_len(skb: sk_buff) -> int:
    return skb.len - skb.cb.data_offset


def skb_gro_pull(skb: sk_buff, length: int) -> None:
    skb.cb.data_offset += length


def skb_gro_reset_offset(kernel: Kernel, skb: sk_buff, nhoff: int) -> napi_gro_cb:
    """net/core/gro.c: skb_gro_reset_offset() - a fresh control block; where headers can be read.

    A linear part is read in place; an skb without one is read from frags[0]
    (at most the tailroom, so that the headers can be pulled in later) when
    NET_IP_ALIGN is 0 or the network header is 4-byte aligned there.  (6.1
    leaves frag0 NULL for linear skbs and reads them through the slow path:
    the same bytes, no pull.)
    """
    cb = skb.cb = napi_gro_cb()
    headlen = skb.len - skb.data_len
    if headlen:
        cb.frag0_len = headlen
        return cb
    frags = skb.shinfo.frags
    if frags and (not kernel.profile.NET_IP_ALIGN or not (frags[0].offset + nhoff) & 3):
        cb.frag0_in_frag = True
        cb.frag0_len = min(frags[0].size, skb.end - skb.tail)
    return cb


def gro_pull_from_frag0(kernel: Kernel, skb: sk_buff, grow: int) -> None:
    """net/core/gro.c: gro_pull_from_frag0() - copy grow header bytes from frags[0] into the head."""
    if skb.end - skb.tail < grow:
        kernel.warn_once("gro_pull_from_frag0", "WARNING: gro_pull_from_frag0 without the tailroom (DEBUG_NET_WARN_ON_ONCE)")
    skb.data_len -= grow
    skb.tail += grow
    frags = skb.shinfo.frags
    frag = frags[0]
    frag.offset += grow
    frag.size -= grow
    if not frag.size:
        kernel.pages.put_page(frag.page)
        del frags[0]


def gro_try_pull_from_frag0(kernel: Kernel, skb: sk_buff) -> None:
    """net/core/gro.c: gro_try_pull_from_frag0() - headers read from frags[0] move into the head."""
    grow = skb.cb.data_offset - (skb.len - skb.data_len)
    if grow > 0:
        gro_pull_from_frag0(kernel, skb, grow)


def skb_gro_header(kernel: Kernel, skb: sk_buff, hlen: int) -> bool:
    """include/net/gro.h: skb_gro_header() - can the first hlen bytes (from skb->data) be read?

    Within frag0 they are read in place; otherwise skb_gro_header_slow()
    pulls them into the head (pskb_may_pull()) and frag0 is given up.  The
    model also needs the bytes themselves in skb.header_bytes: a capture cut
    shorter than the headers reads as a packet too short for them.
    """
    header = skb.header_bytes
    if header is None or len(header) < ETH_HLEN + hlen:
        return False
    cb = skb.cb
    if hlen <= cb.frag0_len:
        return True
    if not pskb_may_pull(kernel, skb, hlen):
        return False
    cb.frag0_in_frag = False
    cb.frag0_len = 0
    return True


# -- the hand-up (include/net/gro.h) --------------------------------------------------------------


def gro_normal_list(gro: gro_node, deliver: Deliver) -> None:
    """include/net/gro.h: gro_normal_list() - the batch goes to netif_receive_skb_list_internal()."""
    if not gro.rx_count:
        return
    batch, gro.rx_list = gro.rx_list, []
    gro.rx_count = 0
    for skb in batch:
        deliver(skb)


def gro_normal_one(gro: gro_node, skb: sk_buff, segs: int, deliver: Deliver) -> None:
    """include/net/gro.h: gro_normal_one() - queue for list RX; a full batch goes up."""
    stats = gro.stats
    stats.handed_up += 1
    stats.segments_up += segs
    stats.len_up += skb.len
    stats.truesize_up += skb.truesize
    if segs > 1:
        stats.aggregates += 1
        stats.aggregate_segments += segs
        stats.aggregate_len += skb.len
        stats.aggregate_truesize += skb.truesize
    gro.rx_list.append(skb)
    gro.rx_count += segs
    if gro.rx_count >= GRO_NORMAL_BATCH:
        gro_normal_list(gro, deliver)


def gro_complete(kernel: Kernel, gro: gro_node, skb: sk_buff, deliver: Deliver) -> None:
    """net/core/gro.c: gro_complete() (napi_gro_complete() up to 6.14) - a held skb goes up.

    A lone segment loses its gso_size; an aggregate gets its GSO fields from
    inet_gro_complete() / tcp4_gro_complete() (gso_segs = count, gso_type
    |= SKB_GSO_TCPV4).  Its len and truesize are what the merges made them.
    """
    cb = skb.cb
    shinfo = skb.shinfo
    if cb.count == 1:
        shinfo.gso_size = 0
    else:
        shinfo.gso_segs = cb.count
        shinfo.gso_type |= SKB_GSO_TCPV4
    gro_normal_one(gro, skb, cb.count, deliver)


def _count_flush(gro: gro_node, reason: str) -> None:
    flushes = gro.stats.flushes
    flushes[reason] = flushes.get(reason, 0) + 1


def __gro_flush_chain(kernel: Kernel, gro: gro_node, index: int, flush_old: bool, deliver: Deliver,
                      reason: str) -> None:
    """net/core/gro.c: __gro_flush_chain() - complete a bucket's skbs, oldest first.

    With flush_old it stops at the first skb held during this jiffy.
    """
    bucket = gro.hash[index]
    held = bucket.list
    while held:
        skb = held[-1]
        if flush_old and skb.cb.age == kernel.jiffies:
            return
        held.pop()
        _count_flush(gro, reason)
        if kernel.explain is not None:
            kernel.note(f"gro: {reason}: held skb of {skb.cb.count} segments, len {skb.len}, truesize "
                        f"{skb.truesize} goes up")
        gro_complete(kernel, gro, skb, deliver)
        bucket.count -= 1
    if not bucket.count:
        gro.bitmask &= ~(1 << index)


def __gro_flush(kernel: Kernel, gro: gro_node, flush_old: bool, deliver: Deliver, reason: str = "napi_complete") -> None:
    """net/core/gro.c: __gro_flush() (napi_gro_flush() up to 6.14) - every bucket, in index order."""
    for index in range(GRO_HASH_BUCKETS):
        if gro.bitmask & (1 << index):
            __gro_flush_chain(kernel, gro, index, flush_old, deliver, reason)


def gro_flush_normal(kernel: Kernel, gro: gro_node, flush_old: bool, deliver: Deliver,
                     reason: str = "napi_complete") -> None:
    """include/net/gro.h: gro_flush_normal() (6.17+; before, the same two calls inline):
    complete held skbs (only those not held this jiffy with flush_old), then pass the batch up."""
    if gro.bitmask:
        __gro_flush(kernel, gro, flush_old, deliver, reason)
    gro_normal_list(gro, deliver)


def napi_gro_flush(kernel: Kernel, napi: napi_struct, flush_old: bool, deliver: Deliver) -> None:
    """include/net/gro.h: napi_gro_flush() - complete what the NAPI instance holds (no hand-up of the batch)."""
    if napi.gro.bitmask:
        __gro_flush(kernel, napi.gro, flush_old, deliver, "napi_gro_flush")


def gro_flush_oldest(kernel: Kernel, gro: gro_node, bucket: gro_list, deliver: Deliver) -> None:
    """net/core/gro.c: gro_flush_oldest() - a full bucket completes its oldest skb (the caller keeps the count)."""
    oldest = bucket.list.pop()
    _count_flush(gro, "max_gro_skbs")
    if kernel.explain is not None:
        kernel.note(f"gro: bucket full (MAX_GRO_SKBS {MAX_GRO_SKBS}): the oldest held skb "
                    f"({oldest.cb.count} segments) goes up")
    gro_complete(kernel, gro, oldest, deliver)


# -- receive ---------------------------------------------------------------------------------------


def gro_list_prepare(bucket: gro_list, skb: sk_buff) -> None:
    """net/core/gro.c: gro_list_prepare() - same_flow of each held skb, by hash, device and MAC header."""
    hash_ = skb.hash
    dev = skb.dev
    mac = (skb.header_bytes or b"")[:ETH_HLEN]
    for p in bucket.list:
        if p.hash != hash_ or p.dev is not dev:
            p.cb.same_flow = 0
            continue
        p.cb.same_flow = int((p.header_bytes or b"")[:ETH_HLEN] == mac)


#: net_hotdata.offload_base: EtherType -> the protocol's gro_receive (dev_add_offload(); skbsim.net.ipv4
#: registers ETH_P_IP when imported, at the end of this module, as inet_init() does at boot).
PACKET_OFFLOADS: dict[int, Callable] = {}


def dev_gro_receive(kernel: Kernel, gro: gro_node, skb: sk_buff, deliver: Deliver) -> int:
    """net/core/gro.c: dev_gro_receive() - merge into a held skb, hold, or pass up (GRO_NORMAL).

    The bucket is skb->hash & (GRO_HASH_BUCKETS - 1).  An IPv4 skb goes to
    inet_gro_receive(); other protocols have no handler here.  The held skb
    the handler returns is completed; a skb that merged is done; one marked
    flush goes up alone; otherwise it is held (a full bucket first
    completes its oldest), its headers pulled out of frags[0].
    """
    index = skb.hash & (GRO_HASH_BUCKETS - 1)
    bucket = gro.hash[index]
    cb = skb.cb
    gro_receive = PACKET_OFFLOADS.get(skb.protocol)
    if netif_elide_gro(skb.dev) or gro_receive is None:
        return _gro_normal(kernel, gro, skb, index)
    gro_list_prepare(bucket, skb)
    cb.flush = int(skb_has_frag_list(skb))
    cb.count = 1
    if skb_is_gso(skb):
        shinfo = skb.shinfo
        cb.count = shinfo.gso_segs
        if not shinfo.gso_type & (SKB_GSO_TCPV4 | SKB_GSO_TCPV6) or shinfo.gso_type & SKB_GSO_DODGY:
            cb.flush = 1
    pp = gro_receive(kernel, bucket.list, skb)
    if cb.th is not None:
        gro.stats.tcp_segments += 1
    ret = GRO_MERGED_FREE if cb.free else GRO_MERGED
    if pp is not None:
        bucket.list.remove(pp)
        _count_flush(gro, cb.flush_reason)
        gro_complete(kernel, gro, pp, deliver)
        bucket.count -= 1
    if cb.same_flow:
        stats = gro.stats
        if cb.free == NAPI_GRO_FREE_STOLEN_HEAD:
            stats.merged_stolen_head += 1
        elif cb.free == NAPI_GRO_FREE:
            stats.merged_frags += 1
        else:
            stats.merged_frag_list += 1
        _update_bitmask(gro, bucket, index)
        return ret
    if cb.flush:
        return _gro_normal(kernel, gro, skb, index)
    if bucket.count >= MAX_GRO_SKBS:
        gro_flush_oldest(kernel, gro, bucket, deliver)
    else:
        bucket.count += 1
    gro_try_pull_from_frag0(kernel, skb)
    cb.age = kernel.jiffies
    cb.last = skb
    if not skb_is_gso(skb):
        skb.shinfo.gso_size = skb_gro_len(skb)
    bucket.list.insert(0, skb)
    _update_bitmask(gro, bucket, index)
    return GRO_HELD


def _gro_normal(kernel: Kernel, gro: gro_node, skb: sk_buff, index: int) -> int:
    """dev_gro_receive()'s normal: exit - headers read from frags[0] are pulled; the skb goes up alone."""
    gro_try_pull_from_frag0(kernel, skb)
    _update_bitmask(gro, gro.hash[index], index)
    return GRO_NORMAL


def _update_bitmask(gro: gro_node, bucket: gro_list, index: int) -> None:
    if bucket.count:
        gro.bitmask |= 1 << index
    else:
        gro.bitmask &= ~(1 << index)


def napi_skb_free_stolen_head(kernel: Kernel, skb: sk_buff) -> None:
    """net/core/skbuff.c: napi_skb_free_stolen_head() - the head lives on as a frag; the sk_buff
    goes to the NAPI skb cache (skb->slow_gro state - dst, conntrack, extensions - is not modelled)."""
    del kernel.live_skbs[skb.addr]
    napi_skb_cache_put(kernel, skb.addr)


def gro_skb_finish(kernel: Kernel, gro: gro_node, skb: sk_buff, ret: int, deliver: Deliver) -> int:
    """net/core/gro.c: gro_skb_finish() (napi_skb_finish() up to 6.14) - what becomes of the skb itself."""
    stats = gro.stats
    if ret == GRO_NORMAL:
        stats.normal += 1
        gro_normal_one(gro, skb, 1, deliver)
    elif ret == GRO_MERGED_FREE:
        if skb.cb.free == NAPI_GRO_FREE_STOLEN_HEAD:
            stats.napi_cache_puts += 1
            napi_skb_free_stolen_head(kernel, skb)
        elif skb.fclone != SKB_FCLONE_UNAVAILABLE:
            __kfree_skb(kernel, skb)
        else:
            stats.napi_cache_puts += 1
            __napi_kfree_skb(kernel, skb)
    elif ret == GRO_HELD:
        stats.held += 1
    return ret


def napi_gro_receive(kernel: Kernel, napi: napi_struct, skb: sk_buff, deliver: Deliver) -> int:
    """net/core/gro.c: napi_gro_receive() (6.15+: an inline over gro_receive_skb()) - GRO of a built skb.

    The tracepoint napi_gro_receive_entry sees the skb as given here.
    Returns the gro_result.
    """
    gro = napi.gro
    if gro.entry is not None:
        gro.entry(skb)
    gro.stats.received += 1
    skb_gro_reset_offset(kernel, skb, 0)
    return gro_skb_finish(kernel, gro, skb, dev_gro_receive(kernel, gro, skb, deliver), deliver)


# -- napi_get_frags / napi_gro_frags ----------------------------------------------------------------


def napi_get_frags(kernel: Kernel, napi: napi_struct) -> sk_buff | None:
    """net/core/gro.c: napi_get_frags() - napi->skb, or a fresh napi_alloc_skb(GRO_MAX_HEAD)."""
    skb = napi.skb
    if skb is None:
        skb = napi_alloc_skb(kernel, napi, kernel.profile.GRO_MAX_HEAD)
        napi.skb = skb
    return skb


def napi_free_frags(kernel: Kernel, napi: napi_struct) -> None:
    """include/linux/netdevice.h: napi_free_frags() - drop napi->skb."""
    skb, napi.skb = napi.skb, None
    kfree_skb(kernel, skb)


def napi_reuse_skb(kernel: Kernel, napi: napi_struct, skb: sk_buff) -> None:
    """net/core/gro.c: napi_reuse_skb() - an emptied skb becomes napi->skb again.

    The linear part is dropped and the headroom restored to NET_SKB_PAD +
    NET_IP_ALIGN; truesize stays what skb_gro_receive() left (the head's
    own).  An skb from the memory reserves is freed instead.
    """
    if skb.pfmemalloc:
        consume_skb(kernel, skb)
        return
    headlen = skb.len - skb.data_len
    skb.data += headlen
    skb.len -= headlen
    profile = kernel.profile
    skb_reserve(skb, profile.NET_SKB_PAD + profile.NET_IP_ALIGN - skb.data)
    skb.dev = napi.dev
    shinfo = skb.shinfo
    shinfo.gso_type = 0
    shinfo.gso_size = 0
    skb.header_bytes = None
    skb.cb = None
    napi.gro.stats.napi_skb_reused += 1
    napi.skb = skb


def napi_frags_skb(kernel: Kernel, napi: napi_struct) -> sk_buff | None:
    """net/core/gro.c: napi_frags_skb() - take napi->skb and pull the Ethernet header.

    The header is read in place or from frags[0] (then copied into the
    head); an skb too short for it is given back (napi_reuse_skb()).  The
    protocol is the EtherType as it stands (eth_type_trans() comes in
    napi_frags_finish()).
    """
    skb = napi.skb
    napi.skb = None
    skb.mac_header = skb.data
    cb = skb_gro_reset_offset(kernel, skb, ETH_HLEN)
    if cb.frag0_len < ETH_HLEN:
        if not skb_gro_header(kernel, skb, ETH_HLEN):
            kernel.warn_once("napi_frags_skb", f"napi_frags_skb: dropping impossible skb from {napi.dev.name}")
            napi_reuse_skb(kernel, napi, skb)
            return None
    else:
        if cb.frag0_in_frag:
            gro_pull_from_frag0(kernel, skb, ETH_HLEN)
        cb.frag0_len -= ETH_HLEN
    skb_pull(skb, ETH_HLEN)
    header = skb.header_bytes
    skb.protocol = header[12] << 8 | header[13]
    return skb


def napi_frags_finish(kernel: Kernel, napi: napi_struct, skb: sk_buff, ret: int, deliver: Deliver) -> int:
    """net/core/gro.c: napi_frags_finish() - eth_type_trans() for what goes up or is held;
    a frags-moved skb is reused as napi->skb, a stolen head's sk_buff goes to the NAPI cache."""
    stats = napi.gro.stats
    if ret in (GRO_NORMAL, GRO_HELD):
        skb_push(skb, ETH_HLEN)
        skb.protocol = eth_type_trans(skb, skb.dev, skb.header_bytes)
        if ret == GRO_NORMAL:
            stats.normal += 1
            gro_normal_one(napi.gro, skb, 1, deliver)
        else:
            stats.held += 1
    elif ret == GRO_MERGED_FREE:
        if skb.cb.free == NAPI_GRO_FREE_STOLEN_HEAD:
            stats.napi_cache_puts += 1
            napi_skb_free_stolen_head(kernel, skb)
        else:
            napi_reuse_skb(kernel, napi, skb)
    return ret


def napi_gro_frags(kernel: Kernel, napi: napi_struct, deliver: Deliver) -> int:
    """net/core/gro.c: napi_gro_frags() - GRO of napi->skb (data at the MAC header, the frame's
    leading bytes in skb.header_bytes).  The tracepoint napi_gro_frags_entry sees the skb after
    napi_frags_skb() (Ethernet header pulled)."""
    skb = napi_frags_skb(kernel, napi)
    if skb is None:
        return GRO_CONSUMED
    if napi.gro.entry is not None:
        napi.gro.entry(skb)
    napi.gro.stats.received += 1
    return napi_frags_finish(kernel, napi, skb, dev_gro_receive(kernel, napi.gro, skb, deliver), deliver)


# -- NAPI completion and teardown (net/core/dev.c) -------------------------------------------------


def napi_complete_done(kernel: Kernel, napi: napi_struct, work_done: int, deliver: Deliver) -> bool:
    """net/core/dev.c: napi_complete_done() - the poll is over: GRO flushes, the batch goes up.

    With work done, GRO holding skbs and a gro_flush_timeout, only skbs held
    before this jiffy are completed and the flush timer is armed
    (``napi.timer_ns``); otherwise everything held goes up.
    (napi_defer_hard_irqs is not modelled: 0.)  True: interrupts may be
    re-enabled.
    """
    timeout = 0
    if work_done and napi.gro.bitmask:
        timeout = napi.dev.gro_flush_timeout
    gro_flush_normal(kernel, napi.gro, bool(timeout), deliver, "gro_flush_timeout" if timeout else "napi_complete")
    napi.timer_ns = timeout
    return True


def napi_complete(kernel: Kernel, napi: napi_struct, deliver: Deliver) -> bool:
    """include/linux/netdevice.h: napi_complete() - napi_complete_done(n, 0)."""
    return napi_complete_done(kernel, napi, 0, deliver)


def gro_cleanup(kernel: Kernel, gro: gro_node) -> None:
    """net/core/gro.c: gro_cleanup() - free every held skb and the pending batch."""
    for bucket in gro.hash:
        while bucket.list:
            kfree_skb(kernel, bucket.list.pop())
        bucket.count = 0
    gro.bitmask = 0
    pending, gro.rx_list = gro.rx_list, []
    gro.rx_count = 0
    for skb in pending:
        kfree_skb(kernel, skb)


def netif_napi_del(kernel: Kernel, napi: napi_struct) -> None:
    """net/core/dev.c: __netif_napi_del() - napi_free_frags() and gro_cleanup()."""
    if napi.skb is not None:
        napi_free_frags(kernel, napi)
    gro_cleanup(kernel, napi.gro)


def skb_gro_receive(kernel: Kernel, p: sk_buff, skb: sk_buff) -> int:
    """net/core/gro.c (6.1: net/core/skbuff.c): skb_gro_receive() - merge skb into the held p.

    0, or -ETOOMANYREFS (page-pool and other pages do not mix), -E2BIG (p
    would reach the device's gro_max_size, IPv4 beyond GRO_LEGACY_MAX_SIZE
    without ``gro_ipv4_max_size``, or skb marked flush).  The data goes to
    p's last skb (p, or the last frag_list member) by the first branch that
    fits MAX_SKB_FRAGS:

    - no linear payload (headlen <= gro offset): skb's frags move over;
      skb keeps SKB_TRUESIZE(its end), p gains the rest; skb is freed
      (NAPI_GRO_FREE);
    - a page-fragment head: the head's page becomes a frag too ("stolen"),
      skb keeps SKB_DATA_ALIGN(sizeof(struct sk_buff)), p gains the rest;
      the sk_buff goes to the NAPI cache (NAPI_GRO_FREE_STOLEN_HEAD);
    - otherwise skb is chained whole on p's frag_list, its headers pulled,
      and p gains all of its truesize; skb's socket (if any) is dropped.
    """
    profile = kernel.profile
    cb = skb.cb
    offset = cb.data_offset
    headlen = skb.len - skb.data_len
    length = skb.len - offset
    explain = kernel.explain is not None
    if p.pp_recycle != skb.pp_recycle:
        return -ETOOMANYREFS
    gro_max_size = netif_get_gro_max_size(kernel, p.dev, p)
    if p.len + length >= gro_max_size or cb.flush:
        if explain:
            kernel.note(f"skb_gro_receive: p->len {p.len} + {length} >= gro_max_size {gro_max_size}" if not cb.flush
                        else "skb_gro_receive: the skb is marked flush")
        return -E2BIG
    if p.len + length >= GRO_LEGACY_MAX_SIZE:
        # Beyond 64K only TCP, and IPv4 only where it has its own limit (BIG TCP for IPv4, 6.3+).
        big_tcp = cb.proto == IPPROTO_TCP and (p.protocol == ETH_P_IPV6 or kernel.profile.has("gro_ipv4_max_size"))
        if not big_tcp:
            if explain:
                kernel.note(f"skb_gro_receive: p->len {p.len} + {length} >= GRO_LEGACY_MAX_SIZE {GRO_LEGACY_MAX_SIZE}")
            return -E2BIG
    segs = cb.count
    pcb = p.cb
    lp = pcb.last
    pinfo = lp.shinfo
    skbinfo = skb.shinfo
    max_frags = profile.MAX_SKB_FRAGS
    if headlen <= offset:
        if len(pinfo.frags) + len(skbinfo.frags) <= max_frags:
            offset -= headlen
            moved, skbinfo.frags = skbinfo.frags, []
            moved[0].offset += offset
            moved[0].size -= offset
            pinfo.frags.extend(moved)
            new_truesize = profile.SKB_TRUESIZE(skb.end)
            delta = skb.truesize - new_truesize
            skb.truesize = new_truesize
            skb.len -= skb.data_len
            skb.data_len = 0
            cb.free = NAPI_GRO_FREE
            _merged(kernel, p, lp, skb, segs, length, delta, "frags")
            return 0
    elif skb.head_frag:
        if len(pinfo.frags) + 1 + len(skbinfo.frags) <= max_frags:
            pages = kernel.pages
            page = pages.virt_to_head_page(skb.head)
            first_offset = skb.head + skb.data - pages.page_address(page) + offset
            pinfo.frags.append(skb_frag_t(page, first_offset, headlen - offset))
            pinfo.frags.extend(skbinfo.frags)
            skbinfo.frags = []
            new_truesize = profile.SKB_HEAD_STRUCT_SIZE
            delta = skb.truesize - new_truesize
            skb.truesize = new_truesize
            cb.free = NAPI_GRO_FREE_STOLEN_HEAD
            _merged(kernel, p, lp, skb, segs, length, delta, "stolen_head")
            return 0
    # merge: chain the whole skb; socket ownership passes to p.
    skb.sk = None
    delta = skb.truesize
    if offset > headlen:
        eat = offset - headlen
        first = skbinfo.frags[0]
        first.offset += eat
        first.size -= eat
        skb.data_len -= eat
        skb.len -= eat
        offset = headlen
    skb.data += offset
    skb.len -= offset
    if pcb.last is p:
        p.shinfo.frag_list = [skb]
    else:
        p.shinfo.frag_list.append(skb)
    pcb.last = skb
    _merged(kernel, p, p, skb, segs, length, delta, "frag_list")
    return 0


def _merged(kernel: Kernel, p: sk_buff, lp: sk_buff, skb: sk_buff, segs: int, length: int, delta: int,
            branch: str) -> None:
    """skb_gro_receive()'s done: label - p (and its last frag_list skb) grow by the merged bytes."""
    p.cb.count += segs
    p.data_len += length
    p.truesize += delta
    p.len += length
    if lp is not p:
        lp.data_len += length
        lp.truesize += delta
        lp.len += length
    skb.cb.same_flow = 1
    if kernel.explain is not None:
        kernel.note(f"skb_gro_receive: {branch}: {length} bytes, truesize += {delta} "
                    f"(p: {p.cb.count} segments, len {p.len}, truesize {p.truesize})")


import skbsim.net.ipv4.af_inet  # noqa: E402,F401 - registers the IPv4 offload (see PACKET_OFFLOADS)
