"""tun/tap receive routes (drivers/net/tun.c), hand-derived per release.

Common x86_64 numbers used in every derivation below:
  NET_SKB_PAD = 64 (tun->align, TUN_RX_PAD), NET_IP_ALIGN = 0,
  SKB_DATA_ALIGN(sizeof(struct sk_buff)) = 256 (224 and 232 both round up),
  SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) = 320 (MAX_SKB_FRAGS 17),
  SKB_HEAD_ALIGN(x) = ALIGN(x, 64) + 320, truesize of a kmalloc'ed head of S bytes = S + 256,
  good_linear = SKB_MAX_HEAD(64) = 4096 - 64 - 320 = 3712,
  eth_type_trans() pulls 14 bytes: len at delivery = L - 14.
Route B (non-blocking, sndbuf INT_MAX, SKB_DATA_ALIGN(L + 64 + 256) + 320 <= 4096, i.e. L <= 3456):
  buflen = ALIGN(L + 64, 64) + 320, truesize = buflen + 256.
Route A (tun_alloc_skb): header_len = 64 + linear, head = SKB_HEAD_ALIGN(header_len) rounded by the
  small-head cache or kmalloc; 6.6+ caps linear at 3712 once 64 + L >= 4096 and puts the rest in page
  blocks (truesize += 4096 << order per block).
Small-head cache object (SKB_SMALL_HEAD_CACHE_SIZE):
  6.1: none (kmalloc-512 for a 448-byte head);
  6.9: SKB_HEAD_ALIGN(MAX_TCP_HEADER = L1_ALIGN(128 + 176) = 320) = 640;
  6.12/6.18 (distro, MAX_HEADER 176): SKB_HEAD_ALIGN(max(320, GRO_MAX_HEAD 304 + 64 = 368)) = 384 + 320 = 704;
  6.18 with the live machine's config (MAX_HEADER 32): SKB_HEAD_ALIGN(max(L1_ALIGN(160) = 192, 160 + 64 = 224))
  = 256 + 320 = 576.
"""

from __future__ import annotations

import pytest

from skbsim.drivers import tun
from skbsim.drivers.base import make_frame
from skbsim.errors import InputError
from skbsim.kernel import Kernel
from skbsim.mm.gfp import GFP_KERNEL
from skbsim.net.core_sock import INT_MAX, sk_wmem_alloc_get
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.skbuff import alloc_skb_with_frags, kfree_skb
from skbsim.profile import load_profile

# 7.1's tun and skb rules give 6.18's sizes (its sk_buffs may come from the NAPI skb cache instead).
RELEASES = ("6.1", "6.9", "6.12", "6.18", "7.1", "live-cfg")


def _profile(name: str):
    if name == "live-cfg":
        # The 6.18.44 machine this project is checked on: 6.18 rules, no WLAN/tunnels
        # (LL_MAX_HEADER = MAX_HEADER = 32), sizeof(struct sk_buff) 224 from its BTF.
        return load_profile("6.18").derive(
            origin="test live-cfg", constants={"LL_MAX_HEADER": 32, "MAX_HEADER": 32, "sizeof_sk_buff": 224},
            name="6.18-live-cfg",
        )
    return load_profile(name)


@pytest.fixture(params=RELEASES)
def release(request):
    return request.param


def _open(kernel, **options):
    dev = net_device("tap0")
    napi = napi_struct(dev)
    return tun.open_queue(kernel, dev, napi, {k: str(v) for k, v in options.items()})


def _write(kernel, queue, length, free=True):
    """One write(); the skb as the stack gets it.  The stack then drops it (as for EtherType 0x88b5)."""
    assert tun.nic_receive(kernel, queue, make_frame(length)), queue.write_errors
    got = []
    with kernel.softirq():
        tun.poll(kernel, queue, 64, got.append)
    assert len(got) == 1
    skb = got[0]
    row = (skb.len, skb.data_len, skb.truesize, skb.nr_frags)
    if free:
        kfree_skb(kernel, skb)
        return row
    return row, skb


