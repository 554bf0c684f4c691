"""One kernel build's constants and named features.

A profile is data (``skbsim/profiles/*.toml``): a handful of inputs that
differ between releases, architectures and configs, and the named features
that say which behaviour a release has.  Everything else is derived here by
the kernel's own formulas, each kept beside the name the kernel gives it:

- include/linux/skbuff.h: NET_SKB_PAD, SKB_DATA_ALIGN, SKB_WITH_OVERHEAD,
  SKB_HEAD_ALIGN, SKB_TRUESIZE, SKB_SMALL_HEAD_*
- include/linux/netdevice.h: LL_MAX_HEADER, MAX_HEADER, GRO_MAX_HEAD
- include/net/tcp.h: MAX_TCP_HEADER
- include/linux/slab.h: KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE
- include/linux/page_frag_cache.h / mm_types.h: PAGE_FRAG_CACHE_MAX_SIZE

Code elsewhere branches on ``profile.has("feature")``, never on a version.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from skbsim.errors import InputError

U32_MASK = 0xFFFFFFFF

#: Features a profile may declare: name -> (type, allowed values, meaning).  A
#: profile must give every one of them a value, so no behaviour is chosen by
#: default.  docs/versions.md says which release introduced which value.
FEATURES = {
    "small_page_frag_1k": (
        bool,
        None,
        "NAPI_HAS_SMALL_PAGE_FRAG: heads of at most SKB_WITH_OVERHEAD(1024) come "
        "from a per-CPU order-0 page cut into 1K pieces (needs 4K pages)",
    ),
    "small_head_cache": (
        bool,
        None,
        "kmalloc_reserve() takes small heads from the skbuff_small_head kmem cache",
    ),
    "small_head_size_rule": (
        str,
        ("none", "max_tcp_header", "max_tcp_header_gro_pad"),
        "how SKB_SMALL_HEAD_SIZE is formed: 'max_tcp_header' = SKB_HEAD_ALIGN(MAX_TCP_HEADER); "
        "'max_tcp_header_gro_pad' = SKB_HEAD_ALIGN(max(MAX_TCP_HEADER, GRO_MAX_HEAD + NET_SKB_PAD "
        "+ NET_IP_ALIGN)); 'none' without the cache",
    ),
    "kmalloc_threshold": (
        str,
        ("1k", "small_head_cache"),
        "heads this small go to kmalloc in __netdev_alloc_skb() (and napi_alloc_skb() without the 1K "
        "cache): len <= SKB_WITH_OVERHEAD(1024), or <= SKB_WITH_OVERHEAD(SKB_SMALL_HEAD_CACHE_SIZE)",
    ),
    "napi_alloc_skb_gfp": (
        bool,
        None,
        "__napi_alloc_skb(napi, len, gfp) takes a gfp mask (else napi_alloc_skb(napi, len) "
        "uses GFP_ATOMIC|__GFP_NOWARN)",
    ),
    "page_frag_offset": (
        str,
        ("down", "up"),
        "page_frag_cache hands out fragments from the end of the page down or from its start up",
    ),
    "page_frag_big_request": (
        str,
        ("refill_first", "fit_or_fail"),
        "a page_frag request that does not fit the current page: recycle or refill first, or "
        "(for requests above PAGE_SIZE) fail at once",
    ),
    "udp_rcvbuf_check": (
        str,
        ("before_charge", "strict_fit"),
        "__udp_enqueue_schedule_skb(): drop when sk_rmem_alloc > sk_rcvbuf before charging (may overshoot "
        "by one skb), or unless sk_rmem_alloc + truesize <= sk_rcvbuf or the queue is empty",
    ),
    "udp_fwd_alloc": (
        str,
        ("whole_size", "deficit"),
        "forward allocation on enqueue: whole pages for the skb's truesize when it exceeds sk_forward_alloc "
        "(6.1), or pages for the deficit only (udp_rmem_schedule(), 6.9+)",
    ),
    "udp_consume": (
        str,
        ("free", "defer_free"),
        "how a read UDP skb is freed: at once in the reader's context, or by skb_attempt_defer_free() "
        "(back on the CPU that allocated it; a local one goes to the NAPI skb cache)",
    ),
    "kmalloc_roundup_oversize": (
        str,
        ("page_order", "identity"),
        "kmalloc_size_roundup() above KMALLOC_MAX_SIZE: PAGE_SIZE << get_order(size), or size unchanged",
    ),
}

#: Inputs a profile must give, with their permitted range.
INPUTS = {
    "PAGE_SIZE": (4096, 65536),
    "L1_CACHE_BYTES": (16, 256),
    "NET_IP_ALIGN": (0, 2),
    "MAX_SKB_FRAGS": (17, 45),
    "LL_MAX_HEADER": (32, 128),
    "MAX_HEADER": (32, 176),
    "MAX_PAGE_ORDER": (1, 15),
    "KMALLOC_MIN_SIZE": (8, 128),
    "sizeof_sk_buff": (128, 1024),
    "sizeof_skb_shared_info": (128, 2048),
    "NAPI_SKB_CACHE_SIZE": (1, 1024),
    "NAPI_SKB_CACHE_BULK": (1, 1024),
    "NAPI_SKB_CACHE_FREE": (1, 1024),
}


def align(x: int, a: int) -> int:
    """include/uapi/linux/const.h: __ALIGN_KERNEL() on an unbounded integer."""
    return (x + a - 1) & ~(a - 1)


def get_order(size: int, page_size: int) -> int:
    """include/asm-generic/getorder.h: get_order() - smallest order holding size."""
    order = 0
    while (page_size << order) < size:
        order += 1
    return order


def is_power_of_2(n: int) -> bool:
    """include/linux/log2.h: is_power_of_2()."""
    return n != 0 and (n & (n - 1)) == 0


@dataclass(frozen=True)
class Derivation:
    """One derived constant, with the formula that gave it."""

    name: str
    value: int
    formula: str


class Profile:
    """The constants and features of one kernel build.

    Attributes use the kernel's macro names.  Methods named after function-like
    macros (``SKB_DATA_ALIGN`` and friends) compute on unbounded integers;
    where the kernel computes on a 32-bit ``unsigned int`` the callers say so
    with :func:`u32`.
    """

    def __init__(self, data: dict, origin: str):
        self.origin = origin
        meta = _table(data, "profile", origin)
        self.name = _string(meta, "name", origin)
        self.release = _string(meta, "release", origin)
        self.rules_from = _string(meta, "rules_from", origin)
        self.arch = _string(meta, "arch", origin)
        self.description = meta.get("description", "")

        constants = _table(data, "constants", origin)
        for key, (low, high) in INPUTS.items():
            value = constants.get(key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"{origin}: [constants] {key} must be an integer")
            if not low <= value <= high:
                raise InputError(f"{origin}: [constants] {key} = {value} is outside {low}..{high}")
            setattr(self, key, value)
        _reject_unknown(constants, INPUTS, "constants", origin)

        features = _table(data, "features", origin)
        self.features: dict[str, object] = {}
        for key, (kind, allowed, _meaning) in FEATURES.items():
            if key not in features:
                raise InputError(f"{origin}: [features] {key} is missing")
            value = features[key]
            if type(value) is not kind:
                raise InputError(f"{origin}: [features] {key} must be a {kind.__name__}")
            if allowed is not None and value not in allowed:
                raise InputError(f"{origin}: [features] {key} must be one of {', '.join(allowed)}")
            self.features[key] = value
        _reject_unknown(features, FEATURES, "features", origin)
        if self.features["small_head_cache"] == (self.features["small_head_size_rule"] == "none"):
            raise InputError(
                f"{origin}: [features] small_head_size_rule must be 'none' exactly when small_head_cache is false"
            )

        for key in ("PAGE_SIZE", "L1_CACHE_BYTES", "KMALLOC_MIN_SIZE"):
            if not is_power_of_2(getattr(self, key)):
                raise InputError(f"{origin}: [constants] {key} must be a power of two")
        if self.MAX_HEADER not in (self.LL_MAX_HEADER, self.LL_MAX_HEADER + 48):
            raise InputError(
                f"{origin}: [constants] MAX_HEADER must be LL_MAX_HEADER or LL_MAX_HEADER + 48 "
                "(include/linux/netdevice.h)"
            )
        if self.NAPI_SKB_CACHE_BULK > self.NAPI_SKB_CACHE_SIZE or self.NAPI_SKB_CACHE_FREE > self.NAPI_SKB_CACHE_SIZE:
            raise InputError(f"{origin}: [constants] NAPI_SKB_CACHE_BULK and _FREE must not exceed NAPI_SKB_CACHE_SIZE")

        self._derive()

    # -- feature queries -------------------------------------------------------------

    def has(self, feature: str) -> bool:
        """True if the build has the named boolean feature (effective value)."""
        if feature == "small_page_frag_1k":
            return self.NAPI_HAS_SMALL_PAGE_FRAG
        value = self.features[feature]
        if type(value) is not bool:
            raise KeyError(f"feature {feature!r} is not a switch")
        return value

    def feature(self, name: str):
        return self.features[name]

    # -- function-like macros ----------------------------------------------------------

    def SKB_DATA_ALIGN(self, x: int) -> int:
        """include/linux/skbuff.h: SKB_DATA_ALIGN() - ALIGN(x, SMP_CACHE_BYTES)."""
        return align(x, self.SMP_CACHE_BYTES)

    def SKB_DATA_ALIGN_u32(self, x: int) -> int:
        """SKB_DATA_ALIGN() of an ``unsigned int``: the sum wraps at 2**32."""
        return ((x + self.SMP_CACHE_BYTES - 1) & U32_MASK) & ~(self.SMP_CACHE_BYTES - 1)

    def SKB_WITH_OVERHEAD(self, x: int) -> int:
        """include/linux/skbuff.h: room left in an x-byte buffer after skb_shared_info."""
        return x - self.SHINFO_SIZE

    def SKB_HEAD_ALIGN(self, x: int) -> int:
        """include/linux/skbuff.h: SKB_HEAD_ALIGN() - bytes a head of x data bytes takes.

        x is an ``unsigned int`` at every call site, so its alignment wraps at
        2**32 while the sum with the skb_shared_info size (a size_t) does not.
        """
        return self.SKB_DATA_ALIGN_u32(x) + self.SHINFO_SIZE

    def SKB_TRUESIZE(self, x: int) -> int:
        """include/linux/skbuff.h: SKB_TRUESIZE() - x data bytes plus both structs."""
        return x + self.SKB_DATA_ALIGN(self.sizeof_sk_buff) + self.SHINFO_SIZE

    def get_order(self, size: int) -> int:
        return get_order(size, self.PAGE_SIZE)

    # -- derivation ---------------------------------------------------------------------

    def _derive(self) -> None:
        steps: list[Derivation] = []

        def let(name: str, value: int, formula: str) -> int:
            setattr(self, name, value)
            steps.append(Derivation(name, value, formula))
            return value

        let("PAGE_SHIFT", self.PAGE_SIZE.bit_length() - 1, "log2(PAGE_SIZE)")
        let("SMP_CACHE_BYTES", self.L1_CACHE_BYTES, "L1_CACHE_BYTES")
        let("NET_SKB_PAD", max(32, self.L1_CACHE_BYTES), "max(32, L1_CACHE_BYTES)")
        let(
            "SHINFO_SIZE",
            self.SKB_DATA_ALIGN(self.sizeof_skb_shared_info),
            "SKB_DATA_ALIGN(sizeof(struct skb_shared_info))",
        )
        let(
            "SKB_HEAD_STRUCT_SIZE",
            self.SKB_DATA_ALIGN(self.sizeof_sk_buff),
            "SKB_DATA_ALIGN(sizeof(struct sk_buff))",
        )
        let("SKB_WITH_OVERHEAD_1K", self.SKB_WITH_OVERHEAD(1024), "SKB_WITH_OVERHEAD(1024) = 1024 - SHINFO_SIZE")
        let(
            "SKB_WITH_OVERHEAD_PAGE",
            self.SKB_WITH_OVERHEAD(self.PAGE_SIZE),
            "SKB_WITH_OVERHEAD(PAGE_SIZE) = PAGE_SIZE - SHINFO_SIZE",
        )
        let(
            "MAX_TCP_HEADER",
            align(128 + self.MAX_HEADER, self.L1_CACHE_BYTES),
            "L1_CACHE_ALIGN(128 + MAX_HEADER)",
        )
        let("GRO_MAX_HEAD", self.MAX_HEADER + 128, "MAX_HEADER + 128")
        let(
            "GRO_MAX_HEAD_PAD",
            self.GRO_MAX_HEAD + self.NET_SKB_PAD + self.NET_IP_ALIGN,
            "GRO_MAX_HEAD + NET_SKB_PAD + NET_IP_ALIGN",
        )
        rule = self.features["small_head_size_rule"]
        if rule == "none":
            # No skbuff_small_head cache: nothing below is used, but derive the
            # values anyway so reports can show what a later release would do.
            let("SKB_SMALL_HEAD_SIZE", self.SKB_HEAD_ALIGN(self.MAX_TCP_HEADER),
                "SKB_HEAD_ALIGN(MAX_TCP_HEADER) (no skbuff_small_head cache in this build)")
        elif rule == "max_tcp_header":
            let("SKB_SMALL_HEAD_SIZE", self.SKB_HEAD_ALIGN(self.MAX_TCP_HEADER), "SKB_HEAD_ALIGN(MAX_TCP_HEADER)")
        else:
            let(
                "SKB_SMALL_HEAD_SIZE",
                self.SKB_HEAD_ALIGN(max(self.MAX_TCP_HEADER, self.GRO_MAX_HEAD_PAD)),
                "SKB_HEAD_ALIGN(max(MAX_TCP_HEADER, GRO_MAX_HEAD_PAD))",
            )
        small = self.SKB_SMALL_HEAD_SIZE
        let(
            "SKB_SMALL_HEAD_CACHE_SIZE",
            small + self.L1_CACHE_BYTES if is_power_of_2(small) else small,
            "SKB_SMALL_HEAD_SIZE, plus L1_CACHE_BYTES if that is a power of two "
            "(so the cache is not merged with a kmalloc cache)",
        )
        let(
            "SKB_SMALL_HEAD_HEADROOM",
            self.SKB_WITH_OVERHEAD(self.SKB_SMALL_HEAD_CACHE_SIZE),
            "SKB_WITH_OVERHEAD(SKB_SMALL_HEAD_CACHE_SIZE)",
        )
        if self.features["kmalloc_threshold"] == "1k":
            let("SKB_KMALLOC_THRESHOLD", self.SKB_WITH_OVERHEAD_1K, "SKB_WITH_OVERHEAD(1024)")
        else:
            let(
                "SKB_KMALLOC_THRESHOLD",
                self.SKB_SMALL_HEAD_HEADROOM,
                "SKB_WITH_OVERHEAD(SKB_SMALL_HEAD_CACHE_SIZE)",
            )
        let("KMALLOC_SHIFT_HIGH", self.PAGE_SHIFT + 1, "PAGE_SHIFT + 1 (SLUB)")
        let("KMALLOC_MAX_CACHE_SIZE", 1 << self.KMALLOC_SHIFT_HIGH, "1 << KMALLOC_SHIFT_HIGH")
        let("KMALLOC_SHIFT_MAX", self.MAX_PAGE_ORDER + self.PAGE_SHIFT, "MAX_PAGE_ORDER + PAGE_SHIFT")
        let("KMALLOC_MAX_SIZE", 1 << self.KMALLOC_SHIFT_MAX, "1 << KMALLOC_SHIFT_MAX")
        let(
            "PAGE_FRAG_CACHE_MAX_SIZE",
            align(32768, self.PAGE_SIZE),
            "__ALIGN_MASK(32768, ~PAGE_MASK): 32 KiB rounded up to a page",
        )
        let(
            "PAGE_FRAG_CACHE_MAX_ORDER",
            self.get_order(self.PAGE_FRAG_CACHE_MAX_SIZE),
            "get_order(PAGE_FRAG_CACHE_MAX_SIZE)",
        )
        let(
            "NAPI_HAS_SMALL_PAGE_FRAG",
            int(bool(self.features["small_page_frag_1k"]) and self.PAGE_SIZE == 4096),
            "feature small_page_frag_1k and PAGE_SIZE == SZ_4K",
        )
        self.derivations = tuple(steps)

    def describe_inputs(self) -> list[tuple[str, int]]:
        return [(key, getattr(self, key)) for key in INPUTS]


# -- loading --------------------------------------------------------------------------


def builtin_names() -> list[str]:
    """Names of the profiles shipped in skbsim/profiles."""
    folder = resources.files("skbsim") / "profiles"
    names = [entry.name[: -len(".toml")] for entry in folder.iterdir() if entry.name.endswith(".toml")]
    return sorted(names, key=_version_key)


def _version_key(name: str):
    parts = name.split(".")
    return tuple(int(p) if p.isdigit() else 0 for p in parts), name


def load_profile(spec: str) -> Profile:
    """A profile by built-in name ("6.9") or by path to a TOML file."""
    if spec in builtin_names():
        text = (resources.files("skbsim") / "profiles" / f"{spec}.toml").read_text()
        return parse_profile(text, f"built-in profile {spec}")
    if spec.endswith(".toml") or "/" in spec:
        path = Path(spec)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise InputError(f"{spec}: no such profile file") from None
        except OSError as err:
            raise InputError(f"{spec}: cannot read profile: {err.strerror}") from None
        return parse_profile(text, spec)
    raise InputError(f"unknown kernel {spec!r} (built-in: {', '.join(builtin_names())}; or a path to a .toml profile)")


def parse_profile(text: str, origin: str) -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{origin}: malformed TOML: {err}") from None
    return Profile(data, origin)


def _table(data: dict, key: str, origin: str) -> dict:
    table = data.get(key)
    if not isinstance(table, dict):
        raise InputError(f"{origin}: missing [{key}] table")
    return table


def _string(table: dict, key: str, origin: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise InputError(f"{origin}: [profile] {key} must be a non-empty string")
    return value


def _reject_unknown(table: dict, known: dict, name: str, origin: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise InputError(f"{origin}: [{name}] has unknown key {unknown[0]!r}")
