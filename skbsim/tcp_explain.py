"""Words for the TCP model's events: what ``skbsim tcp --explain`` prints.

The model records ``(name, numbers)`` when a rule decides a figure (see
skbsim.net.ipv4.tcp.tcp_event); :func:`explain_lines` turns a list of
them into sentences with the numbers.  An event without a template is
shown by name with its numbers, so nothing recorded is lost.
"""

from __future__ import annotations

_SELECT_WINDOW_RULES = {
    0: "free space {free_space} (sk_rcvbuf {rcvbuf} - rmem {rmem} - backlog {backlog}, as window), at most "
       "rcv_ssthresh {rcv_ssthresh}, rounded up to 2^{wscale}: window {window}",
    1: "no window scaling: the window stays {window} or is rounded down to the MSS {mss} of free space {free_space}",
    2: "free space {free_space} < half of min(window_clamp {window_clamp}, full space {allowed}) and below "
       "{allowed}/16 or one MSS ({mss}): zero window",
    3: "the full space is below one byte: zero window",
}

TEMPLATES = {
    "so_rcvbuf": "SO_RCVBUF {val}: min(val, rmem_max {rmem_max}) doubled: sk_rcvbuf {rcvbuf}, locked",
    "select_initial_window": "tcp_select_initial_window: full space {full_space}, MSS {mss}: rcv_wnd {rcv_wnd}, "
                             "window_clamp {window_clamp}, wscale {rcv_wscale} (from max(space, tcp_rmem[2] {rmem2}, "
                             "rmem_max {rmem_max}); 64 KiB cap on the initial window: {u16_cap})",
    "init_buffer_space": "tcp_init_buffer_space: full space {maxwin}, clamp {old_clamp} -> {window_clamp} (one advmss "
                         "{advmss} reserved), rcv_ssthresh {rcv_ssthresh}, rcv_space {rcv_space}",
    "sndbuf_expand": "tcp_sndbuf_expand ({cc}, factor {factor}): sndmem {sndmem}, sk_sndbuf {sndbuf}",
    "established": "established: advmss {advmss}, mss_cache {mss_cache}, rcv_mss {rcv_mss}, rcv_wnd {rcv_wnd}, "
                   "window_clamp {window_clamp}, rcv_space {rcv_space}, srtt {srtt_us}/8 us, rto {rto} jiffies, "
                   "sk_sndbuf {sndbuf}",
    "fast_path": "header prediction: in order and truesize {truesize} <= sk_forward_alloc {fwd_alloc}: queued on "
                 "the fast path",
    "fast_path_no_fwd_alloc": "header prediction: truesize {truesize} > sk_forward_alloc {fwd_alloc}: slow path",
    "rmem_schedule_fails": "tcp_try_rmem_schedule: rule '{rule}' with rmem {rmem}, sk_rcvbuf {rcvbuf}, truesize "
                           "{truesize}, len {len} fails: prune",
    "prune": "tcp_prune_queue ({rule}): rmem {rmem}, sk_rcvbuf {rcvbuf} (PruneCalled)",
    "clamp_window": "tcp_clamp_window: rmem {rmem}; sk_rcvbuf {old_rcvbuf} -> {rcvbuf}; rcv_ssthresh {old_ssthresh} "
                    "-> {rcv_ssthresh}",
    "collapse": "tcp_collapse of the {queue} queue from seq {start} to {end}: the first skb worth it has truesize "
                "{truesize} for len {len}",
    "collapse_skb": "  a collapsed skb of {copy} bytes: truesize {truesize}",
    "after_collapse": "after collapsing: rmem {rmem}, sk_rcvbuf {rcvbuf}",
    "prune_ofo": "tcp_prune_ofo_queue: pruned {pruned}, {left} skbs left",
    "rcv_pruned": "nothing helped: rmem {rmem} > sk_rcvbuf {rcvbuf} (RcvPruned), the segment is dropped",
    "rcvq_drop": "no memory for the segment (rmem {rmem}, sk_rcvbuf {rcvbuf}): dropped (TCPRcvQDrop)",
    "forced_mem_schedule": "receive queue empty: memory forced for truesize {truesize} (sk_forward_alloc {fwd_alloc})",
    "zero_window_drop": "the receive window is zero (rcv_wnd {rcv_wnd}): dropped (TCPZeroWindowDrop)",
    "coalesce": "coalesced {len} bytes into the previous skb: truesize +{delta} (head stolen: {stolen}), now "
                "{to_truesize}",
    "skb_condense": "skb_condense: truesize {before} -> {after}",
    "scaling_ratio": "tcp_measure_rcv_mss: scaling_ratio = len {len} * 256 / truesize {truesize} = {ratio} "
                     "(was {old})",
    "window_clamp_from_ratio": "window_clamp = tcp_win_from_space(sk_rcvbuf {rcvbuf}) = {window_clamp}",
    "tcp_set_window_clamp": "tcp_set_window_clamp({val}): window_clamp {old} -> {window_clamp} (floor 1152), "
                            "rcv_ssthresh {rcv_ssthresh}",
    "grow_window": "tcp_grow_window: truesize {truesize} is worth {win_truesize} of window for len {len}: "
                   "increment {incr} (room {room}), rcv_ssthresh {old} -> {rcv_ssthresh}",
    "grow_window_no_room": "tcp_grow_window: no room (min(window_clamp {window_clamp}, tcp_space {space}) <= "
                           "rcv_ssthresh {rcv_ssthresh})",
    "rcv_rtt": "receive RTT sample {sample} us ({kind}): rtt_us {old} -> {rtt_us} (x8)",
    "rcv_space_adjust": "tcp_rcv_space_adjust: {time} us since the last adjustment (RTT {rtt_us} us), copied "
                        "{copied} vs rcv_space {space}",
    "rcvbuf_grow": "autotuning ({rule}): copied {newval} after {oldval}: sk_rcvbuf candidate {candidate}, "
                   "{old} -> {rcvbuf}, window_clamp {window_clamp}",
    "quickack_after_gap": "a gap of {gap} jiffies > rto {rto}: quick ACKs again ({quick})",
    "select_window": None,  # by rule, below
    "never_shrink": "the window {wanted} would shrink what is offered ({offered}): keep the old right edge "
                    "(TCPWantZeroWindowAdv when zero)",
    "nomem_zero_window": "out of memory (ICSK_ACK_NOMEM): window 0 (stored in rcv_wnd: {stored})",
    "ack": "ACK of byte {acked}, window field {window} (x 2^wscale = {scaled})",
    "ack_now_two_segments": "ACK now: {unacked} bytes unacknowledged > rcv_mss {rcv_mss}",
    "ack_now_quick": "ACK now: quick-ACK mode ({quick} left)",
    "ack_now_flag": "ACK now: ICSK_ACK_NOW",
    "delack_armed": "delayed ACK in {ato} jiffies (at jiffy {timeout})",
    "delack_due_now": "the delayed-ACK timer (jiffy {timeout}) is about to expire: ACK now",
    "delack_fired": "the delayed-ACK timer fired: ato {ato} -> {new_ato}",
    "deferred_ack": "tcp_release_cb: the ACK deferred while the lock was held",
    "ack_compressed": "ACK compressed ({count}), hrtimer in {delay_ns} ns",
    "cleanup_rbuf_ack_due": "after the read: {unacked} bytes unacknowledged > rcv_mss {rcv_mss}, or the queue "
                            "emptied after a push: ACK",
    "cleanup_rbuf_window_update": "after the read the window can grow from {now} to {new} (at least twice): ACK",
    "sequence_drop": "tcp_sequence: seq {seq}..{end_seq} against rcv_nxt {rcv_nxt} + window {window}: {reason}",
    "backlog_coalesce": "tcp_add_backlog: coalesced into the backlog's tail, backlog +{delta} = {backlog}",
    "backlog_queue": "tcp_add_backlog: backlog {backlog} + rmem {rmem} within the limit {limit} ({rule}: "
                     "rcvbuf {rcvbuf}, sndbuf {sndbuf}): queued",
    "backlog_drop": "tcp_add_backlog: backlog {backlog} + rmem {rmem} > limit {limit} ({rule}: rcvbuf {rcvbuf}, "
                    "sndbuf {sndbuf}): dropped (TCPBacklogDrop)",
}


def explain_lines(events: list) -> list[str]:
    """Sentences for (name, numbers) events, in order."""
    lines = []
    for name, numbers in events:
        if name == "select_window":
            text = "__tcp_select_window: " + _SELECT_WINDOW_RULES[numbers["rule"]].format(**numbers)
        elif name == "rcv_rtt":
            text = TEMPLATES[name].format(kind="window" if numbers["win_dep"] else "timestamps", **numbers)
        else:
            template = TEMPLATES.get(name)
            if template is None:
                text = name + ": " + ", ".join(f"{key} {value}" for key, value in numbers.items())
            else:
                text = template.format(**numbers)
        lines.append(text)
    return lines