def _close(kernel, queue):
    tun.close_queue(kernel, queue)
    assert queue.tfile.sk.freed
    kernel.assert_no_leaks()


# -- route B: tun_build_skb ----------------------------------------------------------------

# L=60:   ALIGN(124, 64) = 128, buflen 448, truesize 704.
# L=1514: ALIGN(1578, 64) = 1600, buflen 1920, truesize 2176.
# L=3456: ALIGN(3520, 64) = 3520, buflen 3840, truesize 4096 (the largest: 3456+64+256 = 3776, +320 = 4096).
@pytest.mark.parametrize("length,truesize", [(60, 704), (1514, 2176), (3456, 4096)])
def test_build_skb_route_same_in_every_release(release, length, truesize):
    kernel = Kernel(_profile(release))
    queue = _open(kernel, write="nonblock")
    assert _write(kernel, queue, length) == (length - 14, 0, truesize, 0)
    assert queue.last_path == "tun_build_skb"
    _close(kernel, queue)


def test_build_skb_limit_is_3456():
    # 3457: SKB_DATA_ALIGN(3457 + 64 + 256) = 3840, + 320 = 4160 > 4096: tun_alloc_skb even though non-blocking;
    # head 64 + 3457 = 3521 -> ALIGN 3584 + 320 = 3904 -> kmalloc-4k -> 4096 + 256 = 4352.
    kernel = Kernel("6.18")
    queue = _open(kernel, write="nonblock")
    assert queue.config["build_skb_max_len"] == 3456
    assert _write(kernel, queue, 3456)[2] == 4096
    assert queue.last_path == "tun_build_skb"
    assert _write(kernel, queue, 3457) == (3443, 0, 4352, 0)
    assert queue.last_path == "tun_alloc_skb"
    _close(kernel, queue)


def test_task_frag_block_capacity_and_reuse():
    # The writer's page_frag is an order-3 (32 KiB) block.  60-B frames take buflen 448 each (already a
    # multiple of 64): 32768 // 448 = 73 buffers fit while the skbs are held; the 74th needs a new block and
    # the old one is given up (put_page; the held skbs keep it alive).
    kernel = Kernel("6.18")
    queue = _open(kernel, write="nonblock")
    held = []
    for _ in range(73):
        held.append(_write(kernel, queue, 60, free=False)[1])
    pfrag = queue.task.task_frag
    assert (pfrag.refills, pfrag.releases, pfrag.offset) == (1, 0, 73 * 448)
    assert pfrag.page.order == 3 and pfrag.page.refcount == 1 + 73
    held.append(_write(kernel, queue, 60, free=False)[1])
    assert (pfrag.refills, pfrag.releases, pfrag.offset) == (2, 1, 448)
    for skb in held:
        kfree_skb(kernel, skb)
    # Every skb of the current block is freed: refcount back to 1, so the next write reuses it from 0.
    _write(kernel, queue, 1514)
    assert (pfrag.refills, pfrag.reuses, pfrag.offset) == (2, 1, 1920)
    assert queue.stats.buffers_reused == 1 and queue.stats.buffers_released == 1
    _close(kernel, queue)


def test_task_frag_holds_17_full_size_frames():
    # 1514-B frames: buflen 1920; 32768 // 1920 = 17 (17 * 1920 = 32640).
    kernel = Kernel("6.9")
    queue = _open(kernel, write="nonblock")
    held = [_write(kernel, queue, 1514, free=False)[1] for _ in range(17)]
    assert queue.task.task_frag.refills == 1
    held.append(_write(kernel, queue, 1514, free=False)[1])
    assert queue.task.task_frag.refills == 2
    for skb in held:
        kfree_skb(kernel, skb)
    _close(kernel, queue)


