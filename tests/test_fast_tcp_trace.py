"""--trace of --socket tcp runs on the fast engine (skbsim/fast/tcp_trace.py): byte-identical to the reference
engine's, one record per segment with its flow fields (flow, relative seq, payload, route, verdict, window, rmem,
rcvbuf), and a record of each tun write a fault refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import simulate_engine
from skbsim.fast.tcp import TCP_OFO, TCP_PRUNE, TCP_WHY
from skbsim.report import TraceWriter
from skbsim.sim import RunConfig
from tcp_engines import SYN, segment, write_capture

BASE = dict(driver="tun", options={}, socket="tcp", traffic="tcp-bulk:ts=1", tcp="bulk", flows=1)
#: the reasons a TCP run may still be redone by the reference engine (memory pressure, the rest of the ofo queue)
REDONE = (TCP_WHY[TCP_PRUNE], TCP_WHY[TCP_OFO])


def _traces(tmp_path, suffix=".jsonl", **kw):
    """Both engines' (JSON without the engine, trace bytes, why the fast engine fell back) for one config."""
    config = {**BASE, **kw}
    out = {}
    for engine in ("fast", "reference"):
        path = tmp_path / f"{engine}{suffix}"
        writer = TraceWriter(str(path), per_flow=True)
        result, _, why = simulate_engine(RunConfig(**config), engine, trace=writer)
        writer.close()
        out[engine] = ({**result, "engine": None}, path.read_bytes(), why, result["engine"])
    return out["fast"], out["reference"]


def _records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


# (name, config, what the trace must show: (field, value[, on these kernels only]) that some record has)
WORKLOADS = [
    ("bulk", dict(count=2000, traffic="tcp-bulk:ts=0"), [("route", "slow"), ("verdict", "queued")]),
    ("messages and a reader", dict(count=1500, tcp="messages:100@50000", app_rate=1000),
     [("route", "fast"), ("verdict", "queued"), ("verdict", "coalesced", ("6.1", "6.12", "6.18"))]),
    # the window closes; the sender's zero-window probes (old sequence numbers) are dropped, as control
    ("zero window", dict(count=2000, traffic="tcp-bulk:ts=0", app_rate=0, duration_ms=2000.0),
     [("window", 0), ("outcome", "control"), ("verdict", "dropped:TCP_OLD_SEQUENCE")]),
    # a failing slab refuses tun writes: the segments after a hole go to the out-of-order queue
    ("slab faults: out of order", dict(count=1500, cpus=2, flows=3, faults=(("slab", 0.02, 1, -1, 0),)),
     [("route", "ofo"), ("outcome", "dropped:driver"), ("route", "slow")]),
    ("messages, skb_head faults", dict(count=1500, tcp="messages:3000", app_rate=20000,
                                       faults=(("skb_head", 0.01, 1, -1, 100),)),
     [("outcome", "dropped:driver"), ("route", "ofo"), ("route", "fast")]),
    ("16 flows, small rcvbuf", dict(count=1000, flows=16, so_rcvbuf=8192, app_rate=1000),
     [("route", "slow"), ("route", "fast", ("6.1", "6.12", "6.18", "host"))]),
]


@pytest.mark.parametrize("kernel", ["6.1", "6.9", "6.12", "6.18", "host"])
@pytest.mark.parametrize("name, config, shows", WORKLOADS, ids=[w[0] for w in WORKLOADS])
def test_tcp_trace_is_byte_identical(tmp_path, kernel, name, config, shows):
    fast, reference = _traces(tmp_path, kernel=kernel, **config)
    if name == "zero window" and fast[2] is not None:  # 6.18's and 7.1's autotuning reach memory pressure here
        assert fast[2].removesuffix("; rerun") in REDONE
    else:
        assert fast[2] is None and fast[3] == "fast", fast[2]
    assert fast[:2] == reference[:2]
    records = _records(reference[1])
    # one record per frame the senders wrote (a refused write: no skb), none more
    assert len(records) == reference[0]["packets"]
    for field, value, *kernels in shows:
        if not kernels or kernel in kernels[0]:
            assert any(r[field] == value for r in records), (field, value)


def test_tcp_trace_as_csv(tmp_path):
    fast, reference = _traces(tmp_path, ".csv", kernel="6.18", count=1500, faults=(("slab", 0.02, 1, -1, 0),))
    assert fast[2] is None and fast[:2] == reference[:2]


def test_a_trace_longer_than_the_compiled_table(tmp_path):
    # the fast engine's trace table holds CHUNK + a ring's rows: its final _run() pauses and resumes to empty it
    from skbsim.fast.traffic import CHUNK

    fast, reference = _traces(tmp_path, kernel="6.12", count=CHUNK + 5000, flows=2, app_rate=20000)
    assert fast[2] is None and fast[3] == "fast"
    assert fast[:2] == reference[:2] and len(reference[1].splitlines()) == CHUNK + 5000


def test_plot_of_a_tcp_run_is_the_fast_engines():
    # (its data against the reference engine's: tests/test_fast_tcp_plot.py)
    result, extra, why = simulate_engine(RunConfig(**BASE, kernel="6.18", count=200), "fast", plot=True)
    assert why is None and result["engine"] == "fast" and extra["tcp_series"][0][1]


