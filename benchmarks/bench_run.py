#!/usr/bin/env python3
"""Speed and memory of ``skbsim run``, beside the live kernel doing the same work.

Prints figures and ratios; asserts nothing.  Timings taken while other work runs on the
machine are noisy: every figure here is the best of --repeat runs, and the ratios are taken
between figures measured in the same run.

1. The model: packets per second of both engines on IMIX traffic (Linux 6.9 profile, one
   CPU, ice legacy-rx and build_skb, copybreak, tun, virtio_net, mana's page_pool pages, mlx5's legacy RQ,
   bnxt's page mode, gve with its own pages; 6.18 for mana's page_pool fragments, libeth's idpf, mlx5's
   striding RQ, bnxt's copies and aggregation pages and gve's page_pool buffers, 7.1 for ice's page_pool
   form), and tcp-bulk through GRO (ice build_skb and legacy-rx, virtio_net's defaults: 16 bulk TCP senders,
   every segment merged or held by GRO on its way to the socket), each after one untimed warm-up run
   (imports; the fast engine loads numba's cache).  For the fast engine also the compiled
   loop alone (the time spent inside its _run() calls).
2. The whole process: ``skbsim run --count N --json --quiet`` (ice legacy-rx, 6.9, one CPU)
   from start to exit, with the compiled cache in place (--process-packets frames), twice: as the
   environment is (with PYTHONDONTWRITEBYTECODE set, Python compiles skbsim's sources at every
   start), and with .pyc files, as an installed package has them.
3. The live kernel, two ways (needs root, /dev/net/tun and tracefs; skipped with a note
   otherwise): the same IMIX frames written into a tap device in a network namespace of our
   own, (a) queued on a bound UDP socket and read back, each skb's truesize read from tracefs
   (net/netif_receive_skb_entry), and (b) to a port with no socket, so the stack takes each
   frame and frees it (the tap path alone).
4. Memory against trace length: a pcap of N IMIX frames replayed through the fast engine (both
   rx modes) and the reference engine in a child process each; packets/s and peak RSS.
5. With --baseline DIR (another checkout of skbsim): the fast engine's model runs of both
   checkouts, alternating in child processes, best of --repeat each, with the ratio; their cold
   compile (``python -m skbsim.fast`` with an empty cache, CPU time of the child) and a
   cached start.

Usage: python3 benchmarks/bench_run.py [--packets 1000000] [--ref-packets 200000] [--live-packets 200000]
                                       [--process-packets 10000000] [--pcap-packets 10000000]
                                       [--ref-pcap-packets 1000000] [--skip-pcap] [--repeat 3]
                                       [--baseline DIR] [--only LABEL,...] [--skip-process]
"""

from __future__ import annotations

import argparse
import json
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
#: the model workloads: (label, driver, options)
WORKLOADS = (("ice rx=legacy", "ice", {"rx": "legacy"}), ("ice rx=build_skb", "ice", {"rx": "build_skb"}),
             ("copybreak", "copybreak", {}), ("tun", "tun", {}), ("virtio_net", "virtio_net", {}),
             ("mana (page_pool pages)", "mana", {}), ("mana (page_pool fragments)", "mana", {}),
             ("libeth idpf (MTU and short buffer queues)", "libeth", {"nic": "idpf"}),
             ("ice page_pool form (libeth)", "ice", {}),
             # -- mlx5 --
             ("mlx5 striding RQ (linear skbs)", "mlx5", {}),
             ("mlx5 striding RQ MTU 9000 (napi_alloc_skb() copies)", "mlx5", {"mtu": "9000"}),
             ("mlx5 legacy RQ MTU 9000 (non-linear skbs)", "mlx5", {"rq": "legacy", "mtu": "9000"}),
             # -- bnxt --
             ("bnxt (copies and aggregation pages)", "bnxt", {}), ("bnxt page mode", "bnxt", {"page_mode": "on"}),
             # -- gve --
             ("gve DQO (own pages)", "gve", {}), ("gve DQO (page_pool)", "gve", {}),
             # -- GRO --
             ("ice rx=build_skb tcp-bulk through GRO", "ice", {"rx": "build_skb"}),
             ("ice rx=legacy tcp-bulk through GRO", "ice", {"rx": "legacy"}),
             ("virtio_net tcp-bulk through GRO", "virtio_net", {}))
#: the traffic of a workload, when not IMIX: GRO's workloads are 16 bulk TCP senders (1448-byte segments with
#: timestamps) into the one UDP socket, every segment through GRO
TRAFFIC_OF = {"ice rx=build_skb tcp-bulk through GRO": "tcp-bulk", "ice rx=legacy tcp-bulk through GRO": "tcp-bulk",
              "virtio_net tcp-bulk through GRO": "tcp-bulk"}
