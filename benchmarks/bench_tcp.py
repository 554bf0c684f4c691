#!/usr/bin/env python3
"""Speed of a TCP bulk transfer in ``skbsim run --socket tcp``, beside the live kernel receiving the same stream.

Prints figures and ratios; asserts nothing.  Timings are noisy (on a shared machine, and on a VM whose
host is busy even when the VM is idle): every figure is the best of --repeat runs, each line gives the
median too, a workload's model runs and live passes alternate (model, live, model, live ...) so that
both meet the same conditions, and the ratios are taken between figures measured in the same run.

Both sides move one TCP stream of full-size segments without timestamps (MSS 1460: 1514-byte
frames), a peer sending as fast as the receiver's advertised window lets it and an application
reading as fast as it can.

1. The model: ``skbsim run --socket tcp --traffic tcp-bulk:ts=0 --tcp bulk --flows 1 --kernel 6.18
   --count N`` through each workload's driver, called through the library
   (skbsim.fast.simulate_engine, engine "fast", after one untimed warm-up run of a tenth of N):
   segments that reached the receiver (the flow's ``segments``) and the bytes it received in order
   (``bytes_received``), per second of wall time of the whole call: the sender, the driver, NAPI,
   GRO, the TCP receiver, its ACKs and the reader, all modelled; and per second of the CPU time the
   process used meanwhile (getrusage(), user + system).  The line says which engine ran: the fast
   engine runs the tun workload, virtio_net through GRO (mergeable buffers: the copy head of each
   full-size frame, GRO's aggregates), ice through GRO (rx=build_skb: the segments GRO merges go to
   the receiver as aggregates) and ntb (ntb_netdev without copybreak: each segment in its 65524-byte
   kmalloc'ed ring buffer, truesize 131328, copied by tcp_try_coalesce() into the tailroom of the one
   before); a workload it hands to the reference engine prints the reason.
2. The live kernel (needs root, /dev/net/tun, network namespaces and the ip command; skipped with a
   note otherwise): a tap in a network namespace of our own (skbsim.live.tap: ``skbsim-<pid>-<n>``,
   a fresh one per pass), a listening socket in it (no SO_RCVBUF: autotuning, as in the model;
   the default congestion control), accept()ed after a handshake the peer makes
   with raw frames (SYN with MSS 1460, window scale 7, SACK permitted), and a thread that reads the
   accepted socket with blocking recv_into() of 1 MiB as fast as it can.  The peer, in this
   process, writes pre-built Ethernet/IPv4/TCP segments (skbsim.live.tap.ipv4_tcp_frame: 1460
   filler bytes, both checksums right, in-order sequence numbers, the ACK of the receiver's ISN + 1;
   built before the clock starts) into the tap with blocking write()s, never beyond the right edge
   the receiver last advertised: it reads the receiver's ACKs back from the tap's fd (poll() with
   no wait every 32 segments, and waiting whenever the next segment would pass the edge).  Each
   write() is one skb that the kernel takes through tun_get_user() and the stack (IP, TCP, the
   socket's queue) before write() returns; the reader's recv_into() copies it to user space.
   Timed: from the first write to the moment the reader has every byte, which it checks against
   the bytes sent; and the process's CPU time meanwhile (getrusage(), both threads): system time
   is the kernel's work (the writes' receive path, the ACKs, the copy), user time the Python peer
   and reader.  Their sum follows the scheduler's runtime of the threads; with tick accounting
   (CONFIG_TICK_CPU_ACCOUNTING, as here) the split between user and system follows samples taken
   every tick (4 ms at HZ 250), coarse for short passes, and receive work the kernel defers to
   ksoftirqd is not counted.  The tun workload's tap is plain (tun_alloc_skb(),
   netif_receive_skb()), and so is the ntb workload's (this machine has no NTB link: the live side is
   the same stream into a plain tap); the GRO workloads' has IFF_NAPI (each write is queued and
   tun_napi_receive() hands it to napi_gro_receive()): one segment per NAPI poll, so live GRO has
   nothing to merge, whereas the modelled NIC's polls see several frames of the flow at its link
   rate (--rate's default, 1,000,000 frames/s).  "tun IFF_NAPI" models that tap itself (tun with
   --opt napi=1: each write through GRO alone, flushed with its poll), the pair closest to alike.
3. Ratios model / live of segments per second for each workload (the same for bytes: every
   segment carries 1460 bytes on both sides): in wall time, per CPU second, and the model per CPU
   second against the live kernel per second of its system time alone.

The model runs 1,000,000 segments (a run has a fixed set-up of some 30 ms, the scratch kernel and tables
read from the model, which 20,000 segments on the fast engine would mostly measure); a workload the fast
engine hands to the reference engine runs 20,000 (--reference-segments), as before.

Usage: python3 benchmarks/bench_tcp.py [--segments 1000000] [--reference-segments 20000] [--live-segments 50000]
       [--repeat 3] [--only "tun,ice through GRO"]
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import shutil
import socket
import statistics
import struct
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KERNEL = "6.18"
MSS = 1460
TRAFFIC = "tcp-bulk:ts=0"
#: (label, the model's driver and options, the live tap's IFF_NAPI)
WORKLOADS = (("tun", "tun", {}, False), ("tun IFF_NAPI", "tun", {"napi": "1"}, True),
             ("virtio_net through GRO", "virtio_net", {}, True), ("ice through GRO", "ice", {}, True),
             ("ntb", "ntb", {}, False))
READ_SIZE = 1 << 20
ACK_POLL_EVERY = 32
STALL_S = 5.0


def cpu_seconds() -> tuple[float, float]:
    """This process's (user, system) CPU time so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


