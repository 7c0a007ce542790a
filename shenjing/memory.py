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
- ``fit``/``evaluate``/``predict`` hand back when they finish (``session``): M_TRIM_THRESHOLD
  and M_TOP_PAD go back to glibc's defaults (128 KiB), M_MMAP_THRESHOLD to 32 MiB, the ceiling
  glibc's own dynamic threshold grows to in a process that frees large arrays; then
  ``malloc_trim(0)`` if they leave more than SESSION_KEEPS (64 MiB) idle beyond what was idle
  when the setting was taken; unless another of them is still running in some thread (a
  process-wide count under a lock). NOTE: any mallopt of the mmap threshold turns glibc's
  dynamic threshold off for good, so a hand-back cannot give the dynamic one back. A static
  128 KiB would map every larger block afresh on each allocation (PyTorch's inference of the
  reference CNN in the same process ran 3x slower after one shenjing predict, measured); a trim
  threshold at the dynamic one's 64 MiB let each thread arena of a host keep that much at its
  top, where malloc_trim does not reach (16 host threads churning 400 MB each after a fit kept
  870 MB, release() or not). With these values PyTorch runs as fast as under glibc's own
  settings, and a host's threads keep freed blocks below 32 MiB in their arenas as glibc
  itself does once its dynamic threshold has risen (8 threads freeing 400 blocks of 1 MB each:
  ~180-280 MB, against ~180 MB in a plain process that had freed one 31 MB array), all within
  malloc_trim's reach: ``release()`` returns them. A process that shenjing never worked in
  keeps glibc's dynamic threshold.
- ``train_on_batch``/``test_on_batch``/``predict_on_batch`` and bare ops keep the setting
  between calls (a user's loop of them would otherwise lose the gain at every call), until
  shenjing has started no work for IDLE_HAND_BACK (30 s: the watcher, below, hands back);
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
glibc) there is no check and no watcher: the hand-backs and ``release()`` still work.

Between those checks, and while shenjing is idle, a host's threads may free memory too (the
setting stays after a bare op or a ``*_on_batch`` call). So while the setting is applied a
daemon thread, the watcher (``shenjing-memory``), wakes every WAKE (0.5 s): when at_work has not
checked since its last wake it runs the same check, ``malloc_trim`` outside the lock (it takes
~0.2 s per GB returned; mallocs wait on their arena's lock meanwhile, shenjing's checks do not);
a check thus runs within 2 * WAKE of any free. When shenjing has started no work (no at_work, no
op: ops/parallel.py's countdown, read through ``on_progress``; no fit/evaluate/predict running)
for IDLE_HAND_BACK, it hands back and exits: an idle process gets glibc's settings back and no
thread waking it, and a loop that pauses that long pays the step's fresh pages once (a single op
running longer than that is handed back too: the next op takes the setting again). It exits as
well at the next wake after any other hand-back, unless the setting was taken again meanwhile
(then it goes on), so there is at most one. Cost: 2 wakes a second, ~25 us each with the check
(~50 us of CPU a second); an in-process A/B of train_on_batch and bare-op loops with and without
it showed no difference beyond the noise; at_work pays two global stores. A forked child keeps
the parent's setting and gets a watcher of its own (``register_at_fork``).

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
import time

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # from glibc's malloc.h
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 512 << 20
TOP_PAD = 64 << 20
GLIBC_DEFAULT = 128 << 10  # man mallopt: the default of all three settings
# glibc's DEFAULT_MMAP_THRESHOLD_MAX, the ceiling of its dynamic threshold (malloc.c): the mmap
# threshold a hand-back leaves (see the docstring)
DYNAMIC_MMAP_MAX = (4 << 20) * ctypes.sizeof(ctypes.c_long) if ctypes.sizeof(
    ctypes.c_long) == 8 else 512 << 10
# NOTE: fit/evaluate/predict trim at their end only when they leave more idle than this beyond
# what was idle when the setting was taken. Trimming less made every predict of a serving loop
# fault its pages in again (the reference CNN's predict at batch 256: 1.24-1.51x the time of
# predict_on_batch, measured; ~1.0x with this).
SESSION_KEEPS = 64 << 20
LIMIT = 512 << 20  # free bytes kept beyond the floor before at_work trims (see the docstring)
OPS_PER_CHECK = 64  # ops/parallel.py calls at_work once per this many outermost ops
WAKE = 0.5  # seconds between the watcher's wakes (see the docstring)
IDLE_HAND_BACK = 30.0  # seconds without shenjing's work after which the watcher hands back

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
_progress = []  # callables whose value changes as ops run (on_progress)
_work = 0  # pieces of work started (at_work, session): the watcher tells idle from working
_checked = False  # whether at_work ran the limit check since the watcher's last wake
_watcher = None  # the watcher thread: while the setting is applied, and at most WAKE after
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
    """Take the setting if it is on and not applied yet, and start the watcher (_lock held)."""
    global kept, _floor
    if kept or not _enabled or _libc is None:
        return
    _set(MMAP_THRESHOLD, TRIM_THRESHOLD, TOP_PAD)
    kept = True
    if _mallinfo2 is not None:
        _floor = _idle_bytes(_mallinfo2())
        _start_watcher()


