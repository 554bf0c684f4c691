"""The fast engine's TCP receivers from the model's: the run's constants (TcpSocks.tc) and a socket's row.

A receiver is set up by the model itself (skbsim.sockets: tcp_listen_sock(), tcp_conn_request(),
tcp_passive_establish()); :func:`tcp_consts` reads the namespace and the profile, :func:`sock_to_row` copies
the established tcp_sock into its row, and :func:`row_fields` reads a row back under the tcp_sock's names
(what tests compare).
"""

from __future__ import annotations

import numpy as np

from skbsim.fast import state
from skbsim.fast.state import TC_FIELDS, TS_FIELDS, TS_MIB
from skbsim.net.core_sock import SOCK_MIN_RCVBUF
from skbsim.net.ipv4.tcp import TCPEXT
from skbsim.net.ipv4.tcp_input import SKB_MAX_ORDER0, rcvmem_per_segment, rule_code

#: row column -> the tcp_sock attribute it holds (the columns TS_PRED, TS_COMP_TIMER, TS_RCVMEM, TS_NOW_US, the
#: queue's and the counters are set apart)
SOCK_FIELDS = {
    "TS_RCVBUF": "sk_rcvbuf", "TS_SNDBUF": "sk_sndbuf", "TS_RMEM": "sk_rmem_alloc", "TS_FWD": "sk_forward_alloc",
    "TS_USERLOCKS": "sk_userlocks", "TS_DROPS": "sk_drops", "TS_RCVLOWAT": "sk_rcvlowat",
    "TS_MEM_PAGES": "memory_allocated", "TS_SOCKET": "sk_socket",
    "TS_ACK_PENDING": "icsk_ack_pending", "TS_ACK_QUICK": "icsk_ack_quick", "TS_ACK_PINGPONG": "icsk_ack_pingpong",
    "TS_ACK_ATO": "icsk_ack_ato", "TS_ACK_TIMEOUT": "icsk_ack_timeout", "TS_ACK_LRCVTIME": "icsk_ack_lrcvtime",
    "TS_ACK_LAST_SEG": "icsk_ack_last_seg_size", "TS_ACK_RCV_MSS": "icsk_ack_rcv_mss", "TS_RTO": "icsk_rto",
    "TS_DELACK_MAX": "icsk_delack_max", "TS_DELACK_PENDING": "delack_timer_pending",
    "TS_RCV_NXT": "rcv_nxt", "TS_COPIED_SEQ": "copied_seq", "TS_RCV_WUP": "rcv_wup", "TS_RCV_WND": "rcv_wnd",
    "TS_RCV_MWND_SEQ": "rcv_mwnd_seq", "TS_RCV_SSTHRESH": "rcv_ssthresh", "TS_WINDOW_CLAMP": "window_clamp",
    "TS_ADVMSS": "advmss", "TS_MSS_CACHE": "mss_cache", "TS_HEADER_LEN": "tcp_header_len",
    "TS_SCALING_RATIO": "scaling_ratio", "TS_RCVQ_SPACE": "rcvq_space_space", "TS_RCVQ_SEQ": "rcvq_space_seq",
    "TS_RCVQ_TIME": "rcvq_space_time", "TS_RTT_US": "rcv_rtt_est_rtt_us", "TS_RTT_SEQ": "rcv_rtt_est_seq",
    "TS_RTT_TIME": "rcv_rtt_est_time", "TS_RTT_LAST_TSECR": "rcv_rtt_last_tsecr", "TS_MSTAMP": "tcp_mstamp",
    "TS_SND_WND": "snd_wnd", "TS_SND_UNA": "snd_una", "TS_SND_NXT": "snd_nxt", "TS_SRTT": "srtt_us",
    "TS_NUM_SACKS": "num_sacks", "TS_COMPRESSED_ACK": "compressed_ack", "TS_TSQ_FLAGS": "tsq_flags",
    "TS_RCV_ISN": "rcv_isn", "TS_TSTAMP_OK": "rx_opt_tstamp_ok", "TS_SACK_OK": "rx_opt_sack_ok",
    "TS_SND_WSCALE": "rx_opt_snd_wscale", "TS_RCV_WSCALE": "rx_opt_rcv_wscale",
    "TS_SAW_TSTAMP": "rx_opt_saw_tstamp", "TS_RCV_TSVAL": "rx_opt_rcv_tsval", "TS_RCV_TSECR": "rx_opt_rcv_tsecr",
    "TS_TS_RECENT": "rx_opt_ts_recent", "TS_TS_OFFSET": "ts_offset", "TS_LAST_TSVAL": "last_tsval_sent",
    "TS_COMP_RCV_NXT": "compressed_ack_rcv_nxt", "TS_DUP_ACK": "dup_ack_counter",
    "TS_COLLAPSE_COPIED": "collapse_copied",
}
COLUMNS = {getattr(state, name): attr for name, attr in SOCK_FIELDS.items()}


