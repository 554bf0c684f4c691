"""The fast engine's Python side: the run (setup.py builds its starting state), the report, the fallback."""

from __future__ import annotations

import numpy as np

from skbsim.fast.layout import (
    CLOCK_LIMIT, DD_EOP, ERR_CLOCK, ERR_REASONS, HEAD_1K, HEAD_FRAG, HEAD_SMALL, MAX_QUEUED, MAX_RCVBUF, OUTCOMES,
    STEP_LIMIT,
)
from skbsim.fast.loop import _run, _teardown
from skbsim.fast.setup import (
    copybreak_copy_skbs, copybreak_kernel, ice_kernel, legacy_header_skb, libeth_fqs, libeth_kernel, mana_kernel,
    mana_napi_frag, tun_kernel,
)
from skbsim.fast.state import (
    ALLOCATED, BYTES, CB_N_1K, CB_N_BUILD, CB_N_FRAG, CB_N_SMALL, CONDENSED, DELIVERED, DESC_DD, DESC_LEN,
    D_BUF_FAILURES, D_BYTES, D_BYTES_COPIED, D_COPIED, D_FRAMES, D_FRAMES_DROPPED, D_NIC_FRAMES, D_OVERSIZE,
    D_PAGES_ALLOC, D_POLLS, D_RELEASED, D_REUSED, D_RING_DROPS, D_SKB_FAILURES, D_USED, ENQUEUED, ERR, FREED,
    FR_INJECTED, FWD, IRQS, K_LIVE, NCPUS, NC_FLUSHES, NC_GETS, NC_HITS, NC_PUTS, NC_REFILLS, NC_REFILL_FAILURES,
    NOW, NTC, PACKETS, PEAK_PINNED, PEAK_RMEM, PF_ALLOCS, PF_REFILLS, PF_REUSES, PG_IN_USE, PG_PEAK, PINNED, POLLS,
    Q_DROPPED, Q_FRAMES, Q_NIC_FRAMES, RCVBUF, RMEM, SK_DROPS, SK_LEN, SMALL_ALLOCS, SMALL_REFILLS, SR_LEN,
    TB_COUNT, TB_TRUESIZE, TIME_SQUEEZE, TRUESIZE_TOTAL, TR_LEN, HW_NEXT, RING_COUNT, VQ_HDR_LEN, VU_LEN, VU_NUM,
)
from skbsim.fast.state import SKB_HLEN  # ntb_netdev
from skbsim.fast.state import FQ_SKBS, PAGE_POOL, PP_HOLD, PP_RELEASE, PP_STATS_FIRST
from skbsim.fast.traffic import _Unscannable, _traffic_chunks
from skbsim.fast.tun import _TunLengths
from skbsim.fast.ntb_setup import NtbLengths, ntb_kernel
from skbsim.drivers.libeth import libeth_rx_queue
from skbsim.fast.setup import mlx5_head_skb, mlx5_kernel  # -- mlx5 --
from skbsim.fast.virtio_setup import VirtioCodes, copy_head, unsupported_virtio, virtio_kernel
from skbsim.fast.bnxt_setup import (  # -- bnxt --
    bnxt_headlen, bnxt_kernel, bnxt_kind_names, napi_alloc_skb_heads,
)
from skbsim.fast.gve_setup import GveCodes, gve_kernel, gve_kind_names  # -- gve --
from skbsim.mm.fault import LAYERS, fault_report
from skbsim.net.page_pool import PP_STATS
from skbsim.sim import RunConfig, Simulation, tcp_through_gro
# -- GRO --
from skbsim.fast.gro import (
    G_HEAD_TS, G_OWN_CB, G_PAD, GS_BASE, GS_TCP, capture_chunks, gro_config, gro_stats_of, new_gro, tcp_bulk_chunks,
)
from skbsim.fast.state import CACHE_SKB, CP_TS, K_OBJS, K_SLOTS, Frags, new_skb_cb
from skbsim.fast.traffic import CHUNK
from skbsim.sim import gro_report
from skbsim.fast.tcp_engine import TcpRun, unsupported_tcp  # -- TCP --
from skbsim.fast.tcp_run import ERR_TCP, _tcp_close, _tcp_pinned, _tcp_start  # -- TCP --
from skbsim.fast.tcp_capture import Checkpoint, capture_tcp_chunks  # -- TCP capture --
from skbsim.fast.tcp import TCP_SETUP  # -- TCP capture --
from skbsim.fast.state import TC_CAP_BASE, TC_WANT_FLOW  # -- TCP capture --
from skbsim.fast.tcp import TCP_UNMODELLED, TCP_WHY  # -- TCP --
from skbsim.fast.tcp_trace import TT_END, tcp_trace_rows  # -- TCP trace --
from skbsim.fast.state import EV_LEN  # -- TCP trace --
from skbsim.fast.state import APP_UNLIMITED, APP_WAITING, LK_STOPPED_AT, TC_ERR, TC_LAST_NS, TC_WANT_LEN  # -- TCP --
from skbsim.fast.state import TC_SR_LEN  # -- TCP plot --


def unsupported(config: RunConfig) -> str | None:
    """Why the fast engine cannot run this config (None when it can)."""
    if config.socket != "udp":
        reason = unsupported_tcp(config)  # -- TCP --
        if reason:
            return reason
    if config.kernel_config:
        return "--kernel-config is not supported by the fast engine"
    drivers = ("ice", "copybreak", "tun", "virtio_net", "ntb") + PP_DRIVERS
    if config.driver not in drivers:
        return f"the fast engine models the {', '.join(drivers[:-1])} and {drivers[-1]} drivers, not {config.driver}"
    if config.driver == "ice" and config.options.get("rx", "build_skb") not in ("build_skb", "legacy"):
        return "the fast engine models ice rx=build_skb and rx=legacy only"
    from skbsim.profile import load_profile

    profile = load_profile(config.kernel)
    virtio_reason = unsupported_virtio(profile, config.options) if config.driver == "virtio_net" else None
    if virtio_reason:
        return virtio_reason
    if tcp_through_gro(config):  # -- GRO --
        gro_reason = unsupported_gro(config, profile)
        if gro_reason:
            return gro_reason
    if config.rcvbuf > MAX_RCVBUF and (config.count is None or config.count > MAX_QUEUED):
        return (f"the fast engine sizes its socket queue for --rcvbuf up to {MAX_RCVBUF} "
                f"(or for runs of at most {MAX_QUEUED} frames)")
    # the clock's steps (see CLOCK_LIMIT); the reader's gap is Simulation._app_read's int(1e9 / app_rate)
    if config.packet_cost_ns >= STEP_LIMIT or config.irq_latency_ns >= STEP_LIMIT or (
            config.app_rate and 1e9 / config.app_rate >= STEP_LIMIT):
        return ("the fast engine's 64-bit clock takes a per-packet cost, IRQ latency and reader gap "
                "(1e9 / --app-rate) below 2**55 ns each")
    return None


