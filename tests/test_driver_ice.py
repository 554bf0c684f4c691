"""The ice receive path against numbers derived by hand from the driver's macros.

x86_64, 4K pages, L1 64 (all profiles here):
  NET_SKB_PAD = 64, NET_IP_ALIGN = 0, SHINFO = SKB_DATA_ALIGN(320) = 320,
  SKB_TRUESIZE(x) = x + SKB_DATA_ALIGN(232) + 320 = x + 576.
ice_txrx.h, ice_base.c, ice_txrx.c:
  ICE_2K_TOO_SMALL_WITH_PADDING = 64 + 1536 > 2048 - 320 = 1728 -> false
  ICE_SKB_PAD = SKB_WITH_OVERHEAD(ALIGN(1536, 2048)) - 1536 = 1728 - 1536 = 192
  build_skb, MTU <= 1500: rx_buf_len = max_frame = 1536; 1536 <= 2048 -> order 0; frame_sz = 4096 / 2 = 2048
  build_skb, MTU > 1500:  rx_buf_len 3072, max_frame 9728; 3072 > 2048 -> order 1; frame_sz = 8192 / 2 = 4096
  legacy-rx (any MTU):    rx_buf_len 1664, max_frame 8320, order 0, frame_sz 2048, no headroom
  rxmax = min(max_frame, 5 * rx_buf_len): 1536, 9728, 8320
  napi_build_skb(hard_start, frame_sz): end = frame_sz - 320, truesize = frame_sz - 320 + 576 = frame_sz + 256
    -> 2304 (frame_sz 2048), 4352 (frame_sz 4096); each further buffer adds frame_sz
  legacy header skb: __napi_alloc_skb(256): 256 + 64 = 320 <= SKB_WITH_OVERHEAD(1024) = 704 -> a 1K
    fragment, end = 1024 - 320 = 704, truesize = 704 + 576 = 1280 (6.1, 6.9, 6.12); each frag adds 2048
  eth_type_trans pulls 14: len = frame - 14
"""

import pytest

import driver_helpers

from skbsim.drivers import DRIVERS
from skbsim.drivers.base import make_frame
from skbsim.drivers.ice import (
    PUT_PER_BUFFER,
    PUT_PER_FRAME,
    PUT_PER_POLL,
    USHRT_MAX,
    ice_rules_for,
)
from skbsim.errors import InputError
from skbsim.kernel import Kernel
from skbsim.net.napi import napi_struct, net_device

ICE = DRIVERS["ice"]


@pytest.fixture
def make_kernel():
    """Kernels of any release; each must be leak-free when the test ends."""
    made = []

    def make(name: str) -> Kernel:
        kernel = Kernel(name)
        made.append(kernel)
        return kernel

    yield make
    for kernel in made:
        kernel.assert_no_leaks()


def open_ring(kernel, **options):
    return driver_helpers.open_ring(ICE, kernel, **options)


def receive(kernel, ring, *lengths, budget=64):
    return driver_helpers.receive(ICE, kernel, ring, *lengths, budget=budget)


free = driver_helpers.free
shape = driver_helpers.shape


# -- geometry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rx,mtu,expected",
    [
        # (rx_buf_len, max_frame, rxmax, rx_offset, page_order, frame_sz), see the module docstring
        ("build_skb", 1500, (1536, 1536, 1536, 192, 0, 2048)),
        ("build_skb", 9000, (3072, 9728, 9728, 192, 1, 4096)),
        # MTU 1501 is already above ETH_DATA_LEN: 3K buffers
        ("build_skb", 1501, (3072, 9728, 9728, 192, 1, 4096)),
        ("legacy", 1500, (1664, 8320, 8320, 0, 0, 2048)),
        ("legacy", 9000, (1664, 8320, 8320, 0, 0, 2048)),
    ],
)
def test_geometry(kernel, rx, mtu, expected):
    ring = open_ring(kernel, rx=rx, mtu=mtu, ring=64)
    c = ring.config
    assert (c["rx_buf_len"], c["max_frame"], c["rxmax"], c["rx_offset"], c["page_order"], c["frame_sz"]) == expected
    # ICE_RX_DESC_UNUSED() of an empty ring: 64 - 1 = 63 pages, each with count 1 + (USHRT_MAX - 1)
    assert ring.stats.pages_allocated == 63
    page = ring.rx_buf[0].page
    assert (page.order, page.refcount, ring.rx_buf[0].pagecnt_bias) == (expected[4], 65535, 65535)
    assert ring.rx_buf[63].page is None
    ICE.close_queue(kernel, ring)


