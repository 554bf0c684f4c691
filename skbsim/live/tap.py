"""A TAP device inside a network namespace of our own, for injecting frames.

Everything lives in a namespace we create (``ip netns add skbsim-<pid>-<n>``)
and delete again, so nothing on the host's own interfaces changes.  The TAP
is made through /dev/net/tun (TUNSETIFF with IFF_TAP|IFF_NO_PI, optionally
IFF_NAPI and IFF_NAPI_FRAGS).  tun binds a queue to the network namespace
of the task that *opened* /dev/net/tun (tun_chr_open() takes
current->nsproxy->net_ns), so we open it from a short-lived thread that
first joined the namespace with setns(2); the fd then works from any thread.

What a write() becomes on the receive side (drivers/net/tun.c, tun_get_user;
read for 6.12 and checked against the 6.18 host by measurement, see
docs/research/live-host.md):

(a) blocking fd -> tun_alloc_skb() -> sock_alloc_send_pskb() ->
    alloc_skb_with_frags(); linear part is the whole frame while
    NET_IP_ALIGN + len < PAGE_SIZE, else SKB_MAX_HEAD(NET_IP_ALIGN) bytes
    with the rest in page frags (order up to PAGE_ALLOC_COSTLY_ORDER).
    Delivered by tun_rx_batched() -> netif_receive_skb()
    (tracepoint net/netif_receive_skb_entry).
(b) non-blocking fd (O_NONBLOCK) -> tun_can_build_skb() is true when the
    device is a TAP, the queue's sk_sndbuf is still INT_MAX (tun_chr_open
    sets it so; TUNSETSNDBUF to anything else disables the route), no
    zerocopy msg_control, and SKB_DATA_ALIGN(len + TUN_RX_PAD +
    XDP_PACKET_HEADROOM) + SKB_DATA_ALIGN(sizeof(skb_shared_info)) <=
    PAGE_SIZE -> tun_build_skb(): a buffer from current->task_frag and
    build_skb().  Longer frames fall back to (a) with noblock set.
(c) IFF_NAPI -> the skb built as in (a)/(b) is queued on the tfile and
    tun_napi_receive() hands it to napi_gro_receive()
    (tracepoint net/napi_gro_receive_entry; net/netif_receive_skb follows
    when GRO passes it up).
(d) IFF_NAPI|IFF_NAPI_FRAGS (needs IFF_NAPI and CAP_NET_ADMIN) ->
    tun_napi_alloc_frags(): the first iovec segment goes to the linear
    part of napi_get_frags()'s skb, every further segment (1..PAGE_SIZE
    bytes, at most MAX_SKB_FRAGS of them) becomes a netdev_alloc_frag()
    frag; then napi_gro_frags() (tracepoint net/napi_gro_frags_entry).
    Frames longer than ETH_MAX_MTU - NET_SKB_PAD - NET_IP_ALIGN are refused.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import fcntl
import ipaddress
import os
import signal
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from skbsim.errors import InputError
from skbsim.live.tracefs import dead_owners, signals_deferred, sigterm_as_interrupt

NETNS_RUN_DIR = "/run/netns"
NETNS_PREFIX = "skbsim"
TAP_PREFIX = "skbt"

CLONE_NEWNET = 0x40000000
# include/uapi/linux/if_tun.h
TUNSETIFF = 0x400454CA     # _IOW('T', 202, int)
TUNGETSNDBUF = 0x800454D3  # _IOR('T', 211, int)
TUNSETSNDBUF = 0x400454D4  # _IOW('T', 212, int)
IFF_TAP = 0x0002
IFF_NAPI = 0x0010
IFF_NAPI_FRAGS = 0x0020
IFF_NO_PI = 0x1000
# include/uapi/linux/sockios.h; tun_chr_ioctl answers it for its device.
SIOCGIFHWADDR = 0x8927
IFREQ_SIZE = 40  # struct ifreq on 64-bit: 16-byte name + 24-byte union
IFNAMSIZ = 16

ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_LOCAL_EXPERIMENTAL = 0x88B5  # IEEE 802 local experimental ethertype 1
BROADCAST_MAC = b"\xff" * 6
# Locally administered unicast source address for injected frames.
DEFAULT_SOURCE_MAC = bytes.fromhex("020000534b42")

Result = TypeVar("Result")


# ------------------------------------------------------------ namespaces


def _setns_current_thread(netns_path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns({netns_path}): {os.strerror(error)}")
    finally:
        os.close(fd)


def run_in_netns(netns_path: str, function: Callable[..., Result], *args: object) -> Result:
    """Call ``function(*args)`` in a fresh thread that joined *netns_path*.

    Only that thread changes namespace (setns with CLONE_NEWNET affects the
    calling thread alone); sockets and tun fds it creates stay bound to
    the namespace after it ends.
    """
    outcome: dict[str, object] = {}

    def body() -> None:
        # Signals go to the main thread only: a SIGINT delivered to this thread would still raise
        # KeyboardInterrupt in the main thread, even while it holds signals to finish a clean-up.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            _setns_current_thread(netns_path)
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=body, name="skbsim-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


class NetnsThread:
    """``with NetnsThread(path) as ns: ns.call(f, ...)``: one long-lived thread in *netns_path*.

    For several calls in one namespace (a listener, accept(), opening
    /proc/thread-self/net/...) without :func:`run_in_netns`'s fresh thread
    and setns() each time.
    """

    __slots__ = ("_pool",)

    def __init__(self, netns_path: str) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="skbsim-netns",
            initializer=_setns_current_thread, initargs=(netns_path,))

    def __enter__(self) -> "NetnsThread":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def call(self, function: Callable[..., Result], *args: object) -> Result:
        return self._pool.submit(function, *args).result()


def _run(command: Sequence[str]) -> str:
    try:
        result = subprocess.run(list(command), capture_output=True, text=True)
    except FileNotFoundError:
        raise InputError(f"{command[0]}: command not found (install iproute2)") from None
    if result.returncode != 0:
        raise InputError(f"{' '.join(command)} failed: {result.stderr.strip() or result.returncode}")
    return result.stdout


def our_namespaces(pid: int | None = None) -> list[str]:
    """Namespaces named by this program (of process *pid*, or of any)."""
    prefix = f"{NETNS_PREFIX}-{pid}-" if pid is not None else f"{NETNS_PREFIX}-"
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def remove_dead_namespaces() -> list[str]:
    """Delete the namespaces of skbsim processes that died without cleaning up (SIGKILL, a crash);
    the names deleted.  Another process's namespaces are left alone (see dead_owners())."""
    removed = []
    for name in dead_owners(our_namespaces()):
        result = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
        if result.returncode == 0:
            removed.append(name)
    return removed


