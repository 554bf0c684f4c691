"""A copy of a TCP socket's ``struct tcp_sock``, read through a BPF iterator.

Some receive-side state is in no user-space interface: ``tp->scaling_ratio``
(the payload/truesize ratio that turns buffer space into window since
6.5's "tcp: add TCP_RMEM_TO_WIN_SCALE and scaling_ratio") is not in
struct tcp_info, and neither is ``icsk_ack.pending`` (whether a delayed ACK
is scheduled).  This kernel has no kprobes and no /proc/kcore, so drgn
cannot read its memory; a BPF iterator can, with nothing attached to any
hook and nothing running unless we read.

Which iterator.  ``bpf_iter_tcp`` visits every bucket of the host-wide
established hash (about 2 ms a read here: too slow between two segments
of a burst, which must stay well inside the 40 ms delayed-ACK timer);
``bpf_iter_bpf_sk_storage_map`` would visit only marked sockets but this
kernel refuses to load a program for it (EPERM).  ``bpf_iter_task_file``
(kernel/bpf/task_iter.c) restricted at link time to our own process
(``bpf_iter_link_info.task.pid``) visits our few open files: the program
picks the one whose fd is the watched socket's, follows
``file->private_data`` (the struct socket) to ``socket->sk``, and copies
``sizeof(struct tcp_sock)`` bytes from there.  About 50 us a read.

The program, written here as raw instructions (no compiler, no libbpf),
copies the socket into an array map slot with ``bpf_probe_read_kernel``,
appends the socket's address, and hands both to ``bpf_seq_write``.  User
space decodes the copy with member offsets from the kernel's own BTF
(skbsim.live.btf), so no layout is hard-coded: the copy's size, the
offsets of ``file.private_data`` and ``socket.sk``, the attach point (the
BTF id of the FUNC ``bpf_iter_task_file``) and every field's offset come
from /sys/kernel/btf/vmlinux of the running kernel.

Needs CAP_BPF and CAP_PERFMON (root): the program stores a kernel pointer
into a map, which the verifier allows only to privileged loaders.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from collections.abc import Iterable, Sequence

from skbsim.errors import InputError
from skbsim.live.btf import DEFAULT_VMLINUX_BTF, BtfFile, Member

# include/uapi/linux/bpf.h: enum bpf_cmd, bpf_map_type, bpf_prog_type, bpf_attach_type.
BPF_MAP_CREATE = 0
BPF_PROG_LOAD = 5
BPF_LINK_CREATE = 28
BPF_ITER_CREATE = 33
BPF_MAP_TYPE_ARRAY = 2
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_ITER = 28
BPF_PSEUDO_MAP_FD = 1
# enum bpf_func_id
BPF_FUNC_map_lookup_elem = 1
BPF_FUNC_probe_read_kernel = 113
BPF_FUNC_seq_write = 127

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_PROG_LOAD_ATTR_SIZE = 144  # up to log_true_size; the kernel zero-checks anything beyond what it knows
_VERIFIER_LOG_SIZE = 1 << 16

# Instruction classes and opcodes (include/uapi/linux/bpf_common.h, bpf.h).
_LDX_MEM_DW = 0x79
_STX_MEM_DW = 0x7B
_ST_MEM_W = 0x62
_ALU64_MOV_X = 0xBF
_ALU64_MOV_K = 0xB7
_ALU64_ADD_K = 0x07
_JEQ_K = 0x15
_JNE_K = 0x55
_JA = 0x05
_MOV32_X = 0xBC
_CALL = 0x85
_EXIT = 0x95
_LD_IMM_DW = 0x18


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn: code, dst_reg:4 | src_reg:4, s16 off, s32 imm (little-endian)."""
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


#: struct bpf_iter__task_file: meta, task, fd (u32, padded to 8), file.
ITER_FUNC = "bpf_iter_task_file"
_CTX_META, _CTX_FD, _CTX_FILE = 0, 16, 24


