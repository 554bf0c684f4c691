"""The fast engine's compiled TCP receiver (skbsim/fast/tcp.py) against the model's, step by step.

A reference run of ``skbsim run --socket tcp`` is recorded at the receivers' doors: every segment as
tcp_v4_rcv() gets it (its skb's lengths, truesize, frags, tailroom, head and TCP_SKB_CB), every read and
every timer, with the receiver's tcp_sock after each and the ACKs it sent.  The same steps are then played on
the compiled receiver, whose row must equal the model's tcp_sock after every step (each field, the TcpExt
counters), with the same verdicts, bytes read, skbs eaten and ACKs (number, window, TSval).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skbsim.sockets as sockets_module
from skbsim.fast.state import (
    CB_ACK_SEQ, CB_DOFF, CB_END_SEQ, CB_FIELDS, CB_FLOW, CB_GSO_SIZE, CB_SEQ, CB_TCP_FLAGS, CB_TSECR, CB_TSVAL,
    CB_WINDOW, RQ_NR_FRAGS, RQ_TAILROOM, SKB_DLEN, SKB_HLEN, SKB_OBJ, SKB_TS, TC_ERR, TS_FIELDS, new_tcp_socks,
)
from skbsim.fast.tcp import (
    DROP_REASONS, TCP_OFO, TCP_PRUNE, TCP_WHY, SG_END_TS, SG_FIELDS, SG_HEAD_FRAG, STEP_READ, STEP_SEG, STEP_TIMER, V_COALESCED,
    V_COALESCED_FRAGS, V_COALESCED_STOLEN, V_DROPPED, V_NO_DATA, V_QUEUED, _tcp_replay,
)
from skbsim.fast.tcp_setup import (
    link_fields, row_fields, row_link_fields, row_sender_fields, sender_fields, sock_fields, sock_to_row, tcp_consts,
)
from skbsim.net.skbuff import skb_headlen, skb_tailroom
from skbsim.sim import RunConfig, simulate
from tcp_engines import TCP_RUN, run_both
from tcp_engines import same as _same

VERDICTS = {V_QUEUED: "queued", V_COALESCED: "coalesced", V_COALESCED_STOLEN: "coalesced", V_COALESCED_FRAGS: "coalesced",
            V_NO_DATA: ""}


class Recorder:
    """The steps of a reference run at its TCP receivers (see the module's docstring)."""

    def __init__(self, monkeypatch):
        self.flows: list = []  # tcp_sock of each receiver, in establish order
        self.initial: list = []  # its row as established
        self.steps: list = []  # (kind, flow, now_us, arg, expected fields, expected result, acks)
        self.segs: list = []
        self.cbs: list = []
        rcv, recvmsg, timers, establish = (sockets_module.tcp_v4_rcv_verdict, sockets_module.tcp_recvmsg,
                                           sockets_module.run_timers, sockets_module.Sockets.establish)
        recorder = self

        def establish_recorded(self_, flow, now_ns, ack_window):
            establish(self_, flow, now_ns, ack_window)
            row = np.zeros(TS_FIELDS, dtype=np.int64)
            sock_to_row(flow.sk, row)
            recorder.flows.append(flow.sk)
            recorder.initial.append(row)

        def rcv_recorded(sk, skb):
            seg = recorder.segment(sk, skb)
            acks = len(sk.acks)
            route, verdict = rcv(sk, skb)
            recorder.step(STEP_SEG, sk, seg, (route, verdict), acks)
            return route, verdict

        def recvmsg_recorded(sk, size):
            acks = len(sk.acks)
            copied = recvmsg(sk, size)
            recorder.step(STEP_READ, sk, -1 if size is None else size, copied, acks)
            return copied

        def timers_recorded(sk):
            acks = len(sk.acks)
            timers(sk)
            recorder.step(STEP_TIMER, sk, 0, None, acks)

        monkeypatch.setattr(sockets_module, "tcp_v4_rcv_verdict", rcv_recorded)
        monkeypatch.setattr(sockets_module, "tcp_recvmsg", recvmsg_recorded)
        monkeypatch.setattr(sockets_module, "run_timers", timers_recorded)
        monkeypatch.setattr(sockets_module.Sockets, "establish", establish_recorded)

    def segment(self, sk, skb) -> int:
        """The row of the segment as tcp_v4_rcv() gets it, and its TCP_SKB_CB; returns its index."""
        cb = skb.cb
        row = np.zeros(SG_FIELDS, dtype=np.int64)
        row[SKB_HLEN] = skb_headlen(skb)
        row[SKB_DLEN] = skb.data_len
        row[SKB_TS] = skb.truesize
        row[SKB_OBJ] = len(self.cbs)
        row[RQ_NR_FRAGS] = len(skb.shinfo.frags)
        row[RQ_TAILROOM] = skb_tailroom(skb)
        row[SG_HEAD_FRAG] = int(skb.head_frag)
        row[SG_END_TS] = sk.kernel.profile.SKB_TRUESIZE(skb.end)
        fields = np.zeros(CB_FIELDS, dtype=np.int64)
        fields[CB_FLOW] = self.flows.index(sk)
        for col, value in ((CB_SEQ, cb.seq), (CB_END_SEQ, cb.end_seq), (CB_ACK_SEQ, cb.ack_seq),
                           (CB_TCP_FLAGS, cb.tcp_flags), (CB_DOFF, cb.doff), (CB_WINDOW, cb.window),
                           (CB_TSVAL, -1 if cb.tsval is None else cb.tsval), (CB_TSECR, cb.tsecr or 0),
                           (CB_GSO_SIZE, skb.shinfo.gso_size)):
            fields[col] = value
        self.cbs.append(fields)
        self.segs.append(row)
        return len(self.segs) - 1

    def step(self, kind: int, sk, arg: int, result, acks_before: int) -> None:
        self.steps.append((kind, self.flows.index(sk), sk.net.now_us, arg, sock_fields(sk), result,
                           list(sk.acks[acks_before:])))


def replay(recorder: Recorder, profile, net) -> list[str]:
    """The recorded steps on the compiled receiver: what differs (empty when nothing)."""
    n = len(recorder.steps)
    t = new_tcp_socks(tcp_consts(profile, net), len(recorder.flows), 4096, 4 * n + 16)
    for f, row in enumerate(recorder.initial):
        t.sk[f] = row
    steps = np.array([s[:4] for s in recorder.steps], dtype=np.int64).reshape(n, 4)
    segs = np.array(recorder.segs, dtype=np.int64).reshape(len(recorder.segs), SG_FIELDS)
    cbs = np.array(recorder.cbs, dtype=np.int64).reshape(max(1, len(recorder.cbs)), CB_FIELDS)
    out = np.zeros((n, 4), dtype=np.int64)
    snap = np.zeros((n, TS_FIELDS), dtype=np.int64)
    done = _tcp_replay(t, cbs, steps, segs, out, snap)
    problems = []
    acks_seen = 0
    for i in range(done):
        kind, f, now_us, arg, expected, result, acks = recorder.steps[i]
        got = row_fields(snap[i])
        diff = {key: (value, got[key]) for key, value in expected.items() if got[key] != value}
        if diff:
            problems.append(f"step {i} ({kind}, flow {f}, {now_us} us): model != fast {diff}")
        verdict = int(out[i, 0])
        if kind == STEP_SEG:
            name = VERDICTS.get(verdict, f"dropped:{DROP_REASONS[verdict // 8]}" if verdict % 8 == V_DROPPED else "?")
            if name != result[1] or (result[0] == "fast") != bool(out[i, 1]):
                problems.append(f"step {i}: verdict {result} != {name}, fast {bool(out[i, 1])}")
        elif kind == STEP_READ and int(out[i, 1]) != result:
            problems.append(f"step {i}: read {result} != {int(out[i, 1])}")
        got_acks = [(int(a[1]), int(a[2]), None if a[3] < 0 else int(a[3])) for a in t.acks[acks_seen:out[i, 2]]]
        acks_seen = int(out[i, 2])
        if got_acks != acks:
            problems.append(f"step {i}: ACKs {acks} != {got_acks}")
        if len(problems) > 5:
            break
    if done < n and not problems:
        problems.append(f"unmodelled at step {done} of {n} (tc[TC_ERR] = {t.tc[TC_ERR]})")
    return problems


def record(monkeypatch, **kw) -> tuple[Recorder, dict]:
    from skbsim.net.ipv4.tcp_ipv4 import net_ns
    from skbsim.profile import load_profile

    with monkeypatch.context() as patch:
        recorder = Recorder(patch)
        result, _ = simulate(RunConfig(socket="tcp", options=kw.pop("options", {}), **kw))
    profile = load_profile(kw.get("kernel", "6.18"))
    return recorder, result, profile, net_ns(profile)


@pytest.mark.parametrize("kernel", ["6.1", "6.9", "6.12", "6.18"])
@pytest.mark.parametrize("traffic", ["tcp-bulk:ts=0", "tcp-bulk:ts=1"])
def test_bulk_into_tun_step_by_step(monkeypatch, kernel, traffic):
    # tun without IFF_NAPI (no GRO): every segment is one skb, coalesced into the queue's tail
    recorder, result, profile, net = record(monkeypatch, kernel=kernel, driver="tun", traffic=traffic, tcp="bulk",
                                            flows=1, count=3000)
    assert recorder.steps and result["tcp"]["bytes_received"] > 0
    assert replay(recorder, profile, net) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kernel=st.sampled_from(["6.1", "6.9", "6.12", "6.18", "host"]),
       ts=st.sampled_from([0, 1]), flows=st.integers(1, 3), rtt=st.sampled_from([0.05, 0.5, 2.0, 20.0]),
       app_rate=st.sampled_from([None, 1000, 20000, 200000]), read=st.sampled_from([None, 1000, 65536]),
       tcp=st.sampled_from(["bulk", "messages:3000", "messages:20000@2000", "messages:100@50000"]),
       so_rcvbuf=st.sampled_from([None, 8192, 65536, 1 << 20]), count=st.integers(50, 1500))
