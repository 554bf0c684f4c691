"""Hostile and careless input: one line and exit code 2 (or a correct run), never a traceback.

Each test here failed before the change it guards (issue "Hardening and first impressions").
Subprocess tests run the installed ``skbsim`` command the way a user does (python -m skbsim,
so the venv's interpreter and this checkout).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from skbsim.cli import main
from skbsim.sim import RunConfig, simulate


def _skbsim(*argv, stdout=subprocess.PIPE, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "skbsim", *argv], stdout=stdout, stderr=subprocess.PIPE,
                          env=env, **kwargs)


def _one_line_exit_2(capsys, argv, words=""):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.count("\n") == 1 and captured.err.startswith("skbsim: error: "), captured.err
    assert words in captured.err, captured.err
    return captured.err


# -- numbers that no engine can hold --------------------------------------------------------------


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("app_rate", ["1e-300", "5e-324", "1e-10"])
def test_tiny_app_rate_is_refused(capsys, engine, app_rate):
    # 1e9 / 1e-10 = 1e19 ns between reads > 2**63 - 1: past the simulated clock
    _one_line_exit_2(capsys, ["run", "--quiet", "--count", "10", "--app-rate", app_rate, "--engine", engine],
                     "--app-rate 0 is a reader that never reads")


def test_app_rate_zero_is_a_reader_that_never_reads_on_both_engines(capsys):
    # 60-byte frames, legacy-rx 6.9: each skb is a 1K-fragment head, truesize 1024 + 256 = 1280 (SKB_TRUESIZE
    # of SKB_WITH_OVERHEAD(1024) = 704: 704 + 256 + 320).  Nobody reads, so the socket admits while
    # sk_rmem_alloc <= sk_rcvbuf before charging (6.9, before_charge): 10000 / 1280 -> after 8 skbs
    # rmem is 10240 > 10000, so exactly 8 are queued (the 8th overshoots) and the other 92 are dropped.
    argv = ["run", "--quiet", "--json", "--count", "100", "--traffic", "fixed:60", "--rcvbuf", "10000",
            "--app-rate", "0"]
    runs = []
    for engine in ("fast", "reference"):
        assert main(argv + ["--engine", engine]) == 0
        (result,) = json.loads(capsys.readouterr().out)["runs"]
        runs.append(result)
    fast, reference = runs
    assert fast["engine"] == "fast" and reference["engine"] == "reference"
    fast.pop("engine"), reference.pop("engine")
    assert fast == reference
    assert (fast["delivered"], fast["dropped"]["socket_rcvbuf"]) == (8, 92)
    assert fast["socket"]["queued_at_end"] == 8


def test_dist_weights_summing_to_infinity(tmp_path, capsys):
    for text in ("60,1e308\n1500,1e308\n", "1500,1e308\n60,1e308\n"):
        path = tmp_path / "inf.csv"
        path.write_text(text)
        for engine in ("fast", "reference"):
            _one_line_exit_2(capsys, ["run", "--quiet", "--count", "10", "--traffic", f"dist:{path}",
                                      "--engine", engine], "add up to more than the largest float")


# -- unbounded input files ------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, words", [
    (["run", "--quiet", "--count", "10", "--traffic", "dist:/dev/zero"], "larger than 8 MiB"),
    (["run", "--quiet", "--count", "10", "--kernel", "/dev/zero"], "larger than 1 MiB"),
    (["run", "--quiet", "--count", "10", "--kernel-config", "/dev/zero"], "larger than 16 MiB"),
    (["alloc", "--len", "10", "--kernel-config", "/dev/zero"], "larger than 16 MiB"),
    (["profile", "show", "/dev/zero"], "larger than 1 MiB"),
])
def test_endless_input_files_are_bounded(capsys, argv, words):
    _one_line_exit_2(capsys, argv, words)


def test_gzip_bomb_config_is_bounded(tmp_path, capsys):
    import gzip

    path = tmp_path / "bomb.config.gz"
    with gzip.open(path, "wb") as handle:
        for _ in range(20):
            handle.write(b"# padding\n" * (1 << 17))  # 20 x 1.25 MiB of comment lines
    _one_line_exit_2(capsys, ["alloc", "--len", "10", "--kernel-config", str(path)], "unpacks to more than 16 MiB")


def test_cpus_bound(capsys):
    _one_line_exit_2(capsys, ["run", "--quiet", "--count", "10", "--cpus", "129"], "--cpus must be 1..128")
    _one_line_exit_2(capsys, ["run", "--quiet", "--count", "10", "--cpus", "1000000"], "--cpus must be 1..128")
    # at the bound: 128 queues, 128 rings of 2048 pages each (measured RSS: docs/output.md)
    result, _ = simulate(RunConfig(cpus=128, count=300, flows=1000))
    assert result["cpus"] == 128 and result["leaks"]["clean"]


# -- output that cannot be written -----------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_for_stdout_and_trace(tmp_path):
    with open("/dev/full", "w") as full:
        for argv in (["run", "--quiet", "--count", "50"], ["run", "--quiet", "--count", "50", "--json"],
                     ["alloc", "--len", "100"], ["sweep", "--len", "0:10"]):
            done = _skbsim(*argv, stdout=full)
            err = done.stderr.decode()
            assert done.returncode == 2 and "Traceback" not in err and "Exception" not in err, (argv, err)
            assert err.splitlines()[-1] == "skbsim: error: cannot write standard output: No space left on device"
    link = tmp_path / "full.jsonl"
    link.symlink_to("/dev/full")
    done = _skbsim("run", "--quiet", "--count", "5000", "--trace", str(link))
    err = done.stderr.decode()
    assert done.returncode == 2 and "Traceback" not in err and "No space left on device" in err, err
    assert err.strip().splitlines()[-1].startswith("skbsim: error: --trace")


def test_a_newline_in_a_path_stays_on_one_line(tmp_path, capsys):
    odd = tmp_path / "a\nb"
    err = _one_line_exit_2(capsys, ["run", "--quiet", "--count", "10", "--trace", f"{odd}/t.jsonl"])
    assert "\\n" in err
    err = _one_line_exit_2(capsys, ["run", "--quiet", "--count", "10", "--traffic", f"dist:{odd}.csv"])
    assert "\\n" in err
    err = _one_line_exit_2(capsys, ["run", "--quiet", "--count", "10", "--traffic", f"pcap:{odd}\x1b[31m.pcap"])
    assert "\x1b" not in err


def _sigint_outcomes(delays_ms):
    outcomes = []
    for delay in delays_ms:
        process = subprocess.Popen([sys.executable, "-m", "skbsim", "run", "--count", "2000", "--engine",
                                    "reference"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay / 1000)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate()
        outcomes.append((delay, process.returncode, err.decode()))
    return outcomes


def test_ctrl_c_at_any_moment_is_one_line():
    """Ctrl-C from the first millisecond on: killed silently before Python has its handler, one line and
    exit 130 from skbsim's first statement on.  Python's own start-up (site.py, path finders) runs
    before any skbsim code: a traceback there is Python's, and names no skbsim file."""
    for delay, code, err in _sigint_outcomes(range(0, 60, 3)):
        if code == 130:
            assert err == "skbsim: interrupted\n", (delay, err)
        else:
            # killed by the signal before any skbsim statement ran, or done before the signal came
            assert code in (-signal.SIGINT, 1, 0), (delay, code, err)
            assert not re.search(r"/skbsim/[^\"]*\.py", err), (delay, err)