def iterator_program(map_fd: int, socket_fd: int, copy_size: int, private_data_offset: int,
                     sk_offset: int) -> bytes:
    """The iterator's instructions: for the file at *socket_fd*, copy its socket's struct tcp_sock.

    Registers: r6 seq_file, r7 the file then the sock, r8 the map slot; the
    stack's top 8 bytes hold the pointers read on the way.
    """
    exit_at = 33
    program = [
        _insn(_LDX_MEM_DW, 6, 1, _CTX_META),     # 0: r6 = ctx->meta
        _insn(_LDX_MEM_DW, 2, 1, _CTX_FD),       # 1: r2 = ctx->fd (and its padding)
        _insn(_MOV32_X, 2, 2),                   # 2: w2 = w2 (the u32 fd alone)
        _insn(_JNE_K, 2, 0, exit_at - 4, socket_fd),  # 3: not the watched fd: exit
        _insn(_LDX_MEM_DW, 7, 1, _CTX_FILE),     # 4: r7 = ctx->file
        _insn(_JEQ_K, 7, 0, exit_at - 6, 0),     # 5: if r7 == NULL goto exit
        _insn(_LDX_MEM_DW, 6, 6, 0),             # 6: r6 = meta->seq
        _insn(_ALU64_MOV_X, 1, 10),              # 7: r1 = fp
        _insn(_ALU64_ADD_K, 1, 0, 0, -8),        # 8: r1 = fp - 8
        _insn(_ALU64_MOV_K, 2, 0, 0, 8),         # 9
        _insn(_ALU64_MOV_X, 3, 7),               # 10
        _insn(_ALU64_ADD_K, 3, 0, 0, private_data_offset),  # 11: r3 = &file->private_data
        _insn(_CALL, imm=BPF_FUNC_probe_read_kernel),       # 12: [fp-8] = the struct socket
        _insn(_LDX_MEM_DW, 3, 10, -8),           # 13: r3 = socket
        _insn(_JEQ_K, 3, 0, exit_at - 15, 0),    # 14
        _insn(_ALU64_ADD_K, 3, 0, 0, sk_offset),  # 15: r3 = &socket->sk
        _insn(_ALU64_MOV_X, 1, 10),              # 16
        _insn(_ALU64_ADD_K, 1, 0, 0, -8),        # 17
        _insn(_ALU64_MOV_K, 2, 0, 0, 8),         # 18
        _insn(_CALL, imm=BPF_FUNC_probe_read_kernel),       # 19: [fp-8] = the sock
        _insn(_LDX_MEM_DW, 7, 10, -8),           # 20: r7 = sk
        _insn(_JEQ_K, 7, 0, exit_at - 22, 0),    # 21
        _insn(_ST_MEM_W, 10, 0, -12, 0),         # 22: key = 0
        _insn(_LD_IMM_DW, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),  # 23-24: r1 = &map
        _insn(0, 0, 0, 0, 0),
        _insn(_ALU64_MOV_X, 2, 10),              # 25
        _insn(_ALU64_ADD_K, 2, 0, 0, -12),       # 26: r2 = &key
        _insn(_CALL, imm=BPF_FUNC_map_lookup_elem),  # 27
        _insn(_JEQ_K, 0, 0, exit_at - 29, 0),    # 28: if slot == NULL goto exit
        _insn(_ALU64_MOV_X, 8, 0),               # 29: r8 = slot
        _insn(_ALU64_MOV_X, 1, 8),               # 30
        _insn(_ALU64_MOV_K, 2, 0, 0, copy_size),  # 31
        _insn(_JA, off=2),                       # 32: over the exit
        _insn(_ALU64_MOV_K, 0, 0, 0, 0),         # 33 exit: r0 = 0
        _insn(_EXIT),                            # 34
        _insn(_ALU64_MOV_X, 3, 7),               # 35
        _insn(_CALL, imm=BPF_FUNC_probe_read_kernel),  # 36: slot[0:size] = *sk
        _insn(_STX_MEM_DW, 8, 7, copy_size),     # 37: slot[size:size+8] = sk
        _insn(_ALU64_MOV_X, 1, 6),               # 38
        _insn(_ALU64_MOV_X, 2, 8),               # 39
        _insn(_ALU64_MOV_K, 3, 0, 0, copy_size + 8),  # 40
        _insn(_CALL, imm=BPF_FUNC_seq_write),    # 41
        _insn(_ALU64_MOV_K, 0, 0, 0, 0),         # 42
        _insn(_EXIT),                            # 43
    ]
    return b"".join(program)


class _Syscall:
    __slots__ = ("libc", "number")

    def __init__(self) -> None:
        machine = platform.machine()
        if machine not in _SYS_BPF:
            raise InputError(f"bpf(2) syscall number unknown for {machine}")
        self.number = _SYS_BPF[machine]
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long

    def __call__(self, command: int, attr: ctypes.Array, what: str, log: bytes | None = None) -> int:
        result = self.libc.syscall(ctypes.c_long(self.number), ctypes.c_int(command), attr,
                                   ctypes.c_uint(len(attr)))
        if result < 0:
            error = ctypes.get_errno()
            detail = f"\n{log.rstrip(bytes(1)).decode(errors='replace')}" if log else ""
            raise InputError(f"bpf {what} failed: {os.strerror(error)}{detail}")
        return int(result)


