"""skbsim sweep: the ranges table, CSV, plot, speed, and bad input.

Hand derivation for napi_alloc_skb on the built-ins (x86_64, 4K pages, L1 64, MAX_HEADER 176,
sk_buff 232 -> 256, shinfo 320; L = len + 64; H(x) = ALIGN(x, 64) + 320; truesize = head + 256):
  6.1, 6.9, 6.12: L <= 704 (len <= 640)            -> 1K frag, truesize 1024 + 256 = 1280
  6.18:           L <= 384 (len <= 320)            -> skbuff_small_head 704, truesize 960
  all:            L <= 3776 (len <= 3712)          -> page frag H(L), truesize ALIGN(L, 64) + 576
                    (6.18 from len 321: 1024; 6.1-6.12 from len 641: 1344; 4352 at len 3712)
                  H(L) <= 8192 (ALIGN(L) <= 7872, len <= 7808) -> kmalloc-8k, truesize 8448
                  H(L) <= 16384 (len <= 16000)     -> order-2 pages, truesize 16640
"""

from __future__ import annotations

import csv
import io

import pytest

from skbsim import cli
from skbsim.errors import InputError
from skbsim.profile import load_profile
from skbsim.sweep import comparison_rows, describe_cell, parse_len_range, plot, sweep, write_csv

BUILTINS = ["6.1", "6.9", "6.12", "6.18", "7.1"]


def run_sweep(names, function, text):
    return sweep([load_profile(n) for n in names], function, parse_len_range(text))


def table(sweeps, by_path=False):
    return [(r.first, r.last, [describe_cell(c) for c in r.cells]) for r in comparison_rows(sweeps, by_path=by_path)]


def test_by_path_table_of_the_builtins():
    one_k = "1280 page_frag_1k"
    assert table(run_sweep(BUILTINS, "napi_alloc_skb", "0:9000"), by_path=True) == [
        # 7.1's napi_alloc_skb() is 6.18's: the same small head (704) and thresholds
        (0, 320, [one_k, one_k, one_k] + ["960 kmalloc: skbuff_small_head"] * 2),
        (321, 640, [one_k, one_k, one_k] + ["1024..1280 page_frag"] * 2),
        (641, 3712, ["1344..4352 page_frag"] * 5),
        (3713, 7808, ["8448 kmalloc: kmalloc-8k"] * 5),
        (7809, 9000, ["16640 kmalloc: pages-order-2"] * 5),
    ]


def test_exact_table_changes_every_cache_line():
    rows = table(run_sweep(["6.9", "6.18"], "napi_alloc_skb", "0:1200"))
    # 6.18 changes at 321 and then every 64 bytes (ALIGN(L, 64) steps); 6.9 joins at 641.
    starts = [first for first, _last, _cells in rows]
    assert starts == [0, 321, 385, 449, 513, 577, 641, 705, 769, 833, 897, 961, 1025, 1089, 1153]
    assert rows[0] == (0, 320, ["1280 page_frag_1k", "960 kmalloc: skbuff_small_head"])
    assert rows[1] == (321, 384, ["1280 page_frag_1k", "1024 page_frag"])      # H(385..448) = 768
    assert rows[5] == (577, 640, ["1280 page_frag_1k", "1280 page_frag"])      # H(641..704) = 1024
    assert rows[6] == (641, 704, ["1344 page_frag", "1344 page_frag"])         # H(705..768) = 1088
    assert rows[-1] == (1153, 1200, ["1856 page_frag", "1856 page_frag"])      # ALIGN(1217..1264) = 1280


def test_steps_sample_the_range():
    rows = table(run_sweep(["6.18"], "napi_alloc_skb", "0:1000:250"))
    # 0, 250: small head 960; 500: L 564 -> 576 + 576 = 1152; 750: L 814 -> 832 + 576 = 1408;
    # 1000: L 1064 -> 1088 + 576 = 1664
    assert rows == [(0, 250, ["960 kmalloc: skbuff_small_head"]), (500, 500, ["1152 page_frag"]),
                    (750, 750, ["1408 page_frag"]), (1000, 1000, ["1664 page_frag"])]


