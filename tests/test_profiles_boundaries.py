"""Every profile at its own boundaries, built-in and derived (other pages, cache lines, frags).

Each row is derived by hand from the kernel's macros; the derivation sits in
the comment above it.  Shorthands used throughout:

  S = SHINFO      = SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
  B = SKB_DATA_ALIGN(sizeof(struct sk_buff))
  H(x)            = SKB_HEAD_ALIGN(x) = SKB_DATA_ALIGN(x) + S
  truesize        = SKB_TRUESIZE(end) = end + B + S = head bytes + B
  napi_alloc_skb: L = len + NET_SKB_PAD + NET_IP_ALIGN
      1K frag (where NAPI_HAS_SMALL_PAGE_FRAG) if L <= SKB_WITH_OVERHEAD(1024) = 1024 - S
      kmalloc if L <= threshold (no 1K frag) or L > SKB_WITH_OVERHEAD(PAGE_SIZE) = PAGE_SIZE - S
      else a page fragment of H(L)
  __netdev_alloc_skb: L = len + NET_SKB_PAD; kmalloc if L <= threshold or L > PAGE_SIZE - S
  kmalloc path: H(L) <= SKB_SMALL_HEAD_CACHE_SIZE -> skbuff_small_head, else the kmalloc
      bucket (power of two) holding H(L), or whole pages above KMALLOC_MAX_CACHE_SIZE

The x86_64 built-ins: PAGE_SIZE 4096, L1 64, NET_IP_ALIGN 0, MAX_HEADER 176, sk_buff 232 -> B 256,
shinfo 320 -> S 320, so SKB_WITH_OVERHEAD(1024) = 704 and SKB_WITH_OVERHEAD(4096) = 3776.
"""

from __future__ import annotations

import pytest

from skbsim.kernel import Kernel
from skbsim.mm.gfp import GFP_ATOMIC
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.skbuff import (
    __alloc_skb,
    __netdev_alloc_skb,
    kfree_skb,
    napi_alloc_skb,
    skb_end_offset,
    skb_headroom,
)
from skbsim.profile import load_profile


def _derived(base: str, **constants):
    return load_profile(base).derive(origin=f"test {base} {constants}", name=f"{base}-test", constants=constants)


PROFILES = {
    "6.1": lambda: load_profile("6.1"),
    "6.9": lambda: load_profile("6.9"),
    "6.12": lambda: load_profile("6.12"),
    "6.18": lambda: load_profile("6.18"),
    "7.1": lambda: load_profile("7.1"),
    "7.1-16k": lambda: _derived("7.1", PAGE_SIZE=16384),
    # arm64 with 16K pages: NET_IP_ALIGN stays 0 (arch/arm64/include/asm/processor.h sets it so).
    "6.9-16k": lambda: _derived("6.9", PAGE_SIZE=16384),
    "6.12-16k": lambda: _derived("6.12", PAGE_SIZE=16384),
    # 64K pages; 6.1 then has MAX_SKB_FRAGS max(16, 65536/65536 + 1) = 16 and shinfo 48 + 16*16 = 304.
    "6.1-64k": lambda: _derived("6.1", PAGE_SIZE=65536),
    "6.18-64k": lambda: _derived("6.18", PAGE_SIZE=65536),
    # riscv64, s390, 32-bit arm...: the generic NET_IP_ALIGN 2.
    "6.12-ipalign2": lambda: _derived("6.12", NET_IP_ALIGN=2),
    "6.18-ipalign2": lambda: _derived("6.18", NET_IP_ALIGN=2),
    # 128-byte cache lines (64-bit powerpc), 4K pages to keep one change at a time.
    "6.12-l1-128": lambda: _derived("6.12", L1_CACHE_BYTES=128),
    # CONFIG_MAX_SKB_FRAGS=45: shinfo 320 + 16 * 28 = 768.
    "6.9-frags45": lambda: _derived("6.9", MAX_SKB_FRAGS=45),
    "6.12-frags45": lambda: _derived("6.12", MAX_SKB_FRAGS=45),
    "6.18-frags45": lambda: _derived("6.18", MAX_SKB_FRAGS=45),
}

