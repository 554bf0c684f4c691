"""The virtio_net model against hand-derived numbers, release by release.

x86_64 built-in profiles: NET_SKB_PAD 64, NET_IP_ALIGN 0, L1 64, SHINFO_SIZE 320,
SKB_DATA_ALIGN(sizeof(struct sk_buff)) 256, so SKB_TRUESIZE(x) = x + 576 and build_skb(buf,
frag_size) gives truesize frag_size + 256.  Mergeable header 12 bytes.

napi_alloc_skb(GOOD_COPY_LEN = 128): 128 + NET_SKB_PAD 64 = 192:
  6.1, 6.9, 6.12: <= SKB_WITH_OVERHEAD(1024) = 704 -> the 1K frag: end 704, truesize 704 + 576 = 1280,
                  tailroom 704 - 64 = 640
  6.18:           no 1K frag, 192 <= 384 -> __alloc_skb, SKB_HEAD_ALIGN(192) = 512 <= 704 -> skbuff_small_head:
                  end 704 - 320 = 384, truesize 384 + 576 = 960, tailroom 320
alloc_skb(0) (a frag_list skb): SKB_HEAD_ALIGN(0) = 320:
  6.1:  no small-head cache -> kmalloc-512: end 192, truesize 768
  6.18: skbuff_small_head (704): end 384, truesize 960

mergeable_min_buf_len(12, ring 256, IP_MAX_MTU with guest GSO): buf_len = 12 + 14 + 4 + 65535 = 65565,
DIV_ROUND_UP(65565, 256) = 257, max(257 - 12, 1518) = 1518.
A fresh queue (EWMA 0): get_mergeable_buf_len = ALIGN(12 + clamp(0, 1518, 4084), 64) = ALIGN(1530, 64) = 1536.
"""

import json
import random

import pytest

import driver_helpers

from skbsim.cli import main
from skbsim.drivers import DRIVERS
from skbsim.drivers import virtio_net as vn
from skbsim.drivers.base import frame_header, make_frame
from skbsim.errors import InputError
from skbsim.kernel import Kernel
from skbsim.net.page_pool import page_pool_get_stats

VN = DRIVERS["virtio_net"]
RELEASES = ("6.1", "6.9", "6.12", "6.18")
#: napi_alloc_skb(128)'s truesize (module docstring).
COPY_TRUESIZE = {"6.1": 1280, "6.9": 1280, "6.12": 1280, "6.18": 960}
#: alloc_skb(0)'s truesize.
FRAGLIST_TRUESIZE = {"6.1": 768, "6.9": 960, "6.12": 960, "6.18": 960}
#: Does the release put a struct virtnet_rq_dma at the start of every block (without VIRTIO_F_ACCESS_PLATFORM)?
DMA_RECORD = {"6.1": False, "6.9": False, "6.12": False, "6.18": True}

free = driver_helpers.free
shape = driver_helpers.shape


@pytest.fixture(params=RELEASES)
def release(request):
    return request.param


@pytest.fixture
def kern(release):
    k = Kernel(release)
    yield k
    k.assert_no_leaks()


def open_queue(kernel, **options):
    return driver_helpers.open_ring(VN, kernel, **options)


def receive(kernel, rq, *lengths, budget=64):
    return driver_helpers.receive(VN, kernel, rq, *lengths, budget=budget)


def posted(rq):
    """(offset in its block, sg length) of every posted buffer, in the order the device takes them."""
    out = []
    for token, sg_len, _, _ in rq.vq.avail:
        out.append((token % 32768, sg_len))
    return out


def close(kernel, rq, skbs=()):
    free(kernel, skbs)
    VN.close_queue(kernel, rq)


# -- formulas ----------------------------------------------------------------------------------


