"""The page_pool drivers (mlx5, bnxt, mana, libeth/iavf/idpf, gve, ice's page_pool form): hand-derived skbs.

Every expected truesize below is worked out by hand from the driver function
named beside it, on the x86_64 built-ins: SKB_DATA_ALIGN(sizeof(struct
sk_buff)) = 256, SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) = 320
(write S = 320), NET_SKB_PAD 64, NET_IP_ALIGN 0, 4K pages.  So:

- napi_build_skb(data, frag_size) / build_skb(): truesize = frag_size + 256;
- napi_alloc_skb(len) (net/core/skbuff.c): len + 64 <= 704 -> the 1K
  fragment, truesize 1280 (6.1, 6.9, 6.12); in 6.18 len + 64 <= 384 -> the
  704-byte skbuff_small_head, truesize 960;
- skb_add_rx_frag(..., truesize) adds the driver's truesize for the frag.

"One buffer", "multi-buffer" and "copied" follow the issue's wording: a frame
in one RX buffer, a frame spread over several, a frame copied into a fresh
small skb.  A driver without one of them says so in a comment.  These
drivers cannot be checked against hardware here; the derivations are the
check.
"""

from __future__ import annotations

import json

import pytest

from skbsim.cli import main
from skbsim.profile import load_profile
from skbsim.rx import receive_one
from skbsim.sim import RunConfig, simulate


def rx(release, driver, frame_len, **options):
    r = receive_one(release, driver, {k: str(v) for k, v in options.items()}, frame_len)
    assert r["leak_check"] == "clean"
    return r


def shape(r):
    return (r["len"], r["data_len"], r["truesize"], r["nr_frags"])


# -- mlx5 (drivers/net/ethernet/mellanox/mlx5/core) -------------------------------------------------------------
#
# hw_mtu = mtu + 22 (MLX5E_SW2HW_MTU); headroom 64; MLX5_SKB_FRAG_SZ(x) = SKB_DATA_ALIGN(x) + 320.
# MTU 1500: MLX5_SKB_FRAG_SZ(64 + 1522) = 1600 + 320 = 1920 <= 4096: linear, stride roundup_pow_of_two(1920) = 2048.
# MTU 9000: MLX5_SKB_FRAG_SZ(64 + 9022) = 9408 > 4096: non-linear.
#   legacy (mlx5e_build_rq_frags_info()): fragments 1664 (SKB_WITH_OVERHEAD(2048 - 64)), 2048, 2048, and the
#   rest 9022 - 5760 = 3262; strides roundup_pow_of_two(1664 + 64 + 320) = 2048, 2048, 2048, 4096.
#   striding: 256-byte strides (MLX5_MPWRQ_DEF_LOG_STRIDE_SZ = order_base_2(MLX5E_RX_MAX_HEAD)).

