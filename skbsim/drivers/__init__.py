"""Modelled NIC drivers and their registry.

``DRIVERS`` maps a driver's name to its :class:`~skbsim.drivers.base.Driver`
(options with defaults and help, and the four functions of the interface
described in :mod:`skbsim.drivers.base`).  ``get_driver(name)`` looks one up
for user input.
"""

from __future__ import annotations

from skbsim.drivers import copybreak, ice, ntb, tun
from skbsim.drivers.base import Driver
from skbsim.errors import InputError

DRIVERS: dict[str, Driver] = {
    ice.DRIVER.name: ice.DRIVER,
    copybreak.DRIVER.name: copybreak.DRIVER,
    tun.DRIVER.name: tun.DRIVER,
    ntb.DRIVER.name: ntb.DRIVER,
}


def get_driver(name: str) -> Driver:
    """The registered driver called ``name``; InputError naming the known ones otherwise."""
    driver = DRIVERS.get(name)
    if driver is None:
        raise InputError(f"unknown driver {name!r} (known: {', '.join(sorted(DRIVERS))})")
    return driver
