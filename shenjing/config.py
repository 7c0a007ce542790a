"""Process-wide settings, as Keras 3's ``keras.config``: here, what shenjing may change in the
process it runs in (README, "What shenjing changes in its process").

- ``set_keep_memory(False)``: leave glibc's malloc settings alone (shenjing/memory.py); the
  environment's ``SHENJING_KEEP_MEMORY=0`` does the same from the start. Code wins over the
  environment.
- ``set_blas_one_thread(False)``: leave NumPy's OpenBLAS thread count alone while ops run
  (shenjing/ops/parallel.py); the environment's ``SHENJING_BLAS_ONE_THREAD=0`` likewise.
- ``set_num_threads(n)`` / ``get_num_threads()``: how many threads shenjing's ops split large
  work over (the calling thread and n - 1 pool workers; shenjing/ops/parallel.py). The default
  is the number of cores this process may run on (its affinity mask, e.g. under ``taskset`` or
  a batch scheduler; else every core), or the environment's ``SHENJING_NUM_THREADS`` (a
  positive integer; anything else is refused with a warning naming it, and the default used).
  Code wins over the environment. Under a ``shenjing.distribution.DataParallel`` of several
  processes on one host, each takes its share of the cores unless a count was chosen here or in
  the environment. The BLAS's own thread count is separate: see ``set_blas_one_thread``.
"""

from . import arguments, memory
from .errors import ArgumentTypeError
from .ops import parallel


def _check_flag(function, enabled):
    if not isinstance(enabled, bool):
        raise ArgumentTypeError(f"{function}: enabled must be True or False, got "
                                f"{enabled!r} of type {type(enabled).__name__}.")


def set_keep_memory(enabled: bool, limit_mib: int | None = None) -> None:
    """Whether shenjing keeps freed memory for reuse while it works (default True: a CNN
    training step runs ~1.75x faster). False while it is applied restores glibc's defaults and
    hands the kept memory back at once. limit_mib (default 512): how much freed memory it may
    keep beyond what malloc held anyway before it trims (shenjing/memory.py)."""
    _check_flag("set_keep_memory", enabled)
    if limit_mib is not None:
        limit_mib = arguments.positive_int(limit_mib, "limit_mib (MiB)", "set_keep_memory")
    memory.set_enabled(enabled, None if limit_mib is None else limit_mib << 20)


def keep_memory() -> bool:
    """Whether shenjing keeps freed memory while it works (set_keep_memory)."""
    return memory.is_enabled()


def set_blas_one_thread(enabled: bool) -> None:
    """Whether NumPy's OpenBLAS runs on one thread while a shenjing op runs (default True: its
    idle workers would spin on the core shenjing's own second thread uses). The count is
    process-wide, so other threads' products run on one thread during an op too; False leaves
    it alone (and, called inside an op, gives it back at once)."""
    _check_flag("set_blas_one_thread", enabled)
    parallel.set_blas_one_thread(enabled)


def blas_one_thread() -> bool:
    """Whether ops narrow NumPy's OpenBLAS to one thread while they run."""
    return parallel.blas_one_thread()


def set_num_threads(n: int) -> None:
    """Split large work (products, batch norm, pooling, optimizers, recurrent ops) over n
    threads from the next op on; 1 runs everything on the calling thread. Safe while ops run in
    other threads: those finish on the pool they started with, and its threads then end."""
    parallel.set_threads(parallel.check_threads(n, "set_num_threads"))
    parallel.CHOSEN = True  # a DataParallel made later keeps it (parallel.share_cores)


def get_num_threads() -> int:
    """How many threads shenjing's ops split large work over (set_num_threads)."""
    return parallel.THREADS


__all__ = ["blas_one_thread", "get_num_threads", "keep_memory", "set_blas_one_thread",
           "set_keep_memory", "set_num_threads"]
