"""--trace of a run with a socket per flow on the fast engine: the flow fields of each segment's record.

skbsim.sockets.Sockets._tcp() returns, with each segment's outcome, the trace's flow fields (flow name, sequence
number relative to the receiver's first rcv_nxt, payload, route, verdict, advertised window, sk_rmem_alloc,
sk_rcvbuf).  _tcp_deliver() writes the skb's columns of the record before the receiver takes the segment
(sock._observe(), as Simulation._deliver() takes them before queueing) and _tcp_trace() the flow's after it;
tcp_trace_rows() turns the compiled codes back into the reference's strings after the run.
"""

from __future__ import annotations

from skbsim.fast.layout import OUTCOMES, T_OUTCOME, T_SIZE, njit
from skbsim.fast.state import ERR, F_RCV_START, F_WINDOW, TR_LEN, TS_RCVBUF, TS_RMEM
from skbsim.fast.tcp import (
    DROP_REASONS, R_PROTO_MEM, V_COALESCED, V_COALESCED_FRAGS, V_COALESCED_STOLEN, V_DROPPED, V_NO_DATA,
    V_OFO_FRAGS, V_OFO_STOLEN, V_QUEUED,
)

U32 = 0xFFFFFFFF
#: the columns of a trace record after the skb's (layout.T_*): the flow, its relative sequence number, payload,
#: route (ROUTES), the receiver's verdict (V_*, a drop's reason in its high bits), window, rmem, rcvbuf
TT_FLOW, TT_SEQ, TT_PAYLOAD, TT_ROUTE, TT_VERDICT, TT_WINDOW, TT_RMEM, TT_RCVBUF, TT_END = range(T_SIZE, T_SIZE + 9)
#: tcp_v4_rcv_verdict()'s routes, by code (no "backlog": the modelled socket is never owned by its reader when
#: a segment arrives)
ROUTES = ("slow", "fast", "ofo")
ROUTE_SLOW, ROUTE_FAST, ROUTE_OFO = range(3)
#: the verdict strings of tcp_input._verdict(), by V_* code (a drop's is "dropped:REASON")
VERDICTS = {V_QUEUED: "queued", V_COALESCED: "coalesced", V_COALESCED_STOLEN: "coalesced", V_OFO_STOLEN: "coalesced",
            V_COALESCED_FRAGS: "coalesced", V_OFO_FRAGS: "coalesced", V_NO_DATA: ""}


@njit(cache=True)
def _tcp_trace(k, f, seq, payload, verdict, fast, rcv_nxt):
    """The flow fields of the record _observe() began for the segment of flow f (its sequence number seq,
    payload bytes; verdict and fast as _tcp_rcv_established() returned them; rcv_nxt before it): a segment
    off the fast path that tcp_data_queue() found beyond rcv_nxt went through tcp_data_queue_ofo(), which
    queues, coalesces or (PROTO_MEM) drops it."""
    row = k.st[TR_LEN] - 1
    if k.st[ERR] or row < 0:
        return
    code = verdict % 8
    route = ROUTE_SLOW
    if fast:
        route = ROUTE_FAST
    elif seq != rcv_nxt and code != V_NO_DATA and (code != V_DROPPED or verdict // 8 == R_PROTO_MEM):
        route = ROUTE_OFO
    fl = k.tfl.fl[f]
    sk = k.tcp.sk[f]
    record = k.trace.records[row]
    record[TT_FLOW] = f
    record[TT_SEQ] = (seq - fl[F_RCV_START]) & U32
    record[TT_PAYLOAD] = payload
    record[TT_ROUTE] = route
    record[TT_VERDICT] = verdict
    record[TT_WINDOW] = fl[F_WINDOW]
    record[TT_RMEM] = sk[TS_RMEM]
    record[TT_RCVBUF] = sk[TS_RCVBUF]


def tcp_trace_rows(rows, names, flows):
    """(time_ns, cpu, frame_len, record, outcome, flow fields) of each trace row of a TCP run (rows: lists of
    TT_END ints; names: the tun skb kinds by frame length; flows: the run's TcpFlows), as Sockets._tcp() and
    Simulation._arrive() write them: a frame tun refused has no skb and no flow fields."""
    for row in rows:
        time_ns, cpu, frame_len, length, data_len, truesize, nr_frags, kind = row[:T_SIZE - 1]
        if length < 0:
            yield time_ns, cpu, frame_len, None, OUTCOMES[row[T_OUTCOME]], ()
            continue
        path, head_source, known_data_len = names[kind]
        record = (length, data_len if known_data_len is None else known_data_len, truesize, nr_frags, path,
                  head_source)
        f, seq, payload, route, verdict, window, rmem, rcvbuf = row[T_SIZE:TT_END]
        code = verdict % 8
        said = f"dropped:{DROP_REASONS[verdict // 8]}" if code == V_DROPPED else VERDICTS[code]
        outcome = "control" if not payload else (said if code == V_DROPPED else "delivered")
        yield time_ns, cpu, frame_len, record, outcome, (flows[f].name, seq, payload, ROUTES[route], said, window,
                                                         rmem, rcvbuf)