# (profile, function, len, path, head_source, head_size, truesize, headroom)
CASES = [
    # ---- 6.1: 1K frag for L <= 704, no skbuff_small_head, kmalloc threshold 704 in __netdev_alloc_skb
    # len 640: L = 704 <= 704 -> 1K frag; head 1024, truesize 1024 + 256 = 1280
    ("6.1", "napi", 640, "page_frag_1k", "page_frag_1k", 1024, 1280, 64),
    # len 641: L = 705 -> H(705) = 768 + 320 = 1088; truesize 1344
    ("6.1", "napi", 641, "page_frag", "page_frag", 1088, 1344, 64),
    # len 3712: L = 3776 = SKB_WITH_OVERHEAD(4096) -> H = 3776 + 320 = 4096; truesize 4352
    ("6.1", "napi", 3712, "page_frag", "page_frag", 4096, 4352, 64),
    # len 3713: L = 3777 -> kmalloc; H = 3840 + 320 = 4160 -> kmalloc-8k; truesize 8448
    ("6.1", "napi", 3713, "kmalloc", "kmalloc-8k", 8192, 8448, 64),
    # netdev len 640: L = 704 <= 704 -> kmalloc; H(704) = 1024 -> kmalloc-1k (no small-head cache)
    ("6.1", "netdev", 640, "kmalloc", "kmalloc-1k", 1024, 1280, 64),
    # netdev len 641: L = 705 -> page frag H = 1088; truesize 1344
    ("6.1", "netdev", 641, "page_frag", "page_frag", 1088, 1344, 64),
    # alloc_skb(0): H(0) = 320 -> kmalloc-512; truesize 768
    ("6.1", "alloc", 0, "kmalloc", "kmalloc-512", 512, 768, 0),
    # ---- 6.9: small head SKB_HEAD_ALIGN(MAX_TCP_HEADER) = H(320) = 640, kmalloc threshold 704
    ("6.9", "napi", 640, "page_frag_1k", "page_frag_1k", 1024, 1280, 64),
    ("6.9", "napi", 641, "page_frag", "page_frag", 1088, 1344, 64),
    ("6.9", "napi", 3712, "page_frag", "page_frag", 4096, 4352, 64),
    ("6.9", "napi", 3713, "kmalloc", "kmalloc-8k", 8192, 8448, 64),
    # netdev len 256: L = 320, H = 640 <= 640 -> skbuff_small_head; truesize 640 + 256 = 896
    ("6.9", "netdev", 256, "kmalloc", "skbuff_small_head", 640, 896, 64),
    # netdev len 257: L = 321, H = 384 + 320 = 704 > 640 -> kmalloc-1k; truesize 1280
    ("6.9", "netdev", 257, "kmalloc", "kmalloc-1k", 1024, 1280, 64),
    # netdev len 640: L = 704 <= 704 -> kmalloc-1k; 641 -> page frag 1088
    ("6.9", "netdev", 640, "kmalloc", "kmalloc-1k", 1024, 1280, 64),
    ("6.9", "netdev", 641, "page_frag", "page_frag", 1088, 1344, 64),
    # alloc_skb(320): H = 640 -> small head 896; alloc_skb(321): H = 704 -> kmalloc-1k 1280
    ("6.9", "alloc", 320, "kmalloc", "skbuff_small_head", 640, 896, 0),
    ("6.9", "alloc", 321, "kmalloc", "kmalloc-1k", 1024, 1280, 0),
    # ---- 6.12.117: small head H(max(320, GRO_MAX_HEAD_PAD 304+64+0 = 368)) = 384 + 320 = 704,
    # kmalloc threshold SKB_WITH_OVERHEAD(704) = 384; the 1K frag is still there
    ("6.12", "napi", 640, "page_frag_1k", "page_frag_1k", 1024, 1280, 64),
    ("6.12", "napi", 641, "page_frag", "page_frag", 1088, 1344, 64),
    ("6.12", "napi", 3712, "page_frag", "page_frag", 4096, 4352, 64),
    ("6.12", "napi", 3713, "kmalloc", "kmalloc-8k", 8192, 8448, 64),
    # netdev len 320: L = 384 <= 384 -> H(384) = 704 -> small head; truesize 960
    ("6.12", "netdev", 320, "kmalloc", "skbuff_small_head", 704, 960, 64),
    # netdev len 321: L = 385 -> page frag H = 448 + 320 = 768; truesize 1024
    ("6.12", "netdev", 321, "page_frag", "page_frag", 768, 1024, 64),
    # alloc_skb(384): H = 704 -> small head 960; alloc_skb(385): H = 768 -> kmalloc-1k 1280
    ("6.12", "alloc", 384, "kmalloc", "skbuff_small_head", 704, 960, 0),
    ("6.12", "alloc", 385, "kmalloc", "kmalloc-1k", 1024, 1280, 0),
    # ---- 6.18: as 6.12 but no 1K frag: napi heads with L <= 384 go to kmalloc (the small head)
    # len 320: L = 384 -> small head 704; truesize 960
    ("6.18", "napi", 320, "kmalloc", "skbuff_small_head", 704, 960, 64),
    # len 321: L = 385 -> page frag H = 768; truesize 1024
    ("6.18", "napi", 321, "page_frag", "page_frag", 768, 1024, 64),
    # len 640: L = 704 -> H = 1024 (no 1K cache any more); truesize 1280
    ("6.18", "napi", 640, "page_frag", "page_frag", 1024, 1280, 64),
    ("6.18", "napi", 3712, "page_frag", "page_frag", 4096, 4352, 64),
    ("6.18", "napi", 3713, "kmalloc", "kmalloc-8k", 8192, 8448, 64),
    ("6.18", "netdev", 320, "kmalloc", "skbuff_small_head", 704, 960, 64),
    ("6.18", "netdev", 321, "page_frag", "page_frag", 768, 1024, 64),
    # ---- 7.1: 6.18's heads (the same small head, thresholds and page_frag_cache)
    ("7.1", "napi", 320, "kmalloc", "skbuff_small_head", 704, 960, 64),
    ("7.1", "napi", 321, "page_frag", "page_frag", 768, 1024, 64),
    ("7.1", "napi", 3712, "page_frag", "page_frag", 4096, 4352, 64),
    ("7.1", "napi", 3713, "kmalloc", "kmalloc-8k", 8192, 8448, 64),
    ("7.1", "netdev", 320, "kmalloc", "skbuff_small_head", 704, 960, 64),
    ("7.1", "netdev", 321, "page_frag", "page_frag", 768, 1024, 64),
    ("7.1", "alloc", 384, "kmalloc", "skbuff_small_head", 704, 960, 0),
    # 16K pages: SKB_WITH_OVERHEAD(16384) = 16064, page frags up to len 16000, then kmalloc-32k
    ("7.1-16k", "napi", 16000, "page_frag", "page_frag", 16384, 16640, 64),
    ("7.1-16k", "napi", 16001, "kmalloc", "kmalloc-32k", 32768, 33024, 64),
    # ---- 6.9 on 16K pages: no 1K frag (needs 4K pages), so napi heads with L <= 704 go to kmalloc;
    # SKB_WITH_OVERHEAD(16384) = 16064; KMALLOC_MAX_CACHE_SIZE = 2 pages = 32768
    # len 256: L = 320, H = 640 <= 640 -> small head; truesize 896
    ("6.9-16k", "napi", 256, "kmalloc", "skbuff_small_head", 640, 896, 64),
    # len 257: L = 321, H = 704 -> kmalloc-1k; truesize 1280
    ("6.9-16k", "napi", 257, "kmalloc", "kmalloc-1k", 1024, 1280, 64),
    # len 640: L = 704 <= SKB_WITH_OVERHEAD(1024) -> still kmalloc: H(704) = 1024 -> kmalloc-1k
    ("6.9-16k", "napi", 640, "kmalloc", "kmalloc-1k", 1024, 1280, 64),
    # len 641: L = 705 -> page frag H = 1088; truesize 1344
    ("6.9-16k", "napi", 641, "page_frag", "page_frag", 1088, 1344, 64),
    # len 16000: L = 16064 -> page frag H = 16064 + 320 = 16384; truesize 16640
    ("6.9-16k", "napi", 16000, "page_frag", "page_frag", 16384, 16640, 64),
    # len 16001: L = 16065 -> kmalloc H = 16128 + 320 = 16448 -> kmalloc-32k; truesize 33024
    ("6.9-16k", "napi", 16001, "kmalloc", "kmalloc-32k", 32768, 33024, 64),
    # ---- 6.12 on 16K pages: no 1K frag; threshold SKB_WITH_OVERHEAD(704) = 384
    ("6.12-16k", "napi", 320, "kmalloc", "skbuff_small_head", 704, 960, 64),
    ("6.12-16k", "napi", 321, "page_frag", "page_frag", 768, 1024, 64),
    ("6.12-16k", "napi", 16000, "page_frag", "page_frag", 16384, 16640, 64),
    ("6.12-16k", "napi", 16001, "kmalloc", "kmalloc-32k", 32768, 33024, 64),
    # ---- 6.1 on 64K pages: shinfo 304 -> S = ALIGN(304, 64) = 320 still; no small-head cache, no 1K
    # frag; threshold 704; SKB_WITH_OVERHEAD(65536) = 65216; KMALLOC_MAX_CACHE_SIZE = 131072
    # len 0: L = 64, H = 64 + 320 = 384 -> kmalloc-512; truesize 768
    ("6.1-64k", "napi", 0, "kmalloc", "kmalloc-512", 512, 768, 64),
    # len 640: L = 704 -> H = 1024 -> kmalloc-1k; 641: page frag 1088
    ("6.1-64k", "napi", 640, "kmalloc", "kmalloc-1k", 1024, 1280, 64),
    ("6.1-64k", "napi", 641, "page_frag", "page_frag", 1088, 1344, 64),
    # len 65152: L = 65216 -> page frag H = 65536; truesize 65792
    ("6.1-64k", "napi", 65152, "page_frag", "page_frag", 65536, 65792, 64),
    # len 65153: L = 65217 -> H = 65280 + 320 = 65600 -> kmalloc-128k; truesize 131328
    ("6.1-64k", "napi", 65153, "kmalloc", "kmalloc-128k", 131072, 131328, 64),
    # ---- 6.18 on 64K pages
    ("6.18-64k", "napi", 320, "kmalloc", "skbuff_small_head", 704, 960, 64),
    ("6.18-64k", "napi", 321, "page_frag", "page_frag", 768, 1024, 64),
    ("6.18-64k", "napi", 65152, "page_frag", "page_frag", 65536, 65792, 64),
    ("6.18-64k", "napi", 65153, "kmalloc", "kmalloc-128k", 131072, 131328, 64),
    # ---- 6.12 with NET_IP_ALIGN 2: napi pad 66; GRO_MAX_HEAD_PAD 370 -> small head H(370) = 704 still
    # len 638: L = 704 -> 1K frag; truesize 1280; headroom 66
    ("6.12-ipalign2", "napi", 638, "page_frag_1k", "page_frag_1k", 1024, 1280, 66),
    # len 639: L = 705 -> page frag H = 1088; truesize 1344
    ("6.12-ipalign2", "napi", 639, "page_frag", "page_frag", 1088, 1344, 66),
    # len 3710: L = 3776 -> H = 4096; truesize 4352.  len 3711: L = 3777 -> kmalloc-8k
    ("6.12-ipalign2", "napi", 3710, "page_frag", "page_frag", 4096, 4352, 66),
    ("6.12-ipalign2", "napi", 3711, "kmalloc", "kmalloc-8k", 8192, 8448, 66),
    # __netdev_alloc_skb pads by NET_SKB_PAD only: len 320 -> L = 384 -> small head as on x86
    ("6.12-ipalign2", "netdev", 320, "kmalloc", "skbuff_small_head", 704, 960, 64),
    # ---- 6.18 with NET_IP_ALIGN 2: len 318: L = 384 -> small head 960; 319: L = 385 -> page frag 768
    ("6.18-ipalign2", "napi", 318, "kmalloc", "skbuff_small_head", 704, 960, 66),
    ("6.18-ipalign2", "napi", 319, "page_frag", "page_frag", 768, 1024, 66),
    # ---- 6.12 with L1 128: NET_SKB_PAD 128, S = ALIGN(320, 128) = 384, B = ALIGN(232, 128) = 256;
    # MAX_TCP_HEADER = ALIGN(304, 128) = 384; GRO_MAX_HEAD_PAD = 304 + 128 + 0 = 432;
    # small head H(432) = 512 + 384 = 896 (cache 896, threshold 896 - 384 = 512);
    # SKB_WITH_OVERHEAD(1024) = 640; SKB_WITH_OVERHEAD(4096) = 3712
    # len 512: L = 640 -> 1K frag; truesize 1024 + 256 = 1280; headroom 128
    ("6.12-l1-128", "napi", 512, "page_frag_1k", "page_frag_1k", 1024, 1280, 128),
    # len 513: L = 641 -> H = 768 + 384 = 1152; truesize 1408
    ("6.12-l1-128", "napi", 513, "page_frag", "page_frag", 1152, 1408, 128),
    # len 3584: L = 3712 -> H = 4096; truesize 4352
    ("6.12-l1-128", "napi", 3584, "page_frag", "page_frag", 4096, 4352, 128),
    # len 3585: L = 3713 -> H = 3840 + 384 = 4224 -> kmalloc-8k; truesize 8448
    ("6.12-l1-128", "napi", 3585, "kmalloc", "kmalloc-8k", 8192, 8448, 128),
    # netdev len 384: L = 512 <= 512 -> H(512) = 896 -> small head; truesize 1152
    ("6.12-l1-128", "netdev", 384, "kmalloc", "skbuff_small_head", 896, 1152, 128),
    # netdev len 385: L = 513 -> page frag H = 640 + 384 = 1024; truesize 1280
    ("6.12-l1-128", "netdev", 385, "page_frag", "page_frag", 1024, 1280, 128),
    # ---- MAX_SKB_FRAGS 45: S = 768; SKB_WITH_OVERHEAD(1024) = 256; SKB_WITH_OVERHEAD(4096) = 3328
    # 6.9 small head H(MAX_TCP_HEADER 320) = 320 + 768 = 1088
    # len 192: L = 256 -> 1K frag; truesize 1024 + 256 = 1280
    ("6.9-frags45", "napi", 192, "page_frag_1k", "page_frag_1k", 1024, 1280, 64),
    # len 193: L = 257 -> H = 320 + 768 = 1088; truesize 1344
    ("6.9-frags45", "napi", 193, "page_frag", "page_frag", 1088, 1344, 64),
    # alloc_skb(320): H = 1088 <= 1088 -> small head; truesize 1344.  321: H = 1152 -> kmalloc-2k 2304
    ("6.9-frags45", "alloc", 320, "kmalloc", "skbuff_small_head", 1088, 1344, 0),
    ("6.9-frags45", "alloc", 321, "kmalloc", "kmalloc-2k", 2048, 2304, 0),
    # 6.12: small head H(368) = 384 + 768 = 1152, threshold 384
    ("6.12-frags45", "napi", 192, "page_frag_1k", "page_frag_1k", 1024, 1280, 64),
    ("6.12-frags45", "napi", 193, "page_frag", "page_frag", 1088, 1344, 64),
    # len 3264: L = 3328 -> H = 4096; truesize 4352.  3265: L = 3329 -> H = 3392 + 768 = 4160 -> 8k
    ("6.12-frags45", "napi", 3264, "page_frag", "page_frag", 4096, 4352, 64),
    ("6.12-frags45", "napi", 3265, "kmalloc", "kmalloc-8k", 8192, 8448, 64),
    # 6.18: len 320: L = 384 -> H(384) = 1152 -> small head; truesize 1408
    ("6.18-frags45", "napi", 320, "kmalloc", "skbuff_small_head", 1152, 1408, 64),
    # len 321: L = 385 -> page frag H = 448 + 768 = 1216; truesize 1472
    ("6.18-frags45", "napi", 321, "page_frag", "page_frag", 1216, 1472, 64),
]


