"""Reader of a kernel build configuration (.config), plain or gzip.

The file is what ``make oldconfig`` writes (scripts/kconfig/confdata.c,
conf_write): one symbol per line,

* ``CONFIG_X=y`` / ``=m`` / ``=n``        tristate or bool
* ``CONFIG_X="text"``                      string, with ``\\"`` and ``\\\\`` escapes
* ``CONFIG_X=123`` / ``=-1`` / ``=0x1f``   int or hex
* ``# CONFIG_X is not set``                the symbol is off (we store ``"n"``)

plus blank lines and ``#`` comments.  Anything else is reported with the
file name and line number, because a silently skipped line could hide the
very option (CONFIG_MAX_SKB_FRAGS, ...) a profile is derived from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping

from skbsim.errors import InputError
from skbsim.files import MAX_CONFIG_BYTES, read_bounded_gunzip, shown

ConfigValue = str | int

_ASSIGNMENT = re.compile(r"(CONFIG_[A-Za-z0-9_]+)=(.*)")
_NOT_SET = re.compile(r"# (CONFIG_[A-Za-z0-9_]+) is not set")
_DECIMAL = re.compile(r"-?[0-9]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")


class KernelConfig(Mapping[str, ConfigValue]):
    """Symbol -> value, keys spelled as in the file (``CONFIG_...``).

    Tristates are the strings ``"y"``, ``"m"``, ``"n"``; numbers are ints
    (hex values converted); strings have their quotes and escapes removed.
    Lookups with :meth:`value`, :meth:`enabled` and :meth:`integer` accept
    the name with or without the ``CONFIG_`` prefix.
    """

    __slots__ = ("source", "_values")

    def __init__(self, values: dict[str, ConfigValue], source: str = "<memory>") -> None:
        self._values = dict(values)
        self.source = source

    def __getitem__(self, key: str) -> ConfigValue:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"KernelConfig({self.source!r}, {len(self._values)} symbols)"

    @staticmethod
    def _key(name: str) -> str:
        return name if name.startswith("CONFIG_") else "CONFIG_" + name

    def value(self, name: str, default: ConfigValue | None = None) -> ConfigValue | None:
        """The value of *name*, or *default* when the file does not mention it."""
        return self._values.get(self._key(name), default)

    def enabled(self, name: str) -> bool:
        """True for ``=y`` or ``=m``; an absent symbol counts as off, as in Kconfig."""
        return self._values.get(self._key(name)) in ("y", "m")

    def integer(self, name: str, default: int | None = None) -> int:
        """An int/hex symbol; InputError if it is absent (without default) or not a number."""
        value = self._values.get(self._key(name))
        if value is None:
            if default is None:
                raise InputError(f"{self.source}: {self._key(name)} is not set")
            return default
        if not isinstance(value, int):
            raise InputError(f"{self.source}: {self._key(name)}={value!r} is not a number")
        return value


def _parse_value(raw: str) -> ConfigValue | None:
    if raw in ("y", "m", "n"):
        return raw
    if _HEX.fullmatch(raw):
        return int(raw, 16)
    if _DECIMAL.fullmatch(raw):
        return int(raw, 10)
    quoted = _QUOTED.fullmatch(raw)
    if quoted:
        return _ESCAPE.sub(r"\1", quoted.group(1))
    return None


def parse_config_text(text: str, source: str = "<memory>") -> KernelConfig:
    """Parse the text of a .config; *source* names it in error messages."""
    values: dict[str, ConfigValue] = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        not_set = _NOT_SET.fullmatch(stripped)
        if not_set:
            values[not_set.group(1)] = "n"
            continue
        if stripped.startswith("#"):
            continue
        assignment = _ASSIGNMENT.fullmatch(stripped)
        if not assignment:
            raise InputError(f"{source}:{line_number}: malformed config line: {line!r}")
        value = _parse_value(assignment.group(2))
        if value is None:
            raise InputError(f"{source}:{line_number}: malformed value for "
                             f"{assignment.group(1)}: {assignment.group(2)!r}")
        # A later assignment wins, as it does when Kconfig reads the file.
        values[assignment.group(1)] = value
    return KernelConfig(values, source)


def parse_config(path: str) -> KernelConfig:
    """Parse a .config file at *path*; gzip is detected by its magic bytes."""
    path = str(path)
    data = read_bounded_gunzip(path, MAX_CONFIG_BYTES, "kernel config ")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"kernel config {shown(path)}: not a text config file (byte {exc.start} is not UTF-8)") from None
    return parse_config_text(text, path)


def host_config_candidates(release: str | None = None) -> list[str]:
    """Where the running kernel's config is usually found, most direct first."""
    release = release or os.uname().release
    return [
        "/proc/config.gz",
        f"/boot/config-{release}",
        f"/lib/modules/{release}/config",
        f"/lib/modules/{release}/build/.config",
    ]


def host_config() -> KernelConfig:
    """The configuration of the kernel this process runs on."""
    candidates = host_config_candidates()
    for path in candidates:
        if os.path.exists(path):
            return parse_config(path)
    raise InputError("kernel config of the running kernel not found (tried "
                     + ", ".join(candidates) + "; /proc/config.gz needs CONFIG_IKCONFIG_PROC)")
