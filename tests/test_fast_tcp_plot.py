"""--plot of --socket tcp runs on the fast engine: the memory series (a point per poll: pages in use and
sk_rmem_alloc summed over the receivers), truesize by frame length and each flow's series (window, rmem_alloc,
rcvbuf, bytes received), the same as the reference engine's, through tun, ntb, ice and copybreak without GRO;
and the plots drawn from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from skbsim.fast import simulate_engine
from skbsim.report import write_plots
from skbsim.sim import RunConfig, simulate
from skbsim.sockets import Thinned
from tcp_engines import TCP_RUN, same

#: the drivers whose TCP runs the fast engine draws (ice and copybreak without GRO)
FORMS = [("tun", {}), ("ntb", {}), ("ntb", {"copybreak": "0"}), ("ice", {"gro": "0"}),
         ("ice", {"rx": "legacy", "gro": "0"}), ("copybreak", {"gro": "0"}),
         # tun's GRO (IFF_NAPI, IFF_NAPI_FRAGS) merges nothing: each skb keeps its length's truesize
         ("tun", {"napi": "1"}), ("tun", {"napi": "1", "frags": "1"})]
FORM_IDS = ["tun", "ntb", "ntb-copybreak0", "ice-build_skb", "ice-legacy", "copybreak", "tun-napi", "tun-frags"]
WORKLOADS = {
    # the reader slower than the sender: rmem grows, the window closes and opens
    "slow reader": dict(count=3000, app_rate=20000, traffic="tcp-bulk:ts=1"),
    # several flows on two CPUs, each with its series; a small SO_RCVBUF
    "five flows": dict(count=3000, flows=5, cpus=2, tcp="messages:3000", so_rcvbuf=65536, app_rate=50000),
}


def _both(config: dict) -> tuple[tuple, tuple]:
    """(JSON, extra, why) of the fast engine with plot, then (JSON, extra) of the reference engine's simulate()."""
    fast = simulate_engine(RunConfig(**config), "fast", plot=True)
    reference = simulate(RunConfig(**config))
    return fast, reference


def _assert_same(fast, reference) -> None:
    (result, extra, why), (ref_result, ref_extra) = fast, reference
    assert why is None and result["engine"] == "fast", why
    assert same(ref_result, result)
    assert extra == ref_extra
    assert list(extra) == ["series", "truesize_by_len", "page_size", "tcp_series"]
    assert [name for name, _ in extra["tcp_series"]] == [flow["flow"] for flow in ref_result["flows"]]
    assert extra["series"] and extra["truesize_by_len"] and all(points for _, points in extra["tcp_series"])


@pytest.mark.parametrize("form", [("tun", {}), ("ntb", {}), ("ice", {"gro": "0"}), ("tun", {"napi": "1"})],
                         ids=["tun", "ntb", "ice-build_skb", "tun-napi"])
def test_a_captures_plot_data_is_the_same(tmp_path, form):
    # two flows, the second first seen in mid-stream 1 ms later, the first with a reader slower than it: each
    # flow's series starts where its receiver is set up (CaptureSetups.set_up()), in the order their first skb came
    from tcp_engines import SYN, segment, write_capture

    frames = [(0.0, segment(99, 0, flags=SYN, syn_options=True))]
    frames += [((n + 1) * 1e-5, segment(100 + 1000 * n, 1000, ts=1000 + n)) for n in range(300)]
    frames += [(1e-3 + n * 2e-5, segment(5000 + 500 * n, 500, sport=40001, ts=None)) for n in range(100)]
    traffic = write_capture(str(tmp_path / "c.pcap"), sorted(frames, key=lambda frame: frame[0]))
    driver, options = form
    fast, reference = _both(dict(kernel="6.18", driver=driver, options=options, traffic=traffic, socket="tcp",
                                 count=None, rate=None, app_rate=2000))
    _assert_same(fast, reference)
    assert len(reference[1]["tcp_series"]) == 2


@pytest.mark.parametrize("kernel", ["6.1", "6.12", "6.18"])
@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_tcp_plot_data_is_the_same(kernel, form, workload):
    driver, options = form
    fast, reference = _both({**TCP_RUN, "kernel": kernel, "driver": driver, "options": options,
                             **WORKLOADS[workload]})
    _assert_same(fast, reference)
    # the receivers' memory and windows moved: rmem in the memory series, windows in the flows' series
    assert max(point[2] for point in reference[1]["series"]) > 0
    assert len({point[1] for _, points in reference[1]["tcp_series"] for point in points}) > 1


@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
def test_thinned_tcp_plot_data_is_the_same(form, monkeypatch):
    """Runs long enough that the memory series and the flows' series (2000 points each) were halved."""
    halved = set()
    keep = Thinned.keep

    def keep_and_note(series, point):
        every = series.every
        keep(series, point)
        if series.every != every and series.limit == 2000:
            halved.add(id(series))

    monkeypatch.setattr(Thinned, "keep", keep_and_note)
    driver, options = form
    fast, reference = _both({**TCP_RUN, "kernel": "6.12", "driver": driver, "options": options, "count": 20000,
                             "flows": 2, "app_rate": 100000})
    _assert_same(fast, reference)
    # the memory series (a point per poll) and both flows' series were thinned
    assert reference[0]["napi"]["polls"] > 2000 and len(halved) == 3, (reference[0]["napi"]["polls"], halved)


def test_the_plots_are_the_same(tmp_path):
    """write_plots() draws the same pictures from either engine's data."""
    config = {**TCP_RUN, "kernel": "6.18", "driver": "ntb", "options": {"copybreak": "0"}, "count": 3000,
              "flows": 2, "app_rate": 20000}
    fast, reference = _both(config)
    _assert_same(fast, reference)
    drawn = {}
    for engine, (result, extra) in (("fast", fast[:2]), ("reference", reference)):
        paths = write_plots(str(tmp_path / engine), [({**result, "engine": "either"}, extra)])
        drawn[engine] = {Path(path).name: Path(path).read_bytes() for path in paths}
    assert sorted(drawn["fast"]) == ["memory.png", "tcp.png", "truesize.png"]
    assert drawn["fast"] == drawn["reference"]
