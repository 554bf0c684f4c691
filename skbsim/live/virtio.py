"""A virtio_net interface of this machine, read without changing anything.

- the driver: /sys/class/net/IFACE/device/driver (must be virtio_net);
- the negotiated feature bits: /sys/class/net/IFACE/device/features, one
  character per bit, bit 0 first (drivers/virtio/virtio.c: features_show());
- the MTU: /sys/class/net/IFACE/mtu;
- the RX ring size: the ETHTOOL_GRINGPARAM ioctl (what ``ethtool -g``
  prints), read-only;
- the queues: /sys/class/net/IFACE/queues/rx-*;
- the current mergeable buffer size: /sys/class/net/IFACE/queues/rx-0/
  virtio_net/mergeable_rx_buffer_size (get_mergeable_buf_len() of the
  queue's EWMA, virtio_net.c: mergeable_rx_buffer_size_show()).

:func:`driver_options` turns what was read into the model's
``--driver virtio_net`` options.
"""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
from dataclasses import dataclass, field

from skbsim.errors import InputError

SYSFS_NET = "/sys/class/net"

# include/uapi/linux/virtio_net.h, virtio_config.h, virtio_ring.h: feature bits
VIRTIO_NET_F_CSUM = 0
VIRTIO_NET_F_GUEST_CSUM = 1
VIRTIO_NET_F_MTU = 3
VIRTIO_NET_F_GUEST_TSO4 = 7
VIRTIO_NET_F_GUEST_TSO6 = 8
VIRTIO_NET_F_GUEST_ECN = 9
VIRTIO_NET_F_GUEST_UFO = 10
VIRTIO_NET_F_MRG_RXBUF = 15
VIRTIO_RING_F_INDIRECT_DESC = 28
VIRTIO_F_VERSION_1 = 32
VIRTIO_F_ACCESS_PLATFORM = 33
VIRTIO_NET_F_GUEST_USO4 = 54
VIRTIO_NET_F_GUEST_USO6 = 55
VIRTIO_NET_F_HASH_REPORT = 57

FEATURE_NAMES = {
    0: "CSUM", 1: "GUEST_CSUM", 2: "CTRL_GUEST_OFFLOADS", 3: "MTU", 5: "MAC", 7: "GUEST_TSO4", 8: "GUEST_TSO6",
    9: "GUEST_ECN", 10: "GUEST_UFO", 11: "HOST_TSO4", 12: "HOST_TSO6", 13: "HOST_ECN", 14: "HOST_UFO",
    15: "MRG_RXBUF", 16: "STATUS", 17: "CTRL_VQ", 18: "CTRL_RX", 19: "CTRL_VLAN", 21: "GUEST_ANNOUNCE", 22: "MQ",
    23: "CTRL_MAC_ADDR", 28: "RING_INDIRECT_DESC", 29: "RING_EVENT_IDX", 32: "VERSION_1", 33: "ACCESS_PLATFORM",
    34: "RING_PACKED", 35: "IN_ORDER", 54: "GUEST_USO4", 55: "GUEST_USO6", 57: "HASH_REPORT", 60: "RSS",
}

# include/uapi/linux/sockios.h, ethtool.h
SIOCETHTOOL = 0x8946
ETHTOOL_GRINGPARAM = 0x00000010


@dataclass
class VirtioDevice:
    """What the machine says about one virtio_net interface."""

    iface: str
    features: set[int] = field(default_factory=set)
    mtu: int = 1500
    max_mtu: int | None = None
    rx_ring: int | None = None
    rx_queues: int = 1
    mergeable_rx_buffer_size: int | None = None

    def has(self, bit: int) -> bool:
        return bit in self.features

    def feature_names(self) -> list[str]:
        return [FEATURE_NAMES.get(bit, f"bit{bit}") for bit in sorted(self.features)]

    def as_dict(self) -> dict:
        return {"iface": self.iface, "features": self.feature_names(), "mtu": self.mtu, "max_mtu": self.max_mtu,
                "rx_ring": self.rx_ring, "rx_queues": self.rx_queues,
                "mergeable_rx_buffer_size": self.mergeable_rx_buffer_size}


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def parse_feature_bits(text: str) -> set[int]:
    """drivers/virtio/virtio.c: features_show() prints one '0'/'1' per bit, bit 0 first."""
    if any(ch not in "01" for ch in text):
        raise InputError(f"virtio feature bits {text[:40]!r}... are not a string of 0 and 1")
    return {bit for bit, ch in enumerate(text) if ch == "1"}


