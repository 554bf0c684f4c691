#!/usr/bin/env python3
"""``run --socket tcp`` here and in another revision, workload for workload, byte for byte.

A change meant to make TCP runs faster (or to tidy them) must not change a result.  This runs a set
of varied TCP workloads (kernels 6.1 to 7.1 and host, the drivers tun, ice, virtio_net, ntb, mlx5 and
others, bulk and message senders, --rtt, --so-rcvbuf, --app-read-size, --app-rate, flows, CPUs,
faults, and captures: generated ones with SYNs, reordering, retransmissions, gaps, FIN, RST and UDP
beside the TCP flows, plus every .pcap in --captures) through the reference engine of this checkout
and of --base (extracted with ``git archive`` into a temporary directory), each in a process of its
own, and compares the run's JSON (sorted keys, as ``run --json`` prints it), the plot data and the
per-packet trace (.jsonl) as text.  Prints one line per workload that differs (with the first key
that differs) and a summary; exit 1 if any differs.

Not part of the test suite (it takes a few minutes); run it before merging a change to the TCP path.

Usage: python3 tests/tools/compare_tcp_runs.py [--base main] [--captures DIR] [--jobs 2] [--random 40]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]

KERNELS = ("6.1", "6.9", "6.12", "6.18", "7.1")
#: (driver, options) pairs the random workloads draw from
DRIVERS = (
    ("tun", {}),
    ("tun", {"napi": "1"}),
    ("tun", {"napi": "1", "frags": "1"}),
    ("ice", {"rx": "legacy"}),
    ("ice", {"rx": "build_skb"}),
    ("virtio_net", {}),
    ("virtio_net", {"mrg_rxbuf": "0", "guest_gso": "0"}),
    ("virtio_net", {"gro_flush_timeout": "20000"}),
    ("ntb", {}),
    ("ntb", {"copybreak": "3646"}),
    ("mlx5", {}),
    ("mlx5", {"rq": "legacy"}),
    ("bnxt", {}),
    ("gve", {}),
    ("mana", {}),
    ("libeth", {}),
    ("copybreak", {}),
)

#: Hand-picked workloads: the benchmark's two, and each option at values that change what the receiver does.
FIXED = (
    {"kernel": "6.18", "driver": "tun", "options": {}, "traffic": "tcp-bulk:ts=0", "count": 3000},
    {"kernel": "6.18", "driver": "virtio_net", "options": {}, "traffic": "tcp-bulk:ts=0", "count": 3000},
    {"kernel": "6.1", "driver": "ice", "traffic": "tcp-bulk", "count": 2000, "so_rcvbuf": 68056},
    {"kernel": "6.9", "driver": "tun", "options": {}, "traffic": "tcp-bulk:mss=1000,ts=1", "count": 2000,
     "app_rate": 100, "app_read_size": 16000},
    {"kernel": "6.12", "driver": "tun", "options": {}, "traffic": "tcp-bulk:mss=1000,ts=1", "count": 2000,
     "app_rate": 100, "app_read_size": 16000},
    {"kernel": "7.1", "driver": "tun", "options": {}, "traffic": "tcp-bulk:mss=1000,ts=1", "count": 2000,
     "app_rate": 100, "app_read_size": 16000},
    {"kernel": "6.18", "driver": "virtio_net", "options": {}, "traffic": "tcp-bulk", "count": 1500,
     "tcp": "messages:20000,tso=8"},
    {"kernel": "6.12", "driver": "virtio_net", "options": {"mrg_rxbuf": "0"}, "traffic": "tcp-bulk", "count": 1500,
     "tcp": "messages:30000@500,tso=16"},
    {"kernel": "6.18", "driver": "tun", "options": {}, "traffic": "tcp-bulk", "count": 300,
     "tcp": "messages:3000@100"},
    {"kernel": "6.9", "driver": "mlx5", "options": {}, "traffic": "tcp-bulk", "count": 3000, "flows": 8, "cpus": 2,
     "rtt_ms": 0.2},
    {"kernel": "6.1", "driver": "ntb", "options": {}, "traffic": "tcp-bulk", "count": 2000, "app_rate": 0},
    {"kernel": "7.1", "driver": "ice", "options": {"rx": "build_skb"}, "traffic": "tcp-bulk", "count": 2000,
     "so_rcvbuf": 4096, "app_rate": 2000, "app_read_size": 1000},
    {"kernel": "6.18", "driver": "virtio_net", "options": {}, "traffic": "tcp-bulk", "count": 2000, "rtt_ms": 20,
     "duration_ms": 15},
    {"kernel": "6.9", "driver": "tun", "options": {"napi": "1"}, "traffic": "tcp-bulk", "count": 1500,
     "faults": [["skb_head", 0.02, 1, -1, 0]]},
    {"kernel": "host", "driver": "virtio_net", "options": {}, "traffic": "tcp-bulk", "count": 1500},
)


def random_workloads(count: int, seed: int) -> list[dict]:
    """count workloads drawn from every option's values (the same ones for a seed)."""
    rng = random.Random(seed)
    workloads = []
    for _ in range(count):
        driver, options = rng.choice(DRIVERS)
        mss = rng.choice((None, 536, 1000, 1448, 1460))
        traffic = "tcp-bulk"
        fields = [f"mss={mss}"] if mss else []
        if rng.random() < 0.5:
            fields.append(f"ts={rng.choice((0, 1))}")
        if fields:
            traffic += ":" + ",".join(fields)
        kernel = rng.choice(KERNELS)
        if driver == "libeth" and kernel == "6.1":
            kernel = "6.12"  # libeth came in 6.10
        if (driver, options.get("rx"), kernel) == ("ice", "legacy", "7.1"):
            kernel = "6.18"  # ice's page_pool form (7.1) has no legacy-rx
        workload = {
            "kernel": kernel,
            "driver": driver,
            "options": dict(options),
            "traffic": traffic,
            "count": rng.choice((200, 1000, 4000)),
            "flows": rng.choice((1, 1, 1, 2, 5)),
            "cpus": rng.choice((1, 1, 2)),
            "rtt_ms": rng.choice((0.05, 0.3, 1.0, 4.0)),
            "arrival": rng.choice(("constant", "constant", "poisson")),
            "rate": rng.choice((100_000.0, 1_000_000.0, 3_000_000.0)),
            "seed": rng.randrange(100),
        }
        if rng.random() < 0.3:
            workload["so_rcvbuf"] = rng.choice((0, 4096, 20000, 65536, 300000))
        if rng.random() < 0.3:
            workload["app_read_size"] = rng.choice((1, 500, 1448, 16000, 100000))
        if rng.random() < 0.3:
            workload["app_rate"] = rng.choice((0.0, 50.0, 1000.0, 20000.0))
        if rng.random() < 0.2:
            size = rng.choice((100, 3000, 20000))
            rate = rng.choice(("", "@100", "@2000"))
            workload["tcp"] = f"messages:{size}{rate}"
            if driver == "virtio_net" and options.get("guest_gso", "1") == "1" and rng.random() < 0.5:
                workload["tcp"] += f",tso={rng.choice((2, 8, 44))}"
        if rng.random() < 0.1:
            workload["packet_cost_ns"] = rng.choice((0, 2000))
            workload["irq_latency_ns"] = rng.choice((0, 20000))
        workloads.append(workload)
    return workloads


