"""One allocation, explained: the library behind ``skbsim alloc``.

Runs a single RX allocation function on a fresh kernel, records every branch
decision with its numbers, describes the buffer the skb got, frees it and
checks that nothing leaked.
"""

from __future__ import annotations

from skbsim.errors import InputError
from skbsim.kernel import Kernel
from skbsim.mm.gfp import GFP_ATOMIC, __GFP_NOWARN, format_gfp, parse_gfp
from skbsim.net import skbuff
from skbsim.net.napi import napi_skb_cache_get, napi_skb_cache_put, napi_struct, net_device
from skbsim.net.skbuff import skb_end_offset, skb_headroom, skb_tailroom
from skbsim.profile import Profile, load_profile

FUNCTIONS = ("__napi_alloc_skb", "napi_alloc_skb", "__netdev_alloc_skb", "__alloc_skb")
CONTEXTS = ("softirq", "process", "hardirq")
ALLOC_FLAGS = {"SKB_ALLOC_FCLONE": skbuff.SKB_ALLOC_FCLONE, "SKB_ALLOC_RX": skbuff.SKB_ALLOC_RX,
               "SKB_ALLOC_NAPI": skbuff.SKB_ALLOC_NAPI}
U32_MAX = 0xFFFFFFFF

def interesting_lengths(profile: Profile, function: str) -> list[int]:
    """Lengths at both sides of every threshold the function tests, for this profile.

    The thresholds compare len + pad (NET_SKB_PAD, plus NET_IP_ALIGN for the
    NAPI functions) with SKB_WITH_OVERHEAD(1024), the kmalloc threshold and
    SKB_WITH_OVERHEAD(PAGE_SIZE); the largest head kmalloc can give is
    KMALLOC_MAX_SIZE; 2**32 - 1 shows the unsigned wrap.
    """
    pad = profile.NET_SKB_PAD
    if function in ("__napi_alloc_skb", "napi_alloc_skb"):
        pad += profile.NET_IP_ALIGN
    elif function == "__alloc_skb":
        pad = 0
    edges = {profile.SKB_WITH_OVERHEAD_1K, profile.SKB_KMALLOC_THRESHOLD, profile.SKB_WITH_OVERHEAD_PAGE}
    lengths = {0, 1500, 9000, 65535, U32_MAX}
    for edge in edges:
        lengths.update((edge - pad, edge - pad + 1))
    # The largest len whose SKB_HEAD_ALIGN(len + pad) still fits KMALLOC_MAX_SIZE, and one more.
    largest = profile.SKB_WITH_OVERHEAD(profile.KMALLOC_MAX_SIZE) - pad
    lengths.update((largest, largest + 1))
    return sorted(n for n in lengths if 0 <= n <= U32_MAX)


def default_function(profile: Profile) -> str:
    """__napi_alloc_skb where the kernel has it (up to 6.9), else its 6.10+ successor napi_alloc_skb."""
    return "__napi_alloc_skb" if profile.has("napi_alloc_skb_gfp") else "napi_alloc_skb"


def parse_length(text: str) -> int:
    """A length as ``unsigned int`` takes it: 0 to 4294967295."""
    try:
        value = int(text, 0)
    except ValueError:
        raise InputError(f"--len {text!r} is not an integer") from None
    if not 0 <= value <= U32_MAX:
        raise InputError(f"--len {value} is outside 0..4294967295 (an unsigned int)")
    return value


def parse_alloc_flags(text: str) -> int:
    flags = 0
    for word in filter(None, text.replace(" ", "").split("|")):
        if word not in ALLOC_FLAGS:
            raise InputError(f"unknown __alloc_skb flag {word!r} (known: {', '.join(ALLOC_FLAGS)})")
        flags |= ALLOC_FLAGS[word]
    return flags


