"""The interface between the simulator and a modelled NIC driver's receive path.

A driver is a :class:`Driver` record of four functions and its options:

``open_queue(kernel, dev, napi, options) -> queue``
    Bring one RX queue up as the driver's ndo_open does: size the ring,
    post its buffers (allocating them from ``kernel``).  ``options`` maps
    option names to strings, as typed by a user (``{"mtu": "9000"}``);
    unknown names and bad values raise :class:`~skbsim.errors.InputError`
    with one line naming the option.  Runs in process context.
``nic_receive(kernel, queue, frame) -> bool``
    The NIC side: DMA one :class:`~skbsim.traffic.frame.Frame` into posted
    descriptors and mark them done.  False when the NIC drops the frame (no
    free descriptor for all of it, or longer than the queue accepts); the
    queue's stats say which.  No CPU context: hardware does this.
``poll(kernel, queue, budget, deliver) -> int``
    The driver's NAPI poll, in NET_RX softirq on ``napi.cpu``: process up to
    ``budget`` frames, build their skbs, run eth_type_trans and hand each to
    GRO where the kernel's driver does (skbsim.net.gro.napi_gro_receive(),
    napi_gro_frags()), refill the ring as the driver does, and return what
    the driver's poll returns (``budget`` means "poll me again"; less means
    done, after napi_complete_done(), which flushes GRO).  ``deliver(skb)``
    is the stack behind GRO (netif_receive_skb_list_internal(); a driver
    that bypasses NAPI calls it directly as netif_receive_skb()); ownership
    of each skb passes to it.  Callers use :meth:`Driver.poll`, which adds
    __napi_poll()'s GRO flush after a poll that used its whole budget.
``close_queue(kernel, queue)``
    Take the queue down (ndo_stop): every buffer the ring holds goes back,
    so a leak check afterwards sees only what the stack still holds.

Every queue has ``driver`` (its name), ``dev``, ``napi``, ``stats`` (an
:class:`RxQueueStats`), ``config`` (a dict of the effective options and
the geometry derived from them, for reports) and ``last_path`` (the driver
function that built the most recently delivered skb, e.g. ice_build_skb).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

from skbsim.errors import InputError
from skbsim.kernel import HZ
from skbsim.net.gro import gro_flush_normal, netif_set_gro
from skbsim.net.napi import GRO_LEGACY_MAX_SIZE, GRO_MAX_SIZE
from skbsim.traffic.frame import Frame, SyntheticHeaderTemplate

if TYPE_CHECKING:
    from skbsim.kernel import Kernel
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import sk_buff

#: The synthetic flow of frames that carry no header bytes: TEST-NET-1
#: receiver 192.0.2.1 (as skbsim.traffic uses), sender 198.18.0.1, UDP.
_SYNTHETIC_SRC = bytes((198, 18, 0, 1))
_SYNTHETIC_DST = bytes((192, 0, 2, 1))
_SYNTHETIC_SPORT = 40000
_SYNTHETIC_DPORT = 5000


class DriverOption:
    """One ``key=value`` option of a driver: its default (as text), help and parser.

    ``parse(text)`` returns the typed value or raises InputError with a
    message that names the option.
    """

    __slots__ = ("name", "default", "help", "parse")

    def __init__(self, name: str, default: str, help: str, parse: Callable[[str], object]):
        self.name = name
        self.default = default
        self.help = help
        self.parse = parse


def int_option(name: str, low: int, high: int, what: str = "") -> Callable[[str], int]:
    """A parser for an integer option in low..high."""

    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise InputError(f"option {name}={text!r} is not an integer") from None
        if not low <= value <= high:
            raise InputError(f"option {name}={value} is outside {low}..{high}{what}")
        return value

    return parse


def choice_option(name: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    """A parser for an option that takes one of a few words."""

    def parse(text: str) -> str:
        if text not in choices:
            raise InputError(f"option {name}={text!r} must be one of {', '.join(choices)}")
        return text

    return parse


def parse_options(driver: str, known: tuple[DriverOption, ...], options: dict[str, str] | None) -> dict[str, object]:
    """Typed values for every option: the given ones parsed, the rest from defaults."""
    options = dict(options or {})
    by_name = {option.name: option for option in known}
    for name in options:
        if name not in by_name:
            names = ", ".join(by_name) or "none"
            raise InputError(f"unknown option {name!r} for driver {driver} (known: {names})")
    values = {}
    for option in known:
        text = options.get(option.name, option.default)
        if not isinstance(text, str):
            raise InputError(f"option {option.name} must be given as text, not {type(text).__name__}")
        values[option.name] = option.parse(text)
    return values


def parse_opt_assignments(assignments: list[str] | None) -> dict[str, str]:
    """``["mtu=9000", "rx=legacy"]`` (from repeated --opt) as a dict; a repeated key is an error."""
    options: dict[str, str] = {}
    for text in assignments or []:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--opt {text!r} is not key=value")
        if key in options:
            raise InputError(f"--opt {key} given twice")
        options[key] = value.strip()
    return options


class RxQueueStats:
    """Per-queue counters (the drivers' ring_stats and rx_stats, plus what the model sees).

    frames / bytes: frames handed to the stack and their wire lengths.
    nic_frames: frames the NIC wrote into the ring.
    ring_drops: frames the NIC dropped for want of free descriptors.
    oversize_drops: frames longer than the queue accepts (rxmax), dropped by the NIC.
    frames_dropped: frames the driver dropped after DMA (no skb, error bits).
    buffers_used: descriptors' buffers the driver cleaned.
    buffers_reused: buffers put back on the ring (page recycled, copied out).
    buffers_released: buffers whose memory went to the stack or back to the
        allocator, so the ring needs a new one.
    buffers_copied: buffers whose whole content was copied into an skb head.
    bytes_copied: bytes copied into skb heads (headers or whole frames).
    skb_alloc_failures: skb allocations (napi_build_skb, napi_alloc_skb) that failed.
    buffer_alloc_failures: ring refill allocations that failed.
    pages_allocated: pages (of any order) the ring took from the page allocator.
    polls: calls of poll().

    drop_log, when a list (the simulator sets one for --trace), gets the wire
    length of each frame the driver drops after DMA (drop()).
    """

    COUNTERS = (
        "frames",
        "bytes",
        "nic_frames",
        "ring_drops",
        "oversize_drops",
        "frames_dropped",
        "buffers_used",
        "buffers_reused",
        "buffers_released",
        "buffers_copied",
        "bytes_copied",
        "skb_alloc_failures",
        "buffer_alloc_failures",
        "pages_allocated",
        "polls",
    )
    __slots__ = COUNTERS + ("drop_log",)

    def __init__(self) -> None:
        for name in self.COUNTERS:
            setattr(self, name, 0)
        self.drop_log: list[int] | None = None

    def drop(self, frame_len: int) -> None:
        """A frame of frame_len wire bytes dropped by the driver after DMA."""
        self.frames_dropped += 1
        if self.drop_log is not None:
            self.drop_log.append(frame_len)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNTERS}

    def delta(self, before: dict[str, int]) -> dict[str, int]:
        """What changed since ``before`` (an earlier as_dict())."""
        return {name: getattr(self, name) - before[name] for name in self.COUNTERS}


class RxQueue(Protocol):
    """What every driver's queue object offers the simulator."""

    driver: str
    dev: net_device
    napi: napi_struct
    stats: RxQueueStats
    config: dict
    last_path: str


Deliver = Callable[["sk_buff"], None]


class Driver:
    """A modelled driver: name, what it is modelled on, options and its four functions.

    ``napi_poll`` is the driver's poll as the kernel registers it;
    :meth:`poll` is net/core/dev.c's __napi_poll() around it (what callers
    use).
    """

    __slots__ = ("name", "summary", "options", "open_queue", "nic_receive", "napi_poll", "close_queue")

    def __init__(
        self,
        name: str,
        summary: str,
        options: tuple[DriverOption, ...],
        open_queue: Callable[[Kernel, net_device, napi_struct, dict[str, str]], RxQueue],
        nic_receive: Callable[[Kernel, RxQueue, Frame], bool],
        poll: Callable[[Kernel, RxQueue, int, Deliver], int],
        close_queue: Callable[[Kernel, RxQueue], None],
    ):
        self.name = name
        self.summary = summary
        self.options = options
        self.open_queue = open_queue
        self.nic_receive = nic_receive
        self.napi_poll = poll
        self.close_queue = close_queue

    def poll(self, kernel: Kernel, queue: RxQueue, budget: int, deliver: Deliver) -> int:
        """net/core/dev.c: __napi_poll() - the driver's poll, then GRO's flush if it used its budget.

        A poll that did less completed NAPI itself (napi_complete_done()
        flushed GRO); one that used all of its budget stays scheduled, and
        __napi_poll() completes the skbs GRO holds (only those older than
        this jiffy when HZ >= 1000; here HZ is 250: all of them) and passes
        the batch up.  Either way nothing waits in GRO's batch afterwards.
        """
        work = self.napi_poll(kernel, queue, budget, deliver)
        if work >= budget:
            gro_flush_normal(kernel, queue.napi.gro, HZ >= 1000, deliver, "budget")
        return work

    def option_help(self, defaults: dict[str, str] | None = None) -> list[str]:
        """One line per option: its default (``defaults`` first: skbsim's own, see DEFAULT_OPTIONS) and help."""
        defaults = defaults or {}
        return [f"{option.name}={defaults.get(option.name, option.default)}: {option.help}" for option in self.options]


#: What every NAPI driver's device accepts about GRO: ``ethtool -K DEV gro on|off``,
#: ``ip link set DEV gro_max_size N gro_ipv4_max_size N`` and its gro_flush_timeout.
GRO_OPTIONS = (
    DriverOption("gro", "1", "0: GRO off (ethtool -K DEV gro off, netif_elide_gro()): every skb goes up as the "
                 "driver built it", choice_option("gro", ("0", "1"))),
    DriverOption("gro_max_size", str(GRO_LEGACY_MAX_SIZE), f"GRO's aggregate size limit in bytes (ip link set DEV "
                 f"gro_max_size N gro_ipv4_max_size N), 1..{GRO_MAX_SIZE}; above 65536 is BIG TCP",
                 int_option("gro_max_size", 1, GRO_MAX_SIZE)),
    DriverOption("gro_flush_timeout", "0", "ns (/sys/class/net/DEV/gro_flush_timeout), 0..1000000000: a poll that "
                 "did work keeps what GRO held during this jiffy and a timer passes it up after this long",
                 int_option("gro_flush_timeout", 0, 1_000_000_000)),
)


def netdev_set_gro(dev: net_device, values: dict[str, object]) -> None:
    """Apply parsed :data:`GRO_OPTIONS` to the device (the NAPI drivers' open_queue calls it)."""
    netif_set_gro(dev, values["gro"] == "1")
    dev.gro_max_size = dev.gro_ipv4_max_size = values["gro_max_size"]
    dev.gro_flush_timeout = values["gro_flush_timeout"]


def synthetic_header_template() -> SyntheticHeaderTemplate:
    """The header builder for frames without header bytes (a queue keeps one: building it costs microseconds)."""
    return SyntheticHeaderTemplate(_SYNTHETIC_SRC, _SYNTHETIC_DST, _SYNTHETIC_SPORT, _SYNTHETIC_DPORT)


def frame_header(frame: Frame, template: SyntheticHeaderTemplate | None = None) -> bytes:
    """The frame's leading bytes, or those of a synthetic Ethernet+IPv4+UDP frame of its length.

    Synthetic frames shorter than 42 bytes carry the local experimental
    EtherType 0x88B5 instead (see skbsim.traffic.frame).
    """
    if frame.header is not None:
        return frame.header
    if template is None:
        template = synthetic_header_template()
    return template.build(frame.length)


def make_frame(length: int, header: bytes | None = None) -> Frame:
    """A Frame for one injected frame of ``length`` wire bytes (no FCS)."""
    return Frame(length, 0, None, 0, 0, header)
