"""--socket tcp through NAPI drivers on both engines: the fast engine's TCP receivers joined to the skbs ice
(rx=build_skb, rx=legacy) and copybreak hand up, through GRO or with --opt gro=0 (skbsim/fast/tcp_napi.py); the
page_pool drivers' (ice's page_pool form, libeth, mana): test_fast_tcp_page_pool.py.

The reference engine's JSON is the truth: every run here must give the same JSON on the fast engine, which must
not have handed it over (except where a test says what is still the reference engine's).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skbsim.fast import unsupported
from skbsim.fast.tcp import TCP_OFO, TCP_WHY
from skbsim.sim import RunConfig
from tcp_engines import RANDOM_WORKLOAD, TCP_RUN, run_both
from tcp_engines import same as _same

KERNELS = ["6.1", "6.9", "6.12", "6.18", "host"]
#: the driver forms of the join, GRO on and off
FORMS = [("ice", {"rx": "build_skb"}), ("ice", {"rx": "legacy"}), ("copybreak", {}),
         ("ice", {"rx": "build_skb", "gro": "0"}), ("ice", {"rx": "legacy", "gro": "0"}), ("copybreak", {"gro": "0"})]
FORM_IDS = ["ice-build_skb", "ice-legacy", "copybreak", "ice-build_skb-gro0", "ice-legacy-gro0", "copybreak-gro0"]


def _config(**kw) -> dict:
    return {**TCP_RUN, "driver": "ice", **kw}


def _both(**kw) -> tuple[dict, dict, str | None]:
    return run_both(_config(**kw))


#: the bulk flow runs through virtio_net too (its other tests: test_fast_tcp_virtio.py)
BULK_FORMS = FORMS + [("virtio_net", {}), ("virtio_net", {"gro": "0"})]
BULK_FORM_IDS = FORM_IDS + ["virtio_net", "virtio_net-gro0"]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("form", BULK_FORMS, ids=BULK_FORM_IDS)
@pytest.mark.parametrize("ts", [0, 1])
def test_bulk_flow(kernel, form, ts):
    driver, options = form
    reference, fast, why = _both(kernel=kernel, driver=driver, options=options, traffic=f"tcp-bulk:ts={ts}",
                                 count=1500)
    assert why is None and fast["engine"] == "fast" and _same(reference, fast)
    # every segment of MSS bytes reached the receiver in order (MSS 1460, or 1448 with the timestamp option)
    mss = 1448 if ts else 1460
    assert reference["tcp"]["bytes_received"] == 1500 * mss == reference["flows"][0]["sender"]["bytes"]
    flow = reference["flows"][0]
    assert flow["segments"] == 1500
    if options.get("gro") != "0":
        # GRO merged segments: fewer skbs reached the receiver than segments
        assert flow["skbs"] < flow["segments"] and reference["gro"]["aggregates"] > 0
    else:
        assert flow["skbs"] == 1500 and "gro" not in reference


WORKLOADS = {
    # 16 flows on 3 CPUs, timestamps, a reader of 64 KiB at 20,000 reads/s
    "flows-cpus": dict(flows=16, cpus=3, traffic="tcp-bulk:ts=1", count=3000, app_rate=20000, app_read_size=65536),
    # small messages at a rate: short skbs copied (copybreak), tailroom coalescing, PSH flushing GRO
    "messages": dict(tcp="messages:100@50000", count=2000, rtt_ms=0.5),
    # a reader that never reads: the window closes, zero-window probes (frames of 54 bytes: ice pads them)
    "zero-window": dict(count=2000, app_rate=0, duration_ms=2000.0),
    # a failing slab: frames the driver drops, the out-of-order queue, SACKs, the sender's retransmissions
    "faults": dict(count=2000, flows=2, cpus=2, traffic="tcp-bulk:ts=1", faults=(("slab", 0.02, 1, -1, 0),)),
    # skb heads refused now and then, with a slow reader and a long RTT
    "head-faults": dict(count=1500, rtt_ms=20.0, app_rate=1000, faults=(("skb_head", 0.01, 1, -1, 100),)),
}


@pytest.mark.parametrize("kernel", ["6.1", "6.12", "6.18"])
@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_workloads(kernel, form, workload):
    driver, options = form
    reference, fast, why = _both(kernel=kernel, driver=driver, options=options, **WORKLOADS[workload])
    assert why is None, why
    assert _same(reference, fast)


def test_workloads_reach_their_corners():
    # the fault workload puts segments on the out-of-order queue, and legacy-rx's skbs, headers only in the
    # head, are coalesced by moving their frags (skb_try_coalesce() without linear data)
    reference, fast, why = _both(kernel="6.18", driver="ice", options={"rx": "legacy"}, **WORKLOADS["faults"])
    assert why is None and _same(reference, fast)
    counters = reference["tcp"]["counters"]
    assert counters["TCPOFOQueue"] > 0 and counters["TCPRcvCoalesce"] > 0
    assert sum(flow["sender"]["retransmits"] for flow in reference["flows"]) > 0
    reference, fast, why = _both(kernel="6.12", driver="ice", **WORKLOADS["zero-window"])
    assert why is None and _same(reference, fast)
    assert reference["flows"][0]["sender"]["zero_window_probes"] > 0


@settings(max_examples=30, deadline=None)
@given(kernel=st.sampled_from(KERNELS), form=st.sampled_from(FORMS), **RANDOM_WORKLOAD)
def test_random_workloads(kernel, form, ts, tcp, flows, rtt, app_rate, read, so_rcvbuf, count, rate, cpus, faults):
    driver, options = form
    reference, fast, why = _both(kernel=kernel, driver=driver, options=options, traffic=f"tcp-bulk:ts={ts}", tcp=tcp,
                                 flows=flows, rtt_ms=rtt, app_rate=app_rate, app_read_size=read, so_rcvbuf=so_rcvbuf,
                                 count=count, rate=rate, cpus=cpus, faults=faults)
    assert why is None or why.removesuffix("; rerun") == TCP_WHY[TCP_OFO], why
    assert _same(reference, fast)


@pytest.mark.parametrize("driver,options,words", [
    ("mlx5", {"gro": "0"}, "--socket tcp through mlx5 is the reference engine's"),
    ("gve", {"gro": "0"}, "--socket tcp through gve is the reference engine's"),
])
def test_other_drivers_say_why(driver, options, words):
    reason = unsupported(RunConfig(**_config(driver=driver, options=options, count=10)))
    assert reason is not None and reason.startswith(words) and "\n" not in reason

