"""skbsim run --socket tcp: TCP receivers per flow, window-limited senders with an RTT, captures split
into their sockets - against hand-derived numbers (the derivation beside each)."""

import json
from collections import Counter

import dpkt
import pytest
from jsonschema import Draft202012Validator

from gro_helpers import segments, tcp_frame
from skbsim.cli import main
from skbsim.errors import InputError
from skbsim.fast.engine import simulate_engine, unsupported
from skbsim.report import TraceWriter
from skbsim.sim import RunConfig, simulate
from skbsim.tcp_sender import parse_sender
from skbsim.traffic import parse_traffic

SCHEMAS = __import__("pathlib").Path(__file__).resolve().parent.parent / "docs" / "schema"
SYN = 0x02


def _run(trace_path=None, **kw):
    kw.setdefault("socket", "tcp")
    kw.setdefault("flows", 1)
    kw.setdefault("traffic", "tcp-bulk")
    trace = TraceWriter(str(trace_path), per_flow=True) if trace_path else None
    try:
        result, extra = simulate(RunConfig(**kw), trace=trace)
    finally:
        if trace is not None:
            trace.close()
    # Nothing leaks: every page, slab object and skb given back after the run.
    assert result["leaks"]["clean"], result["leaks"]
    errors = list(Draft202012Validator(json.loads((SCHEMAS / "run.schema.json").read_text())).iter_errors(
        {"runs": [result]}))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:3]]
    return result, extra


def _tcp(result):
    flows = [flow for flow in result["flows"] if flow["protocol"] == "tcp"]
    assert len(flows) == 1
    return flows[0]


# -- a bulk transfer whose throughput is window / RTT


