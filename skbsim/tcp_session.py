"""One receiving TCP socket played against a scripted peer: the library behind ``skbsim tcp``.

``play(kernel, driver, options, steps, ...)`` opens one RX queue of the
driver on a fresh model kernel, makes a listening IPv4 socket (SO_RCVBUF
before listen() when ``so_rcvbuf`` is given), lets the peer open a
connection with the SYN options ``syn``, then plays the steps (see
skbsim.tcp_steps) and returns one JSON-ready dict per kernel:

``{"kernel", "driver", "options", "synack": {"win", "wscale", "mss"}, "steps": [record, ...]}``

Each record has the keys ``i``, ``action``, ``payload``, ``frame_len``,
``truesize``, ``route``, ``verdict``, ``acks``, ``mem``, ``info`` and
``counters`` (and ``explain`` with explain=True).  docs/tcp.md defines every
key, the timing rules (when segments arrive, when a record's figures are
taken, which ACKs belong to which record) and the peer's behaviour;
docs/schema/tcp.schema.json is the same as a JSON Schema.  skbsim validate
--tcp plays the same steps against the running kernel and compares.
"""

from __future__ import annotations

from skbsim.tcp_steps import DEFAULT_SYN, Step, SynOptions

#: Simulated time between two segments of one send step (docs/tcp.md, "Timing").
SEGMENT_US = 1000
#: The default length of a step, and of a bare ``wait``.
STEP_MS = 250

#: TcpExt counters every record carries, cumulative from the start of the scenario.
COUNTERS = (
    "PruneCalled",
    "RcvPruned",
    "TCPRcvCollapsed",
    "TCPRcvCoalesce",
    "TCPBacklogCoalesce",
    "TCPRcvQDrop",
    "TCPZeroWindowDrop",
    "TCPWantZeroWindowAdv",
    "TCPToZeroWindowAdv",
    "TCPFromZeroWindowAdv",
    "TCPBacklogDrop",
    "TCPOFOQueue",
)
#: SO_MEMINFO fields every record carries (include/uapi/linux/sock_diag.h names).
MEM_KEYS = ("rmem_alloc", "rcvbuf", "fwd_alloc", "backlog", "drops")
#: tcp_info fields (and window_clamp, scaling_ratio) every record carries.
INFO_KEYS = ("rcv_wscale", "rcv_mss", "rcv_ssthresh", "advmss", "rcv_space", "rcv_wnd", "window_clamp",
             "scaling_ratio")
#: Keys of every step record, in order.
RECORD_KEYS = ("i", "action", "payload", "frame_len", "truesize", "route", "verdict", "acks", "mem", "info",
               "counters")
#: Routes a segment takes into the socket.
ROUTES = ("fast", "slow", "backlog", "ofo")


def play(
    kernel: str,
    driver: str,
    options: dict,
    steps: list[Step],
    *,
    so_rcvbuf: int | None = None,
    cc: str = "cubic",
    syn: SynOptions = DEFAULT_SYN,
    step_ms: int = STEP_MS,
    explain: bool = False,
    kernel_config: str | None = None,
    segment_us: int = SEGMENT_US,
) -> dict:
    """Play ``steps`` against one receiving socket on ``kernel`` behind ``driver``.

    ``kernel`` is a profile name, a profile .toml or "host"; ``options`` the
    driver options as strings (``{"copybreak": "3646"}``); ``so_rcvbuf`` the
    SO_RCVBUF value set on the listener before listen() (None: not set);
    ``cc`` the congestion control, "cubic" or "bbr" (it decides sk_sndbuf,
    and with it the backlog limit).  Returns the per-kernel dict described in
    the module docstring.  Bad input raises InputError; the kernel's leak
    check runs at the end and a leak raises AssertionError (a model bug).
    """
    raise NotImplementedError("the TCP model is being written; the interface and its JSON shape are fixed "
                              "(docs/tcp.md, docs/schema/tcp.schema.json)")