def test_broken_pipe_is_a_quiet_exit_0_for_tables_and_json():
    for argv in (["run", "--quiet", "--count", "200"], ["run", "--quiet", "--count", "200", "--json"],
                 ["alloc"], ["sweep", "--len", "0:3000"], ["profile", "list"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the first write
        with os.fdopen(write, "w") as closed:
            done = _skbsim(*argv, stdout=closed)
        assert done.returncode == 0, (argv, done.stderr)
        assert b"Traceback" not in done.stderr and b"Exception ignored" not in done.stderr, done.stderr
        assert b"error" not in done.stderr, done.stderr


def test_pcapng_interface_option_overrunning_its_block(tmp_path, capsys):
    import struct

    import dpkt

    shb = bytes(dpkt.pcapng.SectionHeaderBlockLE())
    # IDB: linktype 1, snaplen 65535, then option if_tsresol (9) claiming 200 bytes where 4 are left
    body = struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HH", 9, 200) + b"\x09\0\0\0"
    idb = struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    frame = b"\xff" * 6 + b"\x02" * 6 + b"\x88\xb5" + bytes(46)
    epb_body = struct.pack("<IIIII", 0, 0, 1, 60, 60) + frame
    epb = struct.pack("<II", 6, 12 + len(epb_body)) + epb_body + struct.pack("<I", 12 + len(epb_body))
    path = tmp_path / "overrun.pcapng"
    path.write_bytes(shb + idb + epb)
    _one_line_exit_2(capsys, ["run", "--quiet", "--traffic", f"pcap:{path}"], "overruns the block")


# -- destinations and values, checked before the run ------------------------------------------------------


def test_destinations_are_checked_before_the_run(tmp_path, capsys, monkeypatch):
    import skbsim.fast

    def no_run(*args, **kwargs):
        raise AssertionError("the run started before its destinations were checked")

    monkeypatch.setattr(skbsim.fast, "simulate_engine", no_run)
    blocker = tmp_path / "file"
    blocker.write_text("")
    _one_line_exit_2(capsys, ["run", "--quiet", "--plot", str(blocker / "plots")], "--plot")
    _one_line_exit_2(capsys, ["run", "--quiet", "--plot", str(blocker)], "exists and is not a folder")
    _one_line_exit_2(capsys, ["run", "--quiet", "--trace", str(tmp_path / "no" / "t.jsonl")], "does not exist")
    _one_line_exit_2(capsys, ["run", "--quiet", "--trace", str(tmp_path)], "--trace")


@pytest.mark.parametrize("argv", [
    ["run", "--rate", ""], ["run", "--trace", ""], ["run", "--plot", ""], ["run", "--kernel", ""],
    ["run", "--traffic", " "], ["alloc", "--len", ""], ["sweep", "--plot", ""], ["rx", "--driver", "",
                                                                                  "--frame-len", "60"],
    ["profile", "show", ""],
])
def test_empty_values_are_refused(capsys, argv):
    _one_line_exit_2(capsys, argv, "empty value")


def test_flows_with_a_capture_is_refused(tmp_path, capsys):
    import dpkt

    path = tmp_path / "one.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        writer.writepkt(b"\xff" * 6 + b"\x02" * 6 + b"\x88\xb5" + bytes(46), ts=1.0)
    _one_line_exit_2(capsys, ["run", "--quiet", "--traffic", f"pcap:{path}", "--flows", "4"],
                     "--flows is for synthetic traffic")


def test_sweep_plot_names_the_file_it_writes(tmp_path, capsys):
    _one_line_exit_2(capsys, ["sweep", "--len", "0:10", "--plot", str(tmp_path / "plots")], ".png or .svg or .pdf")
    assert not (tmp_path / "plots.png").exists()
    target = tmp_path / "sweep.svg"
    assert main(["sweep", "--len", "0:10", "--plot", str(target)]) == 0
    assert f"plot: {target}" in capsys.readouterr().out and target.stat().st_size > 0


@pytest.mark.parametrize("argv, words", [
    (["run", "--count", "10", "--rcvbuf", "1000", "--rcvbuf", "2000"], "--rcvbuf given twice"),
    (["run", "--count", "10", "--traffic", "imix", "--traffic", "fixed:60"], "--traffic given twice"),
    (["alloc", "--len", "1", "--len", "2"], "--len given twice"),
    (["sweep", "--function", "__alloc_skb", "--function", "napi_alloc_skb"], "--function given twice"),
    (["rx", "--driver", "ice", "--frame-len", "60", "--kernel", "6.9", "--kernel", "6.18"], "--kernel given twice"),
])
def test_repeated_single_value_options_are_refused(capsys, argv, words):
    _one_line_exit_2(capsys, argv, words)


def test_repeated_driver_compares(capsys):
    assert main(["run", "--quiet", "--json", "--count", "300", "--driver", "ice", "--driver", "tun",
                 "--opt", "rx=build_skb", "--opt", "write=nonblock", "--engine", "reference"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["driver"], r["options"]) for r in runs] == [("ice", {"rx": "build_skb"}),
                                                           ("tun", {"write": "nonblock"})]
    _one_line_exit_2(capsys, ["run", "--quiet", "--count", "10", "--driver", "tun", "--opt", "rx=legacy"],
                     "--opt rx: no option of tun")


# -- tables and plots --------------------------------------------------------------------------------------


def test_comparison_tables_never_cut_a_number():
    argv = ["run", "--quiet", "--count", "3000", "--kernel", "6.1", "--kernel", "6.9", "--kernel", "6.12",
            "--kernel", "6.18", "--opt", "rx=build_skb", "--opt", "rx=legacy", "--engine", "reference"]
    numbers = set()
    for run in json.loads(_skbsim(*argv, "--json").stdout)["runs"]:
        numbers.update(f"{run['pages']['allocated_by_order'].get(o, 0):,}/{run['pages']['freed_by_order'].get(o, 0):,}"
                       for o in run["pages"]["allocated_by_order"])
        numbers.update(f"{value:,}" for value in (run["bytes"], run["socket"]["peak_rmem_alloc"]))
    for columns in ("80", "40", "20"):
        done = _skbsim(*argv, env={**os.environ, "COLUMNS": columns})
        table = done.stdout.decode()
        assert done.returncode == 0 and "…" not in table
        cells = {cell.strip() for line in table.splitlines() for cell in re.split(r"[│┃]", line)}
        for number in numbers:
            assert number in cells or any(number in cell.split(" / ") for cell in cells), (columns, number)
        assert table.count("imix (simple IMIX") == 1  # the traffic, said once


def test_plot_lines_of_an_option_comparison_are_named_by_what_differs():
    from skbsim.report import run_labels

    runs = [{"kernel": "6.9", "driver": "ice", "options": {"rx": rx, "mtu": "1500"}} for rx in ("build_skb", "legacy")]
    assert run_labels(runs) == ["6.9 ice rx=build_skb", "6.9 ice rx=legacy"]
    kernels = [{"kernel": k, "driver": "ice", "options": {"rx": "legacy"}} for k in ("6.9", "6.18")]
    assert run_labels(kernels) == ["6.9 ice", "6.18 ice"]


# -- user-facing text speaks of the project only ----------------------------------------------------------

#: Words of the development history, not of the product: the seed page, the issues, the machines'
#: paths, forks the sources were read from.  (Output pasted from a real run may name that machine's
#: kernel release: that is what the command prints.)
_PRIVATE = re.compile(r"seed's|the issue|issue's|/work/|shared/seeds|encyclopedia|study's|BG9OXA|OpenWrt",
                      re.IGNORECASE)


def test_user_facing_text_speaks_of_the_project_only(capsys):
    from pathlib import Path

    from skbsim.profile import builtin_names, load_profile

    root = Path(__file__).resolve().parent.parent
    texts = {f"profile {name}": f"{p.rules_from} {p.description}"
             for name in builtin_names() for p in [load_profile(name)]}
    for path in [root / "README.md", *(root / "docs").glob("*.md"), *(root / "skbsim" / "profiles").glob("*.toml")]:
        texts[str(path)] = path.read_text()
    for command in (["--help"], ["alloc", "--help"], ["run", "--help"], ["rx", "--help"], ["sweep", "--help"],
                    ["validate", "--help"], ["profile", "show", "--help"], ["tcp", "--help"]):
        with pytest.raises(SystemExit):
            main(command)
        texts[" ".join(command)] = capsys.readouterr().out
    for where, text in texts.items():
        found = _PRIVATE.findall(text)
        assert not found, (where, found)


def test_alloc_warning_is_said_once(capsys):
    assert main(["alloc", "--len", "100", "--context", "process"]) == 0
    out = capsys.readouterr().out
    assert "warning: __napi_alloc_skb called outside softirq" in out and "WARNING" not in out
