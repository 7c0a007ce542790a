"""Where a process stands in a distributed run, for the layers and ops that take part in one.

shenjing.distribution sets ``_active`` (the DataParallel in use, see set_distribution) and,
while fit / evaluate / train_on_batch run a batch, the step under way: this rank's share of the
global batch. Layers read these through the functions below and never import mpi4py; with no
distribution set, or a single process, every function here is the identity or a constant, so
code that calls them runs exactly as without them.

- ``size()``, ``rank()``: how many processes train together, and which one this is.
- ``allreduce_sum(array)``: the elementwise sum of ``array`` over the ranks (a new array, the same
  on every rank).
- ``allgather(array)``: every rank's ``array`` stacked in rank order, shape (size, *shape).
- ``sample_scale()``: 1.0, or 0.0 on a rank that holds no sample of the batch under way (a
  global batch smaller than the number of ranks): it runs the step on a stand-in sample so that
  it joins every collective, and must add nothing to sums over the global batch.
- ``loss_share()``: the fraction of the global batch this rank holds (b_r / B); backward of a
  rank's mean loss is seeded with it, so the summed gradients are those of the global mean.
"""

from __future__ import annotations

import numpy as np

_active = None  # the DataParallel in use, or None
_step = None  # the step under way (a `step`), or None outside one


def active():
    """The distribution in use (shenjing.distribution.distribution()), or None."""
    return _active


def size() -> int:
    return 1 if _active is None else _active.size


def rank() -> int:
    return 0 if _active is None else _active.rank


def is_distributed() -> bool:
    """Whether more than one process trains together."""
    return _active is not None and _active.size > 1


def allreduce_sum(array) -> np.ndarray:
    array = np.ascontiguousarray(array)
    if not is_distributed():
        return array.copy()
    return _active.communicator.allreduce_sum(array)


def allgather(array) -> np.ndarray:
    array = np.ascontiguousarray(array)
    if not is_distributed():
        return array[None].copy()
    return _active.communicator.allgather(array)


def in_step() -> bool:
    """Whether a distributed training step is under way on this rank."""
    return _step is not None


def current_step():
    """The `step` under way, or None."""
    return _step


def loss_share() -> float:
    return 1.0 if _step is None else _step.share


def sample_scale() -> float:
    return 1.0 if _step is None else _step.scale


def global_count(count: float) -> float:
    """For a mean over the values a mask keeps: the divisor that makes this rank's mean,
    weighed by loss_share(), its part of the global batch's mean, share * (the count summed
    over ranks): sum_r share_r * sum_r' / (share_r * count) = sum / count. Outside a distributed
    step (or on one process): count. Every rank must call it at the same point of its step."""
    if _step is None or not is_distributed():
        return count
    total = allreduce_sum(np.array([count * _step.scale], np.float64))[0]
    return _step.share * total


class step:
    """``with step(share, scale):`` marks the training step of one global batch on this rank.
    ``averaged``: arrays (moving statistics of unsynchronized batch normalization) that the
    gradient allreduce also averages, weighted by share; ``reduced``: whether it ran."""

    def __init__(self, share: float, scale: float = 1.0, averaged=()):
        self.share, self.scale = float(share), float(scale)
        self.averaged, self.reduced = list(averaged), False

    def __enter__(self):
        global _step
        self._outer, _step = _step, self
        return self

    def __exit__(self, *exc):
        global _step
        _step = self._outer
        return False


def writes_files() -> bool:
    """Whether this process prints progress and writes files: rank 0, or the only process."""
    return _active is None or _active.rank == 0


def same_on_all_ranks(array: np.ndarray) -> np.ndarray:
    """rank 0's array on every rank (a shuffle order: each rank's random stream may differ)."""
    if not is_distributed():
        return array
    array = np.ascontiguousarray(array)
    _active.communicator.broadcast_(array)
    return array