# -- GRO --
def unsupported_gro(config: RunConfig, profile) -> str | None:
    """Why the fast engine cannot run this config whose TCP segments go through GRO (None when it can): its
    GRO (skbsim.fast.gro) covers tcp-bulk and captures on ice (rx=build_skb and rx=legacy, not its page_pool
    form), copybreak, virtio_net (what unsupported_virtio() leaves), mana and libeth's queues (iavf, idpf, ice's
    page_pool form) without header split, and tun with IFF_NAPI (napi_gro_receive()) or IFF_NAPI_FRAGS
    (napi_gro_frags()), without gro_flush_timeout."""
    if config.driver not in ("ice", "copybreak", "virtio_net", "mana", "libeth", "tun"):
        return (f"TCP traffic goes through GRO on {config.driver}: the fast engine's GRO covers ice, copybreak, "
                f"virtio_net, mana, libeth and tun (IFF_NAPI, IFF_NAPI_FRAGS) only")
    libeth = config.driver == "libeth" or (config.driver == "ice" and profile.feature("ice_rx_buffers") == "libeth")
    if libeth and config.options.get("hsplit", "off") != "off":
        return ("TCP traffic goes through GRO with header split (libeth): the fast engine's GRO covers libeth's "
                "queues without it")
    if config.options.get("gro_flush_timeout", "0") != "0":
        return ("TCP traffic goes through GRO with gro_flush_timeout (skbs held across polls and the flush "
                "timer), which the fast engine does not model")
    return None


#: the page_pool drivers the fast engine models
PP_DRIVERS = ("mana", "libeth",
              "mlx5",  # -- mlx5 --
              "bnxt",  # -- bnxt --
              "gve",  # -- gve --
              )


