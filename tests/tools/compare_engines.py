#!/usr/bin/env python3
"""Both engines over random workloads, key for key: the fast engine must give the reference engine's JSON.

Not part of the test suite (tests/test_fast_engine.py runs a few hundred random workloads per run);
this is the long comparison run before a change to either engine is merged.  Each workload draws a
kernel (the built-in profiles and unusual ones derived from them: 16 KiB and 64 KiB pages, the
largest page order 1 to 3, MAX_SKB_FRAGS up to 45, 128-byte cache lines, NET_IP_ALIGN 2), a driver
and its options, traffic, timing, socket, CPUs and fault rules; both engines run it, and every key
of the JSON (the engine's name aside) must be equal, with --trace and --plot data too for a share of
them.  A workload the fast engine hands to the reference engine is counted (with the reason), not
compared.  Prints one line per difference (the workload, to rerun it) and a summary; exit 1 if any
differs.

Usage: python3 tests/tools/compare_engines.py [--workloads 2000] [--seed 1] [--jobs 2] [--max-frames 3000]
       [--drivers ice,copybreak,tun,ntb,virtio_net,mana,libeth,ice-libeth,mlx5,bnxt,bnxt-copybreak,gve,gve-hsplit,gve-7.1,
                  ice-gro,copybreak-gro,virtio-gro,mana-gro,libeth-gro,ice-libeth-gro] [--tcp-share 0.2]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: tcp_engines.random_capture()

KERNELS = ("6.1", "6.9", "6.12", "6.18", "7.1", "host")
#: unusual profiles: (base, name, constants) -- sizeof_skb_shared_info follows MAX_SKB_FRAGS, and 6.1's
#: MAX_SKB_FRAGS follows PAGE_SIZE (Profile.derive)
UNUSUAL = (
    ("6.9", "6.9-16k", {"PAGE_SIZE": 16384}),
    ("6.18", "6.18-64k", {"PAGE_SIZE": 65536}),
    ("6.1", "6.1-16k", {"PAGE_SIZE": 16384}),
    ("6.12", "6.12-order1", {"MAX_PAGE_ORDER": 1}),
    ("6.9", "6.9-order2", {"MAX_PAGE_ORDER": 2}),
    ("6.18", "6.18-order3", {"MAX_PAGE_ORDER": 3}),
    ("6.9", "6.9-frags45", {"MAX_SKB_FRAGS": 45}),
    ("6.18", "6.18-frags30", {"MAX_SKB_FRAGS": 30}),
    ("6.12", "6.12-l1-128", {"L1_CACHE_BYTES": 128}),
    ("6.18", "6.18-ipalign2", {"NET_IP_ALIGN": 2}),
    ("6.9", "6.9-16k-frags20", {"PAGE_SIZE": 16384, "MAX_SKB_FRAGS": 20}),
)
LAYERS = ("page_alloc", "slab", "skb_head", "skb_data", "page_frag")


def write_profiles(folder: Path) -> list[str]:
    """The unusual profiles as TOML files in folder; their paths."""
    from skbsim.profile import load_profile

    paths = []
    for base, name, constants in UNUSUAL:
        path = folder / f"{name}.toml"
        path.write_text(load_profile(base).derive(origin=str(path), constants=constants, name=name).to_toml())
        paths.append(str(path))
    return paths


def _ice(rng: random.Random) -> tuple[dict, str]:
    options = {"rx": rng.choice(("legacy", "build_skb"))}
    if rng.random() < 0.4:
        options["ring"] = rng.choice(("64", "96", "512", "2048"))
    if rng.random() < 0.4:
        options["mtu"] = rng.choice(("68", "1200", "1500", "3000", "9000"))
    traffic = rng.choice(("imix", "fixed:60", "fixed:1514", "uniform:14-1600", "uniform:60-1664",
                          "uniform:14-9018", "fixed:3300", "fixed:9018"))
    return options, traffic


def _copybreak(rng: random.Random) -> tuple[dict, str]:
    rx_buf = rng.choice((None, "512", "1514", "1600", "3712"))
    options = {"rx_buf": rx_buf} if rx_buf else {}
    copybreak = rng.choice((None, "0", "64", "200", "256", "300", "700", "1000", "1514"))
    if copybreak and int(copybreak) <= int(rx_buf or 2048):
        options["copybreak"] = copybreak
    if rng.random() < 0.4:
        options["ring"] = rng.choice(("8", "64", "512"))
    traffic = rng.choice(("imix", "fixed:60", "fixed:257", "uniform:14-1600", "uniform:60-500", "uniform:14-4000"))
    return options, traffic


def _tun(rng: random.Random) -> tuple[dict, str]:
    options = {}
    for key, values in (("write", ("block", "nonblock")), ("napi", ("0", "1", "frags")),
                        ("sndbuf", ("1", "3000", "100000", "2147483647"))):
        if rng.random() < 0.5:
            options[key] = rng.choice(values)
    if options.get("napi") == "frags":
        options.update(napi="1", frags="1")
    traffic = rng.choice(("imix", "fixed:14", "fixed:60", "fixed:3456", "fixed:4032", "fixed:65535",
                          "uniform:14-1600", "uniform:3400-4100", "uniform:7000-9000", "uniform:14-65535"))
    return options, traffic


def _ntb(rng: random.Random) -> tuple[dict, str]:
    options = {}
    draw = rng.random()
    if draw < 0.6:  # upstream (0), TrueNAS's fix (3646), or any
        options["copybreak"] = rng.choice(("0", "3646")) if draw < 0.4 else str(rng.randint(1, 65535))
    if rng.random() < 0.5:  # kmalloc-large heads (the default), page_frag and kmalloc heads, small slab heads
        options["mtu"] = rng.choice(("65510", "9000", "3000", "1500", "68", str(rng.randint(68, 65510))))
    traffic = rng.choice(("imix", "fixed:60", "fixed:1514", "fixed:3660", "fixed:9014", "uniform:14-1600",
                          "uniform:14-9100", "uniform:14-65535", "fixed:65524", "fixed:65525"))
    return options, traffic


def _virtio_net(rng: random.Random) -> tuple[dict, str]:
    options = {}
    for key, values in (("ring", ("2", "8", "64", "1024")), ("mtu", ("none", "68", "1400", "1500", "9000")),
                        ("guest_gso", ("0", "1")), ("csum", ("partial", "valid", "none")), ("dma_api", ("0", "1")),
                        ("indirect", ("0", "1")), ("gro", ("0", "1")), ("gro_max_size", ("1", "3000", "65536"))):
        if rng.random() < 0.4:
            options[key] = rng.choice(values)
    traffic = rng.choice(("imix", "fixed:60", "fixed:100", "fixed:1514", "uniform:14-1600", "uniform:60-9018",
                          "uniform:14-65535", "fixed:40"))
    if options.get("gro") == "0" and rng.random() < 0.3:
        traffic = rng.choice(("tcp-bulk", "tcp-bulk:ts=0", "tcp-bulk:mss=500"))
    return options, traffic


def _mana(rng: random.Random) -> tuple[dict, str]:
    options = {}
    if rng.random() < 0.6:
        # around 6.18's fragment limit (mtu + MANA_RXBUF_PAD <= half a page), v6.9's XDP headroom limit and
        # page (napi_alloc_frag() above it: the reference engine's), jumbo frames
        options["mtu"] = rng.choice(("68", "1500", "1714", "1715", "3506", "3507", "3762", "3763", "4000", "9000"))
    if rng.random() < 0.4:
        options["ring"] = rng.choice(("128", "200", "512", "2048"))
    if rng.random() < 0.2:
        options["gro"] = rng.choice(("0", "1"))
    if rng.random() < 0.1:
        options["gro_flush_timeout"] = "20000"
    traffic = rng.choice(("imix", "fixed:14", "fixed:60", "fixed:1514", "uniform:14-1600", "uniform:60-4100",
                          "uniform:14-9014", "fixed:9014"))
    return options, traffic


def _libeth(rng: random.Random) -> tuple[dict, str]:
    options = {"nic": rng.choice(("iavf", "idpf"))}
    if rng.random() < 0.6:
        # one buffer (2048-byte truesize, two per page) up to MTU 1500 or so; above, 4096-byte buffers of a
        # whole page each and frames of up to five of them
        options["mtu"] = rng.choice(("68", "1000", "1500", "1536", "2000", "3000", "9000", "16000"))
    if rng.random() < 0.4:
        options["ring"] = rng.choice(("64", "100", "512", "2048"))
    if rng.random() < 0.2:
        options["gro"] = rng.choice(("0", "1"))
    if options["nic"] == "idpf" and rng.random() < 0.4:
        options["hsplit"] = "on"
    return options, _pp_traffic(rng)


def _ice_libeth(rng: random.Random) -> tuple[dict, str]:
    options = {}
    if rng.random() < 0.6:
        options["mtu"] = rng.choice(("68", "1500", "3000", "9000", "9702"))
    if rng.random() < 0.4:
        options["ring"] = rng.choice(("64", "100", "512", "2048"))
    if rng.random() < 0.4:
        options["hsplit"] = "on"
    return options, _pp_traffic(rng)


def _mlx5(rng: random.Random) -> tuple[dict, str]:
    options = {"rq": rng.choice(("striding", "legacy"))}
    if rng.random() < 0.7:
        # two linear strides a page up to 1642, linear skbs up to 3690, the legacy RQ's page-sized fragments
        # above 9834, the largest MTU
        options["mtu"] = rng.choice(("68", "1500", "1642", "1643", "3690", "3691", "4000", "9000", "9834", "9835",
                                     "9978"))
    if rng.random() < 0.5:
        options["ring"] = rng.choice(("16", "64", "200", "1024", "8192"))
    if rng.random() < 0.2:
        options["gro"] = rng.choice(("0", "1"))
    if rng.random() < 0.1:
        options["gro_flush_timeout"] = "20000"
    return options, _pp_traffic(rng)


def _bnxt(rng: random.Random, tunable: bool = False) -> tuple[dict, str]:
    options = {}
    page_mode = rng.random() < 0.3
    if page_mode:
        options["page_mode"] = "on"
    if rng.random() < 0.6:
        # one buffer of a frame (tpa=off) up to a page's rx_buf_size (MTU 3502 or so), page mode's limit, jumbo
        # frames in up to three aggregation pages
        options["mtu"] = rng.choice(("60", "68", "1500", "3000", "3200") + (() if page_mode else ("3502", "3600",
                                                                                                   "9000", "9500")))
    if rng.random() < 0.4:
        options["ring"] = rng.choice(("1", "8", "64", "200", "511", "2047"))
    if rng.random() < 0.4:
        options["tpa"] = rng.choice(("on", "off"))
    if rng.random() < 0.2:
        options["gro"] = rng.choice(("0", "1"))
    if tunable and rng.random() < 0.7:
        options["copybreak"] = rng.choice(("0", "14", "60", "256", "640", "1024"))
    return options, _pp_traffic(rng)


def _gve(rng: random.Random, hsplit: bool = False, buf_len: bool = False) -> tuple[dict, str]:
    options = {}
    if rng.random() < 0.6:
        # frames of one 2048-byte buffer (and copies up to 256 bytes), of up to five at 9000
        options["mtu"] = rng.choice(("68", "1500", "2034", "2035", "4000", "9000"))
    if rng.random() < 0.4:
        options["ring"] = rng.choice(("64", "100", "1024", "4096"))
    if rng.random() < 0.2:
        options["gro"] = rng.choice(("0", "1"))
    if hsplit and rng.random() < 0.6:
        options["hsplit"] = "on"
    if buf_len and rng.random() < 0.6:
        options["rx_buf_len"] = rng.choice(("2048", "4096"))
    return options, _pp_traffic(rng)


def _ice_gro(rng: random.Random) -> tuple[dict, str]:
    """ice with TCP traffic through GRO (skbsim/fast/gro.py): tcp-bulk of any MSS, with and without
    timestamps, GRO's size limit, MTUs and rings."""
    options = {"rx": rng.choice(("legacy", "build_skb"))}
    if rng.random() < 0.4:
        options["ring"] = rng.choice(("64", "96", "512", "2048"))
    if rng.random() < 0.4:
        options["mtu"] = rng.choice(("68", "1200", "1500", "3000", "9000"))
    if rng.random() < 0.3:
        options["gro_max_size"] = rng.choice(("1", "3000", "20000", "65536", "100000", "524280"))
    return options, _tcp_bulk(rng)


