"""``skbsim validate --tcp`` against the running kernel: the live peer's records, its tcp_sock copy,
the comparison with the model, and the clean-up.  Marked ``live``; each skips with the reason
where root, /dev/net/tun, tracefs, BTF or bpf are missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from skbsim.cli import main
from skbsim.errors import InputError
from skbsim.live.tap import our_namespaces
from skbsim.live.tracefs import our_instances
from skbsim.tcp_session import COUNTERS, INFO_KEYS, MEM_KEYS, RECORD_KEYS
from skbsim.validate_tcp import BUILTIN, play_model, requirements

MISSING = requirements()
live = pytest.mark.skipif(bool(MISSING), reason="validate --tcp needs: " + "; ".join(MISSING))
pytestmark = [pytest.mark.live, live]


def _nothing_of_ours_left():
    assert our_namespaces(os.getpid()) == []
    assert our_instances(pid=os.getpid()) == []


def _live_only(capsys, *scenarios: str) -> dict:
    code = main(["validate", "--tcp", "--live-only", "--json", *scenarios])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["ok"]
    _nothing_of_ours_left()
    return result


def _model_available() -> bool:
    try:
        play_model(BUILTIN[0])
    except InputError:
        return False
    return True


def test_records_have_play_shape_and_hand_derived_handshake(capsys):
    result = _live_only(capsys, "full-size")
    entry = result["scenarios"][0]
    live = entry["live"]
    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "schema" / "tcp.schema.json").read_text())
    Draft202012Validator(schema).validate({"runs": [live]})   # one run of skbsim tcp --json
    # The namespace's defaults on this 6.18 host: tcp_rmem 4096 131072 33554432 (32 MiB since 6.16),
    # rmem_max 4194304 (host-wide). tcp_select_initial_window(): the window is tcp_rmem[1] = 131072
    # times the default scaling_ratio 128/256 = 65536, rounded down to the MSS 1460: 44 * 1460 = 64240;
    # wscale = ilog2(max(tcp_rmem[2], rmem_max)) - 15 = ilog2(33554432) - 15 = 10; MSS = MTU 1500 - 40.
    assert entry["sysctls"]["net.ipv4.tcp_rmem"].split() == ["4096", "131072", "33554432"]
    assert live["synack"] == {"win": 64240, "wscale": 10, "mss": 1460}
    steps = live["steps"]
    assert [r["action"] for r in steps] == ["send", "send", "send", "read"]
    for record in steps:
        assert tuple(record) == RECORD_KEYS
        assert tuple(record["mem"]) == MEM_KEYS and tuple(record["info"]) == INFO_KEYS
        assert tuple(record["counters"]) == COUNTERS
    # Frames: 14 + 20 + 20 + 1460 = 1514 bytes; a blocking tun write of 1514 bytes is one kmalloc'd
    # 2048-byte head (1514 + NET_SKB_PAD + shared info) plus the sk_buff: truesize 2304.
    assert [(r["frame_len"], r["truesize"]) for r in steps[:3]] == [(1514, 2304)] * 3
    # Quick-ACK mode at the start: every segment is acknowledged at once (1460, 2920, 4380 bytes).
    assert [r["acks"][0][0] for r in steps[:3]] == [1460, 2920, 4380]
    assert steps[3]["payload"] == 4380 and steps[3]["mem"]["rmem_alloc"] == 0


def test_small_rcvbuf_forward_allocation_overshoot_and_collapse(capsys):
    steps = _live_only(capsys, "rcvbuf-8192")["scenarios"][0]["live"]["steps"]
    # SO_RCVBUF 8192 is doubled: sk_rcvbuf 16384.  A 154-byte frame (100 bytes of payload) is a
    # kmalloc-512 head + sk_buff: truesize 832; sk_rmem_schedule() forwards one 4096-byte page,
    # so the first segment leaves fwd_alloc 4096 - 832 = 3264.
    first = steps[0]
    assert (first["frame_len"], first["truesize"]) == (154, 832)
    assert (first["mem"]["rcvbuf"], first["mem"]["rmem_alloc"], first["mem"]["fwd_alloc"]) == (16384, 832, 3264)
    # The fast path checks only truesize <= sk_forward_alloc, so rmem_alloc passes sk_rcvbuf ...
    assert any(r["route"] == "fast" and r["mem"]["rmem_alloc"] > r["mem"]["rcvbuf"] for r in steps)
    # ... until a segment takes the slow path, tcp_prune_queue() collapses the queue and the
    # segment is coalesced into the collapsed skb.
    pruned = next(r for r in steps if r["counters"]["PruneCalled"])
    assert pruned["route"] == "slow" and pruned["verdict"] == "coalesced"
    assert pruned["counters"]["TCPRcvCollapsed"] > 0 and pruned["mem"]["rmem_alloc"] < pruned["mem"]["rcvbuf"]


def test_drops_zero_window_and_out_of_order(capsys):
    result = _live_only(capsys, "ofo", "zero-window", "proto-mem")
    ofo, zero, proto = (entry["live"]["steps"] for entry in result["scenarios"])
    assert any(r["route"] == "ofo" for r in ofo) and ofo[-1]["counters"]["TCPOFOQueue"] > 0
    assert zero[-1]["counters"]["TCPToZeroWindowAdv"] == 1 and zero[-1]["counters"]["TCPFromZeroWindowAdv"] == 1
    assert zero[0]["acks"][-1][1] == 0                     # the window shut by the first segment
    assert any(r["verdict"] == "dropped:PROTO_MEM" for r in proto)
    assert proto[-1]["counters"]["TCPRcvQDrop"] >= 1 and proto[-1]["counters"]["RcvPruned"] >= 1
    for steps in (ofo, zero, proto):
        drops = sum(r["verdict"].startswith("dropped:") for r in steps if r["verdict"])
        assert steps[-1]["mem"]["drops"] == drops            # sk_drops counts each drop once


def test_bpf_copy_agrees_with_tcp_info(capsys):
    result = _live_only(capsys, "fat-1000", "autotune")
    for entry in result["scenarios"]:
        for record, moment in zip(entry["live"]["steps"], entry["timeline"]):
            sock = moment["tcp_sock"]
            info = record["info"]
            assert (sock["rcv_ssthresh"], sock["window_clamp"], sock["rcv_wnd"], sock["rcvq_space"]) == (
                info["rcv_ssthresh"], info["window_clamp"], info["rcv_wnd"], info["rcv_space"])
            assert sock["sk_rcvbuf"] == record["mem"]["rcvbuf"] and sock["ack_rcv_mss"] == info["rcv_mss"]
    # 1000 bytes in a 131328-byte truesize: scaling_ratio = 1000 * 256 / 131328 rounds down to 1.
    assert result["scenarios"][0]["live"]["steps"][-1]["info"]["scaling_ratio"] == 1


def test_runs_repeat_exactly(capsys):
    # The schedule starts at a fixed phase of the jiffies tick, so a delayed ACK (rcvbuf-8192's at
    # record 36) and every other figure come out the same in every run; with timestamps every
    # segment passes PAWS (TSval only grows).
    first = _live_only(capsys, "rcvbuf-8192", "full-size-ts")
    second = _live_only(capsys, "rcvbuf-8192", "full-size-ts")
    assert [e["live"] for e in first["scenarios"]] == [e["live"] for e in second["scenarios"]]
    timestamps = first["scenarios"][1]["live"]["steps"]
    assert [r["verdict"] for r in timestamps if r["action"] == "send"] == ["queued"] * 3


def test_interrupt_cleans_up(monkeypatch, capsys):
    import skbsim.live.tcp_peer as tcp_peer

    real = tcp_peer.LivePeer.play
    calls = []

    def interrupted(self, *args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(tcp_peer.LivePeer, "play", interrupted)
    assert main(["validate", "--tcp", "--live-only", "send:100x10"]) == 130
    _nothing_of_ours_left()


@pytest.mark.skipif(not _model_available(), reason="the TCP model (skbsim.tcp_session.play) cannot play yet")
def test_a_wrong_profile_is_caught(capsys):
    # The 6.12 profile has tcp_rmem[2] = 6 MiB: wscale = ilog2(max(6291456, rmem_max)) - 15 = 22 - 15 = 7
    # (the model keeps the release's rmem_max default, 212992), where this 6.18 host with its 32 MiB
    # tcp_rmem[2] offers ilog2(33554432) - 15 = 10.
    code = main(["validate", "--tcp", "--json", "--kernel", "6.12", "full-size"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1 and not result["ok"]
    assert {"scenario": "full-size", "i": None, "action": None, "field": "synack.wscale", "live": 10,
            "model": 7} in result["disagreements"]
    _nothing_of_ours_left()


@pytest.mark.skipif(not _model_available(), reason="the TCP model (skbsim.tcp_session.play) cannot play yet")
def test_builtin_set_agrees_with_the_model(capsys):
    code = main(["validate", "--tcp", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["disagreements"] == [], result["disagreements"][:30]
    assert code == 0 and result["ok"]
    _nothing_of_ours_left()