MLX5_CASES = [
    # One buffer, MTU 1500, 1514-byte frame - mlx5e_skb_from_cqe_mpwrq_linear() / mlx5e_skb_from_cqe_linear():
    # frag_size = MLX5_SKB_FRAG_SZ(64 + 1514) = SKB_DATA_ALIGN(1578) + 320 = 1600 + 320 = 1920; truesize 2176.
    ("6.18", dict(rq="striding"), 1514, (1500, 0, 2176, 0), "mlx5e_skb_from_cqe_mpwrq_linear"),
    ("6.1", dict(rq="legacy"), 1514, (1500, 0, 2176, 0), "mlx5e_skb_from_cqe_linear"),
    # ... and a 64-byte frame: MLX5_SKB_FRAG_SZ(128) = 128 + 320 = 448, truesize 704 - the frame, not the
    # 2048-byte stride it sits in, sets truesize.
    ("6.9", dict(rq="striding"), 64, (50, 0, 704, 0), "mlx5e_skb_from_cqe_mpwrq_linear"),
    # One buffer at MTU 9000, legacy RQ, 1514 bytes: only fragment 0 (1664 bytes) is used;
    # mlx5e_skb_from_cqe_nonlinear() builds on it with frame0_sz = its stride 2048: truesize 2304.
    ("6.12", dict(rq="legacy", mtu=9000), 1514, (1500, 0, 2304, 0), "mlx5e_skb_from_cqe_nonlinear"),
    # Multi-buffer, MTU 9000, legacy RQ, 9014 bytes: 1664 in the head, then frags 2048, 2048 and
    # 9014 - 5760 = 3254 with truesize = their strides 2048, 2048, 4096: 2304 + 8192 = 10496.
    # len 9000 and data_len 2048 + 2048 + 3254 = 7350 after eth_type_trans() pulls 14 from the head.
    ("6.9", dict(rq="legacy", mtu=9000), 9014, (9000, 7350, 10496, 3), "mlx5e_skb_from_cqe_nonlinear"),
    # Multi-buffer, MTU 9000, striding RQ, 9014 bytes at stride 0 - mlx5e_skb_from_cqe_mpwrq_nonlinear():
    # headlen min(256, 9014) = 256 copied into napi_alloc_skb(256) (6.1-6.12: 1K fragment, 1280); the rest
    # from offset 256: 3840 in page 0, 4096 in page 1, 822 in page 2, truesize ALIGN(each, 256) = 3840 +
    # 4096 + 1024 = 8960; total 10240.  6.18: head 960, total 9920.  data_len 8758.
    ("6.12", dict(rq="striding", mtu=9000), 9014, (9000, 8758, 10240, 3), "mlx5e_skb_from_cqe_mpwrq_nonlinear"),
    ("6.18", dict(rq="striding", mtu=9000), 9014, (9000, 8758, 9920, 3), "mlx5e_skb_from_cqe_mpwrq_nonlinear"),
    # Copied, MTU 9000 striding, 200 bytes: headlen = 200, all of it copied into napi_alloc_skb(256), no frag:
    # 1280 (6.1-6.12), 960 (6.18).
    ("6.1", dict(rq="striding", mtu=9000), 200, (186, 0, 1280, 0), "mlx5e_skb_from_cqe_mpwrq_nonlinear"),
    ("6.18", dict(rq="striding", mtu=9000), 200, (186, 0, 960, 0), "mlx5e_skb_from_cqe_mpwrq_nonlinear"),
    # MTU 1500 has no copy (linear skbs) and no multi-buffer frame (rxmax 1518).
]


@pytest.mark.parametrize("release,options,frame_len,expected,builder", MLX5_CASES)
def test_mlx5(release, options, frame_len, expected, builder):
    r = rx(release, "mlx5", frame_len, **options)
    assert shape(r) == expected
    assert r["driver_path"] == builder


# -- mana (drivers/net/ethernet/microsoft/mana/mana_en.c) -------------------------------------------------------
#
# MANA_RXBUF_PAD = 320 + 14 = 334; MANA_XDP_MTU_MAX = 4096 - 334 - 256 = 3506; mana_build_skb():
# napi_build_skb(buf, alloc_size): truesize alloc_size + 256.  One buffer per frame: mana has no
# multi-buffer frame and copies nothing.

MANA_CASES = [
    # 6.12 (and 6.1.192's backport) mana_get_rxbuf_cfg(): MTU 1500 -> headroom 256, SKB_DATA_ALIGN(1500 +
    # 334 + 256 = 2090) = 2112, raised to PAGE_SIZE: alloc_size 4096, truesize 4352 for any frame.
    ("6.12", 1500, 1514, 4352), ("6.1", 1500, 60, 4352),
    # MTU 9000 > 3506: headroom 0, SKB_DATA_ALIGN(9334) = 9344 (an order-2 page_pool page), truesize 9600.
    ("6.12", 9000, 9014, 9600),
    # v6.9: alloc_size = 1500 + 334 + 256 = 2090, not rounded: truesize 2346 on a whole 4K page; MTU 9000:
    # 9334 from napi_alloc_frag(), truesize 9590.
    ("6.9", 1500, 1514, 2346), ("6.9", 9000, 9014, 9590),
    # 6.18: MTU 1500 fits half a page (1500 + 334 <= 2048): fragments of ALIGN(SKB_DATA_ALIGN(1834) = 1856,
    # 64) = 1856, two per page; truesize 2112.  MTU 9000: a whole order-2 page, alloc_size = 16384: 16640.
    ("6.18", 1500, 1514, 2112), ("6.18", 9000, 9014, 16640),
]