class FastSimulation:
    """One run of the fast engine; the reference Simulation supplies setup and constants."""

    def __init__(self, config: RunConfig, progress=None, trace=None, plot: bool = False, tcp_payloads=()):
        reason = unsupported(config)
        if reason:
            raise ValueError(reason)
        self.config = config
        self.progress = progress
        self.trace = trace
        self.plot = plot
        self.extra: dict = {}
        self.why: str | None = None
        self.kind_names = None  # _kind_names(), once a trace record needs it
        self.ref = Simulation(config)  # validates, loads the profile, opens the ring as ice_open() does
        ring = self.ref.cpus[0].queue
        self.copybreak = config.driver == "copybreak"
        self.virtio = config.driver == "virtio_net"
        self.legacy = False
        self.tun = None
        self.ntb = None  # ntb_netdev: netdev_alloc_skb()'s table (ntb_setup.NtbLengths)
        self.head = None
        self.libeth = False
        self.mlx5 = config.driver == "mlx5"  # -- mlx5 --
        self.gro = tcp_through_gro(config)  # -- GRO --: TCP segments go through GRO (skbsim.fast.gro)
        if self.gro and plot and config.driver != "tun":  # (tun's GRO merges nothing: its truesize by length holds)
            raise ValueError("the fast engine draws --plot of TCP through GRO only on the reference engine "
                             "(but through tun's)")
        self.codes = None  # what the traffic measures of every frame: virtio_net's codes, libeth's header lengths
        self.bnxt = None  # -- bnxt --: napi_alloc_skb(len)'s table and its heads' names
        self.gve = None  # -- gve --: the same
        self.tcp = None  # -- TCP --: a run with a socket per flow (tcp_engine.TcpRun)
        self.tcp_want = None  # a frame length whose tun skb the run needs read from the model first
        self._k = None
        self.checkpoint = Checkpoint()  # -- TCP capture --: where a call of the loop started (_run_loop())
        if self.virtio:
            if plot:
                # its truesize table keeps one truesize per (frame length, frags); a virtio_net buffer's size
                # follows the EWMA, so one length can have several
                raise ValueError("the fast engine draws --plot for virtio_net only on the reference engine")
            self.head = copy_head(self.ref)
            self.codes = VirtioCodes(self.ref, self.gro)  # what the header and GRO make of each frame
            if config.socket == "tcp":  # -- TCP through NAPI drivers --: the receivers, the senders' frames
                self._refuse_capture_trace(trace)
                # the smallest skb: a frame copied whole into the copy head, or one built on a buffer (a frame
                # above GOOD_COPY_LEN after the virtio-net header, skb_shared_info behind it)
                from skbsim.drivers.virtio_net import GOOD_COPY_LEN

                smallest = min(self.head["truesize"],
                               self.ref.kernel.profile.SKB_TRUESIZE(ring.hdr_len + GOOD_COPY_LEN))
                self.tcp = TcpRun(self.ref, None, tcp_payloads, nic=(False, smallest), codes=self.codes)
            return
        if config.driver == "tun":
            self.tun = _TunLengths(self.ref, config)
            if config.socket == "tcp":  # -- TCP --
                self._refuse_capture_trace(trace)
                self.tcp = TcpRun(self.ref, self.tun, tcp_payloads)
            return
        if config.driver == "ntb":
            self.ntb = NtbLengths(self.ref, config)
            if config.socket == "tcp":  # -- TCP through NAPI drivers --
                self._refuse_capture_trace(trace)
                self.tcp = TcpRun(self.ref, None, tcp_payloads, nic=(False, self.ntb.min_truesize), heads=self.ntb)
            return
        profile = self.ref.kernel.profile
        if isinstance(ring, libeth_rx_queue):  # libeth's iavf and idpf, and ice's page_pool form
            self.libeth = True
            if ring.hdr_fq is not None:  # header split: the NIC splits every frame at its eth_get_headlen()
                self.codes = libeth_headlen(self.ref.dev, ring.hdr_fq.buf_len)
            if config.socket == "tcp":  # -- TCP through NAPI drivers --: the smallest skb, one built on a buffer
                overhead = profile.SKB_TRUESIZE(0) - profile.SHINFO_SIZE
                self._nic_tcp_run(trace, tcp_payloads, min(fq.truesize for fq in libeth_fqs(ring)) + overhead)
            return
        if self.mlx5:  # -- mlx5 --
            if ring.striding and not ring.geo.linear:  # mlx5e_skb_from_cqe_mpwrq_nonlinear()'s heads
                if plot:
                    # its truesize table keeps one truesize per (frame length, frags); a striding RQ's frags
                    # are ALIGN(bytes in each page, stride), which depend on where the frame starts in its page
                    raise ValueError("the fast engine draws --plot for mlx5's striding non-linear frames only on "
                                     "the reference engine")
                self.head = mlx5_head_skb(self.ref)
            return
        if config.driver == "bnxt":  # -- bnxt --
            self.bnxt = napi_alloc_skb_heads(self.ref)
            self.codes = bnxt_headlen(self.ref.dev)  # the split after the headers, page mode's copy
            if config.socket == "tcp":  # -- TCP through NAPI drivers --: a copy's head, or a buffer's
                smallest = min(profile.SKB_TRUESIZE(ring.p.rx_buf_size - profile.SHINFO_SIZE),
                               int(self.bnxt[0][:, CP_TS].min()))
                self._nic_tcp_run(trace, tcp_payloads, smallest)
            return
        if config.driver == "gve":  # -- gve --
            self.gve = napi_alloc_skb_heads(self.ref)
            self.codes = GveCodes(self.ref)  # header split, and what GRO pulls into the head
            return
        if config.driver == "mana":
            if config.socket == "tcp":  # -- TCP through NAPI drivers --: napi_build_skb(va, alloc_size)'s skbs
                self._nic_tcp_run(trace, tcp_payloads, profile.SKB_TRUESIZE(ring.alloc_size - profile.SHINFO_SIZE))
            return
        if self.copybreak:
            self.copy_heads = copybreak_copy_skbs(self.ref)
            smallest = min([profile.SKB_TRUESIZE(ring.buf_size - profile.SHINFO_SIZE)]
                           + [h[1] for h in self.copy_heads])
        else:
            self.legacy = not ring.build_skb
            smallest = profile.SKB_TRUESIZE(ring.config["frame_sz"] - profile.SHINFO_SIZE)
        if self.legacy:
            self.head = legacy_header_skb(self.ref)
            smallest = self.head["truesize"]
            frag_cache = self.ref.kernel.cpus[0].napi_alloc_cache.page
            heads = ("page_frag_1k", "skbuff_small_head") + (("page_frag",) if frag_cache.offset_up else ())
            if self.head["source"] not in heads:
                raise ValueError(f"the fast engine models legacy-rx header skbs from {', '.join(heads)} only; "
                                 f"{self.ref.kernel.profile.name} takes them from {self.head['source']}")
        if config.socket == "tcp":  # -- TCP through NAPI drivers --
            self._nic_tcp_run(trace, tcp_payloads, smallest)

    def _nic_tcp_run(self, trace, payloads, smallest: int) -> None:
        """-- TCP through NAPI drivers --: the receivers and the senders' frames at the NIC (smallest: the truesize
        of the driver's smallest skb; what the NIC takes with each frame: legacy-rx's eth_get_headlen(), or
        self.codes: libeth's with header split, bnxt's)."""
        self._refuse_capture_trace(trace)
        self.tcp = TcpRun(self.ref, None, payloads, nic=(self.legacy, smallest), codes=self.codes)

    def _refuse_capture_trace(self, trace) -> None:
        """-- TCP trace --: synthetic senders' runs are traced on every driver; a capture's flows into receivers
        are the reference engine's to trace."""
        if trace is not None and self.ref.senders is None:  # -- TCP capture --
            raise ValueError("--trace of a capture's TCP flows into receivers is the reference engine's")

    def run(self) -> dict | None:
        """The run's JSON, or None when the reference engine must redo it (self.why says why)."""
        trace = self.trace is not None
        if self.tcp is not None:  # -- TCP -- (through tun, ntb or a NAPI driver)
            k = self._tcp_kernel()
            if self.gro:  # -- GRO --
                k = self._with_gro(k)
            k = self.tcp.finish_tables(k)
        elif self.config.driver == "mana":
            k = mana_kernel(self.ref, trace, self.plot)
        elif self.libeth:
            k = libeth_kernel(self.ref, trace, self.plot)
        elif self.mlx5:  # -- mlx5 --
            k = mlx5_kernel(self.ref, trace, self.plot, self.head)
        elif self.bnxt is not None:  # -- bnxt --
            k = bnxt_kernel(self.ref, trace, self.plot, self.bnxt[0])
        elif self.gve is not None:  # -- gve --
            k = gve_kernel(self.ref, trace, self.plot, self.gve[0])
        elif self.tun is not None:
            k = tun_kernel(self.ref, trace, self.plot, self.tun)
        elif self.ntb is not None:
            k = ntb_kernel(self.ref, self.ntb, trace, self.plot)
        elif self.copybreak:
            k = copybreak_kernel(self.ref, trace, self.plot, self.copy_heads)
        elif self.virtio:
            k = virtio_kernel(self.ref, trace, self.plot, self.head)
        else:
            k = ice_kernel(self.ref, trace, self.plot, self.head)
        if self.gro and self.tcp is None:  # -- GRO --
            k = self._with_gro(k)
        if not self._stream(k):
            return None
        return self._finish(k)

    def _with_gro(self, k):  # -- GRO --
        """The Kernel record with GRO of TCP on: the Gro record, a TCP_SKB_CB and a frag list row for every
        sk_buff object (GRO's aggregates hold up to MAX_SKB_FRAGS frags each)."""
        profile = self.ref.kernel.profile
        cfg = gro_config(self.ref)
        cfg[G_PAD] = int(self.config.driver == "ice" and not self.libeth)  # eth_skb_pad(): ice's own pages
        if self.legacy or self.virtio:  # the header skb, or virtio_net's copy head: SKB_TRUESIZE(end)
            cfg[G_HEAD_TS] = self.head["truesize"]
        objects = int(k.slabs.caches[CACHE_SKB, K_SLOTS] * k.slabs.caches[CACHE_SKB, K_OBJS])
        # (as wide as the driver's own rows: copybreak's hold a frame's replacement buffers, MAX_SKB_FRAGS + 1)
        width = max(k.frags.fl.shape[1], profile.MAX_SKB_FRAGS + 2)
        frags = Frags(np.zeros((max(objects, k.frags.fl.shape[0]), width), np.int64))
        copy_room = [h[5] for h in self.copy_heads] if self.copybreak else [0]
        slots = k.lb.comp.shape[1] if self.libeth else int(k.cfg[RING_COUNT])  # (libeth: by completion)
        rows = int(k.cfg[NCPUS])
        if self.tun is not None:  # a written skb keeps its facts at its sk_buff (one row), its TCP_SKB_CB too
            rows, slots = 1, objects
            cfg[G_OWN_CB] = 1
        return k._replace(gro=new_gro(cfg, CHUNK, rows, slots, objects, copy_room),
                          skbcb=new_skb_cb(objects), frags=frags)

    def _tcp_kernel(self):
        """-- TCP --: tun's kernel with the receivers, the senders and their events (the UDP socket's cfg fields
        from a socket of --rcvbuf that nothing reaches: its reader never runs)."""
        from skbsim.net.sock import udp_sock

        ref = self.ref
        queued, tables = self.tcp.tables(self.config.count, self.plot)
        ref.sock = udp_sock(ref.kernel, self.config.rcvbuf)
        traced = self.trace is not None
        try:
            if self.tun is not None:
                # a coalesced skb gathers up to MAX_SKB_FRAGS frags (skb_try_coalesce())
                k = tun_kernel(ref, traced, self.plot, self.tun, tcp_queued=queued,
                               tcp_frags=ref.kernel.profile.MAX_SKB_FRAGS, **tables)
            elif self.copybreak:  # -- TCP through NAPI drivers -- (tables' frags: TcpRun.finish_tables())
                k = copybreak_kernel(ref, traced, self.plot, self.copy_heads, queued=queued,
                                     collapse=self.tcp.heads.caches)._replace(**tables)
                # napi_alloc_skb(len)'s room for the heads of copies (gro.Gro.copy_room, with GRO or without)
                k = k._replace(gro=new_gro(copy_room=[h[5] for h in self.copy_heads]))
            elif self.ntb is not None:  # (tables' frags: TcpRun.finish_tables())
                k = ntb_kernel(ref, self.ntb, traced, self.plot, queued=queued)._replace(**tables)
            elif self.bnxt is not None:  # -- bnxt -- (tables' frags: TcpRun.finish_tables())
                k = bnxt_kernel(ref, traced, self.plot, self.bnxt[0], queued=queued,
                                collapse=self.tcp.heads.caches)._replace(**tables)
            elif self.libeth or self.config.driver == "mana":  # (tables' frags: TcpRun.finish_tables())
                pp_kernel = libeth_kernel if self.libeth else mana_kernel
                k = pp_kernel(ref, traced, self.plot, queued=queued, collapse=self.tcp.heads.caches)._replace(**tables)
            elif self.virtio:  # (tables' frags: TcpRun.finish_tables())
                k = virtio_kernel(ref, traced, False, self.head, queued=queued,
                                  collapse=self.tcp.heads.caches)._replace(**tables)
                if not self.gro:  # each skb's head (gro.M_HEAD_TS, which tcp_napi reads), without GRO too
                    objects = int(k.slabs.caches[CACHE_SKB, K_SLOTS] * k.slabs.caches[CACHE_SKB, K_OBJS])
                    k = k._replace(gro=new_gro(objects=objects))
            else:
                k = ice_kernel(ref, traced, self.plot, self.head, queued=queued,
                               collapse=self.tcp.heads.caches)._replace(**tables)
        finally:
            ref.sock = None
        if self.trace is not None:  # -- TCP trace --: each record with its flow fields (tcp_trace.TT_*)
            k = k._replace(trace=k.trace._replace(records=np.zeros((k.trace.records.shape[0], TT_END), np.int64)))
        k.cfg[APP_UNLIMITED] = 0
        k.st[APP_WAITING] = 0
        if self.tcp.capture is None:  # (a capture's frames are the loop's arrivals: _stream())
            _tcp_start(k, ref.sockets.rtt_ns, round(self.config.duration_ms * 1_000_000))
        return k

    @property
    def _k_want(self):
        k = self._k
        return int(k.tcp.tc[TC_WANT_LEN]) if k is not None else 0

    def _stream(self, k) -> bool:
        """Feed the traffic through the compiled loop chunk by chunk, then the remaining events; False when
        the loop left its modelled ground."""
        self._k = k
        capture = self.tcp is not None and self.tcp.capture is not None  # -- TCP capture --
        if capture:  # the capture's frames, each with its TCP_SKB_CB
            chunks = capture_tcp_chunks(self.ref.source, self.ref, self.tcp.capture, self.tcp.setups, self.legacy,
                                        self.codes, self.gro)
        elif self.tcp is not None:  # -- TCP --: the senders make the frames
            chunks = iter(())
        elif self.gro:  # -- GRO --: each frame's TCP facts with it
            measure = self.codes if self.virtio else None  # virtio_net's codes
            if self.config.traffic.split(":", 1)[0].strip().lower() == "tcp-bulk":
                chunks = tcp_bulk_chunks(self.ref.source, self.config, self.ref, self.legacy, measure)
            else:
                chunks = capture_chunks(self.ref.source, self.ref, self.legacy, measure)
        else:
            chunks = _traffic_chunks(self.ref.source, self.config, self.legacy, self.ref, self.codes)
        try:
            while True:
                try:
                    chunk = next(chunks, None)
                except OverflowError:  # an arrival time beyond int64 (from the source's Python integers)
                    return self._give_up(ERR_CLOCK)
                if chunk is None:
                    break
                parts = None
                if capture:  # -- TCP capture --
                    lengths, times, queues, hlens, cbs, facts = chunk
                    k.tfl.capture[:len(cbs)] = cbs
                    k.tcp.tc[TC_CAP_BASE] = k.st[PACKETS]
                    if facts is not None:  # -- GRO --: what GRO reads of each frame, beside its TCP_SKB_CB
                        k.gro.facts[:len(facts)] = facts
                        k.gro.st[GS_BASE] = k.st[PACKETS]
                    parts = self.tcp.setups.parts(cbs)
                elif self.gro:  # -- GRO --
                    lengths, times, queues, hlens, facts = chunk
                    k.gro.facts[:len(facts)] = facts
                    k.gro.st[GS_BASE] = k.st[PACKETS]
                else:
                    lengths, times, queues, hlens = chunk
                if len(times) and int(times.max()) >= CLOCK_LIMIT:
                    return self._give_up(ERR_CLOCK)
                n = len(lengths)
                if self.tun is not None:
                    self.tun.prepare(lengths)  # tun_get_user() of each new length, on the scratch kernel
                elif self.ntb is not None:
                    self.ntb.prepare(lengths)  # netdev_alloc_skb_ip_align() of each new copied length
                for start, end in parts or ((0, n),):
                    if parts is not None:
                        self.tcp.setups.arrive(cbs, start)
                    done = self._run_loop(k, lengths[start:end], times[start:end], queues[start:end],
                                          hlens[start:end], end - start, False)
                    if k.st[ERR] or done != end - start:
                        return self._give_up(int(k.st[ERR]))
                self._write_trace(k)
                if self.progress is not None:
                    self.progress(int(k.st[PACKETS]))
        except _Unscannable:
            return False
        empty = np.zeros(0, np.int64)
        self._run_loop(k, empty, empty, empty, empty, 0, True)
        while self.trace is not None and k.st[EV_LEN] and not k.st[ERR]:  # -- TCP trace --: paused, its table full
            self._write_trace(k)
            self._run_loop(k, empty, empty, empty, empty, 0, True)
        if k.st[ERR]:
            return self._give_up(int(k.st[ERR]))
        self._write_trace(k)
        return True

    def _run_loop(self, k, lengths, times, queues, hlens, n: int, final: bool) -> int:
        """loop._run(); -- TCP capture --: made again after each receiver the model sets up meanwhile.  The loop
        stops at the first segment of a flow without one (tcp_run._capture_flow(): TCP_SETUP), k goes back to
        where this call started, the model sets that receiver up (tcp_capture.CaptureSetups.set_up()) and the
        call starts over: it now passes that segment (the same times: the run is deterministic).  Only a call
        after such a flow's data came (CaptureSetups.waiting()) keeps a copy of k to go back to; _stream() starts
        a call at each flow's first data frame (CaptureSetups.parts())."""
        setups = self.tcp.setups if self.tcp is not None and self.tcp.capture is not None else None
        while True:
            saved = setups is not None and setups.waiting()
            if saved:
                self.checkpoint.save(k)
            done = _run(k, lengths, times, queues, hlens, n, final)
            if not saved or k.st[ERR] != ERR_TCP or k.tcp.tc[TC_ERR] != TCP_SETUP:
                return done
            f = int(k.tcp.tc[TC_WANT_FLOW])
            if f in setups.ready:  # (set up, and stopped for again: _give_up() says why)
                return done
            stage = k.tfl.stage[f].copy()
            self.checkpoint.rewind(k)
            setups.set_up(self.ref, f, stage, k.tfl)

    def _give_up(self, err: int) -> bool:
        """The compiled loop left its modelled ground (an ERR_* code): say why; the run is redone."""
        self.why = ERR_REASONS.get(err)
        if err == ERR_TCP and self.tcp is not None and self._k_want:  # -- TCP --: redone knowing one more length
            self.tcp_want = self._k_want
        if err == ERR_TCP:  # -- TCP --
            self.why = TCP_WHY.get(int(self._k.tcp.tc[TC_ERR]), TCP_WHY[TCP_UNMODELLED])
        return False

    def _kind_names(self):
        """(path, head source, data_len or None) of each skb kind code the compiled loop records
        (T_KIND), indexed by code: a list, or for tun, whose code is the frame length and whose
        data_len the loop leaves to this table, _TunLengths.names (filled as lengths are met)."""
        ring = self.ref.cpus[0].queue
        if self.tun is not None:
            return self.tun.names
        if self.ntb is not None:
            return self.ntb.kind_names()
        if self.virtio:
            return [("build_skb", "virtio_net rx buffer", None), (self.head["path"], self.head["source"], None)]
        if self.copybreak:
            by_kind = {h[0]: (h[3], h[4], None) for h in self.copy_heads}
            return [("", "", None), ("napi_build_skb", "copybreak rx buffer (page_frag)", None)] + [
                by_kind.get(kind, ("", "", None)) for kind in (HEAD_1K, HEAD_SMALL, HEAD_FRAG)]
        if self.legacy:
            return [(self.head["path"], self.head["source"], None)]
        if self.config.driver == "mana":
            source = "page_pool fragment" if ring.frag_count > 1 else "page_pool page"
            if mana_napi_frag(ring, self.ref.kernel.profile):  # -- mana v6.9 above a page --
                source = "page_frag (napi_alloc_frag)"
            return [("napi_build_skb", source, None)]
        if self.bnxt is not None:  # -- bnxt --
            return bnxt_kind_names(self.ref, self.bnxt[1])
        if self.gve is not None:  # -- gve --
            return gve_kind_names(self.gve[1])
        if self.libeth:  # by the fill queue of the head's buffer: MTU, idpf's short one, header (split)
            return [("napi_build_skb", f"libeth {fq.type} buffer (page_pool)", None) for fq in libeth_fqs(ring)]
        if self.mlx5:  # -- mlx5 --: one kind a run (built in place, or napi_alloc_skb()'s copy)
            head = self.head
            return [("napi_build_skb", "mlx5 rx page (page_pool)", None) if head is None else
                    (head["path"], head["source"], None)]
        return [("napi_build_skb", f"ice_rx_page (half of an order-{ring.config['page_order']} page)", None)]

    def _write_trace(self, k) -> None:
        """Hand the records of the last _run() call to the TraceWriter, in the order they happened."""
        n = int(k.st[TR_LEN])
        if self.trace is None or not n:
            return
        if self.kind_names is None:
            self.kind_names = self._kind_names()
        names = self.kind_names
        write = self.trace.write
        if self.tcp is not None:  # -- TCP trace --
            for row in tcp_trace_rows(k.trace.records[:n].tolist(), names, self.tcp.flows):
                write(*row)
            k.st[TR_LEN] = 0
            return
        for time_ns, cpu, frame_len, length, data_len, truesize, nr_frags, kind, outcome in \
                k.trace.records[:n].tolist():
            record = None
            if length >= 0:
                path, head_source, known_data_len = names[kind]
                record = (length, data_len if known_data_len is None else known_data_len, truesize, nr_frags,
                          path, head_source)
            write(time_ns, cpu, frame_len, record, OUTCOMES[outcome])
        k.st[TR_LEN] = 0

    def _trace_lost_frames(self, k) -> None:
        """Trace records of the frames still on each ice ring when it closes, from next_to_clean on
        (ice_clean_rx_ring() drops them; only a failing allocation leaves any)."""
        rings = k.rings
        count = rings.desc.shape[1]
        for cpu in range(int(k.cfg[NCPUS])):
            idx = int(k.pcpu[cpu, NTC])
            st = k.pcpu[cpu]
            for _ in range(int(st[Q_NIC_FRAMES] - st[Q_FRAMES] - st[Q_DROPPED])):
                frame_len = 0
                while True:
                    frame_len += int(rings.desc[cpu, idx, DESC_LEN])
                    eop = rings.desc[cpu, idx, DESC_DD] == DD_EOP
                    idx = idx + 1 if idx + 1 < count else 0
                    if eop:
                        break
                self.trace.write(int(k.st[NOW]), cpu, frame_len, None, "dropped:driver")

    def _trace_lost_ntb_frames(self, k) -> None:
        """Trace records of the frames each ntb queue holds unhandled when it closes (ntb_netdev_close() frees
        their buffers): rx_post_q, from pcpu NTC up to HW_NEXT (skbsim/fast/ntb.py)."""
        queue = k.tun.queue
        count = int(k.cfg[RING_COUNT])
        for cpu in range(int(k.cfg[NCPUS])):
            for n in range(int(k.pcpu[cpu, NTC]), int(k.pcpu[cpu, HW_NEXT])):
                self.trace.write(int(k.st[NOW]), cpu, int(queue[cpu, n % count, SKB_HLEN]), None, "dropped:driver")

    def _trace_lost_virtio_frames(self, k) -> None:
        """Trace records of the frames still used on each virtio_net ring when it closes (virtnet_close_queue()
        drops them; only a failing allocation leaves any)."""
        used = k.virtio.used
        mask = int(k.cfg[RING_COUNT]) - 1
        for cpu in range(int(k.cfg[NCPUS])):
            at, end = int(k.pcpu[cpu, NTC]), int(k.pcpu[cpu, HW_NEXT])
            while at < end:
                num = int(used[cpu, at & mask, VU_NUM])
                frame_len = sum(int(used[cpu, (at + j) & mask, VU_LEN]) for j in range(num)) - int(k.cfg[VQ_HDR_LEN])
                self.trace.write(int(k.st[NOW]), cpu, frame_len, None, "dropped:driver")
                at += num

    def _finish(self, k) -> dict | None:
        """What Simulation._finish reports: read what is left, tear down as the kernel would on close (the
        socket, each queue, the per-CPU caches), then count; None when anything is left over (only the
        reference engine can itemise it)."""
        stats = k.st
        at_close = {"queued": int(stats[SK_LEN]), "pinned": int(stats[PINNED]), "meminfo": self._meminfo(k),
                    "allocated": {order: int(n) for order, n in enumerate(k.pages.counts[:, ALLOCATED]) if n},
                    "frames_dropped": int(stats[D_FRAMES_DROPPED])}
        if k.cfg[PAGE_POOL]:
            if stats[D_NIC_FRAMES] != stats[D_FRAMES] + stats[D_FRAMES_DROPPED]:
                return None  # completions left on the ring: the reference engine drops and traces them
        tcp_reports = None
        if self.tcp is not None:  # -- TCP --: Simulation._finish()'s pinned pages, the flows' figures, their close
            at_close["pinned"] = int(_tcp_pinned(k))
            tcp_reports = self.tcp.flow_reports(k, max(int(k.tcp.tc[TC_LAST_NS]), int(k.tsnd.link[LK_STOPPED_AT])))
            if tcp_reports is None:  # -- TCP capture --
                self.why = "a capture's TCP flow got a SYN or RST only (no receiver: its report is the reference engine's)"
                return None
            _tcp_close(k)
        if not self.copybreak and self.tun is None:
            # ice_clean_rx_ring(): frames written but never cleaned are lost with the ring
            at_close["frames_dropped"] = int(stats[D_NIC_FRAMES]) - int(stats[D_FRAMES])
            if self.trace is not None:
                (self._trace_lost_virtio_frames if self.virtio else self._trace_lost_ntb_frames if self.ntb
                 else self._trace_lost_frames)(k)
        _teardown(k)
        pools = k.pp.pool if k.cfg[PAGE_POOL] else k.pp.pool[:0]
        if k.st[ERR] or k.st[PG_IN_USE] != 0 or k.slabs.caches[:, K_LIVE].any() or (
                pools[:, PP_HOLD] != pools[:, PP_RELEASE]).any():
            if self.virtio and not k.st[ERR]:
                self.why = ("a page is left over at close (virtio_net's free_receive_page_frags() skips the last "
                            "DMA record after a failed refill: the kernel's own leak, which the reference engine "
                            "itemises)")
            return None
        result = self._result(k, at_close)
        # (in Simulation._finish()'s order: faults, gro, page_pool)
        if self.config.faults:
            injected = {layer: int(k.faults.rules[n, FR_INJECTED]) for n, layer in enumerate(LAYERS)}
            result["faults"] = fault_report(self.config.faults, injected)
        if self.gro and k.gro.st[GS_TCP]:  # -- GRO --
            result["gro"] = gro_report(gro_stats_of(k.gro))
        if k.cfg[PAGE_POOL]:
            # page_pool_get_stats() of every queue's pools, summed (as the queues were closed)
            totals = pools[:, PP_STATS_FIRST:PP_STATS_FIRST + len(PP_STATS)].sum(axis=0)
            result["page_pool"] = {name: int(n) for name, n in zip(PP_STATS, totals)}
        if tcp_reports is not None:  # -- TCP --: its keys last, as Simulation._finish() adds them
            result = self.tcp.patch_result(k, result, tcp_reports, at_close["pinned"])
        self.extra = self._plot_data(k)
        return result

    def _meminfo(self, k) -> dict:
        """sk_get_meminfo() of the socket as the run ends."""
        from skbsim.net.sock import WMEM_DEFAULT

        st = k.st
        return {"rmem_alloc": int(st[RMEM]), "rcvbuf": int(k.cfg[RCVBUF]), "wmem_alloc": 0, "sndbuf": WMEM_DEFAULT,
                "fwd_alloc": int(st[FWD]), "wmem_queued": 0, "optmem": 0, "backlog": 0,
                "drops": int(st[SK_DROPS])}

    def _result(self, k, at_close: dict) -> dict:
        """The run's JSON, as Simulation._finish builds it."""
        config = self.config
        profile = self.ref.kernel.profile
        stats = k.st
        truesize_total = int(stats[TRUESIZE_TOTAL])
        delivered_to_stack = int(stats[DELIVERED])
        nbytes = int(stats[BYTES])
        paths, head_sources = self._paths(k, delivered_to_stack)
        dropped = {"ring_full": int(stats[D_RING_DROPS]), "oversize": int(stats[D_OVERSIZE]),
                   "driver": at_close["frames_dropped"], "socket_rcvbuf": int(stats[SK_DROPS])}
        peak_pages = int(k.st[PG_PEAK])
        return {
            "engine": "fast", "kernel": profile.name, "release": profile.release, "driver": config.driver,
            "options": dict(sorted(config.options.items())), "traffic": self.ref.source.describe(),
            "cpus": config.cpus, "seed": config.seed, "packets": int(stats[PACKETS]), "bytes": nbytes,
            "delivered": int(stats[ENQUEUED]), "dropped": dropped, "dropped_total": sum(dropped.values()),
            "truesize_total": truesize_total,
            "truesize_per_packet": round(truesize_total / delivered_to_stack, 2) if delivered_to_stack else 0,
            "truesize_per_byte": round(truesize_total / max(1, nbytes), 4),
            "paths": paths, "head_sources": head_sources,
            "pages": {
                "allocated_by_order": {str(o): n for o, n in sorted(at_close["allocated"].items())},
                "freed_by_order": {str(o): int(n) for o, n in enumerate(k.pages.counts[:, FREED]) if n},
                "peak_in_use": peak_pages, "peak_bytes_in_use": peak_pages * profile.PAGE_SIZE,
                "peak_pinned_by_queued_skbs": int(stats[PEAK_PINNED]), "pinned_at_end": at_close["pinned"],
            },
            "napi_skb_cache": {"flushes": int(stats[NC_FLUSHES]), "gets": int(stats[NC_GETS]),
                               "hits": int(stats[NC_HITS]), "puts": int(stats[NC_PUTS]),
                               "refill_failures": int(stats[NC_REFILL_FAILURES]), "refills": int(stats[NC_REFILLS])},
            "page_frag": {"napi_allocs": int(stats[PF_ALLOCS]), "napi_refills": int(stats[PF_REFILLS]),
                          "napi_reuses": int(stats[PF_REUSES]), "netdev_allocs": 0, "netdev_refills": 0,
                          "small_1k_allocs": int(stats[SMALL_ALLOCS]), "small_1k_refills": int(stats[SMALL_REFILLS])},
            "driver_stats": self._driver_stats(k, at_close["frames_dropped"]),
            "napi": {"polls": int(stats[POLLS]), "irqs": int(stats[IRQS]), "time_squeeze": int(stats[TIME_SQUEEZE])},
            "socket": {"rcvbuf": int(k.cfg[RCVBUF]), "peak_rmem_alloc": int(stats[PEAK_RMEM]),
                       "queued_at_end": at_close["queued"], "condensed": int(stats[CONDENSED]),
                       "drops": int(stats[SK_DROPS]), "meminfo_at_end": at_close["meminfo"]},
            "leaks": {"clean": True, "details": [], "pages": 0, "skbs": 0, "slab_objects": 0},
            "warnings": list(self.ref.kernel.warnings),
        }

    def _driver_stats(self, k, frames_dropped: int) -> dict:
        """The queues' stats summed (sim._sum_stats), every key the driver's stats have."""
        s = k.st
        stats = {key: 0 for key in self.ref.cpus[0].queue.stats.as_dict()}
        stats.update(
            frames=int(s[D_FRAMES]), bytes=int(s[D_BYTES]), nic_frames=int(s[D_NIC_FRAMES]),
            ring_drops=int(s[D_RING_DROPS]), oversize_drops=int(s[D_OVERSIZE]), frames_dropped=frames_dropped,
            buffers_used=int(s[D_USED]), buffers_reused=int(s[D_REUSED]), buffers_released=int(s[D_RELEASED]),
            buffers_copied=int(s[D_COPIED]), bytes_copied=int(s[D_BYTES_COPIED]),
            skb_alloc_failures=int(s[D_SKB_FAILURES]), buffer_alloc_failures=int(s[D_BUF_FAILURES]),
            pages_allocated=int(s[D_PAGES_ALLOC]), polls=int(s[D_POLLS]),
        )
        return dict(sorted(stats.items()))

    def _paths(self, k, delivered: int) -> tuple[dict, dict]:
        """paths and head_sources: the delivered skbs by path and by head source."""
        if self.tun is not None:
            return self.tun.names_of(k.tun.delivered)
        if self.ntb is not None:
            return self.ntb.names_of(k.tun.delivered)
        if self.copybreak or self.virtio:
            paths, head_sources = {}, {}
            counters = {HEAD_1K: CB_N_1K, HEAD_SMALL: CB_N_SMALL, HEAD_FRAG: CB_N_FRAG, -1: CB_N_BUILD}
            if self.virtio:
                named = {self.head["kind"]: (self.head["path"], self.head["source"]),
                         -1: ("build_skb", "virtio_net rx buffer")}
            else:
                named = {h[0]: (h[3], h[4]) for h in self.copy_heads}
                named[-1] = ("napi_build_skb", "copybreak rx buffer (page_frag)")
            for kind, (path, head_source) in named.items():
                n = int(k.st[counters[kind]])
                if n:
                    paths[path] = paths.get(path, 0) + n
                    head_sources[head_source] = head_sources.get(head_source, 0) + n
            return dict(sorted(paths.items())), dict(sorted(head_sources.items()))
        if self.bnxt is not None or self.gve is not None:  # -- bnxt --, -- gve --: by kind (their kinds records)
            paths, head_sources = {}, {}
            counts = (k.bnxt if self.bnxt is not None else k.gve).kinds.tolist()
            for (path, head_source, _), n in zip(self._kind_names(), counts):
                if n:
                    paths[path] = paths.get(path, 0) + n
                    head_sources[head_source] = head_sources.get(head_source, 0) + n
            return dict(sorted(paths.items())), dict(sorted(head_sources.items()))
        if self.libeth:
            paths, head_sources = {}, {}
            nfq = len(libeth_fqs(self.ref.cpus[0].queue))
            for q, (path, head_source, _) in enumerate(self._kind_names()):
                n = int(k.lb.fq[q::nfq, FQ_SKBS].sum())
                if n:
                    paths[path] = paths.get(path, 0) + n
                    head_sources[head_source] = n
            return dict(sorted(paths.items())), dict(sorted(head_sources.items()))
        path, head_source = self._kind_names()[0][:2]
        return ({path: delivered}, {head_source: delivered}) if delivered else ({}, {})

    def _plot_data(self, k) -> dict:
        """extra for --plot: the memory series and the truesize-by-length table, and a TCP run's flows' series
        (simulate()'s)."""
        trace = k.trace
        counts = trace.table[:, :, TB_COUNT]
        truesize_by_len: dict[int, dict[int, int]] = {}
        for frame_len, nr_frags in zip(*np.nonzero(counts)):
            by_len = truesize_by_len.setdefault(int(frame_len), {})
            truesize = int(trace.table[frame_len, nr_frags, TB_TRUESIZE])
            by_len[truesize] = by_len.get(truesize, 0) + int(counts[frame_len, nr_frags])
        tcp = self.tcp is not None and self.plot  # -- TCP plot --: tcp_run._tcp_poll_end()'s series, the flows'
        series = trace.series[:int(k.tcp.tc[TC_SR_LEN] if tcp else k.st[SR_LEN])]
        extra = {"series": [tuple(point) for point in series.tolist()],
                 "truesize_by_len": truesize_by_len, "page_size": self.ref.kernel.profile.PAGE_SIZE}
        if tcp:
            extra["tcp_series"] = self.tcp.plot_series(k)
        return extra


