"""The fast engine's ntb_netdev (skbsim/fast/ntb.py) against the reference engine's (skbsim/drivers/ntb.py)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import simulate_engine, unsupported
from skbsim.fast.tcp import TCP_OFO, TCP_WHY
from skbsim.sim import RunConfig, simulate
from tcp_engines import TCP_RUN, run_both, same
from test_fast_engine import FAULTS, RUN_SPACE, _assert_same

NTB_KERNELS = ("6.1", "6.9", "6.12", "6.18", "7.1")

#: copybreak 0 (upstream), TrueNAS's 3646, or any
COPYBREAKS = st.one_of(st.sampled_from(["0", "3646"]), st.integers(1, 65535).map(str))
#: the default (65510: kmalloc-large heads), around a page (page_frag or kmalloc heads), small (slab heads)
MTUS = st.one_of(st.sampled_from([None, "65510", "9000", "1500", "68"]), st.integers(68, 65510).map(str))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=st.sampled_from(NTB_KERNELS),
    copybreak=COPYBREAKS,
    mtu=MTUS,
    traffic=st.sampled_from(["imix", "fixed:60", "fixed:1514", "fixed:3660", "fixed:9014", "uniform:14-1600",
                             "uniform:14-9100", "uniform:14-65535", "fixed:65524", "fixed:65525"]),
    run=RUN_SPACE,
    app_rate=st.sampled_from([None, 0.0, 1e4, 5e5]),
    faults=FAULTS,
)
def test_random_ntb_workloads_give_identical_json(kernel, copybreak, mtu, traffic, run, app_rate, faults):
    options = {"copybreak": copybreak}
    if mtu:
        options["mtu"] = mtu
    _assert_same(**{**run, "app_rate": app_rate}, kernel=kernel, driver="ntb", options=options, traffic=traffic,
                 faults=faults)


@pytest.mark.parametrize("kernel", NTB_KERNELS)
@pytest.mark.parametrize("options", [{}, {"copybreak": "3646"}, {"mtu": "1500", "copybreak": "200"}, {"mtu": "300"}])
@pytest.mark.parametrize("faults", [
    # every layer at once, moderately often: refills lost, copies dropped, sk_buffs and heads of each kind
    (("page_alloc", 0.05, 1, -1, 0), ("slab", 0.05, 1, -1, 0), ("skb_head", 0.05, 1, -1, 0),
     ("skb_data", 0.1, 1, -1, 0), ("page_frag", 0.1, 1, -1, 0)),
    # every allocation fails from the 50th page on: the posted buffers run out (ring drops)
    (("page_alloc", 1.0, 1, -1, 50), ("skb_data", 1.0, 1, -1, 50)),
    # every slab allocation fails, for ever: no refill, no copy
    (("slab", 1.0, 1, -1, 0),),
])
def test_ntb_fault_workloads(kernel, options, faults):
    _assert_same(kernel=kernel, driver="ntb", options=options, traffic="uniform:14-9100", count=1_500, rate=2e6,
                 cpus=2, rcvbuf=400_000, faults=faults)


def test_ntb_runs_on_the_fast_engine():
    config = RunConfig(driver="ntb", kernel="6.12", options={"copybreak": "3646"}, traffic="imix", count=100)
    assert unsupported(config) is None
    _, _, why = simulate_engine(config, "fast")
    assert why is None


# -- --socket tcp through ntb (skbsim/fast/tcp_napi.py's join; pruning and collapsing in tcp_pressure.py) --

TCP_WORKLOADS = {
    "bulk": dict(count=1500),
    # ntb's zero-window case: small messages, a small SO_RCVBUF and a slow reader: tcp_prune_queue() and collapsing
    "pressure": dict(tcp="messages:100@50000", count=2000, rate=1e6, so_rcvbuf=16384, app_rate=100, rtt_ms=0.5,
                     traffic="tcp-bulk:ts=1"),
    # a reader that never reads: the window closes, zero-window probes
    "zero-window": dict(count=2000, app_rate=0, duration_ms=2000.0),
    # a failing slab: refills lost, copies dropped, the out-of-order queue, retransmissions
    "faults": dict(count=2000, flows=2, cpus=2, traffic="tcp-bulk:ts=1", faults=(("slab", 0.02, 1, -1, 0),)),
}


@pytest.mark.parametrize("kernel", ["6.12", "6.18"])
@pytest.mark.parametrize("copybreak", ["0", "3646"])
@pytest.mark.parametrize("workload", list(TCP_WORKLOADS))
def test_ntb_tcp_workloads(kernel, copybreak, workload):
    reference, fast, why = run_both({**TCP_RUN, "kernel": kernel, "driver": "ntb", "options": {"copybreak": copybreak},
                                     **TCP_WORKLOADS[workload]})
    assert why is None and fast["engine"] == "fast" and same(reference, fast)
    if workload == "pressure":
        assert reference["tcp"]["counters"]["PruneCalled"] > 0 and reference["tcp"]["counters"]["TCPRcvCollapsed"] > 0
    if workload == "bulk":  # upstream's 128 KiB heads, or TrueNAS's 1514-byte copies (see the UDP check above)
        assert reference["truesize_per_packet"] == (131328 if copybreak == "0" else 2176)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel=st.sampled_from(NTB_KERNELS), copybreak=COPYBREAKS, mtu=st.sampled_from([None, "9000", "1500"]),
       ts=st.sampled_from([0, 1]),
       tcp=st.sampled_from(["bulk", "messages:3000", "messages:20000@2000", "messages:100@50000", "messages:1460"]),
       flows=st.sampled_from([1, 2, 3]), rtt=st.sampled_from([0.05, 0.5, 20.0]),
       app_rate=st.sampled_from([None, 0, 100, 1000, 200000]), so_rcvbuf=st.sampled_from([None, 8192, 16384, 1 << 20]),
       count=st.integers(1, 1500), rate=st.sampled_from([1e5, 1e6, 3e6]), cpus=st.integers(1, 2),
       faults=st.sampled_from([(), (), (("slab", 0.02, 1, -1, 0),), (("page_alloc", 0.01, 1, -1, 0),),
                               (("skb_data", 0.01, 1, -1, 100), ("page_frag", 0.3, 2, 3, 10))]))
def test_random_ntb_tcp_workloads(kernel, copybreak, mtu, ts, tcp, flows, rtt, app_rate, so_rcvbuf, count, rate, cpus,
                                  faults):
    options = {"copybreak": copybreak, **({"mtu": mtu} if mtu else {})}
    reference, fast, why = run_both({**TCP_RUN, "kernel": kernel, "driver": "ntb", "options": options,
                                     "traffic": f"tcp-bulk:ts={ts}", "tcp": tcp, "flows": flows, "rtt_ms": rtt,
                                     "app_rate": app_rate, "so_rcvbuf": so_rcvbuf, "count": count, "rate": rate,
                                     "cpus": cpus, "faults": faults})
    assert why is None or why.removesuffix("; rerun") == TCP_WHY[TCP_OFO], why
    assert same(reference, fast)


@pytest.mark.parametrize("kernel", ["6.1", "6.12", "7.1"])
def test_ntb_skbs_worked_out_from_the_kernel_formulas(kernel):
    """The skbs of 1514-byte frames, worked out by hand (x86_64: PAGE_SIZE 4096, NET_SKB_PAD 64,
    NET_IP_ALIGN 0, SMP_CACHE_BYTES 64, SKB_DATA_ALIGN(sizeof(struct sk_buff)) 256,
    SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) 320, SKB_TRUESIZE(X) = X + 256 + 320):

    Upstream (copybreak 0): each posted buffer is netdev_alloc_skb(65510 + 14 = 65524);
    __netdev_alloc_skb() adds NET_SKB_PAD, 65588 > SKB_WITH_OVERHEAD(PAGE_SIZE) = 3776, so __alloc_skb();
    kmalloc_reserve(): SKB_HEAD_ALIGN(65588) = SKB_DATA_ALIGN(65588) + 320 = 65600 + 320 = 65920, above
    KMALLOC_MAX_CACHE_SIZE (8192), so kmalloc_size_roundup() = PAGE_SIZE << get_order(65920) = 131072: an
    order-5 page; end = 131072 - 320, truesize = 131072 - 320 + 576 = 131328 for every frame.  Each frame
    handed up is replaced by a fresh order-5 buffer: 100 at open + one per frame.

    TrueNAS (copybreak 3646): the frame is copied into netdev_alloc_skb_ip_align(1514): 1514 + 0 + 64 =
    1578, within (SKB_WITH_OVERHEAD(1024) ..., 3776], so a page_frag fragment of SKB_HEAD_ALIGN(1578) =
    1600 + 320 = 1920 bytes; truesize = SKB_TRUESIZE(1920 - 320) = 1600 + 576 = 2176; the ring's buffers
    are posted again (100 order-5 pages, those of the open, and no more).
    """
    count = 300
    run = dict(kernel=kernel, driver="ntb", traffic="fixed:1514", count=count, rate=1e5, rcvbuf=1 << 26)
    for engine in ("fast", "reference"):
        upstream, _, why = simulate_engine(RunConfig(**run, options={}), engine)
        assert why is None
        assert upstream["truesize_per_packet"] == 131328
        assert upstream["pages"]["allocated_by_order"]["5"] == 100 + count
        assert upstream["head_sources"] == {"ntb rx buffer (pages-order-5)": count}
        truenas, _, why = simulate_engine(RunConfig(**run, options={"copybreak": "3646"}), engine)
        assert why is None
        assert truenas["truesize_per_packet"] == 2176
        assert truenas["pages"]["allocated_by_order"]["5"] == 100
        assert truenas["head_sources"] == {"page_frag": count}
        stats = truenas["driver_stats"]
        assert stats["buffers_copied"] == stats["buffers_reused"] == count
        assert stats["bytes_copied"] == 1514 * count
        assert truenas["leaks"]["clean"] and upstream["leaks"]["clean"]


def test_ntb_reference_and_fast_agree_on_the_readme_example_udp():
    """ntb's example in the README, as UDP: upstream's 131328-byte skbs and TrueNAS's copies, 6.12 and 6.18."""
    for kernel in ("6.12", "6.18"):
        for copybreak in ("0", "3646"):
            _assert_same(kernel=kernel, driver="ntb", options={"copybreak": copybreak}, traffic="imix", count=3_000,
                         rate=1e6, cpus=2)
    reference, _ = simulate(RunConfig(kernel="6.12", driver="ntb", options={}, traffic="imix", count=10))
    assert reference["engine"] == "reference"