class Netns:
    """``with Netns() as ns:`` a fresh network namespace, deleted on exit.

    Inside: loopback up, IPv6 off (so the TAP sends no router solicitations
    or DAD probes of its own).  ``ns.run(f, ...)`` runs f inside it.
    """

    __slots__ = ("name", "path")

    def __init__(self) -> None:
        self.name: str | None = None
        self.path: str | None = None

    def __enter__(self) -> "Netns":
        # A signal held during setup is raised when the block ends, i.e.
        # still inside __enter__, where no __exit__ will follow: undo here.
        try:
            with signals_deferred():
                remove_dead_namespaces()
                self._create()
                self.ip("link", "set", "dev", "lo", "up")
                self.run(_disable_ipv6)
        except BaseException:
            with signals_deferred():
                self._delete()
            raise
        return self

    def _create(self) -> None:
        for n in range(1000):
            name = f"{NETNS_PREFIX}-{os.getpid()}-{n}"
            if os.path.exists(os.path.join(NETNS_RUN_DIR, name)):
                continue
            _run(["ip", "netns", "add", name])
            self.name, self.path = name, os.path.join(NETNS_RUN_DIR, name)
            return
        raise InputError(f"no free {NETNS_PREFIX}-{os.getpid()}-N namespace name")

    def __exit__(self, *exc_info: object) -> None:
        with signals_deferred():
            self._delete()

    def _delete(self) -> None:
        if self.name is None:
            return
        _run(["ip", "netns", "del", self.name])
        self.name = self.path = None

    def run(self, function: Callable[..., Result], *args: object) -> Result:
        if self.path is None:
            raise InputError("network namespace is not active")
        return run_in_netns(self.path, function, *args)

    def ip(self, *arguments: str) -> str:
        """Run ``ip -n <ns> ...``; only ever touches this namespace."""
        if self.name is None:
            raise InputError("network namespace is not active")
        return _run(["ip", "-n", self.name, *arguments])

    def sysctl(self, key: str) -> str:
        """Read a sysctl as seen inside this namespace."""
        path = "/proc/sys/" + key.replace(".", "/")
        return self.run(_read_text, path).strip()