def test_random_workloads_step_by_step(monkeypatch, kernel, ts, flows, rtt, app_rate, read, tcp, so_rcvbuf, count):
    recorder, _, profile, net = record(
        monkeypatch, kernel=kernel, driver="tun", traffic=f"tcp-bulk:ts={ts}", tcp=tcp, flows=flows, rtt_ms=rtt,
        app_rate=app_rate, app_read_size=read, so_rcvbuf=so_rcvbuf, count=count)
    problems = replay(recorder, profile, net)
    # a replay has no kernel to collapse into (memory pressure is compared on whole runs): it stops there
    assert not problems or problems[0].startswith("unmodelled"), problems


# -- the senders -----------------------------------------------------------------------------------------------------

ACTIONS = {"send": 0, "persist": 1, "rto": 2, "write": 3}


class SenderRecorder:
    """Every call the run makes on its TcpSenders, with the senders and the link after it, the callbacks it asked
    for and the frame a slot sent (length, sequence, flags, IP ID)."""

    def __init__(self, monkeypatch):
        from skbsim.sim import Simulation
        from skbsim.tcp_sender import TcpSenders

        self.senders = None
        self.record = None
        self.calls: list = []
        self.pushes: list = []
        self.active = False
        recorder = self
        push = Simulation._push_sender

        def push_recorded(self_, time_ns, action, who):
            if recorder.active:
                flow = -1 if who is None else recorder.senders.senders.index(who)
                recorder.pushes.append((time_ns, ACTIONS[action], flow))
            push(self_, time_ns, action, who)

        monkeypatch.setattr(Simulation, "_push_sender", push_recorded)

        def wrap(name, kind, args_of):
            original = getattr(TcpSenders, name)

            def recorded(self_, *args):
                if recorder.senders is None:
                    from skbsim.fast.tcp_setup import senders_to_record

                    recorder.senders = self_
                    recorder.record = senders_to_record(self_, 65536, 1 << 20, 1 << 20)
                recorder.active = True
                result = original(self_, *args)
                recorder.active = False
                call = args_of(self_, *args)
                frame = None
                if result is not None and name == "slot":
                    h = result.header
                    frame = (result.length, int.from_bytes(h[38:42], "big"), h[47], int.from_bytes(h[18:20], "big"))
                recorder.calls.append(((kind,) + call, frame, [sender_fields(s) for s in self_.senders],
                                       link_fields(self_), len(recorder.pushes)))
                return result

            monkeypatch.setattr(TcpSenders, name, recorded)

        index = lambda senders, sender: senders.senders.index(sender)  # noqa: E731
        wrap("start", 0, lambda s, sender, now, edge, wscale: (now, index(s, sender), edge, wscale, 0))
        wrap("write", 1, lambda s, sender, now: (now, index(s, sender), 0, 0, 0))
        wrap("ack", 2, lambda s, sender, now, ack, window, tsval: (now, index(s, sender), ack, window,
                                                                    -1 if tsval is None else tsval))
        wrap("timer", 3, lambda s, action, sender, now: (now, index(s, sender), ACTIONS[action], 0, 0))
        wrap("stop", 4, lambda s, now: (now, 0, 0, 0, 0))
        wrap("slot", 5, lambda s, now: (now, 0, 0, 0, 0))


