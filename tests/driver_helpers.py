"""What the driver tests do to a queue: open it, feed it frames, poll, free what came up."""

from skbsim.drivers.base import make_frame
from skbsim.net.napi import napi_struct, net_device
from skbsim.net.skbuff import kfree_skb


def open_ring(driver, kernel, **options):
    dev = net_device("eth0")
    return driver.open_queue(kernel, dev, napi_struct(dev), {k: str(v) for k, v in options.items()})


def receive(driver, kernel, ring, *lengths, budget=64):
    """Let the NIC take each frame, poll once, return the skbs delivered."""
    for length in lengths:
        driver.nic_receive(kernel, ring, make_frame(length))
    skbs = []
    driver.poll(kernel, ring, budget, skbs.append)
    return skbs


def free(kernel, skbs):
    with kernel.softirq():
        for skb in skbs:
            kfree_skb(kernel, skb)


def shape(skb):
    return (skb.len, skb.data_len, skb.truesize, skb.nr_frags, skb.head_frag)