def test_tunsetsndbuf_disables_build_skb():
    # Any sk_sndbuf other than INT_MAX: tun_can_build_skb() is false, a 60-B non-blocking write takes
    # tun_alloc_skb: head 124 -> 448 -> small head 576 (live cfg) -> 832 (measured live: 832, not 704).
    kernel = Kernel(_profile("live-cfg"))
    queue = _open(kernel, write="nonblock", sndbuf=1_000_000)
    assert _write(kernel, queue, 60) == (46, 0, 832, 0)
    assert queue.last_path == "tun_alloc_skb"
    _close(kernel, queue)


# -- route A: tun_alloc_skb ----------------------------------------------------------------

# L=60: header 124 -> SKB_HEAD_ALIGN 448: 6.1 kmalloc-512 -> 768; 6.9 small head 640 -> 896;
#   6.12/6.18 704 -> 960; live cfg 576 -> 832.
# L=1514: header 1578 -> 1920 -> kmalloc-2k -> 2304 (all).
# L=3456: header 3520 -> 3840 -> kmalloc-4k -> 4352 (all).
# L=4000: 64 + 4000 = 4064 < 4096: all linear; 4064 -> 4096 + 320 = 4416 -> kmalloc-8k -> 8448 (all).
# L=9000: 6.1: all linear, 9064 -> 9088 + 320 = 9408 -> order-2 pages (16384) -> 16640.
#   6.6+: linear 3712 (head 3776 -> 4096 -> 4352) + 5288 B: PAGE_ALIGN 8192, order 3 -> 2 -> 1 (8192 is not
#   < 8192): one order-1 block, truesize 4352 + 8192 = 12544 (measured live: 12544, data_len 5288).
# L=20000: 6.1: 20064 -> 20096 + 320 = 20416 -> order-3 (32768) -> 33024.
#   6.6+: 4352 + 16288 B: PAGE_ALIGN 16384 -> order 2 -> 4352 + 16384 = 20736 (measured live: 20736).
# L=65535: 6.1: 65599 -> 65600 + 320 = 65920 -> order 5 (131072) -> 131328.
#   6.6+: rest 61823: PAGE_ALIGN 65536 >= 32768, order 3 block (32768); rest 29055: PAGE_ALIGN 32768, order 3
#   again (29055 B); 4352 + 2 * 32768 = 69888, 2 frags.
BLOCKING = {
    60: {"6.1": 768, "6.9": 896, "6.12": 960, "6.18": 960, "7.1": 960, "live-cfg": 832},
    1514: 2304,
    3456: 4352,
    4000: 8448,
}
LARGE = {
    "6.1": {9000: (0, 16640, 0), 20000: (0, 33024, 0), 65535: (0, 131328, 0)},
    "6.6+": {9000: (5288, 12544, 1), 20000: (16288, 20736, 1), 65535: (61823, 69888, 2)},
}


@pytest.mark.parametrize("length", sorted(BLOCKING))
@pytest.mark.parametrize("write", ["block", "nonblock-over-sndbuf"])
def test_alloc_skb_route_small_frames(release, length, write):
    kernel = Kernel(_profile(release))
    options = {"write": "block"} if write == "block" else {"write": "nonblock", "sndbuf": 100_000_000}
    queue = _open(kernel, **options)
    expected = BLOCKING[length]
    truesize = expected[release] if isinstance(expected, dict) else expected
    assert _write(kernel, queue, length) == (length - 14, 0, truesize, 0)
    assert queue.last_path == "tun_alloc_skb"
    _close(kernel, queue)


@pytest.mark.parametrize("length", [9000, 20000, 65535])
def test_alloc_skb_route_large_frames(release, length):
    kernel = Kernel(_profile(release))
    queue = _open(kernel, write="nonblock")  # too long for tun_build_skb: tun_alloc_skb even non-blocking
    data_len, truesize, nr_frags = LARGE["6.1" if release == "6.1" else "6.6+"][length]
    assert _write(kernel, queue, length) == (length - 14, data_len, truesize, nr_frags)
    _close(kernel, queue)


