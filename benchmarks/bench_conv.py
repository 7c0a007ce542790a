"""conv2d forward+backward, shenjing vs PyTorch in one process (W5 of PERF-NOTES.md).

Batch 32, 32x32x64 input, 64 filters 3x3 'same', float32. Run: python benchmarks/bench_conv.py
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for `common`
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for shenjing

from common import median_ms, print_table

import shenjing as sj
from shenjing.ops.conv import conv2d


def _conv_case(name, n, size, c, f, k, strides=1, padding="same", repeat=15):
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, size, size, c)).astype(np.float32)
    w = (rng.standard_normal((k, k, c, f)) * 0.05).astype(np.float32)
    b = np.zeros(f, np.float32)
    gy = rng.standard_normal((n, -(-size // strides), -(-size // strides), f)).astype(np.float32)
    xs, ws, bs = (sj.Tensor(a, requires_grad=True) for a in (x, w, b))

    def ours():
        for t in (xs, ws, bs):
            t.grad = None
        conv2d(xs, ws, bs, strides=strides, padding=padding).backward(gy)

    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
    wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    gyt = torch.tensor(gy.transpose(0, 3, 1, 2).copy())
    pad = (k - 1) // 2 if padding == "same" else 0

    def theirs():
        for t in (xt, wt, bt):
            t.grad = None
        torch.nn.functional.conv2d(xt, wt, bt, stride=strides, padding=pad).backward(gyt)

    # alternate the two in rounds so load changes on a shared machine hit both alike
    ours_ms, theirs_ms = [], []
    for _ in range(3):
        ours_ms.append(median_ms(ours, repeat=repeat // 3 + 1, warmup=1))
        theirs_ms.append(median_ms(theirs, repeat=repeat // 3 + 1, warmup=1))
    return name, float(np.median(ours_ms)), float(np.median(theirs_ms))


def run():
    """Rows (workload, shenjing_ms, torch_ms)."""
    return [
        _conv_case("conv2d 3x3 64->64 fwd+bwd, b32 32x32 'same' (W5)", 32, 32, 64, 64, 3),
    ]


if __name__ == "__main__":
    print_table(run())
