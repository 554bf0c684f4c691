"""Profile files that start from a built-in (base = ...), and the advice for an unknown kernel."""

import re
from pathlib import Path

import pytest

from skbsim.alloc import explain_alloc
from skbsim.errors import InputError
from skbsim.profile import load_profile

DOC = Path(__file__).resolve().parent.parent / "docs" / "profiles.md"


def _write(tmp_path, text, name="mine.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_the_docs_example_loads_and_overrides_only_what_it_names(tmp_path):
    text = re.search(r"```toml\n(.+?)```", DOC.read_text(), re.S).group(1)
    profile = load_profile(_write(tmp_path, text, "6.10-frags45.toml"))
    base = load_profile("6.9")
    assert (profile.name, profile.release) == ("6.10-frags45", "6.10.14")
    # skb_shared_info grows by 16 bytes a frag: 320 + 16 * (45 - 17) = 768 (SKB_DATA_ALIGN keeps it)
    assert (profile.MAX_SKB_FRAGS, profile.sizeof_skb_shared_info, profile.SHINFO_SIZE) == (45, 768, 768)
    assert profile.feature("napi_alloc_skb_gfp") is False
    for key in ("PAGE_SIZE", "sizeof_sk_buff", "NAPI_SKB_CACHE_SIZE", "LL_MAX_HEADER", "MAX_HEADER"):
        assert getattr(profile, key) == getattr(base, key), key
    changed = {k for k in base.features if base.features[k] != profile.features[k]}
    assert changed == {"napi_alloc_skb_gfp"}
    # napi_alloc_skb(100) on it: 100 + NET_SKB_PAD 64 = 164 <= SKB_WITH_OVERHEAD(1024) = 1024 - 768 = 256,
    # still a 1K fragment: truesize SKB_TRUESIZE(256) = 256 + 256 + 768 = 1280
    result = explain_alloc(profile, "napi_alloc_skb", 100)
    assert (result["path"], result["truesize"]) == ("page_frag_1k", 1280)
    assert profile.sources["MAX_SKB_FRAGS"].endswith("6.10-frags45.toml")


def test_a_base_file_may_name_nothing_but_its_base(tmp_path):
    profile = load_profile(_write(tmp_path, '[profile]\nbase = "6.12"\n', "just.toml"))
    assert profile.name == "just" and profile.release == load_profile("6.12").release


@pytest.mark.parametrize("text, words", [
    ('[profile]\nbase = "6.10"\n', "it names a built-in profile"),
    ('[profile]\nbase = "6.9"\n[constants]\nPAGE_SIZ = 4096\n', "unknown key 'PAGE_SIZ'"),
    ('[profile]\nbase = "6.9"\n[features]\nudp_consume = "maybe"\n', "udp_consume must be one of"),
    ('[profile]\nbase = "6.9"\n[constants]\nMAX_SKB_FRAGS = 99\n', "MAX_SKB_FRAGS = 99 is outside"),
    ('[profile]\nbase = "6.9"\n[extra]\nx = 1\n', "unknown table [extra]"),
])
def test_bad_base_files(tmp_path, text, words):
    with pytest.raises(InputError, match=re.escape(words)):
        load_profile(_write(tmp_path, text))


@pytest.mark.parametrize("spec, nearest", [("6.10", "6.9"), ("6.13.2", "6.12"), ("7.0", "6.18"), ("7.3", "7.1"),
                                           ("5.4", None)])
def test_an_unknown_kernel_says_what_to_use(spec, nearest):
    with pytest.raises(InputError) as caught:
        load_profile(spec)
    message = str(caught.value)
    assert "6.1, 6.9, 6.12, 6.18" in message and "'host'" in message and "docs/profiles.md" in message
    assert (f'base = "{nearest}"' if nearest else 'base = "<a built-in>"') in message