def rx_ring_size(iface: str) -> int | None:
    """The RX ring size from ETHTOOL_GRINGPARAM (read-only), None if the ioctl is refused."""
    # struct ethtool_ringparam: cmd and eight __u32 sizes.
    buf = array.array("B", struct.pack("=9I", ETHTOOL_GRINGPARAM, *([0] * 8)))
    address, _ = buf.buffer_info()
    ifreq = struct.pack("16sP", iface.encode()[:15], address)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    except OSError:
        return None
    values = struct.unpack("=9I", buf.tobytes())
    return values[5] or None  # rx_pending


def mergeable_rx_buffer_size(iface: str, queue: int = 0) -> int | None:
    text = _read(os.path.join(SYSFS_NET, iface, "queues", f"rx-{queue}", "virtio_net", "mergeable_rx_buffer_size"))
    return int(text) if text and text.isdigit() else None


def read_virtio_device(iface: str) -> VirtioDevice:
    """Everything :class:`VirtioDevice` holds; InputError if IFACE is not a virtio_net interface."""
    base = os.path.join(SYSFS_NET, iface)
    if not os.path.isdir(base):
        raise InputError(f"no network interface {iface!r} ({base} is missing)")
    driver = os.path.basename(os.path.realpath(os.path.join(base, "device", "driver")))
    if driver != "virtio_net":
        raise InputError(f"{iface} is driven by {driver or 'no driver'}, not virtio_net")
    bits = _read(os.path.join(base, "device", "features"))
    if bits is None:
        raise InputError(f"{base}/device/features is not readable")
    device = VirtioDevice(iface, parse_feature_bits(bits))
    mtu = _read(os.path.join(base, "mtu"))
    device.mtu = int(mtu) if mtu and mtu.isdigit() else 1500
    device.rx_ring = rx_ring_size(iface)
    try:
        device.rx_queues = len([n for n in os.listdir(os.path.join(base, "queues")) if n.startswith("rx-")])
    except OSError:
        device.rx_queues = 1
    device.mergeable_rx_buffer_size = mergeable_rx_buffer_size(iface)
    return device


def driver_options(device: VirtioDevice) -> dict[str, str]:
    """The model's virtio_net options for the device (see skbsim.drivers.virtio_net.OPTIONS).

    The device's own MTU (VIRTIO_NET_F_MTU) is only known when the feature
    is there: then the interface's max MTU equals it, and the current MTU is
    taken as the best reading of it.
    """
    guest_gso = any(device.has(bit) for bit in (VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
                                                VIRTIO_NET_F_GUEST_ECN, VIRTIO_NET_F_GUEST_UFO)) or (
        device.has(VIRTIO_NET_F_GUEST_USO4) and device.has(VIRTIO_NET_F_GUEST_USO6))
    options = {
        "mrg_rxbuf": "1" if device.has(VIRTIO_NET_F_MRG_RXBUF) else "0",
        "guest_gso": "1" if guest_gso else "0",
        "mtu": str(device.max_mtu or device.mtu) if device.has(VIRTIO_NET_F_MTU) else "none",
        "dma_api": "1" if device.has(VIRTIO_F_ACCESS_PLATFORM) else "0",
        "indirect": "1" if device.has(VIRTIO_RING_F_INDIRECT_DESC) else "0",
    }
    if device.rx_ring:
        options["ring"] = str(device.rx_ring)
    return options