def _copybreak_gro(rng: random.Random) -> tuple[dict, str]:
    """copybreak with TCP traffic through GRO: copied skbs (1K, small-head and page_frag heads: stolen or
    chained) and built ones (their buffers stolen), any copybreak and rx_buf."""
    options, _ = _copybreak(rng)
    if rng.random() < 0.3:
        options["gro_max_size"] = rng.choice(("1", "3000", "20000", "65536", "100000"))
    return options, _tcp_bulk(rng)


def _tun_gro(rng: random.Random) -> tuple[dict, str]:
    """tun with IFF_NAPI (or IFF_NAPI_FRAGS) and TCP traffic through GRO (each write's poll flushes its skb: none
    merge), any write mode and send buffer."""
    options, _ = _tun(rng)
    if options.get("napi", "0") == "0":
        options["napi"] = "1"
    return options, _tcp_bulk(rng)


def _virtio_gro(rng: random.Random) -> tuple[dict, str]:
    """virtio_net with TCP traffic through GRO: copied heads (frags moved), buffers built on (heads stolen), GSO
    frames (MTU below the segments), every mergeable-mode option, GRO's size limit."""
    options, _ = _virtio_net(rng)
    options.pop("gro", None)
    return options, _tcp_bulk(rng)


def _mana_gro(rng: random.Random) -> tuple[dict, str]:
    """mana with TCP traffic through GRO: page_pool heads stolen and chained, condensed aggregates, v6.9's
    napi_alloc_frag() buffers above a page, GRO's size limit."""
    options, _ = _mana(rng)
    options.pop("gro", None)
    options.pop("gro_flush_timeout", None)
    if rng.random() < 0.3:
        options["gro_max_size"] = rng.choice(("1", "3000", "20000", "65536", "100000"))
    return options, _tcp_bulk(rng)


