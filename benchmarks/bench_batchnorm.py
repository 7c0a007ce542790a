"""batch_norm forward+backward (training), shenjing vs PyTorch in one process (W6 of PERF-NOTES).

64x32x32x64 float32, gamma and beta. PyTorch runs on the same values in its best layout here,
channels_last (NHWC memory, as ours); the NCHW row is for reference. "op" rows time the op as
inside a network, without the copy the autograd engine makes of a leaf input's gradient.
Run: python benchmarks/bench_batchnorm.py
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for `common`
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for shenjing

from common import print_table

import shenjing as sj
from shenjing.ops.norm import BatchNorm, batch_norm


def _samples(step, count):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _compare(ours, theirs, rounds=6, per_round=5):
    """Medians over rounds * per_round runs each, alternated so load changes hit both alike."""
    for _ in range(3):
        ours(), theirs()
    ours_ms, theirs_ms = [], []
    for _ in range(rounds):
        ours_ms += _samples(ours, per_round)
        theirs_ms += _samples(theirs, per_round)
    return float(np.median(ours_ms)), float(np.median(theirs_ms))


def run():
    """Rows (workload, shenjing_ms, torch_ms)."""
    import torch

    F = torch.nn.functional
    rng = np.random.default_rng(0)
    shape, C = (64, 32, 32, 64), 64
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    moving_mean, moving_var = np.zeros(C, np.float32), np.ones(C, np.float32)
    xs, gs, bs = (sj.Tensor(a, requires_grad=True) for a in (x, gamma, beta))

    def ours():
        xs.grad = gs.grad = bs.grad = None
        batch_norm(xs, gs, bs, moving_mean, moving_var, training=True).backward(gy)

    def ours_op():
        op = BatchNorm(True, 0.99, 1e-3, moving_mean, moving_var, 3, True, True)
        op.needs_grad = (True, True, True)
        op.forward(x, gamma, beta)
        op.backward(gy)

    def torch_step(layout):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
        gyt = torch.tensor(gy).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
        xt.requires_grad_(True)
        gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
        rm, rv = torch.zeros(C), torch.ones(C)

        def step():
            xt.grad = gt.grad = bt.grad = None
            F.batch_norm(xt, rm, rv, gt, bt, training=True, momentum=0.01, eps=1e-3).backward(gyt)

        return step

    name = "batch_norm train fwd+bwd 64x32x32x64 f32 (W6)"
    nhwc, nchw = torch_step("channels_last"), torch_step("nchw")
    return [
        (f"{name}, vs torch channels_last", *_compare(ours, nhwc)),
        (f"{name} op, vs torch channels_last", *_compare(ours_op, nhwc)),
        (f"{name}, vs torch NCHW", *_compare(ours, nchw)),
    ]


if __name__ == "__main__":
    print_table(run())
