"""Config- and arch-dependent inputs, derived profiles, the host profile from fake inputs, bad input.

The expected values are the kernel's rules applied by hand:
  include/linux/netdevice.h  LL_MAX_HEADER: HYPERV_NET built in -> 128; else WLAN (bool) or AX25
                             (y or m) -> 96, or 128 with MAC80211_MESH; else 32.
                             MAX_HEADER: + 48 when NET_IPIP, NET_IPGRE, IPV6_SIT or IPV6_TUNNEL is y or m.
  include/linux/skbuff.h     MAX_SKB_FRAGS: 6.1 max(16, 65536 / PAGE_SIZE + 1); 6.5+ CONFIG_MAX_SKB_FRAGS
                             (17 when unset); shinfo = 48 + 16 * MAX_SKB_FRAGS on 64-bit.
  asm/processor.h            NET_IP_ALIGN 0 on x86, arm64, ppc64; 2 elsewhere.
  asm/cache.h                L1: x86 from CONFIG_X86_L1_CACHE_SHIFT, arm64/riscv 64, ppc64 128, s390 256.
  include/linux/mmzone.h     largest order: 6.1 CONFIG_ARCH_FORCE_MAX_ORDER - 1 (11 - 1 unset);
                             6.4+ CONFIG_ARCH_FORCE_MAX_ORDER (10 unset).
"""

from __future__ import annotations

import gzip
import os
import struct

import pytest

from skbsim import cli
from skbsim.errors import InputError
from skbsim.kernel import Kernel
from skbsim.live import host
from skbsim.live.kconfig import parse_config_text
from skbsim.profile import (
    FEATURES,
    INPUTS,
    builtin_names,
    l1_cache_bytes_from_config,
    ll_max_header_from_config,
    load_profile,
    max_header_from_config,
    max_page_order_from_config,
    max_skb_frags_from_config,
    net_ip_align_for_arch,
    page_size_from_config,
    parse_profile,
)


def config(text: str):
    return parse_config_text(text, "test.config")


# -- LL_MAX_HEADER and MAX_HEADER ---------------------------------------------------------

LL_CASES = [
    ("", 32),
    ("CONFIG_HYPERV_NET=y\n", 128),
    # =m defines CONFIG_HYPERV_NET_MODULE, not CONFIG_HYPERV_NET: no effect
    ("CONFIG_HYPERV_NET=m\n", 32),
    ("CONFIG_HYPERV_NET=m\nCONFIG_WLAN=y\n", 96),
    ("CONFIG_WLAN=y\n# CONFIG_MAC80211_MESH is not set\n", 96),
    ("CONFIG_WLAN=y\nCONFIG_MAC80211_MESH=y\n", 128),
    # AX25 counts as a module too (IS_ENABLED)
    ("CONFIG_AX25=m\n", 96),
    ("CONFIG_AX25=y\nCONFIG_MAC80211_MESH=y\n", 128),
    # MESH alone (impossible in Kconfig, but the header only looks at WLAN/AX25 first)
    ("CONFIG_MAC80211_MESH=y\n", 32),
    # HYPERV_NET=y wins over everything
    ("CONFIG_HYPERV_NET=y\nCONFIG_WLAN=y\n", 128),
]


@pytest.mark.parametrize("text,expected", LL_CASES)
def test_ll_max_header(text, expected):
    assert ll_max_header_from_config(config(text))[0] == expected


@pytest.mark.parametrize("symbol", ["NET_IPIP", "NET_IPGRE", "IPV6_SIT", "IPV6_TUNNEL"])
@pytest.mark.parametrize("state,added", [("y", 48), ("m", 48), ("n", 0)])
def test_max_header_tunnels(symbol, state, added):
    assert max_header_from_config(config(f"CONFIG_{symbol}={state}\n"), 96)[0] == 96 + added


def test_max_header_ignores_gre_demux():
    # NET_IPGRE_DEMUX is not NET_IPGRE (the host here has the former without the latter)
    assert max_header_from_config(config("CONFIG_NET_IPGRE_DEMUX=y\n"), 32)[0] == 32


# -- MAX_SKB_FRAGS, PAGE_SIZE, arch inputs, MAX_PAGE_ORDER --------------------------------


def test_max_skb_frags_config_rule():
    assert max_skb_frags_from_config(config(""), "config", 4096)[0] == 17
    assert max_skb_frags_from_config(config("CONFIG_MAX_SKB_FRAGS=45\n"), "config", 4096)[0] == 45
    with pytest.raises(InputError, match="test.config: CONFIG_MAX_SKB_FRAGS=46 is outside 17..45"):
        max_skb_frags_from_config(config("CONFIG_MAX_SKB_FRAGS=46\n"), "config", 4096)