def test_ewma_after_a_sequence_of_lengths():
    # DECLARE_EWMA(pkt_len, 0, 64): the first sample is taken as it is, then (63 * avg + len) >> 6.
    e = vn.ewma_pkt_len_add(0, 1514)
    assert e == 1514
    e = vn.ewma_pkt_len_add(e, 64770)  # (63 * 1514 + 64770) >> 6 = 160152 >> 6 = 2502
    assert e == 2502
    e = vn.ewma_pkt_len_add(e, 60)  # (63 * 2502 + 60) >> 6 = 157686 >> 6 = 2463
    assert e == 2463
    # get_mergeable_buf_len: ALIGN(12 + clamp(2463, 1518, 4084), 64) = ALIGN(2475, 64) = 2496
    assert vn.get_mergeable_buf_len(e, 1518, 12, 0, 4096, 64) == 2496
    # clamped below: ALIGN(12 + 1518, 64) = 1536; above: 12 + 4084 = 4096
    assert vn.get_mergeable_buf_len(60, 1518, 12, 0, 4096, 64) == 1536
    assert vn.get_mergeable_buf_len(40000, 1518, 12, 0, 4096, 64) == 4096
    # XDP room: PAGE_SIZE - room, whatever the EWMA: 4096 - SKB_DATA_ALIGN(256 + 320) = 4096 - 576 = 3520
    assert vn.get_mergeable_buf_len(40000, 1518, 12, 576, 4096, 64) == 3520


def test_min_buf_len():
    assert vn.mergeable_min_buf_len(12, 256, 65535) == 1518  # see the module docstring
    # ring 16: DIV_ROUND_UP(65565, 16) = 4098; 4098 - 12 = 4086
    assert vn.mergeable_min_buf_len(12, 16, 65535) == 4086
    # no guest GSO, device max MTU 9000: 12 + 14 + 4 + 9000 = 9030 over 4 -> 2258, - 12 = 2246
    assert vn.mergeable_min_buf_len(12, 4, 9000) == 2246


def carve_block(size, dma_record, fix=True):
    """Every buffer of one 32 KiB block cut into ``size``-byte buffers from its start."""
    offset, out = 0, []
    while True:
        if out and offset + size > 32768:
            return out
        start, length, offset = vn.mergeable_buf_carve(offset, 32768, size, 0, 0, dma_record, fix, False)
        out.append((start, length))


def test_buffers_per_block():
    # Without the DMA record: 4096-byte buffers fill 32768 exactly (8 x 4096); 1536-byte ones:
    # 21 x 1536 = 32256 leaves 512 < 1536, folded into the 21st: 20 x 1536 + 2048.
    assert [n for _, n in carve_block(4096, False)] == [4096] * 8
    assert [n for _, n in carve_block(1536, False)] == [1536] * 20 + [2048]
    # With it the first buffer starts at 16: 16 + 7 x 4096 = 28688 leaves 4080 < 4096, folded:
    # 6 x 4096 + 8176 (the live 6.18.44 shows these sizes); 16 + 21 x 1536 = 32272 leaves 496:
    # 20 x 1536 + 2032.
    assert carve_block(4096, True) == [(16 + 4096 * k, 4096) for k in range(6)] + [(16 + 4096 * 6, 8176)]
    assert [n for _, n in carve_block(1536, True)] == [1536] * 20 + [2032]


def test_a_single_page_with_the_dma_record():
    # A single 4 KiB page (the order-3 block refused), 4096-byte buffer at offset 0:
    # with the 6.13 fix: 4096 + 16 > 4096, so len = 4080, placed at 16, the block is full (hole 0).
    assert vn.mergeable_buf_carve(0, 4096, 4096, 0, 0, True, True, False) == (16, 4080, 4096)
    # 6.9 with the DMA API (no fix): 16 + 4096 = 4112 runs past the page; the unsigned hole is
    # huge, nothing is folded.
    assert vn.mergeable_buf_carve(0, 4096, 4096, 0, 0, True, False, False) == (16, 4096, 4112)
    # 6.12 (fix, no record): len 4080 at 0, hole 16 < 4080 folded back: 4096.
    assert vn.mergeable_buf_carve(0, 4096, 4096, 0, 0, False, True, False) == (0, 4096, 4096)


