"""A small reader of the kernel's BTF (BPF Type Format) type information.

The layout is the one documented in the kernel's Documentation/bpf/btf.rst
(struct btf_header and struct btf_type in include/uapi/linux/btf.h):

* a header: magic 0xEB9F (u16), version (u8), flags (u8), hdr_len (u32),
  then type_off, type_len, str_off, str_len (u32 each).  The two sections
  start at ``hdr_len + type_off`` and ``hdr_len + str_off``; newer kernels
  may append fields to the header, which ``hdr_len`` lets us skip.
* the type section: one record per type (ids 1, 2, ...), each a 12-byte
  common part (name_off, info, size-or-type) followed by kind-specific data
  whose length follows from the kind and ``vlen``.
* the string section: NUL-terminated names, addressed by byte offset.

For the byte size of named structs (``sizeof(struct sk_buff)`` on the
running kernel) the walk decodes a name only for STRUCT records and
compares raw bytes, never building strings for the other ~100k types.
The file is read once; :class:`BtfFile` answers many names in one pass.

:meth:`BtfFile.member` and :meth:`BtfFile.func_id` need the type graph
(member offsets and bitfields, typedef chains, FUNC records by name): a
second walk records where each type's record starts, once per file, the
first time either is asked.  Struct members: with the struct's kind_flag
set, ``btf_member.offset`` holds the bitfield size in bits 24-31 and the
bit offset in bits 0-23; without it, the whole value is the bit offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from skbsim.errors import InputError

BTF_MAGIC = 0xEB9F
BTF_HEADER_MIN_LEN = 24  # magic..str_len: the header as first defined
BTF_TYPE_COMMON_LEN = 12  # name_off, info, size/type

# Kind numbers (BTF_KIND_* in include/uapi/linux/btf.h).
BTF_KIND_UNKN = 0
BTF_KIND_INT = 1
BTF_KIND_PTR = 2
BTF_KIND_ARRAY = 3
BTF_KIND_STRUCT = 4
BTF_KIND_UNION = 5
BTF_KIND_ENUM = 6
BTF_KIND_FWD = 7
BTF_KIND_TYPEDEF = 8
BTF_KIND_VOLATILE = 9
BTF_KIND_CONST = 10
BTF_KIND_RESTRICT = 11
BTF_KIND_FUNC = 12
BTF_KIND_FUNC_PROTO = 13
BTF_KIND_VAR = 14
BTF_KIND_DATASEC = 15
BTF_KIND_FLOAT = 16
BTF_KIND_DECL_TAG = 17
BTF_KIND_TYPE_TAG = 18
BTF_KIND_ENUM64 = 19

# Bytes that follow the 12-byte common part: (fixed, per vlen item).
#   INT: one u32 (encoding, offset, bits)          -> 4 fixed
#   ARRAY: struct btf_array {type, index_type, nelems} -> 12 fixed
#   STRUCT/UNION: vlen x btf_member {name_off, type, offset} -> 12 each
#   ENUM: vlen x btf_enum {name_off, val}           -> 8 each
#   FUNC_PROTO: vlen x btf_param {name_off, type}   -> 8 each
#   VAR: struct btf_var {linkage}                    -> 4 fixed
#   DATASEC: vlen x btf_var_secinfo {type, offset, size} -> 12 each
#   DECL_TAG: struct btf_decl_tag {component_idx}   -> 4 fixed
#   ENUM64: vlen x btf_enum64 {name_off, val_lo32, val_hi32} -> 12 each
#   PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG: none
_TRAILER_BY_KIND: dict[int, tuple[int, int]] = {
    BTF_KIND_INT: (4, 0),
    BTF_KIND_PTR: (0, 0),
    BTF_KIND_ARRAY: (12, 0),
    BTF_KIND_STRUCT: (0, 12),
    BTF_KIND_UNION: (0, 12),
    BTF_KIND_ENUM: (0, 8),
    BTF_KIND_FWD: (0, 0),
    BTF_KIND_TYPEDEF: (0, 0),
    BTF_KIND_VOLATILE: (0, 0),
    BTF_KIND_CONST: (0, 0),
    BTF_KIND_RESTRICT: (0, 0),
    BTF_KIND_FUNC: (0, 0),
    BTF_KIND_FUNC_PROTO: (0, 8),
    BTF_KIND_VAR: (4, 0),
    BTF_KIND_DATASEC: (0, 12),
    BTF_KIND_FLOAT: (0, 0),
    BTF_KIND_DECL_TAG: (4, 0),
    BTF_KIND_TYPE_TAG: (0, 0),
    BTF_KIND_ENUM64: (0, 12),
}

DEFAULT_VMLINUX_BTF = "/sys/kernel/btf/vmlinux"


class BtfFile:
    """One BTF file, read into memory once and validated.

    ``struct_sizes(names)`` walks the type section once for any number of
    names.  A name that matches several STRUCT records of different sizes
    (possible when BTF dedup kept conflicting definitions) is an error:
    we refuse to guess which one the caller meant.
    """

    __slots__ = ("path", "_data", "_order", "_types_start", "_types_end",
                 "_strings_start", "_strings_end", "version", "flags", "_record_at", "_by_name")

    def __init__(self, path: str = DEFAULT_VMLINUX_BTF) -> None:
        self.path = str(path)
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise InputError(f"{self.path}: BTF file not found") from None
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read BTF file: {exc.strerror}") from None
        self._data = memoryview(data)
        self._record_at: list[int] | None = None
        self._by_name: dict[tuple[int, bytes], int] | None = None
        self._parse_header()

    def _fail(self, problem: str) -> InputError:
        return InputError(f"{self.path}: {problem}")

    def _parse_header(self) -> None:
        data = self._data
        if len(data) < BTF_HEADER_MIN_LEN:
            raise self._fail(f"truncated BTF header ({len(data)} bytes, need {BTF_HEADER_MIN_LEN})")
        # The magic is written in the producer's byte order; read it both ways.
        if struct.unpack_from("<H", data, 0)[0] == BTF_MAGIC:
            order = "<"
        elif struct.unpack_from(">H", data, 0)[0] == BTF_MAGIC:
            order = ">"
        else:
            raise self._fail(f"bad BTF magic 0x{struct.unpack_from('<H', data, 0)[0]:04x} "
                             f"(expected 0x{BTF_MAGIC:04x})")
        self._order = order
        (_magic, self.version, self.flags, hdr_len, type_off, type_len,
         str_off, str_len) = struct.unpack_from(order + "HBBIIIII", data, 0)
        if self.version != 1:
            raise self._fail(f"unsupported BTF version {self.version}")
        if hdr_len < BTF_HEADER_MIN_LEN:
            raise self._fail(f"BTF header length {hdr_len} is below the minimum {BTF_HEADER_MIN_LEN}")
        if hdr_len > len(data):
            raise self._fail(f"truncated BTF header (hdr_len {hdr_len} > file size {len(data)})")
        self._types_start = hdr_len + type_off
        self._types_end = self._types_start + type_len
        self._strings_start = hdr_len + str_off
        self._strings_end = self._strings_start + str_len
        if self._types_end > len(data):
            raise self._fail(f"truncated BTF type section (ends at {self._types_end}, "
                             f"file has {len(data)} bytes)")
        if self._strings_end > len(data):
            raise self._fail(f"truncated BTF string section (ends at {self._strings_end}, "
                             f"file has {len(data)} bytes)")
        if type_len % 4:
            raise self._fail(f"BTF type section length {type_len} is not a multiple of 4")

    def struct_sizes(self, names: Iterable[str]) -> dict[str, int]:
        """Return ``{name: sizeof(struct name)}`` for every requested name.

        Raises InputError naming the file if any name is missing, ambiguous,
        or the type section is malformed.
        """
        wanted = {name.encode(): name for name in names}
        if not wanted:
            return {}
        found: dict[str, int] = {}
        data = self._data
        raw = data.obj
        unpack_common = struct.Struct(self._order + "III").unpack_from
        trailer_by_kind = _TRAILER_BY_KIND
        strings_start = self._strings_start
        strings_end = self._strings_end
        pos = self._types_start
        end = self._types_end
        type_id = 0
        while pos < end:
            type_id += 1
            if pos + BTF_TYPE_COMMON_LEN > end:
                raise self._fail(f"truncated BTF type record #{type_id} at byte {pos}")
            name_off, info, size = unpack_common(data, pos)
            kind = (info >> 24) & 0x1F
            try:
                fixed, per_item = trailer_by_kind[kind]
            except KeyError:
                raise self._fail(f"unknown BTF kind {kind} in type #{type_id} at byte {pos}") from None
            vlen = info & 0xFFFF
            if kind == BTF_KIND_STRUCT and name_off:
                name_start = strings_start + name_off
                if name_start >= strings_end:
                    raise self._fail(f"BTF name offset {name_off} of type #{type_id} "
                                     "is outside the string section")
                name_end = raw.find(b"\0", name_start, strings_end)
                if name_end < 0:
                    raise self._fail(f"BTF name of type #{type_id} is not NUL-terminated")
                key = wanted.get(bytes(data[name_start:name_end]))
                if key is not None:
                    previous = found.get(key)
                    if previous is not None and previous != size:
                        raise self._fail(f"struct {key} is ambiguous: defined with sizes "
                                         f"{previous} and {size}")
                    found[key] = size
            pos += BTF_TYPE_COMMON_LEN + fixed + per_item * vlen
        if pos != end:
            raise self._fail(f"truncated BTF type record #{type_id}: it runs past the type "
                             f"section end ({pos} > {end})")
        missing = [wanted[n] for n in wanted if wanted[n] not in found]
        if missing:
            raise self._fail("struct not found in BTF: " + ", ".join(sorted(missing)))
        return found

    def struct_size(self, name: str) -> int:
        return self.struct_sizes([name])[name]


    # -- the type graph: member offsets and function ids

    def _records(self) -> list[int]:
        """Byte position of every type record, indexed by type id (id 0 is void)."""
        if self._record_at is None:
            unpack_common = struct.Struct(self._order + "III").unpack_from
            positions = [0]
            pos, end = self._types_start, self._types_end
            while pos < end:
                positions.append(pos)
                _name_off, info, _size = unpack_common(self._data, pos)
                kind = (info >> 24) & 0x1F
                if kind not in _TRAILER_BY_KIND:
                    raise self._fail(f"unknown BTF kind {kind} in type #{len(positions) - 1} at byte {pos}")
                fixed, per_item = _TRAILER_BY_KIND[kind]
                pos += BTF_TYPE_COMMON_LEN + fixed + per_item * (info & 0xFFFF)
            self._record_at = positions
        return self._record_at

    def _name(self, name_off: int) -> str:
        start = self._strings_start + name_off
        end = self._data.obj.find(b"\0", start, self._strings_end)
        return bytes(self._data[start:end]).decode()

    def _type(self, type_id: int) -> tuple[int, int, int, int, int]:
        """(kind, name_off, vlen, kind_flag, size_or_type) of one type id."""
        records = self._records()
        if not 0 < type_id < len(records):
            raise self._fail(f"BTF type id {type_id} does not exist")
        name_off, info, size = struct.unpack_from(self._order + "III", self._data, records[type_id])
        return (info >> 24) & 0x1F, name_off, info & 0xFFFF, info >> 31, size

    def _find(self, kind: int, name: str) -> int:
        """The first type id of *kind* named *name* (an index of all named types, built once)."""
        if self._by_name is None:
            raw = self._data.obj
            unpack = struct.Struct(self._order + "II").unpack_from
            index: dict[tuple[int, bytes], int] = {}
            for type_id, pos in enumerate(self._records()):
                if not type_id:
                    continue
                name_off, info = unpack(self._data, pos)
                if name_off:
                    start = self._strings_start + name_off
                    key = ((info >> 24) & 0x1F, raw[start:raw.find(b"\0", start, self._strings_end)])
                    index.setdefault(key, type_id)
            self._by_name = index
        found = self._by_name.get((kind, name.encode()))
        if found is None:
            raise self._fail(f"no BTF type of kind {kind} named {name!r}")
        return found

    def _resolve(self, type_id: int) -> int:
        """Follow typedefs and qualifiers down to the type that has a size."""
        while True:
            kind, _name_off, _vlen, _flag, target = self._type(type_id)
            if kind not in (BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST,
                            BTF_KIND_RESTRICT, BTF_KIND_TYPE_TAG):
                return type_id
            type_id = target

    def _byte_size(self, type_id: int) -> int:
        type_id = self._resolve(type_id)
        kind, _name_off, _vlen, _flag, size = self._type(type_id)
        if kind == BTF_KIND_PTR:
            return 8
        if kind == BTF_KIND_ARRAY:
            element, _index, count = struct.unpack_from(
                self._order + "III", self._data, self._records()[type_id] + BTF_TYPE_COMMON_LEN)
            return self._byte_size(element) * count
        return size

    def _members(self, type_id: int) -> Iterator[tuple[str, int, int, int]]:
        """(name, type id, bit offset, bitfield size or 0) of a struct or union's members."""
        kind, _name_off, vlen, kind_flag, _size = self._type(type_id)
        if kind not in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            raise self._fail(f"BTF type #{type_id} is not a struct or union")
        pos = self._records()[type_id] + BTF_TYPE_COMMON_LEN
        for index in range(vlen):
            name_off, member_type, offset = struct.unpack_from(self._order + "III", self._data, pos + 12 * index)
            if kind_flag:
                yield self._name(name_off) if name_off else "", member_type, offset & 0xFFFFFF, offset >> 24
            else:
                yield self._name(name_off) if name_off else "", member_type, offset, 0

    def _lookup_member(self, type_id: int, name: str) -> tuple[int, int, int] | None:
        """(type id, bit offset, bitfield bits) of *name* in a struct, looking into anonymous members."""
        for member_name, member_type, bit_offset, bits in self._members(type_id):
            if member_name == name:
                return member_type, bit_offset, bits
            if not member_name:
                inner = self._lookup_member(self._resolve(member_type), name)
                if inner is not None:
                    return inner[0], bit_offset + inner[1], inner[2]
        return None

    def member(self, struct_name: str, path: str) -> "Member":
        """Where ``struct struct_name``'s member *path* (``a.b.c``) lies."""
        type_id = self._find(BTF_KIND_STRUCT, struct_name)
        bit_offset, bits, member_type = 0, 0, type_id
        for part in path.split("."):
            container = self._resolve(member_type)
            found = self._lookup_member(container, part)
            if found is None:
                raise self._fail(f"struct {struct_name} has no member {path!r} (no {part!r})")
            member_type, offset, bits = found
            bit_offset += offset
        size = self._byte_size(member_type)
        return Member(f"{struct_name}.{path}", bit_offset, bits, size)

    def func_id(self, name: str) -> int:
        """The type id of the FUNC record *name* (what a BPF tracing program attaches to)."""
        return self._find(BTF_KIND_FUNC, name)


