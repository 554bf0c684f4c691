"""The generic copybreak driver against hand-derived numbers.

6.9, x86_64 (NET_SKB_PAD 64, NET_IP_ALIGN 0, SHINFO 320, SKB_TRUESIZE(x) = x + 576):
  buffer for rx_buf 2048 = SKB_DATA_ALIGN(64 + 2048) + 320 = 2112 + 320 = 2432
  build path: napi_build_skb(buf, 2432): end 2112, truesize 2112 + 576 = 2688; each further
    buffer is a frag with truesize 2432
  copy path: napi_alloc_skb(len): len + 64 <= SKB_WITH_OVERHEAD(1024) = 704 -> 1K fragment,
    end 704, truesize 1280 (any len <= 640)
  len after eth_type_trans = frame - 14
"""

import pytest

import driver_helpers

from skbsim.drivers import DRIVERS
from skbsim.drivers.base import make_frame
from skbsim.errors import InputError
from skbsim.kernel import Kernel
from skbsim.net.napi import napi_struct, net_device

CB = DRIVERS["copybreak"]


def open_ring(kernel, **options):
    return driver_helpers.open_ring(CB, kernel, **options)


def receive(kernel, ring, *lengths, budget=64):
    return driver_helpers.receive(CB, kernel, ring, *lengths, budget=budget)


free = driver_helpers.free
shape = driver_helpers.shape


@pytest.mark.parametrize(
    "options,frame,expected,last_path",
    [
        # below the threshold: copied into a 1K-fragment head
        ({}, 60, (46, 0, 1280, 0, True), "copybreak_copy_skb"),
        # at the threshold (len <= copybreak copies): 256 + 64 = 320 <= 704, still 1280
        ({}, 256, (242, 0, 1280, 0, True), "copybreak_copy_skb"),
        # above: the buffer itself, 2688
        ({}, 257, (243, 0, 2688, 0, True), "copybreak_build_skb"),
        ({}, 1514, (1500, 0, 2688, 0, True), "copybreak_build_skb"),
        # copybreak 0 copies nothing
        ({"copybreak": 0}, 60, (46, 0, 2688, 0, True), "copybreak_build_skb"),
        # copybreak 1000, 900 bytes: 900 + 64 = 964 > 704 -> NAPI page_frag of SKB_HEAD_ALIGN(964) =
        # 1024 + 320 = 1344: end 1024, truesize 1024 + 576 = 1600
        ({"copybreak": 1000}, 900, (886, 0, 1600, 0, True), "copybreak_copy_skb"),
        # rx_buf 1536 (tg3's): SKB_DATA_ALIGN(64 + 1536) + 320 = 1600 + 320 = 1920, truesize 1600 + 576 = 2176
        ({"rx_buf": 1536}, 1514, (1500, 0, 2176, 0, True), "copybreak_build_skb"),
        # 9014 over 2048-byte buffers: 2048 * 4 + 822 -> head 2048, frags 2048, 2048, 2048, 822
        # data_len 6966; truesize 2688 + 4 * 2432 = 12416
        ({}, 9014, (9000, 6966, 12416, 4, True), "copybreak_build_skb"),
    ],
)
def test_one_frame(kernel, options, frame, expected, last_path):
    ring = open_ring(kernel, ring=16, **options)
    skbs = receive(kernel, ring, frame)
    assert shape(skbs[0]) == expected
    assert ring.last_path == last_path
    assert skbs[0].protocol == (0x0800 if frame >= 42 else 0x88B5)
    free(kernel, skbs)
    CB.close_queue(kernel, ring)


def test_copy_keeps_the_buffer_build_replaces_it(kernel):
    ring = open_ring(kernel, ring=16)
    first = ring.buffers[0]
    skbs = receive(kernel, ring, 60)
    # copied: slot 0 keeps its buffer
    assert ring.buffers[0] == first
    assert (ring.stats.buffers_copied, ring.stats.buffers_reused, ring.stats.bytes_copied) == (1, 1, 60)
    second = ring.buffers[1]
    skbs += receive(kernel, ring, 1514)
    # built: the skb's head is the old buffer of slot 1, and the slot has a new one
    assert skbs[1].head == second and ring.buffers[1] != second
    assert ring.stats.buffers_released == 1
    free(kernel, skbs)
    CB.close_queue(kernel, ring)


@pytest.mark.parametrize(
    "release,small_truesize",
    [
        # 6.1 and 6.12 have the 1K cache: 1280
        ("6.1", 1280),
        ("6.12", 1280),
        # 6.18: 60 + 64 = 124 <= SKB_WITH_OVERHEAD(704) = 384 -> skbuff_small_head (704 B): end 384,
        # truesize 384 + 576 = 960
        ("6.18", 960),
    ],
)
def test_copy_head_per_release(release, small_truesize):
    kernel = Kernel(release)
    ring = open_ring(kernel, ring=16)
    skbs = receive(kernel, ring, 60, 256, 1514)
    # 60 and 256 (= copybreak) are copied; 1514 is built around its 2432-byte buffer (2688)
    assert [skb.truesize for skb in skbs] == [small_truesize, small_truesize, 2688]
    free(kernel, skbs)
    CB.close_queue(kernel, ring)
    kernel.assert_no_leaks()


