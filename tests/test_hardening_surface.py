"""Hostile and careless use of the surface added after issue 10's hardening: skbsim tcp, run --socket tcp,
the new drivers and options, validate --tcp / --driver virtio_net, sweep --driver, the 7.1 profile.

What a user must always get: one line and exit code 2 on bad input, never a traceback, no silent wrong
answer, bounded work.  Each test here failed before the change it guards.
"""

from __future__ import annotations

import json

import pytest

from skbsim.cli import main


def _one_line_exit_2(capsys, argv, words=""):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.count("\n") == 1 and captured.err.startswith("skbsim: error: "), captured.err
    assert words in captured.err, captured.err
    return captured.err


def _run_json(capsys, argv) -> dict:
    assert main(["run", "--quiet", "--json", *argv]) == 0
    (result,) = json.loads(capsys.readouterr().out)["runs"]
    return result


# -- headers the driver left in a page fragment ---------------------------------------------------------


@pytest.mark.parametrize("kernel", ["6.1", "6.18", "7.1"])
def test_gve_segments_reach_tcp_with_their_headers_pulled(capsys, kernel):
    # gve (DQO) builds every skb with napi_get_frags(): after napi_gro_frags() pulls the Ethernet header
    # the IP and TCP headers are still in frags[0].  ip_rcv_core() and tcp_v4_rcv() pull them into the
    # head (pskb_may_pull()); the model used to __skb_pull() 20 bytes from an empty head (KernelBug).
    # 300 frames of 1448 bytes, a reader that keeps up: every byte the sender sent arrives.
    result = _run_json(capsys, ["--count", "300", "--socket", "tcp", "--driver", "gve", "--kernel", kernel])
    (flow,) = result["flows"]
    assert flow["sender"]["bytes"] == 300 * 1448
    assert flow["bytes_received"] == flow["bytes_read"] == 300 * 1448
    assert result["leaks"]["clean"]


def test_tcp_command_takes_gve(capsys):
    assert main(["tcp", "--json", "--driver", "gve", "send:1000x3", "read"]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert [r["payload"] for r in run["steps"] if r["action"] == "read"] == [3000]