def _libeth_gro(rng: random.Random, ice: bool = False) -> tuple[dict, str]:
    """libeth's queues (iavf, idpf, ice's page_pool form) with TCP traffic through GRO, without header split:
    heads stolen and chained, idpf's short queue, condensed aggregates, GRO's size limit."""
    options, _ = _ice_libeth(rng) if ice else _libeth(rng)
    for key in ("gro", "hsplit"):
        options.pop(key, None)
    if rng.random() < 0.3:
        options["gro_max_size"] = rng.choice(("1", "3000", "20000", "65536", "100000"))
    return options, _tcp_bulk(rng)


def _tcp_bulk(rng: random.Random) -> str:
    args = []
    if rng.random() < 0.5:
        args.append(f"mss={rng.choice((1, 6, 100, 200, 536, 1448, 1460, 2000, 2948, 8948, 20000))}")
    if rng.random() < 0.5:
        args.append(f"ts={rng.choice((0, 1))}")
    return "tcp-bulk" + (":" + ",".join(args) if args else "")


def _pp_traffic(rng: random.Random) -> str:
    return rng.choice(("imix", "fixed:60", "fixed:1514", "uniform:14-1600", "uniform:60-4100", "uniform:14-9022",
                       "fixed:9014", "uniform:3000-16000", "uniform:14-100"))


