"""The host profile (``--kernel host``) derived on this machine, checked against the running kernel.

What the kernel shows, and what it checks:
- /sys/kernel/btf/vmlinux (and ``bpftool btf dump`` where installed): the two struct sizes;
- /sys/kernel/slab/skbuff_small_head/object_size: SKB_SMALL_HEAD_CACHE_SIZE, which MAX_HEADER,
  NET_SKB_PAD, NET_IP_ALIGN and the shinfo size all feed into;
- /sys/kernel/slab/skbuff_head_cache/object_size: sizeof(struct sk_buff);
- the raw .config text: LL_MAX_HEADER / MAX_HEADER by the netdevice.h rule, read here by hand;
- truesize of frames injected through a TAP (skbsim.live.probe, tracefs): against hand formulas of
  the tun routes, and against the model's tun driver (skbsim.drivers.tun) on the host profile.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess

import pytest

from skbsim.errors import InputError

pytestmark = pytest.mark.live

VMLINUX = "/sys/kernel/btf/vmlinux"
SMALL_HEAD_SLAB = "/sys/kernel/slab/skbuff_small_head/object_size"
HEAD_SLAB = "/sys/kernel/slab/skbuff_head_cache/object_size"


@pytest.fixture(scope="module")
def host():
    from skbsim.live.host import host_profile

    if not os.path.exists(VMLINUX):
        pytest.skip(f"{VMLINUX} missing (CONFIG_DEBUG_INFO_BTF)")
    try:
        return host_profile()
    except InputError as err:
        pytest.skip(f"no host profile on this machine: {err}")


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def _config_text() -> str:
    release = os.uname().release
    if os.path.exists("/proc/config.gz"):
        return gzip.decompress(open("/proc/config.gz", "rb").read()).decode()
    path = f"/boot/config-{release}"
    if os.path.exists(path):
        return open(path).read()
    pytest.skip("no kernel config (/proc/config.gz, /boot/config-*)")


def test_rules_come_from_the_release_at_or_below(host):
    major, minor = map(int, re.match(r"(\d+)\.(\d+)", os.uname().release).groups())
    rules = host.release.rsplit("rules of ", 1)[1]
    rules_version = tuple(map(int, rules.split(".")))
    assert rules_version <= (major, minor)
    assert host.rules_from.startswith(f"built-in profile {rules}, the newest at or below {os.uname().release}")


def test_struct_sizes_against_btf_and_slab(host):
    from skbsim.live.btf import struct_sizes

    sizes = struct_sizes(VMLINUX, ["sk_buff", "skb_shared_info"])
    assert (host.sizeof_sk_buff, host.sizeof_skb_shared_info) == (sizes["sk_buff"], sizes["skb_shared_info"])
    # On 64-bit: 48 bytes of fields, then frags[MAX_SKB_FRAGS] of 16 bytes each.
    assert host.sizeof_skb_shared_info == 48 + 16 * host.MAX_SKB_FRAGS
    if os.path.exists(HEAD_SLAB):
        # skb_init(): kmem_cache_create("skbuff_head_cache", sizeof(struct sk_buff), ...)
        assert int(open(HEAD_SLAB).read()) == host.sizeof_sk_buff


def test_struct_sizes_against_bpftool(host):
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool not installed")
    dump = subprocess.run([bpftool, "btf", "dump", "file", VMLINUX, "format", "raw"], capture_output=True,
                          text=True, check=True).stdout
    found = dict(re.findall(r"STRUCT '(sk_buff|skb_shared_info)' size=(\d+)", dump))
    assert (int(found["sk_buff"]), int(found["skb_shared_info"])) == (host.sizeof_sk_buff,
                                                                       host.sizeof_skb_shared_info)


def test_max_header_from_the_raw_config(host):
    # include/linux/netdevice.h, applied to the config text by hand (no parser of ours involved).
    text = _config_text()

    def value(name):
        match = re.search(rf"^CONFIG_{name}=(\S+)$", text, re.M)
        return match.group(1) if match else None

    if value("HYPERV_NET") == "y":
        ll = 128
    elif value("WLAN") == "y" or value("AX25") in ("y", "m"):
        ll = 128 if value("MAC80211_MESH") == "y" else 96
    else:
        ll = 32
    tunnels = any(value(n) in ("y", "m") for n in ("NET_IPIP", "NET_IPGRE", "IPV6_SIT", "IPV6_TUNNEL"))
    assert (host.LL_MAX_HEADER, host.MAX_HEADER) == (ll, ll + 48 if tunnels else ll)
    frags = value("MAX_SKB_FRAGS")
    if frags is not None and host.feature("max_skb_frags_rule") == "config":
        assert host.MAX_SKB_FRAGS == int(frags)


def test_small_head_size_against_slab(host):
    if not host.has("small_head_cache"):
        pytest.skip("the host's rules have no skbuff_small_head cache")
    if not os.path.exists(SMALL_HEAD_SLAB):
        pytest.skip(f"{SMALL_HEAD_SLAB} missing (SLUB sysfs)")
    # By hand from the inputs: MAX_TCP_HEADER = L1_ALIGN(128 + MAX_HEADER);
    # GRO_MAX_HEAD_PAD = MAX_HEADER + 128 + NET_SKB_PAD + NET_IP_ALIGN; SKB_HEAD_ALIGN(x) =
    # ALIGN(x, L1) + ALIGN(shinfo, L1); a power-of-two result gets one more cache line.
    l1 = host.L1_CACHE_BYTES
    max_tcp_header = _align(128 + host.MAX_HEADER, l1)
    if host.feature("small_head_size_rule") == "max_tcp_header_gro_pad":
        head = max(max_tcp_header, host.MAX_HEADER + 128 + max(32, l1) + host.NET_IP_ALIGN)
    else:
        head = max_tcp_header
    size = _align(head, l1) + _align(host.sizeof_skb_shared_info, l1)
    if size & (size - 1) == 0:
        size += l1
    live = int(open(SMALL_HEAD_SLAB).read())
    assert size == live == host.SKB_SMALL_HEAD_CACHE_SIZE


# -- frames through a TAP ------------------------------------------------------------------

# Short frames either side of the small-head boundary on the blocking route, around the largest
# build_skb frame on the non-blocking one, and paged frames.
LENGTHS = [60, 192, 193, 256, 257, 1000, 1514, 3000, 3456, 3457, 4031, 4032, 4033, 9000]


@pytest.fixture(scope="module")
def probe_ready():
    from skbsim.live.probe import requirements_missing

    missing = requirements_missing()
    if missing:
        pytest.skip("live probe impossible: missing " + "; ".join(missing))


def _kmalloc_bytes(host, size: int) -> int:
    """What a kmalloc'ed head of SKB_HEAD_ALIGN'ed size takes: the small-head object or a power of two."""
    if host.has("small_head_cache") and size <= host.SKB_SMALL_HEAD_CACHE_SIZE:
        return host.SKB_SMALL_HEAD_CACHE_SIZE
    return 1 << (size - 1).bit_length()


def test_tap_truesize_by_hand(host, probe_ready):
    """Linear frames only, by the tun.c formulas (drivers/net/tun.c, read for 6.12):

    blocking write: tun_alloc_skb() -> alloc_skb(align + len) with align = NET_SKB_PAD + NET_IP_ALIGN
      (tun->align is NET_SKB_PAD); linear while align + len < PAGE_SIZE; truesize = the kmalloc'ed head
      + SKB_DATA_ALIGN(sizeof(struct sk_buff)).
    non-blocking write: tun_build_skb() while SKB_DATA_ALIGN(len + TUN_RX_PAD + 256) + shinfo fits a page:
      buflen = SKB_DATA_ALIGN(len + TUN_RX_PAD) + shinfo, truesize = buflen + SKB_DATA_ALIGN(sk_buff).
    """
    from skbsim.live.probe import measure

    pad = host.NET_SKB_PAD + host.NET_IP_ALIGN
    shinfo, skb = host.SHINFO_SIZE, host.SKB_HEAD_STRUCT_SIZE
    linear = [n for n in LENGTHS if pad + n < host.PAGE_SIZE]
    blocking = {row["len_in"]: row for row in measure("blocking", linear)}
    for n in linear:
        head = _align(pad + n, host.SMP_CACHE_BYTES) + shinfo
        assert (n, blocking[n]["truesize"], blocking[n]["data_len"]) == (n, _kmalloc_bytes(host, head) + skb, 0)
    build = [n for n in linear if _align(n + pad + 256, host.SMP_CACHE_BYTES) + shinfo <= host.PAGE_SIZE]
    nonblocking = {row["len_in"]: row for row in measure("nonblocking", build)}
    for n in build:
        expected = _align(n + pad, host.SMP_CACHE_BYTES) + shinfo + skb
        assert (n, nonblocking[n]["truesize"]) == (n, expected)
    # The small-head boundary itself, on this machine's numbers: align + len up to the small head's room.
    room = host.SKB_SMALL_HEAD_HEADROOM
    if host.has("small_head_cache") and room - pad in LENGTHS and room - pad + 1 in LENGTHS:
        assert blocking[room - pad]["truesize"] == host.SKB_SMALL_HEAD_CACHE_SIZE + skb
        assert blocking[room - pad + 1]["truesize"] > host.SKB_SMALL_HEAD_CACHE_SIZE + skb


@pytest.mark.parametrize("route,options", [("blocking", {"write": "block"}), ("nonblocking", {"write": "nonblock"}),
                                           ("napi", {"write": "block", "napi": "1"})])
def test_tap_against_the_tun_model(host, probe_ready, route, options):
    """Every injected frame: (len, data_len, truesize, nr_frags) as traced = as the model's tun driver says."""
    from skbsim.drivers import tun
    from skbsim.drivers.base import make_frame
    from skbsim.kernel import Kernel
    from skbsim.live.probe import measure
    from skbsim.net.napi import napi_struct, net_device
    from skbsim.net.skbuff import kfree_skb

    live = measure(route, LENGTHS, mtu=9000)
    kernel = Kernel(host)
    dev = net_device("tap0")
    queue = tun.open_queue(kernel, dev, napi_struct(dev), options)
    for row in live:
        assert tun.nic_receive(kernel, queue, make_frame(row["len_in"])), queue.write_errors
        got = []
        with kernel.softirq():
            tun.poll(kernel, queue, 64, got.append)
        (skb,) = got
        modelled = (skb.len, skb.data_len, skb.truesize, skb.nr_frags)
        kfree_skb(kernel, skb)
        assert (row["len_in"], modelled) == (row["len_in"], (row["len"], row["data_len"], row["truesize"],
                                                             row["nr_frags"]))
    tun.close_queue(kernel, queue)
    kernel.assert_no_leaks()