def test_bulk_throughput_is_the_window_over_the_rtt(tmp_path):
    # 6.1 (tcp_adv_win_scale 1: a window is half the memory), SO_RCVBUF 68056 = 47 * 1448:
    #   sk_rcvbuf = 2 * 68056 = 136112; tcp_full_space() = 136112 - 136112 / 2 = 68056.
    #   tcp_init_buffer_space(): window_clamp = 68056, less one advmss (1460 - 12 for timestamps = 1448)
    #   for the one-segment reservation: 66608 = 46 * 1448.  rcv_wscale = ilog2(68056) - 15 = 1.
    #   The SYN-ACK offers min(rcv_wnd 68056, 65535) = 65535: 45 segments in the first RTT.
    #   rcv_ssthresh starts at 65535 and reaches the clamp with the first segment (+2 advmss, at most the
    #   room to 66608); a reader that reads at once leaves the whole 68056 free: the window is
    #   min(68056, 66608) = 66608 (already a multiple of 2, the scale's unit): W = 46 segments.
    # No IRQ latency and no per-packet cost: a segment is ACKed when it arrives (every second one: 46 is
    # even, so no segment waits for the delayed-ACK timer), and the ACK reaches the sender 1 ms later.
    count = 45 + 19 * 46  # 20 RTTs: 919 segments
    result, _ = _run(tmp_path / "t.jsonl", kernel="6.1", options={"rx": "build_skb"}, count=count, rate=1e9,
                     irq_latency_ns=0, packet_cost_ns=0, so_rcvbuf=68056, rtt_ms=1.0)
    flow = _tcp(result)
    window = 66608
    assert flow["window_at_end"] == window and flow["rcvbuf"]["at_end"] == 136112
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    per_rtt = Counter(record["time_ns"] // 1_000_000 for record in records)
    # The handshake ends at 1 ms; then 45 segments, and 46 = W / 1448 in every later RTT.
    assert [per_rtt[k] for k in range(1, 21)] == [45] + [46] * 19
    assert flow["bytes_received"] == count * 1448 and flow["dropped"] == {}
    # window / RTT = 66608 * 8 bits / 1 ms = 532.864 Mbit/s, the mean advertised window over the transfer.
    assert flow["window_bound_mbps"] == 532.864
    # Throughput: 919 * 1448 bytes in 20 RTTs (the first one short by a segment: 45, not 46), plus the
    # nanoseconds the last RTT's 46 frames take on a 1e9 frames/s link (63 ns: under 1e-5 of it).
    assert flow["throughput_mbps"] == pytest.approx(count * 1448 * 8 / 20e6 * 1e3, rel=1e-5)
    assert flow["zero_window_ms"] == flow["window_below_mss_ms"] == 0
    assert flow["sender"] == {"frames": count, "segments": count, "bytes": count * 1448, "retransmits": 0,
                              "window_probes": 0, "zero_window_probes": 0}


# -- ntb: the zero window, by release, and the copybreak that avoids it

NTB = dict(driver="ntb", traffic="tcp-bulk:mss=1000,ts=0", count=200, app_rate=100, rtt_ms=1.0)


@pytest.mark.parametrize("kernel, copybreak, to_zero", [
    ("6.1", "0", 0), ("6.9", "0", 1), ("6.12", "0", 1), ("6.18", "0", 0),
    ("6.1", "3646", 0), ("6.9", "3646", 0), ("6.12", "3646", 0), ("6.18", "3646", 0),
    ("7.1", "0", 0), ("7.1", "3646", 0),
])
def test_ntb_zero_window_by_release_and_not_with_copybreak(tmp_path, kernel, copybreak, to_zero):
    # Every frame lands in a 65524-byte ntb buffer: truesize 131328 for a 1000-byte segment, a scaling ratio
    # of 1000 * 256 / 131328 = 1 (6.6+).  The reader reads everything every 10 ms (first at 1.003 ms).
    # 6.9 and 6.12: after the read at 11.003 ms (rmem 0; tcp_clamp_window() raised sk_rcvbuf to one fat
    #   skb, 131328) the free space is tcp_win_from_space(131328) = 131328 * 1 >> 8 = 513.  Full space:
    #   min(window_clamp, 513) - 6.9 keeps its clamp (33280), 6.12 ('tcp: Update window clamping
    #   condition', no floor) wrote tcp_win_from_space(131072) = 512 - so rcv_mss 1000 counts as 512 or
    #   513; 513 is at least half of it: the window is 513 rounded up to the scale unit (wscale 7: 128),
    #   640 < the MSS 1000.  The sender waits for its persist timer: the ACK reached it at 12.003 ms, RTO =
    #   RTT + 200 ms, so at 213.003 ms a 640-byte window probe (PSH) arrives - in another 131328-byte
    #   buffer: free space (131328 - 131328) >> 8 = 0: the window closes (TCPToZeroWindowAdv).
    # 6.18 and 7.1 (tcp_set_window_clamp()'s floor SOCK_MIN_RCVBUF / 2 = 1152): the same free space 513
    #   rounds up to the unit of wscale 10 (tcp_rmem[2] 32 MiB): 1024 >= 1000, one segment per read: never
    #   below an MSS, never zero.
    # 6.1 (no scaling ratio: half the free memory) never collapses.
    # copybreak=3646: a 1054-byte frame is copied into a right-sized skb (truesize 1728, ratio 148): the
    #   window stays wide open on every release.
    result, _ = _run(tmp_path / "t.jsonl", kernel=kernel, options={"copybreak": copybreak}, **NTB)
    flow = _tcp(result)
    assert flow["counters"]["TCPToZeroWindowAdv"] == to_zero
    if to_zero:
        assert flow["sender"]["window_probes"] >= 1 and flow["window_below_mss_ms"] > 200
        records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
        probe = next(r for r in records if r["window"] == 0)
        # The probe arrives at 213.003 ms; 2 us of IRQ latency and 0.5 us of softirq work later TCP has it.
        assert (probe["time_ns"], probe["payload"], probe["truesize"]) == (213_005_500, 640, 131328)
    else:
        assert flow["window_below_mss_ms"] == 0 and flow["sender"]["window_probes"] == 0
    assert flow["bytes_received"] == flow["sender"]["bytes"]


# -- a reader slower than the sender


@pytest.mark.parametrize("kernel, rcvbuf", [
    # 6.9 (space_from_win): the third read (21.003 ms) is the first tcp_rcv_space_adjust() after an RTT
    #   sample with more copied than rcvq_space: copied = 15000 (the rest of read 2) + 1000 (its own
    #   first skb) = 16000 > 14600 (10 * advmss 1460, taken before the timestamp option came off advmss).
    #   rcvwin = 2 * 16000 + 16 * 1448 = 55168; grow = 55168 * 1400 / 14600 = 5290; rcvwin = 55168 +
    #   2 * 5290 = 65748; sk_rcvbuf = 65748 * 256 / 111 (ratio 1000 * 256 / 2304) = 151635.  Later reads
    #   copy 16000 again: not more than rcvq_space (now 16000): no further growth.
    ("6.9", 151635),
])
def test_a_slow_reader_fills_rcvbuf_and_autotuning_grows_it(kernel, rcvbuf):
    # tun: one linear 2304-byte skb per 1066-byte frame (1000 bytes with timestamps, never coalesced);
    # the reader takes 16000 bytes every 10 ms: 12.8 Mbit/s against a window of tens of KB per 1 ms RTT.
    result, _ = _run(kernel=kernel, driver="tun", options={}, traffic="tcp-bulk:mss=1000,ts=1", count=2000,
                     app_rate=100, app_read_size=16000, rtt_ms=1.0)
    flow = _tcp(result)
    assert flow["rcvbuf"]["initial"] == 131072 and flow["rcvbuf"]["max"] == flow["rcvbuf"]["at_end"] == rcvbuf
    assert flow["counters"]["PruneCalled"] == 0
    # The queue fills sk_rcvbuf (the fast path admits while truesize <= sk_forward_alloc: it may pass it).
    assert flow["rmem_alloc"]["peak"] >= 131072
    # 125 reads of 16000 bytes, the first at 1.003 ms, take every byte; the window is not the limit.
    assert flow["bytes_read"] == 2_000_000 and flow["throughput_mbps"] < flow["window_bound_mbps"] / 5


@pytest.mark.parametrize("kernel", ["6.12", "6.18"])
def test_inq_aware_autotuning_leaves_growth_to_the_clamp(kernel):
    # 6.12.y and 6.18 subtract the bytes still queued from copied: 16000 - (a full queue) < 0, never more
    # than rcvq_space.  sk_rcvbuf grows only when tcp_prune_queue() -> tcp_clamp_window() raises it to
    # sk_rmem_alloc: a whole number of the queued 2304-byte skbs.
    result, _ = _run(kernel=kernel, driver="tun", options={}, traffic="tcp-bulk:mss=1000,ts=1", count=2000,
                     app_rate=100, app_read_size=16000, rtt_ms=1.0)
    flow = _tcp(result)
    assert flow["counters"]["PruneCalled"] > 0
    assert flow["rcvbuf"]["max"] > 131072 and flow["rcvbuf"]["max"] % 2304 == 0


# -- a capture: TCP and UDP flows in their sockets, and what the model's receiver refuses


def _capture(path):
    """A TCP flow (a SYN, then 40 in-order 1448-byte segments with timestamps) and two UDP flows
    (6 and 4 datagrams of 600 bytes), interleaved, 10 us apart."""
    tcp = [tcp_frame(999_999, 0, flags=SYN, ts=1000)] + segments(40, ts=1001)
    udp = list(parse_traffic("fixed:600", count=10, flows=2))
    frames = []
    for i, frame in enumerate(tcp):
        frames.append(frame)
        if i % 4 == 0 and udp:
            frames.append(udp.pop())
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for i, frame in enumerate(frames):
            writer.writepkt(frame.header + bytes(frame.length - len(frame.header)), ts=i * 1e-5)
    return f"pcap:{path}"


def test_a_capture_splits_into_tcp_and_udp_sockets(tmp_path):
    traffic = _capture(tmp_path / "mixed.pcap")
    result, _ = _run(kernel="6.18", options={"rx": "build_skb"}, traffic=traffic, count=None, rate=None,
                     flows=16)
    by_protocol = Counter(flow["protocol"] for flow in result["flows"])
    assert by_protocol == {"tcp": 1, "udp": 2}
    tcp = _tcp(result)
    # The SYN is the handshake (control); 40 segments of 1448 bytes go to the TCP receiver, all in order.
    assert (tcp["flow"], tcp["control"], tcp["segments"], tcp["bytes_received"]) == (
        "198.18.0.1:40000 > 192.0.2.1:5001", 1, 40, 40 * 1448)
    assert tcp["refused"] == {"segments": 0, "bytes": 0, "by_reason": {}, "first": []}
    # The capture's SYN had no MSS option: 536, less the 12 bytes of timestamps.
    assert tcp["mss"] == 524
    udp = sorted((flow["skbs"], flow["delivered"]) for flow in result["flows"] if flow["protocol"] == "udp")
    assert udp == [(4, 4), (6, 6)]
    assert result["packets"] == 51 and result["delivered"] == 50 and result["tcp"]["sender"] is None


@pytest.mark.parametrize("kernel, first_reason", [("6.12", "TCP_ZEROWINDOW"), ("6.18", "TCP_INVALID_END_SEQUENCE")])
def test_a_capture_lists_what_the_modelled_receiver_refuses(tmp_path, kernel, first_reason):
    # SO_RCVBUF 4096: sk_rcvbuf 8192, full space 4096 (ratio 128); the peer's SYN had no window scale.
    # The SYN-ACK's window: 4096 rounded down to the MSS 1448: 2896; tcp_init_buffer_space(): clamp 4096
    # less one advmss (at least 2 advmss): 2896, rcv_ssthresh 2896.  Segment 1 (truesize 2304): ratio
    # 1448 * 256 / 2304 = 160, rcv_ssthresh + min(room 3680 - 2896, 2 advmss) = 3680; its ACK offers
    # (no scaling: the old rcv_wnd 2896 is kept, within one MSS below the free space 3680) the right
    # edge 1448 + 2896 = 4344.  Segments 2 and 3 fill it; nobody reads (--app-rate 0), so it never moves.
    # Segment 4 starts at the edge and ends beyond it: 6.12 (tcp_sequence() checks the start) takes it
    # to tcp_data_queue(), which drops it for the zero window; 6.17+ ('tcp: do not accept packets beyond
    # window') refuses it in tcp_sequence(): TCP_INVALID_END_SEQUENCE.  Segments 5..40 start beyond the
    # edge: TCP_INVALID_SEQUENCE on every release.  A capture cannot hold them back: 37 are refused.
    traffic = _capture(tmp_path / "mixed.pcap")
    result, _ = _run(kernel=kernel, options={"rx": "build_skb"}, traffic=traffic, count=None, rate=None, flows=16,
                     app_rate=0, so_rcvbuf=4096)
    tcp = _tcp(result)
    assert tcp["bytes_received"] == 3 * 1448 and tcp["delivered"] == 3
    refused = tcp["refused"]
    assert refused["segments"] == 37 and refused["bytes"] == 37 * 1448
    assert refused["by_reason"] == {first_reason: 1, "TCP_INVALID_SEQUENCE": 36}
    assert len(refused["first"]) == 20
    assert [entry[1:] for entry in refused["first"][:2]] == [[4344, 1448, first_reason],
                                                              [5792, 1448, "TCP_INVALID_SEQUENCE"]]
    assert result["dropped"]["tcp"] == 37 and result["tcp"]["refused"] == {"segments": 37, "bytes": 37 * 1448}


# -- the senders


def test_message_sender_sends_each_message_in_mss_segments_the_last_with_psh(tmp_path):
    # messages:3000@100: 3000 bytes every 10 ms = 1448 + 1448 + 104 (the short one with PSH); 30 frames
    # of new data are 10 messages.
    result, _ = _run(tmp_path / "t.jsonl", kernel="6.18", driver="tun", options={}, count=30,
                     tcp="messages:3000@100")
    flow = _tcp(result)
    assert flow["bytes_received"] == 30000 and flow["sender"]["frames"] == 30
    payloads = [json.loads(line)["payload"] for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert payloads == [1448, 1448, 104] * 10


def test_gso_frames_on_virtio_net(tmp_path):
    # tso=8 with the window wide open: every frame carries 8 segments of 1448 bytes (11650-byte frames),
    # a GSO packet for virtio_net (gso_size from the MTU: 1500 - 40 = 1460); TCP counts ceil(11584 / 1460)
    # = 8 segments in each.
    result, _ = _run(kernel="6.18", driver="virtio_net", options={}, count=5, tcp="bulk,tso=8")
    flow = _tcp(result)
    assert flow["sender"]["frames"] == 5 and flow["sender"]["segments"] == 40
    assert flow["bytes_received"] == 40 * 1448 and flow["segments"] == 40 and result["bytes"] == 5 * 11650


def test_several_flows_on_several_cpus():
    result, _ = _run(kernel="6.18", options={"rx": "build_skb"}, count=400, flows=4, cpus=2)
    tcp = [flow for flow in result["flows"] if flow["protocol"] == "tcp"]
    assert len(tcp) == 4 and {flow["cpu"] for flow in tcp} <= {0, 1}
    assert sum(flow["bytes_received"] for flow in tcp) == 400 * 1448 == result["tcp"]["bytes_received"]


# -- engines, the CLI, bad input


def test_the_fast_engine_runs_tcp_through_tun_and_hands_the_rest_over():
    # synthetic senders through tun without IFF_NAPI: the fast engine, with the reference engine's JSON
    config = RunConfig(kernel="6.12", driver="tun", options={}, traffic="tcp-bulk", count=50, flows=1, socket="tcp")
    assert unsupported(config) is None
    result, _, why = simulate_engine(config, "fast")
    assert result["engine"] == "fast" and why is None
    assert {**result, "engine": "reference"} == simulate(config)[0]
    # ice and virtio_net through GRO too (tests/test_fast_tcp_napi.py, test_fast_tcp_virtio.py); mlx5 stays the
    # reference engine's, saying so
    config = RunConfig(kernel="6.12", options={"rx": "build_skb"}, traffic="tcp-bulk", count=50, flows=1, socket="tcp")
    assert unsupported(config) is None
    config = RunConfig(kernel="6.12", driver="virtio_net", options={}, traffic="tcp-bulk", count=50, flows=1,
                       socket="tcp")
    assert unsupported(config) is None
    config = RunConfig(kernel="6.12", driver="mlx5", options={}, traffic="tcp-bulk", count=50, flows=1,
                       socket="tcp")
    assert unsupported(config).startswith("--socket tcp through mlx5 is the reference engine's")
    result, _, why = simulate_engine(config, "fast")
    assert result["engine"] == "reference" and why == unsupported(config)


def test_udp_runs_keep_their_json():
    # --socket udp is the default for synthetic traffic; the per-flow keys appear only with --socket tcp.
    result, _ = simulate(RunConfig(kernel="6.9", count=500))
    assert "flows" not in result and "tcp" not in result and "tcp" not in result["dropped"]
    assert result == simulate(RunConfig(kernel="6.9", count=500, socket="udp"))[0]


def test_cli_tcp_run_with_trace_and_plot(tmp_path, capsys):
    trace = tmp_path / "t.csv"
    assert main(["run", "--quiet", "--socket", "tcp", "--kernel", "6.12", "--kernel", "6.18", "--count", "200",
                 "--rtt", "0.5", "--plot", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "TCP throughput (Mbit/s)" in out and "TCP window / RTT (Mbit/s)" in out
    assert {path.name for path in tmp_path.iterdir()} >= {"tcp.png", "memory.png", "truesize.png"}
    assert main(["run", "--quiet", "--socket", "tcp", "--count", "50", "--trace", str(trace)]) == 0
    header, first = trace.read_text().splitlines()[:2]
    assert header.split(",")[-8:] == ["flow", "seq", "payload", "route", "verdict", "window", "rmem_alloc", "rcvbuf"]


def test_cli_a_tcp_capture_gets_a_socket_per_flow_by_default(tmp_path, capsys):
    traffic = _capture(tmp_path / "mixed.pcap")
    assert main(["run", "--quiet", "--json", "--traffic", traffic, "--kernel", "6.18"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert len(run["flows"]) == 3
    assert main(["run", "--quiet", "--json", "--traffic", traffic, "--kernel", "6.18", "--socket", "udp"]) == 0
    assert "flows" not in json.loads(capsys.readouterr().out)["runs"][0]


@pytest.mark.parametrize("argv, message", [
    (["--socket", "tcp", "--traffic", "imix"], "--socket tcp needs TCP traffic"),
    (["--socket", "tcp", "--tcp", "stream"], "--tcp 'stream': expected bulk or messages:SIZE[@RATE]"),
    (["--socket", "tcp", "--tcp", "messages:0"], "SIZE must be 1.."),
    (["--socket", "tcp", "--tcp", "bulk,tso=4"], "GSO frames (tso) reach only"),
    (["--socket", "tcp", "--rtt", "0"], "--rtt must be a positive finite number"),
    (["--socket", "tcp", "--duration", "-1"], "--duration must be a positive finite number"),
    (["--app-read-size", "100"], "--app-read-size is for TCP sockets"),
    (["--so-rcvbuf", "100"], "--so-rcvbuf is for TCP sockets"),
    (["--rtt", "5"], "--rtt is for TCP senders"),
    (["--socket", "tcp", "--app-read-size", "0"], "--app-read-size must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert main(["run", "--quiet", "--count", "10", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_sender_spec():
    spec = parse_sender("messages:16384@250.5,tso=4")
    assert (spec.kind, spec.size, spec.rate, spec.tso) == ("messages", 16384, 250.5, 4)
    assert parse_sender("bulk").describe() == "bulk"
    with pytest.raises(InputError, match="tso must be 1..64"):
        parse_sender("bulk,tso=65")


def test_a_second_connection_on_the_same_flow_and_fin_and_rst(tmp_path):
    # SYN, 5 segments; a new SYN on the same addresses and ports (a new ISN): the first receiver is
    # closed and reported, a second one takes 5 segments, a FIN without data and a RST (both control).
    frames = ([tcp_frame(999, 0, flags=SYN)] + segments(5, seq=1000) + [tcp_frame(5_000_000, 0, flags=SYN)]
              + segments(5, seq=5_000_001) + [tcp_frame(5_000_001 + 5 * 1448, 0, flags=0x11),
                                              tcp_frame(5_000_002 + 5 * 1448, 0, flags=0x04)])
    path = tmp_path / "two.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for i, frame in enumerate(frames):
            writer.writepkt(frame.header + bytes(frame.length - len(frame.header)), ts=i * 1e-5)
    result, _ = _run(kernel="6.18", options={"rx": "build_skb"}, traffic=f"pcap:{path}", count=None, rate=None,
                     flows=16)
    first, second = result["flows"]
    assert first["flow"] == second["flow"]
    assert (first["skbs"], first["control"], first["bytes_received"]) == (6, 1, 5 * 1448)
    assert (second["skbs"], second["control"], second["bytes_received"]) == (8, 3, 5 * 1448)


@pytest.mark.parametrize("kernel", ["6.12", "6.18"])
def test_segments_the_receiver_drops_are_sent_again(kernel):
    # ntb's 131328-byte skbs against SO_RCVBUF 4096 (sk_rcvbuf 8192): the second skb cannot be charged
    # (PROTO_MEM), and the zero window the receiver then stores (6.12.y/6.14+ 'tcp: correct handling of
    # extreme memory squeeze') withdraws window the sender had been offered: what it sent there is refused
    # as beyond the window.  The retransmission timer sends each lost segment again, so every byte the
    # sender sent arrives; each drop cost one retransmission.
    result, _ = _run(kernel=kernel, driver="ntb", options={"copybreak": "0"}, traffic="tcp-bulk:mss=1000,ts=0",
                     count=60, app_rate=100, so_rcvbuf=4096)
    flow = _tcp(result)
    drops = sum(flow["dropped"].values())
    assert flow["dropped"]["PROTO_MEM"] >= 1 and drops == flow["sender"]["retransmits"] > 0
    assert flow["bytes_received"] == flow["sender"]["bytes"]
