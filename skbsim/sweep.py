"""Sweeps: one RX allocation function over a range of lengths, on several kernels.

The library behind ``skbsim sweep``.  Every length in the range is run through
the model (nothing is interpolated): one :class:`~skbsim.kernel.Kernel` per
profile, each skb freed before the next is allocated, so the per-CPU caches
stay warm and the whole sweep is a few microseconds per length.  What an
allocation costs (path, head source, head size, truesize) does not depend on
that cache state as long as memory does not run out, which it does not here.

From the per-length answers come the *ranges* over which a kernel's answer
stays the same, the union of those ranges over all kernels (the table), a CSV
with one row per length, and a step plot with one line per kernel.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

from skbsim.errors import InputError
from skbsim.files import shown
from skbsim.ranges import parse_range
from skbsim.kernel import Kernel
from skbsim.mm.gfp import GFP_ATOMIC, format_gfp, parse_gfp
from skbsim.net import skbuff
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.page_pool import (
    page_pool_create,
    page_pool_destroy,
    page_pool_dev_alloc,
    page_pool_free_frag,
    page_pool_params,
    skb_mark_for_recycle,
)
from skbsim.profile import Profile
from skbsim.traffic.frame import MAX_FRAME_LEN, MIN_FRAME_LEN

#: Functions a sweep can call, and whether each takes a gfp mask.
SWEEP_FUNCTIONS = {"napi_alloc_skb": False, "__napi_alloc_skb": True, "__netdev_alloc_skb": True, "__alloc_skb": True,
                   "page_pool_dev_alloc": False}
U32_MAX = 0xFFFFFFFF
#: More points than this would take minutes and gigabytes; nobody needs them at step 1.
MAX_POINTS = 1 << 21
NULL = "NULL"


def parse_len_range(text: str) -> range:
    """'FIRST:LAST[:STEP]' (LAST included), or one length 'N', as a range of lengths."""
    if ":" not in text:
        text = f"{text}:{text}"
    first, last, step = parse_range(text, "--len", 0, U32_MAX)
    lengths = range(first, last + 1, step)
    if len(lengths) > MAX_POINTS:
        raise InputError(f"--len {text!r}: {len(lengths)} lengths; at most {MAX_POINTS} (use a larger STEP)")
    return lengths


@dataclass(frozen=True)
class Answer:
    """What one allocation cost: None for truesize when it failed (NULL)."""

    path: str
    head_source: str
    head_size: int | None
    truesize: int | None

    def label(self) -> str:
        if self.path == NULL:
            return NULL
        if self.path == self.head_source:
            return self.path
        return f"{self.path}: {self.head_source}"


@dataclass(frozen=True)
class Span:
    """Lengths first..last (sampled ones, inclusive) over which the answer stays ``answer``."""

    first: int
    last: int
    answer: Answer


class KernelSweep:
    """One kernel's answers, one per length of the sweep.  A driver sweep has ``driver`` and its
    ``options``; its ``function`` is the label 'name(options)' and its ``gfp`` '-'."""

    __slots__ = ("profile", "function", "gfp", "lengths", "answers", "leak_check", "driver", "options")

    def __init__(self, profile: Profile, function: str, gfp: str, lengths: range, answers: list[Answer],
                 leak_check: str, driver: str | None = None, options: dict[str, str] | None = None):
        self.profile = profile
        self.function = function
        self.gfp = gfp
        self.lengths = lengths
        self.answers = answers
        self.leak_check = leak_check
        self.driver = driver
        self.options = options or {}

    @property
    def name(self) -> str:
        return self.profile.name

    def spans(self, key=lambda answer: answer) -> list[Span]:
        """Maximal runs of consecutive lengths whose answers have the same key."""
        spans: list[Span] = []
        lengths, answers = self.lengths, self.answers
        start = 0
        for index in range(1, len(answers) + 1):
            if index == len(answers) or key(answers[index]) != key(answers[start]):
                spans.append(Span(lengths[start], lengths[index - 1], answers[start]))
                start = index
        return spans


def check_function(profile: Profile, function: str, gfp: str | None) -> None:
    if function not in SWEEP_FUNCTIONS:
        raise InputError(f"unknown function {function!r} (known: {', '.join(SWEEP_FUNCTIONS)})")
    if function == "__napi_alloc_skb" and not profile.has("napi_alloc_skb_gfp"):
        raise InputError(f"kernel {profile.name} has no __napi_alloc_skb(napi, len, gfp); use napi_alloc_skb")
    if function == "page_pool_dev_alloc" and not profile.has("pp_dev_alloc"):
        raise InputError(f"kernel {profile.name} has no page_pool_dev_alloc() (6.7+)")
    if gfp is not None and not SWEEP_FUNCTIONS[function]:
        raise InputError(f"{function} takes no gfp mask")


def page_pool_skb(kernel: Kernel, pool, length: int):
    """An skb head from a page_pool, as drivers that build skbs on page_pool memory size it.

    size = SKB_HEAD_ALIGN(NET_SKB_PAD + NET_IP_ALIGN + len) is asked of
    page_pool_dev_alloc(): more than half a page takes a whole page, less a
    fragment (from a fresh fragment page: the sweep drops the pool's
    fragment page between lengths, so no remainder is folded in); the skb is
    napi_build_skb() on what came back, with NET_SKB_PAD + NET_IP_ALIGN of
    headroom, and marked for recycling.  NULL above a page.
    """
    profile = kernel.profile
    pad = profile.NET_SKB_PAD + profile.NET_IP_ALIGN
    size = profile.SKB_HEAD_ALIGN(pad + length)
    if size > profile.PAGE_SIZE:
        return None
    page, offset, size = page_pool_dev_alloc(kernel, pool, size)
    if page is None:
        return None
    skb = skbuff.napi_build_skb(kernel, kernel.pages.page_address(page) + offset, size)
    if skb is None:
        return None
    skb_mark_for_recycle(skb)
    skbuff.skb_reserve(skb, pad)
    whole = size == profile.PAGE_SIZE
    skb.path = skb.head_source = "page_pool page" if whole else "page_pool fragment"
    return skb


def sweep_kernel(profile: Profile, function: str, lengths: range, gfp: str | None = None) -> KernelSweep:
    """Allocate and free once per length on one kernel, recording every answer."""
    check_function(profile, function, gfp)
    gfp_mask = parse_gfp(gfp) if gfp is not None else GFP_ATOMIC
    kernel = Kernel(profile)
    dev = net_device("eth0")
    napi = napi_struct(dev)
    if function == "napi_alloc_skb":
        def allocate(length):
            return skbuff.napi_alloc_skb(kernel, napi, length)
    elif function == "__napi_alloc_skb":
        def allocate(length):
            return skbuff.__napi_alloc_skb(kernel, napi, length, gfp_mask)
    elif function == "__netdev_alloc_skb":
        def allocate(length):
            return skbuff.__netdev_alloc_skb(kernel, dev, length, gfp_mask)
    elif function == "page_pool_dev_alloc":
        pool = page_pool_create(kernel, page_pool_params(napi=napi), name="sweep")[0]

        def allocate(length):
            return page_pool_skb(kernel, pool, length)
    else:
        def allocate(length):
            return skbuff.__alloc_skb(kernel, length, gfp_mask, 0)

    answers: list[Answer] = []
    seen: dict[tuple, Answer] = {}  # one Answer object per distinct answer keeps memory small
    failed = Answer(NULL, "-", None, None)
    with kernel.softirq():
        for length in lengths:
            skb = allocate(length)
            if skb is None:
                answers.append(failed)
                continue
            key = (skb.path, skb.head_source, skb.head_size, skb.truesize)
            answer = seen.get(key)
            if answer is None:
                answer = seen[key] = Answer(*key)
            answers.append(answer)
            skbuff.napi_consume_skb(kernel, skb, 64)
            if function == "page_pool_dev_alloc":
                page_pool_free_frag(kernel, pool)   # every length starts from a fresh fragment page
    if function == "page_pool_dev_alloc":
        page_pool_destroy(kernel, pool)
    report = kernel.leak_check()
    return KernelSweep(profile, function, format_gfp(gfp_mask), lengths, answers,
                       "clean" if report.clean else report.summary())


def sweep_driver_kernel(profile: Profile, driver_name: str, options: dict[str, str], lengths: range) -> KernelSweep:
    """One frame of every length through a driver's queue (NIC write, one NAPI poll), each skb freed before
    the next frame: the skb's builder, head source, head size and truesize per frame length."""
    from skbsim.drivers import get_driver
    from skbsim.drivers.base import make_frame
    from skbsim.net.napi import NAPI_POLL_WEIGHT, napi_list_del, napi_schedule

    if lengths.start < MIN_FRAME_LEN or lengths[-1] > MAX_FRAME_LEN:
        raise InputError(f"--len with --driver: frame lengths are {MIN_FRAME_LEN}..{MAX_FRAME_LEN}")
    driver = get_driver(driver_name)
    kernel = Kernel(profile)
    dev = net_device("eth0")
    napi = napi_struct(dev)
    queue = driver.open_queue(kernel, dev, napi, dict(options))
    answers: list[Answer] = []
    seen: dict[tuple, Answer] = {}
    failed = Answer(NULL, "-", None, None)
    for length in lengths:
        delivered = []
        if driver.nic_receive(kernel, queue, make_frame(length)):
            napi_schedule(napi, napi.cpu)
            driver.poll(kernel, queue, NAPI_POLL_WEIGHT, delivered.append)
            napi_list_del(napi)
        if not delivered:
            answers.append(failed)
            continue
        skb = delivered[0]
        key = (queue.last_path, skb.head_source, skb.head_size, skb.truesize)
        answer = seen.get(key)
        if answer is None:
            answer = seen[key] = Answer(*key)
        answers.append(answer)
        with kernel.softirq(napi.cpu):
            for skb in delivered:
                skbuff.kfree_skb(kernel, skb)
    with kernel.softirq(napi.cpu):
        driver.close_queue(kernel, queue)
    report = kernel.leak_check()
    label = driver_name + ("(" + ",".join(f"{k}={v}" for k, v in sorted(options.items())) + ")" if options else "")
    return KernelSweep(profile, label, "-", lengths, answers, "clean" if report.clean else report.summary(),
                       driver_name, dict(options))


