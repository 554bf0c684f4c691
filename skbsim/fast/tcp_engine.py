"""The Python side of the fast engine's runs with a socket per flow (--socket tcp): what it covers, the starting
state (the receivers set up by the model, the senders, the tun skbs' TCP facts), and the report.

Covered: synthetic senders (``--tcp bulk`` and ``messages:SIZE[@RATE]``, no TSO, a constant-rate link) into TCP
receivers through tun without IFF_NAPI (no GRO) or with IFF_NAPI or IFF_NAPI_FRAGS (GRO, which merges no tun skbs:
each write's poll flushes its skb), or through ice (rx=build_skb, rx=legacy, and its page_pool form), libeth (iavf,
idpf), mana, copybreak and virtio_net (mergeable buffers without XDP, on the releases whose buffers come from page
frags: unsupported_virtio()) with GRO or without, and bnxt without (tcp_napi.py; libeth's header split without
GRO), any kernel, RTT, flows (up to MAX_FLOWS), reader and read size, SO_RCVBUF and --fault, memory pressure
(pruning and collapsing: skbsim/fast/tcp_pressure.py; behind a NAPI driver with CollapseHeads), --trace through tun
(tcp_trace.py), --plot through tun, ntb, ice, libeth, mana, bnxt and copybreak without GRO and through tun's GRO;
and a capture's TCP flows (tcp_capture.py) through tun, ntb, ice, libeth, mana, bnxt, copybreak and virtio_net,
with GRO or without, --plot of them as of synthetic flows.  Everything else is the reference engine's (reasons in
:func:`unsupported_tcp`), and so is a run that reaches what the compiled receiver does not follow yet: it is
redone, saying so.
"""

from __future__ import annotations

import numpy as np

from skbsim.fast import state
from skbsim.fast.state import (
    F_FIELDS, F_JS_COUNT, F_JS_EVERY, F_JS_LEN, SK_LEN, TC_APP_GAP, TC_READ_SIZE, TC_RTT_NS, TC_RUN, TC_SR_EVERY,
    new_skb_cb, new_tcp_flows, new_tcp_socks,
)
from skbsim.fast.state import F_PS_COUNT, F_PS_EVERY, F_PS_LEN  # -- TCP plot --
from skbsim.fast.tcp_setup import senders_to_record, sock_to_row, tcp_consts, unsupported_senders
from skbsim.fast.tcp_pressure import collapse_alloc_columns  # -- TCP pressure --
from skbsim.fast.layout import SERIES_LIMIT  # -- TCP plot --
from skbsim.net.ipv4.tcp import TCPEXT
from skbsim.sim import NAPI_POLL_WEIGHT

U32 = 0xFFFFFFFF
#: the most flows (senders and receivers) the fast engine takes: a flow is an event's CPU field (below 1024)
MAX_FLOWS = 1000  # (a capture's flows too)
#: -- TCP capture --: each flow's receiver costs the fast engine two copies of the run's arrays (its set-up stops
#: the loop, which goes back to where that call started: FastSimulation._run_loop()), about 0.1 s each for tun's
#: 330 MB of tables with 200 flows.  The reference engine is then the faster for a capture of more flows than
#: CAPTURE_FLOWS and than one per CAPTURE_FRAMES_PER_FLOW frames: through tun (2026-12-06, `skbsim run --driver
#: tun --traffic pcap:F --engine fast|reference`, flows starting 1 ms apart) 1 flow of 50,000 segments took 2.7 s
#: fast and 4.6 s reference, 4 flows of 12,500 2.7 and 3.9 s, 50 flows of 1,000 9.5 and 4.4 s, 200 flows of 100
#: 23 and 2.3 s
CAPTURE_FLOWS = 4
CAPTURE_FRAMES_PER_FLOW = 4000
#: a receive queue's rows at most (a run whose receiver queues more is redone)
MAX_QUEUE = 1 << 18
#: ACKs on their way to one sender at most; segments in flight from one sender at most
MAX_ACKS_IN_FLIGHT = 1 << 14
MAX_FLIGHT = 1 << 16
# -- TCP through NAPI drivers --
#: the NAPI drivers whose skbs the fast engine hands to TCP receivers (tcp_napi.py), with GRO or without (ice in
#: either form: its own pages, or page_pool's through libeth; bnxt without: unsupported_gro())
TCP_NAPI_DRIVERS = ("ice", "copybreak", "virtio_net", "ntb", "libeth", "mana", "bnxt")
#: frames on one queue between the NIC and the driver at most (tcp_napi: their TCP_SKB_CB)
MAX_NIC_FRAMES = 1 << 13