@pytest.mark.parametrize("release,mtu,frame_len,truesize", MANA_CASES)
def test_mana(release, mtu, frame_len, truesize):
    r = rx(release, "mana", frame_len, mtu=mtu)
    assert (r["truesize"], r["nr_frags"], r["driver_path"]) == (truesize, 0, "mana_rx_skb")


def test_mana_6_18_two_fragments_per_page():
    """page_pool_dev_alloc_frag(1856) twice fills 3712 of a page; the third takes a new one (3712 + 1856 > 4096)."""
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.drivers import mana

    kernel = Kernel("6.18")
    rxq = mana.DRIVER.open_queue(kernel, net_device("eth0"), napi_struct(net_device("eth0")), {"ring": "128"})
    addrs = [oob.buf_va for oob in rxq.rx_oobs[:4]]
    pages = [kernel.pages.virt_to_head_page(a) for a in addrs]
    offsets = [a - kernel.pages.page_address(p) for a, p in zip(addrs, pages)]
    assert offsets == [0, 1856, 0, 1856] and pages[0] is pages[1] and pages[1] is not pages[2]
    mana.DRIVER.close_queue(kernel, rxq)
    kernel.assert_no_leaks()



def test_mana_6_18_fragments_on_64k_pages_match_the_commit_message(tmp_path):
    """'net: mana: Use page pool fragments for RX buffers instead of full pages to improve memory efficiency.'
    (730ff06d3f5c) says: "We are now able to fit 35 rx buffers in a single 64kb page for MTU size of 1500".
    By hand (arm64, 64K pages, CONFIG_MAX_SKB_FRAGS 17: shinfo 320, L1 64): MANA_RXBUF_PAD = 320 + 14 = 334;
    mana_get_rxbuf_cfg(): ALIGN(SKB_DATA_ALIGN(1500 + 334) = 1856, 64) = 1856, frag_count 65536 // 1856 = 35."""
    from skbsim.drivers.mana import mana_get_rxbuf_cfg

    path = tmp_path / "arm64-64k.config"
    path.write_text("CONFIG_ARM64=y\nCONFIG_ARM64_64K_PAGES=y\nCONFIG_PAGE_SIZE_64KB=y\nCONFIG_PAGE_SHIFT=16\n"
                    "CONFIG_ARCH_FORCE_MAX_ORDER=13\nCONFIG_MAX_SKB_FRAGS=17\n")
    assert mana_get_rxbuf_cfg(load_profile("6.18", str(path)), 1500) == (1514, 1856, 0, 35)


# -- libeth: iavf, idpf (drivers/net/ethernet/intel/libeth/rx.c) --------------------------------------------------
#
# LIBETH_SKB_HEADROOM 64, LIBETH_RX_BUF_STRIDE 128, LIBETH_RX_PAGE_LEN(64) = ALIGN_DOWN(4096 - 64 - 320, 128)
# = 3712 (the commit 'libeth: add Rx buffer management' says: at most 3712 bytes of linear frame w/o XDP).
# libeth_rx_page_pool_params(): MTU 1500 -> buf_len ALIGN(1500 + 26, 128) = 1536, truesize
# roundup_pow_of_two(SKB_HEAD_ALIGN(64 + 1536) = 1600 + 320) = 2048 ("each page is shared between 2
# buffers", same commit); MTU 9000 -> buf_len min(9088, 3712) = 3712, truesize roundup(3776 + 320) = 4096.
# iavf_build_skb(): napi_build_skb(va, truesize) -> truesize + 256; iavf_add_rx_frag(): + truesize.
# No copy in these drivers.