class Member:
    """Where one struct member lies: byte offset and size, or a bitfield's bit offset and width."""

    __slots__ = ("name", "bit_offset", "bits", "size")

    def __init__(self, name: str, bit_offset: int, bits: int, size: int) -> None:
        self.name = name
        self.bit_offset = bit_offset
        self.bits = bits
        self.size = size

    @property
    def offset(self) -> int:
        return self.bit_offset // 8

    def read(self, data: bytes, order: str = "<") -> int:
        """The member's unsigned value in a raw copy of the struct (native byte order)."""
        if self.bits:
            start = self.bit_offset // 8
            width = (self.bit_offset % 8 + self.bits + 7) // 8
            raw = int.from_bytes(data[start:start + width], "little" if order == "<" else "big")
            return (raw >> (self.bit_offset % 8)) & ((1 << self.bits) - 1)
        if self.bit_offset % 8:
            raise InputError(f"{self.name} is not byte-aligned")
        return int.from_bytes(data[self.offset:self.offset + self.size], "little" if order == "<" else "big")


def struct_sizes(path: str, names: Iterable[str]) -> dict[str, int]:
    """``{name: size}`` for each struct name, reading *path* once."""
    return BtfFile(path).struct_sizes(names)


def struct_size(path: str, name: str) -> int:
    """``sizeof(struct name)`` as recorded in the BTF file at *path*."""
    return BtfFile(path).struct_size(name)
