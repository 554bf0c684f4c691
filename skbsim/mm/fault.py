"""Fault injection, after lib/fault-inject.c (should_fail()).

The kernel's failslab and fail_page_alloc knobs decide, per call, whether an
allocation that would succeed fails instead.  skbsim keeps one rule per
*layer* so a test can break exactly one step of the receive path:

========== =====================================================================
layer      what it covers
========== =====================================================================
page_alloc every page allocation (mm/page_alloc.c)
slab       every slab allocation (mm/slub.c)
skb_head   the skbuff_head_cache and skbuff_fclone_cache (struct sk_buff itself)
skb_data   kmalloc and skbuff_small_head objects used as skb->head
page_frag  pages taken to refill a page_frag_cache or the 1K frag cache
========== =====================================================================
"""

from __future__ import annotations

import random

from skbsim.errors import InputError

LAYERS = ("page_alloc", "slab", "skb_head", "skb_data", "page_frag")


class FaultRule:
    """One layer's attributes, as in /sys/kernel/debug/fail*/.

    probability: chance (0..1) that an eligible call fails.
    interval:    only every interval-th eligible call may fail.
    times:       how many failures in all; -1 for no limit.
    space:       calls that pass untouched before failures start (the kernel
                 counts bytes; skbsim counts calls, which is what tests need).
    """

    __slots__ = ("probability", "interval", "times", "space", "count")

    def __init__(self, probability: float = 1.0, interval: int = 1, times: int = -1, space: int = 0):
        if not 0.0 <= probability <= 1.0:
            raise InputError(f"fault probability {probability} is outside 0..1")
        if interval < 1:
            raise InputError(f"fault interval {interval} must be at least 1")
        self.probability = probability
        self.interval = interval
        self.times = times
        self.space = space
        self.count = 0


class FaultInjector:
    """Per-layer rules and the seeded random stream they draw from."""

    __slots__ = ("rules", "rng", "injected")

    def __init__(self, seed: int = 0):
        self.rules: dict[str, FaultRule] = {}
        self.rng = random.Random(seed)
        self.injected = dict.fromkeys(LAYERS, 0)

    def set(self, layer: str, rule: FaultRule | None) -> None:
        if layer not in LAYERS:
            raise InputError(f"unknown fault layer {layer!r} (known: {', '.join(LAYERS)})")
        if rule is None:
            self.rules.pop(layer, None)
        else:
            self.rules[layer] = rule

    def fail_nth(self, layer: str, nth: int = 1, times: int = 1) -> None:
        """Let nth-1 calls pass, then fail ``times`` calls."""
        self.set(layer, FaultRule(space=nth - 1, times=times))

    def should_fail(self, layer: str) -> bool:
        """lib/fault-inject.c: should_fail() for one layer."""
        rule = self.rules.get(layer)
        if rule is None or rule.times == 0:
            return False
        if rule.space > 0:
            rule.space -= 1
            return False
        rule.count += 1
        if rule.interval > 1 and rule.count % rule.interval:
            return False
        if rule.probability < 1.0 and self.rng.random() >= rule.probability:
            return False
        if rule.times > 0:
            rule.times -= 1
        self.injected[layer] += 1
        return True


#: the attributes a fault spec may set, and how each is read
_SPEC_KEYS = {"probability": float, "interval": int, "times": int, "space": int}


def parse_fault(text: str) -> tuple[str, float, int, int, int]:
    """``LAYER[:KEY=VALUE,...]`` -> (layer, probability, interval, times, space).

    The keys are the debugfs attribute names (probability 0..1, interval >= 1,
    times -1 for no limit or >= 0, space >= 0 calls); unset ones keep the
    FaultRule defaults, so ``slab`` alone fails every slab allocation.
    Raises InputError naming what is wrong.
    """
    layer, _, rest = text.strip().partition(":")
    layer = layer.strip()
    if layer not in LAYERS:
        raise InputError(f"--fault {text!r}: unknown layer {layer!r} (known: {', '.join(LAYERS)})")
    values = {"probability": 1.0, "interval": 1, "times": -1, "space": 0}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in _SPEC_KEYS:
            raise InputError(f"--fault {text!r}: expected KEY=VALUE with KEY one of {', '.join(_SPEC_KEYS)}, "
                             f"got {item!r}")
        try:
            values[key] = _SPEC_KEYS[key](value.strip())
        except ValueError:
            raise InputError(f"--fault {text!r}: {key} {value.strip()!r} is not a number") from None
    return check_fault((layer, values["probability"], values["interval"], values["times"], values["space"]))


def check_fault(spec: tuple) -> tuple[str, float, int, int, int]:
    """Validate one (layer, probability, interval, times, space) tuple; InputError if out of range."""
    try:
        layer, probability, interval, times, space = spec
    except (TypeError, ValueError):
        raise InputError(f"a fault is (layer, probability, interval, times, space), got {spec!r}") from None
    if layer not in LAYERS:
        raise InputError(f"unknown fault layer {layer!r} (known: {', '.join(LAYERS)})")
    if not 0.0 <= probability <= 1.0:  # also refuses NaN
        raise InputError(f"fault {layer}: probability {probability} is outside 0..1")
    if interval < 1:
        raise InputError(f"fault {layer}: interval {interval} must be at least 1")
    if times < -1:
        raise InputError(f"fault {layer}: times {times} must be -1 (no limit) or at least 0")
    if space < 0:
        raise InputError(f"fault {layer}: space {space} must not be negative")
    return (layer, float(probability), int(interval), int(times), int(space))


def fault_rules(specs) -> dict[str, FaultRule]:
    """Validated specs as FaultRules by layer; a layer given twice is an error."""
    rules: dict[str, FaultRule] = {}
    for spec in specs:
        layer, probability, interval, times, space = check_fault(spec)
        if layer in rules:
            raise InputError(f"fault layer {layer} is given twice")
        rules[layer] = FaultRule(probability, interval, times, space)
    return rules


def fault_report(specs, injected: dict[str, int]) -> dict[str, dict]:
    """The run's JSON "faults": each configured layer's rule and how many calls it failed."""
    report = {}
    for layer, probability, interval, times, space in map(check_fault, specs):
        report[layer] = {"probability": probability, "interval": interval, "times": times, "space": space,
                         "injected": injected.get(layer, 0)}
    return dict(sorted(report.items()))