LIBETH_CASES = [
    # One buffer: 2048 + 256 = 2304 (MTU 1500); 4096 + 256 = 4352 (MTU 9000, a 1514 frame).
    ("6.12", dict(nic="iavf"), 1514, (1500, 0, 2304, 0)),
    ("6.18", dict(nic="iavf", mtu=9000), 1514, (1500, 0, 4352, 0)),
    # Multi-buffer, MTU 9000, 9014 bytes in 3712 + 3712 + 1590: 4352 + 4096 + 4096 = 12544, data_len 5302.
    ("6.18", dict(nic="iavf", mtu=9000), 9014, (9000, 5302, 12544, 2)),
    # idpf's short buffer queue (idpf_rx_bufs_init_all(): half the MTU queue's truesize asked for):
    # MTU 1500 -> 1024 asked; libeth_rx_hw_len_truesize(): ALIGN_DOWN(SKB_WITH_OVERHEAD(1024 - 64), 128) =
    # 640, truesize roundup(SKB_HEAD_ALIGN(64 + 640)) = 1024.  A 100-byte frame fits: 1024 + 256 = 1280.
    ("6.12", dict(nic="idpf"), 100, (86, 0, 1280, 0)),
    # MTU 9000: 2048 asked, buf_len ALIGN_DOWN(2048 - 64 - 320, 128) = 1664, truesize 2048: a 1514 frame
    # goes to the short queue: 2304.
    ("6.18", dict(nic="idpf", mtu=9000), 1514, (1500, 0, 2304, 0)),
    # idpf header split (libeth_rx_page_pool_params_zc(): payload buffers roundup_pow_of_two(9000) clamped to
    # 4096, no headroom; header buffers LIBETH_FQE_HDR: buf_len ALIGN(256, 128) = 256, truesize
    # roundup(SKB_HEAD_ALIGN(64 + 256) = 640) = 1024).  9014 bytes: 42 of headers in the header buffer
    # (1024 + 256 = 1280), 8972 in 4096 + 4096 + 780 (truesize 4096 each): 13568.
    ("6.12", dict(nic="idpf", mtu=9000, hsplit="on"), 9014, (9000, 8972, 13568, 3)),
]


@pytest.mark.parametrize("release,options,frame_len,expected", LIBETH_CASES)
def test_libeth(release, options, frame_len, expected):
    assert shape(rx(release, "libeth", frame_len, **options)) == expected


def test_libeth_is_missing_before_6_10(capsys):
    assert main(["rx", "--kernel", "6.9", "--driver", "libeth", "--frame-len", "100"]) == 2
    assert "has no libeth" in capsys.readouterr().err


# -- ice's page_pool form: the 7.1 built-in (7.1.3's ice_rxq_pp_create(): ice_rx_buffers = "libeth") ----------------


@pytest.fixture
def ice_pp_profile():
    return "7.1"


