"""skbsim tcp: the command line, its JSON against docs/schema/tcp.schema.json, plots, explanations, bad input."""

import json
from pathlib import Path

import pytest

from skbsim.cli import main
from skbsim.tcp_session import COUNTERS, INFO_KEYS, MEM_KEYS, RECORD_KEYS, play
from skbsim.tcp_steps import parse_steps

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "schema" / "tcp.schema.json"


def _run(capsys, *argv):
    code = main(["tcp", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_one_kernel(capsys):
    code, out, err = _run(capsys, "--kernel", "6.18", "--json", "send:1000x3", "read")
    assert code == 0
    runs = json.loads(out)
    assert list(runs) == ["runs"] and len(runs["runs"]) == 1
    result = runs["runs"][0]
    assert list(result) == ["kernel", "driver", "options", "synack", "steps"]
    assert [r["action"] for r in result["steps"]] == ["send"] * 3 + ["read"]
    for record in result["steps"]:
        assert tuple(record) == RECORD_KEYS
        assert tuple(record["mem"]) == MEM_KEYS
        assert tuple(record["info"]) == INFO_KEYS
        assert tuple(record["counters"]) == COUNTERS
    assert "leak check (6.18 tun): clean" in err


def test_json_several_runs(capsys):
    code, out, _ = _run(capsys, "--kernel", "6.12", "--kernel", "6.18", "--driver", "ntb", "--opt", "copybreak=0",
                        "--opt", "copybreak=3646", "--json", "send:1000")
    results = json.loads(out)["runs"]
    assert [(r["kernel"], r["options"]["copybreak"]) for r in results] == [("6.12", 0), ("6.12", 3646),
                                                                           ("6.18", 0), ("6.18", 3646)]


@pytest.mark.parametrize("steps,kw", [
    (["send:1000x3", "read"], {}),
    (["hold", "send:100x5@3000", "release", "readeach", "send:1448x4", "wait:10", "read:100"], {"so_rcvbuf": 4096}),
    (["send:1000x8", "read", "send:1000x3"], {"so_rcvbuf": 8192}),
])
def test_json_matches_the_schema(steps, kw):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for kernel in ("6.1", "6.18"):
        result = play(kernel, "tun", {}, parse_steps(steps), explain=True, **kw)
        jsonschema.Draft202012Validator(schema).validate({"runs": [result]})


def test_table_summary_and_plot(capsys, tmp_path):
    code, out, err = _run(capsys, "--kernel", "6.9", "--plot", str(tmp_path), "send:100x4", "read")
    assert code == 0
    assert "6.9 tun: SYN-ACK window 32120, wscale 7, MSS 1460" in out
    assert "summary" in out
    assert (tmp_path / "tcp.png").stat().st_size > 10_000
    code, out, _ = _run(capsys, "--kernel", "6.9", "--kernel", "6.18", "--summary", "send:100")
    assert "side by side" in out and "SYN-ACK window" in out and "#" not in out.split("side by side")[0]


def test_explain_says_which_rules_fired(capsys):
    code, out, _ = _run(capsys, "--kernel", "6.18", "--driver", "ntb", "--explain", "send:1000x2")
    assert code == 0
    assert "scaling_ratio = len 1000 * 256 / truesize 131328 = 1" in out
    assert "tcp_set_window_clamp(512): window_clamp 65536 -> 1152 (floor 1152)" in out
    assert "tcp_prune_queue (can_ingest)" in out
    assert "tcp_select_initial_window" in out
    # The first ACK acknowledges byte 1000 of the stream; its field 63 is 64512 >> wscale 10 (the right
    # edge offered before: rcv_wnd 65470 rounded to the 1024-byte unit and kept, 65536 - 1000 rounded up).
    assert "ACK of byte 1000, window field 63 (x 2^wscale = 64512)" in out


def test_summary_counts_drops_by_reason(capsys):
    # SO_RCVBUF 2048: sk_rcvbuf 2 x 2048 = 4096; one 1460-byte segment (truesize 2304) leaves a zero
    # window.  The second starts at rcv_nxt: 6.12's tcp_sequence() lets it by (seq is not after
    # rcv_nxt + 0) and tcp_data_queue() drops it as TCP_ZEROWINDOW; 6.18's also checks its end
    # (6.17 'tcp: do not accept packets beyond window'): TCP_INVALID_END_SEQUENCE.
    code, out, _ = _run(capsys, "--kernel", "6.12", "--kernel", "6.18", "--so-rcvbuf", "2048", "--summary",
                        "send:1460x2")
    assert code == 0
    assert "dropped by reason" in out and "TCP_ZEROWINDOW 1" in out and "TCP_INVALID_END_SEQUENCE 1" in out


@pytest.mark.parametrize("argv,message", [
    (["send:0"], "P (payload bytes"),
    (["send:100@10"], "F (frame bytes"),
    (["--driver", "ntb", "send:100@70000"], "longer than ntb's 65524-byte receive buffers"),
    (["--driver", "ntb", "--opt", "ring=3", "send:1"], "--opt ring: no option of ntb"),
    (["--driver", "bogus", "send:1"], "unknown driver 'bogus'"),
    (["--kernel", "5.4", "send:1"], "unknown kernel '5.4'"),
    (["--cc", "reno", "send:1"], "unknown congestion control 'reno'"),
    (["--syn", "ts=2", "send:1"], "ts=2 must be 0 or 1"),
    (["--so-rcvbuf", "x", "send:1"], "--so-rcvbuf 'x' is not an integer"),
    (["--step-ms", "-1", "send:1"], "--step-ms must be 0..3600000, got -1"),
    (["--syn", "ts=1", "send:65484"], "at most 65483"),
    (["bogus"], "unknown step 'bogus'"),
    ([], "the following arguments are required: STEP"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
