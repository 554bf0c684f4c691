"""The model's kernel rules that are integer arithmetic, compiled for the fast engine.

Each is the reference model's own plain function (the module and function named beside it), given to
numba as it is, so that both engines compute it from one text.
"""

from __future__ import annotations

from skbsim.drivers.ice import ice_page_count_reusable
from skbsim.drivers.libeth import idpf_rx_hsplit_wa_len
from skbsim.drivers.mlx5 import mlx5_skb_frag_sz_bytes
from skbsim.drivers.virtio_net import ewma_pkt_len_add, get_mergeable_buf_len, mergeable_buf_carve
from skbsim.fast.layout import njit
from skbsim.mm.slab import cpu_partial_full, get_partial_node_done, slab_discard_empty
from skbsim.net.page_pool import page_pool_alloc_size, pp_napi_local, pp_recycle_direct, pp_ref_count_unref
from skbsim.net.skbuff import DEFER_KICK, DEFER_NONE, DEFER_QUEUE, alloc_skb_with_frags_order, skb_defer_admit
from skbsim.net.sock import sk_mem_reclaimable, udp_forward_pages, udp_rcvbuf_admits
from skbsim.net.ipv4.af_inet import inet_gro_fixedid, inet_gro_ipid_flush  # GRO
from skbsim.net.ipv4.tcp_offload import tcp_gro_flags_flush, tcp_gro_flags_verdict  # GRO

# skbsim.net.sock.udp_rcvbuf_admits: __udp_enqueue_schedule_skb()'s admission test
_udp_rcvbuf_admits = njit(cache=True, forceinline=True)(udp_rcvbuf_admits)
# skbsim.net.sock.udp_forward_pages: the pages udp_rmem_schedule() forward-allocates
_udp_forward_pages = njit(cache=True, forceinline=True)(udp_forward_pages)
# skbsim.net.sock.sk_mem_reclaimable: what udp_rmem_release() gives back of sk_forward_alloc
_sk_mem_reclaimable = njit(cache=True, forceinline=True)(sk_mem_reclaimable)
# skbsim.drivers.ice.ice_page_count_reusable: ice_can_reuse_rx_page()'s count test
_ice_can_reuse_rx_page = njit(cache=True, forceinline=True)(ice_page_count_reusable)
# skbsim.net.skbuff.alloc_skb_with_frags_order: the order of alloc_skb_with_frags()'s next block (6.6+)
_alloc_skb_with_frags_order = njit(cache=True, forceinline=True)(alloc_skb_with_frags_order)
# skbsim.net.skbuff.skb_defer_admit: skb_attempt_defer_free()'s test on the owner's defer list
_skb_defer_admit = njit(cache=True, forceinline=True)(skb_defer_admit)
# skbsim.mm.slab.slab_discard_empty: an empty slab's pages go back once the node keeps min_partial slabs
_slab_discard_empty = njit(cache=True, forceinline=True)(slab_discard_empty)
# skbsim.mm.slab.cpu_partial_full: put_cpu_partial()'s drain test
_cpu_partial_full = njit(cache=True, forceinline=True)(cpu_partial_full)
# skbsim.mm.slab.get_partial_node_done: when get_partial_node() stops taking slabs
_get_partial_node_done = njit(cache=True, forceinline=True)(get_partial_node_done)
# skbsim.drivers.virtio_net: the EWMA of packet lengths, the next mergeable buffer's length, where
# add_recvbuf_mergeable() cuts it from the frag block
_ewma_pkt_len_add = njit(cache=True, forceinline=True)(ewma_pkt_len_add)
_get_mergeable_buf_len = njit(cache=True, forceinline=True)(get_mergeable_buf_len)
_mergeable_buf_carve = njit(cache=True, forceinline=True)(mergeable_buf_carve)
# skbsim.net.page_pool.pp_ref_count_unref: page->pp_ref_count after page_pool_unref_page()
_pp_ref_count_unref = njit(cache=True, forceinline=True)(pp_ref_count_unref)
# skbsim.net.page_pool.pp_napi_local: page_pool_napi_local()'s test
_pp_napi_local = njit(cache=True, forceinline=True)(pp_napi_local)
# skbsim.net.page_pool.pp_recycle_direct: __page_pool_put_page()'s test for the alloc cache
_pp_recycle_direct = njit(cache=True, forceinline=True)(pp_recycle_direct)
# skbsim.drivers.libeth.idpf_rx_hsplit_wa_len: what idpf_rx_hsplit_wa() copies of a frame the NIC did not split
_idpf_rx_hsplit_wa_len = njit(cache=True, forceinline=True)(idpf_rx_hsplit_wa_len)
# skbsim.net.page_pool.page_pool_alloc_size: page_pool_alloc()'s fragment size (the page's rest folded in)
_page_pool_alloc_size = njit(cache=True, forceinline=True)(page_pool_alloc_size)
# -- mlx5 --
# skbsim.drivers.mlx5.mlx5_skb_frag_sz_bytes: MLX5_SKB_FRAG_SZ(), a linear skb's frag_size
_mlx5_skb_frag_sz = njit(cache=True, forceinline=True)(mlx5_skb_frag_sz_bytes)