def test_linear_boundary_4031_4032():
    # 64 + 4031 = 4095 < PAGE_SIZE: all linear, 4095 -> 4096 + 320 = 4416 -> 8k -> 8448.
    # 4032: 64 + 4032 = 4096 is not < 4096; 6.6+: linear 3712 (-> 4352) + 320 B in one order-0 page: 8448, 1 frag;
    # 6.1: all linear, 4096 -> 4416 -> 8448, no frag.
    for name, frags_4032 in (("6.1", 0), ("6.9", 1), ("6.18", 1)):
        kernel = Kernel(name)
        queue = _open(kernel, write="block")
        assert _write(kernel, queue, 4031) == (4017, 0, 8448, 0)
        assert _write(kernel, queue, 4032) == (4018, 320 if frags_4032 else 0, 8448, frags_4032)
        _close(kernel, queue)


def test_alloc_skb_with_frags_frag_limit_per_release():
    # 17 order-0 pages (data_len 17 * 4096 = 69632 = MAX_SKB_FRAGS * PAGE_SIZE, so not refused up front):
    #   6.9 stops at MAX_SKB_FRAGS - 1 = 16 filled frags with data left: failure (-ENOBUFS);
    #   6.12.117 / 6.18 allow 17: head 124 -> 448 (small head 640/704) + 17 * 4096;
    #   6.1 (npages form): 17 pages <= 17, truesize += 17 * 4096 up front; head 448 -> kmalloc-512.
    expected = {"6.1": 512 + 256 + 69632, "6.9": None, "6.12": 704 + 256 + 69632, "6.18": 704 + 256 + 69632,
                "7.1": 704 + 256 + 69632}
    for name, truesize in expected.items():
        kernel = Kernel(name)
        skb, err = alloc_skb_with_frags(kernel, 124, 17 * 4096, 0, GFP_KERNEL)
        if truesize is None:
            assert skb is None and err == -105
        else:
            assert err == 0 and skb.truesize == truesize and skb.nr_frags == 17
            kfree_skb(kernel, skb)
        # One byte more than 17 pages: refused before anything is allocated (-EMSGSIZE).
        assert alloc_skb_with_frags(kernel, 124, 17 * 4096 + 1, 0, GFP_KERNEL) == (None, -90)
        kernel.assert_no_leaks()


def test_npages_form_uses_high_order_pages():
    # 6.1 form with max_page_order 3 and 10 pages of data: one order-3 block (8 pages), then 2 order-0
    # pages (npages 2 < 8, < 4, and 2 >= 2 gives order 1: one order-1 block); truesize += 10 * 4096 regardless.
    kernel = Kernel("6.1")
    skb, err = alloc_skb_with_frags(kernel, 124, 10 * 4096, 3, GFP_KERNEL)
    assert err == 0
    assert [frag.page.order for frag in skb.shinfo.frags] == [3, 1]
    assert [frag.size for frag in skb.shinfo.frags] == [32768, 8192]
    assert skb.truesize == 768 + 40960
    kfree_skb(kernel, skb)
    kernel.assert_no_leaks()


# -- route C: IFF_NAPI ------------------------------------------------------------------------


@pytest.mark.parametrize("write,length,truesize", [
    ("nonblock", 60, 704), ("nonblock", 1514, 2176), ("block", 60, 832), ("block", 1514, 2304),
    ("nonblock", 4000, 8448), ("block", 9000, 12544),
])
def test_napi_route_same_skbs(write, length, truesize):
    # Measured live with IFF_NAPI: non-blocking 704 / 2176 / 8448 / 12544; blocking 832 / 2304 / 8448 / 12544.
    kernel = Kernel(_profile("live-cfg"))
    queue = _open(kernel, write=write, napi=1)
    assert _write(kernel, queue, length)[2] == truesize
    assert queue.config["event"] == "napi_gro_receive_entry"
    _close(kernel, queue)


