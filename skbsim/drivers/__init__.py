"""Modelled NIC drivers and their registry.

``DRIVERS`` maps a driver's name to its :class:`~skbsim.drivers.base.Driver`
(options with defaults and help, and the four functions of the interface
described in :mod:`skbsim.drivers.base`).  ``get_driver(name)`` looks one up
for user input.
"""

from __future__ import annotations

from skbsim.drivers import copybreak, ice, ntb, tun
from skbsim.drivers.base import Driver, parse_opt_assignments
from skbsim.errors import InputError

__all__ = ["DEFAULT_OPTIONS", "DRIVERS", "Driver", "defaults_help", "get_driver", "parse_opt_assignments",
           "with_default_options"]

DRIVERS: dict[str, Driver] = {
    ice.DRIVER.name: ice.DRIVER,
    copybreak.DRIVER.name: copybreak.DRIVER,
    tun.DRIVER.name: tun.DRIVER,
    ntb.DRIVER.name: ntb.DRIVER,
}


#: Options skbsim sets where the user names no value: ice receives legacy-rx (the legacy-rx private
#: flag on), the path through __napi_alloc_skb() this project models first.  The kernel's own
#: default, and the driver's here, is build_skb: --opt rx=build_skb.  ``skbsim run``, ``skbsim rx``
#: and the library API (skbsim.run, skbsim.receive) all apply these.
DEFAULT_OPTIONS: dict[str, dict[str, str]] = {"ice": {"rx": "legacy"}}


def with_default_options(driver: str, options: dict[str, str] | None) -> dict[str, str]:
    """``options`` over skbsim's defaults for ``driver`` (see DEFAULT_OPTIONS)."""
    return {**DEFAULT_OPTIONS.get(driver, {}), **(options or {})}


def defaults_help(driver: str) -> str:
    """The --help words for DEFAULT_OPTIONS."""
    chosen = DEFAULT_OPTIONS.get(driver)
    if not chosen:
        return ""
    return " ".join(f"{key}={value}" for key, value in chosen.items())


def get_driver(name: str) -> Driver:
    """The registered driver called ``name``; InputError naming the known ones otherwise."""
    driver = DRIVERS.get(name)
    if driver is None:
        raise InputError(f"unknown driver {name!r} (known: {', '.join(sorted(DRIVERS))})")
    return driver
