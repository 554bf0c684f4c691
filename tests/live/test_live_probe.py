"""The TAP/netns injector and the measurement driver.

Frame building and iovec layout are checked everywhere; the rest is marked
``live`` and needs root, /dev/net/tun, tracefs and iproute2.
"""

from __future__ import annotations

import os
import platform
import signal
import struct
import subprocess
import time

import pytest

from skbsim.errors import InputError
from skbsim.live.probe import (
    ROUTES,
    _frags_segments,
    measure,
    requirements_missing,
    udp_loopback_meminfo,
    udp_tap_meminfo,
)
from skbsim.live.tap import (
    Netns,
    Tap,
    TAP_PREFIX,
    ethernet_frame,
    ipv4_udp_frame,
    our_namespaces,
    tap_in_new_netns,
)
from skbsim.live.tracefs import our_instances

# ---------------------------------------------------------------- always run


def test_ethernet_frame_layout():
    frame = ethernet_frame(60, dst=b"\x01" * 6, src=b"\x02" * 6, ethertype=0x88B5)
    assert len(frame) == 60
    assert frame[:12] == b"\x01" * 6 + b"\x02" * 6
    assert frame[12:14] == b"\x88\xb5"
    assert frame[14:17] == b"\x00\x01\x02"   # filler counts up from 0
    assert len(ethernet_frame(14)) == 14
    assert ethernet_frame(300)[14 + 256] == 0  # and wraps after 255


def test_ethernet_frame_rejects_bad_input():
    with pytest.raises(InputError, match="shorter than the Ethernet header"):
        ethernet_frame(13)
    with pytest.raises(InputError, match="MAC addresses must be 6 bytes"):
        ethernet_frame(60, dst=b"\x00")


def test_ipv4_udp_frame_checksum_and_lengths():
    # The classic worked example of the IPv4 header checksum: total length
    # 0x73, DF, TTL 64, UDP, 192.168.0.1 -> 192.168.0.199 sums to 0xb861.
    frame = ipv4_udp_frame(14 + 0x73, b"\xaa" * 6, b"\xbb" * 6, "192.168.0.1", "192.168.0.199", 1, 2)
    header = frame[14:34]
    assert header == bytes.fromhex("45000073" "00004000" "4011b861" "c0a80001" "c0a800c7")
    assert struct.unpack("!HHHH", frame[34:42]) == (1, 2, 0x73 - 20, 0)
    assert len(frame) == 14 + 0x73
    with pytest.raises(InputError, match="outside 42"):
        ipv4_udp_frame(41, b"\xaa" * 6, b"\xbb" * 6, "10.0.0.1", "10.0.0.2", 1, 2)


def test_frags_segments_layout():
    frame = bytes(10000)
    # head 64, then 9936 bytes cut at PAGE_SIZE: 4096 + 4096 + 1744.
    assert [len(s) for s in _frags_segments(frame, 64)] == [64, 4096, 4096, 1744]
    assert [len(s) for s in _frags_segments(bytes(50), 64)] == [50]


def test_measure_rejects_bad_arguments():
    with pytest.raises(InputError, match="unknown route 'warp'"):
        measure("warp", [60])
    with pytest.raises(InputError, match="below the Ethernet header size"):
        measure("blocking", [10])
    with pytest.raises(InputError, match="on_reject"):
        measure("blocking", [60], on_reject="ignore")


def test_tap_refuses_frags_without_napi():
    with pytest.raises(InputError, match="IFF_NAPI_FRAGS needs IFF_NAPI"):
        Tap(Netns(), napi_frags=True)


def test_requirements_missing_is_a_list_of_reasons():
    missing = requirements_missing()
    assert isinstance(missing, list) and all(isinstance(m, str) and m for m in missing)


# ---------------------------------------------------------------- live

MISSING = requirements_missing()
live = pytest.mark.skipif(bool(MISSING), reason="live probe needs: " + "; ".join(MISSING))


def _our_taps_in_init_namespace() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if f"{TAP_PREFIX}{os.getpid()}-" in line]


def _assert_nothing_left() -> None:
    assert our_namespaces(pid=os.getpid()) == []
    assert our_instances(pid=os.getpid()) == []
    assert _our_taps_in_init_namespace() == []


LENGTHS = [60, 1514, 5000]


@pytest.mark.live
@live
@pytest.mark.parametrize("route", list(ROUTES))
def test_each_route_delivers_one_record_per_frame(route):
    rows = measure(route, LENGTHS)
    assert [r["len_in"] for r in rows] == LENGTHS
    for row in rows:
        assert row["event"] == ROUTES[route].event.split("/")[1]
        # eth_type_trans() has pulled the 14-byte Ethernet header by the time
        # any of these tracepoints fire.
        assert row["len"] == row["len_in"] - 14
        assert row["truesize"] >= row["len_in"]
        assert row["error"] is None
    _assert_nothing_left()