# -- captures ------------------------------------------------------------------------------------


def write_captures(folder: Path, seed: int) -> list[Path]:
    """Captures with TCP (and UDP) made here: a clean stream, and streams with everything a receiver
    must sort out (reordering, retransmissions, gaps filled late, overlaps, FIN, RST, SYNs, mid-stream
    flows, UDP datagrams between them)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import dpkt
    from gro_helpers import ACK, FIN, PSH, tcp_frame

    from skbsim.traffic import parse_traffic

    syn, rst = 0x02, 0x04
    rng = random.Random(seed)
    paths = []

    def write(name: str, frames: list, gap_s: float) -> None:
        path = folder / name
        with open(path, "wb") as handle:
            writer = dpkt.pcap.Writer(handle)
            for i, frame in enumerate(frames):
                writer.writepkt(frame.header + bytes(frame.length - len(frame.header)), ts=1.0 + i * gap_s)
        paths.append(path)

    def stream(sport: int, count: int, *, payload: int = 1448, ts: bool = True, with_syn: bool = True,
               messy: bool = False) -> list:
        isn = rng.randrange(1 << 32)
        frames = []
        tsval = rng.randrange(1 << 31)
        if with_syn:
            frames.append(tcp_frame(isn, 0, flags=syn, ts=tsval if ts else None, sport=sport))
        seq = (isn + 1) & 0xFFFFFFFF
        for i in range(count):
            size = payload if not messy or rng.random() < 0.8 else rng.randrange(1, payload + 1)
            flags = ACK | (PSH if rng.random() < 0.1 else 0)
            if messy and i == count - 1:
                flags |= FIN
            frames.append(tcp_frame(seq, size, ts=tsval + i if ts else None, sport=sport, flags=flags,
                                    ip_id=i & 0xFFFF))
            seq = (seq + size) & 0xFFFFFFFF
        if not messy:
            return frames
        # Reorder, retransmit, hold a segment back (a gap filled late), repeat the SYN, reset.
        for _ in range(count // 10):
            i = rng.randrange(1, len(frames) - 1)
            frames[i], frames[i + 1] = frames[i + 1], frames[i]
        for _ in range(count // 20):
            i = rng.randrange(1, len(frames))
            frames.insert(rng.randrange(i, len(frames) + 1), frames[i])
        for _ in range(count // 25):
            i = rng.randrange(1, len(frames) - 1)
            frames.insert(min(len(frames), i + rng.randrange(5, 60)), frames.pop(i))
        if rng.random() < 0.5:
            frames.append(tcp_frame(seq, 0, flags=rst, ts=None, sport=sport))
        return frames

    def interleave(*streams: list) -> list:
        pending = [list(s) for s in streams if s]
        out = []
        while pending:
            s = rng.choice(pending)
            out.append(s.pop(0))
            if not s:
                pending.remove(s)
        return out

    udp = list(parse_traffic("uniform:64-1400", count=120, flows=3, seed=seed))
    write("clean.pcap", stream(40000, 1500), 2e-6)
    write("clean_slow.pcap", stream(40001, 600, ts=False), 1e-4)
    write("messy.pcap", interleave(stream(40002, 700, messy=True), stream(40003, 500, payload=1000, messy=True,
                                                                               with_syn=False), udp), 3e-6)
    write("many.pcap", interleave(*(stream(41000 + i, 120, messy=i % 2 == 1, with_syn=i % 3 != 0,
                                            payload=rng.choice((536, 1448)), ts=i % 4 != 1) for i in range(10))),
          5e-6)
    return paths


def capture_workloads(paths: list[Path]) -> list[dict]:
    """Each capture through a few receivers: autotuning, a small SO_RCVBUF nobody reads, a slow reader."""
    workloads = []
    variants = (
        {"kernel": "6.18", "driver": "ice", "options": {"rx": "build_skb"}},
        {"kernel": "6.12", "driver": "virtio_net", "options": {}, "so_rcvbuf": 4096, "app_rate": 0.0},
        {"kernel": "6.1", "driver": "tun", "options": {"napi": "1"}, "app_rate": 300.0, "app_read_size": 3000},
        {"kernel": "7.1", "driver": "mlx5", "options": {}, "so_rcvbuf": 30000, "cpus": 2},
        {"kernel": "6.9", "driver": "ntb", "options": {}, "app_rate": 2000.0},
    )
    for path in paths:
        for variant in variants:
            workloads.append(dict(variant, traffic=f"pcap:{path}", count=None, rate=None, socket="tcp", flows=16))
    return workloads


# -- running one tree ----------------------------------------------------------------------------


def run_one(workload: dict, trace_path: str) -> str:
    """The text compared for one workload: the JSON result, the plot data and the trace."""
    from skbsim.report import TraceWriter
    from skbsim.sim import RunConfig, simulate

    fields = dict(workload)
    fields.setdefault("socket", "tcp")
    fields.setdefault("flows", 1)
    if "faults" in fields:
        fields["faults"] = tuple(tuple(rule) for rule in fields["faults"])
    trace = TraceWriter(trace_path, per_flow=True)
    try:
        result, extra = simulate(RunConfig(**fields), trace=trace)
    except Exception as err:  # noqa: BLE001 - the error is the result compared
        trace.close()
        return json.dumps({"error": f"{type(err).__name__}: {err}"})
    trace.close()
    with open(trace_path) as handle:
        trace_text = handle.read()
    return json.dumps({"result": result, "extra": extra, "trace": trace_text}, sort_keys=True, default=repr)


def worker(tree: str, workloads_path: str, out_path: str) -> None:
    """Runs in a process of its own with *tree*'s skbsim: one line of text per workload."""
    sys.path.insert(0, tree)
    os.chdir(tree)
    workloads = json.loads(Path(workloads_path).read_text())
    with tempfile.TemporaryDirectory() as tmp, open(out_path, "w") as out:
        for workload in workloads:
            out.write(run_one(workload, os.path.join(tmp, "trace.jsonl")) + "\n")


