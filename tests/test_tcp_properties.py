"""Properties of the TCP model over random scenarios (hypothesis): every kernel, tun and ntb, random
SO_RCVBUF, SYN options, congestion control and steps.

- the leak check is clean after every scenario (play() raises otherwise);
- memory is conserved at every record: sk_rmem_alloc is the truesize of what the receive and
  out-of-order queues hold, sk_backlog.len that of the backlog, and the pages charged to the protocol
  are exactly sk_forward_alloc + sk_rmem_alloc;
- the offered window never shrinks: the right edge (ACK number + window << wscale) of each ACK is at
  least the highest one before, except for the zero windows of an out-of-memory drop (6.8+ sends one,
  6.14+ stores it);
- one record per segment, per read (readeach's included) and per other step.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.tcp_session import TcpSession
from skbsim.tcp_steps import Step, SynOptions

U32 = 0xFFFFFFFF


@st.composite
def scenarios(draw):
    driver = draw(st.sampled_from(["tun", "ntb"]))
    options = {}
    if driver == "tun":
        options["write"] = draw(st.sampled_from(["block", "nonblock"]))
        options["napi"] = draw(st.sampled_from(["0", "1"]))
    else:
        options["copybreak"] = str(draw(st.sampled_from([0, 256, 3646])))
    max_frame = 65524 if driver == "ntb" else 200_000
    steps = []
    held = False
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["send", "send", "send", "read", "readeach", "hold", "wait"]))
        if kind == "send":
            payload = draw(st.integers(1, 3000))
            frame = draw(st.one_of(st.none(), st.integers(payload + 66, max_frame)))
            steps.append(Step("send", payload=payload, count=draw(st.integers(1, 25)), frame_len=frame))
        elif kind == "read" and not held:
            steps.append(Step("read", nbytes=draw(st.one_of(st.none(), st.integers(1, 20000)))))
        elif kind == "hold":
            steps.append(Step("release" if held else "hold"))
            held = not held
        elif kind == "wait":
            steps.append(Step("wait", ms=draw(st.one_of(st.none(), st.integers(0, 300)))))
        elif kind == "readeach":
            steps.append(Step("readeach"))
    if held:
        steps.append(Step("release"))
    return {
        "kernel": draw(st.sampled_from(["6.1", "6.9", "6.12", "6.18"])),
        "driver": driver,
        "options": options,
        "steps": steps,
        "so_rcvbuf": draw(st.one_of(st.none(), st.integers(1152, 65536))),
        "cc": draw(st.sampled_from(["cubic", "bbr"])),
        "syn": SynOptions(mss=draw(st.sampled_from([536, 1460, 9000])), wscale=draw(st.sampled_from([None, 0, 7, 14])),
                          ts=draw(st.booleans()), sack=draw(st.booleans())),
    }


class CheckedSession(TcpSession):
    """A session that checks the socket's accounting each time a record's figures are taken."""

    def close(self) -> None:
        if self.open is not None:
            sk = self.sk
            queued = sum(skb.truesize for skb in sk.sk_receive_queue) + sum(
                skb.truesize for skb in sk.out_of_order_queue)
            assert sk.sk_rmem_alloc == queued
            assert sk.sk_backlog_len == sum(skb.truesize for skb in sk.sk_backlog)
            assert sk.memory_allocated * sk.page_size == sk.sk_forward_alloc + sk.sk_rmem_alloc
            assert all(skb.sk is sk for skb in sk.sk_receive_queue)
        super().close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_tcp_scenarios(scenario):
    session = CheckedSession(scenario["kernel"], scenario["driver"], scenario["options"],
                             so_rcvbuf=scenario["so_rcvbuf"], cc=scenario["cc"], syn=scenario["syn"], step_ms=250,
                             explain=False, kernel_config=None, segment_us=1000)
    try:
        synack = session.open_connection()
        for step in scenario["steps"]:
            if step.action == "send":
                session.check_frame(step)
        session.play_steps(scenario["steps"])
    finally:
        session.teardown()  # the leak check: AssertionError if anything is left
    records = session.records
    expected = sum(step.count if step.action == "send" else 1 for step in scenario["steps"])
    reads = sum(1 for r in records if r["action"] == "read")
    explicit_reads = sum(1 for step in scenario["steps"] if step.action == "read")
    assert len(records) == expected + reads - explicit_reads

    wscale = synack["wscale"] or 0
    highest = None
    for record in records:
        nomem = record["verdict"] == "dropped:PROTO_MEM"
        for ack, window in record["acks"]:
            assert 0 <= window <= 0xFFFF
            edge = ack + (window << wscale)
            if highest is not None and not (nomem and window == 0):
                assert edge >= highest, (record["i"], ack, window, highest)
            highest = edge if highest is None else max(highest, edge)
        if nomem:
            highest = None
