"""Measurements on the running kernel: inject frames, read back the skbs.

:func:`measure` creates a namespace + TAP (skbsim.live.tap), traces the
receive events of that TAP only (skbsim.live.tracefs), writes frames of
the requested lengths and pairs every frame with the event it caused.
Frames are written in batches; the events fire synchronously inside the
write() (tun_get_user() delivers in process context, and the IFF_NAPI
poll runs from the local_bh_enable() at its end), so after a batch the
buffer holds exactly one primary event per frame, in write order.  Each
pairing is checked (count, and record len = frame length or frame length
minus the 14 bytes eth_type_trans() pulled) before it is accepted.

:func:`udp_loopback_meminfo` and :func:`udp_tap_meminfo` look at the other
end: a bound UDP socket's SO_MEMINFO after each datagram.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import socket
import struct
from collections.abc import Iterable, Sequence

from skbsim.errors import InputError
from skbsim.live.tap import (
    ETH_HLEN,
    ETH_P_LOCAL_EXPERIMENTAL,
    IPV4_UDP_OVERHEAD,
    Netns,
    Tap,
    ethernet_frame,
    ipv4_udp_frame,
    tap_in_new_netns,
)
from skbsim.live.tracefs import TRACEFS_ROOT, TraceInstance, sigterm_as_interrupt, tracefs_mounted

PAGE_SIZE = 4096


class ProbeMismatch(RuntimeError):
    """The trace did not show one event per injected frame as expected."""


class Route:
    """How frames enter the stack through tun, and which event reports them."""

    __slots__ = ("name", "napi", "napi_frags", "nonblocking", "event", "description")

    def __init__(self, name: str, *, napi: bool, napi_frags: bool, nonblocking: bool,
                 event: str, description: str) -> None:
        self.name = name
        self.napi = napi
        self.napi_frags = napi_frags
        self.nonblocking = nonblocking
        self.event = event
        self.description = description


ROUTES: dict[str, Route] = {route.name: route for route in (
    Route("blocking", napi=False, napi_frags=False, nonblocking=False,
          event="net/netif_receive_skb_entry",
          description="blocking write: tun_alloc_skb -> sock_alloc_send_pskb -> netif_receive_skb"),
    Route("nonblocking", napi=False, napi_frags=False, nonblocking=True,
          event="net/netif_receive_skb_entry",
          description="O_NONBLOCK write: tun_build_skb (short frames) -> netif_receive_skb"),
    Route("napi", napi=True, napi_frags=False, nonblocking=False,
          event="net/napi_gro_receive_entry",
          description="IFF_NAPI, blocking write: tun_alloc_skb -> tun_napi_receive -> napi_gro_receive"),
    Route("napi_nonblocking", napi=True, napi_frags=False, nonblocking=True,
          event="net/napi_gro_receive_entry",
          description="IFF_NAPI, O_NONBLOCK write: tun_build_skb -> napi_gro_receive"),
    Route("napi_frags", napi=True, napi_frags=True, nonblocking=False,
          event="net/napi_gro_frags_entry",
          description="IFF_NAPI|IFF_NAPI_FRAGS, writev: tun_napi_alloc_frags -> napi_gro_frags"),
)}


def requirements_missing(tracefs_root: str = TRACEFS_ROOT) -> list[str]:
    """What this machine lacks for the live probes; empty when all is there."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("root (uid 0) for netns, /dev/net/tun and tracefs")
    if not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun (CONFIG_TUN)")
    elif not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        missing.append("read/write access to /dev/net/tun")
    if shutil.which("ip") is None:
        missing.append("the ip command (iproute2)")
    if not tracefs_mounted(tracefs_root):
        try:
            with open("/proc/filesystems") as handle:
                has_tracefs = any(line.split()[-1] == "tracefs" for line in handle if line.strip())
        except OSError:
            has_tracefs = False
        if not has_tracefs:
            missing.append("tracefs (CONFIG_TRACING)")
        elif os.geteuid() != 0:
            missing.append(f"tracefs mounted at {tracefs_root}")
    elif not os.path.isdir(os.path.join(tracefs_root, "events", "net", "netif_receive_skb_entry")):
        missing.append("the net/netif_receive_skb_entry trace event")
    if not os.path.exists("/proc/self/ns/net"):
        missing.append("network namespaces (CONFIG_NET_NS)")
    return missing


def _frags_segments(frame: bytes, head: int) -> list[bytes]:
    """The iovec layout tun_napi_alloc_frags() wants: head, then <= PAGE_SIZE pieces."""
    first = frame[:head]
    rest = frame[head:]
    return [first] + [rest[i:i + PAGE_SIZE] for i in range(0, len(rest), PAGE_SIZE)]