# -- GRO --
# skbsim.net.ipv4.tcp_offload: tcp_gro_receive()'s flag-word test and out_check_final's flags
_tcp_gro_flags_verdict = njit(cache=True, forceinline=True)(tcp_gro_flags_verdict)
_tcp_gro_flags_flush = njit(cache=True, forceinline=True)(tcp_gro_flags_flush)
# skbsim.net.ipv4.af_inet: inet_gro_flush()'s fixed-ID finding and its IP ID test
_inet_gro_fixedid = njit(cache=True, forceinline=True)(inet_gro_fixedid)
_inet_gro_ipid_flush = njit(cache=True, forceinline=True)(inet_gro_ipid_flush)

# -- TCP --
from numba.extending import register_jitable  # noqa: E402

from skbsim.net.ipv4.tcp import tcp_receive_window_of, tcp_set_window_clamp_values  # noqa: E402
from skbsim.net.ipv4.tcp_input import (  # noqa: E402
    can_ingest_value, comp_sack_delay_ns, grow_window_increment, initialize_rcv_mss_value, rcv_rtt_update_value,
    rcvbuf_grow_value, rcvbuf_rcvmem, rcvbuf_space_from_win, rcvmem_per_segment, scaling_ratio_of,
    space_from_win_ratio, truesize_adjust_value, win_from_space_adv, win_from_space_ratio,
)
from skbsim.net.ipv4.tcp_output import select_window_pressure, select_window_values, usecs_to_jiffies  # noqa: E402
from skbsim.net.core_sock import sk_mem_pages, sk_mem_reclaimable as tcp_mem_reclaimable  # noqa: E402
from skbsim.net.ipv4.tcp_ipv4 import jiffies_at, jiffy_start_us  # noqa: E402