def _run(profile, function: str, length: int):
    kernel = Kernel(profile)
    dev = net_device("eth0")
    napi = napi_struct(dev)
    with kernel.softirq():
        if function == "napi":
            skb = napi_alloc_skb(kernel, napi, length)
        elif function == "netdev":
            skb = __netdev_alloc_skb(kernel, dev, length, GFP_ATOMIC)
        else:
            skb = __alloc_skb(kernel, length, GFP_ATOMIC, 0)
        assert skb is not None
        seen = (skb.path, skb.head_source, skb.head_size, skb.truesize, skb_headroom(skb))
        assert skb_end_offset(skb) == skb.head_size - kernel.profile.SHINFO_SIZE
        kfree_skb(kernel, skb)
    kernel.assert_no_leaks()
    return seen


@pytest.mark.parametrize("name,function,length,path,source,head_size,truesize,headroom", CASES)
def test_boundary(name, function, length, path, source, head_size, truesize, headroom):
    profile = PROFILES[name]()
    assert _run(profile, function, length) == (path, source, head_size, truesize, headroom)


# Derived constants, by hand.  (profile, constant, value)
CONSTANTS = [
    # 16K: PAGE_FRAG_CACHE_MAX_SIZE = ALIGN(32768, 16384) = 32768 -> order 1; no 1K frag
    ("6.12-16k", "PAGE_FRAG_CACHE_MAX_SIZE", 32768),
    ("6.12-16k", "PAGE_FRAG_CACHE_MAX_ORDER", 1),
    ("6.12-16k", "NAPI_HAS_SMALL_PAGE_FRAG", 0),
    ("6.12-16k", "KMALLOC_MAX_CACHE_SIZE", 32768),
    # 64K: ALIGN(32768, 65536) = 65536 -> order 0 (one page, no high-order attempt)
    ("6.18-64k", "PAGE_FRAG_CACHE_MAX_SIZE", 65536),
    ("6.18-64k", "PAGE_FRAG_CACHE_MAX_ORDER", 0),
    ("6.18-64k", "KMALLOC_MAX_CACHE_SIZE", 131072),
    # 6.1 on 64K: MAX_SKB_FRAGS max(16, 2) = 16; shinfo 48 + 16 * 16 = 304; S = 320
    ("6.1-64k", "MAX_SKB_FRAGS", 16),
    ("6.1-64k", "sizeof_skb_shared_info", 304),
    ("6.1-64k", "SHINFO_SIZE", 320),
    # MAX_SKB_FRAGS 45: shinfo 48 + 16 * 45 = 768
    ("6.12-frags45", "sizeof_skb_shared_info", 768),
    ("6.12-frags45", "SKB_SMALL_HEAD_CACHE_SIZE", 1152),
    ("6.9-frags45", "SKB_SMALL_HEAD_CACHE_SIZE", 1088),
    # L1 128: NET_SKB_PAD 128, S 384, MAX_TCP_HEADER 384, small head 896
    ("6.12-l1-128", "NET_SKB_PAD", 128),
    ("6.12-l1-128", "SHINFO_SIZE", 384),
    ("6.12-l1-128", "MAX_TCP_HEADER", 384),
    ("6.12-l1-128", "SKB_SMALL_HEAD_CACHE_SIZE", 896),
    ("6.12-l1-128", "SKB_KMALLOC_THRESHOLD", 512),
    # NET_IP_ALIGN 2 with MAX_HEADER 176: GRO_MAX_HEAD_PAD 370, small head still H(370) = 704
    ("6.12-ipalign2", "GRO_MAX_HEAD_PAD", 370),
    ("6.12-ipalign2", "SKB_SMALL_HEAD_CACHE_SIZE", 704),
]


