"""``--traffic`` spec strings -> frame sources. Library API, no CLI code."""

from __future__ import annotations

import math
import re
import sys

from skbsim.errors import InputError
from skbsim.files import MAX_DIST_BYTES, read_bounded, shown
from skbsim.traffic.capture import CaptureSource
from skbsim.traffic.frame import MAX_FRAME_LEN, MIN_FRAME_LEN
from skbsim.traffic.rss import DEFAULT_INDIRECTION_SIZE, MICROSOFT_RSS_KEY, RssConfig
from skbsim.traffic.source import FrameSource
from skbsim.traffic.synthetic import (ARRIVALS, FixedLength, SyntheticSource, TcpBulk, TcpBulkSource,
                                      UniformLength, WeightedLength, imix_deterministic, imix_random)

SPEC_HELP = ("fixed:N, uniform:A-B, imix, imix:random, dist:FILE.csv, tcp-bulk[:mss=N,ts=0|1] or pcap:FILE")
#: The largest payload a tcp-bulk segment may carry (its frame stays within 65535 bytes).
TCP_BULK_MAX_MSS = 65535 - 66
#: More synthetic flows than this is a typo, not an experiment.
MAX_FLOWS = 1 << 24

_DIGITS = re.compile(r"[0-9]+")


def parse_length(text: str, what: str) -> int:
    """A frame length in bytes: decimal digits, 14..65535."""
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        raise InputError(f"{what}: frame length {text!r} is not a whole number of bytes")
    value = int(text)
    if value > 0xFFFFFFFF:
        raise InputError(f"{what}: frame length {value} does not fit in 32 bits "
                         f"(frames are {MIN_FRAME_LEN}..{MAX_FRAME_LEN} bytes)")
    if not MIN_FRAME_LEN <= value <= MAX_FRAME_LEN:
        raise InputError(f"{what}: frame length {value} outside "
                         f"{MIN_FRAME_LEN}..{MAX_FRAME_LEN}")
    return value


def read_distribution(path: str) -> WeightedLength:
    """A ``dist:`` CSV: ``length,weight`` per line, ``#`` starts a comment.

    An optional first line ``length,weight`` is a header. Weights are positive
    finite numbers (relative, need not sum to 1); each length appears once.
    """
    data = read_bounded(path, MAX_DIST_BYTES, "dist:")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise InputError(f"dist:{shown(path)}: not UTF-8 text (byte offset {err.start})") from None
    entries = []
    first_line_of = {}
    total = 0.0
    for lineno, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{shown(path)}:{lineno}"
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 2:
            raise InputError(f"{where}: expected 'length,weight', got {line!r}")
        if not entries and [x.lower() for x in fields] == ["length", "weight"]:
            continue
        length = parse_length(fields[0], where)
        try:
            weight = float(fields[1])
        except ValueError:
            raise InputError(f"{where}: weight {fields[1]!r} is not a number") from None
        if not math.isfinite(weight) or weight <= 0:
            raise InputError(f"{where}: weight {fields[1]!r} must be a positive finite number")
        if length in first_line_of:
            raise InputError(f"{where}: length {length} already given on line "
                             f"{first_line_of[length]}")
        total += weight
        if not math.isfinite(total):
            # random.choices() draws against the running sum: an infinite one would be a traceback later
            raise InputError(f"{where}: the weights so far add up to more than the largest float "
                             f"({sys.float_info.max:.3g}); scale them down")
        first_line_of[length] = lineno
        entries.append((length, weight))
    if not entries:
        raise InputError(f"dist:{shown(path)}: no 'length,weight' lines")
    return WeightedLength(entries, f"dist:{shown(path)} ({len(entries)} lengths)")


def parse_tcp_bulk(argument: str, spec: str) -> TcpBulk:
    """``mss=N,ts=0|1`` (both optional; default MSS 1448 with timestamps, 1460 without)."""
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in argument.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("mss", "ts") or key in values:
            raise InputError(f"traffic spec {spec!r}: expected tcp-bulk[:mss=N][,ts=0|1], got {item!r}")
        values[key] = value.strip()
    timestamps = values.get("ts", "1")
    if timestamps not in ("0", "1"):
        raise InputError(f"traffic spec {spec!r}: ts must be 0 or 1, got {timestamps!r}")
    mss = None
    if "mss" in values:
        if not _DIGITS.fullmatch(values["mss"]):
            raise InputError(f"traffic spec {spec!r}: mss {values['mss']!r} is not a whole number of bytes")
        mss = int(values["mss"])
        if not 1 <= mss <= TCP_BULK_MAX_MSS:
            raise InputError(f"traffic spec {spec!r}: mss {mss} outside 1..{TCP_BULK_MAX_MSS}")
    return TcpBulk(mss, timestamps == "1")


