"""Synchronized batch normalization: the statistics of the global batch over all ranks of a
distributed run (shenjing.distribution), for ops.norm.BatchNorm with synchronized=True.

Each helper makes exactly one collective, which every rank must join: the forward pass one
allgather (global_moments), the backward pass one allreduce (global_grad_sums).
"""

import numpy as np

from ..distribution import context
from ..errors import ArgumentError


def global_moments(mean, var, m, scale):
    """(mean, var, count) of the global batch from this rank's (mean, var) of m values per
    channel, in float64; scale = sample_scale() (0: a stand-in sample that counts for nothing).

    One allgather of [m_r, mean_r (C), M2_r (C)], M2_r = sum (x - mean_r)^2 = m_r var_r; the
    rows combined in rank order (Chan, Golub & LeVeque), so every rank gets the same bits:
    count = sum m_r, mean = sum m_r mean_r / count,
    var = (sum M2_r + sum m_r (mean_r - mean)^2) / count (biased).
    """
    counts = float(m) * scale
    row = np.concatenate([[counts], mean, var * counts]).astype(np.float64)
    rows = context.allgather(row)
    C = len(mean)
    counts, means, squares = rows[:, :1], rows[:, 1 : C + 1], rows[:, C + 1 :]
    count = float(counts.sum())
    if count < 2:
        raise ArgumentError(
            f"batch_norm: synchronized training needs more than one value per channel in the "
            f"global batch to estimate a batch variance, got {count:g} over {len(rows)} ranks."
        )
    global_mean = (counts * means).sum(axis=0) / count
    m2 = squares.sum(axis=0) + (counts * (means - global_mean) ** 2).sum(axis=0)
    return global_mean, np.maximum(m2 / count, 0.0), count


def global_grad_sums(sum_gy, sum_gy_d, scale):
    """sum(gy) and sum(gy * (x - mean)) per channel over the global batch: one allreduce of
    this rank's [sum_gy, sum_gy_d] (times scale = sample_scale(), in float64)."""
    C = len(sum_gy)
    total = context.allreduce_sum(np.concatenate([sum_gy, sum_gy_d]).astype(np.float64) * scale)
    return total[:C], total[C:]
