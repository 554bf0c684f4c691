"""Files the user points skbsim at: bounded reads, and paths shown safely in messages.

Every input file skbsim reads whole (a ``dist:`` CSV, a profile, a kernel
.config, a virtio_net trace) is read through :func:`read_bounded`, so
``/dev/zero`` or a mistyped multi-gigabyte file is one line and exit code 2
at once, not a MemoryError minutes later; :func:`read_bounded_gunzip` bounds
what a gzip file unpacks to as well.  Captures are streamed and need no bound.

Every path that goes into a message goes through :func:`shown`: a file name
may hold a newline or an escape sequence, and a message stays one line.
"""

from __future__ import annotations

from skbsim.errors import InputError

#: The bounds, each far above any real file of its kind: a .config of a distribution kernel is
#: about 300 KiB (uncompressed); a profile a few KiB; a dist CSV of every length 14..65535 with
#: long weights and comments under 4 MiB.
MAX_CONFIG_BYTES = 16 << 20
MAX_PROFILE_BYTES = 1 << 20
MAX_DIST_BYTES = 8 << 20
#: A virtio_net trace (validate --trace-file).  validate --save-trace writes the text of a tracefs
#: instance with a 32 MiB ring per CPU; its text is about 3.8 times the records (the fixture's
#: napi_gro_receive_entry lines average 351 bytes for ~92-byte records), so one CPU's full ring (one
#: RX queue: NAPI runs where its interrupt goes) gives ~120 MiB of text, two ~245 MiB.
MAX_TRACE_BYTES = 256 << 20


def shown(path: object) -> str:
    """``path`` for a message: as typed when it is plain printable text, else a Python string literal
    (quotes, ``\\n``, ``\\x1b``...), so that no file name can break a message over lines."""
    text = str(path)
    if text and text.isprintable() and text.strip() == text:
        return text
    return repr(text)


def read_bounded(path: str, limit: int, what: str) -> bytes:
    """The bytes of ``path``, at most ``limit`` of them; InputError starting ``what`` + path otherwise
    (``what`` is e.g. "dist:" or "profile ")."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{what}{shown(path)}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{what}{shown(path)}: is a directory") from None
    except OSError as err:
        raise InputError(f"{what}{shown(path)}: cannot read: {err.strerror or err}") from None
    if len(data) > limit:
        raise InputError(f"{what}{shown(path)}: larger than {limit >> 20} MiB, the most skbsim reads "
                         f"of such a file (is it the right file?)")
    return data


def read_bounded_gunzip(path: str, limit: int, what: str) -> bytes:
    """:func:`read_bounded`, unpacked when it is gzip (by its magic bytes), at most ``limit`` bytes
    either way: a small gzip file can hold gigabytes."""
    import gzip
    import io

    data = read_bounded(path, limit, what)
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unpacked:
            data = unpacked.read(limit + 1)
    except (OSError, EOFError) as exc:
        raise InputError(f"{what}{shown(path)}: corrupt gzip data: {exc}") from None
    if len(data) > limit:
        raise InputError(f"{what}{shown(path)}: unpacks to more than {limit >> 20} MiB, the most skbsim reads "
                         "of such a file (is it the right file?)")
    return data
