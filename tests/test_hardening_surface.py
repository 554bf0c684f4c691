"""Hostile and careless use of the surface added after issue 10's hardening: skbsim tcp, run --socket tcp,
the new drivers and options, validate --tcp / --driver virtio_net, sweep --driver, the 7.1 profile, grid
specs and skbsim report.

What a user must always get: one line and exit code 2 on bad input, never a traceback, no silent wrong
answer, bounded work.  Each test here failed before the change it guards.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skbsim.cli import main
from test_cli_hardening import _one_line_exit_2


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


# -- padding trimmed from page_pool and frag_list skbs ----------------------------------------------------


@pytest.mark.parametrize("kernel", ["6.18", "7.1"])
def test_padded_frames_on_virtio_net_are_trimmed_without_leaks(capsys, kernel):
    # send:36@60000: a 60000-byte frame holding a 90-byte segment (Ethernet 14 + IP 20 + TCP 20 + 36).
    # virtio_net takes it in 40 mergeable buffers (the first 17 as frags, the rest on the frag_list;
    # on 7.1 page_pool fragments).  ip_rcv_core() trims it to tot_len 76, inside the head copied from the
    # first buffer: every frag and the frag_list go (7.1: back to the page_pool; the model used to
    # put_page() them and later found its pages freed under the ring: a KernelBug traceback, or a leaked
    # pool), and skb_condense() leaves the truesize of the skbuff_small_head head:
    # SKB_TRUESIZE(704 - 320 = 384) = 384 + 256 + 320 = 960.
    assert main(["tcp", "--json", "--kernel", kernel, "--driver", "virtio_net", "send:36x3@60000", "read"]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    sends = [step for step in run["steps"] if step["action"] == "send"]
    assert [step["truesize"] for step in sends] == [960, 960, 960]
    assert run["steps"][-1]["payload"] == 108


def test_padded_jumbo_frames_on_7_1_virtio_net(capsys):
    # The case found first: 7.1's virtio_net, 9000-byte frames padding 36-byte segments.
    assert main(["tcp", "--summary", "--kernel", "7.1", "--driver", "virtio_net",
                 "--syn", "mss=88,wscale=0,ts=1,sack=1", "send:36x200@9000", "hold", "send:36x100", "release",
                 "readeach", "send:1x50"]) == 0


# -- captures: records cut inside the Ethernet header, IP headers that lie ----------------------------


def _tcp_frame(payload: bytes, *, seq: int = 1001, tot_len: int | None = None) -> bytes:
    """Ethernet + IPv4 + TCP (ACK|PSH, no options) from 10.0.0.1:40000 to 10.0.0.2:5000."""
    import struct

    tcp = struct.pack(">HHIIBBHHH", 40000, 5000, seq, 1, 5 << 4, 0x18, 65535, 0, 0) + payload
    length = 20 + len(tcp) if tot_len is None else tot_len
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, length, 0, 0x4000, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return bytes(6) + bytes(5) + b"\x01" + b"\x08\x00" + ip + tcp


def _write_pcap(path, frames, caplen=None):
    import struct

    with open(path, "wb") as handle:
        handle.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            cut = frame if caplen is None else frame[:caplen]
            handle.write(struct.pack("<IIII", 0, i * 10, len(cut), len(frame)) + cut)
    return f"pcap:{path}"


def _write_pcapng(path, frames, caplen):
    import struct

    # Section Header Block, Interface Description Block (Ethernet), one Enhanced Packet Block per frame.
    blocks = [struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28),
              struct.pack("<IIHHI", 1, 20, 1, 0, 65535) + struct.pack("<I", 20)]
    for i, frame in enumerate(frames):
        data = frame[:caplen]
        padded = data + bytes(-len(data) % 4)
        total = 32 + len(padded)
        blocks.append(struct.pack("<IIIIIII", 6, total, 0, 0, i * 10, len(data), len(frame)) + padded
                      + struct.pack("<I", total))
    path.write_bytes(b"".join(blocks))
    return f"pcap:{path}"


@pytest.mark.parametrize("write", [_write_pcap, _write_pcapng])
@pytest.mark.parametrize("driver", ["ice", "virtio_net", "mlx5", "ntb", "tun"])
def test_records_cut_inside_the_ethernet_header(tmp_path, capsys, write, driver):
    # 10 bytes captured of each 1054-byte frame: the EtherType is not in the capture.  Every driver reads a
    # whole Ethernet header (eth_type_trans()); the model raised a ValueError traceback.  Now the header is
    # completed with zeros: no IP frame, so each of the 5 frames goes to the one UDP socket ("other").
    traffic = write(tmp_path / "cut.cap", [_tcp_frame(b"x" * 1000, seq=1001 + 1000 * i) for i in range(5)], 10)
    result = _run_json(capsys, ["--traffic", traffic, "--driver", driver, "--kernel", "6.18"])
    assert (result["packets"], result["delivered"], result["bytes"]) == (5, 5, 5 * 1054)
    assert result["leaks"]["clean"]


@pytest.mark.parametrize("tot_len", [0, 19, 2000, 65535])
def test_segments_whose_ip_total_length_lies_are_no_tcp_data(tmp_path, capsys, tot_len):
    # A 1054-byte frame whose IPv4 tot_len is 0, below the 20-byte header or beyond the 1040 bytes the
    # frame holds: ip_rcv_core() drops it (IP_INHDR, PKT_TOO_SMALL), no TCP socket sees its data.  The
    # model used to take skb->len instead and count 1000 bytes received per segment.  Such frames go to
    # the run's catch-all socket, as other frames that are no IPv4 TCP datagram do (docs/tcp.md).
    frames = [_tcp_frame(b"x" * 1000, seq=1001 + 1000 * i, tot_len=tot_len) for i in range(5)]
    result = _run_json(capsys, ["--traffic", _write_pcap(tmp_path / "lie.pcap", frames), "--socket", "tcp",
                                "--kernel", "6.18"])
    assert [(flow["flow"], flow["delivered"]) for flow in result["flows"]] == [("other", 5)]
    assert result["tcp"]["bytes_received"] == 0


def test_a_padded_segment_is_trimmed_to_its_total_length(tmp_path, capsys):
    # The same frames with a true tot_len (1040) and 20 bytes of padding after the datagram: 1000 bytes of
    # data each, in order from the receiver's first byte (opened mid-stream at seq 1001).
    frames = [_tcp_frame(b"x" * 1000, seq=1001 + 1000 * i) + bytes(20) for i in range(5)]
    result = _run_json(capsys, ["--traffic", _write_pcap(tmp_path / "pad.pcap", frames), "--socket", "tcp",
                                "--kernel", "6.18"])
    (flow,) = result["flows"]
    assert (flow["protocol"], flow["bytes_received"]) == ("tcp", 5000)


# -- numbers the simulated clock cannot hold ----------------------------------------------------------------


@pytest.mark.parametrize("option", ["--rtt", "--duration"])
@pytest.mark.parametrize("value", ["1e-300", "1e-9", "5e-7"])
def test_times_below_one_nanosecond_are_refused(capsys, option, value):
    # The simulated clock counts whole ns: 5e-7 ms = 0.5 ns rounds to 0.  An RTT of 0 gave "window / RTT"
    # null and a duration of 0 sent nothing, silently.
    _one_line_exit_2(capsys, ["run", "--quiet", "--count", "10", "--socket", "tcp", option, value],
                     f"{option} must be")


def test_one_nanosecond_is_the_smallest_rtt(capsys):
    result = _run_json(capsys, ["--count", "10", "--socket", "tcp", "--rtt", "1e-6"])
    assert result["tcp"]["rtt_ms"] == 1e-6 and result["tcp"]["bytes_received"] == 10 * 1448


# -- the senders' application: bounded work, and streams past 4 GiB ------------------------------------------


def _count_write_callbacks(monkeypatch):
    from skbsim.tcp_sender import TcpSenders

    calls = [0]
    write = TcpSenders.write

    def counting(self, sender, now):
        calls[0] += 1
        return write(self, sender, now)

    monkeypatch.setattr(TcpSenders, "write", counting)
    return calls


def test_fast_small_writes_cost_per_frame_not_per_write(capsys, monkeypatch):
    # messages:1@1e9: a 1-byte write every ns, a link of one frame per us (--rate 1e6).  The run used to take
    # one callback (and keep one queue entry) per write: 26 s for 200 frames.  Writes are now counted from
    # the clock when the sender looks, and it is woken at most once per link slot.  The frames: 200, each
    # holding what was written since the one before, about 1000 bytes (the MSS is 1448).
    calls = _count_write_callbacks(monkeypatch)
    result = _run_json(capsys, ["--count", "200", "--socket", "tcp", "--tcp", "messages:1@1e9"])
    (flow,) = result["flows"]
    assert flow["sender"]["frames"] == 200 and flow["bytes_received"] == flow["sender"]["bytes"]
    assert 190_000 <= flow["bytes_received"] <= 200 * 1448
    assert calls[0] <= 2 * 200 + 10


def test_writes_held_back_by_the_window_cost_nothing(capsys, monkeypatch):
    # Nobody reads (--app-rate 0): the window closes after a few segments and the 10 million writes a second
    # could never leave; the run used to take a callback for each (and keep each in memory: 21 GB over the
    # default 60 s).  Now the sender sleeps until an ACK or its persist timer: a handful of callbacks.
    calls = _count_write_callbacks(monkeypatch)
    result = _run_json(capsys, ["--socket", "tcp", "--tcp", "messages:100@1e7", "--app-rate", "0",
                                "--duration", "2000"])
    (flow,) = result["flows"]
    assert flow["zero_window_ms"] > 1000 and flow["sender"]["zero_window_probes"] >= 1
    assert calls[0] < 100



def test_a_stream_past_4_gib_is_counted_whole(capsys, monkeypatch):
    # 70,000 frames of up to 64,000 bytes (ntb takes 65,524-byte frames) from an application writing 1 MB a
    # millisecond: 4,429,512,000 bytes, more than 2**32.  The sender used to measure what it had sent modulo
    # 2**32 (sending data not yet written once past it) and the receiver's bytes_received wrapped with
    # rcv_nxt (134,544,704 here, and the throughput with it).
    from skbsim.tcp_sender import TcpSenders

    new_data = TcpSenders._new_data
    overdrawn = []

    def checked(self, sender, now, size, push):
        if sender.bytes_sent + size > sender.written:
            overdrawn.append(now)
        return new_data(self, sender, now, size, push)

    monkeypatch.setattr(TcpSenders, "_new_data", checked)
    result = _run_json(capsys, ["--socket", "tcp", "--driver", "ntb", "--traffic", "tcp-bulk:mss=64000,ts=0",
                                "--tcp", "messages:1000000@1e3", "--count", "70000", "--duration", "10000"])
    (flow,) = result["flows"]
    sent = flow["sender"]["bytes"]
    assert sent > 2**32 and not overdrawn
    assert flow["bytes_received"] == flow["bytes_read"] == result["tcp"]["bytes_received"] == sent
    assert flow["throughput_mbps"] == round(sent * 8 / (flow["duration_ms"] * 1e6) * 1000, 3)


def test_tcp_senders_are_bounded_in_number(capsys):
    # Each synthetic TCP flow is a socket and a sender, all made before the first frame: --flows 1000000 took
    # more than 7.5 GB and two minutes before anything ran; the bound is 65536 (docs/output.md).
    _one_line_exit_2(capsys, ["run", "--quiet", "--count", "10", "--socket", "tcp", "--flows", "1000000"],
                     "--flows with --socket tcp must be 1..65536")


# -- validate: its modes, a saved trace, where the result goes ----------------------------------------------

FIXTURE = str(Path(__file__).resolve().parent / "fixtures" / "virtio_net_eth0_pip_7_wheels.trace.gz")


@pytest.mark.parametrize("argv, words", [
    # an option of one mode given to another was silently ignored
    (["--tcp", "--driver", "virtio_net"], "--driver virtio_net is for validate --driver virtio_net, not for validate --tcp"),
    (["--tcp", "--trace-file", FIXTURE], "--trace-file is for validate --driver virtio_net, not for validate --tcp"),
    (["--tcp", "--routes", "block"], "--routes is for validate (tun frames), not for validate --tcp"),
    (["--trace-file", FIXTURE], "--trace-file is for validate --driver virtio_net, not for validate (tun frames)"),
    (["--seconds", "3"], "--seconds is for validate --driver virtio_net"),
    (["--iface", "eth0"], "--iface is for validate --driver virtio_net"),
    (["--live-only"], "--live-only is for validate --tcp"),
    (["--so-rcvbuf", "5"], "--so-rcvbuf is for validate --tcp"),
    (["--cc", "bbr"], "--cc is for validate --tcp"),
    (["--driver", "virtio_net", "--trace-file", FIXTURE, "--sample", "5"],
     "--sample is for validate (tun frames), not for validate --driver virtio_net"),
    (["--driver", "virtio_net", "--trace-file", FIXTURE, "--seconds", "5"], "--seconds is for a live trace, not for --trace-file"),
    (["--driver", "virtio_net", "--opt", "ring=256"], "--opt is for --trace-file, not for a live trace"),
    # the options of validate --tcp (an argument group) skipped the parser's rules
    (["--tcp", "--cc", "", "full-size"], "--cc: empty value"),
    (["--tcp", "--cc", "bbr", "--cc", "cubic", "full-size"], "--cc given twice"),
    # --seconds took any float: inf traced for ever
    (["--driver", "virtio_net", "--seconds", "inf"], "--seconds must be a positive finite number"),
    (["--driver", "virtio_net", "--seconds", "nan"], "--seconds must be a positive finite number"),
    (["--driver", "virtio_net", "--seconds", "1e308"], "--seconds must be at most 3600"),
    # checked before tracing, not after it (a traceback)
    (["--driver", "virtio_net", "--seconds", "1", "--save-trace", "/nonexistent/x.trace"], "folder /nonexistent does not exist"),
    (["--driver", "virtio_net", "--seconds", "1", "--save-trace", "/tmp"], "--save-trace /tmp: is a directory"),
    # a trace file is read with a bound: /dev/zero was killed for want of memory
    (["--driver", "virtio_net", "--trace-file", "/dev/zero"], "--trace-file /dev/zero: larger than 256 MiB"),
    (["--driver", "virtio_net", "--trace-file", "/dev/null"], "--trace-file /dev/null: no napi_gro_receive_entry events"),
])
def test_validate_refuses_with_one_line(capsys, argv, words):
    _one_line_exit_2(capsys, ["validate", *argv], words)


def test_validate_trace_file_gzip_bomb(tmp_path, capsys):
    import gzip

    path = tmp_path / "bomb.trace.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        zeros = bytes(1 << 20)
        for _ in range(300):
            handle.write(zeros)
    _one_line_exit_2(capsys, ["validate", "--driver", "virtio_net", "--trace-file", str(path)],
                     "unpacks to more than 256 MiB")


def test_validate_trace_file_name_with_brackets(tmp_path, capsys):
    # The name went through rich markup: "[/b]" was a MarkupError traceback, "[red]" vanished from the line.
    import shutil

    folder = tmp_path / "a["
    folder.mkdir()
    path = folder / "b][red].trace.gz"
    shutil.copy(FIXTURE, path)
    assert main(["validate", "--driver", "virtio_net", "--trace-file", str(path)]) == 0
    out = capsys.readouterr().out
    assert str(path) in out.splitlines()[0]
    assert "validation passed: all 3245 predicted skbs agree" in out


# -- report: results that are not a grid's, or damaged, or without any result ---------------------------------

def _results(path, meta, columns=("cell.index", "cell.status", "cell.command")):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: pa.array([], pa.string()) for name in columns})
    if meta is not None:
        table = table.replace_schema_metadata({b"skbsim.grid": meta if isinstance(meta, bytes) else json.dumps(meta)})
    pq.write_table(table, path)
    return str(path)


GOOD_META = {"command": "run", "title": "t", "spec": "s.toml", "axes": [{"name": "kernel", "values": ["6.1", "6.18"]}],
             "report": {}, "cells": 2}


@pytest.mark.parametrize("meta, columns, words", [
    # each of these was a traceback (JSONDecodeError, TypeError, KeyError) from the report
    (b"{not json", None, "damaged results of 'skbsim grid': its skbsim.grid metadata is not JSON"),
    ([], None, "its skbsim.grid metadata is not an object"),
    ({}, None, "'command' in its skbsim.grid metadata is missing or not a string"),
    ({**GOOD_META, "axes": "kernel"}, None, "'axes' in its skbsim.grid metadata is missing or not a list"),
    ({**GOOD_META, "axes": [{"name": "kernel"}]}, None, "an axis in its skbsim.grid metadata is not {name, values}"),
    ({**GOOD_META, "report": {"metric": 5}}, None, "report metric in its skbsim.grid metadata is not a name"),
    # 1000 x 1000 x 1000 made-up axis values would be a billion charts' menu entries
    ({**GOOD_META, "axes": [{"name": n, "values": list(range(1000))} for n in "abc"]}, None,
     "2 cells is not the product of its axes"),
    (GOOD_META, ("x",), "no cell.index, cell.status, cell.command column"),
])
def test_report_refuses_damaged_results(tmp_path, capsys, meta, columns, words):
    path = _results(tmp_path / "r.parquet", meta, *([columns] if columns else []))
    _one_line_exit_2(capsys, ["report", path, "-o", str(tmp_path / "r.html")], words)


def test_report_refuses_what_is_no_file(tmp_path, capsys):
    # /dev/zero was "no such file" (pyarrow's FileNotFoundError for anything not a regular file); a
    # folder was read as an empty Parquet dataset.
    _one_line_exit_2(capsys, ["report", "/dev/zero", "-o", str(tmp_path / "r.html")], "/dev/zero: not a regular file")
    (tmp_path / "d.parquet").mkdir()
    _one_line_exit_2(capsys, ["report", str(tmp_path / "d.parquet"), "-o", str(tmp_path / "r.html")],
                     "d.parquet: is a directory")


def test_report_of_a_grid_whose_every_cell_failed(tmp_path, capsys):
    # A grid whose cells all failed has no result.* column: its report was refused with "--metric
    # delivered: no such result (some: , ...)", and grid --report ended in exit code 2 after the run.
    # Now the page lists the cells and their errors; only an explicit --metric is refused.
    (tmp_path / "broken.pcap").write_bytes(b"\xf6\x87\x0e\xdc" + bytes(96))
    (tmp_path / "g.toml").write_text('[fixed]\ntraffic = "pcap:broken.pcap"\ncount = 10\n[axes]\nkernel = ["6.1", "6.18"]\n')
    out, page = tmp_path / "g.parquet", tmp_path / "g.html"
    assert main(["grid", str(tmp_path / "g.toml"), "-o", str(out), "--serial", "--quiet", "--report", str(page)]) == 1
    text = page.read_text()
    assert "every cell recorded failed" in text and text.count("not a pcap or pcapng file") == 2
    capsys.readouterr()
    _one_line_exit_2(capsys, ["report", str(out), "-o", str(page), "--metric", "delivered"],
                     "--metric delivered: no cell of this grid has a result")
    # A grid stopped before its first cell ended: no rows.
    empty = _results(tmp_path / "e.parquet", GOOD_META)
    assert main(["report", empty, "-o", str(page)]) == 0
    assert "no cell was recorded yet" in page.read_text()


# -- grid specs: values checked when the spec is read, not cell by cell -------------------------------------

@pytest.mark.parametrize("spec, words", [
    # a synthetic traffic spec with a typo failed every cell one by one (on a cluster, after starting it)
    ('[fixed]\ncount = 10\ntraffic = "imx"\n', "cell the only cell: unknown traffic spec 'imx'"),
    ('[fixed]\ncount = 10\n[axes]\ntraffic = ["fixed:60", "fixed:99999"]\n',
     "cell traffic=fixed:99999: traffic spec 'fixed:99999': frame length 99999 outside 14..65535"),
    # a metric that is no name was accepted, and made results that skbsim report refuses as damaged
    ('[fixed]\ncount = 10\n[report]\nmetric = [1]\n', "[report] metric must be a result name or a list of them"),
    # a title that is no string became the text of a Python list
    ('[grid]\ntitle = ["a"]\n[fixed]\ncount = 10\n', "[grid] title must be a string"),
])
def test_grid_spec_values_checked_before_any_cell(tmp_path, capsys, spec, words):
    (tmp_path / "g.toml").write_text(spec)
    _one_line_exit_2(capsys, ["grid", str(tmp_path / "g.toml"), "-o", str(tmp_path / "g.parquet"), "--serial",
                              "--quiet"], words)
    assert not (tmp_path / "g.parquet").exists()


def test_grid_resume_refuses_a_file_that_is_no_grids_results(tmp_path, capsys):
    # --resume merged the grid into any Parquet file with cell.key and cell.status columns and then
    # replaced it (its rows gone); one without them was "No match for FieldRef.Nested(...)".
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "g.toml").write_text('[fixed]\ncount = 10\n[axes]\nkernel = ["6.1", "6.18"]\n')
    for name, columns in (("a.parquet", {"cell.key": ["x"], "cell.status": ["ok"]}), ("b.parquet", {"x": [1]})):
        pq.write_table(pa.table(columns), tmp_path / name)
        _one_line_exit_2(capsys, ["grid", str(tmp_path / "g.toml"), "-o", str(tmp_path / name), "--serial",
                                  "--quiet", "--resume"], f"{name}: not the results of 'skbsim grid'")
        assert pq.read_table(tmp_path / name).to_pydict() == columns
