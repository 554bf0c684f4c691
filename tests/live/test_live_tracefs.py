"""Parsing of tracefs output (always runs) and the instance life cycle (live)."""

from __future__ import annotations

import os

import pytest

from skbsim.errors import InputError
from skbsim.live.probe import requirements_missing
from skbsim.live.tracefs import (
    TraceInstance,
    our_instances,
    parse_trace_line,
    parse_trace_text,
)

# Copied from this machine's instance 'trace' file (6.18.44): header, a
# verbose-template event and a plain one.
SAMPLE = """\
# tracer: nop
#
# entries-in-buffer/entries-written: 2/2   #P:2
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
          python-23611   [000] ..s1.  1371.031927: napi_gro_receive_entry: dev=skbt23611-0 napi_id=0x0 \
queue_mapping=1 skbaddr=00000000a9bca51f vlan_tagged=0 vlan_proto=0x0000 vlan_tci=0x0000 protocol=0x88b5 \
ip_summed=0 hash=0x00000000 l4_hash=0 len=46 data_len=0 truesize=832 mac_header_valid=1 mac_header=-14 \
nr_frags=0 gso_size=0 gso_type=0x0
          python-23611   [000] ..s1.  1371.031930: netif_receive_skb: dev=skbt23611-0 skbaddr=00000000a9bca51f len=46
"""


def test_parse_sample():
    snapshot = parse_trace_text(SAMPLE)
    assert snapshot.complete
    assert (snapshot.entries_in_buffer, snapshot.entries_written) == (2, 2)
    assert snapshot.unparsed == []
    verbose, plain = snapshot.records
    assert verbose.event == "napi_gro_receive_entry"
    assert verbose.dev == "skbt23611-0"
    assert (verbose.len, verbose.data_len, verbose.truesize, verbose.nr_frags) == (46, 0, 832, 0)
    assert verbose.cpu == 0 and verbose.pid == 23611 and verbose.task == "python"
    assert verbose.timestamp == pytest.approx(1371.031927)
    assert verbose.fields["protocol"] == "0x88b5"
    assert plain.event == "netif_receive_skb"
    assert (plain.len, plain.truesize, plain.data_len) == (46, None, None)
    assert plain.skbaddr == verbose.skbaddr


def test_event_filter_keeps_short_names():
    snapshot = parse_trace_text(SAMPLE, events=["net/netif_receive_skb"])
    assert [r.event for r in snapshot.records] == ["netif_receive_skb"]


@pytest.mark.parametrize("line, task, pid, cpu", [
    # no irq-info column
    ("   <idle>-0     [001]  99.5: netif_rx_entry: dev=lo len=128 data_len=0 truesize=832 nr_frags=0",
     "<idle>", 0, 1),
    # record-tgid column, task name with a dash and a space
    ("  kworker/u4:2-my job-77 (   70) [003] d..2. 5.000001: netif_rx_entry: dev=lo len=1 truesize=2 nr_frags=0",
     "kworker/u4:2-my job", 77, 3),
    # tgid not known yet: dashes
    ("  a-5 (-------) [000] ..... 1.1: netif_rx_entry: dev=lo len=9 truesize=704 nr_frags=0", "a", 5, 0),
])
def test_line_variants(line, task, pid, cpu):
    record = parse_trace_line(line)
    assert record is not None
    assert (record.task, record.pid, record.cpu) == (task, pid, cpu)
    assert record.event == "netif_rx_entry" and record.dev == "lo"


def test_lost_events_and_overwrites_make_snapshot_incomplete():
    lost = parse_trace_text("CPU:1 [LOST 12 EVENTS]\n")
    assert lost.lost == 12 and not lost.complete
    overwritten = parse_trace_text("# entries-in-buffer/entries-written: 10/15   #P:2\n")
    assert not overwritten.complete


def test_garbage_is_kept_aside_not_fatal():
    snapshot = parse_trace_text("something odd\n\n   \n")
    assert snapshot.records == [] and snapshot.unparsed == ["something odd"]
    assert parse_trace_line("no event here") is None


def test_bad_numbers_become_none():
    record = parse_trace_line("  t-1 [000] 1.0: netif_rx_entry: dev=lo len=abc truesize=0x40")
    assert record.len is None and record.truesize == 64


def test_constructor_rejects_bad_names():
    with pytest.raises(InputError, match="bad trace event name"):
        TraceInstance(["netif_rx"])
    with pytest.raises(InputError, match="no trace events chosen"):
        TraceInstance([])
    with pytest.raises(InputError, match="bad device name"):
        TraceInstance(["net/netif_rx"], device='x" || 1')


live = pytest.mark.skipif(bool(requirements_missing()),
                          reason="live probe needs: " + "; ".join(requirements_missing()))


@pytest.mark.live
@live
def test_instance_is_made_and_removed():
    with TraceInstance(["net/netif_receive_skb_entry"], device="lo") as trace:
        assert trace.name in our_instances(pid=os.getpid())
        assert trace.read().complete  # host lo traffic may appear; nothing lost
    assert our_instances(pid=os.getpid()) == []


@pytest.mark.live
@live
def test_instance_removed_when_event_unknown():
    with pytest.raises(InputError, match="no such tracefs control file"):
        with TraceInstance(["net/no_such_event_here"]):
            pass
    assert our_instances(pid=os.getpid()) == []


@pytest.mark.live
@live
def test_instance_removed_on_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        with TraceInstance(["net/netif_rx_entry"]):
            raise KeyboardInterrupt
    assert our_instances(pid=os.getpid()) == []
