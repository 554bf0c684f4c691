"""TCP/IPv4 frames with every header field chosen by the test, and skbs built by a driver for GRO."""

import struct

from skbsim.drivers import DRIVERS
from skbsim.net.gro import gro_stats, netif_set_gro
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.skbuff import kfree_skb
from skbsim.traffic.frame import SYNTHETIC_DST_MAC as DST_MAC
from skbsim.traffic.frame import SYNTHETIC_SRC_MAC as SRC_MAC
from skbsim.traffic.frame import TCP_FLAG_ACK as ACK
from skbsim.traffic.frame import TCP_FLAG_PSH as PSH  # noqa: F401 - for the tests that import it from here
from skbsim.traffic.frame import Frame

SRC = bytes((198, 18, 0, 1))
DST = bytes((192, 0, 2, 1))
CWR = 0x80
FIN = 0x01


def _csum(data: bytes) -> int:
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_frame(seq: int, payload: int, *, ts: int | None = 1000, ip_id: int = 1, df: bool = True, flags: int = ACK,
              ttl: int = 64, tos: int = 0, sport: int = 40000, dport: int = 5001, ack_seq: int = 7, window: int = 502,
              src: bytes = SRC, rss_hash: int = 0x1234, pad_to: int = 0) -> Frame:
    """One TCP segment of ``payload`` bytes (timestamps option with TSval ``ts``, none when None).

    The frame is 14 + 20 + 20 (+ 12) + payload bytes, or ``pad_to`` when longer (Ethernet padding
    after the IP packet).  Its first 128 bytes are the Frame's header.
    """
    options = struct.pack(">BBBBII", 1, 1, 8, 10, ts, 99) if ts is not None else b""
    thlen = 20 + len(options)
    tot_len = 20 + thlen + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, tos, tot_len, ip_id, 0x4000 if df else 0, ttl, 6, 0, src, DST)
    ip = ip[:10] + struct.pack(">H", _csum(ip)) + ip[12:]
    tcp = struct.pack(">HHIIBBHHH", sport, dport, seq, ack_seq, (thlen // 4) << 4, flags, window, 0, 0) + options
    length = max(14 + tot_len, pad_to)
    head = (DST_MAC + SRC_MAC + b"\x08\x00" + ip + tcp + bytes(128))[:min(length, 128)]
    return Frame(length, 0, (src, DST, sport, dport, 6), rss_hash, 0, head)


def segments(count: int, payload: int = 1448, *, seq: int = 1_000_000, ip_id: int = 1, **fields) -> list[Frame]:
    """count in-order segments of one flow: consecutive sequence numbers and IP IDs."""
    return [tcp_frame(seq + i * payload, payload, ip_id=(ip_id + i) & 0xFFFF, **fields) for i in range(count)]


class BuiltSkbs:
    """A driver's queue with GRO off: frames in, the skbs the driver built out (what
    napi_gro_receive() would have been given), then GRO turned on for the test to drive."""

    def __init__(self, kernel, driver: str = "ice", **options):
        self.kernel = kernel
        self.driver = DRIVERS[driver]
        self.dev = net_device("eth0")
        self.napi = napi_struct(self.dev)
        opts = {k: str(v) for k, v in options.items()}
        opts["gro"] = "0"
        with kernel.softirq():
            self.queue = self.driver.open_queue(kernel, self.dev, self.napi, opts)

    def build(self, frames: list[Frame]) -> list:
        skbs = []
        for frame in frames:
            assert self.driver.nic_receive(self.kernel, self.queue, frame)
        while len(skbs) < len(frames):
            self.driver.poll(self.kernel, self.queue, 64, skbs.append)
        netif_set_gro(self.dev, True)
        self.napi.gro.stats = gro_stats()  # what GRO does from here on
        return skbs

    def close(self, *skbs) -> None:
        with self.kernel.softirq():
            for skb in skbs:
                kfree_skb(self.kernel, skb)
            self.driver.close_queue(self.kernel, self.queue)