# -- one frame, 6.9 -------------------------------------------------------------------------

# (rx, mtu, frame, (len, data_len, truesize, nr_frags, head_frag), path, frag sizes)
SINGLE_FRAMES_69 = [
    # frame_sz 2048 -> truesize 2304; 60 - 14 = 46
    ("build_skb", 1500, 60, (46, 0, 2304, 0, True), "napi_build_skb", []),
    ("build_skb", 1500, 1514, (1500, 0, 2304, 0, True), "napi_build_skb", []),
    # frame_sz 4096 -> truesize 4352
    ("build_skb", 9000, 60, (46, 0, 4352, 0, True), "napi_build_skb", []),
    ("build_skb", 9000, 1514, (1500, 0, 4352, 0, True), "napi_build_skb", []),
    # 9014 over 3072-byte buffers: 3072 + 3072 + 2870; linear 3072, frags 3072 + 2870 = 5942;
    # truesize 4352 + 2 * 4096 = 12544; len 9014 - 14 = 9000
    ("build_skb", 9000, 9014, (9000, 5942, 12544, 2, True), "napi_build_skb", [3072, 2870]),
    # 9728 = rxmax: 3 * 3072 = 9216, 512 left -> 4 buffers, 3 frags: 4352 + 3 * 4096 = 16640
    ("build_skb", 9000, 9728, (9714, 6656, 16640, 3, True), "napi_build_skb", [3072, 3072, 512]),
    # legacy, 60 <= 256: all 60 bytes copied into the 1K head, no frag: truesize 1280
    ("legacy", 1500, 60, (46, 0, 1280, 0, True), "page_frag_1k", []),
    # legacy, 1514 > 256: eth_get_headlen(IPv4/UDP) = 42 copied; frag 0 = 1514 - 42 = 1472 with
    # truesize 2048: 1280 + 2048 = 3328
    ("legacy", 1500, 1514, (1500, 1472, 3328, 1, True), "page_frag_1k", [1472]),
    # legacy at MTU 9000 has the same 1664-byte buffers
    ("legacy", 9000, 60, (46, 0, 1280, 0, True), "page_frag_1k", []),
    ("legacy", 9000, 1514, (1500, 1472, 3328, 1, True), "page_frag_1k", [1472]),
    # legacy jumbo 8000 = 4 * 1664 + 1344: 5 buffers; head 42, frag 0 = 1664 - 42 = 1622, then
    # 1664, 1664, 1664, 1344; data_len 8000 - 42 = 7958; truesize 1280 + 5 * 2048 = 11520
    ("legacy", 9000, 8000, (7986, 7958, 11520, 5, True), "page_frag_1k", [1622, 1664, 1664, 1664, 1344]),
]


@pytest.mark.parametrize("rx,mtu,frame,expected,path,frags", SINGLE_FRAMES_69)
def test_one_frame_69(kernel, rx, mtu, frame, expected, path, frags):
    ring = open_ring(kernel, rx=rx, mtu=mtu, ring=64)
    skbs = receive(kernel, ring, frame)
    assert len(skbs) == 1
    skb = skbs[0]
    assert shape(skb) == expected
    assert skb.path == path
    assert [frag.size for frag in skb.shinfo.frags] == frags
    assert skb.protocol == 0x0800
    # skb_record_rx_queue(q_index 0) stores 1
    assert skb.queue_mapping == 1
    if rx == "build_skb":
        # headroom ICE_SKB_PAD = 192, then eth_type_trans: mac_header 192, data 206
        assert (skb.mac_header, skb.data) == (192, 206)
    else:
        # __napi_alloc_skb reserves NET_SKB_PAD = 64; mac_header 64, data 78
        assert (skb.mac_header, skb.data) == (64, 78)
    free(kernel, skbs)
    ICE.close_queue(kernel, ring)