def tcp_consts(profile, net) -> np.ndarray:
    """TcpSocks.tc of a run: the namespace's sysctls (every receiver's are the template's) and the release's
    rules as codes."""
    tc = np.zeros(TC_FIELDS, dtype=np.int64)
    values = {
        "TC_HZ": net.HZ, "TC_RMEM2": net.sysctl_tcp_rmem[2], "TC_ADV_WIN_SCALE": net.sysctl_tcp_adv_win_scale,
        "TC_MODERATE_RCVBUF": net.sysctl_tcp_moderate_rcvbuf, "TC_LOW_RTT": net.sysctl_tcp_rcvbuf_low_rtt,
        "TC_COMP_SACK_NR": net.sysctl_tcp_comp_sack_nr,
        "TC_BACKLOG_ACK_DEFER": int(profile.has("tcp_backlog_ack_defer") and net.sysctl_tcp_backlog_ack_defer),
        "TC_OFO_MEASURE": int(profile.has("tcp_ofo_measure_rcv_mss")), "TC_PAGE_SIZE": profile.PAGE_SIZE,
        "TC_HEAD_STRUCT": profile.SKB_HEAD_STRUCT_SIZE, "TC_MAX_SKB_FRAGS": profile.MAX_SKB_FRAGS,
        "TC_MIN_RCVBUF": SOCK_MIN_RCVBUF(profile), "TC_COMP_SACK_DELAY_NS": net.sysctl_tcp_comp_sack_delay_ns,
        "TC_COMP_SACK_PCT": net.sysctl_tcp_comp_sack_rtt_percent,
        "TC_R_COMP_SACK": int(profile.feature("tcp_comp_sack_delay") == "rtt_percent"),
    }
    rules = {"TC_R_SCALING_CLAMP": "tcp_scaling_ratio_clamp", "TC_R_NOMEM": "tcp_nomem_ack",
             "TC_R_ADMIT": "tcp_rcvbuf_admission", "TC_R_SEQUENCE": "tcp_sequence_check",
             "TC_R_RTT_UPDATE": "tcp_rcv_rtt_update", "TC_R_RTT_TS": "tcp_rcv_rtt_ts",
             "TC_R_SPACE": "tcp_rcv_space_adjust",
             # -- TCP pressure --
             "TC_R_PRUNE": "tcp_prune_queue", "TC_R_PRUNE_OFO": "tcp_prune_ofo_queue"}
    values["TC_COLLAPSE_MAX"] = SKB_MAX_ORDER0(profile)  # -- TCP pressure --
    for name, feature in rules.items():
        values[name] = rule_code(feature, profile.feature(feature))
    for name, value in values.items():
        tc[getattr(state, name)] = value
    return tc


def sock_to_row(sk, row: np.ndarray) -> None:
    """An established receiver's tcp_sock (and its namespace's clock and counters) into its row."""
    if sk.sk_receive_queue or sk.out_of_order_queue or sk.sk_backlog or sk.compressed_ack_timer is not None:
        raise ValueError("the fast engine takes a receiver over before it has queued anything")
    row[:] = 0
    for col, attr in COLUMNS.items():
        row[col] = int(getattr(sk, attr))
    row[state.TS_PRED] = -1 if sk.pred_flags is None else sk.pred_flags
    row[state.TS_COMP_TIMER] = -1
    net = sk.net
    row[state.TS_NOW_US] = net.now_us
    profile = sk.kernel.profile
    row[state.TS_RCVMEM] = rcvmem_per_segment(profile.SKB_TRUESIZE(sk.advmss + profile.MAX_TCP_HEADER), sk.advmss,
                                              net.sysctl_tcp_adv_win_scale)
    for n, name in enumerate(TCPEXT):
        row[TS_MIB + n] = net.mib[name]


def row_fields(row: np.ndarray) -> dict:
    """A row under the tcp_sock's names (pred_flags None when off), its clock and its counters."""
    fields = {attr: int(row[col]) for col, attr in COLUMNS.items()}
    fields["pred_flags"] = None if row[state.TS_PRED] < 0 else int(row[state.TS_PRED])
    fields["now_us"] = int(row[state.TS_NOW_US])
    fields["receive_queue"] = int(row[state.TS_RQ_LEN])
    fields["out_of_order_queue"] = int(row[state.TS_OFO_LEN])
    fields["compressed_ack_timer"] = None if row[state.TS_COMP_TIMER] < 0 else int(row[state.TS_COMP_TIMER])
    fields.update({name: int(row[TS_MIB + n]) for n, name in enumerate(TCPEXT)})
    return fields


def sock_fields(sk) -> dict:
    """row_fields() of the model's tcp_sock."""
    fields = {attr: int(getattr(sk, attr)) for attr in COLUMNS.values()}
    fields["pred_flags"] = sk.pred_flags
    fields["now_us"] = sk.net.now_us
    fields["receive_queue"] = len(sk.sk_receive_queue)
    fields["out_of_order_queue"] = len(sk.out_of_order_queue)
    fields["compressed_ack_timer"] = sk.compressed_ack_timer
    fields.update({name: sk.net.mib[name] for name in TCPEXT})
    return fields


