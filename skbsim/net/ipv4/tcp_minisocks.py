"""The request socket and the child socket, after net/ipv4/tcp_minisocks.c (and tcp_input.c's
tcp_conn_request(), tcp_ipv4.c's tcp_v4_syn_recv_sock(), tcp_input.c's SYN_RECV step).

A passive open in the model: :func:`tcp_conn_request` answers the peer's
SYN (the request socket's window, window scale and clamp:
:func:`tcp_openreq_init_rwin`; the SYN-ACK's figures), and
:func:`tcp_passive_establish` turns the final ACK into an established
child socket (:func:`tcp_create_openreq_child`, the MSS figures, the
SYN-ACK RTT sample, tcp_init_transfer() -> tcp_init_buffer_space()).
"""

from __future__ import annotations

from skbsim.net.core_sock import SOCK_RCVBUF_LOCK
from skbsim.net.ipv4.tcp import (
    TCP_ESTABLISHED,
    TCP_HEADER,
    TCP_MSS_DEFAULT,
    TCPOLEN_TSTAMP_ALIGNED,
    U16_MAX,
    U32,
    tcp_event,
    tcp_init_sock,
    tcp_jiffies32,
    tcp_mstamp_refresh,
    tcp_sock,
    sock_setsockopt_rcvbuf,
)
from skbsim.net.ipv4.tcp_ipv4 import ipv4_default_advmss, tcp_mtu_to_mss
from skbsim.net.ipv4.tcp_output import tcp_select_initial_window, usecs_to_jiffies
from skbsim.tcp_steps import SynOptions


class request_sock:
    """struct tcp_request_sock / inet_request_sock: what the listener keeps between SYN and final ACK."""

    __slots__ = ("mss", "rsk_rcv_wnd", "rsk_window_clamp", "rcv_wscale", "snd_wscale", "wscale_ok", "tstamp_ok",
                 "sack_ok", "rcv_isn", "snt_isn", "snt_synack_us", "advmss_route", "ts_recent")

    def __init__(self) -> None:
        self.mss = TCP_MSS_DEFAULT
        self.rsk_rcv_wnd = 0
        self.rsk_window_clamp = 0
        self.rcv_wscale = 0
        self.snd_wscale = 0
        self.wscale_ok = False
        self.tstamp_ok = False
        self.sack_ok = False
        self.rcv_isn = 0
        self.snt_isn = 0
        self.snt_synack_us = 0
        self.advmss_route = 0
        self.ts_recent = 0


def tcp_listen_sock(kernel, net, ca_ops, snd_isn: int, so_rcvbuf: int | None = None, name: str = "listener",
                    events: list | None = None) -> tcp_sock:
    """A listening socket as an application makes one: socket(AF_INET, SOCK_STREAM) (tcp_init_sock()),
    setsockopt(TCP_CONGESTION) (``ca_ops``), setsockopt(SO_RCVBUF) before listen() when ``so_rcvbuf``
    is given (sock_setsockopt_rcvbuf()), listen().  ``snd_isn`` is the ISN its SYN-ACKs will carry
    (secure_tcp_seq() in the kernel; chosen by the caller so that runs are reproducible)."""
    sk = tcp_sock(kernel, net, name)
    sk.events = events
    tcp_init_sock(sk)
    sk.icsk_ca_ops = ca_ops
    sk.snd_isn = snd_isn
    if so_rcvbuf is not None:
        sock_setsockopt_rcvbuf(sk, so_rcvbuf)
    return sk