@pytest.mark.parametrize(
    "rx,mtu,frame",
    [
        ("build_skb", 1500, 1537),  # rxmax 1536
        ("build_skb", 9000, 9729),  # rxmax 9728
        ("legacy", 9000, 8321),     # rxmax 8320
        ("legacy", 1500, 9014),
    ],
)
def test_longer_than_rxmax_is_dropped_by_the_nic(kernel, rx, mtu, frame):
    ring = open_ring(kernel, rx=rx, mtu=mtu, ring=64)
    assert ICE.nic_receive(kernel, ring, make_frame(frame)) is False
    assert ring.stats.oversize_drops == 1
    assert receive(kernel, ring) == []
    ICE.close_queue(kernel, ring)


def test_short_frame_is_padded_to_60(kernel):
    ring = open_ring(kernel, ring=64)
    skbs = receive(kernel, ring, 20)
    # eth_skb_pad: 20 -> ETH_ZLEN 60, then eth_type_trans: 46
    assert shape(skbs[0]) == (46, 0, 2304, 0, True)
    free(kernel, skbs)
    ICE.close_queue(kernel, ring)


# -- the header skb per release -------------------------------------------------------------


@pytest.mark.parametrize(
    "release,head_truesize,path",
    [
        # 6.1 and 6.12: 1K fragment (see the module docstring): 1280
        ("6.1", 1280, "page_frag_1k"),
        ("6.12", 1280, "page_frag_1k"),
        # 6.18: no 1K cache. SKB_SMALL_HEAD_CACHE_SIZE = SKB_HEAD_ALIGN(max(MAX_TCP_HEADER 320,
        # GRO_MAX_HEAD 304 + 64 = 368)) = 384 + 320 = 704; 256 + 64 = 320 <= SKB_WITH_OVERHEAD(704) = 384
        # -> __alloc_skb, SKB_HEAD_ALIGN(320) = 640 <= 704 -> skbuff_small_head: end 384, truesize 384 + 576 = 960
        ("6.18", 960, "kmalloc"),
    ],
)
def test_legacy_header_skb_per_release(make_kernel, release, head_truesize, path):
    kernel = make_kernel(release)
    ring = open_ring(kernel, rx="legacy", ring=64)
    skbs = receive(kernel, ring, 60, 1514)
    # 60: head only; 1514: head + one 2048 frag of 1472 bytes
    assert shape(skbs[0]) == (46, 0, head_truesize, 0, path != "kmalloc")
    assert shape(skbs[1]) == (1500, 1472, head_truesize + 2048, 1, path != "kmalloc")
    assert skbs[0].path == path
    free(kernel, skbs)
    ICE.close_queue(kernel, ring)


@pytest.mark.parametrize("release", ["6.1", "6.12", "6.18"])
def test_build_skb_same_in_every_release(make_kernel, release):
    kernel = make_kernel(release)
    ring = open_ring(kernel, mtu=9000, ring=64)
    skbs = receive(kernel, ring, 60, 9014)
    # frame_sz 4096: 4352; jumbo 4352 + 2 * 4096 = 12544 with 5942 bytes in 2 frags
    assert shape(skbs[0]) == (46, 0, 4352, 0, True)
    assert shape(skbs[1]) == (9000, 5942, 12544, 2, True)
    free(kernel, skbs)
    ICE.close_queue(kernel, ring)


# -- page reuse -----------------------------------------------------------------------------