# the plain functions the model's TCP formulas call themselves: callable from compiled code as they are
register_jitable(space_from_win_ratio)
register_jitable(win_from_space_adv)
# skbsim.net.ipv4.tcp: tcp_receive_window() of its fields; tcp_set_window_clamp()'s new clamp and rcv_ssthresh
_tcp_receive_window_of = njit(cache=True, forceinline=True)(tcp_receive_window_of)
_tcp_set_window_clamp_values = njit(cache=True, forceinline=True)(tcp_set_window_clamp_values)
# skbsim.net.ipv4.tcp_input: tcp_win_from_space() (6.6+ ratio, and up to 6.5 tcp_adv_win_scale),
# tcp_space_from_win(), tcp_measure_rcv_mss()'s scaling ratio, truesize_adjust(), tcp_grow_window()'s
# increment, tcp_rcv_rtt_update(), tcp_rcv_space_adjust()'s and tcp_rcvbuf_grow()'s new sk_rcvbuf,
# tcp_can_ingest(), tcp_initialize_rcv_mss(), __tcp_ack_snd_check()'s SACK compression delay
_win_from_space_ratio = njit(cache=True, forceinline=True)(win_from_space_ratio)
_win_from_space_adv = njit(cache=True, forceinline=True)(win_from_space_adv)
_space_from_win_ratio = njit(cache=True, forceinline=True)(space_from_win_ratio)
_scaling_ratio_of = njit(cache=True, forceinline=True)(scaling_ratio_of)
_truesize_adjust_value = njit(cache=True, forceinline=True)(truesize_adjust_value)
_grow_window_increment = njit(cache=True, forceinline=True)(grow_window_increment)
_rcv_rtt_update_value = njit(cache=True, forceinline=True)(rcv_rtt_update_value)
_rcvbuf_rcvmem = njit(cache=True, forceinline=True)(rcvbuf_rcvmem)
_rcvmem_per_segment = njit(cache=True, forceinline=True)(rcvmem_per_segment)
_rcvbuf_space_from_win = njit(cache=True, forceinline=True)(rcvbuf_space_from_win)
_rcvbuf_grow_value = njit(cache=True, forceinline=True)(rcvbuf_grow_value)
_can_ingest_value = njit(cache=True, forceinline=True)(can_ingest_value)
_initialize_rcv_mss_value = njit(cache=True, forceinline=True)(initialize_rcv_mss_value)
_comp_sack_delay_ns = njit(cache=True, forceinline=True)(comp_sack_delay_ns)
# skbsim.net.ipv4.tcp_output: __tcp_select_window() (the window and the quick-ACK pressure test),
# usecs_to_jiffies()
_select_window_values = njit(cache=True, forceinline=True)(select_window_values)
_select_window_pressure = njit(cache=True, forceinline=True)(select_window_pressure)
_usecs_to_jiffies = njit(cache=True, forceinline=True)(usecs_to_jiffies)
# skbsim.net.core_sock.sk_mem_pages: the pages __sk_mem_schedule() forward-allocates
_sk_mem_pages = njit(cache=True, forceinline=True)(sk_mem_pages)
# skbsim.net.core_sock.sk_mem_reclaimable: what a TCP socket's sk_mem_reclaim() gives back
_tcp_mem_reclaimable = njit(cache=True, forceinline=True)(tcp_mem_reclaimable)
# skbsim.net.ipv4.tcp_ipv4: the receiver's jiffies clock, and when a jiffy begins
_jiffies_at = njit(cache=True, forceinline=True)(jiffies_at)
_jiffy_start_us = njit(cache=True, forceinline=True)(jiffy_start_us)

__all__ = ["DEFER_KICK", "DEFER_NONE", "DEFER_QUEUE", "_alloc_skb_with_frags_order", "_cpu_partial_full",
           "_ewma_pkt_len_add", "_get_mergeable_buf_len", "_get_partial_node_done", "_ice_can_reuse_rx_page",
           "_idpf_rx_hsplit_wa_len", "_mergeable_buf_carve", "_page_pool_alloc_size", "_pp_napi_local",
           "_pp_recycle_direct", "_pp_ref_count_unref", "_sk_mem_reclaimable", "_skb_defer_admit",
           "_slab_discard_empty", "_udp_forward_pages", "_udp_rcvbuf_admits",
           "_mlx5_skb_frag_sz",
           # -- GRO --
           "_inet_gro_fixedid", "_inet_gro_ipid_flush", "_tcp_gro_flags_flush", "_tcp_gro_flags_verdict",
           # -- TCP --
           "_can_ingest_value", "_comp_sack_delay_ns", "_grow_window_increment", "_initialize_rcv_mss_value",
           "_jiffies_at", "_jiffy_start_us",
           "_rcv_rtt_update_value", "_rcvbuf_grow_value", "_rcvbuf_rcvmem", "_rcvbuf_space_from_win",
           "_rcvmem_per_segment", "_scaling_ratio_of", "_select_window_pressure", "_select_window_values",
           "_sk_mem_pages", "_space_from_win_ratio", "_tcp_mem_reclaimable", "_tcp_receive_window_of",
           "_tcp_set_window_clamp_values",
           "_truesize_adjust_value", "_usecs_to_jiffies", "_win_from_space_adv", "_win_from_space_ratio"]

# -- TCP pressure --
from skbsim.net.ipv4.tcp_input import clamp_window_values, prune_fits_value, prune_over_value  # noqa: E402

# tcp_prune_queue()'s tests call tcp_can_ingest()'s as it is
register_jitable(can_ingest_value)
# skbsim.net.ipv4.tcp_input: tcp_clamp_window()'s new sk_rcvbuf and rcv_ssthresh; tcp_prune_queue()'s tests
_clamp_window_values = njit(cache=True, forceinline=True)(clamp_window_values)
_prune_fits_value = njit(cache=True, forceinline=True)(prune_fits_value)
_prune_over_value = njit(cache=True, forceinline=True)(prune_over_value)
__all__ += ["_clamp_window_values", "_prune_fits_value", "_prune_over_value"]