#: the live kernel's figure every workload is compared with: the tap path below, also for virtio_net (eth0 here is
#: a virtio_net NIC, but its traffic cannot be made at a chosen rate: only ordinary downloads are allowed on it)
LIVE_NOTE = ("the live rate for every driver, virtio_net included, is the tap path (a tap device written by this "
             "process), not this machine's virtio_net NIC")
#: the release a workload's model runs on, when not 6.9 (6.18's mana cuts page_pool fragments; libeth is
#: 6.10+; ice takes its buffers from page_pool in 7.1)
KERNEL_OF = {"mana (page_pool fragments)": "6.18", "libeth idpf (MTU and short buffer queues)": "6.18",
             "ice page_pool form (libeth)": "7.1",
             # -- mlx5 --
             "mlx5 striding RQ (linear skbs)": "6.18", "mlx5 striding RQ MTU 9000 (napi_alloc_skb() copies)": "6.18",
             "bnxt (copies and aggregation pages)": "6.18",  # -- bnxt --
             "gve DQO (page_pool)": "6.18"}  # -- gve --
#: the page_pool workloads: the live machine has no page_pool NIC, so their live figure is the tap path's
PAGE_POOL_WORKLOADS = ("mana (page_pool pages)", "mana (page_pool fragments)",
                       "libeth idpf (MTU and short buffer queues)", "ice page_pool form (libeth)",
                       # -- mlx5 --
                       "mlx5 striding RQ (linear skbs)", "mlx5 striding RQ MTU 9000 (napi_alloc_skb() copies)",
                       "mlx5 legacy RQ MTU 9000 (non-linear skbs)",
                       "bnxt (copies and aggregation pages)", "bnxt page mode",  # -- bnxt --
                       "gve DQO (own pages)", "gve DQO (page_pool)")  # -- gve --


def time_model(packets: int, engine: str, driver: str, options: dict, repeat: int,
               kernel: str = "6.9", traffic: str = "imix") -> tuple[float, float]:
    """Best of repeat runs: (seconds for the whole simulate_engine() call, seconds inside the compiled
    loop's _run() calls; 0 on the reference engine)."""
    import skbsim.fast.engine
    from skbsim.fast import simulate_engine
    from skbsim.sim import RunConfig

    def config(count):
        return RunConfig(kernel=kernel, driver=driver, options=options, traffic=traffic, count=count)

    loop = [0.0]
    run = skbsim.fast.engine._run

    def timed_run(*args):
        started = time.perf_counter()
        try:
            return run(*args)
        finally:
            loop[0] += time.perf_counter() - started

    skbsim.fast.engine._run = timed_run
    try:
        simulate_engine(config(1000), engine)  # warm-up: imports, numba's cache
        best = best_loop = float("inf")
        for _ in range(repeat):
            loop[0] = 0.0
            started = time.perf_counter()
            result, _, fell_back = simulate_engine(config(packets), engine)
            elapsed = time.perf_counter() - started
            assert result["leaks"]["clean"], result["leaks"]
            assert not fell_back, fell_back
            best = min(best, elapsed)
            best_loop = min(best_loop, loop[0])
    finally:
        skbsim.fast.engine._run = run
    return best, (best_loop if engine == "fast" else 0.0)


def bench_model(packets: int, engine: str, label: str, driver: str, options: dict, repeat: int) -> float:
    kernel = KERNEL_OF.get(label, "6.9")
    traffic = TRAFFIC_OF.get(label, "imix")
    elapsed, loop = time_model(packets, engine, driver, options, repeat, kernel, traffic)
    rate = packets / elapsed
    inner = f"; the compiled loop alone {packets / loop:,.0f} packets/s" if loop else ""
    print(f"model   {engine:>9} engine, {kernel} {label}, {traffic}, 1 CPU: {packets:,} packets in {elapsed:.3f} s "
          f"= {rate:,.0f} packets/s{inner} (best of {repeat})")
    return rate