def test_fresh_ring_layout(kern, release):
    rq = open_queue(kern)
    buffers = posted(rq)
    assert len(buffers) == 256 and rq.vq.num_free == 0
    first_block = buffers[:21]
    if DMA_RECORD[release]:
        assert first_block == [(16 + 1536 * k, 1536) for k in range(20)] + [(16 + 1536 * 20, 2032)]
    else:
        assert first_block == [(1536 * k, 1536) for k in range(20)] + [(1536 * 20, 2048)]
    # 256 = 12 x 21 + 4: twelve full blocks and four buffers of a thirteenth.
    assert rq.stats.pages_allocated == 13
    close(kern, rq)


def test_dma_record_follows_the_dma_api_on_6_9():
    kernel = Kernel("6.9")
    rq = open_queue(kernel, dma_api=1)
    assert posted(rq)[0] == (16, 1536)
    close(kernel, rq)
    kernel.assert_no_leaks()


# -- skbs ------------------------------------------------------------------------------------------


def test_copied_small_frame(kern, release):
    # 60 bytes: 48 after the 12-byte header... 60 - 0: len 60 <= GOOD_COPY_LEN -> napi_alloc_skb(128),
    # all 60 copied (60 <= tailroom); the buffer goes back at once.  len 60 - 14 = 46.
    rq = open_queue(kern)
    skbs = receive(kern, rq, 60)
    assert shape(skbs[0])[:4] == (46, 0, COPY_TRUESIZE[release], 0)
    assert rq.stats.buffers_copied == 1 and rq.stats.bytes_copied == 60
    close(kern, rq, skbs)


def test_one_buffer_build_skb(kern, release):
    # 1000 bytes in a 1536-byte buffer: 1000 > 128 and 1536 - 12 - 1000 = 524 >= 320 ->
    # build_skb(buf, 1536): truesize 1536 + 256 = 1792, all linear.
    rq = open_queue(kern)
    skbs = receive(kern, rq, 1000)
    assert shape(skbs[0]) == (986, 0, 1792, 0, True)
    assert rq.last_path == "page_to_skb build_skb"
    close(kern, rq, skbs)


def test_one_full_buffer_is_copied_then_pulled(kern, release):
    # 1514 bytes: 1536 - 12 - 1514 = 10 < 320 -> napi_alloc_skb(128) head; 1514 > its tailroom, so only
    # the 14-byte Ethernet header is copied and the rest stays as frag 0 (truesize += 1536).  The
    # synthetic frame is UDP with a partial checksum: virtio_net_hdr_to_skb pulls to csum_start 34 +
    # max(0, 6 + 2) = 42 bytes; after eth_type_trans 28 linear, data_len 1500 - 28 = 1472.
    rq = open_queue(kern)
    skbs = receive(kern, rq, 1514)
    assert shape(skbs[0])[:4] == (1500, 1472, COPY_TRUESIZE[release] + 1536, 1)
    close(kern, rq, skbs)


def test_two_buffers(kern, release):
    # 3000 + 12 = 3012 bytes: two contiguous 1536-byte buffers; copy path, frag 0 from the first,
    # the second coalesced into it (same block, contiguous): nr_frags 1, truesize head + 2 x 1536.
    # data_len 2986 - 28 = 2958 (pulled to 42 as above).
    rq = open_queue(kern)
    skbs = receive(kern, rq, 3000)
    assert shape(skbs[0])[:4] == (2986, 2958, COPY_TRUESIZE[release] + 3072, 1)
    assert rq.stats.buffers_used == 2
    close(kern, rq, skbs)


def test_seventeen_plus_buffers(kern, release):
    # 64000 + 12 = 64012 bytes on a fresh ring.  Without the record a block is 20 x 1536 + 2048 = 32768:
    # 41 buffers hold 65536 - 2048 = 63488 < 64012, so 42 buffers, two whole blocks, truesize
    # head + 65536.  With it a block is 20 x 1536 + 2032 = 32752: 42 buffers, head + 65504.
    # Frags: the first block's (copy path) and the second's, each coalesced: 2.
    # Linear after the pull: 28, data_len 63986 - 28 = 63958.
    rq = open_queue(kern)
    skbs = receive(kern, rq, 64000)
    blocks = 65504 if DMA_RECORD[release] else 65536
    assert shape(skbs[0])[:4] == (63986, 63958, COPY_TRUESIZE[release] + blocks, 2)
    assert rq.stats.buffers_used == 42
    close(kern, rq, skbs)


