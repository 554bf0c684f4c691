"""Received-frame streams for the simulator.

``parse_traffic(spec, ...)`` turns a ``--traffic`` spec into a re-iterable
:class:`FrameSource` of :class:`Frame` records; ``chunks(source, n)`` gives
their lengths as ``array('I')`` batches for a vectorised engine. RSS
(Toeplitz hash + indirection table) lives in :mod:`skbsim.traffic.rss`.
See docs/traffic.md.
"""

from skbsim.traffic.capture import CaptureSource
from skbsim.traffic.frame import HEADER_BYTES, MAX_FRAME_LEN, MIN_FRAME_LEN, Frame
from skbsim.traffic.rss import (DEFAULT_INDIRECTION_SIZE, MICROSOFT_RSS_KEY, FlowClassifier,
                                RssConfig, Toeplitz)
from skbsim.traffic.source import FrameSource, chunks
from skbsim.traffic.spec import parse_traffic
from skbsim.traffic.synthetic import SIMPLE_IMIX, SIMPLE_IMIX_WITH_FCS, SyntheticSource

__all__ = [
    "CaptureSource", "DEFAULT_INDIRECTION_SIZE", "FlowClassifier", "Frame", "FrameSource",
    "HEADER_BYTES", "MAX_FRAME_LEN", "MICROSOFT_RSS_KEY", "MIN_FRAME_LEN", "RssConfig",
    "SIMPLE_IMIX", "SIMPLE_IMIX_WITH_FCS", "SyntheticSource", "Toeplitz", "chunks",
    "parse_traffic",
]
