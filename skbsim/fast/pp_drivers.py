"""The fast engine's page_pool drivers: mana (the NIC side, the clean loop, the close), compiled, and the
dispatch to each page_pool driver's (libeth's in skbsim.fast.libeth).

skbsim/drivers/mana.py over the Rings record: each slot's posted buffer (BUF_PAGE: its page_pool page,
whole or the page of a fragment) and the length of the frame the NIC completed into it (DESC_LEN).
The NIC's next slot is pcpu HW_NEXT, the next completion to clean NTC; the completions not yet
cleaned are the queue's frames written and not yet taken (sim._pending()).  Every buffer is a
page_pool one (skbsim.fast.page_pool), but v6.9's above a page: napi_alloc_frag() pieces (cfg[MANA_NAPI_FRAG]).
"""

from __future__ import annotations

from skbsim.fast.layout import ERR_EMPTY_FRAME, njit
from skbsim.fast.libeth import _libeth_close, _libeth_nic_receive, _libeth_poll
from skbsim.fast.mlx5 import _mlx5_close_rq, _mlx5_nic_receive, _mlx5_poll  # -- mlx5 --
from skbsim.fast.bnxt import _bnxt_close, _bnxt_nic_receive, _bnxt_poll  # -- bnxt --
from skbsim.fast.gve import _gve_nic_receive, _gve_rx_free_ring_dqo, _gve_rx_poll_dqo  # -- gve --
from skbsim.fast.napi import _nc_get
from skbsim.fast.page_pool import _page_pool_destroy, _pp_alloc_frag, _pp_alloc_pages, _pp_put_buf
from skbsim.fast import rx  # (a module: rx dispatches to this one)
from skbsim.fast import gro  # -- GRO --
from skbsim.fast.gro import G_ON  # -- GRO --
from skbsim.fast.state import (
    BUF_PAGE, BUILD_TRUESIZE, DESC_LEN, DRIVER, DRIVER_LIBETH, D_BUF_FAILURES, D_NIC_FRAMES, D_RELEASED, D_REUSED,
    D_RING_DROPS, D_SKB_FAILURES, D_USED, ERR, HW_NEXT, NTC, PP_FRAGS, PP_SOFTIRQ, Q_NIC_FRAMES,
    RING_COUNT, RX_BUF_LEN,
)
from skbsim.fast.state import DRIVER_MLX5  # -- mlx5 --
from skbsim.fast.state import DRIVER_BNXT  # -- bnxt --
from skbsim.fast.state import DRIVER_GVE  # -- gve --
from skbsim.fast.mm import _pf_alloc, _put_page  # -- mana v6.9 above a page --
from skbsim.fast.state import MANA_FRAGSZ, MANA_FRAG_ORDER, MANA_NAPI_FRAG, PAGE_ORDER  # -- mana v6.9 above a page --


@njit(cache=True, forceinline=True)
def _mana_nic_receive(k, cpu, length):
    """mana_nic_receive() (the frame is within rxmax): into the next posted buffer, or a ring drop when every
    buffer holds a completion not yet cleaned or the slot has no buffer."""
    if length == 0:
        k.st[ERR] = ERR_EMPTY_FRAME
        return False
    count = k.cfg[RING_COUNT]
    slot = k.pcpu[cpu, HW_NEXT]
    if rx._rx_pending(k, cpu) >= count or k.rings.buf[cpu, slot, BUF_PAGE] < 0:
        k.st[D_RING_DROPS] += 1
        return False
    k.rings.desc[cpu, slot, DESC_LEN] = length
    if k.gro.cfg[G_ON]:  # -- GRO --: the frame's TCP facts go with its slot
        gro._gro_nic(k, cpu, slot)
    k.pcpu[cpu, HW_NEXT] = slot + 1 if slot + 1 < count else 0
    k.st[D_NIC_FRAMES] += 1
    k.pcpu[cpu, Q_NIC_FRAMES] += 1
    return True


@njit(cache=True, forceinline=True)
def _mana_get_rxfrag(k, cpu):
    """mana_get_rxfrag(): a new buffer from the queue's page_pool, a fragment of alloc_size bytes
    (page_pool_dev_alloc_frag()) or a whole page (page_pool_dev_alloc_pages()); its page id, or -1."""
    if k.cfg[MANA_NAPI_FRAG]:  # -- mana v6.9 above a page --
        return _mana_napi_alloc_frag(k, cpu)
    if k.cfg[PP_FRAGS]:
        return _pp_alloc_frag(k, cpu, k.cfg[RX_BUF_LEN])
    return _pp_alloc_pages(k, cpu)


@njit(cache=True, forceinline=True)
def _mana_napi_alloc_frag(k, cpu):
    """mana_get_rxfrag() of v6.9 above a page: napi_alloc_frag(alloc_size) from this CPU's NAPI page_frag cache,
    given back (put_page()) when the cache fell back to a page too small for it; its page id, or -1."""
    pid = _pf_alloc(k.pages, k.faults, k.st, k.pcpu[cpu], k.cfg, k.cfg[MANA_FRAGSZ])
    if pid >= 0 and k.pages.page[pid, PAGE_ORDER] < k.cfg[MANA_FRAG_ORDER]:
        _put_page(k.pages, k.st, pid)
        return -1
    return pid


