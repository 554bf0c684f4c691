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

__all__ = ["DEFER_KICK", "DEFER_NONE", "DEFER_QUEUE", "_alloc_skb_with_frags_order", "_cpu_partial_full",
           "_ewma_pkt_len_add", "_get_mergeable_buf_len", "_get_partial_node_done", "_ice_can_reuse_rx_page",
           "_idpf_rx_hsplit_wa_len", "_mergeable_buf_carve", "_page_pool_alloc_size", "_pp_napi_local",
           "_pp_recycle_direct", "_pp_ref_count_unref", "_sk_mem_reclaimable", "_skb_defer_admit",
           "_slab_discard_empty", "_udp_forward_pages", "_udp_rcvbuf_admits",
           "_mlx5_skb_frag_sz",
           # -- GRO --
           "_inet_gro_fixedid", "_inet_gro_ipid_flush", "_tcp_gro_flags_flush", "_tcp_gro_flags_verdict"]
