"""GRO behind the page_pool drivers: TCP segments through a driver's own poll, values worked out by hand.

The drivers hand their skbs to skbsim.net.gro as the kernel's do (mlx5e_complete_rx_cqe() and
napi_gro_receive(); gve's frag-only skbs through napi_gro_frags()), with skb->hash from the NIC's RSS
hash and napi_complete_done() at the end of a poll that did less than its budget.

x86_64 profiles: SKB_TRUESIZE(x) = x + SKB_DATA_ALIGN(sizeof(struct sk_buff)) 256 + SHINFO_SIZE 320;
MAX_SKB_FRAGS 17.  gro_helpers.segments(): MSS 1448 with timestamps, 14 + 20 + 32 + 1448 = 1514-byte
frames, 1500-byte skbs after eth_type_trans(); GRO's offset past the IP and TCP headers is 52.
"""

import pytest

from gro_helpers import segments
from skbsim.drivers import DRIVERS
from skbsim.kernel import Kernel
from skbsim.net.napi import napi_list_del, napi_schedule, napi_struct, net_device
from skbsim.net.skbuff import kfree_skb
from skbsim.sim import RunConfig, simulate

RELEASES = ("6.1", "6.9", "6.12", "6.18", "7.1")


class Queue:
    """One RX queue of a driver, polled as the run loop polls it (on the CPU's poll list meanwhile)."""

    def __init__(self, kernel, driver: str, **options):
        self.kernel = kernel
        self.driver = DRIVERS[driver]
        self.napi = napi_struct(net_device("eth0"))
        with kernel.softirq():
            self.queue = self.driver.open_queue(kernel, self.napi.dev, self.napi, {k: str(v) for k, v in options.items()})

    def poll(self, frames, budget: int = 64) -> tuple[list, int]:
        for frame in frames:
            assert self.driver.nic_receive(self.kernel, self.queue, frame)
        up = []
        napi_schedule(self.napi, 0)
        work = self.driver.poll(self.kernel, self.queue, budget, up.append)
        if work < budget:
            napi_list_del(self.napi)
        return up, work

    def close(self, up) -> None:
        with self.kernel.softirq():
            for skb in up:
                kfree_skb(self.kernel, skb)
            self.driver.close_queue(self.kernel, self.queue)
        self.kernel.assert_no_leaks()


@pytest.mark.parametrize("release", RELEASES)
def test_mlx5_striding_rq_steals_each_segments_head(release):
    kernel = Kernel(release)
    q = Queue(kernel, "mlx5", rq="striding")
    cache = kernel.cpus[0].napi_alloc_cache
    puts = cache.puts
    up, work = q.poll(segments(10))
    # Ten frames, one poll of budget 64: work 10 < 64, so mlx5e_napi_poll() ends in napi_complete_done(),
    # which passes up what GRO holds.
    assert work == 10
    (p,) = up
    # MTU 1500 is linear (MLX5_SKB_FRAG_SZ(64 + 1522) = 1600 + 320 = 1920 <= 4096): each frame is built in
    # its 2048-byte stride by mlx5e_skb_from_cqe_mpwrq_linear(): napi_build_skb(frag_size =
    # MLX5_SKB_FRAG_SZ(64 + 1514) = SKB_DATA_ALIGN(1578) 1600 + 320 = 1920), truesize 1920 + 256 = 2176, a
    # page-fragment head (head_frag).  Segment 1 is held.  Segments 2..10: headlen 1500 > GRO offset 52 and
    # head_frag, so skb_gro_receive() steals the head: frag (page, offset + 52, 1448), the segment keeps
    # SKB_DATA_ALIGN(sizeof(struct sk_buff)) 256 and p gains 2176 - 256 = 1920 (1 + 9 frags <= 17).
    assert (p.len, p.data_len, p.nr_frags) == (1500 + 9 * 1448, 9 * 1448, 9)
    assert p.truesize == 2176 + 9 * 1920 == 19456
    assert [f.size for f in p.shinfo.frags] == [1448] * 9
    # tcp4_gro_complete() of 10 segments: gso_size = the MSS, gso_segs 10.
    assert (p.shinfo.gso_size, p.shinfo.gso_segs) == (1448, 10)
    # The nine stolen heads' sk_buffs went to the NAPI skb cache (napi_skb_free_stolen_head()).
    assert cache.puts - puts == 9
    stats = q.napi.gro.stats
    assert (stats.received, stats.held, stats.merged_stolen_head, stats.merged_frags, stats.merged_frag_list,
            stats.napi_cache_puts) == (10, 1, 9, 0, 0, 9)
    assert stats.flushes == {"napi_complete": 1}
    # 6.4+ marks every skb for page_pool recycling, 6.1 none (its pages are the driver's): either way p and
    # the segments agree, so no merge is refused (-ETOOMANYREFS).
    assert p.pp_recycle == (release != "6.1")
    q.close(up)