@pytest.mark.parametrize("page_size,expected", [(4096, 17), (16384, 16), (65536, 16)])
def test_max_skb_frags_page_size_rule(page_size, expected):
    # max(16, 65536/4096 + 1 = 17) = 17; max(16, 5) = 16; max(16, 2) = 16.  The config is ignored.
    assert max_skb_frags_from_config(config("CONFIG_MAX_SKB_FRAGS=45\n"), "page_size", page_size)[0] == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("CONFIG_PAGE_SHIFT=14\n", 16384),
        ("CONFIG_PAGE_SIZE_64KB=y\n", 65536),
        ("CONFIG_ARM64_16K_PAGES=y\n", 16384),
        ("CONFIG_ARM64_64K_PAGES=y\n", 65536),
        ("CONFIG_X86=y\n", 4096),
        ("CONFIG_ARM64=y\n", None),
    ],
)
def test_page_size(text, expected):
    found = page_size_from_config(config(text))
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize(
    "arch,expected", [("x86_64", 0), ("arm64", 0), ("aarch64", 0), ("ppc64le", 0), ("riscv64", 2), ("s390x", 2),
                      ("arm", 2)]
)
def test_net_ip_align(arch, expected):
    assert net_ip_align_for_arch(arch)[0] == expected


@pytest.mark.parametrize(
    "text,arch,expected",
    [
        ("CONFIG_X86_L1_CACHE_SHIFT=6\n", "x86_64", 64),
        ("CONFIG_X86_L1_CACHE_SHIFT=7\n", "x86_64", 128),
        ("", "arm64", 64),
        ("", "riscv64", 64),
        ("", "ppc64", 128),
        ("CONFIG_PPC_E500MC=y\n", "ppc64", 64),
        ("", "s390x", 256),
        ("", "x86_64", None),  # x86 without the symbol: unknown, keep the base profile's
    ],
)
def test_l1_cache_bytes(text, arch, expected):
    found = l1_cache_bytes_from_config(config(text), arch)
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize(
    "text,rule,expected",
    [("", "exclusive", 10), ("CONFIG_ARCH_FORCE_MAX_ORDER=14\n", "exclusive", 13),
     ("", "inclusive", 10), ("CONFIG_ARCH_FORCE_MAX_ORDER=13\n", "inclusive", 13)],
)
def test_max_page_order(text, rule, expected):
    assert max_page_order_from_config(config(text), rule)[0] == expected


ARM64_64K = """\
CONFIG_ARM64=y
CONFIG_ARM64_64K_PAGES=y
CONFIG_PAGE_SIZE_64KB=y
CONFIG_PAGE_SHIFT=16
CONFIG_ARCH_FORCE_MAX_ORDER=13
CONFIG_MAX_SKB_FRAGS=17
CONFIG_WLAN=y
# CONFIG_MAC80211_MESH is not set
CONFIG_IPV6_SIT=m
"""


def test_with_config_arm64_64k(tmp_path):
    path = tmp_path / "arm64.config"
    path.write_text(ARM64_64K)
    profile = load_profile("6.12", str(path))
    # arm64: NET_IP_ALIGN 0, L1 64; 64K pages; WLAN without MESH -> 96, SIT -> 96 + 48 = 144;
    # MAX_PAGE_ORDER 13 -> KMALLOC_MAX_SIZE = 1 << (13 + 16)
    assert (profile.arch, profile.PAGE_SIZE, profile.NET_IP_ALIGN, profile.L1_CACHE_BYTES) == ("arm64", 65536, 0, 64)
    assert (profile.LL_MAX_HEADER, profile.MAX_HEADER, profile.MAX_PAGE_ORDER) == (96, 144, 13)
    assert profile.KMALLOC_MAX_SIZE == 1 << 29
    # MAX_TCP_HEADER = ALIGN(128 + 144, 64) = 320; GRO_MAX_HEAD_PAD = 272 + 64 + 0 = 336;
    # small head H(max(320, 336)) = 384 + 320 = 704
    assert (profile.MAX_TCP_HEADER, profile.GRO_MAX_HEAD_PAD, profile.SKB_SMALL_HEAD_CACHE_SIZE) == (320, 336, 704)
    assert profile.name == "6.12+arm64.config"
    assert "CONFIG_IPV6_SIT=m" in profile.sources["MAX_HEADER"]
    # The rules stay 6.12's
    assert profile.features == load_profile("6.12").features


