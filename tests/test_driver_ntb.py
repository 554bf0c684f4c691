"""The ntb driver (drivers/net/ntb_netdev.c over ntb_transport) against hand-derived numbers.

x86_64 built-ins: NET_SKB_PAD 64, SHINFO 320, SKB_TRUESIZE(x) = x + 576.
Ring buffers: netdev_alloc_skb(mtu + 14): 65524 + 64 is above a page, so __alloc_skb() with a kmalloc'ed
head of SKB_HEAD_ALIGN(65588) = 65600 + 320 = 65920 -> kmalloc-128k (131072), end 130752, truesize
131328, whatever the frame's length.  MTU 1500: 1514 + 64 = 1578 fits a page: a page fragment of
SKB_HEAD_ALIGN(1578) = 1600 + 320 = 1920, truesize 1600 + 576 = 2176.
"""

import pytest

import driver_helpers

from skbsim.drivers import DRIVERS
from skbsim.drivers.ntb import NTB_MAX_MTU, NTB_RXQ_SIZE
from skbsim.errors import InputError
from skbsim.kernel import Kernel

NTB = DRIVERS["ntb"]


def open_ring(kernel, **options):
    return driver_helpers.open_ring(NTB, kernel, **options)


def receive(kernel, ring, *lengths, budget=64):
    return driver_helpers.receive(NTB, kernel, ring, *lengths, budget=budget)


shape = driver_helpers.shape


@pytest.mark.parametrize("kernel_name", ["6.1", "6.9", "6.12", "6.18"])
def test_every_frame_in_a_128k_buffer(kernel_name):
    kernel = Kernel(kernel_name)
    ring = open_ring(kernel)
    assert (NTB_MAX_MTU, len(ring.rx_pend_q)) == (65510, NTB_RXQ_SIZE)
    skbs = receive(kernel, ring, 54, 1514, 65524)
    # len = frame - 14 after eth_type_trans; all linear; truesize 131328 each
    assert [shape(s) for s in skbs] == [(40, 0, 131328, 0, False), (1500, 0, 131328, 0, False),
                                        (65510, 0, 131328, 0, False)]
    # each slot refilled at once: still 100 posted
    assert len(ring.rx_pend_q) == NTB_RXQ_SIZE
    assert (ring.stats.buffers_released, ring.stats.buffers_reused) == (3, 0)
    driver_helpers.free(kernel, skbs)
    NTB.close_queue(kernel, ring)
    kernel.assert_no_leaks()


@pytest.mark.parametrize("kernel_name,small", [
    # copybreak 3646, a 54-byte frame: netdev_alloc_skb_ip_align(54): 54 + 64 = 118, a kmalloc'ed head:
    # 6.1: kmalloc-512 (SKB_HEAD_ALIGN(118) = 448), end 192, truesize 768;
    # 6.18: skbuff_small_head (448 <= 704), end 384, truesize 960;
    # 6.9: the small head of 640, end 320, truesize 896.
    ("6.1", 768), ("6.9", 896), ("6.18", 960),
])
def test_copybreak_copies_small_frames(kernel_name, small):
    kernel = Kernel(kernel_name)
    ring = open_ring(kernel, copybreak=3646)
    skbs = receive(kernel, ring, 54, 1514, 3646, 3647)
    # 1514: 1514 + 64 = 1578 -> page fragment of 1920, truesize 2176; 3646 + 64 = 3710 <= 3776:
    # SKB_HEAD_ALIGN(3710) = 3712 + 320 = 4032, truesize 3712 + 576 = 4288; 3647 is above copybreak.
    assert [s.truesize for s in skbs] == [small, 2176, 4288, 131328]
    assert (ring.stats.buffers_copied, ring.stats.bytes_copied) == (3, 54 + 1514 + 3646)
    assert (ring.stats.buffers_reused, ring.stats.buffers_released) == (3, 1)
    assert len(ring.rx_pend_q) == NTB_RXQ_SIZE
    driver_helpers.free(kernel, skbs)
    NTB.close_queue(kernel, ring)
    kernel.assert_no_leaks()


def test_mtu_option(kernel):
    ring = open_ring(kernel, mtu=1500)
    skbs = receive(kernel, ring, 1514, 1515)
    assert [shape(s) for s in skbs] == [(1500, 0, 2176, 0, True)]
    assert ring.stats.oversize_drops == 1
    driver_helpers.free(kernel, skbs)
    NTB.close_queue(kernel, ring)


def test_ring_runs_dry(kernel):
    # 100 buffers: the 101st frame before a poll finds none.
    ring = open_ring(kernel, mtu=1500)
    for _ in range(101):
        NTB.nic_receive(kernel, ring, driver_helpers.make_frame(60))
    assert (ring.stats.nic_frames, ring.stats.ring_drops) == (100, 1)
    skbs = []
    NTB.poll(kernel, ring, 64, skbs.append)
    assert len(skbs) == 64
    NTB.poll(kernel, ring, 64, skbs.append)
    assert len(skbs) == 100
    driver_helpers.free(kernel, skbs)
    NTB.close_queue(kernel, ring)


@pytest.mark.parametrize("options,message", [
    ({"mtu": 65511}, "mtu=65511 is outside 68..65510"),
    ({"mtu": 67}, "outside 68..65510"),
    ({"copybreak": -1}, "copybreak=-1 is outside 0..65535"),
    ({"ring": 4}, "unknown option 'ring' for driver ntb"),
])
def test_bad_options(kernel, options, message):
    with pytest.raises(InputError, match=message):
        open_ring(kernel, **options)


def test_close_frees_frames_not_yet_polled(kernel):
    ring = open_ring(kernel)
    NTB.nic_receive(kernel, ring, driver_helpers.make_frame(100))
    NTB.close_queue(kernel, ring)
    assert ring.stats.frames_dropped == 1


def test_run_uses_the_fast_engine(capsys):
    import json

    from skbsim.cli import main

    assert main(["run", "--driver", "ntb", "--count", "300", "--quiet", "--json"]) == 0
    captured = capsys.readouterr()
    assert "reference engine used" not in captured.err
    assert json.loads(captured.out)["runs"][0]["engine"] == "fast"