def test_napi_poll_budget_and_requeue():
    # tun_napi_receive() hands at most budget skbs to napi_gro_receive() and puts the rest back in order;
    # tun_napi_poll() completes (unschedules) only when it did less than budget.
    kernel = Kernel("6.18")
    queue = _open(kernel, write="nonblock", napi=1)
    for length in range(60, 160):
        assert tun.nic_receive(kernel, queue, make_frame(length))
    assert queue.tfile.napi_scheduled
    got = []
    with kernel.softirq():
        assert tun.poll(kernel, queue, 64, got.append) == 64
        assert queue.tfile.napi_scheduled and tun.pending(kernel, queue)
        assert tun.poll(kernel, queue, 64, got.append) == 36
    assert not queue.tfile.napi_scheduled and not tun.pending(kernel, queue)
    assert [skb.len + 14 for skb in got] == list(range(60, 160))
    for skb in got:
        kfree_skb(kernel, skb)
    _close(kernel, queue)


# -- route D: IFF_NAPI_FRAGS --------------------------------------------------------------------

# napi_get_frags() -> napi_alloc_skb(GRO_MAX_HEAD): 6.1/6.9/6.12: GRO_MAX_HEAD 304 + 64 = 368 <= 704
# (SKB_WITH_OVERHEAD(1024)): a 1K frag, truesize SKB_TRUESIZE(704) = 1280, tailroom 704 - 64 = 640.
# 6.18 distro: 368 <= 384 (small-head headroom 704 - 320): small head 704 -> 960, tailroom 320.
# live cfg: 160 + 64 = 224 <= 256: small head 576 -> 832, tailroom 192.
# A longer linear part: pskb_expand_head(0, L - tailroom): new head SKB_HEAD_ALIGN(end + L - tailroom
# = 64 + L), truesize += new end - old end.  L = 1514: 1578 -> 1920 -> 2048, end 1728:
#   6.1: 1280 + 1728 - 704 = 2304; 6.18: 960 + 1728 - 384 = 2304.
# L = 9000: 9064 -> 9408 -> order-2 pages (16384), end 16064: 6.1: 1280 + 16064 - 704 = 16640.
@pytest.mark.parametrize("name,length,truesize", [
    ("6.1", 60, 1280), ("6.9", 60, 1280), ("6.12", 60, 1280), ("6.18", 60, 960), ("7.1", 60, 960),
    ("live-cfg", 60, 832),
    ("6.1", 1514, 2304), ("6.18", 1514, 2304), ("live-cfg", 1514, 2304), ("6.1", 9000, 16640),
    ("live-cfg", 4000, 8448),
])
def test_napi_frags_route(name, length, truesize):
    kernel = Kernel(_profile(name))
    queue = _open(kernel, napi=1, frags=1)
    assert _write(kernel, queue, length) == (length - 14, 0, truesize, 0)
    assert queue.tfile.sk.charged == 0  # tun_napi_alloc_frags() does not charge the socket
    _close(kernel, queue)


def test_napi_frags_tailroom_edge_and_segments():
    # live cfg: tailroom 192.  L = 192 fits: 832.  L = 193: pskb_expand_head(0, 1): end 256 + 1 = 257 ->
    # SKB_HEAD_ALIGN 320 + 320 = 640 > 576, kmalloc-1k (1024), end 704: 832 + 704 - 256 = 1280.
    kernel = Kernel(_profile("live-cfg"))
    queue = _open(kernel, napi=1, frags=1)
    assert _write(kernel, queue, 192)[2] == 832
    assert _write(kernel, queue, 193)[2] == 1280
    # writev of [64, 1450]: 64 linear bytes fit the tailroom; 1450 B in a netdev_alloc_frag piece;
    # truesize 832 + 1450 (data_len only) = 2282.
    with kernel.on_cpu(0):
        written, route, _ = tun.tun_get_user(kernel, queue.tun, queue.tfile, queue.task, 1514, b"\xff" * 12 + b"\x88\xb5",
                                             True, segments=[64, 1450])
    assert (written, route) == (1514, "tun_napi_alloc_frags")
    got = []
    with kernel.softirq():
        tun.poll(kernel, queue, 64, got.append)
    (skb,) = got
    assert (skb.len, skb.data_len, skb.truesize, skb.nr_frags) == (1500, 1450, 2282, 1)
    kfree_skb(kernel, skb)
    # Too long for IFF_NAPI_FRAGS: 65535 > 65535 - 64.
    assert not tun.nic_receive(kernel, queue, make_frame(65472))
    assert queue.write_errors["EMSGSIZE"] == 1
    _close(kernel, queue)


