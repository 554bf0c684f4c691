"""The step language and the --syn option: parsing and bad input."""

import pytest

from skbsim.errors import InputError
from skbsim.tcp_steps import DEFAULT_SYN, Step, SynOptions, parse_steps, parse_syn


def test_steps():
    steps = parse_steps(["send:100x40@127000", "read", "read:10", "readeach", "hold", "release", "wait", "wait:5",
                         "send:1"])
    assert steps == [Step("send", payload=100, count=40, frame_len=127000), Step("read"), Step("read", nbytes=10),
                     Step("readeach"), Step("hold"), Step("release"), Step("wait"), Step("wait", ms=5),
                     Step("send", payload=1)]
    assert [s.text() for s in steps] == ["send:100x40@127000", "read", "read:10", "readeach", "hold", "release",
                                         "wait", "wait:5", "send:1"]


@pytest.mark.parametrize("texts,message", [
    ([], "no steps given"),
    (["send:0"], r"P .* 0 is outside 1\.\.65495"),
    (["send:65496"], r"outside 1\.\.65495"),
    (["send:100x0"], r"N \(segments\) 0 is outside 1\.\.100000"),
    (["send:100@53"], r"F .* 53 is outside 54\.\.1048576"),
    (["send:100@1048577"], "outside 54..1048576"),
    (["send"], "is not send:P"),
    (["send:1x2x3"], "is not send:P"),
    (["read:"], "read:B needs a byte count"),
    (["read:0"], r"B \(bytes to read\) 0 is outside"),
    (["wait:x"], "wait:MS needs a number"),
    (["wait:3600001"], "outside 0..3600000"),
    (["fly"], "unknown step 'fly'"),
    (["hold:1"], "unknown step"),
    (["release"], "'release' without a 'hold'"),
    (["hold", "hold"], "already held"),
    (["hold", "read"], "while the socket lock is held"),
])
def test_bad_steps(texts, message):
    with pytest.raises(InputError, match=message):
        parse_steps(texts)


def test_syn():
    assert parse_syn("mss=1460,wscale=7,ts=0,sack=0") == DEFAULT_SYN
    assert parse_syn("ts=1") == SynOptions(ts=True)
    assert parse_syn("wscale=none,mss=536") == SynOptions(mss=536, wscale=None)
    assert parse_syn(DEFAULT_SYN.text()) == DEFAULT_SYN


@pytest.mark.parametrize("text,message", [
    ("mss", "is not KEY=VALUE"),
    ("window=3", "unknown option 'window'"),
    ("mss=87", r"mss=87 is outside 88\.\.65535"),
    ("wscale=15", r"outside 0\.\.14"),
    ("ts=2", "must be 0 or 1"),
    ("mss=100,mss=200", "given twice"),
    ("mss=x", "is not a number"),
])
def test_bad_syn(text, message):
    with pytest.raises(InputError, match=message):
        parse_syn(text)
