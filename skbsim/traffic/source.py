"""The source protocol shared by synthetic and capture sources, and chunking."""

from __future__ import annotations

from array import array
from itertools import islice
from typing import Iterable, Iterator

from skbsim.errors import InputError
from skbsim.traffic.frame import Frame


class FrameSource:
    """An iterable of :class:`Frame` that can be iterated again.

    Every ``iter(source)`` starts the same stream from the beginning (same
    seed, same file), so a source can be replayed against several kernels.
    Iteration is lazy: memory does not grow with the number of frames.
    """

    __slots__ = ()

    #: number of frames the stream will yield, or None if unknown (a capture
    #: read to its end)
    count: int | None = None

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def length_batches(self, n: int) -> Iterator[list[int]]:
        """Frame lengths in lists of ``n`` (the last may be shorter).

        Sources that can produce lengths without building frames override
        this; the result must equal ``[f.length for f in self]`` grouped.
        """
        return _group_lengths(self, n)


def chunks(source: Iterable[Frame] | FrameSource, n: int) -> Iterator[array]:
    """Frame lengths in ``array('I')`` chunks of ``n`` (the last may be shorter).

    For a vectorised engine: uses the source's own fast path when it has one
    (synthetic sources never build :class:`Frame` objects here), otherwise
    groups ``frame.length`` of any iterable of frames.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"chunk size must be a positive integer, got {n!r}")
    if isinstance(source, FrameSource):
        batches = source.length_batches(n)
    else:
        batches = _group_lengths(source, n)
    return (array("I", batch) for batch in batches)


def _group_lengths(frames: Iterable[Frame], n: int) -> Iterator[list[int]]:
    frames = iter(frames)
    while True:
        batch = [frame.length for frame in islice(frames, n)]
        if not batch:
            return
        yield batch