def unsupported_tcp(config) -> str | None:
    """Why the fast engine cannot run this config with a socket per flow (None when it can)."""
    kind = config.traffic.split(":", 1)[0].strip().lower()
    capture = kind in ("pcap", "pcapng")  # -- TCP capture --: what the capture holds is checked as the run starts
    if kind != "tcp-bulk" and not capture:
        return f"--socket tcp with {kind} traffic is the reference engine's"
    # (tun with IFF_NAPI or IFF_NAPI_FRAGS too: GRO, which merges no tun skbs, tun._tun_poll())
    if config.driver != "tun" and config.driver not in TCP_NAPI_DRIVERS:  # -- TCP through NAPI drivers --
        return (f"--socket tcp through {config.driver} is the reference engine's: the fast engine joins its TCP "
                f"receivers to tun, ice (rx=build_skb and rx=legacy, or its page_pool form), libeth (iavf, idpf), "
                f"mana, bnxt, copybreak, virtio_net (mergeable buffers without XDP) and ntb")
    elif config.driver == "virtio_net":
        from skbsim.fast.virtio_setup import unsupported_virtio
        from skbsim.profile import load_profile

        reason = unsupported_virtio(load_profile(config.kernel), config.options)
        if reason:
            return f"--socket tcp through virtio_net is the reference engine's here: {reason}"
    if capture:
        return None
    if config.flows > MAX_FLOWS:
        return f"--socket tcp with more than {MAX_FLOWS} flows is the reference engine's"
    if config.count is None or round(config.duration_ms * 1_000_000) < round(config.rtt_ms * 1_000_000):
        return "--socket tcp without --count, or with a --duration shorter than the RTT, is the reference engine's"
    return None


def tun_tcp_facts(lengths, frame_lens) -> np.ndarray:
    """For each frame length, the tun skb as tcp_v4_rcv() gets it (Ethernet and IP headers pulled): its bytes
    in the head and in frags, frags, the room after its tail, whether its head is a page fragment,
    SKB_TRUESIZE(end), from the model's own tun_get_user() on the scratch kernel of lengths (tun._TunLengths)."""
    from skbsim.drivers.base import frame_header, make_frame
    from skbsim.drivers.tun import tun_get_user, written_skbs
    from skbsim.fast.tcp_run import (
        TF_DLEN, TF_END_TS, TF_FIELDS, TF_HEAD_FRAG, TF_HLEN, TF_KNOWN, TF_NR_FRAGS, TF_TAILROOM,
    )
    from skbsim.net.skbuff import kfree_skb, skb_headlen

    facts = np.zeros((state_max_frame() + 1, TF_FIELDS), np.int64)
    kernel = lengths.kernel
    queue = lengths.queue
    tfile = queue.tfile
    for length in sorted(set(frame_lens)):
        with kernel.on_cpu(0):
            written, route, skb = tun_get_user(kernel, queue.tun, tfile, queue.task, length,
                                               frame_header(make_frame(length)), queue.noblock)
        if written < 0:
            continue
        written_skbs(tfile).pop()
        # tun_get_user() left skb->data where eth_type_trans() puts it; ip_local_deliver() pulls the IP header
        pulled = skb.len - (length - 34)
        if skb_headlen(skb) < pulled:
            raise ValueError(f"a tun skb of {length} bytes without its headers in the head")
        row = facts[length]
        row[TF_HLEN] = skb_headlen(skb) - pulled
        row[TF_DLEN] = skb.data_len
        row[TF_NR_FRAGS] = len(skb.shinfo.frags)
        row[TF_TAILROOM] = skb.end - skb.tail  # (skb_tailroom() while linear: RQ_TAILROOM)
        row[TF_HEAD_FRAG] = int(skb.head_frag)
        row[TF_END_TS] = kernel.profile.SKB_TRUESIZE(skb.end)
        row[TF_KNOWN] = 1
        with kernel.on_cpu(0):
            kfree_skb(kernel, skb)
    return facts