def sender_replay(recorder: SenderRecorder) -> list[str]:
    from skbsim.fast.state import FR_FLAGS, FR_IP_ID, FR_LEN, FR_SEQ, LK_ERR
    from skbsim.fast.tcp_sender import _sender_replay

    s = recorder.record
    n = len(recorder.calls)
    calls = np.array([c[0] for c in recorder.calls], dtype=np.int64).reshape(n, 6)
    out = np.zeros(n, dtype=np.int64)
    snd_snap = np.zeros((n,) + s.snd.shape, dtype=np.int64)
    link_snap = np.zeros((n, s.link.shape[0]), dtype=np.int64)
    done = _sender_replay(s, calls, out, snd_snap, link_snap)
    problems = []
    frames = 0
    for i in range(done):
        call, frame, senders, link, pushes = recorder.calls[i]
        got = [row_sender_fields(row) for row in snd_snap[i]]
        if got != senders:
            diff = [{k: (v, g[k]) for k, v in e.items() if g[k] != v} for e, g in zip(senders, got)]
            problems.append(f"call {i} {call}: senders model != fast {diff}")
        if row_link_fields(link_snap[i]) != link:
            problems.append(f"call {i} {call}: link {link} != {row_link_fields(link_snap[i])}")
        if frame is not None:
            fr = s.frames[frames]
            frames += 1
            if (int(fr[FR_LEN]), int(fr[FR_SEQ]), int(fr[FR_FLAGS]), int(fr[FR_IP_ID])) != frame:
                problems.append(f"call {i}: frame {frame} != {fr.tolist()}")
        if len(problems) > 5:
            break
    got_pushes = [tuple(int(x) for x in p) for p in s.pushes[:recorder.calls[done - 1][4]]] if done else []
    if not problems and got_pushes != recorder.pushes[:len(got_pushes)]:
        problems.append("callbacks differ")
    if done < n and not problems:
        problems.append(f"unmodelled at call {done} of {n} (err {s.link[LK_ERR]})")
    return problems


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kernel=st.sampled_from(["6.1", "6.12", "6.18"]), ts=st.sampled_from([0, 1]), flows=st.integers(1, 3),
       rtt=st.sampled_from([0.05, 0.5, 2.0, 20.0]), app_rate=st.sampled_from([None, 0, 1000, 200000]),
       tcp=st.sampled_from(["bulk", "messages:3000", "messages:20000@2000", "messages:100@50000"]),
       so_rcvbuf=st.sampled_from([None, 8192, 1 << 20]), count=st.integers(50, 1500),
       rate=st.sampled_from([1e6, 3e5, 123457.0]))
