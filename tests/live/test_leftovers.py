"""What a SIGKILLed live run leaves behind is removed by the next one, and only that.

Namespaces and trace instances are named ``skbsim-<pid>-<n>``; a later run
removes those whose pid no longer exists, never a live process's (other
runs on the machine may be working with theirs at the same moment).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from skbsim.live.probe import requirements_missing
from skbsim.live.tap import Netns, our_namespaces, run_in_netns
from skbsim.live.tracefs import TraceInstance, dead_owners, our_instances


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_dead_owners_are_only_the_dead():
    dead = _dead_pid()
    names = [f"skbsim-{dead}-0", f"skbsim-{dead}-7", f"skbsim-{os.getpid()}-0", "skbsim-1-0", "skbsim-x-0",
             f"other-{dead}-0", f"skbsim-{os.getppid()}-3"]
    assert dead_owners(names) == [f"skbsim-{dead}-0", f"skbsim-{dead}-7"]


MISSING = requirements_missing()
live = pytest.mark.skipif(bool(MISSING), reason="live runs need: " + "; ".join(MISSING))

_KILLED = textwrap.dedent("""
    import os, signal
    from skbsim.live.tap import Netns
    from skbsim.live.tracefs import TraceInstance
    netns = Netns().__enter__()
    trace = TraceInstance(["net/netif_receive_skb_entry"], device="lo").__enter__()
    print(netns.name, trace.name, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.live
@live
def test_a_killed_runs_namespace_and_trace_instance_are_removed_by_the_next_run():
    killed = subprocess.run([sys.executable, "-c", _KILLED], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    namespace, instance = killed.stdout.split()
    assert namespace in our_namespaces() and instance in our_instances()  # left behind
    with Netns(), TraceInstance(["net/netif_receive_skb_entry"], device="lo"):
        assert namespace not in our_namespaces() and instance not in our_instances()
    assert our_namespaces(os.getpid()) == [] and our_instances(pid=os.getpid()) == []


@pytest.mark.live
@live
def test_netns_helper_threads_hold_sigint_and_sigterm():
    """A SIGINT taken by a helper thread would interrupt the main thread's clean-up, which holds it."""
    mask = run_in_netns("/proc/self/ns/net", lambda: signal.pthread_sigmask(signal.SIG_BLOCK, []))
    assert {signal.SIGINT, signal.SIGTERM} <= set(mask)
