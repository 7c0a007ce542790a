"""Every core for the passes over large arrays, and the BLAS kept out of their way.

NumPy's elementwise ufuncs, copies and reductions run on one core but release the GIL, so THREADS
threads that each take a part of the batch axis finish a pass over a large array in a fraction
of the time (measured on a 2-core machine: relu over 25 MB, 1.77 ms -> 0.98 ms). Smaller arrays
stay on one thread, where a hand-off would cost more than it saves: a part gets at least
MIN_ELEMENTS / 2 elements (so 2 parts from MIN_ELEMENTS on, as before, and more parts as the
work grows).

THREADS, the number of threads (the caller's and THREADS - 1 pool workers), is the number of
cores this process may run on (``os.sched_getaffinity``, else ``os.cpu_count()``), or the
environment's ``SHENJING_NUM_THREADS`` (read on import; a value that is not a positive integer
is refused with a warning naming it), or what ``shenjing.config.set_num_threads(n)`` set last.
``default_threads(divisor)`` is the hook for processes that share a host (MPI ranks): each gets
its share of the cores.

A BLAS's own worker threads spin for a while after each product, taking cores from those passes;
so while a shenjing op runs (``own_threads()``), NumPy's BLAS is told to use one thread, and large
products are split over our threads here instead (``matmul``). That took the reference CNN's
training step from 38 to 28 ms on 2 cores. The BLAS is found and set through ``threadpoolctl``
(OpenBLAS, MKL, BLIS: every BLAS it finds loaded when shenjing is imported, NumPy's among them).
Its thread count is one number for the whole process, so while an op runs, other threads'
products also run on one thread; the setting is restored when the outermost op of the thread that
set it returns, and left alone where it already is 1. With THREADS = 1 that keeps an op on one
core (SHENJING_NUM_THREADS=1 means one thread; MPI ranks sharing a host each keep to their
share, see share_cores). NOTE: threadpoolctl lets
one Python thread at a time set OpenBLAS's count (the first that does, until it ends: OpenBLAS's
setter is not safe to call from several threads at once); an op in another thread then leaves
the count as it is. ``SHENJING_BLAS_ONE_THREAD=0`` (read on import) or
``shenjing.config.set_blas_one_thread(False)`` turns the narrowing off (turned off while an op
runs in this thread, the BLAS gets its setting back at once; other threads' ops restore theirs
when they return).

``own_threads`` is also where ops tell shenjing.memory that work runs: the first op takes the
malloc setting, and every memory.OPS_PER_CHECK-th keeps what is kept within its limit; the per-op
cost is one module-global countdown, which memory's watcher also reads to see ops running.
"""

import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import arguments, memory
from ..errors import ArgumentError

MIN_ELEMENTS = 1 << 19  # below this, one thread (hand-off ~20 us vs ~50 us of work)


def default_threads(divisor: int = 1) -> int:
    """The cores this process may run on (its affinity mask where the OS has one, else every
    core), divided by divisor (processes sharing the host, e.g. MPI ranks on one node); >= 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, divisor))


def check_threads(n, where: str) -> int:
    """n as a positive int, or ArgumentError/ArgumentTypeError naming where it came from."""
    return arguments.positive_int(n, "the number of threads", where)


def _threads_from_environment() -> int:
    value = os.environ.get("SHENJING_NUM_THREADS", "").strip()
    if not value:
        return default_threads()
    try:
        return check_threads(int(value), "SHENJING_NUM_THREADS")
    except (ValueError, ArgumentError):
        default = default_threads()
        warnings.warn(f"SHENJING_NUM_THREADS must be a positive integer, got {value!r}; using "
                      f"{default} (the cores this process may run on).", RuntimeWarning,
                      stacklevel=2)
        return default


THREADS = _threads_from_environment()
# whether THREADS was chosen (SHENJING_NUM_THREADS, config.set_num_threads): left as it is then
CHOSEN = bool(os.environ.get("SHENJING_NUM_THREADS", "").strip())


def share_cores(ranks_on_host: int) -> None:
    """Under MPI, ranks_on_host processes share this host: unless the thread count was chosen,
    each takes its share of the cores. A launcher that bound this process to some cores (its
    affinity mask is smaller than the machine) already gave it its share: that mask is kept."""
    if CHOSEN:
        return
    try:
        bound = len(os.sched_getaffinity(0)) < (os.cpu_count() or 1)
    except (AttributeError, OSError):
        bound = False
    set_threads(default_threads(1 if bound else ranks_on_host))

_executor = None
_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The shared pool of THREADS - 1 worker threads (the caller's thread is the other one)."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max(1, THREADS - 1), thread_name_prefix="shenjing")
        return _executor


def set_threads(n: int) -> None:
    """THREADS = n, the pool resized for the next split.

    Safe while ops run in other threads: the old pool is dropped, not shut down, so a split
    that already holds it submits and finishes its parts there (a split never waits inside a
    worker, so fewer workers than parts only queue them); its threads end once no split holds
    it. An op's backward splits as its forward did where it must (the recurrent ops keep their
    parts), so a change between the two is safe too."""
    global THREADS, _executor
    with _lock:
        if n != THREADS:
            THREADS, _executor = n, None


def _after_fork():
    """A forked child has none of the parent's threads: start a fresh pool."""
    global _executor, _lock
    _executor, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _blas_controllers():
    """threadpoolctl's controllers of the BLAS libraries loaded now (none without it).

    NOTE: made once and reused: a get and a set through a controller cost ~0.6 and ~1.1 us
    (threadpoolctl's check of which thread controls OpenBLAS included), where a fresh
    ``threadpool_limits`` and its restore cost ~9 us per op and rescan the loaded libraries. An
    op's own_threads (get, set to 1, set back) then costs ~6 us, against ~2.3 us with our former
    ctypes calls: under 0.2 ms of the reference CNN's ~30 ms training step."""
    try:
        import threadpoolctl
    except ImportError:  # a core dependency; without it the BLAS is left alone
        return []
    return list(threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers)


