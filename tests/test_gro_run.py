"""GRO in whole runs: tcp-bulk traffic, TCP captures, tun, the JSON keys and the engines' division of work."""

import json

import dpkt
import pytest

from gro_helpers import segments, tcp_frame
from skbsim.cli import main
from skbsim.errors import InputError
from skbsim.fast.engine import simulate_engine, unsupported
from skbsim.sim import RunConfig, simulate
from skbsim.traffic import parse_traffic
from skbsim.traffic.capture import capture_has_tcp


def _run(**kw):
    kw.setdefault("count", 2000)
    result, _ = simulate(RunConfig(**kw))
    assert result["leaks"]["clean"]
    return result


def _write_pcap(path, frames, full=1514):
    """Frames as a pcap: their header bytes, zero-padded to the frame length."""
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f)
        for i, frame in enumerate(frames):
            writer.writepkt(frame.header + bytes(frame.length - len(frame.header)), ts=i * 1e-6)
    return path


def test_tcp_bulk_merges_on_ice_and_reports_gro():
    # One flow at 10M frames/s: the 2 us interrupt latency gathers 20 segments per poll on the ring,
    # so GRO makes 20-segment aggregates (the budget of 64 is never reached).
    result = _run(kernel="6.18", options={"rx": "build_skb"}, traffic="tcp-bulk", flows=1, rate=10e6)
    gro = result["gro"]
    assert gro["skbs_in"] == 2000 and gro["tcp_segments"] == 2000
    assert gro["skbs_out"] == result["delivered"] + result["dropped"]["socket_rcvbuf"]
    assert gro["segments_per_skb"] > 10
    # a merge on ice build_skb steals the head (one sk_buff to the NAPI cache) while the last skb of the
    # aggregate has room for another frag (17), else the segment is chained on the frag_list
    merged = gro["merged"]
    assert merged["stolen_head"] == gro["napi_cache_puts"] > 0 and merged["frags"] == 0
    assert merged["stolen_head"] + merged["frag_list"] == gro["skbs_in"] - gro["skbs_out"]
    assert set(gro["flushes"]) <= {"napi_complete", "budget", "gro_max_size", "tcp_options"}


def test_gro_off_and_udp_have_no_gro_key():
    assert "gro" not in _run(kernel="6.9", traffic="tcp-bulk", options={"rx": "legacy", "gro": "0"})
    assert "gro" not in _run(kernel="6.9", traffic="imix")


def test_tun_with_iff_napi_never_merges_without_a_flush_timeout():
    # Each write runs its own NAPI poll and napi_complete_done(): every segment goes up alone.
    for options in ({"napi": "1"}, {"napi": "1", "frags": "1"}):
        gro = _run(kernel="6.18", driver="tun", options=options, traffic="tcp-bulk", flows=1, rate=10e6)["gro"]
        assert gro["skbs_in"] == gro["skbs_out"] == 2000 and gro["aggregates"] == 0
        assert gro["flushes"] == {"napi_complete": 2000}
    assert "gro" not in _run(kernel="6.18", driver="tun", options={}, traffic="tcp-bulk")  # netif_receive_skb()


def test_the_fast_engine_runs_tcp_bulk_through_gro_on_ice_only():
    # ice's tcp-bulk runs are the fast engine's (skbsim/fast/gro.py; tests/test_fast_gro.py compares them);
    # so are copybreak's, virtio_net's, mana's and libeth's; other drivers' TCP through GRO is the reference
    # engine's.
    tcp = RunConfig(kernel="6.12", options={"rx": "build_skb"}, traffic="tcp-bulk", count=500)
    assert unsupported(tcp) is None
    result, _, why = simulate_engine(tcp, "fast")
    assert result["engine"] == "fast" and why is None and "gro" in result
    assert {**result, "engine": ""} == {**simulate(tcp)[0], "engine": ""}
    other = RunConfig(kernel="6.12", driver="mlx5", options={}, traffic="tcp-bulk", count=500)
    assert unsupported(other).startswith("TCP traffic goes through GRO on mlx5")
    result, _, why = simulate_engine(other, "fast")
    assert result["engine"] == "reference" and why == unsupported(other) and "gro" in result
    # With GRO off a TCP run is the fast engine's, with the same JSON as the reference engine's.
    for rx in ("build_skb", "legacy"):
        off = RunConfig(kernel="6.12", options={"rx": rx, "gro": "0"}, traffic="tcp-bulk", count=500, flows=3)
        fast, _, why = simulate_engine(off, "fast")
        reference, _ = simulate(off)
        assert why is None and fast["engine"] == "fast"
        assert {**fast, "engine": ""} == {**reference, "engine": ""}