def test_oversize_and_full_ring(kernel):
    ring = open_ring(kernel, ring=8)
    # (MAX_SKB_FRAGS 17 + 1) * 2048 = 36864 is the longest frame
    assert CB.nic_receive(kernel, ring, make_frame(36865)) is False
    assert ring.stats.oversize_drops == 1
    # 8 descriptors: 8 single-buffer frames fit, the 9th does not; a 3-buffer frame does not either
    assert [CB.nic_receive(kernel, ring, make_frame(100)) for _ in range(9)] == [True] * 8 + [False]
    skbs = receive(kernel, ring, budget=5)
    assert len(skbs) == 5
    # 5 descriptors back; a 5000-byte frame needs ceil(5000 / 2048) = 3 of them
    assert CB.nic_receive(kernel, ring, make_frame(5000)) is True
    skbs += receive(kernel, ring)
    assert len(skbs) == 9 and skbs[-1].nr_frags == 2
    free(kernel, skbs)
    CB.close_queue(kernel, ring)


def test_copy_failure_drops_the_frame_keeps_the_buffer(kernel):
    ring = open_ring(kernel, ring=8)
    first = ring.buffers[0]
    kernel.faults.fail_nth("skb_head", 1, times=1)
    assert receive(kernel, ring, 60) == []
    assert (ring.stats.skb_alloc_failures, ring.stats.frames_dropped) == (1, 1)
    assert ring.buffers[0] == first
    CB.close_queue(kernel, ring)


def test_build_failure_after_replacement(kernel):
    ring = open_ring(kernel, ring=8)
    old = ring.buffers[0]
    kernel.faults.fail_nth("skb_head", 1, times=1)
    assert receive(kernel, ring, 1514) == []
    # the replacement is in the slot, the old buffer went back to the page_frag cache
    assert ring.buffers[0] != old
    assert (ring.stats.skb_alloc_failures, ring.stats.buffers_released) == (1, 1)
    CB.close_queue(kernel, ring)


def test_no_replacement_buffer_keeps_the_old_one(kernel):
    ring = open_ring(kernel, ring=8)
    old = ring.buffers[0]
    # Force the next napi_alloc_frag() to refill the per-CPU page_frag cache (offsets count down
    # in 6.9), and make that refill fail.
    kernel.this_cpu().napi_alloc_cache.page.offset = 0
    kernel.faults.fail_nth("page_frag", 1, times=2)
    assert receive(kernel, ring, 1514) == []
    assert ring.buffers[0] == old
    assert (ring.stats.buffer_alloc_failures, ring.stats.buffers_reused, ring.stats.frames_dropped) == (1, 1, 1)
    CB.close_queue(kernel, ring)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"rx_buf": "3713"}, "rx_buf=3713 is above 3712"),
        ({"copybreak": "3000"}, "copybreak=3000 is above rx_buf=2048"),
        ({"ring": "4"}, "ring=4 is outside 8..4096"),
        ({"mtu": "9000"}, "unknown option 'mtu' for driver copybreak"),
    ],
)
def test_bad_options(kernel, options, message):
    dev = net_device("eth0")
    with pytest.raises(InputError, match=message):
        CB.open_queue(kernel, dev, napi_struct(dev), options)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(
    release=st.sampled_from(["6.1", "6.9", "6.12", "6.18"]),
    copybreak=st.integers(min_value=0, max_value=2048),
    lengths=st.lists(st.integers(min_value=14, max_value=20000), min_size=1, max_size=40),
    keep_every=st.integers(min_value=1, max_value=5),
)
def test_random_traffic(release, copybreak, lengths, keep_every):
    kernel = Kernel(release)
    ring = open_ring(kernel, ring=32, copybreak=copybreak)
    held = []
    for i, length in enumerate(lengths):
        assert CB.nic_receive(kernel, ring, make_frame(length))
        skbs = receive(kernel, ring)
        skb = skbs[0]
        assert skb.len == length - 14
        if length > copybreak:
            # 2688 for the head buffer, 2432 per further buffer of ceil(length / 2048)
            assert skb.truesize == 2688 + 2432 * (-(-length // 2048) - 1)
        if i % keep_every == 0:
            held.extend(skbs)  # the stack keeps this one for now
        else:
            free(kernel, skbs)
    free(kernel, held)
    CB.close_queue(kernel, ring)
    kernel.assert_no_leaks()
