"""Two threads for memory-bound passes over large arrays.

NumPy's elementwise ufuncs, copies and reductions run on one core but release the GIL, so two
threads that each take half of the batch axis finish a pass over a large array in ~0.55 of the
time on a 2-core machine (measured: relu over 25 MB, 1.77 ms -> 0.98 ms). Smaller arrays stay on
one thread, where a hand-off would cost more than it saves.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

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


def over_batch(work, rows, elements):
    """work(s) for s = slice(0, rows), or for its two halves on two threads when elements (the
    size of the arrays work touches) is large; work must write disjoint parts of its outputs."""
    if THREADS < 2 or rows < 2 or elements < MIN_ELEMENTS:
        work(slice(0, rows))
        return
    half = rows // 2
    job = executor().submit(work, slice(0, half))
    try:
        work(slice(half, rows))
    finally:
        job.result()


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