@njit(cache=True, forceinline=True)
def _mana_process_rx_cqe(k, cpu, slot):
    """mana_process_rx_cqe() of the completion in slot: mana_refill_rx_oob() takes a new buffer for the slot
    first (none: the frame is lost and the old buffer stays posted), then mana_rx_skb() builds the skb
    around the old one (napi_build_skb(alloc_size), marked for recycling).  (head page, sk_buff), the
    sk_buff -1 when the frame was dropped."""
    buf = k.rings.buf[cpu]
    k.st[D_USED] += 1
    old = buf[slot, BUF_PAGE]
    new = _mana_get_rxfrag(k, cpu)
    if new >= 0:
        buf[slot, BUF_PAGE] = new
        k.st[D_RELEASED] += 1
    else:
        k.st[D_BUF_FAILURES] += 1
        k.st[D_REUSED] += 1
        return -1, -1
    obj = _nc_get(k, cpu)
    if obj < 0:
        # page_pool_recycle_direct() of a whole page, page_pool_free_va(allow_direct) of a fragment, put_page()
        k.st[D_SKB_FAILURES] += 1
        _pp_put_buf(k, cpu, old, True)
        return -1, -1
    return old, obj


@njit(cache=True, forceinline=True)
def _mana_poll(k, cpu, budget):
    """mana_poll(): mana_process_rx_cqe() per completion, up to budget; the skbs for the stack through
    k.batch (napi_gro_receive(): UDP goes up as built, TCP through skbsim.fast.gro).  (work, skbs for the
    stack)."""
    desc = k.rings.desc[cpu]
    count = k.cfg[RING_COUNT]
    done = ndel = 0
    while done < budget and rx._rx_pending(k, cpu) > 0:
        slot = k.pcpu[cpu, NTC]
        k.pcpu[cpu, NTC] = slot + 1 if slot + 1 < count else 0
        length = desc[slot, DESC_LEN]
        head, obj = _mana_process_rx_cqe(k, cpu, slot)
        if k.st[ERR]:
            return 0, 0
        if obj < 0:
            rx._frame_dropped(k, cpu, length)
        else:
            rx._frame_done(k, cpu, length)
            ndel = rx._batch_add(k, ndel, head, -1, obj, length, 0, k.cfg[BUILD_TRUESIZE])
            if k.gro.cfg[G_ON]:  # -- GRO --
                ndel = gro._napi_gro_receive(k, cpu, ndel, slot)
        done += 1
    return done, ndel


@njit(cache=True)
def _mana_destroy_rxq(k, cpu):
    """mana_destroy_rxq() in the queue's softirq: every posted buffer back to the pool (mana_put_rx_buf():
    page_pool_put_full_page() of a whole page, page_pool_free_va(allow_direct) of a fragment), then
    page_pool_destroy().  (Completions left on the ring make the run the reference engine's.)"""
    buf = k.rings.buf[cpu]
    k.st[PP_SOFTIRQ] = cpu + 1
    frags = k.cfg[PP_FRAGS] != 0
    for slot in range(k.cfg[RING_COUNT]):
        pid = buf[slot, BUF_PAGE]
        if pid >= 0:
            _pp_put_buf(k, cpu, pid, frags)
            buf[slot, BUF_PAGE] = -1
    _page_pool_destroy(k, cpu)
    k.st[PP_SOFTIRQ] = 0


# -- the dispatch (rx._nic_receive, rx._poll, loop._close_queue) ------------------------------------------------


@njit(cache=True, forceinline=True)
def _pp_nic_receive(k, cpu, length, hlen):
    """The page_pool driver's NIC side (cfg[DRIVER]; hlen: the frame's header length, for header split): True
    when the frame was written."""
    if k.cfg[DRIVER] == DRIVER_LIBETH:
        return _libeth_nic_receive(k, cpu, length, hlen)
    if k.cfg[DRIVER] == DRIVER_MLX5:  # -- mlx5 --
        return _mlx5_nic_receive(k, cpu, length)
    if k.cfg[DRIVER] == DRIVER_BNXT:  # -- bnxt --
        return _bnxt_nic_receive(k, cpu, length, hlen)
    if k.cfg[DRIVER] == DRIVER_GVE:  # -- gve --: hlen is the frame's code (skbsim.fast.gve_setup.GveCodes)
        return _gve_nic_receive(k, cpu, length, hlen)
    return _mana_nic_receive(k, cpu, length)


@njit(cache=True, forceinline=True)
def _pp_poll(k, cpu, budget):
    """The page_pool driver's clean loop (cfg[DRIVER]): (work, skbs for the stack)."""
    if k.cfg[DRIVER] == DRIVER_LIBETH:
        return _libeth_poll(k, cpu, budget)
    if k.cfg[DRIVER] == DRIVER_MLX5:  # -- mlx5 --
        return _mlx5_poll(k, cpu, budget)
    if k.cfg[DRIVER] == DRIVER_BNXT:  # -- bnxt --
        return _bnxt_poll(k, cpu, budget)
    if k.cfg[DRIVER] == DRIVER_GVE:  # -- gve --
        return _gve_rx_poll_dqo(k, cpu, budget)
    return _mana_poll(k, cpu, budget)


@njit(cache=True)
def _pp_close_queue(k, cpu):
    """The page_pool driver's close of queue cpu (cfg[DRIVER])."""
    if k.cfg[DRIVER] == DRIVER_LIBETH:
        _libeth_close(k, cpu)
    elif k.cfg[DRIVER] == DRIVER_MLX5:  # -- mlx5 --
        _mlx5_close_rq(k, cpu)
    elif k.cfg[DRIVER] == DRIVER_BNXT:  # -- bnxt --
        _bnxt_close(k, cpu)
    elif k.cfg[DRIVER] == DRIVER_GVE:  # -- gve --
        _gve_rx_free_ring_dqo(k, cpu)
    else:
        _mana_destroy_rxq(k, cpu)
