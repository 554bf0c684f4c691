"""GRO on the live kernel against the model: TCP segments through a TAP with IFF_NAPI.

A TAP in a network namespace of our own (skbsim.live.tap) takes TCP/IPv4
segments with right checksums.  Each write() runs the queue's NAPI poll and
napi_complete_done(), so GRO would pass every segment up at once; with a
gro_flush_timeout on the TAP (written to its sysfs file inside the
namespace) napi_complete_done() keeps what came during the current jiffy,
so a burst written within one jiffy merges, and the flush timer passes the
aggregates up afterwards.

What is seen, per skb:

- before GRO: ``net/napi_gro_receive_entry`` (``napi_gro_frags_entry`` with
  IFF_NAPI_FRAGS) in a tracefs instance of our own: len, data_len,
  truesize, nr_frags;
- after GRO: ``net/netif_receive_skb`` (len; GRO passes skbs up through
  netif_receive_skb_list_internal(), which has no verbose event) and an
  AF_PACKET socket on the TAP: its SO_MEMINFO rmem_alloc goes down by each
  queued skb's truesize as it is read (a packet socket queues a clone, and
  a clone carries the original's truesize).

The segments are addressed to the TAP's MAC and to an address no one has,
with forwarding off, so IP drops them after the packet socket saw them.

Only the blocking-write route (tun_alloc_skb: kmalloc'ed heads, merged by
chaining on the frag_list) and IFF_NAPI_FRAGS are driven.  O_NONBLOCK
writes (tun_build_skb: page-fragment heads, whose merges steal the head)
are left alone on purpose: such an skb is charged to the TAP's socket
(skb_set_owner_w()), and napi_skb_free_stolen_head() frees its sk_buff
without running sock_wfree(), so 256 bytes per merge would stay in the
socket's sk_wmem_alloc and the socket (and its namespace) could never be
freed on this machine.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

from skbsim.drivers import tun
from skbsim.drivers.base import make_frame
from skbsim.errors import InputError
from skbsim.kernel import Kernel
from skbsim.live.probe import ProbeMismatch, requirements_missing, so_meminfo
from skbsim.live.tap import ETH_HLEN, ipv4_tcp_frame, tap_in_new_netns
from skbsim.live.tracefs import TraceInstance
from skbsim.net.gro import napi_complete
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.skbuff import kfree_skb

TAP_IPV4 = "10.212.0.1"
PEER_IPV4 = "10.212.0.2"
#: Nobody's address in the TAP's subnet: with forwarding off IP drops what is sent to it.
NOBODY_IPV4 = "10.212.0.3"
PEER_MAC = bytes.fromhex("020000534b44")
ETH_P_ALL = 0x0003
# include/uapi/linux/rtnetlink.h, netlink.h, if_link.h (iproute2 6.1 here knows gro_max_size but not
# gro_ipv4_max_size, so the attributes go in a netlink message of our own)
RTM_NEWLINK = 16
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 0x2
IFLA_GRO_MAX_SIZE = 58
IFLA_GRO_IPV4_MAX_SIZE = 64
# include/uapi/linux/sockios.h, ethtool.h: the legacy ETHTOOL_SGRO command (what `ethtool -K DEV gro off` sets)
SIOCETHTOOL = 0x8946
ETHTOOL_SGRO = 0x0000002C

ROUTES = {
    # route: (IFF_NAPI_FRAGS, the pre-GRO event, the model's tun options)
    "napi": (False, "net/napi_gro_receive_entry", {"write": "block", "napi": "1"}),
    "napi_frags": (True, "net/napi_gro_frags_entry", {"napi": "1", "frags": "1"}),
}


@dataclass
class Segment:
    """One TCP segment of a burst: payload bytes, sequence number, IP ID, TSval, TCP flags, ports."""

    payload: int
    seq: int
    ip_id: int
    tsval: int | None = 1
    flags: int = 0x10
    ack_seq: int = 1
    sport: int = 40000

    def frame(self, dst_mac: bytes) -> bytes:
        return ipv4_tcp_frame(self.payload, dst_mac, PEER_MAC, PEER_IPV4, NOBODY_IPV4, self.sport, 5001, self.seq,
                              ip_id=self.ip_id, tsval=self.tsval, flags=self.flags, ack_seq=self.ack_seq)


def bulk(count: int, payload: int = 1448, seq: int = 1000, ip_id: int = 1, **fields) -> list[Segment]:
    """count in-order segments of one flow."""
    return [Segment(payload, seq + i * payload, ip_id + i, **fields) for i in range(count)]


def _packet_socket(device: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind((device, 0))
    return sock


def _ethtool_set_gro(device: str, on: bool) -> None:
    """NETIF_F_GRO on or off through SIOCETHTOOL's ETHTOOL_SGRO (net/ethtool/ioctl.c: ethtool_set_one_feature()),
    as ``ethtool -K DEVICE gro off`` does, without needing the ethtool command (run inside the namespace)."""
    value = array.array("B", struct.pack("=II", ETHTOOL_SGRO, int(on)))  # struct ethtool_value
    address, _ = value.buffer_info()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, struct.pack("16sP", device.encode()[:15], address))
        except OSError as error:
            raise InputError(f"turning GRO {'on' if on else 'off'} on {device}: {error.strerror}") from None


def _set_gro_flush_timeout(tap, ns: int) -> None:
    """/sys/class/net/<tap>/gro_flush_timeout, written through ``ip netns exec`` (its own sysfs view)."""
    path = f"/sys/class/net/{tap.name}/gro_flush_timeout"
    result = subprocess.run(["ip", "netns", "exec", tap.netns.name, "sh", "-c", f"echo {int(ns)} > {path}"],
                            capture_output=True, text=True)
    if result.returncode:
        raise InputError(f"cannot set {path}: {result.stderr.strip()}")


def _rtnl_set_gro_max_size(device: str, size: int) -> None:
    """RTM_NEWLINK with IFLA_GRO_MAX_SIZE and IFLA_GRO_IPV4_MAX_SIZE (run inside the namespace)."""
    attrs = b"".join(struct.pack("=HHI", 8, kind, size) for kind in (IFLA_GRO_MAX_SIZE, IFLA_GRO_IPV4_MAX_SIZE))
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, socket.if_nametoindex(device), 0, 0) + attrs
    message = struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
        nl.sendto(message, (0, 0))
        reply = nl.recv(4096)
    kind = struct.unpack_from("=H", reply, 4)[0]
    error = struct.unpack_from("=i", reply, 16)[0] if kind == NLMSG_ERROR else 0
    if error:
        raise InputError(f"setting gro_max_size {size} on {device}: {os.strerror(-error)}")


def live_burst(segments: list[Segment], route: str = "napi", gro_flush_timeout_ns: int = 20_000_000,
               gro: bool = True, gro_max_size: int | None = None) -> dict:
    """Write the segments as fast as possible; what the kernel's GRO was given and passed up.

    ``{"in": [(len, data_len, truesize, nr_frags)], "out": [(len, truesize)]}``, in order.
    """
    if route not in ROUTES:
        raise InputError(f"unknown route {route!r}; choose from {', '.join(ROUTES)}")
    missing = requirements_missing()
    if missing:
        raise InputError("live GRO impossible: missing " + "; ".join(missing))
    frags, event, _ = ROUTES[route]
    with tap_in_new_netns(napi=True, napi_frags=frags, ipv4=f"{TAP_IPV4}/24") as tap:
        _set_gro_flush_timeout(tap, gro_flush_timeout_ns)
        if gro_max_size is not None:
            tap.netns.run(_rtnl_set_gro_max_size, tap.name, gro_max_size)
        if not gro:
            tap.netns.run(_ethtool_set_gro, tap.name, False)
        packets = tap.netns.run(_packet_socket, tap.name)
        with packets, TraceInstance([event, "net/netif_receive_skb"], device=tap.name) as trace:
            trace.clear()
            frames = [segment.frame(tap.mac) for segment in segments]
            for frame in frames:
                tap.write(frame)
            # The flush timer passes what GRO holds up gro_flush_timeout after the last write.
            time.sleep(gro_flush_timeout_ns / 1e9 + 0.05)
            snapshot = trace.take()
            out = []
            while select.select([packets], [], [], 0.05)[0]:
                before = so_meminfo(packets)["rmem_alloc"]
                length = packets.recv_into(bytearray(1), 1, socket.MSG_TRUNC)  # MSG_TRUNC: the whole length
                out.append((length - ETH_HLEN, before - so_meminfo(packets)["rmem_alloc"]))
    if not snapshot.complete:
        raise ProbeMismatch("the trace buffer lost events")
    name = event.rsplit("/", 1)[1]
    given = [(r.len, r.data_len, r.truesize, r.nr_frags) for r in snapshot.records if r.event == name]
    passed = [r.len for r in snapshot.records if r.event == "netif_receive_skb"]
    if len(given) != len(segments):
        raise ProbeMismatch(f"{len(segments)} segments written, {len(given)} {name} events")
    if passed != [length for length, _ in out]:
        raise ProbeMismatch(f"netif_receive_skb saw lengths {passed}, the packet socket {[n for n, _ in out]}")
    return {"in": given, "out": out}


def model_burst(kernel: Kernel, segments: list[Segment], route: str = "napi", gro_flush_timeout_ns: int = 20_000_000,
                gro: bool = True, gro_max_size: int | None = None) -> dict:
    """The same burst through the model's tun (all writes within one jiffy), then the flush timer."""
    _, _, options = ROUTES[route]
    dev = net_device("skbt")
    napi = napi_struct(dev)
    options = dict(options, gro="1" if gro else "0")
    if gro_max_size is not None:
        options["gro_max_size"] = str(gro_max_size)
    with kernel.softirq():
        queue = tun.open_queue(kernel, dev, napi, options)
    dev.gro_flush_timeout = gro_flush_timeout_ns
    tfile = queue.tfile
    waiting = tfile.rx_handoff if tfile.napi_frags_enabled else tfile.sk.sk_write_queue
    mac = bytes.fromhex("020000000001")
    given, up = [], []
    for segment in segments:
        frame = segment.frame(mac)
        assert tun.nic_receive(kernel, queue, make_frame(len(frame), frame[:128]))
        skb = waiting[-1]
        # what napi_gro_receive_entry / napi_gro_frags_entry report: the skb after the Ethernet pull
        given.append((skb.len, skb.data_len, skb.truesize, skb.nr_frags))
        tun.DRIVER.poll(kernel, queue, 64, up.append)
    with kernel.softirq():
        napi_complete(kernel, napi, up.append)  # the flush timer's poll: no work, everything goes up
        out = [(skb.len, skb.truesize) for skb in up]
        for skb in up:
            kfree_skb(kernel, skb)
        tun.close_queue(kernel, queue)
    return {"in": given, "out": out}


def compare(live: dict, model: dict) -> list[str]:
    """Every disagreement, one line each (empty: they agree on every skb)."""
    lines = []
    for side in ("in", "out"):
        if len(live[side]) != len(model[side]):
            lines.append(f"{side}: {len(live[side])} skbs live, {len(model[side])} in the model")
        for i, (a, b) in enumerate(zip(live[side], model[side])):
            if a != b:
                lines.append(f"{side}[{i}]: live {a}, model {b}")
    return lines
