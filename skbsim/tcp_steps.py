"""The step language of ``skbsim tcp`` and ``skbsim validate --tcp``, and the peer's SYN options.

A scenario is a list of steps, each one word of text (docs/tcp.md has the
whole language and the timing rules both the model and the live peer keep):

- ``send:P[xN][@F]`` - the peer sends N (default 1) in-order segments of P
  payload bytes, each in an Ethernet frame of at least F bytes (padding
  after the IP datagram; IP trims it, the skb keeps its truesize);
- ``read`` - the application reads everything queued; ``read:B`` - B bytes;
- ``readeach`` - from now on the application reads everything queued after
  every segment;
- ``hold`` / ``release`` - the application takes / releases the socket
  lock (segments in between go to the backlog);
- ``wait`` / ``wait:MS`` - simulated time passes (one step, or MS ms).

``parse_steps(texts)`` turns the words into :class:`Step` records and
``parse_syn(text)`` the ``--syn`` option into :class:`SynOptions`.  Bad
input raises :class:`~skbsim.errors.InputError` with one line that says
what is wrong and what is allowed.  Limits that depend on the driver or the
negotiated options (a frame the driver cannot take, a payload that does
not fit with the timestamp option) are checked where the scenario is
played (skbsim.tcp_session).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from skbsim.errors import InputError

#: Ethernet + IPv4 + TCP headers without options: the smallest frame of a segment.
ETH_HLEN = 14
IPV4_HLEN = 20
TCP_HLEN = 20
SEGMENT_OVERHEAD = ETH_HLEN + IPV4_HLEN + TCP_HLEN
#: An IPv4 datagram is at most 65535 bytes (tot_len is 16 bits): P <= 65535 - 20 - 20.
MAX_PAYLOAD = 65535 - IPV4_HLEN - TCP_HLEN
#: The largest frame a step may ask for.  A tap write may be larger than any
#: IP datagram (tun_get_user() takes the whole write; 6.6+ puts what exceeds
#: the linear part into page blocks), which is how a tap route reproduces a
#: driver's 64 KiB receive buffer; a driver's own limit is checked when the
#: scenario is played.
MAX_FRAME = 1 << 20
#: How many segments one send step may carry, how many bytes one read may ask
#: for, and the longest wait (an hour).
MAX_COUNT = 100_000
MAX_READ = 0x7FFFFFFF
MAX_WAIT_MS = 3_600_000

ACTIONS = ("send", "read", "readeach", "hold", "release", "wait")


@dataclass(frozen=True)
class Step:
    """One step of a scenario.

    ``action`` is one of :data:`ACTIONS`.  ``payload``, ``count`` and
    ``frame_len`` belong to ``send`` (``frame_len`` is F of ``@F``, None
    without it); ``nbytes`` to ``read`` (None: read everything queued);
    ``ms`` to ``wait`` (None: one step of ``--step-ms``).
    """

    action: str
    payload: int = 0
    count: int = 1
    frame_len: int | None = None
    nbytes: int | None = None
    ms: int | None = None

    def text(self) -> str:
        """The step written back in the step language (parse_steps([s.text()]) == [s])."""
        if self.action == "send":
            out = f"send:{self.payload}"
            if self.count != 1:
                out += f"x{self.count}"
            if self.frame_len is not None:
                out += f"@{self.frame_len}"
            return out
        if self.action == "read" and self.nbytes is not None:
            return f"read:{self.nbytes}"
        if self.action == "wait" and self.ms is not None:
            return f"wait:{self.ms}"
        return self.action


_SEND = re.compile(r"send:(\d+)(?:x(\d+))?(?:@(\d+))?")
_NUMBER = re.compile(r"\d+")

_GRAMMAR = "send:P[xN][@F], read, read:B, readeach, hold, release, wait or wait:MS"


def _bounded(value: str, low: int, high: int, what: str, step: str) -> int:
    number = int(value)
    if not low <= number <= high:
        raise InputError(f"step {step!r}: {what} {number} is outside {low}..{high}")
    return number


def parse_step(text: str) -> Step:
    """One step from its text; InputError naming the step and the rule it breaks."""
    word = text.strip()
    if word.startswith("send"):
        match = _SEND.fullmatch(word)
        if match is None:
            raise InputError(f"step {text!r} is not send:P[xN][@F] (e.g. send:1000x10@2000)")
        payload = _bounded(match.group(1), 1, MAX_PAYLOAD, "P (payload bytes of a segment; an IPv4 datagram "
                           "holds at most 65535 - 20 - 20)", word)
        count = 1 if match.group(2) is None else _bounded(match.group(2), 1, MAX_COUNT, "N (segments)", word)
        frame_len = None
        if match.group(3) is not None:
            frame_len = _bounded(match.group(3), SEGMENT_OVERHEAD, MAX_FRAME,
                                 "F (frame bytes; at least the 54 bytes of Ethernet, IPv4 and TCP headers)", word)
        return Step("send", payload=payload, count=count, frame_len=frame_len)
    name, sep, arg = word.partition(":")
    if name == "read":
        if not sep:
            return Step("read")
        if not _NUMBER.fullmatch(arg):
            raise InputError(f"step {text!r}: read:B needs a byte count B")
        return Step("read", nbytes=_bounded(arg, 1, MAX_READ, "B (bytes to read)", word))
    if name == "wait":
        if not sep:
            return Step("wait")
        if not _NUMBER.fullmatch(arg):
            raise InputError(f"step {text!r}: wait:MS needs a number of milliseconds")
        return Step("wait", ms=_bounded(arg, 0, MAX_WAIT_MS, "MS (milliseconds)", word))
    if name in ("readeach", "hold", "release") and not sep:
        return Step(name)
    raise InputError(f"unknown step {text!r} (steps: {_GRAMMAR})")


def parse_steps(texts: list[str]) -> list[Step]:
    """Steps from their texts, in order.

    An empty list is an error (nothing to play), and so are a ``release``
    without a ``hold`` before it, a ``hold`` while held and a ``read`` while
    held (the application holding the lock is not reading).
    """
    if not texts:
        raise InputError(f"no steps given (steps: {_GRAMMAR})")
    steps = [parse_step(text) for text in texts]
    held = False
    for step in steps:
        if step.action == "hold":
            if held:
                raise InputError("step 'hold' while the socket lock is already held (release it first)")
            held = True
        elif step.action == "release":
            if not held:
                raise InputError("step 'release' without a 'hold' before it")
            held = False
        elif step.action == "read" and held:
            raise InputError(f"step {step.text()!r} while the socket lock is held (release it first)")
    return steps


# -- the peer's SYN ---------------------------------------------------------------------------

#: TCP_MIN_MSS and the largest MSS option value.
MIN_MSS = 88
MAX_MSS = 65535
#: TCP_MAX_WSCALE.
MAX_WSCALE = 14


@dataclass(frozen=True)
class SynOptions:
    """The options of the peer's SYN: MSS, window scale (None: no wscale option),
    timestamps and SACK permitted."""

    mss: int = 1460
    wscale: int | None = 7
    ts: bool = False
    sack: bool = False

    def text(self) -> str:
        wscale = "none" if self.wscale is None else str(self.wscale)
        return f"mss={self.mss},wscale={wscale},ts={int(self.ts)},sack={int(self.sack)}"


DEFAULT_SYN = SynOptions()

_SYN_KEYS = ("mss", "wscale", "ts", "sack")


def parse_syn(text: str) -> SynOptions:
    """``mss=1460,wscale=7,ts=0,sack=0`` (any subset; the rest keep these defaults).

    ``wscale=none`` leaves the window scale option out of the SYN (the
    receiver then uses no scaling either).
    """
    values: dict[str, object] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key:
            raise InputError(f"--syn {text!r}: {part.strip()!r} is not KEY=VALUE (keys: {', '.join(_SYN_KEYS)})")
        if key not in _SYN_KEYS:
            raise InputError(f"--syn: unknown option {key!r} (known: {', '.join(_SYN_KEYS)})")
        if key in values:
            raise InputError(f"--syn: {key} given twice")
        value = value.strip()
        if key == "wscale" and value == "none":
            values[key] = None
            continue
        if not _NUMBER.fullmatch(value):
            raise InputError(f"--syn: {key}={value!r} is not a number")
        number = int(value)
        if key == "mss" and not MIN_MSS <= number <= MAX_MSS:
            raise InputError(f"--syn: mss={number} is outside {MIN_MSS}..{MAX_MSS}")
        if key == "wscale" and not 0 <= number <= MAX_WSCALE:
            raise InputError(f"--syn: wscale={number} is outside 0..{MAX_WSCALE} (or 'none')")
        if key in ("ts", "sack"):
            if number not in (0, 1):
                raise InputError(f"--syn: {key}={number} must be 0 or 1")
            values[key] = bool(number)
            continue
        values[key] = number
    return SynOptions(**{**DEFAULT_SYN.__dict__, **values})