class TcpSockReader:
    """``with TcpSockReader() as reader: reader.watch(sock); reader.snapshot()``.

    One watched socket per reader, an fd of this process (any namespace);
    :meth:`snapshot` returns ``{address: raw tcp_sock bytes}`` (one entry,
    or none once the socket is closed).
    """

    __slots__ = ("btf", "size", "_syscall", "_fds", "_copy_fd", "_link_fd")

    def __init__(self, btf: BtfFile | None = None) -> None:
        self.btf = btf if btf is not None else BtfFile(DEFAULT_VMLINUX_BTF)
        self.size = self.btf.struct_size("tcp_sock")
        self._syscall = _Syscall()
        self._fds: list[int] = []
        self._copy_fd: int | None = None
        self._link_fd: int | None = None

    def __enter__(self) -> "TcpSockReader":
        try:
            attr = ctypes.create_string_buffer(struct.pack("<5I", BPF_MAP_TYPE_ARRAY, 4, self.size + 8, 1, 0), 72)
            self._copy_fd = self._keep(self._syscall(BPF_MAP_CREATE, attr, "copy map create"))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
        self._copy_fd = self._link_fd = None

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def watch(self, sock) -> None:
        """Load the program for *sock* (a socket object or fd of this process) and link it."""
        if self._copy_fd is None:
            raise InputError("the tcp_sock reader is not open")
        if self._link_fd is not None:
            raise InputError("the tcp_sock reader already watches a socket")
        socket_fd = sock if isinstance(sock, int) else sock.fileno()
        code = iterator_program(self._copy_fd, socket_fd, self.size,
                                self.btf.member("file", "private_data").offset,
                                self.btf.member("socket", "sk").offset)
        code_buffer = ctypes.create_string_buffer(code, len(code))
        license_text = ctypes.create_string_buffer(b"GPL")
        log = ctypes.create_string_buffer(_VERIFIER_LOG_SIZE)
        attr = ctypes.create_string_buffer(_PROG_LOAD_ATTR_SIZE)
        struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_TRACING, len(code) // 8,
                         ctypes.addressof(code_buffer), ctypes.addressof(license_text), 1, len(log),
                         ctypes.addressof(log))
        attr[48:48 + 12] = b"skbsim_tcpsk"
        struct.pack_into("<I", attr, 68, BPF_TRACE_ITER)                   # expected_attach_type
        struct.pack_into("<I", attr, 108, self.btf.func_id(ITER_FUNC))     # attach_btf_id
        prog_fd = self._keep(self._syscall(BPF_PROG_LOAD, attr, f"program load ({ITER_FUNC})", log.raw))
        # union bpf_iter_link_info: task = {tid, pid, pid_fd}: this process only.
        link_info = ctypes.create_string_buffer(struct.pack("<3I", 0, os.getpid(), 0), 12)
        attr = ctypes.create_string_buffer(64)
        struct.pack_into("<4IQI", attr, 0, prog_fd, 0, BPF_TRACE_ITER, 0, ctypes.addressof(link_info), 12)
        self._link_fd = self._keep(self._syscall(BPF_LINK_CREATE, attr, f"link create ({ITER_FUNC})"))

    def snapshot(self) -> dict[int, bytes]:
        """The watched socket: ``{address: tcp_sock copy}`` (empty once it is closed)."""
        if self._link_fd is None:
            raise InputError("the tcp_sock reader watches no socket")
        attr = ctypes.create_string_buffer(struct.pack("<2I", self._link_fd, 0), 8)
        iter_fd = self._syscall(BPF_ITER_CREATE, attr, "iterator create")
        chunks = []
        try:
            while True:
                chunk = os.read(iter_fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(iter_fd)
        data = b"".join(chunks)
        record = self.size + 8
        if len(data) % record:
            raise InputError(f"the socket iterator gave {len(data)} bytes, not a multiple of {record}")
        # Every thread of the process shares the fd table, so the same socket may come once per thread.
        result = {}
        for start in range(0, len(data), record):
            address = struct.unpack_from("<Q", data, start + self.size)[0]
            result[address] = data[start:start + self.size]
        return result


class TcpSockLayout:
    """Named fields of struct tcp_sock, decoded from a raw copy by their BTF offsets.

    *fields* maps a short name to a member path of struct tcp_sock.
    """

    __slots__ = ("members",)

    def __init__(self, btf: BtfFile, fields: dict[str, str]) -> None:
        self.members: dict[str, Member] = {name: btf.member("tcp_sock", path) for name, path in fields.items()}

    def decode(self, raw: bytes, names: Iterable[str] | None = None) -> dict[str, int]:
        chosen: Sequence[str] = list(self.members) if names is None else list(names)
        return {name: self.members[name].read(raw) for name in chosen}
