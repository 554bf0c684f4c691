"""page_pool against the running kernel: veth with an XDP program copies every frame into page_pool memory
(skb_pp_cow_data()), so the truesize napi_gro_receive_entry reports shows page_pool_dev_alloc()'s folding
and fragment alignment.  The model's side is derived by hand first (always runs); the live comparison
needs root, tracefs, veth and bpf().
"""

from __future__ import annotations

import pytest

from skbsim.live.probe import requirements_missing
from skbsim.live.veth_xdp import live_truesizes, model_truesizes
from skbsim.profile import load_profile

# Frames: 6 x 1000 (heads that fold every second time), 16 x 4001 (a whole-page head plus a 481-byte
# fragment that folds on the 8th), 2 x 1514 (heads just over half a page), 3 x 60.
LENGTHS = [1000] * 6 + [4001] * 16 + [1514] * 2 + [60] * 3

# By hand, 6.18 (x86_64: PAGE_SIZE 4096, sizeof(sk_buff) 232 -> SKB_DATA_ALIGN 256,
# sizeof(skb_shared_info) 320, SKB_DATA_ALIGN = 64; dma_get_cache_alignment() = 1 on x86):
# skb_pp_cow_data(): head size = min(len, SKB_WITH_OVERHEAD(4096 - 256) = 3840 - 320 = 3520),
#   page_pool_dev_alloc_va(SKB_HEAD_ALIGN(size) + 256); napi_build_skb(): truesize = frag_size - 320 + 256 + 320.
# page_pool_alloc_netmem() (helpers.h): size > PAGE_SIZE/2 -> a whole page (4096); otherwise a fragment at
#   frag_offset, folded to the page's end when frag_offset + size > 4096 after taking it.
# 1000: head 1024 + 320 + 256 = 1600: offset 0 (next 1600; 3200 <= 4096) -> 1600 -> 1600 + 256 = 1856;
#       offset 1600 (next 3200; 4800 > 4096: fold to 4096 - 1600 = 2496) -> 2496 + 256 = 2752; fresh page each pair.
H1000 = [1856, 2752] * 3
# 4001: head 3520 + 320 + 256 = 4096 > 2048: whole page -> 4096 + 256 = 4352; rest 4001 - 3520 = 481 from
#       page_pool_dev_alloc(481): offsets 0, 481, ..., 481*7 = 3367; the 8th leaves 3848 + 481 > 4096 and folds
#       to 4096 - 3367 = 729: 4352 + 481 = 4833 seven times, then 4352 + 729 = 5081; twice.
H4001 = ([4833] * 7 + [5081]) * 2
# 1514: head 1536 + 320 + 256 = 2112 > 2048: whole page -> 4352.
H1514 = [4352] * 2
# 60: head 64 + 320 + 256 = 640: fragments at 0, 640, 1280 (no fold) -> 640 + 256 = 896.
H60 = [896] * 3
EXPECTED_618 = H1000 + H4001 + H1514 + H60

# 6.12.117 (Debian; 'page_pool: keep frag_offset aligned for odd-sized requests' backported, feature
# pp_frag_align = dma_or_shinfo): page_pool_alloc_frag_netmem() aligns each fragment to
# max(dma_get_cache_alignment() = 1, __alignof__(struct skb_shared_info) = 8) before taking it, while the
# caller's truesize stays the unaligned size unless folded.  481 -> 488: offsets 0, 488, ..., 488*7 = 3416;
# the 8th leaves 3904 + 488 > 4096 and folds to 4096 - 3416 = 680 -> 4352 + 481 = 4833 seven times, then
# 4352 + 680 = 5032.  Heads are multiples of 64 already, so only the 4001 frames change.
EXPECTED_612 = H1000 + ([4833] * 7 + [5032]) * 2 + H1514 + H60


def test_model_truesizes_by_hand_618():
    assert model_truesizes(load_profile("6.18"), LENGTHS) == EXPECTED_618


def test_model_truesizes_by_hand_612():
    assert model_truesizes(load_profile("6.12"), LENGTHS) == EXPECTED_612


def _veth_missing() -> list[str]:
    missing = requirements_missing()
    try:
        from skbsim.live.kconfig import host_config

        config = host_config()
        for option in ("CONFIG_VETH", "CONFIG_BPF_SYSCALL", "CONFIG_PAGE_POOL"):
            if not config.enabled(option):
                missing.append(option)
    except Exception as err:  # no config to read: say so rather than guess
        missing.append(f"the kernel config ({err})")
    return missing


live = pytest.mark.skipif(bool(_veth_missing()), reason="live page_pool needs: " + "; ".join(_veth_missing()))


@pytest.mark.live
@live
def test_live_veth_xdp_truesizes_match_the_618_model():
    """Live 6.18.44: the truesizes equal the hand-derived 6.18 values (fold of 481 at 3367 -> 729, i.e. no
    64-byte fragment alignment), so the host keeps pp_frag_align = dma."""
    assert live_truesizes(LENGTHS) == EXPECTED_618
