"""skbsim run: conservation, hand-derived totals, socket drops, determinism, bad input."""

import json

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.cli import main
from skbsim.mm.fault import LAYERS
from skbsim.sim import RunConfig, simulate

ETH = bytes.fromhex("020000000001020000000002") + b"\x88\xb5"  # local experimental EtherType


def _pcap(path, lengths):
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f)
        for i, n in enumerate(lengths):
            writer.writepkt(ETH + bytes(n - 14), ts=i * 0.001)
    return str(path)


def test_small_pcap_totals(tmp_path):
    # ice legacy-rx on 6.9, MTU 1500, ring of 64 descriptors:
    #   every frame gets a header skb from __napi_alloc_skb(ICE_RX_HDR_SIZE 256): 256 + 64 = 320 <= 704,
    #   a 1K fragment, truesize SKB_TRUESIZE(1024 - 320) = 704 + 576 = 1280.
    #   ice_construct_skb copies the whole frame when it is at most ICE_RX_HDR_SIZE (256), so 60 B -> 1280.
    #   Longer frames copy eth_get_headlen() bytes (14 for an unknown EtherType) and attach the rest as a
    #   frag of the half-page buffer, truesize += ice_rx_frame_truesize = 4096 / 2 = 2048 -> 3328 each.
    #   Total 1280 + 3328 + 3328 = 7936.
    # Pages: the ring posts 64 - 1 = 63 buffers, one order-0 page each; the 1K cache takes one page
    # (3 pieces used); skbuff_head_cache takes one order-0 slab (16 objects of 256 bytes, from the
    # NAPI cache's bulk refill).  63 + 1 + 1 = 65, all returned at the end.
    path = _pcap(tmp_path / "small.pcap", [60, 590, 1514])
    result, _ = simulate(RunConfig(traffic=f"pcap:{path}", count=None, rate=None,
                                   options={"rx": "legacy", "ring": "64"}))
    assert result["packets"] == 3 and result["delivered"] == 3
    assert result["truesize_total"] == 7936
    assert result["paths"] == {"page_frag_1k": 3}
    assert result["pages"]["allocated_by_order"] == {"0": 65}
    assert result["pages"]["freed_by_order"] == {"0": 65}
    assert result["leaks"]["clean"]


@pytest.mark.parametrize(
    "kernel,admitted",
    [
        # ice legacy 1514 B on 6.9: 1280 (1K header piece) + 2048 (half page) = 3328 per skb.  The reader
        # (1 read/s) takes one skb after the first poll but does not give its charge back (the deficit
        # 3328 is below rcvbuf/4 = 5000 and the reader queue is not empty), so admission sees all of them:
        # 6.9 admits while sk_rmem_alloc <= 20000 before the charge: 0, 3328, ..., 19968 -> 7 skbs.
        ("6.9", 7),
        # 6.18: header skb from skbuff_small_head (704 B) -> 960, + 2048 = 3008; strict fit admits while
        # rmem + 3008 <= 20000: 6 * 3008 = 18048, a 7th would make 21056 -> 6 skbs.
        ("6.18", 6),
    ],
)
def test_socket_drops_where_the_admission_rule_says(kernel, admitted):
    result, _ = simulate(RunConfig(kernel=kernel, traffic="fixed:1514", count=100, rcvbuf=20000, app_rate=1.0))
    assert result["delivered"] == admitted
    assert result["dropped"]["socket_rcvbuf"] == 100 - admitted
    assert result["leaks"]["clean"]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(["6.1", "6.9", "6.12", "6.18"]),
    driver=st.sampled_from(["ice", "copybreak", "tun"]),
    count=st.integers(0, 300),
    cpus=st.integers(1, 3),
    rate=st.sampled_from([1e4, 1e6, 1e7]),
    rcvbuf=st.sampled_from([2304, 20000, 212992]),
    app_rate=st.sampled_from([None, 1000.0, 1e6]),
    traffic=st.sampled_from(["imix", "uniform:14-9000", "fixed:60"]),
    seed=st.integers(0, 3),
    # --fault rules, often none: (layer, probability, interval, times, space), a layer at most once
    faults=st.one_of(st.just(()), st.lists(
        st.tuples(st.sampled_from(LAYERS), st.sampled_from([0.01, 0.1, 0.5, 1.0]), st.integers(1, 5),
                  st.sampled_from([-1, 1, 10]), st.integers(0, 50)),
        min_size=1, max_size=3, unique_by=lambda spec: spec[0]).map(tuple)),
)
def test_conservation_and_no_leaks(kernel, driver, count, cpus, rate, rcvbuf, app_rate, traffic, seed, faults):
    # With faults too: a run whose allocations keep failing still ends, and every frame is accounted for.
    options = {"mtu": "9000"} if driver == "ice" else {}
    config = RunConfig(kernel=kernel, driver=driver, options=options, traffic=traffic, count=count, cpus=cpus,
                       rate=rate, rcvbuf=rcvbuf, app_rate=app_rate, seed=seed, faults=faults)
    result, _ = simulate(config)
    assert result["packets"] == count
    assert result["packets"] == result["delivered"] + result["dropped_total"]
    assert result["leaks"]["clean"], result["leaks"]
    # The reader drains the socket before the run ends, so no queued skb pins a page.
    assert result["socket"]["queued_at_end"] == 0
    assert result["pages"]["pinned_at_end"] == 0


