"""Random sequences of skb operations keep the invariants of struct sk_buff.

Invariants, from include/linux/skbuff.h:
  head <= data <= tail <= end            (offsets: 0 <= data <= tail <= end)
  len == headlen + data_len, headlen == tail - data
  data_len == sum of frag sizes; nr_frags <= MAX_SKB_FRAGS
  truesize >= memory held: the head buffer, the aligned sk_buff, and every frag's bytes
and after all frees the leak check is clean.
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from skbsim.kernel import Kernel
from skbsim.mm.gfp import GFP_ATOMIC, GFP_KERNEL
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.skbuff import (
    __napi_alloc_skb,
    __netdev_alloc_skb,
    alloc_skb,
    consume_skb,
    kfree_skb,
    napi_consume_skb,
    skb_add_rx_frag,
    skb_clone,
    skb_headlen,
    skb_headroom,
    skb_pull,
    skb_push,
    skb_put,
    skb_reserve,
    skb_tailroom,
)

LENGTHS = st.one_of(st.integers(0, 800), st.integers(800, 4000), st.integers(4000, 20000))


def allocate(kernel, napi, function, length):
    """Module level: names with two leading underscores are mangled inside a class body."""
    if function == "napi":
        return __napi_alloc_skb(kernel, napi, length, GFP_ATOMIC)
    if function == "napi_kernel":
        return __napi_alloc_skb(kernel, napi, length, GFP_KERNEL)
    if function == "netdev":
        return __netdev_alloc_skb(kernel, napi.dev, length, GFP_ATOMIC)
    return alloc_skb(kernel, length, GFP_ATOMIC)


class SkbMachine(RuleBasedStateMachine):
    skbs = Bundle("skbs")

    def __init__(self):
        super().__init__()
        self.kernel = Kernel("6.9", ncpus=2)
        self.napi = napi_struct(net_device("eth0"))
        for state in self.kernel.cpus:
            state.softirq_count = 1  # everything below runs in NET_RX softirq
        self.live = []

    # -- allocation --------------------------------------------------------------------

    @rule(target=skbs, length=LENGTHS, function=st.sampled_from(["napi", "napi_kernel", "netdev", "alloc"]),
          cpu=st.integers(0, 1))
    def alloc(self, length, function, cpu):
        k = self.kernel
        with k.on_cpu(cpu):
            skb = allocate(k, self.napi, function, length)
        assert skb is not None
        assert skb_tailroom(skb) >= length
        self.live.append(skb)
        return skb

    @rule(target=skbs, skb=skbs)
    def clone(self, skb):
        if skb not in self.live:
            return skb
        n = skb_clone(self.kernel, skb, GFP_ATOMIC)
        self.live.append(n)
        return n

    # -- data operations -------------------------------------------------------------------

    @rule(skb=skbs, amount=st.integers(0, 512))
    def reserve(self, skb, amount):
        if skb in self.live and skb.len == 0 and not skb.cloned:
            skb_reserve(skb, min(amount, skb_tailroom(skb)))

    @rule(skb=skbs, amount=st.integers(0, 3000))
    def put(self, skb, amount):
        if skb in self.live and skb.data_len == 0:
            skb_put(skb, min(amount, skb_tailroom(skb)))

    @rule(skb=skbs, amount=st.integers(0, 128))
    def push(self, skb, amount):
        if skb in self.live:
            skb_push(skb, min(amount, skb_headroom(skb)))

    @rule(skb=skbs, amount=st.integers(0, 3000))
    def pull(self, skb, amount):
        if skb in self.live:
            assert skb_pull(skb, min(amount, skb_headlen(skb))) is not None

    @rule(skb=skbs, size=st.integers(1, 4096), order=st.integers(0, 1))
    def add_rx_frag(self, skb, size, order):
        k = self.kernel
        if skb not in self.live or skb.cloned or skb.nr_frags >= k.profile.MAX_SKB_FRAGS:
            return
        page = k.pages.alloc_pages(GFP_ATOMIC, order, "test")
        size = min(size, k.profile.PAGE_SIZE << order)
        skb_add_rx_frag(skb, skb.nr_frags, page, 0, size, k.profile.PAGE_SIZE << order)

    # -- freeing -----------------------------------------------------------------------

    @rule(skb=consumes(skbs), how=st.sampled_from(["kfree", "consume", "napi"]))
    def free(self, skb, how):
        if skb not in self.live:
            return
        self.live.remove(skb)
        if how == "kfree":
            kfree_skb(self.kernel, skb)
        elif how == "consume":
            consume_skb(self.kernel, skb)
        else:
            napi_consume_skb(self.kernel, skb, 64)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def layout(self):
        shinfo_aligned_skb = self.kernel.profile.SKB_HEAD_STRUCT_SIZE
        for skb in self.live:
            assert 0 <= skb.data <= skb.tail <= skb.end
            assert skb.len == skb_headlen(skb) + skb.data_len
            assert skb_headlen(skb) == skb.tail - skb.data
            assert skb.data_len == sum(f.size for f in skb.shinfo.frags)
            assert skb.nr_frags <= self.kernel.profile.MAX_SKB_FRAGS
            held = skb.head_size + shinfo_aligned_skb + sum(f.size for f in skb.shinfo.frags)
            assert skb.truesize >= held

    def teardown(self):
        for skb in self.live:
            kfree_skb(self.kernel, skb)
        self.live.clear()
        self.kernel.assert_no_leaks()


SkbMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestSkbMachine = SkbMachine.TestCase
