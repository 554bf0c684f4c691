"""Tests of skbsim.live.btf against hand-built BTF blobs and the host's vmlinux BTF."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess

import pytest

from skbsim.errors import InputError
from skbsim.live.btf import BtfFile, struct_size, struct_sizes

VMLINUX = "/sys/kernel/btf/vmlinux"


def _info(kind: int, vlen: int = 0, kind_flag: int = 0) -> int:
    # btf_type.info: vlen in bits 0-15, kind in bits 24-28, kind_flag in bit 31.
    return (kind_flag << 31) | (kind << 24) | vlen


class _BlobBuilder:
    """Lays out a BTF file byte by byte: header, type records, string table."""

    def __init__(self, order: str = "<") -> None:
        self.order = order
        self.types = bytearray()
        self.strings = bytearray(b"\0")  # offset 0 is the empty name

    def name(self, text: str) -> int:
        offset = len(self.strings)
        self.strings += text.encode() + b"\0"
        return offset

    def record(self, name: str, kind: int, vlen: int, size_or_type: int, trailer: bytes = b"") -> None:
        name_off = self.name(name) if name else 0
        self.types += struct.pack(self.order + "III", name_off, _info(kind, vlen), size_or_type)
        self.types += trailer

    def u32s(self, *values: int) -> bytes:
        return struct.pack(self.order + f"{len(values)}I", *values)

    def build(self, hdr_len: int = 24, magic: int = 0xEB9F, version: int = 1) -> bytes:
        header = struct.pack(self.order + "HBBIIIII", magic, version, 0, hdr_len,
                             0, len(self.types), len(self.types), len(self.strings))
        header += b"\0" * (hdr_len - len(header))  # a longer (future) header is zero-filled
        return header + bytes(self.types) + bytes(self.strings)


def _every_kind_blob(order: str = "<", hdr_len: int = 24) -> bytes:
    """One record of every kind, with the struct we look for placed last.

    If the reader got any kind's trailing-data size wrong, it would lose step
    before reaching 'tail' and could not report its size.
    """
    b = _BlobBuilder(order)
    b.record("int", 1, 0, 4, b.u32s(32))                       # 1 INT: +4
    b.record("", 2, 0, 1)                                      # 2 PTR -> int
    b.record("", 3, 0, 0, b.u32s(1, 1, 4))                     # 3 ARRAY int[4]: +12
    b.record("pair", 4, 2, 8,                                  # 4 STRUCT: +2x12
             b.u32s(b.name("a"), 1, 0) + b.u32s(b.name("b"), 1, 32))
    b.record("u", 5, 1, 4, b.u32s(b.name("x"), 1, 0))          # 5 UNION: +1x12
    b.record("color", 6, 2, 4,                                 # 6 ENUM: +2x8
             b.u32s(b.name("RED"), 0) + b.u32s(b.name("BLUE"), 1))
    b.record("fwd", 7, 0, 0)                                   # 7 FWD
    b.record("myint", 8, 0, 1)                                 # 8 TYPEDEF
    b.record("", 9, 0, 1)                                      # 9 VOLATILE
    b.record("", 10, 0, 1)                                     # 10 CONST
    b.record("", 11, 0, 2)                                     # 11 RESTRICT
    b.record("", 13, 3, 1,                                     # 12 FUNC_PROTO: +3x8
             b.u32s(0, 1) + b.u32s(0, 2) + b.u32s(0, 1))
    b.record("f", 12, 0, 12)                                   # 13 FUNC
    b.record("v", 14, 0, 1, b.u32s(1))                         # 14 VAR: +4
    b.record(".data", 15, 2, 8,                                # 15 DATASEC: +2x12
             b.u32s(14, 0, 4) + b.u32s(14, 4, 4))
    b.record("float", 16, 0, 4)                                # 16 FLOAT
    b.record("tag", 17, 0, 4, b.u32s(0xFFFFFFFF))              # 17 DECL_TAG: +4
    b.record("tt", 18, 0, 1)                                   # 18 TYPE_TAG
    b.record("big", 19, 2, 8,                                  # 19 ENUM64: +2x12
             b.u32s(b.name("LO"), 1, 0) + b.u32s(b.name("HI"), 0, 1))
    b.record("tail", 4, 1, 24, b.u32s(b.name("t"), 3, 0))      # 20 STRUCT size 24
    return b.build(hdr_len=hdr_len)


def _write(tmp_path, data: bytes, name: str = "blob.btf") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_every_kind_little_endian(tmp_path):
    path = _write(tmp_path, _every_kind_blob("<"))
    # Sizes are the size_or_type fields written above: pair 8 (two 4-byte ints), tail 24.
    assert struct_sizes(path, ["pair", "tail"]) == {"pair": 8, "tail": 24}


def test_every_kind_big_endian(tmp_path):
    path = _write(tmp_path, _every_kind_blob(">"))
    assert struct_size(path, "tail") == 24


def test_longer_header_is_skipped(tmp_path):
    # A 32-byte header (8 bytes of future fields): sections are relative to hdr_len.
    path = _write(tmp_path, _every_kind_blob("<", hdr_len=32))
    assert struct_size(path, "pair") == 8


def test_union_and_typedef_names_are_not_structs(tmp_path):
    path = _write(tmp_path, _every_kind_blob())
    with pytest.raises(InputError, match=r"blob\.btf: struct not found in BTF: myint, u"):
        struct_sizes(path, ["u", "myint"])


def test_one_pass_answers_many(tmp_path):
    btf = BtfFile(_write(tmp_path, _every_kind_blob()))
    assert btf.struct_sizes([]) == {}
    assert btf.struct_size("pair") == 8
    assert btf.struct_size("tail") == 24


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.btf: BTF file not found"):
        struct_size(str(tmp_path / "nope.btf"), "sk_buff")


def test_bad_magic(tmp_path):
    b = _BlobBuilder()
    b.record("s", 4, 0, 1)
    path = _write(tmp_path, b.build(magic=0x1234))
    with pytest.raises(InputError, match=r"blob\.btf: bad BTF magic 0x1234"):
        struct_size(path, "s")


def test_empty_and_short_files(tmp_path):
    for data in (b"", b"\x9f\xeb\x01\x00"):
        with pytest.raises(InputError, match="truncated BTF header"):
            struct_size(_write(tmp_path, data), "s")


def test_truncated_sections(tmp_path):
    data = _every_kind_blob()
    # Chop the last 10 bytes: the string section's declared end is past the file end.
    with pytest.raises(InputError, match="truncated BTF string section"):
        struct_size(_write(tmp_path, data[:-10]), "tail")
    # Keep the header but drop almost everything after it.
    with pytest.raises(InputError, match="truncated BTF type section"):
        struct_size(_write(tmp_path, data[:40]), "tail")


def test_record_running_past_type_section(tmp_path):
    # A STRUCT claiming 5 members (60 bytes of trailer) but followed by only 12.
    b = _BlobBuilder()
    b.record("s", 4, 5, 8, b.u32s(0, 0, 0))
    path = _write(tmp_path, b.build())
    with pytest.raises(InputError, match="runs past the type section end"):
        struct_size(path, "s")


def test_unknown_kind(tmp_path):
    b = _BlobBuilder()
    b.record("s", 4, 0, 8)
    b.record("z", 25, 0, 0)
    with pytest.raises(InputError, match="unknown BTF kind 25 in type #2"):
        struct_size(_write(tmp_path, b.build()), "s")


def test_bad_version(tmp_path):
    b = _BlobBuilder()
    b.record("s", 4, 0, 8)
    with pytest.raises(InputError, match="unsupported BTF version 2"):
        struct_size(_write(tmp_path, b.build(version=2)), "s")


def test_ambiguous_struct(tmp_path):
    b = _BlobBuilder()
    b.record("dup", 4, 0, 8)
    b.record("dup", 4, 0, 16)
    with pytest.raises(InputError, match="struct dup is ambiguous: defined with sizes 8 and 16"):
        struct_size(_write(tmp_path, b.build()), "dup")


def test_name_offset_outside_strings(tmp_path):
    b = _BlobBuilder()
    b.types += struct.pack("<III", 9999, _info(4), 8)
    with pytest.raises(InputError, match="outside the string section"):
        struct_size(_write(tmp_path, b.build()), "s")


needs_vmlinux = pytest.mark.skipif(not os.path.exists(VMLINUX),
                                   reason=f"{VMLINUX} absent (kernel without CONFIG_DEBUG_INFO_BTF)")


@needs_vmlinux
def test_host_sizes_are_plausible():
    sizes = struct_sizes(VMLINUX, ["sk_buff", "skb_shared_info"])
    # Both are cache-line multiples on x86_64 builds seen so far, and struct
    # skb_shared_info carries MAX_SKB_FRAGS 16-byte skb_frag_t entries.
    assert sizes["sk_buff"] > 150
    assert sizes["skb_shared_info"] > 16 * 16


@needs_vmlinux
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed (apt-get install bpftool)")
def test_host_sizes_match_bpftool():
    dump = subprocess.run(["bpftool", "btf", "dump", "file", VMLINUX, "format", "raw"],
                          check=True, capture_output=True, text=True).stdout
    by_name: dict[str, set[int]] = {}
    for match in re.finditer(r"^\[\d+\] STRUCT '([^']+)' size=(\d+) vlen=", dump, re.MULTILINE):
        by_name.setdefault(match.group(1), set()).add(int(match.group(2)))
    unique = {name: sizes.pop() for name, sizes in by_name.items() if len(sizes) == 1}
    assert {"sk_buff", "skb_shared_info"} <= unique.keys()
    # Every uniquely sized named struct in the file, in one pass.
    assert struct_sizes(VMLINUX, unique) == unique


# ---------------------------------------------------------------- member offsets (skbsim.live.btf.member)


def _member_blob() -> bytes:
    """u32, a typedef of it, a bitfield struct (kind_flag), an anonymous union inside an outer
    struct, an array, and a FUNC:

        struct flags { u8 lo:4, hi:4; u32 word; };                       // kind_flag set
        struct outer { u64 first; union { u32 a; u16 b; }; struct flags f; u16 arr[3]; };
        void bpf_iter_thing(void);
    """
    b = _BlobBuilder()
    b.record("u32", 1, 0, 4, b.u32s(32))                        # 1 INT u32
    b.record("u8", 1, 0, 1, b.u32s(8))                          # 2 INT u8
    b.record("u16", 1, 0, 2, b.u32s(16))                        # 3 INT u16
    b.record("u64", 1, 0, 8, b.u32s(64))                        # 4 INT u64
    b.record("__u32", 8, 0, 1)                                  # 5 TYPEDEF __u32 -> u32
    # 6 STRUCT flags, kind_flag: member offset = bits << 24 | bit offset
    b.types += struct.pack("<III", b.name("flags"), _info(4, 3, kind_flag=1), 8)
    b.types += b.u32s(b.name("lo"), 2, (4 << 24) | 0) + b.u32s(b.name("hi"), 2, (4 << 24) | 4) \
        + b.u32s(b.name("word"), 5, 32)
    b.record("", 5, 2, 4, b.u32s(b.name("a"), 1, 0) + b.u32s(b.name("b"), 3, 0))  # 7 anonymous UNION
    b.record("", 3, 0, 0, b.u32s(3, 1, 3))                      # 8 ARRAY u16[3]
    b.record("outer", 4, 4, 24,                                 # 9 STRUCT outer
             b.u32s(b.name("first"), 4, 0) + b.u32s(0, 7, 64) + b.u32s(b.name("f"), 6, 96)
             + b.u32s(b.name("arr"), 8, 160))
    b.record("", 13, 0, 0)                                      # 10 FUNC_PROTO void(void)
    b.record("bpf_iter_thing", 12, 0, 10)                       # 11 FUNC
    return b.build()


def test_member_offsets_bitfields_and_anonymous_members(tmp_path):
    btf = BtfFile(_write(tmp_path, _member_blob()))
    # first at bit 0; the anonymous union at bit 64 holds a (u32) and b (u16) at its start.
    assert (btf.member("outer", "first").offset, btf.member("outer", "first").size) == (0, 8)
    assert (btf.member("outer", "a").offset, btf.member("outer", "a").size) == (8, 4)
    assert (btf.member("outer", "b").offset, btf.member("outer", "b").size) == (8, 2)
    # f at bit 96 = byte 12; inside it hi is the 4-bit field at bit 4, word (a typedef) at bit 32.
    hi = btf.member("outer", "f.hi")
    assert (hi.bit_offset, hi.bits) == (96 + 4, 4)
    assert (btf.member("outer", "f.word").offset, btf.member("outer", "f.word").size) == (16, 4)
    # arr: 3 x u16 = 6 bytes at byte 20.
    assert (btf.member("outer", "arr").offset, btf.member("outer", "arr").size) == (20, 6)
    assert btf.func_id("bpf_iter_thing") == 11


def test_member_read_decodes_bitfields(tmp_path):
    btf = BtfFile(_write(tmp_path, _member_blob()))
    raw = bytearray(24)
    raw[12] = 0xA5            # f.lo = 5, f.hi = 0xA
    raw[16:20] = (123456).to_bytes(4, "little")
    assert btf.member("outer", "f.lo").read(bytes(raw)) == 5
    assert btf.member("outer", "f.hi").read(bytes(raw)) == 0xA
    assert btf.member("outer", "f.word").read(bytes(raw)) == 123456


def test_member_errors_name_the_path(tmp_path):
    btf = BtfFile(_write(tmp_path, _member_blob()))
    with pytest.raises(InputError, match=r"struct outer has no member 'f.nope' \(no 'nope'\)"):
        btf.member("outer", "f.nope")
    with pytest.raises(InputError, match="no BTF type of kind 12 named 'missing'"):
        btf.func_id("missing")