def libeth_headlen(dev, hdr_buf_len: int):
    """libeth_nic_receive()'s header length of a frame (header bytes, length) with header split: the model's
    eth_get_headlen() of its bytes, up to a header buffer."""
    from skbsim.net.ethernet import eth_get_headlen

    return lambda header, length: eth_get_headlen(dev, header, hdr_buf_len)


def simulate_fast(config: RunConfig, progress=None, why: list | None = None, trace=None,
                  plot: bool = False) -> tuple[dict, dict] | None:
    """Run on the fast engine; None when this run must be redone by the reference engine."""
    sim = FastSimulation(config, progress=progress, trace=trace, plot=plot)
    result = sim.run()
    payloads: set[int] = set()
    while result is None and sim.tcp_want and sim.tcp.capture is None:  # -- TCP --: a frame length the run met
        # first; all of them after 8
        payloads |= {sim.tcp_want - sim.tcp.header_len} if len(payloads) < 8 else set(range(sim.tcp.max_mss + 1))
        sim = FastSimulation(config, progress=progress, trace=trace, plot=plot, tcp_payloads=sorted(payloads))
        result = sim.run()
    if result is None:
        if why is not None:
            why.append(getattr(sim, "why", None) or "the fast engine left its modelled ground")
        return None
    return result, sim.extra