# -- socket accounting, errors, options ---------------------------------------------------------


def test_wmem_charged_until_handed_to_the_stack():
    kernel = Kernel("6.18")
    queue = _open(kernel, write="nonblock", napi=1)
    sk = queue.tfile.sk
    assert tun.nic_receive(kernel, queue, make_frame(1514))
    assert sk_wmem_alloc_get(sk) == 2176  # skb_set_owner_w: buflen 1920 + 256
    got = []
    with kernel.softirq():
        tun.poll(kernel, queue, 64, got.append)
    assert sk_wmem_alloc_get(sk) == 0 and got[0].sk is None  # orphaned as ip_rcv_core() would
    kfree_skb(kernel, got[0])
    # An skb freed while still in the driver gives its charge back through sock_wfree().
    assert tun.nic_receive(kernel, queue, make_frame(60))
    assert sk_wmem_alloc_get(sk) == 704
    tun.close_queue(kernel, queue)
    assert sk.sk_wmem_alloc == 0 and sk.freed
    kernel.assert_no_leaks()


def test_small_sndbuf_refuses_writes_over_it():
    # sock_alloc_send_pskb() proceeds only while sk_wmem_alloc_get() < sk_sndbuf: with sndbuf 3000 and
    # 1514-B skbs of 2304 queued on the NAPI write queue: 0 < 3000 ok, 2304 < 3000 ok, 4608 >= 3000 refused.
    kernel = Kernel("6.18")
    queue = _open(kernel, write="block", napi=1, sndbuf=3000)
    assert [tun.nic_receive(kernel, queue, make_frame(1514)) for _ in range(3)] == [True, True, False]
    assert queue.write_errors["EAGAIN"] == 1
    got = []
    with kernel.softirq():
        tun.poll(kernel, queue, 64, got.append)
    assert tun.nic_receive(kernel, queue, make_frame(1514))
    for skb in got:
        kfree_skb(kernel, skb)
    _close(kernel, queue)


def test_short_frame_is_refused():
    kernel = Kernel("6.18")
    queue = _open(kernel)
    assert not tun.nic_receive(kernel, queue, make_frame(13))
    assert queue.write_errors["EINVAL"] == 1 and queue.stats.frames_dropped == 1
    # 14 bytes: header 78 -> SKB_HEAD_ALIGN 448 <= 704: small head -> 960; nothing left after the pull.
    assert _write(kernel, queue, 14) == (0, 0, 960, 0)
    _close(kernel, queue)


@pytest.mark.parametrize("options,message", [
    ({"frags": "1"}, "frags=1 needs napi=1"),
    ({"write": "fast"}, "write"),
    ({"sndbuf": "0"}, "sndbuf"),
    ({"napi": "2"}, "napi"),
    ({"mtu": "1500"}, "unknown option"),
])
def test_bad_options(options, message):
    kernel = Kernel("6.18")
    with pytest.raises(InputError, match=message):
        tun.open_queue(kernel, net_device("tap0"), napi_struct(net_device("tap0")), options)


