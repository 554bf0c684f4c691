"""The 7.1 profile's core values (docs/research/versions-mainline.md), each against a hand-derived number.

x86_64, 4 KiB pages, MAX_HEADER 176: SKB_HEAD_ALIGN(x) = ALIGN(x, 64) + 320, the small head is
SKB_HEAD_ALIGN(max(MAX_TCP_HEADER 320, GRO_MAX_HEAD_PAD 368)) = 704, SKB_TRUESIZE(x) = x + 576.
"""

import pytest

from skbsim.kernel import Kernel
from skbsim.live.kconfig import parse_config_text
from skbsim.mm.gfp import GFP_ATOMIC, GFP_KERNEL
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.skbuff import alloc_skb, consume_skb, napi_alloc_skb, napi_consume_skb
from skbsim.profile import ll_max_header_from_config, load_profile


def _napi_skbs(kernel, napi, count, length=100):
    return [napi_alloc_skb(kernel, napi, length) for _ in range(count)]


def test_the_profile_is_a_builtin_with_7_1_3s_constants():
    profile = load_profile("7.1")
    assert profile.release == "7.1.3"
    # net/core/skbuff.c of 7.1.3: NAPI_SKB_CACHE_SIZE 128, NAPI_SKB_CACHE_BULK 32, NAPI_SKB_CACHE_FREE 32.
    assert (profile.NAPI_SKB_CACHE_SIZE, profile.NAPI_SKB_CACHE_BULK, profile.NAPI_SKB_CACHE_FREE) == (128, 32, 32)
    # struct sk_buff 232 (aligned 256) and skb_shared_info 48 + 16 * 17 = 320: SKB_TRUESIZE(0) = 576.
    assert profile.SKB_TRUESIZE(0) == 576
    # 704-byte small head; __netdev_alloc_skb()/napi_alloc_skb() kmalloc below SKB_WITH_OVERHEAD(704) = 384.
    assert (profile.SKB_SMALL_HEAD_CACHE_SIZE, profile.SKB_KMALLOC_THRESHOLD) == (704, 384)
    # net/core/hotdata.c: .sysctl_skb_defer_max = 128 (6.19), 64 before.
    assert Kernel("7.1").skb_defer_max == 128 and Kernel("6.18").skb_defer_max == 64


def test_napi_skb_cache_refills_32_and_flushes_32_of_128():
    kernel = Kernel("7.1")
    napi = napi_struct(net_device("eth0"))
    nc = kernel.this_cpu().napi_alloc_cache
    with kernel.softirq():
        # len 100 + NET_SKB_PAD 64 = 164 <= 384: __alloc_skb(SKB_ALLOC_NAPI), the sk_buff from the NAPI cache.
        skbs = _napi_skbs(kernel, napi, 128)
        # 128 gets from an empty cache: a bulk refill of NAPI_SKB_CACHE_BULK 32 every 32 gets.
        assert nc.refills == 4 and nc.skb_cache == [] and kernel.skbuff_cache.allocs == 128
        for skb in skbs[:127]:
            napi_consume_skb(kernel, skb, 64)
        assert len(nc.skb_cache) == 127 and nc.flushes == 0
        napi_consume_skb(kernel, skbs[127], 64)
        # The 128th put fills the cache: NAPI_SKB_CACHE_FREE 32 go back, 128 - 32 = 96 stay.
        assert nc.flushes == 1 and len(nc.skb_cache) == 96 and kernel.skbuff_cache.frees == 32
    kernel.assert_no_leaks()


@pytest.mark.parametrize("release, from_cache", [("7.1", True), ("6.18", False)])
def test_alloc_skb_outside_napi_takes_what_the_napi_cache_holds(release, from_cache):
    kernel = Kernel(release)
    napi = napi_struct(net_device("eth0"))
    nc = kernel.this_cpu().napi_alloc_cache
    # An empty cache is never refilled outside NAPI: the sk_buff comes from the slab either way.
    first = alloc_skb(kernel, 100, GFP_KERNEL)
    assert first.skb_from == "skbuff_head_cache" and nc.refills == 0
    with kernel.softirq():
        # a refill of NAPI_SKB_CACHE_BULK (7.1: 32, 6.18: 16), one taken and given back
        napi_consume_skb(kernel, napi_alloc_skb(kernel, napi, 100), 64)
    bulk = kernel.profile.NAPI_SKB_CACHE_BULK
    assert len(nc.skb_cache) == bulk
    second = alloc_skb(kernel, 100, GFP_KERNEL)
    # 7.1 (__alloc_skb(): napi_skb_cache_get(false) unless in hard IRQ or with IRQs off): the top entry.
    assert second.skb_from == ("napi_skb_cache" if from_cache else "skbuff_head_cache")
    assert len(nc.skb_cache) == bulk - from_cache
    with kernel.hardirq():
        hard = alloc_skb(kernel, 100, GFP_ATOMIC)
    assert hard.skb_from == "skbuff_head_cache"
    for skb in (first, second, hard):
        consume_skb(kernel, skb)
    kernel.assert_no_leaks()


