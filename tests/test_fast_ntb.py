"""The fast engine's ntb_netdev (skbsim/fast/ntb.py) against the reference engine's (skbsim/drivers/ntb.py)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbsim.fast import simulate_engine, unsupported
from skbsim.sim import RunConfig, simulate
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


def test_ntb_reference_and_fast_agree_on_the_issue_example_udp():
    """The issue's example, as UDP: upstream's 131328-byte skbs and TrueNAS's copies, 6.12 and 6.18."""
    for kernel in ("6.12", "6.18"):
        for copybreak in ("0", "3646"):
            _assert_same(kernel=kernel, driver="ntb", options={"copybreak": copybreak}, traffic="imix", count=3_000,
                         rate=1e6, cpus=2)
    reference, _ = simulate(RunConfig(kernel="6.12", driver="ntb", options={}, traffic="imix", count=10))
    assert reference["engine"] == "reference"
