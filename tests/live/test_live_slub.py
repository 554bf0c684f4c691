"""SLUB's lists: /sys/kernel/slab/<cache>/ on the running kernel against the model.

The sysfs parsing and the model's prediction from given starting numbers run everywhere (the
expected numbers are worked out by hand from mm/slub.c's rules, and are what the 6.18.44 host showed for
the same sequence); the rounds on the running kernel are marked ``live`` and skip where root, tun,
tracefs or /sys/kernel/slab are missing.
"""

from __future__ import annotations

import os

import pytest

from skbsim.live.slub import read_slab_file, read_slab_sysfs, slub_requirements
from skbsim.live.tap import our_namespaces
from skbsim.profile import load_profile
from skbsim.validate import SLUB_CACHES, model_slub_round, slub_count, validate_slub

# ---------------------------------------------------------------- always run


def test_sysfs_numbers_are_read_as_the_kernel_prints_them(tmp_path):
    cache = tmp_path / "kmalloc-8k"
    cache.mkdir()
    (cache / "slabs").write_text("29 N0=29\n")
    (cache / "partial").write_text("12 N0=12\n")
    (cache / "cpu_slabs").write_text("4 N0=4\n")
    (cache / "slabs_cpu_partial").write_text("6(3) C1=6(3)\n")  # objects(slabs): the slab count
    (cache / "order").write_text("3\n")
    assert read_slab_file("kmalloc-8k", "slabs", str(tmp_path)) == 29
    assert read_slab_file("kmalloc-8k", "slabs_cpu_partial", str(tmp_path)) == 3
    assert read_slab_sysfs("kmalloc-8k", ("partial", "cpu_slabs", "order"), str(tmp_path)) == {
        "partial": 12, "cpu_slabs": 4, "order": 3}


def test_slub_count():
    # kmalloc-8k: 22 free objects after the shrink, 4 per slab, 3 on a CPU list: 22 + (2*3 + 3) * 4 + 2 = 60.
    assert slub_count(4, 3, 22) == 60


def test_model_round_from_the_numbers_of_a_shrunk_kmalloc_8k():
    # kmalloc-8k on the 2-CPU 6.18 host: 4 objects per order-3 slab, cpu_partial 6 -> cpu_partial_slabs
    # DIV_ROUND_UP(12, 4) = 3, min_partial ilog2(8192) / 2 = 6.  After the shrink: 25 slabs, 12 on the node
    # list holding 26 objects (22 free), 13 full.  60 frames on CPU 1:
    # writes: the 22 free objects, then 38 from ceil(38 / 4) = 10 new slabs: 35 slabs, none on the node list,
    #   CPU 1's slab the last one (2 objects left on its freelist); objects = total_objects = 140.
    # reads, in order: the 12 old slabs, full again, each go onto CPU 1's list at their first free; every
    #   4th push finds 3 there and drains them to the node (never empty: they hold others' objects): 9 on
    #   the node, then new slab 1's push drains the last 3 (12 on the node).  New slabs 1..9 (full; their
    #   frees empty them on the CPU list): pushes 4 and 7 drain 3 empty slabs each, and the node holds 12 >=
    #   6, so all 6 are discarded; 7, 8, 9 stay on CPU 1's list.  Slab 10 is CPU 1's slab.
    #   29 slabs (116 objects); 12 on the node list with their 26 objects, 22 free; cpu_slabs 1 + 3.
    # The 6.18.44 host showed exactly these numbers in three rounds out of three.
    shrunk = {"slabs": 25, "total_objects": 100, "objects": 78, "partial": 12, "objects_partial": 26,
              "cpu_slabs": 0, "slabs_cpu_partial": 0}
    before, written, read = model_slub_round(load_profile("6.18"), 2, "kmalloc-8k", 1, shrunk, 60)
    assert {key: before[key] for key in shrunk} == shrunk
    assert {key: written[key] for key in shrunk} == {"slabs": 35, "total_objects": 140, "objects": 140, "partial": 0,
                                                     "objects_partial": 0, "cpu_slabs": 1, "slabs_cpu_partial": 0}
    assert {key: read[key] for key in shrunk} == {"slabs": 29, "total_objects": 116, "objects": 94, "partial": 12,
                                                  "objects_partial": 26, "cpu_slabs": 4, "slabs_cpu_partial": 3}


def test_model_round_does_not_depend_on_how_the_old_objects_are_spread():
    # sysfs gives the objects the node's partial slabs hold, not which slab holds how many; once every
    # free object is used up, any spread gives the same numbers.  skbuff_small_head on the host (576 bytes,
    # 14 per slab): 9 partial slabs holding 57 objects, spread evenly (7 x 6 + 2 x 7 + ...), or lopsided.
    shrunk = {"slabs": 9, "total_objects": 126, "objects": 57, "partial": 9, "objects_partial": 57,
              "cpu_slabs": 0, "slabs_cpu_partial": 0}
    profile = load_profile("host") if os.path.exists("/sys/kernel/btf/vmlinux") else None
    if profile is None or profile.SKB_SMALL_HEAD_CACHE_SIZE != 576:
        pytest.skip("needs the 6.18 host's 576-byte skbuff_small_head")
    count = slub_count(14, 8, 126 - 57 + 14)
    even = model_slub_round(profile, 2, "skbuff_small_head", 0, shrunk, count)
    lopsided = model_slub_round(profile, 2, "skbuff_small_head", 0, shrunk, count, spread=[13, 13, 13, 12, 1, 1, 1, 1, 2])
    assert even is not None and lopsided == even


def test_model_round_refuses_slabs_of_another_order():
    shrunk = {"slabs": 3, "total_objects": 10, "objects": 10, "partial": 0, "objects_partial": 0,
              "cpu_slabs": 0, "slabs_cpu_partial": 0}
    assert model_slub_round(load_profile("6.18"), 2, "kmalloc-8k", 0, shrunk, 10) is None


# ---------------------------------------------------------------- live

MISSING = slub_requirements([name for name, _ in SLUB_CACHES])
live = pytest.mark.skipif(bool(MISSING), reason="the live SLUB check needs: " + "; ".join(MISSING))


@pytest.mark.live
@live
def test_live_lists_agree_with_the_model():
    before = os.sched_getaffinity(0)
    result = validate_slub(load_profile("host"))
    assert os.sched_getaffinity(0) == before
    assert not our_namespaces(os.getpid())
    assert not result["disagreements"], result["disagreements"]
    for cache in result["caches"]:
        assert cache["geometry_agrees"], cache["cache"]
        # Most rounds agree in every number (the rest of the machine may use the cache meanwhile) and the
        # rounds are not trivial: the reads leave more slabs than the shrink did, which an allocator that
        # frees every empty slab at once would not.
        assert 2 * cache["agreeing_rounds"] > len(cache["rounds"]), cache
        for row in cache["rounds"]:
            if row["agree"]:
                assert row["live"]["read"]["slabs"] > row["live"]["shrunk"]["slabs"]