def _read_text(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _disable_ipv6() -> None:
    # /proc/sys/net resolves to the namespace of the opening thread, which
    # here is the one that joined our namespace.
    for key in ("all", "default", "lo"):
        path = f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6"
        if os.path.exists(path):
            with open(path, "w") as handle:
                handle.write("1\n")


# ------------------------------------------------------------ the TAP


def _open_tap(name: str, flags: int) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        request = struct.pack("16sH", name.encode(), flags).ljust(IFREQ_SIZE, b"\0")
        fcntl.ioctl(fd, TUNSETIFF, request)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Tap:
    """A TAP device made inside *netns*; removed when its fd is closed.

    Non-persistent: tun deletes the device as soon as the last queue fd
    closes (tun_detach -> unregister), so closing is the cleanup.
    """

    __slots__ = ("netns", "napi", "napi_frags", "mtu", "ipv4", "name", "fd", "mac")

    def __init__(self, netns: Netns, *, napi: bool = False, napi_frags: bool = False,
                 mtu: int | None = None, ipv4: str | None = None) -> None:
        if napi_frags and not napi:
            raise InputError("IFF_NAPI_FRAGS needs IFF_NAPI (tun_set_iff refuses it alone)")
        self.netns = netns
        self.napi = napi
        self.napi_frags = napi_frags
        self.mtu = mtu
        self.ipv4 = ipv4
        self.name: str | None = None
        self.fd: int | None = None
        self.mac: bytes = b""

    @property
    def flags(self) -> int:
        flags = IFF_TAP | IFF_NO_PI
        if self.napi:
            flags |= IFF_NAPI
        if self.napi_frags:
            flags |= IFF_NAPI_FRAGS
        return flags

    def __enter__(self) -> "Tap":
        # Same pattern as Netns.__enter__: undo here if anything, including
        # a held Ctrl-C, makes __enter__ raise.
        try:
            with signals_deferred():
                # Unique across namespaces too, since trace filters match by
                # name: carry the namespace's own number (skbt<pid>-<n>).
                if self.netns.name is None:
                    raise InputError("the TAP's network namespace is not active")
                name = f"{TAP_PREFIX}{os.getpid()}-{self.netns.name.rsplit('-', 1)[1]}"
                if len(name) >= IFNAMSIZ:
                    raise InputError(f"TAP name {name} is longer than {IFNAMSIZ - 1} characters")
                try:
                    self.fd = self.netns.run(_open_tap, name, self.flags)
                except OSError as exc:
                    raise InputError(f"cannot create TAP {name} in {self.netns.name}: "
                                     f"{exc.strerror}") from None
                self.name = name
                self._configure()
        except BaseException:
            with signals_deferred():
                self._close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        with signals_deferred():
            self._close()

    def _configure(self) -> None:
        assert self.name is not None and self.fd is not None
        link = ["link", "set", "dev", self.name]
        if self.mtu is not None:
            link += ["mtu", str(self.mtu)]
        self.netns.ip(*link, "up")
        if self.ipv4 is not None:
            self.netns.ip("addr", "add", self.ipv4, "dev", self.name)
        answer = fcntl.ioctl(self.fd, SIOCGIFHWADDR, struct.pack("16s", self.name.encode()).ljust(IFREQ_SIZE, b"\0"))
        # struct ifreq: name[16], then struct sockaddr {sa_family u16, sa_data[14]}.
        self.mac = answer[18:24]

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _require_fd(self) -> int:
        if self.fd is None:
            raise InputError("TAP is not open")
        return self.fd

    def set_nonblocking(self, nonblocking: bool) -> None:
        """O_NONBLOCK on the queue fd: tun_get_user() sees it as noblock."""
        fd = self._require_fd()
        status = fcntl.fcntl(fd, fcntl.F_GETFL)
        status = status | os.O_NONBLOCK if nonblocking else status & ~os.O_NONBLOCK
        fcntl.fcntl(fd, fcntl.F_SETFL, status)

    @property
    def sndbuf(self) -> int:
        answer = fcntl.ioctl(self._require_fd(), TUNGETSNDBUF, struct.pack("i", 0))
        return struct.unpack("i", answer)[0]

    def set_sndbuf(self, size: int) -> None:
        """TUNSETSNDBUF; any value but INT_MAX turns the build_skb route off."""
        if size <= 0:
            raise InputError(f"sndbuf must be positive, got {size}")
        fcntl.ioctl(self._require_fd(), TUNSETSNDBUF, struct.pack("i", size))

    def write(self, frame: bytes) -> int:
        """Inject one frame (one write() = one received skb)."""
        return os.write(self._require_fd(), frame)

    def writev(self, segments: Sequence[bytes]) -> int:
        """Inject one frame split over iovec segments (IFF_NAPI_FRAGS layout)."""
        return os.writev(self._require_fd(), list(segments))


@contextlib.contextmanager
def tap_in_new_netns(*, napi: bool = False, napi_frags: bool = False, mtu: int | None = None,
                     ipv4: str | None = None) -> Iterator[Tap]:
    """A new namespace with one TAP in it; both gone when the block ends,
    also on exceptions, Ctrl-C and SIGTERM."""
    with sigterm_as_interrupt(), Netns() as netns, \
            Tap(netns, napi=napi, napi_frags=napi_frags, mtu=mtu, ipv4=ipv4) as tap:
        yield tap


# ------------------------------------------------------------ frames


_FILLER_BLOCK = bytes(range(256))


def _filler(count: int) -> bytes:
    """0, 1, ..., 255, 0, 1, ... : recognisable in a capture, cheap to make."""
    return (_FILLER_BLOCK * (count // 256 + 1))[:count]


def ethernet_frame(length: int, dst: bytes = BROADCAST_MAC, src: bytes = DEFAULT_SOURCE_MAC,
                   ethertype: int = ETH_P_LOCAL_EXPERIMENTAL) -> bytes:
    """*length* bytes: a 14-byte Ethernet header and a filler payload."""
    if length < ETH_HLEN:
        raise InputError(f"frame length {length} is shorter than the Ethernet header ({ETH_HLEN})")
    if len(dst) != 6 or len(src) != 6:
        raise InputError("MAC addresses must be 6 bytes")
    return dst + src + struct.pack("!H", ethertype) + _filler(length - ETH_HLEN)


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


IPV4_UDP_OVERHEAD = ETH_HLEN + 20 + 8


def ipv4_udp_frame(length: int, dst_mac: bytes, src_mac: bytes, src_ip: str, dst_ip: str,
                   src_port: int, dst_port: int) -> bytes:
    """An Ethernet/IPv4/UDP frame of exactly *length* bytes (UDP checksum 0 = none)."""
    if not IPV4_UDP_OVERHEAD <= length <= ETH_HLEN + 0xFFFF:
        raise InputError(f"IPv4/UDP frame length {length} outside "
                         f"{IPV4_UDP_OVERHEAD}..{ETH_HLEN + 0xFFFF}")
    payload = _filler(length - IPV4_UDP_OVERHEAD)
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                         ipaddress.IPv4Address(src_ip).packed, ipaddress.IPv4Address(dst_ip).packed)
    header = header[:10] + struct.pack("!H", _ipv4_checksum(header)) + header[12:]
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IP) + header + udp


IPV4_TCP_TS_OVERHEAD = ETH_HLEN + 20 + 32


def ipv4_tcp_frame(payload: int, dst_mac: bytes, src_mac: bytes, src_ip: str, dst_ip: str, src_port: int,
                   dst_port: int, seq: int, *, ip_id: int = 0, ack_seq: int = 1, flags: int = 0x10,
                   tsval: int | None = 1, tsecr: int = 1, window: int = 502, df: bool = True, ttl: int = 64) -> bytes:
    """An Ethernet/IPv4/TCP segment with *payload* filler bytes and right IPv4 and TCP checksums
    (tun without a vnet header gives CHECKSUM_NONE: GRO checks the TCP checksum itself).
    With *tsval* the aligned timestamp option (NOP, NOP, TSval, TSecr) follows the header."""
    options = struct.pack("!BBBBII", 1, 1, 8, 10, tsval, tsecr) if tsval is not None else b""
    body = _filler(payload)
    src = ipaddress.IPv4Address(src_ip).packed
    dst = ipaddress.IPv4Address(dst_ip).packed
    thlen = 20 + len(options)
    tcp = struct.pack("!HHIIBBHHH", src_port, dst_port, seq & 0xFFFFFFFF, ack_seq, (thlen // 4) << 4, flags,
                      window, 0, 0) + options
    summed = src + dst + struct.pack("!BBH", 0, 6, thlen + payload) + tcp + body  # pseudo-header first
    checksum = _ipv4_checksum(summed + b"\0" * (len(summed) % 2))
    tcp = tcp[:16] + struct.pack("!H", checksum) + tcp[18:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + thlen + payload, ip_id & 0xFFFF, 0x4000 if df else 0,
                         ttl, 6, 0, src, dst)
    header = header[:10] + struct.pack("!H", _ipv4_checksum(header)) + header[12:]
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IP) + header + tcp + body
