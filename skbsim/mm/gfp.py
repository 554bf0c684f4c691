"""GFP flags, as include/linux/gfp_types.h defines them.

Only the bits the receive path looks at are modelled; their values follow the
kernel's ___GFP_*_BIT numbering (6.x, CONFIG_LOCKDEP off) so that a mask
printed by skbsim reads the same as one printed by the kernel.
"""

from __future__ import annotations

from enum import IntFlag

from skbsim.errors import InputError


class gfp_t(IntFlag):
    """The kernel's ``gfp_t`` bits, by name (for parsing and printing masks).

    Masks themselves are plain ints: enum arithmetic is slow on hot paths.

    Members drop the ``__GFP_`` prefix (Python keeps names that start with two
    underscores out of an enum); the module constants below carry the
    kernel's spelling.
    """

    DMA = 0x01
    HIGHMEM = 0x02
    DMA32 = 0x04
    MOVABLE = 0x08
    RECLAIMABLE = 0x10
    HIGH = 0x20
    IO = 0x40
    FS = 0x80
    ZERO = 0x100
    DIRECT_RECLAIM = 0x400
    KSWAPD_RECLAIM = 0x800
    WRITE = 0x1000
    NOWARN = 0x2000
    RETRY_MAYFAIL = 0x4000
    NOFAIL = 0x8000
    NORETRY = 0x10000
    MEMALLOC = 0x20000
    COMP = 0x40000
    NOMEMALLOC = 0x80000
    HARDWALL = 0x100000
    THISNODE = 0x200000
    ACCOUNT = 0x400000


__GFP_DMA = 0x01
__GFP_DMA32 = 0x04
__GFP_RECLAIMABLE = 0x10
__GFP_HIGH = 0x20
__GFP_IO = 0x40
__GFP_FS = 0x80
__GFP_ZERO = 0x100
__GFP_DIRECT_RECLAIM = 0x400
__GFP_KSWAPD_RECLAIM = 0x800
__GFP_NOWARN = 0x2000
__GFP_NORETRY = 0x10000
__GFP_MEMALLOC = 0x20000
__GFP_COMP = 0x40000
__GFP_NOMEMALLOC = 0x80000
__GFP_ACCOUNT = 0x400000

__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM
GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_DMA = __GFP_DMA
GFP_DMA32 = __GFP_DMA32

_NAMED_MASKS = {
    "GFP_ATOMIC": GFP_ATOMIC,
    "GFP_KERNEL": GFP_KERNEL,
    "GFP_KERNEL_ACCOUNT": GFP_KERNEL_ACCOUNT,
    "GFP_NOWAIT": GFP_NOWAIT,
    "GFP_NOIO": GFP_NOIO,
    "GFP_NOFS": GFP_NOFS,
    "GFP_DMA": GFP_DMA,
    "GFP_DMA32": GFP_DMA32,
}
_NAMED_MASKS.update({"__GFP_" + member.name: member.value for member in gfp_t})


def parse_gfp(text: str) -> int:
    """Parse a mask written as the kernel writes it: ``GFP_ATOMIC|__GFP_NOWARN``."""
    mask = 0
    for word in text.replace(" ", "").split("|"):
        if word not in _NAMED_MASKS:
            known = ", ".join(sorted(_NAMED_MASKS))
            raise InputError(f"unknown gfp flag {word!r} (known: {known})")
        mask |= _NAMED_MASKS[word]
    return mask


def format_gfp(mask: int) -> str:
    """Name a mask as the kernel would: a composite it contains, then the other bits."""
    if not mask:
        return "0"
    for name in ("GFP_KERNEL", "GFP_ATOMIC", "GFP_NOWAIT", "GFP_DMA"):
        composite = _NAMED_MASKS[name]
        if mask & composite == composite:
            rest = mask & ~composite
            return "|".join([name] + ["__GFP_" + m.name for m in gfp_t if rest & m.value])
    return "|".join("__GFP_" + member.name for member in gfp_t if mask & member.value)


def gfp_pfmemalloc_allowed(gfp_mask: int) -> bool:
    """mm/page_alloc.c: gfp_pfmemalloc_allowed() for a caller in softirq.

    Reserves are open to __GFP_MEMALLOC unless __GFP_NOMEMALLOC forbids them.
    (PF_MEMALLOC tasks are not modelled: the receive path runs in softirq.)
    """
    if gfp_mask & __GFP_NOMEMALLOC:
        return False
    return bool(gfp_mask & __GFP_MEMALLOC)
