"""The fast replay engine: the reference engine's model over integer state, compiled with numba.

Scope (everything else falls back to :mod:`skbsim.sim`, see :func:`unsupported`
and FastSimulation), on every kernel, any number of CPUs, synthetic or pcap
traffic, any rate, arrival process, app rate and rcvbuf up to 64 MiB:

- ice, rx=build_skb and rx=legacy, any MTU: frames of one buffer or several
  (legacy-rx 1664-byte buffers; build_skb 3072-byte buffers in order-1 pages
  above MTU 1500), in each release's clean-loop form; legacy header skbs from
  page_frag_1k (6.1-6.12), skbuff_small_head (6.18) or the upward-cut NAPI
  page_frag_cache (host);
- copybreak: copies into napi_alloc_skb(len) heads from page_frag_1k,
  skbuff_small_head or the NAPI page_frag_cache, larger frames built around
  ring buffers (replaced from the NAPI page_frag_cache, cut down to 6.12 and
  up from 6.13), frames of several buffers as frags;
- tun: every route, option and frame length (tun_build_skb() from each
  writer's task_frag, tun_alloc_skb() with kmalloc or page heads and paged
  rests, IFF_NAPI, IFF_NAPI_FRAGS), sk_wmem_alloc against sk_sndbuf;
- --fault on every driver (the same calls fail: the reference
  FaultInjector's rules and random.Random stream are replayed; tun's
  task_frag refill falling back to one page and 6.6+
  alloc_skb_with_frags() falling back to lower orders are followed in
  the loop, so a tun skb's blocks and truesize are decided there);
- --trace and --plot on every driver.

Not: --kernel-config.

Why the answers cannot differ: nothing is approximated.  The reference
engine builds the run (profile, traffic source, the rings as the driver's
open leaves them) and this module reads its constants from those objects,
or from the model's own functions on a scratch kernel (per length: a
copybreak copy head, what tun_get_user() does); the loop below then
performs, in the same order, the same state changes the reference functions
perform - NIC DMA into descriptors, the release's ice_clean_rx_irq() form
(put per buffer, per poll or per frame), the page reuse test on sampled
page counts and pagecnt_bias, the legacy header copy and frags, the 1K page
pieces, napi_skb_cache_get()/_put() with bulk refill and flush over SLUB
slabs (LIFO free lists, the partial list most-recent-last), page
allocation and freeing by order, every allocation's fault check and its
failure path, UDP admission, skb_condense(), forward allocation and
batched release, the reader and 6.18's defer lists, and the
NAPI/IRQ/time-squeeze timing - on integers instead of objects.  Object
identities that the JSON cannot see (pfns, slab addresses) are replaced by
recycled small ids; only their identity matters (which slab an object
returns to, which page a queued skb pins).  If the compiled loop reaches a
state it does not model (a table overflow, a descriptor without a buffer,
a leak at the end), the run is redone by the reference engine.
tests/test_fast_engine.py compares the two engines' JSON (and trace and
plot data) over random workloads; docs/engines.md has the design and the
figures.
"""

from skbsim.fast.engine import ENGINES, FastSimulation, simulate_engine, simulate_fast, unsupported

__all__ = ["ENGINES", "FastSimulation", "simulate_engine", "simulate_fast", "unsupported"]
