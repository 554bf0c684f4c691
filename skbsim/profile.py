"""One kernel build's constants and named features.

A profile is data (``skbsim/profiles/*.toml``): a handful of inputs that
differ between releases, architectures and configs, and the named features
that say which behaviour a release has.  Everything else is derived here by
the kernel's own formulas, each kept beside the name the kernel gives it:

- include/linux/skbuff.h: NET_SKB_PAD, SKB_DATA_ALIGN, SKB_WITH_OVERHEAD,
  SKB_HEAD_ALIGN, SKB_TRUESIZE, SKB_SMALL_HEAD_*
- include/linux/netdevice.h: LL_MAX_HEADER, MAX_HEADER, GRO_MAX_HEAD
- include/net/tcp.h: MAX_TCP_HEADER
- include/linux/slab.h: KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE
- include/linux/page_frag_cache.h / mm_types.h: PAGE_FRAG_CACHE_MAX_SIZE

Code elsewhere branches on ``profile.has("feature")``, never on a version.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from dataclasses import dataclass
from importlib import resources

from skbsim.errors import InputError
from skbsim.files import MAX_PROFILE_BYTES, read_bounded, shown

U32_MASK = 0xFFFFFFFF

#: Features a profile may declare: name -> (type, allowed values, meaning).  A
#: profile must give every one of them a value, so no behaviour is chosen by
#: default.  docs/versions.md says which release introduced which value.
FEATURES = {
    "small_page_frag_1k": (
        bool,
        None,
        "NAPI_HAS_SMALL_PAGE_FRAG: heads of at most SKB_WITH_OVERHEAD(1024) come "
        "from a per-CPU order-0 page cut into 1K pieces (needs 4K pages)",
    ),
    "small_head_cache": (
        bool,
        None,
        "kmalloc_reserve() takes small heads from the skbuff_small_head kmem cache",
    ),
    "small_head_size_rule": (
        str,
        ("none", "max_tcp_header", "max_tcp_header_gro_pad"),
        "how SKB_SMALL_HEAD_SIZE is formed: 'max_tcp_header' = SKB_HEAD_ALIGN(MAX_TCP_HEADER); "
        "'max_tcp_header_gro_pad' = SKB_HEAD_ALIGN(max(MAX_TCP_HEADER, GRO_MAX_HEAD + NET_SKB_PAD "
        "+ NET_IP_ALIGN)); 'none' without the cache",
    ),
    "kmalloc_threshold": (
        str,
        ("1k", "small_head_cache"),
        "heads this small go to kmalloc in __netdev_alloc_skb() (and napi_alloc_skb() without the 1K "
        "cache): len <= SKB_WITH_OVERHEAD(1024), or <= SKB_WITH_OVERHEAD(SKB_SMALL_HEAD_CACHE_SIZE)",
    ),
    "napi_alloc_skb_gfp": (
        bool,
        None,
        "__napi_alloc_skb(napi, len, gfp) takes a gfp mask (else napi_alloc_skb(napi, len) "
        "uses GFP_ATOMIC|__GFP_NOWARN)",
    ),
    "page_frag_offset": (
        str,
        ("down", "up"),
        "page_frag_cache hands out fragments from the end of the page down or from its start up",
    ),
    "page_frag_big_request": (
        str,
        ("refill_first", "fit_or_fail"),
        "a page_frag request that does not fit the current page: recycle or refill first, or "
        "(for requests above PAGE_SIZE) fail at once",
    ),
    "udp_rcvbuf_check": (
        str,
        ("before_charge", "strict_fit"),
        "__udp_enqueue_schedule_skb(): drop when sk_rmem_alloc > sk_rcvbuf before charging (may overshoot "
        "by one skb), or unless sk_rmem_alloc + truesize <= sk_rcvbuf or the queue is empty",
    ),
    "udp_fwd_alloc": (
        str,
        ("whole_size", "deficit"),
        "forward allocation on enqueue: whole pages for the skb's truesize when it exceeds sk_forward_alloc "
        "(6.1), or pages for the deficit only (udp_rmem_schedule(), 6.9+)",
    ),
    "udp_consume": (
        str,
        ("free", "defer_free"),
        "how a read UDP skb is freed: at once in the reader's context, or by skb_attempt_defer_free() "
        "(back on the CPU that allocated it; a local one goes to the NAPI skb cache)",
    ),
    "ice_rx_put": (
        str,
        ("buffer", "poll", "frame"),
        "when ice gives cleaned RX buffers back to its ring: after every descriptor, keeping partial frames "
        "in rx_ring->skb (6.1); after the poll loop, frames gathered in the xdp_buff (6.3 to 6.12.13); or "
        "at the end of each frame (6.12.14+, 6.14+: 'ice: put Rx buffers after being done with current frame')",
    ),
    "kmalloc_roundup_oversize": (
        str,
        ("page_order", "identity"),
        "kmalloc_size_roundup() above KMALLOC_MAX_SIZE: PAGE_SIZE << get_order(size), or size unchanged",
    ),
    "max_skb_frags_rule": (
        str,
        ("page_size", "config"),
        "where MAX_SKB_FRAGS comes from: 'page_size' = max(16, 65536 / PAGE_SIZE + 1) (up to 6.4); "
        "'config' = CONFIG_MAX_SKB_FRAGS, 17..45, 17 when unset (6.5+)",
    ),
    "max_order_rule": (
        str,
        ("exclusive", "inclusive"),
        "how CONFIG_ARCH_FORCE_MAX_ORDER sets the largest page order: 'exclusive' = it is MAX_ORDER and "
        "the largest order is one less, 11 when unset (up to 6.3); 'inclusive' = it is MAX_PAGE_ORDER, "
        "10 when unset (6.4+)",
    ),
    "tun_alloc_linear": (
        str,
        ("whole_frame", "good_linear"),
        "tun_get_user() for a plain write without vnet header: 'whole_frame' = tun_alloc_skb() makes the whole "
        "frame linear, max_page_order 0 (up to 6.5); 'good_linear' = linear part min(SKB_MAX_HEAD(align), len) "
        "once prepad + len >= PAGE_SIZE, rest in page blocks up to PAGE_ALLOC_COSTLY_ORDER (6.6+, 'net: tun: "
        "change tun_alloc_skb() to allow bigger paged allocations')",
    ),
    "alloc_skb_with_frags": (
        str,
        ("npages", "chunks"),
        "alloc_skb_with_frags(): 'npages' = data_len in ceil(data_len/PAGE_SIZE) pages, truesize raised by all "
        "of them up front, a failed high-order try disables high orders (up to 6.5); 'chunks' = blocks of "
        "PAGE_SIZE << order, order lowered while the rest fits a smaller block, truesize += each block "
        "(6.6+, 'net: allow alloc_skb_with_frags() to allocate bigger packets')",
    ),
    "alloc_skb_with_frags_limit": (
        str,
        ("max_skb_frags_minus_1", "max_skb_frags"),
        "how many page frags alloc_skb_with_frags() may fill: MAX_SKB_FRAGS - 1 (6.6 to 6.12.49), or "
        "MAX_SKB_FRAGS (6.1; 6.12.50+ 'net: allow alloc_skb_with_frags() to use MAX_SKB_FRAGS')",
    ),    # -- UDP admission and skb defer lists --
    "udp_rcvbuf_large_fit": (
        bool,
        None,
        "__udp_enqueue_schedule_skb(): with sk_rcvbuf above INT_MAX >> 1, an skb that does not fit "
        "(sk_rmem_alloc + truesize > sk_rcvbuf) is dropped even on an empty queue (6.15, stable 6.12.23: "
        "'udp: Fix multiple wraparounds of sk->sk_rcvbuf.')",
    ),
    "skb_defer_limit": (
        str,
        ("skb_defer_max", "skb_defer_max_minus_1"),
        "how many skbs skb_attempt_defer_free() lets wait on a CPU's defer list: skb_defer_max (the count "
        "is checked, then raised), or skb_defer_max - 1 (raised, then checked: 6.18, 'net: use llist for "
        "sd->defer_list')",
    ),
    # -- TCP receive (skbsim/net/ipv4/) --
    "tcp_scaling_ratio": (
        str,
        ("none", "1200_per_4k", "half"),
        "tcp_win_from_space(): 'none' = space - (space >> tcp_adv_win_scale), no scaling ratio (up to 6.5); "
        "else space * tp->scaling_ratio / 256, starting at (1200 << 8) / SKB_TRUESIZE(4096) ('1200_per_4k', 6.6 "
        "'tcp: get rid of sysctl_tcp_adv_win_scale') or 128 ('half', 6.10 'tcp: increase the default TCP scaling ratio')",
    ),
    "tcp_scaling_ratio_clamp": (
        str,
        ("none", "write", "write_cap_rcvq", "set_window_clamp"),
        "when tcp_measure_rcv_mss() changes the scaling ratio: nothing more ('none'); window_clamp = "
        "tcp_win_from_space(sk_rcvbuf) ('write', 6.11 'tcp: Update window clamping condition'), also capping "
        "rcvq_space.space ('write_cap_rcvq', 6.12.y); or tcp_set_window_clamp() with its 1152 floor and rcv_ssthresh "
        "cut, and the cap ('set_window_clamp', 6.14 'tcp: adjust rcvq_space after updating scaling ratio')",
    ),
    "tcp_initial_rcv_wnd": (
        str,
        ("u16_max", "space"),
        "tcp_select_initial_window(): the initial rcv_wnd is capped at 65535 ('u16_max', up to 6.10) or is the "
        "MSS-rounded space ('space', 6.11 'tcp: remove 64 KByte limit for initial tp->rcv_wnd value')",
    ),
    "tcp_nomem_ack": (
        str,
        ("none", "zero_window", "zero_window_stored"),
        "tcp_data_queue() when tcp_try_rmem_schedule() fails: drop unless the receive queue is empty ('none', up to "
        "6.7); send a zero-window ACK, drop only with data queued ('zero_window', 6.8 'net: tcp: send zero-window ACK "
        "when no memory'); and store rcv_wnd = 0 ('zero_window_stored', 6.14 'tcp: correct handling of extreme "
        "memory squeeze', 6.12.y)",
    ),
    "tcp_rcvbuf_admission": (
        str,
        ("rmem", "rmem_plus_truesize", "rmem_plus_len"),
        "tcp_can_ingest(): sk_rmem_alloc <= sk_rcvbuf ('rmem': up to 6.16, and 6.18.y after the 2026 stable 'tcp: "
        "give up on stronger sk_rcvbuf checks (for now)'), plus the skb's truesize ('rmem_plus_truesize', 6.17 'tcp: "
        "stronger sk_rcvbuf checks') or plus its len ('rmem_plus_len', 6.18.0 'tcp: use skb->len instead of "
        "skb->truesize in tcp_can_ingest()')",
    ),
    "tcp_prune_queue": (
        str,
        ("rmem_vs_rcvbuf", "can_ingest"),
        "tcp_prune_queue(): clamp when sk_rmem_alloc >= sk_rcvbuf, done when <= ('rmem_vs_rcvbuf', up to 6.16); "
        "tcp_can_ingest() for both and nothing with empty queues ('can_ingest', 6.17)",
    ),
    "tcp_prune_ofo_queue": (
        str,
        ("all", "after_in_skb"),
        "tcp_prune_ofo_queue(): may drop the whole out-of-order queue ('all', 6.1) or stops at skbs before the "
        "incoming one ('after_in_skb', 6.2 'tcp: refine tcp_prune_ofo_queue() logic')",
    ),
    "tcp_sequence_check": (
        str,
        ("seq", "end_seq", "end_seq_max_wnd"),
        "tcp_sequence(): refuse a segment starting beyond the window ('seq'), or also one ending beyond it unless "
        "the receive queue is empty, with the fast path checking it too ('end_seq', 6.17 'tcp: do not accept packets "
        "beyond window'); the limit is the largest window ever advertised (tp->rcv_mwnd_seq), so a retracted window "
        "still takes what the old one allowed ('end_seq_max_wnd', 7.1 'tcp: implement RFC 7323 window retraction "
        "receiver requirements')",
    ),
    "tcp_ofo_measure_rcv_mss": (
        bool,
        None,
        "tcp_data_queue_ofo() calls tcp_measure_rcv_mss() (6.17 'tcp: call tcp_measure_rcv_mss() for ooo packets', "
        "6.12.y)",
    ),
    "tcp_rcv_rtt_update": (
        str,
        ("smoothed", "min", "min_idle"),
        "tcp_rcv_rtt_update(): 'smoothed' (up to 6.15); 'min': any smaller sample wins, larger window samples are "
        "ignored (6.16 'tcp: always seek for minimal rtt in tcp_rcv_rtt_update()', 6.1.y, 6.12.y); 'min_idle': larger "
        "timestamp samples only with an empty receive queue (6.16 'tcp: skip big rtt sample if receive queue is not "
        "empty')",
    ),
    "tcp_rcv_rtt_ts": (
        str,
        ("ms", "us", "us_nonzero"),
        "tcp_rcv_rtt_measure_ts(): millisecond samples, 0 counting as 1 ('ms', up to 6.6); microseconds "
        "(tcp_rtt_tsopt_us(), 'us', 6.7); zero samples ignored ('us_nonzero', 6.16 'tcp: remove zero TCP TS samples "
        "for autotuning', 6.12.y)",
    ),
    "tcp_rcv_space_adjust": (
        str,
        ("rcvmem", "space_from_win", "space_from_win_inq", "double", "rcvbuf_grow", "rcvbuf_grow_low_rtt"),
        "receive-buffer autotuning: 'rcvmem' (up to 6.5: rcvwin / advmss segments of SKB_TRUESIZE(advmss + "
        "MAX_TCP_HEADER)); 'space_from_win' (6.6 to 6.15: tcp_space_from_win(2 copied + 16 advmss + growth)); "
        "'space_from_win_inq' (the 6.12.y form: bytes still queued not counted, 'tcp: add receive queue awareness in "
        "tcp_rcv_space_adjust()'); 'double' (6.16 'tcp: fix sk_rcvbuf overshoot': 2 copied + the ooo span; out-of-order "
        "data grows sk_rcvbuf too); 'rcvbuf_grow' (6.18 'tcp: fix too slow tcp_rcvbuf_grow() action'); "
        "'rcvbuf_grow_low_rtt' (6.19 'tcp: add net.ipv4.tcp_rcvbuf_low_rtt', no tcp_mstamp refresh)",
    ),
    "tcp_passive_ts_advmss": (
        str,
        ("after_init_transfer", "before_init_transfer"),
        "a passive open with timestamps takes the option off advmss after ('after_init_transfer', 6.9) or before "
        "tcp_init_transfer() sizes rcvq_space ('before_init_transfer', 6.16 'tcp: fix initial tp->rcvq_space.space "
        "value for passive TS enabled flows', 6.1.y, 6.12.y)",
    ),
    "tcp_backlog_limit": (
        str,
        ("rcvbuf_half_sndbuf", "twice_rcvbuf_half_sndbuf"),
        "tcp_add_backlog() limit on backlog + rmem: sk_rcvbuf + sk_sndbuf / 2 + 64 KiB ('rcvbuf_half_sndbuf', 6.9) "
        "or 2 sk_rcvbuf + sk_sndbuf / 2 + 64 KiB ('twice_rcvbuf_half_sndbuf', 6.10 'tcp: avoid premature drops in "
        "tcp_add_backlog()', 6.1.y)",
    ),
    "tcp_backlog_ack_defer": (
        bool,
        None,
        "ACKs due while the backlog is processed wait for tcp_release_cb() (6.8 'tcp: defer regular ACK while "
        "processing socket backlog', sysctl tcp_backlog_ack_defer)",
    ),
    "tcp_rmem2_default": (
        str,
        ("6MiB", "32MiB"),
        "the default net.ipv4.tcp_rmem[2]: 6291456 ('6MiB') or 33554432 ('32MiB', 6.16 'tcp: increase tcp_rmem[2] "
        "to 32 MB')",
    ),
    "tcp_comp_sack_delay": (
        str,
        ("rtt_div_20", "rtt_percent"),
        "the SACK compression timer: 5 % of the RTT ('rtt_div_20') or tcp_comp_sack_rtt_percent of it "
        "('rtt_percent', 6.19 'tcp: add net.ipv4.tcp_comp_sack_rtt_percent'), at most tcp_comp_sack_delay_ns",
    ),
    # -- GRO --
    "gro_ipv4_max_size": (
        bool,
        None,
        "GRO's size limit for IPv4 is dev->gro_ipv4_max_size and IPv4 TCP may pass GRO_LEGACY_MAX_SIZE (BIG TCP, "
        "6.3+: 'net: add gso_ipv4_max_size and gro_ipv4_max_size per device', 'net: add support for ipv4 big "
        "tcp'); false: dev->gro_max_size for all and IPv4 stops below 64K (6.1)",
    ),
    "tcp_gro_cwr": (
        str,
        ("set", "set_or_changed", "changed"),
        "tcp_gro_receive() and CWR: 'set' = a segment with CWR completes the held skb, a differing CWR is "
        "otherwise ignored (up to 6.12); 'set_or_changed' = CWR is compared like the other flags too (6.18: "
        "'gro: prevent ACE field corruption & better AccECN handling'); 'changed' = only a differing CWR completes "
        "it, segments that all carry CWR merge (7.0: 'gro: flushing when CWR is set negatively affects AccECN')",
    ),
    "gro_fixed_ip_id": (
        str,
        ("df_only", "any"),
        "GRO accepts a flow whose IPv4 ID does not change only with DF set ('df_only', up to 6.17) or with or "
        "without DF ('any', 6.18: 'net: gro: remove unnecessary df checks')",
    ),
    # -- virtio_net --
    "virtio_rx_dma_record": (
        str,
        ("never", "with_dma_api", "always"),
        "whether virtio_net's receive page frags start with a 16-byte struct virtnet_rq_dma (premapped "
        "mode; a 32 KiB frag then holds 6 x 4096 + 8176 mergeable buffers instead of 8 x 4096): 'never' "
        "(6.1; 6.11 and 6.12: 'virtio_net: disable premapped mode by default'); 'with_dma_api' = only when "
        "the virtqueue uses the DMA API (VIRTIO_F_ACCESS_PLATFORM), mergeable and small mode (6.6 to 6.10: "
        "'virtio_net: merge dma operations when filling mergeable buffers'); 'always' for mergeable and "
        "small mode (6.13+: 'virtio_net: enable premapped mode for merge and small by default')",
    ),
    "virtio_rq_alloc_overflow_fix": (
        bool,
        None,
        "add_recvbuf_mergeable() shortens a buffer by sizeof(struct virtnet_rq_dma) when it starts a frag "
        "page it would overfill with the DMA record (6.13+, 6.12.5+: 'virtio-net: fix overflow inside "
        "virtnet_rq_alloc')",
    ),
    "virtio_mrg_xdp_hole": (
        str,
        ("fold", "no_fold"),
        "mergeable buffers with XDP headroom: 'fold' = the rest of a frag too small for another buffer is "
        "added to the buffer and the context holds the buffer length (page_to_skb() then uses PAGE_SIZE as "
        "truesize; 6.1); 'no_fold' = the rest is skipped and the context holds len + room (6.3+: "
        "'virtio-net: disable the hole mechanism for xdp')",
    ),
    "virtio_xdp_pass_skb": (
        str,
        ("page_to_skb", "build_skb_from_xdp_buff"),
        "the skb of a mergeable frame an XDP program passes: page_to_skb() (frames up to GOOD_COPY_LEN "
        "copied into a napi_alloc_skb() head; 6.1), or build_skb() over the whole buffer for every frame "
        "(6.3+: 'virtio-net: build skb from multi-buffer xdp')",
    ),
    "virtio_refill_retry": (
        str,
        ("delayed_work", "repoll"),
        "a ring refill that fails in NAPI: retried by the delayed refill work in process context (up to "
        "6.18.6), or the poll returns its whole budget and NAPI polls again (6.19, 6.18.7+: 'virtio-net: "
        "dont schedule delayed refill worker')",
    ),
    # -- page_pool and the drivers built on it (issue 15) --
    "pp_ring_size_rule": (
        str,
        ("e2big_32k", "clamp_16k"),
        "page_pool_init(): a pool_size above 32768 fails with -E2BIG and smaller ones are taken as they are "
        "('e2big_32k', as in v6.9), or the ptr_ring is min(pool_size, 16384) ('clamp_16k': 'page_pool: Clamp "
        "pool size to max 16K pages', late 2025, in 6.18.y and by stable backport in 6.1.y and 6.12.y)"
    ),
    "pp_ref_count_rule": (
        str,
        ("frag_flag", "always"),
        "fragment counting: page->pp_frag_count only in pools made with PP_FLAG_PAGE_FRAG, never reset after "
        "the last user ('frag_flag', up to 6.6); page->pp_ref_count set to 1 for every new page and reset to 1 "
        "after the last user ('always', 6.7+: 'page_pool: unify frag_count handling in page_pool_is_last_frag()', "
        "'page_pool: remove PP_FLAG_PAGE_FRAG')",
    ),
    "pp_bias_max": (
        str,
        ("long_max", "long_max_half"),
        "BIAS_MAX, the references a fresh fragment page is charged with: LONG_MAX, or LONG_MAX >> 1 (6.8+: "
        "'page_pool: halve BIAS_MAX for multiple user references of a fragment')",
    ),
    "pp_frag_align": (
        str,
        ("dma", "dma_or_shinfo"),
        "page_pool_alloc_frag() rounds the size up to dma_get_cache_alignment() ('dma': 1 on x86), or to the "
        "larger of that and __alignof__(struct skb_shared_info) ('dma_or_shinfo': 8 on 64-bit; stable 6.1.191 "
        "and 6.12.115: 'page_pool: keep frag_offset aligned for odd-sized requests')",
    ),
    "pp_direct_recycle": (
        str,
        ("never_from_skb", "skb_free", "every_put"),
        "when a page freed from an skb may go straight into the pool's alloc cache: never, skb frees use the "
        "ptr_ring ('never_from_skb', up to 6.3); when napi_pp_put_page() finds itself in softirq (or napi_safe) "
        "on the CPU that owns the pool's NAPI or the pool's cpuid ('skb_free', 6.4+: 'page_pool: allow caching "
        "from safely localized NAPI'); or the same test made for every put by page_pool_napi_local() "
        "('every_put', 6.10+: 'page_pool: check for PP direct cache locality later')",
    ),
    "pp_frag_stats": (
        str,
        ("fast_per_frag", "cached_on_reuse"),
        "page_pool_alloc_frag() statistics: alloc_fast for every fragment after the first and for a reused "
        "frag page ('fast_per_frag'), or recycle_cached plus alloc_fast only when the frag page is reused "
        "('cached_on_reuse', 6.13+: 'net: page_pool: do not count normal frag allocation in stats')",
    ),
    "pp_dev_alloc": (
        bool,
        None,
        "page_pool_alloc()/page_pool_dev_alloc() exist: a page for sizes above half the pool's page, else a "
        "fragment with the page's remainder folded into the last one (6.7+: 'page_pool: introduce "
        "page_pool_alloc() API')",
    ),
    "pp_alloc_cache_refill_rule": (
        str,
        ("fixed_64", "by_page_size"),
        "PP_ALLOC_CACHE_REFILL: 64 (PP_ALLOC_CACHE_SIZE 128) on every page size ('fixed_64'), or 64/16/4 for "
        "4K/16K/64K pages with PP_ALLOC_CACHE_SIZE twice that ('by_page_size', 7.1.3)",
    ),
    "pp_create_checks_order": (
        bool,
        None,
        "page_pool_create() refuses an order above MAX_PAGE_ORDER with -EINVAL (7.1.3); before, such a pool "
        "is made and its allocations fail",
    ),
    "mana_rx_buffers": (
        str,
        ("pool_page_or_frag", "pool_whole_pages", "pool_fragments"),
        "where mana's RX buffers come from (mana_get_rxbuf_cfg(), mana_get_rxfrag()): an order-0 page_pool "
        "page per buffer with the unrounded mtu + MANA_RXBUF_PAD + headroom as alloc_size, napi_alloc_frag() "
        "above a page ('pool_page_or_frag', v6.9); a whole page_pool page of get_order(alloc_size), "
        "alloc_size at least PAGE_SIZE ('pool_whole_pages': 'net: mana: Fix RX buf alloc_size alignment and "
        "atomic op panic', 6.10, and 'net: mana: Switch to page pool for jumbo frames', 6.15; both in Debian "
        "6.1.192 and 6.12.117 by backport); page_pool fragments of ALIGN(SKB_DATA_ALIGN(mtu + MANA_RXBUF_PAD), 64) up to half a page,"
        " else a whole page whose full size is alloc_size ('pool_fragments', 6.18: 'net: mana: Use page pool "
        "fragments for RX buffers instead of full pages to improve memory efficiency.')",
    ),
    "mana_rx_queue": (
        str,
        ("fixed_512", "ethtool_512", "ethtool_1024"),
        "mana's RX queue size: RX_BUFFERS_PER_QUEUE 512 without ethtool -G ('fixed_512', v6.9); ethtool -G "
        "128..8192 rounded up to a power of two, default 512 ('ethtool_512', 6.10+; Debian 6.1.192 by backport) or "
        "1024 ('ethtool_1024', 6.13+: 'net: mana: Increase the DEF_RX_BUFFERS_PER_QUEUE to 1024')",
    ),
    "libeth_rx": (
        bool,
        None,
        "libeth's RX buffer management exists and iavf/idpf use it: page_pool buffers sized by "
        "libeth_rx_fq_create() (iavf 6.10+: 'libeth: add Rx buffer management', 'iavf: switch to Page Pool'; "
        "idpf 6.11+: 'idpf: use libeth Rx buffer management for payload buffer'); before, iavf splits pages "
        "itself and idpf manages its own page_pool",
    ),
    "ice_rx_buffers": (
        str,
        ("page_split", "libeth"),
        "ice's RX buffers: half-page flips with pagecnt_bias ('page_split', every release up to 6.18), or "
        "libeth page_pool buffers with skbs built by xdp_build_skb_from_buff(), no legacy-rx, optional header"
        " split ('libeth', after 6.18, as in 7.1.3 ice_rxq_pp_create(): 'ice: remove legacy Rx and construct SKB', "
        "'ice: drop page splitting and recycling', 'ice: switch to Page Pool')",
    ),
    "mlx5_rx_pages": (
        str,
        ("driver_cache", "pp_fragments"),
        "who owns mlx5's RX pages: the RQ's own page cache, skbs holding page references, pages released "
        "right after their frame ('driver_cache', up to 6.3); page_pool fragments counted in pp_ref_count "
        "with MLX5E_PAGECNT_BIAS_MAX, skbs marked for recycling, pages released when their slot is refilled "
        "('pp_fragments', 6.4+: 'net/mlx5e: RX, Enable skb page recycling through the page_pool', 'net/mlx5e:"
        " RX, Remove internal page_cache', 'net/mlx5e: RX, Defer page release in legacy rq for better "
        "recycling')",
    ),
    "bnxt_rx_head": (
        str,
        ("page_frag_build_skb", "page_frag_pp_agg", "page_pool"),
        "where bnxt's RX buffers and aggregation pages come from: page_frag RX buffers turned into skbs by "
        "build_skb(), aggregation pages from alloc_page(), a page_pool only in page mode "
        "('page_frag_build_skb', 6.1); page_frag RX buffers with napi_build_skb(), aggregation pages from the"
        " page_pool, every skb marked for recycling ('page_frag_pp_agg', 6.6+: 'bnxt_en: Use the unified RX "
        "page pool buffers for XDP and non-XDP', 'bnxt: use the NAPI skb allocation cache'); RX buffers as "
        "page_pool fragments too ('page_pool', 6.13+: 'eth: bnxt: use page pool for head frags'; Debian "
        "6.12.117 by backport)",
    ),
    "bnxt_rx_copybreak": (
        str,
        ("fixed_256", "tunable_hds_thresh"),
        "bnxt's copy threshold and header-data split: BNXT_RX_COPY_THRESH 256 for the copy, the split and the"
        " aggregation-mode RX buffer ('fixed_256', up to 6.13); rx-copybreak tunable (default 256, at most "
        "1024) and the aggregation-mode RX buffer and split threshold from hds_thresh, default 640 "
        "('tunable_hds_thresh', 6.14+: 'bnxt_en: add support for rx-copybreak ethtool command', 'bnxt_en: add "
        "support for hds-thresh ethtool command')",
    ),
    "gve_dqo_rx_buffers": (
        str,
        ("own_pages", "page_pool"),
        "gve DQO RDA packet buffers: order-0 pages the driver owns, charged with INT_MAX references and cut "
        "in buffer-sized chunks it moves through (gve_try_recycle_buf(); 'own_pages', up to 6.12); "
        "page_pool buffers, skbs marked for recycling ('page_pool', 6.13+: 'gve: adopt page pool for DQ RDA "
        "mode')",
    ),
    "gve_rx_buf_len": (
        str,
        ("fixed_2048", "by_hsplit", "ethtool"),
        "gve DQO packet buffer size: 2048 and no header split ('fixed_2048', 6.1); 2048, or 4096 with header "
        "split (gve_get_pkt_buf_size(); 'by_hsplit', 6.9+: 'gve: Add header split data path'); set with "
        "ethtool -G rx-buf-len ('ethtool', 7.1.3)",
    ),
    # -- mainline (7.x): the core changes after 6.18 (docs/research/versions-mainline.md) --
    "alloc_skb_napi_cache_outside_napi": (
        bool,
        None,
        "__alloc_skb() without SKB_ALLOC_NAPI (and without SKB_ALLOC_FCLONE) first takes an sk_buff the NAPI skb "
        "cache already holds, never refilling it, unless in hard IRQ or with IRQs off (6.19: 'net: use "
        "napi_skb_cache even in process context')",
    ),
    "napi_consume_defers_alien": (
        bool,
        None,
        "napi_consume_skb() hands an unshared skb allocated on another CPU to skb_attempt_defer_free() instead of "
        "freeing it here (6.19: 'net: fix napi_consume_skb() with alien skbs')",
    ),
    "skb_defer_max_default": (
        str,
        ("64", "128"),
        "the default of net.core.skb_defer_max, how many freed skbs may wait on a CPU's defer list: 64, or 128 "
        "(6.19: 'net: increase skb_defer_max default to 128')",
    ),
    "ll_max_header_rule": (
        str,
        ("wlan_or_ax25", "wlan"),
        "which configs give LL_MAX_HEADER 96/128 (include/linux/netdevice.h): CONFIG_WLAN=y or CONFIG_AX25 y/m "
        "('wlan_or_ax25'), or CONFIG_WLAN=y alone once AX.25 is gone (7.1: 'net: remove ax25 and amateur radio "
        "(hamradio) subsystem'); CONFIG_HYPERV_NET=y gives 128 in both",
    ),
    "virtio_rx_buffers": (
        str,
        ("page_frag", "page_pool"),
        "where virtio_net's mergeable and small receive buffers come from: skb_page_frag_refill() blocks of the "
        "receive queue ('page_frag', up to 7.0), or an order-0 page_pool of the ring's size, each buffer a "
        "page_pool_alloc_va() fragment whose page remainder may be folded into it, skbs marked for recycling, no "
        "DMA record (7.1: 'virtio_net: add page_pool support for buffer allocation')",
    ),
    # -- SLUB (mm/slub.c) --
    "slub_cpu_partial": (
        bool,
        None,
        "CONFIG_SLUB_CPU_PARTIAL: a CPU keeps slabs that got an object back while full on a partial list of "
        "its own (cpu_partial_slabs long, by object size); without it they go to the node list",
    ),
    "slub_cpu_partial_frozen": (
        bool,
        None,
        "slabs on a CPU partial list are frozen, so frees to them take no list decision (up to 6.7); or "
        "unfrozen, and __slab_free() leaves a slab that is on no node list where it is (6.8+, 'slub: Delay "
        "freezing of partial slabs'); the lists come out the same either way",
    ),
    "slub_percpu_sheaves": (
        str,
        ("none", "opt_in", "all_caches"),
        "per-CPU sheaves (arrays of free objects in front of the slabs): 'none' (up to 6.17); 'opt_in' = only "
        "caches created with a sheaf_capacity have them (6.18, 'slab: add opt-in caching layer of percpu "
        "sheaves'): none of the skb and kmalloc caches does, so they keep the per-CPU slab and partial lists; "
        "'all_caches' = every cache has them and the per-CPU slab and partial lists are gone (7.0, the series "
        "'slab: replace cpu (partial) slabs with sheaves'). Not modelled: skbsim runs 'all_caches' with a per-CPU "
        "slab and no CPU partial list (slub_cpu_partial false)",
    ),
}

#: Top-level tables of a profile file; [sources] is optional.
_TABLES = {"profile": None, "constants": None, "features": None, "sources": None}

#: Inputs a profile must give, with their permitted range.
INPUTS = {
    "PAGE_SIZE": (4096, 65536),
    "L1_CACHE_BYTES": (16, 256),
    "NET_IP_ALIGN": (0, 2),
    "MAX_SKB_FRAGS": (16, 45),
    "LL_MAX_HEADER": (32, 128),
    "MAX_HEADER": (32, 176),
    "MAX_PAGE_ORDER": (1, 15),
    "KMALLOC_MIN_SIZE": (8, 128),
    "sizeof_sk_buff": (128, 1024),
    "sizeof_skb_shared_info": (128, 2048),
    "NAPI_SKB_CACHE_SIZE": (1, 1024),
    "NAPI_SKB_CACHE_BULK": (1, 1024),
    "NAPI_SKB_CACHE_FREE": (1, 1024),
}


def align(x: int, a: int) -> int:
    """include/uapi/linux/const.h: __ALIGN_KERNEL() on an unbounded integer."""
    return (x + a - 1) & ~(a - 1)


def get_order(size: int, page_size: int) -> int:
    """include/asm-generic/getorder.h: get_order() - smallest order holding size."""
    order = 0
    while (page_size << order) < size:
        order += 1
    return order


def is_power_of_2(n: int) -> bool:
    """include/linux/log2.h: is_power_of_2()."""
    return n != 0 and (n & (n - 1)) == 0


# -- config- and arch-dependent inputs -----------------------------------------------------
#
# Pure functions from a kernel .config (anything with ``value(name)`` returning
# "y"/"m"/"n", a number or None, as skbsim.live.kconfig.KernelConfig does) to
# one input, each returning ``(value, reason)``.  The reason says which symbols
# decided it, so a derived profile can show where every number came from.

#: Bytes one skb_frag_t adds to struct skb_shared_info on a 64-bit kernel (a
#: page or netmem pointer, a length and an offset): 48 + 16 * MAX_SKB_FRAGS.
SKB_FRAG_T_SIZE = 16

#: include/linux/skbuff.h: the fallback when CONFIG_MAX_SKB_FRAGS is not set.
DEFAULT_CONFIG_MAX_SKB_FRAGS = 17


def _builtin(config, name: str) -> bool:
    """``defined(CONFIG_X)`` in C: only =y defines it (=m defines CONFIG_X_MODULE)."""
    return config.value(name) == "y"


def _is_enabled(config, name: str) -> bool:
    """include/linux/kconfig.h: IS_ENABLED() - =y or =m."""
    return config.value(name) in ("y", "m")


def _said(config, names) -> str:
    """'CONFIG_A=y, CONFIG_B=m' for the symbols the file sets; 'none set' otherwise."""
    parts = [f"CONFIG_{n}={config.value(n)}" for n in names if config.value(n) not in (None, "n")]
    return ", ".join(parts) if parts else "none of " + ", ".join(f"CONFIG_{n}" for n in names) + " set"


def ll_max_header_from_config(config, rule: str = "wlan_or_ax25") -> tuple[int, str]:
    """include/linux/netdevice.h: LL_MAX_HEADER, the worst link-layer header.

    128 when HYPERV_NET is built in (a module does not count: the header tests
    ``defined(CONFIG_HYPERV_NET)``); else with WLAN (a bool) or, up to 7.0
    (feature ``ll_max_header_rule``), AX25 (built in or a module) 96, or 128
    when MAC80211_MESH is set too; else 32.  7.1 removed AX.25 ('net: remove
    ax25 and amateur radio (hamradio) subsystem'), so a leftover CONFIG_AX25
    no longer counts.
    """
    if _builtin(config, "HYPERV_NET"):
        return 128, "CONFIG_HYPERV_NET=y"
    symbols = ("WLAN", "AX25") if rule == "wlan_or_ax25" else ("WLAN",)
    if _builtin(config, "WLAN") or (rule == "wlan_or_ax25" and _is_enabled(config, "AX25")):
        said = _said(config, (*symbols, "MAC80211_MESH"))
        if _builtin(config, "MAC80211_MESH"):
            return 128, said
        return 96, said
    reason = _said(config, ("HYPERV_NET", *symbols))
    if config.value("HYPERV_NET") == "m":
        reason += " (a HYPERV_NET module does not count)"
    if rule == "wlan" and _is_enabled(config, "AX25"):
        reason += " (CONFIG_AX25 no longer counts: AX.25 is gone)"
    return 32, reason


#: IP tunnel drivers whose presence (y or m) adds 48 to MAX_HEADER.
IP_TUNNEL_SYMBOLS = ("NET_IPIP", "NET_IPGRE", "IPV6_SIT", "IPV6_TUNNEL")


def max_header_from_config(config, ll_max_header: int) -> tuple[int, str]:
    """include/linux/netdevice.h: MAX_HEADER - LL_MAX_HEADER, plus 48 with any IP tunnel."""
    if any(_is_enabled(config, name) for name in IP_TUNNEL_SYMBOLS):
        return ll_max_header + 48, f"LL_MAX_HEADER + 48 ({_said(config, IP_TUNNEL_SYMBOLS)})"
    return ll_max_header, f"LL_MAX_HEADER ({_said(config, IP_TUNNEL_SYMBOLS)})"


def max_skb_frags_by_page_size(page_size: int) -> int:
    """include/linux/skbuff.h up to 6.4: MAX_SKB_FRAGS = max(16, 65536 / PAGE_SIZE + 1)."""
    return max(16, 65536 // page_size + 1)


def max_skb_frags_from_config(config, rule: str, page_size: int) -> tuple[int, str]:
    """MAX_SKB_FRAGS by the profile's ``max_skb_frags_rule``.

    'page_size' (6.1): from the page size alone.  'config' (6.5+, net/Kconfig):
    CONFIG_MAX_SKB_FRAGS, 17..45, and 17 when the config does not set it.
    """
    if rule == "page_size":
        value = max_skb_frags_by_page_size(page_size)
        return value, f"max(16, 65536 / PAGE_SIZE {page_size} + 1) (rule of this release)"
    raw = config.value("MAX_SKB_FRAGS")
    if raw is None:
        return DEFAULT_CONFIG_MAX_SKB_FRAGS, "CONFIG_MAX_SKB_FRAGS not set: 17"
    if not isinstance(raw, int) or not 17 <= raw <= 45:
        raise InputError(f"{_source(config)}: CONFIG_MAX_SKB_FRAGS={raw!r} is outside 17..45 (net/Kconfig)")
    return raw, f"CONFIG_MAX_SKB_FRAGS={raw}"


#: Page sizes skbsim models, by the generic CONFIG_PAGE_SIZE_* symbols (6.9+)
#: and arm64's older CONFIG_ARM64_*K_PAGES choice.
_PAGE_SIZE_SYMBOLS = (
    ("PAGE_SIZE_4KB", 4096), ("PAGE_SIZE_8KB", 8192), ("PAGE_SIZE_16KB", 16384),
    ("PAGE_SIZE_32KB", 32768), ("PAGE_SIZE_64KB", 65536), ("PAGE_SIZE_256KB", 262144),
    ("ARM64_4K_PAGES", 4096), ("ARM64_16K_PAGES", 16384), ("ARM64_64K_PAGES", 65536),
)


def page_size_from_config(config) -> tuple[int, str] | None:
    """PAGE_SIZE as the config states it, or None if it does not.

    CONFIG_PAGE_SHIFT (arch/Kconfig, 6.9+) first, then the page-size choice
    symbols; x86 has 4K pages only.
    """
    shift = config.value("PAGE_SHIFT")
    if isinstance(shift, int):
        return 1 << shift, f"CONFIG_PAGE_SHIFT={shift}"
    for name, size in _PAGE_SIZE_SYMBOLS:
        if _builtin(config, name):
            return size, f"CONFIG_{name}=y"
    if _builtin(config, "X86"):
        return 4096, "CONFIG_X86=y (x86 has 4K pages only)"
    return None


#: Architectures told apart by their config symbol, most specific first.
_ARCH_SYMBOLS = (
    ("X86_64", "x86_64"), ("X86", "i386"), ("ARM64", "arm64"), ("PPC64", "ppc64"), ("PPC", "ppc"),
    ("S390", "s390x"), ("RISCV", "riscv64"), ("LOONGARCH", "loongarch64"), ("MIPS", "mips"), ("ARM", "arm"),
)


def arch_from_config(config) -> str | None:
    """The architecture a config was made for, or None if none of the known symbols is set."""
    for symbol, arch in _ARCH_SYMBOLS:
        if _builtin(config, symbol):
            return arch
    return None


#: Architectures whose asm/processor.h sets NET_IP_ALIGN to 0 (checked in the
#: 6.1.192 and 6.12.117 trees: x86, arm64, and powerpc when CONFIG_PPC64);
#: every other one keeps include/linux/skbuff.h's default of 2.
_NET_IP_ALIGN_ZERO = {"x86_64": "x86", "i386": "x86", "i686": "x86", "arm64": "arm64", "aarch64": "arm64",
                      "ppc64": "powerpc with CONFIG_PPC64", "ppc64le": "powerpc with CONFIG_PPC64"}


def net_ip_align_for_arch(arch: str) -> tuple[int, str]:
    """NET_IP_ALIGN: 0 where the architecture overrides it, else the generic 2."""
    if arch in _NET_IP_ALIGN_ZERO:
        return 0, f"{arch}: asm/processor.h of {_NET_IP_ALIGN_ZERO[arch]} sets 0"
    return 2, f"{arch}: the generic NET_IP_ALIGN of include/linux/skbuff.h"


def l1_cache_bytes_from_config(config, arch: str | None) -> tuple[int, str] | None:
    """L1_CACHE_BYTES (= SMP_CACHE_BYTES) from the architecture's asm/cache.h rule.

    x86, arm, mips and loongarch take the shift from a config symbol; arm64 and
    riscv fix it at 64, s390 at 256, 64-bit powerpc at 128 (64 on e500mc).
    None when the rule of the architecture is not known here.
    """
    by_symbol = {"x86_64": "X86_L1_CACHE_SHIFT", "i386": "X86_L1_CACHE_SHIFT", "arm": "ARM_L1_CACHE_SHIFT",
                 "mips": "MIPS_L1_CACHE_SHIFT", "loongarch64": "L1_CACHE_SHIFT"}
    if arch in by_symbol:
        shift = config.value(by_symbol[arch])
        if isinstance(shift, int):
            return 1 << shift, f"CONFIG_{by_symbol[arch]}={shift}"
        return None
    if arch in ("arm64", "riscv64"):
        return 64, f"{arch}: L1_CACHE_SHIFT 6 in asm/cache.h"
    if arch == "s390x":
        return 256, "s390: L1_CACHE_BYTES 256 in asm/cache.h"
    if arch == "ppc64":
        if _builtin(config, "PPC_E500MC"):
            return 64, "CONFIG_PPC_E500MC=y: L1_CACHE_SHIFT 6"
        return 128, "CONFIG_PPC64=y: L1_CACHE_SHIFT 7"
    return None


def max_page_order_from_config(config, rule: str) -> tuple[int, str]:
    """include/linux/mmzone.h: the largest buddy order, by the profile's ``max_order_rule``."""
    forced = config.value("ARCH_FORCE_MAX_ORDER")
    if forced is not None and not isinstance(forced, int):
        raise InputError(f"{_source(config)}: CONFIG_ARCH_FORCE_MAX_ORDER={forced!r} is not a number")
    if rule == "exclusive":
        if forced is None:
            return 10, "MAX_ORDER 11 (CONFIG_ARCH_FORCE_MAX_ORDER not set) - 1"
        return forced - 1, f"CONFIG_ARCH_FORCE_MAX_ORDER={forced} is MAX_ORDER; largest order one less"
    if forced is None:
        return 10, "MAX_PAGE_ORDER 10 (CONFIG_ARCH_FORCE_MAX_ORDER not set)"
    return forced, f"CONFIG_ARCH_FORCE_MAX_ORDER={forced}"


def config_features(config) -> dict[str, object]:
    """The features a .config decides (the rest are the release's): ``slub_cpu_partial`` where the config
    mentions CONFIG_SLUB_CPU_PARTIAL (mm/Kconfig: a bool, default y with SMP and without SLUB_TINY)."""
    value = config.value("SLUB_CPU_PARTIAL")
    return {} if value is None else {"slub_cpu_partial": value == "y"}


def sizeof_skb_shared_info_for(base: Profile, max_skb_frags: int) -> int:
    """sizeof(struct skb_shared_info) when only MAX_SKB_FRAGS changes: frags[] is its last member."""
    return base.sizeof_skb_shared_info + SKB_FRAG_T_SIZE * (max_skb_frags - base.MAX_SKB_FRAGS)


def _source(config) -> str:
    return getattr(config, "source", "kernel config")


def config_inputs(
    base: Profile, config, page_size: int | None = None
) -> tuple[dict[str, int], dict[str, str], str | None]:
    """The inputs a .config decides for a build with base's rules: (constants, sources, arch).

    LL_MAX_HEADER, MAX_HEADER, MAX_SKB_FRAGS, MAX_PAGE_ORDER always; PAGE_SIZE,
    L1_CACHE_BYTES and NET_IP_ALIGN where the config names the architecture
    or page size.  sizeof(struct skb_shared_info) follows MAX_SKB_FRAGS; the
    other inputs (sizeof(struct sk_buff), the NAPI cache sizes) cannot be read
    from a .config and stay as in base.  ``page_size`` is the page size to
    assume where the config does not state one (default: base's).
    """
    origin = _source(config)
    constants: dict[str, int] = {}
    sources: dict[str, str] = {}

    def put(name: str, value: int, reason: str) -> None:
        low, high = INPUTS[name]
        if not low <= value <= high:
            raise InputError(f"{origin}: {name} = {value} ({reason}) is outside what skbsim models ({low}..{high})")
        constants[name] = value
        sources[name] = f"{origin}: {reason}"

    arch = arch_from_config(config)
    page = page_size_from_config(config)
    if page is not None:
        put("PAGE_SIZE", *page)
    page_size = constants.get("PAGE_SIZE", page_size or base.PAGE_SIZE)
    if arch is not None:
        put("NET_IP_ALIGN", *net_ip_align_for_arch(arch))
        l1 = l1_cache_bytes_from_config(config, arch)
        if l1 is not None:
            put("L1_CACHE_BYTES", *l1)
    ll_value, ll_reason = ll_max_header_from_config(config, base.features["ll_max_header_rule"])
    put("LL_MAX_HEADER", ll_value, ll_reason)
    put("MAX_HEADER", *max_header_from_config(config, ll_value))
    frags, frags_reason = max_skb_frags_from_config(config, base.features["max_skb_frags_rule"], page_size)
    put("MAX_SKB_FRAGS", frags, frags_reason)
    put("sizeof_skb_shared_info", sizeof_skb_shared_info_for(base, frags),
        f"{base.sizeof_skb_shared_info} + {SKB_FRAG_T_SIZE} * (MAX_SKB_FRAGS {frags} - {base.MAX_SKB_FRAGS})")
    put("MAX_PAGE_ORDER", *max_page_order_from_config(config, base.features["max_order_rule"]))
    return constants, sources, arch


@dataclass(frozen=True)
class Derivation:
    """One derived constant, with the formula that gave it."""

    name: str
    value: int
    formula: str


class Profile:
    """The constants and features of one kernel build.

    Attributes use the kernel's macro names.  Methods named after function-like
    macros (``SKB_DATA_ALIGN`` and friends) compute on unbounded integers;
    where the kernel computes on a 32-bit ``unsigned int`` the callers say so
    with :func:`u32`.
    """

    def __init__(self, data: dict, origin: str):
        self.origin = origin
        # The parsed TOML, kept so that derived profiles (other constants, a
        # config, the host) can be rebuilt from it and written back out.
        self.data = copy.deepcopy(data)
        unknown_tables = sorted(set(data) - set(_TABLES))
        if unknown_tables:
            raise InputError(f"{origin}: unknown table [{unknown_tables[0]}] (known: {', '.join(_TABLES)})")
        meta = _table(data, "profile", origin)
        self.name = _string(meta, "name", origin)
        self.release = _string(meta, "release", origin)
        self.rules_from = _string(meta, "rules_from", origin)
        self.arch = _string(meta, "arch", origin)
        self.description = meta.get("description", "")

        constants = _table(data, "constants", origin)
        for key, (low, high) in INPUTS.items():
            value = constants.get(key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"{origin}: [constants] {key} must be an integer")
            if not low <= value <= high:
                raise InputError(f"{origin}: [constants] {key} = {value} is outside {low}..{high}")
            setattr(self, key, value)
        _reject_unknown(constants, INPUTS, "constants", origin)

        features = _table(data, "features", origin)
        self.features: dict[str, object] = {}
        for key, (kind, allowed, _meaning) in FEATURES.items():
            if key not in features:
                raise InputError(f"{origin}: [features] {key} is missing")
            value = features[key]
            if type(value) is not kind:
                raise InputError(f"{origin}: [features] {key} must be a {kind.__name__}")
            if allowed is not None and value not in allowed:
                raise InputError(f"{origin}: [features] {key} must be one of {', '.join(allowed)}")
            self.features[key] = value
        _reject_unknown(features, FEATURES, "features", origin)
        if self.features["small_head_cache"] == (self.features["small_head_size_rule"] == "none"):
            raise InputError(
                f"{origin}: [features] small_head_size_rule must be 'none' exactly when small_head_cache is false"
            )

        for key in ("PAGE_SIZE", "L1_CACHE_BYTES", "KMALLOC_MIN_SIZE"):
            if not is_power_of_2(getattr(self, key)):
                raise InputError(f"{origin}: [constants] {key} must be a power of two")
        if self.MAX_HEADER not in (self.LL_MAX_HEADER, self.LL_MAX_HEADER + 48):
            raise InputError(
                f"{origin}: [constants] MAX_HEADER must be LL_MAX_HEADER or LL_MAX_HEADER + 48 "
                "(include/linux/netdevice.h)"
            )
        if self.NAPI_SKB_CACHE_BULK > self.NAPI_SKB_CACHE_SIZE or self.NAPI_SKB_CACHE_FREE > self.NAPI_SKB_CACHE_SIZE:
            raise InputError(f"{origin}: [constants] NAPI_SKB_CACHE_BULK and _FREE must not exceed NAPI_SKB_CACHE_SIZE")
        if self.features["max_skb_frags_rule"] == "page_size":
            expected = max_skb_frags_by_page_size(self.PAGE_SIZE)
            if self.MAX_SKB_FRAGS != expected:
                raise InputError(
                    f"{origin}: [constants] MAX_SKB_FRAGS = {self.MAX_SKB_FRAGS}, but max_skb_frags_rule "
                    f"'page_size' gives max(16, 65536 / {self.PAGE_SIZE} + 1) = {expected}"
                )
        elif not 17 <= self.MAX_SKB_FRAGS <= 45:
            raise InputError(
                f"{origin}: [constants] MAX_SKB_FRAGS = {self.MAX_SKB_FRAGS}: CONFIG_MAX_SKB_FRAGS allows 17..45"
            )

        sources = data.get("sources", {})
        if not isinstance(sources, dict):
            raise InputError(f"{origin}: [sources] must be a table")
        for key, value in sources.items():
            if key not in INPUTS:
                raise InputError(f"{origin}: [sources] has unknown key {key!r} (it names where an input came from)")
            if not isinstance(value, str):
                raise InputError(f"{origin}: [sources] {key} must be a string")
        #: Where each input came from, when the profile says (derived profiles do).
        self.sources: dict[str, str] = dict(sources)

        self._derive()

    # -- feature queries -------------------------------------------------------------

    def has(self, feature: str) -> bool:
        """True if the build has the named boolean feature (effective value)."""
        if feature == "small_page_frag_1k":
            return bool(self.NAPI_HAS_SMALL_PAGE_FRAG)
        value = self.features[feature]
        if type(value) is not bool:
            raise KeyError(f"feature {feature!r} is not a switch")
        return value

    def feature(self, name: str):
        return self.features[name]

    # -- function-like macros ----------------------------------------------------------

    def SKB_DATA_ALIGN(self, x: int) -> int:
        """include/linux/skbuff.h: SKB_DATA_ALIGN() - ALIGN(x, SMP_CACHE_BYTES)."""
        return align(x, self.SMP_CACHE_BYTES)

    def SKB_DATA_ALIGN_u32(self, x: int) -> int:
        """SKB_DATA_ALIGN() of an ``unsigned int``: the sum wraps at 2**32."""
        return ((x + self.SMP_CACHE_BYTES - 1) & U32_MASK) & ~(self.SMP_CACHE_BYTES - 1)

    def SKB_WITH_OVERHEAD(self, x: int) -> int:
        """include/linux/skbuff.h: room left in an x-byte buffer after skb_shared_info."""
        return x - self.SHINFO_SIZE

    def SKB_HEAD_ALIGN(self, x: int) -> int:
        """include/linux/skbuff.h: SKB_HEAD_ALIGN() - bytes a head of x data bytes takes.

        x is an ``unsigned int`` at every call site, so its alignment wraps at
        2**32 while the sum with the skb_shared_info size (a size_t) does not.
        """
        return self.SKB_DATA_ALIGN_u32(x) + self.SHINFO_SIZE

    def SKB_TRUESIZE(self, x: int) -> int:
        """include/linux/skbuff.h: SKB_TRUESIZE() - x data bytes plus both structs."""
        cache_bytes = self.SMP_CACHE_BYTES
        # SKB_DATA_ALIGN(sizeof(struct sk_buff)), spelled out: this runs for every skb.
        return x + ((self.sizeof_sk_buff + cache_bytes - 1) & ~(cache_bytes - 1)) + self.SHINFO_SIZE

    def get_order(self, size: int) -> int:
        return get_order(size, self.PAGE_SIZE)

    # -- derivation ---------------------------------------------------------------------

    def _derive(self) -> None:
        steps: list[Derivation] = []

        def let(name: str, value: int, formula: str) -> int:
            setattr(self, name, value)
            steps.append(Derivation(name, value, formula))
            return value

        let("PAGE_SHIFT", self.PAGE_SIZE.bit_length() - 1, "log2(PAGE_SIZE)")
        let("SMP_CACHE_BYTES", self.L1_CACHE_BYTES, "L1_CACHE_BYTES")
        let("NET_SKB_PAD", max(32, self.L1_CACHE_BYTES), "max(32, L1_CACHE_BYTES)")
        let(
            "SHINFO_SIZE",
            self.SKB_DATA_ALIGN(self.sizeof_skb_shared_info),
            "SKB_DATA_ALIGN(sizeof(struct skb_shared_info))",
        )
        let(
            "SKB_HEAD_STRUCT_SIZE",
            self.SKB_DATA_ALIGN(self.sizeof_sk_buff),
            "SKB_DATA_ALIGN(sizeof(struct sk_buff))",
        )
        let("SKB_WITH_OVERHEAD_1K", self.SKB_WITH_OVERHEAD(1024), "SKB_WITH_OVERHEAD(1024) = 1024 - SHINFO_SIZE")
        let(
            "SKB_WITH_OVERHEAD_PAGE",
            self.SKB_WITH_OVERHEAD(self.PAGE_SIZE),
            "SKB_WITH_OVERHEAD(PAGE_SIZE) = PAGE_SIZE - SHINFO_SIZE",
        )
        let(
            "MAX_TCP_HEADER",
            align(128 + self.MAX_HEADER, self.L1_CACHE_BYTES),
            "L1_CACHE_ALIGN(128 + MAX_HEADER)",
        )
        let("GRO_MAX_HEAD", self.MAX_HEADER + 128, "MAX_HEADER + 128")
        let(
            "GRO_MAX_HEAD_PAD",
            self.GRO_MAX_HEAD + self.NET_SKB_PAD + self.NET_IP_ALIGN,
            "GRO_MAX_HEAD + NET_SKB_PAD + NET_IP_ALIGN",
        )
        rule = self.features["small_head_size_rule"]
        if rule == "none":
            # No skbuff_small_head cache: nothing below is used, but derive the
            # values anyway so reports can show what a later release would do.
            let("SKB_SMALL_HEAD_SIZE", self.SKB_HEAD_ALIGN(self.MAX_TCP_HEADER),
                "SKB_HEAD_ALIGN(MAX_TCP_HEADER) (no skbuff_small_head cache in this build)")
        elif rule == "max_tcp_header":
            let("SKB_SMALL_HEAD_SIZE", self.SKB_HEAD_ALIGN(self.MAX_TCP_HEADER), "SKB_HEAD_ALIGN(MAX_TCP_HEADER)")
        else:
            let(
                "SKB_SMALL_HEAD_SIZE",
                self.SKB_HEAD_ALIGN(max(self.MAX_TCP_HEADER, self.GRO_MAX_HEAD_PAD)),
                "SKB_HEAD_ALIGN(max(MAX_TCP_HEADER, GRO_MAX_HEAD_PAD))",
            )
        small = self.SKB_SMALL_HEAD_SIZE
        let(
            "SKB_SMALL_HEAD_CACHE_SIZE",
            small + self.L1_CACHE_BYTES if is_power_of_2(small) else small,
            "SKB_SMALL_HEAD_SIZE, plus L1_CACHE_BYTES if that is a power of two "
            "(so the cache is not merged with a kmalloc cache)",
        )
        let(
            "SKB_SMALL_HEAD_HEADROOM",
            self.SKB_WITH_OVERHEAD(self.SKB_SMALL_HEAD_CACHE_SIZE),
            "SKB_WITH_OVERHEAD(SKB_SMALL_HEAD_CACHE_SIZE)",
        )
        if self.features["kmalloc_threshold"] == "1k":
            let("SKB_KMALLOC_THRESHOLD", self.SKB_WITH_OVERHEAD_1K, "SKB_WITH_OVERHEAD(1024)")
        else:
            let(
                "SKB_KMALLOC_THRESHOLD",
                self.SKB_SMALL_HEAD_HEADROOM,
                "SKB_WITH_OVERHEAD(SKB_SMALL_HEAD_CACHE_SIZE)",
            )
        let("KMALLOC_SHIFT_HIGH", self.PAGE_SHIFT + 1, "PAGE_SHIFT + 1 (SLUB)")
        let("KMALLOC_MAX_CACHE_SIZE", 1 << self.KMALLOC_SHIFT_HIGH, "1 << KMALLOC_SHIFT_HIGH")
        let("KMALLOC_SHIFT_MAX", self.MAX_PAGE_ORDER + self.PAGE_SHIFT, "MAX_PAGE_ORDER + PAGE_SHIFT")
        let("KMALLOC_MAX_SIZE", 1 << self.KMALLOC_SHIFT_MAX, "1 << KMALLOC_SHIFT_MAX")
        let(
            "PAGE_FRAG_CACHE_MAX_SIZE",
            align(32768, self.PAGE_SIZE),
            "__ALIGN_MASK(32768, ~PAGE_MASK): 32 KiB rounded up to a page",
        )
        let(
            "PAGE_FRAG_CACHE_MAX_ORDER",
            self.get_order(self.PAGE_FRAG_CACHE_MAX_SIZE),
            "get_order(PAGE_FRAG_CACHE_MAX_SIZE)",
        )
        let(
            "NAPI_HAS_SMALL_PAGE_FRAG",
            int(bool(self.features["small_page_frag_1k"]) and self.PAGE_SIZE == 4096),
            "feature small_page_frag_1k and PAGE_SIZE == SZ_4K",
        )
        self.derivations = tuple(steps)

    def describe_inputs(self) -> list[tuple[str, int]]:
        return [(key, getattr(self, key)) for key in INPUTS]

    # -- derived profiles -----------------------------------------------------------------

    def derive(
        self,
        *,
        origin: str,
        constants: dict[str, int] | None = None,
        features: dict[str, object] | None = None,
        sources: dict[str, str] | None = None,
        **meta: str,
    ) -> Profile:
        """A new profile from this one's TOML with some values replaced, validated afresh.

        ``meta`` replaces [profile] keys (name, release, rules_from, arch,
        description).  ``sources`` says where replaced inputs came from; a
        replaced input without one is marked as an override.  When only
        MAX_SKB_FRAGS changes, sizeof(struct skb_shared_info) follows it, as
        its frags[] array is the last member.
        """
        data = copy.deepcopy(self.data)
        constants = dict(constants or {})
        if "MAX_SKB_FRAGS" in constants and "sizeof_skb_shared_info" not in constants:
            constants["sizeof_skb_shared_info"] = sizeof_skb_shared_info_for(self, constants["MAX_SKB_FRAGS"])
        if (
            "PAGE_SIZE" in constants
            and "MAX_SKB_FRAGS" not in constants
            and self.features["max_skb_frags_rule"] == "page_size"
        ):
            # Up to 6.4 the page size decides MAX_SKB_FRAGS, and with it the shared info.
            frags = max_skb_frags_by_page_size(constants["PAGE_SIZE"])
            constants["MAX_SKB_FRAGS"] = frags
            constants.setdefault("sizeof_skb_shared_info", sizeof_skb_shared_info_for(self, frags))
        for key in meta:
            if key not in ("name", "release", "rules_from", "arch", "description"):
                raise InputError(f"{origin}: [profile] has no key {key!r}")
        data.setdefault("profile", {}).update(meta)
        data.setdefault("constants", {}).update(constants)
        data.setdefault("features", {}).update(features or {})
        merged = dict(self.sources)
        for key in constants:
            merged[key] = "override"
        merged.update(sources or {})
        data["sources"] = {key: merged[key] for key in INPUTS if key in merged}
        if not data["sources"]:
            del data["sources"]
        return Profile(data, origin)

    def with_config(self, config) -> Profile:
        """This profile's rules with the inputs a kernel .config decides (see :func:`config_inputs`)."""
        constants, sources, arch = config_inputs(self, config)
        origin = _source(config)
        meta = {
            "name": f"{self.name}+{os.path.basename(origin)}",
            "description": f"{self.description} [inputs from {origin}]".strip(),
        }
        if arch is not None:
            meta["arch"] = arch
        return self.derive(origin=f"{self.origin} with {origin}", constants=constants,
                           features=config_features(config), sources=sources, **meta)

    def to_toml(self, header: str = "") -> str:
        """The profile as a TOML file that :func:`parse_profile` reads back to the same profile."""
        lines = [f"# {line}".rstrip() for line in header.splitlines()]
        if lines:
            lines.append("")
        lines.append("[profile]")
        for key in ("name", "release", "rules_from", "arch", "description"):
            value = self.data["profile"].get(key)
            if value is not None:
                lines.append(f"{key} = {_toml_string(value)}")
        lines += ["", "[constants]"]
        lines += [f"{key} = {getattr(self, key)}" for key in INPUTS]
        lines += ["", "[features]"]
        for key in FEATURES:
            value = self.features[key]
            lines.append(f"{key} = {_toml_string(value) if isinstance(value, str) else str(value).lower()}")
        if self.sources:
            lines += ["", "[sources]"]
            lines += [f"{key} = {_toml_string(self.sources[key])}" for key in INPUTS if key in self.sources]
        return "\n".join(lines) + "\n"


# -- loading --------------------------------------------------------------------------


def builtin_names() -> list[str]:
    """Names of the profiles shipped in skbsim/profiles."""
    folder = resources.files("skbsim") / "profiles"
    names = [entry.name[: -len(".toml")] for entry in folder.iterdir() if entry.name.endswith(".toml")]
    return sorted(names, key=_version_key)


def _version_key(name: str):
    parts = name.split(".")
    return tuple(int(p) if p.isdigit() else 0 for p in parts), name


def load_profile(spec: str, config_path: str | None = None) -> Profile:
    """A profile by built-in name ("6.9"), path to a TOML file, or "host".

    With ``config_path`` the inputs a .config decides (LL_MAX_HEADER,
    MAX_HEADER, MAX_SKB_FRAGS, MAX_PAGE_ORDER, and where it says so PAGE_SIZE,
    L1_CACHE_BYTES, NET_IP_ALIGN) come from that config; for "host" it
    replaces the running kernel's own config.
    """
    if spec == "host":
        from skbsim.live.host import host_profile

        return host_profile(config_path=config_path)
    profile = _load_base_profile(spec)
    if config_path is not None:
        from skbsim.live.kconfig import parse_config

        profile = profile.with_config(parse_config(config_path))
    return profile


def _load_base_profile(spec: str) -> Profile:
    if spec in builtin_names():
        text = (resources.files("skbsim") / "profiles" / f"{spec}.toml").read_text()
        return parse_profile(text, f"built-in profile {spec}")
    if spec.endswith(".toml") or "/" in spec:
        data = read_bounded(spec, MAX_PROFILE_BYTES, "profile ")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"profile {shown(spec)}: not UTF-8 text (byte offset {err.start})") from None
        return parse_profile(text, shown(spec), default_name=os.path.splitext(os.path.basename(spec))[0])
    names = builtin_names()
    nearest = _nearest_builtin(spec, names)
    start = f'base = "{nearest}"' if nearest else 'base = "<a built-in>"'
    raise InputError(
        f"unknown kernel {spec!r}: use a built-in ({', '.join(names)}), 'host' (the running kernel), or a profile "
        f"file (--kernel FILE.toml) that starts from a built-in with {start} in [profile] and sets what "
        "differs (docs/profiles.md)"
    )