def _errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def _inject_batch(tap: Tap, trace: TraceInstance, route: Route, frames: Sequence[tuple[int, bytes]],
                  frags_head: int, on_reject: str) -> list[dict[str, object]]:
    written: list[int] = []
    rows_by_index: dict[int, dict[str, object]] = {}
    for index, (length, frame) in enumerate(frames):
        try:
            if route.napi_frags:
                tap.writev(_frags_segments(frame, frags_head))
            else:
                tap.write(frame)
        except OSError as exc:
            if on_reject == "raise":
                raise InputError(f"route {route.name}: write of a {length}-byte frame failed: "
                                 f"{_errno_name(exc)} ({exc.strerror})") from None
            rows_by_index[index] = {"len_in": length, "len": None, "data_len": None, "truesize": None,
                                    "nr_frags": None, "event": None, "error": _errno_name(exc)}
            continue
        written.append(index)
    snapshot = trace.take()
    if not snapshot.complete:
        raise ProbeMismatch(f"trace buffer lost events (entries {snapshot.entries_in_buffer}/"
                            f"{snapshot.entries_written}, lost {snapshot.lost}); use smaller batches")
    event = route.event.rsplit("/", 1)[-1]
    primary = [r for r in snapshot.records if r.event == event]
    if len(primary) != len(written):
        raise ProbeMismatch(f"route {route.name}: {len(written)} frames written but {len(primary)} "
                            f"{event} events seen (lengths {[frames[i][0] for i in written][:20]})")
    for index, record in zip(written, primary):
        length = frames[index][0]
        if record.len not in (length, length - ETH_HLEN):
            raise ProbeMismatch(f"route {route.name}: frame of {length} bytes paired with an event "
                                f"of len {record.len}; events out of order?")
        rows_by_index[index] = {"len_in": length, "len": record.len, "data_len": record.data_len,
                                "truesize": record.truesize, "nr_frags": record.nr_frags,
                                "event": record.event, "error": None}
    return [rows_by_index[i] for i in range(len(frames))]


def measure(route: str, lengths: Iterable[int], *, mtu: int | None = None,
            ethertype: int = ETH_P_LOCAL_EXPERIMENTAL, batch_size: int = 128,
            frags_head: int = 64, on_reject: str = "raise") -> list[dict[str, object]]:
    """Inject one frame per length over *route*; return what the trace saw.

    Each row: ``len_in`` (bytes written), ``len``, ``data_len``,
    ``truesize``, ``nr_frags`` and ``event`` from the primary event of
    the route, plus ``error`` (errno name when the write was refused and
    *on_reject* is ``"record"``; with ``"raise"`` a refusal is an error).
    *frags_head* is the first iovec segment for ``napi_frags``.
    """
    if route not in ROUTES:
        raise InputError(f"unknown route {route!r}; choose from {', '.join(ROUTES)}")
    if on_reject not in ("raise", "record"):
        raise InputError(f"on_reject must be 'raise' or 'record', not {on_reject!r}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    chosen = ROUTES[route]
    lengths = list(lengths)
    for length in lengths:
        if length < ETH_HLEN:
            raise InputError(f"frame length {length} is below the Ethernet header size {ETH_HLEN}")
    missing = requirements_missing()
    if missing:
        raise InputError("live probe impossible: missing " + "; ".join(missing))
    rows: list[dict[str, object]] = []
    with tap_in_new_netns(napi=chosen.napi, napi_frags=chosen.napi_frags, mtu=mtu) as tap, \
            TraceInstance([chosen.event], device=tap.name) as trace:
        tap.set_nonblocking(chosen.nonblocking)
        trace.clear()
        for start in range(0, len(lengths), batch_size):
            chunk = lengths[start:start + batch_size]
            frames = [(n, ethernet_frame(n, dst=tap.mac, ethertype=ethertype)) for n in chunk]
            rows.extend(_inject_batch(tap, trace, chosen, frames, frags_head, on_reject))
    return rows


# ------------------------------------------------------------ UDP / SO_MEMINFO

SO_MEMINFO = 55
# include/uapi/linux/sock_diag.h, enum SK_MEMINFO_*: the order getsockopt returns.
MEMINFO_FIELDS = ("rmem_alloc", "rcvbuf", "wmem_alloc", "sndbuf", "fwd_alloc",
                  "wmem_queued", "optmem", "backlog", "drops")


def so_meminfo(sock: socket.socket) -> dict[str, int]:
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * len(MEMINFO_FIELDS))
    return dict(zip(MEMINFO_FIELDS, struct.unpack(f"{len(raw) // 4}I", raw)))


def _wait_readable(sock: socket.socket, timeout: float = 2.0) -> bool:
    readable, _, _ = select.select([sock], [], [], timeout)
    return bool(readable)


