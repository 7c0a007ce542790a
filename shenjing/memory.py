"""Keep freed memory for reuse while shenjing works, within a stated bound, and hand it back.

Why: glibc's malloc hands arrays above its mmap threshold (128 KiB, growing to at most 32 MiB)
to the kernel and back on every allocation: each training step then maps, zero-fills and faults
in every large activation again, about 1 ms per 6 MB, which costs a CNN training step a quarter
of its time (turning this off makes the reference CNN step ~75% slower). So while shenjing works
it raises the thresholds with ``mallopt`` (M_MMAP_THRESHOLD 64 MiB, M_TRIM_THRESHOLD 512 MiB,
M_TOP_PAD 64 MiB), and freed blocks stay in the process for the next step.

When (Linux with glibc only; elsewhere nothing happens):
- Importing shenjing changes nothing. The setting is applied when shenjing's own work starts:
  ``fit``/``evaluate``/``predict``, a ``*_on_batch`` call, or the first op (ops/parallel.py).
- ``fit``/``evaluate``/``predict`` hand back when they finish (``session``): glibc's documented
  defaults again (all three 128 KiB), then ``malloc_trim(0)``; unless another of them is still
  running in some thread (a process-wide count under a lock). NOTE: any mallopt of the mmap
  threshold turns off glibc's dynamic threshold, so after a hand-back blocks above 128 KiB are
  always mapped afresh; a process that shenjing never worked in keeps glibc's dynamic one.
- ``train_on_batch``/``test_on_batch``/``predict_on_batch`` and bare ops keep the setting
  between calls (a user's loop of them would otherwise lose the gain at every call);
  ``release()`` hands back on demand, and the next piece of work takes the setting again.

The bound: the thresholds hold per malloc arena, and glibc gives each thread of the process an
arena (up to 8 per core), so alone they would let a host whose threads churn memory keep
~0.5 GiB per thread. So at every batch of fit/evaluate/predict/*_on_batch and every
OPS_PER_CHECK-th op (ops/parallel.py), ``at_work`` checks: when malloc holds more than ``LIMIT``
(512 MiB) free (``mallinfo2().fordblks``, all arenas; glibc >= 2.33; ~3 us, the whole check
when below), it reads the resident anonymous memory malloc's callers do not use (/proc/self/statm
less mallinfo2's in-use bytes; ~10-30 us) and calls ``malloc_trim(0)`` when that exceeds by
more than LIMIT its value when the setting was applied or after the last trim (the floor; it
follows the value down). Resident, because fordblks still counts what a trim has released, and
a host's threads reusing and freeing that would go unseen; over a floor, because memory a trim
cannot return (and memory outside malloc) should not make every batch trim. Measured between
steps by that count: the reference CNN training step (batch 64) keeps 35 MiB, its inference
(batch 256) 40 MiB, an LSTM step 63 MiB (fordblks: 162 MiB), so none of them trims. malloc_trim
returns every arena's free pages except the top of each thread arena's last heap (at most
64 MiB each, as much as glibc's own dynamic threshold keeps there). Without mallinfo2 (older
glibc) there is no check: the hand-backs and ``release()`` still work.

Off: ``SHENJING_KEEP_MEMORY=0`` in the environment (read on import), or
``shenjing.config.set_keep_memory(False)`` (restores the defaults and trims at once). Nothing
is applied either when the environment already tunes these settings (``MALLOC_*_`` variables,
``glibc.malloc.*`` in GLIBC_TUNABLES): the host's choice stands.

``new_block`` gives memory for buffers that are reused every step: it starts on a cache line
(NumPy's arrays start 16 bytes into one) and comes from huge pages when large.
"""

import ctypes
import ctypes.util
import functools
import mmap
import os
import sys
import threading

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # from glibc's malloc.h
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 512 << 20
TOP_PAD = 64 << 20
GLIBC_DEFAULT = 128 << 10  # man mallopt: the default of all three settings
LIMIT = 512 << 20  # free bytes kept beyond the floor before at_work trims (see the docstring)
OPS_PER_CHECK = 64  # ops/parallel.py calls at_work once per this many outermost ops

_OFF = ("0", "false", "no", "off")
_TUNABLES = ("mmap_threshold", "trim_threshold", "top_pad")


def env_flag(name: str) -> bool:
    """False when the environment variable name is '0', 'false', 'no' or 'off', else True."""
    return os.environ.get(name, "1").strip().lower() not in _OFF