#: the drivers the fast engine runs: (weight, how to draw its options and traffic, whether it takes 4 KiB
#: pages only, the driver's RunConfig name and the kernels (built-in ones and those derived from them) where
#: it exists, when not every one); a driver added to the fast engine gets an entry here
LIBETH_KERNELS = ("6.12", "6.18", "host", "7.1")
DRIVERS = {"ice": (2, _ice, True), "copybreak": (1, _copybreak, False), "tun": (1, _tun, False),
           "virtio_net": (2, _virtio_net, False), "mana": (1, _mana, False), "ntb": (1, _ntb, False),
           "libeth": (1, _libeth, False, "libeth", LIBETH_KERNELS),
           "ice-libeth": (1, _ice_libeth, False, "ice", ("7.1",)),
           "mlx5": (1, _mlx5, True),
           # -- bnxt -- (4 KiB pages only; rx-copybreak is tunable from 6.14)
           "bnxt": (1, _bnxt, True),
           "bnxt-copybreak": (1, lambda rng: _bnxt(rng, True), True, "bnxt", ("6.18", "7.1", "host")),
           # -- gve -- (4 KiB pages only; header split from 6.9, rx-buf-len in 7.x)
           "gve": (1, _gve, True),
           "gve-hsplit": (1, lambda rng: _gve(rng, True), True, "gve", ("6.9", "6.12", "6.18", "7.1", "host")),
           "gve-7.1": (1, lambda rng: _gve(rng, True, True), True, "gve", ("7.1",)),
           "ice-gro": (2, _ice_gro, True, "ice", ("6.1", "6.9", "6.12", "6.18", "host")),
           "copybreak-gro": (1, _copybreak_gro, False, "copybreak", KERNELS),
           "tun-gro": (1, _tun_gro, False, "tun", ("6.1", "6.9", "6.12", "6.18", "host")),
           "virtio-gro": (2, _virtio_gro, False, "virtio_net", ("6.1", "6.9", "6.12", "6.18", "host")),
           "mana-gro": (1, _mana_gro, False, "mana", KERNELS),
           "libeth-gro": (1, _libeth_gro, False, "libeth", LIBETH_KERNELS),
           "ice-libeth-gro": (1, lambda rng: _libeth_gro(rng, True), False, "ice", ("7.1",))}


