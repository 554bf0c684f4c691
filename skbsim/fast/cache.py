"""Where numba keeps the fast engine's compiled code, and compiling it before a run needs it.

numba's own cache (``cache=True``) lives beside each source file and is keyed
by that file alone.  Two things go wrong with that here: a checkout and the
same version installed by pip compile twice (the test suite imports the
checkout, ``skbsim`` the installed copy), and a caller whose file did not
change keeps calling a stale copy of a callee that did (numba inlines
callees across files).  So every compiled function of skbsim is cached by
:class:`_Locator` in one directory per user (``$NUMBA_CACHE_DIR/skbsim`` if
that is set, else ``$XDG_CACHE_HOME/skbsim`` or ``~/.cache/skbsim``, else the
temporary directory), under a stamp that hashes *every* source file whose
code gets compiled (:data:`COMPILED_SOURCES`): whichever copy of the sources
is imported, the same code finds the same cache, and any change to any of
them recompiles everything.

Compiling takes three to seven minutes, once per version (by machine).  ``skbsim run`` asks
:func:`prepare` first: with the cache ready it uses the fast engine; when
the cache is not ready and the runs are small (at most
:data:`SMALL_RUN_FRAMES` synthetic frames in all, a few seconds on the
reference engine) they run on the reference engine while a background
process compiles (``python -m skbsim.fast``); larger runs compile
in the foreground after saying so.  ``SKBSIM_COMPILE=foreground`` makes
every not-ready case compile in the foreground (the test suite sets it).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
#: the files (relative to the skbsim package) that compiled code comes from: the fast engine's compiled
#: modules (and layout.py's constants) and the model modules whose kernel rules it shares; a compiled
#: function defined elsewhere is refused by register() until its file is added here
COMPILED_SOURCES = ("fast/layout.py", "fast/state.py", "fast/mm.py", "fast/slub.py", "fast/napi.py", "fast/sock.py",
                    "fast/rx.py", "fast/tun.py", "fast/poll.py", "fast/loop.py", "fast/traffic.py", "fast/rules.py", "profile.py",
                    "net/sock.py", "net/skbuff.py", "mm/*.py", "drivers/ice.py", "fast/page_pool.py",
                    "fast/pp_drivers.py", "net/page_pool.py", "fast/virtio.py", "drivers/virtio_net.py",
                    "fast/libeth.py", "drivers/libeth.py",
                    "fast/mlx5.py", "drivers/mlx5.py",  # -- mlx5 --
                    "fast/bnxt.py",  # -- bnxt --
                    "fast/gve.py",  # -- gve --
                    # -- GRO --
                    "fast/gro.py", "net/gro.py", "net/ipv4/af_inet.py", "net/ipv4/tcp_offload.py",
                    # -- TCP --
                    "net/ipv4/tcp.py", "net/ipv4/tcp_input.py", "net/ipv4/tcp_output.py", "net/ipv4/tcp_ipv4.py",
                    "net/core_sock.py", "fast/tcp.py", "fast/tcp_sender.py", "fast/tcp_run.py",
                    "fast/tcp_events.py", "tcp_sender.py", "traffic/frame.py",
                    "fast/tcp_pressure.py",  # -- TCP pressure --
                    "fast/tcp_napi.py",  # -- TCP through NAPI drivers --
                    "fast/tcp_trace.py",  # -- TCP trace --
                    "fast/ntb.py",  # ntb_netdev
                    "sockets.py",  # -- TCP capture --: tcp_run reads its OLD_DATA drop reasons
                    )
#: synthetic frames in all below which a run without the compiled cache uses the reference engine
#: (about three seconds there) while the cache is built in the background
SMALL_RUN_FRAMES = 200_000


def _covered(path: Path) -> bool:
    try:
        relative = path.resolve().relative_to(PACKAGE).as_posix()
    except ValueError:
        return False
    return any(fnmatch.fnmatchcase(relative, pattern) for pattern in COMPILED_SOURCES)


@functools.lru_cache(maxsize=None)
def source_tag() -> str:
    """A hash of every compiled source file, numba's version and Python's: the cache's key."""
    import numba

    digest = hashlib.sha256(f"{numba.__version__} {sys.version_info[:2]}".encode())
    files = sorted({path for pattern in COMPILED_SOURCES for path in PACKAGE.glob(pattern)})
    for path in files:
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


@functools.lru_cache(maxsize=None)
def cache_root() -> Path | None:
    """The first writable directory of $NUMBA_CACHE_DIR/skbsim, $XDG_CACHE_HOME/skbsim, ~/.cache/skbsim
    and <tmp>/skbsim-<uid>; None when there is none (numba's own locators are used then)."""
    candidates = []
    if os.environ.get("NUMBA_CACHE_DIR"):
        candidates.append(Path(os.environ["NUMBA_CACHE_DIR"]) / "skbsim")
    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates.append(Path(xdg) / "skbsim" if xdg else Path.home() / ".cache" / "skbsim")
    candidates.append(Path(tempfile.gettempdir()) / f"skbsim-{os.getuid()}")
    for root in candidates:
        try:
            root.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=root).close()
        except OSError:
            continue
        return root
    return None


def _numba_locator_base():
    from numba.core import caching

    return caching._CacheLocator


class _Locator(_numba_locator_base()):
    """numba's cache locator for skbsim's compiled functions: one directory per source directory under
    cache_root(), stamped with source_tag() instead of the one file's hash."""

    def __init__(self, py_func, py_file):
        self._lineno = py_func.__code__.co_firstlineno
        relative = Path(py_file).resolve().parent.relative_to(PACKAGE)
        self._cache_path = str(_tag_dir() / relative)

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        return source_tag()

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if cache_root() is None or not _covered(Path(py_file)):
            return None
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:
            return None
        return self