@pytest.mark.parametrize("name,constant,value", CONSTANTS)
def test_derived_constant(name, constant, value):
    assert getattr(PROFILES[name](), constant) == value


def test_net_ip_align_moves_the_small_head_when_max_header_is_128():
    # LL_MAX_HEADER 128 (HYPERV_NET=y, or WLAN + MESH) without tunnels: MAX_HEADER 128.
    # MAX_TCP_HEADER = ALIGN(256, 64) = 256; GRO_MAX_HEAD = 256.
    # NET_IP_ALIGN 0: GRO_MAX_HEAD_PAD = 256 + 64 = 320 -> H(320) = 640.
    # NET_IP_ALIGN 2: GRO_MAX_HEAD_PAD = 322 -> H(322) = 384 + 320 = 704.
    base = {"LL_MAX_HEADER": 128, "MAX_HEADER": 128}
    assert _derived("6.18", **base).SKB_SMALL_HEAD_CACHE_SIZE == 640
    assert _derived("6.18", NET_IP_ALIGN=2, **base).SKB_SMALL_HEAD_CACHE_SIZE == 704


def test_power_of_two_small_head_gets_a_cache_line_more():
    # 6.9 rule with MAX_HEADER 32: MAX_TCP_HEADER = ALIGN(160, 64) = 192; H(192) = 192 + 320 = 512,
    # a power of two, so the cache is 512 + L1 64 = 576 and its headroom 576 - 320 = 256.
    profile = _derived("6.9", LL_MAX_HEADER=32, MAX_HEADER=32)
    assert (profile.SKB_SMALL_HEAD_SIZE, profile.SKB_SMALL_HEAD_CACHE_SIZE, profile.SKB_SMALL_HEAD_HEADROOM) == (
        512, 576, 256)


@pytest.mark.parametrize("name,page_size,order", [("6.12", 4096, 3), ("6.12-16k", 16384, 1), ("6.18-64k", 65536, 0)])
def test_page_frag_cache_page_size(name, page_size, order):
    # The NAPI page_frag_cache refills with one PAGE_FRAG_CACHE_MAX_SIZE page: 32 KiB on 4K and 16K
    # pages (order 3 and 1), one 64 KiB page (order 0) on 64K.  A 1088-byte head (len 641 with pad
    # 64: H(705) = 1088) is cut from it.
    profile = PROFILES[name]()
    kernel = Kernel(profile)
    napi = napi_struct(net_device("eth0"))
    with kernel.softirq():
        skb = napi_alloc_skb(kernel, napi, 641)
        nc = kernel.this_cpu().napi_alloc_cache.page
        assert (skb.head_size, nc.size, nc.page.order) == (1088, page_size << order, order)
        kfree_skb(kernel, skb)
    kernel.assert_no_leaks()