def tcp_openreq_init_rwin(req: request_sock, listener: tcp_sock, mtu: int) -> None:
    """net/ipv4/tcp_minisocks.c: tcp_openreq_init_rwin() - the request's window, clamp and window scale.

    The free space is the listener's full space (tcp_full_space() of its
    sk_rcvbuf); the clamp is the listener's window_clamp, and with
    SO_RCVBUF set (SOCK_RCVBUF_LOCK) at most that full space; the MSS is
    the route's advmss less the timestamp option.
    """
    from skbsim.net.ipv4.tcp_input import tcp_full_space

    net = listener.net
    full_space = tcp_full_space(listener)
    mss = ipv4_default_advmss(mtu)
    req.advmss_route = mss
    req.rsk_window_clamp = listener.window_clamp
    if listener.sk_userlocks & SOCK_RCVBUF_LOCK and (req.rsk_window_clamp > full_space or
                                                     req.rsk_window_clamp == 0):
        req.rsk_window_clamp = full_space
    u16_cap = listener.kernel.profile.feature("tcp_initial_rcv_wnd") == "u16_max"
    req.rsk_rcv_wnd, req.rsk_window_clamp, req.rcv_wscale = tcp_select_initial_window(
        full_space, mss - (TCPOLEN_TSTAMP_ALIGNED if req.tstamp_ok else 0), req.rsk_window_clamp, req.wscale_ok,
        net.sysctl_tcp_rmem[2], net.sysctl_rmem_max, u16_cap, bool(net.sysctl_tcp_workaround_signed_windows))
    if listener.events is not None:
        tcp_event(listener, "select_initial_window", full_space=full_space, mss=mss, rcv_wnd=req.rsk_rcv_wnd,
                  window_clamp=req.rsk_window_clamp, rcv_wscale=req.rcv_wscale, rmem2=net.sysctl_tcp_rmem[2],
                  rmem_max=net.sysctl_rmem_max, u16_cap=u16_cap)


def tcp_conn_request(listener: tcp_sock, syn: SynOptions, peer_isn: int, mtu: int,
                     syn_tsval: int = 0) -> tuple[request_sock, dict]:
    """net/ipv4/tcp_input.c: tcp_conn_request() - a request socket for the peer's SYN, and the SYN-ACK.

    ``syn_tsval`` is the SYN's TSval (tcp_openreq_init(): the request's
    ts_recent, which the first data segment's PAWS check compares with).

    The request keeps the peer's MSS (TCP_MSS_DEFAULT without the
    option), window scale, timestamp and SACK permissions.  Returns
    (request, SYN-ACK) with the SYN-ACK's raw window (min(rcv_wnd, 65535)),
    window scale (None when not negotiated) and MSS option (the route's
    advmss).
    """
    req = request_sock()
    req.mss = syn.mss
    req.wscale_ok = syn.wscale is not None
    req.snd_wscale = min(syn.wscale, 14) if syn.wscale is not None else 0
    req.tstamp_ok = syn.ts
    req.sack_ok = syn.sack
    req.rcv_isn = peer_isn
    req.snt_isn = listener.snd_isn
    req.snt_synack_us = listener.net.now_us
    if syn.ts:
        req.ts_recent = syn_tsval
    tcp_openreq_init_rwin(req, listener, mtu)
    synack = {
        "win": min(req.rsk_rcv_wnd, U16_MAX),
        "wscale": req.rcv_wscale if req.wscale_ok else None,
        "mss": req.advmss_route,
    }
    return req, synack


def tcp_create_openreq_child(listener: tcp_sock, req: request_sock, name: str, ack_window: int = U16_MAX) -> tcp_sock:
    """net/ipv4/tcp_minisocks.c: tcp_create_openreq_child() - the child socket (sk_clone_lock() of the
    listener: its buffers, locks, congestion control and scaling ratio) with the request's window;
    snd_wnd is the final ACK's raw window field (``ack_window``) scaled by the peer's window scale."""
    sk = tcp_sock(listener.kernel, listener.net, name)
    for field in ("sk_rcvbuf", "sk_sndbuf", "sk_userlocks", "scaling_ratio", "icsk_ca_ops", "reordering",
                  "snd_cwnd", "ts_offset"):
        setattr(sk, field, getattr(listener, field))
    sk.events = listener.events
    seq = (req.rcv_isn + 1) & U32
    sk.rcv_nxt = sk.rcv_wup = sk.copied_seq = seq
    sk.rcv_isn = req.rcv_isn
    sk.snd_isn = req.snt_isn
    sk.snd_una = sk.snd_nxt = (req.snt_isn + 1) & U32
    sk.icsk_ack_lrcvtime = tcp_jiffies32(sk)
    sk.icsk_rto = sk.net.HZ  # TCP_TIMEOUT_INIT
    sk.rx_opt_tstamp_ok = req.tstamp_ok
    sk.rx_opt_sack_ok = req.sack_ok
    sk.window_clamp = req.rsk_window_clamp
    sk.rcv_ssthresh = req.rsk_rcv_wnd
    sk.rcv_wnd = req.rsk_rcv_wnd
    sk.rcv_mwnd_seq = (sk.rcv_wup + req.rsk_rcv_wnd) & U32
    sk.rx_opt_wscale_ok = req.wscale_ok
    if req.wscale_ok:
        sk.rx_opt_snd_wscale = req.snd_wscale
        sk.rx_opt_rcv_wscale = req.rcv_wscale
    else:
        sk.rx_opt_snd_wscale = sk.rx_opt_rcv_wscale = 0
        sk.window_clamp = min(sk.window_clamp, 65535)
    sk.snd_wnd = ack_window << sk.rx_opt_snd_wscale
    sk.tcp_header_len = TCP_HEADER + (TCPOLEN_TSTAMP_ALIGNED if req.tstamp_ok else 0)
    if req.tstamp_ok:
        sk.rx_opt_ts_recent = req.ts_recent
    sk.rx_opt_mss_clamp = req.mss
    return sk