def install() -> None:
    """Put _Locator first in numba's list of cache locators (once)."""
    from numba.core import caching

    classes = caching.CacheImpl._locator_classes
    if _Locator not in classes:
        classes.insert(0, _Locator)


def register(fn) -> None:
    """Check that a function about to be compiled is in COMPILED_SOURCES (so the cache tracks it)."""
    import inspect

    path = Path(inspect.getfile(fn))
    if not _covered(path):
        raise RuntimeError(f"{fn.__qualname__} in {path} is compiled but its file is not in "
                           "skbsim.fast.cache.COMPILED_SOURCES, so the compiled cache would not follow its changes")


# -- compiling ahead of a run ------------------------------------------------------------------------


def _tag_dir() -> Path:
    """The cache of these sources: one directory per source_tag(), so that versions (or checkouts) in
    use side by side do not overwrite each other's cache."""
    return cache_root() / source_tag()


def _marker() -> Path | None:
    return None if cache_root() is None else _tag_dir() / "ready"


#: caches of other sources unused for this long are removed when a new one is compiled
STALE_DAYS = 60


def _remove_stale() -> None:
    import shutil

    now = time.time()
    for entry in cache_root().iterdir():
        marker = entry / "ready"
        if entry.is_dir() and entry.name != source_tag() and marker.exists():
            if now - marker.stat().st_mtime > STALE_DAYS * 86400:
                shutil.rmtree(entry, ignore_errors=True)


def ready() -> bool:
    """True when every compiled function of the fast engine is in the cache for these sources (the
    marker's time is refreshed: it says when this cache was last used)."""
    marker = _marker()
    if marker is None or not marker.exists():
        return False
    try:
        marker.touch()
    except OSError:
        pass
    return True


def compile_now() -> float:
    """Compile (or load) every compiled function of the fast engine: a few tiny runs that reach all of
    them; then mark the cache ready.  Waits for a compile under way in another process.  Returns
    the seconds taken."""
    import fcntl

    started = time.perf_counter()
    root = cache_root()
    lock = open(root / "compile.lock", "w") if root is not None else None
    try:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready():
            _tiny_runs()
            if root is not None:
                _marker().touch()
                _remove_stale()
    finally:
        if lock is not None:
            lock.close()
    return time.perf_counter() - started


def _tiny_runs() -> None:
    from skbsim.fast.engine import simulate_fast
    from skbsim.sim import RunConfig

    simulate_fast(RunConfig(count=10))  # the event loop and the teardown, for every driver
    simulate_fast(RunConfig(traffic="tcp-bulk", count=10))  # GRO's tcp-bulk facts (gro._tcp_bulk_facts)
    with tempfile.TemporaryDirectory(prefix="skbsim-compile-") as tmp:
        path = Path(tmp) / "frames.pcap"
        frame = bytes.fromhex("020000000001020000000002") + b"\x88\xb5" + bytes(586)
        record = (0).to_bytes(4, "little") * 2 + len(frame).to_bytes(4, "little") * 2 + frame
        header = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")
        path.write_bytes(header + record * 3)
        # the classic pcap reader and, for rx=legacy, its header table
        simulate_fast(RunConfig(traffic=f"pcap:{path}", count=None, rate=None))


def compile_in_background() -> None:
    """When this process exits, start one that compiles the fast engine at low priority and exits (it
    does nothing when another holds the lock: that one is compiling).  Not before: the runs of this
    process should have the CPUs to themselves."""
    import atexit
    import subprocess

    def start():
        subprocess.Popen([sys.executable, "-m", "skbsim.fast", "--if-idle"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         close_fds=True, preexec_fn=lambda: os.nice(19))
    atexit.register(start)


def prepare(configs, say) -> str:
    """The engine ``skbsim run --engine fast`` should use for these runs: 'fast', after compiling in
    the foreground if needed (said through say(line)), or 'reference' while the cache is built in the
    background, for small runs (also said)."""
    from skbsim.fast.engine import unsupported
    from skbsim.sim import resolve_socket

    runs = [config for config in map(resolve_socket, configs) if unsupported(config) is None]
    if not runs or ready():
        return "fast"
    from skbsim.sim import Simulation

    for config in runs:
        Simulation(config)  # bad input (a missing capture, ...) is reported before anything is said here
    frames = [config.count for config in runs]  # None: a whole capture, of unknown length
    small = None not in frames and sum(frames) <= SMALL_RUN_FRAMES
    if small and os.environ.get("SKBSIM_COMPILE", "background") != "foreground" and cache_root() is not None:
        compile_in_background()
        say("skbsim: the fast engine is not compiled yet; it is being compiled in the background (once per "
            "version, 3-7 min) and this run uses the reference engine, which gives the same results")
        return "reference"
    say("skbsim: compiling the fast engine (once per version, 3-7 min)...")
    seconds = compile_now()
    say(f"skbsim: compiled in {seconds:.1f} s")
    return "fast"


def main(argv=None) -> int:
    """python -m skbsim.fast [--if-idle]: compile the fast engine into the cache now (for an image or a
    CI job, once after installing); with --if-idle do nothing when another process is compiling."""
    import argparse
    import fcntl

    parser = argparse.ArgumentParser(prog="python -m skbsim.fast", description=main.__doc__.split(";")[0])
    parser.add_argument("--if-idle", action="store_true", help="exit at once if another process is compiling")
    args = parser.parse_args(argv)
    root = cache_root()
    if args.if_idle and root is not None:
        with open(root / "compile.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0
    seconds = compile_now()
    if not args.if_idle:
        print(f"skbsim: the fast engine is compiled ({seconds:.1f} s) into {root}")
    return 0