def _tcp_header(proto=0x0800):
    """Ethernet + IPv4 (IHL 5, TCP) + a 20-byte TCP header."""
    eth = b"\x02" * 12 + proto.to_bytes(2, "big")
    ip = bytes((0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6)) + bytes(10)
    return eth + ip + bytes(20)


@pytest.mark.parametrize("place,nr_frags", [(0, 2), (1, 3)])
def test_gso_packet_truesize_buffer_by_buffer(place, nr_frags):
    # 6.18, the ring as the live trace shows it: blocks of 6 x 4096 + 8176 starting at 16.  A 64770-byte
    # TCP GSO frame (+12 = 64782).  From the start of a block (place 0): 6 x 4096 + 8176 = 32752, then
    # again 24576 -> 57328 < 64782, + 8176 = 65504: 14 buffers.  truesize = 960 + 65504 = 66464
    # (the live host's 576-byte small head gives 832 + 65504 = 66336, as traced).  Frags: one per
    # block: 2.  From the second place of a block: 5 x 4096 + 8176 = 28656, 32752 -> 61408, then
    # 4096 -> 65504: 14 buffers, the same 65504, over three blocks: 3 frags.
    # NEEDS_CSUM, TCPV4: pulled to 34 + max(20, 16 + 2) = 54; linear 40 after eth, data_len
    # 64756 - 40 = 64716; gso_size 1500 - 40 = 1460, gso_type TCPV4 | DODGY.
    kernel = Kernel("6.18")
    rq = open_queue(kernel)
    layout = []
    for block in range(4):
        for start, length in carve_block(4096, True):
            layout.append((block, start, length))
    vn.virtnet_rq_load_mergeable(kernel, rq, layout[place:place + 28], (3, 32768), 40000)
    header = _tcp_header()
    hdr = vn.virtio_net_hdr_for_frame(header, 64770, 1500, "partial", True)
    assert (hdr.gso_type, hdr.gso_size, hdr.csum_start, hdr.csum_offset) == (1, 1460, 34, 16)
    assert vn.virtnet_device_rx(kernel, rq, 64770, hdr, header)
    skbs = []
    VN.poll(kernel, rq, 64, skbs.append)
    skb = skbs[0]
    assert shape(skb)[:4] == (64756, 64716, 960 + 65504, nr_frags)
    assert (skb.shinfo.gso_size, skb.shinfo.gso_type) == (1460, vn.SKB_GSO_TCPV4 | vn.SKB_GSO_DODGY)
    assert rq.stats.buffers_used == 14
    close(kernel, rq, skbs)
    kernel.assert_no_leaks()


@pytest.mark.parametrize("release", ("6.1", "6.18"))
def test_frag_list_after_max_skb_frags(release):
    # 20 buffers of 1536, each in a block of its own (nothing coalesces); 30000 + 12 = 30012 needs
    # 20 (19 x 1536 = 29184 < 30012).  Frag 0 from the first buffer, frags 1..16 from the next 16:
    # 17 = MAX_SKB_FRAGS; the 18th buffer starts a frag_list skb (alloc_skb(0)), which takes the
    # last three.  truesize = head + 20 x 1536 + alloc_skb(0): 6.1 1280 + 30720 + 768 = 32768,
    # 6.18 960 + 30720 + 960 = 32640.  len 29986, data_len 29958 (pulled to 42).
    kernel = Kernel(release)
    rq = open_queue(kernel)
    start = 16 if DMA_RECORD[release] else 0
    vn.virtnet_rq_load_mergeable(kernel, rq, [(block, start, 1536) for block in range(24)], (23, start + 1536), 2000)
    header = frame_header(make_frame(30000))
    hdr = vn.virtio_net_hdr_for_frame(header, 30000, 1500, "partial", True)
    assert vn.virtnet_device_rx(kernel, rq, 30000, hdr, header)
    skbs = []
    VN.poll(kernel, rq, 64, skbs.append)
    skb = skbs[0]
    expected = {"6.1": 32768, "6.18": 32640}[release]
    assert shape(skb)[:4] == (29986, 29958, expected, 17)
    assert len(skb.shinfo.frag_list) == 1 and skb.shinfo.frag_list[0].nr_frags == 3
    close(kernel, rq, skbs)
    kernel.assert_no_leaks()