#: the drivers (and options) a TCP run goes through
TCP_DRIVERS = (("tun", {}), ("tun", {"napi": "1"}), ("tun", {"napi": "1", "write": "nonblock"}),
               ("tun", {"napi": "1", "frags": "1"}),
               ("virtio_net", {}), ("virtio_net", {"gro": "0"}),
               ("ice", {"gro": "0"}), ("ice", {}),
               # -- TCP through NAPI drivers --
               ("ice", {"rx": "legacy"}), ("ice", {"rx": "legacy", "gro": "0"}), ("copybreak", {}),
               ("copybreak", {"gro": "0"}), ("copybreak", {"copybreak": "1500"}), ("copybreak", {"copybreak": "0"}),
               ("mana", {"gro": "0"}), ("libeth", {"gro": "0"}), ("mlx5", {"gro": "0"}), ("bnxt", {"gro": "0"}),
               ("gve", {"gro": "0"}),
               # the page_pool drivers (ice's page_pool form: ice on 7.1): GRO, idpf's short queue, header split
               ("mana", {}), ("libeth", {}), ("libeth", {"nic": "idpf"}), ("libeth", {"nic": "idpf", "gro": "0"}),
               ("libeth", {"nic": "idpf", "hsplit": "on", "gro": "0"}), ("mana", {"mtu": "9000", "gro": "0"}),
               ("bnxt", {"gro": "0", "page_mode": "on"}), ("bnxt", {"gro": "0", "mtu": "9000"}),
               # virtio_net at a device MTU below Ethernet's (VIRTIO_NET_F_MTU, as a cloud VM's eth0 may have), and
               # with checksums the host does not hand over as partial (no header pulled before the stack's)
               ("virtio_net", {"mtu": "1400"}), ("virtio_net", {"mtu": "1400", "gro": "0"}),
               ("virtio_net", {"csum": "none", "gro": "0"}), ("virtio_net", {"csum": "valid"}),
               # ntb_netdev: upstream's 128 KiB kmalloc heads, TrueNAS's copybreak, a small MTU's heads
               ("ntb", {}), ("ntb", {"copybreak": "3646"}), ("ntb", {"mtu": "1500"}),
               ("ntb", {"mtu": "9000", "copybreak": "200"}))