class ModelWorkload:
    """One workload's model runs: set up (and warmed up) once, then timed pass by pass (ModelWorkload.run())."""

    def __init__(self, segments: int, label: str, driver: str, options: dict, reference_segments: int):
        """A workload the fast engine hands to the reference engine runs min(segments, reference_segments)."""
        from skbsim.fast import simulate_engine, unsupported
        from skbsim.sim import RunConfig

        self.label = label
        self.simulate_engine = simulate_engine
        self.config = lambda count: RunConfig(kernel=KERNEL, driver=driver, options=options, traffic=TRAFFIC,
                                              socket="tcp", tcp="bulk", flows=1, count=count)
        if unsupported(self.config(segments)) is not None:
            segments = min(segments, reference_segments)
        self.segments = segments
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.result, self.why = None, None
        simulate_engine(self.config(max(1, segments // 10)), "fast")  # warm-up: imports, the fast engine's cache

    def run(self) -> None:
        """One timed run: its wall and CPU seconds kept."""
        cpu = sum(cpu_seconds())
        started = time.perf_counter()
        self.result, _, self.why = self.simulate_engine(self.config(self.segments), "fast")
        self.walls.append(time.perf_counter() - started)
        self.cpus.append(sum(cpu_seconds()) - cpu)

    def report(self) -> tuple[float, float]:
        """Prints the best run (and the median's rate): (segments per second of wall time, per CPU second)."""
        result, why = self.result, self.why
        best, best_cpu = min(self.walls), min(self.cpus)
        flows = [flow for flow in result["flows"] if flow["protocol"] == "tcp"]
        received = sum(flow["segments"] for flow in flows)
        skbs = sum(flow["skbs"] for flow in flows)
        nbytes = sum(flow["bytes_received"] for flow in flows)
        rate = received / best
        leaks = "" if result["leaks"]["clean"] else "; LEAKS: " + str(result["leaks"])
        engine = result["engine"] + (f" engine (the fast engine handed the run over: {why})" if why else " engine")
        print(f"model   {engine}, {KERNEL} {self.label}, {TRAFFIC}, 1 flow: {received:,} segments in {skbs:,} skbs, "
              f"{nbytes:,} bytes in {best:.3f} s = {rate:,.0f} segments/s, {nbytes / best / 1e6:,.1f} MB/s; "
              f"{best_cpu:.3f} s of CPU = {received / best_cpu:,.0f} segments per CPU second (simulated throughput "
              f"{result['tcp']['throughput_mbps']:,.0f} Mbit/s; best of {len(self.walls)}, median "
              f"{received / statistics.median(self.walls):,.0f} segments/s){leaks}")
        return rate, received / best_cpu


def live_missing() -> list[str]:
    """What the live side lacks here (empty when nothing): it needs no tracefs."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (uid 0) for network namespaces and /dev/net/tun")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        missing.append("/dev/net/tun (CONFIG_TUN), readable and writable")
    if not os.path.exists("/proc/self/ns/net"):
        missing.append("network namespaces (CONFIG_NET_NS)")
    if shutil.which("ip") is None:
        missing.append("the ip command (iproute2)")
    return missing


def _receiver_ack(frame: bytes, port: int) -> tuple[int, int] | None:
    """(ACK number, raw window) of a segment the receiver sent from *port*; None for anything else.
    Read by offset, not parsed whole (skbsim.live.tcp_peer.parse_frame): the peer reads one of these for
    every few segments it writes, inside the timed loop."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    tcp = 14 + (frame[14] & 0x0F) * 4
    sport, ack, flags, window = struct.unpack_from("!H6xIxBH", frame, tcp)
    if sport != port or not flags & 0x10:
        return None
    return ack, window


class _Reader(threading.Thread):
    """The application: reads the accepted socket as fast as it can until *expected* bytes came."""

    def __init__(self, sock: socket.socket, expected: int) -> None:
        super().__init__(name="bench-tcp-reader", daemon=True)
        self.sock = sock
        self.expected = expected
        self.received = 0
        self.done_at: float | None = None

    def run(self) -> None:
        buffer = bytearray(READ_SIZE)
        try:
            while self.received < self.expected:
                n = self.sock.recv_into(buffer)
                if not n:
                    break
                self.received += n
        except OSError:
            pass  # a timeout: the peer stalled; the caller reports the shortfall
        self.done_at = time.perf_counter()


def _handshake(tap, ns, listener: socket.socket) -> tuple[socket.socket, int, int, int]:
    """SYN, SYN-ACK read back from the tap, final ACK, accept(): (the accepted socket, the receiver's
    ISN, its window scale, the SYN-ACK's window: never scaled)."""
    from skbsim.errors import InputError
    from skbsim.live.tcp_peer import (
        ACK_WAIT_LIMIT_S, PEER_IP, PEER_MAC, PEER_PORT, RECEIVER_IP, RECEIVER_PORT, TCP_ACK, TCP_SYN, accept_receiver,
        parse_frame, syn_options, tcp_frame,
    )
    from skbsim.tcp_session import PEER_ISN, PEER_WINDOW

    def frame(seq, ack, flags, options=b""):
        return tcp_frame(dst_mac=tap.mac, src_mac=PEER_MAC, src_ip=PEER_IP, dst_ip=RECEIVER_IP, sport=PEER_PORT,
                         dport=RECEIVER_PORT, seq=seq, ack=ack, flags=flags, window=PEER_WINDOW, options=options)

    tap.write(frame(PEER_ISN, 0, TCP_SYN, syn_options(mss=MSS, wscale=7, timestamps=None, sack_permitted=True)))
    poll = select.poll()
    poll.register(tap.fd, select.POLLIN)
    deadline = time.monotonic() + ACK_WAIT_LIMIT_S
    while time.monotonic() < deadline:
        if not poll.poll(100):
            continue
        synack = parse_frame(os.read(tap.fd, 1 << 16))
        if synack is not None and synack.sport == RECEIVER_PORT and synack.flags & TCP_SYN:
            break
    else:
        raise InputError("no SYN-ACK from the receiver")
    tap.write(frame(PEER_ISN + 1, synack.seq + 1, TCP_ACK))
    sock = ns.call(accept_receiver, listener)
    return sock, synack.seq, synack.wscale or 0, synack.window


def live_pass(segments: int, napi: bool) -> tuple[float, tuple[float, float], int, int, int]:
    """One transfer of *segments* full-size segments into a fresh tap: (seconds, (user, system) CPU
    seconds of this process meanwhile, bytes sent, bytes the reader got, ACKs read back)."""
    from skbsim.live.tap import NetnsThread, ipv4_tcp_frame, tap_in_new_netns
    from skbsim.live.tcp_peer import PEER_IP, PEER_MAC, PEER_PORT, RECEIVER_IP, RECEIVER_PORT, listen_receiver
    from skbsim.tcp_session import PEER_ISN, PEER_WINDOW

    with tap_in_new_netns(napi=napi, ipv4=f"{RECEIVER_IP}/24") as tap, NetnsThread(tap.netns.path) as ns:
        tap.netns.ip("neigh", "replace", PEER_IP, "lladdr", PEER_MAC.hex(":"), "dev", tap.name, "nud", "permanent")
        listener = ns.call(listen_receiver, None, None)
        try:
            sock, irs, wscale, edge = _handshake(tap, ns, listener)
        finally:
            listener.close()
        try:
            sock.settimeout(STALL_S)
            first = (PEER_ISN + 1) & 0xFFFFFFFF
            ack = (irs + 1) & 0xFFFFFFFF
            frames = [ipv4_tcp_frame(MSS, tap.mac, PEER_MAC, PEER_IP, RECEIVER_IP, PEER_PORT, RECEIVER_PORT,
                                     first + i * MSS, ip_id=i, ack_seq=ack, tsval=None, window=PEER_WINDOW)
                      for i in range(segments)]
            reader = _Reader(sock, segments * MSS)
            poll = select.poll()
            poll.register(tap.fd, select.POLLIN)
            fd = tap.fd
            # edge: the right edge the receiver last advertised, in bytes from the first segment's start
            acks = 0
            reader.start()
            cpu = cpu_seconds()
            started = time.perf_counter()
            for i, data in enumerate(frames):
                end = (i + 1) * MSS
                if end > edge or i % ACK_POLL_EVERY == 0:
                    give_up = time.monotonic() + STALL_S
                    while True:
                        while poll.poll(0):
                            answer = _receiver_ack(os.read(fd, 1 << 16), RECEIVER_PORT)
                            if answer is not None:
                                acks += 1
                                edge = ((answer[0] - first) & 0xFFFFFFFF) + (answer[1] << wscale)
                        if end <= edge or time.monotonic() > give_up:
                            break
                        poll.poll(10)
                    if end > edge:
                        break  # stalled: the reader's shortfall says so
                os.write(fd, data)
            reader.join(STALL_S + 1)
            elapsed = (reader.done_at or time.perf_counter()) - started
            used = tuple(after - before for after, before in zip(cpu_seconds(), cpu))
            return elapsed, used, segments * MSS, reader.received, acks
        finally:
            sock.close()


class LiveWorkload:
    """One workload's live passes (live_pass()), timed pass by pass (LiveWorkload.run())."""

    def __init__(self, segments: int, label: str, napi: bool):
        self.segments, self.label, self.napi = segments, label, napi
        self.walls: list[float] = []
        self.cpus: list[tuple[float, float]] = []
        self.sent = self.acks = 0
        self.failed = False

    def run(self) -> None:
        """One pass; a pass whose reader did not get every byte is said, and the workload has no figure."""
        if self.failed:
            return
        elapsed, cpu, sent, got, acks = live_pass(self.segments, self.napi)
        if got != sent:
            print(f"live    {self.label}: the reader got {got:,} of {sent:,} bytes sent: no figure")
            self.failed = True
            return
        self.walls.append(elapsed)
        self.cpus.append(cpu)
        self.sent, self.acks = sent, acks

    def report(self) -> tuple[float, float, float | None] | None:
        """Prints the best pass (and the median's rate): segments per second of wall time, per CPU second of
        this process and per second of its system time (the kernel's work alone); None without a figure."""
        if self.failed or not self.walls:
            return None
        segments, sent = self.segments, self.sent
        best = min(self.walls)
        user, system = min(self.cpus, key=sum)
        rate = segments / best
        kernel_rate = segments / system if system else None
        kernel = f"{kernel_rate:,.0f} segments per system CPU second" if kernel_rate else "no system-time sample"
        route = "IFF_NAPI tap, napi_gro_receive()" if self.napi else "tap, netif_receive_skb()"
        print(f"live    kernel {os.uname().release}, {self.label}: {route} -> TCP socket -> recv_into(): "
              f"{segments:,} segments, {sent:,} bytes (all read back) in {best:.3f} s = {rate:,.0f} segments/s, "
              f"{sent / best / 1e6:,.1f} MB/s; {self.acks:,} ACKs read; {user + system:.3f} s of CPU = "
              f"{segments / (user + system):,.0f} segments per CPU second, of which {system:.3f} s system (the "
              f"kernel's work: {kernel}) and {user:.3f} s user (the Python peer and reader) (best of "
              f"{len(self.walls)}, median {segments / statistics.median(self.walls):,.0f} segments/s)")
        return rate, segments / (user + system), kernel_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=1_000_000, help="segments of each model run")
    parser.add_argument("--reference-segments", type=int, default=20_000,
                        help="at most this many in a run the fast engine hands to the reference engine")
    parser.add_argument("--live-segments", type=int, default=50_000, help="segments of each live pass")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept")
    parser.add_argument("--only", help="the workloads to run, by label, comma-separated (default: all)")
    args = parser.parse_args()
    only = None if args.only is None else set(args.only.split(","))
    print(f"machine: {os.uname().machine}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.2f}")
    missing = live_missing()
    if missing:
        print(f"live    skipped: {'; '.join(missing)}")
    for label, driver, options, napi in WORKLOADS:
        if only is not None and label not in only:
            continue
        # model and live passes alternate, so that both meet the same conditions on the machine
        model_runs = ModelWorkload(args.segments, label, driver, options, args.reference_segments)
        live_runs = None if missing else LiveWorkload(args.live_segments, label, napi)
        for _ in range(args.repeat):
            model_runs.run()
            if live_runs is not None:
                live_runs.run()
        model = model_runs.report()
        live = None if live_runs is None else live_runs.report()
        if live:
            kernel = f", {model[1] / live[2]:.3f} against the kernel's system time alone" if live[2] else ""
            print(f"ratio   {label}: model / live kernel = {model[0] / live[0]:.3f} in wall time, "
                  f"{model[1] / live[1]:.3f} per CPU second{kernel} (segments/s; bytes/s alike)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