def test_refill_uses_the_ewma(kern, release):
    # 1514, 64770, 60 in one poll: EWMA 1514 -> 2502 -> 2463 (test_ewma...): the refill after the poll
    # (more than min(64, 256) / 2 = 32 free) posts ALIGN(12 + 2463, 64) = 2496-byte buffers.
    rq = open_queue(kern)
    before = len(rq.vq.avail)
    skbs = receive(kern, rq, 1514, 64770, 60)
    assert rq.mrg_avg_pkt_len == 2463
    assert rq.vq.num_free == 0
    new = posted(rq)[before - rq.stats.buffers_used:]
    assert new[0][1] == 2496
    close(kern, rq, skbs)


def test_no_refill_below_half_the_budget(kern, release):
    # One 60-byte frame frees one descriptor: 1 <= 32, no refill.
    rq = open_queue(kern)
    skbs = receive(kern, rq, 60)
    assert rq.vq.num_free == 1
    close(kern, rq, skbs)


def test_a_failed_last_refill_leaks_the_dma_record_page():
    """free_receive_page_frags() skips rq->last_dma when the last refill failed: the kernel's own leak.

    6.18, ring 64, fresh EWMA: 1536-byte buffers, 21 per 32 KiB block with the DMA record (20 x 1536 +
    2032, test_buffers_per_block); the open posts 64 = 3 x 21 + 1, so block 4 holds one buffer at 16 and
    its offset is 16 + 1536 = 1552; rq->last_dma is block 4's record (ref 1 + 1 buffer). 40 frames of
    60 bytes are copied into napi_alloc_skb() heads and their buffers (blocks 1 and 2) go back. The
    refill (40 free > 64 / 2) cuts block 4's 20 remaining buffers (the 20th folded to 2032: 16 + 20 x
    1536 = 30736, 32768 - 30736 = 2032); for the 21st skb_page_frag_refill() finds 32768 + 1536 past the
    block, puts its own reference and fails (both the order-3 block and the page are refused):
    alloc_frag.page NULL, last_dma still block 4's record, ref 1 + 21. Close: the 21 buffers are
    unmapped and put (ref 1); alloc_frag.page is NULL, so free_receive_page_frags() never unmaps
    last_dma: block 4's order-3 page keeps one reference, the record's.
    """
    from skbsim.mm.fault import FaultRule

    kernel = Kernel("6.18")
    rq = open_queue(kernel, ring=64)
    last_token = rq.vq.avail[-1][0]
    block4 = kernel.pages.virt_to_head_page(last_token)
    assert last_token % 32768 == 16 and rq.stats.pages_allocated == 4
    assert rq.last_dma.page is block4 and rq.last_dma.ref == 2
    kernel.faults.set("page_frag", FaultRule(probability=1.0))
    skbs = receive(kernel, rq, *[60] * 40)
    assert len(skbs) == 40 and rq.alloc_frag.page is None
    assert [n for _, n in posted(rq)[-20:]] == [1536] * 19 + [2032]
    assert rq.last_dma.page is block4 and rq.last_dma.ref == 1 + 21
    close(kernel, rq, skbs)
    report = kernel.leak_check()
    assert not report.pages and not report.objects and not report.skbs and not report.pools
    assert report.model_clean and not report.clean
    assert [(page, function) for page, function, _ in report.kernel] == [(block4, "free_receive_page_frags")]
    assert block4.order == 3 and block4.refcount == 1
    out = report.as_dict()
    assert out["pages"] == 1 and out["kernel"][0]["function"] == "free_receive_page_frags"
    kernel.assert_no_leaks()  # the model itself left nothing over