def nic_tcp_facts(ref, frame_lens, legacy: bool, codes=None) -> np.ndarray:
    """-- TCP through NAPI drivers --: for each frame length a sender may send, TF_KNOWN and what the NIC takes with
    the frame (TF_NIC_HLEN: ice legacy-rx's eth_get_headlen() of the flows' header, or virtio_net's code of the
    frame, codes: virtio_setup.VirtioCodes, the model's)."""
    from skbsim.fast.tcp_run import TF_FIELDS, TF_KNOWN, TF_NIC_HLEN
    from skbsim.fast.traffic import _legacy_headlen

    facts = np.zeros((state_max_frame() + 1, TF_FIELDS), np.int64)
    template = ref.senders.senders[0].template
    headlen = _legacy_headlen(ref) if legacy else codes
    for length in sorted(set(frame_lens)):
        facts[length, TF_KNOWN] = 1
        if headlen is not None:
            facts[length, TF_NIC_HLEN] = headlen(template.build(length), length)
    return facts


def _tun_facts(lengths, frame_lens) -> np.ndarray:
    """tun_tcp_facts() of frame_lens, each first read from the model (lengths.prepare()), with the columns of what
    alloc_skb() gives tcp_collapse() for each byte count (-- TCP pressure --: collapse_alloc_columns())."""
    lengths.prepare(np.array(frame_lens, np.int64))
    return collapse_alloc_columns(lengths, tun_tcp_facts(lengths, frame_lens))


def _nic_facts(heads, frame_lens, facts) -> np.ndarray:
    """A NAPI driver's (or ntb's) TCP facts of frame_lens, each length first read from the model by heads (ntb's
    copies), with the columns of what alloc_skb() gives tcp_collapse() (-- TCP pressure --:
    collapse_alloc_columns())."""
    heads.prepare(np.array(frame_lens, np.int64))
    return collapse_alloc_columns(heads, facts)


class CollapseHeads:
    """-- TCP pressure --: the kmem caches tcp_collapse()'s alloc_skb() may take a head from behind a NAPI driver
    (tun.head_caches(), by their index in the run's Slabs, as tun's and ntb's own tables have them), on a scratch
    kernel of the run's profile and CPU count: what collapse_alloc_columns() reads."""

    __slots__ = ("kernel", "caches", "cache_index")

    def __init__(self, ref):
        from skbsim.fast.tun import head_caches
        from skbsim.kernel import Kernel

        self.kernel = Kernel(ref.kernel.profile, ncpus=ref.config.cpus)
        self.caches = head_caches(self.kernel, "a collapsed skb's")
        self.cache_index = {cache.name: c for c, cache in self.caches.items()}

    def prepare(self, lengths) -> None:
        """Nothing to read per frame length: a NAPI driver's skbs are the compiled loop's own."""


def state_max_frame() -> int:
    from skbsim.fast.layout import MAX_TUN_FRAME

    return MAX_TUN_FRAME