def test_senders_call_by_call(monkeypatch, kernel, ts, flows, rtt, app_rate, tcp, so_rcvbuf, count, rate):
    with monkeypatch.context() as patch:
        recorder = SenderRecorder(patch)
        simulate(RunConfig(kernel=kernel, driver="tun", options={}, socket="tcp", traffic=f"tcp-bulk:ts={ts}", tcp=tcp,
                           flows=flows, rtt_ms=rtt, app_rate=app_rate, so_rcvbuf=so_rcvbuf, count=count, rate=rate,
                           duration_ms=3000.0))
    assert sender_replay(recorder) == []


# -- whole runs: both engines, the same JSON -------------------------------------------------------------------------


def _both(**kw) -> tuple[dict, dict, str | None]:
    return run_both({**TCP_RUN, "driver": "tun", **kw})


@pytest.mark.parametrize("kernel", ["6.1", "6.9", "6.12", "6.18", "host"])
def test_bench_workload_on_both_engines(kernel):
    # benchmarks/bench_tcp.py's workload: one bulk flow without timestamps through tun (no IFF_NAPI)
    reference, fast, why = _both(kernel=kernel, count=2000)
    assert why is None and fast["engine"] == "fast" and _same(reference, fast)
    # every segment reached the receiver and was read (hand check: 2000 segments of MSS 1460)
    assert reference["tcp"]["bytes_received"] == 2000 * 1460 == reference["flows"][0]["sender"]["bytes"]