def test_oversize_frames_are_not_ring_drops():
    # ice build_skb at MTU 1500 accepts frames up to rxmax 1536 (its buffer): 3000-byte frames are
    # dropped by the NIC as oversize, never for want of descriptors.
    result, _ = simulate(RunConfig(traffic="fixed:3000", count=100, options={"rx": "build_skb"}))
    assert result["dropped"]["oversize"] == 100 and result["dropped"]["ring_full"] == 0
    assert result["packets"] == result["delivered"] + result["dropped_total"]


def test_refused_tun_writes_count_once():
    # A non-blocking tun write with sndbuf 3000 is refused (-EAGAIN) while earlier skbs still hold the
    # socket's wmem: the driver counts it in frames_dropped and the simulator must not count it again.
    result, _ = simulate(RunConfig(driver="tun", options={"write": "nonblock", "sndbuf": "3000"},
                                   traffic="fixed:1514", count=200, rate=None))
    assert result["dropped"]["ring_full"] == 0 and result["dropped"]["driver"] > 0
    assert result["packets"] == result["delivered"] + result["dropped_total"]
    assert result["leaks"]["clean"]


def test_small_ice_ring_under_overload():
    # A 64-descriptor ring at 20 Mpps: the clean loop catches up with next_to_use again and again.
    # ice_alloc_rx_bufs() must clear the status of the descriptor after the last one it posts, or
    # the loop reads a stale write-back there (this workload used to crash the model).
    result, _ = simulate(RunConfig(options={"rx": "build_skb", "ring": "64"}, rate=2e7,
                                   traffic="uniform:60-1600", count=20000))
    assert result["dropped"]["ring_full"] > 0
    # uniform:60-1600 with rxmax 1536 (MTU 1500 build_skb): frames of 1537..1600 are oversize.
    assert result["dropped"]["oversize"] > 0
    assert result["packets"] == result["delivered"] + result["dropped_total"]
    assert result["leaks"]["clean"]


def test_frame_longer_than_the_whole_copybreak_ring_is_dropped():
    # 9000-byte frames in 1024-byte buffers need ceil(9000 / 1024) = 9 descriptors; a ring of 8 can never
    # hold one, so the NIC drops every such frame (it used to wrap around onto its own first descriptor).
    result, _ = simulate(RunConfig(driver="copybreak", options={"ring": "8", "rx_buf": "1024"},
                                   traffic="fixed:9000", count=50))
    assert result["dropped"]["ring_full"] == 50 and result["delivered"] == 0
    assert result["leaks"]["clean"]


def test_same_seed_same_json():
    config = dict(traffic="uniform:60-1514", count=2000, cpus=2, rate=2e6, arrival="poisson", seed=5,
                  rcvbuf=50000, app_rate=5e5)
    first, _ = simulate(RunConfig(**config))
    second, _ = simulate(RunConfig(**config))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    other, _ = simulate(RunConfig(**{**config, "seed": 6}))
    assert json.dumps(other, sort_keys=True) != json.dumps(first, sort_keys=True)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--traffic", "pcap:/nonexistent/x.pcap"], "/nonexistent/x.pcap"),
        (["--cpus", "0"], "--cpus must be 1..128"),
        (["--rate", "-5"], "--rate must be a positive finite number"),
        (["--app-rate", "fast"], "--app-rate 'fast' is not a number"),
        (["--driver", "e1000"], "unknown driver"),
        (["--kernel", "5.4"], "unknown kernel"),
        (["--opt", "mtu"], "is not KEY=VALUE"),
        (["--trace", "out.txt"], "must end in .jsonl or .csv"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert main(["run", "--quiet", "--count", "10", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_corrupt_pcap_names_the_offset(tmp_path, capsys):
    path = tmp_path / "bad.pcap"
    good = _pcap(tmp_path / "good.pcap", [60, 60])
    path.write_bytes(open(good, "rb").read()[:-10])  # cut the last record short
    assert main(["run", "--quiet", "--traffic", f"pcap:{path}"]) == 2
    err = capsys.readouterr().err
    assert "offset" in err and err.count("\n") == 1


def test_trace_and_plots(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    assert main(["run", "--quiet", "--count", "50", "--trace", str(trace), "--plot", str(tmp_path / "plots"),
                 "--json"]) == 0
    lines = trace.read_text().splitlines()
    assert len(lines) == 50
    record = json.loads(lines[0])
    assert set(record) >= {"time_ns", "cpu", "truesize", "path", "outcome"}
    assert (tmp_path / "plots" / "truesize.png").stat().st_size > 0
    assert (tmp_path / "plots" / "memory.png").stat().st_size > 0
    (result,) = json.loads(capsys.readouterr().out)["runs"]
    for key in ("packets", "bytes", "delivered", "dropped", "truesize_total", "paths", "head_sources", "pages",
                "napi_skb_cache", "page_frag", "socket", "leaks"):
        assert key in result


def test_side_by_side_runs(capsys):
    assert main(["run", "--quiet", "--count", "200", "--kernel", "6.1", "--kernel", "6.18",
                 "--opt", "rx=build_skb", "--opt", "rx=legacy", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["kernel"], r["options"]["rx"]) for r in results] == [
        ("6.1", "build_skb"), ("6.1", "legacy"), ("6.18", "build_skb"), ("6.18", "legacy")]
