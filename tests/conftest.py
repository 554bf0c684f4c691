"""Shared fixtures: kernels that check for leaks when a test ends."""

import pytest

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
