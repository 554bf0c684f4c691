"""UDP receive-buffer admission and release (net/ipv4/udp.c), per release."""

import pytest

from skbsim.kernel import Kernel
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.skbuff import napi_alloc_skb
from skbsim.net.sock import (
    RMEM_DEFAULT,
    sk_get_meminfo,
    sk_mem_reclaimable,
    udp_destroy_sock,
    udp_forward_pages,
    udp_queue_rcv_skb,
    udp_rcvbuf_admits,
    udp_recvmsg,
    udp_sock,
)


def _fill(kernel, sk, n, length):
    napi = napi_struct(net_device("eth0"))
    admitted = 0
    with kernel.softirq():
        for _ in range(n):
            skb = napi_alloc_skb(kernel, napi, length)
            admitted += udp_queue_rcv_skb(kernel, sk, skb)
    return admitted


# napi_alloc_skb(1500): 1500 + 64 = 1564 -> SKB_HEAD_ALIGN = 1600 + 320 = 1920, truesize 1920 + 256 = 2176.
# rcvbuf 212992 (net.core.rmem_default).
#   6.1-6.12 admit while sk_rmem_alloc before the charge <= rcvbuf: after 97 skbs rmem = 211072 <= 212992, so
#   the 98th is admitted (213248) and the 99th dropped: 98.
#   6.18 admits only while rmem + 2176 <= 212992: 97 * 2176 = 211072, 98 * 2176 = 213248 > 212992: 97.
# (The live 6.18.44 kernel admitted 97 such tap frames; the old rule's 98 is what earlier kernels do.)
@pytest.mark.parametrize("name,expected", [("6.1", 98), ("6.9", 98), ("6.12", 98), ("6.18", 97)])
def test_admission_rule_per_release(name, expected):
    kernel = Kernel(name)
    sk = udp_sock(kernel, RMEM_DEFAULT)
    assert _fill(kernel, sk, 150, 1500) == expected
    assert sk.drops == {"socket_rcvbuf": 150 - expected}
    assert sk.rmem_alloc == expected * 2176
    udp_destroy_sock(kernel, sk)
    assert sk.rmem_alloc == 0
    kernel.assert_no_leaks()


def test_first_oversized_packet_is_admitted_on_an_empty_queue():
    # 6.18: rmem + size > rcvbuf is forgiven when the queue is empty (rmem == 0).
    # napi_alloc_skb(9000): 9064 -> kmalloc 16384 (order-2 pages), truesize 16640 > rcvbuf 2304.
    kernel = Kernel("6.18")
    sk = udp_sock(kernel, 2304)
    assert _fill(kernel, sk, 3, 9000) == 1
    udp_destroy_sock(kernel, sk)
    kernel.assert_no_leaks()


# sk_rcvbuf 2^30 = 1073741824 is above INT_MAX >> 1 = 1073741823.  With 1073741824 - 100 bytes charged,
# an skb of truesize 2176 (napi_alloc_skb(1500), see above) does not fit.  6.1 and 6.9 admit it (rmem has
# not passed rcvbuf: the one-skb overshoot); 6.12.23+ drops it ('udp: Fix multiple wraparounds of
# sk->sk_rcvbuf.'); 6.18 drops it too (and would for any non-empty queue).  A buffer of 2^29 is not
# above INT_MAX >> 1, so 6.12 keeps the overshoot there.
@pytest.mark.parametrize("name,large,small", [("6.1", 1, 1), ("6.9", 1, 1), ("6.12", 0, 1), ("6.18", 0, 0)])
def test_a_buffer_above_int_max_half_admits_only_what_fits(name, large, small):
    for rcvbuf, expected in ((1 << 30, large), (1 << 29, small)):
        kernel = Kernel(name)
        sk = udp_sock(kernel, rcvbuf)
        sk.rmem_alloc = rcvbuf - 100
        assert _fill(kernel, sk, 1, 1500) == expected
        udp_destroy_sock(kernel, sk)
        kernel.assert_no_leaks()