class TcpRun:
    """The receivers and senders of one fast run: set up from the reference Simulation, reported at the end."""

    def __init__(self, ref, lengths, payloads=(), nic=None, codes=None, heads=None):
        """lengths: tun's per-length table (tun._TunLengths); or nic, a NAPI driver's (legacy-rx, the smallest
        skb's truesize), and codes, virtio_net's (virtio_setup.VirtioCodes); heads: ntb's table of
        netdev_alloc_skb() heads (ntb_setup.NtbLengths: rows for the frames it copies, and its scratch kernel
        and caches, which give tcp_collapse()'s heads as tun's do), by default behind a NAPI driver the caches
        of CollapseHeads."""
        self.ref = ref
        self.config = ref.config
        self.lengths = lengths
        self.min_truesize = lengths.min_truesize if lengths is not None else nic[1]
        #: where tcp_collapse()'s heads come from: tun's table, ntb's, or CollapseHeads behind a NAPI driver
        self.heads = lengths if lengths is not None else (heads if heads is not None else CollapseHeads(ref))
        self.capture = None
        if ref.senders is None:  # -- TCP capture --: the capture's flows, its frames' lengths
            self._capture_init(lengths)
            return
        reason = unsupported_senders(ref.senders, round(self.config.duration_ms * 1_000_000))
        if reason:
            raise ValueError(reason)
        sockets = ref.sockets
        self.flows = sockets.flows
        # Sockets.establish() of every receiver at the RTT, as the "establish" events do (before any other
        # event: their senders' first sends come after all of them); their senders start in the loop
        rtt_ns = sockets.rtt_ns
        for flow in self.flows:
            sockets.establish(flow, rtt_ns, flow.sender.template.window)
        # The frame lengths asked of the model up front: full segments and zero-window probes, and the payloads
        # an earlier try met (any other stops the run, which is redone knowing it: FastSimulation.tcp_payloads)
        headers = {flow.sender.template.header_len for flow in self.flows}
        if len(headers) != 1:
            raise ValueError("synthetic flows with headers of different lengths")
        self.header_len = headers.pop()
        self.max_mss = max(flow.sender.mss for flow in self.flows)
        sizes = {flow.sender.mss for flow in self.flows} | {0} | set(payloads)
        frame_lens = [self.header_len + size for size in sizes]
        if lengths is None:  # -- TCP through NAPI drivers --
            self.facts = _nic_facts(self.heads, frame_lens, nic_tcp_facts(ref, frame_lens, nic[0], codes))
            return
        self.facts = _tun_facts(lengths, frame_lens)

    # -- TCP capture --
    def _capture_init(self, lengths) -> None:
        """A capture's run: its plan (tcp_capture.CapturePlan.scan(): ValueError for what it leaves to the
        reference engine), its receivers (none set up yet), the TCP facts of every frame length it holds (tun's,
        or a NAPI driver's and ntb's, with self.heads')."""
        from skbsim.fast.tcp_capture import CapturePlan, CaptureSetups
        from skbsim.fast.tcp_run import TF_FIELDS, TF_KNOWN

        self.capture = CapturePlan.scan(self.ref.source, MAX_FLOWS)
        flows, frames = len(self.capture.keys), self.capture.frames
        if flows > max(CAPTURE_FLOWS, frames // CAPTURE_FRAMES_PER_FLOW):
            raise ValueError(f"--socket tcp with a capture of {flows} TCP flows in {frames} frames is the reference "
                             f"engine's: the faster with more than {CAPTURE_FLOWS} flows and more than one per "
                             f"{CAPTURE_FRAMES_PER_FLOW:,} frames (each receiver set up costs the fast engine two "
                             f"copies of its tables)")
        self.setups = CaptureSetups(self.capture)
        self.flows = []
        self.header_len = self.max_mss = 0
        frame_lens = sorted(self.capture.lengths)
        rq = self.ref.cpus[0].queue
        if self.config.driver == "virtio_net" and rq.gso and frame_lens and frame_lens[-1] - 14 > rq.mtu:
            # the host hands such a frame over as a GSO packet (virtio_net_hdr_for_frame()): its gso_size, which
            # the segments' count and the receiver's MSS estimate read, is not in the capture's TCP_SKB_CBs yet
            raise ValueError(f"--socket tcp with a capture's TCP segments above virtio_net's MTU {rq.mtu} (GSO "
                             f"packets from the host) is the reference engine's")
        if frame_lens and frame_lens[-1] > state_max_frame():
            raise ValueError(f"--socket tcp with a capture's frames above {state_max_frame()} bytes is the reference "
                             f"engine's")
        if lengths is None:  # a NAPI driver, or ntb: every length taken (or dropped as oversize)
            facts = np.zeros((state_max_frame() + 1, TF_FIELDS), np.int64)
            facts[frame_lens, TF_KNOWN] = 1
            self.facts = _nic_facts(self.heads, frame_lens, facts)
            return
        self.facts = _tun_facts(lengths, frame_lens)
        if not self.facts[frame_lens, TF_KNOWN].all():
            raise ValueError("--socket tcp with a capture's frames tun refuses is the reference engine's")

    def _capture_tables(self, count, plot: bool) -> tuple[int, dict]:
        """tables() of a capture's run: a receiver per flow, each set up as its first segment comes (tcp_run.
        _capture_flow(): from the rows self.setups fills), no senders; with plot, each flow's plot series."""
        from skbsim.fast.traffic import CHUNK

        ref = self.ref
        config = self.config
        n = len(self.capture.keys)
        count = self.capture.frames if count is None else min(count, self.capture.frames)
        net = ref.sockets.net_template
        so_rcvbuf = 2 * min(config.so_rcvbuf, net.sysctl_rmem_max) if config.so_rcvbuf is not None else 0
        largest = max(net.sysctl_tcp_rmem[1], net.sysctl_tcp_rmem[2], so_rcvbuf)
        # (a receiver queues no more skbs than its flow has frames)
        cap = min(count, max(self.capture.flow_frames, default=0)) + 2
        cap = min(cap, MAX_QUEUE, largest // self.min_truesize + 4)
        tc = tcp_consts(ref.kernel.profile, net)
        tc[TC_RUN] = 1
        tc[TC_RTT_NS] = -1  # no sender: the receivers' ACKs go nowhere (Sockets' rtt_ns None)
        tc[state.TC_CAPTURE] = 1
        tc[TC_APP_GAP] = -1 if config.app_rate is None else (int(1e9 / config.app_rate) if config.app_rate else 0)
        tc[TC_READ_SIZE] = -1 if config.app_read_size is None else config.app_read_size
        tc[TC_SR_EVERY] = 1
        t = new_tcp_socks(tc, n, cap, 64)
        nic = self.lengths is None
        tfl = new_tcp_flows(n, 1, 1, self.facts, config.cpus, MAX_NIC_FRAMES if nic else 1,
                            NAPI_POLL_WEIGHT if nic else 1, capture=CHUNK)
        if plot:  # -- TCP plot --: each flow's series begun by CaptureSetups.set_up()
            tfl = tfl._replace(series=np.zeros((max(1, n), SERIES_LIMIT, 5), np.int64))
            self.setups.series = True
        link = np.zeros(state.LK_FIELDS, np.int64)
        link[state.LK_FLOWS] = n
        tsnd = state.new_tcp_senders(link, n, 1, 4, 4)
        return min(count + 2, max(n, 1) * cap), {"tcp": t, "tsnd": tsnd, "tfl": tfl}

    def tables(self, count: int, plot: bool = False) -> tuple[int, dict]:
        """(the bound on queued skbs, the TcpSocks, TcpSenders and TcpFlows records) of the run; with plot, each
        flow's plot series too."""
        if self.capture is not None:  # -- TCP capture --
            return self._capture_tables(count, plot)
        ref = self.ref
        config = self.config
        n = len(self.flows)
        # A receive queue holds what sk_rcvbuf admits (tcp_can_ingest(): rmem up to the largest sk_rcvbuf the
        # run can reach, then one skb more) of the smallest tun skb, and never more than the run's frames; a
        # run that queues more stops and is redone (tc[TC_ERR])
        net = ref.sockets.net_template
        so_rcvbuf = 2 * min(config.so_rcvbuf, net.sysctl_rmem_max) if config.so_rcvbuf is not None else 0
        largest = max(net.sysctl_tcp_rmem[2], so_rcvbuf, max(flow.sk.sk_rcvbuf for flow in self.flows))
        cap = min(count + 2, MAX_QUEUE, largest // self.min_truesize + 4)
        profile = ref.kernel.profile
        tc = tcp_consts(profile, ref.sockets.net_template)
        tc[TC_RUN] = 1
        tc[TC_RTT_NS] = ref.sockets.rtt_ns
        tc[TC_APP_GAP] = -1 if config.app_rate is None else (int(1e9 / config.app_rate) if config.app_rate else 0)
        tc[TC_READ_SIZE] = -1 if config.app_read_size is None else config.app_read_size
        tc[TC_SR_EVERY] = 1
        t = new_tcp_socks(tc, n, cap, 64)
        nic = self.lengths is None  # -- TCP through NAPI drivers --: the frames between the NIC and the driver
        tfl = new_tcp_flows(n, MAX_ACKS_IN_FLIGHT, 1, self.facts, config.cpus, MAX_NIC_FRAMES if nic else 1,
                            NAPI_POLL_WEIGHT if nic else 1)
        if plot:  # -- TCP plot --
            tfl = tfl._replace(series=np.zeros((max(1, n), SERIES_LIMIT, 5), np.int64))
        for f, flow in enumerate(self.flows):
            sock_to_row(flow.sk, t.sk[f])
            self._flow_row(flow, tfl, f, plot)
            tfl.rss[f] = flow.sender.rss_hash
        tsnd = senders_to_record(ref.senders, min(MAX_FLIGHT, count + 2), 256, 4)
        return min(count + 2, n * cap), {"tcp": t, "tsnd": tsnd, "tfl": tfl}

    def _flow_row(self, flow, tfl, f: int, plot: bool) -> None:
        from skbsim.fast.state import (
            F_ACK_SEQ, F_CPU, F_DOFF, F_MSS, F_QUEUE, F_RCVBUF_INIT, F_RCVBUF_MAX, F_RCV_MARK, F_RCV_START, F_SINCE,
            F_START_EDGE, F_TWINDOW, F_WAITING, F_WINDOW, F_WSCALE,
        )

        row = tfl.fl[f]
        sender = flow.sender
        synack = flow.synack
        template = sender.template
        values = {F_CPU: flow.cpu, F_QUEUE: sender.queue % self.config.cpus, F_WINDOW: flow.window,
                  F_SINCE: flow.window_since, F_MSS: flow.mss, F_RCVBUF_INIT: flow.rcvbuf_initial,
                  F_RCVBUF_MAX: flow.rcvbuf_max, F_RCV_START: flow.rcv_start, F_RCV_MARK: flow.rcv_mark,
                  F_WAITING: int(flow.reader.waiting), F_START_EDGE: (sender.isn + 1 + synack["win"]) & U32,
                  F_WSCALE: synack["wscale"] or 0, F_ACK_SEQ: template.ack_seq, F_TWINDOW: template.window,
                  F_DOFF: template.header_len - 34}
        if flow.timer_due is not None or flow.received or flow.first_data_ns is not None:
            raise ValueError("a receiver that did more than its handshake before the run")
        for col, value in values.items():
            row[col] = value
        _thinned_row(flow.json_series, tfl.json[f], row, (F_JS_COUNT, F_JS_EVERY, F_JS_LEN))
        if plot:  # -- TCP plot --
            _thinned_row(flow.series, tfl.series[f], row, (F_PS_COUNT, F_PS_EVERY, F_PS_LEN))

    def finish_tables(self, k):
        """The records sized by the kernel's own: a control block per sk_buff object, a mark per page; a NAPI
        driver's runs: a frag list per sk_buff object (a coalesced skb gathers up to MAX_SKB_FRAGS frags)."""
        from skbsim.fast.state import CACHE_SKB, K_OBJS, K_SLOTS, Frags

        objects = int(k.slabs.caches[CACHE_SKB, K_SLOTS] * k.slabs.caches[CACHE_SKB, K_OBJS])
        tfl = k.tfl._replace(mark=np.zeros(k.pages.page.shape[0], np.int64))
        k = k._replace(skbcb=new_skb_cb(objects), tfl=tfl)
        if self.lengths is None:  # -- TCP through NAPI drivers --
            width = max(k.frags.fl.shape[1], self.ref.kernel.profile.MAX_SKB_FRAGS + 2)
            k = k._replace(frags=Frags(np.zeros((max(objects, k.frags.fl.shape[0]), width), np.int64)))
        return k

    # -- the report ------------------------------------------------------------------------------------------

    def flow_reports(self, k, end_ns: int) -> list[dict] | None:
        """Sockets.finish()'s reports of the flows (their figures as the run ends); None for a capture's flow the
        fast engine cannot report (one that got a SYN or RST only: no receiver)."""
        from skbsim.sockets import SERIES_KEYS, flow_name

        rtt_ns = self.ref.sockets.rtt_ns
        reports = []
        if self.capture is not None:  # -- TCP capture --: the flows in the order their first skb came
            fls = k.tfl.fl
            order = sorted((int(fls[f, state.F_ORDER]), f) for f in range(len(self.capture.keys))
                           if fls[f, state.F_ORDER] >= 0)
            if any(fls[f, state.F_STATE] != state.FS_ESTABLISHED for _, f in order):
                return None
            flows = [(f, flow_name(self.capture.keys[f]), int(fls[f, state.F_CPU])) for _, f in order]
        else:
            flows = [(f, flow.name, flow.cpu) for f, flow in enumerate(self.flows)]
        for f, name, cpu in flows:
            fl = [int(x) for x in k.tfl.fl[f]]
            sk = k.tcp.sk[f]
            snd = k.tsnd.snd[f]
            if self.capture is not None:  # the receiver's own RTT estimate (Sockets._tcp_report())
                rtt_ns = (int(sk[state.TS_RTT_US]) >> 3) * 1000 if sk[state.TS_RTT_US] else None
            received = fl[state.F_RECEIVED] + ((int(sk[state.TS_RCV_NXT]) - fl[state.F_RCV_MARK]) & U32)
            window = fl[state.F_WINDOW]
            at = max(end_ns, fl[state.F_SINCE])
            elapsed = at - fl[state.F_SINCE]
            integral, small, zero = fl[state.F_INTEGRAL], fl[state.F_SMALL_NS], fl[state.F_ZERO_NS]
            if elapsed > 0:
                integral += window * elapsed
                if window < fl[state.F_MSS]:
                    small += elapsed
                    if window == 0:
                        zero += elapsed
            first, last = fl[state.F_FIRST_NS], fl[state.F_LAST_NS]
            duration = None if first < 0 else last - first + (self.ref.sockets.rtt_ns or 0)
            throughput = window_bound = None
            if duration:
                throughput = round(received * 8 / duration * 1000, 3)
                span = last - first
                mean = (fl[state.F_INT_LAST] - fl[state.F_INT_FIRST]) / span if span else window
                if rtt_ns:
                    window_bound = round(mean * 8 / rtt_ns * 1000, 3)
            drops = {name: fl[state.F_DROPS + n] for n, name in enumerate(_drop_reasons()) if fl[state.F_DROPS + n]}
            points = k.tfl.json[f, :fl[state.F_JS_LEN]].tolist()
            reports.append({
                "flow": name, "protocol": "tcp", "cpu": cpu, "skbs": fl[state.F_SKBS],
                "segments": fl[state.F_SEGMENTS], "delivered": fl[state.F_DELIVERED],
                "dropped": dict(sorted(drops.items())),
                "control": fl[state.F_CONTROL], "bytes_received": received, "bytes_read": fl[state.F_BYTES_READ],
                "duration_ms": None if duration is None else round(duration / 1e6, 6), "throughput_mbps": throughput,
                "rtt_ms": None if rtt_ns is None else round(rtt_ns / 1e6, 6), "window_bound_mbps": window_bound,
                "zero_window_ms": round(zero / 1e6, 6), "window_below_mss_ms": round(small / 1e6, 6),
                "mss": fl[state.F_MSS], "window_at_end": window,
                "rcvbuf": {"initial": fl[state.F_RCVBUF_INIT], "max": fl[state.F_RCVBUF_MAX],
                           "at_end": int(sk[state.TS_RCVBUF])},
                "rmem_alloc": {"peak": fl[state.F_RMEM_PEAK], "at_end": int(sk[state.TS_RMEM])},
                "collapse_copied_bytes": int(sk[state.TS_COLLAPSE_COPIED]),
                "counters": {name: int(sk[state.TS_MIB + n]) for n, name in enumerate(TCPEXT)},
                "series": [dict(zip(SERIES_KEYS, (round(p[0] / 1e6, 6),) + tuple(p[1:]))) for p in points],
            })
            if self.capture is not None:  # -- TCP capture --
                from skbsim.fast.tcp_capture import refused_report

                reports[-1]["refused"] = refused_report(k.tfl.fl[f], k.tfl.refused[f], _drop_reasons())
                continue
            reports[-1].update({
                "sender": {"frames": int(snd[state.SN_FRAMES]), "segments": int(snd[state.SN_SEGMENTS]),
                           "bytes": int(snd[state.SN_BYTES_SENT]), "retransmits": int(snd[state.SN_RETRANSMITS]),
                           "window_probes": int(snd[state.SN_WINDOW_PROBES]),
                           "zero_window_probes": int(snd[state.SN_ZW_PROBES])},
            })
        return reports

    def plot_series(self, k) -> list:
        """-- TCP plot --: Sockets.finish()'s plot series, (name, points) of each flow (a capture's in the order
        their first skb came, as flow_reports() lists them)."""
        fl = k.tfl.fl
        if self.capture is not None:
            from skbsim.sockets import flow_name

            order = sorted((int(fl[f, state.F_ORDER]), f) for f in range(len(self.capture.keys))
                           if fl[f, state.F_ORDER] >= 0)
            flows = [(f, flow_name(self.capture.keys[f])) for _, f in order]
        else:
            flows = [(f, flow.name) for f, flow in enumerate(self.flows)]
        return [(name, [tuple(point) for point in k.tfl.series[f, :fl[f, F_PS_LEN]].tolist()]) for f, name in flows]

    def patch_result(self, k, result: dict, reports: list[dict], pinned_at_end: int) -> dict:
        """Simulation._finish()'s keys of a run with a socket per flow over the UDP run's result."""
        from skbsim.net.sock import SK_MEMINFO_FIELDS, WMEM_DEFAULT
        from skbsim.sim import tcp_totals

        config = self.config
        tc = k.tcp.tc
        meminfo = dict.fromkeys(SK_MEMINFO_FIELDS, 0)
        meminfo["rcvbuf"] = config.rcvbuf
        meminfo["sndbuf"] = WMEM_DEFAULT
        result["traffic"] = self.ref.traffic_text if self.capture is None else self.ref.source.describe()
        result["delivered"] = int(tc[state.TC_DELIVERED])
        dropped = result["dropped"]
        dropped["socket_rcvbuf"] = 0
        dropped["tcp"] = int(tc[state.TC_TCP_DROPS])
        result["dropped_total"] = sum(dropped.values())
        result["pages"]["peak_pinned_by_queued_skbs"] = int(k.st[state.PEAK_PINNED])
        result["pages"]["pinned_at_end"] = pinned_at_end
        result["socket"] = {"rcvbuf": config.rcvbuf, "peak_rmem_alloc": 0, "queued_at_end": 0, "condensed": 0,
                            "drops": 0, "meminfo_at_end": meminfo}
        result["flows"] = reports
        result["tcp"] = tcp_totals(config, reports, self.ref.senders)
        assert not k.st[SK_LEN]
        return result


def _thinned_row(thinned, points, row, columns) -> None:
    """A flow's Thinned series as the model left it (its points, then its count, step and length into row's
    columns)."""
    for j, point in enumerate(thinned.points):
        points[j] = point
    for col, value in zip(columns, (thinned.count, thinned.every, len(thinned.points))):
        row[col] = value


def _drop_reasons():
    from skbsim.fast.tcp import DROP_REASONS

    return DROP_REASONS


assert F_FIELDS > 0
