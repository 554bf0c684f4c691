"""``skbsim validate --driver virtio_net`` without the live NIC: parsing, the hypotheses' arithmetic,
synchronisation on traces of known truth, and the captures from this machine kept as fixtures."""

import gzip
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skbsim.cli import main
from skbsim.drivers import virtio_net as vn
from skbsim.kernel import Kernel
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.skbuff import kfree_skb
from skbsim.profile import load_profile
from skbsim import validate_virtio as vv

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LIVE_CAPTURE = FIXTURES / "virtio_net_eth0_pip_7_wheels.trace.gz"
#: The device the capture came from (this machine's eth0, a Firecracker virtio-net).
ETH0 = {"mrg_rxbuf": "1", "guest_gso": "1", "mtu": "none", "ring": "256", "dma_api": "0", "indirect": "0"}

GRO_LINE = ("{task}-1 [001] ..s.. {t:.6f}: napi_gro_receive_entry: dev=eth0 napi_id=0x101 queue_mapping=1 "
            "skbaddr=00000000{addr:08x} vlan_tagged=0 vlan_proto=0x0000 vlan_tci=0x0000 protocol=0x{proto:04x} "
            "ip_summed={ip_summed} hash=0x00000000 l4_hash=0 len={len} data_len={data_len} truesize={truesize} "
            "mac_header_valid=1 mac_header=-14 nr_frags={nr_frags} gso_size={gso_size} gso_type={gso_type:#x}")
UP_LINE = "{task}-1 [001] ..s.. {t:.6f}: netif_receive_skb: dev=eth0 skbaddr=00000000{addr:08x} len={len}"
POLL_LINE = ("{task}-1 [001] ..s.. {t:.6f}: napi_poll: napi poll on napi struct {napi} for device eth0 "
             "work {work} budget 64")
RX_NAPI = "000000004ab33b53"
TX_NAPI = "00000000d6aa8985"


def test_parse_capture_groups_frames_by_rx_poll():
    lines = [
        "# skbsim virtio_net capture: iface=eth0 mergeable_rx_buffer_size=4096,1536 ring=256 mrg_rxbuf=1",
        "# tracer: nop",
        GRO_LINE.format(task="a", t=1.0, addr=1, proto=0x0806, ip_summed=0, len=28, data_len=0, truesize=832,
                        nr_frags=0, gso_size=0, gso_type=0),
        POLL_LINE.format(task="a", t=1.1, napi=TX_NAPI, work=0),
        POLL_LINE.format(task="a", t=1.2, napi=RX_NAPI, work=1),
        GRO_LINE.format(task="a", t=2.0, addr=2, proto=0x0800, ip_summed=3, len=64756, data_len=64716,
                        truesize=66336, nr_frags=3, gso_size=1348, gso_type=3),
        GRO_LINE.format(task="a", t=2.1, addr=3, proto=0x0800, ip_summed=3, len=40, data_len=0, truesize=832,
                        nr_frags=0, gso_size=0, gso_type=0),
        "a-1 [001] ..s.. 2.2: netif_receive_skb: dev=eth0 skbaddr=0000000000000002 len=64756",
        POLL_LINE.format(task="a", t=2.3, napi=RX_NAPI, work=2),
        GRO_LINE.format(task="a", t=3.0, addr=4, proto=0x0800, ip_summed=3, len=40, data_len=0, truesize=832,
                        nr_frags=0, gso_size=0, gso_type=0),
    ]
    capture = vv.parse_capture("\n".join(lines))
    assert [len(p.frames) for p in capture.polls] == [1, 2]
    assert capture.trailing == 1 and capture.polls_traced and capture.work_mismatches == 0
    assert capture.meta["mergeable_rx_buffer_size"] == "4096,1536" and capture.meta["ring"] == "256"
    assert capture.stack[0]["len"] == 64756
    gso = capture.polls[1].frames[0]
    assert gso.frame_len == 64770
    hdr, header = vv.header_for(gso)
    # CHECKSUM_PARTIAL -> NEEDS_CSUM at the TCP header after 14 + 20 bytes, check field at 16;
    # gso_type TCPV4 | DODGY -> VIRTIO_NET_HDR_GSO_TCPV4.
    assert (hdr.flags, hdr.csum_start, hdr.csum_offset, hdr.gso_type, hdr.gso_size) == (1, 34, 16, 1, 1348)
    assert header[12:14] == b"\x08\x00" and header[14] == 0x45 and header[23] == 6
    arp, _ = vv.header_for(capture.polls[0].frames[0])
    assert (arp.flags, arp.gso_type) == (0, 0)


def test_parse_capture_refuses_two_queues():
    lines = [GRO_LINE.format(task="a", t=1.0, addr=1, proto=0x0800, ip_summed=3, len=40, data_len=0,
                             truesize=832, nr_frags=0, gso_size=0, gso_type=0),
             GRO_LINE.format(task="a", t=1.0, addr=1, proto=0x0800, ip_summed=3, len=40, data_len=0,
                             truesize=832, nr_frags=0, gso_size=0, gso_type=0).replace("0x101", "0x102")]
    with pytest.raises(vv.InputError, match="RX queues"):
        vv.parse_capture("\n".join(lines))


