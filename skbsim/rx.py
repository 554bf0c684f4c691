"""One frame through a driver: the library behind ``skbsim rx``.

Opens one RX queue of the chosen driver on a fresh kernel, lets the NIC
write one frame, polls once (NAPI budget 64) and reports the skb as the
driver hands it to the stack - after eth_type_trans(), where the kernel's
napi_gro_receive_entry tracepoint sees it (napi_gro_frags_entry: after the
Ethernet header's pull), before GRO - together with what the driver did
with its ring buffers.  Then the skb is freed, the queue closed and the
leak check run.
"""

from __future__ import annotations

from skbsim.drivers import get_driver
from skbsim.drivers.base import frame_header, make_frame, parse_opt_assignments
from skbsim.drivers.pp_common import queue_page_pool_stats
from skbsim.errors import InputError
from skbsim.kernel import Kernel
from skbsim.net.napi import NAPI_POLL_WEIGHT, napi_list_del, napi_schedule, napi_struct, net_device
from skbsim.net.skbuff import kfree_skb, skb_headroom
from skbsim.profile import Profile, load_profile
from skbsim.traffic.frame import MAX_FRAME_LEN, MIN_FRAME_LEN


def parse_frame_len(text: str | int) -> int:
    """A frame length on the wire without FCS: 14..65535."""
    try:
        value = int(text, 0) if isinstance(text, str) else int(text)
    except ValueError:
        raise InputError(f"--frame-len {text!r} is not an integer") from None
    if not MIN_FRAME_LEN <= value <= MAX_FRAME_LEN:
        raise InputError(
            f"--frame-len {value} is outside {MIN_FRAME_LEN}..{MAX_FRAME_LEN} "
            "(an Ethernet header at least, 65535 at most)"
        )
    return value


def _skb_view(skb) -> dict:
    """The fields napi_gro_receive_entry prints, plus where the skb's memory came from."""
    return {
        "len": skb.len,
        "data_len": skb.data_len,
        "truesize": skb.truesize,
        "nr_frags": skb.nr_frags,
        "head_frag": skb.head_frag,
        "protocol": f"0x{skb.protocol:04x}",
        "mac_header": skb.mac_header,
        "headroom": skb_headroom(skb),
        "queue_mapping": skb.queue_mapping,
        "path": skb.path,
        "head_source": skb.head_source,
        "head_size": skb.head_size,
        "skb_from": skb.skb_from,
        "pfmemalloc": skb.pfmemalloc,
        "frags": [{"size": frag.size, "page_order": frag.page.order} for frag in skb.shinfo.frags],
    }


def receive_one(
    profile: Profile | str,
    driver_name: str,
    options: dict[str, str] | list[str] | None,
    frame_len: int,
    header: bytes | None = None,
) -> dict:
    """Run one frame through ``driver_name`` and describe the result as a plain dict.

    ``options`` is a dict of option strings or a list of ``key=value``
    strings (as --opt gives them).  ``header`` is the frame's leading bytes;
    None means a synthetic Ethernet + IPv4 + UDP header.
    """
    if isinstance(profile, str):
        profile = load_profile(profile)
    driver = get_driver(driver_name)
    if isinstance(options, list):
        options = parse_opt_assignments(options)
    frame_len = parse_frame_len(frame_len)
    frame = make_frame(frame_len, header)

    kernel = Kernel(profile)
    dev = net_device("eth0")
    napi = napi_struct(dev)
    queue = driver.open_queue(kernel, dev, napi, options or {})
    result = {
        "kernel": profile.name,
        "release": profile.release,
        "driver": driver.name,
        "options": dict(queue.config),
        "frame_len": frame_len,
        "frame_header": frame_header(frame)[:64].hex(),
    }

    before = queue.stats.as_dict()
    accepted = driver.nic_receive(kernel, queue, frame)
    delivered = []
    # The skb where napi_gro_receive_entry / napi_gro_frags_entry see it; at the hand-off for a driver
    # without NAPI (netif_rx()), which never reaches GRO.
    entries = []
    napi.gro.entry = lambda skb: entries.append(_skb_view(skb))

    budget = napi.weight or NAPI_POLL_WEIGHT
    work = 0
    if accepted:
        napi_schedule(napi, napi.cpu)  # the interrupt puts the NAPI instance on the CPU's poll list
        work = driver.poll(kernel, queue, budget, delivered.append)
        if work < budget:
            napi_list_del(napi)
    views = entries or [_skb_view(skb) for skb in delivered]
    stats = queue.stats.delta(before)
    result["ok"] = bool(delivered)
    result["poll_returned"] = work
    if views:
        result.update(views[0])
        result["driver_path"] = queue.last_path
    else:
        result["reason"] = _why_not(queue, stats, accepted)
    result["buffers"] = {
        "used": stats["buffers_used"],
        "reused": stats["buffers_reused"],
        "released": stats["buffers_released"],
        "copied": stats["buffers_copied"],
        "bytes_copied": stats["bytes_copied"],
        "pages_allocated_by_poll": stats["pages_allocated"],
    }
    result["stats"] = queue.stats.as_dict()
    pool_stats = queue_page_pool_stats(queue)
    if pool_stats is not None:
        result["page_pool"] = pool_stats

    with kernel.softirq(napi.cpu):
        for skb in delivered:
            kfree_skb(kernel, skb)
    driver.close_queue(kernel, queue)
    result["warnings"] = list(kernel.warnings)
    report = kernel.leak_check()
    result["leak_check"] = "clean" if report.clean else report.summary()
    return result


#: Why tun_get_user() refuses a write, by errno (drivers/net/tun.c).
_TUN_ERRORS = {
    "EINVAL": "shorter than an Ethernet header",
    "EMSGSIZE": "IFF_NAPI_FRAGS takes at most ETH_MAX_MTU - NET_SKB_PAD - NET_IP_ALIGN bytes in at most "
                "MAX_SKB_FRAGS + 1 pieces",
    "EAGAIN": "the send buffer is full and the write does not block",
    "ENOMEM": "no memory for the skb",
    "ENOBUFS": "no memory for the skb",
}


def _why_not(queue, stats: dict, accepted: bool) -> str:
    if stats["oversize_drops"]:
        return f"the NIC dropped the frame: longer than the queue accepts (rxmax {queue.config.get('rxmax')})"
    if stats["ring_drops"]:
        return "the NIC dropped the frame: not enough free descriptors"
    if stats["skb_alloc_failures"]:
        return "the driver dropped the frame: no skb could be allocated"
    if stats["buffer_alloc_failures"]:
        return "the driver dropped the frame: no replacement buffer could be allocated"
    errors = getattr(queue, "write_errors", None)
    if not accepted and errors:
        # tun: the user task's write() failed; nothing reached a NIC
        name = next(name for name, count in errors.items() if count)
        return f"tun refused the write with {name} ({_TUN_ERRORS.get(name, 'see drivers/net/tun.c')})"
    if not accepted:
        return "the NIC dropped the frame"
    return "the driver did not deliver the frame"
