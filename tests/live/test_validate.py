"""``skbsim validate``: the tun model against the running kernel.

The sweep, argument parsing, comparison and the missing-requirements exit
run everywhere; the rest is marked ``live`` (root, /dev/net/tun, tracefs,
iproute2) and skips with the reason where those are missing.
"""

from __future__ import annotations

import json
import os

import pytest

from skbsim import validate as validate_module
from skbsim.cli import main
from skbsim.errors import InputError
from skbsim.live.probe import requirements_missing
from skbsim.live.tap import our_namespaces
from skbsim.live.tracefs import our_instances
from skbsim.validate import (
    BOUNDARIES,
    ROUTES,
    compare_route,
    parse_length_range,
    parse_routes,
    sweep_lengths,
)

# ---------------------------------------------------------------- always run


def test_sweep_is_seeded_and_includes_ends_and_boundaries():
    a = sweep_lengths((60, 1514, 1), 200, seed=7)
    assert a == sweep_lengths((60, 1514, 1), 200, seed=7)
    assert a != sweep_lengths((60, 1514, 1), 200, seed=8)
    assert {60, 1514, 3456, 3457, 9000, 16000} <= set(a)
    assert a == sorted(set(a))
    # 200 drawn from the range, plus the boundaries outside it (the range's ends may be drawn too).
    inside = [n for n in a if 60 <= n <= 1514]
    assert 200 <= len(inside) <= 200 + 2 + len([b for b in BOUNDARIES if 60 <= b <= 1514])


def test_sweep_every_length_and_step():
    assert sweep_lengths((100, 110, 5), None, boundaries=False) == [100, 105, 110]
    # A sample of 0 leaves only the range's ends (the CLI's --sample 0 means "every length": None).
    assert sweep_lengths((100, 111, 5), 0, boundaries=False) == [100, 110]


@pytest.mark.parametrize("text", ["60", "1:100", "60:50", "60:70:0", "a:b", "60:70000"])
def test_bad_length_ranges(text):
    with pytest.raises(InputError):
        parse_length_range(text)


def test_routes():
    assert parse_routes("block, napi,block") == ["block", "napi"]
    with pytest.raises(InputError, match="unknown route"):
        parse_routes("block,fast")


def test_compare_route_counts_every_field():
    route = ROUTES["block"]
    live = [{"len": 46, "data_len": 0, "truesize": 832, "nr_frags": 0, "event": "e", "error": None},
            {"len": 1500, "data_len": 0, "truesize": 2304, "nr_frags": 0, "event": "e", "error": None},
            {"len": None, "data_len": None, "truesize": None, "nr_frags": None, "event": None, "error": "EINVAL"}]
    model = [{"len": 46, "data_len": 0, "truesize": 960, "nr_frags": 0},
             {"len": 1500, "data_len": 0, "truesize": 2304, "nr_frags": 0}, None]
    result = compare_route(route, [60, 1514, 13], live, model)
    assert (result.frames, result.agreements, result.rejected) == (3, 2, 1)
    assert [(d.frame_len, d.field, d.live, d.model) for d in result.disagreements] == [(60, "truesize", 832, 960)]


def test_missing_requirements_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(validate_module, "requirements", lambda: ["root (uid 0)", "/dev/net/tun (CONFIG_TUN)"])
    assert main(["validate", "--no-udp"]) == 2
    err = capsys.readouterr().err
    assert "root (uid 0)" in err and "/dev/net/tun" in err and "Traceback" not in err


# ---------------------------------------------------------------- live

MISSING = requirements_missing()
live = pytest.mark.skipif(bool(MISSING), reason="live validation needs: " + "; ".join(MISSING))


def _nothing_of_ours_left():
    assert our_namespaces(os.getpid()) == []
    assert our_instances(pid=os.getpid()) == []


@pytest.mark.live
@live
def test_validate_sweep_agrees_with_the_running_kernel(capsys):
    # 220 lengths drawn from 60..1514 plus the boundary and jumbo lengths (14 .. 16000), on the three
    # default routes, against --kernel host; then UDP SO_MEMINFO and receive-buffer fills.
    code = main(["validate", "--json", "--sample", "220", "--seed", "3", "--routes", "block,nonblock,napi"])
    result = json.loads(capsys.readouterr().out)
    assert result["disagreements"] == [], result["disagreements"][:20]
    assert code == 0 and result["ok"]
    assert {route["route"] for route in result["routes"]} == {"block", "nonblock", "napi"}
    assert result["lengths"]["count"] >= 200
    assert all(route["agreements"] == route["frames"] == result["lengths"]["count"] for route in result["routes"])
    assert result["udp"]["fills"] and all(fill["agree"] for fill in result["udp"]["fills"])
    # alloc --kernel host: __alloc_skb(NET_SKB_PAD + len) for every frame the block route keeps linear: every
    # length up to PAGE_SIZE - NET_SKB_PAD and good_linear's beyond (all but the few paged jumbo frames)
    (alloc,) = result["alloc"]
    assert (alloc["function"], alloc["route"]) == ("__alloc_skb", "block")
    assert alloc["agreements"] == alloc["checks"] >= result["lengths"]["count"] - 12
    _nothing_of_ours_left()


@pytest.mark.live
@live
def test_validate_other_routes_agree(capsys):
    code = main(["validate", "--json", "--sample", "40", "--routes", "napi_nonblock,frags,frags_iov", "--no-udp"])
    result = json.loads(capsys.readouterr().out)
    assert result["disagreements"] == [] and code == 0
    # every frags_iov skb's head is one napi_alloc_skb(GRO_MAX_HEAD)
    (alloc,) = result["alloc"]
    assert (alloc["function"], alloc["lengths"]) == ("napi_alloc_skb", 1)
    assert alloc["agreements"] == alloc["checks"] == result["lengths"]["count"]
    _nothing_of_ours_left()


@pytest.mark.live
@live
def test_a_wrong_profile_is_caught(capsys):
    # The distribution 6.18 profile (MAX_HEADER 176) has a 704-byte small head; this machine's config has
    # MAX_HEADER 32 and a 576-byte one.  A blocking 60-byte write: header 124 -> SKB_HEAD_ALIGN 448, so the
    # kernel reports 576 + 256 = 832 where that profile predicts 704 + 256 = 960.  tun_build_skb skbs agree.
    code = main(["validate", "--json", "--kernel", "6.18", "--lengths", "60:61", "--sample", "0",
                 "--no-boundaries", "--no-udp", "--no-slub", "--routes", "block,nonblock"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1 and not result["ok"]
    assert {(d["route"], d["frame_len"], d["field"], d["live"], d["model"]) for d in result["disagreements"]} == {
        ("block", 60, "truesize", 832, 960), ("block", 61, "truesize", 832, 960)}
    _nothing_of_ours_left()


@pytest.mark.live
@live
def test_interrupt_cleans_up(monkeypatch, capsys):
    # Ctrl-C in the middle of injecting: the namespace, TAP and tracefs instance still go away.
    import skbsim.live.probe as probe

    real = probe._inject_batch

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(probe, "_inject_batch", interrupted)
    assert main(["validate", "--no-udp", "--sample", "10"]) == 130
    _nothing_of_ours_left()