_blas = _blas_controllers()
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


def _get_blas():
    """The BLAS thread counts now, one per library."""
    return [lib.get_num_threads() for lib in _blas]


def _set_blas(counts):
    for lib, n in zip(_blas, counts):
        if n is not None:
            lib.set_num_threads(n)


def _narrowed(saved):
    """Whether saved (what own_threads found) was narrowed, so must be given back."""
    return saved is not None and any(n not in (None, 1) for n in saved)


def set_blas_one_thread(enabled: bool) -> None:
    """Whether ops narrow NumPy's BLAS to one thread while they run (see the docstring)."""
    global _narrow_blas
    _narrow_blas = enabled
    saved = getattr(_state, "saved", None)
    if not enabled and getattr(_state, "depth", 0) and _narrowed(saved):
        _set_blas(saved)  # inside an op of this thread: the setting back now, not at its exit
        _state.saved = None


def blas_one_thread() -> bool:
    return _narrow_blas


class own_threads:
    """Within: NumPy's BLAS on one thread (restored on exit); nests, per thread."""

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
            if _narrow_blas and _blas:
                saved = _get_blas()
                if _narrowed(saved):
                    _state.saved = saved
                    _set_blas([1] * len(saved))

    def __exit__(self, *exc):
        _state.depth -= 1
        if _state.depth == 0 and _state.saved is not None:
            _set_blas(_state.saved)


class blas_threads:
    """Within own_threads: the BLAS's own threads back for a while, for ops made of products
    that it splits better than we do (the recurrent ops' per-step products)."""

    __slots__ = ()

    def __enter__(self):
        if getattr(_state, "depth", 0) and _state.saved is not None:
            _set_blas(_state.saved)

    def __exit__(self, *exc):
        if getattr(_state, "depth", 0) and _state.saved is not None:
            _set_blas([1] * len(_state.saved))


def parts(rows, elements) -> int:
    """How many threads to split work over: 1 (don't) for small work or inside a split, else up
    to THREADS, each part at least MIN_ELEMENTS / 2 of the elements and one row."""
    if (THREADS < 2 or rows < 2 or elements < MIN_ELEMENTS
            or getattr(_state, "splitting", False)):
        return 1
    return min(THREADS, rows, max(2, 2 * elements // max(MIN_ELEMENTS, 1)))


def worth_splitting(rows, elements) -> bool:
    """Whether to split work over threads: a large one, and not already inside a split."""
    return parts(rows, elements) > 1


def _marked(work, *args):
    """work(*args) with this thread marked as inside a split (nested splits run serially)."""
    _state.splitting = True
    try:
        return work(*args)
    finally:
        _state.splitting = False


def slices(rows, n):
    """slice(0, rows) cut into n contiguous parts of near-equal size, in order."""
    bounds = [rows * i // n for i in range(n + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(n)]


def split(work, rows, n):
    """[work(s) for s in slices(rows, n)], on n threads (the caller's runs the last part).

    Every part is waited for before this returns, even when one fails (work must not write
    into outputs its caller has let go); then the first part's error in order is raised."""
    if n <= 1:
        return [work(slice(0, rows))]
    pool, cuts = executor(), slices(rows, n)
    jobs = [pool.submit(_marked, work, s) for s in cuts[:-1]]
    errors = []  # (part, error)
    try:
        last = _marked(work, cuts[-1])
    except BaseException as error:  # noqa: BLE001 - raised below, once every part has ended
        last, errors = None, [(n - 1, error)]
    results = []
    for part, job in enumerate(jobs):
        try:
            results.append(job.result())
        except BaseException as error:  # noqa: BLE001 - likewise
            results.append(None)
            errors.append((part, error))
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return results + [last]


def over_batch(work, rows, elements):
    """work(s) for s = slice(0, rows), or for parts of it on several threads when elements (the
    size of the arrays work touches) is large; work must write disjoint parts of its outputs."""
    split(work, rows, parts(rows, elements))


def halves(work, rows):
    """[work(first half), work(second half)], the two on two threads."""
    return split(work, rows, 2)


def ufunc(f, *args, out):
    """f(*args, out=out), out and the array arguments of its shape split along axis 0 over
    threads when large; other arguments (scalars, broadcast rows) pass whole."""
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
    """a (M, K) @ b (K, N), the rows of a split over threads when large (each row of the
    result is the same product whatever the split)."""
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
    M axis split over threads when large, the partial products added in order (so the sum's
    rounding depends on the number of parts)."""
    rows = a.shape[-2]
    n = parts(rows, a.size + b.size)
    if n == 1:
        return np.matmul(a.swapaxes(-1, -2), b)
    products = split(lambda s: np.matmul(a[..., s, :].swapaxes(-1, -2), b[..., s, :]), rows, n)
    total = products[0]
    for product in products[1:]:
        total += product
    return total
