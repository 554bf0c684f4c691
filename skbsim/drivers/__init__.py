"""Modelled NIC drivers and their registry.

``DRIVERS`` maps a driver's name to its :class:`~skbsim.drivers.base.Driver`
(options with defaults and help, and the four functions of the interface
described in :mod:`skbsim.drivers.base`).  ``get_driver(name)`` looks one up
for user input.
"""

from __future__ import annotations

from collections.abc import Callable

from skbsim.drivers import bnxt, copybreak, gve, ice, libeth, mana, mlx5, ntb, tun, virtio_net
from skbsim.drivers.base import Driver, parse_opt_assignments
from skbsim.errors import InputError
from skbsim.profile import Profile

__all__ = ["DEFAULT_OPTIONS", "DRIVERS", "Driver", "defaults_help", "get_driver", "parse_opt_assignments",
           "with_default_options"]

DRIVERS: dict[str, Driver] = {
    ice.DRIVER.name: ice.DRIVER,
    copybreak.DRIVER.name: copybreak.DRIVER,
    tun.DRIVER.name: tun.DRIVER,
    ntb.DRIVER.name: ntb.DRIVER,
    virtio_net.DRIVER.name: virtio_net.DRIVER,
    mana.DRIVER.name: mana.DRIVER,
    libeth.DRIVER.name: libeth.DRIVER,
    mlx5.DRIVER.name: mlx5.DRIVER,
    bnxt.DRIVER.name: bnxt.DRIVER,
    gve.DRIVER.name: gve.DRIVER,
}


#: Options skbsim sets where the user names no value: ice receives legacy-rx (the legacy-rx private
#: flag on), the path through __napi_alloc_skb() this project models first.  The kernel's own
#: default, and the driver's here, is build_skb: --opt rx=build_skb.  ``skbsim run``, ``skbsim rx``
#: and the library API (skbsim.run, skbsim.receive) all apply these.
DEFAULT_OPTIONS: dict[str, dict[str, str]] = {"ice": {"rx": "legacy"}}

#: Releases whose driver has no such option value: skbsim's default stays out there (ice's page_pool
#: form, profile feature ice_rx_buffers = "libeth", has no legacy-rx flag).
DEFAULTS_APPLY: dict[str, Callable[[Profile], bool]] = {"ice": ice.ice_has_legacy_rx}


def with_default_options(driver: str, options: dict[str, str] | None,
                         profile: Profile | None = None) -> dict[str, str]:
    """``options`` over skbsim's defaults for ``driver`` (see DEFAULT_OPTIONS) where ``profile``'s driver
    has them (DEFAULTS_APPLY; without a profile, always)."""
    applies = DEFAULTS_APPLY.get(driver)
    defaults = DEFAULT_OPTIONS.get(driver, {}) if profile is None or applies is None or applies(profile) else {}
    return {**defaults, **(options or {})}


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