def _udp_pair(bind_ip: str) -> tuple[socket.socket, socket.socket]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((bind_ip, 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return receiver, sender


UDP_MAX_PAYLOAD = 65507  # 65535 - 20 (IPv4) - 8 (UDP)


def udp_loopback_meminfo(payload_sizes: Iterable[int]) -> dict[str, object]:
    """Datagrams over loopback inside a private namespace; SO_MEMINFO after each.

    Returns ``{"rmem_default", "rcvbuf", "rows"}``; each row has the payload
    size, SO_MEMINFO with the datagram queued (``queued``), SO_MEMINFO after
    reading it (``drained``), and the ``netif_rx_entry`` record on lo with
    the same length (len = payload + 28: lo's netif_rx sees the skb after
    eth_type_trans() pulled the 14-byte Ethernet header), if one was seen.  Host
    loopback traffic of the same length could be mistaken for ours, so the
    trace columns are advisory; the SO_MEMINFO figures are exact.
    """
    sizes = list(payload_sizes)
    for size in sizes:
        if not 0 <= size <= UDP_MAX_PAYLOAD:
            raise InputError(f"UDP payload {size} outside 0..{UDP_MAX_PAYLOAD}")
    missing = requirements_missing()
    if missing:
        raise InputError("live probe impossible: missing " + "; ".join(missing))
    with sigterm_as_interrupt(), Netns() as netns:
        receiver, sender = netns.run(_udp_pair, "127.0.0.1")
        with receiver, sender, TraceInstance(["net/netif_rx_entry"], device="lo") as trace:
            result: dict[str, object] = {
                "rmem_default": int(netns.sysctl("net.core.rmem_default")),
                "rcvbuf": receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                "rows": [],
            }
            address = receiver.getsockname()
            trace.clear()
            for size in sizes:
                sender.sendto(bytes(size), address)
                if not _wait_readable(receiver):
                    raise ProbeMismatch(f"UDP datagram of {size} bytes did not arrive on loopback")
                queued = so_meminfo(receiver)
                receiver.recv(UDP_MAX_PAYLOAD + 1)
                drained = so_meminfo(receiver)
                ip_len = size + IPV4_UDP_OVERHEAD - ETH_HLEN
                seen = [r for r in trace.take().records if r.len == ip_len]
                record = seen[-1] if seen else None
                result["rows"].append({  # type: ignore[union-attr]
                    "payload": size, "ip_len": ip_len, "queued": queued, "drained": drained,
                    "trace_truesize": record.truesize if record else None,
                    "trace_data_len": record.data_len if record else None,
                    "trace_nr_frags": record.nr_frags if record else None,
                })
    return result


TAP_IPV4 = "10.211.0.1"
PEER_IPV4 = "10.211.0.2"


def udp_tap_meminfo(frame_lengths: Iterable[int], route: str = "blocking",
                    mtu: int | None = None) -> list[dict[str, object]]:
    """IPv4/UDP frames injected on a TAP route into a bound UDP socket.

    For each frame length: the route's trace record (its truesize) and the
    socket's SO_MEMINFO while the datagram is queued, so the two can be
    compared one to one.
    """
    if route not in ROUTES:
        raise InputError(f"unknown route {route!r}; choose from {', '.join(ROUTES)}")
    if route == "napi_frags":
        raise InputError("udp_tap_meminfo does not support the napi_frags route")
    chosen = ROUTES[route]
    lengths = list(frame_lengths)
    for length in lengths:
        if not IPV4_UDP_OVERHEAD <= length <= ETH_HLEN + 0xFFFF:
            raise InputError(f"IPv4/UDP frame length {length} outside {IPV4_UDP_OVERHEAD}..{ETH_HLEN + 0xFFFF}")
    missing = requirements_missing()
    if missing:
        raise InputError("live probe impossible: missing " + "; ".join(missing))
    rows: list[dict[str, object]] = []
    with tap_in_new_netns(napi=chosen.napi, mtu=mtu, ipv4=f"{TAP_IPV4}/24") as tap:
        receiver, sender = tap.netns.run(_udp_pair, TAP_IPV4)
        sender.close()
        port = receiver.getsockname()[1]
        with receiver, TraceInstance([chosen.event], device=tap.name) as trace:
            tap.set_nonblocking(chosen.nonblocking)
            trace.clear()
            for length in lengths:
                tap.write(ipv4_udp_frame(length, tap.mac, bytes.fromhex("020000534b43"),
                                         PEER_IPV4, TAP_IPV4, 40000, port))
                records = [r for r in trace.take().records]
                if len(records) != 1:
                    raise ProbeMismatch(f"frame of {length} bytes gave {len(records)} trace records")
                if not _wait_readable(receiver, 1.0):
                    raise ProbeMismatch(f"UDP frame of {length} bytes did not reach the socket")
                queued = so_meminfo(receiver)
                receiver.recv(0x10000)
                rows.append({"len_in": length, "len": records[0].len, "truesize": records[0].truesize,
                             "data_len": records[0].data_len, "nr_frags": records[0].nr_frags,
                             "event": records[0].event, "queued": queued,
                             "drained": so_meminfo(receiver)})
    return rows