def _tcp(rng: random.Random, kernel: str, max_frames: int, drivers=None, folder: str | None = None) -> dict:
    """A run with a socket per flow (--socket tcp): synthetic TCP senders, or (a share CAPTURE_SHARE of them, with
    a folder to write into) a capture drawn by tcp_engines.random_capture(), into TCP receivers through one of
    TCP_DRIVERS (of drivers, when given), a kernel of 4 KiB pages."""
    if "16k" in kernel or "64k" in kernel:
        kernel = rng.choice(KERNELS)
    choices = [choice for choice in TCP_DRIVERS if drivers is None or choice[0] in drivers]
    driver, options = rng.choice(choices or TCP_DRIVERS)
    faults = ()
    if rng.random() < 0.2:
        faults = ((rng.choice(LAYERS), rng.choice((0.001, 0.02)), 1, -1, rng.randint(0, 300)),)
    if folder is not None and rng.random() < CAPTURE_SHARE:  # -- TCP capture --
        from tcp_engines import random_capture

        # (through GRO or without, as the driver's options were drawn)
        path = os.path.join(folder, f"capture-{rng.getrandbits(64):016x}.pcap")
        traffic, frames = random_capture(rng, path, max_frames)
        return dict(
            kernel=kernel, driver=driver, options=options, traffic=traffic, count=rng.choice((frames, frames, None)),
            rate=rng.choice((None, None, 1e6)), socket="tcp", app_rate=rng.choice((None, 0, 1e3, 2e4, 2e5)),
            app_read_size=rng.choice((None, 1000, 65536)), so_rcvbuf=rng.choice((None, 4096, 65536, 1 << 20)),
            seed=rng.randint(0, 1000), cpus=rng.randint(1, 2), faults=faults)
    return dict(
        kernel=kernel, driver=driver, options=options, traffic=f"tcp-bulk:ts={rng.randint(0, 1)}",
        count=rng.randint(1, max_frames), rate=rng.choice((1e5, 1e6, 3e6, 1234567.0)), socket="tcp",
        tcp=rng.choice(("bulk", "messages:3000", "messages:20000@2000", "messages:100@50000", "messages:1460")),
        flows=rng.choice((1, 2, 3, 16)), rtt_ms=rng.choice((0.05, 0.5, 1.0, 20.0)),
        app_rate=rng.choice((None, 0, 1e3, 2e4, 2e5)), app_read_size=rng.choice((None, 1000, 65536)),
        so_rcvbuf=rng.choice((None, 4096, 65536, 1 << 20)), seed=rng.randint(0, 1000), cpus=rng.randint(1, 2),
        duration_ms=rng.choice((100.0, 1000.0, 60_000.0)), faults=faults,
    )


#: the share of workloads that are TCP runs (--socket tcp), drawn by _tcp()
TCP_SHARE = 0.2
#: -- TCP capture --: the share of those that replay a capture (tcp_engines.random_capture()) instead of senders
CAPTURE_SHARE = 0.35


# -- TCP pressure --
def _tcp_pressure(rng: random.Random, workload: dict) -> dict:
    """A TCP run of _tcp() made to reach tcp_prune_queue() and collapsing: through tun without IFF_NAPI (or ntb, as
    drawn), a small SO_RCVBUF, small messages, a slow reader or none (faults, flows, kernels and the rest as drawn)."""
    driver, options = (workload["driver"], workload["options"]) if workload["driver"] == "ntb" else ("tun", {})
    return dict(workload, driver=driver, options=options, so_rcvbuf=rng.choice((4096, 8192, 16384, 65536)),
                tcp=rng.choice(("messages:100@50000", "messages:300@20000", "messages:50@100000", "messages:1000")),
                app_rate=rng.choice((0, 100, 1e3)), app_read_size=rng.choice((None, 100, 1000)),
                flows=rng.choice((1, 2, 3)), rtt_ms=rng.choice((0.05, 0.5, 5.0)))


def draw(rng: random.Random, profiles: list[str], max_frames: int, drivers: tuple[str, ...] = tuple(DRIVERS),
         tcp_share: float = TCP_SHARE, folder: str | None = None) -> dict:
    """One random workload: RunConfig's keyword arguments (a driver of drivers, or a TCP run: a capture's written
    into folder, when given)."""
    kernel = rng.choice(KERNELS + tuple(profiles))
    if tcp_share and rng.random() < tcp_share:
        # (a driver's variants, ice-gro for one, name their driver)
        return _tcp(rng, kernel, max_frames, {DRIVERS[name][3] if len(DRIVERS[name]) > 3 else name for name in drivers},
                    folder)
    driver = rng.choice([name for name in drivers for _ in range(DRIVERS[name][0])])
    if DRIVERS[driver][2] and ("16k" in kernel or "64k" in kernel):
        driver = rng.choice([name for name in drivers if not DRIVERS[name][2]] or ["copybreak"])
    options, traffic = DRIVERS[driver][1](rng)
    if len(DRIVERS[driver]) > 3:
        _, _, _, name, kernels = DRIVERS[driver]
        derived = [path for path, (base, name, _) in zip(profiles, UNUSUAL) if base in kernels
                   and not (DRIVERS[driver][2] and ("16k" in name or "64k" in name))]
        driver, kernel = name, rng.choice(kernels + tuple(derived))
    rate = rng.choice((None, 1e5, 1e6, 3e6, 2e7, 1234567.0))
    faults = ()
    if rng.random() < 0.4:
        layers = rng.sample(LAYERS, rng.randint(1, 3))
        faults = tuple((layer, rng.choice((0.0, 0.001, 0.02, 0.3, 1.0)), rng.randint(1, 5),
                        rng.choice((-1, 0, 1, 3, 100)), rng.randint(0, 300)) for layer in layers)
    return dict(
        kernel=kernel, driver=driver, options=options, traffic=traffic, count=rng.randint(0, max_frames),
        rate=rate, arrival="poisson" if rate and rng.random() < 0.3 else "constant",
        rcvbuf=rng.choice((1, 2304, 5_000, 50_000, 212_992, 4_000_000)),
        app_rate=rng.choice((None, 1e4, 5e5, 3e6)), seed=rng.randint(0, 1000), cpus=rng.randint(1, 4),
        flows=rng.choice((1, 2, 16, 500)), packet_cost_ns=rng.choice((0, 100, 500, 3_000)),
        irq_latency_ns=rng.choice((0, 2_000, 50_000)), faults=faults,
    )


