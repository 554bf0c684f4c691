"""page_pool on the running kernel: frames through a veth pair whose receiving end runs an XDP program.

The live machine has no page_pool NIC, but veth uses page_pool: with an
XDP program attached (native mode), every skb that arrives without
XDP_PACKET_HEADROOM of headroom is copied by skb_pp_cow_data()
(net/core/skbuff.c) into memory from the receive queue's page_pool - the
head from page_pool_dev_alloc_va(SKB_HEAD_ALIGN(min(len, SKB_WITH_OVERHEAD(
PAGE_SIZE - 256))) + 256), the rest from page_pool_dev_alloc() one page's
worth at a time - and after XDP_PASS the skb goes to napi_gro_receive(),
whose tracepoint reports its truesize.  So the sizes page_pool_dev_alloc()
folds (and the fragment alignment of the release) show in the truesize of
frames sent one after another.

Everything happens in a network namespace of our own (skbsim.live.tap.Netns):
a veth pair ``skbv<pid>a`` / ``skbv<pid>b``, an XDP program that returns
XDP_PASS (two BPF instructions loaded with bpf(BPF_PROG_LOAD), flagged as
frags-capable so the MTU may exceed a page), attached to the ``b`` end
through rtnetlink, raw frames written on ``a`` with an AF_PACKET socket,
napi_gro_receive_entry read from a tracefs instance of our own filtered on
``b``.  Deleting the namespace removes the pair and the program.

:func:`model_truesizes` gives what the model's page_pool says for the same
frames: skb_pp_cow_data() written with skbsim's functions.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct

from skbsim.errors import InputError
from skbsim.live.tap import Netns, ethernet_frame
from skbsim.live.tracefs import TraceInstance, sigterm_as_interrupt

# include/uapi/linux/bpf.h
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_XDP = 6
BPF_F_XDP_HAS_FRAGS = 1 << 5
XDP_PASS = 2
SYS_bpf = 321                      # x86_64
# include/uapi/linux/if_link.h, rtnetlink.h, netlink.h
IFLA_XDP = 43
IFLA_XDP_FD = 1
IFLA_XDP_FLAGS = 3
XDP_FLAGS_DRV_MODE = 1 << 2
RTM_SETLINK = 19
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLA_F_NESTED = 1 << 15
XDP_PACKET_HEADROOM = 256
EVENT = "net/napi_gro_receive_entry"


def xdp_pass_program() -> int:
    """bpf(BPF_PROG_LOAD): ``r0 = XDP_PASS; exit`` as a frags-capable XDP program; returns its fd."""
    insns = bytes.fromhex("b700000002000000") + bytes.fromhex("9500000000000000")
    insns_buf = ctypes.create_string_buffer(insns, len(insns))
    license_buf = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(72)
    struct.pack_into("=IIQQ", attr, 0, BPF_PROG_TYPE_XDP, 2, ctypes.addressof(insns_buf),
                     ctypes.addressof(license_buf))
    struct.pack_into("=I", attr, 44, BPF_F_XDP_HAS_FRAGS)
    struct.pack_into("16s", attr, 48, b"skbsim_pass")
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(SYS_bpf, BPF_PROG_LOAD, attr, ctypes.c_uint(72))
    if fd < 0:
        raise InputError(f"bpf(BPF_PROG_LOAD) failed: {os.strerror(ctypes.get_errno())}")
    return fd


def _rtattr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def attach_xdp(ifname: str, prog_fd: int) -> None:
    """RTM_SETLINK with IFLA_XDP {IFLA_XDP_FD, IFLA_XDP_FLAGS = XDP_FLAGS_DRV_MODE} (call inside the netns)."""
    index = socket.if_nametoindex(ifname)
    xdp = _rtattr(IFLA_XDP_FD, struct.pack("=i", prog_fd)) + _rtattr(IFLA_XDP_FLAGS, struct.pack("=I", XDP_FLAGS_DRV_MODE))
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, 0, 0) + _rtattr(IFLA_XDP | NLA_F_NESTED, xdp)
    message = struct.pack("=IHHII", 16 + len(body), RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
        nl.send(message)
        reply = nl.recv(65536)
    _, kind, _, _, _ = struct.unpack_from("=IHHII", reply)
    if kind == NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", reply, 16)
        if error:
            raise InputError(f"attaching the XDP program to {ifname} failed: {os.strerror(-error)}")


def _send_frames(ifname: str, lengths: list[int]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        for length in lengths:
            sock.send(ethernet_frame(length))


def live_truesizes(lengths: list[int], mtu: int = 9000) -> list[int]:
    """The truesize napi_gro_receive_entry reports on the XDP end for each frame, in order."""
    pid = os.getpid()
    a, b = f"skbv{pid}a"[:15], f"skbv{pid}b"[:15]
    with sigterm_as_interrupt(), Netns() as netns:
        netns.ip("link", "add", a, "mtu", str(mtu), "type", "veth", "peer", "name", b, "mtu", str(mtu))
        netns.ip("link", "set", "dev", a, "up")
        netns.ip("link", "set", "dev", b, "up")
        prog = xdp_pass_program()
        try:
            netns.run(attach_xdp, b, prog)
        finally:
            os.close(prog)
        with TraceInstance([EVENT], device=b) as trace:
            netns.run(_send_frames, a, lengths)
            records = trace.take().records
    sizes = [r.truesize for r in records if r.event == "napi_gro_receive_entry"]
    if len(sizes) != len(lengths):
        raise InputError(f"traced {len(sizes)} of {len(lengths)} frames on {b}")
    return sizes


def model_truesizes(profile, lengths: list[int]) -> list[int]:
    """skb_pp_cow_data(pool, &skb, XDP_PACKET_HEADROOM) in the model, one frame after another, each skb freed
    before the next (as the stack drops them): the truesize of each copy.

    net/core/skbuff.c: skb_pp_cow_data() - the head: size = min(len, SKB_WITH_OVERHEAD(PAGE_SIZE - 256)),
    truesize = SKB_HEAD_ALIGN(size) + 256 from page_pool_dev_alloc_va(), napi_build_skb() on it; the rest in
    pieces of at most PAGE_SIZE from page_pool_dev_alloc(), each skb_add_rx_frag() with what came back.
    veth's pool (veth_create_page_pool()) has pool_size 256 and no NAPI link.
    """
    from skbsim.kernel import Kernel
    from skbsim.net.page_pool import (
        page_pool_create,
        page_pool_destroy,
        page_pool_dev_alloc,
        page_pool_dev_alloc_va,
        page_pool_params,
        skb_mark_for_recycle,
    )
    from skbsim.net.skbuff import kfree_skb, napi_build_skb, skb_add_rx_frag

    kernel = Kernel(profile)
    pool, _ = page_pool_create(kernel, page_pool_params(pool_size=256), name="veth rq")
    page_size = profile.PAGE_SIZE
    max_head = profile.SKB_WITH_OVERHEAD(page_size - XDP_PACKET_HEADROOM)
    out = []
    with kernel.softirq():
        for length in lengths:
            size = min(length, max_head)
            va, truesize = page_pool_dev_alloc_va(kernel, pool, profile.SKB_HEAD_ALIGN(size) + XDP_PACKET_HEADROOM)
            skb = napi_build_skb(kernel, va, truesize)
            skb_mark_for_recycle(skb)
            left = length - size
            while left:
                piece = min(left, page_size)
                page, offset, piece_truesize = page_pool_dev_alloc(kernel, pool, piece)
                skb_add_rx_frag(skb, skb.nr_frags, page, offset, piece, piece_truesize)
                left -= piece
            out.append(skb.truesize)
            kfree_skb(kernel, skb)
    page_pool_destroy(kernel, pool)
    kernel.assert_no_leaks()
    return out