def _nearest_builtin(spec: str, names: list[str]) -> str | None:
    """The newest built-in at or below a version-like ``spec`` ("6.10" -> "6.9"), else None."""
    parts = spec.split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts[:2]):
        return None
    version = (int(parts[0]), int(parts[1]))
    below = [name for name in names if _version_key(name)[0][:2] <= version]
    return max(below, key=_version_key) if below else None


def parse_profile(text: str, origin: str, default_name: str | None = None) -> Profile:
    """A profile from TOML text.  ``base = "6.12"`` in [profile] starts from that built-in profile: the
    file then sets only what differs (docs/profiles.md), its name ``default_name`` unless it gives one."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{origin}: malformed TOML: {err}") from None
    meta = data.get("profile")
    if isinstance(meta, dict) and "base" in meta:
        return _profile_on_base(data, origin, default_name)
    return Profile(data, origin)


def _profile_on_base(data: dict, origin: str, default_name: str | None) -> Profile:
    """[profile] base = "<built-in>": that profile with the file's [profile], [constants], [features] and
    [sources] entries laid over it (derive() rechecks the whole)."""
    meta = dict(data["profile"])
    base = meta.pop("base")
    names = builtin_names()
    if base not in names:
        raise InputError(f"{origin}: [profile] base = {base!r}: it names a built-in profile ({', '.join(names)})")
    unknown_tables = sorted(set(data) - set(_TABLES))
    if unknown_tables:
        raise InputError(f"{origin}: unknown table [{unknown_tables[0]}] (known: {', '.join(_TABLES)})")
    tables = {}
    for key in ("constants", "features", "sources"):
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise InputError(f"{origin}: [{key}] must be a table")
        tables[key] = table
    _reject_unknown(tables["constants"], INPUTS, "constants", origin)
    _reject_unknown(tables["features"], FEATURES, "features", origin)
    parent = load_profile(base)
    sources = {key: f"{origin}" for key in tables["constants"]}
    sources.update(tables["sources"])
    meta.setdefault("name", default_name or base)
    meta.setdefault("description", f"{parent.description} [{origin} on {base}]".strip())
    return parent.derive(origin=origin, constants=tables["constants"], features=tables["features"],
                         sources=sources, **meta)


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that DEL must be escaped too."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _table(data: dict, key: str, origin: str) -> dict:
    table = data.get(key)
    if not isinstance(table, dict):
        raise InputError(f"{origin}: missing [{key}] table")
    return table


def _string(table: dict, key: str, origin: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise InputError(f"{origin}: [profile] {key} must be a non-empty string")
    return value


def _reject_unknown(table: dict, known: dict, name: str, origin: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise InputError(f"{origin}: [{name}] has unknown key {unknown[0]!r}")
