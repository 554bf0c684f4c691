"""The live TCP peer's parts that run anywhere: packet building and parsing, the schedule, the
BPF program's encoding, the comparison of records and the validate --tcp arguments."""

from __future__ import annotations

import struct

import pytest

from skbsim.cli import main
from skbsim.errors import InputError
from skbsim.live import tcp_peer
from skbsim.live.bpf import iterator_program
from skbsim.live.tcp_peer import (
    internet_checksum,
    parse_frame,
    schedule,
    syn_options,
    tcp_frame,
    timestamp_option,
)
from skbsim.tcp_steps import parse_steps
from skbsim import validate_tcp
from skbsim.validate_tcp import BUILTIN, RECORD_FIELDS, compare, scenarios_from_args

DST = bytes.fromhex("020000000001")
SRC = bytes.fromhex("020000534b43")


def _ones_complement_sum(data: bytes) -> int:
    """The 16-bit one's-complement sum, written out independently of the module's."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_internet_checksum_rfc1071_example():
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2; the checksum is its complement.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2
    # An odd length is padded with a zero byte: 0x01 -> 0x0100 -> checksum 0xfeff.
    assert internet_checksum(b"\x01") == 0xFEFF


def test_syn_option_layouts():
    # MSS 1460 = 0x05b4; Linux's order: MSS, SACK_PERM folded before TS, NOP WSCALE.
    assert syn_options(mss=1460, wscale=7, timestamps=(1, 0), sack_permitted=True) == bytes.fromhex(
        "020405b4" "0402" "080a0000000100000000" "01030307")
    assert syn_options(mss=1460, wscale=None, timestamps=None, sack_permitted=True) == bytes.fromhex(
        "020405b4" "01010402")
    assert syn_options(mss=536, wscale=14, timestamps=None, sack_permitted=False) == bytes.fromhex(
        "02040218" "0103030e")
    assert timestamp_option(0x01020304, 0x0A0B0C0D) == bytes.fromhex("0101080a010203040a0b0c0d")


def test_data_frame_is_padded_after_the_datagram_and_checksums_hold():
    payload = bytes(range(100))
    frame = tcp_frame(dst_mac=DST, src_mac=SRC, src_ip="10.211.0.2", dst_ip="10.211.0.1", sport=40001,
                      dport=5001, seq=0x10000001, ack=0x20000001, flags=0x18, window=65535,
                      options=timestamp_option(1000, 77), payload=payload, ip_id=7, min_frame_len=2000)
    # 14 Ethernet + 20 IP + 32 TCP + 100 payload = 166 bytes, then zeros up to 2000.
    assert len(frame) == 2000
    assert frame[166:] == bytes(2000 - 166)
    ip = frame[14:166]
    assert ip[0] == 0x45 and struct.unpack("!H", ip[2:4])[0] == 152   # tot_len excludes the padding
    assert struct.unpack("!H", ip[6:8])[0] == 0x4000                   # DF, offset 0
    assert (ip[8], ip[9]) == (64, 6)
    assert _ones_complement_sum(ip[:20]) == 0xFFFF
    tcp = ip[20:]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
    assert _ones_complement_sum(pseudo + tcp) == 0xFFFF
    assert tcp[12] >> 4 == 8                                          # data offset 32 bytes
    assert tcp[13] == 0x18 and tcp[-100:] == payload


def test_frame_without_padding_and_its_length():
    frame = tcp_frame(dst_mac=DST, src_mac=SRC, src_ip="10.0.0.2", dst_ip="10.0.0.1", sport=1, dport=2, seq=5,
                      ack=6, flags=0x10, window=100, payload=b"x" * 1460)
    assert len(frame) == 14 + 20 + 20 + 1460


def test_parse_frame_reads_back_what_was_built():
    options = syn_options(mss=1460, wscale=10, timestamps=(123, 456), sack_permitted=True)
    frame = tcp_frame(dst_mac=DST, src_mac=SRC, src_ip="10.211.0.1", dst_ip="10.211.0.2", sport=5001,
                      dport=40001, seq=0xFFFFFFF0, ack=0x10000001, flags=0x12, window=64240, options=options,
                      min_frame_len=60)
    segment = parse_frame(frame)
    assert segment is not None and segment.checksums_ok
    assert (segment.src, segment.dst, segment.sport, segment.dport) == ("10.211.0.1", "10.211.0.2", 5001, 40001)
    assert (segment.seq, segment.ack, segment.flags, segment.window) == (0xFFFFFFF0, 0x10000001, 0x12, 64240)
    assert (segment.mss, segment.wscale, segment.timestamps, segment.sack_permitted) == (1460, 10, (123, 456), True)
    assert segment.payload_len == 0   # the Ethernet padding is not payload


def test_parse_frame_flags_bad_checksums_and_ignores_other_frames():
    frame = bytearray(tcp_frame(dst_mac=DST, src_mac=SRC, src_ip="10.0.0.2", dst_ip="10.0.0.1", sport=1, dport=2,
                                seq=5, ack=6, flags=0x10, window=100, payload=b"abc"))
    frame[-1] ^= 0xFF
    assert parse_frame(bytes(frame)).checksums_ok is False
    assert parse_frame(DST + SRC + b"\x08\x06" + bytes(46)) is None       # ARP
    assert parse_frame(bytes(20)) is None


def test_tcp_frame_refuses_unaligned_options():
    with pytest.raises(InputError, match="multiple of 4"):
        tcp_frame(dst_mac=DST, src_mac=SRC, src_ip="10.0.0.2", dst_ip="10.0.0.1", sport=1, dport=2, seq=0, ack=0,
                  flags=2, window=1, options=b"\x01\x01\x01")


def test_schedule_follows_docs_tcp_timing():
    # send:1000x3 at T=0 (segments at 0, 1, 2 ms; the step lasts 250 ms), readeach at 250 ms,
    # send:10x2 at 500 ms each followed by a read at the same time, wait:40 at 750 ms,
    # read at 790 ms; the scenario ends at 1040 ms.
    events, end_us = schedule(parse_steps(["send:1000x3", "readeach", "send:10x2", "wait:40", "read"]), 250, 1000)
    assert [(e.at_us, e.action, e.last_of_step) for e in events] == [
        (0, "send", False), (1000, "send", False), (2000, "send", True),
        (250_000, "readeach", True),
        (500_000, "send", False), (500_000, "read", False), (501_000, "send", False), (501_000, "read", True),
        (750_000, "wait", True),
        (790_000, "read", True)]
    assert end_us == 1_040_000


def test_schedule_long_send_step_lasts_its_segments():
    # 300 segments 1 ms apart take 300 ms, more than the 250 ms step.
    events, end_us = schedule(parse_steps(["send:1x300", "read"]), 250, 1000)
    assert events[-1].at_us == 300_000 and end_us == 550_000


def test_bpf_program_jumps_stay_inside_and_it_ends_in_exit():
    code = iterator_program(map_fd=5, socket_fd=7, copy_size=2304, private_data_offset=200, sk_offset=24)
    insns = [struct.unpack_from("<BBhi", code, i) for i in range(0, len(code), 8)]
    assert len(insns) == 44
    for index, (opcode, _regs, offset, _imm) in enumerate(insns):
        if opcode & 0x07 == 0x05 and opcode not in (0x85, 0x95):   # BPF_JMP class, not call or exit
            target = index + 1 + offset
            assert 0 <= target < len(insns)
            assert insns[target][0] in (0xB7, 0xBF)                  # lands on a mov
    assert insns[-1][0] == 0x95 and insns[34][0] == 0x95
    # The map reference is a two-slot ld_imm64 with src_reg BPF_PSEUDO_MAP_FD and the fd in imm.
    assert insns[23][0] == 0x18 and insns[23][1] >> 4 == 1 and insns[23][3] == 5 and insns[24] == (0, 0, 0, 0)
    # The fd compared is the watched socket's; the copy is sizeof(struct tcp_sock) then the address.
    assert insns[3][3] == 7 and insns[31][3] == 2304 and insns[37][2] == 2304 and insns[40][3] == 2312


def _record(i: int, **changes) -> dict:
    record = {"i": i, "action": "send", "payload": 100, "frame_len": 154, "truesize": 832, "route": "fast",
              "verdict": "queued", "acks": [[100, 62]],
              "mem": {"rmem_alloc": 832, "rcvbuf": 131072, "fwd_alloc": 3264, "backlog": 0, "drops": 0},
              "info": {"rcv_wscale": 10, "rcv_mss": 536, "rcv_ssthresh": 64076, "advmss": 1460, "rcv_space": 14600,
                       "rcv_wnd": 64512, "window_clamp": 64076, "scaling_ratio": 128},
              "counters": {name: 0 for name in validate_tcp.COUNTERS}}
    for key, value in changes.items():
        head, _, tail = key.partition("__")
        if tail:
            record[head] = {**record[head], tail: value}
        else:
            record[head] = value
    return record


def test_compare_counts_every_field_and_lists_disagreements():
    synack = {"win": 64240, "wscale": 10, "mss": 1460}
    live = {"synack": synack, "steps": [_record(0), _record(1, acks=[], info__scaling_ratio=111)]}
    model = {"synack": {**synack, "win": 65535}, "steps": [_record(0), _record(1, acks=[[200, 62]])]}
    tally: dict[str, list[int]] = {}
    found = compare("s", live, model, tally)
    assert [(d.i, d.field, d.live, d.model) for d in found] == [
        (None, "synack.win", 64240, 65535), (1, "acks", [], [[200, 62]]), (1, "info.scaling_ratio", 111, 128)]
    assert tally["synack.win"] == [0, 1] and tally["records"] == [1, 0]
    assert tally["info.scaling_ratio"] == [1, 1] and tally["mem.rmem_alloc"] == [2, 0]
    assert len(RECORD_FIELDS) == 7 + 5 + 8 + 12


def test_compare_reports_a_different_number_of_records():
    synack = {"win": 1, "wscale": None, "mss": 1460}
    found = compare("s", {"synack": synack, "steps": [_record(0)]}, {"synack": synack, "steps": []}, {})
    assert [(d.field, d.live, d.model) for d in found] == [("records", 1, 0)]


def test_scenarios_from_args():
    assert [s.name for s in scenarios_from_args([])] == [s.name for s in BUILTIN]
    chosen = scenarios_from_args(["ofo", "send:1448x3  read"], so_rcvbuf=4096, syn="ts=1")
    assert chosen[0] is next(s for s in BUILTIN if s.name == "ofo")
    assert (chosen[1].text, chosen[1].so_rcvbuf, chosen[1].syn_options.ts) == ("send:1448x3 read", 4096, True)
    with pytest.raises(InputError, match="unknown step 'nonsense'"):
        scenarios_from_args(["nonsense"])
    with pytest.raises(InputError, match="'hold' cannot be played on the live kernel"):
        scenarios_from_args(["hold send:100 release"])
    with pytest.raises(InputError, match="--syn"):
        scenarios_from_args(["send:100"], syn="mss=1")


def test_builtin_scenarios_parse_and_have_unique_names():
    assert len({s.name for s in BUILTIN}) == len(BUILTIN)
    for scenario in BUILTIN:
        assert scenario.steps and scenario.about
        assert not any(step.action in ("hold", "release") for step in scenario.steps)


@pytest.mark.parametrize("argv, message", [
    (["validate", "send:100"], "SCENARIO arguments need --tcp"),
    (["validate", "--tcp", "send:0"], "P (payload bytes"),
    (["validate", "--tcp", "send:100@20"], "F (frame bytes"),
    (["validate", "--tcp", "--step-ms", "0", "send:100"], "--step-ms must be at least 1, got 0"),
    (["validate", "--tcp", "--syn", "bogus=1", "send:100"], "unknown option 'bogus'"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_requirements_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(tcp_peer, "requirements_missing", lambda: ["root (uid 0)"])
    assert main(["validate", "--tcp", "send:100"]) == 2
    assert "validate --tcp needs root (uid 0)" in capsys.readouterr().err
