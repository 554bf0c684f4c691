"""A tracefs instance of our own, recording the kernel's skb receive events.

We never touch the global trace buffer: :class:`TraceInstance` makes
``<tracefs>/instances/skbsim-<pid>-<n>`` (a private ring buffer with its own
event switches, see Documentation/trace/ftrace.rst, "Instances"), enables
the chosen events there, optionally filtered to one device, and removes the
instance again on every way out (normal exit, exception, Ctrl-C, SIGTERM).

The events of interest come from include/trace/events/net.h.  Those built
on the "verbose" template (netif_receive_skb_entry, napi_gro_receive_entry,
napi_gro_frags_entry, netif_rx_entry, ...) print ``dev= ... len= data_len=
truesize= ... nr_frags= ...``; the plain ones (netif_receive_skb, netif_rx)
print only ``dev= skbaddr= len=``.  :func:`parse_trace_text` turns the
instance's ``trace`` file into :class:`SkbTraceRecord` objects.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator

from skbsim.errors import InputError

TRACEFS_ROOT = "/sys/kernel/tracing"
INSTANCE_PREFIX = "skbsim"

# Events that carry len/data_len/truesize/nr_frags (the verbose template).
VERBOSE_SKB_EVENTS = (
    "net/netif_receive_skb_entry",
    "net/napi_gro_receive_entry",
    "net/napi_gro_frags_entry",
    "net/netif_rx_entry",
    "net/netif_receive_skb_list_entry",
)
# Events that carry only dev, skbaddr and len.
PLAIN_SKB_EVENTS = ("net/netif_receive_skb", "net/netif_rx")

_INTEGER_FIELDS = ("len", "data_len", "truesize", "nr_frags", "napi_id", "queue_mapping",
                   "protocol", "ip_summed", "gso_size", "gso_type", "mac_header")

# "<task>-<pid> [(<tgid>)] [<cpu>] [<irq flags>] <secs>.<usecs>: <event>: <body>"
_LINE = re.compile(
    r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+"
    r"(?:\(\s*(?:\d+|-+)\)\s+)?"
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s:]+)\s+)?"
    r"(?P<timestamp>\d+\.\d+):\s+"
    r"(?P<event>\w+):\s*(?P<body>.*)$"
)
_FIELD = re.compile(r"(\w+)=(\S*)")
# skb/kfree_skb prints its drop reason as "reason: NAME", not name=value.
_REASON = re.compile(r"\breason: (\w+)")
_LOST = re.compile(r"^CPU:(\d+) \[LOST (\d+) EVENTS\]")
_ENTRIES = re.compile(r"^# entries-in-buffer/entries-written: (\d+)/(\d+)")
_DEVICE_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")


class SkbTraceRecord:
    """One skb event line from a trace buffer.

    ``len``, ``data_len``, ``truesize``, ``nr_frags`` are None when the event
    does not print them (the plain events print only ``len``).
    """

    __slots__ = ("event", "dev", "len", "data_len", "truesize", "nr_frags", "skbaddr",
                 "cpu", "timestamp", "task", "pid", "fields")

    def __init__(self, event: str, fields: dict[str, str], *, cpu: int = -1,
                 timestamp: float = 0.0, task: str = "", pid: int = -1) -> None:
        self.event = event
        self.fields = fields
        self.dev = fields.get("dev")
        self.skbaddr = fields.get("skbaddr")
        self.len = _as_int(fields.get("len"))
        self.data_len = _as_int(fields.get("data_len"))
        self.truesize = _as_int(fields.get("truesize"))
        self.nr_frags = _as_int(fields.get("nr_frags"))
        self.cpu = cpu
        self.timestamp = timestamp
        self.task = task
        self.pid = pid

    def as_dict(self) -> dict[str, object]:
        return {"event": self.event, "dev": self.dev, "len": self.len, "data_len": self.data_len,
                "truesize": self.truesize, "nr_frags": self.nr_frags}

    def __repr__(self) -> str:
        return (f"SkbTraceRecord({self.event} dev={self.dev} len={self.len} "
                f"data_len={self.data_len} truesize={self.truesize} nr_frags={self.nr_frags})")


def _as_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


class TraceSnapshot:
    """What one read of a ``trace`` file held.

    ``entries_written > entries_in_buffer`` or any ``lost`` count means the
    ring buffer dropped events; callers that count events must check
    :attr:`complete`.
    """

    __slots__ = ("records", "entries_in_buffer", "entries_written", "lost", "unparsed")

    def __init__(self) -> None:
        self.records: list[SkbTraceRecord] = []
        self.entries_in_buffer: int | None = None
        self.entries_written: int | None = None
        self.lost = 0
        self.unparsed: list[str] = []

    @property
    def complete(self) -> bool:
        if self.lost:
            return False
        if self.entries_in_buffer is not None and self.entries_written is not None:
            return self.entries_in_buffer == self.entries_written
        return True


def parse_trace_line(line: str) -> SkbTraceRecord | None:
    """One event line -> record; None for lines that are not event lines."""
    match = _LINE.match(line)
    if not match:
        return None
    fields = dict(_FIELD.findall(match.group("body")))
    reason = _REASON.search(match.group("body"))
    if reason:
        fields["reason"] = reason.group(1)
    return SkbTraceRecord(
        match.group("event"),
        fields,
        cpu=int(match.group("cpu")),
        timestamp=float(match.group("timestamp")),
        task=match.group("task"),
        pid=int(match.group("pid")),
    )


def parse_trace_text(text: str, events: Iterable[str] | None = None) -> TraceSnapshot:
    """Parse a whole ``trace`` file; keep only *events* (short names) if given."""
    keep = None if events is None else {e.rsplit("/", 1)[-1] for e in events}
    snapshot = TraceSnapshot()
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            entries = _ENTRIES.match(line)
            if entries:
                snapshot.entries_in_buffer = int(entries.group(1))
                snapshot.entries_written = int(entries.group(2))
            continue
        lost = _LOST.match(line)
        if lost:
            snapshot.lost += int(lost.group(2))
            continue
        record = parse_trace_line(line)
        if record is None:
            snapshot.unparsed.append(line)
        elif keep is None or record.event in keep:
            snapshot.records.append(record)
    return snapshot


# ---------------------------------------------------------------- signals


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a setup or cleanup step must finish whole.

    A Ctrl-C that arrives meanwhile is delivered when the block ends, so it
    still interrupts the program, just not half-way through an rmdir.
    """
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM unwinds like Ctrl-C (so finally-blocks run).

    Only possible from the main thread and only if nobody installed their
    own SIGTERM handler; otherwise it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# ---------------------------------------------------------------- tracefs