def bench_process(packets: int, repeat: int, bytecode: bool) -> float:
    """The whole `skbsim run` process, ice legacy-rx (the default run) over packets frames: packets/s.

    bytecode: Python's compiled .pyc files in place, as an installed package has them (written by the
    warm-up run into a temporary PYTHONPYCACHEPREFIX, so the checkout is not touched); else the
    environment as it is (with PYTHONDONTWRITEBYTECODE set, every start compiles skbsim's sources)."""
    command = [sys.executable, "-m", "skbsim.cli", "run", "--count", str(packets), "--json", "--quiet"]
    with tempfile.TemporaryDirectory(prefix="skbsim-pyc-") as prefix:
        env = dict(os.environ)
        if bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = prefix
        subprocess.run(command[:4] + ["--count", "1000", "--json", "--quiet"], cwd=ROOT, check=True,
                       capture_output=True, env=env)  # the compiled cache (and the .pyc files) in place
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, env=env)
            best = min(best, time.perf_counter() - started)
            result = json.loads(out.stdout)["runs"][0]  # run --json is {"runs": [...]}
            assert result["engine"] == "fast" and result["packets"] == packets, out.stderr
    rate = packets / best
    how = ("with .pyc files" if bytecode else
           "sources compiled at start (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE")
           else "as the environment is")
    print(f"process skbsim run --count {packets:,} (6.9 ice rx=legacy, imix, 1 CPU), start to exit, {how}: "
          f"{best:.2f} s = {rate:,.0f} packets/s (best of {repeat})")
    return rate


