"""The shortcuts that keep ``run --socket tcp`` fast give what the long way gives.

(tests/tools/compare_tcp_runs.py compares whole runs with another revision, byte for byte.)
"""

import struct
import sys

from hypothesis import given
from hypothesis import strategies as st

from skbsim.net.ipv4.tcp import tcp_event
from skbsim.net.ipv4.tcp_input import tcp_parse_options
from skbsim.sim import RunConfig, simulate
from skbsim.sockets import Thinned
from skbsim.tcp_session import play
from skbsim.tcp_steps import parse_steps

U32S = st.integers(0, 0xFFFFFFFF)


def _fields(opt):
    return opt.mss_clamp, opt.snd_wscale, opt.sack_ok, opt.rcv_tsval, opt.rcv_tsecr


@given(tsval=U32S, tsecr=U32S, syn=st.booleans())
def test_the_aligned_timestamp_option_reads_as_the_option_loop_reads_it(tsval, tsecr, syn):
    # NOP, NOP, TS (kind 8, length 10) is read at once; TS, NOP, NOP (the same bytes reordered) goes
    # through the option loop: both give the TSval and TSecr, and nothing else.
    ts = struct.pack(">BBII", 8, 10, tsval, tsecr)
    aligned = tcp_parse_options(b"\x01\x01" + ts, syn)
    looped = tcp_parse_options(ts + b"\x01\x01", syn)
    assert _fields(aligned) == _fields(looped) == (0, None, False, tsval, tsecr)


@given(st.binary(min_size=12, max_size=12))
def test_twelve_option_bytes_read_the_same_whatever_they_hold(options):
    # The shortcut needs the exact NOP, NOP, 8, 10 prefix; any other 12 bytes take the loop.  Hand check of
    # the loop's timestamp rule: a TS option of length 10 that fits is read wherever it starts.
    opt = tcp_parse_options(options, False)
    if options[:4] == b"\x01\x01\x08\x0a":
        assert (opt.rcv_tsval, opt.rcv_tsecr) == struct.unpack(">II", options[4:])
    assert opt.mss_clamp == 0 and opt.snd_wscale is None and not opt.sack_ok


@given(limit=st.integers(2, 40), count=st.integers(0, 400))
def test_thinned_take_and_keep_keep_what_add_keeps(limit, count):
    by_add = Thinned(limit)
    by_take = Thinned(limit)
    kept = [by_add.add((i,)) for i in range(count)]
    taken = []
    for i in range(count):
        taken.append(by_take.take())
        if taken[-1]:
            by_take.keep((i,))
    assert kept == taken and by_add.points == by_take.points and by_add.every == by_take.every


def _tcp_event_calls(run) -> int:
    """How many times tcp_event() is entered while run() runs."""
    calls = 0
    code = tcp_event.__code__

    def profiler(frame, event, arg):
        nonlocal calls
        if event == "call" and frame.f_code is code:
            calls += 1

    sys.setprofile(profiler)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def test_explanation_events_cost_nothing_when_off():
    # A run has no explanations: not one event is built (its numbers are not even computed).
    config = RunConfig(kernel="6.18", driver="tun", options={}, traffic="tcp-bulk", socket="tcp", flows=1, count=200,
                       so_rcvbuf=20000)
    assert _tcp_event_calls(lambda: simulate(config)) == 0
    # skbsim tcp --explain records them: the same rules fire there.
    steps = parse_steps(["send:1000x90", "read", "send:1000x20"])
    assert _tcp_event_calls(lambda: play("6.18", "tun", {}, steps, explain=True)) > 0
