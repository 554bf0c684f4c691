"""``skbsim grid`` and ``skbsim report``: specs, cells, Dask (local and "remote"), resume, the HTML page.

The "remote" cluster is a Dask scheduler and a worker started here as
subprocesses on loopback: the grid reaches it only through --scheduler, as it
would a cluster on other machines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from skbsim.cli import main
from skbsim.grid import load_spec, read_results, run_grid

SMALL = """
[grid]
command = "run"
title = "small grid"

[traffic]
full = "fixed:1514"
mixed = "imix"

[fixed]
count = 3000
app-rate = 200000

[axes]
nic = [
  { name = "ice legacy", driver = "ice", opt = { rx = "legacy" } },
  { name = "tun", driver = "tun" },
]
kernel = ["6.9", "6.18"]
traffic = ["full", "mixed"]
rcvbuf = [8192, 212992]

[report]
metric = "delivered"
heatmap = ["kernel", "nic"]
lines = "rcvbuf"
"""


def _spec(tmp_path: Path, text: str = SMALL, name: str = "grid.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _result_rows(path: Path) -> dict[str, dict]:
    """cell key -> the cell's result.* columns (what the run computed; not where or how long)."""
    table = pq.read_table(path)
    rows = {}
    for row in table.to_pylist():
        rows[row["cell.key"]] = {k: v for k, v in row.items() if k.startswith("result.")}
    return rows


@pytest.fixture(scope="module")
def serial_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serial")
    out = tmp / "serial.parquet"
    assert main(["grid", str(_spec(tmp)), "-o", str(out), "--serial", "--quiet"]) == 0
    return out


# ---------------------------------------------------------------- the spec


def test_spec_makes_the_product_of_its_axes_as_command_lines(tmp_path):
    spec = load_spec(str(_spec(tmp_path)))
    assert [a.name for a in spec.axes] == ["nic", "kernel", "traffic", "rcvbuf"]
    assert len(spec.cells) == 2 * 2 * 2 * 2
    first = spec.cells[0]
    assert first.axes == {"nic": "ice legacy", "kernel": "6.9", "traffic": "full", "rcvbuf": 8192}
    # Options in the parser's order; named traffic replaced by its definition; KEY=VALUE for opt.
    assert first.argv == ["--kernel", "6.9", "--driver", "ice", "--opt", "rx=legacy", "--traffic", "fixed:1514",
                          "--count", "3000", "--rcvbuf", "8192", "--app-rate", "200000"]
    assert first.command_line("run") == ("skbsim run --kernel 6.9 --driver ice --opt rx=legacy --traffic fixed:1514 "
                                         "--count 3000 --rcvbuf 8192 --app-rate 200000")
    assert len({c.key for c in spec.cells}) == len(spec.cells)
    # The last axis varies fastest, as in nested loops over the axes in their order.
    assert [c.axes["rcvbuf"] for c in spec.cells[:4]] == [8192, 212992, 8192, 212992]


def test_spec_option_key_axes_and_capture_paths(tmp_path):
    (tmp_path / "caps").mkdir()
    (tmp_path / "caps" / "x.pcap").write_bytes(b"")
    spec = load_spec(str(_spec(tmp_path, """
[traffic]
office = "pcap:caps/x.pcap"
[fixed]
driver = "copybreak"
traffic = "office"
[axes]
opt.copybreak = [0, 256]
""")))
    assert [a.name for a in spec.axes] == ["opt.copybreak"]
    assert spec.cells[1].axes == {"opt.copybreak": 256}
    # A capture named relative to the spec is given to the cell by its absolute path.
    assert spec.cells[1].argv == ["--driver", "copybreak", "--opt", "copybreak=256", "--traffic",
                                  f"pcap:{tmp_path / 'caps' / 'x.pcap'}"]


