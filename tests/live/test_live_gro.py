"""GRO against the live kernel: TCP bursts through a TAP with IFF_NAPI, skb by skb against the model.

Each burst is written within one jiffy as a rule, with a gro_flush_timeout on the TAP so that GRO holds
across writes (see skbsim.live.gro); when a jiffy tick falls inside the burst the kernel completes the
aggregate early, which shows as skbs passed up at other places than the model's (most often a different number of
them; under load, 2 segments then 44 against 45 then 1): such a burst is written again, up to six times.
"""

import pytest

from skbsim.kernel import Kernel
from skbsim.live.gro import Segment, bulk, compare, live_burst, model_burst
from skbsim.live.probe import requirements_missing
from skbsim.profile import load_profile

MISSING = requirements_missing()
live = pytest.mark.skipif(bool(MISSING), reason="live GRO needs: " + "; ".join(MISSING))
ACK, PSH = 0x10, 0x08


def _agree(segments, tries=6, **kw):
    for _ in range(tries):
        model = model_burst(Kernel(load_profile("host")), segments, **kw)
        observed = live_burst(segments, **kw)
        if not compare(observed, model):
            break
    assert compare(observed, model) == []
    return observed


@pytest.mark.live
@live
def test_46_segments_chain_on_the_frag_list():
    # Blocking writes: tun_alloc_skb() skbs with kmalloc'ed heads (truesize 2304, all linear), so every
    # merge chains the whole skb: 45 segments of 2304 = 103680, len 1500 + 44 * 1448 = 65212; the 46th
    # would pass gro_max_size 65536 and goes up alone.
    seen = _agree(bulk(46))
    assert seen["out"] == [(65212, 45 * 2304), (1500, 2304)]


@pytest.mark.live
@live
def test_timestamps_psh_short_segments_and_pure_acks():
    segments = bulk(5, tsval=7) + bulk(3, seq=1000 + 5 * 1448, ip_id=6, tsval=8)
    segments.append(Segment(1448, 1000 + 8 * 1448, 9, tsval=8, flags=ACK | PSH))
    segments += bulk(2, seq=1000 + 9 * 1448, ip_id=10, tsval=8)
    segments.append(Segment(300, 1000 + 11 * 1448, 12, tsval=8))
    segments += [Segment(0, 1000 + 11 * 1448 + 300, 13 + i, tsval=8, ack_seq=2 + i) for i in range(3)]
    seen = _agree(segments)
    # 5 (TSval change) | 3 + the PSH one | 2 + the short one | three pure ACKs alone
    assert [n for n, _ in seen["out"]] == [1500 + 4 * 1448, 1500 + 3 * 1448, 1500 + 1448 + 300, 52, 52, 52]


@pytest.mark.live
@live
@pytest.mark.parametrize("flows", [8, 9])
def test_one_bucket_holds_eight_flows(flows):
    # tun sets no skb->hash: every flow lands in bucket 0, which holds MAX_GRO_SKBS 8.  Two rounds of one
    # segment per flow: with 8 flows each second segment finds its flow held (8 aggregates of 2); with 9
    # the ninth evicts the first flow, whose next segment evicts the second, and so on: nothing merges.
    segments = []
    for round_ in range(2):
        segments += [Segment(1448, 5000 + round_ * 1448, 1 + round_, sport=30000 + flow) for flow in range(flows)]
    seen = _agree(segments)
    assert [n for n, _ in seen["out"]] == ([2948] * 8 if flows == 8 else [1500] * 18)


@pytest.mark.live
@live
def test_gro_max_size():
    seen = _agree(bulk(14), gro_max_size=20000)
    assert [n for n, _ in seen["out"]] == [18876, 1500]


@pytest.mark.live
@live
@pytest.mark.parametrize("kw", [{"route": "napi_frags"}, {"gro": False}])
def test_no_merging_with_iff_napi_frags_or_gro_off(kw):
    # IFF_NAPI_FRAGS calls napi_complete() (no work done: no flush timeout) after each napi_gro_frags();
    # ethtool -K gro off elides GRO.
    seen = _agree(bulk(6), **kw)
    assert [n for n, _ in seen["out"]] == [1500] * 6