def test_zero_window_probes_and_a_reader_that_never_reads():
    # --app-rate 0: the window closes (no pruning with the default buffer: the sender stops at the edge),
    # the sender's persist timer sends zero-window probes, answered by duplicate ACKs
    reference, fast, why = _both(kernel="6.12", count=2000, app_rate=0, duration_ms=2000.0)
    assert why is None and _same(reference, fast)
    assert reference["flows"][0]["sender"]["zero_window_probes"] > 0 and reference["tcp"]["zero_window_ms"] > 0


def test_memory_pressure_runs_on_the_fast_engine():
    # SO_RCVBUF 4096 with a reader at 1000 reads/s: tcp_prune_queue() (skbsim/fast/tcp_pressure.py; more in
    # tests/test_fast_tcp_pressure.py)
    reference, fast, why = _both(kernel="6.18", count=400, so_rcvbuf=4096, app_rate=1000, tcp="messages:100@50000")
    assert why is None and fast["engine"] == "fast" and _same(reference, fast)
    assert reference["flows"][0]["counters"]["PruneCalled"] > 0


@settings(max_examples=40, deadline=None)
@given(kernel=st.sampled_from(["6.1", "6.9", "6.12", "6.18", "host"]), ts=st.sampled_from([0, 1]),
       tcp=st.sampled_from(["bulk", "messages:3000", "messages:20000@2000", "messages:100@50000", "messages:1460"]),
       flows=st.sampled_from([1, 2, 3, 16]), rtt=st.sampled_from([0.05, 0.5, 1.0, 20.0]),
       app_rate=st.sampled_from([None, 0, 1000, 20000, 200000]), read=st.sampled_from([None, 1000, 65536]),
       so_rcvbuf=st.sampled_from([None, 8192, 65536, 1 << 20]), count=st.integers(1, 1200),
       rate=st.sampled_from([1e5, 1e6, 3e6, 1234567.0]), cpus=st.integers(1, 2),
       cost=st.sampled_from([0, 100, 500]), duration=st.sampled_from([100.0, 1000.0, 60_000.0]),
       faults=st.sampled_from([(), (), (("slab", 0.02, 1, -1, 0),), (("page_frag", 0.3, 2, 3, 10),),
                               (("skb_head", 0.001, 1, -1, 100), ("page_alloc", 1.0, 5, 1, 0))]))
def test_random_tcp_workloads_give_identical_json(kernel, ts, tcp, flows, rtt, app_rate, read, so_rcvbuf, count, rate,
                                                  cpus, cost, duration, faults):
    reference, fast, why = _both(kernel=kernel, traffic=f"tcp-bulk:ts={ts}", tcp=tcp, flows=flows, rtt_ms=rtt,
                                 app_rate=app_rate, app_read_size=read, so_rcvbuf=so_rcvbuf, count=count, rate=rate,
                                 cpus=cpus, packet_cost_ns=cost, duration_ms=duration, faults=faults)
    # what is not compiled yet: the out-of-order queue's corners (a write a fault refused)
    assert why is None or why.removesuffix("; rerun") == TCP_WHY[TCP_OFO], why
    assert _same(reference, fast)


@pytest.mark.parametrize("kernel", ["6.1", "6.12", "6.18"])
@pytest.mark.parametrize("tcp", ["bulk", "messages:100@50000"])
def test_out_of_order_segments_step_by_step(monkeypatch, kernel, tcp):
    # a failing slab refuses some tun writes: the segments after a refused one reach the out-of-order queue
    # (SACK blocks, compressed ACKs and their timer), until the sender's RTO retransmits the hole
    recorder, result, profile, net = record(monkeypatch, kernel=kernel, driver="tun", traffic="tcp-bulk:ts=1",
                                            tcp=tcp, flows=1, count=600, faults=(("slab", 0.03, 1, -1, 0),))
    assert result["flows"][0]["counters"]["TCPOFOQueue"] > 0
    problems = replay(recorder, profile, net)
    # (a run that then comes under memory pressure is compared up to there)
    assert problems == [] or (len(problems) == 1 and problems[0].endswith(f"(tc[TC_ERR] = {TCP_PRUNE})")), problems