def test_admission_rule_arithmetic():
    big = (0x7FFFFFFF >> 1) + 1
    # an empty queue takes an skb larger than the buffer, except a buffer above INT_MAX >> 1 with the
    # 6.12.23+ rule, where nothing that does not fit is admitted
    for strict in (0, 1):
        assert udp_rcvbuf_admits(0, 3000, 2304, strict, 1)
        assert udp_rcvbuf_admits(0, big + 1, big, strict, 0)
        assert not udp_rcvbuf_admits(0, big + 1, big, strict, 1)
    # what fits is always admitted: rmem + truesize == rcvbuf
    assert udp_rcvbuf_admits(big - 10, 10, big, 1, 1) and udp_rcvbuf_admits(100, 2204, 2304, 1, 0)
    # up to 6.17 an skb that does not fit is admitted while rmem <= rcvbuf, 6.18 only on an empty queue
    assert udp_rcvbuf_admits(2304, 1, 2304, 0, 0) and not udp_rcvbuf_admits(2305, 1, 2304, 0, 0)
    assert not udp_rcvbuf_admits(2304, 1, 2304, 1, 0)


def test_forward_allocation_arithmetic():
    # 6.9+ (deficit only): an skb of 2176 with 512 forward-allocated raises ceil((2176 - 512) / 4096) = 1 page;
    # with 2176 or more already there, none.  6.1: nothing while 2176 < sk_forward_alloc (4000), else pages
    # for the whole size: ceil(2176 / 4096) = 1, ceil(9000 / 4096) = 3 (even with 8999 there).
    assert udp_forward_pages(2176, 512, 4096, 1) == 1
    assert udp_forward_pages(2176, 2176, 4096, 1) == 0
    assert udp_forward_pages(9000, 100, 4096, 1) == 3  # ceil(8900 / 4096)
    assert udp_forward_pages(2176, 4000, 4096, 0) == 0
    assert udp_forward_pages(2176, 2176, 4096, 0) == 1
    assert udp_forward_pages(9000, 8999, 4096, 0) == 3
    # __sk_mem_reclaim(): whole pages of what is left beyond keep (udp_rmem_release's partial):
    # (54912 - 1) & ~4095 = 53248; (4096 - 1) & ~4095 = 0; (4096 - 0) & ~4095 = 4096; 64 KiB pages: 0x1FFFF -> 0x10000
    assert sk_mem_reclaimable(54912, 1, 4096) == 53248
    assert sk_mem_reclaimable(4096, 1, 4096) == 0
    assert sk_mem_reclaimable(4096, 0, 4096) == 4096
    assert sk_mem_reclaimable(0x20000, 1, 65536) == 0x10000


def test_release_is_batched_until_a_quarter_of_rcvbuf():
    # forward_threshold = 212992 >> 2 = 53248.  Reading skbs of 2176 while the reader queue is non-empty
    # accumulates the deficit; the charge returns when it reaches 53248: after ceil(53248 / 2176) = 25 reads.
    kernel = Kernel("6.9")
    sk = udp_sock(kernel)
    _fill(kernel, sk, 60, 1500)
    for reads in range(1, 26):
        udp_recvmsg(kernel, sk)
        if reads < 25:
            assert sk.rmem_alloc == 60 * 2176
    assert sk.rmem_alloc == (60 - 25) * 2176
    # Forward allocation after 60 enqueues (6.9, deficit rule): pages = ceil(60 * 2176 / 4096) = 32 pages
    # (131072 bytes), fwd = 131072 - 130560 = 512.  Release of 25 * 2176 = 54400: fwd = 54912,
    # amount = (54912 - 1) & ~4095 = 53248 returned, fwd = 1664.
    assert sk_get_meminfo(sk)["fwd_alloc"] == 1664
    while udp_recvmsg(kernel, sk):
        pass
    assert sk.rmem_alloc == 0
    kernel.assert_no_leaks()