@pytest.mark.parametrize("release, deferred", [("7.1", True), ("6.18", False)])
def test_napi_consume_skb_sends_an_alien_skb_home(release, deferred):
    kernel = Kernel(release, ncpus=2)
    napi = napi_struct(net_device("eth0"))
    with kernel.softirq(cpu=1):
        skb = napi_alloc_skb(kernel, napi, 100)
    assert skb.alloc_cpu == 1
    with kernel.softirq(cpu=0):
        cached = len(kernel.cpus[0].napi_alloc_cache.skb_cache)
        napi_consume_skb(kernel, skb, 64)
        # 7.1: alloc_cpu 1 != 0 and not shared: skb_attempt_defer_free() queues it on CPU 1's defer list.
        # 6.18: freed here, its sk_buff into CPU 0's NAPI skb cache.
        assert len(kernel.cpus[1].defer_list) == (1 if deferred else 0)
        assert len(kernel.cpus[0].napi_alloc_cache.skb_cache) == cached + (0 if deferred else 1)
    kernel.assert_no_leaks()


@pytest.mark.parametrize("text, wlan_or_ax25, wlan", [
    # include/linux/netdevice.h up to 7.0: WLAN=y or AX25 y/m -> 96 (128 with MAC80211_MESH=y); 7.1: WLAN alone.
    ("CONFIG_AX25=m\n", 96, 32),
    ("CONFIG_AX25=y\nCONFIG_MAC80211_MESH=y\n", 128, 32),
    ("CONFIG_WLAN=y\nCONFIG_AX25=m\n", 96, 96),
    ("CONFIG_WLAN=y\nCONFIG_MAC80211_MESH=y\nCONFIG_AX25=m\n", 128, 128),
    ("CONFIG_HYPERV_NET=y\nCONFIG_AX25=m\n", 128, 128),
])
def test_ll_max_header_without_ax25(text, wlan_or_ax25, wlan):
    config = parse_config_text(text, "test.config")
    assert ll_max_header_from_config(config, "wlan_or_ax25")[0] == wlan_or_ax25
    assert ll_max_header_from_config(config, "wlan")[0] == wlan


def test_an_ax25_only_config_on_7_1(tmp_path):
    path = tmp_path / "config"
    path.write_text("CONFIG_X86_64=y\nCONFIG_AX25=m\nCONFIG_NET_IPGRE=m\n")
    # 6.18: AX25=m -> LL_MAX_HEADER 96, MAX_HEADER 96 + 48 = 144; MAX_TCP_HEADER ALIGN(128 + 144, 64) = 320.
    assert (load_profile("6.18", str(path)).LL_MAX_HEADER, load_profile("6.18", str(path)).MAX_HEADER) == (96, 144)
    # 7.1: AX.25 is gone -> 32 and 32 + 48 = 80; MAX_TCP_HEADER ALIGN(208, 64) = 256, GRO_MAX_HEAD_PAD
    # 80 + 128 + 64 = 272, so the small head is SKB_HEAD_ALIGN(272) = 320 + 320 = 640.
    profile = load_profile("7.1", str(path))
    assert (profile.LL_MAX_HEADER, profile.MAX_HEADER, profile.SKB_SMALL_HEAD_CACHE_SIZE) == (32, 80, 640)


# -- TCP: 7.1's rcv_mwnd_seq ('tcp: implement RFC 7323 window retraction receiver requirements') ---------


@pytest.mark.parametrize("release, verdict", [("6.18", "TCP_INVALID_END_SEQUENCE"), ("7.1", None)])
def test_a_segment_sent_into_a_retracted_window(release, verdict):
    from skbsim.net.ipv4.tcp import ICSK_ACK_NOMEM, tcp_sock
    from skbsim.net.ipv4.tcp_input import tcp_sequence
    from skbsim.net.ipv4.tcp_ipv4 import net_ns
    from skbsim.net.ipv4.tcp_output import tcp_select_window

    kernel = Kernel(release)
    sk = tcp_sock(kernel, net_ns(kernel.profile))
    # An established socket that offered 64000 bytes at rcv_wup = rcv_nxt = 1000 (right edge 65000), then
    # took 10000 bytes (rcv_nxt 11000) and queued them.
    sk.rcv_nxt = sk.rcv_wup = 1000
    sk.rcv_wnd = 64000
    sk.rcv_mwnd_seq = 65000
    sk.rcv_nxt = 11000
    sk.sk_receive_queue.append(object())
    # Out of memory: tcp_select_window() stores the zero window (6.14+, 'zero_window_stored'): rcv_wnd 0,
    # rcv_wup = rcv_nxt 11000; 7.1's tcp_update_max_rcv_wnd_seq() keeps 65000 (11000 + 0 is not after it).
    sk.icsk_ack_pending |= ICSK_ACK_NOMEM
    assert tcp_select_window(sk) == 0
    assert (sk.rcv_wnd, sk.rcv_wup, sk.rcv_mwnd_seq) == (0, 11000, 65000)
    # The peer sends 11000..12448, inside the window it was offered.  6.18: the limit is rcv_nxt + 0, the end
    # is beyond it and the queue is not empty: TCP_INVALID_END_SEQUENCE.  7.1: the limit is rcv_nxt +
    # tcp_max_receive_window() = 11000 + 54000 = 65000: accepted here (tcp_data_queue() then finds a zero
    # window and drops it as TCP_ZEROWINDOW).
    assert tcp_sequence(sk, 11000, 12448) == verdict
    # Beyond even the largest window, both refuse: 65000..66448 -> end beyond, start not: the queue decides.
    assert tcp_sequence(sk, 65001, 66449) == "TCP_INVALID_SEQUENCE"
    sk.sk_receive_queue.clear()