def test_the_kernel_leak_in_a_run(capsys):
    # The same through `skbsim run` (6.18, ring 64, every page_frag refill refused once the ring is open): the
    # run's leaks name the kernel function; the fast engine hands the run to the reference engine.
    code = main(["run", "--kernel", "6.18", "--driver", "virtio_net", "--opt", "ring=64", "--fault",
                 "page_frag:probability=1", "--count", "200", "--json", "--quiet"])
    out = capsys.readouterr()
    leaks = json.loads(out.out)["runs"][0]["leaks"]
    assert code == 1 and not leaks["clean"] and leaks["pages"] == 1 and leaks["skbs"] == leaks["slab_objects"] == 0
    assert [leak["function"] for leak in leaks["kernel"]] == ["free_receive_page_frags"]
    assert "free_receive_page_frags" in out.err


# -- the other modes -----------------------------------------------------------------------------


def test_small_mode(kern, release):
    # Small mode: a buffer is SKB_DATA_ALIGN(12 + 64 + 1518) + 320 = 1600 + 320 = 1920; 17 per block
    # (the record's 16 bytes do not change that: 16 + 17 x 1920 = 32656); the device writes the header
    # NET_SKB_PAD = 64 bytes into each.  build_skb(buf, 1920): truesize 1920 + 256 = 2176, headroom
    # 64 + 12 = 76 (+ 14 after eth_type_trans).
    rq = open_queue(kern, mrg_rxbuf=0, guest_gso=0)
    assert rq.mode == "small"
    first = (16 if DMA_RECORD[release] else 0) + 64
    assert [start for start, _ in posted(rq)[:17]] == [first + 1920 * k for k in range(17)]
    assert posted(rq)[17][0] == first  # the next block
    skbs = receive(kern, rq, 1400, 1518, 1519)
    assert [shape(skb)[:4] for skb in skbs] == [(1386, 0, 2176, 0), (1504, 0, 2176, 0)]
    assert rq.stats.oversize_drops == 1  # 1519 > GOOD_PACKET_LEN: the device cannot place it
    close(kern, rq, skbs)


def test_big_mode(kern, release):
    # Big mode (guest GSO, no MRG_RXBUF): chains of MAX_SKB_FRAGS + 1 = 18 pages.  1400 bytes: data at
    # 32 in the first page, 4096 - 32 - 1400 >= 320 -> build_skb(page, 4096): truesize 4352.
    # 9000 bytes: copy path, 14 copied; frags: 4096 - 46 = 4050 in page 0, 4096 in page 1, the
    # last 9000 - 14 - 4050 - 4096 = 840 in page 2; truesize head + 3 x 4096; pulled to 42:
    # data_len 8986 - 28 = 8958.  Unused pages go back to rq->pages: 17 + 15 = 32.
    # A chain is 19 sg entries (no indirect descriptors): 256 // 19 = 13 chains, 9 descriptors left.
    # After the poll 9 + 2 x 19 = 47 > 32 are free: the refill posts two chains (the 32 pages on the list
    # and 4 new ones) and takes 18 more pages for a third before the ring (9 free) refuses it; they go
    # back to the list: 18.
    rq = open_queue(kern, mrg_rxbuf=0)
    assert rq.mode == "big" and rq.big_packets_num_skbfrags == 17
    assert len(rq.vq.avail) == 13 and rq.vq.num_free == 9
    skbs = receive(kern, rq, 1400, 9000)
    assert shape(skbs[0])[:4] == (1386, 0, 4352, 0)
    assert shape(skbs[1])[:4] == (8986, 8958, COPY_TRUESIZE[release] + 3 * 4096, 3)
    assert [f.size for f in skbs[1].shinfo.frags] == [4050 - 28, 4096, 840]
    assert len(rq.pages) == 18 and len(rq.vq.avail) == 13
    close(kern, rq, skbs)


