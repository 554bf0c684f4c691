"""Tests of skbsim.live.kconfig with hand-made configuration files."""

from __future__ import annotations

import gzip
import os

import pytest

from skbsim.errors import InputError
from skbsim.live.kconfig import host_config, host_config_candidates, parse_config, parse_config_text

SAMPLE = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.18.44 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
CONFIG_NET=y
CONFIG_TUN=m
# CONFIG_WLAN is not set
CONFIG_MAX_SKB_FRAGS=17
CONFIG_X86_L1_CACHE_SHIFT=6
CONFIG_PHYSICAL_START=0x1000000
CONFIG_LOCALVERSION="-say \\"hi\\" \\\\o/"
CONFIG_NEGATIVE=-1

CONFIG_NET_IPIP=n
"""


def test_values_are_typed():
    config = parse_config_text(SAMPLE, "sample")
    assert config["CONFIG_NET"] == "y"
    assert config["CONFIG_TUN"] == "m"
    assert config["CONFIG_WLAN"] == "n"        # from "# ... is not set"
    assert config["CONFIG_NET_IPIP"] == "n"
    assert config["CONFIG_MAX_SKB_FRAGS"] == 17
    assert config["CONFIG_PHYSICAL_START"] == 0x1000000
    assert config["CONFIG_NEGATIVE"] == -1
    assert config["CONFIG_CC_VERSION_TEXT"] == "gcc (Debian 12.2.0-14) 12.2.0"
    # The file has  "-say \"hi\" \\o/"  -> escapes removed.
    assert config["CONFIG_LOCALVERSION"] == '-say "hi" \\o/'
    assert len(config) == 10


def test_lookup_helpers():
    config = parse_config_text(SAMPLE, "sample")
    assert config.enabled("NET") and config.enabled("CONFIG_TUN")
    assert not config.enabled("WLAN")
    assert not config.enabled("HYPERV_NET")        # absent counts as off
    assert config.value("HYPERV_NET") is None
    assert config.integer("MAX_SKB_FRAGS") == 17
    assert config.integer("CONFIG_MAX_SKB_FRAGS") == 17
    assert config.integer("ABSENT", default=5) == 5
    with pytest.raises(InputError, match="sample: CONFIG_ABSENT is not set"):
        config.integer("ABSENT")
    with pytest.raises(InputError, match="CONFIG_NET='y' is not a number"):
        config.integer("NET")


def test_later_assignment_wins():
    assert parse_config_text("CONFIG_A=1\nCONFIG_A=2\n")["CONFIG_A"] == 2


@pytest.mark.parametrize("line_text", [
    "CONFIG_A",              # no value
    "CONFIG_A=yes",          # not a tristate, number or string
    'CONFIG_A="unterminated',
    "A=y",                   # not a CONFIG_ symbol
    "CONFIG_A=0xZZ",
    "garbage",
])
def test_malformed_lines_name_file_and_line(line_text):
    text = "# header\nCONFIG_OK=y\n" + line_text + "\n"
    with pytest.raises(InputError, match=r"^cfg:3: malformed"):
        parse_config_text(text, "cfg")


def test_plain_and_gzip_files(tmp_path):
    plain = tmp_path / "config"
    plain.write_text(SAMPLE)
    packed = tmp_path / "config.gz"
    packed.write_bytes(gzip.compress(SAMPLE.encode()))
    assert dict(parse_config(str(plain))) == dict(parse_config(str(packed)))
    assert parse_config(str(packed)).source == str(packed)


def test_file_errors(tmp_path):
    with pytest.raises(InputError, match="absent: no such file"):
        parse_config(str(tmp_path / "absent"))
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"\x1f\x8b" + b"\0" * 8)
    with pytest.raises(InputError, match="broken.gz: corrupt gzip data"):
        parse_config(str(broken))
    binary = tmp_path / "binary"
    binary.write_bytes(b"CONFIG_A=y\n\xff\xfe\n")
    with pytest.raises(InputError, match="binary: not a text config file"):
        parse_config(str(binary))
    bad = tmp_path / "bad"
    bad.write_text("CONFIG_A=y\n\nCONFIG_B=what\n")
    with pytest.raises(InputError, match=r"bad:3: malformed value for CONFIG_B: 'what'"):
        parse_config(str(bad))


def test_candidates_name_the_release():
    assert "/boot/config-1.2.3" in host_config_candidates("1.2.3")


@pytest.mark.skipif(not any(os.path.exists(p) for p in host_config_candidates()),
                    reason="no config of the running kernel on this machine")
def test_host_config_has_the_basics():
    config = host_config()
    assert config.enabled("NET")
    assert config.integer("MAX_SKB_FRAGS", default=17) >= 17
