"""The mlx5 (NVIDIA ConnectX) receive path, after drivers/net/ethernet/mellanox/mlx5/core.

Sources: en_rx.c (mlx5e_skb_from_cqe_linear(), mlx5e_skb_from_cqe_nonlinear(),
mlx5e_skb_from_cqe_mpwrq_linear(), mlx5e_skb_from_cqe_mpwrq_nonlinear(),
mlx5e_handle_rx_cqe(), mlx5e_handle_rx_cqe_mpwrq(), mlx5e_post_rx_wqes(),
mlx5e_post_rx_mpwqes(), mlx5e_page_alloc_fragmented(),
mlx5e_page_release_fragmented(), 6.1's mlx5e_rx_cache_get()/_put() and
mlx5e_page_release_dynamic()), en/params.c (mlx5e_build_rq_frags_info(),
mlx5e_rx_get_linear_sz_skb(), mlx5e_rx_get_linear_stride_sz(),
mlx5e_mpwqe_get_log_stride_size(), mlx5e_mpwqe_get_log_rq_size()) and
en_main.c (mlx5e_alloc_rq(), mlx5e_init_frags_partition()) of 6.1.192,
v6.9, 6.12.117, 6.18.35 and 7.1.3.  Without an XDP program the buffer
geometry and every truesize rule are the same in all of them; what changed
is who owns the pages (profile feature ``mlx5_rx_pages``).

Geometry (x86_64, 4K pages, NET_SKB_PAD 64; hw_mtu = mtu + ETH_HLEN +
VLAN_HLEN + ETH_FCS_LEN; MLX5_SKB_FRAG_SZ(x) = SKB_DATA_ALIGN(x) +
SKB_DATA_ALIGN(sizeof(struct skb_shared_info))):

- **linear** when MLX5_SKB_FRAG_SZ(headroom + hw_mtu) <= PAGE_SIZE (MTU up to
  3690): each frame is built in place, napi_build_skb() with frag_size =
  MLX5_SKB_FRAG_SZ(headroom + the frame's byte count) - so truesize follows
  the frame, not the 2048-byte stride it occupies.
- **legacy RQ, non-linear**: a WQE of up to four fragments, the first
  SKB_WITH_OVERHEAD(2048 - headroom) = 1664 bytes, then 2048 each, the
  fourth taking the rest (PAGE_SIZE fragments when that does not reach the
  MTU); strides roundup_pow_of_two(size, with headroom and shinfo for the
  first).  The skb is built around the first fragment with its stride as
  frag_size; every further fragment used adds its stride to truesize.
- **striding RQ (MPWQE), non-linear**: 256-byte strides
  (MLX5_MPWRQ_DEF_LOG_STRIDE_SZ); the first min(256, len) bytes are copied
  into napi_alloc_skb(256), the rest attached page by page with truesize
  ALIGN(bytes in that page, 256).
- Striding RQ WQEs are 256 KiB (64 pages, MLX5_MPWRQ_MAX_LOG_WQE_SZ = 18;
  the model assumes a device with 16-WQEBB send WQEs and the
  ext_stride_num_range capability, so a 2048-byte stride - 128 per WQE - is
  valid for linear skbs).  A frame takes ceil(len / stride) strides; one
  that does not fit the rest of a WQE makes the NIC close it with a filler
  completion.

Pages (``mlx5_rx_pages``):

- ``driver_cache`` (6.1): pages from a page_pool without DMA mapping; each
  skb takes a page reference (page_ref_inc()); a WQE gives its pages back
  as soon as its frame is handled (striding: once all its strides are
  used) into the RQ's own page cache (MLX5E_CACHE_SIZE = 256), whose head
  is reused only once its refcount is back to 1; a full cache hands the
  page to page_pool_recycle_direct(), which releases it while the skb
  still holds it.
- ``pp_fragments`` (6.4+: 'net/mlx5e: RX, Enable skb page recycling through
  the page_pool', 'net/mlx5e: RX, Remove internal page_cache', 'net/mlx5e:
  RX, Defer page release in legacy rq for better recycling'): every page
  is charged with MLX5E_PAGECNT_BIAS_MAX = PAGE_SIZE / 64 pp references,
  each skb (marked for recycling) uses one, and the driver gives the rest
  back when the slot is refilled (deferred release), in refill units
  sized to the page_pool cache.

Every skb goes to GRO (napi_gro_receive(); ``gro`` and the other GRO_OPTIONS
as ethtool -K sets them), with skb->hash from the CQE's RSS hash.

Not modelled: XDP, AF_XDP, SHAMPO / HW-GRO and its header-data split (the
NIC aggregating TCP itself; off by default), LRO, CQE compression, the UMR
completion delay before new striding WQEs are usable, the RQ's own MTU
check being done by the port.  ``mtu`` is limited to 9978 (a port maximum
of 10000 minus MLX5E_ETH_HARD_MTU, what ConnectX firmware commonly reports).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skbsim.drivers.base import (
    GRO_OPTIONS,
    Deliver,
    Driver,
    DriverOption,
    choice_option,
    frame_header,
    int_option,
    netdev_set_gro,
    parse_options,
)
from skbsim.drivers.pp_common import (
    PPQueue,
    RxCompletion,
    align,
    div_round_up,
    finish_rx_skb,
    order_base_2,
    pp_napi_complete,
    roundup_pow_of_two,
)
from skbsim.net.gro import netif_napi_del
from skbsim.errors import InputError, KernelBug
from skbsim.mm.gfp import GFP_ATOMIC, __GFP_NOWARN
from skbsim.net.ethernet import ETH_FCS_LEN, ETH_HLEN, VLAN_HLEN
from skbsim.net.page_pool import (
    PP_FLAG_DMA_MAP,
    PP_FLAG_DMA_SYNC_DEV,
    page_pool_alloc_pages,
    page_pool_clear_pp_info,
    page_pool_create,
    page_pool_destroy,
    page_pool_fragment_page,
    page_pool_params,
    page_pool_put_unrefed_page,
    page_pool_recycle_direct,
    page_pool_unref_page,
    skb_mark_for_recycle,
)
from skbsim.net.skbuff import napi_alloc_skb, napi_build_skb, skb_add_rx_frag, skb_put, skb_reserve

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.profile import Profile
    from skbsim.traffic.frame import Frame

MLX5E_ETH_HARD_MTU = ETH_HLEN + VLAN_HLEN + ETH_FCS_LEN
MLX5E_RX_MAX_HEAD = 256
MLX5E_MAX_RX_FRAGS = 4
DEFAULT_FRAG_SIZE = 2048
MLX5_MPWRQ_MAX_LOG_WQE_SZ = 18
MLX5_MPWQE_LOG_NUM_STRIDES_EXT_BASE = 3
MLX5_MPWQE_LOG_NUM_STRIDES_MAX = 16
MLX5_MPWQE_LOG_STRIDE_SZ_BASE = 6
MLX5_MPWQE_LOG_STRIDE_SZ_MAX = 13
MLX5E_PARAMS_MINIMUM_LOG_RQ_SIZE_MPW = 2
MLX5E_PARAMS_DEFAULT_LOG_RQ_SIZE = 10
MLX5E_PARAMS_MAXIMUM_LOG_RQ_SIZE = 13
MLX5E_MAX_MTU = 10000 - MLX5E_ETH_HARD_MTU   # port maximum 10000 (assumed), see the module docstring
ETH_MIN_MTU = 68
MLX5E_CACHE_SIZE = 4 * 64                     # 6.1: 4 * roundup_pow_of_two(MLX5E_CACHE_UNIT), 64 pages
PP_ALLOC_CACHE_REFILL = 64

EMPTY, POSTED, WRITTEN = 0, 1, 2

DRIVER_CACHE = "driver_cache"
PP_FRAGMENTS = "pp_fragments"


def mlx5_skb_frag_sz(profile: Profile, length: int) -> int:
    """en.h: MLX5_SKB_FRAG_SZ() - SKB_DATA_ALIGN(len) + SKB_DATA_ALIGN(sizeof(struct skb_shared_info))."""
    return mlx5_skb_frag_sz_bytes(length, profile.SMP_CACHE_BYTES, profile.SHINFO_SIZE)


def mlx5_skb_frag_sz_bytes(length: int, smp_cache_bytes: int, shinfo_size: int) -> int:
    """MLX5_SKB_FRAG_SZ() in plain integers (SMP_CACHE_BYTES, the aligned skb_shared_info): the fast engine
    compiles this function."""
    return ((length + smp_cache_bytes - 1) & ~(smp_cache_bytes - 1)) + shinfo_size


def mlx5e_rx_headroom(profile: Profile) -> int:
    """en/params.c: mlx5e_get_linear_rq_headroom() without XDP - NET_IP_ALIGN + MLX5_RX_HEADROOM (NET_SKB_PAD)."""
    return profile.NET_IP_ALIGN + profile.NET_SKB_PAD


def mlx5e_pagecnt_bias_max(profile: Profile) -> int:
    """en_rx.c: MLX5E_PAGECNT_BIAS_MAX - PAGE_SIZE / 64."""
    return profile.PAGE_SIZE // 64


class mlx5e_geometry:
    """What en/params.c derives from the MTU and the RQ type."""

    __slots__ = ("hw_mtu", "headroom", "linear", "frag_sizes", "frag_strides", "wqe_index_mask", "wqe_bulk",
                 "refill_unit", "log_stride_sz", "log_num_strides", "log_rq_size", "pages_per_wqe")

    def describe(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__ if getattr(self, name, None) is not None}


def mlx5e_rx_is_linear_skb(profile: Profile, hw_mtu: int) -> bool:
    """en/params.c: mlx5e_rx_is_linear_skb() - MLX5_SKB_FRAG_SZ(headroom + hw_mtu) fits a page."""
    return mlx5_skb_frag_sz(profile, mlx5e_rx_headroom(profile) + hw_mtu) <= profile.PAGE_SIZE


def mlx5e_build_rq_frags_info(profile: Profile, hw_mtu: int, log_rq_size: int, pp_fragments: bool) -> mlx5e_geometry:
    """en/params.c: mlx5e_build_rq_frags_info() for a legacy (cyclic) RQ without XDP."""
    g = mlx5e_geometry()
    g.hw_mtu = hw_mtu
    g.headroom = headroom = mlx5e_rx_headroom(profile)
    page = profile.PAGE_SIZE
    if mlx5e_rx_is_linear_skb(profile, hw_mtu):
        stride = roundup_pow_of_two(mlx5_skb_frag_sz(profile, headroom + hw_mtu))
        g.linear = True
        g.frag_sizes = [hw_mtu]
        g.frag_strides = [stride]
        g.wqe_index_mask = page // stride - 1
    else:
        g.linear = False
        frag_size_max = DEFAULT_FRAG_SIZE
        first_max = profile.SKB_WITH_OVERHEAD(frag_size_max - headroom)
        if hw_mtu > first_max + (MLX5E_MAX_RX_FRAGS - 2) * frag_size_max + page:
            frag_size_max = page
            first_max = profile.SKB_WITH_OVERHEAD(frag_size_max - headroom)
        sizes, strides = [], []
        buf_size = 0
        while buf_size < hw_mtu:
            size = hw_mtu - buf_size
            if not sizes:
                size = min(size, first_max)
            elif len(sizes) < MLX5E_MAX_RX_FRAGS - 1:
                size = min(size, frag_size_max)
            sizes.append(size)
            buf_size += size
            room = size + headroom + profile.SHINFO_SIZE if len(strides) == 0 else size
            strides.append(roundup_pow_of_two(room))
        g.frag_sizes, g.frag_strides = sizes, strides
        g.wqe_index_mask = 0 if frag_size_max == page else len(sizes) % 2
    if pp_fragments:
        _compute_wqe_bulk_params(profile, g, log_rq_size)
    else:
        g.wqe_bulk = max(g.wqe_index_mask + 1, 8)   # 6.1
        g.refill_unit = g.wqe_bulk
    return g


def _compute_wqe_bulk_params(profile: Profile, g: mlx5e_geometry, log_rq_size: int) -> None:
    """en/params.c: mlx5e_rx_compute_wqe_bulk_params() without XDP - a bulk of at most 512 KiB or a quarter
    of the ring, refilled in units that fit the page_pool cache."""
    max_bulk_bytes = 512 * 1024
    sum_strides = sum(g.frag_strides)
    if sum_strides > profile.PAGE_SIZE:
        sum_strides = align(sum_strides, profile.PAGE_SIZE)
    bound = ((1 << log_rq_size) // 4) * sum_strides
    wqe_bulk = div_round_up(min(max_bulk_bytes, bound), sum_strides)
    g.wqe_bulk = max(g.wqe_index_mask + 1, wqe_bulk)
    split_factor = div_round_up(max_bulk_bytes, PP_ALLOC_CACHE_REFILL * profile.PAGE_SIZE)
    g.refill_unit = div_round_up(g.wqe_bulk, split_factor)


def mlx5e_mpwqe_geometry(profile: Profile, hw_mtu: int, log_rq_mtu_frames: int) -> mlx5e_geometry:
    """en/params.c: stride size and count, WQ size (mlx5e_mpwqe_get_log_stride_size(),
    mlx5e_mpwqe_get_log_num_strides(), mlx5e_mpwqe_get_log_rq_size()) for a striding RQ without XDP."""
    g = mlx5e_geometry()
    g.hw_mtu = hw_mtu
    g.headroom = headroom = mlx5e_rx_headroom(profile)
    log_wqe_sz = min(MLX5_MPWRQ_MAX_LOG_WQE_SZ, 6 + profile.PAGE_SHIFT)   # 64 MTTs at most
    g.pages_per_wqe = 1 << (log_wqe_sz - profile.PAGE_SHIFT)
    linear_stride = roundup_pow_of_two(mlx5_skb_frag_sz(profile, headroom + hw_mtu))
    log_linear = order_base_2(linear_stride)
    g.linear = False
    if mlx5e_rx_is_linear_skb(profile, hw_mtu) and log_wqe_sz >= log_linear:
        log_num = log_wqe_sz - log_linear
        g.linear = (MLX5_MPWQE_LOG_STRIDE_SZ_BASE <= log_linear <= MLX5_MPWQE_LOG_STRIDE_SZ_MAX
                    and MLX5_MPWQE_LOG_NUM_STRIDES_EXT_BASE <= log_num <= MLX5_MPWQE_LOG_NUM_STRIDES_MAX)
    if g.linear:
        g.log_stride_sz = log_linear
    else:
        # MLX5_MPWRQ_DEF_LOG_STRIDE_SZ: max(6 (64-byte cache lines), order_base_2(MLX5E_RX_MAX_HEAD))
        g.log_stride_sz = max(6 if profile.L1_CACHE_BYTES <= 64 else 7, order_base_2(MLX5E_RX_MAX_HEAD))
    g.log_num_strides = log_wqe_sz - g.log_stride_sz
    log_pkts_per_wqe = log_wqe_sz - log_linear
    if log_rq_mtu_frames < log_pkts_per_wqe + MLX5E_PARAMS_MINIMUM_LOG_RQ_SIZE_MPW:
        g.log_rq_size = MLX5E_PARAMS_MINIMUM_LOG_RQ_SIZE_MPW
    else:
        g.log_rq_size = log_rq_mtu_frames - log_pkts_per_wqe
    wq_sz = 1 << g.log_rq_size
    g.wqe_bulk = min(2, wq_sz // 2 - 1)   # mlx5e_mpwqe_get_min_wqe_bulk()
    return g


# -- page ownership -----------------------------------------------------------------------------------------


class mlx5e_frag_page:
    """en.h: struct mlx5e_frag_page - a page and the fragment references handed out of it (6.4+); in 6.1
    the alloc unit (the page alone).  ``held``: the driver still owes the page its release."""

    __slots__ = ("page", "frags", "held")

    def __init__(self) -> None:
        self.page = None
        self.frags = 0
        self.held = False


def mlx5e_page_alloc(kernel: Kernel, rq, fp: mlx5e_frag_page) -> bool:
    """A page for a WQE: 6.4+ mlx5e_page_alloc_fragmented() (pool page charged with BIAS_MAX references),
    6.1 mlx5e_page_alloc_pool() (the RQ's page cache first, then the pool)."""
    if fp.held:
        raise KernelBug("mlx5: a page slot is refilled while the driver still holds its page")
    if rq.pp_fragments:
        page = page_pool_alloc_pages(kernel, rq.page_pool, GFP_ATOMIC | __GFP_NOWARN)
        if page is None:
            return False
        page_pool_fragment_page(page, rq.bias_max)
    else:
        page = mlx5e_rx_cache_get(rq)
        if page is None:
            page = page_pool_alloc_pages(kernel, rq.page_pool, GFP_ATOMIC | __GFP_NOWARN)
            if page is None:
                return False
    fp.page = page
    fp.frags = 0
    fp.held = True
    return True


def mlx5e_page_release(kernel: Kernel, rq, fp: mlx5e_frag_page, recycle: bool = True) -> None:
    """The driver lets go of a page: 6.4+ mlx5e_page_release_fragmented() (drop the references no skb
    took; the last one recycles it, directly), 6.1 mlx5e_page_release_dynamic()."""
    if not fp.held:
        return
    fp.held = False
    page = fp.page
    if rq.pp_fragments:
        if page_pool_unref_page(rq.page_pool, page, rq.bias_max - fp.frags) == 0:
            page_pool_put_unrefed_page(kernel, rq.page_pool, page, -1, True)
    elif recycle:
        if not mlx5e_rx_cache_put(rq, page):
            page_pool_recycle_direct(kernel, rq.page_pool, page)
    else:
        # page_pool_release_page() + put_page()
        page_pool_clear_pp_info(page)
        rq.page_pool.pages_state_release_cnt += 1
        kernel.pages.put_page(page)


def mlx5e_rx_cache_put(rq, page) -> bool:
    """6.1 en_rx.c: mlx5e_rx_cache_put() - into the RQ's page cache unless full or a pfmemalloc page."""
    if len(rq.page_cache) + 1 >= MLX5E_CACHE_SIZE:   # tail_next == head: one slot stays empty
        rq.cache_stats["cache_full"] += 1
        return False
    if page.pfmemalloc:
        rq.cache_stats["cache_waive"] += 1
        return False
    rq.page_cache.append(page)
    return True


def mlx5e_rx_cache_get(rq):
    """6.1 en_rx.c: mlx5e_rx_cache_get() - the cache's oldest page, if nobody else holds it any more."""
    if not rq.page_cache:
        rq.cache_stats["cache_empty"] += 1
        return None
    if rq.page_cache[0].refcount != 1:
        rq.cache_stats["cache_busy"] += 1
        return None
    rq.cache_stats["cache_reuse"] += 1
    return rq.page_cache.popleft()


def _skb_takes_page(kernel: Kernel, rq, fp: mlx5e_frag_page) -> None:
    """An skb now uses part of this page: one pp fragment reference (6.4+), or page_ref_inc() (6.1)."""
    if rq.pp_fragments:
        fp.frags += 1
    else:
        kernel.pages.get_page(fp.page)


# -- the queue --------------------------------------------------------------------------------------------


class mlx5e_rq(PPQueue):
    """en.h: struct mlx5e_rq - either WQ type; ``wqe_frags`` (legacy: per WQE, per fragment, the page slot
    and offset) or ``mpw`` (striding: per WQE its pages and consumed strides)."""

    __slots__ = ("striding", "pp_fragments", "geo", "page_pool", "bias_max", "page_cache", "cache_stats",
                 "page_size", "wq_sz", "frag_pages", "wqe_frags", "last_in_page", "state", "hw_head", "ci", "mpw",
                 "hw_stride", "mpw_ready")

    def __init__(self, dev: net_device, napi: napi_struct, striding: bool, pp_fragments: bool):
        super().__init__("mlx5", dev, napi)
        self.striding = striding
        self.pp_fragments = pp_fragments
        self.geo = None
        self.page_pool = None
        self.bias_max = 0
        from collections import deque

        self.page_cache = deque()
        self.cache_stats = dict.fromkeys(("cache_reuse", "cache_full", "cache_empty", "cache_busy", "cache_waive"), 0)
        self.wq_sz = 0
        self.frag_pages: list[mlx5e_frag_page] = []
        self.wqe_frags: list[list[tuple[int, int]]] = []
        self.last_in_page: list[list[bool]] = []
        self.page_size = 4096
        # Per WQE: EMPTY (to be posted), POSTED (the NIC may write), WRITTEN (awaiting the driver).
        self.state: list[int] = []
        self.hw_head = 0      # the next WQE the NIC writes into (legacy) / the WQE it fills (striding)
        self.ci = 0           # the next WQE the driver would post
        self.mpw: list[list[mlx5e_frag_page]] = []
        self.hw_stride = 0
        self.mpw_ready: list[int] = []   # consumed strides per striding WQE


def mlx5e_init_frags_partition(rq: mlx5e_rq) -> None:
    """en_main.c: mlx5e_init_frags_partition() - which page slot and offset each WQE fragment gets.

    Fragments are laid out one after another over consecutive pages; a
    fragment that would cross the page end starts a new page, and the last
    fragment in each page releases it.
    """
    page_size = rq.page_size
    strides = rq.geo.frag_strides
    slot, offset = 0, 0
    rq.wqe_frags, rq.last_in_page = [], []
    prev = None
    for _ in range(rq.wq_sz):
        frags, lasts = [], []
        for stride in strides:
            if offset + stride > page_size:
                slot += 1
                offset = 0
                if prev is not None:
                    prev[0][prev[1]] = True
            frags.append((slot, offset))
            lasts.append(False)
            prev = (lasts, len(lasts) - 1)
            offset += stride
        rq.wqe_frags.append(frags)
        rq.last_in_page.append(lasts)
    if prev is not None:
        prev[0][prev[1]] = True
    rq.frag_pages = [mlx5e_frag_page() for _ in range(slot + 1)]


def _legacy_alloc_wqe(kernel: Kernel, rq: mlx5e_rq, ix: int) -> bool:
    """en_rx.c: mlx5e_alloc_rx_wqe() - a new page for every fragment that starts one (offset 0).

    On a failure the pages this WQE took are given back (the model's
    simplification of the driver's error path).
    """
    taken = []
    for slot, offset in rq.wqe_frags[ix]:
        if offset == 0:
            fp = rq.frag_pages[slot]
            if not mlx5e_page_alloc(kernel, rq, fp):
                for done in taken:
                    mlx5e_page_release(kernel, rq, done)
                return False
            taken.append(fp)
    return True


def _legacy_release_wqe(kernel: Kernel, rq: mlx5e_rq, ix: int) -> None:
    """en_rx.c: mlx5e_free_rx_wqe() - the pages whose last fragment this WQE has."""
    for f, (slot, _) in enumerate(rq.wqe_frags[ix]):
        if rq.last_in_page[ix][f]:
            mlx5e_page_release(kernel, rq, rq.frag_pages[slot])


def mlx5e_post_rx_wqes(kernel: Kernel, rq: mlx5e_rq) -> bool:
    """en_rx.c: mlx5e_post_rx_wqes() - refill once wqe_bulk WQEs are missing; True if an allocation failed.

    The bulk is cut so that it ends on a page boundary (wqe_index_mask): a
    new WQE never shares a page with an old one still in use.  6.4+
    releases the old pages of each slot just before refilling it
    (mlx5e_refill_rx_wqes(), in refill_unit steps); 6.1 released them when
    the frame was handled.
    """
    missing = rq.state.count(EMPTY)
    if missing < rq.geo.wqe_bulk:
        return False
    head = rq.ci
    bulk = missing - ((head + missing) & rq.geo.wqe_index_mask)
    done = 0
    while done < bulk:
        ixs = [(head + done + i) % rq.wq_sz for i in range(min(rq.geo.refill_unit, bulk - done))]
        if rq.pp_fragments:
            for ix in ixs:
                _legacy_release_wqe(kernel, rq, ix)
        for ix in ixs:
            if not _legacy_alloc_wqe(kernel, rq, ix):
                rq.stats.buffer_alloc_failures += 1
                return True
            rq.state[ix] = POSTED
            done += 1
            rq.ci = (ix + 1) % rq.wq_sz
    return False


def _mpwqe_alloc(kernel: Kernel, rq: mlx5e_rq, ix: int) -> bool:
    """en_rx.c: mlx5e_alloc_rx_mpwqe() - pages_per_wqe pages for a striding WQE."""
    pages = rq.mpw[ix]
    for i, fp in enumerate(pages):
        if not mlx5e_page_alloc(kernel, rq, fp):
            for done in pages[:i]:
                mlx5e_page_release(kernel, rq, done)
            return False
    rq.mpw_ready[ix] = 0
    return True


def _mpwqe_release(kernel: Kernel, rq: mlx5e_rq, ix: int) -> None:
    """en_rx.c: mlx5e_free_rx_mpwqe() - every page of the WQE."""
    for fp in rq.mpw[ix]:
        mlx5e_page_release(kernel, rq, fp)


def mlx5e_post_rx_mpwqes(kernel: Kernel, rq: mlx5e_rq) -> bool:
    """en_rx.c: mlx5e_post_rx_mpwqes() - once min_wqe_bulk WQEs are missing, refill them (6.4+: releasing each
    slot's old pages first); True if an allocation failed."""
    missing = rq.state.count(EMPTY)
    if missing < max(1, rq.geo.wqe_bulk):
        return False
    for _ in range(missing):
        ix = rq.ci
        if rq.pp_fragments:
            _mpwqe_release(kernel, rq, ix)
        if not _mpwqe_alloc(kernel, rq, ix):
            rq.stats.buffer_alloc_failures += 1
            return True
        rq.state[ix] = POSTED
        rq.ci = (ix + 1) % rq.wq_sz
    return False


# -- the NIC ------------------------------------------------------------------------------------------------


def mlx5e_nic_receive(kernel: Kernel, rq: mlx5e_rq, frame: Frame) -> bool:
    """The ConnectX receive: a legacy WQE per frame, or strides of the current striding WQE."""
    length = frame.length
    if length > rq.rxmax:
        rq.stats.oversize_drops += 1
        return False
    header = frame_header(frame, rq.synthetic)
    state = rq.state
    ix = rq.hw_head
    if state[ix] != POSTED:
        rq.stats.ring_drops += 1
        return False
    if not rq.striding:
        state[ix] = WRITTEN
        rq.hw_head = (ix + 1) % rq.wq_sz
        rq.completions.append(("wqe", ix, 0, 0, RxCompletion([ix], [length], header, frame.rss_hash)))
        rq.stats.nic_frames += 1
        return True
    geo = rq.geo
    num_strides = 1 << geo.log_num_strides
    cstrides = 1 if geo.linear else div_round_up(length, 1 << geo.log_stride_sz)
    if rq.hw_stride + cstrides > num_strides:
        # Not enough strides left: a filler completion closes the WQE; the frame goes to the next one.
        nxt = (ix + 1) % rq.wq_sz
        if state[nxt] != POSTED:
            rq.stats.ring_drops += 1
            return False
        rq.completions.append(("filler", ix, rq.hw_stride, num_strides - rq.hw_stride, None))
        state[ix] = WRITTEN
        ix = rq.hw_head = nxt
        rq.hw_stride = 0
    rq.completions.append(("mpwqe", ix, rq.hw_stride, cstrides, RxCompletion([ix], [length], header,
                                                                              frame.rss_hash)))
    rq.hw_stride += cstrides
    if rq.hw_stride == num_strides:
        state[ix] = WRITTEN
        rq.hw_head = (ix + 1) % rq.wq_sz
        rq.hw_stride = 0
    rq.stats.nic_frames += 1
    return True


# -- skbs ---------------------------------------------------------------------------------------------------


def mlx5e_skb_from_cqe_linear(kernel: Kernel, rq: mlx5e_rq, fp: mlx5e_frag_page, offset: int, cqe_bcnt: int):
    """en_rx.c: mlx5e_skb_from_cqe_linear() / _mpwrq_linear() - the frame built in place, truesize from its length."""
    profile = kernel.profile
    headroom = rq.geo.headroom
    frag_size = mlx5_skb_frag_sz(profile, headroom + cqe_bcnt)
    skb = napi_build_skb(kernel, kernel.pages.page_address(fp.page) + offset, frag_size)
    if skb is None:
        return None
    skb_reserve(skb, headroom)
    skb_put(skb, cqe_bcnt)
    if rq.pp_fragments:
        skb_mark_for_recycle(skb)
    _skb_takes_page(kernel, rq, fp)
    skb.head_source = "mlx5 rx page (page_pool)"
    skb.path = "napi_build_skb"
    return skb


def mlx5e_skb_from_cqe_nonlinear(kernel: Kernel, rq: mlx5e_rq, ix: int, cqe_bcnt: int):
    """en_rx.c: mlx5e_skb_from_cqe_nonlinear() - built around fragment 0 (its stride as frag_size); each
    further fragment used is added with its stride as truesize."""
    geo = rq.geo
    pages = kernel.pages
    frags = rq.wqe_frags[ix]
    slot, offset = frags[0]
    fp = rq.frag_pages[slot]
    skb = napi_build_skb(kernel, pages.page_address(fp.page) + offset, geo.frag_strides[0])
    if skb is None:
        return None
    skb_reserve(skb, geo.headroom)
    first = min(geo.frag_sizes[0], cqe_bcnt)
    skb_put(skb, first)
    if rq.pp_fragments:
        skb_mark_for_recycle(skb)
    _skb_takes_page(kernel, rq, fp)
    left = cqe_bcnt - first
    f = 1
    while left:
        size = min(geo.frag_sizes[f], left)
        fslot, foffset = frags[f]
        ffp = rq.frag_pages[fslot]
        skb_add_rx_frag(skb, skb.nr_frags, ffp.page, foffset, size, geo.frag_strides[f])
        _skb_takes_page(kernel, rq, ffp)
        left -= size
        f += 1
    skb.head_source = "mlx5 rx page (page_pool)"
    skb.path = "napi_build_skb"
    return skb


def mlx5e_skb_from_cqe_mpwrq_nonlinear(kernel: Kernel, rq: mlx5e_rq, ix: int, head_offset: int, page_idx: int,
                                       cqe_bcnt: int):
    """en_rx.c: mlx5e_skb_from_cqe_mpwrq_nonlinear() - the first MLX5E_RX_MAX_HEAD bytes copied into
    napi_alloc_skb(256), the rest attached page by page, truesize ALIGN(bytes in the page, stride)."""
    page_size = kernel.profile.PAGE_SIZE
    stride = 1 << rq.geo.log_stride_sz
    headlen = min(MLX5E_RX_MAX_HEAD, cqe_bcnt)
    skb = napi_alloc_skb(kernel, rq.napi, align(MLX5E_RX_MAX_HEAD, 8))
    if skb is None:
        return None
    if rq.pp_fragments:
        skb_mark_for_recycle(skb)
    pages = rq.mpw[ix]
    frag_offset = head_offset + headlen
    byte_cnt = cqe_bcnt - headlen
    if frag_offset >= page_size:
        page_idx += 1
        frag_offset -= page_size
    skb_put(skb, headlen)   # the header copy: tail and len grow by headlen
    while byte_cnt:
        fp = pages[page_idx]
        consumed = min(page_size - frag_offset, byte_cnt)
        skb_add_rx_frag(skb, skb.nr_frags, fp.page, frag_offset, consumed, align(consumed, stride))
        _skb_takes_page(kernel, rq, fp)
        byte_cnt -= consumed
        frag_offset = 0
        page_idx += 1
    rq.stats.bytes_copied += headlen
    return skb


def mlx5e_poll_rx_cq(kernel: Kernel, rq: mlx5e_rq, budget: int, deliver: Deliver) -> int:
    """en_txrx.c / en_rx.c: mlx5e_napi_poll() -> mlx5e_poll_rx_cq(), then the WQ refill.

    Busy (the budget used, or a refill failed): the poll returns its budget and NAPI stays scheduled;
    otherwise napi_complete_done() (GRO flushes)."""
    stats = rq.stats
    stats.polls += 1
    if budget <= 0:
        return budget
    work = 0
    with kernel.softirq(rq.napi.cpu):
        geo = rq.geo
        while work < budget and rq.completions:
            kind, ix, stride_ix, cstrides, comp = rq.completions.popleft()
            if kind == "filler":
                _mpwqe_consumed(kernel, rq, ix, cstrides)
                continue
            work += 1
            length = comp.length
            if kind == "wqe":
                stats.buffers_used += len(geo.frag_sizes)
                if geo.linear:
                    slot, offset = rq.wqe_frags[ix][0]
                    skb = mlx5e_skb_from_cqe_linear(kernel, rq, rq.frag_pages[slot], offset, length)
                    builder = "mlx5e_skb_from_cqe_linear"
                else:
                    skb = mlx5e_skb_from_cqe_nonlinear(kernel, rq, ix, length)
                    builder = "mlx5e_skb_from_cqe_nonlinear"
                if not rq.pp_fragments:
                    _legacy_release_wqe(kernel, rq, ix)   # 6.1: at once, into the page cache
                rq.state[ix] = EMPTY                      # mlx5_wq_cyc_pop()
            else:
                stats.buffers_used += cstrides
                offset = stride_ix << geo.log_stride_sz
                page_idx, head_offset = divmod(offset, kernel.profile.PAGE_SIZE)
                if geo.linear:
                    skb = mlx5e_skb_from_cqe_linear(kernel, rq, rq.mpw[ix][page_idx], head_offset, length)
                    builder = "mlx5e_skb_from_cqe_mpwrq_linear"
                else:
                    skb = mlx5e_skb_from_cqe_mpwrq_nonlinear(kernel, rq, ix, head_offset, page_idx, length)
                    builder = "mlx5e_skb_from_cqe_mpwrq_nonlinear"
                _mpwqe_consumed(kernel, rq, ix, cstrides)
            if skb is None:
                stats.skb_alloc_failures += 1
                stats.drop(length)
                continue
            rq.last_path = builder
            # mlx5e_complete_rx_cqe() (skb_set_hash() under NETIF_F_RXHASH, eth_type_trans()), napi_gro_receive().
            finish_rx_skb(kernel, rq, skb, comp, deliver)
        failed = mlx5e_post_rx_mpwqes(kernel, rq) if rq.striding else mlx5e_post_rx_wqes(kernel, rq)
        return pp_napi_complete(kernel, rq, budget if failed else work, budget, deliver)


def _mpwqe_consumed(kernel: Kernel, rq: mlx5e_rq, ix: int, cstrides: int) -> None:
    """wi->consumed_strides += cstrides; a WQE whose strides are all used leaves the WQ (6.1: and its pages
    go back at once)."""
    rq.mpw_ready[ix] += cstrides
    if rq.mpw_ready[ix] >= 1 << rq.geo.log_num_strides:
        rq.state[ix] = EMPTY                              # mlx5_wq_ll_pop()
        if not rq.pp_fragments:
            _mpwqe_release(kernel, rq, ix)


# -- the driver interface -----------------------------------------------------------------------------------


def _ring_option(text: str) -> int:
    value = int_option("ring", 1 << 4, 1 << MLX5E_PARAMS_MAXIMUM_LOG_RQ_SIZE, " (ethtool -G rx for mlx5)")(text)
    return order_base_2(value)   # mlx5e_ethtool_set_ringparam(): log_rq_size = order_base_2(rx_pending)


OPTIONS = GRO_OPTIONS + (
    DriverOption("rq", "striding", "striding (MPWQE, the default where the device has it) or legacy (cyclic "
                 "RQ, ethtool --set-priv-flags rx_striding_rq off)", choice_option("rq", ("striding", "legacy"))),
    DriverOption("mtu", "1500", f"interface MTU, {ETH_MIN_MTU}..{MLX5E_MAX_MTU}; linear skbs up to 3690",
                 int_option("mtu", ETH_MIN_MTU, MLX5E_MAX_MTU, " (max_mtu: a port maximum of 10000 minus 22)")),
    DriverOption("ring", "1024", "RX ring in MTU-sized frames (ethtool -G rx), 16..8192, rounded up to a power "
                 "of two", _ring_option),
)


def refill_splits_pages(wqe_index_mask: int, refill_unit: int) -> bool:
    """Whether mlx5e_refill_rx_wqes() (6.4+) steps end inside a page: WQEs share a page (wqe_index_mask + 1
    of them) and refill_unit is no multiple of that, so one step's mlx5e_free_rx_wqes() reaches the
    last-in-page fragment of a page the step before has just allocated for its first WQEs."""
    return wqe_index_mask > 0 and refill_unit % (wqe_index_mask + 1) != 0


def _check_refill_unit(profile: Profile, geo: mlx5e_geometry, hw_mtu: int, log_rq_size: int,
                       pp_fragments: bool) -> None:
    """Refuse a legacy RQ whose refill would release a page still posted to the NIC.

    Read from en_rx.c (mlx5e_refill_rx_wqes(), mlx5e_free_rx_wqe(), mlx5e_get_rx_frag()) and
    en/params.c (mlx5e_rx_compute_wqe_bulk_params()): with a ring of 16 and small frames the refill
    unit is half a page's WQEs, and the kernel would drain the fresh page back into the pool while its
    WQEs are posted, leaking the old one.  That is a use-after-free the model does not follow; the
    message names the smallest ring that avoids it.
    """
    if not pp_fragments or not refill_splits_pages(geo.wqe_index_mask, geo.refill_unit):
        return
    smallest = log_rq_size + 1
    while smallest < MLX5E_PARAMS_MAXIMUM_LOG_RQ_SIZE:
        g = mlx5e_build_rq_frags_info(profile, hw_mtu, smallest, pp_fragments)
        if not refill_splits_pages(g.wqe_index_mask, g.refill_unit):
            break
        smallest += 1
    raise InputError(
        f"mlx5 rq=legacy ring={1 << log_rq_size} mtu={hw_mtu - MLX5E_ETH_HARD_MTU}: mlx5e_refill_rx_wqes() would "
        f"refill {geo.refill_unit} WQEs at a time while {geo.wqe_index_mask + 1} share a page, and release a page "
        f"it has just posted (a use-after-free in the kernel's steps, not modelled); use ring={1 << smallest} "
        "or more")


def mlx5e_open_rq(kernel: Kernel, dev: net_device, napi: napi_struct, options: dict[str, str] | None) -> mlx5e_rq:
    """en_main.c: mlx5e_open_rq() - geometry, page_pool (pool_size: the RQ's frames, or its WQEs' pages),
    every WQE posted."""
    values = parse_options("mlx5", OPTIONS, options)
    profile = kernel.profile
    if profile.PAGE_SIZE != 4096:
        raise InputError(f"mlx5: PAGE_SIZE {profile.PAGE_SIZE} is not modelled (the legacy RQ's 2K fragments need "
                         "4K pages)")
    pp_fragments = profile.feature("mlx5_rx_pages") == PP_FRAGMENTS
    striding = values["rq"] == "striding"
    rq = mlx5e_rq(dev, napi, striding, pp_fragments)
    dev.mtu = values["mtu"]
    netdev_set_gro(dev, values)
    hw_mtu = dev.mtu + MLX5E_ETH_HARD_MTU
    log_rq_mtu_frames = values["ring"]
    rq.bias_max = mlx5e_pagecnt_bias_max(profile)
    rq.rxmax = hw_mtu - ETH_FCS_LEN
    if striding:
        geo = rq.geo = mlx5e_mpwqe_geometry(profile, hw_mtu, log_rq_mtu_frames)
        rq.wq_sz = 1 << geo.log_rq_size
        pool_size = geo.pages_per_wqe << geo.log_rq_size
        rq.mpw = [[mlx5e_frag_page() for _ in range(geo.pages_per_wqe)] for _ in range(rq.wq_sz)]
        rq.mpw_ready = [0] * rq.wq_sz
    else:
        geo = rq.geo = mlx5e_build_rq_frags_info(profile, hw_mtu, log_rq_mtu_frames, pp_fragments)
        _check_refill_unit(profile, geo, hw_mtu, log_rq_mtu_frames, pp_fragments)
        rq.wq_sz = 1 << log_rq_mtu_frames
        pool_size = rq.wq_sz
        mlx5e_init_frags_partition(rq)
    rq.state = [EMPTY] * rq.wq_sz
    rq.page_size = profile.PAGE_SIZE
    flags = PP_FLAG_DMA_MAP | PP_FLAG_DMA_SYNC_DEV if pp_fragments else 0
    params = page_pool_params(flags=flags, pool_size=pool_size, napi=napi if pp_fragments else None,
                              max_len=profile.PAGE_SIZE if pp_fragments else 0, netdev=dev)
    pool, err = page_pool_create(kernel, params, name=f"mlx5 rq {napi.napi_id:#x}")
    if pool is None:
        raise InputError(f"mlx5: page_pool_create() failed with {err} (pool_size {pool_size})")
    rq.page_pool = pool
    rq.page_pools = [pool]
    rq.config = {
        "rq": values["rq"],
        "mtu": dev.mtu,
        "ring": 1 << log_rq_mtu_frames,
        "hw_mtu": hw_mtu,
        "linear": geo.linear,
        "headroom": geo.headroom,
        "rxmax": rq.rxmax,
        "pool_size": pool.ring_qsize,
        "rules": "page_pool fragments counted in pp_ref_count, deferred release (6.4+)" if pp_fragments
        else "the RQ's own page cache, skbs hold page references (6.1)",
    }
    if striding:
        rq.config.update(stride=1 << geo.log_stride_sz, strides_per_wqe=1 << geo.log_num_strides,
                         wqes=rq.wq_sz, pages_per_wqe=geo.pages_per_wqe)
    else:
        rq.config.update(frag_sizes=",".join(map(str, geo.frag_sizes)),
                         frag_strides=",".join(map(str, geo.frag_strides)), wqe_bulk=geo.wqe_bulk)
    # mlx5e_activate_rq(): the first NAPI poll fills the whole WQ.
    with kernel.softirq(napi.cpu):
        if striding:
            mlx5e_post_rx_mpwqes(kernel, rq)
        else:
            mlx5e_post_rx_wqes(kernel, rq)
    return rq


def mlx5e_close_rq(kernel: Kernel, rq: mlx5e_rq) -> None:
    """en_main.c: mlx5e_close_rq() -> mlx5e_free_rx_descs() and page_pool_destroy(): frames not cleaned are
    lost; every page the driver still holds goes back (6.1: the page cache is emptied to the allocator)."""
    stats = rq.stats
    while rq.completions:
        entry = rq.completions.popleft()
        if entry[0] != "filler":
            stats.drop(entry[4].length)
    with kernel.softirq(rq.napi.cpu):
        if rq.striding:
            for pages in rq.mpw:
                for fp in pages:
                    mlx5e_page_release(kernel, rq, fp, recycle=rq.pp_fragments)
        else:
            for fp in rq.frag_pages:
                mlx5e_page_release(kernel, rq, fp, recycle=rq.pp_fragments)
        while rq.page_cache:
            page = rq.page_cache.popleft()
            page_pool_clear_pp_info(page)
            rq.page_pool.pages_state_release_cnt += 1
            kernel.pages.put_page(page)
    page_pool_destroy(kernel, rq.page_pool)
    # mlx5e_close_channel() -> netif_napi_del(): what GRO still holds is freed.
    netif_napi_del(kernel, rq.napi)


DRIVER = Driver(
    name="mlx5",
    summary="NVIDIA ConnectX (mlx5): striding or legacy RQ, linear or non-linear skbs, page_pool pages",
    options=OPTIONS,
    open_queue=mlx5e_open_rq,
    nic_receive=mlx5e_nic_receive,
    poll=mlx5e_poll_rx_cq,
    close_queue=mlx5e_close_rq,
)