def test_ewma_range_inverts_the_buffer_size():
    c = vv.LayoutConstants(load_profile("6.18"), {})
    # ALIGN(12 + clamp(e, 1518, 4084), 64): 1536 up to e = 1524; 2496 for e in 2421..2484
    # (12 + 2421 = 2433 > 2432); 4096 from 4021 on.
    assert c.ewma_range(1536) == (1, 1524)
    assert c.ewma_range(2496) == (2421, 2484)
    assert c.ewma_range(4096) == (4021, vv.EWMA_MAX)
    assert c.sizes[0] == 1536 and c.sizes[-1] == 4096 and len(c.sizes) == 41


def _layout(sizes_and_breaks, dma):
    """Buffers one after another; a True break puts the next one at the start of a new block."""
    block, offset, out = 0, (16 if dma else 0), []
    for size, new_block in sizes_and_breaks:
        if new_block or offset + size > 32768:
            block += 1
            offset = 16 if dma else 0
        out.append((block, offset, size))
        offset += size
    return out


@settings(max_examples=60, deadline=None)
@given(release=st.sampled_from(["6.1", "6.18"]),
       buffers=st.lists(st.tuples(st.sampled_from([1536, 1600, 2496, 4096, 8176]), st.booleans()),
                        min_size=1, max_size=30),
       frame=st.integers(min_value=14, max_value=65535), copy_all=st.booleans())
def test_skb_shape_is_what_the_driver_builds(release, buffers, frame, copy_all):
    # The hypotheses' arithmetic (skb_shape) against the model's page_to_skb and virtnet_skb_append_frag.
    profile = load_profile(release)
    c = vv.LayoutConstants(profile, {})
    layout = _layout(buffers, c.premapped)
    capacity = sum(size for _, _, size in layout)
    frame = min(frame, capacity - c.hdr_len)
    if copy_all:
        frame = min(frame, 100)
    if frame < 14:
        return
    total = frame + c.hdr_len
    used, room = [], 0
    for buf in layout:
        used.append(buf)
        room += buf[2]
        if room >= total:
            break
    kernel = Kernel(profile)
    dev = net_device("eth0")
    napi = napi_struct(dev)
    rq = vn.virtnet_open_queue(kernel, dev, napi, {})
    vn.virtnet_rq_load_mergeable(kernel, rq, layout, (layout[-1][0], layout[-1][1] + layout[-1][2]), 1000)
    hdr = vn.virtio_net_hdr(flags=vn.VIRTIO_NET_HDR_F_DATA_VALID)
    assert vn.virtnet_device_rx(kernel, rq, frame, hdr, b"\x02" * 12 + b"\x08\x00")
    skbs = []
    vn.virtnet_poll(kernel, rq, 64, skbs.append)
    assert (skbs[0].truesize, skbs[0].nr_frags) == vv.skb_shape(c, total, used)
    with kernel.softirq(0):
        kfree_skb(kernel, skbs[0])
    vn.virtnet_close_queue(kernel, rq)
    kernel.assert_no_leaks()


def make_trace(release, seed, polls=260, warmup=40):
    """A trace of known truth: the model itself receives bulk TCP traffic with some small frames; the
    trace starts after ``warmup`` polls, so the ring it starts from is whatever the traffic left."""
    rng = random.Random(seed)
    profile = load_profile(release)
    kernel = Kernel(profile)
    dev = net_device("eth0")
    napi = napi_struct(dev)
    rq = vn.virtnet_open_queue(kernel, dev, napi, {})
    lines = ["# tracer: nop"]
    t = 100.0
    entered = []
    addresses = {}

    def gro_entry(skb):
        # The skb at napi_gro_receive_entry; its address is what GRO hands up if it goes up as a head.
        addresses[id(skb)] = (skb, len(addresses) + 1)
        entered.append((skb, addresses[id(skb)][1]))

    rq.gro_entry = gro_entry
    for index in range(warmup + polls):
        frames = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            if rng.random() < 0.25:
                length = rng.choice((54, 66, 74, 90, 150, 700, 1414))
                obs = vv.Observation(0, length - 14, 0, 0, 0, 0x0800, 3, 0, 0, "0x101", 0)
            else:
                length = rng.choice((64770, 64770, 64770, 32418, 8154, 50050, 2352, 17282))
                obs = vv.Observation(0, length - 14, 0, 0, 0, 0x0800, 3, 1348, 3, "0x101", 0)
            hdr, header = vv.header_for(obs)
            if vn.virtnet_device_rx(kernel, rq, length, hdr, header):
                frames.append(obs)
        skbs = []
        entered.clear()
        work = vn.DRIVER.poll(kernel, rq, 64, skbs.append)
        shapes = [(skb.len, skb.data_len, skb.truesize, skb.nr_frags, skb.shinfo.gso_size, addr)
                  for skb, addr in entered]
        for obs, (length, data_len, truesize, nr_frags, gso_size, addr) in zip(frames, shapes):
            t += 0.00001
            if index >= warmup:
                lines.append(GRO_LINE.format(task="p", t=t, addr=addr, proto=0x0800, ip_summed=3, len=length,
                                             data_len=data_len, truesize=truesize, nr_frags=nr_frags,
                                             gso_size=obs.gso_size if gso_size else 0,
                                             gso_type=obs.gso_type if gso_size else 0))
        for skb in skbs:
            t += 0.00001
            if index >= warmup:
                lines.append(UP_LINE.format(task="p", t=t, addr=addresses[id(skb)][1], len=skb.len))
        with kernel.softirq(0):
            for skb in skbs:
                kfree_skb(kernel, skb)
        t += 0.0001
        if index >= warmup:
            lines.append(POLL_LINE.format(task="p", t=t, napi=RX_NAPI, work=work))
            lines.append(POLL_LINE.format(task="p", t=t, napi=TX_NAPI, work=0))
    vn.virtnet_close_queue(kernel, rq)
    kernel.assert_no_leaks()
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("release,seed", [("6.18", 1), ("6.18", 2), ("6.1", 3), ("6.12", 4), ("6.9", 5)])
def test_synchronises_on_a_trace_of_known_truth(release, seed):
    capture = vv.parse_capture(make_trace(release, seed))
    result = vv.validate_capture(capture, load_profile(release), {})
    assert result["disagreements"] == [] and result["model_leaks"] == []
    assert result["after_gro"]["compared"] and result["after_gro"]["agreements"] == result["skbs_predicted"]
    # It must take over early: a ring's worth of buffers (256, some 16 GSO frames) plus a few polls.
    assert result["skbs_predicted"] > 0.7 * result["frames_traced"]
    assert result["ok"]