def test_null_results_are_ranges_too():
    # __alloc_skb(size): H(size) <= KMALLOC_MAX_SIZE 4194304 while ALIGN(size, 64) <= 4193984;
    # at 4193984 the head is 4 MiB of order-10 pages, truesize 4194304 + 256 = 4194560; above: NULL
    rows = table(run_sweep(["6.9"], "__alloc_skb", "4193980:4193990"))
    assert rows == [(4193980, 4193984, ["4194560 kmalloc: pages-order-10"]), (4193985, 4193990, ["NULL"])]


def test_netdev_thresholds_differ_between_releases():
    # __netdev_alloc_skb, L = len + 64.  6.1 (no small-head cache): kmalloc while L <= 704, rounded up to
    # a bucket: H(L) <= 512 while ALIGN(L, 64) <= 192 (len <= 128) -> kmalloc-512, truesize 768; then
    # kmalloc-1k (1280).  6.18: the small head (960) while L <= 384 (len <= 320); then page frags of
    # H(L): L 385..448 -> 768 (truesize 1024), L 449..464 -> 832 (1088).
    rows = table(run_sweep(["6.1", "6.18"], "__netdev_alloc_skb", "100:400"), by_path=True)
    assert rows == [
        (100, 128, ["768 kmalloc: kmalloc-512", "960 kmalloc: skbuff_small_head"]),
        (129, 320, ["1280 kmalloc: kmalloc-1k", "960 kmalloc: skbuff_small_head"]),
        (321, 400, ["1280 kmalloc: kmalloc-1k", "1024..1088 page_frag"]),
    ]


def test_csv_has_one_row_per_length():
    sweeps = run_sweep(["6.9", "6.18"], "napi_alloc_skb", "319:322")
    out = io.StringIO()
    write_csv(sweeps, out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["len", "6.9 path", "6.9 head_source", "6.9 head_size", "6.9 truesize",
                       "6.18 path", "6.18 head_source", "6.18 head_size", "6.18 truesize"]
    assert rows[1] == ["319", "page_frag_1k", "page_frag_1k", "1024", "1280", "kmalloc", "skbuff_small_head",
                       "704", "960"]
    assert rows[3] == ["321", "page_frag_1k", "page_frag_1k", "1024", "1280", "page_frag", "page_frag", "768",
                       "1024"]
    assert len(rows) == 5


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "sweep.png"
    plot(run_sweep(["6.9", "6.18"], "napi_alloc_skb", "0:3000:10"), str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_full_u16_range_on_four_kernels():
    # Speed is the benchmark's business (skbsim sweep prints its own timing); here: every length runs.
    sweeps = run_sweep(BUILTINS, "napi_alloc_skb", "0:65535")
    assert all(s.leak_check == "clean" for s in sweeps)
    assert len(sweeps[0].answers) == 65536


@pytest.mark.parametrize("text", ["5:1", "a:b", "0:10:0", "x", "-1", "4294967296", "0:4294967296", "0:1:2:3"])
def test_bad_len_range(text):
    with pytest.raises(InputError, match="--len"):
        parse_len_range(text)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--len", "9:1"], "--len '9:1': need 0 <= FIRST <= LAST"),
        (["--kernel", "6.9", "--kernel", "6.9"], "kernel 6.9 is given twice"),
        (["--kernel", "6.12", "--function", "__napi_alloc_skb"], "kernel 6.12 has no __napi_alloc_skb"),
        (["--kernel", "7.7"], "unknown kernel '7.7'"),
        (["--function", "napi_alloc_skb", "--gfp", "GFP_KERNEL"], "napi_alloc_skb takes no gfp mask"),
    ],
)
def test_bad_sweep_arguments(capsys, argv, message):
    code = cli.main(["sweep", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


def test_command_writes_table_csv_and_plot(tmp_path, capsys):
    csv_path, png_path = tmp_path / "s.csv", tmp_path / "s.png"
    code = cli.main(["sweep", "--kernel", "6.9", "--kernel", "6.18", "--len", "0:800", "--by-path",
                     "--csv", str(csv_path), "--plot", str(png_path)])
    out, _err = capsys.readouterr()
    assert code == 0
    assert "0-320" in out and "960 kmalloc: skbuff_small_head" in out and "leak check: clean" in out
    assert len(csv_path.read_text().splitlines()) == 802
    assert png_path.read_bytes()[:4] == b"\x89PNG"