@pytest.mark.parametrize("driver, options, trace, said", [
    ("ice", {}, False, "the fast engine draws --plot of TCP through GRO only on the reference engine"),
    ("copybreak", {}, False, "the fast engine draws --plot of TCP through GRO only on the reference engine"),
    ("virtio_net", {"gro": "0"}, False, "the fast engine draws --plot for virtio_net only on the reference engine"),
    ("virtio_net", {"gro": "0"}, True, "the fast engine draws --plot for virtio_net only on the reference engine"),
])
def test_what_tcp_runs_still_hand_over_with_plot(tmp_path, driver, options, trace, said):
    config = dict(BASE, kernel="6.18", driver=driver, options=options, count=200)
    writer = TraceWriter(str(tmp_path / "trace.jsonl"), per_flow=True) if trace else None
    result, extra, why = simulate_engine(RunConfig(**config), "fast", trace=writer, plot=True)
    if writer is not None:
        writer.close()
    assert result["engine"] == "reference", why
    assert why == said or why.startswith(said + " ("), why
    assert extra["series"] and "tcp_series" in extra


# --trace of synthetic senders through the NAPI drivers and ntb: each skb handed up, and each frame the NIC
# refused (ring_full: a CPU 20 us a packet behind a 2 Mpps link cannot keep the ring posted), with GRO or without
NAPI_TRACES = [
    ("ice", {}), ("ice", {"rx": "legacy", "gro": "0"}), ("copybreak", {}), ("copybreak", {"gro": "0"}),
    ("ntb", {}), ("ntb", {"copybreak": "3646"}), ("virtio_net", {}), ("virtio_net", {"gro": "0"}), ("mana", {}),
    ("libeth", {"nic": "iavf"}), ("bnxt", {"gro": "0"}),
]


@pytest.mark.parametrize("link", [{}, dict(packet_cost_ns=20_000, rate=2_000_000.0)], ids=["", "overloaded"])
@pytest.mark.parametrize("driver, options", NAPI_TRACES, ids=[f"{d} {o}" for d, o in NAPI_TRACES])
def test_tcp_trace_through_napi_drivers_is_byte_identical(tmp_path, driver, options, link):
    fast, reference = _traces(tmp_path, kernel="6.18", driver=driver, options=options, count=1500, flows=2,
                              app_rate=20000, **link)
    assert fast[2] is None and fast[3] == "fast", fast[2]
    assert fast[:2] == reference[:2]
    assert reference[0]["leaks"]["clean"]  # every page, slab object and skb given back (the fast engine's too)
    records = _records(reference[1])
    refused = [r for r in records if r["len"] is None]
    # a frame the NIC refused has a record without skb or flow fields, one per drop the run counted
    assert all(r["outcome"] == "dropped:ring_full" and r["flow"] is None for r in refused)
    assert len(refused) == reference[0]["dropped"]["ring_full"]
    # without GRO every frame the senders sent has its record; GRO's aggregates have one each
    if options.get("gro") == "0" or driver == "ntb":
        assert len(records) == reference[0]["packets"]
    else:
        assert len(records) <= reference[0]["packets"]


def test_a_captures_tcp_trace_is_still_the_reference_engines(tmp_path):
    frames = [(0.0, segment(1000, 0, flags=SYN, ack=0, syn_options=True))]
    frames += [(0.001 + n * 1e-5, segment(1001 + n * 1000, 1000)) for n in range(20)]
    traffic = write_capture(str(tmp_path / "c.pcap"), frames)
    writer = TraceWriter(str(tmp_path / "trace.jsonl"), per_flow=True)
    result, _, why = simulate_engine(RunConfig(kernel="6.18", driver="ice", traffic=traffic, socket="tcp"), "fast",
                                     trace=writer)
    writer.close()
    assert result["engine"] == "reference" and why == "--trace of a capture's TCP flows into receivers is the " \
        "reference engine's"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kernel=st.sampled_from(["6.1", "6.9", "6.12", "6.18", "host"]), ts=st.sampled_from([0, 1]),
       tcp=st.sampled_from(["bulk", "messages:3000", "messages:20000@2000", "messages:100@50000"]),
       flows=st.sampled_from([1, 2, 16]), rtt=st.sampled_from([0.05, 1.0, 20.0]),
       app_rate=st.sampled_from([None, 0, 1000, 200000]), read=st.sampled_from([None, 1000]),
       so_rcvbuf=st.sampled_from([None, 8192, 1 << 20]), count=st.integers(1, 800), cpus=st.integers(1, 2),
       faults=st.sampled_from([(), (("slab", 0.02, 1, -1, 0),), (("page_frag", 0.3, 2, 3, 10),)]))
def test_random_tcp_traces_are_byte_identical(tmp_path_factory, kernel, ts, tcp, flows, rtt, app_rate, read, so_rcvbuf,
                                              count, cpus, faults):
    fast, reference = _traces(tmp_path_factory.mktemp("trace"), kernel=kernel, traffic=f"tcp-bulk:ts={ts}", tcp=tcp,
                              flows=flows, rtt_ms=rtt, app_rate=app_rate, app_read_size=read, so_rcvbuf=so_rcvbuf,
                              count=count, cpus=cpus, faults=faults)
    assert fast[2] is None or fast[2].removesuffix("; rerun") in REDONE, fast[2]
    assert fast[:2] == reference[:2]