# Hand derivation for the x86_64 6.18 host (L1 64 B, sizeof(sk_buff) 224 ->
# 256 aligned, sizeof(skb_shared_info) 320, NET_SKB_PAD 64, NET_IP_ALIGN 0,
# no tunnels/WLAN so MAX_HEADER = LL_MAX_HEADER = 32; skbuff_small_head
# objects are SKB_HEAD_ALIGN(max(MAX_TCP_HEADER 192, GRO_MAX_HEAD_PAD
# 160+64 = 224)) = 256 + 320 = 576 B, and a head goes there when
# SKB_DATA_ALIGN(size) + 320 <= 576; bigger heads are kmalloc 1k/2k/4k/8k):
#  blocking/napi, tun->align = NET_SKB_PAD = 64 of headroom:
#   60:   64+60=124 -> 128+320=448 <= 576: small head; 576+256          = 832
#   1514: 64+1514 -> 1600+320=1920 -> kmalloc-2048; 2048+256           = 2304
#   5000: 64+5000 >= PAGE_SIZE, so linear = SKB_MAX_HEAD(64) = 3712, head
#         3776+320 = 4096 -> kmalloc-4096 (4352); data_len 1288 -> one
#         order-0 page: 4352+4096                                      = 8448
#  nonblocking (build_skb, buflen = SKB_DATA_ALIGN(L+64) + 320):
#   60:   128+256+320 = 704;  1514: 1600+576 = 2176;  5000: as blocking.
#  napi_frags, head segment 64 in napi_get_frags()'s small-head skb (832),
#  each further byte adds exactly 1 to truesize:
#   60: 832;  1514: 832+1450 = 2282 (1 frag);  5000: 832+4936 = 5768 (2 frags)
HOST_618 = {
    "blocking": [(832, 0, 0), (2304, 0, 0), (8448, 1288, 1)],
    "napi": [(832, 0, 0), (2304, 0, 0), (8448, 1288, 1)],
    "nonblocking": [(704, 0, 0), (2176, 0, 0), (8448, 1288, 1)],
    "napi_nonblocking": [(704, 0, 0), (2176, 0, 0), (8448, 1288, 1)],
    "napi_frags": [(832, 0, 0), (2282, 1450, 1), (5768, 4936, 2)],
}
ON_618_X86 = os.uname().release.startswith("6.18.") and platform.machine() == "x86_64"


@pytest.mark.live
@live
@pytest.mark.skipif(not ON_618_X86, reason="hand-derived figures are for the x86_64 6.18 host")
@pytest.mark.parametrize("route", list(ROUTES))
def test_host_618_figures(route):
    rows = measure(route, LENGTHS)
    assert [(r["truesize"], r["data_len"], r["nr_frags"]) for r in rows] == HOST_618[route]


@pytest.mark.live
@live
def test_oversized_frags_frame_is_refused_and_recorded():
    # tun_napi_alloc_frags() refuses len > ETH_MAX_MTU - NET_SKB_PAD - NET_IP_ALIGN = 65471.
    rows = measure("napi_frags", [65471, 65472], on_reject="record")
    assert rows[0]["error"] is None and rows[1]["error"] == "EMSGSIZE"
    with pytest.raises(InputError, match="EMSGSIZE"):
        measure("napi_frags", [65472])
    _assert_nothing_left()


@pytest.mark.live
@live
def test_udp_over_tap_charges_truesize_to_the_socket():
    rows = udp_tap_meminfo([100, 1514, 5000])
    for row in rows:
        # One datagram queued: sk_rmem_alloc is exactly that skb's truesize.
        assert row["queued"]["rmem_alloc"] == row["truesize"]
        assert row["drained"]["rmem_alloc"] == 0
        assert row["queued"]["drops"] == 0
    _assert_nothing_left()


@pytest.mark.live
@live
def test_udp_loopback_meminfo():
    result = udp_loopback_meminfo([0, 1000])
    assert result["rcvbuf"] == result["rmem_default"]
    for row in result["rows"]:
        assert row["queued"]["rmem_alloc"] > row["payload"]
        assert row["drained"]["rmem_alloc"] == 0
    _assert_nothing_left()


@pytest.mark.live
@live
def test_tap_and_namespace_exist_inside_only():
    with tap_in_new_netns(mtu=9000) as tap:
        assert tap.netns.name in our_namespaces(pid=os.getpid())
        assert tap.name in tap.netns.ip("-o", "link", "show")
        assert "mtu 9000" in tap.netns.ip("-o", "link", "show", "dev", tap.name)
        assert _our_taps_in_init_namespace() == []
        assert len(tap.mac) == 6
        assert tap.sndbuf == 2**31 - 1   # tun_chr_open leaves sk_sndbuf at INT_MAX
    _assert_nothing_left()


@pytest.mark.live
@live
def test_cleanup_on_exception():
    with pytest.raises(RuntimeError, match="boom"):
        with tap_in_new_netns():
            raise RuntimeError("boom")
    _assert_nothing_left()


@pytest.mark.live
@live
def test_cleanup_on_sigint():
    # A shell starts background jobs with SIGINT ignored, and Python then keeps it ignored:
    # install the interpreter's own handler so the test means the same under any runner.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with tap_in_new_netns():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)  # the handler raises at the next bytecode
                pytest.fail("SIGINT did not interrupt")
    finally:
        signal.signal(signal.SIGINT, previous)
    _assert_nothing_left()


@pytest.mark.live
@live
@pytest.mark.skipif(signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL,
                    reason="someone else handles SIGTERM in this process")
def test_cleanup_on_sigterm():
    with pytest.raises(KeyboardInterrupt):
        with tap_in_new_netns():
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
            pytest.fail("SIGTERM did not interrupt")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    _assert_nothing_left()