def _check_int(value, name: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f"..{maximum}"
        raise InputError(f"{name} must be {minimum}{upper or ' or more'}, got {value}")
    return value


def parse_traffic(spec: str, *, count: int | None = None, seed: int = 0, flows: int = 1,
                  rate: float | None = None, arrival: str = "constant", nqueues: int = 1,
                  rss: bool | None = None, headers: bool = True,
                  rss_key: bytes = MICROSOFT_RSS_KEY,
                  indirection_size: int = DEFAULT_INDIRECTION_SIZE) -> FrameSource:
    """Build the frame source a ``--traffic`` spec names.

    Args:
        spec: ``fixed:N`` | ``uniform:A-B`` | ``imix`` | ``imix:random`` |
            ``dist:FILE.csv`` | ``tcp-bulk[:mss=N,ts=0|1]`` | ``pcap:FILE``
            (pcap or pcapng, sniffed).
        count: frames to generate (required for synthetic sources); for a
            capture, an upper bound (None: the whole file).
        seed: seeds every random stream (lengths, flow choice, arrivals).
        flows: number of synthetic UDP/IPv4 (tcp-bulk: TCP/IPv4) flows
            (synthetic sources only).
        rate: frames per second; None means all frames at t=0 for synthetic
            sources and the capture's own timestamps for ``pcap:``.
        arrival: ``constant`` or ``poisson`` (exponential gaps); needs a rate
            to have any effect.
        nqueues: RX queues the indirection table spreads hashes over.
        rss: parse flows and hash capture frames; default: only when
            ``nqueues > 1``. Synthetic frames always carry flow and hash.
        headers: fill :attr:`Frame.header`.
        rss_key, indirection_size: RSS key (>= 40 bytes) and table entries
            (power of two, entry ``i`` = ``i % nqueues``).

    Returns a re-iterable :class:`FrameSource` with ``describe()``.
    Raises :class:`InputError` (one line) on any bad argument or file.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"empty traffic spec: expected {SPEC_HELP}")
    spec = spec.strip()
    if count is not None:
        _check_int(count, "frame count", 0)
    _check_int(seed, "seed", -(1 << 63), (1 << 64) - 1)
    _check_int(flows, "number of flows", 1, MAX_FLOWS)
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) \
                or not math.isfinite(rate) or rate <= 0:
            raise InputError(f"rate must be a positive number of frames per second, got {rate!r}")
        rate = float(rate)
    if arrival not in ARRIVALS:
        raise InputError(f"unknown arrival process {arrival!r}: expected "
                         f"{' or '.join(ARRIVALS)}")
    if arrival == "poisson" and rate is None:
        raise InputError("poisson arrivals need a rate (frames per second)")
    rss_config = RssConfig(nqueues, key=rss_key, table_size=indirection_size)

    kind, _, argument = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("pcap", "pcapng"):
        if not argument:
            raise InputError(f"traffic spec {spec!r}: {kind}: needs a file name")
        if flows != 1:
            raise InputError("--flows applies to synthetic traffic, not to a capture")
        parse_flows = nqueues > 1 if rss is None else bool(rss)
        return CaptureSource(argument, count=count, seed=seed, rate=rate, arrival=arrival,
                             rss=rss_config, parse_flows=parse_flows, headers=headers)

    if kind == "fixed":
        lengths = FixedLength(parse_length(argument, f"traffic spec {spec!r}"))
    elif kind == "uniform":
        low, dash, high = argument.partition("-")
        if not dash:
            raise InputError(f"traffic spec {spec!r}: expected uniform:A-B, e.g. uniform:60-1514")
        low = parse_length(low, f"traffic spec {spec!r}")
        high = parse_length(high, f"traffic spec {spec!r}")
        if low > high:
            raise InputError(f"traffic spec {spec!r}: lower bound {low} above upper bound {high}")
        lengths = UniformLength(low, high)
    elif kind == "imix":
        variant = argument.strip().lower()
        if variant in ("", "cycle"):
            lengths = imix_deterministic()
        elif variant == "random":
            lengths = imix_random()
        else:
            raise InputError(f"traffic spec {spec!r}: expected imix or imix:random")
    elif kind == "dist":
        if not argument:
            raise InputError(f"traffic spec {spec!r}: dist: needs a CSV file name")
        lengths = read_distribution(argument)
    elif kind == "tcp-bulk":
        tcp = parse_tcp_bulk(argument, spec)
        if count is None:
            raise InputError(f"traffic spec {spec!r} needs a frame count")
        return TcpBulkSource(tcp, count=count, seed=seed, flows=flows, rate=rate, arrival=arrival,
                             rss=rss_config, headers=headers)
    else:
        raise InputError(f"unknown traffic spec {spec!r}: expected {SPEC_HELP}")

    if count is None:
        raise InputError(f"traffic spec {spec!r} needs a frame count")
    return SyntheticSource(lengths, count=count, seed=seed, flows=flows, rate=rate,
                           arrival=arrival, rss=rss_config, headers=headers)