def run_tree(tree: Path, workloads: list[dict], jobs: int, tmp: Path, label: str) -> list[str]:
    """Every workload through *tree*, in *jobs* processes; the texts in workload order."""
    chunks = [workloads[i::jobs] for i in range(jobs)]

    def one(index: int) -> list[str]:
        spec = tmp / f"{label}-{index}.json"
        out = tmp / f"{label}-{index}.out"
        spec.write_text(json.dumps(chunks[index]))
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
        subprocess.run([sys.executable, str(HERE), "--worker", str(tree), str(spec), str(out)], check=True,
                       env=env, cwd=str(tree))
        return out.read_text().splitlines()

    with ThreadPoolExecutor(jobs) as pool:
        parts = list(pool.map(one, range(jobs)))
    texts = [""] * len(workloads)
    for index, part in enumerate(parts):
        for position, text in zip(range(index, len(workloads), jobs), part):
            texts[position] = text
    return texts


def first_difference(a, b, path: str = "") -> str:
    """The first key path at which two decoded JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return first_difference(a.get(key), b.get(key), f"{path}.{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    if isinstance(a, str) and isinstance(b, str) and "\n" in a:
        for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines())):
            if x != y:
                return f"{path} line {i + 1}: {x[:120]!r} != {y[:120]!r}"
    return f"{path}: {str(a)[:120]} != {str(b)[:120]}"


def main(argv=None) -> int:
    if argv is None and len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="the revision compared against (default main)")
    parser.add_argument("--captures", type=Path, help="a folder whose .pcap files run too")
    parser.add_argument("--random", type=int, default=60, help="random workloads besides the fixed ones")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"skbsim-{os.getpid()}-compare-tcp-") as tmp_name:
        tmp = Path(tmp_name)
        captures = tmp / "captures"
        captures.mkdir()
        paths = write_captures(captures, args.seed)
        if args.captures is not None:
            paths += sorted(args.captures.glob("*.pcap"))
        workloads = list(FIXED) + random_workloads(args.random, args.seed) + capture_workloads(paths)
        base = tmp / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base], check=True, capture_output=True)
        with tarfile.open(fileobj=__import__("io").BytesIO(archive.stdout)) as tar:
            tar.extractall(base, filter="data")
        print(f"{len(workloads)} workloads ({len(paths)} captures), {args.base} against this checkout ...",
              flush=True)
        before = run_tree(base, workloads, args.jobs, tmp, "base")
        after = run_tree(ROOT, workloads, args.jobs, tmp, "this")
    differ = 0
    errors = 0
    for workload, old, new in zip(workloads, before, after):
        if '"error"' in old[:10]:
            errors += 1
        if old == new:
            continue
        differ += 1
        print(f"DIFFERS {json.dumps(workload, default=str)}: {first_difference(json.loads(old), json.loads(new))}")
    print(f"{len(workloads) - differ} of {len(workloads)} workloads identical ({errors} of them an input error on "
          f"both sides), {differ} differ; {time.perf_counter() - started:.0f} s")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