def test_with_config_6_1_64k_pages_changes_frags_and_shinfo(tmp_path):
    path = tmp_path / "arm64.config"
    path.write_text(ARM64_64K.replace("CONFIG_ARCH_FORCE_MAX_ORDER=13", "CONFIG_ARCH_FORCE_MAX_ORDER=14"))
    profile = load_profile("6.1", str(path))
    # 6.1: MAX_SKB_FRAGS max(16, 2) = 16, CONFIG_MAX_SKB_FRAGS ignored; shinfo 48 + 16 * 16 = 304;
    # ARCH_FORCE_MAX_ORDER 14 is exclusive there: largest order 13
    assert (profile.MAX_SKB_FRAGS, profile.sizeof_skb_shared_info, profile.MAX_PAGE_ORDER) == (16, 304, 13)


def test_with_config_frags45_x86(tmp_path):
    path = tmp_path / "x86.config.gz"
    path.write_bytes(gzip.compress(b"CONFIG_X86_64=y\nCONFIG_X86=y\nCONFIG_X86_L1_CACHE_SHIFT=6\n"
                                   b"CONFIG_MAX_SKB_FRAGS=45\n"))
    profile = load_profile("6.18", str(path))
    # shinfo 48 + 16 * 45 = 768; nothing else set: LL 32, MAX_HEADER 32;
    # MAX_TCP_HEADER = ALIGN(160, 64) = 192; GRO_MAX_HEAD_PAD = 160 + 64 = 224; H(224) = 256 + 768 = 1024,
    # a power of two, so the cache is 1024 + 64 = 1088
    assert (profile.sizeof_skb_shared_info, profile.MAX_HEADER) == (768, 32)
    assert (profile.SKB_SMALL_HEAD_SIZE, profile.SKB_SMALL_HEAD_CACHE_SIZE) == (1024, 1088)


DEBIAN_CONFIG = "/usr/src/linux-config-6.12/config.amd64_none_amd64.xz"


@pytest.mark.skipif(not os.path.exists(DEBIAN_CONFIG), reason=f"{DEBIAN_CONFIG} not installed (linux-config-6.12)")
def test_debian_config_gives_the_builtin_inputs(tmp_path):
    import lzma

    path = tmp_path / "debian.config"
    path.write_bytes(lzma.decompress(open(DEBIAN_CONFIG, "rb").read()))
    # Debian amd64: WLAN=y, MAC80211_MESH=y (128), tunnels as modules (176), X86_L1_CACHE_SHIFT 6
    derived, builtin = load_profile("6.12", str(path)), load_profile("6.12")
    assert derived.describe_inputs() == builtin.describe_inputs()


# -- derived profiles and TOML round trips ------------------------------------------------


@pytest.mark.parametrize("name", builtin_names())
def test_to_toml_round_trip(name):
    profile = load_profile(name)
    again = parse_profile(profile.to_toml("a header\nover two lines"), "round trip")
    assert again.describe_inputs() == profile.describe_inputs()
    assert again.features == profile.features
    assert again.derivations == profile.derivations
    assert (again.name, again.release, again.rules_from, again.arch) == (
        profile.name, profile.release, profile.rules_from, profile.arch)


def test_derive_keeps_base_and_records_sources():
    base = load_profile("6.12")
    derived = base.derive(origin="t", name="x", constants={"MAX_SKB_FRAGS": 30}, sources={"MAX_SKB_FRAGS": "me"})
    # 320 + 16 * (30 - 17) = 528
    assert (derived.MAX_SKB_FRAGS, derived.sizeof_skb_shared_info) == (30, 528)
    assert derived.sources == {"MAX_SKB_FRAGS": "me", "sizeof_skb_shared_info": "override"}
    assert (base.MAX_SKB_FRAGS, base.sizeof_skb_shared_info, base.sources) == (17, 320, {})
    again = parse_profile(derived.to_toml(), "again")
    assert again.sources == derived.sources and again.describe_inputs() == derived.describe_inputs()


def test_toml_strings_with_odd_characters_round_trip():
    profile = load_profile("6.9").derive(origin="t", description='quote " backslash \\ tab \t del \x7f é')
    assert parse_profile(profile.to_toml(), "again").description == profile.description


# -- the host profile, from fake inputs (no root, no live kernel needed) ------------------


def btf_blob(structs: dict[str, int]) -> bytes:
    """A BTF file (Documentation/bpf/btf.rst) holding only named STRUCT records without members."""
    strings = b"\0"
    types = b""
    for name, size in structs.items():
        offset = len(strings)
        strings += name.encode() + b"\0"
        types += struct.pack("<III", offset, 4 << 24, size)  # kind 4 = STRUCT, vlen 0
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