ENGINES = ("fast", "reference")


def simulate_engine(config: RunConfig, engine: str = "fast", trace=None, plot: bool = False,
                    progress=None) -> tuple[dict, dict, str | None]:
    """Run on the chosen engine: (result, extra, why the reference engine ran instead of fast, or None)."""
    from skbsim.errors import InputError
    from skbsim.sim import resolve_socket, simulate

    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    config = resolve_socket(config)
    if engine == "fast":
        reason = unsupported(config)
        if reason is None:
            why: list = []
            # the records of a run the reference engine redoes must not stay in the trace: a file is
            # started over, a destination that cannot be rewound gets them only once the run is done
            spool = _TraceSpool(trace) if trace is not None and not trace.file.seekable() else None
            try:
                out = simulate_fast(config, progress=progress, why=why, trace=spool.writer if spool else trace,
                                    plot=plot)
            except ValueError as err:
                out, reason = None, str(err)
            if spool is not None:
                spool.finish(copy=out is not None)
            if out is not None:
                return out[0], out[1], None
            reason = reason or (why[0] if why else "the fast engine left its modelled ground") + "; rerun"
            if trace is not None and spool is None:
                trace.restart()
        config.validate()
        result, extra = simulate(config, trace=trace, progress=progress)
        return result, extra, reason
    result, extra = simulate(config, trace=trace, progress=progress)
    return result, extra, None


class _TraceSpool:
    """The fast engine's trace records for a destination that cannot be rewound (a pipe), in a
    temporary file of the same kind until the run is done."""

    def __init__(self, trace):
        import os
        import tempfile

        from skbsim.report import TraceWriter

        self.trace = trace
        handle, self.path = tempfile.mkstemp(prefix="skbsim-trace-", suffix=os.path.splitext(trace.path)[1])
        os.close(handle)
        self.writer = TraceWriter(self.path)

    def finish(self, copy: bool) -> None:
        """Hand the records to the real destination (past the header it already has), or drop them."""
        import os
        import shutil

        self.writer.close()
        try:
            if copy:
                with open(self.path, newline="") as records:
                    if self.writer.csv is not None:
                        records.readline()
                    shutil.copyfileobj(records, self.trace.file)
        finally:
            os.unlink(self.path)