def test_big_mode_without_gso_uses_the_mtu(kern, release):
    # No guest GSO, device MTU 9000: big packets, DIV_ROUND_UP(9000, 4096) = 3 pages after the first.
    rq = open_queue(kern, mrg_rxbuf=0, guest_gso=0, mtu=9000)
    assert rq.mode == "big" and rq.big_packets_num_skbfrags == 3
    close(kern, rq)


def test_xdp_headroom(kern, release):
    # XDP: room = SKB_DATA_ALIGN(256 + 320) = 576, buffers of 4096 - 576 = 3520 taking 4096 each:
    # 8 per block.  6.3+: build_skb_from_xdp_buff over the whole 4096 for every frame: truesize 4352,
    # headroom 256 + 12 (+ 14).  6.1: page_to_skb with truesize PAGE_SIZE: 60 bytes are copied
    # (1280), 1000 built (4352).
    rq = open_queue(kern, xdp=1)
    assert posted(rq)[:3] == ([(16 + 256, 3520), (16 + 4096 + 256, 3520), (16 + 8192 + 256, 3520)]
                              if DMA_RECORD[release] else [(256, 3520), (4352, 3520), (8448, 3520)])
    skbs = receive(kern, rq, 60, 1000)
    small = 1280 if release == "6.1" else 4352
    assert [shape(skb)[2] for skb in skbs] == [small, 4352]
    close(kern, rq, skbs)


# -- options -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("options,message", [
    ({"ring": "100"}, "not a power of two"),
    ({"ring": "65536"}, "outside"),
    ({"mtu": "60"}, "outside"),
    ({"mtu": "abc"}, "not an integer"),
    ({"xdp": "2"}, "must be one of"),
    ({"csum": "maybe"}, "must be one of"),
    ({"xdp": "1", "mrg_rxbuf": "0"}, "XDP"),
    ({"xdp": "1", "mtu": "9000"}, "MTU too large"),
    ({"speed": "1"}, "unknown option"),
])
def test_bad_options(options, message):
    kernel = Kernel("6.18")
    with pytest.raises(InputError, match=message):
        open_queue(kernel, **options)
    kernel.assert_no_leaks()


def test_cli_rx_and_bad_option(capsys):
    assert main(["rx", "--kernel", "6.18", "--driver", "virtio_net", "--frame-len", "64000"]) == 0
    out = capsys.readouterr().out
    assert "len 63986, data_len 63958, truesize 66464, nr_frags 2" in out and "leak check: clean" in out
    assert main(["rx", "--driver", "virtio_net", "--frame-len", "100", "--opt", "ring=3"]) == 2
    err = capsys.readouterr().err
    assert "ring=3 is not a power of two" in err and "Traceback" not in err


def test_run_on_the_fast_engine_and_its_fallback(capsys):
    # mergeable buffers run on the fast engine; small mode (mrg_rxbuf=0) falls back, saying why
    import json

    for options, engine in (([], "fast"), (["--opt", "mrg_rxbuf=0"], "reference")):
        assert main(["run", "--kernel", "6.18", "--driver", "virtio_net", "--count", "300", "--quiet", "--json",
                     *options]) == 0
        captured = capsys.readouterr()
        assert ("reference engine used" in captured.err) == (engine == "reference")
        result = json.loads(captured.out)
        result = result["runs"][0] if "runs" in result else result
        assert result["engine"] == engine and result["leaks"]["clean"] and result["delivered"] == 300
    assert "mergeable buffers without XDP" in captured.err


def test_random_traffic_leaves_nothing_behind(kern, release):
    rng = random.Random(7)
    rq = open_queue(kern, ring=64)
    for _ in range(40):
        lengths = [rng.choice((60, 100, 129, 1514, 4000, 9000, 30000, 64000)) for _ in range(rng.randint(1, 5))]
        skbs = receive(kern, rq, *lengths)
        free(kern, skbs)
    VN.close_queue(kern, rq)


# -- 7.1: buffers from a page_pool ('virtio_net: add page_pool support for buffer allocation') ---------------
#
# An order-0 pool of the ring's size.  page_pool_alloc_va(size) hands out a fragment, and when another of
# the same size would not fit the page any more it folds the rest of the page into this one; the ring
# context keeps what was handed out, so that is the buffer's truesize.