def tracefs_mounted(root: str = TRACEFS_ROOT) -> bool:
    return os.path.isdir(os.path.join(root, "instances"))


def ensure_tracefs(root: str = TRACEFS_ROOT) -> None:
    """Mount tracefs at *root* if it is not there yet."""
    if tracefs_mounted(root):
        return
    result = subprocess.run(["mount", "-t", "tracefs", "nodev", root],
                            capture_output=True, text=True)
    if result.returncode != 0 or not tracefs_mounted(root):
        raise InputError(f"cannot mount tracefs at {root}: {result.stderr.strip() or 'no instances dir'}")


def our_instances(root: str = TRACEFS_ROOT, pid: int | None = None) -> list[str]:
    """Names of instances this program made (of process *pid*, or of any)."""
    prefix = f"{INSTANCE_PREFIX}-{pid}-" if pid is not None else f"{INSTANCE_PREFIX}-"
    try:
        return sorted(n for n in os.listdir(os.path.join(root, "instances")) if n.startswith(prefix))
    except FileNotFoundError:
        return []


#: Names this program gives what it creates: "skbsim-<pid>-<n>" (namespaces, trace instances).
_OWNED_NAME = re.compile(rf"^{INSTANCE_PREFIX}-(\d+)-")


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists (signal 0 asks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, someone else's
        return True
    return True


def dead_owners(names: Iterable[str]) -> list[str]:
    """Those of ``names`` ("skbsim-<pid>-...") whose process is gone: what a SIGKILLed run left behind.

    Only a dead pid's names are returned: other skbsim processes (concurrent runs, other users'
    tests) keep theirs.  A pid reused by an unrelated process keeps its leftovers until that
    process ends too; that errs on the side of leaving things alone.
    """
    dead = []
    for name in names:
        match = _OWNED_NAME.match(name)
        if match and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
            dead.append(name)
    return dead


def remove_dead_instances(root: str = TRACEFS_ROOT) -> list[str]:
    """Remove the trace instances of skbsim processes that died without cleaning up (SIGKILL, a
    crash); the names removed.  Failures are ignored: another process may be removing them too."""
    removed = []
    for name in dead_owners(our_instances(root)):
        path = os.path.join(root, "instances", name)
        for control in ("tracing_on", "events/enable"):
            with contextlib.suppress(OSError):
                with open(os.path.join(path, control), "w") as handle:
                    handle.write("0\n")
        try:
            os.rmdir(path)
        except OSError:
            continue
        removed.append(name)
    return removed


def _write_control(path: str, text: str) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(text)
    except FileNotFoundError:
        raise InputError(f"{path}: no such tracefs control file (event not available?)") from None
    except OSError as exc:
        raise InputError(f"{path}: writing {text.strip()!r} failed: {exc.strerror}") from None


class TraceInstance:
    """``with TraceInstance(events, device="tap0") as trace: ... trace.take()``

    *events* are ``"system/event"`` names (e.g. ``net/netif_receive_skb_entry``).
    *device* sets ``name == "<device>"`` as the filter of every event; all
    skb events in net.h have that ``name`` field.  *filters* gives an
    event its own filter instead (for events without ``name``, such as
    ``skb/kfree_skb``).  *options* sets the instance's own trace options
    (``{"hash-ptr": "0"}`` prints kernel pointers as they are).
    """

    __slots__ = ("events", "device", "filters", "options", "root", "buffer_size_kb", "name", "path")

    def __init__(self, events: Iterable[str], device: str | None = None, *,
                 root: str = TRACEFS_ROOT, buffer_size_kb: int = 4096,
                 filters: dict[str, str] | None = None, options: dict[str, str] | None = None) -> None:
        self.events = tuple(events)
        if not self.events:
            raise InputError("no trace events chosen")
        for event in self.events:
            if not re.fullmatch(r"\w+/\w+", event):
                raise InputError(f"bad trace event name {event!r} (want system/event)")
        if device is not None and not _DEVICE_NAME.fullmatch(device):
            raise InputError(f"bad device name for a trace filter: {device!r}")
        self.device = device
        self.filters = dict(filters or {})
        self.options = dict(options or {})
        self.root = root
        self.buffer_size_kb = buffer_size_kb
        self.name: str | None = None
        self.path: str | None = None

    def __enter__(self) -> "TraceInstance":
        # A signal held during setup is raised when the block ends, i.e.
        # still inside __enter__, where no __exit__ will follow: undo here.
        try:
            with signals_deferred():
                ensure_tracefs(self.root)
                remove_dead_instances(self.root)
                self._make_directory()
                self._configure()
        except BaseException:
            with signals_deferred():
                self._remove()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        with signals_deferred():
            self._remove()

    def _make_directory(self) -> None:
        instances = os.path.join(self.root, "instances")
        for n in range(1000):
            name = f"{INSTANCE_PREFIX}-{os.getpid()}-{n}"
            path = os.path.join(instances, name)
            try:
                os.mkdir(path)
            except FileExistsError:
                continue
            except OSError as exc:
                raise InputError(f"cannot create tracefs instance {path}: {exc.strerror}") from None
            self.name, self.path = name, path
            return
        raise InputError(f"{instances}: no free {INSTANCE_PREFIX}-{os.getpid()}-N name")

    def _configure(self) -> None:
        assert self.path is not None
        _write_control(os.path.join(self.path, "buffer_size_kb"), f"{self.buffer_size_kb}\n")
        for option, value in self.options.items():
            _write_control(os.path.join(self.path, "options", option), f"{value}\n")
        for event in self.events:
            event_dir = os.path.join(self.path, "events", event)
            if event in self.filters:
                _write_control(os.path.join(event_dir, "filter"), self.filters[event] + "\n")
            elif self.device is not None:
                _write_control(os.path.join(event_dir, "filter"), f'name == "{self.device}"\n')
            _write_control(os.path.join(event_dir, "enable"), "1\n")
        _write_control(os.path.join(self.path, "tracing_on"), "1\n")

    def _remove(self) -> None:
        if self.path is None:
            return
        # Switch everything off first so rmdir has nothing in use; ignore
        # failures here, the rmdir below is what must succeed.
        for control in ("tracing_on", "events/enable"):
            with contextlib.suppress(OSError):
                with open(os.path.join(self.path, control), "w") as handle:
                    handle.write("0\n")
        for attempt in range(50):
            try:
                os.rmdir(self.path)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                # EBUSY while a reader still holds trace_pipe; retry briefly.
                if exc.errno != errno.EBUSY or attempt == 49:
                    raise InputError(f"cannot remove tracefs instance {self.path}: {exc.strerror}") from None
                threading.Event().wait(0.02)
        self.path = None

    # -- reading

    def _require_path(self) -> str:
        if self.path is None:
            raise InputError("trace instance is not active")
        return self.path

    def read(self) -> TraceSnapshot:
        """Everything now in the buffer (non-consuming read of ``trace``)."""
        path = os.path.join(self._require_path(), "trace")
        # Signals held so a Ctrl-C cannot leave the file open: an open
        # reader keeps the instance busy and rmdir would then fail.
        with signals_deferred(), open(path) as handle:
            text = handle.read()
        return parse_trace_text(text, self.events)

    def clear(self) -> None:
        """Empty the buffer (open ``trace`` with O_TRUNC).  Slow-ish: the
        kernel waits for an RCU grace period on every reset."""
        path = os.path.join(self._require_path(), "trace")
        with signals_deferred():
            os.close(os.open(path, os.O_WRONLY | os.O_TRUNC))

    def take(self) -> TraceSnapshot:
        """Consume and return what the buffer holds now.

        Reads ``trace_pipe`` without blocking until it is empty; the records
        read are gone from the buffer.  No entries-written header exists
        on this path, so completeness rests on the ``[LOST n EVENTS]``
        marks and on the caller's own counting.
        """
        path = os.path.join(self._require_path(), "trace_pipe")
        chunks: list[bytes] = []
        with signals_deferred():
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                while True:
                    try:
                        chunk = os.read(fd, 1 << 16)
                    except BlockingIOError:
                        break
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                os.close(fd)
        return parse_trace_text(b"".join(chunks).decode("utf-8", "replace"), self.events)