RELEASES = ["6.1", "6.9", "6.12"]


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("rx", ["build_skb", "legacy"])
def test_half_page_flip_serves_two_frames(make_kernel, release, rx):
    """A ring of 64 posts 63 pages; every page comes round again after 63 frames, on its other half."""
    kernel = make_kernel(release)
    ring = open_ring(kernel, rx=rx, ring=64)
    page = ring.rx_buf[0].page
    base = kernel.pages.page_address(page)
    offset = 192 if rx == "build_skb" else 0
    heads = []
    for _ in range(64):
        skbs = receive(kernel, ring, 1514)
        skb = skbs[0]
        # where the frame's bytes sit: the head (build_skb) or frag 0 (legacy)
        if rx == "build_skb":
            heads.append((kernel.pages.virt_to_head_page(skb.head), skb.head - base))
        else:
            frag = skb.shinfo.frags[0]
            heads.append((frag.page, frag.offset))
        free(kernel, skbs)
    # frame 1 on the first half, frame 64 (slot 63, where ice_reuse_rx_page put the page) on the
    # other half: hard_start = page + page_offset - rx_offset, page_offset flipped by frame_sz 2048;
    # legacy frag 0 starts after the 42 copied header bytes
    if rx == "build_skb":
        assert heads[0] == (page, 0) and heads[63] == (page, 2048)
    else:
        assert heads[0] == (page, 42) and heads[63] == (page, 2048 + 42)
    # nothing was released, no page allocated after open
    assert (ring.stats.pages_allocated, ring.stats.buffers_reused, ring.stats.buffers_released) == (63, 64, 0)
    assert offset == ring.rx_offset
    ICE.close_queue(kernel, ring)


@pytest.mark.parametrize("release", RELEASES)
def test_page_held_by_the_stack_is_not_reused(make_kernel, release):
    kernel = make_kernel(release)
    ring = open_ring(kernel, ring=64)
    page = ring.rx_buf[0].page
    held = receive(kernel, ring, 1514)
    # after frame 1: the driver gave one reference away (bias 65534) and kept the page (flipped)
    assert page.refcount == 65535
    for _ in range(62):
        free(kernel, receive(kernel, ring, 1514))
    # frame 64 lands on the other half of the same page while frame 1 is still held
    second = receive(kernel, ring, 1514)
    assert kernel.pages.virt_to_head_page(second[0].head) is page
    # pgcnt - pagecnt_bias = 65535 - 65533 = 2 > 1: released, the driver's 65533 references dropped;
    # the two skbs hold the remaining 2; the slot got a new page at refill
    assert page.refcount == 2
    assert (ring.stats.buffers_released, ring.stats.pages_allocated) == (1, 64)
    free(kernel, held + second)
    assert page.pfn not in kernel.pages.live
    ICE.close_queue(kernel, ring)


@pytest.mark.parametrize(
    "release,page_offset",
    [
        # 6.1: ice_construct_skb adds the reference back, no flip -> offset stays 0
        ("6.1", 0),
        # 6.9: ICE_SKB_CONSUMED -> bias + 1 in the put loop, no flip -> 0
        ("6.9", 0),
        # 6.12.117: bias + 1 in ice_construct_skb and ice_put_rx_mbuf flips anyway -> 0 ^ 2048
        ("6.12", 2048),
    ],
)
def test_copied_out_legacy_buffer(make_kernel, release, page_offset):
    kernel = make_kernel(release)
    ring = open_ring(kernel, rx="legacy", ring=64)
    page = ring.rx_buf[0].page
    skbs = receive(kernel, ring, 60)
    # the 60 bytes went into the header skb; the page is back in slot 63 with all its references
    moved = ring.rx_buf[63]
    assert moved.page is page
    assert (moved.page_offset, moved.pagecnt_bias, page.refcount) == (page_offset, USHRT_MAX, 65535)
    assert (ring.stats.buffers_copied, ring.stats.bytes_copied) == (1, 60)
    free(kernel, skbs)
    ICE.close_queue(kernel, ring)