def test_7_1_mergeable_buffers_are_page_pool_fragments():
    kernel = Kernel("7.1")
    rq = open_queue(kernel)
    # Fresh queue: 1536-byte buffers (module docstring).  Per page: offset 0 takes 1536 (frag_offset
    # 1536; another 1536 still fits), offset 1536 takes 1536 and frag_offset 3072 + 1536 > 4096, so the
    # rest is folded into it: 4096 - 1536 = 2560.  No DMA record.  256 descriptors: 128 pages.
    layout = [(token % 4096, sg_len) for token, sg_len, _, _ in rq.vq.avail]
    assert layout == [(0, 1536), (1536, 2560)] * 128
    assert [vn.mergeable_ctx_to_truesize(ctx) for _, _, ctx, _ in list(rq.vq.avail)[:2]] == [1536, 2560]
    # 128 pages: the alloc cache is refilled 64 at a time (PP_ALLOC_CACHE_REFILL on 4K pages), so two slow
    # allocations and 126 fast ones; the fragments of a page are not counted (pp_frag_stats cached_on_reuse).
    stats = page_pool_get_stats(rq.page_pools)
    assert (stats["rx_pp_alloc_slow"], stats["rx_pp_alloc_fast"]) == (2, 126)
    skbs = receive(kernel, rq, 1514, 1514)
    # Frame 1 (12 + 1514 bytes) in the 1536-byte buffer: 10 bytes behind it, too few for skb_shared_info:
    # napi_alloc_skb(128) (the 704-byte small head, truesize 960), ETH_HLEN copied, 1500 bytes left as frag
    # 0 with the buffer's truesize 1536: 960 + 1536 = 2496.  Frame 2 in the 2560-byte buffer: 2560 - 12 -
    # 1514 = 1034 >= 320 behind it: build_skb(buf, 2560), truesize 2560 + 256 = 2816, the whole frame linear.
    # (virtio_net_hdr_to_skb() pulls the 20 + 8 IP and UDP header bytes of the partial checksum into frame
    # 1's head: data_len 1500 - 28 = 1472.)
    assert [shape(s) for s in skbs] == [(1500, 1472, 2496, 1, False), (1500, 0, 2816, 0, True)]
    # Both marked for recycling: their page goes back to the pool when the last piece is freed.
    assert all(s.pp_recycle for s in skbs)
    close(kernel, rq, skbs)
    kernel.assert_no_leaks()


def test_7_1_small_mode_buffers():
    kernel = Kernel("7.1")
    rq = open_queue(kernel, mrg_rxbuf=0, guest_gso=0)
    # SKB_DATA_ALIGN(12 + 64 + 1518) + 320 = 1600 + 320 = 1920 per buffer: 0 (1920), 1920 (the next 1920
    # would end at 5760 > 4096: 4096 - 1920 = 2176 folded).  build_skb(buf, the context's length):
    # truesize 1920 + 256 = 2176 and 2176 + 256 = 2432 (6.18 always takes 1920: 2176).
    assert [(token % 4096, vn.mergeable_ctx_to_truesize(ctx)) for token, _, ctx, _ in list(rq.vq.avail)[:2]] \
        == [(64, 1920), (1920 + 64, 2176)]
    skbs = receive(kernel, rq, 1000, 1000)
    assert [shape(s) for s in skbs] == [(986, 0, 2176, 0, True), (986, 0, 2432, 0, True)]
    close(kernel, rq, skbs)
    kernel.assert_no_leaks()


def test_7_1_pages_outlive_the_queue_in_skbs():
    kernel = Kernel("7.1")
    rq = open_queue(kernel)
    skbs = receive(kernel, rq, 9000)
    # Closing with the skb alive: page_pool_destroy() finds pages in flight and waits (the leak check of a
    # run would name the pool); freeing the skb later returns them and the pool goes away.
    VN.close_queue(kernel, rq)
    assert kernel.leak_check(drain=False).pools
    free(kernel, skbs)
    kernel.assert_no_leaks()