def _trace_and_plot(workload: dict, with_trace: bool) -> tuple[bool, bool]:
    """(--trace, --plot) of a draw compared with them: a UDP run asks for both but --plot of TCP through GRO (the
    reference engine's: its traces are compared without); a TCP run of synthetic senders for what the fast engine
    covers of it (--trace through every driver, --plot through tun (its GRO too), ntb, ice, copybreak, libeth, mana
    and bnxt without GRO); a capture for both (the reference engine's)."""
    from skbsim.sim import RunConfig, tcp_through_gro

    if not with_trace:
        return False, False
    synthetic_tcp = workload["traffic"].startswith("tcp-bulk")
    if workload.get("socket") != "tcp" or not synthetic_tcp:
        return True, not synthetic_tcp
    plot = workload["driver"] == "tun" or (workload["driver"] in ("ntb", "ice", "copybreak", "libeth", "mana", "bnxt")
                                           and not tcp_through_gro(RunConfig(**workload)))
    return True, plot


def compare(job: tuple[int, dict, bool]) -> tuple[int, str, str]:
    """(index, outcome, detail): outcome 'same', 'differ', 'fallback', 'reference-error' or 'fast-error' (the fast
    engine raised: a bug, reported with its workload rather than ending the comparison)."""
    index, workload, with_trace = job
    from skbsim.fast import simulate_engine
    from skbsim.report import TraceWriter
    from skbsim.sim import RunConfig

    with_trace, plot = _trace_and_plot(workload, with_trace)
    outputs = {}
    with tempfile.TemporaryDirectory(prefix="skbsim-compare-") as tmp:
        for engine in ("reference", "fast"):
            path = os.path.join(tmp, f"{engine}.csv")
            # -- TCP trace --: a run with a socket per flow writes each record's flow fields, as skbsim run does
            trace = TraceWriter(path, per_flow=workload.get("socket") == "tcp") if with_trace else None
            try:
                result, extra, why = simulate_engine(RunConfig(**workload), engine, trace=trace, plot=plot)
            except Exception as err:  # the reference engine's own failures are reported, not compared
                if engine == "reference":
                    return index, "reference-error", f"{type(err).__name__}: {err}"
                where = traceback.extract_tb(err.__traceback__)[-1]
                return index, "fast-error", f"{type(err).__name__}: {err} ({where.filename}:{where.lineno})"
            finally:
                if trace is not None:
                    trace.close()
            if why is not None:
                return index, "fallback", why
            result = dict(result)
            result.pop("engine")
            outputs[engine] = (result, extra if plot else None,
                               Path(path).read_bytes() if with_trace else None)
    reference, fast = outputs["reference"], outputs["fast"]
    if reference == fast:
        return index, "same", ""
    keys = [key for key in reference[0] if reference[0][key] != fast[0].get(key)]
    what = f"keys {keys}" if keys else ("plot data" if reference[1] != fast[1] else "trace")
    return index, "differ", what


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--max-frames", type=int, default=3000)
    parser.add_argument("--drivers", default=",".join(DRIVERS), help="the drivers to draw from, comma-separated "
                        f"(default: all of {', '.join(DRIVERS)})")
    parser.add_argument("--trace-share", type=float, default=0.1, help="share of workloads also compared with "
                        "--trace and --plot")
    parser.add_argument("--tcp-share", type=float, default=TCP_SHARE, help="share of workloads that are TCP runs "
                        f"(--socket tcp: synthetic senders, receivers per flow; default {TCP_SHARE}, 1: only those)")
    parser.add_argument("--tcp-pressure", type=float, default=0.0, help="share of the TCP runs drawn to come under "
                        "memory pressure (tun, a small SO_RCVBUF, small messages, a slow reader; default 0)")
    parser.add_argument("--show", metavar="TEXT", help="print each workload the reference engine ran instead whose "
                        "reason contains TEXT (to reproduce it)")
    args = parser.parse_args()
    from skbsim.fast.cache import compile_now

    drivers = tuple(args.drivers.split(","))
    if not set(drivers) <= set(DRIVERS):
        parser.error(f"--drivers: choose from {', '.join(DRIVERS)}")
    compile_now()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    outcomes: Counter[str] = Counter()
    tcp_outcomes: Counter[str] = Counter()
    capture_outcomes: Counter[str] = Counter()
    plot_outcomes: Counter[str] = Counter()  # -- TCP plot --: the TCP runs compared with --plot
    reasons: Counter[str] = Counter()
    frames = 0
    with tempfile.TemporaryDirectory(prefix="skbsim-profiles-") as folder:
        profiles = write_profiles(Path(folder))
        jobs = []
        for index in range(args.workloads):
            workload = draw(rng, profiles, args.max_frames, drivers, args.tcp_share, folder)
            if args.tcp_pressure and workload.get("socket") == "tcp" and rng.random() < args.tcp_pressure:
                workload = _tcp_pressure(rng, workload)  # -- TCP pressure --
            frames += workload["count"] or 0
            jobs.append((index, workload, rng.random() < args.trace_share))
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for index, outcome, detail in pool.map(compare, jobs, chunksize=4):
                outcomes[outcome] += 1
                if jobs[index][1].get("socket") == "tcp":
                    tcp_outcomes[outcome] += 1
                    if jobs[index][1]["traffic"].startswith("pcap:"):  # -- TCP capture --
                        capture_outcomes[outcome] += 1
                    elif _trace_and_plot(*jobs[index][1:])[1]:
                        plot_outcomes[outcome] += 1
                if outcome == "fallback" or outcome == "reference-error":
                    reasons[f"{outcome}: {detail}"] += 1
                    if args.show and args.show in detail:
                        print(f"{outcome.upper()} ({detail}): {jobs[index][1]!r} trace={jobs[index][2]}", flush=True)
                if outcome in ("differ", "fast-error"):
                    print(f"{outcome.upper()} ({detail}): {jobs[index][1]!r} trace={jobs[index][2]}", flush=True)
    elapsed = time.perf_counter() - started
    print(f"{args.workloads} workloads ({frames:,} frames, seed {args.seed}, {len(UNUSUAL)} unusual profiles) "
          f"in {elapsed:.0f} s: {outcomes['same']} identical, {outcomes['differ']} different, "
          f"{outcomes['fallback']} run by the reference engine instead, {outcomes['reference-error']} "
          f"refused by the reference engine, {outcomes['fast-error']} failed on the fast engine")
    if tcp_outcomes:
        print(f"  of which {sum(tcp_outcomes.values())} TCP runs (--socket tcp): {tcp_outcomes['same']} identical, "
              f"{tcp_outcomes['differ']} different, {tcp_outcomes['fallback']} run by the reference engine instead, "
              f"{tcp_outcomes['reference-error']} refused by the reference engine")
    if capture_outcomes:
        print(f"  of which {sum(capture_outcomes.values())} captures: {capture_outcomes['same']} identical, "
              f"{capture_outcomes['differ']} different, {capture_outcomes['fallback']} run by the reference engine "
              f"instead, {capture_outcomes['reference-error']} refused by the reference engine")
    if plot_outcomes:
        print(f"  of which {sum(plot_outcomes.values())} TCP runs of synthetic senders with --plot: "
              f"{plot_outcomes['same']} identical, {plot_outcomes['differ']} different, {plot_outcomes['fallback']} "
              f"run by the reference engine instead, {plot_outcomes['reference-error']} refused by the reference engine")
    for reason, n in reasons.most_common():
        print(f"  {n:5d}  {reason}")
    return 1 if outcomes["differ"] or outcomes["fast-error"] else 0


if __name__ == "__main__":
    sys.exit(main())
