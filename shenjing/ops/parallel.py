"""Two threads for the passes over large arrays, and the BLAS kept out of their way.

NumPy's elementwise ufuncs, copies and reductions run on one core but release the GIL, so two
threads that each take half of the batch axis finish a pass over a large array in ~0.55 of the
time on a 2-core machine (measured: relu over 25 MB, 1.77 ms -> 0.98 ms). Smaller arrays stay on
one thread, where a hand-off would cost more than it saves.

OpenBLAS's own worker threads spin for a while after each product, taking the second core from
those passes; so while a shenjing op runs (``own_threads()``), NumPy's OpenBLAS is told to use
one thread, and large products are split over the two threads here instead (``matmul``). That
took the reference CNN's training step from 38 to 28 ms. OpenBLAS's thread count is one number
for the whole process (its ``_local`` setter too), so while an op runs, other threads' products
also run on one thread; the setting is restored when the outermost op of the thread that set it
returns, and left alone where it already is 1 or the machine has one core. Other BLAS libraries
(MKL, Accelerate) are left alone. ``SHENJING_BLAS_ONE_THREAD=0`` (read on import) or
``shenjing.config.set_blas_one_thread(False)`` turns the narrowing off (turned off while an op
runs in this thread, the BLAS gets its setting back at once; other threads' ops restore theirs
when they return).

``own_threads`` is also where ops tell shenjing.memory that work runs: the first op takes the
malloc setting, and every memory.OPS_PER_CHECK-th keeps what is kept within its limit; the per-op
cost is one module-global countdown, which memory's watcher also reads to see ops running.
"""

import ctypes
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import memory

THREADS = max(1, min(2, os.cpu_count() or 1))
MIN_ELEMENTS = 1 << 19  # below this, one thread (hand-off ~20 us vs ~50 us of work)

_executor = None
_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The shared pool of THREADS - 1 worker threads (the caller's thread is the other one)."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max(1, THREADS - 1), thread_name_prefix="shenjing")
        return _executor


def _after_fork():
    """A forked child has none of the parent's threads: start a fresh pool."""
    global _executor, _lock
    _executor, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _openblas_controls():
    """(set_num_threads, get_num_threads) of the OpenBLAS NumPy loaded, or None (Linux only)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so[.\d]*)", maps.read())))
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                    return setter, getter
    return None


_blas = _openblas_controls()
_state = threading.local()  # depth of own_threads, and the BLAS setting it saved
_narrow_blas = memory.env_flag("SHENJING_BLAS_ONE_THREAD")
_ops_to_memory_check = 0  # the first op takes the malloc setting (shenjing.memory)


def _memory_check():
    global _ops_to_memory_check
    _ops_to_memory_check = memory.OPS_PER_CHECK
    memory.at_work()


def _check_at_next_op():
    global _ops_to_memory_check
    _ops_to_memory_check = 0


memory.on_release(_check_at_next_op)
memory.on_progress(lambda: _ops_to_memory_check)  # changes as ops start: not idle


def set_blas_one_thread(enabled: bool) -> None:
    """Whether ops narrow NumPy's OpenBLAS to one thread while they run (see the docstring)."""
    global _narrow_blas
    _narrow_blas = enabled
    saved = getattr(_state, "saved", None)
    if not enabled and getattr(_state, "depth", 0) and saved not in (None, 1):
        _blas[0](saved)  # inside an op of this thread: the setting back now, not at its exit
        _state.saved = None


def blas_one_thread() -> bool:
    return _narrow_blas


class own_threads:
    """Within: NumPy's OpenBLAS on one thread (restored on exit); nests, per thread."""

    __slots__ = ()

    def __enter__(self):
        global _ops_to_memory_check
        depth = getattr(_state, "depth", 0)
        _state.depth = depth + 1
        if depth == 0:
            _ops_to_memory_check -= 1
            if _ops_to_memory_check < 0:
                _memory_check()
            _state.saved = None
            if _narrow_blas and _blas is not None and THREADS > 1:
                _state.saved = _blas[1]()
                if _state.saved != 1:
                    _blas[0](1)

    def __exit__(self, *exc):
        _state.depth -= 1
        if _state.depth == 0 and _state.saved not in (None, 1):
            _blas[0](_state.saved)


class blas_threads:
    """Within own_threads: the BLAS's own threads back for a while, for ops made of products
    that it splits better than we do (the recurrent ops' per-step products)."""

    __slots__ = ()

    def __enter__(self):
        if getattr(_state, "depth", 0) and _state.saved not in (None, 1):
            _blas[0](_state.saved)

    def __exit__(self, *exc):
        if getattr(_state, "depth", 0) and _state.saved not in (None, 1):
            _blas[0](1)


def worth_splitting(rows, elements):
    """Whether to split work over two threads: a large one, and not already inside a split."""
    return (THREADS > 1 and rows > 1 and elements >= MIN_ELEMENTS
            and not getattr(_state, "splitting", False))


def _marked(work, *args):
    """work(*args) with this thread marked as inside a split (nested splits run serially)."""
    _state.splitting = True
    try:
        return work(*args)
    finally:
        _state.splitting = False


def over_batch(work, rows, elements):
    """work(s) for s = slice(0, rows), or for its two halves on two threads when elements (the
    size of the arrays work touches) is large; work must write disjoint parts of its outputs."""
    if not worth_splitting(rows, elements):
        work(slice(0, rows))
        return
    halves(work, rows)


def halves(work, rows):
    """[work(slice(0, rows // 2)), work(slice(rows // 2, rows))], the two on two threads (the
    caller decides with worth_splitting that it is worth it)."""
    half = rows // 2
    job = executor().submit(_marked, work, slice(0, half))
    try:
        second = _marked(work, slice(half, rows))
    finally:
        first = job.result()
    return [first, second]


def ufunc(f, *args, out):
    """f(*args, out=out), out and the array arguments of its shape split along axis 0 into
    halves on two threads when large; other arguments (scalars, broadcast rows) pass whole."""
    if out.ndim == 0:
        return f(*args, out=out)
    rows = out.shape[0]

    def work(s):
        parts = [a[s] if isinstance(a, np.ndarray) and a.ndim == out.ndim and a.shape[0] == rows
                 else a for a in args]
        f(*parts, out=out[s])

    over_batch(work, rows, out.size)
    return out


def matmul(a, b, out=None):
    """a (M, K) @ b (K, N), the rows of a in two halves on two threads when large."""
    if out is None:
        out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    rows = a.shape[0]
    # a product does many flops per element it touches, so its size counts 8x against
    # MIN_ELEMENTS: smaller products than passes are worth splitting
    over_batch(lambda s: np.matmul(a[s], b, out=out[s]), rows,
               rows * (a.shape[1] + b.shape[1]) * 8)
    return out


def matmul_tn(a, b):
    """a^T @ b over the last two axes (a (..., M, K), b (..., M, N) -> (..., K, N)): the shared
    M axis in two halves on two threads when large, the partial products added."""
    rows = a.shape[-2]
    if not worth_splitting(rows, a.size + b.size):
        return np.matmul(a.swapaxes(-1, -2), b)
    first, rest = halves(lambda s: np.matmul(a[..., s, :].swapaxes(-1, -2), b[..., s, :]), rows)
    rest += first
    return rest