def _start_watcher():
    """Start the watcher unless one runs (_lock held): after a hand-back the last one goes on
    if the setting is taken again before it wakes."""
    global _watcher
    if _watcher is None and _mallinfo2 is not None:
        _watcher = threading.Thread(target=_watch, name="shenjing-memory", daemon=True)
        _watcher.start()


def _take_back():
    """The hand-back's settings (_lock held; see the docstring); then _trim(handed_back=True)."""
    global kept
    if kept:
        _set(DYNAMIC_MMAP_MAX, GLIBC_DEFAULT, GLIBC_DEFAULT)
        kept = False


def _trim(handed_back=False, unless_within=0):
    """malloc_trim(0) without _lock held (~0.2 s per GB returned: mallocs wait on their arena's
    lock, shenjing's checks do not wait), then the floor follows; after a hand-back, ops check
    again at the next op. unless_within: no trim while idle memory exceeds the floor by no more
    than that (a session's end: see SESSION_KEEPS)."""
    global _floor
    if unless_within and _mallinfo2 is not None:
        with _lock:
            floor = _floor
        if _idle_bytes(_mallinfo2()) - floor <= unless_within:
            if handed_back:
                for callback in _after_release:
                    callback()
            return
    _libc.malloc_trim(0)
    if _mallinfo2 is not None:
        idle = _idle_bytes(_mallinfo2())
        with _lock:
            _floor = idle
    if handed_back:
        for callback in _after_release:
            callback()


def _over_limit() -> bool:
    """Whether idle memory exceeds the floor by more than _limit (_lock held; mallinfo2)."""
    global _floor
    info = _mallinfo2()
    if info.fordblks <= _limit:  # malloc holds less than the limit free, resident or not
        return False
    idle = _idle_bytes(info)
    _floor = min(_floor, idle)
    return idle - _floor > _limit


def at_work() -> None:
    """A piece of shenjing's work starts (a batch, or every OPS_PER_CHECK-th op): take the
    setting if it is on, else keep what is kept within the limit."""
    global _work, _checked
    if not kept and (not _enabled or _libc is None):
        return
    trim = False
    with _lock:
        _work += 1
        if kept:
            if _mallinfo2 is not None:
                trim, _checked = _over_limit(), True
        else:
            _apply()
    if trim:
        _trim()


def _watch_once(state) -> bool:
    """One wake of the watcher; state: [work seen at the last wake, when it was first seen].
    False when the watcher should exit (handed back, by others or here)."""
    global _watcher, _checked
    seen = (_work, *(progress() for progress in _progress))
    now, trim, handed_back = time.monotonic(), False, False
    with _lock:
        if not kept or _watcher is not threading.current_thread():
            if _watcher is threading.current_thread():
                _watcher = None
            return False
        if seen != state[0] or _sessions:
            state[0], state[1] = seen, now
        if now - state[1] >= IDLE_HAND_BACK:  # no work started for that long: hand back
            _take_back()
            _watcher, handed_back = None, True
        elif _checked:  # at_work checked since the last wake
            _checked = False
        else:
            trim = _over_limit()
    if handed_back:
        _trim(handed_back=True)
        return False
    if trim:
        _trim()
    return True


def _watch():
    """The watcher thread (daemon): wakes every WAKE seconds while the setting is applied."""
    state = [None, time.monotonic()]
    while True:
        time.sleep(WAKE)
        if not _watch_once(state):
            return


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
        global _sessions, _work
        with _lock:
            _sessions += 1
            _work += 1
            _apply()
        try:
            return method(*args, **kwargs)
        finally:
            with _lock:
                _sessions -= 1
                last = _sessions == 0 and kept
                if last:
                    _take_back()
            if last:
                _trim(handed_back=True, unless_within=SESSION_KEEPS)
    return wrapper


def release() -> bool:
    """Hand back now: glibc's defaults if shenjing's setting is applied, then malloc_trim(0);
    the next piece of shenjing's work takes the setting again. True where glibc is."""
    if _libc is None:
        return False
    with _lock:
        _take_back()
    _trim(handed_back=True)
    return True


def on_release(callback) -> None:
    """Run callback() after each hand-back: ops/parallel.py then checks again at the next op."""
    _after_release.append(callback)


def on_progress(value) -> None:
    """value() changes as ops run (ops/parallel.py's countdown): the watcher sees work by it."""
    _progress.append(value)


def set_enabled(enabled: bool, limit: int | None = None) -> None:
    """Turn the setting on or off for this process (off: defaults and a trim at once); limit
    in bytes replaces LIMIT. Used by shenjing.config.set_keep_memory."""
    global _enabled, _limit
    with _lock:
        _enabled = enabled
        if limit is not None:
            _limit = limit
        handed_back = not enabled and kept
        if handed_back:
            _take_back()
        elif enabled and _sessions:
            _apply()
    if handed_back:
        _trim(handed_back=True)
    if enabled:
        for callback in _after_release:  # bare ops take it at the next op, not 64 ops later
            callback()


def is_enabled() -> bool:
    """Whether shenjing takes the setting when its work starts."""
    return _enabled


def _after_fork():
    """A forked child has none of the parent's threads, so none holds the lock; it keeps the
    parent's malloc setting, so it gets a watcher of its own."""
    global _lock, _watcher
    _lock, _watcher = threading.Lock(), None
    if kept:
        with _lock:
            _start_watcher()


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