def explain_alloc(
    profile: Profile | str,
    function: str,
    length: int,
    gfp: str | None = None,
    *,
    memalloc_socks: bool = False,
    low_memory: bool = False,
    context: str = "softirq",
    alloc_flags: str = "",
) -> dict:
    """Allocate once and describe the result as a plain dict (the JSON of ``skbsim alloc``)."""
    if isinstance(profile, str):
        profile = load_profile(profile)
    if function not in FUNCTIONS:
        raise InputError(f"unknown function {function!r} (known: {', '.join(FUNCTIONS)})")
    if context not in CONTEXTS:
        raise InputError(f"unknown context {context!r} (known: {', '.join(CONTEXTS)})")
    if not 0 <= length <= U32_MAX:
        raise InputError(f"length {length} is outside 0..4294967295 (an unsigned int)")
    if function == "napi_alloc_skb" and gfp is not None:
        raise InputError("napi_alloc_skb takes no gfp mask (it uses GFP_ATOMIC); use __napi_alloc_skb")
    if function == "__napi_alloc_skb" and not profile.has("napi_alloc_skb_gfp"):
        raise InputError(f"kernel {profile.name} has no __napi_alloc_skb(napi, len, gfp); use napi_alloc_skb")
    gfp_mask = parse_gfp(gfp) if gfp is not None else GFP_ATOMIC
    if function == "napi_alloc_skb" and not profile.has("napi_alloc_skb_gfp"):
        gfp_mask = GFP_ATOMIC | __GFP_NOWARN  # fixed inside napi_alloc_skb() from 6.10
    flags = parse_alloc_flags(alloc_flags)

    kernel = Kernel(profile)
    if low_memory:
        _enter_low_memory(kernel)
    kernel.memalloc_socks = memalloc_socks
    kernel.explain = []
    dev = net_device("eth0")
    napi = napi_struct(dev)

    with _context(kernel, context):
        if function == "__napi_alloc_skb":
            skb = skbuff.__napi_alloc_skb(kernel, napi, length, gfp_mask)
        elif function == "napi_alloc_skb":
            skb = skbuff.napi_alloc_skb(kernel, napi, length)
        elif function == "__netdev_alloc_skb":
            skb = skbuff.__netdev_alloc_skb(kernel, dev, length, gfp_mask)
        else:
            skb = skbuff.__alloc_skb(kernel, length, gfp_mask, flags)

    result = {
        "kernel": profile.name,
        "release": profile.release,
        "function": function,
        "len": length,
        "gfp": format_gfp(gfp_mask),
        "context": context,
        "memalloc_socks": memalloc_socks,
        "ok": skb is not None,
        "decisions": list(kernel.explain),
    }
    if skb is None:
        result["reason"] = kernel.explain[-1] if kernel.explain else "allocation failed"
    else:
        result.update(
            path=skb.path,
            head_source=skb.head_source,
            head_size=skb.head_size,
            truesize=skb.truesize,
            headroom=skb_headroom(skb),
            tailroom=skb_tailroom(skb),
            end_offset=skb_end_offset(skb),
            shinfo_size=profile.SHINFO_SIZE,
            head_frag=skb.head_frag,
            pfmemalloc=skb.pfmemalloc,
            skb_from=skb.skb_from,
        )
        with _context(kernel, context):
            skbuff.kfree_skb(kernel, skb)
    result["warnings"] = list(kernel.warnings)
    report = kernel.leak_check()
    result["leak_check"] = "clean" if report.clean else report.summary()
    return result


def _enter_low_memory(kernel: Kernel) -> None:
    """Bring free memory below the min watermark, as on a machine swapping over the network.

    The per-CPU skb head cache is warmed first (a busy receiver's always is),
    then no page is left but the emergency reserves.
    """
    with kernel.softirq():
        napi_skb_cache_put(kernel, napi_skb_cache_get(kernel))
    kernel.pages.limit_pages = kernel.pages.in_use
    kernel.pages.reserve_pages = 1 << 16


class _context:
    """Enter the execution context the allocation runs in."""

    def __init__(self, kernel: Kernel, name: str):
        self.kernel = kernel
        self.name = name
        self.inner = None

    def __enter__(self):
        if self.name == "softirq":
            self.inner = self.kernel.softirq()
        elif self.name == "hardirq":
            self.inner = self.kernel.hardirq()
        else:
            return None
        return self.inner.__enter__()

    def __exit__(self, *exc):
        if self.inner is not None:
            return self.inner.__exit__(*exc)
        return False


def draw_buffer(result: dict, width: int = 72) -> list[str]:
    """A picture of the head: headroom, data, tailroom, skb_shared_info, with offsets.

    Widths follow the byte sizes where they can; every part keeps room for
    its label, so tiny parts stay readable.
    """
    headroom, tailroom, shinfo = result["headroom"], result["tailroom"], result["shinfo_size"]
    segments = [("headroom", headroom), ("data", 0), ("tailroom", tailroom), ("skb_shared_info", shinfo)]
    total = sum(size for _, size in segments) or 1
    labels = [f"{name} {size} B" for name, size in segments]
    widths = [max(len(label) + 2, round(width * size / total)) for label, (_, size) in zip(labels, segments)]
    offsets = [0, headroom, headroom, headroom + tailroom, headroom + tailroom + shinfo]
    names = ["head", "data", "tail", "end", ""]
    plus_at = [0]
    for w in widths:
        plus_at.append(plus_at[-1] + w + 1)
    return [
        _place(names, plus_at),
        "+" + "+".join("-" * w for w in widths) + "+",
        "|" + "|".join(label.center(w) for label, w in zip(labels, widths)) + "|",
        "+" + "+".join("-" * w for w in widths) + "+",
        _place([str(offset) for offset in offsets], plus_at),
    ]


def _place(texts: list[str], columns: list[int]) -> str:
    """Write each text starting at its column, pushing right past any overlap."""
    line = ""
    for text, column in zip(texts, columns):
        if not text:
            continue
        if len(line) > column:
            line += " "
        line = line.ljust(column) + text
    return line