def bench_live(packets: int, with_socket: bool, repeat: int) -> float | None:
    """The same IMIX frames, as IPv4/UDP, written into a tap in a namespace of our own.

    with_socket: to a bound UDP socket that reads them back, each skb's truesize read from tracefs
    (net/netif_receive_skb_entry) to prove the frames were received (the work the model does:
    allocate the skb, hand it to the stack, queue it, read it, free it).  Without: to a port with
    no socket, so the stack frees each frame (the tap path alone).  Only the writes and reads are
    timed; best of repeat passes.
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
    best = float("inf")
    with tap_in_new_netns(ipv4=f"{TAP_IPV4}/24") as tap:
        receiver, sender = tap.netns.run(_udp_pair, TAP_IPV4)
        sender.close()
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        receiver.setblocking(False)
        port = receiver.getsockname()[1]
        if not with_socket:
            receiver.close()  # the port has no socket now: udp_rcv() finds none and frees the skb
        frames = [ipv4_udp_frame(n, tap.mac, bytes.fromhex("020000534b43"), PEER_IPV4, TAP_IPV4, 40000, port)
                  for n in IMIX_CYCLE]
        for _ in range(repeat):
            written = received = events = truesize_total = 0
            busy = 0.0
            with TraceInstance(["net/netif_receive_skb_entry"], device=tap.name) as trace:
                trace.clear()
                while written < packets:
                    n = min(batch, packets - written)
                    started = time.perf_counter()
                    for i in range(written, written + n):
                        tap.write(frames[i % len(frames)])
                    while with_socket:
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
            best = min(best, busy)
        if with_socket:
            receiver.close()
    rate = written / best
    what = "-> UDP socket -> recv" if with_socket else "-> a port without a socket (freed by the stack)"
    print(f"live    kernel {os.uname().release}, tap (blocking writes) {what}, imix: {written:,} frames"
          f"{f', {received:,} read' if with_socket else ''} in {best:.2f} s = {rate:,.0f} packets/s; "
          f"{events:,} skbs traced, mean truesize {truesize_total / max(1, events):,.1f} (best of {repeat})")
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


def bench_baseline(baseline: Path, packets: int, repeat: int) -> None:
    """This checkout's fast engine against another's: model runs alternating in child processes (best of
    repeat each), cold compiles and cached starts."""
    trees = {"this": ROOT, "baseline": baseline.resolve()}
    print(f"compare this checkout ({ROOT}) with {trees['baseline']}")
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2])\n"
            "import skbsim.fast  # the tree's, before bench_run puts this checkout first on the path\n"
            "from bench_run import time_model\n"
            "print(json.dumps(time_model(int(sys.argv[3]), 'fast', sys.argv[4], json.loads(sys.argv[5]), 1,\n"
            "                            sys.argv[6], sys.argv[7])))\n")
    for label, driver, options in WORKLOADS:
        best = {name: [float("inf"), float("inf")] for name in trees}
        for _ in range(repeat):
            for name, tree in trees.items():
                out = subprocess.run([sys.executable, "-c", code, str(tree), str(ROOT / "benchmarks"), str(packets),
                                      driver, json.dumps(options), KERNEL_OF.get(label, "6.9"),
                                      TRAFFIC_OF.get(label, "imix")], cwd=tree,
                                     capture_output=True, text=True)
                if out.returncode:
                    break  # a checkout whose fast engine does not run this driver (it falls back)
                total, loop = json.loads(out.stdout)
                best[name] = [min(best[name][0], total), min(best[name][1], loop)]
        this, base = best["this"], best["baseline"]
        if float("inf") in this + base:
            print(f"compare {label}: not on both checkouts' fast engines")
            continue
        print(f"compare {label}, {packets:,} packets: this {packets / this[0]:,.0f} packets/s (loop "
              f"{packets / this[1]:,.0f}), baseline {packets / base[0]:,.0f} (loop {packets / base[1]:,.0f}): "
              f"this / baseline = {base[0] / this[0]:.3f} (loop {base[1] / this[1]:.3f}; best of {repeat} each)")
    for name, tree in trees.items():
        with tempfile.TemporaryDirectory(prefix="skbsim-compile-") as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache, "XDG_CACHE_HOME": cache}
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "skbsim.fast"], cwd=tree, env=env, check=True, capture_output=True)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "skbsim.fast"], cwd=tree, env=env, check=True, capture_output=True)
            cached = time.perf_counter() - started
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(f"compile {name}: cold {cpu:.1f} s of CPU ({wall:.1f} s wall), then from the cache {cached:.2f} s wall")


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
    parser.add_argument("--packets", type=int, default=1_000_000, help="packets for the fast engine's model runs")
    parser.add_argument("--ref-packets", type=int, default=200_000,
                        help="packets for the reference engine's IMIX runs (its rate does not depend on it)")
    parser.add_argument("--live-packets", type=int, default=200_000)
    parser.add_argument("--process-packets", type=int, default=10_000_000)
    parser.add_argument("--pcap-packets", type=int, default=10_000_000)
    parser.add_argument("--ref-pcap-packets", type=int, default=1_000_000)
    parser.add_argument("--skip-pcap", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept")
    parser.add_argument("--baseline", type=Path, help="another skbsim checkout to compare the fast engine with")
    parser.add_argument("--only", help="model workloads to run, comma-separated labels (default: all of "
                        f"{', '.join(label for label, _, _ in WORKLOADS)})")
    parser.add_argument("--skip-process", action="store_true", help="skip the whole-process figure")
    args = parser.parse_args()
    workloads = WORKLOADS if not args.only else [w for w in WORKLOADS if w[0] in args.only.split(",")]
    print(f"machine: {os.uname().machine}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average {os.getloadavg()[0]:.2f}")
    if args.baseline:
        bench_baseline(args.baseline, args.packets, args.repeat)
    rates = {}
    for label, driver, options in workloads:
        rates["reference", label] = bench_model(args.ref_packets, "reference", label, driver, options, 1)
        rates["fast", label] = bench_model(args.packets, "fast", label, driver, options, args.repeat)
    print("ratio   fast / reference engine: " + ", ".join(
        f"{label} {rates['fast', label] / rates['reference', label]:.1f}" for label, _, _ in workloads))
    processes = {} if args.skip_process else {
        "": bench_process(args.process_packets, args.repeat, False),
        " (.pyc)": bench_process(args.process_packets, args.repeat, True)}
    live = bench_live(args.live_packets, True, args.repeat)
    tap_only = bench_live(args.live_packets, False, args.repeat)
    print(f"note    {LIVE_NOTE}")
    for name, base in (("live kernel, tap -> UDP socket", live), ("live kernel, tap alone", tap_only)):
        if not base:
            continue
        whole = "".join(f"whole skbsim run process{how} {rate / base:.2f}; " for how, rate in processes.items())
        print(f"ratio   against the {name}: {whole}" + ", ".join(
            f"{engine} {label} {rates[engine, label] / base:.2f}" for engine in ("reference", "fast")
            for label, _, _ in workloads))
    page_pool = [label for label, _, _ in workloads if label in PAGE_POOL_WORKLOADS]
    if live and page_pool:
        # no page_pool NIC here: the live figure for the page_pool drivers is the tap path's (tun's RX path,
        # page_frag and kmalloc heads, no page_pool), the closest the machine has to a NIC's
        print("ratio   page_pool drivers, fast engine / live kernel (tap -> UDP socket; the live path is tap's, "
              "not a page_pool NIC's: this machine has none): " + ", ".join(
                  f"{KERNEL_OF.get(label, '6.9')} {label} {rates['fast', label] / live:.2f}"
                  for label in page_pool))
    if not args.skip_pcap:
        pcap = bench_pcap_memory(args.pcap_packets, args.ref_pcap_packets)
        print(f"ratio   pcap fast / reference engine (build_skb) = {pcap['fast build_skb'] / pcap['reference']:.1f}")
        if live:
            for name, rate in pcap.items():
                print(f"ratio   pcap {name} / live kernel (tap -> UDP socket) = {rate / live:.2f}")
    print(f"this process peak RSS: {peak_rss_kib() / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