def sweep(profiles: list[Profile], function: str, lengths: range, gfp: str | None = None,
          driver: str | None = None, options: dict[str, str] | None = None) -> list[KernelSweep]:
    """The same sweep on every profile (names must differ: they label the columns).

    With ``driver`` the lengths are frame lengths run through that driver
    (see :func:`sweep_driver_kernel`) instead of an allocation function.
    """
    names = [profile.name for profile in profiles]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(f"kernel {duplicates[0]} is given twice")
    if driver is not None:
        return [sweep_driver_kernel(profile, driver, options or {}, lengths) for profile in profiles]
    for profile in profiles:
        check_function(profile, function, gfp)
    return [sweep_kernel(profile, function, lengths, gfp) for profile in profiles]


@dataclass(frozen=True)
class Row:
    """One row of the comparison table: lengths first..last, and each kernel's answers there."""

    first: int
    last: int
    cells: tuple[tuple[Answer, ...], ...]  # per kernel: the distinct answers, in length order


def comparison_rows(sweeps: list[KernelSweep], by_path: bool = False) -> list[Row]:
    """Ranges where any kernel's answer changes; with ``by_path``, where its path or head source does.

    With ``by_path`` a cell may hold several answers (truesize growing with
    the length inside a page fragment range); the table shows their span.
    """
    if not sweeps:
        return []
    lengths = sweeps[0].lengths

    def key(answer: Answer):
        return (answer.path, answer.head_source) if by_path else answer

    # Indexes (into the range) where some kernel's answer changes, and the end.
    bounds = sorted({(span.first - lengths.start) // lengths.step for s in sweeps for span in s.spans(key)})
    bounds.append(len(lengths))
    rows: list[Row] = []
    for begin, end in zip(bounds, bounds[1:]):
        cells = []
        for s in sweeps:
            distinct: list[Answer] = []
            for answer in s.answers[begin:end]:
                if not distinct or distinct[-1] != answer:
                    distinct.append(answer)
            cells.append(tuple(distinct))
        rows.append(Row(lengths[begin], lengths[end - 1], tuple(cells)))
    return rows


def describe_cell(answers: tuple[Answer, ...]) -> str:
    """'1344 page_frag', or '1344..4352 page_frag' for a by-path cell."""
    first = answers[0]
    if first.truesize is None:
        return NULL
    sizes = [a.truesize for a in answers if a.truesize is not None]
    labels = []
    for answer in answers:
        if answer.label() not in labels:
            labels.append(answer.label())
    size = str(sizes[0]) if min(sizes) == max(sizes) else f"{min(sizes)}..{max(sizes)}"
    return f"{size} {', '.join(labels)}"


def _answer_dict(answer: Answer) -> dict:
    return {"path": answer.path, "head_source": answer.head_source, "head_size": answer.head_size,
            "truesize": answer.truesize}


def sweep_as_dict(sweeps: list[KernelSweep], rows: list[Row], by_path: bool) -> dict:
    """A sweep as ``skbsim sweep --json`` prints it (docs/schema/sweep.schema.json): the kernels, and
    each row of the comparison with every kernel's distinct answers there (truesize None: NULL).  A driver
    sweep names the driver and its options where an allocation sweep names the function and gfp mask."""
    first = sweeps[0]
    lengths = first.lengths
    call = ({"driver": first.driver, "options": first.options} if first.driver is not None
            else {"function": first.function, "gfp": first.gfp})
    return {
        **call,
        "lengths": {"first": lengths[0], "last": lengths[-1], "step": lengths.step, "count": len(lengths)},
        "by_path": by_path,
        "kernels": [{"kernel": s.name, "release": s.profile.release, "leak_check": s.leak_check} for s in sweeps],
        "rows": [{"first": row.first, "last": row.last,
                  "answers": {s.name: [_answer_dict(a) for a in cell] for s, cell in zip(sweeps, row.cells)}}
                 for row in rows],
    }


def write_csv(sweeps: list[KernelSweep], handle) -> None:
    """One row per length: for each kernel its path, head source, head size and truesize."""
    writer = csv.writer(handle)
    header = ["len"]
    for s in sweeps:
        header += [f"{s.name} path", f"{s.name} head_source", f"{s.name} head_size", f"{s.name} truesize"]
    writer.writerow(header)
    for index, length in enumerate(sweeps[0].lengths):
        row: list[object] = [length]
        for s in sweeps:
            a = s.answers[index]
            row += [a.path, a.head_source, "" if a.head_size is None else a.head_size,
                    "" if a.truesize is None else a.truesize]
        writer.writerow(row)


#: File types plot() writes (matplotlib picks the format by the suffix).
PLOT_SUFFIXES = (".png", ".svg", ".pdf")

#: Styles that keep lines visible where kernels agree and lie on top of each other.
_LINE_STYLES = (("-", 3.2), ("--", 2.4), ("-.", 1.8), (":", 1.4))


def plot(sweeps: list[KernelSweep], path: str, detail_limit: int = 1024) -> None:
    """A step plot of truesize against len, one line per kernel, written to ``path`` (PNG, SVG, PDF).

    When the range goes well past ``detail_limit`` a second panel shows the
    lengths up to it, where the small-head and 1K-fragment rules differ.
    """
    if not path.lower().endswith(PLOT_SUFFIXES):  # matplotlib would add ".png" to the name
        raise InputError(f"--plot {shown(path)}: the file name must end in {' or '.join(PLOT_SUFFIXES)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sweeps[0].lengths
    detail = lengths[-1] > 2 * detail_limit and lengths[0] < detail_limit
    fig, axes = plt.subplots(2 if detail else 1, 1, figsize=(10, 8.5 if detail else 5.5), squeeze=False)
    panels = [(axes[0][0], lengths[-1])] + ([(axes[1][0], detail_limit)] if detail else [])
    for axis, limit in panels:
        for number, s in enumerate(sweeps):
            xs: list[float] = []
            ys: list[float] = []
            for span in s.spans(key=lambda answer: answer.truesize):
                if span.first > limit:
                    break
                xs.append(span.first)
                ys.append(math.nan if span.answer.truesize is None else span.answer.truesize)
            xs.append(min(limit, lengths[-1]))
            ys.append(ys[-1])
            style, width = _LINE_STYLES[number % len(_LINE_STYLES)]
            axis.step(xs, ys, where="post", linestyle=style, linewidth=width, alpha=0.85,
                      label=f"Linux {s.name} ({s.profile.release})")
        axis.set_xlim(lengths[0], min(limit, lengths[-1]))
        axis.set_xlabel(f"len asked of {sweeps[0].function}() (bytes)")
        axis.set_ylabel("skb->truesize (bytes)")
        axis.grid(True, alpha=0.3)
        axis.legend(loc="upper left", fontsize=9)
    step = lengths.step
    axes[0][0].set_title(
        f"{sweeps[0].function}(): truesize against len"
        + (f" (every {step} bytes)" if step > 1 else "") + ", one line per kernel"
    )
    if detail:
        axes[1][0].set_title(f"detail: len up to {detail_limit}")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except (OSError, ValueError) as err:
        raise InputError(f"--plot {shown(path)}: cannot write the plot: {getattr(err, 'strerror', None) or err}") from None
    finally:
        plt.close(fig)
