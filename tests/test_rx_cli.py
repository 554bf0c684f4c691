"""``skbsim rx``: JSON fields against hand-derived values, human output, and bad input (exit 2).

Values (6.9 unless said; derivations in tests/test_driver_ice.py and test_driver_copybreak.py):
  ice build_skb MTU 1500, 60 B:  len 46, truesize frame_sz 2048 + 256 = 2304, buffer reused (flipped)
  ice legacy, 1514 B:            head 1280 + one 2048 frag of 1514 - 42 = 1472 -> 3328
  ice build_skb MTU 9000, 9014:  4352 + 2 * 4096 = 12544, data_len 3072 + 2870 = 5942
  copybreak, 60 B:               napi_alloc_skb(60) -> 1K fragment, 1280; the buffer copied and kept
"""

import json

import pytest

from skbsim.cli import main
from skbsim.rx import receive_one


def run_json(capsys, *argv):
    assert main(["rx", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ice_build_skb_60(capsys):
    r = run_json(capsys, "--kernel", "6.9", "--driver", "ice", "--opt", "rx=build_skb", "--frame-len", "60")
    assert (r["ok"], r["len"], r["data_len"], r["truesize"], r["nr_frags"], r["head_frag"]) == (True, 46, 0, 2304, 0, True)
    assert (r["path"], r["driver_path"]) == ("napi_build_skb", "ice_build_skb")
    assert r["buffers"]["used"] == 1 and r["buffers"]["reused"] == 1 and r["buffers"]["released"] == 0
    assert r["leak_check"] == "clean"
    # the ring's defaults: ICE_DFLT_NUM_RX_DESC 2048 descriptors, 1536-byte buffers
    assert (r["options"]["ring"], r["options"]["rx_buf_len"]) == (2048, 1536)


def test_ice_legacy_1514(capsys):
    r = run_json(capsys, "--driver", "ice", "--opt", "rx=legacy", "--frame-len", "1514")
    assert (r["len"], r["data_len"], r["truesize"], r["nr_frags"]) == (1500, 1472, 3328, 1)
    assert (r["path"], r["head_source"], r["driver_path"]) == ("page_frag_1k", "page_frag_1k", "ice_construct_skb")
    assert (r["buffers"]["copied"], r["buffers"]["bytes_copied"]) == (0, 42)


def test_ice_jumbo(capsys):
    r = run_json(capsys, "--driver", "ice", "--opt", "rx=build_skb", "--opt", "mtu=9000", "--frame-len", "9014")
    assert (r["len"], r["data_len"], r["truesize"], r["nr_frags"]) == (9000, 5942, 12544, 2)
    assert r["buffers"]["used"] == 3 and r["buffers"]["reused"] == 3


def test_ice_frame_too_long_for_mtu_1500(capsys):
    r = run_json(capsys, "--driver", "ice", "--opt", "rx=build_skb", "--frame-len", "9014")
    # rxmax 1536: the NIC drops it; not an input error
    assert r["ok"] is False and "rxmax 1536" in r["reason"]
    assert r["leak_check"] == "clean"


def test_copybreak_60(capsys):
    r = run_json(capsys, "--driver", "copybreak", "--frame-len", "60")
    assert (r["len"], r["truesize"], r["driver_path"]) == (46, 1280, "copybreak_copy_skb")
    assert r["buffers"]["copied"] == 1 and r["buffers"]["reused"] == 1


def test_human_output(capsys):
    assert main(["rx", "--driver", "ice", "--opt", "rx=build_skb", "--frame-len", "1514"]) == 0
    out = capsys.readouterr().out
    assert "len 1500, data_len 0, truesize 2304, nr_frags 0, head_frag 1" in out
    assert "1 used, 1 reused, 0 released" in out
    assert "leak check: clean" in out


def test_library_accepts_header_bytes():
    # An IPv6/TCP frame in legacy mode: eth_get_headlen = 14 + 40 + 20 = 74 bytes copied,
    # frag 0 = 1514 - 74 = 1440
    header = bytes(12) + b"\x86\xdd" + bytes((0x60, 0, 0, 0, 0, 0, 6, 64)) + bytes(32) + bytes(12) + b"\x50" + bytes(7)
    r = receive_one("6.9", "ice", {"rx": "legacy"}, 1514, header)
    assert (r["data_len"], r["truesize"], r["protocol"]) == (1440, 3328, "0x86dd")
    assert r["buffers"]["bytes_copied"] == 74


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--driver", "ice", "--frame-len", "13"], "--frame-len 13 is outside 14..65535"),
        (["--driver", "ice", "--frame-len", "65536"], "--frame-len 65536 is outside 14..65535"),
        (["--driver", "ice", "--frame-len", "big"], "--frame-len 'big' is not an integer"),
        (["--driver", "e1000", "--frame-len", "60"], "unknown driver 'e1000'"),
        (["--driver", "ice", "--opt", "speed=10", "--frame-len", "60"], "unknown option 'speed' for driver ice"),
        (["--driver", "ice", "--opt", "mtu", "--frame-len", "60"], "--opt 'mtu' is not key=value"),
        (["--driver", "ice", "--opt", "mtu=1", "--opt", "mtu=2", "--frame-len", "60"], "--opt mtu given twice"),
        (["--driver", "ice", "--opt", "mtu=70000", "--frame-len", "60"], "option mtu=70000 is outside 68..9702"),
        (["--driver", "copybreak", "--opt", "rx_buf=9000", "--frame-len", "60"], "rx_buf=9000 is above 3712"),
        (["--kernel", "5.4", "--driver", "ice", "--frame-len", "60"], "unknown kernel '5.4'"),
        (["--driver", "ice"], "the following arguments are required: --frame-len"),
        (["--kernel", "6.9", "--kernel", "6.18", "--driver", "ice", "--frame-len", "60"],
         "--kernel given twice ('6.9' and '6.18')"),
        (["--driver", "ice", "--driver", "tun", "--frame-len", "60"], "--driver given twice"),
        (["--driver", "ice", "--frame-len", ""], "--frame-len: empty value"),
        (["--kernel", "6.10", "--driver", "ice", "--frame-len", "60"], "unknown kernel '6.10'"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, message):
    assert main(["rx", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_ice_default_is_the_same_as_run_and_said_in_help(capsys):
    """rx and run both receive ice frames with legacy-rx unless --opt rx= says otherwise (one default)."""
    r = run_json(capsys, "--driver", "ice", "--frame-len", "1514")
    assert r["options"]["rx"] == "legacy" and r["driver_path"] == "ice_construct_skb"
    assert main(["run", "--quiet", "--json", "--count", "20", "--engine", "reference"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["options"] == {"rx": "legacy"}
    for command in ("rx", "run"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "rx=legacy" in " ".join(capsys.readouterr().out.split())


def test_kernel_config(tmp_path, capsys):
    # CONFIG_MAX_SKB_FRAGS=45 on 6.9 makes skb_shared_info 320 + 16 * (45 - 17) = 768 bytes, so a
    # 1514-byte legacy frame's 1K-fragment header skb cannot hold it: SKB_WITH_OVERHEAD(1024) = 1024 - 768
    # = 256 < 64 + 256, and the head comes from kmalloc instead (truesize grows).
    config = tmp_path / "frags.config"
    config.write_text("CONFIG_X86_64=y\nCONFIG_X86=y\nCONFIG_MAX_SKB_FRAGS=45\n")
    plain = run_json(capsys, "--driver", "ice", "--frame-len", "1514")
    wide = run_json(capsys, "--driver", "ice", "--frame-len", "1514", "--kernel-config", str(config))
    assert plain["head_source"] == "page_frag_1k" and wide["head_source"] != "page_frag_1k"
    assert wide["kernel"].startswith("6.9+frags.config")


def test_tun_refusal_names_the_errno(capsys):
    # IFF_NAPI_FRAGS: ETH_MAX_MTU 65535 - NET_SKB_PAD 64 - NET_IP_ALIGN 0 = 65471 bytes at most
    r = run_json(capsys, "--driver", "tun", "--opt", "napi=1", "--opt", "frags=1", "--frame-len", "65535")
    assert r["ok"] is False and r["reason"].startswith("tun refused the write with EMSGSIZE")
    assert "NIC" not in r["reason"]