def test_a_wrong_truesize_is_a_disagreement(tmp_path):
    text = make_trace("6.18", 1)
    lines = text.splitlines()
    last = max(i for i, line in enumerate(lines) if "napi_gro_receive_entry" in line)
    lines[last] = lines[last].replace("truesize=", "truesize=1")
    path = tmp_path / "wrong.trace"
    path.write_text("\n".join(lines))
    result = vv.validate_trace_file(str(path), "6.18", {})
    assert not result["ok"]
    assert [(d["field"], str(d["live"])[0]) for d in result["disagreements"]] == [("truesize", "1")]


def test_an_skb_gro_did_not_hand_up_is_a_disagreement(tmp_path):
    # Take away what GRO handed up for the last skb: the trace then says it went up inside another.
    lines = make_trace("6.18", 2).splitlines()
    last = max(i for i, line in enumerate(lines) if "netif_receive_skb:" in line)
    length = int(lines[last].rsplit("len=", 1)[1])
    del lines[last]
    capture = vv.parse_capture("\n".join(lines))
    result = vv.validate_capture(capture, load_profile("6.18"), {})
    assert [(d["field"], d["live"], d["model"]) for d in result["disagreements"]] == [
        ("after_gro_len", None, length)]


def test_the_live_capture_agrees():
    # Captured on this machine's eth0 (6.18.44, Firecracker virtio-net: MRG_RXBUF, guest TSO, ring 256)
    # with skbsim validate --driver virtio_net --save-trace during a pip download of seven wheels (numpy, scipy, pandas, matplotlib, pillow, scikit-learn, pyarrow).
    result = vv.validate_trace_file(str(LIVE_CAPTURE), _capture_kernel(), {})
    assert result["options"] == ETH0
    assert result["ok"] and result["disagreements"] == []
    assert result["skbs_predicted"] == result["skbs_agreeing"] >= 3000


def _capture_kernel():
    """The profile the capture was taken under: the 6.18 rules with this host's inputs
    (sizeof(struct sk_buff) 224, LL_MAX_HEADER 32, no tunnels: the small head is 576 bytes)."""
    return load_profile("6.18").derive(origin="the capture's host", constants={"LL_MAX_HEADER": 32, "MAX_HEADER": 32,
                                                                            "sizeof_sk_buff": 224})


def test_cli_trace_file(tmp_path, capsys):
    profile_path = tmp_path / "host.toml"
    profile_path.write_text(_capture_kernel().to_toml())
    assert main(["validate", "--driver", "virtio_net", "--trace-file", str(LIVE_CAPTURE), "--kernel",
                 str(profile_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["field_agreement"]["truesize"] == result["skbs_predicted"]
    assert main(["validate", "--driver", "virtio_net", "--trace-file", str(tmp_path / "missing")]) == 2
    assert "missing: no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.trace"
    empty.write_text("# tracer: nop\n")
    assert main(["validate", "--driver", "virtio_net", "--trace-file", str(empty)]) == 2
    assert "no napi_gro_receive_entry events" in capsys.readouterr().err


def test_cli_live_needs_root(monkeypatch, capsys):
    monkeypatch.setattr(vv, "requirements", lambda: ["root (uid 0)"])
    assert main(["validate", "--driver", "virtio_net", "--seconds", "1"]) == 2
    assert "root (uid 0)" in capsys.readouterr().err


def test_fixture_is_gzip_text():
    with gzip.open(LIVE_CAPTURE, "rt") as handle:
        first = handle.readline()
    assert first.startswith(vv.CAPTURE_HEADER)
