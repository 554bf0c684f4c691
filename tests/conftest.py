"""Shared fixtures: kernels that check for leaks when a test ends."""

import os

import pytest

# `skbsim run` without the fast engine's compiled cache compiles it in the foreground here, never in
# a background process that would outlive the tests (skbsim.fast.cache.prepare)
os.environ.setdefault("SKBSIM_COMPILE", "foreground")

from skbsim.kernel import Kernel
from skbsim.net.napi import napi_struct, net_device


@pytest.fixture
def kernel():
    """A fresh 6.9 kernel on one CPU; the test fails if anything leaked."""
    k = Kernel("6.9")
    yield k
    k.assert_no_leaks()


@pytest.fixture
def napi():
    return napi_struct(net_device("eth0"))
