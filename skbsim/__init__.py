"""skbsim: an executable model of Linux receive-side sk_buff allocation.

The library API (docs/api.md), each function returning what the command's
``--json`` prints:

- :func:`allocate` - one allocation explained (``skbsim alloc``);
- :func:`receive` - one frame through a driver (``skbsim rx``);
- :func:`run` - traffic through a driver, NAPI and a UDP socket (``skbsim run``);
- :func:`tcp` - a scripted peer against one receiving TCP socket (``skbsim tcp``);
- :func:`length_sweep` - one allocation function over a range of lengths on
  several kernels (``skbsim sweep``);
- :func:`profile_names`, :func:`load_profile` - the kernels;
- :class:`Kernel` (the model itself) and :class:`InputError` (bad input);
- ``__version__``.

Names are loaded on first use, so ``import skbsim`` stays cheap.
"""

__all__ = ["InputError", "Kernel", "__version__", "allocate", "length_sweep", "load_profile", "profile_names",
           "receive", "run", "tcp"]

_API = {"allocate": "skbsim.api", "receive": "skbsim.api", "run": "skbsim.api", "tcp": "skbsim.api", "length_sweep": "skbsim.api",
        "profile_names": "skbsim.api", "load_profile": "skbsim.profile", "Kernel": "skbsim.kernel",
        "InputError": "skbsim.errors"}


def _version() -> str:
    """The installed package's version: pyproject.toml is the one place it is written."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("skbsim")
    except PackageNotFoundError:  # a checkout that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        value = _version()
    elif name in _API:
        import importlib

        value = getattr(importlib.import_module(_API[name]), name)
    else:
        raise AttributeError(f"module 'skbsim' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