def test_pfmemalloc_page_is_not_reused(kernel):
    ring = open_ring(kernel, ring=64)
    ring.rx_buf[0].page.pfmemalloc = True  # as if it had come from the reserves
    skbs = receive(kernel, ring, 1514)
    # dev_page_is_reusable() is false: released; napi_build_skb marked the skb pfmemalloc
    assert (ring.stats.buffers_released, ring.stats.buffers_reused) == (1, 0)
    assert skbs[0].pfmemalloc
    free(kernel, skbs)
    ICE.close_queue(kernel, ring)


# -- ring, budget, failures -----------------------------------------------------------------


def test_nic_sees_the_tail_in_steps_of_8(kernel):
    ring = open_ring(kernel, ring=64)
    # next_to_use = 63 after open, tail = 63 & ~7 = 56: the NIC owns descriptors 0..55
    accepted = [ICE.nic_receive(kernel, ring, make_frame(60)) for _ in range(57)]
    assert accepted == [True] * 56 + [False]
    assert ring.stats.ring_drops == 1
    skbs = receive(kernel, ring, budget=64)
    assert len(skbs) == 56
    free(kernel, skbs)
    ICE.close_queue(kernel, ring)


def test_budget(kernel):
    ring = open_ring(kernel, ring=64)
    for _ in range(10):
        ICE.nic_receive(kernel, ring, make_frame(60))
    returned = []
    delivered = []
    for _ in range(3):
        returned.append(ICE.poll(kernel, ring, 4, delivered.append))
    # 4 frames use the budget of 4 (poll again), then 4, then 2 < 4: min(2, 4 - 1) = 2
    assert returned == [4, 4, 2]
    assert len(delivered) == 10
    free(kernel, delivered)
    ICE.close_queue(kernel, ring)


def test_skb_failure_69_drops_the_frame(kernel):
    ring = open_ring(kernel, ring=64)
    kernel.faults.fail_nth("skb_head", 1, times=1)
    # the NAPI skb cache is empty, its bulk refill fails: napi_build_skb returns NULL
    assert receive(kernel, ring, 60) == []
    assert (ring.stats.skb_alloc_failures, ring.stats.frames_dropped) == (1, 1)
    # the buffer got its reference back (ICE_XDP_CONSUMED: bias + 1) and was reused unflipped
    assert (ring.rx_buf[63].pagecnt_bias, ring.rx_buf[63].page_offset) == (USHRT_MAX, 192)
    skbs = receive(kernel, ring, 60)
    assert len(skbs) == 1
    free(kernel, skbs)
    ICE.close_queue(kernel, ring)


def test_skb_failure_61_keeps_the_frame(make_kernel):
    kernel = make_kernel("6.1")
    ring = open_ring(kernel, ring=64)
    kernel.faults.fail_nth("skb_head", 1, times=1)
    assert receive(kernel, ring, 60) == []
    assert ring.stats.skb_alloc_failures == 1
    # next_to_clean did not move: the next poll builds the same frame
    skbs = receive(kernel, ring)
    assert shape(skbs[0]) == (46, 0, 2304, 0, True)
    free(kernel, skbs)
    ICE.close_queue(kernel, ring)


def test_close_with_frames_still_on_the_ring(kernel):
    ring = open_ring(kernel, mtu=9000, ring=64)
    for length in (60, 9014, 1514):
        ICE.nic_receive(kernel, ring, make_frame(length))
    ICE.close_queue(kernel, ring)  # the fixture's leak check: every page went back


def test_page_alloc_failure_at_refill_asks_for_another_poll(kernel):
    ring = open_ring(kernel, ring=64)
    held = receive(kernel, ring, 1514)
    for _ in range(62):
        free(kernel, receive(kernel, ring, 1514))
    # frame 64 finds the first page again with its first half held: released, so the refill
    # needs a new page; that allocation fails -> ice_alloc_rx_bufs() returns true and
    # ice_napi_poll() returns the whole budget although only one frame was done
    kernel.faults.fail_nth("page_alloc", 1, times=1)
    ICE.nic_receive(kernel, ring, make_frame(1514))
    more = []
    assert ICE.poll(kernel, ring, 64, more.append) == 64
    assert (len(more), ring.stats.buffer_alloc_failures, ring.stats.buffers_released) == (1, 1, 1)
    # the next poll refills the slot
    assert ICE.poll(kernel, ring, 64, more.append) == 0
    assert ring.stats.pages_allocated == 64
    free(kernel, held + more)
    ICE.close_queue(kernel, ring)