@pytest.mark.parametrize("base, constants", [
    # the largest page order below the ring buffer's (order 5): no buffer is ever posted, every frame a ring drop
    ("6.12", {"MAX_PAGE_ORDER": 1}), ("6.18", {"MAX_PAGE_ORDER": 3}),
    # larger pages (fewer orders for the same head), and copies two bytes longer (NET_IP_ALIGN 2)
    ("6.9", {"PAGE_SIZE": 16384}), ("6.18", {"PAGE_SIZE": 65536}), ("6.18", {"NET_IP_ALIGN": 2}),
])
@pytest.mark.parametrize("options", [{}, {"copybreak": "3646"}, {"mtu": "1500", "copybreak": "300"}])
def test_ntb_on_unusual_profiles(tmp_path, base, constants, options):
    from skbsim.profile import load_profile

    path = tmp_path / "unusual.toml"
    path.write_text(load_profile(base).derive(origin=str(path), constants=constants, name=f"{base}-unusual").to_toml())
    config = dict(kernel=str(path), driver="ntb", options=options, traffic="uniform:14-9100", count=1_000, rate=2e6,
                  cpus=2, rcvbuf=400_000, faults=(("slab", 0.02, 1, -1, 0),))
    _assert_same(**config)
    if constants.get("MAX_PAGE_ORDER", 5) < 5 and not options:
        reference, _ = simulate(RunConfig(**config))
        assert reference["driver_stats"]["buffer_alloc_failures"] == 200  # 100 a CPU, at open
        assert reference["dropped"]["ring_full"] == 1_000