def test_ice_page_pool_form(ice_pp_profile, capsys):
    # libeth MTU buffers as above: 1514 -> 2304; MTU 9000, 9014 -> 12544 (ice_clean_rx_irq() ->
    # xdp_build_skb_from_buff(): napi_build_skb(hard_start, frame_sz = truesize), frags with their truesize).
    assert shape(rx(ice_pp_profile, "ice", 1514)) == (1500, 0, 2304, 0)
    assert shape(rx(ice_pp_profile, "ice", 9014, mtu=9000)) == (9000, 5302, 12544, 2)
    r = rx(ice_pp_profile, "ice", 1514)
    assert r["driver_path"] == "xdp_build_skb_from_buff" and r["options"]["rxmax"] == 7680   # min(9728, 5 * 1536)
    # No legacy-rx in the page_pool form: one line, exit 2.
    assert main(["rx", "--kernel", ice_pp_profile, "--driver", "ice", "--opt", "rx=legacy", "--frame-len", "60"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_ice_page_pool_form_leaves_out_skbsims_legacy_default(ice_pp_profile, capsys):
    """skbsim's own ice default (rx=legacy) is for releases that have the legacy-rx flag: the page_pool form
    starts from the kernel's defaults in rx, run and the API, while an explicit rx=legacy stays an error."""
    import skbsim

    assert main(["rx", "--kernel", ice_pp_profile, "--driver", "ice", "--frame-len", "1514", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["truesize"] == 2304
    assert skbsim.receive(1514, kernel=ice_pp_profile)["truesize"] == 2304
    assert main(["run", "--kernel", ice_pp_profile, "--kernel", "6.18", "--count", "200", "--quiet", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["options"] for r in runs] == [{}, {"rx": "legacy"}]


def test_ice_page_pool_form_runs_on_both_engines(ice_pp_profile, capsys):
    r, _ = simulate(RunConfig(kernel=ice_pp_profile, driver="ice", options={"rx": "build_skb"}, count=3000))
    assert r["leaks"]["clean"] and r["delivered"] == 3000 and "page_pool" in r
    from skbsim.fast.engine import simulate_engine, unsupported

    config = RunConfig(kernel=ice_pp_profile, driver="ice", options={"rx": "build_skb"}, count=3000)
    assert unsupported(config) is None  # libeth's queues are the fast engine's too
    fast, _, why = simulate_engine(config, "fast")
    assert why is None and fast["engine"] == "fast"
    assert {**fast, "engine": "reference"} == r


# -- bnxt (drivers/net/ethernet/broadcom/bnxt/bnxt.c) --------------------------------------------------------------
#
# bnxt_set_ring_params(): rx_size = SKB_DATA_ALIGN(mtu + 14 + 0 + 8); rx_buf_size = rx_size + ALIGN(max(64,
# 256), 8) + 320.  MTU 1500, tpa off: 1536 + 256 + 320 = 2112.  With the aggregation ring (tpa on, or MTU 9000
# where 9024 + 576 > 4096) the RX buffer is SKB_DATA_ALIGN(256) + 64 + 320 = 640 (6.18: hds_thresh =
# max(256, 1024 - 64 - 320) = 640, so 640 + 64 + 320 = 1024) and frames above the split threshold (256;
# 6.18: 640) leave their headers in it (42 bytes for Ethernet + IPv4 + UDP) and the rest in 4K aggregation
# pages, truesize BNXT_RX_PAGE_SIZE each (__bnxt_rx_agg_pages()).  A head part of at most 256 bytes is
# copied (bnxt_copy_skb(): napi_alloc_skb(len)).

BNXT_CASES = [
    # One buffer, MTU 1500, tpa off: bnxt_rx_skb() -> napi_build_skb(data, 2112): 2368 (6.1: build_skb).
    ("6.1", dict(tpa="off"), 1514, (1500, 0, 2368, 0), "bnxt_rx_skb"),
    ("6.18", dict(tpa="off"), 1514, (1500, 0, 2368, 0), "bnxt_rx_skb"),
    # Copied, 100 bytes <= 256: napi_alloc_skb(100): 1280 (6.1-6.12), 960 (6.18).
    ("6.12", dict(tpa="off"), 100, (86, 0, 1280, 0), "bnxt_copy_skb"),
    ("6.18", dict(tpa="off"), 100, (86, 0, 960, 0), "bnxt_copy_skb"),
    # Multi-buffer at MTU 1500 (tpa on, the default): 42 header bytes copied (1280), 1472 in one
    # aggregation page (+4096): 5376.  6.18: 960 + 4096 = 5056.
    ("6.9", {}, 1514, (1500, 1472, 5376, 1), "bnxt_copy_skb"),
    ("6.18", {}, 1514, (1500, 1472, 5056, 1), "bnxt_copy_skb"),
    # Multi-buffer, MTU 9000, 9014 bytes: 42 copied + 8972 in 4096 + 4096 + 780: 1280 + 3 * 4096 = 13568
    # (6.18: 13248).
    ("6.1", dict(mtu=9000), 9014, (9000, 8972, 13568, 3), "bnxt_copy_skb"),
    ("6.18", dict(mtu=9000), 9014, (9000, 8972, 13248, 3), "bnxt_copy_skb"),
    # One buffer at MTU 9000 on 6.18: a 600-byte frame is below hds_thresh 640, all of it in the 1024-byte RX
    # buffer, above the copybreak: napi_build_skb(data, 1024): 1280.
    ("6.18", dict(mtu=9000), 600, (586, 0, 1280, 0), "bnxt_rx_skb"),
    # Page mode (bnxt_rx_page_skb()): the headers (42) into napi_alloc_skb(42): 1280, the page attached with
    # BNXT_RX_PAGE_SIZE: 5376.
    ("6.12", dict(page_mode="on"), 1514, (1500, 1472, 5376, 1), "bnxt_rx_page_skb"),
]


@pytest.mark.parametrize("release,options,frame_len,expected,builder", BNXT_CASES)
def test_bnxt(release, options, frame_len, expected, builder):
    r = rx(release, "bnxt", frame_len, **options)
    assert shape(r) == expected
    assert r["driver_path"] == builder


def test_bnxt_copybreak_is_tunable_from_6_18(capsys):
    # rx-copybreak 1024 on 6.18, tpa off: a 1000-byte frame is copied: napi_alloc_skb(1000): 1000 + 64 = 1064
    # > 384 -> a page fragment of SKB_HEAD_ALIGN(1064) = 1088 + 320 = 1408, truesize 1664.
    assert shape(rx("6.18", "bnxt", 1000, tpa="off", copybreak=1024)) == (986, 0, 1664, 0)
    assert main(["rx", "--kernel", "6.12", "--driver", "bnxt", "--opt", "copybreak=512", "--frame-len", "60"]) == 2
    assert "fixed rx copy threshold" in capsys.readouterr().err


# -- gve (drivers/net/ethernet/google/gve/gve_rx_dqo.c) -------------------------------------------------------------
#
# 2048-byte packet buffers; gve_rx_dqo(): frames up to rx_copybreak 256 copied into napi_alloc_skb(len);
# longer ones become frags of napi_get_frags()'s skb = napi_alloc_skb(GRO_MAX_HEAD = 176 + 128 = 304):
# 304 + 64 = 368 <= 704 -> 1K fragment, 1280 (6.18: <= 384 -> small head, 960); each frag adds the buffer
# size 2048 (gve_rx_append_frags(), skb_add_rx_frag(..., buf_size)).

GVE_CASES = [
    # One buffer, 1514 bytes: 1280 + 2048 = 3328 (6.18: 960 + 2048 = 3008).
    ("6.1", {}, 1514, (1500, 1500, 3328, 1)),
    ("6.18", {}, 1514, (1500, 1500, 3008, 1)),
    # Copied, 100 bytes: napi_alloc_skb(100): 1280 / 960.
    ("6.12", {}, 100, (86, 0, 1280, 0)),
    ("6.18", {}, 100, (86, 0, 960, 0)),
    # Multi-buffer, MTU 9000, 9014 bytes in 4 x 2048 + 822: 1280 + 5 * 2048 = 11520 (6.18: 11200).
    ("6.9", dict(mtu=9000), 9014, (9000, 9000, 11520, 5)),
    ("6.18", dict(mtu=9000), 9014, (9000, 9000, 11200, 5)),
    # Header split (6.9+, 4096-byte buffers, gve_get_pkt_buf_size()): the 42 header bytes copied by
    # gve_rx_copy_data() into napi_alloc_skb(42) (1280 / 960), 8972 in 4096 + 4096 + 780: + 3 * 4096.
    ("6.12", dict(mtu=9000, hsplit="on"), 9014, (9000, 8972, 13568, 3)),
    ("6.18", dict(mtu=9000, hsplit="on"), 1514, (1500, 1472, 5056, 1)),
    # 7.1.3: the same default buffers (960 + 2048); ethtool -G rx-buf-len 4096 (gve_set_rx_buf_len_config(),
    # 2048 or 4096) without header split: 9014 in 4096 + 4096 + 822, 960 + 3 * 4096 = 13248.
    ("7.1", {}, 1514, (1500, 1500, 3008, 1)),
    ("7.1", dict(mtu=9000, rx_buf_len=4096), 9014, (9000, 9000, 13248, 3)),
]


@pytest.mark.parametrize("release,options,frame_len,expected", GVE_CASES)
def test_gve(release, options, frame_len, expected):
    assert shape(rx(release, "gve", frame_len, **options)) == expected


def test_gve_own_pages_move_to_the_other_half():
    """gve_try_recycle_buf(): after a frame the buffer state moves to offset 2048 of its page."""
    from skbsim.drivers import gve
    from skbsim.drivers.base import make_frame
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import kfree_skb

    kernel = Kernel("6.12")
    dev = net_device("eth0")
    rxq = gve.DRIVER.open_queue(kernel, dev, napi_struct(dev), {"ring": "64"})
    first = rxq.bufq[0]
    gve.DRIVER.nic_receive(kernel, rxq, make_frame(1514))
    skbs = []
    gve.DRIVER.poll(kernel, rxq, 64, skbs.append)
    state = rxq.buf_states[first]
    # one reference went to the skb (INT_MAX - 1 left in the bias); the offset moved on; recycled at once
    assert (state.page_offset, state.pagecnt_bias) == (2048, 0x7FFFFFFF - 1) and first in rxq.bufq
    with kernel.softirq():
        kfree_skb(kernel, skbs[0])
    gve.DRIVER.close_queue(kernel, rxq)
    kernel.assert_no_leaks()


# -- options: one line, exit 2 -------------------------------------------------------------------------------------

BAD = [
    (["--driver", "mlx5", "--opt", "rq=cqe"], "rq='cqe' must be one of striding, legacy"),
    (["--driver", "mlx5", "--opt", "mtu=9979"], "mtu=9979 is outside 68..9978"),
    (["--driver", "mana", "--opt", "mtu=9001"], "mtu=9001 is outside 68..9000"),
    (["--kernel", "6.9", "--driver", "mana", "--opt", "ring=1024"], "RX_BUFFERS_PER_QUEUE = 512"),
    (["--driver", "bnxt", "--opt", "mtu=9501"], "mtu=9501 is outside 60..9500"),
    (["--driver", "bnxt", "--opt", "page_mode=on", "--opt", "mtu=4000"], "above 3502"),
    (["--kernel", "6.12", "--driver", "libeth", "--opt", "mtu=16357"], "above 16356"),
    (["--kernel", "6.12", "--driver", "libeth", "--opt", "hsplit=on"], "iavf has no header split"),
    (["--driver", "gve", "--opt", "mtu=9001"], "mtu=9001 is outside 68..9000"),
    (["--kernel", "6.1", "--driver", "gve", "--opt", "hsplit=on"], "no header split"),
    (["--driver", "ice", "--opt", "hsplit=on"], "has no header split"),
]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_options_are_one_line_and_exit_2(argv, message, capsys):
    assert main(["rx", *argv, "--frame-len", "100"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# -- runs: every driver and release, leak check clean, page_pool counters in the JSON ---------------------------------

RUNS = [
    ("mlx5", {"rq": "striding"}), ("mlx5", {"rq": "legacy", "mtu": "9000"}), ("mana", {}), ("mana", {"mtu": "9000"}),
    ("bnxt", {}), ("bnxt", {"tpa": "off"}), ("bnxt", {"page_mode": "on"}), ("gve", {}), ("gve", {"mtu": "9000"}),
]


@pytest.mark.parametrize("release", ["6.1", "6.9", "6.12", "6.18"])
@pytest.mark.parametrize("driver,options", RUNS)
def test_runs_give_every_page_back(release, driver, options):
    r, _ = simulate(RunConfig(kernel=release, driver=driver, options=options, count=2000, traffic="imix"))
    assert r["leaks"]["clean"] and r["delivered"] == 2000
    assert set(r["page_pool"]) >= {"rx_pp_alloc_fast", "rx_pp_recycle_ring", "rx_pp_recycle_released_ref"}


@pytest.mark.parametrize("release", ["6.12", "6.18"])
@pytest.mark.parametrize("options", [{"nic": "iavf"}, {"nic": "idpf"}, {"nic": "idpf", "hsplit": "on", "mtu": "9000"}])
def test_libeth_runs(release, options):
    r, _ = simulate(RunConfig(kernel=release, driver="libeth", options=options, count=2000, traffic="imix",
                              cpus=2))
    assert r["leaks"]["clean"] and r["delivered"] == 2000


def test_a_run_with_faults_stays_clean():
    r, _ = simulate(RunConfig(kernel="6.12", driver="mlx5", options={}, count=3000,
                              faults=(("page_alloc", 0.2, 1, -1, 0), ("slab", 0.05, 1, -1, 0))))
    assert r["leaks"]["clean"] and r["delivered"] + r["dropped_total"] == 3000