@pytest.fixture
def fake_host(tmp_path):
    btf = tmp_path / "vmlinux"
    btf.write_bytes(btf_blob({"sk_buff": 232, "skb_shared_info": 320, "page": 64}))
    l1 = tmp_path / "coherency_line_size"
    l1.write_text("64\n")
    cfg = tmp_path / "config"
    cfg.write_text("CONFIG_ARM64=y\nCONFIG_ARM64_16K_PAGES=y\nCONFIG_MAX_SKB_FRAGS=17\n"
                   "CONFIG_HYPERV_NET=y\nCONFIG_NET_IPIP=m\n")
    return {"config_path": str(cfg), "btf_path": str(btf), "l1_path": str(l1), "machine": "aarch64",
            "page_size": 16384}


@pytest.mark.parametrize(
    "release,rules",
    [("6.18.44-fc-v669", "6.18"), ("6.10.3", "6.9"), ("6.13.0-rc1", "6.12"), ("7.2.1", "7.1"), ("7.0.5", "6.18"),
     ("6.1.0", "6.1"), ("6.8.12", "6.1")],
)
def test_host_rules_are_the_newest_at_or_below(fake_host, release, rules):
    profile = host.host_profile(release=release, **fake_host)
    assert profile.features == load_profile(rules).features
    assert profile.release == f"{release}, rules of {rules}"
    assert profile.rules_from.startswith(f"built-in profile {rules}, the newest at or below {release}")


def test_host_older_than_every_builtin(fake_host):
    with pytest.raises(InputError, match="kernel 5.15.0 is older than every built-in profile"):
        host.host_profile(release="5.15.0", **fake_host)


def test_host_inputs_from_fake_machine(fake_host):
    profile = host.host_profile(release="6.18.3", **fake_host)
    # arm64: NET_IP_ALIGN 0 and L1 64; HYPERV_NET=y -> 128, IPIP=m -> 176; 16K pages; BTF sizes
    assert [(k, v) for k, v in profile.describe_inputs() if k in (
        "PAGE_SIZE", "L1_CACHE_BYTES", "NET_IP_ALIGN", "LL_MAX_HEADER", "MAX_HEADER", "sizeof_sk_buff",
        "sizeof_skb_shared_info", "MAX_PAGE_ORDER")] == [
        ("PAGE_SIZE", 16384), ("L1_CACHE_BYTES", 64), ("NET_IP_ALIGN", 0), ("LL_MAX_HEADER", 128),
        ("MAX_HEADER", 176), ("MAX_PAGE_ORDER", 10), ("sizeof_sk_buff", 232), ("sizeof_skb_shared_info", 320)]
    assert (profile.name, profile.arch) == ("host", "arm64")
    assert set(profile.sources) == set(INPUTS)
    assert profile.sources["KMALLOC_MIN_SIZE"].startswith("built-in profile 6.18")


def test_host_from_host_toml_round_trip(fake_host, tmp_path):
    profile = host.host_profile(release="6.12.9", **fake_host)
    path = tmp_path / "host.toml"
    path.write_text(profile.to_toml("from-host"))
    again = load_profile(str(path))
    assert again.describe_inputs() == profile.describe_inputs()
    assert again.features == profile.features and again.sources == profile.sources
    assert again.derivations == profile.derivations


def test_host_config_for_another_arch(fake_host):
    with pytest.raises(InputError, match="a config for arm64, but this machine is x86_64"):
        host.host_profile(release="6.18.1", **{**fake_host, "machine": "x86_64"})


def test_host_config_with_another_page_size(fake_host):
    with pytest.raises(InputError, match="says PAGE_SIZE 16384, but the running kernel has 4096"):
        host.host_profile(release="6.18.1", **{**fake_host, "page_size": 4096})


def test_host_btf_without_the_structs(fake_host, tmp_path):
    blob = tmp_path / "other"
    blob.write_bytes(btf_blob({"page": 64}))
    with pytest.raises(InputError, match=f"{blob}: struct not found in BTF: sk_buff, skb_shared_info"):
        host.host_profile(release="6.18.1", **{**fake_host, "btf_path": str(blob)})


# -- bad input through the command line: exit code 2, one line naming the file ------------


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


VALID = load_profile("6.12").to_toml()