def test_a_tcp_capture_is_merged_by_both_engines(tmp_path):
    frames = segments(30) + [tcp_frame(9000, 1448, sport=3000 + i, rss_hash=0) for i in range(3)]
    path = _write_pcap(tmp_path / "tcp.pcap", frames)
    assert capture_has_tcp(parse_traffic(f"pcap:{path}"))
    assert not capture_has_tcp(parse_traffic(f"pcap:{path}", count=0))
    config = RunConfig(kernel="6.9", options={"rx": "legacy"}, traffic=f"pcap:{path}", count=None, rate=None)
    assert unsupported(config) is None  # the fast engine's GRO reads the capture's headers too
    result, _ = simulate(config)
    fast, _, why = simulate_engine(config, "fast")
    assert why is None and {**fast, "engine": ""} == {**result, "engine": ""}
    gro = result["gro"]
    # The capture's own headers: 30 in-order segments of one flow (merged as they come, poll by poll),
    # 3 single segments of other flows.  The capture's timestamps 1 us apart: 2-3 frames per poll.
    assert gro["skbs_in"] == 33 and gro["merged"]["frags"] == gro["skbs_in"] - gro["skbs_out"] > 0
    assert result["leaks"]["clean"]


def test_a_udp_capture_stays_with_the_fast_engine(tmp_path):
    udp = list(parse_traffic("imix", count=36, flows=3))
    path = _write_pcap(tmp_path / "udp.pcap", udp)
    assert not capture_has_tcp(parse_traffic(f"pcap:{path}"))
    assert unsupported(RunConfig(traffic=f"pcap:{path}", count=None, rate=None)) is None


def test_cli_says_once_why_the_reference_engine_ran(capsys):
    # (ice's, copybreak's, virtio_net's, mana's and libeth's tcp-bulk runs are the fast engine's; mlx5's TCP
    # through GRO is not yet)
    assert main(["run", "--quiet", "--json", "--kernel", "6.18", "--traffic", "tcp-bulk:ts=0", "--count", "300",
                 "--driver", "mlx5"]) == 0
    out, err = capsys.readouterr()
    assert err.count("reference engine used: TCP traffic goes through GRO") == 1
    gro = json.loads(out)["runs"][0]["gro"]
    assert gro["skbs_in"] == 300


@pytest.mark.parametrize("spec, message", [
    ("tcp-bulk:mss=0", "mss 0 outside 1..65469"),
    ("tcp-bulk:ts=2", "ts must be 0 or 1"),
    ("tcp-bulk:size=3", "expected tcp-bulk[:mss=N][,ts=0|1]"),
    ("tcp-bulk:mss=x", "is not a whole number"),
])
def test_tcp_bulk_spec_errors(spec, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("|", r"\|")):
        parse_traffic(spec, count=1)


def test_tcp_bulk_segments():
    source = parse_traffic("tcp-bulk:mss=1000,ts=1", count=400, flows=3, rate=1e6, seed=5)
    frames = list(source)
    assert {f.length for f in frames} == {14 + 20 + 32 + 1000}
    assert "tcp-bulk (MSS 1000 with timestamps: 1066-byte segments)" in source.describe()
    by_flow = {}
    for frame in frames:
        by_flow.setdefault(frame.flow, []).append(frame)
    assert len(by_flow) == 3 and all(flow[4] == 6 for flow in by_flow)
    for flow_frames in by_flow.values():
        seqs = [int.from_bytes(f.header[38:42], "big") for f in flow_frames]
        ids = [int.from_bytes(f.header[18:20], "big") for f in flow_frames]
        assert all((b - a) % 2**32 == 1000 for a, b in zip(seqs, seqs[1:]))
        assert all((b - a) % 2**16 == 1 for a, b in zip(ids, ids[1:]))
        # TSval: the flow's clock base plus the arrival time in ms (400 frames at 1 us: one tick at most)
        tsvals = {int.from_bytes(f.header[58:62], "big") for f in flow_frames}
        assert len(tsvals) == 1
    # 1460 without timestamps: 1514-byte frames
    assert {f.length for f in parse_traffic("tcp-bulk:ts=0", count=5)} == {1514}


def test_gro_flush_timeout_lets_tun_writes_merge_and_the_timer_passes_them_up():
    # 50 blocking writes 1 us apart on 6.18, gro_flush_timeout 2 ms: each write's poll completes NAPI
    # with work done, so napi_complete_done() keeps what was held during this jiffy (4 ms: all of it)
    # and arms the timer.  45 segments fill an aggregate (the 46th would pass gro_max_size: 1500 +
    # 45 * 1448 >= 65536); the last 5 go up when the timer's poll, 2 ms after the last write, finds no
    # work.  tun_alloc_skb() skbs have kmalloc'ed heads (truesize 2304) and chain on the frag_list:
    # 45 * 2304 = 103680, as the live kernel shows (tests/live/test_live_gro.py).
    result, _ = simulate(RunConfig(kernel="6.18", driver="tun", options={"napi": "1", "gro_flush_timeout": "2000000"},
                                       traffic="tcp-bulk", flows=1, count=50))
    gro = result["gro"]
    assert (gro["skbs_out"], gro["merged"]["frag_list"]) == (2, 48)
    assert gro["flushes"] == {"gro_max_size": 1, "napi_complete": 1}
    assert gro["truesize_per_aggregate"] == (45 * 2304 + 5 * 2304) / 2
    assert result["leaks"]["clean"]