@pytest.mark.parametrize("text, message", [
    ("[axes\nkernel = 1", "not a valid TOML file"),
    ("[axes]\nkernal = ['6.9']", "'kernal' is not an option of 'skbsim run'"),
    ("[axes]\njson = [true]", "'json' is not an option of 'skbsim run'"),
    ("[axes]\nkernel = []", "axis kernel must be a non-empty list"),
    ("[axes]\nkernel = ['6.9', '6.9']", "axis kernel lists '6.9' twice"),
    ("[axes]\nkernel = ['6.9', '4.4']", "cell kernel=4.4: unknown kernel"),
    ("[axes]\nrcvbuf = [0]", "cell rcvbuf=0: --rcvbuf must be at least 1, got 0"),
    ("[fixed]\nkernel = ['6.9', '6.18']", "a cell is one run, this one is 2"),
    ("[fixed]\nrcvbuf = 1\n[axes]\nrcvbuf = [2]", "rcvbuf is both an axis and in [fixed]"),
    ("[grid]\ncommand = 'sweep'", "command 'sweep' cannot be a grid cell"),
    ("[gird]\ncommand = 'run'", "unknown section [gird]"),
    ("[axes]\nnic = [{ driver = 'ice' }]", "needs a name"),
    ("[report]\nlines = 'kernel'", "[report] 'kernel' is not an axis"),
    ("[fixed]\ntraffic = 'pcap:nowhere.pcap'", "nowhere.pcap: no such file"),
])
def test_bad_specs_are_one_line_and_exit_2(tmp_path, capsys, text, message):
    spec = _spec(tmp_path, text)
    assert main(["grid", str(spec), "-o", str(tmp_path / "r.parquet"), "--serial"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("skbsim: error: ")
    assert message in err
    assert not (tmp_path / "r.parquet").exists()


def test_missing_spec_is_exit_2(tmp_path, capsys):
    assert main(["grid", str(tmp_path / "none.toml"), "-o", str(tmp_path / "r.parquet")]) == 2
    assert "none.toml: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["grid", "{spec}", "-o", "{tmp}/r.csv"], "-o {tmp}/r.csv: the file name must end in .parquet"),
    (["grid", "{spec}", "-o", "{tmp}/none/r.parquet"], "folder {tmp}/none does not exist"),
    (["grid", "{spec}", "-o", "{tmp}/r.parquet", "--report", "{tmp}/none/r.html"], "folder {tmp}/none does not exist"),
    (["grid", "{spec}", "-o", "{tmp}/r.parquet", "--workers", "0"], "--workers must be at least 1, got 0"),
    (["grid", "{spec}", "-o", "{tmp}/r.parquet", "--timeout", "-1"], "--timeout must be a positive finite number"),
    (["report", "{tmp}/r.parquet", "-o", "{tmp}/r.png"], "-o {tmp}/r.png: the file name must end in .html or .htm"),
])
def test_destinations_and_numbers_are_checked_before_any_cell(tmp_path, capsys, argv, words):
    """As every command does (skbsim/commands/common.py): outputs are checked before the work, not after it."""
    spec = _spec(tmp_path)
    argv = [a.format(spec=spec, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words.format(tmp=tmp_path) in err
    assert not (tmp_path / "r.parquet.parts").exists()


def test_unreachable_scheduler_is_one_line_and_exit_2(tmp_path):
    import socket

    with socket.socket() as s:  # a port on loopback that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "skbsim.cli", "grid", str(_spec(tmp_path)), "-o",
                           str(tmp_path / "r.parquet"), "--scheduler", f"tcp://127.0.0.1:{port}", "--timeout", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"skbsim: error: --scheduler tcp://127.0.0.1:{port}: cannot reach a Dask scheduler")


def test_existing_results_need_resume(tmp_path, serial_results, capsys):
    spec = _spec(tmp_path)
    assert main(["grid", str(spec), "-o", str(serial_results), "--serial"]) == 2
    assert "--resume" in capsys.readouterr().err


# ---------------------------------------------------------------- results


def test_rows_hold_axes_cell_columns_and_the_runs_json(serial_results):
    table, meta = read_results(str(serial_results))
    assert table.num_rows == 16
    assert table.column_names[:5] == ["nic", "kernel", "traffic", "rcvbuf", "cell.index"]
    assert meta["axes"][0] == {"name": "nic", "values": ["ice legacy", "tun"]}
    row = table.to_pylist()[0]
    assert row["cell.status"] == "ok" and row["cell.error"] is None
    # The row's results are what `skbsim run --json` prints for the cell's command line.
    argv = row["cell.command"].split()[1:]
    proc = subprocess.run([sys.executable, "-m", "skbsim.cli", *argv, "--json"], capture_output=True, text=True,
                          check=True)
    (printed,) = json.loads(proc.stdout)["runs"]
    assert row["result.delivered"] == printed["delivered"]
    assert row["result.socket.peak_rmem_alloc"] == printed["socket"]["peak_rmem_alloc"]
    assert row["result.options.rx"] == "legacy"
    assert json.loads(row["result.warnings"]) == printed["warnings"]
    assert {r["cell.index"] for r in table.to_pylist()} == set(range(16))


def test_local_cluster_gives_the_serial_numbers(tmp_path, serial_results):
    out = tmp_path / "local.parquet"
    assert main(["grid", str(_spec(tmp_path)), "-o", str(out), "--workers", "2", "--quiet"]) == 0
    assert _result_rows(out) == _result_rows(serial_results)
    workers = set(pq.read_table(out).column("cell.worker").to_pylist())
    assert str(os.getpid()) not in {w.rsplit(":", 1)[1] for w in workers}  # the cells ran in the workers


@pytest.fixture
def remote_cluster(tmp_path):
    """A Dask scheduler and one worker as separate processes on loopback; their address."""
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                       "--nworkers", "1", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_remote_cluster_gives_the_serial_numbers(tmp_path, serial_results, remote_cluster):
    out = tmp_path / "remote.parquet"
    assert main(["grid", str(_spec(tmp_path)), "-o", str(out), "--scheduler", remote_cluster, "--timeout", "60",
                 "--quiet"]) == 0
    assert _result_rows(out) == _result_rows(serial_results)
    assert len(set(pq.read_table(out).column("cell.worker").to_pylist())) == 1


def test_a_failed_cell_is_recorded_and_the_grid_goes_on(tmp_path, capsys):
    (tmp_path / "bad.pcap").write_bytes(b"this is not a capture")
    spec = _spec(tmp_path, """
[traffic]
broken = "pcap:bad.pcap"
[fixed]
count = 500
[axes]
traffic = ["imix", "broken", "fixed:60"]
""")
    out = tmp_path / "r.parquet"
    assert main(["grid", str(spec), "-o", str(out), "--serial", "--quiet"]) == 1
    rows = pq.read_table(out).to_pylist()
    assert [r["cell.status"] for r in rows] == ["ok", "error", "ok"]
    assert rows[1]["cell.error"].startswith("InputError: ") and "bad.pcap" in rows[1]["cell.error"]
    assert rows[1]["result.delivered"] is None and rows[2]["result.delivered"] == 500
    err = capsys.readouterr().err
    assert "cell 1 (traffic=broken): InputError: " in err
    # --resume runs the failed cell again (and only it).
    assert main(["grid", str(spec), "-o", str(out), "--serial", "--quiet", "--resume"]) == 1
    assert "3 cells (2 recorded earlier); 1 run" in capsys.readouterr().err


RESUME = """
[fixed]
count = 400000
[axes]
kernel = ["6.1", "6.9", "6.12", "6.18"]
driver = ["ice", "copybreak", "tun"]
rcvbuf = [16384, 65536, 212992, 1048576]
"""


def test_resume_after_sigkill_loses_and_repeats_no_cell(tmp_path):
    spec = _spec(tmp_path, RESUME)
    cells = {c.key for c in load_spec(str(spec)).cells}
    n = len(cells)  # 4 kernels x 3 drivers x 4 rcvbuf sizes = 48
    out = tmp_path / "r.parquet"
    parts = tmp_path / "r.parquet.parts"
    cmd = [sys.executable, "-m", "skbsim.cli", "grid", str(spec), "-o", str(out), "--workers", "2", "--quiet"]
    # Its own session, so that the cluster's processes can be found (and, if need be, ended) afterwards.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(list(parts.glob("*.json"))) < 6:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no cell finished"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The cluster's workers notice that their parent is gone and exit.
    deadline = time.monotonic() + 60
    while _session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _session_processes(proc.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the killed grid still running: {left}"
    assert not out.exists()
    kept = {p.name.split(".")[0] for p in parts.glob("*.json")}
    assert 6 <= len(kept) < n

    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{n} cells ({len(kept)} recorded earlier); {n - len(kept)} run" in done.stderr
    rows = pq.read_table(out).to_pylist()
    keys = [r["cell.key"] for r in rows]
    assert len(keys) == n and set(keys) == cells
    sessions = {}
    for r in rows:
        sessions.setdefault(r["cell.session"], set()).add(r["cell.key"])
    assert len(sessions) == 2
    # The rows of the killed grid are exactly the cells it had recorded; the others ran once, now.
    assert kept in sessions.values()
    (now,) = [s for s in sessions.values() if s != kept]
    assert len(now) == n - len(kept) and not now & kept
    assert not parts.exists()
    assert all(r["cell.status"] == "ok" for r in rows)


def _session_processes(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # field 6 of stat: the session id
            pids.append(int(entry.name))
    return pids


def test_resume_with_a_changed_spec_keeps_matching_cells(tmp_path, capsys):
    out = tmp_path / "r.parquet"
    spec = _spec(tmp_path, "[fixed]\ncount = 300\n[axes]\nrcvbuf = [4096, 8192]\n")
    assert main(["grid", str(spec), "-o", str(out), "--serial", "--quiet"]) == 0
    spec.write_text("[fixed]\ncount = 300\n[axes]\nrcvbuf = [8192, 16384]\n")
    capsys.readouterr()
    assert main(["grid", str(spec), "-o", str(out), "--serial", "--quiet", "--resume"]) == 0
    assert "2 cells (1 recorded earlier); 1 run" in capsys.readouterr().err
    rows = pq.read_table(out).to_pylist()
    assert [(r["rcvbuf"], r["cell.index"]) for r in rows] == [(8192, 0), (16384, 1)]


# ---------------------------------------------------------------- the HTML report


class _Sources(HTMLParser):
    """Every URL a page would load (script/img/iframe src, link href) and the inline scripts' sizes."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[int] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href") if tag in ("script", "link", "img", "iframe", "source", "embed") else ():
            if attrs.get(name):
                self.urls.append(attrs[name])
        self._in_script = tag == "script" and "src" not in attrs

    def handle_data(self, data):
        if self._in_script:
            self.inline.append(len(data))

    def handle_endtag(self, tag):
        self._in_script = False


def _assert_self_contained(path: Path) -> str:
    text = path.read_text()
    parser = _Sources()
    parser.feed(text)
    assert [u for u in parser.urls if u.startswith(("http:", "https:", "//"))] == []
    assert parser.urls == []
    assert max(parser.inline) > 1_000_000  # plotly.js itself, inline
    assert "cdn.plot.ly" not in text.split("</head>")[1]
    return text


def test_grid_report_is_self_contained_with_charts_and_command_lines(tmp_path, serial_results):
    page = tmp_path / "report.html"
    assert main(["report", str(serial_results), "-o", str(page)]) == 0
    text = _assert_self_contained(page)
    assert text.count('class="plotly-graph-div"') == 2  # the heat map and the lines of one metric
    for row in pq.read_table(serial_results).to_pylist():
        assert row["cell.command"].replace('"', "&quot;") in text or row["cell.command"] in text


def test_report_metric_and_axes_choices(tmp_path, serial_results, capsys):
    page = tmp_path / "report.html"
    assert main(["report", str(serial_results), "-o", str(page), "--metric", "delivered", "--metric",
                 "socket.peak_rmem_alloc", "--heatmap", "rcvbuf", "traffic", "--lines", "kernel"]) == 0
    assert page.read_text().count('class="plotly-graph-div"') == 4
    assert main(["report", str(serial_results), "-o", str(page), "--metric", "nonsense"]) == 2
    assert "--metric nonsense: no such result" in capsys.readouterr().err
    assert main(["report", str(serial_results), "-o", str(page), "--lines", "colour"]) == 2
    assert main(["report", str(tmp_path / "none.parquet"), "-o", str(page)]) == 2
    (tmp_path / "junk.parquet").write_text("junk")
    assert main(["report", str(tmp_path / "junk.parquet"), "-o", str(page)]) == 2
    err = capsys.readouterr().err
    assert "none.parquet: no such file" in err and "junk.parquet: not a Parquet file" in err


def test_run_report_is_self_contained(tmp_path, capsys):
    page = tmp_path / "run.html"
    assert main(["run", "--count", "2000", "--kernel", "6.9", "--kernel", "6.18", "--json", "--quiet",
                 "--report", str(page)]) == 0
    results = json.loads(capsys.readouterr().out)["runs"]
    text = _assert_self_contained(page)
    assert text.count('class="plotly-graph-div"') == 2  # truesize by length; memory over time
    assert "skbsim run --count 2000 --kernel 6.9 --kernel 6.18 --json --quiet --report" in text
    assert f"<td class=\"num\">{results[1]['delivered']:,}</td>" in text
    # What the terminal shows: the traffic said once above the table, the leak check; and the memory
    # chart's sk_rcvbuf line (both runs at the default 212992) and each run's peak line, as the PNG has them.
    assert text.count("<p>traffic: imix (simple IMIX") == 1
    assert "leak check (6.18 ice): clean" in text
    assert "sk_rcvbuf 212,992 B" in text
    for r in results:
        assert f"{r['kernel']} ice: peak {r['socket']['peak_rmem_alloc']:,} B" in text


def test_a_part_cut_short_is_run_again(tmp_path):
    """A part file that a power loss cut short (renamed, but its end never reached the disk) is not a result."""
    from skbsim.grid.cells import execute_cell
    from skbsim.grid.store import ResultStore

    spec = load_spec(str(_spec(tmp_path, "[fixed]\ncount = 300\n[axes]\nrcvbuf = [4096, 8192, 16384]\n")))
    out = tmp_path / "r.parquet"
    store = ResultStore(str(out))
    store.open()
    for cell in spec.cells[:2]:
        store.write(execute_cell("run", cell.argv, {"cell.key": cell.key, "cell.session": "before"}))
    cut = next(store.parts.glob(f"{spec.cells[1].key}.*"))
    cut.write_bytes(cut.read_bytes()[:-20])
    (store.parts / f".{spec.cells[2].key}.1234.tmp").write_text("{")  # a write that was never renamed
    summary = run_grid(spec, str(out), serial=True, resume=True, progress=False)
    assert (summary.reused, summary.ran, summary.rows) == (1, 2, 3)
    sessions = [r["cell.session"] for r in pq.read_table(out).to_pylist()]
    assert sessions[0] == "before" and sessions[1] == sessions[2] != "before"


def test_results_match_their_json_schema(serial_results):
    """docs/schema/parquet/grid.schema.json describes the Parquet file as {metadata, rows}."""
    jsonschema = pytest.importorskip("jsonschema", reason="needs jsonschema (pip install '.[test]')")
    schema = json.loads((Path(__file__).resolve().parent.parent / "docs/schema/parquet/grid.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    table, meta = read_results(str(serial_results))
    jsonschema.validate({"metadata": meta, "rows": table.to_pylist()}, schema)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.toml")))
def test_example_specs_load(name):
    spec = load_spec(str(EXAMPLES / f"{name}.toml"))
    assert len(spec.cells) == {"rcvbuf": 4 * 4 * 8, "copybreak": 2 * 17}[name]


# ---------------------------------------------------------------- skbsim tcp cells

TCP = """
[grid]
command = "tcp"

[fixed]
driver = "ntb"
steps = ["send:1000x70", "read", "send:1000x70", "read"]

[axes]
kernel = ["6.12", "6.18"]
opt.copybreak = [0, 1053, 1054, 3646]
"""


def test_tcp_cells_are_the_commands_runs_summarised(tmp_path):
    from skbsim.tcp_report import tcp_summary

    out = tmp_path / "tcp.parquet"
    assert main(["grid", str(_spec(tmp_path, TCP)), "-o", str(out), "--serial", "--quiet"]) == 0
    rows = pq.read_table(out).to_pylist()
    assert [(r["kernel"], r["opt.copybreak"]) for r in rows] == [(k, c) for k in ("6.12", "6.18")
                                                                  for c in (0, 1053, 1054, 3646)]
    for row in rows:
        # The row is what `skbsim tcp --json` prints for the cell's command line, its steps summarised.
        argv = row["cell.command"].split()[1:]
        proc = subprocess.run([sys.executable, "-m", "skbsim.cli", *argv, "--json"], capture_output=True, text=True,
                              check=True)
        (printed,) = json.loads(proc.stdout)["runs"]
        summary = tcp_summary(printed)
        assert row["result.synack.wscale"] == printed["synack"]["wscale"]
        assert row["result.options.copybreak"] == printed["options"]["copybreak"] == row["opt.copybreak"]
        for key in ("segments", "dropped", "bytes_read", "acks", "zero_window_acks", "last_window", "min_window"):
            assert row[f"result.{key}"] == summary[key], key
        for key, value in summary["end"].items():
            assert row[f"result.end.{key}"] == value, key
        assert row["result.counters.TCPToZeroWindowAdv"] == summary["counters"]["TCPToZeroWindowAdv"]

    by = {(r["kernel"], r["opt.copybreak"]): r for r in rows}
    # A 1000-byte segment is a 1054-byte frame (14 Ethernet + 20 IP + 20 TCP + 1000): copybreak 1053
    # leaves it in its ring buffer, netdev_alloc_skb(65524): 65524 + NET_SKB_PAD 64 = 65588 > PAGE_SIZE,
    # so kmalloc_reserve(SKB_DATA_ALIGN(65588) 65600 + shinfo 320 = 65920) takes kmalloc-128k and truesize
    # is 131072 + SKB_DATA_ALIGN(sizeof(struct sk_buff)) 256 = 131328: scaling_ratio = 1000 * 256 // 131328
    # = 1.  Copybreak 1054 copies it into netdev_alloc_skb_ip_align(1054): 1054 + NET_IP_ALIGN 2 +
    # NET_SKB_PAD 64 = 1120, SKB_DATA_ALIGN 1152 + 320 = 1472 from a page fragment, truesize 1152 + 256 +
    # 320 = 1728: ratio 1000 * 256 // 1728 = 148.
    for kernel in ("6.12", "6.18"):
        assert by[(kernel, 0)]["result.end.scaling_ratio"] == by[(kernel, 1053)]["result.end.scaling_ratio"] == 1
        assert by[(kernel, 1054)]["result.end.scaling_ratio"] == by[(kernel, 3646)]["result.end.scaling_ratio"] == 148
        # Copied, every byte of the 140 segments arrives and is read.
        assert by[(kernel, 1054)]["result.bytes_read"] == 140 * 1000 and by[(kernel, 1054)]["result.dropped"] == 0
    # 6.18 (6.18's tcp_set_window_clamp floor): window_clamp and rcv_ssthresh stay at 1152; the segments
    # past the last 1024-byte window are dropped and only the first 66 KB are read (the README's table).
    assert by[("6.18", 0)]["result.end.window_clamp"] == by[("6.18", 0)]["result.end.rcv_ssthresh"] == 1152
    assert by[("6.18", 0)]["result.last_window"] == 1024 and by[("6.18", 0)]["result.bytes_read"] == 66000
    # 6.12: the window closes to zero once (TCPToZeroWindowAdv); the read lets autotuning take sk_rcvbuf
    # to tcp_rmem[2] = 6291456, and window_clamp = tcp_win_from_space(6291456) = 6291456 * ratio 1 >> 8.
    assert by[("6.12", 0)]["result.zero_window_acks"] == 1 and by[("6.12", 0)]["result.min_window"] == 0
    assert by[("6.12", 0)]["result.end.rcvbuf"] == 6291456 and by[("6.12", 0)]["result.end.window_clamp"] == 24576


def test_tcp_grid_on_the_local_cluster_gives_the_serial_numbers(tmp_path):
    spec = _spec(tmp_path, TCP)
    serial, local = tmp_path / "serial.parquet", tmp_path / "local.parquet"
    assert main(["grid", str(spec), "-o", str(serial), "--serial", "--quiet"]) == 0
    assert main(["grid", str(spec), "-o", str(local), "--workers", "2", "--quiet"]) == 0
    assert _result_rows(local) == _result_rows(serial)


@pytest.mark.parametrize("text, message", [
    ("[grid]\ncommand = 'tcp'\n[fixed]\nsteps = ['send:100']\nkernel = ['6.12', '6.18']",
     "a cell is one run, this one is 2"),
    ("[grid]\ncommand = 'tcp'\n[axes]\nsteps = [['bogus']]", "unknown step 'bogus'"),
    ("[grid]\ncommand = 'tcp'\n[fixed]\nsteps = ['send:1']\nexplain = true", "'explain' is not an option of 'skbsim tcp'"),
])
def test_bad_tcp_specs_are_one_line_and_exit_2(tmp_path, capsys, text, message):
    assert main(["grid", str(_spec(tmp_path, text)), "-o", str(tmp_path / "r.parquet"), "--serial"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_tcp_report_is_self_contained(tmp_path, capsys):
    page = tmp_path / "tcp.html"
    assert main(["tcp", "--kernel", "6.12", "--kernel", "6.18", "--driver", "ntb", "--opt", "copybreak=0",
                 "--opt", "copybreak=3646", "--summary", "--report", str(page), "send:1000x70", "read"]) == 0
    out = capsys.readouterr().out
    text = _assert_self_contained(page)
    assert text.count('class="plotly-graph-div"') == 2  # one chart of four panels per kernel
    assert "skbsim tcp --kernel 6.12 --kernel 6.18 --driver ntb --opt copybreak=0" in text
    # What the terminal's summary says, the page says: the same rows.
    assert "TCPToZeroWindowAdv" in out and "<td>TCPToZeroWindowAdv</td>" in text
    assert text.count("SYN-ACK window 65470") == 4  # each run's records table has its handshake line


def test_tcp_report_destination_is_checked_before_the_run(tmp_path, capsys):
    assert main(["tcp", "--report", str(tmp_path / "none" / "t.html"), "send:1"]) == 2
    assert "folder" in capsys.readouterr().err


def test_the_warm_up_runs_each_cell_tiny(tmp_path, monkeypatch):
    """The warm-up sets its tiny count over the cell's own (appending --count would give it twice)."""
    from dataclasses import replace

    from skbsim.grid.cells import CELL_COMMANDS, warm_up

    seen = []
    run = CELL_COMMANDS["run"]
    monkeypatch.setitem(CELL_COMMANDS, "run", replace(run, execute=lambda args: seen.append(args.count) or ({}, None)))
    argvs = [cell.argv for cell in load_spec(str(_spec(tmp_path))).cells[:3]]
    assert all("--count" in argv for argv in argvs)
    info = warm_up("run", argvs)
    assert info["errors"] == [] and seen == [64, 64, 64]
    # And for real: a tiny cell of each argv runs without error.
    monkeypatch.setitem(CELL_COMMANDS, "run", run)
    assert warm_up("run", argvs)["errors"] == []