# -- options and rules ----------------------------------------------------------------------


def test_ring_is_rounded_to_32(kernel):
    # ice_set_ringparam(): ALIGN(100, ICE_REQ_DESC_MULTIPLE 32) = 128
    ring = open_ring(kernel, ring=100)
    assert ring.count == 128 and ring.stats.pages_allocated == 127
    ICE.close_queue(kernel, ring)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"speed": "10"}, "unknown option 'speed' for driver ice"),
        ({"mtu": "67"}, "option mtu=67 is outside 68..9702"),
        ({"mtu": "9703"}, "option mtu=9703 is outside 68..9702"),
        ({"ring": "32"}, "option ring=32 is outside 64..8160"),
        ({"rx": "fast"}, "option rx='fast' must be one of build_skb, legacy"),
        ({"mtu": "big"}, "option mtu='big' is not an integer"),
    ],
)
def test_bad_options(kernel, options, message):
    dev = net_device("eth0")
    with pytest.raises(InputError, match=message):
        ICE.open_queue(kernel, dev, napi_struct(dev), options)


@pytest.mark.parametrize(
    "name,put",
    [
        ("6.1", PUT_PER_BUFFER),   # 6.1.192: ice_put_rx_buf() per descriptor
        ("6.9", PUT_PER_POLL),     # v6.9: all buffers after the budget loop
        ("6.12", PUT_PER_FRAME),   # 6.12.117 has the 6.12.14 backport "ice: put Rx buffers after being done ..."
        ("6.18", PUT_PER_FRAME),
    ],
)
def test_rules_by_release(name, put):
    from skbsim.profile import load_profile

    assert ice_rules_for(load_profile(name)).put == put


# -- random traffic -------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(
    release=st.sampled_from(["6.1", "6.9", "6.12", "6.18"]),
    rx=st.sampled_from(["build_skb", "legacy"]),
    mtu=st.sampled_from([1500, 9000]),
    steps=st.lists(
        st.tuples(
            st.lists(st.integers(min_value=14, max_value=9800), min_size=0, max_size=12),  # frames arriving
            st.integers(min_value=1, max_value=16),  # budget
            st.booleans(),  # whether the stack keeps this poll's skbs for a while
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_random_traffic_keeps_the_books(release, rx, mtu, steps):
    """Whatever arrives and whatever the stack holds, every skb has the shape the macros give and
    nothing leaks once the stack lets go and the queue closes."""
    kernel = Kernel(release)
    ring = open_ring(kernel, rx=rx, mtu=mtu, ring=64)
    frame_sz = ring.config["frame_sz"]
    held = []
    arrived = []
    for lengths, budget, keep in steps:
        for length in lengths:
            if ICE.nic_receive(kernel, ring, make_frame(length)):
                arrived.append(length)
        skbs = []
        ICE.poll(kernel, ring, budget, skbs.append)
        for skb in skbs:
            length = arrived.pop(0)
            # eth_skb_pad to 60, then eth_type_trans
            assert skb.len == max(length, 60) - 14
            if rx == "build_skb":
                # frame_sz + 256 for the head, frame_sz per further buffer
                assert skb.truesize == frame_sz + 256 + skb.nr_frags * frame_sz
        if keep:
            held.extend(skbs)
        else:
            free(kernel, skbs)
        if len(held) > 40:
            free(kernel, held)
            held = []
    free(kernel, held)
    ICE.close_queue(kernel, ring)
    kernel.assert_no_leaks()