def _tuned_by_environment() -> bool:
    """Whether the environment sets any of the three malloc settings itself."""
    if any(f"MALLOC_{name.upper()}_" in os.environ for name in _TUNABLES):
        return True
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(f"glibc.malloc.{name}" in tunables for name in _TUNABLES)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _load_libc():
    """glibc's C library with mallopt/malloc_trim typed, or None on other systems and libcs."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):  # musl
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    if hasattr(libc, "mallinfo2"):  # glibc >= 2.33
        libc.mallinfo2.argtypes, libc.mallinfo2.restype = (), _MallInfo2
    return libc


_libc = _load_libc()
_mallinfo2 = getattr(_libc, "mallinfo2", None)
_lock = threading.Lock()
_enabled = env_flag("SHENJING_KEEP_MEMORY") and not _tuned_by_environment()
_limit = LIMIT
_sessions = 0  # fit/evaluate/predict calls running now, in all threads
_floor = 0  # _idle_bytes() when the setting was applied or after the last trim
_after_release = []  # callbacks each hand-back runs (on_release)
kept = False  # whether shenjing's setting is applied now
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _idle_bytes(info) -> int:
    """Resident anonymous memory not in use by malloc's callers (info: mallinfo2()): what
    malloc keeps free, plus memory outside malloc (Python's object arenas), which the floor
    takes out. fordblks alone will not do: it still counts what a trim has released."""
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    try:
        fields = os.read(fd, 256).split()
    finally:
        os.close(fd)
    return (int(fields[1]) - int(fields[2])) * _PAGE - info.uordblks - info.hblkhd


def _set(mmap_threshold, trim_threshold, top_pad):
    _libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
    _libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)
    _libc.mallopt(M_TOP_PAD, top_pad)


def _apply():
    """Take the setting if it is on and not applied yet (with _lock held)."""
    global kept, _floor
    if kept or not _enabled or _libc is None:
        return
    _set(MMAP_THRESHOLD, TRIM_THRESHOLD, TOP_PAD)
    kept = True
    if _mallinfo2 is not None:
        _floor = _idle_bytes(_mallinfo2())


def _hand_back():
    """glibc's documented defaults again, and what was kept back to the system (_lock held)."""
    global kept
    if kept:
        _set(GLIBC_DEFAULT, GLIBC_DEFAULT, GLIBC_DEFAULT)
        kept = False
    _libc.malloc_trim(0)
    for callback in _after_release:
        callback()


def _check_limit():
    """malloc_trim(0) when idle memory exceeds the floor by more than _limit (_lock held)."""
    global _floor
    info = _mallinfo2()
    if info.fordblks <= _limit:  # malloc holds less than the limit free, resident or not
        return
    idle = _idle_bytes(info)
    if idle < _floor:
        _floor = idle
    elif idle - _floor > _limit:
        _libc.malloc_trim(0)
        _floor = _idle_bytes(_mallinfo2())


def at_work() -> None:
    """A piece of shenjing's work starts (a batch, or every OPS_PER_CHECK-th op): take the
    setting if it is on, else keep what is kept within the limit."""
    if not kept and (not _enabled or _libc is None):
        return
    with _lock:
        if kept:
            if _mallinfo2 is not None:
                _check_limit()
        else:
            _apply()


def at_batch(method):
    """Decorator for a per-batch method (train/test step, predict_on_batch): at_work first."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        at_work()
        return method(*args, **kwargs)
    return wrapper


def session(method):
    """Decorator for fit/evaluate/predict: the setting while it runs, handed back when the
    last such call running in the process finishes (see the module docstring)."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        global _sessions
        with _lock:
            _sessions += 1
            _apply()
        try:
            return method(*args, **kwargs)
        finally:
            with _lock:
                _sessions -= 1
                if _sessions == 0 and kept:
                    _hand_back()
    return wrapper


def release() -> bool:
    """Hand back now: glibc's defaults if shenjing's setting is applied, then malloc_trim(0);
    the next piece of shenjing's work takes the setting again. True where glibc is."""
    if _libc is None:
        return False
    with _lock:
        _hand_back()
    return True


def on_release(callback) -> None:
    """Run callback() after each hand-back: ops/parallel.py then checks again at the next op."""
    _after_release.append(callback)


def set_enabled(enabled: bool, limit: int | None = None) -> None:
    """Turn the setting on or off for this process (off: defaults and a trim at once); limit
    in bytes replaces LIMIT. Used by shenjing.config.set_keep_memory."""
    global _enabled, _limit
    with _lock:
        _enabled = enabled
        if limit is not None:
            _limit = limit
        if not enabled and kept:
            _hand_back()
        elif enabled and _sessions:
            _apply()
    if enabled:
        for callback in _after_release:  # bare ops take it at the next op, not 64 ops later
            callback()


def is_enabled() -> bool:
    """Whether shenjing takes the setting when its work starts."""
    return _enabled


def _after_fork():
    """A forked child has none of the parent's threads, so none holds the lock."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


# ----- aligned buffers ------------------------------------------------------------------------
# NOTE: in an array that starts 16 bytes into a cache line, every 64-byte (AVX-512) load
# straddles two lines; buffers from huge pages also spare the TLB misses of walking 4 KiB pages.
# Together they made an LSTM training step (W3) 5-7% faster (in-process A/B).

ALIGN = 64  # bytes: one cache line, one AVX-512 register
HUGE_PAGE = 2 << 20
HUGE_FROM = 1 << 20  # smaller blocks would waste more than half of a huge page
_PRIVATE_MAPS = hasattr(mmap, "MAP_PRIVATE") and hasattr(mmap, "MADV_HUGEPAGE")


def new_block(nbytes: int):
    """(buffer, offset): nbytes of writable memory from buffer[offset:], cache-line aligned.
    From HUGE_FROM up it is a private anonymous map, rounded up to whole huge pages and marked
    for transparent huge pages (Linux; ignored where the kernel does not offer them); for
    blocks kept and reused, since a fresh map faults in its pages on first touch."""
    if nbytes >= HUGE_FROM and _PRIVATE_MAPS:
        block = mmap.mmap(-1, -(-nbytes // HUGE_PAGE) * HUGE_PAGE,
                          flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            block.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass
        return block, 0
    block = bytearray(nbytes + ALIGN)
    return block, -ctypes.addressof(ctypes.c_char.from_buffer(block)) % ALIGN