def test_stats_and_defaults():
    kernel = Kernel("6.9")
    queue = _open(kernel)
    assert queue.config["write"] == "block" and queue.config["sndbuf"] == INT_MAX
    assert queue.config["good_linear"] == 3712
    _write(kernel, queue, 9000)
    stats = tun.stats(queue)
    assert stats["route_tun_alloc_skb"] == 1 and stats["nic_frames"] == 1 and stats["frames"] == 1
    assert stats["bytes_copied"] == 9000 and stats["pages_allocated"] == 1  # one order-1 block
    _close(kernel, queue)


def test_page_frag_refill_order0_fallback():
    # net.core.high_order_alloc_disable (or a refused order-3 block): a single 4096-byte page.  60-B
    # buffers of 448 bytes: 4096 // 448 = 9 fit (9 * 448 = 4032); the 10th needs a new page.
    from skbsim.net.core_sock import page_frag, page_frag_release, skb_page_frag_refill

    kernel = Kernel("6.18")
    pfrag = page_frag()
    for n in range(9):
        assert skb_page_frag_refill(kernel, 448, pfrag, GFP_KERNEL, high_order_alloc_disable=True)
        assert (pfrag.size, pfrag.page.order, pfrag.offset) == (4096, 0, n * 448)
        kernel.pages.get_page(pfrag.page)  # an skb's reference, as __tun_build_skb() takes
        pfrag.offset += 448
    first = pfrag.page
    assert skb_page_frag_refill(kernel, 448, pfrag, GFP_KERNEL, high_order_alloc_disable=True)
    assert pfrag.page is not first and pfrag.releases == 1 and first.refcount == 9
    for _ in range(9):
        kernel.pages.put_page(first)
    page_frag_release(kernel, pfrag)
    kernel.assert_no_leaks()


# -- every length: the model against closed forms written from the macros -------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# skbuff_small_head object size per release (see the module docstring); None: no such cache (6.1).
SMALL_HEAD = {"6.1": None, "6.9": 640, "6.12": 704, "6.18": 704, "7.1": 704, "live-cfg": 576}


def _align64(x):
    return (x + 63) & ~63


def _kmalloc_head(release, data):
    """Allocated size of a kmalloc_reserve() head for data bytes: small head, kmalloc-2^n, or pages."""
    obj = _align64(data) + 320
    if SMALL_HEAD[release] and obj <= SMALL_HEAD[release]:
        return SMALL_HEAD[release]
    size = 512  # obj >= 384 here, so the kmalloc-96/192/256 classes never serve it
    while size < obj:
        size *= 2
    return size  # above 8 KiB kmalloc takes whole pages: 4096 << get_order(obj), the same power of two


def _expected(release, length, nonblock):
    """(data_len, truesize, nr_frags) for a write of length bytes, from the formulas in the docstring."""
    if nonblock and _align64(length + 64 + 256) + 320 <= 4096:
        return 0, _align64(length + 64) + 320 + 256, 0
    if release == "6.1" or 64 + length < 4096:
        return 0, _kmalloc_head(release, 64 + length) + 256, 0
    truesize, rest, order, frags = _kmalloc_head(release, 64 + 3712) + 256, length - 3712, 3, 0
    data_len = rest
    while rest:
        while order and ((rest + 4095) & ~4095) < (4096 << order):
            order -= 1
        truesize += 4096 << order
        rest -= min(rest, 4096 << order)
        frags += 1
    return data_len, truesize, frags


@settings(max_examples=150, deadline=None)
@given(release=st.sampled_from(RELEASES), nonblock=st.booleans(), napi=st.booleans(),
       lengths=st.lists(st.integers(14, 65535), min_size=1, max_size=8))
def test_every_length_matches_the_closed_form(release, nonblock, napi, lengths):
    kernel = Kernel(_profile(release))
    queue = _open(kernel, write="nonblock" if nonblock else "block", napi=int(napi))
    for length in lengths:
        assert _write(kernel, queue, length) == (length - 14, *_expected(release, length, nonblock)), length
    _close(kernel, queue)