def tcp_synack_rtt_meas(sk: tcp_sock, req: request_sock) -> None:
    """net/ipv4/tcp_input.c: tcp_synack_rtt_meas() -> tcp_rtt_estimator() and tcp_set_rto() for the
    first RTT sample (SYN-ACK to final ACK): srtt = 8 m, rttvar = max(2 m, 200 ms), rto = srtt / 8 +
    rttvar in jiffies."""
    m = max(sk.net.now_us - req.snt_synack_us, 0)
    sk.srtt_us = max(1, m << 3)
    rttvar = max(m << 1, 200_000)
    sk.icsk_rto = min(usecs_to_jiffies((sk.srtt_us >> 3) + rttvar, sk.net.HZ), 120 * sk.net.HZ)


def tcp_passive_establish(listener: tcp_sock, req: request_sock, mtu: int, name: str = "tcp",
                          ack_window: int = U16_MAX) -> tcp_sock:
    """The final ACK of the handshake: tcp_check_req() -> tcp_v4_syn_recv_sock() -> the SYN_RECV step
    of tcp_rcv_state_process(); then accept().

    tcp_v4_syn_recv_sock(): mss_cache = tcp_sync_mss() of the route MTU,
    advmss = the route's advmss, rcv_mss = tcp_initialize_rcv_mss().  The
    SYN_RECV step: the SYN-ACK RTT sample; with timestamps advmss less 12
    (before tcp_init_transfer() from 6.16 'tcp: fix initial
    tp->rcvq_space.space value for passive TS enabled flows', 6.1.y and
    6.12.y; after it in 6.9: feature ``tcp_passive_ts_advmss``);
    tcp_init_transfer() -> tcp_init_buffer_space(); copied_seq;
    tcp_initialize_rcv_mss() again; header prediction on.  ``ack_window`` is
    the final ACK's raw window field (the scripted peer's is 65535).
    """
    from skbsim.net.ipv4.tcp_input import tcp_fast_path_on, tcp_init_buffer_space, tcp_initialize_rcv_mss

    sk = tcp_create_openreq_child(listener, req, name, ack_window)
    sk.mss_cache = tcp_mtu_to_mss(mtu, sk.rx_opt_mss_clamp, sk.tcp_header_len)
    sk.advmss = ipv4_default_advmss(mtu)
    tcp_initialize_rcv_mss(sk)
    tcp_mstamp_refresh(sk)
    tcp_synack_rtt_meas(sk, req)
    early = sk.kernel.profile.feature("tcp_passive_ts_advmss") == "before_init_transfer"
    if sk.rx_opt_tstamp_ok and early:
        sk.advmss -= TCPOLEN_TSTAMP_ALIGNED
    tcp_init_buffer_space(sk)
    sk.copied_seq = sk.rcv_nxt
    sk.sk_state = TCP_ESTABLISHED
    if sk.rx_opt_tstamp_ok and not early:
        sk.advmss -= TCPOLEN_TSTAMP_ALIGNED
    tcp_initialize_rcv_mss(sk)
    tcp_fast_path_on(sk)
    if sk.events is not None:
        tcp_event(sk, "established", advmss=sk.advmss, mss_cache=sk.mss_cache, rcv_mss=sk.icsk_ack_rcv_mss,
                  rcv_wnd=sk.rcv_wnd, window_clamp=sk.window_clamp, rcv_space=sk.rcvq_space_space, srtt_us=sk.srtt_us,
                  rto=sk.icsk_rto, sndbuf=sk.sk_sndbuf)
    sk.sk_socket = True  # accept()
    return sk
