"""Socket buffers, after net/core/skbuff.c and include/linux/skbuff.h.

``sk_buff`` keeps the kernel's layout rules: ``head`` is an address; ``data``,
``tail`` and ``end`` are offsets from it (as NET_SKBUFF_DATA_USES_OFFSET makes
tail and end on 64-bit kernels).  ``skb_shared_info`` sits at ``head + end``
and is shared by clones.

Functions keep the kernel's names and take the :class:`~skbsim.kernel.Kernel`
first.  Python mangles names that start with two underscores inside class
bodies, so functions such as ``__alloc_skb`` are called only from module
level code (as every caller in skbsim is).

Where a C expression is evaluated on a 32-bit ``unsigned int`` the model
wraps it the same way (see :func:`u32`): ``__napi_alloc_skb(napi,
0xffffffff, ...)`` behaves as the kernel's does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.errors import KernelBug, SkbOverPanic, SkbUnderPanic
from skbsim.mm.gfp import (
    GFP_ATOMIC,
    GFP_DMA,
    __GFP_ACCOUNT,
    __GFP_DIRECT_RECLAIM,
    __GFP_DMA,
    __GFP_MEMALLOC,
    __GFP_NOMEMALLOC,
    __GFP_NOWARN,
    __GFP_RECLAIMABLE,
    format_gfp,
    gfp_pfmemalloc_allowed,
)
from skbsim.mm.page_alloc import Page
from skbsim.mm.page_frag import page_frag_alloc_1k, page_frag_alloc_align, page_frag_free
from skbsim.net.napi import (
    in_hardirq,
    in_softirq,
    irqs_disabled,
    local_bh_disable,
    local_bh_enable,
    napi_skb_cache_get,
    napi_skb_cache_put,
    napi_struct,
    net_device,
)
from skbsim.net.page_pool import napi_pp_put_page

if TYPE_CHECKING:
    from skbsim.kernel import Kernel

U32_MASK = 0xFFFFFFFF

# include/linux/skbuff.h: flags of __alloc_skb()
SKB_ALLOC_FCLONE = 0x01
SKB_ALLOC_RX = 0x02
SKB_ALLOC_NAPI = 0x04

# include/linux/skbuff.h: skb->ip_summed
CHECKSUM_NONE = 0
CHECKSUM_UNNECESSARY = 1
CHECKSUM_COMPLETE = 2
CHECKSUM_PARTIAL = 3

# include/linux/skbuff.h: enum skb_fclone_type
SKB_FCLONE_UNAVAILABLE = 0
SKB_FCLONE_ORIG = 1
SKB_FCLONE_CLONE = 2

# include/linux/slab.h: kmalloc types other than the normal one (6.9, x86_64
# with ZONE_DMA and MEMCG_KMEM, as distribution kernels are built).
KMALLOC_NOT_NORMAL_BITS = __GFP_RECLAIMABLE | __GFP_DMA | __GFP_ACCOUNT


def u32(value: int) -> int:
    """The value as a C ``unsigned int`` holds it."""
    return value & U32_MASK


class skb_frag_t:
    """include/linux/skbuff.h: skb_frag_t - a page reference, an offset and a length."""

    __slots__ = ("page", "offset", "size")

    def __init__(self, page: Page, offset: int, size: int):
        self.page = page
        self.offset = offset
        self.size = size


# include/linux/skbuff.h: gso_type bits
SKB_GSO_TCPV4 = 1 << 0
SKB_GSO_DODGY = 1 << 1
SKB_GSO_TCP_ECN = 1 << 2
SKB_GSO_TCP_FIXEDID = 1 << 3
SKB_GSO_TCPV6 = 1 << 4


class skb_shared_info:
    """include/linux/skbuff.h: struct skb_shared_info (at skb->head + skb->end).

    ``frag_list`` is the chain of skbs GRO (or a driver) appended whole,
    in order (the kernel links them through ->next); None when empty.
    """

    __slots__ = ("frags", "dataref", "frag_list", "gso_size", "gso_segs", "gso_type")

    def __init__(self) -> None:
        self.frags: list[skb_frag_t] = []
        self.dataref = 1
        self.frag_list: list[sk_buff] | None = None
        self.gso_size = 0
        self.gso_segs = 0
        self.gso_type = 0

    @property
    def nr_frags(self) -> int:
        return len(self.frags)


class sk_buff_fclones:
    """include/linux/skbuff.h: struct sk_buff_fclones - an skb and its future clone."""

    __slots__ = ("addr", "skb1", "skb2", "fclone_ref")

    def __init__(self, addr: int):
        self.addr = addr
        self.skb1: sk_buff | None = None
        self.skb2: sk_buff | None = None
        self.fclone_ref = 1


class sk_buff:
    """include/linux/skbuff.h: struct sk_buff.

    Besides the kernel's fields it records where its parts came from
    (``skb_from``, ``head_source``, ``head_size``, ``path``), which the kernel
    does not store but every report of skbsim needs, and ``header_bytes``:
    the frame's first bytes from its MAC header on (what skb->head +
    skb->mac_header holds; set by eth_type_trans(), as the model keeps no
    payload), which GRO and the protocols read.  ``cb`` is the control block
    (GRO's struct napi_gro_cb while the skb is in GRO).
    """

    __slots__ = (
        "addr",
        "head",
        "data",
        "tail",
        "end",
        "len",
        "data_len",
        "truesize",
        "users",
        "cloned",
        "head_frag",
        "pfmemalloc",
        "fclone",
        "fclones",
        "pp_recycle",
        "dev",
        "queue_mapping",
        "protocol",
        "mac_header",
        "shinfo",
        "skb_from",
        "head_source",
        "head_size",
        "path",
        "sk",
        "alloc_cpu",
        "hash",
        "header_bytes",
        "cb",
        "ip_summed",
    )

    def __init__(self, addr: int, skb_from: str):
        self.addr = addr
        self.skb_from = skb_from
        self.head = 0
        self.data = 0
        self.tail = 0
        self.end = 0
        self.len = 0
        self.data_len = 0
        self.truesize = 0
        self.users = 1
        self.cloned = False
        self.head_frag = False
        self.pfmemalloc = False
        self.fclone = SKB_FCLONE_UNAVAILABLE
        self.fclones: sk_buff_fclones | None = None
        self.pp_recycle = False
        self.dev: net_device | None = None
        self.queue_mapping = 0
        self.protocol = 0
        self.mac_header = 0xFFFF
        self.shinfo: skb_shared_info | None = None
        self.head_source = ""
        self.head_size = 0
        self.path = ""
        self.sk = None
        self.alloc_cpu = 0
        self.hash = 0
        self.header_bytes: bytes | None = None
        # skb->cb: the protocol's control block (TCP_SKB_CB(skb) for TCP).
        self.cb = None
        self.ip_summed = CHECKSUM_NONE

    @property
    def nr_frags(self) -> int:
        return len(self.shinfo.frags)

    def describe(self) -> str:
        return (
            f"len {self.len}, data_len {self.data_len}, truesize {self.truesize}, "
            f"head {self.head_source} {self.head_size} B, via {self.path or 'build'}"
        )

    def __repr__(self) -> str:
        return f"<sk_buff {self.addr:#x} {self.describe()}>"


# -- layout queries (include/linux/skbuff.h) --------------------------------------------


def skb_headlen(skb: sk_buff) -> int:
    return skb.len - skb.data_len


def skb_is_nonlinear(skb: sk_buff) -> bool:
    return skb.data_len != 0


def skb_is_gso(skb: sk_buff) -> bool:
    return skb.shinfo.gso_size != 0


def skb_has_frag_list(skb: sk_buff) -> bool:
    return skb.shinfo.frag_list is not None


def skb_headroom(skb: sk_buff) -> int:
    return skb.data


def skb_tailroom(skb: sk_buff) -> int:
    return 0 if skb_is_nonlinear(skb) else skb.end - skb.tail


def skb_end_offset(skb: sk_buff) -> int:
    return skb.end


# -- data operations --------------------------------------------------------------------


def skb_reserve(skb: sk_buff, length: int) -> None:
    """include/linux/skbuff.h: skb_reserve() - move data and tail down an empty buffer."""
    skb.data += length
    skb.tail += length


def __skb_put(skb: sk_buff, length: int) -> int:
    """include/linux/skbuff.h: __skb_put() - extend the data at the tail, unchecked."""
    if skb.data_len:  # skb_is_nonlinear()
        raise KernelBug("SKB_LINEAR_ASSERT: __skb_put on a non-linear skb")
    offset = skb.tail
    skb.tail += length
    skb.len += length
    return offset


def skb_put(skb: sk_buff, length: int) -> int:
    """net/core/skbuff.c: skb_put() - as __skb_put, but panics past skb->end."""
    offset = __skb_put(skb, length)
    if skb.tail > skb.end:
        raise SkbOverPanic(f"skb_over_panic: len {length} put, tail {skb.tail} > end {skb.end}")
    return offset


def skb_push(skb: sk_buff, length: int) -> int:
    """net/core/skbuff.c: skb_push() - extend the data at the front; panics below head."""
    skb.data -= length
    skb.len += length
    if skb.data < 0:
        raise SkbUnderPanic(f"skb_under_panic: len {length} pushed, data {skb.data} < head")
    return skb.data


def skb_pull(skb: sk_buff, length: int) -> int | None:
    """include/linux/skbuff.h: skb_pull() - drop bytes from the front; None if too many.

    Pulling into the paged part is a BUG in __skb_pull(): use pskb_pull() there.
    """
    if length > skb.len:
        return None
    skb.len -= length
    if skb.len < skb.data_len:
        skb.len += length
        raise KernelBug(f"__skb_pull(len={length}) past the linear part")
    skb.data += length
    return skb.data


def skb_add_rx_frag(skb: sk_buff, i: int, page: Page, off: int, size: int, truesize: int) -> None:
    """net/core/skbuff.c: skb_add_rx_frag() - attach a page piece the caller holds a ref on."""
    frags = skb.shinfo.frags
    if i != len(frags):
        raise KernelBug(f"skb_add_rx_frag at slot {i} with {len(frags)} frags filled")
    frags.append(skb_frag_t(page, off, size))
    skb.len += size
    skb.data_len += size
    skb.truesize += truesize


def skb_coalesce_rx_frag(skb: sk_buff, i: int, size: int, truesize: int) -> None:
    """net/core/skbuff.c: skb_coalesce_rx_frag() - grow frag i in place."""
    skb.shinfo.frags[i].size += size
    skb.len += size
    skb.data_len += size
    skb.truesize += truesize


def skb_can_coalesce(skb: sk_buff, i: int, page: Page, off: int) -> bool:
    """include/linux/skbuff.h: skb_can_coalesce() - does (page, off) continue frag i - 1 exactly?"""
    if i:
        frag = skb.shinfo.frags[i - 1]
        return frag.page is page and off == frag.offset + frag.size
    return False


def skb_cloned(skb: sk_buff) -> bool:
    """include/linux/skbuff.h: skb_cloned() - the data is shared with a clone."""
    return skb.cloned and skb.shinfo.dataref != 1


def __pskb_pull_tail(kernel: Kernel, skb: sk_buff, delta: int) -> bool:
    """net/core/skbuff.c: __pskb_pull_tail() - move delta bytes of paged data into the head.

    When the tailroom is short by eat bytes, the head is first reallocated
    with eat + 128 more (pskb_expand_head(), which may fail: False).  The
    bytes come from the frags in order; frags emptied give their page
    references back, a partly used one is trimmed from the front; what the
    frags do not hold comes from the frag_list, whose skbs are freed once
    used up (a frag_list skb used in part is not modelled: no modelled path
    reaches it).
    """
    eat = skb.tail + delta - skb.end
    if eat > 0 or skb_cloned(skb):
        if pskb_expand_head(kernel, skb, 0, eat + 128 if eat > 0 else 0, GFP_ATOMIC):
            return False
    shinfo = skb.shinfo
    skb.tail += delta
    remaining = delta
    kept = []
    for frag in shinfo.frags:
        if remaining >= frag.size:
            remaining -= frag.size
            napi_frag_unref(kernel, frag, skb.pp_recycle, False)  # skb_frag_unref()
        else:
            frag.offset += remaining
            frag.size -= remaining
            remaining = 0
            kept.append(frag)
    shinfo.frags = kept
    if remaining:
        members = shinfo.frag_list or []
        while remaining and members and members[0].len <= remaining:
            member = members.pop(0)
            remaining -= member.len
            kfree_skb(kernel, member)
        if remaining:
            raise NotImplementedError("__pskb_pull_tail of part of a frag_list skb is not modelled")
        if not members:
            shinfo.frag_list = None
    skb.data_len -= delta
    return True


def pskb_may_pull(kernel: Kernel, skb: sk_buff, length: int) -> bool:
    """include/linux/skbuff.h: pskb_may_pull() - the first length bytes in the head, pulling if needed."""
    headlen = skb.len - skb.data_len
    if length <= headlen:
        return True
    if length > skb.len:
        return False
    return __pskb_pull_tail(kernel, skb, length - headlen)


def skb_condense(kernel: Kernel, skb: sk_buff) -> None:
    """net/core/skbuff.c: skb_condense() - before queueing under memory pressure.

    Paged data that fits the head's tailroom is copied in and its pages
    freed; then truesize is recomputed from the head alone (fragments never
    told their true size).  A shared or too-large skb is left as it is.
    """
    if skb.data_len:
        if skb.data_len > skb.end - skb.tail or skb_cloned(skb):
            return
        __pskb_pull_tail(kernel, skb, skb.data_len)
    skb.truesize = kernel.profile.SKB_TRUESIZE(skb.end)


def skb_head_is_locked(skb: sk_buff) -> bool:
    """include/linux/skbuff.h: skb_head_is_locked() - a kmalloc'ed or shared head cannot be stolen."""
    return not skb.head_frag or skb_cloned(skb)


def __skb_trim(skb: sk_buff, length: int) -> None:
    """include/linux/skbuff.h: __skb_trim() - shorten a linear skb (tail follows)."""
    if skb.data_len:
        raise KernelBug("__skb_trim of a non-linear skb")
    skb.len = length
    skb.tail = skb.data + length


def ___pskb_trim(kernel: Kernel, skb: sk_buff, length: int) -> int:
    """net/core/skbuff.c: ___pskb_trim() - shorten a paged skb to length bytes.

    Frags beyond the new length are unreferenced (skb_frag_unref(): a page_pool page goes back to its
    pool when the skb is marked for recycling), the one it ends in is cut; when the cut is in the head
    or the frags the frag_list goes whole (skb_drop_fraglist()), when it is in a frag_list member that
    member is trimmed (pskb_trim()) and the members after it freed.  truesize is left alone, except that
    an skb no socket owns is condensed afterwards (skb_condense()), which recomputes it from the head.
    Cloned skbs and shared frag_list members are not modelled.
    """
    if skb_cloned(skb):
        raise NotImplementedError("___pskb_trim of a cloned skb is not modelled")
    offset = skb_headlen(skb)
    shinfo = skb.shinfo
    frags = shinfo.frags
    keep = 0
    in_frag_list = offset < length
    if in_frag_list:
        for i, frag in enumerate(frags):
            end = offset + frag.size
            if end < length:
                offset = end
                continue
            frag.size = length - offset
            keep = i + 1
            in_frag_list = False
            break
    if in_frag_list:
        members = shinfo.frag_list or []
        for i, member in enumerate(members):
            end = offset + member.len
            if end < length:
                offset = end
                continue
            if end > length:
                if member.data_len:
                    ___pskb_trim(kernel, member, length - offset)
                else:
                    __skb_trim(member, length - offset)
            for dropped in members[i + 1:]:
                kfree_skb(kernel, dropped)
            del members[i + 1:]
            break
    else:
        for frag in frags[keep:]:
            napi_frag_unref(kernel, frag, skb.pp_recycle, False)  # skb_frag_unref()
        del frags[keep:]
        if shinfo.frag_list is not None:
            # skb_drop_fraglist(): kfree_skb_list()
            members, shinfo.frag_list = shinfo.frag_list, None
            for member in members:
                kfree_skb(kernel, member)
    if length > skb_headlen(skb):
        skb.data_len -= skb.len - length
        skb.len = length
    else:
        skb.len = length
        skb.data_len = 0
        skb.tail = skb.data + length
    if skb.sk is None:
        skb_condense(kernel, skb)
    return 0


def pskb_trim_rcsum(kernel: Kernel, skb: sk_buff, length: int) -> int:
    """include/linux/skbuff.h: pskb_trim_rcsum() - drop the bytes after length (IP trims padding)."""
    if length >= skb.len:
        return 0
    if skb.data_len:
        return ___pskb_trim(kernel, skb, length)
    __skb_trim(skb, length)
    return 0


def skb_try_coalesce(kernel: Kernel, to: sk_buff, frm: sk_buff) -> tuple[bool, bool, int]:
    """net/core/skbuff.c: skb_try_coalesce() - append frm's data to to: (done, fragstolen, delta_truesize).

    Three ways, as the kernel tries them: frm's bytes fit to's tailroom and
    are copied (delta 0); frm's head is a page fragment nobody else holds,
    so it becomes one more frag of to (fragstolen; delta = frm's truesize
    less its struct sk_buff); or frm has no linear data and its frags move
    over (delta = frm's truesize less SKB_TRUESIZE of its empty head).  At
    most MAX_SKB_FRAGS frags in to.  frm keeps its len; the caller frees it
    with kfree_skb_partial().
    """
    length = frm.len
    if skb_cloned(to) or to.pp_recycle != frm.pp_recycle:
        return False, False, 0
    if length <= skb_tailroom(to):
        if length:
            skb_put(to, length)
        return True, False, 0
    if to.shinfo.frag_list is not None or frm.shinfo.frag_list is not None:
        return False, False, 0
    profile = kernel.profile
    to_frags = to.shinfo.frags
    from_frags = frm.shinfo.frags
    stolen = False
    if skb_headlen(frm):
        if len(to_frags) + len(from_frags) >= profile.MAX_SKB_FRAGS or skb_head_is_locked(frm):
            return False, False, 0
        delta = frm.truesize - profile.SKB_HEAD_STRUCT_SIZE
        page = kernel.pages.virt_to_head_page(frm.head)
        offset = frm.head + frm.data - kernel.pages.page_address(page)
        to_frags.append(skb_frag_t(page, offset, skb_headlen(frm)))
        stolen = True
    else:
        if len(to_frags) + len(from_frags) > profile.MAX_SKB_FRAGS:
            return False, False, 0
        delta = frm.truesize - profile.SKB_TRUESIZE(frm.end)
    if delta < length:
        kernel.warn_once("skb_try_coalesce", f"WARNING: skb_try_coalesce delta {delta} < len {length}")
    to_frags.extend(from_frags)
    from_frags.clear()
    to.truesize += delta
    to.len += length
    to.data_len += length
    return True, stolen, delta


def kfree_skb_partial(kernel: Kernel, skb: sk_buff, head_stolen: bool) -> None:
    """net/core/skbuff.c: kfree_skb_partial() - free an skb whose data went elsewhere.

    With its head stolen only the struct sk_buff goes back (the head is now
    a frag of another skb); otherwise the whole skb is freed.
    """
    if head_stolen:
        skb_release_head_state(skb)
        kfree_skbmem(kernel, skb)
    else:
        __kfree_skb(kernel, skb)


# -- building an skb around a head ------------------------------------------------------


def _new_skb(kernel: Kernel, addr: int, skb_from: str) -> sk_buff:
    skb = sk_buff(addr, skb_from)
    kernel.live_skbs[addr] = skb
    return skb


def __finalize_skb_around(kernel: Kernel, skb: sk_buff, data: int, size: int) -> None:
    """net/core/skbuff.c: __finalize_skb_around() - size is the data room before shinfo."""
    skb.truesize = kernel.profile.SKB_TRUESIZE(size)
    skb.users = 1
    skb.head = data
    skb.data = 0
    skb.tail = 0
    skb.end = size
    skb.mac_header = 0xFFFF
    skb.shinfo = skb_shared_info()
    skb.alloc_cpu = kernel.cpu


def __build_skb_around(kernel: Kernel, skb: sk_buff, data: int, frag_size: int) -> None:
    """net/core/skbuff.c: __build_skb_around() - frag_size includes skb_shared_info.

    A frag_size of 0 means a kmalloc'ed head whose size is asked of the slab
    (deprecated; the kernel warns and calls __slab_build_skb()).
    """
    size = frag_size
    if size == 0:
        kernel.warn_once("build_skb_zero", "build_skb with frag_size 0: use slab_build_skb() instead")
        size = kernel.slab.ksize(data)
    shinfo_size = kernel.profile.SHINFO_SIZE
    size -= shinfo_size
    __finalize_skb_around(kernel, skb, data, size)
    skb.head_size = frag_size or size + shinfo_size


def __build_skb(kernel: Kernel, data: int, frag_size: int) -> sk_buff | None:
    """net/core/skbuff.c: __build_skb() - a fresh sk_buff from skbuff_head_cache."""
    addr = kernel.slab.kmem_cache_alloc(kernel.skbuff_cache, GFP_ATOMIC, "__build_skb")
    if addr is None:
        return None
    skb = _new_skb(kernel, addr, "skbuff_head_cache")
    __build_skb_around(kernel, skb, data, frag_size)
    return skb


def build_skb(kernel: Kernel, data: int, frag_size: int) -> sk_buff | None:
    """net/core/skbuff.c: build_skb() - __build_skb() plus head_frag and pfmemalloc."""
    skb = __build_skb(kernel, data, frag_size)
    if skb is not None and frag_size:
        skb.head_frag = True
        skb_propagate_pfmemalloc(kernel.pages.virt_to_head_page(data), skb)
    return skb


def __napi_build_skb(kernel: Kernel, data: int, frag_size: int) -> sk_buff | None:
    """net/core/skbuff.c: __napi_build_skb() - the sk_buff comes from the per-CPU NAPI cache."""
    addr = napi_skb_cache_get(kernel)
    if addr is None:
        return None
    skb = kernel.live_skbs[addr] = sk_buff(addr, "napi_skb_cache")
    __build_skb_around(kernel, skb, data, frag_size)
    return skb


def napi_build_skb(kernel: Kernel, data: int, frag_size: int) -> sk_buff | None:
    """net/core/skbuff.c: napi_build_skb() - __napi_build_skb() plus head_frag and pfmemalloc."""
    skb = __napi_build_skb(kernel, data, frag_size)
    if skb is not None and frag_size:
        skb.head_frag = True
        skb_propagate_pfmemalloc(kernel.pages.virt_to_head_page(data), skb)
    return skb


def skb_propagate_pfmemalloc(page: Page, skb: sk_buff) -> None:
    """include/linux/skbuff.h: skb_propagate_pfmemalloc() - a reserve page marks the skb."""
    if page.pfmemalloc:
        skb.pfmemalloc = True


# -- kmalloc'ed heads -------------------------------------------------------------------


def kmalloc_reserve(kernel: Kernel, size: int, flags: int) -> tuple[int | None, int, bool, str]:
    """net/core/skbuff.c: kmalloc_reserve() - (data or None, *size, pfmemalloc, source).

    Small heads come from skbuff_small_head when the mask is a normal one;
    others from kmalloc rounded up by kmalloc_size_roundup().  Either is tried
    first without the reserves; a caller entitled to them tries again with
    them, and the skb is then marked pfmemalloc.
    """
    profile = kernel.profile
    slab = kernel.slab
    obj_size = profile.SKB_HEAD_ALIGN(size)
    no_reserves = flags | __GFP_NOMEMALLOC | __GFP_NOWARN
    if (
        kernel.skb_small_head_cache is not None
        and obj_size <= profile.SKB_SMALL_HEAD_CACHE_SIZE
        and not flags & KMALLOC_NOT_NORMAL_BITS
    ):
        cache = kernel.skb_small_head_cache
        if kernel.explain is not None:
            kernel.note(
                f"kmalloc_reserve: SKB_HEAD_ALIGN({size}) = {obj_size} <= SKB_SMALL_HEAD_CACHE_SIZE "
                f"{profile.SKB_SMALL_HEAD_CACHE_SIZE}, so the head comes from skbuff_small_head"
            )
        size = profile.SKB_SMALL_HEAD_CACHE_SIZE
        obj = slab.kmem_cache_alloc(cache, no_reserves, "kmalloc_reserve")
        if obj is not None or not gfp_pfmemalloc_allowed(flags):
            return obj, size, False, cache.name
        if kernel.explain is not None:
            kernel.note("kmalloc_reserve: no memory without the reserves; trying again with them")
        obj = slab.kmem_cache_alloc(cache, flags, "kmalloc_reserve")
        return obj, size, True, cache.name

    rounded = slab.kmalloc_size_roundup(
        obj_size, profile.KMALLOC_MAX_SIZE, oversize_to_pages=profile.feature("kmalloc_roundup_oversize") == "page_order"
    )
    if kernel.explain is not None:
        kernel.note(
            f"kmalloc_reserve: SKB_HEAD_ALIGN({size}) = {obj_size}, kmalloc_size_roundup() = {rounded}"
            + (f" (> KMALLOC_MAX_SIZE {profile.KMALLOC_MAX_SIZE}: kmalloc will fail)" if rounded > profile.KMALLOC_MAX_SIZE else "")
        )
    # The kernel stores the size_t back into an unsigned int.
    size = u32(rounded)
    obj, source = slab.kmalloc(rounded, no_reserves, "kmalloc_reserve", profile.KMALLOC_MAX_SIZE)
    if obj is not None or not gfp_pfmemalloc_allowed(flags):
        return obj, size, False, source
    if kernel.explain is not None:
        kernel.note("kmalloc_reserve: no memory without the reserves; trying again with them")
    obj, source = slab.kmalloc(rounded, flags, "kmalloc_reserve", profile.KMALLOC_MAX_SIZE)
    return obj, size, True, source


def __alloc_skb(kernel: Kernel, size: int, gfp_mask: int, flags: int) -> sk_buff | None:
    """net/core/skbuff.c: __alloc_skb() - an skb with a kmalloc'ed head of at least size bytes.

    The sk_buff comes from the NAPI cache when SKB_ALLOC_NAPI is asked without
    SKB_ALLOC_FCLONE; otherwise from skbuff_head_cache or skbuff_fclone_cache.
    From 6.19 (feature ``alloc_skb_napi_cache_outside_napi``) a caller
    without either flag, not in hard IRQ and with IRQs on, first takes an
    sk_buff the NAPI cache already holds (under local_bh_disable(), no refill).
    """
    size = u32(size)
    fclone = bool(flags & SKB_ALLOC_FCLONE)
    cache = kernel.skbuff_fclone_cache if fclone else kernel.skbuff_cache
    if kernel.sk_memalloc_socks() and flags & SKB_ALLOC_RX:
        if kernel.explain is not None:
            kernel.note("__alloc_skb: sk_memalloc_socks() and SKB_ALLOC_RX, so __GFP_MEMALLOC is added")
        gfp_mask |= __GFP_MEMALLOC
    skb_from = "napi_skb_cache"
    if flags & (SKB_ALLOC_FCLONE | SKB_ALLOC_NAPI) == SKB_ALLOC_NAPI:
        addr = napi_skb_cache_get(kernel)
    elif (not fclone and kernel.profile.has("alloc_skb_napi_cache_outside_napi")
          and not in_hardirq(kernel) and not irqs_disabled(kernel)):
        # 6.19 'net: use napi_skb_cache even in process context': what the cache holds, else the slab
        local_bh_disable(kernel)
        addr = napi_skb_cache_get(kernel, alloc=False)
        local_bh_enable(kernel)
        if addr is None:
            skb_from = cache.name
            addr = kernel.slab.kmem_cache_alloc(cache, gfp_mask & ~GFP_DMA, "__alloc_skb")
        elif kernel.explain is not None:
            kernel.note("__alloc_skb: outside NAPI, the sk_buff comes from this CPU's NAPI skb cache")
    else:
        skb_from = cache.name
        addr = kernel.slab.kmem_cache_alloc(cache, gfp_mask & ~GFP_DMA, "__alloc_skb")
    if addr is None:
        if kernel.explain is not None:
            kernel.note("__alloc_skb: no struct sk_buff")
        return None

    data, size, pfmemalloc, source = kmalloc_reserve(kernel, size, gfp_mask)
    if data is None:
        if kernel.explain is not None:
            kernel.note(f"__alloc_skb: no head ({source}); the sk_buff goes back")
        if skb_from == "napi_skb_cache":
            # The kernel frees it to the slab (kmem_cache_free), not to the cache.
            kernel.slab.kmem_cache_free(kernel.skbuff_cache, addr)
        else:
            kernel.slab.kmem_cache_free(cache, addr)
        return None

    if fclone:
        fclones = sk_buff_fclones(addr)
        skb = _new_skb(kernel, addr, skb_from)
        fclones.skb1 = skb
        skb.fclones = fclones
        skb.fclone = SKB_FCLONE_ORIG
    else:
        skb = _new_skb(kernel, addr, skb_from)
    __build_skb_around(kernel, skb, data, size)
    skb.pfmemalloc = pfmemalloc
    skb.head_source = source
    skb.path = "kmalloc"
    return skb


def alloc_skb(kernel: Kernel, size: int, gfp_mask: int) -> sk_buff | None:
    """include/linux/skbuff.h: alloc_skb()."""
    return __alloc_skb(kernel, size, gfp_mask, 0)


def alloc_skb_fclone(kernel: Kernel, size: int, gfp_mask: int) -> sk_buff | None:
    """include/linux/skbuff.h: alloc_skb_fclone()."""
    return __alloc_skb(kernel, size, gfp_mask, SKB_ALLOC_FCLONE)


# -- RX allocation ------------------------------------------------------------------------


def __napi_alloc_skb(kernel: Kernel, napi: napi_struct, length: int, gfp_mask: int) -> sk_buff | None:
    """net/core/skbuff.c: __napi_alloc_skb() (6.9) - an RX skb for a NAPI poller.

    length + NET_SKB_PAD + NET_IP_ALIGN decides the head: too small for a
    page fragment without the 1K cache, too big for one page, or a mask that
    may sleep or wants DMA memory → __alloc_skb(); small enough for 1K → the
    1K frag cache; otherwise SKB_HEAD_ALIGN bytes of the NAPI page_frag_cache.
    The skb gets NET_SKB_PAD + NET_IP_ALIGN of headroom either way.
    """
    profile = kernel.profile
    explain = kernel.explain is not None
    if not kernel.cpus[kernel.cpu].softirq_count:  # in_softirq()
        kernel.warn_once("__napi_alloc_skb", "__napi_alloc_skb called outside softirq (DEBUG_NET_WARN_ON_ONCE)")
    pad = profile.NET_SKB_PAD + profile.NET_IP_ALIGN
    length &= U32_MASK
    padded = (length + pad) & U32_MASK
    if padded != length + pad:
        if explain:
            kernel.note(f"len {length} + {pad} wraps around 2^32 to {padded} (unsigned int)")
    length = padded
    overhead_page = profile.SKB_WITH_OVERHEAD_PAGE
    small_frag = profile.NAPI_HAS_SMALL_PAGE_FRAG
    sleeps_or_dma = gfp_mask & (__GFP_DIRECT_RECLAIM | GFP_DMA)

    if (not small_frag and length <= profile.SKB_KMALLOC_THRESHOLD) or length > overhead_page or sleeps_or_dma:
        if explain:
            if length > overhead_page:
                why = f"{length} > SKB_WITH_OVERHEAD(PAGE_SIZE) = {overhead_page}"
            elif sleeps_or_dma:
                why = f"gfp {format_gfp(gfp_mask)} has __GFP_DIRECT_RECLAIM or GFP_DMA"
            else:
                why = f"no 1K frag cache and {length} <= {_threshold_name(profile)} = {profile.SKB_KMALLOC_THRESHOLD}"
            kernel.note(f"len + NET_SKB_PAD + NET_IP_ALIGN = {length}: {why}, so __alloc_skb() (kmalloc head)")
        skb = __alloc_skb(kernel, length, gfp_mask, SKB_ALLOC_RX | SKB_ALLOC_NAPI)
        if skb is None:
            return None
    else:
        nc = kernel.cpus[kernel.cpu].napi_alloc_cache
        if kernel.memalloc_socks:  # sk_memalloc_socks()
            if explain:
                kernel.note("sk_memalloc_socks(): __GFP_MEMALLOC is added, so pages may come from the reserves")
            gfp_mask |= __GFP_MEMALLOC
        if small_frag and length <= profile.SKB_WITH_OVERHEAD_1K:
            if explain:
                kernel.note(
                    f"len + NET_SKB_PAD + NET_IP_ALIGN = {length} <= SKB_WITH_OVERHEAD(1024) = "
                    f"{profile.SKB_WITH_OVERHEAD_1K}, so a 1K page fragment (len becomes SZ_1K)"
                )
            length = 1024
            data = page_frag_alloc_1k(kernel.pages, nc.page_small, gfp_mask)
            pfmemalloc = nc.page_small.pfmemalloc
            source = "page_frag_1k"
        else:
            aligned = profile.SKB_HEAD_ALIGN(length)
            if explain:
                kernel.note(
                    f"len + NET_SKB_PAD + NET_IP_ALIGN = {length} <= SKB_WITH_OVERHEAD(PAGE_SIZE) = {overhead_page}, "
                    f"so a page fragment of SKB_HEAD_ALIGN({length}) = {aligned}"
                )
            length = aligned
            data = page_frag_alloc_align(
                kernel.pages, nc.page, length, gfp_mask)
            pfmemalloc = nc.page.pfmemalloc
            source = "page_frag"
        if data is None:
            if explain:
                kernel.note(f"{source}: no page")
            return None
        skb = __napi_build_skb(kernel, data, length)
        if skb is None:
            if explain:
                kernel.note("no struct sk_buff: the fragment goes back")
            skb_free_frag(kernel, data)
            return None
        if pfmemalloc:
            skb.pfmemalloc = True
        skb.head_frag = True
        skb.head_source = source
        skb.path = source

    skb.data += pad  # skb_reserve()
    skb.tail += pad
    skb.dev = napi.dev
    return skb


def napi_alloc_skb(kernel: Kernel, napi: napi_struct, length: int) -> sk_buff | None:
    """napi_alloc_skb(napi, len): the RX allocation drivers call.

    Up to 6.9 an inline in include/linux/skbuff.h passing GFP_ATOMIC to
    __napi_alloc_skb(); from 6.10 (commit "net: remove gfp_mask from
    napi_alloc_skb()") the function itself, in net/core/skbuff.c, with
    GFP_ATOMIC | __GFP_NOWARN inside.  The branches are the same.
    """
    if kernel.profile.has("napi_alloc_skb_gfp"):
        return __napi_alloc_skb(kernel, napi, length, GFP_ATOMIC)
    return __napi_alloc_skb(kernel, napi, length, GFP_ATOMIC | __GFP_NOWARN)


def _threshold_name(profile) -> str:
    if profile.feature("kmalloc_threshold") == "1k":
        return "SKB_WITH_OVERHEAD(1024)"
    return "SKB_WITH_OVERHEAD(SKB_SMALL_HEAD_CACHE_SIZE)"


def __netdev_alloc_skb(kernel: Kernel, dev: net_device | None, length: int, gfp_mask: int) -> sk_buff | None:
    """net/core/skbuff.c: __netdev_alloc_skb() (6.9) - an RX skb outside NAPI.

    Like __napi_alloc_skb() but with NET_SKB_PAD only, no 1K cache (heads up
    to the profile's kmalloc threshold go to kmalloc), the sk_buff from
    skbuff_head_cache, and the
    page_frag_cache chosen by context: netdev_alloc_cache with IRQs off,
    otherwise the NAPI one under local_bh_disable().
    """
    profile = kernel.profile
    pad = profile.NET_SKB_PAD
    length = u32(u32(length) + pad)
    threshold = profile.SKB_KMALLOC_THRESHOLD
    overhead_page = profile.SKB_WITH_OVERHEAD_PAGE
    if length <= threshold or length > overhead_page or gfp_mask & (__GFP_DIRECT_RECLAIM | GFP_DMA):
        if kernel.explain is not None:
            kernel.note(
                f"len + NET_SKB_PAD = {length}: outside ({_threshold_name(profile)} = {threshold}, "
                f"SKB_WITH_OVERHEAD(PAGE_SIZE) = {overhead_page}] or a sleeping/DMA mask, so __alloc_skb() (kmalloc head)"
            )
        skb = __alloc_skb(kernel, length, gfp_mask, SKB_ALLOC_RX)
        if skb is None:
            return None
    else:
        length = profile.SKB_HEAD_ALIGN(length)
        if kernel.sk_memalloc_socks():
            gfp_mask |= __GFP_MEMALLOC
        state = kernel.this_cpu()
        if in_hardirq(kernel) or irqs_disabled(kernel):
            nc = state.netdev_alloc_cache
            source = "netdev_page_frag"
            data = page_frag_alloc_align(kernel.pages, nc, length, gfp_mask)
        else:
            nc = state.napi_alloc_cache.page
            source = "page_frag"
            local_bh_disable(kernel)
            data = page_frag_alloc_align(kernel.pages, nc, length, gfp_mask)
            local_bh_enable(kernel)
        if kernel.explain is not None:
            kernel.note(f"a page fragment of SKB_HEAD_ALIGN = {length} from the {source} cache")
        if data is None:
            return None
        skb = __build_skb(kernel, data, length)
        if skb is None:
            skb_free_frag(kernel, data)
            return None
        if nc.pfmemalloc:
            skb.pfmemalloc = True
        skb.head_frag = True
        skb.head_source = source
        skb.path = "page_frag"
    skb_reserve(skb, pad)
    skb.dev = dev
    return skb


def netdev_alloc_skb(kernel: Kernel, dev: net_device | None, length: int) -> sk_buff | None:
    """include/linux/skbuff.h: netdev_alloc_skb() - __netdev_alloc_skb(dev, len, GFP_ATOMIC)."""
    return __netdev_alloc_skb(kernel, dev, length, GFP_ATOMIC)


def netdev_alloc_skb_ip_align(kernel: Kernel, dev: net_device | None, length: int) -> sk_buff | None:
    """include/linux/skbuff.h: netdev_alloc_skb_ip_align() - __netdev_alloc_skb(len + NET_IP_ALIGN),
    then NET_IP_ALIGN of extra headroom."""
    align = kernel.profile.NET_IP_ALIGN
    skb = __netdev_alloc_skb(kernel, dev, length + align, GFP_ATOMIC)
    if skb is not None and align:
        skb_reserve(skb, align)
    return skb


def napi_alloc_frag(kernel: Kernel, fragsz: int) -> int | None:
    """net/core/skbuff.c: napi_alloc_frag() - SKB_DATA_ALIGN(fragsz) from the NAPI frag cache."""
    profile = kernel.profile
    fragsz = profile.SKB_DATA_ALIGN_u32(fragsz)
    nc = kernel.this_cpu().napi_alloc_cache.page
    return page_frag_alloc_align(kernel.pages, nc, fragsz, GFP_ATOMIC)


def netdev_alloc_frag(kernel: Kernel, fragsz: int) -> int | None:
    """net/core/skbuff.c: netdev_alloc_frag() - as napi_alloc_frag, chosen by context."""
    profile = kernel.profile
    fragsz = profile.SKB_DATA_ALIGN_u32(fragsz)
    state = kernel.this_cpu()
    if in_hardirq(kernel) or irqs_disabled(kernel):
        return page_frag_alloc_align(
            kernel.pages, state.netdev_alloc_cache, fragsz, GFP_ATOMIC)
    local_bh_disable(kernel)
    data = page_frag_alloc_align(
        kernel.pages, state.napi_alloc_cache.page, fragsz, GFP_ATOMIC)
    local_bh_enable(kernel)
    return data


def skb_free_frag(kernel: Kernel, addr: int) -> None:
    """include/linux/skbuff.h: skb_free_frag() - page_frag_free()."""
    page_frag_free(kernel.pages, addr)


# -- clones -------------------------------------------------------------------------------


def __skb_clone(kernel: Kernel, n: sk_buff, skb: sk_buff) -> sk_buff:
    """net/core/skbuff.c: __skb_clone() - n shares skb's head and shared info."""
    for name in ("head", "data", "tail", "end", "len", "data_len", "truesize", "head_frag", "pfmemalloc",
                 "pp_recycle", "dev", "queue_mapping", "protocol", "mac_header", "shinfo",
                 "head_source", "head_size", "path", "alloc_cpu", "hash", "header_bytes", "ip_summed"):
        setattr(n, name, getattr(skb, name))
    n.cloned = True
    n.users = 1
    n.sk = None
    skb.shinfo.dataref += 1
    skb.cloned = True
    return n


def skb_clone(kernel: Kernel, skb: sk_buff, gfp_mask: int) -> sk_buff | None:
    """net/core/skbuff.c: skb_clone() - a new sk_buff sharing the data.

    An fclone original whose companion is free uses it; others take an
    sk_buff from skbuff_head_cache (with the reserves if skb came from them).
    """
    fclones = skb.fclones
    if skb.fclone == SKB_FCLONE_ORIG and fclones.fclone_ref == 1:
        n = sk_buff(fclones.addr + kernel.profile.sizeof_sk_buff, "skbuff_fclone_cache")
        kernel.live_skbs[n.addr] = n
        fclones.skb2 = n
        fclones.fclone_ref = 2
        n.fclones = fclones
        n.fclone = SKB_FCLONE_CLONE
    else:
        if skb.pfmemalloc:
            gfp_mask |= __GFP_MEMALLOC
        addr = kernel.slab.kmem_cache_alloc(kernel.skbuff_cache, gfp_mask, "skb_clone")
        if addr is None:
            return None
        n = _new_skb(kernel, addr, "skbuff_head_cache")
    return __skb_clone(kernel, n, skb)


# -- freeing ------------------------------------------------------------------------------


def skb_unref(skb: sk_buff) -> bool:
    """include/linux/skbuff.h: skb_unref() - True when the last user is gone."""
    if skb.users <= 0:
        raise KernelBug(f"skb_unref of a freed skb {skb!r}")
    skb.users -= 1
    return skb.users == 0


def skb_pp_recycle(kernel: Kernel, skb: sk_buff, data: int, napi_safe: bool) -> bool:
    """net/core/skbuff.c: skb_pp_recycle() - give a page_pool page back to its pool (False: not one)."""
    if not skb.pp_recycle:
        return False
    return napi_pp_put_page(kernel, kernel.pages.virt_to_head_page(data), napi_safe)


def napi_frag_unref(kernel: Kernel, frag: skb_frag_t, recycle: bool, napi_safe: bool) -> None:
    """include/linux/skbuff.h: napi_frag_unref() (6.1: __skb_frag_unref()) - to the page_pool, or put_page()."""
    if recycle and napi_pp_put_page(kernel, frag.page, napi_safe):
        return
    kernel.pages.put_page(frag.page)


def skb_free_head(kernel: Kernel, skb: sk_buff, napi_safe: bool = False) -> None:
    """net/core/skbuff.c: skb_free_head() - page_pool page, page fragment, small-head object or kmalloc.

    A kmalloc'ed head is told apart from a skbuff_small_head one by its end
    offset alone (skb_kfree_head()), as the kernel does.
    """
    if skb.head_frag:
        if skb.pp_recycle and skb_pp_recycle(kernel, skb, skb.head, napi_safe):
            return
        skb_free_frag(kernel, skb.head)
    elif kernel.skb_small_head_cache is not None and skb.end == kernel.profile.SKB_SMALL_HEAD_HEADROOM:
        kernel.slab.kmem_cache_free(kernel.skb_small_head_cache, skb.head)
    else:
        kernel.slab.kfree(skb.head)


def skb_release_data(kernel: Kernel, skb: sk_buff, napi_safe: bool = False) -> None:
    """net/core/skbuff.c: skb_release_data() - drop the data once the last clone lets go.

    Frags and head of an skb marked for recycling go back to their
    page_pool.  Whatever happens, pp_recycle is cleared at the end, so that
    of several clones only the last one recycles.
    """
    shinfo = skb.shinfo
    if skb.cloned:
        shinfo.dataref -= 1
        if shinfo.dataref:
            skb.pp_recycle = False
            return
    recycle = skb.pp_recycle
    for frag in shinfo.frags:
        if recycle:
            napi_frag_unref(kernel, frag, True, napi_safe)
        else:
            kernel.pages.put_page(frag.page)
    shinfo.frags = []
    if shinfo.frag_list is not None:
        # kfree_skb_list(): the chained skbs go with the head.
        members, shinfo.frag_list = shinfo.frag_list, None
        for member in members:
            kfree_skb(kernel, member)
    skb_free_head(kernel, skb, napi_safe)
    skb.pp_recycle = False


def skb_release_head_state(skb: sk_buff) -> None:
    """net/core/skbuff.c: skb_release_head_state() - run skb->destructor: the socket gets its memory back
    (sock_rfree() and friends)."""
    if skb.sk is not None:
        skb.sk.skb_destructor(skb)
        skb.sk = None


def skb_release_all(kernel: Kernel, skb: sk_buff, napi_safe: bool = False) -> None:
    """net/core/skbuff.c: skb_release_all() - head state, then the data.

    napi_safe (6.4+): the caller runs in NAPI (napi_consume_skb() with a
    budget, __napi_kfree_skb()), which 6.4-6.9 page_pool takes as leave to
    recycle into its cache.
    """
    skb_release_head_state(skb)
    if skb.head:
        skb_release_data(kernel, skb, napi_safe)


def kfree_skbmem(kernel: Kernel, skb: sk_buff) -> None:
    """net/core/skbuff.c: kfree_skbmem() - give the struct sk_buff back."""
    del kernel.live_skbs[skb.addr]
    if skb.fclone == SKB_FCLONE_UNAVAILABLE:
        kernel.slab.kmem_cache_free(kernel.skbuff_cache, skb.addr)
        return
    fclones = skb.fclones
    if skb.fclone == SKB_FCLONE_ORIG and fclones.fclone_ref == 1:
        kernel.slab.kmem_cache_free(kernel.skbuff_fclone_cache, fclones.addr)
        return
    fclones.fclone_ref -= 1
    if fclones.fclone_ref == 0:
        kernel.slab.kmem_cache_free(kernel.skbuff_fclone_cache, fclones.addr)


def __kfree_skb(kernel: Kernel, skb: sk_buff) -> None:
    """net/core/skbuff.c: __kfree_skb() - release everything, whatever the users count."""
    skb_release_all(kernel, skb)
    kfree_skbmem(kernel, skb)


def kfree_skb(kernel: Kernel, skb: sk_buff | None, reason: str = "NOT_SPECIFIED") -> None:
    """net/core/skbuff.c: kfree_skb_reason() - free as a drop (the reason is traced)."""
    if skb is None or not skb_unref(skb):
        return
    __kfree_skb(kernel, skb)


def consume_skb(kernel: Kernel, skb: sk_buff | None) -> None:
    """net/core/skbuff.c: consume_skb() - free after normal use."""
    if skb is None or not skb_unref(skb):
        return
    __kfree_skb(kernel, skb)


def __napi_kfree_skb(kernel: Kernel, skb: sk_buff) -> None:
    """net/core/skbuff.c: __napi_kfree_skb() - release the data, keep the sk_buff per CPU."""
    skb_release_all(kernel, skb, True)
    del kernel.live_skbs[skb.addr]
    napi_skb_cache_put(kernel, skb.addr)


def kfree_skb_napi_cache(kernel: Kernel, skb: sk_buff) -> None:
    """net/core/skbuff.c: kfree_skb_napi_cache() (6.10+) - free into the NAPI skb cache under BH."""
    if skb.fclone != SKB_FCLONE_UNAVAILABLE:
        __kfree_skb(kernel, skb)
        return
    local_bh_disable(kernel)
    __napi_kfree_skb(kernel, skb)
    local_bh_enable(kernel)


#: skb_defer_admit()'s answers
DEFER_NONE, DEFER_QUEUE, DEFER_KICK = 0, 1, 2


def skb_defer_admit(queued: int, defer_max: int, limit_minus_1: int) -> int:
    """net/core/skbuff.c: skb_attempt_defer_free()'s test on the owning CPU's defer list, which holds
    queued skbs: DEFER_NONE (free the skb here: the list is full), DEFER_QUEUE, or DEFER_KICK (queue
    it, and send that CPU an IPI: the list reaches half capacity, defer_max / 2 + 1 skbs).

    Up to 6.17 defer_count is checked, then raised: defer_max skbs may wait.  From 6.18 ('net: use
    llist for sd->defer_list') it is raised, then checked: defer_max - 1 (limit_minus_1); a refused
    skb raises it further, but only a full list refuses, so the list's length decides alike.  The
    IPI goes out when the count before this skb is defer_max >> 1, in both forms.  (Plain integers:
    the fast engine compiles this function.)
    """
    if queued >= (defer_max - 1 if limit_minus_1 else defer_max):
        return DEFER_NONE
    return DEFER_KICK if queued == defer_max >> 1 else DEFER_QUEUE


def skb_attempt_defer_free(kernel: Kernel, skb: sk_buff) -> None:
    """net/core/skbuff.c: skb_attempt_defer_free() - free on the CPU that allocated the skb.

    A local skb, or one whose owner's defer list is full (skb_defer_admit()),
    is freed here into this CPU's NAPI skb cache; others wait on the owner's
    list until its next net_rx_action() (skb_defer_free_flush()), which the
    IPI sent at half capacity brings forward (kick_defer_list_purge()).
    """
    owner = kernel.cpus[skb.alloc_cpu] if skb.alloc_cpu < kernel.ncpus else None
    verdict = DEFER_NONE
    if owner is not None and owner is not kernel.this_cpu():
        verdict = skb_defer_admit(len(owner.defer_list), kernel.skb_defer_max,
                                  kernel.profile.feature("skb_defer_limit") == "skb_defer_max_minus_1")
    if verdict == DEFER_NONE:
        if not skb_unref(skb):
            return
        kfree_skb_napi_cache(kernel, skb)
        return
    owner.defer_list.append(skb)
    if verdict == DEFER_KICK:
        kick_defer_list_purge(kernel, owner)


def kick_defer_list_purge(kernel: Kernel, state) -> None:
    """net/core/dev.c: kick_defer_list_purge() - an IPI to the CPU (smp_call_function_single_async()),
    unless one is on its way already (softnet_data.defer_ipi_scheduled).  Its handler,
    trigger_rx_softirq(), raises NET_RX_SOFTIRQ there, and net_rx_action() starts with
    skb_defer_free_flush(): whoever drives the CPUs delivers kernel.ipis (see defer_ipi())."""
    if not state.defer_ipi_scheduled:
        state.defer_ipi_scheduled = True
        kernel.ipis.append(state.cpu)


def defer_ipi(kernel: Kernel) -> None:
    """The IPI kick_defer_list_purge() sent, on the current CPU: trigger_rx_softirq() takes it, and
    the net_rx_action() it raises frees the defer list (no NAPI instance need be scheduled)."""
    kernel.this_cpu().defer_ipi_scheduled = False
    skb_defer_free_flush(kernel)


def skb_defer_free_flush(kernel: Kernel) -> None:
    """net/core/dev.c: skb_defer_free_flush() - free skbs other CPUs handed back to this one."""
    state = kernel.this_cpu()
    if state.defer_list:
        pending, state.defer_list = state.defer_list, []
        for skb in pending:
            napi_consume_skb(kernel, skb, 1)


def napi_consume_skb(kernel: Kernel, skb: sk_buff | None, budget: int) -> None:
    """net/core/skbuff.c: napi_consume_skb() - free in NAPI, keeping the sk_buff per CPU.

    A zero budget means a caller outside NAPI (netpoll): an ordinary free.
    Fast-clone skbs are not cached.  From 6.19 (feature
    ``napi_consume_defers_alien``) an unshared skb allocated on another CPU
    drops its head state (the socket's charge) and goes to
    skb_attempt_defer_free(), which frees it on that CPU.
    """
    if skb is None:
        return
    if budget == 0:
        consume_skb(kernel, skb)
        return
    if not in_softirq(kernel):
        kernel.warn_once("napi_consume_skb", "napi_consume_skb called outside softirq (DEBUG_NET_WARN_ON_ONCE)")
    if (skb.alloc_cpu != kernel.cpu and skb.users == 1
            and kernel.profile.has("napi_consume_defers_alien")):
        # 6.19 'net: fix napi_consume_skb() with alien skbs'
        skb_release_head_state(skb)
        skb_attempt_defer_free(kernel, skb)
        return
    if not skb_unref(skb):
        return
    if skb.fclone != SKB_FCLONE_UNAVAILABLE:
        __kfree_skb(kernel, skb)
        return
    __napi_kfree_skb(kernel, skb)


# -- paged skbs for senders (net/core/skbuff.c: alloc_skb_with_frags) ---------------------

from skbsim.mm.gfp import __GFP_COMP  # noqa: E402 - kept with the only code that needs it

EMSGSIZE = 90
ENOBUFS = 105


def skb_fill_page_desc(skb: sk_buff, i: int, page: Page, off: int, size: int) -> None:
    """include/linux/skbuff.h: skb_fill_page_desc() - set frag i; len and truesize are the caller's."""
    frags = skb.shinfo.frags
    if i != len(frags):
        raise KernelBug(f"skb_fill_page_desc at slot {i} with {len(frags)} frags filled")
    frags.append(skb_frag_t(page, off, size))


def alloc_skb_with_frags_order(data_len: int, order: int, page_size: int) -> int:
    """alloc_skb_with_frags() (6.6+): the order of the next block - lowered while the page-aligned rest is
    smaller than a block of it (never raised again).  (Plain integers: the fast engine compiles this.)"""
    page_aligned = (data_len + page_size - 1) & ~(page_size - 1)
    while order and page_aligned < (page_size << order):
        order -= 1
    return order


def alloc_skb_with_frags(kernel: Kernel, header_len: int, data_len: int, order: int,
                         gfp_mask: int) -> tuple[sk_buff | None, int]:
    """net/core/skbuff.c: alloc_skb_with_frags() - (skb, 0) or (None, -errno).

    A kmalloc'ed head of header_len bytes (alloc_skb()) and data_len bytes
    in page frags.  The frags' truesize is added here; len and data_len are
    left to the caller (sock_alloc_send_pskb()'s users set them).  Two forms
    (profile feature
    ``alloc_skb_with_frags``):

    - ``chunks`` (6.6+): blocks of PAGE_SIZE << order; before each block the
      order drops while the page-aligned rest is smaller than the block (and
      never rises again); a refused high-order block lowers the order by one
      and tries again; order 0 uses the caller's gfp.  truesize grows by the
      whole block.  Refused up front (-EMSGSIZE) when data_len exceeds
      MAX_SKB_FRAGS blocks of the starting order; fails when the frag limit
      (``alloc_skb_with_frags_limit``) is reached with data left.
    - ``npages`` (up to 6.5): ceil(data_len / PAGE_SIZE) pages, at most
      MAX_SKB_FRAGS, all added to truesize up front; each frag tries the
      largest order up to max_page_order that the remaining page count fills,
      and one refused high-order try disables high orders for the rest.
    """
    profile = kernel.profile
    page_size = profile.PAGE_SIZE
    pages = kernel.pages
    high_order_mask = (gfp_mask & ~__GFP_DIRECT_RECLAIM) | __GFP_COMP | __GFP_NOWARN
    chunks = profile.feature("alloc_skb_with_frags") == "chunks"

    if chunks:
        if data_len > profile.MAX_SKB_FRAGS * (page_size << order):
            if kernel.explain is not None:
                kernel.note(f"alloc_skb_with_frags: data_len {data_len} > MAX_SKB_FRAGS blocks of order {order}: -EMSGSIZE")
            return None, -EMSGSIZE
    else:
        npages = (data_len + page_size - 1) // page_size
        if npages > profile.MAX_SKB_FRAGS:
            if kernel.explain is not None:
                kernel.note(f"alloc_skb_with_frags: {npages} pages > MAX_SKB_FRAGS: -EMSGSIZE")
            return None, -EMSGSIZE

    skb = alloc_skb(kernel, header_len, gfp_mask)
    if skb is None:
        return None, -ENOBUFS
    if not data_len:
        return skb, 0

    if chunks:
        limit = profile.MAX_SKB_FRAGS
        if profile.feature("alloc_skb_with_frags_limit") == "max_skb_frags_minus_1":
            limit -= 1
        nr_frags = 0
        while data_len:
            if nr_frags == limit:
                if kernel.explain is not None:
                    kernel.note(f"alloc_skb_with_frags: {nr_frags} frags filled, data left: failure")
                kfree_skb(kernel, skb)
                return None, -ENOBUFS
            order = alloc_skb_with_frags_order(data_len, order, page_size)
            if order:
                page = pages.alloc_pages(high_order_mask, order, "alloc_skb_with_frags")
                if page is None:
                    order -= 1
                    continue
            else:
                page = pages.alloc_pages(gfp_mask, 0, "alloc_skb_with_frags")
                if page is None:
                    kfree_skb(kernel, skb)
                    return None, -ENOBUFS
            chunk = min(data_len, page_size << order)
            skb_fill_page_desc(skb, nr_frags, page, 0, chunk)
            nr_frags += 1
            skb.truesize += page_size << order
            data_len -= chunk
            if kernel.explain is not None:
                kernel.note(f"alloc_skb_with_frags: frag {nr_frags - 1}: {chunk} bytes in an order-{order} block "
                            f"(truesize += {page_size << order})")
        return skb, 0

    skb.truesize += npages * page_size
    max_page_order = order
    i = 0
    while npages > 0:
        order = max_page_order
        page = None
        while order:
            if npages >= 1 << order:
                page = pages.alloc_pages(high_order_mask, order, "alloc_skb_with_frags")
                if page is not None:
                    break
                # One refusal: no more high-order tries for this skb.
                order = 1
                max_page_order = 0
            order -= 1
        if page is None:
            page = pages.alloc_pages(gfp_mask, 0, "alloc_skb_with_frags")
            if page is None:
                kfree_skb(kernel, skb)
                return None, -ENOBUFS
        chunk = min(data_len, page_size << order)
        skb_fill_page_desc(skb, i, page, 0, chunk)
        data_len -= chunk
        npages -= 1 << order
        i += 1
    return skb, 0


def pskb_expand_head(kernel: Kernel, skb: sk_buff, nhead: int, ntail: int, gfp_mask: int) -> int:
    """net/core/skbuff.c: pskb_expand_head() - a bigger kmalloc'ed head; 0 or -ENOMEM.

    The new head holds end_offset + nhead + ntail bytes before the shared
    info, rounded up by kmalloc_reserve(); the old head goes (page fragment,
    small-head object or kmalloc).  truesize grows by the new end minus the
    old one only for an skb with no owning socket, as the kernel does.
    Only an unshared head is modelled (a cloned one would need its frags
    referenced again).
    """
    if nhead < 0 or skb.users != 1:
        raise KernelBug("pskb_expand_head of a shared skb or with negative headroom")
    if skb_cloned(skb):
        raise NotImplementedError("pskb_expand_head of a cloned skb is not modelled")
    osize = skb.end
    if skb.pfmemalloc:
        gfp_mask |= __GFP_MEMALLOC
    data, size, pfmemalloc, source = kmalloc_reserve(kernel, osize + nhead + ntail, gfp_mask)
    if data is None:
        return -12
    size = kernel.profile.SKB_WITH_OVERHEAD(size)
    skb_free_head(kernel, skb)
    skb.head = data
    skb.head_frag = False
    skb.data += nhead
    skb.tail += nhead
    if skb.mac_header != 0xFFFF:
        skb.mac_header += nhead
    skb.end = size
    skb.cloned = False
    skb.shinfo.dataref = 1
    skb.head_source = source
    skb.head_size = size + kernel.profile.SHINFO_SIZE
    if kernel.explain is not None:
        kernel.note(f"pskb_expand_head: new head of {skb.head_size} bytes ({source}), end {osize} -> {size}")
    if skb.sk is None:
        skb.truesize += size - osize
    return 0


def __skb_grow(kernel: Kernel, skb: sk_buff, length: int) -> int:
    """include/linux/skbuff.h: __skb_grow() - make the linear part length bytes long.

    Missing tailroom is added by pskb_expand_head(GFP_ATOMIC); then the
    length is set (__skb_set_length()).
    """
    diff = u32(length - skb.len)
    tailroom = skb_tailroom(skb)
    if tailroom < diff:
        ret = pskb_expand_head(kernel, skb, 0, diff - tailroom, GFP_ATOMIC)
        if ret:
            return ret
    skb.tail = skb.data + length
    skb.len = length
    return 0
