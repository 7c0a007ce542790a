"""Data-parallel training over MPI, with Keras 3's distribution API names.

    import shenjing as sj
    dp = sj.distribution.DataParallel()      # needs: pip install 'shenjing[distributed]'
    sj.distribution.set_distribution(dp)
    model.fit(x, y, batch_size=128)           # 128 is the global batch

Run the same script with ``mpiexec -n 4 python train.py`` (README: "Training on several
machines"). fit / evaluate / predict / *_on_batch work unchanged: batch_size is the global batch
and each rank takes its slice; the weights start as rank 0's; gradients are summed over ranks
before each optimizer step (data_parallel.py); logs are global (metrics_sync.py); predict returns
the whole result on every rank; only rank 0 prints and writes files; an exception on one rank
ends the job (failures.py). With one process, these lines change nothing.

NOTE: importing this package loads context.py only (the layers, ops and loops read it while
shenjing itself is being imported); DataParallel and its modules load on first use.
"""

from __future__ import annotations

from . import context


def set_distribution(value):
    """Use ``value`` (a DataParallel, or None to turn distribution off) from now on."""
    if value is not None:
        from .data_parallel import check_distribution

        check_distribution(value)
    context._active = value


def distribution():
    """The distribution set by set_distribution, or None."""
    return context._active


def __getattr__(name):
    if name == "DataParallel":
        from .data_parallel import DataParallel

        return DataParallel
    raise AttributeError(f"module 'shenjing.distribution' has no attribute {name!r}")


__all__ = ["DataParallel", "distribution", "set_distribution"]