@pytest.mark.parametrize("release", RELEASES)
def test_mlx5_striding_rq_chains_past_max_skb_frags(release):
    kernel = Kernel(release)
    q = Queue(kernel, "mlx5", rq="striding")
    up, _ = q.poll(segments(20))
    (p,) = up
    # Segments 2..18 steal their heads into p (frags 1..17).  Segment 19 finds 17 + 1 > MAX_SKB_FRAGS: it is
    # chained whole on p's frag_list, its 52 header bytes pulled, p gaining all of its 2176.  Segment 20
    # steals its head into that last skb (0 + 1 frags): 1920 more.
    # len 1500 + 19 * 1448 = 29012; truesize 2176 + 17 * 1920 + 2176 + 1920 = 38912.
    assert (p.len, p.nr_frags, p.truesize) == (29012, 17, 38912)
    (chained,) = p.shinfo.frag_list
    assert (chained.len, chained.nr_frags, chained.truesize) == (2 * 1448, 1, 2176 + 1920)
    assert p.shinfo.gso_segs == 20
    stats = q.napi.gro.stats
    assert (stats.merged_stolen_head, stats.merged_frag_list, stats.napi_cache_puts) == (18, 1, 18)
    q.close(up)


@pytest.mark.parametrize("release, head_truesize", [("6.1", 1280), ("6.9", 1280), ("6.12", 1280), ("6.18", 960),
                                                    ("7.1", 960)])
def test_gve_frag_only_skbs_go_through_napi_gro_frags(release, head_truesize):
    kernel = Kernel(release)
    q = Queue(kernel, "gve")
    up, _ = q.poll(segments(5))
    (p,) = up
    # 1514 > rx_copybreak 256: each frame is frag 0 (truesize: the 2048-byte buffer) of napi_get_frags()'s
    # skb, napi_alloc_skb(GRO_MAX_HEAD 304): 304 + 64 = 368, 6.1-6.12 a 1K piece (SKB_TRUESIZE(704) = 1280),
    # 6.18 and 7.1 skbuff_small_head (960).  napi_gro_frags() pulls the 14-byte Ethernet header out of frag 0.
    # Segment 1 is held, its 52 header bytes pulled into the head as well: frag 0 keeps 1448.  Segment 2's
    # skb has no linear data: its frag moves (offset + 52, 1448 bytes), p gains 2048, and napi_reuse_skb()
    # makes the emptied skb napi->skb, so segments 3..5 arrive in that same skb.
    assert (p.len, p.data_len, p.nr_frags) == (1500 + 4 * 1448, 5 * 1448, 5)
    assert p.truesize == head_truesize + 5 * 2048
    stats = q.napi.gro.stats
    assert (stats.merged_frags, stats.napi_skb_reused, stats.napi_cache_puts) == (4, 4, 0)
    assert q.napi.skb is not None and q.napi.skb.len == 0   # kept for the next frame; netif_napi_del() frees it
    q.close(up)


@pytest.mark.parametrize("release, driver, options", [
    ("6.18", "mlx5", {}), ("6.18", "mlx5", {"rq": "legacy", "mtu": "9000"}), ("6.18", "bnxt", {}),
    ("6.18", "bnxt", {"tpa": "off"}), ("6.18", "mana", {}), ("6.18", "gve", {}), ("6.18", "gve", {"hsplit": "on"}),
    ("6.18", "libeth", {}), ("6.18", "libeth", {"nic": "idpf", "hsplit": "on"}),
    ("7.1", "ice", {"rx": "build_skb"}), ("7.1", "mlx5", {}), ("7.1", "gve", {}),
])
def test_tcp_bulk_runs_report_gro_and_give_everything_back(release, driver, options):
    config = RunConfig(kernel=release, driver=driver, options=options, traffic="tcp-bulk", count=2000, flows=4,
                       rate=10_000_000, packet_cost_ns=50)
    result, _ = simulate(config)
    gro = result["gro"]
    assert result["leaks"]["clean"]
    # Every frame reached GRO; what it passed up carries every segment.
    assert gro["skbs_in"] == gro["tcp_segments"] == 2000
    assert gro["skbs_out"] == result["delivered"] + result["dropped"]["socket_rcvbuf"]
    assert round(gro["segments_per_skb"] * gro["skbs_out"]) == 2000
    assert gro["skbs_out"] < 2000   # 4 flows at 10 Mpps: several segments of a flow per poll merge
    # --opt gro=0 (ethtool -K DEV gro off): every skb goes up as the driver built it.
    off, _ = simulate(RunConfig(**{**config.__dict__, "options": {**options, "gro": "0"}}))
    assert "gro" not in off and off["delivered"] == 2000 and off["leaks"]["clean"]


def test_page_pool_drivers_take_the_gro_options():
    from skbsim.drivers.base import GRO_OPTIONS

    names = {option.name for option in GRO_OPTIONS}
    for driver in ("mlx5", "bnxt", "mana", "gve", "libeth"):
        assert names <= {option.name for option in DRIVERS[driver].options}, driver
