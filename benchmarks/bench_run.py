#!/usr/bin/env python3
"""Speed and memory of ``skbsim run``, beside the live kernel doing the same work.

Prints figures and ratios; asserts nothing.

1. The model: packets per second of both engines on IMIX traffic (Linux
   6.9 profile, one CPU, ice legacy-rx and build_skb, copybreak, tun), each after one
   untimed warm-up run (imports; the fast engine loads numba's cache).
2. The live kernel: the same IMIX frames written into a tap device in a
   network namespace of our own, with each frame's truesize read back from
   tracefs (net/netif_receive_skb_entry), queued on a UDP socket and read.
   Needs root, /dev/net/tun and tracefs; skipped with a note otherwise.
3. Memory against trace length: a pcap of N IMIX frames replayed through
   ``skbsim run`` in a child process per run (fast engine: build_skb and
   legacy; reference engine: build_skb on the first --ref-pcap-packets
   frames); packets/s and peak RSS are printed.

Usage: python3 benchmarks/bench_run.py [--packets 1000000] [--ref-packets 200000] [--live-packets 200000]
                                       [--pcap-packets 10000000] [--ref-pcap-packets 1000000] [--skip-pcap]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMIX_CYCLE = (60, 590, 60, 60, 590, 60, 1514, 60, 590, 60, 590, 60)  # skbsim.traffic's simple IMIX


def bench_model(packets: int, engine: str = "reference", rx: str = "legacy", driver: str = "ice") -> float:
    from skbsim.fast import simulate_engine
    from skbsim.sim import RunConfig

    options = {"rx": rx} if driver == "ice" else {}

    def config(count):
        return RunConfig(kernel="6.9", driver=driver, options=options, traffic="imix", count=count)

    simulate_engine(config(1000), engine)  # warm-up: imports, numba's cache
    started = time.perf_counter()
    result, _, fell_back = simulate_engine(config(packets), engine)
    elapsed = time.perf_counter() - started
    assert result["leaks"]["clean"], result["leaks"]
    assert not fell_back, fell_back
    rate = packets / elapsed
    label = f"ice rx={rx}" if driver == "ice" else driver
    print(f"model   {result['engine']:>9} engine, 6.9 {label}, imix, 1 CPU: {packets:,} packets in {elapsed:.2f} s "
          f"= {rate:,.0f} packets/s")
    return rate


def bench_live(packets: int) -> float | None:
    """The same IMIX frames, as IPv4/UDP, written into a tap and read from a bound UDP socket.

    The work matches the model's: allocate the skb, hand it to the stack,
    queue it on the socket, read it, free it.  Every skb's truesize is read
    back from tracefs (net/netif_receive_skb_entry) to prove the frames were
    received; only the writes and reads are timed.
    """
    import socket

    from skbsim.live.probe import PEER_IPV4, TAP_IPV4, _udp_pair, requirements_missing
    from skbsim.live.tap import ipv4_udp_frame, tap_in_new_netns
    from skbsim.live.tracefs import TraceInstance

    missing = requirements_missing()
    if missing:
        print(f"live    skipped: {'; '.join(missing)}")
        return None
    batch = 1024
    written = received = events = truesize_total = 0
    busy = 0.0
    with tap_in_new_netns(ipv4=f"{TAP_IPV4}/24") as tap:
        receiver, sender = tap.netns.run(_udp_pair, TAP_IPV4)
        sender.close()
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        receiver.setblocking(False)
        port = receiver.getsockname()[1]
        frames = [ipv4_udp_frame(n, tap.mac, bytes.fromhex("020000534b43"), PEER_IPV4, TAP_IPV4, 40000, port)
                  for n in IMIX_CYCLE]
        with receiver, TraceInstance(["net/netif_receive_skb_entry"], device=tap.name) as trace:
            trace.clear()
            while written < packets:
                n = min(batch, packets - written)
                started = time.perf_counter()
                for i in range(written, written + n):
                    tap.write(frames[i % len(frames)])
                while True:
                    try:
                        receiver.recv(2048)
                    except BlockingIOError:
                        break
                    received += 1
                busy += time.perf_counter() - started
                written += n
                records = [r for r in trace.take().records if r.event == "netif_receive_skb_entry"]
                events += len(records)
                truesize_total += sum(r.truesize for r in records)
    rate = written / busy
    print(
        f"live    kernel {os.uname().release}, tap (blocking writes) -> UDP socket -> recv, imix: "
        f"{written:,} frames, {received:,} read, in {busy:.2f} s = {rate:,.0f} packets/s; "
        f"{events:,} skbs traced, mean truesize {truesize_total / max(1, events):,.1f}"
    )
    return rate


def bench_pcap_memory(packets: int, ref_packets: int) -> dict[str, float]:
    rates = {}
    with tempfile.TemporaryDirectory(prefix="skbsim-bench-") as tmp:
        path = Path(tmp) / "imix.pcap"
        started = time.perf_counter()
        _write_truncated_pcap(path, packets)
        made = time.perf_counter() - started
        size = path.stat().st_size
        print(f"pcap    {packets:,} frames, {size / 2**20:,.0f} MiB written in {made:.1f} s")
        runs = (("fast", "build_skb", None), ("fast", "legacy", None),
                ("reference", "build_skb", ref_packets if ref_packets < packets else None))
        for engine, rx, count in runs:
            code = (
                "import sys, time\n"
                "from benchmarks.bench_run import peak_rss_kib\n"
                "from skbsim.fast import simulate_engine\n"
                "from skbsim.sim import RunConfig\n"
                f"c = RunConfig(traffic='pcap:{path}', count={count!r}, rate=None, options={{'rx': {rx!r}}})\n"
                f"simulate_engine(RunConfig(traffic='pcap:{path}', count=1000, rate=None, options={{'rx': {rx!r}}}), {engine!r})\n"
                f"t = time.perf_counter(); r, _, why = simulate_engine(c, {engine!r}); t = time.perf_counter() - t\n"
                "assert not why, why\n"
                "print(r['packets'], t, peak_rss_kib())\n"
            )
            out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
            done, elapsed, maxrss_kib = out.stdout.split()
            key = engine if engine == "reference" else f"fast {rx}"
            rates[key] = int(done) / float(elapsed)
            print(
                f"pcap    {engine:>9} engine (ice rx={rx}): {int(done):,} packets in {float(elapsed):.1f} s "
                f"({rates[key]:,.0f} packets/s), peak RSS {int(maxrss_kib) / 1024:,.0f} MiB"
            )
    return rates


def peak_rss_kib() -> int:
    """This process's peak resident set in KiB: VmHWM, the high-water mark of its own address space.

    Not getrusage()'s ru_maxrss: Linux carries that across fork and exec, so a
    child started by a large parent reports the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _write_truncated_pcap(path: Path, packets: int) -> None:
    """A classic pcap whose records keep 64 bytes of frames of IMIX original lengths.

    Written by hand: dpkt's writer cannot record an original length larger
    than the captured one, and truncation keeps a 10M-frame file small.
    """
    import struct

    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 64, 1))
        header = bytes.fromhex("020000000001020000000002") + b"\x88\xb5"
        body = header + bytes(64 - len(header))
        chunk = []
        for i in range(packets):
            n = IMIX_CYCLE[i % len(IMIX_CYCLE)]
            kept = min(64, n)
            chunk.append(struct.pack("<IIII", i // 1_000_000, i % 1_000_000, kept, n) + body[:kept])
            if len(chunk) == 65536:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--ref-packets", type=int, default=200_000,
                        help="packets for the reference engine's IMIX runs (its rate does not depend on it)")
    parser.add_argument("--live-packets", type=int, default=200_000)
    parser.add_argument("--pcap-packets", type=int, default=10_000_000)
    parser.add_argument("--ref-pcap-packets", type=int, default=1_000_000)
    parser.add_argument("--skip-pcap", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.uname().machine}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    reference_legacy = bench_model(args.ref_packets, "reference", "legacy")
    reference = bench_model(args.ref_packets, "reference", "build_skb")
    fast_legacy = bench_model(args.packets, "fast", "legacy")
    fast = bench_model(args.packets, "fast", "build_skb")
    reference_copybreak = bench_model(args.ref_packets, "reference", driver="copybreak")
    fast_copybreak = bench_model(args.packets, "fast", driver="copybreak")
    reference_tun = bench_model(args.ref_packets, "reference", driver="tun")
    fast_tun = bench_model(args.packets, "fast", driver="tun")
    print(f"ratio   fast / reference engine: legacy {fast_legacy / reference_legacy:.1f}, "
          f"build_skb {fast / reference:.1f}, copybreak {fast_copybreak / reference_copybreak:.1f}, "
          f"tun {fast_tun / reference_tun:.1f}")
    live = bench_live(args.live_packets)
    if live:
        for name, rate in (("reference engine, legacy", reference_legacy), ("reference engine, build_skb", reference),
                           ("fast engine, legacy", fast_legacy), ("fast engine, build_skb", fast),
                           ("fast engine, copybreak", fast_copybreak), ("fast engine, tun", fast_tun)):
            print(f"ratio   {name} / live kernel = {rate / live:.2f}")
    if not args.skip_pcap:
        rates = bench_pcap_memory(args.pcap_packets, args.ref_pcap_packets)
        print(f"ratio   pcap fast / reference engine (build_skb) = {rates['fast build_skb'] / rates['reference']:.1f}")
        if live:
            for name, rate in rates.items():
                print(f"ratio   pcap {name} / live kernel = {rate / live:.2f}")
    print(f"this process peak RSS: {peak_rss_kib() / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
