"""The running kernel as a profile: ``--kernel host``.

The rules (features, and the inputs no file on the machine states) come from
the built-in profile of the newest release at or below the running one; the
inputs come from the machine itself:

- version: ``uname -r``;
- LL_MAX_HEADER, MAX_HEADER, MAX_SKB_FRAGS, MAX_PAGE_ORDER, L1_CACHE_BYTES:
  the kernel's .config (/proc/config.gz, else /boot/config-$(uname -r)),
  by the rules of skbsim.profile.config_inputs;
- sizeof(struct sk_buff), sizeof(struct skb_shared_info): the kernel's BTF
  (/sys/kernel/btf/vmlinux), read by skbsim.live.btf;
- PAGE_SIZE: ``sysconf(_SC_PAGESIZE)`` (and the config must agree);
- L1_CACHE_BYTES where the architecture does not fix it from the config:
  cpu0's L1 coherency_line_size in sysfs, else 64;
- NET_IP_ALIGN: by ``uname -m`` (0 on x86, arm64 and ppc64, else 2);
- the feature ``slub_cpu_partial``: CONFIG_SLUB_CPU_PARTIAL of the same .config.
"""

from __future__ import annotations

import os
import re

from skbsim.errors import InputError
from skbsim.live.btf import DEFAULT_VMLINUX_BTF, BtfFile
from skbsim.live.kconfig import host_config, parse_config
from skbsim.profile import Profile, builtin_names, config_features, config_inputs, load_profile, net_ip_align_for_arch

SYSFS_L1_LINE = "/sys/devices/system/cpu/cpu0/cache/index0/coherency_line_size"
VMLINUX_BTF = DEFAULT_VMLINUX_BTF
DEFAULT_L1_CACHE_BYTES = 64

#: uname -m spellings that name the same architecture as a config does.
_MACHINE_ARCH = {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "i386": "i386", "i686": "i386",
                 "ppc64le": "ppc64", "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64",
                 "loongarch64": "loongarch64"}


def release_version(release: str) -> tuple[int, int]:
    """(major, minor) of a uname release such as '6.18.44-1-amd64'."""
    match = re.match(r"(\d+)\.(\d+)", release)
    if not match:
        raise InputError(f"cannot read a kernel version from the release {release!r}")
    return int(match.group(1)), int(match.group(2))


def rules_release_for(release: str) -> str:
    """The built-in profile whose rules a kernel of this release uses: the newest at or below it."""
    version = release_version(release)
    candidates = [name for name in builtin_names() if release_version(name) <= version]
    if not candidates:
        raise InputError(
            f"kernel {release} is older than every built-in profile ({', '.join(builtin_names())}); "
            "write a profile .toml for it"
        )
    return max(candidates, key=release_version)


def read_l1_line_size(path: str = SYSFS_L1_LINE) -> int | None:
    """cpu0's L1 coherency line size from sysfs, or None where sysfs does not say."""
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def host_profile(
    config_path: str | None = None,
    *,
    release: str | None = None,
    machine: str | None = None,
    btf_path: str | None = None,
    page_size: int | None = None,
    l1_path: str | None = None,
) -> Profile:
    """The profile of the running kernel (every argument overrides what the machine says, for tests)."""
    btf_path = btf_path or VMLINUX_BTF
    l1_path = l1_path or SYSFS_L1_LINE
    uname = os.uname()
    release = release or uname.release
    machine = machine or uname.machine
    rules = rules_release_for(release)
    base = load_profile(rules)
    config = parse_config(config_path) if config_path else host_config()
    page_size = page_size or os.sysconf("SC_PAGE_SIZE")

    constants, sources, config_arch = config_inputs(base, config, page_size=page_size)
    arch = _MACHINE_ARCH.get(machine, machine)
    if config_arch is not None and config_arch != arch:
        raise InputError(f"{config.source}: a config for {config_arch}, but this machine is {machine}")
    if constants.get("PAGE_SIZE", page_size) != page_size:
        raise InputError(
            f"{config.source}: says PAGE_SIZE {constants['PAGE_SIZE']}, but the running kernel has {page_size} "
            "(is it this kernel's config?)"
        )
    constants["PAGE_SIZE"] = page_size
    sources["PAGE_SIZE"] = "sysconf(_SC_PAGESIZE)" + (
        f"; {sources['PAGE_SIZE']}" if "PAGE_SIZE" in sources else ""
    )

    constants["NET_IP_ALIGN"], reason = net_ip_align_for_arch(machine)
    sources["NET_IP_ALIGN"] = f"uname -m {reason}"

    line = read_l1_line_size(l1_path)
    seen = f"{l1_path} says {line}" if line is not None else f"{l1_path} not readable"
    if "L1_CACHE_BYTES" in constants:
        # The compile-time constant is what the kernel computes with; sysfs is a cross-check.
        sources["L1_CACHE_BYTES"] += f" ({seen})"
    elif line is not None:
        constants["L1_CACHE_BYTES"] = line
        sources["L1_CACHE_BYTES"] = seen
    else:
        constants["L1_CACHE_BYTES"] = DEFAULT_L1_CACHE_BYTES
        sources["L1_CACHE_BYTES"] = f"{seen}: {DEFAULT_L1_CACHE_BYTES}"

    sizes = BtfFile(btf_path).struct_sizes(["sk_buff", "skb_shared_info"])
    constants["sizeof_sk_buff"] = sizes["sk_buff"]
    sources["sizeof_sk_buff"] = f"BTF {btf_path}: struct sk_buff"
    expected = constants["sizeof_skb_shared_info"]
    if sizes["skb_shared_info"] == expected:
        note = f" (as {base.name}'s size for MAX_SKB_FRAGS {constants['MAX_SKB_FRAGS']} predicts)"
    else:
        note = f" ({base.name}'s size for MAX_SKB_FRAGS {constants['MAX_SKB_FRAGS']} would be {expected})"
    constants["sizeof_skb_shared_info"] = sizes["skb_shared_info"]
    sources["sizeof_skb_shared_info"] = f"BTF {btf_path}: struct skb_shared_info{note}"

    for key, _value in base.describe_inputs():
        sources.setdefault(key, f"built-in profile {base.name} (not visible on the machine)")
    return base.derive(
        origin=f"host {release}",
        constants=constants,
        features=config_features(config),
        sources=sources,
        name="host",
        release=f"{release}, rules of {base.name}",
        rules_from=f"built-in profile {base.name}, the newest at or below {release}: {base.rules_from}",
        arch=arch,
        description=f"the running kernel {release} ({machine}); its rules are those of {base.name}",
    )
