"""IPv4 TCP receive, after net/ipv4/tcp*.c: one module per kernel source file.

- :mod:`tcp` (net/ipv4/tcp.c): struct tcp_sock, tcp_init_sock(), recvmsg and
  the window-update ACK after a read (tcp_cleanup_rbuf()), TCP_INFO;
- :mod:`tcp_input` (net/ipv4/tcp_input.c): the established-state receive
  path, window growth, admission, queueing, pruning, collapsing, autotuning;
- :mod:`tcp_output` (net/ipv4/tcp_output.c): window selection, ACKs,
  the initial window;
- :mod:`tcp_ipv4` (net/ipv4/tcp_ipv4.c): tcp_v4_rcv(), the socket backlog,
  the per-namespace TCP sysctls (tcp_sk_init());
- :mod:`tcp_minisocks` (net/ipv4/tcp_minisocks.c): the request socket's
  window and the child socket;
- :mod:`tcp_timer` (net/ipv4/tcp_timer.c): the delayed-ACK timer;
- :mod:`tcp_cong` (net/ipv4/tcp_cong.c, tcp_cubic.c, tcp_bbr.c): congestion
  control as far as receive memory needs it (sndbuf_expand);
- :mod:`ip_input` (net/ipv4/ip_input.c): ip_rcv_core()'s trim and orphan.

Release differences are profile features (the ``tcp_*`` block of
skbsim.profile.FEATURES, docs/versions.md); every integer formula is a
plain module-level function of ints.
"""