@pytest.mark.parametrize(
    "text,message",
    [
        ("[profile\nname = 1", "malformed TOML"),
        (VALID.replace('max_order_rule = "inclusive"\n', ""), "[features] max_order_rule is missing"),
        (VALID.replace("MAX_SKB_FRAGS = 17", "MAX_SKB_FRAGS = 46"), "MAX_SKB_FRAGS = 46 is outside 16..45"),
        (VALID.replace('max_skb_frags_rule = "config"', 'max_skb_frags_rule = "page_size"').replace(
            "PAGE_SIZE = 4096", "PAGE_SIZE = 65536"), "max_skb_frags_rule 'page_size' gives"),
        (VALID + "\n[extras]\nx = 1\n", "unknown table [extras]"),
        (VALID + "\n[sources]\nBOGUS = \"x\"\n", "[sources] has unknown key 'BOGUS'"),
    ],
)
def test_bad_profile_file(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = run_cli(capsys, "profile", "show", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"skbsim: error: {path}: ") and message in err


@pytest.mark.parametrize("command", [["profile", "show", "6.12"], ["alloc", "--kernel", "6.12", "--len", "100"],
                                     ["sweep", "--kernel", "6.12", "--len", "0:10"]])
def test_unreadable_config(tmp_path, capsys, command):
    missing = tmp_path / "missing.config"
    code, out, err = run_cli(capsys, *command, "--kernel-config", str(missing))
    assert code == 2 and out == ""
    assert err == f"skbsim: error: kernel config {missing}: no such file\n"


def test_directory_as_config(tmp_path, capsys):
    code, _out, err = run_cli(capsys, "profile", "show", "6.12", "--kernel-config", str(tmp_path))
    assert code == 2 and err.startswith(f"skbsim: error: kernel config {tmp_path}: is a directory") and err.count("\n") == 1


def test_malformed_config_line(tmp_path, capsys):
    path = tmp_path / "bad.config"
    path.write_text("CONFIG_WLAN=y\nthis is not a config line\n")
    code, _out, err = run_cli(capsys, "profile", "show", "6.18", "--kernel-config", str(path))
    assert code == 2 and err.startswith(f"skbsim: error: {path}:2: malformed config line") and err.count("\n") == 1


def test_btf_without_structs_on_the_command_line(fake_host, tmp_path, capsys, monkeypatch):
    blob = tmp_path / "other"
    blob.write_bytes(btf_blob({"page": 64}))
    monkeypatch.setattr(host, "VMLINUX_BTF", str(blob))
    host_config = tmp_path / "host.config"
    host_config.write_text("CONFIG_MAX_SKB_FRAGS=17\n")
    try:
        host.rules_release_for(os.uname().release)
    except InputError as err:
        pytest.skip(f"this machine's kernel has no built-in rules: {err}")
    code, out, err = run_cli(capsys, "profile", "show", "host", "--kernel-config", str(host_config))
    assert code == 2 and out == ""
    assert err == f"skbsim: error: {blob}: struct not found in BTF: sk_buff, skb_shared_info\n"


def test_profile_show_lists_everything(capsys):
    code, out, _err = run_cli(capsys, "profile", "show", "6.18", "--json")
    import json

    shown = json.loads(out)
    assert code == 0
    assert [row["name"] for row in shown["inputs"]] == list(INPUTS)
    assert [row["name"] for row in shown["features"]] == list(FEATURES)
    by_name = {row["name"]: row for row in shown["derived"]}
    # 6.18: H(max(320, 368)) = 704
    assert by_name["SKB_SMALL_HEAD_CACHE_SIZE"]["value"] == 704
    assert "GRO_MAX_HEAD_PAD" in by_name["SKB_SMALL_HEAD_SIZE"]["formula"]


def test_profile_list(capsys):
    code, out, _err = run_cli(capsys, "profile", "list")
    assert code == 0
    for name in builtin_names() + ["host"]:
        assert f"│ {name} " in out


@pytest.mark.parametrize("line,expected", [
    ("CONFIG_SLUB_CPU_PARTIAL=y\n", True),
    ("# CONFIG_SLUB_CPU_PARTIAL is not set\n", False),
    ("", True),  # not mentioned: the release's value
])
def test_slub_cpu_partial_from_config(tmp_path, line, expected):
    # mm/Kconfig: SLUB_CPU_PARTIAL is a bool; off, a cache's cpu_partial is 0 (set_cpu_partial()).
    path = tmp_path / "slub.config"
    path.write_text("CONFIG_X86_64=y\nCONFIG_X86=y\n" + line)
    profile = load_profile("6.18", str(path))
    assert profile.features["slub_cpu_partial"] is expected
    assert Kernel(profile).skbuff_cache.cpu_partial == (52 if expected else 0)