assert TS_FIELDS == TS_MIB + len(TCPEXT)


# -- the senders ---------------------------------------------------------------------------------------------------

#: sender row column -> the TcpSender attribute (None stands for -1 where the column allows it)
SENDER_FIELDS = {
    "SN_SND_UNA": "snd_una", "SN_SND_NXT": "snd_nxt", "SN_RIGHT_EDGE": "right_edge", "SN_WSCALE": "wscale",
    "SN_MSS": "mss", "SN_TIMESTAMPS": "timestamps", "SN_IP_ID": "ip_id", "SN_TS_BASE": "ts_base",
    "SN_WRITTEN": "written", "SN_WRITES": "writes", "SN_WRITE_START": "write_start", "SN_WRITE_WAKE": "write_wake",
    "SN_TSECR": "tsecr", "SN_PERSIST_DUE": "persist_due", "SN_BACKOFF": "backoff", "SN_RTO_DUE": "rto_due",
    "SN_RTO_EVENT": "rto_event", "SN_RTO_BACKOFF": "rto_backoff", "SN_PROBE_PENDING": "probe_pending",
    "SN_REXMIT_PENDING": "rexmit_pending", "SN_STARTED": "started", "SN_FRAMES": "frames",
    "SN_SEGMENTS": "segments", "SN_BYTES_SENT": "bytes_sent", "SN_RETRANSMITS": "retransmits",
    "SN_WINDOW_PROBES": "window_probes", "SN_ZW_PROBES": "zero_window_probes",
}
SENDER_COLUMNS = {getattr(state, name): attr for name, attr in SENDER_FIELDS.items()}
#: the link's columns -> TcpSenders' attributes
LINK_FIELDS = {"LK_FRAMES_LEFT": "frames_left", "LK_LINK_FREE": "link_free", "LK_SLOT_PENDING": "slot_pending",
               "LK_NEXT_TURN": "next_turn", "LK_STOPPED": "stopped", "LK_STOPPED_AT": "stopped_at"}


def unsupported_senders(senders, duration_ns: int) -> str | None:
    """Why the compiled senders cannot follow these (None when they can)."""
    from skbsim.tcp_sender import TCP_RTO_MAX_NS

    if senders.spec.tso > 1:
        return "TSO/GSO frames from the synthetic senders (--tcp ...,tso=N) are the reference engine's"
    if senders.poisson is not None:
        return "a Poisson link (--arrival poisson) for the TCP senders is the reference engine's"
    if senders.period_units > 1 << 40 or senders.link_unit * (duration_ns + 4 * TCP_RTO_MAX_NS) >= 1 << 62:
        return "the link's period (1e9 / --rate ns) does not fit the fast engine's integers"
    return None


def senders_to_record(senders, flight: int, pushes: int, frames: int):
    """The reference TcpSenders (before any call) as a TcpSenders record."""
    link = np.zeros(state.LK_FIELDS, dtype=np.int64)
    spec = senders.spec
    values = {"LK_FLOWS": len(senders.senders), "LK_FRAMES_LEFT": senders.frames_left,
              "LK_PERIOD_UNITS": senders.period_units, "LK_LINK_UNIT": senders.link_unit,
              "LK_LINK_FREE": senders.link_free, "LK_WRITE_PERIOD": senders.write_period,
              "LK_RTO_NS": senders.rto_ns, "LK_MESSAGES": int(spec.kind == "messages"), "LK_SIZE": spec.size or 1}
    for name, value in values.items():
        link[getattr(state, name)] = value
    record = state.new_tcp_senders(link, len(senders.senders), flight, pushes, frames)
    for f, sender in enumerate(senders.senders):
        row = record.snd[f]
        for col, attr in SENDER_COLUMNS.items():
            value = getattr(sender, attr)
            row[col] = -1 if value is None else int(value)
        row[state.SN_HEADER_LEN] = sender.template.header_len
    return record


def sender_fields(sender) -> dict:
    """A TcpSender's fields under SENDER_FIELDS' names, None as -1, with its in-flight count."""
    fields = {attr: (-1 if getattr(sender, attr) is None else int(getattr(sender, attr)))
              for attr in SENDER_COLUMNS.values()}
    fields["in_flight"] = len(sender.in_flight)
    return fields


def row_sender_fields(row: np.ndarray) -> dict:
    fields = {attr: int(row[col]) for col, attr in SENDER_COLUMNS.items()}
    fields["in_flight"] = int(row[state.SN_FL_LEN])
    return fields


def link_fields(senders) -> dict:
    return {attr: int(getattr(senders, attr)) for attr in LINK_FIELDS.values()}


def row_link_fields(link: np.ndarray) -> dict:
    return {attr: int(link[getattr(state, name)]) for name, attr in LINK_FIELDS.items()}
